//! Multi-point SA in memory: one gateway (hub) and endpoints a, b, c, each
//! an `Engine`, wired by a queue of datagrams. Steps in the drafts' notation:
//!
//! ```text
//! Endpoint                                 Gateway
//! IKE_SA_INIT { SA, KE, Ni, V(MPSA) } -->
//!                  <-- { SA, KE, Nr, V(MPSA) }
//! IKE_AUTH { SK { IDi, AUTH, SA, TSi, TSr } } -->
//!                  <-- { SK { IDr, AUTH, SA, TSi, TSr } }
//!                  <-- INFORMATIONAL { SK { N(MPSA_PUT) } }
//! { SK { } } -->
//! ```

use std::time::{Duration, Instant};

use controlplane::codepoints::{NotifyType, ProtocolId};
use controlplane::crypto::SeededRandom;
use controlplane::daemon::view;
use controlplane::ike::engine::Error;
use controlplane::ike::Event;
use controlplane::mpsa::{GatewayGroup, GroupToml, MpsaPut, MpsaRole};
use controlplane::wire::{Notify, Payload};
use cpdp::msg::Command;

mod mpsa_common;
use mpsa_common::*;

#[test]
fn the_gateway_hands_one_group_sa_to_every_member_after_ike_auth() {
    let mut lab = Lab::new("");
    lab.connect_all();
    let a = group_sas(&lab.eps[0]);
    assert_eq!(a.len(), 1, "{:?}", lab.eps[0].events);
    for n in &lab.eps[1..] {
        assert_eq!(group_sas(n), a, "{}: the same SPI and keys everywhere", n.name);
    }
    let (spi, ek, ak, _, _) = &a[0];
    assert_eq!(ek.len(), 20, "aes128gcm16: key and salt");
    assert!(ak.is_empty());
    // The gateway installs nothing for the group and knows who has it.
    assert!(!lab.hub.dp.iter().any(|c| matches!(c, Command::InstallGroupSa { .. })));
    let info = view::groups(&lab.hub.e, lab.now);
    assert_eq!((info[0].members_up, info[0].delivered), (3, 3));
    assert_eq!(info[0].spi, format!("{spi:08x}"));
    assert_eq!(lab.hub.e.stats.mpsa_puts_sent, 3);
    let ep = view::groups(&lab.eps[0].e, lab.now);
    assert_eq!((ep[0].role.as_str(), ep[0].spi.as_str()), ("endpoint", info[0].spi.as_str()));
}

#[test]
fn a_peer_without_v_mpsa_gets_no_group_sa_and_its_ike_sa_works() {
    // c runs without MPSA (as a plain strongSwan client would).
    let mut lab = Lab::with("", [MpsaRole::Endpoint, MpsaRole::Endpoint, MpsaRole::Off]);
    lab.connect_all();
    assert!(group_sas(&lab.eps[2]).is_empty());
    assert_eq!(lab.eps[2].e.stats.mpsa_puts_refused, 0, "nothing was even offered");
    assert_eq!(lab.hub.e.stats.mpsa_puts_sent, 2);
    assert_eq!(view::groups(&lab.hub.e, lab.now)[0].members_up, 2);
}

#[test]
fn the_gateway_rekeys_the_group_before_its_lifetime_runs_out() {
    let mut lab = Lab::new("lifetime_secs = 100\nrollover1_secs = 2\nrollover2_secs = 5");
    lab.connect_all();
    let first = group_sas(&lab.eps[0])[0].clone();
    // At 80% of the lifetime a new SA goes to every member:
    //                  <-- INFORMATIONAL { SK { N(MPSA_PUT) } }
    lab.advance(Duration::from_secs(79));
    assert_eq!(group_sas(&lab.eps[0]).len(), 1);
    lab.advance(Duration::from_secs(2));
    for n in &lab.eps {
        let sas = group_sas(n);
        assert_eq!(sas.len(), 2, "{}: {:?}", n.name, n.events);
        assert_ne!(sas[1].0, first.0, "a new SPI");
        assert_ne!(sas[1].1, first.1, "new keys");
        assert_eq!((sas[1].3, sas[1].4), (2, 5), "with the rollover times");
        assert_eq!(sas[1], group_sas(&lab.eps[0])[1]);
    }
    assert_eq!(view::groups(&lab.hub.e, lab.now)[0].rekeys, 1);
    // The endpoint removes the group only if no new SA came before the
    // newest one's lifetime ran out.
    assert!(!lab.eps[0].dp.iter().any(|c| matches!(c, Command::DeleteGroup { .. })));
}

#[test]
fn an_endpoint_removes_the_group_when_its_lifetime_runs_out() {
    let mut lab = Lab::new("lifetime_secs = 100\nrollover1_secs = 2\nrollover2_secs = 5");
    lab.connect_all();
    // The hub goes away (its IKE SAs time out on its side only): no rekey
    // reaches a, whose group SA ends with its lifetime.
    let now = lab.now;
    lab.eps[0].e.handle_timeout(now + Duration::from_secs(99));
    lab.eps[0].e.handle_timeout(now + Duration::from_secs(101));
    lab.collect();
    lab.wire.clear();
    assert!(lab.eps[0].dp.iter().any(|c| matches!(c, Command::DeleteGroup { group } if group == "hub")));
    assert!(view::groups(&lab.eps[0].e, now + Duration::from_secs(101)).is_empty());
}

#[test]
fn a_member_that_leaves_triggers_a_rekey_and_never_gets_the_new_sa() {
    let mut lab = Lab::new("");
    lab.connect_all();
    let before = group_sas(&lab.eps[0]);
    // c deletes its IKE SA (INFORMATIONAL { SK { D } } -->): the hub makes a
    // new group SA for a and b.
    let now = lab.now;
    lab.eps[2].e.terminate(now, "hub").unwrap();
    lab.run();
    lab.advance(Duration::from_millis(10));
    let a = group_sas(&lab.eps[0]);
    let b = group_sas(&lab.eps[1]);
    let c = group_sas(&lab.eps[2]);
    assert_eq!(a.len(), 2, "{:?}", lab.hub.events);
    assert_eq!(a, b);
    assert_eq!(c, before, "c has only the old SA");
    let (new_spi, new_ek, _, _, _) = &a[1];
    assert!(c.iter().all(|(s, k, _, _, _)| s != new_spi && k != new_ek), "c holds nothing of the new SA");
    let info = &view::groups(&lab.hub.e, lab.now)[0];
    assert_eq!((info.members_up, info.delivered, info.rekeys), (2, 2, 1));
    assert!(lab.hub.events.iter().any(|e| matches!(e, Event::Mpsa { what, .. } if what.contains("c.lab left"))));
}

#[test]
fn an_ike_sa_rekey_is_not_a_member_leaving() {
    let mut lab = Lab::new("");
    lab.connect_all();
    let now = lab.now;
    lab.eps[0].e.rekey(now, "hub", true).unwrap();
    lab.run();
    lab.advance(Duration::from_millis(10));
    assert_eq!(group_sas(&lab.eps[1]).len(), 1, "no group rekey: {:?}", lab.hub.events);
    assert_eq!(view::groups(&lab.hub.e, lab.now)[0].delivered, 3);
}

/// mpsa-04 5.3: a member leaving gets the others a new SA even when it had
/// not acknowledged the current one yet (its answer lost on the way): it
/// may hold the SA all the same.
#[test]
fn mpsa_04_5_3_a_member_leaving_before_its_ack_still_rekeys() {
    let mut lab = Lab::new("");
    let now = lab.now;
    for i in 0..2 {
        lab.eps[i].e.initiate(now, "hub").unwrap();
    }
    lab.run();
    lab.eps[2].e.initiate(now, "hub").unwrap();
    lab.collect();
    let c_addr = lab.eps[2].addr;
    let mut lost = false;
    while let Some((to, from, data)) = lab.wire.pop_front() {
        // c's empty answer to N(MPSA_PUT) never reaches the hub.
        if !lost && from.ip().to_string() == c_addr && !group_sas(&lab.eps[2]).is_empty() {
            lost = true;
            continue;
        }
        let node = lab.nodes().find(|x| x.addr == to.ip().to_string()).unwrap();
        node.e.handle_datagram(now, to, from, &data);
        lab.collect();
    }
    assert!(lost);
    assert_eq!(view::groups(&lab.hub.e, lab.now)[0].delivered, 2, "c's ack never came");
    lab.eps[2].e.terminate(now, "hub").unwrap();
    lab.run();
    lab.advance(Duration::from_millis(10));
    let a = group_sas(&lab.eps[0]);
    assert_eq!(a.len(), 2, "a got a new SA: {:?}", lab.hub.events);
    assert!(group_sas(&lab.eps[2]).iter().all(|g| g.0 != a[1].0), "c never saw it");
    assert_eq!(view::groups(&lab.hub.e, lab.now)[0].rekeys, 1);
}

/// mpsa-04 5.3 (MAY), `rekey_on_join`: each member joining after another
/// has the current SA makes a new one for all, so the newcomer never holds
/// an SA that was sent with before it came. The first member takes the SA
/// made at start (nobody had it); a member's second IKE SA is no join.
#[test]
fn mpsa_04_5_3_rekey_on_join_keeps_newcomers_out_of_the_past() {
    let mut lab = Lab::new("rekey_on_join = true");
    let join = |lab: &mut Lab, i: usize| {
        let now = lab.now;
        lab.eps[i].e.initiate(now, "hub").unwrap();
        lab.run();
        lab.advance(Duration::from_millis(10));
    };
    join(&mut lab, 0);
    let first = group_sas(&lab.eps[0]);
    assert_eq!(first.len(), 1);
    assert_eq!(view::groups(&lab.hub.e, lab.now)[0].rekeys, 0, "nobody had the SA before a");
    join(&mut lab, 1);
    let (a, b) = (group_sas(&lab.eps[0]), group_sas(&lab.eps[1]));
    assert_eq!(a.len(), 2, "a got the new SA: {:?}", lab.hub.events);
    assert_eq!(b, a[1..], "b got only the new one");
    join(&mut lab, 2);
    let (a, c) = (group_sas(&lab.eps[0]), group_sas(&lab.eps[2]));
    assert_eq!(a.len(), 3);
    assert_eq!(c, a[2..], "c holds none of the SAs before it came");
    assert_eq!(view::groups(&lab.hub.e, lab.now)[0].rekeys, 2);
    assert!(lab.hub.events.iter().any(|e| matches!(e, Event::Mpsa { what, .. } if what.contains("c.lab joined"))));
    // An IKE SA rekey brings nobody new.
    let now = lab.now;
    lab.eps[0].e.rekey(now, "hub", true).unwrap();
    lab.run();
    lab.advance(Duration::from_millis(10));
    assert_eq!(view::groups(&lab.hub.e, lab.now)[0].rekeys, 2);
}

/// `gwctl group remove mesh c.lab`: c is expelled, the group rekeys at
/// once for a and b only (mpsa-04 5.3), and c, whose IKE SA and child SA
/// stay up, never gets the new SA nor any later one.
#[test]
fn an_expelled_member_gets_no_new_group_sa_and_keeps_its_ike_sa() {
    let mut lab = Lab::new("lifetime_secs = 100");
    lab.connect_all();
    let now = lab.now;
    assert_eq!(lab.hub.e.expel(now, "mesh", "c.lab").unwrap(), 1, "c held the group");
    lab.advance(Duration::from_millis(10));
    let (a, c) = (group_sas(&lab.eps[0]), group_sas(&lab.eps[2]));
    assert_eq!(a.len(), 2, "{:?}", lab.hub.events);
    assert_eq!(c.len(), 1, "c has the old SA only");
    assert!(c.iter().all(|g| g.0 != a[1].0 && g.1 != a[1].1));
    // The next timed rekey leaves c out too.
    lab.advance(Duration::from_secs(81));
    assert_eq!((group_sas(&lab.eps[0]).len(), group_sas(&lab.eps[2]).len()), (3, 1));
    assert!(lab.eps[2].e.ike_sas().any(|s| !s.children().is_empty()), "c's IKE SA and child SA stay");
    let info = &view::groups(&lab.hub.e, lab.now)[0];
    assert_eq!((info.members_up, info.delivered), (2, 2));
    // Names it cannot act on are errors that say so.
    let e = lab.hub.e.expel(now, "mesh", "c.lab").unwrap_err().to_string();
    assert!(e.contains("not a member"), "{e}");
    let e = lab.hub.e.expel(now, "nope", "a.lab").unwrap_err().to_string();
    assert!(e.contains("no group named \"nope\""), "{e}");
}

/// An endpoint whose IKE SA with the hub is deleted (by it or by the hub)
/// removes the group from its dataplane at once, not at the end of the
/// lifetime, and gets it again when it connects again; a hub that merely
/// stops answering leaves the mesh working (the lifetime test above).
#[test]
fn an_endpoint_whose_ike_sa_is_deleted_removes_the_group_and_rejoins() {
    let mut lab = Lab::new("");
    lab.connect_all();
    let deleted =
        |n: &Node| n.dp.iter().filter(|c| matches!(c, Command::DeleteGroup { group } if group == "hub")).count();
    // a deletes its IKE SA: INFORMATIONAL { SK { D } } -->
    let now = lab.now;
    lab.eps[0].e.terminate(now, "hub").unwrap();
    lab.run();
    assert_eq!(deleted(&lab.eps[0]), 1, "{:?}", lab.eps[0].events);
    assert!(view::groups(&lab.eps[0].e, lab.now).is_empty());
    assert_eq!(deleted(&lab.eps[1]), 0, "b still has its IKE SA and the group");
    // a comes back: IKE_AUTH, then the group SA (the one made after a left).
    lab.eps[0].e.initiate(now, "hub").unwrap();
    lab.run();
    lab.advance(Duration::from_millis(10));
    let (a, b) = (group_sas(&lab.eps[0]), group_sas(&lab.eps[1]));
    assert_eq!(a.last(), b.last(), "a holds the current SA again");
    assert_eq!(view::groups(&lab.eps[0].e, lab.now).len(), 1);
    // The hub deletes every member's IKE SA: <-- INFORMATIONAL { SK { D } }
    let now = lab.now;
    lab.hub.e.terminate(now, "members").unwrap();
    lab.run();
    for n in &lab.eps {
        assert!(view::groups(&n.e, lab.now).is_empty(), "{}: {:?}", n.name, n.events);
    }
    assert_eq!((deleted(&lab.eps[0]), deleted(&lab.eps[1]), deleted(&lab.eps[2])), (2, 1, 1));
}

/// A member whose control plane restarted comes back with INITIAL_CONTACT
/// (RFC 7296 2.4): the hub drops its old IKE SA, but nobody left, so no
/// group rekey; the new IKE SA gets the current group SA.
#[test]
fn a_member_restarting_with_initial_contact_is_no_leave() {
    let mut lab = Lab::new("");
    lab.connect_all();
    let current = group_sas(&lab.eps[0]);
    lab.eps[1].e = endpoint_engine_boot("b.lab", "192.0.2.12", "10.1.2.0/24", MpsaRole::Endpoint, 1);
    lab.eps[1].dp.clear();
    let now = lab.now;
    lab.eps[1].e.initiate(now, "hub").unwrap();
    lab.run();
    lab.advance(Duration::from_millis(10));
    assert_eq!(group_sas(&lab.eps[1]), current, "b has the current SA again: {:?}", lab.hub.events);
    assert_eq!(group_sas(&lab.eps[0]), current, "a saw no rekey");
    let info = &view::groups(&lab.hub.e, lab.now)[0];
    assert_eq!((info.rekeys, info.members_up, info.delivered), (0, 3, 3));
    assert_eq!(lab.hub.e.ike_sas().filter(|s| s.peer_id().is_some()).count(), 3, "b's old IKE SA is gone");
}

/// MPSA_PUT bodies that must be refused, each answered with its notify and
/// nothing installed.
#[test]
fn hostile_mpsa_puts_are_refused_and_nothing_is_installed() {
    let mut lab = Lab::new("");
    lab.connect_all();
    let good = MpsaPut::from_notify(&a_put()).unwrap();
    let mut cases: Vec<(&str, Notify, NotifyType)> = Vec::new();
    let mut short_nonce = good.clone();
    short_nonce.nonce.truncate(15);
    cases.push(("nonce of 15 octets", short_nonce.to_notify(), NotifyType::InvalidSyntax));
    let mut long_nonce = good.clone();
    long_nonce.nonce = vec![1; 257];
    cases.push(("nonce of 257 octets", long_nonce.to_notify(), NotifyType::InvalidSyntax));
    let mut no_skd = good.to_notify();
    no_skd.data.truncate(no_skd.data.len() - 3);
    cases.push(("cut short", no_skd, NotifyType::InvalidSyntax));
    let mut wrong_len = good.to_notify();
    wrong_len.data[3] ^= 0x20;
    cases.push(("bad proposal length", wrong_len, NotifyType::InvalidSyntax));
    let mut short_skd = good.clone();
    short_skd.sk_d = controlplane::crypto::Secret::new(vec![1; 8]);
    cases.push(("SK_d too short", short_skd.to_notify(), NotifyType::InvalidSyntax));
    let mut unknown = good.to_notify();
    // An unknown transform type in place of ROLL2 (the last one).
    let n = unknown.data.len();
    let at = n - 16; // ROLL2: 8-octet transform header + 8-octet TLV
    unknown.data[at + 4] = 250;
    cases.push(("unknown transform", unknown, NotifyType::NoProposalChosen));
    let mut esp = good.to_notify();
    esp.protocol = ProtocolId::Ike;
    cases.push(("not ESP", esp, NotifyType::NoProposalChosen));
    for (what, n, want) in cases {
        let before = group_sas(&lab.eps[0]).len();
        let now = lab.now;
        lab.hub.e.send_informational(now, "members", vec![Payload::Notify(n)]).unwrap();
        lab.run();
        assert_eq!(group_sas(&lab.eps[0]).len(), before, "{what}: nothing installed");
        let refused = lab
            .hub
            .events
            .iter()
            .filter(|e| matches!(e, Event::Failed { why: Error::Refused(n), .. } if *n == want))
            .count();
        assert!(refused >= 3, "{what}: every endpoint answered {want:?}: {:?}", lab.hub.events);
        lab.hub.events.clear();
    }
    assert!(lab.eps[0].e.stats.mpsa_puts_refused >= 7);
}

/// A well-formed N(MPSA_PUT) of a group nobody here belongs to.
fn a_put() -> Notify {
    put_with_spi(0x4242_4242)
}

fn put_with_spi(spi: u32) -> Notify {
    let g: GroupToml = toml::from_str("name = \"x\"\nmembers = [\"a.lab\"]").unwrap();
    let now = Instant::now();
    GatewayGroup::new(g.build().unwrap(), now, spi, &mut SeededRandom::new(7)).put(now).to_notify()
}

/// A group SA whose SPI is one of the endpoint's child SAs' inbound SPIs
/// is refused before the answer (NO_PROPOSAL_CHOSEN), not acknowledged and
/// then refused by the dataplane; nothing is installed.
#[test]
fn a_group_spi_that_clashes_with_a_child_spi_is_refused_before_the_ack() {
    let mut lab = Lab::new("");
    lab.connect_all();
    let child_in = lab.eps[0].e.ike_sas().flat_map(|s| s.children().iter().map(|c| c.spi_in)).next().unwrap();
    let before = group_sas(&lab.eps[0]).len();
    let now = lab.now;
    lab.hub.e.send_informational(now, "members", vec![Payload::Notify(put_with_spi(child_in))]).unwrap();
    lab.run();
    assert_eq!(group_sas(&lab.eps[0]).len(), before, "nothing installed");
    assert!(lab
        .hub
        .events
        .iter()
        .any(|e| matches!(e, Event::Failed { why: Error::Refused(NotifyType::NoProposalChosen), .. })));
    assert!(lab.eps[0]
        .events
        .iter()
        .any(|e| matches!(e, Event::Mpsa { what, .. } if what.contains("already an inbound SA"))));
}

#[test]
fn a_gateway_never_accepts_mpsa_put() {
    let mut lab = Lab::new("");
    lab.connect_all();
    // An endpoint turns the tables: INFORMATIONAL { SK { N(MPSA_PUT) } } -->
    let n = a_put();
    let now = lab.now;
    lab.eps[0].e.send_informational(now, "hub", vec![Payload::Notify(n)]).unwrap();
    lab.run();
    assert!(!lab.hub.dp.iter().any(|c| matches!(c, Command::InstallGroupSa { .. })));
    assert_eq!(lab.hub.e.stats.mpsa_puts_refused, 1);
    assert!(lab.eps[0]
        .events
        .iter()
        .any(|e| matches!(e, Event::Failed { why: Error::Refused(NotifyType::InvalidSyntax), .. })));
    // And an MPSA_PUT on an IKE SA that did not negotiate MPSA is refused too.
    let mut lab = Lab::with("", [MpsaRole::Off, MpsaRole::Endpoint, MpsaRole::Endpoint]);
    lab.connect_all();
    let now = lab.now;
    lab.hub.e.send_informational(now, "members", vec![Payload::Notify(a_put())]).unwrap();
    lab.run();
    assert!(group_sas(&lab.eps[0]).is_empty());
    assert_eq!(lab.eps[0].e.stats.mpsa_puts_refused, 1);
}

#[test]
fn an_mpsa_put_that_overtakes_the_ike_auth_response_is_retransmitted_and_installed() {
    let mut lab = Lab::new("");
    let now = lab.now;
    lab.eps[0].e.initiate(now, "hub").unwrap();
    // IKE_SA_INIT both ways, then IKE_AUTH request to the hub.
    lab.collect();
    for _ in 0..3 {
        let (to, from, data) = lab.wire.pop_front().unwrap();
        let node = lab.nodes().find(|x| x.addr == to.ip().to_string()).unwrap();
        node.e.handle_datagram(now, to, from, &data);
        lab.collect();
    }
    // The hub answered IKE_AUTH and sent N(MPSA_PUT): deliver them swapped.
    let auth = lab.wire.pop_front().unwrap();
    let put = lab.wire.pop_front().unwrap();
    assert!(lab.wire.is_empty());
    lab.eps[0].e.handle_datagram(now, put.0, put.1, &put.2);
    lab.eps[0].e.handle_datagram(now, auth.0, auth.1, &auth.2);
    lab.collect();
    assert!(group_sas(&lab.eps[0]).is_empty(), "the early request was left unanswered");
    assert_eq!(lab.eps[0].e.stats.mpsa_puts_refused, 0);
    // The hub retransmits it (RFC 7296 2.1) and now it goes in.
    lab.advance(Duration::from_secs(2));
    assert_eq!(group_sas(&lab.eps[0]).len(), 1, "{:?}", lab.eps[0].events);
    assert_eq!(view::groups(&lab.hub.e, lab.now)[0].delivered, 1);
}

/// What endpoint `i`'s dataplane is told after it restarts at `lab.now`
/// (its Hello), up to SyncDone.
fn resync(lab: &mut Lab, i: usize) -> Vec<Command> {
    lab.collect();
    let before = lab.eps[i].dp.len();
    let now = lab.now;
    lab.eps[i].e.dataplane_event(now, &cpdp::msg::Event::Hello { generation: 2, ports: vec![] });
    lab.collect();
    let sent = lab.eps[i].dp[before..].to_vec();
    assert_eq!(sent.last(), Some(&Command::SyncDone), "ends with SyncDone");
    sent
}

fn group_installs(cmds: &[Command]) -> Vec<(u32, Vec<u8>, u32, u32)> {
    cmds.iter()
        .filter_map(|c| match c {
            Command::InstallGroupSa { sa, rollover1_secs, rollover2_secs, .. } => {
                Some((sa.spi, sa.enc_key.to_vec(), *rollover1_secs, *rollover2_secs))
            }
            _ => None,
        })
        .collect()
}

/// NOTES.md "MPSA" / DESIGN.md: a restarted dataplane gets everything
/// again before SyncDone, group SAs included (endpoint-to-endpoint traffic
/// rides on them, not on a child SA), with the same SPI and keys; no rekey
/// is needed for the group traffic to come back.
#[test]
fn a_restarted_dataplane_gets_the_group_sa_again_before_sync_done() {
    let mut lab = Lab::new("");
    lab.connect_all();
    let (spi, key, _, _, _) = group_sas(&lab.eps[0]).remove(0);
    let cmds = resync(&mut lab, 0);
    assert_eq!(group_installs(&cmds), vec![(spi, key, 0, 0)], "the one group SA, all at once");
    // Its child SA and policy too, and the group before SyncDone.
    assert!(cmds.iter().any(|c| matches!(c, Command::InstallSa(_))));
    assert!(cmds.iter().any(|c| matches!(c, Command::SetPolicy { .. })));
    let hub_puts = lab.hub.e.stats.mpsa_puts_sent;
    lab.run();
    assert_eq!(lab.hub.e.stats.mpsa_puts_sent, hub_puts, "the gateway rekeyed nothing");
}

/// mpsa-04 5.3 (rollover): a dataplane restarted during a group rekey's
/// rollover gets the old SA (sent with) and the new one with what is left
/// of Rollover1 and Rollover2; once the rollover is over, only the new one.
#[test]
fn a_dataplane_restarted_mid_rollover_resumes_it_with_the_time_left() {
    let mut lab = Lab::new("lifetime_secs = 100\nrollover1_secs = 4\nrollover2_secs = 10");
    lab.connect_all();
    lab.advance(Duration::from_secs(81));
    let sas = group_sas(&lab.eps[1]);
    assert_eq!(sas.len(), 2, "rekeyed: {:?}", lab.eps[1].events);
    lab.advance(Duration::from_secs(3));
    let got = group_installs(&resync(&mut lab, 1));
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!((got[0].0, got[0].2, got[0].3), (sas[0].0, 0, 0), "the old SA first, sent with");
    assert_eq!(got[1].0, sas[1].0);
    // The rekey went out at 81 s (the first timeout after 80% of 100 s),
    // 3 s ago: 1 s left of Rollover1, 7 s of Rollover2.
    assert_eq!((got[1].2, got[1].3), (1, 7), "what is left of 4 / 10 s");
    assert_eq!(got[1].1, sas[1].1, "the new keys");
    lab.advance(Duration::from_secs(10));
    let got = group_installs(&resync(&mut lab, 1));
    assert_eq!(got.iter().map(|g| (g.0, g.2, g.3)).collect::<Vec<_>>(), vec![(sas[1].0, 0, 0)], "the old SA is gone");
}

/// A group whose lifetime ran out (no rekey reached the endpoint) is not
/// installed again by a restart.
#[test]
fn a_restart_after_the_group_expired_installs_no_group_sa() {
    let mut lab = Lab::new("lifetime_secs = 100\nrollover1_secs = 2\nrollover2_secs = 5");
    lab.connect_all();
    let now = lab.now;
    lab.eps[0].e.handle_timeout(now + Duration::from_secs(101));
    lab.collect();
    lab.wire.clear();
    lab.now = now + Duration::from_secs(101);
    assert!(group_installs(&resync(&mut lab, 0)).is_empty());
}
