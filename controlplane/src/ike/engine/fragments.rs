//! Protected messages, whole or in fragments (RFC 7383), both ways:
//!
//! ```text
//! HDR, SK { payloads }                       one Encrypted payload (RFC 7296 3.14)
//! HDR, SKF(1/n) { part 1 } ... SKF(n/n)      when the message would exceed
//!                                            the path (RFC 7383 2.5), and
//!                                            the peer sent FRAGMENTATION_SUPPORTED
//! ```
//!
//! Opening checks each fragment's ICV on its own (RFC 7383 2.6), so a
//! forged fragment never enters the reassembly; a message may come in at
//! most `Settings::max_fragments` pieces.

use super::sa::Core;
use super::{Engine, Error};
use crate::codepoints::PayloadType;
use crate::crypto::sk::SkKeys;
use crate::crypto::Random;
use crate::ike::config::Settings;
use crate::wire::message::parse_chain;
use crate::wire::{Header, Message, Payload};

/// The largest protected message sent whole: fragments above it when the
/// peer supports them (RFC 7383 2.5).
pub(super) fn limit(sa: &Core, s: &Settings) -> Option<usize> {
    sa.peer_frag.then_some(s.fragment_size)
}

/// Protects `payloads`, as one SK payload or, when that would exceed
/// `limit`, as SKF fragments of at most `limit` octets each.
pub(super) fn seal(
    k: SkKeys<'_>,
    h: Header,
    payloads: &[Payload],
    limit: Option<usize>,
    rng: &mut dyn Random,
) -> Vec<Vec<u8>> {
    let whole = k.seal(h, payloads, rng);
    let Some(limit) = limit.filter(|l| whole.len() > *l) else { return vec![whole] };
    let inner = crate::wire::message::emit_chain(payloads);
    let first = payloads.first().map_or(PayloadType::NoNextPayload, |p| p.ty());
    // Room for the header, SKF header, IV, padding and ICV.
    let chunk = limit.saturating_sub(Header::LEN + 8 + 16 + 16 + 32).max(64);
    let parts: Vec<&[u8]> = inner.chunks(chunk).collect();
    let total = parts.len() as u16;
    parts
        .iter()
        .enumerate()
        .map(|(i, part)| {
            let f = if i == 0 { first } else { PayloadType::NoNextPayload };
            k.seal_plain(h, PayloadType::EncryptedFragment, f, Some((i as u16 + 1, total)), part.to_vec(), rng)
        })
        .collect()
}

impl Engine {
    /// Decrypts a protected message (reassembling fragments). None: not
    /// (yet) complete, or it fails its check (counted, never answered: RFC
    /// 7296 2.21.1 lets no forged message cause a response). An error: it
    /// is authentic but its payloads do not parse.
    pub(super) fn open(
        &mut self,
        sa: &mut Core,
        ike: &[u8],
        from_initiator: bool,
    ) -> Option<Result<Vec<Payload>, Error>> {
        let Ok(m) = Message::parse(ike) else {
            self.stats.malformed += 1;
            return None;
        };
        let Some(sk) = m.sk else {
            self.stats.malformed += 1;
            return None;
        };
        let Ok(plain) = sa.keys.sk(&sa.suite, from_initiator).open(ike, &sk) else {
            self.stats.bad_icv += 1;
            return None;
        };
        let (first, plain) = match sk.fragment {
            None => (sk.first, plain),
            Some((num, total)) => {
                // RFC 7383 2.6: collect until all fragments are in.
                let id = m.header.message_id;
                if total > self.settings.max_fragments {
                    self.stats.malformed += 1;
                    return None;
                }
                let fr = sa.fragments.get_or_insert_with(|| (id, PayloadType::NoNextPayload, Vec::new()));
                if fr.0 != id || fr.2.len() != total as usize {
                    *fr = (id, PayloadType::NoNextPayload, vec![None; total as usize]);
                }
                if num == 1 {
                    fr.1 = sk.first;
                }
                fr.2[num as usize - 1] = Some(plain);
                if fr.2.iter().any(|f| f.is_none()) {
                    return None;
                }
                let (_, first, parts) = sa.fragments.take()?;
                (first, parts.into_iter().flatten().flatten().collect())
            }
        };
        Some(parse_chain(first, &plain).map_err(|e| {
            self.stats.malformed += 1;
            Error::Parse(e)
        }))
    }
}
