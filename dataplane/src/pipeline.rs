//! One worker's packet pipeline: classify -> ESP decap / encap -> route ->
//! Ethernet, over a [`PacketBuf`]. Returns a [`Verdict`] per packet and
//! counts every drop by reason, per worker and per SA.
//!
//! Panic policy: none on any input; every rejection is a [`DropReason`].

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use crate::buf::PacketBuf;
use crate::drop::DropReason;
use crate::ipsec::{self, wire_drop};
use crate::replay::ReplayWindow;
use crate::sa::{STAT_BYTES, STAT_ICV, STAT_PACKETS, STAT_REPLAY};
use crate::tables::{NextHop, Policy, Tables};
use crate::transport;
use crate::wire::{ethernet, icmp, ipproto, ipv4, ipv6, udp};

/// What to do with a packet after [`Worker::process`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Send on this port (the buffer holds the whole frame).
    Tx(u16),
    /// For the control plane: IKE, ARP, anything addressed to us.
    Punt,
    /// Dropped (already counted).
    Drop(DropReason),
}

/// Counters one worker writes and anyone may read (single writer: a
/// relaxed load and store, no locked instruction).
#[derive(Debug)]
pub struct WorkerStats {
    pub drops: [AtomicU64; DropReason::COUNT],
    pub punted: AtomicU64,
    pub encrypted: AtomicU64,
    pub decrypted: AtomicU64,
    pub forwarded: AtomicU64,
    /// The SPI of the last packet dropped as unknown (u64::MAX: none), for
    /// the auditable event RFC 4303 3.4.2 asks for.
    pub last_unknown_spi: AtomicU64,
    /// ICMP errors sent (time exceeded, packet too big).
    pub icmp_errors: AtomicU64,
}

#[inline]
fn bump(c: &AtomicU64, n: u64) {
    c.store(c.load(Relaxed).wrapping_add(n), Relaxed);
}

impl Default for WorkerStats {
    fn default() -> Self {
        Self::new()
    }
}

impl WorkerStats {
    pub fn new() -> WorkerStats {
        WorkerStats {
            drops: std::array::from_fn(|_| AtomicU64::new(0)),
            punted: AtomicU64::new(0),
            encrypted: AtomicU64::new(0),
            decrypted: AtomicU64::new(0),
            forwarded: AtomicU64::new(0),
            last_unknown_spi: AtomicU64::new(u64::MAX),
            icmp_errors: AtomicU64::new(0),
        }
    }

    pub fn drop_count(&self, r: DropReason) -> u64 {
        self.drops[r as usize].load(Relaxed)
    }
}

pub struct Worker {
    /// This worker's slot in per-SA counters (0..MAX_WORKERS).
    id: usize,
    tables: Arc<Tables>,
    /// Anti-replay windows of the inbound SAs this worker receives.
    windows: Vec<ReplayWindow>,
    stats: Arc<WorkerStats>,
    /// Whether the packet in hand lost its Ethernet header (to restore it
    /// on a punt).
    stripped_l2: bool,
    /// Next hops without a link-layer address, for the main lcore to
    /// solicit (bounded; a full queue loses a request, not a packet more).
    resolve: Arc<crossbeam_queue::ArrayQueue<IpAddr>>,
    /// Path MTU to report with an Oversize drop.
    pmtu: usize,
    icmp_budget: TokenBucket,
}

/// ICMP errors are rate-limited (RFC 4443 2.4 (f), RFC 1812 4.3.2.8):
/// at most `RATE` a second per worker, bursts of `BURST`.
#[derive(Debug)]
struct TokenBucket {
    tokens: u32,
    last: std::time::Instant,
}

impl TokenBucket {
    const RATE: u32 = 100;
    const BURST: u32 = 10;

    fn new() -> Self {
        TokenBucket { tokens: Self::BURST, last: std::time::Instant::now() }
    }

    fn take(&mut self) -> bool {
        let now = std::time::Instant::now();
        let refill = (now.saturating_duration_since(self.last).as_millis() as u64 * Self::RATE as u64 / 1000) as u32;
        if refill > 0 {
            self.tokens = (self.tokens + refill).min(Self::BURST);
            self.last = now;
        }
        if self.tokens == 0 {
            return false;
        }
        self.tokens -= 1;
        true
    }
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker").field("in_sas", &self.windows.len()).finish()
    }
}

/// Facts of the packet's IP header that the pipeline needs.
struct L3 {
    v6: bool,
    src: IpAddr,
    dst: IpAddr,
    proto: u8,
    l4_off: usize,
    ttl: u8,
}

impl Worker {
    pub fn new(tables: Arc<Tables>) -> Worker {
        Self::with_id(tables, 0)
    }

    /// Worker number `id` (its slot in the per-SA counters).
    pub fn with_id(tables: Arc<Tables>, id: usize) -> Worker {
        let windows = tables.in_sas.iter().map(|sa| ReplayWindow::new(sa.replay_window, sa.esn)).collect();
        Worker {
            id,
            tables,
            windows,
            stats: Arc::new(WorkerStats::new()),
            stripped_l2: false,
            resolve: Arc::new(crossbeam_queue::ArrayQueue::new(64)),
            pmtu: 0,
            icmp_budget: TokenBucket::new(),
        }
    }

    pub fn stats(&self) -> Arc<WorkerStats> {
        self.stats.clone()
    }

    /// Addresses this worker needed a neighbour entry for.
    pub fn resolve_queue(&self) -> Arc<crossbeam_queue::ArrayQueue<IpAddr>> {
        self.resolve.clone()
    }

    pub fn tables(&self) -> &Tables {
        &self.tables
    }

    /// Switches to new tables between packets (make-before-break): replay
    /// windows follow their SA by SPI; counters live in the SAs and carry on.
    pub fn set_tables(&mut self, tables: Arc<Tables>) {
        let old: rustc_hash::FxHashMap<u32, ReplayWindow> = std::mem::take(&mut self.windows)
            .into_iter()
            .zip(self.tables.in_sas.iter())
            .map(|(w, sa)| (sa.spi, w))
            .collect();
        let mut old = old;
        self.windows = tables
            .in_sas
            .iter()
            .map(|sa| old.remove(&sa.spi).unwrap_or_else(|| ReplayWindow::new(sa.replay_window, sa.esn)))
            .collect();
        self.tables = tables;
    }

    /// Counts a drop decided outside the pipeline (by the runner).
    pub fn count_drop(&self, r: DropReason) {
        bump(&self.stats.drops[r as usize], 1);
    }

    /// Runs one received Ethernet frame through the pipeline. A punted
    /// frame is handed back whole (Ethernet header restored).
    #[inline]
    pub fn process<B: PacketBuf>(&mut self, buf: &mut B) -> Verdict {
        match self.classify(buf) {
            Ok(Verdict::Punt) => {
                bump(&self.stats.punted, 1);
                if self.stripped_l2 {
                    // The header is still in the headroom: take it back.
                    buf.prepend(ethernet::HEADER_LEN);
                }
                Verdict::Punt
            }
            Ok(v) => v,
            Err(r) => {
                bump(&self.stats.drops[r as usize], 1);
                if matches!(r, DropReason::TtlExceeded | DropReason::Oversize) {
                    if let Some(v) = self.icmp_error(buf, r) {
                        return v;
                    }
                }
                Verdict::Drop(r)
            }
        }
    }

    fn classify<B: PacketBuf>(&mut self, buf: &mut B) -> Result<Verdict, DropReason> {
        self.stripped_l2 = false;
        let et = ethernet::Frame::new_checked(buf.data()).map_err(wire_drop)?.ethertype();
        match et {
            ethernet::ETHERTYPE_IPV4 | ethernet::ETHERTYPE_IPV6 => {}
            ethernet::ETHERTYPE_ARP => return Ok(Verdict::Punt),
            _ => return Err(DropReason::UnsupportedEthertype),
        }
        buf.adj(ethernet::HEADER_LEN);
        self.stripped_l2 = true;
        let l3 = parse_l3(buf, et == ethernet::ETHERTYPE_IPV6)?;
        if self.tables.is_local(l3.dst) {
            return self.local(buf, &l3);
        }
        // Bump-in-the-wire transport mode (RFC 4301 3.3): ESP to a host
        // behind us that one of our transport-mode SAs ends at.
        if l3.proto == ipproto::ESP && self.tables.has_transport_in() && self.is_transport_end(buf, &l3) {
            return self.inbound(buf, l3.l4_off, l3.src);
        }
        if is_multicast(l3.dst) {
            // Neighbour discovery is for the main lcore; other multicast is
            // not routed here.
            return if l3.v6 && l3.proto == ipproto::ICMPV6 { Ok(Verdict::Punt) } else { Err(DropReason::NoRoute) };
        }
        self.forward(buf, l3, false)
    }

    /// Packets addressed to one of our own addresses.
    fn local<B: PacketBuf>(&mut self, buf: &mut B, l3: &L3) -> Result<Verdict, DropReason> {
        match l3.proto {
            ipproto::ESP => self.inbound(buf, l3.l4_off, l3.src),
            ipproto::UDP => {
                let u = udp::Packet::new_checked(&buf.data()[l3.l4_off..]).map_err(wire_drop)?;
                // Over IPv6 every datagram carries a checksum (RFC 8200
                // 8.1); over IPv4 zero means none (RFC 768). A wrong one is
                // discarded either way (RFC 1122 4.1.3.4), before anything
                // reads the payload.
                let dgram = &buf.data()[l3.l4_off..l3.l4_off + u.len()];
                udp::verify_checksum(l3.src, l3.dst, dgram).map_err(|e| match e {
                    udp::ChecksumError::ZeroOverIpv6 => DropReason::ZeroUdpChecksum,
                    udp::ChecksumError::Wrong => DropReason::BadUdpChecksum,
                })?;
                match u.dst_port() {
                    udp::PORT_NATT => match udp::classify_natt(u.payload()).map_err(wire_drop)? {
                        udp::NattPayload::Esp => {
                            let off = l3.l4_off + udp::HEADER_LEN;
                            let end = l3.l4_off + u.len();
                            // UDP length bounds the ESP packet.
                            let extra = buf.len() - end;
                            if extra > 0 {
                                buf.trim(extra);
                            }
                            self.inbound(buf, off, l3.src)
                        }
                        udp::NattPayload::Ike => Ok(Verdict::Punt),
                        udp::NattPayload::Keepalive => Err(DropReason::NattKeepalive),
                    },
                    _ => Ok(Verdict::Punt),
                }
            }
            ipproto::FRAGMENT => Err(DropReason::Fragment),
            _ => Ok(Verdict::Punt),
        }
    }

    /// Whether the ESP packet in `buf` is for an inbound transport-mode SA
    /// whose end is the packet's destination.
    fn is_transport_end<B: PacketBuf>(&self, buf: &B, l3: &L3) -> bool {
        let Ok(p) = crate::wire::esp::Packet::new_checked(&buf.data()[l3.l4_off..]) else {
            return false;
        };
        self.tables.spi_index.get(&p.spi()).is_some_and(|&i| {
            let sa = &self.tables.in_sas[i];
            sa.transport && sa.local == l3.dst
        })
    }

    /// ESP for one of our inbound SAs, from outer source `outer_src`.
    fn inbound<B: PacketBuf>(&mut self, buf: &mut B, esp_off: usize, outer_src: IpAddr) -> Result<Verdict, DropReason> {
        let spi = crate::wire::esp::Packet::new_checked(&buf.data()[esp_off..]).map_err(wire_drop)?.spi();
        let Some(&i) = self.tables.spi_index.get(&spi) else {
            self.stats.last_unknown_spi.store(spi as u64, Relaxed);
            return Err(DropReason::UnknownSpi);
        };
        let sa = &self.tables.in_sas[i];
        if sa.expired.load(Relaxed) {
            return Err(DropReason::SaExpired);
        }
        let opened = if sa.transport {
            transport::decap(sa, &mut self.windows[i], buf, esp_off)
        } else {
            ipsec::decap(sa, &mut self.windows[i], buf, esp_off)
        };
        let inner = match opened {
            Ok(x) => x,
            Err(r) => {
                let slot = match r {
                    DropReason::Replay => Some(STAT_REPLAY),
                    DropReason::IcvFailed => Some(STAT_ICV),
                    _ => None,
                };
                if let Some(s) = slot {
                    sa.stats.add(self.id, s, 1);
                }
                return Err(r);
            }
        };
        let l3 = parse_l3(buf, inner.v6)?;
        // Transport mode: the packet's own addresses are the SA's ends
        // (which a move changes with the SA); tunnel mode: the inner ones
        // must fit the traffic selectors (RFC 4301 5.2).
        let fits =
            if sa.transport { l3.src == sa.remote && l3.dst == sa.local } else { sa.selectors_allow(l3.src, l3.dst) };
        if !fits {
            return Err(DropReason::PolicyMismatch);
        }
        if self.tables.group_sources(i).is_some_and(|g| !g.allows(outer_src, l3.src)) {
            return Err(DropReason::GroupSourceMismatch);
        }
        bump(&self.stats.decrypted, 1);
        sa.stats.add(self.id, STAT_PACKETS, 1);
        sa.stats.add(self.id, STAT_BYTES, buf.len() as u64);
        if sa.transport && self.tables.is_local(l3.dst) {
            // For the gateway itself: to the control plane like any other
            // packet to our addresses, in a fresh Ethernet header.
            let et = if l3.v6 { ethernet::ETHERTYPE_IPV6 } else { ethernet::ETHERTYPE_IPV4 };
            let h = buf.prepend(ethernet::HEADER_LEN).ok_or(DropReason::NoRoom)?;
            ethernet::emit(h, [0; 6], [0; 6], et);
            self.stripped_l2 = false;
            return Ok(Verdict::Punt);
        }
        self.forward(buf, l3, true)
    }

    /// Policy, then encap or plain routing. `from_tunnel`: the packet just
    /// left a tunnel; its inner header passes unchanged (we are the tunnel
    /// endpoint), so no TTL decrement.
    fn forward<B: PacketBuf>(&mut self, buf: &mut B, l3: L3, from_tunnel: bool) -> Result<Verdict, DropReason> {
        match self.tables.policy(l3.dst) {
            Some(Policy::Protect(i)) => {
                let sa = &self.tables.out_sas[i];
                let nh = self.tables.sa_next_hop(i).inspect_err(|_| self.want_neighbor(sa.remote))?;
                self.encrypt(buf, &l3, i, None, nh)
            }
            Some(Policy::ProtectGroup(g)) => {
                let route = &self.tables.groups[g];
                let (member, nh) = match route.member(l3.dst) {
                    Ok(x) => x,
                    Err((member, r)) => {
                        // A member whose MAC is not known yet: solicit it.
                        if let (Some(m), DropReason::NoNeighbor) = (member, r) {
                            self.want_neighbor(m);
                        }
                        return Err(r);
                    }
                };
                self.encrypt(buf, &l3, route.out_sa, Some(member), nh)
            }
            Some(Policy::Discard) => Err(DropReason::PolicyDiscard),
            Some(Policy::Bypass) | None => {
                if !from_tunnel {
                    if l3.ttl <= 1 {
                        return Err(DropReason::TtlExceeded);
                    }
                    if l3.v6 {
                        ipv6::Packet::new_checked(buf.data_mut()).map_err(wire_drop)?.decrement_hop_limit();
                    } else {
                        ipv4::Packet::new_checked(buf.data_mut()).map_err(wire_drop)?.decrement_ttl();
                    }
                }
                bump(&self.stats.forwarded, 1);
                self.output(buf, l3.dst)
            }
        }
    }

    /// Encrypts with outbound SA `i` (to `member` for a group SA) towards
    /// `nh`, after checking the result fits the port's MTU.
    fn encrypt<B: PacketBuf>(
        &mut self,
        buf: &mut B,
        l3: &L3,
        i: usize,
        member: Option<IpAddr>,
        nh: NextHop,
    ) -> Result<Verdict, DropReason> {
        let sa = &self.tables.out_sas[i];
        if sa.expired.load(Relaxed) {
            return Err(DropReason::SaExpired);
        }
        let len = buf.len();
        let overhead = if sa.transport { transport::overhead(sa, len - l3.l4_off) } else { ipsec::overhead(sa, len) };
        if len + overhead > nh.mtu {
            // The inner packet's path MTU is the port's less what ESP adds.
            self.pmtu = nh.mtu.saturating_sub(overhead + sa.cipher.algorithm().align());
            return Err(DropReason::Oversize);
        }
        if sa.transport {
            transport::encap(sa, buf)?;
        } else {
            ipsec::encap_to(sa, buf, l3.v6, member)?;
        }
        bump(&self.stats.encrypted, 1);
        sa.stats.add(self.id, STAT_PACKETS, 1);
        sa.stats.add(self.id, STAT_BYTES, len as u64);
        emit_l2(buf, &nh, sa.template.is_v6())
    }

    /// Route lookup, neighbour, MTU, Ethernet header.
    fn output<B: PacketBuf>(&mut self, buf: &mut B, dst: IpAddr) -> Result<Verdict, DropReason> {
        let nh = self.tables.next_hop(dst).inspect_err(|_| self.want_neighbor(dst))?;
        if buf.len() > nh.mtu {
            self.pmtu = nh.mtu;
            return Err(DropReason::Oversize);
        }
        emit_l2(buf, &nh, dst.is_ipv6())
    }

    /// Turns the IP packet in `buf` (which met `why`) into the ICMP error a
    /// router owes its source (RFC 792 / 1191 / 4443): time exceeded, or
    /// fragmentation needed / packet too big with the path MTU. `None`
    /// when none is due: ICMP errors about ICMP errors, non-first
    /// fragments, multicast or unspecified sources, IPv4 without DF (we do
    /// not fragment: just dropped), or beyond the rate limit.
    fn icmp_error<B: PacketBuf>(&mut self, buf: &mut B, why: DropReason) -> Option<Verdict> {
        let data = buf.data();
        let v6 = data.first()? >> 4 == 6;
        let (src, quote_max) = if v6 {
            let p = ipv6::Packet::new_checked(data).ok()?;
            let (proto, off) = p.upper_layer().ok()?;
            if proto == ipproto::FRAGMENT || (proto == ipproto::ICMPV6 && data.get(off).is_some_and(|&t| t < 128)) {
                return None;
            }
            (IpAddr::from(p.src()), 1280 - 48)
        } else {
            let p = ipv4::Packet::new_checked(data).ok()?;
            let icmp_error_type = |t: u8| matches!(t, 3 | 4 | 5 | 11 | 12);
            if p.is_fragment()
                || (p.protocol() == ipproto::ICMP && data.get(p.header_len()).is_some_and(|&t| icmp_error_type(t)))
            {
                return None;
            }
            if why == DropReason::Oversize && !p.dont_fragment() {
                return None;
            }
            (IpAddr::from(p.src()), 576 - 28)
        };
        if src.is_unspecified() || is_multicast(src) || !self.icmp_budget.take() {
            return None;
        }
        let me = self.tables.icmp_source(v6)?;
        let (typ, code, word) = match (why, v6) {
            (DropReason::TtlExceeded, false) => (icmp::v4::TIME_EXCEEDED, 0, 0u32),
            (DropReason::TtlExceeded, true) => (icmp::v6::TIME_EXCEEDED, 0, 0),
            // RFC 1191: the next-hop MTU in the low 16 bits.
            (_, false) => (icmp::v4::DEST_UNREACHABLE, icmp::v4::CODE_FRAG_NEEDED, self.pmtu.min(0xffff) as u32),
            // RFC 4443 3.2: never below the IPv6 minimum MTU.
            (_, true) => (icmp::v6::PACKET_TOO_BIG, 0, self.pmtu.max(1280) as u32),
        };
        let quote = buf.len().min(quote_max);
        buf.trim(buf.len() - quote);
        let ip_len = if v6 { ipv6::HEADER_LEN } else { ipv4::MIN_HEADER_LEN };
        let h = buf.prepend(ip_len + icmp::HEADER_LEN)?;
        let msg_len = icmp::HEADER_LEN + quote;
        match (me, src) {
            (IpAddr::V6(s), IpAddr::V6(d)) => {
                ipv6::Repr {
                    src: s,
                    dst: d,
                    next_header: ipproto::ICMPV6,
                    payload_len: msg_len,
                    hop_limit: 64,
                    traffic_class: 0,
                }
                .emit(h);
            }
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                ipv4::Repr {
                    src: s,
                    dst: d,
                    protocol: ipproto::ICMP,
                    payload_len: msg_len,
                    ttl: 64,
                    tos: 0,
                    ident: 0,
                    dont_fragment: false,
                }
                .emit(h);
            }
            _ => return None,
        }
        let m = &mut buf.data_mut()[ip_len..];
        m[0] = typ;
        m[1] = code;
        m[2..4].fill(0);
        m[4..8].copy_from_slice(&word.to_be_bytes());
        let initial = match (me, src) {
            (IpAddr::V6(s), IpAddr::V6(d)) => ipv6::pseudo_header_sum(s, d, ipproto::ICMPV6, msg_len),
            _ => 0,
        };
        let c = crate::wire::checksum(m, initial);
        icmp::set_checksum(m, c);
        bump(&self.stats.icmp_errors, 1);
        self.output(buf, src).ok()
    }

    /// Asks the main lcore to solicit the next hop towards `dst`.
    #[cold]
    fn want_neighbor(&self, dst: IpAddr) {
        if let Some(r) = self.tables.route(dst) {
            let _ = self.resolve.push(r.via.unwrap_or(dst));
        }
    }
}

fn is_multicast(a: IpAddr) -> bool {
    match a {
        IpAddr::V4(v) => v.is_multicast() || v.is_broadcast(),
        IpAddr::V6(v) => v.is_multicast(),
    }
}

/// MTU check and the Ethernet header towards `nh`.
#[inline]
fn emit_l2<B: PacketBuf>(buf: &mut B, nh: &NextHop, v6: bool) -> Result<Verdict, DropReason> {
    if buf.len() > nh.mtu {
        return Err(DropReason::Oversize);
    }
    let et = if v6 { ethernet::ETHERTYPE_IPV6 } else { ethernet::ETHERTYPE_IPV4 };
    let h = buf.prepend(ethernet::HEADER_LEN).ok_or(DropReason::NoRoom)?;
    ethernet::emit(h, nh.dst_mac, nh.src_mac, et);
    Ok(Verdict::Tx(nh.port))
}

/// Parses the IP header filling `buf`, trims Ethernet padding after it.
fn parse_l3<B: PacketBuf>(buf: &mut B, v6: bool) -> Result<L3, DropReason> {
    let (l3, total) = if v6 {
        let p = ipv6::Packet::new_checked(buf.data()).map_err(wire_drop)?;
        let (proto, off) = p.upper_layer().map_err(wire_drop)?;
        (L3 { v6, src: p.src().into(), dst: p.dst().into(), proto, l4_off: off, ttl: p.hop_limit() }, p.total_len())
    } else {
        let p = ipv4::Packet::new_checked(buf.data()).map_err(wire_drop)?;
        if !p.checksum_ok() {
            return Err(DropReason::BadChecksum);
        }
        let proto = if p.is_fragment() { ipproto::FRAGMENT } else { p.protocol() };
        (
            L3 { v6, src: p.src().into(), dst: p.dst().into(), proto, l4_off: p.header_len(), ttl: p.ttl() },
            p.total_len(),
        )
    };
    let extra = buf.len() - total;
    if extra > 0 {
        buf.trim(extra);
    }
    Ok(l3)
}
