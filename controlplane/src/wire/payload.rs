//! Payload bodies (RFC 7296 3.3 to 3.16), each parsed from the octets after
//! the generic payload header and emitted without it; `message.rs` owns the
//! chain and the generic headers.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::{ParseError, Reader, Writer};
use crate::codepoints::{
    AuthMethod, CfgAttr, CfgType, IdType, NotifyType, PayloadType, ProtocolId, TransformType, TsType,
};

/// One payload of a message, typed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payload {
    Sa(Vec<Proposal>),
    Ke(KeyExchange),
    IdI(Identification),
    IdR(Identification),
    Cert(Certificate),
    CertReq(Certificate),
    Auth(Authentication),
    Nonce(Vec<u8>),
    Notify(Notify),
    Delete(Delete),
    VendorId(Vec<u8>),
    TsI(Vec<TrafficSelector>),
    TsR(Vec<TrafficSelector>),
    Cp(Configuration),
    /// EAP (RFC 7296 3.16) is parsed to its octets only: we never run EAP.
    Eap(Vec<u8>),
    /// IKE_SA_SYN (draft-xu-ike-sa-sync 3.6, type 200, NOTES.md): the
    /// index of the stub to rebuild an IKE SA from.
    Syn(IkeSaSyn),
    /// A non-critical payload of a type we do not know: kept, then ignored.
    Unknown {
        ty: u8,
        body: Vec<u8>,
    },
}

impl Payload {
    pub fn ty(&self) -> PayloadType {
        match self {
            Payload::Sa(_) => PayloadType::SecurityAssociation,
            Payload::Ke(_) => PayloadType::KeyExchange,
            Payload::IdI(_) => PayloadType::IdentificationInitiator,
            Payload::IdR(_) => PayloadType::IdentificationResponder,
            Payload::Cert(_) => PayloadType::Certificate,
            Payload::CertReq(_) => PayloadType::CertificateRequest,
            Payload::Auth(_) => PayloadType::Authentication,
            Payload::Nonce(_) => PayloadType::Nonce,
            Payload::Notify(_) => PayloadType::Notify,
            Payload::Delete(_) => PayloadType::Delete,
            Payload::VendorId(_) => PayloadType::VendorId,
            Payload::TsI(_) => PayloadType::TrafficSelectorInitiator,
            Payload::TsR(_) => PayloadType::TrafficSelectorResponder,
            Payload::Cp(_) => PayloadType::Configuration,
            Payload::Eap(_) => PayloadType::ExtensibleAuthentication,
            Payload::Syn(_) => PayloadType::IkeSaSyn,
            Payload::Unknown { ty, .. } => PayloadType::from_value(*ty),
        }
    }

    /// Parses the body of a payload of type `ty` (a type we know).
    pub fn parse(ty: PayloadType, body: &[u8]) -> Result<Payload, ParseError> {
        Ok(match ty {
            PayloadType::SecurityAssociation => Payload::Sa(parse_sa(body)?),
            PayloadType::KeyExchange => Payload::Ke(KeyExchange::parse(body)?),
            PayloadType::IdentificationInitiator => Payload::IdI(Identification::parse(body)?),
            PayloadType::IdentificationResponder => Payload::IdR(Identification::parse(body)?),
            PayloadType::Certificate => Payload::Cert(Certificate::parse(body)?),
            PayloadType::CertificateRequest => Payload::CertReq(Certificate::parse(body)?),
            PayloadType::Authentication => Payload::Auth(Authentication::parse(body)?),
            PayloadType::Nonce => {
                // RFC 7296 3.9: 16 to 256 octets.
                if !(16..=256).contains(&body.len()) {
                    return Err(ParseError::BadLength { what: "nonce", len: body.len() });
                }
                Payload::Nonce(body.to_vec())
            }
            PayloadType::Notify => Payload::Notify(Notify::parse(body)?),
            PayloadType::Delete => Payload::Delete(Delete::parse(body)?),
            PayloadType::VendorId => Payload::VendorId(body.to_vec()),
            PayloadType::TrafficSelectorInitiator => Payload::TsI(parse_ts(body)?),
            PayloadType::TrafficSelectorResponder => Payload::TsR(parse_ts(body)?),
            PayloadType::Configuration => Payload::Cp(Configuration::parse(body)?),
            PayloadType::ExtensibleAuthentication => Payload::Eap(body.to_vec()),
            PayloadType::IkeSaSyn => Payload::Syn(IkeSaSyn::parse(body)?),
            other => Payload::Unknown { ty: other.value(), body: body.to_vec() },
        })
    }

    pub fn emit(&self, w: &mut Writer) {
        match self {
            Payload::Sa(ps) => emit_sa(ps, w),
            Payload::Ke(k) => k.emit(w),
            Payload::IdI(i) | Payload::IdR(i) => i.emit(w),
            Payload::Cert(c) | Payload::CertReq(c) => c.emit(w),
            Payload::Auth(a) => a.emit(w),
            Payload::Nonce(n) | Payload::VendorId(n) | Payload::Eap(n) => w.bytes(n),
            Payload::Notify(n) => n.emit(w),
            Payload::Delete(d) => d.emit(w),
            Payload::TsI(ts) | Payload::TsR(ts) => emit_ts(ts, w),
            Payload::Cp(c) => c.emit(w),
            Payload::Syn(s) => s.emit(w),
            Payload::Unknown { body, .. } => w.bytes(body),
        }
    }
}

//                      1                   2                   3
//  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// | Last Substruc |   RESERVED    |         Proposal Length       |
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// | Proposal Num  |  Protocol ID  |    SPI Size   |Num  Transforms|
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// ~                        SPI (variable)                         ~
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// ~                        <Transforms>                           ~
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// A proposal substructure (RFC 7296 3.3.1). MPSA_PUT reuses this layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proposal {
    pub num: u8,
    pub protocol: ProtocolId,
    pub spi: Vec<u8>,
    pub transforms: Vec<Transform>,
}

//  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// | Last Substruc |   RESERVED    |        Transform Length       |
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// |Transform Type |   RESERVED    |          Transform ID         |
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// ~                      Transform Attributes                     ~
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// A transform substructure (RFC 7296 3.3.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transform {
    pub ty: TransformType,
    pub id: u16,
    pub attrs: Vec<Attribute>,
}

impl Transform {
    pub fn new(ty: TransformType, id: u16) -> Transform {
        Transform { ty, id, attrs: Vec::new() }
    }

    pub fn with_key_len(ty: TransformType, id: u16, bits: u16) -> Transform {
        Transform { ty, id, attrs: vec![Attribute::Tv { ty: 14, value: bits }] }
    }

    /// The Key Length attribute (RFC 7296 3.3.5), if present.
    pub fn key_len(&self) -> Option<u16> {
        self.attrs.iter().find_map(|a| match a {
            Attribute::Tv { ty: 14, value } => Some(*value),
            _ => None,
        })
    }
}

//  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// |A|       Attribute Type        |    AF=0  Attribute Length     |
// |F|                             |    AF=1  Attribute Value      |
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// |                   AF=0  Attribute Value                       |
// |                   AF=1  Not Transmitted                       |
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// A data attribute (RFC 7296 3.3.5): TV (AF=1) or TLV (AF=0).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attribute {
    Tv { ty: u16, value: u16 },
    Tlv { ty: u16, value: Vec<u8> },
}

pub fn parse_sa(body: &[u8]) -> Result<Vec<Proposal>, ParseError> {
    let mut r = Reader::new(body, "SA payload");
    let mut out = Vec::new();
    loop {
        let last = r.u8()?;
        r.u8()?;
        let len = r.u16()? as usize;
        if len < 8 {
            return Err(ParseError::BadLength { what: "proposal", len });
        }
        let p = Proposal::parse(r.sub(len - 4, "proposal")?)?;
        // RFC 7296 3.3.1: proposal numbers start at 1 and go up by one.
        if p.num as usize != out.len() + 1 {
            return Err(ParseError::Malformed { what: "proposal", why: "numbers must count up from 1" });
        }
        out.push(p);
        match last {
            0 => break,
            2 => continue,
            _ => return Err(ParseError::Malformed { what: "proposal", why: "last substruc must be 0 or 2" }),
        }
    }
    r.finish()?;
    Ok(out)
}

impl Proposal {
    fn parse(mut r: Reader<'_>) -> Result<Proposal, ParseError> {
        let num = r.u8()?;
        let protocol = ProtocolId::from_value(r.u8()?);
        let spi_size = r.u8()? as usize;
        let n = r.u8()? as usize;
        let spi = r.take(spi_size)?.to_vec();
        let mut transforms = Vec::with_capacity(n);
        for i in 0..n {
            let last = r.u8()?;
            r.u8()?;
            let len = r.u16()? as usize;
            if len < 8 {
                return Err(ParseError::BadLength { what: "transform", len });
            }
            let mut t = r.sub(len - 4, "transform")?;
            let ty = TransformType::from_value(t.u8()?);
            t.u8()?;
            let id = t.u16()?;
            let attrs = parse_attributes(t)?;
            transforms.push(Transform { ty, id, attrs });
            let want = if i + 1 == n { 0 } else { 3 };
            if last != want {
                return Err(ParseError::Malformed { what: "transform", why: "last substruc disagrees with the count" });
            }
        }
        r.finish()?;
        Ok(Proposal { num, protocol, spi, transforms })
    }

    pub fn emit(&self, w: &mut Writer, last: bool) {
        let start = w.len();
        w.u8(if last { 0 } else { 2 });
        w.u8(0);
        let at = w.placeholder16();
        w.u8(self.num);
        w.u8(self.protocol.value());
        w.u8(self.spi.len() as u8);
        w.u8(self.transforms.len() as u8);
        w.bytes(&self.spi);
        for (i, t) in self.transforms.iter().enumerate() {
            let ts = w.len();
            w.u8(if i + 1 == self.transforms.len() { 0 } else { 3 });
            w.u8(0);
            let tat = w.placeholder16();
            w.u8(t.ty.value());
            w.u8(0);
            w.u16(t.id);
            emit_attributes(&t.attrs, w);
            w.patch16(tat, ts);
        }
        w.patch16(at, start);
    }
}

pub fn parse_attributes(mut r: Reader<'_>) -> Result<Vec<Attribute>, ParseError> {
    let mut attrs = Vec::new();
    while !r.is_empty() {
        let t = r.u16()?;
        if t & 0x8000 != 0 {
            attrs.push(Attribute::Tv { ty: t & 0x7fff, value: r.u16()? });
        } else {
            let len = r.u16()? as usize;
            attrs.push(Attribute::Tlv { ty: t, value: r.take(len)?.to_vec() });
        }
    }
    Ok(attrs)
}

pub fn emit_attributes(attrs: &[Attribute], w: &mut Writer) {
    for a in attrs {
        match a {
            Attribute::Tv { ty, value } => {
                w.u16(ty | 0x8000);
                w.u16(*value);
            }
            Attribute::Tlv { ty, value } => {
                w.u16(*ty & 0x7fff);
                w.u16(value.len() as u16);
                w.bytes(value);
            }
        }
    }
}

pub fn emit_sa(ps: &[Proposal], w: &mut Writer) {
    for (i, p) in ps.iter().enumerate() {
        p.emit(w, i + 1 == ps.len());
    }
}

// | Diffie-Hellman Group Num    |           RESERVED              |
// ~                       Key Exchange Data                       ~
/// Key Exchange payload (RFC 7296 3.4).
#[derive(Clone, PartialEq, Eq)]
pub struct KeyExchange {
    pub group: u16,
    pub data: Vec<u8>,
}

impl std::fmt::Debug for KeyExchange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KE(group {}, {} octets)", self.group, self.data.len())
    }
}

impl KeyExchange {
    fn parse(body: &[u8]) -> Result<KeyExchange, ParseError> {
        let mut r = Reader::new(body, "KE payload");
        let group = r.u16()?;
        r.u16()?;
        let data = r.rest().to_vec();
        if data.is_empty() {
            return Err(ParseError::Malformed { what: "KE payload", why: "no key exchange data" });
        }
        Ok(KeyExchange { group, data })
    }

    fn emit(&self, w: &mut Writer) {
        w.u16(self.group);
        w.u16(0);
        w.bytes(&self.data);
    }
}

// |   ID Type     |                 RESERVED                      |
// ~                   Identification Data                         ~
/// IDi / IDr (RFC 7296 3.5).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Identification {
    pub ty: IdType,
    pub data: Vec<u8>,
}

impl Identification {
    fn parse(body: &[u8]) -> Result<Identification, ParseError> {
        let mut r = Reader::new(body, "ID payload");
        let ty = IdType::from_value(r.u8()?);
        r.take(3)?;
        Ok(Identification { ty, data: r.rest().to_vec() })
    }

    fn emit(&self, w: &mut Writer) {
        w.u8(self.ty.value());
        w.bytes(&[0, 0, 0]);
        w.bytes(&self.data);
    }

    /// The octets AUTH signs: the ID payload without its generic header
    /// (RFC 7296 2.15, "RestOfInitIDPayload").
    pub fn rest_of_payload(&self) -> Vec<u8> {
        let mut w = Writer::new();
        self.emit(&mut w);
        w.buf
    }

    /// An identity as operators write it: an address, `user@domain`, or a name.
    pub fn from_text(s: &str) -> Identification {
        match s.parse::<IpAddr>() {
            Ok(IpAddr::V4(a)) => Identification { ty: IdType::Ipv4Addr, data: a.octets().to_vec() },
            Ok(IpAddr::V6(a)) => Identification { ty: IdType::Ipv6Addr, data: a.octets().to_vec() },
            Err(_) if s.contains('@') => Identification { ty: IdType::Rfc822Addr, data: s.as_bytes().to_vec() },
            Err(_) => Identification { ty: IdType::Fqdn, data: s.as_bytes().to_vec() },
        }
    }

    pub fn to_text(&self) -> String {
        match self.ty {
            IdType::Ipv4Addr if self.data.len() == 4 => {
                Ipv4Addr::new(self.data[0], self.data[1], self.data[2], self.data[3]).to_string()
            }
            IdType::Ipv6Addr if self.data.len() == 16 => {
                let mut a = [0u8; 16];
                a.copy_from_slice(&self.data);
                Ipv6Addr::from(a).to_string()
            }
            IdType::Fqdn | IdType::Rfc822Addr => String::from_utf8_lossy(&self.data).into_owned(),
            IdType::DerAsn1Dn => crate::ike::pki::dn_text(&self.data)
                .unwrap_or_else(|| self.data.iter().map(|b| format!("{b:02x}")).collect()),
            _ => self.data.iter().map(|b| format!("{b:02x}")).collect(),
        }
    }
}

// | Cert Encoding |                                               |
// +-+-+-+-+-+-+-+-+                                               |
// ~                       Certificate Data                        ~
/// CERT (3.6) and CERTREQ (3.7): kept as octets; we authenticate with PSK.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Certificate {
    pub encoding: u8,
    pub data: Vec<u8>,
}

impl Certificate {
    fn parse(body: &[u8]) -> Result<Certificate, ParseError> {
        let mut r = Reader::new(body, "CERT payload");
        Ok(Certificate { encoding: r.u8()?, data: r.rest().to_vec() })
    }

    fn emit(&self, w: &mut Writer) {
        w.u8(self.encoding);
        w.bytes(&self.data);
    }
}

// | Auth Method   |                RESERVED                       |
// ~                      Authentication Data                      ~
/// AUTH (RFC 7296 3.8).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authentication {
    pub method: AuthMethod,
    pub data: Vec<u8>,
}

impl Authentication {
    fn parse(body: &[u8]) -> Result<Authentication, ParseError> {
        let mut r = Reader::new(body, "AUTH payload");
        let method = AuthMethod::from_value(r.u8()?);
        r.take(3)?;
        Ok(Authentication { method, data: r.rest().to_vec() })
    }

    fn emit(&self, w: &mut Writer) {
        w.u8(self.method.value());
        w.bytes(&[0, 0, 0]);
        w.bytes(&self.data);
    }
}

// |  Protocol ID  |   SPI Size    |      Notify Message Type      |
// ~                Security Parameter Index (SPI)                 ~
// ~                       Notification Data                       ~
/// Notify (RFC 7296 3.10).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notify {
    pub protocol: ProtocolId,
    pub spi: Vec<u8>,
    pub ty: NotifyType,
    pub data: Vec<u8>,
}

impl Notify {
    pub fn new(ty: NotifyType, data: Vec<u8>) -> Notify {
        Notify { protocol: ProtocolId::None, spi: Vec::new(), ty, data }
    }

    pub fn esp(ty: NotifyType, spi: u32) -> Notify {
        Notify { protocol: ProtocolId::Esp, spi: spi.to_be_bytes().to_vec(), ty, data: Vec::new() }
    }

    /// The 4-octet SPI of an ESP notify (REKEY_SA).
    pub fn esp_spi(&self) -> Option<u32> {
        let b: [u8; 4] = self.spi.as_slice().try_into().ok()?;
        Some(u32::from_be_bytes(b))
    }

    fn parse(body: &[u8]) -> Result<Notify, ParseError> {
        let mut r = Reader::new(body, "Notify payload");
        let protocol = ProtocolId::from_value(r.u8()?);
        let spi_size = r.u8()? as usize;
        let ty = NotifyType::from_value(r.u16()?);
        let spi = r.take(spi_size)?.to_vec();
        Ok(Notify { protocol, spi, ty, data: r.rest().to_vec() })
    }

    fn emit(&self, w: &mut Writer) {
        w.u8(self.protocol.value());
        w.u8(self.spi.len() as u8);
        w.u16(self.ty.value());
        w.bytes(&self.spi);
        w.bytes(&self.data);
    }
}

// | Protocol ID   |   SPI Size    |          Num of SPIs          |
// ~               Security Parameter Index(es) (SPI)              ~
/// Delete (RFC 7296 3.11).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delete {
    pub protocol: ProtocolId,
    /// SPIs of `spi_size` octets each (4 for ESP, none for IKE).
    pub spis: Vec<u32>,
}

impl Delete {
    fn parse(body: &[u8]) -> Result<Delete, ParseError> {
        let mut r = Reader::new(body, "Delete payload");
        let protocol = ProtocolId::from_value(r.u8()?);
        let size = r.u8()?;
        let n = r.u16()? as usize;
        let want = match protocol {
            ProtocolId::Ike => 0,
            _ => 4,
        };
        if size != want {
            return Err(ParseError::Malformed { what: "Delete payload", why: "SPI size does not fit the protocol" });
        }
        let mut spis = Vec::new();
        if want == 4 {
            for _ in 0..n {
                spis.push(r.u32()?);
            }
        }
        r.finish()?;
        Ok(Delete { protocol, spis })
    }

    fn emit(&self, w: &mut Writer) {
        w.u8(self.protocol.value());
        if self.protocol == ProtocolId::Ike {
            w.u8(0);
            w.u16(0);
        } else {
            w.u8(4);
            w.u16(self.spis.len() as u16);
            for s in &self.spis {
                w.u32(*s);
            }
        }
    }
}

// | Number of TSs |                 RESERVED                      |
// ~                       <Traffic Selectors>                     ~
//   |   TS Type     |IP Protocol ID*|       Selector Length         |
//   |           Start Port*         |           End Port*           |
//   ~                         Starting Address*                     ~
//   ~                         Ending Address*                       ~
/// One traffic selector (RFC 7296 3.13.1): an address range, a protocol
/// (0 = any) and a port range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TrafficSelector {
    pub protocol: u8,
    pub start_port: u16,
    pub end_port: u16,
    pub start: IpAddr,
    pub end: IpAddr,
}

pub fn parse_ts(body: &[u8]) -> Result<Vec<TrafficSelector>, ParseError> {
    let mut r = Reader::new(body, "TS payload");
    let n = r.u8()?;
    r.take(3)?;
    let mut out = Vec::new();
    for _ in 0..n {
        let ty = TsType::from_value(r.u8()?);
        let protocol = r.u8()?;
        let len = r.u16()? as usize;
        let alen = match ty {
            TsType::Ipv4AddrRange => 4,
            TsType::Ipv6AddrRange => 16,
            TsType::Unknown(_) => {
                // Unknown selector types cannot be narrowed: skip them.
                if len < 4 {
                    return Err(ParseError::BadLength { what: "traffic selector", len });
                }
                r.take(len - 4)?;
                continue;
            }
        };
        if len != 8 + 2 * alen {
            return Err(ParseError::BadLength { what: "traffic selector", len });
        }
        let start_port = r.u16()?;
        let end_port = r.u16()?;
        let start = addr(r.take(alen)?);
        let end = addr(r.take(alen)?);
        out.push(TrafficSelector { protocol, start_port, end_port, start, end });
    }
    r.finish()?;
    if out.is_empty() {
        return Err(ParseError::Malformed { what: "TS payload", why: "no usable traffic selector" });
    }
    Ok(out)
}

fn addr(b: &[u8]) -> IpAddr {
    match b.len() {
        4 => IpAddr::V4(Ipv4Addr::new(b[0], b[1], b[2], b[3])),
        _ => {
            let mut a = [0u8; 16];
            a.copy_from_slice(b);
            IpAddr::V6(Ipv6Addr::from(a))
        }
    }
}

fn put_addr(w: &mut Writer, a: IpAddr) {
    match a {
        IpAddr::V4(a) => w.bytes(&a.octets()),
        IpAddr::V6(a) => w.bytes(&a.octets()),
    }
}

pub fn emit_ts(ts: &[TrafficSelector], w: &mut Writer) {
    w.u8(ts.len() as u8);
    w.bytes(&[0, 0, 0]);
    for t in ts {
        let v6 = t.start.is_ipv6();
        w.u8(if v6 { TsType::Ipv6AddrRange.value() } else { TsType::Ipv4AddrRange.value() });
        w.u8(t.protocol);
        w.u16(if v6 { 40 } else { 16 });
        w.u16(t.start_port);
        w.u16(t.end_port);
        put_addr(w, t.start);
        put_addr(w, t.end);
    }
}

// |   CFG Type    |                    RESERVED                   |
// ~                   Configuration Attributes                    ~
//   |R|         Attribute Type      |            Length             |
//   ~                             Value                             ~
/// Configuration payload (RFC 7296 3.15).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Configuration {
    pub ty: CfgType,
    pub attrs: Vec<(CfgAttr, Vec<u8>)>,
}

impl Configuration {
    fn parse(body: &[u8]) -> Result<Configuration, ParseError> {
        let mut r = Reader::new(body, "CP payload");
        let ty = CfgType::from_value(r.u8()?);
        r.take(3)?;
        let mut attrs = Vec::new();
        while !r.is_empty() {
            let t = CfgAttr::from_value(r.u16()? & 0x7fff);
            let len = r.u16()? as usize;
            attrs.push((t, r.take(len)?.to_vec()));
        }
        Ok(Configuration { ty, attrs })
    }

    fn emit(&self, w: &mut Writer) {
        w.u8(self.ty.value());
        w.bytes(&[0, 0, 0]);
        for (t, v) in &self.attrs {
            w.u16(t.value() & 0x7fff);
            w.u16(v.len() as u16);
            w.bytes(v);
        }
    }
}

//                      1                   2                   3
//  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// | Next Payload  |C|  RESERVED   |         Payload Length        |
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// |                         GateWay's SPI                         |
// |                                                               |
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// |              GateWay's IP Address (4 or 16 octets)            |
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// The IKE_SA_SYN payload's body (draft-xu-ike-sa-sync 3.6; NOTES.md: the
/// address family from the length, C = 0): the old gateway's SPI and
/// address, the index of a stub.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IkeSaSyn {
    pub spi: u64,
    pub gateway: IpAddr,
}

impl IkeSaSyn {
    fn parse(body: &[u8]) -> Result<IkeSaSyn, ParseError> {
        let mut r = Reader::new(body, "IKE_SA_SYN payload");
        let spi = r.u64()?;
        let gateway = match r.left() {
            4 => IpAddr::from(<[u8; 4]>::try_from(r.take(4)?).expect("4 octets")),
            16 => IpAddr::from(<[u8; 16]>::try_from(r.take(16)?).expect("16 octets")),
            n => return Err(ParseError::BadLength { what: "IKE_SA_SYN gateway address", len: n }),
        };
        Ok(IkeSaSyn { spi, gateway })
    }

    fn emit(&self, w: &mut Writer) {
        w.u64(self.spi);
        match self.gateway {
            IpAddr::V4(a) => w.bytes(&a.octets()),
            IpAddr::V6(a) => w.bytes(&a.octets()),
        }
    }
}
