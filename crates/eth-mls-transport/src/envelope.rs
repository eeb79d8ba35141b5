//! What subscribers receive, and where they resume.

use std::fmt;

use sha2::{Digest, Sha256};

use crate::Topic;

/// A message id: SHA-256 of the frame's bytes (gossipsub's message id, and the key that makes
/// delivery exactly-once at every node).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MessageId(pub [u8; 32]);

impl MessageId {
    /// The id of `bytes`.
    pub fn of(bytes: &[u8]) -> MessageId {
        MessageId(Sha256::digest(bytes).into())
    }
}

impl fmt::Debug for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MessageId({})", hex::encode(&self.0[..8]))
    }
}

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

/// A position in a topic's history: the next batch starts at the first envelope at or after
/// it. For gossip and memory nodes `at` is the storing node's receive time in Unix
/// milliseconds and `index` orders envelopes within that millisecond; for the chain channel
/// `at` is the block number and `index` the log index. Cursors of one implementation are
/// comparable; persist the cursor of the last envelope handled and resume from it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Cursor {
    /// Time (ms) or block.
    pub at: u64,
    /// Order within `at`.
    pub index: u64,
}

impl Cursor {
    /// The beginning of everything.
    pub const START: Cursor = Cursor { at: 0, index: 0 };

    /// The cursor just after this one.
    pub fn next(self) -> Cursor {
        match self.index.checked_add(1) {
            Some(index) => Cursor { at: self.at, index },
            None => Cursor {
                at: self.at.saturating_add(1),
                index: 0,
            },
        }
    }
}

/// Who put a frame on the network, as far as the transport can tell (the content's own
/// signature is what authenticates it).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Origin {
    /// A libp2p peer (base58 PeerId) or a named in-memory node.
    Peer(String),
    /// An Ethereum account (the chain channel's `from`).
    Account([u8; 20]),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Peer(p) => f.write_str(p),
            Origin::Account(a) => write!(f, "0x{}", hex::encode(a)),
        }
    }
}

/// A delivered frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Envelope {
    /// Where it was published.
    pub topic: Topic,
    /// The frame (ciphertext: MLS messages or 1:1 channel frames).
    pub bytes: Vec<u8>,
    /// SHA-256 of `bytes`.
    pub id: MessageId,
    /// Who published it.
    pub origin: Origin,
    /// When this node received it (Unix ms; for the chain channel, the block's timestamp in ms).
    pub received_at: u64,
    /// Its position in this node's history of the topic.
    pub cursor: Cursor,
}

/// One page of history.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HistoryBatch {
    /// Envelopes in cursor order.
    pub envelopes: Vec<Envelope>,
    /// Where the next page starts; `None` when this page reached the end of what is known.
    pub next: Option<Cursor>,
}
