//! UDP headers (RFC 768) and UDP encapsulation of ESP (RFC 3948).

use super::{be16, Result, WireError};

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

/// Writes a UDP header; checksum 0, which RFC 3948 3.1 allows for
/// UDP-encapsulated ESP over IPv4 (the ESP ICV protects the payload).
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

    #[test]
    fn natt_classification() {
        assert_eq!(classify_natt(&[0xff]), Ok(NattPayload::Keepalive));
        assert_eq!(classify_natt(&[0, 0, 0, 0, 1, 2]), Ok(NattPayload::Ike));
        assert_eq!(classify_natt(&[0, 0, 0, 1, 0, 0, 0, 1]), Ok(NattPayload::Esp));
        assert_eq!(classify_natt(&[0, 0, 1]), Err(WireError::Truncated));
        assert_eq!(classify_natt(&[]), Err(WireError::Truncated));
    }
}
