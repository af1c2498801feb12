//! The link between `gw-controlplane` and `gw-dataplane` (DESIGN.md,
//! "Processes"): one bounded, lock-free, single-producer single-consumer
//! ring per direction, in a shared-memory file, carrying length-prefixed
//! messages. Neither side ever blocks on it: a full ring is an error the
//! producer counts.
//!
//! The control plane does not link DPDK, so this crate depends on nothing
//! of it. `unsafe` here is limited to the mapped memory ([`ring`]), each
//! block with its reason.

pub mod msg;
pub mod ring;

pub use ring::{Consumer, Producer, RingError, SharedRing};
