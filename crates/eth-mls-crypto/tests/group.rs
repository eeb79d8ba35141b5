//! A real suite 0x0004 group with openmls on this provider: create, add two members through
//! key packages and a Welcome, application messages both ways, a self-update, a removal; all
//! members agree on the epoch authenticator at every epoch. Run once per backend.
#![allow(clippy::unwrap_used)]

use eth_mls_crypto::{Backend, Provider, SUITE, SignatureKeyPair, capabilities};
use openmls::prelude::tls_codec::{Deserialize, Serialize};
use openmls::prelude::*;

struct Member<B: Backend> {
    name: &'static str,
    provider: Provider<B>,
    signer: SignatureKeyPair<B>,
    credential: CredentialWithKey,
    group: Option<MlsGroup>,
}

impl<B: Backend> Member<B> {
    fn new(name: &'static str) -> Self {
        let signer = SignatureKeyPair::<B>::generate(SUITE.signature_algorithm()).unwrap();
        let credential = CredentialWithKey {
            credential: BasicCredential::new(name.as_bytes().to_vec()).into(),
            signature_key: signer.public_key().as_bytes().into(),
        };
        Self {
            name,
            provider: Provider::default(),
            signer,
            credential,
            group: None,
        }
    }

    fn key_package(&self) -> KeyPackage {
        KeyPackage::builder()
            .leaf_node_capabilities(capabilities(&self.provider, &[], &[]))
            .build(SUITE, &self.provider, &self.signer, self.credential.clone())
            .unwrap()
            .key_package()
            .clone()
    }

    fn group(&mut self) -> &mut MlsGroup {
        self.group.as_mut().unwrap()
    }

    fn merge_pending(&mut self) {
        let provider = &self.provider;
        self.group
            .as_mut()
            .unwrap()
            .merge_pending_commit(provider)
            .unwrap();
    }

    /// Processes a handshake or application message from the wire; returns the application
    /// bytes when there are any.
    fn receive(&mut self, wire: &[u8]) -> Option<Vec<u8>> {
        let message = MlsMessageIn::tls_deserialize_exact(wire).unwrap();
        let protocol = message.try_into_protocol_message().unwrap();
        let provider = &self.provider;
        let group = self.group.as_mut().unwrap();
        let processed = group.process_message(provider, protocol).unwrap();
        match processed.into_content() {
            ProcessedMessageContent::ApplicationMessage(app) => Some(app.into_bytes()),
            ProcessedMessageContent::StagedCommitMessage(staged) => {
                group.merge_staged_commit(provider, *staged).unwrap();
                None
            }
            other => panic!("{}: unexpected {other:?}", self.name),
        }
    }
}

fn wire(message: &MlsMessageOut) -> Vec<u8> {
    message.tls_serialize_detached().unwrap()
}

fn agree<B: Backend>(members: &[&Member<B>]) {
    let first = members[0].group.as_ref().unwrap();
    for m in members {
        let g = m.group.as_ref().unwrap();
        assert_eq!(g.epoch(), first.epoch(), "{} epoch", m.name);
        assert_eq!(
            g.epoch_authenticator().as_slice(),
            first.epoch_authenticator().as_slice(),
            "{} epoch authenticator",
            m.name
        );
        assert_eq!(
            g.members().count(),
            first.members().count(),
            "{} members",
            m.name
        );
    }
}

fn round_trip<B: Backend>() {
    let mut alice = Member::<B>::new("alice");
    let mut bob = Member::<B>::new("bob");
    let mut carol = Member::<B>::new("carol");

    // Alice creates the group with the provider's capabilities (suite 4 included).
    let group = MlsGroup::builder()
        .ciphersuite(SUITE)
        .with_capabilities(capabilities(&alice.provider, &[], &[]))
        .use_ratchet_tree_extension(true)
        .with_wire_format_policy(PURE_CIPHERTEXT_WIRE_FORMAT_POLICY)
        .build(&alice.provider, &alice.signer, alice.credential.clone())
        .unwrap();
    assert_eq!(group.ciphersuite(), SUITE);
    alice.group = Some(group);

    // Alice adds Bob and Carol from their key packages; they join from the Welcome.
    let key_packages = [bob.key_package(), carol.key_package()];
    let (provider, signer) = (&alice.provider, &alice.signer);
    let (_commit, welcome, _info) = alice
        .group
        .as_mut()
        .unwrap()
        .add_members(provider, signer, &key_packages)
        .unwrap();
    alice.merge_pending();
    let welcome_bytes = wire(&welcome);
    for joiner in [&mut bob, &mut carol] {
        let message = MlsMessageIn::tls_deserialize_exact(&welcome_bytes).unwrap();
        let MlsMessageBodyIn::Welcome(welcome) = message.extract() else {
            panic!("not a welcome");
        };
        let join = MlsGroupJoinConfig::builder()
            .use_ratchet_tree_extension(true)
            .wire_format_policy(PURE_CIPHERTEXT_WIRE_FORMAT_POLICY)
            .build();
        let staged =
            StagedWelcome::new_from_welcome(&joiner.provider, &join, welcome, None).unwrap();
        joiner.group = Some(staged.into_group(&joiner.provider).unwrap());
    }
    agree(&[&alice, &bob, &carol]);
    assert_eq!(alice.group().epoch().as_u64(), 1);

    // Application messages both ways.
    let m = alice
        .group
        .as_mut()
        .unwrap()
        .create_message(&alice.provider, &alice.signer, b"hi from alice")
        .unwrap();
    let m = wire(&m);
    assert_eq!(bob.receive(&m).unwrap(), b"hi from alice");
    assert_eq!(carol.receive(&m).unwrap(), b"hi from alice");
    let m = bob
        .group
        .as_mut()
        .unwrap()
        .create_message(&bob.provider, &bob.signer, b"hi from bob")
        .unwrap();
    let m = wire(&m);
    assert_eq!(alice.receive(&m).unwrap(), b"hi from bob");
    assert_eq!(carol.receive(&m).unwrap(), b"hi from bob");

    // Bob updates his leaf.
    let before = bob.group().epoch_authenticator().as_slice().to_vec();
    let bundle = bob
        .group
        .as_mut()
        .unwrap()
        .self_update(&bob.provider, &bob.signer, LeafNodeParameters::default())
        .unwrap();
    bob.merge_pending();
    let commit = wire(bundle.commit());
    assert!(alice.receive(&commit).is_none());
    assert!(carol.receive(&commit).is_none());
    agree(&[&alice, &bob, &carol]);
    assert_ne!(alice.group().epoch_authenticator().as_slice(), &before[..]);

    // Carol speaks in the new epoch.
    let m = carol
        .group
        .as_mut()
        .unwrap()
        .create_message(&carol.provider, &carol.signer, b"after update")
        .unwrap();
    let m = wire(&m);
    assert_eq!(alice.receive(&m).unwrap(), b"after update");
    assert_eq!(bob.receive(&m).unwrap(), b"after update");

    // Alice removes Carol; Carol can no longer read.
    let carol_index = carol.group().own_leaf_index();
    let (commit, _, _) = alice
        .group
        .as_mut()
        .unwrap()
        .remove_members(&alice.provider, &alice.signer, &[carol_index])
        .unwrap();
    alice.merge_pending();
    let commit = wire(&commit);
    assert!(bob.receive(&commit).is_none());
    agree(&[&alice, &bob]);
    assert_eq!(alice.group().members().count(), 2);
    assert!(carol.receive(&commit).is_none());
    assert!(!carol.group().is_active(), "carol learns she was removed");

    let m = alice
        .group
        .as_mut()
        .unwrap()
        .create_message(&alice.provider, &alice.signer, b"without carol")
        .unwrap();
    let m = wire(&m);
    assert_eq!(bob.receive(&m).unwrap(), b"without carol");
    let protocol = MlsMessageIn::tls_deserialize_exact(&m)
        .unwrap()
        .try_into_protocol_message()
        .unwrap();
    let provider = &carol.provider;
    assert!(
        carol
            .group
            .as_mut()
            .unwrap()
            .process_message(provider, protocol)
            .is_err()
    );
}

#[cfg(feature = "rustcrypto")]
#[test]
fn suite4_group_round_trip_rustcrypto() {
    round_trip::<eth_mls_crypto::RustCrypto>();
}

#[cfg(feature = "openssl")]
#[test]
fn suite4_group_round_trip_openssl() {
    round_trip::<eth_mls_crypto::OpenSsl>();
}
