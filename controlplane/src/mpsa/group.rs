//! The gateway's side of MPSA (mpsa 3.3.1): groups from config, each with
//! a group SA made before any member connects, handed to members after
//! IKE_AUTH, and replaced before its lifetime runs out or when a member
//! leaves (NOTES.md). The endpoint's side lives in the engine (it only
//! installs what it is given).

use std::collections::HashSet;
use std::time::{Duration, Instant};

use serde::Deserialize;

use super::MpsaPut;
use crate::crypto::sk::Encr;
use crate::crypto::{Integ, Prf, Random, Secret};
use crate::ike::proposal::parse_esp;
use crate::wire::Identification;

/// What this engine does with MPSA.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MpsaRole {
    /// No V(MPSA); MPSA_PUT refused.
    #[default]
    Off,
    /// Announces V(MPSA) and hands group SAs to members; refuses MPSA_PUT.
    Gateway,
    /// Announces V(MPSA) and installs group SAs its gateway hands it (CPE).
    Endpoint,
}

/// `[[group]]` as written in TOML.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupToml {
    pub name: String,
    /// Member identities (as their IDi says: address, FQDN or user@domain).
    pub members: Vec<String>,
    /// The group SA's cipher, strongSwan notation (aes128gcm16,
    /// aes256gcm16, aes128-sha1, aes256-sha256, ...).
    #[serde(default = "d_esp")]
    pub esp: String,
    /// The PRF members derive KEYMAT with.
    #[serde(default = "d_prf")]
    pub prf: String,
    #[serde(default = "d_life")]
    pub lifetime_secs: u32,
    /// Replace the SA when this share of its lifetime has passed.
    #[serde(default = "d_rekey_percent")]
    pub rekey_percent: u8,
    #[serde(default = "d_roll1")]
    pub rollover1_secs: u32,
    #[serde(default = "d_roll2")]
    pub rollover2_secs: u32,
    /// A new SA for the remaining members whenever one leaves.
    #[serde(default = "d_true")]
    pub rekey_on_leave: bool,
    /// A new SA for everyone whenever a member joins, so it cannot read
    /// what was sent before (mpsa-04 5.3: MAY). Off by default: each join
    /// costs every member a rollover.
    #[serde(default)]
    pub rekey_on_join: bool,
    /// BGP peer discovery (mpsa-04 section 4): the prefixes a member may
    /// announce, by identity (equal or more specific). A member not listed
    /// may announce what its child SAs' selectors hold.
    #[serde(default)]
    pub announce: std::collections::BTreeMap<String, Vec<String>>,
}

fn d_esp() -> String {
    "aes128gcm16".into()
}
fn d_prf() -> String {
    "prfsha256".into()
}
fn d_life() -> u32 {
    3600
}
fn d_rekey_percent() -> u8 {
    80
}
fn d_roll1() -> u32 {
    2
}
fn d_roll2() -> u32 {
    10
}
fn d_true() -> bool {
    true
}

/// A checked group.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupConfig {
    pub name: String,
    /// A set: the hub looks a member up per IKE SA (tens of thousands).
    pub members: HashSet<Identification>,
    pub encr: Encr,
    pub integ: Option<Integ>,
    pub prf: Prf,
    pub lifetime: Duration,
    pub rekey_percent: u8,
    pub rollover1: u32,
    pub rollover2: u32,
    pub rekey_on_leave: bool,
    pub rekey_on_join: bool,
    pub announce: std::collections::HashMap<Identification, Vec<cpdp::msg::WirePrefix>>,
}

impl GroupToml {
    /// Checks and converts; errors name the field.
    pub fn build(&self) -> Result<GroupConfig, String> {
        if self.members.is_empty() {
            return Err("members: a group needs at least one member".into());
        }
        let esp = parse_esp(&self.esp).map_err(|e| format!("esp: {e}"))?;
        if esp.dh.is_some() || esp.esn {
            return Err("esp: a group SA has no DH group and no ESN".into());
        }
        let prf = match self.prf.as_str() {
            "prfsha1" => Prf::HmacSha1,
            "prfsha256" => Prf::HmacSha256,
            "prfsha384" => Prf::HmacSha384,
            "prfsha512" => Prf::HmacSha512,
            p => return Err(format!("prf: unknown PRF {p:?} (prfsha1, prfsha256, prfsha384, prfsha512)")),
        };
        if self.lifetime_secs < 10 {
            return Err("lifetime_secs: at least 10".into());
        }
        if !(10..=95).contains(&self.rekey_percent) {
            return Err("rekey_percent: 10 to 95".into());
        }
        let rekey_lead = self.lifetime_secs as u64 * (100 - self.rekey_percent as u64) / 100;
        if self.rollover2_secs < self.rollover1_secs || self.rollover2_secs as u64 >= rekey_lead {
            return Err(format!(
                "rollover1_secs <= rollover2_secs < the time between rekey and expiry ({rekey_lead} s) is needed"
            ));
        }
        let mut announce = std::collections::HashMap::new();
        for (id, list) in &self.announce {
            if !self.members.contains(id) {
                return Err(format!("announce: {id:?} is not a member of the group"));
            }
            let ps = list
                .iter()
                .enumerate()
                .map(|(i, s)| crate::bgp::parse_prefix(s).map_err(|e| format!("announce.{id:?}[{i}]: {e}")))
                .collect::<Result<Vec<_>, _>>()?;
            announce.insert(Identification::from_text(id), ps);
        }
        Ok(GroupConfig {
            announce,
            name: self.name.clone(),
            members: self.members.iter().map(|m| Identification::from_text(m)).collect(),
            encr: esp.encr,
            integ: esp.integ,
            prf,
            lifetime: Duration::from_secs(self.lifetime_secs as u64),
            rekey_percent: self.rekey_percent,
            rollover1: self.rollover1_secs,
            rollover2: self.rollover2_secs,
            rekey_on_leave: self.rekey_on_leave,
            rekey_on_join: self.rekey_on_join,
        })
    }
}

/// One group SA as the gateway made it.
#[derive(Debug)]
pub struct GroupSa {
    pub spi: u32,
    nonce: Vec<u8>,
    sk_d: Secret,
    pub created: Instant,
    pub expires: Instant,
}

/// A group at the gateway: its config, its current SA, who has it.
#[derive(Debug)]
pub struct GatewayGroup {
    pub cfg: GroupConfig,
    pub current: GroupSa,
    /// IKE SAs (our SPI) that acknowledged the current SA.
    pub delivered: HashSet<u64>,
    /// When a member left: the group is rekeyed then (at the next timer
    /// check).
    pub rekey_requested: Option<Instant>,
    pub rekeys: u64,
    /// The current SA went to a member (an MPSA_PUT sent): a join rekeys
    /// only then (`rekey_on_join`), nobody else having it before.
    pub handed_out: bool,
}

impl GatewayGroup {
    /// The group SA is made now, before any member connects (mpsa 3.3.1).
    pub fn new(cfg: GroupConfig, now: Instant, spi: u32, rng: &mut dyn Random) -> GatewayGroup {
        let current = Self::make_sa(&cfg, now, spi, rng);
        GatewayGroup { cfg, current, delivered: HashSet::new(), rekey_requested: None, rekeys: 0, handed_out: false }
    }

    fn make_sa(cfg: &GroupConfig, now: Instant, spi: u32, rng: &mut dyn Random) -> GroupSa {
        // Nonce and SK_d as IKEv2 makes nonces: random, SK_d the PRF's
        // preferred key length (mpsa 3.2.2, 3.3.1).
        GroupSa {
            spi,
            nonce: rng.vec(32),
            sk_d: Secret::new(rng.vec(cfg.prf.out_len())),
            created: now,
            expires: now + cfg.lifetime,
        }
    }

    pub fn is_member(&self, id: Option<&Identification>) -> bool {
        id.is_some_and(|id| self.cfg.members.contains(id))
    }

    /// When the current SA is replaced: at `rekey_percent` of its
    /// lifetime, or as soon as a member left.
    pub fn rekey_at(&self) -> Instant {
        let timed = self.current.created + self.cfg.lifetime * self.cfg.rekey_percent as u32 / 100;
        self.rekey_requested.map_or(timed, |t| t.min(timed))
    }

    pub fn rekey(&mut self, now: Instant, spi: u32, rng: &mut dyn Random) {
        self.current = Self::make_sa(&self.cfg, now, spi, rng);
        self.delivered.clear();
        self.rekey_requested = None;
        self.rekeys += 1;
        self.handed_out = false;
    }

    /// N(MPSA_PUT) for the current SA; Lifetime is the time left.
    pub fn put(&self, now: Instant) -> MpsaPut {
        let left = self.current.expires.saturating_duration_since(now).as_secs().max(1);
        MpsaPut {
            spi: self.current.spi,
            encr: self.cfg.encr,
            prf: self.cfg.prf,
            integ: self.cfg.integ,
            nonce: self.current.nonce.clone(),
            sk_d: self.current.sk_d.clone(),
            lifetime: left.min(u32::MAX as u64) as u32,
            rollover1: self.cfg.rollover1,
            rollover2: self.cfg.rollover2,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::SystemRandom;

    fn toml(extra: &str) -> GroupToml {
        toml::from_str(&format!("name = \"g\"\nmembers = [\"a.lab\", \"b.lab\"]\n{extra}")).unwrap()
    }

    #[test]
    fn groups_build_with_defaults_and_errors_name_the_field() {
        let g = toml("").build().unwrap();
        assert_eq!(g.encr, Encr::AesGcm16(128));
        assert_eq!(g.prf, Prf::HmacSha256);
        assert_eq!(g.members.len(), 2);
        assert!(toml("esp = \"aes128gcm16-x25519\"").build().unwrap_err().starts_with("esp:"));
        assert!(toml("prf = \"prfmd5\"").build().unwrap_err().starts_with("prf:"));
        assert!(toml("rollover2_secs = 900").build().unwrap_err().contains("rollover"));
        assert!(toml("rekey_percent = 100").build().unwrap_err().starts_with("rekey_percent"));
        let e = toml::from_str::<GroupToml>("name = \"g\"\nmembers = []\nlifetime = 3").unwrap_err();
        assert!(e.to_string().contains("lifetime"), "{e}");
    }

    #[test]
    fn the_gateway_makes_a_fresh_sa_on_rekey_and_tells_the_time_left() {
        let mut rng = SystemRandom::default();
        let now = Instant::now();
        let mut g = GatewayGroup::new(toml("lifetime_secs = 100").build().unwrap(), now, 0x1000, &mut rng);
        assert_eq!(g.rekey_at(), now + Duration::from_secs(80));
        let p = g.put(now + Duration::from_secs(30));
        assert_eq!((p.spi, p.lifetime, p.sk_d.as_slice().len(), p.nonce.len()), (0x1000, 70, 32, 32));
        assert!(g.is_member(Some(&Identification::from_text("b.lab"))));
        assert!(!g.is_member(Some(&Identification::from_text("c.lab"))));
        assert!(!g.is_member(None));
        g.delivered.insert(7);
        g.rekey(now + Duration::from_secs(80), 0x2000, &mut rng);
        let q = g.put(now + Duration::from_secs(80));
        assert_eq!((q.spi, q.lifetime), (0x2000, 100));
        assert_ne!(q.sk_d.as_slice(), p.sk_d.as_slice());
        assert_ne!(q.nonce, p.nonce);
        assert!(g.delivered.is_empty());
        assert_eq!(g.rekeys, 1);
    }
}
