//! Fuzzes the whole receive pipeline (classify, ESP decrypt, policy,
//! route) with frames from the fuzzer. Half the inputs are taken as raw
//! frames; the other half become a valid ESP frame (the input is the inner
//! payload) with one octet then changed, so decryption's success and
//! failure paths are both reached. Nothing may panic; every frame ends in a
//! verdict.

#![no_main]

use std::sync::{Arc, Mutex, OnceLock};

use dataplane::buf::{PacketBuf, VecBuf};
use dataplane::config::Config;
use dataplane::pipeline::{Verdict, Worker};
use dataplane::tables::Tables;
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

fuzz_target!(|data: &[u8]| {
    let mut g = pair().lock().unwrap();
    let (a, b) = &mut *g;
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
