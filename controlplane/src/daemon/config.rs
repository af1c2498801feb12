//! The `gw-controlplane` configuration file (TOML). Every field is
//! documented in configs/controlplane.example.toml; unknown fields are
//! errors, and every error names the file, the field and where it is.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::ike::config::{Connection, ConnectionToml, Settings};
use crate::mpsa::{GroupConfig, GroupToml, MpsaRole};

/// How IKE datagrams reach the daemon.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TransportKind {
    /// Through gw-dataplane: punted datagrams up, SendDatagram down.
    Dataplane,
    /// Kernel UDP sockets on ports 500 and 4500 (development, or a
    /// gateway whose ESP is elsewhere); SAs still go to the dataplane if
    /// `control_dir` is set.
    Kernel,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DaemonToml {
    pub transport: TransportKind,
    /// The dataplane's `[control] dir` (ring files); needed with the
    /// dataplane transport, optional with the kernel one.
    pub control_dir: Option<PathBuf>,
    /// Kernel transport: the addresses to bind UDP 500 and 4500 on.
    #[serde(default)]
    pub listen: Vec<std::net::IpAddr>,
    /// Unix socket for gwctl; created mode 0600 (root only).
    #[serde(default = "default_admin")]
    pub admin_socket: PathBuf,
    #[serde(default = "default_cookie")]
    pub cookie_threshold: usize,
    #[serde(default = "default_half_open")]
    pub half_open_timeout_secs: u64,
    #[serde(default = "default_retransmit_ms")]
    pub retransmit_base_ms: u64,
    #[serde(default = "default_tries")]
    pub retransmit_tries: u32,
    /// Multi-point SA: "off", "gateway" (hands out the `[[group]]` SAs) or
    /// "endpoint" (installs the group SAs its gateway hands it).
    #[serde(default)]
    pub mpsa: MpsaRole,
    /// Prometheus metrics: `GET /metrics` on this address (plain HTTP;
    /// loopback or a management address). None: no endpoint.
    #[serde(default)]
    pub metrics: Option<std::net::SocketAddr>,
}

fn default_admin() -> PathBuf {
    PathBuf::from("/run/gw/controlplane.sock")
}
fn default_cookie() -> usize {
    1000
}
fn default_half_open() -> u64 {
    30
}
fn default_retransmit_ms() -> u64 {
    1000
}
fn default_tries() -> u32 {
    5
}

/// `[stubs]`: IKE SA stub synchronization (draft-xu-ike-sa-sync 3.4):
/// stubs sealed under the cluster key go to every peer gateway
/// (distributed mode) and to the stub bank (centralized mode), either or
/// both, over TCP with mutual TLS when `[stubs.tls]` is set.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StubsToml {
    /// The cluster key, 64 hex digits (32 octets), the same on every
    /// gateway of the cluster.
    pub cluster_key: String,
    /// Where peers reach us (TCP); none: we only send.
    pub listen: Option<std::net::SocketAddr>,
    /// The peer gateways (TCP) our stubs go to and that we pull from at
    /// start-up.
    #[serde(default)]
    pub peers: Vec<std::net::SocketAddr>,
    /// Updates wait this long to go out together (section 3.5).
    #[serde(default = "default_batch_ms")]
    pub batch_ms: u64,
    /// The stub bank's endpoints (gw-stubbank, TCP): our stubs go to the
    /// first that answers; SYNs whose stub we lack are looked up there.
    #[serde(default)]
    pub bank: Vec<std::net::SocketAddr>,
    /// The name the bank's certificate carries, when not its address.
    #[serde(default)]
    pub bank_name: Option<String>,
    /// How long a SYN waits for the bank before the full exchange.
    #[serde(default = "default_fetch_ms")]
    pub fetch_ms: u64,
    /// Mutual TLS for every bank and peer connection: our certificate and
    /// key, and the cluster's CA (PEM files).
    #[serde(default)]
    pub tls: Option<crate::stub::tls::TlsFiles>,
}

fn default_batch_ms() -> u64 {
    20
}
fn default_fetch_ms() -> u64 {
    300
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileToml {
    daemon: DaemonToml,
    #[serde(default)]
    stubs: Option<StubsToml>,
    #[serde(default, rename = "connection")]
    connections: Vec<ConnectionToml>,
    #[serde(default, rename = "group")]
    groups: Vec<GroupToml>,
    #[serde(default)]
    bgp: Option<crate::bgp::BgpToml>,
}

/// A checked configuration.
#[derive(Debug, Clone)]
pub struct DaemonConfig {
    pub daemon: DaemonToml,
    pub stubs: Option<StubsToml>,
    pub connections: Vec<Connection>,
    /// MPSA gateway: the groups.
    pub groups: Vec<GroupConfig>,
    /// MPSA peer discovery through BIRD (`crate::bgp`).
    pub bgp: Option<crate::bgp::BgpConfig>,
    /// The connections as written (for `gwctl config`, PSKs masked).
    pub text: String,
    /// What is allowed but probably not meant (`--check` prints them, the
    /// daemon logs them at start).
    pub warnings: Vec<String>,
}

impl DaemonConfig {
    pub fn settings(&self) -> Settings {
        Settings {
            cookie_threshold: self.daemon.cookie_threshold,
            half_open_timeout: std::time::Duration::from_secs(self.daemon.half_open_timeout_secs),
            retransmit_base: std::time::Duration::from_millis(self.daemon.retransmit_base_ms),
            retransmit_tries: self.daemon.retransmit_tries,
            stub_fetch_wait: self
                .stubs
                .as_ref()
                .filter(|s| !s.bank.is_empty())
                .map(|s| std::time::Duration::from_millis(s.fetch_ms)),
            ..Settings::default()
        }
    }

    pub fn load(path: &Path) -> Result<DaemonConfig, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        Self::parse(&text, &path.display().to_string())
    }

    pub fn parse(text: &str, origin: &str) -> Result<DaemonConfig, String> {
        let f: FileToml = toml::from_str(text).map_err(|e| {
            let at = e.span().map(|s| line_of(text, s.start)).map(|l| format!(" (line {l})")).unwrap_or_default();
            format!("{origin}{at}: {}", e.message())
        })?;
        if f.daemon.transport == TransportKind::Dataplane && f.daemon.control_dir.is_none() {
            return Err(format!("{origin}: daemon.control_dir: needed with transport = \"dataplane\""));
        }
        if f.daemon.transport == TransportKind::Kernel && f.daemon.listen.is_empty() {
            return Err(format!("{origin}: daemon.listen: the kernel transport needs addresses to bind"));
        }
        if f.daemon.retransmit_base_ms == 0 {
            return Err(format!("{origin}: daemon.retransmit_base_ms: must be above 0"));
        }
        let mut connections = Vec::new();
        for (i, c) in f.connections.iter().enumerate() {
            if f.connections[..i].iter().any(|o| o.name == c.name) {
                return Err(format!("{origin}: connection[{i}] {:?}: the name is used twice", c.name));
            }
            connections.push(c.build().map_err(|e| format!("{origin}: connection[{i}] {:?}: {e}", c.name))?);
        }
        let mut groups = Vec::new();
        for (i, g) in f.groups.iter().enumerate() {
            if f.groups[..i].iter().any(|o| o.name == g.name) {
                return Err(format!("{origin}: group[{i}] {:?}: the name is used twice", g.name));
            }
            groups.push(g.build().map_err(|e| format!("{origin}: group[{i}] {:?}: {e}", g.name))?);
        }
        // MPSA_PUT names no group (mpsa-04 3.2.2): an endpoint tells its
        // groups apart by its connection to the hub, so it would take a
        // second group's SA for a rollover of the first.
        for (i, g) in groups.iter().enumerate() {
            for o in &groups[..i] {
                let mut both: Vec<String> = g.members.intersection(&o.members).map(|m| m.to_text()).collect();
                both.sort();
                if let Some(m) = both.first() {
                    return Err(format!(
                        "{origin}: group[{i}] {:?}: member {m} is in group {:?} too; an endpoint takes one group \
                         per connection to its hub (MPSA_PUT names no group)",
                        g.name, o.name
                    ));
                }
            }
        }
        if !groups.is_empty() && f.daemon.mpsa != MpsaRole::Gateway {
            return Err(format!("{origin}: daemon.mpsa: [[group]] tables need mpsa = \"gateway\""));
        }
        if let Some(s) = &f.stubs {
            crate::stub::seal::ClusterKey::from_hex(&s.cluster_key)
                .map_err(|e| format!("{origin}: stubs.cluster_key: {e}"))?;
            if let Some(t) = &s.tls {
                t.server().and_then(|_| t.client()).map_err(|e| format!("{origin}: stubs.{e}"))?;
            }
            if let Some(n) = &s.bank_name {
                crate::stub::tls::server_name(Some(n), std::net::Ipv4Addr::UNSPECIFIED.into())
                    .map_err(|e| format!("{origin}: stubs.bank_name: {e}"))?;
            }
            if !s.bank.is_empty() && s.tls.is_none() {
                return Err(format!("{origin}: stubs.bank: the bank speaks mutual TLS only: set [stubs.tls]"));
            }
            if s.fetch_ms == 0 || s.fetch_ms > 10_000 {
                return Err(format!("{origin}: stubs.fetch_ms: {} is not 1..10000", s.fetch_ms));
            }
        }
        let mut masked: String = text
            .lines()
            .map(|l| if l.trim_start().starts_with("cluster_key") { "cluster_key = \"<redacted>\"" } else { l })
            .collect::<Vec<_>>()
            .join("\n");
        // Every PSK value wherever it stands: `psk` and `peer_psk` tables.
        for c in &f.connections {
            for k in std::iter::once(&c.psk).chain(c.peer_psk.values()).filter(|k| !k.is_empty()) {
                masked = masked.replace(k.as_str(), "<redacted>");
            }
        }
        let bgp = match &f.bgp {
            Some(_) if f.daemon.mpsa == MpsaRole::Off => {
                return Err(format!(
                    "{origin}: bgp: MPSA peer discovery needs daemon.mpsa \"gateway\" or \"endpoint\""
                ));
            }
            Some(b) => Some(b.build(f.daemon.mpsa, &connections).map_err(|e| format!("{origin}: bgp.{e}"))?),
            None => None,
        };
        let warnings = shared_psk_warnings(&connections, &groups);
        Ok(DaemonConfig { daemon: f.daemon, stubs: f.stubs, connections, groups, bgp, text: masked, warnings })
    }
}

/// A group member that authenticates with a connection's shared `psk`
/// where any identity may connect (`remote_id` %any) can be claimed by
/// every peer that knows that PSK, a road warrior included: it gets the
/// group SA. One warning per member and connection (issue 15, mpsa-04 5.1:
/// membership rests on IKEv2 authentication).
fn shared_psk_warnings(connections: &[Connection], groups: &[GroupConfig]) -> Vec<String> {
    let mut out = Vec::new();
    for g in groups {
        let mut members: Vec<_> = g.members.iter().collect();
        members.sort_by_key(|m| m.to_text());
        for m in members {
            for c in connections.iter().filter(|c| c.role == crate::ike::config::Role::Responder) {
                let own = c.peer_psks.iter().any(|(id, _)| id == m);
                if c.remote_id.is_none() && !own && !c.psk.is_empty() {
                    out.push(format!(
                        "group {:?}: member {} authenticates with connection {:?}'s shared psk, which any peer \
                         with it may claim (remote_id %any): give it its own in peer_psk",
                        g.name,
                        m.to_text(),
                        c.name
                    ));
                }
            }
        }
    }
    out
}

fn line_of(text: &str, at: usize) -> usize {
    text[..at.min(text.len())].matches('\n').count() + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[daemon]
transport = "kernel"
listen = ["10.77.0.2"]

[[connection]]
name = "lab"
local = "10.77.0.2"
local_id = "right.lab"
psk = "s3cret-lab-key"
local_ts = ["10.77.2.0/24"]
remote_ts = ["10.77.1.0/24"]
"#;

    /// Every shipped gw-controlplane config loads (the examples stay true
    /// to the code).
    #[test]
    fn shipped_configs_load() {
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../configs");
        let mut n = 0;
        for dir in [root.to_string(), format!("{root}/lab"), format!("{root}/lab/mpsa")] {
            for e in std::fs::read_dir(&dir).unwrap() {
                let p = e.unwrap().path();
                let name = p.file_name().unwrap().to_string_lossy().into_owned();
                if name.starts_with("controlplane") || name.ends_with(".controlplane.toml") {
                    let c = DaemonConfig::load(&p).unwrap_or_else(|e| panic!("{e}"));
                    assert!(!c.connections.is_empty(), "{}", p.display());
                    n += 1;
                }
            }
        }
        assert!(n >= 5, "found {n} configs");
    }

    /// `[[connection.child]]`: more child SAs; a name used twice or a child
    /// without selectors names the child.
    #[test]
    fn child_sa_tables_load_and_their_errors_name_the_child() {
        let more =
            "[[connection.child]]\nname = \"voice\"\nlocal_ts = [\"10.5.0.0/16\"]\nremote_ts = [\"10.6.0.0/16\"]\n";
        let c = DaemonConfig::parse(&format!("{GOOD}{more}"), "t.toml").unwrap();
        let names: Vec<&str> = c.connections[0].children.iter().map(|k| k.name.as_str()).collect();
        assert_eq!(names, ["lab", "voice"]);
        assert!(c.connections[0].children[1].auto);
        let twice = more.replace("voice", "lab");
        let e = DaemonConfig::parse(&format!("{GOOD}{twice}"), "t.toml").unwrap_err();
        assert!(e.contains("child[0].name") && e.contains("\"lab\" is taken"), "{e}");
        let empty = more.replace("[\"10.6.0.0/16\"]", "[]");
        let e = DaemonConfig::parse(&format!("{GOOD}{empty}"), "t.toml").unwrap_err();
        assert!(e.contains("child[0] (voice)"), "{e}");
        // mode: tunnel by default, transport when asked, nothing else.
        assert!(!c.connections[0].children[1].transport);
        let transport = more.replace("name = \"voice\"", "name = \"voice\"\nmode = \"transport\"");
        let c = DaemonConfig::parse(&format!("{GOOD}{transport}"), "t.toml").unwrap();
        assert!(c.connections[0].children[1].transport && !c.connections[0].children[0].transport);
        let odd = more.replace("name = \"voice\"", "name = \"voice\"\nmode = \"beet\"");
        let e = DaemonConfig::parse(&format!("{GOOD}{odd}"), "t.toml").unwrap_err();
        assert!(e.contains("line 15") && e.contains("beet") && e.contains("transport"), "{e}");
    }

    #[test]
    fn good_config_loads_and_masks_the_psk() {
        let c = DaemonConfig::parse(GOOD, "t.toml").unwrap();
        assert_eq!(c.connections.len(), 1);
        assert!(!c.text.contains("s3cret"));
    }

    /// `peer_psk`: per-identity PSKs load, are masked like `psk`, and
    /// their errors name the identity; a group member left on a shared PSK
    /// where anyone may connect is warned about (issue 15).
    #[test]
    fn peer_psks_load_are_masked_and_shared_ones_of_members_warned_about() {
        let hub = GOOD.replace("transport = \"kernel\"", "transport = \"kernel\"\nmpsa = \"gateway\"")
            + "[[group]]\nname = \"mesh\"\nmembers = [\"a.lab\", \"b.lab\"]\n";
        let own = hub.replace(
            "psk = \"s3cret-lab-key\"",
            "psk = \"s3cret-lab-key\"\npeer_psk = { \"a.lab\" = \"a-own-secret-1\" }",
        );
        let c = DaemonConfig::parse(&own, "t.toml").unwrap();
        assert_eq!(c.connections[0].peer_psks.len(), 1);
        assert!(!c.text.contains("a-own-secret-1") && !c.text.contains("s3cret"), "{}", c.text);
        // b.lab is still on the shared key: one warning, naming it.
        assert_eq!(c.warnings.len(), 1, "{:?}", c.warnings);
        assert!(c.warnings[0].contains("member b.lab") && c.warnings[0].contains("\"lab\""), "{:?}", c.warnings);
        let both = own.replace("\"a-own-secret-1\" }", "\"a-own-secret-1\", \"b.lab\" = \"b-own-secret-2\" }");
        assert!(DaemonConfig::parse(&both, "t.toml").unwrap().warnings.is_empty());
        // No shared PSK at all: only the named peers, no warning.
        let only = both.replace("psk = \"s3cret-lab-key\"\n", "");
        let c = DaemonConfig::parse(&only, "t.toml").unwrap();
        assert!(c.connections[0].psk.is_empty() && c.warnings.is_empty());
        assert_eq!(DaemonConfig::parse(&hub, "t.toml").unwrap().warnings.len(), 2);
        // A member in two groups: its endpoint could not tell them apart.
        let two = both.clone() + "[[group]]\nname = \"voice\"\nmembers = [\"c.lab\", \"b.lab\"]\n";
        let e = DaemonConfig::parse(&two, "t.toml").unwrap_err();
        assert!(e.contains("group[1] \"voice\": member b.lab is in group \"mesh\" too"), "{e}");
        let apart = both.clone() + "[[group]]\nname = \"voice\"\nmembers = [\"c.lab\"]\n";
        assert_eq!(DaemonConfig::parse(&apart, "t.toml").unwrap().groups.len(), 2);
        // Errors name the identity.
        let short = own.replace("a-own-secret-1", "short");
        let e = DaemonConfig::parse(&short, "t.toml").unwrap_err();
        assert!(e.contains("peer_psk.\"a.lab\"") && e.contains("8 characters"), "{e}");
        let same = own.replace("a-own-secret-1", "s3cret-lab-key");
        let e = DaemonConfig::parse(&same, "t.toml").unwrap_err();
        assert!(e.contains("peer_psk.\"a.lab\"") && e.contains("the same as psk"), "{e}");
        let none = GOOD.replace("psk = \"s3cret-lab-key\"\n", "");
        let e = DaemonConfig::parse(&none, "t.toml").unwrap_err();
        assert!(e.contains("connection[0] \"lab\": psk: a PSK is needed"), "{e}");
    }

    #[test]
    fn errors_name_the_place() {
        let bad = GOOD.replace("psk = \"s3cret-lab-key\"", "psk = \"short\"");
        let e = DaemonConfig::parse(&bad, "t.toml").unwrap_err();
        assert!(e.contains("connection[0] \"lab\": psk"), "{e}");
        let bad = GOOD.replace("local_ts", "lokal_ts");
        let e = DaemonConfig::parse(&bad, "t.toml").unwrap_err();
        assert!(e.contains("line 11") && e.contains("lokal_ts"), "{e}");
        let bad = GOOD.replace("\"10.77.2.0/24\"", "\"10.77.2.0/40\"");
        assert!(DaemonConfig::parse(&bad, "t.toml").unwrap_err().contains("prefix length"));
        let bad = GOOD.replace("transport = \"kernel\"", "transport = \"dataplane\"");
        assert!(DaemonConfig::parse(&bad, "t.toml").unwrap_err().contains("control_dir"));
        let bad = format!("{GOOD}\n[[connection]]\nname = \"lab\"\nlocal_id = \"x\"\npsk = \"12345678\"\nlocal_ts = [\"1.0.0.0/8\"]\nremote_ts = [\"2.0.0.0/8\"]\n");
        assert!(DaemonConfig::parse(&bad, "t.toml").unwrap_err().contains("used twice"));
        let bad = GOOD.replace("name = \"lab\"", "name = \"lab\"\nike_proposals = [\"aes128-md5-modp1024\"]");
        assert!(DaemonConfig::parse(&bad, "t.toml").unwrap_err().contains("unknown algorithm \"md5\""));
    }

    /// `[stubs]`: the bank needs mutual TLS, the files must load, the
    /// wait is bounded, and the bank's endpoints set the engine's wait.
    #[test]
    fn stubs_section_is_checked() {
        let key = "ab".repeat(32);
        let with = |extra: &str| {
            let stubs = format!("[stubs]\ncluster_key = \"{key}\"\n{extra}\n");
            GOOD.replacen("[[connection]]", &format!("{stubs}[[connection]]"), 1)
        };
        let c = DaemonConfig::parse(&with("peers = [\"127.0.0.1:7500\"]"), "t.toml").unwrap();
        assert_eq!(c.settings().stub_fetch_wait, None, "no bank: no wait");
        assert!(!c.text.contains(&key), "the cluster key is redacted");
        let e = DaemonConfig::parse(&with("bank = [\"127.0.0.1:7410\"]"), "t.toml").unwrap_err();
        assert!(e.contains("stubs.bank") && e.contains("[stubs.tls]"), "{e}");
        let e = DaemonConfig::parse(&with("fetch_ms = 0"), "t.toml").unwrap_err();
        assert!(e.contains("stubs.fetch_ms"), "{e}");
        let e = DaemonConfig::parse(
            &with("[stubs.tls]\ncert = \"/nope/c.pem\"\nkey = \"/nope/k.pem\"\nca = \"/nope/ca.pem\""),
            "t.toml",
        )
        .unwrap_err();
        assert!(e.contains("stubs.tls") && e.contains("/nope/ca.pem"), "{e}");
        let d = tempfile::tempdir().unwrap();
        let f = crate::stub::tls::testing::cluster(d.path(), &["127.0.0.1"]).remove(0);
        let tls = format!(
            "bank = [\"127.0.0.1:7410\"]\nfetch_ms = 250\n[stubs.tls]\ncert = {:?}\nkey = {:?}\nca = {:?}",
            f.cert, f.key, f.ca
        );
        let c = DaemonConfig::parse(&with(&tls), "t.toml").unwrap();
        assert_eq!(c.settings().stub_fetch_wait, Some(std::time::Duration::from_millis(250)));
    }
}
