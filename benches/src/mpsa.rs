//! `gw-bench mpsa`: how long the hub takes to hand a new group SA to every
//! member (Multi-point SA rekey: one INFORMATIONAL { N(MPSA_PUT) } per
//! member and its empty answer), with in-memory engines: one gateway and N
//! endpoints, each with its IKE SA up and the first group SA installed.
//!
//! Timed: the hub's CPU from the rekey deadline to every member's answer
//! processed (making the SA, sealing N requests, opening N responses), and
//! separately each endpoint's CPU to open a request, derive KEYMAT and
//! answer. Not timed: setting up the N IKE SAs.
//!
//! Then the loss across a group rollover, through the dataplane's own
//! tables and pipeline in memory with simulated time: endpoint A sends to
//! B at a stated rate while a new group SA arrives, at A first and at B
//! `skew` later (how long the hub took to reach both), with Rollover1 and
//! Rollover2 as the hub gives them; every packet goes through A's encrypt
//! and B's decrypt, and B counts what it delivers.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use controlplane::crypto::SystemRandom;
use controlplane::daemon::view;
use controlplane::ike::config::{ConnectionToml, Settings};
use controlplane::ike::{Engine, Output};
use controlplane::mpsa::{GroupToml, MpsaRole};
use cpdp::msg::Command;

#[derive(Debug, clap::Args)]
pub struct MpsaArgs {
    /// Group sizes to measure.
    #[arg(long, value_delimiter = ',', default_value = "1000,10000")]
    pub members: Vec<usize>,
    /// Write the report as Markdown here too.
    #[arg(long)]
    pub markdown: Option<PathBuf>,
}

const HUB: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const PSK: &str = "bench-mpsa-psk-0123";
const LIFETIME: u64 = 3600;

fn endpoint_addr(i: usize) -> Ipv4Addr {
    let n = 0xac10_0000u32 + 1 + i as u32; // 172.16.0.1 and up
    Ipv4Addr::from(n)
}

struct Distribution {
    members: usize,
    setup_secs: f64,
    hub_secs: f64,
    endpoint_us: f64,
    installed: usize,
}

fn one(n: usize) -> Result<Distribution, String> {
    let quiet = Settings { cookie_threshold: usize::MAX, ..Settings::default() };
    let hub_conn = toml::from_str::<ConnectionToml>(&format!(
        "name = \"members\"\nlocal = \"{HUB}\"\nremote = \"%any\"\nlocal_id = \"hub.lab\"\nremote_id = \"%any\"\n\
         psk = \"{PSK}\"\nlocal_ts = [\"10.0.0.0/24\"]\nremote_ts = [\"10.0.0.0/8\"]\ndpd_secs = 0\n\
         ike_rekey_secs = 86400\nchild_rekey_secs = 86400\n"
    ))
    .map_err(|e| e.to_string())?
    .build()?;
    let mut hub = Engine::new(vec![hub_conn], quiet.clone(), Box::new(SystemRandom::default()));
    hub.mpsa_role = MpsaRole::Gateway;
    let members: Vec<String> = (0..n).map(|i| format!("\"ep{i}.lab\"")).collect();
    let g: GroupToml = toml::from_str(&format!(
        "name = \"mesh\"\nmembers = [{}]\nlifetime_secs = {LIFETIME}\nrekey_percent = 80",
        members.join(",")
    ))
    .map_err(|e| e.to_string())?;
    let t0 = Instant::now();
    let mut now = t0;
    hub.add_group(now, g.build()?);
    while hub.poll_output().is_some() {}

    let mut eps: Vec<Engine> = Vec::with_capacity(n);
    let mut by_addr: HashMap<IpAddr, usize> = HashMap::new();
    let setup = Instant::now();
    for i in 0..n {
        let a = endpoint_addr(i);
        let c = toml::from_str::<ConnectionToml>(&format!(
            "name = \"hub\"\nrole = \"initiator\"\nlocal = \"{a}\"\nremote = \"{HUB}\"\nlocal_id = \"ep{i}.lab\"\n\
             remote_id = \"hub.lab\"\npsk = \"{PSK}\"\nlocal_ts = [\"10.{}.{}.0/24\"]\nremote_ts = [\"10.0.0.0/24\"]\n\
             dpd_secs = 0\nike_rekey_secs = 86400\nchild_rekey_secs = 86400\n",
            1 + i / 256,
            i % 256
        ))
        .map_err(|e| e.to_string())?
        .build()?;
        let mut e = Engine::new(vec![c], quiet.clone(), Box::new(SystemRandom::default()));
        e.mpsa_role = MpsaRole::Endpoint;
        e.initiate(now, "hub").map_err(|e| e.to_string())?;
        by_addr.insert(IpAddr::V4(a), i);
        eps.push(e);
        // Run this endpoint's exchanges (IKE_SA_INIT, IKE_AUTH, MPSA_PUT) to the end.
        exchange(&mut hub, &mut eps, &by_addr, now);
    }
    let setup_secs = setup.elapsed().as_secs_f64();
    let first = view::groups(&hub, now)[0].clone();
    if first.delivered != n {
        return Err(format!("setup: the first group SA reached {} of {n} members", first.delivered));
    }
    for e in &mut eps {
        while e.poll_output().is_some() {}
    }

    // The rekey deadline: the hub makes a new SA and sends N requests.
    now += Duration::from_secs(LIFETIME * 80 / 100 + 1);
    let mut hub_time = Duration::ZERO;
    let mut ep_time = Duration::ZERO;
    let t = Instant::now();
    hub.handle_timeout(now);
    let mut to_eps = Vec::with_capacity(n);
    while let Some(o) = hub.poll_output() {
        if let Output::Send { local, remote, data } = o {
            to_eps.push((local, remote, data));
        }
    }
    hub_time += t.elapsed();
    let mut answers = Vec::with_capacity(n);
    for (local, remote, data) in to_eps {
        let i = by_addr[&remote.ip()];
        let t = Instant::now();
        eps[i].handle_datagram(now, remote, local, &data);
        while let Some(o) = eps[i].poll_output() {
            if let Output::Send { local, remote, data } = o {
                answers.push((local, remote, data));
            }
        }
        ep_time += t.elapsed();
    }
    let t = Instant::now();
    for (local, remote, data) in answers {
        hub.handle_datagram(now, remote, local, &data);
    }
    while hub.poll_output().is_some() {}
    hub_time += t.elapsed();

    let info = view::groups(&hub, now)[0].clone();
    if info.spi == first.spi || info.delivered != n {
        return Err(format!("rekey: new SA {} reached {} of {n} members", info.spi, info.delivered));
    }
    let installed =
        eps.iter().filter(|e| view::groups(e, now).first().is_some_and(|g| g.spi == info.spi && g.rekeys == 2)).count();
    Ok(Distribution {
        members: n,
        setup_secs,
        hub_secs: hub_time.as_secs_f64(),
        endpoint_us: ep_time.as_secs_f64() * 1e6 / n as f64,
        installed,
    })
}

/// Delivers datagrams between the hub and the endpoints until none is left.
fn exchange(hub: &mut Engine, eps: &mut [Engine], by_addr: &HashMap<IpAddr, usize>, now: Instant) {
    let mut wire: std::collections::VecDeque<(SocketAddr, SocketAddr, Vec<u8>)> = Default::default();
    let pull = |e: &mut Engine, wire: &mut std::collections::VecDeque<(SocketAddr, SocketAddr, Vec<u8>)>| {
        while let Some(o) = e.poll_output() {
            if let Output::Send { local, remote, data } = o {
                wire.push_back((remote, local, data));
            }
        }
    };
    let last = eps.len() - 1;
    pull(&mut eps[last], &mut wire);
    let mut guard = 0;
    while let Some((to, from, data)) = wire.pop_front() {
        guard += 1;
        assert!(guard < 100, "message storm");
        if to.ip() == IpAddr::V4(HUB) {
            hub.handle_datagram(now, to, from, &data);
            pull(hub, &mut wire);
        } else {
            let i = by_addr[&to.ip()];
            eps[i].handle_datagram(now, to, from, &data);
            pull(&mut eps[i], &mut wire);
        }
    }
}

/// One direction of group traffic, A -> B, across a rekey: (sent, delivered).
fn rollover_loss(rate_pps: u64, skew: Duration, roll1: u32, roll2: u32) -> Result<(u64, u64), String> {
    use dataplane::buf::VecBuf;
    use dataplane::pipeline::{Verdict, Worker};
    use dataplane::state::TableState;
    use dataplane::tables::{PortInfo, Route, Tables};
    use std::sync::Arc;

    // The traffic generator's flows: 192.168.1.0/24 (A's LAN) to
    // 192.168.105.0/24 (B's LAN).
    let endpoint = |me: u8| -> Result<TableState, String> {
        let mac = |port: u8| [2, 0, 0, 0, me, port];
        let mut t = Tables::new(vec![PortInfo { mac: mac(0), mtu: 1500 }, PortInfo { mac: mac(1), mtu: 1500 }]);
        t.add_local(IpAddr::V4(Ipv4Addr::new(192, 0, 2, me)));
        t.add_route("192.0.2.0/24".parse()?, Route { port: 1, via: None });
        let lan = if me == 11 { "192.168.1.0/24" } else { "192.168.105.0/24" };
        t.add_route(lan.parse()?, Route { port: 0, via: None });
        for peer in [11u8, 12] {
            t.neighbors.insert(IpAddr::V4(Ipv4Addr::new(192, 0, 2, peer)), [2, 0, 0, 0, peer, 1]);
        }
        for h in 1..=16u8 {
            t.neighbors.insert(IpAddr::V4(Ipv4Addr::new(192, 168, 1, h)), [2, 0, 0, 1, 1, h]);
            t.neighbors.insert(IpAddr::V4(Ipv4Addr::new(192, 168, 105, h)), [2, 0, 0, 1, 105, h]);
        }
        Ok(TableState::new(t))
    };
    // What an endpoint's control plane tells its dataplane for a group SA
    // (keys from KEYMAT = prf+(SK_d, Nonce), as the hub would hand them).
    let install = |spi: u32, seed: u8, me: u8| -> Command {
        let put = controlplane::mpsa::MpsaPut {
            spi,
            encr: controlplane::crypto::sk::Encr::AesGcm16(128),
            prf: controlplane::crypto::Prf::HmacSha256,
            integ: None,
            nonce: vec![seed; 32],
            sk_d: controlplane::crypto::Secret::new(vec![seed.wrapping_add(1); 32]),
            lifetime: 3600,
            rollover1: roll1,
            rollover2: roll2,
        };
        let wp = |a: [u8; 4], len: u8| cpdp::msg::WirePrefix { addr: IpAddr::V4(Ipv4Addr::from(a)), len };
        Command::InstallGroupSa {
            group: "mesh".into(),
            sa: put.group_sa_spec(IpAddr::V4(Ipv4Addr::new(192, 0, 2, me))),
            members: vec![
                (wp([192, 168, 1, 0], 24), IpAddr::V4(Ipv4Addr::new(192, 0, 2, 11))),
                (wp([192, 168, 105, 0], 24), IpAddr::V4(Ipv4Addr::new(192, 0, 2, 12))),
            ],
            rollover1_secs: roll1,
            rollover2_secs: roll2,
        }
    };
    let (mut sa, mut sb) = (endpoint(11)?, endpoint(12)?);
    let t0 = Instant::now();
    sa.apply_at(&install(0x1001, 1, 11), t0)?;
    sb.apply_at(&install(0x1001, 1, 12), t0)?;
    let mut wa = Worker::new(Arc::new(sa.build()));
    let mut wb = Worker::new(Arc::new(sb.build()));
    // The rekey reaches A at 2 s and B `skew` later; run until the old SA is
    // gone everywhere, plus a second.
    let rekey_a = t0 + Duration::from_secs(2);
    let rekey_b = rekey_a + skew;
    let end = rekey_b + Duration::from_secs(roll2 as u64 + 1);
    let (mut done_a, mut done_b) = (false, false);
    let frames: Vec<Vec<u8>> = (0..256).map(|i| crate::traffic::udp_frame(i, 100)).collect();
    let (mut sent, mut delivered) = (0u64, 0u64);
    let step = Duration::from_nanos(1_000_000_000 / rate_pps);
    let mut now = t0;
    while now < end {
        if !done_a && now >= rekey_a {
            sa.apply_at(&install(0x1002, 2, 11), now)?;
            wa.set_tables(Arc::new(sa.build()));
            done_a = true;
        }
        if !done_b && now >= rekey_b {
            sb.apply_at(&install(0x1002, 2, 12), now)?;
            wb.set_tables(Arc::new(sb.build()));
            done_b = true;
        }
        if sa.tick(now) {
            wa.set_tables(Arc::new(sa.build()));
        }
        if sb.tick(now) {
            wb.set_tables(Arc::new(sb.build()));
        }
        let mut b = VecBuf::new(&frames[(sent % 256) as usize]);
        sent += 1;
        if wa.process(&mut b) == Verdict::Tx(1) && wb.process(&mut b) == Verdict::Tx(0) {
            delivered += 1;
        }
        now += step;
    }
    Ok((sent, delivered))
}

pub fn run(a: &MpsaArgs) -> Result<(), String> {
    core_affinity::set_for_current(core_affinity::CoreId { id: 1 });
    let mut rows = Vec::new();
    for &n in &a.members {
        println!("mpsa: {n} endpoints: setting up their IKE SAs in memory ...");
        let r = one(n)?;
        println!(
            "mpsa: {n} endpoints: hub {:.3} s CPU to hand out a new group SA, endpoint {:.1} us each",
            r.hub_secs, r.endpoint_us
        );
        rows.push(r);
    }
    let mut t = String::from(
        "| group members | hub CPU to distribute a new group SA | per member | endpoint CPU per MPSA_PUT | installed by | IKE SA setup (not timed above) |\n|---:|---:|---:|---:|---:|---:|\n",
    );
    for r in &rows {
        t.push_str(&format!(
            "| {} | {:.1} ms | {:.1} us | {:.1} us | {} of {} | {:.1} s |\n",
            r.members,
            r.hub_secs * 1e3,
            r.hub_secs * 1e6 / r.members as f64,
            r.endpoint_us,
            r.installed,
            r.members,
            r.setup_secs
        ));
    }
    println!("\n{t}");
    let mut r = String::from(
        "| rate (simulated) | Rollover1 / Rollover2 | new SA reaches B after A by | sent | delivered | lost |\n|---:|---:|---:|---:|---:|---:|\n",
    );
    for skew_ms in [0u64, 100, 900, 1500] {
        let (sent, got) = rollover_loss(10_000, Duration::from_millis(skew_ms), 1, 5)?;
        r.push_str(&format!("| 10,000 pps | 1 s / 5 s | {skew_ms} ms | {sent} | {got} | {} |\n", sent - got));
    }
    println!("{r}");
    if let Some(p) = &a.markdown {
        let md = format!(
            "# MPSA group SA distribution\n\nMeasured {} with `gw-bench mpsa --members {}`: one gateway engine and N \
             endpoint engines in memory on CPU 1, each endpoint with its IKE SA (aes128gcm16-prfsha256-x25519) and \
             the first group SA. At the rekey deadline the hub makes a new group SA (aes128gcm16, prfsha256) and \
             sends every member INFORMATIONAL {{ N(MPSA_PUT) }}; timed: the hub from the deadline to the last \
             answer processed, and each endpoint opening its request, deriving KEYMAT and answering.\n\n{t}\n\
             ## Loss across a group rollover\n\nThe dataplane's own tables and pipeline in memory, simulated time: \
             endpoint A sends to B at 10,000 packets a second while a new group SA arrives at A (at 2 s) and at B \
             the stated time later; every packet is encrypted by A and decrypted by B. With Rollover1 longer than \
             that spread nothing is lost; the last row shows what a spread beyond Rollover1 costs.\n\n{r}",
            crate::ike::date(),
            a.members.iter().map(|m| m.to_string()).collect::<Vec<_>>().join(",")
        );
        std::fs::write(p, md).map_err(|e| format!("{}: {e}", p.display()))?;
    }
    Ok(())
}
