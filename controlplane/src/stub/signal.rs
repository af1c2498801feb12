//! The stub signaling (draft-xu-ike-sa-sync 3.6; NOTES.md): what gateways
//! and a stub bank say to each other about stubs, batched (section 3.5).
//!
//! ```text
//!                      1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! | Next Payload  |     Type      |        Message Length         |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! then, while Next Payload is 1:
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! | Next Payload  |   RESERVED    |         Payload Length        |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ~                        PAYLOAD CONTENT                        ~
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! Type: Update = 1, Get = 2, Download = 3 (0 reserved). Next Payload is
//! 1 when a payload follows, 0 after the last; Message Length counts the
//! whole message, so a stream (TCP) is framed by it. Our decisions where
//! the draft is silent: a payload holds one sealed stub (`seal`, first
//! octet 1) or one index (family 4 or 6, address, SPI); an Update with an
//! index withdraws that stub, a Get asks for indices, a Download answers
//! with sealed stubs, or with an index for one that is not held.

use super::seal::{sealed_index, SEALED_VERSION};
use super::{StubError, StubIndex};
use crate::wire::{Reader, Writer};

/// The message types (section 3.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignalType {
    Update = 1,
    Get = 2,
    Download = 3,
}

/// One payload: a sealed stub (with the index it is filed under) or an
/// index alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    Sealed { index: StubIndex, sealed: Vec<u8> },
    Index(StubIndex),
}

impl Item {
    pub fn index(&self) -> StubIndex {
        match self {
            Item::Sealed { index, .. } | Item::Index(index) => *index,
        }
    }

    fn content(&self) -> Vec<u8> {
        match self {
            Item::Sealed { sealed, .. } => sealed.clone(),
            Item::Index(i) => {
                let mut w = Writer::new();
                i.emit(&mut w);
                w.buf
            }
        }
    }
}

/// A message: its type and payloads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signal {
    pub ty: SignalType,
    pub items: Vec<Item>,
}

/// The most octets one message may have (its length is 16 bits).
pub const MAX_MESSAGE: usize = u16::MAX as usize;
const HEADER: usize = 4;

/// Why octets are not a signaling message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignalError {
    #[error("stub signaling: {0} octets, a message header needs 4")]
    Short(usize),
    #[error("stub signaling: type {0} (Update 1, Get 2, Download 3)")]
    Type(u8),
    #[error("stub signaling: length {length} in the header, {have} octets there")]
    Length { length: usize, have: usize },
    #[error("stub signaling: Next Payload {0} (0 or 1)")]
    Next(u8),
    #[error("stub signaling: payload {at}: {why}")]
    Payload { at: usize, why: String },
    #[error("stub signaling: a Get holds indices only (payload {0} is a stub)")]
    StubInGet(usize),
}

/// The length of the message at the start of `buf` once its header is
/// there (a stream reader's frame), or None while it is not.
pub fn frame_len(buf: &[u8]) -> Option<usize> {
    (buf.len() >= HEADER).then(|| usize::from(u16::from_be_bytes([buf[2], buf[3]])))
}

impl Signal {
    /// The message's octets; None when it does not fit in one message
    /// (see [`Signal::batches`]).
    pub fn emit(&self) -> Option<Vec<u8>> {
        let mut w = Writer::new();
        w.u8(u8::from(!self.items.is_empty()));
        w.u8(self.ty as u8);
        w.u16(0);
        for (k, item) in self.items.iter().enumerate() {
            let c = item.content();
            w.u8(u8::from(k + 1 < self.items.len()));
            w.u8(0);
            w.u16(u16::try_from(HEADER + c.len()).ok()?);
            w.bytes(&c);
        }
        let len = u16::try_from(w.buf.len()).ok()?;
        w.buf[2..4].copy_from_slice(&len.to_be_bytes());
        Some(w.buf)
    }

    /// `items` of type `ty` as as few messages as fit (section 3.5).
    pub fn batches(ty: SignalType, items: Vec<Item>) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut cur = Vec::new();
        let mut size = HEADER;
        for item in items {
            let n = HEADER + item.content().len();
            if size + n > MAX_MESSAGE && !cur.is_empty() {
                out.extend(Signal { ty, items: std::mem::take(&mut cur) }.emit());
                size = HEADER;
            }
            size += n;
            cur.push(item);
        }
        if !cur.is_empty() || out.is_empty() {
            out.extend(Signal { ty, items: cur }.emit());
        }
        out
    }

    /// The Downloads that answer a Get: `items` in as few messages as fit,
    /// then the empty Download that ends the answer (exactly one: an
    /// answer with no items is that one alone).
    pub fn answer(items: Vec<Item>) -> Vec<Vec<u8>> {
        let mut out = if items.is_empty() { Vec::new() } else { Signal::batches(SignalType::Download, items) };
        out.extend(Signal { ty: SignalType::Download, items: vec![] }.emit());
        out
    }

    /// Parses one whole message; every fault is typed.
    pub fn parse(b: &[u8]) -> Result<Signal, SignalError> {
        let length = frame_len(b).ok_or(SignalError::Short(b.len()))?;
        if length != b.len() || length < HEADER {
            return Err(SignalError::Length { length, have: b.len() });
        }
        let ty = match b[1] {
            1 => SignalType::Update,
            2 => SignalType::Get,
            3 => SignalType::Download,
            t => return Err(SignalError::Type(t)),
        };
        let mut next = b[0];
        let mut r = Reader::new(&b[HEADER..], "stub signaling");
        let mut items = Vec::new();
        while next != 0 {
            if next != 1 {
                return Err(SignalError::Next(next));
            }
            let at = items.len();
            let bad = |why: String| SignalError::Payload { at, why };
            next = r.u8().map_err(|e| bad(e.to_string()))?;
            r.u8().map_err(|e| bad(e.to_string()))?;
            let n = usize::from(r.u16().map_err(|e| bad(e.to_string()))?);
            if n < HEADER {
                return Err(bad(format!("payload length {n}")));
            }
            let content = r.take(n - HEADER).map_err(|e| bad(e.to_string()))?;
            let item = parse_item(content).map_err(|e| bad(e.to_string()))?;
            if ty == SignalType::Get && matches!(item, Item::Sealed { .. }) {
                return Err(SignalError::StubInGet(at));
            }
            items.push(item);
        }
        if next != 0 {
            return Err(SignalError::Next(next));
        }
        if !r.is_empty() {
            let why = format!("{} octets after the last payload", r.left());
            return Err(SignalError::Payload { at: items.len(), why });
        }
        Ok(Signal { ty, items })
    }
}

fn parse_item(c: &[u8]) -> Result<Item, StubError> {
    match c.first() {
        Some(&SEALED_VERSION) => Ok(Item::Sealed { index: sealed_index(c)?, sealed: c.to_vec() }),
        _ => {
            let mut r = Reader::new(c, "index");
            let index = StubIndex::parse(&mut r)?;
            if !r.is_empty() {
                return Err(StubError::Trailing(r.left()));
            }
            Ok(Item::Index(index))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::SeededRandom;
    use crate::stub::seal::{seal, ClusterKey};
    use crate::stub::tests::sample;

    fn items() -> Vec<Item> {
        let key = ClusterKey::new([4; 32]);
        let mut rng = SeededRandom::new(3);
        let mut v = Vec::new();
        for v6 in [false, true] {
            let s = sample(v6);
            v.push(Item::Sealed { index: s.index, sealed: seal(&key, &s, &mut rng) });
            v.push(Item::Index(s.index));
        }
        v
    }

    /// draft-xu-ike-sa-sync 3.6 (NOTES.md): Update, Get and Download
    /// round trip, IPv4 and IPv6 indices, sealed stubs and indices; the
    /// header's length frames the message; an empty message too.
    #[test]
    fn xu_3_6_signaling_round_trips() {
        let all = items();
        let indices: Vec<Item> = all.iter().filter(|i| matches!(i, Item::Index(_))).cloned().collect();
        for s in [
            Signal { ty: SignalType::Update, items: all.clone() },
            Signal { ty: SignalType::Download, items: all.clone() },
            Signal { ty: SignalType::Get, items: indices },
            Signal { ty: SignalType::Get, items: vec![] },
        ] {
            let b = s.emit().unwrap();
            assert_eq!(frame_len(&b), Some(b.len()));
            assert_eq!(b[1], s.ty as u8);
            assert_eq!(Signal::parse(&b), Ok(s));
        }
    }

    /// Section 3.5: many stubs go out in as few messages as fit in 64 KiB.
    #[test]
    fn xu_3_5_updates_are_batched() {
        let one = items().remove(0);
        let many = vec![one; 1000];
        let batches = Signal::batches(SignalType::Update, many);
        assert!(batches.len() > 1 && batches.iter().all(|b| b.len() <= MAX_MESSAGE));
        let n: usize = batches.iter().map(|b| Signal::parse(b).unwrap().items.len()).sum();
        assert_eq!(n, 1000);
        assert_eq!(Signal::batches(SignalType::Get, vec![]).len(), 1, "an empty Get is one message");
    }

    /// Our decision (module doc): a Get is answered by Downloads and one
    /// empty Download. With nothing to send that is the empty one alone,
    /// not two (a second would end the next Get's answer on the same
    /// connection early).
    #[test]
    fn a_get_is_answered_with_one_terminator() {
        let empty = Signal::answer(vec![]);
        assert_eq!(empty.len(), 1);
        assert_eq!(Signal::parse(&empty[0]), Ok(Signal { ty: SignalType::Download, items: vec![] }));
        let some = Signal::answer(items());
        let parsed: Vec<Signal> = some.iter().map(|m| Signal::parse(m).unwrap()).collect();
        assert!(parsed.iter().all(|s| s.ty == SignalType::Download));
        assert_eq!(parsed.iter().filter(|s| s.items.is_empty()).count(), 1, "one terminator");
        assert!(parsed.last().unwrap().items.is_empty(), "last");
    }

    /// Malformed messages are typed errors: every truncation, a bad type,
    /// a stub in a Get, a bad Next Payload, trailing octets.
    #[test]
    fn malformed_signaling_is_refused() {
        let b = Signal { ty: SignalType::Download, items: items() }.emit().unwrap();
        for n in 0..b.len() {
            assert!(Signal::parse(&b[..n]).is_err(), "cut at {n}");
        }
        let mut t = b.clone();
        t[1] = 9;
        assert_eq!(Signal::parse(&t), Err(SignalError::Type(9)));
        let mut t = b.clone();
        t[1] = SignalType::Get as u8;
        assert_eq!(Signal::parse(&t), Err(SignalError::StubInGet(0)));
        let mut t = b.clone();
        t[0] = 2;
        assert_eq!(Signal::parse(&t), Err(SignalError::Next(2)));
        let mut t = b.clone();
        t.push(0);
        assert!(matches!(Signal::parse(&t), Err(SignalError::Length { .. })));
    }

    proptest::proptest! {
        /// Arbitrary octets never panic the parser.
        #[test]
        fn arbitrary_octets_never_panic(b in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200)) {
            let _ = Signal::parse(&b);
        }
    }
}
