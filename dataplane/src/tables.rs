//! What the workers look things up in: our addresses, SAs by SPI, the
//! security policy (inner destination -> protect / bypass / discard),
//! routes, neighbours and the ports' link-layer facts.
//!
//! Built by the main lcore (from config now, from control-plane commands
//! later) and shared read-only with the workers behind an `Arc`; an update
//! is a new `Tables` published to them (make-before-break).

use std::net::IpAddr;
use std::sync::Arc;

use rustc_hash::{FxHashMap, FxHashSet};

use crate::lpm::{Lpm, Prefix};
use crate::sa::{InboundSa, OutboundSa};

/// Security policy for traffic to a destination prefix (RFC 4301 4.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// Encrypt with the outbound SA at this index.
    Protect(usize),
    /// Encrypt with the group SA of group `g` and send to the member
    /// endpoint whose prefix holds the destination.
    ProtectGroup(usize),
    /// Forward in the clear.
    Bypass,
    Discard,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    pub port: u16,
    /// Next hop; `None` = the destination is on the link.
    pub via: Option<IpAddr>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortInfo {
    pub mac: [u8; 6],
    /// Largest IP packet the port sends.
    pub mtu: usize,
}

#[derive(Debug, Clone)]
pub struct Tables {
    pub ports: Vec<PortInfo>,
    /// Our own addresses, by family (primitive keys hash in one multiply).
    local4: FxHashSet<u32>,
    local6: FxHashSet<u128>,
    pub out_sas: Vec<Arc<OutboundSa>>,
    pub in_sas: Vec<Arc<InboundSa>>,
    /// Per inbound SA (same index): for a group SA, who may send on it.
    in_sources: Vec<Option<Arc<MemberPrefixes>>>,
    /// Inbound SPI -> index into `in_sas`.
    pub spi_index: FxHashMap<u32, usize>,
    spd4: Lpm<Policy>,
    spd6: Lpm<Policy>,
    routes4: Lpm<Route>,
    routes6: Lpm<Route>,
    pub neighbors: FxHashMap<IpAddr, [u8; 6]>,
    pub groups: Vec<GroupRoute>,
    /// Per outbound SA: its resolved next hop (see `resolve_sa_next_hops`).
    sa_next_hops: Vec<Result<NextHop, crate::drop::DropReason>>,
    /// The port each of our addresses is on (multihoming: a path leaves by
    /// its local address's port).
    local_ports: FxHashMap<IpAddr, u16>,
    /// Every route, for next hops chosen by port (`route_from`).
    route_list: Vec<(Prefix, Route)>,
    /// Whether any inbound SA is in transport mode (ESP to addresses not
    /// ours is looked at only then).
    transport_in: bool,
}

/// A group member endpoint: the inner prefix behind it, its outer address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupMember {
    pub prefix: Prefix,
    pub addr: IpAddr,
}

/// A group's members by inner prefix: the longest member prefix holding
/// an address names the member (its outer address). Where group traffic
/// goes ([`GroupRoute`]) and who may send it ([`Tables::group_sources`]):
/// MPSA has no data origin authentication (mpsa-04 section 5), so an
/// inbound group packet is taken only when its inner source is a prefix of
/// the member it came from, by outer source; anything else is dropped as
/// `group_source_mismatch`, a packet from an address no member has too.
#[derive(Debug, Clone)]
pub struct MemberPrefixes {
    v4: Lpm<IpAddr>,
    v6: Lpm<IpAddr>,
}

impl MemberPrefixes {
    pub fn new(members: &[GroupMember]) -> MemberPrefixes {
        let mut s = MemberPrefixes { v4: Lpm::new_v4(), v6: Lpm::new_v6() };
        members.iter().for_each(|m| s.insert(m));
        s
    }

    fn insert(&mut self, m: &GroupMember) {
        if m.prefix.addr.is_ipv4() {
            self.v4.insert(m.prefix, m.addr);
        } else {
            self.v6.insert(m.prefix, m.addr);
        }
    }

    /// The outer address of the member whose prefix holds `inner`.
    #[inline]
    pub fn member(&self, inner: IpAddr) -> Option<IpAddr> {
        if inner.is_ipv4() { self.v4.lookup(inner) } else { self.v6.lookup(inner) }.copied()
    }

    /// Whether `inner_src` is in a prefix of the member at `outer_src`.
    #[inline]
    pub fn allows(&self, outer_src: IpAddr, inner_src: IpAddr) -> bool {
        self.member(inner_src) == Some(outer_src)
    }
}

/// Where a group's traffic goes: its current outbound SA and the members.
#[derive(Debug, Clone)]
pub struct GroupRoute {
    /// Index into `out_sas` of the SA sent with now.
    pub out_sa: usize,
    /// The members other than us.
    members: MemberPrefixes,
    /// Resolved next hop per member address.
    next_hops: FxHashMap<IpAddr, Result<NextHop, crate::drop::DropReason>>,
}

impl GroupRoute {
    /// The member endpoint for inner destination `dst`, with its next hop.
    #[inline]
    /// `Err((member, reason))`: the member is known but its next hop is not
    /// (yet): the caller asks for it to be resolved.
    pub fn member(&self, dst: IpAddr) -> Result<(IpAddr, NextHop), (Option<IpAddr>, crate::drop::DropReason)> {
        let addr = self.members.member(dst).ok_or((None, crate::drop::DropReason::NoRoute))?;
        let nh = self.next_hops.get(&addr).copied().unwrap_or(Err(crate::drop::DropReason::NoRoute));
        nh.map(|nh| (addr, nh)).map_err(|r| (Some(addr), r))
    }
}

/// Where a packet leaves: port, Ethernet destination and source, MTU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NextHop {
    pub port: u16,
    pub dst_mac: [u8; 6],
    pub src_mac: [u8; 6],
    pub mtu: usize,
}

impl Tables {
    /// Every route, config and control plane, as added.
    pub fn routes(&self) -> &[(Prefix, Route)] {
        &self.route_list
    }

    pub fn new(ports: Vec<PortInfo>) -> Tables {
        Tables {
            ports,
            local4: FxHashSet::default(),
            local6: FxHashSet::default(),
            out_sas: Vec::new(),
            in_sas: Vec::new(),
            in_sources: Vec::new(),
            spi_index: FxHashMap::default(),
            spd4: Lpm::new_v4(),
            spd6: Lpm::new_v6(),
            routes4: Lpm::new_v4(),
            routes6: Lpm::new_v6(),
            neighbors: FxHashMap::default(),
            sa_next_hops: Vec::new(),
            groups: Vec::new(),
            local_ports: FxHashMap::default(),
            route_list: Vec::new(),
            transport_in: false,
        }
    }

    /// Whether any inbound SA is in transport mode.
    #[inline]
    pub fn has_transport_in(&self) -> bool {
        self.transport_in
    }

    /// One of our addresses, on port `port`.
    pub fn add_local_on(&mut self, a: IpAddr, port: u16) {
        self.add_local(a);
        self.local_ports.insert(a, port);
    }

    /// The port our address `a` is on.
    pub fn port_of_local(&self, a: IpAddr) -> Option<u16> {
        self.local_ports.get(&a).copied()
    }

    /// Our addresses on port `port`.
    pub fn addresses_on(&self, port: u16) -> Vec<IpAddr> {
        let mut v: Vec<IpAddr> = self.local_ports.iter().filter(|(_, p)| **p == port).map(|(a, _)| *a).collect();
        v.sort();
        v
    }

    /// The route for `dst` from our address `src`: where `src` is on
    /// another port than the route for `dst`, the longest route to `dst`
    /// through `src`'s port, if there is one (a multihomed host sends
    /// each path out of its own uplink).
    pub fn route_from(&self, src: IpAddr, dst: IpAddr) -> Option<Route> {
        let r = self.route(dst);
        let Some(p) = self.port_of_local(src) else { return r };
        if r.is_some_and(|r| r.port == p) {
            return r;
        }
        self.route_list
            .iter()
            .filter(|(pre, rt)| rt.port == p && pre.contains(dst))
            .max_by_key(|(pre, _)| pre.len)
            .map(|(_, rt)| *rt)
            .or(r)
    }

    pub fn add_local(&mut self, a: IpAddr) {
        match a {
            IpAddr::V4(v) => self.local4.insert(v.into()),
            IpAddr::V6(v) => self.local6.insert(v.into()),
        };
    }

    /// The address ICMP errors come from: our lowest address of the family.
    pub fn icmp_source(&self, v6: bool) -> Option<IpAddr> {
        if v6 {
            self.local6.iter().min().map(|&a| IpAddr::V6(a.into()))
        } else {
            self.local4.iter().min().map(|&a| IpAddr::V4(a.into()))
        }
    }

    /// Whether `a` is one of our own addresses.
    #[inline]
    pub fn is_local(&self, a: IpAddr) -> bool {
        match a {
            IpAddr::V4(v) => self.local4.contains(&u32::from(v)),
            IpAddr::V6(v) => self.local6.contains(&u128::from(v)),
        }
    }

    /// The precomputed next hop of outbound SA `i` (port, Ethernet
    /// addresses), or why there is none.
    #[inline]
    pub fn sa_next_hop(&self, i: usize) -> Result<NextHop, crate::drop::DropReason> {
        self.sa_next_hops.get(i).copied().unwrap_or(Err(crate::drop::DropReason::NoRoute))
    }

    /// Resolves every outbound SA's peer address once (route + neighbour),
    /// so encapsulation needs no lookup per packet. Call after the routes
    /// and neighbours are in; a changed neighbour means new tables.
    pub fn resolve_sa_next_hops(&mut self) {
        self.sa_next_hops = self.out_sas.iter().map(|sa| self.next_hop_from(sa.template_local(), sa.remote)).collect();
    }

    /// Keeps `sa_next_hops` aligned with `out_sas` for an SA resolved per
    /// packet instead (group SAs).
    pub fn push_unresolved_next_hop(&mut self) {
        self.sa_next_hops.push(Err(crate::drop::DropReason::NoRoute));
    }

    /// Route and neighbour for `dst` from our address `src` (`route_from`).
    pub fn next_hop_from(&self, src: IpAddr, dst: IpAddr) -> Result<NextHop, crate::drop::DropReason> {
        self.resolve(self.route_from(src, dst), dst)
    }

    /// Route and neighbour for `dst`.
    #[inline]
    pub fn next_hop(&self, dst: IpAddr) -> Result<NextHop, crate::drop::DropReason> {
        self.resolve(self.route(dst), dst)
    }

    #[inline]
    fn resolve(&self, r: Option<Route>, dst: IpAddr) -> Result<NextHop, crate::drop::DropReason> {
        use crate::drop::DropReason;
        let r = r.ok_or(DropReason::NoRoute)?;
        let port = self.ports.get(r.port as usize).ok_or(DropReason::NoRoute)?;
        let mac = *self.neighbors.get(&r.via.unwrap_or(dst)).ok_or(DropReason::NoNeighbor)?;
        Ok(NextHop { port: r.port, dst_mac: mac, src_mac: port.mac, mtu: port.mtu })
    }

    /// Adds a group: traffic to each member's prefix (except our own) is
    /// sent with outbound SA `out_sa` to that member. Returns its index.
    /// Call after routes and neighbours are in.
    pub fn add_group(&mut self, out_sa: usize, members: &[GroupMember]) -> usize {
        let g = self.groups.len();
        let mut route = GroupRoute { out_sa, members: MemberPrefixes::new(&[]), next_hops: FxHashMap::default() };
        for m in members {
            if self.is_local(m.addr) {
                continue; // our own prefix: delivered locally, not sent to us
            }
            route.members.insert(m);
            route.next_hops.insert(m.addr, self.next_hop(m.addr));
            self.add_policy(m.prefix, Policy::ProtectGroup(g));
        }
        self.groups.push(route);
        g
    }

    /// Adds an inbound SA; false if its SPI is taken.
    pub fn add_inbound(&mut self, sa: InboundSa) -> bool {
        self.add_inbound_arc(Arc::new(sa))
    }

    /// Adds an inbound SA shared with other tables (an update keeps the
    /// SAs it does not change).
    pub fn add_inbound_arc(&mut self, sa: Arc<InboundSa>) -> bool {
        if self.spi_index.contains_key(&sa.spi) {
            return false;
        }
        self.spi_index.insert(sa.spi, self.in_sas.len());
        self.transport_in |= sa.transport;
        self.in_sas.push(sa);
        self.in_sources.push(None);
        true
    }

    /// Adds a group's inbound SA: only its members may send on it, each
    /// from its own prefixes (`sources`). False if its SPI is taken.
    pub fn add_group_inbound(&mut self, sa: Arc<InboundSa>, sources: Arc<MemberPrefixes>) -> bool {
        if !self.add_inbound_arc(sa) {
            return false;
        }
        *self.in_sources.last_mut().expect("just pushed") = Some(sources);
        true
    }

    /// For inbound SA `i` of a group, who may send on it.
    #[inline]
    pub fn group_sources(&self, i: usize) -> Option<&MemberPrefixes> {
        self.in_sources.get(i).and_then(|s| s.as_deref())
    }

    /// Adds an outbound SA and returns its index for [`Policy::Protect`].
    pub fn add_outbound(&mut self, sa: OutboundSa) -> usize {
        self.add_outbound_arc(Arc::new(sa))
    }

    /// Adds an outbound SA shared with other tables; its sequence numbers
    /// continue across tables.
    pub fn add_outbound_arc(&mut self, sa: Arc<OutboundSa>) -> usize {
        self.out_sas.push(sa);
        self.out_sas.len() - 1
    }

    pub fn add_policy(&mut self, dst: Prefix, p: Policy) {
        if dst.addr.is_ipv4() {
            self.spd4.insert(dst, p);
        } else {
            self.spd6.insert(dst, p);
        }
    }

    pub fn add_route(&mut self, dst: Prefix, r: Route) {
        // One entry per (prefix, port): a second uplink's default route
        // stays a route through that port (`route_from`).
        self.route_list.retain(|(p, x)| !(*p == dst && x.port == r.port));
        self.route_list.push((dst, r));
        if dst.addr.is_ipv4() {
            self.routes4.insert(dst, r);
        } else {
            self.routes6.insert(dst, r);
        }
    }

    #[inline]
    pub fn policy(&self, dst: IpAddr) -> Option<Policy> {
        match dst {
            IpAddr::V4(_) => self.spd4.lookup(dst).copied(),
            IpAddr::V6(_) => self.spd6.lookup(dst).copied(),
        }
    }

    #[inline]
    pub fn route(&self, dst: IpAddr) -> Option<Route> {
        match dst {
            IpAddr::V4(_) => self.routes4.lookup(dst).copied(),
            IpAddr::V6(_) => self.routes6.lookup(dst).copied(),
        }
    }
}

use crate::config::{Action, Config, ConfigError, Direction};
use crate::crypto::Algorithm;
use crate::sa::{NattPorts, SaParams};
use zeroize::Zeroizing;

/// Parses `aa:bb:cc:dd:ee:ff`.
pub fn parse_mac(s: &str) -> Result<[u8; 6], String> {
    let parts: Vec<&str> = s.split(':').collect();
    if parts.len() != 6 {
        return Err(format!("'{s}' is not a MAC address (aa:bb:cc:dd:ee:ff)"));
    }
    let mut m = [0u8; 6];
    for (i, p) in parts.iter().enumerate() {
        m[i] = u8::from_str_radix(p, 16).map_err(|_| format!("'{s}' is not a MAC address"))?;
    }
    Ok(m)
}

/// Parses a hex string (spaces and colons allowed) into key bytes.
pub fn parse_hex(s: &str) -> Result<Zeroizing<Vec<u8>>, String> {
    let s: String = s.chars().filter(|c| !c.is_whitespace() && *c != ':').collect();
    let s = s.strip_prefix("0x").unwrap_or(&s);
    if s.len() % 2 != 0 {
        return Err("hex string has an odd number of digits".into());
    }
    let mut out = Zeroizing::new(Vec::with_capacity(s.len() / 2));
    for i in (0..s.len()).step_by(2) {
        out.push(u8::from_str_radix(&s[i..i + 2], 16).map_err(|_| "not a hex string".to_string())?);
    }
    Ok(out)
}

impl Tables {
    /// Builds the gateway tables from a config; `macs` are the ports' MAC
    /// addresses (from the devices). Errors name the field at fault.
    pub fn from_config(cfg: &Config, origin: &str, macs: &[[u8; 6]]) -> Result<Tables, ConfigError> {
        let bad = |field: String, message: String| ConfigError::Invalid { path: origin.into(), field, message };
        let port_index = |name: &str, field: String| {
            cfg.ports
                .iter()
                .position(|p| p.name == name)
                .map(|i| i as u16)
                .ok_or_else(|| bad(field, format!("no port named '{name}'")))
        };
        let mut ports = Vec::new();
        for (i, p) in cfg.ports.iter().enumerate() {
            let mac = match &p.mac {
                Some(m) => parse_mac(m).map_err(|e| bad(format!("port[{i}].mac"), e))?,
                None => macs.get(i).copied().unwrap_or_default(),
            };
            if p.mtu < 1280 {
                return Err(bad(format!("port[{i}].mtu"), format!("{} is below 1280", p.mtu)));
            }
            ports.push(PortInfo { mac, mtu: p.mtu as usize });
        }
        let mut t = Tables::new(ports);
        for (i, p) in cfg.ports.iter().enumerate() {
            for (j, a) in p.addresses.iter().enumerate() {
                let pre: Prefix = a.parse().map_err(|e| bad(format!("port[{i}].addresses[{j}]"), e))?;
                let addr: IpAddr = a
                    .split('/')
                    .next()
                    .unwrap_or("")
                    .parse()
                    .map_err(|_| bad(format!("port[{i}].addresses[{j}]"), format!("'{a}' is not an address")))?;
                t.add_local_on(addr, i as u16);
                // The connected subnet routes to this port.
                t.add_route(pre, Route { port: i as u16, via: None });
            }
        }
        for (i, r) in cfg.routes.iter().enumerate() {
            let dst: Prefix = r.dst.parse().map_err(|e| bad(format!("route[{i}].dst"), e))?;
            let port = port_index(&r.port, format!("route[{i}].port"))?;
            let via = match &r.via {
                Some(v) => {
                    let a: IpAddr =
                        v.parse().map_err(|_| bad(format!("route[{i}].via"), format!("'{v}' is not an address")))?;
                    if a.is_ipv4() != dst.addr.is_ipv4() {
                        return Err(bad(format!("route[{i}].via"), "not the family of dst".into()));
                    }
                    Some(a)
                }
                None => None,
            };
            t.add_route(dst, Route { port, via });
        }
        for (i, n) in cfg.neighbors.iter().enumerate() {
            let ip: IpAddr =
                n.ip.parse().map_err(|_| bad(format!("neighbor[{i}].ip"), format!("'{}' is not an address", n.ip)))?;
            let mac = parse_mac(&n.mac).map_err(|e| bad(format!("neighbor[{i}].mac"), e))?;
            t.neighbors.insert(ip, mac);
        }
        let mut out_index: FxHashMap<u32, usize> = FxHashMap::default();
        for (i, s) in cfg.sas.iter().enumerate() {
            let f = |n: &str| format!("sa[{i}].{n}");
            let alg: Algorithm = s.alg.parse().map_err(|e| bad(f("alg"), e))?;
            let enc_key = parse_hex(&s.key).map_err(|e| bad(f("key"), e))?;
            let auth_key = parse_hex(&s.auth_key).map_err(|e| bad(f("auth_key"), e))?;
            let addr = |v: &str, n: &str| -> Result<IpAddr, ConfigError> {
                v.parse().map_err(|_| bad(f(n), format!("'{v}' is not an address")))
            };
            let prefixes = |v: &[String], n: &str| -> Result<Vec<Prefix>, ConfigError> {
                v.iter().enumerate().map(|(j, v)| v.parse().map_err(|e| bad(format!("sa[{i}].{n}[{j}]"), e))).collect()
            };
            if s.replay_window > crate::replay::MAX_WINDOW {
                return Err(bad(f("replay_window"), format!("at most {}", crate::replay::MAX_WINDOW)));
            }
            let p = SaParams {
                spi: s.spi,
                alg,
                enc_key,
                auth_key,
                local: addr(&s.local, "local")?,
                remote: addr(&s.remote, "remote")?,
                natt: s.natt.then_some(NattPorts { local: s.natt_local_port, remote: s.natt_remote_port }),
                esn: s.esn,
                replay_window: s.replay_window,
                inner_src: prefixes(&s.inner_src, "inner_src")?,
                inner_dst: prefixes(&s.inner_dst, "inner_dst")?,
                lifetime: crate::sa::Lifetime {
                    soft_bytes: s.soft_bytes,
                    hard_bytes: s.hard_bytes,
                    soft_packets: s.soft_packets,
                    hard_packets: s.hard_packets,
                    soft_secs: s.soft_secs,
                    hard_secs: s.hard_secs,
                },
                transport: s.mode == crate::config::SaMode::Transport,
            };
            if p.transport && !(s.inner_src.is_empty() && s.inner_dst.is_empty()) {
                return Err(bad(f("inner_src"), "a transport-mode SA is selected by its local and remote".into()));
            }
            match s.direction {
                Direction::In => {
                    let sa = InboundSa::new(&p).map_err(|e| bad(format!("sa[{i}]"), e.to_string()))?;
                    if !t.add_inbound(sa) {
                        return Err(bad(f("spi"), format!("inbound SPI {:#x} is used twice", s.spi)));
                    }
                }
                Direction::Out => {
                    let sa = OutboundSa::new(&p).map_err(|e| bad(format!("sa[{i}]"), e.to_string()))?;
                    sa.set_seq(s.seq);
                    if out_index.insert(s.spi, t.add_outbound(sa)).is_some() {
                        return Err(bad(f("spi"), format!("outbound SPI {:#x} is used twice", s.spi)));
                    }
                }
            }
        }
        if let Some(c) = &cfg.control {
            c.bypass_prefixes().map_err(|(f, e)| bad(f, e))?;
        }
        for (i, p) in cfg.policies.iter().enumerate() {
            let dst: Prefix = p.dst.parse().map_err(|e| bad(format!("policy[{i}].dst"), e))?;
            let pol =
                match (p.action, p.sa) {
                    (Action::Protect, Some(spi)) => Policy::Protect(*out_index.get(&spi).ok_or_else(|| {
                        bad(format!("policy[{i}].sa"), format!("no outbound [[sa]] with SPI {spi:#x}"))
                    })?),
                    (Action::Protect, None) => {
                        return Err(bad(format!("policy[{i}].sa"), "protect needs the SPI of an outbound SA".into()))
                    }
                    (Action::Bypass, None) => Policy::Bypass,
                    (Action::Discard, None) => Policy::Discard,
                    (_, Some(_)) => return Err(bad(format!("policy[{i}].sa"), "only protect takes an SA".into())),
                };
            t.add_policy(dst, pol);
        }
        t.resolve_sa_next_hops();
        let mut names = std::collections::HashSet::new();
        for (i, g) in cfg.groups.iter().enumerate() {
            let f = |n: &str| format!("group[{i}].{n}");
            if !names.insert(g.name.as_str()) {
                return Err(bad(f("name"), format!("'{}' is used twice", g.name)));
            }
            let alg: Algorithm = g.alg.parse().map_err(|e| bad(f("alg"), e))?;
            let local: IpAddr =
                g.local.parse().map_err(|_| bad(f("local"), format!("'{}' is not an address", g.local)))?;
            let mut members = Vec::new();
            for (j, m) in g.members.iter().enumerate() {
                let prefix: Prefix = m.prefix.parse().map_err(|e| bad(format!("group[{i}].members[{j}].prefix"), e))?;
                let addr: IpAddr = m.address.parse().map_err(|_| {
                    bad(format!("group[{i}].members[{j}].address"), format!("'{}' is not an address", m.address))
                })?;
                if addr.is_ipv4() != local.is_ipv4() {
                    return Err(bad(format!("group[{i}].members[{j}].address"), "not the family of local".into()));
                }
                members.push(GroupMember { prefix, addr });
            }
            let p = SaParams {
                spi: g.spi,
                alg,
                enc_key: parse_hex(&g.key).map_err(|e| bad(f("key"), e))?,
                auth_key: parse_hex(&g.auth_key).map_err(|e| bad(f("auth_key"), e))?,
                local,
                // Per packet: the member's address.
                remote: local,
                natt: g.natt.then_some(NattPorts { local: 4500, remote: 4500 }),
                esn: g.esn,
                // Group SAs have no anti-replay check (mpsa-04 5.2.1).
                replay_window: 0,
                inner_src: Vec::new(),
                inner_dst: Vec::new(),
                // The control plane's rollover ends a group SA's life.
                lifetime: Default::default(),
                transport: false,
            };
            let inb = InboundSa::new(&p).map_err(|e| bad(format!("group[{i}]"), e.to_string()))?;
            if !t.add_group_inbound(Arc::new(inb), Arc::new(MemberPrefixes::new(&members))) {
                return Err(bad(f("spi"), format!("SPI {:#x} is already an inbound SA", g.spi)));
            }
            let out = OutboundSa::new(&p).map_err(|e| bad(format!("group[{i}]"), e.to_string()))?;
            let oi = t.add_outbound(out);
            t.push_unresolved_next_hop(); // resolved per member instead
            t.add_group(oi, &members);
        }
        Ok(t)
    }
}
