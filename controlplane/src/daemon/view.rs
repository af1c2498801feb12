//! What gwctl shows: the engine's IKE SAs, child SAs and groups as plain
//! records for the admin socket (JSON) and gwctl's tables. Read-only; the
//! daemon fills in the dataplane's counters.

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use crate::crypto::keys::IkeSuite;
use crate::ike::config::AuthKind;
use crate::ike::engine::{ChildState, Engine, IkeState};
use crate::ike::ts;
use crate::mpsa::MpsaRole;

/// One IKE SA (or an IKE_SA_INIT of ours still unanswered).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct IkeSaInfo {
    pub conn: String,
    pub state: IkeState,
    pub initiator: bool,
    pub spi_i: String,
    pub spi_r: String,
    pub local: SocketAddr,
    pub remote: SocketAddr,
    pub nat: bool,
    pub suite: String,
    pub peer_id: String,
    /// How each side authenticated: "psk" or "pubkey" (ours, the peer's).
    #[serde(default)]
    pub auth: (String, String),
    /// The subject of the peer's certificate, when it used one.
    #[serde(default)]
    pub peer_cert: Option<String>,
    pub virtual_ip: Option<IpAddr>,
    pub established_secs: Option<u64>,
    pub rekey_in_secs: Option<u64>,
    pub mpsa: bool,
    /// MOBIKE (RFC 4555) or MOBIKE-X, when negotiated: the version, the
    /// peer's other addresses (with their multihoming information) and the
    /// moves so far.
    #[serde(default)]
    pub mobike: Option<crate::ike::engine::Mobike>,
    /// Clone IKE SA (RFC 7791) agreed on this IKE SA.
    #[serde(default)]
    pub clone: bool,
    /// A clone: the SPIs (initiator's, responder's) of the IKE SA it was
    /// cloned from.
    #[serde(default)]
    pub clone_of: Option<(String, String)>,
    pub children: Vec<ChildInfo>,
}

impl IkeSaInfo {
    /// Nothing negotiated yet (what an IKE_SA_INIT of ours in flight
    /// shows): our side the initiator, SPIs zero, no suite, no children.
    pub fn unnegotiated(conn: &str, state: IkeState, local: SocketAddr, remote: SocketAddr) -> IkeSaInfo {
        IkeSaInfo {
            conn: conn.to_string(),
            state,
            initiator: true,
            spi_i: format!("{:016x}", 0),
            spi_r: format!("{:016x}", 0),
            local,
            remote,
            nat: false,
            suite: String::new(),
            peer_id: String::new(),
            auth: Default::default(),
            peer_cert: None,
            virtual_ip: None,
            established_secs: None,
            rekey_in_secs: None,
            mpsa: false,
            mobike: None,
            clone: false,
            clone_of: None,
            children: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ChildInfo {
    /// Its name in the connection's config.
    #[serde(default)]
    pub name: String,
    pub spi_in: String,
    pub spi_out: String,
    pub state: ChildState,
    pub alg: String,
    pub pfs: Option<u16>,
    pub ts_local: Vec<String>,
    pub ts_remote: Vec<String>,
    pub age_secs: u64,
    pub rekey_in_secs: Option<u64>,
    /// MOBIKE-X multihoming: its outer address pairs, "ours <-> peer's",
    /// preferred first; empty when it follows the IKE SA's path.
    #[serde(default)]
    pub paths: Vec<String>,
    /// MOBIKE-X: alternate addresses the peer gave for it.
    #[serde(default)]
    pub alternates: Vec<IpAddr>,
    /// ESP transport mode (else tunnel).
    #[serde(default)]
    pub transport: bool,
    /// Filled in from dataplane counters by the daemon.
    pub packets_in: u64,
    pub bytes_in: u64,
    pub packets_out: u64,
    pub bytes_out: u64,
}

/// One Multi-point SA group, at the gateway or at an endpoint.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct GroupInfo {
    pub name: String,
    /// "gateway" or "endpoint".
    pub role: String,
    pub spi: String,
    pub alg: String,
    /// Gateway: members configured, members with an MPSA IKE SA up, and
    /// those that acknowledged the current SA.
    pub members: usize,
    pub members_up: usize,
    pub delivered: usize,
    pub expires_in_secs: u64,
    /// Gateway: seconds to the next rekey.
    pub rekey_in_secs: Option<u64>,
    /// Gateway: rekeys so far; endpoint: group SAs received.
    pub rekeys: u64,
    /// Endpoint: routes learned by peer discovery (BGP, mpsa-04 section
    /// 4), `prefix via address`.
    #[serde(default)]
    pub learned: Vec<String>,
}

/// Every IKE SA of `e`, by connection and SPI.
pub fn ike_sas(e: &Engine, now: Instant) -> Vec<IkeSaInfo> {
    let secs = |t: Instant| t.saturating_duration_since(now).as_secs();
    let conns = e.connections();
    let mut v: Vec<IkeSaInfo> = e
        .ike_sas()
        .map(|sa| IkeSaInfo {
            conn: conns[sa.conn()].name.clone(),
            state: sa.state(),
            initiator: sa.initiator(),
            spi_i: format!("{:016x}", sa.spi_i()),
            spi_r: format!("{:016x}", sa.spi_r()),
            local: sa.local(),
            remote: sa.remote(),
            nat: sa.nat(),
            suite: suite_text(sa.suite()),
            peer_id: sa.peer_id().map(|i| i.to_text()).unwrap_or_default(),
            auth: {
                let c = &conns[sa.conn()];
                let name = |a: AuthKind| if a == AuthKind::Pubkey { "pubkey" } else { "psk" }.to_string();
                (name(c.auth), name(c.remote_auth))
            },
            peer_cert: sa.established().and_then(|x| x.peer_cert.clone()),
            virtual_ip: sa.established().and_then(|x| x.vip),
            established_secs: sa.established().map(|x| now.saturating_duration_since(x.since).as_secs()),
            rekey_in_secs: sa.rekey_at().map(secs),
            mpsa: sa.peer_mpsa() && e.mpsa_role != MpsaRole::Off,
            mobike: sa.established().and_then(|x| x.mobike.clone()),
            clone: sa.established().is_some_and(|x| x.clone),
            clone_of: sa
                .established()
                .and_then(|x| x.clone_of)
                .and_then(|o| e.ike_sas().find(|s| s.our_spi() == o))
                .map(|o| (format!("{:016x}", o.spi_i()), format!("{:016x}", o.spi_r()))),
            children: sa
                .children()
                .iter()
                .map(|c| ChildInfo {
                    name: conns[sa.conn()].children.get(c.cfg).map(|k| k.name.clone()).unwrap_or_default(),
                    spi_in: format!("{:08x}", c.spi_in),
                    spi_out: format!("{:08x}", c.spi_out),
                    state: c.state,
                    alg: c.suite.alg(),
                    pfs: c.suite.dh.map(|g| g.value()),
                    ts_local: c.ts_local.iter().map(ts::ts_text).collect(),
                    ts_remote: c.ts_remote.iter().map(ts::ts_text).collect(),
                    age_secs: now.saturating_duration_since(c.created).as_secs(),
                    rekey_in_secs: c.rekey_at.map(secs),
                    paths: c.paths.iter().map(|(l, r)| format!("{l} <-> {r}")).collect(),
                    alternates: c.alternates.clone(),
                    transport: c.transport,
                    packets_in: 0,
                    bytes_in: 0,
                    packets_out: 0,
                    bytes_out: 0,
                })
                .collect(),
        })
        .chain(e.connecting().map(|c| IkeSaInfo {
            spi_i: format!("{:016x}", c.spi_i),
            ..IkeSaInfo::unnegotiated(&conns[c.conn].name, IkeState::Connecting, c.local, c.remote)
        }))
        .collect();
    // By connection, each IKE SA followed by its clones (RFC 7791).
    let key = |x: &IkeSaInfo| {
        let root = x.clone_of.as_ref().map_or(x.spi_i.clone(), |(i, _)| i.clone());
        (x.conn.clone(), root, x.clone_of.is_some(), x.spi_i.clone())
    };
    v.sort_by_cached_key(key);
    v
}

/// Every group of `e`: the gateway's, then the endpoint's.
pub fn groups(e: &Engine, now: Instant) -> Vec<GroupInfo> {
    let secs = |t: Instant| t.saturating_duration_since(now).as_secs();
    let members_up = |g: &crate::mpsa::GatewayGroup| {
        e.ike_sas()
            .filter(|sa| sa.state() == IkeState::Established && sa.peer_mpsa() && g.is_member(sa.peer_id()))
            .count()
    };
    let mut v: Vec<GroupInfo> = e
        .gateway_groups()
        .iter()
        .map(|g| GroupInfo {
            name: g.cfg.name.clone(),
            role: "gateway".into(),
            spi: format!("{:08x}", g.current.spi),
            alg: g.put(now).alg(),
            members: g.cfg.members.len(),
            members_up: members_up(g),
            learned: Vec::new(),
            delivered: g.delivered.len(),
            expires_in_secs: secs(g.current.expires),
            rekey_in_secs: Some(secs(g.rekey_at())),
            rekeys: g.rekeys,
        })
        .collect();
    v.extend(e.endpoint_groups().map(|(name, g)| GroupInfo {
        name: name.clone(),
        role: "endpoint".into(),
        spi: g.spis().last().map(|s| format!("{s:08x}")).unwrap_or_default(),
        alg: g.alg.clone(),
        members: 0,
        members_up: 0,
        delivered: 0,
        expires_in_secs: secs(g.expires),
        rekey_in_secs: None,
        rekeys: g.updates,
        learned: e.learned_routes(name).iter().map(|r| r.to_string()).collect(),
    }));
    v.sort_by(|a, b| a.name.cmp(&b.name));
    v
}

/// An IKE suite as gwctl prints it, strongSwan-like:
/// `AES_GCM_16_128/PRF_HmacSha256/Curve25519`.
pub fn suite_text(s: IkeSuite) -> String {
    let e = match s.encr {
        crate::crypto::sk::Encr::AesGcm16(b) => format!("AES_GCM_16_{b}"),
        crate::crypto::sk::Encr::AesCbc(b) => format!("AES_CBC_{b}"),
        crate::crypto::sk::Encr::ChaCha20Poly1305 => "CHACHA20_POLY1305".to_string(),
    };
    let i = s.integ.map(|i| format!("/{i:?}")).unwrap_or_default();
    format!("{e}{i}/PRF_{:?}/{:?}", s.prf, s.dh)
}

/// What the dataplane holds (its answer to `DumpState`) and its ports'
/// counters: gwctl's policies, routes, neighbours, ports and SAs tables.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct DataplaneTables {
    /// Installed SAs: SPI, direction, algorithm, local and remote address.
    pub sas: Vec<(u32, cpdp::msg::Direction, String, IpAddr, IpAddr)>,
    pub policies: Vec<(cpdp::msg::WirePrefix, cpdp::msg::PolicyAction)>,
    /// Prefix, port, next hop (None: on the link).
    pub routes: Vec<(cpdp::msg::WirePrefix, u16, Option<IpAddr>)>,
    pub neighbors: Vec<(IpAddr, [u8; 6])>,
    /// Group SAs: name, SPI sent with, SPIs accepted.
    pub groups: Vec<(String, Option<u32>, Vec<u32>)>,
    /// Addresses added at run time, by port.
    pub addresses: Vec<(u16, cpdp::msg::WirePrefix)>,
    pub ports: Vec<cpdp::msg::PortCounters>,
}

impl DataplaneTables {
    /// From the dataplane's `Event::State` and the last port counters.
    pub fn from_event(ev: cpdp::msg::Event, ports: &[cpdp::msg::PortCounters]) -> Option<DataplaneTables> {
        match ev {
            cpdp::msg::Event::State { sas, policies, groups, addresses, routes, neighbors } => {
                Some(DataplaneTables { sas, policies, routes, neighbors, groups, addresses, ports: ports.to_vec() })
            }
            _ => None,
        }
    }
}

/// `aa:bb:cc:dd:ee:ff`.
pub fn mac_text(m: &[u8; 6]) -> String {
    m.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
}

/// `10.0.0.0/24`.
pub fn prefix_text(p: &cpdp::msg::WirePrefix) -> String {
    format!("{}/{}", p.addr, p.len)
}

/// A certificate, CA or CRL a connection loaded (`gwctl certs`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CertInfo {
    pub conn: String,
    /// "cert" (ours), "ca" or "crl".
    pub kind: String,
    pub subject: String,
    pub path: String,
    /// When it expires (Unix seconds); None for a CRL.
    pub not_after: Option<i64>,
}

/// Every connection's certificate, CAs and CRLs.
pub fn certs(e: &Engine) -> Vec<CertInfo> {
    let mut v = Vec::new();
    for c in e.connections().iter().filter(|c| !c.retired) {
        let conn = c.name.clone();
        if let Some(cr) = &c.credential {
            v.push(CertInfo {
                conn: conn.clone(),
                kind: "cert".into(),
                subject: cr.subject.clone(),
                path: cr.path.display().to_string(),
                not_after: Some(cr.not_after),
            });
        }
        if let Some(t) = &c.trust {
            for ca in &t.cas {
                v.push(CertInfo {
                    conn: conn.clone(),
                    kind: "ca".into(),
                    subject: ca.subject.clone(),
                    path: ca.path.display().to_string(),
                    not_after: Some(ca.not_after),
                });
            }
            for p in &t.crl_paths {
                v.push(CertInfo {
                    conn: conn.clone(),
                    kind: "crl".into(),
                    subject: String::new(),
                    path: p.display().to_string(),
                    not_after: None,
                });
            }
        }
    }
    v
}
