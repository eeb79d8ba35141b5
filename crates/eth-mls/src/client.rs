//! The [`Client`]: one account on one device, every layer joined — the account's signer and
//! SIWE-bound identity, eth-mls-core's encrypted store, the chain deployment (factory and
//! ERC-7627 registry), a delivery service (gossip, the chain, or the in-memory network), and
//! the 1:1 channel.
//!
//! The client is driven, not threaded: each call does its work and returns, and
//! [`Client::sync`] (or [`Client::next_event`], which waits for input) takes in what arrived —
//! 1:1 messages, group frames, the groups' contract events — runs the commit sequencer and the
//! intents, publishes the outbox, and queues [`ClientEvent`]s. All state that matters lives in
//! the store and is written before it is acted on, so a process killed at any point restarts
//! with [`Client::open`] and finishes what it started.

use std::collections::{BTreeMap, VecDeque};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use alloy_primitives::keccak256;
use eth_mls_chain::KeyAlgorithm;
use eth_mls_chain::{Chain, CommitPolicy, Deployment, Erc7627, GroupEvent};
use eth_mls_channel::{
    ChannelMessage, DefaultBackend as ChannelBackend, Device, OneTimePrekeyChoice, PrekeyBundle,
    Secret,
};
use eth_mls_core::{
    BindingRequest, Checks, EthereumSigner, Event as CoreEvent, Group, GroupConfig, Identity,
    OutboxKind, Store, StoreKey, validate_key_package_bytes,
};
use eth_mls_crypto::{Crypto, DefaultBackend, SUITE};
use eth_mls_siwe::Address;
use eth_mls_transport::{Cursor, DeliveryService, Envelope, Topic};
use futures_util::stream::{BoxStream, SelectAll};
use futures_util::{FutureExt as _, StreamExt as _, TryStreamExt as _};

use crate::Error;
use crate::engine::machine::core;
use crate::intent::Intent;
use crate::peers::{Binding, PeerKeys};
use crate::records::{self, GroupRecord, Op, OpRecord, PendingWelcome, ReceivedInvitation};
use crate::verdict::{Acl, Registration, check_epoch_authenticator};
use crate::wire::{
    ChangeKind, ChangeRequest, ClientMessage, GroupRef, InvitationRequest, RejectReason, RequestId,
    RequestRejected, WelcomeDelivery,
};

mod chain;
mod intents;

use chain::{block_time, group_logs};

/// Channel sessions kept with one peer account (the oldest made go first).
pub const MAX_SESSIONS_PER_PEER: usize = 8;
/// Channel sessions kept in all.
pub const MAX_SESSIONS: usize = 1024;
/// How many times a queued 1:1 message that fails for a reason that may pass is tried.
pub const INCOMING_ATTEMPTS: u32 = 8;

/// How a client runs.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// The contracts (factory, registry) and the block they were deployed in.
    pub deployment: Deployment,
    /// The SIWE domain the account signs in to (members' credentials must name it).
    pub domain: String,
    /// Act on registrations this many blocks deep (0 on a devnet).
    pub confirmations: u64,
    /// How long a new credential is valid.
    pub credential_validity: Duration,
    /// Report [`ClientEvent::CredentialDue`] this long before the credential expires.
    pub renew_before: Duration,
    /// How long an invitation may be answered.
    pub invitation_validity: Duration,
    /// One-time prekeys published in the bundle.
    pub one_time_prekeys: u32,
    /// How long [`Client::next_event`] waits between looks at the chain.
    pub poll_interval: Duration,
    /// Over a WebSocket endpoint the chain is read when the node reports a log of the
    /// client's groups (`eth_subscribe`, [`eth_mls_chain::Watch`]) and at least this often;
    /// the looks in between ask the node nothing. Reads then are at most one per
    /// [`ClientConfig::poll_interval`], however many notifications the node sends.
    pub pushed_poll_interval: Duration,
    /// Welcomes larger than this (bytes) are published on the group's commit topic and sent
    /// to the invitee by hash (WIRE.md); smaller ones go inline in the 1:1 message.
    pub inline_welcome_limit: usize,
    /// An admin grants each member at most one update or re-add request per this interval
    /// (each is a commit and a transaction the admin pays for).
    pub request_interval: Duration,
    /// An invitation not answered is sent again after this long, then after twice as long,
    /// and so on until it expires.
    pub invitation_resend: Duration,
    /// How long a new signed prekey is valid; it is replaced (and the bundle published
    /// again, from [`Client::sync`]) once less than a third of that is left.
    pub signed_prekey_lifetime: Duration,
    /// One-time prekeys used up (by initiators, or burned) are replaced and the bundle
    /// published again at most this often.
    pub min_republish_interval: Duration,
    /// A session this client opened and the peer never answered is not used for new
    /// messages after this long: the next one starts a session from the peer's current
    /// bundle (its first one-time prekey may have been burned).
    pub pending_session_timeout: Duration,
    /// The wait before a 1:1 message that failed for a reason that may pass (the chain or the
    /// delivery service unreachable) is tried again; it doubles with each try, up to
    /// [`INCOMING_ATTEMPTS`] tries (5 s: about 21 minutes in all).
    pub inbox_retry: Duration,
    /// Keep every application message received in the store (encrypted at rest), for
    /// [`Client::messages`]; off by default (an application keeps its own history).
    pub keep_messages: bool,
}

impl ClientConfig {
    /// The defaults for `deployment` and `domain`: no confirmations (a devnet), credentials
    /// for 30 days renewed 3 days before, invitations for a day, 20 one-time prekeys, a look at
    /// the chain every 500 ms.
    pub fn new(deployment: Deployment, domain: impl Into<String>) -> Self {
        Self {
            deployment,
            domain: domain.into(),
            confirmations: 0,
            credential_validity: Duration::from_secs(30 * 86_400),
            renew_before: Duration::from_secs(3 * 86_400),
            invitation_validity: Duration::from_secs(86_400),
            one_time_prekeys: 20,
            poll_interval: Duration::from_millis(500),
            pushed_poll_interval: Duration::from_secs(30),
            // Inline Welcomes stay well inside a chain-channel frame (96 KiB).
            inline_welcome_limit: 64 << 10,
            keep_messages: false,
            inbox_retry: Duration::from_secs(5),
            invitation_resend: Duration::from_secs(600),
            request_interval: Duration::from_secs(3600),
            signed_prekey_lifetime: Duration::from_secs(7 * 86_400),
            min_republish_interval: Duration::from_secs(600),
            pending_session_timeout: Duration::from_secs(600),
        }
    }
}

pub use crate::engine::events::ClientEvent;
use crate::engine::machine::{Engine, Joined};

/// One account's eth-mls client. See the module documentation.
pub struct Client<D: DeliveryService> {
    signer: Arc<dyn EthereumSigner>,
    chain: Chain,
    registry: Erc7627,
    delivery: D,
    config: ClientConfig,
    /// The protocol's state (decision 24): everything but the chain, the delivery and time.
    engine: Engine,
    device: Device<ChannelBackend>,
    subscriptions: SelectAll<BoxStream<'static, Envelope>>,
    credential_reported: bool,
    /// Registered inbox keys of the accounts this client talks to (decision 20).
    peers: PeerKeys,
    /// Whether this process looked for keys published without a record (older stores).
    keys_checked: bool,
    /// Groups whose chain a frame of a later epoch made this sync read already (security
    /// review M6: at most one such read per group and sync).
    frame_reads: std::collections::BTreeSet<Address>,
    /// Wake-ups from the node for the active groups' logs (WebSocket endpoints).
    watch: Option<chain::ChainWatch>,
    /// The chain has news not read yet (or the last read failed).
    chain_news: bool,
    /// When the chain was last read in full.
    chain_read_at: Option<tokio::time::Instant>,
    /// The opening read the chain and no sync has run since.
    opened: bool,
    /// The exclusive lock on `<store>.lock`, held while this client lives: two clients on one
    /// store would both take in and answer the same frames.
    _lock: std::fs::File,
}

impl<D: DeliveryService> std::fmt::Debug for Client<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("account", &self.signer.address())
            .field("groups", &self.engine.groups.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

fn chain_err(e: impl std::fmt::Display) -> Error {
    Error::Chain(e.to_string())
}

fn delivery_err(e: eth_mls_transport::Error) -> Error {
    Error::Delivery(e.to_string())
}

/// Unix seconds now.
fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn random_id() -> Result<RequestId, Error> {
    let mut id = [0u8; 16];
    getrandom::fill(&mut id).map_err(|e| Error::Core(format!("no randomness: {e}")))?;
    Ok(id)
}

/// ERC-1271 checks over `chain` (contract accounts' signatures), at `block` when given —
/// a group change is judged by the chain at its registration block (decision 12).
fn erc1271(chain: &Chain, block: Option<u64>) -> eth_mls_chain::RpcErc1271Verifier {
    let v = eth_mls_chain::RpcErc1271Verifier::new().with_chain(chain);
    match block {
        Some(b) => v.at_block(b),
        None => v,
    }
}

impl<D: DeliveryService + 'static> Client<D> {
    /// Opens the client whose store is at `path` (created, with a new SIWE-bound identity
    /// signed by `signer`, when there is none), loads its channel device (generated on first
    /// use), the groups it follows, and subscribes to its inbox and their topics. `chain`
    /// sends this account's transactions.
    pub async fn open(
        signer: Arc<dyn EthereumSigner>,
        chain: Chain,
        delivery: D,
        path: impl AsRef<Path>,
        key: &StoreKey,
        config: ClientConfig,
    ) -> Result<Self, Error> {
        let path = path.as_ref();
        let lock = lock_store(path)?;
        let chain_id = chain.chain_id();
        let store = if path.exists() {
            let store = Store::open(path, key).map_err(core)?;
            if store.identity().address() != signer.address() {
                return Err(Error::WrongAccount {
                    expected: signer.address(),
                    found: store.identity().address(),
                });
            }
            store
        } else {
            let request = BindingRequest {
                domain: config.domain.clone(),
                uri: format!("https://{}", config.domain),
                chain_id,
                valid_for: Some(config.credential_validity),
            };
            let identity = Identity::create(signer.as_ref(), &request)
                .await
                .map_err(|e| Error::Core(e.to_string()))?;
            Store::create(path, key, identity).map_err(core)?
        };
        let mut store = store;
        let device =
            match crate::state::load_device_marked::<ChannelBackend, DefaultBackend>(&store)? {
                Some((d, legacy)) => {
                    if legacy {
                        // Saved whole by an earlier version: each session in its own record now.
                        crate::state::save_device(&mut store, &d)?;
                    }
                    d
                }
                None => {
                    // The channel signs bundles with the MLS signature key, which the SIWE
                    // credential binds to the account.
                    let seed = Secret::from_slice(store.identity().signer().private_key().expose())
                        .ok_or_else(|| {
                            Error::Core("the MLS signature key is not 57 bytes".into())
                        })?;
                    let mut d =
                        Device::<ChannelBackend>::generate(signer.address().into_array(), seed)
                            .map_err(Error::Channel)?;
                    d.rotate_signed_prekey(now() as u64, config.signed_prekey_lifetime.as_secs())
                        .map_err(Error::Channel)?;
                    d.generate_one_time_prekeys(config.one_time_prekeys as usize)
                        .map_err(Error::Channel)?;
                    crate::state::save_device(&mut store, &d)?;
                    d
                }
            };
        let registry = chain.erc7627(config.deployment.erc7627);
        let mut client = Self {
            signer,
            chain,
            registry,
            delivery,
            engine: Engine {
                store,
                groups: BTreeMap::new(),
                events: VecDeque::new(),
                keep_messages: config.keep_messages,
            },
            config,
            device,
            subscriptions: SelectAll::new(),
            credential_reported: false,
            peers: PeerKeys::new(),
            keys_checked: false,
            frame_reads: std::collections::BTreeSet::new(),
            watch: None,
            chain_news: true,
            chain_read_at: None,
            opened: false,
            _lock: lock,
        };
        let mut topics = vec![client.inbox_topic(client.address())];
        // An invitation sent once may not have left before a crash (a queued frame dies with
        // the process): it is due at the next sync, once; later sends keep their backoff.
        for (key, _) in client
            .engine
            .store
            .records(crate::state::INVITATIONS)
            .map_err(core)?
        {
            let Ok(id) = RequestId::try_from(key.as_slice()) else {
                continue;
            };
            if let Some((sends, next)) = crate::state::invitation_sends(&client.engine.store, &id)?
                && sends <= 1
                && next > 0
            {
                crate::state::put_invitation_sends(&mut client.engine.store, &id, sends, 0)?;
            }
        }
        for (contract, record) in records::groups(&client.engine.store)? {
            let group = match Group::load(&client.engine.store, &record.group_id) {
                Ok(g) => g,
                // Deleted after a fork (re-add pending) or a removal: nothing to follow.
                Err(_) => continue,
            };
            if client.engine.follow(contract, group, record)? {
                topics.push(client.commit_topic(contract));
                topics.push(client.app_topic(contract));
            }
        }
        // Every topic at once: a relay's or the chain channel's history is one round trip
        // per topic (an account in 50 groups waited 101 of them in a row).
        client.subscribe_all(&topics).await?;
        // The groups' ACLs from the chain before any input is judged (a request taken in by
        // the first sync is checked against them).
        let active = client.active_groups();
        client.read_chains(&active).await?;
        client.chain_read_at = Some(tokio::time::Instant::now());
        client.opened = true;
        Ok(client)
    }

    /// How many 1:1 channel sessions the device holds (at most [`MAX_SESSIONS`]).
    pub fn channel_sessions(&self) -> usize {
        self.device.sessions().count()
    }

    /// The account.
    pub fn address(&self) -> Address {
        self.signer.address()
    }

    /// The chain id.
    pub fn chain_id(&self) -> u64 {
        self.chain.chain_id()
    }

    /// The encrypted store (read access: history, outbox, records).
    pub fn store(&self) -> &Store {
        &self.engine.store
    }

    /// The groups followed, by contract.
    pub fn groups(&self) -> Vec<Address> {
        self.engine.groups()
    }

    fn joined(&self, group: Address) -> Result<&Joined, Error> {
        self.engine.joined(group)
    }

    /// The members of `group` (their accounts, by leaf).
    pub fn members(&self, group: Address) -> Result<Vec<Address>, Error> {
        self.engine.members(group)
    }

    /// The local epoch of `group`.
    pub fn epoch(&self, group: Address) -> Result<u64, Error> {
        self.engine.epoch(group)
    }

    /// The epoch authenticator of `group`'s current epoch.
    pub fn epoch_authenticator(&self, group: Address) -> Result<Vec<u8>, Error> {
        self.engine.epoch_authenticator(group)
    }

    /// The on-chain ACL of `group` as this client's mirror of its events has it.
    pub fn acl(&self, group: Address) -> Result<Acl, Error> {
        self.engine.acl(group)
    }

    /// The application messages of `group` kept so far (with
    /// [`ClientConfig::keep_messages`]; this client's own messages included), oldest first.
    pub fn messages(&self, group: Address) -> Result<Vec<records::StoredMessage>, Error> {
        self.engine.messages(group)
    }

    /// Whether this account is still a member of `group` and follows it.
    pub fn is_active(&self, group: Address) -> bool {
        self.engine.is_active(group)
    }

    fn inbox_topic(&self, account: Address) -> Topic {
        Topic::Inbox {
            chain_id: self.chain_id(),
            account: account.into_array(),
        }
    }

    fn app_topic(&self, group: Address) -> Topic {
        Topic::App {
            chain_id: self.chain_id(),
            group: group.into_array(),
        }
    }

    fn commit_topic(&self, group: Address) -> Topic {
        Topic::Commit {
            chain_id: self.chain_id(),
            group: group.into_array(),
        }
    }

    fn group_ref(&self, group: Address) -> GroupRef {
        GroupRef {
            chain_id: self.chain_id(),
            factory: self.config.deployment.group_factory.into_array(),
            group_contract: group.into_array(),
        }
    }

    fn group_config(&self, group: Address) -> GroupConfig {
        GroupConfig::new(self.chain_id(), self.config.domain.clone())
            .bound_to(self.config.deployment.group_factory, group)
    }

    /// Subscribes to `topics` from their saved cursors on (history first), up to 16 at a
    /// time.
    async fn subscribe_all(&mut self, topics: &[Topic]) -> Result<(), Error> {
        let mut since = Vec::with_capacity(topics.len());
        for t in topics {
            since.push(
                records::cursor(&self.engine.store, &t.to_string())?
                    .map(crate::facts::delivery_cursor)
                    .unwrap_or_default(),
            );
        }
        let delivery = &self.delivery;
        let subs: Vec<_> = futures_util::stream::iter(topics.iter().zip(since))
            .map(|(t, since)| delivery.subscribe_since(t, since))
            .buffered(16)
            .try_collect()
            .await
            .map_err(delivery_err)?;
        for sub in subs {
            self.subscriptions.push(sub.boxed());
        }
        Ok(())
    }

    /// Follows `group` (at `contract`) and subscribes to its topics when active.
    async fn follow(
        &mut self,
        contract: Address,
        group: Group,
        record: GroupRecord,
    ) -> Result<(), Error> {
        if self.engine.follow(contract, group, record)? {
            let topics = [self.commit_topic(contract), self.app_topic(contract)];
            self.subscribe_all(&topics).await?;
        }
        Ok(())
    }

    /// Publishes this device's prekey bundle (and with it the account's inbox key) in the
    /// ERC-7627 registry: others can then open a 1:1 channel to it (invite it). Rotates the
    /// signed prekey when it is due and tops up one-time prekeys first. Once published,
    /// [`Client::sync`] keeps the bundle fresh by itself (see [`crate::prekeys`]).
    pub async fn publish_keys(&mut self) -> Result<(), Error> {
        let t = now() as u64;
        let lifetime = self.config.signed_prekey_lifetime.as_secs();
        self.device.prune(t);
        let target = self.config.one_time_prekeys as usize;
        let held = self.held_prekeys();
        if held
            .signed_prekey
            .is_none_or(|(_, expiry)| expiry.saturating_sub(t) < lifetime / 3)
        {
            self.device
                .rotate_signed_prekey(t, lifetime)
                .map_err(Error::Channel)?;
        }
        if held.one_time_prekeys < target {
            self.device
                .generate_one_time_prekeys(target - held.one_time_prekeys)
                .map_err(Error::Channel)?;
        }
        let bundle = self.device.bundle(t, target).map_err(Error::Channel)?;
        let bytes = bundle.encode().map_err(Error::Channel)?;
        crate::state::save_device_keys(&mut self.engine.store, &self.device)?;
        self.registry
            .publish_channel_bundle(self.device.identity_key(), &bytes)
            .await
            .map_err(chain_err)?;
        records::put_published_keys(
            &mut self.engine.store,
            crate::prekeys::Published {
                at: t,
                signed_prekey: bundle.signed_prekey.id,
            },
        )?;
        self.peers.record(
            self.address(),
            Some(*self.device.identity_key()),
            std::time::Instant::now(),
        );
        Ok(())
    }

    fn held_prekeys(&self) -> crate::prekeys::Held {
        crate::prekeys::Held {
            signed_prekey: self
                .device
                .signed_prekeys()
                .iter()
                .max_by_key(|(id, _)| *id)
                .copied(),
            one_time_prekeys: self.device.one_time_prekey_ids().len(),
        }
    }

    /// Rotates, tops up and publishes again as [`crate::prekeys::upkeep`] says.
    async fn keep_keys(&mut self) -> Result<(), Error> {
        let mut published = records::published_keys(&self.engine.store)?;
        if published.is_none() && !self.keys_checked {
            // A store from a version that kept no record of what it published: if the
            // registered key is this device's, its bundle is kept fresh from now on.
            self.keys_checked = true;
            let me = self.address();
            if self.read_inbox_key(me).await?.as_ref() == Some(self.device.identity_key()) {
                let p = crate::prekeys::Published {
                    at: 0,
                    signed_prekey: u32::MAX,
                };
                records::put_published_keys(&mut self.engine.store, p)?;
                published = Some(p);
            }
        }
        let due = crate::prekeys::upkeep(
            self.held_prekeys(),
            published,
            self.config.one_time_prekeys as usize,
            self.config.signed_prekey_lifetime.as_secs(),
            self.config.min_republish_interval.as_secs(),
            now() as u64,
        );
        if due.publish {
            self.publish_keys().await?;
        }
        Ok(())
    }

    /// Creates a group: its contract through the factory (this account its owner, under
    /// `policy`), and the MLS group bound to it. Returns the contract's address.
    pub async fn create_group(
        &mut self,
        name: &[u8],
        policy: CommitPolicy,
    ) -> Result<Address, Error> {
        let factory = self.chain.factory(self.config.deployment.group_factory);
        let me = self.address();
        let predicted = factory
            .predict_group_address(me, name)
            .await
            .map_err(chain_err)?;
        if self.engine.groups.contains_key(&predicted) {
            return Err(Error::GroupExists { group: predicted });
        }
        // A contract created just before a crash (nothing registered yet) is taken over;
        // the factory refuses a second one with the same id.
        let contract = match factory.check_group(predicted, me, name).await {
            Ok(c) if c.current_epoch().await.map_err(chain_err)?.epoch == 0 => predicted,
            Ok(_) => return Err(Error::GroupExists { group: predicted }),
            Err(_) => {
                let (c, _) = factory
                    .create_group(name, 4, policy)
                    .await
                    .map_err(chain_err)?;
                c.address()
            }
        };
        // ERC-7627 `sendMessage` to the contract (the chain channel's group topics) needs a
        // delivery key registered for it. Frames are MLS messages protected by the epoch's
        // secrets, so the key is a stand-in: the creator's channel identity key.
        self.chain
            .group(contract)
            .set_delivery_key(self.device.identity_key())
            .await
            .map_err(chain_err)?;
        let config = self.group_config(contract);
        let group = match Group::load(&self.engine.store, name) {
            Ok(g) if g.binding().map(|b| b.contract) == Some(contract) && g.epoch() == 0 => g,
            Ok(_) => return Err(Error::GroupExists { group: contract }),
            Err(_) => Group::create(&mut self.engine.store, name, config, Default::default())
                .map_err(core)?,
        };
        // The events are read from the deployment's block: the group's creation is after it.
        let record = GroupRecord {
            group_id: name.to_vec(),
            from_block: self.config.deployment.block,
            joined_epoch: 0,
        };
        records::put_group(&mut self.engine.store, contract, &record)?;
        self.follow(contract, group, record).await?;
        Ok(contract)
    }

    /// `account`'s registered inbox key read from the registry now (and cached): `None` when
    /// it has none, or one that is revoked, expired or not an X448 key.
    async fn read_inbox_key(&mut self, account: Address) -> Result<Option<[u8; 56]>, Error> {
        let key = self.fetch_inbox_key(account).await?;
        self.peers.record(account, key, std::time::Instant::now());
        Ok(key)
    }

    /// `account`'s registered, valid X448 inbox key, read from the registry (not cached).
    async fn fetch_inbox_key(&self, account: Address) -> Result<Option<[u8; 56]>, Error> {
        Ok(self
            .registry
            .public_key(account, eth_mls_chain::key_index::inbox())
            .await
            .map_err(chain_err)?
            .filter(|k| {
                k.algorithm == KeyAlgorithm::X448
                    && (k.valid_before == 0 || k.valid_before > now() as u64)
            })
            .and_then(|k| <[u8; 56]>::try_from(k.key.as_slice()).ok()))
    }

    /// Whether `identity_key` is `account`'s registered inbox key (decision 20): from the
    /// cache, or read from the registry when the cache cannot say.
    async fn is_bound(&mut self, account: Address, identity_key: &[u8; 56]) -> Result<bool, Error> {
        match self
            .peers
            .check(account, identity_key, std::time::Instant::now())
        {
            Binding::Bound => Ok(true),
            Binding::NotBound => Ok(false),
            Binding::LookUp => {
                Ok(self.read_inbox_key(account).await?.as_ref() == Some(identity_key))
            }
        }
    }

    /// Opens (or reuses) a channel session to `to` and sends `message` to its inbox (this
    /// account's keys are published first when they are not registered yet). Only a
    /// session bound to `to`'s currently registered inbox key is used (decision 20): the one
    /// named, else an answered one, else a pending one, else a new one from `to`'s published
    /// bundle. Sessions with `to` under any other key are retired.
    async fn send_direct(
        &mut self,
        to: Address,
        session: Option<[u8; 32]>,
        message: &ClientMessage,
    ) -> Result<[u8; 32], Error> {
        // The receiver acts only on sessions bound to this account's registered key: publish
        // it first when it is not (yet) the registered one.
        let me = self.address();
        let cached = self.peers.registered(me, std::time::Instant::now());
        // The peer's key is read fresh for every send (sends are rare): a peer that rotated
        // its key a moment ago is reached under the new one, never silently under the old.
        // Ours, when not cached, in the same round trip.
        let (mine, registered) = match cached {
            Some(key) => (key, self.fetch_inbox_key(to).await?),
            None => {
                futures_util::future::try_join(self.fetch_inbox_key(me), self.fetch_inbox_key(to))
                    .await?
            }
        };
        let at = std::time::Instant::now();
        if cached.is_none() {
            self.peers.record(me, mine, at);
        }
        self.peers.record(to, registered, at);
        if mine.as_ref() != Some(self.device.identity_key()) {
            self.publish_keys().await?;
        }
        let peer = to.into_array();
        let stale: Vec<[u8; 32]> = self
            .device
            .sessions_with(&peer)
            .filter(|s| Some(s.peer_identity_key()) != registered.as_ref())
            .map(|s| *s.id())
            .collect();
        for id in &stale {
            self.drop_session(id)?;
        }
        let Some(registered) = registered else {
            return Err(Error::NoBundle { account: to });
        };
        let bound = |s: &&eth_mls_channel::Session| {
            s.peer_address() == &peer && s.peer_identity_key() == &registered
        };
        let named = session
            .and_then(|id| self.device.session(&id))
            .filter(bound)
            .map(|s| *s.id());
        let reused = match named {
            Some(s) => Some(s),
            None => {
                // An answered session first; else the newest pending one, unless it has waited
                // past the timeout (its one-time prekey may have been burned: security review
                // M3), when a new session starts from the peer's current bundle.
                let mut answered = None;
                let mut pending = None;
                for s in self.device.sessions_with(&peer).filter(bound) {
                    if !s.is_pending() {
                        answered = Some(*s.id());
                    } else {
                        let at = records::session_made(&self.engine.store, s.id())?.unwrap_or(0);
                        if pending.is_none_or(|(t, _)| at > t) {
                            pending = Some((at, *s.id()));
                        }
                    }
                }
                let fresh = |at: u64| {
                    at.saturating_add(self.config.pending_session_timeout.as_secs()) > now() as u64
                };
                answered.or(pending.filter(|(at, _)| fresh(*at)).map(|(_, id)| id))
            }
        };
        let session = match reused {
            Some(s) => s,
            None => {
                let published = self
                    .registry
                    .channel_bundle(to, self.config.deployment.block)
                    .await
                    .map_err(chain_err)?
                    .ok_or(Error::NoBundle { account: to })?;
                let bundle =
                    PrekeyBundle::validate::<ChannelBackend>(&published.bundle, now() as u64)
                        .map_err(Error::Channel)?;
                if bundle.bundle().address != peer || bundle.bundle().identity_key != registered {
                    return Err(Error::NoBundle { account: to });
                }
                let id = self
                    .device
                    .initiate(&bundle, OneTimePrekeyChoice::Random)
                    .map_err(Error::Channel)?;
                records::put_session_made(&mut self.engine.store, &id, now() as u64)?;
                // Unanswered sessions of earlier sends are pruned too (the oldest first).
                self.cap_sessions(&peer, &id)?;
                id
            }
        };
        let bytes = self
            .device
            .encrypt(&session, &message.encode()?)
            .map_err(Error::Channel)?;
        // The ratchet moved: saved before the message leaves (that session only).
        crate::state::save_session(&mut self.engine.store, &self.device, &session)?;
        self.delivery
            .publish(&self.inbox_topic(to), bytes)
            .await
            .map_err(delivery_err)?;
        Ok(session)
    }

    /// Invites `invitee` into `group` (decision 16, step 2): an invitation request over the
    /// 1:1 channel. When the invitee accepts, this client verifies its answer, commits the
    /// Add with the ACL change on chain, and sends the Welcome (steps 4 to 7, in
    /// [`Client::sync`]). Returns the request id.
    pub async fn invite(
        &mut self,
        group: Address,
        invitee: Address,
        note: &str,
    ) -> Result<RequestId, Error> {
        if !self.joined(group)?.active {
            return Err(Error::NotMember {
                account: self.address(),
            });
        }
        if self.joined(group)?.chain.mirror.acl().owner.is_none() {
            // The ACL not read yet (a group created or joined in this session).
            self.read_chain(group).await?;
        }
        let j = self.joined(group)?;
        // Refused here, before anything is sent, rather than by the invitee's answer or the
        // contract much later (only admins change the ACL, whatever the commit policy).
        let me = self.address();
        let refused = |reason| Err(Error::InviteRefused { invitee, reason });
        if invitee == me {
            return refused("it is this account");
        }
        if j.group.members().contains(&invitee) || j.chain.mirror.acl().members.contains(&invitee) {
            return refused("it is already a member of the group");
        }
        // Judged once the ACL is known (with confirmations, the creation may not count yet).
        let acl = j.chain.mirror.acl();
        if acl.owner.is_some() && !acl.is_admin(&me) {
            return refused("only the group's admins add members, and this account is not one");
        }
        let request = InvitationRequest {
            request_id: random_id()?,
            group: self.group_ref(group),
            group_id: j.group.id().to_vec(),
            inviter: self.address().into_array(),
            expiry: (now() as u64).saturating_add(self.config.invitation_validity.as_secs()),
            note: note.into(),
        };
        crate::state::remember_invitation(&mut self.engine.store, invitee, &request)?;
        self.send_direct(
            invitee,
            None,
            &ClientMessage::InvitationRequest(request.clone()),
        )
        .await?;
        let next = (now() as u64).saturating_add(self.config.invitation_resend.as_secs());
        crate::state::put_invitation_sends(&mut self.engine.store, &request.request_id, 1, next)?;
        Ok(request.request_id)
    }

    /// Sends again each invitation not answered yet whose time has come: the first wait is
    /// [`ClientConfig::invitation_resend`], doubling after each send, until it is answered or
    /// expires (then it is forgotten). One recorded and never sent (a crash in between) is
    /// sent now. A send that fails for a reason that may pass is tried at the next interval;
    /// it never fails [`Client::sync`] (security review L6: every open re-sent every
    /// invitation, forever — on the chain channel, a transaction each).
    async fn resend_invitations(&mut self) -> Result<(), Error> {
        let t = now() as u64;
        let base = self.config.invitation_resend.as_secs();
        for (key, value) in self
            .engine
            .store
            .records(crate::state::INVITATIONS)
            .map_err(core)?
        {
            let Ok(id) = RequestId::try_from(key.as_slice()) else {
                continue;
            };
            let parsed = value.split_at_checked(20).and_then(|(invitee, message)| {
                let invitee = Address::try_from(invitee).ok()?;
                match ClientMessage::decode(message).ok()? {
                    ClientMessage::InvitationRequest(r) => Some((invitee, r)),
                    _ => None,
                }
            });
            let Some((invitee, request)) = parsed else {
                crate::state::drop_invitation(&mut self.engine.store, &id)?;
                continue;
            };
            if request.expiry <= t {
                crate::state::drop_invitation(&mut self.engine.store, &id)?;
                continue;
            }
            let (sends, next) =
                crate::state::invitation_sends(&self.engine.store, &id)?.unwrap_or((0, 0));
            if next > t {
                continue;
            }
            let message = ClientMessage::InvitationRequest(request);
            // A failed send (the chain or delivery down, no bundle yet) counts as a send: it
            // is tried again at the next interval.
            let _ = self.send_direct(invitee, None, &message).await;
            let sends = sends.saturating_add(1);
            let wait = base.saturating_mul(1u64 << (sends.saturating_sub(1)).min(20));
            crate::state::put_invitation_sends(
                &mut self.engine.store,
                &id,
                sends,
                t.saturating_add(wait),
            )?;
        }
        Ok(())
    }

    /// The invitations received and not answered yet.
    pub fn invitations(&self) -> Result<Vec<ReceivedInvitation>, Error> {
        Ok(records::all_received(&self.engine.store)?
            .into_iter()
            .filter(|i| !i.answered)
            .collect())
    }

    /// Accepts invitation `id` (step 3): a fresh key package and the account's signed consent
    /// to the inviter. The Welcome that follows is joined in [`Client::sync`].
    pub async fn accept(&mut self, id: RequestId) -> Result<(), Error> {
        let mut inv = records::received(&self.engine.store, &id)?.ok_or(Error::UnknownRequest)?;
        if inv.answered {
            return Err(Error::UnknownRequest);
        }
        if inv.request.expiry <= now() as u64 {
            return Err(Error::Expired);
        }
        let response = crate::flows::answer_invitation(
            &mut self.engine.store,
            self.signer.as_ref(),
            &inv.request,
            now(),
        )
        .await?;
        inv.answered = true;
        records::put_received(&mut self.engine.store, &inv)?;
        self.send_direct(
            inv.from,
            Some(inv.session),
            &ClientMessage::InvitationResponse(response),
        )
        .await?;
        Ok(())
    }

    /// Declines invitation `id`.
    pub async fn decline(&mut self, id: RequestId) -> Result<(), Error> {
        let mut inv = records::received(&self.engine.store, &id)?.ok_or(Error::UnknownRequest)?;
        if inv.answered {
            return Err(Error::UnknownRequest);
        }
        inv.answered = true;
        records::put_received(&mut self.engine.store, &inv)?;
        self.send_direct(
            inv.from,
            Some(inv.session),
            &ClientMessage::InvitationDecline { request_id: id },
        )
        .await?;
        Ok(())
    }

    /// Sends `data` to `group` (encrypted in the current epoch; published at once, and again
    /// from the outbox after a crash). The commits the chain registered are merged first,
    /// read unless the chain was read within [`ClientConfig::poll_interval`].
    pub async fn send(&mut self, group: Address, data: &[u8]) -> Result<(), Error> {
        let j = self
            .engine
            .groups
            .get_mut(&group)
            .ok_or(Error::UnknownGroup { group })?;
        if !j.active {
            return Err(Error::NotMember {
                account: self.signer.address(),
            });
        }
        // Commits the chain already registered first: a message in a stale epoch may be
        // unreadable for members that moved on (unless the chain was read within the poll
        // interval: as fresh as a polling client gets).
        if !self.chain_fresh() {
            self.read_chain(group).await?;
        }
        self.advance(group).await?;
        let j = self
            .engine
            .groups
            .get_mut(&group)
            .ok_or(Error::UnknownGroup { group })?;
        if !j.active {
            return Err(Error::NotMember {
                account: self.signer.address(),
            });
        }
        let entry = j.group.send(&mut self.engine.store, data).map_err(core)?;
        if self.config.keep_messages {
            let sender = self.signer.address();
            records::put_message(
                &mut self.engine.store,
                group,
                sender,
                entry.epoch,
                now(),
                data,
            )?;
        }
        self.flush_outbox().await
    }

    /// Removes `members` from `group` (an admin's commit with the ACL change). The intent is
    /// saved and runs from the next [`Client::sync`] on; returns its id. The removal is done
    /// when [`ClientEvent::CommitMerged`] reports it.
    pub async fn remove(&mut self, group: Address, members: &[Address]) -> Result<u64, Error> {
        self.start_intent(
            group,
            Op::Remove {
                members: members.to_vec(),
            },
        )
        .await
    }

    /// Commits a self-update in `group` (fresh leaf and path; the renewed credential, if any):
    /// an intent, run from the next [`Client::sync`] on.
    /// Under an admins-only policy a plain member asks an admin instead
    /// ([`Client::request_update`]).
    pub async fn update(&mut self, group: Address) -> Result<u64, Error> {
        self.start_intent(group, Op::Update).await
    }

    /// Asks an admin of `group` to commit this member's update (its Update proposal goes to
    /// the group's commit topic; the request names it).
    pub async fn request_update(
        &mut self,
        group: Address,
        admin: Address,
    ) -> Result<RequestId, Error> {
        let j = self
            .engine
            .groups
            .get_mut(&group)
            .ok_or(Error::UnknownGroup { group })?;
        let (entry, reference) = j
            .group
            .propose_self_update(&mut self.engine.store)
            .map_err(core)?;
        let epoch = j.group.epoch();
        let request = ChangeRequest {
            request_id: random_id()?,
            group: self.group_ref(group),
            epoch,
            kind: ChangeKind::Update,
            target: self.address().into_array(),
            proposal: entry.bytes.clone(),
        };
        records::put_update_request(
            &mut self.engine.store,
            &request.request_id,
            group,
            &reference,
            now() as u64,
        )?;
        self.flush_outbox().await?;
        self.send_direct(admin, None, &ClientMessage::ChangeRequest(request.clone()))
            .await?;
        Ok(request.request_id)
    }

    /// Leaves `group`: a member cannot commit its own removal (RFC 9420), so this asks an
    /// admin — the owner, or another admin when this account is the owner — to remove it
    /// ([`Client::request_removal`]). The leave is done when [`ClientEvent::Removed`] comes.
    /// A group whose only admin is this account cannot be left this way
    /// ([`Error::RequestNotAllowed`]).
    pub async fn leave(&mut self, group: Address) -> Result<RequestId, Error> {
        let me = self.address();
        let acl = self.acl(group)?;
        let admin = acl
            .owner
            .filter(|o| *o != me)
            .or_else(|| acl.admins.iter().copied().find(|a| *a != me))
            .ok_or(Error::RequestNotAllowed)?;
        self.request_removal(group, admin).await
    }

    /// Asks an admin of `group` to remove this member (leaving a group whose policy lets
    /// only admins commit).
    pub async fn request_removal(
        &mut self,
        group: Address,
        admin: Address,
    ) -> Result<RequestId, Error> {
        let epoch = self.epoch(group)?;
        let request = ChangeRequest {
            request_id: random_id()?,
            group: self.group_ref(group),
            epoch,
            kind: ChangeKind::Removal,
            target: self.address().into_array(),
            proposal: Vec::new(),
        };
        self.send_direct(admin, None, &ClientMessage::ChangeRequest(request.clone()))
            .await?;
        Ok(request.request_id)
    }

    /// Renews the account's SIWE credential (a new signature by the account) and self-updates
    /// every group so its members see it.
    pub async fn renew_credential(&mut self) -> Result<(), Error> {
        let request = BindingRequest {
            domain: self.config.domain.clone(),
            uri: format!("https://{}", self.config.domain),
            chain_id: self.chain_id(),
            valid_for: Some(self.config.credential_validity),
        };
        let credential = self
            .engine
            .store
            .identity()
            .renew(self.signer.as_ref(), &request)
            .await
            .map_err(|e| Error::Core(e.to_string()))?;
        self.engine
            .store
            .renew_credential(credential)
            .map_err(core)?;
        self.credential_reported = false;
        for g in self.active_groups() {
            self.start_intent(g, Op::Update).await?;
        }
        Ok(())
    }

    /// The owner's recovery of a stalled group (security review H2): builds a replacement
    /// for the registered commit the group is stalled on — removing `remove` (the griefer) in
    /// it, or a self-update when empty — and registers it with `replaceHead`, undoing the ACL
    /// changes of every dropped commit. Stalled members then process the replacement and carry
    /// on, nobody re-added; under `AnyMember`, only admins commit for a while afterwards.
    /// Returns the intent id ([`ClientEvent::CommitMerged`] when done,
    /// [`ClientEvent::IntentFailed`] if the contract refuses). [`Error::NotOwner`] and
    /// [`Error::NotStalled`] when it does not apply.
    pub async fn recover(&mut self, group: Address, remove: &[Address]) -> Result<u64, Error> {
        let j = self.joined(group)?;
        let owner = j.chain.mirror.acl().owner;
        if owner != Some(self.address()) {
            return Err(Error::NotOwner { owner });
        }
        if j.chain
            .stalled
            .as_ref()
            .is_none_or(|s| s.epoch != j.group.epoch() + 1)
        {
            return Err(Error::NotStalled { group });
        }
        self.start_intent(
            group,
            Op::Recover {
                remove: remove.to_vec(),
            },
        )
        .await
    }

    async fn start_intent(&mut self, group: Address, op: Op) -> Result<u64, Error> {
        if !self.is_active(group) {
            return Err(Error::UnknownGroup { group });
        }
        let id = records::next_intent_id(&mut self.engine.store)?;
        // The operation first: an intent record without its operation is never seen.
        records::put_op(&mut self.engine.store, id, &OpRecord { group, op })?;
        crate::state::save_intent(&mut self.engine.store, &Intent::new(id))?;
        Ok(id)
    }

    /// The events queued so far.
    pub fn drain_events(&mut self) -> Vec<ClientEvent> {
        self.engine.events.drain(..).collect()
    }

    /// The next event, taking in input until one comes or `timeout` passes.
    pub async fn next_event(&mut self, timeout: Duration) -> Result<Option<ClientEvent>, Error> {
        self.next_event_or(timeout, std::future::pending()).await
    }

    /// [`Client::next_event`], returning `None` early when `wake` completes while the client
    /// waits for input (never inside a step: the client is not interrupted halfway). A driver
    /// that serves requests (`ethmls daemon`) passes the arrival of the next one.
    pub async fn next_event_or(
        &mut self,
        timeout: Duration,
        wake: impl std::future::Future<Output = ()>,
    ) -> Result<Option<ClientEvent>, Error> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut wake = std::pin::pin!(wake);
        loop {
            if let Some(e) = self.engine.events.pop_front() {
                return Ok(Some(e));
            }
            self.sync().await?;
            if let Some(e) = self.engine.events.pop_front() {
                return Ok(Some(e));
            }
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            // Wait for a frame, news from the node, or the next look at the chain.
            let wait = left.min(self.config.poll_interval);
            let (news, not_before) = (self.chain_news, self.next_read_at());
            let frame = tokio::select! {
                frame = self.subscriptions.next() => frame,
                () = chain::woken(&mut self.watch, news, not_before) => None,
                () = tokio::time::sleep(wait) => None,
                () = &mut wake => return Ok(None),
            };
            if let Some(envelope) = frame {
                self.handle_envelope(envelope).await?;
            }
        }
    }

    /// The contracts of the groups this client is an active member of.
    fn active_groups(&self) -> Vec<Address> {
        self.engine
            .groups
            .iter()
            .filter(|(_, j)| j.active)
            .map(|(a, _)| *a)
            .collect()
    }

    /// Takes in everything that arrived (frames, the groups' contract events), runs the
    /// sequencer and the intents, joins Welcomes whose registration is there, and publishes
    /// the outbox. Events go to the queue.
    pub async fn sync(&mut self) -> Result<(), Error> {
        self.frame_reads.clear();
        self.handle_incoming().await?;
        self.retry_held().await?;
        while let Some(Some(envelope)) = self.subscriptions.next().now_or_never() {
            self.handle_envelope(envelope).await?;
        }
        self.join_welcomes().await?;
        let active = self.active_groups();
        // One log query for all the groups (issue 30), over WebSocket only when the node
        // reported something; not again in the first sync within the poll interval of the
        // opening, which read it.
        let just_opened = std::mem::take(&mut self.opened) && self.chain_fresh();
        if !just_opened && self.chain_has_news(&active).await {
            self.read_chains(&active).await?;
            self.chain_news = false;
            self.chain_read_at = Some(tokio::time::Instant::now());
        }
        for contract in active {
            self.advance(contract).await?;
            if self.engine.remove_departed(contract, self.address())? {
                self.advance(contract).await?;
            }
        }
        self.flush_outbox().await?;
        self.engine
            .expire_update_requests(now(), self.config.request_interval.as_secs())?;
        self.resend_invitations().await?;
        self.keep_keys().await?;
        self.check_credentials();
        Ok(())
    }

    fn check_credentials(&mut self) {
        let t = now();
        if !self.credential_reported {
            let expires_at = self
                .engine
                .store
                .identity()
                .credential()
                .message()
                .expiration_time()
                .map(|e| e.unix_seconds());
            if let Some(exp) = expires_at
                && exp - (self.config.renew_before.as_secs() as i64) <= t
            {
                self.credential_reported = true;
                self.engine
                    .events
                    .push_back(ClientEvent::CredentialDue { expires_at: exp });
            }
        }
        for (contract, j) in self.engine.groups.iter_mut() {
            if !j.active {
                continue;
            }
            for (_, member) in j.group.due_for_removal(t) {
                if !j.due_reported.contains(&member) {
                    j.due_reported.push(member);
                    self.engine.events.push_back(ClientEvent::MemberDue {
                        group: *contract,
                        member,
                    });
                }
            }
        }
    }

    async fn handle_envelope(&mut self, envelope: Envelope) -> Result<(), Error> {
        let topic = envelope.topic;
        match topic {
            Topic::Inbox { .. } => self.handle_inbox(&envelope).await?,
            Topic::Commit { group, .. } => {
                let contract = Address::from(group);
                if let Some(j) = self.engine.groups.get_mut(&contract)
                    && !is_proposal(&envelope.bytes)
                {
                    // Commits wait for the sequencer (processing one stages it). Proposals
                    // are never taken in from the topic (security review H1: a stored
                    // proposal rode along in the next commit): the one an accepted update
                    // request names travels in the request, and then in its commit.
                    j.sequencer.on_gossip(envelope.bytes.clone());
                }
            }
            Topic::App { group, .. } => {
                let contract = Address::from(group);
                self.handle_app(contract, envelope.bytes.clone(), true)
                    .await?;
            }
        }
        let cursor_name = topic.to_string();
        // Frames held back for an epoch the chain registered keep the cursor where it was (a
        // restart must see them again); frames of epochs nobody registered do not (M6: a
        // forged header must not pin the cursor).
        let deferred = match topic {
            Topic::App { group, .. } => {
                self.engine
                    .groups
                    .get(&Address::from(group))
                    .is_some_and(|j| {
                        j.deferred
                            .iter()
                            .any(|(d, _)| frame_epoch(d).is_some_and(|ep| j.is_registered(ep)))
                    })
            }
            _ => false,
        };
        if !deferred {
            records::put_cursor(
                &mut self.engine.store,
                &cursor_name,
                crate::facts::saved_cursor(envelope.cursor.next()),
            )?;
        }
        Ok(())
    }

    /// Processes an application frame; one of an epoch not reached yet waits (bounded).
    async fn handle_app(
        &mut self,
        contract: Address,
        bytes: Vec<u8>,
        fresh: bool,
    ) -> Result<bool, Error> {
        let Some(j) = self.engine.groups.get_mut(&contract) else {
            return Ok(true);
        };
        if !j.active {
            return Ok(true);
        }
        // A frame of a later epoch that the chain registered: this member catches up on the
        // registered commits up to that epoch first (a long catch-up reads the backlog in
        // order this way, without holding frames back).
        let ahead_to = frame_epoch(&bytes).filter(|ep| *ep > j.group.epoch());
        if fresh && let Some(ep) = ahead_to {
            // Anyone can publish a frame claiming any epoch: it makes at most one chain read
            // per group and sync.
            if !self.is_registered(contract, ep) && self.frame_reads.insert(contract) {
                Box::pin(self.read_chain(contract)).await?;
            }
            if self.is_registered(contract, ep) {
                Box::pin(self.advance_to(contract, Some(ep))).await?;
            }
        }
        let Some(j) = self.engine.groups.get_mut(&contract) else {
            return Ok(true);
        };
        if !j.active {
            return Ok(true);
        }
        self.engine.take_app_frame(contract, bytes, fresh, now())
    }

    /// After a merge: frames held back are tried again.
    async fn retry_deferred(&mut self, contract: Address) -> Result<(), Error> {
        self.engine.retry_deferred(contract, now())
    }

    /// Deletes a channel session, its saved state and its record.
    fn drop_session(&mut self, id: &[u8; 32]) -> Result<(), Error> {
        self.device.remove_session(id);
        crate::state::save_session(&mut self.engine.store, &self.device, id)?;
        records::delete_session_made(&mut self.engine.store, id)
    }

    /// Keeps at most [`MAX_SESSIONS_PER_PEER`] sessions with `peer` and [`MAX_SESSIONS`] in
    /// all, deleting the oldest made but never `keep` (the one just made) (security review L1:
    /// each prekey message of a bound peer made a session that was never pruned, and each send
    /// after an unanswered one a new session).
    fn cap_sessions(&mut self, peer: &[u8; 20], keep: &[u8; 32]) -> Result<(), Error> {
        let with_peer: Vec<[u8; 32]> = self.device.sessions_with(peer).map(|s| *s.id()).collect();
        self.drop_oldest(&with_peer, MAX_SESSIONS_PER_PEER, keep)?;
        let all: Vec<[u8; 32]> = self.device.sessions().map(|s| *s.id()).collect();
        self.drop_oldest(&all, MAX_SESSIONS, keep)
    }

    /// Drops the oldest made of `sessions` beyond `max`, never `keep`.
    fn drop_oldest(
        &mut self,
        sessions: &[[u8; 32]],
        max: usize,
        keep: &[u8; 32],
    ) -> Result<(), Error> {
        if sessions.len() <= max {
            return Ok(());
        }
        let mut by_age = Vec::with_capacity(sessions.len());
        for id in sessions {
            let at = if id == keep {
                u64::MAX
            } else {
                records::session_made(&self.engine.store, id)?.unwrap_or(0)
            };
            by_age.push((at, *id));
        }
        by_age.sort();
        for (_, id) in by_age.iter().take(sessions.len() - max) {
            self.drop_session(id)?;
        }
        Ok(())
    }

    /// Takes in a frame of this account's inbox; one whose sender's key could not be checked
    /// now (the chain unreachable) is held and tried again at later syncs.
    async fn handle_inbox(&mut self, envelope: &Envelope) -> Result<(), Error> {
        match self.take_in(&envelope.bytes).await {
            Err(Error::Chain(_)) => {
                if !records::hold_frame(&mut self.engine.store, &envelope.bytes, 0, now() as u64)? {
                    self.engine.events.push_back(ClientEvent::Rejected {
                        from: Address::ZERO,
                        error: Error::TooLong {
                            field: "frames held for a sender check",
                            len: records::MAX_HELD + 1,
                            max: records::MAX_HELD,
                        },
                    });
                }
                Ok(())
            }
            other => other,
        }
    }

    /// Tries again the inbox frames held because the chain could not be asked who sent them,
    /// with the queued messages' backoff and budget.
    async fn retry_held(&mut self) -> Result<(), Error> {
        let t = now() as u64;
        for (frame, attempts, next) in records::held_frames(&self.engine.store)? {
            if next > t {
                continue;
            }
            match self.take_in(&frame).await {
                Err(error @ Error::Chain(_)) => {
                    let attempts = attempts + 1;
                    if attempts >= INCOMING_ATTEMPTS {
                        records::release_frame(&mut self.engine.store, &frame)?;
                        self.engine.events.push_back(ClientEvent::DeadLetter {
                            from: Address::ZERO,
                            error: Error::GaveUp {
                                attempts,
                                last: error.to_string(),
                            },
                        });
                    } else {
                        let wait = self.config.inbox_retry.as_secs() << (attempts - 1).min(16);
                        records::hold_frame(&mut self.engine.store, &frame, attempts, t + wait)?;
                    }
                }
                Err(e) => return Err(e),
                Ok(()) => records::release_frame(&mut self.engine.store, &frame)?,
            }
        }
        Ok(())
    }

    /// Decrypts an inbox frame and queues its message (then handles the queue). The session
    /// it arrives in must be bound — before the device takes the frame in (decision 20): a
    /// prekey message whose identity key is not the registered inbox key of the account it
    /// claims creates no session and uses up no one-time prekey; a frame of a session that is
    /// no longer bound (the peer rotated its key; a session planted before this check existed)
    /// deletes that session. A failed check of the chain is `Error::Chain`, with nothing
    /// changed.
    async fn take_in(&mut self, bytes: &[u8]) -> Result<(), Error> {
        let claimed = match ChannelMessage::decode(bytes) {
            Ok(ChannelMessage::Prekey(p)) => {
                let sid = eth_mls_channel::session_id::<ChannelBackend>(
                    &p.identity_key,
                    self.device.identity_key(),
                    &p.ephemeral_key,
                )
                .map_err(Error::Channel)?;
                Some(match self.device.session(&sid) {
                    Some(s) => (*s.peer_address(), *s.peer_identity_key(), Some(sid)),
                    None => (p.sender, p.identity_key, None),
                })
            }
            Ok(ChannelMessage::Normal(n)) => self.device.session(&n.session_id).map(|s| {
                (
                    *s.peer_address(),
                    *s.peer_identity_key(),
                    Some(n.session_id),
                )
            }),
            // The device reports what is wrong with it.
            Err(_) => None,
        };
        if let Some((account, identity_key, session)) = claimed {
            let account = Address::from(account);
            if !self.is_bound(account, &identity_key).await? {
                if let Some(sid) = session {
                    self.drop_session(&sid)?;
                }
                self.engine.events.push_back(ClientEvent::Rejected {
                    from: Address::ZERO,
                    error: Error::UnboundPeer { account },
                });
                return Ok(());
            }
        }
        let received = match self.device.receive(bytes, now() as u64) {
            Ok(r) => r,
            Err(e) if e.is_duplicate() => return Ok(()),
            Err(e) => {
                self.engine.events.push_back(ClientEvent::Rejected {
                    from: Address::ZERO,
                    error: Error::Channel(e),
                });
                return Ok(());
            }
        };
        if received.new_session {
            records::put_session_made(&mut self.engine.store, &received.session_id, now() as u64)?;
            self.cap_sessions(&received.peer_address, &received.session_id)?;
        }
        // The plaintext is queued before the channel state that consumed it is saved (channel
        // spec §9: saved before acting on it); handled from the queue.
        records::put_incoming(
            &mut self.engine.store,
            &records::Incoming {
                key: keccak256(bytes).0,
                from: Address::from(received.peer_address),
                session: received.session_id,
                plaintext: received.plaintext.to_vec(),
            },
        )?;
        crate::step("inbox:queued");
        // What the frame changed: its session, and the keys when it made one (a one-time
        // prekey used up).
        crate::state::save_received(
            &mut self.engine.store,
            &self.device,
            &received.session_id,
            received.new_session,
        )?;
        crate::step("inbox:device-saved");
        self.handle_incoming().await
    }

    /// Handles the queued 1:1 messages. One that fails for a reason that may pass (the chain
    /// or the delivery service unreachable) stays queued and is tried again with backoff
    /// ([`ClientConfig::inbox_retry`] doubling), at most [`INCOMING_ATTEMPTS`] times, then moved to the
    /// dead letters and reported ([`ClientEvent::DeadLetter`]); it never holds up the messages
    /// after it or the rest of [`Client::sync`] (security review M8).
    async fn handle_incoming(&mut self) -> Result<(), Error> {
        let t = now() as u64;
        for m in records::incoming(&self.engine.store)? {
            let tries = records::incoming_tries(&self.engine.store, &m.key)?;
            if tries.is_some_and(|(_, next)| next > t) {
                continue;
            }
            let result = match ClientMessage::decode(&m.plaintext) {
                Ok(message) => self.handle_message(m.from, m.session, message).await,
                Err(error) => Err(error),
            };
            match result {
                Err(error @ (Error::Chain(_) | Error::Delivery(_))) => {
                    let attempts = tries.map_or(0, |(a, _)| a) + 1;
                    if attempts >= INCOMING_ATTEMPTS {
                        let error = Error::GaveUp {
                            attempts,
                            last: error.to_string(),
                        };
                        records::bury_incoming(&mut self.engine.store, &m, &error.to_string())?;
                        self.engine.events.push_back(ClientEvent::DeadLetter {
                            from: m.from,
                            error,
                        });
                    } else {
                        let wait = self.config.inbox_retry.as_secs() << (attempts - 1).min(16);
                        records::put_incoming_tries(
                            &mut self.engine.store,
                            &m.key,
                            attempts,
                            t + wait,
                        )?;
                    }
                    continue;
                }
                Err(error) => self.engine.events.push_back(ClientEvent::Rejected {
                    from: m.from,
                    error,
                }),
                Ok(()) => {}
            }
            records::delete_incoming(&mut self.engine.store, &m.key)?;
            crate::step("inbox:handled");
        }
        Ok(())
    }

    async fn handle_message(
        &mut self,
        from: Address,
        session: [u8; 32],
        message: ClientMessage,
    ) -> Result<(), Error> {
        match message {
            ClientMessage::InvitationRequest(request) => {
                if Address::from(request.inviter) != from {
                    return Err(Error::WrongAccount {
                        expected: from,
                        found: Address::from(request.inviter),
                    });
                }
                crate::invitation::check_request(
                    &self.chain,
                    self.config.deployment.group_factory,
                    self.config.deployment.block,
                    &request,
                )
                .await?;
                if records::received(&self.engine.store, &request.request_id)?.is_some() {
                    return Ok(());
                }
                records::put_received(
                    &mut self.engine.store,
                    &ReceivedInvitation {
                        from,
                        session,
                        answered: false,
                        request: request.clone(),
                    },
                )?;
                self.engine
                    .events
                    .push_back(ClientEvent::InvitationReceived {
                        request_id: request.request_id,
                        from,
                        group: Address::from(request.group.group_contract),
                        note: request.note,
                    });
            }
            ClientMessage::InvitationResponse(response) => {
                if self.has_add_intent(&response.request_id)? {
                    // Handled before a crash (its intent exists): the invitation is settled.
                    let _ = crate::state::take_invitation(
                        &mut self.engine.store,
                        from,
                        &response.request_id,
                    );
                    return Ok(());
                }
                let request = crate::state::pending_invitation(
                    &self.engine.store,
                    from,
                    &response.request_id,
                )?;
                let group = Address::from(request.group.group_contract);
                let t = now();
                let v = erc1271(&self.chain, None);
                let consent =
                    crate::invitation::verify_response(&request, from, &response, t, Some(&v))
                        .await?;
                let config = self.joined(group)?.group.config().clone();
                let crypto = Crypto::<DefaultBackend>::new();
                let kp = validate_key_package_bytes(
                    &response.key_package,
                    &crypto,
                    SUITE,
                    &config.policy_at(t),
                    Some(&v),
                )
                .await
                .map_err(|e| Error::Core(e.to_string()))?;
                if kp.account() != from {
                    return Err(Error::WrongAccount {
                        expected: from,
                        found: kp.account(),
                    });
                }
                debug_assert_eq!(consent.key_package_hash, keccak256(&response.key_package).0);
                // The consent travels with the add commit: every member checks it.
                records::put_consent(
                    &mut self.engine.store,
                    &response.request_id,
                    &crate::wire::Consent {
                        siwe_message: response.siwe_message.clone(),
                        signature: response.signature.clone(),
                    },
                )?;
                let id = records::next_intent_id(&mut self.engine.store)?;
                records::put_op(
                    &mut self.engine.store,
                    id,
                    &OpRecord {
                        group,
                        op: Op::Add {
                            invitee: from,
                            request_id: response.request_id,
                            key_package: response.key_package,
                            readd: false,
                        },
                    },
                )?;
                crate::state::save_intent(&mut self.engine.store, &Intent::new(id))?;
                crate::step("intent:saved");
                // Taken last: a crash before leaves the intent and a stale invitation record
                // (the answer handled again finds the intent and stops).
                crate::state::take_invitation(&mut self.engine.store, from, &response.request_id)?;
            }
            ClientMessage::InvitationDecline { request_id } => {
                crate::state::take_invitation(&mut self.engine.store, from, &request_id)?;
                self.engine
                    .events
                    .push_back(ClientEvent::InvitationDeclined { request_id, from });
            }
            ClientMessage::Welcome(w) => {
                let inv = records::received(&self.engine.store, &w.request_id)?
                    .ok_or(Error::UnknownRequest)?;
                if inv.from != from || !inv.answered || inv.request.group != w.group {
                    return Err(Error::UnknownRequest);
                }
                if w.group.chain_id != self.chain_id() {
                    return Err(Error::WrongChain {
                        expected: self.chain_id(),
                        found: w.group.chain_id,
                    });
                }
                let (welcome, hash) = match w.delivery {
                    WelcomeDelivery::Inline(welcome) => (welcome, None),
                    // Fetched from the group's commit topic when it is joined.
                    WelcomeDelivery::ByHash(hash) => (Vec::new(), Some(hash)),
                };
                records::put_welcome(
                    &mut self.engine.store,
                    &w.request_id,
                    &PendingWelcome {
                        epoch: w.epoch,
                        welcome,
                        hash,
                    },
                )?;
                self.join_welcomes().await?;
            }
            ClientMessage::ChangeRequest(req) => {
                // Each request id is acted on once (WIRE.md §2): a replay changes nothing.
                // Recorded before anything is decided: a crash drops the request (its sender
                // asks again) rather than committing it twice.
                if records::request_answered(&self.engine.store, &req.request_id)? {
                    return Ok(());
                }
                records::put_request_answered(
                    &mut self.engine.store,
                    &req.request_id,
                    now() as u64,
                )?;
                let group = Address::from(req.group.group_contract);
                // Too soon after the last granted one: refused like an invalid request (one
                // refusal per interval), without taking its proposal in. The requester learns
                // it and drops its proposal, so it can send messages again.
                let rate = if req.kind == ChangeKind::Update {
                    self.check_rate(group, from)
                } else {
                    Ok(())
                };
                let group_ref = self.group_ref(group);
                let j = self.joined(group)?;
                let acl = j.chain.mirror.acl().clone();
                // The request's proposal is taken into openmls's store only to be checked;
                // unless the request passes, it is forgotten at once (review H1: a stored
                // proposal is never swept into another commit, but it is not kept either).
                let proposal = if req.proposal.is_empty() || rate.is_err() {
                    None
                } else {
                    let jm = self
                        .engine
                        .groups
                        .get_mut(&group)
                        .ok_or(Error::UnknownGroup { group })?;
                    let processed = jm
                        .group
                        .process(&mut self.engine.store, &req.proposal, &Checks::at(now()))
                        .await
                        .map_err(core)?;
                    processed.into_events().into_iter().find_map(|e| match e {
                        CoreEvent::Proposal(p) => Some(p),
                        _ => None,
                    })
                };
                let epoch = self.epoch(group)?;
                let verdict = rate.and_then(|()| {
                    crate::requests::check_change_request(
                        &req,
                        from,
                        &group_ref,
                        epoch,
                        proposal.as_ref(),
                        &acl,
                    )
                });
                let may_commit =
                    acl.owner == Some(self.address()) || acl.admins.contains(&self.address());
                let reason = match (&verdict, may_commit) {
                    (Err(Error::StaleRequest { .. }), _) => Some(RejectReason::Invalid),
                    (Err(Error::RateLimited { .. }), _) => Some(RejectReason::Policy),
                    (Err(_), _) => Some(RejectReason::Invalid),
                    (Ok(()), false) => Some(RejectReason::NotAdmin),
                    (Ok(()), true) => None,
                };
                if let Some(reason) = reason {
                    if let Some(p) = &proposal {
                        self.engine
                            .groups
                            .get_mut(&group)
                            .ok_or(Error::UnknownGroup { group })?
                            .group
                            .forget_proposal(&mut self.engine.store, &p.reference)
                            .map_err(core)?;
                    }
                    // A refusal is a message (a transaction on the chain channel): at most one
                    // per member and request interval, so a flood of bad requests costs the
                    // admin nothing (security review L10).
                    let refused = records::last_refused(&self.engine.store, group, from)?;
                    let t = now() as u64;
                    if crate::requests::within_rate(
                        refused,
                        t,
                        self.config.request_interval.as_secs(),
                    ) {
                        records::put_refused(&mut self.engine.store, group, from, t)?;
                        self.send_direct(
                            from,
                            Some(session),
                            &ClientMessage::RequestRejected(RequestRejected {
                                request_id: req.request_id,
                                reason,
                            }),
                        )
                        .await?;
                    }
                    return verdict;
                }
                self.engine.events.push_back(ClientEvent::RequestReceived {
                    group,
                    from,
                    kind: req.kind,
                });
                if req.kind == ChangeKind::Update {
                    records::put_granted(&mut self.engine.store, group, from, now() as u64)?;
                }
                let op = match (req.kind, proposal) {
                    // Exactly the requester's Update proposal, by reference, carried in the
                    // commit (with an own update path).
                    (ChangeKind::Update, Some(p)) => Op::CommitUpdate {
                        member: from,
                        proposal: req.proposal.clone(),
                        reference: p.reference,
                    },
                    (ChangeKind::Update, None) => return Err(Error::RequestNotAllowed),
                    (ChangeKind::Removal, _) => Op::Remove {
                        members: vec![from],
                    },
                };
                let id = records::next_intent_id(&mut self.engine.store)?;
                records::put_op(&mut self.engine.store, id, &OpRecord { group, op })?;
                crate::state::save_intent(&mut self.engine.store, &Intent::new(id))?;
            }
            ClientMessage::ReaddRequest(req) => {
                if self.has_add_intent(&req.request_id)?
                    || records::request_answered(&self.engine.store, &req.request_id)?
                {
                    return Ok(());
                }
                let group = Address::from(req.group.group_contract);
                // Cheap checks first: a flood costs no key-package validation.
                self.check_rate(group, from)?;
                let group_ref = self.group_ref(group);
                let acl = self.joined(group)?.chain.mirror.acl().clone();
                let config = self.joined(group)?.group.config().clone();
                let crypto = Crypto::<DefaultBackend>::new();
                let kp = validate_key_package_bytes(
                    &req.key_package,
                    &crypto,
                    SUITE,
                    &config.policy(),
                    Some(&erc1271(&self.chain, None)),
                )
                .await
                .map_err(|e| Error::Core(e.to_string()))?;
                let (local_epoch, last_active) = {
                    let j = self.joined(group)?;
                    (j.group.epoch(), j.active_at.get(&from).copied())
                };
                let verdict = crate::requests::check_readd_request(
                    &req,
                    from,
                    &group_ref,
                    kp.account(),
                    &acl,
                    local_epoch,
                    last_active,
                );
                if let Err(e) = verdict {
                    records::put_request_answered(
                        &mut self.engine.store,
                        &req.request_id,
                        now() as u64,
                    )?;
                    return Err(e);
                }
                records::put_granted(&mut self.engine.store, group, from, now() as u64)?;
                let id = records::next_intent_id(&mut self.engine.store)?;
                records::put_op(
                    &mut self.engine.store,
                    id,
                    &OpRecord {
                        group,
                        op: Op::Add {
                            invitee: from,
                            request_id: req.request_id,
                            key_package: req.key_package,
                            readd: true,
                        },
                    },
                )?;
                crate::state::save_intent(&mut self.engine.store, &Intent::new(id))?;
                records::put_request_answered(
                    &mut self.engine.store,
                    &req.request_id,
                    now() as u64,
                )?;
            }
            ClientMessage::RequestRejected(r) => {
                // A refused update request: its proposal will not be committed, and while it
                // is stored openmls sends no application message.
                if let Some((group, reference)) =
                    records::take_update_request(&mut self.engine.store, &r.request_id)?
                    && let Some(j) = self.engine.groups.get_mut(&group)
                {
                    j.group
                        .forget_proposal(&mut self.engine.store, &reference)
                        .map_err(core)?;
                }
                self.engine.events.push_back(ClientEvent::RequestRejected {
                    request_id: r.request_id,
                    from,
                    reason: r.reason,
                });
            }
        }
        Ok(())
    }

    /// [`Error::RateLimited`] when a request of `member` in `group` was granted less than
    /// [`ClientConfig::request_interval`] ago (security review L10).
    fn check_rate(&self, group: Address, member: Address) -> Result<(), Error> {
        let interval = self.config.request_interval.as_secs();
        let last = records::last_granted(&self.engine.store, group, member)?;
        if crate::requests::within_rate(last, now() as u64, interval) {
            Ok(())
        } else {
            Err(Error::RateLimited {
                account: member,
                interval_secs: interval,
            })
        }
    }

    fn has_add_intent(&self, id: &RequestId) -> Result<bool, Error> {
        Ok(records::ops(&self.engine.store)?
            .iter()
            .any(|(_, o)| matches!(&o.op, Op::Add { request_id, .. } if request_id == id)))
    }

    /// Joins every waiting Welcome whose registration the chain has.
    async fn join_welcomes(&mut self) -> Result<(), Error> {
        for (id, pending) in records::welcomes(&self.engine.store)? {
            let Some(inv) = records::received(&self.engine.store, &id)? else {
                records::delete_welcome(&mut self.engine.store, &id)?;
                continue;
            };
            let contract = Address::from(inv.request.group.group_contract);
            if self.engine.groups.get(&contract).is_some_and(|j| j.active) {
                records::delete_welcome(&mut self.engine.store, &id)?;
                continue;
            }
            let from_block = self.config.deployment.block;
            let safe = self.confirmed_head().await?;
            // One read of the group's history: the registration of the Welcome's epoch, and
            // the cursor the member follows the group from (security review H3: nothing
            // before it is ever read again — an old head replacement included).
            let mut state = crate::cursor::ChainState::from_block(safe + 1);
            state.origin = from_block;
            let mut found = None;
            for (_, event, block, tx) in
                group_logs(&self.chain, &[contract], from_block, safe).await?
            {
                let acl = state.mirror.apply(&crate::facts::group_fact(&event), tx);
                match (&event, acl) {
                    (GroupEvent::CommitRegistered(r), Some(acl)) => {
                        state.registered.insert(r.epoch, r.commitHash.0);
                        if r.epoch == pending.epoch {
                            found = Some(crate::facts::registration(
                                r,
                                block,
                                block_time(&self.chain, block).await?,
                            ));
                        } else if r.epoch > pending.epoch {
                            let reg = crate::facts::registration(
                                r,
                                block,
                                block_time(&self.chain, block).await?,
                            );
                            state.pending.insert(
                                r.epoch,
                                crate::cursor::Pending {
                                    registration: reg,
                                    acl,
                                    commit: r.commit.to_vec(),
                                },
                            );
                        }
                    }
                    (GroupEvent::HeadReplaced(e), _) => {
                        state.registered.retain(|ep, _| *ep < e.epoch);
                        state.pending.retain(|ep, _| *ep < e.epoch);
                        if found
                            .as_ref()
                            .is_some_and(|r: &Registration| r.epoch >= e.epoch)
                        {
                            // The Welcome's own epoch was replaced: it joins nothing.
                            found = None;
                        }
                    }
                    _ => {}
                }
            }
            let Some(reg) = found else {
                continue;
            };
            let welcome = match pending.hash {
                Some(hash) if pending.welcome.is_empty() => {
                    match self.welcome_by_hash(contract, hash).await {
                        Some(w) => w,
                        // Not arrived yet: tried again at the next sync.
                        None => continue,
                    }
                }
                _ => pending.welcome,
            };
            let config = self.group_config(contract);
            // A forked member rejoining: its old group goes first.
            if let Some(old) = self.engine.groups.remove(&contract) {
                old.group.delete(&mut self.engine.store).map_err(core)?;
                crate::cursor::delete(&mut self.engine.store, contract)?;
            }
            let joined = Group::join(
                &mut self.engine.store,
                &welcome,
                config,
                &Checks::at(reg.timestamp).with_erc1271(&erc1271(&self.chain, Some(reg.block))),
            )
            .await;
            let group = match joined {
                Ok(g) => g,
                // A check that could not be made (ERC-1271 over RPC): the Welcome is kept and
                // tried again at the next sync (security review M1).
                Err(eth_mls_core::Error::CheckUnavailable(_)) => continue,
                Err(e) => {
                    records::delete_welcome(&mut self.engine.store, &id)?;
                    self.engine.events.push_back(ClientEvent::Rejected {
                        from: inv.from,
                        error: Error::Core(e.to_string()),
                    });
                    continue;
                }
            };
            records::delete_welcome(&mut self.engine.store, &id)?;
            if let Err(error) = check_epoch_authenticator(&reg, &group.epoch_authenticator()) {
                group.delete(&mut self.engine.store).map_err(core)?;
                self.engine.events.push_back(ClientEvent::Rejected {
                    from: inv.from,
                    error,
                });
                continue;
            }
            let record = GroupRecord {
                group_id: group.id().to_vec(),
                from_block,
                joined_epoch: group.epoch(),
            };
            state.merged.insert(reg.epoch, reg.commit_hash);
            state.trim(group.epoch());
            crate::cursor::save(&mut self.engine.store, contract, &state)?;
            records::put_group(&mut self.engine.store, contract, &record)?;
            let epoch = group.epoch();
            self.follow(contract, group, record).await?;
            self.engine.events.push_back(ClientEvent::Joined {
                group: contract,
                epoch,
            });
        }
        Ok(())
    }

    /// A Welcome sent by hash: the frame with that SHA-256 on the group's commit topic, from
    /// the delivery service's history.
    async fn welcome_by_hash(&self, contract: Address, hash: [u8; 32]) -> Option<Vec<u8>> {
        let topic = self.commit_topic(contract);
        let mut cursor = Cursor::START;
        // Bounded: at most 64 pages of history.
        for _ in 0..64 {
            let page = self.delivery.history(&topic, cursor, 256).await.ok()?;
            if let Some(e) = page.envelopes.into_iter().find(|e| e.id.0 == hash) {
                return Some(e.bytes);
            }
            match page.next {
                Some(next) if next > cursor => cursor = next,
                _ => return None,
            }
        }
        None
    }

    /// Publishes what the outbox holds: application messages and proposals at once, a commit
    /// once merged (the chain registered it). Welcomes go out with their intent.
    async fn flush_outbox(&mut self) -> Result<(), Error> {
        for entry in self.engine.store.outbox_pending().map_err(core)? {
            let Some((contract, j)) = self
                .engine
                .groups
                .iter()
                .find(|(_, j)| j.group.id() == entry.group_id.as_slice())
            else {
                continue;
            };
            let contract = *contract;
            let topic = match entry.kind {
                OutboxKind::Application => self.app_topic(contract),
                OutboxKind::Proposal => {
                    // Carried by the request and its commit (WIRE.md §4.2); members never
                    // take proposals in from the topic.
                    self.engine.store.mark_published(entry.seq).map_err(core)?;
                    continue;
                }
                OutboxKind::Commit => {
                    if j.group
                        .pending_commit(&self.engine.store)
                        .map_err(core)?
                        .is_some()
                    {
                        continue;
                    }
                    self.commit_topic(contract)
                }
                OutboxKind::Welcome => continue,
            };
            match self.delivery.publish(&topic, entry.bytes.clone()).await {
                Ok(_) => {}
                // A commit's bytes are in its registration on chain: gossip is only its fast
                // path, so an undeliverable commit is not retried.
                Err(_) if entry.kind == OutboxKind::Commit => {}
                Err(e) => {
                    // Kept in the outbox, in order, and tried again at the next sync.
                    self.engine.events.push_back(ClientEvent::DeliveryDelayed {
                        group: contract,
                        error: delivery_err(e),
                    });
                    return Ok(());
                }
            }
            crate::step("outbox:published");
            self.engine.store.mark_published(entry.seq).map_err(core)?;
        }
        Ok(())
    }
}

/// Takes the exclusive lock of the store at `path` (the file `<path>.lock`).
pub(crate) fn lock_store(path: &Path) -> Result<std::fs::File, Error> {
    let mut name = path.as_os_str().to_owned();
    name.push(".lock");
    let lock_path = std::path::PathBuf::from(name);
    let in_use = || Error::StoreInUse {
        path: path.display().to_string(),
    };
    let mut options = std::fs::OpenOptions::new();
    options.create(true).truncate(false).write(true);
    #[cfg(unix)]
    {
        // Readable by the owner only, like the store (security review L5).
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let file = options
        .open(&lock_path)
        .map_err(|e| Error::Core(format!("{}: {e}", lock_path.display())))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(in_use()),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(Error::Core(format!("{}: {e}", lock_path.display())))
        }
    }
}

pub(crate) use crate::engine::machine::{frame_epoch, is_proposal};
