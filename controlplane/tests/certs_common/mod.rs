//! Certificates for the in-memory tests, made with rcgen: a CA, and end
//! entities for a name, an address or `user@domain`.
#![allow(dead_code)]

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, SanType, SignatureAlgorithm};

pub struct Ca {
    pub cert: rcgen::Certificate,
    pub key: KeyPair,
    pub path: PathBuf,
}

pub fn ca(dir: &Path, name: &str) -> Ca {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name.push(DnType::CommonName, format!("{name} Root CA"));
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let cert = p.self_signed(&key).unwrap();
    let path = dir.join(format!("{name}-ca.pem"));
    std::fs::write(&path, cert.pem()).unwrap();
    Ca { cert, key, path }
}

pub fn rsa_key() -> KeyPair {
    let k = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
    let der = aws_lc_rs::encoding::AsDer::<aws_lc_rs::encoding::Pkcs8V1Der>::as_der(&k).unwrap();
    let der = rustls_pki_types::PrivatePkcs8KeyDer::from(der.as_ref().to_vec());
    KeyPair::from_pkcs8_der_and_sign_algo(&der, &rcgen::PKCS_RSA_SHA256).unwrap()
}

/// Writes a certificate for `san` (a name, `user@domain` or an address)
/// issued by `ca`, and its key; returns (cert, key) paths.
pub fn issue(
    dir: &Path,
    ca: &Ca,
    file: &str,
    san: &str,
    alg: Option<&'static SignatureAlgorithm>,
    edit: impl FnOnce(&mut CertificateParams),
) -> (PathBuf, PathBuf) {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name.push(DnType::CommonName, san);
    p.subject_alt_names.push(match san.parse::<IpAddr>() {
        Ok(a) => SanType::IpAddress(a),
        Err(_) if san.contains('@') => SanType::Rfc822Name(san.try_into().unwrap()),
        Err(_) => SanType::DnsName(san.try_into().unwrap()),
    });
    edit(&mut p);
    let key = match alg {
        Some(a) => KeyPair::generate_for(a).unwrap(),
        None => rsa_key(),
    };
    let cert = p.signed_by(&key, &ca.cert, &ca.key).unwrap();
    let (c, k) = (dir.join(format!("{file}.pem")), dir.join(format!("{file}.key")));
    std::fs::write(&c, cert.pem()).unwrap();
    std::fs::write(&k, key.serialize_pem()).unwrap();
    (c, k)
}

pub fn pubkey(cert: &Path, key: &Path, ca: &Path, extra: &str) -> String {
    format!(
        "auth = \"pubkey\"\ncert = \"{}\"\nkey = \"{}\"\ncas = [\"{}\"]\n{extra}",
        cert.display(),
        key.display(),
        ca.display()
    )
}

pub fn unix() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}
