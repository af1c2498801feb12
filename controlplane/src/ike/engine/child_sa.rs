//! CREATE_CHILD_SA for child SAs (RFC 7296 1.3.1, 1.3.3, 2.8, 2.8.1,
//! 2.17), both roles; the IKE SA rekey is `ike_rekey`.
//!
//! ```text
//! Initiator                                   Responder
//! New child SA:
//! HDR, SK { SA, Ni, [KEi], TSi, TSr }  -->
//!                            <--  HDR, SK { SA, Nr, [KEr], TSi, TSr }
//! Rekey of child SA s:
//! HDR, SK { N(REKEY_SA, s), SA, Ni, [KEi], TSi, TSr }  -->
//!                            <--  HDR, SK { SA, Nr, [KEr], TSi, TSr }
//! HDR, SK { D(old) }  -->          (the rekey's initiator deletes the old SA)
//! ```
//!
//! KEYMAT = prf+(SK_d, [g^ir (new) |] Ni | Nr). With PFS the KE group is
//! the chosen proposal's; a peer that wants another answers
//! INVALID_KE_PAYLOAD and a rekey is tried again with that group (1.3).
//! When both sides rekey the same child at once, the SA made with the
//! lowest nonce is redundant and its creator deletes it (2.8.1).

use std::net::SocketAddr;
use std::time::Instant;

use super::payloads::{self, has_notify, lowest, notify};
use super::sa::{Child, ChildState, Core, Established, NewChild, Pending, Task};
use super::{Engine, Error, Event};
use crate::codepoints::{DhGroup, ExchangeType, NotifyType, ProtocolId};
use crate::crypto::dh::{self, DhPrivate};
use crate::crypto::{keys, Secret};
use crate::ike::proposal::{self, EspSuite};
use crate::ike::ts;
use crate::wire::{KeyExchange, Notify, Payload, TrafficSelector};

/// The selectors of a transport-mode child SA of `sa`: its two addresses
/// (ours, the peer's), each alone.
pub(super) fn transport_ts(sa: &Core) -> (Vec<TrafficSelector>, Vec<TrafficSelector>) {
    (vec![ts::host(sa.local.ip())], vec![ts::host(sa.remote.ip())])
}

/// A child SA the responder agreed to: its config, SPIs, suite, keys
/// (what we receive with, what we send with) and selectors (ours, theirs).
struct Agreed {
    cfg: usize,
    spis: (u32, u32),
    suite: EspSuite,
    keys: ((Secret, Secret), (Secret, Secret)),
    ts: (Vec<TrafficSelector>, Vec<TrafficSelector>),
    rekey_of: Option<u32>,
    transport: bool,
}

impl Engine {
    /// Initiator: a new child SA for child config `k` (RFC 7296 1.3.1).
    pub(super) fn start_child_create(
        &mut self,
        now: Instant,
        sa: &mut Core,
        est: &mut Established,
        k: usize,
        extra: Vec<Payload>,
    ) -> bool {
        let Some((mut p, child, ni, dh)) = self.child_create_offer(sa, est, k) else { return false };
        p.extend(extra);
        self.request(now, sa, ExchangeType::CreateChildSa, p, Pending::CreateChild { child, ni, dh, moving: None });
        true
    }

    /// The request that opens child config `k` on `sa` (unless one is up
    /// already), with what its answer needs.
    #[allow(clippy::type_complexity)]
    pub(super) fn child_create_offer(
        &mut self,
        sa: &Core,
        est: &Established,
        k: usize,
    ) -> Option<(Vec<Payload>, NewChild, Vec<u8>, Option<(DhGroup, DhPrivate)>)> {
        let cfg = self.conns[sa.conn].children.get(k)?;
        if est.children.iter().any(|c| c.cfg == k && c.state == ChildState::Installed) {
            return None;
        }
        let transport = cfg.transport;
        let (ts_local, ts_remote) =
            if transport { transport_ts(sa) } else { (cfg.local_ts.clone(), cfg.remote_ts.clone()) };
        let suites = self.conns[sa.conn].esp.clone();
        let (p, spi_in, ni, dh) = self.child_offer(sa, &suites, None, &ts_local, &ts_remote, transport)?;
        Some((p, NewChild { cfg: k, spi_in, ts_local, ts_remote }, ni, dh))
    }

    /// Initiator: rekey child SA `old` (RFC 7296 1.3.3).
    pub(super) fn start_child_rekey(&mut self, now: Instant, sa: &mut Core, est: &mut Established, old: u32) -> bool {
        let Some(c) = est.children.iter().find(|c| c.spi_in == old && c.state == ChildState::Installed) else {
            return false;
        };
        let mut suites = self.conns[sa.conn].esp.clone();
        // Offer the suite in use first, or the one with the group the peer
        // asked for.
        suites.sort_by_key(|s| {
            (c.pfs_group.is_some_and(|g| s.dh != Some(g)), s.encr != c.suite.encr || s.integ != c.suite.integ)
        });
        let (tl, tr) = (c.ts_local.clone(), c.ts_remote.clone());
        let transport = c.transport;
        let Some((p, spi_in, ni, dh)) = self.child_offer(sa, &suites, Some(old), &tl, &tr, transport) else {
            return false;
        };
        self.request(now, sa, ExchangeType::CreateChildSa, p, Pending::RekeyChild { old, spi_in, ni, dh });
        true
    }

    /// The payloads of a CREATE_CHILD_SA request for a child SA: [N(REKEY_SA)],
    /// [N(USE_TRANSPORT_MODE)], SA, Ni, [KEi], TSi, TSr; with our new SPI,
    /// nonce and DH private value. A rekey asks for the mode it keeps
    /// (RFC 7296 1.3.3 rekeys with the same notifies as the original).
    #[allow(clippy::type_complexity)]
    fn child_offer(
        &mut self,
        sa: &Core,
        suites: &[EspSuite],
        rekey: Option<u32>,
        ts_local: &[TrafficSelector],
        ts_remote: &[TrafficSelector],
        transport: bool,
    ) -> Option<(Vec<Payload>, u32, Vec<u8>, Option<(DhGroup, DhPrivate)>)> {
        let pfs_group = suites.first().and_then(|s| s.dh).filter(|_| self.conns[sa.conn].pfs);
        let spi_in = self.new_child_spi();
        let ni = self.nonce();
        let mut p = Vec::new();
        if let Some(old) = rekey {
            p.push(Payload::Notify(Notify::esp(NotifyType::RekeySa, old)));
        }
        if transport {
            p.push(Payload::Notify(Notify::new(NotifyType::UseTransportMode, vec![])));
        }
        p.push(Payload::Sa(proposal::esp_proposals(suites, spi_in, pfs_group.is_some())));
        p.push(Payload::Nonce(ni.clone()));
        let mut dh = None;
        if let Some(g) = pfs_group {
            let (d, ke) = self.dh_pool.generate(g, self.rng.as_mut()).ok()?;
            p.push(Payload::Ke(KeyExchange { group: g.value(), data: ke }));
            dh = Some((g, d));
        }
        p.push(Payload::TsI(ts_local.to_vec()));
        p.push(Payload::TsR(ts_remote.to_vec()));
        Some((p, spi_in, ni, dh))
    }

    /// Responder: CREATE_CHILD_SA (new child, child rekey, IKE SA rekey).
    pub(super) fn create_child_request(
        &mut self,
        now: Instant,
        sa: &mut Core,
        est: &mut Established,
        p: &[Payload],
        id: u32,
    ) {
        let ex = ExchangeType::CreateChildSa;
        let (Some(ni), Some(offer)) = (payloads::nonce(p).cloned(), payloads::sa(p)) else {
            self.refuse(sa, ex, id, &Error::Missing("Nonce or SA payload"));
            return;
        };
        // An IKE SA rekey: an SA payload with IKE proposals (2.18).
        if offer.iter().any(|pr| pr.protocol == ProtocolId::Ike) {
            self.ike_rekey_request(now, sa, est, p, id, ni);
            return;
        }
        // RFC 7791: CLONE_IKE_SA only in an IKE SA rekey, and its support
        // notify only in IKE_AUTH and INFORMATIONAL (NOTES.md).
        if has_notify(p, NotifyType::CloneIkeSa) || has_notify(p, NotifyType::CloneIkeSaSupported) {
            let e = Error::CloneMisplaced("CLONE_IKE_SA(_SUPPORTED) in a CREATE_CHILD_SA for a child SA");
            self.stats.clone_refused += 1;
            return self.refuse(sa, ex, id, &e);
        }
        // Appendix B.5: with a clone's move to its interface.
        let moved = match self.clone_move_with_child(now, sa, est, p) {
            Ok(m) => m,
            Err(e) => return self.refuse(sa, ex, id, &e),
        };
        let rekey = notify(p, NotifyType::RekeySa).and_then(|n| n.esp_spi());
        let mut old_in = None;
        if let Some(old_out) = rekey {
            match est.children.iter().find(|c| c.spi_out == old_out) {
                None => return self.refuse(sa, ex, id, &Error::ChildSaNotFound(old_out)),
                // RFC 7296 2.25: rekeying or deleting it already.
                Some(c) if c.state != ChildState::Installed => {
                    return self.refuse(sa, ex, id, &Error::Busy("rekeying or deleting that child SA"))
                }
                Some(c) => old_in = Some((c.spi_in, c.cfg)),
            }
        }
        // PFS: the KE group must be one we accept and the peer offered.
        let nr = self.nonce();
        let mut ke_out = None;
        let mut g_ir = None;
        if let Some(ke) = payloads::ke(p) {
            let g = DhGroup::from_value(ke.group);
            let c = &self.conns[sa.conn];
            let offered = offer.iter().any(|pr| proposal::proposal_dh(pr) == Some(g));
            // A suite without a group accepts the peer's PFS group (see
            // proposal::select_esp); else the group must be one of ours.
            let ours = c.esp.iter().any(|s| s.dh == Some(g) || (s.dh.is_none() && dh::supported(g)));
            if !dh::supported(g) || !ours || !offered {
                // INVALID_KE_PAYLOAD names a group we take and the peer
                // offered (RFC 7296 1.3); with none, no proposal fits.
                let peer_groups: Vec<DhGroup> = offer.iter().filter_map(proposal::proposal_dh).collect();
                let want = c
                    .esp
                    .iter()
                    .filter_map(|s| s.dh)
                    .find(|w| peer_groups.contains(w))
                    .or_else(|| {
                        let any_open = c.esp.iter().any(|s| s.dh.is_none());
                        peer_groups.iter().copied().find(|w| any_open && dh::supported(*w))
                    })
                    .filter(|w| *w != g);
                return match want {
                    Some(want) => self.refuse(sa, ex, id, &Error::WrongKeGroup { want, got: ke.group }),
                    None => {
                        self.stats.no_proposal += 1;
                        self.refuse(sa, ex, id, &Error::NoProposal)
                    }
                };
            }
            let Ok((d, pk)) = self.dh_pool.generate(g, self.rng.as_mut()) else { return };
            match dh::agree(d, &ke.data) {
                Ok(s) => g_ir = Some(s),
                Err(e) => return self.refuse(sa, ex, id, &Error::Dh(e)),
            }
            ke_out = Some(Payload::Ke(KeyExchange { group: g.value(), data: pk }));
        }
        match self.child_for_request(now, sa, est, p, g_ir.as_ref(), (&ni, &nr), old_in, None) {
            Ok(child) => {
                // SA, Nr, [KEr], TSi, TSr.
                let mut out = Vec::with_capacity(child.len() + 2);
                let mut it = child.into_iter();
                out.extend(it.next());
                out.push(Payload::Nonce(nr.clone()));
                out.extend(ke_out);
                out.extend(it);
                out.extend(moved);
                let new_in = est.children.last().map(|c| c.spi_in);
                self.respond(sa, ex, id, out);
                if let (Some((old, _)), Some(new_in)) = (old_in, new_in) {
                    if let Some(c) = est.child_mut(old) {
                        c.rekey_theirs = Some((lowest(&ni, &nr), new_in));
                    }
                    self.settle_child_rekey(now, sa, est, old);
                }
            }
            Err(e) => self.refuse(sa, ex, id, &e),
        }
    }

    /// Responder side of a child SA negotiation (IKE_AUTH or
    /// CREATE_CHILD_SA): installs the child and returns the answer's SA,
    /// TSi and TSr payloads. A rekey keeps the old child's config; a new
    /// child takes the first config whose selectors the request meets.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn child_for_request(
        &mut self,
        now: Instant,
        sa: &mut Core,
        est: &mut Established,
        p: &[Payload],
        g_ir: Option<&Secret>,
        (ni, nr): (&[u8], &[u8]),
        rekey: Option<(u32, usize)>,
        vip_ts: Option<TrafficSelector>,
    ) -> Result<Vec<Payload>, Error> {
        let (Some(offer), Some(tsi), Some(tsr)) = (payloads::sa(p), payloads::tsi(p), payloads::tsr(p)) else {
            return Err(Error::Missing("SA, TSi or TSr payload"));
        };
        let c = &self.conns[sa.conn];
        let Some((suite, mut chosen)) = proposal::select_esp(&c.esp, offer, payloads::ke_group(p)) else {
            self.stats.no_proposal += 1;
            return Err(Error::NoProposal);
        };
        // TSi is the peer's side (our remote), TSr ours.
        let configs: Vec<usize> = match rekey {
            Some((_, k)) => vec![k],
            None => (0..c.children.len()).collect(),
        };
        // RFC 7296 1.3.1: USE_TRANSPORT_MODE asks for transport mode; a
        // transport config of ours answers it (selectors: the two IKE
        // addresses, which must fit the config), else a tunnel config does,
        // answered without the notify (tunnel mode). Without the notify
        // only tunnel configs fit.
        let wants_transport = notify(p, NotifyType::UseTransportMode).is_some();
        let (here, there) = (sa.local.ip(), sa.remote.ip());
        let transport_fit =
            configs.iter().copied().filter(|&k| wants_transport && c.children[k].transport).find(|&k| {
                let cfg = &c.children[k];
                // Behind a NAT the peer's selector names an address we cannot
                // see (RFC 7296 2.23.1): the one it comes from stands for it.
                let theirs = (sa.nat || ts::covers(tsi, there)) && ts::covers(&cfg.remote_ts, there);
                theirs && ts::covers(tsr, here) && ts::covers(&cfg.local_ts, here)
            });
        let narrowed = match transport_fit {
            Some(k) => {
                let (l, r) = transport_ts(sa);
                Some((k, l, r, true))
            }
            None => configs.into_iter().filter(|&k| !c.children[k].transport).find_map(|k| {
                let cfg = &c.children[k];
                let remote_policy = vip_ts.map_or_else(|| cfg.remote_ts.clone(), |v| vec![v]);
                let ts_remote = ts::narrow(tsi, &remote_policy);
                let ts_local = ts::narrow(tsr, &cfg.local_ts);
                (!ts_remote.is_empty() && !ts_local.is_empty()).then_some((k, ts_local, ts_remote, false))
            }),
        };
        let Some((cfg, ts_local, ts_remote, transport)) = narrowed else { return Err(Error::TsUnacceptable) };
        let spi_out =
            payloads::offer_spi(offer, chosen.num).ok_or(Error::Missing("an ESP SPI in the chosen proposal"))?;
        let spi_in = self.new_child_spi();
        let k = keys::child_keys(sa.suite.prf, &sa.keys.sk_d, g_ir, ni, nr, suite.encr, suite.integ);
        chosen.spi = spi_in.to_be_bytes().to_vec();
        let mut out = vec![Payload::Sa(vec![chosen]), Payload::TsI(ts_remote.clone()), Payload::TsR(ts_local.clone())];
        if transport {
            out.push(Payload::Notify(Notify::new(NotifyType::UseTransportMode, vec![])));
        }
        // The peer initiated: we receive with the initiator keys.
        let keys = ((k.encr_i, k.integ_i), (k.encr_r, k.integ_r));
        let rekey_of = rekey.map(|(old, _)| old);
        self.add_child(
            now,
            sa,
            est,
            Agreed { cfg, spis: (spi_in, spi_out), suite, keys, ts: (ts_local, ts_remote), rekey_of, transport },
        );
        Ok(out)
    }

    /// Initiator side of a child SA negotiation (IKE_AUTH or
    /// CREATE_CHILD_SA): checks the answer against what we asked for and
    /// installs the child. False when the answer does not fit.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn child_from_response(
        &mut self,
        now: Instant,
        sa: &mut Core,
        est: &mut Established,
        p: &[Payload],
        asked: NewChild,
        g_ir: Option<&Secret>,
        (ni, nr): (&[u8], &[u8]),
        rekey_of: Option<u32>,
    ) -> bool {
        let pfs = g_ir.and_then(|_| payloads::ke_group(p));
        let (Some(offer), Some(tsi), Some(tsr)) = (payloads::sa(p), payloads::tsi(p), payloads::tsr(p)) else {
            self.failed(sa.conn, Error::BadAnswer("child SA response lacks SA or TS"));
            return false;
        };
        let Some((suite, spi_out)) = proposal::chosen_esp(&self.conns[sa.conn].esp, offer, pfs) else {
            self.failed(sa.conn, Error::BadAnswer("the responder chose an ESP proposal we did not offer"));
            return false;
        };
        let asked_transport = self.conns[sa.conn].children.get(asked.cfg).is_some_and(|c| c.transport);
        let transport = notify(p, NotifyType::UseTransportMode).is_some();
        // Transport mode behind a NAT: the responder names our address as
        // it sees it (RFC 7296 2.23.1); ours stay the IKE SA's addresses.
        let nat_transport = transport && sa.nat;
        if !nat_transport && (!ts::within(tsi, &asked.ts_local) || !ts::within(tsr, &asked.ts_remote)) {
            self.failed(sa.conn, Error::BadAnswer("the responder widened the traffic selectors"));
            return false;
        }
        let k = keys::child_keys(sa.suite.prf, &sa.keys.sk_d, g_ir, ni, nr, suite.encr, suite.integ);
        // We initiated: we send with the initiator keys.
        let keys = ((k.encr_r, k.integ_r), (k.encr_i, k.integ_i));
        let (tl, tr) = if transport { transport_ts(sa) } else { (tsi.clone(), tsr.clone()) };
        let spi_in = asked.spi_in;
        let a =
            Agreed { cfg: asked.cfg, spis: (asked.spi_in, spi_out), suite, keys, ts: (tl, tr), rekey_of, transport };
        self.add_child(now, sa, est, a);
        if transport != asked_transport {
            // RFC 7296 1.3.1: a responder may answer tunnel mode to a
            // request for transport mode; our policy wants the mode it
            // asked for, so the SA goes again (as does one in transport
            // mode we did not ask for).
            self.failed(
                sa.conn,
                Error::BadAnswer(if asked_transport {
                    "the responder declined transport mode (no USE_TRANSPORT_MODE): child SA deleted"
                } else {
                    "the responder answered USE_TRANSPORT_MODE we did not ask for: child SA deleted"
                }),
            );
            sa.w.tasks.push_back(Task::DeleteChild(spi_in));
            return false;
        }
        true
    }

    /// Installs a negotiated child SA and keeps it on `est`.
    fn add_child(&mut self, now: Instant, sa: &Core, est: &mut Established, a: Agreed) {
        let c = &self.conns[sa.conn];
        let (life, rekey, jp) = (c.child_life, c.child_rekey, c.jitter_percent);
        let child = Child {
            cfg: a.cfg,
            spi_in: a.spis.0,
            spi_out: a.spis.1,
            suite: a.suite,
            keys_in: a.keys.0,
            keys_out: a.keys.1,
            ts_local: a.ts.0,
            ts_remote: a.ts.1,
            state: ChildState::Installed,
            created: now,
            rekey_at: Some(now + self.jitter(rekey, jp)),
            expire_at: now + life,
            rekey_ours: None,
            rekey_theirs: None,
            rekey_of: a.rekey_of,
            successor: None,
            pfs_group: None,
            ke_retries: 0,
            // A rekey's SA keeps its predecessor's addresses (multihoming).
            paths: a
                .rekey_of
                .and_then(|o| est.children.iter().find(|c| c.spi_in == o))
                .map(|o| o.paths.clone())
                .unwrap_or_default(),
            alternates: Vec::new(),
            transport: a.transport,
        };
        self.install_child(sa, &child);
        // Most IKE SAs carry one child SA: room for one at a time, not the
        // four a Vec's first push makes (a Child is some 400 bytes, and at
        // 10,000 IKE SAs the spare room was fresh pages to fault in).
        if est.children.len() == est.children.capacity() {
            est.children.reserve_exact(1);
        }
        est.children.push(child);
    }

    /// Initiator: the answer to a new child SA.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn child_create_response(
        &mut self,
        now: Instant,
        sa: &mut Core,
        est: &mut Established,
        p: &[Payload],
        asked: NewChild,
        ni: Vec<u8>,
        dh: Option<(DhGroup, DhPrivate)>,
        moving: Option<(Vec<u8>, (SocketAddr, SocketAddr))>,
    ) {
        // Appendix B.5: the move first (refused: back on the old path).
        let moved = moving.is_some();
        if let Some((cookie2, old)) = moving {
            if !self.mobike_update_answered(now, sa, est, p, cookie2, old, super::MoveReason::OurUpdate) {
                return;
            }
        }
        if let Some(e) = Error::refusal(p) {
            self.failed(sa.conn, e);
            return;
        }
        let Some(nr) = payloads::nonce(p).cloned() else {
            self.failed(sa.conn, Error::BadAnswer("no nonce in the answer"));
            return;
        };
        let Some(g_ir) = self.answer_dh(sa, p, dh) else { return };
        self.child_from_response(now, sa, est, p, asked, g_ir.as_ref(), (&ni, &nr), None);
        if moved {
            self.clone_arrived(sa, est);
        }
    }

    /// The shared secret of a CREATE_CHILD_SA answer: Some(None) without
    /// PFS, None (and a Failed event) when KE is missing or wrong.
    fn answer_dh(&mut self, sa: &Core, p: &[Payload], dh: Option<(DhGroup, DhPrivate)>) -> Option<Option<Secret>> {
        match (dh, payloads::ke(p)) {
            (Some((g, d)), Some(ke)) if ke.group == g.value() => match dh::agree(d, &ke.data) {
                Ok(s) => Some(Some(s)),
                Err(e) => {
                    self.failed(sa.conn, Error::Dh(e));
                    None
                }
            },
            (None, None) => Some(None),
            _ => {
                self.failed(sa.conn, Error::BadAnswer("KE payload missing or unexpected"));
                None
            }
        }
    }

    /// Initiator: the answer to our rekey of child `old`.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn child_rekey_response(
        &mut self,
        now: Instant,
        sa: &mut Core,
        est: &mut Established,
        p: &[Payload],
        old: u32,
        spi_in: u32,
        ni: Vec<u8>,
        dh: Option<(DhGroup, DhPrivate)>,
    ) {
        if let Some(e) = Error::refusal(p) {
            self.child_rekey_refused(now, sa, est, p, old, e);
            return;
        }
        let Some(nr) = payloads::nonce(p).cloned() else { return };
        let Some(g_ir) = self.answer_dh(sa, p, dh) else { return };
        let Some(oldc) = est.children.iter().find(|c| c.spi_in == old) else { return };
        let asked =
            NewChild { cfg: oldc.cfg, spi_in, ts_local: oldc.ts_local.clone(), ts_remote: oldc.ts_remote.clone() };
        if self.child_from_response(now, sa, est, p, asked, g_ir.as_ref(), (&ni, &nr), Some(old)) {
            if let Some(c) = est.child_mut(old) {
                c.rekey_ours = Some((lowest(&ni, &nr), spi_in));
            }
            self.settle_child_rekey(now, sa, est, old);
        }
    }

    /// Our child rekey was refused. INVALID_KE_PAYLOAD naming a group we
    /// offer: again at once with that group (RFC 7296 1.3, up to
    /// `init_retries` times). TEMPORARY_FAILURE: the peer is rekeying it
    /// too (its rekey will win) or deleting it; again later if it survives.
    fn child_rekey_refused(
        &mut self,
        now: Instant,
        sa: &mut Core,
        est: &mut Established,
        p: &[Payload],
        old: u32,
        e: Error,
    ) {
        let want = notify(p, NotifyType::InvalidKePayload)
            .and_then(|n| n.data.get(..2).map(|b| DhGroup::from_value(u16::from_be_bytes([b[0], b[1]]))));
        let offered = |g: DhGroup| self.conns[sa.conn].esp.iter().any(|s| s.dh == Some(g));
        let retries = self.settings.init_retries;
        let busy = self.settings.retry_after_busy;
        let Some(c) = est.child_mut(old) else { return };
        if let Some(g) = want.filter(|g| offered(*g)) {
            if c.ke_retries < retries && c.state == ChildState::Installed {
                c.ke_retries += 1;
                c.pfs_group = Some(g);
                sa.w.tasks.push_front(Task::RekeyChild(old));
                return;
            }
        }
        if c.state == ChildState::Installed && e != Error::Refused(NotifyType::ChildSaNotFound) {
            c.rekey_at = Some(now + busy);
        }
        if want.is_some() {
            self.failed(sa.conn, Error::BadAnswer("child rekey: the peer wants a PFS group we do not offer"));
        }
    }

    /// After a rekey exchange on child `old` completes: decide which SAs
    /// stay (RFC 7296 2.8.1) and who deletes what.
    pub(super) fn settle_child_rekey(&mut self, now: Instant, sa: &mut Core, est: &mut Established, old: u32) {
        let grace = self.settings.outbound_switch_grace;
        let ours_pending =
            matches!(&sa.w.in_flight, Some(f) if matches!(&f.what, Pending::RekeyChild { old: o, .. } if *o == old));
        let Some(c) = est.children.iter().find(|c| c.spi_in == old) else { return };
        let (ours, theirs) = (c.rekey_ours.clone(), c.rekey_theirs.clone());
        match (ours, theirs) {
            (Some((_, new)), None) if !ours_pending => {
                // Ours alone: we replaced it, we delete the old one.
                if let Some(c) = est.child_mut(old) {
                    c.state = ChildState::Rekeyed;
                }
                self.switch_policy(est, old, new);
                sa.w.tasks.push_back(Task::DeleteChild(old));
            }
            (None, Some((_, new))) => {
                // Theirs alone (or ours still pending: a collision, settled
                // when ours answers): the peer deletes the old one, and our
                // outbound moves when it does (or after a grace period).
                if let Some(c) = est.child_mut(old) {
                    c.state = ChildState::Rekeyed;
                    c.rekey_at = None;
                    c.successor = Some((new, now + grace));
                }
            }
            (Some((our_nonce, our_new)), Some((their_nonce, their_new))) => {
                // Both rekeyed it. The SA made with the lowest nonce is
                // redundant and its creator deletes it; the other creator
                // deletes the old SA.
                let (keep, drop, delete) =
                    if our_nonce < their_nonce { (their_new, our_new, our_new) } else { (our_new, their_new, old) };
                for x in [old, drop] {
                    if let Some(x) = est.child_mut(x) {
                        x.state = ChildState::Rekeyed;
                        x.rekey_at = None;
                        // Settled: no grace period hands the policy on.
                        x.successor = None;
                    }
                }
                self.switch_policy(est, old, keep);
                sa.w.tasks.push_back(Task::DeleteChild(delete));
            }
            _ => {}
        }
    }

    /// The name of child config `cfg` of `sa`'s connection, for events.
    pub(super) fn child_name(&self, sa: &Core, cfg: usize) -> String {
        self.conns[sa.conn].children.get(cfg).map_or_else(|| self.conns[sa.conn].name.clone(), |c| c.name.clone())
    }

    pub(super) fn child_up_event(&mut self, sa: &Core, c: &Child) {
        let conn = self.conns[sa.conn].name.clone();
        let child = self.child_name(sa, c.cfg);
        self.event(Event::ChildUp { conn, child, spi_in: c.spi_in, spi_out: c.spi_out, rekey_of: c.rekey_of });
    }
}
