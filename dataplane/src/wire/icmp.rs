//! ICMP (RFC 792) and ICMPv6 (RFC 4443), with the parts of IPv6 neighbour
//! discovery (RFC 4861) a router needs: neighbour solicitation and
//! advertisement with the link-layer address options.

use std::net::Ipv6Addr;

use super::{Result, WireError};

pub const HEADER_LEN: usize = 8;

/// ICMPv4 types and codes used here.
pub mod v4 {
    pub const ECHO_REPLY: u8 = 0;
    pub const DEST_UNREACHABLE: u8 = 3;
    /// Code of DEST_UNREACHABLE: fragmentation needed and DF set (RFC 1191).
    pub const CODE_FRAG_NEEDED: u8 = 4;
    pub const ECHO_REQUEST: u8 = 8;
    pub const TIME_EXCEEDED: u8 = 11;
}

/// ICMPv6 types used here.
pub mod v6 {
    pub const PACKET_TOO_BIG: u8 = 2;
    pub const TIME_EXCEEDED: u8 = 3;
    pub const ECHO_REQUEST: u8 = 128;
    pub const ECHO_REPLY: u8 = 129;
    pub const NEIGHBOR_SOLICIT: u8 = 135;
    pub const NEIGHBOR_ADVERT: u8 = 136;
    /// NDP option types (RFC 4861 4.6.1).
    pub const OPT_SOURCE_LLADDR: u8 = 1;
    pub const OPT_TARGET_LLADDR: u8 = 2;
    /// Neighbor Advertisement flags.
    pub const NA_FLAG_ROUTER: u8 = 0x80;
    pub const NA_FLAG_SOLICITED: u8 = 0x40;
    pub const NA_FLAG_OVERRIDE: u8 = 0x20;
}

/// The fixed part of any ICMP/ICMPv6 message.
pub fn type_code(b: &[u8]) -> Result<(u8, u8)> {
    if b.len() < 4 {
        return Err(WireError::Truncated);
    }
    Ok((b[0], b[1]))
}

/// A neighbour solicitation or advertisement (RFC 4861 4.3, 4.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NdRepr {
    pub icmp_type: u8,
    /// Advertisement flags (R, S, O); 0 for a solicitation.
    pub flags: u8,
    pub target: Ipv6Addr,
    /// The source (NS) or target (NA) link-layer address option.
    pub lladdr: Option<[u8; 6]>,
}

impl NdRepr {
    /// Parses an NS or NA message (the ICMPv6 message, checksum already
    /// checked by the caller).
    pub fn parse(b: &[u8]) -> Result<NdRepr> {
        let (t, code) = type_code(b)?;
        if !(t == v6::NEIGHBOR_SOLICIT || t == v6::NEIGHBOR_ADVERT) || code != 0 {
            return Err(WireError::Malformed);
        }
        if b.len() < 24 {
            return Err(WireError::Truncated);
        }
        let target: [u8; 16] = b[8..24].try_into().unwrap_or_default();
        let mut lladdr = None;
        let mut opts = &b[24..];
        while !opts.is_empty() {
            if opts.len() < 2 {
                return Err(WireError::Truncated);
            }
            let len = opts[1] as usize * 8;
            if len == 0 {
                return Err(WireError::Malformed); // RFC 4861 4.6: must be discarded
            }
            if len > opts.len() {
                return Err(WireError::Truncated);
            }
            let want = if t == v6::NEIGHBOR_SOLICIT { v6::OPT_SOURCE_LLADDR } else { v6::OPT_TARGET_LLADDR };
            if opts[0] == want && len >= 8 {
                lladdr = opts[2..8].try_into().ok();
            }
            opts = &opts[len..];
        }
        let flags = if t == v6::NEIGHBOR_ADVERT { b[4] & 0xe0 } else { 0 };
        Ok(NdRepr { icmp_type: t, flags, target: Ipv6Addr::from(target), lladdr })
    }

    /// Octets [`NdRepr::emit`] writes.
    pub fn len(&self) -> usize {
        24 + if self.lladdr.is_some() { 8 } else { 0 }
    }

    pub fn is_empty(&self) -> bool {
        false
    }

    /// Writes the message with a zero checksum; the caller fills it in
    /// over the pseudo-header.
    pub fn emit(&self, out: &mut [u8]) {
        out[..24].fill(0);
        out[0] = self.icmp_type;
        out[4] = self.flags;
        out[8..24].copy_from_slice(&self.target.octets());
        if let Some(mac) = self.lladdr {
            out[24] =
                if self.icmp_type == v6::NEIGHBOR_SOLICIT { v6::OPT_SOURCE_LLADDR } else { v6::OPT_TARGET_LLADDR };
            out[25] = 1;
            out[26..32].copy_from_slice(&mac);
        }
    }
}

/// Sets the checksum field (octets 2..4) of an ICMP/ICMPv6 message.
pub fn set_checksum(msg: &mut [u8], c: u16) {
    msg[2..4].copy_from_slice(&c.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nd_round_trip_and_bad_options() {
        let na = NdRepr {
            icmp_type: v6::NEIGHBOR_ADVERT,
            flags: v6::NA_FLAG_SOLICITED | v6::NA_FLAG_OVERRIDE,
            target: "2001:db8::1".parse().unwrap(),
            lladdr: Some([2, 0, 0, 0, 0, 9]),
        };
        let mut b = vec![0u8; na.len()];
        na.emit(&mut b);
        assert_eq!(NdRepr::parse(&b), Ok(na));
        for n in 0..b.len() {
            if n == 24 {
                continue; // a message without options is valid
            }
            assert!(NdRepr::parse(&b[..n]).is_err(), "{n}");
        }
        let mut zero_len = b.clone();
        zero_len[25] = 0;
        assert_eq!(NdRepr::parse(&zero_len), Err(WireError::Malformed));
        let mut echo = b.clone();
        echo[0] = v6::ECHO_REQUEST;
        assert_eq!(NdRepr::parse(&echo), Err(WireError::Malformed));
    }
}
