//! The in-memory MPSA lab the MPSA tests share: a hub and endpoints a, b,
//! c, each an `Engine`, wired by a queue of datagrams.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use controlplane::crypto::SeededRandom;
use controlplane::ike::config::{ConnectionToml, Settings};
use controlplane::ike::{Engine, Event, Output};
use controlplane::mpsa::{GroupToml, MpsaRole};
use cpdp::msg::Command;

/// A seed per engine: its connection and identity.
pub fn seed_of(conn: &str, id: &str) -> u64 {
    conn.bytes().chain(id.bytes()).fold(5381u64, |h, b| h.wrapping_mul(33) ^ b as u64)
}

pub const HUB: &str = "192.0.2.1";

pub struct Node {
    pub name: &'static str,
    pub addr: &'static str,
    pub e: Engine,
    pub dp: Vec<Command>,
    pub events: Vec<Event>,
}

pub struct Lab {
    pub hub: Node,
    pub eps: Vec<Node>,
    pub now: Instant,
    /// (to, local, remote, data): `to` is the receiving node's address.
    pub wire: VecDeque<(SocketAddr, SocketAddr, Vec<u8>)>,
}

pub fn conn(text: &str) -> controlplane::ike::Connection {
    toml::from_str::<ConnectionToml>(text).unwrap().build().unwrap()
}

pub fn hub_engine(group_extra: &str, members: &str) -> Engine {
    let c = conn(&format!(
        "name = \"members\"\nrole = \"responder\"\nlocal = \"{HUB}\"\nremote = \"%any\"\nlocal_id = \"hub.lab\"\n\
         remote_id = \"%any\"\npsk = \"mpsa-lab-secret\"\nlocal_ts = [\"10.0.0.0/24\"]\nremote_ts = [\"10.1.0.0/16\"]\n"
    ));
    let seed = seed_of(&c.name, &c.local_id.to_text());
    let mut e = Engine::new(vec![c], Settings::default(), Box::new(SeededRandom::new(seed)));
    e.mpsa_role = MpsaRole::Gateway;
    let g: GroupToml = toml::from_str(&format!("name = \"mesh\"\nmembers = [{members}]\n{group_extra}")).unwrap();
    e.add_group(Instant::now(), g.build().unwrap());
    e
}

pub fn endpoint_engine(id: &str, addr: &str, lan: &str, role: MpsaRole) -> Engine {
    endpoint_engine_boot(id, addr, lan, role, 0)
}

/// The engine of an endpoint's `boot`-th start (its generator differs).
pub fn endpoint_engine_boot(id: &str, addr: &str, lan: &str, role: MpsaRole, boot: u64) -> Engine {
    let c = conn(&format!(
        "name = \"hub\"\nrole = \"initiator\"\nlocal = \"{addr}\"\nremote = \"{HUB}\"\nlocal_id = \"{id}\"\n\
         remote_id = \"hub.lab\"\npsk = \"mpsa-lab-secret\"\nlocal_ts = [\"{lan}\"]\nremote_ts = [\"10.0.0.0/24\"]\n\
         mpsa_routes = [{{ prefix = \"10.1.1.0/24\", endpoint = \"192.0.2.11\" }}, \
         {{ prefix = \"10.1.2.0/24\", endpoint = \"192.0.2.12\" }}, {{ prefix = \"10.1.3.0/24\", endpoint = \"192.0.2.13\" }}]\n"
    ));
    let seed = seed_of(&c.name, &c.local_id.to_text()) ^ boot;
    let mut e = Engine::new(vec![c], Settings::default(), Box::new(SeededRandom::new(seed)));
    e.mpsa_role = role;
    e
}

impl Lab {
    pub fn new(group_extra: &str) -> Lab {
        Lab::with(group_extra, [MpsaRole::Endpoint; 3])
    }

    pub fn with(group_extra: &str, roles: [MpsaRole; 3]) -> Lab {
        let hub = Node {
            name: "hub",
            addr: HUB,
            e: hub_engine(group_extra, "\"a.lab\", \"b.lab\", \"c.lab\""),
            dp: vec![],
            events: vec![],
        };
        let spec = [
            ("a", "192.0.2.11", "10.1.1.0/24"),
            ("b", "192.0.2.12", "10.1.2.0/24"),
            ("c", "192.0.2.13", "10.1.3.0/24"),
        ];
        let eps = spec
            .iter()
            .zip(roles)
            .map(|((n, addr, lan), role)| Node {
                name: n,
                addr,
                e: endpoint_engine(&format!("{n}.lab"), addr, lan, role),
                dp: vec![],
                events: vec![],
            })
            .collect();
        Lab { hub, eps, now: Instant::now(), wire: VecDeque::new() }
    }

    pub fn nodes(&mut self) -> impl Iterator<Item = &mut Node> {
        std::iter::once(&mut self.hub).chain(self.eps.iter_mut())
    }

    pub fn collect(&mut self) {
        let mut sent = Vec::new();
        for n in self.nodes() {
            while let Some(o) = n.e.poll_output() {
                match o {
                    Output::Send { local, remote, data } => sent.push((remote, local, data)),
                    Output::Dataplane(c) => n.dp.push(c),
                    Output::Event(e) => n.events.push(e),
                    Output::Stub(_) => {}
                }
            }
        }
        self.wire.extend(sent);
    }

    pub fn run(&mut self) {
        self.collect();
        let mut n = 0;
        while let Some((to, from, data)) = self.wire.pop_front() {
            let now = self.now;
            let node = self.nodes().find(|x| x.addr == to.ip().to_string()).expect("a node at that address");
            node.e.handle_datagram(now, to, from, &data);
            self.collect();
            n += 1;
            assert!(n < 10_000, "message storm");
        }
    }

    pub fn advance(&mut self, d: Duration) {
        self.now += d;
        let now = self.now;
        for n in self.nodes() {
            n.e.handle_timeout(now);
        }
        self.run();
    }

    pub fn connect_all(&mut self) {
        let now = self.now;
        for n in &mut self.eps {
            n.e.initiate(now, "hub").unwrap();
        }
        self.run();
        for n in &self.eps {
            assert!(
                n.e.ike_sas().any(|s| s.peer_id().is_some() && !s.children().is_empty()),
                "{} has no IKE SA: {:?}",
                n.name,
                n.events
            );
        }
    }
}

/// A group SA as the dataplane was told: SPI, encryption key, integrity
/// key, Rollover1, Rollover2.
pub type Installed = (u32, Vec<u8>, Vec<u8>, u32, u32);

/// The group SAs an endpoint's dataplane was told to install, in order.
pub fn group_sas(n: &Node) -> Vec<Installed> {
    n.dp.iter()
        .filter_map(|c| match c {
            Command::InstallGroupSa { group, sa, members, rollover1_secs, rollover2_secs } => {
                assert_eq!(group, "hub");
                assert_eq!(members.len(), 3, "the static routes go with it");
                Some((sa.spi, sa.enc_key.to_vec(), sa.auth_key.to_vec(), *rollover1_secs, *rollover2_secs))
            }
            _ => None,
        })
        .collect()
}
