//! Ethernet devices: configure a port with N rx and tx queues (RSS across
//! the rx queues when there are several), start it, hand out its queues,
//! read its counters, stop and close it.
//!
//! A queue may be polled by one thread only, so [`Port::take_queues`] hands
//! each queue out once, by value. Queues keep the port alive: it is stopped
//! and closed when the [`Port`] and every queue handle are gone.

use std::ffi::CString;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use dpdk_sys as sys;

use crate::error::{Error, Result};
use crate::mbuf::{Mbuf, MbufBurst};
use crate::mempool::Mempool;
use crate::ring::Ring;

#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PortId(pub u16);

impl fmt::Debug for PortId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "port{}", self.0)
    }
}

impl fmt::Display for PortId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl PortId {
    /// Every port the EAL probed (PCI devices and --vdev devices), in order.
    pub fn all() -> Vec<PortId> {
        (0..sys::RTE_MAX_ETHPORTS as u16)
            // SAFETY: plain validity query.
            .filter(|&p| unsafe { sys::rte_eth_dev_is_valid_port(p) } == 1)
            .map(PortId)
            .collect()
    }

    /// The most rx and tx queues the device offers.
    pub fn max_queues(self) -> Result<(u16, u16)> {
        let mut info = sys::rte_eth_dev_info::default();
        // SAFETY: valid out-pointer; DPDK validates the port id.
        Error::from_rc("rte_eth_dev_info_get", unsafe { sys::rte_eth_dev_info_get(self.0, &mut info) })?;
        Ok((info.max_rx_queues, info.max_tx_queues))
    }

    /// The port of a device by its name (e.g. `net_pcap0`, `0000:03:00.0`).
    pub fn by_name(name: &str) -> Result<PortId> {
        let cname = CString::new(name).map_err(|_| Error::new("device name has NUL", 22))?;
        let mut id = 0u16;
        // SAFETY: valid C string and out-pointer.
        let rc = unsafe { sys::rte_eth_dev_get_port_by_name(cname.as_ptr(), &mut id) };
        Error::from_rc("rte_eth_dev_get_port_by_name", rc)?;
        Ok(PortId(id))
    }

    /// A port whose rx queue i reads `rx[i]` and tx queue i writes `tx[i]`
    /// (the net_ring driver). Connecting two ports crosswise makes a wire.
    pub fn from_rings(name: &str, rx: &[Arc<Ring<Mbuf>>], tx: &[Arc<Ring<Mbuf>>]) -> Result<(PortId, RingWire)> {
        let cname = CString::new(name).map_err(|_| Error::new("device name has NUL", 22))?;
        let rxp: Vec<_> = rx.iter().map(|r| r.as_ptr()).collect();
        let txp: Vec<_> = tx.iter().map(|r| r.as_ptr()).collect();
        // SAFETY: arrays of valid ring pointers with their lengths; the rings
        // are kept alive by the returned RingWire, which the caller holds
        // together with the port.
        let rc = unsafe {
            sys::rte_eth_from_rings(cname.as_ptr(), rxp.as_ptr(), rxp.len() as u32, txp.as_ptr(), txp.len() as u32, 0)
        };
        if rc < 0 {
            return Err(Error::last("rte_eth_from_rings"));
        }
        Ok((PortId(rc as u16), RingWire { _rings: rx.iter().chain(tx).cloned().collect() }))
    }
}

/// Keeps the rings behind a net_ring port alive; hand it to
/// [`Port::configure_with`] so it lives as long as the port.
pub struct RingWire {
    _rings: Vec<Arc<Ring<Mbuf>>>,
}

impl fmt::Debug for RingWire {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RingWire")
    }
}

/// How to set a port up.
#[derive(Debug, Clone)]
pub struct PortConfig {
    pub rx_queues: u16,
    pub tx_queues: u16,
    /// Descriptors per rx / tx queue (adjusted to the device's limits).
    pub rx_desc: u16,
    pub tx_desc: u16,
    /// Spread rx over the queues by a hash of the IP addresses (outer
    /// addresses for ESP, so one SA stays on one queue). Ignored with one
    /// queue or on devices without RSS.
    pub rss: bool,
    pub promiscuous: bool,
}

impl Default for PortConfig {
    fn default() -> Self {
        PortConfig { rx_queues: 1, tx_queues: 1, rx_desc: 1024, tx_desc: 1024, rss: true, promiscuous: true }
    }
}

/// Port counters (`rte_eth_stats`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PortStats {
    pub ipackets: u64,
    pub opackets: u64,
    pub ibytes: u64,
    pub obytes: u64,
    /// Dropped by the device: rx queue full.
    pub imissed: u64,
    pub ierrors: u64,
    pub oerrors: u64,
    /// Rx failed to get an mbuf.
    pub rx_nombuf: u64,
}

struct PortInner {
    id: PortId,
    started: AtomicBool,
    _wire: Option<RingWire>,
    _pool: Arc<Mempool>,
}

impl Drop for PortInner {
    fn drop(&mut self) {
        // SAFETY: the last handle to the port is going away; no queue can be
        // polled any more.
        unsafe {
            if self.started.load(Ordering::SeqCst) {
                sys::rte_eth_dev_stop(self.id.0);
            }
            sys::rte_eth_dev_close(self.id.0);
        }
    }
}

/// A configured port. See the module docs.
pub struct Port {
    inner: Arc<PortInner>,
    rxq: u16,
    txq: u16,
    queues_taken: bool,
    rss_active: bool,
}

impl fmt::Debug for Port {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Port")
            .field("id", &self.inner.id)
            .field("rx_queues", &self.rxq)
            .field("tx_queues", &self.txq)
            .field("rss", &self.rss_active)
            .finish()
    }
}

impl Port {
    /// Configures `id` with `conf`, receiving into mbufs from `pool`.
    pub fn configure(id: PortId, conf: &PortConfig, pool: Arc<Mempool>) -> Result<Port> {
        Self::configure_with(id, conf, pool, None)
    }

    /// As [`Port::configure`], keeping `wire` (a net_ring port's rings)
    /// alive as long as the port.
    pub fn configure_with(id: PortId, conf: &PortConfig, pool: Arc<Mempool>, wire: Option<RingWire>) -> Result<Port> {
        let p = id.0;
        let mut info = sys::rte_eth_dev_info::default();
        // SAFETY: valid out-pointer; DPDK validates the port id.
        Error::from_rc("rte_eth_dev_info_get", unsafe { sys::rte_eth_dev_info_get(p, &mut info) })?;
        if conf.rx_queues == 0 || conf.rx_queues > info.max_rx_queues {
            return Err(Error::new("rx queue count outside the device's range", 22));
        }
        if conf.tx_queues == 0 || conf.tx_queues > info.max_tx_queues {
            return Err(Error::new("tx queue count outside the device's range", 22));
        }
        let mut eth = sys::rte_eth_conf::default();
        let rss_hf = dpdk_sys::rss::RTE_ETH_RSS_IP & info.flow_type_rss_offloads;
        let rss_active = conf.rss && conf.rx_queues > 1 && rss_hf != 0;
        if rss_active {
            eth.rxmode.mq_mode = sys::RTE_ETH_MQ_RX_RSS;
            eth.rx_adv_conf.rss_conf.rss_hf = rss_hf;
        }
        // SAFETY: eth is a valid, fully initialised config.
        Error::from_rc("rte_eth_dev_configure", unsafe {
            sys::rte_eth_dev_configure(p, conf.rx_queues, conf.tx_queues, &eth)
        })?;
        let inner = Arc::new(PortInner { id, started: AtomicBool::new(false), _wire: wire, _pool: pool.clone() });
        let (mut nrx, mut ntx) = (conf.rx_desc, conf.tx_desc);
        // SAFETY: valid in/out pointers.
        Error::from_rc("rte_eth_dev_adjust_nb_rx_tx_desc", unsafe {
            sys::rte_eth_dev_adjust_nb_rx_tx_desc(p, &mut nrx, &mut ntx)
        })?;
        // SAFETY: plain query.
        let socket = unsafe { sys::rte_eth_dev_socket_id(p) };
        let socket = if socket < 0 { 0 } else { socket as u32 };
        for q in 0..conf.rx_queues {
            // SAFETY: queue index in range; NULL conf = device defaults; the
            // pool outlives the port (held in PortInner).
            Error::from_rc("rte_eth_rx_queue_setup", unsafe {
                sys::rte_eth_rx_queue_setup(p, q, nrx, socket, std::ptr::null(), pool.as_ptr())
            })?;
        }
        for q in 0..conf.tx_queues {
            // SAFETY: queue index in range; NULL conf = device defaults.
            Error::from_rc("rte_eth_tx_queue_setup", unsafe {
                sys::rte_eth_tx_queue_setup(p, q, ntx, socket, std::ptr::null())
            })?;
        }
        if conf.promiscuous {
            // Not every virtual device implements it; that is not an error.
            // SAFETY: plain device call.
            let _ = unsafe { sys::rte_eth_promiscuous_enable(p) };
        }
        Ok(Port { inner, rxq: conf.rx_queues, txq: conf.tx_queues, queues_taken: false, rss_active })
    }

    pub fn id(&self) -> PortId {
        self.inner.id
    }

    /// Whether rx is spread over several queues by RSS.
    pub fn rss_active(&self) -> bool {
        self.rss_active
    }

    pub fn start(&self) -> Result<()> {
        // SAFETY: configured port.
        Error::from_rc("rte_eth_dev_start", unsafe { sys::rte_eth_dev_start(self.inner.id.0) })?;
        self.inner.started.store(true, Ordering::SeqCst);
        Ok(())
    }

    /// Stops the port (rx and tx cease; queued mbufs are freed).
    pub fn stop(&self) -> Result<()> {
        if self.inner.started.swap(false, Ordering::SeqCst) {
            // SAFETY: started port.
            Error::from_rc("rte_eth_dev_stop", unsafe { sys::rte_eth_dev_stop(self.inner.id.0) })?;
        }
        Ok(())
    }

    /// Every rx and tx queue, once; `None` the second time.
    pub fn take_queues(&mut self) -> Option<(Vec<RxQueue>, Vec<TxQueue>)> {
        if self.queues_taken {
            return None;
        }
        self.queues_taken = true;
        let rx = (0..self.rxq).map(|q| RxQueue { port: self.inner.clone(), queue: q }).collect();
        let tx = (0..self.txq).map(|q| TxQueue { port: self.inner.clone(), queue: q }).collect();
        Some((rx, tx))
    }

    pub fn stats(&self) -> Result<PortStats> {
        stats(self.inner.id)
    }

    /// Whether the link is up now.
    pub fn link_up(&self) -> Result<bool> {
        link_up(self.inner.id)
    }

    pub fn mac(&self) -> Result<[u8; 6]> {
        let mut a = sys::rte_ether_addr::default();
        // SAFETY: valid out-pointer.
        Error::from_rc("rte_eth_macaddr_get", unsafe { sys::rte_eth_macaddr_get(self.inner.id.0, &mut a) })?;
        Ok(a.addr_bytes)
    }

    /// The device name (`net_pcap0`, a PCI address, ...).
    pub fn name(&self) -> String {
        port_name(self.inner.id)
    }
}

/// The device name of any port, or `portN` if it has none.
pub fn port_name(id: PortId) -> String {
    let mut buf = [0 as std::ffi::c_char; sys::RTE_ETH_NAME_MAX_LEN as usize];
    // SAFETY: buffer of the size DPDK documents as the maximum.
    let rc = unsafe { sys::rte_eth_dev_get_name_by_port(id.0, buf.as_mut_ptr()) };
    if rc < 0 {
        return format!("port{}", id.0);
    }
    // SAFETY: DPDK wrote a NUL-terminated name into buf.
    unsafe { std::ffi::CStr::from_ptr(buf.as_ptr()) }.to_string_lossy().into_owned()
}

/// Whether a port's link is up now (without waiting for negotiation).
pub fn link_up(id: PortId) -> Result<bool> {
    let mut l = sys::rte_eth_link::default();
    // SAFETY: valid out-pointer; DPDK validates the port id.
    Error::from_rc("rte_eth_link_get_nowait", unsafe { sys::rte_eth_link_get_nowait(id.0, &mut l) })?;
    Ok(l.link_status() != 0)
}

/// Counters of any port, by id.
pub fn stats(id: PortId) -> Result<PortStats> {
    let mut s = sys::rte_eth_stats::default();
    // SAFETY: valid out-pointer.
    Error::from_rc("rte_eth_stats_get", unsafe { sys::rte_eth_stats_get(id.0, &mut s) })?;
    Ok(PortStats {
        ipackets: s.ipackets,
        opackets: s.opackets,
        ibytes: s.ibytes,
        obytes: s.obytes,
        imissed: s.imissed,
        ierrors: s.ierrors,
        oerrors: s.oerrors,
        rx_nombuf: s.rx_nombuf,
    })
}

/// One rx queue of a port; poll it from one thread.
pub struct RxQueue {
    port: Arc<PortInner>,
    queue: u16,
}

impl fmt::Debug for RxQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RxQueue({:?}/{})", self.port.id, self.queue)
    }
}

impl RxQueue {
    pub fn port(&self) -> PortId {
        self.port.id
    }

    pub fn queue(&self) -> u16 {
        self.queue
    }

    /// Receives into the free tail of `burst`; returns how many arrived.
    #[inline]
    pub fn rx_burst(&mut self, burst: &mut MbufBurst) -> usize {
        let (spare, len) = burst.spare_raw();
        // SAFETY: `spare` has room for spare.len() pointers; the queue is
        // polled only here (&mut self, one owner); DPDK writes n owned mbufs.
        let n =
            unsafe { sys::shim_rte_eth_rx_burst(self.port.id.0, self.queue, spare.as_mut_ptr(), spare.len() as u16) }
                as usize;
        // SAFETY: the first len + n entries now hold owned mbufs.
        unsafe { burst.set_len(len + n) };
        n
    }
}

/// One tx queue of a port; use it from one thread.
pub struct TxQueue {
    port: Arc<PortInner>,
    queue: u16,
}

impl fmt::Debug for TxQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TxQueue({:?}/{})", self.port.id, self.queue)
    }
}

impl TxQueue {
    pub fn port(&self) -> PortId {
        self.port.id
    }

    pub fn queue(&self) -> u16 {
        self.queue
    }

    /// Sends from the front of `burst`; the sent mbufs leave it and what the
    /// device did not take stays, moved to the front. Returns how many went.
    #[inline]
    pub fn tx_burst(&mut self, burst: &mut MbufBurst) -> usize {
        let len = burst.len();
        // SAFETY: the first len pointers are owned mbufs; DPDK takes
        // ownership of the first n it returns; one owner uses this queue.
        let n = unsafe { sys::shim_rte_eth_tx_burst(self.port.id.0, self.queue, burst.raw_ptr(), len as u16) } as usize;
        burst.consume_front(n);
        n
    }
}
