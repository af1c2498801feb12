//! Per-worker counters: written by one worker, read by the main lcore.
//!
//! Each worker owns one [`WorkerCounters`] on its own cache line and
//! publishes with relaxed stores (plain moves on x86), so counting costs the
//! fast path no locked instruction; readers see values at most one burst
//! old.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

#[derive(Debug, Default)]
#[repr(align(64))]
pub struct WorkerCounters {
    /// Packets received from every rx queue this worker polls.
    pub rx: AtomicU64,
    /// Packets the tx queues accepted.
    pub tx: AtomicU64,
    /// Packets dropped because a tx queue was full.
    pub tx_full: AtomicU64,
    /// Times the worker slept because every rx queue was empty.
    pub idle_sleeps: AtomicU64,
}

/// A plain copy of [`WorkerCounters`] at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WorkerSnapshot {
    pub rx: u64,
    pub tx: u64,
    pub tx_full: u64,
    pub idle_sleeps: u64,
}

impl WorkerCounters {
    /// Publishes the worker's running totals.
    #[inline]
    pub fn publish(&self, s: &WorkerSnapshot) {
        self.rx.store(s.rx, Relaxed);
        self.tx.store(s.tx, Relaxed);
        self.tx_full.store(s.tx_full, Relaxed);
        self.idle_sleeps.store(s.idle_sleeps, Relaxed);
    }

    pub fn snapshot(&self) -> WorkerSnapshot {
        WorkerSnapshot {
            rx: self.rx.load(Relaxed),
            tx: self.tx.load(Relaxed),
            tx_full: self.tx_full.load(Relaxed),
            idle_sleeps: self.idle_sleeps.load(Relaxed),
        }
    }
}

impl std::ops::Add for WorkerSnapshot {
    type Output = WorkerSnapshot;
    fn add(self, o: WorkerSnapshot) -> WorkerSnapshot {
        WorkerSnapshot {
            rx: self.rx + o.rx,
            tx: self.tx + o.tx,
            tx_full: self.tx_full + o.tx_full,
            idle_sleeps: self.idle_sleeps + o.idle_sleeps,
        }
    }
}

/// Exponential idle back-off: after `polls_before_sleep` empty polls in a
/// row, sleep 1 µs, then double each time up to `max_us`. Traffic resets
/// it. Poll-mode workers would otherwise burn a core each while idle.
#[derive(Debug, Clone)]
pub struct IdleBackoff {
    polls_before_sleep: u32,
    max_us: u32,
    empty: u32,
    next_us: u32,
}

impl IdleBackoff {
    pub fn new(polls_before_sleep: u32, max_us: u32) -> Self {
        IdleBackoff { polls_before_sleep, max_us, empty: 0, next_us: 1 }
    }

    /// Call after each poll round with whether anything arrived; returns how
    /// long to sleep now (None: keep polling).
    #[inline]
    pub fn after_poll(&mut self, got_packets: bool) -> Option<std::time::Duration> {
        if got_packets {
            self.empty = 0;
            self.next_us = 1;
            return None;
        }
        if self.max_us == 0 {
            return None;
        }
        self.empty = self.empty.saturating_add(1);
        if self.empty < self.polls_before_sleep {
            return None;
        }
        let us = self.next_us;
        self.next_us = (self.next_us.saturating_mul(2)).min(self.max_us);
        Some(std::time::Duration::from_micros(us as u64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn backoff_doubles_to_the_cap_and_resets_on_traffic() {
        let mut b = IdleBackoff::new(3, 8);
        assert_eq!(b.after_poll(false), None);
        assert_eq!(b.after_poll(false), None);
        let sleeps: Vec<_> = (0..6).map(|_| b.after_poll(false).unwrap()).collect();
        let us = |n| Duration::from_micros(n);
        assert_eq!(sleeps, vec![us(1), us(2), us(4), us(8), us(8), us(8)]);
        assert_eq!(b.after_poll(true), None);
        assert_eq!(b.after_poll(false), None);
        assert_eq!(b.after_poll(false), None);
        assert_eq!(b.after_poll(false), Some(us(1)));
    }

    #[test]
    fn zero_cap_never_sleeps() {
        let mut b = IdleBackoff::new(0, 0);
        assert!((0..1000).all(|_| b.after_poll(false).is_none()));
    }

    #[test]
    fn counters_publish_and_snapshot() {
        let c = WorkerCounters::default();
        let s = WorkerSnapshot { rx: 5, tx: 4, tx_full: 1, idle_sleeps: 9 };
        c.publish(&s);
        assert_eq!(c.snapshot(), s);
        assert_eq!((s + s).rx, 10);
        assert_eq!(std::mem::align_of::<WorkerCounters>(), 64);
    }
}
