//! gwctl: the operator's CLI for gw-controlplane (over its root-only Unix
//! socket). Human tables by default, `--json` for scripts (before or after
//! the subcommand). Exit codes: 0 done, 1 the daemon refused or could not
//! be reached (the reason on stderr), 2 a command line clap refused.

use std::path::PathBuf;

use clap::{CommandFactory, Parser, Subcommand};
use controlplane::daemon::admin::{call, Request, Response};

/// Lines to stdout. A reader that has gone (`gwctl list | grep -q ...`)
/// ends gwctl quietly with success, as it ends any Unix tool, instead of
/// a panic on the broken pipe (which made scripts under pipefail fail).
macro_rules! println {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        if let Err(e) = writeln!(std::io::stdout(), $($t)*) {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                std::process::exit(0);
            }
            eprintln!("gwctl: writing the answer: {e}");
            std::process::exit(1);
        }
    }};
}

#[derive(Parser, Debug)]
#[command(name = "gwctl", about = "Operate the gateway's control plane")]
struct Args {
    /// The daemon's admin socket (daemon.admin_socket in its config).
    #[arg(long, short, global = true, default_value = "/run/gw/controlplane.sock")]
    socket: PathBuf,
    /// Print the daemon's answer as JSON.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum AddressOp {
    /// ADD_SA_ADDRESS: traffic may use this address too.
    Add {
        conn: String,
        addr: std::net::IpAddr,
        #[arg(long = "child")]
        children: Vec<String>,
        /// Only ask whether the peer would accept it.
        #[arg(long)]
        check: bool,
    },
    /// REMOVE_SA_ADDRESS: traffic stops using this address.
    Remove {
        conn: String,
        addr: std::net::IpAddr,
        #[arg(long = "child")]
        children: Vec<String>,
        #[arg(long)]
        check: bool,
    },
}

#[derive(Subcommand, Debug)]
enum GroupOp {
    /// Expel a member (by identity): the group rekeys at once without it,
    /// so it decrypts nothing sent after the rollover; its IKE SA stays
    /// up. Lasts until the config is reloaded: take it out of the file too.
    Remove { group: String, member: String },
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// IKE SAs and their child SAs, with dataplane counters.
    #[command(alias = "list-sas")]
    List,
    /// The certificates, CAs and CRLs the connections loaded, with expiry.
    Certs,
    /// Start an IKE SA (with its child SAs) for a connection; with
    /// --child, open that child SA on its IKE SA (CREATE_CHILD_SA).
    Initiate {
        conn: String,
        #[arg(long)]
        child: Option<String>,
    },
    /// Delete a connection's IKE SAs (and their child SAs); an initiator
    /// connection then stays down until `initiate`.
    Terminate { conn: String },
    /// Rekey a connection's child SAs, or with --ike its IKE SAs.
    Rekey {
        conn: String,
        #[arg(long)]
        ike: bool,
    },
    /// Move a connection's IKE SAs and child SAs to another address of
    /// ours (MOBIKE UPDATE_SA_ADDRESSES; we must be the IKE SA initiator).
    Move {
        conn: String,
        #[arg(long)]
        local: std::net::IpAddr,
        /// MOBIKE-X: only ask whether the peer would accept the move.
        #[arg(long)]
        check: bool,
    },
    /// Clone IKE SA (RFC 7791): another IKE SA with the same peer, without
    /// authenticating again; with --local, moved there (MOBIKE).
    Clone {
        conn: String,
        #[arg(long)]
        local: Option<std::net::IpAddr>,
    },
    /// IKE SA synchronization: rebuild a connection's IKE SAs on its first
    /// standby gateway (`standby = [...]`) from the gateway's stub, by
    /// IKE_SA_SYN (the full exchange if the standby holds no stub).
    Failover { conn: String },
    /// Gateway: redirect a connection's clients (RFC 5685) to another
    /// gateway of the cluster (those with identity --peer, or all); they
    /// arrive there by IKE_SA_SYN.
    Redirect {
        conn: String,
        #[arg(long)]
        to: std::net::IpAddr,
        #[arg(long)]
        peer: Option<String>,
    },
    /// MOBIKE-X multihoming: add another address of ours to a connection's
    /// child SAs (all, or those named with --child), or remove one.
    Address {
        #[command(subcommand)]
        op: AddressOp,
    },
    /// MPSA gateway: change a group's membership.
    Group {
        #[command(subcommand)]
        op: GroupOp,
    },
    /// The configuration in use (PSKs redacted).
    Config,
    /// Re-read the daemon's config file: added, removed and changed
    /// connections and group members take effect, everything else keeps
    /// its SAs; a file with errors changes nothing.
    Reload,
    /// Message counters and drops.
    Stats,
    /// The dataplane's policies (destination prefix -> protect with SA,
    /// bypass, discard).
    Policies,
    /// The dataplane's routes (config and control plane).
    Routes,
    /// The dataplane's neighbours (IP -> MAC).
    #[command(alias = "neighbours")]
    Neighbors,
    /// The dataplane's ports: link, packets, bytes, errors (the NIC's).
    Ports,
    /// The SAs installed in the dataplane, its group SAs and run-time
    /// addresses.
    DataplaneSas,
    /// The dataplane's drops by reason (since this control plane started).
    Drops,
    /// A completion script for SHELL on stdout (bash, zsh, fish, elvish,
    /// powershell), e.g. `gwctl completions bash > /etc/bash_completion.d/gwctl`.
    Completions { shell: clap_complete::Shell },
    /// `list` (or `stats`) again every --interval seconds, the screen
    /// cleared each time (on a terminal), until Ctrl-C (or --count
    /// refreshes).
    Watch {
        #[arg(value_enum, default_value = "list")]
        what: WatchWhat,
        /// Seconds between refreshes (0.1 .. 3600).
        #[arg(long, short = 'n', default_value = "1", value_parser = interval)]
        interval: f64,
        /// Stop after this many refreshes.
        #[arg(long)]
        count: Option<u64>,
    },
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum WatchWhat {
    List,
    Stats,
}

fn interval(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if (0.1..=3600.0).contains(&v) => Ok(v),
        _ => Err(format!("{s:?} is not a number of seconds from 0.1 to 3600")),
    }
}

fn main() {
    let a = Args::parse();
    let req = match a.cmd {
        Cmd::Completions { shell } => {
            let mut out = Vec::new();
            clap_complete::generate(shell, &mut Args::command(), "gwctl", &mut out);
            println!("{}", String::from_utf8_lossy(&out).trim_end());
            return;
        }
        Cmd::List => Request::ListSas,
        Cmd::Certs => Request::Certs,
        Cmd::Initiate { conn, child } => Request::Initiate { conn, child },
        Cmd::Terminate { conn } => Request::Terminate { conn },
        Cmd::Rekey { conn, ike } => Request::Rekey { conn, ike },
        Cmd::Move { conn, local, check } => Request::Move { conn, local, check },
        Cmd::Clone { conn, local } => Request::Clone { conn, local },
        Cmd::Failover { conn } => Request::Failover { conn },
        Cmd::Redirect { conn, to, peer } => Request::Redirect { conn, to, peer },
        Cmd::Address { op: AddressOp::Add { conn, addr, children, check } } => {
            Request::Address { conn, remove: false, addr, children, check }
        }
        Cmd::Address { op: AddressOp::Remove { conn, addr, children, check } } => {
            Request::Address { conn, remove: true, addr, children, check }
        }
        Cmd::Group { op: GroupOp::Remove { group, member } } => Request::GroupRemove { group, member },
        Cmd::Config => Request::Config,
        Cmd::Reload => Request::Reload,
        Cmd::Stats => Request::Stats,
        Cmd::Drops => {
            let resp = ask(&a.socket, &Request::Stats);
            match resp {
                Response::Stats { dataplane_drops, .. } if !a.json => {
                    if dataplane_drops.is_empty() {
                        println!("no drops");
                    }
                    for (r, n) in dataplane_drops {
                        println!("{r:<24} {n:>12}");
                    }
                    return;
                }
                other => {
                    if !show(other, a.json) {
                        std::process::exit(1);
                    }
                    return;
                }
            }
        }
        w @ (Cmd::Policies | Cmd::Routes | Cmd::Neighbors | Cmd::Ports | Cmd::DataplaneSas) => {
            let resp = ask(&a.socket, &Request::Dataplane);
            let t = match resp {
                Response::Dataplane { tables } if !a.json => tables,
                other => {
                    if !show(other, a.json) {
                        std::process::exit(1);
                    }
                    return;
                }
            };
            dataplane_table(&w, &t);
            return;
        }
        Cmd::Watch { what, interval, count } => {
            let req = if what == WatchWhat::Stats { Request::Stats } else { Request::ListSas };
            let mut n = 0u64;
            loop {
                let resp = ask(&a.socket, &req);
                // On a terminal: home, clear the screen, then the answer
                // under a clock line (into a pipe or file, one after another).
                if std::io::IsTerminal::is_terminal(&std::io::stdout()) {
                    let _ = std::io::Write::write_all(&mut std::io::stdout(), b"\x1b[H\x1b[2J");
                }
                let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
                println!(
                    "gwctl watch {}: every {interval} s, {} s since the epoch (Ctrl-C ends)\n",
                    if what == WatchWhat::Stats { "stats" } else { "list" },
                    t.as_secs()
                );
                if !show(resp, a.json) {
                    std::process::exit(1);
                }
                n += 1;
                if count.is_some_and(|c| n >= c) {
                    return;
                }
                std::thread::sleep(std::time::Duration::from_secs_f64(interval));
            }
        }
    };
    if !show(ask(&a.socket, &req), a.json) {
        std::process::exit(1);
    }
}

/// One of the dataplane's tables, as a human reads it.
fn dataplane_table(what: &Cmd, t: &controlplane::daemon::view::DataplaneTables) {
    use controlplane::daemon::view::{mac_text, prefix_text};
    match what {
        Cmd::Policies => {
            if t.policies.is_empty() {
                println!("no policies");
            }
            for (p, a) in &t.policies {
                let a = match a {
                    cpdp::msg::PolicyAction::Protect(h) => format!("protect with SA {h:08x}"),
                    cpdp::msg::PolicyAction::Bypass => "bypass".into(),
                    cpdp::msg::PolicyAction::Discard => "discard".into(),
                };
                println!("{:<44} {a}", prefix_text(p));
            }
        }
        Cmd::Routes => {
            if t.routes.is_empty() {
                println!("no routes");
            }
            for (p, port, via) in &t.routes {
                let name = t.ports.iter().find(|x| x.port == *port).map_or(String::new(), |x| format!(" ({})", x.name));
                let via = via.map_or("on link".to_string(), |v| format!("via {v}"));
                println!("{:<44} port {port}{name} {via}", prefix_text(p));
            }
        }
        Cmd::Neighbors => {
            if t.neighbors.is_empty() {
                println!("no neighbours");
            }
            for (ip, mac) in &t.neighbors {
                println!("{:<40} {}", ip, mac_text(mac));
            }
        }
        Cmd::Ports => {
            if t.ports.is_empty() {
                println!("no port counters yet (the dataplane sends them each second)");
            }
            for p in &t.ports {
                println!(
                    "port {} {}: link {}\n  rx {:>12} packets {:>14} bytes, missed {}, errors {}, no mbuf {}\n  tx {:>12} packets {:>14} bytes, errors {}",
                    p.port,
                    p.name,
                    if p.up { "up" } else { "down" },
                    p.rx_packets,
                    p.rx_bytes,
                    p.rx_missed,
                    p.rx_errors,
                    p.rx_nombuf,
                    p.tx_packets,
                    p.tx_bytes,
                    p.tx_errors
                );
            }
            for (port, a) in &t.addresses {
                println!("port {port}: address {} added at run time", prefix_text(a));
            }
        }
        _ => {
            if t.sas.is_empty() {
                println!("no SAs installed");
            }
            for (spi, dir, alg, l, r) in &t.sas {
                println!("SA {spi:08x} {dir:?} {alg} {l} -> {r}");
            }
            for (name, out, ins) in &t.groups {
                let ins: Vec<String> = ins.iter().map(|s| format!("{s:08x}")).collect();
                let out = out.map_or("-".into(), |s| format!("{s:08x}"));
                println!("group {name}: sends with {out}, accepts {}", ins.join(", "));
            }
        }
    }
}

/// The daemon's answer to `req`; exits 1 when it cannot be reached.
fn ask(socket: &std::path::Path, req: &Request) -> Response {
    match call(socket, req) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("gwctl: {e}");
            std::process::exit(1);
        }
    }
}

/// Prints `resp` (as JSON with `json`); false when it is an error.
fn show(resp: Response, json: bool) -> bool {
    if json {
        println!("{}", serde_json::to_string_pretty(&resp).expect("responses serialize"));
        return !matches!(resp, Response::Error { .. });
    }
    match resp {
        Response::Error { message } => {
            eprintln!("gwctl: {message}");
            return false;
        }
        Response::Done { message } => println!("{message}"),
        Response::Dataplane { tables } => {
            for w in [Cmd::DataplaneSas, Cmd::Policies, Cmd::Routes, Cmd::Neighbors, Cmd::Ports] {
                dataplane_table(&w, &tables);
            }
        }
        Response::Config { text } => println!("{text}"),
        Response::Certs { certs } => {
            if certs.is_empty() {
                println!("no certificates (every connection uses a PSK)");
            }
            let now =
                std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
            for c in certs {
                let expiry = match c.not_after {
                    Some(t) if t <= now => "EXPIRED".to_string(),
                    Some(t) => format!("expires in {} days", (t - now) / 86400),
                    None => "-".to_string(),
                };
                println!("{:<12} {:<5} {:<40} {:<20} {}", c.conn, c.kind, c.subject, expiry, c.path);
            }
        }
        Response::Stats {
            ike,
            half_open,
            dataplane_generation,
            dataplane_drops,
            dataplane_commands_dropped,
            stubs_held,
            stub_bank,
        } => {
            let v = serde_json::to_value(&ike).expect("serializes");
            if let Some(m) = v.as_object() {
                for (k, v) in m {
                    println!("{k:<22} {v}");
                }
            }
            println!("{:<22} {half_open}", "half_open");
            println!("{:<22} {stubs_held}", "stubs_held");
            if let Some(b) = stub_bank {
                let at = b.endpoint.map_or("-".into(), |e| e.to_string());
                let up = if b.reachable { "reachable" } else { "unreachable" };
                println!("{:<22} {at} {up} latency_us={}", "stub_bank", b.latency_us);
                println!("{:<22} fetched={} missed={} failed={}", "stub_bank_lookups", b.fetched, b.missed, b.failed);
            }
            println!("{:<22} {}", "dataplane_generation", dataplane_generation.map_or("-".into(), |g| g.to_string()));
            println!("{:<22} {dataplane_commands_dropped}", "dataplane_commands_dropped");
            for (r, n) in dataplane_drops {
                println!("dataplane drop {r:<14} {n}");
            }
        }
        Response::Sas { sas, groups } => {
            if sas.is_empty() {
                println!("no IKE SAs");
            }
            for s in sas {
                let role = if s.initiator { "initiator" } else { "responder" };
                println!(
                    "{}: {:?} {role}, {}_i {}_r, {} <-> {} [{}]{}{}",
                    s.conn,
                    s.state,
                    s.spi_i,
                    s.spi_r,
                    s.local,
                    s.remote,
                    s.peer_id,
                    if s.nat { " NAT-T" } else { "" },
                    if s.mpsa { " MPSA" } else { "" },
                );
                println!(
                    "  {}, up {}s, rekey in {}{}",
                    s.suite,
                    s.established_secs.unwrap_or(0),
                    s.rekey_in_secs.map_or("-".into(), |r| format!("{r}s")),
                    s.virtual_ip.map(|v| format!(", virtual IP {v}")).unwrap_or_default()
                );
                // Shown only where a certificate is involved: a PSK-only
                // listing keeps its shape.
                if s.auth.0 == "pubkey" || s.auth.1 == "pubkey" {
                    println!(
                        "  auth: ours {}, peer's {}{}",
                        s.auth.0,
                        s.auth.1,
                        s.peer_cert.as_ref().map(|c| format!(" (certificate {c})")).unwrap_or_default()
                    );
                }
                if let Some(m) = &s.mobike {
                    let others: Vec<String> = m
                        .peer_addresses
                        .iter()
                        .map(|a| match m.alternates.iter().find(|x| x.addr == *a) {
                            Some(x) => format!(
                                "{a} (preference {}, {}, {})",
                                x.preference,
                                x.class,
                                if x.lifetime_secs == 0 {
                                    "no expiry".into()
                                } else {
                                    format!("valid {}s", x.lifetime_secs)
                                }
                            ),
                            None => a.to_string(),
                        })
                        .collect();
                    println!(
                        "  {}, path {} <-> {}, peer's other addresses: {}, moves {}",
                        m.version.name(),
                        s.local,
                        s.remote,
                        if others.is_empty() { "none".to_string() } else { others.join(", ") },
                        m.moves
                    );
                }
                match &s.clone_of {
                    Some((i, r)) => println!("  clone of IKE SA {i}_i {r}_r (Clone IKE SA)"),
                    None if s.clone => println!("  Clone IKE SA: supported by both"),
                    None => {}
                }
                for c in s.children {
                    println!(
                        "  child {}_i {}_o {:?} {}{}{}, age {}s, rekey in {}{}",
                        c.spi_in,
                        c.spi_out,
                        c.state,
                        if c.transport { "transport " } else { "" },
                        c.alg,
                        c.pfs.map(|g| format!(" PFS group {g}")).unwrap_or_default(),
                        c.age_secs,
                        c.rekey_in_secs.map_or("-".into(), |r| format!("{r}s")),
                        if c.name.is_empty() || c.name == s.conn { String::new() } else { format!(" [{}]", c.name) },
                    );
                    println!("    {} === {}", c.ts_local.join(","), c.ts_remote.join(","));
                    if !c.paths.is_empty() {
                        println!("    paths (preferred first): {}", c.paths.join(", "));
                    }
                    if !c.alternates.is_empty() {
                        let alts: Vec<String> = c.alternates.iter().map(|a| a.to_string()).collect();
                        println!("    peer's alternate addresses: {}", alts.join(", "));
                    }
                    println!(
                        "    in  {:>10} packets {:>12} bytes\n    out {:>10} packets {:>12} bytes",
                        c.packets_in, c.bytes_in, c.packets_out, c.bytes_out
                    );
                }
            }
            for g in groups {
                if g.role == "gateway" {
                    println!(
                        "group {}: gateway, SA {} {}, members {} up of {}, delivered to {}, rekey in {}s, expires in {}s, rekeys {}",
                        g.name,
                        g.spi,
                        g.alg,
                        g.members_up,
                        g.members,
                        g.delivered,
                        g.rekey_in_secs.unwrap_or(0),
                        g.expires_in_secs,
                        g.rekeys
                    );
                } else {
                    println!(
                        "group {}: endpoint, SA {} {}, expires in {}s, group SAs received {}",
                        g.name, g.spi, g.alg, g.expires_in_secs, g.rekeys
                    );
                    if !g.learned.is_empty() {
                        println!("  learned by BGP: {}", g.learned.join(", "));
                    }
                }
            }
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_and_socket_go_before_or_after_the_subcommand() {
        let a = Args::try_parse_from(["gwctl", "list", "--json", "-s", "/tmp/x.sock"]).unwrap();
        assert!(a.json && a.socket == std::path::Path::new("/tmp/x.sock"));
        let a = Args::try_parse_from(["gwctl", "--json", "stats"]).unwrap();
        assert!(a.json && matches!(a.cmd, Cmd::Stats));
        assert!(Args::try_parse_from(["gwctl", "list", "--jsn"]).is_err(), "unknown flags refused");
    }

    #[test]
    fn watch_takes_what_an_interval_and_a_count() {
        let a = Args::try_parse_from(["gwctl", "watch"]).unwrap();
        assert!(matches!(a.cmd, Cmd::Watch { what: WatchWhat::List, count: None, .. }));
        let a = Args::try_parse_from(["gwctl", "watch", "stats", "-n", "0.5", "--count", "3"]).unwrap();
        match a.cmd {
            Cmd::Watch { what, interval, count } => {
                assert_eq!((what, interval, count), (WatchWhat::Stats, 0.5, Some(3)));
            }
            other => panic!("{other:?}"),
        }
        for bad in ["0", "0.05", "x", "7200"] {
            let e = Args::try_parse_from(["gwctl", "watch", "-n", bad]).unwrap_err().to_string();
            assert!(e.contains("seconds from 0.1 to 3600"), "{bad}: {e}");
        }
        assert!(Args::try_parse_from(["gwctl", "watch", "groups"]).is_err());
    }

    #[test]
    fn completions_name_every_subcommand() {
        for shell in [clap_complete::Shell::Bash, clap_complete::Shell::Zsh, clap_complete::Shell::Fish] {
            let mut out = Vec::new();
            clap_complete::generate(shell, &mut Args::command(), "gwctl", &mut out);
            let text = String::from_utf8(out).unwrap();
            for sub in [
                "list",
                "initiate",
                "failover",
                "redirect",
                "stats",
                "completions",
                "watch",
                "reload",
                "policies",
                "routes",
                "neighbors",
                "ports",
                "drops",
            ] {
                assert!(text.contains(sub), "{shell:?} completion lacks {sub}");
            }
        }
    }
}
