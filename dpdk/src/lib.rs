//! Safe wrappers over the system DPDK.
//!
//! Owns: EAL start-up and shutdown ([`Eal`]), packet mempools ([`Mempool`]),
//! owned mbufs freed on drop ([`Mbuf`], [`MbufBurst`]), ethdev ports with
//! several rx/tx queues and RSS ([`Port`], [`RxQueue`], [`TxQueue`]),
//! `rte_ring` message queues ([`Ring`]) and closures launched on worker
//! lcores ([`Eal::launch`]). Every DPDK return code and `rte_errno` becomes
//! a typed [`Error`] in one place ([`error`]).
//!
//! Never does: packet processing (that is the dataplane's, over byte
//! slices), allocation on the fast path, or anything that needs hugepages
//! (callers pass `--no-huge` where there are none).
//!
//! Panics: none on DPDK failures (they are `Err`); the only panics are on
//! broken invariants of this crate (documented at each `expect`).
//!
//! This crate and the shared-memory ring are the only places `unsafe` lives;
//! every block has a `// SAFETY:` line.

pub mod eal;
pub mod error;
pub mod ethdev;
pub mod mbuf;
pub mod mempool;
pub mod ring;

pub use dpdk_sys as sys;
pub use eal::{Eal, LaunchHandle, LcoreId};
pub use error::{Error, ErrorKind, Result};
pub use ethdev::{Port, PortConfig, PortId, PortStats, RxQueue, TxQueue};
pub use mbuf::{Drain, Mbuf, MbufBurst, BURST_SIZE};
pub use mempool::Mempool;
pub use ring::{Ring, RingItem};

/// TSC ticks since an arbitrary start (`rte_rdtsc`).
#[inline]
pub fn rdtsc() -> u64 {
    // SAFETY: rte_rdtsc reads the time-stamp counter; no memory is touched.
    unsafe { sys::shim_rte_rdtsc() }
}

/// The DPDK version string this binary was built against and runs with.
pub fn version() -> String {
    // SAFETY: rte_version returns a pointer to a static NUL-terminated string.
    unsafe { std::ffi::CStr::from_ptr(sys::rte_version()) }.to_string_lossy().into_owned()
}
