//! A credential that names another key, is signed by another account, has expired or is for
//! another chain is rejected at every entry point — key package, Add (commit and proposal),
//! Update (proposal and commit path), the ratchet tree of a Welcome (there, expiry after
//! entering is no reason: see tests/identity_rules.rs) — and the group state is unchanged
//! after each rejection.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use eth_mls_core::{CredentialError, Error, EthereumSigner as _, KeyPackageError};
use eth_mls_crypto::SUITE;
use openmls::prelude::tls_codec::Serialize as _;
use openmls::prelude::{CredentialWithKey, GroupId, KeyPackageIn, LeafNodeParameters, MlsGroup};
use openmls_traits::OpenMlsProvider;
use tls_codec::Deserialize as _;

/// Alice (creator), Bob (the victim who checks), Mallory (a member who bypasses the checks
/// with raw openmls calls).
fn setup(dir: &TempDir) -> (Peer, Peer, Peer) {
    let mut peers = group_of(dir, b"group-c", &[1, 2, 3]).into_iter();
    let mut next = || peers.next().unwrap();
    (next(), next(), next())
}

/// A serialized key package as openmls's type (RFC 9420 checks only: Mallory skips ours).
fn openmls_key_package(bytes: impl AsRef<[u8]>) -> openmls::prelude::KeyPackage {
    KeyPackageIn::tls_deserialize_exact(bytes.as_ref())
        .unwrap()
        .validate(
            eth_mls_crypto::Provider::new().crypto(),
            openmls::prelude::ProtocolVersion::Mls10,
        )
        .unwrap()
}

/// Mallory's group as raw openmls, loaded from her store.
fn raw(p: &Peer) -> MlsGroup {
    let id = GroupId::from_slice(p.g().id());
    MlsGroup::load(p.store.provider().storage_provider(), &id)
        .unwrap()
        .unwrap()
}

type Snapshot = (u64, Vec<u8>, Vec<eth_mls_siwe::Address>, usize, bool);

fn snapshot(p: &Peer) -> Snapshot {
    let g = p.g();
    (
        g.epoch(),
        g.epoch_authenticator(),
        g.members(),
        g.mls().pending_proposals().count(),
        g.staged_commit().unwrap().is_some(),
    )
}

fn wire(m: &openmls::prelude::MlsMessageOut) -> Vec<u8> {
    m.tls_serialize_detached().unwrap()
}

/// Forgets what Mallory's raw group staged, for the next attempt.
fn reset(g: &mut MlsGroup, p: &Peer) {
    let provider = p.store.provider();
    g.clear_pending_commit(provider.storage()).unwrap();
    g.clear_pending_proposals(provider.storage()).unwrap();
}

/// Bob rejects `message` with a credential error and is unchanged; he still reads Alice.
fn assert_rejected(bob: &mut Peer, alice: &mut Peer, message: &[u8]) {
    let before = snapshot(bob);
    let err = bob.process(message).unwrap_err();
    assert!(matches!(err, Error::Credential(_)), "{err:?}");
    assert_eq!(snapshot(bob), before);
    let m = alice.send(b"still here");
    assert_eq!(bob.receive(&m), b"still here");
    // Reopening the store gives the same state: nothing was written.
    bob.restart();
    assert_eq!(snapshot(bob), before);
}

#[test]
fn key_packages_with_bad_credentials_fail_validation() {
    for bad in BAD {
        let bytes = raw_key_package(&bad_identity(7, bad));
        let provider = eth_mls_crypto::Provider::new();
        let err = block_on(eth_mls_core::validate_key_package_bytes(
            &bytes,
            provider.crypto(),
            SUITE,
            &config().policy(),
            None,
        ))
        .unwrap_err();
        let KeyPackageError::Credential(e) = err else {
            panic!("{bad:?}: {err:?}")
        };
        match bad {
            Bad::OtherKey => assert!(matches!(e, CredentialError::KeyMismatch)),
            Bad::OtherChain => assert!(matches!(e, CredentialError::WrongChain { .. })),
            Bad::OtherAccount | Bad::Expired => {
                assert!(
                    matches!(e, CredentialError::Verification(_)),
                    "{bad:?}: {e:?}"
                )
            }
        }
    }
}

#[test]
fn add_commits_and_add_proposals_with_bad_credentials_are_rejected() {
    let dir = TempDir::new();
    let (mut alice, mut bob, mallory) = setup(&dir);
    for bad in BAD {
        let kp = openmls_key_package(raw_key_package(&bad_identity(8, bad)));
        let provider = mallory.store.provider();
        let signer = mallory.store.identity().signer();

        let mut g = raw(&mallory);
        let (proposal, _) = g.propose_add_member(&provider, signer, &kp).unwrap();
        reset(&mut g, &mallory);
        assert_rejected(&mut bob, &mut alice, &wire(&proposal));

        let mut g = raw(&mallory);
        let (commit, _, _) = g.add_members(&provider, signer, &[kp]).unwrap();
        reset(&mut g, &mallory);
        assert_rejected(&mut bob, &mut alice, &wire(&commit));
    }
}

#[test]
fn updates_and_commit_paths_with_bad_credentials_are_rejected() {
    let dir = TempDir::new();
    let (mut alice, mut bob, mallory) = setup(&dir);
    let key = mallory.store.identity().signer().public_key().clone();
    for bad in BAD {
        let params = || {
            LeafNodeParameters::builder()
                .with_credential_with_key(CredentialWithKey {
                    credential: bad_credential(3, bad, &key).to_openmls(),
                    signature_key: key.as_bytes().into(),
                })
                .build()
        };
        let provider = mallory.store.provider();
        let signer = mallory.store.identity().signer();

        let mut g = raw(&mallory);
        let (proposal, _) = g.propose_self_update(&provider, signer, params()).unwrap();
        reset(&mut g, &mallory);
        assert_rejected(&mut bob, &mut alice, &wire(&proposal));

        let mut g = raw(&mallory);
        let bundle = g.self_update(&provider, signer, params()).unwrap();
        reset(&mut g, &mallory);
        assert_rejected(&mut bob, &mut alice, &wire(bundle.commit()));
    }
}

#[test]
fn welcomes_whose_tree_has_a_bad_credential_are_refused_and_the_key_package_survives() {
    let dir = TempDir::new();
    let (_alice, _bob, mallory) = setup(&dir);
    let mut dave = Peer::new(&dir, identity(4));
    let dave_kp = dave.store.generate_key_package(None).unwrap();
    let dave_kp = openmls_key_package(&dave_kp);
    for bad in BAD {
        if matches!(bad, Bad::Expired) {
            // A leaf of the tree whose binding expired after it entered does not make the
            // group unjoinable (decision 12): it is due for removal instead
            // (tests/identity_rules.rs).
            continue;
        }
        let bad_kp = openmls_key_package(raw_key_package(&bad_identity(9, bad)));
        let provider = mallory.store.provider();
        let mut g = raw(&mallory);
        let (_, welcome, _) = g
            .add_members(
                &provider,
                mallory.store.identity().signer(),
                &[bad_kp, dave_kp.clone()],
            )
            .unwrap();
        reset(&mut g, &mallory);
        let err = dave.join(&wire(&welcome)).unwrap_err();
        assert!(matches!(err, Error::Credential(_)), "{bad:?}: {err:?}");
        assert!(dave.group.is_none());
        assert!(dave.store.group_ids().unwrap().is_empty());
    }
    // The key package was not consumed by the refused Welcomes: a good group still adds Dave.
    let mut erin = Peer::new(&dir, identity(5));
    erin.create(b"group-good");
    let kp = validated(&dave_kp.tls_serialize_detached().unwrap());
    let out = erin.add(&[kp]);
    erin.merge_own();
    dave.join(out.welcome.as_ref().unwrap()).unwrap();
    assert_agree(&[&erin, &dave]);
}

#[test]
fn add_members_refuses_key_packages_for_another_policy() {
    // Validated for chain 1, offered to a group on chain 31337.
    let dir = TempDir::new();
    let mut alice = Peer::new(&dir, identity(1));
    alice.create(b"group-p");
    let id = block_on(eth_mls_core::Identity::create(&account(6), &request(1))).unwrap();
    let bytes = raw_key_package(&id);
    let mut policy = config().policy();
    policy.chain_id = 1;
    let kp = block_on(eth_mls_core::validate_key_package_bytes(
        &bytes,
        eth_mls_crypto::Provider::new().crypto(),
        SUITE,
        &policy,
        None,
    ))
    .unwrap();
    let before = snapshot(&alice);
    let err = block_on(alice.group.as_mut().unwrap().add_members(
        &mut alice.store,
        &[kp],
        &checks(),
    ))
    .unwrap_err();
    assert!(
        matches!(err, Error::Credential(CredentialError::WrongChain { .. })),
        "{err:?}"
    );
    assert_eq!(snapshot(&alice), before);
}

/// A leaf never changes account: Mallory holds a second account and binds her leaf's key to
/// it with a perfectly valid credential; her Update proposal and her commit path that switch
/// the leaf to that account are refused with a typed error and Bob's state is unchanged.
#[test]
fn a_leaf_never_changes_account() {
    let dir = TempDir::new();
    let (mut alice, mut bob, mallory) = setup(&dir);
    let key = mallory.store.identity().signer().public_key().clone();
    let second_account = good_credential(9, &key);
    // The credential alone is valid: it is the switch that is refused.
    assert!(
        block_on(eth_mls_core::verify_credential(
            &second_account.to_openmls(),
            key.as_bytes(),
            &config().policy(),
            None,
        ))
        .is_ok()
    );
    let params = || {
        LeafNodeParameters::builder()
            .with_credential_with_key(CredentialWithKey {
                credential: second_account.to_openmls(),
                signature_key: key.as_bytes().into(),
            })
            .build()
    };
    let provider = mallory.store.provider();
    let signer = mallory.store.identity().signer();
    let attempts = {
        let mut g = raw(&mallory);
        let (proposal, _) = g.propose_self_update(&provider, signer, params()).unwrap();
        reset(&mut g, &mallory);
        let mut g = raw(&mallory);
        let bundle = g.self_update(&provider, signer, params()).unwrap();
        reset(&mut g, &mallory);
        [wire(&proposal), wire(bundle.commit())]
    };
    for message in attempts {
        let before = snapshot(&bob);
        let err = bob.process(&message).unwrap_err();
        let Error::AccountChange { from, to, .. } = err else {
            panic!("{err:?}")
        };
        assert_eq!((from, to), (mallory.address(), account(9).address()));
        assert_eq!(snapshot(&bob), before);
        let m = alice.send(b"still here");
        assert_eq!(bob.receive(&m), b"still here");
        bob.restart();
        assert_eq!(snapshot(&bob), before);
    }
}
