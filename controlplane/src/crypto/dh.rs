//! Diffie-Hellman for the KE payload: groups 14, 15 and 16 (MODP-2048,
//! -3072, -4096, RFC 3526), 19, 20 and 21 (ECP-256, -384, -521, RFC 5903)
//! and 31 and 32 (Curve25519 and Curve448, RFC 8031).
//!
//! Wire formats: MODP publics are big-endian and padded to the prime's
//! length (RFC 7296 3.4); ECP publics are x | y, each padded to the
//! field's length, without the 0x04 octet (RFC 5903 7); X25519 and X448
//! publics are the 32 and 56 octets of RFC 7748. Every peer
//! public value is checked (length, range, point on the curve) before use,
//! and a bad one is [`DhError`], which the engine answers with
//! INVALID_SYNTAX (RFC 7296 3.4 leaves the check to us).
//!
//! Every private value comes from the caller's [`Random`], so an engine
//! with a seeded generator makes the same keys, and the same messages, on
//! every run (tests, fuzzing); the daemon passes the system's generator.
//! Curve25519 and ECP-256 run on aws-lc-rs, loaded from those random
//! octets (ring cannot take a private key from outside). Measured on the
//! 2-vCPU EPYC guest (a key pair made and agreed, one core): X25519 41 us
//! with aws-lc-rs against 78 us with ring (aws-lc's s2n-bignum field
//! arithmetic); ECP-256 65-69 us against 68-77 us with ring. A responder
//! does one of each per IKE SA. X448 is the `x448` crate's (on
//! ed448-goldilocks, fiat-crypto field arithmetic): neither aws-lc-rs nor
//! ring has it.

use aws_lc_rs::agreement as lc;
use num_bigint::BigUint;
use zeroize::Zeroizing;

use super::{Random, Secret};
use crate::codepoints::DhGroup;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DhError {
    #[error("group {0} is not supported")]
    Unsupported(u16),
    #[error("the peer's public value is not valid for group {0}")]
    BadPublic(u16),
}

/// RFC 3526 section 3: the 2048-bit MODP prime (generator 2). Verified a
/// safe prime when it was typed in, and by `modp_primes_are_safe_primes`.
const MODP2048_P: &str = "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7EDEE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3DC2007CB8A163BF0598DA48361C55D39A69163FA8FD24CF5F83655D23DCA3AD961C62F356208552BB9ED529077096966D670C354E4ABC9804F1746C08CA18217C32905E462E36CE3BE39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9DE2BCBF6955817183995497CEA956AE515D2261898FA051015728E5A8AACAA68FFFFFFFFFFFFFFFF";
/// RFC 3526 section 4: the 3072-bit MODP prime (generator 2).
const MODP3072_P: &str = "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7EDEE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3DC2007CB8A163BF0598DA48361C55D39A69163FA8FD24CF5F83655D23DCA3AD961C62F356208552BB9ED529077096966D670C354E4ABC9804F1746C08CA18217C32905E462E36CE3BE39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9DE2BCBF6955817183995497CEA956AE515D2261898FA051015728E5A8AAAC42DAD33170D04507A33A85521ABDF1CBA64ECFB850458DBEF0A8AEA71575D060C7DB3970F85A6E1E4C7ABF5AE8CDB0933D71E8C94E04A25619DCEE3D2261AD2EE6BF12FFA06D98A0864D87602733EC86A64521F2B18177B200CBBE117577A615D6C770988C0BAD946E208E24FA074E5AB3143DB5BFCE0FD108E4B82D120A93AD2CAFFFFFFFFFFFFFFFF";
/// RFC 3526 section 5: the 4096-bit MODP prime (generator 2).
const MODP4096_P: &str = "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7EDEE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3DC2007CB8A163BF0598DA48361C55D39A69163FA8FD24CF5F83655D23DCA3AD961C62F356208552BB9ED529077096966D670C354E4ABC9804F1746C08CA18217C32905E462E36CE3BE39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9DE2BCBF6955817183995497CEA956AE515D2261898FA051015728E5A8AAAC42DAD33170D04507A33A85521ABDF1CBA64ECFB850458DBEF0A8AEA71575D060C7DB3970F85A6E1E4C7ABF5AE8CDB0933D71E8C94E04A25619DCEE3D2261AD2EE6BF12FFA06D98A0864D87602733EC86A64521F2B18177B200CBBE117577A615D6C770988C0BAD946E208E24FA074E5AB3143DB5BFCE0FD108E4B82D120A92108011A723C12A787E6D788719A10BDBA5B2699C327186AF4E23C1A946834B6150BDA2583E9CA2AD44CE8DBBBC2DB04DE8EF92E8EFC141FBECAA6287C59474E6BC05D99B2964FA090C3A2233BA186515BE7ED1F612970CEE2D7AFB81BDD762170481CD0069127D5B05AA993B4EA988D8FDDC186FFB7DC90A6C08F4DF435C934063199FFFFFFFFFFFFFFFF";

/// A MODP group: its prime, the prime's length in octets (publics and the
/// shared secret are padded to it) and the private exponent's, about twice
/// the group's strength (RFC 3526 section 8: 2048 bits ~112, 3072 ~130,
/// 4096 ~150).
struct Modp {
    id: u16,
    prime: &'static str,
    len: usize,
    exp_len: usize,
    parsed: &'static std::sync::OnceLock<BigUint>,
}

static P2048: std::sync::OnceLock<BigUint> = std::sync::OnceLock::new();
static P3072: std::sync::OnceLock<BigUint> = std::sync::OnceLock::new();
static P4096: std::sync::OnceLock<BigUint> = std::sync::OnceLock::new();

fn modp(g: DhGroup) -> Option<Modp> {
    Some(match g {
        DhGroup::Modp2048 => Modp { id: 14, prime: MODP2048_P, len: 256, exp_len: 32, parsed: &P2048 },
        DhGroup::Modp3072 => Modp { id: 15, prime: MODP3072_P, len: 384, exp_len: 40, parsed: &P3072 },
        DhGroup::Modp4096 => Modp { id: 16, prime: MODP4096_P, len: 512, exp_len: 48, parsed: &P4096 },
        _ => return None,
    })
}

impl Modp {
    fn p(&self) -> &'static BigUint {
        self.parsed.get_or_init(|| BigUint::parse_bytes(self.prime.as_bytes(), 16).expect("an RFC 3526 prime parses"))
    }
}

/// An ECP group (RFC 5903): aws-lc's curve and the field's length in
/// octets (each coordinate, and the shared secret, the x of g^ir).
fn ecp(g: DhGroup) -> Option<(&'static lc::Algorithm, usize, u16)> {
    Some(match g {
        DhGroup::Ecp256 => (&lc::ECDH_P256, 32, 19),
        DhGroup::Ecp384 => (&lc::ECDH_P384, 48, 20),
        DhGroup::Ecp521 => (&lc::ECDH_P521, 66, 21),
        _ => return None,
    })
}

/// A private DH value, used once (both libraries wipe it when dropped).
pub enum DhPrivate {
    Modp(DhGroup, Zeroizing<Vec<u8>>),
    Ecp(DhGroup, lc::PrivateKey),
    X25519(lc::PrivateKey),
    /// The clamped scalar is made again from these octets at each use.
    X448(Zeroizing<[u8; 56]>),
}

impl std::fmt::Debug for DhPrivate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DhPrivate(<redacted>)")
    }
}

pub fn supported(g: DhGroup) -> bool {
    modp(g).is_some() || ecp(g).is_some() || matches!(g, DhGroup::Curve25519 | DhGroup::Curve448)
}

/// A fresh key pair: the private half and the KE payload's data.
pub fn generate(group: DhGroup, rng: &mut dyn Random) -> Result<(DhPrivate, Vec<u8>), DhError> {
    if let Some(m) = modp(group) {
        let x = Zeroizing::new(rng.vec(m.exp_len));
        let y = BigUint::from(2u32).modpow(&BigUint::from_bytes_be(&x), m.p());
        return Ok((DhPrivate::Modp(group, x), pad(&y.to_bytes_be(), m.len)));
    }
    if let Some((alg, len, id)) = ecp(group) {
        // A scalar in [1, n-1]: `len` random octets (P-521's top octet cut
        // to its one bit) are one but for small odds (zero, or at least the
        // group order): draw again.
        let k = loop {
            let mut x = Zeroizing::new(rng.vec(len));
            if group == DhGroup::Ecp521 {
                x[0] &= 1;
            }
            if let Ok(k) = lc::PrivateKey::from_private_key(alg, &x) {
                break k;
            }
        };
        let public = k.compute_public_key().map_err(|_| DhError::Unsupported(id))?;
        // Drop the uncompressed-point marker (RFC 5903 7).
        return Ok((DhPrivate::Ecp(group, k), public.as_ref()[1..].to_vec()));
    }
    match group {
        DhGroup::Curve25519 => x25519_pair(rng),
        DhGroup::Curve448 => {
            let mut x = Zeroizing::new([0u8; 56]);
            rng.fill(&mut x[..]);
            let public = x448::x448(*x, x448::X448_BASEPOINT_BYTES).ok_or(DhError::Unsupported(32))?;
            Ok((DhPrivate::X448(x), public.to_vec()))
        }
        g => Err(DhError::Unsupported(g.value())),
    }
}

/// Curve25519 key pairs made ahead, a batch at a time. The fixed-base
/// multiplication walks a large precomputed table; done one by one between
/// socket waits it runs with cold caches at about 1.5 times its hot cost,
/// and a responder makes one pair per IKE SA. Each pair is still used once
/// (no reuse of exponentials, RFC 7296 2.12), and at most one batch waits.
/// Batches start at one pair and double with each refill, so an endpoint
/// that makes a key now and then never makes spares.
#[derive(Default)]
pub struct KeyPool {
    x25519: Vec<(DhPrivate, Vec<u8>)>,
    refills: u32,
}

impl std::fmt::Debug for KeyPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KeyPool({} x25519 pairs)", self.x25519.len())
    }
}

impl KeyPool {
    const BATCH: usize = 32;

    /// Like [`generate`], from the pool where the group has one.
    pub fn generate(&mut self, group: DhGroup, rng: &mut dyn Random) -> Result<(DhPrivate, Vec<u8>), DhError> {
        if group != DhGroup::Curve25519 {
            return generate(group, rng);
        }
        if self.x25519.is_empty() {
            let n = (1usize << self.refills.min(16)).min(Self::BATCH);
            self.refills += 1;
            for _ in 0..n {
                self.x25519.push(x25519_pair(rng)?);
            }
        }
        Ok(self.x25519.pop().expect("just filled"))
    }
}

/// Initializes aws-lc now. Its first use in a process may gather
/// CPU-jitter entropy for its own generator (about 40 ms); a daemon does
/// that at start rather than inside the first peer's IKE_SA_INIT.
pub fn warm_up() {
    let _ = lc::PrivateKey::generate(&lc::X25519);
}

/// An X25519 pair from 32 octets of `rng` (RFC 7748 5 clamps them). The
/// private key is an aws-lc key; `agree` consumes it, so each is used once.
fn x25519_pair(rng: &mut dyn Random) -> Result<(DhPrivate, Vec<u8>), DhError> {
    let x = Zeroizing::new(rng.vec(32));
    let k = lc::PrivateKey::from_private_key(&lc::X25519, &x).map_err(|_| DhError::Unsupported(31))?;
    let public = k.compute_public_key().map_err(|_| DhError::Unsupported(31))?.as_ref().to_vec();
    Ok((DhPrivate::X25519(k), public))
}

/// The shared secret g^ir from our private value and the peer's public.
pub fn agree(private: DhPrivate, peer: &[u8]) -> Result<Secret, DhError> {
    match private {
        DhPrivate::Modp(g, x) => {
            let m = modp(g).ok_or(DhError::Unsupported(g.value()))?;
            if peer.len() != m.len {
                return Err(DhError::BadPublic(m.id));
            }
            let y = BigUint::from_bytes_be(peer);
            // RFC 2631 / SP 800-56A: 1 < y < p-1.
            let one = BigUint::from(1u32);
            if y <= one || y >= m.p() - &one {
                return Err(DhError::BadPublic(m.id));
            }
            let s = y.modpow(&BigUint::from_bytes_be(&x), m.p());
            Ok(Secret::new(pad(&s.to_bytes_be(), m.len)))
        }
        DhPrivate::Ecp(g, k) => {
            let (alg, len, id) = ecp(g).ok_or(DhError::Unsupported(g.value()))?;
            if peer.len() != 2 * len {
                return Err(DhError::BadPublic(id));
            }
            let mut p = Vec::with_capacity(1 + 2 * len);
            p.push(4);
            p.extend_from_slice(peer);
            // aws-lc checks the point is on the curve.
            let peer = lc::UnparsedPublicKey::new(alg, p);
            lc::agree(&k, peer, DhError::BadPublic(id), |s| Ok(Secret::from_slice(s)))
        }
        DhPrivate::X25519(k) => {
            if peer.len() != 32 {
                return Err(DhError::BadPublic(31));
            }
            // aws-lc refuses an all-zero result (a small-order peer value),
            // the check RFC 7748 6.1 and RFC 8031 2.3 ask for.
            let peer = lc::UnparsedPublicKey::new(&lc::X25519, peer);
            lc::agree(&k, peer, DhError::BadPublic(31), |s| Ok(Secret::from_slice(s)))
        }
        DhPrivate::X448(x) => {
            let peer: [u8; 56] = peer.try_into().map_err(|_| DhError::BadPublic(32))?;
            // A low-order peer value is refused, and so is an all-zero
            // result (RFC 7748 6.2, RFC 8031 2.3).
            let s = Zeroizing::new(x448::x448(*x, peer).ok_or(DhError::BadPublic(32))?);
            if s.iter().all(|b| *b == 0) {
                return Err(DhError::BadPublic(32));
            }
            Ok(Secret::from_slice(&s[..]))
        }
    }
}

fn pad(b: &[u8], len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len.saturating_sub(b.len())];
    v.extend_from_slice(b);
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::SystemRandom;

    #[test]
    fn the_key_pool_hands_out_distinct_pairs_that_agree() {
        let mut rng = SystemRandom::default();
        let mut pool = KeyPool::default();
        let mut publics = std::collections::HashSet::new();
        for _ in 0..(KeyPool::BATCH * 2 + 3) {
            let (a, pa) = pool.generate(DhGroup::Curve25519, &mut rng).unwrap();
            let (b, pb) = generate(DhGroup::Curve25519, &mut rng).unwrap();
            assert!(publics.insert(pa.clone()), "a pooled key pair was handed out twice");
            assert_eq!(agree(a, &pb).unwrap().as_slice(), agree(b, &pa).unwrap().as_slice());
        }
        // Other groups pass straight through.
        let (_, p) = pool.generate(DhGroup::Ecp256, &mut rng).unwrap();
        assert_eq!(p.len(), 64);
    }

    #[test]
    fn every_group_agrees_with_itself() {
        let mut rng = SystemRandom::default();
        for (g, len) in [
            (DhGroup::Modp2048, 256),
            (DhGroup::Modp3072, 384),
            (DhGroup::Modp4096, 512),
            (DhGroup::Ecp256, 64),
            (DhGroup::Ecp384, 96),
            (DhGroup::Ecp521, 132),
            (DhGroup::Curve25519, 32),
            (DhGroup::Curve448, 56),
        ] {
            let (a, pa) = generate(g, &mut rng).unwrap();
            let (b, pb) = generate(g, &mut rng).unwrap();
            assert_eq!(pa.len(), len);
            let s1 = agree(a, &pb).unwrap();
            let s2 = agree(b, &pa).unwrap();
            assert_eq!(s1, s2, "group {g:?}");
        }
    }

    const ALL: [DhGroup; 8] = [
        DhGroup::Modp2048,
        DhGroup::Modp3072,
        DhGroup::Modp4096,
        DhGroup::Ecp256,
        DhGroup::Ecp384,
        DhGroup::Ecp521,
        DhGroup::Curve25519,
        DhGroup::Curve448,
    ];

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    }

    /// RFC 5903 sections 8.2 and 8.3: the initiator's and responder's
    /// private values i and r give the shared g^ir (its x, girx), whichever
    /// side computes it.
    #[test]
    fn ecp384_and_ecp521_match_rfc5903_section_8() {
        let cases = [
            (
                DhGroup::Ecp384,
                "099F3C7034D4A2C699884D73A375A67F7624EF7C6B3C0F160647B67414DCE655E35B538041E649EE3FAEF896783AB194",
                "41CB0779B4BDB85D47846725FBEC3C9430FAB46CC8DC5060855CC9BDA0AA2942E0308312916B8ED2960E4BD55A7448FC",
                "11187331C279962D93D604243FD592CB9D0A926F422E47187521287E7156C5C4D603135569B9E9D09CF5D4A270F59746",
            ),
            (
                DhGroup::Ecp521,
                "0037ADE9319A89F4DABDB3EF411AACCCA5123C61ACAB57B5393DCE47608172A095AA85A30FE1C2952C6771D937BA9777\
                 F5957B2639BAB072462F68C27A57382D4A52",
                "0145BA99A847AF43793FDD0E872E7CDFA16BE30FDC780F97BCCC3F078380201E9C677D600B343757A3BDBF2A3163E4C2\
                 F869CCA7458AA4A4EFFC311F5CB151685EB9",
                "01144C7D79AE6956BC8EDB8E7C787C4521CB086FA64407F97894E5E6B2D79B04D1427E73CA4BAA240A34786859810C06\
                 B3C715A3A8CC3151F2BEE417996D19F3DDEA",
            ),
        ];
        for (g, i, r, girx) in cases {
            let (alg, len, _) = ecp(g).unwrap();
            let key = |x: &str| lc::PrivateKey::from_private_key(alg, &hex(x)).unwrap();
            let public = |x: &str| key(x).compute_public_key().unwrap().as_ref()[1..].to_vec();
            let (gi, gr) = (public(i), public(r));
            assert_eq!((gi.len(), gr.len()), (2 * len, 2 * len), "{g:?}: x | y, each {len} octets");
            let s1 = agree(DhPrivate::Ecp(g, key(i)), &gr).unwrap();
            let s2 = agree(DhPrivate::Ecp(g, key(r)), &gi).unwrap();
            assert_eq!(s1.as_slice(), &hex(girx)[..], "{g:?}");
            assert_eq!(s2.as_slice(), &hex(girx)[..], "{g:?}");
        }
    }

    /// RFC 3526 gives no test vectors; what can go wrong is the prime as
    /// typed. Each is p = 2q + 1 with p and q (probable) primes: Fermat's
    /// test to bases 2, 3 and 5 for both (a mistyped digit fails it).
    #[test]
    fn modp_primes_are_safe_primes() {
        for g in [DhGroup::Modp2048, DhGroup::Modp3072, DhGroup::Modp4096] {
            let m = modp(g).unwrap();
            let p = m.p();
            assert_eq!(p.to_bytes_be().len(), m.len, "{g:?}");
            let one = BigUint::from(1u32);
            let q: BigUint = (p - &one) >> 1;
            for n in [p, &q] {
                for a in [2u32, 3, 5] {
                    assert_eq!(BigUint::from(a).modpow(&(n - &one), n), one, "{g:?}: Fermat, base {a}");
                }
            }
        }
    }

    /// Octets from a fixed seed: the same keys every time.
    struct Fixed(u8);
    impl Random for Fixed {
        fn fill(&mut self, buf: &mut [u8]) {
            for b in buf {
                self.0 = self.0.wrapping_mul(29).wrapping_add(7);
                *b = self.0;
            }
        }
    }

    #[test]
    fn every_group_takes_its_private_value_from_the_given_generator() {
        for g in ALL {
            let (_, a) = generate(g, &mut Fixed(1)).unwrap();
            let (_, b) = generate(g, &mut Fixed(1)).unwrap();
            let (_, c) = generate(g, &mut Fixed(2)).unwrap();
            assert_eq!(a, b, "{g:?}: same seed, same public value");
            assert_ne!(a, c, "{g:?}");
            let (_, d) = KeyPool::default().generate(g, &mut Fixed(1)).unwrap();
            assert_eq!(a, d, "{g:?}: the pool draws the same way");
        }
    }

    /// RFC 7748 section 6.1: Alice's and Bob's keys and their shared secret.
    #[test]
    fn x25519_matches_rfc7748_section_6_1() {
        let alice = hex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a");
        let alice_pub = hex("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a");
        let bob = hex("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb");
        let bob_pub = hex("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f");
        let shared = hex("4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742");
        let a = lc::PrivateKey::from_private_key(&lc::X25519, &alice).unwrap();
        assert_eq!(a.compute_public_key().unwrap().as_ref(), &alice_pub[..]);
        let b = lc::PrivateKey::from_private_key(&lc::X25519, &bob).unwrap();
        assert_eq!(b.compute_public_key().unwrap().as_ref(), &bob_pub[..]);
        assert_eq!(agree(DhPrivate::X25519(a), &bob_pub).unwrap().as_slice(), &shared[..]);
        assert_eq!(agree(DhPrivate::X25519(b), &alice_pub).unwrap().as_slice(), &shared[..]);
    }

    #[test]
    fn bad_public_values_are_refused() {
        let mut rng = SystemRandom::default();
        let (a, _) = generate(DhGroup::Modp2048, &mut rng).unwrap();
        assert_eq!(agree(a, &[0u8; 256]), Err(DhError::BadPublic(14)));
        let (a, _) = generate(DhGroup::Modp2048, &mut rng).unwrap();
        assert_eq!(agree(a, &[1u8; 255]), Err(DhError::BadPublic(14)));
        let (a, _) = generate(DhGroup::Ecp256, &mut rng).unwrap();
        assert_eq!(agree(a, &[1u8; 64]), Err(DhError::BadPublic(19)), "not on the curve");
        let (a, _) = generate(DhGroup::Ecp384, &mut rng).unwrap();
        assert_eq!(agree(a, &[1u8; 96]), Err(DhError::BadPublic(20)), "not on the curve");
        let (a, _) = generate(DhGroup::Ecp521, &mut rng).unwrap();
        assert_eq!(agree(a, &[1u8; 64]), Err(DhError::BadPublic(21)), "the wrong length");
        let (a, _) = generate(DhGroup::Modp3072, &mut rng).unwrap();
        assert_eq!(agree(a, &[0xffu8; 384]), Err(DhError::BadPublic(15)), "at least p");
        let (a, _) = generate(DhGroup::Modp4096, &mut rng).unwrap();
        assert_eq!(agree(a, &[1u8; 256]), Err(DhError::BadPublic(16)), "the wrong length");
        let (a, _) = generate(DhGroup::Curve25519, &mut rng).unwrap();
        assert_eq!(agree(a, &[1u8; 31]), Err(DhError::BadPublic(31)));
        // Small-order points give an all-zero secret (RFC 7748 6.1): u = 0 and u = 1.
        let (a, _) = generate(DhGroup::Curve25519, &mut rng).unwrap();
        assert_eq!(agree(a, &[0u8; 32]), Err(DhError::BadPublic(31)));
        let mut one = [0u8; 32];
        one[0] = 1;
        let (a, _) = generate(DhGroup::Curve25519, &mut rng).unwrap();
        assert_eq!(agree(a, &one), Err(DhError::BadPublic(31)));
        let (a, _) = generate(DhGroup::Curve448, &mut rng).unwrap();
        assert_eq!(agree(a, &[1u8; 32]), Err(DhError::BadPublic(32)), "the wrong length");
        for low in [0u8, 1] {
            let mut u = [0u8; 56];
            u[0] = low;
            let (a, _) = generate(DhGroup::Curve448, &mut rng).unwrap();
            assert_eq!(agree(a, &u), Err(DhError::BadPublic(32)), "u = {low}: low order");
        }
        assert!(generate(DhGroup::Unknown(2), &mut rng).is_err());
    }

    /// RFC 7748 6.2: Alice's and Bob's X448 values, and their shared
    /// secret from either side.
    #[test]
    fn x448_matches_rfc7748_section_6_2() {
        let alice = hex("9a8f4925d1519f5775cf46b04b5800d4ee9ee8bae8bc5565d498c28dd9c9baf5\
                         74a9419744897391006382a6f127ab1d9ac2d8c0a598726b");
        let alice_pub = hex("9b08f7cc31b7e3e67d22d5aea121074a273bd2b83de09c63faa73d2c22c5d9bb\
                             c836647241d953d40c5b12da88120d53177f80e532c41fa0");
        let bob = hex("1c306a7ac2a0e2e0990b294470cba339e6453772b075811d8fad0d1d6927c120\
                       bb5ee8972b0d3e21374c9c921b09d1b0366f10b65173992d");
        let bob_pub = hex("3eb7a829b0cd20f5bcfc0b599b6feccf6da4627107bdb0d4f345b43027d8b972\
                           fc3e34fb4232a13ca706dcb57aec3dae07bdc1c67bf33609");
        let shared = hex("07fff4181ac6cc95ec1c16a94a0f74d12da232ce40a77552281d282bb60c0b56\
                          fd2464c335543936521c24403085d59a449a5037514a879d");
        struct Fixed(Vec<u8>);
        impl Random for Fixed {
            fn fill(&mut self, buf: &mut [u8]) {
                buf.copy_from_slice(&self.0[..buf.len()]);
            }
        }
        let (a, pa) = generate(DhGroup::Curve448, &mut Fixed(alice)).unwrap();
        let (b, pb) = generate(DhGroup::Curve448, &mut Fixed(bob)).unwrap();
        assert_eq!((pa.clone(), pb.clone()), (alice_pub, bob_pub));
        assert_eq!(agree(a, &pb).unwrap().as_slice(), &shared[..]);
        assert_eq!(agree(b, &pa).unwrap().as_slice(), &shared[..]);
    }
}
