//! Signature key pairs (Ed448 for suite 0x0004, Ed25519 for 0x0001) usable as openmls signers.

use std::marker::PhantomData;

use openmls_traits::signatures::{Signer, SignerError};
use openmls_traits::types::{CryptoError, SignatureScheme};

use crate::backend::{Backend, SigAlg};
use crate::crypto::sig_alg;
use crate::{DefaultBackend, Error, SecretBytes};

/// A public signature key: scheme and encoded key (57 bytes for Ed448, 32 for Ed25519).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SignaturePublicKey {
    scheme: SignatureScheme,
    bytes: Vec<u8>,
}

impl SignaturePublicKey {
    /// A public key from its encoding; the length is checked, not the point.
    pub fn from_bytes(scheme: SignatureScheme, bytes: &[u8]) -> Result<Self, Error> {
        let alg = sig_alg(scheme).map_err(|_| Error::UnsupportedScheme(scheme))?;
        if bytes.len() != alg.key_len() {
            return Err(Error::KeyLength {
                what: "signature public key",
                expected: alg.key_len(),
                got: bytes.len(),
            });
        }
        Ok(Self {
            scheme,
            bytes: bytes.to_vec(),
        })
    }

    /// The scheme.
    pub fn scheme(&self) -> SignatureScheme {
        self.scheme
    }

    /// The encoded key.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Verifies `signature` over `message` with backend `B`.
    pub fn verify<B: Backend>(&self, message: &[u8], signature: &[u8]) -> Result<(), CryptoError> {
        B::verify(sig_alg(self.scheme)?, &self.bytes, message, signature)
    }
}

/// A signature key pair; the private key is zeroized on drop and never printed.
///
/// It implements openmls's [`Signer`], so it signs key packages, leaf nodes and messages.
#[derive(Clone)]
pub struct SignatureKeyPair<B: Backend = DefaultBackend> {
    private: SecretBytes,
    public: SignaturePublicKey,
    backend: PhantomData<B>,
}

impl<B: Backend> std::fmt::Debug for SignatureKeyPair<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignatureKeyPair")
            .field("public", &self.public)
            .field("private", &"<redacted>")
            .field("backend", &B::NAME)
            .finish()
    }
}

impl<B: Backend> SignatureKeyPair<B> {
    /// A fresh key pair from the OS CSPRNG. Ed448 for suite 0x0004, Ed25519 for 0x0001.
    pub fn generate(scheme: SignatureScheme) -> Result<Self, Error> {
        let alg = sig_alg(scheme).map_err(|_| Error::UnsupportedScheme(scheme))?;
        let mut seed = vec![0u8; alg.key_len()];
        B::fill_random(&mut seed)?;
        Self::from_private_bytes(scheme, &SecretBytes::new(seed))
    }

    /// The key pair of a private key (the RFC 8032 seed: 57 bytes for Ed448, 32 for Ed25519).
    pub fn from_private_bytes(
        scheme: SignatureScheme,
        private: &SecretBytes,
    ) -> Result<Self, Error> {
        let alg: SigAlg = sig_alg(scheme).map_err(|_| Error::UnsupportedScheme(scheme))?;
        if private.len() != alg.key_len() {
            return Err(Error::KeyLength {
                what: "signature private key",
                expected: alg.key_len(),
                got: private.len(),
            });
        }
        let public = B::sig_public(alg, private.expose())?;
        Ok(Self {
            private: private.clone(),
            public: SignaturePublicKey {
                scheme,
                bytes: public,
            },
            backend: PhantomData,
        })
    }

    /// The public key.
    pub fn public_key(&self) -> &SignaturePublicKey {
        &self.public
    }

    /// The private key (for persisting it; keep it in zeroized memory).
    pub fn private_key(&self) -> &SecretBytes {
        &self.private
    }

    /// Signs `message` (RFC 8032 pure mode, empty context).
    pub fn sign_bytes(&self, message: &[u8]) -> Result<Vec<u8>, Error> {
        Ok(B::sign(
            sig_alg(self.public.scheme)?,
            self.private.expose(),
            message,
        )?)
    }
}

impl<B: Backend> Signer for SignatureKeyPair<B> {
    fn sign(&self, payload: &[u8]) -> Result<Vec<u8>, SignerError> {
        self.sign_bytes(payload)
            .map_err(|_| SignerError::SigningError)
    }

    fn signature_scheme(&self) -> SignatureScheme {
        self.public.scheme
    }
}
