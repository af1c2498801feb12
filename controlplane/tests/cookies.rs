//! RFC 7296 2.6 cookies across a change of the responder's secret: "the
//! responder should change the value of <secret> frequently", and a
//! cookie made with the previous one is still taken for a grace period,
//! so an initiator's retry in flight does not fail.
//!
//! ```text
//! HDR(A,0), SAi1, KEi, Ni  -->
//!                      <--  HDR(A,0), N(COOKIE)
//! HDR(A,0), N(COOKIE), SAi1, KEi, Ni  -->     (cookie = <version> | HMAC(secret, Ni | IPi | SPIi))
//!                      <--  HDR(A,B), SAr1, KEr, Nr
//! ```

mod common;

use std::time::{Duration, Instant};

use common::{conn, Datagram, Node, V4};
use controlplane::codepoints::NotifyType;
use controlplane::crypto::SeededRandom;
use controlplane::ike::Settings;
use controlplane::wire::{Message, Payload};

fn responder() -> Node {
    let settings = Settings {
        cookie_threshold: 0,
        cookie_secret_lifetime: Duration::from_secs(10),
        cookie_grace: Duration::from_secs(2),
        ..Settings::default()
    };
    let cb = conn("lab", "responder", V4.1, "%any", ("right.lab", "%any"), ("10.2.0.0/16", "10.1.0.0/16"), "");
    Node::new(vec![cb], settings, Box::new(SeededRandom::new(2)))
}

/// An initiator's IKE_SA_INIT with the cookie `b` asked for at `t`.
fn with_cookie(b: &mut Node, t: Instant, seed: u64) -> Datagram {
    let id = format!("c{seed}.lab");
    let ca = conn("lab", "initiator", V4.0, &V4.1.to_string(), (&id, "right.lab"), ("10.1.0.0/16", "10.2.0.0/16"), "");
    let mut a = Node::seeded(vec![ca], seed);
    a.e.initiate(t, "lab").unwrap();
    let first = a.take().remove(0);
    b.e.handle_datagram(t, first.remote, first.local, &first.data);
    let answer = b.take().remove(0);
    assert_eq!(cookie_of(&answer).map(|c| c.len()), Some(17), "a cookie is asked for");
    a.e.handle_datagram(t, answer.remote, answer.local, &answer.data);
    a.take().remove(0)
}

fn cookie_of(d: &Datagram) -> Option<Vec<u8>> {
    let m = Message::parse(&d.data).ok()?;
    m.payloads.into_iter().find_map(|p| match p {
        Payload::Notify(n) if n.ty == NotifyType::Cookie => Some(n.data),
        _ => None,
    })
}

/// The responder's answer to `d` at `t`: its cookie if it asked for one
/// (again), None if it took the request.
fn answer(b: &mut Node, d: &Datagram, t: Instant) -> Option<Vec<u8>> {
    b.e.handle_datagram(t, d.remote, d.local, &d.data);
    let out = b.take();
    assert_eq!(out.len(), 1);
    cookie_of(&out[0])
}

#[test]
fn rfc7296_2_6_a_cookie_of_the_previous_secret_is_taken_for_the_grace_period_only() {
    let mut b = responder();
    let t0 = Instant::now();
    // Two initiators get cookies of the first secret (version 0).
    let early = with_cookie(&mut b, t0, 1);
    let late = with_cookie(&mut b, t0, 3);
    let fresh_now = with_cookie(&mut b, t0, 5);
    assert_eq!(answer(&mut b, &fresh_now, t0), None, "a current cookie is taken");
    // The secret changes at t0 + 10 s (first use after that: t0 + 11 s).
    let t1 = t0 + Duration::from_secs(11);
    assert_eq!(answer(&mut b, &early, t1), None, "within the grace period: taken");
    // Past the grace period the old cookie is refused: a new one, of
    // the new secret (version 1), is asked for.
    let t2 = t1 + Duration::from_secs(3);
    let again = answer(&mut b, &late, t2).expect("asked for a new cookie");
    assert_eq!(again[0], 1, "the new secret's version");
    assert_eq!(b.e.half_open(), 2, "the two accepted requests are half-open SAs, the refused one is not");
}

#[test]
fn rfc7296_2_6_a_forged_or_foreign_cookie_is_refused() {
    let mut b = responder();
    let t0 = Instant::now();
    let good = with_cookie(&mut b, t0, 1);
    for flip in [0usize, 5, 16] {
        // The cookie's notify data sits after its 8-octet payload header.
        let m = Message::parse(&good.data).unwrap();
        let Payload::Notify(n) = &m.payloads[0] else { panic!("the cookie comes first") };
        let at = good.data.windows(n.data.len()).position(|w| w == n.data.as_slice()).unwrap();
        let mut bad = good.clone();
        bad.data[at + flip] ^= 1;
        assert!(answer(&mut b, &bad, t0).is_some(), "octet {flip} changed: refused");
    }
    assert_eq!(b.e.half_open(), 0);
    assert!(answer(&mut b, &good, t0).is_none());
}
