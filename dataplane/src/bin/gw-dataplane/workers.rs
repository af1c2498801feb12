//! The workers: which queues each one serves (`plan_workers`,
//! `plan_gateway`), and their loops, forwarding (`forward_worker`) and
//! the gateway pipeline over mbufs (`gateway_worker`), with the final
//! per-worker and per-SA report.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dataplane::buf::PacketBuf;
use dataplane::config::WorkerConfig;
use dataplane::counters::{IdleBackoff, WorkerCounters, WorkerSnapshot};
use dataplane::drop::DropReason;
use dataplane::pipeline::{Verdict, Worker, WorkerStats};
use dataplane::sa::{STAT_BYTES, STAT_ICV, STAT_PACKETS, STAT_REPLAY};
use dataplane::tables::Tables;

use crate::control::PuntQueue;
use cpdp::msg::Event;
use crossbeam_queue::ArrayQueue;
use dpdk::{Mbuf, MbufBurst, Port, RxQueue, TxQueue};

/// One forwarding direction a worker serves: this rx queue into
/// `txqs[tx]` of the same worker.
pub(crate) struct Path {
    rx: RxQueue,
    tx: usize,
}

pub(crate) struct WorkerPlan {
    paths: Vec<Path>,
    txqs: Vec<TxQueue>,
}

/// A port's rx and tx queues, each taken out once by the worker it goes to.
pub(crate) type PortQueues = (Vec<Option<RxQueue>>, Vec<Option<TxQueue>>);

pub(crate) fn take_all_queues(ports: &mut [Port]) -> Vec<PortQueues> {
    ports
        .iter_mut()
        .map(|p| {
            let (rx, tx) = p.take_queues().expect("queues taken once");
            (rx.into_iter().map(Some).collect(), tx.into_iter().map(Some).collect())
        })
        .collect()
}

/// Gives worker w queue w of every port: for each pair (a, b) it forwards
/// a.rx[w] -> b.tx[w] and b.rx[w] -> a.tx[w].
pub(crate) fn plan_workers(ports: &mut [Port], pairs: &[(usize, usize)], nworkers: usize) -> Vec<WorkerPlan> {
    let mut queues = take_all_queues(ports);
    (0..nworkers)
        .map(|w| {
            let mut plan = WorkerPlan { paths: Vec::new(), txqs: Vec::new() };
            for &(a, b) in pairs {
                for (from, to) in [(a, b), (b, a)] {
                    let rx = queues[from].0[w].take().expect("each rx queue used once");
                    let tx = queues[to].1[w].take().expect("each tx queue used once");
                    plan.txqs.push(tx);
                    plan.paths.push(Path { rx, tx: plan.txqs.len() - 1 });
                }
            }
            plan
        })
        .collect()
}

/// Gives worker w rx queue w of every port and tx queue w of every port
/// (indexed by port).
pub(crate) fn plan_gateway(
    ports: &mut [Port],
    nworkers: usize,
    main_tx: &mut Vec<Option<TxQueue>>,
) -> Vec<(Vec<RxQueue>, Vec<TxQueue>)> {
    let mut per_port = take_all_queues(ports);
    // The extra tx queue of each port is the main lcore's (injection).
    main_tx.extend(per_port.iter_mut().map(|q| q.1.get_mut(nworkers).and_then(Option::take)));
    (0..nworkers)
        .map(|w| {
            // Rx queues beyond one per worker (net_af_packet's) go round-robin.
            let rx = per_port
                .iter_mut()
                .flat_map(|q| q.0.iter_mut().skip(w).step_by(nworkers).map(|r| r.take().expect("rx queue used once")))
                .collect();
            let tx = per_port.iter_mut().map(|q| q.1[w].take().expect("tx queue used once")).collect();
            (rx, tx)
        })
        .collect()
}

/// The fast path over an mbuf.
pub(crate) struct MbufBuf<'a>(&'a mut Mbuf);

impl PacketBuf for MbufBuf<'_> {
    #[inline]
    fn data(&self) -> &[u8] {
        self.0.data()
    }
    #[inline]
    fn data_mut(&mut self) -> &mut [u8] {
        self.0.data_mut()
    }
    #[inline]
    fn headroom(&self) -> usize {
        self.0.headroom()
    }
    #[inline]
    fn tailroom(&self) -> usize {
        self.0.tailroom()
    }
    #[inline]
    fn prepend(&mut self, n: usize) -> Option<&mut [u8]> {
        self.0.prepend(n)
    }
    #[inline]
    fn append(&mut self, n: usize) -> Option<&mut [u8]> {
        self.0.append(n)
    }
    #[inline]
    fn adj(&mut self, n: usize) -> bool {
        self.0.adj(n)
    }
    #[inline]
    fn trim(&mut self, n: usize) -> bool {
        self.0.trim(n)
    }
}

/// Drop counts since the last report, once a second at most.
pub(crate) struct DropReport {
    stats: Vec<Arc<WorkerStats>>,
    last: Vec<u64>,
    at: Instant,
}

impl DropReport {
    pub(crate) fn new(stats: Vec<Arc<WorkerStats>>) -> Self {
        DropReport { stats, last: vec![0; DropReason::COUNT], at: Instant::now() }
    }

    pub(crate) fn poll(&mut self) -> Option<Event> {
        if self.at.elapsed() < Duration::from_secs(1) || self.stats.is_empty() {
            return None;
        }
        self.at = Instant::now();
        let mut counts = Vec::new();
        for r in DropReason::ALL {
            let now: u64 = self.stats.iter().map(|s| s.drop_count(*r)).sum();
            let d = now - self.last[*r as usize];
            self.last[*r as usize] = now;
            if d > 0 {
                counts.push((r.name().to_string(), d));
            }
        }
        let spi = self.stats.iter().map(|s| s.last_unknown_spi.load(Ordering::Relaxed)).find(|&v| v != u64::MAX);
        (!counts.is_empty()).then(|| Event::Drops { counts, last_unknown_spi: spi.map(|v| v as u32) })
    }
}

/// A worker's queues to and from the main lcore.
pub(crate) struct WorkerLink {
    /// New tables, picked up between bursts.
    pub(crate) tables: Arc<ArrayQueue<Arc<Tables>>>,
    /// Frames for the control plane.
    pub(crate) punts: Arc<PuntQueue>,
}

/// The gateway worker: rx burst from each port, every packet through the
/// pipeline, per-port tx bursts. Punted packets are counted and freed
/// until the control-plane ring takes them.
pub(crate) fn gateway_worker(
    mut rxqs: Vec<RxQueue>,
    mut txqs: Vec<TxQueue>,
    mut w: Worker,
    link: WorkerLink,
    stop: &AtomicBool,
    c: &WorkerCounters,
    wc: &WorkerConfig,
) {
    let mut rx = MbufBurst::new();
    let mut out: Vec<MbufBurst> = txqs.iter().map(|_| MbufBurst::new()).collect();
    let mut backoff = IdleBackoff::new(wc.idle_polls_before_sleep, wc.idle_sleep_max_us);
    let mut s = WorkerSnapshot::default();
    while !stop.load(Ordering::Relaxed) {
        let mut got = 0usize;
        for q in rxqs.iter_mut() {
            let n = q.rx_burst(&mut rx);
            if n == 0 {
                continue;
            }
            got += n;
            let in_port = q.port().0;
            for mut m in rx.drain() {
                match w.process(&mut MbufBuf(&mut m)) {
                    // A burst of at most 32 in cannot fill a burst out.
                    Verdict::Tx(p) => {
                        let _ = out[p as usize].push(m);
                    }
                    Verdict::Punt => {
                        if link.punts.push((in_port, m.data().to_vec())).is_err() {
                            w.count_drop(DropReason::PuntFailed);
                        }
                    }
                    Verdict::Drop(_) => {}
                }
            }
            for (p, b) in out.iter_mut().enumerate() {
                if !b.is_empty() {
                    s.tx += txqs[p].tx_burst(b) as u64;
                    s.tx_full += b.len() as u64;
                    b.clear();
                }
            }
        }
        s.rx += got as u64;
        // Quiescent point: no packet of ours is in flight; switch tables.
        if let Some(t) = link.tables.pop() {
            w.set_tables(t);
        }
        if let Some(d) = backoff.after_poll(got > 0) {
            s.idle_sleeps += 1;
            std::thread::sleep(d);
        }
        c.publish(&s);
    }
}

/// Gateway counters: per-reason drops, per-SA packets, as `key=value`.
pub(crate) fn print_gateway_final(t: &Tables, stats: &[Arc<WorkerStats>]) {
    let sum = |f: &dyn Fn(&WorkerStats) -> u64| stats.iter().map(|s| f(s)).sum::<u64>();
    let ld = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    println!(
        "counters gateway encrypted={} decrypted={} forwarded={} punted={}",
        sum(&|s| ld(&s.encrypted)),
        sum(&|s| ld(&s.decrypted)),
        sum(&|s| ld(&s.forwarded)),
        sum(&|s| ld(&s.punted))
    );
    let drops: Vec<String> = DropReason::ALL
        .iter()
        .map(|r| (r, sum(&|s| s.drop_count(*r))))
        .filter(|(_, n)| *n > 0)
        .map(|(r, n)| format!("{}={n}", r.name()))
        .collect();
    println!("counters drops {}", if drops.is_empty() { "none".to_string() } else { drops.join(" ") });
    for sa in &t.out_sas {
        println!(
            "counters sa spi={:#010x} dir=out packets={} bytes={} seq={}",
            sa.spi,
            sa.stats.get(STAT_PACKETS),
            sa.stats.get(STAT_BYTES),
            sa.seq_used()
        );
    }
    for sa in &t.in_sas {
        println!(
            "counters sa spi={:#010x} dir=in packets={} bytes={} replay={} icv_failed={}",
            sa.spi,
            sa.stats.get(STAT_PACKETS),
            sa.stats.get(STAT_BYTES),
            sa.stats.get(STAT_REPLAY),
            sa.stats.get(STAT_ICV)
        );
    }
}

/// The forwarding worker: rx burst -> tx burst on the paired port; what the
/// tx queue does not take is freed and counted. Sleeps when idle.
pub(crate) fn forward_worker(mut plan: WorkerPlan, stop: &AtomicBool, c: &WorkerCounters, wc: &WorkerConfig) {
    let mut burst = MbufBurst::new();
    let mut backoff = IdleBackoff::new(wc.idle_polls_before_sleep, wc.idle_sleep_max_us);
    let mut s = WorkerSnapshot::default();
    while !stop.load(Ordering::Relaxed) {
        let mut got = 0usize;
        for p in plan.paths.iter_mut() {
            let n = p.rx.rx_burst(&mut burst);
            if n == 0 {
                continue;
            }
            got += n;
            let sent = plan.txqs[p.tx].tx_burst(&mut burst);
            s.tx += sent as u64;
            s.tx_full += burst.len() as u64;
            burst.clear();
        }
        s.rx += got as u64;
        if let Some(d) = backoff.after_poll(got > 0) {
            s.idle_sleeps += 1;
            std::thread::sleep(d);
        }
        c.publish(&s);
    }
}
