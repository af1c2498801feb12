//! Multi-point SA membership resting on certificates (mpsa-04 5.1: the
//! members authenticate to the gateway with signatures; issue 17): the
//! hub takes endpoints by RFC 7427 signature only, and a group's
//! `members` are identities a certificate from the hub's CA must prove.
//!
//! ```text
//! a.lab, b.lab: members with certificates for their names -> the group SA
//! c.lab: a valid certificate, not a member            -> IKE SA, no group SA
//! mallory: a certificate for m.lab, claiming a.lab     -> AUTHENTICATION_FAILED
//! ```

mod certs_common;
mod mpsa_common;

use std::collections::VecDeque;
use std::path::Path;
use std::time::Instant;

use certs_common::{ca, issue, pubkey, unix, Ca};
use controlplane::crypto::SeededRandom;
use controlplane::daemon::view;
use controlplane::ike::{Engine, Settings};
use controlplane::mpsa::{GroupToml, MpsaRole};
use cpdp::msg::Command;
use mpsa_common::{conn, Lab, Node, HUB};

fn p256() -> Option<&'static rcgen::SignatureAlgorithm> {
    Some(&rcgen::PKCS_ECDSA_P256_SHA256)
}

fn hub(dir: &Path, lab: &Ca) -> Engine {
    let (c, k) = issue(dir, lab, "hub", "hub.lab", p256(), |_| {});
    let c = conn(&format!(
        "name = \"members\"\nrole = \"responder\"\nlocal = \"{HUB}\"\nremote = \"%any\"\nlocal_id = \"hub.lab\"\n\
         remote_id = \"%any\"\nlocal_ts = [\"10.0.0.0/24\"]\nremote_ts = [\"10.1.0.0/16\"]\n{}",
        pubkey(&c, &k, &lab.path, "")
    ));
    let mut e = Engine::new(vec![c], Settings::default(), Box::new(SeededRandom::new(7)));
    e.mpsa_role = MpsaRole::Gateway;
    let g: GroupToml = toml::from_str("name = \"mesh\"\nmembers = [\"a.lab\", \"b.lab\"]\n").unwrap();
    e.add_group(Instant::now(), g.build().unwrap());
    e
}

/// An endpoint claiming `id` with a certificate for `name`.
fn endpoint(dir: &Path, lab: &Ca, id: &str, name: &str, addr: &str, lan: &str, seed: u64) -> Engine {
    let (c, k) = issue(dir, lab, &format!("ep-{id}-{name}"), name, p256(), |_| {});
    let c = conn(&format!(
        "name = \"hub\"\nrole = \"initiator\"\nlocal = \"{addr}\"\nremote = \"{HUB}\"\nlocal_id = \"{id}\"\n\
         remote_id = \"hub.lab\"\nlocal_ts = [\"{lan}\"]\nremote_ts = [\"10.0.0.0/24\"]\n{}",
        pubkey(&c, &k, &lab.path, "")
    ));
    let mut e = Engine::new(vec![c], Settings::default(), Box::new(SeededRandom::new(seed)));
    e.mpsa_role = MpsaRole::Endpoint;
    e
}

fn node(name: &'static str, addr: &'static str, e: Engine) -> Node {
    Node { name, addr, e, dp: vec![], events: vec![] }
}

fn group_sas(n: &Node) -> usize {
    n.dp.iter().filter(|c| matches!(c, Command::InstallGroupSa { .. })).count()
}

#[test]
fn mpsa_04_5_1_group_membership_rests_on_the_members_certificates() {
    let d = tempfile::tempdir().unwrap();
    let lab = ca(d.path(), "lab");
    let eps = vec![
        node("a", "192.0.2.11", endpoint(d.path(), &lab, "a.lab", "a.lab", "192.0.2.11", "10.1.1.0/24", 1)),
        node("b", "192.0.2.12", endpoint(d.path(), &lab, "b.lab", "b.lab", "192.0.2.12", "10.1.2.0/24", 2)),
        node("c", "192.0.2.13", endpoint(d.path(), &lab, "c.lab", "c.lab", "192.0.2.13", "10.1.3.0/24", 3)),
        node("mallory", "192.0.2.66", endpoint(d.path(), &lab, "a.lab", "m.lab", "192.0.2.66", "10.1.6.0/24", 4)),
    ];
    let mut l = Lab { hub: node("hub", HUB, hub(d.path(), &lab)), eps, now: Instant::now(), wire: VecDeque::new() };
    let (now, t) = (l.now, unix());
    for n in l.nodes() {
        n.e.set_unix_time(now, t);
    }
    for n in &mut l.eps {
        n.e.initiate(now, "hub").unwrap();
    }
    l.run();
    let up = |n: &Node| n.e.ike_sas().filter(|s| s.peer_id().is_some()).count();
    // a and b: members, proven by their certificates; one group SA each.
    for n in &l.eps[..2] {
        assert_eq!((up(n), group_sas(n)), (1, 1), "{}: {:?}", n.name, n.events);
    }
    // c: a good certificate, but not in the group.
    assert_eq!((up(&l.eps[2]), group_sas(&l.eps[2])), (1, 0), "c: {:?}", l.eps[2].events);
    // mallory: its certificate does not name a.lab, so no IKE SA at all.
    assert_eq!((up(&l.eps[3]), group_sas(&l.eps[3])), (0, 0), "mallory");
    assert_eq!(l.hub.e.stats.auth_failed, 1);
    let g = view::groups(&l.hub.e, l.now);
    assert_eq!((g[0].members_up, g[0].delivered), (2, 2));
    // The hub shows whose certificate each member's IKE SA rests on.
    let certs: Vec<String> =
        l.hub.e.ike_sas().filter_map(|s| s.established().and_then(|x| x.peer_cert.clone())).collect();
    for want in ["CN=a.lab", "CN=b.lab", "CN=c.lab"] {
        assert!(certs.iter().any(|c| c == want), "{want} in {certs:?}");
    }
}
