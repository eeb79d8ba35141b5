//! The 1:1 channel's prekey bundles through ERC-7627 on a real anvil: publish, fetch the
//! newest, validate, start a session and carry its first message through `sendMessage`;
//! stale, foreign and mismatched bundles are not returned.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use eth_mls_chain::{
    BUNDLE_IDENTITY_KEY, Cursor, Devnet, Error, KeyAlgorithm, StreamConfig, bundle_session_id,
    key_index,
};
use eth_mls_channel::{DefaultBackend as B, Device, OneTimePrekeyChoice, PrekeyBundle, Secret};
use futures_util::StreamExt;

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bundles_through_erc7627() {
    let devnet = Devnet::start().unwrap();
    let d = devnet.deploy().await.unwrap();
    let (alice_chain, bob_chain, carol_chain) = (
        devnet.chain(1).await.unwrap(),
        devnet.chain(2).await.unwrap(),
        devnet.chain(3).await.unwrap(),
    );
    let bob_addr = bob_chain.sender().unwrap();
    let alice_addr = alice_chain.sender().unwrap();
    let bob_reg = bob_chain.erc7627(d.erc7627);
    let alice_reg = alice_chain.erc7627(d.erc7627);

    // Nothing published yet.
    assert_eq!(
        alice_reg.channel_bundle(bob_addr, d.block).await.unwrap(),
        None
    );

    let mut bob = Device::<B>::generate(bob_addr.into_array(), Secret::new([2; 57])).unwrap();
    bob.rotate_signed_prekey(now(), 7 * 86_400).unwrap();
    bob.generate_one_time_prekeys(5).unwrap();
    let first = bob.bundle(now(), 5).unwrap().encode().unwrap();
    assert_eq!(&first[BUNDLE_IDENTITY_KEY], bob.identity_key());
    // The identity key given must be the bundle's.
    assert!(matches!(
        bob_reg.publish_channel_bundle(&[7; 56], &first).await,
        Err(Error::BundleIdentityMismatch)
    ));
    bob_reg
        .publish_channel_bundle(bob.identity_key(), &first)
        .await
        .unwrap();
    let inbox = alice_reg
        .public_key(bob_addr, key_index::inbox())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (inbox.algorithm, inbox.key.as_slice()),
        (KeyAlgorithm::X448, &bob.identity_key()[..])
    );

    // Alice fetches, validates, and starts a session.
    let got = alice_reg
        .channel_bundle(bob_addr, d.block)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.bundle, first);
    assert_eq!(&got.identity_key, bob.identity_key());
    let verified = PrekeyBundle::validate::<B>(&got.bundle, now()).unwrap();
    assert_eq!(verified.address(), &bob_addr.into_array());
    let mut alice = Device::<B>::generate(alice_addr.into_array(), Secret::new([1; 57])).unwrap();
    let sid = alice
        .initiate(&verified, OneTimePrekeyChoice::Random)
        .unwrap();
    let msg = alice.encrypt(&sid, b"hello over the chain").unwrap();
    alice_reg
        .send_message(bob_addr, key_index::inbox(), sid.into(), &msg)
        .await
        .unwrap();

    // Bob reads his inbox from the logs (sessionId is the channel's session_id, §12).
    let mut stream = Box::pin(bob_reg.messages(
        Some(alice_addr),
        Some(bob_addr),
        Cursor::at_block(d.block),
        StreamConfig {
            poll_interval: Duration::from_millis(20),
            ..StreamConfig::default()
        },
    ));
    let event = tokio::time::timeout(Duration::from_secs(30), stream.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(event.data.sessionId.0, sid);
    let received = bob.receive(&event.data.encryptedMessage, now()).unwrap();
    assert_eq!(received.plaintext, b"hello over the chain");
    assert_eq!(received.peer_address, alice_addr.into_array());

    // A used one-time prekey: Bob republishes; the newest bundle no longer lists it.
    let second = bob.bundle(now(), 5).unwrap().encode().unwrap();
    bob_reg
        .publish_channel_bundle(bob.identity_key(), &second)
        .await
        .unwrap();
    let got = alice_reg
        .channel_bundle(bob_addr, d.block)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.bundle, second);
    assert_eq!(
        PrekeyBundle::validate::<B>(&got.bundle, now())
            .unwrap()
            .bundle()
            .one_time_prekeys
            .len(),
        4
    );

    // Someone else sending a "bundle" to bob is not bob's bundle.
    let mut forged = first.clone();
    forged[40] ^= 1;
    carol_chain
        .erc7627(d.erc7627)
        .send_message(bob_addr, key_index::inbox(), bundle_session_id(), &forged)
        .await
        .unwrap();
    assert_eq!(
        alice_reg
            .channel_bundle(bob_addr, d.block)
            .await
            .unwrap()
            .unwrap()
            .bundle,
        second
    );

    // A new identity key registered without a bundle: the old bundles are stale.
    bob_reg
        .update_public_key(key_index::inbox(), &[9; 56], KeyAlgorithm::X448, 0)
        .await
        .unwrap();
    assert_eq!(
        alice_reg.channel_bundle(bob_addr, d.block).await.unwrap(),
        None
    );
    // A new device of bob's publishes: its bundle is found.
    let mut bob2 = Device::<B>::generate(bob_addr.into_array(), Secret::new([3; 57])).unwrap();
    bob2.rotate_signed_prekey(now(), 86_400).unwrap();
    let third = bob2.bundle(now(), 0).unwrap().encode().unwrap();
    bob_reg
        .publish_channel_bundle(bob2.identity_key(), &third)
        .await
        .unwrap();
    assert_eq!(
        alice_reg
            .channel_bundle(bob_addr, d.block)
            .await
            .unwrap()
            .unwrap()
            .bundle,
        third
    );
    // A revoked inbox key: no bundle.
    bob_reg.revoke_public_key(key_index::inbox()).await.unwrap();
    assert_eq!(
        alice_reg.channel_bundle(bob_addr, d.block).await.unwrap(),
        None
    );
}
