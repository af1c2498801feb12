//! Clone IKE SA (RFC 7791, NOTES.md) between two engines in memory, IPv4
//! and IPv6: support agreed in IKE_AUTH only when both sides send it, a
//! clone made with CREATE_CHILD_SA { N(CLONE_IKE_SA), SA, Ni, KEi } that
//! leaves both IKE SAs up with the child SAs on the original, the clone
//! moved to the other interface with MOBIKE (Appendix B), and the notifies
//! where they do not belong answered with INVALID_SYNTAX.

mod common;

use std::net::IpAddr;
use std::time::Instant;

use common::{run, Node, V4, V6};
use controlplane::codepoints::{ExchangeType, NotifyType};
use controlplane::ike::engine::{Error, MoveReason};
use controlplane::ike::Event;
use controlplane::wire::{Message, Notify, Payload};

fn up(fam: (IpAddr, IpAddr), extra_a: &str, extra_b: &str) -> (Node, Node, Instant) {
    common::pair(fam, extra_a, extra_b)
}

fn agreed(n: &Node) -> bool {
    n.e.ike_sas().next().unwrap().established().unwrap().clone
}

fn second(fam: (IpAddr, IpAddr)) -> IpAddr {
    if fam.0.is_ipv4() {
        "10.78.0.1".parse().unwrap()
    } else {
        "fd78::1".parse().unwrap()
    }
}

fn refused_with(n: &Node, t: NotifyType) -> bool {
    n.events.iter().any(|e| matches!(e, Event::Failed { why: Error::Refused(x), .. } if *x == t))
}

/// RFC 7791 3: CLONE_IKE_SA_SUPPORTED in IKE_AUTH; the extension is on
/// only when both sides sent it, and a clone is refused by the API when
/// it is off (nothing is sent).
#[test]
fn rfc7791_3_clone_is_on_only_when_both_sides_support_it() {
    let (a, b, _) = up(V4, "", "");
    assert!(agreed(&a) && agreed(&b));
    for (ea, eb) in [("clone = false", ""), ("", "clone = false")] {
        let (mut a, b, now) = up(V4, ea, eb);
        assert!(!agreed(&a) && !agreed(&b), "{ea}{eb}");
        assert_eq!(a.e.clone_ike_sa(now, "lab", None), Err(Error::CannotClone("lab".into())));
        assert!(a.take().is_empty());
    }
}

/// RFC 7791 3 and Appendix B, either side cloning (initiator or
/// responder of the original): after the clone both IKE SAs are up on both
/// sides, with new SPIs; the child SA stays on the original and the clone
/// starts with none; no Delete goes out; each IKE SA carries its own
/// exchanges afterwards.
#[test]
fn rfc7791_3_a_clone_leaves_both_ike_sas_up_with_the_children_on_the_original() {
    for (fam, a_clones) in [(V4, true), (V6, true), (V4, false), (V6, false)] {
        let (mut a, mut b, now) = up(fam, "", "");
        let original = a.e.ike_sas().next().unwrap().spi_i();
        let cloner = if a_clones { &mut a } else { &mut b };
        assert_eq!(cloner.e.clone_ike_sa(now, "lab", None), Ok(1), "either side clones");
        run(&mut a, &mut b, now);
        for n in [&a, &b] {
            assert_eq!(n.established(), 2, "{fam:?}: both IKE SAs up");
            let mut kids: Vec<(u64, usize, bool)> =
                n.e.ike_sas()
                    .map(|s| (s.spi_i(), s.children().len(), s.established().unwrap().clone_of.is_some()))
                    .collect();
            kids.sort();
            let orig = kids.iter().find(|k| k.0 == original).unwrap();
            let clone = kids.iter().find(|k| k.0 != original).unwrap();
            assert_eq!((orig.1, orig.2), (1, false), "the original keeps its child SA");
            assert_eq!((clone.1, clone.2), (0, true), "the clone starts with none");
        }
        assert!(a.events.iter().any(|e| matches!(e, Event::IkeCloned { .. })), "{:?}", a.events);
        assert!(!a.events.iter().any(|e| matches!(e, Event::IkeDown { .. })));
        assert!(!b.events.iter().any(|e| matches!(e, Event::IkeDown { .. })));
        // Both carry traffic of their own: an INFORMATIONAL on each.
        assert_eq!(a.e.send_informational(now, "lab", vec![]).unwrap(), 2);
        run(&mut a, &mut b, now);
        assert_eq!((a.established(), b.established()), (2, 2));
        // Cloning again clones the original only (not the clone).
        assert_eq!(a.e.clone_ike_sa(now, "lab", None), Ok(1));
    }
}

/// RFC 7791 3: the original and its clone are IKE SAs of their own: both
/// rekeyed (RFC 7296 2.18), the original's successor keeps the child SA,
/// the clone's stays a clone (of the original's successor) on its
/// interface, and an interface's return still finds it (its home kept).
#[test]
fn rfc7791_3_an_original_and_its_clone_rekey_on_their_own() {
    for fam in [V4, V6] {
        let two = second(fam);
        let (mut a, mut b, now) = up(fam, "", "");
        a.e.clone_ike_sa(now, "lab", Some(two)).unwrap();
        run(&mut a, &mut b, now);
        let before: Vec<u64> = a.e.ike_sas().map(|s| s.spi_i()).collect();
        assert_eq!(a.e.rekey(now, "lab", true), Ok(2), "{fam:?}: both IKE SAs rekeyed");
        run(&mut a, &mut b, now);
        for n in [&a, &b] {
            assert_eq!(n.established(), 2, "{fam:?}");
            assert!(n.e.ike_sas().all(|s| !before.contains(&s.spi_i())), "{fam:?}: new SPIs");
            let orig = n.e.ike_sas().find(|s| s.established().unwrap().clone_of.is_none()).unwrap();
            let clone = n.e.ike_sas().find(|s| s.established().unwrap().clone_of.is_some()).unwrap();
            assert_eq!(clone.established().unwrap().clone_of, Some(orig.our_spi()), "{fam:?}");
            assert_eq!((orig.children().len(), clone.children().len()), (1, 0), "{fam:?}");
        }
        let clone = a.e.ike_sas().find(|s| s.established().unwrap().clone_of.is_some()).unwrap();
        assert_eq!((clone.local().ip(), clone.established().unwrap().home), (two, Some(two)), "{fam:?}");
    }
}

/// RFC 7791 Appendix B: the clone moves to our other interface with
/// MOBIKE; the original stays where it was.
#[test]
fn rfc7791_appendix_b_the_clone_moves_to_the_other_interface() {
    for fam in [V4, V6] {
        let (mut a, mut b, now) = up(fam, "", "");
        let two = second(fam);
        a.e.clone_ike_sa(now, "lab", Some(two)).unwrap();
        run(&mut a, &mut b, now);
        let mut locals: Vec<IpAddr> = a.e.ike_sas().map(|s| s.local().ip()).collect();
        locals.sort();
        let mut want = vec![fam.0, two];
        want.sort();
        assert_eq!(locals, want, "{fam:?}");
        let mut remotes: Vec<IpAddr> = b.e.ike_sas().map(|s| s.remote().ip()).collect();
        remotes.sort();
        assert_eq!(remotes, want, "B follows the clone's move only");
        let moved = b.e.ike_sas().find(|s| s.remote().ip() == two).unwrap();
        assert!(moved.established().unwrap().clone_of.is_some() && moved.children().is_empty());
        // gwctl list: each IKE SA followed by its clones, whatever the SPIs.
        a.e.clone_ike_sa(now, "lab", None).unwrap();
        run(&mut a, &mut b, now);
        for n in [&a, &b] {
            let listed = controlplane::daemon::view::ike_sas(&n.e, now);
            assert_eq!(listed.len(), 3);
            assert!(listed[0].clone_of.is_none(), "{fam:?}: the original first");
            for c in &listed[1..] {
                assert_eq!(c.clone_of, Some((listed[0].spi_i.clone(), listed[0].spi_r.clone())), "{fam:?}");
            }
        }
    }
}

/// A and B each start an exchange at once (`on_a`, `on_b`): both requests
/// cross before either is answered; then the wire runs until quiet.
fn cross(a: &mut Node, b: &mut Node, now: Instant, on_a: impl FnOnce(&mut Node), on_b: impl FnOnce(&mut Node)) {
    on_a(a);
    on_b(b);
    let (ra, rb) = (a.take(), b.take());
    assert!(!ra.is_empty() && !rb.is_empty(), "both sent a request");
    deliver(rb, a, now);
    deliver(ra, b, now);
    run(a, b, now);
}

fn deliver(ds: Vec<common::Datagram>, to: &mut Node, now: Instant) {
    for d in ds {
        to.e.handle_datagram(now, d.remote, d.local, &d.data);
    }
}

/// Each side's IKE SAs after a clone met a rekey: the new IKE SA (the old
/// one deleted) with the child SA, and a clone of it with none.
fn rekeyed_and_cloned(n: &Node, old: u64, what: &str) {
    assert_eq!(n.established(), 2, "{what}: {:?}", n.events);
    assert!(n.e.ike_sas().all(|s| s.spi_i() != old), "{what}: the old IKE SA is gone");
    let new = n.e.ike_sas().find(|s| s.established().unwrap().clone_of.is_none()).unwrap();
    let clone = n.e.ike_sas().find(|s| s.established().unwrap().clone_of.is_some()).unwrap();
    assert_eq!((new.children().len(), clone.children().len()), (1, 0), "{what}");
    assert_eq!(clone.established().unwrap().clone_of, Some(new.our_spi()), "{what}: a clone of the new SA");
}

/// RFC 7791 3 with RFC 7296 2.8.2: a clone and a plain rekey of the same
/// IKE SA at once, either side cloning. The rekey replaces the IKE SA as
/// if alone (the child SA moves, the old SA is deleted); the clone is not
/// redundant and lives, as a clone of the new SA. A clone request that
/// comes after the peer's rekey settled is answered TEMPORARY_FAILURE
/// (RFC 7296 2.25) and made again on the new IKE SA.
#[test]
fn rfc7791_3_rfc7296_2_8_2_a_clone_colliding_with_a_rekey_lives_beside_the_new_ike_sa() {
    for fam in [V4, V6] {
        for a_clones in [true, false] {
            let (mut a, mut b, now) = up(fam, "", "");
            let old = a.e.ike_sas().next().unwrap().spi_i();
            let clone = |n: &mut Node| assert_eq!(n.e.clone_ike_sa(now, "lab", None), Ok(1));
            let rekey = |n: &mut Node| assert_eq!(n.e.rekey(now, "lab", true), Ok(1));
            if a_clones {
                cross(&mut a, &mut b, now, clone, rekey);
            } else {
                cross(&mut a, &mut b, now, rekey, clone);
            }
            let what = format!("{fam:?}, A clones: {a_clones}");
            rekeyed_and_cloned(&a, old, &what);
            rekeyed_and_cloned(&b, old, &what);
        }
        // Late: B's rekey settles on both sides before A's clone reaches B.
        let (mut a, mut b, now) = up(fam, "", "");
        let old = a.e.ike_sas().next().unwrap().spi_i();
        a.e.clone_ike_sa(now, "lab", None).unwrap();
        let late = a.take();
        b.e.rekey(now, "lab", true).unwrap();
        deliver(b.take(), &mut a, now);
        deliver(a.take(), &mut b, now);
        let delete = b.take();
        deliver(late, &mut b, now);
        let answer = b.take();
        assert!(Message::parse(&answer[0].data).is_ok());
        deliver(answer, &mut a, now);
        deliver(delete, &mut a, now);
        run(&mut a, &mut b, now);
        rekeyed_and_cloned(&a, old, &format!("{fam:?}, late"));
        rekeyed_and_cloned(&b, old, &format!("{fam:?}, late"));
        assert!(!a.events.iter().any(|e| matches!(e, Event::Failed { .. })), "{:?}", a.events);
    }
}

/// RFC 7791 3 with RFC 7296 2.8.2: both sides clone the IKE SA at once.
/// The clone made with the lowest nonce is redundant and its creator
/// deletes it; the move A wanted for its clone goes to the survivor. A's
/// nonces rise from 0x10 (its exchange holds the lowest: A's clone goes)
/// or fall from 0x40 (B's exchange holds it: B's clone goes).
#[test]
fn rfc7791_3_rfc7296_2_8_2_two_clones_at_once_the_lowest_nonce_is_deleted_by_its_creator() {
    for fam in [V4, V6] {
        let two = second(fam);
        for (start, step, a_redundant) in [(0x10, 1, true), (0x40, -1, false)] {
            let (mut a, mut b, now) = common::pinned_pair(fam, (start, step), 0x80, "", "");
            cross(
                &mut a,
                &mut b,
                now,
                |n| assert_eq!(n.e.clone_ike_sa(now, "lab", Some(two)), Ok(1)),
                |n| assert_eq!(n.e.clone_ike_sa(now, "lab", None), Ok(1)),
            );
            let what = format!("{fam:?}, A's clone redundant: {a_redundant}");
            for n in [&a, &b] {
                assert_eq!(n.established(), 2, "{what}: the original and one clone");
                assert_eq!(n.children(), 1, "{what}");
            }
            let kept = a.e.ike_sas().find(|s| s.established().unwrap().clone_of.is_some()).unwrap();
            assert_eq!(kept.initiator(), !a_redundant, "{what}: whose clone survived");
            assert_eq!(kept.local().ip(), two, "{what}: the survivor went where A wanted its clone");
            assert!(b.e.ike_sas().any(|s| s.remote().ip() == two), "{what}: B followed");
            let counted = (a.e.stats.clone_collisions, b.e.stats.clone_collisions);
            assert_eq!(counted, if a_redundant { (1, 0) } else { (0, 1) }, "{what}");
        }
    }
}

/// Delivers between A and B until quiet, like `run`, and returns the
/// exchange type of every request A sent.
fn run_counting(a: &mut Node, b: &mut Node, now: Instant) -> Vec<ExchangeType> {
    let mut sent = Vec::new();
    for _ in 0..100 {
        let (to_b, to_a) = (a.take(), b.take());
        if to_b.is_empty() && to_a.is_empty() {
            return sent;
        }
        for d in &to_b {
            let h = Message::parse(&d.data).unwrap().header;
            if !h.flags.response {
                sent.push(h.exchange);
            }
        }
        deliver(to_b, b, now);
        deliver(to_a, a, now);
    }
    panic!("message storm");
}

/// A (two interfaces, VPN_1 on the second) and B, both cloning, or B with
/// `b_extra`; A initiated and the wire run, counting A's requests.
fn layout_pair(fam: (IpAddr, IpAddr), b_extra: &str) -> (Node, Node, Vec<ExchangeType>) {
    let two = second(fam);
    let vpn1 = |l: &str, r: &str| format!("[[child]]\nname = \"vpn1\"\nlocal_ts = [\"{l}\"]\nremote_ts = [\"{r}\"]\n");
    let extra_a = format!("interfaces = [\"{two}\"]\n{}interface = \"{two}\"\n", vpn1("10.1.1.0/24", "10.2.1.0/24"));
    let ca = common::conn_a(fam, &extra_a);
    let cb = common::conn_b(fam, &format!("{b_extra}\n{}", vpn1("10.2.1.0/24", "10.1.1.0/24")));
    let (mut a, mut b) = (Node::seeded(vec![ca], 1), Node::seeded(vec![cb], 2));
    let now = Instant::now();
    a.e.initiate(now, "lab").unwrap();
    let sent = run_counting(&mut a, &mut b, now);
    (a, b, sent)
}

/// RFC 7791 Appendix B with RFC 4555 3.10: the first interface goes
/// silent (its link stays up, nothing gets through): the original IKE
/// SA's liveness check fails there, is retried from the other interface
/// (the clone's), and the original moves there with its child SA; VPN_1
/// stays on its clone. The hub's own liveness check fails there too: as
/// MOBIKE's responder it waits a path's worth of tries for the move
/// instead of deleting the IKE SA. Both families.
#[test]
fn rfc7791_appendix_b_a_silent_interface_moves_its_ike_sa_to_a_surviving_one() {
    for fam in [V4, V6] {
        let two = second(fam);
        let (mut a, mut b, _) = layout_pair(fam, "");
        let mut now = Instant::now();
        a.e.local_addresses(now, &[fam.0, two]);
        let mut moved = false;
        for _ in 0..300 {
            now += std::time::Duration::from_secs(1);
            a.e.handle_timeout(now);
            b.e.handle_timeout(now);
            for _ in 0..10 {
                // Nothing to or from A's first interface gets through.
                let to_b: Vec<_> = a.take().into_iter().filter(|d| d.local.ip() != fam.0).collect();
                let to_a: Vec<_> = b.take().into_iter().filter(|d| d.remote.ip() != fam.0).collect();
                if to_b.is_empty() && to_a.is_empty() {
                    break;
                }
                deliver(to_b, &mut b, now);
                deliver(to_a, &mut a, now);
            }
            moved = a.events.iter().any(|e| matches!(e, Event::Moved { why: MoveReason::PathFailed, .. }));
            if moved {
                break;
            }
        }
        assert!(moved, "{fam:?}: {:?}", a.events);
        run(&mut a, &mut b, now);
        let layout: Vec<(IpAddr, usize)> = a.e.ike_sas().map(|s| (s.local().ip(), s.children().len())).collect();
        assert_eq!(layout, [(two, 1), (two, 1)], "{fam:?}: both IKE SAs on the second interface, one VPN each");
        assert!(b.e.ike_sas().all(|s| s.remote().ip() == two), "{fam:?}: B follows");
        assert_eq!((a.children(), b.children()), (2, 2));
    }
}

/// Appendix B.5 (the reduced exchange), where both sides sent its Vendor
/// ID in IKE_SA_INIT: the first clone rides in IKE_AUTH (N(CLONE_IKE_SA),
/// SA, Ni, KEi after the child SA's payloads, answered the same way) and
/// its move to the second interface in VPN_1's CREATE_CHILD_SA, sent from
/// there (UPDATE_SA_ADDRESSES, NAT-D, COOKIE2 after the child's payloads):
/// three exchanges instead of five. Same layout as without it, both
/// families; B follows the move and VPN_1 is on the new path at B.
#[test]
fn rfc7791_appendix_b5_the_first_clone_rides_in_ike_auth() {
    for fam in [V4, V6] {
        let (a, b, sent) = layout_pair(fam, "");
        use ExchangeType::*;
        assert_eq!(sent, [IkeSaInit, IkeAuth, CreateChildSa], "{fam:?}");
        let at_b = b.e.ike_sas().find(|s| s.established().unwrap().clone_of.is_some()).unwrap();
        assert_eq!(at_b.remote().ip(), second(fam), "{fam:?}: B follows the clone's move");
        let vpn1_out = b.dp.iter().rev().find_map(|c| match c {
            cpdp::msg::Command::InstallSa(s) if s.direction == cpdp::msg::Direction::Out => Some(s.remote),
            _ => None,
        });
        assert_eq!(vpn1_out, Some(second(fam)), "{fam:?}: VPN_1 installed on the clone's new path");
        let mut layout: Vec<(IpAddr, usize, bool)> =
            a.e.ike_sas()
                .map(|s| (s.local().ip(), s.children().len(), s.established().unwrap().clone_of.is_some()))
                .collect();
        layout.sort();
        let mut want = vec![(fam.0, 1, false), (second(fam), 1, true)];
        want.sort();
        assert_eq!(layout, want, "{fam:?}: one IKE SA per interface, each with its VPN");
        assert_eq!((b.established(), b.children()), (2, 2));
        assert!(b.events.iter().any(|e| matches!(e, Event::IkeCloned { .. })));
    }
}

/// Appendix B.5 is only for a responder that sent the Vendor ID: one that
/// does not clone gets no CLONE_IKE_SA at all (everything on one IKE SA);
/// one that clones without it (`clone_reduced = false`) gets the clone,
/// the move and the child SA as three exchanges (Appendix B.1-B.4);
/// one whose chosen connection does not clone, though another does (so
/// it sent the Vendor ID), leaves the offer unanswered and the IKE SA
/// comes up without a clone.
#[test]
fn rfc7791_appendix_b5_only_where_the_responder_takes_it() {
    let (a, _, sent) = layout_pair(V4, "clone = false");
    use ExchangeType::*;
    assert_eq!(sent, [IkeSaInit, IkeAuth, CreateChildSa], "VPN_1 on the original, no clone, no move");
    assert_eq!((a.e.ike_sas().count(), a.children()), (1, 2), "no clone: both VPNs on one IKE SA");
    // A responder that clones without the reduced exchange: B.1-B.4.
    let (a, b, sent) = layout_pair(V6, "clone_reduced = false");
    assert_eq!(sent, [IkeSaInit, IkeAuth, CreateChildSa, Informational, CreateChildSa], "clone, move, VPN_1");
    assert_eq!((a.e.ike_sas().count(), a.children(), b.children()), (2, 2, 2));
    // B's other connection clones; the one A reaches does not.
    let two = second(V4);
    let ca = common::conn_a(V4, &format!("interfaces = [\"{two}\"]"));
    let other = common::conn("x", "responder", V4.1, "%any", ("b.lab", "x.lab"), ("10.9.0.0/16", "10.8.0.0/16"), "");
    let cb = common::conn_b(V4, "clone = false");
    let (mut a, mut b) = (Node::seeded(vec![ca], 1), Node::seeded(vec![other, cb], 2));
    let now = Instant::now();
    a.e.initiate(now, "lab").unwrap();
    run(&mut a, &mut b, now);
    assert_eq!((a.established(), b.established()), (1, 1), "up, without a clone");
    assert_eq!((a.children(), b.children()), (1, 1));
    assert_eq!(b.e.stats.clone_refused, 0, "not refused: unanswered");
}

/// NOTES.md (RFC 7791 4): CLONE_IKE_SA or CLONE_IKE_SA_SUPPORTED in a
/// CREATE_CHILD_SA for a child SA, and (Appendix B.5) UPDATE_SA_ADDRESSES
/// in one that is not a clone's: INVALID_SYNTAX, no child SA, no move,
/// counted. Both families.
#[test]
fn rfc7791_4_misplaced_notifies_in_a_create_child_sa_are_invalid_syntax() {
    for fam in [V4, V6] {
        let vpn1 =
            "[[child]]\nname = \"vpn1\"\nauto = false\nlocal_ts = [\"10.1.1.0/24\"]\nremote_ts = [\"10.2.1.0/24\"]\n";
        let (mut a, mut b, now) = up(fam, vpn1, "");
        let n = |t: NotifyType| Payload::Notify(Notify::new(t, vec![]));
        for (k, extra) in [NotifyType::CloneIkeSa, NotifyType::CloneIkeSaSupported, NotifyType::UpdateSaAddresses]
            .into_iter()
            .enumerate()
        {
            a.events.clear();
            assert_eq!(a.e.create_child_with(now, "lab", "vpn1", vec![n(extra)]), Ok(1));
            run(&mut a, &mut b, now);
            assert!(refused_with(&a, NotifyType::InvalidSyntax), "{fam:?} {extra:?}: {:?}", a.events);
            assert_eq!((a.children(), b.children()), (1, 1), "{fam:?} {extra:?}: nothing created");
            assert_eq!(b.e.stats.clone_refused, k as u64 + 1, "{fam:?} {extra:?}: counted");
            assert_eq!(b.e.ike_sas().next().unwrap().remote().ip(), fam.0, "no move");
        }
    }
}

/// NOTES.md (RFC 7791): CLONE_IKE_SA_SUPPORTED in an INFORMATIONAL turns
/// the extension on, answered with ours; CLONE_IKE_SA outside an IKE SA
/// rekey is INVALID_SYNTAX and changes nothing.
#[test]
fn rfc7791_4_support_in_informational_and_misplaced_notifies() {
    let (mut a, mut b, now) = up(V6, "", "clone = false");
    assert!(!agreed(&b));
    let supported = Payload::Notify(Notify::new(NotifyType::CloneIkeSaSupported, vec![]));
    a.e.send_informational(now, "lab", vec![supported]).unwrap();
    run(&mut a, &mut b, now);
    assert!(!agreed(&b), "B does not support it: still off");
    let (mut a, mut b, now) = up(V4, "", "");
    let misplaced = Payload::Notify(Notify::new(NotifyType::CloneIkeSa, vec![]));
    a.e.send_informational(now, "lab", vec![misplaced]).unwrap();
    run(&mut a, &mut b, now);
    assert!(refused_with(&a, NotifyType::InvalidSyntax), "{:?}", a.events);
    assert_eq!((a.established(), b.established()), (1, 1), "nothing changed");
    assert_eq!(b.e.stats.clone_refused, 1, "counted");
}

/// RFC 7791 Appendix B.1-B.4 from config: a connection with a second
/// interface clones its IKE SA after IKE_AUTH, moves the clone there, and
/// opens that interface's child SA on the clone; the first interface's
/// child SA stays on the original. When the second interface goes, its
/// clone moves to the first with its child SA (MOBIKE), and back when it
/// returns. Without Clone IKE SA at the peer, everything goes on the one
/// IKE SA.
#[test]
fn rfc7791_appendix_b_one_ike_sa_per_interface_from_config() {
    for fam in [V4, V6] {
        let two = second(fam);
        let vpn1 = |local: &str, remote: &str| {
            format!("[[child]]\nname = \"vpn1\"\nlocal_ts = [\"{local}\"]\nremote_ts = [\"{remote}\"]\n")
        };
        let extra_a =
            format!("interfaces = [\"{two}\"]\n{}interface = \"{two}\"\n", vpn1("10.1.1.0/24", "10.2.1.0/24"));
        for clone_b in [true, false] {
            let extra_b = format!("clone = {clone_b}\n{}", vpn1("10.2.1.0/24", "10.1.1.0/24"));
            let (mut a, mut b, now) = common::pair_up(fam, &extra_a, &extra_b);
            let layout = |n: &Node| {
                let mut v: Vec<(IpAddr, usize)> = n.e.ike_sas().map(|s| (s.local().ip(), s.children().len())).collect();
                v.sort();
                v
            };
            if !clone_b {
                assert_eq!(layout(&a), vec![(fam.0, 2)], "{fam:?}: without the peer's support, one IKE SA");
                continue;
            }
            let mut want = vec![(fam.0, 1), (two, 1)];
            want.sort();
            assert_eq!(layout(&a), want, "{fam:?}: one IKE SA per interface, each with its child SA");
            assert_eq!((a.children(), b.children()), (2, 2));
            // The second interface goes: its clone moves to the first.
            a.e.local_addresses(now, &[fam.0]);
            run(&mut a, &mut b, now);
            assert_eq!(layout(&a), vec![(fam.0, 1), (fam.0, 1)], "{fam:?}: both on the first interface");
            // It comes back: the clone returns to it with its child SA.
            a.e.local_addresses(now, &[fam.0, two]);
            run(&mut a, &mut b, now);
            assert_eq!(layout(&a), want, "{fam:?}: the layout restored");
            assert_eq!(b.children(), 2);
        }
    }
}
