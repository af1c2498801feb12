//! Brings the configured ports up, launches the forwarding workers, and runs
//! the main lcore's loop: live counters, idle exit, signals, shutdown.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dataplane::config::{Config, Mode};
use dataplane::counters::{WorkerCounters, WorkerSnapshot};
use dataplane::drop::DropReason;
use dataplane::pipeline::{Worker, WorkerStats};
use dataplane::state::{LifetimeMonitor, TableState};
use dataplane::tables::Tables;

use crate::control::{self, Control, Datagram, PuntQueue};
use crate::workers::{
    forward_worker, gateway_worker, plan_gateway, plan_workers, print_gateway_final, DropReport, WorkerLink,
};
use cpdp::msg::{Command, Event};
use crossbeam_queue::ArrayQueue;
use dataplane::neigh::{HoldQueue, NeighOut, NeighborAgent, PortAddrs};
use dpdk::{Eal, MbufBurst, Mempool, Port, PortConfig, PortId, PortStats, TxQueue};

#[derive(Debug, Clone)]
pub struct RunOptions {
    pub exit_when_idle: Option<Duration>,
    pub stats_interval: Option<Duration>,
}

struct RuntimeDir(String);

impl Drop for RuntimeDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The control plane's IKE datagrams on their way out of the main lcore:
/// sent, held for a next hop's address, dropped (no route, hold queue
/// full or expired, no mbuf or tx slot). Printed at exit; drops also go
/// to the control plane as `ike_unsent` (gwctl stats).
#[derive(Debug, Default)]
struct IkeTx {
    sent: u64,
    held: u64,
    dropped: u64,
    reported: u64,
}

pub fn run(cfg: &Config, opts: &RunOptions) -> Result<(), String> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone()).map_err(|e| format!("installing signal handler: {e}"))?;
    }

    let eal_args = cfg.eal_args();
    // EAL leaves its runtime directory (config, sockets) behind; it is ours
    // alone (the prefix is locked while we run), so tidy it on every way
    // out. Declared before the EAL so it is dropped after it.
    let _tidy = RuntimeDir(format!("/var/run/dpdk/{}", cfg.eal.file_prefix));
    let eal = Eal::init(&eal_args).map_err(|e| format!("EAL init failed ({e}); arguments: {}", eal_args.join(" ")))?;
    let workers = eal.worker_lcores();
    if workers.is_empty() {
        return Err(format!(
            "eal.lcores = '{}' leaves no worker lcore (the first one is the main lcore)",
            cfg.eal.lcores
        ));
    }
    let nq = u16::try_from(workers.len()).map_err(|_| "too many worker lcores".to_string())?;

    let pool = Arc::new(
        Mempool::pktmbuf(
            "gw_mbufs",
            cfg.mempool.mbufs,
            cfg.mempool.cache,
            dpdk::mempool::DEFAULT_DATA_ROOM,
            eal.socket_id(),
        )
        .map_err(|e| format!("mempool of {} mbufs: {e}", cfg.mempool.mbufs))?,
    );

    // Bring up every port with one rx and one tx queue per worker.
    let mut ports: Vec<Port> = Vec::new();
    for (i, pc) in cfg.ports.iter().enumerate() {
        let id = PortId::by_name(pc.dpdk_name())
            .map_err(|e| format!("port[{i}] '{}': device '{}' did not come up ({e})", pc.name, pc.dpdk_name()))?;
        // Gateway mode: one more tx queue per port where the device has
        // one, the main lcore's (for frames the control plane injects).
        let (max_rx, max_tx) = id.max_queues().unwrap_or((nq, nq));
        let extra_tx = u16::from(cfg.mode == Mode::Gateway && max_tx > nq);
        if cfg.mode == Mode::Gateway && extra_tx == 0 {
            // Then nothing the main lcore sends (ARP and neighbour replies,
            // the control plane's IKE datagrams) leaves on this port. Fine
            // for replaying a pcap; not for a live gateway: say so.
            eprintln!(
                "gw-dataplane: warning: port[{i}] '{}': no tx queue for the main lcore (the device has {max_tx}, \
                 {} needed): ARP, neighbour discovery and IKE cannot be sent on it (net_af_packet: qpairs={})",
                pc.name,
                nq + 1,
                nq + 1
            );
        }
        // net_af_packet spreads flows over all its qpairs sockets (kernel
        // fanout) whatever we configure: take and poll every one of them.
        let rx_queues =
            if cfg.mode == Mode::Gateway && pc.dpdk_name().starts_with("net_af_packet") { max_rx.max(nq) } else { nq };
        let conf = PortConfig {
            rx_queues,
            tx_queues: nq + extra_tx,
            rx_desc: pc.rx_desc,
            tx_desc: pc.tx_desc,
            ..Default::default()
        };
        let port = Port::configure(id, &conf, pool.clone()).map_err(|e| format!("port[{i}] '{}': {e}", pc.name))?;
        port.start().map_err(|e| format!("port[{i}] '{}': {e}", pc.name))?;
        ports.push(port);
    }

    let counters: Vec<Arc<WorkerCounters>> = workers.iter().map(|_| Arc::new(WorkerCounters::default())).collect();
    let mut main_tx: Vec<Option<TxQueue>> = Vec::new();
    let mut gw_stats: Vec<Arc<WorkerStats>> = Vec::new();
    let mut handles = Vec::new();
    let mut tables: Option<Arc<Tables>> = None;
    let mut table_state: Option<TableState> = None;
    let mut control: Option<Control> = None;
    let mut table_queues: Vec<Arc<ArrayQueue<Arc<Tables>>>> = Vec::new();
    let mut punt_queues: Vec<Arc<PuntQueue>> = Vec::new();
    let mut resolve_queues: Vec<Arc<ArrayQueue<std::net::IpAddr>>> = Vec::new();
    match cfg.mode {
        Mode::Forward => {
            let plans = plan_workers(&mut ports, &cfg.pairs(), workers.len());
            for ((lcore, plan), c) in workers.iter().zip(plans).zip(&counters) {
                let (stop, c, wc) = (stop.clone(), c.clone(), cfg.worker.clone());
                let h = eal
                    .launch(*lcore, move || forward_worker(plan, &stop, &c, &wc))
                    .map_err(|e| format!("launching worker on lcore {lcore}: {e}"))?;
                handles.push(h);
            }
        }
        Mode::Gateway => {
            if workers.len() > dataplane::sa::MAX_WORKERS {
                return Err(format!("at most {} worker lcores in gateway mode", dataplane::sa::MAX_WORKERS));
            }
            let macs: Vec<[u8; 6]> = ports.iter().map(|p| p.mac().unwrap_or_default()).collect();
            let base = Tables::from_config(cfg, "config", &macs).map_err(|e| e.to_string())?;
            let mut state = TableState::new(base);
            state.set_fail_closed(cfg.control.as_ref().is_some_and(|c| c.fail_closed));
            if let Some(c) = cfg.control.as_ref().filter(|c| c.no_match == dataplane::config::NoMatch::Discard) {
                state.set_no_match_discard(Some(c.bypass_prefixes().map_err(|(f, e)| format!("{f}: {e}"))?));
            }
            if let Some(cc) = &cfg.control {
                let mut ctl = Control::open(cc)?;
                state.set_seq_floors(ctl.seq_floors());
                let names = cfg.ports.iter().map(|p| p.name.clone()).zip(macs.iter().copied()).collect();
                ctl.send(&Event::Hello { generation: ctl.generation, ports: names });
                println!("gw-dataplane: control link in {} (generation {})", cc.dir, ctl.generation);
                if cc.wait_for_sync {
                    println!("gw-dataplane: waiting for the control plane to install everything");
                    while !ctl.synced && !stop.load(Ordering::Relaxed) {
                        let _ = ctl.poll(&mut state, &mut |_, _| false);
                        std::thread::sleep(Duration::from_millis(1));
                    }
                }
                control = Some(ctl);
            }
            let t = Arc::new(state.build());
            let plans = plan_gateway(&mut ports, workers.len(), &mut main_tx);
            for (id, ((lcore, (rxqs, txqs)), c)) in workers.iter().zip(plans).zip(&counters).enumerate() {
                let w = Worker::with_id(t.clone(), id);
                gw_stats.push(w.stats());
                resolve_queues.push(w.resolve_queue());
                let tq = Arc::new(ArrayQueue::new(1));
                let pq = Arc::new(PuntQueue::new(1024));
                table_queues.push(tq.clone());
                punt_queues.push(pq.clone());
                let link = WorkerLink { tables: tq, punts: pq };
                let (stop, c, wc) = (stop.clone(), c.clone(), cfg.worker.clone());
                let h = eal
                    .launch(*lcore, move || gateway_worker(rxqs, txqs, w, link, &stop, &c, &wc))
                    .map_err(|e| format!("launching worker on lcore {lcore}: {e}"))?;
                handles.push(h);
            }
            tables = Some(t);
            table_state = Some(state);
        }
    }

    let port_list: Vec<String> = cfg
        .ports
        .iter()
        .zip(&ports)
        .map(|(pc, p)| {
            let rss = if p.rss_active() { ", RSS" } else { "" };
            format!("{}={} (port {}{rss})", pc.name, pc.dpdk_name(), p.id())
        })
        .collect();
    println!(
        "gw-dataplane: {} | {} worker lcore(s) {:?} | ports: {}",
        dpdk::version(),
        workers.len(),
        workers,
        port_list.join(", ")
    );

    // The main lcore's own tx queue on every port (after the workers').
    let mut main_txqs = main_tx;
    let mut monitor = LifetimeMonitor::default();
    let mut neighbors = NeighborAgent::new(
        cfg.ports
            .iter()
            .zip(&ports)
            .map(|(pc, p)| PortAddrs {
                mac: pc
                    .mac
                    .as_deref()
                    .and_then(|m| dataplane::tables::parse_mac(m).ok())
                    .unwrap_or_else(|| p.mac().unwrap_or_default()),
                addrs: pc.addresses.iter().filter_map(|a| a.split('/').next()?.parse().ok()).collect(),
            })
            .collect(),
    );
    let mut drops = DropReport::new(gw_stats.clone());
    let mut last_check = Instant::now();
    let mut last_reserve = Instant::now();
    let mut held: HoldQueue<Datagram> = HoldQueue::default();
    let mut ike_tx = IkeTx::default();
    let mut links = crate::links::LinkWatch::new(
        ports.iter().zip(&cfg.ports).map(|(p, pc)| (p.id(), crate::links::kernel_iface(&pc.device))).collect(),
    );
    let port_names: Vec<String> = cfg.ports.iter().map(|p| p.name.clone()).collect();
    let mut last_solicit = Instant::now();
    let mut last_ports = Instant::now();
    let mut seen_syncs = 0;
    let mut housekeeping = || {
        // Lifetimes and drop reports, ten times a second.
        if last_check.elapsed() >= Duration::from_millis(100) {
            last_check = Instant::now();
            if let Some(t) = &tables {
                let mut events = monitor.check(t, Instant::now());
                events.extend(drops.poll());
                if ike_tx.dropped > ike_tx.reported {
                    let n = ike_tx.dropped - ike_tx.reported;
                    ike_tx.reported = ike_tx.dropped;
                    events.push(Event::Drops { counts: vec![("ike_unsent".into(), n)], last_unknown_spi: None });
                }
                for e in events {
                    match control.as_mut() {
                        Some(ctl) => {
                            ctl.send(&e);
                        }
                        None => println!("event {e:?}"),
                    }
                }
            }
        }
        // The ports' counters, once a second (gwctl ports, metrics), and
        // right after a DumpState (what gwctl shows comes together).
        let dumped = control.as_mut().is_some_and(|c| std::mem::take(&mut c.state_dumped));
        if dumped || last_ports.elapsed() >= Duration::from_secs(1) {
            last_ports = Instant::now();
            if let Some(ctl) = control.as_mut() {
                let ports = ports
                    .iter()
                    .enumerate()
                    .map(|(i, p)| {
                        let s = p.stats().unwrap_or_default();
                        cpdp::msg::PortCounters {
                            port: i as u16,
                            name: port_names.get(i).cloned().unwrap_or_default(),
                            up: links.is_up(i),
                            rx_packets: s.ipackets,
                            tx_packets: s.opackets,
                            rx_bytes: s.ibytes,
                            tx_bytes: s.obytes,
                            rx_missed: s.imissed,
                            rx_errors: s.ierrors,
                            tx_errors: s.oerrors,
                            rx_nombuf: s.rx_nombuf,
                        }
                    })
                    .collect();
                ctl.send(&Event::Ports { ports });
            }
        }
        let Some(state) = table_state.as_mut() else { return };
        let mut inject = |port: u16, frame: &[u8]| -> bool {
            let Some(Some(q)) = main_txqs.get_mut(port as usize) else { return false };
            let send = |q: &mut dpdk::ethdev::TxQueue| {
                let Some(mut m) = pool.alloc() else { return false };
                if !m.copy_from(frame) {
                    return false;
                }
                let mut b = MbufBurst::new();
                let _ = b.push(m);
                q.tx_burst(&mut b) == 1
            };
            let oerrors = |q: &dpdk::ethdev::TxQueue| dpdk::ethdev::stats(q.port()).map_or(0, |s| s.oerrors);
            let before = oerrors(q);
            let sent = send(q);
            // An AF_PACKET socket reports a link that went down (ENETDOWN)
            // on its next send, even after the link is back; net_af_packet
            // then counts the frame an error but leaves it in its ring, to
            // leave with the next send on this queue: the IKE
            // retransmission, half a second later (seen as a 500 ms outage
            // on every move back to a link that had been down). A second
            // send at once takes both out; the peer sees a retransmission.
            if sent && oerrors(q) > before {
                send(q);
            }
            sent
        };
        let mut new_tables = control.as_mut().and_then(|ctl| ctl.poll(state, &mut inject));
        // Links: a lost uplink moves multihomed SAs to their next path in
        // this rebuild; the control plane hears of it.
        if let Some(ctl) = control.as_ref().filter(|c| c.syncs != seen_syncs) {
            seen_syncs = ctl.syncs;
            links.report_all();
        }
        for (port, up) in links.poll(Instant::now()) {
            if state.set_link(port, up) {
                new_tables = Some(state.build());
            }
            let name = port_names.get(port as usize).map_or("?", |s| s.as_str());
            println!("gw-dataplane: port {name} link {}", if up { "up" } else { "down" });
            if let Some(ctl) = control.as_mut() {
                ctl.send(&Event::PortLink { port, up, addresses: state.addresses_on(port) });
            }
        }
        // Group rollovers coming due.
        if state.next_deadline().is_some_and(|d| d <= Instant::now()) && state.tick(Instant::now()) {
            new_tables = Some(state.build());
        }
        // Punted frames: ARP and neighbour discovery are answered here, the
        // rest goes to the control plane.
        let mut learned = false;
        for q in &punt_queues {
            while let Some((port, frame)) = q.pop() {
                match neighbors.on_frame(port, &frame) {
                    Some(outs) => {
                        for o in outs {
                            match o {
                                NeighOut::Send { port, frame } => {
                                    inject(port, &frame);
                                }
                                NeighOut::Learn { ip, mac } => {
                                    let known = tables.as_ref().and_then(|t| t.neighbors.get(&ip).copied());
                                    if known != Some(mac) {
                                        learned |= state.apply(&Command::SetNeighbor { ip, mac }).unwrap_or(false);
                                    }
                                }
                            }
                        }
                    }
                    None => {
                        if let Some(ctl) = control.as_mut() {
                            // IKE (UDP 500/4500 to us) goes up as a datagram.
                            let ev = match dataplane::wire::datagram::parse(&frame) {
                                Some((src, dst, payload)) if matches!(dst.port(), 500 | 4500) => {
                                    Event::Datagram { port, src, dst, payload }
                                }
                                _ => Event::Punt { port, frame },
                            };
                            ctl.send(&ev);
                        }
                    }
                }
            }
        }
        if learned {
            new_tables = Some(state.build());
        }
        let tables_changed = new_tables.is_some();
        if let Some(t) = new_tables {
            let t = Arc::new(t);
            control::publish(&table_queues, &t);
            tables = Some(t);
        }
        // The control plane's IKE datagrams: routed like our own traffic.
        // One whose next hop has no link-layer address yet waits for it in
        // the hold queue while that is solicited.
        let now = Instant::now();
        if let (Some(ctl), Some(t)) = (control.as_mut(), &tables) {
            let mut todo = std::mem::take(&mut ctl.datagrams);
            if !held.is_empty() {
                let (ready, expired) = held.release(|ip| t.neighbors.contains_key(&ip), now);
                ike_tx.dropped += expired as u64;
                todo.splice(0..0, ready);
            }
            for (src, dst, payload) in todo {
                // From our address's own port (multihoming: each uplink).
                match t.next_hop_from(src.ip(), dst.ip()) {
                    Ok(nh) => {
                        let sent = dataplane::wire::datagram::frame(src, dst, &payload, nh.dst_mac, nh.src_mac)
                            .is_some_and(|f| inject(nh.port, &f));
                        if sent {
                            ike_tx.sent += 1;
                        } else {
                            ike_tx.dropped += 1;
                        }
                    }
                    Err(_) => {
                        let route = t.route_from(src.ip(), dst.ip());
                        let Some((via, port)) = route.map(|r| (r.via.unwrap_or(dst.ip()), r.port)) else {
                            ike_tx.dropped += 1; // no route
                            continue;
                        };
                        match held.hold(via, now, (src, dst, payload)) {
                            Ok(()) => ike_tx.held += 1,
                            Err(_) => ike_tx.dropped += 1,
                        }
                        if let Some(NeighOut::Send { port, frame }) = neighbors.solicit(via, port, now) {
                            inject(port, &frame);
                        }
                    }
                }
            }
        }
        // Multihomed SAs' other paths: their next hops are known before a
        // link loss needs them.
        if tables_changed || last_solicit.elapsed() >= Duration::from_secs(1) {
            last_solicit = Instant::now();
            if let Some(t) = &tables {
                for (l, r) in state.multihomed_paths() {
                    if t.next_hop_from(l, r).is_err() {
                        if let Some(rt) = t.route_from(l, r) {
                            if let Some(NeighOut::Send { port, frame }) =
                                neighbors.solicit(rt.via.unwrap_or(r), rt.port, now)
                            {
                                inject(port, &frame);
                            }
                        }
                    }
                }
            }
        }
        // Next hops the workers could not reach: solicit them.
        for q in &resolve_queues {
            while let Some(ip) = q.pop() {
                let port = tables.as_ref().and_then(|t| t.route(ip)).map(|r| r.port);
                if let Some(NeighOut::Send { port, frame }) = port.and_then(|p| neighbors.solicit(ip, p, now)) {
                    inject(port, &frame);
                }
            }
        }
        // New SAs are reserved as soon as they are installed; use is
        // checked every 10 ms (no SA sends 2^19 packets that fast), not
        // every tick: the check walks every outbound SA.
        if let (Some(ctl), Some(t)) = (control.as_mut(), &tables) {
            if tables_changed || last_reserve.elapsed() >= Duration::from_millis(10) {
                last_reserve = Instant::now();
                ctl.reserve(t);
            }
        }
    };
    let live_stats = gw_stats.clone();
    let mut last_live = (Instant::now(), 0u64, 0u64, 0u64);
    let mut gateway_live = move || -> String {
        if live_stats.is_empty() {
            return String::new();
        }
        let ld = |f: &dyn Fn(&WorkerStats) -> u64| live_stats.iter().map(|s| f(s)).sum::<u64>();
        let enc = ld(&|s| s.encrypted.load(Ordering::Relaxed));
        let dec = ld(&|s| s.decrypted.load(Ordering::Relaxed));
        let drops = ld(&|s| DropReason::ALL.iter().map(|r| s.drop_count(*r)).sum());
        let secs = last_live.0.elapsed().as_secs_f64().max(1e-9);
        let line = format!(
            " | encrypt {:.3} Mpps decrypt {:.3} Mpps drops {}",
            (enc - last_live.1) as f64 / secs / 1e6,
            (dec - last_live.2) as f64 / secs / 1e6,
            drops - last_live.3
        );
        last_live = (Instant::now(), enc, dec, drops);
        line
    };
    main_loop(cfg, opts, &ports, &counters, &stop, &mut housekeeping, &mut gateway_live);

    stop.store(true, Ordering::SeqCst);
    for h in handles {
        h.join().map_err(|e| format!("worker: {e}"))?;
    }
    print_final(cfg, &ports, &counters);
    if let Some(t) = &tables {
        print_gateway_final(t, &gw_stats);
    }
    if cfg.control.is_some() {
        println!("counters ike_tx sent={} held={} dropped={}", ike_tx.sent, ike_tx.held, ike_tx.dropped);
    }
    for p in &ports {
        p.stop().map_err(|e| format!("stopping {}: {e}", p.name()))?;
    }
    // Ports close (after every queue handle is gone) before the pool and
    // the EAL go.
    drop(main_txqs);
    drop(ports);
    drop(pool);
    drop(eal);
    Ok(())
}

fn main_loop(
    cfg: &Config,
    opts: &RunOptions,
    ports: &[Port],
    counters: &[Arc<WorkerCounters>],
    stop: &AtomicBool,
    housekeeping: &mut dyn FnMut(),
    live_extra: &mut dyn FnMut() -> String,
) {
    // With a control plane attached, commands are served every millisecond.
    let tick = if cfg.control.is_some() { Duration::from_millis(1) } else { Duration::from_millis(20) };
    let start = Instant::now();
    let total_rx = || counters.iter().map(|c| c.snapshot().rx).sum::<u64>();
    let mut last_rx = total_rx();
    let mut last_rx_change = Instant::now();
    let mut last_print = Instant::now();
    let mut last_stats: Vec<PortStats> = ports.iter().map(|p| p.stats().unwrap_or_default()).collect();
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(tick);
        housekeeping();
        let rx = total_rx();
        if rx != last_rx {
            last_rx = rx;
            last_rx_change = Instant::now();
        }
        if opts.exit_when_idle.is_some_and(|idle| last_rx_change.elapsed() >= idle) {
            break;
        }
        let Some(iv) = opts.stats_interval else {
            continue;
        };
        let dt = last_print.elapsed();
        if dt < iv {
            continue;
        }
        let now: Vec<PortStats> = ports.iter().map(|p| p.stats().unwrap_or_default()).collect();
        let secs = dt.as_secs_f64();
        let rate = |x: u64, y: u64| y.saturating_sub(x) as f64 / secs;
        let mut line = format!("[{:7.1}s]", start.elapsed().as_secs_f64());
        for ((pc, a), b) in cfg.ports.iter().zip(&last_stats).zip(&now) {
            line.push_str(&format!(
                " | {}: rx {:.3} Mpps {:.2} Gbit/s, tx {:.3} Mpps {:.2} Gbit/s",
                pc.name,
                rate(a.ipackets, b.ipackets) / 1e6,
                rate(a.ibytes, b.ibytes) * 8.0 / 1e9,
                rate(a.opackets, b.opackets) / 1e6,
                rate(a.obytes, b.obytes) * 8.0 / 1e9,
            ));
        }
        let w = counters.iter().map(|c| c.snapshot()).fold(WorkerSnapshot::default(), |a, b| a + b);
        line.push_str(&format!(" | tx_full drops {}", w.tx_full));
        line.push_str(&live_extra());
        println!("{line}");
        last_stats = now;
        last_print = Instant::now();
    }
}

/// Final counters, one `key=value` line per port and per worker, for
/// people and for tests.
fn print_final(cfg: &Config, ports: &[Port], counters: &[Arc<WorkerCounters>]) {
    for (pc, p) in cfg.ports.iter().zip(ports) {
        let s = p.stats().unwrap_or_default();
        println!(
            "counters port={} device={} ipackets={} opackets={} ibytes={} obytes={} imissed={} ierrors={} oerrors={} rx_nombuf={}",
            pc.name,
            pc.dpdk_name(),
            s.ipackets,
            s.opackets,
            s.ibytes,
            s.obytes,
            s.imissed,
            s.ierrors,
            s.oerrors,
            s.rx_nombuf
        );
    }
    for (i, c) in counters.iter().enumerate() {
        let s = c.snapshot();
        println!("counters worker={} rx={} tx={} tx_full={} idle_sleeps={}", i, s.rx, s.tx, s.tx_full, s.idle_sleeps);
    }
}
