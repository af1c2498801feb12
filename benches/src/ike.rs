//! `gw-bench ike`: IKE SAs per second established by a responder
//! (IKE_SA_INIT + IKE_AUTH with one child SA, X25519, PSK), ours beside
//! strongSwan's under the same initiator load, and the ceiling the crypto
//! alone sets (two X25519 scalar multiplications per SA), all in one run.
//!
//! The initiator is strongSwan's load-tester plugin (built by
//! ../shared/interop/build-extra-plugins.sh) on CPU 0; the responder under
//! test runs alone on CPU 1. On two cores the initiator saturates first,
//! so the figure that compares responders is their CPU time per SA (every
//! thread of the process, from /proc/PID/task/*/schedstat, nanoseconds)
//! and its inverse, SAs per responder-core-second. Each SA is deleted
//! right after it is up (load-tester's delete_after_established), so both
//! responders also answer one INFORMATIONAL per SA.
//!
//! Also reported: the appliance path (gw-dataplane on net_af_packet
//! punting IKE to gw-controlplane over the rings; see [`appliance`]) and
//! the same exchanges between two in-memory engines, the responder's CPU
//! per SA with no sockets at all.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use controlplane::codepoints::DhGroup;
use controlplane::crypto::{dh, SystemRandom};

#[derive(Debug, clap::Args)]
pub struct IkeArgs {
    /// IKE SAs per measurement.
    #[arg(long, default_value_t = 3000)]
    pub count: u32,
    /// Measurements per responder (interleaved: ours, strongSwan's, ...).
    #[arg(long, default_value_t = 2)]
    pub runs: u32,
    /// Skip the strongSwan runs (no interop packages or plugin here).
    #[arg(long)]
    pub no_strongswan: bool,
    /// IKE SAs kept up in the in-memory run that measures how the
    /// responder's cost grows with the number of peers (0: skip).
    #[arg(long, default_value_t = 50_000)]
    pub established: u32,
    /// Skip the appliance path (gw-dataplane + gw-controlplane over the rings).
    #[arg(long)]
    pub no_appliance: bool,
    /// Write the report as Markdown here too.
    #[arg(long)]
    pub markdown: Option<PathBuf>,
}

const PSK: &str = "bench-psk-0123456789";

fn pin(cpu: usize) {
    core_affinity::set_for_current(core_affinity::CoreId { id: cpu });
}

/// X25519 key pairs made and agreed per second on one core: the ceiling
/// of a responder that does nothing but its two scalar multiplications.
fn x25519_ceiling() -> f64 {
    pin(1);
    let mut rng = SystemRandom::default();
    let (_, peer) = dh::generate(DhGroup::Curve25519, &mut rng).expect("x25519");
    let mut n = 0u64;
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(2) {
        for _ in 0..100 {
            let (k, _) = dh::generate(DhGroup::Curve25519, &mut rng).expect("x25519");
            let _ = dh::agree(k, &peer).expect("agree");
        }
        n += 100;
    }
    n as f64 / t.elapsed().as_secs_f64()
}

/// Our responder's CPU per SA with two in-memory engines (no I/O): the
/// time spent inside the responder's handle_datagram calls. With `keep`
/// every SA stays up, so the last ones are set up beside `count - 1`
/// others: what a responder with many peers pays.
fn in_memory(count: u32, keep: bool, certs: Option<&CertFiles>) -> f64 {
    use controlplane::ike::config::ConnectionToml;
    use controlplane::ike::{Engine, Output, Settings};
    pin(1);
    let conn = |role: &str, local: &str, remote: &str, lid: &str, rid: &str, lts: &str, rts: &str| {
        let auth = match certs {
            None => String::new(),
            Some(c) => {
                let (cert, key) =
                    if role == "responder" { (&c.responder, &c.responder_key) } else { (&c.client, &c.client_key) };
                format!(
                    "auth = \"pubkey\"\ncert = \"{}\"\nkey = \"{}\"\ncas = [\"{}\"]\n",
                    cert.display(),
                    key.display(),
                    c.ca.display()
                )
            }
        };
        let t = format!(
            "name = \"lab\"\nrole = \"{role}\"\nlocal = \"{local}\"\nremote = \"{remote}\"\nlocal_id = \"{lid}\"\n\
             remote_id = \"{rid}\"\npsk = \"{PSK}\"\nlocal_ts = [\"{lts}\"]\nremote_ts = [\"{rts}\"]\n{auth}"
        );
        toml::from_str::<ConnectionToml>(&t).expect("toml").build().expect("conn")
    };
    let unix = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let settings = Settings { cookie_threshold: usize::MAX, ..Settings::default() };
    let mut r = Engine::new(
        vec![conn("responder", "10.0.0.2", "%any", "right.lab", "%any", "10.2.0.0/16", "10.1.0.0/16")],
        settings.clone(),
        Box::new(SystemRandom::default()),
    );
    let mut spent = Duration::ZERO;
    let now = Instant::now();
    r.set_unix_time(now, unix);
    for n in 0..count {
        // One identity per client, as the load-tester's lt-%d.lab: with one
        // identity for all, each new IKE SA's INITIAL_CONTACT would tell the
        // responder to drop the others (RFC 7296 2.4).
        let id = format!("c{n}.bench.lab");
        let mut i = Engine::new(
            vec![conn("initiator", "10.0.0.1", "10.0.0.2", &id, "right.lab", "10.1.0.0/16", "10.2.0.0/16")],
            settings.clone(),
            Box::new(SystemRandom::default()),
        );
        i.set_unix_time(now, unix);
        i.initiate(now, "lab").expect("initiate");
        let mut to_r: Vec<(std::net::SocketAddr, std::net::SocketAddr, Vec<u8>)> = Vec::new();
        loop {
            while let Some(o) = i.poll_output() {
                if let Output::Send { local, remote, data } = o {
                    to_r.push((remote, local, data));
                }
            }
            if to_r.is_empty() {
                break;
            }
            for (local, remote, data) in to_r.drain(..) {
                let t = Instant::now();
                r.handle_datagram(now, local, remote, &data);
                let mut back = Vec::new();
                while let Some(o) = r.poll_output() {
                    if let Output::Send { local, remote, data } = o {
                        back.push((local, remote, data));
                    }
                }
                spent += t.elapsed();
                for (l, rm, d) in back {
                    i.handle_datagram(now, rm, l, &d);
                }
            }
        }
        if keep {
            continue;
        }
        // Delete it again, as the load-tester does.
        i.terminate(now, "lab").expect("terminate");
        while let Some(o) = i.poll_output() {
            if let Output::Send { local, remote, data } = o {
                let t = Instant::now();
                r.handle_datagram(now, remote, local, &data);
                while r.poll_output().is_some() {}
                spent += t.elapsed();
            }
        }
    }
    let up = if keep { count as usize } else { 0 };
    assert_eq!(r.ike_sas().count(), up, "every SA was set up (and deleted unless kept)");
    spent.as_secs_f64() / count as f64
}

/// ECDSA P-256 certificates for the in-memory run with certificates, made
/// by strongSwan's `pki`: a CA, the responder's (right.lab) and one for
/// every client (`*.bench.lab`: each client has its own identity).
struct CertFiles {
    ca: PathBuf,
    responder: PathBuf,
    responder_key: PathBuf,
    client: PathBuf,
    client_key: PathBuf,
}

fn make_certs(dir: &Path) -> Result<CertFiles, String> {
    let pki = |args: &[&str], out: &Path, input: Option<&Path>| -> Result<(), String> {
        let mut c = Command::new("pki");
        c.args(args).stderr(Stdio::null());
        if let Some(i) = input {
            c.stdin(std::fs::File::open(i).map_err(|e| e.to_string())?);
        }
        let o = c.output().map_err(|e| format!("pki (Debian strongswan-pki): {e}"))?;
        if !o.status.success() {
            return Err(format!("pki {}: failed", args.join(" ")));
        }
        std::fs::write(out, o.stdout).map_err(|e| e.to_string())
    };
    let p = |n: &str| dir.join(n);
    let s = |q: &Path| q.display().to_string();
    let gen = ["--gen", "--type", "ecdsa", "--size", "256", "--outform", "pem"];
    pki(&gen, &p("ca.key"), None)?;
    let dn = "C=CH, O=Bench, CN=Bench CA";
    pki(
        &["--self", "--ca", "--in", &s(&p("ca.key")), "--type", "ecdsa", "--dn", dn, "--outform", "pem"],
        &p("ca.pem"),
        None,
    )?;
    for (name, san) in [("responder", "right.lab"), ("client", "*.bench.lab")] {
        let key = p(&format!("{name}.key"));
        pki(&gen, &key, None)?;
        let public = p(&format!("{name}.pub"));
        pki(&["--pub", "--in", &s(&key), "--type", "ecdsa"], &public, None)?;
        let dn = format!("C=CH, O=Bench, CN={san}");
        let args = [
            "--issue",
            "--cacert",
            &s(&p("ca.pem")),
            "--cakey",
            &s(&p("ca.key")),
            "--dn",
            &dn,
            "--san",
            san,
            "--outform",
            "pem",
        ];
        pki(&args, &p(&format!("{name}.pem")), Some(&public))?;
    }
    Ok(CertFiles {
        ca: p("ca.pem"),
        responder: p("responder.pem"),
        responder_key: p("responder.key"),
        client: p("client.pem"),
        client_key: p("client.key"),
    })
}

/// CPU time of every thread of `pid`, from schedstat (nanoseconds).
fn cpu_ns(pid: u32) -> u64 {
    let Ok(rd) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return 0 };
    rd.flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next().and_then(|v| v.parse::<u64>().ok()))
        .sum()
}

struct Lab {
    iop: PathBuf,
    prefix: String,
    run_dir: PathBuf,
}

impl Lab {
    fn sh(&self, args: &[&str]) -> Result<String, String> {
        let o = Command::new(args[0])
            .args(&args[1..])
            .env("SSLAB_RUN_DIR", &self.run_dir)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("{}: {e}", args[0]))?;
        let out = String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr);
        if o.status.success() {
            Ok(out)
        } else {
            Err(format!("{} failed: {out}", args.join(" ")))
        }
    }

    fn peer(&self) -> String {
        self.iop.join("strongswan-peer.sh").display().to_string()
    }

    fn ns(&self, node: &str) -> String {
        format!("{}-{node}", self.prefix)
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = self.sh(&[&self.peer(), "stop-all", "--purge"]);
        let lab = self.iop.join("netns-lab.sh").display().to_string();
        let _ = self.sh(&[&lab, "--prefix", &self.prefix, "down"]);
        let _ = std::fs::remove_dir_all(&self.run_dir);
    }
}

struct Killer(Child);
impl Drop for Killer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the load-tester initiator on CPU 0 in node a.
fn start_initiator(lab: &Lab) -> Result<(), String> {
    let lt = [
        "initiator=10.77.0.1",
        "responder=10.77.0.2",
        "initiator_auth=psk",
        "responder_auth=psk",
        &format!("preshared_key={PSK}"),
        "initiator_id=lt-%d.lab",
        "responder_id=right.lab",
        "proposal=aes128gcm16-prfsha256-x25519",
        "esp=aes128gcm16",
        "initiator_tsi=10.77.1.0/24",
        "initiator_tsr=10.77.2.0/24",
        "delete_after_established=yes",
        "fake_kernel=yes",
        "version=2",
    ];
    let peer = lab.peer();
    let na = lab.ns("a");
    let mut args = vec![
        "taskset",
        "-c",
        "0",
        &peer,
        "start",
        "lt",
        "--netns",
        &na,
        "--local",
        "10.77.0.1",
        "--remote",
        "10.77.0.2",
        "--psk",
        PSK,
        "--local-ts",
        "10.77.1.0/24",
        "--remote-ts",
        "10.77.2.0/24",
        "--log-level",
        "0",
        "--charon-opt",
        "retransmit_timeout=2",
        "--charon-opt",
        "init_limit_half_open=100000",
    ];
    for kv in &lt {
        args.push("--load-tester");
        args.push(kv);
    }
    lab.sh(&args).map(|_| ())
}

/// One load-test of `count` SAs against the responder made of `pids`:
/// (wall SAs/s, responder CPU seconds per SA, the load-tester's line).
/// The CPU per SA comes per process, in the order of `pids`; `idle` (CPU
/// seconds per second each spends with no load) is taken off first: see
/// [`appliance`].
fn load(lab: &Lab, pids: &[u32], count: u32, idle: &[f64]) -> Result<(f64, Vec<f64>, String), String> {
    let cpu = || pids.iter().map(|p| cpu_ns(*p)).collect::<Vec<u64>>();
    let c0 = cpu();
    let t = Instant::now();
    let out = lab.sh(&[&lab.peer(), "load-test", "lt", &count.to_string(), "0"]);
    let wall = t.elapsed().as_secs_f64();
    let c1 = cpu();
    let out = out.unwrap_or_else(|e| e);
    let line = out.lines().find(|l| l.starts_with("load-test:")).unwrap_or("").to_string();
    let ok: f64 = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("established="))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    // Lost datagrams cost retransmissions, never an SA.
    if ok < count as f64 {
        return Err(format!("only {ok} of {count} SAs came up: {line}"));
    }
    let per_sa = (0..pids.len())
        .map(|i| ((c1[i] - c0[i]) as f64 / 1e9 - idle.get(i).copied().unwrap_or(0.0) * wall).max(0.0) / ok)
        .collect();
    Ok((ok / wall, per_sa, line))
}

/// Our responder's config: `transport` lines, then the load-tester's
/// connection (any initiator, PSK, no liveness checks).
fn cp_config(lab: &Lab, transport: &str) -> Result<PathBuf, String> {
    let cfg = lab.run_dir.join("cp.toml");
    std::fs::write(
        &cfg,
        format!(
            "[daemon]\n{transport}admin_socket = \"{}\"\n\
             cookie_threshold = 1000000\n\n[[connection]]\nname = \"lt\"\nlocal = \"10.77.0.2\"\n\
             local_id = \"right.lab\"\npsk = \"{PSK}\"\nlocal_ts = [\"10.77.2.0/24\"]\n\
             remote_ts = [\"10.77.1.0/24\"]\ndpd_secs = 0\n",
            lab.run_dir.join("cp.sock").display()
        ),
    )
    .map_err(|e| e.to_string())?;
    Ok(cfg)
}

/// Starts `bin --config cfg` on CPU 1 in node b, its output (stdout and
/// stderr) to `log` if given. taskset execs ip, which execs the program:
/// the child's PID is the program's.
fn spawn_on_cpu1(lab: &Lab, bin: &Path, cfg: &Path, log: Option<&Path>) -> Result<Killer, String> {
    let (out, err) = match log {
        Some(p) => {
            let f = std::fs::File::create(p).map_err(|e| format!("{}: {e}", p.display()))?;
            let g = f.try_clone().map_err(|e| e.to_string())?;
            (Stdio::from(f), Stdio::from(g))
        }
        None => (Stdio::null(), Stdio::null()),
    };
    let child = Command::new("taskset")
        .args(["-c", "1", "ip", "netns", "exec", &lab.ns("b")])
        .arg(bin)
        .arg("--config")
        .arg(cfg)
        .stdout(out)
        .stderr(err)
        .spawn()
        .map_err(|e| format!("{}: {e}", bin.display()))?;
    Ok(Killer(child))
}

fn ours(lab: &Lab, bin: &Path, count: u32) -> Result<(f64, f64, String), String> {
    let cfg = cp_config(lab, "transport = \"kernel\"\nlisten = [\"10.77.0.2\"]\n")?;
    let k = spawn_on_cpu1(lab, bin, &cfg, None)?;
    std::thread::sleep(Duration::from_millis(500));
    let r = load(lab, &[k.0.id()], count, &[]);
    drop(k);
    r.map(|(w, c, l)| (w, c[0], l))
}

/// One load-test of the appliance path: CPU per SA of each process.
struct ApplianceRun {
    /// gw-controlplane's and gw-dataplane's CPU seconds per SA.
    cp: f64,
    dp: f64,
    /// Both processes' CPU with no load, seconds per second.
    idle: f64,
    line: String,
}

/// The appliance's own path: gw-dataplane on node b's wan0 (net_af_packet,
/// both lcores on CPU 1) owns 10.77.0.2 and punts IKE to gw-controlplane
/// (transport "dataplane", CPU 1) over the shared-memory rings; answers go
/// back down the command ring. Child SAs are installed in the dataplane
/// for real. The CPU per SA is each process's, less what it spends with
/// no load at all (the dataplane's idle back-off wakes its lcores up to
/// 1,000 times a second, the control plane's ring reader up to 1,000),
/// measured over 2 s first: the figures are what an SA adds.
fn appliance(lab: &Lab, cp_bin: &Path, dp_bin: &Path, count: u32) -> Result<ApplianceRun, String> {
    let (na, nb) = (lab.ns("a"), lab.ns("b"));
    // The dataplane owns 10.77.0.2: node b's kernel must not answer, and
    // the initiator's veth must fill in UDP checksums (interop NOTES.md).
    lab.sh(&["ip", "-n", &nb, "addr", "flush", "dev", "wan0"])?;
    lab.sh(&["ip", "netns", "exec", &na, "ethtool", "-K", "wan0", "tx", "off"])?;
    // The rings live in shared memory, as in /run/gw on an appliance: on
    // a disk file system every page the rings dirty is written back.
    let run = Path::new("/dev/shm").join(format!("{}-rings", lab.prefix));
    let _ = std::fs::remove_dir_all(&run);
    std::fs::create_dir_all(&run).map_err(|e| e.to_string())?;
    let dp_cfg = lab.run_dir.join("dp.toml");
    std::fs::write(
        &dp_cfg,
        format!(
            "mode = \"gateway\"\n[eal]\nlcores = \"0@1,1@1\"\nfile_prefix = \"{}-dp\"\nmemory_mb = 256\n\
             [mempool]\nmbufs = 8191\n[[port]]\nname = \"wan\"\n\
             device = \"net_af_packet0,iface=wan0,qpairs=2\"\naddresses = [\"10.77.0.2/24\"]\n\
             [control]\ndir = \"{}\"\nwait_for_sync = true\n",
            lab.prefix,
            run.display()
        ),
    )
    .map_err(|e| e.to_string())?;
    let cp_cfg = cp_config(lab, &format!("transport = \"dataplane\"\ncontrol_dir = \"{}\"\n", run.display()))?;
    let dp_log = lab.run_dir.join("dp.log");
    let result = (|| {
        let dp = spawn_on_cpu1(lab, dp_bin, &dp_cfg, Some(&dp_log))?;
        let cp = spawn_on_cpu1(lab, cp_bin, &cp_cfg, None)?;
        let pids = [dp.0.id(), cp.0.id()];
        // Up when the dataplane reports the control plane's sync.
        let t = Instant::now();
        while !std::fs::read_to_string(&dp_log).unwrap_or_default().contains("worker lcore") {
            if t.elapsed() > Duration::from_secs(20) {
                return Err(format!(
                    "gw-dataplane did not come up: {}",
                    std::fs::read_to_string(&dp_log).unwrap_or_default()
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        std::thread::sleep(Duration::from_millis(500));
        let c0: Vec<u64> = pids.iter().map(|p| cpu_ns(*p)).collect();
        let t = Instant::now();
        std::thread::sleep(Duration::from_secs(2));
        let secs = t.elapsed().as_secs_f64();
        let idle: Vec<f64> = pids.iter().zip(&c0).map(|(p, c)| (cpu_ns(*p) - c) as f64 / 1e9 / secs).collect();
        let (_, c, line) = load(lab, &pids, count, &idle)?;
        drop((cp, dp));
        Ok(ApplianceRun { cp: c[1], dp: c[0], idle: idle.iter().sum(), line })
    })();
    let _ = std::fs::remove_dir_all(&run);
    // The dataplane's DPDK runtime directory (its file prefix) goes too.
    let _ = std::fs::remove_dir_all(format!("/var/run/dpdk/{}-dp", lab.prefix));
    lab.sh(&["ip", "-n", &nb, "addr", "add", "10.77.0.2/24", "dev", "wan0"])?;
    result
}

fn strongswan(lab: &Lab, count: u32) -> Result<(f64, f64, String), String> {
    let peer = lab.peer();
    let nb = lab.ns("b");
    lab.sh(&[
        "taskset",
        "-c",
        "1",
        &peer,
        "start",
        "ssr",
        "--netns",
        &nb,
        "--local",
        "10.77.0.2",
        "--local-id",
        "right.lab",
        "--psk",
        PSK,
        "--local-ts",
        "10.77.2.0/24",
        "--remote-ts",
        "10.77.1.0/24",
        "--log-level",
        "-1",
        "--esp-proposals",
        "aes128gcm16",
        "--charon-opt",
        "block_threshold=100000",
        "--charon-opt",
        "cookie_threshold=100000",
        "--charon-opt",
        "cookie_threshold_ip=100000",
    ])?;
    let paths = lab.sh(&[&peer, "paths", "ssr"])?;
    let pid: u32 = paths
        .lines()
        .find_map(|l| l.strip_prefix("PID=").map(|v| v.trim_matches(|c| c == '"' || c == '\'').to_string()))
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| format!("no PID in: {paths}"))?;
    let r = load(lab, &[pid], count, &[]).map(|(w, c, l)| (w, c[0], l));
    let _ = lab.sh(&[&peer, "stop", "ssr"]);
    r
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

pub fn run(a: &IkeArgs, shared: Option<&Path>) -> Result<(), String> {
    let bin = std::env::current_exe().map_err(|e| e.to_string())?.with_file_name("gw-controlplane");
    if !bin.exists() {
        return Err(format!("{} missing: cargo build --release -p controlplane", bin.display()));
    }
    let dp_bin = bin.with_file_name("gw-dataplane");
    if !a.no_appliance && !dp_bin.exists() {
        return Err(format!("{} missing: cargo build --release -p dataplane (or --no-appliance)", dp_bin.display()));
    }
    println!("ike: X25519 ceiling (2 scalar multiplications per SA, one core) ...");
    let x = x25519_ceiling();
    println!("ike: in-memory responder ({} SAs) ...", a.count.min(2000));
    let mem = in_memory(a.count.min(2000), false, None);
    let cert_dir = std::env::temp_dir().join(format!("gw-bench-ike-certs-{}", std::process::id()));
    std::fs::create_dir_all(&cert_dir).map_err(|e| e.to_string())?;
    let mem_certs = match make_certs(&cert_dir) {
        Ok(c) => {
            println!("ike: in-memory responder with ECDSA P-256 certificates ({} SAs) ...", a.count.min(2000));
            let m = in_memory(a.count.min(2000), false, Some(&c));
            println!("ike: in memory, {:.3} ms CPU per SA with certificates, {:.3} ms with PSK", m * 1e3, mem * 1e3);
            Some(m)
        }
        Err(e) => {
            println!("ike: no run with certificates: {e}");
            None
        }
    };
    let _ = std::fs::remove_dir_all(&cert_dir);
    println!("ike: in-memory responder keeping {} SAs up ...", a.established);
    let mem_kept = if a.established > 0 { in_memory(a.established, true, None) } else { f64::NAN };
    let mut our_cpu = Vec::new();
    let mut our_wall = Vec::new();
    let mut app_cpu = Vec::new();
    let mut app_idle = Vec::new();
    let mut app_cp = Vec::new();
    let mut ss_cpu = Vec::new();
    let mut ss_wall = Vec::new();
    let mut lines = Vec::new();
    {
        let shared = shared.ok_or("the shared folder (../shared) is needed for the strongSwan lab")?;
        let iop = shared.join("interop");
        let run_dir = std::env::temp_dir().join(format!("gw-bench-ike-{}", std::process::id()));
        std::fs::create_dir_all(&run_dir).map_err(|e| e.to_string())?;
        let lab = Lab { iop: iop.clone(), prefix: format!("gwb{}", std::process::id() % 100000), run_dir };
        let netns = iop.join("netns-lab.sh").display().to_string();
        lab.sh(&[&netns, "--prefix", &lab.prefix, "up"])?;
        start_initiator(&lab)?;
        for r in 0..a.runs {
            println!("ike: run {}: our responder, {} SAs ...", r + 1, a.count);
            let (w, c, l) = ours(&lab, &bin, a.count)?;
            lines.push(format!("ours run {}: {:.3} ms CPU/SA | {l}", r + 1, c * 1e3));
            our_wall.push(w);
            our_cpu.push(c);
            if !a.no_appliance {
                println!(
                    "ike: run {}: our appliance path (gw-dataplane + gw-controlplane), {} SAs ...",
                    r + 1,
                    a.count
                );
                let ar = appliance(&lab, &bin, &dp_bin, a.count)?;
                lines.push(format!(
                    "appliance run {}: {:.3} ms CPU/SA above idle (gw-controlplane {:.3}, gw-dataplane {:.3}; \
                     idle {:.1}% of a core) | {}",
                    r + 1,
                    (ar.cp + ar.dp) * 1e3,
                    ar.cp * 1e3,
                    ar.dp * 1e3,
                    ar.idle * 100.0,
                    ar.line
                ));
                app_cpu.push(ar.cp + ar.dp);
                app_cp.push(ar.cp);
                app_idle.push(ar.idle);
            }
            if !a.no_strongswan {
                println!("ike: run {}: strongSwan responder, {} SAs ...", r + 1, a.count);
                let (w, c, l) = strongswan(&lab, a.count)?;
                lines.push(format!(
                    "strongSwan run {}: {:.3} ms CPU/SA ({:.1}x ours) | {l}",
                    r + 1,
                    c * 1e3,
                    c / our_cpu.last().copied().unwrap_or(f64::NAN)
                ));
                ss_wall.push(w);
                ss_cpu.push(c);
            }
        }
    }
    let oc = median(&mut our_cpu);
    let ow = median(&mut our_wall);
    let mut t = String::new();
    t.push_str("| responder | CPU per SA | SAs per responder-core-second | wall-clock SAs/s (initiator-bound) |\n");
    t.push_str("|---|---:|---:|---:|\n");
    t.push_str(&format!("| gw-controlplane (kernel UDP) | {:.3} ms | {:.0} | {:.0} |\n", oc * 1e3, 1.0 / oc, ow));
    if !app_cpu.is_empty() {
        let ac = median(&mut app_cpu);
        let acp = median(&mut app_cp);
        t.push_str(&format!(
            "| appliance path: gw-dataplane (net_af_packet) + gw-controlplane over the rings, CPU above idle \
             (idle: {:.1}% of a core) | {:.3} ms | {:.0} | |\n",
            median(&mut app_idle) * 100.0,
            ac * 1e3,
            1.0 / ac
        ));
        t.push_str(&format!("| of which gw-controlplane | {:.3} ms | {:.0} | |\n", acp * 1e3, 1.0 / acp));
    }
    if !ss_cpu.is_empty() {
        let sc = median(&mut ss_cpu);
        let sw = median(&mut ss_wall);
        t.push_str(&format!("| strongSwan 5.9.8 charon | {:.3} ms | {:.0} | {:.0} |\n", sc * 1e3, 1.0 / sc, sw));
        t.push_str(&format!("| ratio ours / strongSwan | | **{:.1}x** | |\n", sc / oc));
    }
    t.push_str(&format!("| gw-controlplane engine in memory (no I/O) | {:.3} ms | {:.0} | |\n", mem * 1e3, 1.0 / mem));
    if let Some(m) = mem_certs {
        t.push_str(&format!(
            "| the same with ECDSA P-256 certificates both ways (RFC 7427; chain, CERT, CERTREQ) | {:.3} ms | {:.0} | |\n",
            m * 1e3,
            1.0 / m
        ));
    }
    if a.established > 0 {
        t.push_str(&format!(
            "| the same, all {} IKE SAs kept up | {:.3} ms | {:.0} | |\n",
            a.established,
            mem_kept * 1e3,
            1.0 / mem_kept
        ));
    }
    t.push_str(&format!("| crypto ceiling: X25519 pairs (2 scalar mults) | {:.3} ms | {:.0} | |\n", 1e3 / x, x));
    println!("\n{t}");
    println!("ours at {:.0}% of the crypto ceiling", 100.0 / oc / x);
    for l in &lines {
        println!("  {l}");
    }
    if let Some(p) = &a.markdown {
        let mut md = format!(
            "# IKE SA setup rate\n\nMeasured {} with `gw-bench ike --count {} --runs {} --established {}`: responder on CPU 1 \
             alone, strongSwan load-tester initiator (aes128gcm16-prfsha256-x25519, PSK, one child SA, delete \
             after established, fake kernel) on CPU 0. CPU per SA = the responder process's CPU time (all \
             threads, schedstat) over SAs established; medians of the runs.\n\n",
            date(),
            a.count,
            a.runs,
            a.established
        );
        md.push_str(&t);
        md.push_str(&format!("\nours at {:.0}% of the crypto ceiling\n\n```\n", 100.0 / oc / x));
        for l in &lines {
            md.push_str(l);
            md.push('\n');
        }
        md.push_str("```\n");
        std::fs::write(p, md).map_err(|e| format!("{}: {e}", p.display()))?;
    }
    Ok(())
}

pub(crate) fn date() -> String {
    Command::new("date")
        .arg("-u")
        .arg("+%Y-%m-%d %H:%M UTC")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}
