//! IPv4 headers (RFC 791).
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |Version|  IHL  |Type of Service|          Total Length         |
//! |         Identification        |Flags|      Fragment Offset    |
//! |  Time to Live |    Protocol   |         Header Checksum       |
//! |                       Source Address                          |
//! |                    Destination Address                        |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```

use std::net::Ipv4Addr;

use super::{be16, checksum, Result, WireError};

pub const MIN_HEADER_LEN: usize = 20;

mod field {
    pub const VER_IHL: usize = 0;
    pub const TOS: usize = 1;
    pub const TOTAL_LEN: usize = 2;
    pub const IDENT: usize = 4;
    pub const FLAGS_FRAG: usize = 6;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: usize = 10;
    pub const SRC: usize = 12;
    pub const DST: usize = 16;
}

/// Don't Fragment flag in the flags/fragment-offset word.
pub const FLAG_DF: u16 = 0x4000;
const FLAG_MF: u16 = 0x2000;
const FRAG_OFFSET_MASK: u16 = 0x1fff;

#[derive(Debug, Clone, Copy)]
pub struct Packet<T> {
    buf: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Checks version 4, IHL >= 5, header within total length, total length
    /// within the buffer. Octets past the total length (Ethernet padding)
    /// are allowed and ignored by [`Packet::total_len`] users.
    pub fn new_checked(buf: T) -> Result<Self> {
        let b = buf.as_ref();
        if b.len() < MIN_HEADER_LEN {
            return Err(WireError::Truncated);
        }
        if b[field::VER_IHL] >> 4 != 4 {
            return Err(WireError::Malformed);
        }
        let hl = ((b[field::VER_IHL] & 0xf) as usize) * 4;
        let total = be16(b, field::TOTAL_LEN) as usize;
        if hl < MIN_HEADER_LEN || total < hl {
            return Err(WireError::Malformed);
        }
        if total > b.len() {
            return Err(WireError::Truncated);
        }
        Ok(Packet { buf })
    }

    fn b(&self) -> &[u8] {
        self.buf.as_ref()
    }

    pub fn header_len(&self) -> usize {
        ((self.b()[field::VER_IHL] & 0xf) as usize) * 4
    }

    pub fn tos(&self) -> u8 {
        self.b()[field::TOS]
    }

    pub fn total_len(&self) -> usize {
        be16(self.b(), field::TOTAL_LEN) as usize
    }

    pub fn ident(&self) -> u16 {
        be16(self.b(), field::IDENT)
    }

    pub fn dont_fragment(&self) -> bool {
        be16(self.b(), field::FLAGS_FRAG) & FLAG_DF != 0
    }

    /// A fragment (more-fragments set or a non-zero offset).
    pub fn is_fragment(&self) -> bool {
        let f = be16(self.b(), field::FLAGS_FRAG);
        f & FLAG_MF != 0 || f & FRAG_OFFSET_MASK != 0
    }

    pub fn ttl(&self) -> u8 {
        self.b()[field::TTL]
    }

    pub fn protocol(&self) -> u8 {
        self.b()[field::PROTOCOL]
    }

    pub fn src(&self) -> Ipv4Addr {
        let b = self.b();
        Ipv4Addr::new(b[field::SRC], b[field::SRC + 1], b[field::SRC + 2], b[field::SRC + 3])
    }

    pub fn dst(&self) -> Ipv4Addr {
        let b = self.b();
        Ipv4Addr::new(b[field::DST], b[field::DST + 1], b[field::DST + 2], b[field::DST + 3])
    }

    pub fn checksum_ok(&self) -> bool {
        checksum(&self.b()[..self.header_len()], 0) == 0
    }

    /// The payload up to the total length.
    pub fn payload(&self) -> &[u8] {
        &self.b()[self.header_len()..self.total_len()]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Decrements the TTL and patches the checksum incrementally
    /// (RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m')).
    pub fn decrement_ttl(&mut self) {
        let b = self.buf.as_mut();
        let m = be16(b, field::TTL);
        b[field::TTL] = b[field::TTL].wrapping_sub(1);
        let m2 = be16(b, field::TTL);
        let hc = be16(b, field::CHECKSUM);
        let sum = (!hc) as u32 + (!m) as u32 + m2 as u32;
        let new = !super::fold(sum);
        b[field::CHECKSUM..field::CHECKSUM + 2].copy_from_slice(&new.to_be_bytes());
    }
}

/// Fields of an IPv4 header to emit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub protocol: u8,
    pub payload_len: usize,
    pub ttl: u8,
    pub tos: u8,
    pub ident: u16,
    pub dont_fragment: bool,
}

impl Repr {
    /// Writes a 20-octet header with its checksum into `out`.
    pub fn emit(&self, out: &mut [u8]) {
        let total = (MIN_HEADER_LEN + self.payload_len) as u16;
        out[field::VER_IHL] = 0x45;
        out[field::TOS] = self.tos;
        out[field::TOTAL_LEN..field::TOTAL_LEN + 2].copy_from_slice(&total.to_be_bytes());
        out[field::IDENT..field::IDENT + 2].copy_from_slice(&self.ident.to_be_bytes());
        let flags = if self.dont_fragment { FLAG_DF } else { 0 };
        out[field::FLAGS_FRAG..field::FLAGS_FRAG + 2].copy_from_slice(&flags.to_be_bytes());
        out[field::TTL] = self.ttl;
        out[field::PROTOCOL] = self.protocol;
        out[field::CHECKSUM..field::CHECKSUM + 2].copy_from_slice(&[0, 0]);
        out[field::SRC..field::SRC + 4].copy_from_slice(&self.src.octets());
        out[field::DST..field::DST + 4].copy_from_slice(&self.dst.octets());
        let c = checksum(&out[..MIN_HEADER_LEN], 0);
        out[field::CHECKSUM..field::CHECKSUM + 2].copy_from_slice(&c.to_be_bytes());
    }
}

/// Patches the total length and checksum of a header emitted earlier as a
/// template (the outer header of an SA), for a new payload length.
pub fn patch_len_ident(out: &mut [u8], payload_len: usize, ident: u16) {
    let total = (MIN_HEADER_LEN + payload_len) as u16;
    out[field::TOTAL_LEN..field::TOTAL_LEN + 2].copy_from_slice(&total.to_be_bytes());
    out[field::IDENT..field::IDENT + 2].copy_from_slice(&ident.to_be_bytes());
    out[field::CHECKSUM..field::CHECKSUM + 2].copy_from_slice(&[0, 0]);
    let c = checksum(&out[..MIN_HEADER_LEN], 0);
    out[field::CHECKSUM..field::CHECKSUM + 2].copy_from_slice(&c.to_be_bytes());
}

/// Sets the protocol and total length of the header at the start of `out`
/// (whatever its length, options included) and recomputes its checksum:
/// what ESP transport mode changes in a packet's own header.
pub fn set_protocol_len(out: &mut [u8], protocol: u8, total_len: usize) {
    let hl = ((out[field::VER_IHL] & 0x0f) as usize * 4).clamp(MIN_HEADER_LEN, out.len());
    out[field::PROTOCOL] = protocol;
    out[field::TOTAL_LEN..field::TOTAL_LEN + 2].copy_from_slice(&(total_len as u16).to_be_bytes());
    out[field::CHECKSUM..field::CHECKSUM + 2].copy_from_slice(&[0, 0]);
    let c = checksum(&out[..hl], 0);
    out[field::CHECKSUM..field::CHECKSUM + 2].copy_from_slice(&c.to_be_bytes());
}

/// The pseudo-header sum for UDP/TCP checksums (RFC 768).
pub fn pseudo_header_sum(src: Ipv4Addr, dst: Ipv4Addr, protocol: u8, len: usize) -> u32 {
    let mut b = [0u8; 12];
    b[0..4].copy_from_slice(&src.octets());
    b[4..8].copy_from_slice(&dst.octets());
    b[9] = protocol;
    b[10..12].copy_from_slice(&(len as u16).to_be_bytes());
    super::sum_words(&b, 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        let mut b = vec![0u8; 28];
        Repr {
            src: Ipv4Addr::new(192, 0, 2, 1),
            dst: Ipv4Addr::new(198, 51, 100, 7),
            protocol: 17,
            payload_len: 8,
            ttl: 64,
            tos: 0,
            ident: 0x1234,
            dont_fragment: true,
        }
        .emit(&mut b);
        b
    }

    #[test]
    fn emit_then_parse() {
        let b = sample();
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.header_len(), 20);
        assert_eq!(p.total_len(), 28);
        assert_eq!(p.src(), Ipv4Addr::new(192, 0, 2, 1));
        assert_eq!(p.dst(), Ipv4Addr::new(198, 51, 100, 7));
        assert_eq!(p.protocol(), 17);
        assert!(p.dont_fragment() && !p.is_fragment());
        assert!(p.checksum_ok());
        assert_eq!(p.payload().len(), 8);
    }

    #[test]
    fn ttl_decrement_keeps_checksum_valid() {
        let mut b = sample();
        for _ in 0..70 {
            let mut p = Packet::new_checked(&mut b[..]).unwrap();
            p.decrement_ttl();
            assert!(p.checksum_ok(), "ttl {}", p.ttl());
        }
    }

    #[test]
    fn rejects_truncated_and_malformed() {
        let b = sample();
        for n in 0..28 {
            assert!(Packet::new_checked(&b[..n]).is_err(), "len {n}");
        }
        let mut v6 = b.clone();
        v6[0] = 0x65;
        assert_eq!(Packet::new_checked(&v6[..]).unwrap_err(), WireError::Malformed);
        let mut ihl = b.clone();
        ihl[0] = 0x44;
        assert_eq!(Packet::new_checked(&ihl[..]).unwrap_err(), WireError::Malformed);
        let mut tl = b.clone();
        tl[2..4].copy_from_slice(&10u16.to_be_bytes());
        assert_eq!(Packet::new_checked(&tl[..]).unwrap_err(), WireError::Malformed);
        // Ethernet padding after the packet is fine.
        let mut padded = b.clone();
        padded.extend_from_slice(&[0; 18]);
        assert_eq!(Packet::new_checked(&padded[..]).unwrap().payload().len(), 8);
    }

    #[test]
    fn template_patch_matches_fresh_emit() {
        let mut t = sample();
        patch_len_ident(&mut t, 100, 7);
        let mut fresh = vec![0u8; 20];
        Repr {
            src: Ipv4Addr::new(192, 0, 2, 1),
            dst: Ipv4Addr::new(198, 51, 100, 7),
            protocol: 17,
            payload_len: 100,
            ttl: 64,
            tos: 0,
            ident: 7,
            dont_fragment: true,
        }
        .emit(&mut fresh);
        assert_eq!(&t[..20], &fresh[..]);
    }
}
