//! What the engine tells the dataplane (DESIGN.md: the cp->dp ring): the
//! SAs of each child SA, the policies that send traffic into them, the
//! whole state again after a dataplane restart; and what it hears back
//! (lifetimes, exhausted sequence numbers, Hello).
//!
//! ```text
//! child SA up        -->  InstallSa(in), InstallSa(out), SetPolicy(dst -> out)
//! child SA rekeyed   -->  InstallSa(new in, new out); the policy moves when the rekey settles
//! child SA gone      -->  DeletePolicy (or SetPolicy to the next child), DeleteSa(in, out)
//! Hello (restart)    -->  every SA and policy again, SyncDone
//! <-- Lifetime soft  ->   rekey;   hard -> delete;   SeqExhausted -> rekey
//! ```
//!
//! Policies are kept per child SA: a destination prefix that several child
//! SAs protect (two IKE SAs with the same selectors, say) goes to the
//! newest, and when that one goes, to the one before it, never to nothing
//! while another child still covers it.

use std::net::IpAddr;
use std::time::Instant;

use cpdp::msg::{Command, Direction, Lifetimes, PolicyAction, SaSpec, WirePrefix};
use std::collections::BTreeMap;

use rustc_hash::FxHashMap;
use zeroize::Zeroizing;

use super::sa::{Child, Core, Established, IkeSa, Phase, Task};
use super::{ChildGone, Engine, Event};
use crate::ike::ts;

/// For each destination prefix, the child SAs that protect it, oldest
/// first: `order` -> the child's inbound SPI, which is also the handle of
/// its outbound SA in the dataplane; the dataplane has the newest. `at`
/// finds a child's place, so every change is O(log n) however many child
/// SAs share a prefix.
#[derive(Debug, Default)]
pub(super) struct Policies {
    by_dst: FxHashMap<WirePrefix, BTreeMap<u64, u32>>,
    at: FxHashMap<(WirePrefix, u32), u64>,
    next: u64,
}

impl Policies {
    /// Room for `n` more child SAs, each on a prefix of its own.
    pub(super) fn reserve(&mut self, n: usize) {
        self.by_dst.reserve(n);
        self.at.reserve(n);
    }

    /// The handle protecting `dst` now.
    #[cfg(test)]
    fn get(&self, dst: &WirePrefix) -> Option<u32> {
        self.top(dst)
    }

    fn top(&self, dst: &WirePrefix) -> Option<u32> {
        self.by_dst.get(dst).and_then(|m| m.last_key_value()).map(|(_, c)| *c)
    }

    fn set(dst: WirePrefix, top: Option<u32>) -> Command {
        match top {
            Some(h) => Command::SetPolicy { dst, action: PolicyAction::Protect(h) },
            None => Command::DeletePolicy { dst },
        }
    }

    fn put(&mut self, dst: WirePrefix, order: u64, child: u32) {
        self.by_dst.entry(dst).or_default().insert(order, child);
        self.at.insert((dst, child), order);
    }

    fn take(&mut self, dst: WirePrefix, child: u32) -> Option<u64> {
        let order = self.at.remove(&(dst, child))?;
        if let Some(m) = self.by_dst.get_mut(&dst) {
            m.remove(&order);
            if m.is_empty() {
                self.by_dst.remove(&dst);
            }
        }
        Some(order)
    }

    /// Child `child` protects `dst` from now on (and is the newest there).
    fn add(&mut self, dst: WirePrefix, child: u32) -> Option<Command> {
        self.take(dst, child);
        self.next += 1;
        self.put(dst, self.next, child);
        Some(Self::set(dst, Some(child)))
    }

    /// `new` takes `old`'s place at `dst` (a rekey); the newest when `old`
    /// was not there and `new` is not yet. A command when the dataplane's
    /// entry changes.
    fn replace(&mut self, dst: WirePrefix, old: u32, new: u32) -> Option<Command> {
        let before = self.top(&dst);
        match self.take(dst, old) {
            Some(order) if !self.at.contains_key(&(dst, new)) => self.put(dst, order, new),
            Some(_) => {}
            None if self.at.contains_key(&(dst, new)) => return None,
            None => {
                self.next += 1;
                self.put(dst, self.next, new);
            }
        }
        let after = self.top(&dst);
        (after != before).then(|| Self::set(dst, after))
    }

    /// Child `child` no longer protects `dst`: the one before it does, or
    /// nothing.
    fn remove(&mut self, dst: WirePrefix, child: u32) -> Option<Command> {
        let before = self.top(&dst);
        self.take(dst, child)?;
        let after = self.top(&dst);
        (after != before).then(|| Self::set(dst, after))
    }

    fn all(&self) -> impl Iterator<Item = Command> + '_ {
        let mut v: Vec<(WirePrefix, u32)> = self.by_dst.keys().filter_map(|d| self.top(d).map(|t| (*d, t))).collect();
        v.sort_by_key(|(d, _)| (d.addr, d.len));
        v.into_iter().map(|(dst, t)| Self::set(dst, Some(t)))
    }
}

fn prefixes(c: &Child) -> impl Iterator<Item = WirePrefix> + '_ {
    c.ts_remote.iter().flat_map(ts::to_prefixes)
}

impl Engine {
    fn spec(&self, sa: &Core, c: &Child, dir: Direction) -> SaSpec {
        let (spi, k, src, dst) = match dir {
            Direction::In => (c.spi_in, &c.keys_in, &c.ts_remote, &c.ts_local),
            Direction::Out => (c.spi_out, &c.keys_out, &c.ts_local, &c.ts_remote),
        };
        let first = first_path(sa, c);
        SaSpec {
            spi,
            // Outbound SAs are named by the child's inbound SPI: ours, so
            // unique, where peers' SPIs need not be.
            handle: c.spi_in,
            direction: dir,
            alg: c.suite.alg(),
            enc_key: Zeroizing::new(k.0.as_slice().to_vec()),
            auth_key: Zeroizing::new(k.1.as_slice().to_vec()),
            local: first.0,
            remote: first.1,
            natt: sa.nat.then_some((sa.local.port(), sa.remote.port())),
            esn: c.suite.esn,
            replay_window: self.settings.replay_window,
            seq: 0,
            inner_src: src.iter().flat_map(ts::to_prefixes).collect(),
            inner_dst: dst.iter().flat_map(ts::to_prefixes).collect(),
            lifetime: Lifetimes::default(),
            paths: match dir {
                Direction::Out if c.paths.len() > 1 => c.paths[1..].to_vec(),
                _ => Vec::new(),
            },
            transport: c.transport,
        }
    }

    /// Tells the dataplane child `c`'s outer address pairs (MOBIKE-X
    /// multihoming) or, following the IKE SA, its one path.
    pub(super) fn send_paths(&mut self, sa: &Core, c: &Child) {
        let natt = sa.nat.then_some((sa.local.port(), sa.remote.port()));
        let paths = child_paths(sa, c);
        self.dp(Command::UpdateSaAddresses {
            spi: c.spi_in,
            direction: Direction::In,
            local: paths[0].0,
            remote: paths[0].1,
            natt,
        });
        self.dp(Command::SetSaPaths { spi: c.spi_in, paths, natt });
    }

    /// After the IKE SA moved: transport-mode child SAs' selectors are its
    /// addresses, so they move too. The dataplane moved each one's policy
    /// with its `UpdateSaAddresses` (in the same step, no packet between);
    /// here the record of it follows, with nothing more to send.
    pub(super) fn move_transport_children(&mut self, sa: &Core, est: &mut Established) {
        for c in est.children.iter_mut().filter(|c| c.transport) {
            let (here, there) = first_path(sa, c);
            let (l, r) = (vec![ts::host(here)], vec![ts::host(there)]);
            if c.ts_remote == r && c.ts_local == l {
                continue;
            }
            for d in c.ts_remote.iter().flat_map(ts::to_prefixes) {
                let _ = self.policies.remove(d, c.spi_in);
            }
            c.ts_local = l;
            c.ts_remote = r.clone();
            for d in r.iter().flat_map(ts::to_prefixes) {
                let _ = self.policies.add(d, c.spi_in);
            }
        }
    }

    pub(super) fn install_child(&mut self, sa: &Core, c: &Child) {
        self.dp(Command::InstallSa(self.spec(sa, c, Direction::In)));
        self.dp(Command::InstallSa(self.spec(sa, c, Direction::Out)));
        // A rekey's new SA takes the policy over once the rekey settles.
        if c.rekey_of.is_none() {
            for d in prefixes(c) {
                if let Some(x) = self.policies.add(d, c.spi_in) {
                    self.dp(x);
                }
            }
        }
        self.child_up_event(sa, c);
    }

    /// Child `new_in` takes over the policies of child `old_in` (a rekey).
    pub(super) fn switch_policy(&mut self, est: &Established, old_in: u32, new_in: u32) {
        let Some(c) = est.children.iter().find(|c| c.spi_in == new_in) else { return };
        let cmds: Vec<Command> = prefixes(c).filter_map(|d| self.policies.replace(d, old_in, new_in)).collect();
        cmds.into_iter().for_each(|x| self.dp(x));
    }

    pub(super) fn uninstall_child(&mut self, sa: &Core, c: &Child, why: ChildGone) {
        // A rekey's responder: the child replacing this one takes its
        // policies now, if the grace period has not moved them already.
        let mut cmds: Vec<Command> = match c.successor {
            Some((new, _)) => prefixes(c).filter_map(|d| self.policies.replace(d, c.spi_in, new)).collect(),
            None => Vec::new(),
        };
        cmds.extend(prefixes(c).filter_map(|d| self.policies.remove(d, c.spi_in)));
        cmds.into_iter().for_each(|x| self.dp(x));
        self.dp(Command::DeleteSa { spi: c.spi_in, direction: Direction::In });
        self.dp(Command::DeleteSa { spi: c.spi_in, direction: Direction::Out });
        let conn = self.conns[sa.conn].name.clone();
        self.event(Event::ChildDown { conn, spi_in: c.spi_in, spi_out: c.spi_out, why });
    }

    /// A restarted dataplane (ours: DESIGN.md) gets every SA, group SA
    /// (with what is left of its rollover) and policy again, then
    /// SyncDone.
    pub fn resync(&mut self, now: Instant) {
        let mut spis: Vec<&u64> = self.sas.keys().collect();
        spis.sort_unstable();
        let mut cmds = Vec::new();
        for sa in spis.into_iter().filter_map(|s| self.sa(s)) {
            for c in sa.children() {
                cmds.push(Command::InstallSa(self.spec(&sa.core, c, Direction::In)));
                cmds.push(Command::InstallSa(self.spec(&sa.core, c, Direction::Out)));
            }
        }
        // Group SAs whose lifetime is over are not sent: the group's
        // timeout removes it from our side too.
        for (name, g) in self.endpoint_groups.iter().filter(|(_, g)| g.expires > now) {
            let members = self.conns.iter().position(|c| &c.name == name).map(|ci| self.group_members(ci));
            cmds.extend(g.resync(name, &members.unwrap_or_default(), now));
        }
        cmds.extend(self.policies.all());
        cmds.push(Command::SyncDone);
        for c in cmds {
            self.dp(c);
        }
    }

    /// Dataplane events: soft lifetime -> rekey, hard -> delete, Hello ->
    /// resync.
    pub fn dataplane_event(&mut self, now: Instant, ev: &cpdp::msg::Event) {
        match ev {
            cpdp::msg::Event::Hello { .. } => self.resync(now),
            cpdp::msg::Event::Lifetime { spi, direction, kind, .. } => {
                if let Some((k, spi_in)) = self.child_by_spi(*spi, *direction) {
                    let t = match kind {
                        cpdp::msg::LifetimeKind::Soft => Task::RekeyChild(spi_in),
                        cpdp::msg::LifetimeKind::Hard => Task::DeleteChild(spi_in),
                    };
                    self.queue(now, k, t);
                }
            }
            cpdp::msg::Event::SeqExhausted { spi } => {
                if let Some((k, spi_in)) = self.child_by_spi(*spi, Direction::Out) {
                    self.queue(now, k, Task::RekeyChild(spi_in));
                }
            }
            _ => {}
        }
        self.reschedule();
    }

    /// (our IKE SPI, the child's inbound SPI) of the child SA whose SA
    /// this handle names (both directions: the inbound SPI).
    fn child_by_spi(&self, handle: u32, _dir: Direction) -> Option<(u64, u32)> {
        self.sas.iter().find_map(|(k, sa)| {
            let IkeSa { phase: Phase::Established(est), .. } = &**sa else { return None };
            est.children.iter().find(|c| c.spi_in == handle).map(|c| (*k, c.spi_in))
        })
    }
}

/// The first of [`child_paths`], the one the child's SA uses now.
fn first_path(sa: &Core, c: &Child) -> (IpAddr, IpAddr) {
    c.paths.first().copied().unwrap_or((sa.local.ip(), sa.remote.ip()))
}

/// The outer address pairs (ours, the peer's) child `c` sends on,
/// preferred first: its own (multihoming) or the IKE SA's.
pub(super) fn child_paths(sa: &Core, c: &Child) -> Vec<(IpAddr, IpAddr)> {
    if c.paths.is_empty() {
        vec![(sa.local.ip(), sa.remote.ip())]
    } else {
        c.paths.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> WirePrefix {
        let (a, l) = s.split_once('/').unwrap();
        WirePrefix { addr: a.parse().unwrap(), len: l.parse().unwrap() }
    }

    fn set(child: u32) -> Option<Command> {
        Some(Command::SetPolicy { dst: p("10.2.0.0/16"), action: PolicyAction::Protect(child) })
    }

    /// Two child SAs (of two IKE SAs) with the same selectors: the newer
    /// protects the prefix; when it goes the older takes over again, and
    /// only when both are gone is the policy deleted.
    #[test]
    fn a_prefix_shared_by_two_child_sas_falls_back_to_the_other_not_to_nothing() {
        let d = p("10.2.0.0/16");
        let mut ps = Policies::default();
        assert_eq!(ps.add(d, 1), set(1));
        assert_eq!(ps.add(d, 2), set(2));
        assert_eq!(ps.get(&d), Some(2));
        assert_eq!(ps.remove(d, 2), set(1), "back to the first child");
        assert_eq!(ps.remove(d, 1), Some(Command::DeletePolicy { dst: d }));
        assert_eq!(ps.get(&d), None);
        // Removing one that is not on top changes nothing the dataplane sees.
        ps.add(d, 1);
        ps.add(d, 2);
        assert_eq!(ps.remove(d, 1), None);
        assert_eq!(ps.get(&d), Some(2));
    }

    /// A rekey puts the new child in the old one's place, top or not.
    #[test]
    fn a_rekey_takes_its_predecessors_place() {
        let d = p("10.2.0.0/16");
        let mut ps = Policies::default();
        ps.add(d, 1);
        ps.add(d, 2);
        assert_eq!(ps.replace(d, 1, 3), None, "under child 2: nothing to tell the dataplane");
        assert_eq!(ps.replace(d, 2, 4), set(4));
        assert_eq!(ps.remove(d, 4), set(3));
        // Twice (the grace timer after the settle): no duplicate entry.
        assert_eq!(ps.replace(d, 1, 3), None);
        assert_eq!(ps.remove(d, 3), Some(Command::DeletePolicy { dst: d }));
    }
}
