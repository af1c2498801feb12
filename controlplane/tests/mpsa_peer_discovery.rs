//! MPSA peer discovery (draft-yamaya-ipsecme-mpsa-04 section 4) in
//! memory: what an endpoint does with the routes its BGP speaker learned
//! through the hub, and what the hub's member filter is made of. BIRD
//! itself runs in the MPSA lab (`./lab.sh mpsa --check`).

use std::net::IpAddr;

use controlplane::bgp::bird::member_filter;
use controlplane::bgp::{parse_prefix_text as p, LearnedRoute};
use controlplane::ike::engine::Error;
use controlplane::mpsa::MpsaRole;
use cpdp::msg::{Command, WirePrefix};

mod mpsa_common;
use mpsa_common::*;

fn route(prefix: &str, next_hop: &str) -> LearnedRoute {
    LearnedRoute { prefix: p(prefix), next_hop: next_hop.parse().unwrap() }
}

/// The member tables endpoint `n`'s dataplane was given after IKE_AUTH,
/// with the group SA or alone, newest last.
fn member_tables(n: &Node) -> Vec<Vec<(WirePrefix, IpAddr)>> {
    n.dp.iter()
        .filter_map(|c| match c {
            Command::InstallGroupSa { members, .. } | Command::SetGroupMembers { members, .. } => {
                let mut m = members.clone();
                m.sort();
                Some(m)
            }
            _ => None,
        })
        .collect()
}

fn member(prefix: &str, addr: &str) -> (WirePrefix, IpAddr) {
    (p(prefix), addr.parse().unwrap())
}

/// mpsa-04 4.1: a prefix learned with a member's ESP address as next
/// hop joins the group's member table at once (its SA kept), a second
/// look at the same routes changes nothing, and a withdrawal leaves the
/// static routes (mpsa 3.4), which stay the fallback.
#[test]
fn learned_prefixes_join_the_member_table_and_withdrawals_leave_it() {
    let mut lab = Lab::new("");
    lab.connect_all();
    let a = &mut lab.eps[0];
    let before = a.dp.len();
    let d = [route("10.1.4.0/24", "192.0.2.14")];
    let l = a.e.learn_routes("hub", &d).unwrap();
    assert_eq!((l.accepted, l.refused.len(), l.changed), (1, 0, true));
    lab.collect();
    let a = &mut lab.eps[0];
    let new: Vec<&Command> = a.dp[before..].iter().collect();
    assert_eq!(new.len(), 1, "one command, no SA reinstalled: {new:?}");
    let tables = member_tables(a);
    assert!(tables.last().unwrap().contains(&member("10.1.4.0/24", "192.0.2.14")));
    assert_eq!(tables.last().unwrap().len(), 4, "the static routes stay");
    assert!(!a.e.learn_routes("hub", &d).unwrap().changed, "the same routes again: nothing");
    lab.collect();
    assert_eq!(member_tables(&lab.eps[0]).len(), tables.len(), "nothing sent");
    // A learned route replaces a static one for the same prefix.
    let moved = [route("10.1.2.0/24", "192.0.2.22")];
    lab.eps[0].e.learn_routes("hub", &moved).unwrap();
    lab.collect();
    let t = member_tables(&lab.eps[0]).pop().unwrap();
    assert!(t.contains(&member("10.1.2.0/24", "192.0.2.22")) && !t.contains(&member("10.1.2.0/24", "192.0.2.12")));
    assert!(!t.iter().any(|m| m.0 == p("10.1.4.0/24")), "10.1.4.0/24 withdrawn");
    lab.eps[0].e.learn_routes("hub", &[]).unwrap();
    lab.collect();
    let t = member_tables(&lab.eps[0]).pop().unwrap();
    assert_eq!(t.len(), 3);
    assert!(t.contains(&member("10.1.2.0/24", "192.0.2.12")), "the static route is back");
    assert!(lab.eps[0].e.learned_routes("hub").is_empty());
}

/// A learned route that could not be another member's is refused with
/// why, and nothing of it installed: a next hop no host has, one of the
/// other family than the group SA's, the hub's own address; a prefix
/// overlapping one of ours (a member cannot draw our own traffic away);
/// a second next hop for one prefix. Our own route, reflected back, is
/// neither used nor refused.
#[test]
fn routes_no_member_could_announce_are_refused_with_why() {
    let mut lab = Lab::new("");
    lab.connect_all();
    let bad = [
        route("10.1.5.0/24", "0.0.0.0"),
        route("10.1.6.0/24", "2001:db8::6"),
        route("10.1.7.0/24", "192.0.2.1"),
        route("10.1.1.128/25", "192.0.2.12"),
        route("10.1.8.0/24", "192.0.2.18"),
        route("10.1.8.0/24", "192.0.2.19"),
        route("10.1.1.0/24", "192.0.2.11"),
    ];
    let l = lab.eps[0].e.learn_routes("hub", &bad).unwrap();
    let why: Vec<&str> = l.refused.iter().map(|(_, w)| w.as_str()).collect();
    assert_eq!(l.accepted, 1, "only 10.1.8.0/24 via 192.0.2.18: {why:?}");
    assert_eq!(why.len(), 5, "{why:?}");
    assert!(why[0].contains("no member's ESP address"));
    assert!(why[1].contains("family"));
    assert!(why[2].contains("the hub"));
    assert!(why[3].contains("overlaps 10.1.1.0/24, a prefix of this endpoint"));
    assert!(why[4].contains("second next hop"));
    lab.collect();
    let t = member_tables(&lab.eps[0]).pop().unwrap();
    assert_eq!(t.len(), 4);
    assert!(t.contains(&member("10.1.8.0/24", "192.0.2.18")));
}

/// Issue 15 with mpsa-04 section 4: a restarted dataplane gets the group
/// SA with today's member table, learned routes included, and routes
/// learned before the group SA came go in with it.
#[test]
fn learned_routes_survive_a_dataplane_restart_and_wait_for_the_group_sa() {
    let mut lab = Lab::new("");
    let now = lab.now;
    let l = lab.eps[1].e.learn_routes("hub", &[route("10.1.4.0/24", "192.0.2.14")]).unwrap();
    assert!(l.changed);
    lab.collect();
    assert!(member_tables(&lab.eps[1]).is_empty(), "no group yet: nothing sent");
    lab.connect_all();
    let first = member_tables(&lab.eps[1]);
    assert!(first[0].contains(&member("10.1.4.0/24", "192.0.2.14")), "installed with the group SA");
    lab.collect();
    let before = lab.eps[1].dp.len();
    lab.eps[1].e.dataplane_event(now, &cpdp::msg::Event::Hello { generation: 2, ports: vec![] });
    lab.collect();
    let again: Vec<_> = lab.eps[1].dp[before..]
        .iter()
        .filter_map(|c| match c {
            Command::InstallGroupSa { members, .. } => Some(members.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(again.len(), 1);
    assert!(again[0].contains(&member("10.1.4.0/24", "192.0.2.14")));
}

/// Only an MPSA endpoint takes learned routes, for a connection it has.
#[test]
fn learned_routes_need_an_endpoint_and_its_connection() {
    let mut lab = Lab::new("");
    assert!(matches!(lab.hub.e.learn_routes("members", &[]), Err(Error::NotMpsaEndpoint)));
    assert!(matches!(lab.eps[0].e.learn_routes("nope", &[]), Err(Error::NoConnection(_))));
    let mut off = Lab::with("", [MpsaRole::Off, MpsaRole::Endpoint, MpsaRole::Endpoint]);
    assert!(off.eps[0].e.learn_routes("hub", &[]).is_err());
}

/// mpsa-04 section 5 ("access control could be provided by filtering
/// exchanged routes at the gateway"): the hub's view gives each member up
/// now its ESP address (the IKE SA's remote), where its speaker may be
/// (its child SA's selectors) and what it may announce (the group's
/// `announce` list for it, else those selectors); a member that leaves
/// leaves the filter.
#[test]
fn the_hub_filter_holds_the_members_up_now() {
    let mut lab = Lab::new("announce = { \"c.lab\" = [\"10.1.3.0/25\"] }");
    lab.connect_all();
    let v = lab.hub.e.mpsa_member_routes();
    let ids: Vec<(&str, String)> = v.iter().map(|m| (m.id.as_str(), m.esp.to_string())).collect();
    assert_eq!(
        ids,
        [("a.lab", "192.0.2.11".to_string()), ("b.lab", "192.0.2.12".into()), ("c.lab", "192.0.2.13".into())]
    );
    assert_eq!(v[0].speakers, [p("10.1.1.0/24")]);
    assert_eq!(v[0].allowed, v[0].speakers, "by default: its selectors");
    assert_eq!(v[2].allowed, [p("10.1.3.0/25")], "the group's announce list");
    let f = member_filter(&v);
    assert!(f.contains("if from ~ 10.1.2.0/24 then {") && f.contains("if bgp_next_hop != 192.0.2.12 then"));
    assert!(f.contains("if net ~ [ 10.1.3.0/25+ ] then return true;"));
    let now = lab.now;
    lab.eps[0].e.terminate(now, "hub").unwrap();
    lab.run();
    let after: Vec<String> = lab.hub.e.mpsa_member_routes().iter().map(|m| m.id.clone()).collect();
    assert_eq!(after, ["b.lab", "c.lab"]);
    assert!(!member_filter(&lab.hub.e.mpsa_member_routes()).contains("192.0.2.11"));
}

/// A group's `announce` names members and prefixes; anything else is a
/// config error naming it.
#[test]
fn announce_lists_are_checked() {
    let g = |extra: &str| {
        toml::from_str::<controlplane::mpsa::GroupToml>(&format!("name = \"mesh\"\nmembers = [\"a.lab\"]\n{extra}"))
            .unwrap()
            .build()
    };
    assert!(g("announce = { \"a.lab\" = [\"10.1.1.0/24\"] }").is_ok());
    assert!(g("announce = { \"z.lab\" = [\"10.1.1.0/24\"] }").unwrap_err().contains("\"z.lab\" is not a member"));
    assert!(g("announce = { \"a.lab\" = [\"10.1.1.1/24\"] }").unwrap_err().contains("host bits"));
}
