//! Why a packet was dropped: one `repr(u8)` reason per packet, counted per
//! worker and per SA. No `Result` per packet on the fast path; this enum
//! is the error type of the pipeline, and the table of names is what
//! operators read.

macro_rules! drop_reasons {
    ($($(#[$m:meta])* $name:ident = $text:literal,)+) => {
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[repr(u8)]
        pub enum DropReason {
            $($(#[$m])* $name,)+
        }

        impl DropReason {
            pub const ALL: &'static [DropReason] = &[$(DropReason::$name,)+];
            pub const COUNT: usize = Self::ALL.len();

            /// The counter's name, as printed and exported.
            pub fn name(self) -> &'static str {
                match self {
                    $(DropReason::$name => $text,)+
                }
            }
        }
    };
}

drop_reasons! {
    /// Shorter than a header or a length field claims.
    Truncated = "truncated",
    /// A header with impossible fields (version, lengths).
    Malformed = "malformed",
    /// Neither IPv4, IPv6 nor ARP.
    UnsupportedEthertype = "unsupported_ethertype",
    /// IPv4 header checksum wrong.
    BadChecksum = "bad_ip_checksum",
    /// A UDP checksum that does not verify (RFC 1122 4.1.3.4).
    BadUdpChecksum = "bad_udp_checksum",
    /// A zero UDP checksum over IPv6 (RFC 8200 8.1: discard).
    ZeroUdpChecksum = "zero_udp_checksum",
    /// ESP with an SPI no inbound SA has (RFC 4303 3.4.2: audit, drop).
    UnknownSpi = "unknown_spi",
    /// Sequence number seen already or left of the window (RFC 4303 3.4.3).
    Replay = "replay",
    /// ICV did not verify (RFC 4303 3.4.4).
    IcvFailed = "icv_failed",
    /// Padding not the default 1, 2, 3, ... (RFC 4303 2.4).
    BadPadding = "bad_padding",
    /// Next header neither IPv4 (4) nor IPv6 (41) in tunnel mode.
    BadNextHeader = "bad_next_header",
    /// A TFC dummy packet (next header 59, RFC 4303 2.6): dropped by design.
    DummyPacket = "dummy_packet",
    /// The decrypted inner packet is not a whole IP packet.
    InnerMalformed = "inner_malformed",
    /// Inner addresses outside the SA's traffic selectors (RFC 4301 5.2).
    PolicyMismatch = "policy_mismatch",
    /// A group SA packet whose inner source is not a prefix of the member
    /// it came from, by outer source (mpsa-04 section 5).
    GroupSourceMismatch = "group_source_mismatch",
    /// A policy said discard.
    PolicyDiscard = "policy_discard",
    /// No route to the destination.
    NoRoute = "no_route",
    /// Next hop's link-layer address unknown.
    NoNeighbor = "no_neighbor",
    /// TTL / hop limit would reach zero.
    TtlExceeded = "ttl_exceeded",
    /// Larger than the outgoing port's MTU.
    Oversize = "oversize",
    /// Not enough head- or tailroom in the buffer for the outer headers.
    NoRoom = "no_room",
    /// The SA's sequence numbers ran out (RFC 4303 3.3.3: never wrap).
    SeqOverflow = "seq_overflow",
    /// The SA reached its hard lifetime.
    SaExpired = "sa_expired",
    /// A NAT-keepalive (RFC 3948 2.3): consumed, counted.
    NattKeepalive = "natt_keepalive",
    /// For the control plane, but it could not take it (ring full / down).
    PuntFailed = "punt_failed",
    /// A fragment where a whole packet is needed.
    Fragment = "fragment",
    /// The tx queue was full.
    TxFull = "tx_full",
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_indexes_dense() {
        let mut names: Vec<_> = DropReason::ALL.iter().map(|r| r.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), DropReason::COUNT);
        for (i, r) in DropReason::ALL.iter().enumerate() {
            assert_eq!(*r as usize, i);
        }
    }
}
