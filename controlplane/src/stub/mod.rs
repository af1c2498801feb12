//! IKE SA stubs (draft-xu-ike-sa-sync 3.2, NOTES.md "IKE SA
//! synchronization"): what a gateway needs to rebuild an IKE SA of another
//! gateway's without Diffie-Hellman or IKE_AUTH, indexed by the old
//! gateway's address and SPI (its responder SPI).
//!
//! A stub holds the draft's list (IDi, IDr, SPIi, SPIr, the accepted
//! proposal SAr, SK_d, the Diffie-Hellman shared secret, the old gateway's
//! address) and what a working gateway needs besides: the client's address
//! and ports, NAT state, the IKE SA's expiry, MPSA membership and MOBIKE
//! state. Its encoding is versioned and binary:
//!
//! ```text
//! version(1) = 1 | flags(1): NAT, PEER_BEHIND_NAT, MPSA, MOBIKE
//! index: gateway address (family(1) = 4 | 6, 4 or 16 octets), SPI(8)
//! gateway port(2) | SPIi(8) | SPIr(8)
//! IDi, IDr: length(2) | the ID payload's body (RFC 7296 3.5)
//! SAr: length(2) | the SA payload's body with the one accepted proposal
//! SK_d, g^ir: length(2) | octets
//! client: address (family, octets) | port(2)
//! expiry: seconds since the Unix epoch (8)
//! [MOBIKE: version(1) | count(1) | addresses (family, octets)...]
//! ```
//!
//! Secrets are zeroized when a stub is dropped and never printed; on the
//! wire and at rest a stub is sealed (`seal`).

pub mod seal;
pub mod signal;
pub mod tls;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::codepoints::PayloadType;
use crate::crypto::Secret;
use crate::wire::{Identification, ParseError, Payload, Proposal, Reader, Writer};

/// The encoding's version.
pub const STUB_VERSION: u8 = 1;

/// Where a stub is found: the old gateway's address and SPI (NOTES.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StubIndex {
    pub gateway: IpAddr,
    pub spi: u64,
}

impl std::fmt::Display for StubIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{:016x}", self.gateway, self.spi)
    }
}

/// What a gateway's engine asks of the stub store (the bank, or its peer
/// gateways; draft-xu-ike-sa-sync 3.3): file a stub, withdraw one whose
/// SA went, forget one that was used (a stub is used once), or fetch one
/// a SYN names that the local table does not hold (answered by
/// `Engine::stub_fetched`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StubOp {
    Update(Box<IkeSaStub>),
    Withdraw(StubIndex),
    Used(StubIndex),
    Fetch(StubIndex),
}

/// MOBIKE state carried over (RFC 4555): the version agreed and the
/// client's other addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MobikeStub {
    pub version: u8,
    pub peer_addresses: Vec<IpAddr>,
}

/// An IKE SA, as another gateway needs it to take the SA over.
#[derive(Clone, PartialEq, Eq)]
pub struct IkeSaStub {
    pub index: StubIndex,
    pub gateway_port: u16,
    pub spi_i: u64,
    pub spi_r: u64,
    pub id_i: Identification,
    pub id_r: Identification,
    /// The accepted IKE proposal (SAr).
    pub proposal: Proposal,
    pub sk_d: Secret,
    /// The IKE SA's Diffie-Hellman shared secret g^ir.
    pub g_ir: Secret,
    /// The client's address and port.
    pub peer: SocketAddr,
    /// NAT between the two (IKE on 4500, ESP in UDP).
    pub nat: bool,
    /// The client is behind it (it sends keepalives).
    pub peer_behind_nat: bool,
    /// When the IKE SA expires, in seconds since the Unix epoch.
    pub expires_unix: u64,
    /// The client takes MPSA group SAs (it sent V(MPSA)).
    pub mpsa: bool,
    pub mobike: Option<MobikeStub>,
}

impl std::fmt::Debug for IkeSaStub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // No secrets in logs.
        f.debug_struct("IkeSaStub")
            .field("index", &self.index)
            .field("spi_i", &format_args!("{:016x}", self.spi_i))
            .field("spi_r", &format_args!("{:016x}", self.spi_r))
            .field("id_i", &self.id_i.to_text())
            .field("id_r", &self.id_r.to_text())
            .field("peer", &self.peer)
            .finish_non_exhaustive()
    }
}

/// Why octets are not a stub.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StubError {
    #[error("stub: version {0}, this gateway reads {STUB_VERSION}")]
    Version(u8),
    #[error("stub: {field}: {why}")]
    Field { field: &'static str, why: String },
    #[error("stub: {0} octets left over")]
    Trailing(usize),
    #[error("sealed stub: does not open with the cluster key (tampered, or another cluster's)")]
    Sealed,
    #[error("sealed stub: filed under {outer}, holds {inner}")]
    WrongIndex { outer: StubIndex, inner: StubIndex },
}

fn field(name: &'static str) -> impl Fn(ParseError) -> StubError {
    move |e| StubError::Field { field: name, why: e.to_string() }
}

const NAT: u8 = 1;
const PEER_BEHIND_NAT: u8 = 2;
const MPSA: u8 = 4;
const MOBIKE: u8 = 8;

pub(crate) fn emit_addr(w: &mut Writer, a: IpAddr) {
    match a {
        IpAddr::V4(x) => {
            w.u8(4);
            w.bytes(&x.octets());
        }
        IpAddr::V6(x) => {
            w.u8(6);
            w.bytes(&x.octets());
        }
    }
}

pub(crate) fn parse_addr(r: &mut Reader<'_>, name: &'static str) -> Result<IpAddr, StubError> {
    let f = field(name);
    match r.u8().map_err(&f)? {
        4 => Ok(IpAddr::V4(Ipv4Addr::from(<[u8; 4]>::try_from(r.take(4).map_err(&f)?).expect("4 octets")))),
        6 => Ok(IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(r.take(16).map_err(&f)?).expect("16 octets")))),
        x => Err(StubError::Field { field: name, why: format!("address family {x}, not 4 or 6") }),
    }
}

fn emit_chunk(w: &mut Writer, b: &[u8]) {
    w.u16(u16::try_from(b.len()).expect("stub fields are under 64 KiB"));
    w.bytes(b);
}

fn parse_chunk<'a>(r: &mut Reader<'a>, name: &'static str) -> Result<&'a [u8], StubError> {
    let n = r.u16().map_err(field(name))?;
    r.take(usize::from(n)).map_err(field(name))
}

impl StubIndex {
    pub(crate) fn emit(&self, w: &mut Writer) {
        emit_addr(w, self.gateway);
        w.u64(self.spi);
    }

    pub(crate) fn parse(r: &mut Reader<'_>) -> Result<StubIndex, StubError> {
        let gateway = parse_addr(r, "index address")?;
        let spi = r.u64().map_err(field("index SPI"))?;
        Ok(StubIndex { gateway, spi })
    }
}

impl IkeSaStub {
    /// The versioned binary encoding (module docs).
    pub fn encode(&self) -> Secret {
        // Sized up front: no reallocation leaves copies of the secrets behind.
        let mut w = Writer { buf: Vec::with_capacity(self.encoded_room()) };
        self.encode_into(&mut w);
        // The writer's buffer holds secrets: move it into a zeroizing one.
        Secret::new(std::mem::take(&mut w.buf))
    }

    /// Room that [`IkeSaStub::encode`]'s octets fit in: identities, the
    /// proposal and the keys take well under 2048 octets, and each MOBIKE
    /// address at most 17.
    pub fn encoded_room(&self) -> usize {
        2048 + self.mobike.as_ref().map_or(0, |m| 17 * m.peer_addresses.len())
    }

    /// Appends [`IkeSaStub::encode`]'s octets to `w`, which the caller
    /// sized with [`IkeSaStub::encoded_room`] and zeroizes or seals in
    /// place.
    pub(crate) fn encode_into(&self, w: &mut Writer) {
        w.u8(STUB_VERSION);
        let flags = (if self.nat { NAT } else { 0 })
            | (if self.peer_behind_nat { PEER_BEHIND_NAT } else { 0 })
            | (if self.mpsa { MPSA } else { 0 })
            | (if self.mobike.is_some() { MOBIKE } else { 0 });
        w.u8(flags);
        self.index.emit(w);
        w.u16(self.gateway_port);
        w.u64(self.spi_i);
        w.u64(self.spi_r);
        emit_chunk(w, &self.id_i.rest_of_payload());
        emit_chunk(w, &self.id_r.rest_of_payload());
        let mut sa = Writer::new();
        Payload::Sa(vec![self.proposal.clone()]).emit(&mut sa);
        emit_chunk(w, &sa.buf);
        emit_chunk(w, self.sk_d.as_slice());
        emit_chunk(w, self.g_ir.as_slice());
        emit_addr(w, self.peer.ip());
        w.u16(self.peer.port());
        w.u64(self.expires_unix);
        if let Some(m) = &self.mobike {
            w.u8(m.version);
            w.u8(u8::try_from(m.peer_addresses.len()).expect("at most 255 addresses"));
            for a in &m.peer_addresses {
                emit_addr(w, *a);
            }
        }
    }

    /// Parses [`IkeSaStub::encode`]'s octets; every fault is typed.
    pub fn decode(b: &[u8]) -> Result<IkeSaStub, StubError> {
        let mut r = Reader::new(b, "stub");
        let version = r.u8().map_err(field("version"))?;
        if version != STUB_VERSION {
            return Err(StubError::Version(version));
        }
        let flags = r.u8().map_err(field("flags"))?;
        if flags & !(NAT | PEER_BEHIND_NAT | MPSA | MOBIKE) != 0 {
            return Err(StubError::Field { field: "flags", why: format!("unknown bits {flags:#04x}") });
        }
        let index = StubIndex::parse(&mut r)?;
        let gateway_port = r.u16().map_err(field("gateway port"))?;
        let spi_i = r.u64().map_err(field("SPIi"))?;
        let spi_r = r.u64().map_err(field("SPIr"))?;
        let id = |r: &mut Reader<'_>, name: &'static str| -> Result<Identification, StubError> {
            let body = parse_chunk(r, name)?;
            match Payload::parse(PayloadType::IdentificationInitiator, body).map_err(field(name))? {
                Payload::IdI(i) => Ok(i),
                _ => Err(StubError::Field { field: name, why: "not an identity".into() }),
            }
        };
        let id_i = id(&mut r, "IDi")?;
        let id_r = id(&mut r, "IDr")?;
        let sa = parse_chunk(&mut r, "SAr")?;
        let proposal = match Payload::parse(PayloadType::SecurityAssociation, sa).map_err(field("SAr"))? {
            Payload::Sa(mut ps) if ps.len() == 1 => ps.remove(0),
            _ => return Err(StubError::Field { field: "SAr", why: "not exactly one proposal".into() }),
        };
        let sk_d = Secret::from_slice(parse_chunk(&mut r, "SK_d")?);
        let g_ir = Secret::from_slice(parse_chunk(&mut r, "g^ir")?);
        if sk_d.is_empty() || g_ir.is_empty() {
            return Err(StubError::Field { field: "SK_d, g^ir", why: "empty".into() });
        }
        let peer_ip = parse_addr(&mut r, "client address")?;
        let peer = SocketAddr::new(peer_ip, r.u16().map_err(field("client port"))?);
        let expires_unix = r.u64().map_err(field("expiry"))?;
        let mobike = if flags & MOBIKE != 0 {
            let version = r.u8().map_err(field("MOBIKE version"))?;
            let n = r.u8().map_err(field("MOBIKE addresses"))?;
            let peer_addresses = (0..n).map(|_| parse_addr(&mut r, "MOBIKE address")).collect::<Result<Vec<_>, _>>()?;
            Some(MobikeStub { version, peer_addresses })
        } else {
            None
        };
        if !r.is_empty() {
            return Err(StubError::Trailing(r.left()));
        }
        Ok(IkeSaStub {
            index,
            gateway_port,
            spi_i,
            spi_r,
            id_i,
            id_r,
            proposal,
            sk_d,
            g_ir,
            peer,
            nat: flags & NAT != 0,
            peer_behind_nat: flags & PEER_BEHIND_NAT != 0,
            expires_unix,
            mpsa: flags & MPSA != 0,
            mobike,
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::ike::proposal;

    /// A stub with every field set, IPv4 or IPv6.
    pub(crate) fn sample(v6: bool) -> IkeSaStub {
        let (gw, peer, other): (IpAddr, IpAddr, IpAddr) = if v6 {
            ("fd80::1".parse().unwrap(), "fd81::1".parse().unwrap(), "fd82::1".parse().unwrap())
        } else {
            ("10.80.0.1".parse().unwrap(), "10.81.0.1".parse().unwrap(), "10.82.0.1".parse().unwrap())
        };
        let suite = proposal::parse_ike("aes128gcm16-prfsha256-x25519").unwrap();
        IkeSaStub {
            index: StubIndex { gateway: gw, spi: 0x1122_3344_5566_7788 },
            gateway_port: 4500,
            spi_i: 0xa1a2_a3a4_a5a6_a7a8,
            spi_r: 0x1122_3344_5566_7788,
            id_i: Identification::from_text("cpe.lab"),
            id_r: Identification::from_text("hub.lab"),
            proposal: proposal::ike_proposals(&[suite], None).remove(0),
            sk_d: Secret::new(vec![0x5d; 32]),
            g_ir: Secret::new(vec![0x91; 32]),
            peer: SocketAddr::new(peer, 4500),
            nat: true,
            peer_behind_nat: true,
            expires_unix: 1_800_000_000,
            mpsa: true,
            mobike: Some(MobikeStub { version: 2, peer_addresses: vec![other] }),
        }
    }

    /// draft-xu-ike-sa-sync 3.2 (NOTES.md): every field survives the
    /// encoding, IPv4 and IPv6, with and without the optional parts.
    #[test]
    fn xu_3_2_a_stub_round_trips() {
        for v6 in [false, true] {
            let s = sample(v6);
            assert_eq!(IkeSaStub::decode(s.encode().as_slice()), Ok(s.clone()));
            let plain = IkeSaStub { nat: false, peer_behind_nat: false, mpsa: false, mobike: None, ..s };
            assert_eq!(IkeSaStub::decode(plain.encode().as_slice()), Ok(plain));
        }
    }

    /// Malformed octets are typed errors, never panics: every truncation,
    /// a wrong version, unknown flags, trailing octets, a bad family.
    #[test]
    fn malformed_stubs_are_refused_with_what_and_where() {
        let b = sample(true).encode();
        let b = b.as_slice();
        for n in 0..b.len() {
            assert!(IkeSaStub::decode(&b[..n]).is_err(), "truncated at {n}");
        }
        let mut v = b.to_vec();
        v[0] = 9;
        assert_eq!(IkeSaStub::decode(&v), Err(StubError::Version(9)));
        let mut v = b.to_vec();
        v[1] |= 0x80;
        assert!(matches!(IkeSaStub::decode(&v), Err(StubError::Field { field: "flags", .. })));
        let mut v = b.to_vec();
        v.push(0);
        assert_eq!(IkeSaStub::decode(&v), Err(StubError::Trailing(1)));
        let mut v = b.to_vec();
        v[2] = 5;
        assert!(matches!(IkeSaStub::decode(&v), Err(StubError::Field { field: "index address", .. })));
    }

    #[test]
    fn debug_shows_no_secrets() {
        let s = sample(false);
        let text = format!("{s:?}");
        assert!(!text.contains("145") && !text.contains("sk_d") && !text.contains("g_ir"), "{text}");
    }

    proptest::proptest! {
        /// Arbitrary octets never panic the decoder.
        #[test]
        fn arbitrary_octets_never_panic(b in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300)) {
            let _ = IkeSaStub::decode(&b);
        }
    }
}
