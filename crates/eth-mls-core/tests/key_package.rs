//! Key package generation and validation: every check, each with its error.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::time::Duration;

use eth_mls_core::{
    BindingPolicy, BindingRequest, CredentialError, Identity, KeyPackageError, LocalEthereumSigner,
    generate_key_package, validate_key_package,
};
use eth_mls_crypto::{Provider, SUITE};
use eth_mls_siwe::{TimeStamp, VerificationError};
use openmls::prelude::tls_codec::{Deserialize as _, Serialize as _};
use openmls::prelude::*;
use openmls_traits::OpenMlsProvider;

fn block_on<F: Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    loop {
        if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
    }
}

fn identity(n: u8, valid_for: Option<Duration>) -> Identity {
    let account = LocalEthereumSigner::from_bytes(&[n; 32]).unwrap();
    let request = BindingRequest {
        domain: "chat.example".into(),
        uri: "https://chat.example".into(),
        chain_id: 31337,
        valid_for,
    };
    block_on(Identity::create(&account, &request)).unwrap()
}

fn policy() -> BindingPolicy {
    BindingPolicy {
        chain_id: 31337,
        domain: "chat.example".into(),
        time: None,
    }
}

fn wire(kp: &KeyPackage) -> Vec<u8> {
    kp.tls_serialize_detached().unwrap()
}

fn validate(
    bytes: &[u8],
    p: &BindingPolicy,
) -> Result<eth_mls_core::ValidatedKeyPackage, KeyPackageError> {
    let provider = Provider::new();
    let kp = KeyPackageIn::tls_deserialize_exact(bytes).unwrap();
    block_on(validate_key_package(kp, provider.crypto(), SUITE, p, None))
}

#[test]
fn generated_key_packages_validate() {
    let id = identity(1, None);
    let provider = Provider::new();
    let bundle = generate_key_package(&id, &provider, None).unwrap();
    let kp = bundle.key_package();
    assert_eq!(kp.ciphersuite(), SUITE);
    let validated = validate(&wire(kp), &policy()).unwrap();
    assert_eq!(validated.account(), id.address());
}

#[test]
fn rejections() {
    let id = identity(2, Some(Duration::from_secs(3600)));
    let provider = Provider::new();
    let kp = generate_key_package(&id, &provider, None)
        .unwrap()
        .key_package()
        .clone();
    let bytes = wire(&kp);

    // A flipped byte in the signature: RFC 9420 validation fails.
    let mut tampered = bytes.clone();
    let last = tampered.len() - 1;
    tampered[last] ^= 1;
    assert!(matches!(
        validate(&tampered, &policy()),
        Err(KeyPackageError::Invalid(_))
    ));

    // The credential: another chain, and a binding that has expired by then.
    let p = BindingPolicy {
        chain_id: 1,
        ..policy()
    };
    assert!(matches!(
        validate(&bytes, &p),
        Err(KeyPackageError::Credential(
            CredentialError::WrongChain { .. }
        ))
    ));
    let p = BindingPolicy {
        time: Some(TimeStamp::now().plus(Duration::from_secs(7200))),
        ..policy()
    };
    assert!(matches!(
        validate(&bytes, &p),
        Err(KeyPackageError::Credential(CredentialError::Verification(
            VerificationError::Expired { .. }
        )))
    ));

    // A leaf whose credential binds another key: identity A's credential, B's signer.
    let b = identity(3, None);
    let forged = Identity::from_parts(
        eth_mls_crypto::SignatureKeyPair::from_private_bytes(
            SUITE.signature_algorithm(),
            b.signer().private_key(),
        )
        .unwrap(),
        id.credential().clone(),
    );
    let kp = generate_key_package(&forged, &provider, None)
        .unwrap()
        .key_package()
        .clone();
    assert!(matches!(
        validate(&wire(&kp), &policy()),
        Err(KeyPackageError::Credential(CredentialError::KeyMismatch))
    ));

    // A basic credential.
    let signer: eth_mls_crypto::SignatureKeyPair =
        eth_mls_crypto::SignatureKeyPair::generate(SUITE.signature_algorithm()).unwrap();
    let basic = CredentialWithKey {
        credential: BasicCredential::new(b"mallory".to_vec()).into(),
        signature_key: signer.public_key().as_bytes().into(),
    };
    let kp = KeyPackage::builder()
        .leaf_node_capabilities(eth_mls_crypto::capabilities(
            &provider,
            &[],
            &[eth_mls_core::credential_type()],
        ))
        .build(SUITE, &provider, &signer, basic)
        .unwrap()
        .key_package()
        .clone();
    assert!(matches!(
        validate(&wire(&kp), &policy()),
        Err(KeyPackageError::Credential(CredentialError::WrongType(1)))
    ));

    // Capabilities without the Ethereum credential type.
    let kp = KeyPackage::builder()
        .leaf_node_capabilities(eth_mls_crypto::capabilities(&provider, &[], &[]))
        .build(SUITE, &provider, id.signer(), id.credential_with_key())
        .map(|b| b.key_package().clone());
    let kp = kp.expect("openmls builds a key package whatever the capabilities list");
    assert!(matches!(
        validate(&wire(&kp), &policy()),
        Err(KeyPackageError::MissingCapability(_))
    ));
}

#[test]
fn suite_mismatch() {
    let account = LocalEthereumSigner::from_bytes(&[4; 32]).unwrap();
    let request = BindingRequest {
        domain: "chat.example".into(),
        uri: "https://chat.example".into(),
        chain_id: 31337,
        valid_for: None,
    };
    let id: Identity = block_on(Identity::create(&account, &request)).unwrap();
    let provider = Provider::new();
    // A suite 1 key package (Ed25519 signer) of the same account.
    let suite1 = Ciphersuite::MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519;
    let signer: eth_mls_crypto::SignatureKeyPair =
        eth_mls_crypto::SignatureKeyPair::generate(suite1.signature_algorithm()).unwrap();
    let kp = KeyPackage::builder()
        .leaf_node_capabilities(eth_mls_crypto::capabilities(
            &provider,
            &[],
            &[eth_mls_core::credential_type()],
        ))
        .build(
            suite1,
            &provider,
            &signer,
            CredentialWithKey {
                credential: id.credential().to_openmls(),
                signature_key: signer.public_key().as_bytes().into(),
            },
        )
        .unwrap()
        .key_package()
        .clone();
    assert!(matches!(
        validate(&wire(&kp), &policy()),
        Err(KeyPackageError::SuiteMismatch { .. })
    ));
}
