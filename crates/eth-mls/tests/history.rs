//! Catching up on application messages from the delivery history: a member whose node was
//! stopped while ten messages were sent comes back and pages the history of the group's app
//! topic. Its peers kept only the last five: it reads those five, exactly once, and the five it
//! can never get are reported as missed, not skipped in silence.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use eth_mls::messages::catch_up_messages;
use eth_mls_core::{Checks, Event, Group, GroupConfig, validate_key_package_bytes};
use eth_mls_crypto::{Provider as MlsProvider, SUITE};
use eth_mls_transport::{Cursor, DeliveryService, Faults, MemoryNetwork, Retention, Topic};
use openmls_traits::OpenMlsProvider as _;

#[tokio::test]
async fn messages_missed_while_offline_are_read_or_reported() {
    let dir = std::env::temp_dir().join(format!("eth-mls-history-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let (mut alice, mut bob) = (
        common::local_store(&dir, 0xa1).await,
        common::local_store(&dir, 0xb2).await,
    );
    let config = GroupConfig::new(31337, common::DOMAIN);
    let mut a = Group::create(&mut alice, b"history", config.clone(), Default::default()).unwrap();
    let kp = bob.generate_key_package(None).unwrap();
    let kp = validate_key_package_bytes(
        &kp,
        MlsProvider::new().crypto(),
        SUITE,
        &config.policy(),
        None,
    )
    .await
    .unwrap();
    let out = a
        .add_members(&mut alice, &[kp], &Checks::at(common::now()))
        .await
        .unwrap();
    a.merge_pending_commit(&mut alice).unwrap();
    let mut b = Group::join(
        &mut bob,
        out.welcome.as_ref().unwrap(),
        config,
        &Checks::at(common::now()),
    )
    .await
    .unwrap();

    let net = MemoryNetwork::new(7, Faults::default());
    net.set_retention(Retention {
        max_entries: 5,
        ..Retention::default()
    });
    let (alice_node, bob_node) = (net.add_node("alice"), net.add_node("bob"));
    let topic = Topic::App {
        chain_id: 31337,
        group: [0x22; 20],
    };
    let _subs = (
        alice_node.subscribe(&topic).await.unwrap(),
        bob_node.subscribe(&topic).await.unwrap(),
    );
    net.stop(bob_node.id());
    for i in 0..10u8 {
        a.send(&mut alice, &[i]).unwrap();
        let bytes = alice
            .outbox_pending()
            .unwrap()
            .last()
            .unwrap()
            .bytes
            .clone();
        alice_node.publish(&topic, bytes).await.unwrap();
        net.advance(Duration::from_millis(10));
    }
    net.run_until_idle();
    net.start(bob_node.id());

    let got = catch_up_messages(
        &bob_node,
        &topic,
        Cursor::START,
        &mut b,
        &mut bob,
        &Checks::at(common::now()),
    )
    .await
    .unwrap();
    let texts: Vec<u8> = got
        .events
        .iter()
        .filter_map(|e| match e {
            Event::Application(m) => Some(m.data[0]),
            _ => None,
        })
        .collect();
    assert_eq!(texts, (5..10).collect::<Vec<u8>>());
    let missed: u32 = got
        .events
        .iter()
        .filter_map(|e| match e {
            Event::MissedMessages { missed, .. } => Some(*missed),
            _ => None,
        })
        .sum();
    assert_eq!(missed, 5);
    assert_eq!((got.rejected, got.duplicates), (0, 0));
    // Asking again from the start: every frame is recognised, nothing is delivered twice.
    let again = catch_up_messages(
        &bob_node,
        &topic,
        Cursor::START,
        &mut b,
        &mut bob,
        &Checks::at(common::now()),
    )
    .await
    .unwrap();
    assert!(again.events.is_empty());
    assert_eq!(again.duplicates, 5);
    // From where the first call stopped: nothing new.
    let next = catch_up_messages(
        &bob_node,
        &topic,
        got.next,
        &mut b,
        &mut bob,
        &Checks::at(common::now()),
    )
    .await
    .unwrap();
    assert_eq!((next.events.len(), next.duplicates), (0, 0));
    let _ = std::fs::remove_dir_all(&dir);
}
