//! Clients of the group factory and of one group's contract.

use alloy::primitives::{Address, B256, Bytes};
use alloy::rpc::types::{Filter, TransactionReceipt};
use alloy::sol_types::SolEventInterface;
use futures_util::Stream;

use crate::bindings::{MlsGroup, MlsGroupFactory};
use crate::error::Contract;
use crate::events::{Cursor, Event, StreamConfig, log_stream, typed};
use crate::{Chain, Error};

/// Any event of a group contract (`MemberAdded`, `EpochRegistered`, ...).
pub type GroupEvent = MlsGroup::MlsGroupEvents;

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
    ) -> Result<(GroupContract, TransactionReceipt), Error> {
        let sender = self.chain.sender().ok_or(Error::NoSigner)?;
        let address = self.predict_group_address(sender, group_id).await?;
        let c = self.instance();
        let receipt = self
            .chain
            .transact(
                c.createGroup(Bytes::copy_from_slice(group_id), cipher_suite),
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
    /// Who registered it (the creator for epoch 0).
    pub committer: Address,
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

    /// Adds `member` (owner or admin only).
    pub async fn add_member(&self, member: Address) -> Result<TransactionReceipt, Error> {
        let c = self.instance();
        self.send(c.addMember(member)).await
    }

    /// Adds every account of `members` in one transaction.
    pub async fn add_members(&self, members: &[Address]) -> Result<TransactionReceipt, Error> {
        let c = self.instance();
        self.send(c.addMembers(members.to_vec())).await
    }

    /// Removes `member`, with its predecessor hint computed by the contract. A concurrent
    /// change of the list may make the hint stale: that is `WrongPredecessor`; retry.
    pub async fn remove_member(&self, member: Address) -> Result<TransactionReceipt, Error> {
        let prevs = self.removal_hints(&[member]).await?;
        let c = self.instance();
        self.send(c.removeMember(prevs[0], member)).await
    }

    /// Removes `member` with a predecessor you computed (`address(1)` for the list head).
    pub async fn remove_member_with_hint(
        &self,
        prev: Address,
        member: Address,
    ) -> Result<TransactionReceipt, Error> {
        let c = self.instance();
        self.send(c.removeMember(prev, member)).await
    }

    /// Removes `members` in one transaction (hints as for [`GroupContract::remove_member`]).
    pub async fn remove_members(&self, members: &[Address]) -> Result<TransactionReceipt, Error> {
        let prevs = self.removal_hints(members).await?;
        let c = self.instance();
        self.send(c.removeMembers(prevs, members.to_vec())).await
    }

    /// The sender leaves the group.
    pub async fn leave(&self) -> Result<TransactionReceipt, Error> {
        let sender = self.chain.sender().ok_or(Error::NoSigner)?;
        let prevs = self.removal_hints(&[sender]).await?;
        let c = self.instance();
        self.send(c.leave(prevs[0])).await
    }

    /// The predecessors to pass when removing `members` in that order.
    pub async fn removal_hints(&self, members: &[Address]) -> Result<Vec<Address>, Error> {
        let c = self.instance();
        Chain::view(c.removalHints(members.to_vec()), Contract::Group).await
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

    /// Records a key package hash as used (owner or admin only; once per group).
    pub async fn record_key_package(&self, hash: B256) -> Result<TransactionReceipt, Error> {
        let c = self.instance();
        self.send(c.recordKeyPackage(hash)).await
    }

    /// Registers the commit that starts `epoch` (current + 1; members only; first wins).
    pub async fn register_epoch(
        &self,
        epoch: u64,
        commit_hash: B256,
        epoch_authenticator_hash: B256,
    ) -> Result<TransactionReceipt, Error> {
        let c = self.instance();
        self.send(c.registerEpoch(epoch, commit_hash, epoch_authenticator_hash))
            .await
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

    /// The current members, newest first.
    pub async fn members(&self) -> Result<Vec<Address>, Error> {
        let c = self.instance();
        Chain::view(c.members(), Contract::Group).await
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
            committer: r.committer,
        })
    }

    /// Owner, group id, cipher suite and registry.
    pub async fn info(&self) -> Result<GroupInfo, Error> {
        let c = self.instance();
        let (owner, group_id, cipher_suite, registry) = tokio::try_join!(
            Chain::view(c.owner(), Contract::Group),
            Chain::view(c.groupId(), Contract::Group),
            Chain::view(c.cipherSuite(), Contract::Group),
            Chain::view(c.registry(), Contract::Group),
        )?;
        Ok(GroupInfo {
            owner,
            group_id: group_id.to_vec(),
            cipher_suite,
            registry,
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
