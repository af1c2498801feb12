//! `gw-bench failover`: N clients whose gateway dies, rebuilt on a standby
//! gateway by IKE_SA_SYN from stubs (draft-xu-ike-sa-sync) versus by the
//! full IKE_SA_INIT + IKE_AUTH, the same clients in the same run, with
//! in-memory engines (real crypto, PSK, one child SA each):
//!
//! 1. every client sets up its IKE SA with gateway A;
//! 2. A stops; every client fails over to standby F, which holds no stubs:
//!    the full exchange (F exports a stub of each new SA);
//! 3. F stops; F's stubs, sealed under the cluster key, reach standby S in
//!    bulk (a Download, section 3.5): S opens and files them;
//! 4. every client fails over to S: IKE_SA_SYN, answered with Nr alone,
//!    then its child SA by CREATE_CHILD_SA.
//!
//! Timed: the standby's CPU in each round trip (all requests of the round
//! handled and answered) and in the download, by the thread's CPU clock
//! (other processes and a guest's steal time left out), and the whole run
//! by the wall clock from the first failover request to the last child SA
//! installed (clients and gateway on this one core). Not timed: setting
//! up on A.

use std::collections::HashMap;
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use controlplane::crypto::SystemRandom;
use controlplane::ike::config::{ConnectionToml, Settings};
use controlplane::ike::engine::IkeState;
use controlplane::ike::{Engine, Output};
use controlplane::stub::seal::{self, ClusterKey};
use controlplane::stub::signal::{Item, Signal, SignalType};
use controlplane::stub::StubOp;

use crate::measure::thread_cpu;

#[derive(Debug, clap::Args)]
pub struct FailoverArgs {
    /// Numbers of clients to measure.
    #[arg(long, value_delimiter = ',', default_value = "1000,10000")]
    pub clients: Vec<usize>,
    /// IKE proposals to measure with (their Diffie-Hellman group is most
    /// of the full exchange's cost).
    #[arg(long, value_delimiter = ',', default_value = "aes128gcm16-prfsha256-x25519,aes128gcm16-prfsha256-modp2048")]
    pub ike: Vec<String>,
    /// Write the report as Markdown here too.
    #[arg(long)]
    pub markdown: Option<PathBuf>,
    /// A perf control FIFO (`perf record --control fifo:FIFO -D -1`): perf
    /// is enabled only while the standby handles the SYN rounds.
    #[arg(long)]
    pub perf_ctl: Option<PathBuf>,
}

const A: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const F: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);
const S: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 3);
const PSK: &str = "bench-failover-psk-0123";

fn client_addr(i: usize) -> Ipv4Addr {
    Ipv4Addr::from(0xac10_0000u32 + 1 + i as u32) // 172.16.0.1 and up
}

fn gateway(addr: Ipv4Addr, ike: &str) -> Result<Engine, String> {
    let c = toml::from_str::<ConnectionToml>(&format!(
        "name = \"clients\"\nrole = \"responder\"\nlocal = \"{addr}\"\nremote = \"%any\"\nlocal_id = \"hub.lab\"\n\
         remote_id = \"%any\"\npsk = \"{PSK}\"\nike_proposals = [\"{ike}\"]\nlocal_ts = [\"10.0.0.0/24\"]\n\
         remote_ts = [\"10.0.0.0/8\"]\ndpd_secs = 0\nike_rekey_secs = 86400\nchild_rekey_secs = 86400\nstubs = true\n"
    ))
    .map_err(|e| e.to_string())?
    .build()?;
    let quiet = Settings { cookie_threshold: usize::MAX, ..Settings::default() };
    Ok(Engine::new(vec![c], quiet, Box::new(SystemRandom::default())))
}

fn client(i: usize, ike: &str) -> Result<Engine, String> {
    let c = toml::from_str::<ConnectionToml>(&format!(
        "name = \"hub\"\nrole = \"initiator\"\nlocal = \"{}\"\nremote = \"{A}\"\nlocal_id = \"ep{i}.lab\"\n\
         remote_id = \"hub.lab\"\npsk = \"{PSK}\"\nike_proposals = [\"{ike}\"]\nlocal_ts = [\"10.{}.{}.0/24\"]\n\
         remote_ts = [\"10.0.0.0/24\"]\ndpd_secs = 0\nike_rekey_secs = 86400\nchild_rekey_secs = 86400\n\
         standby = [\"{F}\", \"{S}\"]\n",
        client_addr(i),
        1 + i / 256,
        i % 256
    ))
    .map_err(|e| e.to_string())?
    .build()?;
    Ok(Engine::new(vec![c], Settings::default(), Box::new(SystemRandom::default())))
}

type Wire = Vec<(SocketAddr, SocketAddr, Vec<u8>)>;

/// Everything `e` wants sent (to, from, data), and its stub ops.
fn drain(e: &mut Engine, wire: &mut Wire, stubs: &mut Vec<StubOp>) {
    while let Some(o) = e.poll_output() {
        match o {
            Output::Send { local, remote, data } => wire.push((remote, local, data)),
            Output::Stub(op) => stubs.push(op),
            _ => {}
        }
    }
}

/// The standby's side of the wire, as the daemon handles its outputs on
/// its own thread: each datagram is sent (here: copied into a buffer
/// touched before the clock) and freed; each stub is sealed under the
/// cluster key and queued for the bank (kept sealed), the stub itself
/// freed. Holding the engine's own buffers instead made the bench fault
/// in fresh pages the daemon, which frees them, does not.
struct Sink {
    key: ClusterKey,
    rng: SystemRandom,
    /// The round's datagrams, back to back.
    octets: Vec<u8>,
    sent: Vec<(SocketAddr, SocketAddr, std::ops::Range<usize>)>,
    /// Every stub exported, sealed, as the bank would get it.
    sealed: Vec<Item>,
}

impl Sink {
    fn new(n: usize) -> Sink {
        // Touched now (not on the standby's clock): the daemon's send
        // buffer is warm.
        let mut octets = vec![1u8; n * 1536];
        octets.clear();
        Sink {
            key: ClusterKey::new([0x5a; 32]),
            rng: SystemRandom::default(),
            octets,
            sent: Vec::with_capacity(n + 16),
            sealed: Vec::with_capacity(n),
        }
    }

    fn take(&mut self, e: &mut Engine) {
        while let Some(o) = e.poll_output() {
            match o {
                Output::Send { local, remote, data } => {
                    let at = self.octets.len();
                    self.octets.extend_from_slice(&data);
                    self.sent.push((remote, local, at..self.octets.len()));
                }
                Output::Stub(StubOp::Update(st)) => self
                    .sealed
                    .push(Item::Sealed { index: st.index, sealed: seal::seal(&self.key, &st, &mut self.rng) }),
                _ => {}
            }
        }
    }

    /// The round's datagrams, for the clients (after the clock).
    fn round(&mut self) -> Wire {
        let w = self.sent.drain(..).map(|(to, from, r)| (to, from, self.octets[r].to_vec())).collect();
        self.octets.clear();
        w
    }
}

/// The standby's view of one failover: CPU per round and in all, and the
/// whole run.
struct Phase {
    rounds: Vec<Duration>,
    gateway: Duration,
    wall: Duration,
    children: usize,
}

/// Delivers in rounds between the clients and gateway `gw` (at `addr`)
/// until quiet, timing the gateway's share of each round.
fn rounds(
    gw: &mut Engine,
    clients: &mut [Engine],
    mut to_gw: Wire,
    now: Instant,
    sink: &mut Sink,
    mut perf: Option<&mut std::fs::File>,
) -> Vec<Duration> {
    let by_addr: HashMap<IpAddr, usize> = (0..clients.len()).map(|i| (IpAddr::V4(client_addr(i)), i)).collect();
    let mut times = Vec::new();
    while !to_gw.is_empty() {
        perf_ctl(&mut perf, "enable");
        let t = thread_cpu();
        // Drained after each datagram, as the daemon flushes after each
        // input: the outputs of 10,000 messages held at once made the
        // gateway's working set (and page faults) grow with the batch.
        // The datagrams themselves are freed after the clock: the daemon
        // receives each into the same buffer and frees none.
        for (to, from, data) in &to_gw {
            gw.handle_datagram(now, *to, *from, data);
            sink.take(gw);
        }
        times.push(thread_cpu() - t);
        perf_ctl(&mut perf, "disable");
        to_gw.clear();
        let mut ignore = Vec::new();
        for (to, from, data) in sink.round() {
            if let Some(&i) = by_addr.get(&to.ip()) {
                clients[i].handle_datagram(now, to, from, &data);
                drain(&mut clients[i], &mut to_gw, &mut ignore);
            }
        }
        if times.len() > 20 {
            break;
        }
    }
    times
}

/// Tells perf (through its control FIFO, if given) to start or stop.
fn perf_ctl(perf: &mut Option<&mut std::fs::File>, what: &str) {
    if let Some(f) = perf {
        let _ = writeln!(f, "{what}").and_then(|_| f.flush());
    }
}

fn children(e: &Engine) -> usize {
    e.ike_sas().filter(|s| s.state() == IkeState::Established).map(|s| s.children().len()).sum()
}

/// Every client fails over (its next standby is `gw`); the rounds to the
/// last child SA.
fn failover(
    gw: &mut Engine,
    clients: &mut [Engine],
    now: Instant,
    sink: &mut Sink,
    perf: Option<&mut std::fs::File>,
) -> Result<Phase, String> {
    let t = Instant::now();
    let mut to_gw = Wire::with_capacity(clients.len());
    let mut ignore = Vec::new();
    for c in clients.iter_mut() {
        c.failover(now, "hub").map_err(|e| e.to_string())?;
        drain(c, &mut to_gw, &mut ignore);
    }
    let rounds = rounds(gw, clients, to_gw, now, sink, perf);
    let wall = t.elapsed();
    Ok(Phase { gateway: rounds.iter().sum(), rounds, wall, children: children(gw) })
}

struct Result1 {
    clients: usize,
    ike: String,
    full: Phase,
    syn: Phase,
    download: Duration,
    stubs: usize,
    rebuilt: u64,
}

fn one(n: usize, ike: &str, perf: Option<&mut std::fs::File>) -> Result<Result1, String> {
    let now = Instant::now();
    let (mut a, mut f, mut s) = (gateway(A, ike)?, gateway(F, ike)?, gateway(S, ike)?);
    let mut clients = (0..n).map(|i| client(i, ike)).collect::<Result<Vec<_>, _>>()?;
    // 1. Up on A (not timed).
    let mut to_a = Wire::new();
    let mut ignore = Vec::new();
    for c in clients.iter_mut() {
        c.initiate(now, "hub").map_err(|e| e.to_string())?;
        drain(c, &mut to_a, &mut ignore);
    }
    rounds(&mut a, &mut clients, to_a, now, &mut Sink::new(n), None);
    if children(&a) != n {
        return Err(format!("setup: {} of {n} child SAs on A", children(&a)));
    }
    // 2. A stops: the full exchange with F, which seals a stub of each
    // new IKE SA for the bank.
    let mut f_sink = Sink::new(n);
    let full = failover(&mut f, &mut clients, now, &mut f_sink, None)?;
    if full.children != n {
        return Err(format!("full exchange: {} of {n} child SAs on F", full.children));
    }
    // 3. F stops; its sealed stubs reach S in bulk.
    let messages = Signal::batches(SignalType::Download, std::mem::take(&mut f_sink.sealed));
    let key = ClusterKey::new([0x5a; 32]);
    let t = thread_cpu();
    let mut filed = 0;
    for m in &messages {
        // As the daemon files them: each message's stubs as one batch.
        let mut batch = Vec::new();
        for item in Signal::parse(m).map_err(|e| e.to_string())?.items {
            if let Item::Sealed { sealed, .. } = item {
                batch.push(seal::open(&key, &sealed).map_err(|e| e.to_string())?);
            }
        }
        filed += batch.len();
        s.add_stubs(batch);
    }
    let download = thread_cpu() - t;
    // 4. The SYN to S (which seals the stubs of the rebuilt IKE SAs).
    let syn = failover(&mut s, &mut clients, now, &mut Sink::new(n), perf)?;
    if syn.children != n {
        return Err(format!("SYN: {} of {n} child SAs on S", syn.children));
    }
    Ok(Result1 { clients: n, ike: ike.into(), full, syn, download, stubs: filed, rebuilt: s.stats.syn_rebuilt })
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1e3)
}

pub fn run(a: &FailoverArgs) -> Result<(), String> {
    let cpu = crate::measure::cpu_model();
    let mut md = format!(
        "Failover of N clients to a standby gateway: IKE_SA_SYN from stubs vs the full exchange (PSK, one child SA each; {cpu})\n\n\
         | clients | IKE | way | standby CPU ms | per client µs | rounds (ms each) | whole run ms | SYN cheaper |\n\
         |---:|---|---|---:|---:|---|---:|---:|\n"
    );
    let mut perf = match &a.perf_ctl {
        Some(p) => Some(std::fs::OpenOptions::new().write(true).open(p).map_err(|e| format!("{}: {e}", p.display()))?),
        None => None,
    };
    for ike in &a.ike {
        for &n in &a.clients {
            let r = one(n, ike, perf.as_mut())?;
            let per = |p: &Phase| p.gateway.as_secs_f64() * 1e6 / r.clients as f64;
            let rounds = |p: &Phase| p.rounds.iter().map(|d| ms(*d)).collect::<Vec<_>>().join(" + ");
            let ratio = r.full.gateway.as_secs_f64() / (r.syn.gateway + r.download).as_secs_f64();
            md += &format!(
                "| {n} | {} | full IKE_SA_INIT + IKE_AUTH | {} | {:.0} | {} | {} | |\n",
                r.ike,
                ms(r.full.gateway),
                per(&r.full),
                rounds(&r.full),
                ms(r.full.wall)
            );
            md += &format!(
                "| {n} | {} | IKE_SA_SYN + CREATE_CHILD_SA, {} stubs downloaded in {} ms, {} rebuilt | {} | {:.0} | {} | {} | {ratio:.1}x |\n",
                r.ike,
                r.stubs,
                ms(r.download),
                r.rebuilt,
                ms(r.syn.gateway),
                per(&r.syn),
                rounds(&r.syn),
                ms(r.syn.wall)
            );
        }
    }
    md += "\nSYN cheaper = the standby's CPU for the full exchange / (its CPU for the SYN rounds + opening and filing the stubs).\n";
    print!("{md}");
    if let Some(p) = &a.markdown {
        std::fs::write(p, &md).map_err(|e| format!("{}: {e}", p.display()))?;
    }
    Ok(())
}
