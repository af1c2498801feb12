//! Time: every deadline an IKE SA has, on one heap (O(log n) per change,
//! so a hub with many IKE SAs does no per-message scans), and what happens
//! when one comes:
//!
//! ```text
//! retransmission due   -->  the same request again, the wait doubled (RFC 7296 2.4);
//!                           after retransmit_tries, the IKE SA goes
//! half-open too long   -->  forgotten (2.6)
//! keepalive due        -->  0xFF to the NAT (RFC 3948 4)
//! rekey due            -->  CREATE_CHILD_SA for the IKE SA or a child (2.8)
//! quiet too long       -->  INFORMATIONAL { } (liveness, 2.4)
//! child hard lifetime  -->  the child goes, INFORMATIONAL { D } to the peer
//! ```
//!
//! The caller asks [`Engine::poll_timeout`] when to call
//! [`Engine::handle_timeout`]; the engine keeps no clock of its own.

use std::time::Instant;

use super::sa::{ChildState, IkeSa, Pending, Phase, Task};
use super::{path_change, ChildGone, Engine, Error, Event, IkeGone, Output};
use crate::codepoints::{ExchangeType, ProtocolId};
use crate::wire::{Delete, Payload};

impl Engine {
    /// The earliest deadline, if any.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let sas = self.timers.peek().map(|std::cmp::Reverse((t, _))| *t);
        [sas, self.mpsa_deadline(), self.fetch_deadline()].into_iter().flatten().min()
    }

    /// The earliest deadline of one IKE SA.
    fn sa_deadline(&self, sa: &IkeSa) -> Option<Instant> {
        let mut t: Option<Instant> = None;
        let mut at = |d: Option<Instant>| {
            if let Some(d) = d {
                t = Some(t.map_or(d, |x| x.min(d)));
            }
        };
        let core = &sa.core;
        at(core.w.in_flight.as_ref().map(|f| f.next));
        at(core.keepalive_at);
        at(core.half_open_until);
        if let Phase::Established(est) = &sa.phase {
            at(est.unproven.as_ref().map(|u| u.0));
            at(est.redirected_until);
            if !est.rekeyed && !core.deleting {
                at(est.rekey_at);
                // Liveness is due only while nothing else is on the wire.
                if let (Some(d), None) = (self.conns[core.conn].dpd, &core.w.in_flight) {
                    at(Some(core.last_heard + d));
                }
            }
            for c in &est.children {
                at(c.rekey_at);
                at(Some(c.expire_at));
                at(c.successor.map(|(_, t)| t));
            }
        }
        t
    }

    /// Puts the SAs changed since the last call on the timer heap again.
    pub(super) fn reschedule(&mut self) {
        let mut touched = std::mem::take(&mut self.touched);
        touched.sort_unstable();
        touched.dedup();
        for spi in touched.drain(..) {
            let d = match (self.sa(&spi), self.connecting.get(&spi)) {
                (Some(sa), _) => self.sa_deadline(sa),
                (None, Some(c)) => Some(c.next),
                (None, None) => continue,
            };
            let slot = match self.sa_mut(&spi) {
                Some(sa) => &mut sa.core.scheduled,
                None => match self.connecting.get_mut(&spi) {
                    Some(c) => &mut c.scheduled,
                    None => continue,
                },
            };
            if d != *slot {
                *slot = d;
                if let Some(d) = d {
                    self.timers.push(std::cmp::Reverse((d, spi)));
                }
            }
        }
        self.touched = touched;
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        self.mpsa_timeout(now);
        self.fetch_timeout(now);
        // Each due SA once per call: what is due again waits for the next.
        let mut due = Vec::new();
        while let Some(&std::cmp::Reverse((t, spi))) = self.timers.peek() {
            if t > now {
                break;
            }
            self.timers.pop();
            // Entries of SAs gone or rescheduled since are stale.
            let scheduled = match self.sa_mut(&spi) {
                Some(sa) => Some(&mut sa.core.scheduled),
                None => self.connecting.get_mut(&spi).map(|c| &mut c.scheduled),
            };
            if let Some(s) = scheduled.filter(|s| **s == Some(t)) {
                *s = None;
                due.push(spi);
            }
        }
        for spi in due {
            if self.connecting.contains_key(&spi) {
                self.timeout_connecting(now, spi);
            } else {
                self.timeout_sa(now, spi);
            }
            self.touched.push(spi);
        }
        self.reschedule();
    }

    fn timeout_sa(&mut self, now: Instant, spi: u64) {
        let Some(mut sa) = self.sas.remove(&spi) else { return };
        let IkeSa { core, phase } = &mut *sa;
        // Half-open SAs that never authenticated are forgotten.
        if core.half_open_until.is_some_and(|d| d <= now) && matches!(phase, Phase::Authenticating(_)) {
            self.remove_sa(now, sa, IkeGone::HalfOpenTimeout);
            return;
        }
        // Retransmission (RFC 7296 2.4), doubling each time.
        let exhausted =
            core.w.in_flight.as_ref().is_some_and(|f| f.next <= now && f.tries >= self.settings.retransmit_tries);
        // MOBIKE (RFC 4555 3.10): before giving up, the request again on
        // another pair of addresses, a few tries each.
        let next = match phase {
            Phase::Established(est) if exhausted => self.next_path(core, est),
            _ => None,
        };
        if let (Some((l, r)), Some(f)) = (next, core.w.in_flight.as_mut()) {
            let conn = self.conns[core.conn].name.clone();
            self.event(Event::PathTried { conn, from: (core.local, core.remote), to: (l, r) });
            (core.local, core.remote) = (l, r);
            f.tries = self.settings.retransmit_tries.saturating_sub(path_change::TRIES_PER_PATH);
            f.next = now;
        } else if let (Phase::Established(est), true) = (&mut *phase, exhausted) {
            if self.wait_for_initiator(core, est) {
                if let Some(f) = core.w.in_flight.as_mut() {
                    f.tries = self.settings.retransmit_tries.saturating_sub(path_change::TRIES_PER_PATH);
                }
            }
        }
        if let Some(f) = core.w.in_flight.as_mut().filter(|f| f.next <= now) {
            if f.tries >= self.settings.retransmit_tries {
                self.failed(core.conn, Error::Unanswered(core.remote));
                core.w.in_flight = None;
                core.deleting = true;
                self.remove_sa(now, sa, IkeGone::PeerNotResponding);
                return;
            }
            f.tries += 1;
            f.next = now + self.settings.retransmit_base * 2u32.pow(f.tries.min(10));
            let packets = f.packets.clone();
            self.stats.retransmitted += 1;
            for p in packets {
                self.send(core.local, core.remote, p);
            }
        }
        if core.keepalive_at.is_some_and(|d| d <= now) {
            core.keepalive_at = Some(now + self.settings.keepalive);
            self.stats.sent += 1;
            self.out.push_back(Output::Send { local: core.local, remote: core.remote, data: vec![0xff] });
        }
        let Phase::Established(est) = phase else {
            self.put_back(now, spi, sa);
            return;
        };
        // Rebuilt from a stub and never proven (draft-xu-ike-sa-sync 5).
        if est.unproven.as_ref().is_some_and(|u| u.0 <= now) {
            self.remove_sa(now, sa, IkeGone::Unproven);
            return;
        }
        // Redirected (RFC 5685 6) and the client has not deleted it: we do.
        if est.redirected_until.is_some_and(|d| d <= now) {
            est.redirected_until = None;
            if !core.deleting && !core.w.tasks.contains(&Task::DeleteIke) {
                core.w.tasks.push_back(Task::DeleteIke);
            }
        }
        if !est.rekeyed && !core.deleting {
            if est.rekey_at.is_some_and(|d| d <= now) {
                est.rekey_at = None;
                core.w.tasks.push_back(Task::RekeyIke);
            }
            if let Some(d) = self.conns[core.conn].dpd {
                let quiet = core.last_heard + d <= now;
                if quiet && core.w.in_flight.is_none() && !core.w.tasks.contains(&Task::Liveness) {
                    core.last_heard = now;
                    core.w.tasks.push_back(Task::Liveness);
                }
            }
        }
        let mut expired = Vec::new();
        let mut switch = Vec::new();
        for c in est.children.iter_mut() {
            if let Some((new, _)) = c.successor.filter(|(_, t)| *t <= now) {
                c.successor = None;
                switch.push((c.spi_in, new));
            }
            if c.rekey_at.is_some_and(|d| d <= now) {
                c.rekey_at = None;
                if c.state == ChildState::Installed {
                    core.w.tasks.push_back(Task::RekeyChild(c.spi_in));
                }
            }
            if c.expire_at <= now {
                expired.push(c.spi_in);
            }
        }
        for (old, new) in switch {
            self.switch_policy(est, old, new);
        }
        for s in expired {
            let Some(i) = est.children.iter().position(|c| c.spi_in == s) else { continue };
            // Hard lifetime: gone now, and the peer is told.
            let c = est.children.remove(i);
            self.uninstall_child(core, &c, ChildGone::HardLifetime);
            if !est.rekeyed && !core.deleting && core.w.in_flight.is_none() {
                let d = Payload::Delete(Delete { protocol: ProtocolId::Esp, spis: vec![s] });
                self.request(now, core, ExchangeType::Informational, vec![d], Pending::DeleteChildren(vec![]));
            }
        }
        self.put_back(now, spi, sa);
    }
}
