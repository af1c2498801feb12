//! Test traffic: Ethernet / IPv4 / UDP frames of chosen sizes, written as a
//! pcap for a `net_pcap` source port.
//!
//! The same shape as the anchors' generator (16 source x 16 destination
//! addresses, destinations in 192.168.105.0/24, the inside network of the
//! lab and the ESP benchmarks), so our figures and theirs use alike input.
//! Sizes are inner IPv4 packet lengths (IP header included); frames are 14
//! octets longer.

use std::path::Path;

/// IMIX 7:4:1 with the large packet at 1400 octets, so an ESP tunnel packet
/// stays under a 1500-octet MTU (as ../shared/anchors defines it).
pub const IMIX: [usize; 12] = [64, 64, 64, 64, 64, 64, 64, 576, 576, 576, 576, 1400];

const SRC_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
const DST_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];
/// Smallest inner packet: IPv4 header (20) + UDP header (8).
pub const MIN_SIZE: usize = 28;

/// One frame: flow `i` (source 192.168.1.(1 + i%16), destination
/// 192.168.105.(1 + (i/16)%16)), inner IPv4 length `size`.
pub fn udp_frame(i: usize, size: usize) -> Vec<u8> {
    assert!((MIN_SIZE..=9000).contains(&size), "inner size {size} outside 28..=9000");
    let mut f = Vec::with_capacity(14 + size);
    f.extend_from_slice(&DST_MAC);
    f.extend_from_slice(&SRC_MAC);
    f.extend_from_slice(&0x0800u16.to_be_bytes());
    let src = [192, 168, 1, 1 + (i % 16) as u8];
    let dst = [192, 168, 105, 1 + ((i / 16) % 16) as u8];
    let mut ip = [0u8; 20];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&(size as u16).to_be_bytes());
    ip[4..6].copy_from_slice(&(i as u16).to_be_bytes()); // identification
    ip[8] = 64; // TTL
    ip[9] = 17; // UDP
    ip[12..16].copy_from_slice(&src);
    ip[16..20].copy_from_slice(&dst);
    let ck = internet_checksum(&ip);
    ip[10..12].copy_from_slice(&ck.to_be_bytes());
    f.extend_from_slice(&ip);
    let udp_len = size - 20;
    let payload: Vec<u8> = (0..udp_len - 8).map(|k| (i + k) as u8).collect();
    let mut udp = Vec::with_capacity(udp_len);
    udp.extend_from_slice(&(1024 + (i % 1000) as u16).to_be_bytes());
    udp.extend_from_slice(&5000u16.to_be_bytes());
    udp.extend_from_slice(&(udp_len as u16).to_be_bytes());
    udp.extend_from_slice(&[0, 0]);
    udp.extend_from_slice(&payload);
    // UDP checksum over the IPv4 pseudo-header (RFC 768).
    let mut pseudo = Vec::with_capacity(12 + udp.len());
    pseudo.extend_from_slice(&src);
    pseudo.extend_from_slice(&dst);
    pseudo.extend_from_slice(&[0, 17]);
    pseudo.extend_from_slice(&(udp_len as u16).to_be_bytes());
    pseudo.extend_from_slice(&udp);
    let ck = match internet_checksum(&pseudo) {
        0 => 0xffff,
        c => c,
    };
    udp[6..8].copy_from_slice(&ck.to_be_bytes());
    f.extend_from_slice(&udp);
    f
}

/// The RFC 1071 one's-complement checksum.
pub fn internet_checksum(b: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    for c in b.chunks(2) {
        let w = if c.len() == 2 { u16::from_be_bytes([c[0], c[1]]) } else { u16::from_be_bytes([c[0], 0]) };
        sum += w as u32;
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// `count` frames of one size, or of the IMIX pattern for "imix".
pub fn frames(size: &str, count: usize) -> Result<Vec<Vec<u8>>, String> {
    if size == "imix" {
        let n = IMIX.len() * (count / IMIX.len()).max(1);
        return Ok((0..n).map(|i| udp_frame(i, IMIX[i % IMIX.len()])).collect());
    }
    let s: usize = size.parse().map_err(|_| format!("size '{size}' is not a number or 'imix'"))?;
    if !(MIN_SIZE..=9000).contains(&s) {
        return Err(format!("size {s} outside {MIN_SIZE}..=9000"));
    }
    Ok((0..count).map(|i| udp_frame(i, s)).collect())
}

pub fn write_pcap(path: &Path, size: &str, count: usize) -> Result<usize, String> {
    let f = frames(size, count)?;
    dataplane::pcap::write_file(path, &f).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(f.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_have_the_right_lengths_and_valid_checksums() {
        for size in [28usize, 64, 576, 1400] {
            let f = udp_frame(37, size);
            assert_eq!(f.len(), size + 14);
            assert_eq!(internet_checksum(&f[14..34]), 0, "IPv4 header checksum verifies");
            let ip = &f[14..];
            let mut pseudo = Vec::new();
            pseudo.extend_from_slice(&ip[12..20]);
            pseudo.extend_from_slice(&[0, 17]);
            pseudo.extend_from_slice(&((size - 20) as u16).to_be_bytes());
            pseudo.extend_from_slice(&ip[20..]);
            assert_eq!(internet_checksum(&pseudo), 0, "UDP checksum verifies");
        }
    }

    #[test]
    fn rfc1071_example() {
        // RFC 1071 section 3 example words 0001 f203 f4f5 f6f7: sum ddf2, checksum 220d.
        assert_eq!(internet_checksum(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]), 0x220d);
    }

    #[test]
    fn imix_mean_frame_is_360_bytes() {
        let f = frames("imix", 252).unwrap();
        assert_eq!(f.len(), 252);
        let mean = f.iter().map(|x| x.len()).sum::<usize>() as f64 / f.len() as f64;
        assert!((mean - 360.0).abs() < 0.5, "{mean}");
        assert!(frames("12", 1).is_err());
        assert!(frames("big", 1).is_err());
    }
}
