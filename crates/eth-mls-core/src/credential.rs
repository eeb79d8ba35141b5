//! The Ethereum credential (DESIGN.md decision 4): an Ethereum account delegates to an MLS
//! signature key by signing a Sign-In with Ethereum message that names the key.
//!
//! **Credential type**: `0xF0E1`, from RFC 9420's private-use range (0xF000-0xFFFF).
//!
//! **Encoding** (TLS presentation language, MLS variable-length vectors):
//!
//! ```text
//! struct {
//!     opaque address[20];          // the account
//!     opaque siwe_message<V>;      // the EIP-4361 text, exactly as signed (UTF-8)
//!     opaque signature<V>;         // EIP-191 (65 bytes) or whatever its ERC-1271 wallet accepts
//! } EthereumCredential;
//! ```
//!
//! **Key binding**: the SIWE message lists, among its resources, exactly one URI
//! `eth-mls:mls-signature-key:<scheme>:<key>` where `<scheme>` is `ed448` or `ed25519` and
//! `<key>` is the lower-case hex of the MLS signature public key (57 or 32 bytes). Example:
//! `eth-mls:mls-signature-key:ed448:5fd7…80`.
//!
//! **Identity** of a member: the EIP-55 checksummed address.

use eth_mls_crypto::SignaturePublicKey;
use eth_mls_siwe::{
    Address, Erc1271Verifier, Message, ParseError, TimeStamp, VerificationError, VerificationOpts,
};
use openmls::prelude::{Credential, CredentialType};
use openmls_traits::types::SignatureScheme;
use tls_codec::{Deserialize as _, Serialize as _, VLBytes};

/// The credential type code of [`EthereumCredential`] (private-use range of RFC 9420).
pub const ETHEREUM_CREDENTIAL_TYPE: u16 = 0xF0E1;

/// The openmls [`CredentialType`] of [`EthereumCredential`]; add it to the capabilities of
/// every group and key package.
pub const fn credential_type() -> CredentialType {
    CredentialType::Other(ETHEREUM_CREDENTIAL_TYPE)
}

/// The resource URI prefix that names the MLS signature key in the SIWE message.
pub const KEY_URI_PREFIX: &str = "eth-mls:mls-signature-key:";

/// Why a credential is not acceptable.
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    /// Not an Ethereum credential.
    #[error(
        "credential type {0:#06x} is not the Ethereum credential ({ETHEREUM_CREDENTIAL_TYPE:#06x})"
    )]
    WrongType(u16),
    /// The bytes are not an `EthereumCredential`.
    #[error("malformed Ethereum credential: {0}")]
    Malformed(String),
    /// The embedded SIWE message does not parse (strictly).
    #[error("the SIWE message does not conform: {0}")]
    Siwe(#[from] ParseError),
    /// The credential's address is not the SIWE message's.
    #[error("credential is for {credential} but its SIWE message is for {message}")]
    AddressMismatch {
        /// In the credential.
        credential: Address,
        /// In the message.
        message: Address,
    },
    /// The SIWE message names no MLS signature key.
    #[error("the SIWE message names no MLS signature key (resource {KEY_URI_PREFIX}…)")]
    NoKeyBinding,
    /// The SIWE message names more than one MLS signature key.
    #[error("the SIWE message names more than one MLS signature key")]
    AmbiguousKeyBinding,
    /// The key resource is malformed (unknown scheme, bad hex, wrong length).
    #[error("bad key resource {0:?}")]
    BadKeyResource(String),
    /// The SIWE message names another key than the leaf's.
    #[error("the SIWE message binds another signature key than the leaf's")]
    KeyMismatch,
    /// The SIWE message is for another chain than the group's.
    #[error("the SIWE message is for chain {found}, the group is on chain {expected}")]
    WrongChain {
        /// The group's chain.
        expected: u64,
        /// The message's.
        found: u64,
    },
    /// The SIWE message is for another domain than the group's.
    #[error("the SIWE message is for domain {found:?}, the group's is {expected:?}")]
    WrongDomain {
        /// The group's domain.
        expected: String,
        /// The message's.
        found: String,
    },
    /// The signature or the time window does not verify (EIP-191 / ERC-1271).
    #[error("SIWE verification failed: {0}")]
    Verification(#[from] VerificationError),
}

/// An Ethereum account's delegation to an MLS signature key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EthereumCredential {
    address: Address,
    message: Message,
    signature: Vec<u8>,
}

/// The resource URI naming `key`.
pub fn key_uri(key: &SignaturePublicKey) -> String {
    let scheme = match key.scheme() {
        SignatureScheme::ED448 => "ed448",
        _ => "ed25519",
    };
    format!("{KEY_URI_PREFIX}{scheme}:{}", hex::encode(key.as_bytes()))
}

fn parse_key_uri(uri: &str) -> Result<Option<SignaturePublicKey>, CredentialError> {
    let Some(rest) = uri.strip_prefix(KEY_URI_PREFIX) else {
        return Ok(None);
    };
    let bad = || CredentialError::BadKeyResource(uri.to_owned());
    let (scheme, key) = rest.split_once(':').ok_or_else(bad)?;
    let scheme = match scheme {
        "ed448" => SignatureScheme::ED448,
        "ed25519" => SignatureScheme::ED25519,
        _ => return Err(bad()),
    };
    if key.bytes().any(|c| c.is_ascii_uppercase()) {
        return Err(bad());
    }
    let bytes = hex::decode(key).map_err(|_| bad())?;
    SignaturePublicKey::from_bytes(scheme, &bytes)
        .map(Some)
        .map_err(|_| bad())
}

impl EthereumCredential {
    /// A credential from a signed SIWE message (the address is the message's).
    pub fn new(message: Message, signature: Vec<u8>) -> Self {
        Self {
            address: message.address(),
            message,
            signature,
        }
    }

    /// The account.
    pub fn address(&self) -> Address {
        self.address
    }

    /// The member identity: the checksummed address.
    pub fn identity(&self) -> String {
        eth_mls_siwe::to_checksum(&self.address)
    }

    /// The SIWE message.
    pub fn message(&self) -> &Message {
        &self.message
    }

    /// The signature over the message.
    pub fn signature(&self) -> &[u8] {
        &self.signature
    }

    /// The MLS signature key the message binds.
    pub fn bound_key(&self) -> Result<SignaturePublicKey, CredentialError> {
        let mut found = None;
        for resource in self.message.resources() {
            if let Some(key) = parse_key_uri(resource)? {
                if found.is_some() {
                    return Err(CredentialError::AmbiguousKeyBinding);
                }
                found = Some(key);
            }
        }
        found.ok_or(CredentialError::NoKeyBinding)
    }

    /// The encoding documented at the top of this module.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = self.address.to_vec();
        for field in [
            self.message.to_string().into_bytes(),
            self.signature.clone(),
        ] {
            // Serializing a byte vector into a Vec cannot fail.
            if let Ok(bytes) = VLBytes::new(field).tls_serialize_detached() {
                out.extend_from_slice(&bytes);
            }
        }
        out
    }

    /// Parses the encoding; the SIWE message must conform strictly and name the address.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CredentialError> {
        let malformed = |what: &str| CredentialError::Malformed(what.to_owned());
        if bytes.len() < 20 {
            return Err(malformed("shorter than an address"));
        }
        let address = Address::from_slice(&bytes[..20]);
        let mut rest = &bytes[20..];
        let text = VLBytes::tls_deserialize(&mut rest).map_err(|_| malformed("siwe_message"))?;
        let signature = VLBytes::tls_deserialize(&mut rest).map_err(|_| malformed("signature"))?;
        if !rest.is_empty() {
            return Err(malformed("trailing bytes"));
        }
        let text = std::str::from_utf8(text.as_slice())
            .map_err(|_| malformed("siwe_message is not UTF-8"))?;
        let message: Message = text.parse()?;
        if message.address() != address {
            return Err(CredentialError::AddressMismatch {
                credential: address,
                message: message.address(),
            });
        }
        Ok(Self {
            address,
            message,
            signature: signature.as_slice().to_vec(),
        })
    }

    /// As an openmls [`Credential`].
    pub fn to_openmls(&self) -> Credential {
        Credential::new(credential_type(), self.to_bytes())
    }

    /// From an openmls [`Credential`].
    pub fn from_openmls(credential: &Credential) -> Result<Self, CredentialError> {
        match credential.credential_type() {
            CredentialType::Other(ETHEREUM_CREDENTIAL_TYPE) => {
                Self::from_bytes(credential.serialized_content())
            }
            CredentialType::Basic => Err(CredentialError::WrongType(1)),
            CredentialType::X509 => Err(CredentialError::WrongType(2)),
            CredentialType::Other(t) | CredentialType::Grease(t) => {
                Err(CredentialError::WrongType(t))
            }
        }
    }
}

/// What a group requires of its members' credentials.
#[derive(Clone, Debug)]
pub struct BindingPolicy {
    /// The chain the group lives on (the SIWE message's chain id must be it).
    pub chain_id: u64,
    /// The domain members sign in to (the SIWE message's domain must be it).
    pub domain: String,
    /// The time to check validity windows at (default: now).
    pub time: Option<TimeStamp>,
}

/// Verifies that `credential` binds `leaf_signature_key` for the group described by
/// `policy`: the credential parses, its SIWE message is for the group's chain and domain and
/// valid at the time, the account signed it (EIP-191, or ERC-1271 through `erc1271`), and
/// the key it names is the leaf's. Returns the account.
pub async fn verify_credential(
    credential: &Credential,
    leaf_signature_key: &[u8],
    policy: &BindingPolicy,
    erc1271: Option<&dyn Erc1271Verifier>,
) -> Result<Address, CredentialError> {
    let credential = EthereumCredential::from_openmls(credential)?;
    let message = credential.message();
    if message.chain_id() != policy.chain_id {
        return Err(CredentialError::WrongChain {
            expected: policy.chain_id,
            found: message.chain_id(),
        });
    }
    if message.domain() != policy.domain {
        return Err(CredentialError::WrongDomain {
            expected: policy.domain.clone(),
            found: message.domain().to_owned(),
        });
    }
    if credential.bound_key()?.as_bytes() != leaf_signature_key {
        return Err(CredentialError::KeyMismatch);
    }
    let opts = VerificationOpts {
        time: policy.time.as_ref(),
        erc1271,
        ..Default::default()
    };
    let session = message.verify(credential.signature(), &opts).await?;
    Ok(session.address())
}
