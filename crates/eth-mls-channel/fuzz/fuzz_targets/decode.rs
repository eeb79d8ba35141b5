//! Fuzzes the channel's decoders: no input panics, and whatever decodes re-encodes byte for
//! byte. Run: `cargo +nightly fuzz run decode --fuzz-dir crates/eth-mls-channel/fuzz`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| eth_mls_channel::fuzzing::decode(data));
