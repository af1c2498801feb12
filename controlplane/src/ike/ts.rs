//! Traffic selectors: narrowing (RFC 7296 2.9) and the prefixes the
//! dataplane's policy table and inbound checks take.
//!
//! The dataplane matches addresses only; a selector's protocol and ports
//! are negotiated and shown, and the address ranges are enforced.

use std::net::IpAddr;

use cpdp::msg::WirePrefix;

use crate::wire::TrafficSelector;

/// An address prefix as operators write it (`10.1.0.0/16`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Prefix {
    pub addr: IpAddr,
    pub len: u8,
}

impl std::str::FromStr for Prefix {
    type Err = String;

    fn from_str(s: &str) -> Result<Prefix, String> {
        let (a, l) = match s.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (s, None),
        };
        let addr: IpAddr = a.parse().map_err(|_| format!("{s:?} is not an address or prefix"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let len = match l {
            Some(l) => {
                l.parse::<u8>().ok().filter(|&n| n <= max).ok_or_else(|| format!("bad prefix length in {s:?}"))?
            }
            None => max,
        };
        Ok(Prefix { addr, len })
    }
}

impl TryFrom<String> for Prefix {
    type Error = String;
    fn try_from(s: String) -> Result<Prefix, String> {
        s.parse()
    }
}

impl From<Prefix> for String {
    fn from(p: Prefix) -> String {
        format!("{}/{}", p.addr, p.len)
    }
}

impl std::fmt::Display for Prefix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

fn to_u128(a: IpAddr) -> u128 {
    match a {
        IpAddr::V4(a) => u32::from(a) as u128,
        IpAddr::V6(a) => u128::from(a),
    }
}

fn from_u128(v: u128, v6: bool) -> IpAddr {
    if v6 {
        IpAddr::V6(v.into())
    } else {
        IpAddr::V4((v as u32).into())
    }
}

impl Prefix {
    fn bits(&self) -> u32 {
        if self.addr.is_ipv4() {
            32
        } else {
            128
        }
    }

    /// The selector for every protocol and port of this prefix.
    pub fn to_ts(self) -> TrafficSelector {
        let bits = self.bits();
        let host = bits - self.len as u32;
        let mask: u128 = if host >= 128 { u128::MAX } else { (1u128 << host) - 1 };
        let start = to_u128(self.addr) & !mask;
        let end = start | mask;
        let v6 = self.addr.is_ipv6();
        let (start, end) = if v6 { (start, end) } else { (start & 0xffff_ffff, end & 0xffff_ffff) };
        TrafficSelector {
            protocol: 0,
            start_port: 0,
            end_port: 0xffff,
            start: from_u128(start, v6),
            end: from_u128(end, v6),
        }
    }
}

/// The intersection of two selectors, if not empty (same family only).
pub fn intersect(a: &TrafficSelector, b: &TrafficSelector) -> Option<TrafficSelector> {
    if a.start.is_ipv6() != b.start.is_ipv6() {
        return None;
    }
    let protocol = match (a.protocol, b.protocol) {
        (0, p) | (p, 0) => p,
        (p, q) if p == q => p,
        _ => return None,
    };
    let start_port = a.start_port.max(b.start_port);
    let end_port = a.end_port.min(b.end_port);
    let start = to_u128(a.start).max(to_u128(b.start));
    let end = to_u128(a.end).min(to_u128(b.end));
    if start > end || start_port > end_port {
        return None;
    }
    let v6 = a.start.is_ipv6();
    Some(TrafficSelector { protocol, start_port, end_port, start: from_u128(start, v6), end: from_u128(end, v6) })
}

/// RFC 7296 2.9: the responder narrows the proposed selectors to its
/// policy. Every intersection of a proposed selector with a configured one
/// is kept; none means TS_UNACCEPTABLE.
pub fn narrow(proposed: &[TrafficSelector], policy: &[TrafficSelector]) -> Vec<TrafficSelector> {
    let mut out = Vec::new();
    for p in proposed {
        for c in policy {
            if let Some(i) = intersect(p, c) {
                if !out.contains(&i) {
                    out.push(i);
                }
            }
        }
    }
    out
}

/// Whether every selector in `inner` lies inside one of `outer` (an
/// initiator checks the responder only narrowed).
pub fn within(inner: &[TrafficSelector], outer: &[TrafficSelector]) -> bool {
    inner.iter().all(|i| outer.iter().any(|o| intersect(i, o).as_ref() == Some(i)))
}

/// Whether address `a` lies in one of the selectors' address ranges.
pub fn covers(ts: &[TrafficSelector], a: IpAddr) -> bool {
    ts.iter().any(|t| t.start.is_ipv4() == a.is_ipv4() && t.start <= a && a <= t.end)
}

/// The selector of one address, every protocol and port (a transport-mode
/// child SA's, RFC 7296 1.3.1).
pub fn host(a: IpAddr) -> TrafficSelector {
    Prefix { addr: a, len: if a.is_ipv4() { 32 } else { 128 } }.to_ts()
}

/// The smallest list of prefixes covering a selector's address range, in
/// address order, made as it is read (no list kept).
pub fn to_prefixes(ts: &TrafficSelector) -> Prefixes {
    let v6 = ts.start.is_ipv6();
    Prefixes { next: Some(to_u128(ts.start)), end: to_u128(ts.end), v6, made: 0 }
}

/// The prefixes of one selector's range ([`to_prefixes`]).
#[derive(Debug, Clone)]
pub struct Prefixes {
    /// Where the next prefix starts; `None` once the range is covered.
    next: Option<u128>,
    end: u128,
    v6: bool,
    made: usize,
}

impl Iterator for Prefixes {
    type Item = WirePrefix;

    fn next(&mut self) -> Option<WirePrefix> {
        let start = self.next.filter(|s| *s <= self.end)?;
        // A pathological range: the covering set is too long for a policy
        // table; what is covered is enough for the dataplane.
        if self.made > 64 {
            self.next = None;
            return None;
        }
        let bits: u32 = if self.v6 { 128 } else { 32 };
        let span = |size: u32| if size >= 128 { u128::MAX } else { (1u128 << size) - 1 };
        // The largest aligned block starting at `start` that fits.
        let mut size = if start == 0 { bits } else { start.trailing_zeros().min(bits) };
        while size > 0 && start.checked_add(span(size)).is_none_or(|e| e > self.end) {
            size -= 1;
        }
        self.made += 1;
        self.next = start.checked_add(span(size)).and_then(|e| e.checked_add(1));
        Some(WirePrefix { addr: from_u128(start, self.v6), len: (bits - size) as u8 })
    }
}

pub fn ts_text(ts: &TrafficSelector) -> String {
    let p: Vec<WirePrefix> = to_prefixes(ts).collect();
    let addrs = if p.len() == 1 { format!("{}/{}", p[0].addr, p[0].len) } else { format!("{}-{}", ts.start, ts.end) };
    if ts.protocol == 0 && ts.start_port == 0 && ts.end_port == 0xffff {
        addrs
    } else {
        format!("{addrs}[{}/{}-{}]", ts.protocol, ts.start_port, ts.end_port)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> TrafficSelector {
        s.parse::<Prefix>().unwrap().to_ts()
    }

    #[test]
    fn narrowing_keeps_the_overlap() {
        let got = narrow(&[p("10.0.0.0/8")], &[p("10.77.1.0/24"), p("192.168.0.0/16")]);
        assert_eq!(got, vec![p("10.77.1.0/24")]);
        assert!(narrow(&[p("10.0.0.0/8")], &[p("192.168.0.0/16")]).is_empty());
        assert!(narrow(&[p("::/0")], &[p("10.0.0.0/8")]).is_empty());
        let mut tcp = p("10.77.1.0/24");
        tcp.protocol = 6;
        assert_eq!(narrow(&[tcp], &[p("10.0.0.0/8")]), vec![tcp]);
        assert!(within(&[p("10.77.1.0/24")], &[p("10.0.0.0/8")]));
        assert!(!within(&[p("10.0.0.0/8")], &[p("10.77.1.0/24")]));
    }

    #[test]
    fn ranges_become_prefixes() {
        assert_eq!(
            to_prefixes(&p("10.77.1.0/24")).collect::<Vec<_>>(),
            vec![WirePrefix { addr: "10.77.1.0".parse().unwrap(), len: 24 }]
        );
        assert_eq!(
            to_prefixes(&p("0.0.0.0/0")).collect::<Vec<_>>(),
            vec![WirePrefix { addr: "0.0.0.0".parse().unwrap(), len: 0 }]
        );
        assert_eq!(
            to_prefixes(&p("::/0")).collect::<Vec<_>>(),
            vec![WirePrefix { addr: "::".parse().unwrap(), len: 0 }]
        );
        let r =
            TrafficSelector { start: "10.0.0.1".parse().unwrap(), end: "10.0.0.6".parse().unwrap(), ..p("1.1.1.1") };
        let got: Vec<String> = to_prefixes(&r).map(|w| format!("{}/{}", w.addr, w.len)).collect();
        assert_eq!(got, ["10.0.0.1/32", "10.0.0.2/31", "10.0.0.4/31", "10.0.0.6/32"]);
        // The whole IPv4 space but its ends: 62 prefixes; all of IPv6 but
        // its ends would take 254, and stops at 65.
        let v4 = TrafficSelector { start: "0.0.0.1".parse().unwrap(), end: "255.255.255.254".parse().unwrap(), ..r };
        assert_eq!(to_prefixes(&v4).count(), 62);
        let v6 = TrafficSelector {
            start: "::1".parse().unwrap(),
            end: "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe".parse().unwrap(),
            ..r
        };
        assert_eq!(to_prefixes(&v6).count(), 65);
        // Everything but the last address would be /1, /2 .. /128: it
        // stops at the 65th.
        let tail = TrafficSelector { start: "::".parse().unwrap(), end: v6.end, ..r };
        let lens: Vec<u8> = to_prefixes(&tail).map(|p| p.len).collect();
        assert_eq!(lens, (1..=65).collect::<Vec<u8>>(), "in order, then stopped");
        assert_eq!(ts_text(&p("10.77.1.0/24")), "10.77.1.0/24");
        assert!("10.0.0.0/33".parse::<Prefix>().is_err());
    }
}
