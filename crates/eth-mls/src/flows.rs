//! The steps of the seed's flows that each party runs, as functions over eth-mls-core: what
//! the invitee answers to an invitation (steps 3) and what the inviter does with the answer
//! (steps 4-5). The channel carries the messages; the chain transaction is the caller's (it
//! gets the commit and the ACL changes to register together).

use alloy_primitives::keccak256;
use eth_mls_chain::AclChanges;
use eth_mls_chain::alloy::primitives::B256;
use eth_mls_core::{
    Checks, EthereumSigner, Group, OutgoingCommit, Store, validate_key_package_bytes,
};
use eth_mls_crypto::{Backend, Crypto, SUITE};
use eth_mls_siwe::{Address, Erc1271Verifier};

use crate::Error;
use crate::invitation::{consent_message, verify_response};
use crate::wire::{InvitationRequest, InvitationResponse};

/// Step 3, by the invitee (after [`crate::invitation::check_request`]): a fresh key package and
/// the account's signed consent naming the group and that key package.
pub async fn answer_invitation<B: Backend>(
    store: &mut Store<B>,
    account: &dyn EthereumSigner,
    req: &InvitationRequest,
    now: i64,
) -> Result<InvitationResponse, Error> {
    let key_package = store
        .generate_key_package(None)
        .map_err(|e| Error::Core(e.to_string()))?;
    let text = consent_message(req, account.address(), &key_package, now)?.to_string();
    let signature = account
        .sign_message(text.as_bytes())
        .await
        .map_err(|e| Error::BadSignature(e.to_string()))?;
    Ok(InvitationResponse {
        request_id: req.request_id,
        key_package,
        siwe_message: text,
        signature,
    })
}

/// Steps 4-5, by the inviter: verifies the answer of `invitee` (the account invited and the
/// channel peer's), validates its key package (RFC 9420, suite, credential of that same
/// account), and builds the commit adding it. Returns the commit (core's pending commit) and
/// the ACL changes to register with it in one transaction.
pub async fn accept_answer<B: Backend>(
    group: &mut Group,
    store: &mut Store<B>,
    req: &InvitationRequest,
    invitee: Address,
    resp: &InvitationResponse,
    now: i64,
    erc1271: Option<&dyn Erc1271Verifier>,
) -> Result<(OutgoingCommit, AclChanges), Error> {
    let consent = verify_response(req, invitee, resp, now, erc1271).await?;
    let crypto = Crypto::<B>::new();
    let kp = validate_key_package_bytes(
        &resp.key_package,
        &crypto,
        SUITE,
        &group.config().policy_at(now),
        erc1271,
    )
    .await
    .map_err(|e| Error::Core(e.to_string()))?;
    if kp.account() != invitee {
        return Err(Error::WrongAccount {
            expected: invitee,
            found: kp.account(),
        });
    }
    let mut checks = Checks::at(now);
    if let Some(v) = erc1271 {
        checks = checks.with_erc1271(v);
    }
    let out = group
        .add_members(store, &[kp], &checks)
        .await
        .map_err(|e| Error::Core(e.to_string()))?;
    let changes = AclChanges {
        added: vec![invitee],
        key_packages: vec![B256::from(consent.key_package_hash)],
        removed: vec![],
    };
    debug_assert_eq!(consent.key_package_hash, keccak256(&resp.key_package).0);
    Ok((out, changes))
}
