//! Running one DPDK process on the anchor arrangement and sampling its
//! port counters over telemetry.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// The sampling window settings, as ../shared/anchors uses them.
#[derive(Debug, Clone, Copy)]
pub struct Windows {
    pub warmup_s: f64,
    pub interval_s: f64,
    pub count: u32,
}

/// What the anchors' sampler reported for one run (its median window).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    pub rx_mpps: f64,
    pub tx_mpps: f64,
    pub drop_frac: f64,
    pub rx_bytes: f64,
}

impl Sample {
    /// Parses the sampler's `RESULT rx_mpps=.. tx_mpps=.. drop_frac=.. rx_B=..` line.
    pub fn parse(output: &str) -> Option<Sample> {
        let line = output.lines().find(|l| l.starts_with("RESULT "))?;
        let get = |k: &str| -> Option<f64> {
            line.split_whitespace().find_map(|kv| kv.strip_prefix(k)?.strip_prefix('=')?.parse().ok())
        };
        Some(Sample {
            rx_mpps: get("rx_mpps")?,
            tx_mpps: get("tx_mpps")?,
            drop_frac: get("drop_frac")?,
            rx_bytes: get("rx_B")?,
        })
    }
}

/// TSC rate in Hz as the anchors take it: /proc/cpuinfo "cpu MHz" (on this
/// KVM guest the kernel reports the TSC rate there; the hypervisor hides the
/// real core clock). Cycles per packet are therefore TSC ticks.
pub fn tsc_hz() -> Result<f64, String> {
    let text = std::fs::read_to_string("/proc/cpuinfo").map_err(|e| format!("/proc/cpuinfo: {e}"))?;
    text.lines()
        .find(|l| l.starts_with("cpu MHz"))
        .and_then(|l| l.split(':').nth(1))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map(|mhz| mhz * 1e6)
        .ok_or_else(|| "no 'cpu MHz' line in /proc/cpuinfo".into())
}

pub struct Anchors {
    pub python: PathBuf,
    pub sampler: PathBuf,
    pub gen_pcap: PathBuf,
}

impl Anchors {
    pub fn new(shared: &Path) -> Result<Anchors, String> {
        let a = Anchors {
            // Debian's python3 carries scapy; the anchors use it explicitly.
            python: PathBuf::from("/usr/bin/python3"),
            sampler: shared.join("anchors/lib/telemetry_rate.py"),
            gen_pcap: shared.join("anchors/lib/gen_pcap.py"),
        };
        for p in [&a.python, &a.sampler, &a.gen_pcap] {
            if !p.exists() {
                return Err(format!("{} is missing (run ./setup.sh; is --shared right?)", p.display()));
            }
        }
        Ok(a)
    }

    /// Writes clear-64.pcap, clear-1400.pcap and clear-imix.pcap into `dir`.
    pub fn gen_pcaps(&self, dir: &Path) -> Result<(), String> {
        let st = Command::new(&self.python)
            .arg(&self.gen_pcap)
            .arg(dir)
            .stdout(Stdio::null())
            .status()
            .map_err(|e| format!("{}: {e}", self.gen_pcap.display()))?;
        st.success().then_some(()).ok_or_else(|| format!("{} failed: {st}", self.gen_pcap.display()))
    }

    /// Starts `cmd` (a DPDK primary using `prefix`), samples it, stops it
    /// with SIGINT, and removes its runtime directory.
    pub fn sample(
        &self,
        mut cmd: Command,
        prefix: &str,
        w: Windows,
        ctrl_cpu: u32,
        log: &Path,
    ) -> Result<Sample, String> {
        let logf = std::fs::File::create(log).map_err(|e| format!("{}: {e}", log.display()))?;
        let mut child = cmd
            .stdout(logf.try_clone().map_err(|e| e.to_string())?)
            .stderr(logf)
            .spawn()
            .map_err(|e| format!("starting {:?}: {e}", cmd.get_program()))?;
        let out = Command::new("taskset")
            .args(["-c", &ctrl_cpu.to_string()])
            .arg(&self.python)
            .arg(&self.sampler)
            .args([prefix, "0", "1"])
            .args([w.warmup_s.to_string(), w.interval_s.to_string(), w.count.to_string()])
            .output();
        let _ = Command::new("kill").args(["-INT", &child.id().to_string()]).status();
        let mut waited = 0;
        while child.try_wait().ok().flatten().is_none() && waited < 100 {
            std::thread::sleep(Duration::from_millis(100));
            waited += 1;
        }
        if waited >= 100 {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(format!("/var/run/dpdk/{prefix}"));
        let out = out.map_err(|e| format!("sampler: {e}"))?;
        let text = String::from_utf8_lossy(&out.stdout);
        Sample::parse(&text).ok_or_else(|| {
            let tail = std::fs::read_to_string(log).unwrap_or_default();
            let tail: Vec<&str> = tail.lines().rev().take(5).collect();
            format!(
                "no RESULT from the sampler ({}); process log tail: {:?}",
                String::from_utf8_lossy(&out.stderr).trim(),
                tail
            )
        })
    }
}

/// The CPU model as /proc/cpuinfo names it (figures are recorded with it).
pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines().find(|l| l.starts_with("model name")).map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}

/// The median of a non-empty `v`; the lower one for even counts, as the
/// anchors' scripts take it (`a[int((NR+1)/2)]`).
pub fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    s[s.len().div_ceil(2) - 1]
}

/// The CPU time this thread has used (CLOCK_THREAD_CPUTIME_ID): what a
/// bench charges to code it runs on its own thread. Unlike the wall clock
/// it leaves out the time other processes, and the host (a guest's steal
/// time), took the core from us.
pub fn thread_cpu() -> std::time::Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    std::time::Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thread_cpu_counts_work_not_sleep() {
        let t0 = thread_cpu();
        std::thread::sleep(std::time::Duration::from_millis(30));
        let slept = thread_cpu() - t0;
        let mut x = 0u64;
        let spin = std::time::Instant::now();
        while spin.elapsed() < std::time::Duration::from_millis(30) {
            x = std::hint::black_box(x.wrapping_add(1));
        }
        let worked = thread_cpu() - t0 - slept;
        assert!(slept < std::time::Duration::from_millis(10), "asleep: {slept:?}");
        assert!(worked > std::time::Duration::from_millis(5), "spinning: {worked:?} ({x})");
    }

    #[test]
    fn parses_the_sampler_result_line() {
        let out =
            "window rx_mpps=1\nRESULT rx_mpps=33.9120 tx_mpps=33.9000 drop_frac=0.0004 rx_B=78.0 tx_B=0.0 rx_total=1\n";
        let s = Sample::parse(out).unwrap();
        assert_eq!(s, Sample { rx_mpps: 33.912, tx_mpps: 33.9, drop_frac: 0.0004, rx_bytes: 78.0 });
        assert!(Sample::parse("window only\n").is_none());
    }

    #[test]
    fn median_of_odd_and_even() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.0);
        assert_eq!(median(&[5.0]), 5.0);
    }
}
