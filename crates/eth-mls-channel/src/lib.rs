//! # eth-mls-channel
//!
//! The eth-mls 1:1 secure channel between two devices whose owners are Ethereum accounts:
//! X3DH key agreement followed by the Double Ratchet, over curve448, exactly as
//! `eth-mls-channel.md` (version 1) specifies, with its byte-exact wire format. Primitives
//! come from [`eth_mls_crypto`] (X448, Ed448, HKDF-SHA512, HMAC-SHA512, AES-256-GCM), on
//! either backend: every type is generic over [`Backend`], [`DefaultBackend`] by default.
//!
//! - [`Device`]: one installation's identity key, Ed448 signature key, signed prekeys
//!   (rotated, kept for a grace period), one-time prekeys (generated in batches, consumed
//!   once) and [`Session`]s. A sans-IO state machine: [`Device::bundle`] to publish,
//!   [`Device::initiate`] with a peer's [`VerifiedBundle`], [`Device::encrypt`],
//!   [`Device::receive`].
//! - [`PrekeyBundle`] with [`PrekeyBundle::validate`] (§5.3), [`ChannelMessage`] (§8).
//! - State serialisation with a version field: [`Device::to_bytes`],
//!   [`Session::to_bytes`]. Secrets are zeroized on drop, kept out of `Debug`, compared in
//!   constant time ([`Secret`]).
//! - [`Error`], whose [`Error::code`] is the spec's error code (§10). A failed call changes
//!   nothing.
//!
//! ```
//! use eth_mls_channel::{Device, OneTimePrekeyChoice, PrekeyBundle, Secret};
//! # fn main() -> Result<(), eth_mls_channel::Error> {
//! type B = eth_mls_crypto::DefaultBackend;
//! let now = 1_785_000_000;
//! let mut alice = Device::<B>::generate([0xaa; 20], Secret::new([1; 57]))?;
//! let mut bob = Device::<B>::generate([0xbb; 20], Secret::new([2; 57]))?;
//! bob.rotate_signed_prekey(now, 7 * 86_400)?;
//! bob.generate_one_time_prekeys(10)?;
//!
//! // Bob publishes his bundle (in ERC-7627); Alice fetches and validates it.
//! let published = bob.bundle(now, 10)?.encode()?;
//! let bundle = PrekeyBundle::validate::<B>(&published, now)?;
//! // (The application also checks that bundle.signature_key is bound to bob's account.)
//! let session = alice.initiate(&bundle, OneTimePrekeyChoice::Random)?;
//! let wire = alice.encrypt(&session, b"hello bob")?;
//!
//! let got = bob.receive(&wire, now)?;
//! assert_eq!(got.plaintext, b"hello bob");
//! assert!(got.new_session);
//! let reply = bob.encrypt(&got.session_id, b"hello alice")?;
//! assert_eq!(alice.receive(&reply, now)?.plaintext, b"hello alice");
//! # Ok(()) }
//! ```

mod bundle;
pub mod codec;
mod device;
mod error;
pub mod fuzzing;
mod message;
pub mod primitives;
mod secret;
mod session;

pub use bundle::{
    BUNDLE_FIXED_LEN, ONE_TIME_PREKEY_LEN, OneTimePrekey, PrekeyBundle, SignedPrekey,
    VerifiedBundle, identity_tbs, signed_prekey_tbs,
};
pub use device::{DEVICE_STATE_VERSION, Device, OneTimePrekeyChoice, Received};
pub use error::{Error, ErrorCode};
pub use eth_mls_crypto::{Backend, DefaultBackend};
pub use message::{
    ChannelMessage, MAX_CIPHERTEXT, MessageHeader, NormalMessage, PrekeyMessage, RatchetMessage,
    TAG_LEN,
};
pub use primitives::{KeyPair, KeySource, OsKeySource, ScriptedKeys};
pub use secret::{Ed448Seed, Secret, X448Secret};
pub use session::{
    AD_LEN, ChainSnapshot, SESSION_STATE_VERSION, Session, SessionSnapshot, X3dh, X3dhPublic,
    session_id, x3dh_initiator, x3dh_responder,
};

/// `VERSION` (§3): the version of every encoded structure.
pub const VERSION: u16 = 1;
/// `LABEL_IDENTITY`: prefix of the identity signature's input.
pub const LABEL_IDENTITY: &[u8] = b"eth-mls/channel/v1/identity-key";
/// `LABEL_SPK`: prefix of the signed-prekey signature's input.
pub const LABEL_SPK: &[u8] = b"eth-mls/channel/v1/signed-prekey";
/// `LABEL_X3DH`: HKDF info of SK.
pub const LABEL_X3DH: &[u8] = b"eth-mls/channel/v1/x3dh";
/// `LABEL_ROOT`: HKDF info of `KDF_RK`.
pub const LABEL_ROOT: &[u8] = b"eth-mls/channel/v1/root";
/// `LABEL_MSG`: HKDF info of the AEAD key and nonce.
pub const LABEL_MSG: &[u8] = b"eth-mls/channel/v1/message-keys";
/// `LABEL_SID`: prefix of the session id's hash input.
pub const LABEL_SID: &[u8] = b"eth-mls/channel/v1/session-id";
/// `MAX_SKIP`: most message keys skipped in one step.
pub const MAX_SKIP: u64 = 2000;
/// `MAX_SKIPPED_PER_CHAIN`: skipped keys kept per receiving chain.
pub const MAX_SKIPPED_PER_CHAIN: usize = 40;
/// `MAX_RECEIVING_CHAINS`: receiving chains kept per session.
pub const MAX_RECEIVING_CHAINS: usize = 5;
/// `SPK_GRACE`: seconds a responder still accepts a signed prekey after its expiry (30 days).
pub const SPK_GRACE: u64 = 2_592_000;

/// The README's example runs as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
