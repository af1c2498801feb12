//! MOBIKE-X notify parameters (draft-mglt-ipsec-mm-mobikex 11.4): the
//! data of MOBIKE_SUPPORTED, MOBIKE_UNSUPPORTED_VERSION, SELECTOR,
//! UPDATE_SA_ADDRESSES, ADD_SA_ADDRESS, REMOVE_SA_ADDRESS and
//! ADDITIONAL_IP_ADDRESS is a sequence of parameters, each starting with
//! an 8-bit TYPE (NOTES.md) whose value fixes its length:
//!
//! ```text
//! VERSION   TYPE=1 | NBR | VERS * NBR | zero padding to 4 octets  (11.4.1)
//! SPI       TYPE=2 | SPI_SIZE | RESERVED(16) | SPI, padded to 4   (11.4.2)
//! IP        TYPE=3 | M V(2) C O N H I | RESERVED(16)              (11.4.3)
//!           [ Multihoming Information, 12 octets, if M ]          (11.4.4)
//!           address: 4 octets (V=0) or 16 (V=1)
//! IPSEC_MODE  TYPE=4 | mode | RESERVED(16)                        (11.4.5)
//! IPSEC_PROTO TYPE=5 | protocol | RESERVED(16)                    (11.4.6)
//! SELECTOR_SPECIFIC_VALUE TYPE=6 | value | RESERVED(16)           (11.4.7)
//! ID        TYPE=7 | RESERVED(8) | IDENTIFIER(16)                 (11.4.8)
//! ```
//!
//! Reserved bits are sent as zero and ignored on receipt. Every rejection
//! is a [`ParamError`]; the responder answers it with
//! UNACCEPTABLE_PARAMETER (11.3.4).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::codepoints::{MobikeVersion, MobikexParameter, NotifyType, ProtocolId};
use crate::wire::{ParseError, Reader, Writer};

/// Octets of the Multihoming Information (11.4.4).
const MIP_LEN: usize = 12;

/// The IP parameter's flag octet (11.4.3): M, V (2 bits), C, O, N, H, I.
const FLAG_M: u8 = 0x80;
const V_SHIFT: u8 = 5;
const V_MASK: u8 = 0x60;
const FLAG_C: u8 = 0x10;
const FLAG_O: u8 = 0x08;
const FLAG_N: u8 = 0x04;
const FLAG_H: u8 = 0x02;
const FLAG_I: u8 = 0x01;

/// V in the IP parameter: 0 = IPv4, 1 = IPv6 (the normative text of
/// 11.4.3; its table swaps them, NOTES.md).
const V_IPV4: u8 = 0;
const V_IPV6: u8 = 1;

/// IPSEC_MODE values (11.4.5, from the ISAKMP Encapsulation Mode registry).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IpsecMode {
    Tunnel = 1,
    Transport = 2,
    UdpTunnel = 3,
    UdpTransport = 4,
}

impl IpsecMode {
    fn from_u8(v: u8) -> Option<Self> {
        Some(match v {
            1 => IpsecMode::Tunnel,
            2 => IpsecMode::Transport,
            3 => IpsecMode::UdpTunnel,
            4 => IpsecMode::UdpTransport,
            _ => return None,
        })
    }

    /// Whether an SA in transport mode (`transport`), UDP-encapsulated or
    /// not (`udp`), is of this mode.
    pub fn matches(self, transport: bool, udp: bool) -> bool {
        match self {
            IpsecMode::Tunnel => !transport,
            IpsecMode::Transport => transport,
            IpsecMode::UdpTunnel => !transport && udp,
            IpsecMode::UdpTransport => transport && udp,
        }
    }
}

/// SELECTOR_SPECIFIC_VALUE values (11.4.7). The table leaves 1 out; we
/// take no meaning for it (UNACCEPTABLE_PARAMETER).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SelectorValue {
    /// The IKE SA and all its child SAs: the default of UPDATE, ADD and
    /// REMOVE (section 8).
    IkeSaAndChildSa = 2,
    /// The IKE SA itself (the default of ADDITIONAL_IP_ADDRESS).
    AllIkeSa = 3,
}

/// CLASS in the Multihoming Information (11.4.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AddressClass {
    None,
    /// Home address (Mobile IPv6).
    HoA,
    /// Care-of address.
    CoA,
    Other(u8),
}

impl AddressClass {
    fn from_u8(v: u8) -> Self {
        match v {
            0 => AddressClass::None,
            1 => AddressClass::HoA,
            2 => AddressClass::CoA,
            o => AddressClass::Other(o),
        }
    }

    fn value(self) -> u8 {
        match self {
            AddressClass::None => 0,
            AddressClass::HoA => 1,
            AddressClass::CoA => 2,
            AddressClass::Other(o) => o,
        }
    }
}

/// R in the Multihoming Information (11.4.4), 2 bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reachability {
    NoInfo = 0,
    Reachable = 1,
    Unreachable = 2,
    Reserved = 3,
}

impl Reachability {
    fn from_bits(v: u8) -> Self {
        match v & 3 {
            0 => Reachability::NoInfo,
            1 => Reachability::Reachable,
            2 => Reachability::Unreachable,
            _ => Reachability::Reserved,
        }
    }
}

/// The Multihoming Information of an IP parameter (11.4.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Multihoming {
    /// Higher is preferred.
    pub preference: u8,
    pub class: AddressClass,
    pub reachability: Reachability,
    /// Seconds to wait before using the address.
    pub start_time: u32,
    /// Seconds the address is valid; 0 = for ever.
    pub lifetime: u32,
}

/// An IP parameter (11.4.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IpParam {
    pub addr: IpAddr,
    /// C: only check that the action would be accepted.
    pub check: bool,
    /// O: the address being replaced (UPDATE).
    pub old: bool,
    /// N: the replacing address (UPDATE).
    pub new: bool,
    /// H: the routed header's address (tunnel: outer; transport: the SA's).
    pub header: bool,
    /// I: an inner (tunnelled) address.
    pub inner: bool,
    pub multihoming: Option<Multihoming>,
}

impl IpParam {
    /// An outer address with nothing else said (H=1).
    pub fn header(addr: IpAddr) -> Self {
        IpParam { addr, check: false, old: false, new: false, header: true, inner: false, multihoming: None }
    }
}

/// One parameter.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Param {
    /// VERSION: the versions offered or chosen, in order (11.4.1).
    Version(Vec<MobikeVersion>),
    /// SPI: an ESP/AH SPI (4 octets) or an IKE SA SPI (8 octets).
    Spi(Vec<u8>),
    Ip(IpParam),
    IpsecMode(IpsecMode),
    IpsecProto(ProtocolId),
    SelectorValue(SelectorValue),
    /// ID: binds a response notify to its request (section 10).
    Id(u16),
}

/// Why parameters were refused: each is UNACCEPTABLE_PARAMETER (11.3.4).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParamError {
    #[error(transparent)]
    Syntax(#[from] ParseError),
    #[error("unknown MOBIKE-X parameter type {0}")]
    UnknownType(u8),
    #[error("VERSION parameter without versions")]
    NoVersion,
    #[error("VERSION parameter: padding is not zero")]
    Padding,
    #[error("SPI parameter of {0} octets (4 or 8)")]
    SpiSize(u8),
    #[error("IP parameter: IP version field {0} (0 = IPv4, 1 = IPv6)")]
    IpVersion(u8),
    #[error("IPSEC_MODE {0} is not a mode")]
    Mode(u8),
    #[error("SELECTOR_SPECIFIC_VALUE {0} means nothing")]
    SelectorValue(u8),
    #[error("{0}")]
    Misplaced(&'static str),
}

impl ParamError {
    pub fn notify(&self) -> NotifyType {
        NotifyType::UnacceptableParameter
    }
}

fn padded(n: usize) -> usize {
    n.div_ceil(4) * 4
}

impl Param {
    fn parse(r: &mut Reader<'_>) -> Result<Param, ParamError> {
        let ty = r.u8()?;
        Ok(match MobikexParameter::from_value(ty) {
            MobikexParameter::Version => {
                let nbr = r.u8()? as usize;
                if nbr == 0 {
                    return Err(ParamError::NoVersion);
                }
                let v = r.take(nbr)?.iter().map(|&b| MobikeVersion::from_value(b)).collect();
                if r.take(padded(2 + nbr) - 2 - nbr)?.iter().any(|&b| b != 0) {
                    return Err(ParamError::Padding);
                }
                Param::Version(v)
            }
            MobikexParameter::Spi => {
                let size = r.u8()?;
                if size != 4 && size != 8 {
                    return Err(ParamError::SpiSize(size));
                }
                r.u16()?;
                Param::Spi(r.take(size as usize)?.to_vec())
            }
            MobikexParameter::Ip => {
                let f = r.u8()?;
                r.u16()?;
                let multihoming = if f & FLAG_M != 0 {
                    Some(parse_mip(&mut r.sub(MIP_LEN, "Multihoming Information")?)?)
                } else {
                    None
                };
                let addr = match (f & V_MASK) >> V_SHIFT {
                    V_IPV4 => IpAddr::V4(Ipv4Addr::from(<[u8; 4]>::try_from(r.take(4)?).unwrap_or_default())),
                    V_IPV6 => IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(r.take(16)?).unwrap_or_default())),
                    other => return Err(ParamError::IpVersion(other)),
                };
                Param::Ip(IpParam {
                    addr,
                    check: f & FLAG_C != 0,
                    old: f & FLAG_O != 0,
                    new: f & FLAG_N != 0,
                    header: f & FLAG_H != 0,
                    inner: f & FLAG_I != 0,
                    multihoming,
                })
            }
            MobikexParameter::IpsecMode => {
                let v = r.u8()?;
                r.u16()?;
                Param::IpsecMode(IpsecMode::from_u8(v).ok_or(ParamError::Mode(v))?)
            }
            MobikexParameter::IpsecProto => {
                let v = r.u8()?;
                r.u16()?;
                Param::IpsecProto(ProtocolId::from_value(v))
            }
            MobikexParameter::SelectorSpecificValue => {
                let v = r.u8()?;
                r.u16()?;
                Param::SelectorValue(match v {
                    2 => SelectorValue::IkeSaAndChildSa,
                    3 => SelectorValue::AllIkeSa,
                    other => return Err(ParamError::SelectorValue(other)),
                })
            }
            MobikexParameter::Id => {
                r.u8()?;
                Param::Id(r.u16()?)
            }
            MobikexParameter::Unknown(t) => return Err(ParamError::UnknownType(t)),
        })
    }

    fn emit(&self, w: &mut Writer) {
        match self {
            Param::Version(v) => {
                w.u8(MobikexParameter::Version.value());
                w.u8(v.len() as u8);
                v.iter().for_each(|x| w.u8(x.value()));
                (2 + v.len()..padded(2 + v.len())).for_each(|_| w.u8(0));
            }
            Param::Spi(s) => {
                w.u8(MobikexParameter::Spi.value());
                w.u8(s.len() as u8);
                w.u16(0);
                w.bytes(s);
                (s.len()..padded(s.len())).for_each(|_| w.u8(0));
            }
            Param::Ip(p) => {
                let v = if p.addr.is_ipv4() { V_IPV4 } else { V_IPV6 };
                let bit = |b: bool, f: u8| if b { f } else { 0 };
                w.u8(MobikexParameter::Ip.value());
                w.u8(bit(p.multihoming.is_some(), FLAG_M)
                    | (v << V_SHIFT)
                    | bit(p.check, FLAG_C)
                    | bit(p.old, FLAG_O)
                    | bit(p.new, FLAG_N)
                    | bit(p.header, FLAG_H)
                    | bit(p.inner, FLAG_I));
                w.u16(0);
                if let Some(m) = p.multihoming {
                    w.u8(m.preference);
                    w.u8(m.class.value());
                    w.u16((m.reachability as u16) << 14);
                    w.u32(m.start_time);
                    w.u32(m.lifetime);
                }
                match p.addr {
                    IpAddr::V4(a) => w.bytes(&a.octets()),
                    IpAddr::V6(a) => w.bytes(&a.octets()),
                }
            }
            Param::IpsecMode(m) => short(w, MobikexParameter::IpsecMode, *m as u8),
            Param::IpsecProto(p) => short(w, MobikexParameter::IpsecProto, p.value()),
            Param::SelectorValue(v) => short(w, MobikexParameter::SelectorSpecificValue, *v as u8),
            Param::Id(id) => {
                w.u8(MobikexParameter::Id.value());
                w.u8(0);
                w.u16(*id);
            }
        }
    }
}

/// The 4-octet parameters: TYPE, one octet of value, RESERVED(16).
fn short(w: &mut Writer, ty: MobikexParameter, v: u8) {
    w.u8(ty.value());
    w.u8(v);
    w.u16(0);
}

fn parse_mip(r: &mut Reader<'_>) -> Result<Multihoming, ParamError> {
    let preference = r.u8()?;
    let class = AddressClass::from_u8(r.u8()?);
    let reachability = Reachability::from_bits((r.u16()? >> 14) as u8);
    Ok(Multihoming { preference, class, reachability, start_time: r.u32()?, lifetime: r.u32()? })
}

/// Every parameter of a notify's data, in order.
pub fn parse(data: &[u8]) -> Result<Vec<Param>, ParamError> {
    let mut r = Reader::new(data, "MOBIKE-X parameter");
    let mut v = Vec::new();
    while !r.is_empty() {
        v.push(Param::parse(&mut r)?);
    }
    Ok(v)
}

/// The data of a notify carrying `params`.
pub fn emit(params: &[Param]) -> Vec<u8> {
    let mut w = Writer::new();
    params.iter().for_each(|p| p.emit(&mut w));
    w.buf
}

/// The ID parameter among `params`: none, or exactly one (7.5: two are
/// UNACCEPTABLE_PARAMETER).
pub fn id_of(params: &[Param]) -> Result<Option<u16>, ParamError> {
    let mut ids = params.iter().filter_map(|p| if let Param::Id(i) = p { Some(*i) } else { None });
    match (ids.next(), ids.next()) {
        (_, Some(_)) => Err(ParamError::Misplaced("more than one ID parameter")),
        (id, None) => Ok(id),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round(p: Vec<Param>) -> Vec<u8> {
        let b = emit(&p);
        assert_eq!(b.len() % 4, 0, "every parameter ends on a 4-octet boundary: {b:02x?}");
        assert_eq!(parse(&b).unwrap(), p);
        b
    }

    /// 11.4.1: TYPE, NBR, the versions, zero padding to 32 bits.
    #[test]
    fn version_layout() {
        let b = round(vec![Param::Version(vec![MobikeVersion::MobikeX, MobikeVersion::Mobike])]);
        assert_eq!(b, [1, 2, 2, 1]);
        let b = round(vec![Param::Version(vec![MobikeVersion::MobikeX])]);
        assert_eq!(b, [1, 1, 2, 0]);
        let b = round(vec![Param::Version(vec![MobikeVersion::MobikeX, MobikeVersion::Mobike, MobikeVersion::None])]);
        assert_eq!(b, [1, 3, 2, 1, 255, 0, 0, 0]);
        assert_eq!(parse(&[1, 0, 0, 0]), Err(ParamError::NoVersion));
        assert_eq!(parse(&[1, 1, 2, 7]), Err(ParamError::Padding));
        assert!(matches!(parse(&[1, 3, 2, 1]), Err(ParamError::Syntax(_))), "truncated");
    }

    /// 11.4.3: the flag octet M V V C O N H I; V = 0 is IPv4, 1 is IPv6.
    #[test]
    fn ip_layout_v4_and_v6() {
        let mut p = IpParam::header("192.0.2.7".parse().unwrap());
        p.new = true;
        let b = round(vec![Param::Ip(p)]);
        assert_eq!(b, [3, 0b0000_0110, 0, 0, 192, 0, 2, 7]);
        let mut p = IpParam::header("2001:db8::7".parse().unwrap());
        p.old = true;
        p.check = true;
        let b = round(vec![Param::Ip(p)]);
        assert_eq!(&b[..4], [3, 0b0011_1010, 0, 0]);
        assert_eq!(b.len(), 4 + 16);
        assert_eq!(parse(&[3, 0b0100_0010, 0, 0, 1, 2, 3, 4]), Err(ParamError::IpVersion(2)));
        assert_eq!(parse(&[3, 0b0110_0010, 0, 0, 1, 2, 3, 4]), Err(ParamError::IpVersion(3)));
        assert!(matches!(parse(&[3, 0b0010_0010, 0, 0, 1, 2, 3, 4]), Err(ParamError::Syntax(_))), "V=1 needs 16");
    }

    /// 11.4.4: the Multihoming Information follows the flags when M = 1.
    #[test]
    fn multihoming_information() {
        let mut p = IpParam::header("198.51.100.1".parse().unwrap());
        p.multihoming = Some(Multihoming {
            preference: 200,
            class: AddressClass::CoA,
            reachability: Reachability::Reachable,
            start_time: 5,
            lifetime: 3600,
        });
        let b = round(vec![Param::Ip(p), Param::Id(9)]);
        assert_eq!(&b[..16], [3, 0x82, 0, 0, 200, 2, 0x40, 0, 0, 0, 0, 5, 0, 0, 0x0e, 0x10]);
        assert_eq!(&b[16..20], [198, 51, 100, 1]);
        assert_eq!(&b[20..], [7, 0, 0, 9]);
        // M set but the information cut short.
        assert!(matches!(parse(&b[..10]), Err(ParamError::Syntax(_))));
    }

    /// 11.4.2, 11.4.5 to 11.4.8.
    #[test]
    fn short_parameters() {
        let b = round(vec![
            Param::Spi(vec![0xde, 0xad, 0xbe, 0xef]),
            Param::Spi(vec![1, 2, 3, 4, 5, 6, 7, 8]),
            Param::IpsecMode(IpsecMode::Transport),
            Param::IpsecProto(ProtocolId::Esp),
            Param::SelectorValue(SelectorValue::IkeSaAndChildSa),
            Param::Id(0x1234),
        ]);
        assert_eq!(&b[..8], [2, 4, 0, 0, 0xde, 0xad, 0xbe, 0xef]);
        assert_eq!(&b[20..], [4, 2, 0, 0, 5, 3, 0, 0, 6, 2, 0, 0, 7, 0, 0x12, 0x34]);
        assert_eq!(parse(&[2, 3, 0, 0, 1, 2, 3]), Err(ParamError::SpiSize(3)));
        assert_eq!(parse(&[4, 9, 0, 0]), Err(ParamError::Mode(9)));
        assert_eq!(parse(&[6, 1, 0, 0]), Err(ParamError::SelectorValue(1)));
        assert_eq!(parse(&[6, 0, 0, 0]), Err(ParamError::SelectorValue(0)));
        assert_eq!(parse(&[0, 0, 0, 0]), Err(ParamError::UnknownType(0)));
        assert_eq!(parse(&[8, 0, 0, 0]), Err(ParamError::UnknownType(8)));
        assert!(matches!(parse(&[7, 0, 1]), Err(ParamError::Syntax(_))));
        assert_eq!(parse(&[]), Ok(vec![]));
    }

    /// Reserved octets are ignored on receipt, sent as zero.
    #[test]
    fn reserved_ignored() {
        assert_eq!(parse(&[7, 0xff, 0, 1]), Ok(vec![Param::Id(1)]));
        assert_eq!(parse(&[5, 3, 0xff, 0xff]), Ok(vec![Param::IpsecProto(ProtocolId::Esp)]));
    }

    #[test]
    fn every_error_is_unacceptable_parameter() {
        for bad in [&[1u8, 0, 0, 0][..], &[9, 0, 0, 0], &[3, 0x60, 0, 0], &[2, 1, 0, 0, 1, 0, 0, 0]] {
            assert_eq!(parse(bad).unwrap_err().notify(), NotifyType::UnacceptableParameter);
        }
    }

    #[test]
    fn one_id_at_most() {
        assert_eq!(id_of(&[Param::Id(1)]), Ok(Some(1)));
        assert_eq!(id_of(&[]), Ok(None));
        assert!(id_of(&[Param::Id(1), Param::Id(2)]).is_err());
    }
}
