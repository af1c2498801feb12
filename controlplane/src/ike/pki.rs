//! Certificates for IKE_AUTH (RFC 7296 2.15, 3.6, 3.7; RFC 7427): our own
//! credential (a certificate chain and its private key, from PEM files),
//! the CAs and CRLs we trust, and the check of a peer's chain and identity.
//! Path building, validity times, revocation and signature checks are
//! rustls-webpki's (over aws-lc-rs); names and the subject shown to
//! operators are x509-parser's; signing is aws-lc-rs's. No ASN.1 here.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self as lc, EcdsaKeyPair, KeyPair, RsaKeyPair};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{
    CertificateDer, CertificateRevocationListDer, PrivateKeyDer, ServerName, TrustAnchor, UnixTime,
};
use webpki::{
    CertRevocationList, EndEntityCert, ExtendedKeyUsageValidator, KeyPurposeId, KeyPurposeIdIter,
    OwnedCertRevocationList, RevocationCheckDepth, RevocationOptionsBuilder, UnknownStatusPolicy,
};
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};
use zeroize::Zeroizing;

use crate::codepoints::IdType;
use crate::crypto::sig::{Scheme, SigError, SigHash};
use crate::wire::Identification;

/// Our certificate chain (end entity first) and its private key.
pub struct Credential {
    pub chain: Vec<CertificateDer<'static>>,
    key: SigningKey,
    /// The end entity's subject, as operators read it.
    pub subject: String,
    /// Its subject DN (DER): our identity when none is configured.
    pub subject_der: Vec<u8>,
    pub not_after: i64,
    pub path: PathBuf,
}

enum SigningKey {
    /// The hash goes with the curve (P-256: SHA-256, P-384: SHA-384,
    /// P-521: SHA-512), as RFC 9206 pairs them for CNSA.
    Ecdsa(EcdsaKeyPair, SigHash),
    Rsa(RsaKeyPair, bool),
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credential({}, {})", self.path.display(), self.subject)
    }
}

impl PartialEq for Credential {
    /// The same certificates and the same key (its public half).
    fn eq(&self, o: &Credential) -> bool {
        self.chain == o.chain && self.public_key() == o.public_key()
    }
}

const P256: (&lc::EcdsaSigningAlgorithm, SigHash) = (&lc::ECDSA_P256_SHA256_ASN1_SIGNING, SigHash::Sha256);
const P384: (&lc::EcdsaSigningAlgorithm, SigHash) = (&lc::ECDSA_P384_SHA384_ASN1_SIGNING, SigHash::Sha384);
const P521: (&lc::EcdsaSigningAlgorithm, SigHash) = (&lc::ECDSA_P521_SHA512_ASN1_SIGNING, SigHash::Sha512);

/// The certificates of a PEM file, in order.
pub fn read_certs(path: &Path, what: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("{what} {}: {e}", path.display()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{what} {}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{what} {}: no certificate in it", path.display()));
    }
    Ok(certs)
}

fn x509<'a>(der: &'a [u8], what: &str) -> Result<X509Certificate<'a>, String> {
    X509Certificate::from_der(der).map(|(_, c)| c).map_err(|e| format!("{what}: not an X.509 certificate: {e}"))
}

impl Credential {
    /// Reads `cert` (PEM: ours, then intermediates) and `key` (PEM:
    /// PKCS#8, SEC1 or PKCS#1), and checks that the key is the
    /// certificate's. `rsa_pss`: an RSA key signs with RSASSA-PSS, else
    /// PKCS#1 v1.5.
    pub fn load(cert: &Path, key: &Path, rsa_pss: bool) -> Result<Credential, String> {
        let chain = read_certs(cert, "cert")?;
        let ee = x509(&chain[0], &format!("cert {}", cert.display()))?;
        let key_name = format!("key {}", key.display());
        let der = Zeroizing::new(PrivateKeyDer::from_pem_file(key).map_err(|e| format!("{key_name}: {e}"))?);
        let ecdsa = |f: &dyn Fn(&'static lc::EcdsaSigningAlgorithm) -> Option<EcdsaKeyPair>| {
            [P256, P384, P521].into_iter().find_map(|(alg, h)| f(alg).map(|k| SigningKey::Ecdsa(k, h)))
        };
        let signing = match &*der {
            PrivateKeyDer::Pkcs8(k) => ecdsa(&|alg| EcdsaKeyPair::from_pkcs8(alg, k.secret_pkcs8_der()).ok())
                .or_else(|| RsaKeyPair::from_pkcs8(k.secret_pkcs8_der()).ok().map(|k| SigningKey::Rsa(k, rsa_pss))),
            PrivateKeyDer::Sec1(k) => ecdsa(&|alg| EcdsaKeyPair::from_private_key_der(alg, k.secret_sec1_der()).ok()),
            PrivateKeyDer::Pkcs1(k) => {
                RsaKeyPair::from_der(k.secret_pkcs1_der()).ok().map(|k| SigningKey::Rsa(k, rsa_pss))
            }
            _ => None,
        }
        .ok_or_else(|| format!("{key_name}: not an ECDSA (P-256, P-384, P-521) or RSA private key"))?;
        let c = Credential {
            subject: ee.subject().to_string(),
            subject_der: ee.subject().as_raw().to_vec(),
            not_after: ee.validity().not_after.timestamp(),
            key: signing,
            path: cert.to_path_buf(),
            chain: chain.clone(),
        };
        if c.public_key() != ee.public_key().subject_public_key.data.as_ref() {
            return Err(format!("{key_name}: not the key of cert {} ({})", cert.display(), c.subject));
        }
        Ok(c)
    }

    fn public_key(&self) -> &[u8] {
        match &self.key {
            SigningKey::Ecdsa(k, _) => k.public_key().as_ref(),
            SigningKey::Rsa(k, _) => k.public_key().as_ref(),
        }
    }

    /// The scheme to sign with for a peer that announced `peer` (RFC
    /// 7427 4: a hash it listed); None: nothing in common.
    pub fn choose(&self, peer: &[SigHash]) -> Option<Scheme> {
        match &self.key {
            SigningKey::Ecdsa(_, h) => peer.contains(h).then_some(Scheme::Ecdsa(*h)),
            SigningKey::Rsa(_, pss) => SigHash::ALL.into_iter().find(|h| peer.contains(h)).map(|h| {
                if *pss {
                    Scheme::RsaPss(h)
                } else {
                    Scheme::RsaPkcs1(h)
                }
            }),
        }
    }

    /// Signs `msg` with `scheme` (one [`Credential::choose`] gave).
    pub fn sign(&self, scheme: Scheme, msg: &[u8]) -> Vec<u8> {
        let rng = SystemRandom::new();
        match &self.key {
            SigningKey::Ecdsa(k, _) => k.sign(&rng, msg).expect("ECDSA signing does not fail").as_ref().to_vec(),
            SigningKey::Rsa(k, _) => {
                let pad: &'static dyn lc::RsaEncoding = match scheme {
                    Scheme::RsaPss(SigHash::Sha256) => &lc::RSA_PSS_SHA256,
                    Scheme::RsaPss(SigHash::Sha384) => &lc::RSA_PSS_SHA384,
                    Scheme::RsaPss(SigHash::Sha512) => &lc::RSA_PSS_SHA512,
                    Scheme::RsaPkcs1(SigHash::Sha384) => &lc::RSA_PKCS1_SHA384,
                    Scheme::RsaPkcs1(SigHash::Sha512) => &lc::RSA_PKCS1_SHA512,
                    _ => &lc::RSA_PKCS1_SHA256,
                };
                let mut sig = vec![0; k.public_modulus_len()];
                k.sign(pad, &rng, msg, &mut sig).expect("RSA signing does not fail");
                sig
            }
        }
    }
}

/// A trusted CA as `gwctl certs` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaInfo {
    pub path: PathBuf,
    pub subject: String,
    pub not_after: i64,
    /// SHA-1 of its SubjectPublicKeyInfo: what CERTREQ names it by (3.7).
    pub spki_sha1: [u8; 20],
}

/// The CAs and CRLs a connection trusts.
#[derive(Debug)]
pub struct Trust {
    anchors: Vec<TrustAnchor<'static>>,
    pub cas: Vec<CaInfo>,
    crls: Vec<CertRevocationList<'static>>,
    pub crl_paths: Vec<PathBuf>,
}

impl PartialEq for Trust {
    fn eq(&self, o: &Trust) -> bool {
        self.cas == o.cas && self.crl_paths == o.crl_paths
    }
}

/// Extended key usage (RFC 4945 5.1.3.12): a certificate without one is
/// fine; one with it must allow IKE (ipsecIKE, serverAuth, clientAuth or
/// anyExtendedKeyUsage).
struct IkeEku;

const EKU_OK: [&[u8]; 4] = [
    &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x11], // id-kp-ipsecIKE
    &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x01], // id-kp-serverAuth
    &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x02], // id-kp-clientAuth
    &[0x55, 0x1d, 0x25, 0x00],                         // anyExtendedKeyUsage
];

// The plain error: the context one wants the EKUs we looked for as
// webpki's own key purposes.
#[allow(deprecated)]
impl ExtendedKeyUsageValidator for IkeEku {
    fn validate(&self, iter: KeyPurposeIdIter<'_, '_>) -> Result<(), webpki::Error> {
        let mut any = false;
        for p in iter {
            let p = p?;
            any = true;
            if EKU_OK.iter().any(|o| p == KeyPurposeId::new(o)) {
                return Ok(());
            }
        }
        if any {
            Err(webpki::Error::RequiredEkuNotFound)
        } else {
            Ok(())
        }
    }
}

/// A peer's certificate once its chain and identity checked out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerCert {
    pub subject: String,
    pub not_after: i64,
    pub der: Vec<u8>,
}

/// Why a peer's certificate was refused (AUTHENTICATION_FAILED, with this
/// in the log).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertError {
    #[error("no certificate (CERT payload of encoding 4) was sent")]
    None,
    #[error("its certificate does not parse: {0}")]
    Parse(String),
    #[error("no wall-clock time to check validity against")]
    NoTime,
    #[error("certificate {subject}: {why}")]
    Chain { subject: String, why: String },
    #[error("certificate {subject} is not for identity {id}")]
    Identity { subject: String, id: String },
    #[error("certificate {subject}: {why}")]
    Signature { subject: String, why: SigError },
}

impl Trust {
    /// Reads the CA certificates and CRLs (PEM files); every failure names
    /// its file.
    pub fn load(cas: &[PathBuf], crls: &[PathBuf]) -> Result<Trust, String> {
        let mut t = Trust { anchors: Vec::new(), cas: Vec::new(), crls: Vec::new(), crl_paths: crls.to_vec() };
        for p in cas {
            for der in read_certs(p, "ca")? {
                let what = format!("ca {}", p.display());
                let c = x509(&der, &what)?;
                let a = webpki::anchor_from_trusted_cert(&der).map_err(|e| format!("{what}: {e:?}"))?.to_owned();
                t.anchors.push(a);
                let spki = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, c.public_key().raw);
                let mut h = [0u8; 20];
                h.copy_from_slice(spki.as_ref());
                t.cas.push(CaInfo {
                    path: p.clone(),
                    subject: c.subject().to_string(),
                    not_after: c.validity().not_after.timestamp(),
                    spki_sha1: h,
                });
            }
        }
        for p in crls {
            let what = format!("crl {}", p.display());
            let ders = CertificateRevocationListDer::pem_file_iter(p)
                .map_err(|e| format!("{what}: {e}"))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("{what}: {e}"))?;
            if ders.is_empty() {
                return Err(format!("{what}: no CRL in it"));
            }
            for d in ders {
                let crl = OwnedCertRevocationList::from_der(&d).map_err(|e| format!("{what}: {e:?}"))?;
                t.crls.push(CertRevocationList::Owned(crl));
            }
        }
        Ok(t)
    }

    pub fn is_empty(&self) -> bool {
        self.anchors.is_empty()
    }

    /// CERTREQ's Certification Authority field (RFC 7296 3.7): the SHA-1
    /// of each trusted CA's SubjectPublicKeyInfo, concatenated.
    pub fn certreq_data(&self) -> Vec<u8> {
        self.cas.iter().flat_map(|c| c.spki_sha1).collect()
    }

    /// Checks a peer's certificates (end entity first, then whatever
    /// intermediates it sent): a chain to one of our CAs valid at `unix`
    /// (seconds), not revoked by our CRLs, naming `id`.
    pub fn verify(&self, certs: &[Vec<u8>], id: &Identification, unix: Option<u64>) -> Result<PeerCert, CertError> {
        let ders: Vec<CertificateDer<'_>> = certs.iter().map(|c| CertificateDer::from(c.as_slice())).collect();
        let ee_der = ders.first().ok_or(CertError::None)?;
        let parsed = x509(ee_der, "peer").map_err(CertError::Parse)?;
        let subject = parsed.subject().to_string();
        let ee = EndEntityCert::try_from(ee_der).map_err(|e| CertError::Parse(format!("{e:?}")))?;
        let time = UnixTime::since_unix_epoch(Duration::from_secs(unix.ok_or(CertError::NoTime)?));
        let crls: Vec<&CertRevocationList<'_>> = self.crls.iter().collect();
        let revocation = RevocationOptionsBuilder::new(&crls)
            .ok()
            .map(|b| b.with_depth(RevocationCheckDepth::Chain).with_status_policy(UnknownStatusPolicy::Allow).build());
        let chain_err = |why: String| CertError::Chain { subject: subject.clone(), why };
        ee.verify_for_usage(webpki::ALL_VERIFICATION_ALGS, &self.anchors, &ders[1..], time, IkeEku, revocation, None)
            .map_err(|e| chain_err(chain_why(&e)))?;
        if !names(&ee, &parsed, id) {
            return Err(CertError::Identity { subject, id: id.to_text() });
        }
        Ok(PeerCert { subject, not_after: parsed.validity().not_after.timestamp(), der: certs[0].clone() })
    }
}

#[allow(deprecated)]
fn chain_why(e: &webpki::Error) -> String {
    use webpki::Error as E;
    match e {
        E::CertExpired { .. } => "expired".into(),
        E::CertNotValidYet { .. } => "not valid yet".into(),
        E::CertRevoked => "revoked by a CRL we hold".into(),
        E::UnknownIssuer => "no chain to a CA we trust".into(),
        E::InvalidSignatureForPublicKey => "wrongly signed (its issuer's signature does not verify)".into(),
        E::RequiredEkuNotFound | E::RequiredEkuNotFoundContext(_) => {
            "its extended key usage does not allow IKE (RFC 4945 5.1.3.12)".into()
        }
        other => format!("{other:?}"),
    }
}

/// Whether the certificate is for identity `id` (RFC 4945 3.1: an address
/// or a name in subjectAltName, or the DN as its subject).
fn names(ee: &EndEntityCert<'_>, parsed: &X509Certificate<'_>, id: &Identification) -> bool {
    match id.ty {
        IdType::Fqdn => std::str::from_utf8(&id.data)
            .ok()
            .and_then(|s| ServerName::try_from(s.to_string()).ok())
            .is_some_and(|n| matches!(n, ServerName::DnsName(_)) && ee.verify_is_valid_for_subject_name(&n).is_ok()),
        IdType::Ipv4Addr | IdType::Ipv6Addr => {
            let addr = match id.data.len() {
                4 => IpAddr::from(<[u8; 4]>::try_from(&id.data[..]).expect("4 octets")),
                16 => IpAddr::from(<[u8; 16]>::try_from(&id.data[..]).expect("16 octets")),
                _ => return false,
            };
            ee.verify_is_valid_for_subject_name(&ServerName::IpAddress(addr.into())).is_ok()
        }
        IdType::Rfc822Addr => parsed.subject_alternative_name().ok().flatten().is_some_and(|san| {
            san.value
                .general_names
                .iter()
                .any(|g| matches!(g, GeneralName::RFC822Name(m) if m.as_bytes().eq_ignore_ascii_case(&id.data)))
        }),
        IdType::DerAsn1Dn => parsed.subject().as_raw() == id.data.as_slice(),
        _ => false,
    }
}

/// Verifies a method 14 signature `sig` made with `scheme` over `msg` by
/// the key of certificate `ee`.
pub fn verify_signature(ee: &[u8], scheme: Scheme, msg: &[u8], sig: &[u8]) -> Result<(), SigError> {
    let der = CertificateDer::from(ee);
    let ee = EndEntityCert::try_from(&der).map_err(|_| SigError::Bad(scheme))?;
    if scheme.verifiers().iter().any(|alg| ee.verify_signature(*alg, msg, sig).is_ok()) {
        Ok(())
    } else {
        Err(SigError::Bad(scheme))
    }
}

/// The subject of a DN identity as text (x509-parser's rendering).
pub fn dn_text(der: &[u8]) -> Option<String> {
    x509_parser::x509::X509Name::from_der(der).ok().map(|(_, n)| n.to_string())
}

/// Whether a peer's identity `got` is the configured `want`: the same, or
/// a DN identity whose subject reads as `want` written as text ("C=CH,
/// O=Lab, CN=a"; spaces after the commas do not matter).
pub fn id_matches(want: &Identification, got: &Identification) -> bool {
    if want == got {
        return true;
    }
    let squash = |s: &str| s.split(',').map(str::trim).collect::<Vec<_>>().join(",");
    // A DN written in a config reads as a name (or, with an '@' in it, as
    // an RFC 822 name): compare it as text.
    matches!(want.ty, IdType::Fqdn | IdType::Rfc822Addr)
        && got.ty == IdType::DerAsn1Dn
        && std::str::from_utf8(&want.data).is_ok_and(|w| dn_text(&got.data).is_some_and(|g| squash(w) == squash(&g)))
}
