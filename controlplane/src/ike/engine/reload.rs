//! `gwctl reload`: a changed configuration applied to the running engine,
//! touching only what changed. Connections are matched by name:
//!
//! - the same definition: kept, with its IKE SAs and child SAs untouched;
//! - gone from the file: its IKE SAs are deleted (INFORMATIONAL Delete,
//!   their child SAs uninstalled) and it takes no new ones;
//! - a different definition under the same name: both of the above, then
//!   the new one starts (an initiator connects again at once; a responder
//!   waits for its peers);
//! - new: it starts (initiators connect at once).
//!
//! A connection that goes is retired, not removed: its SAs and the
//! requests in flight keep naming it by index until they are gone, and
//! no lookup (a responder's choice of connection, a name from gwctl, the
//! initiators started) sees it again.
//!
//! Multi-point SA groups (gateway) are matched by name too: a group with
//! other members or parameters is rekeyed at once, and the new SA goes to
//! the members with an MPSA IKE SA up, so a member taken out cannot read
//! what follows and one put in gets the group; a new group is made and
//! handed out the same way. A group cannot be removed without a restart
//! yet (planned); [`Engine::check_reload`] says so before anything changes.

use std::time::Instant;

use super::Engine;
use crate::ike::config::Connection;
use crate::mpsa::GroupConfig;

/// What a reload did, by connection and group name.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Reloaded {
    pub kept: Vec<String>,
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub changed: Vec<String>,
    /// Groups rekeyed for new members or parameters, and groups made.
    pub groups_changed: Vec<String>,
    pub groups_added: Vec<String>,
    /// IKE SAs deleted with the connections that went or changed.
    pub ike_sas_deleted: usize,
}

impl Engine {
    /// Why `groups` cannot be applied now (nothing has changed then).
    pub fn check_reload(&self, groups: &[GroupConfig]) -> Result<(), String> {
        for g in &self.groups {
            if !groups.iter().any(|n| n.name == g.cfg.name) {
                return Err(format!(
                    "group {:?}: removing a group needs a restart of gw-controlplane (planned for reload)",
                    g.cfg.name
                ));
            }
        }
        Ok(())
    }

    /// Applies `conns` and `groups` (a checked config; call
    /// [`Engine::check_reload`] first).
    pub fn reload(&mut self, now: Instant, conns: Vec<Connection>, groups: Vec<GroupConfig>) -> Reloaded {
        let mut r = Reloaded::default();
        let live: Vec<usize> = (0..self.conns.len()).filter(|i| !self.conns[*i].retired).collect();
        for &i in &live {
            let name = self.conns[i].name.clone();
            match conns.iter().find(|c| c.name == name) {
                Some(c) if *c == self.conns[i] => r.kept.push(name),
                Some(_) => {
                    r.ike_sas_deleted += self.retire(now, i);
                    r.changed.push(name);
                }
                None => {
                    r.ike_sas_deleted += self.retire(now, i);
                    r.removed.push(name);
                }
            }
        }
        let mut start = Vec::new();
        for c in conns {
            if r.kept.contains(&c.name) {
                continue;
            }
            if !r.changed.contains(&c.name) {
                r.added.push(c.name.clone());
            }
            if c.is_initiator() {
                start.push(self.conns.len());
            }
            self.conns.push(c);
        }
        for ci in start {
            let _ = self.send_first_init(now, ci);
        }
        for cfg in groups {
            match self.groups.iter_mut().find(|g| g.cfg.name == cfg.name) {
                Some(g) if g.cfg == cfg => {}
                Some(g) => {
                    g.cfg = cfg;
                    g.rekey_requested = Some(now);
                    r.groups_changed.push(g.cfg.name.clone());
                }
                None => {
                    let name = cfg.name.clone();
                    self.add_group(now, cfg);
                    // Handed to the members already up at once.
                    if let Some(g) = self.groups.last_mut() {
                        g.rekey_requested = Some(now);
                    }
                    r.groups_added.push(name);
                }
            }
        }
        self.reschedule();
        r
    }

    /// Connection `ci` takes no new IKE SAs; its IKE SAs are deleted.
    fn retire(&mut self, now: Instant, ci: usize) -> usize {
        let n = self.terminate_conn(now, ci);
        self.conns[ci].retired = true;
        n
    }
}
