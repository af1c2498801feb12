//! ESP ciphers: AES-GCM-128/256 (RFC 4106), ChaCha20-Poly1305 (RFC 7634)
//! and AES-CBC-128/256 (RFC 3602) with HMAC-SHA1-96 (RFC 2404) or
//! HMAC-SHA2-256-128 (RFC 4868), applied in place to the ESP part of a
//! packet buffer. ChaCha20-Poly1305 is `ring`'s (the only one of the
//! three crates here with it in the build).
//!
//! Crates, chosen by measurement on this machine's CPU (AES-NI, VAES,
//! VPCLMULQDQ, SHA-NI; figures in ../shared/anchors/README.md, TSC
//! cycles per in-place seal, 64 B / 1400 B): `ring` AES-128-GCM 214 / 661,
//! `aes-gcm` 305 / 2606 (140 / 1668 only with target-cpu=native), aws-lc-rs
//! 237 / 652. `ring` is used for AES-GCM: fastest portable build, runtime
//! CPU dispatch. `ring` has no raw AES-CBC, so CBC uses RustCrypto's `aes`
//! (AES-NI detected at run time) with `cbc`, and HMAC comes from `ring`.
//!
//! The layout every function here works on, `esp`, is one ESP packet from
//! its header on: `SPI | Seq | IV | payload+padding+trailer | ICV`. Seal
//! fills in the IV and the ICV and encrypts; open verifies the ICV, then
//! decrypts. Nothing allocates. Key material is zeroized on drop where the
//! crate allows (RustCrypto's `aes` with its `zeroize` feature, our own key
//! copies); `ring` keeps its expanded keys in memory it owns.

mod cbc_hmac;
mod gcm;

use std::fmt;
use std::str::FromStr;

use crate::wire::esp::HEADER_LEN;

/// The ESP transforms the gateway implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Deserialize, serde::Serialize)]
#[serde(try_from = "String", into = "String")]
pub enum Algorithm {
    AesGcm128,
    AesGcm256,
    ChaCha20Poly1305,
    AesCbc128HmacSha1,
    AesCbc256HmacSha1,
    AesCbc128HmacSha256,
    AesCbc256HmacSha256,
}

impl Algorithm {
    pub const ALL: [Algorithm; 7] = [
        Algorithm::AesGcm128,
        Algorithm::AesGcm256,
        Algorithm::ChaCha20Poly1305,
        Algorithm::AesCbc128HmacSha1,
        Algorithm::AesCbc256HmacSha1,
        Algorithm::AesCbc128HmacSha256,
        Algorithm::AesCbc256HmacSha256,
    ];

    /// The name used in configs and by ../shared/interop/esp-oracle.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::AesGcm128 => "aes128gcm",
            Algorithm::AesGcm256 => "aes256gcm",
            Algorithm::ChaCha20Poly1305 => "chacha20poly1305",
            Algorithm::AesCbc128HmacSha1 => "aes128cbc-sha1",
            Algorithm::AesCbc256HmacSha1 => "aes256cbc-sha1",
            Algorithm::AesCbc128HmacSha256 => "aes128cbc-sha256",
            Algorithm::AesCbc256HmacSha256 => "aes256cbc-sha256",
        }
    }

    pub fn is_aead(self) -> bool {
        matches!(self, Algorithm::AesGcm128 | Algorithm::AesGcm256 | Algorithm::ChaCha20Poly1305)
    }

    /// Octets of encryption key material: for GCM the AES key followed by
    /// the 4-octet salt (RFC 4106 8.1), for ChaCha20-Poly1305 the 32-octet
    /// key and the salt (RFC 7634 2), for CBC the AES key.
    pub fn enc_key_len(self) -> usize {
        match self {
            Algorithm::AesGcm128 => 16 + 4,
            Algorithm::AesGcm256 | Algorithm::ChaCha20Poly1305 => 32 + 4,
            Algorithm::AesCbc128HmacSha1 | Algorithm::AesCbc128HmacSha256 => 16,
            Algorithm::AesCbc256HmacSha1 | Algorithm::AesCbc256HmacSha256 => 32,
        }
    }

    /// Octets of integrity key (RFC 2404: 20; RFC 4868: 32; AEAD: none).
    pub fn auth_key_len(self) -> usize {
        match self {
            Algorithm::AesGcm128 | Algorithm::AesGcm256 | Algorithm::ChaCha20Poly1305 => 0,
            Algorithm::AesCbc128HmacSha1 | Algorithm::AesCbc256HmacSha1 => 20,
            Algorithm::AesCbc128HmacSha256 | Algorithm::AesCbc256HmacSha256 => 32,
        }
    }

    /// Explicit IV in each packet: GCM 8 (RFC 4106 3.1), ChaCha20-Poly1305
    /// 8 (RFC 7634 2), CBC 16 (RFC 3602).
    pub fn iv_len(self) -> usize {
        if self.is_aead() {
            8
        } else {
            16
        }
    }

    /// ICV octets: GCM and Poly1305 16, HMAC-SHA1-96 12, HMAC-SHA2-256-128 16.
    pub fn icv_len(self) -> usize {
        match self {
            Algorithm::AesCbc128HmacSha1 | Algorithm::AesCbc256HmacSha1 => 12,
            _ => 16,
        }
    }

    /// Alignment of payload + padding + trailer: 4 for the AEADs (RFC 4303
    /// 2.4; RFC 7634 2: no padding beyond it), the 16-octet block for CBC.
    pub fn align(self) -> usize {
        if self.is_aead() {
            4
        } else {
            16
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Algorithm {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Algorithm::ALL.into_iter().find(|a| a.name() == s).ok_or_else(|| {
            let names: Vec<_> = Algorithm::ALL.iter().map(|a| a.name()).collect();
            format!("unknown algorithm '{s}' (one of {})", names.join(", "))
        })
    }
}

impl TryFrom<String> for Algorithm {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl From<Algorithm> for String {
    fn from(a: Algorithm) -> String {
        a.name().to_string()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("{alg}: encryption key must be {want} octets, got {got}")]
    EncKeyLength { alg: Algorithm, want: usize, got: usize },
    #[error("{alg}: integrity key must be {want} octets, got {got}")]
    AuthKeyLength { alg: Algorithm, want: usize, got: usize },
}

/// The ICV did not verify (or the ESP packet is too short to hold one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IcvError;

/// One SA's keyed cipher.
pub struct EspCipher {
    alg: Algorithm,
    inner: Inner,
}

// Per-SA state, built once; size differences between ciphers do not matter.
#[allow(clippy::large_enum_variant)]
enum Inner {
    Gcm(gcm::Gcm),
    Cbc(cbc_hmac::CbcHmac),
}

impl fmt::Debug for EspCipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EspCipher({}, keys <redacted>)", self.alg)
    }
}

impl EspCipher {
    pub fn new(alg: Algorithm, enc_key: &[u8], auth_key: &[u8]) -> Result<Self, KeyError> {
        if enc_key.len() != alg.enc_key_len() {
            return Err(KeyError::EncKeyLength { alg, want: alg.enc_key_len(), got: enc_key.len() });
        }
        if auth_key.len() != alg.auth_key_len() {
            return Err(KeyError::AuthKeyLength { alg, want: alg.auth_key_len(), got: auth_key.len() });
        }
        let inner = if alg == Algorithm::ChaCha20Poly1305 {
            Inner::Gcm(gcm::Gcm::chacha20_poly1305(enc_key))
        } else if alg.is_aead() {
            Inner::Gcm(gcm::Gcm::new(enc_key))
        } else {
            Inner::Cbc(cbc_hmac::CbcHmac::new(alg, enc_key, auth_key))
        };
        Ok(EspCipher { alg, inner })
    }

    pub fn algorithm(&self) -> Algorithm {
        self.alg
    }

    /// Seals `esp` (see the module docs) for 64-bit sequence number `seq`;
    /// with `esn` the high 32 bits are authenticated too (RFC 4303 2.2.1).
    /// `esp` must be exactly header + IV + a correctly padded payload + ICV.
    pub fn seal(&self, esp: &mut [u8], seq: u64, esn: bool) {
        debug_assert!(esp.len() >= HEADER_LEN + self.alg.iv_len() + self.alg.icv_len());
        match &self.inner {
            Inner::Gcm(g) => g.seal(esp, seq, esn),
            Inner::Cbc(c) => c.seal(esp, seq, esn),
        }
    }

    /// Verifies and decrypts `esp` in place. On success the payload region
    /// (after header and IV, before the ICV) holds the plaintext.
    pub fn open(&self, esp: &mut [u8], seq: u64, esn: bool) -> Result<(), IcvError> {
        let min = HEADER_LEN + self.alg.iv_len() + self.alg.icv_len();
        if esp.len() < min {
            return Err(IcvError);
        }
        match &self.inner {
            Inner::Gcm(g) => g.open(esp, seq, esn),
            Inner::Cbc(c) => c.open(esp, seq, esn),
        }
    }
}

#[cfg(test)]
pub(crate) fn hex(s: &str) -> Vec<u8> {
    let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::esp;

    /// Builds an ESP packet with a padded payload, seals it, opens it.
    fn round_trip(alg: Algorithm, payload: &[u8], seq: u64, esn: bool) {
        let enc: Vec<u8> = (0..alg.enc_key_len() as u8).collect();
        let auth: Vec<u8> = (100..100 + alg.auth_key_len() as u8).collect();
        let c = EspCipher::new(alg, &enc, &auth).unwrap();
        let pad = esp::pad_len(payload.len(), alg.align());
        let total = esp::HEADER_LEN + alg.iv_len() + payload.len() + pad + 2 + alg.icv_len();
        let mut b = vec![0u8; total];
        esp::emit_header(&mut b, 0x1234_5678, seq as u32);
        let p0 = esp::HEADER_LEN + alg.iv_len();
        b[p0..p0 + payload.len()].copy_from_slice(payload);
        let tend = total - alg.icv_len();
        esp::emit_trailer(&mut b[p0 + payload.len()..tend], 4);
        let plain = b.clone();
        c.seal(&mut b, seq, esn);
        if !payload.is_empty() {
            assert_ne!(&b[p0..p0 + payload.len()], payload, "{alg}: encrypted");
        }
        let sealed = b.clone();
        c.open(&mut b, seq, esn).unwrap();
        assert_eq!(&b[p0..tend], &plain[p0..tend], "{alg}: decrypts to the input");
        // Any flipped bit anywhere fails the ICV.
        for i in [0, 5, p0 - 1, p0, tend - 1, total - 1] {
            let mut t = sealed.clone();
            t[i] ^= 0x20;
            assert_eq!(c.open(&mut t, seq, esn), Err(IcvError), "{alg}: bit flip at {i}");
        }
        // ESN: the high half of the sequence number is authenticated.
        if esn {
            let mut t = sealed.clone();
            assert_eq!(c.open(&mut t, seq ^ (1 << 40), true), Err(IcvError), "{alg}: ESN high bits");
        }
    }

    #[test]
    fn every_algorithm_round_trips_and_detects_tampering() {
        for alg in Algorithm::ALL {
            for len in [0usize, 1, 15, 16, 17, 64, 1400] {
                let payload: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
                round_trip(alg, &payload, 1, false);
                round_trip(alg, &payload, (5u64 << 32) | 9, true);
            }
        }
    }

    #[test]
    fn key_lengths_are_checked() {
        assert!(matches!(
            EspCipher::new(Algorithm::AesGcm128, &[0; 16], &[]),
            Err(KeyError::EncKeyLength { want: 20, got: 16, .. })
        ));
        assert!(matches!(
            EspCipher::new(Algorithm::AesCbc128HmacSha1, &[0; 16], &[0; 32]),
            Err(KeyError::AuthKeyLength { want: 20, got: 32, .. })
        ));
        let c = EspCipher::new(Algorithm::AesGcm256, &[0; 36], &[]).unwrap();
        assert!(!format!("{c:?}").contains('0'), "no key material in Debug");
        let mut short = [0u8; 20];
        assert_eq!(c.open(&mut short, 1, false), Err(IcvError));
    }

    #[test]
    fn names_parse() {
        for a in Algorithm::ALL {
            assert_eq!(a.name().parse::<Algorithm>(), Ok(a));
        }
        assert!("des".parse::<Algorithm>().unwrap_err().contains("aes128gcm"));
    }
}
