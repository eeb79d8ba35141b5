//! Pre-verified signatures: only valid ones are recorded, and a provider carrying them still
//! verifies (and refuses) everything else.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use eth_mls_crypto::{
    DefaultBackend, Provider, SUITE, SignatureKeyPair, SignedMessage, VerifiedSignatures,
};
use openmls_traits::OpenMlsProvider;
use openmls_traits::crypto::OpenMlsCrypto;

#[test]
fn only_valid_signatures_are_recorded_and_others_still_verify() {
    let scheme = SUITE.signature_algorithm();
    let key = SignatureKeyPair::<DefaultBackend>::generate(scheme).unwrap();
    let pk = key.public_key().as_bytes().to_vec();
    let messages: Vec<Vec<u8>> = (0..9u8).map(|i| vec![i; 40]).collect();
    let mut signatures: Vec<Vec<u8>> = messages
        .iter()
        .map(|m| key.sign_bytes(m).unwrap())
        .collect();
    signatures[3][0] ^= 1; // one forged
    let items: Vec<SignedMessage<'_>> = messages
        .iter()
        .zip(&signatures)
        .map(|(m, s)| SignedMessage {
            scheme,
            public_key: &pk,
            message: m,
            signature: s,
        })
        .collect();
    let verified = Arc::new(VerifiedSignatures::new());
    let valid = verified.verify_all::<DefaultBackend>(&items);
    assert_eq!(valid, (0..9).map(|i| i != 3).collect::<Vec<_>>());
    assert_eq!(verified.len(), 8);

    let provider = Provider::new().with_verified_signatures(verified);
    let crypto = provider.crypto();
    for (i, (m, s)) in messages.iter().zip(&signatures).enumerate() {
        assert_eq!(
            crypto.verify_signature(scheme, m, &pk, s).is_ok(),
            i != 3,
            "item {i}"
        );
    }
    // A recorded signature does not vouch for another message or key.
    assert!(
        crypto
            .verify_signature(scheme, b"other", &pk, &signatures[0])
            .is_err()
    );
    let other = SignatureKeyPair::<DefaultBackend>::generate(scheme).unwrap();
    assert!(
        crypto
            .verify_signature(
                scheme,
                &messages[0],
                other.public_key().as_bytes(),
                &signatures[0]
            )
            .is_err()
    );
}

/// Many Ed448 signatures go through batch verification (one batch per thread): the verdicts
/// are each backend's own, one by one, whether the batches hold or not.
fn batches_give_the_backends_verdicts<B: eth_mls_crypto::Backend>() {
    use openmls_traits::types::SignatureScheme;
    let keys: Vec<SignatureKeyPair<B>> = (0..5)
        .map(|_| SignatureKeyPair::<B>::generate(SignatureScheme::ED448).unwrap())
        .collect();
    let ed25519 = SignatureKeyPair::<B>::generate(SignatureScheme::ED25519).unwrap();
    let messages: Vec<Vec<u8>> = (0..41u8).map(|i| vec![i; 20 + i as usize]).collect();
    let signed = |i: usize| -> (SignatureScheme, Vec<u8>, Vec<u8>) {
        if i == 40 {
            let pk = ed25519.public_key().as_bytes().to_vec();
            return (
                SignatureScheme::ED25519,
                pk,
                ed25519.sign_bytes(&messages[i]).unwrap(),
            );
        }
        let key = &keys[i % 5];
        let pk = key.public_key().as_bytes().to_vec();
        (
            SignatureScheme::ED448,
            pk,
            key.sign_bytes(&messages[i]).unwrap(),
        )
    };
    let all: Vec<(SignatureScheme, Vec<u8>, Vec<u8>)> = (0..41).map(signed).collect();
    let run = |sigs: &[(SignatureScheme, Vec<u8>, Vec<u8>)]| -> (Vec<bool>, usize) {
        let items: Vec<SignedMessage<'_>> = sigs
            .iter()
            .zip(&messages)
            .map(|((scheme, pk, s), m)| SignedMessage {
                scheme: *scheme,
                public_key: pk,
                message: m,
                signature: s,
            })
            .collect();
        let verified = VerifiedSignatures::new();
        let valid = verified.verify_all::<B>(&items);
        (valid, verified.len())
    };
    // All valid: every batch holds.
    assert_eq!(run(&all), (vec![true; 41], 41));
    // A few bad ones, in different batches, and the Ed25519 one: exactly those refused.
    let mut bad = all.clone();
    for i in [0usize, 17, 33, 40] {
        let last = bad[i].2.len() - 1;
        bad[i].2[last / 2] ^= 0x10;
    }
    let expected: Vec<bool> = (0..41).map(|i| ![0, 17, 33, 40].contains(&i)).collect();
    assert_eq!(run(&bad), (expected, 37));
    // A signature under another key of the list.
    let mut moved = all.clone();
    moved[7].1 = moved[8].1.clone();
    let (valid, _) = run(&moved);
    assert_eq!(valid, (0..41).map(|i| i != 7).collect::<Vec<_>>());
}

#[cfg(feature = "rustcrypto")]
#[test]
fn batches_give_rustcryptos_verdicts() {
    batches_give_the_backends_verdicts::<eth_mls_crypto::RustCrypto>();
}

#[cfg(feature = "openssl")]
#[test]
fn batches_give_openssls_verdicts() {
    batches_give_the_backends_verdicts::<eth_mls_crypto::OpenSsl>();
}
