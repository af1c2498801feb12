//! `rte_ring`: DPDK's bounded lock-free queue of pointers, typed.
//!
//! A [`Ring<T>`] carries owned values: `Box<T>` messages between lcores, or
//! [`Mbuf`]s (the net_ring driver turns rings into ethdev ports). Created
//! multi-producer/multi-consumer, so it may be shared (`Arc`) across
//! threads. Values still queued when the ring drops are dropped with it.

use std::ffi::{c_void, CString};
use std::fmt;
use std::marker::PhantomData;
use std::ptr::NonNull;

use dpdk_sys as sys;

use crate::error::{Error, Result};
use crate::mbuf::Mbuf;

/// A value that travels through a ring as one pointer.
pub trait RingItem: Send + Sized {
    fn into_ptr(self) -> *mut c_void;
    /// # Safety
    /// `p` must come from `into_ptr` of the same type and be used once.
    unsafe fn from_ptr(p: *mut c_void) -> Self;
}

impl<T: Send> RingItem for Box<T> {
    fn into_ptr(self) -> *mut c_void {
        Box::into_raw(self) as *mut c_void
    }
    unsafe fn from_ptr(p: *mut c_void) -> Self {
        // SAFETY: the caller passes a pointer from Box::into_raw, once.
        unsafe { Box::from_raw(p as *mut T) }
    }
}

impl RingItem for Mbuf {
    fn into_ptr(self) -> *mut c_void {
        self.into_raw() as *mut c_void
    }
    unsafe fn from_ptr(p: *mut c_void) -> Self {
        // SAFETY: the caller passes a pointer from Mbuf::into_raw, once.
        unsafe { Mbuf::from_raw(p as *mut sys::rte_mbuf) }
    }
}

pub struct Ring<T: RingItem> {
    ptr: NonNull<sys::rte_ring>,
    name: String,
    _items: PhantomData<T>,
}

// SAFETY: the ring is created MP/MC, so concurrent enqueue and dequeue from
// any threads are what rte_ring is built for; items are Send.
unsafe impl<T: RingItem> Send for Ring<T> {}
// SAFETY: as above.
unsafe impl<T: RingItem> Sync for Ring<T> {}

impl<T: RingItem> fmt::Debug for Ring<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ring").field("name", &self.name).field("len", &self.len()).finish()
    }
}

impl<T: RingItem> Ring<T> {
    /// A ring holding up to `count - 1` items (`count` a power of two, as
    /// rte_ring requires), named `name` (unique per process).
    pub fn create(name: &str, count: u32, socket: i32) -> Result<Self> {
        let cname = CString::new(name).map_err(|_| Error::new("ring name has NUL", 22))?;
        // SAFETY: valid C string; flags 0 = multi-producer/multi-consumer.
        let p = unsafe { sys::rte_ring_create(cname.as_ptr(), count, socket, 0) };
        NonNull::new(p)
            .map(|ptr| Ring { ptr, name: name.to_owned(), _items: PhantomData })
            .ok_or_else(|| Error::last("rte_ring_create"))
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn as_ptr(&self) -> *mut sys::rte_ring {
        self.ptr.as_ptr()
    }

    /// Queues `item`, or gives it back when the ring is full.
    pub fn enqueue(&self, item: T) -> std::result::Result<(), T> {
        let p = item.into_ptr();
        let objs = [p];
        // SAFETY: valid ring; one pointer to enqueue.
        let n = unsafe { sys::shim_rte_ring_enqueue_burst(self.ptr.as_ptr(), objs.as_ptr(), 1, std::ptr::null_mut()) };
        if n == 1 {
            Ok(())
        } else {
            // SAFETY: not enqueued, so we still own p, which came from into_ptr.
            Err(unsafe { T::from_ptr(p) })
        }
    }

    /// Takes the oldest item, if any.
    pub fn dequeue(&self) -> Option<T> {
        let mut objs = [std::ptr::null_mut::<c_void>()];
        // SAFETY: valid ring; room for one pointer.
        let n =
            unsafe { sys::shim_rte_ring_dequeue_burst(self.ptr.as_ptr(), objs.as_mut_ptr(), 1, std::ptr::null_mut()) };
        // SAFETY: a dequeued pointer was enqueued by into_ptr of a T.
        (n == 1).then(|| unsafe { T::from_ptr(objs[0]) })
    }

    /// Items queued now.
    pub fn len(&self) -> usize {
        // SAFETY: read-only query of a valid ring.
        unsafe { sys::shim_rte_ring_count(self.ptr.as_ptr()) as usize }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<T: RingItem> Drop for Ring<T> {
    fn drop(&mut self) {
        while self.dequeue().is_some() {}
        // SAFETY: &mut self: no one else uses the ring any more.
        unsafe { sys::rte_ring_free(self.ptr.as_ptr()) }
    }
}
