//! Access control on group traffic (mpsa-04 section 5): a group SA gives
//! no data origin authentication, so an endpoint accepts a group packet
//! only when its inner source is a prefix of the member it came from, by
//! outer source address. Everything else is dropped as
//! `group_source_mismatch`: a member sending from another member's prefix
//! or from a prefix nobody has, and a holder of the key at an address no
//! member has. Both outer families, both inner families, NAT-T too.

use std::sync::Arc;

use dataplane::buf::VecBuf;
use dataplane::config::Config;
use dataplane::drop::DropReason;
use dataplane::pipeline::{Verdict, Worker};
use dataplane::tables::Tables;

mod common;

/// The three members: (IPv4 LAN, IPv6 LAN) and an index for addresses.
const LANS: [(&str, &str); 3] =
    [("10.1.0.0/16", "2001:db8:1::/48"), ("10.2.0.0/16", "2001:db8:2::/48"), ("10.3.0.0/16", "2001:db8:3::/48")];

/// Outer address of member `i` (0-based); 3 is an address no member has.
fn outer(i: usize, v6: bool) -> String {
    if v6 {
        format!("2001:db8:ffff::{}", i + 1)
    } else {
        format!("192.0.2.{}", i + 1)
    }
}

fn host(i: usize, v6: bool) -> String {
    if v6 {
        format!("2001:db8:{}::10", i + 1)
    } else {
        format!("10.{}.0.10", i + 1)
    }
}

/// Endpoint at outer address `me` (a member's, or one no member has) whose
/// LAN is member `lan`'s, with the group's SA and its three members.
fn endpoint(me: usize, lan: usize, v6: bool, natt: bool) -> Worker {
    let (l4, l6) = LANS[lan];
    let plen = if v6 { 64 } else { 24 };
    let mut neighbors = String::new();
    for i in 0..3 {
        neighbors += &format!("[[neighbor]]\nip = \"{}\"\nmac = \"02:00:00:00:00:0{}\"\n", outer(i, v6), i + 1);
    }
    for i in 0..3 {
        for v in [false, true] {
            neighbors += &format!("[[neighbor]]\nip = \"{}\"\nmac = \"02:00:00:00:01:0{}\"\n", host(i, v), i + 1);
        }
    }
    let members: Vec<String> = (0..3)
        .flat_map(|i| {
            let a = outer(i, v6);
            [LANS[i].0, LANS[i].1].map(|p| format!("{{ prefix = \"{p}\", address = \"{a}\" }}"))
        })
        .collect();
    let (gw4, gw6) = (l4.replace(".0.0/16", ".0.1/16"), l6.replace("::/48", "::1/48"));
    let text = format!(
        r#"
mode = "gateway"
[[port]]
name = "lan"
device = "net_null0"
addresses = ["{gw4}", "{gw6}"]
[[port]]
name = "wan"
device = "net_null1"
addresses = ["{me}/{plen}"]
{neighbors}
[[group]]
name = "branches"
spi = 0x4000
alg = "aes128gcm"
key = "000102030405060708090a0b0c0d0e0f10111213"
local = "{me}"
natt = {natt}
members = [{members}]
"#,
        me = outer(me, v6),
        members = members.join(", "),
    );
    let cfg = Config::parse(&text, "group.toml").unwrap();
    Worker::new(Arc::new(Tables::from_config(&cfg, "group.toml", &[]).unwrap()))
}

/// What `from` makes of a LAN packet `src` -> `dst` (encrypted with the
/// group SA to the member owning `dst`), handed to `to`.
fn send(from: &mut Worker, to: &mut Worker, src: &str, dst: &str) -> Verdict {
    let mut buf = VecBuf::new(&common::udp_frame(src, dst, 120, 1));
    assert_eq!(from.process(&mut buf), Verdict::Tx(1), "{src} -> {dst} leaves encrypted");
    to.process(&mut buf)
}

#[test]
fn mpsa_04_5_group_packets_only_from_the_senders_own_prefixes() {
    for outer_v6 in [false, true] {
        for natt in [false, true] {
            let mut a = endpoint(0, 0, outer_v6, natt);
            let mut b = endpoint(1, 1, outer_v6, natt);
            for inner_v6 in [false, true] {
                let ctx = format!("outer v6 {outer_v6}, NAT-T {natt}, inner v6 {inner_v6}");
                let to_b = host(1, inner_v6);
                // A from its own LAN: delivered on B's LAN.
                assert_eq!(send(&mut a, &mut b, &host(0, inner_v6), &to_b), Verdict::Tx(0), "{ctx}");
                // A claiming C's LAN: A's key is good, its source is not.
                assert_eq!(
                    send(&mut a, &mut b, &host(2, inner_v6), &to_b),
                    Verdict::Drop(DropReason::GroupSourceMismatch),
                    "{ctx}: another member's prefix"
                );
                // A from a prefix no member has.
                let nobody = if inner_v6 { "2001:db8:99::1" } else { "172.16.0.1" };
                assert_eq!(
                    send(&mut a, &mut b, nobody, &to_b),
                    Verdict::Drop(DropReason::GroupSourceMismatch),
                    "{ctx}: no member's prefix"
                );
                // B's own prefix coming back from outside.
                assert_eq!(
                    send(&mut a, &mut b, &host(1, inner_v6), &host(1, inner_v6)),
                    Verdict::Drop(DropReason::GroupSourceMismatch),
                    "{ctx}: B's own prefix from A"
                );
            }
            // The key at an address no member has, sending from A's LAN.
            let mut stranger = endpoint(3, 0, outer_v6, natt);
            assert_eq!(
                send(&mut stranger, &mut b, &host(0, false), &host(1, false)),
                Verdict::Drop(DropReason::GroupSourceMismatch),
                "outer v6 {outer_v6}, NAT-T {natt}: outer source no member has"
            );
            // The drop is counted under its name.
            assert_eq!(b.stats().drop_count(DropReason::GroupSourceMismatch), 7);
            assert_eq!(DropReason::GroupSourceMismatch.name(), "group_source_mismatch");
        }
    }
}
