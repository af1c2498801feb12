//! What the engine tells its caller happened (for logs and gwctl), with
//! typed reasons, and the counters of what it dropped.

use std::net::{IpAddr, SocketAddr};

use super::Error;
use crate::codepoints::NotifyType;
use crate::mobikex::ActionKind;

/// Things that happened, for logs and gwctl.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    IkeUp {
        conn: String,
        spi_i: u64,
        spi_r: u64,
        peer: SocketAddr,
        peer_id: String,
    },
    IkeDown {
        conn: String,
        spi_i: u64,
        spi_r: u64,
        why: IkeGone,
    },
    IkeRekeyed {
        conn: String,
        old: (u64, u64),
        new: (u64, u64),
    },
    /// draft-xu-ike-sa-sync: an IKE SA rebuilt from the stub filed under
    /// `from` (IKE_SA_SYN answered with Nr alone), no DH, no IKE_AUTH.
    IkeRebuilt {
        conn: String,
        spi_i: u64,
        spi_r: u64,
        peer: SocketAddr,
        peer_id: String,
        from: crate::stub::StubIndex,
    },
    /// RFC 7791: a clone of IKE SA `of`; both live, the child SAs stay on
    /// the original.
    IkeCloned {
        conn: String,
        of: (u64, u64),
        new: (u64, u64),
    },
    ChildUp {
        conn: String,
        /// The child's name in the connection's config.
        child: String,
        spi_in: u32,
        spi_out: u32,
        rekey_of: Option<u32>,
    },
    ChildDown {
        conn: String,
        spi_in: u32,
        spi_out: u32,
        why: ChildGone,
    },
    /// An exchange failed or was refused (ours, or the peer's request).
    Failed {
        conn: String,
        why: Error,
    },
    /// Multi-point SA: a group SA made, handed out, installed, refused.
    Mpsa {
        group: String,
        what: String,
    },
    /// The IKE SA and its child SAs moved to another path: (ours, the
    /// peer's) addresses before and after.
    Moved {
        conn: String,
        from: (SocketAddr, SocketAddr),
        to: (SocketAddr, SocketAddr),
        why: MoveReason,
    },
    /// MOBIKE-X multihoming: a child SA's outer address pairs (ours, the
    /// peer's), preferred first, after ADD / REMOVE / UPDATE.
    PathsChanged {
        conn: String,
        spi_in: u32,
        paths: Vec<(IpAddr, IpAddr)>,
    },
    /// We refused a peer's MOBIKE or MOBIKE-X request with this notify.
    MobikeRefused {
        conn: String,
        notify: NotifyType,
        /// The ID parameter of the payload at fault (MOBIKE-X section 10).
        id: Option<u16>,
        why: String,
    },
    /// The peer would accept this MOBIKE-X action (CHECK, 5.3).
    Checked {
        conn: String,
        action: ActionKind,
        addr: IpAddr,
    },
    /// Our path stopped answering: the request is tried on another pair
    /// of addresses (MOBIKE, RFC 4555 3.10).
    PathTried {
        conn: String,
        from: (SocketAddr, SocketAddr),
        to: (SocketAddr, SocketAddr),
    },
    /// MOBIKE is off from now on (MOBIKE_UNSUPPORTED_VERSION(NONE), MOBIKE-X 7.1.2).
    MobikeOff {
        conn: String,
    },
}

/// Why an IKE SA moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MoveReason {
    /// The peer's UPDATE_SA_ADDRESSES (RFC 4555 3.5).
    PeerUpdate,
    /// Our UPDATE_SA_ADDRESSES, answered (RFC 4555 3.5), asked by the
    /// operator (gwctl move).
    OurUpdate,
    /// Ours, because our address on the path went away (its link went
    /// down, or it was removed).
    AddressLost,
    /// Ours, because the path stopped answering (RFC 4555 3.10): another
    /// pair of addresses did.
    PathFailed,
    /// Without MOBIKE: the NAT in front of the peer changed its mapping
    /// (RFC 7296 2.23).
    NatMapping,
    /// Ours, because the responder's address we sent to left its address
    /// set (RFC 4555 3.4) and it spoke from another.
    PeerAddressGone,
    /// Ours, back to the interface the IKE SA belongs to (a Clone IKE SA
    /// layout, RFC 7791 Appendix B) now that it is usable again.
    HomeAgain,
}

impl std::fmt::Display for MoveReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            MoveReason::PeerUpdate => "the peer's UPDATE_SA_ADDRESSES (MOBIKE)",
            MoveReason::OurUpdate => "our UPDATE_SA_ADDRESSES (MOBIKE), asked by the operator",
            MoveReason::AddressLost => "our address on the path went away (MOBIKE)",
            MoveReason::PathFailed => "the path stopped answering; another did (MOBIKE, RFC 4555 3.10)",
            MoveReason::NatMapping => "the peer's NAT mapping changed (RFC 7296 2.23)",
            MoveReason::PeerAddressGone => "the peer's address left its address list (MOBIKE)",
            MoveReason::HomeAgain => "back on its interface (Clone IKE SA layout, MOBIKE)",
        })
    }
}

/// Why an IKE SA went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IkeGone {
    /// Deleted by an INFORMATIONAL Delete (either side), after a rekey, or
    /// after a failed exchange.
    Deleted,
    /// Half-open and never authenticated in time.
    HalfOpenTimeout,
    /// Our retransmissions went unanswered (RFC 7296 2.4).
    PeerNotResponding,
    /// The peer restarted: INITIAL_CONTACT on a new IKE SA (RFC 7296 2.4).
    InitialContact,
    /// Rebuilt from a stub, and no valid protected message came in time
    /// (draft-xu-ike-sa-sync 5 item 3).
    Unproven,
}

/// Why a child SA went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChildGone {
    DeletedByUs,
    DeletedByPeer,
    HardLifetime,
    /// Its IKE SA went.
    IkeSa(IkeGone),
}

impl std::fmt::Display for IkeGone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            IkeGone::Deleted => "deleted",
            IkeGone::HalfOpenTimeout => "half-open timeout",
            IkeGone::PeerNotResponding => "peer not responding",
            IkeGone::InitialContact => "the peer sent INITIAL_CONTACT on a new IKE SA (RFC 7296 2.4)",
            IkeGone::Unproven => "rebuilt from a stub, and no valid message came in time (draft-xu-ike-sa-sync 5)",
        })
    }
}

impl std::fmt::Display for ChildGone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ChildGone::DeletedByUs => f.write_str("deleted by us"),
            ChildGone::DeletedByPeer => f.write_str("deleted by the peer"),
            ChildGone::HardLifetime => f.write_str("hard lifetime"),
            ChildGone::IkeSa(g) => g.fmt(f),
        }
    }
}

impl std::fmt::Display for Event {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Event::IkeUp { conn, spi_i, spi_r, peer, peer_id } => {
                write!(f, "{conn}: IKE SA {spi_i:016x}_i {spi_r:016x}_r established with {peer_id} at {peer}")
            }
            Event::IkeDown { conn, spi_i, spi_r, why } => {
                write!(f, "{conn}: IKE SA {spi_i:016x}_i {spi_r:016x}_r down: {why}")
            }
            Event::IkeRekeyed { conn, old, new } => write!(
                f,
                "{conn}: IKE SA {:016x}_i {:016x}_r rekeyed to {:016x}_i {:016x}_r",
                old.0, old.1, new.0, new.1
            ),
            Event::IkeRebuilt { conn, spi_i, spi_r, peer, peer_id, from } => write!(
                f,
                "{conn}: IKE SA {spi_i:016x}_i {spi_r:016x}_r rebuilt with {peer_id} at {peer} from the stub of {from} (IKE_SA_SYN)"
            ),
            Event::IkeCloned { conn, of, new } => write!(
                f,
                "{conn}: IKE SA {:016x}_i {:016x}_r cloned as {:016x}_i {:016x}_r (Clone IKE SA)",
                of.0, of.1, new.0, new.1
            ),
            Event::ChildUp { conn, child, spi_in, spi_out, rekey_of } => {
                write!(f, "{conn}: child SA {spi_in:08x}_i {spi_out:08x}_o installed")?;
                if child != conn {
                    write!(f, " ({child})")?;
                }
                if let Some(o) = rekey_of {
                    write!(f, " (rekey of {o:08x}_i)")?;
                }
                Ok(())
            }
            Event::ChildDown { conn, spi_in, spi_out, why } => {
                write!(f, "{conn}: child SA {spi_in:08x}_i {spi_out:08x}_o deleted: {why}")
            }
            Event::Failed { conn, why } => write!(f, "{conn}: {why}"),
            Event::Mpsa { group, what } => write!(f, "group {group}: {what}"),
            Event::Moved { conn, from, to, why } => {
                write!(f, "{conn}: moved from {} <-> {} to {} <-> {}: {why}", from.0, from.1, to.0, to.1)
            }
            Event::PathsChanged { conn, spi_in, paths } => {
                let p: Vec<String> = paths.iter().map(|(l, r)| format!("{l} <-> {r}")).collect();
                write!(f, "{conn}: child SA {spi_in:08x} now on {}", p.join(", then "))
            }
            Event::MobikeRefused { conn, notify, id, why } => {
                write!(f, "{conn}: refused with {notify:?}")?;
                if let Some(i) = id {
                    write!(f, " (ID {i})")?;
                }
                write!(f, ": {why}")
            }
            Event::Checked { conn, action, addr } => write!(f, "{conn}: the peer would accept {action:?} of {addr}"),
            Event::PathTried { conn, from, to } => {
                write!(f, "{conn}: no answer on {} <-> {}, trying {} <-> {} (MOBIKE)", from.0, from.1, to.0, to.1)
            }
            Event::MobikeOff { conn } => write!(f, "{conn}: MOBIKE is off (MOBIKE_UNSUPPORTED_VERSION NONE)"),
        }
    }
}

/// Why messages were dropped without an answer, counted.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Stats {
    pub received: u64,
    pub sent: u64,
    pub retransmitted: u64,
    pub malformed: u64,
    pub unknown_spi: u64,
    pub bad_icv: u64,
    pub bad_message_id: u64,
    pub retransmits_answered: u64,
    pub cookies_sent: u64,
    pub keepalives: u64,
    /// IKE_SA_INIT requests without the Initiator flag, with SPIi zero,
    /// SPIr set or a message ID other than 0 (RFC 7296 3.1, 2.2): dropped.
    #[serde(default)]
    pub bad_init_request: u64,
    pub auth_failed: u64,
    pub no_proposal: u64,
    /// MPSA_PUT requests sent (gateway) and refused (endpoint, or anyone
    /// that must not take one).
    pub mpsa_puts_sent: u64,
    pub mpsa_puts_refused: u64,
    /// MOBIKE and MOBIKE-X requests (or actions of one) we refused, each
    /// answered with its error notify.
    #[serde(default)]
    pub mobike_refused: u64,
    /// Clone IKE SA notifies refused (RFC 7791: unagreed, misplaced,
    /// repeated or with data), each answered INVALID_SYNTAX.
    #[serde(default)]
    pub clone_refused: u64,
    /// Clones of ours deleted as redundant: the peer cloned the same IKE
    /// SA at once and its clone had the higher nonce (RFC 7296 2.8.2).
    #[serde(default)]
    pub clone_collisions: u64,
    /// IKE SA synchronization (draft-xu-ike-sa-sync): stubs exported
    /// (gateway), SYNs sent (client), IKE SAs rebuilt from a stub, SYNs
    /// whose stub we do not hold and SYNs whose stub did not fit (both
    /// answered with the full exchange).
    #[serde(default)]
    pub stubs_exported: u64,
    #[serde(default)]
    pub syn_sent: u64,
    #[serde(default)]
    pub syn_rebuilt: u64,
    #[serde(default)]
    pub syn_unknown: u64,
    #[serde(default)]
    pub syn_refused: u64,
    /// Stubs asked of the bank for a SYN, found there, and not found (or
    /// not in time: the full exchange).
    #[serde(default)]
    pub stub_fetches: u64,
    #[serde(default)]
    pub stubs_fetched: u64,
    #[serde(default)]
    pub stub_fetch_missed: u64,
    /// RFC 5685: REDIRECTs sent (gateway), followed and ignored (client:
    /// not announced, malformed, or a name we cannot resolve).
    #[serde(default)]
    pub redirects_sent: u64,
    #[serde(default)]
    pub redirects_followed: u64,
    #[serde(default)]
    pub redirects_ignored: u64,
    /// Rekeys completed: IKE SAs (RFC 7296 2.18) and child SAs (2.8).
    #[serde(default)]
    pub ike_rekeys: u64,
    #[serde(default)]
    pub child_rekeys: u64,
}
