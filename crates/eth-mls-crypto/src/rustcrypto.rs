//! The pure-Rust backend: RustCrypto (sha2, hmac, hkdf, aes-gcm; scalars mod L and SHAKE256
//! from ed448-goldilocks), fiat-crypto's verified p448 field under our Ed448/X448
//! ([`crate::curve448`]), and dalek (Ed25519, X25519).

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes128Gcm, Aes256Gcm};
use hmac::{Hmac, Mac};
use openmls_traits::types::CryptoError;
use sha2::{Digest, Sha256, Sha512};

use crate::SecretBytes;
use crate::backend::{AeadAlg, Backend, DhAlg, HashAlg, Sealed, SigAlg, check_expand, check_len};
use crate::curve448;

/// The pure-Rust backend (feature `rustcrypto`, the default).
#[derive(Clone, Copy, Debug, Default)]
pub struct RustCrypto;

impl Sealed for RustCrypto {}

fn array<const N: usize>(bytes: &[u8]) -> Result<[u8; N], CryptoError> {
    bytes.try_into().map_err(|_| CryptoError::InvalidLength)
}

impl Backend for RustCrypto {
    const NAME: &'static str = "rustcrypto";

    fn hash(alg: HashAlg, data: &[u8]) -> Result<Vec<u8>, CryptoError> {
        Ok(match alg {
            HashAlg::Sha256 => Sha256::digest(data).to_vec(),
            HashAlg::Sha512 => Sha512::digest(data).to_vec(),
        })
    }

    fn hmac(alg: HashAlg, key: &[u8], data: &[u8]) -> Result<SecretBytes, CryptoError> {
        fn run<M: Mac + KeyInit>(key: &[u8], data: &[u8]) -> Result<SecretBytes, CryptoError> {
            let mut mac =
                <M as KeyInit>::new_from_slice(key).map_err(|_| CryptoError::InvalidLength)?;
            mac.update(data);
            Ok(SecretBytes::new(mac.finalize().into_bytes().to_vec()))
        }
        match alg {
            HashAlg::Sha256 => run::<Hmac<Sha256>>(key, data),
            HashAlg::Sha512 => run::<Hmac<Sha512>>(key, data),
        }
    }

    fn hkdf_extract(alg: HashAlg, salt: &[u8], ikm: &[u8]) -> Result<SecretBytes, CryptoError> {
        Ok(SecretBytes::new(match alg {
            HashAlg::Sha256 => hkdf::Hkdf::<Sha256>::extract(Some(salt), ikm).0.to_vec(),
            HashAlg::Sha512 => hkdf::Hkdf::<Sha512>::extract(Some(salt), ikm).0.to_vec(),
        }))
    }

    fn hkdf_expand(
        alg: HashAlg,
        prk: &[u8],
        info: &[u8],
        len: usize,
    ) -> Result<SecretBytes, CryptoError> {
        check_expand(alg, prk, len)?;
        let mut okm = vec![0u8; len];
        let result = match alg {
            HashAlg::Sha256 => hkdf::Hkdf::<Sha256>::from_prk(prk)
                .map_err(|_| CryptoError::InvalidLength)?
                .expand(info, &mut okm),
            HashAlg::Sha512 => hkdf::Hkdf::<Sha512>::from_prk(prk)
                .map_err(|_| CryptoError::InvalidLength)?
                .expand(info, &mut okm),
        };
        let okm = SecretBytes::new(okm);
        result.map_err(|_| CryptoError::HkdfOutputLengthInvalid)?;
        Ok(okm)
    }

    fn aead_seal(
        alg: AeadAlg,
        key: &[u8],
        nonce: &[u8],
        aad: &[u8],
        plaintext: &[u8],
    ) -> Result<Vec<u8>, CryptoError> {
        check_len(key, alg.key_len())?;
        let nonce: [u8; 12] = array(nonce)?;
        let payload = Payload {
            msg: plaintext,
            aad,
        };
        let out = match alg {
            AeadAlg::Aes128Gcm => Aes128Gcm::new_from_slice(key)
                .map_err(|_| CryptoError::InvalidLength)?
                .encrypt(&nonce.into(), payload),
            AeadAlg::Aes256Gcm => Aes256Gcm::new_from_slice(key)
                .map_err(|_| CryptoError::InvalidLength)?
                .encrypt(&nonce.into(), payload),
        };
        out.map_err(|_| CryptoError::TooMuchData)
    }

    fn aead_open(
        alg: AeadAlg,
        key: &[u8],
        nonce: &[u8],
        aad: &[u8],
        ciphertext: &[u8],
    ) -> Result<SecretBytes, CryptoError> {
        check_len(key, alg.key_len())?;
        let nonce: [u8; 12] = array(nonce)?;
        if ciphertext.len() < AeadAlg::TAG_LEN {
            return Err(CryptoError::AeadDecryptionError);
        }
        let payload = Payload {
            msg: ciphertext,
            aad,
        };
        let out = match alg {
            AeadAlg::Aes128Gcm => Aes128Gcm::new_from_slice(key)
                .map_err(|_| CryptoError::InvalidLength)?
                .decrypt(&nonce.into(), payload),
            AeadAlg::Aes256Gcm => Aes256Gcm::new_from_slice(key)
                .map_err(|_| CryptoError::InvalidLength)?
                .decrypt(&nonce.into(), payload),
        };
        out.map(SecretBytes::new)
            .map_err(|_| CryptoError::AeadDecryptionError)
    }

    fn dh_public(alg: DhAlg, private: &[u8]) -> Result<Vec<u8>, CryptoError> {
        match alg {
            DhAlg::X25519 => {
                let secret = x25519_dalek::StaticSecret::from(array::<32>(private)?);
                Ok(x25519_dalek::PublicKey::from(&secret).as_bytes().to_vec())
            }
            DhAlg::X448 => {
                let mut scalar = array::<56>(private)?;
                let public = curve448::x448_public(&scalar);
                zeroize::Zeroize::zeroize(&mut scalar);
                Ok(public.to_vec())
            }
        }
    }

    fn dh(alg: DhAlg, private: &[u8], public: &[u8]) -> Result<SecretBytes, CryptoError> {
        match alg {
            DhAlg::X25519 => {
                let secret = x25519_dalek::StaticSecret::from(array::<32>(private)?);
                let public = x25519_dalek::PublicKey::from(array::<32>(public)?);
                let shared = secret.diffie_hellman(&public);
                if !shared.was_contributory() {
                    return Err(CryptoError::InvalidPublicKey);
                }
                Ok(SecretBytes::from_slice(shared.as_bytes()))
            }
            DhAlg::X448 => {
                // Parse the public key first: an early return must not leave a copy of the
                // private scalar behind.
                let public = array::<56>(public)?;
                let mut scalar = array::<56>(private)?;
                let out = curve448::x448(&scalar, &public);
                zeroize::Zeroize::zeroize(&mut scalar);
                let mut shared = out.ok_or(CryptoError::InvalidPublicKey)?;
                let secret = SecretBytes::from_slice(&shared);
                zeroize::Zeroize::zeroize(&mut shared);
                Ok(secret)
            }
        }
    }

    fn sig_public(alg: SigAlg, private: &[u8]) -> Result<Vec<u8>, CryptoError> {
        match alg {
            SigAlg::Ed25519 => {
                let key = ed25519_dalek::SigningKey::from_bytes(&array::<32>(private)?);
                Ok(key.verifying_key().to_bytes().to_vec())
            }
            SigAlg::Ed448 => {
                let key = curve448::Ed448Key::from_seed(&array::<57>(private)?);
                Ok(key.public().to_vec())
            }
        }
    }

    fn sign(alg: SigAlg, private: &[u8], message: &[u8]) -> Result<Vec<u8>, CryptoError> {
        match alg {
            SigAlg::Ed25519 => {
                use ed25519_dalek::Signer;
                let key = ed25519_dalek::SigningKey::from_bytes(&array::<32>(private)?);
                Ok(key.sign(message).to_bytes().to_vec())
            }
            SigAlg::Ed448 => {
                let key = curve448::Ed448Key::from_seed(&array::<57>(private)?);
                Ok(key.sign(message).to_vec())
            }
        }
    }

    fn verify(
        alg: SigAlg,
        public: &[u8],
        message: &[u8],
        signature: &[u8],
    ) -> Result<(), CryptoError> {
        match alg {
            SigAlg::Ed25519 => {
                let key = ed25519_dalek::VerifyingKey::from_bytes(&array::<32>(public)?)
                    .map_err(|_| CryptoError::InvalidPublicKey)?;
                let sig = ed25519_dalek::Signature::from_bytes(
                    &array::<64>(signature).map_err(|_| CryptoError::InvalidSignature)?,
                );
                key.verify_strict(message, &sig)
                    .map_err(|_| CryptoError::InvalidSignature)
            }
            SigAlg::Ed448 => {
                let public = array::<57>(public)?;
                let signature =
                    array::<114>(signature).map_err(|_| CryptoError::InvalidSignature)?;
                if curve448::ed448_verify(&public, message, &signature) {
                    Ok(())
                } else {
                    Err(CryptoError::InvalidSignature)
                }
            }
        }
    }

    fn fill_random(out: &mut [u8]) -> Result<(), CryptoError> {
        getrandom::fill(out).map_err(|_| CryptoError::InsufficientRandomness)
    }
}
