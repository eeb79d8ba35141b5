//! # eth-mls-core
//!
//! MLS groups whose members are Ethereum accounts, on openmls with eth-mls-crypto's suite
//! 0x0004 provider. This first part provides the identities: an account delegates to an
//! Ed448 MLS signature key by signing a Sign-In with Ethereum message that names it
//! ([`Identity`]), the resulting [`EthereumCredential`] (type `0xF0E1`, encoding in
//! [`credential`]), and [`verify_credential`], which every member runs when a leaf enters
//! or changes; key packages generated with the right capabilities and validated with every
//! RFC 9420 check plus the credential ([`validate_key_package`]).

pub mod credential;
mod identity;
mod key_package;

pub use credential::{
    BindingPolicy, CredentialError, ETHEREUM_CREDENTIAL_TYPE, EthereumCredential, credential_type,
    key_uri, verify_credential,
};
pub use identity::{
    BindingRequest, EthereumSigner, Identity, IdentityError, LocalEthereumSigner, SignerError,
};
pub use key_package::{
    DEFAULT_KEY_PACKAGE_LIFETIME, KeyPackageError, ValidatedKeyPackage, generate_key_package,
    validate_key_package,
};
