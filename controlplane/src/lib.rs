//! The control plane: IKEv2 (RFC 7296) and the extensions of ../shared/spec
//! (Multi-point SA, Clone IKE SA, MOBIKE-X, IKE SA stub synchronization),
//! as sans-IO state machines, plus the `gw-controlplane` daemon and `gwctl`.
//!
//! So far: [`codepoints`], the one module that holds every protocol number
//! the gateway uses, with the source of each.

pub mod codepoints;
