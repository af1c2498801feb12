//! ESP byte-correctness against an implementation nobody here wrote:
//! ../shared/interop/esp-oracle (Scapy's IPsec layer), through the real
//! `gw-dataplane` on net_pcap ports.
//!
//! One gateway run carries 14 SAs at once: every cipher with both outer
//! families, NAT-T on and off across them, two with ESN crossing 2^32,
//! each SA's traffic mixing inner IPv4 and IPv6. Outbound: our ESP output,
//! split by SPI, must decrypt in the oracle to exactly the input packets.
//! Inbound: the oracle's ESP, fed to our WAN port, must come out of our LAN
//! port as exactly the packets the oracle encrypted. IPv6 NAT-T output
//! must carry a right, non-zero UDP checksum (RFC 8200 8.1), which the
//! oracle does not check, and IPv6 NAT-T input with a zero or wrong one is
//! dropped and counted. Needs root and Debian's python3-scapy.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use dataplane::crypto::Algorithm;
use dataplane::pcap;
use dataplane::wire::{esp, ipproto, ipv4, ipv6, udp};

struct Case {
    k: usize,
    alg: Algorithm,
    outer_v6: bool,
    natt: bool,
    esn: bool,
}

impl Case {
    fn out_spi(&self) -> u32 {
        0x1000 + self.k as u32
    }
    fn in_spi(&self) -> u32 {
        0x2000 + self.k as u32
    }
    fn local(&self) -> String {
        if self.outer_v6 {
            "2001:db8:ffff::1".into()
        } else {
            "192.0.2.1".into()
        }
    }
    fn remote(&self) -> String {
        if self.outer_v6 {
            format!("2001:db8:ffff::{:x}", 0x100 + self.k)
        } else {
            format!("192.0.2.{}", 100 + self.k)
        }
    }
    fn first_seq(&self) -> u64 {
        if self.esn {
            u32::MAX as u64 - 2
        } else {
            1
        }
    }
    fn hexkey(&self, n: usize, seed: usize) -> String {
        (0..n).map(|i| format!("{:02x}", (seed * 31 + self.k * 7 + i) as u8)).collect()
    }
    fn keys(&self, dir: usize) -> (String, String) {
        (self.hexkey(self.alg.enc_key_len(), 1 + dir), self.hexkey(self.alg.auth_key_len(), 3 + dir))
    }
    /// LAN -> remote LAN (what we encrypt): inner v4 and v6 mixed.
    fn outbound_clear(&self) -> Vec<Vec<u8>> {
        let d4 = format!("10.2.{}.20", self.k);
        let d6 = format!("2001:db8:b:{:x}::20", self.k);
        [(false, 64), (true, 100), (false, 1400), (true, 1400), (false, 29), (true, 48)]
            .iter()
            .enumerate()
            .map(|(i, &(v6, len))| {
                if v6 {
                    common::udp_frame("2001:db8:a::10", &d6, len, i as u8)
                } else {
                    common::udp_frame("10.1.0.10", &d4, len, i as u8)
                }
            })
            .collect()
    }
    /// Remote LAN -> our LAN (what the oracle encrypts for us).
    fn inbound_clear(&self) -> Vec<Vec<u8>> {
        let s4 = format!("10.2.{}.20", self.k);
        let s6 = format!("2001:db8:b:{:x}::20", self.k);
        [(true, 64), (false, 100), (true, 1400), (false, 1400), (false, 28), (true, 49)]
            .iter()
            .enumerate()
            .map(|(i, &(v6, len))| {
                if v6 {
                    common::udp_frame(&s6, "2001:db8:a::10", len, 100 + i as u8)
                } else {
                    common::udp_frame(&s4, "10.1.0.10", len, 100 + i as u8)
                }
            })
            .collect()
    }
}

fn cases() -> Vec<Case> {
    let mut v = Vec::new();
    for (i, alg) in Algorithm::ALL.into_iter().enumerate() {
        for outer_v6 in [false, true] {
            let natt = (i + outer_v6 as usize) % 2 == 1;
            v.push(Case { k: v.len(), alg, outer_v6, natt, esn: false });
        }
    }
    v.push(Case { k: v.len(), alg: Algorithm::AesGcm128, outer_v6: false, natt: true, esn: true });
    v.push(Case { k: v.len(), alg: Algorithm::AesCbc256HmacSha256, outer_v6: true, natt: false, esn: true });
    v
}

fn config(cases: &[Case]) -> String {
    let mut c = String::from(
        r#"mode = "gateway"
[eal]
lcores = "0,1"
[[port]]
name = "lan"
device = "net_null0"
addresses = ["10.1.0.1/16", "2001:db8:a::1/48"]
mac = "02:00:00:00:01:01"
[[port]]
name = "wan"
device = "net_null1"
addresses = ["192.0.2.1/24", "2001:db8:ffff::1/64"]
mac = "02:00:00:00:02:02"
mtu = 9000
[[neighbor]]
ip = "10.1.0.10"
mac = "02:00:00:00:aa:aa"
[[neighbor]]
ip = "2001:db8:a::10"
mac = "02:00:00:00:aa:aa"
"#,
    );
    for cs in cases {
        let (ko, ao) = cs.keys(0);
        let (ki, ai) = cs.keys(1);
        let common = format!(
            "alg = \"{}\"\nlocal = \"{}\"\nremote = \"{}\"\nnatt = {}\nesn = {}\n",
            cs.alg,
            cs.local(),
            cs.remote(),
            cs.natt,
            cs.esn
        );
        c += &format!("[[neighbor]]\nip = \"{}\"\nmac = \"02:00:00:00:bb:{:02x}\"\n", cs.remote(), cs.k);
        c += &format!(
            "[[sa]]\nspi = {}\ndirection = \"out\"\nkey = \"{ko}\"\nauth_key = \"{ao}\"\nseq = {}\n{common}",
            cs.out_spi(),
            cs.first_seq() - 1
        );
        c += &format!(
            "[[sa]]\nspi = {}\ndirection = \"in\"\nkey = \"{ki}\"\nauth_key = \"{ai}\"\nreplay_window = 64\n{common}",
            cs.in_spi()
        );
        c += &format!(
            "[[policy]]\ndst = \"10.2.{k}.0/24\"\naction = \"protect\"\nsa = {s}\n[[policy]]\ndst = \"2001:db8:b:{k:x}::/64\"\naction = \"protect\"\nsa = {s}\n",
            k = cs.k,
            s = cs.out_spi()
        );
    }
    c
}

fn run_oracle(args: &[String]) -> String {
    common::run_ok(&common::oracle(), args)
}

fn oracle_sa_args(cs: &Case, spi: u32, dir: usize, input: &Path, output: &Path) -> Vec<String> {
    let (k, a) = cs.keys(dir);
    let mut v = vec![
        "--spi".to_string(),
        format!("{spi:#x}"),
        "--alg".into(),
        cs.alg.name().into(),
        "--key".into(),
        k,
        "--seq".into(),
        cs.first_seq().to_string(),
        "--in".into(),
        input.display().to_string(),
        "--out".into(),
        output.display().to_string(),
    ];
    if !a.is_empty() {
        v.extend(["--auth-key".into(), a]);
    }
    if cs.natt {
        v.push("--natt".into());
    }
    if cs.esn {
        v.push("--esn".into());
    }
    v
}

/// SPI of an ESP frame (raw or UDP-encapsulated) from our WAN port.
fn spi_of(frame: &[u8]) -> u32 {
    let ip = common::ip_of(frame);
    let (proto, off) = if ip[0] >> 4 == 6 {
        ipv6::Packet::new_checked(ip).unwrap().upper_layer().unwrap()
    } else {
        let p = ipv4::Packet::new_checked(ip).unwrap();
        (p.protocol(), p.header_len())
    };
    let off = if proto == ipproto::UDP { off + udp::HEADER_LEN } else { off };
    esp::Packet::new_checked(&ip[off..]).unwrap().spi()
}

/// Scapy 2.5 leaves the UDP length of its IPv4 NAT-T packets at 8 (header
/// only), which a strict receiver (ours) drops as truncated. Repair the
/// oracle's output, and only that field, from the IPv4 total length.
fn fix_scapy_udp_len(mut f: Vec<u8>) -> Vec<u8> {
    let ip = &f[14..];
    if ip[0] >> 4 == 4 && ip[9] == ipproto::UDP {
        let p = ipv4::Packet::new_checked(ip).unwrap();
        let (hl, total) = (p.header_len(), p.total_len());
        let at = 14 + hl + 4;
        let want = (total - hl) as u16;
        if u16::from_be_bytes([f[at], f[at + 1]]) == 8 && want > 8 {
            f[at..at + 2].copy_from_slice(&want.to_be_bytes());
        }
    }
    f
}

/// Scapy 2.5 leaves the UDP checksum of its IPv6 NAT-T packets at zero,
/// which RFC 8200 8.1 forbids and a receiver (ours, Linux) discards. Repair
/// that field, and only it, as a correct sender would have set it.
fn fix_scapy_udp6_checksum(mut f: Vec<u8>) -> Vec<u8> {
    let ip = &f[14..];
    if ip[0] >> 4 == 6 {
        let p = ipv6::Packet::new_checked(ip).unwrap();
        let (proto, off) = p.upper_layer().unwrap();
        let (src, dst, end) = (p.src().into(), p.dst().into(), 14 + p.total_len());
        let u = 14 + off;
        if proto == ipproto::UDP && f[u + 6..u + 8] == [0, 0] {
            let c = udp::checksum_of(src, dst, &f[u..end]);
            udp::set_checksum(&mut f[u..end], c);
        }
    }
    f
}

/// The UDP checksum of every IPv6 NAT-T frame we send: present and right
/// (RFC 8200 8.1). Scapy's decapsulation ignores it, so the oracle cannot
/// tell (../shared/interop/NOTES.md). Returns how many were checked.
fn check_udp6_checksums(frames: &[Vec<u8>]) -> usize {
    let mut n = 0;
    for f in frames {
        let ip = common::ip_of(f);
        if ip[0] >> 4 != 6 {
            continue;
        }
        let p = ipv6::Packet::new_checked(ip).unwrap();
        let (proto, off) = p.upper_layer().unwrap();
        if proto != ipproto::UDP {
            continue;
        }
        let dgram = &ip[off..p.total_len()];
        let u = udp::Packet::new_checked(dgram).unwrap();
        assert_ne!(u.checksum(), 0, "zero UDP checksum over IPv6 (RFC 8200 8.1)");
        assert_eq!(udp::verify_checksum(p.src().into(), p.dst().into(), dgram), Ok(()), "UDP checksum");
        n += 1;
    }
    n
}

#[test]
#[ignore = "runs the DPDK EAL (root): ./test.sh runs it with --include-ignored"]
fn gateway_esp_matches_the_scapy_oracle_both_ways() {
    let dir = tempfile::tempdir().unwrap();
    let d = |n: &str| dir.path().join(n);
    let cases = cases();

    // Inbound input: the oracle encrypts each SA's clear packets.
    let mut wan_in: Vec<Vec<u8>> = Vec::new();
    for cs in &cases {
        let clear = d(&format!("in-clear-{}.pcap", cs.k));
        let enc = d(&format!("in-esp-{}.pcap", cs.k));
        pcap::write_file(&clear, &cs.inbound_clear()).unwrap();
        let mut args = vec!["encap".to_string(), "--src".into(), cs.remote(), "--dst".into(), cs.local()];
        args.extend(oracle_sa_args(cs, cs.in_spi(), 1, &clear, &enc));
        run_oracle(&args);
        wan_in
            .extend(pcap::read_packets(&enc).unwrap().into_iter().map(fix_scapy_udp_len).map(fix_scapy_udp6_checksum));
    }
    // Two copies of an IPv6 NAT-T frame, one with a zero UDP checksum and
    // one with a wrong one: both discarded and counted, before ESP sees
    // them (RFC 8200 8.1, RFC 1122 4.1.3.4).
    let v6_natt = cases.iter().position(|c| c.outer_v6 && c.natt).expect("an IPv6 NAT-T case") * 6;
    for checksum in [0u16, 0x1234] {
        let mut f = wan_in[v6_natt].clone();
        f[14 + 40 + 6..14 + 40 + 8].copy_from_slice(&checksum.to_be_bytes());
        wan_in.push(f);
    }
    let lan_in: Vec<Vec<u8>> = cases.iter().flat_map(|c| c.outbound_clear()).collect();
    pcap::write_file(&d("lan_in.pcap"), &lan_in).unwrap();
    pcap::write_file(&d("wan_in.pcap"), &wan_in).unwrap();
    std::fs::write(d("gw.toml"), config(&cases)).unwrap();

    let stdout = common::run_pcap_gateway(dir.path(), "gw-oracle");
    assert!(stdout.contains("counters drops bad_udp_checksum=1 zero_udp_checksum=1\n"), "{stdout}");
    let n = cases.len() * 6;
    assert!(stdout.contains(&format!("encrypted={n} decrypted={n}")), "{stdout}");

    // Outbound: split our ESP by SPI and let the oracle decrypt it.
    let wan_out = pcap::read_packets(&d("wan_out.pcap")).unwrap();
    assert_eq!(wan_out.len(), n);
    let v6_natt_sas = cases.iter().filter(|c| c.outer_v6 && c.natt).count();
    assert_eq!(check_udp6_checksums(&wan_out), v6_natt_sas * 6);
    let mut by_spi: BTreeMap<u32, Vec<Vec<u8>>> = BTreeMap::new();
    for f in wan_out {
        by_spi.entry(spi_of(&f)).or_default().push(f);
    }
    for cs in &cases {
        let esp_pcap = d(&format!("out-esp-{}.pcap", cs.k));
        let dec = d(&format!("out-dec-{}.pcap", cs.k));
        let clear = d(&format!("out-clear-{}.pcap", cs.k));
        pcap::write_file(&esp_pcap, by_spi.get(&cs.out_spi()).expect("ESP for every SA")).unwrap();
        pcap::write_file(&clear, &cs.outbound_clear()).unwrap();
        let mut args = vec!["decap".to_string()];
        args.extend(oracle_sa_args(cs, cs.out_spi(), 0, &esp_pcap, &dec));
        let text = run_oracle(&args);
        assert!(text.contains("6 ok, 0 failed"), "{}: {text}", cs.alg);
        let cmp = run_oracle(&["compare".into(), dec.display().to_string(), clear.display().to_string()]);
        assert!(cmp.contains("same: 6 packets"), "{}: {cmp}", cs.alg);
    }

    // Inbound: what left our LAN port is exactly what the oracle encrypted.
    let lan_out = pcap::read_packets(&d("lan_out.pcap")).unwrap();
    let want: Vec<Vec<u8>> = cases.iter().flat_map(|c| c.inbound_clear()).collect();
    assert_eq!(lan_out.len(), want.len());
    for (i, (got, want)) in lan_out.iter().zip(&want).enumerate() {
        assert_eq!(common::ip_of(got), common::ip_of(want), "inbound packet {i}");
        assert_eq!(&got[0..6], &[2, 0, 0, 0, 0xaa, 0xaa], "to the LAN host's MAC");
        assert_eq!(&got[6..12], &[2, 0, 0, 0, 1, 1], "from our LAN MAC");
    }
}
