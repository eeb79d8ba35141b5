//! Key packages of Ethereum identities: generation with the provider's capabilities, and
//! validation with every check of RFC 9420 §10.1 plus the Ethereum credential.

use std::time::Duration;

use eth_mls_crypto::{Backend, Provider, capabilities};
use eth_mls_siwe::{Address, Erc1271Verifier};
use openmls::prelude::{
    Ciphersuite, KeyPackage, KeyPackageBundle, KeyPackageIn, KeyPackageVerifyError, Lifetime,
    ProtocolVersion, VerifiableCiphersuite,
};
use openmls_traits::crypto::OpenMlsCrypto;
use openmls_traits::storage::{CURRENT_VERSION, StorageProvider};

use crate::credential::{BindingPolicy, CredentialError, credential_type, verify_credential};
use crate::identity::Identity;

/// How long a key package is valid by default: 28 days.
pub const DEFAULT_KEY_PACKAGE_LIFETIME: Duration = Duration::from_secs(28 * 24 * 3600);

/// Why a key package cannot be generated or used.
#[derive(Debug, thiserror::Error)]
pub enum KeyPackageError {
    /// openmls could not build the key package.
    #[error("building the key package: {0}")]
    Build(String),
    /// The key package fails RFC 9420 validation: leaf node or key package signature,
    /// protocol version, init key equal to the encryption key, extensions outside the
    /// capabilities, or lifetime.
    #[error("invalid key package: {0:?}")]
    Invalid(KeyPackageVerifyError),
    /// The key package is for another cipher suite than the group's.
    #[error("key package is for {found:?}, the group uses {expected:?}")]
    SuiteMismatch {
        /// The group's suite.
        expected: Ciphersuite,
        /// The key package's.
        found: Ciphersuite,
    },
    /// The leaf's capabilities lack the group's suite or the Ethereum credential type.
    #[error("the leaf's capabilities lack {0}")]
    MissingCapability(&'static str),
    /// The bytes are not a key package.
    #[error("malformed key package: {0}")]
    Malformed(String),
    /// The Ethereum credential does not verify.
    #[error(transparent)]
    Credential(#[from] CredentialError),
}

/// Generates a key package for `identity` (suite 0x0004; 0x0001 for an Ed25519 identity), valid for `lifetime`
/// ([`DEFAULT_KEY_PACKAGE_LIFETIME`] when `None`), advertising the provider's suites and
/// the Ethereum credential type. The private keys go into the provider's storage.
pub fn generate_key_package<B: Backend, S: StorageProvider<CURRENT_VERSION>>(
    identity: &Identity<B>,
    provider: &Provider<B, S>,
    lifetime: Option<Duration>,
) -> Result<KeyPackageBundle, KeyPackageError> {
    let lifetime = lifetime.unwrap_or(DEFAULT_KEY_PACKAGE_LIFETIME);
    KeyPackage::builder()
        .key_package_lifetime(Lifetime::new(lifetime.as_secs()))
        .leaf_node_capabilities(capabilities(
            provider,
            &[crate::GroupBinding::extension_type()],
            &[credential_type()],
        ))
        .build(
            identity.suite(),
            provider,
            identity.signer(),
            identity.credential_with_key(),
        )
        .map_err(|e| KeyPackageError::Build(format!("{e:?}")))
}

/// A key package that passed [`validate_key_package`], with the account it belongs to.
/// Only [`validate_key_package`] makes one.
#[derive(Debug, Clone)]
pub struct ValidatedKeyPackage {
    key_package: KeyPackage,
    account: Address,
}

impl ValidatedKeyPackage {
    /// The key package.
    pub fn key_package(&self) -> &KeyPackage {
        &self.key_package
    }

    /// The Ethereum account whose credential it carries.
    pub fn account(&self) -> Address {
        self.account
    }
}

/// Validates a received key package before it is used to add a member: openmls's RFC 9420
/// checks (signatures, version, `init_key` != leaf encryption key, extensions, lifetime),
/// the group's cipher suite, the leaf's capabilities (the suite and the Ethereum credential
/// type), and the credential (SIWE binding of the leaf's signature key for the group's chain
/// and domain).
pub async fn validate_key_package(
    key_package: KeyPackageIn,
    crypto: &impl OpenMlsCrypto,
    group_suite: Ciphersuite,
    policy: &BindingPolicy,
    erc1271: Option<&dyn Erc1271Verifier>,
) -> Result<ValidatedKeyPackage, KeyPackageError> {
    let key_package = key_package
        .validate(crypto, ProtocolVersion::Mls10)
        .map_err(KeyPackageError::Invalid)?;
    if key_package.ciphersuite() != group_suite {
        return Err(KeyPackageError::SuiteMismatch {
            expected: group_suite,
            found: key_package.ciphersuite(),
        });
    }
    let leaf = key_package.leaf_node();
    let caps = leaf.capabilities();
    if !caps
        .ciphersuites()
        .contains(&VerifiableCiphersuite::from(group_suite))
    {
        return Err(KeyPackageError::MissingCapability(
            "the group's cipher suite",
        ));
    }
    if !caps.credentials().contains(&credential_type()) {
        return Err(KeyPackageError::MissingCapability(
            "the Ethereum credential type",
        ));
    }
    let account = verify_credential(
        leaf.credential(),
        leaf.signature_key().as_slice(),
        policy,
        erc1271,
    )
    .await?;
    Ok(ValidatedKeyPackage {
        key_package,
        account,
    })
}

/// [`validate_key_package`] on a serialized key package (as published, e.g. on chain).
pub async fn validate_key_package_bytes(
    bytes: &[u8],
    crypto: &impl OpenMlsCrypto,
    group_suite: Ciphersuite,
    policy: &BindingPolicy,
    erc1271: Option<&dyn Erc1271Verifier>,
) -> Result<ValidatedKeyPackage, KeyPackageError> {
    use tls_codec::Deserialize as _;
    let key_package = KeyPackageIn::tls_deserialize_exact(bytes)
        .map_err(|e| KeyPackageError::Malformed(e.to_string()))?;
    validate_key_package(key_package, crypto, group_suite, policy, erc1271).await
}
