//! ARP through the real gw-dataplane: a host's request for the gateway's
//! LAN address gets a reply, and traffic to an on-link address nobody
//! resolved yet makes the gateway ask for it (the packet itself is
//! dropped and counted as no_neighbor).

mod common;

use std::process::Command;

use dataplane::pcap;
use dataplane::wire::{arp, ethernet};

#[test]
#[ignore = "runs the DPDK EAL (root): ./test.sh runs it with --include-ignored"]
fn arp_is_answered_and_unknown_next_hops_are_solicited() {
    let dir = tempfile::tempdir().unwrap();
    let d = |n: &str| dir.path().join(n);
    let host_mac = [2, 0, 0, 0, 0, 0x10];
    let mut req = vec![0u8; 42];
    ethernet::emit(&mut req, ethernet::BROADCAST, host_mac, ethernet::ETHERTYPE_ARP);
    arp::Repr {
        op: arp::OP_REQUEST,
        sender_mac: host_mac,
        sender_ip: "10.1.0.10".parse().unwrap(),
        target_mac: [0; 6],
        target_ip: "10.1.0.1".parse().unwrap(),
    }
    .emit(&mut req[14..]);
    let to_unknown = common::udp_frame("10.1.0.10", "10.1.0.77", 100, 1);
    pcap::write_file(&d("lan_in.pcap"), &[req, to_unknown]).unwrap();
    pcap::write_file(&d("empty.pcap"), &Vec::<Vec<u8>>::new()).unwrap();
    std::fs::write(
        d("gw.toml"),
        r#"mode = "gateway"
[[port]]
name = "lan"
device = "net_null0"
addresses = ["10.1.0.1/16"]
mac = "02:00:00:00:01:01"
[[port]]
name = "wan"
device = "net_null1"
addresses = ["192.0.2.1/24"]
"#,
    )
    .unwrap();
    let lan = format!(
        "lan=net_pcap0,rx_pcap={},tx_pcap={},tx_pcap={}",
        d("lan_in.pcap").display(),
        d("lan_out.pcap").display(),
        d("lan_main.pcap").display()
    );
    let wan = format!(
        "wan=net_pcap1,rx_pcap={},tx_pcap={},tx_pcap={}",
        d("empty.pcap").display(),
        d("wan_out.pcap").display(),
        d("wan_main.pcap").display()
    );
    let bin = std::env::var("GW_DATAPLANE_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_gw-dataplane").to_string());
    let out = Command::new(bin)
        .args(["--config", d("gw.toml").to_str().unwrap(), "--port", &lan, "--port", &wan])
        .args(["--file-prefix", &format!("gw-neigh-{}", std::process::id()), "--exit-when-idle", "500"])
        .args(["--stats-interval", "0"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("no_neighbor=1"), "{stdout}");
    let sent = pcap::read_packets(&d("lan_main.pcap")).unwrap();
    assert_eq!(sent.len(), 2, "an ARP reply and an ARP request: {sent:?}");
    let reply = arp::Repr::parse(&sent[0][14..]).unwrap();
    assert_eq!(&sent[0][0..6], &host_mac);
    assert_eq!(
        (reply.op, reply.sender_ip, reply.sender_mac),
        (arp::OP_REPLY, "10.1.0.1".parse().unwrap(), [2, 0, 0, 0, 1, 1])
    );
    let ask = arp::Repr::parse(&sent[1][14..]).unwrap();
    assert_eq!(&sent[1][0..6], &ethernet::BROADCAST);
    assert_eq!(
        (ask.op, ask.target_ip, ask.sender_ip),
        (arp::OP_REQUEST, "10.1.0.77".parse().unwrap(), "10.1.0.1".parse().unwrap())
    );
}
