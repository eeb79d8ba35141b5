//! The OpenMLS provider: crypto, randomness and storage.

use std::marker::PhantomData;

use openmls::prelude::{Capabilities, CredentialType, ExtensionType};
use openmls_memory_storage::MemoryStorage;
use openmls_traits::OpenMlsProvider;
use openmls_traits::crypto::OpenMlsCrypto;
use openmls_traits::random::OpenMlsRand;
use openmls_traits::storage::{CURRENT_VERSION, StorageProvider};

use crate::{Backend, Crypto, DefaultBackend, Error};

/// Randomness from backend `B` (the OS CSPRNG for RustCrypto, `RAND_bytes` for OpenSSL).
#[derive(Clone, Copy, Debug, Default)]
pub struct Rand<B: Backend> {
    backend: PhantomData<B>,
}

impl<B: Backend> OpenMlsRand for Rand<B> {
    type Error = Error;

    fn random_array<const N: usize>(&self) -> Result<[u8; N], Self::Error> {
        let mut out = [0u8; N];
        B::fill_random(&mut out)?;
        Ok(out)
    }

    fn random_vec(&self, len: usize) -> Result<Vec<u8>, Self::Error> {
        let mut out = vec![0u8; len];
        B::fill_random(&mut out)?;
        Ok(out)
    }
}

/// An OpenMLS provider: [`Crypto`] over backend `B`, [`Rand`], and storage `S`.
#[derive(Debug, Default)]
pub struct Provider<B: Backend = DefaultBackend, S = MemoryStorage> {
    crypto: Crypto<B>,
    rand: Rand<B>,
    storage: S,
}

impl Provider {
    /// A provider on the default backend with in-memory storage.
    pub fn new() -> Self {
        Self::default()
    }
}

impl<B: Backend, S> Provider<B, S> {
    /// A provider that keeps MLS state in `storage`.
    pub fn with_storage(storage: S) -> Self {
        Self {
            crypto: Crypto::new(),
            rand: Rand {
                backend: PhantomData,
            },
            storage,
        }
    }

    /// This provider, accepting the signatures recorded in `verified` without verifying
    /// them again (see [`VerifiedSignatures`](crate::VerifiedSignatures)).
    pub fn with_verified_signatures(
        mut self,
        verified: std::sync::Arc<crate::VerifiedSignatures>,
    ) -> Self {
        self.crypto = self.crypto.with_verified_signatures(verified);
        self
    }

    /// The crypto provider.
    pub fn crypto_provider(&self) -> &Crypto<B> {
        &self.crypto
    }

    /// The storage.
    pub fn storage_provider(&self) -> &S {
        &self.storage
    }

    /// Consumes the provider, returning its storage.
    pub fn into_storage(self) -> S {
        self.storage
    }
}

impl<B: Backend, S: StorageProvider<CURRENT_VERSION>> OpenMlsProvider for Provider<B, S> {
    type CryptoProvider = Crypto<B>;
    type RandProvider = Rand<B>;
    type StorageProvider = S;

    fn storage(&self) -> &S {
        &self.storage
    }

    fn crypto(&self) -> &Crypto<B> {
        &self.crypto
    }

    fn rand(&self) -> &Rand<B> {
        &self.rand
    }
}

/// The `Capabilities` to build every group and key package with: the provider's cipher
/// suites (0x0004 first), openmls's default protocol version and proposals, the basic
/// credential plus `credentials`, and `extensions` (custom extension types the application
/// uses, e.g. a group-contract extension).
///
/// Without this openmls advertises suites 1-3 only, and adding a member to a suite 4 group
/// fails with `CiphersuiteNotInCapabilities` (DESIGN.md decision 3).
pub fn capabilities<B: Backend, S>(
    provider: &Provider<B, S>,
    extensions: &[ExtensionType],
    credentials: &[CredentialType],
) -> Capabilities {
    let mut creds = vec![CredentialType::Basic];
    creds.extend(
        credentials
            .iter()
            .copied()
            .filter(|c| *c != CredentialType::Basic),
    );
    Capabilities::builder()
        .ciphersuites(provider.crypto.supported_ciphersuites())
        .extensions(extensions.to_vec())
        .credentials(creds)
        .build()
}
