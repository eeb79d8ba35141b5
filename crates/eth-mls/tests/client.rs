//! The `Client` end to end on anvil and the in-memory network: alice creates a group and
//! invites bob and carol (the seven steps, driven by the clients themselves), messages flow
//! both ways, bob updates his keys, carol is removed and reads nothing after, and bob's
//! process restarts from its store and goes on.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod adversary;
#[path = "client/chain.rs"]
mod chain;
mod common;

use std::sync::Arc;
use std::time::Duration;

use eth_mls::{Client, ClientConfig, ClientEvent};
use eth_mls_chain::{ChainChannel, CommitPolicy, Deployment, Devnet};
use eth_mls_core::{EthereumSigner, LocalEthereumSigner, StoreKey};
use eth_mls_siwe::Address;
use eth_mls_transport::{DeliveryService, Faults, MemoryNetwork, MemoryNode, Redundant};

type C = Client<MemoryNode>;

struct World {
    devnet: Devnet,
    deployment: Deployment,
    net: MemoryNetwork,
    dir: std::path::PathBuf,
    /// Blocks a client waits on top of a registration before it acts on it.
    confirmations: u64,
    /// Welcomes above this size go by hash (the client's default when `None`).
    inline_welcome_limit: Option<usize>,
}

impl World {
    async fn new(tag: &str) -> Self {
        let devnet = Devnet::start().unwrap();
        let deployment = devnet.deploy().await.unwrap();
        Self {
            devnet,
            deployment,
            net: MemoryNetwork::new(7, Faults::NONE),
            dir: common::dir(tag),
            confirmations: 0,
            inline_welcome_limit: None,
        }
    }

    fn config(&self) -> ClientConfig {
        let mut c = ClientConfig::new(self.deployment, common::DOMAIN);
        c.poll_interval = Duration::from_millis(20);
        c.min_republish_interval = Duration::ZERO;
        c.confirmations = self.confirmations;
        if let Some(limit) = self.inline_welcome_limit {
            c.inline_welcome_limit = limit;
        }
        c
    }

    /// Mines `n` empty blocks on the devnet.
    async fn mine(&self, n: u64) {
        use eth_mls_chain::alloy::providers::Provider;
        let chain = self.devnet.chain(0).await.unwrap();
        for _ in 0..n {
            let _: serde_json::Value = chain
                .provider()
                .raw_request("evm_mine".into(), ())
                .await
                .unwrap();
        }
    }

    /// The client of anvil account `index` (its store in the world's directory).
    async fn client(&self, index: usize, node: MemoryNode) -> C {
        let chain = self.devnet.chain(index).await.unwrap();
        self.client_with(index, chain, node).await
    }

    /// The client of anvil account `index` over both the network and the chain channel.
    async fn redundant_client(
        &self,
        index: usize,
        node: MemoryNode,
    ) -> Client<Redundant<MemoryNode, ChainChannel>> {
        let chain = self.devnet.chain(index).await.unwrap();
        let channel = ChainChannel::new(chain.clone(), self.deployment.erc7627, common::fast());
        self.client_with(index, chain, Redundant::new(node, channel))
            .await
    }

    /// The client of anvil account `index` with `config`.
    async fn client_configured(&self, index: usize, node: MemoryNode, config: ClientConfig) -> C {
        let chain = self.devnet.chain(index).await.unwrap();
        self.open_with(index, chain, node, config).await
    }

    async fn client_with<D: DeliveryService + 'static>(
        &self,
        index: usize,
        chain: eth_mls_chain::Chain,
        delivery: D,
    ) -> Client<D> {
        self.open_with(index, chain, delivery, self.config()).await
    }

    async fn open_with<D: DeliveryService + 'static>(
        &self,
        index: usize,
        chain: eth_mls_chain::Chain,
        delivery: D,
        config: ClientConfig,
    ) -> Client<D> {
        let key = self.devnet.signer(index).unwrap().to_bytes();
        let signer: Arc<dyn EthereumSigner> =
            Arc::new(LocalEthereumSigner::from_bytes(key.as_slice()).unwrap());
        Client::open(
            signer,
            chain,
            delivery,
            self.dir.join(format!("client-{index}.db")),
            &StoreKey::raw([index as u8; 32]),
            config,
        )
        .await
        .unwrap()
    }
}

/// Syncs `clients` (network delivered between rounds), mining one block per round, until
/// `done` holds; fails after 200 rounds naming what was seen.
async fn until_mining(
    w: &World,
    clients: &mut [&mut C],
    seen: &mut [Vec<ClientEvent>],
    done: impl Fn(&[Vec<ClientEvent>]) -> bool,
) {
    for _ in 0..200 {
        w.net.run_until_idle();
        for (c, s) in clients.iter_mut().zip(seen.iter_mut()) {
            c.sync().await.unwrap();
            s.extend(c.drain_events());
        }
        if done(seen) {
            return;
        }
        w.mine(1).await;
    }
    panic!("never done: {seen:#?}");
}

/// Runs every client (network delivered between rounds) until `done` holds for the events
/// gathered so far, or fails after 60 s naming what was seen.
async fn until<D: DeliveryService + 'static>(
    net: &MemoryNetwork,
    clients: &mut [&mut Client<D>],
    seen: &mut [Vec<ClientEvent>],
    done: impl Fn(&[Vec<ClientEvent>]) -> bool,
) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        net.run_until_idle();
        for (c, s) in clients.iter_mut().zip(seen.iter_mut()) {
            c.sync().await.unwrap();
            s.extend(c.drain_events());
        }
        if done(seen) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out; events so far: {seen:#?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn got_message(events: &[ClientEvent], from: Address, text: &[u8]) -> bool {
    events
        .iter()
        .any(|e| matches!(e, ClientEvent::Message { sender, data, .. } if *sender == from && data == text))
}

fn invitation(events: &[ClientEvent]) -> Option<[u8; 16]> {
    events.iter().find_map(|e| match e {
        ClientEvent::InvitationReceived { request_id, .. } => Some(*request_id),
        _ => None,
    })
}

fn joined(events: &[ClientEvent], group: Address) -> bool {
    events
        .iter()
        .any(|e| matches!(e, ClientEvent::Joined { group: g, .. } if *g == group))
}

/// `clients[0]` invites every other client into `group`; each accepts; returns once all
/// joined and everybody synced once more.
async fn form_group<D: DeliveryService + 'static>(
    net: &MemoryNetwork,
    clients: &mut [&mut Client<D>],
    seen: &mut [Vec<ClientEvent>],
    group: Address,
) {
    let invitees: Vec<Address> = clients[1..].iter().map(|c| c.address()).collect();
    for invitee in invitees {
        clients[0].invite(group, invitee, "").await.unwrap();
    }
    until(net, clients, seen, |s| {
        s[1..].iter().all(|e| invitation(e).is_some())
    })
    .await;
    for (c, s) in clients[1..].iter_mut().zip(&seen[1..]) {
        c.accept(invitation(s).unwrap()).await.unwrap();
    }
    until(net, clients, seen, |s| {
        s[1..].iter().all(|e| joined(e, group))
    })
    .await;
    until(net, clients, seen, |_| true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_clients_invite_chat_update_remove_restart() {
    let w = World::new("client").await;
    let mut alice = w.client(1, w.net.add_node("alice")).await;
    let mut bob = w.client(2, w.net.add_node("bob")).await;
    let mut carol = w.client(3, w.net.add_node("carol")).await;
    let (a, b, c) = (alice.address(), bob.address(), carol.address());
    for client in [&mut alice, &mut bob, &mut carol] {
        client.publish_keys().await.unwrap();
    }
    let group = alice
        .create_group(b"client test", CommitPolicy::AdminsOnly)
        .await
        .unwrap();
    assert_eq!(alice.members(group).unwrap(), vec![a]);

    // Invitations: bob and carol see them, accept, and join through the chain-checked path.
    alice.invite(group, b, "hi bob").await.unwrap();
    alice.invite(group, c, "hi carol").await.unwrap();
    let mut seen = vec![Vec::new(), Vec::new(), Vec::new()];
    until(
        &w.net,
        &mut [&mut alice, &mut bob, &mut carol],
        &mut seen,
        |s| invitation(&s[1]).is_some() && invitation(&s[2]).is_some(),
    )
    .await;
    assert!(seen[1].iter().any(|e| matches!(e,
        ClientEvent::InvitationReceived { from, group: g, note, .. }
            if *from == a && *g == group && note == "hi bob")));
    let bob_inv = invitation(&seen[1]).unwrap();
    let carol_inv = invitation(&seen[2]).unwrap();
    assert_eq!(bob.invitations().unwrap().len(), 1);
    bob.accept(bob_inv).await.unwrap();
    carol.accept(carol_inv).await.unwrap();
    // Accepting twice is refused.
    assert!(matches!(
        bob.accept(bob_inv).await,
        Err(eth_mls::Error::UnknownRequest)
    ));
    until(
        &w.net,
        &mut [&mut alice, &mut bob, &mut carol],
        &mut seen,
        |s| joined(&s[1], group) && joined(&s[2], group),
    )
    .await;
    // Every member agrees, and the member list is the on-chain ACL.
    until(
        &w.net,
        &mut [&mut alice, &mut bob, &mut carol],
        &mut seen,
        |_| true,
    )
    .await;
    for m in [&bob, &carol] {
        assert_eq!(m.epoch(group).unwrap(), alice.epoch(group).unwrap());
        assert_eq!(
            m.epoch_authenticator(group).unwrap(),
            alice.epoch_authenticator(group).unwrap()
        );
    }
    let mut members = alice.members(group).unwrap();
    members.sort();
    let mut expected = vec![a, b, c];
    expected.sort();
    assert_eq!(members, expected);
    let acl: Vec<Address> = alice.acl(group).unwrap().members.into_iter().collect();
    assert_eq!(acl, expected);
    assert!(
        seen[0]
            .iter()
            .any(|e| matches!(e, ClientEvent::MemberAdded { member, .. } if *member == b))
    );

    // Messages both ways.
    alice.send(group, b"hello all").await.unwrap();
    bob.send(group, b"hi alice").await.unwrap();
    until(
        &w.net,
        &mut [&mut alice, &mut bob, &mut carol],
        &mut seen,
        |s| {
            got_message(&s[1], a, b"hello all")
                && got_message(&s[2], a, b"hello all")
                && got_message(&s[0], b, b"hi alice")
                && got_message(&s[2], b, b"hi alice")
        },
    )
    .await;

    // Bob (not an admin) asks alice to commit his update.
    let before = alice.epoch(group).unwrap();
    bob.request_update(group, a).await.unwrap();
    until(
        &w.net,
        &mut [&mut alice, &mut bob, &mut carol],
        &mut seen,
        |s| {
            s[1].iter().any(
                |e| matches!(e, ClientEvent::CommitMerged { epoch, .. } if *epoch == before + 1),
            ) && s[2].iter().any(
                |e| matches!(e, ClientEvent::CommitMerged { epoch, .. } if *epoch == before + 1),
            )
        },
    )
    .await;
    assert!(seen[0].iter().any(|e| matches!(e,
        ClientEvent::RequestReceived { from, kind: eth_mls::wire::ChangeKind::Update, .. } if *from == b)));

    // Alice removes carol; carol learns it; what alice sends next carol cannot read.
    alice.remove(group, &[c]).await.unwrap();
    until(
        &w.net,
        &mut [&mut alice, &mut bob, &mut carol],
        &mut seen,
        |s| {
            s[2].iter()
                .any(|e| matches!(e, ClientEvent::Removed { .. }))
                && s[1]
                    .iter()
                    .any(|e| matches!(e, ClientEvent::MemberRemoved { member, .. } if *member == c))
        },
    )
    .await;
    assert!(!carol.is_active(group));
    alice.send(group, b"carol is gone").await.unwrap();

    // Bob restarts from his store and reads it.
    drop(bob);
    let mut bob = w.client(2, w.net.add_node("bob again")).await;
    assert_eq!(bob.epoch(group).unwrap(), alice.epoch(group).unwrap());
    until(
        &w.net,
        &mut [&mut alice, &mut bob, &mut carol],
        &mut seen,
        |s| got_message(&s[1], a, b"carol is gone"),
    )
    .await;
    assert!(!got_message(&seen[2], a, b"carol is gone"));
    let mut members = bob.members(group).unwrap();
    members.sort();
    let mut expected = vec![a, b];
    expected.sort();
    assert_eq!(members, expected);
}

/// Two members commit in the same epochs (concurrently, policy AnyMember): each epoch is won
/// by exactly one registration, the loser's intent is rebuilt on the next epoch, both updates
/// land, and nobody forks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_commits_both_land_and_nobody_forks() {
    let w = World::new("client-race").await;
    let mut alice = w.client(1, w.net.add_node("alice")).await;
    let mut bob = w.client(2, w.net.add_node("bob")).await;
    let (a, b) = (alice.address(), bob.address());
    bob.publish_keys().await.unwrap();
    let group = alice
        .create_group(b"race", CommitPolicy::AnyMember)
        .await
        .unwrap();
    let mut seen = vec![Vec::new(), Vec::new()];
    form_group(&w.net, &mut [&mut alice, &mut bob], &mut seen, group).await;
    let start = alice.epoch(group).unwrap();
    let rounds = 4;
    for _ in 0..rounds {
        alice.update(group).await.unwrap();
        bob.update(group).await.unwrap();
        // Both build and register at once.
        let (ra, rb) = tokio::join!(alice.sync(), bob.sync());
        ra.unwrap();
        rb.unwrap();
    }
    let target = start + 2 * rounds;
    until(&w.net, &mut [&mut alice, &mut bob], &mut seen, |s| {
        s.iter().all(|events| {
            events
                .iter()
                .any(|e| matches!(e, ClientEvent::CommitMerged { epoch, .. } if *epoch == target))
        })
    })
    .await;
    for events in &seen {
        assert!(
            !events.iter().any(|e| matches!(
                e,
                ClientEvent::ForkDetected { .. } | ClientEvent::IntentFailed { .. }
            )),
            "{events:#?}"
        );
        // Every epoch merged once, by one committer; each member's updates all landed.
        let merged: Vec<(u64, Address)> = events
            .iter()
            .filter_map(|e| match e {
                ClientEvent::CommitMerged {
                    epoch, committer, ..
                } if *epoch > start => Some((*epoch, *committer)),
                _ => None,
            })
            .collect();
        assert_eq!(
            merged.iter().map(|(e, _)| *e).collect::<Vec<_>>(),
            (start + 1..=target).collect::<Vec<_>>()
        );
        assert_eq!(
            merged.iter().filter(|(_, c)| *c == a).count(),
            rounds as usize
        );
        assert_eq!(
            merged.iter().filter(|(_, c)| *c == b).count(),
            rounds as usize
        );
    }
    let lost = seen
        .iter()
        .flatten()
        .filter(|e| matches!(e, ClientEvent::EpochLost { .. }))
        .count();
    eprintln!("epochs lost to the other committer: {lost}");
    assert!(lost >= 1, "the commits never raced");
    assert_eq!(alice.epoch(group).unwrap(), target);
    assert_eq!(bob.epoch(group).unwrap(), target);
    assert_eq!(
        alice.epoch_authenticator(group).unwrap(),
        bob.epoch_authenticator(group).unwrap()
    );
}

/// Copies a client's store files (the database and its WAL) from `from` to `to`.
fn copy_store(dir: &std::path::Path, index: usize, from: &str, to: &str) {
    for suffix in ["", "-wal", "-shm"] {
        let src = dir.join(format!("client-{index}.db{suffix}{from}"));
        let dst = dir.join(format!("client-{index}.db{suffix}{to}"));
        let _ = std::fs::remove_file(&dst);
        if src.exists() {
            std::fs::copy(&src, &dst).unwrap();
        }
    }
}

/// A fork end to end: bob's device is restored from a backup taken before his own update, so
/// he cannot process the commit the chain registered for the next epoch (it is his own, and
/// its path secrets are gone). His client reports the fork and asks the owner over the 1:1
/// channel to re-add him; alice's client verifies the request and commits, in one registered
/// commit by value, the removal of his old leaf and the add of his new one; carol processes it
/// from the chain alone; bob joins from the Welcome and the three agree and talk again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forked_member_is_re_added_by_the_owner() {
    let w = World::new("client-fork").await;
    let mut alice = w.client(1, w.net.add_node("alice")).await;
    let mut bob = w.client(2, w.net.add_node("bob")).await;
    let mut carol = w.client(3, w.net.add_node("carol")).await;
    let (a, b, c) = (alice.address(), bob.address(), carol.address());
    bob.publish_keys().await.unwrap();
    carol.publish_keys().await.unwrap();
    let group = alice
        .create_group(b"fork", CommitPolicy::AnyMember)
        .await
        .unwrap();
    let mut seen = vec![Vec::new(), Vec::new(), Vec::new()];
    form_group(
        &w.net,
        &mut [&mut alice, &mut bob, &mut carol],
        &mut seen,
        group,
    )
    .await;

    // The backup, then bob's own update lands on chain and everybody merges it.
    drop(bob);
    copy_store(&w.dir, 2, "", ".backup");
    let mut bob = w.client(2, w.net.add_node("bob 2")).await;
    let before = bob.epoch(group).unwrap();
    bob.update(group).await.unwrap();
    let merged = |events: &[ClientEvent], at: u64| {
        events
            .iter()
            .any(|e| matches!(e, ClientEvent::CommitMerged { epoch, .. } if *epoch == at))
    };
    until(
        &w.net,
        &mut [&mut alice, &mut bob, &mut carol],
        &mut seen,
        |s| s.iter().all(|e| merged(e, before + 1)),
    )
    .await;

    // The device comes back from the backup: one epoch behind, the registered commit its own.
    drop(bob);
    copy_store(&w.dir, 2, ".backup", "");
    let mut bob = w.client(2, w.net.add_node("bob restored")).await;
    assert_eq!(bob.epoch(group).unwrap(), before);
    seen[1].clear();
    until(
        &w.net,
        &mut [&mut alice, &mut bob, &mut carol],
        &mut seen,
        |s| {
            s[1].iter()
                .any(|e| matches!(e, ClientEvent::ForkDetected { group: g, epoch, .. } if *g == group && *epoch == before + 1))
        },
    )
    .await;
    assert!(!bob.is_active(group));

    // The owner re-adds him; he joins from the Welcome; carol merges the commit.
    until(
        &w.net,
        &mut [&mut alice, &mut bob, &mut carol],
        &mut seen,
        |s| joined(&s[1], group) && merged(&s[2], before + 2),
    )
    .await;
    assert!(bob.is_active(group));
    for m in [&bob, &carol] {
        assert_eq!(m.epoch(group).unwrap(), before + 2);
        assert_eq!(
            m.epoch_authenticator(group).unwrap(),
            alice.epoch_authenticator(group).unwrap()
        );
    }
    let mut expected = vec![a, b, c];
    expected.sort();
    for m in [&alice, &bob, &carol] {
        let mut members = m.members(group).unwrap();
        members.sort();
        assert_eq!(members, expected, "one leaf per account after the re-add");
    }
    let acl: Vec<Address> = alice.acl(group).unwrap().members.into_iter().collect();
    assert_eq!(acl, expected);

    // They talk again, both ways.
    bob.send(group, b"back").await.unwrap();
    alice.send(group, b"welcome back").await.unwrap();
    until(
        &w.net,
        &mut [&mut alice, &mut bob, &mut carol],
        &mut seen,
        |s| {
            got_message(&s[0], b, b"back")
                && got_message(&s[2], b, b"back")
                && got_message(&s[1], a, b"welcome back")
        },
    )
    .await;
    for events in &seen {
        assert!(
            !events
                .iter()
                .any(|e| matches!(e, ClientEvent::IntentFailed { .. })),
            "{events:#?}"
        );
    }
}

/// Delivery over both the network and the chain channel: with the network losing every frame,
/// the invitation, the Welcome and the messages still arrive through the chain; with both
/// working, each message is read exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn network_and_chain_together_deliver_each_message_once() {
    let w = World::new("client-redundant").await;
    w.net.set_faults(Faults {
        drop: 1.0,
        ..Faults::NONE
    });
    let mut alice = w.redundant_client(1, w.net.add_node("alice")).await;
    let mut bob = w.redundant_client(2, w.net.add_node("bob")).await;
    let (a, b) = (alice.address(), bob.address());
    alice.publish_keys().await.unwrap();
    bob.publish_keys().await.unwrap();
    let group = alice
        .create_group(b"both", CommitPolicy::AdminsOnly)
        .await
        .unwrap();
    let mut seen = vec![Vec::new(), Vec::new()];
    form_group(&w.net, &mut [&mut alice, &mut bob], &mut seen, group).await;
    alice.send(group, b"through the chain").await.unwrap();
    bob.send(group, b"back through the chain").await.unwrap();
    until(&w.net, &mut [&mut alice, &mut bob], &mut seen, |s| {
        got_message(&s[1], a, b"through the chain")
            && got_message(&s[0], b, b"back through the chain")
    })
    .await;
    assert!(
        w.net
            .trace()
            .iter()
            .all(|t| t.outcome != eth_mls_transport::Outcome::Delivered),
        "the network delivered nothing"
    );

    // The network heals: each message comes both ways, and is read once.
    w.net.set_faults(Faults::NONE);
    for i in 0..5 {
        alice
            .send(group, format!("both {i}").as_bytes())
            .await
            .unwrap();
    }
    until(&w.net, &mut [&mut alice, &mut bob], &mut seen, |s| {
        (0..5).all(|i| got_message(&s[1], a, format!("both {i}").as_bytes()))
    })
    .await;
    // A little longer, for late second copies.
    for _ in 0..20 {
        until(&w.net, &mut [&mut alice, &mut bob], &mut seen, |_| true).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for i in 0..5 {
        let text = format!("both {i}");
        let count = seen[1]
            .iter()
            .filter(|e| matches!(e, ClientEvent::Message { data, .. } if *data == text.as_bytes()))
            .count();
        assert_eq!(count, 1, "{text} read {count} times");
    }
    assert!(
        !seen
            .iter()
            .flatten()
            .any(|e| matches!(e, ClientEvent::Rejected { .. })),
        "{seen:#?}"
    );
}

/// With a confirmation depth, a registered commit is acted on only once that many blocks are
/// on top of it: bob does not merge alice's update (nor does alice) until the blocks come.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commits_wait_for_the_configured_confirmations() {
    let mut w = World::new("client-confirmations").await;
    w.confirmations = 3;
    let mut alice = w.client(1, w.net.add_node("alice")).await;
    let mut bob = w.client(2, w.net.add_node("bob")).await;
    let b = bob.address();
    bob.publish_keys().await.unwrap();
    let group = alice
        .create_group(b"confirmations", CommitPolicy::AdminsOnly)
        .await
        .unwrap();
    alice.invite(group, b, "").await.unwrap();
    let mut seen = vec![Vec::new(), Vec::new()];
    until(&w.net, &mut [&mut alice, &mut bob], &mut seen, |s| {
        invitation(&s[1]).is_some()
    })
    .await;
    bob.accept(invitation(&seen[1]).unwrap()).await.unwrap();
    // The add and the join need blocks on top of the registration.
    until_mining(&w, &mut [&mut alice, &mut bob], &mut seen, |s| {
        joined(&s[1], group)
    })
    .await;

    // Alice's update is registered; nobody merges it before three blocks are on top of it.
    let epoch = alice.epoch(group).unwrap();
    alice.update(group).await.unwrap();
    for _ in 0..5 {
        w.net.run_until_idle();
        alice.sync().await.unwrap();
        bob.sync().await.unwrap();
    }
    assert_eq!(
        alice.epoch(group).unwrap(),
        epoch,
        "merged before its confirmations"
    );
    assert_eq!(
        bob.epoch(group).unwrap(),
        epoch,
        "merged before its confirmations"
    );
    w.mine(3).await;
    until(&w.net, &mut [&mut alice, &mut bob], &mut seen, |s| {
        s.iter().all(|e| {
            e.iter().any(
                |e| matches!(e, ClientEvent::CommitMerged { epoch: at, .. } if *at == epoch + 1),
            )
        })
    })
    .await;
    assert_eq!(
        alice.epoch_authenticator(group).unwrap(),
        bob.epoch_authenticator(group).unwrap()
    );
}

/// A Welcome above the inline limit is published on the group's commit topic and sent by
/// hash; the invitee fetches it from the topic's history and joins (over gossip + chain and
/// over the chain channel alone, where the history is the chain's).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_welcome_sent_by_hash_is_fetched_and_joined() {
    let mut w = World::new("client-welcome-hash").await;
    w.inline_welcome_limit = Some(0);
    // The network loses everything: the Welcome comes from the chain channel's history.
    w.net.set_faults(Faults {
        drop: 1.0,
        ..Faults::NONE
    });
    let mut alice = w.redundant_client(1, w.net.add_node("alice")).await;
    let mut bob = w.redundant_client(2, w.net.add_node("bob")).await;
    let a = alice.address();
    alice.publish_keys().await.unwrap();
    bob.publish_keys().await.unwrap();
    let group = alice
        .create_group(b"by hash", CommitPolicy::AdminsOnly)
        .await
        .unwrap();
    let mut seen = vec![Vec::new(), Vec::new()];
    form_group(&w.net, &mut [&mut alice, &mut bob], &mut seen, group).await;
    assert_eq!(bob.epoch(group).unwrap(), alice.epoch(group).unwrap());
    alice.send(group, b"joined by hash").await.unwrap();
    until(&w.net, &mut [&mut alice, &mut bob], &mut seen, |s| {
        got_message(&s[1], a, b"joined by hash")
    })
    .await;
}

/// One client per store: a second open while the first lives is refused with `StoreInUse`
/// (both would take in and answer the same frames); once the first is dropped it opens.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_is_opened_by_one_client_at_a_time() {
    let w = World::new("client-lock").await;
    let alice = w.client(1, w.net.add_node("alice")).await;
    let key = w.devnet.signer(1).unwrap().to_bytes();
    let signer: Arc<dyn EthereumSigner> =
        Arc::new(LocalEthereumSigner::from_bytes(key.as_slice()).unwrap());
    let second = Client::open(
        signer,
        w.devnet.chain(1).await.unwrap(),
        w.net.add_node("alice again"),
        w.dir.join("client-1.db"),
        &StoreKey::raw([1; 32]),
        w.config(),
    )
    .await;
    assert!(
        matches!(second, Err(eth_mls::Error::StoreInUse { .. })),
        "{second:?}"
    );
    drop(alice);
    let again = w.client(1, w.net.add_node("alice third")).await;
    assert_eq!(again.address(), w.devnet.addresses()[1]);
}

/// Alice (owner) and carol in a group, bob outside it, every key published, and Mallory on the
/// network with a chain reader.
async fn with_mallory(w: &World) -> (C, C, C, adversary::Mallory, Address, Vec<Vec<ClientEvent>>) {
    let mut alice = w.client(1, w.net.add_node("alice")).await;
    let mut bob = w.client(2, w.net.add_node("bob")).await;
    let mut carol = w.client(3, w.net.add_node("carol")).await;
    for client in [&mut alice, &mut bob, &mut carol] {
        client.publish_keys().await.unwrap();
    }
    let group = alice
        .create_group(b"mallory", CommitPolicy::AdminsOnly)
        .await
        .unwrap();
    let mut seen = vec![Vec::new(), Vec::new()];
    form_group(&w.net, &mut [&mut alice, &mut carol], &mut seen, group).await;
    let mallory = adversary::Mallory {
        node: w.net.add_node("mallory"),
        chain: w.devnet.chain(4).await.unwrap(),
        deployment: w.deployment,
    };
    (alice, bob, carol, mallory, group, vec![Vec::new(); 3])
}

fn rejected_unbound(events: &[ClientEvent], claimed: Address) -> bool {
    events.iter().any(|e| {
        matches!(e, ClientEvent::Rejected { error: eth_mls::Error::UnboundPeer { account }, .. }
            if *account == claimed)
    })
}

/// C1: Mallory, with her own keys, sends the owner a removal request "from" carol. The owner's
/// client finds that carol's registered inbox key is not the session's identity key: the frame
/// is reported `Rejected` (`UnboundPeer`), nothing is queued or committed, carol stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_removal_request_removes_nobody() {
    let w = World::new("client-c1-removal").await;
    let (mut alice, mut bob, mut carol, mallory, group, mut seen) = with_mallory(&w).await;
    let (a, c) = (alice.address(), carol.address());
    let epoch = alice.epoch(group).unwrap();
    let request = eth_mls::wire::ClientMessage::ChangeRequest(eth_mls::wire::ChangeRequest {
        request_id: [7; 16],
        group: eth_mls::wire::GroupRef {
            chain_id: alice.chain_id(),
            factory: w.deployment.group_factory.into_array(),
            group_contract: group.into_array(),
        },
        epoch,
        kind: eth_mls::wire::ChangeKind::Removal,
        target: c.into_array(),
        proposal: Vec::new(),
    });
    let mut forged = adversary::Mallory::device_claiming(c);
    mallory
        .send_as(
            &mut forged,
            a,
            eth_mls_channel::OneTimePrekeyChoice::Random,
            &request,
        )
        .await;
    until(
        &w.net,
        &mut [&mut alice, &mut bob, &mut carol],
        &mut seen,
        // Refused, or (the attack working) carol removed.
        |s| {
            rejected_unbound(&s[0], c)
                || s[0]
                    .iter()
                    .any(|e| matches!(e, ClientEvent::MemberRemoved { member, .. } if *member == c))
        },
    )
    .await;
    // A few more rounds: nothing was queued that could still act.
    for _ in 0..5 {
        until(
            &w.net,
            &mut [&mut alice, &mut bob, &mut carol],
            &mut seen,
            |_| true,
        )
        .await;
    }
    assert_eq!(alice.epoch(group).unwrap(), epoch, "{:#?}", seen[0]);
    assert!(alice.acl(group).unwrap().members.contains(&c));
    assert!(alice.members(group).unwrap().contains(&c));
    assert!(carol.is_active(group));
    assert!(
        !seen[0]
            .iter()
            .any(|e| matches!(e, ClientEvent::RequestReceived { .. })),
        "{:#?}",
        seen[0]
    );
}

/// C1: an invitation "from" the group's owner, made by Mallory, is never shown to bob.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_invitation_is_never_shown() {
    let w = World::new("client-c1-invite").await;
    let (mut alice, mut bob, mut carol, mallory, group, mut seen) = with_mallory(&w).await;
    let (a, b) = (alice.address(), bob.address());
    let request =
        eth_mls::wire::ClientMessage::InvitationRequest(eth_mls::wire::InvitationRequest {
            request_id: [9; 16],
            group: eth_mls::wire::GroupRef {
                chain_id: alice.chain_id(),
                factory: w.deployment.group_factory.into_array(),
                group_contract: group.into_array(),
            },
            group_id: b"mallory".to_vec(),
            inviter: a.into_array(),
            expiry: common::now() as u64 + 3600,
            note: "from alice, honest".into(),
        });
    let mut forged = adversary::Mallory::device_claiming(a);
    mallory
        .send_as(
            &mut forged,
            b,
            eth_mls_channel::OneTimePrekeyChoice::None,
            &request,
        )
        .await;
    until(
        &w.net,
        &mut [&mut alice, &mut bob, &mut carol],
        &mut seen,
        |s| rejected_unbound(&s[1], a) || invitation(&s[1]).is_some(),
    )
    .await;
    assert!(invitation(&seen[1]).is_none(), "{:#?}", seen[1]);
    assert!(bob.invitations().unwrap().is_empty());
}

/// M5: an invitation from an account that is not an admin of the group it names (Mallory,
/// registered, speaking for herself) is refused: it would harvest bob's signed consent and a
/// fresh key package for another group's admin to use.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invitation_from_a_non_admin_is_refused() {
    let w = World::new("client-m5-inviter").await;
    let (mut alice, mut bob, mut carol, mallory, group, mut seen) = with_mallory(&w).await;
    let b = bob.address();
    let mut own = mallory.registered_device().await;
    let m = mallory.chain.sender().unwrap();
    let request =
        eth_mls::wire::ClientMessage::InvitationRequest(eth_mls::wire::InvitationRequest {
            request_id: [5; 16],
            group: eth_mls::wire::GroupRef {
                chain_id: alice.chain_id(),
                factory: w.deployment.group_factory.into_array(),
                group_contract: group.into_array(),
            },
            group_id: b"mallory".to_vec(),
            inviter: m.into_array(),
            expiry: common::now() as u64 + 3600,
            note: "join us".into(),
        });
    mallory
        .send_as(
            &mut own,
            b,
            eth_mls_channel::OneTimePrekeyChoice::Random,
            &request,
        )
        .await;
    until(
        &w.net,
        &mut [&mut alice, &mut bob, &mut carol],
        &mut seen,
        |s| {
            invitation(&s[1]).is_some()
                || s[1].iter().any(|e| matches!(e, ClientEvent::Rejected { error: eth_mls::Error::InviterNotAdmin { inviter, .. }, .. } if *inviter == m))
        },
    )
    .await;
    assert!(invitation(&seen[1]).is_none(), "{:#?}", seen[1]);
}

/// C1, the hijack: Mallory plants a session "from" bob in alice's device before alice ever
/// wrote to bob. Alice's invitation to bob must reach bob (in a session bound to his
/// registered key), and nothing alice sends can be read by Mallory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_planted_session_captures_nothing() {
    let w = World::new("client-c1-hijack").await;
    let (mut alice, mut bob, mut carol, mallory, group, mut seen) = with_mallory(&w).await;
    let (a, b) = (alice.address(), bob.address());
    let mut bob_inbox = mallory
        .node
        .subscribe(&eth_mls_transport::Topic::Inbox {
            chain_id: alice.chain_id(),
            account: b.into_array(),
        })
        .await
        .unwrap();
    let mut forged = adversary::Mallory::device_claiming(b);
    let plant = eth_mls::wire::ClientMessage::RequestRejected(eth_mls::wire::RequestRejected {
        request_id: [1; 16],
        reason: eth_mls::wire::RejectReason::Invalid,
    });
    let planted = mallory
        .send_as(
            &mut forged,
            a,
            eth_mls_channel::OneTimePrekeyChoice::None,
            &plant,
        )
        .await;
    until(
        &w.net,
        &mut [&mut alice, &mut bob, &mut carol],
        &mut seen,
        // Refused, or (the plant taking) shown as a refusal from bob.
        |s| {
            rejected_unbound(&s[0], b)
                || s[0]
                    .iter()
                    .any(|e| matches!(e, ClientEvent::RequestRejected { from, .. } if *from == b))
        },
    )
    .await;
    alice.invite(group, b, "for bob").await.unwrap();
    for _ in 0..10 {
        until(
            &w.net,
            &mut [&mut alice, &mut bob, &mut carol],
            &mut seen,
            |_| true,
        )
        .await;
    }
    // Whatever reached bob's inbox, Mallory's planted session decrypts none of it.
    use futures_util::{FutureExt as _, StreamExt as _};
    let mut frames = 0;
    while let Some(Some(envelope)) = bob_inbox.next().now_or_never() {
        frames += 1;
        if let Ok(r) = forged.receive(&envelope.bytes, common::now() as u64) {
            panic!(
                "Mallory read a frame for bob in session {:?} (planted {planted:?})",
                r.session_id
            );
        }
    }
    assert!(frames > 0);
    assert!(
        invitation(&seen[1]).is_some(),
        "bob got the invitation: {:#?}",
        seen[1]
    );
}

/// A connection that reports every RPC failure at once (these tests are about the client's
/// own retries and budgets, not the transport's).
fn no_retries() -> eth_mls_chain::RpcConfig {
    eth_mls_chain::RpcConfig {
        max_retries: 0,
        ..eth_mls_chain::RpcConfig::default()
    }
}

/// Bob's client behind a provider that refuses `eth_getLogs` over 2,000 blocks (as public
/// ones do), on a chain 3,000 blocks past the deployment.
async fn behind_limited_rpc(w: &World, node: MemoryNode) -> (C, adversary::LimitedRpc) {
    use eth_mls_chain::alloy::providers::Provider;
    let chain = w.devnet.chain(0).await.unwrap();
    let _: serde_json::Value = chain
        .provider()
        .raw_request("anvil_mine".into(), (3000u64,))
        .await
        .unwrap();
    let rpc = adversary::LimitedRpc::start(w.devnet.rpc_url(), 2_000).await;
    let signer = w.devnet.signer(2).unwrap();
    let chain = eth_mls_chain::Chain::connect_with(&rpc.url, Some(signer), &no_retries())
        .await
        .unwrap();
    (w.client_with(2, chain, node).await, rpc)
}

/// M8: an invitation's check makes no `eth_getLogs` from the deployment block to the head
/// (refused by range-limited providers, which stopped the invitee's client for good): bob,
/// behind such a provider, sees the invitation, accepts and joins.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invitation_is_checked_through_a_range_limited_provider() {
    let mut w = World::new("client-m8-range").await;
    w.inline_welcome_limit = None;
    let mut alice = w.client(1, w.net.add_node("alice")).await;
    alice.publish_keys().await.unwrap();
    let group = alice
        .create_group(b"ranged", CommitPolicy::AdminsOnly)
        .await
        .unwrap();
    let (mut bob, rpc) = behind_limited_rpc(&w, w.net.add_node("bob")).await;
    bob.publish_keys().await.unwrap();
    let mut seen = vec![Vec::new(), Vec::new()];
    form_group(&w.net, &mut [&mut alice, &mut bob], &mut seen, group).await;
    assert!(bob.is_active(group));
    assert_eq!(bob.epoch(group).unwrap(), alice.epoch(group).unwrap());
    // The provider was asked for wide ranges and refused nothing the client needed.
    assert_eq!(
        rpc.refused.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "the client made an unranged log query"
    );
}

/// M8: a 1:1 message whose handling fails for a reason that may pass (the chain down) never
/// makes `sync` fail or holds up what comes after; it is tried again (the invitation arrives
/// once the chain is back), and after its retry budget it is given up on with an event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_message_never_blocks_sync_and_has_a_budget() {
    use std::sync::atomic::Ordering;
    let w = World::new("client-m8-budget").await;
    let mut alice = w.client(1, w.net.add_node("alice")).await;
    alice.publish_keys().await.unwrap();
    let first = alice
        .create_group(b"first", CommitPolicy::AdminsOnly)
        .await
        .unwrap();
    let second = alice
        .create_group(b"second", CommitPolicy::AdminsOnly)
        .await
        .unwrap();
    let (mut bob, rpc) = behind_limited_rpc(&w, w.net.add_node("bob")).await;
    bob.publish_keys().await.unwrap();
    drop(bob);
    // Retries at once, so the budget runs out in a few syncs.
    let mut config = w.config();
    config.inbox_retry = Duration::ZERO;
    let chain = eth_mls_chain::Chain::connect_with(&rpc.url, w.devnet.signer(2), &no_retries())
        .await
        .unwrap();
    let mut bob = w
        .open_with(2, chain, w.net.add_node("bob again"), config)
        .await;
    let b = bob.address();
    let mut events = Vec::new();

    // The chain is down while the first invitation arrives: sync still succeeds.
    alice.invite(first, b, "first").await.unwrap();
    rpc.down.store(true, Ordering::SeqCst);
    for _ in 0..3 {
        w.net.run_until_idle();
        bob.sync()
            .await
            .expect("sync fails while the chain is down");
        events.extend(bob.drain_events());
    }
    assert!(invitation(&events).is_none());
    // Back up: the invitation arrives.
    rpc.down.store(false, Ordering::SeqCst);
    for _ in 0..3 {
        w.net.run_until_idle();
        bob.sync().await.unwrap();
        events.extend(bob.drain_events());
    }
    assert!(
        events.iter().any(|e| matches!(e,
            ClientEvent::InvitationReceived { group, .. } if *group == first)),
        "{events:#?}"
    );

    // The second one keeps failing: given up after the budget, with an event; sync goes on.
    alice.invite(second, b, "second").await.unwrap();
    rpc.down.store(true, Ordering::SeqCst);
    for _ in 0..eth_mls::client::INCOMING_ATTEMPTS + 2 {
        w.net.run_until_idle();
        bob.sync()
            .await
            .expect("sync fails while the chain is down");
        events.extend(bob.drain_events());
    }
    assert!(
        events.iter().any(|e| matches!(e,
            ClientEvent::DeadLetter { error: eth_mls::Error::GaveUp { attempts, .. }, .. }
                if *attempts == eth_mls::client::INCOMING_ATTEMPTS)),
        "{events:#?}"
    );
    rpc.down.store(false, Ordering::SeqCst);
    bob.sync().await.unwrap();
    assert_eq!(bob.invitations().unwrap().len(), 1, "only the first");
}

/// M3, L9, L1: Mallory (registered, speaking for herself) burns every one-time prekey bob's
/// bundle lists, one prekey message each. Bob's client keeps at most
/// `MAX_SESSIONS_PER_PEER` of her sessions, tops up its one-time prekeys and publishes its
/// bundle again from `sync`, so alice, who has never written to bob, reaches him: her
/// invitation arrives (on 2cf43a9 it picked a burned key and was refused `OPK_REUSED`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn burned_one_time_prekeys_are_replaced_and_the_account_stays_reachable() {
    let w = World::new("client-m3-burn").await;
    let (mut alice, mut bob, mut carol, mallory, group, mut seen) = with_mallory(&w).await;
    let b = bob.address();
    let listed: Vec<u32> = mallory
        .bundle_of(b)
        .await
        .bundle()
        .one_time_prekeys
        .iter()
        .map(|k| k.id)
        .collect();
    assert_eq!(listed.len(), 20);
    let mut own = mallory.registered_device().await;
    let hello = eth_mls::wire::ClientMessage::RequestRejected(eth_mls::wire::RequestRejected {
        request_id: [3; 16],
        reason: eth_mls::wire::RejectReason::Invalid,
    });
    for id in &listed {
        mallory
            .send_as(
                &mut own,
                b,
                eth_mls_channel::OneTimePrekeyChoice::Id(*id),
                &hello,
            )
            .await;
    }
    for _ in 0..3 {
        until(
            &w.net,
            &mut [&mut alice, &mut bob, &mut carol],
            &mut seen,
            |_| true,
        )
        .await;
    }
    assert!(
        bob.channel_sessions() <= eth_mls::client::MAX_SESSIONS_PER_PEER,
        "{} sessions",
        bob.channel_sessions()
    );
    let fresh: Vec<u32> = mallory
        .bundle_of(b)
        .await
        .bundle()
        .one_time_prekeys
        .iter()
        .map(|k| k.id)
        .collect();
    assert_eq!(fresh.len(), 20, "topped up");
    assert!(fresh.iter().all(|id| !listed.contains(id)), "{fresh:?}");
    alice.invite(group, b, "after the burn").await.unwrap();
    until(
        &w.net,
        &mut [&mut alice, &mut bob, &mut carol],
        &mut seen,
        |s| invitation(&s[1]).is_some(),
    )
    .await;
}

/// L9: the signed prekey is rotated before it expires and the bundle published again from
/// `sync`, without the user asking; sessions made from the old one still open during its
/// grace period, and newcomers reach the account (on 2cf43a9 the bundle expired for good).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_signed_prekey_is_rotated_before_it_expires() {
    let w = World::new("client-l9-rotate").await;
    let mut config = w.config();
    config.signed_prekey_lifetime = Duration::from_secs(9);
    let mut alice = w.client(1, w.net.add_node("alice")).await;
    let mut bob = w.client_configured(2, w.net.add_node("bob"), config).await;
    alice.publish_keys().await.unwrap();
    bob.publish_keys().await.unwrap();
    let reader = adversary::Mallory {
        node: w.net.add_node("reader"),
        chain: w.devnet.chain(4).await.unwrap(),
        deployment: w.deployment,
    };
    let first = reader
        .bundle_of(bob.address())
        .await
        .bundle()
        .signed_prekey
        .id;
    let group = alice
        .create_group(b"rotation", CommitPolicy::AdminsOnly)
        .await
        .unwrap();
    // Past two thirds of the lifetime (and past the expiry itself, later).
    tokio::time::sleep(Duration::from_millis(7_500)).await;
    let mut seen = vec![Vec::new(), Vec::new()];
    until(&w.net, &mut [&mut alice, &mut bob], &mut seen, |_| true).await;
    let second = reader
        .bundle_of(bob.address())
        .await
        .bundle()
        .signed_prekey
        .id;
    assert_ne!(second, first, "rotated and published");
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    alice.invite(group, bob.address(), "").await.unwrap();
    until(&w.net, &mut [&mut alice, &mut bob], &mut seen, |s| {
        invitation(&s[1]).is_some()
    })
    .await;
}

/// L6: an invitation is not sent again at every open (on the chain channel each send is a
/// transaction); it is sent again with backoff while unanswered, and forgotten once expired.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invitations_are_resent_with_backoff_not_at_every_open() {
    let w = World::new("client-l6-resend").await;
    let mut config = w.config();
    config.invitation_validity = Duration::from_secs(5);
    config.invitation_resend = Duration::from_secs(1);
    let open = |node: MemoryNode| w.client_configured(1, node, config.clone());
    let mut alice = open(w.net.add_node("alice")).await;
    let mut bob = w.client(2, w.net.add_node("bob")).await;
    bob.publish_keys().await.unwrap();
    let b = bob.address();
    drop(bob);
    let group = alice
        .create_group(b"resend", CommitPolicy::AdminsOnly)
        .await
        .unwrap();
    let watcher = w.net.add_node("watcher");
    let mut inbox = watcher
        .subscribe(&eth_mls_transport::Topic::Inbox {
            chain_id: alice.chain_id(),
            account: b.into_array(),
        })
        .await
        .unwrap();
    let count = |inbox: &mut eth_mls_transport::Subscription| {
        use futures_util::{FutureExt as _, StreamExt as _};
        w.net.run_until_idle();
        let mut n = 0;
        while let Some(Some(_)) = inbox.next().now_or_never() {
            n += 1;
        }
        n
    };
    alice.invite(group, b, "").await.unwrap();
    // Reopened three times at once: nothing sent again.
    for i in 0..3 {
        drop(alice);
        alice = open(w.net.add_node(&format!("alice {i}"))).await;
    }
    assert_eq!(count(&mut inbox), 1, "sent again at open");
    // Unanswered: sent again after the interval, then after twice as long.
    let mut sent = 1;
    let start = std::time::Instant::now();
    while start.elapsed() < Duration::from_millis(3_500) {
        alice.sync().await.unwrap();
        sent += count(&mut inbox);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!((2..=3).contains(&sent), "{sent} sends in 3.5 s");
    // Expired: forgotten, never sent again.
    tokio::time::sleep(Duration::from_millis(2_000)).await;
    alice.sync().await.unwrap();
    count(&mut inbox);
    for _ in 0..20 {
        alice.sync().await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(count(&mut inbox), 0, "sent after it expired");
}

/// L10: a member's update requests are granted at most once per `request_interval` (each is a
/// commit and a transaction the admin pays for); the rest are refused `RateLimited`, and the
/// group's epoch moves once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_requests_are_rate_limited_per_member() {
    let w = World::new("client-l10-rate").await;
    let mut alice = w.client(1, w.net.add_node("alice")).await;
    // Bob gives up an unanswered request after 2 s (alice's interval is the default hour).
    let mut bob_config = w.config();
    bob_config.request_interval = Duration::from_secs(2);
    let mut bob = w
        .client_configured(2, w.net.add_node("bob"), bob_config)
        .await;
    let (a, b) = (alice.address(), bob.address());
    bob.publish_keys().await.unwrap();
    let group = alice
        .create_group(b"rate", CommitPolicy::AdminsOnly)
        .await
        .unwrap();
    let mut seen = vec![Vec::new(), Vec::new()];
    form_group(&w.net, &mut [&mut alice, &mut bob], &mut seen, group).await;
    let start = alice.epoch(group).unwrap();
    bob.request_update(group, a).await.unwrap();
    until(&w.net, &mut [&mut alice, &mut bob], &mut seen, |s| {
        s[1].iter()
            .any(|e| matches!(e, ClientEvent::CommitMerged { epoch, .. } if *epoch == start + 1))
    })
    .await;
    for _ in 0..3 {
        bob.request_update(group, a).await.unwrap();
        until(&w.net, &mut [&mut alice, &mut bob], &mut seen, |_| true).await;
    }
    until(&w.net, &mut [&mut alice, &mut bob], &mut seen, |s| {
        s[0].iter()
            .filter(|e| matches!(e, ClientEvent::Rejected { error: eth_mls::Error::RateLimited { account, .. }, .. } if *account == b))
            .count()
            == 3
    })
    .await;
    for _ in 0..5 {
        until(&w.net, &mut [&mut alice, &mut bob], &mut seen, |_| true).await;
    }
    assert_eq!(alice.epoch(group).unwrap(), start + 1, "{:#?}", seen[0]);
    // Refused (or unanswered past his interval), bob's proposals are dropped: he can talk
    // again (openmls sends no application message while a proposal is stored; on ec4cec7 he
    // was muted for the rest of the epoch).
    until(&w.net, &mut [&mut alice, &mut bob], &mut seen, |s| {
        s[1].iter()
            .any(|e| matches!(e, ClientEvent::RequestRejected { .. }))
    })
    .await;
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    until(&w.net, &mut [&mut alice, &mut bob], &mut seen, |_| true).await;
    bob.send(group, b"still here").await.unwrap();
    until(&w.net, &mut [&mut alice, &mut bob], &mut seen, |s| {
        got_message(&s[0], b, b"still here")
    })
    .await;
}

/// C1, rotation: bob's device is replaced (a new identity key, registered when it publishes).
/// Alice's next message to him starts a session under his new key and retires the old one;
/// on 2cf43a9 it went into the old session, which bob's new device cannot read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_rotated_its_key_is_reached_under_the_new_one() {
    let w = World::new("client-c1-rotation").await;
    let mut alice = w.client(1, w.net.add_node("alice")).await;
    let mut bob = w.client(2, w.net.add_node("bob")).await;
    bob.publish_keys().await.unwrap();
    let b = bob.address();
    let first = alice
        .create_group(b"before rotation", CommitPolicy::AdminsOnly)
        .await
        .unwrap();
    let mut seen = vec![Vec::new(), Vec::new()];
    form_group(&w.net, &mut [&mut alice, &mut bob], &mut seen, first).await;
    assert!(bob.is_active(first));
    // A new device for bob: its store (and channel keys) gone, new ones published.
    drop(bob);
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(w.dir.join(format!("client-2.db{suffix}")));
    }
    let mut bob = w.client(2, w.net.add_node("bob's new device")).await;
    bob.publish_keys().await.unwrap();
    let second = alice
        .create_group(b"after rotation", CommitPolicy::AdminsOnly)
        .await
        .unwrap();
    let mut seen = vec![Vec::new(), Vec::new()];
    alice.invite(second, b, "new device").await.unwrap();
    until(&w.net, &mut [&mut alice, &mut bob], &mut seen, |s| {
        s[1].iter().any(|e| {
            matches!(e,
            ClientEvent::InvitationReceived { group, .. } if *group == second)
        })
    })
    .await;
}

/// L1, the initiator's side: each message to a peer that never answers starts a new session
/// once the last one waited past `pending_session_timeout`; the oldest are pruned, so no more
/// than `MAX_SESSIONS_PER_PEER` are kept with one peer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unanswered_sessions_are_pruned() {
    let w = World::new("client-l1-pending").await;
    let mut config = w.config();
    config.pending_session_timeout = Duration::ZERO;
    let mut alice = w
        .client_configured(1, w.net.add_node("alice"), config)
        .await;
    let mut bob = w.client(2, w.net.add_node("bob")).await;
    bob.publish_keys().await.unwrap();
    let b = bob.address();
    drop(bob);
    let sends = eth_mls::client::MAX_SESSIONS_PER_PEER + 3;
    for i in 0..sends {
        let group = alice
            .create_group(format!("pending {i}").as_bytes(), CommitPolicy::AdminsOnly)
            .await
            .unwrap();
        alice.invite(group, b, "").await.unwrap();
    }
    assert_eq!(
        alice.channel_sessions(),
        eth_mls::client::MAX_SESSIONS_PER_PEER
    );
}

/// L10: a flood of bad requests costs the admin at most one refusal per requester and
/// request interval (a refusal is a message; on the chain channel, a transaction).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_are_rate_limited() {
    let w = World::new("client-l10-refusals").await;
    let (mut alice, mut bob, mut carol, mallory, group, mut seen) = with_mallory(&w).await;
    let (a, c) = (alice.address(), carol.address());
    let m = mallory.chain.sender().unwrap();
    let mut own = mallory.registered_device().await;
    let mut inbox = mallory
        .node
        .subscribe(&eth_mls_transport::Topic::Inbox {
            chain_id: alice.chain_id(),
            account: m.into_array(),
        })
        .await
        .unwrap();
    let epoch = alice.epoch(group).unwrap();
    for i in 0..5u8 {
        let request = eth_mls::wire::ClientMessage::ChangeRequest(eth_mls::wire::ChangeRequest {
            request_id: [0x70 + i; 16],
            group: eth_mls::wire::GroupRef {
                chain_id: alice.chain_id(),
                factory: w.deployment.group_factory.into_array(),
                group_contract: group.into_array(),
            },
            epoch,
            kind: eth_mls::wire::ChangeKind::Removal,
            target: c.into_array(),
            proposal: Vec::new(),
        });
        mallory
            .send_as(
                &mut own,
                a,
                eth_mls_channel::OneTimePrekeyChoice::None,
                &request,
            )
            .await;
    }
    until(
        &w.net,
        &mut [&mut alice, &mut bob, &mut carol],
        &mut seen,
        |s| {
            s[0].iter()
                .filter(|e| matches!(e, ClientEvent::Rejected { .. }))
                .count()
                >= 5
        },
    )
    .await;
    use futures_util::{FutureExt as _, StreamExt as _};
    w.net.run_until_idle();
    let mut refusals = 0;
    while let Some(Some(_)) = inbox.next().now_or_never() {
        refusals += 1;
    }
    assert_eq!(refusals, 1, "refusals sent for five bad requests");
    assert!(alice.members(group).unwrap().contains(&c));
}

// --- Group integrity (issue 28, security review H1-H3, M1, M2, M4, M6, L2) ---

/// Opens client `index`'s store (its client closed) and lets `f` act on group `name` with
/// eth-mls-core directly — what a member's own modified client can do; returns what `f` made.
fn as_member_directly<T>(
    w: &World,
    index: usize,
    name: &[u8],
    f: impl FnOnce(&mut eth_mls_core::Group, &mut eth_mls_core::Store) -> T,
) -> T {
    let mut store = eth_mls_core::Store::open(
        w.dir.join(format!("client-{index}.db")),
        &StoreKey::raw([index as u8; 32]),
    )
    .unwrap();
    let mut group = eth_mls_core::Group::load(&store, name).unwrap();
    f(&mut group, &mut store)
}

fn commit_topic(w: &World, group: Address) -> eth_mls_transport::Topic {
    eth_mls_transport::Topic::Commit {
        chain_id: w.devnet.chain_id(),
        group: group.into_array(),
    }
}

/// Alice (owner), bob and carol in group `name` under `policy`, all joined.
async fn trio(
    w: &World,
    name: &[u8],
    policy: CommitPolicy,
) -> (C, C, C, Address, Vec<Vec<ClientEvent>>) {
    let mut alice = w.client(1, w.net.add_node("alice")).await;
    let mut bob = w.client(2, w.net.add_node("bob")).await;
    let mut carol = w.client(3, w.net.add_node("carol")).await;
    bob.publish_keys().await.unwrap();
    carol.publish_keys().await.unwrap();
    let group = alice.create_group(name, policy).await.unwrap();
    let mut seen = vec![Vec::new(), Vec::new(), Vec::new()];
    form_group(
        &w.net,
        &mut [&mut alice, &mut bob, &mut carol],
        &mut seen,
        group,
    )
    .await;
    (alice, bob, carol, group, seen)
}

fn merged_at(events: &[ClientEvent], group: Address, at: u64) -> bool {
    events.iter().any(
        |e| matches!(e, ClientEvent::CommitMerged { group: g, epoch, .. } if *g == group && *epoch == at),
    )
}

fn forked(events: &[ClientEvent]) -> bool {
    events
        .iter()
        .any(|e| matches!(e, ClientEvent::ForkDetected { .. }))
}

/// H1: bob, a plain member, publishes Remove proposals for carol and for the owner on the
/// commit topic, then asks the owner for an ordinary update. The owner's commit carries his
/// Update and nothing else; the owner can still commit. On ec4cec7 the Remove proposals were
/// stored by everyone and swept into the owner's next commit (carol removed, or — with the
/// owner's own removal stored — every commit of the owner failing `CannotRemoveSelf`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn injected_proposals_ride_in_no_commit() {
    let w = World::new("client-h1").await;
    let (mut alice, bob, mut carol, group, mut seen) =
        trio(&w, b"h1", CommitPolicy::AdminsOnly).await;
    let (a, b, c) = (alice.address(), bob.address(), carol.address());

    drop(bob);
    let frames = as_member_directly(&w, 2, b"h1", |g, s| {
        vec![
            g.propose_remove(s, c).unwrap().0.bytes,
            g.propose_remove(s, a).unwrap().0.bytes,
        ]
    });
    let mallory = w.net.add_node("bob's other node");
    for f in frames {
        mallory.publish(&commit_topic(&w, group), f).await.unwrap();
    }
    let mut bob = w.client(2, w.net.add_node("bob 2")).await;
    until(
        &w.net,
        &mut [&mut alice, &mut bob, &mut carol],
        &mut seen,
        |_| true,
    )
    .await;

    let start = alice.epoch(group).unwrap();
    bob.request_update(group, a).await.unwrap();
    until(
        &w.net,
        &mut [&mut alice, &mut bob, &mut carol],
        &mut seen,
        |s| s.iter().all(|e| merged_at(e, group, start + 1)),
    )
    .await;
    alice.update(group).await.unwrap();
    until(
        &w.net,
        &mut [&mut alice, &mut bob, &mut carol],
        &mut seen,
        |s| s.iter().all(|e| merged_at(e, group, start + 2)),
    )
    .await;
    let mut expected = vec![a, b, c];
    expected.sort();
    for m in [&alice, &bob, &carol] {
        let mut members = m.members(group).unwrap();
        members.sort();
        assert_eq!(members, expected);
        assert_eq!(
            m.epoch_authenticator(group).unwrap(),
            alice.epoch_authenticator(group).unwrap()
        );
    }
    assert!(carol.is_active(group));
    for events in &seen {
        assert!(!forked(events), "{events:#?}");
        assert!(
            !events.iter().any(|e| matches!(
                e,
                ClientEvent::IntentFailed { .. } | ClientEvent::MemberRemoved { .. }
            )),
            "{events:#?}"
        );
    }
}

/// M4: carol is offline while alice commits an update and then bob's update request (a commit
/// that refers to bob's Update proposal by reference). Back online she reads the backlog and
/// merges both: the proposal travels in the commit. On ec4cec7 the proposal arrived while she
/// was an epoch behind, was dropped, and the by-reference commit forked her.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offline_member_catches_up_across_a_by_reference_update() {
    let w = World::new("client-m4").await;
    let (mut alice, mut bob, carol, group, _) = trio(&w, b"m4", CommitPolicy::AdminsOnly).await;
    let (a, b) = (alice.address(), bob.address());
    let start = alice.epoch(group).unwrap();

    drop(carol);
    let mut two = vec![Vec::new(), Vec::new()];
    alice.update(group).await.unwrap();
    until(&w.net, &mut [&mut alice, &mut bob], &mut two, |s| {
        s.iter().all(|e| merged_at(e, group, start + 1))
    })
    .await;
    bob.request_update(group, a).await.unwrap();
    until(&w.net, &mut [&mut alice, &mut bob], &mut two, |s| {
        s.iter().all(|e| merged_at(e, group, start + 2))
    })
    .await;
    assert!(two.iter().flatten().any(
        |e| matches!(e, ClientEvent::CommitMerged { epoch, committer, .. } if *epoch == start + 2 && *committer == a)
    ));

    let mut carol = w.client(3, w.net.add_node("carol 2")).await;
    let mut seen = vec![Vec::new(), Vec::new(), Vec::new()];
    until(
        &w.net,
        &mut [&mut alice, &mut bob, &mut carol],
        &mut seen,
        |s| merged_at(&s[2], group, start + 2) || forked(&s[2]),
    )
    .await;
    assert!(!forked(&seen[2]), "{:#?}", seen[2]);
    assert_eq!(carol.epoch(group).unwrap(), start + 2);
    assert_eq!(
        carol.epoch_authenticator(group).unwrap(),
        alice.epoch_authenticator(group).unwrap()
    );
    bob.send(group, b"after my update").await.unwrap();
    until(
        &w.net,
        &mut [&mut alice, &mut bob, &mut carol],
        &mut seen,
        |s| got_message(&s[2], b, b"after my update"),
    )
    .await;
}

fn stalled(events: &[ClientEvent], group: Address) -> bool {
    events
        .iter()
        .any(|e| matches!(e, ClientEvent::Stalled { group: g, .. } if *g == group))
}

/// H2 and H3: carol, a plain member of an AnyMember group, registers garbage for the next
/// epoch. Every client — the owner's included — reports the group stalled, not forked, and
/// stays in it. The owner recovers: a replacement that removes carol, registered with
/// `replaceHead`; bob processes it and carries on without a re-add. Then every client
/// restarts and a new member joins: nobody forks (the old `HeadReplaced` is never read again).
/// On ec4cec7 every client declared a fork at the garbage (and the owner's own client went
/// inactive: nobody could recover).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_garbage_commit_stalls_the_group_and_the_owner_recovers() {
    use eth_mls_chain::alloy::primitives::B256;
    let w = World::new("client-h2").await;
    let (mut alice, mut bob, carol, group, mut seen) =
        trio(&w, b"h2", CommitPolicy::AnyMember).await;
    let (a, b, c) = (alice.address(), bob.address(), carol.address());
    let start = alice.epoch(group).unwrap();

    // Carol's garbage, straight to the contract.
    let carol_chain = w.devnet.chain(3).await.unwrap();
    carol_chain
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
        s.iter().all(|e| stalled(e, group) || forked(e))
    })
    .await;
    for events in &seen[..2] {
        assert!(!forked(events), "{events:#?}");
    }
    for m in [&alice, &bob] {
        assert!(m.is_active(group));
        assert_eq!(m.epoch(group).unwrap(), start);
        assert_eq!(m.stalled(group).unwrap().unwrap().epoch, start + 1);
    }
    // Only the owner recovers, and only a stalled group.
    assert!(matches!(
        bob.recover(group, &[c]).await,
        Err(eth_mls::Error::NotOwner { .. })
    ));
    alice.recover(group, &[c]).await.unwrap();
    until(&w.net, &mut [&mut alice, &mut bob], &mut seen[..2], |s| {
        s.iter().all(|e| merged_at(e, group, start + 1))
    })
    .await;
    let mut expected = vec![a, b];
    expected.sort();
    for m in [&alice, &bob] {
        let mut members = m.members(group).unwrap();
        members.sort();
        assert_eq!(members, expected);
        assert_eq!(m.stalled(group).unwrap(), None);
        assert_eq!(
            m.epoch_authenticator(group).unwrap(),
            alice.epoch_authenticator(group).unwrap()
        );
    }
    assert!(matches!(
        alice.recover(group, &[]).await,
        Err(eth_mls::Error::NotStalled { .. })
    ));
    // Under AnyMember only admins commit for a while after a replacement.
    let contract = w.devnet.chain(2).await.unwrap().group(group);
    assert!(contract.admins_only_until().await.unwrap() > 0);

    // Everybody restarts; they talk; a new member joins; nobody forks.
    drop(alice);
    drop(bob);
    drop(carol);
    let mut alice = w.client(1, w.net.add_node("alice 2")).await;
    let mut bob = w.client(2, w.net.add_node("bob 2")).await;
    let mut dave = w.client(4, w.net.add_node("dave")).await;
    let d = dave.address();
    dave.publish_keys().await.unwrap();
    let mut seen = vec![Vec::new(), Vec::new(), Vec::new()];
    until(
        &w.net,
        &mut [&mut alice, &mut bob, &mut dave],
        &mut seen,
        |_| true,
    )
    .await;
    alice.invite(group, d, "").await.unwrap();
    until(
        &w.net,
        &mut [&mut alice, &mut bob, &mut dave],
        &mut seen,
        |s| invitation(&s[2]).is_some(),
    )
    .await;
    dave.accept(invitation(&seen[2]).unwrap()).await.unwrap();
    until(
        &w.net,
        &mut [&mut alice, &mut bob, &mut dave],
        &mut seen,
        |s| joined(&s[2], group) && merged_at(&s[1], group, start + 2),
    )
    .await;
    for _ in 0..3 {
        until(
            &w.net,
            &mut [&mut alice, &mut bob, &mut dave],
            &mut seen,
            |_| true,
        )
        .await;
    }
    bob.send(group, b"all fine").await.unwrap();
    until(
        &w.net,
        &mut [&mut alice, &mut bob, &mut dave],
        &mut seen,
        |s| got_message(&s[0], b, b"all fine") && got_message(&s[2], b, b"all fine"),
    )
    .await;
    for events in &seen {
        assert!(!forked(events), "{events:#?}");
        assert!(!stalled(events, group), "{events:#?}");
    }
    for m in [&alice, &bob, &dave] {
        assert_eq!(m.epoch(group).unwrap(), start + 2);
    }
}

/// L2: bob leaves through the contract (the ACL only). The owner's client commits his
/// removal by itself; every member's tree equals the ACL again and bob is out of the group.
/// On ec4cec7 nobody committed it: bob kept his leaf (and could read and send) indefinitely.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_account_that_left_is_removed_from_the_tree_by_an_admin() {
    let w = World::new("client-l2").await;
    let (mut alice, mut bob, mut carol, group, mut seen) =
        trio(&w, b"l2", CommitPolicy::AdminsOnly).await;
    let (a, b, c) = (alice.address(), bob.address(), carol.address());
    w.devnet
        .chain(2)
        .await
        .unwrap()
        .group(group)
        .leave()
        .await
        .unwrap();
    until(&w.net, &mut [&mut alice, &mut bob, &mut carol], &mut seen, |s| {
        s[1].iter()
            .any(|e| matches!(e, ClientEvent::Removed { group: g } if *g == group))
            && s[2].iter().any(
                |e| matches!(e, ClientEvent::MemberRemoved { group: g, member } if *g == group && *member == b),
            )
    })
    .await;
    let mut expected = vec![a, c];
    expected.sort();
    for m in [&alice, &carol] {
        let mut members = m.members(group).unwrap();
        members.sort();
        assert_eq!(members, expected);
        let acl: Vec<Address> = m.acl(group).unwrap().members.into_iter().collect();
        assert_eq!(acl, expected);
    }
    assert!(!bob.is_active(group));
}

/// M6: mallory, no member, publishes 300 frames on the group's app topic — a real frame of
/// alice's with its epoch header rewritten to later epochs nobody registered. Bob, behind a
/// JSON-RPC endpoint that counts requests, takes them in with a handful of chain requests
/// (not one read per frame), none of them is held back or pins his cursor, and alice's next
/// message arrives. On ec4cec7 each forged frame cost bob a chain read (over 300 requests)
/// and filled his queue of held-back frames.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_epoch_headers_cost_no_chain_reads_and_evict_nothing() {
    use eth_mls_transport::{Cursor, Topic};
    use std::sync::atomic::Ordering;
    let w = World::new("client-m6").await;
    let mut alice = w.client(1, w.net.add_node("alice")).await;
    let (mut bob, rpc) = behind_limited_rpc(&w, w.net.add_node("bob")).await;
    let (a, b) = (alice.address(), bob.address());
    bob.publish_keys().await.unwrap();
    let group = alice
        .create_group(b"m6", CommitPolicy::AdminsOnly)
        .await
        .unwrap();
    let mut seen = vec![Vec::new(), Vec::new()];
    form_group(&w.net, &mut [&mut alice, &mut bob], &mut seen, group).await;
    alice.send(group, b"first").await.unwrap();
    until(&w.net, &mut [&mut alice, &mut bob], &mut seen, |s| {
        got_message(&s[1], a, b"first")
    })
    .await;

    let mallory = w.net.add_node("mallory");
    let topic = Topic::App {
        chain_id: w.devnet.chain_id(),
        group: group.into_array(),
    };
    w.net.run_until_idle();
    let real = mallory
        .history(&topic, Cursor::START, 16)
        .await
        .unwrap()
        .envelopes
        .into_iter()
        .next()
        .expect("alice's frame")
        .bytes;
    // version, wire format, group id <V> (1-byte length + b"m6"), then the epoch.
    let at = 4 + 1 + 2;
    let epoch = u64::from_be_bytes(real[at..at + 8].try_into().unwrap());
    assert_eq!(epoch, alice.epoch(group).unwrap());
    for i in 0..300u64 {
        let mut forged = real.clone();
        forged[at..at + 8].copy_from_slice(&(epoch + 1 + i).to_be_bytes());
        mallory.publish(&topic, forged).await.unwrap();
    }
    w.net.run_until_idle();
    let before = rpc.requests.load(Ordering::SeqCst);
    for _ in 0..3 {
        w.net.run_until_idle();
        bob.sync().await.unwrap();
        seen[1].extend(bob.drain_events());
    }
    let used = rpc.requests.load(Ordering::SeqCst) - before;
    assert!(used <= 40, "{used} JSON-RPC requests for 300 forged frames");

    alice.send(group, b"second").await.unwrap();
    until(&w.net, &mut [&mut alice, &mut bob], &mut seen, |s| {
        got_message(&s[1], a, b"second")
    })
    .await;
    // After a restart, nothing is replayed: the cursor was not pinned by the forged frames.
    drop(bob);
    let (mut bob, _rpc2) = behind_limited_rpc(&w, w.net.add_node("bob 2")).await;
    assert_eq!(bob.address(), b);
    let mut after = Vec::new();
    for _ in 0..3 {
        w.net.run_until_idle();
        bob.sync().await.unwrap();
        after.extend(bob.drain_events());
    }
    let replayed = after
        .iter()
        .filter(|e| {
            matches!(
                e,
                ClientEvent::Rejected { .. } | ClientEvent::Message { .. }
            )
        })
        .count();
    assert_eq!(replayed, 0, "{after:#?}");
}

/// An account that is a contract wallet: its SIWE messages are signed by the wallet's owner
/// key and verify through ERC-1271 only.
struct WalletSigner {
    owner: LocalEthereumSigner,
    wallet: Address,
}

impl EthereumSigner for WalletSigner {
    fn address(&self) -> Address {
        self.wallet
    }
    fn sign_message<'a>(
        &'a self,
        message: &'a [u8],
    ) -> futures_util::future::BoxFuture<'a, Result<Vec<u8>, eth_mls_core::SignerError>> {
        self.owner.sign_message(message)
    }
}

/// M1: alice adds a contract-wallet account (its credential and consent verify through
/// ERC-1271 only) while bob's provider fails every `eth_call` (rate limited). Bob's client
/// reports the merge delayed, keeps the registration and merges it once the provider answers:
/// no fork. On ec4cec7 the `CheckUnavailable` became `Error::Core` and bob forked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transient_rpc_failure_during_a_merge_is_no_fork() {
    use eth_mls_chain::alloy::primitives::{B256, keccak256};
    use eth_mls_chain::bindings::MockErc1271Wallet;
    use std::sync::atomic::Ordering;
    let w = World::new("client-m1").await;
    let mut alice = w.client(1, w.net.add_node("alice")).await;
    let (mut bob, rpc) = behind_limited_rpc(&w, w.net.add_node("bob")).await;
    let a = alice.address();
    bob.publish_keys().await.unwrap();
    let group = alice
        .create_group(b"m1", CommitPolicy::AdminsOnly)
        .await
        .unwrap();
    let mut seen = vec![Vec::new(), Vec::new()];
    form_group(&w.net, &mut [&mut alice, &mut bob], &mut seen, group).await;
    let start = alice.epoch(group).unwrap();

    // The wallet, owned by a key of its own.
    let chain = w.devnet.chain(5).await.unwrap();
    let owner = LocalEthereumSigner::from_bytes(&[0x11; 32]).unwrap();
    let wallet = chain
        .deploy_contract(MockErc1271Wallet::deploy_builder(
            chain.provider(),
            owner.address(),
        ))
        .await
        .unwrap();
    let signer = WalletSigner { owner, wallet };
    let request = eth_mls_core::BindingRequest {
        domain: common::DOMAIN.into(),
        uri: format!("https://{}", common::DOMAIN),
        chain_id: w.devnet.chain_id(),
        valid_for: Some(Duration::from_secs(24 * 3600)),
    };
    let identity: eth_mls_core::Identity = eth_mls_core::Identity::create(&signer, &request)
        .await
        .unwrap();
    let mut wallet_store: eth_mls_core::Store = eth_mls_core::Store::create(
        w.dir.join("wallet.db"),
        &StoreKey::raw([0x77; 32]),
        identity,
    )
    .unwrap();
    let invitation = eth_mls::wire::InvitationRequest {
        request_id: [7; 16],
        group: eth_mls::wire::GroupRef {
            chain_id: w.devnet.chain_id(),
            factory: w.deployment.group_factory.into_array(),
            group_contract: group.into_array(),
        },
        group_id: b"m1".to_vec(),
        inviter: a.into_array(),
        expiry: common::now() as u64 + 3600,
        note: String::new(),
    };
    let answer =
        eth_mls::flows::answer_invitation(&mut wallet_store, &signer, &invitation, common::now())
            .await
            .unwrap();

    // Alice adds it (with its consent) from her store and registers the commit.
    drop(alice);
    {
        let mut store: eth_mls_core::Store =
            eth_mls_core::Store::open(w.dir.join("client-1.db"), &StoreKey::raw([1; 32])).unwrap();
        let mut g = eth_mls_core::Group::load(&store, b"m1").unwrap();
        let alice_chain = w.devnet.chain(1).await.unwrap();
        let v = eth_mls_chain::RpcErc1271Verifier::new().with_chain(&alice_chain);
        let crypto = eth_mls_crypto::Crypto::<eth_mls_crypto::DefaultBackend>::new();
        let kp = eth_mls_core::validate_key_package_bytes(
            &answer.key_package,
            &crypto,
            eth_mls_crypto::SUITE,
            &g.config().policy_at(common::now()),
            Some(&v),
        )
        .await
        .unwrap();
        let aad = eth_mls::wire::encode_consents(&[eth_mls::wire::Consent {
            siwe_message: answer.siwe_message.clone(),
            signature: answer.signature.clone(),
        }])
        .unwrap();
        let out = g
            .add_members_with_aad(
                &mut store,
                &[kp],
                &eth_mls_core::Checks::at(common::now()).with_erc1271(&v),
                aad,
            )
            .await
            .unwrap();
        alice_chain
            .group(group)
            .commit(
                start + 1,
                &out.commit,
                B256::from(eth_mls::verdict::epoch_authenticator_hash(
                    &out.epoch_authenticator,
                )),
                &eth_mls_chain::AclChanges {
                    added: vec![wallet],
                    key_packages: vec![keccak256(&answer.key_package)],
                    removed: vec![],
                },
            )
            .await
            .unwrap();
        g.merge_pending_commit(&mut store).unwrap();
    }
    let mut alice = w.client(1, w.net.add_node("alice 2")).await;

    // Bob's provider refuses eth_call: the merge waits, nothing forks.
    rpc.calls_down.store(true, Ordering::SeqCst);
    for _ in 0..3 {
        w.net.run_until_idle();
        bob.sync().await.unwrap();
        seen[1].extend(bob.drain_events());
    }
    assert!(!forked(&seen[1]), "{:#?}", seen[1]);
    assert!(bob.is_active(group));
    assert_eq!(bob.epoch(group).unwrap(), start);
    assert!(
        seen[1]
            .iter()
            .any(|e| matches!(e, ClientEvent::MergeDelayed { epoch, .. } if *epoch == start + 1)),
        "{:#?}",
        seen[1]
    );
    // It answers again: the same registration is merged.
    rpc.calls_down.store(false, Ordering::SeqCst);
    until(&w.net, &mut [&mut alice, &mut bob], &mut seen, |s| {
        merged_at(&s[1], group, start + 1)
    })
    .await;
    assert!(!forked(&seen[1]), "{:#?}", seen[1]);
    assert_eq!(
        bob.epoch_authenticator(group).unwrap(),
        alice.epoch_authenticator(group).unwrap()
    );
    assert!(bob.members(group).unwrap().contains(&wallet));
}
