//! Chain facts as the engine takes them: the driver's decoding of the contracts' logs into
//! the engine's values ([`GroupFact`], [`Registration`]), so that nothing under
//! [`crate::engine`] knows the chain bindings.

use eth_mls_chain::GroupEvent;
use eth_mls_chain::bindings::MlsGroup::CommitRegistered;

use crate::engine::verdict::{GroupFact, Policy, Registration};

/// The engine's view of one group contract event.
pub fn group_fact(event: &GroupEvent) -> GroupFact {
    match event {
        GroupEvent::GroupInitialized(e) => GroupFact::Initialized {
            owner: e.owner,
            policy: if e.commitPolicy == 1 {
                Policy::AnyMember
            } else {
                Policy::AdminsOnly
            },
        },
        GroupEvent::MemberAdded(e) => GroupFact::MemberAdded(e.member),
        GroupEvent::MemberRemoved(e) => GroupFact::MemberRemoved(e.member),
        GroupEvent::MemberLeft(e) => GroupFact::MemberLeft(e.member),
        GroupEvent::AdminChanged(e) => GroupFact::AdminChanged {
            member: e.member,
            is_admin: e.isAdmin,
        },
        GroupEvent::OwnershipTransferred(e) => GroupFact::OwnershipTransferred(e.newOwner),
        GroupEvent::CommitRegistered(_) => GroupFact::CommitRegistered,
        _ => GroupFact::Other,
    }
}

/// The registration of a `CommitRegistered` log mined in `block` at `timestamp`.
pub fn registration(e: &CommitRegistered, block: u64, timestamp: i64) -> Registration {
    Registration {
        epoch: e.epoch,
        registrant: e.committer,
        commit_hash: e.commitHash.0,
        epoch_authenticator_hash: e.epochAuthenticatorHash.0,
        added: e.added.clone(),
        key_packages: e.keyPackages.iter().map(|k| k.0).collect(),
        removed: e.removed.clone(),
        block,
        timestamp,
    }
}

/// A delivery cursor as the engine's records keep it.
pub fn saved_cursor(c: eth_mls_transport::Cursor) -> crate::engine::records::SavedCursor {
    crate::engine::records::SavedCursor {
        at: c.at,
        index: c.index,
    }
}

/// A cursor the engine's records kept, for the delivery service.
pub fn delivery_cursor(c: crate::engine::records::SavedCursor) -> eth_mls_transport::Cursor {
    eth_mls_transport::Cursor {
        at: c.at,
        index: c.index,
    }
}
