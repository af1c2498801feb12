//! IKE SA synchronization (draft-xu-ike-sa-sync, NOTES.md) between engines
//! in memory, IPv4 and IPv6: client A, its gateway B and the standby
//! gateway C of B's cluster (the same identity, b.lab). B exports a stub of
//! A's IKE SA; C, holding it, rebuilds the SA when A comes with IKE_SA_SYN
//! (Nr alone, no DH, no IKE_AUTH), and everything that does not fit gets
//! the full exchange. And RFC 5685: B redirects A to C, A arrives there
//! by IKE_SA_SYN.

mod common;

use std::net::IpAddr;
use std::time::{Duration, Instant};

use common::{conn, run, Node, V4, V6};
use controlplane::codepoints::NotifyType;
use controlplane::crypto::SeededRandom;
use controlplane::ike::engine::IkeGone;
use controlplane::ike::{Event, Settings};
use controlplane::stub::{seal, IkeSaStub, StubOp};
use controlplane::wire::{Notify, Payload};
use cpdp::msg::{Command, Direction};

/// The standby gateway's address beside `fam`'s two.
fn standby(fam: (IpAddr, IpAddr)) -> IpAddr {
    if fam.0.is_ipv4() {
        "10.77.0.3".parse().unwrap()
    } else {
        "fd77::3".parse().unwrap()
    }
}

/// A gateway of the cluster on `addr` (stubs on), with `extra` lines.
fn gateway(addr: IpAddr, seed: u64, extra: &str) -> Node {
    let c = conn(
        "lab",
        "responder",
        addr,
        "%any",
        ("b.lab", "a.lab"),
        ("10.2.0.0/16", "10.1.0.0/16"),
        &format!("stubs = true\n{extra}"),
    );
    Node::seeded(vec![c], seed)
}

/// A (with C as standby) up with B; B's stub of the IKE SA; C ready.
fn up(fam: (IpAddr, IpAddr), extra_a: &str, extra_c: &str) -> (Node, Node, Node, IkeSaStub, Instant) {
    let c_addr = standby(fam);
    let ca = common::conn_a(fam, &format!("standby = [\"{c_addr}\"]\n{extra_a}"));
    let mut a = Node::seeded(vec![ca], 1);
    let mut b = gateway(fam.1, 2, "");
    let c = gateway(c_addr, 3, extra_c);
    let now = Instant::now();
    a.e.initiate(now, "lab").unwrap();
    run(&mut a, &mut b, now);
    assert_eq!((a.children(), b.children()), (1, 1), "{fam:?}");
    let stub = b
        .stubs
        .iter()
        .find_map(|op| if let StubOp::Update(s) = op { Some((**s).clone()) } else { None })
        .expect("B exported a stub after IKE_AUTH");
    (a, b, c, stub, now)
}

/// C gets B's stub; A fails over and its SYN reaches C (C's answer is
/// left for the caller to take).
fn syn_reaches(a: &mut Node, c: &mut Node, stub: IkeSaStub, now: Instant) {
    c.e.add_stub(stub);
    syn_to(a, c, now);
}

/// A fails over; its SYN reaches C (C's answer is left for the caller).
fn syn_to(a: &mut Node, c: &mut Node, now: Instant) {
    a.e.failover(now, "lab").unwrap();
    for d in a.take() {
        c.e.handle_datagram(now, d.remote, d.local, &d.data);
    }
}

/// Delivers between A and its two gateways until all are quiet, each
/// datagram of A's where it is sent (B on `fam.1`, C elsewhere).
fn route(a: &mut Node, b: &mut Node, c: &mut Node, fam: (IpAddr, IpAddr), now: Instant) {
    for _ in 0..20 {
        let from_a = a.take();
        let back: Vec<_> = b.take().into_iter().chain(c.take()).collect();
        if from_a.is_empty() && back.is_empty() {
            return;
        }
        for d in from_a {
            let to = if d.remote.ip() == fam.1 { &mut *b } else { &mut *c };
            to.e.handle_datagram(now, d.remote, d.local, &d.data);
        }
        for d in back {
            a.e.handle_datagram(now, d.remote, d.local, &d.data);
        }
    }
    panic!("message storm");
}

fn rebuilt(n: &Node) -> usize {
    n.events.iter().filter(|e| matches!(e, Event::IkeRebuilt { .. })).count()
}

fn authenticated(n: &Node) -> usize {
    n.events.iter().filter(|e| matches!(e, Event::IkeUp { .. })).count()
}

/// Inbound keys of every child SA installed so far.
fn child_keys(n: &Node) -> Vec<Vec<u8>> {
    n.dp.iter()
        .filter_map(|c| match c {
            Command::InstallSa(s) if s.direction == Direction::In => Some(s.enc_key.to_vec()),
            _ => None,
        })
        .collect()
}

/// draft-xu-ike-sa-sync 3.2-3.3 (NOTES.md): B's stub is filed under B's
/// address and its SPI (the responder SPI), with the SA's identities,
/// SPIs and proposal; sealed under the cluster key it opens to itself.
#[test]
fn xu_3_3_the_gateway_exports_a_stub_after_ike_auth() {
    for fam in [V4, V6] {
        let (a, b, _, stub, _) = up(fam, "", "");
        let sa = b.e.ike_sas().next().unwrap();
        assert_eq!((stub.index.gateway, stub.index.spi), (fam.1, sa.spi_r()), "{fam:?}");
        assert_eq!((stub.spi_i, stub.spi_r), (sa.spi_i(), sa.spi_r()));
        assert_eq!((stub.id_i.to_text(), stub.id_r.to_text()), ("a.lab".into(), "b.lab".into()));
        assert_eq!(stub.peer.ip(), fam.0);
        assert!(a.stubs.is_empty(), "a client exports nothing");
        let key = seal::ClusterKey::new([7; 32]);
        let sealed = seal::seal(&key, &stub, &mut SeededRandom::new(1));
        assert_eq!(seal::open(&key, &sealed), Ok(stub));
    }
}

/// draft-xu-ike-sa-sync 3.1 and 4 (NOTES.md): A fails over to C, which
/// holds B's stub: IKE_SA_SYN answered with Nr alone, both derive the new
/// keys as an IKE SA rekey does (they agree: the child SA comes up and an
/// INFORMATIONAL is answered), no IKE_AUTH; the child SA is made again by
/// CREATE_CHILD_SA, with keys unlike the old one's; the stub is used up.
#[test]
fn xu_3_1_a_client_rebuilds_on_the_standby_by_syn() {
    for fam in [V4, V6] {
        let (mut a, b, mut c, stub, now) = up(fam, "", "");
        let old_keys = child_keys(&a);
        let index = stub.index;
        c.e.add_stub(stub);
        assert_eq!(a.e.failover(now, "lab"), Ok(1));
        run(&mut a, &mut c, now);
        assert_eq!((rebuilt(&a), rebuilt(&c)), (1, 1), "{fam:?}: {:?}", a.events);
        assert_eq!(authenticated(&c), 0, "{fam:?}: no IKE_AUTH at C");
        assert_eq!((a.established(), c.established()), (1, 1));
        assert_eq!((a.children(), c.children()), (1, 1), "{fam:?}: the child SA again");
        assert_eq!(a.e.ike_sas().next().unwrap().remote().ip(), standby(fam));
        let new_keys = child_keys(&a);
        assert!(new_keys.len() > old_keys.len() && !old_keys.contains(new_keys.last().unwrap()), "fresh child keys");
        assert_eq!(a.e.send_informational(now, "lab", vec![]), Ok(1));
        run(&mut a, &mut c, now);
        assert!(!a.events.iter().any(|e| matches!(e, Event::Failed { .. })), "{fam:?}: {:?}", a.events);
        assert!(c.stubs.contains(&StubOp::Used(index)), "the stub is used once");
        assert_eq!((c.e.stubs_held(), c.e.stats.syn_rebuilt), (0, 1));
        // C's own stub of the rebuilt SA, for the next failover, under its
        // index, with keys unlike the old SA's.
        let next = c.stubs.iter().find_map(|op| if let StubOp::Update(s) = op { Some(s.clone()) } else { None });
        let next = next.expect("C exports the rebuilt SA's stub");
        assert_eq!(next.index.gateway, standby(fam));
        assert_ne!(next.sk_d, stub_of(&b).sk_d, "{fam:?}: new SK_d");
    }
}

fn stub_of(b: &Node) -> IkeSaStub {
    b.stubs.iter().find_map(|op| if let StubOp::Update(s) = op { Some((**s).clone()) } else { None }).unwrap()
}

/// NOTES.md: a SYN whose stub the gateway does not hold, or a second SYN
/// for a stub already used (single use), or one whose proposals do not
/// hold the stub's suite, gets the full exchange (IKE_SA_INIT answered with
/// SAr1, KEr, Nr; then IKE_AUTH), counted.
#[test]
fn xu_3_1_a_syn_that_does_not_fit_gets_the_full_exchange() {
    for fam in [V4, V6] {
        // Unknown index.
        let (mut a, _, mut c, _, now) = up(fam, "", "");
        a.e.failover(now, "lab").unwrap();
        run(&mut a, &mut c, now);
        assert_eq!((rebuilt(&a), authenticated(&a), a.children()), (0, 2, 1), "{fam:?}: {:?}", a.events);
        assert_eq!(c.e.stats.syn_unknown, 1);
        // Used once already: a second client with the same index.
        let (mut a, _, mut c, stub, now) = up(fam, "", "");
        c.e.add_stub(stub.clone());
        a.e.rebuild_from(now, "lab", stub.clone()).unwrap();
        run(&mut a, &mut c, now);
        assert_eq!(rebuilt(&c), 1);
        let ca = common::conn_a(fam, &format!("standby = [\"{}\"]", standby(fam)));
        let mut a2 = Node::seeded(vec![ca], 9);
        a2.e.rebuild_from(now, "lab", stub).unwrap();
        run(&mut a2, &mut c, now);
        assert_eq!((rebuilt(&a2), authenticated(&a2), a2.children()), (0, 1, 1), "{fam:?}: {:?}", a2.events);
        assert_eq!((c.e.stats.syn_unknown, c.e.stats.syn_rebuilt), (1, 1));
        // The client's proposals no longer hold the stub's suite.
        let both = "ike_proposals = [\"aes128gcm16-prfsha256-x25519\", \"aes256gcm16-prfsha384-ecp256\"]";
        let (_, _, mut c, stub, now) = up(fam, "", both);
        let mut a3 = Node::seeded(
            vec![common::conn_a(
                fam,
                &format!("standby = [\"{}\"]\nike_proposals = [\"aes256gcm16-prfsha384-ecp256\"]", standby(fam)),
            )],
            10,
        );
        c.e.add_stub(stub.clone());
        a3.e.rebuild_from(now, "lab", stub).unwrap();
        run(&mut a3, &mut c, now);
        assert_eq!((rebuilt(&a3), authenticated(&a3)), (0, 1), "{fam:?}: {:?}", a3.events);
        assert_eq!((c.e.stats.syn_refused, c.e.stubs_held()), (1, 1), "refused, the stub kept");
    }
}

/// draft-xu-ike-sa-sync 5 item 3: a rebuilt SA that sees no valid
/// protected message in time is deleted (its answer lost, the client gone).
#[test]
fn xu_5_a_rebuilt_sa_without_traffic_is_deleted() {
    for fam in [V4, V6] {
        let (mut a, _, mut c, stub, now) = up(fam, "", "");
        syn_reaches(&mut a, &mut c, stub, now);
        let _lost = c.take();
        assert_eq!(c.established(), 1, "{fam:?}: rebuilt at C");
        let later = now + Settings::default().rebuilt_timeout + Duration::from_secs(1);
        c.e.handle_timeout(later);
        let _ = c.take();
        assert_eq!(c.established(), 0, "{fam:?}: deleted");
        assert!(c.events.iter().any(|e| matches!(e, Event::IkeDown { why: IkeGone::Unproven, .. })));
        assert!(c.stubs.iter().any(|op| matches!(op, StubOp::Withdraw(_))), "its own stub withdrawn");
    }
}

/// RFC 7296 2.4 for the SYN: its answer lost, the client's retransmission
/// gets the same answer (the stub is gone by then), and the SA comes up.
#[test]
fn xu_3_1_a_retransmitted_syn_gets_the_same_answer() {
    for fam in [V4, V6] {
        let (mut a, _, mut c, stub, now) = up(fam, "", "");
        syn_reaches(&mut a, &mut c, stub, now);
        let first = c.take();
        let later = now + Duration::from_secs(2);
        a.e.handle_timeout(later);
        for d in a.take() {
            c.e.handle_datagram(later, d.remote, d.local, &d.data);
        }
        let again = c.take();
        assert_eq!(again.len(), 1, "{fam:?}");
        assert_eq!(again[0].data, first[0].data, "{fam:?}: the same answer");
        for d in again {
            a.e.handle_datagram(later, d.remote, d.local, &d.data);
        }
        run(&mut a, &mut c, later);
        assert_eq!((rebuilt(&a), c.e.stats.syn_rebuilt, a.children()), (1, 1, 1), "{fam:?}");
        assert_eq!(c.e.stats.retransmits_answered, 1);
    }
}

/// A standby that does not answer the SYN: after the retransmissions
/// (RFC 7296 2.4) the next one in `standby` is asked, and rebuilds.
#[test]
fn xu_2_1_an_unanswered_syn_goes_to_the_next_standby() {
    for fam in [V4, V6] {
        let second: IpAddr = if fam.0.is_ipv4() { "10.77.0.4".parse().unwrap() } else { "fd77::4".parse().unwrap() };
        let (_, _, _, stub, mut now) = up(fam, "", "");
        let ca = common::conn_a(fam, &format!("standby = [\"{}\", \"{second}\"]", standby(fam)));
        let mut a = Node::seeded(vec![ca], 11);
        let mut c2 = gateway(second, 12, "");
        c2.e.add_stub(stub.clone());
        a.e.rebuild_from(now, "lab", stub).unwrap();
        for _ in 0..120 {
            now += Duration::from_secs(1);
            a.e.handle_timeout(now);
            // The first standby is down; the second answers.
            let to_c2: Vec<_> = a.take().into_iter().filter(|d| d.remote.ip() == second).collect();
            for d in to_c2 {
                c2.e.handle_datagram(now, d.remote, d.local, &d.data);
            }
            run(&mut a, &mut c2, now);
            if rebuilt(&a) == 1 {
                break;
            }
        }
        assert_eq!((rebuilt(&a), rebuilt(&c2), a.children()), (1, 1, 1), "{fam:?}: {:?}", a.events);
        assert_eq!(a.e.ike_sas().next().unwrap().remote().ip(), second);
        assert_eq!(a.e.stats.syn_sent, 2);
    }
}

/// draft-xu-ike-sa-sync 2.1: the client's gateway stops answering; its
/// liveness check gives up, and it rebuilds on the standby by itself.
#[test]
fn xu_2_1_a_dead_gateway_is_replaced_by_the_standby() {
    for fam in [V4, V6] {
        let (mut a, _, mut c, stub, mut now) = up(fam, "dpd_secs = 5", "");
        c.e.add_stub(stub);
        for _ in 0..200 {
            now += Duration::from_secs(1);
            a.e.handle_timeout(now);
            c.e.handle_timeout(now);
            // B is gone: what A sends there is lost; C answers.
            let to_c: Vec<_> = a.take().into_iter().filter(|d| d.remote.ip() == standby(fam)).collect();
            for d in to_c {
                c.e.handle_datagram(now, d.remote, d.local, &d.data);
            }
            run(&mut a, &mut c, now);
            if a.children() == 1 && rebuilt(&a) == 1 {
                break;
            }
        }
        assert_eq!((rebuilt(&a), rebuilt(&c)), (1, 1), "{fam:?}: {:?}", a.events);
        assert!(a.events.iter().any(|e| matches!(e, Event::IkeDown { why: IkeGone::PeerNotResponding, .. })));
        assert_eq!((a.children(), c.children()), (1, 1));
    }
}

/// The gateway withdraws a deleted SA's stub, and after an IKE SA rekey
/// exports the new SA's (RFC 7296 2.18: new SK_d).
#[test]
fn xu_3_3_stubs_follow_rekeys_and_deletes() {
    for fam in [V4, V6] {
        let (mut a, mut b, _, first, now) = up(fam, "", "");
        a.e.rekey(now, "lab", true).unwrap();
        run(&mut a, &mut b, now);
        let updates: Vec<IkeSaStub> = b
            .stubs
            .iter()
            .filter_map(|op| if let StubOp::Update(s) = op { Some((**s).clone()) } else { None })
            .collect();
        assert_eq!(updates.len(), 2, "{fam:?}: {:?}", b.stubs);
        assert_ne!(updates[1].index, first.index);
        assert_ne!(updates[1].sk_d, first.sk_d);
        assert!(b.stubs.contains(&StubOp::Withdraw(first.index)), "the old SA's withdrawn");
        a.e.terminate(now, "lab").unwrap();
        run(&mut a, &mut b, now);
        assert!(b.stubs.contains(&StubOp::Withdraw(updates[1].index)));
    }
}

/// RFC 5685 3 and 6 with draft-xu-ike-sa-sync 2.2: A announced
/// REDIRECT_SUPPORTED in IKE_SA_INIT; B redirects it to C (INFORMATIONAL
/// { N(REDIRECT, C) }); A goes to C by IKE_SA_SYN with N(REDIRECTED_FROM,
/// B) beside it, is rebuilt there, and then deletes its IKE SA with B.
#[test]
fn rfc5685_6_a_redirected_client_arrives_by_syn_and_leaves_the_old_gateway() {
    for fam in [V4, V6] {
        let (mut a, mut b, mut c, stub, now) = up(fam, "", "");
        c.e.add_stub(stub);
        assert_eq!(b.e.redirect(now, "lab", standby(fam), Some("a.lab")), Ok(1));
        for d in b.take() {
            a.e.handle_datagram(now, d.remote, d.local, &d.data);
        }
        // A answers B and sends its SYN to C.
        let (syn, answer): (Vec<_>, Vec<_>) = a.take().into_iter().partition(|d| d.remote.ip() == standby(fam));
        for d in answer {
            b.e.handle_datagram(now, d.remote, d.local, &d.data);
        }
        assert_eq!(syn.len(), 1, "{fam:?}: the SYN to C");
        assert_eq!(syn[0].remote.ip(), standby(fam));
        let m = controlplane::wire::Message::parse(&syn[0].data).unwrap();
        let from = m.payloads.iter().find_map(|x| match x {
            controlplane::wire::Payload::Notify(n) if n.ty == controlplane::codepoints::NotifyType::RedirectedFrom => {
                Some(n.data.clone())
            }
            _ => None,
        });
        let want = match fam.1 {
            IpAddr::V4(x) => [&[1u8, 4][..], &x.octets()].concat(),
            IpAddr::V6(x) => [&[2u8, 16][..], &x.octets()].concat(),
        };
        assert_eq!(from, Some(want), "{fam:?}: REDIRECTED_FROM names B");
        assert!(m.payloads.iter().any(|x| matches!(x, controlplane::wire::Payload::Syn(_))));
        for d in syn {
            c.e.handle_datagram(now, d.remote, d.local, &d.data);
        }
        // A with C, and A's Delete to B.
        route(&mut a, &mut b, &mut c, fam, now);
        assert_eq!((rebuilt(&a), rebuilt(&c)), (1, 1), "{fam:?}: {:?}", a.events);
        assert_eq!((a.established(), b.established(), c.established()), (1, 0, 1), "{fam:?}: B's SA deleted");
        assert_eq!(a.e.ike_sas().next().unwrap().remote().ip(), standby(fam));
        assert_eq!((a.e.stats.redirects_followed, b.e.stats.redirects_sent), (1, 1));
    }
}

/// RFC 5685 6: redirected to a gateway that holds no stub of the SA, the
/// client comes up there by the full exchange (IKE_AUTH), and then deletes
/// its IKE SA with the old gateway all the same.
#[test]
fn rfc5685_6_redirected_by_the_full_exchange_the_old_sa_goes_too() {
    for fam in [V4, V6] {
        let (mut a, mut b, mut c, _, now) = up(fam, "", "");
        b.e.redirect(now, "lab", standby(fam), None).unwrap();
        route(&mut a, &mut b, &mut c, fam, now);
        assert_eq!((rebuilt(&a), authenticated(&c)), (0, 1), "{fam:?}: the full exchange at C");
        assert_eq!((a.established(), b.established(), c.established()), (1, 0, 1), "{fam:?}: {:?}", a.events);
        assert_eq!(c.e.stats.syn_unknown, 1);
    }
}

/// RFC 5685 3: a client that did not announce REDIRECT_SUPPORTED is not
/// redirected (nothing is sent); a REDIRECT that names no usable gateway
/// is answered and ignored, the IKE SA staying up.
#[test]
fn rfc5685_3_only_clients_that_announced_support_are_redirected() {
    let (_, mut b, _, _, now) = up(V4, "redirect = false", "");
    assert!(b.e.redirect(now, "lab", standby(V4), None).is_err());
    assert!(b.take().is_empty(), "nothing sent");
    let (mut a2, mut b2, _, _, now) = up(V6, "", "");
    let fqdn = Payload::Notify(Notify::new(NotifyType::Redirect, [&[3u8, 7][..], b"gw.test"].concat()));
    b2.e.send_informational(now, "lab", vec![fqdn]).unwrap();
    run(&mut a2, &mut b2, now);
    assert_eq!((a2.established(), a2.e.stats.redirects_ignored), (1, 1));
    assert!(a2.take().is_empty(), "no SYN");
}

/// RFC 5685 6 (as strongSwan does it): a redirected client that has not
/// deleted its IKE SA with the old gateway in time (its new gateway does
/// not answer) has it deleted by the gateway.
#[test]
fn rfc5685_6_the_gateway_deletes_a_redirected_sa_the_client_kept() {
    for fam in [V4, V6] {
        let (mut a, mut b, _, _, now) = up(fam, "", "");
        b.e.redirect(now, "lab", standby(fam), None).unwrap();
        for d in b.take() {
            a.e.handle_datagram(now, d.remote, d.local, &d.data);
        }
        let (syn, answer): (Vec<_>, Vec<_>) = a.take().into_iter().partition(|d| d.remote.ip() == standby(fam));
        assert_eq!(syn.len(), 1, "{fam:?}: the SYN, lost");
        for d in answer {
            b.e.handle_datagram(now, d.remote, d.local, &d.data);
        }
        let later = now + Settings::default().half_open_timeout + Duration::from_secs(1);
        b.e.handle_timeout(later);
        run(&mut a, &mut b, later);
        assert_eq!(b.established(), 0, "{fam:?}: B deleted it");
        assert!(b.events.iter().any(|e| matches!(e, Event::IkeDown { .. })));
    }
}

/// Standby C with a bank behind it: SYNs whose stub C lacks wait
/// `stub_fetch_wait` for it.
fn banked(fam: (IpAddr, IpAddr)) -> Node {
    let c = conn(
        "lab",
        "responder",
        standby(fam),
        "%any",
        ("b.lab", "a.lab"),
        ("10.2.0.0/16", "10.1.0.0/16"),
        "stubs = true",
    );
    let s = Settings { stub_fetch_wait: Some(Duration::from_millis(300)), ..Settings::default() };
    Node::new(vec![c], s, Box::new(SeededRandom::new(3)))
}

fn fetches(n: &Node) -> Vec<controlplane::stub::StubIndex> {
    n.stubs.iter().filter_map(|op| if let StubOp::Fetch(i) = op { Some(*i) } else { None }).collect()
}

/// draft-xu-ike-sa-sync 3.4 item 1: a SYN whose stub the local table
/// lacks is held while the bank is asked (once, retransmissions dropped);
/// the stub arrives and the SA is rebuilt from it, with no DH or IKE_AUTH.
#[test]
fn xu_3_4_a_syn_waits_for_the_bank_and_rebuilds() {
    for fam in [V4, V6] {
        let (mut a, _, _, stub, now) = up(fam, "", "");
        let mut c = banked(fam);
        a.e.failover(now, "lab").unwrap();
        let syn = a.take();
        for d in syn.iter().chain(syn.iter()) {
            c.e.handle_datagram(now, d.remote, d.local, &d.data);
        }
        assert!(c.take().is_empty(), "{fam:?}: answered before the bank did");
        assert_eq!(fetches(&c), vec![stub.index], "asked once");
        assert_eq!(c.e.stub_fetches_waiting(), 1);
        c.e.stub_fetched(now, stub.index, Some(stub.clone()));
        run(&mut a, &mut c, now);
        assert_eq!((rebuilt(&a), rebuilt(&c), authenticated(&c)), (1, 1, 0), "{fam:?}: {:?}", a.events);
        assert_eq!((a.children(), c.children()), (1, 1));
        assert_eq!((c.e.stats.stubs_fetched, c.e.stats.stub_fetch_missed, c.e.stub_fetches_waiting()), (1, 0, 0));
        assert!(c.stubs.contains(&StubOp::Used(stub.index)), "used: gone from the bank too");
    }
}

/// A bank that does not answer in time, or does not hold the stub, costs
/// the client one full exchange, never the SA; an answer that comes late
/// is dropped (the stub was handed out once, its SYN is served).
#[test]
fn xu_3_4_a_slow_or_empty_bank_gets_the_full_exchange() {
    for fam in [V4, V6] {
        // Slow: the wait runs out.
        let (mut a, _, _, stub, now) = up(fam, "", "");
        let mut c = banked(fam);
        syn_to(&mut a, &mut c, now);
        assert!(c.take().is_empty());
        let later = now + Duration::from_millis(301);
        assert!(c.e.poll_timeout().is_some_and(|t| t <= later), "the wait is a deadline");
        c.e.handle_timeout(later);
        run(&mut a, &mut c, later);
        assert_eq!((rebuilt(&a), authenticated(&c), a.children()), (0, 1, 1), "{fam:?}: {:?}", a.events);
        assert_eq!((c.e.stats.stub_fetch_missed, c.e.stats.syn_unknown), (1, 1));
        c.e.stub_fetched(later, stub.index, Some(stub.clone()));
        assert_eq!(c.e.stubs_held(), 0, "a late stub is dropped");
        // Empty: the bank does not hold it.
        let (mut a, _, _, stub, now) = up(fam, "", "");
        let mut c = banked(fam);
        syn_to(&mut a, &mut c, now);
        c.e.stub_fetched(now, stub.index, None);
        run(&mut a, &mut c, now);
        assert_eq!((rebuilt(&a), authenticated(&c), a.children()), (0, 1, 1), "{fam:?}");
        // A stub for another index than the one asked for is not used.
        let (mut a, _, _, stub, now) = up(fam, "", "");
        let mut c = banked(fam);
        syn_to(&mut a, &mut c, now);
        let other = IkeSaStub { index: controlplane::stub::StubIndex { spi: 1, ..stub.index }, ..stub.clone() };
        c.e.stub_fetched(now, stub.index, Some(other));
        run(&mut a, &mut c, now);
        assert_eq!((rebuilt(&a), authenticated(&c), c.e.stubs_held()), (0, 1, 0), "{fam:?}");
    }
}

/// NOTES.md (stub lifetimes): a stub well past its IKE SA's expiry does
/// not rebuild; the client gets the full exchange, counted as refused.
#[test]
fn xu_3_2_an_expired_stub_is_not_used() {
    for fam in [V4, V6] {
        let (mut a, _, mut c, stub, now) = up(fam, "", "");
        c.e.set_unix_time(now, 2_000_000_000);
        let old = IkeSaStub { expires_unix: 2_000_000_000 - 601 - controlplane::ike::engine::STUB_GRACE_SECS, ..stub };
        syn_reaches(&mut a, &mut c, old, now);
        run(&mut a, &mut c, now);
        assert_eq!((rebuilt(&a), authenticated(&c)), (0, 1), "{fam:?}");
        assert_eq!((c.e.stats.syn_refused, c.e.stubs_held()), (1, 0));
    }
}

/// draft-xu-ike-sa-sync 2.1: any gateway of the cluster serves a client.
/// Its IKE_SA_INITs go to `remote`, then to each standby in turn, until
/// one is up (a dead primary and a SYN that found no stub do not leave the
/// client knocking on the dead one).
#[test]
fn xu_2_1_initiations_go_round_the_cluster() {
    for fam in [V4, V6] {
        let ca = common::conn_a(fam, &format!("standby = [\"{}\"]", standby(fam)));
        let mut a = Node::seeded(vec![ca], 1);
        let now = Instant::now();
        a.e.initiate(now, "lab").unwrap();
        assert_eq!(a.take()[0].remote.ip(), fam.1, "{fam:?}: the primary first");
        a.e.initiate(now, "lab").unwrap();
        let second = a.take();
        assert_eq!(second[0].remote.ip(), standby(fam), "{fam:?}: then the standby");
        let mut c = gateway(standby(fam), 3, "");
        for d in second {
            c.e.handle_datagram(now, d.remote, d.local, &d.data);
        }
        run(&mut a, &mut c, now);
        assert_eq!((a.established(), c.established()), (1, 1), "{fam:?}: up with the standby");
        a.e.initiate(now, "lab").unwrap();
        assert_eq!(a.take()[0].remote.ip(), fam.1, "{fam:?}: after an SA came up, the primary first again");
    }
}
