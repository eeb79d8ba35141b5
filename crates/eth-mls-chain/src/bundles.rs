//! Prekey bundles of the 1:1 channel (`eth-mls-channel.md` §5, §12) in ERC-7627.
//!
//! An account publishes its device's channel **identity key** (X448, 56 bytes) as its inbox
//! key, `keyIndex = keccak256("eth-mls/inbox/v1")` ([`key_index::inbox`]): the key 1:1
//! messages to the account are sent under. The **bundle** itself (431 bytes plus 60 per
//! one-time prekey: too long for a registry key) is sent to the account itself in the same
//! registry, `sendMessage(account, inbox keyIndex, sessionId, bundle)` with
//! `sessionId = keccak256("eth-mls/channel-bundle/v1")` ([`bundle_session_id`]), so it lives
//! in the `MessageSent` logs. A reader takes the newest such message from the account to
//! itself whose bundle names the registered identity key; bundles authenticate themselves
//! (their Ed448 signatures), so the reader then validates them with eth-mls-channel.
//! A reader of the account's inbox skips these self-messages (their `sessionId` is
//! [`bundle_session_id`]); every other message in it is a channel message.
//!
//! This crate handles the bytes only (decision 1's layer map: the chain layer does not depend
//! on the channel): [`PublishedBundle::identity_key`] is read from the fixed offset of a
//! version-1 bundle, [`BUNDLE_IDENTITY_KEY`].

use std::ops::Range;

use alloy::primitives::{Address, B256, keccak256};
use alloy::providers::Provider;
use alloy::rpc::types::{Filter, TransactionReceipt};
use alloy::sol_types::SolEvent;

use crate::channel::key_index;
use crate::erc7627::{KeyAlgorithm, MessageSent};
use crate::{Erc7627, Error};

/// Name of [`bundle_session_id`].
pub const CHANNEL_BUNDLE_NAME: &str = "eth-mls/channel-bundle/v1";

/// Where a version-1 `PrekeyBundle` holds its identity key: after `version` (2), `address`
/// (20) and `signature_key` (57).
pub const BUNDLE_IDENTITY_KEY: Range<usize> = 79..135;

/// Blocks per `eth_getLogs` call of [`Erc7627::channel_bundle`]'s backward scan.
const SCAN_RANGE: u64 = 2_000;

/// The `sessionId` of a bundle message: `keccak256("eth-mls/channel-bundle/v1")`.
pub fn bundle_session_id() -> B256 {
    keccak256(CHANNEL_BUNDLE_NAME)
}

/// A bundle read from the chain (not yet validated: use eth-mls-channel's
/// `PrekeyBundle::validate`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublishedBundle {
    /// The encoded `PrekeyBundle`.
    pub bundle: Vec<u8>,
    /// The account's registered inbox key, which the bundle's identity key equals.
    pub identity_key: [u8; 56],
    /// The block of the bundle's `MessageSent` log.
    pub block: u64,
    /// Its log index in the block.
    pub log_index: u64,
}

impl Erc7627 {
    /// Publishes the sender's channel bundle: registers `identity_key` as its inbox key
    /// (algorithm X448, no expiry) unless it already is, then sends `bundle` to itself under
    /// the inbox key index with [`bundle_session_id`]. Returns the receipt of the bundle
    /// message. Republish after one-time prekeys were used and after each signed-prekey
    /// rotation.
    pub async fn publish_channel_bundle(
        &self,
        identity_key: &[u8; 56],
        bundle: &[u8],
    ) -> Result<TransactionReceipt, Error> {
        let me = self.chain.sender().ok_or(Error::NoSigner)?;
        if bundle.get(BUNDLE_IDENTITY_KEY) != Some(&identity_key[..]) {
            return Err(Error::BundleIdentityMismatch);
        }
        let index = key_index::inbox();
        let current = self.public_key(me, index).await?;
        let registered = current.is_some_and(|k| {
            k.algorithm == KeyAlgorithm::X448 && k.key == identity_key && k.valid_before == 0
        });
        if !registered {
            self.update_public_key(index, identity_key, KeyAlgorithm::X448, 0)
                .await?;
        }
        self.send_message(me, index, bundle_session_id(), bundle)
            .await
    }

    /// `account`'s newest channel bundle published since `from_block` (e.g. the deployment's
    /// block) whose identity key is the account's registered, valid inbox key; `None` when
    /// there is none. Scans backwards from the head, 2,000 blocks per `eth_getLogs`.
    pub async fn channel_bundle(
        &self,
        account: Address,
        from_block: u64,
    ) -> Result<Option<PublishedBundle>, Error> {
        let index = key_index::inbox();
        let provider = self.chain.provider();
        // The key, its validity and the head at once (one round trip).
        let (key, valid, head) = futures_util::future::try_join3(
            self.public_key(account, index),
            self.is_key_valid(account, index),
            async { Ok(provider.get_block_number().await?) },
        )
        .await?;
        let Some(key) = key else {
            return Ok(None);
        };
        let Ok(identity_key) = <[u8; 56]>::try_from(key.key.as_slice()) else {
            return Ok(None);
        };
        if key.algorithm != KeyAlgorithm::X448 || !valid {
            return Ok(None);
        }
        let filter = Filter::new()
            .address(self.address())
            .event_signature(MessageSent::SIGNATURE_HASH)
            .topic1(account.into_word())
            .topic2(account.into_word())
            .topic3(index);
        let mut to = head;
        loop {
            let from = to.saturating_sub(SCAN_RANGE - 1).max(from_block);
            let mut logs = provider
                .get_logs(&filter.clone().from_block(from).to_block(to))
                .await?;
            logs.sort_by_key(|l| std::cmp::Reverse((l.block_number, l.log_index)));
            for log in logs.iter().filter(|l| !l.removed) {
                let Ok(decoded) = log.log_decode::<MessageSent>() else {
                    continue;
                };
                let m = decoded.inner.data;
                if m.sessionId != bundle_session_id()
                    || m.encryptedMessage.get(BUNDLE_IDENTITY_KEY) != Some(&identity_key[..])
                {
                    continue;
                }
                return Ok(Some(PublishedBundle {
                    bundle: m.encryptedMessage.to_vec(),
                    identity_key,
                    block: log.block_number.unwrap_or_default(),
                    log_index: log.log_index.unwrap_or_default(),
                }));
            }
            if from <= from_block {
                return Ok(None);
            }
            to = from - 1;
        }
    }
}
