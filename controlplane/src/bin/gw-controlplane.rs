//! gw-controlplane: the IKEv2 daemon. Runs the sans-IO engine against the
//! chosen transport, installs child SAs in gw-dataplane over the rings,
//! and answers gwctl on the admin socket.

/// mimalloc: the engine allocates per message (payloads, keys, events);
/// glibc's malloc was a fifth of a 10,000-client failover (perf), mimalloc
/// far less (benches/results-failover-*.md). Built without transparent
/// huge pages (`no_thp`): the engine's state is small objects touched at
/// random, and each fresh 2 MiB page zeroed on first touch made a table's
/// growth cost milliseconds (a third of a 10,000-client SYN rebuild, perf
/// in a KVM guest).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Parser;
use controlplane::crypto::SystemRandom;
use controlplane::daemon::admin::{self, Request, Response};
use controlplane::daemon::bird::{self, BirdInput};
use controlplane::daemon::config::{DaemonConfig, TransportKind};
use controlplane::daemon::stubsync::{StubInput, StubSync};
use controlplane::daemon::transport::{DataplaneLink, KernelUdp};
use controlplane::daemon::Input;
use controlplane::daemon::{metrics, view};
use controlplane::ike::engine::AddressChange;
use controlplane::ike::{Engine, Output};
use controlplane::mobikex::ActionKind;
use controlplane::stub::StubOp;
use cpdp::msg::{Command, Direction, Event};

#[derive(Parser, Debug)]
#[command(name = "gw-controlplane", about = "IKEv2 control plane of the gateway")]
struct Args {
    /// The configuration file (configs/controlplane.example.toml documents it).
    #[arg(long, short)]
    config: PathBuf,
    /// Check the configuration and exit.
    #[arg(long)]
    check: bool,
    /// Seconds to wait for gw-dataplane's ring files at start.
    #[arg(long, default_value_t = 30)]
    wait_dataplane: u64,
    /// Print the BIRD 2 configuration for the `[bgp]` section (MPSA peer
    /// discovery) and exit; a hub's member filter file is created too,
    /// refusing everything, when it does not exist yet.
    #[arg(long)]
    bird_config: bool,
}

fn main() {
    let args = Args::parse();
    let cfg = match DaemonConfig::load(&args.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("gw-controlplane: {e}");
            std::process::exit(2);
        }
    };
    for w in &cfg.warnings {
        eprintln!("gw-controlplane: warning: {}: {w}", args.config.display());
    }
    if args.check {
        println!("{}: ok ({} connections)", args.config.display(), cfg.connections.len());
        return;
    }
    if args.bird_config {
        if let Err(e) = bird_config(&cfg) {
            eprintln!("gw-controlplane: {}: {e}", args.config.display());
            std::process::exit(2);
        }
        return;
    }
    if let Err(e) = run(cfg, &args.config, Duration::from_secs(args.wait_dataplane)) {
        eprintln!("gw-controlplane: {e}");
        std::process::exit(1);
    }
}

/// `--bird-config`.
fn bird_config(cfg: &DaemonConfig) -> Result<(), String> {
    let b = cfg.bgp.as_ref().ok_or("no [bgp] section")?;
    if let controlplane::bgp::Side::Hub { filter_file, .. } = &b.side {
        if !filter_file.exists() {
            bird::write_filter(filter_file, &controlplane::bgp::bird::member_filter(&[]))?;
        }
    }
    print!("{}", controlplane::bgp::bird::config(b));
    Ok(())
}

/// MPSA peer discovery: the link to BIRD and what it said.
struct Bgp {
    cfg: controlplane::bgp::BgpConfig,
    link: bird::BirdLink,
    /// Hub: the members the filter file holds now.
    filter: Option<Vec<controlplane::bgp::bird::MemberRoutes>>,
    /// Endpoint: routes accepted now, and refused since start.
    routes: usize,
    refused: u64,
    /// Whether the speaker answered last time.
    up: bool,
    /// Hub: why BIRD last refused to reconfigure (logged once).
    last_error: Option<String>,
}

struct Daemon {
    engine: Engine,
    bgp: Option<Bgp>,
    kernel: Option<KernelUdp>,
    dp: Option<DataplaneLink>,
    dataplane_transport: bool,
    started: Instant,
    log_buf: std::cell::RefCell<std::io::BufWriter<std::io::Stdout>>,
    /// Dataplane counters by (SPI, direction): packets, bytes.
    counters: HashMap<(u32, Direction), (u64, u64)>,
    /// Dataplane drops by reason since this daemon started (the dataplane
    /// reports what changed, at most once a second).
    drops: std::collections::BTreeMap<String, u64>,
    config_text: String,
    /// The file we run from (`gwctl reload` reads it again), and what of
    /// it only a restart applies.
    config_path: PathBuf,
    restart_only: (controlplane::daemon::config::DaemonToml, Option<controlplane::daemon::config::StubsToml>),
    /// Connections an operator terminated: not restarted automatically.
    held: std::collections::HashSet<String>,
    /// The dataplane's ports: link up, our addresses on it (Event::PortLink).
    links: std::collections::BTreeMap<u16, (bool, Vec<std::net::IpAddr>)>,
    /// Stub synchronization with peer gateways (`[stubs]`).
    stubsync: Option<StubSync>,
    /// The dataplane's ports' counters (Event::Ports, each second).
    ports: Vec<cpdp::msg::PortCounters>,
    /// gwctl requests waiting for the dataplane's Event::State.
    tables_wanted: Vec<std::sync::mpsc::Sender<Response>>,
}

fn run(cfg: DaemonConfig, path: &std::path::Path, wait: Duration) -> Result<(), String> {
    let (tx, rx) = mpsc::channel::<Input>();
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(sig, stop.clone()).map_err(|e| e.to_string())?;
    }
    let kernel = match cfg.daemon.transport {
        TransportKind::Kernel => Some(KernelUdp::bind(&cfg.daemon.listen)?),
        TransportKind::Dataplane => None,
    };
    let dp = match &cfg.daemon.control_dir {
        Some(dir) => Some(DataplaneLink::open(dir, wait)?),
        None => None,
    };
    admin::serve(&cfg.daemon.admin_socket, tx.clone())?;
    let metrics_at = match cfg.daemon.metrics {
        Some(a) => {
            let t = tx.clone();
            Some(metrics::serve(a, move |reply| t.send(Input::Metrics(reply)).is_ok())?)
        }
        None => None,
    };
    controlplane::crypto::dh::warm_up();
    let mut engine = Engine::new(cfg.connections.clone(), cfg.settings(), Box::new(SystemRandom::default()));
    engine.mpsa_role = cfg.daemon.mpsa;
    // The wall clock, for the expiry the stubs we export carry.
    if let Ok(t) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        engine.set_unix_time(Instant::now(), t.as_secs());
    }
    for g in &cfg.groups {
        engine.add_group(Instant::now(), g.clone());
    }
    let d = Daemon {
        engine,
        bgp: None,
        kernel,
        dp,
        dataplane_transport: cfg.daemon.transport == TransportKind::Dataplane,
        started: Instant::now(),
        log_buf: std::cell::RefCell::new(std::io::BufWriter::with_capacity(1 << 16, std::io::stdout())),
        counters: HashMap::new(),
        drops: Default::default(),
        config_text: cfg.text.clone(),
        config_path: path.to_path_buf(),
        restart_only: (cfg.daemon.clone(), cfg.stubs.clone()),
        held: Default::default(),
        links: Default::default(),
        stubsync: None,
        ports: Vec::new(),
        tables_wanted: Vec::new(),
    };
    d.log(&format!(
        "started: {} connections, transport {:?}, admin socket {}{}",
        cfg.connections.len(),
        cfg.daemon.transport,
        cfg.daemon.admin_socket.display(),
        metrics_at.map(|a| format!(", metrics at http://{a}/metrics")).unwrap_or_default()
    ));
    d.flush_log();
    let d = Arc::new(Mutex::new(d));
    // Kernel datagrams and dataplane events are processed on the thread
    // that receives them, under the lock: no thread hand-off per message.
    let deliver: Arc<dyn Fn(Input) + Send + Sync> = {
        let dd = d.clone();
        Arc::new(move |i| {
            let mut d = dd.lock().expect("not poisoned");
            d.input(i);
            d.flush();
        })
    };
    {
        let mut g = d.lock().expect("not poisoned");
        if let Some(k) = &g.kernel {
            k.spawn_receivers(deliver.clone())?;
            // MOBIKE over kernel UDP: the kernel says when an address goes.
            let (d1, d2) = (deliver.clone(), deliver.clone());
            controlplane::daemon::netlink::spawn(
                move |a| d1(Input::LocalAddresses(a)),
                move |e| d2(Input::NetlinkError(e)),
            )?;
        }
        if let Some(s) = &cfg.stubs {
            let s = StubSync::start(s, deliver.clone())?;
            for n in &s.notes {
                g.log(n);
            }
            g.stubsync = Some(s);
        }
        if let Some(b) = &cfg.bgp {
            let d1 = deliver.clone();
            let link = bird::spawn(b, move |i| d1(Input::Bird(i)))?;
            g.log(&format!("bgp: reading BIRD at {}", b.socket.display()));
            g.bgp =
                Some(Bgp { cfg: b.clone(), link, filter: None, routes: 0, refused: 0, up: false, last_error: None });
        }
        if let Some(l) = g.dp.as_mut() {
            l.spawn_events(deliver)?;
        }
    }
    {
        let mut d = d.lock().expect("not poisoned");
        // Whatever the dataplane holds from an earlier run is replaced.
        if let Some(link) = d.dp.as_mut() {
            link.send(&Command::Flush);
            link.send(&Command::SyncDone);
        }
        d.engine.start_initiators(Instant::now());
        d.flush();
    }
    let mut last_counters = Instant::now();
    let mut last_start = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        let next = d.lock().expect("not poisoned").engine.poll_timeout();
        let wait = next.map_or(Duration::from_millis(500), |t| t.saturating_duration_since(now));
        // Receive threads may add earlier deadlines meanwhile: wake at least every 100 ms.
        let first = match rx.recv_timeout(wait.min(Duration::from_millis(100))) {
            Ok(i) => Some(i),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => break,
        };
        let mut d = d.lock().expect("not poisoned");
        if let Some(i) = first {
            d.input(i);
        }
        // Everything else already queued, then the timers.
        for _ in 0..256 {
            match rx.try_recv() {
                Ok(i) => d.input(i),
                Err(_) => break,
            }
        }
        d.engine.handle_timeout(Instant::now());
        if last_counters.elapsed() >= Duration::from_secs(1) {
            last_counters = Instant::now();
            if let Some(l) = d.dp.as_mut() {
                l.send(&Command::DumpCounters);
            }
            d.member_filter();
        }
        if last_start.elapsed() >= Duration::from_secs(5) {
            last_start = Instant::now();
            // One pass over the SAs, not one per connection.
            let with_sa: std::collections::HashSet<usize> =
                d.engine.ike_sas().map(|s| s.conn()).chain(d.engine.connecting().map(|c| c.conn)).collect();
            let names: Vec<String> = d
                .engine
                .connections()
                .iter()
                .enumerate()
                .filter(|(i, c)| c.is_initiator() && !d.held.contains(&c.name) && !with_sa.contains(i))
                .map(|(_, c)| c.name.clone())
                .collect();
            for n in names {
                d.log(&format!("{n}: no IKE SA, initiating"));
                let _ = d.engine.initiate(Instant::now(), &n);
            }
        }
        d.flush();
        d.flush_log();
    }
    let d = d.lock().expect("not poisoned");
    d.log("stopping (installed SAs stay in the dataplane until it restarts)");
    d.flush_log();
    let _ = std::fs::remove_file(&cfg.daemon.admin_socket);
    Ok(())
}

impl Daemon {
    /// Log lines are buffered and written by the main loop at least every
    /// 100 ms: a busy responder logs several lines per IKE SA, and a write
    /// each would cost more than the line is worth.
    fn log(&self, m: &str) {
        use std::io::Write;
        let mut out = self.log_buf.borrow_mut();
        // Integer formatting: a float's costs more than the rest of the line.
        let ms = self.started.elapsed().as_millis();
        let _ = writeln!(out, "[{:5}.{:03}] {m}", ms / 1000, ms % 1000);
    }

    fn flush_log(&self) {
        use std::io::Write;
        let _ = self.log_buf.borrow_mut().flush();
    }

    fn input(&mut self, i: Input) {
        let now = Instant::now();
        match i {
            Input::Datagram { local, remote, data } => self.engine.handle_datagram(now, local, remote, &data),
            Input::Dataplane(ev) => match ev {
                Event::Datagram { src, dst, payload, .. } if self.dataplane_transport => {
                    self.engine.handle_datagram(now, dst, src, &payload)
                }
                Event::Hello { generation, .. } => {
                    self.log(&format!("dataplane generation {generation}: installing every SA and group SA again"));
                    if let Some(l) = self.dp.as_mut() {
                        l.generation = Some(generation);
                    }
                    self.engine.dataplane_event(now, &ev);
                    // gwctl's table queries sent to the dataplane that died
                    // are asked again, after the resync, of the new one.
                    if !self.tables_wanted.is_empty() {
                        self.flush();
                        if let Some(l) = self.dp.as_mut() {
                            l.send(&Command::DumpState);
                        }
                    }
                }
                Event::Drops { counts, last_unknown_spi } => {
                    for (reason, n) in counts {
                        *self.drops.entry(reason).or_default() += n;
                    }
                    // RFC 4303 3.4.2: an SA we do not have is an auditable event.
                    if let Some(spi) = last_unknown_spi {
                        self.log(&format!("dataplane: ESP with an unknown SPI (last {spi:08x})"));
                    }
                }
                Event::Ports { ports } => self.ports = ports,
                ev @ Event::State { .. } => {
                    if let Some(t) = view::DataplaneTables::from_event(ev, &self.ports) {
                        for r in self.tables_wanted.drain(..) {
                            let _ = r.send(Response::Dataplane { tables: Box::new(t.clone()) });
                        }
                    }
                }
                Event::Counters { sas, .. } => {
                    self.counters = sas.iter().map(|c| ((c.spi, c.direction), (c.packets, c.bytes))).collect();
                }
                Event::CommandRejected { reason } => self.log(&format!("dataplane rejected a command: {reason}")),
                Event::Lifetime { .. } | Event::SeqExhausted { .. } => self.engine.dataplane_event(now, &ev),
                Event::PortLink { port, up, addresses } => {
                    let was = self.links.insert(port, (up, addresses.clone()));
                    if was.as_ref().is_some_and(|w| w.0 != up) || (was.is_none() && !up) {
                        let a: Vec<String> = addresses.iter().map(|a| a.to_string()).collect();
                        self.log(&format!(
                            "dataplane: port {port} link {} ({})",
                            if up { "up" } else { "down" },
                            if a.is_empty() { "no addresses".into() } else { a.join(", ") }
                        ));
                    }
                    if self.dataplane_transport {
                        let usable: Vec<std::net::IpAddr> =
                            self.links.values().filter(|(up, _)| *up).flat_map(|(_, a)| a.iter().copied()).collect();
                        let n = self.engine.local_addresses(now, &usable);
                        if n > 0 {
                            self.log(&format!("moving {n} IKE SA(s) off the addresses that went (MOBIKE)"));
                        }
                    }
                }
                _ => {}
            },
            Input::LocalAddresses(now_have) => {
                // Only addresses we have sockets on can carry IKE.
                let usable: Vec<std::net::IpAddr> = match &self.kernel {
                    Some(k) if !k.binds_any() => now_have.into_iter().filter(|a| k.bound(*a)).collect(),
                    _ => now_have,
                };
                let a: Vec<String> = usable.iter().map(|a| a.to_string()).collect();
                let a = if a.is_empty() { "none".to_string() } else { a.join(", ") };
                self.log(&format!("kernel: our usable addresses: {a}"));
                let n = self.engine.local_addresses(now, &usable);
                if n > 0 {
                    self.log(&format!("moving {n} IKE SA(s) off the addresses that went (MOBIKE)"));
                }
            }
            Input::NetlinkError(e) => self.log(&format!("kernel: a netlink message skipped: {e}")),
            Input::Stub(StubInput::Stubs(from, s)) => {
                match s.as_slice() {
                    [one] => self.log(&format!("stubs: filed the stub of {} from {from}", one.index)),
                    _ => self.log(&format!("stubs: filed {} stubs from {from}", s.len())),
                }
                self.engine.add_stubs(s);
            }
            Input::Stub(StubInput::Forget(i)) => {
                if self.engine.remove_stub(&i) {
                    self.log(&format!("stubs: forgot the stub of {i} (withdrawn or used)"));
                }
            }
            Input::Stub(StubInput::WantAll(reply)) => {
                // What we hold of others', and our own SAs' stubs.
                let own = self.engine.own_stubs();
                let items = match self.stubsync.as_mut() {
                    Some(s) => s.seal_all(self.engine.stubs().chain(own.iter())),
                    None => Vec::new(),
                };
                let _ = reply.send(items);
            }
            Input::Stub(StubInput::Fetched(i, stub)) => {
                let found = if stub.is_some() { "found" } else { "not found (or the bank unreachable)" };
                self.log(&format!("stubs: the bank's answer for {i}: {found}"));
                self.engine.stub_fetched(now, i, stub.map(|s| *s));
            }
            Input::Stub(StubInput::Log(m)) => self.log(&m),
            // Answered when the dataplane's Event::State comes back.
            Input::Admin(Request::Dataplane, reply) => match self.dp.as_mut() {
                Some(l) => {
                    l.send(&Command::DumpState);
                    self.tables_wanted.push(reply);
                }
                None => {
                    let _ = reply.send(Response::Error { message: "no dataplane link (daemon.control_dir)".into() });
                }
            },
            Input::Admin(req, reply) => {
                let r = self.admin(now, req);
                let _ = reply.send(r);
            }
            Input::Metrics(reply) => {
                let _ = reply.send(self.metrics(now));
            }
            Input::Bird(b) => self.bird(b),
        }
    }

    /// What BIRD said: an endpoint's learned routes go to the engine.
    fn bird(&mut self, i: BirdInput) {
        let Some(bgp) = self.bgp.as_mut() else { return };
        match i {
            BirdInput::Routes(routes) => {
                let was_up = std::mem::replace(&mut bgp.up, true);
                let controlplane::bgp::Side::Endpoint { connection, .. } = &bgp.cfg.side else { return };
                let conn = connection.clone();
                if !was_up {
                    self.log(&format!("bgp: BIRD answers: {} routes learned from the hub", routes.len()));
                }
                match self.engine.learn_routes(&conn, &routes) {
                    Ok(l) => {
                        for (r, why) in &l.refused {
                            self.log(&format!("bgp: refused {r}: {why}"));
                        }
                        if let Some(b) = self.bgp.as_mut() {
                            b.routes = l.accepted;
                            b.refused += l.refused.len() as u64;
                        }
                    }
                    Err(e) => self.log(&format!("bgp: {e}")),
                }
            }
            BirdInput::Unreachable(why) => {
                bgp.up = false;
                // The routes learned stay: a speaker restarting is no
                // withdrawal (the hub's hold time is).
                self.log(&format!("bgp: BIRD does not answer ({why}); the routes learned stay"));
            }
            BirdInput::Reconfigured(Ok(())) => {
                bgp.up = true;
                if bgp.last_error.take().is_some() {
                    self.log("bgp: BIRD read the member filter");
                }
            }
            BirdInput::Reconfigured(Err(e)) => {
                bgp.up = false;
                // Asked again at the next check (each second); said once.
                bgp.filter = None;
                if bgp.last_error.as_ref() != Some(&e) {
                    bgp.last_error = Some(e.clone());
                    self.log(&format!("bgp: BIRD did not read the member filter again: {e}"));
                }
            }
        }
    }

    /// Hub: the member filter follows the members up now (checked each
    /// second); rewritten and BIRD reconfigured only when it changed.
    fn member_filter(&mut self) {
        let Some(bgp) = self.bgp.as_ref() else { return };
        let controlplane::bgp::Side::Hub { filter_file, .. } = &bgp.cfg.side else { return };
        let view = self.engine.mpsa_member_routes();
        if bgp.filter.as_ref() == Some(&view) {
            return;
        }
        let path = filter_file.clone();
        match bird::write_filter(&path, &controlplane::bgp::bird::member_filter(&view)) {
            Ok(()) => {
                let names: Vec<String> = view.iter().map(|m| format!("{} at {}", m.id, m.esp)).collect();
                self.log(&format!(
                    "bgp: member filter: {}",
                    if names.is_empty() { "no member up".to_string() } else { names.join(", ") }
                ));
                if let Some(b) = self.bgp.as_mut() {
                    b.link.reconfigure();
                    b.filter = Some(view);
                }
            }
            Err(e) => self.log(&format!("bgp: the member filter could not be written: {e}")),
        }
    }

    /// Every IKE SA, its child SAs with the dataplane's counters.
    fn sas(&self, now: Instant) -> Vec<view::IkeSaInfo> {
        let mut sas = view::ike_sas(&self.engine, now);
        for sa in &mut sas {
            for c in &mut sa.children {
                // Both of a child's SAs are named by its inbound SPI
                // (the outbound one's handle, cpdp SaSpec::handle).
                let spi_in = u32::from_str_radix(&c.spi_in, 16).unwrap_or(0);
                let (pi, bi) = self.counters.get(&(spi_in, Direction::In)).copied().unwrap_or_default();
                let (po, bo) = self.counters.get(&(spi_in, Direction::Out)).copied().unwrap_or_default();
                (c.packets_in, c.bytes_in, c.packets_out, c.bytes_out) = (pi, bi, po, bo);
            }
        }
        sas
    }

    /// `gwctl reload`: the file again; connections and groups applied,
    /// or nothing at all.
    fn reload(&mut self, now: Instant) -> Response {
        let refuse = |why: String| Response::Error {
            message: format!("reload: {why}; nothing changed, the running config stays"),
        };
        let cfg = match DaemonConfig::load(&self.config_path) {
            Ok(c) => c,
            Err(e) => return refuse(e),
        };
        if cfg.daemon != self.restart_only.0 {
            return refuse("[daemon] changed: only a restart of gw-controlplane applies it".into());
        }
        if cfg.stubs != self.restart_only.1 {
            return refuse("[stubs] changed: only a restart of gw-controlplane applies it".into());
        }
        if cfg.bgp.as_ref() != self.bgp.as_ref().map(|b| &b.cfg) {
            return refuse("[bgp] changed: only a restart of gw-controlplane applies it".into());
        }
        if let Err(e) = self.engine.check_reload(&cfg.groups) {
            return refuse(e);
        }
        let r = self.engine.reload(now, cfg.connections, cfg.groups);
        self.config_text = cfg.text;
        let list = |v: &[String]| if v.is_empty() { "none".to_string() } else { v.join(", ") };
        let message = format!(
            "reloaded {}: kept {}; added {}; removed {}; changed {}; groups rekeyed {}, added {}; {} IKE SA(s) deleted",
            self.config_path.display(),
            list(&r.kept),
            list(&r.added),
            list(&r.removed),
            list(&r.changed),
            list(&r.groups_changed),
            list(&r.groups_added),
            r.ike_sas_deleted
        );
        self.log(&message);
        Response::Done { message }
    }

    fn bank_health(&self) -> Option<controlplane::daemon::stubconn::BankHealth> {
        self.stubsync.as_ref().filter(|s| s.has_bank()).map(|s| s.health.lock().expect("not poisoned").clone())
    }

    /// What a Prometheus scrape shows (`daemon/metrics.rs`).
    fn metrics(&self, now: Instant) -> metrics::Snapshot {
        metrics::Snapshot {
            ike: self.engine.stats.clone(),
            half_open: self.engine.half_open(),
            sas: self.sas(now),
            groups: view::groups(&self.engine, now),
            drops: self.drops.iter().map(|(k, v)| (k.clone(), *v)).collect(),
            dataplane_generation: self.dp.as_ref().and_then(|l| l.generation),
            dataplane_commands_dropped: self.dp.as_ref().map_or(0, |l| l.dropped),
            ports: self.links.iter().map(|(p, (up, _))| (*p, *up)).collect(),
            port_counters: self.ports.clone(),
            rings: self.dp.as_ref().map(|l| l.ring_fill()),
            stubs_held: self.engine.stubs_held(),
            stub_bank: self.bank_health(),
            bgp: self.bgp.as_ref().map(|b| metrics::BgpHealth { up: b.up, routes: b.routes, refused: b.refused }),
        }
    }

    fn admin(&mut self, now: Instant, req: Request) -> Response {
        let done = |r: Result<usize, controlplane::ike::engine::Error>, what: &str| match r {
            Ok(n) => Response::Done { message: format!("{what}: {n}") },
            Err(e) => Response::Error { message: e.to_string() },
        };
        match req {
            Request::ListSas => Response::Sas { sas: self.sas(now), groups: view::groups(&self.engine, now) },
            Request::Certs => Response::Certs { certs: view::certs(&self.engine) },
            Request::Initiate { conn, child: None } => {
                self.held.remove(&conn);
                done(self.engine.initiate(now, &conn).map(|_| 1), "initiating IKE SAs")
            }
            Request::Initiate { conn, child: Some(child) } => {
                self.held.remove(&conn);
                done(self.engine.initiate_child(now, &conn, &child), &format!("opening child SA {child} on IKE SAs"))
            }
            Request::Terminate { conn } => {
                self.held.insert(conn.clone());
                done(self.engine.terminate(now, &conn), "deleting IKE SAs")
            }
            Request::Rekey { conn, ike } => {
                done(self.engine.rekey(now, &conn, ike), if ike { "rekeying IKE SAs" } else { "rekeying child SAs" })
            }
            Request::Clone { conn, local } => {
                let what = match local {
                    Some(a) => format!("cloning IKE SAs, the clones to {a} (Clone IKE SA, then MOBIKE)"),
                    None => "cloning IKE SAs (Clone IKE SA)".to_string(),
                };
                done(self.engine.clone_ike_sa(now, &conn, local), &what)
            }
            Request::Redirect { conn, to, peer } => {
                let r = self.engine.redirect(now, &conn, to, peer.as_deref());
                done(r, &format!("redirecting clients to {to} (RFC 5685)"))
            }
            Request::GroupRemove { group, member } => {
                let r = self.engine.expel(now, &group, &member);
                done(r, &format!("{member} expelled from group {group}, rekeying without it; IKE SAs that held it"))
            }
            Request::Failover { conn } => {
                done(self.engine.failover(now, &conn), "rebuilding IKE SAs on the standby gateway (IKE_SA_SYN)")
            }
            Request::Move { conn, local, check: false } => {
                done(self.engine.move_to(now, &conn, local), &format!("moving IKE SAs to {local} (MOBIKE)"))
            }
            Request::Move { conn, local, check: true } => {
                let old = self
                    .engine
                    .ike_sas()
                    .find(|s| self.engine.connections()[s.conn()].name == conn)
                    .map(|s| s.local().ip());
                done(
                    self.engine.change_addresses(
                        now,
                        &conn,
                        &AddressChange { old, check: true, ..AddressChange::new(ActionKind::Update, local) },
                    ),
                    &format!("asking whether the peer would take {local} (MOBIKE-X CHECK; see the log)"),
                )
            }
            Request::Address { conn, remove, addr, children, check } => {
                let (kind, what) = if remove { (ActionKind::Remove, "removing") } else { (ActionKind::Add, "adding") };
                let what = if check { format!("checking {what} {addr}") } else { format!("{what} {addr}") };
                done(
                    self.engine.change_addresses(
                        now,
                        &conn,
                        &AddressChange { children, check, ..AddressChange::new(kind, addr) },
                    ),
                    &format!("{what} on child SAs (MOBIKE-X; see the log)"),
                )
            }
            Request::Config => Response::Config { text: self.config_text.clone() },
            Request::Reload => self.reload(now),
            Request::Dataplane => Response::Error { message: "answered by the dataplane".into() },
            Request::Stats => Response::Stats {
                ike: Box::new(self.engine.stats.clone()),
                half_open: self.engine.half_open(),
                dataplane_generation: self.dp.as_ref().and_then(|l| l.generation),
                dataplane_drops: self.drops.iter().map(|(k, v)| (k.clone(), *v)).collect(),
                dataplane_commands_dropped: self.dp.as_ref().map_or(0, |l| l.dropped),
                stubs_held: self.engine.stubs_held(),
                stub_bank: self.bank_health(),
            },
        }
    }

    /// Carries out what the engine asked for.
    fn flush(&mut self) {
        while let Some(o) = self.engine.poll_output() {
            match o {
                Output::Send { local, remote, data } => {
                    if self.dataplane_transport {
                        if let Some(l) = self.dp.as_mut() {
                            l.send(&Command::SendDatagram { src: local, dst: remote, payload: data });
                        }
                    } else if let Some(k) = &self.kernel {
                        if let Err(e) = k.send(local, remote, &data) {
                            self.log(&e);
                        }
                    }
                }
                Output::Dataplane(c) => {
                    if let Some(l) = self.dp.as_mut() {
                        l.send(&c);
                    }
                }
                Output::Event(e) => self.log(&e.to_string()),
                // To the peer gateways and the bank ([stubs]); without any, nowhere.
                Output::Stub(op) => {
                    self.log(&match &op {
                        StubOp::Update(s) => format!("stubs: made the stub of {}", s.index),
                        StubOp::Withdraw(i) => format!("stubs: withdrew the stub of {i}"),
                        StubOp::Used(i) => format!("stubs: used the stub of {i}"),
                        StubOp::Fetch(i) => format!("stubs: asking the bank for the stub of {i}"),
                    });
                    if let Some(s) = self.stubsync.as_mut() {
                        s.send(&op);
                    }
                }
            }
        }
    }
}
