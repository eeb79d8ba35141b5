//! # eth-mls
//!
//! The eth-mls client: groups of Ethereum accounts that work end to end over the chain and
//! gossip. [`Client`] joins every layer (see its module, [`client`]); the modules below are
//! its parts, usable on their own:
//!
//! - [`wire`]: the client's messages (invitation request and response, decline, Welcome,
//!   update and removal requests, re-add requests, refusals), byte-exact as `WIRE.md` next to
//!   this crate specifies them, with total decoders;
//! - [`flows`]: the invitee's answer and the inviter's acceptance over eth-mls-core;
//! - [`inbox`]: an account's 1:1 inbox on chain opened message by message (own bundles and
//!   duplicates skipped, failures reported, never fatal);
//! - [`intent`]: the next step of a persisted intent as a pure function of durable facts, so a
//!   killed process resumes exactly where it was;
//! - [`invitation`]: the invitee's signed consent (a Sign-In with Ethereum message naming the
//!   group and its key package's hash) and the inviter's verification of it, the seed's
//!   invitation steps 3 and 4;
//! - [`catchup`]: a member offline for many epochs brought to the chain's epoch from the
//!   registrations alone, each judged at its own block;
//! - [`discovery`]: the groups an account belongs to, from the factory's and the groups'
//!   events;
//! - [`messages`]: catching up on application messages from the delivery history, with what
//!   could not be recovered reported;
//! - [`peers`]: which channel identity key speaks for an account — its registered ERC-7627
//!   inbox key, cached (decision 20);
//! - [`prekeys`]: when to rotate the signed prekey, top up one-time prekeys and publish the
//!   bundle again, so the account stays reachable;
//! - [`requests`]: an admin's check of a member's update or removal request;
//! - [`sequencer`]: the sans-IO commit sequencer — registrations acted on in epoch order at
//!   the configured confirmation depth, early gossip commits buffered, own commits told
//!   whether they won the epoch, replaced heads reported as forks;
//! - [`state`]: the channel device and the intents saved in eth-mls-core's encrypted store;
//! - [`verdict`]: the chain-checked merge of decisions 11 and 12 (a commit is merged only when
//!   it is the one registered for `n + 1`, its Add/Remove proposals equal the registered ACL
//!   changes, its committer's role fits the policy, and the new epoch's authenticator is the
//!   registered one).

pub mod catchup;
pub mod client;
pub mod discovery;
pub mod engine;
pub mod facts;
pub mod flows;
pub mod inbox;
pub mod invitation;
pub mod keystore;
pub mod messages;
pub mod peers;
pub mod view;

// The engine's modules, where library users found them before (issue 31).
pub use engine::{cursor, intent, prekeys, records, requests, sequencer, state, verdict, wire};

use eth_mls_siwe::Address;

pub use client::{Client, ClientConfig, ClientEvent};
pub use view::LocalView;

/// Errors of the client.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum Error {
    /// Bytes that do not decode as a client message.
    #[error("malformed client message: {what}")]
    Decode {
        /// The field being read.
        what: &'static str,
    },
    /// A client message of another version.
    #[error("unsupported client message version {version} (this client speaks 1)")]
    UnsupportedVersion {
        /// The version found.
        version: u16,
    },
    /// A field over its limit when encoding.
    #[error("{field}: {len} bytes, at most {max}")]
    TooLong {
        /// The field.
        field: &'static str,
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A response to an invitation this client did not send (or already settled).
    #[error("the response names no pending invitation")]
    UnknownRequest,
    /// The consent is not a valid Sign-In with Ethereum message.
    #[error("the consent is not a valid SIWE message: {0}")]
    BadSiwe(String),
    /// The consent is signed for another account than the one invited.
    #[error("the consent is for {found}, the invitation was for {expected}")]
    WrongAccount {
        /// The invited account.
        expected: Address,
        /// The consent's account.
        found: Address,
    },
    /// The consent names another group, chain or invitation.
    #[error("the consent is for another group, chain or invitation")]
    WrongGroup,
    /// The consent names another key package than the one it came with.
    #[error("the consent names another key package")]
    KeyPackageMismatch,
    /// The consent's expiration time is not the invitation's expiry.
    #[error("the consent's expiration time is not the invitation's")]
    WrongExpiry,
    /// The invitation expired (or the consent claims to be issued in the future).
    #[error("the invitation expired")]
    Expired,
    /// The consent's signature is not the account's.
    #[error("the consent's signature does not verify: {0}")]
    BadSignature(String),
    /// A registration for another epoch than the next one.
    #[error("the commit is registered for epoch {registered}; this member is at epoch {local}")]
    WrongEpoch {
        /// The registered epoch.
        registered: u64,
        /// The local epoch.
        local: u64,
    },
    /// A commit carries proposals no registration accounts for (by type code:
    /// GroupContextExtensions, PreSharedKey, ReInit, …).
    #[error("the commit carries proposals of types {types:?}, which no registration accounts for")]
    UnaccountedProposals {
        /// The proposal types.
        types: Vec<u16>,
    },
    /// The commit's bytes are not the registered ones.
    #[error("the commit's bytes differ from the registered hash")]
    CommitHashMismatch,
    /// The commit's Add/Remove proposals are not the registered ACL changes.
    #[error(
        "the commit adds {proposed_added:?} and removes {proposed_removed:?}; the registration \
         adds {registered_added:?} and removes {registered_removed:?}"
    )]
    AclMismatch {
        /// Accounts the commit adds.
        proposed_added: Vec<Address>,
        /// Accounts the commit removes.
        proposed_removed: Vec<Address>,
        /// Accounts the registration adds.
        registered_added: Vec<Address>,
        /// Accounts the registration removes.
        registered_removed: Vec<Address>,
    },
    /// The MLS committer's role at the registration block does not allow this commit.
    #[error("{committer} may not make this commit under the group's policy")]
    CommitterNotAllowed {
        /// The MLS committer.
        committer: Address,
    },
    /// After merging, the epoch authenticator is not the registered one: a fork.
    #[error("epoch {epoch}: the epoch authenticator differs from the registered one (fork)")]
    EpochAuthenticatorMismatch {
        /// The epoch.
        epoch: u64,
    },
    /// A request made at another epoch than the receiver's.
    #[error("the request was made at epoch {request}; the group is at epoch {local}")]
    StaleRequest {
        /// The request's epoch.
        request: u64,
        /// The receiver's epoch.
        local: u64,
    },
    /// A commit meant to carry a member's Update proposal does not (the proposal is not
    /// stored any more: the epoch moved on before it was committed).
    #[error("the commit does not carry {member}'s update")]
    UpdateNotCommitted {
        /// The requester.
        member: Address,
    },
    /// [`crate::Client::recover`] on a group that is not stalled.
    #[error("the group {group} is not stalled: there is nothing to replace")]
    NotStalled {
        /// The group.
        group: Address,
    },
    /// An operation only the group's owner may do.
    #[error("only the group's owner may do this (the owner is {owner:?})")]
    NotOwner {
        /// The owner, as this client knows it.
        owner: Option<Address>,
    },
    /// The requester is not a member of the group.
    #[error("{account} is not a member of the group")]
    NotMember {
        /// The requester.
        account: Address,
    },
    /// An invitation this account cannot make (nothing was sent).
    #[error("cannot invite {invitee}: {reason}")]
    InviteRefused {
        /// The account named.
        invitee: Address,
        /// Why: it is this account, already a member, or this account is not an admin.
        reason: &'static str,
    },
    /// The request asks for something its sender may not ask for.
    #[error("the request asks for a change its sender may not request")]
    RequestNotAllowed,
    /// An invitation or Welcome for another chain.
    #[error("the group is on chain {found}; this client is on chain {expected}")]
    WrongChain {
        /// This client's chain.
        expected: u64,
        /// The chain named.
        found: u64,
    },
    /// The group's factory is not the one this client trusts.
    #[error("the group's factory is not a trusted factory")]
    UntrustedFactory,
    /// The contract is not a group of the trusted factory (a look-alike).
    #[error("the contract is not a group of the trusted factory")]
    NotFactoryGroup,
    /// The member cannot follow the group from this epoch on (a registered commit it cannot
    /// process or must reject, or a replaced head it had merged): it asks an admin to re-add it.
    #[error("forked at epoch {epoch} ({reason}): ask an admin to re-add this member")]
    Forked {
        /// The epoch.
        epoch: u64,
        /// What went wrong.
        reason: String,
    },
    /// The client does not follow this group (not a member, or not joined yet).
    #[error("this client does not follow the group {group}")]
    UnknownGroup {
        /// The group's contract.
        group: Address,
    },
    /// A group with this id (or contract) exists already and is not this client's to take.
    #[error("the group {group} exists already")]
    GroupExists {
        /// Its contract.
        group: Address,
    },
    /// The account has no valid prekey bundle in the registry: it cannot be reached over the
    /// 1:1 channel until it publishes one.
    #[error("{account} has published no valid prekey bundle")]
    NoBundle {
        /// The account.
        account: Address,
    },
    /// A re-add request from a member that is not stuck at the epoch it names: the group is
    /// not past it, or the member authored something of a later epoch.
    #[error("{account} is not stuck at epoch {epoch}: no re-add")]
    NotStale {
        /// The requester.
        account: Address,
        /// The epoch it claimed to be stuck at.
        epoch: u64,
    },
    /// A member's request came sooner than the admin grants them.
    #[error("{account} had a request granted less than {interval_secs} s ago")]
    RateLimited {
        /// The requester.
        account: Address,
        /// The interval between two granted requests.
        interval_secs: u64,
    },
    /// A registered commit adds an account that did not consent (no consent it carries is
    /// that account's, for this group and the key package added for it).
    #[error("the commit adds {account} without its consent")]
    NoConsent {
        /// The account added.
        account: Address,
    },
    /// An invitation from an account that is not an admin of the group it names.
    #[error("{inviter} is not an admin of the group {group}")]
    InviterNotAdmin {
        /// The inviting account.
        inviter: Address,
        /// The group.
        group: Address,
    },
    /// A 1:1 message that kept failing for a reason that may pass (the chain or the delivery
    /// service unreachable) until its retry budget ran out.
    #[error("given up after {attempts} attempts: {last}")]
    GaveUp {
        /// How many times it was tried.
        attempts: u32,
        /// The last failure.
        last: String,
    },
    /// A 1:1 frame whose session's identity key is not the registered inbox key of the
    /// account it claims (decision 20): dropped, its session deleted.
    #[error(
        "a 1:1 message claims to come from {account}, whose registered inbox key is not its sender's"
    )]
    UnboundPeer {
        /// The account claimed.
        account: Address,
    },
    /// A keystore file that cannot be read (malformed, unsupported parameters).
    #[error("keystore: {0}")]
    Keystore(String),
    /// Another client (in this process or another) has this store open.
    #[error("the store {path} is in use by another client")]
    StoreInUse {
        /// The store's path.
        path: String,
    },
    /// The keystore's password is wrong (its MAC does not match).
    #[error("wrong keystore password")]
    WrongPassword,
    /// The 1:1 channel refused a message.
    #[error("1:1 channel: {0}")]
    Channel(eth_mls_channel::Error),
    /// eth-mls-core refused an operation (a key package, a commit, the store).
    #[error("MLS: {0}")]
    Core(String),
    /// The delivery service failed: retry.
    #[error("delivery unavailable (retry): {0}")]
    Delivery(String),
    /// The chain could not be read: retry.
    #[error("chain unavailable (retry): {0}")]
    Chain(String),
    /// A contract account's ERC-1271 check could not be made: retry.
    #[error("ERC-1271 check could not be made (retry): {0}")]
    Erc1271Unavailable(String),
}

/// The named steps of the client's durable work, for crash tests
/// ([`observe_steps`]): a process killed at any of them restarts and finishes.
pub const STEPS: &[&str] = &[
    "inbox:queued",
    "inbox:device-saved",
    "inbox:handled",
    "intent:saved",
    "intent:built",
    "intent:sending",
    "intent:registered",
    "intent:merged",
    "intent:welcome-sent",
    "intent:recorded",
    "outbox:published",
];

static STEP_OBSERVER: std::sync::OnceLock<fn(&'static str)> = std::sync::OnceLock::new();

/// Installs a function called at every named step ([`STEPS`]) of this process, for crash
/// tests only (the first one installed stays). Returns whether it was installed.
#[doc(hidden)]
pub fn observe_steps(observer: fn(&'static str)) -> bool {
    STEP_OBSERVER.set(observer).is_ok()
}

/// Reports a named step to the observer, if any.
pub(crate) fn step(name: &'static str) {
    debug_assert!(STEPS.contains(&name));
    if let Some(observer) = STEP_OBSERVER.get() {
        observer(name);
    }
}

/// The README's example runs as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
