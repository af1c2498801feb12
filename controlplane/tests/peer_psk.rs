//! Per-identity PSKs (`peer_psk`): a named peer authenticates with its own
//! key and no other (RFC 7296 2.15: the AUTH is keyed by the secret shared
//! with that peer), so a peer that only knows a connection's shared `psk`
//! (a road warrior) cannot claim the identity of one that has its own
//! (issue 15: MPSA membership rests on that identity). IPv4 and IPv6.

mod common;

use common::{conn, run, Node, V4, V6};
use controlplane::ike::config::ConnectionToml;
use controlplane::ike::engine::{AuthFailure, Error};
use controlplane::ike::Event;

const SHARED: &str = "s3cret-lab-key";
const A_OWN: &str = "a-lab-own-secret";

/// The hub: anyone with the shared PSK, a.lab with its own only.
fn hub(fam: (std::net::IpAddr, std::net::IpAddr)) -> ConnectionToml {
    let extra = format!("peer_psk = {{ \"a.lab\" = \"{A_OWN}\" }}");
    conn("hub", "responder", fam.1, "%any", ("hub.lab", "%any"), ("10.0.0.0/24", "10.1.0.0/16"), &extra)
}

fn client(fam: (std::net::IpAddr, std::net::IpAddr), id: &str, psk: &str) -> ConnectionToml {
    let mut c =
        conn("hub", "initiator", fam.0, &fam.1.to_string(), (id, "hub.lab"), ("10.1.1.0/24", "10.0.0.0/24"), "");
    c.psk = psk.into();
    c
}

/// (client established, hub established, hub's auth failures, client's).
fn attempt(fam: (std::net::IpAddr, std::net::IpAddr), id: &str, psk: &str) -> (usize, usize, u64, u64, Node) {
    let mut h = Node::seeded(vec![hub(fam)], 2);
    let mut c = Node::seeded(vec![client(fam, id, psk)], 1);
    let now = std::time::Instant::now();
    c.e.initiate(now, "hub").unwrap();
    run(&mut c, &mut h, now);
    (c.established(), h.established(), h.e.stats.auth_failed, c.e.stats.auth_failed, h)
}

#[test]
fn a_named_peer_authenticates_with_its_own_psk_only() {
    for fam in [V4, V6] {
        // a.lab with its own key: up, one child SA.
        let (c, h, _, _, _) = attempt(fam, "a.lab", A_OWN);
        assert_eq!((c, h), (1, 1), "{fam:?}: a.lab with its own PSK");
        // Someone with the shared key claiming a.lab:
        //   IKE_AUTH { SK { IDi(a.lab), AUTH(shared) } } -->
        //                     <-- { SK { N(AUTHENTICATION_FAILED) } }
        let (c, h, hub_failed, client_failed, node) = attempt(fam, "a.lab", SHARED);
        assert_eq!((c, h, hub_failed, client_failed), (0, 0, 1, 1), "{fam:?}: the shared PSK cannot claim a.lab");
        assert!(node.dp.iter().all(|c| !matches!(c, cpdp::msg::Command::InstallSa(_))), "nothing installed");
        assert!(node.events.iter().any(|e| matches!(
            e,
            Event::Failed { why: Error::Auth(AuthFailure::Rejected { id, .. }), .. } if id == "a.lab"
        )));
        // Any other identity with the shared key: as before.
        let (c, h, _, _, _) = attempt(fam, "rw.lab", SHARED);
        assert_eq!((c, h), (1, 1), "{fam:?}: rw.lab with the shared PSK");
        // And a.lab's own key is no key for anyone else.
        let (c, h, _, _, _) = attempt(fam, "rw.lab", A_OWN);
        assert_eq!((c, h), (0, 0), "{fam:?}: a.lab's key for rw.lab");
    }
}

#[test]
fn without_a_shared_psk_only_the_named_peers_get_in() {
    for fam in [V4, V6] {
        let mut t = hub(fam);
        t.psk = String::new();
        let mut h = Node::seeded(vec![t], 2);
        let mut c = Node::seeded(vec![client(fam, "rw.lab", SHARED)], 1);
        let now = std::time::Instant::now();
        c.e.initiate(now, "hub").unwrap();
        run(&mut c, &mut h, now);
        assert_eq!((c.established(), h.established(), h.e.stats.auth_failed), (0, 0, 1), "{fam:?}");
    }
}
