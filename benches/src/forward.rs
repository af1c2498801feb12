//! `gw-bench forward`: gw-dataplane's forwarding loop beside testpmd io.

use std::path::{Path, PathBuf};
use std::process::Command;

use clap::Args;

use crate::measure::{median, tsc_hz, Anchors, Sample, Windows};

#[derive(Debug, Args)]
pub struct ForwardArgs {
    /// Runs per (tool, size); each run is a separate process.
    #[arg(long, default_value_t = 3)]
    runs: u32,
    /// Inner IPv4 packet sizes: 64, 1400, imix (the anchors' pcaps).
    #[arg(long, value_delimiter = ',', default_value = "64,1400,imix")]
    sizes: Vec<String>,
    /// Seconds before the first window.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Window length in seconds.
    #[arg(long, default_value_t = 1.0)]
    interval: f64,
    /// Windows per run; the run's figure is the median window.
    #[arg(long, default_value_t = 3)]
    windows: u32,
    /// CPU of the worker lcore.
    #[arg(long, default_value_t = 1)]
    worker_cpu: u32,
    /// CPU of the main lcore and the sampler.
    #[arg(long, default_value_t = 0)]
    ctrl_cpu: u32,
    /// gw-dataplane to measure (default: beside this binary).
    #[arg(long)]
    dataplane: Option<PathBuf>,
    /// testpmd to measure.
    #[arg(long, default_value = "dpdk-testpmd")]
    testpmd: String,
    /// Also write the table as Markdown to this file.
    #[arg(long)]
    markdown: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Tool {
    Testpmd,
    Ours,
}

impl Tool {
    fn name(self) -> &'static str {
        match self {
            Tool::Testpmd => "dpdk-testpmd io",
            Tool::Ours => "gw-dataplane",
        }
    }
}

pub fn run(a: &ForwardArgs, shared: &Path) -> Result<(), String> {
    if a.runs == 0 || a.windows == 0 || a.sizes.is_empty() {
        return Err("--runs, --windows and --sizes must be non-empty".into());
    }
    for s in &a.sizes {
        if !["64", "1400", "imix"].contains(&s.as_str()) {
            return Err(format!("--sizes: '{s}' is not one of 64, 1400, imix"));
        }
    }
    let anchors = Anchors::new(shared)?;
    let dataplane = match &a.dataplane {
        Some(p) => p.clone(),
        None => std::env::current_exe().map_err(|e| e.to_string())?.with_file_name("gw-dataplane"),
    };
    if !dataplane.exists() {
        return Err(format!("{} not found (cargo build --release first)", dataplane.display()));
    }
    let hz = tsc_hz()?;
    let work = tempfile::Builder::new().prefix("gw-bench-fwd.").tempdir().map_err(|e| e.to_string())?;
    anchors.gen_pcaps(work.path())?;
    let w = Windows { warmup_s: a.warmup, interval_s: a.interval, count: a.windows };
    let cpu = crate::measure::cpu_model();
    println!(
        "# gw-bench forward: cpu '{cpu}', TSC {:.2} MHz, worker CPU {}, {} run(s) x {} window(s) of {} s, DPDK vdevs net_pcap(infinite_rx) -> net_null",
        hz / 1e6,
        a.worker_cpu,
        a.runs,
        a.windows,
        a.interval
    );

    // results[size][tool] = samples
    let mut results: Vec<[Vec<Sample>; 2]> = vec![[Vec::new(), Vec::new()]; a.sizes.len()];
    for r in 0..a.runs {
        for (si, size) in a.sizes.iter().enumerate() {
            let pcap = work.path().join(format!("clear-{size}.pcap"));
            // Alternate which tool goes first, so drift hits both alike.
            let order = if r % 2 == 0 { [Tool::Testpmd, Tool::Ours] } else { [Tool::Ours, Tool::Testpmd] };
            for tool in order {
                let prefix = format!("gw-bench-fwd-{}-{}", std::process::id(), tool as u8);
                let cmd = command(tool, a, &dataplane, &pcap, &prefix);
                let log = work.path().join(format!("{prefix}.log"));
                let s = anchors.sample(cmd, &prefix, w, a.ctrl_cpu, &log)?;
                eprintln!(
                    "run {} size {size:>4} {:<16} tx {:8.3} Mpps  drop_frac {:.4}  rx frame {:.1} B",
                    r + 1,
                    tool.name(),
                    s.tx_mpps,
                    s.drop_frac,
                    s.rx_bytes
                );
                results[si][tool as usize].push(s);
            }
        }
    }

    let mut md = String::new();
    md.push_str("| size | dpdk-testpmd io Mpps med [min-max] | cyc/pkt | gw-dataplane Mpps med [min-max] | cyc/pkt | ours / testpmd |\n");
    md.push_str("|---|---|---|---|---|---|\n");
    for (si, size) in a.sizes.iter().enumerate() {
        let stat = |t: usize| {
            let v: Vec<f64> = results[si][t].iter().map(|s| s.tx_mpps).collect();
            let mn = v.iter().cloned().fold(f64::INFINITY, f64::min);
            let mx = v.iter().cloned().fold(0.0, f64::max);
            (median(&v), mn, mx)
        };
        let (tm, tmin, tmax) = stat(Tool::Testpmd as usize);
        let (om, omin, omax) = stat(Tool::Ours as usize);
        let cyc = |m: f64| if m > 0.0 { hz / (m * 1e6) } else { f64::NAN };
        md.push_str(&format!(
            "| {size} | {tm:.2} [{tmin:.2}-{tmax:.2}] | {:.0} | {om:.2} [{omin:.2}-{omax:.2}] | {:.0} | {:.3} |\n",
            cyc(tm),
            cyc(om),
            om / tm
        ));
    }
    println!("{md}");
    if let Some(p) = &a.markdown {
        std::fs::write(p, &md).map_err(|e| format!("{}: {e}", p.display()))?;
    }
    Ok(())
}

/// The exact command line of each tool on the anchor arrangement.
fn command(tool: Tool, a: &ForwardArgs, dataplane: &Path, pcap: &Path, prefix: &str) -> Command {
    let src = format!("net_pcap0,rx_pcap={},infinite_rx=1", pcap.display());
    let sink = "net_null0,no-rx=1";
    let lcores = format!("{},{}", a.ctrl_cpu, a.worker_cpu);
    match tool {
        Tool::Testpmd => {
            let mut c = Command::new("timeout");
            c.args(["-k", "5", "-s", "INT", "120", &a.testpmd]);
            c.args(["-l", &lcores, "--main-lcore", &a.ctrl_cpu.to_string()]);
            c.args(["--no-huge", "-m", "1024", "--no-pci", "--log-level=lib.eal:warning", "--file-prefix", prefix]);
            c.args(["--vdev", &src, "--vdev", sink, "--"]);
            c.args(["--forward-mode=io", "--nb-cores=1", "--burst=32", "--stats-period=3600", "--auto-start"]);
            c
        }
        Tool::Ours => {
            let mut c = Command::new("timeout");
            c.args(["-k", "5", "-s", "INT", "120"]);
            c.arg(dataplane);
            c.args(["--lcores", &lcores, "--file-prefix", prefix, "--stats-interval", "0"]);
            c.args(["--port", &format!("src={src}"), "--port", &format!("sink={sink}")]);
            c
        }
    }
}
