//! Sealed stubs: a stub leaves a gateway only encrypted and authenticated
//! under the cluster key (NOTES.md), AES-256-GCM (RFC 5116):
//!
//! ```text
//! version(1) = 1 | index (family, address, SPI) | nonce(12) |
//! AES-256-GCM(cluster key, nonce, AAD = version | index, the stub) | tag(16)
//! ```
//!
//! The index is in clear so a bank can file the stub without the key; it
//! is authenticated, and the stub inside must carry the same one, so a
//! sealed stub cannot be filed under another SA's index.

use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use zeroize::Zeroizing;

use super::{IkeSaStub, StubError, StubIndex};
use crate::crypto::Random;
use crate::wire::{Reader, Writer};

/// The sealed format's version.
pub const SEALED_VERSION: u8 = 1;

/// The key every gateway and bank of a cluster shares (32 octets), kept
/// as its AES-256-GCM key schedule: a failover opens thousands of stubs
/// with it, and building the schedule anew for each was a fifth of the
/// cost of opening one.
pub struct ClusterKey(LessSafeKey);

impl std::fmt::Debug for ClusterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClusterKey(..)")
    }
}

impl ClusterKey {
    pub fn new(k: [u8; 32]) -> ClusterKey {
        Self::from_octets(&Zeroizing::new(k))
    }

    fn from_octets(k: &[u8; 32]) -> ClusterKey {
        ClusterKey(LessSafeKey::new(UnboundKey::new(&AES_256_GCM, k).expect("a 32-octet key")))
    }

    /// From 64 hex digits (a config file's `cluster_key`).
    pub fn from_hex(s: &str) -> Result<ClusterKey, String> {
        let s = s.trim();
        if s.len() != 64 || !s.bytes().all(|c| c.is_ascii_hexdigit()) {
            return Err("a cluster key is 64 hex digits (32 octets)".into());
        }
        let mut k = Zeroizing::new([0u8; 32]);
        for (i, b) in k.iter_mut().enumerate() {
            *b = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).map_err(|e| e.to_string())?;
        }
        Ok(ClusterKey::from_octets(&k))
    }

    fn aead(&self) -> &LessSafeKey {
        &self.0
    }
}

fn header(index: &StubIndex) -> Vec<u8> {
    let mut w = Writer::new();
    w.u8(SEALED_VERSION);
    index.emit(&mut w);
    w.buf
}

/// `stub`, sealed under `key` with a fresh nonce from `rng`.
pub fn seal(key: &ClusterKey, stub: &IkeSaStub, rng: &mut dyn Random) -> Vec<u8> {
    let mut w = Writer { buf: header(&stub.index) };
    let head_len = w.buf.len();
    let tag_len = AES_256_GCM.tag_len();
    // Room for all of it up front: the stub is encoded and sealed in
    // place, so no reallocation leaves a copy of its clear octets behind.
    w.buf.reserve_exact(NONCE_LEN + stub.encoded_room() + tag_len);
    let mut nonce = [0u8; NONCE_LEN];
    rng.fill(&mut nonce);
    w.buf.extend_from_slice(&nonce);
    stub.encode_into(&mut w);
    let mut out = w.buf;
    let (head, body) = out.split_at_mut(head_len + NONCE_LEN);
    let tag = key
        .aead()
        .seal_in_place_separate_tag(Nonce::assume_unique_for_key(nonce), Aad::from(&head[..head_len]), body)
        .expect("sealing cannot fail for a stub's size");
    out.extend_from_slice(tag.as_ref());
    out
}

/// The index a sealed stub is filed under, read without the key (a bank's
/// view); authenticated only by [`open`].
pub fn sealed_index(sealed: &[u8]) -> Result<StubIndex, StubError> {
    let mut r = Reader::new(sealed, "sealed stub");
    let v = r.u8().map_err(|e| StubError::Field { field: "sealed version", why: e.to_string() })?;
    if v != SEALED_VERSION {
        return Err(StubError::Version(v));
    }
    StubIndex::parse(&mut r)
}

/// The stub inside `sealed`, if it opens under `key` and holds the index
/// it is filed under.
pub fn open(key: &ClusterKey, sealed: &[u8]) -> Result<IkeSaStub, StubError> {
    let outer = sealed_index(sealed)?;
    let head_len = header(&outer).len();
    let rest = &sealed[head_len..];
    if rest.len() < NONCE_LEN + AES_256_GCM.tag_len() {
        return Err(StubError::Sealed);
    }
    let (nonce, ct) = rest.split_at(NONCE_LEN);
    let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| StubError::Sealed)?;
    let mut buf = zeroize::Zeroizing::new(ct.to_vec());
    let plain =
        key.aead().open_in_place(nonce, Aad::from(&sealed[..head_len]), &mut buf).map_err(|_| StubError::Sealed)?;
    let stub = IkeSaStub::decode(plain)?;
    if stub.index != outer {
        return Err(StubError::WrongIndex { outer, inner: stub.index });
    }
    Ok(stub)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::SeededRandom;
    use crate::stub::tests::sample;

    fn key(b: u8) -> ClusterKey {
        ClusterKey::new([b; 32])
    }

    /// NOTES.md: sealed under the cluster key, a stub opens to itself, IPv4
    /// and IPv6; its secrets are not in the sealed octets.
    #[test]
    fn a_sealed_stub_opens_to_itself_and_hides_its_secrets() {
        let mut rng = SeededRandom::new(7);
        for v6 in [false, true] {
            let s = sample(v6);
            let sealed = seal(&key(1), &s, &mut rng);
            assert_eq!(sealed_index(&sealed), Ok(s.index));
            assert_eq!(open(&key(1), &sealed), Ok(s.clone()));
            assert!(!sealed.windows(8).any(|w| w == [0x5d; 8] || w == [0x91; 8]), "SK_d or g^ir in clear");
            assert_ne!(seal(&key(1), &s, &mut rng), sealed, "a fresh nonce each time");
        }
    }

    /// Tampering anywhere (every octet flipped), another cluster's key, a
    /// cut: refused, no stub comes out.
    #[test]
    fn a_tampered_sealed_stub_is_refused() {
        let mut rng = SeededRandom::new(8);
        let sealed = seal(&key(1), &sample(false), &mut rng);
        for i in 0..sealed.len() {
            let mut t = sealed.clone();
            t[i] ^= 0x01;
            assert!(open(&key(1), &t).is_err(), "octet {i} flipped");
        }
        assert_eq!(open(&key(2), &sealed), Err(StubError::Sealed));
        for n in 0..sealed.len() {
            assert!(open(&key(1), &sealed[..n]).is_err(), "cut at {n}");
        }
    }

    /// A stub sealed under one index and filed under another: refused.
    #[test]
    fn a_stub_filed_under_another_index_is_refused() {
        let mut rng = SeededRandom::new(9);
        let k = key(3);
        let mut s = sample(false);
        s.index.spi ^= 1;
        // Seal by hand with the outer header of the sample's index.
        let outer = sample(false).index;
        let head = header(&outer);
        let mut nonce = [0u8; NONCE_LEN];
        rng.fill(&mut nonce);
        let mut body = s.encode().as_slice().to_vec();
        k.aead().seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(&head), &mut body).unwrap();
        let sealed = [head, nonce.to_vec(), body].concat();
        assert_eq!(open(&k, &sealed), Err(StubError::WrongIndex { outer, inner: s.index }));
    }

    #[test]
    fn cluster_keys_from_hex() {
        assert!(ClusterKey::from_hex(&"ab".repeat(32)).is_ok());
        assert!(ClusterKey::from_hex("abcd").is_err());
        assert!(ClusterKey::from_hex(&"zz".repeat(32)).is_err());
        assert_eq!(format!("{:?}", ClusterKey::from_hex(&"ab".repeat(32)).unwrap()), "ClusterKey(..)");
    }
}
