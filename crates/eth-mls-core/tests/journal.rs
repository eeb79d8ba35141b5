//! The durable inbox and outbox, own key packages, retention, and store creation over what a
//! crash leaves behind.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use eth_mls_core::{Error, Event, OutboxKind, Processed, Retention, Store};

fn pair(dir: &TempDir) -> (Peer, Peer) {
    let mut alice = Peer::new(dir, identity(1));
    let mut bob = Peer::new(dir, identity(2));
    alice.create(b"j");
    let kp = bob.key_package();
    let out = alice.add(&[kp]);
    alice.merge_own();
    bob.join(out.welcome.as_ref().unwrap()).unwrap();
    (alice, bob)
}

#[test]
fn processing_fills_the_inbox_which_survives_a_restart_and_is_acknowledged() {
    let dir = TempDir::new();
    let (mut alice, mut bob) = pair(&dir);
    let m1 = alice.send(b"one");
    let _skipped = alice.send(b"two");
    let m3 = alice.send(b"three");
    bob.process(&m1).unwrap();
    bob.process(&m3).unwrap();
    let update = alice.update();
    alice.merge_own();
    bob.process(&update.commit).unwrap();
    bob.restart();

    let inbox = bob.store.inbox(0, 100).unwrap();
    let kinds: Vec<&str> = inbox
        .iter()
        .map(|e| match &e.event {
            Event::Application(_) => "app",
            Event::MissedMessages { .. } => "missed",
            Event::StagedCommit(_) => "commit",
            _ => "other",
        })
        .collect();
    assert_eq!(kinds, ["app", "missed", "app", "commit"]);
    let Event::Application(first) = &inbox[0].event else {
        unreachable!()
    };
    assert_eq!(
        (
            first.data.as_slice(),
            first.sender,
            first.epoch,
            first.generation
        ),
        (&b"one"[..], alice.address(), 1, Some(0))
    );
    assert!(matches!(
        inbox[1].event,
        Event::MissedMessages { missed: 1, .. }
    ));
    assert!(inbox.windows(2).all(|w| w[0].seq < w[1].seq));
    assert_eq!(inbox[0].group_id, b"j");

    // Cursor and acknowledgement.
    assert_eq!(bob.store.unacked(100).unwrap(), inbox);
    bob.store.ack(inbox[1].seq).unwrap();
    assert_eq!(bob.store.inbox_acked().unwrap(), inbox[1].seq);
    bob.restart();
    assert_eq!(bob.store.unacked(100).unwrap(), inbox[2..]);
    assert_eq!(bob.store.inbox(inbox[2].seq, 100).unwrap(), inbox[3..]);
    // Acknowledging an older position changes nothing; past the end is an error.
    bob.store.ack(inbox[0].seq).unwrap();
    assert_eq!(bob.store.inbox_acked().unwrap(), inbox[1].seq);
    assert!(matches!(
        bob.store.ack(inbox[3].seq + 1),
        Err(Error::UnknownEntry(_))
    ));
    // The same bytes again: a duplicate, nothing added.
    assert_eq!(bob.process_raw(&m1).unwrap(), Processed::Duplicate);
    assert_eq!(bob.store.inbox(0, 100).unwrap(), inbox);
}

#[test]
fn sends_commits_proposals_and_welcomes_go_through_the_outbox() {
    let dir = TempDir::new();
    let mut alice = Peer::new(&dir, identity(1));
    let mut bob = Peer::new(&dir, identity(2));
    alice.create(b"j");
    let kp = bob.key_package();
    let out = alice.add(&[kp]);
    // The commit is in the outbox, the Welcome not yet (it waits for the merge).
    let pending = alice.store.outbox_pending().unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(
        (pending[0].kind, pending[0].epoch, pending[0].seq),
        (OutboxKind::Commit, 0, out.outbox)
    );
    assert_eq!(pending[0].bytes, out.commit);
    let welcome = alice
        .group
        .as_mut()
        .unwrap()
        .merge_pending_commit(&mut alice.store)
        .unwrap()
        .unwrap();
    assert_eq!(
        (welcome.kind, welcome.epoch, Some(&welcome.bytes)),
        (OutboxKind::Welcome, 1, out.welcome.as_ref())
    );
    bob.join(&welcome.bytes).unwrap();

    let sent = alice.send_entry(b"hi");
    assert_eq!(
        (sent.kind, sent.epoch, sent.generation),
        (OutboxKind::Application, 1, Some(0))
    );
    let second = alice.send_entry(b"again");
    assert_eq!(second.generation, Some(1));
    let (proposal, _) = alice
        .group
        .as_mut()
        .unwrap()
        .propose_self_update(&mut alice.store)
        .unwrap();
    assert_eq!(proposal.kind, OutboxKind::Proposal);

    // After a restart the unpublished entries are all there, in order, byte for byte.
    alice.restart();
    let pending = alice.store.outbox_pending().unwrap();
    let seqs: Vec<u64> = pending.iter().map(|e| e.seq).collect();
    assert_eq!(
        seqs,
        [out.outbox, welcome.seq, sent.seq, second.seq, proposal.seq]
    );
    assert_eq!(pending[2].bytes, sent.bytes);
    for entry in &pending {
        alice.store.mark_published(entry.seq).unwrap();
    }
    // Idempotent; unknown entries are an error.
    alice.store.mark_published(sent.seq).unwrap();
    assert!(matches!(
        alice.store.mark_published(9999),
        Err(Error::UnknownEntry(9999))
    ));
    assert!(alice.store.outbox_pending().unwrap().is_empty());
    let all = alice.store.outbox(0, 100).unwrap();
    assert_eq!(all.len(), 5);
    assert!(all.iter().all(|e| e.published_at.is_some()));
    // Bob reads the re-published bytes (the same message).
    assert_eq!(bob.receive(&pending[2].bytes), b"hi");
}

#[test]
fn a_discarded_commit_leaves_the_outbox_and_a_deleted_group_takes_its_unpublished_entries() {
    let dir = TempDir::new();
    let (mut alice, _bob) = pair(&dir);
    for e in alice.store.outbox_pending().unwrap() {
        alice.store.mark_published(e.seq).unwrap();
    }
    let out = alice.update();
    alice
        .group
        .as_mut()
        .unwrap()
        .discard_pending_commit(&mut alice.store)
        .unwrap();
    assert!(alice.store.outbox_pending().unwrap().is_empty());
    assert!(matches!(
        alice.store.mark_published(out.outbox),
        Err(Error::UnknownEntry(_))
    ));
    alice.send_entry(b"never published");
    assert_eq!(alice.store.outbox_pending().unwrap().len(), 1);
    alice
        .group
        .take()
        .unwrap()
        .delete(&mut alice.store)
        .unwrap();
    assert!(alice.store.outbox_pending().unwrap().is_empty());
}

#[test]
fn unused_key_packages_are_listed_until_a_welcome_uses_one() {
    let dir = TempDir::new();
    let mut alice = Peer::new(&dir, identity(1));
    let mut bob = Peer::new(&dir, identity(2));
    assert!(bob.store.unused_key_packages().unwrap().is_empty());
    let first = bob.store.generate_key_package(None).unwrap();
    let second = bob.store.generate_key_package(None).unwrap();
    bob.restart();
    let unused = bob.store.unused_key_packages().unwrap();
    let bytes: Vec<&Vec<u8>> = unused.iter().map(|k| &k.bytes).collect();
    assert_eq!(bytes.len(), 2);
    assert!(bytes.contains(&&first) && bytes.contains(&&second));
    assert!(
        unused
            .iter()
            .all(|k| k.not_after > now() && k.reference.len() == 64)
    );

    alice.create(b"j");
    let out = alice.add(&[validated(&second)]);
    alice.merge_own();
    bob.join(out.welcome.as_ref().unwrap()).unwrap();
    let unused = bob.store.unused_key_packages().unwrap();
    assert_eq!(unused.len(), 1);
    assert_eq!(unused[0].bytes, first);
}

#[test]
fn retention_is_bounded_and_prunes_only_acknowledged_and_published_entries() {
    let dir = TempDir::new();
    let (mut alice, mut bob) = pair(&dir);
    assert_eq!(bob.store.retention().unwrap(), Retention::default());
    assert!(matches!(
        bob.store.set_retention(Retention {
            max_entries: Retention::MAX_ENTRIES + 1,
            max_age: Duration::from_secs(60),
        }),
        Err(Error::Retention(_))
    ));
    assert!(matches!(
        bob.store.set_retention(Retention {
            max_entries: 10,
            max_age: Retention::MAX_AGE + Duration::from_secs(1),
        }),
        Err(Error::Retention(_))
    ));
    let two = Retention {
        max_entries: 2,
        max_age: Duration::from_secs(3600),
    };
    bob.store.set_retention(two).unwrap();
    alice.store.set_retention(two).unwrap();
    bob.restart();
    assert_eq!(bob.store.retention().unwrap(), two);

    let sent: Vec<Vec<u8>> = (0..5u8).map(|i| alice.send(&[i])).collect();
    for m in &sent {
        bob.receive(m);
    }
    let inbox = bob.store.inbox(0, 100).unwrap();
    assert_eq!(inbox.len(), 5);
    // Unacknowledged entries are never pruned, whatever the retention.
    bob.store.set_retention(two).unwrap();
    assert_eq!(bob.store.inbox(0, 100).unwrap().len(), 5);
    // Acknowledging four keeps the two newest acknowledged ones and the unacknowledged one.
    bob.store.ack(inbox[3].seq).unwrap();
    let left: Vec<u64> = bob
        .store
        .inbox(0, 100)
        .unwrap()
        .iter()
        .map(|e| e.seq)
        .collect();
    assert_eq!(left, [inbox[2].seq, inbox[3].seq, inbox[4].seq]);
    // Published outbox entries likewise; unpublished ones stay.
    let outbox = alice.store.outbox_pending().unwrap();
    assert!(outbox.len() >= 5);
    for e in &outbox[..outbox.len() - 1] {
        alice.store.mark_published(e.seq).unwrap();
    }
    let kept = alice.store.outbox(0, 100).unwrap();
    assert_eq!(kept.len(), 3);
    assert_eq!(kept.last().unwrap().published_at, None);
    // Pruned processed-message records: an old message is no longer recognised as a
    // duplicate (MLS then rejects it: its key is gone).
    assert!(bob.process(&sent[0]).is_err());
    assert_eq!(bob.process_raw(&sent[4]).unwrap(), Processed::Duplicate);
}

#[test]
fn create_replaces_what_an_interrupted_creation_left() {
    let dir = TempDir::new();
    let path = dir.0.join("store.db");
    // An interrupted creation's temporary file, and a file at the path without identity
    // (as an older version could leave it): both are replaced.
    std::fs::write(dir.0.join("store.db.creating"), b"half a database").unwrap();
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        let salt = [9u8; 16];
        let mut key = String::from("x'");
        key.push_str(&hex::encode([0x5e; 32]));
        key.push_str(&hex::encode(salt));
        key.push('\'');
        conn.pragma_update(None, "key", key).unwrap();
        conn.execute_batch("CREATE TABLE half (x INTEGER)").unwrap();
    }
    assert!(matches!(
        Store::<eth_mls_crypto::DefaultBackend>::open(&path, &store_key()),
        Err(Error::NoIdentity)
    ));
    let store = Store::create(&path, &store_key(), identity(1)).unwrap();
    let address = store.identity().address();
    drop(store);
    assert!(!dir.0.join("store.db.creating").exists());
    let store = Store::<eth_mls_crypto::DefaultBackend>::open(&path, &store_key()).unwrap();
    assert_eq!(store.identity().address(), address);
    drop(store);
    // A complete store is never replaced.
    assert!(matches!(
        Store::create(&path, &store_key(), identity(2)),
        Err(Error::IdentityExists)
    ));
    // Nor one under another key.
    assert!(matches!(
        Store::create(&path, &eth_mls_core::StoreKey::raw([1; 32]), identity(2)),
        Err(Error::WrongKey)
    ));
}

#[derive(Clone, Debug)]
enum Op {
    /// Alice sends; Bob receives it (or not yet).
    Send { delivered: bool },
    /// Bob receives everything not delivered yet, some of it twice.
    Deliver,
    /// Bob acknowledges up to the k-th of his inbox entries.
    Ack(usize),
    /// Alice marks her k-th pending outbox entry published.
    Publish(usize),
    /// Both set this many retained entries.
    Retain(u64),
}

fn op() -> impl proptest::strategy::Strategy<Value = Op> {
    use proptest::prelude::*;
    prop_oneof![
        4 => any::<bool>().prop_map(|delivered| Op::Send { delivered }),
        2 => Just(Op::Deliver),
        2 => (0usize..20).prop_map(Op::Ack),
        2 => (0usize..20).prop_map(Op::Publish),
        1 => (0u64..6).prop_map(Op::Retain),
    ]
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(24))]

    /// Whatever the order of sends, deliveries (late ones and duplicates included),
    /// acknowledgements, publications and retention changes: every delivered message is in
    /// the inbox exactly once, unacknowledged and unpublished entries are never dropped, and
    /// exactly the newest `retention` acknowledged or published entries are kept.
    #[test]
    fn inbox_and_outbox_invariants(ops in proptest::collection::vec(op(), 1..25)) {
        use proptest::{prop_assert, prop_assert_eq};
        let mut alice = Peer::in_memory(identity(1));
        let mut bob = Peer::in_memory(identity(2));
        alice.create(b"p");
        let kp = bob.key_package();
        let out = alice.add(&[kp]);
        alice.merge_own();
        bob.join(out.welcome.as_ref().unwrap()).unwrap();
        let mut retained = Retention::default().max_entries;
        let mut undelivered: Vec<Vec<u8>> = Vec::new();
        let mut delivered = 0usize;
        let mut first: Option<Vec<u8>> = None;
        // The model: every inbox entry ever made (seq, application?), outbox counts.
        let mut made: Vec<(u64, bool)> = Vec::new();
        let mut outbox_made = alice.store.outbox_pending().unwrap().len();
        let mut outbox_published = 0usize;
        // Acknowledged (published) entries retention kept: pruned ones never come back.
        let mut kept_acked: Vec<u64> = Vec::new();
        let mut kept_published = 0usize;
        let mut acked = 0u64;
        for op in ops {
            match op {
                Op::Send { delivered: now } => {
                    let m = alice.send(b"m");
                    outbox_made += 1;
                    if now {
                        bob.receive(&m);
                        delivered += 1;
                        first.get_or_insert(m);
                    } else {
                        undelivered.push(m);
                    }
                }
                Op::Deliver => {
                    for m in undelivered.drain(..) {
                        match bob.process_raw(&m) {
                            Ok(Processed::New(_)) => {
                                delivered += 1;
                                first.get_or_insert(m);
                            }
                            // More than `out_of_order_tolerance` generations late: MLS
                            // refuses it, and nothing is stored.
                            Err(Error::Rejected(_)) => {}
                            other => prop_assert!(false, "{other:?}"),
                        }
                    }
                    if let Some(m) = &first {
                        // A duplicate while remembered; after pruning, MLS refuses it.
                        let again = bob.process_raw(m);
                        prop_assert!(matches!(again, Ok(Processed::Duplicate) | Err(_)), "{again:?}");
                    }
                }
                Op::Ack(k) => {
                    if let Some(e) = bob.store.unacked(100).unwrap().get(k) {
                        bob.store.ack(e.seq).unwrap();
                        kept_acked.extend(made.iter().map(|m| m.0).filter(|&s| s > acked && s <= e.seq));
                        acked = e.seq;
                        let drop = kept_acked.len().saturating_sub(retained as usize);
                        kept_acked.drain(..drop);
                    }
                }
                Op::Publish(k) => {
                    if let Some(e) = alice.store.outbox_pending().unwrap().get(k) {
                        alice.store.mark_published(e.seq).unwrap();
                        outbox_published += 1;
                        kept_published = (kept_published + 1).min(retained as usize);
                    }
                }
                Op::Retain(n) => {
                    let r = Retention { max_entries: n, max_age: Duration::from_secs(3600) };
                    alice.store.set_retention(r).unwrap();
                    bob.store.set_retention(r).unwrap();
                    retained = n;
                    let drop = kept_acked.len().saturating_sub(n as usize);
                    kept_acked.drain(..drop);
                    kept_published = kept_published.min(n as usize);
                }
            }
            // New entries (unacknowledged: never pruned) extend the model.
            let newest = made.last().map_or(0, |e| e.0);
            for e in bob.store.inbox(newest, 1000).unwrap() {
                made.push((e.seq, matches!(e.event, Event::Application(_))));
            }
            prop_assert_eq!(bob.store.inbox_acked().unwrap(), acked);
            let inbox: Vec<u64> = bob.store.inbox(0, 1000).unwrap().iter().map(|e| e.seq).collect();
            let unacked = made.iter().map(|e| e.0).filter(|&s| s > acked);
            let expected: Vec<u64> = kept_acked.iter().copied().chain(unacked).collect();
            prop_assert_eq!(inbox, expected);
            prop_assert_eq!(made.iter().filter(|e| e.1).count(), delivered);
            let pending = alice.store.outbox_pending().unwrap().len();
            prop_assert_eq!(pending, outbox_made - outbox_published);
            let kept = alice.store.outbox(0, 1000).unwrap().len() - pending;
            prop_assert_eq!(kept, kept_published);
        }
    }
}
