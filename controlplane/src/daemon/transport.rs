//! Carrying IKE datagrams: kernel UDP sockets (one receive thread per
//! socket) or the dataplane's rings (a thread draining dp->cp), each
//! thread processing what it receives under the daemon's lock; and the
//! cp->dp command ring.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::path::Path;
use std::time::Duration;

use cpdp::msg::{self, Command, Event};
use cpdp::ring::{Consumer, Producer, SharedRing};

use super::Input;
use crate::codepoints::{IKE_PORT, NATT_PORT};

/// Kernel UDP sockets on ports 500 and 4500 of each listen address.
#[derive(Debug)]
pub struct KernelUdp {
    sockets: HashMap<SocketAddr, UdpSocket>,
}

impl KernelUdp {
    pub fn bind(addrs: &[IpAddr]) -> Result<KernelUdp, String> {
        let mut sockets = HashMap::new();
        for a in addrs {
            for port in [IKE_PORT, NATT_PORT] {
                let local = SocketAddr::new(*a, port);
                let s = UdpSocket::bind(local).map_err(|e| format!("binding {local}: {e}"))?;
                sockets.insert(local, s);
            }
        }
        Ok(KernelUdp { sockets })
    }

    /// One receive thread per socket, each handing what arrives to
    /// `deliver` (the daemon processes it on that thread: no hand-off).
    pub fn spawn_receivers(&self, deliver: std::sync::Arc<dyn Fn(Input) + Send + Sync>) -> Result<(), String> {
        for (local, s) in &self.sockets {
            let (local, r) = (*local, s.try_clone().map_err(|e| e.to_string())?);
            let deliver = deliver.clone();
            std::thread::Builder::new()
                .name(format!("udp-{local}"))
                .spawn(move || {
                    let mut buf = vec![0u8; 65536];
                    while let Ok((n, remote)) = r.recv_from(&mut buf) {
                        deliver(Input::Datagram { local, remote, data: buf[..n].to_vec() });
                    }
                })
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    /// Whether a socket is bound to `a` (either port).
    pub fn bound(&self, a: IpAddr) -> bool {
        self.sockets.keys().any(|s| s.ip() == a)
    }

    /// Whether a socket is bound to the unspecified address (any of ours).
    pub fn binds_any(&self) -> bool {
        self.sockets.keys().any(|s| s.ip().is_unspecified())
    }

    pub fn send(&self, local: SocketAddr, remote: SocketAddr, data: &[u8]) -> Result<(), String> {
        let s = self.sockets.get(&local).ok_or_else(|| format!("no socket bound to {local}"))?;
        s.send_to(data, remote).map(|_| ()).map_err(|e| format!("send {local} -> {remote}: {e}"))
    }
}

/// The rings to gw-dataplane: commands down (this side), events up (a
/// thread that hands them to the daemon).
pub struct DataplaneLink {
    to_dp: Producer,
    from_dp: Option<Consumer>,
    /// The dp->cp ring once more, only to read its depth (its consumer
    /// end lives in the events thread).
    from_dp_watch: Option<SharedRing>,
    pub generation: Option<u64>,
    pub dropped: u64,
}

impl std::fmt::Debug for DataplaneLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DataplaneLink(generation {:?}, dropped {})", self.generation, self.dropped)
    }
}

/// The control rings' depth: (to the dataplane, from it if readable), each
/// (bytes queued, capacity).
pub type RingDepths = ((u64, u64), Option<(u64, u64)>);

impl DataplaneLink {
    /// The rings' depth now.
    pub fn ring_fill(&self) -> RingDepths {
        ((self.to_dp.fill(), self.to_dp.capacity()), self.from_dp_watch.as_ref().map(|r| (r.fill(), r.capacity())))
    }

    /// Opens the ring files gw-dataplane created in `dir`, waiting up to
    /// `wait` for them to appear.
    pub fn open(dir: &Path, wait: Duration) -> Result<DataplaneLink, String> {
        let deadline = std::time::Instant::now() + wait;
        let (cp2dp, dp2cp) = loop {
            match (SharedRing::open(&dir.join("cp2dp.ring")), SharedRing::open(&dir.join("dp2cp.ring"))) {
                (Ok(a), Ok(b)) => break (a, b),
                (a, b) => {
                    if std::time::Instant::now() >= deadline {
                        let e = a.err().or(b.err()).map(|e| e.to_string()).unwrap_or_default();
                        return Err(format!("dataplane rings in {}: {e} (is gw-dataplane running?)", dir.display()));
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        };
        Ok(DataplaneLink {
            to_dp: cp2dp.producer(),
            from_dp: Some(dp2cp.consumer()),
            from_dp_watch: SharedRing::open(&dir.join("dp2cp.ring")).ok(),
            generation: None,
            dropped: 0,
        })
    }

    /// Starts the thread that reads the dataplane's events and hands each
    /// to `deliver` (the daemon processes it on that thread: no hand-off).
    /// The dataplane's main lcore serves the rings once a millisecond, so
    /// the reader looks once a millisecond, and every 4 ms after 50 ms
    /// without events: the control plane never spins a core, and a poll
    /// that backs off from microseconds would mostly find nothing.
    pub fn spawn_events(&mut self, deliver: std::sync::Arc<dyn Fn(Input) + Send + Sync>) -> Result<(), String> {
        let mut from_dp = self.from_dp.take().ok_or("the dataplane's events are read already")?;
        std::thread::Builder::new()
            .name("dp-events".into())
            .spawn(move || {
                let mut empty = 0u32;
                loop {
                    match from_dp.pop_with(|b| msg::decode::<Event>(b)) {
                        Some(Ok(ev)) => {
                            empty = 0;
                            deliver(Input::Dataplane(ev));
                        }
                        Some(Err(e)) => eprintln!("gw-controlplane: undecodable dataplane event: {e}"),
                        None => {
                            empty = empty.saturating_add(1);
                            std::thread::sleep(Duration::from_millis(if empty < 50 { 1 } else { 4 }));
                        }
                    }
                }
            })
            .map_err(|e| e.to_string())?;
        Ok(())
    }

    /// Sends a command; a full ring is counted (the dataplane is stuck or
    /// gone; its restart resyncs everything).
    pub fn send(&mut self, c: &Command) {
        if self.to_dp.push(&msg::encode(c)).is_err() {
            self.dropped += 1;
        }
    }
}
