//! Verifying signed messages: EIP-191 for externally owned accounts, ERC-1271 for contract
//! accounts through a caller-supplied verifier, and the sessions a verification yields.

use std::future::Future;
use std::pin::Pin;

use alloy_primitives::{Address, B256};

use crate::eip191::{self, SignatureError};
use crate::{Message, TimeStamp};

/// A boxed future, so that [`Erc1271Verifier`] can be used as a trait object.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// ERC-1271's magic return value of `isValidSignature(bytes32,bytes)`: `0x1626ba7e`.
pub const ERC1271_MAGIC_VALUE: [u8; 4] = [0x16, 0x26, 0xba, 0x7e];

/// A failure to ask the chain (transport, RPC, decoding): not an answer about the signature.
#[derive(Debug, thiserror::Error)]
#[error("ERC-1271 check could not be made: {message}")]
pub struct Erc1271Error {
    message: String,
    #[source]
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl Erc1271Error {
    /// An error with a description.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            source: None,
        }
    }

    /// An error with a description and its cause.
    pub fn with_source(
        message: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Self {
            message: message.into(),
            source: Some(Box::new(source)),
        }
    }
}

/// Asks a contract account whether it approves a signature (ERC-1271).
///
/// Implementations call `isValidSignature(hash, signature)` on `contract` on the chain with
/// id `chain_id` (the message's chain id: "the contract MUST be resolved from the specified
/// chain-id") and answer `Ok(true)` exactly when it returns [`ERC1271_MAGIC_VALUE`]. A
/// contract that reverts or returns anything else is `Ok(false)`; failing to reach the chain
/// is `Err`. `eth-mls-chain` implements it over JSON-RPC.
pub trait Erc1271Verifier: Send + Sync {
    /// `isValidSignature(hash, signature) == 0x1626ba7e` on `contract` at `chain_id`.
    fn is_valid_signature<'a>(
        &'a self,
        chain_id: u64,
        contract: Address,
        hash: B256,
        signature: &'a [u8],
    ) -> BoxFuture<'a, Result<bool, Erc1271Error>>;
}

/// What [`Message::verify`] checks besides the signature. `None` fields are not checked.
#[derive(Clone, Copy, Default)]
pub struct VerificationOpts<'a> {
    /// The domain the relying party serves (exact match).
    pub domain: Option<&'a str>,
    /// The nonce it issued (exact match).
    pub nonce: Option<&'a str>,
    /// The chain id it expects.
    pub chain_id: Option<u64>,
    /// The scheme of its origin; a message without a scheme means `https`.
    pub scheme: Option<&'a str>,
    /// The time to check the validity window against (default: now). Valid from
    /// not-before (inclusive) to expiration-time (exclusive).
    pub time: Option<&'a TimeStamp>,
    /// Accept high-s (malleable) ECDSA signatures; off by default.
    pub allow_high_s: bool,
    /// Checks contract accounts when the signature does not recover to the address.
    pub erc1271: Option<&'a dyn Erc1271Verifier>,
}

impl std::fmt::Debug for VerificationOpts<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerificationOpts")
            .field("domain", &self.domain)
            .field("nonce", &self.nonce)
            .field("chain_id", &self.chain_id)
            .field("scheme", &self.scheme)
            .field("time", &self.time)
            .field("allow_high_s", &self.allow_high_s)
            .field("erc1271", &self.erc1271.is_some())
            .finish()
    }
}

/// Why a signed message was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum VerificationError {
    /// The message is for another domain.
    #[error("domain mismatch: expected {expected:?}, message has {found:?}")]
    DomainMismatch {
        /// Expected.
        expected: String,
        /// In the message.
        found: String,
    },
    /// The message carries another nonce.
    #[error("nonce mismatch: expected {expected:?}, message has {found:?}")]
    NonceMismatch {
        /// Expected.
        expected: String,
        /// In the message.
        found: String,
    },
    /// The message is for another chain.
    #[error("chain id mismatch: expected {expected}, message has {found}")]
    ChainIdMismatch {
        /// Expected.
        expected: u64,
        /// In the message.
        found: u64,
    },
    /// The message names another scheme.
    #[error("scheme mismatch: expected {expected:?}, message has {found:?}")]
    SchemeMismatch {
        /// Expected.
        expected: String,
        /// In the message (`https` when absent).
        found: String,
    },
    /// Before not-before.
    #[error("not valid before {not_before} (time checked: {now})")]
    NotYetValid {
        /// The message's not-before.
        not_before: String,
        /// The time checked.
        now: String,
    },
    /// At or after expiration-time.
    #[error("expired at {expiration_time} (time checked: {now})")]
    Expired {
        /// The message's expiration time.
        expiration_time: String,
        /// The time checked.
        now: String,
    },
    /// The signature is not a usable EIP-191 signature (and no contract account approved it).
    #[error("invalid signature: {0}")]
    InvalidSignature(SignatureError),
    /// The signature recovers to another address (and no contract account approved it).
    #[error("signature is by {recovered}, not by {expected}")]
    AddressMismatch {
        /// The address the signature recovers to.
        recovered: Address,
        /// The message's address.
        expected: Address,
    },
    /// The contract account at the address did not approve the signature.
    #[error("contract account {contract} on chain {chain_id} rejected the signature (ERC-1271)")]
    Erc1271Rejected {
        /// The account.
        contract: Address,
        /// The chain asked.
        chain_id: u64,
    },
    /// The contract account could not be asked: an RPC failure, not a verdict.
    #[error(transparent)]
    Rpc(#[from] Erc1271Error),
}

/// A signed-in session, bound to the address (EIP-4361: sessions MUST be bound to the address).
/// Only [`Message::verify`] and [`Message::verify_eip191`] make one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Session {
    address: Address,
    chain_id: u64,
    domain: String,
    nonce: String,
    issued_at: TimeStamp,
    not_before: Option<TimeStamp>,
    expires_at: Option<TimeStamp>,
}

impl Session {
    fn of(message: &Message) -> Self {
        Self {
            address: message.address(),
            chain_id: message.chain_id(),
            domain: message.domain().to_owned(),
            nonce: message.nonce().to_owned(),
            issued_at: message.issued_at().clone(),
            not_before: message.not_before().cloned(),
            expires_at: message.expiration_time().cloned(),
        }
    }
    /// The signed-in address.
    pub fn address(&self) -> Address {
        self.address
    }
    /// The chain the session is bound to.
    pub fn chain_id(&self) -> u64 {
        self.chain_id
    }
    /// The domain that requested the sign-in.
    pub fn domain(&self) -> &str {
        &self.domain
    }
    /// The nonce of the sign-in (to record as used).
    pub fn nonce(&self) -> &str {
        &self.nonce
    }
    /// When the message was issued.
    pub fn issued_at(&self) -> &TimeStamp {
        &self.issued_at
    }
    /// When the session ends, if it does.
    pub fn expires_at(&self) -> Option<&TimeStamp> {
        self.expires_at.as_ref()
    }
    /// Whether the session is valid at `t` (not-before inclusive, expiry exclusive).
    pub fn is_valid_at(&self, t: &TimeStamp) -> bool {
        self.not_before.as_ref().is_none_or(|nb| t >= nb)
            && self.expires_at.as_ref().is_none_or(|exp| t < exp)
    }
}

impl Message {
    /// The EIP-191 hash of this message's text: what the account signs.
    pub fn eip191_hash(&self) -> B256 {
        eip191::hash_message(self.to_string().as_bytes())
    }

    /// Verifies an externally owned account's EIP-191 signature only (no field or time
    /// checks; high-s refused).
    pub fn verify_eip191(&self, signature: &[u8]) -> Result<Session, VerificationError> {
        self.check_signature_eoa(signature, false)?;
        Ok(Session::of(self))
    }

    fn check_signature_eoa(
        &self,
        signature: &[u8],
        allow_high_s: bool,
    ) -> Result<(), VerificationError> {
        let recovered = eip191::recover_address(&self.eip191_hash(), signature, allow_high_s)
            .map_err(VerificationError::InvalidSignature)?;
        if recovered == self.address() {
            Ok(())
        } else {
            Err(VerificationError::AddressMismatch {
                recovered,
                expected: self.address(),
            })
        }
    }

    /// Verifies the message for a relying party: domain, nonce, chain id, scheme, the
    /// validity window, then the signature — EIP-191 for an externally owned account, and
    /// when it does not recover to the address, ERC-1271 through `opts.erc1271`.
    pub async fn verify(
        &self,
        signature: &[u8],
        opts: &VerificationOpts<'_>,
    ) -> Result<Session, VerificationError> {
        if let Some(d) = opts.domain
            && d != self.domain()
        {
            return Err(VerificationError::DomainMismatch {
                expected: d.to_owned(),
                found: self.domain().to_owned(),
            });
        }
        if let Some(n) = opts.nonce
            && n != self.nonce()
        {
            return Err(VerificationError::NonceMismatch {
                expected: n.to_owned(),
                found: self.nonce().to_owned(),
            });
        }
        if let Some(c) = opts.chain_id
            && c != self.chain_id()
        {
            return Err(VerificationError::ChainIdMismatch {
                expected: c,
                found: self.chain_id(),
            });
        }
        if let Some(s) = opts.scheme {
            let found = self.scheme().unwrap_or("https");
            if !s.eq_ignore_ascii_case(found) {
                return Err(VerificationError::SchemeMismatch {
                    expected: s.to_owned(),
                    found: found.to_owned(),
                });
            }
        }
        let now_owned;
        let now = match opts.time {
            Some(t) => t,
            None => {
                now_owned = TimeStamp::now();
                &now_owned
            }
        };
        if let Some(nb) = self.not_before()
            && now < nb
        {
            return Err(VerificationError::NotYetValid {
                not_before: nb.to_string(),
                now: now.to_string(),
            });
        }
        if let Some(exp) = self.expiration_time()
            && now >= exp
        {
            return Err(VerificationError::Expired {
                expiration_time: exp.to_string(),
                now: now.to_string(),
            });
        }
        match self.check_signature_eoa(signature, opts.allow_high_s) {
            Ok(()) => Ok(Session::of(self)),
            Err(eoa_error) => match opts.erc1271 {
                None => Err(eoa_error),
                Some(verifier) => {
                    let approved = verifier
                        .is_valid_signature(
                            self.chain_id(),
                            self.address(),
                            self.eip191_hash(),
                            signature,
                        )
                        .await?;
                    if approved {
                        Ok(Session::of(self))
                    } else {
                        Err(VerificationError::Erc1271Rejected {
                            contract: self.address(),
                            chain_id: self.chain_id(),
                        })
                    }
                }
            },
        }
    }
}
