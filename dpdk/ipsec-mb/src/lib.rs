//! intel-ipsec-mb, the crypto library under DPDK's `crypto_ipsec_mb` PMD,
//! called directly: AES-GCM-128/256 seal and open in place through its
//! direct (synchronous, single-buffer) API, which ipsec-secgw's cpu-crypto
//! mode also ends in.
//!
//! Why here and not `ring`: measured on this machine (../shared/anchors),
//! AES-128-GCM seal costs ~130 / ~430 TSC cycles at 64 / 1400 octets with
//! intel-ipsec-mb against ~214 / ~661 with ring.
//!
//! One manager (`IMB_MGR`) is initialised per process for the CPU's best
//! code path and then only read: the direct GCM functions keep all state in
//! caller-provided key and context structs, so any thread may use it.
//! `unsafe` lives only in this crate and `dpdk`; each block says why it is
//! sound.

#![allow(clippy::missing_safety_doc)]

use std::fmt;
use std::ptr::NonNull;
use std::sync::OnceLock;

#[allow(non_upper_case_globals, non_camel_case_types, non_snake_case, dead_code)]
#[allow(clippy::all, clippy::undocumented_unsafe_blocks, missing_debug_implementations, unsafe_op_in_unsafe_fn)]
pub mod sys {
    include!(concat!(env!("OUT_DIR"), "/bindings.rs"));
}

/// The process-wide manager with its function table.
struct Manager(NonNull<sys::IMB_MGR>);

// SAFETY: after init the manager is only read (its function pointers); the
// direct GCM API keeps no state in it.
unsafe impl Send for Manager {}
// SAFETY: as above.
unsafe impl Sync for Manager {}

fn manager() -> Option<&'static Manager> {
    static MGR: OnceLock<Option<Manager>> = OnceLock::new();
    MGR.get_or_init(|| {
        // SAFETY: alloc_mb_mgr returns a new manager or NULL; init_mb_mgr_auto
        // fills its function table for the best architecture the CPU has.
        unsafe {
            let m = NonNull::new(sys::alloc_mb_mgr(0))?;
            let mut arch: sys::IMB_ARCH = 0;
            sys::init_mb_mgr_auto(m.as_ptr(), &mut arch);
            if sys::imb_get_errno(m.as_ptr()) != 0 {
                sys::free_mb_mgr(m.as_ptr());
                return None;
            }
            Some(Manager(m))
        }
    })
    .as_ref()
}

/// The library version (e.g. "1.3.0").
pub fn version() -> String {
    // SAFETY: returns a static NUL-terminated string.
    unsafe { std::ffi::CStr::from_ptr(sys::imb_get_version_str()) }.to_string_lossy().into_owned()
}

/// Whether the library initialised on this CPU.
pub fn available() -> bool {
    manager().is_some()
}

#[repr(C, align(64))]
struct AlignedKey(sys::gcm_key_data);

/// An expanded AES-GCM key (128 or 256 bits). Zeroized on drop.
pub struct GcmKey {
    data: Box<AlignedKey>,
    aes256: bool,
    mgr: &'static Manager,
}

impl fmt::Debug for GcmKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "GcmKey(aes{}, <redacted>)", if self.aes256 { 256 } else { 128 })
    }
}

/// GCM tag length used by ESP (RFC 4106: 16 octets).
pub const TAG_LEN: usize = 16;

impl GcmKey {
    /// Expands a 16- or 32-octet AES key; `None` for another length or if
    /// intel-ipsec-mb is unavailable.
    pub fn new(key: &[u8]) -> Option<GcmKey> {
        let mgr = manager()?;
        let aes256 = match key.len() {
            16 => false,
            32 => true,
            _ => return None,
        };
        let mut data = Box::new(AlignedKey(sys::gcm_key_data::default()));
        // SAFETY: the manager is initialised; key has the length the chosen
        // function reads; `data` is a properly aligned gcm_key_data.
        unsafe {
            let m = mgr.0.as_ref();
            let pre = if aes256 { m.gcm256_pre } else { m.gcm128_pre };
            pre?(key.as_ptr().cast(), &mut data.0);
        }
        Some(GcmKey { data, aes256, mgr })
    }

    /// Encrypts `data` in place and writes the tag.
    #[inline]
    pub fn seal_in_place(&self, iv: &[u8; 12], aad: &[u8], data: &mut [u8], tag: &mut [u8; TAG_LEN]) {
        let mut ctx = sys::gcm_context_data::default();
        // SAFETY: key and context are valid structs; data is read and written
        // in place (the library supports dst == src); iv is 12 octets, aad
        // and tag have the lengths passed.
        unsafe {
            let m = self.mgr.0.as_ref();
            let f = if self.aes256 { m.gcm256_enc } else { m.gcm128_enc };
            if let Some(f) = f {
                f(
                    &self.data.0,
                    &mut ctx,
                    data.as_mut_ptr(),
                    data.as_ptr(),
                    data.len() as u64,
                    iv.as_ptr(),
                    aad.as_ptr(),
                    aad.len() as u64,
                    tag.as_mut_ptr(),
                    TAG_LEN as u64,
                );
            }
        }
    }

    /// Verifies `tag` over `aad` and the ciphertext `data`, decrypting it in
    /// place. On a wrong tag returns false; `data` then holds garbage the
    /// caller must drop.
    #[inline]
    pub fn open_in_place(&self, iv: &[u8; 12], aad: &[u8], data: &mut [u8], tag: &[u8; TAG_LEN]) -> bool {
        let mut ctx = sys::gcm_context_data::default();
        let mut computed = [0u8; TAG_LEN];
        // SAFETY: as in seal_in_place.
        unsafe {
            let m = self.mgr.0.as_ref();
            let f = if self.aes256 { m.gcm256_dec } else { m.gcm128_dec };
            match f {
                Some(f) => f(
                    &self.data.0,
                    &mut ctx,
                    data.as_mut_ptr(),
                    data.as_ptr(),
                    data.len() as u64,
                    iv.as_ptr(),
                    aad.as_ptr(),
                    aad.len() as u64,
                    computed.as_mut_ptr(),
                    TAG_LEN as u64,
                ),
                None => return false,
            }
        }
        // Constant-time comparison.
        computed.iter().zip(tag).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
    }
}

impl Drop for GcmKey {
    fn drop(&mut self) {
        let p = &mut self.data.0 as *mut sys::gcm_key_data as *mut u8;
        for i in 0..std::mem::size_of::<sys::gcm_key_data>() {
            // SAFETY: p points to size_of::<gcm_key_data>() bytes we own;
            // volatile so the wipe is not optimised away.
            unsafe { std::ptr::write_volatile(p.add(i), 0) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    }

    /// McGrew & Viega GCM spec test cases 4 (AES-128) and 16 (AES-256).
    #[test]
    fn known_answers_gcm_spec_test_cases_4_and_16() {
        assert!(available(), "intel-ipsec-mb did not initialise");
        let p = hex("d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39");
        let aad = hex("feedfacedeadbeeffeedfacedeadbeefabaddad2");
        let iv: [u8; 12] = hex("cafebabefacedbaddecaf888").try_into().unwrap();
        for (key, ct, tag) in [
            (
                "feffe9928665731c6d6a8f9467308308",
                "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091",
                "5bc94fbc3221a5db94fae95ae7121a47",
            ),
            (
                "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308",
                "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662",
                "76fc6ece0f4e1768cddf8853bb2d551b",
            ),
        ] {
            let k = GcmKey::new(&hex(key)).unwrap();
            let mut d = p.clone();
            let mut t = [0u8; 16];
            k.seal_in_place(&iv, &aad, &mut d, &mut t);
            assert_eq!(d, hex(ct));
            assert_eq!(t.to_vec(), hex(tag));
            assert!(k.open_in_place(&iv, &aad, &mut d, &t));
            assert_eq!(d, p);
            let mut bad = t;
            bad[0] ^= 1;
            let mut d2 = hex(ct);
            assert!(!k.open_in_place(&iv, &aad, &mut d2, &bad));
        }
        assert!(GcmKey::new(&[0; 24]).is_none());
        assert!(format!("{:?}", GcmKey::new(&[0; 16]).unwrap()).contains("redacted"));
        assert!(version().starts_with('1'));
    }
}
