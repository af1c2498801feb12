//! Child SAs beyond the first (RFC 7296 1.3.1, 1.3, 2.9), in memory:
//! several per connection, opened by the initiator with CREATE_CHILD_SA;
//! a rekey refused with INVALID_KE_PAYLOAD tried again with the group the
//! peer named; and two IKE SAs whose child SAs have the same selectors,
//! each keeping the dataplane's policy right as the other comes and goes.

mod common;

use std::time::{Duration, Instant};

use common::{conn, run, Node, V4};
use controlplane::codepoints::NotifyType;
use controlplane::daemon::view;
use controlplane::ike::engine::Error;
use controlplane::ike::Event;
use cpdp::msg::Command;

const VPN1_A: &str = "[[child]]\nname = \"vpn1\"\nlocal_ts = [\"10.88.1.0/24\"]\nremote_ts = [\"10.88.2.0/24\"]\n";
const VPN1_B: &str = "[[child]]\nname = \"vpn1\"\nlocal_ts = [\"10.88.2.0/24\"]\nremote_ts = [\"10.88.1.0/24\"]\n";

fn pair(extra_a: &str, extra_b: &str) -> (Node, Node, Instant) {
    let ids = ("left.lab", "right.lab");
    let ca = conn("lab", "initiator", V4.0, &V4.1.to_string(), ids, ("10.77.1.0/24", "10.77.2.0/24"), extra_a);
    let cb =
        conn("lab", "responder", V4.1, "%any", ("right.lab", "left.lab"), ("10.77.2.0/24", "10.77.1.0/24"), extra_b);
    (Node::seeded(vec![ca], 1), Node::seeded(vec![cb], 2), Instant::now())
}

/// RFC 7296 1.3.1: after IKE_AUTH (the first child SA) the initiator opens
/// the connection's other child SA with CREATE_CHILD_SA { SA, Ni, TSi,
/// TSr }; the responder narrows it to its own child config of that name's
/// selectors. Both show it under its name.
#[test]
fn rfc7296_1_3_1_the_initiator_opens_the_other_child_sas_of_a_connection() {
    let (mut a, mut b, now) = pair(VPN1_A, VPN1_B);
    a.e.initiate(now, "lab").unwrap();
    run(&mut a, &mut b, now);
    assert_eq!((a.children(), b.children()), (2, 2));
    let names = |n: &Node| {
        let mut v: Vec<(String, Vec<String>)> =
            view::ike_sas(&n.e, now)[0].children.iter().map(|c| (c.name.clone(), c.ts_remote.clone())).collect();
        v.sort();
        v
    };
    assert_eq!(
        names(&a),
        [("lab".to_string(), vec!["10.77.2.0/24".to_string()]), ("vpn1".to_string(), vec!["10.88.2.0/24".to_string()])]
    );
    assert_eq!(names(&b)[1], ("vpn1".to_string(), vec!["10.88.1.0/24".to_string()]));
    // Each child SA has its own policy at both ends.
    assert!(a.policy("10.77.2.0/24").is_some() && a.policy("10.88.2.0/24").is_some());
    assert_ne!(a.policy("10.77.2.0/24"), a.policy("10.88.2.0/24"));
    assert!(b.policy("10.88.1.0/24").is_some());
    assert!(a.events.iter().any(|e| matches!(e, Event::ChildUp { child, .. } if child == "vpn1")));
}

/// `auto = false`: the child SA waits for `gwctl initiate NAME --child
/// CHILD`; asking again while it is up, or for a child nobody configured,
/// is an error that names it.
#[test]
fn a_child_sa_not_opened_automatically_comes_up_on_request() {
    let (mut a, mut b, now) = pair(&format!("{VPN1_A}auto = false\n"), VPN1_B);
    a.e.initiate(now, "lab").unwrap();
    run(&mut a, &mut b, now);
    assert_eq!(a.children(), 1);
    assert_eq!(a.e.initiate_child(now, "lab", "vpn1"), Ok(1));
    run(&mut a, &mut b, now);
    assert_eq!((a.children(), b.children()), (2, 2));
    assert_eq!(a.e.initiate_child(now, "lab", "vpn1"), Err(Error::ChildUp("lab".into(), "vpn1".into())));
    assert_eq!(
        a.e.initiate_child(now, "lab", "vpn9"),
        Err(Error::NoChild { conn: "lab".into(), child: "vpn9".into() })
    );
    assert_eq!(a.e.initiate_child(now, "nope", "vpn1"), Err(Error::NoConnection("nope".into())));
}

/// RFC 7296 2.9: a child SA the responder has no policy for gets
/// TS_UNACCEPTABLE; the IKE SA and the first child stay.
#[test]
fn rfc7296_2_9_a_child_sa_outside_the_responders_policy_is_refused_and_the_rest_stays() {
    let (mut a, mut b, now) = pair(VPN1_A, "");
    a.e.initiate(now, "lab").unwrap();
    run(&mut a, &mut b, now);
    assert_eq!((a.established(), a.children(), b.children()), (1, 1, 1));
    assert!(a
        .events
        .iter()
        .any(|e| matches!(e, Event::Failed { why: Error::Refused(NotifyType::TsUnacceptable), .. })));
}

/// RFC 7296 1.3: "If the responder selects a proposal using a different
/// Diffie-Hellman group ... the responder MUST reject the request and
/// indicate its preferred group in the INVALID_KE_PAYLOAD"; the
/// initiator tries the rekey again with that group, and it goes through.
#[test]
fn rfc7296_1_3_a_child_rekey_refused_invalid_ke_is_retried_with_the_group_asked_for() {
    let (mut a, mut b, now) = pair(
        "esp_proposals = [\"aes128gcm16-x25519\", \"aes128gcm16-ecp256\"]",
        "esp_proposals = [\"aes128gcm16-ecp256\"]",
    );
    a.e.initiate(now, "lab").unwrap();
    run(&mut a, &mut b, now);
    let first = view::ike_sas(&a.e, now)[0].children[0].spi_in.clone();
    a.e.rekey(now, "lab", false).unwrap();
    run(&mut a, &mut b, now);
    let after = &view::ike_sas(&a.e, now)[0].children;
    assert_eq!(after.len(), 1, "{after:?}");
    assert_ne!(after[0].spi_in, first, "rekeyed");
    assert_eq!(after[0].pfs, Some(19), "with the group B asked for (ECP-256)");
    assert!(!a.events.iter().any(|e| matches!(e, Event::Failed { .. })), "{:?}", a.events);
}

/// Two IKE SAs (two connections, other identities) whose child SAs have
/// the same selectors: the newer child SA's policy wins; when its IKE SA
/// goes, the older one's takes over (not a deleted policy, not cleartext),
/// and only when both are gone is the policy removed.
#[test]
fn two_ike_sas_with_the_same_selectors_keep_the_policy_on_the_one_still_up() {
    let ts = ("10.77.1.0/24", "10.77.2.0/24");
    let c1 = conn("one", "initiator", V4.0, &V4.1.to_string(), ("one.lab", "right.lab"), ts, "");
    let c2 = conn("two", "initiator", V4.0, &V4.1.to_string(), ("two.lab", "right.lab"), ts, "");
    let cb = conn("any", "responder", V4.1, "%any", ("right.lab", "%any"), ("10.77.2.0/24", "10.77.1.0/24"), "");
    let (mut a, mut b) = (Node::seeded(vec![c1, c2], 1), Node::seeded(vec![cb], 2));
    let now = Instant::now();
    // A policy names the child's outbound SA by its handle: the child's
    // inbound SPI.
    let out_of = |n: &Node, conn: &str| {
        view::ike_sas(&n.e, now)
            .iter()
            .find(|s| s.conn == conn)
            .map(|s| u32::from_str_radix(&s.children[0].spi_in, 16).unwrap())
    };
    a.e.initiate(now, "one").unwrap();
    run(&mut a, &mut b, now);
    a.e.initiate(now, "two").unwrap();
    run(&mut a, &mut b, now);
    assert_eq!((a.established(), b.established()), (2, 2));
    assert_eq!(a.policy("10.77.2.0/24"), out_of(&a, "two"), "the newer one");
    let dst = "10.77.1.0/24";
    let newest_b = b.policy(dst);
    a.e.terminate(now, "two").unwrap();
    run(&mut a, &mut b, now + Duration::from_secs(1));
    assert_eq!(a.policy("10.77.2.0/24"), out_of(&a, "one"), "back to the IKE SA still up");
    assert_ne!(b.policy(dst), newest_b, "the responder too");
    assert!(b.policy(dst).is_some());
    a.e.terminate(now, "one").unwrap();
    run(&mut a, &mut b, now + Duration::from_secs(2));
    assert_eq!(a.policy("10.77.2.0/24"), None);
    assert_eq!(b.policy(dst), None);
    assert!(a.dp.iter().any(|c| matches!(c, Command::DeletePolicy { .. })));
}

/// Two peers (responders seeded alike, so they choose the same SPIs) give
/// A two outbound SAs with one wire SPI: A names each by its own handle
/// (the child's inbound SPI), so installing the second does not replace
/// the first, and each prefix's policy points at its own peer's SA.
#[test]
fn two_peers_that_choose_the_same_spi_do_not_overwrite_each_others_sa() {
    let b1_addr: std::net::IpAddr = "10.77.0.2".parse().unwrap();
    let b2_addr: std::net::IpAddr = "10.77.0.3".parse().unwrap();
    let c1 =
        conn("one", "initiator", V4.0, &b1_addr.to_string(), ("a.lab", "b.lab"), ("10.77.1.0/24", "10.88.1.0/24"), "");
    let c2 =
        conn("two", "initiator", V4.0, &b2_addr.to_string(), ("a.lab", "b.lab"), ("10.77.1.0/24", "10.88.2.0/24"), "");
    let mut a = Node::seeded(vec![c1, c2], 1);
    let peer = |addr: std::net::IpAddr, ts: &str| {
        Node::seeded(vec![conn("lab", "responder", addr, "%any", ("b.lab", "a.lab"), (ts, "10.77.1.0/24"), "")], 9)
    };
    let (mut b1, mut b2) = (peer(b1_addr, "10.88.1.0/24"), peer(b2_addr, "10.88.2.0/24"));
    let now = Instant::now();
    a.e.initiate(now, "one").unwrap();
    run(&mut a, &mut b1, now);
    a.e.initiate(now, "two").unwrap();
    run(&mut a, &mut b2, now);
    let kids: Vec<(u32, u32)> = a.e.ike_sas().flat_map(|s| s.children()).map(|c| (c.spi_in, c.spi_out)).collect();
    assert_eq!(kids.len(), 2);
    assert_eq!(kids[0].1, kids[1].1, "both peers chose the same SPI");
    let outs: Vec<(u32, u32)> =
        a.dp.iter()
            .filter_map(|c| match c {
                Command::InstallSa(s) if s.direction == cpdp::msg::Direction::Out => Some((s.spi, s.handle)),
                _ => None,
            })
            .collect();
    assert_eq!(outs.len(), 2);
    assert_ne!(outs[0].1, outs[1].1, "two handles for one SPI");
    let (p1, p2) = (a.policy("10.88.1.0/24"), a.policy("10.88.2.0/24"));
    assert!(p1.is_some() && p2.is_some() && p1 != p2, "{p1:?} {p2:?}");
}
