//! Carrying IKE datagrams: kernel UDP sockets (one receive thread per
//! socket) or the dataplane's rings (a thread draining dp->cp), both
//! feeding the daemon's one input channel; and the cp->dp command ring.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::path::Path;
use std::sync::mpsc::Sender;
use std::time::Duration;

use cpdp::msg::{self, Command, Event};
use cpdp::ring::{Producer, SharedRing};

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

    pub fn send(&self, local: SocketAddr, remote: SocketAddr, data: &[u8]) -> Result<(), String> {
        let s = self.sockets.get(&local).ok_or_else(|| format!("no socket bound to {local}"))?;
        s.send_to(data, remote).map(|_| ()).map_err(|e| format!("send {local} -> {remote}: {e}"))
    }
}

/// The rings to gw-dataplane: commands down (this side), events up (a
/// thread that turns them into [`Input`]s).
#[derive(Debug)]
pub struct DataplaneLink {
    to_dp: Producer,
    pub generation: Option<u64>,
    pub dropped: u64,
}

impl DataplaneLink {
    /// Opens the ring files gw-dataplane created in `dir`, waiting up to
    /// `wait` for them to appear.
    pub fn open(dir: &Path, tx: Sender<Input>, wait: Duration) -> Result<DataplaneLink, String> {
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
        let mut from_dp = dp2cp.consumer();
        std::thread::Builder::new()
            .name("dp-events".into())
            .spawn(move || {
                // Idle back-off: the control plane never spins a core.
                let mut idle = 0u32;
                loop {
                    match from_dp.pop_with(|b| msg::decode::<Event>(b)) {
                        Some(Ok(ev)) => {
                            idle = 0;
                            if tx.send(Input::Dataplane(ev)).is_err() {
                                return;
                            }
                        }
                        Some(Err(e)) => eprintln!("gw-controlplane: undecodable dataplane event: {e}"),
                        None => {
                            idle = (idle + 1).min(10);
                            std::thread::sleep(Duration::from_micros(50 << idle.min(5)));
                        }
                    }
                }
            })
            .map_err(|e| e.to_string())?;
        Ok(DataplaneLink { to_dp: cp2dp.producer(), generation: None, dropped: 0 })
    }

    /// Sends a command; a full ring is counted (the dataplane is stuck or
    /// gone; its restart resyncs everything).
    pub fn send(&mut self, c: &Command) {
        if self.to_dp.push(&msg::encode(c)).is_err() {
            self.dropped += 1;
        }
    }
}
