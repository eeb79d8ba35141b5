//! The crate's error type and the spec's error codes (§10).

use openmls_traits::types::CryptoError;

/// The error codes of the spec (§10), as the test vectors name them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// `DECODE_ERROR`
    DecodeError,
    /// `UNSUPPORTED_VERSION`
    UnsupportedVersion,
    /// `BAD_IDENTITY_SIGNATURE`
    BadIdentitySignature,
    /// `BAD_SPK_SIGNATURE`
    BadSpkSignature,
    /// `SPK_EXPIRED`
    SpkExpired,
    /// `DUPLICATE_OPK_ID`
    DuplicateOpkId,
    /// `UNKNOWN_SESSION`
    UnknownSession,
    /// `UNKNOWN_SPK`
    UnknownSpk,
    /// `UNKNOWN_OPK`
    UnknownOpk,
    /// `OPK_REUSED`
    OpkReused,
    /// `ZERO_DH`
    ZeroDh,
    /// `TOO_MANY_SKIPPED`
    TooManySkipped,
    /// `DUPLICATE`
    Duplicate,
    /// `AEAD_FAILURE`
    AeadFailure,
}

impl ErrorCode {
    /// The code as the spec and the vectors spell it (`"DECODE_ERROR"`, ...).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::DecodeError => "DECODE_ERROR",
            Self::UnsupportedVersion => "UNSUPPORTED_VERSION",
            Self::BadIdentitySignature => "BAD_IDENTITY_SIGNATURE",
            Self::BadSpkSignature => "BAD_SPK_SIGNATURE",
            Self::SpkExpired => "SPK_EXPIRED",
            Self::DuplicateOpkId => "DUPLICATE_OPK_ID",
            Self::UnknownSession => "UNKNOWN_SESSION",
            Self::UnknownSpk => "UNKNOWN_SPK",
            Self::UnknownOpk => "UNKNOWN_OPK",
            Self::OpkReused => "OPK_REUSED",
            Self::ZeroDh => "ZERO_DH",
            Self::TooManySkipped => "TOO_MANY_SKIPPED",
            Self::Duplicate => "DUPLICATE",
            Self::AeadFailure => "AEAD_FAILURE",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Everything that can go wrong in this crate. The variants of the spec's §10 map to an
/// [`ErrorCode`] through [`Error::code`]; the others are failures of the local device (its
/// random source, its stored state, its use of the API).
///
/// Whatever the error, the [`crate::Device`] or [`crate::Session`] it came from is unchanged.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum Error {
    /// Bytes that do not decode (truncated, trailing bytes, a non-minimal or invalid length
    /// prefix, an optional flag other than 0/1, an unknown message type, a ciphertext shorter
    /// than its tag, a bundle's prekey list not a multiple of 60 bytes).
    #[error("malformed encoding: {what}")]
    Decode {
        /// The field being read.
        what: &'static str,
    },
    /// A structure whose version field is not 1.
    #[error("unsupported version {version} (this implementation speaks version 1)")]
    UnsupportedVersion {
        /// The version found.
        version: u16,
    },
    /// The bundle's identity signature does not verify.
    #[error("prekey bundle: the identity signature does not verify")]
    BadIdentitySignature,
    /// The bundle's signed-prekey signature does not verify.
    #[error("prekey bundle: the signed-prekey signature does not verify")]
    BadSpkSignature,
    /// The signed prekey is past its expiry (bundle validation) or past its grace period
    /// (receiver).
    #[error("signed prekey {id} expired (expiry {expiry}, now {now})")]
    SpkExpired {
        /// The signed prekey id.
        id: u32,
        /// Its expiry, unix seconds.
        expiry: u64,
        /// The time of the check.
        now: u64,
    },
    /// Two one-time prekeys of a bundle share an id.
    #[error("prekey bundle: one-time prekey id {id} appears twice")]
    DuplicateOpkId {
        /// The repeated id.
        id: u32,
    },
    /// A normal message for a session this device does not hold.
    #[error("no session {}", hex32(.session_id))]
    UnknownSession {
        /// The session id of the message.
        session_id: [u8; 32],
    },
    /// A prekey message names a signed prekey this device does not hold.
    #[error("unknown signed prekey id {id}")]
    UnknownSpk {
        /// The id named.
        id: u32,
    },
    /// A prekey message names a one-time prekey id that was never issued.
    #[error("unknown one-time prekey id {id}")]
    UnknownOpk {
        /// The id named.
        id: u32,
    },
    /// A prekey message names a one-time prekey that was already used.
    #[error("one-time prekey {id} was already used")]
    OpkReused {
        /// The id named.
        id: u32,
    },
    /// A Diffie-Hellman output was all zero: a low-order public key.
    #[error("X448 output is all zero (low-order public key)")]
    ZeroDh,
    /// A message would skip more than `MAX_SKIP` message keys.
    #[error("message would skip {gap} message keys (at most {max})", max = crate::MAX_SKIP)]
    TooManySkipped {
        /// The number of keys it would skip.
        gap: u64,
    },
    /// A message of a retained chain whose key is gone: a replay, a transport duplicate, or a
    /// key evicted by the bounds. Drop it silently.
    #[error("duplicate or expired message (message {n} of its chain)")]
    Duplicate {
        /// The message number.
        n: u32,
    },
    /// The AEAD tag does not verify (tampering, wrong keys, an evicted chain).
    #[error("decryption failed: the authentication tag does not verify")]
    AeadFailure,
    /// The sending chain is exhausted (2^32 - 1 messages without a reply).
    #[error("sending chain exhausted: the peer must reply before more messages can be sent")]
    ChainExhausted,
    /// A bundle was requested but this device has no signed prekey.
    #[error("no signed prekey: call rotate_signed_prekey first")]
    NoSignedPrekey,
    /// A one-time prekey of the bundle was asked for that the bundle does not list.
    #[error("the bundle has no one-time prekey {id}")]
    OpkNotInBundle {
        /// The id asked for.
        id: u32,
    },
    /// A prekey id is already held or was used before: ids are never reused.
    #[error("{kind} prekey id {id} is already in use")]
    IdInUse {
        /// `"signed"` or `"one-time"`.
        kind: &'static str,
        /// The id.
        id: u32,
    },
    /// A prekey id counter is exhausted.
    #[error("no {kind} prekey ids left")]
    IdsExhausted {
        /// `"signed"` or `"one-time"`.
        kind: &'static str,
    },
    /// A value too large for its length prefix.
    #[error("a field of {len} bytes is too large to encode")]
    TooLarge {
        /// The length.
        len: usize,
    },
    /// The key source (the OS random generator, or a test script) failed or ran out.
    #[error("key source failed: {0}")]
    KeySource(&'static str),
    /// A stored state that does not decode or is inconsistent.
    #[error("stored state: {what}")]
    State {
        /// What is wrong.
        what: &'static str,
    },
    /// A key given to a constructor is not valid for its algorithm.
    #[error("invalid {what}")]
    InvalidKey {
        /// Which key.
        what: &'static str,
    },
    /// A primitive of the crypto backend failed unexpectedly.
    #[error("crypto backend: {0:?}")]
    Crypto(CryptoError),
}

fn hex32(b: &[u8; 32]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

impl Error {
    /// The spec's error code (§10) of this error, if it is one of them.
    pub fn code(&self) -> Option<ErrorCode> {
        Some(match self {
            Self::Decode { .. } => ErrorCode::DecodeError,
            Self::UnsupportedVersion { .. } => ErrorCode::UnsupportedVersion,
            Self::BadIdentitySignature => ErrorCode::BadIdentitySignature,
            Self::BadSpkSignature => ErrorCode::BadSpkSignature,
            Self::SpkExpired { .. } => ErrorCode::SpkExpired,
            Self::DuplicateOpkId { .. } => ErrorCode::DuplicateOpkId,
            Self::UnknownSession { .. } => ErrorCode::UnknownSession,
            Self::UnknownSpk { .. } => ErrorCode::UnknownSpk,
            Self::UnknownOpk { .. } => ErrorCode::UnknownOpk,
            Self::OpkReused { .. } => ErrorCode::OpkReused,
            Self::ZeroDh => ErrorCode::ZeroDh,
            Self::TooManySkipped { .. } => ErrorCode::TooManySkipped,
            Self::Duplicate { .. } => ErrorCode::Duplicate,
            Self::AeadFailure => ErrorCode::AeadFailure,
            _ => return None,
        })
    }

    /// Whether this is a [`Error::Duplicate`], which a receiver drops silently (§10).
    pub fn is_duplicate(&self) -> bool {
        matches!(self, Self::Duplicate { .. })
    }
}

impl From<CryptoError> for Error {
    fn from(e: CryptoError) -> Self {
        Self::Crypto(e)
    }
}
