//! The engine's Multi-point SA exchanges (draft-yamaya-ipsecme-mpsa 3.1):
//!
//! ```text
//! Endpoint (CPE)                      Gateway
//!        <-- HDR, SK { N(MPSA_PUT) }          (after IKE_AUTH, after a group rekey)
//! HDR, SK { } -->
//! ```
//!
//! Only on IKE SAs where both sides sent V(MPSA). The gateway keeps one
//! current group SA per group (`crate::mpsa::group`); an endpoint installs
//! what it is given into the dataplane with the rollover times, and removes
//! the group when the newest SA's lifetime runs out.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use cpdp::msg::{Command, SaSpec, WirePrefix};

use super::sa::{Core, Established, IkeSa, Pending, Phase, Task};
use super::{Engine, Error, Event};
use crate::codepoints::ExchangeType;
use crate::mpsa::{GatewayGroup, GroupConfig, MpsaPut, MpsaRole};
use crate::wire::{Notify, Payload};

/// An endpoint's group SAs from one gateway connection.
#[derive(Debug, Clone)]
pub struct EndpointGroup {
    pub alg: String,
    /// When the newest SA's lifetime runs out: the group goes then.
    pub expires: Instant,
    pub updates: u64,
    /// The SAs the dataplane was told of, oldest first, and when: a
    /// restarted dataplane gets them again (keys zeroized as these go).
    installed: Vec<GroupInstall>,
}

/// One group SA as it was installed.
#[derive(Debug, Clone)]
struct GroupInstall {
    at: Instant,
    sa: SaSpec,
    /// Rollover1 and Rollover2, seconds.
    rollover: (u32, u32),
}

impl GroupInstall {
    fn command(
        &self,
        group: &str,
        members: &[(WirePrefix, IpAddr)],
        (rollover1_secs, rollover2_secs): (u32, u32),
    ) -> Command {
        Command::InstallGroupSa {
            group: group.to_string(),
            sa: self.sa.clone(),
            members: members.to_vec(),
            rollover1_secs,
            rollover2_secs,
        }
    }
}

impl EndpointGroup {
    /// The SPIs installed, newest last.
    pub fn spis(&self) -> impl DoubleEndedIterator<Item = u32> + '_ {
        self.installed.iter().map(|g| g.sa.spi)
    }

    /// The group SAs a dataplane restarted at `now` needs, in order, their
    /// rollover times shortened by the time already gone: the newest SA
    /// whose rollover is over (or the oldest) first, now sent with and
    /// with nothing to roll over from; then each newer one with what is
    /// left of its times (mpsa-04 5.3, NOTES.md "MPSA": the old SA leaves
    /// after Rollover2, so an SA before a finished rollover is gone).
    /// Each with today's member table (`members`).
    pub(super) fn resync(&self, group: &str, members: &[(WirePrefix, IpAddr)], now: Instant) -> Vec<Command> {
        let gone = |g: &GroupInstall| now.saturating_duration_since(g.at).as_secs();
        let done = |g: &GroupInstall| gone(g) >= u64::from(g.rollover.0.max(g.rollover.1));
        let from = self.installed.iter().rposition(done).unwrap_or(0);
        let Some(first) = self.installed.get(from) else { return Vec::new() };
        let mut out = vec![first.command(group, members, (0, 0))];
        for g in &self.installed[from + 1..] {
            let left = |t: u32| u64::from(t).saturating_sub(gone(g)) as u32;
            out.push(g.command(group, members, (left(g.rollover.0), left(g.rollover.1))));
        }
        out
    }
}

impl Engine {
    /// Gateway: a group from config; its SA is made now, before any member
    /// connects (mpsa 3.3.1).
    pub fn add_group(&mut self, now: Instant, cfg: GroupConfig) {
        let spi = self.new_group_spi();
        let g = GatewayGroup::new(cfg, now, spi, self.rng.as_mut());
        let what = format!("SA {:08x} made ({}), {} members", spi, g.put(now).alg(), g.cfg.members.len());
        self.event(Event::Mpsa { group: g.cfg.name.clone(), what });
        self.groups.push(g);
    }

    fn new_group_spi(&mut self) -> u32 {
        loop {
            let s = self.new_child_spi();
            if !self.groups.iter().any(|g| g.current.spi == s) {
                return s;
            }
        }
    }

    fn mpsa_on(&self, sa: &Core) -> bool {
        sa.peer_mpsa && self.mpsa_role != MpsaRole::Off
    }

    /// IKE_AUTH done: a gateway hands every group this peer belongs to.
    /// A member joining (no other MPSA IKE SA of its identity up) makes a
    /// group with `rekey_on_join` rekey first (mpsa-04 5.3) when another
    /// member may hold the current SA, so the newcomer cannot read what was
    /// sent before it came; the new SA then goes to everyone, the newcomer
    /// included.
    pub(super) fn mpsa_established(&mut self, now: Instant, sa: &mut Core, est: &Established) {
        if self.mpsa_role != MpsaRole::Gateway || !self.mpsa_on(sa) {
            return;
        }
        let joined = !self.member_still_up(&est.peer_id, sa.our_spi());
        let mut rekeyed = Vec::new();
        for (i, g) in self.groups.iter_mut().enumerate() {
            if !g.is_member(Some(&est.peer_id)) {
                continue;
            }
            if joined && g.cfg.rekey_on_join && g.handed_out {
                g.rekey_requested = Some(now);
                rekeyed.push(g.cfg.name.clone());
            } else {
                sa.w.tasks.push_back(Task::MpsaPut(i));
            }
        }
        let peer = est.peer_id.to_text();
        for name in rekeyed {
            self.event(Event::Mpsa { group: name, what: format!("{peer} joined: rekeying") });
        }
    }

    /// Gateway: INFORMATIONAL { SK { N(MPSA_PUT) } } -->
    pub(super) fn start_mpsa_put(&mut self, now: Instant, sa: &mut Core, est: &Established, g: usize) -> bool {
        let Some(group) = self.groups.get(g) else { return false };
        if est.rekeyed || sa.deleting {
            return false;
        }
        let put = group.put(now);
        let spi = put.spi;
        self.groups[g].handed_out = true;
        self.stats.mpsa_puts_sent += 1;
        let payloads = vec![Payload::Notify(put.to_notify())];
        self.request(now, sa, ExchangeType::Informational, payloads, Pending::MpsaPut { group: g, spi });
        true
    }

    /// Gateway: <-- { SK { } } (or an error notify).
    pub(super) fn mpsa_put_response(&mut self, sa: &Core, est: &Established, p: &[Payload], g: usize, spi: u32) {
        let Some(group) = self.groups.get_mut(g) else { return };
        let name = group.cfg.name.clone();
        let peer = est.peer_id.to_text();
        if let Some(e) = Error::refusal(p) {
            self.event(Event::Mpsa { group: name, what: format!("{peer} refused SA {spi:08x}: {e}") });
            return;
        }
        if group.current.spi == spi {
            group.delivered.insert(sa.our_spi());
        }
        self.event(Event::Mpsa { group: name, what: format!("SA {spi:08x} delivered to {peer}") });
    }

    /// Endpoint: <-- INFORMATIONAL { SK { N(MPSA_PUT) } }. Everything is
    /// checked before anything is installed; refusals carry the notify
    /// `MpsaError::notify` names. A gateway (or an IKE SA without V(MPSA)
    /// both ways) refuses any MPSA_PUT as INVALID_SYNTAX: rejected for
    /// policy reasons (RFC 7296 3.10.1).
    pub(super) fn mpsa_put_request(
        &mut self,
        now: Instant,
        sa: &mut Core,
        _est: &mut Established,
        n: &Notify,
        id: u32,
    ) {
        let ex = ExchangeType::Informational;
        let conn = self.conns[sa.conn].name.clone();
        let refuse = |e: &mut Engine, sa: &mut Core, ty: crate::codepoints::NotifyType, why: String| {
            e.stats.mpsa_puts_refused += 1;
            e.event(Event::Mpsa { group: conn.clone(), what: format!("MPSA_PUT refused ({ty:?}): {why}") });
            e.respond(sa, ex, id, vec![Payload::Notify(Notify::new(ty, vec![]))]);
        };
        if self.mpsa_role != MpsaRole::Endpoint || !self.mpsa_on(sa) {
            let why = match self.mpsa_role {
                MpsaRole::Gateway => "a gateway never takes a group SA".to_string(),
                _ => "MPSA was not negotiated on this IKE SA".to_string(),
            };
            refuse(self, sa, crate::codepoints::NotifyType::InvalidSyntax, why);
            return;
        }
        let put = match MpsaPut::from_notify(n) {
            Ok(p) => p,
            Err(e) => {
                refuse(self, sa, e.notify(), e.to_string());
                return;
            }
        };
        let known = self.endpoint_groups.get(&conn).is_some_and(|g| g.spis().any(|s| s == put.spi));
        // Checked before the answer, not left to the dataplane after it: an
        // SPI that is one of our child SAs' inbound SPIs, or another
        // connection's group SA, cannot be this group's too (RFC 4301
        // 4.1: the SPI selects the SA).
        let clash = self.installed_in.contains(&put.spi)
            || self.endpoint_groups.iter().any(|(c, g)| *c != conn && g.spis().any(|s| s == put.spi));
        if clash {
            let why = format!("SPI {:08x} is already an inbound SA here", put.spi);
            refuse(self, sa, crate::codepoints::NotifyType::NoProposalChosen, why);
            return;
        }
        if !known {
            self.install_group_sa(now, sa, &conn, &put);
        }
        self.respond(sa, ex, id, vec![]);
    }

    fn install_group_sa(&mut self, now: Instant, sa: &Core, conn: &str, put: &MpsaPut) {
        let inst =
            GroupInstall { at: now, sa: put.group_sa_spec(sa.local.ip()), rollover: (put.rollover1, put.rollover2) };
        let members = self.group_members(sa.conn);
        self.dp(inst.command(conn, &members, inst.rollover));
        let expires = now + Duration::from_secs(put.lifetime as u64);
        let g = self.endpoint_groups.entry(conn.to_string()).or_insert_with(|| EndpointGroup {
            alg: put.alg(),
            expires,
            updates: 0,
            installed: Vec::new(),
        });
        g.installed.push(inst);
        // The dataplane drops the older ones after Rollover2; keep a short list.
        if g.installed.len() > 4 {
            g.installed.remove(0);
        }
        g.alg = put.alg();
        g.expires = expires;
        g.updates += 1;
        let what = format!(
            "SA {:08x} installed ({}, {} s left, rollover {}/{} s)",
            put.spi,
            put.alg(),
            put.lifetime,
            put.rollover1,
            put.rollover2
        );
        self.event(Event::Mpsa { group: conn.to_string(), what });
    }

    /// An IKE SA rekey keeps the member's delivery state.
    pub(super) fn mpsa_ike_rekeyed(&mut self, old: u64, new: u64) {
        for g in &mut self.groups {
            if g.delivered.remove(&old) {
                g.delivered.insert(new);
            }
        }
    }

    /// Whether a member with identity `id` still has an MPSA IKE SA up
    /// other than the one with our SPI `except`.
    fn member_still_up(&self, id: &crate::wire::Identification, except: u64) -> bool {
        self.by_peer.get(id).is_some_and(|spis| {
            spis.iter().filter(|&&s| s != except).filter_map(|s| self.sa(s)).any(|sa| {
                matches!(&sa.phase, Phase::Established(e) if !e.rekeyed) && sa.core.peer_mpsa && !sa.core.deleting
            })
        })
    }

    /// An IKE SA is gone. At a gateway, if it was a member's last MPSA IKE
    /// SA (not one a rekey replaced, nor one INITIAL_CONTACT ended), the
    /// member has left: each of its groups gets a new SA at once when
    /// `rekey_on_leave` (mpsa-04 5.3), whether or not the member had
    /// acknowledged the current one, so the leaver cannot read what
    /// follows.
    pub(super) fn mpsa_sa_gone(&mut self, now: Instant, sa: &IkeSa, why: super::IkeGone) {
        if self.mpsa_role == MpsaRole::Endpoint {
            self.endpoint_sa_gone(sa, why);
            return;
        }
        let spi = sa.core.our_spi();
        // INITIAL_CONTACT (RFC 7296 2.4): the member restarted and is
        // authenticated again on the IKE SA that announced it; it gets the
        // current SA there, nobody left.
        let restarted = why == super::IkeGone::InitialContact;
        let leaver = match &sa.phase {
            Phase::Established(e) if !e.rekeyed && !restarted && sa.core.peer_mpsa => {
                (!self.member_still_up(&e.peer_id, spi)).then_some(&e.peer_id)
            }
            _ => None,
        };
        let mut left = Vec::new();
        for g in &mut self.groups {
            g.delivered.remove(&spi);
            if leaver.is_some_and(|id| g.is_member(Some(id))) && g.cfg.rekey_on_leave {
                g.rekey_requested = Some(now);
                left.push(g.cfg.name.clone());
            }
        }
        let peer = sa.peer_id().map(|i| i.to_text()).unwrap_or_default();
        for name in left {
            self.event(Event::Mpsa { group: name, what: format!("{peer} left: rekeying") });
        }
    }

    /// Endpoint: our IKE SA with the hub is gone. Deleted (by the hub or
    /// the operator) and not replaced by a rekey, a redirect or another
    /// IKE SA of the connection, it is gone for good: the connection's
    /// groups go with it (DeleteGroup), and come back with the next
    /// MPSA_PUT if it does. A hub that stopped answering is not that: the
    /// members still reach each other over the group SA until its lifetime
    /// runs out, a failover or a new IKE SA bringing the next one.
    fn endpoint_sa_gone(&mut self, sa: &IkeSa, why: super::IkeGone) {
        let Phase::Established(est) = &sa.phase else { return };
        if est.rekeyed || why != super::IkeGone::Deleted || !sa.core.peer_mpsa {
            return;
        }
        let ci = sa.core.conn;
        let other = self
            .sas
            .values()
            .any(|x| x.core.conn == ci && !x.core.deleting && matches!(&x.phase, Phase::Established(e) if !e.rekeyed));
        let conn = self.conns[ci].name.clone();
        if other || self.endpoint_groups.remove(&conn).is_none() {
            return;
        }
        self.dp(Command::DeleteGroup { group: conn.clone() });
        self.event(Event::Mpsa { group: conn, what: "IKE SA with the hub deleted: group SAs removed".into() });
    }

    pub(super) fn mpsa_deadline(&self) -> Option<Instant> {
        let gw = self.groups.iter().map(|g| g.rekey_at());
        let ep = self.endpoint_groups.values().map(|g| g.expires);
        gw.chain(ep).min()
    }

    /// Group rekeys (gateway) and group expiry (endpoint).
    pub(super) fn mpsa_timeout(&mut self, now: Instant) {
        for i in 0..self.groups.len() {
            if self.groups[i].rekey_at() > now {
                continue;
            }
            let spi = self.new_group_spi();
            self.groups[i].rekey(now, spi, self.rng.as_mut());
            let g = &self.groups[i];
            let what = format!("rekeyed: SA {spi:08x}, handing it to the members");
            let name = g.cfg.name.clone();
            // Every member with an MPSA IKE SA up gets the new SA.
            let mut members = Vec::new();
            for (k, sa) in &mut self.sas {
                let IkeSa { core, phase: Phase::Established(est) } = &mut **sa else { continue };
                if !est.rekeyed && !core.deleting && core.peer_mpsa && g.is_member(Some(&est.peer_id)) {
                    core.w.tasks.push_back(Task::MpsaPut(i));
                    members.push(*k);
                }
            }
            members.sort_unstable();
            self.event(Event::Mpsa { group: name, what });
            for k in members {
                self.touched.push(k);
                self.kick(now, k);
            }
        }
        let expired: Vec<String> =
            self.endpoint_groups.iter().filter(|(_, g)| g.expires <= now).map(|(k, _)| k.clone()).collect();
        for name in expired {
            self.endpoint_groups.remove(&name);
            self.dp(Command::DeleteGroup { group: name.clone() });
            self.event(Event::Mpsa { group: name, what: "lifetime over: group SA removed".into() });
        }
    }

    /// Gateway: expels `member` from group `name` (`gwctl group remove`):
    /// it is no member from now on and the group rekeys at once without
    /// it, so it decrypts nothing sent after the rollover (mpsa-04 5.3).
    /// Its IKE SA and child SAs stay up. Until the config is reloaded or
    /// the daemon restarts: remove it from the file to make it last.
    /// Returns how many of its IKE SAs held the group.
    pub fn expel(&mut self, now: Instant, name: &str, member: &str) -> Result<usize, Error> {
        let id = crate::wire::Identification::from_text(member);
        let g = self.groups.iter_mut().find(|g| g.cfg.name == name).ok_or(Error::NoGroup(name.to_string()))?;
        if !g.cfg.members.remove(&id) {
            return Err(Error::NotMember { group: name.to_string(), member: member.to_string() });
        }
        g.rekey_requested = Some(now);
        let held = self.by_peer.get(&id).map_or(0, |spis| spis.iter().filter(|s| g.delivered.contains(s)).count());
        self.event(Event::Mpsa { group: name.to_string(), what: format!("{member} expelled: rekeying without it") });
        self.reschedule();
        Ok(held)
    }

    /// Gateway: the groups with their current SAs (for gwctl).
    pub fn gateway_groups(&self) -> &[GatewayGroup] {
        &self.groups
    }

    /// Endpoint: the group SAs installed, by connection (for gwctl).
    pub fn endpoint_groups(&self) -> impl Iterator<Item = (&String, &EndpointGroup)> {
        self.endpoint_groups.iter()
    }
}
