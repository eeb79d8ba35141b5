//! Issue 30: the client on a chain that misbehaves — reorgs deeper than the confirmations
//! (one dropping a registration nobody merged, one dropping a commit the members merged), and
//! a provider with latency, 429 bursts, hangs and `eth_getLogs` caps in front of an account
//! in several groups (one log query per sync for all of them); a client woken by a WebSocket
//! endpoint instead of polling.

use std::time::Duration;

use eth_mls::ClientEvent;
use eth_mls_chain::CommitPolicy;
use eth_mls_chain::alloy::primitives::B256;
use eth_mls_chain::alloy::providers::Provider;
use eth_mls_chain::faults::{Burst, FaultConfig, FaultProxy};

use super::{
    World, forked, form_group, got_message, merged_at, stalled, trio, until, until_mining,
};

/// The devnet's head.
async fn head(w: &World) -> u64 {
    w.devnet
        .chain(0)
        .await
        .unwrap()
        .provider()
        .get_block_number()
        .await
        .unwrap()
}

/// Drops the blocks after `keep` and everything in them (anvil puts nothing back in the pool).
async fn rollback_to(w: &World, keep: u64) {
    crate::common::rollback(&w.devnet, head(w).await - keep).await;
    assert_eq!(head(w).await, keep);
}

fn reorganized(events: &[ClientEvent], group: eth_mls_siwe::Address) -> Option<&Vec<u64>> {
    events.iter().find_map(|e| match e {
        ClientEvent::ChainReorganized {
            group: g, dropped, ..
        } if *g == group => Some(dropped),
        _ => None,
    })
}

/// Carol's garbage registration stalls alice and bob; a reorg deeper than their confirmations
/// drops its block. Both notice (the block they last read is gone), read the group again,
/// are no longer stalled, and merge alice's next update without any recovery. Before issue 30
/// nothing noticed: both stayed stalled on a registration the chain no longer had.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reorg_dropping_a_registration_nobody_merged_unstalls_the_group() {
    let w = World::new("client-reorg-unmerged").await;
    let (mut alice, mut bob, _carol, group, mut seen) =
        trio(&w, b"reorg-1", CommitPolicy::AnyMember).await;
    let start = alice.epoch(group).unwrap();
    let before = head(&w).await;
    w.devnet
        .chain(3)
        .await
        .unwrap()
        .group(group)
        .commit(
            start + 1,
            b"garbage",
            B256::ZERO,
            &eth_mls_chain::AclChanges::none(),
        )
        .await
        .unwrap();
    until(&w.net, &mut [&mut alice, &mut bob], &mut seen[..2], |s| {
        s.iter().all(|e| stalled(e, group))
    })
    .await;
    rollback_to(&w, before).await;
    until(&w.net, &mut [&mut alice, &mut bob], &mut seen[..2], |s| {
        s.iter().all(|e| reorganized(e, group).is_some())
    })
    .await;
    for (m, events) in [&alice, &bob].into_iter().zip(&seen[..2]) {
        assert_eq!(
            reorganized(events, group),
            Some(&Vec::new()),
            "nothing merged was lost"
        );
        assert_eq!(m.stalled(group).unwrap(), None);
        assert!(!forked(events));
    }
    alice.update(group).await.unwrap();
    until(&w.net, &mut [&mut alice, &mut bob], &mut seen[..2], |s| {
        s.iter().all(|e| merged_at(e, group, start + 1))
    })
    .await;
    assert_eq!(
        alice.epoch_authenticator(group).unwrap(),
        bob.epoch_authenticator(group).unwrap()
    );
}

/// Alice's update is registered and merged by alice and bob; then a reorg deeper than their
/// confirmations drops its block (and the transaction with it). Both report the dropped epoch;
/// alice registers her commit again (its bytes kept for this), so the chain and both members
/// agree again without a fork, and the group goes on. Before issue 30 the members stayed an
/// epoch ahead of the chain: every later commit was refused by the contract.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reorg_dropping_a_merged_commit_is_reported_and_registered_again() {
    let w = World::new("client-reorg-merged").await;
    let mut alice = w.client(1, w.net.add_node("alice")).await;
    let mut bob = w.client(2, w.net.add_node("bob")).await;
    bob.publish_keys().await.unwrap();
    let group = alice
        .create_group(b"reorg-2", CommitPolicy::AdminsOnly)
        .await
        .unwrap();
    let mut seen = vec![Vec::new(), Vec::new()];
    form_group(&w.net, &mut [&mut alice, &mut bob], &mut seen, group).await;
    let start = alice.epoch(group).unwrap();
    let before = head(&w).await;
    alice.update(group).await.unwrap();
    until(&w.net, &mut [&mut alice, &mut bob], &mut seen, |s| {
        s.iter().all(|e| merged_at(e, group, start + 1))
    })
    .await;
    rollback_to(&w, before).await;
    assert_eq!(alice.chain_epoch(group).await.unwrap(), start);
    // Bob first: he sees the commit gone before alice registers it again.
    bob.sync().await.unwrap();
    seen[1].extend(bob.drain_events());
    alice.sync().await.unwrap();
    seen[0].extend(alice.drain_events());
    for events in &seen {
        assert_eq!(
            reorganized(events, group),
            Some(&vec![start + 1]),
            "{events:#?}"
        );
    }
    // Alice's next syncs register the dropped commit again.
    until(&w.net, &mut [&mut alice, &mut bob], &mut seen, |_| true).await;
    assert_eq!(alice.chain_epoch(group).await.unwrap(), start + 1);
    // Nobody forked; the group goes on: a message, another commit, merged by both.
    alice.send(group, b"after the reorg").await.unwrap();
    let a = alice.address();
    alice.update(group).await.unwrap();
    until(&w.net, &mut [&mut alice, &mut bob], &mut seen, |s| {
        got_message(&s[1], a, b"after the reorg")
            && s.iter().all(|e| merged_at(e, group, start + 2))
    })
    .await;
    for events in &seen {
        assert!(!forked(events), "{events:#?}");
    }
    assert_eq!(
        alice.epoch_authenticator(group).unwrap(),
        bob.epoch_authenticator(group).unwrap()
    );
}

/// Alice, in four groups, behind a provider with latency, 429 bursts, hung requests (past her
/// 400 ms request timeout) and a 50-block, 20-result `eth_getLogs` cap: the groups are created,
/// bob joins one, commits and a message go through; then one sync and one opening of her
/// client each make a single `eth_getLogs` for all four groups.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_log_query_per_sync_for_all_groups_through_a_faulty_provider() {
    let w = World::new("client-faulty-rpc").await;
    let proxy = FaultProxy::start(
        &w.devnet.rpc_url(),
        FaultConfig {
            latency: Duration::from_millis(2),
            rate_limit: Some(Burst {
                every: 13,
                length: 3,
            }),
            hang: Some(Burst {
                every: 29,
                length: 1,
            }),
            hang_for: Duration::from_secs(1),
            max_log_range: Some(50),
            max_log_results: Some(20),
            ..FaultConfig::default()
        },
    )
    .await
    .unwrap();
    let rpc = eth_mls_chain::RpcConfig {
        request_timeout: Duration::from_millis(400),
        initial_backoff: Duration::from_millis(5),
        max_backoff: Duration::from_millis(50),
        ..eth_mls_chain::RpcConfig::default()
    };
    let chain = eth_mls_chain::Chain::connect_with(&proxy.url(), w.devnet.signer(1), &rpc)
        .await
        .unwrap();
    let mut alice = w.client_with(1, chain, w.net.add_node("alice")).await;
    let mut bob = w.client(2, w.net.add_node("bob")).await;
    bob.publish_keys().await.unwrap();
    let mut groups = Vec::new();
    for i in 0..4u8 {
        groups.push(
            alice
                .create_group(&[b'g', i], CommitPolicy::AdminsOnly)
                .await
                .unwrap(),
        );
    }
    let mut seen = vec![Vec::new(), Vec::new()];
    form_group(&w.net, &mut [&mut alice, &mut bob], &mut seen, groups[0]).await;
    for g in &groups {
        alice.update(*g).await.unwrap();
    }
    alice.send(groups[0], b"through the faults").await.unwrap();
    let a = alice.address();
    until(&w.net, &mut [&mut alice, &mut bob], &mut seen, |s| {
        got_message(&s[1], a, b"through the faults")
    })
    .await;
    let stats = proxy.stats();
    assert!(stats.rate_limited > 0 && stats.hung > 0, "{stats:?}");
    assert_eq!(
        seen[1]
            .iter()
            .filter(
                |e| matches!(e, ClientEvent::Message { data, .. } if data == b"through the faults")
            )
            .count(),
        1,
        "delivered exactly once"
    );

    // Sixty empty blocks later, one sync: one log query covers the four groups (the range
    // fits the provider's cap once narrowed).
    w.mine(60).await;
    alice.sync().await.unwrap();
    proxy.reset_stats();
    w.mine(10).await;
    alice.sync().await.unwrap();
    assert_eq!(
        proxy.stats().answered("eth_getLogs"),
        1,
        "{:?}",
        proxy.stats()
    );
    drop(alice);
    proxy.reset_stats();
    let chain = eth_mls_chain::Chain::connect_with(&proxy.url(), w.devnet.signer(1), &rpc)
        .await
        .unwrap();
    w.mine(5).await;
    let alice = w.client_with(1, chain, w.net.add_node("alice 2")).await;
    assert_eq!(
        proxy.stats().answered("eth_getLogs"),
        1,
        "opening: {:?}",
        proxy.stats()
    );
    for g in &groups {
        assert!(alice.epoch(*g).unwrap() >= 1);
    }
}

/// Switches the devnet's automatic mining on or off.
async fn automine(w: &World, on: bool) {
    let _: serde_json::Value = w
        .devnet
        .chain(0)
        .await
        .unwrap()
        .provider()
        .raw_request("evm_setAutomine".into(), (on,))
        .await
        .unwrap();
}

/// Alice's registration is in the node's pool, not mined, when her process dies. The restarted
/// client sends the same operation in the same nonce with higher fees (a replacement), so one
/// transaction is mined for it. Before (seen on 84cb579): the restarted client sent a new
/// transaction, whose gas estimate — on the pool's state, holding her first one — reverted
/// with `EpochOutOfOrder`; the intent failed and dropped its commit, and when the pooled
/// registration was mined she could not process her own commit: a fork.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registration_in_flight_at_a_kill_is_replaced_not_sent_again() {
    let w = World::new("client-kill-in-flight").await;
    let mut alice = w.client(1, w.net.add_node("alice")).await;
    let mut bob = w.client(2, w.net.add_node("bob")).await;
    bob.publish_keys().await.unwrap();
    let group = alice
        .create_group(b"in flight", CommitPolicy::AdminsOnly)
        .await
        .unwrap();
    let mut seen = vec![Vec::new(), Vec::new()];
    form_group(&w.net, &mut [&mut alice, &mut bob], &mut seen, group).await;
    let a = alice.address();
    let provider = w.devnet.chain(0).await.unwrap().provider().clone();
    let nonce = |p: eth_mls_chain::alloy::providers::DynProvider| async move {
        p.get_transaction_count(a.into_array().into())
            .await
            .unwrap()
    };
    let before = nonce(provider.clone()).await;
    let epoch = alice.epoch(group).unwrap();

    // The registration goes into the pool; nothing is mined; the process dies waiting.
    automine(&w, false).await;
    alice.update(group).await.unwrap();
    let died = tokio::time::timeout(Duration::from_secs(3), async {
        loop {
            alice.sync().await.unwrap();
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(died.is_err(), "nothing can be mined");
    drop(alice);
    let pool: serde_json::Value = provider
        .raw_request("txpool_status".into(), ())
        .await
        .unwrap();
    assert_eq!(pool["pending"], "0x1", "the registration waits in the pool");

    // The restarted client acts on the update while it is still unmined; a second later,
    // mining resumes.
    let mut alice = w.client(1, w.net.add_node("alice again")).await;
    let miner = {
        let provider = provider.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let _: Result<serde_json::Value, _> = provider
                .raw_request("evm_setAutomine".into(), (true,))
                .await;
            loop {
                let _: Result<serde_json::Value, _> =
                    provider.raw_request("evm_mine".into(), ()).await;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
    };
    until(&w.net, &mut [&mut alice, &mut bob], &mut seen, |s| {
        merged_at(&s[1], group, epoch + 1)
    })
    .await;
    // A second registration, had one been sent, would be mined by now.
    w.mine(2).await;
    alice.sync().await.unwrap();
    miner.abort();
    assert_eq!(
        nonce(provider.clone()).await,
        before + 1,
        "one transaction for one registration"
    );
    assert_eq!(alice.epoch(group).unwrap(), epoch + 1, "{:#?}", seen[0]);
}

/// With three confirmations, a reorg of one block drops alice's registration before anyone
/// acted on it: nothing was merged, nothing is reported, her registration is sent again and
/// merged by both once confirmed — no fork.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reorg_within_the_confirmations_merges_nothing_and_reports_nothing() {
    let mut w = World::new("client-reorg-confirmed").await;
    w.confirmations = 3;
    let mut alice = w.client(1, w.net.add_node("alice")).await;
    let mut bob = w.client(2, w.net.add_node("bob")).await;
    let b = bob.address();
    bob.publish_keys().await.unwrap();
    let group = alice
        .create_group(b"reorg within", CommitPolicy::AdminsOnly)
        .await
        .unwrap();
    alice.invite(group, b, "").await.unwrap();
    let mut seen = vec![Vec::new(), Vec::new()];
    accept_mining(&w, &mut alice, &mut bob, &mut seen, group).await;

    let epoch = alice.epoch(group).unwrap();
    let before = head(&w).await;
    alice.update(group).await.unwrap();
    alice.sync().await.unwrap();
    bob.sync().await.unwrap();
    assert_eq!(head(&w).await, before + 1, "registered in one block");
    rollback_to(&w, before).await;
    for _ in 0..3 {
        w.net.run_until_idle();
        for (c, s) in [&mut alice, &mut bob].into_iter().zip(seen.iter_mut()) {
            c.sync().await.unwrap();
            s.extend(c.drain_events());
        }
    }
    assert_eq!(alice.epoch(group).unwrap(), epoch);
    assert_eq!(bob.epoch(group).unwrap(), epoch);
    until_mining(&w, &mut [&mut alice, &mut bob], &mut seen, |s| {
        s.iter().all(|e| merged_at(e, group, epoch + 1))
    })
    .await;
    assert!(
        seen.iter()
            .all(|s| reorganized(s, group).is_none() && !forked(s)),
        "{seen:#?}"
    );
    assert_eq!(
        alice.epoch_authenticator(group).unwrap(),
        bob.epoch_authenticator(group).unwrap()
    );
}

/// Over a WebSocket endpoint bob's client reads the chain when the node reports a log of his
/// groups (`eth_subscribe`) and once such a log has its confirmation, with no timer in between
/// (ten minutes here): he takes an invitation, joins, merges alice's update and reads her
/// message, one confirmation deep. His socket is cut (he reconnects and still merges the next
/// commit), then the endpoint floods him with every notification repeated every 2 ms: he
/// reads the chain at most once per poll interval (before the floor: once per notification).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_websocket_the_node_wakes_the_client() {
    use eth_mls_chain::faults::WsFaultProxy;
    let mut w = World::new("client-ws").await;
    w.confirmations = 1;
    let mut config = w.config();
    config.pushed_poll_interval = Duration::from_secs(600);
    config.poll_interval = Duration::from_millis(100);
    let proxy = WsFaultProxy::start(&w.devnet.ws_url()).await.unwrap();
    let chain = eth_mls_chain::Chain::connect(&proxy.url(), w.devnet.signer(2))
        .await
        .unwrap();
    assert!(chain.is_pubsub());
    let mut alice = w.client(1, w.net.add_node("alice")).await;
    let mut bob = w.open_with(2, chain, w.net.add_node("bob"), config).await;
    bob.publish_keys().await.unwrap();
    let group = alice
        .create_group(b"pushed", CommitPolicy::AdminsOnly)
        .await
        .unwrap();
    alice.invite(group, bob.address(), "").await.unwrap();
    let mut seen = vec![Vec::new(), Vec::new()];
    accept_mining(&w, &mut alice, &mut bob, &mut seen, group).await;
    let epoch = alice.epoch(group).unwrap();
    alice.update(group).await.unwrap();
    until_mining(&w, &mut [&mut alice, &mut bob], &mut seen, |s| {
        s.iter().all(|e| merged_at(e, group, epoch + 1))
    })
    .await;
    alice.send(group, b"over websocket").await.unwrap();
    let a = alice.address();
    until_mining(&w, &mut [&mut alice, &mut bob], &mut seen, |s| {
        got_message(&s[1], a, b"over websocket")
    })
    .await;
    assert!(proxy.notifications() > 0, "woken by notifications");

    // The socket is cut: the connection comes back and the next commit is merged.
    proxy.cut();
    alice.update(group).await.unwrap();
    until_mining(&w, &mut [&mut alice, &mut bob], &mut seen, |s| {
        s.iter().all(|e| merged_at(e, group, epoch + 2))
    })
    .await;

    // A flood: every notification again every 2 ms.
    proxy.flood(Some(Duration::from_millis(2)));
    alice.update(group).await.unwrap();
    until_mining(&w, &mut [&mut alice, &mut bob], &mut seen, |s| {
        s.iter().all(|e| merged_at(e, group, epoch + 3))
    })
    .await;
    let (notes, reads) = (proxy.notifications(), proxy.requests());
    let start = std::time::Instant::now();
    while start.elapsed() < Duration::from_secs(2) {
        bob.next_event(Duration::from_millis(500)).await.unwrap();
    }
    let elapsed = start.elapsed().as_millis() as u64;
    let (notes, reads) = (proxy.notifications() - notes, proxy.requests() - reads);
    assert!(notes > 100, "the endpoint flooded ({notes} notifications)");
    // A read that finds no new block is two requests (the head, the last block's hash).
    assert!(
        reads <= 2 * (elapsed / 100 + 2),
        "{reads} requests in {elapsed} ms under {notes} notifications: one read per poll \
         interval at most"
    );
    assert_eq!(
        alice.epoch_authenticator(group).unwrap(),
        bob.epoch_authenticator(group).unwrap()
    );
}

/// Bob takes alice's invitation to `group` and joins, one block mined per round.
async fn accept_mining(
    w: &World,
    alice: &mut super::C,
    bob: &mut super::C,
    seen: &mut [Vec<ClientEvent>],
    group: eth_mls_siwe::Address,
) {
    until_mining(w, &mut [&mut *alice, &mut *bob], seen, |s| {
        super::invitation(&s[1]).is_some()
    })
    .await;
    bob.accept(super::invitation(&seen[1]).unwrap())
        .await
        .unwrap();
    until_mining(w, &mut [alice, bob], seen, |s| super::joined(&s[1], group)).await;
}
