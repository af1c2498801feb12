//! IKE SA synchronization (draft-xu-ike-sa-sync; NOTES.md "IKE SA
//! synchronization"), both roles: a client whose gateway died rebuilds its
//! IKE SA on a standby gateway that holds the SA's stub, in one round trip
//! with no Diffie-Hellman and no IKE_AUTH.
//!
//! ```text
//! Client                                      Standby gateway
//! HDR, SAi1, KEi, Ni, SYN(old gateway SPI, address)  -->
//!                                  <--  HDR(new SPIr), Nr     (stub found)
//! SKEYSEED = prf(SK_d (old), g^ir (old) | Ni | Nr), the seven keys as in
//! an IKE SA rekey (RFC 7296 2.18) with the new SPIs and the stub's suite;
//! the stub's identities, no IKE_AUTH; child SAs by CREATE_CHILD_SA.
//!                                  <--  HDR, SAr1, KEr, Nr    (no stub:
//!                                        the full exchange goes on)
//! ```
//!
//! A gateway connection with `stubs = true` exports a stub of each IKE SA
//! (`Output::Stub`: after IKE_AUTH, after each IKE SA rekey, withdrawn when
//! the SA goes) and rebuilds from the stubs it holds (`add_stub`). A stub
//! is used once. A rebuilt SA that sees no valid protected message within
//! `rebuilt_timeout` is deleted (section 5 item 3). A client connection
//! with `standby = [...]` rebuilds there when its gateway stops answering,
//! or on `failover`.

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use super::payloads;
use super::sa::{Connecting, Core, Established, IkeSa, Mobike, Phase, Task};
use super::{Engine, Error, Event, IkeGone, Output};
use crate::codepoints::NATT_PORT;
use crate::crypto::keys::{self, IkeKeys};
use crate::ike::proposal;
use crate::mobikex::Version;
use crate::stub::{IkeSaStub, MobikeStub, StubIndex, StubOp};
use crate::wire::{Header, IkeSaSyn, Message, Payload, Proposal};

/// Seconds past a stub's expiry (its IKE SA's rekey time) that it still
/// rebuilds: a client whose gateway died at rekey time fails over only
/// after its rekey request went unanswered (RFC 7296 2.4).
pub const STUB_GRACE_SECS: u64 = 600;

impl Engine {
    /// The stub of IKE SA `sa` under `index`.
    fn make_stub(&self, sa: &Core, est: &Established, index: StubIndex) -> IkeSaStub {
        let (gateway, client) = if sa.mobike_initiator { (sa.remote, sa.local) } else { (sa.local, sa.remote) };
        let (id_gw, id_client) = match (&self.conns[sa.conn].local_id, &est.peer_id) {
            (ours, peer) if sa.mobike_initiator => (peer.clone(), ours.clone()),
            (ours, peer) => (ours.clone(), peer.clone()),
        };
        let expires_unix = est.rekey_at.and_then(|r| self.unix_now(r)).unwrap_or(0);
        IkeSaStub {
            index,
            gateway_port: gateway.port(),
            spi_i: sa.spi_i,
            spi_r: sa.spi_r,
            id_i: id_client,
            id_r: id_gw,
            proposal: proposal::ike_proposal(&sa.suite, 1, Vec::new()),
            sk_d: sa.keys.sk_d.clone(),
            g_ir: sa.g_ir.clone(),
            peer: client,
            nat: sa.nat,
            peer_behind_nat: if sa.mobike_initiator { sa.we_behind_nat } else { sa.nat && !sa.we_behind_nat },
            expires_unix,
            mpsa: sa.peer_mpsa,
            mobike: est.mobike.as_ref().map(|m| MobikeStub {
                version: match m.version {
                    Version::Mobike => 1,
                    Version::MobikeX => 2,
                },
                peer_addresses: m.peer_addresses.clone(),
            }),
        }
    }

    /// Whether IKE SA `sa` has a stub of ours: we are its gateway, on a
    /// `stubs = true` connection.
    fn has_stub(&self, sa: &Core) -> bool {
        self.conns[sa.conn].stubs && !sa.mobike_initiator
    }

    /// Gateway: our stub of `sa`, filed under our address and SPI.
    fn gateway_stub(&self, sa: &Core, est: &Established) -> IkeSaStub {
        self.make_stub(sa, est, gateway_index(sa))
    }

    /// Gateway: the stub of IKE SA `spi` out (after its rekey settled).
    pub(super) fn export_stub_of(&mut self, spi: u64) {
        let stub = self
            .sas
            .get(&spi)
            .and_then(|x| x.established().filter(|_| self.has_stub(&x.core)).map(|e| self.gateway_stub(&x.core, e)));
        if let Some(s) = stub {
            self.stub_out(s);
        }
    }

    /// Gateway (`stubs = true`): the stub of a new or rekeyed IKE SA out.
    pub(super) fn export_stub(&mut self, sa: &Core, est: &Established) {
        if self.has_stub(sa) {
            let s = self.gateway_stub(sa, est);
            self.stub_out(s);
        }
    }

    fn stub_out(&mut self, s: IkeSaStub) {
        self.stats.stubs_exported += 1;
        self.out.push_back(Output::Stub(StubOp::Update(Box::new(s))));
    }

    /// Gateway: IKE SA `sa` went (deleted, rekeyed): its stub is withdrawn.
    pub(super) fn withdraw_stub(&mut self, sa: &Core) {
        if self.has_stub(sa) {
            self.out.push_back(Output::Stub(StubOp::Withdraw(gateway_index(sa))));
        }
    }

    /// Takes `stub` into the local table (distributed mode, or what a
    /// bank's Download brought); a stub under the same index is replaced.
    pub fn add_stub(&mut self, stub: IkeSaStub) {
        self.add_stubs(vec![stub]);
    }

    /// Takes a batch of stubs in (one Update or Download). A standby that
    /// holds N stubs may have to rebuild N IKE SAs at once, and does it
    /// best with its tables already that large: they are sized for every
    /// stub held now, so a failover's SYNs do not grow (and rehash) them.
    pub fn add_stubs(&mut self, stubs: Vec<IkeSaStub>) {
        self.stubs.reserve(stubs.len());
        for s in stubs {
            self.stubs.insert(s.index, Box::new(s));
        }
        self.reserve_sas(self.stubs.len());
    }

    /// Drops the stub under `index` (withdrawn by its gateway).
    pub fn remove_stub(&mut self, index: &StubIndex) -> bool {
        self.stubs.remove(index).is_some()
    }

    /// Stubs in the local table.
    pub fn stubs_held(&self) -> usize {
        self.stubs.len()
    }

    /// Every stub in the local table (a peer's Get).
    pub fn stubs(&self) -> impl Iterator<Item = &IkeSaStub> {
        self.stubs.values().map(|b| &**b)
    }

    /// The stubs of our own IKE SAs on `stubs = true` connections (a peer
    /// that joins later asks for them with its Get).
    pub fn own_stubs(&self) -> Vec<IkeSaStub> {
        self.sas
            .values()
            .filter(|x| self.has_stub(&x.core))
            .filter_map(|x| x.established().filter(|e| !e.rekeyed).map(|e| self.gateway_stub(&x.core, e)))
            .collect()
    }

    /// Says which wall-clock second `now` is, for the expiry stubs carry
    /// across machines (without it they carry 0: unknown).
    pub fn set_unix_time(&mut self, now: Instant, unix_secs: u64) {
        self.unix_anchor = Some((now, unix_secs));
    }

    /// The wall-clock second of `now`, when `set_unix_time` told us.
    pub(super) fn unix_now(&self, now: Instant) -> Option<u64> {
        self.unix_anchor.map(|(at, secs)| secs + now.saturating_duration_since(at).as_secs())
    }

    /// Client: rebuilds every IKE SA of connection `name` on its first
    /// standby gateway by IKE_SA_SYN (the old gateway presumed gone: no
    /// Delete is sent). Returns how many.
    pub fn failover(&mut self, now: Instant, name: &str) -> Result<usize, Error> {
        let ci = self.conn_index(name)?;
        if self.conns[ci].standby.is_empty() {
            return Err(Error::Policy("no standby gateways configured"));
        }
        let spis = self.established_of(ci);
        for s in &spis {
            if let Some(sa) = self.sas.remove(s) {
                let stub = sa.established().map(|e| self.client_stub(&sa.core, e));
                self.remove_sa(now, sa, IkeGone::Deleted);
                if let Some(stub) = stub {
                    self.start_syn(now, ci, stub)?;
                }
            }
        }
        self.reschedule();
        Ok(spis.len())
    }

    /// Client: rebuilds connection `name`'s IKE SA from `stub` (one of its
    /// gateway's, or our own view of a lost SA) on its first standby
    /// gateway, by IKE_SA_SYN (tools and tests).
    pub fn rebuild_from(&mut self, now: Instant, name: &str, stub: IkeSaStub) -> Result<(), Error> {
        let ci = self.conn_index(name)?;
        if self.conns[ci].standby.is_empty() {
            return Err(Error::Policy("no standby gateways configured"));
        }
        let r = self.start_syn(now, ci, stub);
        self.reschedule();
        r
    }

    /// Client: our view of `sa` as a stub, filed under the gateway's
    /// address and SPI (the index the gateway filed it under).
    pub(super) fn client_stub(&self, sa: &Core, est: &Established) -> IkeSaStub {
        let gw_spi = if sa.initiator { sa.spi_r } else { sa.spi_i };
        self.make_stub(sa, est, StubIndex { gateway: sa.remote.ip(), spi: gw_spi })
    }

    /// Client: IKE SA `sa` went because its gateway stopped answering:
    /// rebuilt on a standby gateway if the connection has one.
    pub(super) fn failover_after(&mut self, now: Instant, sa: &IkeSa, why: IkeGone) {
        let c = &self.conns[sa.core.conn];
        if why != IkeGone::PeerNotResponding || !sa.core.mobike_initiator || c.standby.is_empty() {
            return;
        }
        if let Some(est) = sa.established() {
            let stub = self.client_stub(&sa.core, est);
            let _ = self.start_syn(now, sa.core.conn, stub);
        }
    }

    /// Client: IKE_SA_INIT { SAi1, KEi, Ni, SYN } to the first standby
    /// that is not the gateway the stub came from.
    fn start_syn(&mut self, now: Instant, ci: usize, stub: IkeSaStub) -> Result<(), Error> {
        let c = &self.conns[ci];
        let old = stub.index.gateway;
        let to = c.standby.iter().copied().find(|a| *a != old).unwrap_or(c.standby[0]);
        self.syn_to(now, ci, stub, to)
    }

    fn syn_to(&mut self, now: Instant, ci: usize, stub: IkeSaStub, to: IpAddr) -> Result<(), Error> {
        self.syn_to_from(now, ci, stub, to, None)
    }

    /// The SYN to `to`; `redirected`: sent there by a REDIRECT (RFC 5685)
    /// from that gateway, of our IKE SA with that SPI.
    pub(super) fn syn_to_from(
        &mut self,
        now: Instant,
        ci: usize,
        stub: IkeSaStub,
        to: IpAddr,
        redirected: Option<(IpAddr, u64)>,
    ) -> Result<(), Error> {
        // From the connection's own address when it names one: the path
        // the SA last used may have been a probe of another of ours.
        let local = self.conns[ci].local.filter(|l| l.is_ipv4() == to.is_ipv4()).unwrap_or(stub.peer.ip());
        self.stats.syn_sent += 1;
        self.send_first_init_to(now, ci, (local, to), Some(Box::new(stub)), redirected)
    }

    /// Client: our SYN `c` went unanswered: the next standby after that
    /// one (not the stub's own gateway), if any, is asked instead.
    pub(super) fn syn_unanswered(&mut self, now: Instant, c: Connecting) {
        let Some(stub) = c.syn else { return };
        let standby = &self.conns[c.conn].standby;
        let tried = c.remote.ip();
        let after = standby.iter().position(|a| *a == tried).map_or(0, |i| i + 1);
        let next = standby[after.min(standby.len())..].iter().copied().find(|a| *a != stub.index.gateway);
        if let Some(to) = next {
            let _ = self.syn_to(now, c.conn, *stub, to);
        }
    }

    /// Responder: IKE_SA_INIT `h`/`p` carries IKE_SA_SYN `syn`. True when
    /// answered by a rebuild; false to go on with the full exchange (no
    /// such stub, or it does not fit: counted).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn syn_request(
        &mut self,
        now: Instant,
        (local, remote): (SocketAddr, SocketAddr),
        h: &Header,
        offer: &[Proposal],
        (ni, peer_redirect): (&[u8], bool),
        (syn, ike): (IkeSaSyn, &[u8]),
    ) -> bool {
        let index = StubIndex { gateway: syn.gateway, spi: syn.spi };
        let Some(stub) = self.stubs.get(&index) else {
            if self.fetch_for_syn(now, index, (local, remote), ike) {
                return true;
            }
            self.stats.syn_unknown += 1;
            return false;
        };
        // A stub long past its IKE SA's rekey time is of no use (and gone):
        // the client rekeys then, and may come here while its rekey fails.
        if let (Some(t), e) = (self.unix_now(now), stub.expires_unix) {
            if e != 0 && t > e.saturating_add(STUB_GRACE_SECS) {
                self.stubs.remove(&index);
                self.stats.syn_refused += 1;
                return false;
            }
        }
        // The connection: rebuilds on, addresses fit, the stub's client is
        // its peer; the stub's suite is one of ours and the SYN offers it.
        let fits = |c: &crate::ike::Connection| {
            c.stubs
                && !c.retired
                && c.local.is_none_or(|a| a == local.ip())
                && c.remote.is_none_or(|a| a == remote.ip())
                && c.remote_id.as_ref().is_none_or(|r| *r == stub.id_i)
        };
        let chosen = self.conns.iter().position(fits).and_then(|ci| {
            let (suite, _) = proposal::choose_ike(&self.conns[ci].ike, std::slice::from_ref(&stub.proposal))?;
            proposal::choose_ike(&[suite], offer).map(|_| (ci, suite))
        });
        let Some((ci, suite)) = chosen else {
            self.stats.syn_refused += 1;
            return false;
        };
        let Some(mut stub) = self.stubs.remove(&index) else { return false };
        let spi_r = self.new_spi();
        let nr = self.nonce();
        let seed = keys::rekey_skeyseed(suite.prf, &stub.sk_d, &stub.g_ir, ni, &nr);
        let k = IkeKeys::derive_without_auth(&suite, &seed, ni, &nr, h.spi_i, spi_r);
        let hdr = super::ike_sa_init::init_response_header(h.spi_i, spi_r);
        let resp = Message::emit_clear(hdr, &[Payload::Nonce(nr)]);
        let mut core = super::sa::Core::new(ci, false, (h.spi_i, spi_r), (local, remote), suite, k, (0, 1), now);
        core.nat = stub.nat;
        core.peer_mpsa = stub.mpsa;
        core.peer_redirect = peer_redirect;
        core.g_ir = std::mem::take(&mut stub.g_ir);
        let mut est = self.rebuilt(&mut core, &stub, stub.id_i.clone(), now);
        est.unproven = Some((now + self.settings.rebuilt_timeout, resp.clone()));
        self.stats.syn_rebuilt += 1;
        self.out.push_back(Output::Stub(StubOp::Used(index)));
        self.init_index.insert((h.spi_i, remote), spi_r);
        self.send(local, remote, resp);
        // Its own stub goes out from established_next, for the next failover.
        let phase = Phase::Established(est);
        self.established_next(now, &mut core, &phase);
        self.insert_sa(spi_r, IkeSa { core, phase });
        true
    }

    /// Client: the answer to our SYN. True when it was the rebuild (Nr
    /// alone): the IKE SA is up and its child SAs are asked for again.
    /// False for a normal answer: the full exchange goes on.
    pub(super) fn syn_answered(&mut self, now: Instant, c: &mut Connecting, h: &Header, p: &[Payload]) -> bool {
        let nonce_only = payloads::sa(p).is_none() && payloads::ke(p).is_none();
        let (Some(nr), true, Some(stub)) = (payloads::nonce(p), nonce_only, c.syn.as_deref()) else { return false };
        c.failed = true;
        let Some((suite, _)) = proposal::choose_ike(&self.conns[c.conn].ike, std::slice::from_ref(&stub.proposal))
        else {
            self.failed(c.conn, Error::BadAnswer("the stub's IKE suite is no longer ours"));
            return true;
        };
        let seed = keys::rekey_skeyseed(suite.prf, &stub.sk_d, &stub.g_ir, &c.ni, nr);
        let k = IkeKeys::derive_without_auth(&suite, &seed, &c.ni, nr, c.spi_i, h.spi_r);
        let mut core =
            super::sa::Core::new(c.conn, true, (c.spi_i, h.spi_r), (c.local, c.remote), suite, k, (1, 0), c.created);
        core.last_heard = now;
        core.nat = stub.nat;
        core.we_behind_nat = stub.peer_behind_nat;
        core.peer_mpsa = stub.mpsa;
        core.g_ir = stub.g_ir.clone();
        if core.nat {
            core.local.set_port(NATT_PORT);
            core.remote.set_port(NATT_PORT);
        }
        if core.we_behind_nat {
            core.keepalive_at = Some(now + self.settings.keepalive);
        }
        let stub = c.syn.take().expect("checked");
        let est = self.rebuilt(&mut core, &stub, stub.id_r.clone(), now);
        // The child SAs, again (no IKE_AUTH carried the first).
        for (k, cfg) in self.conns[c.conn].children.iter().enumerate() {
            if cfg.auto {
                core.w.tasks.push_back(Task::CreateChild(k));
            }
        }
        let spi = core.spi_i;
        self.insert_sa(spi, IkeSa { core, phase: Phase::Established(est) });
        self.kick(now, spi);
        // Redirected (RFC 5685 6): the IKE SA with the old gateway goes now.
        if let Some((_, old)) = c.redirected {
            self.queue(now, old, Task::DeleteIke);
        }
        true
    }

    /// The established phase of an IKE SA rebuilt from `stub`, with the
    /// peer's identity `peer`; announced.
    fn rebuilt(
        &mut self,
        core: &mut Core,
        stub: &IkeSaStub,
        peer: crate::wire::Identification,
        now: Instant,
    ) -> Established {
        self.file_peer(core, Some(peer.clone()));
        let (rekey, jp, conn) = {
            let c = &self.conns[core.conn];
            (c.ike_rekey, c.jitter_percent, c.name.clone())
        };
        let peer_id = peer.to_text();
        let mut est = Established::new(peer, now, now + self.jitter(rekey, jp));
        est.mobike = stub.mobike.as_ref().and_then(|m| {
            let version = match m.version {
                1 => Version::Mobike,
                2 => Version::MobikeX,
                _ => return None,
            };
            Some(Mobike::new(version, m.peer_addresses.clone()))
        });
        self.event(Event::IkeRebuilt {
            conn,
            spi_i: core.spi_i,
            spi_r: core.spi_r,
            peer: core.remote,
            peer_id,
            from: stub.index,
        });
        est
    }

    /// Responder: a retransmitted SYN for an IKE SA already rebuilt gets
    /// the same answer. True when it was one.
    pub(super) fn syn_retransmitted(&mut self, spi: u64) -> bool {
        let Some(IkeSa { core, phase: Phase::Established(est) }) = self.sa(&spi) else {
            return false;
        };
        let Some((_, resp)) = &est.unproven else { return false };
        let (l, r, m) = (core.local, core.remote, resp.clone());
        self.stats.retransmits_answered += 1;
        self.send(l, r, m);
        true
    }
}

/// The IKE_SA_SYN payload a client sends for `stub`.
pub(super) fn syn_payload(stub: &IkeSaStub) -> Payload {
    Payload::Syn(IkeSaSyn { spi: stub.index.spi, gateway: stub.index.gateway })
}

/// Where a gateway files the stub of its IKE SA `sa`: its address and SPI.
fn gateway_index(sa: &Core) -> StubIndex {
    StubIndex { gateway: sa.local.ip(), spi: sa.our_spi() }
}
