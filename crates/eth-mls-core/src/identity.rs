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
    /// How long the binding is valid: `None` for [`DEFAULT_CREDENTIAL_LIFETIME`] (30 days),
    /// at most [`MAX_CREDENTIAL_LIFETIME`] (365 days). Every binding carries an expiration
    /// time; renew it with [`Identity::renew`] and a self-update.
    pub valid_for: Option<Duration>,
}

/// The lifetime of a binding when [`BindingRequest::valid_for`] is `None`: 30 days.
pub const DEFAULT_CREDENTIAL_LIFETIME: Duration = Duration::from_secs(30 * 24 * 3600);
/// The longest lifetime a binding may ask for: 365 days.
pub const MAX_CREDENTIAL_LIFETIME: Duration = Duration::from_secs(365 * 24 * 3600);

impl BindingRequest {
    /// The lifetime this request gives a binding (default applied, cap checked).
    fn lifetime(&self) -> Result<Duration, IdentityError> {
        let d = self.valid_for.unwrap_or(DEFAULT_CREDENTIAL_LIFETIME);
        if d.is_zero() || d > MAX_CREDENTIAL_LIFETIME {
            return Err(IdentityError::Lifetime {
                requested: d,
                max: MAX_CREDENTIAL_LIFETIME,
            });
        }
        Ok(d)
    }
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
    /// The requested lifetime is zero or longer than the cap.
    #[error("a binding must be valid for more than 0 s and at most {max:?}; {requested:?} asked")]
    Lifetime {
        /// What was asked.
        requested: Duration,
        /// The cap.
        max: Duration,
    },
    /// A renewal must be signed by the identity's own account.
    #[error("the identity belongs to {identity}; the signer is {signer}")]
    OtherAccount {
        /// The identity's account.
        identity: Address,
        /// The signer's account.
        signer: Address,
    },
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
        let lifetime = request.lifetime()?;
        let signer = SignatureKeyPair::<B>::generate(suite.signature_algorithm())?;
        let credential = bind(account, request, &signer, lifetime).await?;
        Ok(Self { signer, credential })
    }

    /// A fresh credential for the same account and the same MLS key (a new SIWE message,
    /// signed by `account`, with a new expiration time): the renewal of a binding that is
    /// about to expire. Put it in the store with [`crate::Store::renew_credential`], then
    /// self-update each group so the members see it.
    pub async fn renew(
        &self,
        account: &dyn EthereumSigner,
        request: &BindingRequest,
    ) -> Result<EthereumCredential, IdentityError> {
        if account.address() != self.address() {
            return Err(IdentityError::OtherAccount {
                identity: self.address(),
                signer: account.address(),
            });
        }
        let lifetime = request.lifetime()?;
        bind(account, request, &self.signer, lifetime).await
    }

    /// Replaces the credential (same account and key: checked by the store).
    pub(crate) fn set_credential(&mut self, credential: EthereumCredential) {
        self.credential = credential;
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

/// Has `account` sign the SIWE message binding `signer`'s public key for `lifetime`.
async fn bind<B: Backend>(
    account: &dyn EthereumSigner,
    request: &BindingRequest,
    signer: &SignatureKeyPair<B>,
    lifetime: Duration,
) -> Result<EthereumCredential, IdentityError> {
    let now = TimeStamp::now();
    let message = Message::builder(
        &request.domain,
        account.address(),
        &request.uri,
        request.chain_id,
    )
    .statement("Authorize this MLS signature key to act for my account in eth-mls groups.")
    .issued_at(now.clone())
    .expiration_time(now.plus(lifetime))
    .resource(&key_uri(signer.public_key()))
    .build()?;
    let signature = account.sign_message(message.to_string().as_bytes()).await?;
    Ok(EthereumCredential::new(message, signature))
}
