//! Interoperability with mls-rs (the other RFC 9420 implementation of suite 0x0004, with its
//! OpenSSL provider): each side creates a group the other joins; application messages and
//! commits go both ways; the epoch authenticators are equal at every step. The application
//! bytes arrive as sent on both sides (no eth-mls framing inside the encryption).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use common::*;
use eth_mls_core::{EthereumCredential, Event, ValidatedKeyPackage};
use mls_rs::client_builder::MlsConfig;
use mls_rs::error::IntoAnyError;
use mls_rs::group::ReceivedMessage;
use mls_rs::identity::{Credential, CredentialType, CustomCredential, SigningIdentity};
use mls_rs::time::MlsTime;
use mls_rs::{CipherSuite, Client, ExtensionList, IdentityProvider, MlsMessage};
use mls_rs_core::identity::MemberValidationContext;
use mls_rs_crypto_openssl::OpensslCryptoProvider;

const SUITE4: CipherSuite = CipherSuite::CURVE448_AES256;
const ETHEREUM_CREDENTIAL: CredentialType = CredentialType::new(0xF0E1);

#[derive(Debug, thiserror::Error)]
#[error("not an eth-mls Ethereum credential for this key")]
struct NotOurs;

impl IntoAnyError for NotOurs {
    fn into_dyn_error(self) -> Result<Box<dyn std::error::Error + Send + Sync>, Self> {
        Ok(Box::new(self))
    }
}

/// mls-rs's view of eth-mls credentials: type 0xF0E1, parsed, binding the leaf's key. (The
/// SIWE signature is eth-mls-core's job on its side of the test.)
#[derive(Clone, Debug)]
struct EthereumIdentities;

fn parse(identity: &SigningIdentity) -> Result<EthereumCredential, NotOurs> {
    let Credential::Custom(custom) = &identity.credential else {
        return Err(NotOurs);
    };
    if custom.credential_type != ETHEREUM_CREDENTIAL {
        return Err(NotOurs);
    }
    let credential = EthereumCredential::from_bytes(&custom.data).map_err(|_| NotOurs)?;
    let bound = credential.bound_key().map_err(|_| NotOurs)?;
    if bound.as_bytes() != identity.signature_key.as_bytes() {
        return Err(NotOurs);
    }
    Ok(credential)
}

impl IdentityProvider for EthereumIdentities {
    type Error = NotOurs;

    fn validate_member(
        &self,
        identity: &SigningIdentity,
        _: Option<MlsTime>,
        _: MemberValidationContext<'_>,
    ) -> Result<(), NotOurs> {
        parse(identity).map(drop)
    }

    fn validate_external_sender(
        &self,
        _: &SigningIdentity,
        _: Option<MlsTime>,
        _: Option<&ExtensionList>,
    ) -> Result<(), NotOurs> {
        Err(NotOurs)
    }

    fn identity(&self, identity: &SigningIdentity, _: &ExtensionList) -> Result<Vec<u8>, NotOurs> {
        Ok(parse(identity)?.address().to_vec())
    }

    fn valid_successor(
        &self,
        predecessor: &SigningIdentity,
        successor: &SigningIdentity,
        _: &ExtensionList,
    ) -> Result<bool, NotOurs> {
        Ok(parse(predecessor)?.address() == parse(successor)?.address())
    }

    fn supported_types(&self) -> Vec<CredentialType> {
        vec![ETHEREUM_CREDENTIAL]
    }
}

/// An mls-rs client for account `n`: an eth-mls identity's Ed448 key (mls-rs's secret key is
/// the 57-byte seed followed by the public key) and its SIWE-bound credential.
fn mls_rs_client(n: u8) -> (Client<impl MlsConfig>, eth_mls_siwe::Address) {
    let id = identity(n);
    let public = id.signer().public_key().as_bytes().to_vec();
    let mut secret = id.signer().private_key().expose().to_vec();
    secret.extend_from_slice(&public);
    let credential = Credential::Custom(CustomCredential::new(
        ETHEREUM_CREDENTIAL,
        id.credential().to_bytes(),
    ));
    let signing = SigningIdentity::new(credential, public.into());
    let client = Client::builder()
        .identity_provider(EthereumIdentities)
        .crypto_provider(OpensslCryptoProvider::default())
        .signing_identity(signing, secret.into(), SUITE4)
        .build();
    (client, id.address())
}

fn bytes(m: &MlsMessage) -> Vec<u8> {
    m.to_bytes().unwrap()
}

fn message(b: &[u8]) -> MlsMessage {
    MlsMessage::from_bytes(b).unwrap()
}

fn same_epoch<C: MlsConfig>(ours: &Peer, theirs: &mls_rs::Group<C>) {
    assert_eq!(ours.g().epoch(), theirs.current_epoch());
    assert_eq!(
        ours.g().epoch_authenticator(),
        theirs.epoch_authenticator().unwrap().to_vec()
    );
}

/// An MLSMessage carrying a KeyPackage is `uint16 version = mls10 (1)`, `uint16 wire_format
/// = mls_key_package (5)`, then the KeyPackage; eth-mls-core handles bare KeyPackages.
const KEY_PACKAGE_MESSAGE: [u8; 4] = [0, 1, 0, 5];

fn validated_kp(message: &[u8]) -> ValidatedKeyPackage {
    let bare = message.strip_prefix(&KEY_PACKAGE_MESSAGE[..]).unwrap();
    validated(bare)
}

fn received_app(r: ReceivedMessage) -> Vec<u8> {
    match r {
        ReceivedMessage::ApplicationMessage(m) => m.data().to_vec(),
        other => panic!("expected an application message, got {other:?}"),
    }
}

#[test]
fn mls_rs_joins_an_eth_mls_group() {
    let dir = TempDir::new();
    let mut alice = Peer::new(&dir, identity(1));
    alice.create(b"interop-ours");
    let (bob, bob_address) = mls_rs_client(2);
    let kp = bob
        .generate_key_package_message(Default::default(), Default::default(), None)
        .unwrap();
    let out = alice.add(&[validated_kp(&bytes(&kp))]);
    alice.merge_own();
    let (mut bob_group, _) = bob
        .join_group(None, &message(&out.welcome.unwrap()), None)
        .unwrap();
    same_epoch(&alice, &bob_group);
    assert!(alice.g().members().contains(&bob_address));

    // Application messages both ways, the bytes as sent.
    let m = alice.send(b"hello from openmls");
    let r = bob_group.process_incoming_message(message(&m)).unwrap();
    assert_eq!(received_app(r), b"hello from openmls");
    let m = bob_group
        .encrypt_application_message(b"hello from mls-rs", vec![])
        .unwrap();
    match &alice.process(&bytes(&m)).unwrap()[..] {
        [Event::Application(a)] => {
            assert_eq!(
                (a.data.as_slice(), a.sender),
                (&b"hello from mls-rs"[..], bob_address)
            );
            assert_eq!(a.generation, None, "mls-rs sends no eth-mls generation");
        }
        other => panic!("{other:?}"),
    }

    // Commits both ways.
    let commit = bob_group.commit(vec![]).unwrap();
    bob_group.apply_pending_commit().unwrap();
    alice.apply(&bytes(&commit.commit_message));
    same_epoch(&alice, &bob_group);
    let out = alice.update();
    alice.merge_own();
    let r = bob_group
        .process_incoming_message(message(&out.commit))
        .unwrap();
    assert!(matches!(r, ReceivedMessage::Commit(_)), "{r:?}");
    same_epoch(&alice, &bob_group);
    let m = alice.send(b"after two commits");
    let r = bob_group.process_incoming_message(message(&m)).unwrap();
    assert_eq!(received_app(r), b"after two commits");
}

#[test]
fn eth_mls_joins_an_mls_rs_group() {
    let dir = TempDir::new();
    let (bob, bob_address) = mls_rs_client(2);
    let mut bob_group = bob
        .create_group(Default::default(), Default::default(), None)
        .unwrap();
    let mut alice = Peer::new(&dir, identity(1));
    let kp = alice.store.generate_key_package(None).unwrap();
    let commit = bob_group
        .commit_builder()
        .add_member(message(&[&KEY_PACKAGE_MESSAGE[..], &kp].concat()))
        .unwrap()
        .build()
        .unwrap();
    bob_group.apply_pending_commit().unwrap();
    alice.join(&bytes(&commit.welcome_messages[0])).unwrap();
    same_epoch(&alice, &bob_group);
    assert_eq!(alice.g().members().len(), 2);
    assert!(alice.g().members().contains(&bob_address));

    let m = bob_group
        .encrypt_application_message(b"welcome to mls-rs", vec![])
        .unwrap();
    assert_eq!(alice.receive(&bytes(&m)), b"welcome to mls-rs");
    let m = alice.send(b"thanks from openmls");
    let r = bob_group.process_incoming_message(message(&m)).unwrap();
    assert_eq!(received_app(r), b"thanks from openmls");

    let out = alice.update();
    alice.merge_own();
    bob_group
        .process_incoming_message(message(&out.commit))
        .unwrap();
    same_epoch(&alice, &bob_group);
    let commit = bob_group.commit(vec![]).unwrap();
    bob_group.apply_pending_commit().unwrap();
    alice.apply(&bytes(&commit.commit_message));
    same_epoch(&alice, &bob_group);
}
