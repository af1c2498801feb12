//! Raw FFI bindings to the system DPDK (22.11), generated at build time by
//! bindgen from the headers that `pkg-config libdpdk` names, plus `shim_*`
//! wrappers (shim/shim.c) for DPDK's static inline hot functions.
//!
//! Everything here is `unsafe` and unchecked; the safe API is the `dpdk`
//! crate beside this one. Build with the `static` feature to link DPDK's .a
//! files into the final binary (see the workspace README).

#![allow(non_upper_case_globals, non_camel_case_types, non_snake_case)]
#![allow(clippy::all, clippy::undocumented_unsafe_blocks)]
#![allow(missing_debug_implementations, unsafe_op_in_unsafe_fn)]

include!(concat!(env!("OUT_DIR"), "/bindings.rs"));

/// RSS hash types from rte_ethdev.h, which defines them with the
/// function-like macro `RTE_BIT64` that bindgen cannot evaluate.
pub mod rss {
    pub const RTE_ETH_RSS_IPV4: u64 = 1 << 2;
    pub const RTE_ETH_RSS_FRAG_IPV4: u64 = 1 << 3;
    pub const RTE_ETH_RSS_NONFRAG_IPV4_TCP: u64 = 1 << 4;
    pub const RTE_ETH_RSS_NONFRAG_IPV4_UDP: u64 = 1 << 5;
    pub const RTE_ETH_RSS_NONFRAG_IPV4_OTHER: u64 = 1 << 7;
    pub const RTE_ETH_RSS_IPV6: u64 = 1 << 8;
    pub const RTE_ETH_RSS_FRAG_IPV6: u64 = 1 << 9;
    pub const RTE_ETH_RSS_NONFRAG_IPV6_TCP: u64 = 1 << 10;
    pub const RTE_ETH_RSS_NONFRAG_IPV6_UDP: u64 = 1 << 11;
    pub const RTE_ETH_RSS_NONFRAG_IPV6_OTHER: u64 = 1 << 12;
    pub const RTE_ETH_RSS_IPV6_EX: u64 = 1 << 15;
    /// `RTE_ETH_RSS_IP`: hash on the outer addresses only, which keeps every
    /// packet of one ESP SA (same outer pair) on one queue.
    pub const RTE_ETH_RSS_IP: u64 = RTE_ETH_RSS_IPV4
        | RTE_ETH_RSS_FRAG_IPV4
        | RTE_ETH_RSS_NONFRAG_IPV4_OTHER
        | RTE_ETH_RSS_IPV6
        | RTE_ETH_RSS_FRAG_IPV6
        | RTE_ETH_RSS_NONFRAG_IPV6_OTHER
        | RTE_ETH_RSS_IPV6_EX;
}
