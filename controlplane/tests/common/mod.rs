//! A small harness for in-memory tests between engines: nodes that keep
//! what their engine emitted, connections from a few fields, a wire that
//! delivers until everyone is quiet. Engines get seeded generators.
#![allow(dead_code)]

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use controlplane::crypto::{Random, SeededRandom};
use controlplane::ike::config::ConnectionToml;
use controlplane::ike::engine::IkeState;
use controlplane::ike::{Engine, Event, Output, Settings};
use controlplane::stub::StubOp;
use cpdp::msg::{Command, PolicyAction, WirePrefix};

pub const V4: (IpAddr, IpAddr) =
    (IpAddr::V4(std::net::Ipv4Addr::new(10, 77, 0, 1)), IpAddr::V4(std::net::Ipv4Addr::new(10, 77, 0, 2)));
pub const V6: (IpAddr, IpAddr) = (
    IpAddr::V6(std::net::Ipv6Addr::new(0xfd77, 0, 0, 0, 0, 0, 0, 1)),
    IpAddr::V6(std::net::Ipv6Addr::new(0xfd77, 0, 0, 0, 0, 0, 0, 2)),
);

/// A `[[connection]]` from its fields and `extra` TOML lines.
pub fn conn(
    name: &str,
    role: &str,
    local: IpAddr,
    remote: &str,
    ids: (&str, &str),
    ts: (&str, &str),
    extra: &str,
) -> ConnectionToml {
    let text = format!(
        "name = \"{name}\"\nrole = \"{role}\"\nlocal = \"{local}\"\nremote = \"{remote}\"\nlocal_id = \"{}\"\n\
         remote_id = \"{}\"\npsk = \"s3cret-lab-key\"\nlocal_ts = [\"{}\"]\nremote_ts = [\"{}\"]\n{extra}",
        ids.0, ids.1, ts.0, ts.1
    );
    toml::from_str(&text).unwrap()
}

/// A's side of the usual pair: "lab", initiator on `fam.0` to `fam.1`,
/// a.lab -> b.lab, 10.1.0.0/16 === 10.2.0.0/16, with `extra` lines.
pub fn conn_a(fam: (IpAddr, IpAddr), extra: &str) -> ConnectionToml {
    conn("lab", "initiator", fam.0, &fam.1.to_string(), ("a.lab", "b.lab"), ("10.1.0.0/16", "10.2.0.0/16"), extra)
}

/// B's side: "lab", responder on `fam.1` for anyone, b.lab <- a.lab,
/// 10.2.0.0/16 === 10.1.0.0/16, with `extra` lines.
pub fn conn_b(fam: (IpAddr, IpAddr), extra: &str) -> ConnectionToml {
    conn("lab", "responder", fam.1, "%any", ("b.lab", "a.lab"), ("10.2.0.0/16", "10.1.0.0/16"), extra)
}

#[derive(Debug, Clone)]
pub struct Datagram {
    pub local: SocketAddr,
    pub remote: SocketAddr,
    pub data: Vec<u8>,
}

/// An engine and everything it emitted except datagrams not yet taken.
pub struct Node {
    pub e: Engine,
    pub events: Vec<Event>,
    pub dp: Vec<Command>,
    /// What the engine asked of the stub store.
    pub stubs: Vec<StubOp>,
}

impl Node {
    pub fn new(conns: Vec<ConnectionToml>, settings: Settings, rng: Box<dyn Random>) -> Node {
        let conns = conns.into_iter().map(|c| c.build().unwrap()).collect();
        Node { e: Engine::new(conns, settings, rng), events: Vec::new(), dp: Vec::new(), stubs: Vec::new() }
    }

    pub fn seeded(conns: Vec<ConnectionToml>, seed: u64) -> Node {
        Node::new(conns, Settings::default(), Box::new(SeededRandom::new(seed)))
    }

    /// The datagrams the engine wants sent (its events and dataplane
    /// commands are kept).
    pub fn take(&mut self) -> Vec<Datagram> {
        let mut v = Vec::new();
        while let Some(o) = self.e.poll_output() {
            match o {
                Output::Send { local, remote, data } => v.push(Datagram { local, remote, data }),
                Output::Event(ev) => self.events.push(ev),
                Output::Dataplane(c) => self.dp.push(c),
                Output::Stub(op) => self.stubs.push(op),
            }
        }
        v
    }

    pub fn established(&self) -> usize {
        self.e.ike_sas().filter(|s| s.state() == IkeState::Established).count()
    }

    /// Child SAs on established IKE SAs.
    pub fn children(&self) -> usize {
        self.e.ike_sas().filter(|s| s.state() == IkeState::Established).map(|s| s.children().len()).sum()
    }

    /// The outbound SPI the dataplane protects `dst` with, after every
    /// command sent so far.
    pub fn policy(&self, dst: &str) -> Option<u32> {
        let (a, l) = dst.split_once('/').unwrap();
        let want = WirePrefix { addr: a.parse().unwrap(), len: l.parse().unwrap() };
        let mut at = None;
        for c in &self.dp {
            match c {
                Command::SetPolicy { dst, action: PolicyAction::Protect(s) } if *dst == want => at = Some(*s),
                Command::DeletePolicy { dst } if *dst == want => at = None,
                _ => {}
            }
        }
        at
    }
}

/// Delivers datagrams between A and B, unchanged, until both are quiet.
pub fn run(a: &mut Node, b: &mut Node, now: Instant) {
    for _ in 0..100 {
        let to_b = a.take();
        let to_a = b.take();
        if to_b.is_empty() && to_a.is_empty() {
            return;
        }
        for d in to_b {
            b.e.handle_datagram(now, d.remote, d.local, &d.data);
        }
        for d in to_a {
            a.e.handle_datagram(now, d.remote, d.local, &d.data);
        }
    }
    panic!("message storm");
}

/// Advances both nodes' clocks to `now` and runs the wire.
pub fn tick(a: &mut Node, b: &mut Node, now: Instant) {
    a.e.handle_timeout(now);
    b.e.handle_timeout(now);
    run(a, b, now);
}

/// A ("a.lab", initiator on `fam.0`, 10.1.0.0/16) and B ("b.lab",
/// responder on `fam.1`, 10.2.0.0/16), connection "lab" with `extra_a` /
/// `extra_b` config lines, up with one child SA (seeded: 1 and 2).
pub fn pair(fam: (IpAddr, IpAddr), extra_a: &str, extra_b: &str) -> (Node, Node, Instant) {
    let (a, b, now) = pair_up(fam, extra_a, extra_b);
    assert_eq!((a.children(), b.children()), (1, 1));
    (a, b, now)
}

/// [`pair`] after A initiated and the wire went quiet, whatever came up.
pub fn pair_up(fam: (IpAddr, IpAddr), extra_a: &str, extra_b: &str) -> (Node, Node, Instant) {
    pair_with(fam, extra_a, extra_b, Box::new(SeededRandom::new(1)), Box::new(SeededRandom::new(2)))
}

/// A generator whose nonces are pinned: `next`, then each one `step`
/// further (octet by octet); everything else from a seeded generator. A
/// test picks a branch of the collision rules (RFC 7296 2.8) with it.
pub struct Pinned {
    pub rest: SeededRandom,
    pub next: u8,
    pub step: i8,
}

impl Random for Pinned {
    fn fill(&mut self, buf: &mut [u8]) {
        self.rest.fill(buf);
    }
    fn nonce(&mut self, n: usize) -> Vec<u8> {
        let v = vec![self.next; n];
        self.next = self.next.wrapping_add_signed(self.step);
        v
    }
}

/// [`pair`] with A's nonces pinned from `a_start` by `a_step` and B's
/// rising from `b_start`.
pub fn pinned_pair(
    fam: (IpAddr, IpAddr),
    (a_start, a_step): (u8, i8),
    b_start: u8,
    extra_a: &str,
    extra_b: &str,
) -> (Node, Node, Instant) {
    let pa = Pinned { rest: SeededRandom::new(1), next: a_start, step: a_step };
    let pb = Pinned { rest: SeededRandom::new(2), next: b_start, step: 1 };
    let (a, b, now) = pair_with(fam, extra_a, extra_b, Box::new(pa), Box::new(pb));
    assert_eq!((a.children(), b.children()), (1, 1));
    (a, b, now)
}

fn pair_with(
    fam: (IpAddr, IpAddr),
    extra_a: &str,
    extra_b: &str,
    ra: Box<dyn Random>,
    rb: Box<dyn Random>,
) -> (Node, Node, Instant) {
    let mut a = Node::new(vec![conn_a(fam, extra_a)], Settings::default(), ra);
    let mut b = Node::new(vec![conn_b(fam, extra_b)], Settings::default(), rb);
    let now = Instant::now();
    a.e.initiate(now, "lab").unwrap();
    run(&mut a, &mut b, now);
    (a, b, now)
}

/// Whether `what` shows up in the file at `path` within `secs` (a daemon's
/// log, in the real-component tests).
pub fn wait_log(path: &std::path::Path, what: &str, secs: u64) -> bool {
    let end = Instant::now() + std::time::Duration::from_secs(secs);
    while Instant::now() < end {
        if std::fs::read_to_string(path).is_ok_and(|s| s.contains(what)) {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    false
}
