//! Real-EAL test of the safe wrappers: bad arguments, mbuf room operations,
//! a ring between lcores, and a two-port wire made of net_ring ports.
//!
//! DPDK allows one EAL per process, so this file is one test that walks
//! through the steps in order (cargo runs each tests/*.rs as its own
//! process). Needs root; no hugepages (`--no-huge`), no PCI.

use std::sync::Arc;

use dpdk::{Eal, ErrorKind, LcoreId, Mbuf, MbufBurst, Mempool, Port, PortConfig, PortId, Ring};

struct RunDirGuard(String);
impl Drop for RunDirGuard {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(format!("/var/run/dpdk/{}", self.0));
    }
}

#[test]
#[ignore = "runs the DPDK EAL (root): ./test.sh runs it with --include-ignored"]
fn eal_mbufs_rings_and_ports() {
    let prefix = format!("gw-dpdk-test-{}", std::process::id());
    let _guard = RunDirGuard(prefix.clone());

    // 1. Bad arguments are an error, not an abort, and init can be retried.
    let err = Eal::init(&["--no-such-eal-option"]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");
    let err = Eal::init(&["-l", "4000"]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");

    let args = [
        "--no-huge",
        "-m",
        "256",
        "--no-pci",
        "--file-prefix",
        prefix.as_str(),
        "-l",
        "0,1",
        "--main-lcore",
        "0",
        "--log-level",
        "lib.eal:warning",
    ];
    let eal = Eal::init(&args).expect("EAL init with good arguments");
    assert_eq!(Eal::init(&args).unwrap_err().kind(), ErrorKind::AlreadyDone);
    assert_eq!(eal.main_lcore(), LcoreId(0));
    assert_eq!(LcoreId::current(), Some(LcoreId(0)));
    let workers = eal.worker_lcores();
    assert_eq!(workers, vec![LcoreId(1)]);

    let pool = Arc::new(Mempool::pktmbuf("test_pool", 2047, 32, dpdk::mempool::DEFAULT_DATA_ROOM, 0).unwrap());
    assert_eq!(Mempool::pktmbuf("test_pool", 63, 0, 2176, 0).unwrap_err().kind(), ErrorKind::Exists);

    mbuf_room_operations(&pool);
    ring_between_lcores(&eal, workers[0]);
    ring_ports_form_a_wire(&pool);

    // Everything went back to the pool.
    assert_eq!(pool.in_use(), 0);
}

fn mbuf_room_operations(pool: &Mempool) {
    let mut m = pool.alloc().expect("mbuf");
    assert_eq!(m.len(), 0);
    assert_eq!(m.headroom(), 128, "RTE_PKTMBUF_HEADROOM");
    assert_eq!(m.tailroom(), 2048);

    let body: Vec<u8> = (0..100u8).collect();
    m.append(100).unwrap().copy_from_slice(&body);
    assert_eq!(m.data(), &body[..]);
    assert_eq!(m.tailroom(), 1948);

    // Prepend an outer header into the headroom; the payload stays put.
    m.prepend(14).unwrap().copy_from_slice(&[0xee; 14]);
    assert_eq!(m.headroom(), 114);
    assert_eq!(m.len(), 114);
    assert_eq!(&m.data()[..14], &[0xee; 14]);
    assert_eq!(&m.data()[14..], &body[..]);

    // Too much: refused, nothing changes.
    assert!(m.prepend(115).is_none());
    assert!(m.append(1949).is_none());
    assert!(m.prepend(70_000).is_none());
    assert_eq!(m.len(), 114);

    assert!(m.adj(14));
    assert_eq!(m.data(), &body[..]);
    assert!(m.trim(50));
    assert_eq!(m.data(), &body[..50]);
    assert!(!m.trim(51));
    assert!(!m.adj(51));
    assert_eq!(m.len(), 50);
    assert_eq!(m.pkt_len(), 50);

    m.data_mut()[0] = 0xaa;
    assert_eq!(m.data()[0], 0xaa);
    assert!(m.copy_from(&[1, 2, 3]));
    assert_eq!(m.data(), &[1, 2, 3]);
    assert_eq!(m.headroom(), 128);

    // Bursts: bulk alloc, retain, drop frees.
    let before = pool.in_use();
    let mut burst = MbufBurst::new();
    assert!(pool.alloc_bulk(&mut burst, 32));
    assert!(burst.is_full());
    assert_eq!(pool.in_use(), before + 32);
    let mut i = 0;
    burst.retain(|_| {
        i += 1;
        i % 2 == 0
    });
    assert_eq!(burst.len(), 16);
    assert_eq!(pool.in_use(), before + 16);
    assert!(burst.push(m).is_ok());
    // Drain hands them out in order and frees what is not taken.
    let first = burst.drain().next().unwrap();
    assert!(burst.is_empty());
    assert_eq!(pool.in_use(), before, "first is held; the other 15 and `m` were freed");
    drop(first);
    assert!(pool.alloc_bulk(&mut burst, 3));
    let lens: Vec<usize> = burst.drain().map(|m| m.len()).collect();
    assert_eq!(lens, vec![0, 0, 0]);
    drop(burst);
    assert_eq!(pool.in_use(), before - 1, "the mbuf pushed from outside was freed too");
}

#[derive(Debug)]
struct Msg {
    seq: u64,
    from: Option<LcoreId>,
}

fn ring_between_lcores(eal: &Eal, worker: LcoreId) {
    const N: u64 = 10_000;
    let to_worker: Arc<Ring<Box<Msg>>> = Arc::new(Ring::create("to_worker", 1024, 0).unwrap());
    let from_worker: Arc<Ring<Box<Msg>>> = Arc::new(Ring::create("from_worker", 1024, 0).unwrap());
    let (rx, tx) = (to_worker.clone(), from_worker.clone());
    let handle = eal
        .launch(worker, move || {
            let mut echoed = 0u64;
            loop {
                let Some(mut m) = rx.dequeue() else { continue };
                if m.seq == u64::MAX {
                    return echoed;
                }
                m.from = LcoreId::current();
                while let Err(back) = tx.enqueue(m) {
                    m = back;
                }
                echoed += 1;
            }
        })
        .unwrap();
    assert_eq!(handle.lcore(), worker);
    // Launching on a busy lcore is refused.
    assert!(eal.launch(worker, || ()).is_err());

    let mut next_rx = 0u64;
    let mut next_tx = 0u64;
    while next_rx < N {
        if next_tx < N && to_worker.enqueue(Box::new(Msg { seq: next_tx, from: None })).is_ok() {
            next_tx += 1;
        }
        if let Some(m) = from_worker.dequeue() {
            assert_eq!(m.seq, next_rx, "messages arrive once, in order");
            assert_eq!(m.from, Some(worker), "handled on the worker lcore");
            next_rx += 1;
        }
    }
    to_worker.enqueue(Box::new(Msg { seq: u64::MAX, from: None })).unwrap();
    assert_eq!(handle.join().unwrap(), N);

    // A panic on a worker is an error at join, not a crash.
    let quiet = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let h = eal.launch(worker, || -> u32 { panic!("deliberate") }).unwrap();
    assert!(h.join().is_err());
    std::panic::set_hook(quiet);

    // Values left in a ring are dropped with it.
    let r: Ring<Box<Msg>> = Ring::create("leftovers", 8, 0).unwrap();
    for s in 0..7 {
        r.enqueue(Box::new(Msg { seq: s, from: None })).unwrap();
    }
    assert!(r.enqueue(Box::new(Msg { seq: 7, from: None })).is_err(), "count-1 usable slots");
    assert_eq!(r.len(), 7);
}

/// Builds a frame of `len` bytes whose content depends on `i`.
fn frame(i: usize, len: usize) -> Vec<u8> {
    (0..len).map(|k| (i * 31 + k * 7) as u8).collect()
}

fn ring_ports_form_a_wire(pool: &Arc<Mempool>) {
    let a_to_b: Arc<Ring<Mbuf>> = Arc::new(Ring::create("wire_ab", 1024, 0).unwrap());
    let b_to_a: Arc<Ring<Mbuf>> = Arc::new(Ring::create("wire_ba", 1024, 0).unwrap());
    let (a, wire_a) =
        PortId::from_rings("net_ring_a", std::slice::from_ref(&b_to_a), std::slice::from_ref(&a_to_b)).unwrap();
    let (b, wire_b) =
        PortId::from_rings("net_ring_b", std::slice::from_ref(&a_to_b), std::slice::from_ref(&b_to_a)).unwrap();
    // The net_ring driver prefixes the name it is given.
    assert_eq!(dpdk::ethdev::port_name(a), "net_ring_net_ring_a");
    assert_eq!(PortId::by_name("net_ring_net_ring_a").unwrap(), a);
    assert!(PortId::by_name("no_such_port").is_err());
    assert!(PortId::all().contains(&b));

    let conf = PortConfig::default();
    let mut pa = Port::configure_with(a, &conf, pool.clone(), Some(wire_a)).unwrap();
    let mut pb = Port::configure_with(b, &conf, pool.clone(), Some(wire_b)).unwrap();
    pa.start().unwrap();
    pb.start().unwrap();
    let (mut arx, mut atx) = pa.take_queues().unwrap();
    let (mut brx, mut btx) = pb.take_queues().unwrap();
    assert!(pa.take_queues().is_none(), "queues are handed out once");

    for (src_tx, dst_rx, tag) in [(&mut atx[0], &mut brx[0], 0usize), (&mut btx[0], &mut arx[0], 1000)] {
        let sent: Vec<Vec<u8>> = (0..100).map(|i| frame(tag + i, 60 + (i * 37) % 1455)).collect();
        for chunk in sent.chunks(32) {
            let mut burst = MbufBurst::new();
            for f in chunk {
                let mut m = pool.alloc().unwrap();
                assert!(m.copy_from(f));
                burst.push(m).unwrap();
            }
            assert_eq!(src_tx.tx_burst(&mut burst), chunk.len());
            assert!(burst.is_empty());
        }
        let mut got: Vec<Vec<u8>> = Vec::new();
        let mut burst = MbufBurst::new();
        while got.len() < sent.len() {
            let n = dst_rx.rx_burst(&mut burst);
            assert!(n > 0, "packets missing after {}", got.len());
            got.extend(burst.as_slice().iter().map(|m| m.data().to_vec()));
            burst.clear();
        }
        assert_eq!(got, sent, "byte-identical, in order");
        assert_eq!(dst_rx.rx_burst(&mut burst), 0);
    }
    let sa = pa.stats().unwrap();
    let sb = pb.stats().unwrap();
    assert_eq!((sa.opackets, sa.ipackets), (100, 100));
    assert_eq!((sb.opackets, sb.ipackets), (100, 100));
    pa.stop().unwrap();
    pb.stop().unwrap();
}
