//! MOBIKE-X (draft-mglt-ipsec-mm-mobikex-00; decisions in
//! ../shared/spec/NOTES.md "MOBIKE-X"): MOBIKE (RFC 4555) with versions,
//! SELECTOR sets naming the SAs an action concerns, UPDATE with explicit
//! old and new addresses and the CHECK bit, ADD_SA_ADDRESS and
//! REMOVE_SA_ADDRESS for several addresses per SA, and alternate
//! addresses with multihoming information.
//!
//! - [`param`]: the notify parameters (11.4), typed parse and emit.
//! - [`selector`]: SELECTOR sets, the section 8 procedure, matching.
//! - [`version`]: the version negotiation of 6.1, 6.2 and 7.1.
//!
//! The engine's use of them is `ike::engine::mobikex`.

pub mod param;
pub mod selector;
pub mod version;

pub use param::{IpParam, IpsecMode, Multihoming, Param, ParamError};
pub use selector::{Action, ActionKind, Candidate, Selection, Selector, Step};
pub use version::{Offer, Version};
