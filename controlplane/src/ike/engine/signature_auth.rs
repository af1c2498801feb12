//! The AUTH payload both ways (RFC 7296 2.15): ours, made with the
//! connection's PSK or its certificate's key (RFC 7427 digital signature,
//! method 14, with CERT payloads when the peer asked or the connection
//! always sends them, 3.6), and the check of the peer's against a
//! connection: its PSK, or its CAs, CRLs and the signature.
//!
//! ```text
//! SignedOctets(initiator) = IKE_SA_INIT request | Nr | prf(SK_pi, IDi')
//! SignedOctets(responder) = IKE_SA_INIT response | Ni | prf(SK_pr, IDr')
//! ```
//!
//! Both sides announce SIGNATURE_HASH_ALGORITHMS in IKE_SA_INIT (RFC 7427
//! 4) when a connection of theirs uses certificates; a signer picks a hash
//! the other side named.

use std::time::Instant;

use super::sa::{Authenticating, Core};
use super::{AuthFailure, Engine, Error};
use crate::codepoints::{AuthMethod, NotifyType};
use crate::crypto::keys;
use crate::crypto::sig::{self, SigHash};
use crate::ike::config::{AuthKind, Connection, SendCert};
use crate::ike::pki::{self, PeerCert};
use crate::wire::{Authentication, Certificate, Identification, Notify, Payload};

/// CERT and CERTREQ encoding 4: X.509 Certificate - Signature (RFC 7296 3.6).
pub(super) const X509_SIGNATURE: u8 = 4;

/// Whose AUTH: which IKE_SA_INIT message, nonce and SK_p it signs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Signer {
    Initiator,
    Responder,
}

fn octets(sa: &Core, a: &Authenticating, who: Signer, id: &Identification) -> Vec<u8> {
    let rest = id.rest_of_payload();
    match who {
        Signer::Initiator => keys::signed_octets(sa.suite.prf, &a.init_request, &a.nr, &sa.keys.sk_pi, &rest),
        Signer::Responder => keys::signed_octets(sa.suite.prf, &a.init_response, &a.ni, &sa.keys.sk_pr, &rest),
    }
}

/// N(SIGNATURE_HASH_ALGORITHMS) when `uses_certs`.
pub(super) fn hash_notify(uses_certs: bool) -> Option<Payload> {
    uses_certs.then(|| Payload::Notify(Notify::new(NotifyType::SignatureHashAlgorithms, sig::hash_notify_data())))
}

/// The hashes a peer's IKE_SA_INIT named (none: it signs nothing by RFC
/// 7427, or it sent a malformed list, which is the same to us).
pub(super) fn peer_hashes(p: &[Payload]) -> Vec<SigHash> {
    super::payloads::notify(p, NotifyType::SignatureHashAlgorithms)
        .and_then(|n| sig::parse_hash_notify(&n.data).ok())
        .unwrap_or_default()
}

/// Whether connection `c` involves certificates either way.
pub(super) fn uses_certs(c: &Connection) -> bool {
    !c.retired && (c.auth == AuthKind::Pubkey || c.remote_auth == AuthKind::Pubkey)
}

/// A CERTREQ naming `c`'s CAs (3.7), when it checks certificates.
pub(super) fn certreq(c: &Connection) -> Option<Payload> {
    let t = c.trust.as_ref().filter(|_| c.remote_auth == AuthKind::Pubkey)?;
    Some(Payload::CertReq(Certificate { encoding: X509_SIGNATURE, data: t.certreq_data() }))
}

/// Whether the peer's messages asked for our certificate.
pub(super) fn cert_asked(p: &[Payload]) -> bool {
    p.iter().any(|x| matches!(x, Payload::CertReq(c) if c.encoding == X509_SIGNATURE))
}

impl Engine {
    /// Our AUTH for connection `ci`, and the CERT payloads to go before it
    /// (`asked`: the peer sent a CERTREQ). `peer`: the peer's identity when
    /// known, for its own PSK.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn our_auth(
        &self,
        ci: usize,
        sa: &Core,
        a: &Authenticating,
        who: Signer,
        ours: &Identification,
        peer: Option<&Identification>,
        asked: bool,
    ) -> Result<(Vec<Payload>, Payload), Error> {
        let c = &self.conns[ci];
        let signed = octets(sa, a, who, ours);
        let Some(cred) = c.credential.as_ref().filter(|_| c.auth == AuthKind::Pubkey) else {
            let psk = c.psk_for(peer).map_or(&[][..], |k| k.as_slice());
            let data = keys::psk_auth(sa.suite.prf, psk, &signed).as_slice().to_vec();
            return Ok((Vec::new(), Payload::Auth(Authentication { method: AuthMethod::SharedKeyMic, data })));
        };
        let scheme = cred.choose(&a.peer_hashes).ok_or_else(|| {
            let named: Vec<String> = a.peer_hashes.iter().map(|h| format!("{h:?}")).collect();
            let named = if named.is_empty() { "none".into() } else { named.join(", ") };
            Error::Auth(AuthFailure::NoSignatureHash(named))
        })?;
        let data = sig::auth_data(scheme, &cred.sign(scheme, &signed));
        let send = match c.send_cert {
            SendCert::Always => true,
            SendCert::Ifasked => asked,
            SendCert::Never => false,
        };
        let certs = if send {
            cred.chain
                .iter()
                .map(|d| Payload::Cert(Certificate { encoding: X509_SIGNATURE, data: d.to_vec() }))
                .collect()
        } else {
            Vec::new()
        };
        Ok((certs, Payload::Auth(Authentication { method: AuthMethod::DigitalSignature, data })))
    }

    /// Checks the peer's AUTH (made by `who`, for identity `id`) against
    /// connection `ci`: Ok(None) for a PSK that verifies, Ok(certificate)
    /// for a signature that does, else why not.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn check_peer_auth(
        &self,
        now: Instant,
        ci: usize,
        sa: &Core,
        a: &Authenticating,
        who: Signer,
        id: &Identification,
        p: &[Payload],
        auth: &Authentication,
    ) -> Result<Option<PeerCert>, String> {
        let c = &self.conns[ci];
        let signed = octets(sa, a, who, id);
        match (c.remote_auth, auth.method) {
            (AuthKind::Psk, AuthMethod::SharedKeyMic) => {
                let k = c.psk_for(Some(id)).ok_or("no PSK for this identity")?;
                let want = keys::psk_auth(sa.suite.prf, k.as_slice(), &signed);
                use subtle::ConstantTimeEq;
                if bool::from(want.as_slice().ct_eq(&auth.data)) {
                    Ok(None)
                } else {
                    Err("the AUTH does not verify with the PSK".into())
                }
            }
            (AuthKind::Pubkey, AuthMethod::DigitalSignature) => {
                let trust = c.trust.as_ref().ok_or("no CAs configured")?;
                let certs: Vec<Vec<u8>> = p
                    .iter()
                    .filter_map(|x| match x {
                        Payload::Cert(c) if c.encoding == X509_SIGNATURE => Some(c.data.clone()),
                        _ => None,
                    })
                    .collect();
                let cert = trust.verify(&certs, id, self.unix_now(now)).map_err(|e| e.to_string())?;
                let (scheme, value) = sig::parse_auth_data(&auth.data).map_err(|e| e.to_string())?;
                // RFC 7427 4: only a hash we announced.
                if !SigHash::ALL.contains(&scheme.hash()) {
                    return Err(sig::SigError::HashNotOffered(scheme).to_string());
                }
                pki::verify_signature(&cert.der, scheme, &signed, value)
                    .map_err(|e| format!("certificate {}: {e}", cert.subject))?;
                Ok(Some(cert))
            }
            (want, got) => Err(format!("method {got:?}, where the connection takes {want:?}")),
        }
    }
}
