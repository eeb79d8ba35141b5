//! Group operations of eth-mls-core at 2, 10, 100, 1000 members (10,000 for joining and for
//! processing a commit, with `ETH_MLS_BENCH_LARGE=1`), suite 0x0004 and suite 0x0001:
//! adding one member (creating the commit), processing that commit as another member,
//! joining from the Welcome, a self-update commit and its processing, a removal and its
//! processing, and a 1 KiB application message encrypted and decrypted.
//!
//! The tree is that of a group in use: after the creator added everyone in one commit, the
//! members at leaves 2, 4, 8, … committed a self-update each, so the creator's copath is
//! populated (right after a mass add, every other parent node is blank and a commit encrypts
//! to every leaf — see the README). Every operation includes its SQLite transaction (an
//! in-memory database).
//!
//! Sizes: `ETH_MLS_BENCH_SIZES=2,10` to choose; `ETH_MLS_BENCH_SUITES=4` for suite 0x0004
//! only; `ETH_MLS_BENCH_STORE=encrypted|unencrypted` for file stores (SQLCipher, or plain
//! SQLite to measure the encryption's cost) instead of in-memory ones.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::future::Future;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use eth_mls_core::{
    BindingRequest, Event, Group, GroupConfig, Identity, LocalEthereumSigner, Store,
    ValidatedKeyPackage, generate_key_package, validate_key_package_bytes,
};
use openmls::prelude::Ciphersuite;
use openmls::prelude::tls_codec::Serialize as _;

const SUITE4: Ciphersuite = Ciphersuite::MLS_256_DHKEMX448_AES256GCM_SHA512_Ed448;
const SUITE1: Ciphersuite = Ciphersuite::MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519;

/// Checks at the current time (the benchmark stands in for the chain's block timestamps).
fn checks() -> eth_mls_core::Checks<'static> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    eth_mls_core::Checks::at(now)
}

fn block_on<F: Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    loop {
        if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
    }
}

fn config() -> GroupConfig {
    let mut config = GroupConfig::new(31337, "chat.example");
    // Commit-creation benchmarks consume many handshake generations the processor never
    // sees; a wide window lets it catch up afterwards (outside the timing).
    config.max_forward_distance = 1_000_000;
    config
}

fn identity(n: u32, suite: Ciphersuite) -> Identity {
    let mut key = [7u8; 32];
    key[..4].copy_from_slice(&(n + 1).to_be_bytes());
    let account = LocalEthereumSigner::from_bytes(&key).unwrap();
    let request = BindingRequest {
        domain: "chat.example".into(),
        uri: "https://chat.example".into(),
        chain_id: 31337,
        valid_for: None,
    };
    block_on(Identity::create_for_suite(&account, &request, suite)).unwrap()
}

fn validated(bytes: &[u8], suite: Ciphersuite) -> ValidatedKeyPackage {
    let provider = eth_mls_crypto::Provider::new();
    block_on(validate_key_package_bytes(
        bytes,
        openmls_traits::OpenMlsProvider::crypto(&provider),
        suite,
        &config().policy(),
        None,
    ))
    .unwrap()
}

/// A key package of a member without state (nobody needs its private keys).
fn phantom_key_package(n: u32, suite: Ciphersuite) -> ValidatedKeyPackage {
    let provider = eth_mls_crypto::Provider::new();
    let bytes = generate_key_package(&identity(n, suite), &provider, None)
        .unwrap()
        .key_package()
        .tls_serialize_detached()
        .unwrap();
    validated(&bytes, suite)
}

struct Member {
    store: Store,
    group: Option<Group>,
}

/// Where members keep their state: `ETH_MLS_BENCH_STORE=memory` (default), `encrypted` (a
/// SQLCipher file, as applications use it) or `unencrypted` (a plain SQLite file: only to
/// measure what the encryption costs).
fn new_store(n: u32, suite: Ciphersuite) -> Store {
    let kind = std::env::var("ETH_MLS_BENCH_STORE").unwrap_or_default();
    let key = match kind.as_str() {
        "" | "memory" => return Store::in_memory(identity(n, suite)).unwrap(),
        "encrypted" => eth_mls_core::StoreKey::raw([0x42; 32]),
        "unencrypted" => eth_mls_core::StoreKey::unencrypted(),
        other => panic!("ETH_MLS_BENCH_STORE={other}: memory, encrypted or unencrypted"),
    };
    let dir = std::env::temp_dir().join(format!("eth-mls-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{kind}-{n}-{}.db", u16::from(suite)));
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    Store::create(&path, &key, identity(n, suite)).unwrap()
}

impl Member {
    fn new(n: u32, suite: Ciphersuite) -> Self {
        Self {
            store: new_store(n, suite),
            group: None,
        }
    }

    fn key_package(&mut self, suite: Ciphersuite) -> ValidatedKeyPackage {
        validated(&self.store.generate_key_package(None).unwrap(), suite)
    }

    fn g(&mut self) -> (&mut Group, &mut Store) {
        (self.group.as_mut().unwrap(), &mut self.store)
    }

    fn apply(&mut self, commit: &[u8]) {
        let (g, s) = self.g();
        let events = block_on(g.process(s, commit, &checks()))
            .unwrap()
            .into_events();
        assert!(matches!(events.as_slice(), [Event::StagedCommit(_)]));
        g.merge_staged_commit(s).unwrap();
    }
}

/// The creator, the members who hold state (leaf 1 processes, leaves 2, 4, … committed),
/// and the size.
struct Setup {
    creator: Member,
    processor: Member,
    suite: Ciphersuite,
    next_id: u32,
}

fn parallel_key_packages(ids: Vec<u32>, suite: Ciphersuite) -> Vec<ValidatedKeyPackage> {
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let chunk = ids.len().div_ceil(threads).max(1);
    std::thread::scope(|s| {
        let handles: Vec<_> = ids
            .chunks(chunk)
            .map(|c| {
                s.spawn(move || {
                    c.iter()
                        .map(|&n| phantom_key_package(n, suite))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    })
}

fn setup(n: usize, suite: Ciphersuite, populate: bool) -> Setup {
    let mut creator = Member::new(0, suite);
    creator.group = Some(
        Group::create_with_suite(
            &mut creator.store,
            b"bench",
            config(),
            Default::default(),
            suite,
        )
        .unwrap(),
    );
    // Stateful members at leaves 1, 2, 4, 8, …; phantoms elsewhere.
    let stateful: Vec<usize> = std::iter::successors(Some(1usize), |l| Some(l * 2))
        .take_while(|&l| l < n && (populate || l == 1))
        .collect();
    let mut members: Vec<(usize, Member)> = stateful
        .iter()
        .map(|&l| (l, Member::new(l as u32, suite)))
        .collect();
    let phantom_ids: Vec<u32> = (1..n)
        .filter(|l| !stateful.contains(l))
        .map(|l| l as u32)
        .collect();
    let mut phantoms = parallel_key_packages(phantom_ids, suite).into_iter();
    let mut kps = Vec::with_capacity(n - 1);
    for leaf in 1..n {
        match members.iter_mut().find(|(l, _)| *l == leaf) {
            Some((_, m)) => kps.push(m.key_package(suite)),
            None => kps.push(phantoms.next().unwrap()),
        }
    }
    let (g, s) = creator.g();
    let out = block_on(g.add_members(s, &kps, &checks())).unwrap();
    g.merge_pending_commit(s).unwrap();
    let welcome = out.welcome.unwrap();
    for (_, m) in &mut members {
        m.group = Some(block_on(Group::join(&mut m.store, &welcome, config(), &checks())).unwrap());
    }
    // Members at leaves 2, 4, … commit once: the creator's copath gets populated.
    for i in 1..members.len() {
        let (g, s) = members[i].1.g();
        let out = g.self_update(s).unwrap();
        g.merge_pending_commit(s).unwrap();
        creator.apply(&out.commit);
        for (j, (_, m)) in members.iter_mut().enumerate() {
            if j != i {
                m.apply(&out.commit);
            }
        }
    }
    let processor = members.swap_remove(0).1;
    Setup {
        creator,
        processor,
        suite,
        next_id: n as u32 + 1,
    }
}

/// Times `routine` on `state` over fresh inputs made by `prepare`; `prepare` and `after`
/// are not timed.
fn custom<S, I, O>(
    iters: u64,
    state: &mut S,
    mut prepare: impl FnMut(&mut S) -> I,
    mut routine: impl FnMut(&mut S, I) -> O,
    mut after: impl FnMut(&mut S, O),
) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let input = prepare(state);
        let t = Instant::now();
        let out = routine(state, input);
        total += t.elapsed();
        after(state, out);
    }
    total
}

fn bench_size(c: &mut Criterion, n: usize, suite: Ciphersuite, only_large_ops: bool) {
    let name = if suite == SUITE4 { "suite4" } else { "suite1" };
    let t = Instant::now();
    let mut s = setup(n, suite, !only_large_ops);
    eprintln!("setup of {n} members ({name}): {:.1?}", t.elapsed());
    // File-backed runs get their own names, so the in-memory table is not overwritten.
    let store = match std::env::var("ETH_MLS_BENCH_STORE")
        .unwrap_or_default()
        .as_str()
    {
        "" | "memory" => String::new(),
        kind => format!("_{kind}"),
    };
    let mut group = c.benchmark_group(format!("group/{name}{store}/{n}"));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(if n >= 1000 { 20 } else { 5 }));
    group.warm_up_time(Duration::from_secs(1));

    let suite = s.suite;
    let next_id = s.next_id;
    let joiner_kp = phantom_key_package(next_id, suite);
    let state = &mut s;

    // A commit the processor has not seen: made by the creator, then discarded by it.
    let commit_of = |creator: &mut Member, kind: &str, kp: &ValidatedKeyPackage| -> Vec<u8> {
        let (g, st) = creator.g();
        let out = match kind {
            "add" => block_on(g.add_members(st, std::slice::from_ref(kp), &checks())).unwrap(),
            "update" => g.self_update(st).unwrap(),
            _ => {
                let last = *g.members().last().unwrap();
                g.remove_members(st, &[last]).unwrap()
            }
        };
        g.discard_pending_commit(st).unwrap();
        out.commit
    };
    // Benchmarks that only create commits consume the creator's handshake generations;
    // a merged commit afterwards starts fresh ratchets for the processor.
    let advance = |s: &mut Setup| {
        let (g, st) = s.creator.g();
        let out = g.self_update(st).unwrap();
        g.merge_pending_commit(st).unwrap();
        s.processor.apply(&out.commit);
    };
    let discard_own = |s: &mut Setup, _| {
        let (g, st) = s.creator.g();
        g.discard_pending_commit(st).unwrap();
    };

    if !only_large_ops {
        group.bench_function("add_member_commit", |b| {
            b.iter_custom(|iters| {
                custom(
                    iters,
                    state,
                    |_| (),
                    |s, ()| {
                        let (g, st) = s.creator.g();
                        block_on(g.add_members(st, std::slice::from_ref(&joiner_kp), &checks()))
                            .unwrap()
                    },
                    discard_own,
                )
            })
        });
        advance(state);
    }

    for kind in ["add", "update", "remove"] {
        if only_large_ops && kind != "add" {
            continue;
        }
        group.bench_function(format!("process_{kind}_commit"), |b| {
            b.iter_custom(|iters| {
                custom(
                    iters,
                    state,
                    |s| commit_of(&mut s.creator, kind, &joiner_kp),
                    |s, commit| {
                        let (g, st) = s.processor.g();
                        block_on(g.process(st, &commit, &checks())).unwrap()
                    },
                    |s, _| {
                        let (g, st) = s.processor.g();
                        g.discard_staged_commit(st).unwrap();
                    },
                )
            })
        });
    }

    group.bench_function("join_from_welcome", |b| {
        b.iter_custom(|iters| {
            custom(
                iters,
                state,
                |s| {
                    let mut joiner = Member::new(next_id, suite);
                    let kp = joiner.key_package(suite);
                    let (g, st) = s.creator.g();
                    let out = block_on(g.add_members(st, &[kp], &checks())).unwrap();
                    g.discard_pending_commit(st).unwrap();
                    (joiner, out.welcome.unwrap())
                },
                |_, (mut joiner, welcome): (Member, Vec<u8>)| {
                    let group = block_on(Group::join(
                        &mut joiner.store,
                        &welcome,
                        config(),
                        &checks(),
                    ))
                    .unwrap();
                    (joiner, group)
                },
                |_, out| drop(out),
            )
        })
    });

    if !only_large_ops {
        group.bench_function("self_update_commit", |b| {
            b.iter_custom(|iters| {
                custom(
                    iters,
                    state,
                    |_| (),
                    |s, ()| {
                        let (g, st) = s.creator.g();
                        g.self_update(st).unwrap()
                    },
                    discard_own,
                )
            })
        });
        advance(state);
        group.bench_function("remove_commit", |b| {
            b.iter_custom(|iters| {
                custom(
                    iters,
                    state,
                    |_| (),
                    |s, ()| {
                        let (g, st) = s.creator.g();
                        let last = *g.members().last().unwrap();
                        g.remove_members(st, &[last]).unwrap()
                    },
                    discard_own,
                )
            })
        });
        advance(state);
        let data = vec![0x5a; 1024];
        group.bench_function("message_1KiB_encrypt_decrypt", |b| {
            b.iter(|| {
                let (g, st) = state.creator.g();
                let m = g.send(st, &data).unwrap().bytes;
                let (g, st) = state.processor.g();
                block_on(g.process(st, &m, &checks())).unwrap()
            })
        });
    }
    group.finish();
}

fn sizes() -> Vec<usize> {
    std::env::var("ETH_MLS_BENCH_SIZES")
        .ok()
        .map(|s| s.split(',').filter_map(|x| x.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![2, 10, 100, 1000])
}

/// `ETH_MLS_BENCH_SUITES=4` runs suite 0x0004 only.
fn suites() -> Vec<Ciphersuite> {
    match std::env::var("ETH_MLS_BENCH_SUITES").as_deref() {
        Ok("4") => vec![SUITE4],
        _ => vec![SUITE4, SUITE1],
    }
}

fn groups(c: &mut Criterion) {
    for n in sizes() {
        for suite in suites() {
            bench_size(c, n, suite, false);
        }
    }
    if std::env::var_os("ETH_MLS_BENCH_LARGE").is_some() {
        for suite in [SUITE4, SUITE1] {
            bench_size(c, 10_000, suite, true);
        }
    }
}

criterion_group!(benches, groups);
criterion_main!(benches);
