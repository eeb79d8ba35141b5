//! Fuzzes the EIP-4361 parsers: no input may panic, and whatever parses prints back
//! byte for byte. Run: `cargo +nightly fuzz run parse --fuzz-dir crates/eth-mls-siwe/fuzz`.
#![no_main]

use eth_mls_siwe::Message;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(m) = text.parse::<Message>() {
        assert_eq!(m.to_string(), text);
    }
    if let Ok((m, _)) = Message::parse_lenient(text) {
        assert_eq!(m.to_string(), text);
    }
    if let Ok(m) = serde_json::from_str::<Message>(text) {
        let again: Message = m.to_string().parse().expect("a deserialized message is valid");
        assert_eq!(again, m);
    }
    let _ = eth_mls_siwe::classify_signing_request(text);
});
