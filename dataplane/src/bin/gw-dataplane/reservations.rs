//! Sequence-number reservations of outbound SAs, kept in a journal file
//! (`seq.state` in the control directory) so that a restarted dataplane
//! starts every SA past any number it may have sent (RFC 4303 3.3.3; with
//! GCM a repeated number under one key is fatal).
//!
//! The file is append-only: `spi seq` per line, the highest seq of an SPI
//! counts. Appending a line costs one small write into the page cache; an
//! SA gateway with churn would otherwise rewrite (and, on ext4, flush) a
//! whole file for every new SA. Once the journal holds many more lines than
//! there are live SAs it is compacted: rewritten with the live SAs only, to
//! a temporary file renamed over it, so a crash leaves the old or the new
//! journal. A line cut short by a crash has no newline and is ignored.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use rustc_hash::{FxHashMap, FxHashSet};

/// Sequence numbers reserved ahead of use per outbound SA, and how close
/// use may come to the reservation before it is renewed.
pub const RESERVE_AHEAD: u64 = 1 << 20;
pub const RENEW_BELOW: u64 = 1 << 19;

/// Compact when the journal has this many lines more than twice the
/// number of live SAs.
const COMPACT_SLACK: usize = 1024;

pub struct SeqReservations {
    path: PathBuf,
    journal: Option<File>,
    reserved: FxHashMap<u32, u64>,
    lines: usize,
}

impl SeqReservations {
    /// Reads what a previous run left (nothing if the file is missing).
    pub fn open(path: &Path) -> SeqReservations {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let (reserved, lines) = parse(&text);
        let journal = OpenOptions::new().create(true).append(true).open(path).ok();
        SeqReservations { path: path.to_path_buf(), journal, reserved, lines }
    }

    /// Sequence numbers to start each outbound SPI above.
    pub fn floors(&self) -> FxHashMap<u32, u64> {
        self.reserved.clone()
    }

    /// Renews the reservation of every SA (SPI, numbers used so far) that
    /// has come within [`RENEW_BELOW`] of it, a new SA included. `complete`
    /// says that `sas` is every SA there is (the control plane has synced):
    /// only then may the journal forget the others when it is compacted.
    pub fn renew(&mut self, sas: impl Iterator<Item = (u32, u64)> + Clone, complete: bool) {
        let mut add = String::new();
        for (spi, used) in sas.clone() {
            let r = self.reserved.entry(spi).or_insert(0);
            if used + RENEW_BELOW > *r {
                *r = used + RESERVE_AHEAD;
                add.push_str(&format!("{spi} {}\n", *r));
                self.lines += 1;
            }
        }
        if add.is_empty() {
            return;
        }
        if complete && self.lines > 2 * sas.clone().count() + COMPACT_SLACK {
            let live: FxHashSet<u32> = sas.map(|(spi, _)| spi).collect();
            self.reserved.retain(|spi, _| live.contains(spi));
            self.compact();
        } else if let Some(f) = self.journal.as_mut() {
            // One write(2) of whole lines: a crash leaves them, or a cut-off
            // last line that reading ignores.
            let _ = f.write_all(add.as_bytes());
        }
    }

    fn compact(&mut self) {
        let tmp = self.path.with_extension("tmp");
        let text: String = self.reserved.iter().map(|(s, q)| format!("{s} {q}\n")).collect();
        if std::fs::write(&tmp, &text).is_ok() && std::fs::rename(&tmp, &self.path).is_ok() {
            self.lines = self.reserved.len();
            self.journal = OpenOptions::new().append(true).open(&self.path).ok();
        } else if let Some(f) = self.journal.as_mut() {
            // Compaction failed: the journal still has to carry everything.
            let _ = f.write_all(text.as_bytes());
            self.lines += self.reserved.len();
        }
    }
}

/// The highest reservation per SPI, and the number of complete lines.
fn parse(text: &str) -> (FxHashMap<u32, u64>, usize) {
    let mut r: FxHashMap<u32, u64> = FxHashMap::default();
    let mut lines = 0;
    for l in text.split_inclusive('\n').filter(|l| l.ends_with('\n')) {
        let Some((a, b)) = l.trim_end().split_once(' ') else { continue };
        let (Ok(spi), Ok(seq)) = (a.parse::<u32>(), b.parse::<u64>()) else { continue };
        lines += 1;
        let e = r.entry(spi).or_insert(0);
        *e = (*e).max(seq);
    }
    (r, lines)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_highest_reservation_counts_and_a_cut_line_is_ignored() {
        let (r, n) = parse("7 100\n7 300\n9 50\n7 200\nbad line\n9 99999");
        assert_eq!(r.get(&7), Some(&300));
        assert_eq!(r.get(&9), Some(&50), "the last line has no newline: cut off by a crash");
        assert_eq!(n, 4);
    }

    /// A journal path in a fresh directory (kept while the guard lives).
    fn journal_path() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("seq.state");
        (dir, p)
    }

    #[test]
    fn a_restart_starts_past_every_number_used() {
        let (_dir, p) = journal_path();
        let mut s = SeqReservations::open(&p);
        s.renew([(1, 0), (2, 0)].into_iter(), true);
        assert_eq!(s.floors().get(&1), Some(&RESERVE_AHEAD));
        // SA 1 nears its reservation: renewed; SA 2 is far from it.
        s.renew([(1, RESERVE_AHEAD - 10), (2, 5)].into_iter(), true);
        let again = SeqReservations::open(&p);
        assert_eq!(again.floors().get(&1), Some(&(2 * RESERVE_AHEAD - 10)));
        assert_eq!(again.floors().get(&2), Some(&RESERVE_AHEAD));
    }

    #[test]
    fn churn_keeps_the_journal_small_once_synced() {
        let (_dir, p) = journal_path();
        let mut s = SeqReservations::open(&p);
        // 20,000 SAs come and go, ten alive at a time.
        for spi in 0..20_000u32 {
            s.renew((spi.saturating_sub(9)..=spi).map(|x| (x, 0)), true);
        }
        assert!(s.lines <= 2 * 10 + COMPACT_SLACK + 1, "{} lines", s.lines);
        let again = SeqReservations::open(&p);
        for spi in 19_991..20_000 {
            assert_eq!(again.floors().get(&spi), Some(&RESERVE_AHEAD), "live SA {spi} kept");
        }
        assert!(again.floors().len() < 2 * COMPACT_SLACK, "gone SAs forgotten");
    }

    #[test]
    fn nothing_is_forgotten_before_the_control_plane_has_synced() {
        let (_dir, p) = journal_path();
        let mut s = SeqReservations::open(&p);
        for spi in 0..3000u32 {
            s.renew(std::iter::once((spi, 0)), false);
        }
        assert_eq!(SeqReservations::open(&p).floors().len(), 3000);
    }
}
