//! Our addresses as the kernel has them, for the kernel UDP transport
//! (MOBIKE, RFC 4555 3.3 and 3.10: the initiator moves when its address
//! goes): rtnetlink(7) address and link messages, parsed here as typed
//! values (never panicking: anything short or odd is a [`ParseError`]),
//! and a [`Watcher`] keeping which addresses are usable, that is present
//! on a link that is running. The socket and its thread are at the end;
//! the rest is sans-IO.
//!
//! ```text
//! nlmsghdr  | len u32 | type u16 | flags u16 | seq u32 | pid u32 |   (host order)
//! ifaddrmsg | family u8 | prefixlen u8 | flags u8 | scope u8 | index u32 | rtattrs
//! ifinfomsg | family u8 | pad u8 | type u16 | index i32 | flags u32 | change u32 | rtattrs
//! rtattr    | len u16 | type u16 | value, padded to 4 |
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

pub const NLMSG_ERROR: u16 = 2;
pub const NLMSG_DONE: u16 = 3;
pub const RTM_NEWLINK: u16 = 16;
pub const RTM_DELLINK: u16 = 17;
pub const RTM_NEWADDR: u16 = 20;
pub const RTM_DELADDR: u16 = 21;
pub const RTM_GETADDR: u16 = 22;
/// Multicast groups (the bit masks of the legacy `nl_groups` binding).
pub const RTMGRP_LINK: u32 = 0x1;
pub const RTMGRP_IPV4_IFADDR: u32 = 0x10;
pub const RTMGRP_IPV6_IFADDR: u32 = 0x100;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_DUMP: u16 = 0x300;
const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
const IFF_RUNNING: u32 = 0x40;
const AF_INET: u8 = 2;
const AF_INET6: u8 = 10;
const NLMSG_HDR: usize = 16;
const IFADDRMSG: usize = 8;
const IFINFOMSG: usize = 16;

/// One rtnetlink message, as far as the watcher cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// An address on interface `index` (RTM_NEWADDR).
    NewAddr { index: u32, addr: IpAddr },
    /// An address gone (RTM_DELADDR).
    DelAddr { index: u32, addr: IpAddr },
    /// A link's state (RTM_NEWLINK): whether it is running (carrier).
    Link { index: u32, running: bool },
    /// A link removed (RTM_DELLINK).
    DelLink { index: u32 },
    /// The end of a dump.
    Done,
    /// Anything else (errors and acknowledgements included), by type.
    Other(u16),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("netlink message truncated: {0}")]
    Truncated(&'static str),
    #[error("netlink message length {len} at offset {at} of {total}")]
    BadLength { len: usize, at: usize, total: usize },
    #[error("address family {family} with a {len}-octet address")]
    BadAddress { family: u8, len: usize },
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_ne_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

/// The messages in one datagram from the kernel, each parsed or refused.
pub fn parse(buf: &[u8]) -> Vec<Result<Message, ParseError>> {
    let mut out = Vec::new();
    let mut at = 0;
    while at + NLMSG_HDR <= buf.len() {
        let len = u32_at(buf, at) as usize;
        if len < NLMSG_HDR || at + len > buf.len() {
            out.push(Err(ParseError::BadLength { len, at, total: buf.len() }));
            return out;
        }
        let ty = u16_at(buf, at + 4);
        out.push(message(ty, &buf[at + NLMSG_HDR..at + len]));
        at += align4(len);
    }
    if at < buf.len() {
        out.push(Err(ParseError::Truncated("header")));
    }
    out
}

fn message(ty: u16, body: &[u8]) -> Result<Message, ParseError> {
    match ty {
        RTM_NEWADDR | RTM_DELADDR => {
            if body.len() < IFADDRMSG {
                return Err(ParseError::Truncated("ifaddrmsg"));
            }
            let (family, index) = (body[0], u32_at(body, 4));
            let (mut local, mut address) = (None, None);
            for (t, v) in attributes(&body[IFADDRMSG..])? {
                match t {
                    IFA_LOCAL => local = Some(v),
                    IFA_ADDRESS => address = Some(v),
                    _ => {}
                }
            }
            // IFA_LOCAL is ours where both are given (point to point:
            // IFA_ADDRESS is then the far end).
            let Some(v) = local.or(address) else { return Ok(Message::Other(ty)) };
            let addr = match (family, v.len()) {
                (AF_INET, 4) => IpAddr::V4(Ipv4Addr::new(v[0], v[1], v[2], v[3])),
                (AF_INET6, 16) => {
                    let o: [u8; 16] = v.try_into().map_err(|_| ParseError::Truncated("address"))?;
                    IpAddr::V6(Ipv6Addr::from(o))
                }
                (family, len) => return Err(ParseError::BadAddress { family, len }),
            };
            Ok(if ty == RTM_NEWADDR { Message::NewAddr { index, addr } } else { Message::DelAddr { index, addr } })
        }
        RTM_NEWLINK | RTM_DELLINK => {
            if body.len() < IFINFOMSG {
                return Err(ParseError::Truncated("ifinfomsg"));
            }
            let index = u32_at(body, 4);
            let flags = u32_at(body, 8);
            Ok(if ty == RTM_NEWLINK {
                Message::Link { index, running: flags & IFF_RUNNING != 0 }
            } else {
                Message::DelLink { index }
            })
        }
        NLMSG_DONE => Ok(Message::Done),
        other => Ok(Message::Other(other)),
    }
}

/// The (type, value) pairs of a run of rtattrs.
fn attributes(mut b: &[u8]) -> Result<Vec<(u16, &[u8])>, ParseError> {
    let mut v = Vec::new();
    while b.len() >= 4 {
        let len = u16_at(b, 0) as usize;
        if len < 4 || len > b.len() {
            return Err(ParseError::Truncated("rtattr"));
        }
        v.push((u16_at(b, 2), &b[4..len]));
        b = &b[align4(len).min(b.len())..];
    }
    Ok(v)
}

/// RTM_GETADDR for every address of every family (the initial dump).
pub fn dump_request(seq: u32) -> Vec<u8> {
    let len = NLMSG_HDR + IFADDRMSG;
    let mut b = Vec::with_capacity(len);
    b.extend_from_slice(&(len as u32).to_ne_bytes());
    b.extend_from_slice(&RTM_GETADDR.to_ne_bytes());
    b.extend_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
    b.extend_from_slice(&seq.to_ne_bytes());
    b.extend_from_slice(&0u32.to_ne_bytes());
    b.extend_from_slice(&[0u8; IFADDRMSG]);
    b
}

/// Our addresses by interface, and the interfaces whose link is down.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Watcher {
    addrs: BTreeMap<IpAddr, u32>,
    down: BTreeSet<u32>,
}

impl Watcher {
    pub fn apply(&mut self, m: &Message) {
        match *m {
            Message::NewAddr { index, addr } => {
                self.addrs.insert(addr, index);
            }
            Message::DelAddr { addr, .. } => {
                self.addrs.remove(&addr);
            }
            Message::Link { index, running } => {
                if running {
                    self.down.remove(&index);
                } else {
                    self.down.insert(index);
                }
            }
            Message::DelLink { index } => {
                self.down.remove(&index);
                self.addrs.retain(|_, i| *i != index);
            }
            Message::Done | Message::Other(_) => {}
        }
    }

    /// Addresses present on a link that is not down, in order.
    pub fn usable(&self) -> Vec<IpAddr> {
        self.addrs.iter().filter(|(_, i)| !self.down.contains(i)).map(|(a, _)| *a).collect()
    }
}

/// Watches the kernel's addresses on a thread of its own: the initial dump,
/// then every change; `report` gets the usable addresses each time they
/// change (first after the dump). A message that does not parse is logged
/// through `report_error` and skipped; what was known stays.
pub fn spawn(
    report: impl Fn(Vec<IpAddr>) + Send + 'static,
    report_error: impl Fn(String) + Send + 'static,
) -> Result<(), String> {
    use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};
    let mut s = Socket::new(NETLINK_ROUTE).map_err(|e| format!("netlink socket: {e}"))?;
    s.bind(&SocketAddr::new(0, RTMGRP_LINK | RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR))
        .map_err(|e| format!("netlink bind: {e}"))?;
    s.send_to(&dump_request(1), &SocketAddr::new(0, 0), 0).map_err(|e| format!("netlink dump request: {e}"))?;
    std::thread::Builder::new()
        .name("netlink".into())
        .spawn(move || {
            let mut w = Watcher::default();
            let mut dumped = false;
            let mut last: Option<Vec<IpAddr>> = None;
            let mut buf = vec![0u8; 1 << 16];
            while let Ok((n, _)) = s.recv_from(&mut &mut buf[..], 0) {
                for m in parse(&buf[..n.min(buf.len())]) {
                    match m {
                        Ok(Message::Done) => dumped = true,
                        Ok(m) => w.apply(&m),
                        Err(e) => report_error(e.to_string()),
                    }
                }
                let now = w.usable();
                if dumped && last.as_ref() != Some(&now) {
                    last = Some(now.clone());
                    report(now);
                }
            }
        })
        .map_err(|e| e.to_string())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nlmsg(ty: u16, body: &[u8]) -> Vec<u8> {
        let len = NLMSG_HDR + body.len();
        let mut b = Vec::new();
        b.extend_from_slice(&(len as u32).to_ne_bytes());
        b.extend_from_slice(&ty.to_ne_bytes());
        b.extend_from_slice(&[0; 10]);
        b.extend_from_slice(body);
        b.resize(align4(b.len()), 0);
        b
    }

    fn rtattr(ty: u16, v: &[u8]) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&((4 + v.len()) as u16).to_ne_bytes());
        b.extend_from_slice(&ty.to_ne_bytes());
        b.extend_from_slice(v);
        b.resize(align4(b.len()), 0);
        b
    }

    fn addr_msg(ty: u16, index: u32, a: IpAddr, peer: Option<IpAddr>) -> Vec<u8> {
        let (family, octets) = match a {
            IpAddr::V4(x) => (AF_INET, x.octets().to_vec()),
            IpAddr::V6(x) => (AF_INET6, x.octets().to_vec()),
        };
        let mut body = vec![family, 24, 0, 0];
        body.extend_from_slice(&index.to_ne_bytes());
        match peer {
            // Point to point: IFA_ADDRESS is the far end, IFA_LOCAL ours.
            Some(IpAddr::V4(p)) => {
                body.extend(rtattr(IFA_ADDRESS, &p.octets()));
                body.extend(rtattr(IFA_LOCAL, &octets));
            }
            _ => body.extend(rtattr(IFA_ADDRESS, &octets)),
        }
        nlmsg(ty, &body)
    }

    fn link_msg(index: u32, flags: u32) -> Vec<u8> {
        let mut body = vec![0u8, 0, 1, 0];
        body.extend_from_slice(&index.to_ne_bytes());
        body.extend_from_slice(&flags.to_ne_bytes());
        body.extend_from_slice(&0u32.to_ne_bytes());
        nlmsg(RTM_NEWLINK, &body)
    }

    #[test]
    fn addresses_and_links_parse_ipv4_and_ipv6() {
        let a4: IpAddr = "192.0.2.1".parse().unwrap();
        let a6: IpAddr = "2001:db8::1".parse().unwrap();
        let p4: IpAddr = "192.0.2.9".parse().unwrap();
        let mut d = addr_msg(RTM_NEWADDR, 3, a4, None);
        d.extend(addr_msg(RTM_DELADDR, 4, a6, None));
        d.extend(addr_msg(RTM_NEWADDR, 5, a4, Some(p4)));
        d.extend(link_msg(3, IFF_RUNNING | 1));
        d.extend(nlmsg(NLMSG_DONE, &[0; 4]));
        let got: Vec<Message> = parse(&d).into_iter().map(|m| m.unwrap()).collect();
        assert_eq!(
            got,
            vec![
                Message::NewAddr { index: 3, addr: a4 },
                Message::DelAddr { index: 4, addr: a6 },
                Message::NewAddr { index: 5, addr: a4 },
                Message::Link { index: 3, running: true },
                Message::Done,
            ]
        );
    }

    #[test]
    fn malformed_messages_are_errors_not_panics() {
        let good = addr_msg(RTM_NEWADDR, 3, "192.0.2.1".parse().unwrap(), None);
        for cut in 1..good.len() {
            let _ = parse(&good[..cut]);
        }
        assert!(matches!(parse(&good[..10])[..], [Err(ParseError::Truncated("header"))]));
        let mut long = good.clone();
        long[0] = 200;
        assert!(matches!(parse(&long)[..], [Err(ParseError::BadLength { len: 200, .. })]));
        // An IPv4 message with a 16-octet address.
        let mut odd = addr_msg(RTM_NEWADDR, 3, "2001:db8::1".parse().unwrap(), None);
        odd[NLMSG_HDR] = AF_INET;
        assert_eq!(parse(&odd), vec![Err(ParseError::BadAddress { family: AF_INET, len: 16 })]);
        // A truncated ifaddrmsg, and an rtattr longer than its message.
        assert_eq!(parse(&nlmsg(RTM_NEWADDR, &[2, 24])), vec![Err(ParseError::Truncated("ifaddrmsg"))]);
        let mut bad_attr = vec![2u8, 24, 0, 0, 3, 0, 0, 0];
        bad_attr.extend_from_slice(&40u16.to_ne_bytes());
        bad_attr.extend_from_slice(&IFA_ADDRESS.to_ne_bytes());
        assert_eq!(parse(&nlmsg(RTM_NEWADDR, &bad_attr)), vec![Err(ParseError::Truncated("rtattr"))]);
        assert_eq!(parse(&nlmsg(99, &[])), vec![Ok(Message::Other(99))]);
    }

    #[test]
    fn the_watcher_keeps_addresses_on_running_links() {
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.1.1".parse().unwrap());
        let mut w = Watcher::default();
        w.apply(&Message::NewAddr { index: 2, addr: a });
        w.apply(&Message::NewAddr { index: 3, addr: b });
        assert_eq!(w.usable(), vec![a, b]);
        w.apply(&Message::Link { index: 2, running: false });
        assert_eq!(w.usable(), vec![b], "no carrier: its address is not usable");
        w.apply(&Message::Link { index: 2, running: true });
        w.apply(&Message::DelAddr { index: 3, addr: b });
        assert_eq!(w.usable(), vec![a]);
        w.apply(&Message::DelLink { index: 2 });
        assert!(w.usable().is_empty());
    }

    #[test]
    fn the_dump_request_is_a_well_formed_rtm_getaddr() {
        let r = dump_request(7);
        assert_eq!(r.len(), NLMSG_HDR + IFADDRMSG);
        assert_eq!(u32_at(&r, 0) as usize, r.len());
        assert_eq!(u16_at(&r, 4), RTM_GETADDR);
        assert_eq!(u16_at(&r, 6), NLM_F_REQUEST | NLM_F_DUMP);
        assert_eq!(u32_at(&r, 8), 7);
    }
}
