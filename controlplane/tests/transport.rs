//! ESP transport mode between two engines in memory, IPv4 and IPv6:
//! USE_TRANSPORT_MODE in IKE_AUTH and CREATE_CHILD_SA (RFC 7296 1.3.1),
//! kept on rekey (1.3.3), declined by a tunnel-only responder, and the
//! transport-mode child SA that moves with its IKE SA (MOBIKE-X 7.3: its
//! selectors change in the same step, or DOES_NOT_FIT_SPD).

mod common;

use std::net::IpAddr;
use std::time::{Duration, Instant};

use common::{conn, run, tick, Node, V4, V6};
use controlplane::codepoints::NotifyType;
use controlplane::ike::engine::{AddressChange, Error};
use controlplane::ike::ts;
use controlplane::ike::Event;
use controlplane::mobikex::ActionKind;
use cpdp::msg::{Command, Direction};

fn any(fam: (IpAddr, IpAddr)) -> &'static str {
    if fam.0.is_ipv4() {
        "0.0.0.0/0"
    } else {
        "::/0"
    }
}

/// A (initiator) and B (responder) with their connection's own child SA
/// in the modes given; `ts_b` is B's (local, remote) policy.
fn pair(fam: (IpAddr, IpAddr), mode_a: &str, mode_b: &str, ts_b: (&str, &str), extra: &str) -> (Node, Node, Instant) {
    let ca = conn(
        "lab",
        "initiator",
        fam.0,
        &fam.1.to_string(),
        ("a.lab", "b.lab"),
        (any(fam), any(fam)),
        &format!("mode = \"{mode_a}\"\n{extra}"),
    );
    let cb =
        conn("lab", "responder", fam.1, "%any", ("b.lab", "a.lab"), ts_b, &format!("mode = \"{mode_b}\"\n{extra}"));
    let (mut a, mut b) = (Node::seeded(vec![ca], 1), Node::seeded(vec![cb], 2));
    let now = Instant::now();
    a.e.initiate(now, "lab").unwrap();
    run(&mut a, &mut b, now);
    (a, b, now)
}

fn host(a: IpAddr) -> String {
    format!("{a}/{}", if a.is_ipv4() { 32 } else { 128 })
}

/// The SA specs the dataplane got: (direction, transport, local, remote).
fn installed(n: &Node) -> Vec<(Direction, bool, IpAddr, IpAddr)> {
    n.dp.iter()
        .filter_map(|c| match c {
            Command::InstallSa(s) => Some((s.direction, s.transport, s.local, s.remote)),
            _ => None,
        })
        .collect()
}

fn failed(n: &Node) -> Vec<Error> {
    n.events.iter().filter_map(|e| if let Event::Failed { why, .. } = e { Some(why.clone()) } else { None }).collect()
}

fn second(fam: (IpAddr, IpAddr)) -> IpAddr {
    if fam.0.is_ipv4() {
        "10.78.0.1".parse().unwrap()
    } else {
        "fd78::1".parse().unwrap()
    }
}

/// RFC 7296 1.3.1: USE_TRANSPORT_MODE in the IKE_AUTH request, answered
/// with USE_TRANSPORT_MODE by a responder that accepts: both install the
/// child SA in transport mode, its selectors the two IKE addresses, the
/// policy the peer's address alone.
#[test]
fn rfc7296_1_3_1_use_transport_mode_in_ike_auth() {
    for fam in [V4, V6] {
        let (a, b, _) = pair(fam, "transport", "transport", (any(fam), any(fam)), "");
        assert_eq!((a.children(), b.children()), (1, 1), "{fam:?}");
        for (n, us, them) in [(&a, fam.0, fam.1), (&b, fam.1, fam.0)] {
            let c = &n.e.ike_sas().next().unwrap().children()[0];
            assert!(c.transport);
            assert_eq!((c.ts_local.clone(), c.ts_remote.clone()), (vec![ts::host(us)], vec![ts::host(them)]));
            let specs = installed(n);
            assert_eq!(specs.len(), 2);
            assert!(specs.iter().all(|&(_, t, l, r)| t && l == us && r == them), "{specs:?}");
            assert!(n.policy(&host(them)).is_some(), "a policy for the peer's address");
        }
        assert!(failed(&a).is_empty() && failed(&b).is_empty());
    }
}

/// RFC 7296 1.3.1: a responder that does not accept transport mode
/// answers without USE_TRANSPORT_MODE (tunnel mode); our initiator, whose
/// policy wants transport, says so and deletes the child SA again.
#[test]
fn rfc7296_1_3_1_a_tunnel_answer_to_transport_is_deleted() {
    for fam in [V4, V6] {
        let (a, b, _) = pair(fam, "transport", "tunnel", (any(fam), any(fam)), "");
        assert!(
            failed(&a).iter().any(|e| matches!(e, Error::BadAnswer(w) if w.contains("declined transport mode"))),
            "{:?}",
            a.events
        );
        assert_eq!((a.children(), b.children()), (0, 0), "the child SA is deleted on both sides");
        assert_eq!((a.established(), b.established()), (1, 1), "the IKE SA stays");
    }
}

/// Transport-mode configs answer only requests for transport mode: a
/// tunnel request to a transport-only responder gets TS_UNACCEPTABLE.
#[test]
fn a_tunnel_request_to_a_transport_only_responder_is_refused() {
    let (a, b, _) = pair(V4, "tunnel", "transport", (any(V4), any(V4)), "");
    assert_eq!(b.children(), 0);
    assert!(failed(&a).contains(&Error::Refused(NotifyType::TsUnacceptable)), "{:?}", a.events);
}

/// A responder's transport config must allow the addresses: an initiator
/// outside its remote_ts gets no transport child SA.
#[test]
fn a_transport_request_from_outside_remote_ts_is_refused() {
    let (a, b, _) = pair(V6, "transport", "transport", ("::/0", "fd99::/64"), "");
    assert_eq!(b.children(), 0);
    assert!(failed(&a).contains(&Error::Refused(NotifyType::TsUnacceptable)), "{:?}", a.events);
}

/// RFC 7296 1.3.1 in CREATE_CHILD_SA, and 1.3.3: the rekey of a
/// transport-mode child SA asks for transport mode again and stays in it.
#[test]
fn rfc7296_1_3_3_create_child_sa_and_rekey_keep_transport_mode() {
    for fam in [V4, V6] {
        let child = format!(
            "child_rekey_secs = 100\njitter_percent = 0\n[[child]]\nname = \"host\"\nmode = \"transport\"\nlocal_ts = [\"{0}\"]\nremote_ts = [\"{0}\"]\n",
            any(fam)
        );
        let ca = conn(
            "lab",
            "initiator",
            fam.0,
            &fam.1.to_string(),
            ("a.lab", "b.lab"),
            ("10.1.0.0/16", "10.2.0.0/16"),
            &child,
        );
        let cb = conn("lab", "responder", fam.1, "%any", ("b.lab", "a.lab"), ("10.2.0.0/16", "10.1.0.0/16"), &child);
        let (mut a, mut b) = (Node::seeded(vec![ca], 3), Node::seeded(vec![cb], 4));
        let now = Instant::now();
        a.e.initiate(now, "lab").unwrap();
        run(&mut a, &mut b, now);
        assert_eq!((a.children(), b.children()), (2, 2), "{fam:?}");
        let modes = |n: &Node| {
            let mut m: Vec<bool> = n.e.ike_sas().next().unwrap().children().iter().map(|c| c.transport).collect();
            m.sort();
            m
        };
        assert_eq!((modes(&a), modes(&b)), (vec![false, true], vec![false, true]));
        // Past the rekey time: both child SAs are rekeyed, the old ones go.
        let later = now + Duration::from_secs(101);
        tick(&mut a, &mut b, later);
        tick(&mut a, &mut b, later + Duration::from_secs(2));
        let sa = a.e.ike_sas().next().unwrap();
        assert!(sa.children().iter().all(|c| c.rekey_of.is_some() || c.created > now), "rekeyed");
        assert_eq!((modes(&a), modes(&b)), (vec![false, true], vec![false, true]));
        assert!(failed(&a).is_empty() && failed(&b).is_empty(), "{:?}", a.events);
    }
}

/// MOBIKE-X 7.3: when the IKE SA moves, a transport-mode child SA's
/// selectors are the new addresses, on both sides, in the same step: the
/// dataplane gets the new endpoints (and moves the SA's policy with them).
#[test]
fn mobikex_7_3_a_transport_child_sa_moves_with_its_selectors() {
    for fam in [V4, V6] {
        let (mut a, mut b, now) = pair(fam, "transport", "transport", (any(fam), any(fam)), "");
        let two = second(fam);
        b.dp.clear();
        a.e.move_to(now, "lab", two).unwrap();
        run(&mut a, &mut b, now);
        let cb = &b.e.ike_sas().next().unwrap().children()[0];
        assert_eq!(cb.ts_remote, vec![ts::host(two)], "{fam:?}");
        let ca = &a.e.ike_sas().next().unwrap().children()[0];
        assert_eq!(ca.ts_local, vec![ts::host(two)]);
        let moved = b.dp.iter().any(
            |c| matches!(c, Command::UpdateSaAddresses { direction: Direction::Out, remote, .. } if *remote == two),
        );
        assert!(moved, "{:?}", b.dp);
    }
}

/// MOBIKE-X 7.3: a move of a transport-mode child SA to an address its
/// policy does not allow is refused with DOES_NOT_FIT_SPD; nothing moves.
#[test]
fn mobikex_7_3_a_transport_move_outside_the_spd_does_not_fit() {
    let (mut a, mut b, now) = pair(V4, "transport", "transport", ("0.0.0.0/0", "10.77.0.0/24"), "");
    assert_eq!(b.children(), 1);
    a.e.move_to(now, "lab", second(V4)).unwrap();
    run(&mut a, &mut b, now);
    assert_eq!(b.e.ike_sas().next().unwrap().remote().ip(), V4.0, "B did not move");
    assert_eq!(b.e.ike_sas().next().unwrap().children()[0].ts_remote, vec![ts::host(V4.0)]);
    assert!(failed(&a).contains(&Error::Refused(NotifyType::DoesNotFitSpd)), "{:?}", a.events);
    assert!(b.e.stats.mobike_refused >= 1);
}

/// MOBIKE-X: a transport-mode SA's addresses are its selectors, so a
/// second address (ADD_SA_ADDRESS) does not fit its SPD entry.
#[test]
fn mobikex_add_to_a_transport_child_does_not_fit_the_spd() {
    let (mut a, mut b, now) = pair(V4, "transport", "transport", (any(V4), any(V4)), "");
    let change = AddressChange {
        kind: ActionKind::Add,
        addr: second(V4),
        old: None,
        children: vec!["lab".into()],
        check: false,
    };
    a.e.change_addresses(now, "lab", &change).unwrap();
    run(&mut a, &mut b, now);
    assert!(failed(&a).contains(&Error::Refused(NotifyType::DoesNotFitSpd)), "{:?}", a.events);
    assert!(b.e.ike_sas().next().unwrap().children()[0].paths.is_empty());
}
