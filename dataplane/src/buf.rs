//! The packet buffer the fast path works on: bytes with room in front
//! (headroom, for outer headers) and behind (tailroom, for the ESP trailer
//! and ICV). The DPDK runner implements it over an mbuf; [`VecBuf`] is the
//! in-memory one for tests and benchmarks.

pub trait PacketBuf {
    fn data(&self) -> &[u8];
    fn data_mut(&mut self) -> &mut [u8];
    fn headroom(&self) -> usize;
    fn tailroom(&self) -> usize;
    /// Grows the packet at the front; `None` (unchanged) without room.
    fn prepend(&mut self, n: usize) -> Option<&mut [u8]>;
    /// Grows the packet at the end; `None` (unchanged) without room.
    fn append(&mut self, n: usize) -> Option<&mut [u8]>;
    /// Removes `n` octets from the front; false (unchanged) if shorter.
    fn adj(&mut self, n: usize) -> bool;
    /// Removes `n` octets from the end; false (unchanged) if shorter.
    fn trim(&mut self, n: usize) -> bool;

    fn len(&self) -> usize {
        self.data().len()
    }

    fn is_empty(&self) -> bool {
        self.data().is_empty()
    }
}

/// A heap buffer with the same headroom an mbuf has (128 octets) unless
/// told otherwise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VecBuf {
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

impl VecBuf {
    pub const DEFAULT_HEADROOM: usize = 128;
    pub const DEFAULT_CAPACITY: usize = 2176;

    pub fn new(data: &[u8]) -> VecBuf {
        Self::with_room(data, Self::DEFAULT_HEADROOM, Self::DEFAULT_CAPACITY)
    }

    /// `data` placed after `headroom` octets in a buffer of `capacity`
    /// (at least headroom + data).
    pub fn with_room(data: &[u8], headroom: usize, capacity: usize) -> VecBuf {
        let cap = capacity.max(headroom + data.len());
        let mut buf = vec![0u8; cap];
        buf[headroom..headroom + data.len()].copy_from_slice(data);
        VecBuf { buf, start: headroom, end: headroom + data.len() }
    }

    /// Refills with `data` at the default headroom (reuses the allocation).
    pub fn reset(&mut self, data: &[u8]) {
        let h = Self::DEFAULT_HEADROOM.min(self.buf.len().saturating_sub(data.len()));
        self.buf[h..h + data.len()].copy_from_slice(data);
        self.start = h;
        self.end = h + data.len();
    }
}

impl PacketBuf for VecBuf {
    fn data(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }
    fn data_mut(&mut self) -> &mut [u8] {
        &mut self.buf[self.start..self.end]
    }
    fn headroom(&self) -> usize {
        self.start
    }
    fn tailroom(&self) -> usize {
        self.buf.len() - self.end
    }
    fn prepend(&mut self, n: usize) -> Option<&mut [u8]> {
        if n > self.start {
            return None;
        }
        self.start -= n;
        Some(&mut self.buf[self.start..self.start + n])
    }
    fn append(&mut self, n: usize) -> Option<&mut [u8]> {
        if n > self.tailroom() {
            return None;
        }
        let old = self.end;
        self.end += n;
        Some(&mut self.buf[old..self.end])
    }
    fn adj(&mut self, n: usize) -> bool {
        if n > self.end - self.start {
            return false;
        }
        self.start += n;
        true
    }
    fn trim(&mut self, n: usize) -> bool {
        if n > self.end - self.start {
            return false;
        }
        self.end -= n;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vecbuf_room_operations_match_mbuf_semantics() {
        let mut b = VecBuf::new(&[1, 2, 3]);
        assert_eq!((b.headroom(), b.len(), b.tailroom()), (128, 3, 2176 - 131));
        b.prepend(2).unwrap().copy_from_slice(&[8, 9]);
        assert_eq!(b.data(), &[8, 9, 1, 2, 3]);
        assert!(b.prepend(127).is_none());
        b.append(1).unwrap()[0] = 4;
        assert_eq!(b.data(), &[8, 9, 1, 2, 3, 4]);
        assert!(b.adj(2) && b.trim(1));
        assert_eq!(b.data(), &[1, 2, 3]);
        assert!(!b.adj(4) && !b.trim(4));
        b.reset(&[5]);
        assert_eq!((b.data(), b.headroom()), (&[5u8][..], 128));
    }
}
