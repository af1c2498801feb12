//! The inbound anti-replay window (RFC 4303 3.4.3) with extended sequence
//! numbers (RFC 4303 Appendix A), kept as a ring of 64-bit blocks as in
//! RFC 6479 so that sliding the window costs at most one cleared word per
//! 64 sequence numbers.
//!
//! Check before decrypting, mark only after the ICV verified (an attacker
//! must not be able to move the window with forged packets).

/// Largest window a configuration may ask for.
pub const MAX_WINDOW: u32 = 65536;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayError {
    /// Sequence number 0 without ESN: never sent (RFC 4303 3.3.3).
    Zero,
    /// Left of the window.
    TooOld,
    /// Seen already.
    Duplicate,
}

#[derive(Debug, Clone)]
pub struct ReplayWindow {
    /// Window size W in packets; 0 turns checking off (the sequence number
    /// is still reconstructed for ESN).
    size: u64,
    esn: bool,
    /// Highest sequence number accepted so far (0: none yet).
    top: u64,
    /// Bit i of the ring = sequence number (block*64 + bit) seen.
    blocks: Box<[u64]>,
}

impl ReplayWindow {
    /// A window of `size` packets (0 = no replay check).
    pub fn new(size: u32, esn: bool) -> ReplayWindow {
        let size = size.min(MAX_WINDOW) as u64;
        // One block more than the window needs, so the block being cleared
        // never holds a bit still inside the window.
        let nblocks = if size == 0 { 1 } else { (size as usize).div_ceil(64) + 1 };
        ReplayWindow { size, esn, top: 0, blocks: vec![0; nblocks.next_power_of_two()].into_boxed_slice() }
    }

    pub fn size(&self) -> u32 {
        self.size as u32
    }

    /// Highest sequence number accepted.
    pub fn top(&self) -> u64 {
        self.top
    }

    /// The full 64-bit sequence number for the 32 bits on the wire (RFC
    /// 4303 A2.1); without ESN just the 32 bits.
    pub fn infer(&self, seq_low: u32) -> u64 {
        if !self.esn {
            return seq_low as u64;
        }
        let w = self.size.max(1);
        let tl = self.top as u32;
        let th = self.top >> 32;
        let bottom = tl.wrapping_sub((w - 1) as u32);
        let hi = if (tl as u64) >= w - 1 {
            // Case A: the window does not span a wrap of the low half.
            if seq_low >= bottom {
                th
            } else {
                th + 1
            }
        } else if seq_low >= bottom {
            // Case B: the window spans the wrap; this is left of it.
            th.wrapping_sub(1)
        } else {
            th
        };
        if hi > u32::MAX as u64 {
            // Only when top's high half is 0 and the number belongs to the
            // "previous" epoch, which does not exist: treat as epoch 0.
            return seq_low as u64;
        }
        (hi << 32) | seq_low as u64
    }

    /// Checks `seq_low` against the window; returns the full sequence
    /// number to authenticate with (and later [`ReplayWindow::accept`]).
    #[inline]
    pub fn check(&self, seq_low: u32) -> Result<u64, ReplayError> {
        let seq = self.infer(seq_low);
        if seq == 0 {
            return Err(ReplayError::Zero);
        }
        if self.size == 0 || seq > self.top {
            return Ok(seq);
        }
        if self.top - seq >= self.size {
            return Err(ReplayError::TooOld);
        }
        let (b, bit) = self.slot(seq);
        if self.blocks[b] & (1 << bit) != 0 {
            return Err(ReplayError::Duplicate);
        }
        Ok(seq)
    }

    /// Marks `seq` (from a successful [`ReplayWindow::check`] whose packet
    /// then authenticated) as received, sliding the window if it is new.
    #[inline]
    pub fn accept(&mut self, seq: u64) {
        if self.size == 0 {
            self.top = self.top.max(seq);
            return;
        }
        if seq > self.top {
            let n = self.blocks.len() as u64;
            let old_block = self.top / 64;
            let new_block = seq / 64;
            // Clear every block the window slides into (at most all).
            let steps = (new_block - old_block).min(n);
            for i in 1..=steps {
                let idx = ((old_block + i) % n) as usize;
                self.blocks[idx] = 0;
            }
            self.top = seq;
        }
        let (b, bit) = self.slot(seq);
        self.blocks[b] |= 1 << bit;
    }

    #[inline]
    fn slot(&self, seq: u64) -> (usize, u32) {
        let n = self.blocks.len() as u64;
        (((seq / 64) % n) as usize, (seq % 64) as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    /// The obvious model: a set of accepted numbers and the top.
    struct Model {
        size: u64,
        seen: BTreeSet<u64>,
        top: u64,
    }

    impl Model {
        fn check(&self, seq: u64) -> Result<u64, ReplayError> {
            if seq == 0 {
                return Err(ReplayError::Zero);
            }
            if self.size == 0 || seq > self.top {
                return Ok(seq);
            }
            if self.top - seq >= self.size {
                return Err(ReplayError::TooOld);
            }
            if self.seen.contains(&seq) {
                return Err(ReplayError::Duplicate);
            }
            Ok(seq)
        }
        fn accept(&mut self, seq: u64) {
            self.seen.insert(seq);
            self.top = self.top.max(seq);
        }
    }

    proptest! {
        /// Random walks of arrivals (forward jumps, reorders, replays): the
        /// ring bitmap agrees with the model on every packet.
        #[test]
        fn window_matches_reference_model(
            size in prop::sample::select(vec![0u32, 1, 32, 64, 65, 128, 1024, 4096]),
            steps in prop::collection::vec((0u8..4, 0u64..5000), 1..400),
        ) {
            let mut w = ReplayWindow::new(size, false);
            let mut m = Model { size: size as u64, seen: BTreeSet::new(), top: 0 };
            let mut last = 1u64;
            for (kind, d) in steps {
                let seq = match kind {
                    0 => last + d % 3,                 // in order-ish
                    1 => last + d,                     // jump ahead
                    2 => last.saturating_sub(d),       // reorder / old
                    _ => last.saturating_sub(d % 70),  // near replay
                }.min(u32::MAX as u64);
                let got = w.check(seq as u32);
                prop_assert_eq!(got, m.check(seq), "seq {} top {}", seq, m.top);
                if let Ok(s) = got {
                    w.accept(s);
                    m.accept(s);
                    last = last.max(s);
                }
            }
        }

        /// ESN reconstruction equals the brute-force answer: the unique
        /// number with those low 32 bits in [top - W + 1, top - W + 2^32].
        #[test]
        fn esn_inference_matches_brute_force(
            top in 1u64..(1u64 << 40),
            size in prop::sample::select(vec![1u32, 64, 1024]),
            low in any::<u32>(),
        ) {
            let mut w = ReplayWindow::new(size, true);
            w.accept(top);
            let lo = top.saturating_sub(size as u64 - 1);
            let want = (0..=2u64).map(|k| (((lo >> 32) + k) << 32) | low as u64)
                .find(|&v| v >= lo && v < lo + (1u64 << 32))
                .unwrap();
            prop_assert_eq!(w.infer(low), want);
        }
    }

    #[test]
    fn rfc_examples_of_esn_wrap() {
        // Window of 64 around the 2^32 boundary.
        let mut w = ReplayWindow::new(64, true);
        w.accept((1 << 32) + 10); // top: high 1, low 10 (case B)
        assert_eq!(w.infer(5), (1 << 32) + 5);
        assert_eq!(w.infer(u32::MAX - 3), u32::MAX as u64 - 3, "just left of the wrap: previous epoch");
        assert_eq!(w.infer(100), (1 << 32) + 100);
        let mut w = ReplayWindow::new(64, true);
        w.accept(u32::MAX as u64 - 5); // case A near the end of epoch 0
        assert_eq!(w.infer(2), (1 << 32) + 2, "wrapped: next epoch");
        assert_eq!(w.infer(u32::MAX - 10), u32::MAX as u64 - 10);
    }

    #[test]
    fn duplicates_old_and_zero() {
        let mut w = ReplayWindow::new(64, false);
        assert_eq!(w.check(0), Err(ReplayError::Zero));
        for s in [1, 2, 3] {
            let s = w.check(s).unwrap();
            w.accept(s);
        }
        assert_eq!(w.check(3), Err(ReplayError::Duplicate));
        w.accept(w.check(100).unwrap());
        assert_eq!(w.check(36), Err(ReplayError::TooOld));
        assert_eq!(w.check(37), Ok(37));
        assert_eq!(w.check(101), Ok(101));
        // Off: anything but zero passes, again and again.
        let w = ReplayWindow::new(0, false);
        assert_eq!(w.check(5), Ok(5));
        assert_eq!(w.check(5), Ok(5));
    }
}
