//! Stub synchronization over TCP (draft-xu-ike-sa-sync 3.4, signaling of
//! 3.6 in `stub::signal`), both modes and their mixture:
//!
//! - distributed (item 2): every stub the engine makes, withdraws or uses
//!   goes to every peer gateway (Update: a sealed stub, or an index to
//!   forget), batched for `batch_ms` (section 3.5); what peers send is
//!   opened with the cluster key and handed to the engine. At start-up a
//!   gateway pulls what each peer holds: an empty Get asks for every stub.
//! - centralized (item 1): the same Updates go to the stub bank
//!   (gw-stubbank, on etcd), to the first of its endpoints that answers;
//!   a SYN whose stub the local table lacks is looked up there (`bank`).
//!
//! Every Get is answered by Download messages and an empty Download to
//! end (our decisions where the draft is silent). Stubs are sealed
//! (AES-256-GCM under the cluster key); the connections are mutual TLS
//! when `[stubs.tls]` is set (`conn`). Anything malformed or that does not
//! open is counted, logged and dropped; the connection goes on.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::config::StubsToml;
use super::stubconn::{self, Conn, Tls};
use super::Input;
use crate::crypto::SystemRandom;
use crate::stub::seal::{self, ClusterKey};
use crate::stub::signal::{Item, Signal, SignalType};
use crate::stub::{IkeSaStub, StubIndex, StubOp};

pub use super::stubconn::BankHealth;

/// Where the engine's stub ops go: one queue per peer, one to the bank,
/// and the bank's lookups.
pub struct StubSync {
    key: Arc<ClusterKey>,
    peers: Vec<Sender<Item>>,
    bank: Option<Sender<Item>>,
    fetch: Option<Sender<StubIndex>>,
    rng: SystemRandom,
    /// The bank as the lookups last found it (gwctl stats).
    pub health: Arc<Mutex<BankHealth>>,
    /// What the daemon should log about how it started (not delivered
    /// from `start`: the daemon's lock is held while it runs).
    pub notes: Vec<String>,
}

impl std::fmt::Debug for StubSync {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "StubSync({} peers, bank {})", self.peers.len(), self.bank.is_some())
    }
}

/// What comes in for the engine, through the daemon's input.
#[derive(Debug)]
pub enum StubInput {
    /// A peer's stubs to file: the items of one Update or Download.
    Stubs(SocketAddr, Vec<IkeSaStub>),
    /// A peer withdrew (or used) this one.
    Forget(StubIndex),
    /// A peer asks for every stub we hold (sealed items back).
    WantAll(Sender<Vec<Item>>),
    /// The bank's answer to a lookup: the stub, or None.
    Fetched(StubIndex, Option<Box<IkeSaStub>>),
    /// Something to log (a refused message, a peer down).
    Log(String),
}

type Deliver = Arc<dyn Fn(Input) + Send + Sync>;

fn log(deliver: &Deliver, m: String) {
    deliver(Input::Stub(StubInput::Log(m)));
}

fn spawn(name: String, f: impl FnOnce() + Send + 'static) -> Result<(), String> {
    std::thread::Builder::new().name(name).spawn(f).map(|_| ()).map_err(|e| e.to_string())
}

impl StubSync {
    /// Starts the listener, one sender per peer and one to the bank, the
    /// bank's lookups, and pulls what each peer holds.
    pub fn start(cfg: &StubsToml, deliver: Deliver) -> Result<StubSync, String> {
        let key = Arc::new(ClusterKey::from_hex(&cfg.cluster_key)?);
        let mut notes = Vec::new();
        let tls = match &cfg.tls {
            Some(f) => Some(Tls { client: f.client()?, server: f.server()? }),
            None => {
                notes.push("stubs: [stubs.tls] not set: connections in clear (stubs stay sealed)".into());
                None
            }
        };
        let batch = Duration::from_millis(cfg.batch_ms);
        if let Some(addr) = cfg.listen {
            let l = TcpListener::bind(addr).map_err(|e| format!("stubs.listen {addr}: {e}"))?;
            let (key, deliver, tls) = (key.clone(), deliver.clone(), tls.clone());
            spawn("stub-listen".into(), move || listen(l, key, tls, deliver))?;
        }
        let mut peers = Vec::new();
        for &peer in &cfg.peers {
            let (tx, rx) = mpsc::channel();
            let to = Target { addrs: vec![peer], name: None, tls: tls.clone() };
            let d = deliver.clone();
            spawn(format!("stub-push-{peer}"), move || push(to, rx, batch, d))?;
            peers.push(tx);
            let to = Target { addrs: vec![peer], name: None, tls: tls.clone() };
            let (key, d) = (key.clone(), deliver.clone());
            spawn(format!("stub-pull-{peer}"), move || pull(to, key, d))?;
        }
        let health = Arc::new(Mutex::new(BankHealth::default()));
        let (mut bank, mut fetch) = (None, None);
        if !cfg.bank.is_empty() {
            let to = Target { addrs: cfg.bank.clone(), name: cfg.bank_name.clone(), tls: tls.clone() };
            let (tx, rx) = mpsc::channel();
            let d = deliver.clone();
            let t = to.clone();
            spawn("stub-push-bank".into(), move || push(t, rx, batch, d))?;
            bank = Some(tx);
            let (tx, rx) = mpsc::channel();
            let (key, d, h) = (key.clone(), deliver.clone(), health.clone());
            spawn("stub-fetch".into(), move || stubconn::fetch(to, key, rx, h, d))?;
            fetch = Some(tx);
        }
        Ok(StubSync { key, peers, bank, fetch, rng: SystemRandom::default(), health, notes })
    }

    /// Sends what the engine asked for to every peer and the bank.
    pub fn send(&mut self, op: &StubOp) {
        let item = match op {
            StubOp::Update(s) => Item::Sealed { index: s.index, sealed: seal::seal(&self.key, s, &mut self.rng) },
            StubOp::Withdraw(i) | StubOp::Used(i) => Item::Index(*i),
            StubOp::Fetch(i) => {
                if let Some(f) = &self.fetch {
                    let _ = f.send(*i);
                }
                return;
            }
        };
        for p in self.peers.iter().chain(self.bank.iter()) {
            let _ = p.send(item.clone());
        }
    }

    /// Whether a bank is configured.
    pub fn has_bank(&self) -> bool {
        self.bank.is_some()
    }

    /// Seals `stubs` for a peer's Get.
    pub fn seal_all<'a>(&mut self, stubs: impl Iterator<Item = &'a IkeSaStub>) -> Vec<Item> {
        stubs.map(|s| Item::Sealed { index: s.index, sealed: seal::seal(&self.key, s, &mut self.rng) }).collect()
    }
}

/// Where a sender connects: one peer, or a bank's endpoints (the first
/// that answers; the next when it stops).
#[derive(Clone)]
pub(super) struct Target {
    pub addrs: Vec<SocketAddr>,
    /// The name the server's certificate carries, when not its address.
    pub name: Option<String>,
    pub tls: Option<Tls>,
}

impl Target {
    /// A connection to the first endpoint from `*at` on that answers;
    /// `*at` is left on it.
    pub fn connect(&self, at: &mut usize, read_timeout: Option<Duration>) -> Result<Box<dyn Conn>, String> {
        let mut why = Vec::new();
        for _ in 0..self.addrs.len() {
            let a = self.addrs[*at % self.addrs.len()];
            match stubconn::dial(a, self.tls.as_ref(), self.name.as_deref(), read_timeout) {
                Ok(c) => return Ok(c),
                Err(e) => why.push(format!("{a}: {e}")),
            }
            *at = (*at + 1) % self.addrs.len();
        }
        Err(why.join("; "))
    }
}

/// The items of an Update or Download, opened, into the engine: the
/// stubs as one batch (the engine sizes its tables once for them).
fn take_in(items: Vec<Item>, key: &ClusterKey, deliver: &Deliver, from: SocketAddr) {
    let mut stubs = Vec::new();
    for item in items {
        match item {
            Item::Sealed { sealed, index } => match seal::open(key, &sealed) {
                Ok(s) => stubs.push(s),
                Err(e) => log(deliver, format!("stubs: from {from}: {index}: {e}")),
            },
            Item::Index(i) => deliver(Input::Stub(StubInput::Forget(i))),
        }
    }
    if !stubs.is_empty() {
        deliver(Input::Stub(StubInput::Stubs(from, stubs)));
    }
}

fn listen(l: TcpListener, key: Arc<ClusterKey>, tls: Option<Tls>, deliver: Deliver) {
    for s in l.incoming().flatten() {
        let (key, deliver, tls) = (key.clone(), deliver.clone(), tls.clone());
        let _ = spawn("stub-peer".into(), move || serve(s, &key, tls.as_ref(), &deliver));
    }
}

/// One peer's connection to us: Updates filed, Gets answered.
fn serve(s: TcpStream, key: &ClusterKey, tls: Option<&Tls>, deliver: &Deliver) {
    let from = s.peer_addr().unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
    let mut c = match stubconn::accept(s, tls) {
        Ok(c) => c,
        Err(e) => return log(deliver, format!("stubs: from {from}: refused: {e}")),
    };
    loop {
        let m = match stubconn::read_message(&mut c) {
            Ok(Some(m)) => m,
            Ok(None) => return,
            Err(e) => return log(deliver, format!("stubs: from {from}: {e}")),
        };
        match Signal::parse(&m) {
            Ok(Signal { ty: SignalType::Get, items: want }) => {
                let (tx, rx) = mpsc::channel();
                deliver(Input::Stub(StubInput::WantAll(tx)));
                let held = rx.recv_timeout(Duration::from_secs(5)).unwrap_or_default();
                if stubconn::answer_get(&mut c, &want, held).is_err() {
                    return;
                }
            }
            Ok(sig) => take_in(sig.items, key, deliver, from),
            Err(e) => log(deliver, format!("stubs: from {from}: {e}")),
        }
    }
}

/// Our queue to one peer or the bank: batched Updates, reconnecting (to
/// the bank's next endpoint) when it is down.
fn push(to: Target, rx: Receiver<Item>, batch: Duration, deliver: Deliver) {
    let mut conn: Option<Box<dyn Conn>> = None;
    let mut at = 0;
    let mut pending: Vec<Item> = Vec::new();
    let mut down_logged = false;
    loop {
        let first = match rx.recv_timeout(Duration::from_secs(1)) {
            Ok(i) => Some(i),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => return,
        };
        pending.extend(first);
        let until = Instant::now() + batch;
        while let Some(left) = until.checked_duration_since(Instant::now()) {
            match rx.recv_timeout(left) {
                Ok(i) => pending.push(i),
                Err(_) => break,
            }
        }
        if pending.is_empty() {
            continue;
        }
        if conn.is_none() {
            match to.connect(&mut at, None) {
                Ok(c) => conn = Some(c),
                Err(e) if !down_logged => {
                    log(&deliver, format!("stubs: {e}: unreachable, keeping {} for it", pending.len()));
                    down_logged = true;
                }
                Err(_) => {}
            }
        }
        let Some(c) = conn.as_mut() else {
            // Bounded: the newest 100,000 wait for the peer.
            let over = pending.len().saturating_sub(100_000);
            pending.drain(..over);
            continue;
        };
        if down_logged {
            log(&deliver, format!("stubs: {} reachable again", to.addrs[at % to.addrs.len()]));
            down_logged = false;
        }
        let msgs = Signal::batches(SignalType::Update, pending.clone());
        if stubconn::write_all(c, &msgs).is_ok() {
            pending.clear();
        } else {
            // Sent again on the next connection (the store is idempotent).
            conn = None;
            at += 1;
        }
    }
}

/// At start-up: every stub a peer holds (empty Get, Downloads back).
fn pull(to: Target, key: Arc<ClusterKey>, deliver: Deliver) {
    let Ok(mut c) = to.connect(&mut 0, Some(Duration::from_secs(10))) else { return };
    match stubconn::get(&mut c, &[]) {
        Ok(items) => take_in(items, &key, &deliver, to.addrs[0]),
        Err(e) => log(&deliver, format!("stubs: from {}: {e}", to.addrs[0])),
    }
}
