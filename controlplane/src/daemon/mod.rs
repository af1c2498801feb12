//! The `gw-controlplane` daemon around the sans-IO engine: its config,
//! the transports that carry IKE datagrams (the dataplane's rings or
//! kernel UDP sockets), the link that installs SAs in gw-dataplane, and
//! the admin socket gwctl talks to. All I/O of the control plane is here.

pub mod admin;
pub mod config;
pub mod transport;
pub mod view;

use std::net::SocketAddr;
use std::sync::mpsc::Sender;

/// Everything the daemon's loop reacts to, from every thread.
#[derive(Debug)]
pub enum Input {
    Datagram { local: SocketAddr, remote: SocketAddr, data: Vec<u8> },
    Dataplane(cpdp::msg::Event),
    Admin(admin::Request, Sender<admin::Response>),
}
