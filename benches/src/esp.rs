//! `gw-bench esp`: ESP encrypt and decrypt on one worker core.
//!
//! Three views in one run, so that their ratios mean something on a noisy
//! machine:
//! 1. DPDK path: `gw-dataplane` in gateway mode on the anchors' arrangement
//!    (net_pcap infinite_rx source -> net_null sink, worker on CPU 1),
//!    sampled over telemetry exactly like the anchors; one SA, replay window
//!    off (the replayed pcap repeats its 256 sequence numbers, as for
//!    ipsec-secgw), interleaved run by run with
//! 2. DPDK's ipsec-secgw through ../shared/anchors/secgw-bench.sh (AES-128
//!    GCM and CBC-SHA1; its best mode per size), and the testpmd io floor;
//! 3. in memory (no DPDK): the same pipeline over heap buffers, the crypto
//!    alone, the cost of anti-replay and of 1,000 SAs.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use clap::Args;
use dataplane::buf::{PacketBuf, VecBuf};
use dataplane::config::Config;
use dataplane::crypto::Algorithm;
use dataplane::pipeline::{Verdict, Worker};
use dataplane::tables::Tables;

use crate::measure::{median, tsc_hz, Anchors, Windows};
use crate::traffic;

#[derive(Debug, Args)]
pub struct EspArgs {
    /// Ciphers to measure.
    #[arg(long, value_delimiter = ',', default_value = "aes128gcm,aes256gcm,aes128cbc-sha1,aes256cbc-sha1")]
    algs: Vec<String>,
    /// Inner IPv4 packet sizes (28..=1400) or imix. The anchors' scripts
    /// know 64, 1400 and imix only; other sizes are measured for us alone.
    #[arg(long, value_delimiter = ',', default_value = "64,512,1400,imix")]
    sizes: Vec<String>,
    /// Runs per (tool, cipher, size, direction).
    #[arg(long, default_value_t = 3)]
    runs: u32,
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    #[arg(long, default_value_t = 1.0)]
    interval: f64,
    #[arg(long, default_value_t = 3)]
    windows: u32,
    /// Skip the DPDK-path runs (in-memory figures only).
    #[arg(long)]
    memory_only: bool,
    /// Skip ipsec-secgw and testpmd (our figures only).
    #[arg(long)]
    no_anchors: bool,
    /// gw-dataplane to measure (default: beside this binary).
    #[arg(long)]
    dataplane: Option<PathBuf>,
    /// Also write the report as Markdown to this file.
    #[arg(long)]
    markdown: Option<PathBuf>,
}

const SPI: u32 = 1000;
const GCM_KEY: &str = "2b7e151628aed2a6abf7158809cf4f3ccafebabe";

fn keys(alg: Algorithm) -> (String, String) {
    let k: String = (0..alg.enc_key_len()).map(|i| format!("{:02x}", (0x11 * i + 3) as u8)).collect();
    let a: String = (0..alg.auth_key_len()).map(|i| format!("{:02x}", (0xa0 + i) as u8)).collect();
    if alg == Algorithm::AesGcm128 {
        (GCM_KEY.into(), a)
    } else {
        (k, a)
    }
}

/// The gateway config of the anchors' arrangement: port 0 "src", port 1
/// "sink"; outbound protects 192.168.105.0/24 with SA 1000 from
/// 172.16.1.5 to 172.16.2.5; inbound owns 172.16.2.5.
fn gateway_config(alg: Algorithm, dir_out: bool, replay_window: u32, prefix: &str, lcores: &str) -> String {
    let (k, a) = keys(alg);
    let (addr, direction) = if dir_out { ("172.16.1.5/24", "out") } else { ("172.16.2.5/24", "in") };
    format!(
        r#"mode = "gateway"
[eal]
lcores = "{lcores}"
file_prefix = "{prefix}"
[worker]
idle_sleep_max_us = 1000
[[port]]
name = "src"
device = "net_null8"
addresses = ["{addr}"]
mac = "02:00:00:00:00:02"
[[port]]
name = "sink"
device = "net_null9"
addresses = ["10.9.9.1/24"]
mac = "02:00:00:00:00:03"
[[route]]
dst = "172.16.2.5/32"
port = "sink"
[[route]]
dst = "192.168.105.0/24"
port = "sink"
via = "10.9.9.9"
[[neighbor]]
ip = "172.16.2.5"
mac = "02:00:00:00:00:09"
[[neighbor]]
ip = "10.9.9.9"
mac = "02:00:00:00:00:09"
[[sa]]
spi = {SPI}
direction = "{direction}"
alg = "{alg}"
key = "{k}"
auth_key = "{a}"
local = "{local}"
remote = "{remote}"
replay_window = {replay_window}
{policy}"#,
        local = if dir_out { "172.16.1.5" } else { "172.16.2.5" },
        remote = if dir_out { "172.16.2.5" } else { "172.16.1.5" },
        policy = if dir_out {
            format!("[[policy]]\ndst = \"192.168.105.0/24\"\naction = \"protect\"\nsa = {SPI}\n")
        } else {
            String::new()
        },
    )
}

/// ESP frames of our own making (the inbound input): the clear frames
/// encrypted by an in-memory gateway with the same SA.
fn esp_frames(alg: Algorithm, clear: &[Vec<u8>]) -> Result<Vec<Vec<u8>>, String> {
    let cfg = Config::parse(&gateway_config(alg, true, 0, "x", "0,1"), "bench").map_err(|e| e.to_string())?;
    let t = Tables::from_config(&cfg, "bench", &[]).map_err(|e| e.to_string())?;
    let mut w = Worker::new(Arc::new(t));
    clear
        .iter()
        .map(|f| {
            let mut b = VecBuf::new(f);
            match w.process(&mut b) {
                Verdict::Tx(_) => Ok(b.data().to_vec()),
                v => Err(format!("building ESP input: {v:?}")),
            }
        })
        .collect()
}

fn frames_for(size: &str) -> Result<Vec<Vec<u8>>, String> {
    traffic::frames(size, 256)
}

pub fn run(a: &EspArgs, shared: Option<&Path>) -> Result<(), String> {
    let algs: Vec<Algorithm> = a.algs.iter().map(|s| s.parse()).collect::<Result<_, _>>()?;
    for s in &a.sizes {
        let ok = s == "imix" || s.parse::<usize>().is_ok_and(|n| (traffic::MIN_SIZE..=1400).contains(&n));
        if !ok {
            return Err(format!("--sizes: '{s}' is neither imix nor a size in 28..=1400"));
        }
    }
    let hz = tsc_hz()?;
    let mut report = String::new();
    writeln!(report, "TSC {:.2} MHz; cycles are TSC ticks per packet on one core.\n", hz / 1e6).ok();
    if !a.memory_only {
        let shared = shared.ok_or("the DPDK-path runs need ../shared (pass --shared or --memory-only)")?;
        dpdk_path(a, shared, &algs, hz, &mut report)?;
    }
    in_memory(a, &algs, hz, &mut report)?;
    println!("{report}");
    if let Some(p) = &a.markdown {
        std::fs::write(p, &report).map_err(|e| format!("{}: {e}", p.display()))?;
    }
    Ok(())
}

struct Cell {
    runs: Vec<f64>,
    /// Mean received frame size of the runs (octets), for Gbit/s.
    frame: f64,
}

impl Cell {
    fn fmt(&self, hz: f64) -> (String, f64) {
        if self.runs.is_empty() {
            return ("-".into(), f64::NAN);
        }
        let m = median(&self.runs);
        let mn = self.runs.iter().cloned().fold(f64::INFINITY, f64::min);
        let mx = self.runs.iter().cloned().fold(0.0, f64::max);
        let gbps =
            if self.frame > 0.0 { format!(" / {:.2} Gbit/s", m * 1e6 * self.frame * 8.0 / 1e9) } else { String::new() };
        (format!("{m:.3} [{mn:.2}-{mx:.2}] / {:.0}{gbps}", hz / (m * 1e6)), m)
    }
}

/// The last lines a script wrote, stdout then stderr (where the anchors'
/// scripts say what went wrong).
fn tail(out: &std::process::Output) -> String {
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let last = lines[lines.len().saturating_sub(12)..].join("\n");
    if last.is_empty() {
        format!("(no output; exit {})", out.status)
    } else {
        last
    }
}

/// Where ../shared/anchors/setup.sh builds ipsec-secgw (its `BUILD_ROOT`).
fn secgw_binary() -> std::path::PathBuf {
    let root = std::env::var_os("ANCHORS_BUILD").map(std::path::PathBuf::from).unwrap_or_else(|| {
        std::env::var_os("TMPDIR").map(std::path::PathBuf::from).unwrap_or_else(|| "/tmp".into()).join("anchors-build")
    });
    root.join("ipsec-secgw/build/ipsec-secgw")
}

/// ipsec-secgw is built by the anchors' setup.sh, which is idempotent: run
/// it when the binary is not there, rather than run the anchors without it
/// (they then print nothing useful).
fn build_anchors(shared: &Path) -> Result<(), String> {
    let bin = secgw_binary();
    if bin.exists() {
        return Ok(());
    }
    let setup = shared.join("anchors/setup.sh");
    eprintln!(
        "{} is not built: running {} (idempotent; installs Debian packages as root)",
        bin.display(),
        setup.display()
    );
    let out = Command::new("bash").arg(&setup).output().map_err(|e| format!("{}: {e}", setup.display()))?;
    if !out.status.success() || !bin.exists() {
        return Err(format!(
            "{} failed, so ipsec-secgw is not there to compare with:\n{}\nRun it by hand (as root: it installs              Debian packages), or pass --no-anchors for our figures alone",
            setup.display(),
            tail(&out)
        ));
    }
    Ok(())
}

fn dpdk_path(a: &EspArgs, shared: &Path, algs: &[Algorithm], hz: f64, report: &mut String) -> Result<(), String> {
    let anchors = Anchors::new(shared)?;
    let dataplane = match &a.dataplane {
        Some(p) => p.clone(),
        None => std::env::current_exe().map_err(|e| e.to_string())?.with_file_name("gw-dataplane"),
    };
    let work = tempfile::Builder::new().prefix("gw-bench-esp.").tempdir().map_err(|e| e.to_string())?;
    let w = Windows { warmup_s: a.warmup, interval_s: a.interval, count: a.windows };
    let secgw_script = shared.join("anchors/secgw-bench.sh");
    let run_anchors = !a.no_anchors && secgw_script.exists();
    if run_anchors {
        build_anchors(shared)?;
    }
    // (alg, size, dir) -> runs; secgw keyed by (algo name, mode, size, dir).
    let mut ours: std::collections::BTreeMap<(String, String, &str), Cell> = Default::default();
    let mut secgw: std::collections::BTreeMap<(String, String, String), Vec<f64>> = Default::default();
    let mut fwd: std::collections::BTreeMap<String, Vec<f64>> = Default::default();
    for r in 0..a.runs {
        for size in &a.sizes {
            let clear = frames_for(size)?;
            let clear_pcap = work.path().join(format!("clear-{size}.pcap"));
            dataplane::pcap::write_file(&clear_pcap, &clear).map_err(|e| e.to_string())?;
            for &alg in algs {
                let esp_pcap = work.path().join(format!("esp-{alg}-{size}.pcap"));
                if r == 0 {
                    dataplane::pcap::write_file(&esp_pcap, &esp_frames(alg, &clear)?).map_err(|e| e.to_string())?;
                }
                for dir in ["out", "in"] {
                    let prefix = format!("gw-bench-esp-{}", std::process::id());
                    let cfg = work.path().join("gw.toml");
                    std::fs::write(&cfg, gateway_config(alg, dir == "out", 0, &prefix, "0,1"))
                        .map_err(|e| e.to_string())?;
                    let input = if dir == "out" { &clear_pcap } else { &esp_pcap };
                    let mut c = Command::new("timeout");
                    c.args(["-k", "5", "-s", "INT", "120"]).arg(&dataplane);
                    c.args(["--config", cfg.to_str().unwrap_or_default(), "--stats-interval", "0"]);
                    c.args(["--port", &format!("src=net_pcap0,rx_pcap={},infinite_rx=1", input.display())]);
                    c.args(["--port", "sink=net_null0,no-rx=1"]);
                    let log = work.path().join("gw.log");
                    let s = anchors.sample(c, &prefix, w, 0, &log)?;
                    eprintln!(
                        "run {} {alg:>16} {size:>4} {dir:>3}: gw-dataplane {:7.3} Mpps drop_frac {:.4} rx {:.0} B",
                        r + 1,
                        s.tx_mpps,
                        s.drop_frac,
                        s.rx_bytes
                    );
                    ours.entry((alg.name().to_string(), size.clone(), dir))
                        .or_insert(Cell { runs: vec![], frame: s.rx_bytes })
                        .runs
                        .push(s.tx_mpps);
                }
            }
            if run_anchors && ["64", "1400", "imix"].contains(&size.as_str()) {
                for (algo, modes) in
                    [("gcm", "gcm:cpu-crypto gcm:lookaside"), ("cbc-sha1", "cbc-sha1:lookaside cbc-sha1:cpu-crypto")]
                {
                    let want = match algo {
                        "gcm" => algs.contains(&Algorithm::AesGcm128),
                        _ => algs.contains(&Algorithm::AesCbc128HmacSha1),
                    };
                    if !want {
                        continue;
                    }
                    let tsv = work.path().join("secgw.tsv");
                    let _ = std::fs::remove_file(&tsv);
                    let out = Command::new("bash")
                        .arg(&secgw_script)
                        .env("RUNS", "1")
                        .env("SIZES", size)
                        .env("CASES", modes)
                        .env("RESULTS", &tsv)
                        .env("WARMUP", a.warmup.to_string())
                        .env("INTERVAL", a.interval.to_string())
                        .env("WINDOWS", a.windows.to_string())
                        .output()
                        .map_err(|e| format!("secgw-bench.sh: {e}"))?;
                    let text = std::fs::read_to_string(&tsv).unwrap_or_default();
                    if text.is_empty() {
                        eprintln!("secgw-bench.sh ({algo}, {size}) gave no result:\n{}", tail(&out));
                    }
                    for line in text.lines() {
                        // secgw TIME algo mode size dir med min max cyc drop
                        let f: Vec<&str> = line.split('\t').collect();
                        if f.len() >= 7 {
                            if let Ok(m) = f[6].parse::<f64>() {
                                eprintln!("run {} ipsec-secgw {} {} {} {}: {m:.3} Mpps", r + 1, f[2], f[3], f[4], f[5]);
                                secgw
                                    .entry((f[2].to_string(), f[3].to_string(), format!("{}-{}", f[4], f[5])))
                                    .or_default()
                                    .push(m);
                            }
                        }
                    }
                }
                let tsv = work.path().join("fwd.tsv");
                let _ = std::fs::remove_file(&tsv);
                let _ = Command::new("bash")
                    .arg(shared.join("anchors/forward-floor.sh"))
                    .env("RUNS", "1")
                    .env("SIZES", size)
                    .env("FWD_MODES", "io")
                    .env("RESULTS", &tsv)
                    .output();
                for line in std::fs::read_to_string(&tsv).unwrap_or_default().lines() {
                    let f: Vec<&str> = line.split('\t').collect();
                    if f.len() >= 5 {
                        if let Ok(m) = f[4].parse::<f64>() {
                            fwd.entry(size.clone()).or_default().push(m);
                        }
                    }
                }
            }
        }
    }

    writeln!(report, "### DPDK path: one worker core, net_pcap(infinite_rx) -> net_null, one SA, replay window off\n")
        .ok();
    writeln!(
        report,
        "Mpps median [min-max] / cycles per packet (/ Gbit/s of received frames for ours), {} run(s) each, interleaved.\n",
        a.runs
    )
    .ok();
    writeln!(
        report,
        "| cipher | size | dir | gw-dataplane | ipsec-secgw best mode | mode | ours / secgw | testpmd io floor |"
    )
    .ok();
    writeln!(report, "|---|---|---|---|---|---|---|---|").ok();
    for &alg in algs {
        for size in &a.sizes {
            for dir in ["out", "in"] {
                let (o, om) = ours
                    .get(&(alg.name().to_string(), size.clone(), dir))
                    .map(|c| c.fmt(hz))
                    .unwrap_or(("-".into(), f64::NAN));
                let algo = match alg {
                    Algorithm::AesGcm128 => Some("gcm"),
                    Algorithm::AesCbc128HmacSha1 => Some("cbc-sha1"),
                    _ => None,
                };
                let best = algo.and_then(|algo| {
                    secgw
                        .iter()
                        .filter(|((al, _, sd), _)| al == algo && *sd == format!("{size}-{dir}"))
                        .map(|((_, mode, _), v)| (mode.clone(), Cell { runs: v.clone(), frame: 0.0 }))
                        .max_by(|x, y| median(&x.1.runs).total_cmp(&median(&y.1.runs)))
                });
                let (s, smode, ratio) = match &best {
                    Some((mode, c)) => {
                        let (t, m) = c.fmt(hz);
                        (t, mode.clone(), format!("{:.2}x", om / m))
                    }
                    None => ("-".into(), "-".into(), "-".into()),
                };
                let f = fwd.get(size).map(|v| Cell { runs: v.clone(), frame: 0.0 }.fmt(hz).0).unwrap_or("-".into());
                writeln!(report, "| {alg} | {size} | {dir} | {o} | {s} | {smode} | {ratio} | {f} |").ok();
            }
        }
    }
    writeln!(report).ok();
    Ok(())
}

/// Cycles per packet of `f` over `n` iterations (TSC from Instant).
fn cycles(hz: f64, n: usize, mut f: impl FnMut(usize)) -> f64 {
    for i in 0..n / 10 {
        f(i);
    }
    let t = Instant::now();
    for i in 0..n {
        f(i);
    }
    t.elapsed().as_secs_f64() * hz / n as f64
}

fn in_memory(a: &EspArgs, algs: &[Algorithm], hz: f64, report: &mut String) -> Result<(), String> {
    writeln!(report, "### In memory: the same pipeline over heap buffers, one core\n").ok();
    writeln!(report, "Cycles per packet (median of {} runs).\n", a.runs.max(1)).ok();
    writeln!(report, "| cipher | size | crypto alone (seal) | encrypt | decrypt, window off | anti-replay (window 1024) | encrypt, 1,000 SAs | decrypt, 1,000 SAs |").ok();
    writeln!(report, "|---|---|---|---|---|---|---|---|").ok();
    for &alg in algs {
        for size in &a.sizes {
            let clear = frames_for(size)?;
            let esp = esp_frames(alg, &clear)?;
            let med = |f: &mut dyn FnMut() -> f64| median(&(0..a.runs.max(1)).map(|_| f()).collect::<Vec<_>>());
            // Crypto alone: seal the ESP payload region of each packet.
            let cipher = {
                let (k, au) = keys(alg);
                let k = dataplane::tables::parse_hex(&k)?;
                let au = dataplane::tables::parse_hex(&au)?;
                dataplane::crypto::EspCipher::new(alg, &k, &au).map_err(|e| e.to_string())?
            };
            let mut esp_bufs: Vec<Vec<u8>> = esp.iter().map(|f| f[34..].to_vec()).collect();
            let crypto = med(&mut || {
                let nb = esp_bufs.len();
                cycles(hz, 200_000, |i| {
                    let b = &mut esp_bufs[i % nb];
                    cipher.seal(b, i as u64 + 1, false);
                })
            });
            let enc = |nsa: usize| -> Result<f64, String> {
                let mut w = worker_n(alg, true, 0, nsa)?;
                let frames: Vec<Vec<u8>> = (0..clear.len()).map(|i| retarget(&clear[i], i % nsa)).collect();
                let mut b = VecBuf::new(&frames[0]);
                Ok(med(&mut || {
                    cycles(hz, 200_000, |i| {
                        b.reset(&frames[i % frames.len()]);
                        std::hint::black_box(w.process(&mut b));
                    })
                }))
            };
            let dec = |nsa: usize| -> Result<f64, String> {
                // 1,024 ESP frames (spread over the SAs), replayed with the
                // window off, as on the DPDK path.
                let mut tx = worker_n(alg, true, 0, nsa)?;
                let frames: Vec<Vec<u8>> = (0..1024)
                    .map(|i| {
                        let mut b = VecBuf::new(&retarget(&clear[i % clear.len()], i % nsa));
                        tx.process(&mut b);
                        b.data().to_vec()
                    })
                    .collect();
                let mut w = worker_n(alg, false, 0, nsa)?;
                let mut b = VecBuf::new(&frames[0]);
                Ok(med(&mut || {
                    cycles(hz, 200_000, |i| {
                        b.reset(&frames[i % frames.len()]);
                        std::hint::black_box(w.process(&mut b));
                    })
                }))
            };
            // Anti-replay alone: check + accept of in-order numbers with a
            // 1,024-packet window (what decrypt adds when the window is on).
            let replay = med(&mut || {
                let mut rw = dataplane::replay::ReplayWindow::new(1024, false);
                cycles(hz, 2_000_000, |i| {
                    if let Ok(s) = rw.check((i as u32).wrapping_add(1)) {
                        rw.accept(s);
                    }
                })
            });
            writeln!(
                report,
                "| {alg} | {size} | {crypto:.0} | {:.0} | {:.0} | +{replay:.0} | {:.0} | {:.0} |",
                enc(1)?,
                dec(1)?,
                enc(1000)?,
                dec(1000)?
            )
            .ok();
        }
    }
    writeln!(report).ok();
    outer_ipv6(a, algs, hz, report)
}

/// The gateway config of the anchors' arrangement with IPv6 tunnel
/// endpoints (2001:db8:1::5 -> 2001:db8:2::5), raw ESP or NAT-T.
fn gateway_config6(alg: Algorithm, dir_out: bool, natt: bool) -> String {
    let text = gateway_config(alg, dir_out, 0, "x", "0,1")
        .replace("172.16.1.5/24", "2001:db8:1::5/64")
        .replace("172.16.2.5/24", "2001:db8:2::5/64")
        .replace("172.16.2.5/32", "2001:db8:2::5/128")
        .replace("172.16.1.5", "2001:db8:1::5")
        .replace("172.16.2.5", "2001:db8:2::5");
    text.replace("replay_window = 0\n", &format!("replay_window = 0\nnatt = {natt}\n"))
}

/// What the UDP checksum of ESP in UDP over IPv6 costs (RFC 8200 8.1
/// forbids sending it as zero; we compute it over the ciphertext after
/// sealing, and verify it on receipt before decrypting): IPv6 tunnels
/// with raw ESP beside the same with NAT-T, both directions.
fn outer_ipv6(a: &EspArgs, algs: &[Algorithm], hz: f64, report: &mut String) -> Result<(), String> {
    writeln!(
        report,
        "### IPv6 outer: raw ESP against ESP in UDP (whose UDP checksum is computed and checked)
"
    )
    .ok();
    writeln!(
        report,
        "Cycles per packet (median of {} runs), in memory, inner IPv4.
",
        a.runs.max(1)
    )
    .ok();
    writeln!(report, "| cipher | size | encrypt, ESP | encrypt, ESP in UDP | decrypt, ESP | decrypt, ESP in UDP |")
        .ok();
    writeln!(report, "|---|---|---|---|---|---|").ok();
    let worker = |text: &str| -> Result<Worker, String> {
        let cfg = Config::parse(text, "bench").map_err(|e| e.to_string())?;
        Ok(Worker::new(Arc::new(Tables::from_config(&cfg, "bench", &[]).map_err(|e| e.to_string())?)))
    };
    for &alg in algs {
        for size in &a.sizes {
            let clear = frames_for(size)?;
            let med = |f: &mut dyn FnMut() -> f64| median(&(0..a.runs.max(1)).map(|_| f()).collect::<Vec<_>>());
            let mut row = Vec::new();
            for out in [true, false] {
                for natt in [false, true] {
                    let mut tx = worker(&gateway_config6(alg, true, natt))?;
                    let frames: Vec<Vec<u8>> = if out {
                        clear.clone()
                    } else {
                        clear
                            .iter()
                            .map(|f| {
                                let mut b = VecBuf::new(f);
                                match tx.process(&mut b) {
                                    Verdict::Tx(_) => Ok(b.data().to_vec()),
                                    v => Err(format!("building IPv6 ESP input: {v:?}")),
                                }
                            })
                            .collect::<Result<_, _>>()?
                    };
                    let mut w = if out { tx } else { worker(&gateway_config6(alg, false, natt))? };
                    let mut b = VecBuf::new(&frames[0]);
                    b.reset(&frames[0]);
                    let v = w.process(&mut b);
                    if !matches!(v, Verdict::Tx(_)) {
                        return Err(format!("IPv6 outer, natt={natt}, out={out}: {v:?}"));
                    }
                    row.push(med(&mut || {
                        cycles(hz, 200_000, |i| {
                            b.reset(&frames[i % frames.len()]);
                            std::hint::black_box(w.process(&mut b));
                        })
                    }));
                }
            }
            writeln!(report, "| {alg} | {size} | {:.0} | {:.0} | {:.0} | {:.0} |", row[0], row[1], row[2], row[3]).ok();
        }
    }
    Ok(())
}

/// Moves a clear frame's destination into SA `k`'s prefix
/// (192.168.105.0/24 for SA 0; 10.k.0.0/24 style for the others).
fn retarget(frame: &[u8], k: usize) -> Vec<u8> {
    let mut f = frame.to_vec();
    if k > 0 {
        let dst = [10, (k >> 8) as u8, k as u8, 1];
        f[30..34].copy_from_slice(&dst);
        f[24..26].copy_from_slice(&[0, 0]);
        let c = dataplane::wire::checksum(&f[14..34], 0);
        f[24..26].copy_from_slice(&c.to_be_bytes());
    }
    f
}

/// An in-memory gateway with `n` SAs of one direction: SA 0 as in the
/// DPDK runs, SA k > 0 protecting 10.(k>>8).(k&255).0/24 from 172.16.1.5
/// to 172.16.2.5 with SPI 1000 + k.
fn worker_n(alg: Algorithm, out: bool, window: u32, n: usize) -> Result<Worker, String> {
    let mut text = gateway_config(alg, out, window, "x", "0,1");
    let (k, au) = keys(alg);
    for i in 1..n {
        let spi = SPI as usize + i;
        let (local, remote) = if out { ("172.16.1.5", "172.16.2.5") } else { ("172.16.2.5", "172.16.1.5") };
        write!(
            text,
            "[[sa]]\nspi = {spi}\ndirection = \"{}\"\nalg = \"{alg}\"\nkey = \"{k}\"\nauth_key = \"{au}\"\nlocal = \"{local}\"\nremote = \"{remote}\"\nreplay_window = {window}\n",
            if out { "out" } else { "in" }
        )
        .ok();
        if out {
            write!(text, "[[policy]]\ndst = \"10.{}.{}.0/24\"\naction = \"protect\"\nsa = {spi}\n", i >> 8, i & 255)
                .ok();
        }
    }
    let cfg = Config::parse(&text, "bench").map_err(|e| e.to_string())?;
    let t = Tables::from_config(&cfg, "bench", &[]).map_err(|e| e.to_string())?;
    Ok(Worker::new(Arc::new(t)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;

    /// secgw-bench.sh says what is wrong on stderr ("ipsec-secgw not
    /// built: run ./setup.sh"): what gw-bench prints has it.
    #[test]
    fn a_script_that_gave_nothing_is_shown_with_its_stderr() {
        let out = std::process::Output {
            status: std::process::ExitStatus::from_raw(1 << 8),
            stdout: Vec::new(),
            stderr: b"ipsec-secgw not built: run ./setup.sh\n".to_vec(),
        };
        assert_eq!(tail(&out), "ipsec-secgw not built: run ./setup.sh");
        let silent = std::process::Output { stderr: Vec::new(), ..out };
        assert!(tail(&silent).starts_with("(no output; exit"), "{}", tail(&silent));
        let many = std::process::Output {
            stdout: (0..30).map(|i| format!("line {i}\n")).collect::<String>().into_bytes(),
            ..silent
        };
        assert!(tail(&many).starts_with("line 18\n") && tail(&many).ends_with("line 29"));
    }

    #[test]
    fn the_anchors_build_where_their_setup_puts_it() {
        assert!(secgw_binary().ends_with("ipsec-secgw/build/ipsec-secgw"));
    }
}
