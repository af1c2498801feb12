//! IKEv2 cryptography: the PRFs and prf+ (RFC 7296 2.13), integrity
//! algorithms, Diffie-Hellman ([`dh`]), the SK payload ciphers ([`sk`]) and
//! every key derivation ([`keys`]).
//!
//! The PRFs come from RustCrypto's `hmac` + `sha1` / `sha2` (measured
//! faster, [`Prf::prf`]); integrity HMACs, AES-GCM and the elliptic-curve
//! groups from `ring`; AES-CBC from
//! RustCrypto's `aes` + `cbc`; MODP from `num-bigint`. Key material lives in
//! [`Secret`] (zeroized on drop, redacted in Debug).

pub mod dh;
pub mod keys;
pub mod sig;
pub mod sk;

use ::hmac::digest::{KeyInit, OutputSizeUser};
use ::hmac::{Hmac, Mac};
use ring::hmac;
use zeroize::Zeroizing;

use crate::codepoints::{IntegId, PrfId};

/// Key material: zeroized on drop, never printed. Up to [`Secret::INLINE`]
/// octets (every key prf+ cuts, an X25519 or P-256 shared secret) live in
/// the value itself, so an IKE SA's seven keys and a child's four cost no
/// allocation each; longer ones (MODP shared secrets, PSKs) on the heap.
#[derive(Clone, Default)]
pub struct Secret(Repr);

#[derive(Clone)]
enum Repr {
    Inline { len: u8, buf: [u8; Secret::INLINE] },
    Heap(Zeroizing<Vec<u8>>),
}

impl Default for Repr {
    fn default() -> Self {
        Repr::Inline { len: 0, buf: [0; Secret::INLINE] }
    }
}

impl Drop for Repr {
    fn drop(&mut self) {
        // Only the first `len` octets ever hold the secret (`from_slice`
        // writes no more, and nothing writes into a Secret later).
        if let Repr::Inline { len, buf } = self {
            zeroize::Zeroize::zeroize(&mut buf[..*len as usize]);
        }
    }
}

impl Secret {
    /// The longest key kept inline (a SHA-512 integrity key).
    pub const INLINE: usize = 64;

    /// Takes `b` as it is (zeroized when dropped).
    pub fn new(b: Vec<u8>) -> Secret {
        Secret(Repr::Heap(Zeroizing::new(b)))
    }

    /// A copy of `b`: inline when it fits.
    pub fn from_slice(b: &[u8]) -> Secret {
        if b.len() <= Self::INLINE {
            let mut buf = [0u8; Self::INLINE];
            buf[..b.len()].copy_from_slice(b);
            Secret(Repr::Inline { len: b.len() as u8, buf })
        } else {
            Secret::new(b.to_vec())
        }
    }

    pub fn as_slice(&self) -> &[u8] {
        match &self.0 {
            Repr::Inline { len, buf } => &buf[..*len as usize],
            Repr::Heap(v) => v,
        }
    }

    pub fn len(&self) -> usize {
        self.as_slice().len()
    }

    pub fn is_empty(&self) -> bool {
        self.as_slice().is_empty()
    }
}

impl PartialEq for Secret {
    fn eq(&self, other: &Secret) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl Eq for Secret {}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "<redacted {} octets>", self.len())
    }
}

/// Random octets. The engine takes one so tests can pin nonces and SPIs.
pub trait Random: Send {
    fn fill(&mut self, buf: &mut [u8]);

    fn u32(&mut self) -> u32 {
        let mut b = [0u8; 4];
        self.fill(&mut b);
        u32::from_be_bytes(b)
    }

    fn u64(&mut self) -> u64 {
        let mut b = [0u8; 8];
        self.fill(&mut b);
        u64::from_be_bytes(b)
    }

    fn vec(&mut self, n: usize) -> Vec<u8> {
        let mut v = vec![0u8; n];
        self.fill(&mut v);
        v
    }

    /// A nonce of `n` octets (RFC 7296 2.10): random octets; a test may
    /// pin them to decide a rekey collision (2.8.1, 2.8.2).
    fn nonce(&mut self, n: usize) -> Vec<u8> {
        self.vec(n)
    }
}

/// A deterministic generator for tests, fuzzing and benchmarks: ChaCha20
/// keyed by a seed, so an engine given the same seed draws the same SPIs,
/// nonces, IVs, cookies and DH private values, and emits the same octets,
/// on every run. Never for a deployed daemon.
pub struct SeededRandom(rand_chacha::ChaCha20Rng);

impl SeededRandom {
    pub fn new(seed: u64) -> SeededRandom {
        use rand_core::SeedableRng;
        SeededRandom(rand_chacha::ChaCha20Rng::seed_from_u64(seed))
    }
}

impl std::fmt::Debug for SeededRandom {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SeededRandom")
    }
}

impl Random for SeededRandom {
    fn fill(&mut self, buf: &mut [u8]) {
        rand_core::RngCore::fill_bytes(&mut self.0, buf);
    }
}

/// The operating system's generator, drawn from in blocks: one getrandom
/// call serves many SPIs, nonces and IVs (a responder needs about eight
/// small values per IKE SA). Octets handed out are wiped from the buffer.
/// The block starts small and doubles with each refill up to
/// [`SystemRandom::BLOCK`]: an engine that draws little (one client)
/// asks the kernel for little, a busy responder makes one system call per
/// fifty or so IKE SAs (a 512-octet block cost it 3% of a failover's CPU).
pub struct SystemRandom {
    os: ring::rand::SystemRandom,
    buf: Zeroizing<Vec<u8>>,
    /// Octets of `buf` not handed out yet: `buf[buf.len() - left..]`.
    left: usize,
}

impl SystemRandom {
    /// The largest block drawn at once.
    pub const BLOCK: usize = 4096;
    /// The first block.
    const FIRST: usize = 256;
}

impl std::fmt::Debug for SystemRandom {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SystemRandom")
    }
}

impl Default for SystemRandom {
    fn default() -> Self {
        SystemRandom { os: ring::rand::SystemRandom::new(), buf: Zeroizing::new(Vec::new()), left: 0 }
    }
}

impl Random for SystemRandom {
    fn fill(&mut self, out: &mut [u8]) {
        use ring::rand::SecureRandom;
        // The OS generator failing leaves no safe way on.
        if out.len() > Self::FIRST / 4 {
            self.os.fill(out).expect("the system random generator works");
            return;
        }
        if self.left < out.len() {
            let next = (self.buf.len() * 2).clamp(Self::FIRST, Self::BLOCK);
            if next != self.buf.len() {
                // A new buffer: the old one is wiped as it goes.
                self.buf = Zeroizing::new(vec![0; next]);
            }
            self.os.fill(&mut self.buf[..]).expect("the system random generator works");
            self.left = next;
        }
        let at = self.buf.len() - self.left;
        let src = &mut self.buf[at..at + out.len()];
        out.copy_from_slice(src);
        src.fill(0);
        self.left -= out.len();
    }
}

/// A pseudorandom function (RFC 7296 3.3.2, transform type 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Prf {
    HmacSha1,
    HmacSha256,
    HmacSha384,
    HmacSha512,
}

impl Prf {
    pub fn from_id(id: PrfId) -> Option<Prf> {
        Some(match id {
            PrfId::HmacSha1 => Prf::HmacSha1,
            PrfId::HmacSha2_256 => Prf::HmacSha256,
            PrfId::HmacSha2_384 => Prf::HmacSha384,
            PrfId::HmacSha2_512 => Prf::HmacSha512,
            _ => return None,
        })
    }

    pub fn id(self) -> PrfId {
        match self {
            Prf::HmacSha1 => PrfId::HmacSha1,
            Prf::HmacSha256 => PrfId::HmacSha2_256,
            Prf::HmacSha384 => PrfId::HmacSha2_384,
            Prf::HmacSha512 => PrfId::HmacSha2_512,
        }
    }

    /// Output length and preferred key length in octets (RFC 4868 2.1.2:
    /// the key of an HMAC PRF is as long as its output).
    pub fn out_len(self) -> usize {
        match self {
            Prf::HmacSha1 => 20,
            Prf::HmacSha256 => 32,
            Prf::HmacSha384 => 48,
            Prf::HmacSha512 => 64,
        }
    }

    /// prf(key, data...) over the concatenation of `data`.
    pub fn prf(self, key: &[u8], data: &[&[u8]]) -> Secret {
        match self {
            Prf::HmacSha1 => prf_with::<Hmac<sha1::Sha1>>(key, data),
            Prf::HmacSha256 => prf_with::<Hmac<sha2::Sha256>>(key, data),
            Prf::HmacSha384 => prf_with::<Hmac<sha2::Sha384>>(key, data),
            Prf::HmacSha512 => prf_with::<Hmac<sha2::Sha512>>(key, data),
        }
    }

    /// prf+ (RFC 7296 2.13): T1 | T2 | ... with Tn = prf(K, Tn-1 | S | n),
    /// truncated to `len` octets. At most 255 rounds.
    pub fn prf_plus(self, key: &[u8], seed: &[u8], len: usize) -> Secret {
        match self {
            Prf::HmacSha1 => prf_plus_with::<Hmac<sha1::Sha1>>(key, seed, len),
            Prf::HmacSha256 => prf_plus_with::<Hmac<sha2::Sha256>>(key, seed, len),
            Prf::HmacSha384 => prf_plus_with::<Hmac<sha2::Sha384>>(key, seed, len),
            Prf::HmacSha512 => prf_plus_with::<Hmac<sha2::Sha512>>(key, seed, len),
        }
    }
}

/// The PRFs are RustCrypto's `hmac` over `sha1` / `sha2`, chosen by
/// measurement over ring's HMAC (AMD EPYC, 2026-12-02: one HMAC-SHA-256 of
/// 80 octets with its key 244 ns against 302, a 136-octet prf+ 868 ns
/// against 1280, HMAC-SHA-1 248 ns against 1107, HMAC-SHA-384 1118 ns
/// against 1644): SHA-1 and SHA-256 run on the SHA extensions there.
fn prf_with<M: Mac + KeyInit>(key: &[u8], data: &[&[u8]]) -> Secret {
    let mut m = <M as KeyInit>::new_from_slice(key).expect("HMAC takes a key of any length");
    for d in data {
        m.update(d);
    }
    let mut t = m.finalize().into_bytes();
    let s = Secret::from_slice(&t);
    zeroize::Zeroize::zeroize(t.as_mut_slice());
    s
}

fn prf_plus_with<M: Mac + KeyInit + Clone>(key: &[u8], seed: &[u8], len: usize) -> Secret {
    let keyed = <M as KeyInit>::new_from_slice(key).expect("HMAC takes a key of any length");
    let block = <M as OutputSizeUser>::output_size();
    // Whole blocks, then cut to `len`: on the stack when the result fits
    // inline (every key of one SA), else on the heap.
    let whole = len.div_ceil(block) * block;
    if whole <= 2 * Secret::INLINE {
        let mut out = [0u8; 2 * Secret::INLINE];
        prf_plus_into(&keyed, seed, &mut out[..whole]);
        let s = if len <= Secret::INLINE { Secret::from_slice(&out[..len]) } else { Secret::new(out[..len].to_vec()) };
        // Only the blocks made hold key material.
        zeroize::Zeroize::zeroize(&mut out[..whole]);
        return s;
    }
    let mut out = Zeroizing::new(vec![0u8; whole]);
    prf_plus_into(&keyed, seed, &mut out);
    out.truncate(len);
    Secret(Repr::Heap(out))
}

/// prf+ into `out` (whole blocks): Tn = prf(K, Tn-1 | S | n).
fn prf_plus_into<M: Mac + Clone>(keyed: &M, seed: &[u8], out: &mut [u8]) {
    let block = <M as OutputSizeUser>::output_size();
    for (i, at) in (0..out.len()).step_by(block).enumerate() {
        let mut m = keyed.clone();
        // T(n-1): the block before, none before T1.
        m.update(&out[at.saturating_sub(block)..at]);
        m.update(seed);
        m.update(&[u8::try_from(i + 1).expect("prf+ asked for more than 255 blocks")]);
        let mut t = m.finalize().into_bytes();
        out[at..at + block].copy_from_slice(&t);
        zeroize::Zeroize::zeroize(t.as_mut_slice());
    }
}

/// An integrity algorithm (transform type 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Integ {
    HmacSha1_96,
    HmacSha256_128,
    HmacSha384_192,
    HmacSha512_256,
}

impl Integ {
    pub fn from_id(id: IntegId) -> Option<Integ> {
        Some(match id {
            IntegId::HmacSha1_96 => Integ::HmacSha1_96,
            IntegId::HmacSha2_256_128 => Integ::HmacSha256_128,
            IntegId::HmacSha2_384_192 => Integ::HmacSha384_192,
            IntegId::HmacSha2_512_256 => Integ::HmacSha512_256,
            _ => return None,
        })
    }

    pub fn id(self) -> IntegId {
        match self {
            Integ::HmacSha1_96 => IntegId::HmacSha1_96,
            Integ::HmacSha256_128 => IntegId::HmacSha2_256_128,
            Integ::HmacSha384_192 => IntegId::HmacSha2_384_192,
            Integ::HmacSha512_256 => IntegId::HmacSha2_512_256,
        }
    }

    fn alg(self) -> hmac::Algorithm {
        match self {
            Integ::HmacSha1_96 => hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
            Integ::HmacSha256_128 => hmac::HMAC_SHA256,
            Integ::HmacSha384_192 => hmac::HMAC_SHA384,
            Integ::HmacSha512_256 => hmac::HMAC_SHA512,
        }
    }

    /// Key length in octets (RFC 2404, RFC 4868 2.1.1).
    pub fn key_len(self) -> usize {
        match self {
            Integ::HmacSha1_96 => 20,
            Integ::HmacSha256_128 => 32,
            Integ::HmacSha384_192 => 48,
            Integ::HmacSha512_256 => 64,
        }
    }

    /// Truncated output length in octets.
    pub fn icv_len(self) -> usize {
        match self {
            Integ::HmacSha1_96 => 12,
            Integ::HmacSha256_128 => 16,
            Integ::HmacSha384_192 => 24,
            Integ::HmacSha512_256 => 32,
        }
    }

    pub fn mac(self, key: &[u8], data: &[u8]) -> Vec<u8> {
        let k = hmac::Key::new(self.alg(), key);
        let mut t = hmac::sign(&k, data).as_ref().to_vec();
        t.truncate(self.icv_len());
        t
    }

    /// Constant-time check of a truncated MAC.
    pub fn verify(self, key: &[u8], data: &[u8], icv: &[u8]) -> bool {
        let want = self.mac(key, data);
        use subtle::ConstantTimeEq;
        want.len() == icv.len() && bool::from(want.ct_eq(icv))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    }

    #[test]
    fn secrets_inline_or_on_the_heap_are_the_same_octets() {
        for n in [0, 1, 20, 32, Secret::INLINE, Secret::INLINE + 1, 256] {
            let b: Vec<u8> = (0..n).map(|i| i as u8 ^ 0x5c).collect();
            let (inline, heap) = (Secret::from_slice(&b), Secret::new(b.clone()));
            assert_eq!(inline.as_slice(), &b[..]);
            assert_eq!((inline.len(), inline.is_empty()), (n, n == 0));
            assert_eq!(inline, heap, "{n} octets: equal whatever the storage");
            assert_eq!(inline.clone(), heap);
            assert_eq!(format!("{inline:?}"), format!("<redacted {n} octets>"), "never printed");
        }
        assert_ne!(Secret::from_slice(&[1, 2]), Secret::from_slice(&[1, 2, 0]));
        assert!(Secret::default().is_empty());
        // prf+ output: inline up to 64 octets, whole either way.
        let short = Prf::HmacSha256.prf_plus(b"k", b"seed", 40);
        let long = Prf::HmacSha256.prf_plus(b"k", b"seed", 200);
        assert_eq!(short.as_slice(), &long.as_slice()[..40]);
    }

    #[test]
    fn system_random_blocks_hand_out_each_octet_once() {
        let mut r = SystemRandom::default();
        // Across several refills, the blocks growing: no repeats.
        let mut seen = std::collections::HashSet::new();
        for _ in 0..300 {
            assert!(seen.insert(r.vec(32)), "a 32-octet value repeated");
        }
        assert_eq!(r.buf.len(), SystemRandom::BLOCK, "blocks double up to BLOCK");
        assert!(seen.insert(r.vec(1000)), "large requests come straight from the OS");
        // What was handed out is gone from the buffer.
        let used = r.buf.len() - r.left;
        assert!(used > 0 && r.buf[..used].iter().all(|b| *b == 0));
    }

    #[test]
    fn hmac_prfs_match_rfc_4231_and_rfc_2202() {
        // RFC 4231 test case 2: key "Jefe".
        let data = b"what do ya want for nothing?";
        assert_eq!(
            Prf::HmacSha256.prf(b"Jefe", &[data]).as_slice(),
            hex("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
        );
        assert_eq!(
            Prf::HmacSha384.prf(b"Jefe", &[&data[..10], &data[10..]]).as_slice(),
            hex("af45d2e376484031617f78d2b58a6b1b9c7ef464f5a01b47e42ec3736322445e8e2240ca5e69e2c78b3239ecfab21649")
        );
        assert_eq!(
            Prf::HmacSha512.prf(b"Jefe", &[data]).as_slice(),
            hex("164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea2505549758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737")
        );
        // RFC 2202 test case 2 (HMAC-SHA1), and its 96-bit truncation.
        assert_eq!(Prf::HmacSha1.prf(b"Jefe", &[data]).as_slice(), hex("effcdf6ae5eb2fa2d27416d5f184df9c259a7c79"));
        assert_eq!(Integ::HmacSha1_96.mac(b"Jefe", data), hex("effcdf6ae5eb2fa2d27416d5"));
        assert!(Integ::HmacSha256_128.verify(b"Jefe", data, &hex("5bdcc146bf60754e6a042426089575c7")));
        assert!(!Integ::HmacSha256_128.verify(b"Jefe", data, &hex("5bdcc146bf60754e6a042426089575c8")));
    }

    /// RFC 7296 2.13: prf keys are the nonces (Ni | Nr, up to 512 octets)
    /// or SKEYSEED, so keys longer than a hash block are hashed first
    /// (RFC 2104 2): RFC 4231 test case 6, and every length against ring.
    #[test]
    fn hmac_prfs_take_keys_of_any_length() {
        let long = [0xaau8; 131];
        assert_eq!(
            Prf::HmacSha256.prf(&long, &[b"Test Using Larger Than Block-Size Key - Hash Key First"]).as_slice(),
            hex("60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54")
        );
        let algs = [
            (Prf::HmacSha1, hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY),
            (Prf::HmacSha256, hmac::HMAC_SHA256),
            (Prf::HmacSha384, hmac::HMAC_SHA384),
            (Prf::HmacSha512, hmac::HMAC_SHA512),
        ];
        for (prf, alg) in algs {
            for len in [0usize, 1, 20, 64, 65, 128, 129, 512] {
                let key: Vec<u8> = (0..len).map(|i| i as u8).collect();
                let want = hmac::sign(&hmac::Key::new(alg, &key), b"data");
                assert_eq!(prf.prf(&key, &[b"da", b"ta"]).as_slice(), want.as_ref(), "{prf:?} key of {len}");
            }
        }
    }

    #[test]
    fn prf_plus_is_the_iterated_construction() {
        let k = [7u8; 32];
        let s = b"seed";
        let out = Prf::HmacSha256.prf_plus(&k, s, 80);
        let t1 = Prf::HmacSha256.prf(&k, &[s, &[1]]);
        let t2 = Prf::HmacSha256.prf(&k, &[t1.as_slice(), s, &[2]]);
        let t3 = Prf::HmacSha256.prf(&k, &[t2.as_slice(), s, &[3]]);
        let mut want = t1.as_slice().to_vec();
        want.extend_from_slice(t2.as_slice());
        want.extend_from_slice(&t3.as_slice()[..16]);
        assert_eq!(out.as_slice(), want);
        assert!(format!("{out:?}").contains("redacted"));
    }
}
