//! Stub synchronization between gateways over TCP, distributed mode
//! (draft-xu-ike-sa-sync 3.4 item 2, signaling of 3.6 in `stub::signal`):
//! every stub the engine makes, withdraws or uses goes to every peer
//! (Update: a sealed stub, or an index to forget), batched for `batch_ms`
//! (section 3.5); what peers send is opened with the cluster key and
//! handed to the engine. At start-up a gateway pulls what each peer holds:
//! an empty Get asks for every stub, answered by Download messages and an
//! empty Download to end (our decisions where the draft is silent).
//!
//! Stubs are sealed (AES-256-GCM under the cluster key) on the wire; the
//! TCP connections themselves are plain (mutual TLS and the central bank
//! are planned, issue 20). Anything malformed or that does not open is
//! counted, logged and dropped; the connection goes on.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::config::StubsToml;
use super::Input;
use crate::crypto::SystemRandom;
use crate::stub::seal::{self, ClusterKey};
use crate::stub::signal::{frame_len, Item, Signal, SignalType};
use crate::stub::{IkeSaStub, StubOp};

/// Where the engine's stub ops go: one queue per peer.
pub struct StubSync {
    key: Arc<ClusterKey>,
    peers: Vec<Sender<Item>>,
    rng: SystemRandom,
}

impl std::fmt::Debug for StubSync {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "StubSync({} peers)", self.peers.len())
    }
}

/// What comes in for the engine, through the daemon's input.
#[derive(Debug)]
pub enum StubInput {
    /// A peer's stub to file.
    Stub(Box<IkeSaStub>),
    /// A peer withdrew (or used) this one.
    Forget(crate::stub::StubIndex),
    /// A peer asks for every stub we hold (sealed items back).
    WantAll(Sender<Vec<Item>>),
    /// Something to log (a refused message, a peer down).
    Log(String),
}

type Deliver = Arc<dyn Fn(Input) + Send + Sync>;

impl StubSync {
    /// Starts the listener and one sender per peer, and pulls what each
    /// peer holds.
    pub fn start(cfg: &StubsToml, deliver: Deliver) -> Result<StubSync, String> {
        let key = Arc::new(ClusterKey::from_hex(&cfg.cluster_key)?);
        if let Some(addr) = cfg.listen {
            let l = TcpListener::bind(addr).map_err(|e| format!("stubs.listen {addr}: {e}"))?;
            let (key, deliver) = (key.clone(), deliver.clone());
            std::thread::Builder::new()
                .name("stub-listen".into())
                .spawn(move || listen(l, key, deliver))
                .map_err(|e| e.to_string())?;
        }
        let mut peers = Vec::new();
        for &peer in &cfg.peers {
            let (tx, rx) = mpsc::channel();
            let batch = Duration::from_millis(cfg.batch_ms);
            let d = deliver.clone();
            std::thread::Builder::new()
                .name(format!("stub-push-{peer}"))
                .spawn(move || push(peer, rx, batch, d))
                .map_err(|e| e.to_string())?;
            peers.push(tx);
            let (key, d) = (key.clone(), deliver.clone());
            std::thread::Builder::new()
                .name(format!("stub-pull-{peer}"))
                .spawn(move || pull(peer, key, d))
                .map_err(|e| e.to_string())?;
        }
        Ok(StubSync { key, peers, rng: SystemRandom::default() })
    }

    /// Sends what the engine asked for to every peer.
    pub fn send(&mut self, op: &StubOp) {
        let item = match op {
            StubOp::Update(s) => Item::Sealed { index: s.index, sealed: seal::seal(&self.key, s, &mut self.rng) },
            StubOp::Withdraw(i) | StubOp::Used(i) => Item::Index(*i),
        };
        for p in &self.peers {
            let _ = p.send(item.clone());
        }
    }

    /// Seals `stubs` for a peer's Get.
    pub fn seal_all<'a>(&mut self, stubs: impl Iterator<Item = &'a IkeSaStub>) -> Vec<Item> {
        stubs.map(|s| Item::Sealed { index: s.index, sealed: seal::seal(&self.key, s, &mut self.rng) }).collect()
    }
}

/// Reads one whole message from `s`; None at the end of the stream.
fn read_message(s: &mut TcpStream) -> std::io::Result<Option<Vec<u8>>> {
    let mut head = [0u8; 4];
    match s.read_exact(&mut head) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let n = frame_len(&head).unwrap_or(0);
    let mut m = head.to_vec();
    m.resize(n.max(4), 0);
    s.read_exact(&mut m[4..])?;
    Ok(Some(m))
}

/// The items of an Update or Download, opened, into the engine.
fn take_in(items: Vec<Item>, key: &ClusterKey, deliver: &Deliver, from: SocketAddr) {
    for item in items {
        match item {
            Item::Sealed { sealed, index } => match seal::open(key, &sealed) {
                Ok(s) => deliver(Input::Stub(StubInput::Stub(Box::new(s)))),
                Err(e) => deliver(Input::Stub(StubInput::Log(format!("stubs: from {from}: {index}: {e}")))),
            },
            Item::Index(i) => deliver(Input::Stub(StubInput::Forget(i))),
        }
    }
}

fn listen(l: TcpListener, key: Arc<ClusterKey>, deliver: Deliver) {
    for conn in l.incoming().flatten() {
        let (key, deliver) = (key.clone(), deliver.clone());
        let _ = std::thread::Builder::new().name("stub-peer".into()).spawn(move || serve(conn, &key, &deliver));
    }
}

/// One peer's connection to us: Updates filed, Gets answered.
fn serve(mut s: TcpStream, key: &ClusterKey, deliver: &Deliver) {
    let from = s.peer_addr().unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
    loop {
        let m = match read_message(&mut s) {
            Ok(Some(m)) => m,
            Ok(None) => return,
            Err(e) => {
                deliver(Input::Stub(StubInput::Log(format!("stubs: from {from}: {e}"))));
                return;
            }
        };
        match Signal::parse(&m) {
            Ok(Signal { ty: SignalType::Get, .. }) => {
                let (tx, rx) = mpsc::channel();
                deliver(Input::Stub(StubInput::WantAll(tx)));
                let items = rx.recv_timeout(Duration::from_secs(5)).unwrap_or_default();
                let mut out = Signal::batches(SignalType::Download, items);
                out.extend(Signal { ty: SignalType::Download, items: vec![] }.emit());
                for b in out {
                    if s.write_all(&b).is_err() {
                        return;
                    }
                }
            }
            Ok(sig) => take_in(sig.items, key, deliver, from),
            Err(e) => deliver(Input::Stub(StubInput::Log(format!("stubs: from {from}: {e}")))),
        }
    }
}

/// Our queue to one peer: batched Updates, reconnecting when it is down.
fn push(peer: SocketAddr, rx: Receiver<Item>, batch: Duration, deliver: Deliver) {
    let mut conn: Option<TcpStream> = None;
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
            conn = TcpStream::connect_timeout(&peer, Duration::from_secs(1)).ok();
        }
        let Some(s) = conn.as_mut() else {
            if !down_logged {
                deliver(Input::Stub(StubInput::Log(format!(
                    "stubs: peer {peer} unreachable, keeping {} for it",
                    pending.len()
                ))));
                down_logged = true;
            }
            // Bounded: the newest 100,000 wait for the peer.
            let over = pending.len().saturating_sub(100_000);
            pending.drain(..over);
            continue;
        };
        down_logged = false;
        let msgs = Signal::batches(SignalType::Update, std::mem::take(&mut pending));
        if msgs.iter().any(|m| s.write_all(m).is_err()) {
            conn = None;
        }
    }
}

/// At start-up: every stub a peer holds (empty Get, Downloads back).
fn pull(peer: SocketAddr, key: Arc<ClusterKey>, deliver: Deliver) {
    let Ok(mut s) = TcpStream::connect_timeout(&peer, Duration::from_secs(1)) else { return };
    let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
    let Some(get) = (Signal { ty: SignalType::Get, items: vec![] }).emit() else { return };
    if s.write_all(&get).is_err() {
        return;
    }
    while let Ok(Some(m)) = read_message(&mut s) {
        match Signal::parse(&m) {
            Ok(Signal { ty: SignalType::Download, items }) if items.is_empty() => return,
            Ok(Signal { ty: SignalType::Download, items }) => take_in(items, &key, &deliver, peer),
            Ok(_) => return,
            Err(e) => {
                deliver(Input::Stub(StubInput::Log(format!("stubs: from {peer}: {e}"))));
                return;
            }
        }
    }
}
