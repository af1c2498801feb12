//! MOBIKE-X (draft-mglt-ipsec-mm-mobikex-00, NOTES.md) between two
//! engines in memory, IPv4 and IPv6: the version negotiated, a CPE adding
//! its second address to selected child SAs and removing the first, the
//! CHECK bit, alternate addresses with multihoming information, and every
//! malformed or refused request answered with the notify the draft names,
//! nothing changed, counted.

mod common;

use std::net::IpAddr;
use std::time::Instant;

use common::{conn, run, Node, V4, V6};
use controlplane::codepoints::NotifyType;
use controlplane::ike::engine::{AddressChange, Error};
use controlplane::ike::Event;
use controlplane::mobikex::param::{self, AddressClass, Multihoming, Reachability};
use controlplane::mobikex::{version, ActionKind, IpParam, Param, Version};
use controlplane::wire::{Notify, Payload};
use cpdp::msg::Command;

const VOICE_A: &str = "[[child]]\nname = \"voice\"\nlocal_ts = [\"10.88.1.0/24\"]\nremote_ts = [\"10.88.2.0/24\"]\n";
const VOICE_B: &str = "[[child]]\nname = \"voice\"\nlocal_ts = [\"10.88.2.0/24\"]\nremote_ts = [\"10.88.1.0/24\"]\n";

/// A (the CPE, initiator) and B (the hub, responder), up with two child
/// SAs: "lab" and "voice".
fn up(fam: (IpAddr, IpAddr), extra_a: &str, extra_b: &str) -> (Node, Node, Instant) {
    let ids = ("a.lab", "b.lab");
    let ca = conn(
        "lab",
        "initiator",
        fam.0,
        &fam.1.to_string(),
        ids,
        ("10.1.0.0/16", "10.2.0.0/16"),
        &format!("{extra_a}\n{VOICE_A}"),
    );
    let cb = conn(
        "lab",
        "responder",
        fam.1,
        "%any",
        ("b.lab", "a.lab"),
        ("10.2.0.0/16", "10.1.0.0/16"),
        &format!("{extra_b}\n{VOICE_B}"),
    );
    let (mut a, mut b) = (Node::seeded(vec![ca], 1), Node::seeded(vec![cb], 2));
    let now = Instant::now();
    a.e.initiate(now, "lab").unwrap();
    run(&mut a, &mut b, now);
    assert_eq!((a.children(), b.children()), (2, 2));
    (a, b, now)
}

/// The CPE's second uplink address.
fn second(fam: (IpAddr, IpAddr)) -> IpAddr {
    match fam.0 {
        IpAddr::V4(_) => "10.78.0.1".parse().unwrap(),
        IpAddr::V6(_) => "fd78::1".parse().unwrap(),
    }
}

/// A's operator asks for a MOBIKE-X action.
fn ask(
    n: &mut Node,
    now: Instant,
    kind: ActionKind,
    addr: IpAddr,
    old: Option<IpAddr>,
    children: &[&str],
    check: bool,
) -> Result<usize, Error> {
    let children = children.iter().map(|c| c.to_string()).collect();
    n.e.change_addresses(now, "lab", &AddressChange { kind, addr, old, children, check })
}

fn version_of(n: &Node) -> Option<Version> {
    n.e.ike_sas().next().unwrap().established().unwrap().mobike.as_ref().map(|m| m.version)
}

/// A child SA's inbound SPI by its config name.
fn child(n: &Node, name: &str) -> u32 {
    let sa = n.e.ike_sas().next().unwrap();
    let ci = n.e.connections()[0].children.iter().position(|c| c.name == name).unwrap();
    sa.children().iter().find(|c| c.cfg == ci).unwrap().spi_in
}

fn paths(n: &Node, spi: u32) -> Vec<(IpAddr, IpAddr)> {
    n.e.ike_sas().next().unwrap().child(spi).unwrap().paths.clone()
}

/// The last SetSaPaths the dataplane got for handle `spi`.
fn dp_paths(n: &Node, spi: u32) -> Option<Vec<(IpAddr, IpAddr)>> {
    n.dp.iter().rev().find_map(|c| match c {
        Command::SetSaPaths { spi: s, paths, .. } if *s == spi => Some(paths.clone()),
        _ => None,
    })
}

fn refused(n: &Node) -> Vec<NotifyType> {
    n.events
        .iter()
        .filter_map(|e| if let Event::MobikeRefused { notify, .. } = e { Some(*notify) } else { None })
        .collect()
}

fn failed_with(n: &Node, t: NotifyType) -> bool {
    n.events.iter().any(|e| matches!(e, Event::Failed { why: Error::Refused(x), .. } if *x == t))
}

fn note(t: NotifyType, p: &[Param]) -> Payload {
    Payload::Notify(Notify::new(t, param::emit(p)))
}

/// MOBIKE-X 6.1, 7.1.1: both sides of ours agree on version 2; a side
/// that speaks only MOBIKE gets MOBIKE (RFC 4555), and one without MOBIKE
/// none.
#[test]
fn mobikex_7_1_1_version_negotiation() {
    let (a, b, _) = up(V4, "", "");
    assert_eq!((version_of(&a), version_of(&b)), (Some(Version::MobikeX), Some(Version::MobikeX)));
    for (ea, eb) in [("mobikex = false", ""), ("", "mobikex = false")] {
        let (a, b, _) = up(V4, ea, eb);
        assert_eq!((version_of(&a), version_of(&b)), (Some(Version::Mobike), Some(Version::Mobike)), "{ea}{eb}");
    }
    let (mut a, b, now) = up(V4, "", "mobike = false");
    assert_eq!((version_of(&a), version_of(&b)), (None, None));
    // MOBIKE-X actions need MOBIKE-X.
    let r = ask(&mut a, now, ActionKind::Add, second(V4), None, &[], false);
    assert_eq!(r, Err(Error::CannotMove("lab".into())));
}

/// MOBIKE-X 5.2, 6.7, 6.8, 7.6: the CPE adds its second address to the
/// "voice" child SA only (a SELECTOR naming its SPI), then removes the
/// first: both ends send voice on the second path, "lab" stays on the
/// first, and the IKE SA does not move (7.6: ADD and REMOVE concern child
/// SAs).
#[test]
fn mobikex_7_6_add_then_remove_on_selected_child_sas() {
    for fam in [V4, V6] {
        let (mut a, mut b, now) = up(fam, "", "");
        let (voice_a, voice_b) = (child(&a, "voice"), child(&b, "voice"));
        let (lab_a, lab_b) = (child(&a, "lab"), child(&b, "lab"));
        let two = second(fam);
        assert_eq!(ask(&mut a, now, ActionKind::Add, two, None, &["voice"], false), Ok(1));
        run(&mut a, &mut b, now);
        assert_eq!(paths(&b, voice_b), [(fam.1, fam.0), (fam.1, two)], "B: the new path after the old");
        assert_eq!(paths(&a, voice_a), [(fam.0, fam.1), (two, fam.1)]);
        assert_eq!(dp_paths(&b, voice_b), Some(vec![(fam.1, fam.0), (fam.1, two)]), "B's dataplane has both");
        assert_eq!(dp_paths(&a, voice_a), Some(vec![(fam.0, fam.1), (two, fam.1)]));
        assert!(paths(&b, lab_b).is_empty() && dp_paths(&b, lab_b).is_none(), "lab was not selected");
        assert_eq!(ask(&mut a, now, ActionKind::Remove, fam.0, None, &["voice"], false), Ok(1));
        run(&mut a, &mut b, now);
        assert_eq!(paths(&b, voice_b), [(fam.1, two)]);
        assert_eq!(paths(&a, voice_a), [(two, fam.1)]);
        assert_eq!(dp_paths(&b, voice_b), Some(vec![(fam.1, two)]));
        assert!(paths(&a, lab_a).is_empty(), "lab still follows the IKE SA");
        assert_eq!(b.e.ike_sas().next().unwrap().remote().ip(), fam.0, "the IKE SA stays");
        assert!(refused(&b).is_empty(), "{:?}", b.events);
        assert!(a.events.iter().any(|e| matches!(e, Event::PathsChanged { spi_in, .. } if *spi_in == voice_a)));
    }
}

/// MOBIKE-X 6.8: removing a child SA's last address closes it: the
/// answer carries CLOSING_SA with the action's ID, and the SA is deleted.
#[test]
fn mobikex_6_8_removing_the_last_address_closes_the_sa() {
    let (mut a, mut b, now) = up(V4, "", "");
    let voice_a = child(&a, "voice");
    ask(&mut a, now, ActionKind::Remove, V4.0, None, &["voice"], false).unwrap();
    run(&mut a, &mut b, now);
    assert_eq!((a.children(), b.children()), (1, 1), "voice is gone on both sides");
    assert!(a.e.ike_sas().next().unwrap().child(voice_a).is_none());
    assert!(refused(&b).is_empty());
}

/// MOBIKE-X 5.3, 11.4.3: with the CHECK bit the responder only says
/// whether it would; nothing changes.
#[test]
fn mobikex_5_3_check_changes_nothing() {
    let (mut a, mut b, now) = up(V6, "", "");
    let voice_b = child(&b, "voice");
    ask(&mut a, now, ActionKind::Add, second(V6), None, &["voice"], true).unwrap();
    run(&mut a, &mut b, now);
    assert!(paths(&b, voice_b).is_empty() && dp_paths(&b, voice_b).is_none());
    assert!(a.events.iter().any(|e| matches!(e, Event::Checked { action: ActionKind::Add, .. })));
    // A check the responder would refuse: a loopback address.
    ask(&mut a, now, ActionKind::Add, "::1".parse().unwrap(), None, &[], true).unwrap();
    run(&mut a, &mut b, now);
    assert!(failed_with(&a, NotifyType::UnacceptableAddresses), "{:?}", a.events);
}

/// MOBIKE-X 7.4: UPDATE with explicit OLD and NEW moves the IKE SA and
/// every child SA (the default selection); the responder follows.
#[test]
fn mobikex_7_4_update_with_old_and_new() {
    for fam in [V4, V6] {
        let (mut a, mut b, now) = up(fam, "", "");
        a.e.move_to(now, "lab", second(fam)).unwrap();
        run(&mut a, &mut b, now);
        assert_eq!(b.e.ike_sas().next().unwrap().remote().ip(), second(fam));
        assert_eq!(a.e.ike_sas().next().unwrap().local().ip(), second(fam));
        assert!(refused(&b).is_empty(), "{:?}", b.events);
        assert_eq!(b.e.ike_sas().next().unwrap().established().unwrap().mobike.as_ref().unwrap().moves, 1);
    }
}

/// MOBIKE-X 7.4: a multihomed child SA's replaced address is replaced in
/// its paths; the others stay.
#[test]
fn mobikex_7_4_update_of_a_multihomed_sa_replaces_that_address_only() {
    let (mut a, mut b, now) = up(V4, "", "");
    let voice_b = child(&b, "voice");
    let two = second(V4);
    ask(&mut a, now, ActionKind::Add, two, None, &["voice"], false).unwrap();
    run(&mut a, &mut b, now);
    let three: IpAddr = "10.79.0.1".parse().unwrap();
    a.e.move_to(now, "lab", three).unwrap();
    run(&mut a, &mut b, now);
    assert_eq!(paths(&b, voice_b), [(V4.1, three), (V4.1, two)]);
    assert_eq!(b.e.ike_sas().next().unwrap().remote().ip(), three);
}

/// The bad inputs of issue 16, each answered with its notify, nothing
/// changed, counted (MOBIKE-X sections 7.4, 7.6, 8, 9, 11.3).
#[test]
fn mobikex_bad_requests_get_their_notify_and_change_nothing() {
    let spi = |v: u32| Param::Spi(v.to_be_bytes().to_vec());
    let mut two = IpParam::header(second(V4));
    two.new = true;
    let mut mixed = two;
    mixed.header = false;
    mixed.inner = true;
    let mut old = IpParam::header(V4.0);
    old.old = true;
    let mut stranger = IpParam::header("10.99.0.1".parse().unwrap());
    stranger.old = true;
    let mut outside = IpParam::header("10.200.0.1".parse().unwrap());
    outside.header = false;
    outside.inner = true;
    let cases: Vec<(&str, Vec<Payload>, NotifyType)> = vec![
        (
            "a SELECTOR with an unknown parameter",
            vec![
                Payload::Notify(Notify::new(NotifyType::Selector, vec![9, 0, 0, 0])),
                note(NotifyType::AddSaAddress, &[Param::Id(1)]),
                note(NotifyType::EndOfSelector, &[]),
            ],
            NotifyType::UnacceptableParameter,
        ),
        (
            "SELECTORs that no action follows",
            vec![note(NotifyType::Selector, &[spi(1)]), note(NotifyType::EndOfSelector, &[])],
            NotifyType::UnexpectedPayloadAfterSelector,
        ),
        (
            "a SELECTOR naming an SA of someone else",
            vec![
                note(NotifyType::Selector, &[spi(0x0bad_0bad)]),
                note(NotifyType::AddSaAddress, &[]),
                note(NotifyType::EndOfSelector, &[]),
            ],
            NotifyType::UnmatchedSelectorSet,
        ),
        (
            "an action's malformed IP parameter",
            vec![note(NotifyType::AddSaAddress, &[]).with_data(vec![3, 0x60, 0, 0])],
            NotifyType::UnacceptableParameter,
        ),
        (
            "OLD and NEW at different places",
            vec![note(NotifyType::UpdateSaAddresses, &[Param::Ip(old), Param::Ip(mixed)])],
            NotifyType::UnacceptableParameter,
        ),
        (
            "two NEW addresses",
            vec![note(NotifyType::UpdateSaAddresses, &[Param::Ip(two), Param::Ip(two)])],
            NotifyType::UnacceptableParameter,
        ),
        (
            "an OLD address the SAs do not have",
            vec![note(NotifyType::UpdateSaAddresses, &[Param::Ip(stranger)])],
            NotifyType::UnmatchedSelectorSet,
        ),
        (
            "an inner address outside the selectors",
            vec![note(NotifyType::AddSaAddress, &[Param::Ip(outside)])],
            NotifyType::DoesNotFitSpd,
        ),
        (
            "a VERSION parameter in an action",
            vec![note(
                NotifyType::AddSaAddress,
                &[Param::Version(vec![controlplane::codepoints::MobikeVersion::MobikeX])],
            )],
            NotifyType::UnacceptableParameter,
        ),
    ];
    for (what, p, want) in cases {
        let (mut a, mut b, now) = up(V4, "", "");
        let before = b.e.stats.mobike_refused;
        a.e.send_informational(now, "lab", p).unwrap();
        run(&mut a, &mut b, now);
        assert!(failed_with(&a, want), "{what}: {:?}", a.events);
        assert_eq!(refused(&b).first(), Some(&want), "{what}");
        assert!(b.e.stats.mobike_refused > before, "{what}: counted");
        assert!(
            b.dp.iter().all(|c| !matches!(c, Command::SetSaPaths { .. } | Command::UpdateSaAddresses { .. })),
            "{what}"
        );
        assert_eq!(b.e.ike_sas().next().unwrap().remote().ip(), V4.0, "{what}");
    }
}

/// MOBIKE-X section 10: the error answers an action with its ID.
#[test]
fn mobikex_10_the_refusal_carries_the_id() {
    let (mut a, mut b, now) = up(V4, "", "");
    let p = vec![note(
        NotifyType::AddSaAddress,
        &[Param::Ip(IpParam::header("127.0.0.1".parse().unwrap())), Param::Id(77)],
    )];
    a.e.send_informational(now, "lab", p).unwrap();
    let req = a.take();
    for d in req {
        b.e.handle_datagram(now, d.remote, d.local, &d.data);
    }
    let ans = b.take();
    assert_eq!(ans.len(), 1);
    assert_eq!(refused(&b), [NotifyType::UnacceptableAddresses]);
    assert!(b.events.iter().any(|e| matches!(e, Event::MobikeRefused { id: Some(77), .. })), "{:?}", b.events);
    // The answer is sealed; A reads it and reports the refusal.
    for d in ans {
        a.e.handle_datagram(now, d.remote, d.local, &d.data);
    }
    a.take();
    assert!(failed_with(&a, NotifyType::UnacceptableAddresses));
}

/// MOBIKE-X 5.7 (and RFC 4555 3.5): the responder does not add, remove or
/// update; it is answered UNACCEPTABLE_ADDRESSES and nothing moves.
#[test]
fn mobikex_5_7_the_responder_cannot_change_addresses() {
    let (mut a, mut b, now) = up(V4, "", "");
    b.e.send_informational(now, "lab", vec![note(NotifyType::AddSaAddress, &[])]).unwrap();
    run(&mut a, &mut b, now);
    assert!(failed_with(&b, NotifyType::UnacceptableAddresses), "{:?}", b.events);
    assert!(a.dp.iter().all(|c| !matches!(c, Command::SetSaPaths { .. })));
    assert_eq!(a.e.stats.mobike_refused, 1);
    assert_eq!(ask(&mut b, now, ActionKind::Add, V4.1, None, &[], false), Err(Error::CannotMove("lab".into())));
}

/// MOBIKE-X 6.5, 7.2, 11.4.4: ADDITIONAL_IP_ADDRESS with multihoming
/// information replaces the peer's alternate list, kept by preference.
#[test]
fn mobikex_7_2_alternate_addresses_with_preference() {
    let (mut a, mut b, now) = up(V4, "", "");
    let alt = |ip: &str, pref: u8| {
        let mut p = IpParam::header(ip.parse().unwrap());
        p.multihoming = Some(Multihoming {
            preference: pref,
            class: AddressClass::CoA,
            reachability: Reachability::Reachable,
            start_time: 0,
            lifetime: 600,
        });
        note(NotifyType::AdditionalIp6Address, &[Param::Ip(p)])
    };
    a.e.send_informational(now, "lab", vec![alt("10.78.0.1", 10), alt("fd78::1", 200)]).unwrap();
    run(&mut a, &mut b, now);
    let m = b.e.ike_sas().next().unwrap().established().unwrap().mobike.clone().unwrap();
    let want: Vec<IpAddr> = vec!["fd78::1".parse().unwrap(), "10.78.0.1".parse().unwrap()];
    assert_eq!(m.peer_addresses, want, "preferred first");
    assert_eq!(m.alternates[0].lifetime_secs, 600);
    assert_eq!(m.alternates[0].class, "CoA");
    // The next message's list replaces it.
    a.e.send_informational(now, "lab", vec![alt("10.79.0.1", 1)]).unwrap();
    run(&mut a, &mut b, now);
    let m = b.e.ike_sas().next().unwrap().established().unwrap().mobike.clone().unwrap();
    assert_eq!(m.peer_addresses, vec!["10.79.0.1".parse::<IpAddr>().unwrap()]);
}

/// MOBIKE-X 7.1.2: MOBIKE_UNSUPPORTED_VERSION(NONE) turns MOBIKE off.
#[test]
fn mobikex_7_1_2_none_turns_mobike_off() {
    let (mut a, mut b, now) = up(V4, "", "");
    a.e.send_informational(now, "lab", vec![Payload::Notify(version::cancel())]).unwrap();
    run(&mut a, &mut b, now);
    assert_eq!(version_of(&b), None);
    assert!(b.events.iter().any(|e| matches!(e, Event::MobikeOff { .. })));
}

trait WithData {
    fn with_data(self, d: Vec<u8>) -> Payload;
}

impl WithData for Payload {
    fn with_data(self, d: Vec<u8>) -> Payload {
        match self {
            Payload::Notify(mut n) => {
                n.data = d;
                Payload::Notify(n)
            }
            p => p,
        }
    }
}
