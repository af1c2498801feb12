//! MOBIKE (RFC 4555) between two engines in memory, IPv4 and IPv6: who
//! may move, how the responder follows (every child SA's outer addresses,
//! in the dataplane, with keys and sequence numbers kept), what it
//! refuses, and, without MOBIKE, a NAT's new mapping (RFC 7296 2.23).

mod common;

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use common::{conn, run, Node, V4, V6};
use controlplane::codepoints::NotifyType;
use controlplane::crypto::keys::natd_hash;
use controlplane::ike::engine::{Error, MoveReason};
use controlplane::ike::Event;
use controlplane::wire::{Message, Notify, Payload};
use cpdp::msg::{Command, Direction};

/// A (initiator) and B (responder) with `extra_a` / `extra_b` config
/// lines, up with one child SA; MOBIKE as RFC 4555 has it (MOBIKE-X, our
/// default, is tests/mobikex.rs).
fn up(fam: (IpAddr, IpAddr), extra_a: &str, extra_b: &str) -> (Node, Node, Instant) {
    common::pair(fam, &format!("mobikex = false\n{extra_a}"), &format!("mobikex = false\n{extra_b}"))
}

/// Another address of A's family.
fn other(a: IpAddr) -> IpAddr {
    match a {
        IpAddr::V4(_) => "10.77.0.11".parse().unwrap(),
        IpAddr::V6(_) => "fd77::11".parse().unwrap(),
    }
}

fn updates(n: &Node) -> Vec<(u32, Direction, IpAddr, IpAddr)> {
    n.dp.iter()
        .filter_map(|c| match c {
            Command::UpdateSaAddresses { spi, direction, local, remote, .. } => {
                Some((*spi, *direction, *local, *remote))
            }
            _ => None,
        })
        .collect()
}

fn moved(n: &Node) -> Vec<MoveReason> {
    n.events.iter().filter_map(|e| if let Event::Moved { why, .. } = e { Some(*why) } else { None }).collect()
}

/// RFC 4555 3.3: MOBIKE_SUPPORTED in IKE_AUTH both ways turns it on; a
/// side with `mobike = false` leaves it off for both, and a move is then
/// refused by the API (no UPDATE_SA_ADDRESSES is sent).
#[test]
fn rfc4555_3_3_mobike_is_on_only_when_both_sides_support_it() {
    let (a, b, _) = up(V4, "", "");
    assert!(a.e.ike_sas().next().unwrap().established().unwrap().mobike.is_some());
    assert!(b.e.ike_sas().next().unwrap().established().unwrap().mobike.is_some());
    for (ea, eb) in [("mobike = false", ""), ("", "mobike = false")] {
        let (mut a, b, now) = up(V4, ea, eb);
        assert!(a.e.ike_sas().next().unwrap().established().unwrap().mobike.is_none(), "{ea}{eb}");
        assert!(b.e.ike_sas().next().unwrap().established().unwrap().mobike.is_none());
        assert_eq!(a.e.move_to(now, "lab", other(V4.0)), Err(Error::CannotMove("lab".into())));
        assert!(a.take().is_empty());
    }
}

/// RFC 4555 3.4: the addresses announced in IKE_AUTH
/// (ADDITIONAL_IP4/6_ADDRESS) are the peer's other addresses; a later
/// INFORMATIONAL with NO_ADDITIONAL_ADDRESSES empties the list.
#[test]
fn rfc4555_3_4_additional_addresses_are_kept_and_replaced() {
    let (mut a, mut b, now) = up(V4, "additional_addresses = [\"10.77.0.11\", \"fd77::11\"]", "");
    let peer = |n: &Node| n.e.ike_sas().next().unwrap().established().unwrap().mobike.clone().unwrap().peer_addresses;
    let want: Vec<IpAddr> = vec!["10.77.0.11".parse().unwrap(), "fd77::11".parse().unwrap()];
    assert_eq!(peer(&b), want);
    assert!(peer(&a).is_empty(), "B announced none");
    a.e.send_informational(now, "lab", vec![Payload::Notify(Notify::new(NotifyType::NoAdditionalAddresses, vec![]))])
        .unwrap();
    run(&mut a, &mut b, now);
    assert!(peer(&b).is_empty());
}

/// RFC 4555 3.5: the initiator moves to another address of its own: it
/// sends UPDATE_SA_ADDRESSES (with NAT-D and COOKIE2) from there; the
/// responder takes the request's addresses for the IKE SA and moves every
/// child SA in its dataplane (both directions, the same SA: same handle);
/// the initiator does the same when the answer echoes its COOKIE2. Later
/// messages use the new path.
#[test]
fn rfc4555_3_5_the_initiator_moves_and_the_responder_follows_with_every_child_sa() {
    for fam in [V4, V6] {
        let (mut a, mut b, now) = up(fam, "", "");
        let new = other(fam.0);
        let child_b = b.e.ike_sas().next().unwrap().children()[0].spi_in;
        let child_a = a.e.ike_sas().next().unwrap().children()[0].spi_in;
        assert_eq!(a.e.move_to(now, "lab", new), Ok(1));
        let req = a.take();
        assert_eq!(req.len(), 1);
        assert_eq!(req[0].local.ip(), new, "sent from the new address");
        for d in req {
            b.e.handle_datagram(now, d.remote, d.local, &d.data);
        }
        let answer = b.take();
        assert_eq!(b.e.ike_sas().next().unwrap().remote().ip(), new);
        assert_eq!(
            updates(&b),
            [(child_b, Direction::In, fam.1, new), (child_b, Direction::Out, fam.1, new)],
            "B's dataplane follows"
        );
        for d in answer {
            a.e.handle_datagram(now, d.remote, d.local, &d.data);
        }
        run(&mut a, &mut b, now);
        assert_eq!(updates(&a), [(child_a, Direction::In, new, fam.1), (child_a, Direction::Out, new, fam.1)]);
        assert_eq!((moved(&a), moved(&b)), (vec![MoveReason::OurUpdate], vec![MoveReason::PeerUpdate]));
        // A child rekey now runs over the new path and installs there.
        a.e.rekey(now, "lab", false).unwrap();
        let r = a.take();
        assert_eq!(r[0].local.ip(), new);
        for d in r {
            b.e.handle_datagram(now, d.remote, d.local, &d.data);
        }
        run(&mut a, &mut b, now);
        let fresh = b.dp.iter().rev().find_map(|c| match c {
            Command::InstallSa(s) if s.direction == Direction::Out => Some(s.remote),
            _ => None,
        });
        assert_eq!(fresh, Some(new), "the rekeyed child SA sends to the new address");
        assert_eq!(b.e.ike_sas().next().unwrap().established().unwrap().mobike.as_ref().unwrap().moves, 1);
    }
}

/// RFC 4555 3.5: only the original initiator updates the addresses; an
/// UPDATE_SA_ADDRESSES from the responder moves nothing (it is answered).
#[test]
fn rfc4555_3_5_the_responder_cannot_move_the_sas() {
    let (mut a, mut b, now) = up(V4, "", "");
    let n = Payload::Notify(Notify::new(NotifyType::UpdateSaAddresses, vec![]));
    b.e.send_informational(now, "lab", vec![n]).unwrap();
    run(&mut a, &mut b, now);
    assert!(updates(&a).is_empty() && updates(&b).is_empty());
    assert!(moved(&a).is_empty());
    assert_eq!(b.e.move_to(now, "lab", other(V4.1)), Err(Error::CannotMove("lab".into())), "the API says so too");
}

/// RFC 4555 3.5 after an IKE SA rekey by the responder: the rekey's
/// initiator has the I flag of the new IKE SA (RFC 7296 3.1), but the one
/// that moves it is still the party that set the IKE SA up (as strongSwan
/// keeps it); the responder still cannot.
#[test]
fn rfc4555_3_5_the_initiator_still_moves_the_sas_after_the_responder_rekeyed_the_ike_sa() {
    for fam in [V4, V6] {
        let (mut a, mut b, now) = up(fam, "", "");
        b.e.rekey(now, "lab", true).unwrap();
        run(&mut a, &mut b, now);
        assert!(!a.e.ike_sas().next().unwrap().initiator(), "{fam:?}: B initiated the new IKE SA");
        assert_eq!(b.e.move_to(now, "lab", other(fam.1)), Err(Error::CannotMove("lab".into())));
        let new = other(fam.0);
        assert_eq!(a.e.move_to(now, "lab", new), Ok(1));
        run(&mut a, &mut b, now);
        assert_eq!(b.e.ike_sas().next().unwrap().remote().ip(), new, "{fam:?}: B followed");
        assert_eq!((moved(&a), moved(&b)), (vec![MoveReason::OurUpdate], vec![MoveReason::PeerUpdate]));
    }
}

/// RFC 4555 3.5: a peer with a fixed address in the responder's config
/// may move only to an address it announced; elsewhere the responder
/// answers UNACCEPTABLE_ADDRESSES, and the initiator stays where it was.
#[test]
fn rfc4555_3_5_a_move_to_an_address_outside_the_policy_is_refused_and_undone() {
    let ca = conn("lab", "initiator", V4.0, &V4.1.to_string(), ("a.lab", "b.lab"), ("10.1.0.0/16", "10.2.0.0/16"), "");
    let cb = conn("lab", "responder", V4.1, &V4.0.to_string(), ("b.lab", "a.lab"), ("10.2.0.0/16", "10.1.0.0/16"), "");
    let (mut a, mut b) = (Node::seeded(vec![ca], 1), Node::seeded(vec![cb], 2));
    let now = Instant::now();
    a.e.initiate(now, "lab").unwrap();
    run(&mut a, &mut b, now);
    a.e.move_to(now, "lab", other(V4.0)).unwrap();
    run(&mut a, &mut b, now);
    let refused = Error::Refused(NotifyType::UnacceptableAddresses);
    assert!(a.events.iter().any(|e| matches!(e, Event::Failed { why, .. } if *why == refused)), "{:?}", a.events);
    assert_eq!(a.e.ike_sas().next().unwrap().local().ip(), V4.0, "back on the old path");
    assert_eq!(b.e.ike_sas().next().unwrap().remote().ip(), V4.0);
    assert!(updates(&a).is_empty() && updates(&b).is_empty());
}

/// RFC 4555 3.9: NO_NATS_ALLOWED names the addresses the message left
/// with; a NAT between (here: another source port) makes the responder
/// answer UNEXPECTED_NAT_DETECTED and move nothing.
#[test]
fn rfc4555_3_9_no_nats_allowed_through_a_nat_gets_unexpected_nat_detected() {
    let (mut a, mut b, now) = up(V4, "", "");
    let sa = a.e.ike_sas().next().unwrap();
    let (spis, local, remote) = ((sa.spi_i(), sa.spi_r()), sa.local(), sa.remote());
    let mut data = Vec::new();
    for x in [local.ip(), remote.ip()] {
        if let IpAddr::V4(v) = x {
            data.extend_from_slice(&v.octets());
        }
    }
    data.extend_from_slice(&local.port().to_be_bytes());
    data.extend_from_slice(&remote.port().to_be_bytes());
    let p = vec![
        Payload::Notify(Notify::new(NotifyType::UpdateSaAddresses, vec![])),
        Payload::Notify(Notify::new(NotifyType::NatDetectionSourceIp, natd_hash(spis.0, spis.1, local))),
        Payload::Notify(Notify::new(NotifyType::NatDetectionDestinationIp, natd_hash(spis.0, spis.1, remote))),
        Payload::Notify(Notify::new(NotifyType::NoNatsAllowed, data)),
    ];
    a.e.send_informational(now, "lab", p).unwrap();
    // A NAT rewrites the source port on the way.
    for d in a.take() {
        let natted = SocketAddr::new(d.local.ip(), 40500);
        b.e.handle_datagram(now, d.remote, natted, &d.data);
    }
    let answer = b.take();
    assert_eq!(answer[0].remote.port(), 40500, "answered where it came from (RFC 7296 2.11)");
    for d in answer {
        a.e.handle_datagram(now, local, d.local, &d.data);
    }
    a.take();
    let refused = Error::Refused(NotifyType::UnexpectedNatDetected);
    assert!(a.events.iter().any(|e| matches!(e, Event::Failed { why, .. } if *why == refused)), "{:?}", a.events);
    assert!(updates(&b).is_empty());
}

/// RFC 4555 3.9: a path check (NAT-D and COOKIE2 without
/// UPDATE_SA_ADDRESSES) from another address is answered there, with NAT-D
/// for that path and the COOKIE2 echoed, and moves nothing.
#[test]
fn rfc4555_3_9_a_path_check_is_answered_without_moving() {
    let (mut a, mut b, now) = up(V4, "", "");
    let sa = a.e.ike_sas().next().unwrap();
    let (spis, remote) = ((sa.spi_i(), sa.spi_r()), sa.remote());
    let from = SocketAddr::new(other(V4.0), 500);
    let p = vec![
        Payload::Notify(Notify::new(NotifyType::NatDetectionSourceIp, natd_hash(spis.0, spis.1, from))),
        Payload::Notify(Notify::new(NotifyType::NatDetectionDestinationIp, natd_hash(spis.0, spis.1, remote))),
        Payload::Notify(Notify::new(NotifyType::Cookie2, vec![7; 16])),
    ];
    a.e.send_informational(now, "lab", p).unwrap();
    for d in a.take() {
        b.e.handle_datagram(now, d.remote, from, &d.data);
    }
    let answer = b.take();
    assert_eq!(answer.len(), 1);
    assert_eq!(answer[0].remote, from, "answered on the path checked");
    assert!(updates(&b).is_empty() && moved(&b).is_empty());
    assert_eq!(b.e.ike_sas().next().unwrap().remote().ip(), V4.0, "the IKE SA did not move");
    assert!(Message::parse(&answer[0].data).is_ok());
}

/// RFC 7296 2.23 without MOBIKE: behind a NAT, the peer's address is that
/// of its last authenticated message, and the child SAs follow it: a NAT
/// that maps A to a new port moves B's child SA's ESP there too.
#[test]
fn rfc7296_2_23_without_mobike_a_new_nat_mapping_moves_the_child_sas() {
    let ca = conn(
        "lab",
        "initiator",
        V4.0,
        &V4.1.to_string(),
        ("a.lab", "b.lab"),
        ("10.1.0.0/16", "10.2.0.0/16"),
        "mobike = false",
    );
    let cb = conn("lab", "responder", V4.1, "%any", ("b.lab", "a.lab"), ("10.2.0.0/16", "10.1.0.0/16"), "");
    let (mut a, mut b) = (Node::seeded(vec![ca], 1), Node::seeded(vec![cb], 2));
    let now = Instant::now();
    a.e.initiate(now, "lab").unwrap();
    // A NAT in front of A: its source port becomes 40000 + port, then
    // (a new mapping) 41000 + port.
    let mut nat_base = 40000;
    for _ in 0..20 {
        let (to_b, to_a) = (a.take(), b.take());
        if to_b.is_empty() && to_a.is_empty() {
            break;
        }
        for d in to_b {
            b.e.handle_datagram(now, d.remote, SocketAddr::new(d.local.ip(), nat_base + d.local.port()), &d.data);
        }
        for d in to_a {
            a.e.handle_datagram(now, SocketAddr::new(d.remote.ip(), d.remote.port() - nat_base), d.local, &d.data);
        }
    }
    assert_eq!(b.children(), 1);
    assert!(b.e.ike_sas().next().unwrap().nat());
    let child = b.e.ike_sas().next().unwrap().children()[0].spi_in;
    nat_base = 41000;
    a.e.rekey(now, "lab", false).unwrap();
    for d in a.take() {
        b.e.handle_datagram(now, d.remote, SocketAddr::new(d.local.ip(), nat_base + d.local.port()), &d.data);
    }
    b.take();
    let natt = b.dp.iter().find_map(|c| match c {
        Command::UpdateSaAddresses { spi, direction: Direction::Out, natt, .. } if *spi == child => *natt,
        _ => None,
    });
    assert_eq!(natt, Some((4500, 41000 + 4500)), "ESP follows the new mapping");
    assert_eq!(moved(&b), [MoveReason::NatMapping]);
}

/// RFC 4555 3.4 and 3.5: the responder's address the initiator sends to
/// leaves the responder's address set (a new list, from another address
/// of the responder's): the initiator, who decides the path, moves to the
/// address the responder spoke from (UPDATE_SA_ADDRESSES), and the
/// responder follows. (strongSwan does this as a responder whose address
/// lost its route.)
#[test]
fn rfc4555_3_4_a_responder_address_gone_from_its_set_moves_the_initiator() {
    for fam in [V4, V6] {
        let (mut a, mut b, now) = up(fam, "", "");
        let (speaks, listed): (IpAddr, IpAddr) = if fam.0.is_ipv4() {
            ("10.77.0.22".parse().unwrap(), "10.77.0.33".parse().unwrap())
        } else {
            ("fd77::22".parse().unwrap(), "fd77::33".parse().unwrap())
        };
        let list = match listed {
            IpAddr::V4(x) => Notify::new(NotifyType::AdditionalIp4Address, x.octets().to_vec()),
            IpAddr::V6(x) => Notify::new(NotifyType::AdditionalIp6Address, x.octets().to_vec()),
        };
        b.e.send_informational(now, "lab", vec![Payload::Notify(list)]).unwrap();
        // B's request leaves from its other address.
        for d in b.take() {
            let from = SocketAddr::new(speaks, d.local.port());
            a.e.handle_datagram(now, d.remote, from, &d.data);
        }
        run(&mut a, &mut b, now);
        let sa = a.e.ike_sas().next().unwrap();
        assert_eq!(sa.remote().ip(), speaks, "{fam:?}");
        assert!(moved(&a).contains(&MoveReason::PeerAddressGone), "{:?}", a.events);
        assert_eq!(b.e.ike_sas().next().unwrap().local().ip(), speaks, "B follows the UPDATE");
        // A's child SA sends to the new address.
        assert!(updates(&a).iter().any(|u| u.1 == Direction::Out && u.3 == speaks));
    }
}
