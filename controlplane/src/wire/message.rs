//! The IKE header (RFC 7296 3.1), the payload chain with its generic
//! headers (3.2), and where an Encrypted payload (3.14) or Encrypted
//! Fragment (RFC 7383 2.5) begins.

use super::payload::Payload;
use super::{known_payload, ParseError, Reader, Writer};
use crate::codepoints::{ExchangeType, PayloadType};

/// Header flags (RFC 7296 3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Flags {
    /// Sent by the original initiator of the IKE SA.
    pub initiator: bool,
    pub version: bool,
    pub response: bool,
}

impl Flags {
    const I: u8 = 0x08;
    const V: u8 = 0x10;
    const R: u8 = 0x20;

    fn to_u8(self) -> u8 {
        (if self.initiator { Self::I } else { 0 })
            | (if self.version { Self::V } else { 0 })
            | (if self.response { Self::R } else { 0 })
    }

    fn from_u8(b: u8) -> Flags {
        Flags { initiator: b & Self::I != 0, version: b & Self::V != 0, response: b & Self::R != 0 }
    }
}

//                      1                   2                   3
//  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// |                       IKE SA Initiator's SPI                  |
// |                                                               |
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// |                       IKE SA Responder's SPI                  |
// |                                                               |
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// |  Next Payload | MjVer | MnVer | Exchange Type |     Flags     |
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// |                          Message ID                           |
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// |                            Length                             |
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub spi_i: u64,
    pub spi_r: u64,
    pub next_payload: PayloadType,
    pub exchange: ExchangeType,
    pub flags: Flags,
    pub message_id: u32,
    pub length: u32,
}

impl Header {
    pub const LEN: usize = 28;

    /// Just the header, for routing a datagram to its IKE SA before anything
    /// else is parsed.
    pub fn parse(b: &[u8]) -> Result<Header, ParseError> {
        let mut r = Reader::new(b, "IKE header");
        let spi_i = r.u64()?;
        let spi_r = r.u64()?;
        let next_payload = PayloadType::from_value(r.u8()?);
        let ver = r.u8()?;
        let exchange = ExchangeType::from_value(r.u8()?);
        let flags = Flags::from_u8(r.u8()?);
        let message_id = r.u32()?;
        let length = r.u32()?;
        // RFC 7296 3.1: a major version above 2 is answered with
        // INVALID_MAJOR_VERSION; minor versions are ignored.
        if ver >> 4 != 2 {
            return Err(ParseError::MajorVersion(ver >> 4));
        }
        if length as usize != b.len() {
            return Err(ParseError::BadLength { what: "IKE header length", len: length as usize });
        }
        Ok(Header { spi_i, spi_r, next_payload, exchange, flags, message_id, length })
    }

    pub fn emit(&self, w: &mut Writer) {
        w.u64(self.spi_i);
        w.u64(self.spi_r);
        w.u8(self.next_payload.value());
        w.u8(0x20);
        w.u8(self.exchange.value());
        w.u8(self.flags.to_u8());
        w.u32(self.message_id);
        w.u32(self.length);
    }
}

/// Where an SK or SKF payload's body sits in the datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SkBody {
    /// The type of the first inner payload (the SK payload's Next Payload).
    pub first: PayloadType,
    /// Offset of the IV: everything before it is the AEAD's associated data
    /// (RFC 5282 5.1) and the start of what an integrity check covers.
    pub iv_at: usize,
    /// RFC 7383: (Fragment Number, Total Fragments) of an SKF payload.
    pub fragment: Option<(u16, u16)>,
}

/// A parsed message: the header, the clear payloads before any SK, and the
/// SK/SKF body's location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub header: Header,
    pub payloads: Vec<Payload>,
    pub sk: Option<SkBody>,
}

impl Message {
    pub fn parse(b: &[u8]) -> Result<Message, ParseError> {
        let header = Header::parse(b)?;
        // Room for what most messages carry, grown past it.
        let mut payloads = Vec::with_capacity(8);
        let mut next = header.next_payload;
        let mut at = Header::LEN;
        let mut sk = None;
        while next != PayloadType::NoNextPayload {
            let mut r = Reader::new(&b[at..], "payload header");
            let this = next;
            next = PayloadType::from_value(r.u8()?);
            let critical = r.u8()? & 0x80 != 0;
            let len = r.u16()? as usize;
            if len < 4 || len > b.len() - at {
                return Err(ParseError::BadLength { what: "payload", len });
            }
            let body = &b[at + 4..at + len];
            match this {
                PayloadType::Encrypted | PayloadType::EncryptedFragment => {
                    // RFC 7296 3.14 / RFC 7383 2.5: the encrypted payload is
                    // the last one; its Next Payload names the first inner one.
                    if at + len != b.len() {
                        return Err(ParseError::Malformed { what: "SK payload", why: "not the last payload" });
                    }
                    let (fragment, iv_at) = if this == PayloadType::EncryptedFragment {
                        let mut fr = Reader::new(body, "SKF payload");
                        let num = fr.u16()?;
                        let total = fr.u16()?;
                        if num == 0 || total == 0 || num > total {
                            return Err(ParseError::Malformed { what: "SKF payload", why: "bad fragment numbers" });
                        }
                        (Some((num, total)), at + 8)
                    } else {
                        (None, at + 4)
                    };
                    sk = Some(SkBody { first: next, iv_at, fragment });
                    at += len;
                    break;
                }
                t if known_payload(t) => payloads.push(Payload::parse(t, body)?),
                t if critical => return Err(ParseError::UnsupportedCritical(t.value())),
                t => payloads.push(Payload::Unknown { ty: t.value(), body: body.to_vec() }),
            }
            at += len;
        }
        if at != b.len() {
            return Err(ParseError::TrailingOctets(b.len() - at));
        }
        Ok(Message { header, payloads, sk })
    }

    /// Emits a message without encryption (IKE_SA_INIT): the header's
    /// next payload and length are computed here.
    pub fn emit_clear(header: Header, payloads: &[Payload]) -> Vec<u8> {
        let mut h = header;
        h.next_payload = payloads.first().map_or(PayloadType::NoNextPayload, |p| p.ty());
        let mut w = Writer::new();
        h.emit(&mut w);
        emit_chain_into(payloads, PayloadType::NoNextPayload, &mut w);
        let len = w.len() as u32;
        w.buf[24..28].copy_from_slice(&len.to_be_bytes());
        w.buf
    }
}

/// Parses a payload chain that starts with a payload of type `first` (the
/// plaintext of an SK payload).
pub fn parse_chain(first: PayloadType, b: &[u8]) -> Result<Vec<Payload>, ParseError> {
    let mut out = Vec::with_capacity(8);
    let mut next = first;
    let mut r = Reader::new(b, "inner payloads");
    while next != PayloadType::NoNextPayload {
        let this = next;
        next = PayloadType::from_value(r.u8()?);
        let critical = r.u8()? & 0x80 != 0;
        let len = r.u16()? as usize;
        if len < 4 {
            return Err(ParseError::BadLength { what: "payload", len });
        }
        let body = r.take(len - 4)?;
        match this {
            PayloadType::Encrypted | PayloadType::EncryptedFragment => {
                return Err(ParseError::Malformed { what: "SK payload", why: "nested encrypted payload" })
            }
            t if known_payload(t) => out.push(Payload::parse(t, body)?),
            t if critical => return Err(ParseError::UnsupportedCritical(t.value())),
            t => out.push(Payload::Unknown { ty: t.value(), body: body.to_vec() }),
        }
    }
    r.finish()?;
    Ok(out)
}

/// Emits a chain of payloads with generic headers; the last one's Next
/// Payload is `after`.
pub fn emit_chain_into(payloads: &[Payload], after: PayloadType, w: &mut Writer) {
    for (i, p) in payloads.iter().enumerate() {
        let start = w.len();
        let next = payloads.get(i + 1).map_or(after, |n| n.ty());
        w.u8(next.value());
        w.u8(0);
        let at = w.placeholder16();
        p.emit(w);
        w.patch16(at, start);
    }
}

pub fn emit_chain(payloads: &[Payload]) -> Vec<u8> {
    let mut w = Writer::new();
    emit_chain_into(payloads, PayloadType::NoNextPayload, &mut w);
    w.buf
}
