//! Codec tests: a hand-assembled message checked octet by octet, round trips
//! of arbitrary payload chains, every truncation, and one test per rejection
//! with the notify it maps to.

use std::net::IpAddr;

use proptest::prelude::*;

use super::message::{emit_chain, parse_chain};
use super::*;
use crate::codepoints::{
    AuthMethod, CfgAttr, CfgType, ExchangeType, IdType, NotifyType, PayloadType, ProtocolId, TransformType,
};

fn header(next: PayloadType, len: usize) -> Vec<u8> {
    let mut h = vec![0x11; 8];
    h.extend([0u8; 8]);
    h.extend([next.value(), 0x20, ExchangeType::IkeSaInit.value(), 0x08]);
    h.extend(0u32.to_be_bytes());
    h.extend((len as u32).to_be_bytes());
    h
}

/// An IKE_SA_INIT request written out by hand from the layouts of RFC 7296
/// section 3: SA (one proposal, ENCR_AES_GCM_16/128, PRF_HMAC_SHA2_256,
/// group 31), KE, Nonce, a Notify. Parse must yield exactly these fields,
/// and emit must give the same octets back.
#[test]
fn a_hand_written_ike_sa_init_parses_and_emits_identically() {
    #[rustfmt::skip]
    let sa: Vec<u8> = vec![
        0x22, 0x00, 0x00, 0x28,             // generic: next KE, length 40
        0x00, 0x00, 0x00, 0x24,             // proposal: last, length 36
        0x01, 0x01, 0x00, 0x03,             // #1, IKE, no SPI, 3 transforms
        0x03, 0x00, 0x00, 0x0c,             // transform, more follow, length 12
        0x01, 0x00, 0x00, 0x14,             // ENCR 20 (AES-GCM-16)
        0x80, 0x0e, 0x00, 0x80,             // TV key length 128
        0x03, 0x00, 0x00, 0x08, 0x02, 0x00, 0x00, 0x05, // PRF 5 (HMAC-SHA2-256)
        0x00, 0x00, 0x00, 0x08, 0x04, 0x00, 0x00, 0x1f, // D-H 31, last
    ];
    let mut ke = vec![0x28, 0x00, 0x00, 0x28, 0x00, 0x1f, 0x00, 0x00];
    ke.extend([0xab; 32]);
    let mut nonce = vec![0x29, 0x00, 0x00, 0x14];
    nonce.extend([0xcd; 16]);
    // NAT_DETECTION_SOURCE_IP (16388) with a 20-octet hash; last payload.
    let mut notify = vec![0x00, 0x00, 0x00, 0x1c, 0x00, 0x00, 0x40, 0x04];
    notify.extend([0xef; 20]);
    let body = [sa, ke, nonce, notify].concat();
    let mut m = header(PayloadType::SecurityAssociation, 28 + body.len());
    m.extend(&body);

    let msg = Message::parse(&m).unwrap();
    assert_eq!(msg.header.spi_i, 0x1111_1111_1111_1111);
    assert_eq!(msg.header.exchange, ExchangeType::IkeSaInit);
    assert!(msg.header.flags.initiator && !msg.header.flags.response);
    assert_eq!(msg.sk, None);
    let want = vec![
        Payload::Sa(vec![Proposal {
            num: 1,
            protocol: ProtocolId::Ike,
            spi: vec![],
            transforms: vec![
                Transform::with_key_len(TransformType::Encryption, 20, 128),
                Transform::new(TransformType::Prf, 5),
                Transform::new(TransformType::KeyExchange, 31),
            ],
        }]),
        Payload::Ke(KeyExchange { group: 31, data: vec![0xab; 32] }),
        Payload::Nonce(vec![0xcd; 16]),
        Payload::Notify(Notify::new(NotifyType::NatDetectionSourceIp, vec![0xef; 20])),
    ];
    assert_eq!(msg.payloads, want);
    assert_eq!(Message::emit_clear(msg.header, &msg.payloads), m);
}

/// An Encrypted payload ends the chain; its Next Payload names the first
/// inner payload, and everything before the IV is associated data.
#[test]
fn sk_and_skf_bodies_are_located() {
    let mut m = header(PayloadType::Encrypted, 28 + 4 + 40);
    m.extend([PayloadType::IdentificationInitiator.value(), 0, 0, 44]);
    m.extend([0u8; 40]);
    let msg = Message::parse(&m).unwrap();
    assert_eq!(msg.sk, Some(SkBody { first: PayloadType::IdentificationInitiator, iv_at: 32, fragment: None }));

    let mut f = header(PayloadType::EncryptedFragment, 28 + 8 + 40);
    f.extend([PayloadType::IdentificationInitiator.value(), 0, 0, 48, 0, 2, 0, 3]);
    f.extend([0u8; 40]);
    let msg = Message::parse(&f).unwrap();
    assert_eq!(msg.sk.unwrap().fragment, Some((2, 3)));
    assert_eq!(msg.sk.unwrap().iv_at, 36);
}

// ---- Rejections, each with the notify RFC 7296 asks for -------------------

fn one_payload(ty: PayloadType, critical: bool, body: &[u8]) -> Vec<u8> {
    let mut m = header(ty, 28 + 4 + body.len());
    m.extend([0, if critical { 0x80 } else { 0 }]);
    m.extend(((4 + body.len()) as u16).to_be_bytes());
    m.extend(body);
    m
}

fn rejects(m: &[u8]) -> ParseError {
    Message::parse(m).expect_err("must be rejected")
}

/// draft-xu-ike-sa-sync 3.6 (NOTES.md): IKE_SA_SYN is the gateway's SPI
/// then its address, 4 or 16 octets as the length says; any other length
/// is malformed (INVALID_SYNTAX).
#[test]
fn xu_3_6_ike_sa_syn_payload() {
    for (addr, len) in [("10.80.0.1", 4), ("fd80::1", 16)] {
        let gateway: IpAddr = addr.parse().unwrap();
        let mut body = 0x1122_3344_5566_7788u64.to_be_bytes().to_vec();
        body.extend(match gateway {
            IpAddr::V4(a) => a.octets().to_vec(),
            IpAddr::V6(a) => a.octets().to_vec(),
        });
        assert_eq!(body.len(), 8 + len);
        let m = one_payload(PayloadType::IkeSaSyn, false, &body);
        let want = Payload::Syn(IkeSaSyn { spi: 0x1122_3344_5566_7788, gateway });
        assert_eq!(Message::parse(&m).unwrap().payloads, vec![want.clone()]);
        let mut w = Writer::new();
        want.emit(&mut w);
        assert_eq!(w.buf, body, "emitted octet for octet");
    }
    for n in [0, 7, 8, 11, 13, 23, 25] {
        let m = one_payload(PayloadType::IkeSaSyn, false, &vec![1; n]);
        assert_eq!(rejects(&m).notify().0, NotifyType::InvalidSyntax, "{n} octets");
    }
}

#[test]
fn unknown_payloads_are_skipped_unless_critical() {
    let m = one_payload(PayloadType::Unknown(99), false, &[1, 2, 3]);
    assert_eq!(Message::parse(&m).unwrap().payloads, vec![Payload::Unknown { ty: 99, body: vec![1, 2, 3] }]);
    let e = rejects(&one_payload(PayloadType::Unknown(99), true, &[1, 2, 3]));
    assert_eq!(e, ParseError::UnsupportedCritical(99));
    assert_eq!(e.notify(), (NotifyType::UnsupportedCriticalPayload, vec![99]));
    // RFC 7296 2.5: the critical bit means nothing for a type we know.
    let m = one_payload(PayloadType::VendorId, true, b"vendor");
    assert_eq!(Message::parse(&m).unwrap().payloads, vec![Payload::VendorId(b"vendor".to_vec())]);
    // The same inside an SK payload's plaintext.
    let chain = [0u8, 0x80, 0, 5, 7];
    assert_eq!(parse_chain(PayloadType::Unknown(120), &chain), Err(ParseError::UnsupportedCritical(120)));
}

#[test]
fn a_newer_major_version_is_invalid_major_version() {
    let mut m = one_payload(PayloadType::VendorId, false, b"x");
    m[17] = 0x30;
    let e = rejects(&m);
    assert_eq!(e, ParseError::MajorVersion(3));
    assert_eq!(e.notify().0, NotifyType::InvalidMajorVersion);
    // Minor versions are ignored (RFC 7296 2.5).
    m[17] = 0x27;
    assert!(Message::parse(&m).is_ok());
}

#[test]
fn bad_lengths_are_invalid_syntax() {
    let good = one_payload(PayloadType::VendorId, false, b"abcd");
    // Header length disagrees with the datagram.
    let mut m = good.clone();
    m[27] += 1;
    assert!(matches!(rejects(&m), ParseError::BadLength { what: "IKE header length", .. }));
    // Payload length below its own header, and past the end.
    for len in [0u16, 3, 9, 0xffff] {
        let mut m = good.clone();
        m[30..32].copy_from_slice(&len.to_be_bytes());
        let e = rejects(&m);
        assert!(matches!(e, ParseError::BadLength { what: "payload", .. }), "{len}: {e:?}");
        assert_eq!(e.notify().0, NotifyType::InvalidSyntax);
    }
    // Octets after the last payload.
    let mut m = good.clone();
    m.push(0);
    let n = m.len() as u32;
    m[24..28].copy_from_slice(&n.to_be_bytes());
    assert_eq!(rejects(&m), ParseError::TrailingOctets(1));
    // A header cut short.
    assert!(matches!(Message::parse(&good[..20]), Err(ParseError::Truncated { .. })));
}

#[test]
fn encrypted_payloads_must_come_last_and_not_nest() {
    let mut m = header(PayloadType::Encrypted, 28 + 8 + 8);
    m.extend([PayloadType::VendorId.value(), 0, 0, 8, 0, 0, 0, 0]);
    m.extend([0, 0, 0, 8, 1, 2, 3, 4]);
    assert_eq!(rejects(&m), ParseError::Malformed { what: "SK payload", why: "not the last payload" });
    let inner = [0u8, 0, 0, 8, 0, 0, 0, 0];
    assert!(matches!(parse_chain(PayloadType::Encrypted, &inner), Err(ParseError::Malformed { .. })));
    for (num, total) in [(0u16, 1u16), (1, 0), (3, 2)] {
        let mut f = header(PayloadType::EncryptedFragment, 28 + 8 + 16);
        f.extend([0, 0, 0, 24]);
        f.extend(num.to_be_bytes());
        f.extend(total.to_be_bytes());
        f.extend([0u8; 16]);
        assert!(matches!(rejects(&f), ParseError::Malformed { what: "SKF payload", .. }), "{num}/{total}");
    }
}

/// Each payload's own rules, checked on its body.
#[test]
fn payload_bodies_are_checked() {
    let bad = |ty: PayloadType, body: &[u8]| {
        let e = Payload::parse(ty, body).expect_err("must be rejected");
        assert_eq!(e.notify().0, NotifyType::InvalidSyntax, "{ty:?}: {e:?}");
        e
    };
    // Nonces are 16 to 256 octets.
    bad(PayloadType::Nonce, &[0; 15]);
    bad(PayloadType::Nonce, &[0; 257]);
    // KE needs data.
    bad(PayloadType::KeyExchange, &[0, 31, 0, 0]);
    // Proposals count up from 1; the last-substructure octets agree with
    // the counts; lengths hold what they claim.
    let p = |num: u8, last: u8| vec![last, 0, 0, 16, num, 1, 0, 1, 0, 0, 0, 8, 4, 0, 0, 31];
    assert!(Payload::parse(PayloadType::SecurityAssociation, &[p(1, 2), p(2, 0)].concat()).is_ok());
    bad(PayloadType::SecurityAssociation, &[p(1, 2), p(3, 0)].concat());
    bad(PayloadType::SecurityAssociation, &p(1, 1));
    bad(PayloadType::SecurityAssociation, &p(1, 2));
    let mut t = p(1, 0);
    t[8] = 3; // transform says more follow; the count says it is the last
    bad(PayloadType::SecurityAssociation, &t);
    let mut t = p(1, 0);
    t[11] = 7; // transform length below 8
    bad(PayloadType::SecurityAssociation, &t);
    let mut t = p(1, 0);
    t[3] = 17; // proposal longer than the payload
    bad(PayloadType::SecurityAssociation, &t);
    // A TLV attribute longer than its transform.
    let tlv = [0u8, 0, 0, 20, 1, 1, 0, 1, 0, 0, 0, 12, 1, 0, 0, 12, 0, 1, 0, 9];
    bad(PayloadType::SecurityAssociation, &tlv);
    // Delete: the SPI size must fit the protocol, the SPIs must be there.
    bad(PayloadType::Delete, &[3, 0, 0, 1]);
    bad(PayloadType::Delete, &[1, 4, 0, 0]);
    bad(PayloadType::Delete, &[3, 4, 0, 2, 0, 0, 0, 1]);
    // Traffic selectors: the length fits the type; at least one is usable.
    let ts4 = [1u8, 0, 0, 0, 7, 0, 0, 16, 0, 0, 0xff, 0xff, 10, 0, 0, 0, 10, 0, 0, 255];
    assert!(Payload::parse(PayloadType::TrafficSelectorInitiator, &ts4).is_ok());
    let mut t = ts4;
    t[7] = 40;
    bad(PayloadType::TrafficSelectorInitiator, &t);
    let mut t = ts4;
    t[4] = 99; // an unknown selector type is skipped; then none is left
    bad(PayloadType::TrafficSelectorInitiator, &t);
    let mut t = ts4;
    t[0] = 2; // claims two selectors, holds one
    bad(PayloadType::TrafficSelectorResponder, &t);
    // CP attribute longer than the payload.
    bad(PayloadType::Configuration, &[1, 0, 0, 0, 0, 1, 0, 4, 10]);
}

// ---- Round trips and truncations of arbitrary payload chains ------------

fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..max)
}

fn attribute() -> impl Strategy<Value = Attribute> {
    prop_oneof![
        (0u16..0x8000, any::<u16>()).prop_map(|(ty, value)| Attribute::Tv { ty, value }),
        (0u16..0x8000, bytes(12)).prop_map(|(ty, value)| Attribute::Tlv { ty, value }),
    ]
}

fn proposals() -> impl Strategy<Value = Vec<Proposal>> {
    let transform = (1u8..6, any::<u16>(), proptest::collection::vec(attribute(), 0..3))
        .prop_map(|(ty, id, attrs)| Transform { ty: TransformType::from_value(ty), id, attrs });
    let proposal = (
        prop_oneof![Just(ProtocolId::Ike), Just(ProtocolId::Esp)],
        bytes(9),
        proptest::collection::vec(transform, 0..6),
    );
    proptest::collection::vec(proposal, 1..4).prop_map(|ps| {
        ps.into_iter()
            .enumerate()
            .map(|(i, (protocol, spi, transforms))| Proposal { num: i as u8 + 1, protocol, spi, transforms })
            .collect()
    })
}

fn selector() -> impl Strategy<Value = TrafficSelector> {
    (any::<bool>(), any::<u8>(), any::<u16>(), any::<u16>(), any::<u128>(), any::<u128>()).prop_map(
        |(v6, protocol, start_port, end_port, a, b)| {
            let (start, end) = if v6 {
                (IpAddr::from(a.to_be_bytes()), IpAddr::from(b.to_be_bytes()))
            } else {
                (IpAddr::from((a as u32).to_be_bytes()), IpAddr::from((b as u32).to_be_bytes()))
            };
            TrafficSelector { protocol, start_port, end_port, start, end }
        },
    )
}

fn payload() -> impl Strategy<Value = Payload> {
    let id = || (1u8..12, bytes(40)).prop_map(|(t, data)| Identification { ty: IdType::from_value(t), data });
    let cert = || (any::<u8>(), bytes(40)).prop_map(|(encoding, data)| Certificate { encoding, data });
    prop_oneof![
        proposals().prop_map(Payload::Sa),
        (any::<u16>(), proptest::collection::vec(any::<u8>(), 1..64))
            .prop_map(|(group, data)| Payload::Ke(KeyExchange { group, data })),
        id().prop_map(Payload::IdI),
        id().prop_map(Payload::IdR),
        cert().prop_map(Payload::Cert),
        cert().prop_map(Payload::CertReq),
        (1u8..15, bytes(48))
            .prop_map(|(m, data)| Payload::Auth(Authentication { method: AuthMethod::from_value(m), data })),
        proptest::collection::vec(any::<u8>(), 16..=256).prop_map(Payload::Nonce),
        (0u8..4, bytes(9), any::<u16>(), bytes(24)).prop_map(|(p, spi, ty, data)| Payload::Notify(Notify {
            protocol: ProtocolId::from_value(p),
            spi,
            ty: NotifyType::from_value(ty),
            data
        })),
        prop_oneof![
            Just(Delete { protocol: ProtocolId::Ike, spis: vec![] }),
            proptest::collection::vec(any::<u32>(), 0..5).prop_map(|spis| Delete { protocol: ProtocolId::Esp, spis }),
        ]
        .prop_map(Payload::Delete),
        bytes(20).prop_map(Payload::VendorId),
        proptest::collection::vec(selector(), 1..4).prop_map(Payload::TsI),
        proptest::collection::vec(selector(), 1..4).prop_map(Payload::TsR),
        (1u8..5, proptest::collection::vec((0u16..0x8000, bytes(17)), 0..4)).prop_map(|(t, attrs)| {
            Payload::Cp(Configuration {
                ty: CfgType::from_value(t),
                attrs: attrs.into_iter().map(|(a, v)| (CfgAttr::from_value(a), v)).collect(),
            })
        }),
        bytes(30).prop_map(Payload::Eap),
        (any::<u64>(), any::<[u8; 4]>(), any::<[u8; 16]>(), any::<bool>()).prop_map(|(spi, a4, a6, v6)| {
            Payload::Syn(IkeSaSyn { spi, gateway: if v6 { IpAddr::from(a6) } else { IpAddr::from(a4) } })
        }),
        (100u8..=199, bytes(12)).prop_map(|(ty, body)| Payload::Unknown { ty, body }),
    ]
}

fn ike_header() -> Header {
    Header {
        spi_i: 0x0102_0304_0506_0708,
        spi_r: 0,
        next_payload: PayloadType::NoNextPayload,
        exchange: ExchangeType::IkeSaInit,
        flags: Flags { initiator: true, version: false, response: false },
        message_id: 0,
        length: 0,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// emit then parse gives the payloads back, in a message and in an SK
    /// payload's plaintext.
    #[test]
    fn payload_chains_round_trip(ps in proptest::collection::vec(payload(), 0..6)) {
        let chain = emit_chain(&ps);
        let first = ps.first().map_or(PayloadType::NoNextPayload, |p| p.ty());
        prop_assert_eq!(parse_chain(first, &chain).unwrap(), ps.clone());
        let m = Message::emit_clear(ike_header(), &ps);
        prop_assert_eq!(m.len(), 28 + chain.len());
        let parsed = Message::parse(&m).unwrap();
        prop_assert_eq!(parsed.payloads, ps);
        prop_assert_eq!(parsed.header.length as usize, m.len());
    }

    /// Every strict prefix of a chain is rejected, never accepted as a
    /// shorter message and never a panic.
    #[test]
    fn every_truncation_is_rejected(ps in proptest::collection::vec(payload(), 1..5)) {
        let chain = emit_chain(&ps);
        for cut in 0..chain.len() {
            prop_assert!(parse_chain(ps[0].ty(), &chain[..cut]).is_err(), "cut at {}", cut);
        }
        let mut m = Message::emit_clear(ike_header(), &ps);
        let n = m.len();
        for cut in 0..n {
            m.truncate(cut);
            if m.len() >= 28 {
                m[24..28].copy_from_slice(&(cut as u32).to_be_bytes());
            }
            prop_assert!(Message::parse(&m).is_err(), "cut at {}", cut);
            m = Message::emit_clear(ike_header(), &ps);
        }
    }

    /// Arbitrary octets after a valid header never panic the parser.
    #[test]
    fn arbitrary_octets_never_panic(first in any::<u8>(), body in bytes(300)) {
        let mut m = header(PayloadType::from_value(first), 28 + body.len());
        m.extend(&body);
        let _ = Message::parse(&m);
        let _ = parse_chain(PayloadType::from_value(first), &body);
        for t in PayloadType::KNOWN {
            let _ = Payload::parse(*t, &body);
        }
    }
}
