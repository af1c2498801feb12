//! Unit tests of the engine's own bookkeeping (the exchanges are tested
//! between two engines in `controlplane/tests/`).

use super::*;

/// Random numbers from a script, so the SPI candidates are known.
struct Scripted(Vec<u32>);

impl Random for Scripted {
    fn fill(&mut self, buf: &mut [u8]) {
        buf.fill(0x5a);
    }
    fn u32(&mut self) -> u32 {
        self.0.remove(0)
    }
}

fn inbound(spi: u32) -> Command {
    Command::InstallSa(cpdp::msg::SaSpec {
        spi,
        handle: spi,
        direction: Direction::In,
        alg: "aes128gcm".into(),
        enc_key: zeroize::Zeroizing::new(vec![0; 20]),
        auth_key: zeroize::Zeroizing::new(Vec::new()),
        local: "192.0.2.1".parse().unwrap(),
        remote: "192.0.2.2".parse().unwrap(),
        natt: None,
        esn: false,
        replay_window: 64,
        seq: 0,
        inner_src: Vec::new(),
        inner_dst: Vec::new(),
        lifetime: Default::default(),
        paths: Vec::new(),
        transport: false,
    })
}

#[test]
fn a_new_child_spi_is_never_one_installed_and_is_free_again_once_deleted() {
    // Candidates: reserved (RFC 4303 2.1), installed, then free.
    let script = vec![7, 0x1000, 0x2000, 0x1000];
    let mut e = Engine::new(Vec::new(), Settings::default(), Box::new(Scripted(script)));
    e.dp(inbound(0x1000));
    assert_eq!(e.new_child_spi(), 0x2000, "1..255 are reserved, 0x1000 is in use");
    e.dp(Command::DeleteSa { spi: 0x1000, direction: Direction::In });
    assert_eq!(e.new_child_spi(), 0x1000, "deleted, so free again");
}
