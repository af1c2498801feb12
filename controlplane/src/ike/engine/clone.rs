//! Clone IKE SA (RFC 7791; draft-mglt-ipsecme-clone-ike-sa, NOTES.md): a
//! second IKE SA with the same peer, made without authenticating again, to
//! give each interface its own (Appendix B: one IKE SA per interface pair,
//! each moved with MOBIKE).
//!
//! ```text
//! IKE_AUTH, both ways:  N(CLONE_IKE_SA_SUPPORTED)    on when both sent it
//!   (or later, in an INFORMATIONAL request and its answer)
//! Initiator                                   Responder
//! HDR, SK { N(CLONE_IKE_SA), SA(IKE), Ni, KEi }  -->
//!              <--  HDR, SK { N(CLONE_IKE_SA), SA(IKE), Nr, KEr }
//! (no Delete: both IKE SAs live; the child SAs stay on the original)
//! ```
//!
//! The exchange is the IKE SA rekey's (`ike_rekey`); this module has the
//! negotiation, the placement rules (anywhere else INVALID_SYNTAX), the
//! collisions and the operator's call.
//!
//! Collisions, settled as RFC 7296 2.8.2 settles simultaneous rekeys:
//! - a clone and a plain rekey of the same IKE SA: the rekey replaces it
//!   as if alone (its initiator deletes the old SA, the child SAs move);
//!   the clone is not redundant and lives, a clone of the new SA. A clone
//!   answered TEMPORARY_FAILURE because the old SA was already replaced
//!   is made again on the new one, and so is one still queued;
//! - two clones at once, one from each side: the one made with the lowest
//!   nonce is redundant and its creator deletes it; a move meant for it
//!   (its interface) goes to the other. A side that saw no collision (its
//!   clone was answered before the peer's request came) keeps both.

use std::net::IpAddr;
use std::time::Instant;

use super::payloads::has_notify;
use super::sa::{Core, Established, Phase, Task};
use super::{Engine, Error};
use crate::codepoints::NotifyType;
use crate::wire::{Notify, Payload};

/// The CLONE_IKE_SA notifies of an IKE SA rekey request `p`: at most one,
/// empty, and only where both sides agreed to Clone IKE SA (RFC 7791 4;
/// NOTES.md: otherwise INVALID_SYNTAX, nothing created).
pub(super) fn check_clone_notifies(p: &[Payload], agreed: bool) -> Result<(), Error> {
    let clones: Vec<&Notify> = p
        .iter()
        .filter_map(|x| match x {
            Payload::Notify(n) if n.ty == NotifyType::CloneIkeSa => Some(n),
            _ => None,
        })
        .collect();
    match clones.as_slice() {
        [] => Ok(()),
        [_] if !agreed => Err(Error::CloneMisplaced("CLONE_IKE_SA without CLONE_IKE_SA_SUPPORTED from both sides")),
        [n] if !n.data.is_empty() || !n.spi.is_empty() => Err(Error::CloneMisplaced("CLONE_IKE_SA with data")),
        [_] => Ok(()),
        _ => Err(Error::CloneMisplaced("CLONE_IKE_SA more than once in one message")),
    }
}

impl Engine {
    /// N(CLONE_IKE_SA_SUPPORTED) when connection `conn` offers it.
    pub(super) fn clone_payloads(&self, conn: usize) -> Vec<Payload> {
        if self.conns[conn].clone {
            vec![Payload::Notify(Notify::new(NotifyType::CloneIkeSaSupported, vec![]))]
        } else {
            Vec::new()
        }
    }

    /// Both sides support Clone IKE SA: ours is on and `p` (the peer's
    /// IKE_AUTH or INFORMATIONAL message) says so.
    pub(super) fn clone_agreed(&self, conn: usize, p: &[Payload]) -> bool {
        self.conns[conn].clone && has_notify(p, NotifyType::CloneIkeSaSupported)
    }

    /// Responder, INFORMATIONAL: CLONE_IKE_SA_SUPPORTED turns the extension
    /// on (answered with ours); CLONE_IKE_SA there is misplaced.
    pub(super) fn clone_informational(
        &self,
        conn: usize,
        est: &mut Established,
        p: &[Payload],
    ) -> Result<Vec<Payload>, Error> {
        if has_notify(p, NotifyType::CloneIkeSa) {
            return Err(Error::CloneMisplaced("CLONE_IKE_SA outside an IKE SA rekey"));
        }
        if !has_notify(p, NotifyType::CloneIkeSaSupported) {
            return Ok(Vec::new());
        }
        est.clone |= self.clone_agreed(conn, p);
        Ok(self.clone_payloads(conn))
    }

    /// Clones the IKE SAs of connection `name` that are not clones
    /// themselves (RFC 7791), and with `local` moves each clone to that
    /// address of ours (MOBIKE; we must be the IKE SA's original
    /// initiator). The daemon logs each clone when the peer answers.
    pub fn clone_ike_sa(&mut self, now: Instant, name: &str, local: Option<IpAddr>) -> Result<usize, Error> {
        let spis: Vec<u64> = self
            .established_of(self.conn_index(name)?)
            .into_iter()
            .filter(|s| {
                self.sa(s).is_some_and(|sa| {
                    sa.established().is_some_and(|e| {
                        e.clone
                            && e.clone_of.is_none()
                            && local.is_none_or(|_| sa.core.mobike_initiator && e.mobike.is_some())
                    })
                })
            })
            .collect();
        if spis.is_empty() {
            return Err(Error::CannotClone(name.into()));
        }
        for s in &spis {
            self.queue(now, *s, Task::CloneIke(local));
        }
        self.reschedule();
        Ok(spis.len())
    }

    /// Our clone request was refused: made again on the IKE SA that
    /// replaced this one (a collision with a rekey, RFC 7296 2.25's
    /// TEMPORARY_FAILURE), else reported.
    pub(super) fn clone_refused(
        &mut self,
        now: Instant,
        sa: &Core,
        est: &Established,
        e: Error,
        move_to: Option<IpAddr>,
    ) {
        match (e, est.replaced_by) {
            (Error::Refused(NotifyType::TemporaryFailure), Some(next)) if self.sas.contains_key(&next) => {
                self.queue(now, next, Task::CloneIke(move_to));
            }
            (e, _) => self.failed(sa.conn, e),
        }
    }

    /// Our clone `spi` of the IKE SA `est` (its exchange's lowest nonce
    /// `low`) is up: settled against a clone of the peer's, then moved to
    /// `move_to` with MOBIKE (Appendix B) if asked.
    pub(super) fn clone_made(
        &mut self,
        now: Instant,
        est: &mut Established,
        spi: u64,
        low: Vec<u8>,
        move_to: Option<IpAddr>,
    ) {
        let keep = self.settle_clone_collision(now, est, spi, low);
        let Some(ip) = move_to else { return };
        // Appendix B.5: the move rides with the interface's first child SA.
        let first = self.sa(&keep).and_then(|x| {
            let open = |(_, c): &(usize, &crate::ike::config::ChildConfig)| c.auto && c.interface == Some(ip);
            let reduced = x.core.clone_reduced;
            self.conns[x.core.conn].children.iter().enumerate().find(open).filter(|_| reduced).map(|(k, _)| k)
        });
        let Some(x) = self.sa_mut(&keep) else { return };
        if let Phase::Established(e) = &mut x.phase {
            e.home = Some(ip);
        }
        x.core.w.tasks.push_back(match first {
            Some(k) => Task::MoveWithChild(ip, k),
            None => Task::MobikeUpdate(ip, super::MoveReason::OurUpdate),
        });
        self.kick(now, keep);
    }

    /// Our clone `ours` (its exchange's lowest nonce `low`) is made; if the
    /// peer cloned the same IKE SA meanwhile, the clone with the lowest
    /// nonce is redundant and its creator deletes it (RFC 7296 2.8.2).
    /// Returns the clone that takes what ours was for.
    fn settle_clone_collision(&mut self, now: Instant, est: &mut Established, ours: u64, low: Vec<u8>) -> u64 {
        let Some((theirs_low, theirs)) = est.clone_theirs.take() else { return ours };
        if low >= theirs_low || !self.sas.contains_key(&theirs) {
            return ours;
        }
        self.stats.clone_collisions += 1;
        self.queue(now, ours, Task::DeleteIke);
        theirs
    }

    /// IKE SA `old` was replaced by `new`: its clones are clones of `new`.
    pub(super) fn clones_follow(&mut self, old: u64, new: u64) {
        for x in self.sas.values_mut() {
            if let Phase::Established(e) = &mut x.phase {
                if e.clone_of == Some(old) {
                    e.clone_of = Some(new);
                }
            }
        }
    }

    /// A clone of ours is on its interface (its move answered): the child
    /// SAs configured for that interface are opened on it (RFC 7791
    /// Appendix B.3-B.4); they stay with it when it moves later.
    pub(super) fn clone_arrived(&self, sa: &mut Core, est: &Established) {
        let Some(home) = est.home.filter(|h| *h == sa.local.ip() && sa.mobike_initiator) else { return };
        for (k, cfg) in self.conns[sa.conn].children.iter().enumerate() {
            let open = cfg.auto && cfg.interface == Some(home) && !est.children.iter().any(|x| x.cfg == k);
            if open && !sa.w.tasks.contains(&Task::CreateChild(k)) {
                sa.w.tasks.push_back(Task::CreateChild(k));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clone_notify(data: Vec<u8>) -> Payload {
        Payload::Notify(Notify::new(NotifyType::CloneIkeSa, data))
    }

    /// RFC 7791 4 (NOTES.md): one empty CLONE_IKE_SA, only where both sides
    /// agreed; unagreed, with data or twice: INVALID_SYNTAX.
    #[test]
    fn rfc7791_4_clone_notifies_in_a_rekey_request() {
        let nonce = Payload::Nonce(vec![1; 32]);
        assert_eq!(check_clone_notifies(std::slice::from_ref(&nonce), false), Ok(()), "a plain rekey");
        assert_eq!(check_clone_notifies(&[clone_notify(vec![]), nonce.clone()], true), Ok(()));
        for (p, agreed, why) in [
            (vec![clone_notify(vec![])], false, "without CLONE_IKE_SA_SUPPORTED"),
            (vec![clone_notify(vec![0])], true, "with data"),
            (vec![clone_notify(vec![]), clone_notify(vec![])], true, "more than once"),
        ] {
            let e = check_clone_notifies(&p, agreed).unwrap_err();
            assert!(e.to_string().contains(why), "{e}");
            assert_eq!(e.notify().0, NotifyType::InvalidSyntax);
        }
        let mut with_spi = Notify::new(NotifyType::CloneIkeSa, vec![]);
        with_spi.spi = vec![0; 4];
        assert!(check_clone_notifies(&[Payload::Notify(with_spi)], true).is_err());
    }
}
