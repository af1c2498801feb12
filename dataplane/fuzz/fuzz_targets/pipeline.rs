//! Fuzzes the whole receive pipeline (classify, ESP decrypt, policy,
//! route) with frames from the fuzzer, three ways by the first octet's low
//! bits:
//! - x0: the input is a raw frame;
//! - 01: the input is the inner payload of a valid ESP frame A makes, with
//!   one octet then changed, so the ICV's success and failure are reached;
//! - 11: the input is the ESP plaintext itself (inner packet, padding, Pad
//!   Length, Next Header, all fuzzer-chosen), sealed with the SA's key, so
//!   every check after the ICV is reached with what no encryptor we wrote
//!   would make: bad padding, odd next headers, TFC dummies, truncated and
//!   hostile inner packets of every kind, selectors that do not fit.
//!
//! Nothing may panic; every frame ends in a verdict.

#![no_main]

use std::sync::{Arc, Mutex, OnceLock};

use dataplane::buf::{PacketBuf, VecBuf};
use dataplane::config::Config;
use dataplane::crypto::{Algorithm, EspCipher};
use dataplane::pipeline::{Verdict, Worker};
use dataplane::tables::Tables;
use dataplane::wire::esp;
use libfuzzer_sys::fuzz_target;

/// Gateway A (sender) and B (receiver, the target), GCM and CBC SAs.
const A: &str = r#"
mode = "gateway"
[[port]]
name = "lan"
device = "net_null0"
addresses = ["10.1.0.1/16"]
[[port]]
name = "wan"
device = "net_null1"
addresses = ["192.0.2.1/24"]
[[neighbor]]
ip = "192.0.2.2"
mac = "02:00:00:00:00:02"
[[sa]]
spi = 0x100
direction = "out"
alg = "aes128gcm"
key = "000102030405060708090a0b0c0d0e0f10111213"
local = "192.0.2.1"
remote = "192.0.2.2"
natt = true
[[sa]]
spi = 0x200
direction = "out"
alg = "aes128cbc-sha1"
key = "000102030405060708090a0b0c0d0e0f"
auth_key = "0001020304050607080910111213141516171819"
local = "192.0.2.1"
remote = "192.0.2.2"
[[policy]]
dst = "10.2.0.0/24"
action = "protect"
sa = 0x100
[[policy]]
dst = "10.2.1.0/24"
action = "protect"
sa = 0x200
"#;

const B: &str = r#"
mode = "gateway"
[[port]]
name = "lan"
device = "net_null0"
addresses = ["10.2.0.1/16"]
[[port]]
name = "wan"
device = "net_null1"
addresses = ["192.0.2.2/24"]
[[neighbor]]
ip = "10.2.0.20"
mac = "02:00:00:00:00:20"
[[neighbor]]
ip = "10.2.1.20"
mac = "02:00:00:00:00:21"
[[sa]]
spi = 0x100
direction = "in"
alg = "aes128gcm"
key = "000102030405060708090a0b0c0d0e0f10111213"
local = "192.0.2.2"
remote = "192.0.2.1"
natt = true
replay_window = 0
[[sa]]
spi = 0x200
direction = "in"
alg = "aes128cbc-sha1"
key = "000102030405060708090a0b0c0d0e0f"
auth_key = "0001020304050607080910111213141516171819"
local = "192.0.2.2"
remote = "192.0.2.1"
replay_window = 1024
# Only the sealed-plaintext inputs use this one (A's counter never meets it).
[[sa]]
spi = 0x300
direction = "in"
alg = "aes128cbc-sha256"
key = "303132333435363738393a3b3c3d3e3f"
auth_key = "404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f"
local = "192.0.2.2"
remote = "192.0.2.1"
replay_window = 1024
"#;

fn worker(text: &str) -> Worker {
    let cfg = Config::parse(text, "fuzz").expect("fuzz config parses");
    Worker::new(Arc::new(Tables::from_config(&cfg, "fuzz", &[]).expect("fuzz tables")))
}

fn pair() -> &'static Mutex<(Worker, Worker)> {
    static P: OnceLock<Mutex<(Worker, Worker)>> = OnceLock::new();
    P.get_or_init(|| Mutex::new((worker(A), worker(B))))
}

/// An Ethernet/IPv4/UDP frame from 10.1.0.10 to 10.2.<net>.20 around `body`.
fn clear_frame(net: u8, body: &[u8]) -> Vec<u8> {
    let len = 28 + body.len();
    let mut f = vec![0u8; 14 + len];
    f[12] = 0x08;
    let ip = &mut f[14..34];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&(len as u16).to_be_bytes());
    ip[8] = 64;
    ip[9] = 17;
    ip[12..16].copy_from_slice(&[10, 1, 0, 10]);
    ip[16..20].copy_from_slice(&[10, 2, net, 20]);
    let c = dataplane::wire::checksum(ip, 0);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    f[38..40].copy_from_slice(&((8 + body.len()) as u16).to_be_bytes());
    f[42..].copy_from_slice(body);
    f
}

/// B's inbound SAs for sealed plaintexts, as its config keys them: the
/// GCM one (no replay window, in UDP) and a CBC + HMAC-SHA-256 one of its
/// own (replay window 1024).
fn ciphers() -> &'static [(u32, EspCipher, bool); 2] {
    static C: OnceLock<[(u32, EspCipher, bool); 2]> = OnceLock::new();
    C.get_or_init(|| {
        let hex = |s: &str| (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect();
        let gcm: Vec<u8> = hex("000102030405060708090a0b0c0d0e0f10111213");
        let cbc: Vec<u8> = hex("303132333435363738393a3b3c3d3e3f");
        let auth: Vec<u8> = hex("404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f");
        [
            (0x100, EspCipher::new(Algorithm::AesGcm128, &gcm, &[]).unwrap(), true),
            (0x300, EspCipher::new(Algorithm::AesCbc128HmacSha256, &cbc, &auth).unwrap(), false),
        ]
    })
}

/// An ESP frame from A (192.0.2.1) to B (192.0.2.2) whose plaintext is
/// `plain` (cut to whole blocks for CBC), sealed with sequence number
/// `seq` under B's SA `which`; the GCM SA's in UDP (NAT-T, port 4500).
fn sealed_frame(which: usize, seq: u32, plain: &[u8]) -> Vec<u8> {
    let (spi, cipher, natt) = &ciphers()[which];
    let alg = cipher.algorithm();
    let block = if alg.is_aead() { 4 } else { 16 };
    let plain = &plain[..plain.len() / block * block];
    let esp_len = esp::HEADER_LEN + alg.iv_len() + plain.len() + alg.icv_len();
    let mut esp_buf = vec![0u8; esp_len];
    esp_buf[..4].copy_from_slice(&spi.to_be_bytes());
    esp_buf[4..8].copy_from_slice(&seq.to_be_bytes());
    let at = esp::HEADER_LEN + alg.iv_len();
    esp_buf[at..at + plain.len()].copy_from_slice(plain);
    cipher.seal(&mut esp_buf, seq as u64, false);
    let udp = if *natt { 8 } else { 0 };
    let len = 20 + udp + esp_len;
    let mut f = vec![0u8; 14 + len];
    f[..6].copy_from_slice(&[2, 0, 0, 0, 0, 2]);
    f[12] = 0x08;
    let ip = &mut f[14..34];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&(len as u16).to_be_bytes());
    ip[8] = 64;
    ip[9] = if *natt { 17 } else { 50 };
    ip[12..16].copy_from_slice(&[192, 0, 2, 1]);
    ip[16..20].copy_from_slice(&[192, 0, 2, 2]);
    let c = dataplane::wire::checksum(ip, 0);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    if *natt {
        // UDP 4500 -> 4500, checksum 0 (none, over IPv4).
        f[34..36].copy_from_slice(&4500u16.to_be_bytes());
        f[36..38].copy_from_slice(&4500u16.to_be_bytes());
        f[38..40].copy_from_slice(&((8 + esp_len) as u16).to_be_bytes());
    }
    f[34 + udp..].copy_from_slice(&esp_buf);
    f
}

fuzz_target!(|data: &[u8]| {
    let mut g = pair().lock().unwrap();
    let (a, b) = &mut *g;
    if data.len() >= 6 && data[0] & 3 == 3 {
        // Sealed plaintext: B decrypts it (the ICV holds) and goes on with
        // whatever it holds; any verdict, no panic.
        let seq = u32::from_be_bytes([data[1], data[2], data[3], data[4]]).max(1);
        let plain = &data[5..data.len().min(1400)];
        let mut buf = VecBuf::new(&sealed_frame(usize::from(data[0] >> 7), seq, plain));
        let v = b.process(&mut buf);
        assert!(!matches!(v, Verdict::Drop(dataplane::drop::DropReason::IcvFailed)), "{v:?}: sealed with B's key");
        return;
    }
    if data.len() < 4 || data[0] & 1 == 0 {
        let mut buf = VecBuf::new(data);
        let _ = b.process(&mut buf);
        return;
    }
    let body = &data[4..data.len().min(1300)];
    let mut buf = VecBuf::new(&clear_frame(data[0] >> 7, body));
    if !matches!(a.process(&mut buf), Verdict::Tx(_)) {
        return;
    }
    let mut frame = buf.data().to_vec();
    if data[2] != 0 {
        let at = data[1] as usize % frame.len();
        frame[at] ^= data[2];
    }
    let mut buf = VecBuf::new(&frame);
    let v = b.process(&mut buf);
    if data[2] == 0 {
        // Untouched: must decrypt and come out on the LAN port.
        assert_eq!(v, Verdict::Tx(0));
    }
});
