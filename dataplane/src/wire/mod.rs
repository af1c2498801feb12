//! Zero-copy views of the headers the fast path reads and writes.
//!
//! Each view wraps a byte buffer (`T: AsRef<[u8]>`), is checked once by
//! `new_checked` (length, version, header-length fields), and then offers
//! accessors that cannot panic on any input that passed the check. Field
//! positions are named ranges in a `field` module per header, never bare
//! offsets at the use site. Setters exist where `T: AsMut<[u8]>`.
//!
//! Never allocates; never panics on a checked buffer.

pub mod arp;
pub mod datagram;
pub mod esp;
pub mod ethernet;
pub mod icmp;
pub mod ipv4;
pub mod ipv6;
pub mod udp;

/// Why a header did not parse. Each maps to a drop reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireError {
    /// Shorter than the header (or than a length field claims).
    Truncated,
    /// A version, header length or length field is impossible.
    Malformed,
}

pub type Result<T> = core::result::Result<T, WireError>;

pub(crate) fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

pub(crate) fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// The RFC 1071 Internet checksum of `data` with `initial` folded in
/// (for pseudo-headers), returned ready to store.
pub fn checksum(data: &[u8], initial: u32) -> u16 {
    !fold(sum_words(data, initial))
}

/// One's-complement sum of 16-bit words, not folded (but kept within 32
/// bits, so sums can be added up). Fast, because checksums of whole
/// packets sit on the fast path (ESP in UDP over IPv6): 2^16 = 1 in
/// one's-complement arithmetic, so 32-bit words may be summed instead of
/// 16-bit ones, into a 64-bit accumulator that cannot overflow for any
/// packet; and the sum may be taken in either byte order (RFC 1071 2.(B)),
/// so the words are read little-endian, which the compiler vectorizes,
/// and the folded result is swapped back once.
pub fn sum_words(data: &[u8], initial: u32) -> u32 {
    let mut acc: u64 = 0;
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        acc += u32::from_le_bytes([c[0], c[1], c[2], c[3]]) as u64;
    }
    let rest = chunks.remainder();
    // The last odd octets, padded with zeros on the right (RFC 1071).
    let mut w = [0u8; 4];
    w[..rest.len()].copy_from_slice(rest);
    acc += u32::from_le_bytes(w) as u64;
    let swapped = fold((acc & 0xffff_ffff) as u32) as u64 + fold((acc >> 32) as u32) as u64;
    let sum = fold(((swapped & 0xffff) + (swapped >> 16)) as u32).swap_bytes() as u64 + initial as u64;
    ((sum & 0xffff_ffff) + (sum >> 32)) as u32
}

pub fn fold(mut sum: u32) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

/// IP protocol numbers used here (IANA "Assigned Internet Protocol Numbers").
pub mod ipproto {
    pub const HOPOPTS: u8 = 0;
    pub const ICMP: u8 = 1;
    pub const IPV4: u8 = 4;
    pub const TCP: u8 = 6;
    pub const UDP: u8 = 17;
    pub const IPV6: u8 = 41;
    pub const ROUTING: u8 = 43;
    pub const FRAGMENT: u8 = 44;
    pub const ESP: u8 = 50;
    pub const AH: u8 = 51;
    pub const ICMPV6: u8 = 58;
    pub const NONE: u8 = 59;
    pub const DSTOPTS: u8 = 60;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc1071_checksum_example() {
        // RFC 1071 section 3: words 0001 f203 f4f5 f6f7 sum to ddf2.
        let d = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(fold(sum_words(&d, 0)), 0xddf2);
        assert_eq!(checksum(&d, 0), !0xddf2);
        assert_eq!(checksum(&[0xab], 0), !0xab00);
    }

    /// The reference: 16-bit words one at a time (RFC 1071 4.1).
    fn slow_sum(data: &[u8], initial: u32) -> u16 {
        let mut sum = initial as u64;
        for c in data.chunks(2) {
            sum += (u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])) as u64;
        }
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        sum as u16
    }

    #[test]
    fn the_wide_sum_equals_the_16_bit_one_at_every_length_and_alignment() {
        let data: Vec<u8> = (0..1600u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
        let ones = [0xffu8; 64];
        for len in 0..200 {
            for initial in [0, 1, 0xffff, 0x1_2345, u32::MAX] {
                assert_eq!(fold(sum_words(&data[..len], initial)), slow_sum(&data[..len], initial), "len {len}");
                assert_eq!(fold(sum_words(&ones[..len.min(64)], initial)), slow_sum(&ones[..len.min(64)], initial));
            }
        }
        assert_eq!(fold(sum_words(&data, 7)), slow_sum(&data, 7));
    }
}
