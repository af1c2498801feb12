//! The IKEv2 engine (RFC 7296), sans-IO: datagrams, dataplane events and
//! the time go in; datagrams to send, dataplane commands and events come
//! out ([`Output`]). Timers are deadlines the caller asks for with
//! [`Engine::poll_timeout`] and fires with [`Engine::handle_timeout`].
//! Every random value comes from the [`Random`] it is given, so a seeded
//! engine emits the same octets on every run.
//!
//! ```text
//! Initiator                                  Responder
//! IKE_SA_INIT  HDR, SAi1, KEi, Ni  -->                       ike_sa_init
//!                              <--  HDR, SAr1, KEr, Nr
//! IKE_AUTH     HDR, SK {IDi, AUTH, SAi2, TSi, TSr}  -->      ike_auth
//!                              <--  HDR, SK {IDr, AUTH, SAr2, TSi, TSr}
//! CREATE_CHILD_SA  new or rekeyed child SA  <-->             child_sa
//! CREATE_CHILD_SA  rekey of the IKE SA      <-->             ike_rekey
//! INFORMATIONAL    delete, liveness         <-->             informational
//! ```
//!
//! One module per exchange; beside them `sa` (an IKE SA's phases as
//! types), `fragments` (RFC 7383, both ways), `dataplane` (commands,
//! policies, resync), `timers`, `mpsa` (draft-yamaya-ipsecme-mpsa), and
//! `error` / `events`. This root dispatches datagrams to them and runs the
//! request window (RFC 7296 2.3: one request in flight each way).
//!
//! Panic policy: nothing a peer sends can panic; bad input is dropped and
//! counted ([`Stats`]) or answered with the notify RFC 7296 asks for.

mod child_sa;
mod clone;
mod clone_reduced;
mod control;
mod dataplane;
mod error;
mod events;
mod fragments;
mod ike_auth;
mod ike_rekey;
mod ike_sa_init;
mod ike_sa_syn;
mod informational;
mod mobike;
mod mobikex;
mod mpsa;
mod path_change;
mod payloads;
mod peer_discovery;
mod redirect;
mod reload;
mod sa;
mod signature_auth;
mod stub_fetch;
#[cfg(test)]
mod tests;
mod timers;

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use cpdp::msg::{Command, Direction};
use rustc_hash::{FxHashMap, FxHashSet};

use super::config::{Connection, Settings};
use crate::codepoints::{ExchangeType, PayloadType, IKE_PORT};
use crate::crypto::dh;
use crate::crypto::Random;
use crate::mpsa::{GatewayGroup, MpsaRole};
use crate::wire::{Flags, Header, Identification, Notify, Payload};

pub use error::{AuthFailure, Error};
pub use events::{ChildGone, Event, IkeGone, MoveReason, Stats};
pub use ike_sa_syn::STUB_GRACE_SECS;
pub use mobikex::AddressChange;
pub use mpsa::EndpointGroup;
pub use reload::Reloaded;
pub use sa::{Alternate, Child, ChildState, Connecting, Established, IkeSa, IkeState, Mobike};

use sa::{Core, InFlight, Pending, Phase, Task};

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
    /// For the stub store (draft-xu-ike-sa-sync): a stub to file,
    /// withdraw or forget.
    Stub(crate::stub::StubOp),
}

/// The IKEv2 engine: every IKE SA of every connection.
pub struct Engine {
    conns: Vec<Connection>,
    settings: Settings,
    rng: Box<dyn Random>,
    dh_pool: dh::KeyPool,
    /// Keyed IKE SAs by our SPI; maps with a fixed hasher, so iteration
    /// order (and output) depends on the inputs alone. Boxed: each message
    /// takes its SA out and puts it back, and the table grows, moving
    /// pointers, not SAs (at 10,000 SAs the growth's fresh pages were most
    /// of a SYN's cost, perf).
    sas: FxHashMap<u64, Box<IkeSa>>,
    /// Our IKE_SA_INITs waiting for an answer, by our SPI.
    connecting: FxHashMap<u64, Connecting>,
    /// Responder: (peer's SPIi, peer address) -> our SPI, for IKE_SA_INIT
    /// retransmissions and duplicates.
    init_index: FxHashMap<(u64, SocketAddr), u64>,
    half_open: usize,
    cookies: ike_sa_init::CookieSecrets,
    out: VecDeque<Output>,
    pub stats: Stats,
    policies: dataplane::Policies,
    /// Virtual addresses leased: address -> our SPI of the IKE SA.
    leases: FxHashMap<IpAddr, u64>,
    /// MPSA: off, gateway (hands group SAs out) or endpoint (installs them).
    /// Anything but off announces V(MPSA) in IKE_SA_INIT.
    pub mpsa_role: MpsaRole,
    /// Gateway: the groups and their current SAs.
    groups: Vec<GatewayGroup>,
    /// Endpoint: group SAs installed, by connection name.
    endpoint_groups: std::collections::BTreeMap<String, EndpointGroup>,
    /// MPSA endpoint: routes peer discovery learned, by connection name
    /// (`peer_discovery.rs`).
    learned: std::collections::BTreeMap<String, Vec<crate::bgp::LearnedRoute>>,
    /// Deadlines by SA (entries go stale when an SA's deadline moves; see
    /// `Core::scheduled`).
    timers: std::collections::BinaryHeap<std::cmp::Reverse<(Instant, u64)>>,
    /// SAs changed by the current call, to reschedule at its end.
    touched: Vec<u64>,
    /// Inbound child SPIs installed in the dataplane, kept by [`Self::dp`]
    /// from the commands it sends: a new SPI is checked in constant time.
    installed_in: FxHashSet<u32>,
    /// Our SPIs of the IKE SAs by the peer's identity (authenticated, or
    /// the one an initiator's IKE_AUTH expects): INITIAL_CONTACT's checks
    /// (RFC 7296 2.4) without scanning every IKE SA.
    by_peer: FxHashMap<Identification, Vec<u64>>,
    /// Our usable addresses, as the daemon last said (`local_addresses`);
    /// None: not known (every address counts as usable).
    local_addrs: Option<Vec<IpAddr>>,
    /// Stubs of other gateways' IKE SAs we may rebuild (draft-xu-ike-sa-sync).
    /// Boxed: a bulk Download files thousands, and the table's growth
    /// moves pointers, not stubs.
    stubs: FxHashMap<crate::stub::StubIndex, Box<crate::stub::IkeSaStub>>,
    /// A moment and its second of the Unix epoch (`set_unix_time`).
    unix_anchor: Option<(Instant, u64)>,
    /// SYNs waiting for their stub from the bank (`stub_fetch`).
    fetching: stub_fetch::Fetching,
    /// Initiator: IKE_SA_INITs made by connection since its last IKE SA
    /// came up (which gateway of `remote` + `standby` the next one goes to).
    init_attempts: FxHashMap<usize, usize>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").field("ike_sas", &self.sas.len()).field("stats", &self.stats).finish()
    }
}

impl Engine {
    pub fn new(conns: Vec<Connection>, settings: Settings, mut rng: Box<dyn Random>) -> Engine {
        let cookies = ike_sa_init::CookieSecrets::new(rng.as_mut());
        Engine {
            conns,
            settings,
            rng,
            dh_pool: dh::KeyPool::default(),
            sas: FxHashMap::default(),
            connecting: FxHashMap::default(),
            init_index: FxHashMap::default(),
            half_open: 0,
            cookies,
            out: VecDeque::new(),
            stats: Stats::default(),
            policies: dataplane::Policies::default(),
            leases: FxHashMap::default(),
            mpsa_role: MpsaRole::Off,
            groups: Vec::new(),
            endpoint_groups: Default::default(),
            learned: Default::default(),
            timers: Default::default(),
            touched: Vec::new(),
            installed_in: FxHashSet::default(),
            by_peer: FxHashMap::default(),
            local_addrs: None,
            stubs: FxHashMap::default(),
            unix_anchor: None,
            fetching: Default::default(),
            init_attempts: FxHashMap::default(),
        }
    }

    /// Room for `n` more IKE SAs (and one child SA each) in the tables a
    /// new SA goes into, so taking over `n` clients at once grows none.
    pub fn reserve_sas(&mut self, n: usize) {
        self.sas.reserve(n);
        self.init_index.reserve(n);
        self.by_peer.reserve(n);
        self.installed_in.reserve(n);
        self.policies.reserve(n);
        // A new SA's deadline changes about twice on its way up.
        self.timers.reserve(2 * n);
    }

    pub fn connections(&self) -> &[Connection] {
        &self.conns
    }

    /// Keyed IKE SAs (authenticating or established).
    pub fn ike_sas(&self) -> impl Iterator<Item = &IkeSa> {
        self.sas.values().map(|b| &**b)
    }

    /// Our IKE_SA_INITs still unanswered.
    pub fn connecting(&self) -> impl Iterator<Item = &Connecting> {
        self.connecting.values()
    }

    pub fn half_open(&self) -> usize {
        self.half_open
    }

    /// The next output, if any. Call until None after every input.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    fn event(&mut self, e: Event) {
        match &e {
            Event::IkeRekeyed { .. } => self.stats.ike_rekeys += 1,
            Event::ChildUp { rekey_of: Some(_), .. } => self.stats.child_rekeys += 1,
            _ => {}
        }
        self.out.push_back(Output::Event(e));
    }

    fn failed(&mut self, conn: usize, why: Error) {
        let conn = self.conns[conn].name.clone();
        self.event(Event::Failed { conn, why });
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
        self.out.push_back(Output::Send { local, remote, data: payloads::frame(local, ike) });
    }

    fn jitter(&mut self, d: Duration, percent: u8) -> Duration {
        let max = d.as_millis() as u64 * percent as u64 / 100;
        if max == 0 {
            return d;
        }
        d - Duration::from_millis(self.rng.u64() % max)
    }

    fn nonce(&mut self) -> Vec<u8> {
        self.rng.nonce(self.settings.nonce_len)
    }

    fn new_spi(&mut self) -> u64 {
        loop {
            let s = self.rng.u64();
            if s != 0 && !self.sas.contains_key(&s) && !self.connecting.contains_key(&s) {
                return s;
            }
        }
    }

    fn new_child_spi(&mut self) -> u32 {
        loop {
            // RFC 4303 2.1: 1..255 are reserved.
            let s = self.rng.u32();
            // Nor a group SA's SPI we hold (one SPI, one inbound SA).
            if s > 255
                && !self.installed_in.contains(&s)
                && !self.endpoint_groups.values().any(|g| g.spis().any(|x| x == s))
            {
                return s;
            }
        }
    }

    /// The IKE SA under our SPI (the table keeps them boxed).
    fn sa(&self, spi: &u64) -> Option<&IkeSa> {
        self.sas.get(spi).map(|b| &**b)
    }

    fn sa_mut(&mut self, spi: &u64) -> Option<&mut IkeSa> {
        self.sas.get_mut(spi).map(|b| &mut **b)
    }

    fn conn_index(&self, name: &str) -> Result<usize, Error> {
        self.conns.iter().position(|c| !c.retired && c.name == name).ok_or_else(|| Error::NoConnection(name.into()))
    }

    // ---- The request window (RFC 7296 2.3) -------------------------------

    fn queue(&mut self, now: Instant, spi: u64, t: Task) {
        if let Some(sa) = self.sa_mut(&spi) {
            if !sa.core.w.tasks.contains(&t) {
                sa.core.w.tasks.push_back(t);
            }
        }
        self.kick(now, spi);
    }

    /// Starts the next queued exchange if the window is free.
    fn kick(&mut self, now: Instant, spi: u64) {
        loop {
            let Some(sa) = self.sa_mut(&spi) else { return };
            if sa.core.w.in_flight.is_some() || sa.core.deleting || sa.established().is_none() {
                return;
            }
            let Some(t) = sa.core.w.tasks.pop_front() else { return };
            if self.start_task(now, spi, t) {
                return;
            }
        }
    }

    /// Returns whether a request went out.
    fn start_task(&mut self, now: Instant, spi: u64, t: Task) -> bool {
        let Some(mut sa) = self.sas.remove(&spi) else { return false };
        let IkeSa { core, phase: Phase::Established(est) } = &mut *sa else {
            self.insert_sa(spi, sa);
            return false;
        };
        let sent = match t {
            Task::Liveness => self.start_liveness(now, core),
            Task::DeleteIke => self.start_delete_ike(now, core),
            Task::DeleteChild(s) => self.start_delete_child(now, core, est, s),
            Task::CreateChild(k) => self.start_child_create(now, core, est, k, Vec::new()),
            Task::CreateChildWith(k, extra) => self.start_child_create(now, core, est, k, extra),
            Task::RekeyChild(old) => self.start_child_rekey(now, core, est, old),
            Task::MpsaPut(g) => self.start_mpsa_put(now, core, est, g),
            Task::Informational(p) => {
                self.request(now, core, ExchangeType::Informational, p, Pending::Informational);
                true
            }
            Task::MobikeUpdate(ip, why) => self.start_mobike_update(now, core, est, ip, why),
            Task::MobikeAnnounce(old, why) => self.send_mobike_update(now, core, est, old, why),
            Task::Mobikex(op) => self.start_mobikex(now, core, op),
            Task::RekeyIke if !est.rekeyed => self.start_ike_rekey(now, core, est, None),
            Task::CloneIke(ip) if !est.rekeyed && est.clone => self.start_ike_rekey(now, core, est, Some(ip)),
            Task::CloneIke(_) => false,
            Task::MoveWithChild(ip, k) => self.start_move_with_child(now, core, est, ip, k),
            Task::RekeyIke => false,
        };
        self.insert_sa(spi, sa);
        sent
    }

    /// Sends a protected request on `sa` and remembers it for retransmission.
    fn request(&mut self, now: Instant, sa: &mut Core, ex: ExchangeType, payloads: Vec<Payload>, what: Pending) {
        let message_id = sa.w.next_request;
        let packets = self.protect(sa, ex, message_id, false, &payloads);
        sa.w.in_flight = Some(InFlight {
            message_id,
            packets: packets.clone(),
            next: now + self.settings.retransmit_base,
            tries: 0,
            what,
        });
        sa.w.next_request = message_id.wrapping_add(1);
        for m in packets {
            self.send(sa.local, sa.remote, m);
        }
    }

    /// Sends a protected response and keeps it for retransmitted requests.
    /// RFC 7296 2.11: it goes to the address and port the request came
    /// from, and from the one it was sent to.
    fn respond(&mut self, sa: &mut Core, ex: ExchangeType, message_id: u32, payloads: Vec<Payload>) {
        let packets = self.protect(sa, ex, message_id, true, &payloads);
        sa.w.last_response = Some((message_id, packets.clone()));
        let (l, r) = sa.w.reply_to.unwrap_or((sa.local, sa.remote));
        for m in packets {
            self.send(l, r, m);
        }
    }

    /// `payloads` in an SK payload (or SKF fragments) under `sa`'s keys.
    fn protect(&mut self, sa: &Core, ex: ExchangeType, message_id: u32, response: bool, p: &[Payload]) -> Vec<Vec<u8>> {
        let h = Header {
            spi_i: sa.spi_i,
            spi_r: sa.spi_r,
            next_payload: PayloadType::NoNextPayload,
            exchange: ex,
            flags: Flags { initiator: sa.initiator, response, ..Default::default() },
            message_id,
            length: 0,
        };
        let limit = fragments::limit(sa, &self.settings);
        fragments::seal(sa.keys.sk(&sa.suite, sa.initiator), h, p, limit, self.rng.as_mut())
    }

    /// Answers a request with one notify: the refusal `why` names.
    fn refuse(&mut self, sa: &mut Core, ex: ExchangeType, message_id: u32, why: &Error) {
        let (ty, data) = why.notify();
        self.respond(sa, ex, message_id, vec![Payload::Notify(Notify::new(ty, data))]);
    }

    // ---- Input -----------------------------------------------------------

    /// One UDP payload received on `local` from `remote`.
    pub fn handle_datagram(&mut self, now: Instant, local: SocketAddr, remote: SocketAddr, data: &[u8]) {
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
        let Ok(header) = Header::parse(ike) else {
            self.stats.malformed += 1;
            return;
        };
        if header.exchange == ExchangeType::IkeSaInit {
            if !header.flags.response {
                // RFC 7296 3.1: the request comes from the original initiator
                // (I set), whose SPI "MUST NOT be zero"; SPIr is still zero
                // and the message ID 0 (2.2). Anything else is dropped.
                if header.flags.initiator && header.spi_i != 0 && header.spi_r == 0 && header.message_id == 0 {
                    self.init_request(now, local, remote, ike, header);
                } else {
                    self.stats.bad_init_request += 1;
                }
            } else if header.flags.initiator {
                self.stats.unknown_spi += 1;
            } else {
                self.init_response(now, local, remote, ike, header);
            }
            return;
        }
        let ours = if header.flags.initiator { header.spi_r } else { header.spi_i };
        let Some(mut sa) = self.sas.remove(&ours) else {
            self.stats.unknown_spi += 1;
            return;
        };
        // The SA must be the one these SPIs name, in the right role.
        if sa.core.spi_i != header.spi_i || sa.core.spi_r != header.spi_r || header.flags.initiator == sa.core.initiator
        {
            self.stats.unknown_spi += 1;
            self.insert_sa(ours, sa);
            return;
        }
        if header.flags.response {
            self.response(now, &mut sa, local, remote, ike, header);
        } else {
            sa.core.w.reply_to = Some((local, remote));
            self.request_in(now, &mut sa, local, remote, ike, header);
            sa.core.w.reply_to = None;
        }
        self.put_back(now, ours, sa);
    }

    /// A response to our request.
    fn response(&mut self, now: Instant, sa: &mut IkeSa, local: SocketAddr, remote: SocketAddr, ike: &[u8], h: Header) {
        if sa.core.w.in_flight.as_ref().map(|f| f.message_id) != Some(h.message_id) {
            self.stats.bad_message_id += 1;
            return;
        }
        let from_initiator = !sa.core.initiator;
        let payloads = match self.open(&mut sa.core, ike, from_initiator) {
            None => return,
            Some(Ok(p)) => p,
            Some(Err(_)) => {
                // A response we cannot parse: the exchange failed.
                sa.core.w.in_flight = None;
                return;
            }
        };
        self.heard_from(sa, now, local, remote);
        let Some(f) = sa.core.w.in_flight.take() else { return };
        let IkeSa { core, phase } = sa;
        let up = match (f.what, phase) {
            (Pending::Auth { child, clone }, Phase::Authenticating(a)) => {
                self.auth_response(now, core, a, &payloads, child, clone)
            }
            (what, Phase::Established(est)) => {
                self.established_response(now, core, est, &payloads, what);
                None
            }
            // Requests of one phase are answered in it.
            (_, Phase::Authenticating(_)) => None,
        };
        if let Some(est) = up {
            sa.phase = Phase::Established(est);
            self.established_next(now, &mut sa.core, &sa.phase);
        }
    }

    fn established_response(
        &mut self,
        now: Instant,
        sa: &mut Core,
        est: &mut Established,
        p: &[Payload],
        what: Pending,
    ) {
        // An answer: the path works (RFC 4555 3.10).
        self.path_answered(sa, est);
        match what {
            Pending::Auth { .. } => {}
            Pending::CreateChild { child, ni, dh, moving } => {
                self.child_create_response(now, sa, est, p, child, ni, dh, moving)
            }
            Pending::RekeyChild { old, spi_in, ni, dh } => {
                self.child_rekey_response(now, sa, est, p, old, spi_in, ni, dh)
            }
            Pending::RekeyIke { spi, ni, dh, clone } => self.ike_rekey_response(now, sa, est, p, spi, ni, dh, clone),
            Pending::DeleteChildren(spis) => self.delete_children_response(sa, est, spis),
            Pending::DeleteIke => {
                sa.deleting = true;
                sa.w.tasks.clear();
            }
            Pending::Liveness => {}
            Pending::MpsaPut { group, spi } => self.mpsa_put_response(sa, est, p, group, spi),
            Pending::Informational => {
                if let Some(e) = Error::refusal(p) {
                    self.failed(sa.conn, e);
                }
                // RFC 7791: support announced in an INFORMATIONAL, answered.
                est.clone |= self.clone_agreed(sa.conn, p);
            }
            Pending::MobikeUpdate { cookie2, old, why } => {
                if self.mobike_update_answered(now, sa, est, p, cookie2, old, why) {
                    self.clone_arrived(sa, est);
                }
            }
            Pending::Mobikex(op) => self.mobikex_response(sa, est, p, op),
        }
    }

    /// An authenticated message came from `remote` to `local`.
    fn heard_from(&mut self, sa: &mut IkeSa, now: Instant, local: SocketAddr, remote: SocketAddr) {
        let IkeSa { core, phase } = sa;
        core.last_heard = now;
        // A rebuilt IKE SA is proven by its first valid protected message.
        if let Phase::Established(est) = phase {
            est.unproven = None;
        }
        // RFC 7296 2.23: behind a NAT the peer's address is the one of its
        // last authenticated message; established child SAs follow it
        // (without MOBIKE, whose UPDATE_SA_ADDRESSES moves them instead).
        match phase {
            Phase::Established(est) => self.nat_mapping_changed(core, est, remote),
            Phase::Authenticating(_) if core.nat => core.remote = remote,
            Phase::Authenticating(_) => {}
        }
        // The peer floated to port 4500 (RFC 7296 2.23): answer from there,
        // unless this was a MOBIKE request from another path (3.9), answered
        // where it came from without moving.
        let mobike = sa.established().is_some_and(|e| e.mobike.is_some());
        if sa.core.local != local && (!mobike || sa.core.local.ip() == local.ip()) {
            sa.core.local = local;
        }
    }

    /// A request from the peer.
    fn request_in(
        &mut self,
        now: Instant,
        sa: &mut IkeSa,
        local: SocketAddr,
        remote: SocketAddr,
        ike: &[u8],
        h: Header,
    ) {
        let w = &sa.core.w;
        // RFC 7296 2.3: the one before the expected ID is a retransmission
        // (answer it again, to where this copy came from: 2.11); anything
        // else is dropped.
        if h.message_id.wrapping_add(1) == w.expect_request {
            if let Some((id, packets)) = &w.last_response {
                if *id == h.message_id {
                    self.stats.retransmits_answered += 1;
                    for pk in packets.clone() {
                        self.send(local, remote, pk);
                    }
                }
            }
            return;
        }
        if h.message_id != w.expect_request {
            self.stats.bad_message_id += 1;
            return;
        }
        // The responder's first request (an MPSA_PUT, say) overtook its
        // IKE_AUTH response: leave it unanswered and unconsumed; it is
        // retransmitted, and by then the IKE SA is up.
        if sa.core.initiator && matches!(sa.phase, Phase::Authenticating(_)) {
            return;
        }
        let from_initiator = !sa.core.initiator;
        let payloads = match self.open(&mut sa.core, ike, from_initiator) {
            None => return,
            Some(Ok(p)) => p,
            Some(Err(e)) => {
                // Authenticated but unparseable: answer with the notify.
                sa.core.w.expect_request = sa.core.w.expect_request.wrapping_add(1);
                self.refuse(&mut sa.core, h.exchange, h.message_id, &e);
                if h.exchange == ExchangeType::IkeAuth {
                    sa.core.deleting = true;
                }
                return;
            }
        };
        sa.core.w.expect_request = sa.core.w.expect_request.wrapping_add(1);
        self.heard_from(sa, now, local, remote);
        let id = h.message_id;
        let IkeSa { core, phase } = sa;
        let up = match (h.exchange, phase) {
            (ExchangeType::IkeAuth, Phase::Authenticating(a)) if !core.initiator => {
                self.auth_request(now, core, a, &payloads, id)
            }
            (ExchangeType::CreateChildSa, Phase::Established(est)) if !est.rekeyed && !core.deleting => {
                self.create_child_request(now, core, est, &payloads, id);
                None
            }
            (ExchangeType::Informational, Phase::Established(est)) => {
                self.informational_request(now, core, est, &payloads, id);
                None
            }
            (ExchangeType::CreateChildSa, _) => {
                // RFC 7296 2.25: busy with a rekey or deletion.
                self.refuse(core, h.exchange, id, &Error::Busy("the IKE SA is not established"));
                None
            }
            (ex, _) => {
                self.refuse(core, ex, id, &Error::Policy("this exchange is not expected now"));
                None
            }
        };
        if let Some(est) = up {
            sa.phase = Phase::Established(est);
            self.established_next(now, &mut sa.core, &sa.phase);
        }
    }

    /// Reinserts an SA unless it was deleted, and starts queued work.
    fn put_back(&mut self, now: Instant, spi: u64, sa: Box<IkeSa>) {
        if sa.core.deleting && sa.core.w.in_flight.is_none() && sa.core.w.tasks.is_empty() {
            self.remove_sa(now, sa, IkeGone::Deleted);
            return;
        }
        self.insert_sa(spi, sa);
        self.kick(now, spi);
    }

    fn insert_sa(&mut self, spi: u64, sa: impl Into<Box<IkeSa>>) {
        self.sas.insert(spi, sa.into());
        self.touched.push(spi);
    }

    fn remove_sa(&mut self, now: Instant, sa: impl Into<Box<IkeSa>>, why: IkeGone) {
        let mut sa = sa.into();
        self.mpsa_sa_gone(now, &sa, why);
        if sa.established().is_some() {
            self.withdraw_stub(&sa.core);
            self.failover_after(now, &sa, why);
        }
        self.file_peer(&mut sa.core, None);
        if sa.core.half_open_until.take().is_some() {
            self.half_open = self.half_open.saturating_sub(1);
        }
        if !sa.core.initiator {
            self.init_index.remove(&(sa.core.spi_i, sa.core.remote));
        }
        let IkeSa { core, phase } = &mut *sa;
        if let Phase::Established(est) = phase {
            for c in std::mem::take(&mut est.children) {
                self.uninstall_child(core, &c, ChildGone::IkeSa(why));
            }
            if let Some(v) = est.vip {
                self.leases.remove(&v);
            }
        }
        if core.deleting || matches!(phase, Phase::Established(_)) {
            let conn = self.conns[core.conn].name.clone();
            self.event(Event::IkeDown { conn, spi_i: core.spi_i, spi_r: core.spi_r, why });
        }
    }

    /// A fresh IKE SA is up: queue the work that follows (the other child
    /// SAs of an initiator, group SAs of an MPSA gateway).
    fn established_next(&mut self, now: Instant, sa: &mut Core, phase: &Phase) {
        let Phase::Established(est) = phase else { return };
        if sa.initiator {
            self.init_attempts.remove(&sa.conn);
            let c = &self.conns[sa.conn];
            // Clone IKE SA layout (RFC 7791 Appendix B): one clone per other
            // interface, that interface's child SAs opened on it once it is
            // there (`clone::clone_arrived`). Without the extension every
            // child SA goes on this IKE SA.
            let layout = est.clone && !c.interfaces.is_empty();
            for (k, cfg) in c.children.iter().enumerate().skip(1) {
                let here = !layout || cfg.interface.is_none_or(|i| c.local == Some(i));
                if cfg.auto && here && !est.children.iter().any(|x| x.cfg == k) {
                    sa.w.tasks.push_back(Task::CreateChild(k));
                }
            }
            if layout {
                // Less the one made in IKE_AUTH (Appendix B.5).
                let ours = sa.our_spi();
                for ip in &c.interfaces {
                    let made = self
                        .sas
                        .values()
                        .any(|x| x.established().is_some_and(|e| e.clone_of == Some(ours) && e.home == Some(*ip)));
                    if !made {
                        sa.w.tasks.push_back(Task::CloneIke(Some(*ip)));
                    }
                }
            }
        }
        self.mpsa_established(now, sa, est);
        self.export_stub(sa, est);
    }
}
