//! Decision 12's identity rules: verdicts at an explicit reference time (never the local
//! clock), a Welcome whose tree holds a since-expired leaf is joinable and lists the leaf as
//! due for removal, bindings always expire (default 30 days, capped), renewal is a
//! self-update with a fresh credential for the same account.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::time::Duration;

use common::*;
use eth_mls_core::{
    BindingRequest, Checks, CredentialError, DEFAULT_CREDENTIAL_LIFETIME, EthereumCredential,
    EthereumSigner as _, Group, Identity, IdentityError, MAX_CREDENTIAL_LIFETIME,
    ValidatedKeyPackage, key_uri, validate_key_package_bytes,
};
use eth_mls_crypto::{SUITE, SignatureKeyPair};
use eth_mls_siwe::{Message, TimeStamp, VerificationError};

/// An identity of account `n` whose binding is valid from `from` to `until` (Unix seconds).
fn identity_valid(n: u8, from: i64, until: i64) -> Identity {
    let signer = SignatureKeyPair::generate(SUITE.signature_algorithm()).unwrap();
    let message = Message::builder(DOMAIN, account(n).address(), "https://chat.example", CHAIN)
        .statement("Authorize this MLS signature key.")
        .issued_at(TimeStamp::from_unix(from))
        .expiration_time(TimeStamp::from_unix(until))
        .resource(&key_uri(signer.public_key()))
        .build()
        .unwrap();
    let signature = block_on(account(n).sign_message(message.to_string().as_bytes())).unwrap();
    Identity::from_parts(signer, EthereumCredential::new(message, signature))
}

/// A key package of `peer`, validated as of `at`.
fn key_package_at(peer: &mut Peer, at: i64) -> ValidatedKeyPackage {
    let bytes = peer.store.generate_key_package(None).unwrap();
    block_on(validate_key_package_bytes(
        &bytes,
        eth_mls_crypto::Provider::new().crypto(),
        SUITE,
        &config().policy_at(at),
        None,
    ))
    .unwrap()
}

#[test]
fn verdicts_use_the_reference_time_not_the_clock() {
    let dir = TempDir::new();
    let mut peers = group_of(&dir, b"ref-time", &[1, 2]);
    let t = now();
    // Dave's binding was valid two hours ago to one hour ago; the commit adding him was
    // registered in a block of 80 minutes ago.
    let mut dave = Peer::new(&dir, identity_valid(4, t - 7200, t - 3600));
    let registered = t - 4800;
    let kp = key_package_at(&mut dave, registered);
    let alice = &mut peers[0];
    let group = alice.group.as_mut().unwrap();
    let out =
        block_on(group.add_members(&mut alice.store, &[kp], &Checks::at(registered))).unwrap();
    let bob = &mut peers[1];
    let before = (bob.g().epoch(), bob.g().members());
    // Judged by the clock, the commit would be refused: that is not the verdict.
    let group = bob.group.as_mut().unwrap();
    let err = block_on(group.process(&mut bob.store, &out.commit, &Checks::at(t))).unwrap_err();
    assert!(
        matches!(
            err,
            eth_mls_core::Error::Credential(CredentialError::Verification(
                VerificationError::Expired { .. }
            ))
        ),
        "{err:?}"
    );
    assert_eq!((bob.g().epoch(), bob.g().members()), before);
    // Judged at the registration block, every member accepts it, whatever its clock.
    let group = bob.group.as_mut().unwrap();
    block_on(group.process(&mut bob.store, &out.commit, &Checks::at(registered))).unwrap();
    group.merge_staged_commit(&mut bob.store).unwrap();
    assert!(bob.g().members().contains(&dave.address()));
}

#[test]
fn a_welcome_with_a_since_expired_leaf_is_joinable_and_lists_it_due() {
    let dir = TempDir::new();
    let t = now();
    let mut alice = Peer::new(&dir, identity(1));
    alice.create(b"expired-leaf");
    // Bob entered 80 minutes ago with a binding that expired an hour ago.
    let mut bob = Peer::new(&dir, identity_valid(2, t - 7200, t - 3600));
    let entered = t - 4800;
    let kp = key_package_at(&mut bob, entered);
    let group = alice.group.as_mut().unwrap();
    block_on(group.add_members(&mut alice.store, &[kp], &Checks::at(entered))).unwrap();
    alice.merge_own();
    // Carol joins now: Bob's leaf was valid when it entered, so the group is joinable.
    let mut carol = Peer::new(&dir, identity(3));
    let kp = carol.key_package();
    let out = alice.add(&[kp]);
    alice.merge_own();
    carol.join(&out.welcome.unwrap()).unwrap();
    assert_agree(&[&alice, &carol]);
    // Bob is due for removal now (not before his expiry), for every member alike.
    let due = vec![(1, bob.address())];
    assert_eq!(carol.g().due_for_removal(t), due);
    assert_eq!(alice.g().due_for_removal(t), due);
    assert!(carol.g().due_for_removal(t - 4000).is_empty());
    // The admin removes him; messages flow.
    let out = alice.remove(&[bob.address()]);
    alice.merge_own();
    carol.apply(&out.commit);
    assert!(carol.g().due_for_removal(t).is_empty());
    let m = alice.send(b"after the removal");
    assert_eq!(carol.receive(&m), b"after the removal");
}

#[test]
fn a_welcome_with_a_leaf_invalid_when_issued_is_refused() {
    // The Welcome rule only forgives later expiry: a leaf whose binding never verified (here
    // signed by another account) still makes the Welcome fail, the key package surviving.
    let dir = TempDir::new();
    let mut alice = Peer::new(&dir, identity(1));
    alice.create(b"bad-leaf");
    let mut carol = Peer::new(&dir, identity(3));
    let kp = carol.key_package();
    // Mallory's leaf gets in through raw openmls (no checks), then Carol is invited.
    let mallory = bad_identity(8, Bad::OtherAccount);
    let raw = raw_key_package(&mallory);
    let kp_m = openmls::prelude::KeyPackageIn::tls_deserialize_exact(&raw)
        .unwrap()
        .validate(
            eth_mls_crypto::Provider::new().crypto(),
            openmls::prelude::ProtocolVersion::Mls10,
        )
        .unwrap();
    let mut g = openmls::prelude::MlsGroup::load(
        openmls_traits::OpenMlsProvider::storage(&alice.store.provider()),
        &openmls::prelude::GroupId::from_slice(b"bad-leaf"),
    )
    .unwrap()
    .unwrap();
    g.add_members(
        &alice.store.provider(),
        alice.store.identity().signer(),
        &[kp_m],
    )
    .unwrap();
    g.merge_pending_commit(&alice.store.provider()).unwrap();
    let (_, welcome, _) = g
        .add_members(
            &alice.store.provider(),
            alice.store.identity().signer(),
            &[kp.key_package().clone()],
        )
        .unwrap();
    let welcome = tls_codec::Serialize::tls_serialize_detached(&welcome).unwrap();
    let err = block_on(Group::join(&mut carol.store, &welcome, config(), &checks())).unwrap_err();
    assert!(matches!(err, eth_mls_core::Error::Credential(_)), "{err:?}");
}

#[test]
fn bindings_always_expire_within_the_cap() {
    let request = |valid_for| BindingRequest {
        valid_for,
        ..request(CHAIN)
    };
    let id: Identity = block_on(Identity::create(&account(1), &request(None))).unwrap();
    let m = id.credential().message();
    let lifetime = m.expiration_time().unwrap().unix_seconds() - m.issued_at().unix_seconds();
    assert_eq!(lifetime as u64, DEFAULT_CREDENTIAL_LIFETIME.as_secs());
    for bad in [
        Duration::ZERO,
        MAX_CREDENTIAL_LIFETIME + Duration::from_secs(1),
    ] {
        let err = block_on(Identity::<eth_mls_crypto::DefaultBackend>::create(
            &account(1),
            &request(Some(bad)),
        ))
        .unwrap_err();
        assert!(matches!(err, IdentityError::Lifetime { .. }), "{err:?}");
    }
    let id: Identity = block_on(Identity::create(
        &account(1),
        &request(Some(MAX_CREDENTIAL_LIFETIME)),
    ))
    .unwrap();
    assert!(id.credential().message().expiration_time().is_some());
}

#[test]
fn renewal_is_a_self_update_with_a_fresh_credential() {
    let dir = TempDir::new();
    let mut peers = group_of(&dir, b"renewal", &[1, 2]);
    let later = now() + 7200; // both bindings (one hour) have expired by then
    let bob_address = peers[1].address();
    assert!(
        peers[0]
            .g()
            .due_for_removal(later)
            .contains(&(1, bob_address))
    );
    // Bob's account signs a fresh binding of the same key, valid for two days.
    let longer = BindingRequest {
        valid_for: Some(Duration::from_secs(2 * 24 * 3600)),
        ..request(CHAIN)
    };
    let renewed = block_on(peers[1].store.identity().renew(&account(2), &longer)).unwrap();
    // Only the identity's own account may renew it, and only for the same key.
    assert!(matches!(
        block_on(peers[1].store.identity().renew(&account(9), &longer)),
        Err(IdentityError::OtherAccount { .. })
    ));
    let other_key = identity(2).credential().clone();
    assert!(peers[1].store.renew_credential(other_key).is_err());
    peers[1].store.renew_credential(renewed.clone()).unwrap();
    // Persisted: the store reopens with the renewed credential.
    peers[1].restart();
    assert_eq!(peers[1].store.identity().credential(), &renewed);
    let out = peers[1].update();
    peers[1].merge_own();
    peers[0].apply(&out.commit);
    assert_agree(&[&peers[0], &peers[1]]);
    let due = peers[0].g().due_for_removal(later);
    assert!(!due.iter().any(|(_, a)| *a == bob_address), "{due:?}");
    assert!(
        due.contains(&(0, peers[0].address())),
        "alice's binding still expires"
    );
}

use openmls_traits::OpenMlsProvider as _;
use tls_codec::Deserialize as _;
