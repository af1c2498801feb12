//! Peer discovery for Multi-point SA (draft-yamaya-ipsecme-mpsa-04
//! section 4): what a group's member table holds.
//!
//! An endpoint sends group traffic for an inner prefix to the member
//! endpoint whose prefix it is (mpsa 3.4). It knows them from static
//! `mpsa_routes` or from routes its BGP speaker learned through the hub
//! (section 4.1: prefix and the member's ESP address as next hop); a
//! learned route replaces a static one for the same prefix, and static
//! routes stay as the fallback. The hub's view is the other half: which
//! members are up, at which ESP address, and what each may announce
//! (section 5: access control by filtering routes at the gateway).

use std::net::IpAddr;

use cpdp::msg::{Command, WirePrefix};

use super::sa::Phase;
use super::{Engine, Error, Event};
use crate::bgp::bird::MemberRoutes;
use crate::bgp::{overlap, text, LearnedRoute};
use crate::ike::ts::to_prefixes;
use crate::mpsa::MpsaRole;

/// What became of one set of learned routes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Learned {
    /// Routes now in the group's member table.
    pub accepted: usize,
    /// Routes refused, with why.
    pub refused: Vec<(LearnedRoute, String)>,
    /// Whether the member table changed.
    pub changed: bool,
}

impl Engine {
    /// The member table of connection `ci`'s group: learned routes, then
    /// the static `mpsa_routes` for prefixes none was learned for.
    pub(super) fn group_members(&self, ci: usize) -> Vec<(WirePrefix, IpAddr)> {
        let c = &self.conns[ci];
        let learned = self.learned.get(&c.name).map(Vec::as_slice).unwrap_or(&[]);
        let mut out: Vec<(WirePrefix, IpAddr)> = learned.iter().map(|r| (r.prefix, r.next_hop)).collect();
        for (p, a) in &c.mpsa_routes {
            if !learned.iter().any(|r| r.prefix == *p) {
                out.push((*p, *a));
            }
        }
        out
    }

    /// Endpoint: the routes our speaker learned from the hub for
    /// connection `conn`, all of them each time (a withdrawn route is one
    /// no longer there). Each is checked before it is used: its next hop
    /// must be another member's ESP address of the group SA's family (not
    /// ours, not the hub's, not one no host has), and its prefix must not
    /// overlap a prefix of ours (a member cannot draw our own traffic to
    /// itself). The group's member table in the dataplane changes only
    /// when the accepted set does, its SAs staying.
    pub fn learn_routes(&mut self, conn: &str, routes: &[LearnedRoute]) -> Result<Learned, Error> {
        if self.mpsa_role != MpsaRole::Endpoint {
            return Err(Error::NotMpsaEndpoint);
        }
        let ci = self.conns.iter().position(|c| c.name == conn).ok_or(Error::NoConnection(conn.to_string()))?;
        let c = &self.conns[ci];
        // The group SA's own address: the IKE SA's local, or the config's.
        let sa = self.sas.values().find(|s| s.core.conn == ci && matches!(s.phase, Phase::Established(_)));
        let local = sa.map(|s| s.core.local.ip()).or(c.local);
        let hub = sa.map(|s| s.core.remote.ip());
        let ours: Vec<WirePrefix> = c.children.iter().flat_map(|ch| ch.local_ts.iter()).flat_map(to_prefixes).collect();
        let mut out = Learned::default();
        let mut accepted: Vec<LearnedRoute> = Vec::new();
        for r in routes {
            let nh = r.next_hop;
            let why = if nh.is_unspecified() || nh.is_loopback() || nh.is_multicast() {
                Some(format!("next hop {nh} is no member's ESP address"))
            } else if local.is_some_and(|l| l.is_ipv4() != nh.is_ipv4()) {
                Some(format!("next hop {nh} is not of the group SA's family ({})", local.unwrap_or(nh)))
            } else if Some(nh) == local {
                // Our own announcement, reflected back: nothing to do.
                continue;
            } else if Some(nh) == hub {
                Some(format!("next hop {nh} is the hub: group traffic goes to members"))
            } else if let Some(o) = ours.iter().find(|o| overlap(r.prefix, **o)) {
                Some(format!("it overlaps {}, a prefix of this endpoint", text(*o)))
            } else if accepted.iter().any(|a| a.prefix == r.prefix) {
                Some("a second next hop for a prefix already learned".to_string())
            } else {
                None
            };
            match why {
                Some(w) => out.refused.push((*r, w)),
                None => accepted.push(*r),
            }
        }
        accepted.sort();
        out.accepted = accepted.len();
        let before = self.learned.get(conn).cloned().unwrap_or_default();
        if before == accepted {
            return Ok(out);
        }
        out.changed = true;
        let added: Vec<String> = accepted.iter().filter(|r| !before.contains(r)).map(|r| format!("+{r}")).collect();
        let gone: Vec<String> = before.iter().filter(|r| !accepted.contains(r)).map(|r| format!("-{r}")).collect();
        if accepted.is_empty() {
            self.learned.remove(conn);
        } else {
            self.learned.insert(conn.to_string(), accepted);
        }
        let members = self.group_members(ci);
        let installed = self.endpoint_groups.contains_key(conn);
        if installed {
            self.dp(Command::SetGroupMembers { group: conn.to_string(), members: members.clone() });
        }
        let what = format!(
            "peer discovery: {} member prefixes ({}){}",
            members.len(),
            added.into_iter().chain(gone).collect::<Vec<_>>().join(", "),
            if installed { "" } else { ", used once the group SA comes" }
        );
        self.event(Event::Mpsa { group: conn.to_string(), what });
        Ok(out)
    }

    /// Endpoint: the routes learned for `conn` (for gwctl).
    pub fn learned_routes(&self, conn: &str) -> &[LearnedRoute] {
        self.learned.get(conn).map(Vec::as_slice).unwrap_or(&[])
    }

    /// Hub: every member with an MPSA IKE SA up now, at its ESP address,
    /// with where its speaker may be (its child SAs' remote selectors) and
    /// what it may announce: the group's `announce` list for it, else
    /// those same selectors. In a stable order, so an unchanged view gives
    /// an unchanged filter.
    pub fn mpsa_member_routes(&self) -> Vec<MemberRoutes> {
        let mut out = Vec::new();
        for sa in self.sas.values() {
            let Phase::Established(est) = &sa.phase else { continue };
            if est.rekeyed || sa.core.deleting || !sa.core.peer_mpsa {
                continue;
            }
            let speakers: Vec<WirePrefix> =
                sa.children().iter().flat_map(|c| c.ts_remote.iter()).flat_map(to_prefixes).collect();
            for g in self.groups.iter().filter(|g| g.is_member(Some(&est.peer_id))) {
                let allowed = g.cfg.announce.get(&est.peer_id).cloned().unwrap_or_else(|| speakers.clone());
                out.push(MemberRoutes {
                    id: est.peer_id.to_text(),
                    group: g.cfg.name.clone(),
                    esp: sa.core.remote.ip(),
                    speakers: speakers.clone(),
                    allowed,
                });
            }
        }
        out.sort();
        out.dedup();
        out
    }
}
