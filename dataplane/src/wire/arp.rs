//! ARP for IPv4 over Ethernet (RFC 826).
//!
//! ```text
//! | HTYPE (1) | PTYPE (0x0800) | HLEN 6 | PLEN 4 | OPER |
//! | SHA (6) | SPA (4) | THA (6) | TPA (4) |
//! ```

use std::net::Ipv4Addr;

use super::{be16, Result, WireError};

pub const PACKET_LEN: usize = 28;
pub const OP_REQUEST: u16 = 1;
pub const OP_REPLY: u16 = 2;

mod field {
    pub const HTYPE: usize = 0;
    pub const PTYPE: usize = 2;
    pub const HLEN: usize = 4;
    pub const PLEN: usize = 5;
    pub const OPER: usize = 6;
    pub const SHA: usize = 8;
    pub const SPA: usize = 14;
    pub const THA: usize = 18;
    pub const TPA: usize = 24;
}

/// An ARP packet for IPv4 over Ethernet, parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    pub op: u16,
    pub sender_mac: [u8; 6],
    pub sender_ip: Ipv4Addr,
    pub target_mac: [u8; 6],
    pub target_ip: Ipv4Addr,
}

fn ip(b: &[u8], at: usize) -> Ipv4Addr {
    Ipv4Addr::new(b[at], b[at + 1], b[at + 2], b[at + 3])
}

fn mac(b: &[u8], at: usize) -> [u8; 6] {
    b[at..at + 6].try_into().unwrap_or_default()
}

impl Repr {
    pub fn parse(b: &[u8]) -> Result<Repr> {
        if b.len() < PACKET_LEN {
            return Err(WireError::Truncated);
        }
        if be16(b, field::HTYPE) != 1 || be16(b, field::PTYPE) != 0x0800 || b[field::HLEN] != 6 || b[field::PLEN] != 4 {
            return Err(WireError::Malformed);
        }
        Ok(Repr {
            op: be16(b, field::OPER),
            sender_mac: mac(b, field::SHA),
            sender_ip: ip(b, field::SPA),
            target_mac: mac(b, field::THA),
            target_ip: ip(b, field::TPA),
        })
    }

    pub fn emit(&self, out: &mut [u8]) {
        out[field::HTYPE..field::HTYPE + 2].copy_from_slice(&1u16.to_be_bytes());
        out[field::PTYPE..field::PTYPE + 2].copy_from_slice(&0x0800u16.to_be_bytes());
        out[field::HLEN] = 6;
        out[field::PLEN] = 4;
        out[field::OPER..field::OPER + 2].copy_from_slice(&self.op.to_be_bytes());
        out[field::SHA..field::SHA + 6].copy_from_slice(&self.sender_mac);
        out[field::SPA..field::SPA + 4].copy_from_slice(&self.sender_ip.octets());
        out[field::THA..field::THA + 6].copy_from_slice(&self.target_mac);
        out[field::TPA..field::TPA + 4].copy_from_slice(&self.target_ip.octets());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_rejects() {
        let r = Repr {
            op: OP_REQUEST,
            sender_mac: [2, 0, 0, 0, 0, 1],
            sender_ip: Ipv4Addr::new(10, 0, 0, 1),
            target_mac: [0; 6],
            target_ip: Ipv4Addr::new(10, 0, 0, 2),
        };
        let mut b = [0u8; PACKET_LEN];
        r.emit(&mut b);
        assert_eq!(Repr::parse(&b), Ok(r));
        for n in 0..PACKET_LEN {
            assert_eq!(Repr::parse(&b[..n]), Err(WireError::Truncated));
        }
        let mut bad = b;
        bad[5] = 16;
        assert_eq!(Repr::parse(&bad), Err(WireError::Malformed));
    }
}
