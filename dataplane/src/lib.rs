//! The gateway's fast path as plain Rust over byte buffers, plus what the
//! `gw-dataplane` runner needs that is not DPDK: its configuration and the
//! pcap file format used by tests and the harness.
//!
//! DPDK types never appear here; they live in the `dpdk` crate and in the
//! runner (src/bin/gw-dataplane).

pub mod buf;
pub mod config;
pub mod counters;
pub mod crypto;
pub mod drop;
pub mod group;
pub mod ipsec;
pub mod lpm;
pub mod neigh;
pub mod paths;
pub mod pcap;
pub mod pipeline;
pub mod replay;
pub mod sa;
pub mod state;
pub mod tables;
pub mod transport;
pub mod wire;
