//! A client process killed with SIGKILL restarts with everything intact and finishes its
//! intents.
//!
//! The worker (this test binary again, as a child process) is alice, an admin: she creates a
//! group, invites bob, commits self-updates until the group reaches a target epoch, and sends
//! numbered messages — every life starting from her store alone, doing only what is not done
//! yet. Bob runs in the test process. Delivery is ERC-7627 on the test's anvil (the chain
//! channel), so both processes share it. The test kills alice at every named step of the
//! client ([`eth_mls::STEPS`]) and of eth-mls-core's group operations, then at seeded random
//! moments, and lets a last life finish. Then: bob is a member at alice's epoch with her epoch
//! authenticator, has every message exactly once, and nobody forked or lost an intent.
//!
//! `ETH_MLS_CRASH_SEED` replays the random kills (the seed is printed).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, OnceLock, mpsc};
use std::time::{Duration, Instant};

use eth_mls::{Client, ClientConfig, ClientEvent};
use eth_mls_chain::alloy::signers::local::PrivateKeySigner;
use eth_mls_chain::{Chain, ChainChannel, CommitPolicy, Deployment, Devnet, StreamConfig};
use eth_mls_core::{EthereumSigner, LocalEthereumSigner, OutboxKind, StoreKey};
use eth_mls_siwe::Address;

const WORKER: &str = "ETH_MLS_CRASH_WORKER";
const DIR: &str = "ETH_MLS_CRASH_DIR";
const RPC: &str = "ETH_MLS_CRASH_RPC";
const KEY: &str = "ETH_MLS_CRASH_KEY";
const PEER: &str = "ETH_MLS_CRASH_PEER";
const STEP: &str = "ETH_MLS_CRASH_STEP";
const ROUND: &str = "ETH_MLS_CRASH_ROUND";
/// Self-updates after bob joined.
const UPDATES: u64 = 2;
/// Messages alice sends.
const MESSAGES: usize = 3;

fn config(deployment: Deployment) -> ClientConfig {
    let mut c = ClientConfig::new(deployment, common::DOMAIN);
    c.poll_interval = Duration::from_millis(20);
    c
}

fn stream() -> StreamConfig {
    common::fast()
}

async fn client(
    rpc: &str,
    key: &[u8],
    deployment: Deployment,
    path: &Path,
) -> Client<ChainChannel> {
    let signer: Arc<dyn EthereumSigner> = Arc::new(LocalEthereumSigner::from_bytes(key).unwrap());
    let chain = Chain::connect(rpc, Some(PrivateKeySigner::from_slice(key).unwrap()))
        .await
        .unwrap();
    let delivery = ChainChannel::new(chain.clone(), deployment.erc7627, stream());
    Client::open(
        signer,
        chain,
        delivery,
        path,
        &StoreKey::raw([0x5a; 32]),
        config(deployment),
    )
    .await
    .unwrap()
}

// ---------------------------------------------------------------------------------------
// The worker (child process): alice.
// ---------------------------------------------------------------------------------------

static TARGET: OnceLock<(String, u32)> = OnceLock::new();
static HITS: AtomicU32 = AtomicU32::new(0);

/// At the target step's n-th occurrence: tell the parent and wait to be killed.
fn observer(step: &'static str) {
    if let Some((target, n)) = TARGET.get()
        && target == step
        && HITS.fetch_add(1, Ordering::SeqCst) + 1 == *n
    {
        println!("STEP {step}");
        std::io::stdout().flush().unwrap();
        loop {
            std::thread::sleep(Duration::from_secs(1));
        }
    }
}

#[test]
#[ignore = "the child process of a_killed_client_restarts_and_finishes"]
fn crash_worker() {
    if std::env::var(WORKER).is_err() {
        return;
    }
    if let Ok(step) = std::env::var(STEP) {
        let (name, n) = step.rsplit_once(':').unwrap();
        TARGET.set((name.to_owned(), n.parse().unwrap())).unwrap();
    }
    assert!(eth_mls::observe_steps(observer));
    assert!(eth_mls_core::observe_steps(observer));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(alice_life());
    println!("DONE");
    std::io::stdout().flush().unwrap();
}

async fn alice_life() {
    let dir = PathBuf::from(std::env::var(DIR).unwrap());
    let rpc = std::env::var(RPC).unwrap();
    let key = hex::decode(std::env::var(KEY).unwrap()).unwrap();
    let bob: Address = std::env::var(PEER).unwrap().parse().unwrap();
    let deployment = Deployment::load(&dir.join("deployment.json")).unwrap();
    let mut alice = client(&rpc, &key, deployment, &dir.join("alice.db")).await;
    println!("GO");
    std::io::stdout().flush().unwrap();
    // Each round is its own group.
    let round: u32 = std::env::var(ROUND).unwrap().parse().unwrap();
    let name = format!("crash test {round}").into_bytes();
    let existing = eth_mls::records::groups(alice.store())
        .unwrap()
        .into_iter()
        .find(|(_, r)| r.group_id == name)
        .map(|(c, _)| c);
    let group = match existing {
        Some(g) => g,
        None => {
            alice.publish_keys().await.unwrap();
            alice
                .create_group(&name, CommitPolicy::AdminsOnly)
                .await
                .unwrap()
        }
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut joined_at = None;
    loop {
        alice.sync().await.unwrap();
        for e in alice.drain_events() {
            assert!(
                !matches!(
                    e,
                    ClientEvent::ForkDetected { .. } | ClientEvent::IntentFailed { .. }
                ),
                "alice: {e:?}"
            );
        }
        let members = alice.members(group).unwrap();
        // Only this round's work counts (earlier rounds are finished).
        let sent_invitations = alice
            .store()
            .records(eth_mls::state::INVITATIONS)
            .unwrap()
            .len();
        let intents = eth_mls::state::intents(alice.store()).unwrap().len();
        let group_id = alice_group_id(&alice, group);
        if !members.contains(&bob) {
            if sent_invitations == 0 && intents == 0 {
                alice.invite(group, bob, "crash test").await.unwrap();
            }
        } else {
            // The epoch bob joined: the first epoch of a member list with him (from the
            // outbox's Welcome, which records it).
            let joined = *joined_at.get_or_insert_with(|| welcome_epoch(&alice, &group_id));
            let epoch = alice.epoch(group).unwrap();
            let sent = alice
                .store()
                .outbox(0, usize::MAX)
                .unwrap()
                .iter()
                .filter(|e| e.kind == OutboxKind::Application && e.group_id == group_id)
                .count();
            if sent < MESSAGES {
                alice
                    .send(group, format!("m{sent}").as_bytes())
                    .await
                    .unwrap();
            } else if epoch < joined + UPDATES {
                if intents == 0 {
                    alice.update(group).await.unwrap();
                }
            } else if intents == 0 && alice.store().outbox_pending().unwrap().is_empty() {
                println!(
                    "EPOCH {group} {epoch} {}",
                    hex::encode(alice.epoch_authenticator(group).unwrap())
                );
                return;
            }
        }
        assert!(Instant::now() < deadline, "alice did not finish");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn alice_group_id(alice: &Client<ChainChannel>, group: Address) -> Vec<u8> {
    eth_mls::records::groups(alice.store())
        .unwrap()
        .into_iter()
        .find(|(c, _)| *c == group)
        .map(|(_, r)| r.group_id)
        .unwrap()
}

/// The epoch of the Welcome alice sent bob.
fn welcome_epoch(alice: &Client<ChainChannel>, group_id: &[u8]) -> u64 {
    alice
        .store()
        .outbox(0, usize::MAX)
        .unwrap()
        .iter()
        .find(|e| e.kind == OutboxKind::Welcome && e.group_id == group_id)
        .map(|e| e.epoch)
        .expect("bob is a member, so alice sent his Welcome")
}

// ---------------------------------------------------------------------------------------
// The test (parent process): bob, and the kills.
// ---------------------------------------------------------------------------------------

enum Kill {
    At(&'static str, u32),
    After(Duration),
    Never,
}

struct Life {
    child: std::process::Child,
    lines: mpsc::Receiver<String>,
}

fn spawn(dir: &Path, rpc: &str, key: &str, bob: Address, round: usize, kill: &Kill) -> Life {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args(["--exact", "crash_worker", "--ignored", "--nocapture"])
        .args(["--test-threads", "1"])
        .env(WORKER, "1")
        .env(DIR, dir)
        .env(RPC, rpc)
        .env(KEY, key)
        .env(PEER, bob.to_string())
        .env(ROUND, round.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    if let Kill::At(step, n) = kill {
        command.env(STEP, format!("{step}:{n}"));
    }
    let mut child = command.spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    Life { child, lines }
}

/// SplitMix64.
fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_client_restarts_and_finishes() {
    let seed: u64 = std::env::var("ETH_MLS_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x00c0_ffee);
    println!("ETH_MLS_CRASH_SEED={seed}");
    let devnet = Devnet::start().unwrap();
    let deployment = devnet.deploy().await.unwrap();
    let dir = common::dir("crash");
    deployment.save(&dir.join("deployment.json")).unwrap();
    let alice_key = hex::encode(devnet.signer(1).unwrap().to_bytes());
    let bob_key = devnet.signer(2).unwrap().to_bytes();
    let mut bob = client(
        &devnet.rpc_url(),
        bob_key.as_slice(),
        deployment,
        &dir.join("bob.db"),
    )
    .await;
    bob.publish_keys().await.unwrap();
    let b = bob.address();

    let mut plan: Vec<Kill> = Vec::new();
    for step in eth_mls::STEPS {
        plan.push(Kill::At(step, 1));
    }
    for step in [
        "commit:before-commit",
        "commit:after-commit",
        "merge:before-commit",
        "merge:after-commit",
        "send:before-commit",
        "send:after-commit",
    ] {
        plan.push(Kill::At(step, 1));
    }
    // Later occurrences of the intent steps (the updates after the add).
    for step in [
        "intent:built",
        "intent:registered",
        "intent:merged",
        "intent:recorded",
    ] {
        plan.push(Kill::At(step, 2));
    }
    let mut rng = seed;
    for _ in 0..10 {
        plan.push(Kill::After(Duration::from_millis(
            50 + splitmix(&mut rng) % 1500,
        )));
    }
    plan.push(Kill::Never);

    let mut events: Vec<ClientEvent> = Vec::new();
    let mut stats: BTreeMap<&'static str, u32> = BTreeMap::new();
    // Per round: the group, and alice's final epoch and authenticator.
    let mut finals: Vec<(Address, u64, Vec<u8>)> = Vec::new();
    for (round, kill) in plan.iter().enumerate() {
        // The life that is killed, then one that must finish the round.
        for kill in [kill, &Kill::Never] {
            let mut life = spawn(&dir, &devnet.rpc_url(), &alice_key, b, round, kill);
            let started = Instant::now();
            // The pid while the child is not reaped (so a late kill never hits another process).
            let alive = Arc::new(std::sync::Mutex::new(Some(life.child.id())));
            if let Kill::After(d) = kill {
                // SIGKILL from another thread at a random moment, whatever alice is doing.
                let (alive, d) = (alive.clone(), *d);
                std::thread::spawn(move || {
                    std::thread::sleep(d);
                    let pid = alive.lock().unwrap();
                    if let Some(pid) = *pid {
                        let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
                    }
                });
            }
            let outcome = loop {
                // Bob meanwhile: takes in everything, accepts the invitation.
                bob.sync().await.unwrap();
                for e in bob.drain_events() {
                    if let ClientEvent::InvitationReceived { request_id, .. } = &e {
                        bob.accept(*request_id).await.unwrap();
                    }
                    events.push(e);
                }
                let mut ended = None;
                while let Ok(line) = life.lines.try_recv() {
                    if line.starts_with("STEP ") {
                        ended = Some("killed at step");
                    } else if let Some(rest) = line.strip_prefix("EPOCH ") {
                        let mut parts = rest.split(' ');
                        let group: Address = parts.next().unwrap().parse().unwrap();
                        let epoch: u64 = parts.next().unwrap().parse().unwrap();
                        let auth = hex::decode(parts.next().unwrap()).unwrap();
                        finals.retain(|(g, _, _)| *g != group);
                        finals.push((group, epoch, auth));
                    } else if line == "DONE" {
                        ended = Some("finished");
                    }
                }
                if ended.is_none()
                    && let Ok(Some(status)) = {
                        let mut pid = alive.lock().unwrap();
                        let status = life.child.try_wait();
                        if matches!(status, Ok(Some(_))) {
                            *pid = None;
                        }
                        status
                    }
                {
                    // Only the random kill may end a life without DONE.
                    assert!(
                        matches!(kill, Kill::After(_)) && status.code().is_none(),
                        "alice exited with {status} (round {round}, seed {seed})"
                    );
                    ended = Some("killed at random");
                }
                if let Some(e) = ended {
                    break e;
                }
                assert!(
                    started.elapsed() < Duration::from_secs(180),
                    "a life of alice took too long (round {round}, seed {seed})"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            };
            *alive.lock().unwrap() = None;
            let _ = life.child.kill();
            let _ = life.child.wait();
            *stats.entry(outcome).or_default() += 1;
            if let (Kill::At(step, n), "finished") = (kill, outcome) {
                println!("round {round}: step {step}:{n} was never reached");
            }
            if outcome == "finished" {
                break;
            }
        }
    }
    println!("lives: {stats:?}");
    assert_eq!(finals.len(), plan.len(), "every round finished");
    // Every named step was reached and killed in its round.
    assert!(
        stats.get("killed at step").copied().unwrap_or(0) as usize >= eth_mls::STEPS.len() + 6 + 4,
        "{stats:?}"
    );

    // Bob reaches alice's epoch in every round's group with her authenticator, and has
    // every message of every round exactly once.
    let deadline = Instant::now() + Duration::from_secs(60);
    for (group, epoch, auth) in &finals {
        while bob.epoch(*group).unwrap() < *epoch {
            bob.sync().await.unwrap();
            events.extend(bob.drain_events());
            assert!(Instant::now() < deadline, "bob did not reach epoch {epoch}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(bob.epoch(*group).unwrap(), *epoch);
        assert_eq!(&bob.epoch_authenticator(*group).unwrap(), auth);
    }
    bob.sync().await.unwrap();
    events.extend(bob.drain_events());
    for e in &events {
        assert!(
            !matches!(
                e,
                ClientEvent::ForkDetected { .. } | ClientEvent::Removed { .. }
            ),
            "bob: {e:?} (seed {seed})"
        );
    }
    let mut received: BTreeMap<(Address, Vec<u8>), usize> = BTreeMap::new();
    for e in &events {
        if let ClientEvent::Message { group, data, .. } = e {
            *received.entry((*group, data.clone())).or_default() += 1;
        }
    }
    let expected: BTreeMap<(Address, Vec<u8>), usize> = finals
        .iter()
        .flat_map(|(g, _, _)| (0..MESSAGES).map(move |i| ((*g, format!("m{i}").into_bytes()), 1)))
        .collect();
    assert_eq!(received, expected, "seed {seed}");
}
