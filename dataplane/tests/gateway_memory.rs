//! In-memory system test: two gateways built from config text, wired
//! back to back through their worker pipelines (no DPDK). LAN A ->
//! gateway A (encrypt) -> wire -> gateway B (decrypt) -> LAN B and back,
//! for every cipher, both outer families and NAT-T; then hostile input.

use std::sync::Arc;

use dataplane::buf::{PacketBuf, VecBuf};
use dataplane::config::Config;
use dataplane::drop::DropReason;
use dataplane::pipeline::{Verdict, Worker};
use dataplane::tables::Tables;

mod common;

use dataplane::wire::ipv4;

const MAC_A_LAN: &str = "02:00:00:00:0a:01";
const MAC_A_WAN: &str = "02:00:00:00:0a:02";
const MAC_B_WAN: &str = "02:00:00:00:0b:02";
const MAC_B_LAN: &str = "02:00:00:00:0b:01";
const MAC_HOST_A: &str = "02:00:00:00:aa:aa";
const MAC_HOST_B: &str = "02:00:00:00:bb:bb";

/// Config of gateway `me` (A: LAN 10.1/16 + 2001:db8:a::/48, B: LAN
/// 10.2/16 + 2001:db8:b::/48) with SAs to the other over outer `v6`.
fn gateway(me: char, alg: &str, v6: bool, natt: bool) -> String {
    let (my_lan4, my_lan6, peer_lan4, peer_lan6) = if me == 'a' {
        ("10.1.0.1/16", "2001:db8:a::1/48", "10.2.0.0/16", "2001:db8:b::/48")
    } else {
        ("10.2.0.1/16", "2001:db8:b::1/48", "10.1.0.0/16", "2001:db8:a::/48")
    };
    let (wa, wb) = if v6 { ("2001:db8:ffff::a", "2001:db8:ffff::b") } else { ("192.0.2.1", "192.0.2.2") };
    let (me_w, peer_w) = if me == 'a' { (wa, wb) } else { (wb, wa) };
    let plen = if v6 { 64 } else { 24 };
    let (lan_mac, wan_mac, peer_wan_mac, host_mac) = if me == 'a' {
        (MAC_A_LAN, MAC_A_WAN, MAC_B_WAN, MAC_HOST_A)
    } else {
        (MAC_B_LAN, MAC_B_WAN, MAC_A_WAN, MAC_HOST_B)
    };
    let host4 = if me == 'a' { "10.1.0.10" } else { "10.2.0.20" };
    let host6 = if me == 'a' { "2001:db8:a::10" } else { "2001:db8:b::20" };
    let (out_spi, in_spi) = if me == 'a' { (0x1001, 0x2002) } else { (0x2002, 0x1001) };
    let key_len = match alg {
        "aes128gcm" => 20,
        "aes256gcm" => 36,
        a if a.starts_with("aes128") => 16,
        _ => 32,
    };
    let auth_len = if alg.ends_with("sha1") {
        20
    } else if alg.ends_with("sha256") {
        32
    } else {
        0
    };
    let hex = |n: usize, seed: u8| (0..n).map(|i| format!("{:02x}", seed.wrapping_add(i as u8))).collect::<String>();
    // Each direction has its own keys; A's outbound = B's inbound.
    let key_ab = hex(key_len, 1);
    let key_ba = hex(key_len, 101);
    let auth_ab = hex(auth_len, 51);
    let auth_ba = hex(auth_len, 151);
    let (k_out, a_out, k_in, a_in) =
        if me == 'a' { (&key_ab, &auth_ab, &key_ba, &auth_ba) } else { (&key_ba, &auth_ba, &key_ab, &auth_ab) };
    format!(
        r#"
mode = "gateway"
[[port]]
name = "lan"
device = "net_null0"
addresses = ["{my_lan4}", "{my_lan6}"]
mac = "{lan_mac}"
[[port]]
name = "wan"
device = "net_null1"
addresses = ["{me_w}/{plen}"]
mac = "{wan_mac}"
[[neighbor]]
ip = "{peer_w}"
mac = "{peer_wan_mac}"
[[neighbor]]
ip = "{host4}"
mac = "{host_mac}"
[[neighbor]]
ip = "{host6}"
mac = "{host_mac}"
[[sa]]
spi = {out_spi}
direction = "out"
alg = "{alg}"
key = "{k_out}"
auth_key = "{a_out}"
local = "{me_w}"
remote = "{peer_w}"
natt = {natt}
[[sa]]
spi = {in_spi}
direction = "in"
alg = "{alg}"
key = "{k_in}"
auth_key = "{a_in}"
local = "{me_w}"
remote = "{peer_w}"
natt = {natt}
replay_window = 128
inner_src = ["{peer_lan4}", "{peer_lan6}"]
[[policy]]
dst = "{peer_lan4}"
action = "protect"
sa = {out_spi}
[[policy]]
dst = "{peer_lan6}"
action = "protect"
sa = {out_spi}
"#
    )
}

fn worker(text: &str) -> Worker {
    let cfg = Config::parse(text, "test").unwrap();
    Worker::new(Arc::new(Tables::from_config(&cfg, "test", &[]).unwrap()))
}

fn lan_frame(_v6: bool, src: &str, dst: &str, len: usize, tag: u8) -> Vec<u8> {
    common::udp_frame(src, dst, len, tag)
}

#[test]
fn lan_to_lan_through_two_gateways_every_cipher_and_family() {
    for alg in ["aes128gcm", "aes256gcm", "aes128cbc-sha1", "aes256cbc-sha1", "aes128cbc-sha256", "aes256cbc-sha256"] {
        for outer_v6 in [false, true] {
            for natt in [false, true] {
                let mut a = worker(&gateway('a', alg, outer_v6, natt));
                let mut b = worker(&gateway('b', alg, outer_v6, natt));
                for (i, inner_v6) in [false, true, false, true].into_iter().enumerate() {
                    let (src, dst) =
                        if inner_v6 { ("2001:db8:a::10", "2001:db8:b::20") } else { ("10.1.0.10", "10.2.0.20") };
                    let sent = lan_frame(inner_v6, src, dst, 64 + 300 * i, i as u8);
                    let mut buf = VecBuf::new(&sent);
                    assert_eq!(a.process(&mut buf), Verdict::Tx(1), "{alg}: A sends on wan");
                    let wire = buf.data().to_vec();
                    assert_eq!(&wire[0..6], &[2, 0, 0, 0, 0x0b, 2], "to B's WAN MAC");
                    assert_eq!(
                        b.process(&mut buf),
                        Verdict::Tx(0),
                        "{alg} v6={outer_v6} natt={natt}: B delivers on lan"
                    );
                    let got = buf.data();
                    assert_eq!(&got[0..6], &[2, 0, 0, 0, 0xbb, 0xbb], "to the host's MAC");
                    assert_eq!(&got[14..], &sent[14..], "inner packet unchanged end to end");
                    // The same ESP packet again is a replay.
                    let mut again = VecBuf::new(&wire);
                    assert_eq!(b.process(&mut again), Verdict::Drop(DropReason::Replay));
                }
                // And back: B -> A.
                let sent = lan_frame(false, "10.2.0.20", "10.1.0.10", 100, 9);
                let mut buf = VecBuf::new(&sent);
                assert_eq!(b.process(&mut buf), Verdict::Tx(1));
                assert_eq!(a.process(&mut buf), Verdict::Tx(0));
                assert_eq!(&buf.data()[14..], &sent[14..]);
                let s = b.stats();
                let sa = &b.tables().in_sas[0];
                assert_eq!(sa.stats.get(dataplane::sa::STAT_PACKETS), 4);
                assert_eq!(sa.stats.get(dataplane::sa::STAT_REPLAY), 4);
                assert_eq!(s.drop_count(DropReason::Replay), 4);
            }
        }
    }
}

#[test]
fn hostile_and_unwanted_traffic_is_dropped_by_reason() {
    let mut a = worker(&gateway('a', "aes128gcm", false, true));
    let mut b = worker(&gateway('b', "aes128gcm", false, true));
    let mut esp = VecBuf::new(&lan_frame(false, "10.1.0.10", "10.2.0.20", 64, 1));
    assert_eq!(a.process(&mut esp), Verdict::Tx(1));
    let wire = esp.data().to_vec();

    // Every truncation of a valid ESP frame: a drop, never a panic.
    for cut in 0..wire.len() {
        let mut t = VecBuf::new(&wire[..cut]);
        assert!(matches!(b.process(&mut t), Verdict::Drop(_)), "cut {cut}");
    }
    // Unknown SPI (UDP 4500 payload starts at 14 + 20 + 8).
    let mut t = wire.clone();
    t[42..46].copy_from_slice(&0xdeadu32.to_be_bytes());
    assert_eq!(b.process(&mut VecBuf::new(&t)), Verdict::Drop(DropReason::UnknownSpi));
    // Bad ICV.
    let mut t = wire.clone();
    let n = t.len();
    t[n - 1] ^= 1;
    assert_eq!(b.process(&mut VecBuf::new(&t)), Verdict::Drop(DropReason::IcvFailed));
    // IKE on 4500 (non-ESP marker) and 500 go to the control plane.
    let mut ike = wire.clone();
    ike[42..46].copy_from_slice(&[0, 0, 0, 0]);
    assert_eq!(b.process(&mut VecBuf::new(&ike)), Verdict::Punt);
    let mut ike500 = wire.clone();
    ike500[36..38].copy_from_slice(&500u16.to_be_bytes());
    assert_eq!(b.process(&mut VecBuf::new(&ike500)), Verdict::Punt);
    // NAT keepalive: one 0xFF octet.
    let mut ka = wire[..42].to_vec();
    ka.push(0xff);
    ka[16..18].copy_from_slice(&29u16.to_be_bytes()); // IPv4 total length
    ka[38..40].copy_from_slice(&9u16.to_be_bytes()); // UDP length
    common::fix_ipv4_checksum(&mut ka);
    assert_eq!(b.process(&mut VecBuf::new(&ka)), Verdict::Drop(DropReason::NattKeepalive));
    // Bad IPv4 header checksum.
    let mut t = wire.clone();
    t[24] ^= 0xff;
    assert_eq!(b.process(&mut VecBuf::new(&t)), Verdict::Drop(DropReason::BadChecksum));
    // Not IP.
    let mut t = wire.clone();
    t[12..14].copy_from_slice(&0x88ccu16.to_be_bytes());
    assert_eq!(b.process(&mut VecBuf::new(&t)), Verdict::Drop(DropReason::UnsupportedEthertype));
    // ARP goes to the control plane.
    let mut t = wire.clone();
    t[12..14].copy_from_slice(&0x0806u16.to_be_bytes());
    assert_eq!(b.process(&mut VecBuf::new(&t)), Verdict::Punt);
    // Clear traffic with no route; TTL 1 in transit.
    let mut t = lan_frame(false, "10.1.0.10", "198.51.100.1", 64, 2);
    assert_eq!(a.process(&mut VecBuf::new(&t)), Verdict::Drop(DropReason::NoRoute));
    t = lan_frame(false, "10.1.0.10", "10.1.0.99", 64, 2);
    assert_eq!(a.process(&mut VecBuf::new(&t)), Verdict::Drop(DropReason::NoNeighbor));
    t[14 + 8] = 1;
    common::fix_ipv4_checksum(&mut t);
    // TTL 1 in transit: dropped, and an ICMP time exceeded goes back to
    // the source (RFC 792), quoting the packet.
    let mut te = VecBuf::new(&t);
    assert_eq!(a.process(&mut te), Verdict::Tx(0));
    let icmp = te.data();
    assert_eq!(&icmp[0..6], &[2, 0, 0, 0, 0xaa, 0xaa], "to the source host");
    let ip = ipv4::Packet::new_checked(&icmp[14..]).unwrap();
    assert!(ip.checksum_ok());
    assert_eq!((ip.protocol(), ip.dst(), ip.src()), (1, "10.1.0.10".parse().unwrap(), "10.1.0.1".parse().unwrap()));
    assert_eq!(&icmp[34..36], &[11, 0], "time exceeded");
    assert_eq!(dataplane::wire::checksum(&icmp[34..], 0), 0, "ICMP checksum");
    assert_eq!(&icmp[42..62], &t[14..34], "quotes the original header");
    assert_eq!(a.stats().drop_count(DropReason::TtlExceeded), 1);
    // Too big to encapsulate: without DF dropped (we do not fragment)...
    let big = lan_frame(false, "10.1.0.10", "10.2.0.20", 1480, 3);
    assert_eq!(a.process(&mut VecBuf::new(&big)), Verdict::Drop(DropReason::Oversize));
    // ...with DF, ICMP fragmentation needed with the tunnel's path MTU
    // (RFC 1191), so the host can send smaller packets.
    let mut df = big.clone();
    df[14 + 6] |= 0x40;
    common::fix_ipv4_checksum(&mut df);
    let mut ptb = VecBuf::new(&df);
    assert_eq!(a.process(&mut ptb), Verdict::Tx(0));
    let p = ptb.data();
    assert_eq!(&p[34..36], &[3, 4], "fragmentation needed");
    let mtu = u16::from_be_bytes([p[40], p[41]]) as usize;
    assert!((1400..1480).contains(&mtu), "path MTU {mtu}");
    // A packet of that size does pass.
    let fits = lan_frame(false, "10.1.0.10", "10.2.0.20", mtu, 3);
    assert_eq!(a.process(&mut VecBuf::new(&fits)), Verdict::Tx(1));
    // IPv6 is never fragmented by routers: packet too big (RFC 4443 3.2).
    let big6 = lan_frame(true, "2001:db8:a::10", "2001:db8:b::20", 1480, 5);
    let mut ptb6 = VecBuf::new(&big6);
    assert_eq!(a.process(&mut ptb6), Verdict::Tx(0));
    let p = ptb6.data();
    assert_eq!((p[14 + 6], p[54]), (58, 2), "ICMPv6 packet too big");
    assert!(u32::from_be_bytes([p[58], p[59], p[60], p[61]]) >= 1280);
    let sum = dataplane::wire::sum_words(
        &p[54..],
        dataplane::wire::ipv6::pseudo_header_sum(
            "2001:db8:a::1".parse().unwrap(),
            "2001:db8:a::10".parse().unwrap(),
            58,
            p.len() - 54,
        ),
    );
    assert_eq!(dataplane::wire::fold(sum), 0xffff, "ICMPv6 checksum");
    // Inner source outside B's selector for this SA (10.1.0.0/16).
    let mut wrong = VecBuf::new(&lan_frame(false, "10.9.0.10", "10.2.0.20", 64, 4));
    assert_eq!(a.process(&mut wrong), Verdict::Tx(1));
    assert_eq!(b.process(&mut wrong), Verdict::Drop(DropReason::PolicyMismatch));
}

/// ESP in UDP over IPv6 carries a real UDP checksum (RFC 8200 8.1); a
/// receiver discards zero and wrong ones, and counts them. Over IPv4 zero
/// means "none" (RFC 768, RFC 3948 2.1) but a wrong one is still discarded
/// (RFC 1122 4.1.3.4).
#[test]
fn rfc8200_8_1_udp_checksums_of_esp_in_udp_are_sent_and_checked() {
    for v6 in [true, false] {
        let mut a = worker(&gateway('a', "aes128gcm", v6, true));
        let mut b = worker(&gateway('b', "aes128gcm", v6, true));
        let (src, dst) = if v6 { ("2001:db8:a::10", "2001:db8:b::20") } else { ("10.1.0.10", "10.2.0.20") };
        let (ip_len, wan_a, wan_b) = if v6 {
            (40, "2001:db8:ffff::a".parse().unwrap(), "2001:db8:ffff::b".parse().unwrap())
        } else {
            (20, "192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap())
        };
        let mut esp = VecBuf::new(&lan_frame(v6, src, dst, 200, 9));
        assert_eq!(a.process(&mut esp), Verdict::Tx(1));
        let wire = esp.data().to_vec();
        let u = 14 + ip_len;
        let udp = dataplane::wire::udp::Packet::new_checked(&wire[u..]).unwrap();
        if v6 {
            assert_ne!(udp.checksum(), 0, "never zero over IPv6");
            assert_eq!(dataplane::wire::udp::verify_checksum(wan_a, wan_b, &wire[u..]), Ok(()));
        } else {
            assert_eq!(udp.checksum(), 0, "RFC 3948 2.1: zero over IPv4");
        }
        assert_eq!(b.process(&mut VecBuf::new(&wire)), Verdict::Tx(0), "the right checksum passes");
        let mut wrong = wire.clone();
        wrong[u + 6..u + 8].copy_from_slice(&0x1234u16.to_be_bytes());
        let want_zero = if v6 { Verdict::Drop(DropReason::ZeroUdpChecksum) } else { Verdict::Tx(0) };
        // A fresh packet with its checksum zeroed (a replay of the first
        // would be dropped anyway); the wrong one is judged before ESP is.
        let mut fresh = VecBuf::new(&lan_frame(v6, src, dst, 200, 10));
        assert_eq!(a.process(&mut fresh), Verdict::Tx(1));
        let mut zero_fresh = fresh.data().to_vec();
        zero_fresh[u + 6..u + 8].fill(0);
        assert_eq!(b.process(&mut VecBuf::new(&zero_fresh)), want_zero, "v6={v6}");
        assert_eq!(b.process(&mut VecBuf::new(&wrong)), Verdict::Drop(DropReason::BadUdpChecksum), "v6={v6}");
        let stats = b.stats();
        assert_eq!(stats.drop_count(DropReason::ZeroUdpChecksum), v6 as u64);
        assert_eq!(stats.drop_count(DropReason::BadUdpChecksum), 1);
        assert_eq!(stats.drop_count(DropReason::Replay), 0, "refused before the SA saw it");
    }
}

#[test]
fn bad_gateway_configs_name_the_field() {
    let good = gateway('a', "aes128gcm", false, false);
    let err = |from: &str, to: &str| {
        let t = good.replacen(from, to, 1);
        assert_ne!(t, good, "replacement '{from}' applied");
        Config::parse(&t, "gw.toml").unwrap_err().to_string()
    };
    let e = err("alg = \"aes128gcm\"", "alg = \"des\"");
    assert!(e.contains("sa[0].alg") && e.contains("unknown algorithm"), "{e}");
    let e = err("key = \"0102", "key = \"zz02");
    assert!(e.contains("sa[0].key"), "{e}");
    let e = err("key = \"0102", "key = \"02");
    assert!(e.contains("sa[0]") && e.contains("20 octets"), "{e}");
    let e = err("remote = \"192.0.2.2\"", "remote = \"2001:db8::2\"");
    assert!(e.contains("sa[0]") && e.contains("not the same IP version"), "{e}");
    let e = err("sa = 4097", "sa = 7");
    assert!(e.contains("policy[0].sa") && e.contains("0x7"), "{e}");
    let e = err("mac = \"02:00:00:00:0a:01\"", "mac = \"02:00\"");
    assert!(e.contains("port[0].mac"), "{e}");
    let e = err("\"10.1.0.1/16\"", "\"10.1.0.1/99\"");
    assert!(e.contains("port[0].addresses[0]"), "{e}");
    let e = err("spi = 8194", "spi = 0");
    assert!(e.contains("sa[1]") && e.contains("SPI 0"), "{e}");
    // A transport-mode SA is selected by its two ends, not by prefixes.
    let e = err("spi = 8194", "spi = 8194\nmode = \"transport\"");
    assert!(e.contains("sa[1].inner_src") && e.contains("transport-mode"), "{e}");
    let e = err("spi = 8194", "spi = 8194\nmode = \"sideways\"");
    assert!(e.contains("mode") && e.contains("sideways"), "{e}");
}

/// A static [[group]] from config: A's traffic to B's prefix leaves with
/// the group SPI straight to B's outer address, and B decrypts it with
/// the same group entry.
#[test]
fn static_group_sa_from_config() {
    let endpoint = |lan: &str, wan: &str| {
        format!(
            r#"
mode = "gateway"
[[port]]
name = "lan"
device = "net_null0"
addresses = ["{lan}"]
[[port]]
name = "wan"
device = "net_null1"
addresses = ["{wan}/24"]
[[neighbor]]
ip = "192.0.2.1"
mac = "02:00:00:00:00:01"
[[neighbor]]
ip = "192.0.2.2"
mac = "02:00:00:00:00:02"
[[neighbor]]
ip = "10.2.0.20"
mac = "02:00:00:00:00:20"
[[group]]
name = "branches"
spi = 0x4000
alg = "aes256cbc-sha1"
key = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
auth_key = "a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3"
local = "{wan}"
members = [
  {{ prefix = "10.1.0.0/16", address = "192.0.2.1" }},
  {{ prefix = "10.2.0.0/16", address = "192.0.2.2" }},
  {{ prefix = "10.3.0.0/16", address = "192.0.2.3" }},
]
"#
        )
    };
    let mut a = worker(&endpoint("10.1.0.1/16", "192.0.2.1"));
    let mut b = worker(&endpoint("10.2.0.1/16", "192.0.2.2"));
    let sent = lan_frame(false, "10.1.0.10", "10.2.0.20", 200, 7);
    let mut buf = VecBuf::new(&sent);
    assert_eq!(a.process(&mut buf), Verdict::Tx(1));
    assert_eq!(&buf.data()[14 + 16..14 + 20], &[192, 0, 2, 2], "outer destination: member B");
    assert_eq!(&buf.data()[34..38], &0x4000u32.to_be_bytes(), "group SPI");
    let wire = buf.data().to_vec();
    assert_eq!(b.process(&mut buf), Verdict::Tx(0));
    assert_eq!(&buf.data()[14..], &sent[14..]);
    // No anti-replay on group SAs (mpsa-04 5.2.1): the same packet again passes.
    assert_eq!(b.process(&mut VecBuf::new(&wire)), Verdict::Tx(0));
    // A member whose MAC is not known yet: dropped, and solicited.
    let to_c = lan_frame(false, "10.1.0.10", "10.3.0.30", 200, 8);
    assert_eq!(a.process(&mut VecBuf::new(&to_c)), Verdict::Drop(DropReason::NoNeighbor));
    assert_eq!(a.resolve_queue().pop(), Some("192.0.2.3".parse().unwrap()), "the member is solicited");
    let e = Config::parse(&endpoint("10.1.0.1/16", "192.0.2.1").replace("192.0.2.2\" }", "2001:db8::2\" }"), "g.toml")
        .unwrap_err()
        .to_string();
    assert!(e.contains("group[0].members[1].address"), "{e}");
}
