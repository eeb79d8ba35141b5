//! `OpenMlsCrypto` for any [`Backend`]: suites 0x0004 (default) and 0x0001.

use std::marker::PhantomData;
use std::sync::Arc;

use openmls_traits::crypto::OpenMlsCrypto;
use openmls_traits::types::{
    AeadType, Ciphersuite, CryptoError, ExporterSecret, HashType, HpkeCiphertext, HpkeConfig,
    HpkeKeyPair, KemOutput, SignatureScheme,
};
use tls_codec::SecretVLBytes;

use crate::backend::{AeadAlg, Backend, HashAlg, SigAlg};
use crate::hpke::Hpke;
use crate::verified::{SignedMessage, VerifiedSignatures};
use crate::{SUPPORTED_CIPHERSUITES, SecretBytes};

/// The OpenMLS crypto provider over backend `B`.
///
/// Serves exactly the suites in [`SUPPORTED_CIPHERSUITES`]; any algorithm outside them is
/// refused with a `CryptoError`.
#[derive(Clone, Debug, Default)]
pub struct Crypto<B: Backend> {
    backend: PhantomData<B>,
    verified: Option<Arc<VerifiedSignatures>>,
}

impl<B: Backend> Crypto<B> {
    /// A provider over `B`.
    pub const fn new() -> Self {
        Self {
            backend: PhantomData,
            verified: None,
        }
    }

    /// This provider, accepting the signatures recorded in `verified` without verifying
    /// them again.
    pub fn with_verified_signatures(mut self, verified: Arc<VerifiedSignatures>) -> Self {
        self.verified = Some(verified);
        self
    }
}

pub(crate) fn hash_alg(hash: HashType) -> Result<HashAlg, CryptoError> {
    match hash {
        HashType::Sha2_256 => Ok(HashAlg::Sha256),
        HashType::Sha2_512 => Ok(HashAlg::Sha512),
        HashType::Sha2_384 => Err(CryptoError::UnsupportedHashAlgorithm),
    }
}

fn aead_alg(aead: AeadType) -> Result<AeadAlg, CryptoError> {
    match aead {
        AeadType::Aes128Gcm => Ok(AeadAlg::Aes128Gcm),
        AeadType::Aes256Gcm => Ok(AeadAlg::Aes256Gcm),
        AeadType::ChaCha20Poly1305 => Err(CryptoError::UnsupportedAeadAlgorithm),
    }
}

pub(crate) fn sig_alg(scheme: SignatureScheme) -> Result<SigAlg, CryptoError> {
    match scheme {
        SignatureScheme::ED25519 => Ok(SigAlg::Ed25519),
        SignatureScheme::ED448 => Ok(SigAlg::Ed448),
        _ => Err(CryptoError::UnsupportedSignatureScheme),
    }
}

fn vl(secret: SecretBytes) -> SecretVLBytes {
    SecretVLBytes::new(secret.expose().to_vec())
}

impl<B: Backend> OpenMlsCrypto for Crypto<B> {
    fn supports(&self, ciphersuite: Ciphersuite) -> Result<(), CryptoError> {
        if SUPPORTED_CIPHERSUITES.contains(&ciphersuite) {
            Ok(())
        } else {
            Err(CryptoError::UnsupportedCiphersuite)
        }
    }

    fn supported_ciphersuites(&self) -> Vec<Ciphersuite> {
        SUPPORTED_CIPHERSUITES.to_vec()
    }

    fn hkdf_extract(
        &self,
        hash_type: HashType,
        salt: &[u8],
        ikm: &[u8],
    ) -> Result<SecretVLBytes, CryptoError> {
        B::hkdf_extract(hash_alg(hash_type)?, salt, ikm).map(vl)
    }

    fn hmac(
        &self,
        hash_type: HashType,
        key: &[u8],
        message: &[u8],
    ) -> Result<SecretVLBytes, CryptoError> {
        B::hmac(hash_alg(hash_type)?, key, message).map(vl)
    }

    fn hkdf_expand(
        &self,
        hash_type: HashType,
        prk: &[u8],
        info: &[u8],
        okm_len: usize,
    ) -> Result<SecretVLBytes, CryptoError> {
        B::hkdf_expand(hash_alg(hash_type)?, prk, info, okm_len).map(vl)
    }

    fn hash(&self, hash_type: HashType, data: &[u8]) -> Result<Vec<u8>, CryptoError> {
        B::hash(hash_alg(hash_type)?, data)
    }

    fn aead_encrypt(
        &self,
        alg: AeadType,
        key: &[u8],
        data: &[u8],
        nonce: &[u8],
        aad: &[u8],
    ) -> Result<Vec<u8>, CryptoError> {
        B::aead_seal(aead_alg(alg)?, key, nonce, aad, data)
    }

    fn aead_decrypt(
        &self,
        alg: AeadType,
        key: &[u8],
        ct_tag: &[u8],
        nonce: &[u8],
        aad: &[u8],
    ) -> Result<Vec<u8>, CryptoError> {
        // openmls takes ownership of the plaintext as a plain Vec.
        B::aead_open(aead_alg(alg)?, key, nonce, aad, ct_tag).map(|p| p.expose().to_vec())
    }

    fn signature_key_gen(&self, alg: SignatureScheme) -> Result<(Vec<u8>, Vec<u8>), CryptoError> {
        let alg = sig_alg(alg)?;
        let mut private = vec![0u8; alg.key_len()];
        B::fill_random(&mut private)?;
        let public = B::sig_public(alg, &private)?;
        Ok((private, public))
    }

    fn verify_signature(
        &self,
        alg: SignatureScheme,
        data: &[u8],
        pk: &[u8],
        signature: &[u8],
    ) -> Result<(), CryptoError> {
        if let Some(verified) = &self.verified {
            let item = SignedMessage {
                scheme: alg,
                public_key: pk,
                message: data,
                signature,
            };
            if verified.contains::<B>(&item) {
                return Ok(());
            }
        }
        B::verify(sig_alg(alg)?, pk, data, signature)
    }

    fn sign(&self, alg: SignatureScheme, data: &[u8], key: &[u8]) -> Result<Vec<u8>, CryptoError> {
        B::sign(sig_alg(alg)?, key, data)
    }

    fn hpke_seal(
        &self,
        config: HpkeConfig,
        pk_r: &[u8],
        info: &[u8],
        aad: &[u8],
        ptxt: &[u8],
    ) -> Result<HpkeCiphertext, CryptoError> {
        let (enc, ct) = Hpke::<B>::new(&config)?.seal(pk_r, info, aad, ptxt)?;
        Ok(HpkeCiphertext {
            kem_output: enc.into(),
            ciphertext: ct.into(),
        })
    }

    fn hpke_open(
        &self,
        config: HpkeConfig,
        input: &HpkeCiphertext,
        sk_r: &[u8],
        info: &[u8],
        aad: &[u8],
    ) -> Result<Vec<u8>, CryptoError> {
        Hpke::<B>::new(&config)?
            .open(
                input.kem_output.as_slice(),
                sk_r,
                info,
                aad,
                input.ciphertext.as_slice(),
            )
            .map(|p| p.expose().to_vec())
    }

    fn hpke_setup_sender_and_export(
        &self,
        config: HpkeConfig,
        pk_r: &[u8],
        info: &[u8],
        exporter_context: &[u8],
        exporter_length: usize,
    ) -> Result<(KemOutput, ExporterSecret), CryptoError> {
        let (enc, secret) = Hpke::<B>::new(&config)?.sender_export(
            pk_r,
            info,
            exporter_context,
            exporter_length,
        )?;
        Ok((enc, secret.expose().to_vec().into()))
    }

    fn hpke_setup_receiver_and_export(
        &self,
        config: HpkeConfig,
        enc: &[u8],
        sk_r: &[u8],
        info: &[u8],
        exporter_context: &[u8],
        exporter_length: usize,
    ) -> Result<ExporterSecret, CryptoError> {
        let secret = Hpke::<B>::new(&config)?.receiver_export(
            enc,
            sk_r,
            info,
            exporter_context,
            exporter_length,
        )?;
        Ok(secret.expose().to_vec().into())
    }

    fn derive_hpke_keypair(
        &self,
        config: HpkeConfig,
        ikm: &[u8],
    ) -> Result<HpkeKeyPair, CryptoError> {
        let (private, public) = Hpke::<B>::new(&config)?.derive_key_pair(ikm)?;
        Ok(HpkeKeyPair {
            private: private.expose().into(),
            public,
        })
    }
}
