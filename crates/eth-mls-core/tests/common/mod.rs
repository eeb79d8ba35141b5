//! Helpers shared by the group tests: identities (good and bad), peers with SQLite stores,
//! a poll-to-completion executor (credential checks without ERC-1271 never wait).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use eth_mls_core::{
    BindingRequest, EthereumCredential, EthereumSigner, Event, Group, GroupConfig, Identity,
    LocalEthereumSigner, OutgoingCommit, Processed, Store, ValidatedKeyPackage, key_uri,
    validate_key_package_bytes,
};
use eth_mls_crypto::{SUITE, SignatureKeyPair, SignaturePublicKey};
use eth_mls_siwe::{Address, Message, TimeStamp};
use openmls_traits::OpenMlsProvider;

pub const CHAIN: u64 = 31337;
pub const DOMAIN: &str = "chat.example";

pub fn block_on<F: Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    loop {
        if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
    }
}

pub fn account(n: u8) -> LocalEthereumSigner {
    LocalEthereumSigner::from_bytes(&[n; 32]).unwrap()
}

pub fn request(chain_id: u64) -> BindingRequest {
    BindingRequest {
        domain: DOMAIN.into(),
        uri: "https://chat.example".into(),
        chain_id,
        valid_for: Some(Duration::from_secs(3600)),
    }
}

pub fn identity(n: u8) -> Identity {
    block_on(Identity::create(&account(n), &request(CHAIN))).unwrap()
}

pub fn config() -> GroupConfig {
    GroupConfig::new(CHAIN, DOMAIN)
}

/// Ways a credential can be wrong.
#[derive(Clone, Copy, Debug)]
pub enum Bad {
    /// The SIWE message names another signature key than the leaf's.
    OtherKey,
    /// The message is for account n but signed by another account.
    OtherAccount,
    /// The message expired an hour ago.
    Expired,
    /// The message is for chain 1.
    OtherChain,
}

pub const BAD: [Bad; 4] = [
    Bad::OtherKey,
    Bad::OtherAccount,
    Bad::Expired,
    Bad::OtherChain,
];

fn signed(message: Message, by: &LocalEthereumSigner) -> EthereumCredential {
    let signature = block_on(by.sign_message(message.to_string().as_bytes())).unwrap();
    EthereumCredential::new(message, signature)
}

/// A credential for account `n` binding `key`, wrong in the way `bad` says.
pub fn bad_credential(n: u8, bad: Bad, key: &SignaturePublicKey) -> EthereumCredential {
    let now = TimeStamp::now().unix_seconds();
    let other_key =
        SignatureKeyPair::<eth_mls_crypto::DefaultBackend>::generate(SUITE.signature_algorithm())
            .unwrap();
    let builder = |issued: i64, chain: u64, key: &SignaturePublicKey| {
        Message::builder(DOMAIN, account(n).address(), "https://chat.example", chain)
            .statement("Authorize this MLS signature key.")
            .issued_at(TimeStamp::from_unix(issued))
            .resource(&key_uri(key))
    };
    match bad {
        Bad::OtherKey => signed(
            builder(now, CHAIN, other_key.public_key()).build().unwrap(),
            &account(n),
        ),
        Bad::OtherAccount => signed(
            builder(now, CHAIN, key).build().unwrap(),
            &account(n.wrapping_add(100)),
        ),
        Bad::Expired => signed(
            builder(now - 7200, CHAIN, key)
                .expiration_time(TimeStamp::from_unix(now - 3600))
                .build()
                .unwrap(),
            &account(n),
        ),
        Bad::OtherChain => signed(builder(now, 1, key).build().unwrap(), &account(n)),
    }
}

/// A valid credential for account `n` binding `key` (e.g. a member's key bound to a second
/// account the member also holds).
pub fn good_credential(n: u8, key: &SignaturePublicKey) -> EthereumCredential {
    let message = Message::builder(DOMAIN, account(n).address(), "https://chat.example", CHAIN)
        .statement("Authorize this MLS signature key.")
        .issued_at(TimeStamp::now())
        .resource(&key_uri(key))
        .build()
        .unwrap();
    signed(message, &account(n))
}

/// An identity whose credential is wrong in the way `bad` says.
pub fn bad_identity(n: u8, bad: Bad) -> Identity {
    let signer = SignatureKeyPair::generate(SUITE.signature_algorithm()).unwrap();
    let credential = bad_credential(n, bad, signer.public_key());
    Identity::from_parts(signer, credential)
}

/// A serialized key package of an identity (private keys in a throw-away provider).
pub fn raw_key_package(id: &Identity) -> Vec<u8> {
    use tls_codec::Serialize as _;
    let provider = eth_mls_crypto::Provider::new();
    eth_mls_core::generate_key_package(id, &provider, None)
        .unwrap()
        .key_package()
        .tls_serialize_detached()
        .unwrap()
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new() -> Self {
        let dir = std::env::temp_dir().join(format!(
            "eth-mls-core-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The current time, Unix seconds (the tests stand in for the chain's block timestamps).
pub fn now() -> i64 {
    TimeStamp::now().unix_seconds()
}

/// Checks at the current time, EIP-191 only.
pub fn checks() -> eth_mls_core::Checks<'static> {
    eth_mls_core::Checks::at(now())
}

/// The raw key of every test store (a passphrase would run Argon2id at every open).
pub fn store_key() -> eth_mls_core::StoreKey {
    eth_mls_core::StoreKey::raw([0x5e; 32])
}

/// A member: its store (a file) and its group.
pub struct Peer {
    pub path: PathBuf,
    pub store: Store,
    pub group: Option<Group>,
}

impl Peer {
    pub fn new(dir: &TempDir, id: Identity) -> Self {
        let path = dir.0.join(format!("{}.db", id.address()));
        let store = Store::create(&path, &store_key(), id).unwrap();
        Self {
            path,
            store,
            group: None,
        }
    }

    /// A member whose store lives in memory (faster; no restarts).
    pub fn in_memory(id: Identity) -> Self {
        Self {
            path: PathBuf::new(),
            store: Store::in_memory(id).unwrap(),
            group: None,
        }
    }

    pub fn address(&self) -> Address {
        self.store.identity().address()
    }

    pub fn group(&mut self) -> &mut Group {
        self.group.as_mut().unwrap()
    }

    pub fn g(&self) -> &Group {
        self.group.as_ref().unwrap()
    }

    /// Creates the group as its first member.
    pub fn create(&mut self, id: &[u8]) {
        self.group =
            Some(Group::create(&mut self.store, id, config(), Default::default()).unwrap());
    }

    /// A fresh key package, validated as a group member would.
    pub fn key_package(&mut self) -> ValidatedKeyPackage {
        let bytes = self.store.generate_key_package(None).unwrap();
        validated(&bytes)
    }

    /// Stops the process (drops everything in memory) and starts again from the file.
    pub fn restart(&mut self) {
        let id = self.group.as_ref().map(|g| g.id().to_vec());
        let store = Store::open(&self.path, &store_key()).unwrap();
        self.store = store;
        self.group = id.map(|id| Group::load(&self.store, &id).unwrap());
    }

    pub fn join(&mut self, welcome: &[u8]) -> Result<(), eth_mls_core::Error> {
        self.group = Some(block_on(Group::join(
            &mut self.store,
            welcome,
            config(),
            &checks(),
        ))?);
        Ok(())
    }

    /// Processes a message; a duplicate gives no events (see `process_raw`).
    pub fn process(&mut self, message: &[u8]) -> Result<Vec<Event>, eth_mls_core::Error> {
        self.process_raw(message).map(Processed::into_events)
    }

    /// Processes a message: new events, or a duplicate.
    pub fn process_raw(&mut self, message: &[u8]) -> Result<Processed, eth_mls_core::Error> {
        let group = self.group.as_mut().unwrap();
        block_on(group.process(&mut self.store, message, &checks()))
    }

    /// Merges the own pending commit.
    pub fn merge_own(&mut self) {
        let group = self.group.as_mut().unwrap();
        group.merge_pending_commit(&mut self.store).unwrap();
    }

    /// Adds members (commit pending).
    pub fn add(&mut self, kps: &[ValidatedKeyPackage]) -> OutgoingCommit {
        let group = self.group.as_mut().unwrap();
        block_on(group.add_members(&mut self.store, kps, &checks())).unwrap()
    }

    /// Commits a self-update (pending).
    pub fn update(&mut self) -> OutgoingCommit {
        let group = self.group.as_mut().unwrap();
        group.self_update(&mut self.store).unwrap()
    }

    /// Removes accounts (commit pending).
    pub fn remove(&mut self, accounts: &[Address]) -> OutgoingCommit {
        let group = self.group.as_mut().unwrap();
        group.remove_members(&mut self.store, accounts).unwrap()
    }

    /// Commits the pending proposals (commit pending).
    pub fn commit_proposals(&mut self) -> OutgoingCommit {
        let group = self.group.as_mut().unwrap();
        group.commit_pending_proposals(&mut self.store).unwrap()
    }

    /// Processes a commit and merges it.
    pub fn apply(&mut self, commit: &[u8]) {
        let events = self.process(commit).unwrap();
        assert!(
            matches!(events.as_slice(), [Event::StagedCommit(_)]),
            "{events:?}"
        );
        self.group
            .as_mut()
            .unwrap()
            .merge_staged_commit(&mut self.store)
            .unwrap();
    }

    pub fn send(&mut self, data: &[u8]) -> Vec<u8> {
        self.send_entry(data).bytes
    }

    /// Sends; returns the outbox entry.
    pub fn send_entry(&mut self, data: &[u8]) -> eth_mls_core::OutboxEntry {
        let group = self.group.as_mut().unwrap();
        group.send(&mut self.store, data).unwrap()
    }

    /// Receives one application message and returns its bytes.
    pub fn receive(&mut self, message: &[u8]) -> Vec<u8> {
        let events = self.process(message).unwrap();
        match events.last() {
            Some(Event::Application(app)) => app.data.clone(),
            other => panic!("expected an application message, got {other:?}"),
        }
    }
}

pub fn validated(bytes: &[u8]) -> ValidatedKeyPackage {
    let provider = eth_mls_crypto::Provider::new();
    block_on(validate_key_package_bytes(
        bytes,
        provider.crypto(),
        SUITE,
        &config().policy(),
        None,
    ))
    .unwrap()
}

/// A group `id` of the accounts `keys` (file stores in `dir`): the first creates it and
/// adds the others in one commit; everyone has joined.
pub fn group_of(dir: &TempDir, id: &[u8], keys: &[u8]) -> Vec<Peer> {
    let mut peers: Vec<Peer> = keys.iter().map(|&k| Peer::new(dir, identity(k))).collect();
    peers[0].create(id);
    let kps: Vec<_> = peers[1..].iter_mut().map(Peer::key_package).collect();
    let out = peers[0].add(&kps);
    peers[0].merge_own();
    let welcome = out.welcome.unwrap();
    for p in &mut peers[1..] {
        p.join(&welcome).unwrap();
    }
    peers
}

/// Every peer agrees on epoch, epoch authenticator and members.
pub fn assert_agree(peers: &[&Peer]) {
    let first = peers[0].g();
    for p in &peers[1..] {
        let g = p.g();
        assert_eq!(g.epoch(), first.epoch());
        assert_eq!(g.epoch_authenticator(), first.epoch_authenticator());
        assert_eq!(g.members(), first.members());
    }
}
