//! Fuzzes decryption of arbitrary bytes by a device with an established session: no input
//! panics, a rejection changes nothing, nothing decrypts twice.
//! Run: `cargo +nightly fuzz run decrypt --fuzz-dir crates/eth-mls-channel/fuzz`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    eth_mls_channel::fuzzing::decrypt(data);
});
