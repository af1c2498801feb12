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
        lifetime: crate::sa::Lifetime {
            soft_bytes: s.lifetime.soft_bytes,
            hard_bytes: s.lifetime.hard_bytes,
            soft_packets: s.lifetime.soft_packets,
            hard_packets: s.lifetime.hard_packets,
            soft_secs: s.lifetime.soft_secs,
            hard_secs: s.lifetime.hard_secs,
        },
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

/// Watches every SA against its lifetime and sequence-number limit, on the
/// main lcore: reports each soft and hard crossing once, and stops an SA at
/// its hard limit (workers see `expired` and drop its traffic).
#[derive(Debug, Default)]
pub struct LifetimeMonitor {
    reported: FxHashMap<(u32, bool), crate::sa::LifetimeState>,
    exhausted: rustc_hash::FxHashSet<u32>,
}

impl LifetimeMonitor {
    pub fn check(&mut self, t: &Tables, now: std::time::Instant) -> Vec<cpdp::msg::Event> {
        use crate::sa::{LifetimeState, STAT_BYTES, STAT_PACKETS};
        use cpdp::msg::{Event, LifetimeKind};
        let mut out = Vec::new();
        let sas = t
            .out_sas
            .iter()
            .map(|s| (s.spi, true, &s.lifetime, &s.stats, s.installed, &s.expired))
            .chain(t.in_sas.iter().map(|s| (s.spi, false, &s.lifetime, &s.stats, s.installed, &s.expired)));
        for (spi, outbound, life, stats, installed, expired) in sas {
            let (p, b) = (stats.get(STAT_PACKETS), stats.get(STAT_BYTES));
            let st = life.state(p, b, now.saturating_duration_since(installed).as_secs());
            let prev = self.reported.get(&(spi, outbound)).copied().unwrap_or(LifetimeState::Fresh);
            if st > prev {
                if st == LifetimeState::Hard {
                    expired.store(true, std::sync::atomic::Ordering::Relaxed);
                }
                let kind = if st == LifetimeState::Hard { LifetimeKind::Hard } else { LifetimeKind::Soft };
                let direction = if outbound { Direction::Out } else { Direction::In };
                out.push(Event::Lifetime { spi, direction, kind, packets: p, bytes: b });
                self.reported.insert((spi, outbound), st);
            }
        }
        for sa in &t.out_sas {
            if sa.seq_used() >= sa.seq_limit() && self.exhausted.insert(sa.spi) {
                out.push(Event::SeqExhausted { spi: sa.spi });
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sa::{Lifetime, LifetimeState, STAT_BYTES, STAT_PACKETS};
    use cpdp::msg::{Event, LifetimeKind};
    use std::time::{Duration, Instant};
    use zeroize::Zeroizing;

    fn spec(spi: u32, dir: Direction) -> SaSpec {
        SaSpec {
            spi,
            direction: dir,
            alg: "aes128gcm".into(),
            enc_key: Zeroizing::new(vec![7; 20]),
            auth_key: Zeroizing::new(vec![]),
            local: "192.0.2.1".parse().unwrap(),
            remote: "192.0.2.2".parse().unwrap(),
            natt: None,
            esn: false,
            replay_window: 64,
            seq: 0,
            inner_src: vec![],
            inner_dst: vec![],
            lifetime: cpdp::msg::Lifetimes { soft_packets: 10, hard_packets: 20, hard_secs: 60, ..Default::default() },
        }
    }

    #[test]
    fn lifetime_states() {
        let l = Lifetime { soft_bytes: 100, hard_bytes: 200, soft_secs: 5, ..Default::default() };
        assert_eq!(l.state(0, 99, 0), LifetimeState::Fresh);
        assert_eq!(l.state(0, 100, 0), LifetimeState::Soft);
        assert_eq!(l.state(0, 0, 5), LifetimeState::Soft);
        assert_eq!(l.state(0, 250, 0), LifetimeState::Hard);
        assert_eq!(Lifetime::default().state(u64::MAX, u64::MAX, u64::MAX), LifetimeState::Fresh);
    }

    #[test]
    fn soft_then_hard_reported_once_and_hard_stops_the_sa() {
        let mut st = TableState::new(Tables::new(vec![]));
        assert!(st.apply(&Command::InstallSa(spec(0x10, Direction::Out))).unwrap());
        let t = st.build();
        let mut m = LifetimeMonitor::default();
        let now = Instant::now();
        assert!(m.check(&t, now).is_empty());
        t.out_sas[0].stats.add(0, STAT_PACKETS, 12);
        t.out_sas[0].stats.add(0, STAT_BYTES, 1000);
        let e = m.check(&t, now);
        assert!(matches!(e[..], [Event::Lifetime { spi: 0x10, kind: LifetimeKind::Soft, packets: 12, .. }]), "{e:?}");
        assert!(m.check(&t, now).is_empty(), "once");
        assert!(!t.out_sas[0].expired.load(std::sync::atomic::Ordering::Relaxed));
        let e = m.check(&t, now + Duration::from_secs(61));
        assert!(matches!(e[..], [Event::Lifetime { kind: LifetimeKind::Hard, .. }]), "{e:?}");
        assert!(t.out_sas[0].expired.load(std::sync::atomic::Ordering::Relaxed), "stopped");
    }

    #[test]
    fn commands_are_checked_and_rejections_change_nothing() {
        let mut st = TableState::new(Tables::new(vec![]));
        let mut bad = spec(0x11, Direction::Out);
        bad.alg = "des".into();
        assert!(st.apply(&Command::InstallSa(bad)).unwrap_err().contains("unknown algorithm"));
        let mut bad = spec(0x12, Direction::In);
        bad.enc_key = Zeroizing::new(vec![1; 3]);
        assert!(st.apply(&Command::InstallSa(bad)).unwrap_err().contains("20 octets"));
        let pol = Command::SetPolicy {
            dst: WirePrefix { addr: "10.0.0.0".parse().unwrap(), len: 8 },
            action: PolicyAction::Protect(0x99),
        };
        assert!(st.apply(&pol).unwrap_err().contains("no outbound SA 0x99"));
        assert!(st.apply(&Command::DeleteSa { spi: 5, direction: Direction::In }).is_err());
        let t = st.build();
        assert!(t.out_sas.is_empty() && t.in_sas.is_empty());
        // MOBIKE: new addresses, same SA, sequence numbers move forward.
        st.apply(&Command::InstallSa(spec(0x13, Direction::Out))).unwrap();
        let before = st.build().out_sas[0].clone();
        for _ in 0..5 {
            before.next_seq();
        }
        st.apply(&Command::UpdateSaAddresses {
            spi: 0x13,
            direction: Direction::Out,
            local: "198.51.100.1".parse().unwrap(),
            remote: "198.51.100.2".parse().unwrap(),
            natt: Some((4500, 4500)),
        })
        .unwrap();
        let after = st.build().out_sas[0].clone();
        assert_eq!(after.remote, "198.51.100.2".parse::<IpAddr>().unwrap());
        assert!(after.next_seq().unwrap() > 5);
        assert!(Arc::ptr_eq(&after.stats, &before.stats), "counters carry on");
    }
}
