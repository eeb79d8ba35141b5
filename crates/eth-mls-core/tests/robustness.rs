//! Bad input (random bytes, truncations, tampering, replays, past/future epochs, another
//! group), post-compromise security, restarts between every step, and an operation
//! interrupted mid-way.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Waker};

use common::*;
use eth_mls_core::{Error, Event, Group, Processed};
use eth_mls_siwe::{Address, B256, BoxFuture, Erc1271Error, Erc1271Verifier};
use proptest::prelude::*;

fn pair(dir: &TempDir, id: &[u8]) -> (Peer, Peer) {
    let mut peers = group_of(dir, id, &[1, 2]).into_iter();
    let mut next = || peers.next().unwrap();
    (next(), next())
}

fn state(p: &Peer) -> (u64, Vec<u8>, Vec<Address>) {
    let g = p.g();
    (g.epoch(), g.epoch_authenticator(), g.members())
}

/// Alice commits a self-update; she merges, Bob does not yet.
fn alice_commits(alice: &mut Peer) -> Vec<u8> {
    let g = alice.group.as_mut().unwrap();
    let out = g.self_update(&mut alice.store).unwrap();
    g.merge_pending_commit(&mut alice.store).unwrap();
    out.commit
}

#[test]
fn truncated_and_tampered_messages_fail_without_consuming_keys() {
    let dir = TempDir::new();
    let (mut alice, mut bob) = pair(&dir, b"g");
    let m = alice.send(b"the real one");
    let before = state(&bob);
    for len in 0..m.len() {
        let err = bob.process(&m[..len]).unwrap_err();
        assert!(matches!(err, Error::Malformed(_)), "prefix {len}: {err:?}");
    }
    for i in (0..m.len()).step_by(7) {
        let mut t = m.clone();
        t[i] ^= 0x40;
        assert!(bob.process(&t).is_err(), "byte {i} flipped was accepted");
    }
    assert_eq!(state(&bob), before);
    // The failed attempts consumed nothing: the real message still decrypts, once.
    assert_eq!(bob.receive(&m), b"the real one");
    assert_eq!(bob.process_raw(&m).unwrap(), Processed::Duplicate);
    assert_eq!(state(&bob), before);
}

#[test]
fn commits_are_not_accepted_twice_and_other_groups_are_refused() {
    let dir = TempDir::new();
    let (mut alice, mut bob) = pair(&dir, b"g1");
    let (mut other, _) = pair(&TempDir::new(), b"g2");
    let commit = alice_commits(&mut alice);
    bob.apply(&commit);
    let before = state(&bob);
    assert_eq!(bob.process_raw(&commit).unwrap(), Processed::Duplicate);
    let foreign = other.send(b"elsewhere");
    assert!(matches!(bob.process(&foreign), Err(Error::WrongGroup)));
    assert_eq!(state(&bob), before);
    let m = alice.send(b"ok");
    assert_eq!(bob.receive(&m), b"ok");
}

#[test]
fn past_and_future_epochs() {
    let dir = TempDir::new();
    let (mut alice, mut bob) = pair(&dir, b"g");
    // A message from a future epoch: Alice moved on, Bob has not processed the commit.
    let commit = alice_commits(&mut alice);
    let future = alice.send(b"from epoch 2");
    let before = state(&bob);
    let err = bob.process(&future).unwrap_err();
    assert!(matches!(err, Error::Rejected(_)), "{err:?}");
    assert_eq!(state(&bob), before);
    bob.apply(&commit);
    assert_eq!(bob.receive(&future), b"from epoch 2");

    // Past epochs: kept for max_past_epochs (2) epochs, refused after.
    let old = alice.send(b"epoch 2, late");
    let very_old = alice.send(b"epoch 2, too late");
    for _ in 0..2 {
        let c = alice_commits(&mut alice);
        bob.apply(&c);
    }
    assert_eq!(bob.g().epoch(), 4);
    assert_eq!(bob.receive(&old), b"epoch 2, late");
    let c = alice_commits(&mut alice);
    bob.apply(&c);
    let before = state(&bob);
    let err = bob.process(&very_old).unwrap_err();
    assert!(matches!(err, Error::Rejected(_)), "{err:?}");
    assert_eq!(state(&bob), before);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn random_bytes_are_typed_errors(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        thread_local! {
            static PEERS: std::cell::RefCell<Option<(TempDir, Peer, Peer)>> = const { std::cell::RefCell::new(None) };
        }
        PEERS.with(|cell| {
            let mut cell = cell.borrow_mut();
            let (_, alice, bob) = cell.get_or_insert_with(|| {
                let dir = TempDir::new();
                let (a, b) = pair(&dir, b"g");
                (dir, a, b)
            });
            let before = state(bob);
            prop_assert!(bob.process(&bytes).is_err());
            // Also as a Welcome, and with a valid MlsMessage header in front.
            let mut framed = vec![0, 1, 0, 2];
            framed.extend_from_slice(&bytes);
            prop_assert!(bob.process(&framed).is_err());
            prop_assert!(block_on(Group::join(&mut alice.store, &bytes, config(), &checks())).is_err());
            prop_assert_eq!(state(bob), before);
            Ok(())
        })?;
    }
}

#[test]
fn an_old_copy_of_a_member_cannot_read_after_its_self_update() {
    let dir = TempDir::new();
    let (mut alice, mut bob) = pair(&dir, b"g");
    // The attacker copies Bob's database (a compromise of his device).
    let stolen = dir.0.join("stolen.db");
    bob.store.backup(&stolen).unwrap();
    let mut thief = Peer {
        path: stolen.clone(),
        store: eth_mls_core::Store::open(&stolen, &common::store_key()).unwrap(),
        group: None,
    };
    thief.group = Some(Group::load(&thief.store, bob.g().id()).unwrap());
    let m = alice.send(b"before the update");
    assert_eq!(thief.receive(&m), b"before the update");

    // Bob heals with a self-update.
    let out = bob.update();
    bob.merge_own();
    alice.apply(&out.commit);
    // The thief sees Bob's own commit but cannot decrypt it.
    let seen = thief.process(&out.commit);
    assert!(
        matches!(&seen, Ok(e) if e == &vec![Event::OwnMessage]) || seen.is_err(),
        "{seen:?}"
    );
    assert_eq!(thief.g().epoch(), 1);
    let m = alice.send(b"after the update");
    assert_eq!(bob.receive(&m), b"after the update");
    assert!(thief.process(&m).is_err());
    // Alice's next commit does not let the thief back in either.
    let c = alice_commits(&mut alice);
    bob.apply(&c);
    assert!(thief.process(&c).is_err());
    let m = alice.send(b"later");
    assert!(thief.process(&m).is_err());
}

#[test]
fn restart_between_every_step() {
    let dir = TempDir::new();
    let mut alice = Peer::new(&dir, identity(1));
    let mut bob = Peer::new(&dir, identity(2));
    let mut carol = Peer::new(&dir, identity(3));
    let all = |a: &mut Peer, b: &mut Peer, c: &mut Peer| {
        a.restart();
        b.restart();
        c.restart();
    };
    alice.create(b"g");
    let kps = [bob.key_package(), carol.key_package()];
    all(&mut alice, &mut bob, &mut carol);
    let out = alice.add(&kps);
    all(&mut alice, &mut bob, &mut carol);
    // The pending commit survived, with its messages.
    assert_eq!(
        alice.g().pending_commit(&alice.store).unwrap(),
        Some(out.clone())
    );
    alice.merge_own();
    all(&mut alice, &mut bob, &mut carol);
    bob.join(out.welcome.as_ref().unwrap()).unwrap();
    carol.join(out.welcome.as_ref().unwrap()).unwrap();
    all(&mut alice, &mut bob, &mut carol);
    assert_agree(&[&alice, &bob, &carol]);

    let mut sent = Vec::new();
    for i in 0..3u8 {
        sent.push(alice.send(&[i]));
        all(&mut alice, &mut bob, &mut carol);
    }
    for (i, m) in sent.iter().enumerate() {
        assert_eq!(bob.receive(m), [i as u8]);
        all(&mut alice, &mut bob, &mut carol);
        // Nothing is processed twice, even after a restart: the same bytes are a duplicate.
        assert_eq!(bob.process_raw(m).unwrap(), Processed::Duplicate);
    }

    // A received commit staged before a restart can be merged after it.
    let out = carol.update();
    all(&mut alice, &mut bob, &mut carol);
    let events = bob.process(&out.commit).unwrap();
    assert!(matches!(events.as_slice(), [Event::StagedCommit(_)]));
    all(&mut alice, &mut bob, &mut carol);
    let staged = bob.g().staged_commit().unwrap().unwrap();
    assert_eq!(staged.committer, carol.address());
    bob.group
        .as_mut()
        .unwrap()
        .merge_staged_commit(&mut bob.store)
        .unwrap();
    all(&mut alice, &mut bob, &mut carol);
    alice.apply(&out.commit);
    carol.merge_own();
    all(&mut alice, &mut bob, &mut carol);
    assert_agree(&[&alice, &bob, &carol]);
    let m = carol.send(b"after all that");
    all(&mut alice, &mut bob, &mut carol);
    assert_eq!(alice.receive(&m), b"after all that");
    assert_eq!(bob.receive(&m), b"after all that");
}

/// Alice's commit (raw openmls, in group `g`) adding a member whose credential is signed for a
/// contract account: EIP-191 does not recover to its address, only ERC-1271 can approve it.
fn contract_member_commit(alice: &Peer) -> Vec<u8> {
    let contract = bad_identity(9, Bad::OtherAccount);
    let kp = openmls::prelude::KeyPackageIn::tls_deserialize_exact(raw_key_package(&contract))
        .unwrap()
        .validate(
            eth_mls_crypto::Provider::new().crypto(),
            openmls::prelude::ProtocolVersion::Mls10,
        )
        .unwrap();
    let mut raw = openmls::prelude::MlsGroup::load(
        openmls_traits::OpenMlsProvider::storage(&alice.store.provider()),
        &openmls::prelude::GroupId::from_slice(b"g"),
    )
    .unwrap()
    .unwrap();
    let (commit, _, _) = raw
        .add_members(
            &alice.store.provider(),
            alice.store.identity().signer(),
            &[kp],
        )
        .unwrap();
    tls_codec::Serialize::tls_serialize_detached(&commit).unwrap()
}

/// An ERC-1271 verifier that never answers: the operation waits forever.
struct Hanging;

impl Erc1271Verifier for Hanging {
    fn is_valid_signature<'a>(
        &'a self,
        _: u64,
        _: Address,
        _: B256,
        _: &'a [u8],
    ) -> BoxFuture<'a, Result<bool, Erc1271Error>> {
        Box::pin(std::future::pending())
    }
}

fn poll_once<F: Future>(f: F) -> bool {
    let mut f = pin!(f);
    f.as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
        .is_ready()
}

#[test]
fn an_operation_dropped_mid_way_leaves_nothing_behind() {
    let dir = TempDir::new();
    let (mut alice, mut bob) = pair(&dir, b"g");
    // A commit adding a contract-wallet-like member whose credential needs ERC-1271.
    let commit = contract_member_commit(&alice);
    let before = state(&bob);
    {
        let group = bob.group.as_mut().unwrap();
        // The commit is decrypted and the credential check waits on the chain: the process
        // stops there (the future is dropped).
        assert!(!poll_once(group.process(
            &mut bob.store,
            &commit,
            &checks().with_erc1271(&Hanging)
        )));
    }
    // A crash at that point: the store reopens as before.
    let mut crashed = Peer {
        path: bob.path.clone(),
        store: eth_mls_core::Store::open(&bob.path, &common::store_key()).unwrap(),
        group: None,
    };
    crashed.group = Some(Group::load(&crashed.store, b"g").unwrap());
    assert_eq!(state(&crashed), before);
    drop(crashed);
    // Or the same process goes on: the group reloads, the half-done work is rolled back.
    let m = alice.send(b"after the interruption");
    assert_eq!(bob.receive(&m), b"after the interruption");
    assert_eq!(state(&bob), before);
}

/// An ERC-1271 verifier whose RPC endpoint fails (or, once `healthy`, approves).
struct Flaky {
    healthy: std::sync::atomic::AtomicBool,
}

impl Erc1271Verifier for Flaky {
    fn is_valid_signature<'a>(
        &'a self,
        _: u64,
        _: Address,
        _: B256,
        _: &'a [u8],
    ) -> BoxFuture<'a, Result<bool, Erc1271Error>> {
        let healthy = self.healthy.load(std::sync::atomic::Ordering::SeqCst);
        Box::pin(async move {
            if healthy {
                Ok(true)
            } else {
                Err(Erc1271Error::new("eth_call: 429 rate limit exceeded"))
            }
        })
    }
}

/// An RPC failure during an ERC-1271 check is not "signature invalid": the commit is neither
/// rejected nor accepted, the state is untouched, and the same commit goes through once the
/// endpoint answers.
#[test]
fn an_rpc_failure_is_no_verdict() {
    let dir = TempDir::new();
    let (alice, mut bob) = pair(&dir, b"g");
    // A member whose credential is signed for a contract account (EIP-191 does not recover
    // to its address): only ERC-1271 can approve it.
    let commit = contract_member_commit(&alice);
    let before = state(&bob);
    let verifier = Flaky {
        healthy: std::sync::atomic::AtomicBool::new(false),
    };
    let group = bob.group.as_mut().unwrap();
    let err = block_on(group.process(&mut bob.store, &commit, &checks().with_erc1271(&verifier)))
        .unwrap_err();
    assert!(matches!(err, Error::CheckUnavailable(_)), "{err:?}");
    assert_eq!(state(&bob), before);
    bob.restart();
    assert_eq!(state(&bob), before);
    verifier
        .healthy
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let group = bob.group.as_mut().unwrap();
    let events =
        block_on(group.process(&mut bob.store, &commit, &checks().with_erc1271(&verifier)))
            .unwrap()
            .into_events();
    assert!(matches!(events[0], Event::StagedCommit(_)), "{events:?}");
}

use openmls_traits::OpenMlsProvider as _;
use tls_codec::Deserialize as _;
