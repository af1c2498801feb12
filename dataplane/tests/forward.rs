//! gw-dataplane on real DPDK virtual devices: a pcap in, a pcap out,
//! byte-identical, both directions; two processes side by side; bad
//! configuration and bad EAL arguments end with a clear error.
//!
//! Needs root (DPDK's runtime directory under /var/run/dpdk).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

use dataplane::pcap;

/// The binary under test: this build's, or another build of it (the static
/// one, say) named by GW_DATAPLANE_BIN.
fn bin() -> String {
    std::env::var("GW_DATAPLANE_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_gw-dataplane").to_string())
}

fn prefix() -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!("gw-fwd-test-{}-{}", std::process::id(), N.fetch_add(1, Ordering::SeqCst))
}

/// Ethernet frames of varied sizes (60..=1514) and contents.
fn frames(n: usize, seed: u8) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| {
            let len = 60 + (i * 97 + seed as usize) % 1455;
            let mut f: Vec<u8> = (0..len).map(|k| (k as u8).wrapping_mul(seed).wrapping_add(i as u8)).collect();
            f[12] = 0x08; // EtherType IPv4, so nothing mistakes it for a control frame
            f[13] = 0x00;
            f
        })
        .collect()
}

struct Run {
    dir: tempfile::TempDir,
}

impl Run {
    fn new() -> Run {
        Run { dir: tempfile::tempdir().unwrap() }
    }
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
    fn write(&self, name: &str, pkts: &[Vec<u8>]) -> PathBuf {
        let p = self.path(name);
        pcap::write_file(&p, pkts).unwrap();
        p
    }
}

fn pcap_port(name: &str, idx: u32, rx: &Path, tx: &Path) -> String {
    format!("{name}=net_pcap{idx},rx_pcap={},tx_pcap={}", rx.display(), tx.display())
}

fn spawn(args: &[String], prefix: &str) -> Child {
    Command::new(bin())
        .args(args)
        .args(["--file-prefix", prefix, "--stats-interval", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start gw-dataplane")
}

fn finish(child: Child) -> String {
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "gw-dataplane failed: {:?}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
#[ignore = "runs the DPDK EAL (root): ./test.sh runs it with --include-ignored"]
fn pcap_in_pcap_out_byte_identical_both_ways() {
    let r = Run::new();
    let a_in = frames(700, 3);
    let b_in = frames(300, 11);
    let args = vec![
        "--port".into(),
        pcap_port("wan", 0, &r.write("a_in.pcap", &a_in), &r.path("a_out.pcap")),
        "--port".into(),
        pcap_port("lan", 1, &r.write("b_in.pcap", &b_in), &r.path("b_out.pcap")),
        "--exit-when-idle".into(),
        "500".into(),
    ];
    let p = prefix();
    let out = finish(spawn(&args, &p));
    assert_eq!(pcap::read_packets(&r.path("b_out.pcap")).unwrap(), a_in, "wan -> lan");
    assert_eq!(pcap::read_packets(&r.path("a_out.pcap")).unwrap(), b_in, "lan -> wan");
    assert!(out.contains("counters port=wan device=net_pcap0 ipackets=700 opackets=300"), "{out}");
    assert!(out.contains("counters worker=0 rx=1000 tx=1000 tx_full=0"), "{out}");
    assert!(!Path::new(&format!("/var/run/dpdk/{p}")).exists(), "runtime dir tidied");
}

#[test]
#[ignore = "runs the DPDK EAL (root): ./test.sh runs it with --include-ignored"]
fn two_processes_run_side_by_side() {
    let r = Run::new();
    let pkts = frames(2000, 5);
    let input = r.write("in.pcap", &pkts);
    let empty = r.write("empty.pcap", &[]);
    let args = |tag: &str, idle_ms: &str| -> Vec<String> {
        vec![
            "--port".into(),
            pcap_port("a", 0, &input, &r.path(&format!("{tag}_a.pcap"))),
            "--port".into(),
            pcap_port("b", 1, &empty, &r.path(&format!("{tag}_b.pcap"))),
            "--exit-when-idle".into(),
            idle_ms.into(),
        ]
    };
    // The first process stays up (idle) long enough for the second to start
    // and forward while it is still running.
    let mut first = spawn(&args("one", "4000"), &prefix());
    wait_for_banner(&mut first);
    let mut second = spawn(&args("two", "300"), &prefix());
    wait_for_banner(&mut second);
    assert!(first.try_wait().unwrap().is_none(), "first process still running while the second is up");
    finish(second);
    finish(first);
    for tag in ["one", "two"] {
        assert_eq!(pcap::read_packets(&r.path(&format!("{tag}_b.pcap"))).unwrap(), pkts, "{tag}");
    }
}

/// Reads stdout until the start-up banner, so we know the EAL is up.
fn wait_for_banner(child: &mut Child) {
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout);
    let mut line = String::new();
    loop {
        line.clear();
        assert!(lines.read_line(&mut line).unwrap() > 0, "gw-dataplane exited before its banner");
        if line.starts_with("gw-dataplane: ") {
            break;
        }
    }
    // Keep draining stdout in the background so the child never blocks.
    std::thread::spawn(move || {
        let mut sink = String::new();
        while lines.read_line(&mut sink).unwrap_or(0) > 0 {
            sink.clear();
        }
    });
}

fn run_expect_failure(args: &[&str]) -> (i32, String) {
    let out = Command::new(bin()).args(args).output().unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn bad_configuration_names_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("bad.toml");
    std::fs::write(
        &cfg,
        "[[port]]\nname = \"wan\"\ndevice = \"net_null0\"\n[[port]]\nname = \"wan\"\ndevice = \"net_null1\"\n",
    )
    .unwrap();
    let (code, err) = run_expect_failure(&["--config", cfg.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("bad.toml") && err.contains("port[1].name") && err.contains("used twice"), "{err}");

    std::fs::write(&cfg, "[eal]\nlcores = 1\n").unwrap();
    let (code, err) = run_expect_failure(&["--config", cfg.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(err.contains("lcores") && err.contains("line 2"), "{err}");

    let (code, err) = run_expect_failure(&["--port", "oops"]);
    assert_eq!(code, 2);
    assert!(err.contains("--port #1") && err.contains("NAME=DEVICE"), "{err}");
}

#[test]
#[ignore = "runs the DPDK EAL (root): ./test.sh runs it with --include-ignored"]
fn bad_eal_arguments_are_an_error_not_an_abort() {
    let p = prefix();
    let (code, err) = run_expect_failure(&[
        "--port",
        "a=net_null0",
        "--port",
        "b=net_null1",
        "--lcores",
        "0,4000",
        "--file-prefix",
        &p,
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("EAL init failed"), "{err}");
    let _ = std::fs::remove_dir_all(format!("/var/run/dpdk/{p}"));

    // Only a main lcore: refused with a reason, after a clean EAL start.
    let p = prefix();
    let (code, err) =
        run_expect_failure(&["--port", "a=net_null0", "--port", "b=net_null1", "--lcores", "0", "--file-prefix", &p]);
    assert_eq!(code, 1);
    assert!(err.contains("leaves no worker lcore"), "{err}");
    let _ = std::fs::remove_dir_all(format!("/var/run/dpdk/{p}"));
}

#[test]
#[ignore = "runs the DPDK EAL (root): ./test.sh runs it with --include-ignored"]
fn two_workers_each_own_a_queue_of_every_port() {
    // Three lcores, two of them workers sharing CPU 1 (EAL's lcore@cpu
    // syntax), each port with two queues: worker w forwards queue w.
    let r = Run::new();
    let q0 = frames(400, 7);
    let q1 = frames(250, 13);
    let (in0, in1) = (r.write("q0.pcap", &q0), r.write("q1.pcap", &q1));
    let empty = r.write("empty.pcap", &[]);
    let wan = format!(
        "wan=net_pcap0,rx_pcap={},rx_pcap={},tx_pcap={},tx_pcap={}",
        in0.display(),
        in1.display(),
        r.path("wan_tx0.pcap").display(),
        r.path("wan_tx1.pcap").display()
    );
    let lan = format!(
        "lan=net_pcap1,rx_pcap={},rx_pcap={},tx_pcap={},tx_pcap={}",
        empty.display(),
        empty.display(),
        r.path("lan_tx0.pcap").display(),
        r.path("lan_tx1.pcap").display()
    );
    let args: Vec<String> = ["--port", &wan, "--port", &lan, "--lcores", "0@0,1@1,2@1", "--exit-when-idle", "500"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let out = finish(spawn(&args, &prefix()));
    assert!(out.contains("2 worker lcore(s)"), "{out}");
    assert_eq!(pcap::read_packets(&r.path("lan_tx0.pcap")).unwrap(), q0);
    assert_eq!(pcap::read_packets(&r.path("lan_tx1.pcap")).unwrap(), q1);
    assert!(out.contains("counters worker=0 rx=400 tx=400"), "{out}");
    assert!(out.contains("counters worker=1 rx=250 tx=250"), "{out}");
}

/// Every shipped config passes `--check` (so the documented examples stay
/// true to the code).
#[test]
fn shipped_configs_check() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../configs");
    let mut n = 0;
    for dir in [root.to_string(), format!("{root}/lab"), format!("{root}/lab/mpsa")] {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            // controlplane*.toml belong to gw-controlplane and stubbank*.toml
            // to gw-stubbank (each checked by its own tests).
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            let ours = !name.starts_with("controlplane")
                && !name.starts_with("stubbank")
                && !name.ends_with(".controlplane.toml");
            if ours && p.extension().is_some_and(|x| x == "toml") {
                let out = Command::new(bin()).args(["--config", p.to_str().unwrap(), "--check"]).output().unwrap();
                assert!(out.status.success(), "{}: {}", p.display(), String::from_utf8_lossy(&out.stderr));
                n += 1;
            }
        }
    }
    assert!(n >= 7, "found {n} configs");
}
