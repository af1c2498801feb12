//! BIRD 2 configurations for MPSA peer discovery (mpsa-04 section 4.1):
//! an endpoint's speaker and the hub's route reflector, and the hub's
//! member filter, which gw-controlplane rewrites as members come and go.
//!
//! Neither speaker touches a kernel routing table: the endpoint's routes
//! go to its gw-dataplane through gw-controlplane (the group's member
//! table), and the hub's only reflect. Timers are short so that a member
//! that joins is reachable within seconds and one that goes is withdrawn
//! within a hold time.

use std::fmt::Write;
use std::net::IpAddr;

use cpdp::msg::WirePrefix;

use super::{text, BgpConfig, Side};

/// The BGP protocol (BIRD's name) of an endpoint's session to the hub:
/// the routes gw-controlplane reads are those it learned.
pub const HUB_SESSION: &str = "gw_hub";
/// The static protocols holding what an endpoint announces.
pub const ANNOUNCE: [&str; 2] = ["gw_lan4", "gw_lan6"];

/// Session timers (RFC 4271 4.4, 10): hold 9 s, keepalive 3 s; a failed
/// connection tried again after 2 s.
const TIMERS: &str = "    hold time 9;\n    keepalive time 3;\n    connect delay time 1;\n    connect retry time 2;\n    error wait time 1, 10;\n";

/// One member up now, as the hub's filter sees it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct MemberRoutes {
    pub id: String,
    pub group: String,
    /// Its ESP address: the IKE SA's remote address.
    pub esp: IpAddr,
    /// Where its speaker may be: its child SAs' remote selectors.
    pub speakers: Vec<WirePrefix>,
    /// What it may announce (equal or more specific).
    pub allowed: Vec<WirePrefix>,
}

fn header(w: &mut String, what: &str, cfg: &BgpConfig) {
    let _ = writeln!(w, "# BIRD 2 configuration for {what}, written by gw-controlplane --bird-config");
    let _ = writeln!(w, "# (MPSA peer discovery, draft-yamaya-ipsecme-mpsa-04 section 4.1). Run:");
    let _ = writeln!(w, "#   bird -c THIS_FILE -s {}", cfg.socket.display());
    let _ = writeln!(w, "router id {};", router_id(cfg.address));
    w.push_str("log syslog all;\nlog stderr all;\nprotocol device {\n    scan time 10;\n}\n");
}

/// BGP router ids are 32 bits: an IPv6 speaker uses the low 32 bits of
/// its address.
fn router_id(a: IpAddr) -> std::net::Ipv4Addr {
    match a {
        IpAddr::V4(a) => a,
        IpAddr::V6(a) => (u128::from(a) as u32).into(),
    }
}

/// The configuration for `cfg`'s side.
pub fn config(cfg: &BgpConfig) -> String {
    match &cfg.side {
        Side::Endpoint { hub, announce, next_hop, .. } => endpoint(cfg, *hub, announce, *next_hop),
        Side::Hub { neighbors, filter_file } => hub(cfg, *neighbors, filter_file),
    }
}

fn endpoint(cfg: &BgpConfig, hub: IpAddr, announce: &[WirePrefix], next_hop: IpAddr) -> String {
    let mut w = String::new();
    header(&mut w, "an MPSA endpoint's speaker", cfg);
    // iBGP next hops are resolved recursively: other members' ESP
    // addresses are reached over the group SA, not by this speaker, so a
    // default route in a table of its own makes them all resolvable.
    w.push_str("ipv4 table gw_igp4;\nipv6 table gw_igp6;\n");
    w.push_str(
        "protocol static gw_igp_default4 {\n    ipv4 { table gw_igp4; };\n    route 0.0.0.0/0 unreachable;\n}\n",
    );
    w.push_str("protocol static gw_igp_default6 {\n    ipv6 { table gw_igp6; };\n    route ::/0 unreachable;\n}\n");
    for (v6, name) in [(false, ANNOUNCE[0]), (true, ANNOUNCE[1])] {
        let ours: Vec<&WirePrefix> = announce.iter().filter(|p| p.addr.is_ipv6() == v6).collect();
        if ours.is_empty() {
            continue;
        }
        let _ = writeln!(w, "# What this endpoint announces, with its ESP address as next hop.");
        let _ = writeln!(w, "protocol static {name} {{\n    {};", if v6 { "ipv6" } else { "ipv4" });
        for p in ours {
            let _ = writeln!(w, "    route {} unreachable;", text(*p));
        }
        w.push_str("}\n");
    }
    let _ = writeln!(w, "protocol bgp {HUB_SESSION} {{");
    let _ = writeln!(w, "    local {} as {};", cfg.address, cfg.asn);
    let _ = writeln!(w, "    neighbor {hub} internal;");
    w.push_str(TIMERS);
    for (v6, name) in [(false, ANNOUNCE[0]), (true, ANNOUNCE[1])] {
        let fam = if v6 { "ipv6" } else { "ipv4" };
        let ext = if !v6 && next_hop.is_ipv6() { "        extended next hop on;\n" } else { "" };
        let _ =
            writeln!(w, "    {fam} {{\n        igp table gw_igp{};\n{ext}        import all;", if v6 { 6 } else { 4 });
        if announce.iter().any(|p| p.addr.is_ipv6() == v6) {
            let _ = writeln!(
                w,
                "        export filter {{ if proto = \"{name}\" then {{ bgp_next_hop = {next_hop}; accept; }} reject; }};"
            );
        } else {
            w.push_str("        export none;\n");
        }
        w.push_str("    };\n");
    }
    w.push_str("}\n");
    w
}

fn hub(cfg: &BgpConfig, neighbors: WirePrefix, filter_file: &std::path::Path) -> String {
    let mut w = String::new();
    header(&mut w, "an MPSA hub's route reflector", cfg);
    w.push_str("# The members up now and what each may announce: gw-controlplane\n");
    w.push_str("# rewrites this file and reconfigures as members come and go.\n");
    let _ = writeln!(w, "include \"{}\";", filter_file.display());
    w.push_str("protocol bgp gw_members {\n");
    let _ = writeln!(w, "    local {} as {};", cfg.address, cfg.asn);
    let _ = writeln!(w, "    neighbor range {} internal;", text(neighbors));
    w.push_str("    rr client;\n");
    w.push_str(TIMERS);
    // `import table`: what each member sent is kept as it came, so a new
    // member filter is applied to it at once, without asking the member
    // to send it again.
    w.push_str("    ipv4 {\n        extended next hop on;\n        import table on;\n        import where gw_member_route4();\n        export all;\n    };\n");
    w.push_str(
        "    ipv6 {\n        import table on;\n        import where gw_member_route6();\n        export all;\n    };\n",
    );
    w.push_str("}\n");
    w
}

/// What BIRD may print of an identity: no quotes or backslashes.
fn printable(s: &str) -> String {
    s.chars().map(|c| if c.is_ascii_graphic() && c != '"' && c != '\\' { c } else { '?' }).collect()
}

fn any_of(what: &str, prefixes: &[&WirePrefix]) -> String {
    let v: Vec<String> = prefixes.iter().map(|p| format!("{what} ~ {}", text(**p))).collect();
    v.join(" || ")
}

/// The hub's member filter: `gw_member_route4()` and `gw_member_route6()`
/// accept a route only from a member's speaker (the session's address in
/// one of its child SAs' selectors), only for a prefix it may announce,
/// and only with its own ESP address as next hop; anything else is
/// rejected with a log line that says why (mpsa-04 section 5).
pub fn member_filter(members: &[MemberRoutes]) -> String {
    let mut w = String::new();
    w.push_str("# The MPSA members up now, written by gw-controlplane: do not edit.\n");
    for (v6, fname) in [(false, "gw_member_route4"), (true, "gw_member_route6")] {
        let _ = writeln!(w, "function {fname}()\n{{");
        for m in members {
            let speakers: Vec<&WirePrefix> = m.speakers.iter().filter(|p| p.addr.is_ipv4() == from_v4(m)).collect();
            if speakers.is_empty() {
                continue;
            }
            let who = printable(&m.id);
            let _ = writeln!(w, "    # {who}, group {}, ESP address {}", printable(&m.group), m.esp);
            let _ = writeln!(w, "    if {} then {{", any_of("from", &speakers));
            let _ = writeln!(
                w,
                "        if bgp_next_hop != {} then {{ print \"gw: refused \", net, \" from {who}: next hop \", \
                 bgp_next_hop, \" is not its ESP address {}\"; return false; }}",
                m.esp, m.esp
            );
            let allowed: Vec<&WirePrefix> = m.allowed.iter().filter(|p| p.addr.is_ipv6() == v6).collect();
            if !allowed.is_empty() {
                let set: Vec<String> = allowed.iter().map(|p| format!("{}+", text(**p))).collect();
                let _ = writeln!(w, "        if net ~ [ {} ] then return true;", set.join(", "));
            }
            let _ = writeln!(w, "        print \"gw: refused \", net, \" from {who}: not a prefix it may announce\";");
            w.push_str("        return false;\n    }\n");
        }
        w.push_str(
            "    print \"gw: refused \", net, \" from \", from, \": no member's child SA holds that speaker\";\n",
        );
        w.push_str("    return false;\n}\n");
    }
    w
}

/// The family of the sessions from this member's speakers: the family of
/// its selectors (a speaker in an IPv6 LAN speaks over IPv6).
fn from_v4(m: &MemberRoutes) -> bool {
    m.speakers.first().is_none_or(|p| p.addr.is_ipv4())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bgp::BgpToml;
    use crate::mpsa::MpsaRole;

    fn p(s: &str) -> WirePrefix {
        crate::bgp::parse_prefix(s).unwrap()
    }

    fn endpoint_cfg(announce: &[&str]) -> BgpConfig {
        let conn = super::super::tests::connection();
        BgpToml {
            socket: "/run/gw/bird.ctl".into(),
            address: "10.1.1.10".parse().unwrap(),
            asn: 65000,
            poll_ms: 1000,
            connection: Some("hub".into()),
            hub: Some("10.0.0.10".parse().unwrap()),
            announce: announce.iter().map(|s| s.to_string()).collect(),
            next_hop: None,
            neighbors: None,
            filter_file: None,
        }
        .build(MpsaRole::Endpoint, &[conn])
        .unwrap()
    }

    /// mpsa-04 4.1: the endpoint announces its prefixes over iBGP to the
    /// hub with its ESP address (the connection's local) as next hop.
    #[test]
    fn an_endpoint_announces_its_prefixes_with_its_esp_address() {
        let c = config(&endpoint_cfg(&["10.1.1.0/24", "10.1.9.0/24"]));
        assert!(c.contains("router id 10.1.1.10;"));
        assert!(c.contains("protocol bgp gw_hub {\n    local 10.1.1.10 as 65000;\n    neighbor 10.0.0.10 internal;"));
        assert!(c.contains("protocol static gw_lan4 {\n    ipv4;\n    route 10.1.1.0/24 unreachable;\n    route 10.1.9.0/24 unreachable;\n}"));
        assert!(c.contains("if proto = \"gw_lan4\" then { bgp_next_hop = 192.0.2.11; accept; } reject;"));
        assert!(!c.contains("gw_lan6"), "no IPv6 prefix, no IPv6 announcement");
        assert!(c.contains("export none;"), "the IPv6 channel exports nothing");
        assert!(!c.contains("protocol kernel"), "no kernel table is touched");
    }

    /// The hub is a route reflector (mpsa-04 4.1) for any speaker in the
    /// neighbour range, its import filter in the file gw-controlplane
    /// keeps.
    #[test]
    fn the_hub_reflects_through_the_member_filter() {
        let cfg = BgpToml { asn: 64512, ..hub_toml("/run/gw/bird.ctl".into(), "/run/gw/members.conf".into()) }
            .build(MpsaRole::Gateway, &[])
            .unwrap();
        let c = config(&cfg);
        assert!(c.contains("include \"/run/gw/members.conf\";"));
        assert!(c.contains("neighbor range 10.1.0.0/16 internal;\n    rr client;"));
        assert!(c.contains("local 10.0.0.10 as 64512;"));
        assert!(c.contains("import where gw_member_route4();") && c.contains("import where gw_member_route6();"));
    }

    /// mpsa-04 section 5: the gateway filters the routes members exchange.
    #[test]
    fn the_member_filter_names_speaker_prefixes_and_next_hop() {
        let a = MemberRoutes {
            id: "a.lab".into(),
            group: "mesh".into(),
            esp: "192.0.2.11".parse().unwrap(),
            speakers: vec![p("10.1.1.0/24")],
            allowed: vec![p("10.1.1.0/24"), p("2001:db8:1::/48")],
        };
        let f = member_filter(&[a]);
        let four = f.split("function gw_member_route6()").next().unwrap();
        assert!(four.contains("if from ~ 10.1.1.0/24 then {"));
        assert!(four.contains("if bgp_next_hop != 192.0.2.11 then"));
        assert!(four.contains("if net ~ [ 10.1.1.0/24+ ] then return true;"));
        assert!(!four.contains("2001:db8"), "IPv6 prefixes only in the IPv6 function");
        assert!(f.contains("if net ~ [ 2001:db8:1::/48+ ] then return true;"));
        assert_eq!(f.matches("no member's child SA holds that speaker").count(), 2);
        let none = member_filter(&[]);
        assert!(none.contains("function gw_member_route4()\n{\n    print"), "no member: everything refused");
        let odd = MemberRoutes { id: "x\"; accept; #".into(), ..member_filter_sample() };
        assert!(!member_filter(&[odd]).contains("x\";"), "an identity cannot end the string");
    }

    /// BIRD 2 itself parses what we write (`bird -p`: parse only): the
    /// endpoint's config, the hub's, and its member filter with members
    /// of both families. Needs Debian's bird2 (setup.sh).
    #[test]
    #[ignore = "needs BIRD 2 (bird2); test.sh runs it"]
    fn bird_parses_every_config_we_write() {
        let dir = std::env::temp_dir().join(format!("gw-bird-parse-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let filter = dir.join("members.conf");
        let a = MemberRoutes {
            id: "a.lab".into(),
            group: "mesh".into(),
            esp: "192.0.2.11".parse().unwrap(),
            speakers: vec![p("10.1.1.0/24"), p("10.1.9.0/24")],
            allowed: vec![p("10.1.1.0/24"), p("2001:db8:1::/48")],
        };
        let six = MemberRoutes {
            id: "six.lab".into(),
            group: "mesh".into(),
            esp: "2001:db8::6".parse().unwrap(),
            speakers: vec![p("2001:db8:6::/48")],
            allowed: vec![],
        };
        std::fs::write(&filter, member_filter(&[a, six, member_filter_sample()])).unwrap();
        let hub = hub_toml(dir.join("bird.ctl"), filter.clone());
        let configs = [
            ("hub", config(&hub.build(MpsaRole::Gateway, &[]).unwrap())),
            ("endpoint", config(&endpoint_cfg(&["10.1.1.0/24", "10.1.9.0/24"]))),
        ];
        for (what, text) in configs {
            let f = dir.join(format!("{what}.conf"));
            std::fs::write(&f, &text).unwrap();
            let out = std::process::Command::new("bird")
                .arg("-p")
                .arg("-c")
                .arg(&f)
                .output()
                .expect("bird (bird2) installed");
            assert!(out.status.success(), "{what}: {}\n{text}", String::from_utf8_lossy(&out.stderr));
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A hub's `[bgp]`: speakers from 10.1.0.0/16, the filter in `filter`.
    fn hub_toml(socket: std::path::PathBuf, filter: std::path::PathBuf) -> BgpToml {
        BgpToml {
            socket,
            address: "10.0.0.10".parse().unwrap(),
            asn: 65000,
            poll_ms: 1000,
            connection: None,
            hub: None,
            announce: vec![],
            next_hop: None,
            neighbors: Some("10.1.0.0/16".into()),
            filter_file: Some(filter),
        }
    }

    fn member_filter_sample() -> MemberRoutes {
        MemberRoutes {
            id: String::new(),
            group: "g".into(),
            esp: "192.0.2.9".parse().unwrap(),
            speakers: vec![p("10.9.0.0/16")],
            allowed: vec![],
        }
    }
}
