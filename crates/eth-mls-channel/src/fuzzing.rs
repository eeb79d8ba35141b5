//! The bodies of the cargo-fuzz targets in `fuzz/` (message decoding, and decryption of
//! arbitrary bytes by a device with established sessions). They are plain functions so that
//! the crate's tests run them over a seed corpus on stable Rust, where cargo-fuzz is absent.
//!
//! Each body panics when a property fails: decoding never panics and re-encodes to the same
//! bytes; a rejected message leaves the device byte for byte as it was; no message decrypts
//! twice.

use std::sync::OnceLock;

use eth_mls_crypto::DefaultBackend;
use zeroize::Zeroizing;

use crate::{ChannelMessage, Device, OneTimePrekeyChoice, PrekeyBundle, ScriptedKeys, Secret};

type B = DefaultBackend;

/// The time the fixture's prekeys are valid at.
pub const NOW: u64 = 1_785_000_000;

/// A responder device with one established session (several messages each way, so it holds
/// skipped keys and two receiving chains) and unused prekeys, and messages that are valid
/// for it: the seed corpus's core.
pub struct Fixture {
    /// [`Device::to_bytes`] of the responder.
    pub device: Zeroizing<Vec<u8>>,
    /// The established session's id.
    pub session_id: [u8; 32],
    /// Messages the responder has not received yet: prekey messages of a second initiator,
    /// normal messages of the established session (out of order, beyond a gap).
    pub messages: Vec<Vec<u8>>,
}

fn key(seed: u8) -> Secret<56> {
    let mut k = [seed; 56];
    k[0] = seed.wrapping_mul(7).wrapping_add(1);
    Secret::new(k)
}

fn build() -> Result<Fixture, crate::Error> {
    let draws = |from: u8| Box::new(ScriptedKeys::new((0..40).map(|i| key(from + i))));
    let mut bob = Device::<B>::from_keys([0xbb; 20], key(1), Secret::new([2; 57]))?;
    bob.set_key_source(draws(100));
    bob.add_signed_prekey(1, NOW + 86_400, key(3))?;
    for id in 1..=3 {
        bob.add_one_time_prekey(id, key(10 + id as u8))?;
    }
    let bundle = PrekeyBundle::validate::<B>(&bob.bundle(NOW, 3)?.encode()?, NOW)?;
    let mut alice = Device::<B>::from_keys([0xaa; 20], key(4), Secret::new([5; 57]))?;
    alice.set_key_source(draws(150));
    let sid = alice.initiate(&bundle, OneTimePrekeyChoice::Id(1))?;
    let mut messages = Vec::new();
    let first = alice.encrypt(&sid, b"first")?;
    let skipped = alice.encrypt(&sid, b"skipped")?;
    bob.receive(&first, NOW)?;
    bob.receive(&alice.encrypt(&sid, b"third")?, NOW)?;
    messages.push(skipped);
    let reply = bob.encrypt(&sid, b"reply")?;
    alice.receive(&reply, NOW)?;
    let later: Vec<_> = (0..4)
        .map(|i| alice.encrypt(&sid, format!("later {i}").as_bytes()))
        .collect::<Result<_, _>>()?;
    bob.receive(&later[0], NOW)?;
    messages.extend(later[1..].iter().rev().cloned());
    // A second initiator, with and without a one-time prekey.
    let mut carol = Device::<B>::from_keys([0xcc; 20], key(6), Secret::new([7; 57]))?;
    carol.set_key_source(draws(200));
    let s2 = carol.initiate(&bundle, OneTimePrekeyChoice::Id(2))?;
    messages.push(carol.encrypt(&s2, b"carol")?);
    let s3 = carol.initiate(&bundle, OneTimePrekeyChoice::None)?;
    messages.push(carol.encrypt(&s3, &[0u8; 100])?);
    Ok(Fixture {
        device: bob.to_bytes(),
        session_id: sid,
        messages,
    })
}

/// The fixture, built once.
#[allow(clippy::expect_used)]
pub fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| build().expect("the fuzz fixture builds from constant keys"))
}

/// Target `decode`: decoding arbitrary bytes never panics, and what decodes re-encodes to the
/// same bytes (the encoding is canonical).
pub fn decode(data: &[u8]) {
    if let Ok(m) = ChannelMessage::decode(data) {
        assert_eq!(
            m.encode().ok().as_deref(),
            Some(data),
            "re-encoding differs"
        );
    }
    if let Ok(b) = PrekeyBundle::decode(data) {
        assert_eq!(
            b.encode().ok().as_deref(),
            Some(data),
            "bundle re-encoding differs"
        );
    }
}

/// Target `decrypt`: the fixture's device receives `data` as it is, and as the ratchet part
/// of a normal message of its established session. A rejection changes nothing; an accepted
/// message is rejected the second time. Returns how many of the two inputs were accepted.
#[allow(clippy::expect_used)]
pub fn decrypt(data: &[u8]) -> usize {
    let mut accepted = 0;
    let f = fixture();
    let mut normal = vec![0, 1, 2];
    normal.extend_from_slice(&f.session_id);
    normal.extend_from_slice(data);
    for input in [data, &normal[..]] {
        let mut dev = Device::<B>::from_bytes(&f.device).expect("fixture state restores");
        dev.set_key_source(Box::new(ScriptedKeys::new((0..2).map(|i| key(240 + i)))));
        match dev.receive(input, NOW) {
            Err(_) => assert!(
                dev.to_bytes() == f.device,
                "a rejected message changed the device"
            ),
            Ok(_) => {
                accepted += 1;
                let after = dev.to_bytes();
                let again = dev.receive(input, NOW);
                assert!(again.is_err(), "a message decrypted twice");
                assert!(
                    dev.to_bytes() == after,
                    "a rejected duplicate changed the device"
                );
            }
        }
    }
    accepted
}
