//! The main lcore's side of the control-plane link: the two rings, the
//! generation, sequence-number reservations, applying commands to the
//! table state and publishing new tables to the workers, punting and
//! injecting packets.

use std::path::Path;
use std::sync::Arc;

use cpdp::msg::{self, Command, Event, SaCounters};
use cpdp::{Consumer, Producer, SharedRing};
use crossbeam_queue::ArrayQueue;

use crate::reservations::SeqReservations;
use dataplane::config::ControlConfig;
use dataplane::sa::{STAT_BYTES, STAT_ICV, STAT_PACKETS, STAT_REPLAY};
use dataplane::state::TableState;
use dataplane::tables::Tables;
use rustc_hash::FxHashMap;

/// Frames punted by a worker: (input port, frame).
pub type PuntQueue = ArrayQueue<(u16, Vec<u8>)>;

/// An IKE datagram the control plane asked to send: (source, destination,
/// UDP payload).
pub type Datagram = (std::net::SocketAddr, std::net::SocketAddr, Vec<u8>);

pub struct Control {
    to_cp: Producer,
    from_cp: Consumer,
    reservations: SeqReservations,
    pub generation: u64,
    pub synced: bool,
    /// SyncDone commands seen: each asks for every port's link again.
    pub syncs: u64,
    /// IKE datagrams the control plane asked to send, for the runner to
    /// route (it holds the tables and the neighbour agent).
    pub datagrams: Vec<Datagram>,
    /// A DumpState was answered: the runner sends the ports' counters next.
    pub state_dumped: bool,
}

fn open_or_create(path: &Path, bytes: u64) -> Result<(SharedRing, bool), String> {
    match SharedRing::open(path) {
        Ok(r) if r.capacity() == bytes => Ok((r, false)),
        _ => SharedRing::create(path, bytes).map(|r| (r, true)).map_err(|e| e.to_string()),
    }
}

impl Control {
    pub fn open(c: &ControlConfig) -> Result<Control, String> {
        let dir = Path::new(&c.dir);
        std::fs::create_dir_all(dir).map_err(|e| format!("control.dir {}: {e}", dir.display()))?;
        let (dp2cp, _) = open_or_create(&dir.join("dp2cp.ring"), c.ring_bytes)?;
        let (cp2dp, _) = open_or_create(&dir.join("cp2dp.ring"), c.ring_bytes)?;
        let generation = dp2cp.generation() + 1;
        dp2cp.set_generation(generation);
        cp2dp.set_generation(generation);
        let mut from_cp = cp2dp.consumer();
        // Commands queued for our previous life are stale: the control plane
        // resends everything after our Hello.
        from_cp.discard_all();
        Ok(Control {
            to_cp: dp2cp.producer(),
            from_cp,
            reservations: SeqReservations::open(&dir.join("seq.state")),
            generation,
            synced: false,
            syncs: 0,
            datagrams: Vec::new(),
            state_dumped: false,
        })
    }

    /// Sequence numbers to start each outbound SPI above.
    pub fn seq_floors(&self) -> FxHashMap<u32, u64> {
        self.reservations.floors()
    }

    pub fn send(&mut self, e: &Event) -> bool {
        self.to_cp.push(&msg::encode(e)).is_ok()
    }

    /// Applies every queued command. Returns Some(tables) if they changed.
    pub fn poll(&mut self, state: &mut TableState, inject: &mut dyn FnMut(u16, &[u8]) -> bool) -> Option<Tables> {
        let mut changed = false;
        let mut replies = Vec::new();
        for _ in 0..4096 {
            let Some(decoded) = self.from_cp.pop_with(|b| msg::decode::<Command>(b)) else { break };
            let cmd = match decoded {
                Ok(c) => c,
                Err(e) => {
                    replies.push(Event::CommandRejected { reason: e.to_string() });
                    continue;
                }
            };
            match &cmd {
                Command::SyncDone => {
                    self.synced = true;
                    self.syncs += 1;
                }
                Command::SendDatagram { src, dst, payload } => self.datagrams.push((*src, *dst, payload.clone())),
                Command::Inject { port, frame } if !inject(*port, frame) => {
                    replies.push(Event::CommandRejected {
                        reason: format!("inject on port {port} failed (no main-lcore tx queue, or no mbuf)"),
                    });
                }
                Command::DumpCounters => replies.push(counters(state)),
                Command::DumpState => {
                    replies.push(state.describe());
                    self.state_dumped = true;
                }
                _ => {}
            }
            match state.apply(&cmd) {
                Ok(c) => changed |= c,
                Err(reason) => replies.push(Event::CommandRejected { reason }),
            }
        }
        let tables = changed.then(|| state.build());
        if let Some(t) = &tables {
            replies.push(Event::Applied { sas_in: t.in_sas.len() as u32, sas_out: t.out_sas.len() as u32 });
        }
        for r in &replies {
            self.send(r);
        }
        tables
    }

    /// Renews sequence-number reservations that use is approaching (new
    /// SAs included).
    pub fn reserve(&mut self, t: &Tables) {
        self.reservations.renew(t.out_sas.iter().map(|sa| (sa.handle, sa.seq_used())), self.synced);
    }
}

fn counters(state: &TableState) -> Event {
    let t = state.build();
    let mut sas = Vec::new();
    for (dir, list) in [
        (msg::Direction::Out, t.out_sas.iter().map(|s| (s.handle, s.stats.clone())).collect::<Vec<_>>()),
        (msg::Direction::In, t.in_sas.iter().map(|s| (s.spi, s.stats.clone())).collect()),
    ] {
        for (spi, st) in list {
            sas.push(SaCounters {
                spi,
                direction: dir,
                packets: st.get(STAT_PACKETS),
                bytes: st.get(STAT_BYTES),
                replay: st.get(STAT_REPLAY),
                icv_failed: st.get(STAT_ICV),
            });
        }
    }
    Event::Counters { sas, drops: Vec::new() }
}

/// Publishes new tables to every worker's queue (dropping any older
/// version the worker has not picked up yet).
pub fn publish(queues: &[Arc<ArrayQueue<Arc<Tables>>>], t: &Arc<Tables>) {
    for q in queues {
        // Capacity one: the newest tables replace any not yet taken.
        let _ = q.force_push(t.clone());
    }
}
