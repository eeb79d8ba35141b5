//! The OpenSSL backend (system OpenSSL 3 through the `openssl` crate).

use openmls_traits::types::CryptoError;
use openssl::derive::Deriver;
use openssl::hash::MessageDigest;
use openssl::md::{Md, MdRef};
use openssl::pkey::{Id, PKey};
use openssl::pkey_ctx::{HkdfMode, PkeyCtx};
use openssl::sign::{Signer, Verifier};
use openssl::symm::{Cipher, decrypt_aead, encrypt_aead};

use crate::SecretBytes;
use crate::backend::{AeadAlg, Backend, DhAlg, HashAlg, Sealed, SigAlg, check_expand, check_len};

/// The OpenSSL backend (feature `openssl`).
#[derive(Clone, Copy, Debug, Default)]
pub struct OpenSsl;

impl Sealed for OpenSsl {}

fn digest(alg: HashAlg) -> MessageDigest {
    match alg {
        HashAlg::Sha256 => MessageDigest::sha256(),
        HashAlg::Sha512 => MessageDigest::sha512(),
    }
}

fn md(alg: HashAlg) -> &'static MdRef {
    match alg {
        HashAlg::Sha256 => Md::sha256(),
        HashAlg::Sha512 => Md::sha512(),
    }
}

fn cipher(alg: AeadAlg) -> Cipher {
    match alg {
        AeadAlg::Aes128Gcm => Cipher::aes_128_gcm(),
        AeadAlg::Aes256Gcm => Cipher::aes_256_gcm(),
    }
}

fn dh_id(alg: DhAlg) -> Id {
    match alg {
        DhAlg::X25519 => Id::X25519,
        DhAlg::X448 => Id::X448,
    }
}

fn sig_id(alg: SigAlg) -> Id {
    match alg {
        SigAlg::Ed25519 => Id::ED25519,
        SigAlg::Ed448 => Id::ED448,
    }
}

fn library(_: openssl::error::ErrorStack) -> CryptoError {
    CryptoError::CryptoLibraryError
}

impl Backend for OpenSsl {
    const NAME: &'static str = "openssl";

    fn hash(alg: HashAlg, data: &[u8]) -> Result<Vec<u8>, CryptoError> {
        openssl::hash::hash(digest(alg), data)
            .map(|d| d.to_vec())
            .map_err(library)
    }

    fn hmac(alg: HashAlg, key: &[u8], data: &[u8]) -> Result<SecretBytes, CryptoError> {
        let key = PKey::hmac(key).map_err(library)?;
        let mut signer = Signer::new(digest(alg), &key).map_err(library)?;
        signer.update(data).map_err(library)?;
        signer.sign_to_vec().map(SecretBytes::new).map_err(library)
    }

    fn hkdf_extract(alg: HashAlg, salt: &[u8], ikm: &[u8]) -> Result<SecretBytes, CryptoError> {
        let mut ctx = PkeyCtx::new_id(Id::HKDF).map_err(library)?;
        ctx.derive_init().map_err(library)?;
        ctx.set_hkdf_md(md(alg)).map_err(library)?;
        ctx.set_hkdf_mode(HkdfMode::EXTRACT_ONLY).map_err(library)?;
        if !salt.is_empty() {
            ctx.set_hkdf_salt(salt).map_err(library)?;
        }
        ctx.set_hkdf_key(ikm).map_err(library)?;
        let mut out = vec![0u8; alg.output_len()];
        let n = ctx.derive(Some(&mut out)).map_err(library)?;
        out.truncate(n);
        Ok(SecretBytes::new(out))
    }

    fn hkdf_expand(
        alg: HashAlg,
        prk: &[u8],
        info: &[u8],
        len: usize,
    ) -> Result<SecretBytes, CryptoError> {
        check_expand(alg, prk, len)?;
        let mut out = SecretBytes::new(vec![0u8; len]);
        if len == 0 {
            return Ok(out);
        }
        let mut ctx = PkeyCtx::new_id(Id::HKDF).map_err(library)?;
        ctx.derive_init().map_err(library)?;
        ctx.set_hkdf_md(md(alg)).map_err(library)?;
        ctx.set_hkdf_mode(HkdfMode::EXPAND_ONLY).map_err(library)?;
        ctx.set_hkdf_key(prk).map_err(library)?;
        ctx.add_hkdf_info(info).map_err(library)?;
        let mut buf = vec![0u8; len];
        let result = ctx.derive(Some(&mut buf));
        out = SecretBytes::new(buf);
        result.map_err(library)?;
        Ok(out)
    }

    fn aead_seal(
        alg: AeadAlg,
        key: &[u8],
        nonce: &[u8],
        aad: &[u8],
        plaintext: &[u8],
    ) -> Result<Vec<u8>, CryptoError> {
        check_len(key, alg.key_len())?;
        check_len(nonce, AeadAlg::NONCE_LEN)?;
        let mut tag = [0u8; AeadAlg::TAG_LEN];
        let mut out = encrypt_aead(cipher(alg), key, Some(nonce), aad, plaintext, &mut tag)
            .map_err(library)?;
        out.extend_from_slice(&tag);
        Ok(out)
    }

    fn aead_open(
        alg: AeadAlg,
        key: &[u8],
        nonce: &[u8],
        aad: &[u8],
        ciphertext: &[u8],
    ) -> Result<SecretBytes, CryptoError> {
        check_len(key, alg.key_len())?;
        check_len(nonce, AeadAlg::NONCE_LEN)?;
        let Some(split) = ciphertext.len().checked_sub(AeadAlg::TAG_LEN) else {
            return Err(CryptoError::AeadDecryptionError);
        };
        let (body, tag) = ciphertext.split_at(split);
        decrypt_aead(cipher(alg), key, Some(nonce), aad, body, tag)
            .map(SecretBytes::new)
            .map_err(|_| CryptoError::AeadDecryptionError)
    }

    fn dh_public(alg: DhAlg, private: &[u8]) -> Result<Vec<u8>, CryptoError> {
        check_len(private, alg.key_len())?;
        let key = PKey::private_key_from_raw_bytes(private, dh_id(alg)).map_err(library)?;
        key.raw_public_key().map_err(library)
    }

    fn dh(alg: DhAlg, private: &[u8], public: &[u8]) -> Result<SecretBytes, CryptoError> {
        check_len(private, alg.key_len())?;
        check_len(public, alg.key_len())?;
        let ours = PKey::private_key_from_raw_bytes(private, dh_id(alg)).map_err(library)?;
        let theirs = PKey::public_key_from_raw_bytes(public, dh_id(alg))
            .map_err(|_| CryptoError::InvalidPublicKey)?;
        let mut deriver = Deriver::new(&ours).map_err(library)?;
        deriver
            .set_peer(&theirs)
            .map_err(|_| CryptoError::InvalidPublicKey)?;
        // OpenSSL refuses an all-zero shared secret (a low-order public key).
        let shared = deriver
            .derive_to_vec()
            .map_err(|_| CryptoError::InvalidPublicKey)?;
        Ok(SecretBytes::new(shared))
    }

    fn sig_public(alg: SigAlg, private: &[u8]) -> Result<Vec<u8>, CryptoError> {
        check_len(private, alg.key_len())?;
        let key = PKey::private_key_from_raw_bytes(private, sig_id(alg)).map_err(library)?;
        key.raw_public_key().map_err(library)
    }

    fn sign(alg: SigAlg, private: &[u8], message: &[u8]) -> Result<Vec<u8>, CryptoError> {
        check_len(private, alg.key_len())?;
        let key = PKey::private_key_from_raw_bytes(private, sig_id(alg)).map_err(library)?;
        let mut signer = Signer::new_without_digest(&key).map_err(library)?;
        signer
            .sign_oneshot_to_vec(message)
            .map_err(|_| CryptoError::SigningError)
    }

    fn verify(
        alg: SigAlg,
        public: &[u8],
        message: &[u8],
        signature: &[u8],
    ) -> Result<(), CryptoError> {
        check_len(public, alg.key_len())?;
        if signature.len() != alg.sig_len() {
            return Err(CryptoError::InvalidSignature);
        }
        if alg == SigAlg::Ed448 {
            // eth-mls's Ed448 rules (canonical, not small-order A and R; S < L), shared with
            // the RustCrypto backend so that both reach one verdict on every input.
            let mut a = [0u8; 57];
            a.copy_from_slice(public);
            let mut sig = [0u8; 114];
            sig.copy_from_slice(signature);
            if !crate::ed448_rules::acceptable(&a, &sig) {
                return Err(CryptoError::InvalidSignature);
            }
        }
        let key = PKey::public_key_from_raw_bytes(public, sig_id(alg))
            .map_err(|_| CryptoError::InvalidPublicKey)?;
        let mut verifier = Verifier::new_without_digest(&key).map_err(library)?;
        match verifier.verify_oneshot(signature, message) {
            Ok(true) => Ok(()),
            _ => Err(CryptoError::InvalidSignature),
        }
    }

    fn fill_random(out: &mut [u8]) -> Result<(), CryptoError> {
        openssl::rand::rand_bytes(out).map_err(|_| CryptoError::InsufficientRandomness)
    }
}
