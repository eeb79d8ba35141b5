//! Two admins commit in the same epoch: exactly one registration wins on chain; the loser's
//! sequencer says `Lost`, it discards its commit, merges the winner's (judged like any other),
//! and rebuilds its change on the next epoch, where it wins. Nobody forks: everyone ends on the
//! same epoch and authenticator as the chain.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use alloy_primitives::keccak256;
use eth_mls::sequencer::{Action, Sequencer};
use eth_mls_chain::{AclChanges, CommitPolicy, Devnet};

/// Alice (0) or bob (1).
fn members(s: &mut common::Setup, i: usize) -> &mut common::Member {
    if i == 0 { &mut s.alice } else { &mut s.bob }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_admins_race_for_an_epoch() {
    let devnet = Devnet::start().unwrap();
    let d = devnet.deploy().await.unwrap();
    let mut s = common::setup(&devnet, &d, CommitPolicy::AdminsOnly, "race").await;
    s.contract.set_admin(s.bob.address(), true).await.unwrap();
    let bob_contract = s.bob.chain.group(s.contract.address());
    let (policy, address) = (s.policy, s.contract.address());

    // Both admins build a commit for epoch 2 and race to register it.
    let (group, store) = s.alice.group();
    let a = group.self_update(store).unwrap();
    let (group, store) = s.bob.group();
    let b = group.self_update(store).unwrap();
    let mut seqs = [Sequencer::new(1, 0), Sequencer::new(1, 0)];
    seqs[0].own_pending(keccak256(&a.commit).0);
    seqs[1].own_pending(keccak256(&b.commit).0);
    let (ra, rb) = tokio::join!(
        common::register(&s.contract, 2, &a, AclChanges::none()),
        common::register(&bob_contract, 2, &b, AclChanges::none())
    );
    assert!(
        ra.is_ok() != rb.is_ok(),
        "exactly one registration wins: {ra:?} {rb:?}"
    );
    let (winner, loser) = if ra.is_ok() { (0, 1) } else { (1, 0) };
    let outs = [a, b];
    let (reg, acl) = common::registration(&s.alice.chain, s.contract.address(), d.block, 2).await;
    for seq in &mut seqs {
        seq.on_registered(reg.clone(), outs[winner].commit.clone());
        seq.on_head(reg.block);
    }

    // The winner merges its own commit.
    assert_eq!(seqs[winner].poll(), Some(Action::Won { epoch: 2 }));
    let (group, store) = members(&mut s, winner).group();
    group.merge_pending_commit(store).unwrap();
    seqs[winner].merged(2, reg.commit_hash);
    // The loser discards its commit, merges the winner's, and rebuilds on epoch 2.
    assert_eq!(seqs[loser].poll(), Some(Action::Lost { epoch: 2 }));
    let (group, store) = members(&mut s, loser).group();
    group.discard_pending_commit(store).unwrap();
    let Some(Action::Process { bytes, .. }) = seqs[loser].poll() else {
        panic!("the winner's commit")
    };
    common::judge(group, store, &bytes, &reg, policy, &acl)
        .await
        .unwrap();
    seqs[loser].merged(2, reg.commit_hash);
    let retry = group.self_update(store).unwrap();
    seqs[loser].own_pending(keccak256(&retry.commit).0);
    let loser_contract = members(&mut s, loser).chain.group(address);
    common::register(&loser_contract, 3, &retry, AclChanges::none())
        .await
        .unwrap();
    let (reg3, acl3) = common::registration(&s.alice.chain, s.contract.address(), d.block, 3).await;
    for seq in &mut seqs {
        seq.on_registered(reg3.clone(), retry.commit.clone());
        seq.on_head(reg3.block);
    }
    assert_eq!(seqs[loser].poll(), Some(Action::Won { epoch: 3 }));
    let (group, store) = members(&mut s, loser).group();
    group.merge_pending_commit(store).unwrap();
    let Some(Action::Process { bytes, .. }) = seqs[winner].poll() else {
        panic!("the retried commit")
    };
    let (group, store) = members(&mut s, winner).group();
    common::judge(group, store, &bytes, &reg3, policy, &acl3)
        .await
        .unwrap();

    // Carol follows both epochs; everyone agrees with the chain.
    let (group, store) = s.carol.group();
    common::judge(group, store, &outs[winner].commit, &reg, s.policy, &acl)
        .await
        .unwrap();
    common::judge(group, store, &retry.commit, &reg3, s.policy, &acl3)
        .await
        .unwrap();
    assert_eq!(s.contract.current_epoch().await.unwrap().epoch, 3);
    let auth = s.alice.group.as_ref().unwrap().epoch_authenticator();
    for m in [&s.bob, &s.carol] {
        let g = m.group.as_ref().unwrap();
        assert_eq!((g.epoch(), g.epoch_authenticator()), (3, auth.clone()));
    }
}
