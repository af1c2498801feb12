//! ESP header and trailer (RFC 4303 2).
//!
//! ```text
//!  0                   1                   2                   3
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+ ----
//! |               Security Parameters Index (SPI)                 | ^Int.
//! |                      Sequence Number                          | |Cov-
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+ |ered
//! |        IV (GCM: 8 octets, CBC: 16) then Payload Data ...      | | ^
//! ~               |     Padding (0-255 bytes)                     | | |
//! |               |  Pad Length   | Next Header   |               v v
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+ ----
//! |         Integrity Check Value-ICV   (variable)                |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```

use super::{be32, Result, WireError};

/// SPI + sequence number.
pub const HEADER_LEN: usize = 8;
/// Pad Length + Next Header.
pub const TRAILER_LEN: usize = 2;

mod field {
    pub const SPI: usize = 0;
    pub const SEQ: usize = 4;
}

#[derive(Debug, Clone, Copy)]
pub struct Packet<T> {
    buf: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    pub fn new_checked(buf: T) -> Result<Self> {
        if buf.as_ref().len() < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        Ok(Packet { buf })
    }

    pub fn spi(&self) -> u32 {
        be32(self.buf.as_ref(), field::SPI)
    }

    /// The low 32 bits of the sequence number (all of it without ESN).
    pub fn seq(&self) -> u32 {
        be32(self.buf.as_ref(), field::SEQ)
    }
}

pub fn emit_header(out: &mut [u8], spi: u32, seq_low: u32) {
    out[field::SPI..field::SPI + 4].copy_from_slice(&spi.to_be_bytes());
    out[field::SEQ..field::SEQ + 4].copy_from_slice(&seq_low.to_be_bytes());
}

/// Octets of padding so that payload + padding + the 2-octet trailer is a
/// multiple of `align` (RFC 4303 2.4; `align` is 4 or the cipher block).
pub fn pad_len(payload_len: usize, align: usize) -> usize {
    (align - (payload_len + TRAILER_LEN) % align) % align
}

/// Writes the default padding (1, 2, 3, ...; RFC 4303 2.4), the pad
/// length and the next header into `out` (exactly pad + 2 octets).
pub fn emit_trailer(out: &mut [u8], next_header: u8) {
    let pad = out.len() - TRAILER_LEN;
    for (i, b) in out[..pad].iter_mut().enumerate() {
        *b = (i + 1) as u8;
    }
    out[pad] = pad as u8;
    out[pad + 1] = next_header;
}

/// Reads the trailer at the end of a decrypted payload: returns (pad
/// length, next header) after checking the padding is the default
/// sequence (RFC 4303 2.4: the receiver SHOULD inspect it).
pub fn parse_trailer(plain: &[u8]) -> core::result::Result<(usize, u8), TrailerError> {
    let n = plain.len();
    if n < TRAILER_LEN {
        return Err(TrailerError::Truncated);
    }
    let pad = plain[n - 2] as usize;
    let nh = plain[n - 1];
    if pad + TRAILER_LEN > n {
        return Err(TrailerError::BadPadding);
    }
    let padding = &plain[n - 2 - pad..n - 2];
    if padding.iter().enumerate().any(|(i, &b)| b != (i + 1) as u8) {
        return Err(TrailerError::BadPadding);
    }
    Ok((pad, nh))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrailerError {
    Truncated,
    BadPadding,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trip() {
        let mut b = [0u8; 8];
        emit_header(&mut b, 0xdead_beef, 7);
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!((p.spi(), p.seq()), (0xdead_beef, 7));
        assert!(Packet::new_checked(&b[..7]).is_err());
    }

    #[test]
    fn padding_alignment() {
        for len in 0..100 {
            for align in [4, 16] {
                let p = pad_len(len, align);
                assert!(p < align);
                assert_eq!((len + p + 2) % align, 0);
            }
        }
    }

    #[test]
    fn trailer_round_trip_and_bad_padding() {
        let mut t = [0u8; 7];
        emit_trailer(&mut t, 4);
        assert_eq!(t, [1, 2, 3, 4, 5, 5, 4]);
        let mut plain = vec![0xaa; 10];
        plain.extend_from_slice(&t);
        assert_eq!(parse_trailer(&plain), Ok((5, 4)));
        let mut bad = plain.clone();
        bad[12] = 9;
        assert_eq!(parse_trailer(&bad), Err(TrailerError::BadPadding));
        assert_eq!(parse_trailer(&[200, 4]), Err(TrailerError::BadPadding));
        assert_eq!(parse_trailer(&[4]), Err(TrailerError::Truncated));
        assert_eq!(parse_trailer(&[0, 41]), Ok((0, 41)));
    }
}
