//! Seeded simulation: eight clients on anvil and a faulty in-memory network (frames
//! duplicated, delayed and reordered) run a few hundred random operations — send, invite
//! (accepted by the invitee's client), remove, update (any member may commit: concurrent
//! commits race), leave (a removal request to the owner), restart from the store, and going
//! offline and coming back (history). After the network heals and every client is online:
//!
//! - all current members agree on epoch, epoch authenticator and member list, and the member
//!   list is the group contract's ACL;
//! - every message sent while a client was a member, to a client that is still a member,
//!   was received by it exactly once (or reported missed);
//! - nobody received a message sent when it was not a member (a removed member decrypts
//!   nothing sent after its removal);
//! - nobody forked.
//!
//! An adversary, Mallory (a funded account with her own registered keys, outside the
//! group), acts at random between the operations: she sends the owner removal requests "from"
//! members, invitations "from" the owner and in her own name, burns one-time prekeys, replays
//! frames she captured on any inbox, and floods inboxes with garbage. On top of the above,
//! nobody is removed but by the owner's own removals and members' own leaves, and no client is
//! shown an invitation the owner did not send.
//!
//! A byzantine member, Trent (the last client: an honest client most of the time), now and
//! then registers garbage for the next epoch straight to the contract (the group is
//! AnyMember), publishes Remove, Update and Add proposals on the commit topic from a copy of
//! his store,
//! floods the owner with update requests; Mallory publishes frames with forged epoch headers
//! on the group's app topic. The owner's operator recovers a stalled group (`recover`, removing
//! Trent when he is a member); a stall must end within a bounded number of rounds. On top of
//! the above, nobody forks — a garbage commit stalls, it never forks.
//!
//! The same run goes a second time over a chain that misbehaves (issue 30), shorter: anvil
//! mining a block a second, every client's RPC through the fault proxy (429 bursts, requests
//! that hang past the client's timeout, answers lost after the node acted, a 50-block
//! `eth_getLogs` cap), two confirmations, and reorgs of one or two blocks (anvil's rollback:
//! the dropped transactions are gone) between operations. The same properties hold.
//!
//! `ETH_MLS_SIM_SEED` replays a run (a failing run prints its seed); `ETH_MLS_SIM_STEPS` sets
//! the number of operations (default 200; 60 over the faulty chain).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "adversary/mod.rs"]
#[allow(dead_code)]
mod adversary;
mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use eth_mls::{Client, ClientConfig, ClientEvent};
use eth_mls_chain::faults::{Burst, FaultConfig, FaultProxy};
use eth_mls_chain::{Chain, CommitPolicy, Deployment, Devnet, RpcConfig};
use eth_mls_core::{EthereumSigner, LocalEthereumSigner, StoreKey};
use eth_mls_siwe::Address;
use eth_mls_transport::{DeliveryService as _, Faults, MemoryNetwork, MemoryNode};

type C = Client<MemoryNode>;
const CLIENTS: usize = 8;
/// Trent, the byzantine member.
const TRENT: usize = CLIENTS - 1;
/// Rounds within which the owner's recovery must end a stall.
const RECOVERY_ROUNDS: usize = 40;

/// SplitMix64: the seeded choices.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % (n.max(1) as u64)) as usize
    }
    fn pick<T: Copy>(&mut self, v: &[T]) -> Option<T> {
        if v.is_empty() {
            None
        } else {
            Some(v[self.below(v.len())])
        }
    }
}

/// The misbehaving chain of the second run.
struct FaultyChain {
    /// Every client's RPC goes through it.
    proxy: FaultProxy,
    /// The clients' RPC settings (a short timeout: a hung request costs this much).
    rpc: RpcConfig,
}

struct Sim {
    devnet: Devnet,
    /// The fault proxy the clients' RPC goes through, if any.
    faulty: Option<FaultyChain>,
    /// The clients' confirmation depth.
    confirmations: u64,
    deployment: Deployment,
    net: MemoryNetwork,
    dir: std::path::PathBuf,
    /// The clients online (None: offline).
    clients: Vec<Option<C>>,
    addresses: Vec<Address>,
    /// Every event each client produced.
    events: Vec<Vec<ClientEvent>>,
    seed: u64,
}

impl Sim {
    async fn open(&self, i: usize) -> C {
        let key = self.devnet.signer(i + 1).unwrap().to_bytes();
        let signer: Arc<dyn EthereumSigner> =
            Arc::new(LocalEthereumSigner::from_bytes(key.as_slice()).unwrap());
        let mut config = ClientConfig::new(self.deployment, common::DOMAIN);
        config.poll_interval = Duration::from_millis(5);
        config.confirmations = self.confirmations;
        let node = self.net.add_node(&format!("client {i}"));
        let chain = match &self.faulty {
            Some(f) => Chain::connect_with(&f.proxy.url(), self.devnet.signer(i + 1), &f.rpc)
                .await
                .unwrap(),
            None => self.devnet.chain(i + 1).await.unwrap(),
        };
        Client::open(
            signer,
            chain,
            node,
            self.dir.join(format!("sim-{i}.db")),
            &StoreKey::raw([i as u8 + 1; 32]),
            config,
        )
        .await
        .unwrap_or_else(|e| panic!("client {i} does not open: {e} (seed {})", self.seed))
    }

    /// Delivers what is due, then lets every online client take it in; invitations are
    /// accepted.
    async fn round(&mut self) {
        self.net.advance(Duration::from_millis(25));
        // All clients at once: their commits race for the same epochs.
        let seed = self.seed;
        futures_util::future::join_all(self.clients.iter_mut().enumerate().filter_map(|(i, c)| {
            c.as_mut().map(|c| async move {
                c.sync()
                    .await
                    .unwrap_or_else(|e| panic!("client {i}: {e} (seed {seed})"));
            })
        }))
        .await;
        for i in 0..CLIENTS {
            let Some(c) = self.clients[i].as_mut() else {
                continue;
            };
            let events = c.drain_events();
            for e in &events {
                if let ClientEvent::InvitationReceived { request_id, .. } = e {
                    c.accept(*request_id)
                        .await
                        .unwrap_or_else(|e| panic!("client {i} accepts: {e} (seed {})", self.seed));
                }
            }
            self.events[i].extend(events);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_clients_random_operations_converge() {
    run(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_clients_converge_over_a_faulty_reorganizing_chain() {
    run(true).await;
}

/// One simulation run; `faulty`: over the misbehaving chain.
async fn run(faulty: bool) {
    let seed: u64 = std::env::var("ETH_MLS_SIM_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_0001);
    let steps: usize = std::env::var("ETH_MLS_SIM_STEPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(if faulty { 60 } else { 200 });
    println!("ETH_MLS_SIM_SEED={seed} ETH_MLS_SIM_STEPS={steps} faulty chain: {faulty}");
    let mut rng = Rng(seed);
    let devnet = if faulty {
        Devnet::start_with(&["--block-time", "1"]).unwrap()
    } else {
        Devnet::start().unwrap()
    };
    let deployment = devnet.deploy().await.unwrap();
    let faulty = if faulty {
        let proxy = FaultProxy::start(
            &devnet.rpc_url(),
            FaultConfig {
                rate_limit: Some(Burst {
                    every: 50,
                    length: 3,
                }),
                hang: Some(Burst {
                    every: 307,
                    length: 1,
                }),
                hang_for: Duration::from_millis(1_500),
                lose_answer: Some(Burst {
                    every: 97,
                    length: 1,
                }),
                max_log_range: Some(50),
                ..FaultConfig::default()
            },
        )
        .await
        .unwrap();
        let rpc = RpcConfig {
            request_timeout: Duration::from_secs(1),
            initial_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(200),
            ..RpcConfig::default()
        };
        Some(FaultyChain { proxy, rpc })
    } else {
        None
    };
    let confirmations = if faulty.is_some() { 2 } else { 0 };
    // With blocks a second apart and two confirmations, a recovery takes seconds, not rounds.
    let recovery_rounds = if faulty.is_some() {
        RECOVERY_ROUNDS * 20
    } else {
        RECOVERY_ROUNDS
    };
    let faults = Faults {
        drop: 0.0,
        duplicate: 0.1,
        min_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(40),
        reorder_window: Duration::from_millis(30),
    };
    let net = MemoryNetwork::new(seed, faults);
    let mut sim = Sim {
        devnet,
        faulty,
        confirmations,
        deployment,
        net,
        dir: common::dir(if confirmations > 0 {
            "simulation-faulty"
        } else {
            "simulation"
        }),
        clients: Vec::new(),
        addresses: Vec::new(),
        events: vec![Vec::new(); CLIENTS],
        seed,
    };
    for i in 0..CLIENTS {
        let mut c = sim.open(i).await;
        c.publish_keys().await.unwrap();
        sim.addresses.push(c.address());
        sim.clients.push(Some(c));
    }
    let owner = sim.addresses[0];
    let group = sim.clients[0]
        .as_mut()
        .unwrap()
        .create_group(b"simulation", CommitPolicy::AnyMember)
        .await
        .unwrap();

    // Mallory: her own registered keys, a node listening to every inbox.
    let mallory = adversary::Mallory {
        node: sim.net.add_node("mallory"),
        chain: sim.devnet.chain(CLIENTS + 1).await.unwrap(),
        deployment: sim.deployment,
    };
    let mut mallory_device = mallory.registered_device().await;
    let mut inboxes = Vec::new();
    for a in &sim.addresses {
        inboxes.push(
            mallory
                .node
                .subscribe(&eth_mls_transport::Topic::Inbox {
                    chain_id: sim.devnet.chain_id(),
                    account: a.into_array(),
                })
                .await
                .unwrap(),
        );
    }
    let mut captured: Vec<(Address, Vec<u8>)> = Vec::new();
    let mut invitations_sent: BTreeSet<[u8; 16]> = BTreeSet::new();
    let group_ref = eth_mls::wire::GroupRef {
        chain_id: sim.devnet.chain_id(),
        factory: sim.deployment.group_factory.into_array(),
        group_contract: group.into_array(),
    };
    let mut attacks: BTreeMap<&'static str, usize> = BTreeMap::new();
    let trent_chain = sim.devnet.chain(TRENT + 1).await.unwrap();
    let app_topic = eth_mls_transport::Topic::App {
        chain_id: sim.devnet.chain_id(),
        group: group.into_array(),
    };
    let commit_topic = eth_mls_transport::Topic::Commit {
        chain_id: sim.devnet.chain_id(),
        group: group.into_array(),
    };
    // The round at which the owner's client first reported the current stall.
    let mut stalled_since: Option<usize> = None;
    let mut stalls = 0usize;
    let mut round_no = 0usize;

    // What each message was: (sender, the members in the sender's view when it was sent).
    let mut sent: BTreeMap<Vec<u8>, (usize, BTreeSet<Address>)> = BTreeMap::new();
    let mut removed_ever: BTreeSet<Address> = BTreeSet::new();
    let mut counts: BTreeMap<&'static str, usize> = BTreeMap::new();
    for step in 0..steps {
        let online: Vec<usize> = (0..CLIENTS).filter(|i| sim.clients[*i].is_some()).collect();
        let members: Vec<usize> = online
            .iter()
            .copied()
            .filter(|i| sim.clients[*i].as_ref().unwrap().is_active(group))
            .collect();
        let op = rng.below(100);
        let done: &'static str = match op {
            0..=39 => {
                let Some(i) = rng.pick(&members) else {
                    continue;
                };
                let c = sim.clients[i].as_mut().unwrap();
                let text = format!("step {step} from {i}").into_bytes();
                match c.send(group, &text).await {
                    Ok(()) => {}
                    // It learned of its removal while catching up before sending.
                    Err(eth_mls::Error::NotMember { .. }) => continue,
                    Err(e) => panic!("client {i} sends: {e} (seed {seed})"),
                }
                // The members of the epoch it was encrypted in.
                let view: BTreeSet<Address> = c.members(group).unwrap().into_iter().collect();
                sent.insert(text, (i, view));
                "send"
            }
            40..=54 => {
                // The owner invites someone who is not a member (again, if it was removed).
                let Some(alice) = sim.clients[0].as_mut() else {
                    continue;
                };
                let current: BTreeSet<Address> =
                    alice.members(group).unwrap().into_iter().collect();
                let candidates: Vec<usize> = (1..CLIENTS)
                    .filter(|i| !current.contains(&sim.addresses[*i]))
                    .collect();
                let Some(i) = rng.pick(&candidates) else {
                    continue;
                };
                let pending = alice
                    .store()
                    .records(eth_mls::state::INVITATIONS)
                    .unwrap()
                    .iter()
                    .any(|(_, v)| v[..20] == sim.addresses[i][..]);
                if pending {
                    continue;
                }
                invitations_sent.insert(alice.invite(group, sim.addresses[i], "").await.unwrap());
                "invite"
            }
            55..=62 => {
                let Some(alice) = sim.clients[0].as_mut() else {
                    continue;
                };
                let current: Vec<Address> = alice
                    .members(group)
                    .unwrap()
                    .into_iter()
                    .filter(|a| *a != owner)
                    .collect();
                let Some(victim) = rng.pick(&current) else {
                    continue;
                };
                alice.remove(group, &[victim]).await.unwrap();
                removed_ever.insert(victim);
                "remove"
            }
            63..=77 => {
                let Some(i) = rng.pick(&members) else {
                    continue;
                };
                sim.clients[i]
                    .as_mut()
                    .unwrap()
                    .update(group)
                    .await
                    .unwrap();
                "update"
            }
            78..=81 => {
                let leavers: Vec<usize> = members.iter().copied().filter(|i| *i != 0).collect();
                let Some(i) = rng.pick(&leavers) else {
                    continue;
                };
                sim.clients[i]
                    .as_mut()
                    .unwrap()
                    .request_removal(group, owner)
                    .await
                    .unwrap();
                removed_ever.insert(sim.addresses[i]);
                "leave"
            }
            82..=89 => {
                let Some(i) = rng.pick(&online) else { continue };
                sim.clients[i] = None;
                sim.clients[i] = Some(sim.open(i).await);
                "restart"
            }
            _ => {
                // Offline for a while, or back online.
                let offline: Vec<usize> =
                    (1..CLIENTS).filter(|i| sim.clients[*i].is_none()).collect();
                if rng.below(2) == 0 && !offline.is_empty() {
                    let i = rng.pick(&offline).unwrap();
                    sim.clients[i] = Some(sim.open(i).await);
                    "online"
                } else {
                    let candidates: Vec<usize> =
                        online.iter().copied().filter(|i| *i != 0).collect();
                    let Some(i) = rng.pick(&candidates) else {
                        continue;
                    };
                    sim.clients[i] = None;
                    "offline"
                }
            }
        };
        *counts.entry(done).or_default() += 1;
        // Mallory, now and then.
        for (i, inbox) in inboxes.iter_mut().enumerate() {
            use futures_util::{FutureExt as _, StreamExt as _};
            while let Some(Some(e)) = inbox.next().now_or_never() {
                if captured.len() < 256 {
                    captured.push((sim.addresses[i], e.bytes));
                }
            }
        }
        if rng.below(100) < 15 {
            let victim = sim.addresses[rng.below(CLIENTS)];
            let now = common::now() as u64;
            let attack: &'static str = match rng.below(6) {
                0 => {
                    // A removal request "from" a member, with Mallory's keys.
                    let claimed = sim.addresses[1 + rng.below(CLIENTS - 1)];
                    let mut forged = adversary::Mallory::device_claiming(claimed);
                    let m =
                        eth_mls::wire::ClientMessage::ChangeRequest(eth_mls::wire::ChangeRequest {
                            request_id: (rng.next() as u128).to_be_bytes(),
                            group: group_ref,
                            epoch: 0,
                            kind: eth_mls::wire::ChangeKind::Removal,
                            target: claimed.into_array(),
                            proposal: Vec::new(),
                        });
                    mallory
                        .send_as(
                            &mut forged,
                            owner,
                            eth_mls_channel::OneTimePrekeyChoice::None,
                            &m,
                        )
                        .await;
                    "forged removal request"
                }
                1 => {
                    // An invitation "from" the owner, or in her own name.
                    let own = rng.below(2) == 0;
                    let inviter = if own {
                        mallory.chain.sender().unwrap()
                    } else {
                        owner
                    };
                    let m = eth_mls::wire::ClientMessage::InvitationRequest(
                        eth_mls::wire::InvitationRequest {
                            request_id: (rng.next() as u128).to_be_bytes(),
                            group: group_ref,
                            group_id: b"simulation".to_vec(),
                            inviter: inviter.into_array(),
                            expiry: now + 3600,
                            note: "from mallory".into(),
                        },
                    );
                    if own {
                        mallory
                            .send_as(
                                &mut mallory_device,
                                victim,
                                eth_mls_channel::OneTimePrekeyChoice::None,
                                &m,
                            )
                            .await;
                    } else {
                        let mut forged = adversary::Mallory::device_claiming(owner);
                        mallory
                            .send_as(
                                &mut forged,
                                victim,
                                eth_mls_channel::OneTimePrekeyChoice::None,
                                &m,
                            )
                            .await;
                    }
                    "invitation"
                }
                2 => {
                    // Burn up to three of the victim's listed one-time prekeys.
                    let listed: Vec<u32> = mallory
                        .bundle_of(victim)
                        .await
                        .bundle()
                        .one_time_prekeys
                        .iter()
                        .map(|k| k.id)
                        .take(3)
                        .collect();
                    let hello = eth_mls::wire::ClientMessage::RequestRejected(
                        eth_mls::wire::RequestRejected {
                            request_id: [0; 16],
                            reason: eth_mls::wire::RejectReason::Invalid,
                        },
                    );
                    for id in listed {
                        mallory
                            .send_as(
                                &mut mallory_device,
                                victim,
                                eth_mls_channel::OneTimePrekeyChoice::Id(id),
                                &hello,
                            )
                            .await;
                    }
                    "burn"
                }
                3 => {
                    // A frame captured on some inbox, published again.
                    let Some((to, bytes)) = captured.get(rng.below(captured.len())).cloned() else {
                        continue;
                    };
                    mallory.publish(to, bytes).await;
                    "replay"
                }
                4 => {
                    // A flood of garbage on an inbox.
                    for k in 0..5u64 {
                        let len = 1 + rng.below(300);
                        let junk: Vec<u8> = (0..len)
                            .map(|j| (rng.next() ^ k ^ j as u64) as u8)
                            .collect();
                        mallory.publish(victim, junk).await;
                    }
                    "flood"
                }
                _ => {
                    // A request in her own name for a group she is not in.
                    let m =
                        eth_mls::wire::ClientMessage::ReaddRequest(eth_mls::wire::ReaddRequest {
                            request_id: (rng.next() as u128).to_be_bytes(),
                            group: group_ref,
                            last_epoch: 0,
                            key_package: vec![1, 2, 3],
                        });
                    mallory
                        .send_as(
                            &mut mallory_device,
                            owner,
                            eth_mls_channel::OneTimePrekeyChoice::None,
                            &m,
                        )
                        .await;
                    "request from outside"
                }
            };
            *attacks.entry(attack).or_default() += 1;
        }
        // Trent, now and then.
        if rng.below(100) < 6 {
            let trent = sim.addresses[TRENT];
            let attack: &'static str = match rng.below(4) {
                0 => {
                    // Garbage for the next epoch, straight to the contract.
                    let g = trent_chain.group(group);
                    let head = g.current_epoch().await.unwrap().epoch;
                    let garbage: Vec<u8> = (0..64).map(|_| rng.next() as u8).collect();
                    match g
                        .commit(
                            head + 1,
                            &garbage,
                            eth_mls_chain::alloy::primitives::B256::ZERO,
                            &eth_mls_chain::AclChanges::none(),
                        )
                        .await
                    {
                        Ok(_) => "garbage commit",
                        // Not a member now, within a recovery window, or an honest commit
                        // took the epoch.
                        Err(_) => "garbage commit refused",
                    }
                }
                1 => {
                    // Proposals made from a copy of his store (a modified client: his running
                    // one stays as it was), published on the commit topic: a Remove of a
                    // member (the owner, sometimes), his own Update, an Add — every type
                    // eth-mls-core can make (GroupContextExtensions, PSK and ReInit are refused
                    // by every verdict: `verdict::tests`).
                    let was_online = sim.clients[TRENT].is_some();
                    sim.clients[TRENT] = None;
                    let copy = sim.dir.join("trent-copy.db");
                    for suffix in ["", "-wal", "-shm"] {
                        let from = sim.dir.join(format!("sim-{TRENT}.db{suffix}"));
                        let to = sim.dir.join(format!("trent-copy.db{suffix}"));
                        let _ = std::fs::remove_file(&to);
                        if from.exists() {
                            std::fs::copy(&from, &to).unwrap();
                        }
                    }
                    if was_online {
                        sim.clients[TRENT] = Some(sim.open(TRENT).await);
                    }
                    let mut store: eth_mls_core::Store =
                        eth_mls_core::Store::open(&copy, &StoreKey::raw([TRENT as u8 + 1; 32]))
                            .unwrap();
                    let mut frames = Vec::new();
                    if let Ok(mut g) = eth_mls_core::Group::load(&store, b"simulation")
                        && g.is_active()
                    {
                        let others: Vec<Address> =
                            g.members().into_iter().filter(|a| *a != trent).collect();
                        if let Some(victim) = rng.pick(&others)
                            && let Ok((e, _)) = g.propose_remove(&mut store, victim)
                        {
                            frames.push(e.bytes);
                        }
                        if let Ok((e, _)) = g.propose_self_update(&mut store) {
                            frames.push(e.bytes);
                        }
                        // An Add of a fresh key package of his own (a second leaf).
                        let crypto =
                            eth_mls_crypto::Crypto::<eth_mls_crypto::DefaultBackend>::new();
                        if let Ok(kp) = store.generate_key_package(None)
                            && let Ok(kp) = eth_mls_core::validate_key_package_bytes(
                                &kp,
                                &crypto,
                                eth_mls_crypto::SUITE,
                                &g.config().policy_at(common::now()),
                                None,
                            )
                            .await
                            && let Ok((e, _)) = g
                                .propose_add(
                                    &mut store,
                                    &kp,
                                    &eth_mls_core::Checks::at(common::now()),
                                )
                                .await
                        {
                            frames.push(e.bytes);
                        }
                    }
                    drop(store);
                    for f in frames {
                        let _ = mallory.node.publish(&commit_topic, f).await;
                    }
                    "injected proposals"
                }
                2 => {
                    // A flood of update requests to the owner.
                    if let Some(c) = sim.clients[TRENT].as_mut()
                        && c.is_active(group)
                    {
                        for _ in 0..4 {
                            let _ = c.request_update(group, owner).await;
                        }
                    }
                    "request flood"
                }
                _ => {
                    // Mallory: a real app frame with its epoch header rewritten, many times.
                    let page = mallory
                        .node
                        .history(&app_topic, eth_mls_transport::Cursor::START, 4)
                        .await
                        .unwrap();
                    if let Some(real) = page.envelopes.into_iter().next().map(|e| e.bytes) {
                        // version, wire format, group id <V> (1 + 10 bytes), then the epoch.
                        let at = 4 + 1 + b"simulation".len();
                        for _ in 0..20 {
                            let mut forged = real.clone();
                            let epoch = rng.next() % 1_000_000;
                            forged[at..at + 8].copy_from_slice(&epoch.to_be_bytes());
                            let _ = mallory.node.publish(&app_topic, forged).await;
                        }
                    }
                    "forged epoch headers"
                }
            };
            *attacks.entry(attack).or_default() += 1;
        }
        // A reorg within the confirmations, now and then, over the faulty chain.
        if sim.faulty.is_some() && rng.below(100) < 10 {
            common::rollback(&sim.devnet, 1 + rng.below(2) as u64).await;
            *attacks.entry("reorg").or_default() += 1;
        }
        sim.round().await;
        round_no += 1;
        // The owner's operator: a stalled group is recovered (Trent removed when he is in).
        if let Some(alice) = sim.clients[0].as_mut()
            && alice.stalled(group).unwrap().is_some()
        {
            if stalled_since.is_none() {
                stalled_since = Some(round_no);
                stalls += 1;
                let trent = sim.addresses[TRENT];
                let remove: Vec<Address> = if alice.members(group).unwrap().contains(&trent) {
                    removed_ever.insert(trent);
                    vec![trent]
                } else {
                    vec![]
                };
                alice
                    .recover(group, &remove)
                    .await
                    .unwrap_or_else(|e| panic!("the owner cannot recover: {e} (seed {seed})"));
            }
            assert!(
                round_no - stalled_since.unwrap_or(round_no) <= recovery_rounds,
                "the owner did not recover the stalled group within {recovery_rounds} rounds (seed {seed})"
            );
        } else if sim.clients[0].is_some() {
            stalled_since = None;
        }
    }
    if let Some(f) = &sim.faulty {
        println!("through the proxy: {:?}", f.proxy.stats());
    }
    println!("stalls recovered: {stalls}");
    println!("operations: {counts:?}");
    println!("attacks: {attacks:?}");

    // The network heals, everyone comes online, and the clients run until quiet.
    for i in 0..CLIENTS {
        if sim.clients[i].is_none() {
            sim.clients[i] = Some(sim.open(i).await);
        }
    }
    let contract = sim.devnet.chain(1).await.unwrap().group(group);
    let mut quiet = 0;
    for _ in 0..2_000 {
        sim.round().await;
        let chain_epoch = contract.current_epoch().await.unwrap().epoch;
        let settled = sim.clients.iter().flatten().all(|c| {
            !c.is_active(group)
                || (c.epoch(group).unwrap() == chain_epoch
                    && eth_mls::state::intents(c.store()).unwrap().is_empty())
        });
        quiet = if settled { quiet + 1 } else { 0 };
        if quiet >= 20 {
            break;
        }
    }
    assert!(quiet >= 20, "the clients did not settle (seed {seed})");

    // Agreement, and the member list is the ACL.
    let acl: BTreeSet<Address> = contract.members().await.unwrap().into_iter().collect();
    let active: Vec<usize> = (0..CLIENTS)
        .filter(|i| sim.clients[*i].as_ref().unwrap().is_active(group))
        .collect();
    let reference = sim.clients[0].as_ref().unwrap();
    for &i in &active {
        let c = sim.clients[i].as_ref().unwrap();
        assert_eq!(
            c.epoch(group).unwrap(),
            reference.epoch(group).unwrap(),
            "client {i} (seed {seed})"
        );
        assert_eq!(
            c.epoch_authenticator(group).unwrap(),
            reference.epoch_authenticator(group).unwrap(),
            "client {i} (seed {seed})"
        );
        let members: BTreeSet<Address> = c.members(group).unwrap().into_iter().collect();
        assert_eq!(
            members, acl,
            "client {i}'s member list is not the ACL (seed {seed})"
        );
    }
    let active_addresses: BTreeSet<Address> = active.iter().map(|i| sim.addresses[*i]).collect();
    let delivered: usize = sim
        .events
        .iter()
        .flatten()
        .filter(|e| matches!(e, ClientEvent::Message { .. }))
        .count();
    let lost: usize = sim
        .events
        .iter()
        .flatten()
        .filter(|e| matches!(e, ClientEvent::EpochLost { .. }))
        .count();
    println!(
        "final epoch {}, {} members, {} messages sent, {delivered} delivered, {lost} epochs lost in races",
        reference.epoch(group).unwrap(),
        active.len(),
        sent.len()
    );
    assert_eq!(
        active_addresses, acl,
        "the active clients are the ACL (seed {seed})"
    );

    // Nobody was removed but by the owner's removals and members' own leaves, and nobody was
    // shown an invitation the owner did not send.
    for (i, events) in sim.events.iter().enumerate() {
        for e in events {
            match e {
                ClientEvent::MemberRemoved { member, .. } => assert!(
                    removed_ever.contains(member),
                    "client {i} saw {member} removed by nobody honest (seed {seed})"
                ),
                ClientEvent::InvitationReceived { request_id, .. } => assert!(
                    invitations_sent.contains(request_id),
                    "client {i} was shown an invitation the owner did not send (seed {seed})"
                ),
                _ => {}
            }
        }
    }

    // Last, every active member says something once: every other active member reads each
    // exactly once.
    let finals: Vec<(usize, Vec<u8>)> = active
        .iter()
        .map(|i| (*i, format!("last word from {i}").into_bytes()))
        .collect();
    for (i, text) in &finals {
        sim.clients[*i]
            .as_mut()
            .unwrap()
            .send(group, text)
            .await
            .unwrap_or_else(|e| panic!("client {i} sends its last word: {e} (seed {seed})"));
    }
    let count = |events: &[ClientEvent], text: &[u8]| {
        events
            .iter()
            .filter(|e| matches!(e, ClientEvent::Message { data, .. } if data == text))
            .count()
    };
    for _ in 0..1_000 {
        let all = active.iter().all(|r| {
            finals
                .iter()
                .all(|(i, t)| i == r || count(&sim.events[*r], t) >= 1)
        });
        if all {
            break;
        }
        sim.round().await;
    }
    for _ in 0..10 {
        sim.round().await;
    }
    for r in &active {
        for (i, t) in &finals {
            if i != r {
                assert_eq!(
                    count(&sim.events[*r], t),
                    1,
                    "client {r} read client {i}'s last word (seed {seed})"
                );
            }
        }
    }

    for (i, events) in sim.events.iter().enumerate() {
        let mut kinds: BTreeMap<String, usize> = BTreeMap::new();
        for e in events {
            let name = format!("{e:?}");
            let name = name.split([' ', '(', '{']).next().unwrap_or("").to_owned();
            *kinds.entry(name).or_default() += 1;
        }
        println!("client {i}: {kinds:?}");
        if std::env::var("ETH_MLS_SIM_VERBOSE").is_ok() {
            for e in events {
                if !matches!(
                    e,
                    ClientEvent::Message { .. } | ClientEvent::CommitMerged { .. }
                ) {
                    println!("  {e:?}");
                }
            }
        }
    }

    // Messages: exactly once to members that still are; never to non-members.
    for (i, events) in sim.events.iter().enumerate() {
        // Trent's own client may fork: it cannot process the garbage its account registered
        // (and takes it for lost state). The honest ones never do.
        assert!(
            i == TRENT
                || !events
                    .iter()
                    .any(|e| matches!(e, ClientEvent::ForkDetected { .. })),
            "client {i} forked (seed {seed})"
        );
        let mut got: BTreeMap<&[u8], usize> = BTreeMap::new();
        for e in events {
            if let ClientEvent::Message { data, .. } = e {
                *got.entry(data.as_slice()).or_default() += 1;
            }
        }
        let me = sim.addresses[i];
        let missed_any = events.iter().any(|e| {
            matches!(
                e,
                ClientEvent::MissedMessages { .. } | ClientEvent::MessageLost { .. }
            )
        });
        for (text, (sender, view)) in &sent {
            let n = got.get(text.as_slice()).copied().unwrap_or(0);
            if !view.contains(&me) {
                assert_eq!(
                    n, 0,
                    "client {i} read a message sent while it was not a member (seed {seed})"
                );
            } else if *sender != i
                && active_addresses.contains(&me)
                && !removed_ever.contains(&me)
                && !missed_any
            {
                if n != 1 {
                    let rejected: Vec<&ClientEvent> = events
                        .iter()
                        .filter(|e| matches!(e, ClientEvent::Rejected { .. }))
                        .collect();
                    eprintln!("client {i} rejected: {rejected:#?}");
                    eprintln!(
                        "sender {sender} events: {:#?}",
                        sim.events[*sender]
                            .iter()
                            .filter(|e| !matches!(e, ClientEvent::Message { .. }))
                            .collect::<Vec<_>>()
                    );
                }
                assert_eq!(
                    n,
                    1,
                    "client {i} received {:?} {n} times (seed {seed})",
                    String::from_utf8_lossy(text)
                );
            } else {
                assert!(n <= 1, "client {i} received a message twice (seed {seed})");
            }
        }
    }
}
