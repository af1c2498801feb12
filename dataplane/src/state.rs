//! The main lcore's view of what should be installed: the config file's
//! static tables plus what the control plane sent over the ring. Applying
//! a command changes this state; [`TableState::build`] turns it into the
//! next immutable [`Tables`] for the workers. SAs are shared `Arc`s, so
//! a rebuild neither re-expands keys nor resets sequence numbers.
//!
//! A command that cannot be applied changes nothing and says why.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;

use cpdp::msg::{Command, Direction, PolicyAction, SaSpec, WirePrefix};
use rustc_hash::FxHashMap;

use crate::crypto::Algorithm;
use crate::group::{GroupAction, Rollover};
use crate::lpm::Prefix;
use crate::paths::Multipath;
use crate::sa::{InboundSa, NattPorts, OutboundSa, SaParams};
use crate::tables::{GroupMember, Policy, Route, Tables};
use std::time::{Duration, Instant};

#[derive(Debug)]
pub struct TableState {
    /// From the config file; never changed by commands.
    base: Tables,
    sas_in: BTreeMap<u32, Arc<InboundSa>>,
    sas_out: BTreeMap<u32, Arc<OutboundSa>>,
    policies: BTreeMap<(IpAddr, u8), PolicyAction>,
    routes: BTreeMap<(IpAddr, u8), Route>,
    neighbors: FxHashMap<IpAddr, [u8; 6]>,
    /// Sequence numbers reserved per outbound SA (by handle) before a
    /// restart: an SA installed again never reuses one.
    seq_floor: FxHashMap<u32, u64>,
    groups: BTreeMap<String, GroupState>,
    /// Addresses added at run time (multihoming), by port.
    addresses: Vec<(u16, Prefix)>,
    /// Outbound SAs with several paths, and the ports whose link is down.
    multipath: Multipath,
    /// `[control] fail_closed`: the prefixes ever protected (by a policy
    /// with an SA, or as a group member's), discarded while nothing
    /// protects them. Kept across Flush: that is when they matter.
    fail_closed: Option<BTreeSet<(IpAddr, u8)>>,
}

/// One group at this endpoint: its SAs by SPI, members, rollover timing.
#[derive(Debug)]
struct GroupState {
    sas: BTreeMap<u32, (Arc<InboundSa>, Arc<OutboundSa>)>,
    members: Vec<GroupMember>,
    rollover: Rollover,
}

fn prefix(p: &WirePrefix) -> Result<Prefix, String> {
    Prefix::new(p.addr, p.len)
}

/// Builds SA parameters from a command, checking what the wire cannot.
pub fn sa_params(s: &SaSpec) -> Result<SaParams, String> {
    let alg: Algorithm = s.alg.parse()?;
    let pre = |v: &[WirePrefix]| v.iter().map(prefix).collect::<Result<Vec<_>, _>>();
    if s.replay_window > crate::replay::MAX_WINDOW {
        return Err(format!("replay window {} > {}", s.replay_window, crate::replay::MAX_WINDOW));
    }
    Ok(SaParams {
        spi: s.spi,
        alg,
        enc_key: s.enc_key.clone(),
        auth_key: s.auth_key.clone(),
        local: s.local,
        remote: s.remote,
        natt: s.natt.map(|(l, r)| NattPorts { local: l, remote: r }),
        esn: s.esn,
        replay_window: s.replay_window,
        inner_src: pre(&s.inner_src)?,
        inner_dst: pre(&s.inner_dst)?,
        lifetime: crate::sa::Lifetime {
            soft_bytes: s.lifetime.soft_bytes,
            hard_bytes: s.lifetime.hard_bytes,
            soft_packets: s.lifetime.soft_packets,
            hard_packets: s.lifetime.hard_packets,
            soft_secs: s.lifetime.soft_secs,
            hard_secs: s.lifetime.hard_secs,
        },
        transport: s.transport,
    })
}

/// An SA's paths: (`local`, `remote`) then `more`, each of one family.
fn paths_of(local: IpAddr, remote: IpAddr, more: &[(IpAddr, IpAddr)]) -> Result<Vec<(IpAddr, IpAddr)>, String> {
    let mut v = vec![(local, remote)];
    v.extend_from_slice(more);
    match v.iter().find(|(l, r)| l.is_ipv4() != r.is_ipv4()) {
        Some((l, r)) => Err(format!("path {l} <-> {r}: not one IP version")),
        None => Ok(v),
    }
}

impl TableState {
    /// A transport-mode SA moved from peer address `was` to `now`: its
    /// policy (the host prefix of `was`, protecting with `handle`) moves
    /// along in the same step, so no packet to the new address leaves in
    /// the clear or is dropped for want of a policy.
    fn move_transport_policy(&mut self, handle: u32, was: IpAddr, now: IpAddr) {
        let host = |a: IpAddr| (a, if a.is_ipv4() { 32 } else { 128 });
        if was == now || self.policies.get(&host(was)) != Some(&PolicyAction::Protect(handle)) {
            return;
        }
        self.policies.remove(&host(was));
        self.policies.insert(host(now), PolicyAction::Protect(handle));
    }

    pub fn new(base: Tables) -> TableState {
        TableState {
            base,
            sas_in: BTreeMap::new(),
            sas_out: BTreeMap::new(),
            policies: BTreeMap::new(),
            routes: BTreeMap::new(),
            neighbors: FxHashMap::default(),
            seq_floor: FxHashMap::default(),
            groups: BTreeMap::new(),
            addresses: Vec::new(),
            multipath: Multipath::default(),
            fail_closed: None,
        }
    }

    /// `[control] fail_closed`: from now on, a prefix once protected is
    /// discarded while nothing protects it.
    pub fn set_fail_closed(&mut self, on: bool) {
        self.fail_closed = on.then(BTreeSet::new);
    }

    /// Prefix `p` is protected now: remembered when failing closed.
    fn covered(&mut self, p: (IpAddr, u8)) {
        if let Some(c) = self.fail_closed.as_mut() {
            c.insert(p);
        }
    }

    /// The port our address `a` is on (added at run time, or the config's).
    fn port_of(&self, a: IpAddr) -> Option<u16> {
        self.addresses.iter().find(|(_, q)| q.addr == a).map(|(p, _)| *p).or(self.base.port_of_local(a))
    }

    /// Our addresses on port `port`.
    pub fn addresses_on(&self, port: u16) -> Vec<IpAddr> {
        let mut v = self.base.addresses_on(port);
        v.extend(self.addresses.iter().filter(|(p, _)| *p == port).map(|(_, q)| q.addr));
        v
    }

    /// Every path of every multihomed SA (their next hops are solicited
    /// before they are needed).
    pub fn multihomed_paths(&self) -> Vec<(IpAddr, IpAddr)> {
        self.multipath.all_paths().copied().collect()
    }

    /// Port `port`'s link went down or came up: multihomed SAs move to
    /// their best path at once. True if the tables must be rebuilt.
    pub fn set_link(&mut self, port: u16, up: bool) -> bool {
        if !self.multipath.set_link(port, up) {
            return false;
        }
        for h in self.multipath.handles() {
            let natt = self.sas_out.get(&h).and_then(|s| s.natt);
            let _ = self.repath(h, natt);
        }
        true
    }

    /// Puts outbound SA `handle` on its best path with these NAT-T ports.
    fn repath(&mut self, handle: u32, natt: Option<NattPorts>) -> Result<(), String> {
        let Some(best) = self.multipath.choose(handle, |a| self.port_of(a)) else { return Ok(()) };
        let old = self.sas_out.get(&handle).ok_or(format!("no outbound SA {handle:#x}"))?;
        if (old.template_local(), old.remote) != best || old.natt != natt {
            let sa = old.with_addresses(best.0, best.1, natt).map_err(|e| e.to_string())?;
            self.sas_out.insert(handle, Arc::new(sa));
        }
        Ok(())
    }

    /// Sequence numbers already (possibly) used per outbound SPI, from the
    /// reservations a previous run left.
    pub fn set_seq_floors(&mut self, floors: FxHashMap<u32, u64>) {
        self.seq_floor = floors;
    }

    /// The installed outbound SAs (for reservations and counters).
    pub fn outbound(&self) -> impl Iterator<Item = &Arc<OutboundSa>> {
        self.sas_out.values()
    }

    pub fn inbound(&self) -> impl Iterator<Item = &Arc<InboundSa>> {
        self.sas_in.values()
    }

    /// Applies one command now. Ok(true): the tables must be rebuilt.
    pub fn apply(&mut self, c: &Command) -> Result<bool, String> {
        self.apply_at(c, Instant::now())
    }

    /// Rollover deadlines that have come: Ok(true) if the tables changed.
    pub fn tick(&mut self, now: Instant) -> bool {
        let mut changed = false;
        for g in self.groups.values_mut() {
            let acts = g.rollover.poll(now);
            changed |= g.apply(acts);
        }
        changed
    }

    /// The earliest rollover deadline, if any.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.groups.values().filter_map(|g| g.rollover.next_deadline()).min()
    }

    /// Applies one command at time `now`.
    pub fn apply_at(&mut self, c: &Command, now: Instant) -> Result<bool, String> {
        match c {
            Command::Flush => {
                // Neighbours stay: they were learned from the wire (ARP,
                // ND), not installed, and still answer.
                self.sas_in.clear();
                self.sas_out.clear();
                self.policies.clear();
                self.routes.clear();
                self.groups.clear();
                self.addresses.clear();
                self.multipath.clear();
            }
            Command::InstallSa(s) => {
                let p = sa_params(s).map_err(|e| format!("SA {:#x}: {e}", s.spi))?;
                match s.direction {
                    Direction::In => {
                        if self.base.spi_index.contains_key(&s.spi) {
                            return Err(format!("SA {:#x}: SPI is a static inbound SA of the config", s.spi));
                        }
                        let sa = InboundSa::new(&p).map_err(|e| format!("SA {:#x}: {e}", s.spi))?;
                        self.sas_in.insert(s.spi, Arc::new(sa));
                    }
                    Direction::Out => {
                        // Keyed by handle: two peers may pick the same SPI.
                        let mut sa = OutboundSa::new(&p).map_err(|e| format!("SA {:#x}: {e}", s.spi))?;
                        sa.handle = s.handle;
                        let floor = self.seq_floor.get(&s.handle).copied().unwrap_or(0);
                        sa.set_seq(s.seq.max(floor));
                        let paths = paths_of(s.local, s.remote, &s.paths)?;
                        self.sas_out.insert(s.handle, Arc::new(sa));
                        self.multipath.set(s.handle, paths);
                        self.repath(s.handle, p.natt)?;
                    }
                }
            }
            Command::DeleteSa { spi, direction } => {
                let gone = match direction {
                    Direction::In => self.sas_in.remove(spi).is_some(),
                    Direction::Out => {
                        self.multipath.remove(*spi);
                        self.sas_out.remove(spi).is_some()
                    }
                };
                if !gone {
                    return Err(format!("no {direction:?} SA {spi:#x} installed by the control plane"));
                }
            }
            Command::UpdateSaAddresses { spi, direction, local, remote, natt } => {
                if local.is_ipv4() != remote.is_ipv4() {
                    return Err(format!("SA {spi:#x}: {local} and {remote} are not the same IP version"));
                }
                // A new SA object with the same keys; outbound keeps its
                // sequence numbers (RFC 4555: the SA is the same SA).
                let natt = natt.map(|(l, r)| NattPorts { local: l, remote: r });
                match direction {
                    Direction::Out => {
                        let old = self.sas_out.get(spi).ok_or(format!("no outbound SA {spi:#x}"))?;
                        let sa = old.with_addresses(*local, *remote, natt).map_err(|e| e.to_string())?;
                        if sa.transport {
                            self.move_transport_policy(*spi, old.remote, *remote);
                        }
                        self.sas_out.insert(*spi, Arc::new(sa));
                        self.multipath.remove(*spi);
                    }
                    Direction::In => {
                        let old = self.sas_in.get(spi).ok_or(format!("no inbound SA {spi:#x}"))?;
                        let sa = old.with_addresses(*local, *remote, natt);
                        self.sas_in.insert(*spi, Arc::new(sa));
                    }
                }
            }
            Command::SetSaPaths { spi, paths, natt } => {
                let first = paths.first().ok_or(format!("SA {spi:#x}: no path"))?;
                let paths = paths_of(first.0, first.1, &paths[1..])?;
                if !self.sas_out.contains_key(spi) {
                    return Err(format!("no outbound SA {spi:#x}"));
                }
                let natt = natt.map(|(l, r)| NattPorts { local: l, remote: r });
                if self.sas_out[spi].transport && paths.len() > 1 {
                    // The packet's own addresses are the path.
                    return Err(format!("SA {spi:#x}: a transport-mode SA has one path"));
                }
                self.multipath.set(*spi, paths.clone());
                match paths.as_slice() {
                    [one] => {
                        let old = &self.sas_out[spi];
                        let sa = old.with_addresses(one.0, one.1, natt).map_err(|e| e.to_string())?;
                        if sa.transport {
                            let was = old.remote;
                            self.move_transport_policy(*spi, was, one.1);
                        }
                        self.sas_out.insert(*spi, Arc::new(sa));
                    }
                    _ => self.repath(*spi, natt)?,
                }
            }
            Command::SetPolicy { dst, action } => {
                prefix(dst)?;
                if let PolicyAction::Protect(spi) = action {
                    if !self.sas_out.contains_key(spi) && !self.base.out_sas.iter().any(|s| s.handle == *spi) {
                        return Err(format!("policy {}/{}: no outbound SA with handle {spi:#x}", dst.addr, dst.len));
                    }
                }
                if let PolicyAction::Protect(_) = action {
                    self.covered((dst.addr, dst.len));
                }
                self.policies.insert((dst.addr, dst.len), *action);
            }
            Command::DeletePolicy { dst } => {
                self.policies.remove(&(dst.addr, dst.len)).ok_or("no such policy")?;
            }
            Command::SetRoute { dst, port, via } => {
                prefix(dst)?;
                if *port as usize >= self.base.ports.len() {
                    return Err(format!("route {}/{}: no port {port}", dst.addr, dst.len));
                }
                self.routes.insert((dst.addr, dst.len), Route { port: *port, via: *via });
            }
            Command::DeleteRoute { dst } => {
                self.routes.remove(&(dst.addr, dst.len)).ok_or("no such route")?;
            }
            Command::SetNeighbor { ip, mac } => {
                self.neighbors.insert(*ip, *mac);
            }
            Command::InstallGroupSa { group, sa, members, rollover1_secs, rollover2_secs } => {
                let mut p = sa_params(sa).map_err(|e| format!("group {group}: SA {:#x}: {e}", sa.spi))?;
                p.remote = p.local; // per packet: the member's address
                p.replay_window = 0; // no anti-replay on group SAs (mpsa-04 5.2.1)
                let mut ms = Vec::new();
                for (pre, addr) in members {
                    if addr.is_ipv4() != p.local.is_ipv4() {
                        return Err(format!("group {group}: member {addr} is not the family of {}", p.local));
                    }
                    ms.push(GroupMember { prefix: prefix(pre)?, addr: *addr });
                }
                // Our own prefix among the members is delivered here, not
                // protected: never discarded.
                let ours = |a: &IpAddr| self.base.is_local(*a) || self.addresses.iter().any(|(_, q)| q.addr == *a);
                let theirs: Vec<(IpAddr, u8)> =
                    members.iter().filter(|(_, a)| !ours(a)).map(|(p, _)| (p.addr, p.len)).collect();
                for pre in theirs {
                    self.covered(pre);
                }
                let inb = InboundSa::new(&p).map_err(|e| format!("group {group}: {e}"))?;
                let out = OutboundSa::new(&p).map_err(|e| format!("group {group}: {e}"))?;
                if self.sas_in.contains_key(&sa.spi) || self.base.spi_index.contains_key(&sa.spi) {
                    return Err(format!("group {group}: SPI {:#x} is already an inbound SA", sa.spi));
                }
                let g = self.groups.entry(group.clone()).or_insert_with(|| GroupState {
                    sas: BTreeMap::new(),
                    members: Vec::new(),
                    rollover: Rollover::new(),
                });
                g.members = ms;
                g.sas.insert(sa.spi, (Arc::new(inb), Arc::new(out)));
                let acts = g.rollover.install(
                    sa.spi,
                    now,
                    Duration::from_secs(*rollover1_secs as u64),
                    Duration::from_secs(*rollover2_secs as u64),
                );
                g.apply(acts);
            }
            Command::DeleteGroup { group } => {
                self.groups.remove(group).ok_or(format!("no group '{group}'"))?;
            }
            Command::AddAddress { port, addr } => {
                if *port as usize >= self.base.ports.len() {
                    return Err(format!("address {}/{}: no port {port}", addr.addr, addr.len));
                }
                let p = prefix(addr)?;
                // Keep the host address itself, not the masked prefix.
                let host = Prefix { addr: addr.addr, len: p.len };
                self.addresses.retain(|(_, q)| q.addr != addr.addr);
                self.addresses.push((*port, host));
            }
            Command::RemoveAddress { port, addr } => {
                let before = self.addresses.len();
                self.addresses.retain(|(pt, q)| !(pt == port && q.addr == *addr));
                if self.addresses.len() == before {
                    return Err(format!("address {addr} was not added on port {port} by the control plane"));
                }
            }
            Command::SyncDone
            | Command::Inject { .. }
            | Command::SendDatagram { .. }
            | Command::DumpCounters
            | Command::DumpState => return Ok(false),
        }
        Ok(true)
    }

    /// The tables for the workers: the config's, then the control plane's
    /// entries on top (they win where both name the same prefix).
    pub fn build(&self) -> Tables {
        let mut t = self.base.clone();
        for sa in self.sas_in.values() {
            t.add_inbound_arc(sa.clone());
        }
        let mut out_index = FxHashMap::default();
        for (i, sa) in t.out_sas.iter().enumerate() {
            out_index.insert(sa.handle, i);
        }
        for sa in self.sas_out.values() {
            out_index.insert(sa.handle, t.add_outbound_arc(sa.clone()));
        }
        for (&(a, l), r) in &self.routes {
            if let Ok(p) = Prefix::new(a, l) {
                t.add_route(p, *r);
            }
        }
        for (ip, mac) in &self.neighbors {
            t.neighbors.insert(*ip, *mac);
        }
        // First what failing closed discards; the policies and groups in
        // place now take their prefixes back below.
        for &(a, l) in self.fail_closed.iter().flatten() {
            if let Ok(p) = Prefix::new(a, l) {
                t.add_policy(p, Policy::Discard);
            }
        }
        for (&(a, l), action) in &self.policies {
            let pol = match action {
                PolicyAction::Protect(spi) => match out_index.get(spi) {
                    Some(&i) => Policy::Protect(i),
                    None => Policy::Discard, // its SA was deleted: fail closed
                },
                PolicyAction::Bypass => Policy::Bypass,
                PolicyAction::Discard => Policy::Discard,
            };
            if let Ok(p) = Prefix::new(a, l) {
                t.add_policy(p, pol);
            }
        }
        for (port, a) in &self.addresses {
            t.add_local_on(a.addr, *port);
            if let Ok(p) = Prefix::new(a.addr, a.len) {
                t.add_route(p, Route { port: *port, via: None });
            }
        }
        t.resolve_sa_next_hops();
        for g in self.groups.values() {
            for spi in g.rollover.inbound() {
                if let Some((inb, _)) = g.sas.get(spi) {
                    t.add_inbound_arc(inb.clone());
                }
            }
            if let Some((_, out)) = g.rollover.outbound().and_then(|s| g.sas.get(&s)) {
                let oi = t.add_outbound_arc(out.clone());
                t.push_unresolved_next_hop();
                t.add_group(oi, &g.members);
            }
        }
        t
    }

    /// What is installed, for [`cpdp::msg::Event::State`].
    pub fn describe(&self) -> cpdp::msg::Event {
        let t = self.build();
        let mut sas: Vec<(u32, Direction, String, IpAddr, IpAddr)> = t
            .out_sas
            .iter()
            .map(|s| (s.spi, Direction::Out, s.cipher.algorithm().to_string(), s.template_local(), s.remote))
            .collect();
        sas.extend(
            t.in_sas.iter().map(|s| (s.spi, Direction::In, s.cipher.algorithm().to_string(), s.local, s.remote)),
        );
        cpdp::msg::Event::State {
            sas,
            policies: self.policies.iter().map(|(&(addr, len), a)| (WirePrefix { addr, len }, *a)).collect(),
            groups: self
                .groups
                .iter()
                .map(|(n, g)| (n.clone(), g.rollover.outbound(), g.rollover.inbound().to_vec()))
                .collect(),
            addresses: self.addresses.iter().map(|(p, a)| (*p, WirePrefix { addr: a.addr, len: a.len })).collect(),
            routes: t.routes().iter().map(|(p, r)| (WirePrefix { addr: p.addr, len: p.len }, r.port, r.via)).collect(),
            neighbors: {
                let mut n: Vec<(IpAddr, [u8; 6])> = t.neighbors.iter().map(|(a, m)| (*a, *m)).collect();
                n.sort();
                n
            },
        }
    }
}

/// Watches every SA against its lifetime and sequence-number limit, on the
/// main lcore: reports each soft and hard crossing once, and stops an SA at
/// its hard limit (workers see `expired` and drop its traffic).
impl GroupState {
    /// Drops SAs the rollover removed; true if anything changed.
    fn apply(&mut self, acts: Vec<GroupAction>) -> bool {
        for a in &acts {
            if let GroupAction::RemoveInbound(s) = a {
                if self.rollover.outbound() != Some(*s) {
                    self.sas.remove(s);
                }
            }
        }
        !acts.is_empty()
    }
}

#[derive(Debug, Default)]
pub struct LifetimeMonitor {
    reported: FxHashMap<(u32, bool), crate::sa::LifetimeState>,
    exhausted: rustc_hash::FxHashSet<u32>,
}

impl LifetimeMonitor {
    pub fn check(&mut self, t: &Tables, now: std::time::Instant) -> Vec<cpdp::msg::Event> {
        use crate::sa::{LifetimeState, STAT_BYTES, STAT_PACKETS};
        use cpdp::msg::{Event, LifetimeKind};
        let mut out = Vec::new();
        let sas = t
            .out_sas
            .iter()
            .map(|s| (s.handle, true, &s.lifetime, &s.stats, s.installed, &s.expired))
            .chain(t.in_sas.iter().map(|s| (s.spi, false, &s.lifetime, &s.stats, s.installed, &s.expired)));
        for (spi, outbound, life, stats, installed, expired) in sas {
            let (p, b) = (stats.get(STAT_PACKETS), stats.get(STAT_BYTES));
            let st = life.state(p, b, now.saturating_duration_since(installed).as_secs());
            let prev = self.reported.get(&(spi, outbound)).copied().unwrap_or(LifetimeState::Fresh);
            if st > prev {
                if st == LifetimeState::Hard {
                    expired.store(true, std::sync::atomic::Ordering::Relaxed);
                }
                let kind = if st == LifetimeState::Hard { LifetimeKind::Hard } else { LifetimeKind::Soft };
                let direction = if outbound { Direction::Out } else { Direction::In };
                out.push(Event::Lifetime { spi, direction, kind, packets: p, bytes: b });
                self.reported.insert((spi, outbound), st);
            }
        }
        for sa in &t.out_sas {
            if sa.seq_used() >= sa.seq_limit() && self.exhausted.insert(sa.handle) {
                out.push(Event::SeqExhausted { spi: sa.handle });
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sa::{Lifetime, LifetimeState, STAT_BYTES, STAT_PACKETS};
    use cpdp::msg::{Event, LifetimeKind};
    use std::time::{Duration, Instant};
    use zeroize::Zeroizing;

    fn spec(spi: u32, dir: Direction) -> SaSpec {
        SaSpec {
            spi,
            handle: spi,
            direction: dir,
            alg: "aes128gcm".into(),
            enc_key: Zeroizing::new(vec![7; 20]),
            auth_key: Zeroizing::new(vec![]),
            local: "192.0.2.1".parse().unwrap(),
            remote: "192.0.2.2".parse().unwrap(),
            natt: None,
            esn: false,
            replay_window: 64,
            seq: 0,
            inner_src: vec![],
            inner_dst: vec![],
            lifetime: cpdp::msg::Lifetimes { soft_packets: 10, hard_packets: 20, hard_secs: 60, ..Default::default() },
            paths: vec![],
            transport: false,
        }
    }

    #[test]
    fn lifetime_states() {
        let l = Lifetime { soft_bytes: 100, hard_bytes: 200, soft_secs: 5, ..Default::default() };
        assert_eq!(l.state(0, 99, 0), LifetimeState::Fresh);
        assert_eq!(l.state(0, 100, 0), LifetimeState::Soft);
        assert_eq!(l.state(0, 0, 5), LifetimeState::Soft);
        assert_eq!(l.state(0, 250, 0), LifetimeState::Hard);
        assert_eq!(Lifetime::default().state(u64::MAX, u64::MAX, u64::MAX), LifetimeState::Fresh);
    }

    /// Two peers may choose the same SPI for their inbound SAs: our two
    /// outbound SAs then share a wire SPI but not a handle, and each
    /// policy finds its own SA (to its own peer); deleting one leaves the
    /// other, and lifetime events name the handle.
    #[test]
    fn outbound_sas_with_the_same_spi_are_kept_apart_by_handle() {
        let mut st = TableState::new(Tables::new(vec![]));
        let mut one = spec(0x77, Direction::Out);
        one.handle = 0x1001;
        let mut two = spec(0x77, Direction::Out);
        two.handle = 0x2002;
        two.remote = "192.0.2.3".parse().unwrap();
        st.apply(&Command::InstallSa(one)).unwrap();
        st.apply(&Command::InstallSa(two)).unwrap();
        let pol = |dst: &str, h: u32| Command::SetPolicy {
            dst: WirePrefix { addr: dst.parse().unwrap(), len: 24 },
            action: PolicyAction::Protect(h),
        };
        st.apply(&pol("10.1.1.0", 0x1001)).unwrap();
        st.apply(&pol("10.1.2.0", 0x2002)).unwrap();
        let remote_for = |t: &Tables, dst: &str| match t.policy(dst.parse().unwrap()) {
            Some(Policy::Protect(i)) => Some(t.out_sas[i].remote),
            _ => None,
        };
        let t = st.build();
        assert_eq!(t.out_sas.len(), 2);
        assert_eq!(remote_for(&t, "10.1.1.9"), Some("192.0.2.2".parse().unwrap()));
        assert_eq!(remote_for(&t, "10.1.2.9"), Some("192.0.2.3".parse().unwrap()));
        t.out_sas.iter().for_each(|sa| sa.stats.add(0, STAT_PACKETS, 12));
        let mut handles: Vec<u32> = LifetimeMonitor::default()
            .check(&t, Instant::now())
            .iter()
            .filter_map(|e| if let Event::Lifetime { spi, .. } = e { Some(*spi) } else { None })
            .collect();
        handles.sort_unstable();
        assert_eq!(handles, [0x1001, 0x2002], "events name the handle");
        st.apply(&Command::DeleteSa { spi: 0x1001, direction: Direction::Out }).unwrap();
        let t = st.build();
        assert_eq!(t.out_sas.len(), 1);
        assert_eq!(remote_for(&t, "10.1.2.9"), Some("192.0.2.3".parse().unwrap()), "the other stays");
        assert_eq!(t.policy("10.1.1.9".parse().unwrap()), Some(Policy::Discard), "fail closed");
    }

    #[test]
    fn soft_then_hard_reported_once_and_hard_stops_the_sa() {
        let mut st = TableState::new(Tables::new(vec![]));
        assert!(st.apply(&Command::InstallSa(spec(0x10, Direction::Out))).unwrap());
        let t = st.build();
        let mut m = LifetimeMonitor::default();
        let now = Instant::now();
        assert!(m.check(&t, now).is_empty());
        t.out_sas[0].stats.add(0, STAT_PACKETS, 12);
        t.out_sas[0].stats.add(0, STAT_BYTES, 1000);
        let e = m.check(&t, now);
        assert!(matches!(e[..], [Event::Lifetime { spi: 0x10, kind: LifetimeKind::Soft, packets: 12, .. }]), "{e:?}");
        assert!(m.check(&t, now).is_empty(), "once");
        assert!(!t.out_sas[0].expired.load(std::sync::atomic::Ordering::Relaxed));
        let e = m.check(&t, now + Duration::from_secs(61));
        assert!(matches!(e[..], [Event::Lifetime { kind: LifetimeKind::Hard, .. }]), "{e:?}");
        assert!(t.out_sas[0].expired.load(std::sync::atomic::Ordering::Relaxed), "stopped");
    }

    #[test]
    fn commands_are_checked_and_rejections_change_nothing() {
        let mut st = TableState::new(Tables::new(vec![]));
        let mut bad = spec(0x11, Direction::Out);
        bad.alg = "des".into();
        assert!(st.apply(&Command::InstallSa(bad)).unwrap_err().contains("unknown algorithm"));
        let mut bad = spec(0x12, Direction::In);
        bad.enc_key = Zeroizing::new(vec![1; 3]);
        assert!(st.apply(&Command::InstallSa(bad)).unwrap_err().contains("20 octets"));
        let pol = Command::SetPolicy {
            dst: WirePrefix { addr: "10.0.0.0".parse().unwrap(), len: 8 },
            action: PolicyAction::Protect(0x99),
        };
        assert!(st.apply(&pol).unwrap_err().contains("no outbound SA with handle 0x99"));
        assert!(st.apply(&Command::DeleteSa { spi: 5, direction: Direction::In }).is_err());
        let t = st.build();
        assert!(t.out_sas.is_empty() && t.in_sas.is_empty());
        // MOBIKE: new addresses, same SA, sequence numbers move forward.
        st.apply(&Command::InstallSa(spec(0x13, Direction::Out))).unwrap();
        let before = st.build().out_sas[0].clone();
        for _ in 0..5 {
            before.next_seq();
        }
        st.apply(&Command::UpdateSaAddresses {
            spi: 0x13,
            direction: Direction::Out,
            local: "198.51.100.1".parse().unwrap(),
            remote: "198.51.100.2".parse().unwrap(),
            natt: Some((4500, 4500)),
        })
        .unwrap();
        let after = st.build().out_sas[0].clone();
        assert_eq!(after.remote, "198.51.100.2".parse::<IpAddr>().unwrap());
        assert!(after.next_seq().unwrap() > 5);
        assert!(Arc::ptr_eq(&after.stats, &before.stats), "counters carry on");
    }

    /// A transport-mode SA that moves (MOBIKE-X 7.3) takes its policy,
    /// the host prefix of its peer, to the new peer address in the same
    /// command; it has one path; the inbound SA's ends follow.
    #[test]
    fn a_transport_sa_moves_with_its_policy() {
        let mut st = TableState::new(Tables::new(vec![]));
        let mut out = spec(0x21, Direction::Out);
        out.transport = true;
        let mut inb = spec(0x22, Direction::In);
        inb.transport = true;
        st.apply(&Command::InstallSa(out)).unwrap();
        st.apply(&Command::InstallSa(inb)).unwrap();
        let host = |a: &str| WirePrefix { addr: a.parse().unwrap(), len: 32 };
        st.apply(&Command::SetPolicy { dst: host("192.0.2.2"), action: PolicyAction::Protect(0x21) }).unwrap();
        let (new_l, new_r): (IpAddr, IpAddr) = ("198.51.100.1".parse().unwrap(), "198.51.100.2".parse().unwrap());
        for direction in [Direction::Out, Direction::In] {
            let spi = if direction == Direction::Out { 0x21 } else { 0x22 };
            st.apply(&Command::UpdateSaAddresses { spi, direction, local: new_l, remote: new_r, natt: None }).unwrap();
        }
        let t = st.build();
        assert!(matches!(t.policy(new_r), Some(Policy::Protect(0))), "the policy moved");
        assert!(t.policy("192.0.2.2".parse().unwrap()).is_none(), "none left at the old address");
        assert!(t.out_sas[0].transport && t.out_sas[0].remote == new_r);
        assert_eq!((t.in_sas[0].local, t.in_sas[0].remote), (new_l, new_r));
        assert!(t.has_transport_in());
        let two = Command::SetSaPaths {
            spi: 0x21,
            paths: vec![(new_l, new_r), (new_l, "203.0.113.9".parse().unwrap())],
            natt: None,
        };
        assert!(st.apply(&two).unwrap_err().contains("one path"));
    }

    fn group_cmd(spi: u32, r1: u32, r2: u32) -> Command {
        let mut sa = spec(spi, Direction::Out);
        sa.alg = "aes256cbc-sha1".into();
        sa.enc_key = Zeroizing::new(vec![3; 32]);
        sa.auth_key = Zeroizing::new(vec![4; 20]);
        Command::InstallGroupSa {
            group: "branches".into(),
            sa,
            members: vec![
                (WirePrefix { addr: "10.2.0.0".parse().unwrap(), len: 16 }, "192.0.2.2".parse().unwrap()),
                (WirePrefix { addr: "10.3.0.0".parse().unwrap(), len: 16 }, "192.0.2.3".parse().unwrap()),
            ],
            rollover1_secs: r1,
            rollover2_secs: r2,
        }
    }

    #[test]
    fn group_sas_over_commands_roll_over_on_time() {
        use crate::tables::PortInfo;
        let mut base = Tables::new(vec![PortInfo { mac: [2, 0, 0, 0, 0, 1], mtu: 1500 }]);
        base.add_local("192.0.2.1".parse().unwrap());
        let mut st = TableState::new(base);
        let t0 = Instant::now();
        assert!(st.apply_at(&group_cmd(0x3001, 0, 0), t0).unwrap());
        let t = st.build();
        assert_eq!((t.in_sas.len(), t.out_sas.len(), t.groups.len()), (1, 1, 1));
        assert_eq!(t.in_sas[0].replay_window, 0, "no anti-replay on group SAs");
        // Rekey: new SA inbound at once, outbound after 5 s, old gone after 20 s.
        st.apply_at(&group_cmd(0x3002, 5, 20), t0 + Duration::from_secs(100)).unwrap();
        let t = st.build();
        assert_eq!(t.in_sas.iter().map(|s| s.spi).collect::<Vec<_>>(), vec![0x3001, 0x3002]);
        assert_eq!(t.out_sas[t.groups[0].out_sa].spi, 0x3001);
        assert_eq!(st.next_deadline(), Some(t0 + Duration::from_secs(105)));
        assert!(!st.tick(t0 + Duration::from_secs(104)));
        assert!(st.tick(t0 + Duration::from_secs(105)));
        assert_eq!(st.build().out_sas[st.build().groups[0].out_sa].spi, 0x3002);
        assert!(st.tick(t0 + Duration::from_secs(120)));
        let t = st.build();
        assert_eq!(t.in_sas.iter().map(|s| s.spi).collect::<Vec<_>>(), vec![0x3002]);
        match st.describe() {
            cpdp::msg::Event::State { groups, .. } => {
                assert_eq!(groups, vec![("branches".into(), Some(0x3002), vec![0x3002])])
            }
            e => panic!("{e:?}"),
        }
        assert!(st.apply(&Command::DeleteGroup { group: "branches".into() }).unwrap());
        assert!(st.build().in_sas.is_empty());
        assert!(st.apply(&Command::DeleteGroup { group: "branches".into() }).is_err());
    }

    /// `[control] fail_closed` (issue 15): a prefix a tunnel or a group
    /// once protected is discarded, not bypassed, once nothing protects
    /// it: its policy deleted, its group gone, the tables flushed by a
    /// control plane starting again. Our own prefix among a group's
    /// members stays ours; a prefix never covered is bypassed as before.
    #[test]
    fn failing_closed_discards_what_was_once_protected() {
        use crate::tables::PortInfo;
        let run = |fail_closed: bool| {
            let mut base = Tables::new(vec![PortInfo { mac: [2, 0, 0, 0, 0, 1], mtu: 1500 }]);
            base.add_local("192.0.2.1".parse().unwrap());
            let mut st = TableState::new(base);
            st.set_fail_closed(fail_closed);
            st.apply(&Command::InstallSa(spec(0x21, Direction::Out))).unwrap();
            let tunnel = WirePrefix { addr: "10.9.0.0".parse().unwrap(), len: 16 };
            st.apply(&Command::SetPolicy { dst: tunnel, action: PolicyAction::Protect(0x21) }).unwrap();
            let mut g = group_cmd(0x3001, 0, 0);
            if let Command::InstallGroupSa { members, .. } = &mut g {
                // This endpoint's own LAN is a member prefix too.
                members.push((WirePrefix { addr: "10.1.0.0".parse().unwrap(), len: 16 }, "192.0.2.1".parse().unwrap()));
            }
            st.apply(&g).unwrap();
            let at = |st: &TableState, a: &str| st.build().policy(a.parse().unwrap());
            assert!(matches!(at(&st, "10.9.1.1"), Some(Policy::Protect(_))));
            assert!(matches!(at(&st, "10.2.1.1"), Some(Policy::ProtectGroup(_))));
            st.apply(&Command::DeletePolicy { dst: tunnel }).unwrap();
            let after_delete = at(&st, "10.9.1.1");
            st.apply(&Command::DeleteGroup { group: "branches".into() }).unwrap();
            let after_group = at(&st, "10.2.1.1");
            st.apply(&Command::InstallSa(spec(0x21, Direction::Out))).unwrap();
            st.apply(&Command::SetPolicy { dst: tunnel, action: PolicyAction::Protect(0x21) }).unwrap();
            st.apply(&Command::Flush).unwrap();
            (after_delete, after_group, at(&st, "10.9.1.1"), at(&st, "10.1.1.1"), at(&st, "172.16.0.1"))
        };
        let d = Some(Policy::Discard);
        assert_eq!(run(true), (d, d, d, None, None), "fail closed: discarded; our LAN and the rest bypassed");
        assert_eq!(run(false), (None, None, None, None, None), "off: no policy, bypassed");
    }

    /// A control plane that starts afresh flushes what an earlier one
    /// installed: group SAs and run-time addresses go with the SAs; the
    /// neighbours learned from the wire stay (issue 15).
    #[test]
    fn flush_removes_group_sas_and_addresses_and_keeps_learned_neighbours() {
        use crate::tables::PortInfo;
        let mut base = Tables::new(vec![PortInfo { mac: [2, 0, 0, 0, 0, 1], mtu: 1500 }]);
        base.add_local("192.0.2.1".parse().unwrap());
        let mut st = TableState::new(base);
        let t0 = Instant::now();
        st.apply_at(&group_cmd(0x3001, 0, 0), t0).unwrap();
        let peer: IpAddr = "192.0.2.2".parse().unwrap();
        st.apply(&Command::SetNeighbor { ip: peer, mac: [2, 0, 0, 0, 0, 2] }).unwrap();
        let v6 = WirePrefix { addr: "2001:db8:1::1".parse().unwrap(), len: 64 };
        st.apply(&Command::AddAddress { port: 0, addr: v6 }).unwrap();
        st.apply(&Command::Flush).unwrap();
        let t = st.build();
        assert!(t.groups.is_empty() && t.in_sas.is_empty() && t.out_sas.is_empty());
        assert!(st.apply(&Command::DeleteGroup { group: "branches".into() }).is_err(), "the group is gone");
        assert!(st.apply(&Command::RemoveAddress { port: 0, addr: v6.addr }).is_err(), "the address is gone");
        assert_eq!(t.neighbors.get(&peer), Some(&[2, 0, 0, 0, 0, 2]), "the neighbour stays");
    }

    #[test]
    fn addresses_come_and_go() {
        use crate::tables::PortInfo;
        let mut st = TableState::new(Tables::new(vec![PortInfo { mac: [2, 0, 0, 0, 0, 1], mtu: 1500 }]));
        let a = WirePrefix { addr: "198.51.100.9".parse().unwrap(), len: 24 };
        assert!(st.apply(&Command::AddAddress { port: 0, addr: a }).unwrap());
        let t = st.build();
        assert!(t.is_local("198.51.100.9".parse().unwrap()));
        assert_eq!(t.route("198.51.100.77".parse().unwrap()).map(|r| r.port), Some(0));
        assert!(st.apply(&Command::AddAddress { port: 3, addr: a }).is_err(), "no such port");
        assert!(st.apply(&Command::RemoveAddress { port: 0, addr: a.addr }).unwrap());
        assert!(!st.build().is_local(a.addr));
        assert!(st.apply(&Command::RemoveAddress { port: 0, addr: a.addr }).is_err());
    }
}
