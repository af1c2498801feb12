//! Longest-prefix match for IPv4 and IPv6, for policies and routes.
//!
//! One hash map per prefix length in use, searched from the longest: a
//! lookup costs one hash probe per distinct length (a gateway's tables use
//! few). Addresses are handled as u128 (IPv4 in the low 32 bits).

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use rustc_hash::FxHashMap;

/// An address prefix such as `10.1.0.0/16` or `2001:db8::/32`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Prefix {
    pub addr: IpAddr,
    pub len: u8,
}

impl Prefix {
    pub fn new(addr: IpAddr, len: u8) -> Result<Prefix, String> {
        let max = if addr.is_ipv4() { 32 } else { 128 };
        if len > max {
            return Err(format!("prefix length {len} > {max}"));
        }
        // Store it masked, so 10.1.2.3/16 and 10.1.0.0/16 are one prefix.
        let bits = mask(bits_of(addr), len, max);
        let addr = match addr {
            IpAddr::V4(_) => IpAddr::V4((bits as u32).into()),
            IpAddr::V6(_) => IpAddr::V6(bits.into()),
        };
        Ok(Prefix { addr, len })
    }

    pub fn contains(&self, a: IpAddr) -> bool {
        if a.is_ipv4() != self.addr.is_ipv4() {
            return false;
        }
        let max = if a.is_ipv4() { 32 } else { 128 };
        mask(bits_of(a), self.len, max) == bits_of(self.addr)
    }
}

impl FromStr for Prefix {
    type Err = String;
    fn from_str(s: &str) -> Result<Prefix, String> {
        let (a, l) = match s.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (s, None),
        };
        let addr: IpAddr = a.parse().map_err(|_| format!("'{a}' is not an IP address"))?;
        let len = match l {
            Some(l) => l.parse().map_err(|_| format!("'{l}' is not a prefix length"))?,
            None if addr.is_ipv4() => 32,
            None => 128,
        };
        Prefix::new(addr, len)
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

fn bits_of(a: IpAddr) -> u128 {
    match a {
        IpAddr::V4(v) => u32::from(v) as u128,
        IpAddr::V6(v) => u128::from(v),
    }
}

fn mask(bits: u128, len: u8, max: u8) -> u128 {
    if len == 0 {
        return 0;
    }
    let keep = u128::MAX << (128 - len as u32);
    (bits << (128 - max as u32) & keep) >> (128 - max as u32)
}

/// A longest-prefix-match table for one address family.
#[derive(Debug, Clone)]
pub struct Lpm<T> {
    v6: bool,
    /// (length, entries), longest first.
    levels: Vec<(u8, FxHashMap<u128, T>)>,
}

impl<T> Lpm<T> {
    pub fn new_v4() -> Self {
        Lpm { v6: false, levels: Vec::new() }
    }

    pub fn new_v6() -> Self {
        Lpm { v6: true, levels: Vec::new() }
    }

    fn max(&self) -> u8 {
        if self.v6 {
            128
        } else {
            32
        }
    }

    /// Adds or replaces the entry for `p` (of this table's family).
    pub fn insert(&mut self, p: Prefix, v: T) -> Option<T> {
        debug_assert_eq!(p.addr.is_ipv6(), self.v6);
        let key = bits_of(p.addr);
        let i = match self.levels.iter().position(|(l, _)| *l <= p.len) {
            Some(i) if self.levels[i].0 == p.len => i,
            Some(i) => {
                self.levels.insert(i, (p.len, FxHashMap::default()));
                i
            }
            None => {
                self.levels.push((p.len, FxHashMap::default()));
                self.levels.len() - 1
            }
        };
        self.levels[i].1.insert(key, v)
    }

    pub fn remove(&mut self, p: Prefix) -> Option<T> {
        let key = bits_of(p.addr);
        let i = self.levels.iter().position(|(l, _)| *l == p.len)?;
        let v = self.levels[i].1.remove(&key);
        if self.levels[i].1.is_empty() {
            self.levels.remove(i);
        }
        v
    }

    /// The entry of the longest prefix containing `a`.
    #[inline]
    pub fn lookup(&self, a: IpAddr) -> Option<&T> {
        let bits = bits_of(a);
        let max = self.max();
        self.levels.iter().find_map(|(len, m)| m.get(&mask(bits, *len, max)))
    }

    pub fn len(&self) -> usize {
        self.levels.iter().map(|(_, m)| m.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.levels.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn longest_match_wins_both_families() {
        let mut t = Lpm::new_v4();
        t.insert("0.0.0.0/0".parse().unwrap(), "default");
        t.insert("10.0.0.0/8".parse().unwrap(), "ten");
        t.insert("10.1.2.3/16".parse().unwrap(), "ten-one");
        t.insert("10.1.2.3/32".parse().unwrap(), "host");
        let l = |s: &str| *t.lookup(s.parse().unwrap()).unwrap();
        assert_eq!(l("10.1.2.3"), "host");
        assert_eq!(l("10.1.9.9"), "ten-one");
        assert_eq!(l("10.2.0.1"), "ten");
        assert_eq!(l("192.0.2.1"), "default");
        assert_eq!(t.remove("10.1.0.0/16".parse().unwrap()), Some("ten-one"));
        assert_eq!(*t.lookup("10.1.9.9".parse().unwrap()).unwrap(), "ten");

        let mut t6 = Lpm::new_v6();
        t6.insert("2001:db8::/32".parse().unwrap(), 1);
        t6.insert("2001:db8:b::/48".parse().unwrap(), 2);
        assert_eq!(t6.lookup("2001:db8:b::20".parse().unwrap()), Some(&2));
        assert_eq!(t6.lookup("2001:db8:c::1".parse().unwrap()), Some(&1));
        assert_eq!(t6.lookup("2001:db9::1".parse().unwrap()), None);
    }

    #[test]
    fn prefix_parsing_errors() {
        assert!("10.0.0.0/33".parse::<Prefix>().is_err());
        assert!("10.0.0/8".parse::<Prefix>().is_err());
        assert!("::/129".parse::<Prefix>().is_err());
        assert_eq!("10.9.8.7/8".parse::<Prefix>().unwrap().to_string(), "10.0.0.0/8");
        assert!("10.0.0.0/8".parse::<Prefix>().unwrap().contains("10.255.0.1".parse().unwrap()));
        assert!(!"10.0.0.0/8".parse::<Prefix>().unwrap().contains("::1".parse().unwrap()));
    }

    proptest! {
        /// Against a linear scan over every prefix.
        #[test]
        fn matches_linear_scan(
            prefixes in prop::collection::vec((any::<u32>(), 0u8..=32), 1..40),
            probes in prop::collection::vec(any::<u32>(), 1..60),
        ) {
            let mut t = Lpm::new_v4();
            let mut all = Vec::new();
            for (i, (a, l)) in prefixes.iter().enumerate() {
                let p = Prefix::new(IpAddr::V4((*a).into()), *l).unwrap();
                t.insert(p, i);
                all.retain(|(q, _): &(Prefix, usize)| *q != p);
                all.push((p, i));
            }
            for a in probes {
                let ip = IpAddr::V4(a.into());
                let want = all.iter().filter(|(p, _)| p.contains(ip)).max_by_key(|(p, _)| p.len).map(|(_, v)| v);
                prop_assert_eq!(t.lookup(ip), want);
            }
        }
    }
}
