//! # eth-mls-chain
//!
//! The Rust side of the eth-mls contracts, on alloy 2: `sol!` bindings from the committed
//! forge artifacts, a local anvil [`Devnet`], [`Deployment`]s you can save and reconnect
//! to, typed async clients ([`Erc7627`], [`GroupFactory`], [`GroupContract`]) whose errors
//! decode the contracts' custom errors, event streams that resume from a [`Cursor`], and
//! [`RpcErc1271Verifier`], the JSON-RPC implementation of eth-mls-siwe's ERC-1271 trait, and
//! [`ChainChannel`], eth-mls-transport's `DeliveryService` over ERC-7627 `sendMessage`, with
//! the fixed ERC-7627 [`key_index`]es (among them the libp2p node key for peer discovery),
//! and the 1:1 channel's prekey bundles ([`Erc7627::publish_channel_bundle`],
//! [`Erc7627::channel_bundle`]).
//!
//! ```no_run
//! # async fn demo() -> Result<(), eth_mls_chain::Error> {
//! use eth_mls_chain::{AclChanges, CommitPolicy, Devnet, alloy::primitives::B256};
//! let devnet = Devnet::start()?;                 // anvil on 127.0.0.1, a free port
//! let deployment = devnet.deploy().await?;       // ERC7627, MlsGroup, MlsGroupFactory
//! let alice = devnet.chain(1).await?;
//! let (group, _receipt) = alice.factory(deployment.group_factory)
//!     .create_group(b"group-id", 0x0004, CommitPolicy::AdminsOnly).await?;
//! // The MLS commit adding bob, registered with its bytes and its ACL change.
//! let commit: &[u8] = b"...the MLS commit message...";
//! let adds = AclChanges {
//!     added: vec![devnet.addresses()[2]],
//!     key_packages: vec![B256::repeat_byte(7)],  // hash of bob's key package
//!     removed: vec![],
//! };
//! group.commit(1, commit, B256::repeat_byte(1), &adds).await?;
//! # Ok(()) }
//! ```
//!
//! HTTP endpoints work without TLS; `https://` needs the `rustls` feature, `ws://` the `ws`
//! feature.

pub mod bindings;
mod bundles;
mod channel;
mod client;
mod deployment;
mod devnet;
mod erc1271;
mod erc7627;
mod error;
mod events;
#[cfg(feature = "faults")]
pub mod faults;
mod group;
mod rpc;
mod watch;

pub use alloy;
pub use bundles::{BUNDLE_IDENTITY_KEY, CHANNEL_BUNDLE_NAME, PublishedBundle, bundle_session_id};
pub use channel::{ChainChannel, MAX_CHAIN_FRAME, key_index};
pub use client::{Chain, Progress, Spent, TxSlot};
pub use deployment::Deployment;
pub use devnet::{Devnet, find_anvil};
pub use erc1271::RpcErc1271Verifier;
pub use erc7627::{Erc7627, KeyAlgorithm, MessageSent, PublicKeyUpdated, RegisteredKey};
pub use error::{Erc7627Revert, Error, FactoryRevert, GroupRevert};
pub use events::{Cursor, Event, StreamConfig, log_stream};
pub use group::{
    AclChanges, CommitPolicy, EpochInfo, GroupContract, GroupEvent, GroupFactory, GroupInfo,
};
pub use rpc::{RpcConfig, is_log_cap};
pub use watch::Watch;
