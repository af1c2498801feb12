//! Connections, as the engine uses them, built from the daemon's TOML
//! (`configs/controlplane.example.toml` documents every field).

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::pki::{Credential, Trust};
use super::proposal::{parse_esp, parse_ike, EspSuite};
use super::ts::Prefix;
use crate::crypto::keys::IkeSuite;
use crate::crypto::Secret;
use crate::wire::{Identification, TrafficSelector};

/// Who starts the IKE SA.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Starts the IKE SA when the daemon starts (and again after it fails).
    Initiator,
    /// Waits for peers.
    Responder,
}

/// One connection: who the peer is, how both sides authenticate, and what
/// the child SA protects.
#[derive(Debug, Clone, PartialEq)]
pub struct Connection {
    pub name: String,
    pub role: Role,
    /// Our IKE address; None: any of ours.
    pub local: Option<IpAddr>,
    /// The peer's IKE address; None: any (a responder for road warriors).
    pub remote: Option<IpAddr>,
    pub local_id: Identification,
    /// None: any identity that knows the PSK.
    pub remote_id: Option<Identification>,
    /// The PSK for peers without one of their own (empty: none).
    pub psk: Secret,
    /// PSKs of named peers (`peer_psk`): such a peer authenticates with
    /// its own key and no other, so a peer that only knows the shared
    /// `psk` cannot claim its identity.
    pub peer_psks: Vec<(Identification, Secret)>,
    /// How we authenticate, and how the peer must (RFC 7296 2.15: each
    /// side picks its own method).
    pub auth: AuthKind,
    pub remote_auth: AuthKind,
    /// `auth = "pubkey"`: our certificate chain and key.
    pub credential: Option<Arc<Credential>>,
    /// `remote_auth = "pubkey"`: the CAs and CRLs a peer's chain must meet.
    pub trust: Option<Arc<Trust>>,
    pub send_cert: SendCert,
    pub ike: Vec<IkeSuite>,
    pub esp: Vec<EspSuite>,
    /// The child SAs: the first is the connection's own (its `local_ts`
    /// and `remote_ts`, named after it), made in IKE_AUTH; the others
    /// (`[[connection.child]]`) by CREATE_CHILD_SA once the IKE SA is up
    /// (RFC 7296 1.3.1). A responder narrows a request to the first child
    /// whose selectors it meets.
    pub children: Vec<ChildConfig>,
    /// Responder: virtual addresses for clients that ask through CP.
    pub pool: Option<Prefix>,
    /// Initiator: ask the responder for a virtual address.
    pub request_vip: bool,
    pub ike_rekey: Duration,
    pub child_rekey: Duration,
    /// Hard lifetime of a child SA (deleted if a rekey has not replaced it).
    pub child_life: Duration,
    /// Rekeys happen up to this share earlier, at random (RFC 7296 2.8:
    /// keep both ends from rekeying at once).
    pub jitter_percent: u8,
    /// Liveness check after this long without hearing from the peer.
    pub dpd: Option<Duration>,
    /// Use PFS (a new DH) when rekeying child SAs if the ESP proposal names a group.
    pub pfs: bool,
    /// Offer / accept MOBIKE (RFC 4555) and MOBIKE-X on this connection's
    /// IKE SAs.
    pub mobike: crate::mobikex::Offer,
    /// Our other addresses, announced to the peer in ADDITIONAL_IP4/6_ADDRESS
    /// (RFC 4555 3.4) for it to reach us on if the one in use fails.
    pub additional_addresses: Vec<IpAddr>,
    /// Offer / accept Clone IKE SA (RFC 7791): CLONE_IKE_SA_SUPPORTED.
    pub clone: bool,
    /// With `clone`: offer / accept the reduced exchange (Appendix B.5,
    /// its Vendor ID in IKE_SA_INIT).
    pub clone_reduced: bool,
    /// Our other interfaces (addresses): an initiator clones its IKE SA
    /// once for each after IKE_AUTH and moves the clone there (RFC 7791
    /// Appendix B), where the child SAs of that interface are opened.
    pub interfaces: Vec<IpAddr>,
    /// Gateway: export a stub of each IKE SA (draft-xu-ike-sa-sync) and
    /// rebuild IKE SAs of this connection from stubs (IKE_SA_SYN).
    pub stubs: bool,
    /// Client: the standby gateways to rebuild the IKE SA on, in order,
    /// when its gateway is declared dead or on `failover`.
    pub standby: Vec<IpAddr>,
    /// Client: announce REDIRECT_SUPPORTED and follow a gateway's REDIRECT
    /// (RFC 5685).
    pub redirect: bool,
    /// MPSA endpoint: where group-SA traffic goes, inner prefix -> the
    /// member endpoint's outer address (static routes, mpsa 3.4).
    pub mpsa_routes: Vec<(cpdp::msg::WirePrefix, IpAddr)>,
    /// Gone from the config at a reload (`engine/reload.rs`): its SAs are
    /// being deleted, and nothing new uses it. Never set from a file.
    pub retired: bool,
}

/// One child SA of a connection: what it protects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildConfig {
    pub name: String,
    pub local_ts: Vec<TrafficSelector>,
    pub remote_ts: Vec<TrafficSelector>,
    /// Initiator: opened with the IKE SA (else only by `gwctl initiate
    /// NAME --child CHILD`).
    pub auto: bool,
    /// ESP transport mode (USE_TRANSPORT_MODE, RFC 7296 1.3.1): the child
    /// SA protects traffic between the IKE SA's two addresses, which must
    /// lie in `local_ts` and `remote_ts` (there: where the ends may be,
    /// and may move to).
    pub transport: bool,
    /// Clone IKE SA layout (RFC 7791 Appendix B): opened on the IKE SA of
    /// this interface of ours (the connection's `local` or one of its
    /// `interfaces`); none: the original IKE SA.
    pub interface: Option<IpAddr>,
}

/// `auth` / `remote_auth`: a pre-shared key or a certificate's key
/// (RFC 7427 digital signatures).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthKind {
    #[default]
    Psk,
    Pubkey,
}

/// `send_cert`: when our certificate goes in IKE_AUTH (RFC 7296 3.6).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SendCert {
    /// When the peer sent a CERTREQ (strongSwan's default too).
    #[default]
    Ifasked,
    Always,
    Never,
}

/// `mode = "tunnel" | "transport"` of a child SA.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChildMode {
    #[default]
    Tunnel,
    Transport,
}

/// `[[connection.child]]` as written in TOML.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChildToml {
    pub name: String,
    pub local_ts: Vec<Prefix>,
    pub remote_ts: Vec<Prefix>,
    #[serde(default = "d_true")]
    pub auto: bool,
    #[serde(default)]
    pub mode: ChildMode,
    /// One of the connection's addresses (`local`, `interfaces`): the IKE
    /// SA (clone) this child SA is opened on.
    pub interface: Option<IpAddr>,
}

/// `mpsa_routes = [{ prefix = "10.3.0.0/16", endpoint = "192.0.2.13" }]`.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MpsaRouteToml {
    pub prefix: Prefix,
    pub endpoint: IpAddr,
}

/// The `[[connection]]` table as written in TOML.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectionToml {
    pub name: String,
    #[serde(default = "responder")]
    pub role: Role,
    pub local: Option<IpAddr>,
    pub remote: Option<String>,
    pub local_id: Option<String>,
    pub remote_id: Option<String>,
    /// The PSK for peers not in `peer_psk`; may be left out (or empty)
    /// when `peer_psk` names every peer.
    #[serde(default)]
    pub psk: String,
    /// Per-identity PSKs: { "a.example.net" = "...", ... }.
    #[serde(default)]
    pub peer_psk: std::collections::BTreeMap<String, String>,
    /// How we authenticate: "psk" (default) or "pubkey" (`cert`, `key`).
    #[serde(default)]
    pub auth: AuthKind,
    /// How the peer authenticates; default: as we do. "pubkey" needs `cas`.
    pub remote_auth: Option<AuthKind>,
    /// Our certificate (PEM; intermediates after it).
    pub cert: Option<PathBuf>,
    /// Its private key (PEM: PKCS#8, SEC1 or PKCS#1).
    pub key: Option<PathBuf>,
    /// CA certificates (PEM) a peer's chain must end at.
    #[serde(default)]
    pub cas: Vec<PathBuf>,
    /// CRLs (PEM) a peer's chain is checked against.
    #[serde(default)]
    pub crls: Vec<PathBuf>,
    #[serde(default)]
    pub send_cert: SendCert,
    /// An RSA key signs with RSASSA-PSS (default), else PKCS#1 v1.5.
    #[serde(default = "d_true")]
    pub rsa_pss: bool,
    #[serde(default = "default_ike")]
    pub ike_proposals: Vec<String>,
    #[serde(default = "default_esp")]
    pub esp_proposals: Vec<String>,
    pub local_ts: Vec<Prefix>,
    pub remote_ts: Vec<Prefix>,
    pub pool: Option<Prefix>,
    #[serde(default)]
    pub request_vip: bool,
    #[serde(default = "d_ike_rekey")]
    pub ike_rekey_secs: u64,
    #[serde(default = "d_child_rekey")]
    pub child_rekey_secs: u64,
    pub child_life_secs: Option<u64>,
    #[serde(default = "d_jitter")]
    pub jitter_percent: u8,
    #[serde(default = "d_dpd")]
    pub dpd_secs: u64,
    #[serde(default = "d_true")]
    pub pfs: bool,
    #[serde(default = "d_true")]
    pub mobike: bool,
    /// With `mobike`: offer MOBIKE-X (version 2) before MOBIKE.
    #[serde(default = "d_true")]
    pub mobikex: bool,
    #[serde(default)]
    pub additional_addresses: Vec<IpAddr>,
    /// Clone IKE SA (RFC 7791).
    #[serde(default = "d_true")]
    pub clone: bool,
    /// Clone IKE SA's reduced exchange (Appendix B.5).
    #[serde(default = "d_true")]
    pub clone_reduced: bool,
    #[serde(default)]
    pub interfaces: Vec<IpAddr>,
    /// IKE SA stubs (draft-xu-ike-sa-sync), gateway side.
    #[serde(default)]
    pub stubs: bool,
    /// Standby gateways for a rebuild by IKE_SA_SYN, client side.
    #[serde(default)]
    pub standby: Vec<IpAddr>,
    /// RFC 5685 redirects, client side.
    #[serde(default = "d_true")]
    pub redirect: bool,
    #[serde(default)]
    pub mpsa_routes: Vec<MpsaRouteToml>,
    /// More child SAs (`[[connection.child]]`).
    #[serde(default)]
    pub child: Vec<ChildToml>,
    /// The connection's own child SA: `tunnel` (default) or `transport`.
    #[serde(default)]
    pub mode: ChildMode,
}

fn responder() -> Role {
    Role::Responder
}
fn default_ike() -> Vec<String> {
    vec!["aes128gcm16-prfsha256-x25519".into()]
}
fn default_esp() -> Vec<String> {
    vec!["aes128gcm16".into()]
}
fn d_ike_rekey() -> u64 {
    14400
}
fn d_child_rekey() -> u64 {
    3600
}
fn d_jitter() -> u8 {
    10
}
fn d_dpd() -> u64 {
    30
}
fn d_true() -> bool {
    true
}

impl Connection {
    /// The PSK that authenticates us to, and the peer to us, when the
    /// peer is `peer`: its own from `peer_psk`, else the shared `psk`
    /// (None when there is neither: nothing authenticates it).
    pub fn psk_for(&self, peer: Option<&Identification>) -> Option<&Secret> {
        let own = peer.and_then(|p| self.peer_psks.iter().find(|(id, _)| id == p)).map(|(_, k)| k);
        own.or((!self.psk.is_empty()).then_some(&self.psk))
    }
}

impl ConnectionToml {
    /// Checks and converts; errors name the field.
    pub fn build(&self) -> Result<Connection, String> {
        let remote = match self.remote.as_deref() {
            None | Some("%any") => None,
            Some(r) => Some(r.parse::<IpAddr>().map_err(|_| format!("remote: {r:?} is not an address or %any"))?),
        };
        const SHORT: &str = "at least 8 characters (a short PSK is guessable offline from one exchange)";
        let remote_auth = self.remote_auth.unwrap_or(self.auth);
        let uses_psk = self.auth == AuthKind::Psk || remote_auth == AuthKind::Psk;
        if uses_psk && self.psk.is_empty() && self.peer_psk.is_empty() {
            return Err("psk: a PSK is needed (or peer_psk, one per peer)".into());
        }
        let (credential, trust) = self.pki(remote_auth)?;
        if !self.psk.is_empty() && self.psk.len() < 8 {
            return Err(format!("psk: {SHORT}"));
        }
        for (id, k) in &self.peer_psk {
            if k.len() < 8 {
                return Err(format!("peer_psk.{id:?}: {SHORT}"));
            }
            if !self.psk.is_empty() && k == &self.psk {
                return Err(format!("peer_psk.{id:?}: the same as psk, so any peer with psk could claim {id:?}"));
            }
        }
        let ike = self
            .ike_proposals
            .iter()
            .map(|p| parse_ike(p).map_err(|e| format!("ike_proposals: {e}")))
            .collect::<Result<Vec<_>, _>>()?;
        let esp = self
            .esp_proposals
            .iter()
            .map(|p| parse_esp(p).map_err(|e| format!("esp_proposals: {e}")))
            .collect::<Result<Vec<_>, _>>()?;
        if ike.is_empty() || esp.is_empty() {
            return Err("ike_proposals and esp_proposals need at least one proposal each".into());
        }
        if self.local_ts.is_empty() || self.remote_ts.is_empty() {
            return Err("local_ts and remote_ts need at least one prefix each".into());
        }
        let mut children = vec![ChildConfig {
            name: self.name.clone(),
            local_ts: self.local_ts.iter().map(|p| p.to_ts()).collect(),
            remote_ts: self.remote_ts.iter().map(|p| p.to_ts()).collect(),
            auto: true,
            transport: self.mode == ChildMode::Transport,
            interface: None,
        }];
        for (i, c) in self.child.iter().enumerate() {
            if children.iter().any(|k| k.name == c.name) {
                return Err(format!(
                    "child[{i}].name: {:?} is taken (the connection's own child has its name)",
                    c.name
                ));
            }
            if c.local_ts.is_empty() || c.remote_ts.is_empty() {
                return Err(format!("child[{i}] ({}): local_ts and remote_ts need a prefix each", c.name));
            }
            children.push(ChildConfig {
                name: c.name.clone(),
                local_ts: c.local_ts.iter().map(|p| p.to_ts()).collect(),
                remote_ts: c.remote_ts.iter().map(|p| p.to_ts()).collect(),
                auto: c.auto,
                transport: c.mode == ChildMode::Transport,
                interface: c.interface,
            });
            if let Some(a) = c.interface {
                if self.local != Some(a) && !self.interfaces.contains(&a) {
                    return Err(format!(
                        "child[{i}] ({}).interface: {a} is neither local nor one of interfaces",
                        c.name
                    ));
                }
            }
        }
        if self.interfaces.iter().any(|a| Some(*a) == self.local) {
            return Err("interfaces: list the other interfaces, not local".into());
        }
        if self.role == Role::Initiator && remote.is_none() {
            return Err("remote: an initiator needs the peer's address".into());
        }
        if self.jitter_percent > 50 {
            return Err("jitter_percent: at most 50".into());
        }
        if self.child_rekey_secs == 0 || self.ike_rekey_secs == 0 {
            return Err("ike_rekey_secs and child_rekey_secs must be above 0".into());
        }
        if let Some(a) = self.additional_addresses.iter().find(|a| Some(**a) == self.local) {
            return Err(format!("additional_addresses: {a} is `local` itself"));
        }
        let child_life = self.child_life_secs.unwrap_or(self.child_rekey_secs + self.child_rekey_secs / 10 + 1);
        if child_life <= self.child_rekey_secs {
            return Err("child_life_secs must be longer than child_rekey_secs".into());
        }
        let local_id = match (&self.local_id, self.local) {
            (Some(s), _) => Identification::from_text(s),
            // With a certificate, its subject DN (RFC 7296 3.5).
            (None, _) if credential.is_some() => Identification {
                ty: crate::codepoints::IdType::DerAsn1Dn,
                data: credential.as_ref().map(|c| c.subject_der.clone()).unwrap_or_default(),
            },
            (None, Some(a)) => Identification::from_text(&a.to_string()),
            (None, None) => return Err("local_id: needed when local is not set".into()),
        };
        Ok(Connection {
            name: self.name.clone(),
            role: self.role,
            local: self.local,
            remote,
            local_id,
            remote_id: self.remote_id.as_deref().filter(|s| *s != "%any").map(Identification::from_text),
            psk: Secret::new(self.psk.as_bytes().to_vec()),
            peer_psks: self
                .peer_psk
                .iter()
                .map(|(id, k)| (Identification::from_text(id), Secret::new(k.as_bytes().to_vec())))
                .collect(),
            auth: self.auth,
            remote_auth,
            credential,
            trust,
            send_cert: self.send_cert,
            ike,
            esp,
            children,
            pool: self.pool,
            request_vip: self.request_vip,
            ike_rekey: Duration::from_secs(self.ike_rekey_secs),
            child_rekey: Duration::from_secs(self.child_rekey_secs),
            child_life: Duration::from_secs(child_life),
            jitter_percent: self.jitter_percent,
            dpd: (self.dpd_secs > 0).then(|| Duration::from_secs(self.dpd_secs)),
            pfs: self.pfs,
            mobike: match (self.mobike, self.mobikex) {
                (false, _) => crate::mobikex::Offer::Off,
                (true, false) => crate::mobikex::Offer::Mobike,
                (true, true) => crate::mobikex::Offer::MobikeX,
            },
            additional_addresses: self.additional_addresses.clone(),
            clone: self.clone,
            clone_reduced: self.clone && self.clone_reduced,
            interfaces: self.interfaces.clone(),
            stubs: self.stubs,
            standby: self.standby.clone(),
            redirect: self.redirect,
            mpsa_routes: self
                .mpsa_routes
                .iter()
                .map(|r| (cpdp::msg::WirePrefix { addr: r.prefix.addr, len: r.prefix.len }, r.endpoint))
                .collect(),
            retired: false,
        })
    }
}

/// A connection's credential and trust store, each when it uses them.
type Pki = (Option<Arc<Credential>>, Option<Arc<Trust>>);

impl ConnectionToml {
    /// Reads the certificate files `auth` and `remote_auth` need; errors
    /// name the field and the file.
    fn pki(&self, remote_auth: AuthKind) -> Result<Pki, String> {
        let credential = match (self.auth, &self.cert, &self.key) {
            (AuthKind::Pubkey, Some(c), Some(k)) => Some(Arc::new(Credential::load(c, k, self.rsa_pss)?)),
            (AuthKind::Pubkey, _, _) => return Err("auth = \"pubkey\" needs cert and key".into()),
            (AuthKind::Psk, None, None) => None,
            (AuthKind::Psk, _, _) => return Err("cert, key: set only with auth = \"pubkey\"".into()),
        };
        let trust = match remote_auth {
            AuthKind::Pubkey if self.cas.is_empty() => {
                return Err("cas: remote_auth = \"pubkey\" needs the CA certificates to check the peer's against".into())
            }
            AuthKind::Pubkey => Some(Arc::new(Trust::load(&self.cas, &self.crls)?)),
            AuthKind::Psk if !self.cas.is_empty() || !self.crls.is_empty() => {
                return Err("cas, crls: set only with remote_auth = \"pubkey\"".into())
            }
            AuthKind::Psk => None,
        };
        Ok((credential, trust))
    }
}

impl Connection {
    /// An initiator connection still in the config (not retired by a reload).
    pub fn is_initiator(&self) -> bool {
        self.role == Role::Initiator && !self.retired
    }
}

/// Engine-wide settings, with every limit a peer's messages can run into.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Half-open IKE SAs at which IKE_SA_INIT requests must carry a cookie
    /// (RFC 7296 2.6).
    pub cookie_threshold: usize,
    /// The cookie secret is replaced this often (RFC 7296 2.6: "frequently").
    pub cookie_secret_lifetime: Duration,
    /// Cookies made with the previous secret are still taken this long
    /// after it was replaced (an initiator's retry in flight).
    pub cookie_grace: Duration,
    /// Longest cookie an initiator echoes (RFC 7296 2.6: 1..64 octets).
    pub max_cookie_len: usize,
    /// IKE_SA_INIT retries an initiator makes for cookies and
    /// INVALID_KE_PAYLOAD, and CREATE_CHILD_SA retries for INVALID_KE_PAYLOAD.
    pub init_retries: u32,
    /// A half-open SA is forgotten after this long.
    pub half_open_timeout: Duration,
    /// First retransmission timeout; doubled each time (RFC 7296 2.4).
    pub retransmit_base: Duration,
    pub retransmit_tries: u32,
    /// NAT keepalive interval when we are behind a NAT (RFC 3948 4).
    pub keepalive: Duration,
    /// Protected messages above this many octets go out as RFC 7383
    /// fragments when the peer supports them.
    pub fragment_size: usize,
    /// Most fragments one message may arrive in (RFC 7383 2.6: the
    /// receiver's limit); more and the message is dropped.
    pub max_fragments: u16,
    /// A rekey refused with TEMPORARY_FAILURE (or crossed by a deletion) is
    /// tried again after this long (RFC 7296 2.25).
    pub retry_after_busy: Duration,
    /// How long the responder of a child rekey keeps sending on the old SA
    /// when the initiator does not delete it (it normally does within a
    /// round trip).
    pub outbound_switch_grace: Duration,
    /// Octets of our nonces (RFC 7296 2.10: at least 16, and at least half
    /// the PRF's key size).
    pub nonce_len: usize,
    /// Anti-replay window of the child SAs we install, in packets.
    pub replay_window: u32,
    /// An IKE SA rebuilt from a stub that sees no valid protected message
    /// this long is deleted (draft-xu-ike-sa-sync 5 item 3).
    pub rebuilt_timeout: Duration,
    /// A SYN whose stub the local table lacks waits this long for the
    /// stub bank (`Output::Stub(StubOp::Fetch)`); None: no bank, the full
    /// exchange at once.
    pub stub_fetch_wait: Option<Duration>,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            cookie_threshold: 1000,
            cookie_secret_lifetime: Duration::from_secs(600),
            cookie_grace: Duration::from_secs(30),
            max_cookie_len: 64,
            init_retries: 3,
            half_open_timeout: Duration::from_secs(30),
            retransmit_base: Duration::from_secs(1),
            retransmit_tries: 5,
            keepalive: Duration::from_secs(20),
            fragment_size: 1280,
            max_fragments: 64,
            retry_after_busy: Duration::from_secs(2),
            outbound_switch_grace: Duration::from_secs(2),
            nonce_len: 32,
            replay_window: 1024,
            rebuilt_timeout: Duration::from_secs(30),
            stub_fetch_wait: None,
        }
    }
}
