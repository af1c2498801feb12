//! ESP transport mode (RFC 4303 3.1.1) against Scapy's IPsec layer, the
//! same independent implementation `esp_oracle.rs` uses, through the real
//! `gw-dataplane` on net_pcap ports.
//!
//! The gateway is the IPsec of hosts behind it (bump-in-the-wire, RFC 4301
//! 3.3): each SA's local end is a LAN host, its remote end a host beyond
//! the WAN, IPv4 and IPv6, GCM and CBC. Outbound: the LAN hosts' packets
//! leave with ESP after their own IP header (NAT-T cases in UDP 4500),
//! and the oracle decrypts them to exactly the input. Inbound: the
//! oracle's transport-mode ESP to the LAN hosts comes out of our LAN port
//! as exactly the packets the oracle encrypted. ESP from a host the SA
//! does not end at is dropped and counted. Needs root and Debian's
//! python3-scapy.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use dataplane::crypto::Algorithm;
use dataplane::pcap;
use dataplane::wire::{esp, ipproto, ipv4, ipv6, udp};

fn transport_encap() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/oracle-transport-encap.py"))
}

struct Case {
    k: usize,
    alg: Algorithm,
    v6: bool,
    /// NAT-T outbound (our ESP in UDP 4500; checked one way: a host
    /// behind us has no UDP 4500 of ours to receive on).
    natt: bool,
}

impl Case {
    fn out_spi(&self) -> u32 {
        0x3000 + self.k as u32
    }
    fn in_spi(&self) -> u32 {
        0x4000 + self.k as u32
    }
    /// The LAN host this SA protects.
    fn host(&self) -> String {
        if self.v6 {
            format!("2001:db8:a::{:x}", 0x10 + self.k)
        } else {
            format!("10.1.0.{}", 10 + self.k)
        }
    }
    /// The host at the far end.
    fn peer(&self) -> String {
        if self.v6 {
            format!("2001:db8:ffff::{:x}", 0x100 + self.k)
        } else {
            format!("192.0.2.{}", 100 + self.k)
        }
    }
    fn hexkey(&self, n: usize, seed: usize) -> String {
        (0..n).map(|i| format!("{:02x}", (seed * 17 + self.k * 5 + i) as u8)).collect()
    }
    fn keys(&self, dir: usize) -> (String, String) {
        (self.hexkey(self.alg.enc_key_len(), 1 + dir), self.hexkey(self.alg.auth_key_len(), 3 + dir))
    }
    fn outbound_clear(&self) -> Vec<Vec<u8>> {
        [64usize, 100, 1400, if self.v6 { 48 } else { 29 }]
            .iter()
            .enumerate()
            .map(|(i, &len)| common::udp_frame(&self.host(), &self.peer(), len, i as u8))
            .collect()
    }
    fn inbound_clear(&self) -> Vec<Vec<u8>> {
        [80usize, 1400, 61]
            .iter()
            .enumerate()
            .map(|(i, &len)| common::udp_frame(&self.peer(), &self.host(), len, 50 + i as u8))
            .collect()
    }
}

fn cases() -> Vec<Case> {
    let mut v = Vec::new();
    for alg in
        [Algorithm::AesGcm128, Algorithm::AesGcm256, Algorithm::AesCbc128HmacSha1, Algorithm::AesCbc256HmacSha256]
    {
        for v6 in [false, true] {
            v.push(Case { k: v.len(), alg, v6, natt: false });
        }
    }
    v.push(Case { k: v.len(), alg: Algorithm::AesGcm128, v6: false, natt: true });
    v.push(Case { k: v.len(), alg: Algorithm::AesCbc128HmacSha256, v6: true, natt: true });
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
"#,
    );
    for cs in cases {
        let (ko, ao) = cs.keys(0);
        let (ki, ai) = cs.keys(1);
        c += &format!("[[neighbor]]\nip = \"{}\"\nmac = \"02:00:00:00:bb:{:02x}\"\n", cs.peer(), cs.k);
        c += &format!("[[neighbor]]\nip = \"{}\"\nmac = \"02:00:00:00:aa:{:02x}\"\n", cs.host(), cs.k);
        c += &format!(
            "[[sa]]\nspi = {}\ndirection = \"out\"\nmode = \"transport\"\nalg = \"{}\"\nkey = \"{ko}\"\nauth_key = \"{ao}\"\nlocal = \"{}\"\nremote = \"{}\"\nnatt = {}\n",
            cs.out_spi(),
            cs.alg,
            cs.host(),
            cs.peer(),
            cs.natt
        );
        c += &format!(
            "[[sa]]\nspi = {}\ndirection = \"in\"\nmode = \"transport\"\nalg = \"{}\"\nkey = \"{ki}\"\nauth_key = \"{ai}\"\nlocal = \"{}\"\nremote = \"{}\"\n",
            cs.in_spi(),
            cs.alg,
            cs.host(),
            cs.peer()
        );
        let len = if cs.v6 { 128 } else { 32 };
        c += &format!("[[policy]]\ndst = \"{}/{len}\"\naction = \"protect\"\nsa = {}\n", cs.peer(), cs.out_spi());
    }
    c
}

fn sa_args(cs: &Case, spi: u32, dir: usize, input: &Path, output: &Path) -> Vec<String> {
    let (k, a) = cs.keys(dir);
    let mut v = vec![
        "--spi".to_string(),
        format!("{spi:#x}"),
        "--alg".into(),
        cs.alg.name().into(),
        "--key".into(),
        k,
        "--in".into(),
        input.display().to_string(),
        "--out".into(),
        output.display().to_string(),
    ];
    if !a.is_empty() {
        v.extend(["--auth-key".into(), a]);
    }
    v
}

/// The SPI of a transport-mode ESP frame, and whether it came in UDP.
fn spi_of(frame: &[u8]) -> (u32, bool) {
    let ip = common::ip_of(frame);
    let (proto, off) = if ip[0] >> 4 == 6 {
        ipv6::Packet::new_checked(ip).unwrap().upper_layer().unwrap()
    } else {
        let p = ipv4::Packet::new_checked(ip).unwrap();
        (p.protocol(), p.header_len())
    };
    let udp = proto == ipproto::UDP;
    assert!(udp || proto == ipproto::ESP, "ESP after the packet's own header (RFC 4303 3.1.1), got {proto}");
    let off = if udp { off + udp::HEADER_LEN } else { off };
    (esp::Packet::new_checked(&ip[off..]).unwrap().spi(), udp)
}

/// Checks the UDP header of a NAT-T transport-mode frame (RFC 3948 2.1:
/// ports 4500, length, checksum zero over IPv4, right over IPv6, RFC 8200
/// 8.1) and takes it out, keeping every field of the IP header: the
/// oracle's own NAT-T unwrapping builds a new header, which is right for
/// tunnel mode but loses the transport-mode packet's own fields.
fn unwrap_natt(f: &[u8]) -> Vec<u8> {
    let ip = common::ip_of(f);
    let v6 = ip[0] >> 4 == 6;
    let hl = if v6 { ipv6::HEADER_LEN } else { ipv4::Packet::new_checked(ip).unwrap().header_len() };
    let dgram = &ip[hl..];
    let u = udp::Packet::new_checked(dgram).unwrap();
    assert_eq!((u.src_port(), u.dst_port(), u.len()), (4500, 4500, dgram.len()));
    if v6 {
        let p = ipv6::Packet::new_checked(ip).unwrap();
        assert_ne!(u.checksum(), 0);
        assert_eq!(udp::verify_checksum(p.src().into(), p.dst().into(), dgram), Ok(()));
    } else {
        assert_eq!(u.checksum(), 0);
    }
    let mut out = f[..14 + hl].to_vec();
    out.extend_from_slice(&dgram[udp::HEADER_LEN..]);
    let ip = &mut out[14..];
    if v6 {
        ip[6] = ipproto::ESP;
        let len = ip.len() - ipv6::HEADER_LEN;
        ipv6::patch_len(ip, len);
    } else {
        let len = ip.len();
        ipv4::set_protocol_len(ip, ipproto::ESP, len);
    }
    out
}

#[test]
#[ignore = "runs the DPDK EAL (root): ./test.sh runs it with --include-ignored"]
fn transport_mode_esp_matches_the_scapy_oracle_both_ways() {
    let dir = tempfile::tempdir().unwrap();
    let d = |n: &str| dir.path().join(n);
    let cases = cases();
    let both_ways: Vec<&Case> = cases.iter().filter(|c| !c.natt).collect();

    // Inbound input: the oracle's transport-mode ESP for each LAN host.
    let mut wan_in: Vec<Vec<u8>> = Vec::new();
    for cs in &both_ways {
        let clear = d(&format!("in-clear-{}.pcap", cs.k));
        let enc = d(&format!("in-esp-{}.pcap", cs.k));
        pcap::write_file(&clear, &cs.inbound_clear()).unwrap();
        let mut args = vec![common::oracle().display().to_string()];
        args.extend(sa_args(cs, cs.in_spi(), 1, &clear, &enc));
        common::run_ok(&transport_encap(), &args);
        wan_in.extend(pcap::read_packets(&enc).unwrap());
    }
    // ESP of the first SA from a host it does not end at (192.0.2.250;
    // the IP header is outside the ICV): it decrypts, but the SA's
    // selectors refuse it (RFC 4301 5.2), dropped and counted.
    let cs = both_ways[0];
    let (clear, enc) = (d("stray-clear.pcap"), d("stray-esp.pcap"));
    pcap::write_file(&clear, &[common::udp_frame("192.0.2.250", &cs.host(), 70, 99)]).unwrap();
    let mut args = vec![common::oracle().display().to_string()];
    args.extend(sa_args(cs, cs.in_spi(), 1, &clear, &enc));
    args.extend(["--seq".into(), "100".into()]);
    common::run_ok(&transport_encap(), &args);
    wan_in.extend(pcap::read_packets(&enc).unwrap());
    let lan_in: Vec<Vec<u8>> = cases.iter().flat_map(|c| c.outbound_clear()).collect();
    pcap::write_file(&d("lan_in.pcap"), &lan_in).unwrap();
    pcap::write_file(&d("wan_in.pcap"), &wan_in).unwrap();
    std::fs::write(d("gw.toml"), config(&cases)).unwrap();

    let stdout = common::run_pcap_gateway(dir.path(), "gw-oracle-tr");
    let n_out = lan_in.len();
    let n_in: usize = both_ways.iter().map(|c| c.inbound_clear().len()).sum();
    assert!(stdout.contains(&format!("encrypted={n_out} decrypted={n_in}")), "{stdout}");
    assert!(stdout.contains("counters drops policy_mismatch=1\n"), "{stdout}");

    // Outbound: split by SPI, the oracle decrypts each SA's packets.
    let wan_out = pcap::read_packets(&d("wan_out.pcap")).unwrap();
    assert_eq!(wan_out.len(), n_out);
    let mut by_spi: BTreeMap<u32, Vec<Vec<u8>>> = BTreeMap::new();
    for f in wan_out {
        let (spi, in_udp) = spi_of(&f);
        let cs = cases.iter().find(|c| c.out_spi() == spi).expect("an SA of ours");
        assert_eq!(in_udp, cs.natt, "SA {spi:#x}: UDP encapsulation as configured");
        // The packet keeps its own addresses (transport mode).
        let ip = common::ip_of(&f);
        let (src, dst) = if cs.v6 {
            let p = ipv6::Packet::new_checked(ip).unwrap();
            (p.src().to_string(), p.dst().to_string())
        } else {
            let p = ipv4::Packet::new_checked(ip).unwrap();
            assert!(p.checksum_ok());
            (p.src().to_string(), p.dst().to_string())
        };
        assert_eq!((src, dst), (cs.host(), cs.peer()));
        let f = if in_udp { unwrap_natt(&f) } else { f };
        by_spi.entry(spi).or_default().push(f);
    }
    for cs in &cases {
        let esp_pcap = d(&format!("out-esp-{}.pcap", cs.k));
        let dec = d(&format!("out-dec-{}.pcap", cs.k));
        let clear = d(&format!("out-clear-{}.pcap", cs.k));
        pcap::write_file(&esp_pcap, by_spi.get(&cs.out_spi()).expect("ESP for every SA")).unwrap();
        pcap::write_file(&clear, &cs.outbound_clear()).unwrap();
        let mut args = vec!["decap".to_string()];
        args.extend(sa_args(cs, cs.out_spi(), 0, &esp_pcap, &dec));
        let text = common::run_ok(&common::oracle(), &args);
        let count = cs.outbound_clear().len();
        assert!(text.contains(&format!("{count} ok, 0 failed")), "{}: {text}", cs.alg);
        let cmp = common::run_ok(
            &common::oracle(),
            &["compare".into(), dec.display().to_string(), clear.display().to_string()],
        );
        assert!(cmp.contains(&format!("same: {count} packets")), "{} v6={}: {cmp}", cs.alg, cs.v6);
    }

    // Inbound: out of the LAN port, exactly what the oracle encrypted.
    let lan_out = pcap::read_packets(&d("lan_out.pcap")).unwrap();
    let want: Vec<Vec<u8>> = both_ways.iter().flat_map(|c| c.inbound_clear()).collect();
    assert_eq!(lan_out.len(), want.len());
    for (i, (got, want)) in lan_out.iter().zip(&want).enumerate() {
        assert_eq!(common::ip_of(got), common::ip_of(want), "inbound packet {i}");
        assert_eq!(&got[6..12], &[2, 0, 0, 0, 1, 1], "from our LAN MAC");
    }
}
