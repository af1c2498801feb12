//! IKEv2 wire format (RFC 7296 section 3): typed parse and emit of the
//! header and of every payload, the Encrypted (SK) and Encrypted Fragment
//! (SKF, RFC 7383) containers.
//!
//! Parsing never panics: every length is checked against what is left
//! before it is used, and every rejection is a [`ParseError`] that
//! [`ParseError::notify`] maps to the notify RFC 7296 asks for. This module
//! never decrypts; `crate::crypto::sk` opens SK and SKF bodies.

pub mod message;
pub mod payload;

pub use message::{Flags, Header, Message, SkBody};
pub use payload::*;

use crate::codepoints::{NotifyType, PayloadType};

/// Why a message could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    #[error("truncated: {what} needs {need} octets, {have} left")]
    Truncated { what: &'static str, need: usize, have: usize },
    #[error("bad length in {what}: {len}")]
    BadLength { what: &'static str, len: usize },
    #[error("{0} octets left over after the last payload")]
    TrailingOctets(usize),
    #[error("unsupported major version {0}")]
    MajorVersion(u8),
    #[error("unsupported critical payload {0}")]
    UnsupportedCritical(u8),
    #[error("malformed {what}: {why}")]
    Malformed { what: &'static str, why: &'static str },
}

impl ParseError {
    /// The notify RFC 7296 asks for when a request fails to parse (3.10.1;
    /// 2.5 for critical payloads; 1.5 for the major version).
    pub fn notify(&self) -> (NotifyType, Vec<u8>) {
        match self {
            ParseError::UnsupportedCritical(t) => (NotifyType::UnsupportedCriticalPayload, vec![*t]),
            ParseError::MajorVersion(_) => (NotifyType::InvalidMajorVersion, vec![]),
            _ => (NotifyType::InvalidSyntax, vec![]),
        }
    }
}

/// A cursor over a byte slice; every read checks what is left.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
    what: &'static str,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8], what: &'static str) -> Self {
        Reader { buf, what }
    }

    pub fn left(&self) -> usize {
        self.buf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    pub fn take(&mut self, n: usize) -> Result<&'a [u8], ParseError> {
        if self.buf.len() < n {
            return Err(ParseError::Truncated { what: self.what, need: n, have: self.buf.len() });
        }
        let (a, b) = self.buf.split_at(n);
        self.buf = b;
        Ok(a)
    }

    /// A bounded sub-reader of `n` octets.
    pub fn sub(&mut self, n: usize, what: &'static str) -> Result<Reader<'a>, ParseError> {
        Ok(Reader::new(self.take(n)?, what))
    }

    pub fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.buf)
    }

    pub fn u8(&mut self) -> Result<u8, ParseError> {
        Ok(self.take(1)?[0])
    }

    pub fn u16(&mut self) -> Result<u16, ParseError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    pub fn u32(&mut self) -> Result<u32, ParseError> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub fn u64(&mut self) -> Result<u64, ParseError> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_be_bytes(a))
    }

    /// Ends a structure: anything left is an error.
    pub fn finish(self) -> Result<(), ParseError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(ParseError::TrailingOctets(self.buf.len()))
        }
    }
}

/// An output buffer with length fields back-patched when a structure closes.
#[derive(Debug, Default, Clone)]
pub struct Writer {
    pub buf: Vec<u8>,
}

impl Writer {
    pub fn new() -> Self {
        Writer { buf: Vec::with_capacity(512) }
    }

    pub fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }

    pub fn u16(&mut self, v: u16) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    pub fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    pub fn u64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    pub fn bytes(&mut self, b: &[u8]) {
        self.buf.extend_from_slice(b);
    }

    pub fn len(&self) -> usize {
        self.buf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Reserves a 16-bit length; [`Writer::patch16`] fills it in.
    pub fn placeholder16(&mut self) -> usize {
        let at = self.buf.len();
        self.u16(0);
        at
    }

    /// Writes `len()-start` at `at`: lengths in IKEv2 count their own header.
    pub fn patch16(&mut self, at: usize, start: usize) {
        let n = (self.buf.len() - start) as u16;
        self.buf[at..at + 2].copy_from_slice(&n.to_be_bytes());
    }
}

/// A payload type's number and whether this implementation knows it (RFC
/// 7296 2.5: the critical bit is ignored for types we understand).
pub fn known_payload(t: PayloadType) -> bool {
    !matches!(t, PayloadType::Unknown(_))
}

#[cfg(test)]
mod tests;
