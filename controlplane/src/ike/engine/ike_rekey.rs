//! Rekeying the IKE SA (RFC 7296 1.3.2, 2.18, 2.8.2), both roles:
//!
//! ```text
//! Initiator                                   Responder
//! HDR, SK { SA(IKE, new SPIi), Ni, KEi }  -->
//!                      <--  HDR, SK { SA(IKE, new SPIr), Nr, KEr }
//! (old SA) HDR, SK { D(IKE) }  -->           the rekey's initiator deletes it
//! ```
//!
//! SKEYSEED = prf(SK_d (old), g^ir (new) | Ni | Nr); the child SAs move to
//! the new IKE SA. When both sides rekey at once, the new SA made with the
//! lowest nonce is redundant: its creator deletes it, and the other
//! creator deletes the old one (2.8.2).
//!
//! Clone IKE SA (RFC 7791) is this exchange with N(CLONE_IKE_SA) in the
//! request and the response, where both sides agreed to it in IKE_AUTH:
//! the old IKE SA is not deleted and keeps its child SAs; the clone starts
//! with none. A response without N(CLONE_IKE_SA) makes it a plain rekey.

use std::time::Instant;

use super::payloads::{self, lowest, notify};
use super::sa::{Core, Established, IkeSa, Pending, Phase, RekeyOffer, Task};
use super::{Engine, Error, Event};
use crate::codepoints::{ExchangeType, NotifyType};
use crate::crypto::dh::{self, DhPrivate};
use crate::crypto::keys::{self, IkeKeys, IkeSuite};
use crate::crypto::Secret;
use crate::ike::proposal;
use crate::wire::{KeyExchange, Notify, Payload};

impl Engine {
    /// Initiator: CREATE_CHILD_SA { [N(CLONE_IKE_SA)], SA(IKE), Ni, KEi };
    /// `clone`: a clone (RFC 7791), moved to that address of ours after.
    pub(super) fn start_ike_rekey(
        &mut self,
        now: Instant,
        sa: &mut Core,
        _est: &mut Established,
        clone: Option<Option<std::net::IpAddr>>,
    ) -> bool {
        let Some((p, (spi, ni, dh))) = self.ike_rekey_offer(sa, clone.is_some()) else { return false };
        self.request(now, sa, ExchangeType::CreateChildSa, p, Pending::RekeyIke { spi, ni, dh, clone });
        true
    }

    /// The offer of an IKE SA rekey or clone: [N(CLONE_IKE_SA)], SA(IKE,
    /// new SPI, the current suite first), Ni, KEi; with the SPI, nonce and
    /// Diffie-Hellman value its answer needs.
    pub(super) fn ike_rekey_offer(&mut self, sa: &Core, clone: bool) -> Option<(Vec<Payload>, RekeyOffer)> {
        let mut suites = self.conns[sa.conn].ike.clone();
        let cur = sa.suite;
        suites.sort_by_key(|s| *s != cur);
        let spi = self.new_spi();
        let ni = self.nonce();
        let g = suites[0].dh;
        let (d, ke) = self.dh_pool.generate(g, self.rng.as_mut()).ok()?;
        let mut p = Vec::new();
        if clone {
            p.push(Payload::Notify(Notify::new(NotifyType::CloneIkeSa, vec![])));
        }
        p.push(Payload::Sa(proposal::ike_proposals(&suites, Some(spi))));
        p.push(Payload::Nonce(ni.clone()));
        p.push(Payload::Ke(KeyExchange { group: g.value(), data: ke }));
        Some((p, (spi, ni, d)))
    }

    /// Responder: an IKE SA rekey request (its SA payload offers IKE).
    pub(super) fn ike_rekey_request(
        &mut self,
        now: Instant,
        sa: &mut Core,
        est: &mut Established,
        p: &[Payload],
        id: u32,
        ni: Vec<u8>,
    ) {
        let ex = ExchangeType::CreateChildSa;
        if let Err(e) = super::clone::check_clone_notifies(p, est.clone) {
            self.stats.clone_refused += 1;
            return self.refuse(sa, ex, id, &e);
        }
        let clone = notify(p, NotifyType::CloneIkeSa).is_some();
        let (out, our_spi, low) = match self.ike_rekey_answer(now, sa, est, p, &ni, clone) {
            Ok(x) => x,
            Err(e) => return self.refuse(sa, ex, id, &e),
        };
        self.respond(sa, ex, id, out);
        if clone {
            if matches!(&sa.w.in_flight, Some(f) if matches!(f.what, Pending::RekeyIke { clone: Some(_), .. })) {
                est.clone_theirs = Some((low, our_spi));
            }
            return;
        }
        est.rekey_theirs = Some((low, our_spi));
        self.settle_ike_rekey(now, sa, est);
    }

    /// Responder: the new IKE SA for offer `p` (SA, KE; Ni `ni`), made and
    /// filed (a clone of `sa` with `clone`); returns the answer's payloads
    /// ([N(CLONE_IKE_SA)], SA(IKE, our SPI), Nr, KEr), our SPI of it and
    /// the exchange's lowest nonce.
    pub(super) fn ike_rekey_answer(
        &mut self,
        now: Instant,
        sa: &Core,
        est: &Established,
        p: &[Payload],
        ni: &[u8],
        clone: bool,
    ) -> Result<(Vec<Payload>, u64, Vec<u8>), Error> {
        let offer = payloads::sa(p).ok_or(Error::Missing("SA payload"))?;
        let (suite, mut chosen) = proposal::select_ike(&self.conns[sa.conn].ike, offer).ok_or(Error::NoProposal)?;
        let ke = payloads::ke(p).ok_or(Error::Missing("KE payload"))?;
        if ke.group != suite.dh.value() {
            return Err(Error::WrongKeGroup { want: suite.dh, got: ke.group });
        }
        let spi_peer = <[u8; 8]>::try_from(chosen.spi.as_slice())
            .map(u64::from_be_bytes)
            .map_err(|_| Error::Missing("an 8-octet IKE SPI in the proposal"))?;
        let (d, pk) = self.dh_pool.generate(suite.dh, self.rng.as_mut()).map_err(Error::Dh)?;
        let g_ir = dh::agree(d, &ke.data).map_err(Error::Dh)?;
        let nr = self.nonce();
        let our_spi = self.new_spi();
        chosen.spi = our_spi.to_be_bytes().to_vec();
        let mut out = Vec::new();
        if clone {
            out.push(Payload::Notify(Notify::new(NotifyType::CloneIkeSa, vec![])));
        }
        out.push(Payload::Sa(vec![chosen]));
        out.push(Payload::Nonce(nr.clone()));
        out.push(Payload::Ke(KeyExchange { group: suite.dh.value(), data: pk }));
        // The new SA: the peer (the rekey's initiator) is its initiator.
        let new = self.rekeyed_sa(now, sa, est, suite, &g_ir, (ni, &nr), (spi_peer, our_spi), false, clone);
        self.insert_sa(our_spi, new);
        if clone {
            self.cloned(sa, est, our_spi);
        }
        Ok((out, our_spi, lowest(ni, &nr)))
    }

    /// RFC 7791: IKE SA `new` is a clone of `sa` (or of what replaced it,
    /// when a rekey settled meanwhile); both live.
    fn cloned(&mut self, sa: &Core, of: &Established, new: u64) {
        self.touched.push(new);
        let conn = self.conns[sa.conn].name.clone();
        if let Some(IkeSa { core, phase: Phase::Established(est) }) = self.sa_mut(&new) {
            est.clone_of = Some(of.replaced_by.unwrap_or(sa.our_spi()));
            let spis = (core.spi_i, core.spi_r);
            self.event(Event::IkeCloned { conn, of: (sa.spi_i, sa.spi_r), new: spis });
        }
    }

    /// Initiator: the answer to our IKE SA rekey.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn ike_rekey_response(
        &mut self,
        now: Instant,
        sa: &mut Core,
        est: &mut Established,
        p: &[Payload],
        spi: u64,
        ni: Vec<u8>,
        dh: DhPrivate,
        clone: Option<Option<std::net::IpAddr>>,
    ) {
        if let Some(e) = Error::refusal(p) {
            if let Some(move_to) = clone {
                return self.clone_refused(now, sa, est, e, move_to);
            }
            if !est.rekeyed {
                est.rekey_at = Some(now + self.settings.retry_after_busy);
            }
            return;
        }
        // Cloned only if the responder says so; else a plain rekey (RFC 7791).
        let answered_clone = notify(p, NotifyType::CloneIkeSa).is_some();
        let as_clone = clone.is_some() && answered_clone;
        let Some(low) = self.ike_rekey_made(now, sa, est, p, (spi, &ni, dh), as_clone) else { return };
        if let (Some(move_to), true) = (clone, as_clone) {
            return self.clone_made(now, est, spi, low, move_to);
        }
        est.rekey_ours = Some((low, spi));
        self.settle_ike_rekey(now, sa, est);
    }

    /// Initiator: the new IKE SA from answer `p` (SA, Nr, KEr) to our
    /// offer (SPI, Ni, Diffie-Hellman value), made and filed (a clone of
    /// `sa` with `clone`). Returns the exchange's lowest nonce; None when
    /// the answer does not fit the offer.
    pub(super) fn ike_rekey_made(
        &mut self,
        now: Instant,
        sa: &Core,
        est: &Established,
        p: &[Payload],
        (spi, ni, dh): (u64, &[u8], DhPrivate),
        clone: bool,
    ) -> Option<Vec<u8>> {
        let (offer, nr, ke) = (payloads::sa(p)?, payloads::nonce(p)?.clone(), payloads::ke(p)?);
        let suite = proposal::chosen_ike(&self.conns[sa.conn].ike, offer)?;
        let spi_r = offer.first().and_then(|o| <[u8; 8]>::try_from(o.spi.as_slice()).ok()).map(u64::from_be_bytes)?;
        let g_ir = dh::agree(dh, &ke.data).ok()?;
        let new = self.rekeyed_sa(now, sa, est, suite, &g_ir, (ni, &nr), (spi, spi_r), true, clone);
        self.insert_sa(spi, new);
        if clone {
            self.cloned(sa, est, spi);
        }
        Some(lowest(ni, &nr))
    }

    /// RFC 7296 2.8.2: with one rekey, its initiator deletes the old SA;
    /// with two, the new SA with the lowest nonce is deleted by its creator
    /// and the other creator deletes the old one. Children move to the
    /// surviving new SA.
    fn settle_ike_rekey(&mut self, now: Instant, sa: &mut Core, est: &mut Established) {
        let ours_pending =
            matches!(&sa.w.in_flight, Some(f) if matches!(f.what, Pending::RekeyIke { clone: None, .. }));
        let winner = match (est.rekey_ours.clone(), est.rekey_theirs.clone()) {
            (Some((_, s)), None) if !ours_pending => {
                sa.w.tasks.push_front(Task::DeleteIke);
                s
            }
            (None, Some((_, s))) if !ours_pending => s,
            (Some((on, os)), Some((tn, ts))) => {
                if on < tn {
                    // Our new SA is redundant: delete it, keep theirs.
                    self.touched.push(os);
                    if let Some(x) = self.sa_mut(&os) {
                        x.core.w.tasks.push_back(Task::DeleteIke);
                    }
                    self.kick(now, os);
                    ts
                } else {
                    sa.w.tasks.push_front(Task::DeleteIke);
                    os
                }
            }
            _ => return,
        };
        est.rekeyed = true;
        est.rekey_at = None;
        est.replaced_by = Some(winner);
        if est.clone {
            self.clones_follow(sa.our_spi(), winner);
        }
        let conn = self.conns[sa.conn].name.clone();
        // Child, group and clone work queued on the old SA moves with the
        // children (a clone colliding with a rekey is made of the new SA).
        let moves =
            |t: &Task| matches!(t, Task::RekeyChild(_) | Task::MpsaPut(_) | Task::CreateChild(_) | Task::CloneIke(_));
        let moved: Vec<Task> = sa.w.tasks.iter().filter(|t| moves(t)).cloned().collect();
        sa.w.tasks.retain(|t| !moves(t));
        self.touched.push(winner);
        if let Some(IkeSa { core, phase: Phase::Established(new) }) = self.sa_mut(&winner) {
            new.children.append(&mut est.children);
            core.w.tasks.extend(moved);
            let spis = (core.spi_i, core.spi_r);
            self.event(Event::IkeRekeyed { conn, old: (sa.spi_i, sa.spi_r), new: spis });
        }
        // The new SA's stub; the old one's is withdrawn when it is deleted.
        self.export_stub_of(winner);
    }

    /// The IKE SA a rekey makes from `old` (RFC 7296 2.18): same
    /// connection, path, peer, MOBIKE and Clone IKE SA state and address
    /// lease, new keys and SPIs. A clone (RFC 7791) leaves the lease and
    /// group membership with the original.
    #[allow(clippy::too_many_arguments)]
    fn rekeyed_sa(
        &mut self,
        now: Instant,
        old: &Core,
        old_est: &Established,
        suite: IkeSuite,
        g_ir: &Secret,
        (ni, nr): (&[u8], &[u8]),
        (spi_i, spi_r): (u64, u64),
        we_initiate: bool,
        clone: bool,
    ) -> IkeSa {
        let seed = keys::rekey_skeyseed(old.suite.prf, &old.keys.sk_d, g_ir, ni, nr);
        let k = IkeKeys::derive_without_auth(&suite, &seed, ni, nr, spi_i, spi_r);
        let mut core =
            super::sa::Core::new(old.conn, we_initiate, (spi_i, spi_r), (old.local, old.remote), suite, k, (0, 0), now);
        core.nat = old.nat;
        core.we_behind_nat = old.we_behind_nat;
        core.peer_mpsa = old.peer_mpsa;
        core.peer_frag = old.peer_frag;
        core.mobike_initiator = old.mobike_initiator;
        core.clone_reduced = old.clone_reduced;
        core.g_ir = g_ir.clone();
        core.peer_redirect = old.peer_redirect;
        let our = core.our_spi();
        self.file_peer(&mut core, Some(old_est.peer_id.clone()));
        if !clone {
            self.mpsa_ike_rekeyed(old.our_spi(), our);
        }
        let c = &self.conns[old.conn];
        let (rekey, jp) = (c.ike_rekey, c.jitter_percent);
        let mut est = Established::new(old_est.peer_id.clone(), now, now + self.jitter(rekey, jp));
        if core.we_behind_nat {
            core.keepalive_at = Some(now + self.settings.keepalive);
        }
        est.mobike = old_est.mobike.clone();
        est.clone = old_est.clone;
        if !clone {
            // A rekeyed clone stays a clone, on its interface.
            est.clone_of = old_est.clone_of;
            est.home = old_est.home;
            est.vip = old_est.vip;
            if let Some(v) = est.vip {
                self.leases.insert(v, our);
            }
        }
        IkeSa { core, phase: Phase::Established(est) }
    }
}
