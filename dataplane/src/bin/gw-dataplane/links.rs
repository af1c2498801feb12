//! Watching the ports' links (issue 16): polled from the main lcore every
//! 10 ms, so a lost uplink is seen within that and multihomed SAs move to
//! their next path at once (`TableState::set_link`); the control plane
//! hears of every change (`Event::PortLink`) to move what is not
//! multihomed (MOBIKE).

use std::time::{Duration, Instant};

use dpdk::ethdev::PortId;

const EVERY: Duration = Duration::from_millis(10);

#[derive(Debug)]
pub struct LinkWatch {
    ports: Vec<PortId>,
    /// Last state seen per port; None before the first look.
    last: Vec<Option<bool>>,
    at: Option<Instant>,
}

impl LinkWatch {
    pub fn new(ports: Vec<PortId>) -> Self {
        let n = ports.len();
        LinkWatch { ports, last: vec![None; n], at: None }
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
        for (i, id) in self.ports.iter().enumerate() {
            let up = dpdk::ethdev::link_up(*id).unwrap_or(true);
            if self.last[i] != Some(up) {
                self.last[i] = Some(up);
                v.push((i as u16, up));
            }
        }
        v
    }
}
