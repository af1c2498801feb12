//! Multihoming in the dataplane's tables (MOBIKE-X ADD_SA_ADDRESS, issue
//! 16): an outbound SA with two paths sends on the first, leaves by the
//! port of that path's local address, and moves to the second in the
//! table rebuild that follows the first port's link going down, keeping
//! its sequence numbers; a path set replaced or reduced to one behaves as
//! an ordinary SA. IPv4 and IPv6.

use std::net::IpAddr;

use cpdp::msg::{Command, Direction, SaSpec};
use dataplane::lpm::Prefix;
use dataplane::state::TableState;
use dataplane::tables::{PortInfo, Route, Tables};
use zeroize::Zeroizing;

struct Lab {
    /// Ours on port 0, ours on port 1, the peer (reached from both).
    a1: IpAddr,
    a2: IpAddr,
    peer: IpAddr,
    gw: (IpAddr, IpAddr),
}

fn lab(v6: bool) -> Lab {
    let p = |s: &str| s.parse().unwrap();
    if v6 {
        Lab { a1: p("fd01::1"), a2: p("fd02::1"), peer: p("fd09::9"), gw: (p("fd01::fe"), p("fd02::fe")) }
    } else {
        Lab {
            a1: p("192.0.2.1"),
            a2: p("198.51.100.1"),
            peer: p("203.0.113.9"),
            gw: (p("192.0.2.254"), p("198.51.100.254")),
        }
    }
}

/// Two uplinks, each with its own address, gateway and default route;
/// the lookup by destination alone takes the first's (added last).
fn state(l: &Lab) -> TableState {
    let port = |m: u8| PortInfo { mac: [2, 0, 0, 0, 0, m], mtu: 1500 };
    let mut t = Tables::new(vec![port(1), port(2)]);
    let plen = if l.a1.is_ipv4() { 24 } else { 64 };
    for (i, (a, gw)) in [(l.a2, l.gw.1), (l.a1, l.gw.0)].into_iter().enumerate() {
        let port = 1 - i as u16;
        t.add_local_on(a, port);
        t.add_route(Prefix::new(a, plen).unwrap(), Route { port, via: None });
        let any = if a.is_ipv4() { "0.0.0.0".parse().unwrap() } else { "::".parse().unwrap() };
        t.add_route(Prefix::new(any, 0).unwrap(), Route { port, via: Some(gw) });
        t.neighbors.insert(gw, [2, 0, 0, 0, 9, port as u8]);
    }
    TableState::new(t)
}

fn spec(l: &Lab, paths: Vec<(IpAddr, IpAddr)>) -> SaSpec {
    SaSpec {
        handle: 0x77,
        spi: 0x1234,
        direction: Direction::Out,
        alg: "aes128gcm".into(),
        enc_key: Zeroizing::new(vec![7; 20]),
        auth_key: Zeroizing::new(vec![]),
        local: l.a1,
        remote: l.peer,
        natt: None,
        esn: false,
        replay_window: 0,
        seq: 0,
        inner_src: vec![],
        inner_dst: vec![],
        lifetime: Default::default(),
        paths,
        transport: false,
    }
}

/// (local address, port of the next hop) the SA sends with now.
fn sending(st: &TableState) -> (IpAddr, u16) {
    let t = st.build();
    let i = t.out_sas.iter().position(|s| s.handle == 0x77).unwrap();
    (t.out_sas[i].template_local(), t.sa_next_hop(i).unwrap().port)
}

#[test]
fn the_second_path_takes_over_when_the_first_link_goes_down() {
    for v6 in [false, true] {
        let l = lab(v6);
        let mut st = state(&l);
        st.apply(&Command::InstallSa(spec(&l, vec![(l.a2, l.peer)]))).unwrap();
        assert_eq!(sending(&st), (l.a1, 0));
        let sa = st.build().out_sas.iter().find(|s| s.handle == 0x77).unwrap().clone();
        for _ in 0..5 {
            sa.next_seq();
        }
        assert!(st.set_link(0, false), "the tables change");
        assert_eq!(sending(&st), (l.a2, 1), "out of the second uplink, from its address");
        let now = st.build().out_sas.iter().find(|s| s.handle == 0x77).unwrap().clone();
        assert!(now.seq_used() > 5, "the same SA: sequence numbers go on");
        assert!(!st.set_link(0, false));
        assert!(st.set_link(0, true));
        assert_eq!(sending(&st), (l.a1, 0), "back when the link is");
        assert_eq!(st.addresses_on(1), [l.a2]);
    }
}

#[test]
fn set_sa_paths_replaces_the_set() {
    let l = lab(false);
    let mut st = state(&l);
    st.apply(&Command::InstallSa(spec(&l, vec![]))).unwrap();
    st.set_link(0, false);
    assert_eq!(sending(&st).0, l.a1, "one path: nowhere else to go");
    let paths = vec![(l.a1, l.peer), (l.a2, l.peer)];
    st.apply(&Command::SetSaPaths { spi: 0x77, paths, natt: None }).unwrap();
    assert_eq!(sending(&st), (l.a2, 1));
    assert_eq!(st.multihomed_paths().len(), 2);
    st.apply(&Command::SetSaPaths { spi: 0x77, paths: vec![(l.a1, l.peer)], natt: None }).unwrap();
    assert_eq!(sending(&st).0, l.a1, "reduced to one path");
    assert!(st.multihomed_paths().is_empty());
    let mixed = vec![(l.a1, "fd09::9".parse().unwrap())];
    assert!(st.apply(&Command::SetSaPaths { spi: 0x77, paths: mixed, natt: None }).is_err());
    assert!(st.apply(&Command::SetSaPaths { spi: 0x78, paths: vec![(l.a1, l.peer)], natt: None }).is_err());
    assert!(st.apply(&Command::SetSaPaths { spi: 0x77, paths: vec![], natt: None }).is_err());
    assert_eq!(sending(&st).0, l.a1, "refused commands change nothing");
}
