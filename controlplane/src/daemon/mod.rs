//! The `gw-controlplane` daemon around the sans-IO engine: its config,
//! the transports that carry IKE datagrams (the dataplane's rings or
//! kernel UDP sockets), the link that installs SAs in gw-dataplane, and
//! the admin socket gwctl talks to. All I/O of the control plane is here.

pub mod admin;
pub mod bird;
pub mod config;
pub mod metrics;
pub mod netlink;
pub mod stubconn;
pub mod stubsync;
pub mod transport;
pub mod view;

use std::net::{IpAddr, SocketAddr};
use std::sync::mpsc::Sender;

/// Everything the daemon's loop reacts to, from every thread.
#[derive(Debug)]
pub enum Input {
    Datagram {
        local: SocketAddr,
        remote: SocketAddr,
        data: Vec<u8>,
    },
    Dataplane(cpdp::msg::Event),
    Admin(admin::Request, Sender<admin::Response>),
    /// A Prometheus scrape (`metrics.rs`) wants the numbers.
    Metrics(Sender<metrics::Snapshot>),
    /// The kernel's usable addresses changed (kernel UDP transport:
    /// rtnetlink, `netlink.rs`).
    LocalAddresses(Vec<IpAddr>),
    /// A message from the kernel that did not parse (logged, skipped).
    NetlinkError(String),
    /// From the peer gateways' stub synchronization (`stubsync.rs`).
    Stub(stubsync::StubInput),
    /// From BIRD's control socket (MPSA peer discovery, `bird.rs`).
    Bird(bird::BirdInput),
}
