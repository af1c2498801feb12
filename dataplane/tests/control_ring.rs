//! gw-dataplane driven through the shared-memory rings by a stand-in
//! control plane (this test): SAs, policy and a neighbour installed over
//! the ring into a running dataplane that waits for them (fail closed),
//! traffic encrypted and decrypted with them, an IKE packet punted up and
//! a packet injected down; then both sides restart: the dataplane comes
//! back with a new generation, the control plane reopens its ends, resyncs,
//! and the SAs work again with sequence numbers that never repeat. An IKE
//! datagram the dataplane cannot send is counted and reported up.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command as Proc, Stdio};
use std::time::{Duration, Instant};

use cpdp::msg::{self, Command, Direction, Event, PolicyAction, SaSpec, WirePrefix};
use cpdp::{Consumer, Producer, SharedRing};
use dataplane::buf::{PacketBuf, VecBuf};
use dataplane::pcap;
use dataplane::replay::ReplayWindow;
use dataplane::sa::{InboundSa, OutboundSa};
use dataplane::state::sa_params;
use dataplane::wire::{esp, ipv4};
use zeroize::Zeroizing;

const KEY_OUT: [u8; 20] = [0x11; 20];
const KEY_IN: [u8; 20] = [0x22; 20];

fn spec(spi: u32, direction: Direction, key: [u8; 20]) -> SaSpec {
    let (local, remote) = ("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap());
    SaSpec {
        handle: spi,
        spi,
        direction,
        alg: "aes128gcm".into(),
        enc_key: Zeroizing::new(key.to_vec()),
        auth_key: Zeroizing::new(vec![]),
        local,
        remote,
        natt: None,
        esn: false,
        replay_window: 64,
        seq: 0,
        inner_src: vec![],
        inner_dst: vec![],
        lifetime: Default::default(),
        paths: Vec::new(),
        transport: false,
    }
}

/// The peer's view: decrypt what we sent, encrypt what we receive.
fn peer_in() -> InboundSa {
    let mut s = spec(0x1001, Direction::In, KEY_OUT);
    std::mem::swap(&mut s.local, &mut s.remote);
    InboundSa::new(&sa_params(&s).unwrap()).unwrap()
}

fn peer_out() -> OutboundSa {
    let mut s = spec(0x2002, Direction::Out, KEY_IN);
    std::mem::swap(&mut s.local, &mut s.remote);
    OutboundSa::new(&sa_params(&s).unwrap()).unwrap()
}

fn config(ctl: &Path) -> String {
    format!(
        r#"mode = "gateway"
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
[control]
dir = "{}"
ring_bytes = 1048576
wait_for_sync = true
"#,
        ctl.display()
    )
}

struct Cp {
    to_dp: Producer,
    from_dp: Consumer,
}

impl Cp {
    /// Opens the rings the dataplane created (waiting for them).
    fn attach(dir: &Path) -> Cp {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let (Ok(a), Ok(b)) =
                (SharedRing::open(&dir.join("cp2dp.ring")), SharedRing::open(&dir.join("dp2cp.ring")))
            {
                return Cp { to_dp: a.producer(), from_dp: b.consumer() };
            }
            assert!(Instant::now() < deadline, "rings never appeared");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn send(&mut self, c: &Command) {
        self.to_dp.push(&msg::encode(c)).unwrap();
    }

    fn next_event(&mut self, what: &str, mut f: impl FnMut(&Event) -> bool) -> Event {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(e) = self.from_dp.pop_with(|b| msg::decode::<Event>(b).unwrap()) {
                if f(&e) {
                    return e;
                }
                if let Event::CommandRejected { reason } = &e {
                    panic!("command rejected: {reason}");
                }
                continue;
            }
            assert!(Instant::now() < deadline, "no {what} event");
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Everything the dataplane needs, then SyncDone.
    fn install(&mut self) {
        self.send(&Command::InstallSa(spec(0x1001, Direction::Out, KEY_OUT)));
        self.send(&Command::InstallSa(spec(0x2002, Direction::In, KEY_IN)));
        self.send(&Command::SetPolicy {
            dst: WirePrefix { addr: "10.2.0.0".parse().unwrap(), len: 16 },
            action: PolicyAction::Protect(0x1001),
        });
        self.send(&Command::SetNeighbor { ip: "10.1.0.10".parse().unwrap(), mac: [2, 0, 0, 0, 0, 0x10] });
        self.send(&Command::SyncDone);
    }
}

fn start(dir: &Path, ctl: &Path, tag: &str, lan_in: &Path, wan_in: &Path) -> Child {
    start_with_idle_exit(dir, ctl, tag, lan_in, wan_in, "600")
}

/// Like [`start`]; the dataplane exits after `idle_ms` without input.
fn start_with_idle_exit(dir: &Path, ctl: &Path, tag: &str, lan_in: &Path, wan_in: &Path, idle_ms: &str) -> Child {
    let cfg = dir.join("gw.toml");
    std::fs::write(&cfg, config(ctl)).unwrap();
    // net_pcap gives a tx queue per tx_pcap: the second is the main
    // lcore's, where injected frames go.
    let port = |name: &str, i: u32, input: &Path| {
        format!(
            "{name}=net_pcap{i},rx_pcap={},tx_pcap={},tx_pcap={}",
            input.display(),
            dir.join(format!("{name}_out_{tag}.pcap")).display(),
            dir.join(format!("{name}_inject_{tag}.pcap")).display()
        )
    };
    let bin = std::env::var("GW_DATAPLANE_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_gw-dataplane").to_string());
    Proc::new(bin)
        .args(["--config", cfg.to_str().unwrap(), "--port", &port("lan", 0, lan_in), "--port", &port("wan", 1, wan_in)])
        .args(["--file-prefix", &format!("gw-ctl-{}-{tag}", std::process::id()), "--exit-when-idle", idle_ms])
        .args(["--stats-interval", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn finish(c: Child) -> String {
    let out = c.wait_with_output().unwrap();
    let s = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{s}\n{}", String::from_utf8_lossy(&out.stderr));
    s
}

/// Decrypts our ESP output; returns the inner frames' IP and sequence numbers.
fn open_all(frames: &[Vec<u8>], sa: &InboundSa) -> (Vec<Vec<u8>>, Vec<u32>) {
    let mut w = ReplayWindow::new(0, false);
    let mut ips = Vec::new();
    let mut seqs = Vec::new();
    for f in frames {
        let ip = ipv4::Packet::new_checked(&f[14..]).unwrap();
        seqs.push(esp::Packet::new_checked(ip.payload()).unwrap().seq());
        let mut b = VecBuf::new(&f[14..]);
        dataplane::ipsec::decap(sa, &mut w, &mut b, 20).unwrap();
        ips.push(b.data().to_vec());
    }
    (ips, seqs)
}

#[test]
#[ignore = "runs the DPDK EAL (root): ./test.sh runs it with --include-ignored"]
fn sas_installed_over_the_ring_survive_restarts_of_either_side() {
    let dir = tempfile::tempdir().unwrap();
    let ctl: PathBuf = dir.path().join("ctl");
    let clear: Vec<Vec<u8>> =
        (0..40).map(|i| common::udp_frame("10.1.0.10", "10.2.0.20", 60 + i * 13, i as u8)).collect();
    let lan_in = dir.path().join("lan_in.pcap");
    pcap::write_file(&lan_in, &clear).unwrap();
    // From the peer: ESP for us, and one IKE packet (UDP 500) to punt.
    let peer = peer_out();
    let mut wan_frames: Vec<Vec<u8>> = Vec::new();
    let from_peer: Vec<Vec<u8>> =
        (0..10).map(|i| common::udp_frame("10.2.0.20", "10.1.0.10", 100 + i, i as u8)).collect();
    for f in &from_peer {
        let mut b = VecBuf::new(&f[14..]);
        dataplane::ipsec::encap(&peer, &mut b, false).unwrap();
        b.prepend(14).unwrap().copy_from_slice(&f[..14]);
        wan_frames.push(b.data().to_vec());
    }
    let mut ike = common::udp_frame("192.0.2.2", "192.0.2.1", 60, 0);
    ike[36..38].copy_from_slice(&500u16.to_be_bytes());
    wan_frames.push(ike.clone());
    let wan_in = dir.path().join("wan_in.pcap");
    pcap::write_file(&wan_in, &wan_frames).unwrap();

    // Run 1: the dataplane waits for us; we install, then traffic flows.
    let child = start(dir.path(), &ctl, "1", &lan_in, &wan_in);
    let mut cp = Cp::attach(&ctl);
    let g1 = match cp.next_event("Hello", |e| matches!(e, Event::Hello { .. })) {
        Event::Hello { generation, ports } => {
            assert_eq!(ports.iter().map(|p| p.0.as_str()).collect::<Vec<_>>(), ["lan", "wan"]);
            generation
        }
        _ => unreachable!(),
    };
    cp.install();
    cp.next_event("Applied", |e| matches!(e, Event::Applied { sas_in: 1, sas_out: 1 }));
    // IKE arrives as a datagram (addresses and UDP payload), not as a frame.
    let punted = cp.next_event("Datagram", |e| matches!(e, Event::Datagram { .. }));
    assert_eq!(
        punted,
        Event::Datagram {
            port: 1,
            src: "192.0.2.2:10000".parse().unwrap(),
            dst: "192.0.2.1:500".parse().unwrap(),
            payload: ike[42..].to_vec(),
        },
        "the IKE datagram from the WAN port"
    );
    // Inject a frame down: it leaves on the LAN port.
    cp.send(&Command::Inject { port: 0, frame: vec![0xee; 64] });
    std::thread::sleep(Duration::from_millis(50));
    while let Some(e) = cp.from_dp.pop_with(|b| msg::decode::<Event>(b).unwrap()) {
        assert!(!matches!(e, Event::CommandRejected { .. }), "{e:?}");
    }
    let out1 = finish(child);
    assert!(out1.contains("encrypted=40 decrypted=10"), "{out1}");
    let sa = peer_in();
    let wan_out = pcap::read_packets(&dir.path().join("wan_out_1.pcap")).unwrap();
    let (ips, seqs1) = open_all(&wan_out, &sa);
    assert_eq!(ips, clear.iter().map(|f| f[14..].to_vec()).collect::<Vec<_>>(), "our ESP decrypts to the input");
    assert_eq!(seqs1, (1..=40).collect::<Vec<u32>>());
    let lan_out = pcap::read_packets(&dir.path().join("lan_out_1.pcap")).unwrap();
    assert_eq!(
        lan_out.iter().map(|f| f[14..].to_vec()).collect::<Vec<_>>(),
        from_peer.iter().map(|f| f[14..].to_vec()).collect::<Vec<_>>()
    );
    let injected = pcap::read_packets(&dir.path().join("lan_inject_1.pcap")).unwrap();
    assert_eq!(injected, vec![vec![0xee; 64]], "the injected frame left on the LAN port");

    // Both sides restart: a new dataplane (new generation), and the control
    // plane reopens its ring ends (positions are in the files).
    drop(cp);
    let child = start(dir.path(), &ctl, "2", &lan_in, &wan_in);
    let mut cp = Cp::attach(&ctl);
    let g2 = match cp.next_event("Hello", |e| matches!(e, Event::Hello { .. })) {
        Event::Hello { generation, .. } => generation,
        _ => unreachable!(),
    };
    assert_eq!(g2, g1 + 1, "a restarted dataplane announces a new generation");
    cp.install();
    cp.next_event("Applied", |e| matches!(e, Event::Applied { .. }));
    cp.send(&Command::DumpState);
    match cp.next_event("State", |e| matches!(e, Event::State { .. })) {
        Event::State { sas, policies, routes, .. } => {
            let mut spis: Vec<u32> = sas.iter().map(|s| s.0).collect();
            spis.sort();
            assert_eq!(spis, vec![0x1001, 0x2002], "the resynced SAs are installed");
            assert_eq!(policies.len(), 1);
            assert!(!routes.is_empty(), "the State lists the routes too");
        }
        _ => unreachable!(),
    }
    // Each second the ports' counters, by name (gwctl ports, metrics).
    match cp.next_event("Ports", |e| matches!(e, Event::Ports { .. })) {
        Event::Ports { ports } => {
            assert_eq!(ports.len(), 2, "{ports:?}");
            assert!(ports.iter().all(|p| !p.name.is_empty() && p.up), "{ports:?}");
        }
        _ => unreachable!(),
    }
    cp.send(&Command::DumpCounters);
    cp.next_event("Counters", |e| matches!(e, Event::Counters { .. }));
    let out2 = finish(child);
    assert!(out2.contains("encrypted=40 decrypted=10"), "resynced SAs work again: {out2}");
    let (ips, seqs2) = open_all(&pcap::read_packets(&dir.path().join("wan_out_2.pcap")).unwrap(), &sa);
    assert_eq!(ips.len(), 40);
    assert!(
        seqs2[0] as u64 > *seqs1.last().unwrap() as u64,
        "sequence numbers never repeat across a restart: {}",
        seqs2[0]
    );
}

#[test]
#[ignore = "runs the DPDK EAL (root): ./test.sh runs it with --include-ignored"]
fn an_ike_datagram_that_cannot_leave_is_counted_and_reported_up() {
    let dir = tempfile::tempdir().unwrap();
    let ctl = dir.path().join("ctl");
    let empty = dir.path().join("empty.pcap");
    pcap::write_file(&empty, &Vec::<Vec<u8>>::new()).unwrap();
    let child = start_with_idle_exit(dir.path(), &ctl, "unsent", &empty, &empty, "3000");
    let mut cp = Cp::attach(&ctl);
    cp.next_event("Hello", |e| matches!(e, Event::Hello { .. }));
    cp.send(&Command::SyncDone);
    // No route to 203.0.113.9 (only the ports' own prefixes are known).
    cp.send(&Command::SendDatagram {
        src: "192.0.2.1:500".parse().unwrap(),
        dst: "203.0.113.9:500".parse().unwrap(),
        payload: vec![0; 36],
    });
    cp.next_event(
        "Drops with ike_unsent",
        |e| matches!(e, Event::Drops { counts, .. } if counts == &[("ike_unsent".to_string(), 1)]),
    );
    let out = finish(child);
    assert!(out.contains("counters ike_tx sent=0 held=0 dropped=1"), "{out}");
}
