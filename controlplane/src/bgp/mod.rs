//! Peer discovery for Multi-point SA with BGP (draft-yamaya-ipsecme-mpsa-04
//! section 4.1), through BIRD 2, an existing speaker: no BGP here.
//!
//! Each endpoint's speaker has an iBGP session to the hub's over the child
//! SA and announces the endpoint's LAN prefixes with the endpoint's ESP
//! address as the BGP next hop (the draft's "remote next hop" way, in the
//! NEXT_HOP attribute itself); the hub's speaker is a route reflector, so
//! every endpoint learns every other's prefixes and the address to send
//! them to with the group SA. gw-controlplane writes both speakers'
//! configs (`--bird-config`, [`bird`]), reads the routes an endpoint's
//! speaker learned over its control socket ([`birdc`]) into the group's
//! member table, and keeps the hub's import filter to the members up now:
//! a member may announce only its own prefixes (its child SAs' selectors,
//! or what `[[group]] announce` lists) with its own ESP address as next
//! hop (mpsa-04 section 5: access control by filtering routes at the
//! gateway).

pub mod bird;
pub mod birdc;

use std::net::IpAddr;
use std::path::PathBuf;

use cpdp::msg::WirePrefix;
use serde::Deserialize;

use crate::ike::config::Connection;
use crate::mpsa::MpsaRole;

/// `[bgp]` as written.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BgpToml {
    /// BIRD's control socket (`bird -s PATH`).
    pub socket: PathBuf,
    /// The speaker's own address (its router id and session source):
    /// inside the child SA's selectors, so the session crosses it.
    pub address: IpAddr,
    #[serde(default = "d_asn")]
    pub asn: u32,
    /// How often the learned routes are read, milliseconds.
    #[serde(default = "d_poll")]
    pub poll_ms: u64,
    /// Endpoint: the connection to the hub whose group gets the routes.
    #[serde(default)]
    pub connection: Option<String>,
    /// Endpoint: the hub's speaker.
    #[serde(default)]
    pub hub: Option<IpAddr>,
    /// Endpoint: our LAN prefixes, announced with `next_hop`.
    #[serde(default)]
    pub announce: Vec<String>,
    /// Endpoint: the ESP address others send our prefixes to; by default
    /// the connection's `local`.
    #[serde(default)]
    pub next_hop: Option<IpAddr>,
    /// Hub: where members' speakers are (BIRD's dynamic BGP accepts a
    /// session from any address in it; the filter then asks which member).
    #[serde(default)]
    pub neighbors: Option<String>,
    /// Hub: the file the member filter is written to (the generated BIRD
    /// config includes it; gw-controlplane rewrites it and reconfigures).
    #[serde(default)]
    pub filter_file: Option<PathBuf>,
}

fn d_asn() -> u32 {
    65000
}
fn d_poll() -> u64 {
    1000
}

/// A checked `[bgp]`.
#[derive(Debug, Clone, PartialEq)]
pub struct BgpConfig {
    pub socket: PathBuf,
    pub address: IpAddr,
    pub asn: u32,
    pub poll: std::time::Duration,
    pub side: Side,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Side {
    Endpoint { connection: String, hub: IpAddr, announce: Vec<WirePrefix>, next_hop: IpAddr },
    Hub { neighbors: WirePrefix, filter_file: PathBuf },
}

/// A prefix as BGP carries it: an address and length with no host bits.
pub fn parse_prefix(s: &str) -> Result<WirePrefix, String> {
    let p: crate::ike::ts::Prefix = s.parse()?;
    let network = p.to_ts().start;
    if network != p.addr {
        return Err(format!("{s:?} has host bits set (the prefix is {network}/{})", p.len));
    }
    Ok(WirePrefix { addr: p.addr, len: p.len })
}

/// [`parse_prefix`] for tests and tools: panics on a bad prefix.
pub fn parse_prefix_text(s: &str) -> WirePrefix {
    parse_prefix(s).unwrap_or_else(|e| panic!("{e}"))
}

/// `a.b.c.d/len`.
pub fn text(p: WirePrefix) -> String {
    format!("{}/{}", p.addr, p.len)
}

/// The selector of a prefix's addresses (`ike::ts`: containment and
/// overlap are range checks there).
fn selector(p: WirePrefix) -> crate::wire::TrafficSelector {
    crate::ike::ts::Prefix { addr: p.addr, len: p.len }.to_ts()
}

/// Whether `inner` lies within `outer` (equal or more specific).
pub fn within(inner: WirePrefix, outer: WirePrefix) -> bool {
    crate::ike::ts::within(&[selector(inner)], &[selector(outer)])
}

/// Whether two prefixes share an address.
pub fn overlap(a: WirePrefix, b: WirePrefix) -> bool {
    crate::ike::ts::intersect(&selector(a), &selector(b)).is_some()
}

impl BgpToml {
    /// Checks `[bgp]` against the daemon's MPSA role and its connections;
    /// errors name the field.
    pub fn build(&self, role: MpsaRole, conns: &[Connection]) -> Result<BgpConfig, String> {
        if self.address.is_unspecified() || self.address.is_multicast() {
            return Err(format!("address: {} is not a speaker's address", self.address));
        }
        if !(100..=60_000).contains(&self.poll_ms) {
            return Err(format!("poll_ms: {} is not 100..60000", self.poll_ms));
        }
        if self.asn == 0 || self.asn == 23456 {
            return Err(format!("asn: {} is reserved", self.asn));
        }
        let side = match role {
            MpsaRole::Off => return Err("[bgp] is MPSA peer discovery: set daemon.mpsa".into()),
            MpsaRole::Endpoint => {
                if self.neighbors.is_some() || self.filter_file.is_some() {
                    return Err("neighbors, filter_file: a hub's fields (daemon.mpsa is \"endpoint\")".into());
                }
                let name = self.connection.clone().ok_or("connection: which connection goes to the hub")?;
                let c =
                    conns.iter().find(|c| c.name == name).ok_or(format!("connection: no connection named {name:?}"))?;
                let hub = self.hub.ok_or("hub: the hub speaker's address")?;
                if self.announce.is_empty() {
                    return Err("announce: the prefixes this endpoint's members reach it by".into());
                }
                let announce = self
                    .announce
                    .iter()
                    .enumerate()
                    .map(|(i, s)| parse_prefix(s).map_err(|e| format!("announce[{i}]: {e}")))
                    .collect::<Result<Vec<_>, _>>()?;
                let Some(next_hop) = self.next_hop.or(c.local).filter(|a| !a.is_unspecified()) else {
                    return Err(format!(
                        "next_hop: connection {name:?} has no fixed local address: say which ESP address to announce"
                    ));
                };
                if announce.iter().any(|p| p.addr.is_ipv6()) && next_hop.is_ipv4() {
                    return Err(format!(
                        "announce: an IPv6 prefix with the IPv4 next hop {next_hop}: BGP carries IPv4 next hops \
                         for IPv4 prefixes only here"
                    ));
                }
                Side::Endpoint { connection: name, hub, announce, next_hop }
            }
            MpsaRole::Gateway => {
                if self.connection.is_some() || self.hub.is_some() || !self.announce.is_empty() {
                    return Err("connection, hub, announce: an endpoint's fields (daemon.mpsa is \"gateway\")".into());
                }
                let n = self.neighbors.as_deref().ok_or("neighbors: the prefix members' speakers are in")?;
                let neighbors = parse_prefix(n).map_err(|e| format!("neighbors: {e}"))?;
                if neighbors.addr.is_ipv4() != self.address.is_ipv4() {
                    return Err(format!("neighbors: {n} is not the family of address {}", self.address));
                }
                let filter_file = self.filter_file.clone().ok_or("filter_file: where the member filter goes")?;
                Side::Hub { neighbors, filter_file }
            }
        };
        Ok(BgpConfig {
            socket: self.socket.clone(),
            address: self.address,
            asn: self.asn,
            poll: std::time::Duration::from_millis(self.poll_ms),
            side,
        })
    }
}

/// One route an endpoint's speaker learned: a prefix and the ESP address
/// of the member that announced it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LearnedRoute {
    pub prefix: WirePrefix,
    pub next_hop: IpAddr,
}

impl std::fmt::Display for LearnedRoute {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} via {}", text(self.prefix), self.next_hop)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// An endpoint's connection to its hub.
    pub(crate) fn connection() -> Connection {
        let t: crate::ike::config::ConnectionToml = toml::from_str(
            r#"name = "hub"
            role = "initiator"
            local = "192.0.2.11"
            remote = "192.0.2.1"
            local_id = "a.lab"
            psk = "a-psk-0011-lab"
            local_ts = ["10.1.1.0/24"]
            remote_ts = ["10.0.0.0/24"]"#,
        )
        .unwrap();
        t.build().unwrap()
    }

    fn toml_of(extra: &str) -> BgpToml {
        toml::from_str(&format!("socket = \"/run/gw/bird.ctl\"\naddress = \"10.1.1.10\"\n{extra}")).unwrap()
    }

    #[test]
    fn prefixes_as_bgp_carries_them() {
        assert_eq!(text(parse_prefix("10.1.0.0/16").unwrap()), "10.1.0.0/16");
        assert!(parse_prefix("10.1.1.5/16").unwrap_err().contains("host bits set (the prefix is 10.1.0.0/16)"));
        assert!(parse_prefix("2001:db8::/32").is_ok());
        assert!(parse_prefix("10.1.0.0/33").is_err());
        let p = |s| parse_prefix(s).unwrap();
        assert!(within(p("10.1.1.0/24"), p("10.1.0.0/16")) && !within(p("10.1.0.0/16"), p("10.1.1.0/24")));
        assert!(overlap(p("10.1.0.0/16"), p("10.1.1.0/24")) && !overlap(p("10.2.0.0/16"), p("10.1.1.0/24")));
        assert!(!within(p("::/0"), p("0.0.0.0/0")), "families never overlap");
    }

    /// Every mistake in `[bgp]` names its field.
    #[test]
    fn bad_bgp_sections_name_the_field() {
        let c = [connection()];
        let ep = |extra: &str| toml_of(extra).build(MpsaRole::Endpoint, &c);
        let good = "connection = \"hub\"\nhub = \"10.0.0.10\"\nannounce = [\"10.1.1.0/24\"]";
        let ok = ep(good).unwrap();
        assert_eq!(
            ok.side,
            Side::Endpoint {
                connection: "hub".into(),
                hub: "10.0.0.10".parse().unwrap(),
                announce: vec![parse_prefix("10.1.1.0/24").unwrap()],
                next_hop: "192.0.2.11".parse().unwrap(),
            },
            "the next hop defaults to the connection's local address"
        );
        assert!(ep("hub = \"10.0.0.10\"\nannounce = [\"10.1.1.0/24\"]").unwrap_err().starts_with("connection:"));
        assert!(ep("connection = \"nope\"\nhub = \"10.0.0.10\"\nannounce = [\"10.1.1.0/24\"]")
            .unwrap_err()
            .contains("no connection named \"nope\""));
        assert!(ep("connection = \"hub\"\nhub = \"10.0.0.10\"").unwrap_err().starts_with("announce:"));
        assert!(ep("connection = \"hub\"\nhub = \"10.0.0.10\"\nannounce = [\"10.1.1.1/24\"]")
            .unwrap_err()
            .starts_with("announce[0]:"));
        assert!(ep("connection = \"hub\"\nhub = \"10.0.0.10\"\nannounce = [\"2001:db8::/64\"]")
            .unwrap_err()
            .contains("IPv4 next hop"));
        assert!(ep(&format!("{good}\nneighbors = \"10.1.0.0/16\"")).unwrap_err().contains("a hub's fields"));
        assert!(ep(&format!("{good}\npoll_ms = 5")).unwrap_err().starts_with("poll_ms:"));
        assert!(ep(&format!("{good}\nasn = 0")).unwrap_err().starts_with("asn:"));
        let hub = |extra: &str| toml_of(extra).build(MpsaRole::Gateway, &c);
        assert!(hub("filter_file = \"/f\"").unwrap_err().starts_with("neighbors:"));
        assert!(hub("neighbors = \"10.1.0.0/16\"").unwrap_err().starts_with("filter_file:"));
        assert!(hub("neighbors = \"2001:db8::/32\"\nfilter_file = \"/f\"").unwrap_err().contains("family"));
        assert!(hub(&format!("{good}\nneighbors = \"10.1.0.0/16\"")).unwrap_err().contains("an endpoint's fields"));
        assert!(toml_of("").build(MpsaRole::Off, &c).unwrap_err().contains("daemon.mpsa"));
        assert!(toml::from_str::<BgpToml>("socket = \"/s\"\naddress = \"10.1.1.10\"\nrouter = 1").is_err());
    }
}
