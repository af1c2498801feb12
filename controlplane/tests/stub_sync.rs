//! Stub failover between real daemons (draft-xu-ike-sa-sync, distributed
//! mode): three `gw-controlplane` processes on kernel UDP in one network
//! namespace, a client (10.67.0.1), its gateway A (10.67.0.2) and standby
//! B (10.67.0.3), A and B syncing stubs over TCP, sealed under the cluster
//! key. B starts after the client is up on A and pulls A's stub; A is
//! killed; `gwctl failover` rebuilds the client's IKE SA on B by
//! IKE_SA_SYN (no IKE_AUTH at B). A standby with another cluster key
//! files nothing, and the client then gets the full exchange. The
//! gateways' connections are mutual TLS (a CA made here). Needs root.

mod common;

use common::wait_log;
use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

struct Lab {
    ns: String,
    procs: Vec<(String, Child)>,
}

impl Drop for Lab {
    fn drop(&mut self) {
        for (_, p) in &mut self.procs {
            let _ = p.kill();
            let _ = p.wait();
        }
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).status();
    }
}

impl Lab {
    fn start(&mut self, dir: &Path, name: &str, text: &str) {
        let cfg = dir.join(format!("{name}.toml"));
        std::fs::write(&cfg, text).unwrap();
        let log = std::fs::File::create(dir.join(format!("{name}.log"))).unwrap();
        let bin = env!("CARGO_BIN_EXE_gw-controlplane");
        let child = Command::new("ip")
            .args(["netns", "exec", &self.ns, bin, "--config", cfg.to_str().unwrap()])
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.procs.push((name.into(), child));
    }

    fn kill(&mut self, name: &str) {
        if let Some((_, p)) = self.procs.iter_mut().find(|(n, _)| n == name) {
            let _ = p.kill();
            let _ = p.wait();
        }
    }

    fn gwctl(&self, dir: &Path, name: &str, args: &[&str]) -> String {
        let out = Command::new(env!("CARGO_BIN_EXE_gwctl"))
            .arg("-s")
            .arg(dir.join(format!("{name}.sock")))
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
    }
}

const KEY: &str = "5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a";

fn daemon(dir: &Path, name: &str, addr: &str, extra: &str) -> String {
    format!(
        "[daemon]\ntransport = \"kernel\"\nlisten = [\"{addr}\"]\nadmin_socket = \"{}\"\nretransmit_base_ms = 300\n\
         retransmit_tries = 3\n{extra}",
        dir.join(format!("{name}.sock")).display()
    )
}

/// A CA and one certificate for the gateways (their three addresses as
/// IP subjectAltNames): the `[stubs.tls]` table.
fn pki(dir: &Path) -> String {
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let ca = ca.self_signed(&ca_key).unwrap();
    let k = rcgen::KeyPair::generate().unwrap();
    let names: Vec<String> = ["10.67.0.2", "10.67.0.3", "10.67.0.4"].map(String::from).to_vec();
    let c = rcgen::CertificateParams::new(names).unwrap().signed_by(&k, &ca, &ca_key).unwrap();
    std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
    std::fs::write(dir.join("gw.pem"), c.pem()).unwrap();
    std::fs::write(dir.join("gw.key"), k.serialize_pem()).unwrap();
    format!(
        "[stubs.tls]\ncert = {:?}\nkey = {:?}\nca = {:?}\n",
        dir.join("gw.pem"),
        dir.join("gw.key"),
        dir.join("ca.pem")
    )
}

fn gateway(dir: &Path, name: &str, addr: &str, key: &str, peer: &str, tls: &str) -> String {
    daemon(
        dir,
        name,
        addr,
        &format!(
            "[stubs]\ncluster_key = \"{key}\"\nlisten = \"{addr}:7500\"\npeers = [\"{peer}:7500\"]\n{tls}\
             [[connection]]\nname = \"clients\"\nrole = \"responder\"\nlocal = \"{addr}\"\nremote = \"%any\"\n\
             local_id = \"hub.lab\"\nremote_id = \"%any\"\npsk = \"stub-sync-lab-psk-0123\"\n\
             local_ts = [\"10.2.0.0/16\"]\nremote_ts = [\"10.1.0.0/16\"]\nstubs = true\n"
        ),
    )
}

#[test]
#[ignore = "needs root (a network namespace, UDP 500): ./test.sh runs it with --include-ignored"]
fn xu_3_4_distributed_stubs_let_the_standby_take_the_client_over() {
    let pid = std::process::id();
    let ns = format!("gwss{pid}");
    let mut lab = Lab { ns: ns.clone(), procs: Vec::new() };
    let ip = |args: &[&str]| assert!(Command::new("ip").args(args).status().unwrap().success(), "ip {args:?}");
    ip(&["netns", "add", &ns]);
    ip(&["-n", &ns, "link", "set", "lo", "up"]);
    for a in ["10.67.0.1", "10.67.0.2", "10.67.0.3", "10.67.0.4"] {
        ip(&["-n", &ns, "addr", "add", &format!("{a}/32"), "dev", "lo"]);
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let tls = pki(d);
    let client = daemon(
        d,
        "client",
        "10.67.0.1",
        "[[connection]]\nname = \"lab\"\nrole = \"initiator\"\nlocal = \"10.67.0.1\"\nremote = \"10.67.0.2\"\n\
         local_id = \"a.lab\"\nremote_id = \"hub.lab\"\npsk = \"stub-sync-lab-psk-0123\"\n\
         local_ts = [\"10.1.0.0/16\"]\nremote_ts = [\"10.2.0.0/16\"]\nstandby = [\"10.67.0.3\", \"10.67.0.4\"]\n",
    );
    lab.start(d, "a", &gateway(d, "a", "10.67.0.2", KEY, "10.67.0.3", &tls));
    lab.start(d, "client", &client);
    let log = |n: &str| d.join(format!("{n}.log"));
    let show = || {
        ["client", "a", "b", "c"]
            .iter()
            .map(|n| format!("{n}:\n{}", std::fs::read_to_string(log(n)).unwrap_or_default()))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert!(wait_log(&log("client"), "established with hub.lab", 10), "{}", show());
    assert!(wait_log(&log("a"), "stubs: made the stub of 10.67.0.2/", 5), "{}", show());
    // gwctl whose reader has gone (`gwctl config | grep -q ...`) ends with
    // success, not a panic on the broken pipe (scripts run with pipefail).
    let mut g = Command::new(env!("CARGO_BIN_EXE_gwctl"))
        .arg("-s")
        .arg(d.join("a.sock"))
        .arg("config")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(g.stdout.take());
    let out = g.wait_with_output().unwrap();
    assert!(out.status.success(), "gwctl into a closed pipe: {out:?}");
    // The standby joins later: it pulls A's stub (its Get), and A's own
    // push reaches it once it listens.
    lab.start(d, "b", &gateway(d, "b", "10.67.0.3", KEY, "10.67.0.2", &tls));
    assert!(wait_log(&log("b"), "stubs: filed the stub of 10.67.0.2/", 10), "{}", show());
    assert!(lab.gwctl(d, "b", &["stats"]).contains("stubs_held             1"), "{}", lab.gwctl(d, "b", &["stats"]));
    assert!(!show().contains("in clear"), "mutual TLS on: {}", show());
    // A dies; the client is moved to B by IKE_SA_SYN.
    lab.kill("a");
    let out = lab.gwctl(d, "client", &["failover", "lab"]);
    assert!(out.contains("rebuilding"), "{out}");
    assert!(wait_log(&log("b"), "rebuilt with a.lab at 10.67.0.1", 10), "{}", show());
    assert!(wait_log(&log("client"), "rebuilt with hub.lab at 10.67.0.3", 5), "{}", show());
    let installed = || std::fs::read_to_string(log("client")).unwrap_or_default().matches(" installed").count();
    let end = Instant::now() + Duration::from_secs(5);
    while installed() < 2 && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(installed(), 2, "the child SA made again on B: {}", show());
    let listed = lab.gwctl(d, "b", &["list"]);
    assert!(listed.contains("Established") && listed.contains("child"), "{listed}");
    assert!(!std::fs::read_to_string(log("b")).unwrap().contains("established with a.lab"), "no IKE_AUTH at B");
    // A standby of another cluster (another key): the sealed stubs do not
    // open there, nothing is filed, and the client gets the full exchange.
    let other = "a5".repeat(32);
    lab.start(d, "c", &gateway(d, "c", "10.67.0.4", &other, "10.67.0.3", &tls));
    assert!(wait_log(&log("c"), "does not open with the cluster key", 10), "{}", show());
    assert!(lab.gwctl(d, "c", &["stats"]).contains("stubs_held             0"));
    lab.kill("b");
    let out = lab.gwctl(d, "client", &["failover", "lab"]);
    assert!(out.contains("rebuilding"), "{out}");
    assert!(wait_log(&log("c"), "established with a.lab", 10), "full exchange at C: {}", show());
}
