//! A client's store read without the network: the groups it follows, their members, epochs
//! and ACLs as last read, the messages kept and the invitations received. What `ethmls read`,
//! `group list`, `group members` and `group requests` show: local questions get local
//! answers, with no RPC endpoint, relay or gossip peer involved (and none needed).

use std::collections::BTreeMap;
use std::path::Path;

use eth_mls_core::{Group, Store, StoreKey};
use eth_mls_siwe::Address;

use crate::Error;
use crate::cursor::{ChainState, Stalled};
use crate::records::{self, ReceivedInvitation, StoredMessage};
use crate::verdict::Acl;

/// One followed group as the store has it.
struct Followed {
    group: Group,
    chain: Option<ChainState>,
}

/// A read-only view of an account's store (see the module docs). It holds the store's lock
/// while it lives, as a [`crate::Client`] does: one process per store.
pub struct LocalView {
    store: Store,
    groups: BTreeMap<Address, Followed>,
    _lock: std::fs::File,
}

impl std::fmt::Debug for LocalView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalView")
            .field("address", &self.address())
            .field("groups", &self.groups.len())
            .finish()
    }
}

impl LocalView {
    /// Opens the store at `path` with `key` for `account`. [`Error::WrongAccount`] when the
    /// store belongs to another account; [`Error::StoreInUse`] while another process has it.
    pub fn open(path: impl AsRef<Path>, key: &StoreKey, account: Address) -> Result<Self, Error> {
        let path = path.as_ref();
        let lock = crate::client::lock_store(path)?;
        let store = Store::open(path, key).map_err(|e| Error::Core(e.to_string()))?;
        if store.identity().address() != account {
            return Err(Error::WrongAccount {
                expected: account,
                found: store.identity().address(),
            });
        }
        let mut groups = BTreeMap::new();
        for (contract, record) in records::groups(&store)? {
            // Deleted after a fork (re-add pending) or a removal: not followed, as in the client.
            let Ok(group) = Group::load(&store, &record.group_id) else {
                continue;
            };
            let chain = crate::cursor::load(&store, contract)?;
            groups.insert(contract, Followed { group, chain });
        }
        Ok(Self {
            store,
            groups,
            _lock: lock,
        })
    }

    /// The account.
    pub fn address(&self) -> Address {
        self.store.identity().address()
    }

    /// The groups followed, by contract.
    pub fn groups(&self) -> Vec<Address> {
        self.groups.keys().copied().collect()
    }

    fn followed(&self, group: Address) -> Result<&Followed, Error> {
        self.groups.get(&group).ok_or(Error::UnknownGroup { group })
    }

    /// The local epoch of `group`.
    pub fn epoch(&self, group: Address) -> Result<u64, Error> {
        Ok(self.followed(group)?.group.epoch())
    }

    /// The members of `group` (their accounts, by leaf) at the local epoch.
    pub fn members(&self, group: Address) -> Result<Vec<Address>, Error> {
        Ok(self.followed(group)?.group.members())
    }

    /// Whether this account is still a member of `group`.
    pub fn is_active(&self, group: Address) -> bool {
        self.groups.get(&group).is_some_and(|f| f.group.is_active())
    }

    /// The group's ACL as last read from the chain (empty before the first read).
    pub fn acl(&self, group: Address) -> Result<Acl, Error> {
        Ok(self
            .followed(group)?
            .chain
            .as_ref()
            .map(|c| c.mirror.acl().clone())
            .unwrap_or_default())
    }

    /// Where the group is stalled, if it is (as last read).
    pub fn stalled(&self, group: Address) -> Result<Option<Stalled>, Error> {
        Ok(self
            .followed(group)?
            .chain
            .as_ref()
            .and_then(|c| c.stalled.clone()))
    }

    /// The messages of `group` kept, oldest first ([`Error::UnknownGroup`] for a group this
    /// account never followed).
    pub fn messages(&self, group: Address) -> Result<Vec<StoredMessage>, Error> {
        let known = self.groups.contains_key(&group)
            || records::groups(&self.store)?
                .iter()
                .any(|(contract, _)| *contract == group);
        if !known {
            return Err(Error::UnknownGroup { group });
        }
        records::messages(&self.store, group)
    }

    /// The invitations received and not answered.
    pub fn invitations(&self) -> Result<Vec<ReceivedInvitation>, Error> {
        Ok(records::all_received(&self.store)?
            .into_iter()
            .filter(|i| !i.answered)
            .collect())
    }
}
