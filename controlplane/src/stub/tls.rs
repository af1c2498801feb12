//! Mutual TLS for the stub signaling (issue 20): gateways and stub banks
//! each present a certificate from their config and accept only peers
//! whose certificate chains to the cluster's CA. A client checks the
//! server's certificate against the address it dialled (an IP address
//! subjectAltName) or the name configured for it. TLS 1.3 and 1.2, the
//! rustls defaults; the sealed stubs inside stay sealed.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use serde::Deserialize;

/// The files of one end: its chain, its key, and the CA it trusts (PEM).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFiles {
    /// Our certificate (and intermediates), PEM.
    pub cert: PathBuf,
    /// Our private key (PKCS#8, SEC1 or PKCS#1), PEM.
    pub key: PathBuf,
    /// The CA certificate(s) that sign every member of the cluster, PEM.
    pub ca: PathBuf,
}

fn certs(p: &Path, what: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let c: Vec<_> = CertificateDer::pem_file_iter(p)
        .map_err(|e| format!("{what} {}: {e}", p.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{what} {}: {e}", p.display()))?;
    if c.is_empty() {
        return Err(format!("{what} {}: no PEM certificate in it", p.display()));
    }
    Ok(c)
}

fn roots(p: &Path) -> Result<Arc<RootCertStore>, String> {
    let mut r = RootCertStore::empty();
    for c in certs(p, "tls ca")? {
        r.add(c).map_err(|e| format!("tls ca {}: {e}", p.display()))?;
    }
    Ok(Arc::new(r))
}

fn key(p: &Path) -> Result<PrivateKeyDer<'static>, String> {
    PrivateKeyDer::from_pem_file(p).map_err(|e| format!("tls key {}: {e}", p.display()))
}

impl TlsFiles {
    /// The server side: our certificate, client certificates required.
    pub fn server(&self) -> Result<Arc<ServerConfig>, String> {
        let verifier = WebPkiClientVerifier::builder(roots(&self.ca)?)
            .build()
            .map_err(|e| format!("tls ca {}: {e}", self.ca.display()))?;
        let c = ServerConfig::builder()
            .with_client_cert_verifier(verifier)
            .with_single_cert(certs(&self.cert, "tls cert")?, key(&self.key)?)
            .map_err(|e| format!("tls cert {} / key {}: {e}", self.cert.display(), self.key.display()))?;
        Ok(Arc::new(c))
    }

    /// The client side: the server checked against the CA, our
    /// certificate presented.
    pub fn client(&self) -> Result<Arc<ClientConfig>, String> {
        let c = ClientConfig::builder()
            .with_root_certificates(roots(&self.ca)?)
            .with_client_auth_cert(certs(&self.cert, "tls cert")?, key(&self.key)?)
            .map_err(|e| format!("tls cert {} / key {}: {e}", self.cert.display(), self.key.display()))?;
        Ok(Arc::new(c))
    }
}

/// The name a client checks the server's certificate against: `name`
/// when configured, else the address dialled.
pub fn server_name(name: Option<&str>, addr: IpAddr) -> Result<ServerName<'static>, String> {
    match name {
        Some(n) => ServerName::try_from(n.to_string()).map_err(|e| format!("tls server name {n:?}: {e}")),
        None => Ok(ServerName::IpAddress(addr.into())),
    }
}

#[cfg(test)]
pub mod testing {
    //! A CA and certificates for tests, made with rcgen.
    use std::path::Path;

    use super::TlsFiles;

    /// Writes a CA and one certificate per name (IP address SANs for
    /// names that parse as addresses) under `dir`; returns each end's files.
    pub fn cluster(dir: &Path, names: &[&str]) -> Vec<TlsFiles> {
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca_key = rcgen::KeyPair::generate().expect("key");
        let ca = ca_params.self_signed(&ca_key).expect("ca");
        std::fs::write(dir.join("ca.pem"), ca.pem()).expect("write");
        names
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let p = rcgen::CertificateParams::new(vec![n.to_string()]).expect("params");
                let k = rcgen::KeyPair::generate().expect("key");
                let c = p.signed_by(&k, &ca, &ca_key).expect("cert");
                let (cert, key) = (dir.join(format!("c{i}.pem")), dir.join(format!("k{i}.pem")));
                std::fs::write(&cert, c.pem()).expect("write");
                std::fs::write(&key, k.serialize_pem()).expect("write");
                TlsFiles { cert, key, ca: dir.join("ca.pem") }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configs_load_from_pem_files() {
        let d = tempfile::tempdir().expect("tmp");
        let f = testing::cluster(d.path(), &["127.0.0.1"]);
        assert!(f[0].server().is_ok());
        assert!(f[0].client().is_ok());
    }

    #[test]
    fn missing_or_empty_files_are_named() {
        let d = tempfile::tempdir().expect("tmp");
        let mut f = testing::cluster(d.path(), &["127.0.0.1"]).remove(0);
        std::fs::write(d.path().join("empty.pem"), "").expect("write");
        f.ca = d.path().join("empty.pem");
        let e = f.server().expect_err("no CA");
        assert!(e.contains("empty.pem") && e.contains("tls ca"), "{e}");
        f.ca = d.path().join("nope.pem");
        assert!(f.client().expect_err("no file").contains("nope.pem"));
    }

    #[test]
    fn server_names() {
        assert!(matches!(server_name(None, "10.0.0.1".parse().unwrap()), Ok(ServerName::IpAddress(_))));
        assert!(server_name(Some("bank.example"), "10.0.0.1".parse().unwrap()).is_ok());
        assert!(server_name(Some("bad name!"), "10.0.0.1".parse().unwrap()).is_err());
    }
}
