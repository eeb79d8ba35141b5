//! # eth-mls-crypto
//!
//! An [OpenMLS](https://docs.rs/openmls) crypto provider for RFC 9420 cipher suite 0x0004,
//! `MLS_256_DHKEMX448_AES256GCM_SHA512_Ed448` (X448, Ed448, AES-256-GCM, SHA-512), the
//! default, and suite 0x0001 (`MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519`) to compare with.
//!
//! - [`Provider`]: crypto + randomness + storage (memory storage by default; any openmls
//!   `StorageProvider`), ready for `MlsGroup` and `KeyPackage::builder()`.
//! - HPKE base mode with DHKEM(X448, HKDF-SHA512) (KEM 0x0021) and DHKEM(X25519, HKDF-SHA256),
//!   written on the backend primitives (RFC 9180).
//! - [`SignatureKeyPair`]: Ed448 / Ed25519 keys that openmls signs with.
//! - Two backends with one API: [`RustCrypto`] (feature `rustcrypto`, default, pure Rust) and
//!   [`OpenSsl`] (feature `openssl`, system OpenSSL 3). Both may be enabled at once; the
//!   default backend is RustCrypto when its feature is on.
//! - [`capabilities`]: openmls's default `Capabilities` list suites 1-3 only, so a suite 4
//!   group must advertise the provider's suites. **Build every group and key package with
//!   these capabilities.**
//!
//! ```
//! use eth_mls_crypto::{Provider, SignatureKeyPair, SUITE, capabilities};
//! use openmls::prelude::*;
//!
//! let provider = Provider::new();
//! let signer: SignatureKeyPair = SignatureKeyPair::generate(SUITE.signature_algorithm()).unwrap();
//! let credential = CredentialWithKey {
//!     credential: BasicCredential::new(b"alice".to_vec()).into(),
//!     signature_key: signer.public_key().as_bytes().into(),
//! };
//! let group = MlsGroup::builder()
//!     .ciphersuite(SUITE)
//!     .with_capabilities(capabilities(&provider, &[], &[]))
//!     .use_ratchet_tree_extension(true)
//!     .build(&provider, &signer, credential)
//!     .unwrap();
//! assert_eq!(group.ciphersuite(), SUITE);
//! ```
//!
//! Secrets ([`SecretBytes`], private keys) are zeroized on drop, redacted in `Debug` and
//! compared in constant time.

#[cfg(not(any(feature = "rustcrypto", feature = "openssl")))]
compile_error!("enable at least one backend feature: `rustcrypto` or `openssl`");

mod backend;
mod crypto;
#[cfg(feature = "rustcrypto")]
mod curve448;
mod ed448_rules;
mod hpke;
#[cfg(feature = "openssl")]
mod openssl;
mod provider;
#[cfg(feature = "rustcrypto")]
mod rustcrypto;
mod secret;
mod signer;
mod verified;

pub use backend::{AeadAlg, Backend, DhAlg, HashAlg, SigAlg};
pub use crypto::Crypto;
#[cfg(feature = "openssl")]
pub use openssl::OpenSsl;
pub use provider::{Provider, Rand, capabilities};
#[cfg(feature = "rustcrypto")]
pub use rustcrypto::RustCrypto;
pub use secret::SecretBytes;
pub use signer::{SignatureKeyPair, SignaturePublicKey};
pub use verified::{SignedMessage, VerifiedSignatures, parallel_map};

use openmls_traits::types::{Ciphersuite, CryptoError, SignatureScheme};

/// The default backend: [`RustCrypto`] when its feature is enabled, else [`OpenSsl`].
#[cfg(feature = "rustcrypto")]
pub type DefaultBackend = RustCrypto;
/// The default backend: [`RustCrypto`] when its feature is enabled, else [`OpenSsl`].
#[cfg(all(not(feature = "rustcrypto"), feature = "openssl"))]
pub type DefaultBackend = OpenSsl;

/// The eth-mls cipher suite: 0x0004, X448 + AES-256-GCM + SHA-512 + Ed448.
pub const SUITE: Ciphersuite = Ciphersuite::MLS_256_DHKEMX448_AES256GCM_SHA512_Ed448;

/// The suites every backend serves, the default first.
pub const SUPPORTED_CIPHERSUITES: [Ciphersuite; 2] = [
    Ciphersuite::MLS_256_DHKEMX448_AES256GCM_SHA512_Ed448,
    Ciphersuite::MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519,
];

/// Errors of this crate's own API (the OpenMLS trait methods return openmls's `CryptoError`).
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum Error {
    /// A primitive failed or refused its input.
    #[error("crypto operation failed: {0:?}")]
    Crypto(CryptoError),
    /// The signature scheme is not one of Ed448 / Ed25519.
    #[error("unsupported signature scheme {0:?} (supported: ED448, ED25519)")]
    UnsupportedScheme(SignatureScheme),
    /// A key had the wrong length.
    #[error("{what}: expected {expected} bytes, got {got}")]
    KeyLength {
        /// Which key.
        what: &'static str,
        /// The length the algorithm needs.
        expected: usize,
        /// The length given.
        got: usize,
    },
}

impl From<CryptoError> for Error {
    fn from(e: CryptoError) -> Self {
        Self::Crypto(e)
    }
}
