//! # eth-mls-core
//!
//! MLS groups (RFC 9420) whose members are Ethereum accounts, on openmls with eth-mls-crypto's
//! suite 0x0004 provider, persisted in SQLite.
//!
//! - [`Identity`]: an account delegates to an Ed448 MLS signature key by signing a Sign-In
//!   with Ethereum message that names it; the resulting [`EthereumCredential`] (type
//!   `0xF0E1`, encoding in [`credential`]) is checked by [`verify_credential`] whenever a
//!   leaf enters or changes.
//! - Key packages generated with the provider's capabilities ([`generate_key_package`]) and
//!   validated with every RFC 9420 check plus the credential ([`validate_key_package`]).
//! - [`Group`]: create, add, remove, update, proposals, join, leave, application messages,
//!   exporter; [`Group::process`] returns [`Event`]s.
//! - [`Store`]: one SQLite database per local identity, encrypted at rest (SQLCipher, keyed by
//!   a [`StoreKey`]: Argon2id passphrase or raw key); every operation is one transaction,
//!   creation and migrations are atomic.
//! - Nothing lost, nothing twice across a crash: [`Group::process`] writes what a message
//!   produced to the durable inbox ([`Store::unacked`], [`Store::ack`]) with the ratchet
//!   step, and recognises a message processed before ([`Processed::Duplicate`]);
//!   [`Group::send`] and every commit and proposal write the exact bytes to publish to the
//!   durable outbox ([`Store::outbox_pending`], [`Store::mark_published`]) with the state
//!   change. See the README for the contract.
//! - Application records ([`Store::put_record`], [`Store::record`], [`Store::records`],
//!   [`Store::delete_record`]): the client's own state in the same encrypted file.

use std::sync::OnceLock;

static STEP_OBSERVER: OnceLock<fn(&'static str)> = OnceLock::new();

/// The named steps of creation, sending, processing, committing and merging that
/// [`observe_steps`] reports: the kill test stops a process at each of them. A step inside
/// a transaction ends in `before-commit`, one after it in `after-commit`; `other` is every
/// other group operation (proposals, discarding, deleting).
#[doc(hidden)]
pub const STEPS: &[&str] = &[
    "create:begin",
    "migrate:openmls",
    "migrate:own",
    "create:migrated",
    "create:written",
    "create:renamed",
    "key-package:before-commit",
    "send:before-commit",
    "send:after-commit",
    "process:before-commit",
    "process:after-commit",
    "commit:before-commit",
    "commit:after-commit",
    "merge:before-commit",
    "merge:after-commit",
    "join:before-commit",
    "join:after-commit",
    "other:before-commit",
    "other:after-commit",
];

/// Installs a function called at every named step ([`STEPS`]) of this process, for crash
/// tests only (the first one installed stays). Returns whether it was installed.
#[doc(hidden)]
pub fn observe_steps(observer: fn(&'static str)) -> bool {
    STEP_OBSERVER.set(observer).is_ok()
}

/// Reports a named step to the observer, if any.
pub(crate) fn step(name: &'static str) {
    if let Some(observer) = STEP_OBSERVER.get() {
        observer(name);
    }
}

mod binding;
pub mod credential;
mod group;
mod identity;
mod journal;
mod key_package;
mod migrate;
mod records;
mod split;
mod store;

pub use binding::{GROUP_BINDING_EXTENSION_TYPE, GroupBinding};
pub use credential::{
    BindingPolicy, CredentialError, ETHEREUM_CREDENTIAL_TYPE, EthereumCredential, credential_type,
    key_uri, verify_credential,
};
pub use group::{
    ApplicationMessage, Checks, CommitSummary, Event, Group, GroupConfig, OutgoingCommit,
    ProposalKind, ProposalSummary, authenticated_data,
};
pub use identity::{
    BindingRequest, DEFAULT_CREDENTIAL_LIFETIME, EthereumSigner, Identity, IdentityError,
    LocalEthereumSigner, MAX_CREDENTIAL_LIFETIME, SignerError,
};
pub use journal::{InboxEntry, OutboxEntry, OutboxKind, OwnKeyPackage, Processed, Retention};
pub use key_package::{
    DEFAULT_KEY_PACKAGE_LIFETIME, KeyPackageError, ValidatedKeyPackage, generate_key_package,
    validate_key_package, validate_key_package_bytes,
};
pub use records::{MAX_NAMESPACE, RecordWrite};
pub use split::SplitStorage;
pub use store::{
    ARGON2_MEMORY_KIB, ARGON2_PASSES, BinaryCodec, CodecError, SqlStorage, Store, StoreKey,
    StoreProvider,
};

/// Errors of groups and stores.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The database failed (I/O, locking, SQL).
    #[error("storage: {0}")]
    Storage(String),
    /// The store's key is wrong (or the file is not an eth-mls store).
    #[error("wrong key for the store (or not an eth-mls store)")]
    WrongKey,
    /// The database holds something unreadable.
    #[error("corrupt store: {0}")]
    Corrupt(String),
    /// [`Store::create`] on a database that already has an identity.
    #[error("the store already holds an identity")]
    IdentityExists,
    /// [`Store::open`] on a database without identity.
    #[error("the store holds no identity")]
    NoIdentity,
    /// An inbox or outbox position that does not exist (past the last entry, or an entry
    /// dropped with a discarded commit).
    #[error("no inbox or outbox entry {0}")]
    UnknownEntry(u64),
    /// A retention beyond its bound ([`Retention::MAX_ENTRIES`], [`Retention::MAX_AGE`]).
    #[error("retention: {0}")]
    Retention(String),
    /// The group is not in the store.
    #[error("unknown group")]
    UnknownGroup,
    /// A group with this id is already in the store.
    #[error("a group with this id already exists")]
    GroupExists,
    /// The bytes are not the expected MLS message.
    #[error("malformed message: {0}")]
    Malformed(String),
    /// The message is for another group.
    #[error("the message is for another group")]
    WrongGroup,
    /// MLS rejected the message (signature, epoch, decryption, replay, proposal validity…).
    #[error("message rejected: {0}")]
    Rejected(String),
    /// The sender is not a member (or an external sender, not supported).
    #[error("the sender is not a member of the group")]
    UnknownSender,
    /// A leaf's credential failed verification.
    #[error(transparent)]
    Credential(#[from] CredentialError),
    /// A check could not be made (the ERC-1271 call over RPC failed: timeout, rate limit, an
    /// error response that is not a revert). Not a verdict: nothing changed; try again.
    #[error("a credential check could not be made, try again: {0}")]
    CheckUnavailable(String),
    /// A key package could not be generated.
    #[error(transparent)]
    KeyPackage(#[from] KeyPackageError),
    /// The account is not a member.
    #[error("{0} is not a member of the group")]
    NotAMember(eth_mls_siwe::Address),
    /// An Update or a commit path would move a leaf to another account (a leaf never changes
    /// account; the account must leave and join again).
    #[error("leaf {leaf} belongs to {from}; its new credential names {to}")]
    AccountChange {
        /// The leaf index.
        leaf: u32,
        /// The account the leaf belongs to.
        from: eth_mls_siwe::Address,
        /// The account the new credential names.
        to: eth_mls_siwe::Address,
    },
    /// The group's binding to its contract (chain, factory, contract) is not the expected
    /// one: a Welcome for another chain or contract, or a group without binding.
    #[error("the group is bound to {found:?}, expected {expected:?}")]
    WrongBinding {
        /// What the caller expects.
        expected: Option<GroupBinding>,
        /// What the group carries.
        found: Option<GroupBinding>,
    },
    /// An empty list where one item at least is needed.
    #[error("no {0} given")]
    EmptyInput(&'static str),
    /// A received commit is staged: merge or discard it first.
    #[error("a received commit is staged: merge or discard it first")]
    StagedCommitPending,
    /// An own commit is pending: merge or discard it first.
    #[error("an own commit is pending: merge or discard it first")]
    OwnCommitPending,
    /// No own commit is pending.
    #[error("no own commit is pending")]
    NoPendingCommit,
    /// No received commit is staged.
    #[error("no received commit is staged")]
    NoStagedCommit,
    /// openmls refused an operation.
    #[error("{what}: {reason}")]
    Mls {
        /// The operation.
        what: &'static str,
        /// openmls's error.
        reason: String,
    },
}
