//! `gwctl reload` in memory (engine/reload.rs): a changed configuration
//! applied to running engines, IPv4 and IPv6. Kept connections keep their
//! SAs (same SPIs, nothing sent for them), a removed one is deleted at
//! the peer too, a changed one comes back under its new definition, an
//! added initiator comes up, and a retired connection takes nothing new.

mod common;

use common::*;
use controlplane::ike::config::ConnectionToml;
use controlplane::ike::Connection;
use std::net::IpAddr;

/// A: initiators "lab" (10.1/16 === 10.2/16) and "two" (10.11/16 ===
/// 10.12/16, identities a2.lab / b2.lab); B: the matching responders.
fn a_conns(fam: (IpAddr, IpAddr)) -> Vec<ConnectionToml> {
    vec![
        conn_a(fam, ""),
        conn("two", "initiator", fam.0, &fam.1.to_string(), ("a2.lab", "b2.lab"), ("10.11.0.0/16", "10.12.0.0/16"), ""),
    ]
}
fn b_conns(fam: (IpAddr, IpAddr)) -> Vec<ConnectionToml> {
    vec![
        conn_b(fam, ""),
        conn("two", "responder", fam.1, "%any", ("b2.lab", "a2.lab"), ("10.12.0.0/16", "10.11.0.0/16"), ""),
    ]
}

fn built(v: Vec<ConnectionToml>) -> Vec<Connection> {
    v.into_iter().map(|c| c.build().unwrap()).collect()
}

/// (connection name, our SPI) of every established IKE SA.
fn sas(n: &Node) -> Vec<(String, u64)> {
    let mut v: Vec<(String, u64)> =
        n.e.ike_sas()
            .filter(|s| s.state() == controlplane::ike::engine::IkeState::Established)
            .map(|s| (n.e.connections()[s.conn()].name.clone(), s.our_spi()))
            .collect();
    v.sort();
    v
}

fn up(fam: (IpAddr, IpAddr)) -> (Node, Node, std::time::Instant) {
    let mut a = Node::seeded(a_conns(fam), 1);
    let mut b = Node::seeded(b_conns(fam), 2);
    let now = std::time::Instant::now();
    a.e.start_initiators(now);
    run(&mut a, &mut b, now);
    assert_eq!((a.established(), b.established(), a.children()), (2, 2, 2));
    (a, b, now)
}

#[test]
fn an_unchanged_config_touches_nothing() {
    for fam in [V4, V6] {
        let (mut a, mut b, now) = up(fam);
        let before = (sas(&a), sas(&b));
        let r = a.e.reload(now, built(a_conns(fam)), vec![]);
        assert_eq!(r.kept, ["lab", "two"]);
        assert!(r.added.is_empty() && r.removed.is_empty() && r.changed.is_empty());
        assert!(a.take().is_empty(), "nothing to send for kept connections");
        run(&mut a, &mut b, now);
        assert_eq!((sas(&a), sas(&b)), before);
    }
}

#[test]
fn a_removed_connection_goes_down_on_both_sides_and_the_other_stays() {
    for fam in [V4, V6] {
        let (mut a, mut b, now) = up(fam);
        let lab = sas(&a).into_iter().find(|(n, _)| n == "lab").unwrap();
        let r = a.e.reload(now, built(a_conns(fam).into_iter().skip(1).collect()), vec![]);
        assert_eq!(
            (r.removed.as_slice(), r.kept.as_slice(), r.ike_sas_deleted),
            (&["lab".to_string()][..], &["two".to_string()][..], 1)
        );
        run(&mut a, &mut b, now);
        // "lab" is gone at both ends (the peer got the Delete); "two" is the
        // same IKE SA as before.
        assert_eq!(sas(&a).iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(), ["two"]);
        assert_eq!(sas(&b).iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(), ["two"]);
        assert!(!sas(&a).contains(&lab));
        assert_eq!(a.policy("10.2.0.0/16"), None, "its child SA's policy is gone");
        assert!(a.policy("10.12.0.0/16").is_some());
        // A retired connection is no longer a name gwctl can use, and the
        // initiators started later leave it alone.
        assert!(a.e.initiate(now, "lab").is_err());
        a.e.start_initiators(now);
        run(&mut a, &mut b, now);
        assert_eq!(sas(&a).len(), 1);
    }
}

#[test]
fn an_added_initiator_comes_up_and_a_changed_one_comes_back_changed() {
    for fam in [V4, V6] {
        let (mut a, mut b, now) = up(fam);
        let two = sas(&a).into_iter().find(|(n, _)| n == "two").unwrap();
        // "lab" now protects 10.1.5.0/24 only; "three" is new at both ends.
        let three_a = conn(
            "three",
            "initiator",
            fam.0,
            &fam.1.to_string(),
            ("a3.lab", "b3.lab"),
            ("10.21.0.0/16", "10.22.0.0/16"),
            "",
        );
        let three_b =
            conn("three", "responder", fam.1, "%any", ("b3.lab", "a3.lab"), ("10.22.0.0/16", "10.21.0.0/16"), "");
        let rb = b.e.reload(now, built(vec![b_conns(fam)[0].clone(), b_conns(fam)[1].clone(), three_b]), vec![]);
        assert_eq!(rb.added, ["three"]);
        let lab =
            conn("lab", "initiator", fam.0, &fam.1.to_string(), ("a.lab", "b.lab"), ("10.1.5.0/24", "10.2.0.0/16"), "");
        let r = a.e.reload(now, built(vec![lab, a_conns(fam)[1].clone(), three_a]), vec![]);
        assert_eq!((r.changed.as_slice(), r.added.as_slice()), (&["lab".to_string()][..], &["three".to_string()][..]));
        run(&mut a, &mut b, now);
        let names: Vec<String> = sas(&a).into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["lab", "three", "two"]);
        assert!(sas(&a).contains(&two), "the unchanged connection kept its IKE SA");
        assert_eq!(b.established(), 3, "the responder has the three IKE SAs, the old lab one deleted");
        // The new "lab" child SA carries the narrowed selector.
        let lab_sa =
            a.e.ike_sas().find(|s| a.e.connections()[s.conn()].name == "lab" && !a.e.connections()[s.conn()].retired);
        let ts = &lab_sa.unwrap().children()[0].ts_local;
        assert_eq!(controlplane::ike::ts::ts_text(&ts[0]), "10.1.5.0/24");
        assert!(a.policy("10.22.0.0/16").is_some(), "the added connection's child SA is installed");
    }
}

#[test]
fn a_responder_retired_at_reload_refuses_new_ike_sas() {
    for fam in [V4, V6] {
        let (mut a, mut b, now) = up(fam);
        // B drops "two": A's IKE SA there is deleted; A's next try finds
        // no connection at B (its IKE_AUTH fails), so nothing comes up.
        let r = b.e.reload(now, built(b_conns(fam).into_iter().take(1).collect()), vec![]);
        assert_eq!(r.removed, ["two"]);
        run(&mut a, &mut b, now);
        assert_eq!(sas(&b).iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(), ["lab"]);
        // A comes back for "two": whatever B answers, no child SA for
        // 10.11/16 comes up under the retired connection.
        a.e.start_initiators(now);
        run(&mut a, &mut b, now);
        assert_eq!(b.children(), 1);
        assert_eq!(b.policy("10.11.0.0/16"), None, "a retired responder connection takes no new child SA");
    }
}

fn group(members: &str) -> controlplane::mpsa::GroupConfig {
    let g: controlplane::mpsa::GroupToml =
        toml::from_str(&format!("name = \"mesh\"\nmembers = [{members}]\nlifetime_secs = 3600")).unwrap();
    g.build().unwrap()
}

/// -04 5.3: a member taken out must not read what follows, so a group
/// whose members change is rekeyed at once; a group cannot be removed by
/// a reload (yet), and saying so changes nothing.
#[test]
fn a_group_with_other_members_is_rekeyed_and_a_removed_group_is_refused() {
    let mut hub = Node::seeded(b_conns(V4), 3);
    hub.e.mpsa_role = controlplane::mpsa::MpsaRole::Gateway;
    let now = std::time::Instant::now();
    hub.e.add_group(now, group("\"a.lab\", \"c.lab\""));
    let spi = hub.e.gateway_groups()[0].current.spi;
    let conns = built(b_conns(V4));
    assert!(hub.e.check_reload(&[group("\"a.lab\", \"c.lab\"")]).is_ok());
    let same = hub.e.reload(now, conns.clone(), vec![group("\"a.lab\", \"c.lab\"")]);
    assert!(same.groups_changed.is_empty());
    hub.e.handle_timeout(now);
    assert_eq!(hub.e.gateway_groups()[0].current.spi, spi, "an unchanged group keeps its SA");
    let r = hub.e.reload(now, conns.clone(), vec![group("\"a.lab\"")]);
    assert_eq!((r.groups_changed.as_slice(), r.kept.len()), (&["mesh".to_string()][..], 2));
    hub.e.handle_timeout(now);
    let g = &hub.e.gateway_groups()[0];
    assert_ne!(g.current.spi, spi, "rekeyed at once");
    let id = |s: &str| controlplane::wire::payload::Identification::from_text(s);
    assert!(g.is_member(Some(&id("a.lab"))) && !g.is_member(Some(&id("c.lab"))));
    let e = hub.e.check_reload(&[]).unwrap_err();
    assert!(e.contains("group \"mesh\"") && e.contains("restart"), "{e}");
    assert_eq!(hub.e.gateway_groups().len(), 1);
}
