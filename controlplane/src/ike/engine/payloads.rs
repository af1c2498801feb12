//! What the exchanges read out of a message's payloads, and the framing of
//! what they send (RFC 3948 2.2's non-ESP marker on port 4500).

use std::net::SocketAddr;

use crate::codepoints::{DhGroup, NotifyType, IKE_PORT};
use crate::wire::{Authentication, Identification, KeyExchange, Notify, Payload, Proposal, TrafficSelector};

pub(super) fn notify(payloads: &[Payload], ty: NotifyType) -> Option<&Notify> {
    payloads.iter().find_map(|p| match p {
        Payload::Notify(n) if n.ty == ty => Some(n),
        _ => None,
    })
}

/// `payloads` carry a Vendor ID payload with exactly `id`.
pub(super) fn has_vendor_id(payloads: &[Payload], id: &[u8]) -> bool {
    payloads.iter().any(|x| matches!(x, Payload::VendorId(v) if v.as_slice() == id))
}

pub(super) fn has_notify(payloads: &[Payload], ty: NotifyType) -> bool {
    notify(payloads, ty).is_some()
}

pub(super) fn nonce(payloads: &[Payload]) -> Option<&Vec<u8>> {
    payloads.iter().find_map(|p| if let Payload::Nonce(n) = p { Some(n) } else { None })
}

pub(super) fn sa(payloads: &[Payload]) -> Option<&Vec<Proposal>> {
    payloads.iter().find_map(|p| if let Payload::Sa(s) = p { Some(s) } else { None })
}

pub(super) fn ke(payloads: &[Payload]) -> Option<&KeyExchange> {
    payloads.iter().find_map(|p| if let Payload::Ke(k) = p { Some(k) } else { None })
}

pub(super) fn tsi(payloads: &[Payload]) -> Option<&Vec<TrafficSelector>> {
    payloads.iter().find_map(|p| if let Payload::TsI(t) = p { Some(t) } else { None })
}

pub(super) fn tsr(payloads: &[Payload]) -> Option<&Vec<TrafficSelector>> {
    payloads.iter().find_map(|p| if let Payload::TsR(t) = p { Some(t) } else { None })
}

pub(super) fn idi(payloads: &[Payload]) -> Option<&Identification> {
    payloads.iter().find_map(|p| if let Payload::IdI(i) = p { Some(i) } else { None })
}

pub(super) fn idr(payloads: &[Payload]) -> Option<&Identification> {
    payloads.iter().find_map(|p| if let Payload::IdR(i) = p { Some(i) } else { None })
}

pub(super) fn auth(payloads: &[Payload]) -> Option<&Authentication> {
    payloads.iter().find_map(|p| if let Payload::Auth(a) = p { Some(a) } else { None })
}

/// The DH group of a KE payload, if there is one (PFS).
pub(super) fn ke_group(payloads: &[Payload]) -> Option<DhGroup> {
    ke(payloads).map(|k| DhGroup::from_value(k.group))
}

/// The SPI of proposal number `num` of an offer, as 4 octets (ESP).
pub(super) fn offer_spi(offer: &[Proposal], num: u8) -> Option<u32> {
    let p = offer.iter().find(|p| p.num == num)?;
    let b: [u8; 4] = p.spi.as_slice().try_into().ok()?;
    Some(u32::from_be_bytes(b))
}

/// The lower of two nonces (RFC 7296 2.8.1: who wins a collision).
pub(super) fn lowest<'a>(a: &'a [u8], b: &'a [u8]) -> Vec<u8> {
    if a <= b {
        a.to_vec()
    } else {
        b.to_vec()
    }
}

/// An IKE message as UDP payload from `local`: on any port but 500
/// (4500 after NAT detection) with the four-zero non-ESP marker in front
/// (RFC 3948 2.2).
pub(super) fn frame(local: SocketAddr, ike: Vec<u8>) -> Vec<u8> {
    if local.port() == IKE_PORT {
        return ike;
    }
    let mut v = Vec::with_capacity(4 + ike.len());
    v.extend_from_slice(&[0, 0, 0, 0]);
    v.extend_from_slice(&ike);
    v
}
