//! Steps 3 and 4 of an invitation (WIRE.md §4): the invitee's signed consent — a Sign-In with
//! Ethereum message that names the group and the hash of the key package it comes with — and
//! the inviter's verification of it.

use alloy_primitives::keccak256;
use eth_mls_siwe::{
    Address, Erc1271Verifier, Message, TimeStamp, VerificationError, VerificationOpts,
};

use crate::Error;
use crate::wire::{InvitationRequest, InvitationResponse};

/// The SIWE domain of a consent.
pub const CONSENT_DOMAIN: &str = "eth-mls";
/// How far in the future a consent's issued-at may be (clock skew), seconds.
pub const MAX_CLOCK_SKEW: i64 = 300;

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// `keccak256` of a key package's bytes: what the group contract records and the consent names.
pub fn key_package_hash(key_package: &[u8]) -> [u8; 32] {
    keccak256(key_package).0
}

fn statement(req: &InvitationRequest) -> String {
    group_statement(&req.group)
}

fn group_statement(group: &crate::wire::GroupRef) -> String {
    format!(
        "Join the eth-mls group 0x{} on chain {}.",
        hex(&group.group_contract),
        group.chain_id
    )
}

fn group_resource(group: &crate::wire::GroupRef) -> String {
    format!(
        "eth-mls:group:{}:0x{}:0x{}",
        group.chain_id,
        hex(&group.factory),
        hex(&group.group_contract)
    )
}

fn key_package_resource(hash: &[u8; 32]) -> String {
    format!("eth-mls:key-package:0x{}", hex(hash))
}

fn uri(req: &InvitationRequest) -> String {
    format!("eth-mls:invitation:{}", hex(&req.request_id))
}

fn resources(req: &InvitationRequest, key_package: &[u8]) -> [String; 2] {
    [
        group_resource(&req.group),
        key_package_resource(&key_package_hash(key_package)),
    ]
}

/// The consent the invitee's account signs (EIP-191 `personal_sign` of its text, or its
/// ERC-1271 equivalent), for `req`, the key package it answers with, at `issued_at`.
pub fn consent_message(
    req: &InvitationRequest,
    invitee: Address,
    key_package: &[u8],
    issued_at: i64,
) -> Result<Message, Error> {
    let expiry = i64::try_from(req.expiry).map_err(|_| Error::WrongExpiry)?;
    let mut b = Message::builder(CONSENT_DOMAIN, invitee, &uri(req), req.group.chain_id)
        .statement(&statement(req))
        .nonce(&hex(&req.request_id))
        .issued_at(TimeStamp::from_unix(issued_at))
        .expiration_time(TimeStamp::from_unix(expiry));
    for r in resources(req, key_package) {
        b = b.resource(&r);
    }
    b.build().map_err(|e| Error::BadSiwe(e.to_string()))
}

/// What a verified consent establishes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedConsent {
    /// The invitee's account.
    pub invitee: Address,
    /// `keccak256` of the key package (to record in the group contract).
    pub key_package_hash: [u8; 32],
}

/// Step 4: verifies `resp` as the answer of `invitee` to `req` at `now` (unix seconds), in
/// WIRE.md §4's order. `invitee` is the account invited, which must also be the account of the
/// channel peer that delivered the response. The key package itself is checked by the
/// caller (eth-mls-core) afterwards. An unreachable chain for ERC-1271 is
/// [`Error::Erc1271Unavailable`] (retry), never a rejection.
pub async fn verify_response(
    req: &InvitationRequest,
    invitee: Address,
    resp: &InvitationResponse,
    now: i64,
    erc1271: Option<&dyn Erc1271Verifier>,
) -> Result<VerifiedConsent, Error> {
    if resp.request_id != req.request_id {
        return Err(Error::UnknownRequest);
    }
    let msg: Message = resp
        .siwe_message
        .parse()
        .map_err(|e: eth_mls_siwe::ParseError| Error::BadSiwe(e.to_string()))?;
    if msg.address() != invitee {
        return Err(Error::WrongAccount {
            expected: invitee,
            found: msg.address(),
        });
    }
    let want_resources = resources(req, &resp.key_package);
    let group_fields = msg.domain() == CONSENT_DOMAIN
        && msg.scheme().is_none()
        && msg.chain_id() == req.group.chain_id
        && msg.nonce() == hex(&req.request_id)
        && msg.uri() == uri(req)
        && msg.statement() == Some(statement(req).as_str())
        && msg.resources().len() == 2
        && msg.resources()[0] == want_resources[0]
        && msg.not_before().is_none()
        && msg.request_id().is_none();
    if !group_fields {
        return Err(Error::WrongGroup);
    }
    if msg.resources()[1] != want_resources[1] {
        return Err(Error::KeyPackageMismatch);
    }
    let expiry = i64::try_from(req.expiry).map_err(|_| Error::WrongExpiry)?;
    if msg.expiration_time().map(TimeStamp::unix_seconds) != Some(expiry)
        || msg
            .expiration_time()
            .is_some_and(|t| t.unix_nanos() % 1_000_000_000 != 0)
    {
        return Err(Error::WrongExpiry);
    }
    if now >= expiry || msg.issued_at().unix_seconds() > now.saturating_add(MAX_CLOCK_SKEW) {
        return Err(Error::Expired);
    }
    verify_signature(&msg, &resp.signature, now, erc1271).await?;
    Ok(VerifiedConsent {
        invitee,
        key_package_hash: key_package_hash(&resp.key_package),
    })
}

/// Every member's check of a consent an add commit carries (security review M5): `consent`
/// is `account`'s agreement to join `group` with the key package whose hash the registration
/// recorded, valid at the registration's block time `at` (not expired, not issued later than
/// the allowed clock skew), signed by the account — EIP-191, or ERC-1271 through `erc1271`
/// (at the registration's block: decision 12). Its request id (nonce) is the inviter's
/// business; everything that binds it to this add is checked here. A failed ERC-1271 call is
/// [`Error::Erc1271Unavailable`] (retry), never a refusal.
pub async fn verify_carried_consent(
    consent: &crate::wire::Consent,
    account: Address,
    group: &crate::wire::GroupRef,
    key_package_hash: &[u8; 32],
    at: i64,
    erc1271: Option<&dyn Erc1271Verifier>,
) -> Result<(), Error> {
    let msg: Message = consent
        .siwe_message
        .parse()
        .map_err(|e: eth_mls_siwe::ParseError| Error::BadSiwe(e.to_string()))?;
    if msg.address() != account {
        return Err(Error::WrongAccount {
            expected: account,
            found: msg.address(),
        });
    }
    let fields = msg.domain() == CONSENT_DOMAIN
        && msg.scheme().is_none()
        && msg.chain_id() == group.chain_id
        && msg.statement() == Some(group_statement(group).as_str())
        && msg.resources().len() == 2
        && msg.resources()[0] == group_resource(group)
        && msg.uri().starts_with("eth-mls:invitation:")
        && msg.not_before().is_none()
        && msg.request_id().is_none();
    if !fields {
        return Err(Error::WrongGroup);
    }
    if msg.resources()[1] != key_package_resource(key_package_hash) {
        return Err(Error::KeyPackageMismatch);
    }
    if msg.expiration_time().is_none_or(|t| t.unix_seconds() <= at)
        || msg.issued_at().unix_seconds() > at.saturating_add(MAX_CLOCK_SKEW)
    {
        return Err(Error::Expired);
    }
    verify_signature(&msg, &consent.signature, at, erc1271).await
}

/// A consent's signature by its account at `at` (EIP-191, or ERC-1271 through `erc1271`): a
/// failed ERC-1271 call is [`Error::Erc1271Unavailable`] (retry), never a refusal.
async fn verify_signature(
    msg: &Message,
    signature: &[u8],
    at: i64,
    erc1271: Option<&dyn Erc1271Verifier>,
) -> Result<(), Error> {
    let time = TimeStamp::from_unix(at);
    let opts = VerificationOpts {
        time: Some(&time),
        erc1271,
        ..VerificationOpts::default()
    };
    match msg.verify(signature, &opts).await {
        Ok(_) => Ok(()),
        Err(VerificationError::Rpc(e)) => Err(Error::Erc1271Unavailable(e.to_string())),
        Err(VerificationError::Expired { .. } | VerificationError::NotYetValid { .. }) => {
            Err(Error::Expired)
        }
        Err(e) => Err(Error::BadSignature(e.to_string())),
    }
}

/// Every member's check of the consents a registered commit carries (security review M5):
/// each account it adds that is not in the group's ACL before the registration (`acl`; a
/// re-added member is) must have consented to join this group (its binding, `binding`) with
/// exactly the key package added for it — a [`crate::wire::Consent`] in the commit's
/// authenticated data ([`eth_mls_core::authenticated_data`], bound on chain by the registered
/// commit hash) that [`verify_carried_consent`] accepts at the registration's block. An
/// account without one is [`Error::NoConsent`].
pub async fn check_consents(
    commit: &[u8],
    reg: &crate::verdict::Registration,
    staged: &eth_mls_core::CommitSummary,
    acl: &crate::verdict::Acl,
    binding: &eth_mls_core::GroupBinding,
    erc1271: Option<&dyn Erc1271Verifier>,
) -> Result<(), Error> {
    let newcomers: Vec<(Address, [u8; 32])> = staged
        .added
        .iter()
        .copied()
        .zip(staged.added_key_packages.iter().copied())
        .filter(|(a, _)| !acl.members.contains(a))
        .collect();
    if newcomers.is_empty() {
        return Ok(());
    }
    let aad = eth_mls_core::authenticated_data(commit).map_err(|e| Error::Core(e.to_string()))?;
    let consents = crate::wire::decode_commit_data(&aad)?.consents;
    let group = crate::wire::GroupRef {
        chain_id: binding.chain_id,
        factory: binding.factory.into_array(),
        group_contract: binding.contract.into_array(),
    };
    for (account, hash) in newcomers {
        let mut found = false;
        for c in &consents {
            match verify_carried_consent(c, account, &group, &hash, reg.timestamp, erc1271).await {
                Ok(()) => {
                    found = true;
                    break;
                }
                Err(e @ Error::Erc1271Unavailable(_)) => return Err(e),
                Err(_) => {}
            }
        }
        if !found {
            return Err(Error::NoConsent { account });
        }
    }
    Ok(())
}

/// Blocks per `eth_getLogs` call when the group's creator must be found in the factory's logs.
const LOG_RANGE: u64 = 2_000;

/// Step 3's first checks, by the invitee: the invitation names a group of a factory it trusts
/// on its chain (decision 13), so a look-alike contract cannot pose as one, and its inviter is
/// an admin of that group at the current block (security review M5: an outsider's invitation
/// would harvest the invitee's consent and a fresh key package). `check_group` confirms the
/// address is the factory's for the group's creator and group id and that the contract holds
/// the group id. The creator is the contract's owner unless ownership moved; only then is it
/// read from the factory's `GroupCreated` log for the contract, in ranges of 2,000 blocks
/// from `from_block` (the factory's deployment block): no query spans the whole chain (M8).
/// Returns the group's creator.
pub async fn check_request(
    chain: &eth_mls_chain::Chain,
    trusted_factory: Address,
    from_block: u64,
    req: &InvitationRequest,
) -> Result<Address, Error> {
    use crate::engine::invitation::{RequestFacts, judge, precheck};
    use eth_mls_chain::alloy::providers::Provider;
    use eth_mls_chain::alloy::rpc::types::Filter;
    use eth_mls_chain::alloy::sol_types::SolEvent;
    use eth_mls_chain::bindings::MlsGroupFactory::GroupCreated;

    let rpc = |e: eth_mls_chain::alloy::transports::TransportError| Error::Chain(e.to_string());
    precheck(req, chain.chain_id(), trusted_factory)?;
    let contract = Address::from(req.group.group_contract);
    let group = chain.group(contract);
    let info = group.info().await.map_err(|e| match e {
        eth_mls_chain::Error::Rpc(e) => Error::Chain(e.to_string()),
        _ => Error::NotFactoryGroup,
    })?;
    let factory = chain.factory(trusted_factory);
    let inviter = Address::from(req.inviter);
    // The inviter's role is read with the factory check: one round trip, not two.
    let (checked, inviter_is_admin) = tokio::join!(
        factory.check_group(contract, info.owner, &req.group_id),
        async {
            if inviter == info.owner {
                Ok(true)
            } else {
                group.is_admin(inviter).await
            }
        }
    );
    let creator = match checked {
        Ok(_) => Some(info.owner),
        Err(eth_mls_chain::Error::NotFactoryGroup { .. }) => {
            // Ownership moved: the creator from the factory's log, range by range.
            let head = chain.provider().get_block_number().await.map_err(rpc)?;
            let filter = Filter::new()
                .address(trusted_factory)
                .event_signature(GroupCreated::SIGNATURE_HASH)
                .topic1(contract.into_word());
            let mut start = from_block;
            let mut creator = None;
            while creator.is_none() && start <= head {
                let end = head.min(start.saturating_add(LOG_RANGE - 1));
                let logs = chain
                    .provider()
                    .get_logs(&filter.clone().from_block(start).to_block(end))
                    .await
                    .map_err(rpc)?;
                creator = logs
                    .iter()
                    .filter(|l| !l.removed)
                    .find_map(|l| l.log_decode::<GroupCreated>().ok())
                    .map(|l| l.inner.data.creator);
                start = end + 1;
            }
            match creator {
                Some(creator) => {
                    match factory.check_group(contract, creator, &req.group_id).await {
                        Ok(_) => Some(creator),
                        Err(eth_mls_chain::Error::NotFactoryGroup { .. }) => None,
                        Err(e) => return Err(Error::Chain(e.to_string())),
                    }
                }
                None => None,
            }
        }
        Err(e) => return Err(Error::Chain(e.to_string())),
    };
    let facts = RequestFacts {
        creator,
        inviter_is_admin: inviter_is_admin.map_err(|e| Error::Chain(e.to_string()))?,
    };
    judge(req, &facts)
}
