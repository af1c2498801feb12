//! Clone IKE SA's reduced exchange (draft-mglt-ipsecme-clone-ike-sa-00
//! Appendix B.5): the multi-interface layout in fewer round trips, where
//! both sides sent the reduced exchange's Vendor ID in IKE_SA_INIT (ours,
//! `CLONE_REDUCED_VENDOR_ID`; RFC 7791 dropped the appendix and numbers
//! nothing for it):
//!
//! ```text
//! Initiator (IP_I1)                                  Responder (IP_R1)
//! HDR, SK { IDi, AUTH, SAi2, TSi, TSr, N(CLONE_IKE_SA_SUPPORTED),
//!           N(MOBIKE_SUPPORTED), N(CLONE_IKE_SA), SA, Ni, KEi }  -->
//!   <--  HDR, SK { IDr, AUTH, SAr2, TSi, TSr, N(CLONE_IKE_SA_SUPPORTED),
//!                  N(MOBIKE_SUPPORTED), N(CLONE_IKE_SA), SA, Nr, KEr }
//! (IP_I2, the clone) HDR(new), SK(new) { SA, Ni, TSi, TSr, NAT-D,
//!           N(COOKIE2), N(UPDATE_SA_ADDRESSES) }  -->
//!   <--  HDR(new), SK(new) { SA, Nr, TSi, TSr, NAT-D, N(COOKIE2) }
//! ```
//!
//! The first clone is asked for in IKE_AUTH after the child SA's payloads
//! (keyed as an IKE SA rekey of the SA being authenticated); the clone's
//! move to its interface rides in the CREATE_CHILD_SA of that interface's
//! first child SA, the MOBIKE part after the child's payloads. The layout
//! then costs IKE_SA_INIT, IKE_AUTH and one exchange per clone on its
//! interface instead of three (clone, move, child). Without the Vendor ID
//! both ways, the clone goes by CREATE_CHILD_SA and the move by
//! INFORMATIONAL (RFC 7791 Appendix B.1-B.4).

use std::net::IpAddr;
use std::time::Instant;

use super::payloads::{self, has_notify};
use super::sa::{Core, Established, Pending, RekeyOffer};
use super::{Engine, Error};
use crate::codepoints::{ExchangeType, NotifyType};
use crate::wire::Payload;

impl Engine {
    /// Initiator, IKE_AUTH (Appendix B.5, where both sides sent the reduced
    /// exchange's Vendor ID and the connection has other interfaces): the
    /// first clone's offer, N(CLONE_IKE_SA), SA(IKE), Ni, KEi, to follow
    /// the child SA's payloads; and what its answer needs.
    pub(super) fn clone_in_auth_offer(&mut self, sa: &Core) -> Option<(Vec<Payload>, RekeyOffer)> {
        // `clone_reduced` on the SA: ours on and the peer's Vendor ID.
        if !sa.clone_reduced || self.conns[sa.conn].interfaces.is_empty() {
            return None;
        }
        self.ike_rekey_offer(sa, true)
    }

    /// Responder, IKE_AUTH: the clone asked for in `offer` (the payloads
    /// from N(CLONE_IKE_SA) on, already checked), made of the IKE SA just
    /// authenticated; its answer, or nothing when it cannot be made (the
    /// initiator then clones with CREATE_CHILD_SA).
    pub(super) fn clone_in_auth_answer(
        &mut self,
        now: Instant,
        sa: &Core,
        est: &Established,
        offer: &[Payload],
    ) -> Vec<Payload> {
        let Some(ni) = payloads::nonce(offer).cloned().filter(|_| est.clone) else { return Vec::new() };
        match self.ike_rekey_answer(now, sa, est, offer, &ni, true) {
            Ok((out, _, _)) => out,
            Err(e) => {
                self.failed(sa.conn, e);
                Vec::new()
            }
        }
    }

    /// Initiator, IKE_AUTH answered: the clone we asked for, if the
    /// responder made it (`answer`: its payloads from N(CLONE_IKE_SA) on),
    /// goes to the connection's first other interface.
    pub(super) fn clone_in_auth_made(
        &mut self,
        now: Instant,
        sa: &Core,
        est: &mut Established,
        answer: &[Payload],
        (spi, ni, dh): RekeyOffer,
    ) {
        if answer.is_empty() || !est.clone {
            return;
        }
        let move_to = self.conns[sa.conn].interfaces.first().copied();
        if let Some(low) = self.ike_rekey_made(now, sa, est, answer, (spi, &ni, dh), true) {
            self.clone_made(now, est, spi, low, move_to);
        }
    }

    /// Initiator: the clone's move from where it was made to our address
    /// `ip`, with child config `k` opened there, in one CREATE_CHILD_SA.
    pub(super) fn start_move_with_child(
        &mut self,
        now: Instant,
        sa: &mut Core,
        est: &mut Established,
        ip: IpAddr,
        k: usize,
    ) -> bool {
        let Some(old) = super::mobike::step_to(sa, est, ip) else { return false };
        let Some((mut p, child, ni, dh)) = self.child_create_offer(sa, est, k) else {
            // That child SA is up already: the move alone.
            return self.send_mobike_update(now, sa, est, old, super::MoveReason::OurUpdate);
        };
        let (mut q, cookie2) = self.mobike_update_payloads(sa, est, old);
        p.append(&mut q);
        let moving = Some((cookie2, old));
        self.request(now, sa, ExchangeType::CreateChildSa, p, Pending::CreateChild { child, ni, dh, moving });
        true
    }

    /// Responder, a CREATE_CHILD_SA for a child SA `p`: with
    /// N(UPDATE_SA_ADDRESSES) it is a clone's first child SA with the
    /// clone's move (only on a clone, where both sent the Vendor ID; else
    /// INVALID_SYNTAX). The move is made (as MOBIKE makes it, refusals
    /// included) and its answer returned, to follow the child's.
    pub(super) fn clone_move_with_child(
        &mut self,
        now: Instant,
        sa: &mut Core,
        est: &mut Established,
        p: &[Payload],
    ) -> Result<Vec<Payload>, Error> {
        if !has_notify(p, NotifyType::UpdateSaAddresses) {
            return Ok(Vec::new());
        }
        if !(sa.clone_reduced && est.clone_of.is_some()) || has_notify(p, NotifyType::RekeySa) {
            self.stats.clone_refused += 1;
            return Err(Error::CloneMisplaced("UPDATE_SA_ADDRESSES in a CREATE_CHILD_SA outside Appendix B.5"));
        }
        self.mobike_request(now, sa, est, p)
    }
}
