//! Three Ethereum accounts in one MLS group (suite 0x0004), each with its own SQLite store:
//! Alice creates the group and adds Bob and Carol from their key packages, everyone talks,
//! Bob updates his keys, Alice removes Carol, and Carol can no longer read. Every store is
//! reopened from its file halfway through, as after a restart. What each member sends is
//! published from its outbox; what it receives is read from its inbox and acknowledged.
//!
//! `cargo run -p eth-mls-core --example three_accounts` (part of `cargo xtask demo`).

use std::error::Error;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use eth_mls_core::{
    BindingRequest, Checks, Event, Group, GroupConfig, Identity, LocalEthereumSigner, Store,
    StoreKey, validate_key_package_bytes,
};
use eth_mls_crypto::{Provider, SUITE};
use openmls_traits::OpenMlsProvider;

/// Credential checks without ERC-1271 complete at the first poll.
fn block_on<F: Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    loop {
        if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
    }
}

/// Checksummed addresses, comma-separated.
fn list(addresses: &[eth_mls_siwe::Address]) -> String {
    let all: Vec<String> = addresses.iter().map(ToString::to_string).collect();
    format!("[{}]", all.join(", "))
}

const CHAIN_ID: u64 = 31337;
const DOMAIN: &str = "demo.eth-mls.local";

/// Each member's store is encrypted at rest (SQLCipher) under a key from its passphrase
/// (Argon2id); a real client asks its user for it.
fn store_key(name: &str) -> StoreKey {
    StoreKey::passphrase(format!("{name}'s passphrase, never on a command line"))
}

/// Verdicts about group changes are judged at a reference time: on a chain, the timestamp of
/// the block that registered the change. This example has no chain, so it uses the clock.
fn checks() -> Checks<'static> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    Checks::at(now)
}

struct Member {
    name: &'static str,
    path: PathBuf,
    store: Store,
    group: Option<Group>,
}

impl Member {
    fn new(dir: &Path, name: &'static str, key: u8) -> Result<Self, Box<dyn Error>> {
        let account = LocalEthereumSigner::from_bytes(&[key; 32])?;
        let request = BindingRequest {
            domain: DOMAIN.into(),
            uri: format!("https://{DOMAIN}"),
            chain_id: CHAIN_ID,
            valid_for: Some(Duration::from_secs(24 * 3600)),
        };
        let identity = block_on(Identity::create(&account, &request))?;
        let path = dir.join(format!("{name}.db"));
        let store = Store::create(&path, &store_key(name), identity)?;
        println!(
            "  {name:<5} {}  (store {})",
            store.identity().address(),
            path.display()
        );
        Ok(Self {
            name,
            path,
            store,
            group: None,
        })
    }

    fn group(&mut self) -> (&mut Group, &mut Store) {
        (self.group.as_mut().expect("in the group"), &mut self.store)
    }

    /// Publishes the outbox (here: hands the bytes to the caller, which delivers them), marking
    /// each entry; returns the newest entry's bytes. After a crash, the unmarked entries would
    /// be published again.
    fn publish(&mut self) -> Result<Vec<u8>, Box<dyn Error>> {
        let mut newest = None;
        for entry in self.store.outbox_pending()? {
            self.store.mark_published(entry.seq)?;
            newest = Some(entry.bytes);
        }
        Ok(newest.ok_or("nothing to publish")?)
    }

    /// Processes a message, then handles what the inbox holds and acknowledges it.
    fn receive(&mut self, message: &[u8]) -> Result<(), Box<dyn Error>> {
        let (group, store) = self.group();
        block_on(group.process(store, message, &checks()))?;
        for entry in self.store.unacked(100)? {
            match entry.event {
                Event::Application(m) => println!(
                    "  {:<5} <- {}: {:?} (epoch {}, generation {})",
                    self.name,
                    m.sender,
                    String::from_utf8_lossy(&m.data),
                    m.epoch,
                    m.generation.map_or("?".to_owned(), |g| g.to_string())
                ),
                Event::StagedCommit(c) => {
                    let (group, store) = self.group();
                    group.merge_staged_commit(store)?;
                    println!(
                        "  {:<5} merged the commit of {} -> epoch {} (added {}, removed {}, updated {})",
                        self.name,
                        c.committer,
                        c.new_epoch,
                        list(&c.added),
                        list(&c.removed),
                        list(&c.updated)
                    );
                }
                other => println!("  {:<5} {other:?}", self.name),
            }
            self.store.ack(entry.seq)?;
        }
        Ok(())
    }

    fn restart(&mut self) -> Result<(), Box<dyn Error>> {
        let id = self.group.as_ref().map(|g| g.id().to_vec());
        self.group = None;
        self.store = Store::open(&self.path, &store_key(self.name))?;
        if let Some(id) = id {
            self.group = Some(Group::load(&self.store, &id)?);
        }
        Ok(())
    }
}

fn main() -> Result<(), Box<dyn Error>> {
    let started = Instant::now();
    let dir = std::env::temp_dir().join(format!("eth-mls-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let config = GroupConfig::new(CHAIN_ID, DOMAIN);

    println!("MLS: three accounts, suite 0x0004 (X448, Ed448, AES-256-GCM, SHA-512)");
    let mut alice = Member::new(&dir, "alice", 0xa1)?;
    let mut bob = Member::new(&dir, "bob", 0xb2)?;
    let mut carol = Member::new(&dir, "carol", 0xc3)?;

    // Bob and Carol publish key packages; Alice validates them (RFC 9420 + SIWE binding).
    let provider = Provider::new();
    let mut kps = Vec::new();
    for m in [&mut bob, &mut carol] {
        let bytes = m.store.generate_key_package(None)?;
        kps.push(block_on(validate_key_package_bytes(
            &bytes,
            provider.crypto(),
            SUITE,
            &config.policy(),
            None,
        ))?);
    }

    alice.group = Some(Group::create(
        &mut alice.store,
        b"demo-group",
        config.clone(),
        Default::default(),
    )?);
    let (group, store) = alice.group();
    let out = block_on(group.add_members(store, &kps, &checks()))?;
    group.merge_pending_commit(store)?;
    println!(
        "  alice created the group and added {} (epoch {})",
        list(&out.summary.added),
        out.summary.new_epoch
    );
    // The commit, then (with the merge) the Welcome, went to alice's outbox.
    let welcome = alice.publish()?;
    if Some(&welcome) != out.welcome.as_ref() {
        return Err("the outbox does not end with the Welcome".into());
    }
    for m in [&mut bob, &mut carol] {
        m.group = Some(block_on(Group::join(
            &mut m.store,
            &welcome,
            config.clone(),
            &checks(),
        ))?);
        println!(
            "  {:<5} joined: members {}",
            m.name,
            list(&m.group.as_ref().map(Group::members).unwrap_or_default())
        );
    }

    let (group, store) = alice.group();
    group.send(store, b"gm, this group is end-to-end encrypted")?;
    let hello = alice.publish()?;
    bob.receive(&hello)?;
    carol.receive(&hello)?;
    let (group, store) = bob.group();
    group.send(store, b"gm! only the three of us can read this")?;
    let reply = bob.publish()?;
    alice.receive(&reply)?;
    carol.receive(&reply)?;

    println!("  (every member stops and restarts from its database)");
    for m in [&mut alice, &mut bob, &mut carol] {
        m.restart()?;
    }

    let (group, store) = bob.group();
    group.self_update(store)?;
    group.merge_pending_commit(store)?;
    println!("  bob   updated his keys (post-compromise security)");
    let update = bob.publish()?;
    alice.receive(&update)?;
    carol.receive(&update)?;

    let carol_address = carol.store.identity().address();
    let (group, store) = alice.group();
    group.remove_members(store, &[carol_address])?;
    group.merge_pending_commit(store)?;
    println!("  alice removed carol");
    let removal = alice.publish()?;
    bob.receive(&removal)?;
    carol.receive(&removal)?;

    let (group, store) = alice.group();
    group.send(store, b"carol cannot read this")?;
    let secret = alice.publish()?;
    bob.receive(&secret)?;
    match carol.receive(&secret) {
        Err(e) => println!("  carol cannot decrypt: {e}"),
        Ok(()) => return Err("a removed member decrypted a message".into()),
    }

    let a = alice.group.as_ref().ok_or("alice")?;
    let b = bob.group.as_ref().ok_or("bob")?;
    if a.epoch_authenticator() != b.epoch_authenticator() {
        return Err("alice and bob disagree".into());
    }
    println!(
        "  alice and bob agree on epoch {} (authenticator {}…); done in {:.0?}",
        a.epoch(),
        &hex::encode(a.epoch_authenticator())[..16],
        started.elapsed()
    );
    drop((alice, bob, carol));
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
