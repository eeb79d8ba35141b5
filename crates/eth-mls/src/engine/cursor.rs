//! What a client knows of each group's contract, kept in the store so that opening a client
//! never replays the group's history (security review H3; issue 30's persisted chain cursor):
//! the next block to read, the ACL mirror at that block, the registrations read and not merged
//! yet (with the ACL each is judged against), the last registered and merged commit hashes
//! (a fork is a merged commit the chain dropped, nothing else), and whether the group is
//! stalled. Saved after every read of the chain and every merge; one record per group,
//! JSON, versioned.

use std::collections::BTreeMap;

use eth_mls_core::Store;
use eth_mls_crypto::Backend;
use eth_mls_siwe::Address;
use serde::{Deserialize, Serialize};

use crate::Error;
use crate::verdict::{Acl, AclMirror, Registration};

/// Chain state per group (key: the contract address).
pub const CHAIN_STATE: &str = "eth-mls/chain-state";

/// The record's version.
const VERSION: u8 = 1;

/// Registered hashes kept besides those after the local epoch.
pub const REGISTERED_KEPT: usize = 64;

/// A registration read from the chain and not merged yet.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pending {
    /// The registration.
    pub registration: Registration,
    /// The ACL at its block (before its own changes): what it is judged against.
    pub acl: Acl,
    /// The commit's bytes (from the `CommitRegistered` log), hex.
    #[serde(with = "hex_bytes")]
    pub commit: Vec<u8>,
}

/// Why a group is stalled.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stalled {
    /// The registered epoch this member could not process (its own epoch is one less).
    pub epoch: u64,
    /// Why.
    pub reason: String,
}

/// See the module documentation.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainState {
    /// The next block whose events are read.
    pub next_block: u64,
    /// The ACL mirror after every event before `next_block`.
    pub mirror: AclMirror,
    /// Registrations read and not merged, by epoch.
    pub pending: BTreeMap<u64, Pending>,
    /// Registered commit hashes by epoch (the last [`REGISTERED_KEPT`], and every one after
    /// the local epoch).
    #[serde(with = "hash_map")]
    pub registered: BTreeMap<u64, [u8; 32]>,
    /// Commit hashes this member merged, by epoch (the last
    /// [`crate::sequencer::MERGED_KEPT`]).
    #[serde(with = "hash_map")]
    pub merged: BTreeMap<u64, [u8; 32]>,
    /// Set while the group is stalled.
    pub stalled: Option<Stalled>,
    /// The lowest epoch whose commit the owner replaced since this member followed the
    /// group: frames of that epoch number that do not decrypt are messages of the dropped
    /// line, reported lost.
    #[serde(default)]
    pub replaced_at: Option<u64>,
    /// The last block read and its hash: another block at that height later is a reorg
    /// deeper than the confirmations, and the group's events are read again from
    /// [`ChainState::origin`].
    #[serde(default)]
    pub read_to: Option<BlockRef>,
    /// The block the group's events are read from when they must be read again (the block
    /// the mirror was first built from).
    #[serde(default)]
    pub origin: u64,
    /// This account's own registrations of the last [`OWN_KEPT`] epochs with their commits:
    /// one a reorg dropped is registered again.
    #[serde(default)]
    pub own: BTreeMap<u64, Pending>,
    /// The lowest epoch this member merged whose registration a reorg dropped, until the
    /// chain has it again.
    #[serde(default)]
    pub dropped_from: Option<u64>,
}

/// A block by number and hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockRef {
    /// Its number.
    pub number: u64,
    /// Its hash, hex.
    #[serde(with = "hash")]
    pub hash: [u8; 32],
}

/// Own registrations kept (with their commits) for re-registration after a reorg.
pub const OWN_KEPT: usize = 8;

impl ChainState {
    /// A group read from `block` on with an empty mirror (its creation is after `block`).
    pub fn from_block(block: u64) -> Self {
        Self {
            next_block: block,
            origin: block,
            ..Self::default()
        }
    }

    /// Drops what is older than needed at local epoch `epoch`.
    pub fn trim(&mut self, epoch: u64) {
        self.pending.retain(|e, _| *e > epoch);
        while self.own.len() > OWN_KEPT {
            self.own.pop_first();
        }
        while self.registered.len() > REGISTERED_KEPT
            && self.registered.keys().next().is_some_and(|e| *e <= epoch)
        {
            self.registered.pop_first();
        }
    }
}

/// The saved chain state of `contract`'s group, if any.
pub fn load<B: Backend>(store: &Store<B>, contract: Address) -> Result<Option<ChainState>, Error> {
    let what = "chain state";
    let Some(v) = store
        .record(CHAIN_STATE, contract.as_slice())
        .map_err(|e| Error::Core(e.to_string()))?
    else {
        return Ok(None);
    };
    match v.split_first() {
        Some((&VERSION, json)) => serde_json::from_slice(json)
            .map(Some)
            .map_err(|_| Error::Decode { what }),
        _ => Err(Error::Decode { what }),
    }
}

/// Saves `state` for `contract`'s group.
pub fn save<B: Backend>(
    store: &mut Store<B>,
    contract: Address,
    state: &ChainState,
) -> Result<(), Error> {
    let mut v = vec![VERSION];
    serde_json::to_writer(&mut v, state).map_err(|e| Error::Core(e.to_string()))?;
    store
        .put_record(CHAIN_STATE, contract.as_slice(), &v)
        .map_err(|e| Error::Core(e.to_string()))
}

/// Deletes `contract`'s chain state (the group is left or rejoined).
pub fn delete<B: Backend>(store: &mut Store<B>, contract: Address) -> Result<(), Error> {
    store
        .delete_record(CHAIN_STATE, contract.as_slice())
        .map(|_| ())
        .map_err(|e| Error::Core(e.to_string()))
}

mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(v))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        hex::decode(s).map_err(serde::de::Error::custom)
    }
}

mod hash {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(v))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        let s = String::deserialize(d)?;
        hex::decode(s)
            .map_err(serde::de::Error::custom)?
            .try_into()
            .map_err(|_| serde::de::Error::custom("a hash is 32 bytes"))
    }
}

mod hash_map {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(m: &BTreeMap<u64, [u8; 32]>, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(m.iter().map(|(k, v)| (k, hex::encode(v))))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<BTreeMap<u64, [u8; 32]>, D::Error> {
        let m = BTreeMap::<u64, String>::deserialize(d)?;
        m.into_iter()
            .map(|(k, v)| {
                let bytes = hex::decode(v).map_err(serde::de::Error::custom)?;
                let h: [u8; 32] = bytes
                    .try_into()
                    .map_err(|_| serde::de::Error::custom("a hash is 32 bytes"))?;
                Ok((k, h))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_state_round_trips_through_json() {
        let reg = Registration {
            epoch: 3,
            registrant: Address::repeat_byte(1),
            commit_hash: [2; 32],
            epoch_authenticator_hash: [3; 32],
            added: vec![Address::repeat_byte(4)],
            key_packages: vec![[5; 32]],
            removed: vec![],
            block: 9,
            timestamp: 1_800_000_000,
        };
        let mut s = ChainState::from_block(7);
        s.pending.insert(
            3,
            Pending {
                registration: reg,
                acl: Acl::default(),
                commit: vec![1, 2, 3],
            },
        );
        s.registered.insert(3, [2; 32]);
        s.merged.insert(2, [6; 32]);
        s.stalled = Some(Stalled {
            epoch: 3,
            reason: "garbage".into(),
        });
        s.read_to = Some(BlockRef {
            number: 8,
            hash: [7; 32],
        });
        s.dropped_from = Some(2);
        let json = serde_json::to_vec(&s).unwrap();
        assert_eq!(serde_json::from_slice::<ChainState>(&json).unwrap(), s);
        assert!(serde_json::from_slice::<ChainState>(b"{}").is_err());
    }
}
