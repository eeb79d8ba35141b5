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

/// Alice and bob in a group alice made (its id: `tag`), each with a store in a fresh
/// directory (returned).
async fn alice_and_bob(
    tag: &str,
) -> (
    std::path::PathBuf,
    eth_mls_core::Store,
    eth_mls_core::Store,
    Group,
    Group,
) {
    let dir = std::env::temp_dir().join(format!("eth-mls-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let (mut alice, mut bob) = (
        common::local_store(&dir, 0xa1).await,
        common::local_store(&dir, 0xb2).await,
    );
    let config = GroupConfig::new(31337, common::DOMAIN);
    let mut a = Group::create(
        &mut alice,
        tag.as_bytes(),
        config.clone(),
        Default::default(),
    )
    .unwrap();
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
    let b = Group::join(
        &mut bob,
        out.welcome.as_ref().unwrap(),
        config,
        &Checks::at(common::now()),
    )
    .await
    .unwrap();
    (dir, alice, bob, a, b)
}

#[tokio::test]
async fn messages_missed_while_offline_are_read_or_reported() {
    let (dir, mut alice, mut bob, mut a, mut b) = alice_and_bob("history").await;

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

/// Issue 31: the engine driven directly, on virtual time, from a seed. Bob's engine takes in
/// alice's messages, duplicates and frames forged to claim later epochs, in an order drawn
/// from the seed; two engines from the same saved state given the same seed produce the
/// same trace, event for event. Every message is read exactly once whatever the order; a
/// forged frame a few epochs ahead is held back (bounded), one further ahead is rejected.
#[tokio::test]
async fn the_engine_replays_a_seeded_run_exactly() {
    use eth_mls::engine::machine::Engine;
    use eth_mls::records::GroupRecord;

    let (dir, mut alice, bob, mut a, b) = alice_and_bob("replay").await;
    let (group_id, epoch) = (b.id().to_vec(), b.epoch());
    drop((b, bob));

    // Alice's twelve messages, three of them twice, and forged frames claiming epochs 1 to 8
    // (a real frame with its epoch rewritten: nobody can read it).
    let mut frames = Vec::new();
    for i in 0..12u8 {
        a.send(&mut alice, &[b'm', i]).unwrap();
        frames.push(
            alice
                .outbox_pending()
                .unwrap()
                .last()
                .unwrap()
                .bytes
                .clone(),
        );
    }
    for i in [0, 5, 11] {
        frames.push(frames[i].clone());
    }
    let real = frames[0].clone();
    let at = 5 + usize::from(real[4]);
    assert_eq!(real[at..at + 8], epoch.to_be_bytes(), "the epoch field");
    for ahead in 1..=8u64 {
        let mut forged = real.clone();
        forged[at..at + 8].copy_from_slice(&(epoch + ahead).to_be_bytes());
        frames.push(forged);
    }

    // Two copies of bob's saved state.
    let copy = |n: u32| {
        let to = dir.join(format!("bob{n}"));
        std::fs::create_dir_all(&to).unwrap();
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with("178.db") {
                std::fs::copy(entry.path(), to.join(&name)).unwrap();
            }
        }
        to.join("178.db")
    };
    let contract = eth_mls_siwe::Address::repeat_byte(0x22);
    let run = |path: std::path::PathBuf, seed: u64| {
        let (group_id, frames) = (group_id.clone(), frames.clone());
        async move {
            let store =
                eth_mls_core::Store::open(&path, &eth_mls_core::StoreKey::raw([0xb2; 32])).unwrap();
            let group = Group::load(&store, &group_id).unwrap();
            // Messages kept in the store, with the (virtual) time they were taken in.
            let mut engine = Engine::new(store, true);
            let record = GroupRecord {
                group_id,
                from_block: 0,
                joined_epoch: epoch,
            };
            assert!(engine.follow(contract, group, record).unwrap());
            // The order, from the seed (xorshift64*): alice's messages as gossip may reorder
            // them (neighbours swapped: within the ratchet's out-of-order tolerance), the
            // duplicates and forged frames anywhere among them.
            let mut x = seed.max(1);
            let mut next = move || {
                x ^= x >> 12;
                x ^= x << 25;
                x ^= x >> 27;
                x.wrapping_mul(0x2545_f491_4f6c_dd1d)
            };
            let mut order: Vec<usize> = (0..12).collect();
            for i in (0..11).step_by(2) {
                if next() % 2 == 0 {
                    order.swap(i, i + 1);
                }
            }
            for extra in 12..frames.len() {
                let at = (next() % (order.len() as u64 + 1)) as usize;
                order.insert(at, extra);
            }
            let mut trace = Vec::new();
            // Virtual time: one second per frame from a fixed start.
            for (step, &i) in order.iter().enumerate() {
                let read = engine.take_app_frame(
                    contract,
                    frames[i].clone(),
                    true,
                    1_800_000_000 + step as i64,
                );
                trace.push(format!("{step} frame {i}: {read:?}"));
                for e in engine.drain_events() {
                    trace.push(format!("{step} {e:?}"));
                }
            }
            assert!(engine.is_active(contract));
            assert_eq!(engine.epoch(contract).unwrap(), epoch);
            for m in engine.messages(contract).unwrap() {
                trace.push(format!("kept {:?} at {}", m.data, m.received_at));
            }
            trace
        }
    };
    let first = run(copy(1), 7).await;
    let again = run(copy(2), 7).await;
    assert_eq!(first, again, "the same seed replays the same trace");
    let other = run(copy(3), 8).await;
    assert_ne!(
        first, other,
        "another seed takes the frames in another order"
    );
    for trace in [&first, &other] {
        // Each message read once, whatever the order.
        let mut read: Vec<String> = trace
            .iter()
            .filter(|l| l.contains(" Message {"))
            .map(|l| l.split_once("data: ").unwrap().1.to_string())
            .collect();
        assert_eq!(read.len(), 12, "{trace:#?}");
        read.sort();
        read.dedup();
        assert_eq!(read.len(), 12, "{trace:#?}");
        // Forged frames up to four epochs ahead are held back (not read, nothing said);
        // further ahead they are rejected at once.
        assert_eq!(
            trace.iter().filter(|l| l.contains("Rejected")).count(),
            4,
            "{trace:#?}"
        );
        assert_eq!(
            trace.iter().filter(|l| l.ends_with(": Ok(false)")).count(),
            8,
            "{trace:#?}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
