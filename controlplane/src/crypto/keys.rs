//! Key derivation of RFC 7296: SKEYSEED and the seven IKE SA keys (2.14),
//! the IKE SA rekey (2.18), child SA KEYMAT (2.17), the PSK AUTH value
//! (2.15) and the NAT detection hashes (2.23).

use ring::digest;

use super::sk::{Encr, SkKeys};
use super::{Integ, Prf, Secret};

/// The negotiated algorithms of an IKE SA.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IkeSuite {
    pub encr: Encr,
    pub prf: Prf,
    pub integ: Option<Integ>,
    pub dh: crate::codepoints::DhGroup,
}

/// SK_d, SK_ai, SK_ar, SK_ei, SK_er, SK_pi, SK_pr.
#[derive(Debug, Clone)]
pub struct IkeKeys {
    pub sk_d: Secret,
    pub sk_ai: Secret,
    pub sk_ar: Secret,
    pub sk_ei: Secret,
    pub sk_er: Secret,
    pub sk_pi: Secret,
    pub sk_pr: Secret,
}

impl IkeKeys {
    /// RFC 7296 2.14: {SK_d | SK_ai | SK_ar | SK_ei | SK_er | SK_pi | SK_pr}
    /// = prf+(SKEYSEED, Ni | Nr | SPIi | SPIr).
    pub fn derive(suite: &IkeSuite, skeyseed: &Secret, ni: &[u8], nr: &[u8], spi_i: u64, spi_r: u64) -> IkeKeys {
        Self::derive_keys(suite, skeyseed, (ni, nr, spi_i, spi_r), true)
    }

    /// [`IkeKeys::derive`] for an IKE SA that runs no IKE_AUTH: one
    /// rebuilt from a stub (draft-xu-ike-sa-sync, NOTES.md) or made by a
    /// rekey (RFC 7296 2.18). SK_pi and SK_pr key only the AUTH payloads
    /// (2.15) and come last in the stream, so they are left empty and the
    /// other five are the same octets.
    pub fn derive_without_auth(
        suite: &IkeSuite,
        skeyseed: &Secret,
        ni: &[u8],
        nr: &[u8],
        spi_i: u64,
        spi_r: u64,
    ) -> IkeKeys {
        Self::derive_keys(suite, skeyseed, (ni, nr, spi_i, spi_r), false)
    }

    fn derive_keys(
        suite: &IkeSuite,
        skeyseed: &Secret,
        (ni, nr, spi_i, spi_r): (&[u8], &[u8], u64, u64),
        auth: bool,
    ) -> IkeKeys {
        let p = suite.prf.out_len();
        let a = suite.integ.map_or(0, |i| i.key_len());
        let e = suite.encr.key_len();
        let mut seed = Vec::with_capacity(ni.len() + nr.len() + 16);
        seed.extend_from_slice(ni);
        seed.extend_from_slice(nr);
        seed.extend_from_slice(&spi_i.to_be_bytes());
        seed.extend_from_slice(&spi_r.to_be_bytes());
        let pp = if auth { p } else { 0 };
        let km = suite.prf.prf_plus(skeyseed.as_slice(), &seed, p + 2 * a + 2 * e + 2 * pp);
        let mut at = 0;
        let mut take = |n: usize| {
            let s = Secret::from_slice(&km.as_slice()[at..at + n]);
            at += n;
            s
        };
        IkeKeys {
            sk_d: take(p),
            sk_ai: take(a),
            sk_ar: take(a),
            sk_ei: take(e),
            sk_er: take(e),
            sk_pi: take(pp),
            sk_pr: take(pp),
        }
    }

    /// The keys protecting messages sent by the original initiator (`true`)
    /// or responder.
    pub fn sk(&self, suite: &IkeSuite, from_initiator: bool) -> SkKeys<'_> {
        let (ek, ak) = if from_initiator { (&self.sk_ei, &self.sk_ai) } else { (&self.sk_er, &self.sk_ar) };
        SkKeys { encr: suite.encr, integ: suite.integ, ek: ek.as_slice(), ak: ak.as_slice() }
    }
}

/// RFC 7296 2.14: SKEYSEED = prf(Ni | Nr, g^ir).
pub fn skeyseed(prf: Prf, ni: &[u8], nr: &[u8], g_ir: &Secret) -> Secret {
    let mut key = Vec::with_capacity(ni.len() + nr.len());
    key.extend_from_slice(ni);
    key.extend_from_slice(nr);
    prf.prf(&key, &[g_ir.as_slice()])
}

/// RFC 7296 2.18: SKEYSEED = prf(SK_d (old), g^ir (new) | Ni | Nr), with
/// the old IKE SA's PRF.
pub fn rekey_skeyseed(old_prf: Prf, old_sk_d: &Secret, g_ir: &Secret, ni: &[u8], nr: &[u8]) -> Secret {
    old_prf.prf(old_sk_d.as_slice(), &[g_ir.as_slice(), ni, nr])
}

/// The four ESP keys of a child SA, in RFC 7296 2.17's order.
#[derive(Debug, Clone)]
pub struct ChildKeys {
    pub encr_i: Secret,
    pub integ_i: Secret,
    pub encr_r: Secret,
    pub integ_r: Secret,
}

/// RFC 7296 2.17: KEYMAT = prf+(SK_d, [g^ir (new) |] Ni | Nr); first the
/// initiator-to-responder keys (encryption, then integrity), then the
/// responder-to-initiator ones.
pub fn child_keys(
    prf: Prf,
    sk_d: &Secret,
    g_ir: Option<&Secret>,
    ni: &[u8],
    nr: &[u8],
    encr: Encr,
    integ: Option<Integ>,
) -> ChildKeys {
    let e = encr.key_len();
    let a = integ.map_or(0, |i| i.key_len());
    let mut seed = Vec::new();
    if let Some(g) = g_ir {
        seed.extend_from_slice(g.as_slice());
    }
    seed.extend_from_slice(ni);
    seed.extend_from_slice(nr);
    let km = prf.prf_plus(sk_d.as_slice(), &seed, 2 * (e + a));
    zeroize::Zeroize::zeroize(&mut seed);
    let k = km.as_slice();
    ChildKeys {
        encr_i: Secret::from_slice(&k[..e]),
        integ_i: Secret::from_slice(&k[e..e + a]),
        encr_r: Secret::from_slice(&k[e + a..2 * e + a]),
        integ_r: Secret::from_slice(&k[2 * e + a..]),
    }
}

/// RFC 7296 2.15: what AUTH covers, a shared key's and a signature's:
/// <SignedOctets> = RealMessage | Nonce of the other side | prf(SK_p, IDx').
pub fn signed_octets(prf: Prf, real_message: &[u8], peer_nonce: &[u8], sk_p: &Secret, id_rest: &[u8]) -> Vec<u8> {
    let maced_id = prf.prf(sk_p.as_slice(), &[id_rest]);
    [real_message, peer_nonce, maced_id.as_slice()].concat()
}

/// RFC 7296 2.15: the AUTH value for a shared key over `signed`
/// ([`signed_octets`]): prf( prf(Shared Secret, "Key Pad for IKEv2"), <SignedOctets>).
pub fn psk_auth(prf: Prf, psk: &[u8], signed: &[u8]) -> Secret {
    let key = prf.prf(psk, &[b"Key Pad for IKEv2"]);
    prf.prf(key.as_slice(), &[signed])
}

/// RFC 7296 2.23: SHA-1(SPIi | SPIr | IP | Port).
pub fn natd_hash(spi_i: u64, spi_r: u64, addr: std::net::SocketAddr) -> Vec<u8> {
    let mut c = digest::Context::new(&digest::SHA1_FOR_LEGACY_USE_ONLY);
    c.update(&spi_i.to_be_bytes());
    c.update(&spi_r.to_be_bytes());
    match addr.ip() {
        std::net::IpAddr::V4(a) => c.update(&a.octets()),
        std::net::IpAddr::V6(a) => c.update(&a.octets()),
    }
    c.update(&addr.port().to_be_bytes());
    c.finish().as_ref().to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codepoints::DhGroup;

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    }

    /// Known answers from an independent implementation: strongSwan 5.9.8
    /// (Debian 12 charon-systemd) as IKE_SA_INIT responder in the interop
    /// lab, with its level-4 IKE log (`strongswan-peer.sh --keylog`), for
    /// proposal aes128gcm16-prfsha256-x25519. The log gives the nonces, the
    /// DH shared secret, the SPIs, SKEYSEED and every SK_x.
    #[test]
    fn ike_keys_match_strongswan() {
        let v = crate::crypto::keys::tests_vectors::STRONGSWAN_X25519;
        let suite = IkeSuite { encr: Encr::AesGcm16(128), prf: Prf::HmacSha256, integ: None, dh: DhGroup::Curve25519 };
        let g_ir = Secret::new(hex(v.g_ir));
        let seed = skeyseed(suite.prf, &hex(v.ni), &hex(v.nr), &g_ir);
        assert_eq!(seed.as_slice(), hex(v.skeyseed));
        let k = IkeKeys::derive(&suite, &seed, &hex(v.ni), &hex(v.nr), v.spi_i, v.spi_r);
        assert_eq!(k.sk_d.as_slice(), hex(v.sk_d));
        assert_eq!(k.sk_ei.as_slice(), hex(v.sk_ei));
        assert_eq!(k.sk_er.as_slice(), hex(v.sk_er));
        assert_eq!(k.sk_pi.as_slice(), hex(v.sk_pi));
        assert_eq!(k.sk_pr.as_slice(), hex(v.sk_pr));
        assert!(k.sk_ai.is_empty() && k.sk_ar.is_empty(), "AEAD: no integrity keys");
        // Without IKE_AUTH (a rebuild, a rekey): the same five, no SK_p.
        let r = IkeKeys::derive_without_auth(&suite, &seed, &hex(v.ni), &hex(v.nr), v.spi_i, v.spi_r);
        assert_eq!(
            (r.sk_d.as_slice(), r.sk_ei.as_slice(), r.sk_er.as_slice()),
            (k.sk_d.as_slice(), k.sk_ei.as_slice(), k.sk_er.as_slice())
        );
        assert!(r.sk_pi.is_empty() && r.sk_pr.is_empty() && r.sk_ai.is_empty());

        // The initiator's AUTH (RFC 7296 2.15): strongSwan logs the signed
        // octets, RealMessage1 | Nr | prf(SK_pi, IDi').
        let octets = hex(v.auth_octets_i);
        let (msg1, rest) = octets.split_at(octets.len() - 64);
        assert_eq!(&rest[..32], hex(v.nr).as_slice());
        let signed = signed_octets(suite.prf, msg1, &hex(v.nr), &k.sk_pi, &hex(v.idi_rest));
        assert_eq!(signed, octets, "the octets strongSwan signed");
        let auth = psk_auth(suite.prf, v.psk, &signed);
        assert_eq!(auth.as_slice(), hex(v.auth_i).as_slice());

        // The first child SA (no PFS): KEYMAT = prf+(SK_d, Ni | Nr).
        let c = child_keys(suite.prf, &k.sk_d, None, &hex(v.ni), &hex(v.nr), Encr::AesGcm16(128), None);
        assert_eq!(c.encr_i.as_slice(), hex(v.child_encr_i));
        assert_eq!(c.encr_r.as_slice(), hex(v.child_encr_r));
    }

    #[test]
    fn child_keymat_is_split_in_rfc_order() {
        let skd = Secret::new(vec![5; 32]);
        let ni = [1u8; 32];
        let nr = [2u8; 32];
        let k = child_keys(Prf::HmacSha256, &skd, None, &ni, &nr, Encr::AesCbc(128), Some(Integ::HmacSha256_128));
        let all = Prf::HmacSha256.prf_plus(&[5; 32], &[&ni[..], &nr[..]].concat(), 2 * (16 + 32));
        let a = all.as_slice();
        assert_eq!(k.encr_i.as_slice(), &a[..16]);
        assert_eq!(k.integ_i.as_slice(), &a[16..48]);
        assert_eq!(k.encr_r.as_slice(), &a[48..64]);
        assert_eq!(k.integ_r.as_slice(), &a[64..]);
    }
}

#[cfg(test)]
pub(crate) mod tests_vectors {
    pub struct IkeVector {
        pub ni: &'static str,
        pub nr: &'static str,
        pub g_ir: &'static str,
        pub spi_i: u64,
        pub spi_r: u64,
        pub skeyseed: &'static str,
        pub sk_d: &'static str,
        pub sk_ei: &'static str,
        pub sk_er: &'static str,
        pub sk_pi: &'static str,
        pub sk_pr: &'static str,
        pub idi_rest: &'static str,
        pub auth_octets_i: &'static str,
        pub auth_i: &'static str,
        pub psk: &'static [u8],
        pub child_encr_i: &'static str,
        pub child_encr_r: &'static str,
    }

    include!("strongswan_vectors.rs");
}
