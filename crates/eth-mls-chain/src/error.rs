//! The crate's error type: RPC failures, reverted transactions, and the contracts' custom
//! errors decoded to their typed variants.

use std::path::PathBuf;

use alloy::primitives::{Address, B256};

use crate::bindings::{ERC7627, MlsGroup, MlsGroupFactory};

/// A custom error of `ERC7627` (e.g. `NoPublicKey`, `PublicKeyExpired`).
pub type Erc7627Revert = ERC7627::ERC7627Errors;
/// A custom error of `MlsGroup` (e.g. `NotMember`, `EpochOutOfOrder`).
pub type GroupRevert = MlsGroup::MlsGroupErrors;
/// A custom error of `MlsGroupFactory` (e.g. `GroupExists`).
pub type FactoryRevert = MlsGroupFactory::MlsGroupFactoryErrors;

/// Everything that can go wrong talking to the contracts.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No anvil binary was found.
    #[error(
        "anvil not found (looked at {searched:?}); run `cargo xtask setup` in the eth-mls \
         repository, put anvil on PATH, or set ETH_MLS_ANVIL to its path"
    )]
    AnvilNotFound {
        /// The places looked at.
        searched: Vec<PathBuf>,
    },
    /// anvil did not start.
    #[error("starting anvil: {0}")]
    Devnet(String),
    /// The RPC URL is not valid.
    #[error("invalid RPC URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// The sender's balance cannot pay for the transaction (gas at the current price, plus
    /// any value): the node refused it, nothing was sent.
    #[error("the account cannot pay for the transaction (nothing was sent): {0}")]
    InsufficientFunds(String),
    /// A JSON-RPC or transport failure.
    #[error("RPC failure: {0}")]
    Rpc(#[from] alloy::transports::TransportError),
    /// ERC7627 reverted with one of its custom errors.
    #[error("ERC7627 reverted: {0:?}")]
    Erc7627(Erc7627Revert),
    /// MlsGroup reverted with one of its custom errors.
    #[error("MlsGroup reverted: {0:?}")]
    Group(GroupRevert),
    /// MlsGroupFactory reverted with one of its custom errors.
    #[error("MlsGroupFactory reverted: {0:?}")]
    Factory(FactoryRevert),
    /// A transaction was mined but reverted, without a decodable reason.
    #[error("transaction {tx} reverted")]
    Reverted {
        /// The transaction hash.
        tx: B256,
    },
    /// A contract call failed in a way that is neither RPC nor a known custom error.
    #[error("contract call failed: {0}")]
    Contract(alloy::contract::Error),
    /// The node no longer knows a transaction it accepted (dropped with a reorg's blocks or
    /// evicted from its pool): it will not be mined; the nonce is read again.
    #[error("transaction {tx} was dropped by the node (a reorg or its pool): not mined")]
    TransactionDropped {
        /// The transaction hash.
        tx: B256,
    },
    /// A transaction meant for a slot ([`crate::Chain::in_slot`]) was refused: a transaction
    /// of the sender was mined in that nonce meanwhile (the one the slot was first used for,
    /// or another). Nothing was sent; read the chain to learn what happened.
    #[error("nonce {nonce} was used by a mined transaction: nothing was sent")]
    NonceUsed {
        /// The slot's nonce.
        nonce: u64,
    },
    /// The network's base fee is above the configured cap: nothing was sent.
    #[error(
        "the network's base fee ({base_fee} wei/gas) is above the fee cap ({cap} wei/gas): nothing was sent"
    )]
    FeeAboveCap {
        /// The latest block's base fee, wei per gas.
        base_fee: u128,
        /// The cap, wei per gas.
        cap: u128,
    },
    /// No receipt arrived within ten minutes.
    #[error("no receipt for transaction {tx} after ten minutes")]
    ReceiptTimeout {
        /// The transaction hash.
        tx: B256,
    },
    /// The chain has no contract code at an address of the deployment.
    #[error("no contract code at {address} ({what})")]
    NoCode {
        /// The address.
        address: Address,
        /// Which contract was expected.
        what: &'static str,
    },
    /// The deployment is for another chain.
    #[error("deployment is for chain {deployment}, the RPC endpoint serves chain {rpc}")]
    WrongChain {
        /// The deployment's chain id.
        deployment: u64,
        /// The endpoint's chain id.
        rpc: u64,
    },
    /// Reading or writing a deployment file failed.
    #[error("deployment file {path}: {reason}")]
    DeploymentFile {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The registry returned a key algorithm this crate does not know.
    #[error("unknown ERC-7627 key algorithm {0}")]
    UnknownKeyAlgorithm(u8),
    /// A contract returned a value outside what this crate knows (e.g. a new enum variant).
    #[error("unexpected value from the contract: {0}")]
    UnexpectedValue(String),
    /// A contract is not the factory's group for the creator and group id claimed.
    #[error("{contract} is not the factory's group: {reason}")]
    NotFactoryGroup {
        /// The contract.
        contract: Address,
        /// Why.
        reason: String,
    },
    /// This client has no signer, so it cannot send transactions.
    #[error("this client is read-only (no signer)")]
    NoSigner,
    /// A channel bundle whose identity key field differs from the identity key given.
    #[error("the bundle's identity key (bytes 79..135) is not the identity key to register")]
    BundleIdentityMismatch,
    /// A log did not decode as the event expected.
    #[error("undecodable log at block {block} index {log_index}: {reason}")]
    BadLog {
        /// Block number.
        block: u64,
        /// Log index.
        log_index: u64,
        /// Why.
        reason: String,
    },
    /// The event stream gave up after too many consecutive RPC failures.
    #[error("event stream stopped after {attempts} failed attempts: {last}")]
    StreamGaveUp {
        /// Consecutive failures.
        attempts: u32,
        /// The last failure.
        last: String,
    },
}

/// Which contract's custom errors to try when a call fails.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Contract {
    Erc7627,
    Group,
    Factory,
    /// A contract whose errors this crate does not know.
    Other,
}

impl Contract {
    /// Decodes revert data into this contract's typed error, when it is one.
    pub(crate) fn decode(self, data: &[u8]) -> Option<Error> {
        use alloy::sol_types::SolInterface;
        match self {
            Contract::Erc7627 => Erc7627Revert::abi_decode(data).ok().map(Error::Erc7627),
            // A group created by the factory reverts with the group's errors inside the
            // factory call, so try both.
            Contract::Group => GroupRevert::abi_decode(data).ok().map(Error::Group),
            Contract::Factory => FactoryRevert::abi_decode(data)
                .ok()
                .map(Error::Factory)
                .or_else(|| GroupRevert::abi_decode(data).ok().map(Error::Group)),
            Contract::Other => None,
        }
    }

    /// The typed error for a failed call: a decoded custom error, an RPC error, or the
    /// contract error as is.
    pub(crate) fn error(self, e: alloy::contract::Error) -> Error {
        if let Some(decoded) = e
            .as_revert_data()
            .and_then(|d: alloy::primitives::Bytes| self.decode(d.as_ref()))
        {
            return decoded;
        }
        let text = e.to_string();
        let lower = text.to_ascii_lowercase();
        // With the fees set, a node caps the estimate's gas at what the balance pays for:
        // anvil says "gas required exceeds allowance: 0", geth "… allowance (0)" (a call
        // that needs more than a block's gas is the only other cause; none of ours does).
        if lower.contains("insufficient funds") || lower.contains("gas required exceeds allowance")
        {
            return Error::InsufficientFunds(text);
        }
        match e {
            alloy::contract::Error::TransportError(t) => Error::Rpc(t),
            other => Error::Contract(other),
        }
    }
}
