//! Why an exchange failed or was refused, or why a call could not be
//! done: one error type for the whole engine, and the one function that
//! maps a refusal to the notify RFC 7296 3.10.1 names for it.
//!
//! ```text
//! request refused for reason E  -->  HDR, SK { N(E.notify()) }
//! our request answered N(error)  -->  Error::Refused(error)
//! ```

use std::net::SocketAddr;

use crate::codepoints::{AuthMethod, DhGroup, NotifyType};
use crate::crypto::dh::DhError;
use crate::wire::ParseError;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// A message or payload that does not parse (RFC 7296 3); the parse
    /// error names its notify (INVALID_SYNTAX, UNSUPPORTED_CRITICAL_PAYLOAD, ...).
    #[error("malformed: {0}")]
    Parse(ParseError),
    /// A payload the exchange needs is not there (RFC 7296 1.2-1.4).
    #[error("{0} missing")]
    Missing(&'static str),
    /// Nothing we accept among the proposals (RFC 7296 2.7).
    #[error("no proposal chosen")]
    NoProposal,
    /// A KE payload of another group than the one we want (RFC 7296 1.2,
    /// 1.3): the answer names ours.
    #[error("KE payload of group {got}, group {} wanted", .want.value())]
    WrongKeGroup { want: DhGroup, got: u16 },
    /// The peer's public value is not valid for its group (RFC 7296 3.4).
    #[error("Diffie-Hellman: {0}")]
    Dh(DhError),
    #[error("authentication failed: {0}")]
    Auth(AuthFailure),
    /// The selectors asked for fit none of our policy (RFC 7296 2.9).
    #[error("traffic selectors unacceptable")]
    TsUnacceptable,
    /// Rekeying or deleting what the request is about (RFC 7296 2.25).
    #[error("busy: {0}")]
    Busy(&'static str),
    /// A rekey of a child SA we do not have (RFC 7296 2.25).
    #[error("no child SA with SPI {0:08x}")]
    ChildSaNotFound(u32),
    /// The address pool is used up (RFC 7296 3.15.4).
    #[error("no internal address left in the pool")]
    NoInternalAddress,
    /// MOBIKE: the new addresses do not fit our policy (RFC 4555 3.5).
    #[error("addresses not acceptable: {0}")]
    UnacceptableAddresses(String),
    /// MOBIKE: a NAT between the addresses the peer said it would use
    /// (NO_NATS_ALLOWED, RFC 4555 3.9).
    #[error("a NAT where the peer allows none")]
    UnexpectedNat,
    /// Well-formed but not acceptable here (RFC 7296 3.10.1: INVALID_SYNTAX
    /// also for policy reasons).
    #[error("not accepted here: {0}")]
    Policy(&'static str),
    /// The peer answered our request with this error notify.
    #[error("the peer refused: {0:?}")]
    Refused(NotifyType),
    /// The peer's answer does not fit what we asked.
    #[error("unacceptable answer: {0}")]
    BadAnswer(&'static str),
    /// Our retransmissions went unanswered (RFC 7296 2.4).
    #[error("peer {0} does not answer")]
    Unanswered(SocketAddr),
    /// An operator's call names no connection.
    #[error("no connection named {0:?}")]
    NoConnection(String),
    #[error("connection {conn:?} has no child SA named {child:?}")]
    NoChild { conn: String, child: String },
    /// An operator's call names no MPSA group of this gateway.
    #[error("no group named {0:?}")]
    NoGroup(String),
    #[error("{member:?} is not a member of group {group:?}")]
    NotMember { group: String, member: String },
    /// Learned routes given to a daemon that is no MPSA endpoint.
    #[error("routes from peer discovery need daemon.mpsa = \"endpoint\"")]
    NotMpsaEndpoint,
    #[error("connection {0:?}: no {1} address to initiate with")]
    NoAddress(String, &'static str),
    #[error("connection {0:?}: child SA {1:?} is up already")]
    ChildUp(String, String),
    /// A move asked of an IKE SA without MOBIKE, or by its responder
    /// (only the original initiator moves, RFC 4555 3.5).
    #[error("connection {0:?}: no IKE SA of ours that MOBIKE can move")]
    CannotMove(String),
    /// A clone asked of an IKE SA without Clone IKE SA agreed (RFC 7791),
    /// or a move of the clone by its IKE SA's responder.
    #[error("connection {0:?}: no IKE SA of ours that Clone IKE SA can clone (both sides must support it)")]
    CannotClone(String),
    /// CLONE_IKE_SA or CLONE_IKE_SA_SUPPORTED where RFC 7791 does not
    /// allow it (NOTES.md: INVALID_SYNTAX).
    #[error("{0} (RFC 7791)")]
    CloneMisplaced(&'static str),
}

/// Why an authentication failed (RFC 7296 2.15).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthFailure {
    /// No connection takes this identity with an AUTH that verifies.
    #[error("authentication of {id:?} from {from} failed")]
    Rejected { id: String, from: SocketAddr },
    /// An authentication method we do not take.
    #[error("method {0:?} is not accepted")]
    Method(AuthMethod),
    /// The responder is not the identity configured.
    #[error("the responder is {0:?}, not the configured identity")]
    WrongIdentity(String),
    /// The responder's AUTH does not verify with our PSK.
    #[error("the responder's AUTH does not verify with our PSK")]
    BadAuth,
    /// No connection takes this identity, and why the one that came
    /// closest refused it (a certificate or signature problem).
    #[error("authentication of {id:?} from {from} failed: {why}")]
    RejectedBecause { id: String, from: SocketAddr, why: String },
    /// The responder's certificate or signature was refused.
    #[error("the responder's authentication was refused: {0}")]
    PeerRefused(String),
    /// We cannot sign with a hash the peer takes (RFC 7427 4).
    #[error("no signature hash in common with the peer (RFC 7427 4): it announced {0}")]
    NoSignatureHash(String),
    /// The responder refused ours.
    #[error("the responder refused our authentication (AUTHENTICATION_FAILED)")]
    RefusedByPeer,
}

impl Error {
    /// The notify that answers a request refused for this reason (RFC 7296
    /// 3.10.1), with its data.
    pub fn notify(&self) -> (NotifyType, Vec<u8>) {
        match self {
            Error::Parse(e) => e.notify(),
            Error::NoProposal => (NotifyType::NoProposalChosen, vec![]),
            Error::WrongKeGroup { want, .. } => (NotifyType::InvalidKePayload, want.value().to_be_bytes().to_vec()),
            Error::Auth(_) => (NotifyType::AuthenticationFailed, vec![]),
            Error::TsUnacceptable => (NotifyType::TsUnacceptable, vec![]),
            Error::Busy(_) => (NotifyType::TemporaryFailure, vec![]),
            Error::ChildSaNotFound(_) => (NotifyType::ChildSaNotFound, vec![]),
            Error::NoInternalAddress => (NotifyType::InternalAddressFailure, vec![]),
            Error::UnacceptableAddresses(_) => (NotifyType::UnacceptableAddresses, vec![]),
            Error::UnexpectedNat => (NotifyType::UnexpectedNatDetected, vec![]),
            Error::Refused(n) => (*n, vec![]),
            Error::Missing(_)
            | Error::Dh(_)
            | Error::Policy(_)
            | Error::BadAnswer(_)
            | Error::Unanswered(_)
            | Error::NoConnection(_)
            | Error::NoChild { .. }
            | Error::NoGroup(_)
            | Error::NotMember { .. }
            | Error::NotMpsaEndpoint
            | Error::NoAddress(..)
            | Error::ChildUp(..)
            | Error::CannotMove(_)
            | Error::CannotClone(_)
            | Error::CloneMisplaced(_) => (NotifyType::InvalidSyntax, vec![]),
        }
    }

    /// The peer's refusal, when the payloads of an answer carry an error
    /// notify (RFC 7296 3.10.1: the first one).
    pub fn refusal(payloads: &[crate::wire::Payload]) -> Option<Error> {
        payloads.iter().find_map(|p| match p {
            crate::wire::Payload::Notify(n) if n.ty.is_error() => Some(Error::Refused(n.ty)),
            _ => None,
        })
    }
}

impl From<ParseError> for Error {
    fn from(e: ParseError) -> Error {
        Error::Parse(e)
    }
}

impl From<DhError> for Error {
    fn from(e: DhError) -> Error {
        Error::Dh(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7296 3.10.1: each refusal is answered with the notify named for
    /// it; INVALID_KE_PAYLOAD carries the group wanted (1.2).
    #[test]
    fn each_refusal_maps_to_the_notify_rfc7296_names() {
        let cases = [
            (Error::NoProposal, NotifyType::NoProposalChosen),
            (Error::Auth(AuthFailure::BadAuth), NotifyType::AuthenticationFailed),
            (Error::TsUnacceptable, NotifyType::TsUnacceptable),
            (Error::Busy("rekeying"), NotifyType::TemporaryFailure),
            (Error::ChildSaNotFound(7), NotifyType::ChildSaNotFound),
            (Error::NoInternalAddress, NotifyType::InternalAddressFailure),
            (Error::Missing("nonce"), NotifyType::InvalidSyntax),
            (Error::Dh(DhError::BadPublic(31)), NotifyType::InvalidSyntax),
            (Error::Parse(ParseError::UnsupportedCritical(99)), NotifyType::UnsupportedCriticalPayload),
        ];
        for (e, n) in cases {
            assert_eq!(e.notify().0, n, "{e}");
            assert!(e.notify().0.is_error());
        }
        let (n, data) = Error::WrongKeGroup { want: DhGroup::Curve25519, got: 14 }.notify();
        assert_eq!((n, data), (NotifyType::InvalidKePayload, 31u16.to_be_bytes().to_vec()));
    }

    #[test]
    fn a_refusal_is_the_first_error_notify_status_ones_are_not() {
        use crate::wire::{Notify, Payload};
        let p = vec![
            Payload::Notify(Notify::new(NotifyType::Cookie, vec![1])),
            Payload::Notify(Notify::new(NotifyType::TsUnacceptable, vec![])),
            Payload::Notify(Notify::new(NotifyType::NoProposalChosen, vec![])),
        ];
        assert_eq!(Error::refusal(&p), Some(Error::Refused(NotifyType::TsUnacceptable)));
        assert_eq!(Error::refusal(&p[..1]), None);
    }
}
