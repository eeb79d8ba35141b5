//! An eth-mls identity: an Ethereum account plus a fresh Ed448 MLS signature key, bound by a
//! signed SIWE message.

use std::time::Duration;

use eth_mls_crypto::{Backend, DefaultBackend, SUITE, SignatureKeyPair};
use eth_mls_siwe::{Address, BoxFuture, Message, TimeStamp, eip191};
use openmls::prelude::{Ciphersuite, CredentialWithKey};
use openmls_traits::types::SignatureScheme;

use crate::credential::{EthereumCredential, key_uri};

/// Signs EIP-191 (`personal_sign`) messages for an Ethereum account. Implement it for a
/// hardware, remote or browser wallet; a contract account's signer returns whatever its
/// ERC-1271 `isValidSignature` accepts.
pub trait EthereumSigner: Send + Sync {
    /// The account.
    fn address(&self) -> Address;
    /// `personal_sign(message)`.
    fn sign_message<'a>(&'a self, message: &'a [u8])
    -> BoxFuture<'a, Result<Vec<u8>, SignerError>>;
}

/// The account's signer failed or refused.
#[derive(Debug, thiserror::Error)]
#[error("the Ethereum signer failed: {0}")]
pub struct SignerError(pub String);

/// An [`EthereumSigner`] holding a secp256k1 key in memory.
pub struct LocalEthereumSigner {
    key: k256::ecdsa::SigningKey,
}

impl std::fmt::Debug for LocalEthereumSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalEthereumSigner")
            .field("address", &self.address())
            .field("key", &"<redacted>")
            .finish()
    }
}

impl LocalEthereumSigner {
    /// A signer for a 32-byte secp256k1 private key.
    pub fn from_bytes(key: &[u8]) -> Result<Self, SignerError> {
        k256::ecdsa::SigningKey::from_slice(key)
            .map(|key| Self { key })
            .map_err(|_| SignerError("not a valid secp256k1 private key".into()))
    }
}

impl EthereumSigner for LocalEthereumSigner {
    fn address(&self) -> Address {
        eip191::address_of(self.key.verifying_key())
    }

    fn sign_message<'a>(
        &'a self,
        message: &'a [u8],
    ) -> BoxFuture<'a, Result<Vec<u8>, SignerError>> {
        Box::pin(async move { Ok(eip191::sign_message(&self.key, message).to_vec()) })
    }
}

/// What the binding message says besides the key.
#[derive(Clone, Debug)]
pub struct BindingRequest {
    /// The domain members sign in to (the group's).
    pub domain: String,
    /// The URI of the application.
    pub uri: String,
    /// The chain the groups live on.
    pub chain_id: u64,
    /// How long the binding is valid (None: no expiration).
    pub valid_for: Option<Duration>,
}

/// Why an identity could not be created.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// The MLS signature key could not be generated.
    #[error("generating the MLS signature key: {0}")]
    Key(#[from] eth_mls_crypto::Error),
    /// The binding message is not valid (e.g. a bad domain).
    #[error("building the SIWE binding message: {0}")]
    Message(#[from] eth_mls_siwe::ParseError),
    /// The account's signer failed.
    #[error(transparent)]
    Signer(#[from] SignerError),
}

/// An Ethereum account with its MLS signature key (Ed448, suite 0x0004) and the credential
/// binding them.
#[derive(Debug)]
pub struct Identity<B: Backend = DefaultBackend> {
    signer: SignatureKeyPair<B>,
    credential: EthereumCredential,
}

impl<B: Backend> Identity<B> {
    /// Generates an Ed448 key (suite 0x0004) and has `account` sign the SIWE message
    /// binding it.
    pub async fn create(
        account: &dyn EthereumSigner,
        request: &BindingRequest,
    ) -> Result<Self, IdentityError> {
        Self::create_for_suite(account, request, SUITE).await
    }

    /// [`Identity::create`] for another suite the provider supports (0x0001: Ed25519), for
    /// comparisons.
    pub async fn create_for_suite(
        account: &dyn EthereumSigner,
        request: &BindingRequest,
        suite: Ciphersuite,
    ) -> Result<Self, IdentityError> {
        let signer = SignatureKeyPair::<B>::generate(suite.signature_algorithm())?;
        let now = TimeStamp::now();
        let mut builder = Message::builder(
            &request.domain,
            account.address(),
            &request.uri,
            request.chain_id,
        )
        .statement("Authorize this MLS signature key to act for my account in eth-mls groups.")
        .issued_at(now.clone())
        .resource(&key_uri(signer.public_key()));
        if let Some(d) = request.valid_for {
            builder = builder.expiration_time(now.plus(d));
        }
        let message = builder.build()?;
        let signature = account.sign_message(message.to_string().as_bytes()).await?;
        Ok(Self {
            signer,
            credential: EthereumCredential::new(message, signature),
        })
    }

    /// An identity from its parts (e.g. restored from storage).
    pub fn from_parts(signer: SignatureKeyPair<B>, credential: EthereumCredential) -> Self {
        Self { signer, credential }
    }

    /// The account.
    pub fn address(&self) -> Address {
        self.credential.address()
    }

    /// The cipher suite of the signature key: 0x0004 for Ed448, 0x0001 for Ed25519.
    pub fn suite(&self) -> Ciphersuite {
        match self.signer.public_key().scheme() {
            SignatureScheme::ED25519 => Ciphersuite::MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519,
            _ => SUITE,
        }
    }

    /// The MLS signer (for openmls calls).
    pub fn signer(&self) -> &SignatureKeyPair<B> {
        &self.signer
    }

    /// The credential.
    pub fn credential(&self) -> &EthereumCredential {
        &self.credential
    }

    /// The openmls credential with its signature key, for key packages and groups.
    pub fn credential_with_key(&self) -> CredentialWithKey {
        CredentialWithKey {
            credential: self.credential.to_openmls(),
            signature_key: self.signer.public_key().as_bytes().into(),
        }
    }
}
