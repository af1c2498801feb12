//! IKEv2 (RFC 7296) without I/O: connections ([`config`]), proposals,
//! traffic selectors, and the [`engine`] that runs the exchanges.

pub mod config;
pub mod engine;
pub mod pki;
pub mod proposal;
pub mod ts;

pub use config::{Connection, Role, Settings};
pub use engine::{Engine, Event, Output};
