//! Helpers shared by the integration tests.
#![allow(dead_code)]

use dataplane::wire::{ethernet, ipproto, ipv4, ipv6};

/// An Ethernet frame carrying a UDP packet of `len` octets of IP
/// (header included) from `src` to `dst` (both IPv4 or both IPv6).
pub fn udp_frame(src: &str, dst: &str, len: usize, tag: u8) -> Vec<u8> {
    let v6 = src.contains(':');
    let mut f = vec![0u8; 14 + len];
    ethernet::emit(&mut f, [2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2], if v6 { 0x86dd } else { 0x0800 });
    let l4 = if v6 {
        ipv6::Repr {
            src: src.parse().unwrap(),
            dst: dst.parse().unwrap(),
            next_header: ipproto::UDP,
            payload_len: len - 40,
            hop_limit: 64,
            traffic_class: 0,
        }
        .emit(&mut f[14..]);
        54
    } else {
        ipv4::Repr {
            src: src.parse().unwrap(),
            dst: dst.parse().unwrap(),
            protocol: ipproto::UDP,
            payload_len: len - 20,
            ttl: 64,
            tos: 0,
            ident: tag as u16,
            dont_fragment: false,
        }
        .emit(&mut f[14..]);
        34
    };
    // UDP header (checksum 0 is legal for IPv4 only; these are test payloads
    // that nobody delivers to a socket) and a patterned body.
    let ulen = (len - (l4 - 14)) as u16;
    f[l4..l4 + 2].copy_from_slice(&(10000 + tag as u16).to_be_bytes());
    f[l4 + 2..l4 + 4].copy_from_slice(&7u16.to_be_bytes());
    f[l4 + 4..l4 + 6].copy_from_slice(&ulen.to_be_bytes());
    f[l4 + 8..].iter_mut().enumerate().for_each(|(i, b)| *b = tag.wrapping_add(i as u8));
    f
}

/// The IP packet inside an Ethernet frame.
pub fn ip_of(frame: &[u8]) -> &[u8] {
    &frame[14..]
}

/// Recomputes the IPv4 header checksum of an Ethernet frame after a test
/// changed a header field.
pub fn fix_ipv4_checksum(frame: &mut [u8]) {
    frame[24..26].fill(0);
    let c = dataplane::wire::checksum(&frame[14..34], 0);
    frame[24..26].copy_from_slice(&c.to_be_bytes());
}

/// `../shared/interop/esp-oracle` (Scapy's IPsec layer), which must sit
/// beside the repository.
/// The shared ESP oracle, through `tests/esp-oracle-plus`: the same
/// program with ChaCha20-Poly1305 (Scapy has it; the oracle's table does
/// not list it).
pub fn oracle() -> std::path::PathBuf {
    let p = std::path::PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/interop/esp-oracle"));
    assert!(p.exists(), "{} missing: ../shared must sit beside the repository", p.display());
    std::path::PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/esp-oracle-plus"))
}

/// Runs `cmd` with `args`; its output, or a panic with it on failure.
pub fn run_ok(cmd: &std::path::Path, args: &[String]) -> String {
    let out = std::process::Command::new(cmd).args(args).output().expect("run a helper program");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{} {args:?} failed:\n{text}", cmd.display());
    text
}

/// Runs `gw-dataplane` (GW_DATAPLANE_BIN, else this package's) with
/// `dir/gw.toml` on two net_pcap ports, `lan` and `wan`, reading
/// `dir/{port}_in.pcap` and writing `dir/{port}_out.pcap`, until idle;
/// returns its standard output (the counters) once it succeeded.
pub fn run_pcap_gateway(dir: &std::path::Path, prefix: &str) -> String {
    let d = |n: &str| dir.join(n);
    let port = |name: &str, i: u32| {
        format!(
            "{name}=net_pcap{i},rx_pcap={},tx_pcap={}",
            d(&format!("{name}_in.pcap")).display(),
            d(&format!("{name}_out.pcap")).display()
        )
    };
    let bin = std::env::var("GW_DATAPLANE_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_gw-dataplane").to_string());
    let prefix = format!("{prefix}-{}", std::process::id());
    let out = std::process::Command::new(bin)
        .args(["--config", d("gw.toml").to_str().unwrap(), "--port", &port("lan", 0), "--port", &port("wan", 1)])
        .args(["--file-prefix", &prefix, "--exit-when-idle", "500", "--stats-interval", "0"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "gw-dataplane: {stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    stdout
}
