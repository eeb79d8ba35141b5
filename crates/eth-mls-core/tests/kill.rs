//! Nothing lost and nothing twice across a crash.
//!
//! A worker (this test binary again, as a child process) drives three members whose
//! encrypted stores are files, over a network that is a directory of message files (the
//! first commit of an epoch wins, as on the group contract). The test kills it with SIGKILL
//! at random moments and at every named step of store creation, sending, processing,
//! committing, merging and joining ([`eth_mls_core::STEPS`]), hundreds of times, then checks:
//! every store opens; the members agree on epoch, epoch authenticator and members; every
//! message sent is in every other member's inbox exactly once; no missed-message report
//! appears (no generation was burned without its message); a fresh message decrypts both
//! ways.
//!
//! Seeded: `ETH_MLS_KILL_SEED` replays a run (the seed is printed, and named on failure);
//! `ETH_MLS_KILL_LIVES` scales the number of random kills.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{TempDir, block_on, checks, config, identity};
use eth_mls_core::{
    Error, Event, Group, OutboxKind, Processed, Retention, STEPS, Store, StoreKey,
    validate_key_package_bytes,
};
use eth_mls_crypto::SUITE;
use eth_mls_siwe::Address;
use sha2::Digest as _;

const WORKER: &str = "ETH_MLS_KILL_WORKER";
const DIR: &str = "ETH_MLS_KILL_DIR";
const LIFE_SEED: &str = "ETH_MLS_KILL_LIFE_SEED";
const STEP: &str = "ETH_MLS_KILL_STEP";
const INDEX: &str = "ETH_MLS_KILL_INDEX";
const GROUP: &[u8] = b"kill-test";
/// Actions per life of the group worker.
const ACTIONS: usize = 6;
const NAMES: [&str; 3] = ["a", "b", "c"];

fn key() -> StoreKey {
    StoreKey::raw([0x4b; 32])
}

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

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

// ---------------------------------------------------------------------------------------
// The worker (child process).
// ---------------------------------------------------------------------------------------

static TARGET: OnceLock<(String, u32)> = OnceLock::new();
static HITS: AtomicU32 = AtomicU32::new(0);

/// Every step is reported (the parent tells what a random kill hit by the last one); at
/// the target step's n-th occurrence: tell the parent and wait to be killed.
fn observer(step: &'static str) {
    println!("@{step}");
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
#[ignore = "the child process of kill_test_nothing_lost_nothing_twice"]
fn kill_worker() {
    let Ok(mode) = std::env::var(WORKER) else {
        return;
    };
    let dir = PathBuf::from(std::env::var(DIR).unwrap());
    if let Ok(step) = std::env::var(STEP) {
        let (name, n) = step.rsplit_once(':').unwrap();
        TARGET.set((name.to_owned(), n.parse().unwrap())).unwrap();
    }
    assert!(eth_mls_core::observe_steps(observer));
    let seed: u64 = std::env::var(LIFE_SEED).unwrap().parse().unwrap();
    println!("GO");
    std::io::stdout().flush().unwrap();
    match mode.as_str() {
        "create" => {
            let index: usize = std::env::var(INDEX).unwrap().parse().unwrap();
            // The stores earlier lives left (complete, or interrupted), then a new one.
            for i in 0..=index {
                ensure_store(&dir.join(format!("create-{i}.db")), 1);
            }
        }
        "group" => group_life(&dir, seed),
        other => panic!("unknown worker mode {other}"),
    }
    println!("DONE");
    std::io::stdout().flush().unwrap();
}

/// Opens the store at `path`, creating it for account `n` when it does not exist (or was
/// left without an identity by a crash).
fn ensure_store(path: &Path, n: u8) -> Store {
    if path.exists() {
        match Store::open(path, &key()) {
            Ok(store) => return store,
            Err(Error::NoIdentity) => {}
            Err(e) => panic!("{} does not open: {e}", path.display()),
        }
    }
    Store::create(path, &key(), identity(n))
        .unwrap_or_else(|e| panic!("{} cannot be created: {e}", path.display()))
}

/// The network: a directory of message files `{seq}-{from}-{kind}-{epoch}`, each written
/// whole (temporary file, then rename).
struct Net {
    dir: PathBuf,
}

#[derive(Clone, Debug)]
struct Posted {
    seq: usize,
    from: String,
    kind: String,
    epoch: u64,
    path: PathBuf,
}

impl Posted {
    fn bytes(&self) -> Vec<u8> {
        std::fs::read(&self.path).unwrap()
    }
}

impl Net {
    fn new(dir: &Path) -> Self {
        let dir = dir.join("net");
        std::fs::create_dir_all(&dir).unwrap();
        for entry in std::fs::read_dir(&dir).unwrap() {
            let entry = entry.unwrap();
            if entry.file_name().to_string_lossy().starts_with("tmp") {
                std::fs::remove_file(entry.path()).unwrap();
            }
        }
        Self { dir }
    }

    fn entries(&self) -> Vec<Posted> {
        let mut out: Vec<Posted> = std::fs::read_dir(&self.dir)
            .unwrap()
            .filter_map(|entry| {
                let entry = entry.unwrap();
                let name = entry.file_name().to_string_lossy().into_owned();
                let mut parts = name.split('-');
                let seq = parts.next()?.parse().ok()?;
                Some(Posted {
                    seq,
                    from: parts.next()?.to_owned(),
                    kind: parts.next()?.to_owned(),
                    epoch: parts.next()?.parse().ok()?,
                    path: entry.path(),
                })
            })
            .collect();
        out.sort_by_key(|p| p.seq);
        out
    }

    fn append(&self, from: &str, kind: &str, epoch: u64, bytes: &[u8]) {
        let seq = self.entries().last().map_or(0, |p| p.seq + 1);
        let tmp = self.dir.join("tmp");
        std::fs::write(&tmp, bytes).unwrap();
        std::fs::rename(
            &tmp,
            self.dir.join(format!("{seq:08}-{from}-{kind}-{epoch}")),
        )
        .unwrap();
    }

    /// The key packages `name` posted after the last Welcome, oldest first.
    fn fresh_key_packages(&self, name: &str) -> Vec<Posted> {
        let entries = self.entries();
        let last_welcome = entries
            .iter()
            .filter(|p| p.kind == "welcome")
            .map(|p| p.seq)
            .max();
        entries
            .into_iter()
            .filter(|p| p.kind == "kp" && p.from == name && Some(p.seq) > last_welcome)
            .collect()
    }

    /// The first commit posted for `epoch`: the one the group accepted.
    fn accepted_commit(&self, epoch: u64) -> Option<Posted> {
        self.entries()
            .into_iter()
            .find(|p| p.kind == "commit" && p.epoch == epoch)
    }
}

struct Member {
    name: &'static str,
    store: Store,
    group: Option<Group>,
    cursor_file: PathBuf,
}

impl Member {
    fn open(dir: &Path, name: &'static str, n: u8) -> Self {
        let mut store = ensure_store(&dir.join(format!("{name}.db")), n);
        store
            .set_retention(Retention {
                max_entries: Retention::MAX_ENTRIES,
                max_age: Retention::MAX_AGE,
            })
            .unwrap();
        let group = store
            .group_ids()
            .unwrap()
            .iter()
            .any(|g| g.as_slice() == GROUP)
            .then(|| Group::load(&store, GROUP).unwrap());
        Self {
            name,
            store,
            group,
            cursor_file: dir.join(format!("cursor-{name}")),
        }
    }

    fn cursor(&self) -> usize {
        std::fs::read_to_string(&self.cursor_file)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0)
    }

    fn set_cursor(&self, next: usize) {
        let tmp = self.cursor_file.with_extension("tmp");
        std::fs::write(&tmp, next.to_string()).unwrap();
        std::fs::rename(&tmp, &self.cursor_file).unwrap();
    }

    fn address(&self) -> Address {
        self.store.identity().address()
    }

    fn active(&self) -> bool {
        self.group.as_ref().is_some_and(Group::is_active)
    }

    /// Publishes the outbox (again after a crash), and key packages while not a member.
    fn publish(&mut self, net: &Net) {
        for entry in self.store.outbox_pending().unwrap() {
            let kind = match entry.kind {
                OutboxKind::Application => "app",
                OutboxKind::Commit => "commit",
                OutboxKind::Welcome => "welcome",
                OutboxKind::Proposal => "proposal",
            };
            net.append(self.name, kind, entry.epoch, &entry.bytes);
            self.store.mark_published(entry.seq).unwrap();
        }
        if self.name != "a" && self.group.is_none() {
            let mut unused = self.store.unused_key_packages().unwrap();
            if unused.is_empty() {
                self.store.generate_key_package(None).unwrap();
                unused = self.store.unused_key_packages().unwrap();
            }
            // The newest unused one is on the network after the last Welcome (where the
            // adder looks).
            let posted: Vec<Vec<u8>> = net
                .fresh_key_packages(self.name)
                .iter()
                .map(Posted::bytes)
                .collect();
            let newest = unused.last().unwrap();
            if !posted.contains(&newest.bytes) {
                net.append(self.name, "kp", 0, &newest.bytes);
            }
        }
    }

    /// Settles the own pending commit against the network, merges an accepted staged one,
    /// drops a group the member was removed from.
    fn resolve(&mut self, net: &Net) {
        let Some(group) = self.group.as_mut() else {
            return;
        };
        if let Some(out) = group.pending_commit(&self.store).unwrap() {
            match net.accepted_commit(group.epoch()) {
                Some(accepted) if accepted.bytes() == out.commit => {
                    group.merge_pending_commit(&mut self.store).unwrap();
                }
                Some(_) => group.discard_pending_commit(&mut self.store).unwrap(),
                None => {}
            }
        }
        if group.staged_commit().unwrap().is_some() {
            group.merge_staged_commit(&mut self.store).unwrap();
        }
        if !group.is_active() {
            self.group.take().unwrap().delete(&mut self.store).unwrap();
        }
    }

    /// Processes what the network holds past the cursor, then acknowledges the inbox.
    fn receive(&mut self, net: &Net) {
        let cursor = self.cursor();
        for posted in net.entries().into_iter().filter(|p| p.seq >= cursor) {
            if posted.from != self.name {
                self.take(net, &posted);
                self.resolve(net);
            }
            self.set_cursor(posted.seq + 1);
        }
        if let Some(last) = self.store.unacked(usize::MAX).unwrap().last() {
            self.store.ack(last.seq).unwrap();
        }
    }

    fn take(&mut self, net: &Net, posted: &Posted) {
        match posted.kind.as_str() {
            "welcome" if self.group.is_none() => {
                // Welcomes for others (or with a used key package) do not join: skip them.
                if let Ok(group) = block_on(Group::join(
                    &mut self.store,
                    &posted.bytes(),
                    config(),
                    &checks(),
                )) {
                    self.group = Some(group);
                }
            }
            "commit" => {
                let accepted = net
                    .accepted_commit(posted.epoch)
                    .is_some_and(|a| a.seq == posted.seq);
                if let (true, Some(group)) = (accepted, self.group.as_mut()) {
                    // A commit of an epoch the member is not in fails: skip it.
                    let _ = block_on(group.process(&mut self.store, &posted.bytes(), &checks()));
                }
            }
            "app" | "proposal" => {
                if let Some(group) = self.group.as_mut() {
                    // Messages of epochs the member is not in fail: skip them.
                    let _ = block_on(group.process(&mut self.store, &posted.bytes(), &checks()));
                }
            }
            _ => {}
        }
    }
}

fn sync(members: &mut [Member], net: &Net) {
    for _ in 0..3 {
        for m in members.iter_mut() {
            m.publish(net);
            m.resolve(net);
            m.receive(net);
        }
    }
}

/// The newest key package `name` posted after the last Welcome (unused: see `publish`).
fn fresh_key_package(net: &Net, name: &str) -> Option<Vec<u8>> {
    net.fresh_key_packages(name).last().map(Posted::bytes)
}

fn add(members: &mut [Member], net: &Net, who: usize) {
    let Some(bytes) = fresh_key_package(net, NAMES[who]) else {
        return;
    };
    let a = &mut members[0];
    let kp = block_on(validate_key_package_bytes(
        &bytes,
        a.store.provider().crypto_provider(),
        SUITE,
        &config().policy(),
        None,
    ))
    .unwrap();
    let group = a.group.as_mut().unwrap();
    block_on(group.add_members(&mut a.store, &[kp], &checks())).unwrap();
}

fn group_life(dir: &Path, seed: u64) {
    let net = Net::new(dir);
    let mut members: Vec<Member> = NAMES
        .iter()
        .zip(1..)
        .map(|(name, n)| Member::open(dir, name, n))
        .collect();
    if members[0].group.is_none() {
        let a = &mut members[0];
        a.group = Some(Group::create(&mut a.store, GROUP, config(), Default::default()).unwrap());
    }
    let mut rng = Rng(seed);
    for action in 0..ACTIONS {
        sync(&mut members, &net);
        let a_members = members[0].group.as_ref().unwrap().members();
        let b_in = a_members.contains(&members[1].address());
        let c_in = a_members.contains(&members[2].address());
        let roll = rng.below(100);
        if !b_in {
            add(&mut members, &net, 1);
        } else if (55..70).contains(&roll) {
            let m = &mut members[rng.below(2) as usize];
            m.group.as_mut().unwrap().self_update(&mut m.store).unwrap();
        } else if (70..85).contains(&roll) && !c_in {
            add(&mut members, &net, 2);
        } else if roll >= 85 && c_in {
            let c = members[2].address();
            let a = &mut members[0];
            a.group
                .as_mut()
                .unwrap()
                .remove_members(&mut a.store, &[c])
                .unwrap();
        } else {
            let senders: Vec<usize> = (0..3).filter(|&i| members[i].active()).collect();
            let m = &mut members[senders[rng.below(senders.len() as u64) as usize]];
            let group = m.group.as_mut().unwrap();
            // The text names the members the sender sends to.
            let to: Vec<String> = group.members().iter().map(|a| a.to_string()).collect();
            let text = format!("{seed:x}/{action}|{}", to.join(","));
            group.send(&mut m.store, text.as_bytes()).unwrap();
        }
    }
    sync(&mut members, &net);
}

// ---------------------------------------------------------------------------------------
// The parent.
// ---------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    Killed,
    Finished,
}

/// How a life ends.
enum Kill {
    /// Runs to the end.
    Never,
    /// This long after the worker is ready.
    After(Duration),
    /// At the n-th occurrence of a named step (if reached).
    At(&'static str, u32),
}

struct Run {
    dir: PathBuf,
    seed: u64,
    kills: BTreeMap<String, u32>,
}

impl Run {
    fn life(&mut self, mode: &str, index: usize, life_seed: u64, kill: Kill) -> Outcome {
        let mut command = Command::new(std::env::current_exe().unwrap());
        command
            .args(["--exact", "kill_worker", "--ignored", "--nocapture"])
            .args(["--test-threads", "1"])
            .env(WORKER, mode)
            .env(DIR, &self.dir)
            .env(LIFE_SEED, life_seed.to_string())
            .env(INDEX, index.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Kill::At(step, n) = kill {
            command.env(STEP, format!("{step}:{n}"));
        }
        let mut child = command.spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let errors = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = stderr.read_to_string(&mut s);
            s
        });
        let mut last_step = String::from("(no step yet)");
        let note = |line: &str, last: &mut String| {
            if let Some(step) = line.find('@').map(|at| &line[at + 1..]) {
                *last = step.to_owned();
            }
        };
        let mut wait_for = |prefixes: &[&str], timeout: Duration| -> Option<String> {
            let deadline = Instant::now() + timeout;
            loop {
                let left = deadline.saturating_duration_since(Instant::now());
                match rx.recv_timeout(left) {
                    // libtest may print "test kill_worker ... " before the first line.
                    Ok(line) => {
                        note(&line, &mut last_step);
                        if let Some(at) = prefixes.iter().find_map(|p| line.find(p)) {
                            return Some(line[at..].to_owned());
                        }
                    }
                    Err(_) => return None,
                }
            }
        };
        let context = format!("seed {:#x}, {mode} life {index}", self.seed);
        let ready = wait_for(&["GO", "DONE"], Duration::from_secs(120));
        let mut killed_at = None;
        if ready.as_deref() == Some("GO") {
            match kill {
                Kill::Never => {
                    wait_for(&["DONE"], Duration::from_secs(600));
                }
                Kill::After(delay) => {
                    if wait_for(&["DONE"], delay).is_none() {
                        killed_at = Some("random".to_owned());
                    }
                }
                Kill::At(..) => {
                    if let Some(line) = wait_for(&["STEP", "DONE"], Duration::from_secs(600))
                        && let Some(step) = line.strip_prefix("STEP ")
                    {
                        killed_at = Some(step.to_owned());
                    }
                }
            }
        }
        if killed_at.is_some() {
            // SIGKILL.
            let _ = child.kill();
        }
        let status = child.wait().unwrap();
        let errors = errors.join().unwrap();
        reader.join().unwrap();
        for line in rx.try_iter() {
            note(&line, &mut last_step);
        }
        let killed_at = killed_at.map(|at| {
            if at == "random" {
                format!("random, after {last_step}")
            } else {
                at
            }
        });
        use std::os::unix::process::ExitStatusExt as _;
        match (killed_at, status.signal()) {
            (Some(at), Some(9)) => {
                *self.kills.entry(format!("{mode}:{at}")).or_default() += 1;
                Outcome::Killed
            }
            (_, None) if status.success() => Outcome::Finished,
            _ => panic!("the worker failed ({context}): {status}\n{errors}"),
        }
    }
}

fn life_seed(seed: u64, phase: u64, index: usize) -> u64 {
    Rng(seed ^ phase.wrapping_mul(0x1000_0001) ^ index as u64).next()
}

#[test]
fn kill_test_nothing_lost_nothing_twice() {
    let seed: u64 = std::env::var("ETH_MLS_KILL_SEED")
        .ok()
        .and_then(|s| u64::from_str_radix(s.trim_start_matches("0x"), 16).ok())
        .unwrap_or(0x17_2026);
    let lives: usize = std::env::var("ETH_MLS_KILL_LIVES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(220);
    println!("kill test seed {seed:#x} (ETH_MLS_KILL_SEED to replay), {lives} random lives");
    let dir = TempDir::new();
    let mut run = Run {
        dir: dir.0.clone(),
        seed,
        kills: BTreeMap::new(),
    };
    let mut rng = Rng(seed);
    let started = Instant::now();

    // 1. Store creation: at every named step, then at random moments.
    let mut index = 0;
    let create_steps = STEPS
        .iter()
        .filter(|s| s.starts_with("create:") || s.starts_with("migrate:"));
    for step in create_steps {
        run.life("create", index, 0, Kill::At(step, 1));
        index += 1;
    }
    let t = Instant::now();
    run.life("create", index, 0, Kill::Never);
    index += 1;
    let create_time = t.elapsed();
    for _ in 0..lives / 3 {
        let delay = Duration::from_micros(rng.below(create_time.as_micros() as u64 + 1));
        run.life("create", index, 0, Kill::After(delay));
        index += 1;
    }
    run.life("create", index, 0, Kill::Never);
    for i in 0..=index {
        Store::<eth_mls_crypto::DefaultBackend>::open(dir.0.join(format!("create-{i}.db")), &key())
            .unwrap_or_else(|e| panic!("create-{i}.db does not open (seed {seed:#x}): {e}"));
    }

    // 2. Three members: named steps of sending, processing, committing, merging, joining.
    let mut life = 0usize;
    let t = Instant::now();
    run.life("group", life, life_seed(seed, 1, life), Kill::Never);
    let life_time = t.elapsed();
    life += 1;
    let group_steps: Vec<&'static str> = STEPS
        .iter()
        .copied()
        .filter(|s| !s.starts_with("create:") && !s.starts_with("migrate:"))
        .collect();
    // Each step three times: killed at its first occurrence in a life (lives that do not
    // reach it run on and move the group along).
    for step in &group_steps {
        let mut hits = 0;
        for _ in 0..40 {
            let outcome = run.life("group", life, life_seed(seed, 1, life), Kill::At(step, 1));
            life += 1;
            hits += u32::from(outcome == Outcome::Killed);
            if hits == 3 {
                break;
            }
        }
        assert_eq!(hits, 3, "step {step} reached {hits} times (seed {seed:#x})");
    }
    // 3. Random moments.
    for _ in 0..lives {
        let delay = Duration::from_micros(rng.below(life_time.as_micros() as u64 + 1));
        run.life("group", life, life_seed(seed, 1, life), Kill::After(delay));
        life += 1;
    }
    // Settle without kills.
    run.life("group", life, life_seed(seed, 1, life), Kill::Never);

    let total: u32 = run.kills.values().sum();
    let mut summary = format!(
        "kill test (seed {seed:#x}): {total} kills in {:.0?} (a life of the group worker: {life_time:.0?})\n",
        started.elapsed()
    );
    for (at, n) in &run.kills {
        summary.push_str(&format!("  {n:4} at {at}\n"));
    }
    summary.push_str(&check(&dir.0, seed));
    // Straight to the process's stderr, past libtest's capture: CI logs show the counts.
    let _ = std::io::stderr().write_all(summary.as_bytes());
    assert!(
        total as usize >= lives + 30,
        "only {total} kills (seed {seed:#x})"
    );
}

/// Every check of the issue, on the stores the worker left; returns what it found.
fn check(dir: &Path, seed: u64) -> String {
    let ctx = format!("seed {seed:#x}");
    let mut stores: Vec<Store> = NAMES
        .iter()
        .map(|n| Store::open(dir.join(format!("{n}.db")), &key()).unwrap())
        .collect();
    let mut groups: Vec<Option<Group>> = stores
        .iter()
        .map(|s| {
            s.group_ids()
                .unwrap()
                .iter()
                .any(|g| g.as_slice() == GROUP)
                .then(|| Group::load(s, GROUP).unwrap())
        })
        .collect();

    // Agreement.
    let a = groups[0].as_ref().unwrap();
    let accounts: BTreeSet<Address> = a.members().into_iter().collect();
    for (i, g) in groups.iter().enumerate() {
        let address = stores[i].identity().address();
        match g {
            Some(g) if g.is_active() => {
                assert!(
                    accounts.contains(&address),
                    "{ctx}: {} not in a's list",
                    NAMES[i]
                );
                assert_eq!(g.epoch(), a.epoch(), "{ctx}: {} epoch", NAMES[i]);
                assert_eq!(g.epoch_authenticator(), a.epoch_authenticator(), "{ctx}");
                assert_eq!(g.members(), a.members(), "{ctx}: {} members", NAMES[i]);
            }
            _ => assert!(!accounts.contains(&address), "{ctx}: {} missing", NAMES[i]),
        }
    }
    let mut found = format!(
        "  agreement: epoch {}, {} members\n",
        a.epoch(),
        a.members().len()
    );

    // Every message sent is in every other member's inbox exactly once.
    let inboxes: Vec<Vec<eth_mls_core::InboxEntry>> = stores
        .iter()
        .map(|s| s.inbox(0, usize::MAX).unwrap())
        .collect();
    let mut sent = 0;
    let mut deliveries = 0;
    for (i, store) in stores.iter().enumerate() {
        for entry in store.outbox(0, usize::MAX).unwrap() {
            if entry.kind != OutboxKind::Application {
                continue;
            }
            assert!(
                entry.published_at.is_some(),
                "{ctx}: unpublished after settling"
            );
            sent += 1;
            let hash: [u8; 32] = sha2::Sha256::digest(&entry.bytes).into();
            let copies = |inbox: &[eth_mls_core::InboxEntry]| -> Vec<Vec<u8>> {
                inbox
                    .iter()
                    .filter(|e| e.message_hash == hash)
                    .filter_map(|e| match &e.event {
                        Event::Application(m) => Some(m.data.clone()),
                        _ => None,
                    })
                    .collect()
            };
            let text = inboxes.iter().flat_map(|inbox| copies(inbox)).next();
            let Some(text) = text else {
                // Nobody else was in the group: the creator alone, before the first add.
                assert_eq!((i, entry.epoch), (0, 0), "{ctx}: a message nobody received");
                continue;
            };
            let text = String::from_utf8(text).unwrap();
            let (_, to) = text.split_once('|').unwrap();
            for (j, inbox) in inboxes.iter().enumerate() {
                if j == i {
                    continue;
                }
                let address = stores[j].identity().address().to_string();
                let n = copies(inbox).len();
                if to.split(',').any(|a| a == address) {
                    assert_eq!(n, 1, "{ctx}: {} has {text:?} {n} times", NAMES[j]);
                    deliveries += 1;
                } else {
                    assert_eq!(n, 0, "{ctx}: {} has {text:?}", NAMES[j]);
                }
            }
        }
    }
    // Nothing twice, no missed-message report.
    for (j, inbox) in inboxes.iter().enumerate() {
        let mut seen = BTreeSet::new();
        for e in inbox {
            assert!(
                !matches!(e.event, Event::MissedMessages { .. }),
                "{ctx}: {} reports missed messages: {:?}",
                NAMES[j],
                e.event
            );
            if let Event::Application(m) = &e.event {
                assert!(seen.insert(m.data.clone()), "{ctx}: {} twice", NAMES[j]);
            }
        }
    }
    found.push_str(&format!(
        "  {sent} messages sent, {deliveries} deliveries, each exactly once, no missed-message report\n"
    ));
    assert!(sent > 20, "{ctx}: only {sent} messages");

    // A fresh message decrypts both ways.
    let active: Vec<usize> = (0..3)
        .filter(|&i| groups[i].as_ref().is_some_and(Group::is_active))
        .collect();
    for &from in &active {
        let text = format!("fresh from {}", NAMES[from]);
        let m = {
            let g = groups[from].as_mut().unwrap();
            g.send(&mut stores[from], text.as_bytes()).unwrap()
        };
        for &to in active.iter().filter(|&&t| t != from) {
            let g = groups[to].as_mut().unwrap();
            let events = block_on(g.process(&mut stores[to], &m.bytes, &checks())).unwrap();
            let Processed::New(events) = events else {
                panic!("{ctx}: a fresh message is a duplicate")
            };
            assert!(
                matches!(events.last(), Some(Event::Application(a)) if a.data == text.as_bytes()),
                "{ctx}: {events:?}"
            );
        }
    }
    found.push_str("  a fresh message decrypts both ways\n");
    found
}
