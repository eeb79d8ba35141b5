//! The group fixtures of the group benchmarks (`groups`, `versus`): eth-mls-core members on
//! in-memory or file stores, and a group of `n` whose tree is that of a group in use.
#![allow(dead_code)]

use std::future::Future;
use std::time::{Duration, Instant};

use eth_mls_core::{
    BindingRequest, Event, Group, GroupConfig, Identity, LocalEthereumSigner, Store,
    ValidatedKeyPackage, generate_key_package, validate_key_package_bytes,
};
use openmls::prelude::Ciphersuite;
use openmls::prelude::tls_codec::Serialize as _;

/// Checks at the current time (the benchmark stands in for the chain's block timestamps).
pub fn checks() -> eth_mls_core::Checks<'static> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    eth_mls_core::Checks::at(now)
}

pub fn block_on<F: Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    loop {
        if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
    }
}

pub fn config() -> GroupConfig {
    let mut config = GroupConfig::new(31337, "chat.example");
    // Commit-creation benchmarks consume many handshake generations the processor never
    // sees; a wide window lets it catch up afterwards (outside the timing).
    config.max_forward_distance = 1_000_000;
    config
}

pub fn identity(n: u32, suite: Ciphersuite) -> Identity {
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

pub fn validated(bytes: &[u8], suite: Ciphersuite) -> ValidatedKeyPackage {
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
pub fn phantom_key_package(n: u32, suite: Ciphersuite) -> ValidatedKeyPackage {
    let provider = eth_mls_crypto::Provider::new();
    let bytes = generate_key_package(&identity(n, suite), &provider, None)
        .unwrap()
        .key_package()
        .tls_serialize_detached()
        .unwrap();
    validated(&bytes, suite)
}

/// The store kind when `ETH_MLS_BENCH_STORE` is not set (`memory` unless a benchmark sets it).
pub static DEFAULT_STORE: std::sync::OnceLock<&'static str> = std::sync::OnceLock::new();

pub struct Member {
    pub store: Store,
    pub group: Option<Group>,
}

/// Where members keep their state: `ETH_MLS_BENCH_STORE=memory` (default), `encrypted` (a
/// SQLCipher file, as applications use it) or `unencrypted` (a plain SQLite file: only to
/// measure what the encryption costs).
pub fn new_store(n: u32, suite: Ciphersuite) -> Store {
    let kind = std::env::var("ETH_MLS_BENCH_STORE")
        .ok()
        .filter(|k| !k.is_empty())
        .unwrap_or_else(|| DEFAULT_STORE.get().copied().unwrap_or("memory").to_string());
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
    pub fn new(n: u32, suite: Ciphersuite) -> Self {
        Self {
            store: new_store(n, suite),
            group: None,
        }
    }

    pub fn key_package(&mut self, suite: Ciphersuite) -> ValidatedKeyPackage {
        validated(&self.store.generate_key_package(None).unwrap(), suite)
    }

    pub fn g(&mut self) -> (&mut Group, &mut Store) {
        (self.group.as_mut().unwrap(), &mut self.store)
    }

    pub fn apply(&mut self, commit: &[u8]) {
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
pub struct Setup {
    pub creator: Member,
    pub processor: Member,
    pub suite: Ciphersuite,
    pub next_id: u32,
}

pub fn parallel_key_packages(ids: Vec<u32>, suite: Ciphersuite) -> Vec<ValidatedKeyPackage> {
    parallel_map(&ids, |n| phantom_key_package(n, suite))
}

/// `f` of every id, in order, spread over the cores.
pub fn parallel_map<T: Send>(ids: &[u32], f: impl Fn(u32) -> T + Sync) -> Vec<T> {
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let chunk = ids.len().div_ceil(threads).max(1);
    let f = &f;
    std::thread::scope(|s| {
        let handles: Vec<_> = ids
            .chunks(chunk)
            .map(|c| s.spawn(move || c.iter().map(|&n| f(n)).collect::<Vec<_>>()))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    })
}

pub fn setup(n: usize, suite: Ciphersuite, populate: bool) -> Setup {
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
pub fn custom<S, I, O>(
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
