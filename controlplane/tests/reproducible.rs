//! A seeded engine is reproducible: every random value (SPIs, nonces, IVs,
//! cookies, DH private values of every group) comes from the generator it
//! is given, so the same seed gives the same octets on the wire, and a
//! test can pin nonces to pick a branch of the rekey-collision rules
//! (RFC 7296 2.8.1 for child SAs, 2.8.2 for the IKE SA), one test each.

mod common;

use std::time::{Duration, Instant};

use common::{conn, run, Node, V4};
use controlplane::ike::{Event, Output};
use cpdp::msg::Command;

/// Everything the two engines emit while they set up an IKE SA with
/// `group`, rekey the child (PFS) and the IKE SA, and delete it: each
/// datagram, and each SA's keys as installed.
fn transcript(seed: u64, group: &str) -> Vec<Vec<u8>> {
    let props =
        format!("ike_proposals = [\"aes128gcm16-prfsha256-{group}\"]\nesp_proposals = [\"aes128gcm16-{group}\"]");
    let ca = conn(
        "lab",
        "initiator",
        V4.0,
        &V4.1.to_string(),
        ("left.lab", "right.lab"),
        ("10.1.0.0/16", "10.2.0.0/16"),
        &props,
    );
    let cb = conn("lab", "responder", V4.1, "%any", ("right.lab", "left.lab"), ("10.2.0.0/16", "10.1.0.0/16"), &props);
    let mut a = Node::seeded(vec![ca], seed);
    let mut b = Node::seeded(vec![cb], seed + 1);
    let now = Instant::now();
    let mut out = Vec::new();
    // Drains `from` into `to`, recording; true when anything was sent.
    fn pass(from: &mut Node, to: &mut Node, now: Instant, out: &mut Vec<Vec<u8>>) -> bool {
        let mut sent = false;
        while let Some(o) = from.e.poll_output() {
            match o {
                Output::Send { local, remote, data } => {
                    sent = true;
                    out.push(data.clone());
                    to.e.handle_datagram(now, remote, local, &data);
                }
                Output::Dataplane(Command::InstallSa(s)) => {
                    out.push([s.spi.to_be_bytes().as_slice(), &s.enc_key, &s.auth_key].concat())
                }
                _ => {}
            }
        }
        sent
    }
    let step = |a: &mut Node, b: &mut Node, out: &mut Vec<Vec<u8>>| {
        for _ in 0..50 {
            let ab = pass(a, b, now, out);
            let ba = pass(b, a, now, out);
            if !ab && !ba {
                return;
            }
        }
    };
    a.e.initiate(now, "lab").unwrap();
    step(&mut a, &mut b, &mut out);
    a.e.rekey(now, "lab", false).unwrap();
    step(&mut a, &mut b, &mut out);
    b.e.rekey(now, "lab", true).unwrap();
    step(&mut a, &mut b, &mut out);
    a.e.terminate(now, "lab").unwrap();
    step(&mut a, &mut b, &mut out);
    assert_eq!((a.e.ike_sas().count(), b.e.ike_sas().count()), (0, 0), "{group}: the run went through");
    out
}

#[test]
fn a_seeded_exchange_emits_the_same_octets_every_run_with_every_group() {
    for group in ["x25519", "ecp256", "modp2048"] {
        let first = transcript(7, group);
        assert!(first.len() > 12, "{group}: {} items", first.len());
        assert_eq!(first, transcript(7, group), "{group}: same seed, same octets");
        assert_ne!(first, transcript(8, group), "{group}: another seed, other octets");
    }
}

/// A and B with pinned nonces, an IKE SA and one child SA up.
fn pinned_pair(a_start: u8, a_step: i8, b_start: u8) -> (Node, Node, Instant) {
    common::pinned_pair(V4, (a_start, a_step), b_start, "", "")
}

/// Both rekey at once; both requests cross before either answer. Returns
/// A's inbound SPI of the SA B's exchange made and of the one A's made.
fn cross(a: &mut Node, b: &mut Node, now: Instant, ike: bool) -> (Vec<Event>, Vec<Event>) {
    a.events.clear();
    a.e.rekey(now, "lab", ike).unwrap();
    b.e.rekey(now, "lab", ike).unwrap();
    let (ra, rb) = (a.take(), b.take());
    for d in rb {
        a.e.handle_datagram(now, d.remote, d.local, &d.data);
    }
    for d in ra {
        b.e.handle_datagram(now, d.remote, d.local, &d.data);
    }
    let mid = a.take();
    let seen = std::mem::take(&mut a.events);
    for d in mid {
        b.e.handle_datagram(now, d.remote, d.local, &d.data);
    }
    run(a, b, now);
    let later = std::mem::take(&mut a.events);
    (seen, later)
}

fn child_up(events: &[Event]) -> Vec<u32> {
    events.iter().filter_map(|e| if let Event::ChildUp { spi_in, .. } = e { Some(*spi_in) } else { None }).collect()
}

fn survivors(n: &Node) -> Vec<u32> {
    n.e.ike_sas().flat_map(|s| s.children()).map(|c| c.spi_in).collect()
}

/// RFC 7296 2.8.1: A's nonces rise from 0x10 and B's from 0x80, so A's
/// rekey exchange (Ni = 0x11, Nr = 0x81) holds the lowest nonce of the
/// four: the SA it made is redundant and A deletes it; B deletes the old.
#[test]
fn rfc7296_2_8_1_child_collision_our_exchange_lowest_we_delete_our_new_sa() {
    let (mut a, mut b, now) = pinned_pair(0x10, 1, 0x80);
    let (first, later) = cross(&mut a, &mut b, now, false);
    // A answered B's request first (its SA), then got B's answer (its own).
    let (theirs, ours) = (child_up(&first), child_up(&later));
    assert_eq!((theirs.len(), ours.len()), (1, 1), "{first:?} {later:?}");
    run(&mut a, &mut b, now + Duration::from_secs(1));
    assert_eq!(survivors(&a), theirs, "the SA of B's exchange stays");
    assert_eq!((a.children(), b.children()), (1, 1));
    assert_eq!(a.policy("10.2.0.0/16"), a.e.ike_sas().next().map(|s| s.children()[0].spi_in));
}

/// RFC 7296 2.8.1: A's nonces fall from 0x40, so its answer to B (0x3e)
/// is lower than its own request's (0x3f): B's exchange holds the lowest
/// nonce, B deletes the SA it made, and A deletes the old one.
#[test]
fn rfc7296_2_8_1_child_collision_their_exchange_lowest_they_delete_their_new_sa() {
    let (mut a, mut b, now) = pinned_pair(0x40, -1, 0x80);
    let (first, later) = cross(&mut a, &mut b, now, false);
    let ours = child_up(&later);
    assert_eq!((child_up(&first).len(), ours.len()), (1, 1));
    run(&mut a, &mut b, now + Duration::from_secs(1));
    assert_eq!(survivors(&a), ours, "the SA of A's exchange stays");
    assert_eq!((a.children(), b.children()), (1, 1));
    assert_eq!(b.policy("10.1.0.0/16"), b.e.ike_sas().next().map(|s| s.children()[0].spi_in));
}

/// RFC 7296 2.8.2: both rekey the IKE SA at once with A's exchange holding
/// the lowest nonce: the IKE SA it made is deleted by A, B's survives
/// (A is its responder), and the child SA moved to it.
#[test]
fn rfc7296_2_8_2_ike_collision_our_exchange_lowest_theirs_survives() {
    let (mut a, mut b, now) = pinned_pair(0x10, 1, 0x80);
    cross(&mut a, &mut b, now, true);
    let left: Vec<bool> = a.e.ike_sas().map(|s| s.initiator()).collect();
    assert_eq!(left, [false], "only B's new IKE SA, where A is the responder");
    assert_eq!(b.e.ike_sas().map(|s| s.initiator()).collect::<Vec<_>>(), [true]);
    assert_eq!((a.children(), b.children()), (1, 1), "the child moved to the survivor");
}

/// RFC 7296 2.8.2, the other way: B's exchange holds the lowest nonce, so
/// A's new IKE SA (A its initiator) survives.
#[test]
fn rfc7296_2_8_2_ike_collision_their_exchange_lowest_ours_survives() {
    let (mut a, mut b, now) = pinned_pair(0x40, -1, 0x80);
    cross(&mut a, &mut b, now, true);
    let left: Vec<bool> = a.e.ike_sas().map(|s| s.initiator()).collect();
    assert_eq!(left, [true], "only A's new IKE SA");
    assert_eq!((a.children(), b.children()), (1, 1));
}
