//! Catching up on commits from the chain (decision 11: the registering transaction carries the
//! commit's bytes, so the chain alone brings a member that was offline for many epochs to the
//! group's current epoch). Every registration is judged with the chain-checked merge at its own
//! block (decision 12), exactly as if it had arrived live.

use eth_mls_chain::alloy::primitives::Address;
use eth_mls_chain::alloy::providers::Provider;
use eth_mls_chain::alloy::rpc::types::Filter;
use eth_mls_chain::{Chain, GroupEvent};
use eth_mls_core::{Checks, Group, Store};
use eth_mls_crypto::Backend;

use crate::Error;
use crate::verdict::{AclMirror, Policy, Registration, check_commit, check_epoch_authenticator};

/// What [`catch_up`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaughtUp {
    /// The epoch before.
    pub from_epoch: u64,
    /// The epoch after (the chain's head epoch when nothing failed).
    pub to_epoch: u64,
    /// The last block read: the next call can start after it.
    pub to_block: u64,
}

/// Brings `group` from its epoch to the chain's: reads the group contract's events from
/// `from_block` (its creation, or where a previous call stopped, as long as the ACL mirror
/// can be rebuilt: pass the creation block) to the head, and processes, judges and merges
/// every registered commit after the local epoch in order. A commit that fails the verdict,
/// or a replaced head the member had merged, is an error naming the epoch: the member has
/// forked and asks an admin to re-add it.
pub async fn catch_up<B: Backend>(
    chain: &Chain,
    contract: Address,
    from_block: u64,
    group: &mut Group,
    store: &mut Store<B>,
    policy: Policy,
) -> Result<CaughtUp, Error> {
    let from_epoch = group.epoch();
    let head = chain
        .provider()
        .get_block_number()
        .await
        .map_err(|e| Error::Chain(e.to_string()))?;
    let mut mirror = AclMirror::new();
    for (_, event, block, tx) in group_logs(chain, &[contract], from_block, head).await? {
        let acl = mirror.apply(&crate::facts::group_fact(&event), tx);
        match (&event, acl) {
            (GroupEvent::HeadReplaced(e), _) if e.epoch <= group.epoch() => {
                return Err(Error::Forked {
                    epoch: e.epoch,
                    reason: "the owner replaced a head this member had merged".into(),
                });
            }
            (GroupEvent::CommitRegistered(e), Some(acl)) if e.epoch == group.epoch() + 1 => {
                let reg = crate::facts::registration(e, block, block_time(chain, block).await?);
                merge_registered(chain, group, store, &e.commit, &reg, policy, &acl).await?;
            }
            _ => {}
        }
    }
    Ok(CaughtUp {
        from_epoch,
        to_epoch: group.epoch(),
        to_block: head,
    })
}

/// The contract events of the groups at `contracts` from block `from` to `to`, in chain order,
/// with their contracts, blocks and transactions: one ranged `eth_getLogs` for all of them
/// ([`Chain::logs`]: ranges narrowed when the provider refuses them).
pub(crate) async fn group_logs(
    chain: &Chain,
    contracts: &[Address],
    from: u64,
    to: u64,
) -> Result<Vec<(Address, GroupEvent, u64, Option<[u8; 32]>)>, Error> {
    let logs = chain
        .logs(&Filter::new().address(contracts.to_vec()), from, to)
        .await
        .map_err(|e| Error::Chain(e.to_string()))?;
    Ok(logs
        .into_iter()
        .filter_map(|log| {
            let event = eth_mls_chain::alloy::sol_types::SolEventInterface::decode_log(&log.inner)
                .map(|l: eth_mls_chain::alloy::primitives::Log<GroupEvent>| l.data)
                .ok()?;
            Some((
                log.address(),
                event,
                log.block_number.unwrap_or_default(),
                log.transaction_hash.map(|h| h.0),
            ))
        })
        .collect())
}

/// The timestamp of `block`.
pub(crate) async fn block_time(chain: &Chain, block: u64) -> Result<i64, Error> {
    let header = chain
        .provider()
        .get_block_by_number(block.into())
        .await
        .map_err(|e| Error::Chain(e.to_string()))?
        .ok_or_else(|| Error::Chain(format!("block {block} not found")))?;
    Ok(header.header.timestamp as i64)
}

/// Processes a registered commit at its block's time, judges it, and merges it (or discards
/// it and reports the fork).
async fn merge_registered<B: Backend>(
    chain: &Chain,
    group: &mut Group,
    store: &mut Store<B>,
    commit: &[u8],
    reg: &Registration,
    policy: Policy,
    acl: &crate::verdict::Acl,
) -> Result<(), Error> {
    let epoch = group.epoch();
    let forked = |reason: String| Error::Forked {
        epoch: reg.epoch,
        reason,
    };
    take_in_carried(group, store, commit, &Checks::at(reg.timestamp)).await?;
    group
        .process(store, commit, &Checks::at(reg.timestamp))
        .await
        .map_err(|e| forked(e.to_string()))?;
    let staged = group
        .staged_commit()
        .map_err(|e| forked(e.to_string()))?
        .ok_or_else(|| forked("the commit staged nothing".into()))?;
    let mut verdict = check_commit(epoch, commit, reg, &staged, policy, acl);
    if verdict.is_ok() {
        let binding = group
            .binding()
            .ok_or_else(|| forked("the group has no chain binding".into()))?;
        let v = eth_mls_chain::RpcErc1271Verifier::new()
            .with_chain(chain)
            .at_block(reg.block);
        verdict =
            crate::invitation::check_consents(commit, reg, &staged, acl, &binding, Some(&v)).await;
    }
    if let Err(e) = verdict {
        group
            .discard_staged_commit(store)
            .map_err(|e| forked(e.to_string()))?;
        return Err(e);
    }
    group
        .merge_staged_commit(store)
        .map_err(|e| forked(e.to_string()))?;
    check_epoch_authenticator(reg, &group.epoch_authenticator())
}

/// Takes in the proposals a commit carries in its authenticated data (WIRE.md §4.2) before
/// the commit is processed, so a member that never saw them (offline when they were sent, or
/// reading the chain only) can process a commit that refers to them (security review M4).
/// Only Update proposals of the current epoch are kept in the group's proposal store; any
/// other type is dropped again (review H1: only what our flows commit is taken in). A
/// proposal that does not process (this member's own, one taken in before, one of another
/// epoch) is skipped: the commit's own processing decides. [`Error::Erc1271Unavailable`]
/// when a credential check could not be made (retry).
pub async fn take_in_carried<B: Backend>(
    group: &mut Group,
    store: &mut Store<B>,
    commit: &[u8],
    checks: &Checks<'_>,
) -> Result<(), Error> {
    let Ok(aad) = eth_mls_core::authenticated_data(commit) else {
        return Ok(());
    };
    let Ok(data) = crate::wire::decode_commit_data(&aad) else {
        return Ok(());
    };
    for proposal in data.proposals {
        match group.process(store, &proposal, checks).await {
            Ok(processed) => {
                for e in processed.into_events() {
                    if let eth_mls_core::Event::Proposal(p) = e
                        && p.kind != eth_mls_core::ProposalKind::Update
                    {
                        group
                            .forget_proposal(store, &p.reference)
                            .map_err(|e| Error::Core(e.to_string()))?;
                    }
                }
            }
            Err(eth_mls_core::Error::CheckUnavailable(e)) => {
                return Err(Error::Erc1271Unavailable(e));
            }
            Err(_) => {}
        }
    }
    Ok(())
}
