//! The main lcore's view of what should be installed: the config file's
//! static tables plus what the control plane sent over the ring. Applying
//! a command changes this state; [`TableState::build`] turns it into the
//! next immutable [`Tables`] for the workers. SAs are shared `Arc`s, so
//! a rebuild neither re-expands keys nor resets sequence numbers.
//!
//! A command that cannot be applied changes nothing and says why.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

use cpdp::msg::{Command, Direction, PolicyAction, SaSpec, WirePrefix};
use rustc_hash::FxHashMap;

use crate::crypto::Algorithm;
use crate::lpm::Prefix;
use crate::sa::{InboundSa, NattPorts, OutboundSa, SaParams};
use crate::tables::{Policy, Route, Tables};

#[derive(Debug)]
pub struct TableState {
    /// From the config file; never changed by commands.
    base: Tables,
    sas_in: BTreeMap<u32, Arc<InboundSa>>,
    sas_out: BTreeMap<u32, Arc<OutboundSa>>,
    policies: BTreeMap<(IpAddr, u8), PolicyAction>,
    routes: BTreeMap<(IpAddr, u8), Route>,
    neighbors: FxHashMap<IpAddr, [u8; 6]>,
    /// Sequence numbers reserved per outbound SPI before a restart: an SA
    /// installed again never reuses one.
    seq_floor: FxHashMap<u32, u64>,
}

fn prefix(p: &WirePrefix) -> Result<Prefix, String> {
    Prefix::new(p.addr, p.len)
}

/// Builds SA parameters from a command, checking what the wire cannot.
pub fn sa_params(s: &SaSpec) -> Result<SaParams, String> {
    let alg: Algorithm = s.alg.parse()?;
    let pre = |v: &[WirePrefix]| v.iter().map(prefix).collect::<Result<Vec<_>, _>>();
    if s.replay_window > crate::replay::MAX_WINDOW {
        return Err(format!("replay window {} > {}", s.replay_window, crate::replay::MAX_WINDOW));
    }
    Ok(SaParams {
        spi: s.spi,
        alg,
        enc_key: s.enc_key.clone(),
        auth_key: s.auth_key.clone(),
        local: s.local,
        remote: s.remote,
        natt: s.natt.map(|(l, r)| NattPorts { local: l, remote: r }),
        esn: s.esn,
        replay_window: s.replay_window,
        inner_src: pre(&s.inner_src)?,
        inner_dst: pre(&s.inner_dst)?,
    })
}

impl TableState {
    pub fn new(base: Tables) -> TableState {
        TableState {
            base,
            sas_in: BTreeMap::new(),
            sas_out: BTreeMap::new(),
            policies: BTreeMap::new(),
            routes: BTreeMap::new(),
            neighbors: FxHashMap::default(),
            seq_floor: FxHashMap::default(),
        }
    }

    /// Sequence numbers already (possibly) used per outbound SPI, from the
    /// reservations a previous run left.
    pub fn set_seq_floors(&mut self, floors: FxHashMap<u32, u64>) {
        self.seq_floor = floors;
    }

    /// The installed outbound SAs (for reservations and counters).
    pub fn outbound(&self) -> impl Iterator<Item = &Arc<OutboundSa>> {
        self.sas_out.values()
    }

    pub fn inbound(&self) -> impl Iterator<Item = &Arc<InboundSa>> {
        self.sas_in.values()
    }

    /// Applies one command. Ok(true): the tables must be rebuilt.
    pub fn apply(&mut self, c: &Command) -> Result<bool, String> {
        match c {
            Command::Flush => {
                self.sas_in.clear();
                self.sas_out.clear();
                self.policies.clear();
                self.routes.clear();
                self.neighbors.clear();
            }
            Command::InstallSa(s) => {
                let p = sa_params(s).map_err(|e| format!("SA {:#x}: {e}", s.spi))?;
                match s.direction {
                    Direction::In => {
                        if self.base.spi_index.contains_key(&s.spi) {
                            return Err(format!("SA {:#x}: SPI is a static inbound SA of the config", s.spi));
                        }
                        let sa = InboundSa::new(&p).map_err(|e| format!("SA {:#x}: {e}", s.spi))?;
                        self.sas_in.insert(s.spi, Arc::new(sa));
                    }
                    Direction::Out => {
                        let sa = OutboundSa::new(&p).map_err(|e| format!("SA {:#x}: {e}", s.spi))?;
                        let floor = self.seq_floor.get(&s.spi).copied().unwrap_or(0);
                        sa.set_seq(s.seq.max(floor));
                        self.sas_out.insert(s.spi, Arc::new(sa));
                    }
                }
            }
            Command::DeleteSa { spi, direction } => {
                let gone = match direction {
                    Direction::In => self.sas_in.remove(spi).is_some(),
                    Direction::Out => self.sas_out.remove(spi).is_some(),
                };
                if !gone {
                    return Err(format!("no {direction:?} SA {spi:#x} installed by the control plane"));
                }
            }
            Command::UpdateSaAddresses { spi, direction, local, remote, natt } => {
                if local.is_ipv4() != remote.is_ipv4() {
                    return Err(format!("SA {spi:#x}: {local} and {remote} are not the same IP version"));
                }
                // A new SA object with the same keys; outbound keeps its
                // sequence numbers (RFC 4555: the SA is the same SA).
                let natt = natt.map(|(l, r)| NattPorts { local: l, remote: r });
                match direction {
                    Direction::Out => {
                        let old = self.sas_out.get(spi).ok_or(format!("no outbound SA {spi:#x}"))?;
                        let sa = old.with_addresses(*local, *remote, natt).map_err(|e| e.to_string())?;
                        self.sas_out.insert(*spi, Arc::new(sa));
                    }
                    Direction::In => {
                        let old = self.sas_in.get(spi).ok_or(format!("no inbound SA {spi:#x}"))?;
                        let sa = old.with_addresses(*local, *remote, natt);
                        self.sas_in.insert(*spi, Arc::new(sa));
                    }
                }
            }
            Command::SetPolicy { dst, action } => {
                prefix(dst)?;
                if let PolicyAction::Protect(spi) = action {
                    if !self.sas_out.contains_key(spi) && !self.base.out_sas.iter().any(|s| s.spi == *spi) {
                        return Err(format!("policy {}/{}: no outbound SA {spi:#x}", dst.addr, dst.len));
                    }
                }
                self.policies.insert((dst.addr, dst.len), *action);
            }
            Command::DeletePolicy { dst } => {
                self.policies.remove(&(dst.addr, dst.len)).ok_or("no such policy")?;
            }
            Command::SetRoute { dst, port, via } => {
                prefix(dst)?;
                if *port as usize >= self.base.ports.len() {
                    return Err(format!("route {}/{}: no port {port}", dst.addr, dst.len));
                }
                self.routes.insert((dst.addr, dst.len), Route { port: *port, via: *via });
            }
            Command::DeleteRoute { dst } => {
                self.routes.remove(&(dst.addr, dst.len)).ok_or("no such route")?;
            }
            Command::SetNeighbor { ip, mac } => {
                self.neighbors.insert(*ip, *mac);
            }
            Command::SyncDone | Command::Inject { .. } | Command::DumpCounters => return Ok(false),
        }
        Ok(true)
    }

    /// The tables for the workers: the config's, then the control plane's
    /// entries on top (they win where both name the same prefix).
    pub fn build(&self) -> Tables {
        let mut t = self.base.clone();
        for sa in self.sas_in.values() {
            t.add_inbound_arc(sa.clone());
        }
        let mut out_index = FxHashMap::default();
        for (i, sa) in t.out_sas.iter().enumerate() {
            out_index.insert(sa.spi, i);
        }
        for sa in self.sas_out.values() {
            out_index.insert(sa.spi, t.add_outbound_arc(sa.clone()));
        }
        for (&(a, l), r) in &self.routes {
            if let Ok(p) = Prefix::new(a, l) {
                t.add_route(p, *r);
            }
        }
        for (ip, mac) in &self.neighbors {
            t.neighbors.insert(*ip, *mac);
        }
        for (&(a, l), action) in &self.policies {
            let pol = match action {
                PolicyAction::Protect(spi) => match out_index.get(spi) {
                    Some(&i) => Policy::Protect(i),
                    None => Policy::Discard, // its SA was deleted: fail closed
                },
                PolicyAction::Bypass => Policy::Bypass,
                PolicyAction::Discard => Policy::Discard,
            };
            if let Ok(p) = Prefix::new(a, l) {
                t.add_policy(p, pol);
            }
        }
        t.resolve_sa_next_hops();
        t
    }
}
