//! The Encrypted payload (RFC 7296 3.14) and Encrypted Fragment payload
//! (RFC 7383 2.5): AES-GCM with a 16-octet ICV (RFC 5282),
//! ChaCha20-Poly1305 (RFC 7634) and AES-CBC with a separate HMAC.
//!
//! Sealing builds the whole datagram (header, SK header, IV, ciphertext,
//! ICV) so the associated data and the integrity check cover the final
//! lengths. Opening checks the ICV before anything is decrypted or parsed.

use aes::cipher::{block_padding::NoPadding, BlockDecryptMut, BlockEncryptMut, KeyIvInit};
use ring::aead;

use super::{Integ, Random};
use crate::codepoints::{EncrId, PayloadType};
use crate::wire::message::{emit_chain_into, Header, SkBody};
use crate::wire::{Payload, Writer};

/// An encryption algorithm for SK payloads and ESP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Encr {
    /// AES-CBC with a key of this many bits (128 or 256).
    AesCbc(u16),
    /// AES-GCM with a 16-octet ICV, key of this many bits.
    AesGcm16(u16),
    /// ChaCha20-Poly1305 (RFC 7634): a 256-bit key and a 4-octet salt,
    /// 8-octet IV, 16-octet ICV; no Key Length attribute.
    ChaCha20Poly1305,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SkError {
    #[error("encrypted payload too short")]
    Short,
    #[error("integrity check failed")]
    Icv,
    #[error("bad padding")]
    Padding,
}

impl Encr {
    pub fn from_transform(id: EncrId, key_bits: Option<u16>) -> Option<Encr> {
        if id == EncrId::ChaCha20Poly1305 {
            // RFC 7634 2: the transform has no Key Length attribute.
            return key_bits.is_none().then_some(Encr::ChaCha20Poly1305);
        }
        let bits = key_bits?;
        if bits != 128 && bits != 256 {
            return None;
        }
        match id {
            EncrId::AesCbc => Some(Encr::AesCbc(bits)),
            EncrId::AesGcm16 => Some(Encr::AesGcm16(bits)),
            _ => None,
        }
    }

    pub fn id(self) -> EncrId {
        match self {
            Encr::AesCbc(_) => EncrId::AesCbc,
            Encr::AesGcm16(_) => EncrId::AesGcm16,
            Encr::ChaCha20Poly1305 => EncrId::ChaCha20Poly1305,
        }
    }

    pub fn key_bits(self) -> u16 {
        match self {
            Encr::AesCbc(b) | Encr::AesGcm16(b) => b,
            Encr::ChaCha20Poly1305 => 256,
        }
    }

    /// The Key Length attribute its transform carries (RFC 7296 3.3.5).
    pub fn key_attr(self) -> Option<u16> {
        match self {
            Encr::ChaCha20Poly1305 => None,
            e => Some(e.key_bits()),
        }
    }

    pub fn is_aead(self) -> bool {
        matches!(self, Encr::AesGcm16(_) | Encr::ChaCha20Poly1305)
    }

    /// Octets of keying material: the key, plus the 4-octet salt for GCM
    /// (RFC 5282 7.1, RFC 4106 8.1).
    pub fn key_len(self) -> usize {
        match self {
            Encr::AesCbc(b) => b as usize / 8,
            Encr::AesGcm16(b) => b as usize / 8 + 4,
            // RFC 7634 2: 32 octets of key, then 4 of salt.
            Encr::ChaCha20Poly1305 => 36,
        }
    }

    fn iv_len(self) -> usize {
        match self {
            Encr::AesCbc(_) => 16,
            Encr::AesGcm16(_) | Encr::ChaCha20Poly1305 => 8,
        }
    }

    /// The name the dataplane knows the ESP algorithm by.
    pub fn esp_name(self, integ: Option<Integ>) -> Option<&'static str> {
        Some(match (self, integ) {
            (Encr::AesGcm16(128), None) => "aes128gcm",
            (Encr::AesGcm16(256), None) => "aes256gcm",
            (Encr::ChaCha20Poly1305, None) => "chacha20poly1305",
            (Encr::AesCbc(128), Some(Integ::HmacSha1_96)) => "aes128cbc-sha1",
            (Encr::AesCbc(256), Some(Integ::HmacSha1_96)) => "aes256cbc-sha1",
            (Encr::AesCbc(128), Some(Integ::HmacSha256_128)) => "aes128cbc-sha256",
            (Encr::AesCbc(256), Some(Integ::HmacSha256_128)) => "aes256cbc-sha256",
            _ => return None,
        })
    }
}

/// The keys one direction of an IKE SA protects its messages with.
#[derive(Debug, Clone, Copy)]
pub struct SkKeys<'a> {
    pub encr: Encr,
    pub integ: Option<Integ>,
    pub ek: &'a [u8],
    pub ak: &'a [u8],
}

impl SkKeys<'_> {
    fn icv_len(&self) -> usize {
        match (self.encr, self.integ) {
            (Encr::AesGcm16(_) | Encr::ChaCha20Poly1305, _) => 16,
            (_, Some(i)) => i.icv_len(),
            (_, None) => 0,
        }
    }

    /// A whole message: `header` (lengths filled in here), then `payloads`
    /// inside an SK payload. `fragment` makes it an SKF payload instead.
    pub fn seal(&self, header: Header, payloads: &[Payload], rng: &mut dyn Random) -> Vec<u8> {
        let mut inner = Writer::new();
        emit_chain_into(payloads, PayloadType::NoNextPayload, &mut inner);
        let first = payloads.first().map_or(PayloadType::NoNextPayload, |p| p.ty());
        self.seal_plain(header, PayloadType::Encrypted, first, None, inner.buf, rng)
    }

    /// Seals already-emitted inner octets; `fragment` = (number, total).
    pub fn seal_plain(
        &self,
        mut header: Header,
        sk_type: PayloadType,
        first: PayloadType,
        fragment: Option<(u16, u16)>,
        mut plain: Vec<u8>,
        rng: &mut dyn Random,
    ) -> Vec<u8> {
        // Padding: CBC needs whole blocks; the Pad Length octet is always there.
        let block = if self.encr.is_aead() { 1 } else { 16 };
        let pad = (block - (plain.len() + 1) % block) % block;
        plain.extend(std::iter::repeat_n(0u8, pad));
        plain.push(pad as u8);
        let iv = rng.vec(self.encr.iv_len());
        let sk_hdr = if fragment.is_some() { 8 } else { 4 };
        let sk_len = sk_hdr + iv.len() + plain.len() + self.icv_len();
        header.next_payload = sk_type;
        header.length = (Header::LEN + sk_len) as u32;
        let mut w = Writer::new();
        header.emit(&mut w);
        w.u8(first.value());
        w.u8(0);
        w.u16(sk_len as u16);
        if let Some((n, t)) = fragment {
            w.u16(n);
            w.u16(t);
        }
        let aad_end = w.len();
        w.bytes(&iv);
        match self.encr {
            e @ (Encr::AesGcm16(_) | Encr::ChaCha20Poly1305) => {
                let key = aead_key(e, &self.ek[..self.ek.len() - 4]);
                let nonce = gcm_nonce(&self.ek[self.ek.len() - 4..], &iv);
                let tag = key
                    .seal_in_place_separate_tag(nonce, aead::Aad::from(&w.buf[..aad_end]), &mut plain)
                    .expect("an AEAD seals any message IKE can carry");
                w.bytes(&plain);
                w.bytes(tag.as_ref());
            }
            Encr::AesCbc(bits) => {
                let n = plain.len();
                cbc_encrypt(bits, self.ek, &iv, &mut plain, n);
                w.bytes(&plain);
                if let Some(i) = self.integ {
                    let icv = i.mac(self.ak, &w.buf);
                    w.bytes(&icv);
                }
            }
        }
        w.buf
    }

    /// Checks and decrypts the SK/SKF body of `datagram`; returns the inner
    /// payload octets (padding removed).
    pub fn open(&self, datagram: &[u8], sk: &SkBody) -> Result<Vec<u8>, SkError> {
        let icv = self.icv_len();
        let ivl = self.encr.iv_len();
        if datagram.len() < sk.iv_at + ivl + icv + 1 {
            return Err(SkError::Short);
        }
        let iv = &datagram[sk.iv_at..sk.iv_at + ivl];
        let ct_end = datagram.len() - icv;
        let mut plain = match self.encr {
            e @ (Encr::AesGcm16(_) | Encr::ChaCha20Poly1305) => {
                if self.ek.len() != e.key_len() {
                    return Err(SkError::Icv);
                }
                let key = aead_key(e, &self.ek[..self.ek.len() - 4]);
                let nonce = gcm_nonce(&self.ek[self.ek.len() - 4..], iv);
                let mut buf = datagram[sk.iv_at + ivl..].to_vec();
                let n = key
                    .open_in_place(nonce, aead::Aad::from(&datagram[..sk.iv_at]), &mut buf)
                    .map_err(|_| SkError::Icv)?
                    .len();
                buf.truncate(n);
                buf
            }
            Encr::AesCbc(bits) => {
                let Some(i) = self.integ else { return Err(SkError::Icv) };
                if !i.verify(self.ak, &datagram[..ct_end], &datagram[ct_end..]) {
                    return Err(SkError::Icv);
                }
                let mut buf = datagram[sk.iv_at + ivl..ct_end].to_vec();
                if buf.is_empty() || buf.len() % 16 != 0 {
                    return Err(SkError::Padding);
                }
                cbc_decrypt(bits, self.ek, iv, &mut buf);
                buf
            }
        };
        let pad = *plain.last().ok_or(SkError::Padding)? as usize;
        if pad + 1 > plain.len() {
            return Err(SkError::Padding);
        }
        plain.truncate(plain.len() - pad - 1);
        Ok(plain)
    }
}

fn aead_key(e: Encr, key: &[u8]) -> aead::LessSafeKey {
    let alg = match e {
        Encr::AesGcm16(128) => &aead::AES_128_GCM,
        Encr::ChaCha20Poly1305 => &aead::CHACHA20_POLY1305,
        _ => &aead::AES_256_GCM,
    };
    aead::LessSafeKey::new(aead::UnboundKey::new(alg, key).expect("key length fits the algorithm"))
}

/// RFC 5282 4 and RFC 7634 2: nonce = salt (4 octets) | IV (8 octets).
fn gcm_nonce(salt: &[u8], iv: &[u8]) -> aead::Nonce {
    let mut n = [0u8; 12];
    n[..4].copy_from_slice(salt);
    n[4..].copy_from_slice(iv);
    aead::Nonce::assume_unique_for_key(n)
}

fn cbc_encrypt(bits: u16, key: &[u8], iv: &[u8], buf: &mut [u8], n: usize) {
    if bits == 128 {
        let c = cbc::Encryptor::<aes::Aes128>::new_from_slices(key, iv).expect("key and IV lengths fit");
        c.encrypt_padded_mut::<NoPadding>(buf, n).expect("whole blocks");
    } else {
        let c = cbc::Encryptor::<aes::Aes256>::new_from_slices(key, iv).expect("key and IV lengths fit");
        c.encrypt_padded_mut::<NoPadding>(buf, n).expect("whole blocks");
    }
}

fn cbc_decrypt(bits: u16, key: &[u8], iv: &[u8], buf: &mut [u8]) {
    if bits == 128 {
        let c = cbc::Decryptor::<aes::Aes128>::new_from_slices(key, iv).expect("key and IV lengths fit");
        let _ = c.decrypt_padded_mut::<NoPadding>(buf);
    } else {
        let c = cbc::Decryptor::<aes::Aes256>::new_from_slices(key, iv).expect("key and IV lengths fit");
        let _ = c.decrypt_padded_mut::<NoPadding>(buf);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codepoints::{ExchangeType, NotifyType};
    use crate::crypto::SystemRandom;
    use crate::wire::message::parse_chain;
    use crate::wire::{Flags, Message, Notify};

    fn header() -> Header {
        Header {
            spi_i: 1,
            spi_r: 2,
            next_payload: PayloadType::NoNextPayload,
            exchange: ExchangeType::Informational,
            flags: Flags { initiator: true, ..Default::default() },
            message_id: 5,
            length: 0,
        }
    }

    #[test]
    fn chacha20_poly1305_matches_rfc8439_2_8_2_with_the_rfc7634_nonce() {
        // RFC 8439 2.8.2's AEAD vector; its nonce 07000000 4041424344454647
        // is, in RFC 7634's terms, the salt (the last 4 octets of the
        // keying material) and the 8-octet IV.
        let hex = |s: &str| {
            (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect::<Vec<u8>>()
        };
        let mut keymat: Vec<u8> = (0x80..=0x9f).collect();
        keymat.extend(hex("07000000"));
        assert_eq!(keymat.len(), Encr::ChaCha20Poly1305.key_len());
        let key = aead_key(Encr::ChaCha20Poly1305, &keymat[..32]);
        let nonce = gcm_nonce(&keymat[32..], &hex("4041424344454647"));
        let mut text = b"Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.".to_vec();
        let tag = key
            .seal_in_place_separate_tag(nonce, aead::Aad::from(&hex("50515253c0c1c2c3c4c5c6c7")[..]), &mut text)
            .unwrap();
        assert_eq!(&text[..16], &hex("d31a8d34648e60db7b86afbc53ef7ec2")[..]);
        assert_eq!(tag.as_ref(), &hex("1ae10b594f09e26a7e902ecbd0600691")[..]);
        assert_eq!(Encr::from_transform(EncrId::ChaCha20Poly1305, None), Some(Encr::ChaCha20Poly1305));
        assert_eq!(
            Encr::from_transform(EncrId::ChaCha20Poly1305, Some(256)),
            None,
            "RFC 7634 2: no Key Length attribute"
        );
    }

    #[test]
    fn seal_then_open_for_every_cipher_and_tamper_fails() {
        let mut rng = SystemRandom::default();
        let payloads = vec![Payload::Notify(Notify::new(NotifyType::Cookie2, vec![9; 21]))];
        for (encr, integ) in [
            (Encr::AesGcm16(128), None),
            (Encr::AesGcm16(256), None),
            (Encr::ChaCha20Poly1305, None),
            (Encr::AesCbc(128), Some(Integ::HmacSha1_96)),
            (Encr::AesCbc(256), Some(Integ::HmacSha256_128)),
        ] {
            let ek = vec![3u8; encr.key_len()];
            let ak = vec![4u8; integ.map_or(0, |i| i.key_len())];
            let k = SkKeys { encr, integ, ek: &ek, ak: &ak };
            let d = k.seal(header(), &payloads, &mut rng);
            let m = Message::parse(&d).unwrap();
            let sk = m.sk.unwrap();
            let plain = k.open(&d, &sk).unwrap();
            assert_eq!(parse_chain(sk.first, &plain).unwrap(), payloads);
            for at in [0, 20, sk.iv_at, d.len() - 1] {
                let mut bad = d.clone();
                bad[at] ^= 1;
                assert_eq!(k.open(&bad, &sk), Err(SkError::Icv), "{encr:?} flip at {at}");
            }
            assert!(k.open(&d[..sk.iv_at + 4], &sk).is_err());
        }
    }
}
