//! Arbitrary MPSA_PUT notification data (and SPI) into the parser an
//! endpoint runs before installing a group SA: refused or accepted, never
//! a panic; whatever is accepted emits and parses back to the same thing.
#![no_main]

use controlplane::codepoints::{NotifyType, ProtocolId};
use controlplane::mpsa::MpsaPut;
use controlplane::wire::Notify;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 4 {
        return;
    }
    let n = Notify { protocol: ProtocolId::Esp, spi: data[..4].to_vec(), ty: NotifyType::MpsaPut, data: data[4..].to_vec() };
    if let Ok(put) = MpsaPut::from_notify(&n) {
        let again = MpsaPut::from_notify(&put.to_notify()).expect("what we emit parses");
        assert_eq!(again, put);
        let _ = put.keymat();
    }
});
