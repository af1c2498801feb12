//! Proposals: written by operators as strongSwan-style strings
//! (`aes128gcm16-prfsha256-x25519`, `aes256-sha256-modp2048`), turned into
//! SA payload proposals, and selected from a peer's offer (RFC 7296 2.7).

use crate::codepoints::{DhGroup, ProtocolId, TransformType};
use crate::crypto::keys::IkeSuite;
use crate::crypto::sk::Encr;
use crate::crypto::{Integ, Prf};
use crate::wire::{Proposal, Transform};

/// The algorithms of a child SA (ESP).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EspSuite {
    pub encr: Encr,
    pub integ: Option<Integ>,
    /// The PFS group for rekeys (and CREATE_CHILD_SA), if any.
    pub dh: Option<DhGroup>,
    pub esn: bool,
}

impl EspSuite {
    /// The dataplane's algorithm name.
    pub fn alg(&self) -> String {
        self.encr.esp_name(self.integ).unwrap_or("unsupported").to_owned()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("proposal {text:?}: {why}")]
pub struct ProposalError {
    pub text: String,
    pub why: String,
}

#[derive(Default)]
struct Tokens {
    encr: Option<Encr>,
    prf: Option<Prf>,
    integ: Option<Integ>,
    dh: Option<DhGroup>,
    esn: Option<bool>,
}

fn tokens(text: &str) -> Result<Tokens, ProposalError> {
    let err = |why: String| ProposalError { text: text.into(), why };
    let mut t = Tokens::default();
    for tok in text.split('-') {
        match tok {
            "aes128gcm16" | "aes128gcm" => t.encr = Some(Encr::AesGcm16(128)),
            "aes256gcm16" | "aes256gcm" => t.encr = Some(Encr::AesGcm16(256)),
            "chacha20poly1305" => t.encr = Some(Encr::ChaCha20Poly1305),
            "aes128" => t.encr = Some(Encr::AesCbc(128)),
            "aes256" => t.encr = Some(Encr::AesCbc(256)),
            "sha1" => t.integ = Some(Integ::HmacSha1_96),
            "sha256" => t.integ = Some(Integ::HmacSha256_128),
            "sha384" => t.integ = Some(Integ::HmacSha384_192),
            "sha512" => t.integ = Some(Integ::HmacSha512_256),
            "prfsha1" => t.prf = Some(Prf::HmacSha1),
            "prfsha256" => t.prf = Some(Prf::HmacSha256),
            "prfsha384" => t.prf = Some(Prf::HmacSha384),
            "prfsha512" => t.prf = Some(Prf::HmacSha512),
            "modp2048" => t.dh = Some(DhGroup::Modp2048),
            "modp3072" => t.dh = Some(DhGroup::Modp3072),
            "modp4096" => t.dh = Some(DhGroup::Modp4096),
            "ecp256" => t.dh = Some(DhGroup::Ecp256),
            "ecp384" => t.dh = Some(DhGroup::Ecp384),
            "ecp521" => t.dh = Some(DhGroup::Ecp521),
            "x25519" | "curve25519" => t.dh = Some(DhGroup::Curve25519),
            "x448" | "curve448" => t.dh = Some(DhGroup::Curve448),
            "esn" => t.esn = Some(true),
            "noesn" => t.esn = Some(false),
            other => {
                return Err(err(format!(
                    "unknown algorithm {other:?} (known: aes128gcm16 aes256gcm16 chacha20poly1305 aes128 aes256 sha1 sha256 sha384 \
                     sha512 prfsha1 prfsha256 prfsha384 prfsha512 modp2048 modp3072 modp4096 ecp256 ecp384 ecp521 x25519 curve448 esn noesn)"
                )))
            }
        }
    }
    if t.encr.is_none() {
        return Err(err("no encryption algorithm".into()));
    }
    Ok(t)
}

/// Parses an IKE proposal: encryption, integrity unless AEAD, a PRF (taken
/// from the integrity hash when not named), and a DH group.
pub fn parse_ike(text: &str) -> Result<IkeSuite, ProposalError> {
    let err = |why: &str| ProposalError { text: text.into(), why: why.into() };
    let t = tokens(text)?;
    let encr = t.encr.expect("checked");
    if encr.is_aead() && t.integ.is_some() {
        return Err(err("AES-GCM takes no integrity algorithm"));
    }
    if !encr.is_aead() && t.integ.is_none() {
        return Err(err("AES-CBC needs an integrity algorithm"));
    }
    let prf = match (t.prf, t.integ) {
        (Some(p), _) => p,
        (None, Some(Integ::HmacSha1_96)) => Prf::HmacSha1,
        (None, Some(Integ::HmacSha256_128)) => Prf::HmacSha256,
        (None, Some(Integ::HmacSha384_192)) => Prf::HmacSha384,
        (None, Some(Integ::HmacSha512_256)) => Prf::HmacSha512,
        (None, None) => return Err(err("AES-GCM needs a PRF (prfsha256, ...)")),
    };
    let dh = t.dh.ok_or_else(|| err("no Diffie-Hellman group"))?;
    Ok(IkeSuite { encr, prf, integ: t.integ, dh })
}

/// Parses an ESP proposal; a DH group there means PFS on CREATE_CHILD_SA.
pub fn parse_esp(text: &str) -> Result<EspSuite, ProposalError> {
    let err = |why: &str| ProposalError { text: text.into(), why: why.into() };
    let t = tokens(text)?;
    let encr = t.encr.expect("checked");
    if t.prf.is_some() {
        return Err(err("ESP takes no PRF"));
    }
    if encr.is_aead() && t.integ.is_some() {
        return Err(err("AES-GCM takes no integrity algorithm"));
    }
    if !encr.is_aead() && !matches!(t.integ, Some(Integ::HmacSha1_96 | Integ::HmacSha256_128)) {
        return Err(err("AES-CBC in ESP needs sha1 or sha256 (what the dataplane implements)"));
    }
    Ok(EspSuite { encr, integ: t.integ, dh: t.dh, esn: t.esn.unwrap_or(false) })
}

fn encr_transform(e: Encr) -> Transform {
    match e.key_attr() {
        Some(bits) => Transform::with_key_len(TransformType::Encryption, e.id().value(), bits),
        None => Transform::new(TransformType::Encryption, e.id().value()),
    }
}

/// Our IKE proposals as an SA payload (numbered from 1).
pub fn ike_proposals(suites: &[IkeSuite], spi: Option<u64>) -> Vec<Proposal> {
    let spi = spi.map(|s| s.to_be_bytes().to_vec()).unwrap_or_default();
    suites.iter().enumerate().map(|(i, s)| ike_proposal(s, i as u8 + 1, spi.clone())).collect()
}

/// The IKE proposal number `num` of one suite, with `spi` (empty in
/// IKE_SA_INIT).
pub fn ike_proposal(s: &IkeSuite, num: u8, spi: Vec<u8>) -> Proposal {
    let mut t = Vec::with_capacity(4);
    t.push(encr_transform(s.encr));
    t.push(Transform::new(TransformType::Prf, s.prf.id().value()));
    if let Some(integ) = s.integ {
        t.push(Transform::new(TransformType::Integrity, integ.id().value()));
    }
    t.push(Transform::new(TransformType::KeyExchange, s.dh.value()));
    Proposal { num, protocol: ProtocolId::Ike, spi, transforms: t }
}

/// Our ESP proposals; `pfs` adds each suite's DH group.
pub fn esp_proposals(suites: &[EspSuite], spi: u32, pfs: bool) -> Vec<Proposal> {
    suites.iter().enumerate().map(|(i, s)| esp_proposal(s, i as u8 + 1, spi.to_be_bytes().to_vec(), pfs)).collect()
}

/// The ESP proposal number `num` of one suite, with `spi`.
fn esp_proposal(s: &EspSuite, num: u8, spi: Vec<u8>, pfs: bool) -> Proposal {
    let mut t = Vec::with_capacity(4);
    t.push(encr_transform(s.encr));
    if let Some(integ) = s.integ {
        t.push(Transform::new(TransformType::Integrity, integ.id().value()));
    }
    if let (true, Some(g)) = (pfs, s.dh) {
        t.push(Transform::new(TransformType::KeyExchange, g.value()));
    }
    t.push(Transform::new(TransformType::ExtendedSequenceNumbers, s.esn as u16));
    Proposal { num, protocol: ProtocolId::Esp, spi, transforms: t }
}

/// The transforms a peer offered in one proposal, by type.
struct Offer<'a>(&'a Proposal);

impl Offer<'_> {
    fn has(&self, ty: TransformType, id: u16, key_bits: Option<u16>) -> bool {
        self.0.transforms.iter().any(|t| t.ty == ty && t.id == id && (key_bits.is_none() || t.key_len() == key_bits))
    }

    /// Our integrity algorithm is offered, or with AEAD none (or NONE) is.
    fn integ_fits(&self, ours: Option<Integ>) -> bool {
        match ours {
            Some(i) => self.has(TransformType::Integrity, i.id().value(), None),
            None => self.0.transforms.iter().all(|t| t.ty != TransformType::Integrity || t.id == 0),
        }
    }

    fn types(&self) -> impl Iterator<Item = TransformType> + '_ {
        self.0.transforms.iter().map(|t| t.ty)
    }

    /// RFC 7296 3.3.6: a proposal with a transform type we do not know
    /// cannot be accepted.
    fn only_known(&self) -> bool {
        self.types().all(|t| {
            matches!(
                t,
                TransformType::Encryption
                    | TransformType::Prf
                    | TransformType::Integrity
                    | TransformType::KeyExchange
                    | TransformType::ExtendedSequenceNumbers
            )
        })
    }
}

/// Responder: the first of our suites (our preference order) that one of
/// the peer's IKE proposals contains. Returns the suite and the peer's
/// proposal (number and SPI) it came from.
pub fn select_ike(ours: &[IkeSuite], theirs: &[Proposal]) -> Option<(IkeSuite, Proposal)> {
    let (s, p) = choose_ike(ours, theirs)?;
    Some((s, ike_proposal(&s, p.num, p.spi.clone())))
}

/// [`select_ike`] without building the answer: the suite and the peer's
/// proposal that holds it.
pub fn choose_ike<'a>(ours: &[IkeSuite], theirs: &'a [Proposal]) -> Option<(IkeSuite, &'a Proposal)> {
    for s in ours {
        for p in theirs.iter().filter(|p| p.protocol == ProtocolId::Ike) {
            let o = Offer(p);
            if !o.only_known() {
                continue;
            }
            if o.has(TransformType::Encryption, s.encr.id().value(), s.encr.key_attr())
                && o.has(TransformType::Prf, s.prf.id().value(), None)
                && o.integ_fits(s.integ)
                && o.has(TransformType::KeyExchange, s.dh.value(), None)
            {
                return Some((*s, p));
            }
        }
    }
    None
}

/// Responder: the first of our ESP suites the peer offered. `want_dh`: the
/// group the peer's KE payload uses, if it sent one (PFS).
pub fn select_esp(ours: &[EspSuite], theirs: &[Proposal], want_dh: Option<DhGroup>) -> Option<(EspSuite, Proposal)> {
    for s in ours {
        for p in theirs.iter().filter(|p| p.protocol == ProtocolId::Esp && p.spi.len() == 4) {
            let o = Offer(p);
            if !o.only_known() {
                continue;
            }
            let integ_ok = o.integ_fits(s.integ);
            let esn_ok = o.has(TransformType::ExtendedSequenceNumbers, s.esn as u16, None)
                || (!s.esn && !o.types().any(|t| t == TransformType::ExtendedSequenceNumbers));
            // PFS: the group must be one the peer offered and match its KE.
            // A suite of ours without a group takes the peer's (one we
            // implement): PFS the peer asks for only adds to what we want.
            let dh = match want_dh {
                Some(g) => {
                    let ours = s.dh == Some(g) || (s.dh.is_none() && crate::crypto::dh::supported(g));
                    if !ours || !o.has(TransformType::KeyExchange, g.value(), None) {
                        continue;
                    }
                    Some(g)
                }
                None => {
                    if o.0.transforms.iter().any(|t| t.ty == TransformType::KeyExchange && t.id != 0) {
                        // They want PFS but sent no KE: not this proposal.
                        continue;
                    }
                    None
                }
            };
            if o.has(TransformType::Encryption, s.encr.id().value(), s.encr.key_attr()) && integ_ok && esn_ok {
                let suite = EspSuite { dh, ..*s };
                return Some((suite, esp_proposal(&suite, p.num, p.spi.clone(), dh.is_some())));
            }
        }
    }
    None
}

/// Initiator: reads the single proposal a responder chose, checking it is
/// one of ours (RFC 7296 2.7: anything else is an error).
pub fn chosen_ike(ours: &[IkeSuite], theirs: &[Proposal]) -> Option<IkeSuite> {
    let [p] = theirs else { return None };
    let (s, _) = select_ike(ours, std::slice::from_ref(p))?;
    // Exactly one transform of each type.
    let mut types: Vec<u8> = p.transforms.iter().map(|t| t.ty.value()).collect();
    types.sort_unstable();
    let n = types.len();
    types.dedup();
    (n == types.len()).then_some(s)
}

pub fn chosen_esp(ours: &[EspSuite], theirs: &[Proposal], pfs: Option<DhGroup>) -> Option<(EspSuite, u32)> {
    let [p] = theirs else { return None };
    let (s, _) = select_esp(ours, std::slice::from_ref(p), pfs)?;
    let spi = u32::from_be_bytes(p.spi.as_slice().try_into().ok()?);
    Some((s, spi))
}

/// The DH group named in a proposal's key exchange transform, if any.
pub fn proposal_dh(p: &Proposal) -> Option<DhGroup> {
    p.transforms.iter().find(|t| t.ty == TransformType::KeyExchange && t.id != 0).map(|t| DhGroup::from_value(t.id))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7634: ChaCha20-Poly1305 for IKE and ESP, its transform without
    /// a Key Length attribute, 36 octets of keying material (key | salt).
    #[test]
    fn chacha20_poly1305_is_an_ike_cipher() {
        let s = parse_ike("chacha20poly1305-prfsha256-x25519").unwrap();
        assert_eq!((s.encr, s.integ), (Encr::ChaCha20Poly1305, None));
        let t = encr_transform(s.encr);
        assert_eq!((t.id, t.key_len()), (28, None));
        let e = parse_esp("chacha20poly1305-x25519").unwrap();
        assert_eq!((e.encr, e.integ, e.encr.key_len()), (Encr::ChaCha20Poly1305, None, 36));
        assert_eq!(e.encr.esp_name(None), Some("chacha20poly1305"), "the dataplane's name");
        assert!(parse_esp("chacha20poly1305-sha256").is_err(), "an AEAD takes no integrity");
    }

    #[test]
    fn the_three_interop_proposals_parse() {
        let a = parse_ike("aes128gcm16-prfsha256-x25519").unwrap();
        assert_eq!(a.encr, Encr::AesGcm16(128));
        assert_eq!(a.prf, Prf::HmacSha256);
        assert_eq!(a.integ, None);
        let b = parse_ike("aes256gcm16-prfsha384-ecp256").unwrap();
        assert_eq!((b.encr, b.prf, b.dh), (Encr::AesGcm16(256), Prf::HmacSha384, DhGroup::Ecp256));
        let c = parse_ike("aes256-sha256-modp2048").unwrap();
        assert_eq!((c.encr, c.prf, c.integ), (Encr::AesCbc(256), Prf::HmacSha256, Some(Integ::HmacSha256_128)));
        assert!(parse_ike("aes128gcm16-x25519").is_err(), "GCM needs a PRF");
        assert!(parse_ike("aes128-prfsha256-x25519").is_err(), "CBC needs integrity");
        assert!(parse_ike("des-sha1-modp1024").unwrap_err().why.contains("unknown algorithm \"des\""));
        let e = parse_esp("aes256-sha256").unwrap();
        assert_eq!(e.alg(), "aes256cbc-sha256");
        assert_eq!(parse_esp("aes128gcm16-x25519").unwrap().dh, Some(DhGroup::Curve25519));
    }

    #[test]
    fn selection_follows_our_order_and_needs_every_transform() {
        let ours =
            [parse_ike("aes256gcm16-prfsha384-ecp256").unwrap(), parse_ike("aes128gcm16-prfsha256-x25519").unwrap()];
        let theirs = ike_proposals(&[ours[1], ours[0]], None);
        let (s, p) = select_ike(&ours, &theirs).unwrap();
        assert_eq!(s, ours[0]);
        assert_eq!(p.num, 2, "the number of their proposal");
        assert_eq!(chosen_ike(&ours, &[p]), Some(ours[0]));
        let other = ike_proposals(&[parse_ike("aes256-sha256-modp2048").unwrap()], None);
        assert!(select_ike(&ours, &other).is_none());
        // A proposal with an unknown transform type is never chosen.
        let mut odd = theirs.clone();
        odd[1].transforms.push(Transform::new(TransformType::Unknown(77), 1));
        assert_eq!(select_ike(&ours, &odd).unwrap().0, ours[1]);
    }

    #[test]
    fn esp_selection_with_and_without_pfs() {
        let ours = [parse_esp("aes128gcm16-x25519").unwrap()];
        let theirs_pfs = esp_proposals(&ours, 0x1234, true);
        let theirs = esp_proposals(&ours, 0x1234, false);
        assert!(select_esp(&ours, &theirs, None).is_some());
        assert!(select_esp(&ours, &theirs_pfs, None).is_none(), "PFS offered but no KE");
        let (s, p) = select_esp(&ours, &theirs_pfs, Some(DhGroup::Curve25519)).unwrap();
        assert_eq!(s.dh, Some(DhGroup::Curve25519));
        assert_eq!(p.spi, 0x1234u32.to_be_bytes());
        assert!(select_esp(&ours, &theirs_pfs, Some(DhGroup::Ecp256)).is_none());
    }
}
