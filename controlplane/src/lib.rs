//! The control plane: IKEv2 (RFC 7296) and the extensions of ../shared/spec
//! (Multi-point SA, Clone IKE SA, MOBIKE-X, IKE SA stub synchronization),
//! as sans-IO state machines, plus the `gw-controlplane` daemon and `gwctl`.
//!
//! - [`codepoints`]: every protocol number, with its source.
//! - [`wire`]: typed parse and emit of IKEv2 messages.
//! - [`crypto`]: PRFs, DH, SK payload protection, key derivation.
//! - [`ike`]: the IKEv2 engine (exchanges, timers, SAs), without I/O.

pub mod bgp;
pub mod codepoints;
pub mod crypto;
pub mod daemon;
pub mod ike;
pub mod mobikex;
pub mod mpsa;
pub mod stub;
pub mod wire;
