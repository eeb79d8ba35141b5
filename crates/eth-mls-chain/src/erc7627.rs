//! The ERC-7627 registry client: public keys and 1:1 encrypted messages.

use alloy::primitives::{Address, B256, Bytes};
use alloy::rpc::types::{Filter, TransactionReceipt};
use alloy::sol_types::SolEvent;
use futures_util::Stream;

use crate::bindings::{ERC7627, IERC7627};
use crate::error::Contract;
use crate::events::{Cursor, Event, StreamConfig, log_stream, typed};
use crate::{Chain, Error};

/// `PublicKeyAlgorithm` of ERC-7627, extended append-only by X448 and Ed448.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum KeyAlgorithm {
    /// secp256k1 ECDSA (33 or 65 bytes, SEC1).
    Ecdsa = 0,
    /// Ed25519 (32 bytes).
    Ed25519 = 1,
    /// X25519 (32 bytes).
    X25519 = 2,
    /// X448 (56 bytes).
    X448 = 3,
    /// Ed448 (57 bytes).
    Ed448 = 4,
}

impl TryFrom<u8> for KeyAlgorithm {
    type Error = u8;
    fn try_from(v: u8) -> Result<Self, u8> {
        Ok(match v {
            0 => Self::Ecdsa,
            1 => Self::Ed25519,
            2 => Self::X25519,
            3 => Self::X448,
            4 => Self::Ed448,
            other => return Err(other),
        })
    }
}

/// A key as registered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegisteredKey {
    /// The encoded key.
    pub key: Vec<u8>,
    /// Unix time from which it is expired; 0: never.
    pub valid_before: u64,
    /// Its algorithm.
    pub algorithm: KeyAlgorithm,
}

/// A `MessageSent` event: an encrypted 1:1 message.
pub type MessageSent = ERC7627::MessageSent;
/// A `PublicKeyUpdated` event.
pub type PublicKeyUpdated = ERC7627::PublicKeyUpdated;

/// Client of one ERC7627 contract.
#[derive(Clone, Debug)]
pub struct Erc7627 {
    pub(crate) chain: Chain,
    address: Address,
}

impl Erc7627 {
    pub(crate) fn new(chain: Chain, address: Address) -> Self {
        Self { chain, address }
    }

    /// Deploys a new registry with `chain`'s signer.
    pub async fn deploy(chain: &Chain) -> Result<Erc7627, Error> {
        let address = chain
            .deploy(ERC7627::deploy_builder(chain.provider()), Contract::Erc7627)
            .await?;
        Ok(chain.erc7627(address))
    }

    /// The contract address.
    pub fn address(&self) -> Address {
        self.address
    }

    fn instance(&self) -> ERC7627::ERC7627Instance<alloy::providers::DynProvider> {
        ERC7627::new(self.address, self.chain.provider().clone())
    }

    /// Registers (or replaces) the sender's key at `key_index`. `valid_before` 0: no expiry.
    pub async fn update_public_key(
        &self,
        key_index: B256,
        key: &[u8],
        algorithm: KeyAlgorithm,
        valid_before: u64,
    ) -> Result<TransactionReceipt, Error> {
        let pk = IERC7627::PublicKey {
            public_key: Bytes::copy_from_slice(key),
            valid_before,
            algorithm: algorithm as u8,
        };
        let c = self.instance();
        self.chain
            .transact(c.updatePublicKey(key_index, pk), Contract::Erc7627)
            .await
    }

    /// The key `user` registered at `key_index`; `None` when there is none (or it was revoked).
    /// An expired key is returned: compare `valid_before` or use [`Erc7627::is_key_valid`].
    pub async fn public_key(
        &self,
        user: Address,
        key_index: B256,
    ) -> Result<Option<RegisteredKey>, Error> {
        let c = self.instance();
        let pk = Chain::view(c.getUserPublicKey(user, key_index), Contract::Erc7627).await?;
        if pk.public_key.is_empty() {
            return Ok(None);
        }
        let algorithm = KeyAlgorithm::try_from(pk.algorithm).map_err(Error::UnknownKeyAlgorithm)?;
        Ok(Some(RegisteredKey {
            key: pk.public_key.to_vec(),
            valid_before: pk.valid_before,
            algorithm,
        }))
    }

    /// Whether messages can be sent to `user`'s key at `key_index` now.
    pub async fn is_key_valid(&self, user: Address, key_index: B256) -> Result<bool, Error> {
        let c = self.instance();
        Chain::view(c.isKeyValid(user, key_index), Contract::Erc7627).await
    }

    /// Revokes the sender's key at `key_index`.
    pub async fn revoke_public_key(&self, key_index: B256) -> Result<TransactionReceipt, Error> {
        let c = self.instance();
        self.chain
            .transact(c.revokePublicKey(key_index), Contract::Erc7627)
            .await
    }

    /// Sends an encrypted message to `to`'s key at `key_index`.
    pub async fn send_message(
        &self,
        to: Address,
        key_index: B256,
        session_id: B256,
        encrypted: &[u8],
    ) -> Result<TransactionReceipt, Error> {
        let c = self.instance();
        self.chain
            .transact(
                c.sendMessage(to, key_index, session_id, Bytes::copy_from_slice(encrypted)),
                Contract::Erc7627,
            )
            .await
    }

    /// `MessageSent` events from `from` and/or to `to` (either may be `None`: any), starting
    /// at `start`.
    pub fn messages(
        &self,
        from: Option<Address>,
        to: Option<Address>,
        start: Cursor,
        cfg: StreamConfig,
    ) -> impl Stream<Item = Result<Event<MessageSent>, Error>> + Send + use<> {
        let mut filter = Filter::new()
            .address(self.address)
            .event_signature(MessageSent::SIGNATURE_HASH);
        if let Some(f) = from {
            filter = filter.topic1(f.into_word());
        }
        if let Some(t) = to {
            filter = filter.topic2(t.into_word());
        }
        typed(
            log_stream(self.chain.provider().clone(), filter, start, cfg),
            |log| {
                log.log_decode::<MessageSent>()
                    .map(|l| l.inner.data)
                    .map_err(|e| e.to_string())
            },
        )
    }

    /// `PublicKeyUpdated` events (of `user`, or everyone's), starting at `start`.
    pub fn key_updates(
        &self,
        user: Option<Address>,
        start: Cursor,
        cfg: StreamConfig,
    ) -> impl Stream<Item = Result<Event<PublicKeyUpdated>, Error>> + Send + use<> {
        let mut filter = Filter::new()
            .address(self.address)
            .event_signature(PublicKeyUpdated::SIGNATURE_HASH);
        if let Some(u) = user {
            filter = filter.topic1(u.into_word());
        }
        typed(
            log_stream(self.chain.provider().clone(), filter, start, cfg),
            |log| {
                log.log_decode::<PublicKeyUpdated>()
                    .map(|l| l.inner.data)
                    .map_err(|e| e.to_string())
            },
        )
    }
}
