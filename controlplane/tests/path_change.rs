//! Moves without the operator (RFC 4555 3.5, 3.10; MOBIKE-X 7.6), between
//! two engines in memory, IPv4 and IPv6: our address on the path goes
//! away (the daemon says which addresses are usable) and the IKE SA moves
//! to another of ours; a multihomed child SA's second address goes and it
//! is removed from that SA; the path stops answering and the request is
//! retransmitted on the peer's announced address, then announced there.

mod common;

use std::net::IpAddr;
use std::time::{Duration, Instant};

use common::{run, Node, V4, V6};
use controlplane::ike::engine::{AddressChange, MoveReason};
use controlplane::ike::Event;
use controlplane::mobikex::ActionKind;

fn other(a: IpAddr) -> IpAddr {
    match a {
        IpAddr::V4(_) => "10.77.0.11".parse().unwrap(),
        IpAddr::V6(_) => "fd77::11".parse().unwrap(),
    }
}

fn up(fam: (IpAddr, IpAddr), extra_a: &str, extra_b: &str) -> (Node, Node, Instant) {
    common::pair(fam, extra_a, extra_b)
}

fn moves(n: &Node) -> Vec<MoveReason> {
    n.events.iter().filter_map(|e| if let Event::Moved { why, .. } = e { Some(*why) } else { None }).collect()
}

/// RFC 4555 3.5: the initiator's address on the path goes; it moves to
/// another of its own (the one it announced first), MOBIKE and MOBIKE-X.
#[test]
fn rfc4555_3_5_a_lost_address_moves_the_ike_sa() {
    for fam in [V4, V6] {
        for x in ["mobikex = false", ""] {
            let two = other(fam.0);
            let (mut a, mut b, now) = up(fam, &format!("{x}\nadditional_addresses = [\"{two}\"]"), x);
            assert_eq!(a.e.local_addresses(now, &[fam.0, two]), 0, "nothing lost");
            assert_eq!(a.e.local_addresses(now, &[two]), 1);
            run(&mut a, &mut b, now);
            assert_eq!(b.e.ike_sas().next().unwrap().remote().ip(), two, "{x}");
            assert_eq!(moves(&a), [MoveReason::AddressLost]);
            assert_eq!(moves(&b), [MoveReason::PeerUpdate]);
            // The responder does not move by itself.
            assert_eq!(b.e.local_addresses(now, &[]), 0);
        }
    }
}

/// MOBIKE-X 7.6: the address of a multihomed child SA's second path goes:
/// it is removed from that SA at both ends (the dataplane already sends
/// on the first).
#[test]
fn mobikex_7_6_a_lost_second_address_is_removed() {
    let (mut a, mut b, now) = up(V4, "", "");
    let two = other(V4.0);
    a.e.change_addresses(now, "lab", &AddressChange::new(ActionKind::Add, two)).unwrap();
    run(&mut a, &mut b, now);
    let spi_b = b.e.ike_sas().next().unwrap().children()[0].spi_in;
    assert_eq!(b.e.ike_sas().next().unwrap().child(spi_b).unwrap().paths.len(), 2);
    a.e.local_addresses(now, &[V4.0]);
    run(&mut a, &mut b, now);
    assert_eq!(b.e.ike_sas().next().unwrap().child(spi_b).unwrap().paths, [(V4.1, V4.0)]);
    assert!(moves(&a).is_empty(), "the IKE SA stayed");
}

/// RFC 4555 3.10: the peer's address stops answering; after the
/// retransmissions there, the request goes to the address it announced,
/// which answers, and the initiator then moves there with
/// UPDATE_SA_ADDRESSES.
#[test]
fn rfc4555_3_10_a_dead_path_fails_over_to_an_announced_address() {
    for fam in [V4, V6] {
        let b2 = other(fam.1);
        let (mut a, mut b, mut now) = up(fam, "dpd_secs = 5", &format!("additional_addresses = [\"{b2}\"]"));
        let mut tried = false;
        for _ in 0..200 {
            now += Duration::from_secs(1);
            a.e.handle_timeout(now);
            b.e.handle_timeout(now);
            for _ in 0..10 {
                // B's first address is cut off.
                let to_b: Vec<_> = a.take().into_iter().filter(|d| d.remote.ip() != fam.1).collect();
                let to_a = b.take();
                if to_b.is_empty() && to_a.is_empty() {
                    break;
                }
                for d in to_b {
                    b.e.handle_datagram(now, d.remote, d.local, &d.data);
                }
                for d in to_a {
                    a.e.handle_datagram(now, d.remote, d.local, &d.data);
                }
            }
            tried |= a.events.iter().any(|e| matches!(e, Event::PathTried { .. }));
            if !moves(&a).is_empty() {
                break;
            }
        }
        assert!(tried, "{:?}", a.events);
        assert_eq!(moves(&a), [MoveReason::PathFailed], "{:?}", a.events);
        assert_eq!(a.e.ike_sas().next().unwrap().remote().ip(), b2);
        assert_eq!(b.e.ike_sas().next().unwrap().local().ip(), b2, "B answers from there now");
        assert_eq!(a.established(), 1, "not given up");
    }
}

/// RFC 4555 3.10, where it is silent: when the path stops answering, the
/// other addresses tried are our outer ones, never an address inside what
/// our own tunnel-mode child SAs protect (a LAN port's: IKE from there
/// would be routed into the tunnel), so a dead peer is given up after one
/// round of retransmissions, not two.
#[test]
fn rfc4555_3_10_an_inner_address_is_not_a_path() {
    for (fam, lts, rts, inner) in
        [(V4, "10.1.0.0/16", "10.2.0.0/16", "10.1.0.1"), (V6, "fd01::/64", "fd02::/64", "fd01::1")]
    {
        let inner: IpAddr = inner.parse().unwrap();
        let ca =
            common::conn("lab", "initiator", fam.0, &fam.1.to_string(), ("a.lab", "b.lab"), (lts, rts), "dpd_secs = 5");
        let cb = common::conn("lab", "responder", fam.1, "%any", ("b.lab", "a.lab"), (rts, lts), "");
        let (mut a, mut b) = (Node::seeded(vec![ca], 1), Node::seeded(vec![cb], 2));
        let mut now = Instant::now();
        a.e.initiate(now, "lab").unwrap();
        run(&mut a, &mut b, now);
        assert_eq!(a.children(), 1, "{fam:?}: up");
        a.e.local_addresses(now, &[fam.0, inner]);
        let mut from = Vec::new();
        for _ in 0..300 {
            now += Duration::from_secs(1);
            a.e.handle_timeout(now);
            // B is gone: nothing of A's reaches it.
            from.extend(a.take().into_iter().map(|d| d.local.ip()));
            if a.established() == 0 {
                break;
            }
        }
        assert_eq!(a.established(), 0, "{fam:?}: the dead peer given up");
        assert!(!from.contains(&inner), "{fam:?}: IKE sent from the inner address {inner}");
        assert!(!a.events.iter().any(|e| matches!(e, Event::PathTried { .. })), "{fam:?}: {:?}", a.events);
    }
}
