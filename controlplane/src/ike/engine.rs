//! The IKEv2 engine (RFC 7296), sans-IO: datagrams, dataplane events and
//! the time go in; datagrams to send, dataplane commands and events come
//! out ([`Output`]). Timers are deadlines the caller asks for with
//! [`Engine::poll_timeout`] and fires with [`Engine::handle_timeout`].
//!
//! What it runs, initiator and responder: IKE_SA_INIT (cookies when
//! half-open SAs pile up, INVALID_KE_PAYLOAD retry, NAT detection and the
//! move to port 4500), IKE_AUTH with PSK and the first child SA (traffic
//! selector narrowing, a virtual address through CP), CREATE_CHILD_SA (child
//! rekey with optional PFS, IKE SA rekey, the collisions of 2.8.1/2.8.2),
//! INFORMATIONAL (delete, liveness), a window of one request each way with
//! retransmission, NAT keepalives, lifetimes with jitter, and fragmented
//! messages on receive (RFC 7383).
//!
//! Panic policy: nothing a peer sends can panic; bad input is dropped and
//! counted ([`Stats`]) or answered with the notify RFC 7296 asks for.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use cpdp::msg::{Command, Direction, Lifetimes, PolicyAction, SaSpec, WirePrefix};
use zeroize::Zeroizing;

use super::config::{Connection, Role, Settings};
use super::proposal::{self, EspSuite};
use super::ts;
use crate::codepoints::{
    AuthMethod, CfgAttr, CfgType, DhGroup, ExchangeType, NotifyType, PayloadType, ProtocolId, IKE_PORT, MPSA_VENDOR_ID,
    NATT_PORT,
};
use crate::crypto::dh::{self, DhPrivate};
use crate::crypto::keys::{self, IkeKeys, IkeSuite};
use crate::crypto::{Random, Secret};
use crate::mpsa::{GatewayGroup, MpsaRole};
use crate::wire::message::parse_chain;
use crate::wire::{
    Authentication, Configuration, Delete, Flags, Header, Identification, KeyExchange, Message, Notify, Payload,
    Proposal, TrafficSelector,
};

mod mpsa;
pub use mpsa::{EndpointGroup, GroupInfo};

/// What the engine asks its caller to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Send `data` as the UDP payload from `local` to `remote` (with the
    /// non-ESP marker already in place on port 4500).
    Send { local: SocketAddr, remote: SocketAddr, data: Vec<u8> },
    /// A command for the dataplane.
    Dataplane(Command),
    /// Something an operator wants to see.
    Event(Event),
}

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
        why: String,
    },
    IkeRekeyed {
        conn: String,
        old: (u64, u64),
        new: (u64, u64),
    },
    ChildUp {
        conn: String,
        spi_in: u32,
        spi_out: u32,
        rekey_of: Option<u32>,
    },
    ChildDown {
        conn: String,
        spi_in: u32,
        spi_out: u32,
        why: String,
    },
    Failed {
        conn: String,
        why: String,
    },
    /// Multi-point SA: a group SA made, handed out, installed, refused.
    Mpsa {
        group: String,
        what: String,
    },
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
            Event::ChildUp { conn, spi_in, spi_out, rekey_of } => {
                write!(f, "{conn}: child SA {spi_in:08x}_i {spi_out:08x}_o installed")?;
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
}

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

/// How long the responder of a child rekey keeps sending on the old SA when
/// the initiator does not delete it (it normally does within a round trip).
const OUTBOUND_SWITCH_GRACE: Duration = Duration::from_secs(2);

/// A child SA (ESP, tunnel mode).
#[derive(Debug)]
pub struct Child {
    pub spi_in: u32,
    pub spi_out: u32,
    pub suite: EspSuite,
    /// Keys for what we receive (encryption, integrity) and what we send.
    keys_in: (Secret, Secret),
    keys_out: (Secret, Secret),
    pub ts_local: Vec<TrafficSelector>,
    pub ts_remote: Vec<TrafficSelector>,
    pub state: ChildState,
    pub created: Instant,
    rekey_at: Option<Instant>,
    expire_at: Instant,
    /// Collision bookkeeping (RFC 7296 2.8.1): the lowest nonce of our
    /// rekey exchange and of the peer's, with the SPI each created.
    rekey_ours: Option<(Vec<u8>, u32)>,
    rekey_theirs: Option<(Vec<u8>, u32)>,
    pub rekey_of: Option<u32>,
    /// Responder of a rekey: the child that replaces this one, and when our
    /// outbound traffic moves to it at the latest. Until the initiator
    /// deletes this SA it may not have installed the new inbound SA yet, so
    /// sending on the new one early would lose packets.
    successor: Option<(u32, Instant)>,
}

/// An exchange we started and wait on.
#[derive(Debug)]
enum Pending {
    Init,
    Auth { spi_in: u32, ts_local: Vec<TrafficSelector>, ts_remote: Vec<TrafficSelector> },
    RekeyChild { old: u32, spi_in: u32, ni: Vec<u8>, dh: Option<(DhGroup, DhPrivate)> },
    RekeyIke { spi: u64, ni: Vec<u8>, dh: Option<DhPrivate> },
    DeleteChildren(Vec<u32>),
    DeleteIke,
    Liveness,
    MpsaPut { group: usize, spi: u32 },
    Informational,
}

/// A request on its way, kept for retransmission.
#[derive(Debug)]
struct InFlight {
    message_id: u32,
    packets: Vec<Vec<u8>>,
    sent: Instant,
    next: Instant,
    tries: u32,
    what: Pending,
}

/// Exchanges waiting for the window.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Task {
    RekeyChild(u32),
    RekeyIke,
    DeleteChild(u32),
    DeleteIke,
    Liveness,
    /// Hand group `.0`'s current SA to this member (mpsa 3.1).
    MpsaPut(usize),
    /// An INFORMATIONAL request with these payloads (tools and tests).
    Informational(Vec<Payload>),
}

/// What the initiator keeps between IKE_SA_INIT and its response.
#[derive(Debug)]
struct InitState {
    group: DhGroup,
    dh: Option<DhPrivate>,
    ke: Vec<u8>,
    cookie: Option<Vec<u8>>,
    retries: u32,
}

/// RFC 7383 reassembly: message ID, first payload type, fragments by number.
type Reassembly = (u32, PayloadType, Vec<Option<Vec<u8>>>);

/// One IKE SA.
#[derive(Debug)]
pub struct IkeSa {
    pub conn: usize,
    /// We are the original initiator.
    pub initiator: bool,
    pub spi_i: u64,
    pub spi_r: u64,
    pub state: IkeState,
    pub suite: Option<IkeSuite>,
    keys: Option<IkeKeys>,
    pub local: SocketAddr,
    pub remote: SocketAddr,
    /// NAT detected (either side): IKE on 4500, ESP in UDP.
    pub nat: bool,
    pub we_behind_nat: bool,
    next_request: u32,
    expect_request: u32,
    last_response: Option<(u32, Vec<Vec<u8>>)>,
    /// While a request is handled: (our address, the peer's) it came in
    /// on, where its response goes (RFC 7296 2.11), whatever `local` and
    /// `remote` say.
    reply_to: Option<(SocketAddr, SocketAddr)>,
    in_flight: Option<InFlight>,
    tasks: VecDeque<Task>,
    init: Option<InitState>,
    init_request: Vec<u8>,
    init_response: Vec<u8>,
    ni: Vec<u8>,
    nr: Vec<u8>,
    pub peer_id: Option<Identification>,
    /// The identity this SA is filed under in `Engine::by_peer`.
    peer_key: Option<Identification>,
    pub children: Vec<Child>,
    pub created: Instant,
    pub established: Option<Instant>,
    rekey_at: Option<Instant>,
    last_heard: Instant,
    keepalive_at: Option<Instant>,
    pub vip: Option<IpAddr>,
    /// RFC 7383 reassembly: (message ID, first payload, fragments by number).
    fragments: Option<Reassembly>,
    pub peer_mpsa: bool,
    /// The peer announced IKEV2_FRAGMENTATION_SUPPORTED (RFC 7383 2.3).
    pub peer_frag: bool,
    /// IKE SA rekey collision (2.8.2): lowest nonce of ours / theirs, SPI.
    ike_rekey_ours: Option<(Vec<u8>, u64)>,
    ike_rekey_theirs: Option<(Vec<u8>, u64)>,
    /// Responder half-open deadline.
    half_open_until: Option<Instant>,
    /// The deadline this SA has on the engine's timer heap.
    scheduled: Option<Instant>,
}

impl IkeSa {
    fn our_spi(&self) -> u64 {
        if self.initiator {
            self.spi_i
        } else {
            self.spi_r
        }
    }

    pub fn child(&self, spi_in: u32) -> Option<&Child> {
        self.children.iter().find(|c| c.spi_in == spi_in)
    }
}

/// The IKEv2 engine: every IKE SA of every connection.
pub struct Engine {
    conns: Vec<Connection>,
    settings: Settings,
    rng: Box<dyn Random>,
    dh_pool: dh::KeyPool,
    sas: HashMap<u64, IkeSa>,
    /// Responder: (peer's SPIi, peer address) -> our SPI, for IKE_SA_INIT
    /// retransmissions and duplicates.
    init_index: HashMap<(u64, SocketAddr), u64>,
    half_open: usize,
    cookie_secret: [u8; 32],
    out: VecDeque<Output>,
    pub stats: Stats,
    /// Policies we installed: prefix -> outbound SPI, so deleting an old
    /// child never removes the policy its successor took over.
    policies: HashMap<WirePrefix, u32>,
    /// Virtual addresses leased: address -> our SPI of the IKE SA.
    leases: HashMap<IpAddr, u64>,
    /// MPSA: off, gateway (hands group SAs out) or endpoint (installs them).
    /// Anything but off announces V(MPSA) in IKE_SA_INIT.
    pub mpsa_role: MpsaRole,
    /// Gateway: the groups and their current SAs.
    groups: Vec<GatewayGroup>,
    /// Endpoint: group SAs installed, by connection name.
    endpoint_groups: HashMap<String, EndpointGroup>,
    /// The latest time any call brought, for deadlines that are "now".
    last_now: Option<Instant>,
    /// Deadlines by SA (entries go stale when an SA's deadline moves; see
    /// `IkeSa::scheduled`).
    timers: std::collections::BinaryHeap<std::cmp::Reverse<(Instant, u64)>>,
    /// SAs changed by the current call, to reschedule at its end.
    touched: Vec<u64>,
    /// Inbound child SPIs installed in the dataplane, kept by [`Self::dp`]
    /// from the commands it sends: a new SPI is checked against it in
    /// constant time (scanning every IKE SA's children made each new child
    /// SA cost O(SAs): 0.7 ms at 60,000 IKE SAs).
    installed_in: std::collections::HashSet<u32>,
    /// Our SPIs of the IKE SAs by the peer's identity (authenticated, or
    /// the one an initiator's IKE_AUTH expects): INITIAL_CONTACT's checks
    /// (RFC 7296 2.4) without scanning every IKE SA.
    by_peer: HashMap<Identification, std::collections::HashSet<u64>>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").field("ike_sas", &self.sas.len()).field("stats", &self.stats).finish()
    }
}

/// Why a request failed, answered with this notify.
type Refusal = (NotifyType, Vec<u8>);

fn find<T>(payloads: &[Payload], f: impl Fn(&Payload) -> Option<&T>) -> Option<&T> {
    payloads.iter().find_map(f)
}

fn notify(payloads: &[Payload], ty: NotifyType) -> Option<&Notify> {
    payloads.iter().find_map(|p| match p {
        Payload::Notify(n) if n.ty == ty => Some(n),
        _ => None,
    })
}

fn first_error(payloads: &[Payload]) -> Option<NotifyType> {
    payloads.iter().find_map(|p| match p {
        Payload::Notify(n) if n.ty.is_error() => Some(n.ty),
        _ => None,
    })
}

fn nonce_of(payloads: &[Payload]) -> Option<&Vec<u8>> {
    find(payloads, |p| if let Payload::Nonce(n) = p { Some(n) } else { None })
}

fn sa_of(payloads: &[Payload]) -> Option<&Vec<Proposal>> {
    find(payloads, |p| if let Payload::Sa(s) = p { Some(s) } else { None })
}

fn ke_of(payloads: &[Payload]) -> Option<&KeyExchange> {
    find(payloads, |p| if let Payload::Ke(k) = p { Some(k) } else { None })
}

fn tsi_of(payloads: &[Payload]) -> Option<&Vec<TrafficSelector>> {
    find(payloads, |p| if let Payload::TsI(t) = p { Some(t) } else { None })
}

fn tsr_of(payloads: &[Payload]) -> Option<&Vec<TrafficSelector>> {
    find(payloads, |p| if let Payload::TsR(t) = p { Some(t) } else { None })
}

fn lowest<'a>(a: &'a [u8], b: &'a [u8]) -> Vec<u8> {
    if a <= b {
        a.to_vec()
    } else {
        b.to_vec()
    }
}

/// The octets of the UDP payload: a non-ESP marker first on port 4500.
fn frame(local: SocketAddr, ike: Vec<u8>) -> Vec<u8> {
    if local.port() == IKE_PORT {
        ike
    } else {
        let mut v = Vec::with_capacity(ike.len() + 4);
        v.extend_from_slice(&[0, 0, 0, 0]);
        v.extend_from_slice(&ike);
        v
    }
}

impl Engine {
    pub fn new(conns: Vec<Connection>, settings: Settings, mut rng: Box<dyn Random>) -> Engine {
        let mut cookie_secret = [0u8; 32];
        rng.fill(&mut cookie_secret);
        Engine {
            conns,
            settings,
            rng,
            dh_pool: dh::KeyPool::default(),
            sas: HashMap::new(),
            init_index: HashMap::new(),
            half_open: 0,
            cookie_secret,
            out: VecDeque::new(),
            stats: Stats::default(),
            policies: HashMap::new(),
            leases: HashMap::new(),
            mpsa_role: MpsaRole::Off,
            groups: Vec::new(),
            endpoint_groups: HashMap::new(),
            last_now: None,
            timers: Default::default(),
            touched: Vec::new(),
            installed_in: Default::default(),
            by_peer: HashMap::new(),
        }
    }

    pub fn connections(&self) -> &[Connection] {
        &self.conns
    }

    pub fn ike_sas(&self) -> impl Iterator<Item = &IkeSa> {
        self.sas.values()
    }

    pub fn half_open(&self) -> usize {
        self.half_open
    }

    /// The next output, if any. Call until None after every input.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    fn event(&mut self, e: Event) {
        self.out.push_back(Output::Event(e));
    }

    fn dp(&mut self, c: Command) {
        match &c {
            Command::InstallSa(s) if s.direction == Direction::In => {
                self.installed_in.insert(s.spi);
            }
            Command::DeleteSa { spi, direction: Direction::In } => {
                self.installed_in.remove(spi);
            }
            _ => {}
        }
        self.out.push_back(Output::Dataplane(c));
    }

    fn send(&mut self, local: SocketAddr, remote: SocketAddr, ike: Vec<u8>) {
        self.stats.sent += 1;
        self.out.push_back(Output::Send { local, remote, data: frame(local, ike) });
    }

    fn jitter(&mut self, d: Duration, percent: u8) -> Duration {
        let max = d.as_millis() as u64 * percent as u64 / 100;
        if max == 0 {
            return d;
        }
        d - Duration::from_millis(self.rng.u64() % max)
    }

    fn new_spi(&mut self) -> u64 {
        loop {
            let s = self.rng.u64();
            if s != 0 && !self.sas.contains_key(&s) {
                return s;
            }
        }
    }

    fn new_child_spi(&mut self) -> u32 {
        loop {
            // RFC 4303 2.1: 1..255 are reserved.
            let s = self.rng.u32();
            if s > 255 && !self.installed_in.contains(&s) {
                return s;
            }
        }
    }

    fn conn_index(&self, name: &str) -> Option<usize> {
        self.conns.iter().position(|c| c.name == name)
    }

    // ---- Starting things -------------------------------------------------

    /// Starts an IKE SA for connection `name` (initiator).
    pub fn initiate(&mut self, now: Instant, name: &str) -> Result<(), String> {
        let r = self.initiate_inner(now, name);
        self.reschedule();
        r
    }

    fn initiate_inner(&mut self, now: Instant, name: &str) -> Result<(), String> {
        let ci = self.conn_index(name).ok_or_else(|| format!("no connection named {name:?}"))?;
        let c = &self.conns[ci];
        let remote = c.remote.ok_or_else(|| format!("{name}: no remote address to initiate to"))?;
        let local = c.local.ok_or_else(|| format!("{name}: no local address to initiate from"))?;
        let group = c.ike[0].dh;
        let spi = self.new_spi();
        let ni = self.rng.vec(32);
        let mut sa = IkeSa {
            conn: ci,
            initiator: true,
            spi_i: spi,
            spi_r: 0,
            state: IkeState::Connecting,
            suite: None,
            keys: None,
            local: SocketAddr::new(local, IKE_PORT),
            remote: SocketAddr::new(remote, IKE_PORT),
            nat: false,
            we_behind_nat: false,
            next_request: 0,
            expect_request: 0,
            last_response: None,
            reply_to: None,
            in_flight: None,
            tasks: VecDeque::new(),
            init: Some(InitState { group, dh: None, ke: Vec::new(), cookie: None, retries: 0 }),
            init_request: Vec::new(),
            init_response: Vec::new(),
            ni,
            nr: Vec::new(),
            peer_id: None,
            peer_key: None,
            children: Vec::new(),
            created: now,
            established: None,
            rekey_at: None,
            last_heard: now,
            keepalive_at: None,
            vip: None,
            fragments: None,
            peer_mpsa: false,
            peer_frag: false,
            ike_rekey_ours: None,
            ike_rekey_theirs: None,
            half_open_until: None,
            scheduled: None,
        };
        let r = self.send_init(now, &mut sa, true);
        self.insert_sa(spi, sa);
        r
    }

    /// (Re)sends IKE_SA_INIT; `new_key`: make a new DH key pair first.
    fn send_init(&mut self, now: Instant, sa: &mut IkeSa, new_key: bool) -> Result<(), String> {
        let c = &self.conns[sa.conn];
        let init = sa.init.as_mut().expect("initiator state while connecting");
        if new_key {
            let (d, ke) = self.dh_pool.generate(init.group, self.rng.as_mut()).map_err(|e| e.to_string())?;
            init.dh = Some(d);
            init.ke = ke;
        }
        // Our proposals, those with the group we send a KE for first.
        let mut suites = c.ike.clone();
        suites.sort_by_key(|s| s.dh != init.group);
        let mut payloads = Vec::new();
        if let Some(cookie) = &init.cookie {
            payloads.push(Payload::Notify(Notify::new(NotifyType::Cookie, cookie.clone())));
        }
        payloads.push(Payload::Sa(proposal::ike_proposals(&suites, None)));
        payloads.push(Payload::Ke(KeyExchange { group: init.group.value(), data: init.ke.clone() }));
        payloads.push(Payload::Nonce(sa.ni.clone()));
        payloads.push(Payload::Notify(Notify::new(
            NotifyType::NatDetectionSourceIp,
            keys::natd_hash(sa.spi_i, 0, sa.local),
        )));
        payloads.push(Payload::Notify(Notify::new(
            NotifyType::NatDetectionDestinationIp,
            keys::natd_hash(sa.spi_i, 0, sa.remote),
        )));
        payloads.push(Payload::Notify(Notify::new(NotifyType::IkeFragmentationSupported, vec![])));
        if self.mpsa_role != MpsaRole::Off {
            payloads.push(Payload::VendorId(MPSA_VENDOR_ID.to_vec()));
        }
        let h = Header {
            spi_i: sa.spi_i,
            spi_r: 0,
            next_payload: PayloadType::NoNextPayload,
            exchange: ExchangeType::IkeSaInit,
            flags: Flags { initiator: true, ..Default::default() },
            message_id: 0,
            length: 0,
        };
        let msg = Message::emit_clear(h, &payloads);
        sa.init_request = msg.clone();
        sa.next_request = 1;
        sa.in_flight = Some(InFlight {
            message_id: 0,
            packets: vec![msg.clone()],
            sent: now,
            next: now + self.settings.retransmit_base,
            tries: 0,
            what: Pending::Init,
        });
        let (l, r) = (sa.local, sa.remote);
        self.send(l, r, msg);
        Ok(())
    }

    /// Sends `payloads` in an INFORMATIONAL request on every established IKE
    /// SA of connection `name` (for tools and tests: a notify by hand).
    pub fn send_informational(&mut self, now: Instant, name: &str, payloads: Vec<Payload>) -> Result<usize, String> {
        let spis = self.established_of(name)?;
        for s in &spis {
            self.queue(now, *s, Task::Informational(payloads.clone()));
        }
        self.reschedule();
        Ok(spis.len())
    }

    /// Our SPIs of the established IKE SAs of connection `name`.
    fn established_of(&self, name: &str) -> Result<Vec<u64>, String> {
        let ci = self.conn_index(name).ok_or_else(|| format!("no connection named {name:?}"))?;
        Ok(self.sas.iter().filter(|(_, s)| s.conn == ci && s.state == IkeState::Established).map(|(k, _)| *k).collect())
    }

    /// Deletes every IKE SA of connection `name` (INFORMATIONAL Delete).
    pub fn terminate(&mut self, now: Instant, name: &str) -> Result<usize, String> {
        let r = self.terminate_inner(now, name);
        self.reschedule();
        r
    }

    fn terminate_inner(&mut self, now: Instant, name: &str) -> Result<usize, String> {
        let ci = self.conn_index(name).ok_or_else(|| format!("no connection named {name:?}"))?;
        let spis: Vec<u64> = self.sas.iter().filter(|(_, s)| s.conn == ci).map(|(k, _)| *k).collect();
        for s in &spis {
            self.queue(now, *s, Task::DeleteIke);
        }
        Ok(spis.len())
    }

    /// Rekeys the IKE SA (`ike`) or every child SA of connection `name`.
    pub fn rekey(&mut self, now: Instant, name: &str, ike: bool) -> Result<usize, String> {
        let r = self.rekey_inner(now, name, ike);
        self.reschedule();
        r
    }

    fn rekey_inner(&mut self, now: Instant, name: &str, ike: bool) -> Result<usize, String> {
        let mut n = 0;
        for s in self.established_of(name)? {
            if ike {
                self.queue(now, s, Task::RekeyIke);
                n += 1;
            } else {
                let kids: Vec<u32> = self.sas[&s]
                    .children
                    .iter()
                    .filter(|c| c.state == ChildState::Installed)
                    .map(|c| c.spi_in)
                    .collect();
                for k in kids {
                    self.queue(now, s, Task::RekeyChild(k));
                    n += 1;
                }
            }
        }
        Ok(n)
    }

    fn queue(&mut self, now: Instant, spi: u64, t: Task) {
        if let Some(sa) = self.sas.get_mut(&spi) {
            if !sa.tasks.contains(&t) {
                sa.tasks.push_back(t);
            }
        }
        self.kick(now, spi);
    }

    /// Starts the next queued exchange if the window is free.
    fn kick(&mut self, now: Instant, spi: u64) {
        loop {
            let Some(sa) = self.sas.get_mut(&spi) else { return };
            if sa.in_flight.is_some() || !matches!(sa.state, IkeState::Established | IkeState::Rekeyed) {
                return;
            }
            let Some(t) = sa.tasks.pop_front() else { return };
            if self.start_task(now, spi, t) {
                return;
            }
        }
    }

    /// Returns whether a request went out.
    fn start_task(&mut self, now: Instant, spi: u64, t: Task) -> bool {
        let Some(mut sa) = self.sas.remove(&spi) else { return false };
        let sent = match t {
            Task::Liveness => {
                self.request(now, &mut sa, ExchangeType::Informational, vec![], Pending::Liveness);
                true
            }
            Task::DeleteIke => {
                sa.state = IkeState::Deleting;
                let d = Payload::Delete(Delete { protocol: ProtocolId::Ike, spis: vec![] });
                self.request(now, &mut sa, ExchangeType::Informational, vec![d], Pending::DeleteIke);
                true
            }
            Task::DeleteChild(s) => match sa.children.iter_mut().find(|c| c.spi_in == s) {
                Some(c) => {
                    c.state = ChildState::Deleting;
                    let d = Payload::Delete(Delete { protocol: ProtocolId::Esp, spis: vec![s] });
                    self.request(now, &mut sa, ExchangeType::Informational, vec![d], Pending::DeleteChildren(vec![s]));
                    true
                }
                None => false,
            },
            Task::RekeyChild(old) => self.start_child_rekey(now, &mut sa, old),
            Task::MpsaPut(g) => self.start_mpsa_put(now, &mut sa, g),
            Task::Informational(p) => {
                self.request(now, &mut sa, ExchangeType::Informational, p, Pending::Informational);
                true
            }
            Task::RekeyIke => {
                if sa.state == IkeState::Established {
                    self.start_ike_rekey(now, &mut sa);
                    true
                } else {
                    false
                }
            }
        };
        self.insert_sa(spi, sa);
        sent
    }

    fn start_child_rekey(&mut self, now: Instant, sa: &mut IkeSa, old: u32) -> bool {
        let Some(c) = sa.children.iter().find(|c| c.spi_in == old && c.state == ChildState::Installed) else {
            return false;
        };
        let conn = &self.conns[sa.conn];
        let (ts_l, ts_r) = (c.ts_local.clone(), c.ts_remote.clone());
        let mut suites = conn.esp.clone();
        // Offer the suite in use first.
        suites.sort_by_key(|s| s.encr != c.suite.encr || s.integ != c.suite.integ);
        let pfs = conn.pfs && suites[0].dh.is_some();
        let spi_in = self.new_child_spi();
        let ni = self.rng.vec(32);
        let mut payloads = vec![Payload::Notify(Notify::esp(NotifyType::RekeySa, old))];
        payloads.push(Payload::Sa(proposal::esp_proposals(&suites, spi_in, pfs)));
        payloads.push(Payload::Nonce(ni.clone()));
        let mut dh = None;
        if pfs {
            let g = suites[0].dh.unwrap_or(DhGroup::Curve25519);
            match self.dh_pool.generate(g, self.rng.as_mut()) {
                Ok((d, ke)) => {
                    payloads.push(Payload::Ke(KeyExchange { group: g.value(), data: ke }));
                    dh = Some((g, d));
                }
                Err(_) => return false,
            }
        }
        payloads.push(Payload::TsI(ts_l));
        payloads.push(Payload::TsR(ts_r));
        self.request(now, sa, ExchangeType::CreateChildSa, payloads, Pending::RekeyChild { old, spi_in, ni, dh });
        true
    }

    fn start_ike_rekey(&mut self, now: Instant, sa: &mut IkeSa) {
        let conn = &self.conns[sa.conn];
        let mut suites = conn.ike.clone();
        let cur = sa.suite.expect("established");
        suites.sort_by_key(|s| *s != cur);
        let spi = self.new_spi();
        let ni = self.rng.vec(32);
        let g = suites[0].dh;
        let Ok((d, ke)) = self.dh_pool.generate(g, self.rng.as_mut()) else { return };
        let payloads = vec![
            Payload::Sa(proposal::ike_proposals(&suites, Some(spi))),
            Payload::Nonce(ni.clone()),
            Payload::Ke(KeyExchange { group: g.value(), data: ke }),
        ];
        // Reserve the SPI so nothing else takes it before the answer.
        self.request(now, sa, ExchangeType::CreateChildSa, payloads, Pending::RekeyIke { spi, ni, dh: Some(d) });
    }

    /// Sends a protected request on `sa` and remembers it for retransmission.
    fn request(&mut self, now: Instant, sa: &mut IkeSa, ex: ExchangeType, payloads: Vec<Payload>, what: Pending) {
        let (Some(suite), Some(k)) = (sa.suite, sa.keys.as_ref()) else { return };
        let h = Header {
            spi_i: sa.spi_i,
            spi_r: sa.spi_r,
            next_payload: PayloadType::NoNextPayload,
            exchange: ex,
            flags: Flags { initiator: sa.initiator, ..Default::default() },
            message_id: sa.next_request,
            length: 0,
        };
        let packets = seal(k.sk(&suite, sa.initiator), h, &payloads, frag_size(sa, &self.settings), self.rng.as_mut());
        sa.in_flight = Some(InFlight {
            message_id: sa.next_request,
            packets: packets.clone(),
            sent: now,
            next: now + self.settings.retransmit_base,
            tries: 0,
            what,
        });
        sa.next_request = sa.next_request.wrapping_add(1);
        for m in packets {
            self.send(sa.local, sa.remote, m);
        }
    }

    /// Sends a protected response and keeps it for retransmitted requests.
    fn respond(&mut self, sa: &mut IkeSa, ex: ExchangeType, message_id: u32, payloads: Vec<Payload>) {
        let (Some(suite), Some(k)) = (sa.suite, sa.keys.as_ref()) else { return };
        let h = Header {
            spi_i: sa.spi_i,
            spi_r: sa.spi_r,
            next_payload: PayloadType::NoNextPayload,
            exchange: ex,
            flags: Flags { initiator: sa.initiator, response: true, ..Default::default() },
            message_id,
            length: 0,
        };
        let packets = seal(k.sk(&suite, sa.initiator), h, &payloads, frag_size(sa, &self.settings), self.rng.as_mut());
        sa.last_response = Some((message_id, packets.clone()));
        // RFC 7296 2.11: a response goes to the address and port the
        // request came from, and from the one it was sent to.
        let (l, r) = sa.reply_to.unwrap_or((sa.local, sa.remote));
        for m in packets {
            self.send(l, r, m);
        }
    }

    // ---- Input ----------------------------------------------------------

    /// One UDP payload received on `local` from `remote`.
    pub fn handle_datagram(&mut self, now: Instant, local: SocketAddr, remote: SocketAddr, data: &[u8]) {
        self.last_now = Some(now);
        self.handle_datagram_inner(now, local, remote, data);
        self.reschedule();
    }

    fn handle_datagram_inner(&mut self, now: Instant, local: SocketAddr, remote: SocketAddr, data: &[u8]) {
        self.stats.received += 1;
        let ike = if local.port() == IKE_PORT {
            data
        } else {
            // RFC 3948 2.2: 0xFF alone is a keepalive; IKE starts with the
            // four-zero non-ESP marker; anything else is ESP, not ours.
            if data == [0xff] {
                self.stats.keepalives += 1;
                return;
            }
            match data.strip_prefix(&[0, 0, 0, 0]) {
                Some(d) => d,
                None => {
                    self.stats.malformed += 1;
                    return;
                }
            }
        };
        let header = match Header::parse(ike) {
            Ok(h) => h,
            Err(_) => {
                self.stats.malformed += 1;
                return;
            }
        };
        if header.exchange == ExchangeType::IkeSaInit && !header.flags.response {
            // RFC 7296 3.1: the request comes from the original initiator
            // (I set), whose SPI "MUST NOT be zero"; SPIr is still zero and
            // the message ID 0 (2.2). Anything else is dropped unanswered.
            if header.flags.initiator && header.spi_i != 0 && header.spi_r == 0 && header.message_id == 0 {
                self.init_request(now, local, remote, ike, header);
            } else {
                self.stats.bad_init_request += 1;
            }
            return;
        }
        let ours = if header.flags.initiator { header.spi_r } else { header.spi_i };
        let Some(mut sa) = self.sas.remove(&ours) else {
            self.stats.unknown_spi += 1;
            return;
        };
        // The SA must be the one these SPIs name, in the right role.
        let matches = sa.spi_i == header.spi_i
            && (sa.spi_r == header.spi_r || (header.exchange == ExchangeType::IkeSaInit && sa.spi_r == 0))
            && header.flags.initiator != sa.initiator;
        if !matches {
            self.stats.unknown_spi += 1;
            self.insert_sa(ours, sa);
            return;
        }
        if header.exchange == ExchangeType::IkeSaInit {
            self.init_response(now, &mut sa, local, remote, ike, header);
        } else if header.flags.response {
            self.response(now, &mut sa, local, remote, ike, header);
        } else {
            self.request_in(now, &mut sa, local, remote, ike, header);
        }
        self.put_back(now, ours, sa);
    }

    /// Reinserts an SA unless it was deleted, and starts queued work.
    fn put_back(&mut self, now: Instant, spi: u64, sa: IkeSa) {
        if sa.state == IkeState::Deleting && sa.in_flight.is_none() && sa.tasks.is_empty() {
            self.remove_sa(sa, "deleted");
            return;
        }
        self.insert_sa(spi, sa);
        self.kick(now, spi);
    }

    fn remove_sa(&mut self, mut sa: IkeSa, why: &str) {
        self.mpsa_sa_gone(&sa);
        self.file_peer(&mut sa, None);
        if sa.half_open_until.take().is_some() {
            self.half_open = self.half_open.saturating_sub(1);
        }
        for c in std::mem::take(&mut sa.children) {
            self.uninstall_child(&sa, &c, why);
        }
        if let Some(v) = sa.vip {
            self.leases.remove(&v);
        }
        if !sa.initiator {
            self.init_index.remove(&(sa.spi_i, sa.remote));
        }
        if matches!(sa.state, IkeState::Established | IkeState::Deleting | IkeState::Rekeyed)
            || sa.established.is_some()
        {
            let conn = self.conns[sa.conn].name.clone();
            self.event(Event::IkeDown { conn, spi_i: sa.spi_i, spi_r: sa.spi_r, why: why.into() });
        }
    }

    fn cookie(&self, ni: &[u8], remote: SocketAddr, spi_i: u64) -> Vec<u8> {
        // RFC 7296 2.6: Cookie = <VersionIDofSecret> | Hash(Ni | IPi | SPIi | <secret>).
        let mut c = vec![0u8];
        let ip = match remote.ip() {
            IpAddr::V4(a) => a.octets().to_vec(),
            IpAddr::V6(a) => a.octets().to_vec(),
        };
        let h = crate::crypto::Prf::HmacSha256.prf(&self.cookie_secret, &[ni, &ip, &spi_i.to_be_bytes()]);
        c.extend_from_slice(&h.as_slice()[..16]);
        c
    }

    /// Responder: IKE_SA_INIT request.
    fn init_request(&mut self, now: Instant, local: SocketAddr, remote: SocketAddr, ike: &[u8], h: Header) {
        // A retransmission: answer with the same response.
        if let Some(spi) = self.init_index.get(&(h.spi_i, remote)) {
            if let Some(sa) = self.sas.get(spi) {
                if sa.init_request == ike {
                    self.stats.retransmits_answered += 1;
                    let (l, r, m) = (sa.local, sa.remote, sa.init_response.clone());
                    self.send(l, r, m);
                }
            }
            return;
        }
        let unprotected = |e: &mut Engine, ty: NotifyType, data: Vec<u8>| {
            let hdr = Header {
                spi_i: h.spi_i,
                spi_r: 0,
                next_payload: PayloadType::NoNextPayload,
                exchange: ExchangeType::IkeSaInit,
                flags: Flags { response: true, ..Default::default() },
                message_id: 0,
                length: 0,
            };
            let m = Message::emit_clear(hdr, &[Payload::Notify(Notify::new(ty, data))]);
            e.send(local, remote, m);
        };
        let m = match Message::parse(ike) {
            Ok(m) => m,
            Err(e) => {
                self.stats.malformed += 1;
                let (ty, data) = e.notify();
                unprotected(self, ty, data);
                return;
            }
        };
        let p = &m.payloads;
        let (Some(sa_offer), Some(ke), Some(ni)) = (sa_of(p), ke_of(p), nonce_of(p)) else {
            self.stats.malformed += 1;
            unprotected(self, NotifyType::InvalidSyntax, vec![]);
            return;
        };
        // RFC 7296 2.6: under load, demand a cookie before keeping state.
        if self.half_open >= self.settings.cookie_threshold {
            let want = self.cookie(ni, remote, h.spi_i);
            if notify(p, NotifyType::Cookie).map(|n| &n.data) != Some(&want) {
                self.stats.cookies_sent += 1;
                unprotected(self, NotifyType::Cookie, want);
                return;
            }
        }
        // The connection: the first whose addresses fit. Its IKE proposals
        // decide; IKE_AUTH may move to another with the same ones.
        let Some(ci) = self
            .conns
            .iter()
            .position(|c| c.local.is_none_or(|a| a == local.ip()) && c.remote.is_none_or(|a| a == remote.ip()))
        else {
            self.stats.no_proposal += 1;
            unprotected(self, NotifyType::NoProposalChosen, vec![]);
            return;
        };
        let Some((suite, chosen)) = proposal::select_ike(&self.conns[ci].ike, sa_offer) else {
            self.stats.no_proposal += 1;
            unprotected(self, NotifyType::NoProposalChosen, vec![]);
            return;
        };
        // RFC 7296 1.2: a KE for another group than the chosen one gets
        // INVALID_KE_PAYLOAD naming the group we want.
        if ke.group != suite.dh.value() {
            unprotected(self, NotifyType::InvalidKePayload, suite.dh.value().to_be_bytes().to_vec());
            return;
        }
        let Ok((ours, ke_r)) = self.dh_pool.generate(suite.dh, self.rng.as_mut()) else { return };
        let g_ir = match dh::agree(ours, &ke.data) {
            Ok(s) => s,
            Err(_) => {
                self.stats.malformed += 1;
                unprotected(self, NotifyType::InvalidSyntax, vec![]);
                return;
            }
        };
        let spi_r = self.new_spi();
        let nr = self.rng.vec(32);
        let seed = keys::skeyseed(suite.prf, ni, &nr, &g_ir);
        let k = IkeKeys::derive(&suite, &seed, ni, &nr, h.spi_i, spi_r);
        // NAT detection (RFC 7296 2.23).
        let src = notify(p, NotifyType::NatDetectionSourceIp);
        let dst = notify(p, NotifyType::NatDetectionDestinationIp);
        let (peer_nat, we_nat) = match (src, dst) {
            (Some(s), Some(d)) => {
                (s.data != keys::natd_hash(h.spi_i, 0, remote), d.data != keys::natd_hash(h.spi_i, 0, local))
            }
            _ => (false, false),
        };
        let peer_mpsa = p.iter().any(|x| matches!(x, Payload::VendorId(v) if v.as_slice() == MPSA_VENDOR_ID));
        let mut payloads = vec![
            Payload::Sa(vec![chosen]),
            Payload::Ke(KeyExchange { group: suite.dh.value(), data: ke_r }),
            Payload::Nonce(nr.clone()),
        ];
        if src.is_some() {
            payloads.push(Payload::Notify(Notify::new(
                NotifyType::NatDetectionSourceIp,
                keys::natd_hash(h.spi_i, spi_r, local),
            )));
            payloads.push(Payload::Notify(Notify::new(
                NotifyType::NatDetectionDestinationIp,
                keys::natd_hash(h.spi_i, spi_r, remote),
            )));
        }
        if notify(p, NotifyType::IkeFragmentationSupported).is_some() {
            payloads.push(Payload::Notify(Notify::new(NotifyType::IkeFragmentationSupported, vec![])));
        }
        if self.mpsa_role != MpsaRole::Off {
            payloads.push(Payload::VendorId(MPSA_VENDOR_ID.to_vec()));
        }
        let hdr = Header {
            spi_i: h.spi_i,
            spi_r,
            next_payload: PayloadType::NoNextPayload,
            exchange: ExchangeType::IkeSaInit,
            flags: Flags { response: true, ..Default::default() },
            message_id: 0,
            length: 0,
        };
        let resp = Message::emit_clear(hdr, &payloads);
        let sa = IkeSa {
            conn: ci,
            initiator: false,
            spi_i: h.spi_i,
            spi_r,
            state: IkeState::Authenticating,
            suite: Some(suite),
            keys: Some(k),
            local,
            remote,
            nat: peer_nat || we_nat,
            we_behind_nat: we_nat,
            next_request: 0,
            expect_request: 1,
            last_response: None,
            reply_to: None,
            in_flight: None,
            tasks: VecDeque::new(),
            init: None,
            init_request: ike.to_vec(),
            init_response: resp.clone(),
            ni: ni.clone(),
            nr,
            peer_id: None,
            peer_key: None,
            children: Vec::new(),
            created: now,
            established: None,
            rekey_at: None,
            last_heard: now,
            keepalive_at: None,
            vip: None,
            fragments: None,
            peer_mpsa,
            peer_frag: notify(p, NotifyType::IkeFragmentationSupported).is_some(),
            ike_rekey_ours: None,
            ike_rekey_theirs: None,
            half_open_until: Some(now + self.settings.half_open_timeout),
            scheduled: None,
        };
        self.half_open += 1;
        self.init_index.insert((h.spi_i, remote), spi_r);
        self.insert_sa(spi_r, sa);
        self.send(local, remote, resp);
    }

    /// Initiator: the IKE_SA_INIT response.
    fn init_response(
        &mut self,
        now: Instant,
        sa: &mut IkeSa,
        local: SocketAddr,
        remote: SocketAddr,
        ike: &[u8],
        h: Header,
    ) {
        if sa.state != IkeState::Connecting || h.message_id != 0 {
            self.stats.bad_message_id += 1;
            return;
        }
        let Ok(m) = Message::parse(ike) else {
            self.stats.malformed += 1;
            return;
        };
        let p = &m.payloads;
        // RFC 7296 2.6: a cookie request: send again with the cookie first.
        if let Some(c) = notify(p, NotifyType::Cookie) {
            let init = sa.init.as_mut().expect("connecting");
            if init.retries < 3 && !c.data.is_empty() && c.data.len() <= 64 {
                init.retries += 1;
                init.cookie = Some(c.data.clone());
                let _ = self.send_init(now, sa, false);
            }
            return;
        }
        // RFC 7296 1.2: the responder wants another group.
        if let Some(n) = notify(p, NotifyType::InvalidKePayload) {
            let init = sa.init.as_mut().expect("connecting");
            let want = n.data.get(..2).map(|b| DhGroup::from_value(u16::from_be_bytes([b[0], b[1]])));
            let ok = want.is_some_and(|g| self.conns[sa.conn].ike.iter().any(|s| s.dh == g));
            if ok && init.retries < 3 {
                init.retries += 1;
                init.group = want.expect("checked");
                if let Err(e) = self.send_init(now, sa, true) {
                    self.fail(sa, e);
                }
            } else {
                self.fail(sa, format!("INVALID_KE_PAYLOAD asks for a group we do not offer ({want:?})"));
            }
            return;
        }
        if let Some(e) = first_error(p) {
            if e == NotifyType::NoProposalChosen {
                self.stats.no_proposal += 1;
            }
            self.fail(sa, format!("IKE_SA_INIT refused: {e:?}"));
            return;
        }
        let (Some(offer), Some(ke), Some(nr)) = (sa_of(p), ke_of(p), nonce_of(p)) else {
            self.stats.malformed += 1;
            return;
        };
        let Some(suite) = proposal::chosen_ike(&self.conns[sa.conn].ike, offer) else {
            self.fail(sa, "the responder chose a proposal we did not offer".into());
            return;
        };
        let init = sa.init.as_mut().expect("connecting");
        if ke.group != suite.dh.value() || suite.dh != init.group {
            self.fail(sa, "the responder's KE group is not the one chosen".into());
            return;
        }
        let Some(d) = init.dh.take() else { return };
        let Ok(g_ir) = dh::agree(d, &ke.data) else {
            self.fail(sa, "the responder's public value is invalid".into());
            return;
        };
        sa.spi_r = h.spi_r;
        sa.nr = nr.clone();
        let seed = keys::skeyseed(suite.prf, &sa.ni, nr, &g_ir);
        sa.keys = Some(IkeKeys::derive(&suite, &seed, &sa.ni, nr, sa.spi_i, sa.spi_r));
        sa.suite = Some(suite);
        sa.init_response = ike.to_vec();
        sa.init = None;
        sa.in_flight = None;
        sa.state = IkeState::Authenticating;
        sa.peer_mpsa = p.iter().any(|x| matches!(x, Payload::VendorId(v) if v.as_slice() == MPSA_VENDOR_ID));
        sa.peer_frag = notify(p, NotifyType::IkeFragmentationSupported).is_some();
        sa.last_heard = now;
        if let (Some(s), Some(d)) =
            (notify(p, NotifyType::NatDetectionSourceIp), notify(p, NotifyType::NatDetectionDestinationIp))
        {
            let peer_nat = s.data != keys::natd_hash(sa.spi_i, sa.spi_r, remote);
            let we_nat = d.data != keys::natd_hash(sa.spi_i, sa.spi_r, local);
            sa.nat = peer_nat || we_nat;
            sa.we_behind_nat = we_nat;
        }
        // RFC 7296 2.23: with a NAT, move to port 4500 now.
        if sa.nat {
            sa.local.set_port(NATT_PORT);
            sa.remote.set_port(NATT_PORT);
        }
        self.send_auth(now, sa);
    }

    fn blank_sa(&self, now: Instant) -> IkeSa {
        IkeSa {
            conn: 0,
            initiator: true,
            spi_i: 0,
            spi_r: 0,
            state: IkeState::Connecting,
            suite: None,
            keys: None,
            local: SocketAddr::from(([0, 0, 0, 0], 0)),
            remote: SocketAddr::from(([0, 0, 0, 0], 0)),
            nat: false,
            we_behind_nat: false,
            next_request: 0,
            expect_request: 0,
            last_response: None,
            reply_to: None,
            in_flight: None,
            tasks: VecDeque::new(),
            init: None,
            init_request: Vec::new(),
            init_response: Vec::new(),
            ni: Vec::new(),
            nr: Vec::new(),
            peer_id: None,
            peer_key: None,
            children: Vec::new(),
            created: now,
            established: None,
            rekey_at: None,
            last_heard: now,
            keepalive_at: None,
            vip: None,
            fragments: None,
            peer_mpsa: false,
            peer_frag: false,
            ike_rekey_ours: None,
            ike_rekey_theirs: None,
            half_open_until: None,
            scheduled: None,
        }
    }

    fn fail(&mut self, sa: &mut IkeSa, why: String) {
        let conn = self.conns[sa.conn].name.clone();
        self.event(Event::Failed { conn, why });
        sa.state = IkeState::Deleting;
        sa.in_flight = None;
        sa.tasks.clear();
    }

    /// Initiator: IKE_AUTH request with the first child SA.
    fn send_auth(&mut self, now: Instant, sa: &mut IkeSa) {
        let c = &self.conns[sa.conn];
        let suite = sa.suite.expect("keys derived");
        let k = sa.keys.as_ref().expect("keys derived");
        let idi = c.local_id.clone();
        let auth =
            keys::psk_auth(suite.prf, c.psk.as_slice(), &sa.init_request, &sa.nr, &k.sk_pi, &idi.rest_of_payload());
        let spi_in = self.new_child_spi();
        let c = &self.conns[sa.conn];
        // With a virtual address to come, propose "any" for our side and
        // let the responder narrow it to the address (RFC 7296 2.9, 3.15).
        let ts_local = if c.request_vip {
            vec!["0.0.0.0/0".parse::<ts::Prefix>().expect("literal").to_ts()]
        } else {
            c.local_ts.clone()
        };
        let ts_remote = c.remote_ts.clone();
        let mut payloads = vec![Payload::IdI(idi)];
        let expect_id = c.remote_id.clone();
        // RFC 7296 2.4: INITIAL_CONTACT asserts that this is the only IKE
        // SA between the two identities; the peer deletes any other.
        if !self.another_ike_sa_with(&c.local_id, c.remote_id.as_ref(), sa.remote.ip()) {
            payloads.push(Payload::Notify(Notify::new(NotifyType::InitialContact, vec![])));
        }
        if let Some(r) = &c.remote_id {
            payloads.push(Payload::IdR(r.clone()));
        }
        payloads.push(Payload::Auth(Authentication { method: AuthMethod::SharedKeyMic, data: auth }));
        if c.request_vip {
            payloads.push(Payload::Cp(Configuration {
                ty: CfgType::Request,
                attrs: vec![(CfgAttr::InternalIp4Address, vec![])],
            }));
        }
        payloads.push(Payload::Sa(proposal::esp_proposals(&c.esp, spi_in, false)));
        payloads.push(Payload::TsI(ts_local.clone()));
        payloads.push(Payload::TsR(ts_remote.clone()));
        if let Some(r) = expect_id {
            self.file_peer(sa, Some(r));
        }
        self.request(now, sa, ExchangeType::IkeAuth, payloads, Pending::Auth { spi_in, ts_local, ts_remote });
    }

    /// Files `sa` under the peer identity `id` in `by_peer` (None: takes it
    /// out).
    fn file_peer(&mut self, sa: &mut IkeSa, id: Option<Identification>) {
        let spi = sa.our_spi();
        if let Some(old) = sa.peer_key.take() {
            if let Some(set) = self.by_peer.get_mut(&old) {
                set.remove(&spi);
                if set.is_empty() {
                    self.by_peer.remove(&old);
                }
            }
        }
        if let Some(id) = id {
            self.by_peer.entry(id.clone()).or_default().insert(spi);
            sa.peer_key = Some(id);
        }
    }

    /// Whether an IKE SA other than the one in hand (which the caller has
    /// taken out of the table) is authenticated, or being authenticated,
    /// between our identity `local_id` and the peer's: `remote_id`, or,
    /// when any identity is accepted, whatever identity is at `remote`.
    /// Half-open SAs (ours before IKE_AUTH, a peer's before it
    /// authenticated) and SAs being deleted do not count.
    fn another_ike_sa_with(
        &self,
        local_id: &Identification,
        remote_id: Option<&Identification>,
        remote: IpAddr,
    ) -> bool {
        let counts = |o: &IkeSa| {
            let half_open = match o.state {
                IkeState::Connecting | IkeState::Deleting => true,
                IkeState::Authenticating => !o.initiator,
                IkeState::Established | IkeState::Rekeyed => false,
            };
            !half_open && self.conns[o.conn].local_id == *local_id
        };
        match remote_id {
            Some(want) => {
                self.by_peer.get(want).is_some_and(|set| set.iter().filter_map(|s| self.sas.get(s)).any(&counts))
            }
            None => self.sas.values().any(|o| counts(o) && o.remote.ip() == remote),
        }
    }

    /// RFC 7296 2.4: the peer asserts that `sa` (just authenticated) is the
    /// only IKE SA between its identity and ours: it restarted, and every
    /// other IKE SA between the two is stale. Those go now, with their
    /// child SAs and without a Delete (the peer no longer knows them).
    fn initial_contact(&mut self, sa: &IkeSa) {
        let Some(peer) = sa.peer_id.as_ref() else { return };
        let ours = &self.conns[sa.conn].local_id;
        let stale: Vec<u64> = self
            .by_peer
            .get(peer)
            .into_iter()
            .flatten()
            .filter(|spi| {
                self.sas
                    .get(spi)
                    .is_some_and(|o| o.peer_id.as_ref() == Some(peer) && self.conns[o.conn].local_id == *ours)
            })
            .copied()
            .collect();
        for spi in stale {
            if let Some(o) = self.sas.remove(&spi) {
                self.remove_sa(o, "the peer sent INITIAL_CONTACT on a new IKE SA (RFC 7296 2.4)");
            }
        }
    }

    /// Decrypts a protected message (reassembling fragments); None when it
    /// is not (yet) complete or fails its check.
    fn open(&mut self, sa: &mut IkeSa, ike: &[u8], from_initiator: bool) -> Option<Result<Vec<Payload>, Refusal>> {
        let m = match Message::parse(ike) {
            Ok(m) => m,
            Err(e) => {
                self.stats.malformed += 1;
                // Unauthenticated: nothing is answered (RFC 7296 2.21.1 does
                // not let a forged message cause a response).
                let _ = e;
                return None;
            }
        };
        let (Some(suite), Some(k)) = (sa.suite, sa.keys.as_ref()) else { return None };
        let Some(sk) = m.sk else {
            self.stats.malformed += 1;
            return None;
        };
        let plain = match k.sk(&suite, from_initiator).open(ike, &sk) {
            Ok(p) => p,
            Err(_) => {
                self.stats.bad_icv += 1;
                return None;
            }
        };
        let (first, plain) = match sk.fragment {
            None => (sk.first, plain),
            Some((num, total)) => {
                // RFC 7383 2.6: collect until all fragments are in.
                let id = m.header.message_id;
                if total > 64 {
                    self.stats.malformed += 1;
                    return None;
                }
                let fr = sa.fragments.get_or_insert_with(|| (id, PayloadType::NoNextPayload, Vec::new()));
                if fr.0 != id || fr.2.len() != total as usize {
                    *fr = (id, PayloadType::NoNextPayload, vec![None; total as usize]);
                }
                if num == 1 {
                    fr.1 = sk.first;
                }
                fr.2[num as usize - 1] = Some(plain);
                if fr.2.iter().any(|f| f.is_none()) {
                    return None;
                }
                let (_, first, parts) = sa.fragments.take().expect("just filled");
                (first, parts.into_iter().flatten().flatten().collect())
            }
        };
        Some(parse_chain(first, &plain).map_err(|e| {
            self.stats.malformed += 1;
            e.notify()
        }))
    }

    /// A response to our request.
    fn response(&mut self, now: Instant, sa: &mut IkeSa, local: SocketAddr, remote: SocketAddr, ike: &[u8], h: Header) {
        let Some(f) = sa.in_flight.as_ref() else {
            self.stats.bad_message_id += 1;
            return;
        };
        if f.message_id != h.message_id {
            self.stats.bad_message_id += 1;
            return;
        }
        let payloads = match self.open(sa, ike, !sa.initiator) {
            None => return,
            Some(Ok(p)) => p,
            Some(Err(_)) => {
                // A response we cannot parse: the exchange failed.
                sa.in_flight = None;
                return;
            }
        };
        sa.last_heard = now;
        if sa.nat && sa.remote != remote {
            sa.remote = remote;
        }
        // The peer floated to port 4500 (RFC 7296 2.23): answer from there.
        if sa.local != local {
            sa.local = local;
        }
        let f = sa.in_flight.take().expect("checked");
        match f.what {
            Pending::Init => {}
            Pending::Auth { spi_in, ts_local, ts_remote } => {
                self.auth_response(now, sa, &payloads, spi_in, ts_local, ts_remote)
            }
            Pending::RekeyChild { old, spi_in, ni, dh } => {
                self.child_rekey_response(now, sa, &payloads, old, spi_in, ni, dh)
            }
            Pending::RekeyIke { spi, ni, dh } => self.ike_rekey_response(now, sa, &payloads, spi, ni, dh),
            Pending::DeleteChildren(spis) => {
                for s in spis {
                    if let Some(i) = sa.children.iter().position(|c| c.spi_in == s) {
                        let c = sa.children.remove(i);
                        self.uninstall_child(sa, &c, "deleted by us");
                    }
                }
            }
            Pending::DeleteIke => {
                sa.state = IkeState::Deleting;
                sa.tasks.clear();
            }
            Pending::Liveness => {}
            Pending::MpsaPut { group, spi } => self.mpsa_put_response(sa, &payloads, group, spi),
            Pending::Informational => {
                for n in payloads.iter().filter_map(|x| if let Payload::Notify(n) = x { Some(n) } else { None }) {
                    if n.ty.value() < 16384 {
                        let conn = self.conns[sa.conn].name.clone();
                        self.event(Event::Failed { conn, why: format!("the peer answered {:?}", n.ty) });
                    }
                }
            }
        }
    }

    fn auth_response(
        &mut self,
        now: Instant,
        sa: &mut IkeSa,
        p: &[Payload],
        spi_in: u32,
        ts_local: Vec<TrafficSelector>,
        ts_remote: Vec<TrafficSelector>,
    ) {
        if let Some(NotifyType::AuthenticationFailed) = first_error(p) {
            self.stats.auth_failed += 1;
            self.fail(sa, "the responder refused our authentication (AUTHENTICATION_FAILED)".into());
            return;
        }
        let c = &self.conns[sa.conn];
        let suite = sa.suite.expect("keys");
        let k = sa.keys.as_ref().expect("keys");
        let idr = find(p, |x| if let Payload::IdR(i) = x { Some(i) } else { None });
        let auth = find(p, |x| if let Payload::Auth(a) = x { Some(a) } else { None });
        let (Some(idr), Some(auth)) = (idr, auth) else {
            self.fail(sa, "IKE_AUTH response without IDr or AUTH".into());
            return;
        };
        if c.remote_id.as_ref().is_some_and(|r| r != idr) {
            self.stats.auth_failed += 1;
            self.fail(sa, format!("the responder is {:?}, not the configured identity", idr.to_text()));
            return;
        }
        let want =
            keys::psk_auth(suite.prf, c.psk.as_slice(), &sa.init_response, &sa.ni, &k.sk_pr, &idr.rest_of_payload());
        use subtle::ConstantTimeEq;
        if auth.method != AuthMethod::SharedKeyMic || !bool::from(want.ct_eq(&auth.data)) {
            self.stats.auth_failed += 1;
            self.fail(sa, "the responder's AUTH does not verify with our PSK".into());
            return;
        }
        sa.peer_id = Some(idr.clone());
        self.file_peer(sa, Some(idr.clone()));
        if notify(p, NotifyType::InitialContact).is_some() {
            self.initial_contact(sa);
        }
        self.established(now, sa);
        // The first child SA; failing it leaves the IKE SA up (RFC 7296 2.21.3).
        if let Some(e) = first_error(p) {
            let conn = self.conns[sa.conn].name.clone();
            self.event(Event::Failed { conn, why: format!("first child SA refused: {e:?}") });
            return;
        }
        if let Some(Payload::Cp(cp)) = p.iter().find(|x| matches!(x, Payload::Cp(_))) {
            sa.vip = cp.attrs.iter().find_map(|(t, v)| match (t, v.len()) {
                (CfgAttr::InternalIp4Address, 4) => Some(IpAddr::from([v[0], v[1], v[2], v[3]])),
                _ => None,
            });
        }
        let ni = sa.ni.clone();
        let nr = sa.nr.clone();
        self.child_from_response(now, sa, p, spi_in, None, &ni, &nr, None, ts_local, ts_remote);
    }

    /// Initiator side of a child SA negotiation (IKE_AUTH or CREATE_CHILD_SA).
    #[allow(clippy::too_many_arguments)]
    fn child_from_response(
        &mut self,
        now: Instant,
        sa: &mut IkeSa,
        p: &[Payload],
        spi_in: u32,
        g_ir: Option<&Secret>,
        ni: &[u8],
        nr: &[u8],
        rekey_of: Option<u32>,
        ts_local: Vec<TrafficSelector>,
        ts_remote: Vec<TrafficSelector>,
    ) -> bool {
        let conn = self.conns[sa.conn].name.clone();
        let pfs = g_ir.map(|_| proposal_group(p)).unwrap_or(None);
        let (Some(offer), Some(tsi), Some(tsr)) = (sa_of(p), tsi_of(p), tsr_of(p)) else {
            self.event(Event::Failed { conn, why: "child SA response lacks SA or TS".into() });
            return false;
        };
        let Some((suite, spi_out)) = proposal::chosen_esp(&self.conns[sa.conn].esp, offer, pfs) else {
            self.event(Event::Failed { conn, why: "the responder chose an ESP proposal we did not offer".into() });
            return false;
        };
        if !ts::within(tsi, &ts_local) || !ts::within(tsr, &ts_remote) {
            self.event(Event::Failed { conn, why: "the responder widened the traffic selectors".into() });
            return false;
        }
        let prf = sa.suite.expect("keys").prf;
        let k = keys::child_keys(prf, &sa.keys.as_ref().expect("keys").sk_d, g_ir, ni, nr, suite.encr, suite.integ);
        // We initiated: we send with the initiator keys.
        let keys = ((k.encr_r.clone(), k.integ_r.clone()), (k.encr_i.clone(), k.integ_i.clone()));
        self.add_child(now, sa, (spi_in, spi_out), suite, keys, (tsi.clone(), tsr.clone()), rekey_of);
        true
    }

    /// Installs a negotiated child SA and keeps it on `sa`. `keys`: (what
    /// we receive with, what we send with); `ts`: (local, remote).
    #[allow(clippy::too_many_arguments)]
    fn add_child(
        &mut self,
        now: Instant,
        sa: &mut IkeSa,
        (spi_in, spi_out): (u32, u32),
        suite: EspSuite,
        (keys_in, keys_out): ((Secret, Secret), (Secret, Secret)),
        (ts_local, ts_remote): (Vec<TrafficSelector>, Vec<TrafficSelector>),
        rekey_of: Option<u32>,
    ) {
        let c = &self.conns[sa.conn];
        let (life, rekey, jp) = (c.child_life, c.child_rekey, c.jitter_percent);
        let child = Child {
            spi_in,
            spi_out,
            suite,
            keys_in,
            keys_out,
            ts_local,
            ts_remote,
            state: ChildState::Installed,
            created: now,
            rekey_at: Some(now + self.jitter(rekey, jp)),
            expire_at: now + life,
            rekey_ours: None,
            rekey_theirs: None,
            successor: None,
            rekey_of,
        };
        self.install_child(sa, &child);
        sa.children.push(child);
    }

    fn established(&mut self, now: Instant, sa: &mut IkeSa) {
        sa.state = IkeState::Established;
        sa.established = Some(now);
        if sa.half_open_until.take().is_some() {
            self.half_open = self.half_open.saturating_sub(1);
        }
        let c = &self.conns[sa.conn];
        let (rekey, jp) = (c.ike_rekey, c.jitter_percent);
        sa.rekey_at = Some(now + self.jitter(rekey, jp));
        if sa.we_behind_nat {
            sa.keepalive_at = Some(now + self.settings.keepalive);
        }
        let conn = self.conns[sa.conn].name.clone();
        let peer_id = sa.peer_id.as_ref().map(|i| i.to_text()).unwrap_or_default();
        self.event(Event::IkeUp { conn, spi_i: sa.spi_i, spi_r: sa.spi_r, peer: sa.remote, peer_id });
        self.mpsa_established(sa);
    }

    /// A request from the peer, answered where it came from (RFC 7296
    /// 2.11).
    fn request_in(
        &mut self,
        now: Instant,
        sa: &mut IkeSa,
        local: SocketAddr,
        remote: SocketAddr,
        ike: &[u8],
        h: Header,
    ) {
        sa.reply_to = Some((local, remote));
        self.request_in_path(now, sa, local, remote, ike, h);
        sa.reply_to = None;
    }

    fn request_in_path(
        &mut self,
        now: Instant,
        sa: &mut IkeSa,
        local: SocketAddr,
        remote: SocketAddr,
        ike: &[u8],
        h: Header,
    ) {
        // RFC 7296 2.3: the one before the expected ID is a retransmission
        // (answer it again, to where this copy came from: 2.11); anything
        // else is dropped.
        if h.message_id.wrapping_add(1) == sa.expect_request {
            if let Some((id, packets)) = &sa.last_response {
                if *id == h.message_id {
                    self.stats.retransmits_answered += 1;
                    for pk in packets.clone() {
                        self.send(local, remote, pk);
                    }
                }
            }
            return;
        }
        if h.message_id != sa.expect_request {
            self.stats.bad_message_id += 1;
            return;
        }
        // The responder's first request (an MPSA_PUT, say) overtook its
        // IKE_AUTH response: leave it unanswered and unconsumed; it is
        // retransmitted, and by then the IKE SA is up.
        if sa.initiator && sa.state == IkeState::Authenticating {
            return;
        }
        let payloads = match self.open(sa, ike, !sa.initiator) {
            None => return,
            Some(Ok(p)) => p,
            Some(Err((ty, data))) => {
                // Authenticated but unparseable: answer with the notify.
                sa.expect_request = sa.expect_request.wrapping_add(1);
                self.respond(sa, h.exchange, h.message_id, vec![Payload::Notify(Notify::new(ty, data))]);
                if h.exchange == ExchangeType::IkeAuth {
                    sa.state = IkeState::Deleting;
                }
                return;
            }
        };
        sa.last_heard = now;
        sa.expect_request = sa.expect_request.wrapping_add(1);
        // RFC 7296 2.23: behind a NAT the peer's address is the one of its
        // last authenticated message.
        if sa.nat && sa.remote != remote {
            sa.remote = remote;
        }
        // The peer floated to port 4500 (RFC 7296 2.23): answer from there.
        if sa.local != local {
            sa.local = local;
        }
        match h.exchange {
            ExchangeType::IkeAuth if sa.state == IkeState::Authenticating && !sa.initiator => {
                self.auth_request(now, sa, &payloads, h.message_id)
            }
            ExchangeType::CreateChildSa if sa.state == IkeState::Established => {
                self.create_child_request(now, sa, &payloads, h.message_id)
            }
            ExchangeType::Informational if sa.state != IkeState::Authenticating => {
                self.informational_request(now, sa, &payloads, h.message_id)
            }
            ExchangeType::CreateChildSa => {
                // RFC 7296 2.25: busy with a rekey or deletion.
                let n = Payload::Notify(Notify::new(NotifyType::TemporaryFailure, vec![]));
                self.respond(sa, h.exchange, h.message_id, vec![n]);
            }
            ex => {
                let n = Payload::Notify(Notify::new(NotifyType::InvalidSyntax, vec![]));
                self.respond(sa, ex, h.message_id, vec![n]);
            }
        }
    }

    /// Responder: IKE_AUTH request.
    fn auth_request(&mut self, now: Instant, sa: &mut IkeSa, p: &[Payload], id: u32) {
        let idi = find(p, |x| if let Payload::IdI(i) = x { Some(i) } else { None });
        let idr = find(p, |x| if let Payload::IdR(i) = x { Some(i) } else { None });
        let auth = find(p, |x| if let Payload::Auth(a) = x { Some(a) } else { None });
        let refuse = |e: &mut Engine, sa: &mut IkeSa, ty: NotifyType| {
            e.respond(sa, ExchangeType::IkeAuth, id, vec![Payload::Notify(Notify::new(ty, vec![]))]);
            sa.state = IkeState::Deleting;
        };
        let (Some(idi), Some(auth)) = (idi, auth) else {
            self.stats.malformed += 1;
            refuse(self, sa, NotifyType::InvalidSyntax);
            return;
        };
        if auth.method != AuthMethod::SharedKeyMic {
            self.stats.auth_failed += 1;
            refuse(self, sa, NotifyType::AuthenticationFailed);
            return;
        }
        // The connection: same IKE suite, addresses fit, identities fit,
        // and the AUTH verifies with its PSK.
        let suite = sa.suite.expect("keys");
        let k = sa.keys.as_ref().expect("keys");
        let rest = idi.rest_of_payload();
        let mut chosen = None;
        for (i, c) in self.conns.iter().enumerate() {
            let fits = c.ike.contains(&suite)
                && c.local.is_none_or(|a| a == sa.local.ip())
                && c.remote.is_none_or(|a| a == sa.remote.ip())
                && c.remote_id.as_ref().is_none_or(|r| r == idi)
                && idr.is_none_or(|r| *r == c.local_id);
            if !fits {
                continue;
            }
            let want = keys::psk_auth(suite.prf, c.psk.as_slice(), &sa.init_request, &sa.nr, &k.sk_pi, &rest);
            use subtle::ConstantTimeEq;
            if bool::from(want.ct_eq(&auth.data)) {
                chosen = Some(i);
                break;
            }
        }
        let Some(ci) = chosen else {
            self.stats.auth_failed += 1;
            let conn = self.conns[sa.conn].name.clone();
            self.event(Event::Failed {
                conn,
                why: format!("authentication of {:?} from {} failed", idi.to_text(), sa.remote),
            });
            refuse(self, sa, NotifyType::AuthenticationFailed);
            return;
        };
        sa.conn = ci;
        sa.peer_id = Some(idi.clone());
        let c = &self.conns[ci];
        let idr_ours = c.local_id.clone();
        let my_auth = keys::psk_auth(
            suite.prf,
            c.psk.as_slice(),
            &sa.init_response,
            &sa.ni,
            &k.sk_pr,
            &idr_ours.rest_of_payload(),
        );
        let mut out = vec![
            Payload::IdR(idr_ours),
            Payload::Auth(Authentication { method: AuthMethod::SharedKeyMic, data: my_auth }),
        ];
        self.file_peer(sa, Some(idi.clone()));
        if notify(p, NotifyType::InitialContact).is_some() {
            self.initial_contact(sa);
        }
        self.established(now, sa);
        // A client asking for an address gets one from the pool.
        let wants_vip = p.iter().any(|x| matches!(x, Payload::Cp(cp) if cp.ty == CfgType::Request));
        let mut vip_ts = None;
        if wants_vip {
            match self.lease(sa) {
                Some(v) => {
                    let octets = match v {
                        IpAddr::V4(a) => a.octets().to_vec(),
                        IpAddr::V6(a) => a.octets().to_vec(),
                    };
                    out.push(Payload::Cp(Configuration {
                        ty: CfgType::Reply,
                        attrs: vec![(CfgAttr::InternalIp4Address, octets)],
                    }));
                    vip_ts = Some(ts::Prefix { addr: v, len: 32 }.to_ts());
                }
                None => {
                    // RFC 7296 3.15.4: no address, no child SA.
                    out.push(Payload::Notify(Notify::new(NotifyType::InternalAddressFailure, vec![])));
                    self.respond(sa, ExchangeType::IkeAuth, id, out);
                    return;
                }
            }
        }
        let ni = sa.ni.clone();
        let nr = sa.nr.clone();
        match self.child_for_request(now, sa, p, None, &ni, &nr, None, vip_ts) {
            Ok(mut child_payloads) => out.append(&mut child_payloads),
            Err((ty, data)) => out.push(Payload::Notify(Notify::new(ty, data))),
        }
        self.respond(sa, ExchangeType::IkeAuth, id, out);
    }

    fn lease(&mut self, sa: &mut IkeSa) -> Option<IpAddr> {
        let pool = self.conns[sa.conn].pool?;
        let IpAddr::V4(base) = pool.addr else { return None };
        let size = 1u32 << (32 - pool.len as u32).min(16);
        let base = u32::from(base) & !(size.wrapping_sub(1));
        // Skip the network address (offset 0) and the broadcast address.
        for off in 1..size.saturating_sub(1) {
            let a = IpAddr::V4((base + off).into());
            if let std::collections::hash_map::Entry::Vacant(e) = self.leases.entry(a) {
                e.insert(sa.our_spi());
                sa.vip = Some(a);
                return Some(a);
            }
        }
        None
    }

    /// Responder side of a child SA negotiation: returns the payloads of
    /// the answer (SA, [Nr, KEr,] TSi, TSr) or the refusal.
    #[allow(clippy::too_many_arguments)]
    fn child_for_request(
        &mut self,
        now: Instant,
        sa: &mut IkeSa,
        p: &[Payload],
        g_ir: Option<&Secret>,
        ni: &[u8],
        nr: &[u8],
        rekey_of: Option<u32>,
        vip_ts: Option<TrafficSelector>,
    ) -> Result<Vec<Payload>, Refusal> {
        let (Some(offer), Some(tsi), Some(tsr)) = (sa_of(p), tsi_of(p), tsr_of(p)) else {
            return Err((NotifyType::InvalidSyntax, vec![]));
        };
        let c = &self.conns[sa.conn];
        let pfs = ke_of(p).map(|k| DhGroup::from_value(k.group));
        let Some((suite, chosen)) = proposal::select_esp(&c.esp, offer, pfs) else {
            self.stats.no_proposal += 1;
            return Err((NotifyType::NoProposalChosen, vec![]));
        };
        // TSi is the peer's side (our remote), TSr ours.
        let remote_policy = match vip_ts {
            Some(v) => vec![v],
            None => c.remote_ts.clone(),
        };
        let ts_remote = ts::narrow(tsi, &remote_policy);
        let ts_local = ts::narrow(tsr, &c.local_ts);
        if ts_remote.is_empty() || ts_local.is_empty() {
            return Err((NotifyType::TsUnacceptable, vec![]));
        }
        let spi_out = u32::from_be_bytes(offer_spi(offer, chosen.num).ok_or((NotifyType::InvalidSyntax, vec![]))?);
        let spi_in = self.new_child_spi();
        let prf = sa.suite.expect("keys").prf;
        let k = keys::child_keys(prf, &sa.keys.as_ref().expect("keys").sk_d, g_ir, ni, nr, suite.encr, suite.integ);
        // The peer initiated: we receive with the initiator keys.
        let keys = ((k.encr_i.clone(), k.integ_i.clone()), (k.encr_r.clone(), k.integ_r.clone()));
        self.add_child(now, sa, (spi_in, spi_out), suite, keys, (ts_local.clone(), ts_remote.clone()), rekey_of);
        let mut chosen = chosen;
        chosen.spi = spi_in.to_be_bytes().to_vec();
        Ok(vec![Payload::Sa(vec![chosen]), Payload::TsI(ts_remote), Payload::TsR(ts_local)])
    }

    /// Responder: CREATE_CHILD_SA (new child, child rekey, IKE SA rekey).
    fn create_child_request(&mut self, now: Instant, sa: &mut IkeSa, p: &[Payload], id: u32) {
        let ex = ExchangeType::CreateChildSa;
        let err = |e: &mut Engine, sa: &mut IkeSa, ty: NotifyType, data: Vec<u8>| {
            e.respond(sa, ex, id, vec![Payload::Notify(Notify::new(ty, data))]);
        };
        let Some(ni) = nonce_of(p).cloned() else {
            err(self, sa, NotifyType::InvalidSyntax, vec![]);
            return;
        };
        let Some(offer) = sa_of(p) else {
            err(self, sa, NotifyType::InvalidSyntax, vec![]);
            return;
        };
        // An IKE SA rekey: an SA payload with IKE proposals (2.18).
        if offer.iter().any(|pr| pr.protocol == ProtocolId::Ike) {
            self.ike_rekey_request(now, sa, p, id, ni);
            return;
        }
        let rekey = notify(p, NotifyType::RekeySa).and_then(|n| n.esp_spi());
        if let Some(old_out) = rekey {
            match sa.children.iter().find(|c| c.spi_out == old_out) {
                None => {
                    err(self, sa, NotifyType::ChildSaNotFound, vec![]);
                    return;
                }
                Some(c) if c.state != ChildState::Installed => {
                    // RFC 7296 2.25: rekeying or deleting it already.
                    err(self, sa, NotifyType::TemporaryFailure, vec![]);
                    return;
                }
                Some(_) => {}
            }
        }
        // PFS: the KE group must be the one of the chosen proposal.
        let nr = self.rng.vec(32);
        let mut ke_out = None;
        let mut g_ir = None;
        if let Some(ke) = ke_of(p) {
            let g = DhGroup::from_value(ke.group);
            let c = &self.conns[sa.conn];
            let offered_any = sa_of(p).is_some_and(|o| o.iter().any(|pr| proposal::proposal_dh(pr) == Some(g)));
            if !dh::supported(g) || !c.esp.iter().any(|s| s.dh == Some(g)) || !offered_any {
                let want = c.esp.iter().find_map(|s| s.dh).unwrap_or(DhGroup::Curve25519);
                err(self, sa, NotifyType::InvalidKePayload, want.value().to_be_bytes().to_vec());
                return;
            }
            let Ok((d, pk)) = self.dh_pool.generate(g, self.rng.as_mut()) else { return };
            match dh::agree(d, &ke.data) {
                Ok(s) => g_ir = Some(s),
                Err(_) => {
                    err(self, sa, NotifyType::InvalidSyntax, vec![]);
                    return;
                }
            }
            ke_out = Some(Payload::Ke(KeyExchange { group: g.value(), data: pk }));
        }
        let old_in = rekey.and_then(|o| sa.children.iter().find(|c| c.spi_out == o).map(|c| c.spi_in));
        match self.child_for_request(now, sa, p, g_ir.as_ref(), &ni, &nr, old_in, None) {
            Ok(child_payloads) => {
                let mut out = Vec::new();
                let mut it = child_payloads.into_iter();
                out.push(it.next().expect("SA first"));
                out.push(Payload::Nonce(nr.clone()));
                if let Some(k) = ke_out {
                    out.push(k);
                }
                out.extend(it);
                let new_in = sa.children.last().map(|c| c.spi_in).expect("just added");
                self.respond(sa, ex, id, out);
                if let Some(old) = old_in {
                    let c = sa.children.iter_mut().find(|c| c.spi_in == old).expect("checked above");
                    c.rekey_theirs = Some((lowest(&ni, &nr), new_in));
                    self.settle_child_rekey(now, sa, old);
                }
            }
            Err((ty, data)) => err(self, sa, ty, data),
        }
    }

    /// Initiator: the answer to our child SA rekey.
    #[allow(clippy::too_many_arguments)]
    fn child_rekey_response(
        &mut self,
        now: Instant,
        sa: &mut IkeSa,
        p: &[Payload],
        old: u32,
        spi_in: u32,
        ni: Vec<u8>,
        dh: Option<(DhGroup, DhPrivate)>,
    ) {
        let conn = self.conns[sa.conn].name.clone();
        if let Some(e) = first_error(p) {
            // TEMPORARY_FAILURE: the peer is rekeying it too (its rekey
            // will win) or deleting it; try again later if it survives.
            if let Some(c) = sa.children.iter_mut().find(|c| c.spi_in == old) {
                if c.state == ChildState::Installed && e != NotifyType::ChildSaNotFound {
                    c.rekey_at = Some(now + Duration::from_secs(2));
                }
            }
            if e == NotifyType::InvalidKePayload {
                self.event(Event::Failed { conn, why: "child rekey: the peer wants another PFS group".into() });
            }
            return;
        }
        let Some(nr) = nonce_of(p).cloned() else { return };
        let g_ir = match (dh, ke_of(p)) {
            (Some((g, d)), Some(ke)) if ke.group == g.value() => match dh::agree(d, &ke.data) {
                Ok(s) => Some(s),
                Err(_) => return,
            },
            (None, None) => None,
            _ => {
                self.event(Event::Failed { conn, why: "child rekey: KE payload missing or unexpected".into() });
                return;
            }
        };
        let Some(oldc) = sa.children.iter().find(|c| c.spi_in == old) else { return };
        let (tl, tr) = (oldc.ts_local.clone(), oldc.ts_remote.clone());
        if self.child_from_response(now, sa, p, spi_in, g_ir.as_ref(), &ni, &nr, Some(old), tl, tr) {
            if let Some(c) = sa.children.iter_mut().find(|c| c.spi_in == old) {
                c.rekey_ours = Some((lowest(&ni, &nr), spi_in));
            }
            self.settle_child_rekey(now, sa, old);
        }
    }

    /// After a rekey exchange on child `old` completes: decide which SAs
    /// stay (RFC 7296 2.8.1) and who deletes what.
    fn settle_child_rekey(&mut self, now: Instant, sa: &mut IkeSa, old: u32) {
        let Some(c) = sa.children.iter_mut().find(|c| c.spi_in == old) else { return };
        let ours_pending =
            matches!(&sa.in_flight, Some(f) if matches!(&f.what, Pending::RekeyChild { old: o, .. } if *o == old));
        match (c.rekey_ours.clone(), c.rekey_theirs.clone()) {
            (Some((_, new)), None) if !ours_pending => {
                // Ours alone: we replaced it, we delete the old one.
                c.state = ChildState::Rekeyed;
                self.switch_policy(sa, new);
                sa.tasks.push_back(Task::DeleteChild(old));
            }
            (None, Some((_, new))) => {
                // Theirs alone (or ours still pending: a collision, settled
                // when ours answers): the peer deletes the old one, and our
                // outbound moves when it does (or after a grace period).
                c.state = ChildState::Rekeyed;
                c.rekey_at = None;
                c.successor = Some((new, now + OUTBOUND_SWITCH_GRACE));
            }
            (Some((our_nonce, our_new)), Some((their_nonce, their_new))) => {
                // Both rekeyed it. The SA made with the lowest nonce is
                // redundant and its creator deletes it; the other creator
                // deletes the old SA.
                c.state = ChildState::Rekeyed;
                c.rekey_at = None;
                if our_nonce < their_nonce {
                    self.switch_policy(sa, their_new);
                    if let Some(x) = sa.children.iter_mut().find(|x| x.spi_in == our_new) {
                        x.state = ChildState::Rekeyed;
                        x.rekey_at = None;
                    }
                    sa.tasks.push_back(Task::DeleteChild(our_new));
                } else {
                    self.switch_policy(sa, our_new);
                    if let Some(x) = sa.children.iter_mut().find(|x| x.spi_in == their_new) {
                        x.state = ChildState::Rekeyed;
                        x.rekey_at = None;
                    }
                    sa.tasks.push_back(Task::DeleteChild(old));
                }
            }
            _ => {}
        }
    }

    /// Responder: IKE SA rekey (RFC 7296 2.18).
    fn ike_rekey_request(&mut self, now: Instant, sa: &mut IkeSa, p: &[Payload], id: u32, ni: Vec<u8>) {
        let ex = ExchangeType::CreateChildSa;
        let offer = sa_of(p).expect("checked");
        let conn = &self.conns[sa.conn];
        let Some((suite, mut chosen)) = proposal::select_ike(&conn.ike, offer) else {
            self.respond(sa, ex, id, vec![Payload::Notify(Notify::new(NotifyType::NoProposalChosen, vec![]))]);
            return;
        };
        let Some(ke) = ke_of(p) else {
            self.respond(sa, ex, id, vec![Payload::Notify(Notify::new(NotifyType::InvalidSyntax, vec![]))]);
            return;
        };
        if ke.group != suite.dh.value() {
            let n = Notify::new(NotifyType::InvalidKePayload, suite.dh.value().to_be_bytes().to_vec());
            self.respond(sa, ex, id, vec![Payload::Notify(n)]);
            return;
        }
        let Ok(spi_peer) = <[u8; 8]>::try_from(chosen.spi.as_slice()).map(u64::from_be_bytes) else {
            self.respond(sa, ex, id, vec![Payload::Notify(Notify::new(NotifyType::InvalidSyntax, vec![]))]);
            return;
        };
        if !sa.children.iter().all(|c| c.state != ChildState::Deleting) && sa.state != IkeState::Established {
            self.respond(sa, ex, id, vec![Payload::Notify(Notify::new(NotifyType::TemporaryFailure, vec![]))]);
            return;
        }
        let Ok((d, pk)) = self.dh_pool.generate(suite.dh, self.rng.as_mut()) else { return };
        let Ok(g_ir) = dh::agree(d, &ke.data) else {
            self.respond(sa, ex, id, vec![Payload::Notify(Notify::new(NotifyType::InvalidSyntax, vec![]))]);
            return;
        };
        let nr = self.rng.vec(32);
        let our_spi = self.new_spi();
        chosen.spi = our_spi.to_be_bytes().to_vec();
        self.respond(
            sa,
            ex,
            id,
            vec![
                Payload::Sa(vec![chosen]),
                Payload::Nonce(nr.clone()),
                Payload::Ke(KeyExchange { group: suite.dh.value(), data: pk }),
            ],
        );
        // The new SA: the peer (the rekey's initiator) is its initiator.
        let new = self.rekeyed_sa(now, sa, suite, &g_ir, &ni, &nr, spi_peer, our_spi, false);
        sa.ike_rekey_theirs = Some((lowest(&ni, &nr), our_spi));
        self.insert_sa(our_spi, new);
        self.settle_ike_rekey(now, sa);
    }

    /// Initiator: the answer to our IKE SA rekey.
    fn ike_rekey_response(
        &mut self,
        now: Instant,
        sa: &mut IkeSa,
        p: &[Payload],
        spi: u64,
        ni: Vec<u8>,
        dh: Option<DhPrivate>,
    ) {
        if first_error(p).is_some() {
            if sa.state == IkeState::Established {
                sa.rekey_at = Some(now + Duration::from_secs(2));
            }
            return;
        }
        let conn = &self.conns[sa.conn];
        let (Some(offer), Some(nr), Some(ke), Some(d)) = (sa_of(p), nonce_of(p).cloned(), ke_of(p), dh) else { return };
        let Some(suite) = proposal::chosen_ike(&conn.ike, offer) else { return };
        let Ok(spi_r) = <[u8; 8]>::try_from(offer[0].spi.as_slice()).map(u64::from_be_bytes) else { return };
        let Ok(g_ir) = dh::agree(d, &ke.data) else { return };
        let new = self.rekeyed_sa(now, sa, suite, &g_ir, &ni, &nr, spi, spi_r, true);
        sa.ike_rekey_ours = Some((lowest(&ni, &nr), spi));
        self.insert_sa(spi, new);
        self.settle_ike_rekey(now, sa);
    }

    /// RFC 7296 2.8.2: with one rekey, its initiator deletes the old SA;
    /// with two, the new SA with the lowest nonce is deleted by its creator
    /// and the other creator deletes the old one. Children move to the
    /// surviving new SA.
    fn settle_ike_rekey(&mut self, now: Instant, sa: &mut IkeSa) {
        let ours_pending = matches!(&sa.in_flight, Some(f) if matches!(f.what, Pending::RekeyIke { .. }));
        let winner = match (sa.ike_rekey_ours.clone(), sa.ike_rekey_theirs.clone()) {
            (Some((_, s)), None) if !ours_pending => {
                sa.tasks.push_front(Task::DeleteIke);
                s
            }
            (None, Some((_, s))) if !ours_pending => s,
            (Some((on, os)), Some((tn, ts))) => {
                if on < tn {
                    // Our new SA is redundant: delete it, keep theirs.
                    self.touched.push(os);
                    if let Some(x) = self.sas.get_mut(&os) {
                        x.tasks.push_back(Task::DeleteIke);
                    }
                    self.kick(now, os);
                    ts
                } else {
                    sa.tasks.push_front(Task::DeleteIke);
                    os
                }
            }
            _ => return,
        };
        sa.state = IkeState::Rekeyed;
        sa.rekey_at = None;
        let conn = self.conns[sa.conn].name.clone();
        // Child and group work queued on the old SA moves with the children.
        let moves = |t: &Task| matches!(t, Task::RekeyChild(_) | Task::MpsaPut(_));
        let moved: Vec<Task> = sa.tasks.iter().filter(|t| moves(t)).cloned().collect();
        sa.tasks.retain(|t| !moves(t));
        self.touched.push(winner);
        if let Some(new) = self.sas.get_mut(&winner) {
            new.children.append(&mut sa.children);
            new.tasks.extend(moved);
            let newspis = (new.spi_i, new.spi_r);
            self.event(Event::IkeRekeyed { conn, old: (sa.spi_i, sa.spi_r), new: newspis });
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn rekeyed_sa(
        &mut self,
        now: Instant,
        old: &IkeSa,
        suite: IkeSuite,
        g_ir: &Secret,
        ni: &[u8],
        nr: &[u8],
        spi_i: u64,
        spi_r: u64,
        we_initiate: bool,
    ) -> IkeSa {
        let old_suite = old.suite.expect("established");
        let seed = keys::rekey_skeyseed(old_suite.prf, &old.keys.as_ref().expect("keys").sk_d, g_ir, ni, nr);
        let k = IkeKeys::derive(&suite, &seed, ni, nr, spi_i, spi_r);
        let mut new = self.blank_sa(now);
        new.conn = old.conn;
        new.initiator = we_initiate;
        new.spi_i = spi_i;
        new.spi_r = spi_r;
        new.state = IkeState::Established;
        new.suite = Some(suite);
        new.keys = Some(k);
        new.local = old.local;
        new.remote = old.remote;
        new.nat = old.nat;
        new.we_behind_nat = old.we_behind_nat;
        new.ni = ni.to_vec();
        new.nr = nr.to_vec();
        new.peer_id = old.peer_id.clone();
        if let Some(p) = old.peer_id.clone() {
            self.by_peer.entry(p.clone()).or_default().insert(if we_initiate { spi_i } else { spi_r });
            new.peer_key = Some(p);
        }
        new.established = Some(now);
        new.vip = old.vip;
        new.peer_mpsa = old.peer_mpsa;
        self.mpsa_ike_rekeyed(old.our_spi(), if we_initiate { spi_i } else { spi_r });
        new.peer_frag = old.peer_frag;
        let c = &self.conns[old.conn];
        let (rekey, jp) = (c.ike_rekey, c.jitter_percent);
        new.rekey_at = Some(now + self.jitter(rekey, jp));
        if new.we_behind_nat {
            new.keepalive_at = Some(now + self.settings.keepalive);
        }
        if let Some(v) = new.vip {
            self.leases.insert(v, if we_initiate { spi_i } else { spi_r });
        }
        new
    }

    /// Responder: INFORMATIONAL (delete, liveness, notifies).
    fn informational_request(&mut self, now: Instant, sa: &mut IkeSa, p: &[Payload], id: u32) {
        let ex = ExchangeType::Informational;
        if let Some(n) = notify(p, NotifyType::MpsaPut) {
            let n = n.clone();
            self.mpsa_put_request(now, sa, &n, id);
            return;
        }
        let mut out = Vec::new();
        let mut delete_ike = false;
        let mut ours = Vec::new();
        for d in p.iter().filter_map(|x| if let Payload::Delete(d) = x { Some(d) } else { None }) {
            match d.protocol {
                ProtocolId::Ike => delete_ike = true,
                ProtocolId::Esp => {
                    for s in &d.spis {
                        // The SPI is the peer's inbound one: our outbound.
                        if let Some(i) = sa.children.iter().position(|c| c.spi_out == *s) {
                            let c = sa.children.remove(i);
                            // RFC 7296 1.4.1: answer with our half unless we
                            // are deleting it ourselves.
                            if c.state != ChildState::Deleting {
                                ours.push(c.spi_in);
                            }
                            self.uninstall_child(sa, &c, "deleted by the peer");
                        }
                    }
                }
                _ => {}
            }
        }
        if delete_ike {
            self.respond(sa, ex, id, vec![]);
            sa.state = IkeState::Deleting;
            sa.in_flight = None;
            sa.tasks.clear();
            return;
        }
        if !ours.is_empty() {
            out.push(Payload::Delete(Delete { protocol: ProtocolId::Esp, spis: ours }));
        }
        self.respond(sa, ex, id, out);
    }

    // ---- Dataplane --------------------------------------------------------

    fn spec(&self, sa: &IkeSa, c: &Child, dir: Direction) -> SaSpec {
        let (spi, k, src, dst) = match dir {
            Direction::In => (c.spi_in, &c.keys_in, &c.ts_remote, &c.ts_local),
            Direction::Out => (c.spi_out, &c.keys_out, &c.ts_local, &c.ts_remote),
        };
        SaSpec {
            spi,
            direction: dir,
            alg: c.suite.alg(),
            enc_key: Zeroizing::new(k.0.as_slice().to_vec()),
            auth_key: Zeroizing::new(k.1.as_slice().to_vec()),
            local: sa.local.ip(),
            remote: sa.remote.ip(),
            natt: sa.nat.then_some((sa.local.port(), sa.remote.port())),
            esn: c.suite.esn,
            replay_window: 1024,
            seq: 0,
            inner_src: src.iter().flat_map(ts::to_prefixes).collect(),
            inner_dst: dst.iter().flat_map(ts::to_prefixes).collect(),
            lifetime: Lifetimes::default(),
        }
    }

    fn install_child(&mut self, sa: &IkeSa, c: &Child) {
        self.dp(Command::InstallSa(self.spec(sa, c, Direction::In)));
        self.dp(Command::InstallSa(self.spec(sa, c, Direction::Out)));
        // A rekey's new SA takes the policy over once the rekey settles.
        if c.rekey_of.is_none() {
            self.set_policies(c.spi_out, &c.ts_remote.clone());
        }
        let conn = self.conns[sa.conn].name.clone();
        self.event(Event::ChildUp { conn, spi_in: c.spi_in, spi_out: c.spi_out, rekey_of: c.rekey_of });
    }

    fn set_policies(&mut self, spi_out: u32, ts_remote: &[TrafficSelector]) {
        for t in ts_remote {
            for dst in ts::to_prefixes(t) {
                self.policies.insert(dst, spi_out);
                self.dp(Command::SetPolicy { dst, action: PolicyAction::Protect(spi_out) });
            }
        }
    }

    fn switch_policy(&mut self, sa: &IkeSa, new_in: u32) {
        if let Some(c) = sa.children.iter().find(|c| c.spi_in == new_in) {
            let (spi, ts) = (c.spi_out, c.ts_remote.clone());
            self.set_policies(spi, &ts);
        }
    }

    fn uninstall_child(&mut self, sa: &IkeSa, c: &Child, why: &str) {
        if let Some((new, _)) = c.successor {
            self.switch_policy(sa, new);
        }
        for t in &c.ts_remote {
            for dst in ts::to_prefixes(t) {
                if self.policies.get(&dst) == Some(&c.spi_out) {
                    self.policies.remove(&dst);
                    self.dp(Command::DeletePolicy { dst });
                }
            }
        }
        self.dp(Command::DeleteSa { spi: c.spi_in, direction: Direction::In });
        self.dp(Command::DeleteSa { spi: c.spi_out, direction: Direction::Out });
        let conn = self.conns[sa.conn].name.clone();
        self.event(Event::ChildDown { conn, spi_in: c.spi_in, spi_out: c.spi_out, why: why.into() });
    }

    /// A restarted dataplane (RFC-less, ours: DESIGN.md) gets every SA and
    /// policy again, then SyncDone.
    pub fn resync(&mut self) {
        let mut cmds = Vec::new();
        for sa in self.sas.values() {
            for c in &sa.children {
                cmds.push(Command::InstallSa(self.spec(sa, c, Direction::In)));
                cmds.push(Command::InstallSa(self.spec(sa, c, Direction::Out)));
            }
        }
        for (dst, spi) in &self.policies {
            cmds.push(Command::SetPolicy { dst: *dst, action: PolicyAction::Protect(*spi) });
        }
        cmds.push(Command::SyncDone);
        for c in cmds {
            self.dp(c);
        }
    }

    /// Dataplane events: soft lifetime -> rekey, hard -> delete, Hello ->
    /// resync.
    pub fn dataplane_event(&mut self, now: Instant, ev: &cpdp::msg::Event) {
        self.dataplane_event_inner(now, ev);
        self.reschedule();
    }

    fn dataplane_event_inner(&mut self, now: Instant, ev: &cpdp::msg::Event) {
        match ev {
            cpdp::msg::Event::Hello { .. } => self.resync(),
            cpdp::msg::Event::Lifetime { spi, direction, kind, .. } => {
                let found = self.sas.iter().find_map(|(k, sa)| {
                    sa.children
                        .iter()
                        .find(|c| match direction {
                            Direction::In => c.spi_in == *spi,
                            Direction::Out => c.spi_out == *spi,
                        })
                        .map(|c| (*k, c.spi_in))
                });
                if let Some((k, spi_in)) = found {
                    let t = match kind {
                        cpdp::msg::LifetimeKind::Soft => Task::RekeyChild(spi_in),
                        cpdp::msg::LifetimeKind::Hard => Task::DeleteChild(spi_in),
                    };
                    self.queue(now, k, t);
                }
            }
            cpdp::msg::Event::SeqExhausted { spi } => {
                let found = self
                    .sas
                    .iter()
                    .find_map(|(k, sa)| sa.children.iter().find(|c| c.spi_out == *spi).map(|c| (*k, c.spi_in)));
                if let Some((k, spi_in)) = found {
                    self.queue(now, k, Task::RekeyChild(spi_in));
                }
            }
            _ => {}
        }
    }

    // ---- Time -------------------------------------------------------------

    /// The earliest deadline, if any (a timer heap: O(log n) per change,
    /// so a hub with many IKE SAs does no per-message scans).
    pub fn poll_timeout(&self) -> Option<Instant> {
        let sas = self.timers.peek().map(|std::cmp::Reverse((t, _))| *t);
        match (sas, self.mpsa_deadline()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The earliest deadline of one SA.
    fn sa_deadline(&self, sa: &IkeSa) -> Option<Instant> {
        let mut t: Option<Instant> = None;
        let mut at = |d: Option<Instant>| {
            if let Some(d) = d {
                t = Some(t.map_or(d, |x| x.min(d)));
            }
        };
        at(sa.in_flight.as_ref().map(|f| f.next));
        at(sa.keepalive_at);
        at(sa.half_open_until);
        if sa.state == IkeState::Established {
            at(sa.rekey_at);
            // Liveness is due only while nothing else is on the wire.
            if let (Some(d), None) = (self.conns[sa.conn].dpd, &sa.in_flight) {
                at(Some(sa.last_heard + d));
            }
        }
        for c in &sa.children {
            at(c.rekey_at);
            at(Some(c.expire_at));
            at(c.successor.map(|(_, t)| t));
        }
        t
    }

    fn insert_sa(&mut self, spi: u64, sa: IkeSa) {
        self.sas.insert(spi, sa);
        self.touched.push(spi);
    }

    /// Puts the SAs changed since the last call on the timer heap again.
    fn reschedule(&mut self) {
        let mut touched = std::mem::take(&mut self.touched);
        touched.sort_unstable();
        touched.dedup();
        for spi in touched.drain(..) {
            let Some(sa) = self.sas.get(&spi) else { continue };
            let d = self.sa_deadline(sa);
            let sa = self.sas.get_mut(&spi).expect("just found");
            if d != sa.scheduled {
                sa.scheduled = d;
                if let Some(d) = d {
                    self.timers.push(std::cmp::Reverse((d, spi)));
                }
            }
        }
        self.touched = touched;
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        self.last_now = Some(now);
        self.mpsa_timeout(now);
        // Each due SA once per call: what is due again waits for the next.
        let mut due = Vec::new();
        while let Some(&std::cmp::Reverse((t, spi))) = self.timers.peek() {
            if t > now {
                break;
            }
            self.timers.pop();
            // Entries of SAs gone or rescheduled since are stale.
            if let Some(sa) = self.sas.get_mut(&spi).filter(|sa| sa.scheduled == Some(t)) {
                sa.scheduled = None;
                due.push(spi);
            }
        }
        for spi in due {
            self.timeout_sa(now, spi);
            self.touched.push(spi);
        }
        self.reschedule();
    }

    fn timeout_sa(&mut self, now: Instant, spi: u64) {
        {
            let Some(mut sa) = self.sas.remove(&spi) else { return };
            // Half-open SAs that never authenticated are forgotten.
            if sa.half_open_until.is_some_and(|d| d <= now) && sa.state != IkeState::Established {
                self.remove_sa(sa, "half-open timeout");
                return;
            }
            // Retransmission (RFC 7296 2.1), doubling each time.
            if let Some(f) = sa.in_flight.as_mut() {
                if f.next <= now {
                    if f.tries >= self.settings.retransmit_tries {
                        let conn = self.conns[sa.conn].name.clone();
                        self.event(Event::Failed { conn, why: format!("peer {} does not answer", sa.remote) });
                        sa.in_flight = None;
                        sa.state = IkeState::Deleting;
                        self.remove_sa(sa, "peer not responding");
                        return;
                    }
                    f.tries += 1;
                    f.next = now + self.settings.retransmit_base * 2u32.pow(f.tries.min(10));
                    let packets = f.packets.clone();
                    self.stats.retransmitted += 1;
                    let (l, r) = (sa.local, sa.remote);
                    for p in packets {
                        self.send(l, r, p);
                    }
                    let _ = f.sent;
                }
            }
            if sa.keepalive_at.is_some_and(|d| d <= now) {
                sa.keepalive_at = Some(now + self.settings.keepalive);
                let (l, r) = (sa.local, sa.remote);
                self.stats.sent += 1;
                self.out.push_back(Output::Send { local: l, remote: r, data: vec![0xff] });
            }
            if sa.state == IkeState::Established {
                if sa.rekey_at.is_some_and(|d| d <= now) {
                    sa.rekey_at = None;
                    sa.tasks.push_back(Task::RekeyIke);
                }
                if let Some(d) = self.conns[sa.conn].dpd {
                    if sa.last_heard + d <= now && sa.in_flight.is_none() && !sa.tasks.contains(&Task::Liveness) {
                        sa.last_heard = now;
                        sa.tasks.push_back(Task::Liveness);
                    }
                }
            }
            let mut expired = Vec::new();
            let mut switch = Vec::new();
            for c in sa.children.iter_mut() {
                if let Some((new, _)) = c.successor.filter(|(_, t)| *t <= now) {
                    c.successor = None;
                    switch.push(new);
                }
                if c.rekey_at.is_some_and(|d| d <= now) {
                    c.rekey_at = None;
                    if c.state == ChildState::Installed {
                        sa.tasks.push_back(Task::RekeyChild(c.spi_in));
                    }
                }
                if c.expire_at <= now {
                    expired.push(c.spi_in);
                }
            }
            for new in switch {
                self.switch_policy(&sa, new);
            }
            for s in expired {
                if let Some(i) = sa.children.iter().position(|c| c.spi_in == s) {
                    // Hard lifetime: gone now, and the peer is told.
                    let c = sa.children.remove(i);
                    self.uninstall_child(&sa, &c, "hard lifetime");
                    if sa.state == IkeState::Established {
                        let d = Payload::Delete(Delete { protocol: ProtocolId::Esp, spis: vec![s] });
                        if sa.in_flight.is_none() {
                            self.request(
                                now,
                                &mut sa,
                                ExchangeType::Informational,
                                vec![d],
                                Pending::DeleteChildren(vec![]),
                            );
                        }
                    }
                }
            }
            self.put_back(now, spi, sa);
        }
    }
}

/// The largest protected message sent whole: fragments above it when the
/// peer supports them (RFC 7383 2.5).
fn frag_size(sa: &IkeSa, s: &Settings) -> Option<usize> {
    sa.peer_frag.then_some(s.fragment_size)
}

/// Protects `payloads`, as one SK payload or, when that would exceed
/// `limit`, as SKF fragments of at most `limit` octets each.
fn seal(
    k: crate::crypto::sk::SkKeys<'_>,
    h: Header,
    payloads: &[Payload],
    limit: Option<usize>,
    rng: &mut dyn Random,
) -> Vec<Vec<u8>> {
    let whole = k.seal(h, payloads, rng);
    let Some(limit) = limit.filter(|l| whole.len() > *l) else { return vec![whole] };
    let inner = crate::wire::message::emit_chain(payloads);
    let first = payloads.first().map_or(PayloadType::NoNextPayload, |p| p.ty());
    // Room for the header, SKF header, IV, padding and ICV.
    let chunk = limit.saturating_sub(Header::LEN + 8 + 16 + 16 + 32).max(64);
    let parts: Vec<&[u8]> = inner.chunks(chunk).collect();
    let total = parts.len() as u16;
    parts
        .iter()
        .enumerate()
        .map(|(i, part)| {
            let f = if i == 0 { first } else { PayloadType::NoNextPayload };
            k.seal_plain(h, PayloadType::EncryptedFragment, f, Some((i as u16 + 1, total)), part.to_vec(), rng)
        })
        .collect()
}

fn offer_spi(offer: &[Proposal], num: u8) -> Option<[u8; 4]> {
    offer.iter().find(|p| p.num == num).and_then(|p| p.spi.as_slice().try_into().ok())
}

fn proposal_group(p: &[Payload]) -> Option<DhGroup> {
    ke_of(p).map(|k| DhGroup::from_value(k.group))
}

/// What gwctl shows of an IKE SA.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct IkeSaInfo {
    pub conn: String,
    pub state: IkeState,
    pub initiator: bool,
    pub spi_i: String,
    pub spi_r: String,
    pub local: SocketAddr,
    pub remote: SocketAddr,
    pub nat: bool,
    pub suite: String,
    pub peer_id: String,
    pub virtual_ip: Option<IpAddr>,
    pub established_secs: Option<u64>,
    pub rekey_in_secs: Option<u64>,
    pub mpsa: bool,
    pub children: Vec<ChildInfo>,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ChildInfo {
    pub spi_in: String,
    pub spi_out: String,
    pub state: ChildState,
    pub alg: String,
    pub pfs: Option<u16>,
    pub ts_local: Vec<String>,
    pub ts_remote: Vec<String>,
    pub age_secs: u64,
    pub rekey_in_secs: Option<u64>,
    /// Filled in from dataplane counters by the daemon.
    pub packets_in: u64,
    pub bytes_in: u64,
    pub packets_out: u64,
    pub bytes_out: u64,
}

impl Engine {
    pub fn snapshot(&self, now: Instant) -> Vec<IkeSaInfo> {
        let mut v: Vec<IkeSaInfo> = self
            .sas
            .values()
            .map(|sa| IkeSaInfo {
                conn: self.conns[sa.conn].name.clone(),
                state: sa.state,
                initiator: sa.initiator,
                spi_i: format!("{:016x}", sa.spi_i),
                spi_r: format!("{:016x}", sa.spi_r),
                local: sa.local,
                remote: sa.remote,
                nat: sa.nat,
                suite: sa.suite.map(suite_text).unwrap_or_default(),
                peer_id: sa.peer_id.as_ref().map(|i| i.to_text()).unwrap_or_default(),
                virtual_ip: sa.vip,
                established_secs: sa.established.map(|e| now.saturating_duration_since(e).as_secs()),
                rekey_in_secs: sa.rekey_at.map(|r| r.saturating_duration_since(now).as_secs()),
                mpsa: sa.peer_mpsa && self.mpsa_role != MpsaRole::Off,
                children: sa
                    .children
                    .iter()
                    .map(|c| ChildInfo {
                        spi_in: format!("{:08x}", c.spi_in),
                        spi_out: format!("{:08x}", c.spi_out),
                        state: c.state,
                        alg: c.suite.alg(),
                        pfs: c.suite.dh.map(|g| g.value()),
                        ts_local: c.ts_local.iter().map(ts::ts_text).collect(),
                        ts_remote: c.ts_remote.iter().map(ts::ts_text).collect(),
                        age_secs: now.saturating_duration_since(c.created).as_secs(),
                        rekey_in_secs: c.rekey_at.map(|r| r.saturating_duration_since(now).as_secs()),
                        packets_in: 0,
                        bytes_in: 0,
                        packets_out: 0,
                        bytes_out: 0,
                    })
                    .collect(),
            })
            .collect();
        v.sort_by(|a, b| (&a.conn, &a.spi_i).cmp(&(&b.conn, &b.spi_i)));
        v
    }

    /// Starts every initiator connection that has no IKE SA.
    pub fn start_initiators(&mut self, now: Instant) {
        let names: Vec<String> = self
            .conns
            .iter()
            .enumerate()
            .filter(|(i, c)| c.role == Role::Initiator && !self.sas.values().any(|s| s.conn == *i))
            .map(|(_, c)| c.name.clone())
            .collect();
        for n in names {
            let _ = self.initiate(now, &n);
        }
    }
}

pub fn suite_text(s: IkeSuite) -> String {
    let e = match s.encr {
        crate::crypto::sk::Encr::AesGcm16(b) => format!("AES_GCM_16_{b}"),
        crate::crypto::sk::Encr::AesCbc(b) => format!("AES_CBC_{b}"),
    };
    let i = s.integ.map(|i| format!("/{:?}", i)).unwrap_or_default();
    format!("{e}{i}/PRF_{:?}/{:?}", s.prf, s.dh)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Random numbers from a script, so the SPI candidates are known.
    struct Scripted(Vec<u32>);

    impl Random for Scripted {
        fn fill(&mut self, buf: &mut [u8]) {
            buf.fill(0x5a);
        }
        fn u32(&mut self) -> u32 {
            self.0.remove(0)
        }
    }

    fn inbound(spi: u32) -> Command {
        Command::InstallSa(cpdp::msg::SaSpec {
            spi,
            direction: Direction::In,
            alg: "aes128gcm".into(),
            enc_key: zeroize::Zeroizing::new(vec![0; 20]),
            auth_key: zeroize::Zeroizing::new(Vec::new()),
            local: "192.0.2.1".parse().unwrap(),
            remote: "192.0.2.2".parse().unwrap(),
            natt: None,
            esn: false,
            replay_window: 64,
            seq: 0,
            inner_src: Vec::new(),
            inner_dst: Vec::new(),
            lifetime: Default::default(),
        })
    }

    #[test]
    fn a_new_child_spi_is_never_one_installed_and_is_free_again_once_deleted() {
        // Candidates: reserved (RFC 4303 2.1), installed, then free.
        let script = vec![7, 0x1000, 0x2000, 0x1000];
        let mut e = Engine::new(Vec::new(), Settings::default(), Box::new(Scripted(script)));
        e.dp(inbound(0x1000));
        assert_eq!(e.new_child_spi(), 0x2000, "1..255 are reserved, 0x1000 is in use");
        e.dp(Command::DeleteSa { spi: 0x1000, direction: Direction::In });
        assert_eq!(e.new_child_spi(), 0x1000, "deleted, so free again");
    }
}
