//! Arbitrary MOBIKE-X notify data into the parameter parser, and arbitrary
//! notify sequences into the SELECTOR set procedure a responder runs:
//! refused or read, never a panic; parameters that parse emit and parse
//! back to the same thing.
#![no_main]

use controlplane::codepoints::NotifyType;
use controlplane::mobikex::{param, selector};
use controlplane::wire::{Notify, Payload};
use libfuzzer_sys::fuzz_target;

/// The notify types the procedure cares about, and one it does not.
const TYPES: [NotifyType; 7] = [
    NotifyType::Selector,
    NotifyType::EndOfSelector,
    NotifyType::UpdateSaAddresses,
    NotifyType::AddSaAddress,
    NotifyType::RemoveSaAddress,
    NotifyType::AdditionalIp6Address,
    NotifyType::Cookie2,
];

fuzz_target!(|data: &[u8]| {
    if let Ok(ps) = param::parse(data) {
        assert_eq!(param::parse(&param::emit(&ps)).as_ref(), Ok(&ps), "what we emit parses back");
    }
    // The input as notifies: a type octet, a length octet, that much data.
    let mut payloads = Vec::new();
    let mut rest = data;
    while let [t, len, tail @ ..] = rest {
        let n = (*len as usize).min(tail.len());
        payloads.push(Payload::Notify(Notify::new(TYPES[*t as usize % TYPES.len()], tail[..n].to_vec())));
        rest = &tail[n..];
    }
    let steps = selector::read(&payloads);
    assert!(steps.len() <= payloads.len() + 1);
});
