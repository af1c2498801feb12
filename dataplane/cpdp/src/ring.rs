//! A single-producer single-consumer ring of variable-length messages in a
//! shared-memory file.
//!
//! Layout (all little-endian, the file is only shared on one machine):
//!
//! ```text
//! offset 0    magic u64 | version u32 | pad | capacity u64 | generation u64
//! offset 64   head u64   (bytes ever written; only the producer stores)
//! offset 128  tail u64   (bytes ever consumed; only the consumer stores)
//! offset 192  dropped u64 (messages the producer could not fit)
//! offset 256  data[capacity]   (capacity a power of two)
//! ```
//!
//! A record is a u32 length then the message, padded to 8 octets. A record
//! never wraps: if it does not fit before the end of the data area the
//! producer writes a wrap marker (length `u32::MAX`) and starts the record
//! at the beginning. The producer publishes with a release store of `head`
//! after writing the record; the consumer reads `head` with acquire, reads
//! the record, then releases the space with a store of `tail`. Positions
//! only grow (u64 never wraps in practice), so `head - tail` is the fill.
//!
//! Both positions live in the file: either process can restart and carry on
//! where the ring stands. `generation` is the dataplane's start count, so
//! the control plane notices a restarted dataplane.

use std::fs::OpenOptions;
use std::path::Path;

#[cfg(loom)]
use loom::sync::atomic::{AtomicU64, Ordering};
#[cfg(not(loom))]
use std::sync::atomic::{AtomicU64, Ordering};

/// "GWRING01" as a little-endian u64.
const MAGIC: u64 = u64::from_le_bytes(*b"GWRING01");
const VERSION: u32 = 1;
const DATA_OFFSET: usize = 256;
const WRAP: u32 = u32::MAX;
/// Largest message: a jumbo frame punted with its metadata fits.
pub const MAX_MESSAGE: usize = 16 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum RingError {
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("{path}: not a gateway ring (bad magic or version)")]
    BadHeader { path: String },
    #[error(
        "{path}: capacity {capacity} is not a power of two between 4 KiB and 1 GiB, or does not match the file size"
    )]
    BadCapacity { path: String, capacity: u64 },
    #[error("message of {0} octets is larger than the ring allows ({MAX_MESSAGE})")]
    TooLarge(usize),
    #[error("ring full")]
    Full,
}

/// The header as it lies in the mapped file.
#[repr(C)]
struct Header {
    magic: AtomicU64,
    version_capacity: [u64; 2],
    generation: AtomicU64,
    _pad0: [u64; 4],
    head: AtomicU64,
    _pad1: [u64; 7],
    tail: AtomicU64,
    _pad2: [u64; 7],
    dropped: AtomicU64,
    _pad3: [u64; 7],
}

/// The mapped memory: a file mapping in production, a heap block under loom.
struct Mem {
    #[cfg(not(loom))]
    _map: memmap2::MmapMut,
    #[cfg(loom)]
    _heap: Box<[u64]>,
    base: *mut u8,
    capacity: u64,
}

// SAFETY: the memory is shared by design; every access to it goes through
// the atomics protocol documented above (one producer, one consumer).
unsafe impl Send for Mem {}

impl Mem {
    fn header(&self) -> &Header {
        // SAFETY: base points to at least DATA_OFFSET bytes, 8-aligned
        // (page-aligned mapping), and Header is repr(C) of atomics only.
        unsafe { &*(self.base as *const Header) }
    }

    /// Bytes queued now.
    fn fill(&self) -> u64 {
        let h = self.header();
        h.head.load(Ordering::Acquire).saturating_sub(h.tail.load(Ordering::Acquire))
    }

    fn data(&self) -> *mut u8 {
        // SAFETY: the data area starts DATA_OFFSET bytes in and spans
        // `capacity` bytes of the mapping.
        unsafe { self.base.add(DATA_OFFSET) }
    }
}

/// A ring file: create or open, then split into its producer or consumer.
pub struct SharedRing {
    mem: Mem,
}

impl std::fmt::Debug for SharedRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedRing").field("capacity", &self.mem.capacity).finish()
    }
}

fn valid_capacity(c: u64) -> bool {
    c.is_power_of_two() && (4096..=1 << 30).contains(&c)
}

impl SharedRing {
    /// Creates (or truncates) the ring file at `path` with `capacity` data
    /// bytes and generation 0.
    #[cfg(not(loom))]
    pub fn create(path: &Path, capacity: u64) -> Result<SharedRing, RingError> {
        let p = path.display().to_string();
        if !valid_capacity(capacity) {
            return Err(RingError::BadCapacity { path: p, capacity });
        }
        let io = |source| RingError::Io { path: p.clone(), source };
        let f = OpenOptions::new().read(true).write(true).create(true).truncate(true).open(path).map_err(io)?;
        f.set_len(DATA_OFFSET as u64 + capacity).map_err(io)?;
        // SAFETY: we just sized the file; other processes map it only
        // through this module, which follows the ring protocol.
        let mut map = unsafe { memmap2::MmapMut::map_mut(&f) }.map_err(io)?;
        let base = map.as_mut_ptr();
        let ring = SharedRing { mem: Mem { _map: map, base, capacity } };
        let h = ring.mem.header();
        // SAFETY: the header area is ours alone until magic is set.
        unsafe {
            let vc = std::ptr::addr_of!(h.version_capacity) as *mut [u64; 2];
            *vc = [VERSION as u64, capacity];
        }
        h.head.store(0, Ordering::Relaxed);
        h.tail.store(0, Ordering::Relaxed);
        h.dropped.store(0, Ordering::Relaxed);
        h.generation.store(0, Ordering::Relaxed);
        h.magic.store(MAGIC, Ordering::Release);
        Ok(ring)
    }

    /// Opens an existing ring file, checking its header against its size.
    #[cfg(not(loom))]
    pub fn open(path: &Path) -> Result<SharedRing, RingError> {
        let p = path.display().to_string();
        let io = |source| RingError::Io { path: p.clone(), source };
        let f = OpenOptions::new().read(true).write(true).open(path).map_err(io)?;
        let len = f.metadata().map_err(io)?.len();
        if len < DATA_OFFSET as u64 {
            return Err(RingError::BadHeader { path: p });
        }
        // SAFETY: as in create; the size was checked to hold the header.
        let mut map = unsafe { memmap2::MmapMut::map_mut(&f) }.map_err(io)?;
        let base = map.as_mut_ptr();
        let mut ring = SharedRing { mem: Mem { _map: map, base, capacity: 0 } };
        let h = ring.mem.header();
        // SAFETY: plain reads of the header's constant words.
        let [version, capacity] = unsafe { std::ptr::read(std::ptr::addr_of!(h.version_capacity)) };
        if h.magic.load(Ordering::Acquire) != MAGIC || version != VERSION as u64 {
            return Err(RingError::BadHeader { path: p });
        }
        if !valid_capacity(capacity) || DATA_OFFSET as u64 + capacity != len {
            return Err(RingError::BadCapacity { path: p, capacity });
        }
        ring.mem.capacity = capacity;
        Ok(ring)
    }

    /// A ring in plain memory, for model checking.
    #[cfg(loom)]
    pub fn in_memory(capacity: u64) -> SharedRing {
        let words = (DATA_OFFSET + capacity as usize) / 8;
        let mut heap = vec![0u64; words].into_boxed_slice();
        let base = heap.as_mut_ptr() as *mut u8;
        // Under loom the atomics are loom's own objects: construct them.
        // SAFETY: base points to DATA_OFFSET zeroed bytes we own.
        unsafe {
            std::ptr::write(
                base as *mut Header,
                Header {
                    magic: AtomicU64::new(MAGIC),
                    version_capacity: [VERSION as u64, capacity],
                    generation: AtomicU64::new(0),
                    _pad0: [0; 4],
                    head: AtomicU64::new(0),
                    _pad1: [0; 7],
                    tail: AtomicU64::new(0),
                    _pad2: [0; 7],
                    dropped: AtomicU64::new(0),
                    _pad3: [0; 7],
                },
            );
        }
        SharedRing { mem: Mem { _heap: heap, base, capacity } }
    }

    pub fn capacity(&self) -> u64 {
        self.mem.capacity
    }

    /// The dataplane's start count recorded in the ring.
    pub fn generation(&self) -> u64 {
        self.mem.header().generation.load(Ordering::Acquire)
    }

    pub fn set_generation(&self, g: u64) {
        self.mem.header().generation.store(g, Ordering::Release);
    }

    /// Messages the producer dropped because the ring was full.
    pub fn dropped(&self) -> u64 {
        self.mem.header().dropped.load(Ordering::Relaxed)
    }

    /// Bytes queued now.
    pub fn fill(&self) -> u64 {
        self.mem.fill()
    }

    /// This process's producer end. Only one process may hold it.
    pub fn producer(self) -> Producer {
        let head = self.mem.header().head.load(Ordering::Relaxed);
        let tail = self.mem.header().tail.load(Ordering::Acquire);
        Producer { mem: self.mem, head, cached_tail: tail }
    }

    /// This process's consumer end. Only one process may hold it.
    pub fn consumer(self) -> Consumer {
        let tail = self.mem.header().tail.load(Ordering::Relaxed);
        Consumer { mem: self.mem, tail, cached_head: tail }
    }
}

fn record_len(msg_len: usize) -> u64 {
    (4 + msg_len as u64).div_ceil(8) * 8
}

pub struct Producer {
    mem: Mem,
    head: u64,
    cached_tail: u64,
}

impl std::fmt::Debug for Producer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Producer").field("head", &self.head).finish()
    }
}

impl Producer {
    /// Bytes queued now (the ring's depth), of [`Self::capacity`].
    pub fn fill(&self) -> u64 {
        self.mem.fill()
    }

    pub fn capacity(&self) -> u64 {
        self.mem.capacity
    }

    /// Queues one message, or fails at once (never blocks) when full; a
    /// full ring is counted in `dropped`.
    pub fn push(&mut self, msg: &[u8]) -> Result<(), RingError> {
        if msg.len() > MAX_MESSAGE {
            return Err(RingError::TooLarge(msg.len()));
        }
        let cap = self.mem.capacity;
        let rec = record_len(msg.len());
        let off = self.head & (cap - 1);
        // Room left before the end of the data area; a record never wraps.
        let to_end = cap - off;
        let need = if rec > to_end { to_end + rec } else { rec };
        if self.head + need - self.cached_tail > cap {
            self.cached_tail = self.mem.header().tail.load(Ordering::Acquire);
            if self.head + need - self.cached_tail > cap {
                self.mem.header().dropped.fetch_add(1, Ordering::Relaxed);
                return Err(RingError::Full);
            }
        }
        let data = self.mem.data();
        let mut pos = self.head;
        if rec > to_end {
            // SAFETY: off + 4 <= cap (records are 8-aligned, so to_end >= 8);
            // this space is free (checked above) and only we write it.
            unsafe { std::ptr::write_unaligned(data.add(off as usize) as *mut u32, WRAP) };
            pos += to_end;
        }
        let at = (pos & (cap - 1)) as usize;
        // SAFETY: [at, at + rec) lies inside the data area and is free; the
        // consumer reads it only after the release store of head below.
        unsafe {
            std::ptr::write_unaligned(data.add(at) as *mut u32, msg.len() as u32);
            std::ptr::copy_nonoverlapping(msg.as_ptr(), data.add(at + 4), msg.len());
        }
        self.head = pos + rec;
        self.mem.header().head.store(self.head, Ordering::Release);
        Ok(())
    }

    pub fn set_generation(&self, g: u64) {
        self.mem.header().generation.store(g, Ordering::Release);
    }

    pub fn generation(&self) -> u64 {
        self.mem.header().generation.load(Ordering::Acquire)
    }

    pub fn dropped(&self) -> u64 {
        self.mem.header().dropped.load(Ordering::Relaxed)
    }
}

pub struct Consumer {
    mem: Mem,
    tail: u64,
    cached_head: u64,
}

impl std::fmt::Debug for Consumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Consumer").field("tail", &self.tail).finish()
    }
}

impl Consumer {
    /// Hands the oldest message to `f` (a view into the ring, valid for the
    /// call) and releases it; `None` when the ring is empty.
    pub fn pop_with<R>(&mut self, f: impl FnOnce(&[u8]) -> R) -> Option<R> {
        let cap = self.mem.capacity;
        if self.tail == self.cached_head {
            self.cached_head = self.mem.header().head.load(Ordering::Acquire);
            if self.tail == self.cached_head {
                return None;
            }
        }
        let data = self.mem.data();
        let mut off = self.tail & (cap - 1);
        // SAFETY: tail < head, so the producer wrote and published the 4
        // octets at off (8-aligned, inside the area) before head.
        let mut len = unsafe { std::ptr::read_unaligned(data.add(off as usize) as *const u32) };
        if len == WRAP {
            self.tail += cap - off;
            off = 0;
            // SAFETY: as above, for the record at the start of the area.
            len = unsafe { std::ptr::read_unaligned(data as *const u32) };
        }
        let len = (len as usize).min(MAX_MESSAGE).min(cap as usize - off as usize - 4);
        // SAFETY: the record [off, off + 4 + len) was published by the
        // release store of head; the producer will not reuse it until our
        // release store of tail below.
        let msg = unsafe { std::slice::from_raw_parts(data.add(off as usize + 4), len) };
        let r = f(msg);
        self.tail += record_len(len);
        self.mem.header().tail.store(self.tail, Ordering::Release);
        Some(r)
    }

    /// The oldest message, copied out.
    pub fn pop(&mut self) -> Option<Vec<u8>> {
        self.pop_with(|m| m.to_vec())
    }

    /// Drops everything queued (a restarted dataplane ignores commands
    /// meant for its previous life; the control plane resends all).
    pub fn discard_all(&mut self) {
        self.cached_head = self.mem.header().head.load(Ordering::Acquire);
        self.tail = self.cached_head;
        self.mem.header().tail.store(self.tail, Ordering::Release);
    }

    pub fn generation(&self) -> u64 {
        self.mem.header().generation.load(Ordering::Acquire)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    fn ring(cap: u64) -> (tempfile::TempDir, Producer, Consumer) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("r");
        let prod = SharedRing::create(&p, cap).unwrap().producer();
        let cons = SharedRing::open(&p).unwrap().consumer();
        (dir, prod, cons)
    }

    #[test]
    fn messages_arrive_once_in_order_across_wraps() {
        let (_d, mut p, mut c) = ring(4096);
        let mut next_in = 0u32;
        let mut next_out = 0u32;
        for round in 0..2000u32 {
            // Varying sizes force wrap markers at every offset.
            let len = (round as usize * 37) % 700;
            while p.push(&msg(next_in, len)).is_ok() {
                next_in += 1;
                if next_in % 3 == 0 {
                    break;
                }
            }
            while let Some(m) = c.pop() {
                check(&m, next_out);
                next_out += 1;
            }
        }
        assert_eq!(next_in, next_out);
        assert!(next_in > 2000);
    }

    fn msg(seq: u32, len: usize) -> Vec<u8> {
        let mut v = seq.to_le_bytes().to_vec();
        v.extend((0..len).map(|i| (seq as usize + i) as u8));
        v
    }

    fn check(m: &[u8], seq: u32) {
        assert_eq!(u32::from_le_bytes(m[..4].try_into().unwrap()), seq);
        assert!(m[4..].iter().enumerate().all(|(i, &b)| b == (seq as usize + i) as u8), "payload of {seq}");
    }

    #[test]
    fn full_is_an_error_and_counted_never_a_block() {
        let (_d, mut p, mut c) = ring(4096);
        let big = vec![7u8; 1000];
        let mut n = 0;
        while p.push(&big).is_ok() {
            n += 1;
        }
        assert_eq!(n, 4, "4 records of 1008 octets fit in 4096");
        assert!(matches!(p.push(&big), Err(RingError::Full)));
        assert_eq!(p.dropped(), 2);
        assert!(c.pop().is_some());
        assert!(p.push(&big).is_ok(), "room again");
        assert!(matches!(p.push(&vec![0; MAX_MESSAGE + 1]), Err(RingError::TooLarge(_))));
        c.discard_all();
        assert!(c.pop().is_none());
    }

    #[test]
    fn open_checks_the_header() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("bad");
        std::fs::write(&p, vec![0u8; 4096 + 256]).unwrap();
        assert!(matches!(SharedRing::open(&p), Err(RingError::BadHeader { .. })));
        std::fs::write(&p, b"short").unwrap();
        assert!(matches!(SharedRing::open(&p), Err(RingError::BadHeader { .. })));
        assert!(matches!(SharedRing::create(&p, 5000), Err(RingError::BadCapacity { .. })));
        assert!(matches!(SharedRing::open(&dir.path().join("none")), Err(RingError::Io { .. })));
        let r = SharedRing::create(&p, 8192).unwrap();
        r.set_generation(7);
        assert_eq!(SharedRing::open(&p).unwrap().generation(), 7);
        // A file whose size disagrees with its header is refused.
        let f = OpenOptions::new().write(true).open(&p).unwrap();
        f.set_len(256 + 4096).unwrap();
        assert!(matches!(SharedRing::open(&p), Err(RingError::BadCapacity { .. })));
    }

    #[test]
    fn positions_survive_reopening_by_either_side() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r");
        let mut p = SharedRing::create(&path, 4096).unwrap().producer();
        for i in 0..10u32 {
            p.push(&msg(i, 10)).unwrap();
        }
        let mut c = SharedRing::open(&path).unwrap().consumer();
        for i in 0..4 {
            check(&c.pop().unwrap(), i);
        }
        drop(c); // consumer restarts
        let mut c = SharedRing::open(&path).unwrap().consumer();
        check(&c.pop().unwrap(), 4);
        drop(p); // producer restarts
        let mut p = SharedRing::open(&path).unwrap().producer();
        p.push(&msg(10, 10)).unwrap();
        for i in 5..=10 {
            check(&c.pop().unwrap(), i);
        }
        assert!(c.pop().is_none());
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;

    /// Every interleaving of one producer and one consumer thread: each
    /// message arrives exactly once, intact, in order, across a wrap.
    #[test]
    fn spsc_protocol_under_loom() {
        loom::model(|| {
            let cap = 4096u64;
            let ring = SharedRing::in_memory(cap);
            // Two views of the same memory, as two processes would have.
            let base = ring.mem.base as usize;
            let prod = ring.producer();
            let cons = Consumer {
                mem: Mem { _heap: Box::new([]), base: base as *mut u8, capacity: cap },
                tail: 0,
                cached_head: 0,
            };
            let mut prod = prod;
            let t = loom::thread::spawn(move || {
                // Sizes chosen so the third record needs the wrap marker.
                for (i, len) in [(0u8, 1500usize), (1, 1500), (2, 1500)] {
                    let m = vec![i; len];
                    while prod.push(&m).is_err() {
                        loom::thread::yield_now();
                    }
                }
                prod
            });
            let mut cons = cons;
            let mut got = 0u8;
            while got < 3 {
                match cons.pop() {
                    Some(m) => {
                        assert_eq!(m.len(), 1500);
                        assert!(m.iter().all(|&b| b == got));
                        got += 1;
                    }
                    None => loom::thread::yield_now(),
                }
            }
            let prod = t.join().unwrap();
            drop(cons);
            drop(prod);
        });
    }
}
