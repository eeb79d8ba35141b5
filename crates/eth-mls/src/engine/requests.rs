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
/// ([`Error::NotMember`]), the key package — validated by eth-mls-core, whose credential
/// names `key_package_account` — is `peer`'s own ([`Error::WrongAccount`]), and `peer` is
/// provably stuck at the epoch it names (security review L10; [`Error::NotStale`]): that
/// epoch is behind the admin's `local_epoch`, and nothing `peer` authored that the admin saw
/// (a message, a commit, an update, its own join: `last_active`, the latest such epoch) is
/// of a later epoch.
pub fn check_readd_request(
    req: &crate::wire::ReaddRequest,
    peer: Address,
    group: &GroupRef,
    key_package_account: Address,
    acl: &Acl,
    local_epoch: u64,
    last_active: Option<u64>,
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
    if req.last_epoch >= local_epoch || last_active.is_some_and(|e| e > req.last_epoch) {
        return Err(Error::NotStale {
            account: peer,
            epoch: req.last_epoch,
        });
    }
    Ok(())
}

/// Whether a request of a member whose last request was granted at `last_granted` (Unix
/// seconds) may be granted at `now`, at most one per `interval` (security review L10: each
/// granted request is a commit and a transaction the admin pays for).
pub fn within_rate(last_granted: Option<u64>, now: u64, interval: u64) -> bool {
    last_granted.is_none_or(|t| now >= t.saturating_add(interval))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::ReaddRequest;

    const PEER: Address = Address::repeat_byte(0xbb);

    fn setup() -> (ReaddRequest, GroupRef, Acl) {
        let group = GroupRef {
            chain_id: 1,
            factory: [1; 20],
            group_contract: [2; 20],
        };
        let req = ReaddRequest {
            request_id: [0; 16],
            group,
            last_epoch: 4,
            key_package: Vec::new(),
        };
        let mut acl = Acl::default();
        acl.members.insert(PEER);
        (req, group, acl)
    }

    #[test]
    fn a_readd_is_granted_only_to_a_member_provably_stuck() {
        let (req, group, acl) = setup();
        // Stuck at 4, the group at 6, last seen at 4: granted.
        assert_eq!(
            check_readd_request(&req, PEER, &group, PEER, &acl, 6, Some(4)),
            Ok(())
        );
        assert_eq!(
            check_readd_request(&req, PEER, &group, PEER, &acl, 6, None),
            Ok(())
        );
        // Seen at 5 (a message, a commit): not stuck at 4.
        assert!(matches!(
            check_readd_request(&req, PEER, &group, PEER, &acl, 6, Some(5)),
            Err(Error::NotStale { .. })
        ));
        // The group is at 4 itself: nothing to be stuck behind.
        assert!(matches!(
            check_readd_request(&req, PEER, &group, PEER, &acl, 4, None),
            Err(Error::NotStale { .. })
        ));
        // Someone else's key package, a non-member, another group.
        assert!(matches!(
            check_readd_request(&req, PEER, &group, Address::ZERO, &acl, 6, None),
            Err(Error::WrongAccount { .. })
        ));
        assert!(matches!(
            check_readd_request(&req, Address::ZERO, &group, Address::ZERO, &acl, 6, None),
            Err(Error::NotMember { .. })
        ));
        let other = GroupRef {
            chain_id: 2,
            ..group
        };
        assert_eq!(
            check_readd_request(&req, PEER, &other, PEER, &acl, 6, None),
            Err(Error::WrongGroup)
        );
    }

    #[test]
    fn requests_are_granted_at_most_once_per_interval() {
        assert!(within_rate(None, 100, 3600));
        assert!(!within_rate(Some(100), 100, 3600));
        assert!(!within_rate(Some(100), 3699, 3600));
        assert!(within_rate(Some(100), 3700, 3600));
        assert!(within_rate(Some(100), 100, 0));
    }
}
