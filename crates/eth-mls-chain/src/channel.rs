//! The on-chain delivery channel (DESIGN.md decision 15): [`ChainChannel`] implements
//! eth-mls-transport's [`DeliveryService`] over ERC-7627 `sendMessage`, and the fixed ERC-7627
//! key indexes eth-mls uses, among them the libp2p key that lets members find each other's
//! gossip nodes by Ethereum address.
//!
//! Durable and ordered, but public in its metadata (sender, recipient, size, time) and paid
//! for per frame: the client uses it for what must not be lost (commits are registered on the
//! group contract anyway) and when gossip is unavailable.

use std::collections::HashSet;

use alloy::primitives::{Address, B256, keccak256};
use alloy::providers::Provider;
use alloy::rpc::types::{Filter, Log};
use alloy::sol_types::SolEvent;
use eth_mls_transport::{
    Cursor as TCursor, DeliveryService, Envelope, Error as TError, HistoryBatch, Limits, MessageId,
    Origin, Subscription, Topic, TopicKind,
};
use futures_util::StreamExt;

use crate::erc7627::{KeyAlgorithm, MessageSent};
use crate::events::{Cursor, StreamConfig, log_stream};
use crate::{Chain, Erc7627, Error};

/// The ERC-7627 key indexes of eth-mls: `keccak256` of a fixed, versioned name.
pub mod key_index {
    use alloy::primitives::{B256, keccak256};

    /// Name of [`libp2p_peer`].
    pub const LIBP2P_PEER_NAME: &str = "eth-mls/libp2p-peer/v1";
    /// Name of [`group_delivery`] (the contract's `DELIVERY_KEY_INDEX`).
    pub const GROUP_DELIVERY_NAME: &str = "eth-mls/group-delivery/v1";
    /// Name of [`inbox`].
    pub const INBOX_NAME: &str = "eth-mls/inbox/v1";

    /// An account's libp2p node key: algorithm ED25519, the 32-byte public key whose PeerId
    /// its gossip node uses.
    pub fn libp2p_peer() -> B256 {
        keccak256(LIBP2P_PEER_NAME)
    }

    /// A group contract's delivery key (set by `MlsGroup.setDeliveryKey`): frames for the
    /// group's topics are sent to the group contract under this index.
    pub fn group_delivery() -> B256 {
        keccak256(GROUP_DELIVERY_NAME)
    }

    /// An account's inbox key: the key 1:1 frames to the account are sent under, algorithm
    /// X448: its device's channel identity key, registered by
    /// [`crate::Erc7627::publish_channel_bundle`]. The bundles themselves are messages from
    /// the account to itself under this index with `sessionId =
    /// keccak256("eth-mls/channel-bundle/v1")` ([`crate::bundle_session_id`]).
    pub fn inbox() -> B256 {
        keccak256(INBOX_NAME)
    }
}

/// Largest frame the chain channel sends: well within a transaction's size limits.
pub const MAX_CHAIN_FRAME: usize = 96 << 10;

/// Most `eth_getLogs` ranges one history call scans (then it returns a cursor to go on from).
const MAX_RANGES_PER_HISTORY: usize = 32;

impl Erc7627 {
    /// Publishes the sender's libp2p node key (the 32-byte Ed25519 public key of its PeerId)
    /// under [`key_index::libp2p_peer`]; `valid_before` 0: no expiry.
    pub async fn publish_peer_key(
        &self,
        ed25519_public: &[u8; 32],
        valid_before: u64,
    ) -> Result<alloy::rpc::types::TransactionReceipt, Error> {
        self.update_public_key(
            key_index::libp2p_peer(),
            ed25519_public,
            KeyAlgorithm::Ed25519,
            valid_before,
        )
        .await
    }

    /// `account`'s libp2p node key, if it published a valid one (registered, ED25519, 32
    /// bytes, not expired at the chain's latest block).
    pub async fn peer_key(&self, account: Address) -> Result<Option<[u8; 32]>, Error> {
        let index = key_index::libp2p_peer();
        let Some(key) = self.public_key(account, index).await? else {
            return Ok(None);
        };
        if key.algorithm != KeyAlgorithm::Ed25519 || !self.is_key_valid(account, index).await? {
            return Ok(None);
        }
        Ok(<[u8; 32]>::try_from(key.key.as_slice()).ok())
    }
}

/// [`DeliveryService`] over ERC-7627 `sendMessage`: a frame for a group topic is sent to the
/// group contract under [`key_index::group_delivery`], a frame for an inbox topic to the
/// account under [`key_index::inbox`]; the `sessionId` is `keccak256` of the topic name.
/// Subscriptions and history read `MessageSent` logs through the resumable log streams;
/// cursors are (block, log index). Each subscription and each history call yields a frame
/// id once, even if it was sent twice.
#[derive(Clone, Debug)]
pub struct ChainChannel {
    chain: Chain,
    registry: Erc7627,
    cfg: StreamConfig,
    limits: Limits,
}

fn backend(e: Error) -> TError {
    TError::Backend {
        backend: "chain channel",
        source: Box::new(e),
    }
}

impl ChainChannel {
    /// A channel on `chain` through the registry at `registry`, streaming with `cfg`.
    pub fn new(chain: Chain, registry: Address, cfg: StreamConfig) -> Self {
        let registry = chain.erc7627(registry);
        ChainChannel {
            chain,
            registry,
            cfg,
            limits: Limits {
                commit: MAX_CHAIN_FRAME,
                app: MAX_CHAIN_FRAME.min(Limits::default().app),
                inbox: MAX_CHAIN_FRAME,
            },
        }
    }

    /// The `sessionId` of `topic`'s frames.
    pub fn session_id(topic: &Topic) -> B256 {
        keccak256(topic.to_string())
    }

    /// The ERC-7627 key index frames for `topic` are sent under.
    pub fn key_index(topic: &Topic) -> B256 {
        match topic.kind() {
            TopicKind::Commit | TopicKind::App => key_index::group_delivery(),
            TopicKind::Inbox => key_index::inbox(),
        }
    }

    fn check_chain(&self, topic: &Topic) -> Result<(), TError> {
        if topic.chain_id() != self.chain.chain_id() {
            return Err(TError::InvalidTopic {
                topic: topic.to_string(),
                reason: "topic is for another chain than the channel's",
            });
        }
        Ok(())
    }

    fn filter(&self, topic: &Topic) -> Filter {
        Filter::new()
            .address(self.registry.address())
            .event_signature(MessageSent::SIGNATURE_HASH)
            .topic2(Address::from(topic.address()).into_word())
            .topic3(Self::key_index(topic))
    }

    /// The envelope of `log` if it is a frame of `topic`.
    fn envelope(topic: &Topic, log: &Log) -> Option<Envelope> {
        let decoded = log.log_decode::<MessageSent>().ok()?.inner.data;
        if decoded.sessionId != Self::session_id(topic) || decoded.encryptedMessage.is_empty() {
            return None;
        }
        let bytes = decoded.encryptedMessage.to_vec();
        Some(Envelope {
            topic: *topic,
            id: MessageId::of(&bytes),
            bytes,
            origin: Origin::Account(decoded.from.into_array()),
            received_at: log.block_timestamp.unwrap_or(0).saturating_mul(1000),
            cursor: TCursor {
                at: log.block_number?,
                index: log.log_index?,
            },
        })
    }
}

#[async_trait::async_trait]
impl DeliveryService for ChainChannel {
    /// Sends one transaction and returns once it is mined. Sending the same bytes again sends
    /// another transaction (receivers drop the duplicate by id).
    async fn publish(&self, topic: &Topic, bytes: Vec<u8>) -> Result<MessageId, TError> {
        self.check_chain(topic)?;
        self.limits.check(topic, bytes.len())?;
        if bytes.is_empty() {
            return Err(TError::Invalid {
                topic: topic.to_string(),
                reason: "empty frame",
            });
        }
        let to = Address::from(topic.address());
        self.registry
            .send_message(to, Self::key_index(topic), Self::session_id(topic), &bytes)
            .await
            .map_err(backend)?;
        Ok(MessageId::of(&bytes))
    }

    /// Frames in blocks after the current head, confirmed as the stream config says.
    async fn subscribe(&self, topic: &Topic) -> Result<Subscription, TError> {
        self.check_chain(topic)?;
        let head = self
            .chain
            .provider()
            .get_block_number()
            .await
            .map_err(|e| backend(e.into()))?;
        let topic = *topic;
        let logs = log_stream(
            self.chain.provider().clone(),
            self.filter(&topic),
            Cursor::at_block(head + 1),
            self.cfg.clone(),
        );
        let mut seen = HashSet::new();
        let frames = logs.filter_map(move |log| {
            let out = match log {
                Ok(log) => ChainChannel::envelope(&topic, &log).filter(|e| seen.insert(e.id)),
                Err(_) => None, // the stream retries RPC failures itself
            };
            std::future::ready(out)
        });
        Ok(Subscription::new(frames))
    }

    /// Scans blocks from `since` towards the confirmed head for up to `limit` frames, at most
    /// 32 `eth_getLogs` ranges per call (`next` says where to go on).
    async fn history(
        &self,
        topic: &Topic,
        since: TCursor,
        limit: u32,
    ) -> Result<HistoryBatch, TError> {
        self.check_chain(topic)?;
        eth_mls_transport::wire::check_limit(limit)?;
        let provider = self.chain.provider();
        let head = provider
            .get_block_number()
            .await
            .map_err(|e| backend(e.into()))?;
        let safe = head.saturating_sub(self.cfg.confirmations);
        let mut batch = HistoryBatch::default();
        let mut seen = HashSet::new();
        let mut from = since.at;
        let mut ranges = 0;
        while from <= safe {
            if ranges == MAX_RANGES_PER_HISTORY {
                // Bounded work per call: the caller continues from here.
                batch.next = Some(TCursor { at: from, index: 0 });
                return Ok(batch);
            }
            ranges += 1;
            let to = safe.min(from.saturating_add(self.cfg.max_block_range.max(1) - 1));
            let filter = self.filter(topic).from_block(from).to_block(to);
            let mut logs = provider
                .get_logs(&filter)
                .await
                .map_err(|e| backend(e.into()))?;
            logs.sort_by_key(|l| (l.block_number, l.log_index));
            for log in logs.iter().filter(|l| !l.removed) {
                let Some(e) = Self::envelope(topic, log) else {
                    continue;
                };
                if e.cursor < since || !seen.insert(e.id) {
                    continue;
                }
                if batch.envelopes.len() >= limit as usize {
                    batch.next = Some(e.cursor);
                    return Ok(batch);
                }
                batch.envelopes.push(e);
            }
            from = to + 1;
        }
        Ok(batch)
    }
}
