//! Discovery: the groups an account belongs to, found from the chain alone (a new device, a
//! restored backup) — the factory's `GroupCreated` events name every group of the
//! deployment, and the groups' `MemberAdded` / `MemberRemoved` / `MemberLeft` events for the
//! account say where it is a member now. Contracts that are not the factory's groups are never
//! looked at, so a look-alike contract emitting the same events cannot pose as a group.

use std::collections::BTreeMap;

use eth_mls_chain::alloy::primitives::Address;
use eth_mls_chain::alloy::providers::Provider;
use eth_mls_chain::alloy::rpc::types::Filter;
use eth_mls_chain::alloy::sol_types::SolEvent;
use eth_mls_chain::bindings::{MlsGroup, MlsGroupFactory};
use eth_mls_chain::{Chain, Error as ChainError};

/// Blocks per `eth_getLogs` call.
const RANGE: u64 = 2_000;

/// A group of the factory and the account's place in it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiscoveredGroup {
    /// The group contract.
    pub contract: Address,
    /// Its creator.
    pub creator: Address,
    /// The MLS group id.
    pub group_id: Vec<u8>,
    /// The block of its creation.
    pub created_at: u64,
    /// The block of the account's latest membership change in it.
    pub since: u64,
}

async fn logs(
    chain: &Chain,
    filter: &Filter,
    from: u64,
    to: u64,
) -> Result<Vec<eth_mls_chain::alloy::rpc::types::Log>, ChainError> {
    let mut out = Vec::new();
    let mut start = from;
    while start <= to {
        let end = to.min(start + RANGE - 1);
        let mut page = chain
            .provider()
            .get_logs(&filter.clone().from_block(start).to_block(end))
            .await?;
        out.append(&mut page);
        start = end + 1;
    }
    out.retain(|l| !l.removed);
    out.sort_by_key(|l| (l.block_number, l.log_index));
    Ok(out)
}

/// The groups of `factory` (created from `from_block` on) that `account` is a member of now.
pub async fn groups_of(
    chain: &Chain,
    factory: Address,
    account: Address,
    from_block: u64,
) -> Result<Vec<DiscoveredGroup>, ChainError> {
    let head = chain.provider().get_block_number().await?;
    let created = logs(
        chain,
        &Filter::new()
            .address(factory)
            .event_signature(MlsGroupFactory::GroupCreated::SIGNATURE_HASH),
        from_block,
        head,
    )
    .await?;
    let mut groups = BTreeMap::new();
    for log in &created {
        if let Ok(e) = log.log_decode::<MlsGroupFactory::GroupCreated>() {
            let e = e.inner.data;
            groups.insert(
                e.group,
                DiscoveredGroup {
                    contract: e.group,
                    creator: e.creator,
                    group_id: e.groupId.to_vec(),
                    created_at: log.block_number.unwrap_or_default(),
                    since: 0,
                },
            );
        }
    }
    if groups.is_empty() {
        return Ok(Vec::new());
    }
    let contracts: Vec<Address> = groups.keys().copied().collect();
    let changes = logs(
        chain,
        &Filter::new()
            .address(contracts)
            .event_signature(vec![
                MlsGroup::MemberAdded::SIGNATURE_HASH,
                MlsGroup::MemberRemoved::SIGNATURE_HASH,
                MlsGroup::MemberLeft::SIGNATURE_HASH,
            ])
            .topic1(account.into_word()),
        from_block,
        head,
    )
    .await?;
    // The latest change per group decides.
    let mut member: BTreeMap<Address, (bool, u64)> = BTreeMap::new();
    for log in &changes {
        let added = log.topic0() == Some(&MlsGroup::MemberAdded::SIGNATURE_HASH);
        member.insert(log.address(), (added, log.block_number.unwrap_or_default()));
    }
    Ok(groups
        .into_values()
        .filter_map(|mut g| match member.get(&g.contract) {
            Some((true, since)) => {
                g.since = *since;
                Some(g)
            }
            _ => None,
        })
        .collect())
}
