//! Clients of the group factory and of one group's contract.

use alloy::primitives::{Address, B256, Bytes};
use alloy::rpc::types::{Filter, TransactionReceipt};
use alloy::sol_types::SolEventInterface;
use futures_util::Stream;

use crate::bindings::{MlsGroup, MlsGroupFactory};
use crate::error::Contract;
use crate::events::{Cursor, Event, StreamConfig, log_stream, typed};
use crate::{Chain, Error};

/// Any event of a group contract (`MemberAdded`, `CommitRegistered`, ...).
pub type GroupEvent = MlsGroup::MlsGroupEvents;

/// Who may register commits in a group; fixed at creation (DESIGN.md decision 11).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CommitPolicy {
    /// Only the owner and admins (the default; members send requests to an admin).
    #[default]
    AdminsOnly,
    /// Any current member; commits that change the ACL still need the owner or an admin.
    AnyMember,
}

impl CommitPolicy {
    fn to_abi(self) -> u8 {
        match self {
            CommitPolicy::AdminsOnly => 0,
            CommitPolicy::AnyMember => 1,
        }
    }

    fn from_abi(value: u8) -> Result<Self, Error> {
        match value {
            0 => Ok(CommitPolicy::AdminsOnly),
            1 => Ok(CommitPolicy::AnyMember),
            other => Err(Error::UnexpectedValue(format!("commit policy {other}"))),
        }
    }
}

/// The ACL changes a commit makes: the accounts it adds with the hash of each one's key
/// package (same order), and the accounts it removes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AclChanges {
    /// Accounts added (the commit's Add proposals).
    pub added: Vec<Address>,
    /// The key package hash of each added account.
    pub key_packages: Vec<B256>,
    /// Accounts removed (the commit's Remove proposals).
    pub removed: Vec<Address>,
}

impl AclChanges {
    /// No ACL change (an update-only commit).
    pub fn none() -> Self {
        Self::default()
    }

    fn to_abi(&self) -> MlsGroup::AclChanges {
        MlsGroup::AclChanges {
            added: self.added.clone(),
            keyPackages: self.key_packages.clone(),
            removed: self.removed.clone(),
        }
    }
}

/// Client of the `MlsGroupFactory`.
#[derive(Clone, Debug)]
pub struct GroupFactory {
    chain: Chain,
    address: Address,
}

impl GroupFactory {
    pub(crate) fn new(chain: Chain, address: Address) -> Self {
        Self { chain, address }
    }

    /// The factory address.
    pub fn address(&self) -> Address {
        self.address
    }

    fn instance(&self) -> MlsGroupFactory::MlsGroupFactoryInstance<alloy::providers::DynProvider> {
        MlsGroupFactory::new(self.address, self.chain.provider().clone())
    }

    /// Creates a group owned by the sender; returns its contract and the receipt.
    pub async fn create_group(
        &self,
        group_id: &[u8],
        cipher_suite: u16,
        policy: CommitPolicy,
    ) -> Result<(GroupContract, TransactionReceipt), Error> {
        let sender = self.chain.sender().ok_or(Error::NoSigner)?;
        let address = self.predict_group_address(sender, group_id).await?;
        let c = self.instance();
        let receipt = self
            .chain
            .transact(
                c.createGroup(
                    Bytes::copy_from_slice(group_id),
                    cipher_suite,
                    policy.to_abi(),
                ),
                Contract::Factory,
            )
            .await?;
        Ok((self.chain.group(address), receipt))
    }

    /// The address `creator`'s group `group_id` has (or will have).
    pub async fn predict_group_address(
        &self,
        creator: Address,
        group_id: &[u8],
    ) -> Result<Address, Error> {
        let c = self.instance();
        Chain::view(
            c.predictGroupAddress(creator, Bytes::copy_from_slice(group_id)),
            Contract::Factory,
        )
        .await
    }

    /// Checks that `contract` is the group `creator` created through this factory for
    /// `group_id` (DESIGN.md decision 13): it is `predictGroupAddress(creator, groupId)`, it
    /// has code, and it holds that group id. A look-alike contract fails with
    /// [`Error::NotFactoryGroup`].
    pub async fn check_group(
        &self,
        contract: Address,
        creator: Address,
        group_id: &[u8],
    ) -> Result<GroupContract, Error> {
        let not_ours = |why: &str| Error::NotFactoryGroup {
            contract,
            reason: why.to_owned(),
        };
        let group = self.chain.group(contract);
        // Both reads at once: one round trip to the node.
        let (predicted, info) =
            tokio::join!(self.predict_group_address(creator, group_id), group.info());
        if predicted? != contract {
            return Err(not_ours(
                "not the factory's address for this creator and group id",
            ));
        }
        let info = info.map_err(|e| match e {
            Error::Rpc(e) => Error::Rpc(e),
            _ => not_ours("no group contract there"),
        })?;
        if info.group_id != group_id {
            return Err(not_ours("it holds another group id"));
        }
        Ok(group)
    }

    /// The groups `creator` created, oldest first.
    pub async fn groups_created_by(&self, creator: Address) -> Result<Vec<Address>, Error> {
        let c = self.instance();
        Chain::view(c.groupsCreatedBy(creator), Contract::Factory).await
    }

    /// The `MlsGroup` implementation the groups delegate to.
    pub async fn implementation(&self) -> Result<Address, Error> {
        let c = self.instance();
        Chain::view(c.implementation(), Contract::Factory).await
    }

    /// The ERC-7627 registry handed to every group.
    pub async fn registry(&self) -> Result<Address, Error> {
        let c = self.instance();
        Chain::view(c.registry(), Contract::Factory).await
    }
}

/// A group's on-chain metadata.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupInfo {
    /// The owner (creator, unless transferred).
    pub owner: Address,
    /// The MLS group id.
    pub group_id: Vec<u8>,
    /// The MLS cipher suite.
    pub cipher_suite: u16,
    /// The ERC-7627 registry.
    pub registry: Address,
    /// Who may register commits.
    pub commit_policy: CommitPolicy,
}

/// The current epoch and its registered commitment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EpochInfo {
    /// The epoch.
    pub epoch: u64,
    /// Hash of the commit that started it (zero for epoch 0).
    pub commit_hash: B256,
    /// Hash of its epoch authenticator (zero for epoch 0).
    pub epoch_authenticator_hash: B256,
}

/// Client of one group's `MlsGroup` contract.
#[derive(Clone, Debug)]
pub struct GroupContract {
    chain: Chain,
    address: Address,
}

impl GroupContract {
    pub(crate) fn new(chain: Chain, address: Address) -> Self {
        Self { chain, address }
    }

    /// The contract address.
    pub fn address(&self) -> Address {
        self.address
    }

    fn instance(&self) -> MlsGroup::MlsGroupInstance<alloy::providers::DynProvider> {
        MlsGroup::new(self.address, self.chain.provider().clone())
    }

    async fn send<D: alloy::contract::CallDecoder + Clone>(
        &self,
        call: alloy::contract::CallBuilder<&alloy::providers::DynProvider, D>,
    ) -> Result<TransactionReceipt, Error> {
        self.chain.transact(call, Contract::Group).await
    }

    /// Registers `commit` (the MLS commit message) as the one that starts `epoch` (current +
    /// 1; first wins) and applies its ACL changes in the same transaction. Who may: see
    /// [`CommitPolicy`]; ACL changes need the owner or an admin.
    pub async fn commit(
        &self,
        epoch: u64,
        commit: &[u8],
        epoch_authenticator_hash: B256,
        changes: &AclChanges,
    ) -> Result<TransactionReceipt, Error> {
        let c = self.instance();
        self.send(c.commit(
            epoch,
            Bytes::copy_from_slice(commit),
            epoch_authenticator_hash,
            changes.added.clone(),
            changes.key_packages.clone(),
            changes.removed.clone(),
        ))
        .await
    }

    /// Owner only: drops the commits of `epoch` up to the current one and registers `commit`
    /// for `epoch` instead. `undo` names the ACL changes of every dropped commit that changed
    /// the ACL, newest first (each one's `removed` = the removals that took effect); empty
    /// when none did. At most the last 16 ACL-changing commits can be undone
    /// ([`GroupContract::replaceable_from`]); under `AnyMember`, only admins commit for a
    /// while afterwards ([`GroupContract::admins_only_until`]). See the contract's
    /// documentation for what members do.
    pub async fn replace_head(
        &self,
        epoch: u64,
        undo: &[AclChanges],
        commit: &[u8],
        epoch_authenticator_hash: B256,
        changes: &AclChanges,
    ) -> Result<TransactionReceipt, Error> {
        let c = self.instance();
        self.send(c.replaceHead(
            epoch,
            undo.iter().map(AclChanges::to_abi).collect(),
            Bytes::copy_from_slice(commit),
            epoch_authenticator_hash,
            changes.to_abi(),
        ))
        .await
    }

    /// The oldest epoch [`GroupContract::replace_head`] can replace now.
    pub async fn replaceable_from(&self) -> Result<u64, Error> {
        let c = self.instance();
        Chain::view(c.replaceableFrom(), Contract::Group).await
    }

    /// Under `AnyMember`: the last block of the window after a head replacement in which only
    /// the owner and admins may commit (0 when there was none).
    pub async fn admins_only_until(&self) -> Result<u64, Error> {
        let c = self.instance();
        Chain::view(c.adminsOnlyUntil(), Contract::Group).await
    }

    /// Registers (or replaces) the group's delivery key in the ERC-7627 registry (owner or
    /// admin): a 56-byte X448 public key of the group. Afterwards ERC-7627 `sendMessage` to
    /// the group contract at [`crate::key_index::group_delivery`] succeeds, which is what the
    /// [`crate::ChainChannel`] uses for the group's topics.
    pub async fn set_delivery_key(&self, x448_key: &[u8]) -> Result<TransactionReceipt, Error> {
        let c = self.instance();
        self.send(c.setDeliveryKey(alloy::primitives::Bytes::copy_from_slice(x448_key)))
            .await
    }

    /// The sender leaves the group (the ACL; an admin's commit removes the MLS leaf).
    pub async fn leave(&self) -> Result<TransactionReceipt, Error> {
        let c = self.instance();
        self.send(c.leave()).await
    }

    /// Appoints (`true`) or dismisses an admin (owner only).
    pub async fn set_admin(
        &self,
        member: Address,
        admin: bool,
    ) -> Result<TransactionReceipt, Error> {
        let c = self.instance();
        self.send(c.setAdmin(member, admin)).await
    }

    /// Hands ownership to a member (owner only).
    pub async fn transfer_ownership(
        &self,
        new_owner: Address,
    ) -> Result<TransactionReceipt, Error> {
        let c = self.instance();
        self.send(c.transferOwnership(new_owner)).await
    }

    /// Whether `account` may register commits now.
    pub async fn can_commit(&self, account: Address) -> Result<bool, Error> {
        let c = self.instance();
        Chain::view(c.canCommit(account), Contract::Group).await
    }

    /// The newest epoch whose commit changed the ACL and can still be undone (or the last one
    /// that can no longer be; 0 when none did).
    pub async fn last_acl_change_epoch(&self) -> Result<u64, Error> {
        let c = self.instance();
        Chain::view(c.lastAclChangeEpoch(), Contract::Group).await
    }

    /// Whether `account` is a current member.
    pub async fn is_member(&self, account: Address) -> Result<bool, Error> {
        let c = self.instance();
        Chain::view(c.isMember(account), Contract::Group).await
    }

    /// Whether `account` is the owner or an admin.
    pub async fn is_admin(&self, account: Address) -> Result<bool, Error> {
        let c = self.instance();
        Chain::view(c.isAdmin(account), Contract::Group).await
    }

    /// Whether `account` was removed (or left) and not re-added.
    pub async fn was_removed(&self, account: Address) -> Result<bool, Error> {
        let c = self.instance();
        Chain::view(c.wasRemoved(account), Contract::Group).await
    }

    /// One page of the current members, newest first: up to `limit` members from `cursor`
    /// (`None` for the first page) and the next page's cursor (`None` after the last).
    pub async fn members_page(
        &self,
        cursor: Option<Address>,
        limit: u64,
    ) -> Result<(Vec<Address>, Option<Address>), Error> {
        let c = self.instance();
        let r = Chain::view(
            c.members(
                cursor.unwrap_or(Address::ZERO),
                alloy::primitives::U256::from(limit),
            ),
            Contract::Group,
        )
        .await?;
        Ok((r.page, (r.next != Address::ZERO).then_some(r.next)))
    }

    /// Every current member, newest first (page by page, 500 at a time).
    pub async fn members(&self) -> Result<Vec<Address>, Error> {
        let mut all = Vec::new();
        let mut cursor = None;
        loop {
            let (page, next) = self.members_page(cursor, 500).await?;
            all.extend(page);
            match next {
                Some(n) => cursor = Some(n),
                None => return Ok(all),
            }
        }
    }

    /// Number of current members.
    pub async fn member_count(&self) -> Result<u64, Error> {
        let c = self.instance();
        let n = Chain::view(c.memberCount(), Contract::Group).await?;
        u64::try_from(n).map_err(|_| Error::UnexpectedValue(format!("member count {n}")))
    }

    /// Whether a key package hash was recorded.
    pub async fn is_key_package_used(&self, hash: B256) -> Result<bool, Error> {
        let c = self.instance();
        Chain::view(c.isKeyPackageUsed(hash), Contract::Group).await
    }

    /// The current epoch and its commitment.
    pub async fn current_epoch(&self) -> Result<EpochInfo, Error> {
        let c = self.instance();
        let r = Chain::view(c.currentEpoch(), Contract::Group).await?;
        Ok(EpochInfo {
            epoch: r.epoch,
            commit_hash: r.commitHash,
            epoch_authenticator_hash: r.epochAuthenticatorHash,
        })
    }

    /// Owner, group id, cipher suite, registry and commit policy.
    pub async fn info(&self) -> Result<GroupInfo, Error> {
        let c = self.instance();
        let (owner, group_id, cipher_suite, registry, policy) = tokio::try_join!(
            Chain::view(c.owner(), Contract::Group),
            Chain::view(c.groupId(), Contract::Group),
            Chain::view(c.cipherSuite(), Contract::Group),
            Chain::view(c.registry(), Contract::Group),
            Chain::view(c.commitPolicy(), Contract::Group),
        )?;
        Ok(GroupInfo {
            owner,
            group_id: group_id.to_vec(),
            cipher_suite,
            registry,
            commit_policy: CommitPolicy::from_abi(policy)?,
        })
    }

    /// Every event of this group from `start` on.
    pub fn events(
        &self,
        start: Cursor,
        cfg: StreamConfig,
    ) -> impl Stream<Item = Result<Event<GroupEvent>, Error>> + Send + use<> {
        let filter = Filter::new().address(self.address);
        typed(
            log_stream(self.chain.provider().clone(), filter, start, cfg),
            |log| {
                GroupEvent::decode_log(&log.inner)
                    .map(|l| l.data)
                    .map_err(|e| e.to_string())
            },
        )
    }
}
