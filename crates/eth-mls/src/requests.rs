//! Members' requests to an admin (WIRE.md §6, the seed's "Updates in groups"): the admin's
//! verification of a [`ChangeRequest`] before it commits the proposal — the request is for
//! this group and epoch, comes from a member, and asks only what its sender may ask.

use eth_mls_core::{ProposalKind, ProposalSummary};
use eth_mls_siwe::Address;

use crate::Error;
use crate::verdict::Acl;
use crate::wire::{ChangeKind, ChangeRequest, GroupRef};

/// Checks `req`, received over the 1:1 channel from `peer`'s device, against the admin's
/// group (`group`, at `local_epoch`, with `acl` now) and the proposal it carries as
/// eth-mls-core processed it (`proposal`; `None` for a removal request without one):
///
/// 1. the request is for this group ([`Error::WrongGroup`]) and, when it carries a proposal,
///    for the admin's epoch ([`Error::StaleRequest`]: a proposal is only valid in its epoch; a
///    removal without one stands in any epoch);
/// 2. `peer` is a member ([`Error::NotMember`]);
/// 3. an update concerns the requester's own leaf, and its proposal is an Update sent by
///    `peer`; a removal removes the requester itself (a member leaves; removing others is an
///    admin's own decision), and its proposal, if any, is that Remove sent by `peer`
///    ([`Error::RequestNotAllowed`]).
pub fn check_change_request(
    req: &ChangeRequest,
    peer: Address,
    group: &GroupRef,
    local_epoch: u64,
    proposal: Option<&ProposalSummary>,
    acl: &Acl,
) -> Result<(), Error> {
    if req.group != *group {
        return Err(Error::WrongGroup);
    }
    if req.epoch != local_epoch && !req.proposal.is_empty() {
        return Err(Error::StaleRequest {
            request: req.epoch,
            local: local_epoch,
        });
    }
    if !acl.members.contains(&peer) {
        return Err(Error::NotMember { account: peer });
    }
    let target = Address::from(req.target);
    let allowed = match req.kind {
        ChangeKind::Update => {
            target == peer
                && proposal.is_some_and(|p| p.sender == peer && p.kind == ProposalKind::Update)
        }
        ChangeKind::Removal => {
            target == peer
                && proposal
                    .is_none_or(|p| p.sender == peer && p.kind == ProposalKind::Remove(target))
        }
    };
    if !allowed {
        return Err(Error::RequestNotAllowed);
    }
    Ok(())
}

/// Checks a forked member's re-add request (WIRE.md §6), received over the 1:1 channel from
/// `peer`'s device, before the admin commits the Remove of its old leaf and the Add of the
/// key package: the request is for this group ([`Error::WrongGroup`]), `peer` is in the ACL
/// ([`Error::NotMember`]), and the key package — validated by eth-mls-core, whose credential
/// names `key_package_account` — is `peer`'s own ([`Error::WrongAccount`]).
pub fn check_readd_request(
    req: &crate::wire::ReaddRequest,
    peer: Address,
    group: &GroupRef,
    key_package_account: Address,
    acl: &Acl,
) -> Result<(), Error> {
    if req.group != *group {
        return Err(Error::WrongGroup);
    }
    if !acl.members.contains(&peer) {
        return Err(Error::NotMember { account: peer });
    }
    if key_package_account != peer {
        return Err(Error::WrongAccount {
            expected: peer,
            found: key_package_account,
        });
    }
    Ok(())
}
