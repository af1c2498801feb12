//! The table state's tests: commands applied and refused, tables built,
//! lifetimes, group rollovers, failing closed, Flush.

use super::*;
use crate::sa::{Lifetime, LifetimeState, STAT_BYTES, STAT_PACKETS};
use cpdp::msg::{Event, LifetimeKind};
use std::time::{Duration, Instant};
use zeroize::Zeroizing;

fn spec(spi: u32, dir: Direction) -> SaSpec {
    SaSpec {
        spi,
        handle: spi,
        direction: dir,
        alg: "aes128gcm".into(),
        enc_key: Zeroizing::new(vec![7; 20]),
        auth_key: Zeroizing::new(vec![]),
        local: "192.0.2.1".parse().unwrap(),
        remote: "192.0.2.2".parse().unwrap(),
        natt: None,
        esn: false,
        replay_window: 64,
        seq: 0,
        inner_src: vec![],
        inner_dst: vec![],
        lifetime: cpdp::msg::Lifetimes { soft_packets: 10, hard_packets: 20, hard_secs: 60, ..Default::default() },
        paths: vec![],
        transport: false,
    }
}

#[test]
fn lifetime_states() {
    let l = Lifetime { soft_bytes: 100, hard_bytes: 200, soft_secs: 5, ..Default::default() };
    assert_eq!(l.state(0, 99, 0), LifetimeState::Fresh);
    assert_eq!(l.state(0, 100, 0), LifetimeState::Soft);
    assert_eq!(l.state(0, 0, 5), LifetimeState::Soft);
    assert_eq!(l.state(0, 250, 0), LifetimeState::Hard);
    assert_eq!(Lifetime::default().state(u64::MAX, u64::MAX, u64::MAX), LifetimeState::Fresh);
}

/// Two peers may choose the same SPI for their inbound SAs: our two
/// outbound SAs then share a wire SPI but not a handle, and each
/// policy finds its own SA (to its own peer); deleting one leaves the
/// other, and lifetime events name the handle.
#[test]
fn outbound_sas_with_the_same_spi_are_kept_apart_by_handle() {
    let mut st = TableState::new(Tables::new(vec![]));
    let mut one = spec(0x77, Direction::Out);
    one.handle = 0x1001;
    let mut two = spec(0x77, Direction::Out);
    two.handle = 0x2002;
    two.remote = "192.0.2.3".parse().unwrap();
    st.apply(&Command::InstallSa(one)).unwrap();
    st.apply(&Command::InstallSa(two)).unwrap();
    let pol = |dst: &str, h: u32| Command::SetPolicy {
        dst: WirePrefix { addr: dst.parse().unwrap(), len: 24 },
        action: PolicyAction::Protect(h),
    };
    st.apply(&pol("10.1.1.0", 0x1001)).unwrap();
    st.apply(&pol("10.1.2.0", 0x2002)).unwrap();
    let remote_for = |t: &Tables, dst: &str| match t.policy(dst.parse().unwrap()) {
        Some(Policy::Protect(i)) => Some(t.out_sas[i].remote),
        _ => None,
    };
    let t = st.build();
    assert_eq!(t.out_sas.len(), 2);
    assert_eq!(remote_for(&t, "10.1.1.9"), Some("192.0.2.2".parse().unwrap()));
    assert_eq!(remote_for(&t, "10.1.2.9"), Some("192.0.2.3".parse().unwrap()));
    t.out_sas.iter().for_each(|sa| sa.stats.add(0, STAT_PACKETS, 12));
    let mut handles: Vec<u32> = LifetimeMonitor::default()
        .check(&t, Instant::now())
        .iter()
        .filter_map(|e| if let Event::Lifetime { spi, .. } = e { Some(*spi) } else { None })
        .collect();
    handles.sort_unstable();
    assert_eq!(handles, [0x1001, 0x2002], "events name the handle");
    st.apply(&Command::DeleteSa { spi: 0x1001, direction: Direction::Out }).unwrap();
    let t = st.build();
    assert_eq!(t.out_sas.len(), 1);
    assert_eq!(remote_for(&t, "10.1.2.9"), Some("192.0.2.3".parse().unwrap()), "the other stays");
    assert_eq!(t.policy("10.1.1.9".parse().unwrap()), Some(Policy::Discard), "fail closed");
}

#[test]
fn soft_then_hard_reported_once_and_hard_stops_the_sa() {
    let mut st = TableState::new(Tables::new(vec![]));
    assert!(st.apply(&Command::InstallSa(spec(0x10, Direction::Out))).unwrap());
    let t = st.build();
    let mut m = LifetimeMonitor::default();
    let now = Instant::now();
    assert!(m.check(&t, now).is_empty());
    t.out_sas[0].stats.add(0, STAT_PACKETS, 12);
    t.out_sas[0].stats.add(0, STAT_BYTES, 1000);
    let e = m.check(&t, now);
    assert!(matches!(e[..], [Event::Lifetime { spi: 0x10, kind: LifetimeKind::Soft, packets: 12, .. }]), "{e:?}");
    assert!(m.check(&t, now).is_empty(), "once");
    assert!(!t.out_sas[0].expired.load(std::sync::atomic::Ordering::Relaxed));
    let e = m.check(&t, now + Duration::from_secs(61));
    assert!(matches!(e[..], [Event::Lifetime { kind: LifetimeKind::Hard, .. }]), "{e:?}");
    assert!(t.out_sas[0].expired.load(std::sync::atomic::Ordering::Relaxed), "stopped");
}

#[test]
fn commands_are_checked_and_rejections_change_nothing() {
    let mut st = TableState::new(Tables::new(vec![]));
    let mut bad = spec(0x11, Direction::Out);
    bad.alg = "des".into();
    assert!(st.apply(&Command::InstallSa(bad)).unwrap_err().contains("unknown algorithm"));
    let mut bad = spec(0x12, Direction::In);
    bad.enc_key = Zeroizing::new(vec![1; 3]);
    assert!(st.apply(&Command::InstallSa(bad)).unwrap_err().contains("20 octets"));
    let pol = Command::SetPolicy {
        dst: WirePrefix { addr: "10.0.0.0".parse().unwrap(), len: 8 },
        action: PolicyAction::Protect(0x99),
    };
    assert!(st.apply(&pol).unwrap_err().contains("no outbound SA with handle 0x99"));
    assert!(st.apply(&Command::DeleteSa { spi: 5, direction: Direction::In }).is_err());
    let t = st.build();
    assert!(t.out_sas.is_empty() && t.in_sas.is_empty());
    // MOBIKE: new addresses, same SA, sequence numbers move forward.
    st.apply(&Command::InstallSa(spec(0x13, Direction::Out))).unwrap();
    let before = st.build().out_sas[0].clone();
    for _ in 0..5 {
        before.next_seq();
    }
    st.apply(&Command::UpdateSaAddresses {
        spi: 0x13,
        direction: Direction::Out,
        local: "198.51.100.1".parse().unwrap(),
        remote: "198.51.100.2".parse().unwrap(),
        natt: Some((4500, 4500)),
    })
    .unwrap();
    let after = st.build().out_sas[0].clone();
    assert_eq!(after.remote, "198.51.100.2".parse::<IpAddr>().unwrap());
    assert!(after.next_seq().unwrap() > 5);
    assert!(Arc::ptr_eq(&after.stats, &before.stats), "counters carry on");
}

/// A transport-mode SA that moves (MOBIKE-X 7.3) takes its policy,
/// the host prefix of its peer, to the new peer address in the same
/// command; it has one path; the inbound SA's ends follow.
#[test]
fn a_transport_sa_moves_with_its_policy() {
    let mut st = TableState::new(Tables::new(vec![]));
    let mut out = spec(0x21, Direction::Out);
    out.transport = true;
    let mut inb = spec(0x22, Direction::In);
    inb.transport = true;
    st.apply(&Command::InstallSa(out)).unwrap();
    st.apply(&Command::InstallSa(inb)).unwrap();
    let host = |a: &str| WirePrefix { addr: a.parse().unwrap(), len: 32 };
    st.apply(&Command::SetPolicy { dst: host("192.0.2.2"), action: PolicyAction::Protect(0x21) }).unwrap();
    let (new_l, new_r): (IpAddr, IpAddr) = ("198.51.100.1".parse().unwrap(), "198.51.100.2".parse().unwrap());
    for direction in [Direction::Out, Direction::In] {
        let spi = if direction == Direction::Out { 0x21 } else { 0x22 };
        st.apply(&Command::UpdateSaAddresses { spi, direction, local: new_l, remote: new_r, natt: None }).unwrap();
    }
    let t = st.build();
    assert!(matches!(t.policy(new_r), Some(Policy::Protect(0))), "the policy moved");
    assert!(t.policy("192.0.2.2".parse().unwrap()).is_none(), "none left at the old address");
    assert!(t.out_sas[0].transport && t.out_sas[0].remote == new_r);
    assert_eq!((t.in_sas[0].local, t.in_sas[0].remote), (new_l, new_r));
    assert!(t.has_transport_in());
    let two = Command::SetSaPaths {
        spi: 0x21,
        paths: vec![(new_l, new_r), (new_l, "203.0.113.9".parse().unwrap())],
        natt: None,
    };
    assert!(st.apply(&two).unwrap_err().contains("one path"));
}

fn group_cmd(spi: u32, r1: u32, r2: u32) -> Command {
    let mut sa = spec(spi, Direction::Out);
    sa.alg = "aes256cbc-sha1".into();
    sa.enc_key = Zeroizing::new(vec![3; 32]);
    sa.auth_key = Zeroizing::new(vec![4; 20]);
    Command::InstallGroupSa {
        group: "branches".into(),
        sa,
        members: vec![
            (WirePrefix { addr: "10.2.0.0".parse().unwrap(), len: 16 }, "192.0.2.2".parse().unwrap()),
            (WirePrefix { addr: "10.3.0.0".parse().unwrap(), len: 16 }, "192.0.2.3".parse().unwrap()),
        ],
        rollover1_secs: r1,
        rollover2_secs: r2,
    }
}

#[test]
fn group_sas_over_commands_roll_over_on_time() {
    use crate::tables::PortInfo;
    let mut base = Tables::new(vec![PortInfo { mac: [2, 0, 0, 0, 0, 1], mtu: 1500 }]);
    base.add_local("192.0.2.1".parse().unwrap());
    let mut st = TableState::new(base);
    let t0 = Instant::now();
    assert!(st.apply_at(&group_cmd(0x3001, 0, 0), t0).unwrap());
    let t = st.build();
    assert_eq!((t.in_sas.len(), t.out_sas.len(), t.groups.len()), (1, 1, 1));
    assert_eq!(t.in_sas[0].replay_window, 0, "no anti-replay on group SAs");
    // Rekey: new SA inbound at once, outbound after 5 s, old gone after 20 s.
    st.apply_at(&group_cmd(0x3002, 5, 20), t0 + Duration::from_secs(100)).unwrap();
    let t = st.build();
    assert_eq!(t.in_sas.iter().map(|s| s.spi).collect::<Vec<_>>(), vec![0x3001, 0x3002]);
    assert_eq!(t.out_sas[t.groups[0].out_sa].spi, 0x3001);
    assert_eq!(st.next_deadline(), Some(t0 + Duration::from_secs(105)));
    assert!(!st.tick(t0 + Duration::from_secs(104)));
    assert!(st.tick(t0 + Duration::from_secs(105)));
    assert_eq!(st.build().out_sas[st.build().groups[0].out_sa].spi, 0x3002);
    assert!(st.tick(t0 + Duration::from_secs(120)));
    let t = st.build();
    assert_eq!(t.in_sas.iter().map(|s| s.spi).collect::<Vec<_>>(), vec![0x3002]);
    match st.describe() {
        cpdp::msg::Event::State { groups, .. } => {
            assert_eq!(groups, vec![("branches".into(), Some(0x3002), vec![0x3002])])
        }
        e => panic!("{e:?}"),
    }
    assert!(st.apply(&Command::DeleteGroup { group: "branches".into() }).unwrap());
    assert!(st.build().in_sas.is_empty());
    assert!(st.apply(&Command::DeleteGroup { group: "branches".into() }).is_err());
}

/// mpsa-04 section 5: a group installed over the ring accepts, on each of
/// its inbound SAs (the current one and the one rolling over), only a
/// member's own prefixes from that member's outer address.
#[test]
fn group_sas_over_commands_take_only_each_members_own_prefixes() {
    use crate::tables::PortInfo;
    let mut base = Tables::new(vec![PortInfo { mac: [2, 0, 0, 0, 0, 1], mtu: 1500 }]);
    base.add_local("192.0.2.1".parse().unwrap());
    let mut st = TableState::new(base);
    let t0 = Instant::now();
    st.apply_at(&group_cmd(0x3001, 0, 0), t0).unwrap();
    st.apply_at(&group_cmd(0x3002, 5, 20), t0 + Duration::from_secs(1)).unwrap();
    let t = st.build();
    assert_eq!(t.in_sas.len(), 2);
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    for i in 0..2 {
        let g = t.group_sources(i).expect("a group SA has its sources");
        assert!(g.allows(ip("192.0.2.2"), ip("10.2.7.7")), "B from B's prefix");
        assert!(g.allows(ip("192.0.2.3"), ip("10.3.0.1")), "C from C's prefix");
        assert!(!g.allows(ip("192.0.2.2"), ip("10.3.0.1")), "B claiming C's prefix");
        assert!(!g.allows(ip("192.0.2.9"), ip("10.2.7.7")), "an address no member has");
        assert!(!g.allows(ip("192.0.2.2"), ip("172.16.0.1")), "a prefix no member has");
    }
    // A tunnel SA has none: its selectors decide.
    st.apply(&Command::InstallSa(spec(0x21, Direction::In))).unwrap();
    let t = st.build();
    let tunnel = t.spi_index[&0x21];
    assert!(t.group_sources(tunnel).is_none());
}

/// `[control] fail_closed` (issue 15): a prefix a tunnel or a group
/// once protected is discarded, not bypassed, once nothing protects
/// it: its policy deleted, its group gone, the tables flushed by a
/// control plane starting again. Our own prefix among a group's
/// members stays ours; a prefix never covered is bypassed as before.
#[test]
fn failing_closed_discards_what_was_once_protected() {
    use crate::tables::PortInfo;
    let run = |fail_closed: bool| {
        let mut base = Tables::new(vec![PortInfo { mac: [2, 0, 0, 0, 0, 1], mtu: 1500 }]);
        base.add_local("192.0.2.1".parse().unwrap());
        let mut st = TableState::new(base);
        st.set_fail_closed(fail_closed);
        st.apply(&Command::InstallSa(spec(0x21, Direction::Out))).unwrap();
        let tunnel = WirePrefix { addr: "10.9.0.0".parse().unwrap(), len: 16 };
        st.apply(&Command::SetPolicy { dst: tunnel, action: PolicyAction::Protect(0x21) }).unwrap();
        let mut g = group_cmd(0x3001, 0, 0);
        if let Command::InstallGroupSa { members, .. } = &mut g {
            // This endpoint's own LAN is a member prefix too.
            members.push((WirePrefix { addr: "10.1.0.0".parse().unwrap(), len: 16 }, "192.0.2.1".parse().unwrap()));
        }
        st.apply(&g).unwrap();
        let at = |st: &TableState, a: &str| st.build().policy(a.parse().unwrap());
        assert!(matches!(at(&st, "10.9.1.1"), Some(Policy::Protect(_))));
        assert!(matches!(at(&st, "10.2.1.1"), Some(Policy::ProtectGroup(_))));
        st.apply(&Command::DeletePolicy { dst: tunnel }).unwrap();
        let after_delete = at(&st, "10.9.1.1");
        st.apply(&Command::DeleteGroup { group: "branches".into() }).unwrap();
        let after_group = at(&st, "10.2.1.1");
        st.apply(&Command::InstallSa(spec(0x21, Direction::Out))).unwrap();
        st.apply(&Command::SetPolicy { dst: tunnel, action: PolicyAction::Protect(0x21) }).unwrap();
        st.apply(&Command::Flush).unwrap();
        (after_delete, after_group, at(&st, "10.9.1.1"), at(&st, "10.1.1.1"), at(&st, "172.16.0.1"))
    };
    let d = Some(Policy::Discard);
    assert_eq!(run(true), (d, d, d, None, None), "fail closed: discarded; our LAN and the rest bypassed");
    assert_eq!(run(false), (None, None, None, None, None), "off: no policy, bypassed");
}

/// A control plane that starts afresh flushes what an earlier one
/// installed: group SAs and run-time addresses go with the SAs; the
/// neighbours learned from the wire stay (issue 15).
#[test]
fn flush_removes_group_sas_and_addresses_and_keeps_learned_neighbours() {
    use crate::tables::PortInfo;
    let mut base = Tables::new(vec![PortInfo { mac: [2, 0, 0, 0, 0, 1], mtu: 1500 }]);
    base.add_local("192.0.2.1".parse().unwrap());
    let mut st = TableState::new(base);
    let t0 = Instant::now();
    st.apply_at(&group_cmd(0x3001, 0, 0), t0).unwrap();
    let peer: IpAddr = "192.0.2.2".parse().unwrap();
    st.apply(&Command::SetNeighbor { ip: peer, mac: [2, 0, 0, 0, 0, 2] }).unwrap();
    let v6 = WirePrefix { addr: "2001:db8:1::1".parse().unwrap(), len: 64 };
    st.apply(&Command::AddAddress { port: 0, addr: v6 }).unwrap();
    st.apply(&Command::Flush).unwrap();
    let t = st.build();
    assert!(t.groups.is_empty() && t.in_sas.is_empty() && t.out_sas.is_empty());
    assert!(st.apply(&Command::DeleteGroup { group: "branches".into() }).is_err(), "the group is gone");
    assert!(st.apply(&Command::RemoveAddress { port: 0, addr: v6.addr }).is_err(), "the address is gone");
    assert_eq!(t.neighbors.get(&peer), Some(&[2, 0, 0, 0, 0, 2]), "the neighbour stays");
}

#[test]
fn addresses_come_and_go() {
    use crate::tables::PortInfo;
    let mut st = TableState::new(Tables::new(vec![PortInfo { mac: [2, 0, 0, 0, 0, 1], mtu: 1500 }]));
    let a = WirePrefix { addr: "198.51.100.9".parse().unwrap(), len: 24 };
    assert!(st.apply(&Command::AddAddress { port: 0, addr: a }).unwrap());
    let t = st.build();
    assert!(t.is_local("198.51.100.9".parse().unwrap()));
    assert_eq!(t.route("198.51.100.77".parse().unwrap()).map(|r| r.port), Some(0));
    assert!(st.apply(&Command::AddAddress { port: 3, addr: a }).is_err(), "no such port");
    assert!(st.apply(&Command::RemoveAddress { port: 0, addr: a.addr }).unwrap());
    assert!(!st.build().is_local(a.addr));
    assert!(st.apply(&Command::RemoveAddress { port: 0, addr: a.addr }).is_err());
}

/// Peer discovery (mpsa-04 section 4): a learned prefix joins a group's
/// member table and a withdrawn one leaves it, the group's SAs staying;
/// the prefix that left is discarded from then on (fail closed), and a
/// group that does not exist, or a member of the other family, is refused.
#[test]
fn group_members_replaced_in_place() {
    use crate::tables::PortInfo;
    let mut base = Tables::new(vec![PortInfo { mac: [2, 0, 0, 0, 0, 1], mtu: 1500 }]);
    base.add_local("192.0.2.1".parse().unwrap());
    let mut st = TableState::new(base);
    st.set_fail_closed(true);
    let t0 = Instant::now();
    st.apply_at(&group_cmd(0x3001, 0, 0), t0).unwrap();
    let p = |a: &str, len| WirePrefix { addr: a.parse().unwrap(), len };
    let d: IpAddr = "192.0.2.4".parse().unwrap();
    let learned = vec![(p("10.2.0.0", 16), "192.0.2.2".parse().unwrap()), (p("10.4.0.0", 16), d)];
    st.apply(&Command::SetGroupMembers { group: "branches".into(), members: learned }).unwrap();
    let t = st.build();
    assert_eq!((t.in_sas.len(), t.out_sas.len()), (1, 1), "the SA stays");
    let sources = t.group_sources(0).unwrap();
    assert_eq!(sources.member("10.4.1.1".parse().unwrap()), Some(d), "learned");
    assert_eq!(sources.member("10.3.1.1".parse().unwrap()), None, "withdrawn");
    assert!(matches!(t.policy("10.4.1.1".parse().unwrap()), Some(Policy::ProtectGroup(_))));
    assert_eq!(t.policy("10.3.1.1".parse().unwrap()), Some(Policy::Discard), "once covered: discarded");
    let unknown = Command::SetGroupMembers { group: "nope".into(), members: vec![] };
    assert!(st.apply(&unknown).unwrap_err().contains("no group"));
    let v6 = Command::SetGroupMembers {
        group: "branches".into(),
        members: vec![(p("10.5.0.0", 16), "2001:db8::5".parse().unwrap())],
    };
    assert!(st.apply(&v6).unwrap_err().contains("family"));
    assert_eq!(st.build().group_sources(0).unwrap().member("10.4.1.1".parse().unwrap()), Some(d), "kept");
}

/// `[control] no_match = "discard"` (RFC 4301 4.4.1, issue 15): what no
/// policy matches is discarded, but for the `bypass` prefixes; a policy or
/// group of the control plane still wins where it has one.
#[test]
fn no_match_discards_but_for_the_bypass_prefixes() {
    use crate::tables::PortInfo;
    let mut base = Tables::new(vec![PortInfo { mac: [2, 0, 0, 0, 0, 1], mtu: 1500 }]);
    base.add_local("192.0.2.1".parse().unwrap());
    let mut st = TableState::new(base);
    assert_eq!(st.build().policy("172.16.0.1".parse().unwrap()), None, "by default: no policy, bypassed");
    st.set_no_match_discard(Some(vec!["10.1.1.0/24".parse().unwrap(), "2001:db8:1::/48".parse().unwrap()]));
    st.apply(&Command::InstallSa(spec(0x21, Direction::Out))).unwrap();
    let tunnel = WirePrefix { addr: "10.9.0.0".parse().unwrap(), len: 16 };
    st.apply(&Command::SetPolicy { dst: tunnel, action: PolicyAction::Protect(0x21) }).unwrap();
    let t = st.build();
    let at = |a: &str| t.policy(a.parse().unwrap());
    assert_eq!(at("172.16.0.1"), Some(Policy::Discard));
    assert_eq!(at("2001:db8:9::1"), Some(Policy::Discard), "IPv6 too");
    assert_eq!(at("10.1.1.7"), Some(Policy::Bypass));
    assert_eq!(at("2001:db8:1::7"), Some(Policy::Bypass));
    assert!(matches!(at("10.9.1.1"), Some(Policy::Protect(_))));
}
