//! The primitives of §2 and the KDFs of §7.2 on an eth-mls-crypto backend: public so that
//! the test vectors, and other implementations' cross-checks, can reach every step.

use std::collections::VecDeque;
use std::marker::PhantomData;

use eth_mls_crypto::{AeadAlg, Backend, DhAlg, HashAlg, SigAlg};
use openmls_traits::types::CryptoError;
use zeroize::Zeroizing;

use crate::secret::{Key64, Secret, X448Secret};
use crate::{Error, LABEL_MSG, LABEL_ROOT};

/// `ZERO64`: 64 zero bytes: the HKDF salt of SK and of the message keys.
pub const ZERO64: [u8; 64] = [0; 64];

/// An X448 key pair. `Debug` shows the public key only.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyPair {
    secret: X448Secret,
    public: [u8; 56],
}

impl KeyPair {
    /// The key pair of `secret` (its public key computed with backend `B`).
    pub fn from_secret<B: Backend>(secret: X448Secret) -> Result<Self, Error> {
        let public = B::dh_public(DhAlg::X448, secret.expose())?;
        let public = <[u8; 56]>::try_from(public.as_slice())
            .map_err(|_| Error::Crypto(CryptoError::InvalidLength))?;
        Ok(Self { secret, public })
    }

    /// A fresh key pair from the backend's random generator.
    pub fn generate<B: Backend>() -> Result<Self, Error> {
        Self::from_secret::<B>(random_secret::<B>()?)
    }

    pub(crate) fn from_parts(secret: X448Secret, public: [u8; 56]) -> Self {
        Self { secret, public }
    }

    /// The public key (the 56-byte u-coordinate).
    pub fn public(&self) -> &[u8; 56] {
        &self.public
    }

    /// The private key.
    pub fn secret(&self) -> &X448Secret {
        &self.secret
    }
}

impl std::fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyPair")
            .field("public", &Hex(&self.public))
            .finish_non_exhaustive()
    }
}

/// Prints bytes as lowercase hex in `Debug` output.
pub(crate) struct Hex<'a>(pub(crate) &'a [u8]);

impl std::fmt::Debug for Hex<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

fn random_secret<B: Backend>() -> Result<X448Secret, Error> {
    let mut bytes = Zeroizing::new([0u8; 56]);
    B::fill_random(bytes.as_mut()).map_err(|_| Error::KeySource("random generator failed"))?;
    Ok(Secret::new(*bytes))
}

/// Where `GENERATE_KEYPAIR` (§2) takes its private keys from: the initiator's ephemeral key
/// and first ratchet key, and each DH ratchet step (§4, "Key draws").
///
/// Devices use [`OsKeySource`]; tests replace it with [`ScriptedKeys`] to reproduce the
/// vectors byte for byte (§11).
pub trait KeySource: Send + Sync {
    /// The next private key.
    fn next_key(&mut self) -> Result<X448Secret, Error>;
}

/// Private keys from the backend's random generator (the operating system's CSPRNG).
pub struct OsKeySource<B>(PhantomData<fn() -> B>);

impl<B: Backend> std::fmt::Debug for OsKeySource<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "OsKeySource<{}>", B::NAME)
    }
}

impl<B> Default for OsKeySource<B> {
    fn default() -> Self {
        Self(PhantomData)
    }
}

impl<B: Backend> KeySource for OsKeySource<B> {
    fn next_key(&mut self) -> Result<X448Secret, Error> {
        random_secret::<B>()
    }
}

/// A fixed list of private keys, handed out in order (a test hook, §11). Fails with
/// [`Error::KeySource`] once empty. `Debug` shows how many are left.
#[derive(Default)]
pub struct ScriptedKeys(VecDeque<X448Secret>);

impl std::fmt::Debug for ScriptedKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ScriptedKeys {{ remaining: {} }}", self.0.len())
    }
}

impl ScriptedKeys {
    /// A source that hands out `keys` in order.
    pub fn new(keys: impl IntoIterator<Item = X448Secret>) -> Self {
        Self(keys.into_iter().collect())
    }

    /// How many keys are left.
    pub fn remaining(&self) -> usize {
        self.0.len()
    }
}

impl KeySource for ScriptedKeys {
    fn next_key(&mut self) -> Result<X448Secret, Error> {
        self.0
            .pop_front()
            .ok_or(Error::KeySource("scripted key source is empty"))
    }
}

/// `DH(k, P)` with the all-zero output refused (`ZERO_DH`).
pub fn dh<B: Backend>(k: &X448Secret, p: &[u8; 56]) -> Result<Secret<56>, Error> {
    let out = B::dh(DhAlg::X448, k.expose(), p).map_err(|e| match e {
        CryptoError::InvalidPublicKey => Error::ZeroDh,
        e => Error::Crypto(e),
    })?;
    let out =
        Secret::<56>::from_slice(out.expose()).ok_or(Error::Crypto(CryptoError::InvalidLength))?;
    if out.expose().iter().all(|b| *b == 0) {
        return Err(Error::ZeroDh);
    }
    Ok(out)
}

/// `HKDF(salt, ikm, info, L)` with SHA-512.
pub fn hkdf<B: Backend>(
    salt: &[u8],
    ikm: &[u8],
    info: &[u8],
    len: usize,
) -> Result<eth_mls_crypto::SecretBytes, Error> {
    let prk = B::hkdf_extract(HashAlg::Sha512, salt, ikm)?;
    Ok(B::hkdf_expand(HashAlg::Sha512, prk.expose(), info, len)?)
}

fn key64(bytes: &[u8]) -> Result<Key64, Error> {
    Secret::from_slice(bytes).ok_or(Error::Crypto(CryptoError::InvalidLength))
}

/// `KDF_RK(rk, dh_out)` → (new root key, chain key).
pub fn kdf_rk<B: Backend>(rk: &Key64, dh_out: &Secret<56>) -> Result<(Key64, Key64), Error> {
    let out = hkdf::<B>(rk.expose(), dh_out.expose(), LABEL_ROOT, 128)?;
    let out = out.expose();
    Ok((key64(&out[..64])?, key64(&out[64..])?))
}

/// `KDF_CK(ck)` → (next chain key, message key).
pub fn kdf_ck<B: Backend>(ck: &Key64) -> Result<(Key64, Key64), Error> {
    let mk = B::hmac(HashAlg::Sha512, ck.expose(), &[0x01])?;
    let next = B::hmac(HashAlg::Sha512, ck.expose(), &[0x02])?;
    Ok((key64(next.expose())?, key64(mk.expose())?))
}

/// Only the next chain key (a skipped key that would be dropped at once is not derived).
pub(crate) fn kdf_ck_next<B: Backend>(ck: &Key64) -> Result<Key64, Error> {
    let next = B::hmac(HashAlg::Sha512, ck.expose(), &[0x02])?;
    key64(next.expose())
}

/// `MSG_KEYS(mk)` → (AES key, nonce), as one 44-byte secret.
pub fn msg_keys<B: Backend>(mk: &Key64) -> Result<Secret<44>, Error> {
    let out = hkdf::<B>(&ZERO64, mk.expose(), LABEL_MSG, 44)?;
    Secret::from_slice(out.expose()).ok_or(Error::Crypto(CryptoError::InvalidLength))
}

/// AEAD-Seal with the key and nonce of `mk`.
pub fn seal<B: Backend>(mk: &Key64, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>, Error> {
    let keys = msg_keys::<B>(mk)?;
    let k = keys.expose();
    Ok(B::aead_seal(
        AeadAlg::Aes256Gcm,
        &k[..32],
        &k[32..],
        aad,
        plaintext,
    )?)
}

/// AEAD-Open with the key and nonce of `mk`; any failure is `AEAD_FAILURE`.
pub fn open<B: Backend>(mk: &Key64, ciphertext: &[u8], aad: &[u8]) -> Result<Vec<u8>, Error> {
    let keys = msg_keys::<B>(mk)?;
    let k = keys.expose();
    let pt = B::aead_open(AeadAlg::Aes256Gcm, &k[..32], &k[32..], aad, ciphertext)
        .map_err(|_| Error::AeadFailure)?;
    Ok(pt.expose().to_vec())
}

/// Ed448 signature (pure, empty context) with a 57-byte seed.
pub(crate) fn sign<B: Backend>(seed: &Secret<57>, message: &[u8]) -> Result<[u8; 114], Error> {
    let sig = B::sign(SigAlg::Ed448, seed.expose(), message)?;
    <[u8; 114]>::try_from(sig.as_slice()).map_err(|_| Error::Crypto(CryptoError::InvalidLength))
}

/// Ed448 verification (RFC 8032 §5.2.7).
pub(crate) fn verify<B: Backend>(public: &[u8; 57], message: &[u8], sig: &[u8; 114]) -> bool {
    B::verify(SigAlg::Ed448, public, message, sig).is_ok()
}

/// The Ed448 public key of a seed.
pub(crate) fn sig_public<B: Backend>(seed: &Secret<57>) -> Result<[u8; 57], Error> {
    let pk = B::sig_public(SigAlg::Ed448, seed.expose())?;
    <[u8; 57]>::try_from(pk.as_slice()).map_err(|_| Error::InvalidKey { what: "Ed448 seed" })
}

/// SHA-512.
pub(crate) fn sha512<B: Backend>(data: &[u8]) -> Result<Vec<u8>, Error> {
    Ok(B::hash(HashAlg::Sha512, data)?)
}
