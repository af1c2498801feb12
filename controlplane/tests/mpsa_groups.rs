//! Several MPSA groups (issue 15): a hub with two groups, and an endpoint
//! in both. MPSA_PUT names no group (mpsa-04 3.2.2), so an endpoint tells
//! its groups apart by its connection to the hub: one connection, with an
//! identity of its own, per group; each group then lives and rekeys on
//! its own.

use std::time::Instant;

use controlplane::crypto::SeededRandom;
use controlplane::ike::config::Settings;
use controlplane::ike::Engine;
use controlplane::mpsa::{GroupToml, MpsaRole};
use cpdp::msg::Command;

mod mpsa_common;
use mpsa_common::*;

/// Group SAs endpoint `n` was told to install: (group, SPI), in order.
fn installs(n: &Node) -> Vec<(String, u32)> {
    n.dp.iter()
        .filter_map(|c| match c {
            Command::InstallGroupSa { group, sa, .. } => Some((group.clone(), sa.spi)),
            _ => None,
        })
        .collect()
}

fn hub_spi(lab: &Lab, group: &str) -> u32 {
    lab.hub.e.gateway_groups().iter().find(|g| g.cfg.name == group).unwrap().current.spi
}

#[test]
fn an_endpoint_in_two_groups_of_one_hub_holds_both_apart() {
    let mut lab = Lab::new("");
    // The hub: "mesh" for a.lab and b.lab, "voice" for a-voice.lab and c.lab.
    lab.hub.e = hub_engine("", "\"a.lab\", \"b.lab\"");
    let voice: GroupToml = toml::from_str("name = \"voice\"\nmembers = [\"a-voice.lab\", \"c.lab\"]").unwrap();
    lab.hub.e.add_group(lab.now, voice.build().unwrap());
    // a: one connection per group, the same addresses.
    let conn_of = |name: &str, id: &str, lan: &str| {
        conn(&format!(
            "name = \"{name}\"\nrole = \"initiator\"\nlocal = \"192.0.2.11\"\nremote = \"{HUB}\"\nlocal_id = \"{id}\"\n\
             remote_id = \"hub.lab\"\npsk = \"mpsa-lab-secret\"\nlocal_ts = [\"{lan}\"]\nremote_ts = [\"10.0.0.0/24\"]\n"
        ))
    };
    let mut a = Engine::new(
        vec![conn_of("hub", "a.lab", "10.1.1.0/24"), conn_of("voice", "a-voice.lab", "10.1.11.0/24")],
        Settings::default(),
        Box::new(SeededRandom::new(11)),
    );
    a.mpsa_role = MpsaRole::Endpoint;
    lab.eps[0].e = a;
    lab.connect_all();
    let now: Instant = lab.now;
    lab.eps[0].e.initiate(now, "voice").unwrap();
    lab.run();
    let (mesh, voice) = (hub_spi(&lab, "mesh"), hub_spi(&lab, "voice"));
    assert_ne!(mesh, voice);
    let mut got = installs(&lab.eps[0]);
    got.sort();
    assert_eq!(got, [("hub".to_string(), mesh), ("voice".to_string(), voice)], "each group under its connection");
    assert_eq!(installs(&lab.eps[1]), [("hub".to_string(), mesh)], "b: mesh only");
    assert_eq!(installs(&lab.eps[2]), [("hub".to_string(), voice)], "c: voice only");
    // c leaves: "voice" rekeys (mpsa-04 5.3); "mesh" stays as it was.
    lab.eps[2].e.terminate(now, "hub").unwrap();
    lab.run();
    lab.advance(std::time::Duration::from_millis(10));
    let voice2 = hub_spi(&lab, "voice");
    assert_ne!(voice2, voice, "voice rekeyed");
    assert_eq!(hub_spi(&lab, "mesh"), mesh, "mesh untouched");
    let last = installs(&lab.eps[0]).pop().unwrap();
    assert_eq!(last, ("voice".to_string(), voice2), "a rolls its voice group over, and only that");
    assert_eq!(installs(&lab.eps[1]).len(), 1, "b got nothing new");
}
