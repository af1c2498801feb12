//! ESP transport mode (RFC 4303 3.1.1, RFC 4301 4.1), in place on a packet
//! buffer: the ESP header goes between the packet's own IP header (IPv6:
//! with the extension headers before the upper layer) and its upper-layer
//! payload; the packet keeps its addresses, which are the SA's endpoints.
//! With NAT-T a UDP header (RFC 3948 2.1) sits in front of the ESP header.
//!
//! The gateway applies transport mode where it is a host's IPsec (a
//! "bump-in-the-wire" implementation, RFC 4301 3.3: the SA's local end is
//! a host behind it) or where the SA's end is one of its own addresses.
//! Byte buffers only; no DPDK, no allocation.

use crate::buf::PacketBuf;
use crate::drop::DropReason;
use crate::ipsec::{self, wire_drop, Inner};
use crate::replay::ReplayWindow;
use crate::sa::{InboundSa, OutboundSa};
use crate::wire::{self, esp, ipproto, ipv4, ipv6, udp};
use std::net::IpAddr;

/// The part of a packet that stays in front of the ESP header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Front {
    v6: bool,
    /// Octets before the upper layer.
    len: usize,
    /// The octet naming the upper layer (IPv4 protocol, IPv6 next header
    /// of the last header in front).
    protocol_at: usize,
    protocol: u8,
    src: IpAddr,
    dst: IpAddr,
}

/// The front of the IP packet filling `data`. Fragments are refused:
/// transport mode protects whole packets (RFC 4303 3.3.4: ESP is applied
/// before fragmentation; we do not reassemble).
fn front(data: &[u8]) -> Result<Front, DropReason> {
    match data.first().map(|b| b >> 4) {
        Some(4) => {
            let p = ipv4::Packet::new_checked(data).map_err(wire_drop)?;
            if p.is_fragment() {
                return Err(DropReason::Fragment);
            }
            Ok(Front {
                v6: false,
                len: p.header_len(),
                protocol_at: 9,
                protocol: p.protocol(),
                src: p.src().into(),
                dst: p.dst().into(),
            })
        }
        Some(6) => {
            let p = ipv6::Packet::new_checked(data).map_err(wire_drop)?;
            let u = p.upper_layer_at().map_err(wire_drop)?;
            if u.protocol == ipproto::FRAGMENT {
                return Err(DropReason::Fragment);
            }
            Ok(Front {
                v6: true,
                len: u.offset,
                protocol_at: u.next_header_at,
                protocol: u.protocol,
                src: p.src().into(),
                dst: p.dst().into(),
            })
        }
        _ => Err(DropReason::Malformed),
    }
}

/// Rewrites the front's protocol octet and the packet's length fields
/// after the packet grew or shrank to `total` octets.
fn patch_front(data: &mut [u8], f: &Front, protocol: u8, total: usize) {
    if f.v6 {
        data[f.protocol_at] = protocol;
        ipv6::patch_len(data, total - ipv6::HEADER_LEN);
    } else {
        ipv4::set_protocol_len(data, protocol, total);
    }
}

/// Octets transport mode adds to a packet whose upper layer is
/// `payload_len` octets: UDP (NAT-T), ESP header, IV, padding, trailer,
/// ICV.
#[inline]
pub fn overhead(sa: &OutboundSa, payload_len: usize) -> usize {
    let alg = sa.cipher.algorithm();
    let udp = if sa.natt.is_some() { udp::HEADER_LEN } else { 0 };
    udp + esp::HEADER_LEN + alg.iv_len() + esp::pad_len(payload_len, alg.align()) + esp::TRAILER_LEN + alg.icv_len()
}

/// Encrypts the IP packet filling `buf` in transport mode with `sa`. Its
/// source and destination must be the SA's endpoints (anything else is a
/// packet the SA does not cover: `PolicyMismatch`).
pub fn encap<B: PacketBuf>(sa: &OutboundSa, buf: &mut B) -> Result<(), DropReason> {
    let f = front(buf.data())?;
    if f.src != sa.template_local() || f.dst != sa.remote {
        return Err(DropReason::PolicyMismatch);
    }
    let alg = sa.cipher.algorithm();
    let payload_len = buf.len() - f.len;
    let pad = esp::pad_len(payload_len, alg.align());
    let tail = pad + esp::TRAILER_LEN + alg.icv_len();
    let udp_len = if sa.natt.is_some() { udp::HEADER_LEN } else { 0 };
    let grow = udp_len + esp::HEADER_LEN + alg.iv_len();
    if buf.headroom() < grow || buf.tailroom() < tail {
        return Err(DropReason::NoRoom);
    }
    let seq = sa.next_seq().ok_or(DropReason::SeqOverflow)?;
    let t = buf.append(tail).ok_or(DropReason::NoRoom)?;
    esp::emit_trailer(&mut t[..pad + esp::TRAILER_LEN], f.protocol);
    buf.prepend(grow).ok_or(DropReason::NoRoom)?;
    let d = buf.data_mut();
    // The IP header moves to the new front; ESP takes its old place.
    d.copy_within(grow..grow + f.len, 0);
    let esp_at = f.len + udp_len;
    esp::emit_header(&mut d[esp_at..], sa.spi, seq as u32);
    sa.cipher.seal(&mut d[esp_at..], seq, sa.esn);
    let total = d.len();
    match sa.natt {
        Some(n) => {
            patch_front(d, &f, ipproto::UDP, total);
            udp::emit(&mut d[f.len..], n.local, n.remote, total - esp_at);
            // RFC 3948 2.1: zero over IPv4; RFC 8200 8.1: computed over IPv6.
            if f.v6 {
                let c = udp::checksum_of(f.src, f.dst, &d[f.len..]);
                udp::set_checksum(&mut d[f.len..], c);
            }
        }
        None => patch_front(d, &f, ipproto::ESP, total),
    }
    Ok(())
}

/// Decrypts the transport-mode ESP packet starting `esp_off` octets into
/// `buf` (after the IP header in front and, with NAT-T, UDP). The replay
/// window is checked before and updated after the ICV verifies. On success
/// `buf` holds the original packet: its own header, the upper layer the
/// trailer named. Behind a NAT (`esp_off` past a UDP header) the TCP or
/// UDP checksum, computed by the peer over addresses the NAT changed, is
/// computed again (RFC 3948 3.1.2, the "recompute" choice).
pub fn decap<B: PacketBuf>(
    sa: &InboundSa,
    window: &mut ReplayWindow,
    buf: &mut B,
    esp_off: usize,
) -> Result<Inner, DropReason> {
    let f = front(buf.data())?;
    if esp_off < f.len {
        return Err(DropReason::Malformed);
    }
    let natt = esp_off > f.len;
    let o = ipsec::open(sa, window, buf, esp_off)?;
    let shift = o.body - f.len;
    if !buf.trim(o.tail) {
        return Err(DropReason::Truncated);
    }
    buf.data_mut().copy_within(0..f.len, shift);
    if !buf.adj(shift) {
        return Err(DropReason::Truncated);
    }
    let d = buf.data_mut();
    let total = d.len();
    patch_front(d, &f, o.next_header, total);
    if natt {
        fix_l4_checksum(d, &f, o.next_header);
    }
    Ok(Inner { v6: f.v6, seq: o.seq })
}

/// Recomputes a TCP or UDP checksum over the packet's present addresses
/// (RFC 3948 3.1.2). UDP over IPv4 without a checksum (zero) stays so.
fn fix_l4_checksum(d: &mut [u8], f: &Front, protocol: u8) {
    let at = match protocol {
        ipproto::TCP => 16,
        ipproto::UDP => 6,
        _ => return,
    };
    let l4 = &mut d[f.len..];
    if l4.len() < at + 2 {
        return;
    }
    if protocol == ipproto::UDP && !f.v6 && l4[at..at + 2] == [0, 0] {
        return;
    }
    l4[at..at + 2].copy_from_slice(&[0, 0]);
    let pseudo = match (f.src, f.dst) {
        (IpAddr::V4(s), IpAddr::V4(t)) => ipv4::pseudo_header_sum(s, t, protocol, l4.len()),
        (IpAddr::V6(s), IpAddr::V6(t)) => ipv6::pseudo_header_sum(s, t, protocol, l4.len()),
        _ => return,
    };
    let c = match wire::checksum(l4, pseudo) {
        0 if protocol == ipproto::UDP => 0xffff,
        c => c,
    };
    l4[at..at + 2].copy_from_slice(&c.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::buf::VecBuf;
    use crate::crypto::Algorithm;
    use crate::sa::{NattPorts, SaParams};
    use zeroize::Zeroizing;

    fn params(alg: Algorithm, local: &str, remote: &str, natt: bool) -> SaParams {
        SaParams {
            spi: 0x4242,
            alg,
            enc_key: Zeroizing::new(vec![7; alg.enc_key_len()]),
            auth_key: Zeroizing::new(vec![9; alg.auth_key_len()]),
            local: local.parse().unwrap(),
            remote: remote.parse().unwrap(),
            natt: natt.then_some(NattPorts { local: 4500, remote: 4501 }),
            esn: false,
            replay_window: 64,
            inner_src: vec![],
            inner_dst: vec![],
            lifetime: Default::default(),
            transport: true,
        }
    }

    /// A UDP packet with a right checksum between `src` and `dst`.
    fn udp_packet(src: &str, dst: &str, len: usize) -> Vec<u8> {
        let (s, d): (IpAddr, IpAddr) = (src.parse().unwrap(), dst.parse().unwrap());
        let mut dgram = vec![0u8; udp::HEADER_LEN + len];
        udp::emit(&mut dgram, 1234, 5678, len);
        for (i, b) in dgram[udp::HEADER_LEN..].iter_mut().enumerate() {
            *b = i as u8;
        }
        let c = udp::checksum_of(s, d, &dgram);
        udp::set_checksum(&mut dgram, c);
        let mut p = match (s, d) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                let mut h = vec![0u8; ipv4::MIN_HEADER_LEN];
                ipv4::Repr {
                    src: s,
                    dst: d,
                    protocol: ipproto::UDP,
                    payload_len: dgram.len(),
                    ttl: 64,
                    tos: 0,
                    ident: 1,
                    dont_fragment: true,
                }
                .emit(&mut h);
                h
            }
            (IpAddr::V6(s), IpAddr::V6(d)) => {
                let mut h = vec![0u8; ipv6::HEADER_LEN];
                ipv6::Repr {
                    src: s,
                    dst: d,
                    next_header: ipproto::UDP,
                    payload_len: dgram.len(),
                    hop_limit: 64,
                    traffic_class: 0,
                }
                .emit(&mut h);
                h
            }
            _ => unreachable!(),
        };
        p.extend_from_slice(&dgram);
        p
    }

    fn round_trip(local: &str, remote: &str, natt: bool) {
        for alg in Algorithm::ALL {
            let out = OutboundSa::new(&params(alg, local, remote, natt)).unwrap();
            let inb = InboundSa::new(&params(alg, remote, local, natt)).unwrap();
            for len in [0, 1, 29, 100, 1400] {
                let clear = udp_packet(local, remote, len);
                let mut b = VecBuf::new(&clear);
                encap(&out, &mut b).unwrap();
                let f = front(b.data()).unwrap();
                // RFC 4303 3.1.1: the IP header stays, ESP follows it.
                assert_eq!(f.protocol, if natt { ipproto::UDP } else { ipproto::ESP });
                assert_eq!((f.src, f.dst), (local.parse().unwrap(), remote.parse().unwrap()));
                assert_eq!(b.len(), clear.len() + overhead(&out, clear.len() - f.len));
                if f.v6 {
                    assert_eq!(ipv6::Packet::new_checked(b.data()).unwrap().total_len(), b.len());
                } else {
                    let p = ipv4::Packet::new_checked(b.data()).unwrap();
                    assert!(p.checksum_ok());
                    assert_eq!(p.total_len(), b.len());
                }
                let esp_off = f.len + if natt { udp::HEADER_LEN } else { 0 };
                if natt && f.v6 {
                    udp::verify_checksum(f.src, f.dst, &b.data()[f.len..]).unwrap();
                }
                let mut w = ReplayWindow::new(64, false);
                decap(&inb, &mut w, &mut b, esp_off).unwrap();
                assert_eq!(b.data(), &clear[..], "{alg:?} {local} len {len} natt {natt}");
                // The same packet again is a replay (RFC 4303 3.4.3).
                let mut again = VecBuf::new(&clear);
                encap(&out, &mut again).unwrap();
                let mut w2 = ReplayWindow::new(64, false);
                let copy = again.data().to_vec();
                decap(&inb, &mut w2, &mut again, esp_off).unwrap();
                let mut replayed = VecBuf::new(&copy);
                assert_eq!(decap(&inb, &mut w2, &mut replayed, esp_off), Err(DropReason::Replay));
            }
        }
    }

    #[test]
    fn round_trips_ipv4_and_ipv6_with_and_without_natt() {
        round_trip("192.0.2.1", "198.51.100.7", false);
        round_trip("192.0.2.1", "198.51.100.7", true);
        round_trip("2001:db8::1", "2001:db8:1::7", false);
        round_trip("2001:db8::1", "2001:db8:1::7", true);
    }

    #[test]
    fn ipv6_esp_goes_after_the_extension_headers_in_front() {
        // RFC 4303 3.1.1: after hop-by-hop, routing and destination options.
        let alg = Algorithm::AesGcm128;
        let out = OutboundSa::new(&params(alg, "2001:db8::1", "2001:db8:1::7", false)).unwrap();
        let inb = InboundSa::new(&params(alg, "2001:db8:1::7", "2001:db8::1", false)).unwrap();
        let mut p = udp_packet("2001:db8::1", "2001:db8:1::7", 40);
        // Insert a hop-by-hop header (8 octets, PadN) naming UDP.
        let hbh = [ipproto::UDP, 0, 1, 4, 0, 0, 0, 0];
        p.splice(ipv6::HEADER_LEN..ipv6::HEADER_LEN, hbh);
        p[6] = ipproto::HOPOPTS;
        let plen = p.len() - ipv6::HEADER_LEN;
        ipv6::patch_len(&mut p, plen);
        let mut b = VecBuf::new(&p);
        encap(&out, &mut b).unwrap();
        assert_eq!(b.data()[6], ipproto::HOPOPTS, "the fixed header still names hop-by-hop");
        assert_eq!(b.data()[ipv6::HEADER_LEN], ipproto::ESP, "hop-by-hop now names ESP");
        let mut w = ReplayWindow::new(64, false);
        decap(&inb, &mut w, &mut b, ipv6::HEADER_LEN + 8).unwrap();
        assert_eq!(b.data(), &p[..]);
    }

    #[test]
    fn packets_the_sa_does_not_cover_and_fragments_are_dropped() {
        let out = OutboundSa::new(&params(Algorithm::AesGcm128, "192.0.2.1", "198.51.100.7", false)).unwrap();
        let mut other = VecBuf::new(&udp_packet("192.0.2.9", "198.51.100.7", 10));
        assert_eq!(encap(&out, &mut other), Err(DropReason::PolicyMismatch));
        let mut frag = udp_packet("192.0.2.1", "198.51.100.7", 10);
        frag[6] = 0x20; // more fragments
        let c = {
            frag[10..12].copy_from_slice(&[0, 0]);
            wire::checksum(&frag[..20], 0)
        };
        frag[10..12].copy_from_slice(&c.to_be_bytes());
        assert_eq!(encap(&out, &mut VecBuf::new(&frag)), Err(DropReason::Fragment));
        assert_eq!(front(&[0x10, 0, 0]), Err(DropReason::Malformed));
    }

    #[test]
    fn behind_a_nat_the_upper_layer_checksum_is_computed_again() {
        // The peer (private 10.0.0.7) sealed a UDP packet to us; a NAT
        // rewrote the outer source to 203.0.113.5. After decap the UDP
        // checksum must hold for the addresses in the header (RFC 3948
        // 3.1.2).
        let alg = Algorithm::AesGcm128;
        let peer = OutboundSa::new(&params(alg, "10.0.0.7", "192.0.2.1", true)).unwrap();
        let ours = InboundSa::new(&params(alg, "192.0.2.1", "203.0.113.5", true)).unwrap();
        let mut b = VecBuf::new(&udp_packet("10.0.0.7", "192.0.2.1", 33));
        encap(&peer, &mut b).unwrap();
        let d = b.data_mut();
        d[12..16].copy_from_slice(&[203, 0, 113, 5]);
        d[10..12].copy_from_slice(&[0, 0]);
        let c = wire::checksum(&d[..20], 0);
        d[10..12].copy_from_slice(&c.to_be_bytes());
        let mut w = ReplayWindow::new(64, false);
        decap(&ours, &mut w, &mut b, 28).unwrap();
        let s: IpAddr = "203.0.113.5".parse().unwrap();
        let t: IpAddr = "192.0.2.1".parse().unwrap();
        udp::verify_checksum(s, t, &b.data()[20..]).unwrap();
    }
}
