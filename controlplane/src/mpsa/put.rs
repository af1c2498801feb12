//! N(MPSA_PUT) (draft-yamaya-ipsecme-mpsa 3.2.2): a Notify whose data is a
//! Proposal substructure carrying the group SA: ENCR, PRF, INTEG and five
//! MPSA transforms (NONCE, SKD, LIFE, ROLL1, ROLL2), each with one TLV
//! attribute. The Notify's SPI and the proposal's SPI are the group SA's.
//!
//! Decisions from ../shared/spec/NOTES.md: the transform type is
//! authoritative (ROLL1/ROLL2 accept attribute types 16386..16388, as the
//! draft's figure has 16386 there; we emit 16387 and 16388); Lifetime and the
//! rollover times are 4-octet big-endian seconds, Lifetime being the time
//! left.

use std::net::IpAddr;

use cpdp::msg::{Direction, SaSpec};
use zeroize::Zeroizing;

use crate::codepoints::{AttributeType, EncrId, IntegId, NotifyType, PrfId, ProtocolId, TransformType};
use crate::crypto::sk::Encr;
use crate::crypto::{Integ, Prf, Secret};
use crate::wire::{parse_sa, Attribute, Notify, ParseError, Proposal, Reader, Transform, Writer};

/// The group SA as the gateway hands it out.
#[derive(Clone, PartialEq, Eq)]
pub struct MpsaPut {
    pub spi: u32,
    pub encr: Encr,
    pub prf: Prf,
    /// None for AEAD ciphers.
    pub integ: Option<Integ>,
    /// 16 to 256 octets.
    pub nonce: Vec<u8>,
    /// The PRF's preferred key length.
    pub sk_d: Secret,
    /// Seconds the SA has left.
    pub lifetime: u32,
    /// Seconds before a new SA is sent with (GDOI-style rollover).
    pub rollover1: u32,
    /// Seconds before the previous SA stops being accepted.
    pub rollover2: u32,
}

impl std::fmt::Debug for MpsaPut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MpsaPut")
            .field("spi", &format_args!("{:08x}", self.spi))
            .field("encr", &self.encr)
            .field("prf", &self.prf)
            .field("integ", &self.integ)
            .field("nonce_len", &self.nonce.len())
            .field("sk_d", &"<redacted>")
            .field("lifetime", &self.lifetime)
            .field("rollover", &(self.rollover1, self.rollover2))
            .finish()
    }
}

/// Why an MPSA_PUT was refused. Malformed ones are INVALID_SYNTAX;
/// well-formed ones with an algorithm we cannot run are
/// NO_PROPOSAL_CHOSEN (the group SA cannot be used here).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MpsaError {
    #[error("malformed MPSA_PUT: {0}")]
    Syntax(#[from] ParseError),
    #[error("malformed MPSA_PUT: {0}")]
    Malformed(&'static str),
    #[error("MPSA_PUT: unsupported {0}")]
    Unsupported(&'static str),
}

impl MpsaError {
    pub fn notify(&self) -> NotifyType {
        match self {
            MpsaError::Syntax(_) | MpsaError::Malformed(_) => NotifyType::InvalidSyntax,
            MpsaError::Unsupported(_) => NotifyType::NoProposalChosen,
        }
    }
}

/// One TLV attribute (RFC 7296 3.3.5, AF=0) and the transform carrying it.
fn mpsa_transform(ty: TransformType, attr: AttributeType, value: Vec<u8>) -> Transform {
    Transform { ty, id: 1, attrs: vec![Attribute::Tlv { ty: attr.value(), value }] }
}

impl MpsaPut {
    /// The Notify payload: protocol ESP, the SPI twice (notify and proposal).
    pub fn to_notify(&self) -> Notify {
        let mut transforms =
            vec![Transform::with_key_len(TransformType::Encryption, self.encr.id().value(), self.encr.key_bits())];
        transforms.push(Transform::new(TransformType::Prf, self.prf.id().value()));
        if let Some(i) = self.integ {
            transforms.push(Transform::new(TransformType::Integrity, i.id().value()));
        }
        transforms.extend([
            mpsa_transform(TransformType::MpsaNonce, AttributeType::MpsaNonce, self.nonce.clone()),
            mpsa_transform(TransformType::MpsaSkd, AttributeType::MpsaSkd, self.sk_d.as_slice().to_vec()),
            mpsa_transform(TransformType::MpsaLife, AttributeType::MpsaLifetime, self.lifetime.to_be_bytes().to_vec()),
            mpsa_transform(
                TransformType::MpsaRoll1,
                AttributeType::MpsaRollover1,
                self.rollover1.to_be_bytes().to_vec(),
            ),
            mpsa_transform(
                TransformType::MpsaRoll2,
                AttributeType::MpsaRollover2,
                self.rollover2.to_be_bytes().to_vec(),
            ),
        ]);
        let p = Proposal { num: 1, protocol: ProtocolId::Esp, spi: self.spi.to_be_bytes().to_vec(), transforms };
        let mut w = Writer::new();
        p.emit(&mut w, true);
        Notify { protocol: ProtocolId::Esp, spi: self.spi.to_be_bytes().to_vec(), ty: NotifyType::MpsaPut, data: w.buf }
    }

    /// Checks everything before anything is installed: structure, every
    /// transform exactly once, sizes, and algorithms we can run.
    pub fn from_notify(n: &Notify) -> Result<MpsaPut, MpsaError> {
        if n.ty != NotifyType::MpsaPut {
            return Err(MpsaError::Malformed("not an MPSA_PUT notify"));
        }
        if n.protocol != ProtocolId::Esp {
            return Err(MpsaError::Unsupported("protocol (only ESP group SAs)"));
        }
        let spi = n.esp_spi().ok_or(MpsaError::Malformed("the notify's SPI must be 4 octets"))?;
        let mut ps = parse_sa(&n.data)?;
        if ps.len() != 1 {
            return Err(MpsaError::Malformed("exactly one proposal-like substructure"));
        }
        let p = ps.remove(0);
        if p.protocol != ProtocolId::Esp {
            return Err(MpsaError::Unsupported("protocol (only ESP group SAs)"));
        }
        if p.spi != spi.to_be_bytes() {
            return Err(MpsaError::Malformed("the proposal's SPI differs from the notify's"));
        }
        if spi < 256 {
            // RFC 4303 2.1: SPIs 1-255 are reserved, 0 is never sent.
            return Err(MpsaError::Malformed("reserved SPI"));
        }

        let mut encr = None;
        let mut prf = None;
        let mut integ = None;
        let mut nonce = None;
        let mut sk_d = None;
        let mut life = None;
        let mut roll1 = None;
        let mut roll2 = None;
        fn once<T>(slot: &mut Option<T>, v: T, what: &'static str) -> Result<(), MpsaError> {
            if slot.replace(v).is_some() {
                return Err(MpsaError::Malformed(what));
            }
            Ok(())
        }
        for t in &p.transforms {
            match t.ty {
                TransformType::Encryption => {
                    let e = Encr::from_transform(EncrId::from_value(t.id), t.key_len())
                        .ok_or(MpsaError::Unsupported("encryption algorithm"))?;
                    once(&mut encr, e, "ENCR twice")?;
                }
                TransformType::Prf => {
                    let f = Prf::from_id(PrfId::from_value(t.id)).ok_or(MpsaError::Unsupported("PRF"))?;
                    once(&mut prf, f, "PRF twice")?;
                }
                TransformType::Integrity => {
                    // INTEG NONE with a combined-mode cipher is how an ESP
                    // proposal says "no integrity" (RFC 7296 3.3.2 and 3.3.3,
                    // RFC 4106 8.1): the MPSA_PUT is a proposal, so it reads
                    // the same.
                    let i = match IntegId::from_value(t.id) {
                        IntegId::None => None,
                        id => Some(Integ::from_id(id).ok_or(MpsaError::Unsupported("integrity"))?),
                    };
                    once(&mut integ, i, "INTEG twice")?;
                }
                TransformType::MpsaNonce => {
                    once(&mut nonce, tlv(t, &[AttributeType::MpsaNonce])?, "NONCE twice")?;
                }
                TransformType::MpsaSkd => once(&mut sk_d, tlv(t, &[AttributeType::MpsaSkd])?, "SKD twice")?,
                TransformType::MpsaLife => {
                    once(&mut life, seconds(tlv(t, &[AttributeType::MpsaLifetime])?)?, "LIFE twice")?
                }
                TransformType::MpsaRoll1 => once(&mut roll1, seconds(tlv(t, ROLL_ATTRS)?)?, "ROLL1 twice")?,
                TransformType::MpsaRoll2 => once(&mut roll2, seconds(tlv(t, ROLL_ATTRS)?)?, "ROLL2 twice")?,
                _ => return Err(MpsaError::Unsupported("transform type")),
            }
        }
        let encr = encr.ok_or(MpsaError::Malformed("no ENCR transform"))?;
        let prf = prf.ok_or(MpsaError::Malformed("no PRF transform"))?;
        let nonce = nonce.ok_or(MpsaError::Malformed("no NONCE transform"))?;
        let sk_d = sk_d.ok_or(MpsaError::Malformed("no SKD transform (SK_d missing)"))?;
        let lifetime = life.ok_or(MpsaError::Malformed("no LIFE transform"))?;
        if !(16..=256).contains(&nonce.len()) {
            return Err(MpsaError::Malformed("the nonce must be 16 to 256 octets"));
        }
        if sk_d.len() != prf.out_len() {
            return Err(MpsaError::Malformed("SK_d must be the PRF's preferred key length"));
        }
        let integ = integ.flatten();
        match (encr.is_aead(), integ) {
            (true, Some(_)) => return Err(MpsaError::Malformed("AES-GCM takes no integrity algorithm")),
            (false, None) => return Err(MpsaError::Malformed("AES-CBC needs an integrity algorithm")),
            _ => {}
        }
        if encr.esp_name(integ).is_none() {
            return Err(MpsaError::Unsupported("cipher and integrity pair for ESP"));
        }
        if lifetime == 0 {
            return Err(MpsaError::Malformed("lifetime 0"));
        }
        Ok(MpsaPut {
            spi,
            encr,
            prf,
            integ,
            nonce,
            sk_d: Secret::new(sk_d),
            lifetime,
            rollover1: roll1.unwrap_or(0),
            rollover2: roll2.unwrap_or(0),
        })
    }

    /// KEYMAT = prf+(SK_d, Nonce) (mpsa 3.3.2): one key set for both
    /// directions, the encryption key (with GCM's salt) then the integrity
    /// key.
    pub fn keymat(&self) -> (Secret, Secret) {
        let e = self.encr.key_len();
        let a = self.integ.map_or(0, |i| i.key_len());
        let km = self.prf.prf_plus(self.sk_d.as_slice(), &self.nonce, e + a);
        let k = km.as_slice();
        (Secret::from_slice(&k[..e]), Secret::from_slice(&k[e..]))
    }

    /// The dataplane's algorithm name.
    pub fn alg(&self) -> String {
        self.encr.esp_name(self.integ).unwrap_or("unsupported").to_owned()
    }

    /// The SA an endpoint at `local` installs: one key set for both
    /// directions (the dataplane takes the peer per packet from the
    /// group's members).
    pub fn group_sa_spec(&self, local: IpAddr) -> SaSpec {
        let (ek, ak) = self.keymat();
        SaSpec {
            handle: self.spi,
            spi: self.spi,
            direction: Direction::In,
            alg: self.alg(),
            enc_key: Zeroizing::new(ek.as_slice().to_vec()),
            auth_key: Zeroizing::new(ak.as_slice().to_vec()),
            local,
            remote: local,
            natt: None,
            esn: false,
            // No anti-replay on a group SA (mpsa-04 5.2.1).
            replay_window: 0,
            seq: 0,
            inner_src: Vec::new(),
            inner_dst: Vec::new(),
            lifetime: Default::default(),
            paths: Vec::new(),
            transport: false,
        }
    }
}

/// ROLL1/ROLL2 accept any of the three time attribute types (NOTES.md).
const ROLL_ATTRS: &[AttributeType] =
    &[AttributeType::MpsaLifetime, AttributeType::MpsaRollover1, AttributeType::MpsaRollover2];

/// The one TLV attribute of an MPSA transform (ID 1), of an accepted type.
fn tlv(t: &Transform, types: &[AttributeType]) -> Result<Vec<u8>, MpsaError> {
    if t.id != 1 {
        return Err(MpsaError::Unsupported("MPSA transform ID (only 1)"));
    }
    match t.attrs.as_slice() {
        [Attribute::Tlv { ty, value }] if types.iter().any(|a| a.value() == *ty) => Ok(value.clone()),
        [Attribute::Tlv { .. }] => Err(MpsaError::Malformed("unexpected attribute type in an MPSA transform")),
        _ => Err(MpsaError::Malformed("an MPSA transform carries exactly one TLV attribute")),
    }
}

fn seconds(v: Vec<u8>) -> Result<u32, MpsaError> {
    let mut r = Reader::new(&v, "MPSA time");
    let s = r.u32()?;
    r.finish()?;
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{Message, Payload};

    const SPI: [u8; 4] = [0x8a, 0x3c, 0x11, 0x05];

    fn tlv_transform(last: bool, ty: u8, attr: u16, value: &[u8]) -> Vec<u8> {
        let len = 8 + 4 + value.len();
        let mut t = vec![if last { 0 } else { 3 }, 0];
        t.extend((len as u16).to_be_bytes());
        t.extend([ty, 0, 0, 1]);
        t.extend(attr.to_be_bytes());
        t.extend((value.len() as u16).to_be_bytes());
        t.extend(value);
        t
    }

    /// The example of mpsa 3.2.2 written out octet by octet: ESP, ENCR
    /// AES-CBC with a 256-bit key, PRF_HMAC_SHA1, AUTH_HMAC_SHA1_96, then
    /// NONCE, SKD, LIFE, ROLL1, ROLL2, each one TLV attribute.
    fn draft_example() -> (Vec<u8>, Vec<u8>) {
        let nonce: Vec<u8> = (0..32).collect();
        let sk_d: Vec<u8> = (100..120).collect(); // SHA-1: 20 octets
        let mut transforms = Vec::new();
        transforms.extend([3, 0, 0, 12, 1, 0, 0, 12, 0x80, 14, 0x01, 0x00]); // ENCR 12, key length 256
        transforms.extend([3, 0, 0, 8, 2, 0, 0, 2]); // PRF_HMAC_SHA1
        transforms.extend([3, 0, 0, 8, 3, 0, 0, 2]); // AUTH_HMAC_SHA1_96
        transforms.extend(tlv_transform(false, 241, 16384, &nonce));
        transforms.extend(tlv_transform(false, 242, 16385, &sk_d));
        transforms.extend(tlv_transform(false, 243, 16386, &3600u32.to_be_bytes()));
        transforms.extend(tlv_transform(false, 244, 16387, &10u32.to_be_bytes()));
        transforms.extend(tlv_transform(true, 245, 16388, &20u32.to_be_bytes()));
        let mut proposal = vec![0, 0];
        proposal.extend(((8 + 4 + transforms.len()) as u16).to_be_bytes());
        proposal.extend([1, 3, 4, 8]); // #1, ESP, SPI size 4, 8 transforms
        proposal.extend(SPI);
        proposal.extend(transforms);
        // The whole Notify payload with its generic header.
        let mut notify = vec![0, 0];
        notify.extend(((4 + 4 + 4 + proposal.len()) as u16).to_be_bytes());
        notify.extend([3, 4]); // ESP, SPI size 4
        notify.extend(40960u16.to_be_bytes());
        notify.extend(SPI);
        notify.extend(&proposal);
        (notify, proposal)
    }

    fn example_put() -> MpsaPut {
        MpsaPut {
            spi: u32::from_be_bytes(SPI),
            encr: Encr::AesCbc(256),
            prf: Prf::HmacSha1,
            integ: Some(Integ::HmacSha1_96),
            nonce: (0..32).collect(),
            sk_d: Secret::new((100..120).collect()),
            lifetime: 3600,
            rollover1: 10,
            rollover2: 20,
        }
    }

    #[test]
    fn the_drafts_example_parses_and_emits_octet_for_octet() {
        let (payload, data) = draft_example();
        // Through the ordinary payload chain parser, as it arrives in SK{}.
        let chain = crate::wire::message::parse_chain(crate::codepoints::PayloadType::Notify, &payload).unwrap();
        let [Payload::Notify(n)] = chain.as_slice() else { panic!("{chain:?}") };
        assert_eq!(n.data, data);
        let put = MpsaPut::from_notify(n).unwrap();
        assert_eq!(put, example_put());
        assert_eq!(&put.to_notify(), n);
        assert_eq!(crate::wire::message::emit_chain(&[Payload::Notify(put.to_notify())]), payload);
        assert_eq!(put.alg(), "aes256cbc-sha1");
        assert!(!format!("{put:?}").contains("100, 101"), "SK_d stays out of logs");
    }

    #[test]
    fn keymat_is_prf_plus_of_sk_d_and_the_nonce() {
        let put = example_put();
        let (ek, ak) = put.keymat();
        // prf+ (RFC 7296 2.13) computed by hand: T1 = prf(K, S | 0x01), ...
        let s = &put.nonce;
        let t1 = Prf::HmacSha1.prf(put.sk_d.as_slice(), &[s, &[1]]);
        let t2 = Prf::HmacSha1.prf(put.sk_d.as_slice(), &[t1.as_slice(), s, &[2]]);
        let t3 = Prf::HmacSha1.prf(put.sk_d.as_slice(), &[t2.as_slice(), s, &[3]]);
        let want: Vec<u8> = [t1.as_slice(), t2.as_slice(), t3.as_slice()].concat();
        assert_eq!(ek.as_slice(), &want[..32], "AES-256 key first");
        assert_eq!(ak.as_slice(), &want[32..52], "then the HMAC-SHA1 key");
        // AES-GCM: key and salt, no integrity key.
        let gcm = MpsaPut { encr: Encr::AesGcm16(128), integ: None, ..example_put() };
        let (ek, ak) = gcm.keymat();
        assert_eq!((ek.as_slice().len(), ak.as_slice().len()), (20, 0));
    }

    /// An AEAD group SA with INTEG NONE (transform ID 0) reads as no
    /// integrity, as in an ESP proposal (RFC 7296 3.3.3); without the
    /// transform it reads the same.
    #[test]
    fn an_aead_put_may_carry_integ_none() {
        let gcm = MpsaPut { encr: Encr::AesGcm16(256), integ: None, ..example_put() };
        let mut n = gcm.to_notify();
        let mut ps = parse_sa(&n.data).unwrap();
        assert!(!ps[0].transforms.iter().any(|t| t.ty == TransformType::Integrity), "we send none");
        ps[0].transforms.insert(2, Transform::new(TransformType::Integrity, 0));
        let mut w = Writer::new();
        ps[0].emit(&mut w, true);
        n.data = w.buf;
        let got = MpsaPut::from_notify(&n).unwrap();
        assert_eq!((got.encr, got.integ, got.spi), (Encr::AesGcm16(256), None, gcm.spi));
        assert_eq!(got.keymat().0.as_slice(), gcm.keymat().0.as_slice());
        // Twice is still twice.
        ps[0].transforms.insert(2, Transform::new(TransformType::Integrity, 0));
        let mut w = Writer::new();
        ps[0].emit(&mut w, true);
        n.data = w.buf;
        assert_eq!(MpsaPut::from_notify(&n).unwrap_err().notify(), NotifyType::InvalidSyntax);
    }

    #[test]
    fn rollover_transforms_accept_the_figures_attribute_type() {
        // The draft's figure puts attribute 16386 in ROLL1 and ROLL2.
        let mut put = example_put().to_notify();
        let mut ps = parse_sa(&put.data).unwrap();
        for t in &mut ps[0].transforms {
            if matches!(t.ty, TransformType::MpsaRoll1 | TransformType::MpsaRoll2) {
                let Attribute::Tlv { ty, .. } = &mut t.attrs[0] else { panic!() };
                *ty = 16386;
            }
        }
        let mut w = Writer::new();
        ps[0].emit(&mut w, true);
        put.data = w.buf;
        assert_eq!(MpsaPut::from_notify(&put).unwrap(), example_put());
    }

    /// Rebuilds the example with one change to its proposal.
    fn tampered(f: impl FnOnce(&mut Proposal)) -> Notify {
        let mut n = example_put().to_notify();
        let mut ps = parse_sa(&n.data).unwrap();
        f(&mut ps[0]);
        let mut w = Writer::new();
        ps[0].emit(&mut w, true);
        n.data = w.buf;
        n
    }

    fn attr_of(p: &mut Proposal, ty: TransformType) -> &mut Vec<u8> {
        let t = p.transforms.iter_mut().find(|t| t.ty == ty).unwrap();
        match &mut t.attrs[0] {
            Attribute::Tlv { value, .. } => value,
            _ => panic!(),
        }
    }

    #[test]
    fn hostile_mpsa_puts_are_refused_with_the_right_notify() {
        use NotifyType::{InvalidSyntax, NoProposalChosen};
        let cases: Vec<(&str, Notify, NotifyType)> = vec![
            ("nonce of 15 octets", tampered(|p| attr_of(p, TransformType::MpsaNonce).truncate(15)), InvalidSyntax),
            ("nonce of 257 octets", tampered(|p| attr_of(p, TransformType::MpsaNonce).resize(257, 7)), InvalidSyntax),
            ("no SK_d", tampered(|p| p.transforms.retain(|t| t.ty != TransformType::MpsaSkd)), InvalidSyntax),
            ("short SK_d", tampered(|p| attr_of(p, TransformType::MpsaSkd).truncate(16)), InvalidSyntax),
            ("no nonce", tampered(|p| p.transforms.retain(|t| t.ty != TransformType::MpsaNonce)), InvalidSyntax),
            ("no lifetime", tampered(|p| p.transforms.retain(|t| t.ty != TransformType::MpsaLife)), InvalidSyntax),
            ("5-octet lifetime", tampered(|p| attr_of(p, TransformType::MpsaLife).push(0)), InvalidSyntax),
            ("two nonces", tampered(|p| p.transforms.push(p.transforms[3].clone())), InvalidSyntax),
            (
                "unknown transform type",
                tampered(|p| p.transforms.push(Transform::new(TransformType::from_value(250), 1))),
                NoProposalChosen,
            ),
            (
                "unsupported cipher (3DES)",
                tampered(|p| p.transforms[0] = Transform::new(TransformType::Encryption, 3)),
                NoProposalChosen,
            ),
            (
                "unsupported PRF (MD5)",
                tampered(|p| p.transforms[1] = Transform::new(TransformType::Prf, 1)),
                NoProposalChosen,
            ),
            (
                "CBC without integrity",
                tampered(|p| p.transforms.retain(|t| t.ty != TransformType::Integrity)),
                InvalidSyntax,
            ),
            (
                "CBC with INTEG NONE",
                tampered(|p| {
                    p.transforms.iter_mut().find(|t| t.ty == TransformType::Integrity).unwrap().id = 0;
                }),
                InvalidSyntax,
            ),
            ("SPI mismatch", tampered(|p| p.spi = vec![0, 0, 9, 9]), InvalidSyntax),
            (
                "MPSA transform ID 2",
                tampered(|p| p.transforms.iter_mut().find(|t| t.ty == TransformType::MpsaSkd).unwrap().id = 2),
                NoProposalChosen,
            ),
            (
                "a TV attribute where a TLV belongs",
                tampered(|p| {
                    p.transforms.iter_mut().find(|t| t.ty == TransformType::MpsaLife).unwrap().attrs =
                        vec![Attribute::Tv { ty: 16386, value: 60 }]
                }),
                InvalidSyntax,
            ),
        ];
        for (what, n, want) in cases {
            let e = MpsaPut::from_notify(&n).expect_err(what);
            assert_eq!(e.notify(), want, "{what}: {e}");
        }
        // Bad lengths anywhere in the data: every truncation and every
        // single length octet changed.
        let good = example_put().to_notify();
        for cut in 0..good.data.len() {
            let mut n = good.clone();
            n.data.truncate(cut);
            assert_eq!(MpsaPut::from_notify(&n).unwrap_err().notify(), InvalidSyntax, "cut at {cut}");
        }
        for at in [2usize, 3, 14, 15, 26, 27] {
            let mut n = good.clone();
            n.data[at] ^= 0x10;
            assert!(MpsaPut::from_notify(&n).is_err(), "length octet {at}");
        }
        // A notify SPI that is not 4 octets.
        let mut n = good.clone();
        n.spi.push(0);
        assert_eq!(MpsaPut::from_notify(&n).unwrap_err().notify(), InvalidSyntax);
    }

    #[test]
    fn a_put_inside_a_message_survives_the_message_codec() {
        let n = example_put().to_notify();
        let m = Message::emit_clear(
            crate::wire::Header {
                spi_i: 1,
                spi_r: 2,
                next_payload: crate::codepoints::PayloadType::NoNextPayload,
                exchange: crate::codepoints::ExchangeType::Informational,
                flags: Default::default(),
                message_id: 3,
                length: 0,
            },
            &[Payload::Notify(n.clone())],
        );
        let back = Message::parse(&m).unwrap();
        assert_eq!(back.payloads, vec![Payload::Notify(n)]);
    }
}
