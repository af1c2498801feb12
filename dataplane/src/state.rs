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
use crate::tables::{GroupMember, MemberPrefixes, Policy, Route, Tables};
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
    /// `[control] no_match = "discard"`: the prefixes bypassed still.
    no_match_bypass: Option<Vec<Prefix>>,
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
            no_match_bypass: None,
        }
    }

    /// `[control] fail_closed`: from now on, a prefix once protected is
    /// discarded while nothing protects it.
    pub fn set_fail_closed(&mut self, on: bool) {
        self.fail_closed = on.then(BTreeSet::new);
    }

    /// `[control] no_match = "discard"`: traffic no policy matches is
    /// discarded but for the `bypass` prefixes (None: bypassed, as by
    /// default).
    pub fn set_no_match_discard(&mut self, bypass: Option<Vec<Prefix>>) {
        self.no_match_bypass = bypass;
    }

    /// Prefix `p` is protected now: remembered when failing closed.
    fn covered(&mut self, p: (IpAddr, u8)) {
        if let Some(c) = self.fail_closed.as_mut() {
            c.insert(p);
        }
    }

    /// A group's member table, checked: every member address of the
    /// family of the group SA's own (`local`).
    fn group_members(
        &self,
        group: &str,
        members: &[(WirePrefix, IpAddr)],
        local: IpAddr,
    ) -> Result<Vec<GroupMember>, String> {
        let mut ms = Vec::with_capacity(members.len());
        for (pre, addr) in members {
            if addr.is_ipv4() != local.is_ipv4() {
                return Err(format!("group {group}: member {addr} is not the family of {local}"));
            }
            ms.push(GroupMember { prefix: prefix(pre)?, addr: *addr });
        }
        Ok(ms)
    }

    /// Other members' prefixes are covered from now on (fail closed);
    /// our own prefix among the members is delivered here, not
    /// protected: never discarded.
    fn cover_members(&mut self, ms: &[GroupMember]) {
        let ours = |a: IpAddr| self.base.is_local(a) || self.addresses.iter().any(|(_, q)| q.addr == a);
        let theirs: Vec<(IpAddr, u8)> =
            ms.iter().filter(|m| !ours(m.addr)).map(|m| (m.prefix.addr, m.prefix.len)).collect();
        theirs.into_iter().for_each(|pre| self.covered(pre));
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
                let ms = self.group_members(group, members, p.local)?;
                let inb = InboundSa::new(&p).map_err(|e| format!("group {group}: {e}"))?;
                let out = OutboundSa::new(&p).map_err(|e| format!("group {group}: {e}"))?;
                if self.sas_in.contains_key(&sa.spi) || self.base.spi_index.contains_key(&sa.spi) {
                    return Err(format!("group {group}: SPI {:#x} is already an inbound SA", sa.spi));
                }
                self.cover_members(&ms);
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
            Command::SetGroupMembers { group, members } => {
                let family = self.groups.get(group).and_then(|g| g.sas.values().next()).map(|(i, _)| i.local);
                let local = family.ok_or(format!("no group '{group}'"))?;
                let ms = self.group_members(group, members, local)?;
                self.cover_members(&ms);
                if let Some(g) = self.groups.get_mut(group) {
                    g.members = ms;
                }
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
        // The default for no match, then what failing closed discards;
        // the policies and groups in place now take their prefixes back
        // below (a longer prefix, or the same one set later).
        if let Some(bypass) = &self.no_match_bypass {
            for all in ["0.0.0.0", "::"] {
                if let Ok(p) = Prefix::new(all.parse().expect("an address"), 0) {
                    t.add_policy(p, Policy::Discard);
                }
            }
            for p in bypass {
                t.add_policy(*p, Policy::Bypass);
            }
        }
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
            let sources = Arc::new(MemberPrefixes::new(&g.members));
            for spi in g.rollover.inbound() {
                if let Some((inb, _)) = g.sas.get(spi) {
                    t.add_group_inbound(inb.clone(), sources.clone());
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
mod tests;
