//! Multi-point SA (draft-yamaya-ipsecme-mpsa): a gateway hands one group
//! ESP SA to every endpoint of a group inside IKEv2, and endpoints then
//! send to each other directly with it.

pub mod put;

pub use put::{MpsaError, MpsaPut};
pub mod group;

pub use group::{GatewayGroup, GroupConfig, GroupToml, MpsaRole};
