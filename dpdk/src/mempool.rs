//! Packet mbuf pools (`rte_pktmbuf_pool_create`).
//!
//! A pool must outlive every mbuf taken from it. Rather than tie each
//! [`Mbuf`] to a lifetime (mbufs travel through device rings and other
//! lcores), dropping a [`Mempool`] frees it only when none of its mbufs is
//! in use, and otherwise leaks it deliberately.

use std::ffi::CString;
use std::fmt;
use std::ptr::NonNull;

use dpdk_sys as sys;

use crate::error::{Error, Result};
use crate::mbuf::{Mbuf, MbufBurst};

/// Default data room: 2048 bytes of packet plus the 128-byte headroom
/// (`RTE_MBUF_DEFAULT_BUF_SIZE`), enough for a 1500-byte frame after
/// encapsulation.
pub const DEFAULT_DATA_ROOM: u16 = sys::RTE_MBUF_DEFAULT_BUF_SIZE as u16;

pub struct Mempool {
    ptr: NonNull<sys::rte_mempool>,
    name: String,
}

// SAFETY: rte_mempool get/put are thread-safe (multi-producer/consumer ring
// ops by default; per-lcore caches are only touched by their own lcore).
unsafe impl Send for Mempool {}
// SAFETY: as above; no method takes &self and mutates Rust-side state.
unsafe impl Sync for Mempool {}

impl fmt::Debug for Mempool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mempool")
            .field("name", &self.name)
            .field("in_use", &self.in_use())
            .field("available", &self.available())
            .finish()
    }
}

impl Mempool {
    /// A pool of `count` packet mbufs with a per-lcore cache of `cache`
    /// and `data_room` bytes of buffer each (headroom included), on NUMA
    /// `socket` (-1: any).
    pub fn pktmbuf(name: &str, count: u32, cache: u32, data_room: u16, socket: i32) -> Result<Self> {
        let cname = CString::new(name).map_err(|_| Error::new("mempool name has NUL", 22))?;
        // SAFETY: cname is a valid C string; DPDK copies the name.
        let p = unsafe { sys::rte_pktmbuf_pool_create(cname.as_ptr(), count, cache, 0, data_room, socket) };
        NonNull::new(p)
            .map(|ptr| Mempool { ptr, name: name.to_owned() })
            .ok_or_else(|| Error::last("rte_pktmbuf_pool_create"))
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn as_ptr(&self) -> *mut sys::rte_mempool {
        self.ptr.as_ptr()
    }

    /// One mbuf, reset (empty, full headroom), or `None` when the pool is
    /// exhausted.
    pub fn alloc(&self) -> Option<Mbuf> {
        // SAFETY: the pool pointer is valid for self's life.
        let m = unsafe { sys::shim_rte_pktmbuf_alloc(self.ptr.as_ptr()) };
        // SAFETY: a non-NULL result is a fresh mbuf we now own.
        NonNull::new(m).map(|m| unsafe { Mbuf::from_raw(m.as_ptr()) })
    }

    /// Fills `burst` up to `n` more mbufs, all or none; returns whether it
    /// did.
    pub fn alloc_bulk(&self, burst: &mut MbufBurst, n: usize) -> bool {
        let (ptrs, len) = burst.spare_raw();
        let n = n.min(ptrs.len());
        // SAFETY: `ptrs` has room for n pointers; on success DPDK wrote n
        // valid mbufs, which we then hand to the burst.
        let rc = unsafe { sys::shim_rte_pktmbuf_alloc_bulk(self.ptr.as_ptr(), ptrs.as_mut_ptr(), n as u32) };
        if rc == 0 {
            // SAFETY: n fresh mbufs were written right after the filled part.
            unsafe { burst.set_len(len + n) };
            true
        } else {
            false
        }
    }

    /// Mbufs currently taken from the pool (in flight, in device rings,
    /// held by the application).
    pub fn in_use(&self) -> u32 {
        // SAFETY: read-only counters of a valid pool.
        unsafe { sys::rte_mempool_in_use_count(self.ptr.as_ptr()) }
    }

    /// Mbufs free in the pool (including per-lcore caches).
    pub fn available(&self) -> u32 {
        // SAFETY: read-only counters of a valid pool.
        unsafe { sys::rte_mempool_avail_count(self.ptr.as_ptr()) }
    }
}

impl Drop for Mempool {
    fn drop(&mut self) {
        if self.in_use() == 0 {
            // SAFETY: no mbuf of this pool is alive, so nothing can touch it.
            unsafe { sys::rte_mempool_free(self.ptr.as_ptr()) };
        }
        // Otherwise leak: a live Mbuf still points into this pool.
    }
}
