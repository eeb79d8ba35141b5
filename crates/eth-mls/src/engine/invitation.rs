//! An invitation request judged against the chain facts read for it (security review M5,
//! M8): the driver reads them (`crate::invitation::check_request`), the engine decides.

use eth_mls_siwe::Address;

use crate::Error;
use crate::wire::InvitationRequest;

/// What the chain says about the group a request names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestFacts {
    /// The group's creator, when the factory made the named contract for the named group id
    /// (read from the contract's owner, or from the factory's `GroupCreated` log when
    /// ownership moved); `None` when it did not.
    pub creator: Option<Address>,
    /// Whether the inviter is the group's owner or an admin now.
    pub inviter_is_admin: bool,
}

/// The checks that need no chain read: the request is for this chain and names the trusted
/// factory. Run before anything is read for it.
pub fn precheck(
    req: &InvitationRequest,
    chain_id: u64,
    trusted_factory: Address,
) -> Result<(), Error> {
    if req.group.chain_id != chain_id {
        return Err(Error::WrongChain {
            expected: chain_id,
            found: req.group.chain_id,
        });
    }
    if Address::from(req.group.factory) != trusted_factory {
        return Err(Error::UntrustedFactory);
    }
    Ok(())
}

/// The verdict on a request given its [`RequestFacts`]: the group's creator, or why the
/// request is refused.
pub fn judge(req: &InvitationRequest, facts: &RequestFacts) -> Result<Address, Error> {
    let creator = facts.creator.ok_or(Error::NotFactoryGroup)?;
    if !facts.inviter_is_admin {
        return Err(Error::InviterNotAdmin {
            inviter: Address::from(req.inviter),
            group: Address::from(req.group.group_contract),
        });
    }
    Ok(creator)
}
