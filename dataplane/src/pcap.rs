//! The classic libpcap file format: a 24-octet global header, then per
//! packet a 16-octet record header and the captured bytes.
//!
//! Used by tests and the benchmark harness to write the input of net_pcap
//! ports and to read back what gw-dataplane transmitted. Reads both byte
//! orders and both microsecond and nanosecond timestamps; writes
//! little-endian microseconds, link type Ethernet.

use std::io::{self, Read, Write};

/// Magic number of a microsecond-resolution capture, in the writer's order.
const MAGIC_USEC: u32 = 0xa1b2_c3d4;
/// Magic number of a nanosecond-resolution capture.
const MAGIC_NSEC: u32 = 0xa1b2_3c4d;
/// LINKTYPE_ETHERNET (tcpdump.org link-layer header types).
pub const LINKTYPE_ETHERNET: u32 = 1;
/// Largest record we accept: 256 KiB, above any snap length in use.
const MAX_RECORD: u32 = 256 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum PcapError {
    #[error("pcap: {0}")]
    Io(#[from] io::Error),
    #[error("pcap: not a pcap file (magic {0:#010x})")]
    BadMagic(u32),
    #[error("pcap: truncated {what} at byte offset {offset}")]
    Truncated { what: &'static str, offset: u64 },
    #[error("pcap: record at byte offset {offset} claims {len} octets (max {MAX_RECORD})")]
    RecordTooLong { offset: u64, len: u32 },
}

/// One captured packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub ts_sec: u32,
    /// Microseconds (or nanoseconds for nanosecond files), as stored.
    pub ts_frac: u32,
    /// Original length on the wire (may exceed `data.len()` if truncated).
    pub orig_len: u32,
    pub data: Vec<u8>,
}

/// Reads every record of a pcap file held in memory.
pub fn parse(bytes: &[u8]) -> Result<(u32, Vec<Record>), PcapError> {
    let mut r = Cursor { b: bytes, off: 0 };
    let head = r.take(24, "global header")?;
    let magic_le = u32::from_le_bytes(head[0..4].try_into().expect("4 octets"));
    let big = match magic_le {
        MAGIC_USEC | MAGIC_NSEC => false,
        m if m.swap_bytes() == MAGIC_USEC || m.swap_bytes() == MAGIC_NSEC => true,
        m => return Err(PcapError::BadMagic(m)),
    };
    let u32_at = |b: &[u8], i: usize| {
        let a: [u8; 4] = b[i..i + 4].try_into().expect("4 octets");
        if big {
            u32::from_be_bytes(a)
        } else {
            u32::from_le_bytes(a)
        }
    };
    let linktype = u32_at(head, 20);
    let mut out = Vec::new();
    while r.off < bytes.len() {
        let rec_off = r.off as u64;
        let h = r.take(16, "record header")?;
        let (ts_sec, ts_frac, incl, orig_len) = (u32_at(h, 0), u32_at(h, 4), u32_at(h, 8), u32_at(h, 12));
        if incl > MAX_RECORD {
            return Err(PcapError::RecordTooLong { offset: rec_off, len: incl });
        }
        let data = r.take(incl as usize, "record data")?.to_vec();
        out.push(Record { ts_sec, ts_frac, orig_len, data });
    }
    Ok((linktype, out))
}

/// Reads a pcap file from disk and returns its packets' bytes.
pub fn read_packets(path: &std::path::Path) -> Result<Vec<Vec<u8>>, PcapError> {
    let mut buf = Vec::new();
    std::fs::File::open(path)?.read_to_end(&mut buf)?;
    Ok(parse(&buf)?.1.into_iter().map(|r| r.data).collect())
}

/// Writes `packets` as an Ethernet pcap, timestamps 1 µs apart.
pub fn write<W: Write, P: AsRef<[u8]>>(mut w: W, packets: &[P]) -> io::Result<()> {
    let mut head = Vec::with_capacity(24);
    head.extend_from_slice(&MAGIC_USEC.to_le_bytes());
    head.extend_from_slice(&2u16.to_le_bytes()); // version 2.4
    head.extend_from_slice(&4u16.to_le_bytes());
    head.extend_from_slice(&0i32.to_le_bytes()); // thiszone
    head.extend_from_slice(&0u32.to_le_bytes()); // sigfigs
    head.extend_from_slice(&65535u32.to_le_bytes()); // snaplen
    head.extend_from_slice(&LINKTYPE_ETHERNET.to_le_bytes());
    w.write_all(&head)?;
    for (i, p) in packets.iter().enumerate() {
        let p = p.as_ref();
        let len = u32::try_from(p.len()).map_err(|_| io::Error::other("packet over 4 GiB"))?;
        let mut h = [0u8; 16];
        h[0..4].copy_from_slice(&((i / 1_000_000) as u32).to_le_bytes());
        h[4..8].copy_from_slice(&((i % 1_000_000) as u32).to_le_bytes());
        h[8..12].copy_from_slice(&len.to_le_bytes());
        h[12..16].copy_from_slice(&len.to_le_bytes());
        w.write_all(&h)?;
        w.write_all(p)?;
    }
    w.flush()
}

/// Writes `packets` to a new file at `path`.
pub fn write_file<P: AsRef<[u8]>>(path: &std::path::Path, packets: &[P]) -> io::Result<()> {
    write(io::BufWriter::new(std::fs::File::create(path)?), packets)
}

struct Cursor<'a> {
    b: &'a [u8],
    off: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], PcapError> {
        let end = self.off.checked_add(n).filter(|&e| e <= self.b.len());
        match end {
            Some(e) => {
                let s = &self.b[self.off..e];
                self.off = e;
                Ok(s)
            }
            None => Err(PcapError::Truncated { what, offset: self.off as u64 }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<Vec<u8>> {
        vec![vec![1u8; 60], (0..=255).collect(), vec![], vec![0xab; 1514]]
    }

    #[test]
    fn write_then_parse_round_trips() {
        let mut buf = Vec::new();
        write(&mut buf, &sample()).unwrap();
        let (lt, recs) = parse(&buf).unwrap();
        assert_eq!(lt, LINKTYPE_ETHERNET);
        let got: Vec<_> = recs.into_iter().map(|r| r.data).collect();
        assert_eq!(got, sample());
    }

    #[test]
    fn parses_big_endian_nanosecond_files() {
        let mut buf = Vec::new();
        buf.extend_from_slice(&MAGIC_NSEC.to_be_bytes());
        buf.extend_from_slice(&[0, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 0, 1]);
        buf.extend_from_slice(&[0, 0, 0, 7, 0, 0, 0, 9, 0, 0, 0, 3, 0, 0, 0, 3, 0xa, 0xb, 0xc]);
        let (lt, recs) = parse(&buf).unwrap();
        assert_eq!(lt, 1);
        assert_eq!(recs, vec![Record { ts_sec: 7, ts_frac: 9, orig_len: 3, data: vec![0xa, 0xb, 0xc] }]);
    }

    #[test]
    fn truncation_at_every_offset_is_an_error_not_a_panic() {
        let mut buf = Vec::new();
        write(&mut buf, &sample()).unwrap();
        // Record boundaries are valid ends; everything else must be an error.
        let mut ends = vec![24usize];
        for p in sample() {
            ends.push(ends.last().unwrap() + 16 + p.len());
        }
        for cut in 0..buf.len() {
            let r = parse(&buf[..cut]);
            if ends.contains(&cut) {
                assert!(r.is_ok(), "cut at {cut}");
            } else {
                assert!(matches!(r, Err(PcapError::Truncated { .. })), "cut at {cut}: {r:?}");
            }
        }
    }

    #[test]
    fn rejects_bad_magic_and_huge_records() {
        assert!(matches!(parse(&[0u8; 24]), Err(PcapError::BadMagic(0))));
        let mut buf = Vec::new();
        write(&mut buf, &[[0u8; 4]]).unwrap();
        buf[24 + 8..24 + 12].copy_from_slice(&(MAX_RECORD + 1).to_le_bytes());
        assert!(matches!(parse(&buf), Err(PcapError::RecordTooLong { offset: 24, .. })));
    }
}
