//! Owned packet buffers (`rte_mbuf`) and fixed-size bursts of them.
//!
//! An [`Mbuf`] owns one reference to a single-segment mbuf and frees it on
//! drop. Data access is through byte slices: the packet starts at
//! `buf_addr + data_off` and is `data_len` long; headroom is the space in
//! front of it (where ESP and outer headers get prepended), tailroom the
//! space behind it (ESP trailer and ICV). Chained mbufs are not produced by
//! anything in this project (no scatter rx, no jumbo frames); `data()`
//! covers the first segment only.

use std::fmt;
use std::mem::MaybeUninit;
use std::ptr::NonNull;

use dpdk_sys as sys;

/// Packets per rx/tx burst: 32, as DPDK's examples and testpmd use.
pub const BURST_SIZE: usize = 32;

#[repr(transparent)]
pub struct Mbuf(NonNull<sys::rte_mbuf>);

// SAFETY: an Mbuf is the unique owner of its buffer; moving it to another
// thread moves that ownership (mbuf free is thread-safe through the pool).
unsafe impl Send for Mbuf {}

impl fmt::Debug for Mbuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mbuf")
            .field("len", &self.len())
            .field("headroom", &self.headroom())
            .field("tailroom", &self.tailroom())
            .finish()
    }
}

impl Mbuf {
    /// Takes ownership of a raw mbuf.
    ///
    /// # Safety
    /// `m` must be a valid, non-NULL mbuf that nothing else will free.
    #[inline]
    pub unsafe fn from_raw(m: *mut sys::rte_mbuf) -> Mbuf {
        // SAFETY: the caller promises m is non-NULL.
        Mbuf(unsafe { NonNull::new_unchecked(m) })
    }

    /// Gives up ownership without freeing.
    #[inline]
    pub fn into_raw(self) -> *mut sys::rte_mbuf {
        let p = self.0.as_ptr();
        std::mem::forget(self);
        p
    }

    #[inline]
    fn raw(&self) -> &sys::rte_mbuf {
        // SAFETY: we own a valid mbuf for as long as self lives.
        unsafe { self.0.as_ref() }
    }

    /// Bytes of packet data in this (first) segment.
    #[inline]
    pub fn len(&self) -> usize {
        self.raw().data_len as usize
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes of the whole packet (all segments).
    #[inline]
    pub fn pkt_len(&self) -> usize {
        self.raw().pkt_len as usize
    }

    /// The input port the packet arrived on.
    #[inline]
    pub fn port(&self) -> u16 {
        self.raw().port
    }

    #[inline]
    pub fn data(&self) -> &[u8] {
        let m = self.raw();
        // SAFETY: buf_addr+data_off..+data_len lies inside the mbuf's buffer
        // (a DPDK invariant) and we own the mbuf, so no one writes to it.
        unsafe { std::slice::from_raw_parts((m.buf_addr as *const u8).add(m.data_off as usize), m.data_len as usize) }
    }

    #[inline]
    pub fn data_mut(&mut self) -> &mut [u8] {
        let m = self.raw();
        let (addr, off, len) = (m.buf_addr as *mut u8, m.data_off as usize, m.data_len as usize);
        // SAFETY: as in data(); &mut self makes the access exclusive.
        unsafe { std::slice::from_raw_parts_mut(addr.add(off), len) }
    }

    #[inline]
    fn raw_mut(&mut self) -> &mut sys::rte_mbuf {
        // SAFETY: we own a valid mbuf; &mut self makes the access exclusive.
        unsafe { self.0.as_mut() }
    }

    /// Single segment: the room operations below are then plain field
    /// updates done here (what DPDK's inline functions do), saving a call
    /// into C per operation on the fast path. Chained mbufs (never made by
    /// this project) go through DPDK's own functions.
    #[inline]
    fn single_segment(&self) -> bool {
        self.raw().nb_segs == 1
    }

    #[inline]
    pub fn headroom(&self) -> usize {
        self.raw().data_off as usize
    }

    #[inline]
    pub fn tailroom(&self) -> usize {
        if !self.single_segment() {
            // SAFETY: reads fields of a valid mbuf.
            return unsafe { sys::shim_rte_pktmbuf_tailroom(self.0.as_ptr()) as usize };
        }
        let m = self.raw();
        (m.buf_len as usize).saturating_sub(m.data_off as usize + m.data_len as usize)
    }

    /// Grows the packet at the front by `n` bytes (taken from the headroom)
    /// and returns the new front `n` bytes, uninitialised contents;
    /// `None` (packet unchanged) if the headroom is smaller.
    #[inline]
    pub fn prepend(&mut self, n: usize) -> Option<&mut [u8]> {
        let n16 = u16::try_from(n).ok()?;
        if n > self.headroom() {
            return None;
        }
        let m = self.raw_mut();
        // As rte_pktmbuf_prepend: the first segment's data grows forward.
        m.data_off -= n16;
        m.data_len += n16;
        m.pkt_len += n16 as u32;
        let p = m.buf_addr as *mut u8;
        let off = m.data_off as usize;
        // SAFETY: [off, off + n) lies inside the buffer (it was headroom).
        Some(unsafe { std::slice::from_raw_parts_mut(p.add(off), n) })
    }

    /// Grows the packet at the end by `n` bytes (from the tailroom) and
    /// returns them; `None` (unchanged) if the tailroom is smaller.
    #[inline]
    pub fn append(&mut self, n: usize) -> Option<&mut [u8]> {
        let n16 = u16::try_from(n).ok()?;
        if !self.single_segment() {
            // SAFETY: valid owned mbuf; DPDK checks the tailroom.
            let p = unsafe { sys::shim_rte_pktmbuf_append(self.0.as_ptr(), n16) };
            // SAFETY: on success p points to n writable bytes at the old end.
            return (!p.is_null()).then(|| unsafe { std::slice::from_raw_parts_mut(p as *mut u8, n) });
        }
        if n > self.tailroom() {
            return None;
        }
        let m = self.raw_mut();
        let end = m.data_off as usize + m.data_len as usize;
        m.data_len += n16;
        m.pkt_len += n16 as u32;
        let p = m.buf_addr as *mut u8;
        // SAFETY: [end, end + n) lies inside the buffer (it was tailroom).
        Some(unsafe { std::slice::from_raw_parts_mut(p.add(end), n) })
    }

    /// Removes `n` bytes from the front (into the headroom); false
    /// (unchanged) if the packet is shorter.
    #[inline]
    pub fn adj(&mut self, n: usize) -> bool {
        let Ok(n16) = u16::try_from(n) else {
            return false;
        };
        if n > self.len() {
            return false;
        }
        let m = self.raw_mut();
        m.data_off += n16;
        m.data_len -= n16;
        m.pkt_len -= n16 as u32;
        true
    }

    /// Removes `n` bytes from the end; false (unchanged) if the packet is
    /// shorter.
    #[inline]
    pub fn trim(&mut self, n: usize) -> bool {
        let Ok(n16) = u16::try_from(n) else {
            return false;
        };
        if !self.single_segment() {
            // SAFETY: valid owned mbuf; DPDK checks the length.
            return unsafe { sys::shim_rte_pktmbuf_trim(self.0.as_ptr(), n16) == 0 };
        }
        if n > self.len() {
            return false;
        }
        let m = self.raw_mut();
        m.data_len -= n16;
        m.pkt_len -= n16 as u32;
        true
    }

    /// Empties the packet and restores the default headroom.
    pub fn reset(&mut self) {
        // SAFETY: valid owned single-segment mbuf.
        unsafe { sys::shim_rte_pktmbuf_reset(self.0.as_ptr()) }
    }

    /// Replaces the contents with `bytes`; false if they do not fit.
    pub fn copy_from(&mut self, bytes: &[u8]) -> bool {
        self.reset();
        match self.append(bytes.len()) {
            Some(dst) => {
                dst.copy_from_slice(bytes);
                true
            }
            None => false,
        }
    }
}

impl Drop for Mbuf {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: we own this mbuf and never use it again.
        unsafe { sys::shim_rte_pktmbuf_free(self.0.as_ptr()) }
    }
}

/// Up to [`BURST_SIZE`] owned mbufs in a fixed array (no heap), the unit of
/// rx and tx. Mbufs still in the burst when it drops are freed.
pub struct MbufBurst {
    pkts: [MaybeUninit<Mbuf>; BURST_SIZE],
    len: usize,
}

impl fmt::Debug for MbufBurst {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.as_slice()).finish()
    }
}

impl Default for MbufBurst {
    fn default() -> Self {
        Self::new()
    }
}

impl MbufBurst {
    pub const fn new() -> Self {
        MbufBurst { pkts: [const { MaybeUninit::uninit() }; BURST_SIZE], len: 0 }
    }

    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    #[inline]
    pub fn is_full(&self) -> bool {
        self.len == BURST_SIZE
    }

    #[inline]
    pub fn as_slice(&self) -> &[Mbuf] {
        // SAFETY: the first `len` entries are initialised.
        unsafe { std::slice::from_raw_parts(self.pkts.as_ptr() as *const Mbuf, self.len) }
    }

    #[inline]
    pub fn as_mut_slice(&mut self) -> &mut [Mbuf] {
        // SAFETY: the first `len` entries are initialised.
        unsafe { std::slice::from_raw_parts_mut(self.pkts.as_mut_ptr() as *mut Mbuf, self.len) }
    }

    /// Adds an mbuf; gives it back if the burst is full.
    #[inline]
    pub fn push(&mut self, m: Mbuf) -> Result<(), Mbuf> {
        if self.len == BURST_SIZE {
            return Err(m);
        }
        self.pkts[self.len].write(m);
        self.len += 1;
        Ok(())
    }

    /// Removes the last mbuf.
    #[inline]
    pub fn pop(&mut self) -> Option<Mbuf> {
        if self.len == 0 {
            return None;
        }
        self.len -= 1;
        // SAFETY: entry `len` was initialised and is now outside the burst.
        Some(unsafe { self.pkts[self.len].assume_init_read() })
    }

    /// Takes every mbuf out, in order; those not taken by the time the
    /// iterator drops are freed.
    #[inline]
    pub fn drain(&mut self) -> Drain<'_> {
        let end = self.len;
        // From here the burst owns nothing; the Drain owns 0..end.
        self.len = 0;
        Drain { burst: self, next: 0, end }
    }

    /// Frees every mbuf in the burst.
    #[inline]
    pub fn clear(&mut self) {
        let n = self.len;
        self.len = 0;
        for slot in &mut self.pkts[..n] {
            // SAFETY: entries below the old len were initialised; len is 0
            // now, so none is dropped twice.
            unsafe { slot.assume_init_drop() };
        }
    }

    /// Keeps the mbufs for which `keep` returns true, in order, and frees
    /// the rest.
    pub fn retain(&mut self, mut keep: impl FnMut(&mut Mbuf) -> bool) {
        let n = self.len;
        self.len = 0;
        let mut w = 0;
        for r in 0..n {
            // SAFETY: entry r < n is initialised and read exactly once.
            let mut m = unsafe { self.pkts[r].assume_init_read() };
            if keep(&mut m) {
                self.pkts[w].write(m);
                w += 1;
            }
        }
        self.len = w;
    }

    /// Raw view for DPDK burst calls: the whole pointer array and how many
    /// entries are filled. (The unfilled tail is where rx writes.)
    #[inline]
    pub(crate) fn spare_raw(&mut self) -> (&mut [*mut sys::rte_mbuf], usize) {
        let len = self.len;
        // SAFETY: MaybeUninit<Mbuf> has the layout of a pointer (Mbuf is a
        // repr(transparent) NonNull); the tail past len is uninit storage
        // that DPDK may write pointers into.
        let all =
            unsafe { std::slice::from_raw_parts_mut(self.pkts.as_mut_ptr() as *mut *mut sys::rte_mbuf, BURST_SIZE) };
        (&mut all[len..], len)
    }

    #[inline]
    pub(crate) fn raw_ptr(&mut self) -> *mut *mut sys::rte_mbuf {
        self.pkts.as_mut_ptr() as *mut *mut sys::rte_mbuf
    }

    /// # Safety
    /// Entries `0..len` must hold valid owned mbufs.
    #[inline]
    pub(crate) unsafe fn set_len(&mut self, len: usize) {
        debug_assert!(len <= BURST_SIZE);
        self.len = len;
    }

    /// Drops the first `n` entries from the burst without freeing them
    /// (their ownership went to a device) and moves the rest to the front.
    #[inline]
    pub(crate) fn consume_front(&mut self, n: usize) {
        debug_assert!(n <= self.len);
        if n == 0 {
            return;
        }
        let rest = self.len - n;
        // Entries 0..n now belong to the device; copying the remaining
        // pointers forward overwrites them without dropping.
        // SAFETY: both ranges lie inside the array; ptr::copy allows overlap.
        unsafe { std::ptr::copy(self.pkts.as_ptr().add(n), self.pkts.as_mut_ptr(), rest) };
        self.len = rest;
    }
}

/// See [`MbufBurst::drain`].
pub struct Drain<'a> {
    burst: &'a mut MbufBurst,
    next: usize,
    end: usize,
}

impl fmt::Debug for Drain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Drain({} left)", self.end - self.next)
    }
}

impl Iterator for Drain<'_> {
    type Item = Mbuf;

    #[inline]
    fn next(&mut self) -> Option<Mbuf> {
        if self.next == self.end {
            return None;
        }
        // SAFETY: entries next..end are initialised and owned by the Drain;
        // each is read exactly once.
        let m = unsafe { self.burst.pkts[self.next].assume_init_read() };
        self.next += 1;
        Some(m)
    }
}

impl Drop for Drain<'_> {
    fn drop(&mut self) {
        for m in self.by_ref() {
            drop(m);
        }
    }
}

impl Drop for MbufBurst {
    fn drop(&mut self) {
        self.clear();
    }
}
