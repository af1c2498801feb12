//! Neighbour discovery on the ports the gateway owns: answers ARP (RFC 826)
//! and IPv6 neighbour solicitations (RFC 4861 7.2.4) for our own addresses,
//! learns neighbours from what it hears, and solicits next hops the fast
//! path found no link-layer address for. Runs on the main lcore over frames
//! the workers punted; sans-IO (frames and time in, frames and learned
//! entries out).

use std::net::{IpAddr, Ipv6Addr};
use std::time::{Duration, Instant};

use rustc_hash::FxHashMap;

use crate::wire::icmp::{self, v6, NdRepr};
use crate::wire::{arp, checksum, ethernet, ipproto, ipv6};

/// How often one address is solicited at most.
const SOLICIT_INTERVAL: Duration = Duration::from_secs(1);

/// A port's link-layer address and our IP addresses on it.
#[derive(Debug, Clone)]
pub struct PortAddrs {
    pub mac: [u8; 6],
    pub addrs: Vec<IpAddr>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NeighOut {
    /// Send this frame on this port.
    Send { port: u16, frame: Vec<u8> },
    /// `ip` is at `mac`.
    Learn { ip: IpAddr, mac: [u8; 6] },
}

#[derive(Debug)]
pub struct NeighborAgent {
    ports: Vec<PortAddrs>,
    asked: FxHashMap<IpAddr, Instant>,
}

/// The solicited-node multicast address of `a` (RFC 4291 2.7.1).
pub fn solicited_node(a: Ipv6Addr) -> Ipv6Addr {
    let o = a.octets();
    Ipv6Addr::new(0xff02, 0, 0, 0, 0, 1, 0xff00 | o[13] as u16, u16::from_be_bytes([o[14], o[15]]))
}

fn multicast_mac(a: Ipv6Addr) -> [u8; 6] {
    let o = a.octets();
    [0x33, 0x33, o[12], o[13], o[14], o[15]]
}

/// An IPv6 frame carrying an ND message, checksummed.
fn nd_frame(dst_mac: [u8; 6], src_mac: [u8; 6], src: Ipv6Addr, dst: Ipv6Addr, nd: &NdRepr) -> Vec<u8> {
    let len = nd.len();
    let mut f = vec![0u8; ethernet::HEADER_LEN + ipv6::HEADER_LEN + len];
    ethernet::emit(&mut f, dst_mac, src_mac, ethernet::ETHERTYPE_IPV6);
    // RFC 4861: hop limit 255 proves the sender is on-link.
    ipv6::Repr { src, dst, next_header: ipproto::ICMPV6, payload_len: len, hop_limit: 255, traffic_class: 0 }
        .emit(&mut f[ethernet::HEADER_LEN..]);
    let msg = &mut f[ethernet::HEADER_LEN + ipv6::HEADER_LEN..];
    nd.emit(msg);
    let c = checksum(msg, ipv6::pseudo_header_sum(src, dst, ipproto::ICMPV6, len));
    icmp::set_checksum(msg, c);
    f
}

impl NeighborAgent {
    pub fn new(ports: Vec<PortAddrs>) -> NeighborAgent {
        NeighborAgent { ports, asked: FxHashMap::default() }
    }

    fn ours(&self, port: u16, a: IpAddr) -> bool {
        self.ports.get(port as usize).is_some_and(|p| p.addrs.contains(&a))
    }

    /// Handles a punted frame if it is ARP or neighbour discovery;
    /// `None` for anything else (it goes on to the control plane).
    pub fn on_frame(&mut self, port: u16, frame: &[u8]) -> Option<Vec<NeighOut>> {
        let eth = ethernet::Frame::new_checked(frame).ok()?;
        match eth.ethertype() {
            ethernet::ETHERTYPE_ARP => Some(self.on_arp(port, eth.payload())),
            ethernet::ETHERTYPE_IPV6 => self.on_nd(port, eth.payload()),
            _ => None,
        }
    }

    fn on_arp(&mut self, port: u16, b: &[u8]) -> Vec<NeighOut> {
        let Ok(a) = arp::Repr::parse(b) else { return vec![] };
        let mut out = Vec::new();
        if !a.sender_ip.is_unspecified() && !ethernet::is_multicast(&a.sender_mac) {
            out.push(NeighOut::Learn { ip: a.sender_ip.into(), mac: a.sender_mac });
            self.asked.remove(&IpAddr::V4(a.sender_ip));
        }
        if a.op == arp::OP_REQUEST && self.ours(port, a.target_ip.into()) {
            let mac = self.ports[port as usize].mac;
            let mut f = vec![0u8; ethernet::HEADER_LEN + arp::PACKET_LEN];
            ethernet::emit(&mut f, a.sender_mac, mac, ethernet::ETHERTYPE_ARP);
            arp::Repr {
                op: arp::OP_REPLY,
                sender_mac: mac,
                sender_ip: a.target_ip,
                target_mac: a.sender_mac,
                target_ip: a.sender_ip,
            }
            .emit(&mut f[ethernet::HEADER_LEN..]);
            out.push(NeighOut::Send { port, frame: f });
        }
        out
    }

    fn on_nd(&mut self, port: u16, b: &[u8]) -> Option<Vec<NeighOut>> {
        let ip = ipv6::Packet::new_checked(b).ok()?;
        if ip.next_header() != ipproto::ICMPV6 {
            return None;
        }
        let msg = &b[ipv6::HEADER_LEN..ip.total_len()];
        let (t, _) = icmp::type_code(msg).ok()?;
        if t != v6::NEIGHBOR_SOLICIT && t != v6::NEIGHBOR_ADVERT {
            return None;
        }
        // RFC 4861 7.1.1: hop limit 255 and a valid checksum, or discard.
        let sum = crate::wire::sum_words(msg, ipv6::pseudo_header_sum(ip.src(), ip.dst(), ipproto::ICMPV6, msg.len()));
        if ip.hop_limit() != 255 || crate::wire::fold(sum) != 0xffff {
            return Some(vec![]);
        }
        let Ok(nd) = NdRepr::parse(msg) else { return Some(vec![]) };
        let mut out = Vec::new();
        let src = ip.src();
        if let Some(mac) = nd.lladdr {
            let who = if t == v6::NEIGHBOR_SOLICIT { src } else { nd.target };
            if !who.is_unspecified() {
                out.push(NeighOut::Learn { ip: who.into(), mac });
                self.asked.remove(&IpAddr::V6(who));
            }
        }
        if t == v6::NEIGHBOR_SOLICIT && self.ours(port, nd.target.into()) {
            let mac = self.ports[port as usize].mac;
            let from_unspecified = src.is_unspecified();
            let (dst, dst_mac) = match nd.lladdr {
                Some(m) if !from_unspecified => (src, m),
                // DAD probe or no option: answer all nodes (RFC 4861 7.2.4).
                _ => (
                    Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1),
                    multicast_mac(Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1)),
                ),
            };
            let flags =
                v6::NA_FLAG_ROUTER | v6::NA_FLAG_OVERRIDE | if from_unspecified { 0 } else { v6::NA_FLAG_SOLICITED };
            let na = NdRepr { icmp_type: v6::NEIGHBOR_ADVERT, flags, target: nd.target, lladdr: Some(mac) };
            out.push(NeighOut::Send { port, frame: nd_frame(dst_mac, mac, nd.target, dst, &na) });
        }
        Some(out)
    }

    /// Asks who has `ip` on `port` (ARP request or neighbour solicitation),
    /// at most once a second per address.
    pub fn solicit(&mut self, ip: IpAddr, port: u16, now: Instant) -> Option<NeighOut> {
        if self.asked.get(&ip).is_some_and(|&t| now.saturating_duration_since(t) < SOLICIT_INTERVAL) {
            return None;
        }
        let p = self.ports.get(port as usize)?;
        let frame = match ip {
            IpAddr::V4(target) => {
                let Some(IpAddr::V4(me)) = p.addrs.iter().find(|a| a.is_ipv4()).copied() else { return None };
                let mut f = vec![0u8; ethernet::HEADER_LEN + arp::PACKET_LEN];
                ethernet::emit(&mut f, ethernet::BROADCAST, p.mac, ethernet::ETHERTYPE_ARP);
                arp::Repr {
                    op: arp::OP_REQUEST,
                    sender_mac: p.mac,
                    sender_ip: me,
                    target_mac: [0; 6],
                    target_ip: target,
                }
                .emit(&mut f[ethernet::HEADER_LEN..]);
                f
            }
            IpAddr::V6(target) => {
                let Some(IpAddr::V6(me)) = p.addrs.iter().find(|a| a.is_ipv6()).copied() else { return None };
                let dst = solicited_node(target);
                let ns = NdRepr { icmp_type: v6::NEIGHBOR_SOLICIT, flags: 0, target, lladdr: Some(p.mac) };
                nd_frame(multicast_mac(dst), p.mac, me, dst, &ns)
            }
        };
        self.asked.insert(ip, now);
        Some(NeighOut::Send { port, frame })
    }
}

/// Packets waiting for a next hop's link-layer address, as a host's ARP
/// layer keeps them (RFC 1122 2.3.2.2: save at least the latest packet to
/// an unresolved address and send it once resolved). Without it the first
/// IKE answer to a peer we have not heard ARP from (its cache still held
/// our MAC from before a restart) is lost and costs the peer a
/// retransmission timeout. Bounded per next hop (a responder answering a
/// burst of IKE_SA_INITs from one peer fills 8 places within the
/// millisecond the answer to our solicitation takes) and in all; what
/// waits longer than [`HOLD_TIME`] is dropped (its sender retransmits).
#[derive(Debug)]
pub struct HoldQueue<T> {
    items: Vec<(IpAddr, Instant, T)>,
}

pub const HOLD_PER_NEXT_HOP: usize = 64;
pub const HOLD_TOTAL: usize = 1024;
pub const HOLD_TIME: Duration = Duration::from_secs(3);

impl<T> Default for HoldQueue<T> {
    fn default() -> Self {
        HoldQueue { items: Vec::new() }
    }
}

impl<T> HoldQueue<T> {
    /// Keeps `item` until `next_hop` resolves. `Err(item)` when the queue
    /// for that next hop, or in all, is full: the caller drops it.
    pub fn hold(&mut self, next_hop: IpAddr, now: Instant, item: T) -> Result<(), T> {
        let for_hop = self.items.iter().filter(|(ip, _, _)| *ip == next_hop).count();
        if for_hop >= HOLD_PER_NEXT_HOP || self.items.len() >= HOLD_TOTAL {
            return Err(item);
        }
        self.items.push((next_hop, now, item));
        Ok(())
    }

    /// Takes out, in the order they came, the items whose next hop
    /// `resolved` now says is known, and drops those held too long; returns
    /// the released items and how many were dropped.
    pub fn release(&mut self, resolved: impl Fn(IpAddr) -> bool, now: Instant) -> (Vec<T>, usize) {
        let mut out = Vec::new();
        let mut expired = 0;
        let mut keep = Vec::with_capacity(self.items.len());
        for (ip, since, item) in self.items.drain(..) {
            if resolved(ip) {
                out.push(item);
            } else if now.saturating_duration_since(since) >= HOLD_TIME {
                expired += 1;
            } else {
                keep.push((ip, since, item));
            }
        }
        self.items = keep;
        (out, expired)
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];
    const PEER: [u8; 6] = [2, 0, 0, 0, 0, 9];

    fn agent() -> NeighborAgent {
        NeighborAgent::new(vec![PortAddrs {
            mac: MAC,
            addrs: vec!["192.0.2.1".parse().unwrap(), "2001:db8::1".parse().unwrap()],
        }])
    }

    #[test]
    fn answers_arp_for_our_address_and_learns_the_asker() {
        let mut a = agent();
        let Some(NeighOut::Send { frame: req, .. }) = agent().solicit("192.0.2.1".parse().unwrap(), 0, Instant::now())
        else {
            panic!()
        };
        // Turn our own request format into a peer's request for our address.
        let mut r = arp::Repr::parse(&req[14..]).unwrap();
        r.sender_mac = PEER;
        r.sender_ip = "192.0.2.9".parse().unwrap();
        let mut f = vec![0u8; 42];
        ethernet::emit(&mut f, ethernet::BROADCAST, PEER, ethernet::ETHERTYPE_ARP);
        r.emit(&mut f[14..]);
        let out = a.on_frame(0, &f).unwrap();
        assert_eq!(out[0], NeighOut::Learn { ip: "192.0.2.9".parse().unwrap(), mac: PEER });
        let NeighOut::Send { port: 0, frame } = &out[1] else { panic!("{out:?}") };
        assert_eq!(&frame[0..6], &PEER);
        let rep = arp::Repr::parse(&frame[14..]).unwrap();
        assert_eq!((rep.op, rep.sender_mac, rep.sender_ip), (arp::OP_REPLY, MAC, "192.0.2.1".parse().unwrap()));
        // Not ours: learn only.
        r.target_ip = "192.0.2.77".parse().unwrap();
        r.emit(&mut f[14..]);
        assert_eq!(a.on_frame(0, &f).unwrap().len(), 1);
        // Not ARP or ND: not ours to handle.
        assert!(a.on_frame(0, &f[..10]).is_none());
    }

    #[test]
    fn answers_neighbor_solicitations_with_a_valid_advertisement() {
        let mut peer = NeighborAgent::new(vec![PortAddrs { mac: PEER, addrs: vec!["2001:db8::9".parse().unwrap()] }]);
        let Some(NeighOut::Send { frame: ns, .. }) = peer.solicit("2001:db8::1".parse().unwrap(), 0, Instant::now())
        else {
            panic!()
        };
        assert_eq!(&ns[0..6], &[0x33, 0x33, 0xff, 0, 0, 1], "to the solicited-node group");
        let mut a = agent();
        let out = a.on_frame(0, &ns).unwrap();
        assert_eq!(out[0], NeighOut::Learn { ip: "2001:db8::9".parse().unwrap(), mac: PEER });
        let NeighOut::Send { frame: na, .. } = &out[1] else { panic!("{out:?}") };
        // The peer accepts our NA (checksum, hop limit) and learns us.
        let learned = peer.on_frame(0, na).unwrap();
        assert_eq!(learned, vec![NeighOut::Learn { ip: "2001:db8::1".parse().unwrap(), mac: MAC }]);
        // A corrupted one is discarded.
        let mut bad = na.clone();
        let n = bad.len();
        bad[n - 1] ^= 1;
        assert_eq!(peer.on_frame(0, &bad).unwrap(), vec![]);
    }

    #[test]
    fn solicits_at_most_once_a_second() {
        let mut a = agent();
        let t0 = Instant::now();
        let ip: IpAddr = "192.0.2.50".parse().unwrap();
        assert!(a.solicit(ip, 0, t0).is_some());
        assert!(a.solicit(ip, 0, t0 + Duration::from_millis(500)).is_none());
        assert!(a.solicit(ip, 0, t0 + Duration::from_secs(1)).is_some());
        assert!(a.solicit("2001:db8::50".parse().unwrap(), 0, t0).is_some());
        assert!(a.solicit(ip, 7, t0 + Duration::from_secs(9)).is_none(), "no such port");
        assert_eq!(solicited_node("2001:db8::1:2:3".parse().unwrap()), "ff02::1:ff02:3".parse::<Ipv6Addr>().unwrap());
    }

    #[test]
    fn held_packets_go_out_in_order_once_their_next_hop_resolves() {
        let t0 = Instant::now();
        let a: IpAddr = "192.0.2.2".parse().unwrap();
        let b: IpAddr = "192.0.2.3".parse().unwrap();
        let mut q = HoldQueue::default();
        q.hold(a, t0, 1).unwrap();
        q.hold(b, t0, 2).unwrap();
        q.hold(a, t0, 3).unwrap();
        assert_eq!(q.release(|_| false, t0), (vec![], 0), "nothing resolved yet");
        assert_eq!(q.release(|ip| ip == a, t0 + Duration::from_millis(5)), (vec![1, 3], 0));
        assert!(!q.is_empty());
        // b never answers: dropped after HOLD_TIME, counted.
        assert_eq!(q.release(|_| false, t0 + HOLD_TIME), (vec![], 1));
        assert!(q.is_empty());
    }

    #[test]
    fn the_hold_queue_is_bounded_per_next_hop_and_in_all() {
        let t0 = Instant::now();
        let mut q = HoldQueue::default();
        let a: IpAddr = "192.0.2.2".parse().unwrap();
        for i in 0..HOLD_PER_NEXT_HOP {
            q.hold(a, t0, i).unwrap();
        }
        assert_eq!(q.hold(a, t0, 99), Err(99), "per next hop");
        for i in 0..(HOLD_TOTAL - HOLD_PER_NEXT_HOP) {
            let ip = IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + i as u32));
            q.hold(ip, t0, i).unwrap();
        }
        assert_eq!(q.hold("10.9.9.9".parse().unwrap(), t0, 7), Err(7), "in all");
    }
}
