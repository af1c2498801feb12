//! Watching the ports' links (issue 16): polled from the main lcore every
//! 10 ms, so a lost uplink is seen within that and multihomed SAs move to
//! their next path at once (`TableState::set_link`); the control plane
//! hears of every change (`Event::PortLink`) to move what is not
//! multihomed (MOBIKE).
//!
//! A port on a kernel interface (net_af_packet, net_tap: `iface=` in its
//! device string) takes the interface's operational state too: those
//! drivers report their link as up whatever the interface does.

use std::time::{Duration, Instant};

use dpdk::ethdev::PortId;

const EVERY: Duration = Duration::from_millis(10);

#[derive(Debug)]
pub struct LinkWatch {
    /// Each port, with the kernel interface under it, if any.
    ports: Vec<(PortId, Option<String>)>,
    /// Last state seen per port; None before the first look.
    last: Vec<Option<bool>>,
    at: Option<Instant>,
}

impl LinkWatch {
    pub fn new(ports: Vec<(PortId, Option<String>)>) -> Self {
        let n = ports.len();
        LinkWatch { ports, last: vec![None; n], at: None }
    }

    /// Port `i`'s link as last seen (up until first looked at).
    pub fn is_up(&self, i: usize) -> bool {
        self.last.get(i).copied().flatten().unwrap_or(true)
    }

    /// The next poll reports every port (a control plane that synced
    /// knows nothing yet).
    pub fn report_all(&mut self) {
        self.last.iter_mut().for_each(|l| *l = None);
        self.at = None;
    }

    /// The ports whose link changed since the last look (every port on
    /// the first), as (port index, up). A port that cannot say counts as up.
    pub fn poll(&mut self, now: Instant) -> Vec<(u16, bool)> {
        if self.at.is_some_and(|t| now.saturating_duration_since(t) < EVERY) {
            return Vec::new();
        }
        self.at = Some(now);
        let mut v = Vec::new();
        for (i, (id, iface)) in self.ports.iter().enumerate() {
            let up = dpdk::ethdev::link_up(*id).unwrap_or(true) && iface.as_deref().is_none_or(kernel_up);
            if self.last[i] != Some(up) {
                self.last[i] = Some(up);
                v.push((i as u16, up));
            }
        }
        v
    }
}

/// The kernel interface a virtual device runs on (`iface=NAME`).
pub fn kernel_iface(device: &str) -> Option<String> {
    device.split(',').find_map(|kv| kv.strip_prefix("iface=")).map(str::to_string)
}

/// Whether a kernel interface is operationally up (sysfs `operstate`:
/// "up", or "unknown" for interfaces that do not say, such as tun).
fn kernel_up(name: &str) -> bool {
    match std::fs::read_to_string(format!("/sys/class/net/{name}/operstate")) {
        Ok(s) => matches!(s.trim(), "up" | "unknown"),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iface_from_the_device_string() {
        assert_eq!(kernel_iface("net_af_packet0,iface=wan0,qpairs=2").as_deref(), Some("wan0"));
        assert_eq!(kernel_iface("net_tap0,iface=dtap0").as_deref(), Some("dtap0"));
        assert_eq!(kernel_iface("net_null0"), None);
        assert!(kernel_up("lo"), "lo is up (or unknown)");
        assert!(!kernel_up("no-such-interface-here"));
    }
}
