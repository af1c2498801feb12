//! The `gw-dataplane` configuration file (TOML), its defaults, and the
//! checks that turn a bad file into an error naming the field at fault.
//!
//! Every field is documented in configs/dataplane.example.toml. Unknown
//! fields are errors, so a typo never silently falls back to a default.

use std::collections::HashSet;
use std::path::Path;

use serde::Deserialize;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("{path}: {message}")]
    Parse { path: String, message: String },
    #[error("{path}: {field}: {message}")]
    Invalid { path: String, field: String, message: String },
}

/// The whole file.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `forward`: cross-connect port pairs (the foundation's mode, and the
    /// forwarding floor of the benchmarks). `gateway`: the IPsec pipeline.
    #[serde(default)]
    pub mode: Mode,
    #[serde(default)]
    pub eal: EalConfig,
    #[serde(default)]
    pub mempool: MempoolConfig,
    #[serde(default, rename = "port")]
    pub ports: Vec<PortConfig>,
    #[serde(default)]
    pub forward: ForwardConfig,
    #[serde(default)]
    pub worker: WorkerConfig,
    #[serde(default, rename = "route")]
    pub routes: Vec<RouteConfig>,
    #[serde(default, rename = "neighbor")]
    pub neighbors: Vec<NeighborConfig>,
    #[serde(default, rename = "sa")]
    pub sas: Vec<SaConfig>,
    #[serde(default, rename = "policy")]
    pub policies: Vec<PolicyConfig>,
    #[serde(default, rename = "group")]
    pub groups: Vec<GroupConfig>,
    #[serde(default)]
    pub control: Option<ControlConfig>,
}

/// The link to gw-controlplane (gateway mode).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ControlConfig {
    /// Folder of the two ring files (cp2dp.ring, dp2cp.ring) and the
    /// sequence-number reservations (seq.state); /run/gw on an appliance.
    pub dir: String,
    /// Bytes of each ring.
    #[serde(default = "default_ring_bytes")]
    pub ring_bytes: u64,
    /// Forward nothing until the control plane has installed everything
    /// (fail closed after a start or restart).
    #[serde(default)]
    pub wait_for_sync: bool,
    /// A prefix a child SA or a group SA ever protected is discarded, not
    /// forwarded in the clear, while nothing protects it: after its tunnel
    /// went, its group expired, or a control plane flushed the tables on
    /// its start. Without it such traffic matches no policy and is
    /// bypassed, as traffic never covered always is.
    #[serde(default)]
    pub fail_closed: bool,
    /// What traffic that matches no policy gets: "bypass" (forwarded in
    /// the clear, the default) or "discard" (RFC 4301 4.4.1: a gateway
    /// that protects or drops all it does not know). With "discard",
    /// `bypass` lists the prefixes still forwarded in the clear: the
    /// gateway's own LANs (where decrypted traffic goes) and whatever may
    /// pass unprotected.
    #[serde(default)]
    pub no_match: NoMatch,
    #[serde(default)]
    pub bypass: Vec<String>,
}

/// `[control] no_match`.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum NoMatch {
    #[default]
    Bypass,
    Discard,
}

impl ControlConfig {
    /// `bypass`, parsed; an error names the entry.
    pub fn bypass_prefixes(&self) -> Result<Vec<crate::lpm::Prefix>, (String, String)> {
        if self.no_match == NoMatch::Bypass && !self.bypass.is_empty() {
            return Err(("control.bypass".into(), "only with no_match = \"discard\" (all else is bypassed)".into()));
        }
        self.bypass
            .iter()
            .enumerate()
            .map(|(j, s)| s.parse().map_err(|e| (format!("control.bypass[{j}]"), e)))
            .collect()
    }
}

fn default_ring_bytes() -> u64 {
    4 << 20
}

/// A manually keyed group SA (MPSA): one SA inbound and outbound, no
/// replay check, each packet sent to the member whose prefix holds its
/// inner destination.
#[derive(Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct GroupConfig {
    pub name: String,
    pub spi: u32,
    pub alg: String,
    pub key: String,
    #[serde(default)]
    pub auth_key: String,
    /// Our outer address for this group.
    pub local: String,
    #[serde(default)]
    pub natt: bool,
    #[serde(default)]
    pub esn: bool,
    pub members: Vec<GroupMemberConfig>,
}

impl std::fmt::Debug for GroupConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupConfig")
            .field("name", &self.name)
            .field("spi", &self.spi)
            .field("keys", &"<redacted>")
            .finish()
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct GroupMemberConfig {
    /// Inner prefix behind the member.
    pub prefix: String,
    /// The member endpoint's outer address.
    pub address: String,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    #[default]
    Forward,
    Gateway,
}

/// A route: inner or outer destinations to a port, directly or via a
/// next hop.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    pub dst: String,
    pub port: String,
    #[serde(default)]
    pub via: Option<String>,
}

/// A static neighbour (like `ip neigh add ... lladdr ...`).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct NeighborConfig {
    pub ip: String,
    pub mac: String,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    In,
    Out,
}

/// ESP mode of a manually keyed SA.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SaMode {
    /// The packet inside a new outer header (`local` to `remote`).
    #[default]
    Tunnel,
    /// ESP after the packet's own IP header; the packet's addresses are
    /// `local` and `remote` (RFC 4303 3.1.1).
    Transport,
}

/// A manually keyed SA (like `ip xfrm state add`), tunnel or transport mode.
#[derive(Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SaConfig {
    /// The SPI: an integer (TOML accepts 0x1001).
    pub spi: u32,
    pub direction: Direction,
    /// aes128gcm, aes256gcm, aes128cbc-sha1, aes256cbc-sha1,
    /// aes128cbc-sha256, aes256cbc-sha256.
    pub alg: String,
    /// Encryption key in hex (GCM: key then 4-octet salt).
    pub key: String,
    /// Integrity key in hex (CBC suites only).
    #[serde(default)]
    pub auth_key: String,
    /// Outer source (ours) and destination (the peer).
    pub local: String,
    pub remote: String,
    /// UDP-encapsulate (RFC 3948) with these ports.
    #[serde(default)]
    pub natt: bool,
    #[serde(default = "natt_port")]
    pub natt_local_port: u16,
    #[serde(default = "natt_port")]
    pub natt_remote_port: u16,
    #[serde(default)]
    pub esn: bool,
    /// Outbound: the last sequence number already used (default 0: the
    /// first packet gets 1). For resuming an SA after a restart.
    #[serde(default)]
    pub seq: u64,
    /// Lifetimes (RFC 4301 4.4.2.1), 0 = none: soft tells the control
    /// plane, hard stops the SA.
    #[serde(default)]
    pub soft_bytes: u64,
    #[serde(default)]
    pub hard_bytes: u64,
    #[serde(default)]
    pub soft_packets: u64,
    #[serde(default)]
    pub hard_packets: u64,
    #[serde(default)]
    pub soft_secs: u64,
    #[serde(default)]
    pub hard_secs: u64,
    /// Inbound: anti-replay window in packets (0 = off).
    #[serde(default = "default_window")]
    pub replay_window: u32,
    /// Inbound: the SA's traffic selectors; inner addresses must fall in
    /// one of these prefixes of their family (none listed: any).
    #[serde(default)]
    pub inner_src: Vec<String>,
    #[serde(default)]
    pub inner_dst: Vec<String>,
    /// `tunnel` (default) or `transport`.
    #[serde(default)]
    pub mode: SaMode,
}

impl std::fmt::Debug for SaConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SaConfig")
            .field("spi", &self.spi)
            .field("direction", &self.direction)
            .field("alg", &self.alg)
            .field("keys", &"<redacted>")
            .field("local", &self.local)
            .field("remote", &self.remote)
            .field("mode", &self.mode)
            .finish()
    }
}

fn natt_port() -> u16 {
    4500
}

fn default_window() -> u32 {
    64
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Protect,
    Bypass,
    Discard,
}

/// Outbound security policy by inner destination prefix.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    pub dst: String,
    pub action: Action,
    /// With `protect`: the SPI of an outbound [[sa]].
    #[serde(default)]
    pub sa: Option<u32>,
}

/// DPDK EAL settings. Defaults suit a machine without hugepages or a NIC.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct EalConfig {
    /// DPDK `--lcores`: the first lcore is the main one (rings,
    /// housekeeping), the others run workers. Plain lists (`0,2-5`) or
    /// lcore@cpu maps (`0@0,1@1,2@1`: two workers sharing CPU 1).
    pub lcores: String,
    /// `-m`: megabytes of memory for DPDK.
    pub memory_mb: u32,
    /// `--no-huge`: use ordinary memory instead of hugepages.
    pub no_huge: bool,
    /// `--no-pci`: do not probe PCI devices (virtual devices only).
    pub no_pci: bool,
    /// `--file-prefix`: unique per process on one machine.
    pub file_prefix: String,
    /// Any further EAL arguments, passed as they are.
    pub extra_args: Vec<String>,
}

impl Default for EalConfig {
    fn default() -> Self {
        EalConfig {
            lcores: "0,1".into(),
            memory_mb: 1024,
            no_huge: true,
            no_pci: true,
            file_prefix: "gw-dataplane".into(),
            extra_args: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct MempoolConfig {
    /// Packet buffers in the pool (2^n - 1 is the most memory-efficient).
    pub mbufs: u32,
    /// Per-lcore cache of free buffers.
    pub cache: u32,
}

impl Default for MempoolConfig {
    fn default() -> Self {
        MempoolConfig { mbufs: 16383, cache: 256 }
    }
}

/// One port: a name for configs and counters, and the DPDK device.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PortConfig {
    pub name: String,
    /// A PCI address (`0000:03:00.0`) or a virtual device string
    /// (`net_pcap0,rx_pcap=in.pcap`, `net_tap0,iface=gw0`, ...).
    pub device: String,
    #[serde(default = "default_desc")]
    pub rx_desc: u16,
    #[serde(default = "default_desc")]
    pub tx_desc: u16,
    /// Gateway mode: our addresses on this port (`192.0.2.1/24`).
    #[serde(default)]
    pub addresses: Vec<String>,
    /// Largest IP packet sent on this port.
    #[serde(default = "default_mtu")]
    pub mtu: u16,
    /// Override the device's MAC address (`02:00:00:00:00:01`).
    #[serde(default)]
    pub mac: Option<String>,
}

fn default_mtu() -> u16 {
    1500
}

fn default_desc() -> u16 {
    1024
}

impl PortConfig {
    /// Whether `device` names a PCI device rather than a virtual one.
    pub fn is_pci(&self) -> bool {
        is_pci_address(&self.device)
    }

    /// The ethdev name DPDK registers the device under: the vdev name
    /// before the first comma, or the PCI address.
    pub fn dpdk_name(&self) -> &str {
        self.device.split(',').next().unwrap_or("")
    }
}

/// `DDDD:BB:DD.F` or `BB:DD.F`, hex digits.
fn is_pci_address(s: &str) -> bool {
    let s = s.split(',').next().unwrap_or("");
    let parts: Vec<&str> = s.split(':').collect();
    let hex = |p: &str, n: usize| p.len() == n && p.chars().all(|c| c.is_ascii_hexdigit());
    let (dom_ok, bus, devfn) = match parts.as_slice() {
        [d, b, df] => (hex(d, 4), *b, *df),
        [b, df] => (true, *b, *df),
        _ => return false,
    };
    let Some((dev, func)) = devfn.split_once('.') else {
        return false;
    };
    dom_ok && hex(bus, 2) && hex(dev, 2) && func.len() == 1 && func.chars().all(|c| ('0'..='7').contains(&c))
}

/// Plain forwarding between port pairs, both directions (the foundation's
/// mode; ESP processing takes over these ports in later configs).
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ForwardConfig {
    /// Pairs of port names. Empty: ports are paired in order (1st with 2nd,
    /// 3rd with 4th, ...).
    pub pairs: Vec<[String; 2]>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct WorkerConfig {
    /// Longest sleep of an idle worker, in microseconds. A worker that finds
    /// every rx queue empty for a while sleeps 1 µs, then twice as long each
    /// time up to this, so an idle gateway does not burn its cores. 0 = never
    /// sleep (pure polling).
    pub idle_sleep_max_us: u32,
    /// Empty polls before the first sleep.
    pub idle_polls_before_sleep: u32,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig { idle_sleep_max_us: 1000, idle_polls_before_sleep: 256 }
    }
}

impl Config {
    /// Reads and checks a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let p = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: p.clone(), source })?;
        Config::parse(&text, &p)
    }

    /// Parses and checks config text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Config, ConfigError> {
        let cfg: Config =
            toml::from_str(text).map_err(|e| ConfigError::Parse { path: origin.into(), message: e.to_string() })?;
        cfg.validate(origin)?;
        Ok(cfg)
    }

    /// The port pairs to forward between, as indices into `ports`.
    pub fn pairs(&self) -> Vec<(usize, usize)> {
        if self.forward.pairs.is_empty() {
            return (0..self.ports.len() / 2).map(|i| (2 * i, 2 * i + 1)).collect();
        }
        let idx = |n: &str| self.ports.iter().position(|p| p.name == n).expect("validated");
        self.forward.pairs.iter().map(|[a, b]| (idx(a), idx(b))).collect()
    }

    /// Checks what serde cannot: names, references, ranges.
    pub fn validate(&self, origin: &str) -> Result<(), ConfigError> {
        let bad = |field: String, message: String| ConfigError::Invalid { path: origin.into(), field, message };
        if self.eal.lcores.trim().is_empty() {
            return Err(bad("eal.lcores".into(), "must name at least one lcore".into()));
        }
        if self.eal.file_prefix.is_empty() || self.eal.file_prefix.contains('/') {
            return Err(bad("eal.file_prefix".into(), "must be a non-empty name without '/'".into()));
        }
        if self.mempool.mbufs < 1023 {
            return Err(bad("mempool.mbufs".into(), format!("{} is too few (at least 1023)", self.mempool.mbufs)));
        }
        if self.ports.is_empty() {
            return Err(bad("port".into(), "no [[port]] configured".into()));
        }
        let mut names = HashSet::new();
        let mut devices = HashSet::new();
        for (i, p) in self.ports.iter().enumerate() {
            if p.name.is_empty() {
                return Err(bad(format!("port[{i}].name"), "must not be empty".into()));
            }
            if !names.insert(p.name.as_str()) {
                return Err(bad(format!("port[{i}].name"), format!("'{}' is used twice", p.name)));
            }
            if p.dpdk_name().is_empty() {
                return Err(bad(format!("port[{i}].device"), "must not be empty".into()));
            }
            if !devices.insert(p.dpdk_name()) {
                return Err(bad(format!("port[{i}].device"), format!("device '{}' is used twice", p.dpdk_name())));
            }
            if !p.is_pci() && !p.dpdk_name().starts_with("net_") && !p.dpdk_name().starts_with("eth_") {
                return Err(bad(
                    format!("port[{i}].device"),
                    format!("'{}' is neither a PCI address nor a net_* virtual device", p.device),
                ));
            }
            for (f, v) in [("rx_desc", p.rx_desc), ("tx_desc", p.tx_desc)] {
                if !(32..=8192).contains(&v) {
                    return Err(bad(format!("port[{i}].{f}"), format!("{v} outside 32..=8192")));
                }
            }
        }
        if self.mode == Mode::Gateway {
            let macs = vec![[2, 0, 0, 0, 0, 0]; self.ports.len()];
            crate::tables::Tables::from_config(self, origin, &macs)?;
        } else if self.forward.pairs.is_empty() {
            if self.ports.len() % 2 != 0 {
                return Err(bad(
                    "forward.pairs".into(),
                    format!("{} ports cannot be paired in order; list the pairs", self.ports.len()),
                ));
            }
        } else {
            let mut used = HashSet::new();
            for (i, pair) in self.forward.pairs.iter().enumerate() {
                for n in pair {
                    if !names.contains(n.as_str()) {
                        return Err(bad(format!("forward.pairs[{i}]"), format!("no port named '{n}'")));
                    }
                    if !used.insert(n.as_str()) {
                        return Err(bad(format!("forward.pairs[{i}]"), format!("port '{n}' is in two pairs")));
                    }
                }
            }
        }
        Ok(())
    }

    /// The EAL argument list this config asks for.
    pub fn eal_args(&self) -> Vec<String> {
        let e = &self.eal;
        let mut a = vec!["--lcores".to_string(), e.lcores.clone(), "-m".into(), e.memory_mb.to_string()];
        if e.no_huge {
            a.push("--no-huge".into());
        }
        if e.no_pci {
            a.push("--no-pci".into());
        }
        a.extend(["--file-prefix".to_string(), e.file_prefix.clone()]);
        for p in &self.ports {
            if p.is_pci() {
                a.extend(["-a".to_string(), p.device.clone()]);
            } else {
                a.extend(["--vdev".to_string(), p.device.clone()]);
            }
        }
        a.extend(e.extra_args.iter().cloned());
        a
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
        [eal]
        lcores = "0,1"
        file_prefix = "t1"
        [[port]]
        name = "wan"
        device = "net_pcap0,rx_pcap=/tmp/in.pcap,tx_pcap=/tmp/out.pcap"
        [[port]]
        name = "lan"
        device = "0000:03:00.1"
        [forward]
        pairs = [["wan", "lan"]]
    "#;

    #[test]
    fn parses_a_good_file_with_defaults() {
        let c = Config::parse(GOOD, "good.toml").unwrap();
        assert_eq!(c.mempool.mbufs, 16383);
        assert_eq!(c.ports[0].dpdk_name(), "net_pcap0");
        assert!(c.ports[1].is_pci());
        assert_eq!(c.pairs(), vec![(0, 1)]);
        let args = c.eal_args();
        assert!(args.windows(2).any(|w| w == ["--vdev", "net_pcap0,rx_pcap=/tmp/in.pcap,tx_pcap=/tmp/out.pcap"]));
        assert!(args.windows(2).any(|w| w == ["-a", "0000:03:00.1"]));
        assert!(args.windows(2).any(|w| w == ["--file-prefix", "t1"]));
    }

    #[test]
    fn pci_addresses() {
        for ok in ["0000:03:00.0", "03:00.7", "abcd:ef:1f.3,txq_inline=0"] {
            assert!(is_pci_address(ok), "{ok}");
        }
        for no in ["net_null0", "0000:03:00.8", "3:00.0", "0000:03:00", "", "zz:00.0"] {
            assert!(!is_pci_address(no), "{no}");
        }
    }

    fn err(text: &str) -> String {
        Config::parse(text, "x.toml").unwrap_err().to_string()
    }

    #[test]
    fn errors_name_the_field() {
        let e = err("[eal]\nlcore = \"0\"\n");
        assert!(e.contains("x.toml") && e.contains("unknown field `lcore`"), "{e}");
        let e = err("[[port]]\nname = \"a\"\ndevice = \"net_null0\"\n[[port]]\nname = \"a\"\ndevice = \"net_null1\"\n");
        assert!(e.contains("port[1].name") && e.contains("used twice"), "{e}");
        let e = err("[[port]]\nname = \"a\"\ndevice = \"eth0\"\n[[port]]\nname = \"b\"\ndevice = \"net_null1\"\n");
        assert!(e.contains("port[0].device"), "{e}");
        let e = err("[[port]]\nname = \"a\"\ndevice = \"net_null0\"\n");
        assert!(e.contains("forward.pairs"), "{e}");
        let e = err("[[port]]\nname = \"a\"\ndevice = \"net_null0\"\n[[port]]\nname = \"b\"\ndevice = \"net_null1\"\n[forward]\npairs = [[\"a\", \"c\"]]\n");
        assert!(e.contains("forward.pairs[0]") && e.contains("'c'"), "{e}");
        let e = err("[mempool]\nmbufs = 10\n[[port]]\nname = \"a\"\ndevice = \"net_null0\"\n");
        assert!(e.contains("mempool.mbufs"), "{e}");
        let e = err("[[port]]\nname = \"a\"\ndevice = \"net_null0\"\nrx_desc = 5\n[[port]]\nname = \"b\"\ndevice = \"net_null1\"\n");
        assert!(e.contains("port[0].rx_desc"), "{e}");
        let e = err("[eal]\nmemory_mb = \"lots\"\n");
        assert!(e.contains("memory_mb"), "{e}");
        assert!(err("").contains("no [[port]]"));
    }

    #[test]
    fn no_match_and_its_bypass_list() {
        let c = |t: &str| toml::from_str::<ControlConfig>(&format!("dir = \"/run/gw\"\n{t}")).unwrap();
        assert_eq!(c("").no_match, NoMatch::Bypass);
        let d = c("no_match = \"discard\"\nbypass = [\"10.1.1.0/24\", \"2001:db8:1::/48\"]");
        assert_eq!(d.bypass_prefixes().unwrap().len(), 2);
        let e = c("no_match = \"discard\"\nbypass = [\"10.1.1.0/24\", \"nonsense\"]").bypass_prefixes().unwrap_err();
        assert_eq!(e.0, "control.bypass[1]");
        let e = c("bypass = [\"10.1.1.0/24\"]").bypass_prefixes().unwrap_err();
        assert!(e.1.contains("only with no_match"), "{e:?}");
        assert!(toml::from_str::<ControlConfig>("dir = \"/x\"\nno_match = \"drop\"").is_err());
    }
}
