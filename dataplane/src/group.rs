//! Group SAs (Multi-point SA, ../shared/spec/NOTES.md "MPSA"): one SA used
//! inbound and outbound by every member, no anti-replay check (mpsa-04
//! 5.2.1), the outer destination of each packet chosen by route (inner
//! prefix -> the member endpoint's outer address), and GDOI-style rollover.
//!
//! [`Rollover`] is the sans-IO timing of a rekey, driven by the main lcore
//! with explicit time: a new SA is installed inbound at once, used
//! outbound after Rollover1, and the old one leaves inbound after
//! Rollover2. With no old SA the times mean nothing: all at once.

use std::time::{Duration, Instant};

/// A table change a rollover asks for, by SPI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupAction {
    /// Accept this SA inbound from now on.
    InstallInbound(u32),
    /// Send with this SA from now on (the group's policies point to it).
    SwitchOutbound(u32),
    /// Stop accepting this SA inbound; it is gone.
    RemoveInbound(u32),
}

/// The rollover state of one group at one endpoint.
#[derive(Debug, Clone, Default)]
pub struct Rollover {
    outbound: Option<u32>,
    inbound: Vec<u32>,
    /// Actions due at a time, in time order.
    pending: Vec<(Instant, GroupAction)>,
}

impl Rollover {
    pub fn new() -> Rollover {
        Rollover::default()
    }

    /// The SPI traffic is sent with now.
    pub fn outbound(&self) -> Option<u32> {
        self.outbound
    }

    /// The SPIs accepted now.
    pub fn inbound(&self) -> &[u32] {
        &self.inbound
    }

    /// A new group SA `spi` arrives at `now` with its rollover times;
    /// returns the actions to apply at once (the rest come from `poll`).
    pub fn install(&mut self, spi: u32, now: Instant, roll1: Duration, roll2: Duration) -> Vec<GroupAction> {
        let mut out = Vec::new();
        if !self.inbound.contains(&spi) {
            self.inbound.push(spi);
            out.push(GroupAction::InstallInbound(spi));
        }
        match self.outbound {
            None => {
                self.outbound = Some(spi);
                out.push(GroupAction::SwitchOutbound(spi));
            }
            Some(old) if old != spi => {
                // A newer rekey supersedes a switch still pending: that SA
                // is never sent with here, but peers may have switched to
                // it, so it stays inbound until this rekey's Rollover2.
                let gone = now + roll2.max(roll1);
                let superseded: Vec<u32> = self
                    .pending
                    .iter()
                    .filter_map(|(_, a)| match a {
                        GroupAction::SwitchOutbound(s) => Some(*s),
                        _ => None,
                    })
                    .collect();
                self.pending.retain(|(_, a)| !matches!(a, GroupAction::SwitchOutbound(_)));
                for s in superseded {
                    self.pending.push((gone, GroupAction::RemoveInbound(s)));
                }
                self.pending.push((now + roll1, GroupAction::SwitchOutbound(spi)));
                self.pending.push((gone, GroupAction::RemoveInbound(old)));
                self.pending.sort_by_key(|(t, _)| *t);
            }
            Some(_) => {}
        }
        out
    }

    /// Removes the SA entirely (lifetime expired, group left).
    pub fn delete(&mut self, spi: u32) -> Vec<GroupAction> {
        self.pending.retain(|(_, a)| !matches!(a, GroupAction::SwitchOutbound(s) if *s == spi));
        let mut out = Vec::new();
        if let Some(i) = self.inbound.iter().position(|&s| s == spi) {
            self.inbound.remove(i);
            out.push(GroupAction::RemoveInbound(spi));
        }
        if self.outbound == Some(spi) {
            self.outbound = None;
        }
        out
    }

    /// Actions that have come due by `now`.
    pub fn poll(&mut self, now: Instant) -> Vec<GroupAction> {
        let due = self.pending.iter().take_while(|(t, _)| *t <= now).count();
        let actions: Vec<GroupAction> = self.pending.drain(..due).map(|(_, a)| a).collect();
        for a in &actions {
            match *a {
                GroupAction::SwitchOutbound(s) => self.outbound = Some(s),
                GroupAction::RemoveInbound(s) => self.inbound.retain(|&x| x != s),
                GroupAction::InstallInbound(_) => {}
            }
        }
        actions
    }

    /// When `poll` next has something to do.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.pending.first().map(|(t, _)| *t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_sa_is_used_at_once() {
        let mut r = Rollover::new();
        let t0 = Instant::now();
        let a = r.install(1, t0, Duration::from_secs(10), Duration::from_secs(20));
        assert_eq!(a, vec![GroupAction::InstallInbound(1), GroupAction::SwitchOutbound(1)]);
        assert_eq!(r.outbound(), Some(1));
        assert_eq!(r.next_deadline(), None);
    }

    #[test]
    fn rekey_follows_rollover1_then_rollover2() {
        let mut r = Rollover::new();
        let t0 = Instant::now();
        r.install(1, t0, Duration::ZERO, Duration::ZERO);
        let (r1, r2) = (Duration::from_secs(5), Duration::from_secs(30));
        assert_eq!(r.install(2, t0, r1, r2), vec![GroupAction::InstallInbound(2)]);
        assert_eq!(r.inbound(), &[1, 2]);
        assert_eq!(r.outbound(), Some(1), "still sending the old SA before Rollover1");
        assert!(r.poll(t0 + Duration::from_secs(4)).is_empty());
        assert_eq!(r.poll(t0 + r1), vec![GroupAction::SwitchOutbound(2)]);
        assert_eq!(r.outbound(), Some(2));
        assert_eq!(r.inbound(), &[1, 2], "old inbound kept until Rollover2");
        assert_eq!(r.next_deadline(), Some(t0 + r2));
        assert_eq!(r.poll(t0 + r2), vec![GroupAction::RemoveInbound(1)]);
        assert_eq!(r.inbound(), &[2]);
    }

    #[test]
    fn a_second_rekey_before_the_first_completes() {
        let mut r = Rollover::new();
        let t0 = Instant::now();
        r.install(1, t0, Duration::ZERO, Duration::ZERO);
        r.install(2, t0, Duration::from_secs(10), Duration::from_secs(20));
        let t1 = t0 + Duration::from_secs(2);
        r.install(3, t1, Duration::from_secs(10), Duration::from_secs(20));
        let mut all = Vec::new();
        for s in 0..40 {
            all.extend(r.poll(t0 + Duration::from_secs(s)));
        }
        assert_eq!(r.outbound(), Some(3));
        assert!(!all.contains(&GroupAction::SwitchOutbound(2)), "superseded: {all:?}");
        assert_eq!(r.inbound(), &[3], "both older SAs left after Rollover2: {all:?}");
        assert_eq!(r.delete(3), vec![GroupAction::RemoveInbound(3)]);
        assert_eq!(r.outbound(), None);
    }
}
