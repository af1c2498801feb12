//! UDP headers (RFC 768) and UDP encapsulation of ESP (RFC 3948).

use std::net::IpAddr;

use super::{be16, ipproto, ipv4, ipv6, Result, WireError};

pub const HEADER_LEN: usize = 8;
/// IKE's port (RFC 7296 2.) and the NAT-T port (RFC 3948 2.).
pub const PORT_IKE: u16 = 500;
pub const PORT_NATT: u16 = 4500;

mod field {
    pub const SRC_PORT: usize = 0;
    pub const DST_PORT: usize = 2;
    pub const LENGTH: usize = 4;
    pub const CHECKSUM: usize = 6;
}

#[derive(Debug, Clone, Copy)]
pub struct Packet<T> {
    buf: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Checks the header fits and the length field is within the buffer
    /// and covers the header.
    pub fn new_checked(buf: T) -> Result<Self> {
        let b = buf.as_ref();
        if b.len() < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        let len = be16(b, field::LENGTH) as usize;
        if len < HEADER_LEN {
            return Err(WireError::Malformed);
        }
        if len > b.len() {
            return Err(WireError::Truncated);
        }
        Ok(Packet { buf })
    }

    pub fn src_port(&self) -> u16 {
        be16(self.buf.as_ref(), field::SRC_PORT)
    }

    pub fn dst_port(&self) -> u16 {
        be16(self.buf.as_ref(), field::DST_PORT)
    }

    pub fn len(&self) -> usize {
        be16(self.buf.as_ref(), field::LENGTH) as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len() == HEADER_LEN
    }

    pub fn checksum(&self) -> u16 {
        be16(self.buf.as_ref(), field::CHECKSUM)
    }

    pub fn payload(&self) -> &[u8] {
        &self.buf.as_ref()[HEADER_LEN..self.len()]
    }
}

/// Writes a UDP header with checksum 0: what RFC 3948 2.1 asks for
/// UDP-encapsulated ESP over IPv4 (the ESP ICV protects the payload). Over
/// IPv6 a zero checksum is forbidden (RFC 8200 8.1): fill it in with
/// [`set_checksum`] and [`checksum_of`] once the payload is final.
pub fn emit(out: &mut [u8], src_port: u16, dst_port: u16, payload_len: usize) {
    out[field::SRC_PORT..field::SRC_PORT + 2].copy_from_slice(&src_port.to_be_bytes());
    out[field::DST_PORT..field::DST_PORT + 2].copy_from_slice(&dst_port.to_be_bytes());
    patch_len(out, payload_len);
    out[field::CHECKSUM..field::CHECKSUM + 2].copy_from_slice(&[0, 0]);
}

pub fn patch_len(out: &mut [u8], payload_len: usize) {
    out[field::LENGTH..field::LENGTH + 2].copy_from_slice(&((HEADER_LEN + payload_len) as u16).to_be_bytes());
}

pub fn set_checksum(out: &mut [u8], c: u16) {
    out[field::CHECKSUM..field::CHECKSUM + 2].copy_from_slice(&c.to_be_bytes());
}

/// The checksum to store for the UDP datagram `dgram` (header and payload,
/// checksum field zero) between `src` and `dst` (RFC 768; RFC 8200 8.1
/// for the IPv6 pseudo-header). A computed zero is sent as all ones.
pub fn checksum_of(src: IpAddr, dst: IpAddr, dgram: &[u8]) -> u16 {
    match super::checksum(dgram, pseudo_header_sum(src, dst, dgram.len())) {
        0 => 0xffff,
        c => c,
    }
}

fn pseudo_header_sum(src: IpAddr, dst: IpAddr, len: usize) -> u32 {
    match (src, dst) {
        (IpAddr::V6(s), IpAddr::V6(d)) => ipv6::pseudo_header_sum(s, d, ipproto::UDP, len),
        (IpAddr::V4(s), IpAddr::V4(d)) => ipv4::pseudo_header_sum(s, d, ipproto::UDP, len),
        // Mixed families cannot occur in one IP header; sum what there is.
        _ => 0,
    }
}

/// Why a received datagram's checksum is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChecksumError {
    /// Zero over IPv6: "IPv6 receivers must discard UDP packets containing
    /// a zero checksum" (RFC 8200 8.1; the RFC 6935 exception covers
    /// tunnel protocols that opt in, which ESP-in-UDP does not).
    ZeroOverIpv6,
    /// A checksum that does not verify (RFC 1122 4.1.3.4: discard).
    Wrong,
}

/// Checks the checksum of `dgram` (exactly the datagram: `len()` octets)
/// received from `src` to `dst`. Zero over IPv4 means "not computed"
/// (RFC 768) and passes: RFC 3948 2.1 has senders of ESP-in-UDP send it.
pub fn verify_checksum(src: IpAddr, dst: IpAddr, dgram: &[u8]) -> core::result::Result<(), ChecksumError> {
    if dgram.len() >= HEADER_LEN && be16(dgram, field::CHECKSUM) == 0 {
        return if src.is_ipv6() { Err(ChecksumError::ZeroOverIpv6) } else { Ok(()) };
    }
    // Summing the stored checksum in gives all ones when it is right.
    if super::checksum(dgram, pseudo_header_sum(src, dst, dgram.len())) == 0 {
        Ok(())
    } else {
        Err(ChecksumError::Wrong)
    }
}

/// What arrives on UDP port 4500 (RFC 3948 2.2, 2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NattPayload {
    /// One octet 0xFF: a NAT-keepalive; drop after counting.
    Keepalive,
    /// Four zero octets (the non-ESP marker): IKE, for the control plane.
    Ike,
    /// Anything else starts with a non-zero SPI: ESP.
    Esp,
}

pub fn classify_natt(payload: &[u8]) -> Result<NattPayload> {
    match payload {
        [0xff] => Ok(NattPayload::Keepalive),
        [0, 0, 0, 0, ..] => Ok(NattPayload::Ike),
        p if p.len() >= 8 => Ok(NattPayload::Esp),
        _ => Err(WireError::Truncated),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emit_parse_truncate() {
        let mut b = [0u8; 12];
        emit(&mut b, 4500, 4500, 4);
        b[8..].copy_from_slice(&[1, 2, 3, 4]);
        let u = Packet::new_checked(&b[..]).unwrap();
        assert_eq!((u.src_port(), u.dst_port(), u.len()), (4500, 4500, 12));
        assert_eq!(u.payload(), &[1, 2, 3, 4]);
        for n in 0..12 {
            assert!(Packet::new_checked(&b[..n]).is_err(), "{n}");
        }
        let mut bad = b;
        bad[4..6].copy_from_slice(&3u16.to_be_bytes());
        assert_eq!(Packet::new_checked(&bad[..]).unwrap_err(), WireError::Malformed);
    }

    fn datagram(payload: &[u8]) -> Vec<u8> {
        let mut d = vec![0u8; HEADER_LEN + payload.len()];
        emit(&mut d, 4500, 4500, payload.len());
        d[HEADER_LEN..].copy_from_slice(payload);
        d
    }

    /// RFC 8200 8.1: the IPv6 UDP checksum is mandatory; a zero one is
    /// discarded. RFC 768 / RFC 3948 2.1: zero over IPv4 means none.
    #[test]
    fn rfc8200_8_1_zero_checksum_refused_over_ipv6_only() {
        let (s6, d6): (IpAddr, IpAddr) = ("2001:db8::1".parse().unwrap(), "2001:db8::2".parse().unwrap());
        let (s4, d4): (IpAddr, IpAddr) = ("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap());
        let d = datagram(&[0, 0, 0x10, 0x01, 0, 0, 0, 1, 0xaa]);
        assert_eq!(verify_checksum(s6, d6, &d), Err(ChecksumError::ZeroOverIpv6));
        assert_eq!(verify_checksum(s4, d4, &d), Ok(()));
        for (s, dst) in [(s6, d6), (s4, d4)] {
            let mut ok = d.clone();
            let c = checksum_of(s, dst, &ok);
            set_checksum(&mut ok, c);
            assert_ne!(Packet::new_checked(&ok[..]).unwrap().checksum(), 0);
            assert_eq!(verify_checksum(s, dst, &ok), Ok(()));
            // Another payload octet, another source, a flipped checksum bit.
            let mut bad = ok.clone();
            bad[HEADER_LEN] ^= 0x40;
            assert_eq!(verify_checksum(s, dst, &bad), Err(ChecksumError::Wrong));
            let other: IpAddr = if s.is_ipv6() { "2001:db8::9".parse().unwrap() } else { "192.0.2.9".parse().unwrap() };
            assert_eq!(verify_checksum(other, dst, &ok), Err(ChecksumError::Wrong));
            let mut flipped = ok.clone();
            flipped[field::CHECKSUM] ^= 1;
            assert_eq!(verify_checksum(s, dst, &flipped), Err(ChecksumError::Wrong));
        }
    }

    #[test]
    fn a_computed_zero_goes_out_as_all_ones() {
        // Find a payload whose checksum computes to zero; RFC 768 sends it
        // as 0xffff, which still verifies.
        let (s, d): (IpAddr, IpAddr) = ("2001:db8::1".parse().unwrap(), "2001:db8::2".parse().unwrap());
        let mut dg = datagram(&[0, 0]);
        let c = !super::super::checksum(&dg, pseudo_header_sum(s, d, dg.len()));
        // Putting the complement of the checksum into the payload makes the
        // sum all ones, so the computed checksum is zero.
        dg[HEADER_LEN..].copy_from_slice(&(!c).to_be_bytes());
        assert_eq!(super::super::checksum(&dg, pseudo_header_sum(s, d, dg.len())), 0);
        assert_eq!(checksum_of(s, d, &dg), 0xffff);
        set_checksum(&mut dg, 0xffff);
        assert_eq!(verify_checksum(s, d, &dg), Ok(()));
    }

    #[test]
    fn natt_classification() {
        assert_eq!(classify_natt(&[0xff]), Ok(NattPayload::Keepalive));
        assert_eq!(classify_natt(&[0, 0, 0, 0, 1, 2]), Ok(NattPayload::Ike));
        assert_eq!(classify_natt(&[0, 0, 0, 1, 0, 0, 0, 1]), Ok(NattPayload::Esp));
        assert_eq!(classify_natt(&[0, 0, 1]), Err(WireError::Truncated));
        assert_eq!(classify_natt(&[]), Err(WireError::Truncated));
    }
}
