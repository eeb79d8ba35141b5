use std::collections::{HashMap, VecDeque};

#[cfg(not(target_arch = "wasm32"))]
use std::time::SystemTime;
#[cfg(target_arch = "wasm32")]
use web_time::SystemTime;

use crate::schedule::message_secrets::MessageSecrets;
use openmls_traits::storage::CURRENT_VERSION;

use super::*;

impl EpochTree {
    #[cfg(all(test, feature = "sqlite-provider", feature = "libcrux-provider"))]
    pub(crate) fn timestamp(&self) -> Option<SystemTime> {
        self.message_secrets.timestamp()
    }
}

// Internal helper struct
#[derive(Serialize, Deserialize)]
#[cfg_attr(any(test, feature = "test-utils"), derive(Clone, PartialEq))]
#[cfg_attr(feature = "crypto-debug", derive(Debug))]
pub(crate) struct EpochTree {
    epoch: u64,
    message_secrets: MessageSecrets,
    leaves: Leaves,
}

/// eth-mls patch (see `vendor/README.md`): a past epoch's member list, which never changes.
///
/// The whole [`MessageSecretsStore`] is written after every message, and with it each past
/// epoch's member list (credentials included: hundreds of kilobytes in a large group). In a
/// binary format the list is written as one byte blob, its TLS encoding, made once: every later
/// write copies it instead of encoding each member again. Reading accepts the blob and the
/// list of members written before; a human-readable format (JSON) writes and reads the list
/// of members, as before.
#[derive(Default)]
pub(crate) struct Leaves {
    /// The members; for a list made from the tree ([`Leaves::from_tree`]), decoded from
    /// `encoded` the first time they are looked up (a late message of that epoch), if ever.
    members: std::sync::OnceLock<Vec<Member>>,
    encoded: std::sync::OnceLock<Vec<u8>>,
}

impl Leaves {
    fn new(members: Vec<Member>) -> Self {
        Leaves {
            members: members.into(),
            encoded: std::sync::OnceLock::new(),
        }
    }

    /// The members of `tree`, encoded straight from its leaves: no member (credential
    /// included) is cloned, at every merge, only to be encoded.
    pub(crate) fn from_tree(tree: &crate::treesync::TreeSync) -> Result<Self, tls_codec::Error> {
        let encoded = Self::encode_entries(tree.full_leaves().map(|(index, leaf)| {
            (
                index,
                leaf.credential(),
                leaf.encryption_key().as_slice(),
                leaf.signature_key().as_slice(),
            )
        }))?;
        Ok(Leaves {
            members: std::sync::OnceLock::new(),
            encoded: encoded.into(),
        })
    }

    /// The TLS encoding: the number of members (u32), then each member's leaf index (u32),
    /// credential, encryption key and signature key (variable-length vectors).
    fn encode(members: &[Member]) -> Result<Vec<u8>, tls_codec::Error> {
        Self::encode_entries(members.iter().map(|m| {
            (
                m.index,
                &m.credential,
                m.encryption_key.as_slice(),
                m.signature_key.as_slice(),
            )
        }))
    }

    fn encode_entries<'a>(
        entries: impl Iterator<Item = (LeafNodeIndex, &'a Credential, &'a [u8], &'a [u8])>,
    ) -> Result<Vec<u8>, tls_codec::Error> {
        use tls_codec::{Serialize as _, Size as _};
        let entries: Vec<_> = entries.collect();
        let count =
            u32::try_from(entries.len()).map_err(|_| tls_codec::Error::InvalidVectorLength)?;
        let size = 4 + entries
            .iter()
            .map(|(index, credential, encryption_key, signature_key)| {
                index.tls_serialized_len()
                    + credential.tls_serialized_len()
                    + tls_codec::VLByteSlice(encryption_key).tls_serialized_len()
                    + tls_codec::VLByteSlice(signature_key).tls_serialized_len()
            })
            .sum::<usize>();
        let mut out = Vec::with_capacity(size);
        count.tls_serialize(&mut out)?;
        for (index, credential, encryption_key, signature_key) in entries {
            index.tls_serialize(&mut out)?;
            credential.tls_serialize(&mut out)?;
            tls_codec::VLByteSlice(encryption_key).tls_serialize(&mut out)?;
            tls_codec::VLByteSlice(signature_key).tls_serialize(&mut out)?;
        }
        Ok(out)
    }

    fn decode(mut bytes: &[u8]) -> Result<Vec<Member>, tls_codec::Error> {
        use tls_codec::Deserialize as _;
        let count = u32::tls_deserialize(&mut bytes)?;
        // Each member takes more than 8 bytes: a count the bytes cannot hold is refused
        // before anything is allocated for it.
        if count as usize > bytes.len() / 8 {
            return Err(tls_codec::Error::InvalidVectorLength);
        }
        let mut members = Vec::with_capacity(count as usize);
        for _ in 0..count {
            let index = LeafNodeIndex::tls_deserialize(&mut bytes)?;
            let credential = Credential::tls_deserialize(&mut bytes)?;
            let encryption_key = tls_codec::VLBytes::tls_deserialize(&mut bytes)?;
            let signature_key = tls_codec::VLBytes::tls_deserialize(&mut bytes)?;
            members.push(Member::new(
                index,
                encryption_key.into(),
                signature_key.into(),
                credential,
            ));
        }
        if !bytes.is_empty() {
            return Err(tls_codec::Error::TrailingData);
        }
        Ok(members)
    }
}

impl core::ops::Deref for Leaves {
    type Target = [Member];

    fn deref(&self) -> &[Member] {
        self.members.get_or_init(|| {
            // Only a list made by `from_tree` lacks its members, and its encoding, made by
            // `encode_entries` from a valid tree, always decodes (tested).
            let decoded = self.encoded.get().map(|e| Self::decode(e));
            debug_assert!(
                matches!(decoded, Some(Ok(_))),
                "a member list that does not decode"
            );
            decoded.and_then(Result::ok).unwrap_or_default()
        })
    }
}

#[cfg(any(test, feature = "test-utils"))]
impl Clone for Leaves {
    fn clone(&self) -> Self {
        Leaves::new(self.to_vec())
    }
}

#[cfg(any(test, feature = "test-utils"))]
impl PartialEq for Leaves {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

#[cfg(feature = "crypto-debug")]
impl core::fmt::Debug for Leaves {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        (**self).fmt(f)
    }
}

impl Serialize for Leaves {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            return (**self).serialize(serializer);
        }
        if let Some(encoded) = self.encoded.get() {
            return serializer.serialize_bytes(encoded);
        }
        let encoded = Self::encode(self).map_err(serde::ser::Error::custom)?;
        serializer.serialize_bytes(self.encoded.get_or_init(|| encoded))
    }
}

impl<'de> Deserialize<'de> for Leaves {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Leaves;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a member list: its TLS encoding or a sequence of members")
            }

            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Leaves, E> {
                let members = Leaves::decode(v).map_err(E::custom)?;
                let leaves = Leaves::new(members);
                // What was read is what would be written.
                let _ = leaves.encoded.set(v.to_vec());
                Ok(leaves)
            }

            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Leaves, A::Error> {
                let mut members = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
                while let Some(member) = seq.next_element::<Member>()? {
                    members.push(member);
                }
                Ok(Leaves::new(members))
            }
        }
        if deserializer.is_human_readable() {
            return Vec::<Member>::deserialize(deserializer).map(Leaves::new);
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// Can store message secrets for up to `max_epochs`. The trees are added with [`self::add()`] and can be queried
/// with [`Self::get_epoch()`].
#[derive(Serialize, Deserialize)]
#[cfg_attr(any(test, feature = "test-utils"), derive(Clone, PartialEq))]
#[cfg_attr(feature = "crypto-debug", derive(Debug))]
pub(crate) struct MessageSecretsStore {
    // Maximum size of the `past_epoch_trees` list.
    pub(crate) max_epochs: usize,
    // Past message secrets.
    // NOTE: these are in order of addition (latest at end).
    past_epoch_trees: VecDeque<EpochTree>,
    // The message secrets of the current epoch.
    message_secrets: MessageSecrets,
    // eth-mls patch: read in the layout before the split (one whole record), so the next
    // write must write the past epochs too. Never stored.
    #[serde(skip)]
    past_unwritten: PastUnwritten,
}

/// eth-mls patch: whether a store's past epochs still lack their own record (see
/// [`MessageSecretsStore::write`]); not part of the store's value (clones and comparisons
/// ignore it).
#[derive(Default)]
struct PastUnwritten(std::sync::atomic::AtomicBool);

impl PastUnwritten {
    fn load(&self, order: std::sync::atomic::Ordering) -> bool {
        self.0.load(order)
    }

    fn store(&self, value: bool, order: std::sync::atomic::Ordering) {
        self.0.store(value, order)
    }
}

impl Clone for PastUnwritten {
    fn clone(&self) -> Self {
        PastUnwritten(self.load(std::sync::atomic::Ordering::Acquire).into())
    }
}

impl PartialEq for PastUnwritten {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

#[cfg(not(feature = "crypto-debug"))]
impl core::fmt::Debug for MessageSecretsStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MessageSecretsStore")
            .field("max_epochs", &"***")
            .field("past_epoch_trees", &"***")
            .field("message_secrets", &"***")
            .finish()
    }
}

/// eth-mls patch (see `vendor/README.md`): what a write of a [`MessageSecretsStore`] covers.
///
/// The store used to be written whole after every message: the current epoch's secret tree
/// and, for each kept past epoch, its secret tree and member list (hundreds of kilobytes in a
/// large group). It is now two records: the *head* (the current epoch's secrets and the
/// number of past epochs kept), under the group's id, and the *past epochs* (their secrets and
/// member lists), under a key of their own ([`PastEpochsKey`]). A message of the current epoch
/// changes only the head; a late message of a past epoch only the past epochs; a merge both.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SecretsWrite {
    /// Only the current epoch's secrets changed.
    Current,
    /// Only a past epoch's secrets changed.
    Past,
    /// Anything may have changed (new epoch, policy, deletion of past epochs).
    All,
}

impl SecretsWrite {
    /// The write after a change to the secrets used for `epoch`, the group being at
    /// `current` (as `MlsGroup::message_secrets_for_epoch_mut` picks them: a past epoch's
    /// own, else the current ones).
    pub(crate) fn for_epoch(epoch: GroupEpoch, current: GroupEpoch) -> Self {
        if epoch < current {
            SecretsWrite::Past
        } else {
            SecretsWrite::Current
        }
    }
}

/// eth-mls patch: the key of a group's past epochs record: the group's id and a tag, so it
/// never equals the key of the group's head record (the id alone) in any format.
#[derive(Serialize)]
pub(crate) struct PastEpochsKey<'a> {
    group_id: &'a GroupId,
    part: &'static str,
}

impl<'a> PastEpochsKey<'a> {
    fn new(group_id: &'a GroupId) -> Self {
        PastEpochsKey {
            group_id,
            part: "openmls past epoch secrets",
        }
    }
}

impl openmls_traits::storage::Key<CURRENT_VERSION> for PastEpochsKey<'_> {}
impl openmls_traits::storage::traits::GroupId<CURRENT_VERSION> for PastEpochsKey<'_> {}

/// A value a record holds: borrowed when written, owned when read (no copy of the secrets to
/// write them).
pub(crate) enum Held<'a, T> {
    Borrowed(&'a T),
    Owned(T),
}

impl<T> Held<'_, T> {
    fn into_owned(self) -> Option<T> {
        match self {
            Held::Owned(t) => Some(t),
            Held::Borrowed(_) => None,
        }
    }
}

impl<T: Serialize> Serialize for Held<'_, T> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Held::Borrowed(t) => t.serialize(serializer),
            Held::Owned(t) => t.serialize(serializer),
        }
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Held<'_, T> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        T::deserialize(deserializer).map(Held::Owned)
    }
}

/// A record's first field: which record it is, so that a record of the layout before the
/// split (a whole [`MessageSecretsStore`], whose first field is a number) never reads as one.
#[derive(Serialize, Deserialize, PartialEq, Eq)]
enum Layout {
    #[serde(rename = "openmls message secrets head v2")]
    Head,
    #[serde(rename = "openmls past epoch secrets v2")]
    Past,
}

/// The head record: the current epoch's secrets.
#[derive(Serialize, Deserialize)]
pub(crate) struct HeadRecord<'a> {
    layout: Layout,
    max_epochs: usize,
    message_secrets: Held<'a, MessageSecrets>,
}

/// The past epochs record: their secrets and member lists, oldest first.
#[derive(Serialize, Deserialize)]
pub(crate) struct PastRecord<'a> {
    layout: Layout,
    past_epoch_trees: Held<'a, VecDeque<EpochTree>>,
}

impl openmls_traits::storage::Entity<CURRENT_VERSION> for HeadRecord<'_> {}
impl openmls_traits::storage::traits::MessageSecrets<CURRENT_VERSION> for HeadRecord<'_> {}
impl openmls_traits::storage::Entity<CURRENT_VERSION> for PastRecord<'_> {}
impl openmls_traits::storage::traits::MessageSecrets<CURRENT_VERSION> for PastRecord<'_> {}

impl MessageSecretsStore {
    /// Writes what `what` covers of the store of group `group_id`.
    ///
    /// A store read in the layout before the split is written whole the first time, whatever
    /// `what` says: its past epochs have no record of their own yet.
    pub(crate) fn write<Storage: crate::storage::StorageProvider>(
        &self,
        storage: &Storage,
        group_id: &GroupId,
        what: SecretsWrite,
    ) -> Result<(), Storage::Error> {
        use std::sync::atomic::Ordering;
        let what = if self.past_unwritten.load(Ordering::Acquire) {
            SecretsWrite::All
        } else {
            what
        };
        if what != SecretsWrite::Past {
            storage.write_message_secrets(
                group_id,
                &HeadRecord {
                    layout: Layout::Head,
                    max_epochs: self.max_epochs,
                    message_secrets: Held::Borrowed(&self.message_secrets),
                },
            )?;
        }
        if what != SecretsWrite::Current {
            storage.write_message_secrets(
                &PastEpochsKey::new(group_id),
                &PastRecord {
                    layout: Layout::Past,
                    past_epoch_trees: Held::Borrowed(&self.past_epoch_trees),
                },
            )?;
            self.past_unwritten.store(false, Ordering::Release);
        }
        Ok(())
    }

    /// Reads the store of group `group_id`: its two records, or a whole store written before
    /// the split. `None` when there is none.
    pub(crate) fn read<Storage: crate::storage::StorageProvider>(
        storage: &Storage,
        group_id: &GroupId,
    ) -> Result<Option<Self>, Storage::Error> {
        let head = match storage.message_secrets::<_, HeadRecord<'static>>(group_id) {
            Ok(head) => head,
            // Not a head record: a whole store written before the split (or an error reading
            // it, which reading it whole reports again).
            Err(head_error) => {
                return match storage.message_secrets::<_, Self>(group_id) {
                    Ok(store) => Ok(store.inspect(|store| {
                        store
                            .past_unwritten
                            .store(true, std::sync::atomic::Ordering::Release)
                    })),
                    Err(_) => Err(head_error),
                };
            }
        };
        let Some(head) = head else {
            return Ok(None);
        };
        // A head without its past epochs record has lost them: read as none kept (openmls
        // then cannot decrypt late messages of those epochs, as after their deletion).
        let past = storage
            .message_secrets::<_, PastRecord<'static>>(&PastEpochsKey::new(group_id))?
            .filter(|past| past.layout == Layout::Past)
            .and_then(|past| past.past_epoch_trees.into_owned())
            .unwrap_or_default();
        let (Layout::Head, Some(message_secrets)) =
            (head.layout, head.message_secrets.into_owned())
        else {
            return Ok(None);
        };
        Ok(Some(Self {
            max_epochs: head.max_epochs,
            past_epoch_trees: past,
            message_secrets,
            past_unwritten: Default::default(),
        }))
    }

    /// Deletes both records of group `group_id`'s store.
    pub(crate) fn delete<Storage: crate::storage::StorageProvider>(
        storage: &Storage,
        group_id: &GroupId,
    ) -> Result<(), Storage::Error> {
        storage.delete_message_secrets(group_id)?;
        storage.delete_message_secrets(&PastEpochsKey::new(group_id))
    }
}

const VECDEQUE_MAX_CAPACITY: usize = isize::MAX as usize;

// XXX: the VecDeque capacity is not checked elsewhere in this module.
/// Helper function to map a policy to a maximum number of past epochs
fn max_epochs(policy: &PastEpochDeletionPolicy) -> usize {
    // get the `max_epochs`, or the maximum capacity of a `VecDeque`
    let max_epochs = policy.max_epochs().unwrap_or(VECDEQUE_MAX_CAPACITY);

    // cap at max capacity
    max_epochs.min(VECDEQUE_MAX_CAPACITY)
}

impl MessageSecretsStore {
    /// Create a new store that can hold up to `max_past_epochs` message secrets.
    /// If `max_past_epochs` is 0, only the current epoch is being stored.
    pub(crate) fn new_with_secret(
        policy: &PastEpochDeletionPolicy,
        message_secrets: MessageSecrets,
    ) -> Self {
        // max or the limit of the storage size
        let max_epochs = max_epochs(policy);

        Self {
            max_epochs,
            past_epoch_trees: VecDeque::new(),
            message_secrets: message_secrets.with_timestamp(SystemTime::now()),
            past_unwritten: Default::default(),
        }
    }

    /// Resize the store.
    pub(crate) fn resize(&mut self, policy: &PastEpochDeletionPolicy) {
        // max or the limit of the storage size
        let max_past_epochs = max_epochs(policy);

        let old_size = self.max_epochs;
        self.max_epochs = max_past_epochs;
        if old_size > max_past_epochs {
            let num_epochs_out = old_size - max_past_epochs;
            self.past_epoch_trees
                .rotate_left(num_epochs_out.min(self.past_epoch_trees.len()));
            self.past_epoch_trees.truncate(max_past_epochs);
        }
    }

    /// Set the `message_secrets` to a provided `MessageSecrets`, and return
    /// the previous one.
    pub(crate) fn replace_current_message_secrets(
        &mut self,
        message_secrets: MessageSecrets,
    ) -> MessageSecrets {
        let mut message_secrets = message_secrets.with_timestamp(SystemTime::now());
        std::mem::swap(&mut self.message_secrets, &mut message_secrets);

        message_secrets
    }

    /// Add a secret tree for a given epoch `group_epoch`.
    /// Note that this does not take the epoch into account and pops out the
    /// oldest element.
    #[cfg(test)]
    pub(crate) fn add_past_epoch_tree(
        &mut self,
        group_epoch: impl Into<GroupEpoch>,
        message_secrets: MessageSecrets,
        leaves: Vec<Member>,
    ) {
        self.add_past_epoch_tree_with_leaves(group_epoch, message_secrets, Leaves::new(leaves))
    }

    /// eth-mls patch: [`Self::add_past_epoch_tree`] with the member list as a [`Leaves`]
    /// (made from the tree at a merge: [`Leaves::from_tree`]).
    pub(crate) fn add_past_epoch_tree_with_leaves(
        &mut self,
        group_epoch: impl Into<GroupEpoch>,
        message_secrets: MessageSecrets,
        leaves: Leaves,
    ) {
        // Don't store the tree if it's not intended
        if self.max_epochs == 0 {
            return;
        }
        if self.past_epoch_trees.len() >= self.max_epochs {
            self.past_epoch_trees.rotate_left(1);
            self.past_epoch_trees.truncate(self.max_epochs - 1);
        }

        self.past_epoch_trees.push_back(EpochTree {
            epoch: group_epoch.into().as_u64(),
            message_secrets,
            leaves,
        });
        debug_assert!(
            self.max_epochs >= self.past_epoch_trees.len(),
            "Only {} past secrets must be stored but we found {}",
            self.max_epochs,
            self.past_epoch_trees.len()
        );
    }

    /// Get a mutable reference to a secret tree for a given epoch `group_epoch`.
    /// If no message secrets are found for that epoch, `None` is returned.
    pub(crate) fn secrets_for_epoch_mut(
        &mut self,
        group_epoch: impl Into<GroupEpoch>,
    ) -> Option<&mut MessageSecrets> {
        let epoch = group_epoch.into().as_u64();
        for epoch_tree in self.past_epoch_trees.iter_mut() {
            if epoch_tree.epoch == epoch {
                return Some(&mut epoch_tree.message_secrets);
            }
        }
        None
    }

    /// Get a reference to a secret tree for a given epoch `group_epoch`.
    /// If no message secrets are found for that epoch, `None` is returned.
    pub(crate) fn secrets_for_epoch(
        &self,
        group_epoch: impl Into<GroupEpoch>,
    ) -> Option<&MessageSecrets> {
        let epoch = group_epoch.into().as_u64();
        for epoch_tree in self.past_epoch_trees.iter() {
            if epoch_tree.epoch == epoch {
                return Some(&epoch_tree.message_secrets);
            }
        }
        None
    }

    /// Get a mutable reference to a secret tree for a given epoch `group_epoch`.
    /// Return a mutable reference to the [`MessageSecrets`] and a slice to the
    /// [`Member`]s of the epoch.
    pub(crate) fn secrets_and_leaves_for_epoch(
        &self,
        group_epoch: impl Into<GroupEpoch>,
    ) -> Option<(&MessageSecrets, &[Member])> {
        let epoch = group_epoch.into().as_u64();
        for epoch_tree in self.past_epoch_trees.iter() {
            if epoch_tree.epoch == epoch {
                return Some((&epoch_tree.message_secrets, &epoch_tree.leaves));
            }
        }
        None
    }

    /// Returns a `HashMap` that maps a `LeafNodeIndex` to the correct
    /// [`Member`] in the given `group_epoch`.
    pub(crate) fn leaves_for_epoch(
        &self,
        group_epoch: impl Into<GroupEpoch>,
    ) -> HashMap<LeafNodeIndex, &Member> {
        let epoch = group_epoch.into().as_u64();
        for epoch_tree in self.past_epoch_trees.iter() {
            if epoch_tree.epoch == epoch {
                return epoch_tree
                    .leaves
                    .iter()
                    .map(|m| (m.index, m))
                    .collect::<HashMap<LeafNodeIndex, &Member>>();
            }
        }
        HashMap::new()
    }

    /// Check if the provided epoch contains a leaf index.
    pub(crate) fn epoch_has_leaf(
        &self,
        group_epoch: GroupEpoch,
        leaf_index: LeafNodeIndex,
    ) -> bool {
        self.past_epoch_trees.iter().any(|t| {
            t.epoch == group_epoch.0
                && t.leaves
                    .iter()
                    .any(|Member { index, .. }| *index == leaf_index)
        })
    }

    /// Get a mutable reference to the message secrets of the current epoch.
    pub(crate) fn message_secrets_mut(&mut self) -> &mut MessageSecrets {
        &mut self.message_secrets
    }

    /// Get a reference to the message secrets of the current epoch.
    pub(crate) fn message_secrets(&self) -> &MessageSecrets {
        &self.message_secrets
    }

    fn delete_past_epoch_secrets_older_than_duration(&mut self, duration: std::time::Duration) {
        // first, compare to the timestamp of the current message secrets
        if let Some(added_at) = self.message_secrets.timestamp() {
            if let Ok(elapsed) = SystemTime::now().duration_since(added_at) {
                if elapsed > duration {
                    // delete all
                    self.past_epoch_trees.clear();
                    return;
                }
            }
        }

        // find the first past epoch tree with a timestamp past the duration
        let found = self
            .past_epoch_trees
            .iter()
            .enumerate()
            .rev()
            .find(|(_idx, tree)| {
                let Some(added_at) = tree.message_secrets.timestamp() else {
                    return false;
                };

                let Ok(elapsed) = SystemTime::now().duration_since(added_at) else {
                    return false;
                };

                elapsed > duration
            })
            .map(|(idx, _tree)| idx);

        if let Some(found_idx) = found {
            // delete all before and including the index
            self.past_epoch_trees.drain(0..found_idx + 1);
        } else {

            // keep all
        }
    }

    fn delete_past_epoch_secrets_before_timestamp(&mut self, cutoff: SystemTime) {
        // first, compare to timestamp of the current message secrets
        if let Some(added_at) = self.message_secrets.timestamp() {
            if added_at < cutoff {
                // delete all
                self.past_epoch_trees.clear();
                return;
            }
        }

        // find the first past epoch tree with an earlier non-None timestamp
        let found = self
            .past_epoch_trees
            .iter()
            .enumerate()
            .rev()
            .find(|(_idx, tree)| {
                let Some(added_at) = tree.message_secrets.timestamp() else {
                    return false;
                };

                added_at < cutoff
            })
            .map(|(idx, _tree)| idx);

        if let Some(found_idx) = found {
            // delete all before and including the index
            self.past_epoch_trees.drain(0..found_idx + 1);
        } else {
            // keep all
        }
    }

    pub(crate) fn delete_past_epoch_secrets(&mut self, policy: PastEpochDeletion) {
        // handle different types of past epoch deletion
        if let Some(config) = policy.config {
            match config {
                PastEpochDeletionTimeConfig::DeleteAllWithoutTimestamp => {
                    self.past_epoch_trees
                        .retain(|tree| tree.message_secrets.timestamp().is_some());
                }
                PastEpochDeletionTimeConfig::BeforeTimestamp(timestamp) => {
                    self.delete_past_epoch_secrets_before_timestamp(timestamp)
                }
                PastEpochDeletionTimeConfig::OlderThanDuration(duration) => {
                    self.delete_past_epoch_secrets_older_than_duration(duration)
                }
            };
            // ensure at most `max_past_epochs` entries are included
            if let Some(max_past_epochs) = policy.max_past_epochs {
                if let Some(i) = self.past_epoch_trees.len().checked_sub(max_past_epochs) {
                    self.past_epoch_trees.drain(0..i);
                }
            }
        } else {
            // delete all
            self.past_epoch_trees.clear();
        }
    }

    #[cfg(all(test, feature = "sqlite-provider", feature = "libcrux-provider"))]
    /// Helper function for testing, to iterate over all past epoch secrets
    pub(crate) fn iter_past_epoch_trees(&self) -> impl Iterator<Item = &EpochTree> {
        self.past_epoch_trees.iter()
    }

    #[cfg(test)]
    /// Helper function for testing, to get the number of past epoch trees
    pub(crate) fn num_past_epoch_trees(&self) -> usize {
        self.past_epoch_trees.len()
    }
}

/// eth-mls patch (vendor/README.md): a past epoch's member list as one blob.
#[cfg(test)]
mod eth_mls_patch {
    use super::*;
    use crate::credentials::BasicCredential;
    use serde::de::{Deserializer, Visitor};

    /// A deserializer read as a binary format (`is_human_readable` false).
    struct Binary<D>(D);

    impl<'de, D: Deserializer<'de>> Deserializer<'de> for Binary<D> {
        type Error = D::Error;

        fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
            self.0.deserialize_any(visitor)
        }

        fn is_human_readable(&self) -> bool {
            false
        }

        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
            byte_buf option unit unit_struct newtype_struct seq tuple tuple_struct map struct
            enum identifier ignored_any
        }
    }

    fn members(n: u32) -> Vec<Member> {
        (0..n)
            .map(|i| {
                Member::new(
                    LeafNodeIndex::new(2 * i),
                    vec![i as u8; 56],
                    vec![0xa0 | i as u8; 57],
                    BasicCredential::new(format!("member {i}").into_bytes()).into(),
                )
            })
            .collect()
    }

    #[test]
    fn encoded_once_and_read_back() {
        let list = members(5);
        let encoded = Leaves::encode(&list).unwrap();
        assert_eq!(&encoded[..4], &5u32.to_be_bytes());
        assert_eq!(Leaves::decode(&encoded).unwrap(), list);
        // Read from a blob, the blob is kept for the next write.
        let bytes = serde::de::value::BytesDeserializer::<serde::de::value::Error>::new(&encoded);
        let leaves = Leaves::deserialize(Binary(bytes)).unwrap();
        assert_eq!(&*leaves, list.as_slice());
        assert_eq!(leaves.encoded.get(), Some(&encoded));
        // An empty list too.
        let none = Leaves::encode(&[]).unwrap();
        assert_eq!(Leaves::decode(&none).unwrap(), Vec::<Member>::new());
    }

    #[test]
    fn lists_written_before_still_read() {
        // Before the patch the list was a sequence of members.
        let list = members(3);
        let legacy = serde_json::to_string(&list).unwrap();
        let mut json = serde_json::Deserializer::from_str(&legacy);
        let leaves = Leaves::deserialize(Binary(&mut json)).unwrap();
        assert_eq!(&*leaves, list.as_slice());
        // JSON (human-readable) writes and reads the list of members, as before.
        let leaves = Leaves::new(list.clone());
        assert_eq!(serde_json::to_string(&leaves).unwrap(), legacy);
        let back: Leaves = serde_json::from_str(&legacy).unwrap();
        assert_eq!(&*back, list.as_slice());
    }

    #[test]
    fn bad_blobs_are_errors() {
        let encoded = Leaves::encode(&members(2)).unwrap();
        // Cut anywhere, or with a byte more: an error, never a panic.
        for end in 0..encoded.len() {
            assert!(Leaves::decode(&encoded[..end]).is_err(), "cut at {end}");
        }
        let mut longer = encoded.clone();
        longer.push(0);
        assert!(Leaves::decode(&longer).is_err());
        // A count the bytes cannot hold is refused before allocating for it.
        let mut huge = u32::MAX.to_be_bytes().to_vec();
        huge.extend_from_slice(&encoded[4..]);
        assert!(Leaves::decode(&huge).is_err());
    }

    /// The memory storage's values: key to value.
    fn values(
        storage: &openmls_memory_storage::MemoryStorage,
    ) -> std::collections::HashMap<Vec<u8>, Vec<u8>> {
        storage.values.read().unwrap().clone()
    }

    /// The keys whose values differ between two snapshots of the storage (or are in one only).
    fn changed(
        a: &std::collections::HashMap<Vec<u8>, Vec<u8>>,
        b: &std::collections::HashMap<Vec<u8>, Vec<u8>>,
    ) -> Vec<Vec<u8>> {
        let mut keys: Vec<Vec<u8>> = a
            .keys()
            .chain(b.keys())
            .filter(|k| a.get(*k) != b.get(*k))
            .cloned()
            .collect();
        keys.sort();
        keys.dedup();
        keys
    }

    #[test]
    fn a_message_writes_the_head_a_late_one_the_past_and_old_stores_still_read() {
        use openmls_traits::OpenMlsProvider as _;
        let provider = openmls_rust_crypto::OpenMlsRustCrypto::default();
        let storage = provider.storage();
        let rng = provider.rand();
        let cs = Ciphersuite::MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519;
        let secrets = || MessageSecrets::random(cs, rng, LeafNodeIndex::new(0));
        let group = GroupId::from_slice(b"eth-mls patch");
        let mut store =
            MessageSecretsStore::new_with_secret(&PastEpochDeletionPolicy::MaxEpochs(2), secrets());
        store.add_past_epoch_tree(1u64, secrets(), members(3));
        store.add_past_epoch_tree(2u64, secrets(), members(4));

        // Everything: two records, read back as the store.
        store.write(storage, &group, SecretsWrite::All).unwrap();
        let all = values(storage);
        assert_eq!(all.len(), 2);
        let read = MessageSecretsStore::read(storage, &group).unwrap().unwrap();
        assert!(read == store);

        // A message of the current epoch: the head alone is written.
        store.replace_current_message_secrets(secrets());
        store.write(storage, &group, SecretsWrite::Current).unwrap();
        let current = values(storage);
        let head = changed(&all, &current);
        assert_eq!(head.len(), 1);
        assert!(MessageSecretsStore::read(storage, &group).unwrap().unwrap() == store);

        // A late message of a past epoch: the past epochs alone are written.
        *store.secrets_for_epoch_mut(1u64).unwrap() = secrets();
        store.write(storage, &group, SecretsWrite::Past).unwrap();
        let past = values(storage);
        let past_key = changed(&current, &past);
        assert_eq!(past_key.len(), 1);
        assert_ne!(past_key, head);
        assert!(MessageSecretsStore::read(storage, &group).unwrap().unwrap() == store);

        // Which one a change needs: messages of the current (or a later) epoch change the
        // current secrets, those of earlier epochs their own.
        assert_eq!(
            SecretsWrite::for_epoch(GroupEpoch::from(1), GroupEpoch::from(3)),
            SecretsWrite::Past
        );
        for epoch in [3, 4] {
            assert_eq!(
                SecretsWrite::for_epoch(GroupEpoch::from(epoch), GroupEpoch::from(3)),
                SecretsWrite::Current
            );
        }

        // Deleted: both records go.
        MessageSecretsStore::delete(storage, &group).unwrap();
        assert!(values(storage).is_empty());
        assert!(MessageSecretsStore::read(storage, &group)
            .unwrap()
            .is_none());

        // A whole store as written before the patch (one record under the group's id) reads,
        // and its next write, even one of the current epoch only, writes both records.
        storage.write_message_secrets(&group, &store).unwrap();
        assert_eq!(values(storage).len(), 1);
        let old = MessageSecretsStore::read(storage, &group).unwrap().unwrap();
        assert!(old == store);
        old.write(storage, &group, SecretsWrite::Current).unwrap();
        assert_eq!(values(storage), past);
        assert!(MessageSecretsStore::read(storage, &group).unwrap().unwrap() == store);
    }

    #[test]
    fn a_list_made_from_the_tree_is_the_members_list() {
        use crate::group::tests_and_kats::utils::{
            generate_credential_with_key, generate_key_package,
        };
        let provider = openmls_rust_crypto::OpenMlsRustCrypto::default();
        let cs = Ciphersuite::MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519;
        let alice =
            generate_credential_with_key(b"alice".to_vec(), cs.signature_algorithm(), &provider);
        let mut group = MlsGroup::builder()
            .ciphersuite(cs)
            .max_past_epochs(2)
            .build(&provider, &alice.signer, alice.credential_with_key.clone())
            .unwrap();
        let kps: Vec<crate::prelude::KeyPackage> =
            [b"bob".to_vec(), b"carol".to_vec(), b"dave".to_vec()]
                .into_iter()
                .map(|name| {
                    let c = generate_credential_with_key(name, cs.signature_algorithm(), &provider);
                    generate_key_package(cs, Extensions::empty(), &provider, c)
                        .key_package()
                        .clone()
                })
                .collect();
        group.add_members(&provider, &alice.signer, &kps).unwrap();
        group.merge_pending_commit(&provider).unwrap();
        // A blank leaf in the middle: removed members are not listed.
        group
            .remove_members(&provider, &alice.signer, &[LeafNodeIndex::new(2)])
            .unwrap();
        group.merge_pending_commit(&provider).unwrap();
        let members: Vec<Member> = group.public_group().members().collect();
        assert_eq!(members.len(), 3);
        let leaves = Leaves::from_tree(group.public_group().treesync()).unwrap();
        // Only the encoding is made; it is that of the members, and reads back as them.
        assert!(leaves.members.get().is_none());
        assert_eq!(
            leaves.encoded.get(),
            Some(&Leaves::encode(&members).unwrap())
        );
        assert_eq!(&*leaves, members.as_slice());
        // The group's own merges keep such lists: the past epoch's members are those before
        // the commit.
        let before = members;
        group
            .self_update(&provider, &alice.signer, Default::default())
            .unwrap();
        group.merge_pending_commit(&provider).unwrap();
        let epoch = group.epoch().as_u64() - 1;
        let past = group
            .message_secrets_store
            .leaves_for_epoch(GroupEpoch::from(epoch));
        assert_eq!(past.len(), before.len());
        for member in &before {
            assert_eq!(past[&member.index], member);
        }
    }
}
