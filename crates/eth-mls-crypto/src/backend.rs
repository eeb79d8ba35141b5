//! The primitive operations a backend provides; HPKE, the OpenMLS trait and the signers are
//! built on them once, for every backend.

use openmls_traits::types::CryptoError;

use crate::SecretBytes;

/// Hash functions (and the HMAC/HKDF built on them).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HashAlg {
    /// SHA-256.
    Sha256,
    /// SHA-512.
    Sha512,
}

impl HashAlg {
    /// Output length in bytes.
    pub const fn output_len(self) -> usize {
        match self {
            Self::Sha256 => 32,
            Self::Sha512 => 64,
        }
    }
}

/// AEAD algorithms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AeadAlg {
    /// AES-128-GCM.
    Aes128Gcm,
    /// AES-256-GCM.
    Aes256Gcm,
}

impl AeadAlg {
    /// Key length in bytes.
    pub const fn key_len(self) -> usize {
        match self {
            Self::Aes128Gcm => 16,
            Self::Aes256Gcm => 32,
        }
    }
    /// Nonce length in bytes.
    pub const NONCE_LEN: usize = 12;
    /// Tag length in bytes.
    pub const TAG_LEN: usize = 16;
}

/// Diffie-Hellman functions (RFC 7748).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DhAlg {
    /// X25519.
    X25519,
    /// X448.
    X448,
}

impl DhAlg {
    /// Private and public key length in bytes.
    pub const fn key_len(self) -> usize {
        match self {
            Self::X25519 => 32,
            Self::X448 => 56,
        }
    }
}

/// Signature schemes (RFC 8032, pure mode, empty context).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SigAlg {
    /// Ed25519.
    Ed25519,
    /// Ed448.
    Ed448,
}

impl SigAlg {
    /// Private and public key length in bytes.
    pub const fn key_len(self) -> usize {
        match self {
            Self::Ed25519 => 32,
            Self::Ed448 => 57,
        }
    }
    /// Signature length in bytes.
    pub const fn sig_len(self) -> usize {
        match self {
            Self::Ed25519 => 64,
            Self::Ed448 => 114,
        }
    }
}

mod sealed {
    pub trait Sealed {}
}
pub(crate) use sealed::Sealed;

/// A cryptographic backend: the primitives, with lengths already checked by the caller where
/// noted. Implemented by [`crate::RustCrypto`] and [`crate::OpenSsl`]; sealed.
///
/// Every method returns an error for bad input, never panics.
pub trait Backend: Sealed + Send + Sync + Default + Clone + std::fmt::Debug + 'static {
    /// A short name for reports and benchmarks.
    const NAME: &'static str;

    /// `H(data)`.
    fn hash(alg: HashAlg, data: &[u8]) -> Result<Vec<u8>, CryptoError>;

    /// `HMAC-H(key, data)`.
    fn hmac(alg: HashAlg, key: &[u8], data: &[u8]) -> Result<SecretBytes, CryptoError>;

    /// HKDF-Extract (RFC 5869); an empty salt means HashLen zeros.
    fn hkdf_extract(alg: HashAlg, salt: &[u8], ikm: &[u8]) -> Result<SecretBytes, CryptoError>;

    /// HKDF-Expand (RFC 5869): at most 255 blocks, from a PRK of at least HashLen bytes
    /// (see [`check_expand`]).
    fn hkdf_expand(
        alg: HashAlg,
        prk: &[u8],
        info: &[u8],
        len: usize,
    ) -> Result<SecretBytes, CryptoError>;

    /// AEAD seal; returns ciphertext || tag. `key` and `nonce` lengths are checked.
    fn aead_seal(
        alg: AeadAlg,
        key: &[u8],
        nonce: &[u8],
        aad: &[u8],
        plaintext: &[u8],
    ) -> Result<Vec<u8>, CryptoError>;

    /// AEAD open of ciphertext || tag.
    fn aead_open(
        alg: AeadAlg,
        key: &[u8],
        nonce: &[u8],
        aad: &[u8],
        ciphertext: &[u8],
    ) -> Result<SecretBytes, CryptoError>;

    /// The public key of a DH private key.
    fn dh_public(alg: DhAlg, private: &[u8]) -> Result<Vec<u8>, CryptoError>;

    /// `DH(private, public)`; fails on a low-order public key (all-zero output).
    fn dh(alg: DhAlg, private: &[u8], public: &[u8]) -> Result<SecretBytes, CryptoError>;

    /// The public key of a signing key (seed).
    fn sig_public(alg: SigAlg, private: &[u8]) -> Result<Vec<u8>, CryptoError>;

    /// Signs `message`.
    fn sign(alg: SigAlg, private: &[u8], message: &[u8]) -> Result<Vec<u8>, CryptoError>;

    /// Verifies `signature` over `message`.
    fn verify(
        alg: SigAlg,
        public: &[u8],
        message: &[u8],
        signature: &[u8],
    ) -> Result<(), CryptoError>;

    /// Fills `out` from the operating system's CSPRNG.
    fn fill_random(out: &mut [u8]) -> Result<(), CryptoError>;
}

/// The limits of HKDF-Expand every backend enforces the same way.
pub(crate) fn check_expand(alg: HashAlg, prk: &[u8], len: usize) -> Result<(), CryptoError> {
    if len > 255 * alg.output_len() {
        return Err(CryptoError::HkdfOutputLengthInvalid);
    }
    if prk.len() < alg.output_len() {
        return Err(CryptoError::InvalidLength);
    }
    Ok(())
}

/// Checks a key or nonce length.
pub(crate) fn check_len(bytes: &[u8], expected: usize) -> Result<(), CryptoError> {
    if bytes.len() == expected {
        Ok(())
    } else {
        Err(CryptoError::InvalidLength)
    }
}
