//! ESP tunnel mode (RFC 4303) applied in place to a packet buffer: encap of
//! an inner IPv4/IPv6 packet into outer IPv4/IPv6 (optionally UDP, RFC
//! 3948), and decap back. Byte buffers only; no DPDK, no allocation.

use crate::buf::PacketBuf;
use crate::drop::DropReason;
use crate::replay::{ReplayError, ReplayWindow};
use crate::sa::{InboundSa, OutboundSa};
use crate::wire::{self, esp, ipproto, ipv4, ipv6};

/// Octets ESP tunnel mode adds to an inner packet of `inner_len` with
/// `sa`: outer headers, ESP header, IV, padding, trailer, ICV.
#[inline]
pub fn overhead(sa: &OutboundSa, inner_len: usize) -> usize {
    let alg = sa.cipher.algorithm();
    sa.template.len()
        + esp::HEADER_LEN
        + alg.iv_len()
        + esp::pad_len(inner_len, alg.align())
        + esp::TRAILER_LEN
        + alg.icv_len()
}

/// Encapsulates the inner IP packet that fills `buf` (no L2 header) with
/// `sa`; afterwards `buf` holds the outer IP packet. `inner_v6` selects
/// the next header (IPv6 41 or IPv4 4).
#[inline]
pub fn encap<B: PacketBuf>(sa: &OutboundSa, buf: &mut B, inner_v6: bool) -> Result<(), DropReason> {
    encap_to(sa, buf, inner_v6, None)
}

/// [`encap`] with the outer destination given per packet (group SAs: the
/// member endpoint the inner destination routes to).
#[inline]
pub fn encap_to<B: PacketBuf>(
    sa: &OutboundSa,
    buf: &mut B,
    inner_v6: bool,
    dst: Option<std::net::IpAddr>,
) -> Result<(), DropReason> {
    let alg = sa.cipher.algorithm();
    let inner_len = buf.len();
    let pad = esp::pad_len(inner_len, alg.align());
    let tail = pad + esp::TRAILER_LEN + alg.icv_len();
    let outer = sa.template.len();
    let head = outer + esp::HEADER_LEN + alg.iv_len();
    if buf.headroom() < head || buf.tailroom() < tail {
        return Err(DropReason::NoRoom);
    }
    let seq = sa.next_seq().ok_or(DropReason::SeqOverflow)?;
    let nh = if inner_v6 { ipproto::IPV6 } else { ipproto::IPV4 };
    let t = buf.append(tail).ok_or(DropReason::NoRoom)?;
    esp::emit_trailer(&mut t[..pad + esp::TRAILER_LEN], nh);
    let h = buf.prepend(head).ok_or(DropReason::NoRoom)?;
    let esp_len = esp::HEADER_LEN + alg.iv_len() + inner_len + tail;
    sa.template.write(&mut h[..outer], esp_len, seq as u16, dst);
    esp::emit_header(&mut h[outer..], sa.spi, seq as u32);
    sa.cipher.seal(&mut buf.data_mut()[outer..], seq, sa.esn);
    // IPv6 NAT-T: the UDP checksum covers the ciphertext (RFC 8200 8.1).
    sa.template.finish(buf.data_mut(), dst);
    Ok(())
}

/// What decap found inside.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Inner {
    pub v6: bool,
    pub seq: u64,
}

/// An ESP packet whose ICV verified and whose trailer was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Opened {
    pub seq: u64,
    pub next_header: u8,
    /// Where the payload starts (after ESP header and IV).
    pub body: usize,
    /// Octets after the payload: padding, trailer, ICV.
    pub tail: usize,
}

/// Checks the replay window, verifies and decrypts the ESP packet starting
/// `esp_off` octets into `buf`, updates the window and reads the trailer.
/// The buffer keeps its length; the payload is `body..len - tail`.
#[inline]
pub(crate) fn open<B: PacketBuf>(
    sa: &InboundSa,
    window: &mut ReplayWindow,
    buf: &mut B,
    esp_off: usize,
) -> Result<Opened, DropReason> {
    let alg = sa.cipher.algorithm();
    let (iv, icv) = (alg.iv_len(), alg.icv_len());
    let len = buf.len();
    if len < esp_off + esp::HEADER_LEN + iv + esp::TRAILER_LEN + icv {
        return Err(DropReason::Truncated);
    }
    let seq_low = esp::Packet::new_checked(&buf.data()[esp_off..]).map_err(|_| DropReason::Truncated)?.seq();
    let seq = window.check(seq_low).map_err(|e| match e {
        ReplayError::Zero | ReplayError::TooOld | ReplayError::Duplicate => DropReason::Replay,
    })?;
    sa.cipher.open(&mut buf.data_mut()[esp_off..], seq, sa.esn).map_err(|_| DropReason::IcvFailed)?;
    window.accept(seq);
    let body = esp_off + esp::HEADER_LEN + iv;
    let (pad, next_header) = esp::parse_trailer(&buf.data()[body..len - icv]).map_err(|e| match e {
        esp::TrailerError::Truncated => DropReason::Truncated,
        esp::TrailerError::BadPadding => DropReason::BadPadding,
    })?;
    if next_header == ipproto::NONE {
        return Err(DropReason::DummyPacket);
    }
    Ok(Opened { seq, next_header, body, tail: pad + esp::TRAILER_LEN + icv })
}

/// Decapsulates the tunnel-mode ESP packet starting `esp_off` octets into
/// `buf` (after the outer IP and, with NAT-T, UDP headers). The replay
/// window is checked before and updated after the ICV verifies. On success
/// `buf` holds the inner IP packet, trimmed to its own length.
#[inline]
pub fn decap<B: PacketBuf>(
    sa: &InboundSa,
    window: &mut ReplayWindow,
    buf: &mut B,
    esp_off: usize,
) -> Result<Inner, DropReason> {
    let o = open(sa, window, buf, esp_off)?;
    let v6 = match o.next_header {
        ipproto::IPV4 => false,
        ipproto::IPV6 => true,
        _ => return Err(DropReason::BadNextHeader),
    };
    if !buf.trim(o.tail) || !buf.adj(o.body) {
        return Err(DropReason::Truncated);
    }
    // The inner packet must be a whole IP packet of the announced version;
    // TFC padding after it (RFC 4303 2.7) is trimmed away.
    let inner_len = if v6 {
        ipv6::Packet::new_checked(buf.data()).map(|p| p.total_len())
    } else {
        ipv4::Packet::new_checked(buf.data()).map(|p| p.total_len())
    }
    .map_err(|_| DropReason::InnerMalformed)?;
    let extra = buf.len() - inner_len;
    if extra > 0 && !buf.trim(extra) {
        return Err(DropReason::InnerMalformed);
    }
    Ok(Inner { v6, seq: o.seq })
}

/// Maps a header parse error to its drop reason.
pub fn wire_drop(e: wire::WireError) -> DropReason {
    match e {
        wire::WireError::Truncated => DropReason::Truncated,
        wire::WireError::Malformed => DropReason::Malformed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::buf::VecBuf;
    use crate::crypto::Algorithm;
    use crate::sa::{NattPorts, SaParams};
    use crate::wire::udp;
    use std::net::IpAddr;
    use zeroize::Zeroizing;

    pub(crate) fn params(alg: Algorithm, local: &str, remote: &str, natt: bool, esn: bool) -> SaParams {
        SaParams {
            spi: 0x1001,
            alg,
            enc_key: Zeroizing::new((1..=alg.enc_key_len() as u8).collect()),
            auth_key: Zeroizing::new((50..50 + alg.auth_key_len() as u8).collect()),
            local: local.parse().unwrap(),
            remote: remote.parse().unwrap(),
            natt: natt.then_some(NattPorts { local: 4500, remote: 4500 }),
            esn,
            replay_window: 64,
            inner_src: Vec::new(),
            inner_dst: Vec::new(),
            lifetime: Default::default(),
            transport: false,
        }
    }

    pub(crate) fn inner_packet(v6: bool, len: usize, tag: u8) -> Vec<u8> {
        let mut p = vec![0u8; len];
        if v6 {
            ipv6::Repr {
                src: "2001:db8:a::10".parse().unwrap(),
                dst: "2001:db8:b::20".parse().unwrap(),
                next_header: ipproto::UDP,
                payload_len: len - 40,
                hop_limit: 64,
                traffic_class: 0,
            }
            .emit(&mut p);
            p[40..].iter_mut().enumerate().for_each(|(i, b)| *b = tag.wrapping_add(i as u8));
        } else {
            ipv4::Repr {
                src: "10.1.0.10".parse().unwrap(),
                dst: "10.2.0.20".parse().unwrap(),
                protocol: ipproto::UDP,
                payload_len: len - 20,
                ttl: 64,
                tos: 0,
                ident: tag as u16,
                dont_fragment: false,
            }
            .emit(&mut p);
            p[20..].iter_mut().enumerate().for_each(|(i, b)| *b = tag.wrapping_add(i as u8));
        }
        p
    }

    /// Peer SA (the other end's inbound view of our outbound SA).
    fn peer(p: &SaParams) -> SaParams {
        let mut q = p.clone();
        std::mem::swap(&mut q.local, &mut q.remote);
        q
    }

    #[test]
    fn all_four_tunnel_combinations_every_cipher_natt_and_esn() {
        let outer = [("192.0.2.1", "192.0.2.2"), ("2001:db8:1::1", "2001:db8:1::2")];
        for alg in Algorithm::ALL {
            for (l, r) in outer {
                for inner_v6 in [false, true] {
                    for natt in [false, true] {
                        for esn in [false, true] {
                            let p = params(alg, l, r, natt, esn);
                            let out = OutboundSa::new(&p).unwrap();
                            let inb = InboundSa::new(&peer(&p)).unwrap();
                            let mut w = ReplayWindow::new(64, esn);
                            if esn {
                                out.set_seq((7 << 32) - 3); // cross a 2^32 boundary
                                w.accept((7 << 32) - 10);
                            }
                            for (i, len) in [48usize, 64, 100, 1400].into_iter().enumerate() {
                                let len = if inner_v6 { len.max(48) } else { len };
                                let clear = inner_packet(inner_v6, len, i as u8);
                                let mut b = VecBuf::new(&clear);
                                encap(&out, &mut b, inner_v6).unwrap();
                                let d = b.data();
                                let off = out.template.len();
                                // The outer header is well formed and says what follows.
                                let proto = if r.contains(':') {
                                    let o = ipv6::Packet::new_checked(d).unwrap();
                                    assert_eq!(o.total_len(), d.len());
                                    assert_eq!(IpAddr::from(o.dst()), p.remote);
                                    o.next_header()
                                } else {
                                    let o = ipv4::Packet::new_checked(d).unwrap();
                                    assert_eq!(o.total_len(), d.len());
                                    assert!(o.checksum_ok());
                                    o.protocol()
                                };
                                assert_eq!(proto, if natt { ipproto::UDP } else { ipproto::ESP });
                                if natt {
                                    // RFC 8200 8.1: never zero over IPv6, and right;
                                    // RFC 3948 2.1: zero over IPv4.
                                    let (s, dst) = (p.local, p.remote);
                                    let u = udp::Packet::new_checked(&d[off - 8..]).unwrap();
                                    assert_eq!(u.len(), d.len() - (off - 8));
                                    if r.contains(':') {
                                        assert_ne!(u.checksum(), 0);
                                        assert_eq!(udp::verify_checksum(s, dst, &d[off - 8..]), Ok(()));
                                    } else {
                                        assert_eq!(u.checksum(), 0);
                                    }
                                }
                                assert_eq!(esp::Packet::new_checked(&d[off..]).unwrap().spi(), 0x1001);
                                let got = decap(&inb, &mut w, &mut b, off).unwrap();
                                assert_eq!(got.v6, inner_v6);
                                assert_eq!(b.data(), &clear[..], "{alg} {l} inner_v6={inner_v6} natt={natt} esn={esn}");
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn decap_drops_replays_tampering_and_bad_trailers() {
        let p = params(Algorithm::AesGcm128, "192.0.2.1", "192.0.2.2", false, false);
        let out = OutboundSa::new(&p).unwrap();
        let inb = InboundSa::new(&peer(&p)).unwrap();
        let mut w = ReplayWindow::new(64, false);
        let mut b = VecBuf::new(&inner_packet(false, 64, 1));
        encap(&out, &mut b, false).unwrap();
        let sealed = b.clone();
        assert!(decap(&inb, &mut w, &mut b, 20).is_ok());
        let mut again = sealed.clone();
        assert_eq!(decap(&inb, &mut w, &mut again, 20), Err(DropReason::Replay));
        // Flipped ciphertext: ICV failure, and the window did not move.
        let mut w2 = ReplayWindow::new(64, false);
        let mut t = sealed.clone();
        let n = t.len();
        t.data_mut()[n - 20] ^= 1;
        assert_eq!(decap(&inb, &mut w2, &mut t, 20), Err(DropReason::IcvFailed));
        assert_eq!(w2.top(), 0);
        // Truncated at every length: never a panic, always a drop.
        for cut in 0..sealed.len() {
            let mut t = VecBuf::new(&sealed.data()[..cut]);
            let mut w3 = ReplayWindow::new(64, false);
            assert!(decap(&inb, &mut w3, &mut t, 20.min(cut)).is_err(), "cut {cut}");
        }
    }

    #[test]
    fn bad_next_header_padding_and_dummy_packets_are_named() {
        // Seal hand-made plaintexts with a bad trailer, the way a broken or
        // hostile peer would.
        let p = params(Algorithm::AesGcm128, "192.0.2.1", "192.0.2.2", false, false);
        let inb = InboundSa::new(&peer(&p)).unwrap();
        let cipher = crate::crypto::EspCipher::new(p.alg, &p.enc_key, &p.auth_key).unwrap();
        let build = |payload: &[u8], trailer: &[u8], seq: u32| {
            let mut v = vec![0u8; 20];
            let mut e = vec![0u8; 8 + 8];
            esp::emit_header(&mut e, 0x1001, seq);
            e.extend_from_slice(payload);
            e.extend_from_slice(trailer);
            e.extend_from_slice(&[0; 16]);
            cipher.seal(&mut e, seq as u64, false);
            v.extend_from_slice(&e);
            VecBuf::new(&v)
        };
        let inner = inner_packet(false, 28, 0);
        let mut w = ReplayWindow::new(64, false);
        let cases = [
            (&[2u8, 1, 2, 4][..], DropReason::BadPadding, 1),
            (&[1, 2, 2, 17][..], DropReason::BadNextHeader, 2),
            (&[1, 2, 2, 59][..], DropReason::DummyPacket, 3),
            (&[1, 2, 2, 41][..], DropReason::InnerMalformed, 4),
        ];
        for (trailer, why, seq) in cases {
            let mut b = build(&inner, trailer, seq);
            assert_eq!(decap(&inb, &mut w, &mut b, 20), Err(why));
        }
        // And the same framing with a good trailer passes.
        let mut b = build(&inner, &[1, 2, 2, 4], 9);
        assert!(decap(&inb, &mut w, &mut b, 20).is_ok());
        assert_eq!(b.data(), &inner[..]);
    }

    /// Group SAs send to a destination chosen per packet: the checksum
    /// must use that one, not the template's.
    #[test]
    fn rfc8200_8_1_ipv6_natt_checksum_follows_the_per_packet_destination() {
        let p = params(Algorithm::AesGcm128, "2001:db8::1", "2001:db8::2", true, false);
        let out = OutboundSa::new(&p).unwrap();
        let member: IpAddr = "2001:db8::77".parse().unwrap();
        let mut b = VecBuf::new(&inner_packet(true, 100, 3));
        encap_to(&out, &mut b, true, Some(member)).unwrap();
        let d = b.data();
        assert_eq!(ipv6::Packet::new_checked(d).unwrap().dst(), "2001:db8::77".parse::<std::net::Ipv6Addr>().unwrap());
        assert_eq!(udp::verify_checksum(p.local, member, &d[40..]), Ok(()));
        assert_eq!(udp::verify_checksum(p.local, p.remote, &d[40..]), Err(udp::ChecksumError::Wrong));
    }

    #[test]
    fn sequence_numbers_stop_at_the_limit() {
        let p = params(Algorithm::AesGcm128, "192.0.2.1", "192.0.2.2", false, false);
        let out = OutboundSa::new(&p).unwrap();
        out.set_seq(u32::MAX as u64 - 1);
        let mut b = VecBuf::new(&inner_packet(false, 64, 0));
        assert!(encap(&out, &mut b, false).is_ok());
        for _ in 0..3 {
            let mut b = VecBuf::new(&inner_packet(false, 64, 0));
            assert_eq!(encap(&out, &mut b, false), Err(DropReason::SeqOverflow));
        }
        assert_eq!(out.seq_used(), u32::MAX as u64);
    }

    #[test]
    fn no_room_is_a_drop_not_a_panic() {
        let p = params(Algorithm::AesCbc256HmacSha256, "2001:db8::1", "2001:db8::2", true, false);
        let out = OutboundSa::new(&p).unwrap();
        let clear = inner_packet(false, 64, 0);
        let mut b = VecBuf::with_room(&clear, 10, 200);
        assert_eq!(encap(&out, &mut b, false), Err(DropReason::NoRoom));
        assert_eq!(b.data(), &clear[..], "unchanged");
        let mut b = VecBuf::with_room(&clear, 128, 128 + 64 + 5);
        assert_eq!(encap(&out, &mut b, false), Err(DropReason::NoRoom));
    }
}
