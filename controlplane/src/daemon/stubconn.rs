//! The connections of the stub signaling: TCP, mutual TLS when configured
//! (`stub::tls`), framed by the signaling header's length; a Get and its
//! Downloads; and the lookups a gateway makes at the stub bank for SYNs
//! whose stub it lacks, with the bank's reachability and latency.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustls::{ClientConfig, ClientConnection, ServerConfig, ServerConnection, StreamOwned};
use serde::{Deserialize, Serialize};

use super::stubsync::{StubInput, Target};
use super::Input;
use crate::stub::seal::{self, ClusterKey};
use crate::stub::signal::{frame_len, Item, Signal, SignalType};
use crate::stub::StubIndex;

/// A byte stream to a peer or bank: plain TCP or TLS over it.
pub trait Conn: Read + Write + Send {}
impl<T: Read + Write + Send> Conn for T {}

/// Both sides' TLS configs (`[stubs.tls]`).
#[derive(Clone)]
pub struct Tls {
    pub client: Arc<ClientConfig>,
    pub server: Arc<ServerConfig>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tls(..)")
    }
}

/// How long a TLS handshake may take, whatever the caller's read timeout.
const HANDSHAKE: Duration = Duration::from_secs(5);

fn tcp(s: &TcpStream, read_timeout: Option<Duration>) -> std::io::Result<()> {
    s.set_nodelay(true)?;
    s.set_read_timeout(read_timeout)?;
    s.set_write_timeout(Some(Duration::from_secs(5)))
}

/// Connects to `addr`; with `tls`, the handshake is done here, so a
/// refused certificate shows as this call's error.
pub fn dial(
    addr: SocketAddr,
    tls: Option<&Tls>,
    name: Option<&str>,
    read_timeout: Option<Duration>,
) -> std::io::Result<Box<dyn Conn>> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(1))?;
    tcp(&s, read_timeout)?;
    let Some(t) = tls else { return Ok(Box::new(s)) };
    let name = crate::stub::tls::server_name(name, addr.ip()).map_err(std::io::Error::other)?;
    let mut c = ClientConnection::new(t.client.clone(), name).map_err(std::io::Error::other)?;
    s.set_read_timeout(Some(HANDSHAKE))?;
    while c.is_handshaking() {
        c.complete_io(&mut s)?;
    }
    s.set_read_timeout(read_timeout)?;
    Ok(Box::new(StreamOwned::new(c, s)))
}

/// Takes a connection in; with `tls`, the client's certificate must chain
/// to the cluster's CA.
pub fn accept(mut s: TcpStream, tls: Option<&Tls>) -> std::io::Result<Box<dyn Conn>> {
    let Some(t) = tls else { return Ok(Box::new(s)) };
    tcp(&s, Some(HANDSHAKE))?;
    let mut c = ServerConnection::new(t.server.clone()).map_err(std::io::Error::other)?;
    while c.is_handshaking() {
        c.complete_io(&mut s)?;
    }
    tcp(&s, None)?;
    Ok(Box::new(StreamOwned::new(c, s)))
}

/// Reads one whole message; None at the end of the stream.
pub fn read_message(s: &mut dyn Read) -> std::io::Result<Option<Vec<u8>>> {
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

/// Writes `msgs` and flushes (TLS holds records until then).
pub fn write_all(c: &mut dyn Write, msgs: &[Vec<u8>]) -> std::io::Result<()> {
    for m in msgs {
        c.write_all(m)?;
    }
    c.flush()
}

/// Sends a Get for `want` (empty: everything) and reads the Downloads up
/// to the empty one that ends them.
pub fn get(c: &mut Box<dyn Conn>, want: &[StubIndex]) -> Result<Vec<Item>, String> {
    // No items: one empty Get (`batches` always makes one message).
    let msgs = Signal::batches(SignalType::Get, want.iter().map(|i| Item::Index(*i)).collect());
    write_all(c, &msgs).map_err(|e| e.to_string())?;
    let mut got = Vec::new();
    loop {
        let m = read_message(c).map_err(|e| e.to_string())?.ok_or("closed before the last Download")?;
        match Signal::parse(&m).map_err(|e| e.to_string())? {
            Signal { ty: SignalType::Download, items } if items.is_empty() => return Ok(got),
            Signal { ty: SignalType::Download, items } => got.extend(items),
            s => return Err(format!("a {:?} where a Download belongs", s.ty)),
        }
    }
}

/// Answers a Get for `want` from `held`: every one held (empty `want`),
/// or each wanted one, sealed, or its index alone when not held; then the
/// empty Download.
pub fn answer_get(c: &mut Box<dyn Conn>, want: &[Item], held: Vec<Item>) -> std::io::Result<()> {
    let items = if want.is_empty() {
        held
    } else {
        let mut by: HashMap<StubIndex, Item> = held.into_iter().map(|i| (i.index(), i)).collect();
        want.iter().map(|w| by.remove(&w.index()).unwrap_or(Item::Index(w.index()))).collect()
    };
    write_all(c, &Signal::answer(items))
}

/// The bank as this gateway sees it (gwctl stats).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BankHealth {
    /// The endpoint last used.
    pub endpoint: Option<SocketAddr>,
    /// Whether the last lookup or probe was answered.
    pub reachable: bool,
    /// Its round trip, microseconds.
    pub latency_us: u64,
    /// Lookups answered with the stub, without it, and failed (no
    /// endpoint answered).
    pub fetched: u64,
    pub missed: u64,
    pub failed: u64,
}

/// How often an idle lookup thread probes the bank.
const PROBE_EVERY: Duration = Duration::from_secs(2);
/// The index a probe asks for: no SA has it.
const PROBE: StubIndex = StubIndex { gateway: std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), spi: 0 };

/// The lookups: indices in from the engine (batched while they queue),
/// one Get to the bank for them, each answered back into the engine; the
/// bank probed when idle. An endpoint that fails gives way to the next.
pub(super) fn fetch(
    to: Target,
    key: Arc<ClusterKey>,
    rx: Receiver<StubIndex>,
    health: Arc<Mutex<BankHealth>>,
    deliver: Arc<dyn Fn(Input) + Send + Sync>,
) {
    let mut conn: Option<Box<dyn Conn>> = None;
    let mut at = 0;
    loop {
        let mut want = match rx.recv_timeout(PROBE_EVERY) {
            Ok(i) => vec![i],
            Err(RecvTimeoutError::Timeout) => Vec::new(),
            Err(RecvTimeoutError::Disconnected) => return,
        };
        while want.len() < 4096 {
            match rx.try_recv() {
                Ok(i) => want.push(i),
                Err(_) => break,
            }
        }
        let ask = if want.is_empty() { vec![PROBE] } else { want.clone() };
        let t0 = Instant::now();
        let mut answer = None;
        // Each endpoint once, starting from the one in use.
        for _ in 0..to.addrs.len() {
            if conn.is_none() {
                conn = to.connect(&mut at, Some(Duration::from_secs(2))).ok();
            }
            let Some(c) = conn.as_mut() else { break };
            match get(c, &ask) {
                Ok(items) => {
                    answer = Some(items);
                    break;
                }
                Err(_) => {
                    conn = None;
                    at += 1;
                }
            }
        }
        let Some(items) = answer else {
            {
                let mut h = health.lock().expect("not poisoned");
                h.endpoint = Some(to.addrs[at % to.addrs.len()]);
                h.reachable = false;
                h.failed += want.len() as u64;
            }
            for i in want {
                deliver(Input::Stub(StubInput::Fetched(i, None)));
            }
            continue;
        };
        let mut got: HashMap<StubIndex, Vec<u8>> = HashMap::new();
        for it in items {
            if let Item::Sealed { index, sealed } = it {
                got.insert(index, sealed);
            }
        }
        let mut results = Vec::with_capacity(want.len());
        for i in want {
            let stub = got.remove(&i).and_then(|s| match seal::open(&key, &s) {
                Ok(s) if s.index == i => Some(Box::new(s)),
                Ok(_) | Err(_) => {
                    deliver(Input::Stub(StubInput::Log(format!("stubs: the bank's stub for {i} does not open"))));
                    None
                }
            });
            results.push((i, stub));
        }
        {
            // Not held while delivering: the daemon's lock comes first.
            let mut h = health.lock().expect("not poisoned");
            h.endpoint = Some(to.addrs[at % to.addrs.len()]);
            h.reachable = true;
            h.latency_us = t0.elapsed().as_micros() as u64;
            let found = results.iter().filter(|(_, s)| s.is_some()).count() as u64;
            h.fetched += found;
            h.missed += results.len() as u64 - found;
        }
        for (i, stub) in results {
            deliver(Input::Stub(StubInput::Fetched(i, stub)));
        }
    }
}
