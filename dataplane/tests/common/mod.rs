//! Helpers shared by the integration tests.
#![allow(dead_code)]

use dataplane::wire::{ethernet, ipproto, ipv4, ipv6};

/// An Ethernet frame carrying a UDP packet of `len` octets of IP
/// (header included) from `src` to `dst` (both IPv4 or both IPv6).
pub fn udp_frame(src: &str, dst: &str, len: usize, tag: u8) -> Vec<u8> {
    let v6 = src.contains(':');
    let mut f = vec![0u8; 14 + len];
    ethernet::emit(&mut f, [2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2], if v6 { 0x86dd } else { 0x0800 });
    let l4 = if v6 {
        ipv6::Repr {
            src: src.parse().unwrap(),
            dst: dst.parse().unwrap(),
            next_header: ipproto::UDP,
            payload_len: len - 40,
            hop_limit: 64,
            traffic_class: 0,
        }
        .emit(&mut f[14..]);
        54
    } else {
        ipv4::Repr {
            src: src.parse().unwrap(),
            dst: dst.parse().unwrap(),
            protocol: ipproto::UDP,
            payload_len: len - 20,
            ttl: 64,
            tos: 0,
            ident: tag as u16,
            dont_fragment: false,
        }
        .emit(&mut f[14..]);
        34
    };
    // UDP header (checksum 0 is legal for IPv4 only; these are test payloads
    // that nobody delivers to a socket) and a patterned body.
    let ulen = (len - (l4 - 14)) as u16;
    f[l4..l4 + 2].copy_from_slice(&(10000 + tag as u16).to_be_bytes());
    f[l4 + 2..l4 + 4].copy_from_slice(&7u16.to_be_bytes());
    f[l4 + 4..l4 + 6].copy_from_slice(&ulen.to_be_bytes());
    f[l4 + 8..].iter_mut().enumerate().for_each(|(i, b)| *b = tag.wrapping_add(i as u8));
    f
}

/// The IP packet inside an Ethernet frame.
pub fn ip_of(frame: &[u8]) -> &[u8] {
    &frame[14..]
}

/// Recomputes the IPv4 header checksum of an Ethernet frame after a test
/// changed a header field.
pub fn fix_ipv4_checksum(frame: &mut [u8]) {
    frame[24..26].fill(0);
    let c = dataplane::wire::checksum(&frame[14..34], 0);
    frame[24..26].copy_from_slice(&c.to_be_bytes());
}
