//! RFC 7296 rules that an independent responder probe and strongSwan
//! found broken (issue 11), each checked in memory between two engines:
//! where a response goes (2.11), who may open an IKE SA (3.1), and what
//! INITIAL_CONTACT asserts and does (2.4). IPv4 and IPv6 both.

mod common;

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use common::{Node, V4, V6};
use controlplane::codepoints::ExchangeType;
use controlplane::ike::config::ConnectionToml;
use controlplane::wire::{Header, Message};

struct Addrs {
    a: IpAddr,
    b: IpAddr,
}

const FAMILIES: [Addrs; 2] = [Addrs { a: V4.0, b: V4.1 }, Addrs { a: V6.0, b: V6.1 }];

fn conn(name: &str, role: &str, local: IpAddr, remote: &str, ids: (&str, &str), ts: (&str, &str)) -> ConnectionToml {
    common::conn(name, role, local, remote, ids, ts, "")
}

/// Seeded by `run` and the first connection's name and role, so each
/// engine differs (and a restarted one differs from what it was).
fn engine_seeded(conns: Vec<ConnectionToml>, run: u64) -> Node {
    let seed = conns.first().map_or(0, |c| c.name.bytes().fold(c.role as u64, |h, b| h * 31 + b as u64));
    Node::seeded(conns, seed ^ (run << 32))
}

fn engine(conns: Vec<ConnectionToml>) -> Node {
    engine_seeded(conns, 0)
}

/// A at `f.a` initiates connections `names` of its config to B at `f.b`.
fn initiator(f: &Addrs, names: &[&str]) -> Node {
    initiator_seeded(f, names, 0)
}

fn initiator_seeded(f: &Addrs, names: &[&str], run: u64) -> Node {
    let cs = names
        .iter()
        .enumerate()
        .map(|(i, n)| {
            // Same identities, one remote /25 each so the child SAs differ.
            let rts = format!("10.77.2.{}/25", i * 128);
            conn(n, "initiator", f.a, &f.b.to_string(), ("left.lab", "right.lab"), ("10.77.1.0/24", &rts))
        })
        .collect();
    engine_seeded(cs, run)
}

fn responder(f: &Addrs) -> Node {
    engine(vec![conn("lab", "responder", f.b, "%any", ("right.lab", "left.lab"), ("10.77.2.0/24", "10.77.1.0/24"))])
}

fn run(a: &mut Node, b: &mut Node, now: Instant) {
    common::run(a, b, now)
}

fn established(n: &Node) -> usize {
    n.established()
}

fn children(n: &Node) -> usize {
    n.children()
}

/// RFC 7296 2.11: "the response MUST be sent to the IP address and port
/// from whence it came" and from the address it was sent to; here the
/// IKE_AUTH request comes from another port than the IKE_SA_INIT did
/// (no NAT was detected, so the IKE SA's own path does not change).
#[test]
fn rfc7296_2_11_responses_go_to_the_address_and_port_the_request_came_from() {
    for f in &FAMILIES {
        let now = Instant::now();
        let (mut a, mut b) = (initiator(f, &["lab"]), responder(f));
        a.e.initiate(now, "lab").unwrap();
        // IKE_SA_INIT from port 500, answered to port 500.
        let init = a.take().remove(0);
        b.e.handle_datagram(now, init.remote, init.local, &init.data);
        let resp = b.take().remove(0);
        assert_eq!(resp.remote, init.local);
        a.e.handle_datagram(now, resp.remote, resp.local, &resp.data);
        // IKE_AUTH arrives from port 59846 (the probe's other socket).
        let auth = a.take().remove(0);
        let moved = SocketAddr::new(auth.local.ip(), 59846);
        b.e.handle_datagram(now, auth.remote, moved, &auth.data);
        let answers = b.take();
        assert_eq!(answers.len(), 1, "{f:?}", f = f.a);
        assert_eq!(answers[0].remote, moved, "answered where the request came from");
        assert_eq!(answers[0].local, auth.remote, "from where it was sent to");
        // A retransmission from yet another port gets the same answer there.
        let again = SocketAddr::new(auth.local.ip(), 40001);
        b.e.handle_datagram(now, auth.remote, again, &auth.data);
        let re = b.take();
        assert_eq!(re.len(), 1);
        assert_eq!((re[0].remote, &re[0].data), (again, &answers[0].data));
        assert_eq!(b.e.stats.retransmits_answered, 1);
        // The IKE SA itself stays on the path IKE_SA_INIT set up: moving it
        // needs NAT detection (2.23) or MOBIKE.
        assert_eq!(b.e.ike_sas().next().unwrap().remote(), init.local);
        // (A is a probe whose two sockets share one engine.)
        a.e.handle_datagram(now, auth.local, answers[0].local, &answers[0].data);
        assert_eq!((established(&a), established(&b)), (1, 1));
    }
}

/// IKE_SA_INIT requests that are not from an original initiator.
fn mangled(init: &[u8], f: impl Fn(&mut Header)) -> Vec<u8> {
    let m = Message::parse(init).unwrap();
    assert_eq!(m.header.exchange, ExchangeType::IkeSaInit);
    let mut h = m.header;
    f(&mut h);
    Message::emit_clear(h, &m.payloads)
}

/// RFC 7296 3.1: the Initiator flag "MUST be set in messages sent by the
/// original initiator", and the initiator's SPI "MUST NOT be zero"; an
/// IKE_SA_INIT request without I or with SPIi = 0 opens nothing, gets no
/// answer and is counted. The genuine request then still works.
#[test]
fn rfc7296_3_1_an_ike_sa_init_without_i_or_with_spi_zero_opens_nothing() {
    for f in &FAMILIES {
        let now = Instant::now();
        let (mut a, mut b) = (initiator(f, &["lab"]), responder(f));
        a.e.initiate(now, "lab").unwrap();
        let init = a.take().remove(0);
        let bad = [
            mangled(&init.data, |h| h.flags.initiator = false),
            mangled(&init.data, |h| h.spi_i = 0),
            mangled(&init.data, |h| {
                h.spi_i = 0;
                h.flags.initiator = false;
            }),
        ];
        for m in &bad {
            b.e.handle_datagram(now, init.remote, init.local, m);
            assert!(b.take().is_empty(), "dropped silently");
        }
        assert_eq!(b.e.ike_sas().count(), 0, "no SA made");
        assert_eq!(b.e.half_open(), 0);
        assert_eq!(b.e.stats.bad_init_request, 3);
        b.e.handle_datagram(now, init.remote, init.local, &init.data);
        assert_eq!(b.take().len(), 1, "the real request is answered");
        assert_eq!(b.e.ike_sas().count(), 1);
    }
}

/// RFC 7296 2.4: INITIAL_CONTACT "asserts that this IKE SA is the only IKE
/// SA currently active between the authenticated identities". Two
/// connections between the same identities: the second IKE_AUTH must not
/// carry it, or the peer (which acts on it: strongSwan does, and so do
/// we) deletes the first IKE SA. Both stay up, each with its child SA.
#[test]
fn rfc7296_2_4_initial_contact_only_when_no_other_ike_sa_joins_the_identities() {
    for f in &FAMILIES {
        let now = Instant::now();
        let (mut a, mut b) = (initiator(f, &["lab", "lab2"]), responder(f));
        a.e.initiate(now, "lab").unwrap();
        run(&mut a, &mut b, now);
        assert_eq!((established(&a), established(&b)), (1, 1));
        a.e.initiate(now, "lab2").unwrap();
        run(&mut a, &mut b, now);
        assert_eq!(established(&a), 2);
        assert_eq!(established(&b), 2, "the responder kept the first IKE SA");
        assert_eq!((children(&a), children(&b)), (2, 2));
    }
}

/// RFC 7296 2.4, the race strongSwan showed: two connections started
/// together, and the second IKE_AUTH reaches the peer before the first.
/// Had the first carried INITIAL_CONTACT (the second being only half-open
/// when it went), the peer would delete the second on reading it; with
/// another IKE SA of ours on its way up, neither carries it.
#[test]
fn rfc7296_2_4_no_initial_contact_while_another_ike_sa_of_ours_is_on_its_way_up() {
    for f in &FAMILIES {
        let now = Instant::now();
        let (mut a, mut b) = (initiator(f, &["lab", "lab2"]), responder(f));
        a.e.initiate(now, "lab").unwrap();
        a.e.initiate(now, "lab2").unwrap();
        // Both IKE_SA_INITs, both answers.
        for d in a.take() {
            b.e.handle_datagram(now, d.remote, d.local, &d.data);
        }
        for d in b.take() {
            a.e.handle_datagram(now, d.remote, d.local, &d.data);
        }
        // The two IKE_AUTHs, the second first.
        let auths = a.take();
        assert_eq!(auths.len(), 2);
        for d in auths.iter().rev() {
            b.e.handle_datagram(now, d.remote, d.local, &d.data);
        }
        run(&mut a, &mut b, now);
        assert_eq!((established(&a), established(&b)), (2, 2), "both stay up at both ends");
    }
}

/// RFC 7296 2.4: after a restart the first IKE SA carries INITIAL_CONTACT
/// and the recipient deletes the stale IKE SAs of the same identities
/// (with their child SAs), keeping the new one and IKE SAs of others.
#[test]
fn rfc7296_2_4_initial_contact_from_a_restarted_peer_removes_its_stale_ike_sas() {
    for f in &FAMILIES {
        let now = Instant::now();
        let mut b = responder(f);
        let mut old = initiator(f, &["lab", "lab2"]);
        old.e.initiate(now, "lab").unwrap();
        run(&mut old, &mut b, now);
        old.e.initiate(now, "lab2").unwrap();
        run(&mut old, &mut b, now);
        assert_eq!(established(&b), 2);
        let stale: Vec<u64> = b.e.ike_sas().map(|s| s.spi_r()).collect();
        // A restarts with no memory of its IKE SAs (nor of its random
        // state) and connects again.
        let mut a = initiator_seeded(f, &["lab"], 1);
        a.e.initiate(now, "lab").unwrap();
        run(&mut a, &mut b, now);
        assert_eq!(established(&a), 1);
        let left: Vec<u64> = b.e.ike_sas().map(|s| s.spi_r()).collect();
        assert_eq!(left.len(), 1, "only the new IKE SA: {left:x?}");
        assert!(!stale.contains(&left[0]));
        assert_eq!(children(&b), 1);
    }
}

/// INITIAL_CONTACT speaks for one pair of identities: a restarted peer
/// with another identity leaves others' IKE SAs alone.
#[test]
fn rfc7296_2_4_initial_contact_leaves_other_identities_alone() {
    let f = &FAMILIES[0];
    let now = Instant::now();
    let b = conn("lab", "responder", f.b, "%any", ("right.lab", "left.lab"), ("10.77.2.0/24", "10.77.1.0/24"));
    let mut other = b.clone();
    other.name = "other".into();
    other.remote_id = Some("other.lab".into());
    let mut b = engine(vec![b, other]);
    let mut x = engine(vec![conn(
        "x",
        "initiator",
        f.a,
        &f.b.to_string(),
        ("other.lab", "right.lab"),
        ("10.77.1.0/24", "10.77.2.0/24"),
    )]);
    x.e.initiate(now, "x").unwrap();
    run(&mut x, &mut b, now);
    let mut a = initiator(f, &["lab"]);
    a.e.initiate(now, "lab").unwrap();
    run(&mut a, &mut b, now);
    assert_eq!(established(&b), 2, "other.lab's IKE SA stays");
    assert_eq!(established(&x), 1);
}
