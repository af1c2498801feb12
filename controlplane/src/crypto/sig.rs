//! Digital signatures for IKE_AUTH (RFC 7427): the hash algorithms a peer
//! announces in N(SIGNATURE_HASH_ALGORITHMS), the signature schemes we
//! sign and verify with, and the AUTH payload's body for method 14:
//!
//! ```text
//! ASN.1 length (1) | AlgorithmIdentifier (DER) | signature value
//! ```
//!
//! ECDSA values are DER Ecdsa-Sig-Value (RFC 7427 3, as RFC 3279 2.2.3);
//! RSASSA-PSS (RFC 8017 8.1) uses MGF1 with the same hash and a salt as
//! long as the hash. The peer's AlgorithmIdentifier is read with
//! x509-parser; ours are the RFC 7427 Appendix A encodings, checked in the
//! tests by parsing them back.

use std::fmt;

use x509_parser::oid_registry::{
    Oid, OID_NIST_HASH_SHA256, OID_NIST_HASH_SHA384, OID_NIST_HASH_SHA512, OID_PKCS1_RSASSAPSS,
    OID_PKCS1_SHA256WITHRSA, OID_PKCS1_SHA384WITHRSA, OID_PKCS1_SHA512WITHRSA, OID_SIG_ECDSA_WITH_SHA256,
    OID_SIG_ECDSA_WITH_SHA384, OID_SIG_ECDSA_WITH_SHA512,
};
use x509_parser::prelude::FromDer;
use x509_parser::signature_algorithm::SignatureAlgorithm;
use x509_parser::x509::AlgorithmIdentifier;

/// A hash algorithm of the RFC 7427 registry (IKEv2 Hash Algorithms).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SigHash {
    Sha256,
    Sha384,
    Sha512,
}

impl SigHash {
    /// Every hash we sign and verify with, in our order of preference.
    pub const ALL: [SigHash; 3] = [SigHash::Sha256, SigHash::Sha384, SigHash::Sha512];

    /// Its number in N(SIGNATURE_HASH_ALGORITHMS) (RFC 7427 7).
    pub fn id(self) -> u16 {
        match self {
            SigHash::Sha256 => 2,
            SigHash::Sha384 => 3,
            SigHash::Sha512 => 4,
        }
    }

    pub fn from_id(id: u16) -> Option<SigHash> {
        SigHash::ALL.into_iter().find(|h| h.id() == id)
    }

    fn oid(self) -> Oid<'static> {
        match self {
            SigHash::Sha256 => OID_NIST_HASH_SHA256,
            SigHash::Sha384 => OID_NIST_HASH_SHA384,
            SigHash::Sha512 => OID_NIST_HASH_SHA512,
        }
    }

    fn len(self) -> usize {
        match self {
            SigHash::Sha256 => 32,
            SigHash::Sha384 => 48,
            SigHash::Sha512 => 64,
        }
    }
}

/// The body of N(SIGNATURE_HASH_ALGORITHMS): a 16-bit number per hash.
pub fn hash_notify_data() -> Vec<u8> {
    SigHash::ALL.iter().flat_map(|h| h.id().to_be_bytes()).collect()
}

/// The hashes a peer's N(SIGNATURE_HASH_ALGORITHMS) names that we know
/// (others, such as Identity for EdDSA, are skipped). An odd length is
/// malformed.
pub fn parse_hash_notify(data: &[u8]) -> Result<Vec<SigHash>, SigError> {
    if data.len() % 2 != 0 {
        return Err(SigError::HashNotify(data.len()));
    }
    Ok(data.chunks_exact(2).filter_map(|c| SigHash::from_id(u16::from_be_bytes([c[0], c[1]]))).collect())
}

/// A signature scheme of AUTH method 14.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    Ecdsa(SigHash),
    RsaPss(SigHash),
    RsaPkcs1(SigHash),
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (name, h) = match self {
            Scheme::Ecdsa(h) => ("ecdsa", h),
            Scheme::RsaPss(h) => ("rsa-pss", h),
            Scheme::RsaPkcs1(h) => ("rsa-pkcs1", h),
        };
        let bits = match h {
            SigHash::Sha256 => 256,
            SigHash::Sha384 => 384,
            SigHash::Sha512 => 512,
        };
        write!(f, "{name}-sha{bits}")
    }
}

// RFC 7427 Appendix A: the AlgorithmIdentifier encodings.
const ECDSA_SHA256: &[u8] = &[0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02];
const ECDSA_SHA384: &[u8] = &[0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03];
const ECDSA_SHA512: &[u8] = &[0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x04];
const RSA_SHA256: &[u8] = &[0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b, 0x05, 0x00];
const RSA_SHA384: &[u8] = &[0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0c, 0x05, 0x00];
const RSA_SHA512: &[u8] = &[0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0d, 0x05, 0x00];

/// RSASSA-PSS-params (RFC 8017 A.2.3) for `h`: hashAlgorithm `h`,
/// maskGenAlgorithm MGF1 with `h`, saltLength the hash's length, the
/// default trailer. The octets differ between the hashes only in the
/// hash OID's last octet (twice) and the salt length.
fn rsa_pss(h: SigHash) -> [u8; 67] {
    let (oid_last, salt) = match h {
        SigHash::Sha256 => (0x01, 32),
        SigHash::Sha384 => (0x02, 48),
        SigHash::Sha512 => (0x03, 64),
    };
    #[rustfmt::skip]
    let der = [
        0x30, 0x41, // AlgorithmIdentifier
        0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0a, // id-RSASSA-PSS
        0x30, 0x34, // RSASSA-PSS-params
        0xa0, 0x0f, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, oid_last, 0x05, 0x00,
        0xa1, 0x1c, 0x30, 0x1a, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x08, // id-mgf1
        0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, oid_last, 0x05, 0x00,
        0xa2, 0x03, 0x02, 0x01, salt,
    ];
    der
}

impl Scheme {
    pub fn hash(self) -> SigHash {
        match self {
            Scheme::Ecdsa(h) | Scheme::RsaPss(h) | Scheme::RsaPkcs1(h) => h,
        }
    }

    /// Our AlgorithmIdentifier for it (DER).
    pub fn algorithm_identifier(self) -> Vec<u8> {
        match self {
            Scheme::Ecdsa(SigHash::Sha256) => ECDSA_SHA256.to_vec(),
            Scheme::Ecdsa(SigHash::Sha384) => ECDSA_SHA384.to_vec(),
            Scheme::Ecdsa(SigHash::Sha512) => ECDSA_SHA512.to_vec(),
            Scheme::RsaPkcs1(SigHash::Sha256) => RSA_SHA256.to_vec(),
            Scheme::RsaPkcs1(SigHash::Sha384) => RSA_SHA384.to_vec(),
            Scheme::RsaPkcs1(SigHash::Sha512) => RSA_SHA512.to_vec(),
            Scheme::RsaPss(h) => rsa_pss(h).to_vec(),
        }
    }

    /// The scheme a peer's AlgorithmIdentifier names. RSASSA-PSS is taken
    /// only with MGF1 over the same hash and a salt as long as the hash
    /// (what we verify).
    pub fn from_algorithm_identifier(der: &[u8]) -> Result<Scheme, SigError> {
        let (rest, alg) = AlgorithmIdentifier::from_der(der).map_err(|_| SigError::AlgorithmIdentifier)?;
        if !rest.is_empty() {
            return Err(SigError::AlgorithmIdentifier);
        }
        let oid = &alg.algorithm;
        let by_oid = [
            (OID_SIG_ECDSA_WITH_SHA256, Scheme::Ecdsa(SigHash::Sha256)),
            (OID_SIG_ECDSA_WITH_SHA384, Scheme::Ecdsa(SigHash::Sha384)),
            (OID_SIG_ECDSA_WITH_SHA512, Scheme::Ecdsa(SigHash::Sha512)),
            (OID_PKCS1_SHA256WITHRSA, Scheme::RsaPkcs1(SigHash::Sha256)),
            (OID_PKCS1_SHA384WITHRSA, Scheme::RsaPkcs1(SigHash::Sha384)),
            (OID_PKCS1_SHA512WITHRSA, Scheme::RsaPkcs1(SigHash::Sha512)),
        ];
        if let Some((_, s)) = by_oid.iter().find(|(o, _)| o == oid) {
            return Ok(*s);
        }
        if *oid != OID_PKCS1_RSASSAPSS {
            return Err(SigError::Unsupported(oid.to_id_string()));
        }
        let Ok(SignatureAlgorithm::RSASSA_PSS(p)) = SignatureAlgorithm::try_from(&alg) else {
            return Err(SigError::AlgorithmIdentifier);
        };
        let h = SigHash::ALL.into_iter().find(|h| *p.hash_algorithm_oid() == h.oid()).ok_or_else(|| {
            SigError::Unsupported(format!("RSASSA-PSS with {}", p.hash_algorithm_oid().to_id_string()))
        })?;
        let mgf_hash = p.mask_gen_algorithm().ok().map(|m| m.hash.clone());
        if mgf_hash.as_ref() != Some(&h.oid()) || p.salt_length() as usize != h.len() {
            return Err(SigError::Unsupported(format!(
                "RSASSA-PSS {} with other MGF1 or salt parameters",
                Scheme::RsaPss(h)
            )));
        }
        Ok(Scheme::RsaPss(h))
    }

    /// The verification algorithms (rustls-webpki over aws-lc-rs) that
    /// can check it; which one fits is the certificate's key's business.
    pub fn verifiers(self) -> Vec<&'static dyn rustls_pki_types::SignatureVerificationAlgorithm> {
        use webpki::aws_lc_rs as v;
        match self {
            Scheme::Ecdsa(SigHash::Sha256) => vec![v::ECDSA_P256_SHA256, v::ECDSA_P384_SHA256, v::ECDSA_P521_SHA256],
            Scheme::Ecdsa(SigHash::Sha384) => vec![v::ECDSA_P256_SHA384, v::ECDSA_P384_SHA384, v::ECDSA_P521_SHA384],
            Scheme::Ecdsa(SigHash::Sha512) => vec![v::ECDSA_P256_SHA512, v::ECDSA_P384_SHA512, v::ECDSA_P521_SHA512],
            Scheme::RsaPss(SigHash::Sha256) => vec![v::RSA_PSS_2048_8192_SHA256_LEGACY_KEY],
            Scheme::RsaPss(SigHash::Sha384) => vec![v::RSA_PSS_2048_8192_SHA384_LEGACY_KEY],
            Scheme::RsaPss(SigHash::Sha512) => vec![v::RSA_PSS_2048_8192_SHA512_LEGACY_KEY],
            Scheme::RsaPkcs1(SigHash::Sha256) => vec![v::RSA_PKCS1_2048_8192_SHA256],
            Scheme::RsaPkcs1(SigHash::Sha384) => vec![v::RSA_PKCS1_2048_8192_SHA384],
            Scheme::RsaPkcs1(SigHash::Sha512) => vec![v::RSA_PKCS1_2048_8192_SHA512],
        }
    }
}

/// AUTH method 14's body (RFC 7427 3).
pub fn auth_data(scheme: Scheme, signature: &[u8]) -> Vec<u8> {
    let alg = scheme.algorithm_identifier();
    let mut out = Vec::with_capacity(1 + alg.len() + signature.len());
    out.push(u8::try_from(alg.len()).expect("our AlgorithmIdentifiers are short"));
    out.extend_from_slice(&alg);
    out.extend_from_slice(signature);
    out
}

/// The scheme and signature value of a method 14 AUTH body.
pub fn parse_auth_data(data: &[u8]) -> Result<(Scheme, &[u8]), SigError> {
    let (&n, rest) = data.split_first().ok_or(SigError::Truncated)?;
    let n = usize::from(n);
    if rest.len() <= n {
        return Err(SigError::Truncated);
    }
    let (alg, sig) = rest.split_at(n);
    Ok((Scheme::from_algorithm_identifier(alg)?, sig))
}

/// Why a signature or its framing was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SigError {
    #[error("SIGNATURE_HASH_ALGORITHMS of {0} octets (not 16-bit numbers)")]
    HashNotify(usize),
    #[error("the AUTH payload ends inside its AlgorithmIdentifier or has no signature")]
    Truncated,
    #[error("the AUTH payload's AlgorithmIdentifier does not parse")]
    AlgorithmIdentifier,
    #[error("signature algorithm {0} is not one we verify")]
    Unsupported(String),
    #[error("signed with {0}, a hash we did not announce")]
    HashNotOffered(Scheme),
    #[error("the signature does not verify with the certificate's key ({0})")]
    Bad(Scheme),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc7427_a_every_algorithm_identifier_parses_back_to_its_scheme() {
        for h in SigHash::ALL {
            for s in [Scheme::Ecdsa(h), Scheme::RsaPss(h), Scheme::RsaPkcs1(h)] {
                let der = s.algorithm_identifier();
                assert_eq!(Scheme::from_algorithm_identifier(&der), Ok(s), "{s}");
                let body = auth_data(s, &[1, 2, 3]);
                assert_eq!(parse_auth_data(&body), Ok((s, &[1u8, 2, 3][..])));
            }
        }
    }

    #[test]
    fn rfc7427_3_malformed_auth_bodies_are_typed_errors() {
        assert_eq!(parse_auth_data(&[]), Err(SigError::Truncated));
        assert_eq!(parse_auth_data(&[12]), Err(SigError::Truncated));
        // The AlgorithmIdentifier with nothing after it: no signature.
        let mut b = vec![ECDSA_SHA256.len() as u8];
        b.extend_from_slice(ECDSA_SHA256);
        assert_eq!(parse_auth_data(&b), Err(SigError::Truncated));
        // A length that cuts the AlgorithmIdentifier short.
        let mut b = vec![5];
        b.extend_from_slice(ECDSA_SHA256);
        b.push(0);
        assert_eq!(parse_auth_data(&b), Err(SigError::AlgorithmIdentifier));
        // sha1WithRSAEncryption (RFC 7427 A.1.1): known, not accepted.
        let sha1 = [0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x05, 0x05, 0x00];
        let mut b = vec![sha1.len() as u8];
        b.extend_from_slice(&sha1);
        b.push(0);
        assert!(matches!(parse_auth_data(&b), Err(SigError::Unsupported(_))));
        // RSASSA-PSS with a 20-octet salt over SHA-256: not what we verify.
        let mut pss = rsa_pss(SigHash::Sha256);
        *pss.last_mut().unwrap() = 20;
        assert!(matches!(Scheme::from_algorithm_identifier(&pss), Err(SigError::Unsupported(_))));
    }

    #[test]
    fn rfc7427_4_hash_notify_round_trip_skips_unknown_and_refuses_odd_lengths() {
        assert_eq!(parse_hash_notify(&hash_notify_data()), Ok(SigHash::ALL.to_vec()));
        // SHA1 (1) and Identity (5) are skipped.
        assert_eq!(parse_hash_notify(&[0, 1, 0, 3, 0, 5]), Ok(vec![SigHash::Sha384]));
        assert_eq!(parse_hash_notify(&[0, 2, 0]), Err(SigError::HashNotify(3)));
    }
}
