//! Whole UDP datagrams for the control plane's IKE traffic: built into an
//! Ethernet frame for [`Command::SendDatagram`](cpdp::msg::Command) and
//! read out of a punted frame for [`Event::Datagram`](cpdp::msg::Event).
//! Checksums are computed on output (RFC 768, RFC 8200 8.1); on input
//! they are not relied on (RFC 3948 2.1; veth offload leaves them partial).

use std::net::{IpAddr, SocketAddr};

use super::{ethernet, ipproto, ipv4, ipv6, udp};

/// An Ethernet frame carrying `payload` from `src` to `dst` over UDP.
/// None when the two addresses are of different families.
pub fn frame(src: SocketAddr, dst: SocketAddr, payload: &[u8], dst_mac: [u8; 6], src_mac: [u8; 6]) -> Option<Vec<u8>> {
    let ulen = udp::HEADER_LEN + payload.len();
    match (src.ip(), dst.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let mut f = vec![0u8; ethernet::HEADER_LEN + ipv4::MIN_HEADER_LEN + ulen];
            ethernet::emit(&mut f, dst_mac, src_mac, ethernet::ETHERTYPE_IPV4);
            let ip = ethernet::HEADER_LEN;
            ipv4::Repr {
                src: s,
                dst: d,
                protocol: ipproto::UDP,
                payload_len: ulen,
                ttl: 64,
                tos: 0,
                ident: 0,
                dont_fragment: false,
            }
            .emit(&mut f[ip..]);
            let u = ip + ipv4::MIN_HEADER_LEN;
            udp::emit(&mut f[u..], src.port(), dst.port(), payload.len());
            f[u + udp::HEADER_LEN..].copy_from_slice(payload);
            let sum = ipv4::pseudo_header_sum(s, d, ipproto::UDP, ulen);
            let c = super::checksum(&f[u..], sum);
            udp::set_checksum(&mut f[u..], if c == 0 { 0xffff } else { c });
            Some(f)
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            let mut f = vec![0u8; ethernet::HEADER_LEN + ipv6::HEADER_LEN + ulen];
            ethernet::emit(&mut f, dst_mac, src_mac, ethernet::ETHERTYPE_IPV6);
            let ip = ethernet::HEADER_LEN;
            ipv6::Repr {
                src: s,
                dst: d,
                next_header: ipproto::UDP,
                payload_len: ulen,
                hop_limit: 64,
                traffic_class: 0,
            }
            .emit(&mut f[ip..]);
            let u = ip + ipv6::HEADER_LEN;
            udp::emit(&mut f[u..], src.port(), dst.port(), payload.len());
            f[u + udp::HEADER_LEN..].copy_from_slice(payload);
            let sum = ipv6::pseudo_header_sum(s, d, ipproto::UDP, ulen);
            let c = super::checksum(&f[u..], sum);
            udp::set_checksum(&mut f[u..], if c == 0 { 0xffff } else { c });
            Some(f)
        }
        _ => None,
    }
}

/// A UDP datagram in an Ethernet frame: (source, destination, payload).
pub fn parse(f: &[u8]) -> Option<(SocketAddr, SocketAddr, Vec<u8>)> {
    let eth = ethernet::Frame::new_checked(f).ok()?;
    match eth.ethertype() {
        ethernet::ETHERTYPE_IPV4 => {
            let ip = ipv4::Packet::new_checked(eth.payload()).ok()?;
            if ip.protocol() != ipproto::UDP || ip.is_fragment() {
                return None;
            }
            let u = udp::Packet::new_checked(ip.payload()).ok()?;
            Some((
                SocketAddr::new(IpAddr::V4(ip.src()), u.src_port()),
                SocketAddr::new(IpAddr::V4(ip.dst()), u.dst_port()),
                u.payload().to_vec(),
            ))
        }
        ethernet::ETHERTYPE_IPV6 => {
            let ip = ipv6::Packet::new_checked(eth.payload()).ok()?;
            let (nh, off) = ip.upper_layer().ok()?;
            if nh != ipproto::UDP {
                return None;
            }
            let b = eth.payload().get(off..ip.total_len())?;
            let u = udp::Packet::new_checked(b).ok()?;
            Some((
                SocketAddr::new(IpAddr::V6(ip.src()), u.src_port()),
                SocketAddr::new(IpAddr::V6(ip.dst()), u.dst_port()),
                u.payload().to_vec(),
            ))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_with_valid_checksums() {
        for (s, d) in [("10.0.0.1:500", "10.0.0.2:500"), ("[fd00::1]:4500", "[fd00::2]:4500")] {
            let (s, d): (SocketAddr, SocketAddr) = (s.parse().unwrap(), d.parse().unwrap());
            let f = frame(s, d, b"\0\0\0\0hello ike", [2; 6], [4; 6]).unwrap();
            let (ps, pd, p) = parse(&f).unwrap();
            assert_eq!((ps, pd, p.as_slice()), (s, d, &b"\0\0\0\0hello ike"[..]));
            // The UDP checksum verifies: summing with it gives all ones.
            let u = if s.is_ipv4() { 34 } else { 54 };
            let ulen = f.len() - u;
            let sum = match (s.ip(), d.ip()) {
                (IpAddr::V4(a), IpAddr::V4(b)) => ipv4::pseudo_header_sum(a, b, ipproto::UDP, ulen),
                (IpAddr::V6(a), IpAddr::V6(b)) => ipv6::pseudo_header_sum(a, b, ipproto::UDP, ulen),
                _ => unreachable!(),
            };
            assert_eq!(crate::wire::checksum(&f[u..], sum), 0);
        }
        assert!(frame("10.0.0.1:1".parse().unwrap(), "[::1]:1".parse().unwrap(), b"", [0; 6], [0; 6]).is_none());
        for cut in 0..40 {
            let f =
                frame("10.0.0.1:500".parse().unwrap(), "10.0.0.2:500".parse().unwrap(), b"x", [2; 6], [4; 6]).unwrap();
            let _ = parse(&f[..cut.min(f.len())]);
        }
    }
}
