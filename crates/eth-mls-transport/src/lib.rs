//! # eth-mls-transport
//!
//! Delivery for eth-mls (DESIGN.md decision 15): the [`DeliveryService`] trait (publish,
//! subscribe, history from a [`Cursor`]), and its implementations:
//!
//! - [`MemoryNetwork`]: many in-process nodes with seeded faults (drops, duplicates, delays,
//!   reordering, partitions, restarts) on a virtual clock; the same seed and the same
//!   operations give the same delivery trace.
//! - [`GossipNode`] (feature `gossip`, on by default): rust-libp2p gossipsub over TCP, noise
//!   and yamux, SHA-256 content ids, validation before forwarding with peer scoring, per-topic
//!   size limits, a subscription filter, and a history protocol for returning peers.
//!
//! The chain channel (ERC-7627 `sendMessage`) implements the same trait in `eth-mls-chain`.
//! Frames are ciphertext; the transport only checks their framing ([`FrameValidator`]).

mod envelope;
mod error;
mod journal;
mod memory;
mod redundant;
mod service;
mod store;
mod topic;
mod validate;
pub mod wire;

#[cfg(feature = "gossip")]
mod gossip;

pub use envelope::{Cursor, Envelope, HistoryBatch, MessageId, Origin};
pub use error::Error;
pub use journal::Journal;
pub use memory::{Faults, MemoryNetwork, MemoryNode, NodeId, Outcome, TraceEvent};
pub use redundant::Redundant;
pub use service::{DeliveryService, Subscription};
pub use store::{HistoryStore, Retention};
pub use topic::{Topic, TopicKind};
pub use validate::{FrameValidator, Limits, Validator, Verdict, sample_private_message};

/// The libp2p this crate builds on (its `Keypair`, `Multiaddr` and `PeerId` are in the API).
#[cfg(feature = "gossip")]
pub use libp2p;

#[cfg(feature = "gossip")]
pub use gossip::{
    DirectResult, GossipConfig, GossipNode, HISTORY_PROTOCOL, NodeStats, ed25519_public_key,
    peer_id_from_ed25519,
};
