//! IPv6 headers (RFC 8200) and the walk over extension headers to the
//! upper-layer protocol.
//!
//! ```text
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |Version| Traffic Class |           Flow Label                  |
//! |         Payload Length        |  Next Header  |   Hop Limit   |
//! |                         Source Address (128)                  |
//! |                      Destination Address (128)                |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```

use std::net::Ipv6Addr;

use super::{be16, ipproto, Result, WireError};

pub const HEADER_LEN: usize = 40;
/// Extension headers walked at most; more is treated as malformed (a DoS
/// guard: each costs a read on the fast path).
const MAX_EXT_HEADERS: usize = 8;

mod field {
    pub const VER_TC_FL: usize = 0;
    pub const PAYLOAD_LEN: usize = 4;
    pub const NEXT_HEADER: usize = 6;
    pub const HOP_LIMIT: usize = 7;
    pub const SRC: usize = 8;
    pub const DST: usize = 24;
}

#[derive(Debug, Clone, Copy)]
pub struct Packet<T> {
    buf: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    pub fn new_checked(buf: T) -> Result<Self> {
        let b = buf.as_ref();
        if b.len() < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        if b[field::VER_TC_FL] >> 4 != 6 {
            return Err(WireError::Malformed);
        }
        if HEADER_LEN + be16(b, field::PAYLOAD_LEN) as usize > b.len() {
            return Err(WireError::Truncated);
        }
        Ok(Packet { buf })
    }

    fn b(&self) -> &[u8] {
        self.buf.as_ref()
    }

    pub fn payload_len(&self) -> usize {
        be16(self.b(), field::PAYLOAD_LEN) as usize
    }

    pub fn total_len(&self) -> usize {
        HEADER_LEN + self.payload_len()
    }

    pub fn traffic_class(&self) -> u8 {
        let b = self.b();
        (b[0] << 4) | (b[1] >> 4)
    }

    pub fn next_header(&self) -> u8 {
        self.b()[field::NEXT_HEADER]
    }

    pub fn hop_limit(&self) -> u8 {
        self.b()[field::HOP_LIMIT]
    }

    pub fn src(&self) -> Ipv6Addr {
        let a: [u8; 16] = self.b()[field::SRC..field::SRC + 16].try_into().unwrap_or_default();
        Ipv6Addr::from(a)
    }

    pub fn dst(&self) -> Ipv6Addr {
        let a: [u8; 16] = self.b()[field::DST..field::DST + 16].try_into().unwrap_or_default();
        Ipv6Addr::from(a)
    }

    /// Walks hop-by-hop, routing, destination-options and fragment headers
    /// to the upper-layer protocol; returns (protocol, offset of its header
    /// from the start of the IPv6 header). A fragment that is not the first
    /// returns `ipproto::FRAGMENT` at the fragment header.
    pub fn upper_layer(&self) -> Result<(u8, usize)> {
        let b = &self.b()[..self.total_len()];
        let mut nh = self.next_header();
        let mut off = HEADER_LEN;
        for _ in 0..MAX_EXT_HEADERS {
            match nh {
                ipproto::HOPOPTS | ipproto::ROUTING | ipproto::DSTOPTS => {
                    if off + 8 > b.len() {
                        return Err(WireError::Truncated);
                    }
                    let len = (b[off + 1] as usize + 1) * 8;
                    if off + len > b.len() {
                        return Err(WireError::Truncated);
                    }
                    nh = b[off];
                    off += len;
                }
                ipproto::FRAGMENT => {
                    if off + 8 > b.len() {
                        return Err(WireError::Truncated);
                    }
                    let frag_off = be16(b, off + 2) >> 3;
                    if frag_off != 0 {
                        return Ok((ipproto::FRAGMENT, off));
                    }
                    nh = b[off];
                    off += 8;
                }
                _ => return Ok((nh, off)),
            }
        }
        Err(WireError::Malformed)
    }
}

/// Where the upper layer starts behind an IPv6 header and the extension
/// headers before it, and which octet names it (what ESP transport mode
/// inserts itself at, RFC 4303 3.1.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UpperLayer {
    /// The protocol (`ipproto::FRAGMENT` for any fragment).
    pub protocol: u8,
    /// Its offset from the start of the IPv6 header.
    pub offset: usize,
    /// The offset of the Next Header octet that holds `protocol`: in the
    /// fixed header or in the last extension header.
    pub next_header_at: usize,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Like [`Packet::upper_layer`], also saying which octet names the
    /// upper layer; every fragment, first or not, stops the walk at its
    /// fragment header (transport-mode ESP is applied to whole packets).
    pub fn upper_layer_at(&self) -> Result<UpperLayer> {
        let b = &self.b()[..self.total_len()];
        let mut at = field::NEXT_HEADER;
        let mut off = HEADER_LEN;
        for _ in 0..MAX_EXT_HEADERS {
            let nh = b[at];
            match nh {
                ipproto::HOPOPTS | ipproto::ROUTING | ipproto::DSTOPTS => {
                    if off + 8 > b.len() {
                        return Err(WireError::Truncated);
                    }
                    let len = (b[off + 1] as usize + 1) * 8;
                    if off + len > b.len() {
                        return Err(WireError::Truncated);
                    }
                    at = off;
                    off += len;
                }
                _ => return Ok(UpperLayer { protocol: nh, offset: off, next_header_at: at }),
            }
        }
        Err(WireError::Malformed)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    pub fn decrement_hop_limit(&mut self) {
        let b = self.buf.as_mut();
        b[field::HOP_LIMIT] = b[field::HOP_LIMIT].wrapping_sub(1);
    }
}

/// Fields of an IPv6 header to emit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    pub src: Ipv6Addr,
    pub dst: Ipv6Addr,
    pub next_header: u8,
    pub payload_len: usize,
    pub hop_limit: u8,
    pub traffic_class: u8,
}

impl Repr {
    pub fn emit(&self, out: &mut [u8]) {
        out[0] = 0x60 | (self.traffic_class >> 4);
        out[1] = self.traffic_class << 4;
        out[2] = 0;
        out[3] = 0;
        patch_len(out, self.payload_len);
        out[field::NEXT_HEADER] = self.next_header;
        out[field::HOP_LIMIT] = self.hop_limit;
        out[field::SRC..field::SRC + 16].copy_from_slice(&self.src.octets());
        out[field::DST..field::DST + 16].copy_from_slice(&self.dst.octets());
    }
}

/// Sets the payload length of a header emitted earlier as a template.
pub fn patch_len(out: &mut [u8], payload_len: usize) {
    out[field::PAYLOAD_LEN..field::PAYLOAD_LEN + 2].copy_from_slice(&(payload_len as u16).to_be_bytes());
}

/// The pseudo-header sum for upper-layer checksums (RFC 8200 8.1).
pub fn pseudo_header_sum(src: Ipv6Addr, dst: Ipv6Addr, next_header: u8, len: usize) -> u32 {
    let mut b = [0u8; 40];
    b[0..16].copy_from_slice(&src.octets());
    b[16..32].copy_from_slice(&dst.octets());
    b[32..36].copy_from_slice(&(len as u32).to_be_bytes());
    b[39] = next_header;
    super::sum_words(&b, 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_ext(exts: &[(u8, usize)], upper: u8, upper_len: usize) -> Vec<u8> {
        // exts: (type, length in octets); chained, ending in `upper`.
        let mut body = Vec::new();
        for (i, &(_, len)) in exts.iter().enumerate() {
            let next = exts.get(i + 1).map(|e| e.0).unwrap_or(upper);
            let mut h = vec![0u8; len];
            h[0] = next;
            h[1] = (len / 8 - 1) as u8;
            body.extend_from_slice(&h);
        }
        body.extend(std::iter::repeat_n(0xaa, upper_len));
        let mut b = vec![0u8; HEADER_LEN];
        Repr {
            src: "2001:db8::1".parse().unwrap(),
            dst: "2001:db8::2".parse().unwrap(),
            next_header: exts.first().map(|e| e.0).unwrap_or(upper),
            payload_len: body.len(),
            hop_limit: 64,
            traffic_class: 0xb8,
        }
        .emit(&mut b);
        b.extend_from_slice(&body);
        b
    }

    #[test]
    fn emit_parse_and_walk_extension_headers() {
        let b = with_ext(&[(ipproto::HOPOPTS, 8), (ipproto::DSTOPTS, 16), (ipproto::FRAGMENT, 8)], ipproto::ESP, 20);
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.traffic_class(), 0xb8);
        assert_eq!(p.hop_limit(), 64);
        assert_eq!(p.src(), "2001:db8::1".parse::<Ipv6Addr>().unwrap());
        assert_eq!(p.upper_layer().unwrap(), (ipproto::ESP, 40 + 8 + 16 + 8));
        let plain = with_ext(&[], ipproto::UDP, 8);
        assert_eq!(Packet::new_checked(&plain[..]).unwrap().upper_layer().unwrap(), (ipproto::UDP, 40));
    }

    #[test]
    fn truncated_extension_chains_are_errors() {
        let b = with_ext(&[(ipproto::ROUTING, 24)], ipproto::UDP, 0);
        for cut in 41..b.len() {
            let mut t = b[..cut].to_vec();
            patch_len(&mut t, cut - HEADER_LEN);
            let p = Packet::new_checked(&t[..]).unwrap();
            assert_eq!(p.upper_layer().unwrap_err(), WireError::Truncated, "cut {cut}");
        }
        for n in 0..HEADER_LEN {
            assert!(Packet::new_checked(&b[..n]).is_err());
        }
    }

    #[test]
    fn endless_chains_are_malformed() {
        let exts: Vec<(u8, usize)> = (0..9).map(|_| (ipproto::DSTOPTS, 8)).collect();
        let b = with_ext(&exts, ipproto::UDP, 0);
        assert_eq!(Packet::new_checked(&b[..]).unwrap().upper_layer().unwrap_err(), WireError::Malformed);
    }
}
