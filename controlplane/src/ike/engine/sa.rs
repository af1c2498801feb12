//! An IKE SA through its phases, as types (RFC 7296 1.2, 2.2):
//!
//! ```text
//! Connecting       initiator: IKE_SA_INIT sent, no keys yet     (its own table)
//!     | IKE_SA_INIT response: SKEYSEED, the seven SK_* keys
//! IkeSa { Authenticating }   both roles: keyed, IKE_AUTH under way
//!     | IKE_AUTH: the peer authenticated, the first child SA
//! IkeSa { Established }      child SAs, rekeys, INFORMATIONAL
//! ```
//!
//! Each phase owns exactly its data: a [`Connecting`] has a DH private
//! value and no keys; every [`IkeSa`] has its keys ([`Core`]); only an
//! [`Established`] one has a peer identity and child SAs. Code that needs
//! a phase's data takes that phase's type, so a mix-up does not compile.
//! Deleting and "replaced by a rekey" are flags of the phase they happen in.

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use crate::codepoints::{DhGroup, PayloadType};
use crate::crypto::dh::DhPrivate;
use crate::crypto::keys::{IkeKeys, IkeSuite};
use crate::crypto::Secret;
use crate::ike::proposal::EspSuite;
use crate::mobikex::Version;
use crate::wire::{Identification, Payload, TrafficSelector};

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum IkeState {
    /// Initiator: IKE_SA_INIT sent.
    Connecting,
    /// IKE_SA_INIT done, IKE_AUTH under way.
    Authenticating,
    Established,
    /// Replaced by a rekey; waiting for its deletion.
    Rekeyed,
    Deleting,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ChildState {
    Installed,
    /// A newer child SA replaced it; it still decrypts until deleted.
    Rekeyed,
    Deleting,
}

/// An initiator's IKE SA before the IKE_SA_INIT response: what it sent
/// and must send again (cookie, INVALID_KE_PAYLOAD: RFC 7296 2.6, 1.2).
#[derive(Debug)]
pub struct Connecting {
    pub conn: usize,
    pub spi_i: u64,
    pub local: SocketAddr,
    pub remote: SocketAddr,
    pub created: Instant,
    pub(super) group: DhGroup,
    pub(super) dh: Option<DhPrivate>,
    pub(super) ke: Vec<u8>,
    pub(super) cookie: Option<Vec<u8>>,
    /// Cookie and INVALID_KE_PAYLOAD retries so far.
    pub(super) retries: u32,
    pub(super) ni: Vec<u8>,
    /// The IKE_SA_INIT request as sent (AUTH signs it, 2.15).
    pub(super) request: Vec<u8>,
    pub(super) next: Instant,
    pub(super) tries: u32,
    pub(super) scheduled: Option<Instant>,
    /// Refused or given up: removed at the end of the call.
    pub(super) failed: bool,
    /// A rebuild by IKE_SA_SYN (draft-xu-ike-sa-sync 3.1): our view of the
    /// IKE SA to rebuild, with the index of the old gateway's stub.
    pub(super) syn: Option<Box<crate::stub::IkeSaStub>>,
    /// Redirected (RFC 5685): the gateway that sent us here (announced
    /// with REDIRECTED_FROM) and our SPI of the IKE SA with it, deleted
    /// once this one is up.
    pub(super) redirected: Option<(IpAddr, u64)>,
}

/// What every keyed IKE SA has, whatever its phase.
#[derive(Debug)]
pub struct Core {
    pub conn: usize,
    /// We are the original initiator (RFC 7296 3.1: the I flag, the SPI
    /// roles and key directions; a rekey's initiator becomes it).
    pub initiator: bool,
    /// We sent the IKE_SA_INIT this SA descends from (by rekeys or
    /// clones): the initiator that decides and moves the addresses
    /// (RFC 4555 3.5, MOBIKE-X 5.7), whoever rekeyed since, as strongSwan
    /// keeps it.
    pub mobike_initiator: bool,
    pub spi_i: u64,
    pub spi_r: u64,
    pub local: SocketAddr,
    pub remote: SocketAddr,
    /// NAT detected (either side): IKE on 4500, ESP in UDP.
    pub nat: bool,
    pub we_behind_nat: bool,
    pub created: Instant,
    pub suite: IkeSuite,
    pub(super) keys: IkeKeys,
    pub(super) w: Window,
    pub(super) last_heard: Instant,
    pub(super) keepalive_at: Option<Instant>,
    /// Responder: forgotten at this time unless authenticated.
    pub(super) half_open_until: Option<Instant>,
    /// The deadline this SA has on the engine's timer heap.
    pub(super) scheduled: Option<Instant>,
    pub(super) fragments: Option<Reassembly>,
    pub(super) peer_mpsa: bool,
    /// Both sides sent the Clone IKE SA reduced-exchange Vendor ID in
    /// IKE_SA_INIT (Appendix B.5).
    pub(super) clone_reduced: bool,
    /// The Diffie-Hellman shared secret this IKE SA was keyed with (of its
    /// IKE_SA_INIT or its last rekey): a stub carries it (draft-xu-ike-sa-sync
    /// 3.2). Zeroized.
    pub(super) g_ir: crate::crypto::Secret,
    /// Responder: the client sent REDIRECT_SUPPORTED (RFC 5685 3).
    pub(super) peer_redirect: bool,
    /// The peer announced IKEV2_FRAGMENTATION_SUPPORTED (RFC 7383 2.3).
    pub(super) peer_frag: bool,
    /// The identity this SA is filed under in the engine's `by_peer`.
    pub(super) peer_key: Option<Identification>,
    /// Being deleted: removed once nothing is in flight or queued.
    pub(super) deleting: bool,
}

/// RFC 7383 reassembly: message ID, first payload type, fragments by number.
pub(super) type Reassembly = (u32, PayloadType, Vec<Option<Vec<u8>>>);

/// An IKE SA with keys: the core and its phase.
#[derive(Debug)]
pub struct IkeSa {
    pub(super) core: Core,
    pub(super) phase: Phase,
}

#[derive(Debug)]
// Nearly every IKE SA is Established: boxing it would cost an allocation
// each for nothing.
#[allow(clippy::large_enum_variant)]
pub(super) enum Phase {
    Authenticating(Authenticating),
    Established(Established),
}

/// IKE_SA_INIT done: what IKE_AUTH signs and keys the first child with.
#[derive(Debug)]
pub(super) struct Authenticating {
    pub ni: Vec<u8>,
    pub nr: Vec<u8>,
    pub init_request: Vec<u8>,
    pub init_response: Vec<u8>,
    /// Initiator, redirected here (RFC 5685): our SPI of the IKE SA with
    /// the old gateway, deleted once this one is authenticated.
    pub replaces: Option<u64>,
    /// The hashes the peer's IKE_SA_INIT announced for signatures (RFC
    /// 7427 4).
    pub peer_hashes: Vec<crate::crypto::sig::SigHash>,
    /// Initiator: the responder's IKE_SA_INIT response asked for our
    /// certificate (CERTREQ, RFC 7296 3.7).
    pub cert_asked: bool,
}

/// Authenticated, with child SAs.
#[derive(Debug)]
pub struct Established {
    pub peer_id: Identification,
    /// The subject of the certificate the peer authenticated with (None:
    /// a PSK).
    pub peer_cert: Option<String>,
    pub since: Instant,
    pub(super) rekey_at: Option<Instant>,
    pub children: Vec<Child>,
    pub vip: Option<IpAddr>,
    /// IKE SA rekey collision (2.8.2): lowest nonce of ours / theirs, SPI.
    pub(super) rekey_ours: Option<(Vec<u8>, u64)>,
    pub(super) rekey_theirs: Option<(Vec<u8>, u64)>,
    /// Replaced by a rekey; waiting for its deletion.
    pub(super) rekeyed: bool,
    /// The IKE SA that replaced it (our SPI), once its rekey settled.
    pub(super) replaced_by: Option<u64>,
    /// A clone the peer made of this SA while ours was in flight (a clone
    /// collision, settled as RFC 7296 2.8.2 settles rekeys): the lowest
    /// nonce of that exchange and our SPI of the peer's clone.
    pub(super) clone_theirs: Option<(Vec<u8>, u64)>,
    /// MOBIKE, when both sides sent MOBIKE_SUPPORTED (RFC 4555 3.3).
    pub mobike: Option<Mobike>,
    /// Clone IKE SA, when both sides sent CLONE_IKE_SA_SUPPORTED (RFC 7791).
    pub clone: bool,
    /// A clone: our SPI of the IKE SA it was cloned from.
    pub clone_of: Option<u64>,
    /// A clone made for one of the connection's `interfaces`: that address
    /// (Appendix B layout: it returns there when it can).
    pub home: Option<IpAddr>,
    /// Rebuilt from a stub (draft-xu-ike-sa-sync): deleted at this time
    /// unless a valid protected message comes first (section 5 item 3),
    /// with the IKE_SA_INIT answer kept for the SYN's retransmissions.
    pub(super) unproven: Option<(Instant, Vec<u8>)>,
    /// Gateway: REDIRECT sent (RFC 5685 6); deleted at this time unless
    /// the client deletes it first.
    pub(super) redirected_until: Option<Instant>,
}

/// MOBIKE state of an IKE SA (RFC 4555; MOBIKE-X when both sides chose
/// version 2).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Mobike {
    pub version: Version,
    /// The peer's other addresses (ADDITIONAL_IP4/6_ADDRESS, 3.4; MOBIKE-X
    /// ADDITIONAL_IP_ADDRESS, 6.5), newest list, preferred first; empty
    /// after NO_ADDITIONAL_ADDRESSES.
    pub peer_addresses: Vec<IpAddr>,
    /// MOBIKE-X: what the peer said of them (Multihoming Information).
    #[serde(default)]
    pub alternates: Vec<Alternate>,
    /// Moves made on this IKE SA (ours and the peer's).
    pub moves: u64,
    /// Initiator, the current path failing (RFC 4555 3.10): the paths
    /// tried since it last worked, and the one we left, to announce with
    /// UPDATE_SA_ADDRESSES once a request gets through.
    #[serde(skip)]
    pub(super) tried: Vec<(IpAddr, IpAddr)>,
    #[serde(skip)]
    pub(super) left: Option<(SocketAddr, SocketAddr)>,
}

impl Mobike {
    pub fn new(version: Version, peer_addresses: Vec<IpAddr>) -> Self {
        Mobike { version, peer_addresses, alternates: Vec::new(), moves: 0, tried: Vec::new(), left: None }
    }
}

/// An alternate address with its Multihoming Information (MOBIKE-X 11.4.4).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Alternate {
    pub addr: IpAddr,
    pub preference: u8,
    /// NONE, HoA, CoA (11.4.4 CLASS).
    pub class: String,
    /// Seconds it is valid from when it was announced; 0 = for ever.
    pub lifetime_secs: u32,
    /// Seconds to wait before using it.
    pub start_secs: u32,
    #[serde(skip)]
    pub(super) announced: Option<Instant>,
}

/// A child SA (ESP, tunnel mode).
#[derive(Debug)]
pub struct Child {
    /// Which of the connection's child configs it is.
    pub cfg: usize,
    pub spi_in: u32,
    pub spi_out: u32,
    pub suite: EspSuite,
    /// Keys for what we receive (encryption, integrity) and what we send.
    pub(super) keys_in: (Secret, Secret),
    pub(super) keys_out: (Secret, Secret),
    pub ts_local: Vec<TrafficSelector>,
    pub ts_remote: Vec<TrafficSelector>,
    pub state: ChildState,
    pub created: Instant,
    pub rekey_at: Option<Instant>,
    pub(super) expire_at: Instant,
    /// Collision bookkeeping (RFC 7296 2.8.1): the lowest nonce of our
    /// rekey exchange and of the peer's, with the SPI each created.
    pub(super) rekey_ours: Option<(Vec<u8>, u32)>,
    pub(super) rekey_theirs: Option<(Vec<u8>, u32)>,
    pub rekey_of: Option<u32>,
    /// Responder of a rekey: the child that replaces this one, and when our
    /// outbound traffic moves to it at the latest. Until the initiator
    /// deletes this SA it may not have installed the new inbound SA yet, so
    /// sending on the new one early would lose packets.
    pub(super) successor: Option<(u32, Instant)>,
    /// The PFS group the next rekey offers when the peer asked for another
    /// with INVALID_KE_PAYLOAD (RFC 7296 1.3), and how often it asked.
    pub(super) pfs_group: Option<DhGroup>,
    pub(super) ke_retries: u32,
    /// MOBIKE-X multihoming (ADD_SA_ADDRESS / REMOVE_SA_ADDRESS): the
    /// outer address pairs (ours, the peer's) of this child SA, preferred
    /// first. Empty: the IKE SA's one path, following it when it moves.
    pub paths: Vec<(IpAddr, IpAddr)>,
    /// MOBIKE-X ADDITIONAL_IP_ADDRESS for this child SA (6.5: kept for the
    /// operator, not acted on).
    pub alternates: Vec<IpAddr>,
    /// ESP transport mode (USE_TRANSPORT_MODE agreed, RFC 7296 1.3.1): the
    /// selectors are the IKE SA's two addresses and move with it.
    pub transport: bool,
}

/// The request window of one IKE SA (RFC 7296 2.3: one request in flight
/// each way here) and what waits for it.
#[derive(Debug, Default)]
pub(super) struct Window {
    pub next_request: u32,
    pub expect_request: u32,
    pub last_response: Option<(u32, Vec<Vec<u8>>)>,
    /// While a request is handled: (our address, the peer's) it came in
    /// on, where its response goes (RFC 7296 2.11).
    pub reply_to: Option<(SocketAddr, SocketAddr)>,
    pub in_flight: Option<InFlight>,
    pub tasks: VecDeque<Task>,
}

/// A request on its way, kept for retransmission.
#[derive(Debug)]
pub(super) struct InFlight {
    pub message_id: u32,
    pub packets: Vec<Vec<u8>>,
    pub next: Instant,
    pub tries: u32,
    pub what: Pending,
}

/// What the answer to an IKE SA rekey or clone offer needs: the new SA's
/// SPI (ours), our nonce and Diffie-Hellman value.
pub(super) type RekeyOffer = (u64, Vec<u8>, DhPrivate);

/// An exchange we started and wait on, with what its answer needs.
#[derive(Debug)]
pub(super) enum Pending {
    Auth {
        child: NewChild,
        /// The clone asked for in the same message (Appendix B.5): its
        /// SPI, our nonce and Diffie-Hellman value.
        clone: Option<RekeyOffer>,
    },
    CreateChild {
        child: NewChild,
        ni: Vec<u8>,
        dh: Option<(DhGroup, DhPrivate)>,
        /// Sent with our move to a new path (Appendix B.5): the COOKIE2 to
        /// see echoed and the path a refusal takes us back to.
        moving: Option<(Vec<u8>, (SocketAddr, SocketAddr))>,
    },
    RekeyChild {
        old: u32,
        spi_in: u32,
        ni: Vec<u8>,
        dh: Option<(DhGroup, DhPrivate)>,
    },
    RekeyIke {
        spi: u64,
        ni: Vec<u8>,
        dh: DhPrivate,
        /// RFC 7791: a clone (both IKE SAs stay), to move to this address
        /// of ours once made (MOBIKE) if given.
        clone: Option<Option<IpAddr>>,
    },
    DeleteChildren(Vec<u32>),
    DeleteIke,
    Liveness,
    MpsaPut {
        group: usize,
        spi: u32,
    },
    Informational,
    /// Our UPDATE_SA_ADDRESSES (RFC 4555 3.5): the COOKIE2 it carries and
    /// the path it left, to go back to if the peer refuses.
    MobikeUpdate {
        cookie2: Vec<u8>,
        old: (SocketAddr, SocketAddr),
        why: super::MoveReason,
    },
    /// A MOBIKE-X request of ours (ADD / REMOVE / a checked UPDATE).
    Mobikex(MobikexOp),
}

/// What one MOBIKE-X request of ours asks: `kind` for our address `addr`
/// on these child SAs (inbound SPIs; empty: the default selection).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MobikexOp {
    pub kind: crate::mobikex::ActionKind,
    pub addr: IpAddr,
    /// UPDATE: the address replaced.
    pub old: Option<IpAddr>,
    pub children: Vec<u32>,
    pub check: bool,
}

/// A child SA we asked for: its config, our SPI and the selectors offered.
#[derive(Debug, Clone)]
pub(super) struct NewChild {
    pub cfg: usize,
    pub spi_in: u32,
    pub ts_local: Vec<TrafficSelector>,
    pub ts_remote: Vec<TrafficSelector>,
}

/// Exchanges waiting for the window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Task {
    /// Open child config `.0` on this IKE SA (CREATE_CHILD_SA, 1.3.1).
    CreateChild(usize),
    /// The same with these payloads after the request's own (tools and
    /// tests).
    CreateChildWith(usize, Vec<Payload>),
    RekeyChild(u32),
    RekeyIke,
    DeleteChild(u32),
    DeleteIke,
    Liveness,
    /// Hand group `.0`'s current SA to this member (mpsa 3.1).
    MpsaPut(usize),
    /// An INFORMATIONAL request with these payloads (tools and tests).
    Informational(Vec<Payload>),
    /// Move the IKE SA and its child SAs to this local address (MOBIKE
    /// UPDATE_SA_ADDRESSES, RFC 4555 3.5).
    MobikeUpdate(IpAddr, super::MoveReason),
    /// We are on a new path already (a failover, RFC 4555 3.10): tell the
    /// peer, with the path we left.
    MobikeAnnounce((SocketAddr, SocketAddr), super::MoveReason),
    /// A MOBIKE-X ADD_SA_ADDRESS, REMOVE_SA_ADDRESS or checked UPDATE.
    Mobikex(MobikexOp),
    /// Clone this IKE SA (RFC 7791), then move the clone to this address
    /// of ours if given.
    CloneIke(Option<IpAddr>),
    /// A clone's move to its interface `.0` together with the first child
    /// SA (config `.1`) opened there, in one CREATE_CHILD_SA (Appendix
    /// B.5).
    MoveWithChild(IpAddr, usize),
}

impl Core {
    /// The one constructor of an IKE SA's core: keyed, nothing in flight.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn new(
        conn: usize,
        initiator: bool,
        (spi_i, spi_r): (u64, u64),
        (local, remote): (SocketAddr, SocketAddr),
        suite: IkeSuite,
        keys: IkeKeys,
        (next_request, expect_request): (u32, u32),
        now: Instant,
    ) -> Core {
        Core {
            conn,
            initiator,
            mobike_initiator: initiator,
            spi_i,
            spi_r,
            local,
            remote,
            nat: false,
            we_behind_nat: false,
            created: now,
            suite,
            keys,
            w: Window { next_request, expect_request, ..Window::default() },
            last_heard: now,
            keepalive_at: None,
            half_open_until: None,
            scheduled: None,
            fragments: None,
            peer_mpsa: false,
            peer_frag: false,
            peer_key: None,
            deleting: false,
            clone_reduced: false,
            g_ir: crate::crypto::Secret::default(),
            peer_redirect: false,
        }
    }

    /// Our SPI: the key of the engine's table.
    pub fn our_spi(&self) -> u64 {
        if self.initiator {
            self.spi_i
        } else {
            self.spi_r
        }
    }
}

impl IkeSa {
    pub fn conn(&self) -> usize {
        self.core.conn
    }
    /// Our SPI (the engine's key for it).
    pub fn our_spi(&self) -> u64 {
        self.core.our_spi()
    }
    pub fn initiator(&self) -> bool {
        self.core.initiator
    }
    pub fn spi_i(&self) -> u64 {
        self.core.spi_i
    }
    pub fn spi_r(&self) -> u64 {
        self.core.spi_r
    }
    pub fn local(&self) -> SocketAddr {
        self.core.local
    }
    pub fn remote(&self) -> SocketAddr {
        self.core.remote
    }
    pub fn nat(&self) -> bool {
        self.core.nat
    }
    pub fn suite(&self) -> IkeSuite {
        self.core.suite
    }
    pub fn created(&self) -> Instant {
        self.core.created
    }
    /// Both sides sent V(MPSA).
    pub fn peer_mpsa(&self) -> bool {
        self.core.peer_mpsa
    }

    pub fn state(&self) -> IkeState {
        match &self.phase {
            _ if self.core.deleting => IkeState::Deleting,
            Phase::Authenticating(_) => IkeState::Authenticating,
            Phase::Established(e) if e.rekeyed => IkeState::Rekeyed,
            Phase::Established(_) => IkeState::Established,
        }
    }

    /// The established phase, once IKE_AUTH is done.
    pub fn established(&self) -> Option<&Established> {
        match &self.phase {
            Phase::Established(e) => Some(e),
            Phase::Authenticating(_) => None,
        }
    }

    pub fn peer_id(&self) -> Option<&Identification> {
        self.established().map(|e| &e.peer_id)
    }

    pub fn children(&self) -> &[Child] {
        self.established().map_or(&[], |e| &e.children)
    }

    pub fn child(&self, spi_in: u32) -> Option<&Child> {
        self.children().iter().find(|c| c.spi_in == spi_in)
    }

    /// When the IKE SA rekeys next (Established only).
    pub fn rekey_at(&self) -> Option<Instant> {
        self.established().and_then(|e| e.rekey_at)
    }
}

impl Established {
    pub(super) fn new(peer_id: Identification, now: Instant, rekey_at: Instant) -> Established {
        Established {
            peer_id,
            peer_cert: None,
            since: now,
            rekey_at: Some(rekey_at),
            children: Vec::new(),
            vip: None,
            rekey_ours: None,
            rekey_theirs: None,
            rekeyed: false,
            replaced_by: None,
            clone_theirs: None,
            mobike: None,
            clone: false,
            clone_of: None,
            home: None,
            unproven: None,
            redirected_until: None,
        }
    }

    pub(super) fn child_mut(&mut self, spi_in: u32) -> Option<&mut Child> {
        self.children.iter_mut().find(|c| c.spi_in == spi_in)
    }
}
