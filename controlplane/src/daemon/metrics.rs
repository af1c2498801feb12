//! Prometheus metrics: `[daemon] metrics = "ADDR:PORT"` serves `GET
//! /metrics` in the OpenMetrics text format (prometheus-client's encoder,
//! so names, types, HELP lines and label escaping follow the Prometheus
//! conventions). Each scrape asks the daemon's loop for a [`Snapshot`]
//! (taken under its lock, between two inputs) and renders it here: the
//! numbers are the ones `gwctl stats` and `gwctl list` show, never a second
//! set of counters that could disagree with them.
//!
//! Families (every counter gets `_total`):
//! - `gw_ike_messages{direction}`, `gw_ike_retransmits`,
//!   `gw_ike_dropped{reason}`, `gw_ike_refused{reason}`: the engine's
//!   message counters;
//! - `gw_ike_sas{conn,state}`, `gw_ike_half_open`, `gw_child_sas{conn}`,
//!   `gw_ike_rekeys{kind}`: what is up;
//! - `gw_sa_packets` / `gw_sa_bytes{conn,spi,direction}`: the dataplane's
//!   per-SA counters (`spi`: the child SA's inbound SPI, its handle);
//! - `gw_dataplane_drops{reason}`, `gw_dataplane_up`,
//!   `gw_dataplane_generation`, `gw_dataplane_commands_dropped`,
//!   `gw_port_up{port}`, `gw_port_packets` / `gw_port_bytes{port,name,
//!   direction}`, `gw_port_errors{port,name,kind}`,
//!   `gw_ring_depth_bytes` / `gw_ring_capacity_bytes{ring}`: the dataplane
//!   as the control plane sees it;
//! - `gw_mpsa_group_members{group,role}`, `gw_mpsa_group_members_up`,
//!   `gw_mpsa_group_rekeys`: Multi-point SA groups;
//! - `gw_bgp_speaker_up`, `gw_bgp_routes`, `gw_bgp_routes_refused`: MPSA
//!   peer discovery through BIRD;
//! - `gw_stubs_held`, `gw_stubs_exported`, `gw_syn{result}`,
//!   `gw_stub_fetches{result}`, `gw_stub_bank_up`,
//!   `gw_stub_bank_latency_seconds`, `gw_redirects{what}`: IKE SA stub
//!   synchronization and failover.

use std::io::Read;
use std::net::SocketAddr;
use std::sync::mpsc::{self, Sender};
use std::time::Duration;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::stubconn::BankHealth;
use super::view::{GroupInfo, IkeSaInfo};
use crate::ike::engine::Stats;

/// What one scrape shows, copied out of the daemon.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub ike: Stats,
    pub half_open: usize,
    /// Every IKE SA with its child SAs (and their dataplane counters).
    pub sas: Vec<IkeSaInfo>,
    pub groups: Vec<GroupInfo>,
    /// Dataplane drops by reason since this daemon started.
    pub drops: Vec<(String, u64)>,
    /// The dataplane's generation, once it said hello; None: no dataplane
    /// link, or none heard from yet.
    pub dataplane_generation: Option<u64>,
    pub dataplane_commands_dropped: u64,
    /// Ports: number, link up.
    pub ports: Vec<(u16, bool)>,
    /// The ports' NIC counters (the dataplane's, each second).
    pub port_counters: Vec<cpdp::msg::PortCounters>,
    /// The rings' depth: (cp->dp (bytes, capacity), dp->cp if readable).
    pub rings: Option<super::transport::RingDepths>,
    pub stubs_held: usize,
    pub stub_bank: Option<BankHealth>,
    /// MPSA peer discovery through BIRD (`[bgp]`).
    pub bgp: Option<BgpHealth>,
}

/// Peer discovery as the daemon last saw it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BgpHealth {
    /// BIRD answered the last question.
    pub up: bool,
    /// Endpoint: learned routes in the group's member table now.
    pub routes: usize,
    /// Endpoint: learned routes refused since start.
    pub refused: u64,
}

type Labels = Vec<(&'static str, String)>;

fn counter(r: &mut Registry, name: &str, help: &str, v: u64) {
    let c: Counter = Counter::default();
    c.inc_by(v);
    r.register(name, help, c);
}

fn gauge(r: &mut Registry, name: &str, help: &str, v: i64) {
    let g: Gauge = Gauge::default();
    g.set(v);
    r.register(name, help, g);
}

fn counters(r: &mut Registry, name: &str, help: &str, rows: impl IntoIterator<Item = (Labels, u64)>) {
    let f = Family::<Labels, Counter>::default();
    for (l, v) in rows {
        f.get_or_create(&l).inc_by(v);
    }
    r.register(name, help, f);
}

fn gauges(r: &mut Registry, name: &str, help: &str, rows: impl IntoIterator<Item = (Labels, i64)>) {
    let f = Family::<Labels, Gauge>::default();
    for (l, v) in rows {
        f.get_or_create(&l).set(v);
    }
    r.register(name, help, f);
}

fn one(k: &'static str, v: &str) -> Labels {
    vec![(k, v.to_string())]
}

fn n(v: usize) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// The OpenMetrics text of `s`.
pub fn render(s: &Snapshot) -> String {
    let mut r = Registry::default();
    let st = &s.ike;
    counters(
        &mut r,
        "gw_ike_messages",
        "IKE messages received and sent",
        [(one("direction", "received"), st.received), (one("direction", "sent"), st.sent)],
    );
    counter(&mut r, "gw_ike_retransmits", "IKE requests retransmitted", st.retransmitted);
    counter(&mut r, "gw_ike_retransmits_answered", "Retransmitted requests answered again", st.retransmits_answered);
    counters(
        &mut r,
        "gw_ike_dropped",
        "IKE messages dropped without an answer, by reason",
        [
            ("malformed", st.malformed),
            ("unknown_spi", st.unknown_spi),
            ("bad_icv", st.bad_icv),
            ("bad_message_id", st.bad_message_id),
            ("bad_init_request", st.bad_init_request),
        ]
        .map(|(k, v)| (one("reason", k), v)),
    );
    counters(
        &mut r,
        "gw_ike_refused",
        "IKE requests refused with an error notify, by reason",
        [
            ("auth_failed", st.auth_failed),
            ("no_proposal", st.no_proposal),
            ("mpsa_put", st.mpsa_puts_refused),
            ("mobike", st.mobike_refused),
            ("clone", st.clone_refused),
        ]
        .map(|(k, v)| (one("reason", k), v)),
    );
    counter(&mut r, "gw_ike_cookies_sent", "IKE_SA_INIT answered with a COOKIE (RFC 7296 2.6)", st.cookies_sent);
    counter(&mut r, "gw_nat_keepalives", "NAT-T keepalives sent", st.keepalives);
    counters(
        &mut r,
        "gw_ike_rekeys",
        "Rekeys completed, IKE SAs and child SAs",
        [(one("kind", "ike"), st.ike_rekeys), (one("kind", "child"), st.child_rekeys)],
    );
    gauge(&mut r, "gw_ike_half_open", "Responder IKE SAs not yet authenticated", n(s.half_open));

    let mut by_state = std::collections::BTreeMap::<(String, String), usize>::new();
    let mut children = std::collections::BTreeMap::<String, usize>::new();
    let (mut packets, mut bytes) = (Vec::new(), Vec::new());
    for sa in &s.sas {
        *by_state.entry((sa.conn.clone(), format!("{:?}", sa.state).to_lowercase())).or_default() += 1;
        *children.entry(sa.conn.clone()).or_default() += sa.children.len();
        for c in &sa.children {
            for (dir, p, b) in [("in", c.packets_in, c.bytes_in), ("out", c.packets_out, c.bytes_out)] {
                let l = vec![("conn", sa.conn.clone()), ("spi", c.spi_in.clone()), ("direction", dir.to_string())];
                packets.push((l.clone(), p));
                bytes.push((l, b));
            }
        }
    }
    gauges(
        &mut r,
        "gw_ike_sas",
        "IKE SAs by connection and state",
        by_state.into_iter().map(|((c, st), v)| (vec![("conn", c), ("state", st)], n(v))),
    );
    gauges(
        &mut r,
        "gw_child_sas",
        "Child SAs by connection",
        children.into_iter().map(|(c, v)| (vec![("conn", c)], n(v))),
    );
    counters(&mut r, "gw_sa_packets", "ESP packets through a child SA (dataplane)", packets);
    counters(&mut r, "gw_sa_bytes", "Bytes through a child SA (dataplane)", bytes);

    counters(
        &mut r,
        "gw_dataplane_drops",
        "Packets the dataplane dropped, by reason, since this control plane started",
        s.drops.iter().map(|(k, v)| (vec![("reason", k.clone())], *v)),
    );
    gauge(
        &mut r,
        "gw_dataplane_up",
        "1 when the dataplane has said hello",
        i64::from(s.dataplane_generation.is_some()),
    );
    gauge(
        &mut r,
        "gw_dataplane_generation",
        "The dataplane's generation (it changes on each dataplane restart)",
        s.dataplane_generation.map_or(0, |g| i64::try_from(g).unwrap_or(i64::MAX)),
    );
    counter(
        &mut r,
        "gw_dataplane_commands_dropped",
        "Commands the control-to-dataplane ring had no room for",
        s.dataplane_commands_dropped,
    );
    gauges(
        &mut r,
        "gw_port_up",
        "Dataplane port link state (1 up)",
        s.ports.iter().map(|(p, up)| (vec![("port", p.to_string())], i64::from(*up))),
    );

    let port = |p: &cpdp::msg::PortCounters, k: &'static str, v: &str| {
        vec![("port", p.port.to_string()), ("name", p.name.clone()), (k, v.to_string())]
    };
    counters(
        &mut r,
        "gw_port_packets",
        "Packets through a dataplane port (the NIC's counters)",
        s.port_counters
            .iter()
            .flat_map(|p| [(port(p, "direction", "rx"), p.rx_packets), (port(p, "direction", "tx"), p.tx_packets)]),
    );
    counters(
        &mut r,
        "gw_port_bytes",
        "Bytes through a dataplane port (the NIC's counters)",
        s.port_counters
            .iter()
            .flat_map(|p| [(port(p, "direction", "rx"), p.rx_bytes), (port(p, "direction", "tx"), p.tx_bytes)]),
    );
    counters(
        &mut r,
        "gw_port_errors",
        "Packets a dataplane port lost: rx queue full (missed), rx and tx errors, no mbuf",
        s.port_counters.iter().flat_map(|p| {
            [
                (port(p, "kind", "rx_missed"), p.rx_missed),
                (port(p, "kind", "rx_errors"), p.rx_errors),
                (port(p, "kind", "tx_errors"), p.tx_errors),
                (port(p, "kind", "rx_nombuf"), p.rx_nombuf),
            ]
        }),
    );
    if let Some((to, from)) = s.rings {
        let rows: Vec<_> = std::iter::once(("cp_to_dp", to)).chain(from.map(|f| ("dp_to_cp", f))).collect();
        gauges(
            &mut r,
            "gw_ring_depth_bytes",
            "Bytes queued in a control ring now",
            rows.iter().map(|(k, (fill, _))| (one("ring", k), i64::try_from(*fill).unwrap_or(i64::MAX))),
        );
        gauges(
            &mut r,
            "gw_ring_capacity_bytes",
            "A control ring's size",
            rows.iter().map(|(k, (_, cap))| (one("ring", k), i64::try_from(*cap).unwrap_or(i64::MAX))),
        );
    }

    let group = |g: &GroupInfo| vec![("group", g.name.clone()), ("role", g.role.clone())];
    gauges(
        &mut r,
        "gw_mpsa_group_members",
        "Multi-point SA group members configured (gateway)",
        s.groups.iter().map(|g| (group(g), n(g.members))),
    );
    gauges(
        &mut r,
        "gw_mpsa_group_members_up",
        "Multi-point SA group members with their IKE SA up (gateway)",
        s.groups.iter().map(|g| (group(g), n(g.members_up))),
    );
    counters(
        &mut r,
        "gw_mpsa_group_rekeys",
        "Group SA rekeys (gateway) or group SAs received (endpoint)",
        s.groups.iter().map(|g| (group(g), g.rekeys)),
    );

    if let Some(b) = &s.bgp {
        gauge(
            &mut r,
            "gw_bgp_speaker_up",
            "BIRD answered gw-controlplane's last question (1) or not (0)",
            i64::from(b.up),
        );
        gauge(&mut r, "gw_bgp_routes", "Learned routes in the group's member table (endpoint)", n(b.routes));
        counter(
            &mut r,
            "gw_bgp_routes_refused",
            "Learned routes refused (endpoint): next hop or prefix not acceptable",
            b.refused,
        );
    }

    gauge(&mut r, "gw_stubs_held", "Stubs of other gateways' IKE SAs held", n(s.stubs_held));
    counter(&mut r, "gw_stubs_exported", "Stubs of our IKE SAs exported", st.stubs_exported);
    counters(
        &mut r,
        "gw_syn",
        "IKE_SA_SYN: sent (client), rebuilt, unknown index and refused (responder)",
        [("sent", st.syn_sent), ("rebuilt", st.syn_rebuilt), ("unknown", st.syn_unknown), ("refused", st.syn_refused)]
            .map(|(k, v)| (one("result", k), v)),
    );
    counters(
        &mut r,
        "gw_stub_fetches",
        "Stub lookups at the bank for a SYN, by result",
        [("asked", st.stub_fetches), ("fetched", st.stubs_fetched), ("missed", st.stub_fetch_missed)]
            .map(|(k, v)| (one("result", k), v)),
    );
    if let Some(b) = &s.stub_bank {
        gauge(
            &mut r,
            "gw_stub_bank_up",
            "1 when the stub bank answered the last lookup or probe",
            i64::from(b.reachable),
        );
        let g = Gauge::<f64, std::sync::atomic::AtomicU64>::default();
        g.set(b.latency_us as f64 / 1e6);
        r.register("gw_stub_bank_latency_seconds", "The stub bank's last round trip", g);
    }
    counters(
        &mut r,
        "gw_redirects",
        "RFC 5685 REDIRECT: sent (gateway), followed and ignored (client)",
        [("sent", st.redirects_sent), ("followed", st.redirects_followed), ("ignored", st.redirects_ignored)]
            .map(|(k, v)| (one("what", k), v)),
    );
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = encode(&mut out, &r);
    out
}

/// The content type of what [`render`] makes.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Serves `GET /metrics` on `addr`: each scrape sends a channel through
/// `ask` and renders the snapshot that comes back. Anything else gets 404
/// (or 405 for another method); a daemon that does not answer within 5 s,
/// 503. Returns the address it listens on (port 0: one the kernel chose).
pub fn serve(addr: SocketAddr, ask: impl Fn(Sender<Snapshot>) -> bool + Send + 'static) -> Result<SocketAddr, String> {
    let server = tiny_http::Server::http(addr).map_err(|e| format!("metrics {addr}: {e}"))?;
    let bound = server.server_addr().to_ip().ok_or_else(|| format!("metrics {addr}: not an IP listener"))?;
    std::thread::Builder::new()
        .name("metrics".into())
        .spawn(move || {
            for mut req in server.incoming_requests() {
                // A body is not expected; read what came so the connection stays usable.
                let _ = req.as_reader().take(1 << 16).read_to_end(&mut Vec::new());
                let path = req.url().split('?').next().unwrap_or("").to_string();
                let resp = match (req.method(), path.as_str()) {
                    (tiny_http::Method::Get | tiny_http::Method::Head, "/metrics") => {
                        let (tx, rx) = mpsc::channel();
                        match ask(tx).then(|| rx.recv_timeout(Duration::from_secs(5)).ok()).flatten() {
                            Some(s) => text(200, render(&s), CONTENT_TYPE),
                            None => text(503, "the daemon did not answer\n".into(), "text/plain"),
                        }
                    }
                    (tiny_http::Method::Get | tiny_http::Method::Head, "/") => {
                        text(200, "gw-controlplane: metrics at /metrics\n".into(), "text/plain")
                    }
                    (tiny_http::Method::Get | tiny_http::Method::Head, _) => {
                        text(404, "not found: try /metrics\n".into(), "text/plain")
                    }
                    _ => text(405, "only GET\n".into(), "text/plain"),
                };
                let _ = req.respond(resp);
            }
        })
        .map_err(|e| e.to_string())?;
    Ok(bound)
}

fn text(code: u16, body: String, ctype: &str) -> tiny_http::Response<std::io::Cursor<Vec<u8>>> {
    let mut r = tiny_http::Response::from_string(body).with_status_code(code);
    if let Ok(h) = tiny_http::Header::from_bytes(&b"Content-Type"[..], ctype.as_bytes()) {
        r.add_header(h);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::view::ChildInfo;
    use crate::ike::engine::{ChildState, IkeState};

    fn sa(conn: &str, state: IkeState, spis: &[&str]) -> IkeSaInfo {
        let (l, r) = ("192.0.2.1:500".parse().unwrap(), "[2001:db8::2]:4500".parse().unwrap());
        IkeSaInfo {
            initiator: false,
            children: spis
                .iter()
                .map(|s| ChildInfo {
                    name: "c".into(),
                    spi_in: s.to_string(),
                    spi_out: "00000001".into(),
                    state: ChildState::Installed,
                    alg: String::new(),
                    pfs: None,
                    ts_local: vec![],
                    ts_remote: vec![],
                    age_secs: 0,
                    rekey_in_secs: None,
                    paths: vec![],
                    alternates: vec![],
                    transport: false,
                    packets_in: 7,
                    bytes_in: 700,
                    packets_out: 9,
                    bytes_out: 900,
                })
                .collect(),
            ..IkeSaInfo::unnegotiated(conn, state, l, r)
        }
    }

    /// The value of the sample `series` (name and labels as written).
    fn value(text: &str, series: &str) -> Option<f64> {
        text.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
    }

    #[test]
    fn the_snapshot_renders_as_prometheus_names_and_labels() {
        let mut s = Snapshot {
            sas: vec![
                sa("hub", IkeState::Established, &["c0000001"]),
                sa("hub", IkeState::Established, &["c0000002"]),
                sa("rw\"x", IkeState::Connecting, &[]),
            ],
            drops: vec![("no_policy".into(), 3)],
            dataplane_generation: Some(5),
            ports: vec![(0, true), (1, false)],
            port_counters: vec![cpdp::msg::PortCounters {
                port: 0,
                name: "wan0".into(),
                up: true,
                rx_packets: 50,
                tx_packets: 40,
                rx_bytes: 5000,
                tx_bytes: 4000,
                rx_missed: 2,
                rx_errors: 0,
                tx_errors: 0,
                rx_nombuf: 0,
            }],
            rings: Some(((128, 1 << 20), Some((0, 1 << 20)))),
            stubs_held: 2,
            ..Default::default()
        };
        s.ike.ike_rekeys = 4;
        s.ike.received = 11;
        s.ike.auth_failed = 1;
        s.ike.syn_rebuilt = 6;
        let t = render(&s);
        assert!(t.ends_with("# EOF\n"), "{t}");
        assert!(t.contains("# TYPE gw_ike_messages counter"), "{t}");
        assert_eq!(value(&t, "gw_ike_messages_total{direction=\"received\"}"), Some(11.0), "{t}");
        assert_eq!(value(&t, "gw_ike_refused_total{reason=\"auth_failed\"}"), Some(1.0));
        assert_eq!(value(&t, "gw_ike_sas{conn=\"hub\",state=\"established\"}"), Some(2.0), "{t}");
        // Label values are escaped, not cut.
        assert_eq!(value(&t, "gw_ike_sas{conn=\"rw\\\"x\",state=\"connecting\"}"), Some(1.0), "{t}");
        assert_eq!(value(&t, "gw_child_sas{conn=\"hub\"}"), Some(2.0));
        assert_eq!(value(&t, "gw_sa_packets_total{conn=\"hub\",spi=\"c0000002\",direction=\"out\"}"), Some(9.0), "{t}");
        assert_eq!(value(&t, "gw_sa_bytes_total{conn=\"hub\",spi=\"c0000001\",direction=\"in\"}"), Some(700.0));
        assert_eq!(value(&t, "gw_dataplane_drops_total{reason=\"no_policy\"}"), Some(3.0));
        assert_eq!(value(&t, "gw_dataplane_up"), Some(1.0));
        assert_eq!(value(&t, "gw_port_up{port=\"1\"}"), Some(0.0));
        assert_eq!(value(&t, "gw_syn_total{result=\"rebuilt\"}"), Some(6.0));
        assert_eq!(value(&t, "gw_ike_rekeys_total{kind=\"ike\"}"), Some(4.0));
        assert_eq!(value(&t, "gw_stubs_held"), Some(2.0));
        assert_eq!(value(&t, "gw_port_packets_total{port=\"0\",name=\"wan0\",direction=\"rx\"}"), Some(50.0), "{t}");
        assert_eq!(value(&t, "gw_port_errors_total{port=\"0\",name=\"wan0\",kind=\"rx_missed\"}"), Some(2.0));
        assert_eq!(value(&t, "gw_ring_depth_bytes{ring=\"cp_to_dp\"}"), Some(128.0));
        assert_eq!(value(&t, "gw_ring_capacity_bytes{ring=\"dp_to_cp\"}"), Some(1048576.0));
        // No bank configured: no bank series.
        assert!(!t.contains("gw_stub_bank_up"));
    }

    /// configs/grafana/gw-dashboard.json asks only for series the endpoint
    /// has (a renamed metric would leave a panel silently empty).
    #[test]
    fn the_grafana_dashboard_asks_for_series_that_exist() {
        let dash: serde_json::Value = serde_json::from_str(include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../configs/grafana/gw-dashboard.json"
        )))
        .expect("the dashboard is JSON");
        let mut s = Snapshot {
            sas: vec![sa("hub", IkeState::Established, &["c0000001"])],
            drops: vec![("no_policy".into(), 1)],
            ports: vec![(0, true)],
            groups: vec![GroupInfo {
                name: "mesh".into(),
                role: "gateway".into(),
                spi: "1".into(),
                alg: String::new(),
                members: 3,
                members_up: 3,
                delivered: 3,
                expires_in_secs: 1,
                rekey_in_secs: None,
                rekeys: 1,
                learned: vec![],
            }],
            stub_bank: Some(BankHealth::default()),
            bgp: Some(BgpHealth { up: true, routes: 2, refused: 1 }),
            port_counters: vec![cpdp::msg::PortCounters {
                port: 0,
                name: "wan0".into(),
                up: true,
                rx_packets: 1,
                tx_packets: 1,
                rx_bytes: 1,
                tx_bytes: 1,
                rx_missed: 0,
                rx_errors: 0,
                tx_errors: 0,
                rx_nombuf: 0,
            }],
            rings: Some(((0, 1), Some((0, 1)))),
            ..Default::default()
        };
        s.ike.sent = 1;
        let names: std::collections::BTreeSet<String> = render(&s)
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.split(['{', ' ']).next().map(str::to_string))
            .collect();
        let panels = dash["panels"].as_array().expect("panels");
        assert!(panels.len() >= 10);
        let mut asked = 0;
        for p in panels {
            for t in p["targets"].as_array().expect("targets") {
                let e = t["expr"].as_str().expect("expr");
                let mut rest = e;
                while let Some(i) = rest.find("gw_") {
                    let name: String =
                        rest[i..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
                    assert!(names.contains(&name), "panel {:?} asks for {name}, which the endpoint lacks", p["title"]);
                    asked += 1;
                    rest = &rest[i + name.len()..];
                }
            }
        }
        assert!(asked >= 20, "{asked}");
    }

    #[test]
    fn the_endpoint_answers_scrapes_and_refuses_the_rest() {
        let addr = serve("127.0.0.1:0".parse().unwrap(), |tx| {
            let mut s = Snapshot::default();
            s.ike.sent = 42;
            tx.send(s).is_ok()
        })
        .unwrap();
        let get = |req: &str| {
            use std::io::Write;
            let mut c = std::net::TcpStream::connect(addr).unwrap();
            c.write_all(req.as_bytes()).unwrap();
            let mut out = String::new();
            c.read_to_string(&mut out).unwrap();
            out
        };
        let ok = get("GET /metrics HTTP/1.0\r\n\r\n");
        assert!(ok.starts_with("HTTP/1.0 200") || ok.starts_with("HTTP/1.1 200"), "{ok}");
        assert!(ok.contains("application/openmetrics-text"), "{ok}");
        assert!(ok.contains("gw_ike_messages_total{direction=\"sent\"} 42"), "{ok}");
        assert!(get("GET /nope HTTP/1.0\r\n\r\n").contains(" 404 "));
        assert!(get("POST /metrics HTTP/1.0\r\nContent-Length: 2\r\n\r\nxx").contains(" 405 "));
    }
}
