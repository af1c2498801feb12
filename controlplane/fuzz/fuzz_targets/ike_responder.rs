//! Arbitrary datagrams into a responder: the IKE parser and every
//! exchange's first checks must reject or answer them, never panic.
//!
//! The input is a sequence of datagrams, each `[port selector][len][octets]`,
//! so one run can open a half-open IKE SA with a well-formed IKE_SA_INIT
//! and then hit it with follow-ups.
#![no_main]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use controlplane::crypto::SeededRandom;
use controlplane::ike::config::{ConnectionToml, Settings};
use controlplane::ike::Engine;
use controlplane::wire::{message::parse_chain, Message};
use libfuzzer_sys::fuzz_target;

const CONN: &str = r#"
name = "fuzz"
role = "responder"
local = "192.0.2.1"
remote = "%any"
local_id = "gw.lab"
remote_id = "%any"
psk = "fuzzing-secret"
local_ts = ["10.1.0.0/16"]
remote_ts = ["10.2.0.0/16"]
ike_proposals = ["aes128gcm16-prfsha256-x25519", "aes256-sha256-modp2048"]
"#;

fuzz_target!(|data: &[u8]| {
    let conn: ConnectionToml = toml::from_str(CONN).expect("valid test config");
    let mut e = Engine::new(vec![conn.build().expect("valid test config")], Settings::default(), Box::new(SeededRandom::new(0x5eed)));
    let mut now = Instant::now();
    let mut rest = data;
    while rest.len() >= 3 {
        let port = if rest[0] & 1 == 0 { 500 } else { 4500 };
        let len = (u16::from_be_bytes([rest[1], rest[2]]) as usize).min(rest.len() - 3);
        let dgram = &rest[3..3 + len];
        rest = &rest[3 + len..];
        if let Ok(m) = Message::parse(dgram) {
            if let Some(sk) = m.sk {
                let _ = parse_chain(sk.first, &dgram[sk.iv_at..]);
            }
        }
        let local: SocketAddr = SocketAddr::new("192.0.2.1".parse().unwrap(), port);
        let remote: SocketAddr = SocketAddr::new("198.51.100.7".parse().unwrap(), port);
        e.handle_datagram(now, local, remote, dgram);
        while e.poll_output().is_some() {}
        now += Duration::from_millis(300);
        e.handle_timeout(now);
        while e.poll_output().is_some() {}
    }
});
