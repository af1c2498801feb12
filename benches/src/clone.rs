//! `gw-bench clone`: what it costs to bring up N VPNs over N interfaces of
//! a CPE, one IKE SA per interface, two ways, in the same run with
//! in-memory engines (a CPE initiator and a hub responder, real crypto,
//! the system's random generator):
//!
//! - full: N connections, one per interface, each its own IKE_SA_INIT and
//!   IKE_AUTH (N Diffie-Hellman exchanges and N authentications);
//! - clone (RFC 7791 Appendix B.1-B.4): one IKE_SA_INIT and IKE_AUTH on
//!   the first interface, then per other interface a clone
//!   (CREATE_CHILD_SA with N(CLONE_IKE_SA): one Diffie-Hellman, no
//!   authentication), its move there (MOBIKE) and its VPN
//!   (CREATE_CHILD_SA);
//! - clone, reduced (Appendix B.5): the same with the first clone inside
//!   IKE_AUTH and each clone's move inside its VPN's CREATE_CHILD_SA.
//!
//! Timed: each side's CPU in the engine (every datagram handled and
//! answered) from the first initiate to the N-th child SA up. Counted: the
//! messages, their octets, and the one-way trips on the critical path,
//! which with a round-trip time `rtt` give the time to the last VPN as
//! trips x rtt / 2 + CPU. Authentication here is a pre-shared key, the
//! cheapest there is: with EAP or certificate signatures (planned, issue
//! 17) each full IKE SA costs more and the clone's saving grows.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use controlplane::crypto::SystemRandom;
use controlplane::ike::config::{ConnectionToml, Settings};
use controlplane::ike::engine::IkeState;
use controlplane::ike::{Engine, Output};

#[derive(Debug, clap::Args)]
pub struct CloneArgs {
    /// Numbers of VPNs (= interfaces) to measure.
    #[arg(long, value_delimiter = ',', default_value = "2,4,8")]
    pub vpns: Vec<usize>,
    /// Runs of each (the median is reported).
    #[arg(long, default_value_t = 9)]
    pub runs: usize,
    /// IKE proposal of both sides (its Diffie-Hellman group is most of
    /// the cost).
    #[arg(long, default_value = "aes128gcm16-prfsha256-x25519")]
    pub ike: String,
    /// Round-trip time for the time-to-last-VPN column, milliseconds.
    #[arg(long, default_value_t = 20.0)]
    pub rtt_ms: f64,
    /// Write the report as Markdown here too.
    #[arg(long)]
    pub markdown: Option<PathBuf>,
}

const HUB: Ipv4Addr = Ipv4Addr::new(10, 80, 0, 1);
const PSK: &str = "bench-clone-psk-0123";

/// Interface `k` of the CPE.
fn iface(k: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, 81, k as u8, 1)
}

#[derive(Clone, Copy, PartialEq)]
enum Way {
    Full,
    Clone,
    Reduced,
}

impl Way {
    fn name(self) -> &'static str {
        match self {
            Way::Full => "full IKE SAs",
            Way::Clone => "clone (B.1-B.4)",
            Way::Reduced => "clone, reduced (B.5)",
        }
    }
}

#[derive(Default, Clone)]
struct Run {
    cpe: Duration,
    hub: Duration,
    messages: usize,
    octets: usize,
    trips: usize,
}

fn build(text: &str) -> Result<controlplane::ike::config::Connection, String> {
    toml::from_str::<ConnectionToml>(text).map_err(|e| e.to_string())?.build()
}

/// The CPE's and the hub's engines for `n` VPNs set up `way`.
fn engines(n: usize, way: Way, ike: &str) -> Result<(Engine, Engine), String> {
    let common = format!(
        "remote_id = \"hub.lab\"\nlocal_id = \"cpe.lab\"\npsk = \"{PSK}\"\nike_proposals = [\"{ike}\"]\n\
         dpd_secs = 0\nike_rekey_secs = 86400\nchild_rekey_secs = 86400\n"
    );
    let vpn = |k: usize| format!("local_ts = [\"10.91.{k}.0/24\"]\nremote_ts = [\"10.92.{k}.0/24\"]\n");
    let mut conns = Vec::new();
    match way {
        Way::Full => {
            for k in 0..n {
                conns.push(build(&format!(
                    "name = \"hq{k}\"\nrole = \"initiator\"\nlocal = \"{}\"\nremote = \"{HUB}\"\n{common}{}",
                    iface(k),
                    vpn(k)
                ))?);
            }
        }
        Way::Clone | Way::Reduced => {
            let others: Vec<String> = (1..n).map(|k| format!("\"{}\"", iface(k))).collect();
            let mut text = format!(
                "name = \"hq\"\nrole = \"initiator\"\nlocal = \"{}\"\nremote = \"{HUB}\"\n{common}{}interfaces = [{}]\n",
                iface(0),
                vpn(0),
                others.join(", ")
            );
            if way == Way::Clone {
                text += "clone_reduced = false\n";
            }
            for k in 1..n {
                text += &format!("[[child]]\nname = \"vpn{k}\"\n{}interface = \"{}\"\n", vpn(k), iface(k));
            }
            conns.push(build(&text)?);
        }
    }
    let hub_conn = build(&format!(
        "name = \"cpe\"\nrole = \"responder\"\nlocal = \"{HUB}\"\nremote = \"%any\"\nlocal_id = \"hub.lab\"\n\
         remote_id = \"cpe.lab\"\npsk = \"{PSK}\"\nike_proposals = [\"{ike}\"]\nlocal_ts = [\"10.92.0.0/16\"]\n\
         remote_ts = [\"10.91.0.0/16\"]\ndpd_secs = 0\nike_rekey_secs = 86400\nchild_rekey_secs = 86400\n"
    ))?;
    let quiet = Settings { cookie_threshold: usize::MAX, ..Settings::default() };
    let cpe = Engine::new(conns, quiet.clone(), Box::new(SystemRandom::default()));
    let hub = Engine::new(vec![hub_conn], quiet, Box::new(SystemRandom::default()));
    Ok((cpe, hub))
}

/// Handles `ds` in `e` and returns what it sends, timing it into `cpu`.
fn feed(
    e: &mut Engine,
    ds: Vec<(SocketAddr, SocketAddr, Vec<u8>)>,
    now: Instant,
    cpu: &mut Duration,
) -> Vec<(SocketAddr, SocketAddr, Vec<u8>)> {
    let t = Instant::now();
    for (to, from, data) in ds {
        e.handle_datagram(now, to, from, &data);
    }
    let mut out = Vec::new();
    while let Some(o) = e.poll_output() {
        if let Output::Send { local, remote, data } = o {
            out.push((remote, local, data));
        }
    }
    *cpu += t.elapsed();
    out
}

fn children(e: &Engine) -> usize {
    e.ike_sas().filter(|s| s.state() == IkeState::Established).map(|s| s.children().len()).sum()
}

fn one(n: usize, way: Way, ike: &str) -> Result<Run, String> {
    let (mut cpe, mut hub) = engines(n, way, ike)?;
    let now = Instant::now();
    let mut r = Run::default();
    let t = Instant::now();
    match way {
        Way::Full => {
            for k in 0..n {
                cpe.initiate(now, &format!("hq{k}")).map_err(|e| e.to_string())?;
            }
        }
        Way::Clone | Way::Reduced => cpe.initiate(now, "hq").map_err(|e| e.to_string())?,
    }
    r.cpe += t.elapsed();
    let mut to_hub = feed(&mut cpe, Vec::new(), now, &mut r.cpe);
    // Each pass is one one-way trip: everything in flight is delivered.
    while !to_hub.is_empty() {
        r.trips += 1;
        r.messages += to_hub.len();
        r.octets += to_hub.iter().map(|d| d.2.len()).sum::<usize>();
        let to_cpe = feed(&mut hub, to_hub, now, &mut r.hub);
        if to_cpe.is_empty() {
            break;
        }
        r.trips += 1;
        r.messages += to_cpe.len();
        r.octets += to_cpe.iter().map(|d| d.2.len()).sum::<usize>();
        to_hub = feed(&mut cpe, to_cpe, now, &mut r.cpe);
        if r.trips > 1000 {
            return Err("message storm".into());
        }
    }
    let ikes = cpe.ike_sas().filter(|s| s.state() == IkeState::Established).count();
    if (children(&cpe), children(&hub), ikes) != (n, n, n) {
        return Err(format!(
            "{n} VPNs: {} child SAs at the CPE, {} at the hub, {ikes} IKE SAs",
            children(&cpe),
            children(&hub)
        ));
    }
    let mut locals: Vec<IpAddr> = cpe.ike_sas().map(|s| s.local().ip()).collect();
    locals.sort();
    locals.dedup();
    if locals.len() != n {
        return Err(format!("{n} VPNs: IKE SAs on {} interfaces", locals.len()));
    }
    Ok(r)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

pub fn run(a: &CloneArgs) -> Result<(), String> {
    if a.runs == 0 || a.vpns.iter().any(|n| *n < 2 || *n > 200) {
        return Err("--runs must be at least 1 and every --vpns value 2..=200".into());
    }
    let cpu = crate::measure::cpu_model();
    let mut md = format!(
        "Clone IKE SA: N VPNs over N interfaces, clone vs N full IKE SAs ({}, PSK, {} runs each, median; {cpu})\n\n\
         | VPNs | way | CPE CPU ms | hub CPU ms | messages | octets | one-way trips | to last VPN at {} ms RTT |\n\
         |---:|---|---:|---:|---:|---:|---:|---:|\n",
        a.ike, a.runs, a.rtt_ms
    );
    for &n in &a.vpns {
        // Interleaved (full, clone, reduced, full, ...) so drift hits all alike.
        let ways = [Way::Full, Way::Clone, Way::Reduced];
        let mut all: Vec<Vec<Run>> = vec![Vec::new(); ways.len()];
        for _ in 0..a.runs {
            for (w, runs) in ways.iter().zip(all.iter_mut()) {
                runs.push(one(n, *w, &a.ike)?);
            }
        }
        let mut rows = Vec::new();
        for (way, runs) in ways.into_iter().zip(all) {
            let ms = |f: fn(&Run) -> Duration| median(runs.iter().map(|r| f(r).as_secs_f64() * 1e3).collect());
            let (c, h) = (ms(|r| r.cpe), ms(|r| r.hub));
            let r0 = &runs[0];
            let last = r0.trips as f64 * a.rtt_ms / 2.0 + c + h;
            rows.push((way, c, h, r0.messages, r0.octets, r0.trips, last));
        }
        for (way, c, h, m, o, t, last) in rows {
            md += &format!("| {n} | {} | {c:.2} | {h:.2} | {m} | {o} | {t} | {last:.0} ms |\n", way.name());
        }
    }
    print!("{md}");
    if let Some(p) = &a.markdown {
        std::fs::write(p, &md).map_err(|e| format!("{}: {e}", p.display()))?;
    }
    Ok(())
}
