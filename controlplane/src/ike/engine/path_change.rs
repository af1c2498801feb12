//! Choosing a new path without the operator (RFC 4555 3.5, 3.10; MOBIKE-X
//! 7.4, 7.6): the initiator moves when its address on the path goes away
//! and when the path stops answering.
//!
//! ```text
//! our address gone (a port's link down, an address removed):
//!   the IKE SA on it  -->  UPDATE_SA_ADDRESSES from another of ours
//!   (MOBIKE-X: OLD = the lost one, NEW = the other; multihomed child SAs
//!   already send on their next path in the dataplane)
//!   only a child SA's second path on it  -->  REMOVE_SA_ADDRESS (MOBIKE-X)
//! retransmissions exhausted on the path:
//!   the request again on the next pair (our addresses x the peer's
//!   announced ones), a few tries each; once one answers,
//!   UPDATE_SA_ADDRESSES from there (3.10)
//! ```
//!
//! Our usable addresses come from the daemon: the dataplane's ports with
//! their links up, or the kernel's interfaces (netlink).

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use super::sa::{Core, Established, IkeState, MobikexOp, Task};
use super::{Engine, MoveReason};
use crate::mobikex::{ActionKind, Version};

/// Tries of a request on each other path before the next (3.10 leaves the
/// policy to us: the first path had `retransmit_tries`).
pub(super) const TRIES_PER_PATH: u32 = 2;

impl Engine {
    /// Our usable addresses are now `addrs`. Initiator IKE SAs with MOBIKE
    /// whose address is gone move to another of ours; MOBIKE-X child SAs
    /// lose the paths on it. Returns the moves started.
    pub fn local_addresses(&mut self, now: Instant, addrs: &[IpAddr]) -> usize {
        self.local_addrs = Some(addrs.to_vec());
        let mut spis: Vec<u64> = self
            .sas
            .iter()
            .filter(|(_, s)| s.core.mobike_initiator && s.state() == IkeState::Established)
            .filter(|(_, s)| s.established().is_some_and(|e| e.mobike.is_some()))
            .map(|(k, _)| *k)
            .collect();
        spis.sort_unstable();
        let mut n = 0;
        for s in spis {
            let sa = &self.sas[&s];
            let (conn, local) = (sa.core.conn, sa.core.local.ip());
            let mobikex = sa.established().and_then(|e| e.mobike.as_ref()).map(|m| m.version) == Some(Version::MobikeX);
            if !addrs.contains(&local) {
                if let Some(new) = self.other_local(conn, local, addrs) {
                    self.queue(now, s, Task::MobikeUpdate(new, MoveReason::AddressLost));
                    n += 1;
                }
                continue;
            }
            // A Clone IKE SA layout (RFC 7791 Appendix B): an IKE SA away
            // from its interface goes back once that is usable again.
            let c = &self.conns[conn];
            let home = sa.established().and_then(|e| e.home).or(c.local).filter(|_| !c.interfaces.is_empty());
            if let Some(h) = home.filter(|h| *h != local && addrs.contains(h)) {
                self.queue(now, s, Task::MobikeUpdate(h, MoveReason::HomeAgain));
                n += 1;
                continue;
            }
            if !mobikex {
                continue;
            }
            // A child SA's other path whose address of ours went.
            let mut lost: Vec<(IpAddr, u32)> = Vec::new();
            for c in sa.children() {
                for (l, _) in &c.paths {
                    if !addrs.contains(l) && *l != local {
                        lost.push((*l, c.spi_in));
                    }
                }
            }
            lost.sort_unstable();
            lost.dedup();
            let mut by_addr: Vec<(IpAddr, Vec<u32>)> = Vec::new();
            for (a, spi) in lost {
                match by_addr.iter_mut().find(|(x, _)| *x == a) {
                    Some((_, v)) => v.push(spi),
                    None => by_addr.push((a, vec![spi])),
                }
            }
            for (addr, children) in by_addr {
                let op = MobikexOp { kind: ActionKind::Remove, addr, old: None, children, check: false };
                self.queue(now, s, Task::Mobikex(op));
            }
        }
        self.reschedule();
        n
    }

    /// Another address of ours for connection `conn` to move to from
    /// `gone`: its configured address, then the ones it announces, then
    /// any, of the same family and usable now.
    fn other_local(&self, conn: usize, gone: IpAddr, addrs: &[IpAddr]) -> Option<IpAddr> {
        let c = &self.conns[conn];
        let any = addrs.iter().filter(|a| !inner_address(c, a));
        c.local
            .iter()
            .chain(c.additional_addresses.iter())
            .chain(any)
            .copied()
            .find(|a| *a != gone && a.is_ipv4() == gone.is_ipv4() && addrs.contains(a))
    }

    /// The path of `sa` stopped answering (3.10): the next pair of
    /// addresses to retransmit on, ours and the peer's, not tried yet.
    /// None when there is none (the IKE SA is then given up) or MOBIKE
    /// cannot move it.
    pub(super) fn next_path(&self, sa: &Core, est: &mut Established) -> Option<(SocketAddr, SocketAddr)> {
        if !sa.mobike_initiator {
            return None;
        }
        let m = est.mobike.as_mut()?;
        let here = (sa.local.ip(), sa.remote.ip());
        if !m.tried.contains(&here) {
            m.tried.push(here);
        }
        let fam = |a: &IpAddr| a.is_ipv4() == here.0.is_ipv4();
        let c = &self.conns[sa.conn];
        let mut ours: Vec<IpAddr> = vec![here.0];
        let known = self.local_addrs.clone();
        let usable = |a: &IpAddr| known.as_ref().is_none_or(|k| k.contains(a));
        let any = known.iter().flatten().filter(|a| !inner_address(c, a));
        for a in c.local.iter().chain(&c.interfaces).chain(&c.additional_addresses).chain(any) {
            if fam(a) && usable(a) && !ours.contains(a) {
                ours.push(*a);
            }
        }
        let mut theirs: Vec<IpAddr> = vec![here.1];
        for a in c.remote.iter().chain(&m.peer_addresses) {
            if fam(a) && !theirs.contains(a) {
                theirs.push(*a);
            }
        }
        let next = theirs
            .iter()
            .flat_map(|r| ours.iter().map(move |l| (*l, *r)))
            .filter(|p| usable(&p.0))
            .find(|p| !m.tried.contains(p))?;
        m.tried.push(next);
        if m.left.is_none() {
            m.left = Some((sa.local, sa.remote));
        }
        Some((SocketAddr::new(next.0, sa.local.port()), SocketAddr::new(next.1, sa.remote.port())))
    }

    /// The path of `sa` stopped answering and we are MOBIKE's responder:
    /// the initiator, not us, looks for another path (3.10), and it starts
    /// when its own retransmissions run out, as ours do. True (once per
    /// failure) to retransmit a path's worth of tries more before giving
    /// up, so its move can reach us.
    pub(super) fn wait_for_initiator(&self, sa: &Core, est: &mut Established) -> bool {
        let Some(m) = est.mobike.as_mut().filter(|_| !sa.mobike_initiator) else { return false };
        let here = (sa.local.ip(), sa.remote.ip());
        if m.tried.contains(&here) {
            return false;
        }
        m.tried.push(here);
        true
    }

    /// A response came: the path works. After a failover to it, announce
    /// it (3.10: UPDATE_SA_ADDRESSES from there, before anything else).
    pub(super) fn path_answered(&mut self, sa: &mut Core, est: &mut Established) {
        let Some(m) = est.mobike.as_mut() else { return };
        m.tried.clear();
        if let Some(left) = m.left.take() {
            sa.w.tasks.push_front(Task::MobikeAnnounce(left, MoveReason::PathFailed));
            self.touched.push(sa.our_spi());
        }
    }
}

/// Whether `a` lies in what a tunnel-mode child SA of `c` protects on our
/// side: an inner address (a LAN port's), which carries no IKE to the peer
/// (it would be routed into the tunnel). Addresses the connection names
/// (`local`, `interfaces`, `additional_addresses`) are taken as given.
fn inner_address(c: &crate::ike::Connection, a: &IpAddr) -> bool {
    c.children.iter().filter(|k| !k.transport).any(|k| crate::ike::ts::covers(&k.local_ts, *a))
}
