//! Multihoming (MOBIKE-X ADD_SA_ADDRESS): an outbound SA with several
//! outer address pairs (ours, the peer's), preferred first. It sends on
//! the first whose local address is not on a port with its link down;
//! when that link goes, the next takes over in the same table rebuild,
//! with no word from the control plane. Inbound, every path is accepted
//! already: an inbound SA is found by SPI alone.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

/// The paths of multihomed outbound SAs and the ports whose link is down.
#[derive(Debug, Default, Clone)]
pub struct Multipath {
    /// Outbound SA handle -> its paths, preferred first (two or more).
    sas: BTreeMap<u32, Vec<(IpAddr, IpAddr)>>,
    down: BTreeSet<u16>,
}

impl Multipath {
    /// Sets the paths of SA `handle`; one path (or none) makes it an
    /// ordinary SA again.
    pub fn set(&mut self, handle: u32, paths: Vec<(IpAddr, IpAddr)>) {
        if paths.len() > 1 {
            self.sas.insert(handle, paths);
        } else {
            self.sas.remove(&handle);
        }
    }

    pub fn remove(&mut self, handle: u32) {
        self.sas.remove(&handle);
    }

    pub fn clear(&mut self) {
        self.sas.clear();
    }

    /// Records port `port`'s link; true if that changed anything.
    pub fn set_link(&mut self, port: u16, up: bool) -> bool {
        if up {
            self.down.remove(&port)
        } else {
            self.down.insert(port)
        }
    }

    pub fn link_up(&self, port: u16) -> bool {
        !self.down.contains(&port)
    }

    /// The multihomed SAs' handles.
    pub fn handles(&self) -> Vec<u32> {
        self.sas.keys().copied().collect()
    }

    /// Every path of every multihomed SA.
    pub fn all_paths(&self) -> impl Iterator<Item = &(IpAddr, IpAddr)> {
        self.sas.values().flatten()
    }

    /// The path SA `handle` sends on: the first whose local address is on
    /// a port that is up (`port_of`: the port of one of our addresses;
    /// unknown counts as up); with every one down, the first. None for an
    /// SA that is not multihomed.
    pub fn choose(&self, handle: u32, port_of: impl Fn(IpAddr) -> Option<u16>) -> Option<(IpAddr, IpAddr)> {
        let paths = self.sas.get(&handle)?;
        let up = |l: IpAddr| port_of(l).is_none_or(|p| !self.down.contains(&p));
        paths.iter().find(|(l, _)| up(*l)).or(paths.first()).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn the_first_path_on_a_live_port_sends() {
        let mut m = Multipath::default();
        let p1 = (a("10.77.0.1"), a("10.77.0.2"));
        let p2 = (a("10.78.0.1"), a("10.77.0.2"));
        m.set(7, vec![p1, p2]);
        let port_of = |x: IpAddr| if x == p1.0 { Some(0) } else { Some(1) };
        assert_eq!(m.choose(7, port_of), Some(p1));
        assert!(m.set_link(0, false));
        assert!(!m.set_link(0, false), "no change");
        assert_eq!(m.choose(7, port_of), Some(p2), "the second takes over");
        m.set_link(1, false);
        assert_eq!(m.choose(7, port_of), Some(p1), "all down: the preferred");
        m.set_link(0, true);
        assert_eq!(m.choose(7, port_of), Some(p1), "back");
        assert_eq!(m.choose(8, port_of), None);
    }

    #[test]
    fn one_path_is_an_ordinary_sa() {
        let mut m = Multipath::default();
        m.set(7, vec![(a("fd77::1"), a("fd77::2"))]);
        assert!(m.handles().is_empty());
        m.set(7, vec![(a("fd77::1"), a("fd77::2")), (a("fd78::1"), a("fd77::2"))]);
        assert_eq!(m.handles(), [7]);
        m.remove(7);
        assert!(m.handles().is_empty());
    }
}
