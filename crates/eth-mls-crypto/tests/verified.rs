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
