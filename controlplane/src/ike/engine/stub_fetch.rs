//! Stubs fetched from the stub bank (draft-xu-ike-sa-sync 3.4 item 1): a
//! SYN whose stub is not in the local table waits, `stub_fetch_wait` at
//! most, while the daemon asks the bank (`Output::Stub(StubOp::Fetch)`).
//! The answer (`stub_fetched`) or the end of the wait takes the
//! IKE_SA_INIT up again: a rebuild when the stub came, the full exchange
//! when it did not (a bank that is down or slow costs the client one full
//! exchange, never the SA). Retransmissions of a waiting SYN are dropped;
//! at most `MAX_WAITING` SYNs wait, the rest get the full exchange at once.

use std::net::SocketAddr;
use std::time::Instant;

use rustc_hash::FxHashMap;

use super::{Engine, Output};
use crate::stub::{IkeSaStub, StubIndex, StubOp};
use crate::wire::Header;

/// SYNs waiting at most at once for the bank.
pub const MAX_WAITING: usize = 65_536;

/// One SYN's IKE_SA_INIT, kept while its stub is fetched.
#[derive(Debug)]
struct Waiting {
    until: Instant,
    local: SocketAddr,
    remote: SocketAddr,
    ike: Vec<u8>,
}

/// The SYNs waiting for their stub, and the one being taken up again.
#[derive(Debug, Default)]
pub(super) struct Fetching {
    waiting: FxHashMap<StubIndex, Waiting>,
    /// Deadlines in the order they were set (the wait is one length, so
    /// this is their order in time); entries of SYNs answered are stale.
    queue: std::collections::VecDeque<(Instant, StubIndex)>,
    /// Set while a SYN is taken up again: it does not wait a second time.
    settled: Option<StubIndex>,
}

impl Engine {
    /// Responder: a SYN names `index`, which the local table lacks. True
    /// when it now waits for the bank (or is a retransmission of one that
    /// does); false to go on with the full exchange.
    pub(super) fn fetch_for_syn(
        &mut self,
        now: Instant,
        index: StubIndex,
        (local, remote): (SocketAddr, SocketAddr),
        ike: &[u8],
    ) -> bool {
        let Some(wait) = self.settings.stub_fetch_wait else { return false };
        if self.fetching.settled == Some(index) {
            return false;
        }
        if self.fetching.waiting.contains_key(&index) {
            return true;
        }
        if self.fetching.waiting.len() >= MAX_WAITING {
            return false;
        }
        self.fetching.waiting.insert(index, Waiting { until: now + wait, local, remote, ike: ike.to_vec() });
        self.fetching.queue.push_back((now + wait, index));
        self.stats.stub_fetches += 1;
        self.out.push_back(Output::Stub(StubOp::Fetch(index)));
        true
    }

    /// The bank's answer for `index`: its stub, or None (not held, the
    /// bank unreachable). The SYN that waited for it is answered now. A
    /// stub nobody waits for (any more) is dropped: the bank handed it
    /// out once, and the SYN it was for has had its full exchange.
    pub fn stub_fetched(&mut self, now: Instant, index: StubIndex, stub: Option<IkeSaStub>) {
        let Some(w) = self.fetching.waiting.remove(&index) else { return };
        match stub {
            Some(s) if s.index == index => {
                self.stats.stubs_fetched += 1;
                self.stubs.insert(index, Box::new(s));
            }
            _ => self.stats.stub_fetch_missed += 1,
        }
        self.fetching.settled = Some(index);
        if let Ok(h) = Header::parse(&w.ike) {
            self.init_request(now, w.local, w.remote, &w.ike, h);
        }
        self.fetching.settled = None;
        self.reschedule();
    }

    /// SYNs waiting for the bank.
    pub fn stub_fetches_waiting(&self) -> usize {
        self.fetching.waiting.len()
    }

    /// When the first waiting SYN stops waiting.
    /// (Stale entries make it early, never late.)
    pub(super) fn fetch_deadline(&self) -> Option<Instant> {
        self.fetching.queue.front().map(|(t, _)| *t)
    }

    /// SYNs whose wait is over get the full exchange.
    pub(super) fn fetch_timeout(&mut self, now: Instant) {
        while let Some(&(t, i)) = self.fetching.queue.front() {
            if t > now {
                break;
            }
            self.fetching.queue.pop_front();
            if self.fetching.waiting.get(&i).is_some_and(|w| w.until == t) {
                self.stub_fetched(now, i, None);
            }
        }
    }
}
