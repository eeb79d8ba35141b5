//! The crate's error type.

use std::time::Duration;

/// Everything that can go wrong in delivery.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A topic string is not an eth-mls topic in canonical form.
    #[error("invalid topic {topic:?}: {reason}")]
    InvalidTopic {
        /// The topic string (cut to its first 128 characters).
        topic: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A frame is larger than its topic allows.
    #[error("frame of {size} bytes exceeds the {limit}-byte limit of {topic}")]
    TooLarge {
        /// The topic.
        topic: String,
        /// The frame's size.
        size: usize,
        /// The topic's limit.
        limit: usize,
    },
    /// A frame failed the topic's validation (it would be rejected by every peer).
    #[error("frame refused on {topic}: {reason}")]
    Invalid {
        /// The topic.
        topic: String,
        /// What the validator found.
        reason: &'static str,
    },
    /// No peer subscribed to the topic showed up within the publish timeout.
    #[error(
        "no peer subscribed to {topic} within {waited:?}; check bootstrap peers and that members are online"
    )]
    NoPeers {
        /// The topic.
        topic: String,
        /// How long the publish waited.
        waited: Duration,
    },
    /// A history request asked for more than a peer serves at once.
    #[error("history request for {requested} entries exceeds the limit of {max}")]
    HistoryLimit {
        /// Entries requested.
        requested: u32,
        /// The per-request maximum.
        max: u32,
    },
    /// Bytes received from a peer (history request or response, envelope) do not decode.
    #[error("malformed {what}: {reason}")]
    Decode {
        /// What was being decoded.
        what: &'static str,
        /// What is wrong.
        reason: &'static str,
    },
    /// The peer does not serve history for the topic (not subscribed, nothing stored).
    #[error("the peer does not serve history for this topic")]
    NotServed,
    /// No address of the peer was found (DHT lookup timed out).
    #[error(
        "peer {peer} not found: no address within the timeout; check that a relay or DHT node knows it"
    )]
    PeerNotFound {
        /// The PeerId (base58).
        peer: String,
    },
    /// The node (or the simulated node) is not running.
    #[error("the delivery node is not running")]
    Stopped,
    /// A libp2p transport failure (listen, dial, swarm construction).
    #[error("libp2p: {0}")]
    Transport(String),
    /// An implementation outside this crate failed (e.g. the chain channel's RPC).
    #[error("{backend}: {source}")]
    Backend {
        /// Which implementation.
        backend: &'static str,
        /// Its error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}
