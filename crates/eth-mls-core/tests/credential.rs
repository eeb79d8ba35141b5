//! Ethereum credentials: creation, encoding, verification and each rejection; a suite 4
//! openmls group whose members carry them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::time::Duration;

use eth_mls_core::{
    BindingPolicy, BindingRequest, CredentialError, EthereumCredential, Identity,
    LocalEthereumSigner, credential_type, key_uri, verify_credential,
};
use eth_mls_crypto::{Provider, SUITE, capabilities};
use eth_mls_siwe::{Message, TimeStamp, VerificationError, eip191};
use openmls::prelude::tls_codec::{Deserialize as _, Serialize as _};
use openmls::prelude::*;
use proptest::prelude::*;

fn block_on<F: Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    loop {
        if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
    }
}

fn account(n: u8) -> LocalEthereumSigner {
    LocalEthereumSigner::from_bytes(&[n; 32]).unwrap()
}

fn request() -> BindingRequest {
    BindingRequest {
        domain: "chat.example".into(),
        uri: "https://chat.example".into(),
        chain_id: 31337,
        valid_for: Some(Duration::from_secs(3600)),
    }
}

fn policy() -> BindingPolicy {
    BindingPolicy {
        chain_id: 31337,
        domain: "chat.example".into(),
        time: None,
    }
}

fn identity(n: u8) -> Identity {
    block_on(Identity::create(&account(n), &request())).unwrap()
}

fn verify(
    credential: &Credential,
    key: &[u8],
    p: &BindingPolicy,
) -> Result<eth_mls_siwe::Address, CredentialError> {
    block_on(verify_credential(credential, key, p, None))
}

#[test]
fn a_fresh_identity_verifies() {
    let id = identity(1);
    let cwk = id.credential_with_key();
    assert_eq!(cwk.credential.credential_type(), credential_type());
    let address = verify(&cwk.credential, cwk.signature_key.as_slice(), &policy()).unwrap();
    assert_eq!(address, id.address());
    assert_eq!(
        id.credential().bound_key().unwrap(),
        *id.signer().public_key()
    );
    assert!(
        id.credential()
            .message()
            .resources()
            .contains(&key_uri(id.signer().public_key()))
    );
    assert_eq!(
        id.credential().identity(),
        eth_mls_siwe::to_checksum(&id.address())
    );
}

#[test]
fn encoding_round_trips() {
    let id = identity(2);
    let bytes = id.credential().to_bytes();
    assert_eq!(
        EthereumCredential::from_bytes(&bytes).unwrap(),
        *id.credential()
    );
    assert!(matches!(
        EthereumCredential::from_bytes(&bytes[..bytes.len() - 1]),
        Err(CredentialError::Malformed(_))
    ));
    let mut longer = bytes.clone();
    longer.push(0);
    assert!(matches!(
        EthereumCredential::from_bytes(&longer),
        Err(CredentialError::Malformed(_))
    ));
    // The address in front must be the message's.
    let mut other = bytes.clone();
    other[0] ^= 1;
    assert!(matches!(
        EthereumCredential::from_bytes(&other),
        Err(CredentialError::AddressMismatch { .. })
    ));
    // A basic credential is not an Ethereum credential.
    let basic: Credential = BasicCredential::new(b"alice".to_vec()).into();
    assert!(matches!(
        EthereumCredential::from_openmls(&basic),
        Err(CredentialError::WrongType(1))
    ));
}

#[test]
fn each_rejection() {
    let id = identity(3);
    let cwk = id.credential_with_key();
    let key = cwk.signature_key.as_slice();
    // Another leaf key than the one bound.
    let other = identity(4);
    assert!(matches!(
        verify(
            &cwk.credential,
            other.signer().public_key().as_bytes(),
            &policy()
        ),
        Err(CredentialError::KeyMismatch)
    ));
    // Another chain, another domain.
    let p = BindingPolicy {
        chain_id: 1,
        ..policy()
    };
    assert!(matches!(
        verify(&cwk.credential, key, &p),
        Err(CredentialError::WrongChain {
            expected: 1,
            found: 31337
        })
    ));
    let p = BindingPolicy {
        domain: "evil.example".into(),
        ..policy()
    };
    assert!(matches!(
        verify(&cwk.credential, key, &p),
        Err(CredentialError::WrongDomain { .. })
    ));
    // Expired, and not yet valid.
    let later = TimeStamp::now().plus(Duration::from_secs(7200));
    let p = BindingPolicy {
        time: Some(later),
        ..policy()
    };
    assert!(matches!(
        verify(&cwk.credential, key, &p),
        Err(CredentialError::Verification(
            VerificationError::Expired { .. }
        ))
    ));
    // Signed by another account than the one it names.
    let message = id.credential().message().clone();
    let forged_sig = block_on(async {
        eip191::sign_message(
            &k256::ecdsa::SigningKey::from_slice(&[9; 32]).unwrap(),
            message.to_string().as_bytes(),
        )
    });
    let forged = EthereumCredential::new(message, forged_sig.to_vec()).to_openmls();
    assert!(matches!(
        verify(&forged, key, &policy()),
        Err(CredentialError::Verification(
            VerificationError::AddressMismatch { .. }
        ))
    ));
}

#[test]
fn key_binding_must_be_single_and_well_formed() {
    let signer = k256::ecdsa::SigningKey::from_slice(&[5; 32]).unwrap();
    let address = eip191::address_of(signer.verifying_key());
    let make = |resources: &[&str]| {
        let mut b = Message::builder("chat.example", address, "https://chat.example", 31337);
        for r in resources {
            b = b.resource(r);
        }
        let m = b.build().unwrap();
        let sig = eip191::sign_message(&signer, m.to_string().as_bytes());
        EthereumCredential::new(m, sig.to_vec())
    };
    let id = identity(6);
    let uri = key_uri(id.signer().public_key());
    assert!(matches!(
        make(&[]).bound_key(),
        Err(CredentialError::NoKeyBinding)
    ));
    assert!(matches!(
        make(&[&uri, &uri]).bound_key(),
        Err(CredentialError::AmbiguousKeyBinding)
    ));
    assert!(matches!(
        make(&["eth-mls:mls-signature-key:ed448:zz"]).bound_key(),
        Err(CredentialError::BadKeyResource(_))
    ));
    assert!(matches!(
        make(&["eth-mls:mls-signature-key:p256:00"]).bound_key(),
        Err(CredentialError::BadKeyResource(_))
    ));
    assert!(matches!(
        make(&["eth-mls:mls-signature-key:ed448:00"]).bound_key(),
        Err(CredentialError::BadKeyResource(_))
    ));
    assert_eq!(
        make(&["https://chat.example/terms", &uri])
            .bound_key()
            .unwrap(),
        *id.signer().public_key()
    );
}

/// Two Ethereum identities in a suite 4 group: the joiner checks every member's credential
/// in the Welcome's tree.
#[test]
fn a_group_of_ethereum_accounts() {
    let (alice, bob) = (identity(7), identity(8));
    let (pa, pb) = (Provider::new(), Provider::new());
    let caps = capabilities(&pa, &[], &[credential_type()]);
    let mut group = MlsGroup::builder()
        .ciphersuite(SUITE)
        .with_capabilities(caps.clone())
        .use_ratchet_tree_extension(true)
        .build(&pa, alice.signer(), alice.credential_with_key())
        .unwrap();
    let kp = KeyPackage::builder()
        .leaf_node_capabilities(capabilities(&pb, &[], &[credential_type()]))
        .build(SUITE, &pb, bob.signer(), bob.credential_with_key())
        .unwrap();
    let (_, welcome, _) = group
        .add_members(&pa, alice.signer(), &[kp.key_package().clone()])
        .unwrap();
    group.merge_pending_commit(&pa).unwrap();
    let welcome =
        MlsMessageIn::tls_deserialize_exact(welcome.tls_serialize_detached().unwrap()).unwrap();
    let MlsMessageBodyIn::Welcome(welcome) = welcome.extract() else {
        panic!("welcome")
    };
    let joined =
        StagedWelcome::new_from_welcome(&pb, &MlsGroupJoinConfig::default(), welcome, None)
            .unwrap()
            .into_group(&pb)
            .unwrap();
    let mut accounts = Vec::new();
    for member in joined.members() {
        accounts.push(verify(&member.credential, &member.signature_key, &policy()).unwrap());
    }
    accounts.sort();
    let mut expected = vec![alice.address(), bob.address()];
    expected.sort();
    assert_eq!(accounts, expected);
}

proptest! {
    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        let _ = EthereumCredential::from_bytes(&bytes);
    }
}
