//! The chain channel on a real anvil: 200 frames with a subscriber restarted in the middle
//! (nothing lost, nothing twice), inboxes, peer discovery through ERC-7627, bad input.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::time::Duration;

use alloy::primitives::Address;
use eth_mls_chain::{
    ChainChannel, CommitPolicy, Devnet, KeyAlgorithm, MAX_CHAIN_FRAME, StreamConfig, key_index,
};
use eth_mls_transport::{
    Cursor, DeliveryService, Error as TError, MessageId, Origin, Topic, sample_private_message,
};
use futures_util::StreamExt;

fn fast() -> StreamConfig {
    StreamConfig {
        poll_interval: Duration::from_millis(20),
        ..StreamConfig::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_frames_with_a_restart_nothing_lost_nothing_twice() {
    let devnet = Devnet::start().unwrap();
    let d = devnet.deploy().await.unwrap();
    let alice = devnet.chain(1).await.unwrap();
    let (group, _) = alice
        .factory(d.group_factory)
        .create_group(b"chain channel group", 4, CommitPolicy::AdminsOnly)
        .await
        .unwrap();
    let topic = Topic::App {
        chain_id: devnet.chain_id(),
        group: group.address().into_array(),
    };
    // Before the group registers its delivery key, the registry refuses frames for it.
    let sender = ChainChannel::new(alice.clone(), d.erc7627, fast());
    let frame = |i: u32| sample_private_message(b"chain channel group", 1, &i.to_be_bytes());
    assert!(matches!(
        sender.publish(&topic, frame(0)).await,
        Err(TError::Backend { .. })
    ));
    group.set_delivery_key(&[0x42; 56]).await.unwrap();
    let registered = alice
        .erc7627(d.erc7627)
        .public_key(group.address(), key_index::group_delivery())
        .await
        .unwrap();
    assert_eq!(registered.map(|k| k.algorithm), Some(KeyAlgorithm::X448));

    let bob = devnet.chain(2).await.unwrap();
    let receiver = ChainChannel::new(bob.clone(), d.erc7627, fast());
    let mut sub = receiver.subscribe(&topic).await.unwrap();
    let publisher = tokio::spawn({
        let sender = sender.clone();
        async move {
            let mut ids = Vec::new();
            for i in 1..=200u32 {
                ids.push(sender.publish(&topic, frame(i)).await.unwrap());
            }
            ids
        }
    });
    let mut got: Vec<MessageId> = Vec::new();
    let mut last = Cursor::START;
    while got.len() < 100 {
        let e = tokio::time::timeout(Duration::from_secs(30), sub.next())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            e.origin,
            Origin::Account(alice.sender().unwrap().into_array())
        );
        assert!(e.received_at > 0);
        got.push(e.id);
        last = e.cursor;
    }
    // The subscriber goes away (a process restart) with its cursor, and comes back.
    drop(sub);
    drop(receiver);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let receiver = ChainChannel::new(bob, d.erc7627, fast());
    let mut sub = receiver.subscribe_since(&topic, last.next()).await.unwrap();
    while got.len() < 200 {
        let e = tokio::time::timeout(Duration::from_secs(30), sub.next())
            .await
            .unwrap()
            .unwrap();
        got.push(e.id);
    }
    let sent = publisher.await.unwrap();
    let unique: HashSet<MessageId> = got.iter().copied().collect();
    assert_eq!(unique.len(), 200, "nothing twice");
    assert_eq!(unique, sent.iter().copied().collect(), "nothing lost");
    // Nothing more arrives.
    assert!(
        tokio::time::timeout(Duration::from_millis(500), sub.next())
            .await
            .is_err()
    );

    // History pages from the start cover the 200 frames once.
    let mut cursor = Cursor::START;
    let mut paged = Vec::new();
    loop {
        let page = receiver.history(&topic, cursor, 64).await.unwrap();
        paged.extend(page.envelopes.iter().map(|e| e.id));
        match page.next {
            Some(next) => cursor = next,
            None => break,
        }
    }
    assert_eq!(paged, sent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inboxes_discovery_and_bad_input() {
    let devnet = Devnet::start().unwrap();
    let d = devnet.deploy().await.unwrap();
    let alice = devnet.chain(1).await.unwrap();
    let carol = devnet.chain(3).await.unwrap();
    let chain_id = devnet.chain_id();
    let inbox = Topic::Inbox {
        chain_id,
        account: carol.sender().unwrap().into_array(),
    };
    let channel = ChainChannel::new(alice.clone(), d.erc7627, fast());
    // Carol publishes her inbox key; then frames to her inbox go through.
    assert!(matches!(
        channel.publish(&inbox, b"hi".to_vec()).await,
        Err(TError::Backend { .. })
    ));
    carol
        .erc7627(d.erc7627)
        .update_public_key(key_index::inbox(), &[5; 57], KeyAlgorithm::Ed448, 0)
        .await
        .unwrap();
    let id = channel
        .publish(&inbox, b"a 1:1 channel frame".to_vec())
        .await
        .unwrap();
    let carols = ChainChannel::new(carol.clone(), d.erc7627, fast());
    let page = carols.history(&inbox, Cursor::START, 10).await.unwrap();
    assert_eq!(
        page.envelopes.iter().map(|e| e.id).collect::<Vec<_>>(),
        vec![id]
    );
    // Another topic's frames (same recipient, another session id) are not mixed in.
    let other = Topic::Inbox {
        chain_id,
        account: alice.sender().unwrap().into_array(),
    };
    assert!(
        carols
            .history(&other, Cursor::START, 10)
            .await
            .unwrap()
            .envelopes
            .is_empty()
    );

    // Peer discovery: bob publishes his libp2p key, alice finds it by his address.
    let bob = devnet.chain(2).await.unwrap();
    let peer_key = [9u8; 32];
    bob.erc7627(d.erc7627)
        .publish_peer_key(&peer_key, 0)
        .await
        .unwrap();
    let registry = alice.erc7627(d.erc7627);
    assert_eq!(
        registry.peer_key(bob.sender().unwrap()).await.unwrap(),
        Some(peer_key)
    );
    assert_eq!(
        registry.peer_key(Address::repeat_byte(1)).await.unwrap(),
        None
    );
    // A key of another algorithm under the index is not a peer key.
    carol
        .erc7627(d.erc7627)
        .update_public_key(key_index::libp2p_peer(), &[1; 56], KeyAlgorithm::X448, 0)
        .await
        .unwrap();
    assert_eq!(
        registry.peer_key(carol.sender().unwrap()).await.unwrap(),
        None
    );

    // Bad input: another chain's topic, huge history requests, oversized and empty frames.
    let foreign = Topic::Inbox {
        chain_id: chain_id + 1,
        account: [1; 20],
    };
    assert!(matches!(
        channel.publish(&foreign, b"x".to_vec()).await,
        Err(TError::InvalidTopic { .. })
    ));
    assert!(matches!(
        channel.history(&inbox, Cursor::START, u32::MAX).await,
        Err(TError::HistoryLimit { .. })
    ));
    let far = Cursor {
        at: u64::MAX - 5,
        index: 0,
    };
    assert!(
        channel
            .history(&inbox, far, 10)
            .await
            .unwrap()
            .envelopes
            .is_empty()
    );
    assert!(matches!(
        channel.publish(&inbox, vec![1; MAX_CHAIN_FRAME + 1]).await,
        Err(TError::TooLarge { .. })
    ));
    assert!(matches!(
        channel.publish(&inbox, Vec::new()).await,
        Err(TError::Invalid { .. })
    ));
    // The contract's constant is the documented key index.
    let implementation =
        eth_mls_chain::bindings::MlsGroup::new(d.group_implementation, alice.provider().clone());
    assert_eq!(
        implementation.DELIVERY_KEY_INDEX().call().await.unwrap(),
        key_index::group_delivery()
    );
}
