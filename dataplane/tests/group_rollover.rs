//! Group SAs in memory: endpoint A sends to B and C directly with one
//! group SA (outer destination = the member's address, never a hub); a
//! rekey with Rollover1/Rollover2 under continuous traffic, with the two
//! endpoints learning the new SA at different times and packets in flight,
//! loses no packet; a member left out of the rekey cannot decrypt what is
//! sent after the switch.

mod common;

use std::collections::VecDeque;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dataplane::buf::{PacketBuf, VecBuf};
use dataplane::crypto::Algorithm;
use dataplane::drop::DropReason;
use dataplane::group::{GroupAction, Rollover};
use dataplane::pipeline::{Verdict, Worker};
use dataplane::sa::{InboundSa, OutboundSa, SaParams};
use dataplane::tables::{GroupMember, MemberPrefixes, PortInfo, Route, Tables};
use dataplane::wire::{esp, ipv4};
use zeroize::Zeroizing;

/// Endpoints: (LAN prefix, outer address).
const ENDPOINTS: [(&str, &str); 3] =
    [("10.1.0.0/16", "192.0.2.1"), ("10.2.0.0/16", "192.0.2.2"), ("10.3.0.0/16", "192.0.2.3")];

fn group_sa(spi: u32, local: &str) -> SaParams {
    let alg = Algorithm::AesCbc256HmacSha1; // the MPSA draft's example suite, AES-256 flavour
    SaParams {
        spi,
        alg,
        enc_key: Zeroizing::new((0..alg.enc_key_len()).map(|i| (spi as usize * 7 + i) as u8).collect()),
        auth_key: Zeroizing::new((0..alg.auth_key_len()).map(|i| (spi as usize * 3 + i) as u8).collect()),
        local: local.parse().unwrap(),
        remote: local.parse().unwrap(),
        natt: None,
        esn: false,
        replay_window: 0,
        inner_src: Vec::new(),
        inner_dst: Vec::new(),
        lifetime: Default::default(),
        transport: false,
    }
}

/// One endpoint: its SAs by SPI (kept across table rebuilds) and its worker.
struct Endpoint {
    me: usize,
    inbound: Vec<Arc<InboundSa>>,
    outbound: Vec<Arc<OutboundSa>>,
    rollover: Rollover,
    worker: Worker,
}

impl Endpoint {
    fn new(me: usize) -> Endpoint {
        let mut e = Endpoint {
            me,
            inbound: vec![],
            outbound: vec![],
            rollover: Rollover::new(),
            worker: Worker::new(Arc::new(Tables::new(vec![]))),
        };
        e.rebuild();
        e
    }

    fn local(&self) -> &'static str {
        ENDPOINTS[self.me].1
    }

    /// A new group SA arrives (from the hub, in the real system).
    fn install(&mut self, spi: u32, now: Instant, roll1: Duration, roll2: Duration) {
        let p = group_sa(spi, self.local());
        self.inbound.push(Arc::new(InboundSa::new(&p).unwrap()));
        self.outbound.push(Arc::new(OutboundSa::new(&p).unwrap()));
        let acts = self.rollover.install(spi, now, roll1, roll2);
        self.apply(&acts);
    }

    fn tick(&mut self, now: Instant) {
        let acts = self.rollover.poll(now);
        self.apply(&acts);
    }

    fn apply(&mut self, acts: &[GroupAction]) {
        if acts.is_empty() {
            return;
        }
        for a in acts {
            if let GroupAction::RemoveInbound(s) = a {
                self.inbound.retain(|sa| sa.spi != *s);
            }
        }
        self.rebuild();
    }

    /// Tables from the current state: inbound = the rollover's set,
    /// outbound = its current SA, members = every other endpoint.
    fn rebuild(&mut self) {
        let mac = [2, 0, 0, 0, 0, self.me as u8];
        let mut t = Tables::new(vec![PortInfo { mac, mtu: 1500 }, PortInfo { mac, mtu: 1500 }]);
        t.add_local(self.local().parse().unwrap());
        t.add_route("192.0.2.0/24".parse().unwrap(), Route { port: 1, via: None });
        t.add_route(ENDPOINTS[self.me].0.parse().unwrap(), Route { port: 0, via: None });
        for (_, addr) in ENDPOINTS {
            t.neighbors
                .insert(addr.parse().unwrap(), [2, 0, 0, 0, 1, addr.split('.').next_back().unwrap().parse().unwrap()]);
        }
        for h in 0..3u8 {
            t.neighbors.insert(format!("10.{}.0.10", self.me + 1).parse::<IpAddr>().unwrap(), [2, 0, 0, 0, 9, h]);
        }
        let members: Vec<GroupMember> = ENDPOINTS
            .iter()
            .map(|(p, a)| GroupMember { prefix: p.parse().unwrap(), addr: a.parse().unwrap() })
            .collect();
        // Each member sends from its own prefix (mpsa-04 section 5).
        let sources = Arc::new(MemberPrefixes::new(&members));
        for sa in &self.inbound {
            if self.rollover.inbound().contains(&sa.spi) {
                t.add_group_inbound(sa.clone(), sources.clone());
            }
        }
        if let Some(spi) = self.rollover.outbound() {
            let sa = self.outbound.iter().find(|s| s.spi == spi).unwrap().clone();
            let oi = t.add_outbound_arc(sa);
            t.add_group(oi, &members);
        }
        self.worker.set_tables(Arc::new(t));
    }
}

fn spi_and_dst(frame: &[u8]) -> (u32, IpAddr) {
    let ip = ipv4::Packet::new_checked(&frame[14..]).unwrap();
    (esp::Packet::new_checked(ip.payload()).unwrap().spi(), ip.dst().into())
}

#[test]
fn endpoints_talk_directly_and_a_rekey_under_traffic_loses_nothing() {
    let t0 = Instant::now();
    let (mut a, mut b, mut c) = (Endpoint::new(0), Endpoint::new(1), Endpoint::new(2));
    for e in [&mut a, &mut b, &mut c] {
        e.install(0x3001, t0, Duration::ZERO, Duration::ZERO);
    }

    // Direct paths: A -> B goes to B's outer address, A -> C to C's.
    for (dst, want, e) in [("10.2.0.10", "192.0.2.2", &mut b), ("10.3.0.10", "192.0.2.3", &mut c)] {
        let mut buf = VecBuf::new(&common::udp_frame("10.1.0.10", dst, 100, 1));
        assert_eq!(a.worker.process(&mut buf), Verdict::Tx(1));
        let (spi, outer_dst) = spi_and_dst(buf.data());
        assert_eq!((spi, outer_dst), (0x3001, want.parse().unwrap()), "straight to the member, group SPI");
        assert_eq!(e.worker.process(&mut buf), Verdict::Tx(0), "the member decrypts and delivers");
    }

    // Rekey at t=10 s (B learns it at 10 s, A at 12 s: hub retransmission
    // or ordering), Rollover1 = 5 s, Rollover2 = 15 s. C is removed from
    // the group, so it never gets the new SA. Traffic A -> B and A -> C
    // every 100 ms, 300 ms in flight.
    let (roll1, roll2) = (Duration::from_secs(5), Duration::from_secs(15));
    let step = Duration::from_millis(100);
    let delay = 3;
    let mut wire: VecDeque<(usize, Vec<u8>, usize)> = VecDeque::new(); // (arrive step, frame, to)
    let (mut sent_b, mut got_b, mut spis_seen) = (0, 0, std::collections::BTreeSet::new());
    let (mut sent_c_after_switch, mut c_rejected) = (0, 0);
    let mut switched_at = None;
    for s in 0..400usize {
        let now = t0 + step * s as u32;
        if s == 100 {
            b.install(0x3002, now, roll1, roll2);
        }
        if s == 120 {
            a.install(0x3002, now, roll1, roll2);
        }
        for e in [&mut a, &mut b, &mut c] {
            e.tick(now);
        }
        if switched_at.is_none() && a.rollover.outbound() == Some(0x3002) {
            switched_at = Some(s);
        }
        for (to, dst) in [(1usize, "10.2.0.10"), (2, "10.3.0.10")] {
            let mut buf = VecBuf::new(&common::udp_frame("10.1.0.10", dst, 64 + s % 500, s as u8));
            assert_eq!(a.worker.process(&mut buf), Verdict::Tx(1), "step {s}");
            let (spi, _) = spi_and_dst(buf.data());
            if to == 1 {
                sent_b += 1;
                spis_seen.insert(spi);
            } else if spi == 0x3002 {
                sent_c_after_switch += 1;
            }
            wire.push_back((s + delay, buf.data().to_vec(), to));
        }
        while wire.front().is_some_and(|(t, _, _)| *t <= s) {
            let (_, f, to) = wire.pop_front().unwrap();
            let mut buf = VecBuf::new(&f);
            match to {
                1 => {
                    assert_eq!(b.worker.process(&mut buf), Verdict::Tx(0), "B lost a packet at step {s}");
                    got_b += 1;
                }
                _ => match c.worker.process(&mut buf) {
                    Verdict::Tx(0) => {}
                    Verdict::Drop(DropReason::UnknownSpi) => c_rejected += 1,
                    v => panic!("C: {v:?}"),
                },
            }
        }
    }
    // Let the wire drain.
    while let Some((_, f, to)) = wire.pop_front() {
        let mut buf = VecBuf::new(&f);
        if to == 1 {
            assert_eq!(b.worker.process(&mut buf), Verdict::Tx(0));
            got_b += 1;
        } else if c.worker.process(&mut buf) == Verdict::Drop(DropReason::UnknownSpi) {
            c_rejected += 1;
        }
    }
    assert_eq!(switched_at, Some(120 + 50), "A switched at its Rollover1");
    assert_eq!(got_b, sent_b, "no packet lost across the rollover");
    assert_eq!(spis_seen.into_iter().collect::<Vec<_>>(), vec![0x3001, 0x3002]);
    assert_eq!(b.rollover.inbound(), &[0x3002], "old SA gone after Rollover2");
    assert!(sent_c_after_switch > 0);
    assert_eq!(c_rejected, sent_c_after_switch, "the removed member decrypts nothing sent with the new SA");
}
