//! AES-GCM for ESP (RFC 4106) on intel-ipsec-mb, with `ring` as the
//! fallback where intel-ipsec-mb does not initialise (figures in
//! crypto/mod.rs); and ChaCha20-Poly1305 (RFC 7634) on `ring`, which is
//! built the same way in ESP: salt, IV, AAD and a 16-octet tag.
//!
//! Nonce = 4-octet salt (the last octets of the key material, RFC 4106
//! 8.1) || 8-octet explicit IV. The IV is the 64-bit sequence number: unique
//! per packet under one key, which is all GCM needs (RFC 4106 3.1). AAD is
//! SPI || Seq (8 octets), or SPI || Seq high || Seq low with ESN (12; RFC
//! 4106 5).

use ring::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey};
use zeroize::Zeroizing;

use super::IcvError;
use crate::wire::esp::HEADER_LEN;

const IV_LEN: usize = 8;
const TAG_LEN: usize = 16;

pub(super) struct Gcm {
    key: Engine,
    salt: Zeroizing<[u8; 4]>,
}

// Per-SA, built once; the size difference is irrelevant.
#[allow(clippy::large_enum_variant)]
enum Engine {
    IpsecMb(ipsec_mb::GcmKey),
    Ring(LessSafeKey),
}

impl Gcm {
    /// `material` = AES key (16 or 32 octets) || salt (4 octets); the length
    /// was checked by the caller.
    pub(super) fn new(material: &[u8]) -> Gcm {
        Self::with_engine(material, true)
    }

    /// `material` = ChaCha20 key (32 octets) || salt (4 octets) (RFC 7634
    /// 2); the length was checked by the caller.
    pub(super) fn chacha20_poly1305(material: &[u8]) -> Gcm {
        let (k, s) = material.split_at(material.len() - 4);
        let key = UnboundKey::new(&aead::CHACHA20_POLY1305, k).expect("key length checked by EspCipher::new");
        let mut salt = Zeroizing::new([0u8; 4]);
        salt.copy_from_slice(s);
        Gcm { key: Engine::Ring(LessSafeKey::new(key)), salt }
    }

    /// `fast`: intel-ipsec-mb when it is available; otherwise `ring`.
    pub(super) fn with_engine(material: &[u8], fast: bool) -> Gcm {
        let (k, s) = material.split_at(material.len() - 4);
        let key = match fast.then(|| ipsec_mb::GcmKey::new(k)).flatten() {
            Some(key) => Engine::IpsecMb(key),
            None => {
                let alg = if k.len() == 16 { &aead::AES_128_GCM } else { &aead::AES_256_GCM };
                Engine::Ring(LessSafeKey::new(UnboundKey::new(alg, k).expect("key length checked by EspCipher::new")))
            }
        };
        let mut salt = Zeroizing::new([0u8; 4]);
        salt.copy_from_slice(s);
        Gcm { key, salt }
    }

    fn nonce_bytes(&self, iv: &[u8]) -> [u8; 12] {
        let mut n = [0u8; 12];
        n[..4].copy_from_slice(&*self.salt);
        n[4..].copy_from_slice(iv);
        n
    }

    /// AAD into `buf`, returning the used part.
    fn aad<'a>(esp: &[u8], seq: u64, esn: bool, buf: &'a mut [u8; 12]) -> &'a [u8] {
        buf[..4].copy_from_slice(&esp[..4]);
        if esn {
            buf[4..8].copy_from_slice(&((seq >> 32) as u32).to_be_bytes());
            buf[8..12].copy_from_slice(&esp[4..8]);
            &buf[..12]
        } else {
            buf[4..8].copy_from_slice(&esp[4..8]);
            &buf[..8]
        }
    }

    pub(super) fn seal(&self, esp: &mut [u8], seq: u64, esn: bool) {
        let n = esp.len();
        esp[HEADER_LEN..HEADER_LEN + IV_LEN].copy_from_slice(&seq.to_be_bytes());
        let nonce = self.nonce_bytes(&esp[HEADER_LEN..HEADER_LEN + IV_LEN]);
        let mut abuf = [0u8; 12];
        let aad = Self::aad(esp, seq, esn, &mut abuf);
        let (body, icv) = esp[HEADER_LEN + IV_LEN..].split_at_mut(n - HEADER_LEN - IV_LEN - TAG_LEN);
        match &self.key {
            Engine::IpsecMb(k) => {
                let mut tag = [0u8; TAG_LEN];
                k.seal_in_place(&nonce, aad, body, &mut tag);
                icv.copy_from_slice(&tag);
            }
            Engine::Ring(k) => {
                let tag = k
                    .seal_in_place_separate_tag(Nonce::assume_unique_for_key(nonce), Aad::from(aad), body)
                    .expect("ESP payloads are far below GCM's length limit");
                icv.copy_from_slice(tag.as_ref());
            }
        }
    }

    pub(super) fn open(&self, esp: &mut [u8], seq: u64, esn: bool) -> Result<(), IcvError> {
        let n = esp.len();
        let nonce = self.nonce_bytes(&esp[HEADER_LEN..HEADER_LEN + IV_LEN]);
        let mut abuf = [0u8; 12];
        let aad = Self::aad(esp, seq, esn, &mut abuf);
        match &self.key {
            Engine::IpsecMb(k) => {
                let (body, icv) = esp[HEADER_LEN + IV_LEN..].split_at_mut(n - HEADER_LEN - IV_LEN - TAG_LEN);
                let tag: &[u8; TAG_LEN] = (&*icv).try_into().map_err(|_| IcvError)?;
                k.open_in_place(&nonce, aad, body, tag).then_some(()).ok_or(IcvError)
            }
            // ciphertext || tag are contiguous in ESP: open in place.
            Engine::Ring(k) => k
                .open_in_place(Nonce::assume_unique_for_key(nonce), Aad::from(aad), &mut esp[HEADER_LEN + IV_LEN..])
                .map(|_| ())
                .map_err(|_| IcvError),
        }
    }
}

/// GCM on raw inputs, for known-answer tests of the same `ring` calls.
#[cfg(test)]
pub(super) fn seal_raw(key: &[u8], nonce: [u8; 12], aad: &[u8], data: &mut [u8]) -> [u8; 16] {
    let alg = if key.len() == 16 { &aead::AES_128_GCM } else { &aead::AES_256_GCM };
    let k = LessSafeKey::new(UnboundKey::new(alg, key).unwrap());
    let t = k.seal_in_place_separate_tag(Nonce::assume_unique_for_key(nonce), Aad::from(aad), data).unwrap();
    t.as_ref().try_into().unwrap()
}

#[cfg(test)]
mod tests {
    use super::super::hex;
    use super::*;

    /// McGrew & Viega, "The Galois/Counter Mode of Operation (GCM)", test
    /// cases 4 (AES-128) and 16 (AES-256): 60-octet plaintext, 20-octet AAD,
    /// 96-bit IV.
    #[test]
    fn known_answers_gcm_spec_test_cases_4_and_16() {
        let p = hex("d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72\
             1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39");
        let aad = hex("feedfacedeadbeeffeedfacedeadbeefabaddad2");
        let iv: [u8; 12] = hex("cafebabefacedbaddecaf888").try_into().unwrap();

        let mut d = p.clone();
        let tag = seal_raw(&hex("feffe9928665731c6d6a8f9467308308"), iv, &aad, &mut d);
        assert_eq!(
            d,
            hex("42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e\
                 21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091")
        );
        assert_eq!(tag.to_vec(), hex("5bc94fbc3221a5db94fae95ae7121a47"));

        let mut d = p.clone();
        let key = hex("feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308");
        let tag = seal_raw(&key, iv, &aad, &mut d);
        assert_eq!(
            d,
            hex("522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa\
                 8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662")
        );
        assert_eq!(tag.to_vec(), hex("76fc6ece0f4e1768cddf8853bb2d551b"));
    }

    /// intel-ipsec-mb and ring produce the same ESP bytes, and each opens
    /// the other's, for both key sizes, with and without ESN.
    #[test]
    fn engines_agree() {
        for klen in [20usize, 36] {
            let material: Vec<u8> = (0..klen as u8).map(|i| i.wrapping_mul(13)).collect();
            let (fast, slow) = (Gcm::with_engine(&material, true), Gcm::with_engine(&material, false));
            assert!(matches!(fast.key, Engine::IpsecMb(_)), "intel-ipsec-mb in use");
            for len in [0usize, 1, 15, 16, 17, 100, 1500] {
                for esn in [false, true] {
                    let mut a = vec![0u8; 8 + 8 + len + 16];
                    a[..8].copy_from_slice(&[0, 0, 0x10, 1, 0, 0, 0, 9]);
                    a[16..16 + len].iter_mut().enumerate().for_each(|(i, b)| *b = i as u8);
                    let mut b = a.clone();
                    let seq = (3u64 << 32) | 9;
                    fast.seal(&mut a, seq, esn);
                    slow.seal(&mut b, seq, esn);
                    assert_eq!(a, b, "len {len} esn {esn}");
                    let mut c = a.clone();
                    slow.open(&mut c, seq, esn).unwrap();
                    fast.open(&mut b, seq, esn).unwrap();
                    assert_eq!(b, c);
                    a[16] ^= 1;
                    assert_eq!(fast.open(&mut a, seq, esn), Err(IcvError));
                }
            }
        }
    }

    /// RFC 8439 2.8.2's AEAD vector (RFC 7634 Appendix A uses it too), as
    /// an ESP packet with ESN: SPI 0x50515253, sequence number
    /// 0xc0c1c2c3c4c5c6c7 (AAD = SPI | Seq high | Seq low, RFC 7634 2.1),
    /// salt 07000000, IV 4041424344454647, opened in place; then sealed
    /// back with the sequence number as the IV, and opened again.
    #[test]
    fn rfc7634_chacha20_poly1305_known_answer_through_esp() {
        let key = hex("808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f07000000");
        let c = Gcm::chacha20_poly1305(&key);
        let plain = b"Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.";
        let mut esp = hex("50515253c4c5c6c74041424344454647");
        esp.extend(hex("d31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d6\
             3dbea45e8ca9671282fafb69da92728b1a71de0a9e060b2905d6a5b67ecd3b36\
             92ddbd7f2d778b8c9803aee328091b58fab324e4fad675945585808b4831d7bc\
             3ff4def08e4b7a9de576d26586cec64b6116"));
        esp.extend(hex("1ae10b594f09e26a7e902ecbd0600691"));
        let seq = 0xc0c1c2c3c4c5c6c7u64;
        c.open(&mut esp, seq, true).unwrap();
        assert_eq!(&esp[16..16 + plain.len()], &plain[..]);
        let mut bad = esp.clone();
        c.seal(&mut bad, seq, true);
        bad[20] ^= 1;
        assert_eq!(c.open(&mut bad, seq, true), Err(IcvError));
        c.seal(&mut esp, seq, false);
        assert_eq!(&esp[8..16], &seq.to_be_bytes(), "explicit IV = sequence number");
        c.open(&mut esp, seq, false).unwrap();
        assert_eq!(&esp[16..16 + plain.len()], &plain[..]);
    }

    /// The ESP construction uses exactly those primitives: salt || IV as the
    /// nonce and SPI || Seq as AAD (RFC 4106 3, 5).
    #[test]
    fn esp_nonce_and_aad_layout() {
        let material = hex("feffe9928665731c6d6a8f9467308308cafebabe");
        let g = Gcm::new(&material);
        let mut esp = vec![0u8; 8 + 8 + 4 + 16];
        esp[..8].copy_from_slice(&hex("0000432187654321"));
        esp[16..20].copy_from_slice(&[1, 2, 2, 4]);
        let seq = 0xfacedbaddecaf888u64;
        g.seal(&mut esp, seq, false);
        let mut d = [1u8, 2, 2, 4];
        let mut nonce = [0u8; 12];
        nonce.copy_from_slice(&hex("cafebabefacedbaddecaf888"));
        let tag = seal_raw(&material[..16], nonce, &hex("0000432187654321"), &mut d);
        assert_eq!(&esp[8..16], &seq.to_be_bytes(), "explicit IV = sequence number");
        assert_eq!(&esp[16..20], &d);
        assert_eq!(&esp[20..], &tag);
        // With ESN the AAD is SPI || seq_hi || seq_lo.
        let mut esp2 = esp.clone();
        esp2[16..20].copy_from_slice(&[1, 2, 2, 4]);
        g.seal(&mut esp2, seq, true);
        let mut d = [1u8, 2, 2, 4];
        let tag = seal_raw(&material[..16], nonce, &hex("00004321facedbad87654321"), &mut d);
        assert_eq!(&esp2[20..], &tag);
    }
}
