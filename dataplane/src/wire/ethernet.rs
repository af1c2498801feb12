//! Ethernet II frames (IEEE 802.3 with an EtherType; no FCS, as DPDK
//! delivers them).

use super::{be16, Result, WireError};

pub const HEADER_LEN: usize = 14;
pub const ETHERTYPE_IPV4: u16 = 0x0800;
pub const ETHERTYPE_ARP: u16 = 0x0806;
pub const ETHERTYPE_IPV6: u16 = 0x86dd;
pub const BROADCAST: [u8; 6] = [0xff; 6];

mod field {
    use core::ops::Range;
    pub const DST: Range<usize> = 0..6;
    pub const SRC: Range<usize> = 6..12;
    pub const ETHERTYPE: usize = 12;
}

#[derive(Debug, Clone, Copy)]
pub struct Frame<T> {
    buf: T,
}

impl<T: AsRef<[u8]>> Frame<T> {
    pub fn new_checked(buf: T) -> Result<Self> {
        if buf.as_ref().len() < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        Ok(Frame { buf })
    }

    pub fn dst(&self) -> [u8; 6] {
        self.buf.as_ref()[field::DST].try_into().unwrap_or_default()
    }

    pub fn src(&self) -> [u8; 6] {
        self.buf.as_ref()[field::SRC].try_into().unwrap_or_default()
    }

    pub fn ethertype(&self) -> u16 {
        be16(self.buf.as_ref(), field::ETHERTYPE)
    }

    pub fn payload(&self) -> &[u8] {
        &self.buf.as_ref()[HEADER_LEN..]
    }
}

/// Writes an Ethernet header into the first 14 octets of `out`.
pub fn emit(out: &mut [u8], dst: [u8; 6], src: [u8; 6], ethertype: u16) {
    out[field::DST].copy_from_slice(&dst);
    out[field::SRC].copy_from_slice(&src);
    out[field::ETHERTYPE..field::ETHERTYPE + 2].copy_from_slice(&ethertype.to_be_bytes());
}

/// True for a multicast (including broadcast) destination.
pub fn is_multicast(mac: &[u8; 6]) -> bool {
    mac[0] & 1 == 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_emit_round_trip_and_truncation() {
        let mut b = [0u8; 20];
        emit(&mut b, [1, 2, 3, 4, 5, 6], [7, 8, 9, 10, 11, 12], ETHERTYPE_IPV6);
        let f = Frame::new_checked(&b[..]).unwrap();
        assert_eq!(f.dst(), [1, 2, 3, 4, 5, 6]);
        assert_eq!(f.src(), [7, 8, 9, 10, 11, 12]);
        assert_eq!(f.ethertype(), ETHERTYPE_IPV6);
        assert_eq!(f.payload().len(), 6);
        for n in 0..HEADER_LEN {
            assert_eq!(Frame::new_checked(&b[..n]).unwrap_err(), WireError::Truncated);
        }
        assert!(is_multicast(&BROADCAST));
        assert!(!is_multicast(&[2, 0, 0, 0, 0, 1]));
    }
}
