//! Groups of Ethereum accounts end to end: create, add (commit + Welcome), messages with
//! events, proposals by value and by reference, self-update, removal, leave, exporter.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use eth_mls_core::{Error, Event, Processed, ProposalKind};

fn trio(dir: &TempDir) -> (Peer, Peer, Peer) {
    let mut alice = Peer::new(dir, identity(1));
    let mut bob = Peer::new(dir, identity(2));
    let mut carol = Peer::new(dir, identity(3));
    alice.create(b"group-1");
    let kps = [bob.key_package(), carol.key_package()];
    let out = alice.add(&kps);
    assert_eq!(out.summary.added, vec![bob.address(), carol.address()]);
    assert_eq!(out.summary.new_epoch, 1);
    alice.merge_own();
    let welcome = out.welcome.unwrap();
    bob.join(&welcome).unwrap();
    carol.join(&welcome).unwrap();
    (alice, bob, carol)
}

#[test]
fn three_accounts_talk_update_and_remove() {
    let dir = TempDir::new();
    let (mut alice, mut bob, mut carol) = trio(&dir);
    assert_agree(&[&alice, &bob, &carol]);
    assert_eq!(
        alice.g().members(),
        vec![alice.address(), bob.address(), carol.address()]
    );

    let m = alice.send(b"hello");
    for p in [&mut bob, &mut carol] {
        let events = p.process(&m).unwrap();
        let [Event::Application(app)] = events.as_slice() else {
            panic!("{events:?}")
        };
        assert_eq!(app.sender, alice.address());
        assert_eq!(app.data, b"hello");
        assert_eq!((app.epoch, app.generation), (1, Some(0)));
    }
    // Own messages coming back are recognised.
    assert_eq!(alice.process(&m).unwrap(), vec![Event::OwnMessage]);

    // Bob updates; everyone else stages, inspects, merges.
    let out = bob.update();
    assert_eq!(out.summary.updated, vec![bob.address()]);
    let events = alice.process(&out.commit).unwrap();
    let [Event::StagedCommit(summary)] = events.as_slice() else {
        panic!("{events:?}")
    };
    assert_eq!(summary.committer, bob.address());
    assert_eq!(summary.new_epoch, 2);
    alice
        .group
        .as_mut()
        .unwrap()
        .merge_staged_commit(&mut alice.store)
        .unwrap();
    carol.apply(&out.commit);
    bob.merge_own();
    assert_agree(&[&alice, &bob, &carol]);

    // Exporter secrets agree.
    let a = alice
        .g()
        .export_secret(&alice.store, "test", b"ctx", 32)
        .unwrap();
    let b = bob
        .g()
        .export_secret(&bob.store, "test", b"ctx", 32)
        .unwrap();
    assert_eq!(a, b);
    assert_eq!(a.len(), 32);

    // Carol removes Bob by address.
    let out = carol.remove(&[bob.address()]);
    assert_eq!(out.summary.removed, vec![bob.address()]);
    carol.merge_own();
    alice.apply(&out.commit);
    let events = bob.process(&out.commit).unwrap();
    let [Event::StagedCommit(summary)] = events.as_slice() else {
        panic!("{events:?}")
    };
    assert!(summary.self_removed);
    bob.group
        .as_mut()
        .unwrap()
        .merge_staged_commit(&mut bob.store)
        .unwrap();
    assert!(!bob.g().is_active());
    assert_agree(&[&alice, &carol]);
    assert_eq!(alice.g().members(), vec![alice.address(), carol.address()]);

    // Bob cannot read what follows.
    let m = alice.send(b"without bob");
    assert_eq!(carol.receive(&m), b"without bob");
    assert!(bob.process(&m).is_err());
}

#[test]
fn proposals_by_reference_and_by_value_and_leave() {
    let dir = TempDir::new();
    let (mut alice, mut bob, mut carol) = trio(&dir);
    let mut dave = Peer::new(&dir, identity(4));
    let kp = dave.key_package();

    // Bob proposes adding Dave; Alice commits it by reference.
    let (proposal, reference) = block_on(bob.group.as_mut().unwrap().propose_add(
        &mut bob.store,
        &kp,
        &checks(),
    ))
    .unwrap();
    for p in [&mut alice, &mut carol] {
        let events = p.process(&proposal.bytes).unwrap();
        let [Event::Proposal(summary)] = events.as_slice() else {
            panic!("{events:?}")
        };
        assert_eq!(summary.sender, bob.address());
        assert_eq!(summary.kind, ProposalKind::Add(dave.address()));
        assert_eq!(summary.reference, reference);
    }
    let out = alice.commit_proposals();
    assert_eq!(out.summary.added, vec![dave.address()]);
    alice.merge_own();
    bob.apply(&out.commit);
    carol.apply(&out.commit);
    dave.join(&out.welcome.unwrap()).unwrap();
    assert_agree(&[&alice, &bob, &carol, &dave]);

    // Carol leaves: her proposal is committed by Dave.
    let leave = carol
        .group
        .as_mut()
        .unwrap()
        .leave(&mut carol.store)
        .unwrap();
    for p in [&mut alice, &mut bob, &mut dave] {
        let events = p.process(&leave.bytes).unwrap();
        assert!(matches!(
            events.as_slice(),
            [Event::Proposal(s)] if s.kind == ProposalKind::Remove(carol.address())
        ));
    }
    let out = dave.commit_proposals();
    assert_eq!(out.summary.removed, vec![carol.address()]);
    dave.merge_own();
    alice.apply(&out.commit);
    bob.apply(&out.commit);
    carol.apply(&out.commit);
    assert!(!carol.g().is_active());
    assert_agree(&[&alice, &bob, &dave]);

    // An update proposal, committed by reference.
    let (proposal, _) = bob
        .group
        .as_mut()
        .unwrap()
        .propose_self_update(&mut bob.store)
        .unwrap();
    for p in [&mut alice, &mut dave] {
        let events = p.process(&proposal.bytes).unwrap();
        assert!(
            matches!(events.as_slice(), [Event::Proposal(s)] if s.kind == ProposalKind::Update)
        );
    }
    let out = alice.commit_proposals();
    assert!(out.summary.updated.contains(&bob.address()));
    alice.merge_own();
    bob.apply(&out.commit);
    dave.apply(&out.commit);
    assert_agree(&[&alice, &bob, &dave]);
}

#[test]
fn missed_messages_are_reported() {
    let dir = TempDir::new();
    let (mut alice, mut bob, _carol) = trio(&dir);
    let m0 = alice.send(b"0");
    let _m1 = alice.send(b"1");
    let _m2 = alice.send(b"2");
    let m3 = alice.send(b"3");
    assert_eq!(bob.receive(&m0), b"0");
    let events = bob.process(&m3).unwrap();
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(
        events[0],
        Event::MissedMessages {
            sender: alice.address(),
            epoch: 1,
            missed: 2
        }
    );
    assert!(
        matches!(&events[1], Event::Application(a) if a.generation == Some(3) && a.data == b"3")
    );
}

#[test]
fn pending_and_staged_commits_block_other_operations() {
    let dir = TempDir::new();
    let (mut alice, mut bob, _carol) = trio(&dir);
    let out = alice.update();
    assert!(matches!(
        alice.group.as_mut().unwrap().self_update(&mut alice.store),
        Err(Error::OwnCommitPending)
    ));
    // Messages go on in the current epoch while the own commit waits (for the chain's
    // confirmations, say), as openmls allows.
    let waiting = alice.send(b"while the commit waits");
    assert_eq!(bob.receive(&waiting), b"while the commit waits");
    assert_eq!(
        alice.g().pending_commit(&alice.store).unwrap(),
        Some(out.clone())
    );
    alice
        .group
        .as_mut()
        .unwrap()
        .discard_pending_commit(&mut alice.store)
        .unwrap();
    assert_eq!(alice.g().pending_commit(&alice.store).unwrap(), None);
    assert!(matches!(
        alice
            .group
            .as_mut()
            .unwrap()
            .merge_pending_commit(&mut alice.store),
        Err(Error::NoPendingCommit)
    ));
    let m = alice.send(b"still epoch 1");
    assert_eq!(bob.receive(&m), b"still epoch 1");

    let unseen = alice.send(b"also epoch 1");
    let out = alice.update();
    bob.process(&out.commit).unwrap();
    assert!(matches!(
        bob.process(&unseen),
        Err(Error::StagedCommitPending)
    ));
    // A message already processed is recognised as such even now.
    assert_eq!(bob.process_raw(&m).unwrap(), Processed::Duplicate);
    assert_eq!(bob.process_raw(&out.commit).unwrap(), Processed::Duplicate);
    bob.group
        .as_mut()
        .unwrap()
        .discard_staged_commit(&mut bob.store)
        .unwrap();
    assert_eq!(bob.g().epoch(), 1);
}

fn assert_send<T: Send>(_: &T) {}

#[test]
fn async_operations_are_send() {
    let dir = TempDir::new();
    let (mut alice, _bob, _carol) = trio(&dir);
    let kp = Peer::new(&dir, identity(9)).key_package();
    let group = alice.group.as_mut().unwrap();
    let c = checks();
    let f = group.process(&mut alice.store, b"", &c);
    assert_send(&f);
    drop(f);
    let f = group.add_members(&mut alice.store, std::slice::from_ref(&kp), &c);
    assert_send(&f);
    drop(f);
    let f = eth_mls_core::Group::join(&mut alice.store, b"", config(), &c);
    assert_send(&f);
}

/// Security review H1: a stored proposal never rides along in a commit that does not name it.
/// Bob's Remove of carol is stored by alice; her update, add and removal commits carry
/// exactly what they say; `commit_proposals` takes the one named, and a forgotten proposal
/// can no longer be named. On ec4cec7 the update (`consume_proposal_store(true)`) and the add
/// (openmls's default) both carried the Remove.
#[test]
fn stored_proposals_ride_only_when_named() {
    let dir = TempDir::new();
    let (mut alice, mut bob, mut carol) = trio(&dir);
    let (remove, remove_ref) = bob
        .group
        .as_mut()
        .unwrap()
        .propose_remove(&mut bob.store, carol.address())
        .unwrap();
    alice.process(&remove.bytes).unwrap();
    assert_eq!(alice.g().stored_proposals(), vec![remove_ref.clone()]);

    let out = alice.update();
    assert!(out.summary.removed.is_empty(), "{:?}", out.summary);
    assert_eq!(out.summary.updated, vec![alice.address()]);
    alice
        .group
        .as_mut()
        .unwrap()
        .discard_pending_commit(&mut alice.store)
        .unwrap();

    let mut dave = Peer::new(&dir, identity(4));
    let kp = dave.key_package();
    let out = alice.add(&[kp]);
    assert!(out.summary.removed.is_empty(), "{:?}", out.summary);
    assert_eq!(out.summary.added, vec![dave.address()]);
    alice
        .group
        .as_mut()
        .unwrap()
        .discard_pending_commit(&mut alice.store)
        .unwrap();

    // Named, it goes in (and nothing else: carol's own update proposal stays out).
    let (update, _) = carol
        .group
        .as_mut()
        .unwrap()
        .propose_self_update(&mut carol.store)
        .unwrap();
    alice.process(&update.bytes).unwrap();
    let g = alice.group.as_mut().unwrap();
    let out = g
        .commit_proposals(
            &mut alice.store,
            std::slice::from_ref(&remove_ref),
            b"aad".to_vec(),
        )
        .unwrap();
    assert_eq!(out.summary.removed, vec![carol.address()]);
    assert!(!out.summary.updated.contains(&carol.address()));
    assert_eq!(
        eth_mls_core::authenticated_data(&out.commit).unwrap(),
        b"aad"
    );
    g.discard_pending_commit(&mut alice.store).unwrap();

    // Forgotten, it cannot be named; the update commit still works.
    g.forget_proposal(&mut alice.store, &remove_ref).unwrap();
    assert!(
        g.commit_proposals(&mut alice.store, &[remove_ref], Vec::new())
            .is_err()
    );
    let out = alice.update();
    assert!(out.summary.removed.is_empty());
    alice.merge_own();
    bob.apply(&out.commit);
    carol.apply(&out.commit);
    assert_agree(&[&alice, &bob, &carol]);
}
