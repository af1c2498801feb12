//! Security associations as the fast path holds them.
//!
//! An [`OutboundSa`] is shared by every worker (`Arc`): its sequence
//! number is an atomic counter, so numbers stay unique per SA whichever
//! core encrypts (RFC 4303 3.3.3). An [`InboundSa`] is read-only; its
//! anti-replay window lives with the one worker that receives the SA
//! (RSS on the outer addresses keeps an SA on one core), so the window
//! needs no atomics.

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use zeroize::Zeroizing;

use crate::crypto::{Algorithm, EspCipher, KeyError};
use crate::lpm::Prefix;
use crate::wire::{ipproto, ipv4, ipv6, udp};

/// NAT-T UDP encapsulation ports (RFC 3948): ours and the peer's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NattPorts {
    pub local: u16,
    pub remote: u16,
}

/// Soft and hard lifetimes of an SA (RFC 4301 4.4.2.1): by octets, by
/// packets and by seconds since install; 0 = no limit. At the soft limit
/// the control plane is told (to rekey); at the hard limit the SA stops.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Lifetime {
    pub soft_bytes: u64,
    pub hard_bytes: u64,
    pub soft_packets: u64,
    pub hard_packets: u64,
    pub soft_secs: u64,
    pub hard_secs: u64,
}

/// Where an SA stands against its lifetime.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LifetimeState {
    Fresh,
    Soft,
    Hard,
}

impl Lifetime {
    pub fn state(&self, packets: u64, bytes: u64, age_secs: u64) -> LifetimeState {
        let over = |v: u64, limit: u64| limit != 0 && v >= limit;
        if over(bytes, self.hard_bytes) || over(packets, self.hard_packets) || over(age_secs, self.hard_secs) {
            LifetimeState::Hard
        } else if over(bytes, self.soft_bytes) || over(packets, self.soft_packets) || over(age_secs, self.soft_secs) {
            LifetimeState::Soft
        } else {
            LifetimeState::Fresh
        }
    }
}

/// Everything needed to build an SA, from config or the control plane.
#[derive(Clone)]
pub struct SaParams {
    pub spi: u32,
    pub alg: Algorithm,
    pub enc_key: Zeroizing<Vec<u8>>,
    pub auth_key: Zeroizing<Vec<u8>>,
    /// Tunnel endpoints: outer source (ours) and destination (peer).
    pub local: IpAddr,
    pub remote: IpAddr,
    pub natt: Option<NattPorts>,
    pub esn: bool,
    /// Inbound only: anti-replay window in packets, 0 = off.
    pub replay_window: u32,
    /// Inbound only: the SA's traffic selectors. An inner source (and
    /// destination) must fall in one of these prefixes of its family; an
    /// empty list, or none of the packet's family, allows any.
    pub inner_src: Vec<Prefix>,
    pub inner_dst: Vec<Prefix>,
    pub lifetime: Lifetime,
    /// ESP transport mode (RFC 4303 3.1.1): the packet's own addresses are
    /// the SA's endpoints, ESP goes after its IP header. Tunnel otherwise.
    pub transport: bool,
}

impl std::fmt::Debug for SaParams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SaParams")
            .field("spi", &format_args!("{:#010x}", self.spi))
            .field("alg", &self.alg)
            .field("keys", &"<redacted>")
            .field("local", &self.local)
            .field("remote", &self.remote)
            .field("natt", &self.natt)
            .field("esn", &self.esn)
            .field("replay_window", &self.replay_window)
            .field("transport", &self.transport)
            .finish()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SaError {
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error("tunnel endpoints {0} and {1} are not the same IP version")]
    MixedFamilies(IpAddr, IpAddr),
    #[error("SPI 0 is reserved (RFC 4303 2.1)")]
    ZeroSpi,
}

/// The outer headers an outbound SA puts in front of every packet, built
/// once: IPv4 (20) or IPv6 (40), then UDP (8) with NAT-T.
#[derive(Debug, Clone)]
pub struct OuterTemplate {
    bytes: [u8; 48],
    ip_len: usize,
    udp: bool,
    /// IPv6 with NAT-T: the part of the UDP checksum that is the same for
    /// every packet (pseudo-header source and next header, both ports;
    /// not folded), so each packet adds only its lengths, its destination
    /// and its ESP octets. RFC 8200 8.1 forbids a zero checksum there.
    udp6_fixed_sum: Option<u32>,
}

impl OuterTemplate {
    fn new(local: IpAddr, remote: IpAddr, natt: Option<NattPorts>) -> Result<Self, SaError> {
        let mut bytes = [0u8; 48];
        let proto = if natt.is_some() { ipproto::UDP } else { ipproto::ESP };
        let ip_len = match (local, remote) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                ipv4::Repr {
                    src: s,
                    dst: d,
                    protocol: proto,
                    payload_len: 0,
                    ttl: 64,
                    tos: 0,
                    ident: 0,
                    dont_fragment: false,
                }
                .emit(&mut bytes);
                ipv4::MIN_HEADER_LEN
            }
            (IpAddr::V6(s), IpAddr::V6(d)) => {
                ipv6::Repr { src: s, dst: d, next_header: proto, payload_len: 0, hop_limit: 64, traffic_class: 0 }
                    .emit(&mut bytes);
                ipv6::HEADER_LEN
            }
            (a, b) => return Err(SaError::MixedFamilies(a, b)),
        };
        let mut udp6_fixed_sum = None;
        if let Some(n) = natt {
            udp::emit(&mut bytes[ip_len..], n.local, n.remote, 0);
            if let IpAddr::V6(s) = local {
                let mut fixed = [0u8; 16 + 4 + 4];
                fixed[..16].copy_from_slice(&s.octets());
                fixed[19] = ipproto::UDP;
                fixed[20..22].copy_from_slice(&n.local.to_be_bytes());
                fixed[22..24].copy_from_slice(&n.remote.to_be_bytes());
                udp6_fixed_sum = Some(crate::wire::sum_words(&fixed, 0));
            }
        }
        Ok(OuterTemplate { bytes, ip_len, udp: natt.is_some(), udp6_fixed_sum })
    }

    /// The outer source address.
    pub fn local(&self) -> IpAddr {
        if self.is_v6() {
            let a: [u8; 16] = self.bytes[8..24].try_into().unwrap_or_default();
            IpAddr::from(a)
        } else {
            let a: [u8; 4] = self.bytes[12..16].try_into().unwrap_or_default();
            IpAddr::from(a)
        }
    }

    /// Octets of outer headers before the ESP header.
    pub fn len(&self) -> usize {
        self.ip_len + if self.udp { udp::HEADER_LEN } else { 0 }
    }

    pub fn is_empty(&self) -> bool {
        false
    }

    pub fn is_v6(&self) -> bool {
        self.ip_len == ipv6::HEADER_LEN
    }

    /// Writes the headers into `out` (exactly `len()` octets) for an ESP
    /// packet of `esp_len` octets.
    #[inline]
    pub fn write(&self, out: &mut [u8], esp_len: usize, ident: u16, dst: Option<IpAddr>) {
        let n = self.len();
        out[..n].copy_from_slice(&self.bytes[..n]);
        // Group SAs send to whichever member the route chose.
        match dst {
            Some(IpAddr::V4(d)) if !self.is_v6() => out[16..20].copy_from_slice(&d.octets()),
            Some(IpAddr::V6(d)) if self.is_v6() => out[24..40].copy_from_slice(&d.octets()),
            _ => {}
        }
        let udp_len = if self.udp { udp::HEADER_LEN } else { 0 };
        if self.is_v6() {
            ipv6::patch_len(out, udp_len + esp_len);
        } else {
            ipv4::patch_len_ident(out, udp_len + esp_len, ident);
        }
        if self.udp {
            udp::patch_len(&mut out[self.ip_len..], esp_len);
        }
    }

    /// Fills in the UDP checksum of an IPv6 NAT-T packet that `write` began
    /// and the cipher sealed: `packet` is the whole outer packet, `dst` the
    /// destination `write` was given. Nothing to do over IPv4 (RFC 3948
    /// 2.1: zero) or without NAT-T.
    #[inline]
    pub fn finish(&self, packet: &mut [u8], dst: Option<IpAddr>) {
        let Some(fixed) = self.udp6_fixed_sum else { return };
        let dst = match dst {
            Some(IpAddr::V6(d)) => d.octets(),
            _ => self.bytes[24..40].try_into().unwrap_or_default(),
        };
        let l = ((packet.len() - self.ip_len) as u16).to_be_bytes();
        // The pseudo-header's length and the UDP length field: the same
        // value twice (RFC 8200 8.1, RFC 768).
        let head = crate::wire::sum_words(&[l[0], l[1], l[0], l[1]], crate::wire::sum_words(&dst, fixed));
        let sum = crate::wire::sum_words(&packet[self.ip_len + udp::HEADER_LEN..], head);
        let c = match !crate::wire::fold(sum) {
            0 => 0xffff,
            c => c,
        };
        udp::set_checksum(&mut packet[self.ip_len..], c);
    }
}

/// Sequence numbers skipped when an outbound SA object is replaced while
/// workers may still hold the old one for a burst (never reused).
const RESEQ_MARGIN: u64 = 1 << 16;

/// Most workers a gateway runs; each SA keeps one counter slot per worker.
pub const MAX_WORKERS: usize = 16;

/// One worker's counters for one SA, on its own cache line.
#[derive(Debug, Default)]
#[repr(align(64))]
struct Slot([AtomicU64; 4]);

/// Per-SA counters: one slot per worker, written only by that worker (a
/// relaxed load and store, no locked instruction), summed by readers.
/// They live in the SA, so they survive table updates.
#[derive(Debug, Default)]
pub struct SaStats {
    slots: [Slot; MAX_WORKERS],
}

/// Counter indexes within a slot.
pub const STAT_PACKETS: usize = 0;
pub const STAT_BYTES: usize = 1;
/// Inbound: replay drops; outbound: unused.
pub const STAT_REPLAY: usize = 2;
/// Inbound: ICV failures; outbound: unused.
pub const STAT_ICV: usize = 3;

impl SaStats {
    #[inline]
    pub fn add(&self, worker: usize, stat: usize, n: u64) {
        let c = &self.slots[worker % MAX_WORKERS].0[stat];
        c.store(c.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
    }

    /// The sum over workers.
    pub fn get(&self, stat: usize) -> u64 {
        self.slots.iter().map(|s| s.0[stat].load(Ordering::Relaxed)).sum()
    }
}

/// Limits on the number of packets an SA may send: 2^32 - 1 without ESN,
/// 2^64 - 1 with (RFC 4303 3.3.3: never cycle).
fn seq_limit(esn: bool) -> u64 {
    if esn {
        u64::MAX
    } else {
        u32::MAX as u64
    }
}

#[derive(Debug)]
pub struct OutboundSa {
    pub spi: u32,
    /// How the control plane names it (cpdp `SaSpec::handle`): unique
    /// where the wire SPIs, chosen by many peers, need not be. The SPI for
    /// SAs from the config file and for group SAs.
    pub handle: u32,
    pub cipher: Arc<EspCipher>,
    pub esn: bool,
    pub remote: IpAddr,
    pub natt: Option<NattPorts>,
    pub template: OuterTemplate,
    /// Last sequence number handed out (0: none yet).
    seq: AtomicU64,
    limit: u64,
    /// Set by the main lcore at the hard lifetime; workers then drop.
    pub expired: AtomicBool,
    pub stats: Arc<SaStats>,
    pub lifetime: Lifetime,
    pub installed: std::time::Instant,
    /// Transport mode (see [`SaParams::transport`]).
    pub transport: bool,
}

impl OutboundSa {
    pub fn new(p: &SaParams) -> Result<Self, SaError> {
        if p.spi == 0 {
            return Err(SaError::ZeroSpi);
        }
        Ok(OutboundSa {
            spi: p.spi,
            handle: p.spi,
            cipher: Arc::new(EspCipher::new(p.alg, &p.enc_key, &p.auth_key)?),
            esn: p.esn,
            remote: p.remote,
            natt: p.natt,
            template: OuterTemplate::new(p.local, p.remote, p.natt)?,
            seq: AtomicU64::new(0),
            limit: seq_limit(p.esn),
            expired: AtomicBool::new(false),
            stats: Arc::default(),
            lifetime: p.lifetime,
            installed: std::time::Instant::now(),
            transport: p.transport,
        })
    }

    /// The next sequence number, or `None` once the SA has used them all
    /// (it then stays exhausted; the control plane must rekey).
    #[inline]
    pub fn next_seq(&self) -> Option<u64> {
        let s = self.seq.fetch_add(1, Ordering::Relaxed) + 1;
        (s <= self.limit && s != 0).then_some(s)
    }

    /// The same SA (keys, sequence numbers, counters carry on) between new
    /// tunnel endpoints (MOBIKE): a new object sharing the keys and the
    /// counters, taking over the sequence counter's value.
    pub fn with_addresses(&self, local: IpAddr, remote: IpAddr, natt: Option<NattPorts>) -> Result<Self, SaError> {
        let sa = OutboundSa {
            spi: self.spi,
            handle: self.handle,
            cipher: self.cipher.clone(),
            esn: self.esn,
            remote,
            natt,
            template: OuterTemplate::new(local, remote, natt)?,
            seq: AtomicU64::new(0),
            limit: self.limit,
            expired: AtomicBool::new(false),
            stats: self.stats.clone(),
            lifetime: self.lifetime,
            installed: self.installed,
            transport: self.transport,
        };
        // Reserve past every number the old object may still hand out
        // while workers switch tables.
        sa.seq.store(self.seq.load(Ordering::Relaxed) + 1 + RESEQ_MARGIN, Ordering::Relaxed);
        Ok(sa)
    }

    /// The outer source address in the template.
    pub fn template_local(&self) -> IpAddr {
        self.template.local()
    }

    /// The last sequence number this SA may use.
    pub fn seq_limit(&self) -> u64 {
        self.limit
    }

    /// Sequence numbers used so far.
    pub fn seq_used(&self) -> u64 {
        self.seq.load(Ordering::Relaxed).min(self.limit)
    }

    /// Starts counting from `seq` (tests of the limit; resync).
    pub fn set_seq(&self, seq: u64) {
        self.seq.store(seq, Ordering::Relaxed);
    }
}

#[derive(Debug)]
pub struct InboundSa {
    pub spi: u32,
    pub cipher: Arc<EspCipher>,
    pub esn: bool,
    pub replay_window: u32,
    pub local: IpAddr,
    pub remote: IpAddr,
    pub natt: Option<NattPorts>,
    pub inner_src: Vec<Prefix>,
    pub inner_dst: Vec<Prefix>,
    pub expired: AtomicBool,
    pub stats: Arc<SaStats>,
    pub lifetime: Lifetime,
    pub installed: std::time::Instant,
    /// Transport mode (see [`SaParams::transport`]).
    pub transport: bool,
}

impl InboundSa {
    pub fn new(p: &SaParams) -> Result<Self, SaError> {
        if p.spi == 0 {
            return Err(SaError::ZeroSpi);
        }
        if p.local.is_ipv4() != p.remote.is_ipv4() {
            return Err(SaError::MixedFamilies(p.local, p.remote));
        }
        Ok(InboundSa {
            spi: p.spi,
            cipher: Arc::new(EspCipher::new(p.alg, &p.enc_key, &p.auth_key)?),
            esn: p.esn,
            replay_window: p.replay_window,
            local: p.local,
            remote: p.remote,
            natt: p.natt,
            inner_src: p.inner_src.clone(),
            inner_dst: p.inner_dst.clone(),
            expired: AtomicBool::new(false),
            stats: Arc::default(),
            lifetime: p.lifetime,
            installed: std::time::Instant::now(),
            transport: p.transport,
        })
    }

    /// The same SA with new tunnel endpoints (MOBIKE); the replay window
    /// stays with the worker (by SPI).
    pub fn with_addresses(&self, local: IpAddr, remote: IpAddr, natt: Option<NattPorts>) -> Self {
        InboundSa {
            spi: self.spi,
            cipher: self.cipher.clone(),
            esn: self.esn,
            replay_window: self.replay_window,
            local,
            remote,
            natt,
            inner_src: self.inner_src.clone(),
            inner_dst: self.inner_dst.clone(),
            expired: AtomicBool::new(false),
            stats: self.stats.clone(),
            lifetime: self.lifetime,
            installed: self.installed,
            transport: self.transport,
        }
    }

    /// Whether inner addresses fall within the SA's selectors.
    #[inline]
    pub fn selectors_allow(&self, src: IpAddr, dst: IpAddr) -> bool {
        allowed(&self.inner_src, src) && allowed(&self.inner_dst, dst)
    }
}

fn allowed(sel: &[Prefix], a: IpAddr) -> bool {
    let mut same_family = sel.iter().filter(|p| p.addr.is_ipv4() == a.is_ipv4()).peekable();
    same_family.peek().is_none() || same_family.any(|p| p.contains(a))
}
