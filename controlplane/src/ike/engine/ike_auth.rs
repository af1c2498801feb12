//! IKE_AUTH and the first child SA (RFC 7296 1.2, 2.15, 2.4, 3.15), both
//! roles, authenticated by PSK or certificate (`signature_auth.rs`):
//!
//! ```text
//! Initiator                                        Responder
//! HDR, SK { IDi, [CERT,] [CERTREQ,] [N(INITIAL_CONTACT)], [IDr], AUTH,
//!           [CP(CFG_REQUEST)], SAi2, TSi, TSr }  -->
//!                <--  HDR, SK { IDr, [CERT,] AUTH, [CP(CFG_REPLY)], SAr2, TSi, TSr }
//! ```
//!
//! The responder picks the connection whose addresses, identities and
//! IKE suite fit and whose PSK, or CAs and the certificate's signature,
//! make the AUTH verify. INITIAL_CONTACT is sent only when no other IKE SA
//! joins the two identities, and a received one deletes the older IKE SAs
//! between them (2.4). A refused first child SA leaves the IKE SA up
//! (2.21.3).

use std::net::{IpAddr, Ipv4Addr};
use std::time::Instant;

use super::payloads::{self, has_notify};
use super::sa::{Authenticating, Core, Established, IkeState, NewChild, Pending};
use super::signature_auth::{self, Signer};
use super::{AuthFailure, Engine, Error, Event, IkeGone};
use crate::codepoints::{AuthMethod, CfgAttr, CfgType, ExchangeType, NotifyType};
use crate::ike::config::AuthKind;
use crate::ike::{pki, proposal, ts};
use crate::wire::{Configuration, Identification, Notify, Payload};

impl Engine {
    /// Initiator: IKE_AUTH request with the connection's first child SA.
    /// Fails only when we cannot sign for this peer (RFC 7427 4).
    pub(super) fn send_auth(&mut self, now: Instant, sa: &mut Core, a: &Authenticating) -> Result<(), Error> {
        let c = &self.conns[sa.conn];
        let idi = c.local_id.clone();
        let (certs, auth) =
            self.our_auth(sa.conn, sa, a, Signer::Initiator, &idi, c.remote_id.as_ref(), a.cert_asked)?;
        let spi_in = self.new_child_spi();
        let c = &self.conns[sa.conn];
        let first = &c.children[0];
        // With a virtual address to come, propose "any" for our side and
        // let the responder narrow it to the address (RFC 7296 2.9, 3.15).
        let transport = first.transport;
        let (ts_local, ts_remote) = if transport {
            // Transport mode: the two IKE addresses (RFC 7296 1.3.1).
            super::child_sa::transport_ts(sa)
        } else if c.request_vip {
            (vec![ts::Prefix { addr: IpAddr::V4(Ipv4Addr::UNSPECIFIED), len: 0 }.to_ts()], first.remote_ts.clone())
        } else {
            (first.local_ts.clone(), first.remote_ts.clone())
        };
        // RFC 7296 1.2: IDi, [CERT,] [CERTREQ,] [IDr,] AUTH.
        let mut p = vec![Payload::IdI(idi)];
        p.extend(certs);
        p.extend(signature_auth::certreq(c));
        // RFC 7296 2.4: INITIAL_CONTACT asserts that this is the only IKE
        // SA between the two identities; the peer deletes any other.
        if !self.another_ike_sa_with(&c.local_id, c.remote_id.as_ref(), sa.remote.ip()) {
            p.push(Payload::Notify(Notify::new(NotifyType::InitialContact, vec![])));
        }
        if let Some(r) = &c.remote_id {
            p.push(Payload::IdR(r.clone()));
        }
        p.push(auth);
        if c.request_vip {
            p.push(Payload::Cp(Configuration {
                ty: CfgType::Request,
                attrs: vec![(CfgAttr::InternalIp4Address, vec![])],
            }));
        }
        p.extend(self.mobike_auth_payloads(sa.conn));
        p.extend(self.clone_payloads(sa.conn));
        if transport {
            p.push(Payload::Notify(Notify::new(NotifyType::UseTransportMode, vec![])));
        }
        p.push(Payload::Sa(proposal::esp_proposals(&c.esp, spi_in, false)));
        p.push(Payload::TsI(ts_local.clone()));
        p.push(Payload::TsR(ts_remote.clone()));
        if let Some(r) = c.remote_id.clone() {
            self.file_peer(sa, Some(r));
        }
        // Appendix B.5: the first clone asked for in this message.
        let clone = self.clone_in_auth_offer(sa).map(|(mut q, offer)| {
            p.append(&mut q);
            offer
        });
        let child = NewChild { cfg: 0, spi_in, ts_local, ts_remote };
        self.request(now, sa, ExchangeType::IkeAuth, p, Pending::Auth { child, clone });
        Ok(())
    }

    /// Responder: the IKE_AUTH request. Returns the established phase, or
    /// None (refused; the SA is deleted).
    pub(super) fn auth_request(
        &mut self,
        now: Instant,
        sa: &mut Core,
        a: &Authenticating,
        p: &[Payload],
        id: u32,
    ) -> Option<Established> {
        let ex = ExchangeType::IkeAuth;
        let (Some(idi), Some(auth)) = (payloads::idi(p), payloads::auth(p)) else {
            self.stats.malformed += 1;
            self.refuse(sa, ex, id, &Error::Missing("IDi or AUTH payload"));
            sa.deleting = true;
            return None;
        };
        if !matches!(auth.method, AuthMethod::SharedKeyMic | AuthMethod::DigitalSignature) {
            self.stats.auth_failed += 1;
            self.refuse(sa, ex, id, &Error::Auth(AuthFailure::Method(auth.method)));
            sa.deleting = true;
            return None;
        }
        // The connection: same IKE suite, addresses fit, identities fit,
        // and the AUTH verifies with its PSK, or with a certificate that
        // chains to its CAs and names the identity.
        let idr = payloads::idr(p);
        let mut why = None;
        let mut peer_cert = None;
        let chosen = (0..self.conns.len()).find(|&ci| {
            let c = &self.conns[ci];
            let fits = !c.retired
                && c.ike.contains(&sa.suite)
                && c.local.is_none_or(|x| x == sa.local.ip())
                && c.remote.is_none_or(|x| x == sa.remote.ip())
                && c.remote_id.as_ref().is_none_or(|r| pki::id_matches(r, idi))
                && idr.is_none_or(|r| *r == c.local_id);
            if !fits {
                return false;
            }
            match self.check_peer_auth(now, ci, sa, a, Signer::Initiator, idi, p, auth) {
                Ok(cert) => {
                    peer_cert = cert;
                    true
                }
                // A PSK that does not verify says nothing worth logging
                // beyond the identity; a certificate's refusal does.
                Err(e) => {
                    if auth.method == AuthMethod::DigitalSignature {
                        why = Some(e);
                    }
                    false
                }
            }
        });
        let Some(ci) = chosen else {
            self.stats.auth_failed += 1;
            let (idt, from) = (idi.to_text(), sa.remote);
            let why = match why {
                Some(why) => Error::Auth(AuthFailure::RejectedBecause { id: idt, from, why }),
                None => Error::Auth(AuthFailure::Rejected { id: idt, from }),
            };
            self.failed(sa.conn, why.clone());
            self.refuse(sa, ex, id, &why);
            sa.deleting = true;
            return None;
        };
        sa.conn = ci;
        // Appendix B.5: a clone asked for in IKE_AUTH, with the support
        // notify beside it; anything else is INVALID_SYNTAX (RFC 7791 4).
        let clone_at = p.iter().position(|x| matches!(x, Payload::Notify(n) if n.ty == NotifyType::CloneIkeSa));
        if clone_at.is_some() {
            // The peer's support is what makes it well placed; a connection
            // of ours that does not clone leaves it unanswered.
            if let Err(e) = super::clone::check_clone_notifies(p, has_notify(p, NotifyType::CloneIkeSaSupported)) {
                self.stats.clone_refused += 1;
                self.failed(ci, e.clone());
                self.refuse(sa, ex, id, &e);
                sa.deleting = true;
                return None;
            }
        }
        // The child SA's payloads come before the clone's.
        let (p, clone_offer) = p.split_at(clone_at.unwrap_or(p.len()));
        let ours = self.conns[ci].local_id.clone();
        let (certs, my_auth) =
            match self.our_auth(ci, sa, a, Signer::Responder, &ours, Some(idi), signature_auth::cert_asked(p)) {
                Ok(x) => x,
                Err(e) => {
                    self.stats.auth_failed += 1;
                    self.failed(ci, e.clone());
                    self.refuse(sa, ex, id, &Error::Auth(AuthFailure::BadAuth));
                    sa.deleting = true;
                    return None;
                }
            };
        // RFC 7296 1.2: IDr, [CERT,] AUTH.
        let mut out = vec![Payload::IdR(ours)];
        out.extend(certs);
        out.push(my_auth);
        self.file_peer(sa, Some(idi.clone()));
        if has_notify(p, NotifyType::InitialContact) {
            self.initial_contact(now, sa, idi);
        }
        let mut est = self.established(now, sa, idi.clone());
        est.peer_cert = peer_cert.map(|c| c.subject);
        let (answer, mobike) = self.mobike_auth_answer(ci, p);
        est.mobike = mobike;
        out.extend(answer);
        // RFC 7791: answered only to a peer that offers it.
        if self.clone_agreed(ci, p) {
            est.clone = true;
            out.extend(self.clone_payloads(ci));
        }
        // A client asking for an address gets one from the pool.
        let mut vip_ts = None;
        if p.iter().any(|x| matches!(x, Payload::Cp(cp) if cp.ty == CfgType::Request)) {
            let Some(v) = self.lease(sa.conn, sa.our_spi()) else {
                // RFC 7296 3.15.4: no address, no child SA.
                let (ty, data) = Error::NoInternalAddress.notify();
                out.push(Payload::Notify(Notify::new(ty, data)));
                self.respond(sa, ex, id, out);
                return Some(est);
            };
            let octets = match v {
                IpAddr::V4(x) => x.octets().to_vec(),
                IpAddr::V6(x) => x.octets().to_vec(),
            };
            out.push(Payload::Cp(Configuration {
                ty: CfgType::Reply,
                attrs: vec![(CfgAttr::InternalIp4Address, octets)],
            }));
            vip_ts = Some(ts::Prefix { addr: v, len: 32 }.to_ts());
            est.vip = Some(v);
        }
        match self.child_for_request(now, sa, &mut est, p, None, (&a.ni, &a.nr), None, vip_ts) {
            Ok(mut child) => out.append(&mut child),
            Err(e) => {
                let (ty, data) = e.notify();
                out.push(Payload::Notify(Notify::new(ty, data)));
            }
        }
        out.extend(self.clone_in_auth_answer(now, sa, &est, clone_offer));
        self.respond(sa, ex, id, out);
        Some(est)
    }

    /// Initiator: the IKE_AUTH response. Returns the established phase, or
    /// None (refused; the SA is deleted).
    pub(super) fn auth_response(
        &mut self,
        now: Instant,
        sa: &mut Core,
        a: &Authenticating,
        p: &[Payload],
        child: NewChild,
        clone: Option<super::sa::RekeyOffer>,
    ) -> Option<Established> {
        if Error::refusal(p) == Some(Error::Refused(NotifyType::AuthenticationFailed)) {
            self.stats.auth_failed += 1;
            self.fail(sa, Error::Auth(AuthFailure::RefusedByPeer));
            return None;
        }
        let c = &self.conns[sa.conn];
        let (Some(idr), Some(auth)) = (payloads::idr(p), payloads::auth(p)) else {
            self.fail(sa, Error::BadAnswer("IKE_AUTH response without IDr or AUTH"));
            return None;
        };
        if c.remote_id.as_ref().is_some_and(|r| !pki::id_matches(r, idr)) {
            self.stats.auth_failed += 1;
            self.fail(sa, Error::Auth(AuthFailure::WrongIdentity(idr.to_text())));
            return None;
        }
        let peer_cert = match self.check_peer_auth(now, sa.conn, sa, a, Signer::Responder, idr, p, auth) {
            Ok(cert) => cert,
            Err(why) => {
                self.stats.auth_failed += 1;
                let e = match c.remote_auth {
                    AuthKind::Psk if auth.method == AuthMethod::SharedKeyMic => AuthFailure::BadAuth,
                    _ => AuthFailure::PeerRefused(why),
                };
                self.fail(sa, Error::Auth(e));
                return None;
            }
        };
        self.file_peer(sa, Some(idr.clone()));
        if has_notify(p, NotifyType::InitialContact) {
            self.initial_contact(now, sa, idr);
        }
        let mut est = self.established(now, sa, idr.clone());
        est.peer_cert = peer_cert.map(|c| c.subject);
        // Redirected here by the full exchange (RFC 5685 6): the IKE SA
        // with the old gateway goes now.
        if let Some(old) = a.replaces {
            self.queue(now, old, super::sa::Task::DeleteIke);
        }
        est.mobike = self.mobike_negotiated(sa.conn, p);
        est.clone = self.clone_agreed(sa.conn, p);
        // Appendix B.5: the clone answered after the child SA's payloads.
        let at = p.iter().position(|x| matches!(x, Payload::Notify(n) if n.ty == NotifyType::CloneIkeSa));
        let (p, clone_answer) = p.split_at(at.unwrap_or(p.len()));
        if let Some(offer) = clone {
            self.clone_in_auth_made(now, sa, &mut est, clone_answer, offer);
        }
        // The first child SA; failing it leaves the IKE SA up (RFC 7296 2.21.3).
        if let Some(e) = Error::refusal(p) {
            self.failed(sa.conn, e);
            return Some(est);
        }
        if let Some(Payload::Cp(cp)) = p.iter().find(|x| matches!(x, Payload::Cp(_))) {
            est.vip = cp.attrs.iter().find_map(|(t, v)| match (t, v.len()) {
                (CfgAttr::InternalIp4Address, 4) => Some(IpAddr::from([v[0], v[1], v[2], v[3]])),
                _ => None,
            });
        }
        self.child_from_response(now, sa, &mut est, p, child, None, (&a.ni, &a.nr), None);
        Some(est)
    }

    /// The step into the established phase (either role).
    fn established(&mut self, now: Instant, sa: &mut Core, peer_id: Identification) -> Established {
        if sa.half_open_until.take().is_some() {
            self.half_open = self.half_open.saturating_sub(1);
        }
        let c = &self.conns[sa.conn];
        let (rekey, jp) = (c.ike_rekey, c.jitter_percent);
        let rekey_at = now + self.jitter(rekey, jp);
        if sa.we_behind_nat {
            sa.keepalive_at = Some(now + self.settings.keepalive);
        }
        let conn = self.conns[sa.conn].name.clone();
        self.event(Event::IkeUp {
            conn,
            spi_i: sa.spi_i,
            spi_r: sa.spi_r,
            peer: sa.remote,
            peer_id: peer_id.to_text(),
        });
        Established::new(peer_id, now, rekey_at)
    }

    /// An exchange of ours failed: the SA goes.
    pub(super) fn fail(&mut self, sa: &mut Core, why: Error) {
        self.failed(sa.conn, why);
        sa.deleting = true;
        sa.w.in_flight = None;
        sa.w.tasks.clear();
    }

    fn lease(&mut self, conn: usize, spi: u64) -> Option<IpAddr> {
        let pool = self.conns[conn].pool?;
        let IpAddr::V4(base) = pool.addr else { return None };
        let size = 1u32 << (32 - pool.len as u32).min(16);
        let base = u32::from(base) & !(size.wrapping_sub(1));
        // Skip the network address (offset 0) and the broadcast address.
        for off in 1..size.saturating_sub(1) {
            let a = IpAddr::V4((base + off).into());
            if let std::collections::hash_map::Entry::Vacant(e) = self.leases.entry(a) {
                e.insert(spi);
                return Some(a);
            }
        }
        None
    }

    /// Files `sa` under the peer identity `id` in `by_peer` (None: takes it
    /// out).
    pub(super) fn file_peer(&mut self, sa: &mut Core, id: Option<Identification>) {
        let spi = sa.our_spi();
        if let Some(old) = sa.peer_key.take() {
            if let Some(set) = self.by_peer.get_mut(&old) {
                set.retain(|s| *s != spi);
                if set.is_empty() {
                    self.by_peer.remove(&old);
                }
            }
        }
        if let Some(id) = id {
            // Most peers have one IKE SA: a list of one, no set.
            let set = self.by_peer.entry(id.clone()).or_insert_with(|| Vec::with_capacity(1));
            if !set.contains(&spi) {
                set.push(spi);
            }
            sa.peer_key = Some(id);
        }
    }

    /// Whether an IKE SA other than the one in hand (which the caller has
    /// taken out of the table) joins our identity `local_id` and the
    /// peer's: `remote_id`, or, when any identity is accepted, whatever
    /// identity is at `remote`. It counts when it is up, or ours and on its
    /// way up (IKE_SA_INIT or IKE_AUTH in flight): our INITIAL_CONTACT
    /// could reach the peer after that one's IKE_AUTH and make it delete
    /// it. A peer's half-open SA (not authenticated) and SAs being deleted
    /// do not count.
    fn another_ike_sa_with(
        &self,
        local_id: &Identification,
        remote_id: Option<&Identification>,
        remote: IpAddr,
    ) -> bool {
        let counts = |o: &super::IkeSa| {
            let half_open = match o.state() {
                IkeState::Connecting | IkeState::Deleting => true,
                IkeState::Authenticating => !o.core.initiator,
                IkeState::Established | IkeState::Rekeyed => false,
            };
            !half_open && self.conns[o.core.conn].local_id == *local_id
        };
        let up = match remote_id {
            Some(want) => self.by_peer.get(want).is_some_and(|set| set.iter().filter_map(|s| self.sa(s)).any(&counts)),
            None => self.sas.values().any(|o| counts(o) && o.core.remote.ip() == remote),
        };
        up || self.connecting.values().any(|c| {
            let cc = &self.conns[c.conn];
            cc.local_id == *local_id
                && match remote_id {
                    Some(want) => cc.remote_id.as_ref() == Some(want),
                    None => c.remote.ip() == remote,
                }
        })
    }

    /// RFC 7296 2.4: the peer asserts that `sa` (just authenticated as
    /// `peer`) is the only IKE SA between its identity and ours: it
    /// restarted, and every other IKE SA between the two is stale. Those go
    /// now, with their child SAs and without a Delete (the peer no longer
    /// knows them).
    fn initial_contact(&mut self, now: Instant, sa: &Core, peer: &Identification) {
        let ours = &self.conns[sa.conn].local_id;
        let mut stale: Vec<u64> = self
            .by_peer
            .get(peer)
            .into_iter()
            .flatten()
            .filter(|spi| {
                self.sas
                    .get(spi)
                    .is_some_and(|o| o.peer_id() == Some(peer) && self.conns[o.core.conn].local_id == *ours)
            })
            .copied()
            .collect();
        stale.sort_unstable();
        for spi in stale {
            if let Some(o) = self.sas.remove(&spi) {
                self.remove_sa(now, o, IkeGone::InitialContact);
            }
        }
    }
}
