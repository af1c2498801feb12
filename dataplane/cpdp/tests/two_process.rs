//! Two processes on one ring file: a child process produces 300,000
//! messages of varying size as fast as it can; this process consumes them,
//! reopening its end halfway (a consumer restart), and checks that every
//! message arrives exactly once, intact and in order. Full is never a
//! block: the producer retries.

use std::process::Command;

use cpdp::SharedRing;

const N: u32 = 300_000;
const CHILD_ENV: &str = "CPDP_TWO_PROCESS_RING";

fn message(seq: u32) -> Vec<u8> {
    let len = (seq as usize * 7919) % 1200;
    let mut v = seq.to_le_bytes().to_vec();
    v.extend((0..len).map(|i| (seq as usize ^ i) as u8));
    v
}

/// The producer side, run in the child process.
#[test]
fn child_producer() {
    let Ok(path) = std::env::var(CHILD_ENV) else { return };
    let mut p = SharedRing::open(path.as_ref()).unwrap().producer();
    for seq in 0..N {
        let m = message(seq);
        while p.push(&m).is_err() {
            std::hint::spin_loop();
        }
    }
}

#[test]
fn every_message_arrives_once_in_order_between_processes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ring");
    let ring = SharedRing::create(&path, 1 << 16).unwrap();
    drop(ring);
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_producer", "--nocapture", "--test-threads", "1"])
        .env(CHILD_ENV, &path)
        .spawn()
        .unwrap();
    let mut c = SharedRing::open(&path).unwrap().consumer();
    let mut next = 0u32;
    let mut producer_done = false;
    while next < N {
        if next == N / 2 {
            // Restart the consumer end: positions live in the file.
            drop(c);
            c = SharedRing::open(&path).unwrap().consumer();
        }
        let got = c.pop_with(|m| {
            let seq = u32::from_le_bytes(m[..4].try_into().unwrap());
            assert_eq!(seq, next, "once and in order");
            assert_eq!(m, &message(seq)[..], "intact");
        });
        if got.is_some() {
            next += 1;
            continue;
        }
        // Empty. Once the producer has exited, empty means lost.
        assert!(!producer_done, "producer exited with {} messages missing", N - next);
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "producer failed");
            producer_done = true;
        }
    }
    assert!(child.wait().unwrap().success());
    assert!(c.pop().is_none(), "nothing extra");
}
