//! The messages on the two rings, and their encoding (postcard: compact,
//! serde-derived, no allocation beyond the message's own fields).
//!
//! Command: control plane -> dataplane. Event: dataplane -> control plane.
//! Decoding never panics; a bad message is a [`DecodeError`] the receiver
//! counts and reports, and nothing already installed is lost.
//!
//! Resync: every dataplane start bumps the generation and sends
//! [`Event::Hello`]. The control plane answers by installing everything
//! again and ends with [`Command::SyncDone`]; a dataplane configured to
//! wait for it forwards nothing before (fail closed: no cleartext leaks
//! before the policy is in).

use std::net::{IpAddr, SocketAddr};

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Direction {
    In,
    Out,
}

/// An address prefix on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct WirePrefix {
    pub addr: IpAddr,
    pub len: u8,
}

/// Everything the dataplane needs for one tunnel-mode SA.
///
/// SAs are named by their handle. An inbound SA's handle is its SPI (ours,
/// unique here); an outbound SA's is the control plane's choice, unique
/// among its outbound SAs where the SPIs, chosen by many peers, need not
/// be (the control plane uses the inbound SPI of the same child SA).
/// `DeleteSa`, `UpdateSaAddresses`, `PolicyAction::Protect` and the
/// events about outbound SAs (`Lifetime`, `SeqExhausted`, counters) carry
/// the handle in their `spi` field.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SaSpec {
    /// The SPI on the wire.
    pub spi: u32,
    /// The name commands and events use; the SPI for inbound SAs.
    pub handle: u32,
    pub direction: Direction,
    /// Algorithm name as in configs (`aes128gcm`, `aes128cbc-sha1`, ...).
    pub alg: String,
    pub enc_key: Zeroizing<Vec<u8>>,
    pub auth_key: Zeroizing<Vec<u8>>,
    pub local: IpAddr,
    pub remote: IpAddr,
    /// NAT-T UDP ports (ours, the peer's).
    pub natt: Option<(u16, u16)>,
    pub esn: bool,
    pub replay_window: u32,
    /// Outbound: last sequence number used (resuming after a restart).
    pub seq: u64,
    pub inner_src: Vec<WirePrefix>,
    pub inner_dst: Vec<WirePrefix>,
    pub lifetime: Lifetimes,
    /// Outbound, multihoming (MOBIKE-X ADD_SA_ADDRESS): more outer address
    /// pairs (ours, the peer's) after (`local`, `remote`), in order of
    /// preference. The dataplane sends on the first whose local address is
    /// on a port with its link up; the others take over at once.
    pub paths: Vec<(IpAddr, IpAddr)>,
    /// ESP transport mode (RFC 4303 3.1.1; USE_TRANSPORT_MODE, RFC 7296
    /// 1.3.1): packets keep their own header, whose addresses are
    /// (`local`, `remote`); the inner prefixes are unused. A move
    /// (`UpdateSaAddresses`) carries the SA's selectors and the policy of
    /// its old peer address along. Tunnel mode otherwise.
    pub transport: bool,
}

/// Soft and hard lifetimes by octets, packets and seconds (0 = none).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lifetimes {
    pub soft_bytes: u64,
    pub hard_bytes: u64,
    pub soft_packets: u64,
    pub hard_packets: u64,
    pub soft_secs: u64,
    pub hard_secs: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum LifetimeKind {
    /// Time to rekey.
    Soft,
    /// The SA no longer carries traffic.
    Hard,
}

impl std::fmt::Debug for SaSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SaSpec")
            .field("spi", &format_args!("{:#x}", self.spi))
            .field("handle", &format_args!("{:#x}", self.handle))
            .field("direction", &self.direction)
            .field("alg", &self.alg)
            .field("keys", &"<redacted>")
            .field("local", &self.local)
            .field("remote", &self.remote)
            .finish()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PolicyAction {
    /// Encrypt with the outbound SA of this handle.
    Protect(u32),
    Bypass,
    Discard,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// Remove every SA, group SA, policy, route and address the control
    /// plane installed (the config file's static entries stay, and so do
    /// the neighbours learned from ARP and ND).
    Flush,
    /// Install or replace an SA (make-before-break: packets in flight on
    /// the old one finish first).
    InstallSa(SaSpec),
    /// Remove the SA of this handle (inbound: its SPI).
    DeleteSa {
        spi: u32,
        direction: Direction,
    },
    /// Change an SA's tunnel endpoints (MOBIKE UPDATE_SA_ADDRESSES); `spi`
    /// is its handle.
    UpdateSaAddresses {
        spi: u32,
        direction: Direction,
        local: IpAddr,
        remote: IpAddr,
        natt: Option<(u16, u16)>,
    },
    /// Multihoming: every outer address pair (ours, the peer's) of the
    /// outbound SA with this handle, preferred first (at least one). Keys,
    /// sequence numbers and counters stay.
    SetSaPaths {
        spi: u32,
        paths: Vec<(IpAddr, IpAddr)>,
        natt: Option<(u16, u16)>,
    },
    SetPolicy {
        dst: WirePrefix,
        action: PolicyAction,
    },
    DeletePolicy {
        dst: WirePrefix,
    },
    SetRoute {
        dst: WirePrefix,
        port: u16,
        via: Option<IpAddr>,
    },
    DeleteRoute {
        dst: WirePrefix,
    },
    SetNeighbor {
        ip: IpAddr,
        mac: [u8; 6],
    },
    /// The control plane has installed everything after a Hello.
    SyncDone,
    /// Send this frame on a port (the control plane's IKE packets).
    Inject {
        port: u16,
        frame: Vec<u8>,
    },
    /// Ask for an [`Event::Counters`].
    DumpCounters,
    /// Ask for an [`Event::State`].
    DumpState,
    /// A group SA (MPSA) for `group`: installed inbound at once, sent with
    /// after `rollover1_secs`, the group's previous SA removed after
    /// `rollover2_secs` (NOTES.md; with no previous SA, all at once).
    /// `members`: inner prefix -> member endpoint's outer address. The
    /// SA's direction, remote and replay window are ignored.
    InstallGroupSa {
        group: String,
        sa: SaSpec,
        members: Vec<(WirePrefix, IpAddr)>,
        rollover1_secs: u32,
        rollover2_secs: u32,
    },
    /// Remove a group and all its SAs (lifetime over, or this endpoint left).
    DeleteGroup {
        group: String,
    },
    /// A group's member table replaced, its SAs kept: peer discovery
    /// (mpsa-04 section 4, BGP) learned or withdrew a prefix. Same
    /// meaning as `InstallGroupSa`'s `members`; the group must exist.
    SetGroupMembers {
        group: String,
        members: Vec<(WirePrefix, IpAddr)>,
    },
    /// Multihoming: an address of ours on a port (its subnet routes there).
    AddAddress {
        port: u16,
        addr: WirePrefix,
    },
    RemoveAddress {
        port: u16,
        addr: IpAddr,
    },
    /// Send a UDP datagram (the control plane's IKE messages): the
    /// dataplane adds IP and UDP, routes it and resolves the next hop.
    SendDatagram {
        src: SocketAddr,
        dst: SocketAddr,
        payload: Vec<u8>,
    },
}

/// One port's counters (the NIC's, `rte_eth_stats`) and link, sent every
/// second: gwctl's port table and the Prometheus port series.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortCounters {
    pub port: u16,
    pub name: String,
    pub up: bool,
    pub rx_packets: u64,
    pub tx_packets: u64,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    /// Received but dropped by the device (rx queue full).
    pub rx_missed: u64,
    pub rx_errors: u64,
    pub tx_errors: u64,
    /// Receives that found no mbuf.
    pub rx_nombuf: u64,
}

/// Counters of one SA.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SaCounters {
    /// The SA's handle (inbound: its SPI).
    pub spi: u32,
    pub direction: Direction,
    pub packets: u64,
    pub bytes: u64,
    pub replay: u64,
    pub icv_failed: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Event {
    /// The dataplane (re)started with this generation; install everything.
    Hello {
        generation: u64,
        ports: Vec<(String, [u8; 6])>,
    },
    /// A frame for the control plane (packets to our addresses that are
    /// not IKE).
    Punt {
        port: u16,
        frame: Vec<u8>,
    },
    /// A UDP datagram to one of our addresses on the IKE ports (500, and
    /// 4500 with the non-ESP marker still in `payload`).
    Datagram {
        port: u16,
        src: SocketAddr,
        dst: SocketAddr,
        payload: Vec<u8>,
    },
    /// A command could not be applied; nothing of it was installed.
    CommandRejected {
        reason: String,
    },
    /// The tables now in use by every worker include every command so far.
    Applied {
        sas_in: u32,
        sas_out: u32,
    },
    Counters {
        sas: Vec<SaCounters>,
        drops: Vec<(String, u64)>,
    },
    /// An SA (named by its handle) reached a lifetime limit.
    Lifetime {
        spi: u32,
        direction: Direction,
        kind: LifetimeKind,
        packets: u64,
        bytes: u64,
    },
    /// What is installed: SAs (SPI, direction, algorithm, local, remote),
    /// the control plane's policies, groups (name, SPI sent with, SPIs
    /// accepted) and the addresses added at run time.
    State {
        sas: Vec<(u32, Direction, String, IpAddr, IpAddr)>,
        policies: Vec<(WirePrefix, PolicyAction)>,
        groups: Vec<(String, Option<u32>, Vec<u32>)>,
        addresses: Vec<(u16, WirePrefix)>,
        /// Every route (config and control plane): prefix, port, next hop
        /// (None: on the link).
        routes: Vec<(WirePrefix, u16, Option<IpAddr>)>,
        /// Neighbours known (config, control plane, ARP / ND): address, MAC.
        neighbors: Vec<(IpAddr, [u8; 6])>,
    },
    /// Every port's counters and link (once a second).
    Ports {
        ports: Vec<PortCounters>,
    },
    /// An outbound SA (named by its handle) used its last sequence number
    /// (RFC 4303 3.3.3).
    SeqExhausted {
        spi: u32,
    },
    /// Packets dropped since the last report, by reason (once a second at
    /// most), with the last unknown SPI seen (a peer using an SA we lack:
    /// RFC 4303 3.4.2 asks for an auditable event).
    Drops {
        counts: Vec<(String, u64)>,
        last_unknown_spi: Option<u32>,
    },
    /// A port's link went down or came up (and once per port after Hello),
    /// with our addresses on it: a down link takes them out of use, and
    /// multihomed SAs already send on their next path.
    PortLink {
        port: u16,
        up: bool,
        addresses: Vec<IpAddr>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("undecodable message: {0}")]
pub struct DecodeError(String);

pub fn encode<T: Serialize>(m: &T) -> Vec<u8> {
    postcard::to_stdvec(m).expect("our messages always serialize")
}

pub fn decode<'a, T: Deserialize<'a>>(b: &'a [u8]) -> Result<T, DecodeError> {
    postcard::from_bytes(b).map_err(|e| DecodeError(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> SaSpec {
        SaSpec {
            handle: 0x1001,
            spi: 0x1234,
            direction: Direction::Out,
            alg: "aes128gcm".into(),
            enc_key: Zeroizing::new(vec![1; 20]),
            auth_key: Zeroizing::new(vec![]),
            local: "192.0.2.1".parse().unwrap(),
            remote: "2001:db8::2".parse().unwrap(),
            natt: Some((4500, 4501)),
            esn: true,
            replay_window: 1024,
            seq: 77,
            inner_src: vec![WirePrefix { addr: "10.0.0.0".parse().unwrap(), len: 8 }],
            inner_dst: vec![],
            lifetime: Lifetimes { hard_bytes: 1 << 30, soft_secs: 3000, ..Default::default() },
            paths: vec![],
            transport: false,
        }
    }

    #[test]
    fn every_message_round_trips() {
        let cmds = vec![
            Command::Flush,
            Command::InstallSa(spec()),
            Command::DeleteSa { spi: 9, direction: Direction::In },
            Command::SetPolicy {
                dst: WirePrefix { addr: "10.2.0.0".parse().unwrap(), len: 16 },
                action: PolicyAction::Protect(0x1234),
            },
            Command::SetNeighbor { ip: "10.0.0.1".parse().unwrap(), mac: [2, 0, 0, 0, 0, 1] },
            Command::Inject { port: 1, frame: vec![0xab; 300] },
            Command::SyncDone,
        ];
        for c in cmds {
            assert_eq!(decode::<Command>(&encode(&c)).unwrap(), c);
        }
        let ev = Event::Punt { port: 0, frame: vec![1, 2, 3] };
        assert_eq!(decode::<Event>(&encode(&ev)).unwrap(), ev);
        assert!(!format!("{:?}", spec()).contains("[1, 1"), "keys are not in Debug");
    }

    #[test]
    fn garbage_and_truncation_are_errors() {
        let b = encode(&Command::InstallSa(spec()));
        for cut in 0..b.len() {
            assert!(decode::<Command>(&b[..cut]).is_err(), "cut {cut}");
        }
        assert!(decode::<Command>(&[0xff, 0xff, 0xff]).is_err());
    }
}
