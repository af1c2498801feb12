//! BIRD's control socket protocol, the replies gw-controlplane reads
//! (what `birdc` shows, before it strips the codes): every line starts
//! with a four-digit code and `-` while more lines follow, or a space on
//! the last line; a line starting with a space continues the code before.
//! 0xxx: done; 1xxx: table entries; 2xxx: table headings; 8xxx and 9xxx:
//! run-time and parse errors. Sans-IO: lines in, typed replies out.

use std::net::IpAddr;

use super::{parse_prefix, LearnedRoute};

/// What can go wrong with a reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BirdError {
    /// A line the protocol does not have.
    Malformed { line: String, why: &'static str },
    /// BIRD refused the command (its code and words).
    Refused { code: u16, text: String },
    /// A route entry we cannot read.
    Route { line: String, why: String },
}

impl std::fmt::Display for BirdError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BirdError::Malformed { line, why } => write!(f, "BIRD sent {line:?}: {why}"),
            BirdError::Refused { code, text } => write!(f, "BIRD refused the command ({code}): {text}"),
            BirdError::Route { line, why } => write!(f, "BIRD route {line:?}: {why}"),
        }
    }
}

/// One reply being read.
#[derive(Debug, Default)]
pub struct Reply {
    /// (code, text) per line; continuation lines carry the code before.
    pub lines: Vec<(u16, String)>,
    done: Option<u16>,
}

impl Reply {
    /// Takes one line (without its newline). Ok(true) once the reply is
    /// complete; a refusal (8xxx, 9xxx) is an error then.
    pub fn feed(&mut self, line: &str) -> Result<bool, BirdError> {
        let bad = |why| BirdError::Malformed { line: line.chars().take(200).collect(), why };
        if self.done.is_some() {
            return Err(bad("a line after the end of the reply"));
        }
        if let Some(rest) = line.strip_prefix(' ') {
            let code = self.lines.last().map(|l| l.0).ok_or(bad("a continuation line first"))?;
            self.lines.push((code, rest.to_string()));
            return Ok(false);
        }
        let (head, rest) = (line.get(..4).ok_or(bad("no code"))?, line.get(5..).unwrap_or(""));
        if !head.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad("no code"));
        }
        let code: u16 = head.parse().map_err(|_| bad("no code"))?;
        let last = match line.as_bytes().get(4) {
            Some(b'-') => false,
            Some(b' ') | None => true,
            _ => return Err(bad("neither '-' nor ' ' after the code")),
        };
        self.lines.push((code, rest.to_string()));
        if last {
            self.done = Some(code);
            if code >= 8000 {
                return Err(BirdError::Refused { code, text: rest.to_string() });
            }
        }
        Ok(last)
    }

    pub fn is_done(&self) -> bool {
        self.done.is_some()
    }
}

/// One route of `show route all`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub prefix: cpdp::msg::WirePrefix,
    /// The protocol it came from.
    pub proto: String,
    /// The BGP neighbour it came from, if any.
    pub from: Option<IpAddr>,
    /// Whether it is the one BIRD chose for its prefix.
    pub primary: bool,
    pub next_hop: Option<IpAddr>,
}

/// The routes of a complete `show route all` reply.
pub fn routes(reply: &Reply) -> Result<Vec<Route>, BirdError> {
    let mut out: Vec<Route> = Vec::new();
    let mut net: Option<cpdp::msg::WirePrefix> = None;
    for (code, text) in &reply.lines {
        match code {
            // A route (or a table heading, which names no route).
            1007 => {
                if text.starts_with("Table ") {
                    net = None;
                    continue;
                }
                let r = route_line(text, net)?;
                net = Some(r.prefix);
                out.push(r);
            }
            // Attributes, one per line, of the route before.
            1008 | 1012 => {
                let t = text.trim_start();
                if let Some(v) = t.strip_prefix("BGP.next_hop:") {
                    let r = out.last_mut().ok_or_else(|| BirdError::Route {
                        line: text.clone(),
                        why: "an attribute before any route".into(),
                    })?;
                    // An IPv6 next hop may come with its link-local one.
                    let first = v.split_whitespace().next().unwrap_or("");
                    let a: IpAddr = first.parse().map_err(|_| BirdError::Route {
                        line: text.clone(),
                        why: format!("{first:?} is not an address"),
                    })?;
                    r.next_hop = Some(unmapped(a));
                }
            }
            _ => {}
        }
    }
    Ok(out)
}

/// `::ffff:a.b.c.d` (an IPv4 next hop carried in an IPv6 one) as IPv4.
fn unmapped(a: IpAddr) -> IpAddr {
    match a {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(a),
        v4 => v4,
    }
}

/// `10.1.1.0/24   unreachable [gw_hub 11:29:52.949 from 10.0.0.10] * (100/-) [i]`;
/// a second route for the same prefix starts with blanks instead.
fn route_line(text: &str, net: Option<cpdp::msg::WirePrefix>) -> Result<Route, BirdError> {
    let bad = |why: String| BirdError::Route { line: text.chars().take(200).collect(), why };
    let prefix = if text.starts_with(char::is_whitespace) {
        net.ok_or_else(|| bad("a route with no prefix before it".into()))?
    } else {
        let first = text.split_whitespace().next().unwrap_or("");
        parse_prefix(first).map_err(bad)?
    };
    let open = text.find('[').ok_or_else(|| bad("no [protocol ...]".into()))?;
    let close = text[open..].find(']').map(|i| open + i).ok_or_else(|| bad("no closing ]".into()))?;
    let inside: Vec<&str> = text[open + 1..close].split_whitespace().collect();
    let proto = inside.first().ok_or_else(|| bad("no protocol".into()))?.to_string();
    let from = match inside.iter().position(|w| *w == "from") {
        Some(i) => {
            let a = inside.get(i + 1).ok_or_else(|| bad("nothing after from".into()))?;
            Some(a.parse().map_err(|_| bad(format!("{a:?} is not an address")))?)
        }
        None => None,
    };
    let primary = text[close + 1..].split_whitespace().next() == Some("*");
    Ok(Route { prefix, proto, from, primary, next_hop: None })
}

/// What an endpoint learned from the hub: the chosen routes of its
/// session to the hub that carry a next hop, one per prefix.
pub fn learned(routes: &[Route], session: &str) -> Vec<LearnedRoute> {
    let mut out: Vec<LearnedRoute> = routes
        .iter()
        .filter(|r| r.proto == session && r.primary)
        .filter_map(|r| r.next_hop.map(|next_hop| LearnedRoute { prefix: r.prefix, next_hop }))
        .collect();
    out.sort();
    out.dedup_by_key(|r| r.prefix);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> Result<Reply, BirdError> {
        let mut r = Reply::default();
        for l in text.lines() {
            if r.feed(l)? {
                break;
            }
        }
        Ok(r)
    }

    /// What BIRD 2.0.12 sent for `show route all table master4 protocol
    /// gw_hub` on an endpoint, captured.
    const CAPTURED: &str = "1007-Table master4:\n 10.1.1.0/24          unreachable [gw_hub 11:29:52.949 from 10.0.0.10] * (100/-) [i]\n1008-\tType: BGP univ\n1012-\tBGP.origin: IGP\n \tBGP.as_path: \n \tBGP.next_hop: 192.0.2.11\n \tBGP.local_pref: 100\n \tBGP.originator_id: 10.1.1.10\n \tBGP.cluster_list: 10.0.0.10\n0000 \n";

    #[test]
    fn a_captured_reply_gives_the_prefix_and_its_esp_address() {
        let r = read(CAPTURED).unwrap();
        assert!(r.is_done());
        let rs = routes(&r).unwrap();
        assert_eq!(rs.len(), 1);
        assert_eq!(rs[0].proto, "gw_hub");
        assert_eq!(rs[0].from, Some("10.0.0.10".parse().unwrap()));
        assert!(rs[0].primary);
        let l = learned(&rs, "gw_hub");
        assert_eq!(l.len(), 1);
        assert_eq!(l[0].to_string(), "10.1.1.0/24 via 192.0.2.11");
        assert!(learned(&rs, "other").is_empty());
    }

    #[test]
    fn ipv6_second_routes_and_mapped_next_hops() {
        let text = "1007-Table master6:\n 2001:db8:2::/48      unreachable [gw_hub 12:00:00.000 from 10.0.0.10] * (100/-) [i]\n1012-\tBGP.next_hop: 2001:db8::12 fe80::1\n1007-                     unreachable [gw_lan6 12:00:00.000] (200)\n 2001:db8:3::/48      unreachable [gw_hub 12:00:00.000 from 10.0.0.10] * (100/-) [i]\n1012-\tBGP.next_hop: ::ffff:192.0.2.13\n0000 \n";
        let rs = routes(&read(text).unwrap()).unwrap();
        assert_eq!(rs.len(), 3);
        assert_eq!(rs[1].prefix, rs[0].prefix, "the second route is for the same prefix");
        assert!(!rs[1].primary && rs[1].from.is_none());
        let l = learned(&rs, "gw_hub");
        assert_eq!(l[0].next_hop, "2001:db8::12".parse::<IpAddr>().unwrap());
        assert_eq!(l[1].next_hop, "192.0.2.13".parse::<IpAddr>().unwrap(), "an IPv4-mapped next hop is IPv4");
    }

    #[test]
    fn replies_end_and_refusals_are_errors() {
        let mut r = Reply::default();
        assert_eq!(r.feed("0001 BIRD 2.0.12 ready."), Ok(true));
        assert!(r.feed("0000 ").is_err(), "nothing after the end");
        let e = read("9001 syntax error, unexpected CF_SYM_UNDEFINED").unwrap_err();
        assert_eq!(e, BirdError::Refused { code: 9001, text: "syntax error, unexpected CF_SYM_UNDEFINED".into() });
        let mut c = Reply::default();
        assert_eq!(c.feed("0002-Reading configuration from /x"), Ok(false));
        assert_eq!(c.feed("0003 Reconfigured"), Ok(true));
    }

    /// Whatever the socket sends, reading never panics and a bad line is
    /// a typed error naming it.
    #[test]
    fn malformed_lines_are_named() {
        for l in ["", "12", "abcd-x", "1007x", " first"] {
            assert!(matches!(Reply::default().feed(l), Err(BirdError::Malformed { .. })), "{l:?}");
        }
        for body in [
            "1007-10.1.1.0/24 unreachable gw_hub\n0000 ",
            "1007-10.1.1.9/24 unreachable [gw_hub]\n0000 ",
            "1007-10.1.1.0/24 unreachable [gw_hub 1 from nowhere] *\n0000 ",
            "1007-   unreachable [gw_hub]\n0000 ",
            "1012-\tBGP.next_hop: 1.2.3.4\n0000 ",
            "1007-10.1.1.0/24 unreachable [gw_hub] *\n1012-\tBGP.next_hop: x\n0000 ",
        ] {
            assert!(matches!(routes(&read(body).unwrap()), Err(BirdError::Route { .. })), "{body:?}");
        }
    }

    proptest::proptest! {
        #[test]
        fn any_text_is_read_without_panicking(lines in proptest::collection::vec("[ -~\t]{0,60}", 0..12)) {
            let mut r = Reply::default();
            for l in &lines {
                if !matches!(r.feed(l), Ok(false)) {
                    break;
                }
            }
            let _ = routes(&r);
        }
    }
}
