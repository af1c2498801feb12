//! What an operator (gwctl, the daemon) asks of the engine: bring a
//! connection or one of its child SAs up, take it down, rekey it, send a
//! notify by hand. Each call queues the exchange on the IKE SA's window
//! (RFC 7296 2.3) and returns how many IKE SAs it concerns.
//!
//! ```text
//! initiate NAME                 -->  IKE_SA_INIT, IKE_AUTH (first child), CREATE_CHILD_SA (the others)
//! initiate NAME --child CHILD   -->  CREATE_CHILD_SA { SA, Ni, [KEi], TSi, TSr }
//! terminate NAME                -->  INFORMATIONAL { D(IKE) }
//! rekey NAME [--ike]            -->  CREATE_CHILD_SA { [N(REKEY_SA)], SA, Ni, KEi, ... }
//! move NAME --local ADDR        -->  INFORMATIONAL { N(UPDATE_SA_ADDRESSES), NAT-D, N(COOKIE2) }
//! ```

use std::net::IpAddr;
use std::time::Instant;

use rustc_hash::FxHashSet;

use super::sa::{ChildState, IkeSa, IkeState, Task};
use super::{Engine, Error, MoveReason};
use crate::wire::Payload;

impl Engine {
    /// Starts an IKE SA for connection `name` (initiator), with its first
    /// child SA; its other `auto` child SAs follow once it is up.
    pub fn initiate(&mut self, now: Instant, name: &str) -> Result<(), Error> {
        let r = self.conn_index(name).and_then(|ci| self.send_first_init(now, ci));
        self.reschedule();
        r
    }

    /// Opens child `child` of connection `name` on its established IKE SA
    /// (CREATE_CHILD_SA, RFC 7296 1.3.1), or starts the IKE SA when there
    /// is none. Returns the number of IKE SAs asked.
    pub fn initiate_child(&mut self, now: Instant, name: &str, child: &str) -> Result<usize, Error> {
        let r = self.initiate_child_inner(now, name, child);
        self.reschedule();
        r
    }

    /// Connection `name` and its child config `child`, by index.
    fn child_index(&self, name: &str, child: &str) -> Result<(usize, usize), Error> {
        let ci = self.conn_index(name)?;
        let k = self.conns[ci]
            .children
            .iter()
            .position(|c| c.name == child)
            .ok_or_else(|| Error::NoChild { conn: name.into(), child: child.into() })?;
        Ok((ci, k))
    }

    fn initiate_child_inner(&mut self, now: Instant, name: &str, child: &str) -> Result<usize, Error> {
        let (ci, k) = self.child_index(name, child)?;
        let spis = self.established_of(ci);
        if spis.is_empty() {
            self.send_first_init(now, ci)?;
            return Ok(0);
        }
        let up = |sa: &IkeSa| sa.children().iter().any(|c| c.cfg == k && c.state == ChildState::Installed);
        if spis.iter().filter_map(|s| self.sa(s)).any(up) {
            return Err(Error::ChildUp(name.into(), child.into()));
        }
        for s in &spis {
            self.queue(now, *s, Task::CreateChild(k));
        }
        Ok(spis.len())
    }

    /// Opens child `child` of connection `name` on its established IKE
    /// SAs with `extra` payloads after the request's own (for tools and
    /// tests: a notify where it does not belong). Returns the IKE SAs asked.
    pub fn create_child_with(
        &mut self,
        now: Instant,
        name: &str,
        child: &str,
        extra: Vec<Payload>,
    ) -> Result<usize, Error> {
        let (ci, k) = self.child_index(name, child)?;
        let spis = self.established_of(ci);
        for s in &spis {
            self.queue(now, *s, Task::CreateChildWith(k, extra.clone()));
        }
        self.reschedule();
        Ok(spis.len())
    }

    /// Sends `payloads` in an INFORMATIONAL request on every established IKE
    /// SA of connection `name` (for tools and tests: a notify by hand).
    pub fn send_informational(&mut self, now: Instant, name: &str, payloads: Vec<Payload>) -> Result<usize, Error> {
        let spis = self.established_of(self.conn_index(name)?);
        for s in &spis {
            self.queue(now, *s, Task::Informational(payloads.clone()));
        }
        self.reschedule();
        Ok(spis.len())
    }

    /// Our SPIs of the established IKE SAs of connection `ci`.
    pub(super) fn established_of(&self, ci: usize) -> Vec<u64> {
        let mut v: Vec<u64> = self
            .sas
            .iter()
            .filter(|(_, s)| s.core.conn == ci && s.state() == IkeState::Established)
            .map(|(k, _)| *k)
            .collect();
        v.sort_unstable();
        v
    }

    /// Deletes every IKE SA of connection `name` (INFORMATIONAL Delete).
    pub fn terminate(&mut self, now: Instant, name: &str) -> Result<usize, Error> {
        let ci = self.conn_index(name)?;
        Ok(self.terminate_conn(now, ci))
    }

    /// Deletes connection `ci`'s IKE SAs and forgets its IKE_SA_INITs in
    /// flight; how many.
    pub(super) fn terminate_conn(&mut self, now: Instant, ci: usize) -> usize {
        let mut spis: Vec<u64> = self.sas.iter().filter(|(_, s)| s.core.conn == ci).map(|(k, _)| *k).collect();
        spis.sort_unstable();
        for s in &spis {
            self.queue(now, *s, Task::DeleteIke);
        }
        // An IKE_SA_INIT still unanswered is just forgotten.
        let waiting: Vec<u64> = self.connecting.iter().filter(|(_, c)| c.conn == ci).map(|(k, _)| *k).collect();
        for s in &waiting {
            self.connecting.remove(s);
        }
        self.reschedule();
        spis.len() + waiting.len()
    }

    /// Rekeys the IKE SA (`ike`) or every child SA of connection `name`.
    pub fn rekey(&mut self, now: Instant, name: &str, ike: bool) -> Result<usize, Error> {
        let mut n = 0;
        for s in self.established_of(self.conn_index(name)?) {
            if ike {
                self.queue(now, s, Task::RekeyIke);
                n += 1;
            } else {
                let kids: Vec<u32> = self.sas[&s]
                    .children()
                    .iter()
                    .filter(|c| c.state == ChildState::Installed)
                    .map(|c| c.spi_in)
                    .collect();
                for k in kids {
                    self.queue(now, s, Task::RekeyChild(k));
                    n += 1;
                }
            }
        }
        self.reschedule();
        Ok(n)
    }

    /// Moves the IKE SAs of connection `name` (ours as their original
    /// initiator, with MOBIKE) and their child SAs to our address `local`
    /// (RFC 4555 3.5). The daemon logs the move when the peer answers.
    pub fn move_to(&mut self, now: Instant, name: &str, local: IpAddr) -> Result<usize, Error> {
        let spis: Vec<u64> = self
            .established_of(self.conn_index(name)?)
            .into_iter()
            .filter(|s| {
                self.sas
                    .get(s)
                    .is_some_and(|sa| sa.core.mobike_initiator && sa.established().is_some_and(|e| e.mobike.is_some()))
            })
            .collect();
        if spis.is_empty() {
            return Err(Error::CannotMove(name.into()));
        }
        for s in &spis {
            self.queue(now, *s, Task::MobikeUpdate(local, MoveReason::OurUpdate));
        }
        self.reschedule();
        Ok(spis.len())
    }

    /// Starts every initiator connection that has no IKE SA.
    pub fn start_initiators(&mut self, now: Instant) {
        let busy: FxHashSet<usize> =
            self.sas.values().map(|s| s.core.conn).chain(self.connecting.values().map(|c| c.conn)).collect();
        let idle: Vec<usize> =
            (0..self.conns.len()).filter(|i| self.conns[*i].is_initiator() && !busy.contains(i)).collect();
        for ci in idle {
            let _ = self.send_first_init(now, ci);
        }
        self.reschedule();
    }
}
