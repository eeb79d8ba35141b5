//! The `Client` over real gossip: three libp2p gossipsub nodes on 127.0.0.1 and anvil.
//! Alice creates a group and invites bob and carol over the 1:1 channel (inbox topics), the
//! Welcomes and the commits travel by gossip and the chain, and messages flow between all
//! three; carol is removed and the next message does not reach her.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use eth_mls::{Client, ClientConfig, ClientEvent};
use eth_mls_chain::{CommitPolicy, Deployment, Devnet};
use eth_mls_core::{EthereumSigner, LocalEthereumSigner, StoreKey};
use eth_mls_siwe::Address;
use eth_mls_transport::libp2p::identity::Keypair;
use eth_mls_transport::{FrameValidator, GossipConfig, GossipNode, Limits, Topic};

type C = Client<GossipNode>;

async fn node(bootstrap: Vec<eth_mls_transport::libp2p::Multiaddr>) -> GossipNode {
    let cfg = GossipConfig {
        bootstrap,
        heartbeat: Duration::from_millis(100),
        publish_timeout: Duration::from_secs(2),
        ..GossipConfig::default()
    };
    GossipNode::start(
        Keypair::generate_ed25519(),
        cfg,
        Arc::new(FrameValidator::new(Limits::default())),
    )
    .await
    .unwrap()
}

async fn client(
    devnet: &Devnet,
    d: Deployment,
    index: usize,
    node: GossipNode,
    dir: &std::path::Path,
) -> C {
    let key = devnet.signer(index).unwrap().to_bytes();
    let signer: Arc<dyn EthereumSigner> =
        Arc::new(LocalEthereumSigner::from_bytes(key.as_slice()).unwrap());
    let mut config = ClientConfig::new(d, common::DOMAIN);
    config.poll_interval = Duration::from_millis(20);
    Client::open(
        signer,
        devnet.chain(index).await.unwrap(),
        node,
        dir.join(format!("gossip-{index}.db")),
        &StoreKey::raw([index as u8; 32]),
        config,
    )
    .await
    .unwrap()
}

/// Runs the three clients until `done` holds (or 60 s pass).
async fn until(
    clients: &mut [&mut C],
    seen: &mut [Vec<ClientEvent>],
    what: &str,
    done: impl Fn(&[Vec<ClientEvent>]) -> bool,
) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done(seen) {
        for (c, s) in clients.iter_mut().zip(seen.iter_mut()) {
            if let Some(e) = c.next_event(Duration::from_millis(20)).await.unwrap() {
                s.push(e);
            }
            s.extend(c.drain_events());
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {seen:#?}"
        );
    }
}

fn got(events: &[ClientEvent], from: Address, text: &[u8]) -> bool {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_clients_over_gossip_on_loopback() {
    let devnet = Devnet::start().unwrap();
    let d = devnet.deploy().await.unwrap();
    let dir = common::dir("gossip");
    let hub = node(vec![]).await;
    let bootstrap = hub.addresses();
    let (nb, nc) = (node(bootstrap.clone()).await, node(bootstrap).await);
    let mut alice = client(&devnet, d, 1, hub.clone(), &dir).await;
    let mut bob = client(&devnet, d, 2, nb.clone(), &dir).await;
    let mut carol = client(&devnet, d, 3, nc.clone(), &dir).await;
    let (a, b, c) = (alice.address(), bob.address(), carol.address());
    // Mesh readiness: the hub sees both inboxes subscribed.
    for who in [b, c] {
        let inbox = Topic::Inbox {
            chain_id: devnet.chain_id(),
            account: who.into_array(),
        };
        hub.wait_for_peers(&inbox, 1, Duration::from_secs(30))
            .await
            .unwrap();
    }
    for client in [&mut alice, &mut bob, &mut carol] {
        client.publish_keys().await.unwrap();
    }
    let group = alice
        .create_group(b"over gossip", CommitPolicy::AdminsOnly)
        .await
        .unwrap();
    alice.invite(group, b, "").await.unwrap();
    alice.invite(group, c, "").await.unwrap();
    let mut seen = vec![Vec::new(), Vec::new(), Vec::new()];
    until(
        &mut [&mut alice, &mut bob, &mut carol],
        &mut seen,
        "invitations",
        |s| invitation(&s[1]).is_some() && invitation(&s[2]).is_some(),
    )
    .await;
    bob.accept(invitation(&seen[1]).unwrap()).await.unwrap();
    carol.accept(invitation(&seen[2]).unwrap()).await.unwrap();
    until(
        &mut [&mut alice, &mut bob, &mut carol],
        &mut seen,
        "joins",
        |s| {
            [&s[1], &s[2]]
                .iter()
                .all(|e| e.iter().any(|e| matches!(e, ClientEvent::Joined { .. })))
        },
    )
    .await;
    // Everyone at the same epoch before chatting (carol's add is the last commit).
    until(
        &mut [&mut alice, &mut bob, &mut carol],
        &mut seen,
        "the same epoch",
        |_| true,
    )
    .await;
    let app = Topic::App {
        chain_id: devnet.chain_id(),
        group: group.into_array(),
    };
    hub.wait_for_peers(&app, 2, Duration::from_secs(30))
        .await
        .unwrap();
    nb.wait_for_peers(&app, 1, Duration::from_secs(30))
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !(bob.epoch(group).unwrap() == alice.epoch(group).unwrap()
        && carol.epoch(group).unwrap() == alice.epoch(group).unwrap())
    {
        for c in [&mut alice, &mut bob, &mut carol] {
            c.sync().await.unwrap();
        }
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    alice.send(group, b"hello over gossip").await.unwrap();
    bob.send(group, b"bob here").await.unwrap();
    until(
        &mut [&mut alice, &mut bob, &mut carol],
        &mut seen,
        "messages",
        |s| {
            got(&s[1], a, b"hello over gossip")
                && got(&s[2], a, b"hello over gossip")
                && got(&s[0], b, b"bob here")
                && got(&s[2], b, b"bob here")
        },
    )
    .await;
    alice.remove(group, &[c]).await.unwrap();
    until(
        &mut [&mut alice, &mut bob, &mut carol],
        &mut seen,
        "the removal",
        |s| {
            s[2].iter()
                .any(|e| matches!(e, ClientEvent::Removed { .. }))
                && s[1]
                    .iter()
                    .any(|e| matches!(e, ClientEvent::MemberRemoved { member, .. } if *member == c))
        },
    )
    .await;
    alice.send(group, b"after carol").await.unwrap();
    until(
        &mut [&mut alice, &mut bob, &mut carol],
        &mut seen,
        "the last message",
        |s| got(&s[1], a, b"after carol"),
    )
    .await;
    assert!(!got(&seen[2], a, b"after carol"));
    assert_eq!(
        bob.epoch_authenticator(group).unwrap(),
        alice.epoch_authenticator(group).unwrap()
    );
}
