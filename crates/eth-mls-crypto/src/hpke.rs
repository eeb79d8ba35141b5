//! HPKE base mode (RFC 9180), single shot, over any [`Backend`]: DHKEM(X25519, HKDF-SHA256)
//! (KEM 0x0020) and DHKEM(X448, HKDF-SHA512) (KEM 0x0021), HKDF-SHA256/512, AES-128/256-GCM
//! and export-only.

use std::marker::PhantomData;

use openmls_traits::types::{CryptoError, HpkeAeadType, HpkeConfig, HpkeKdfType, HpkeKemType};

use crate::SecretBytes;
use crate::backend::{AeadAlg, Backend, DhAlg, HashAlg};

const VERSION_LABEL: &[u8] = b"HPKE-v1";
const MODE_BASE: u8 = 0x00;

/// A DH-based KEM (RFC 9180 §4.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Kem {
    pub(crate) dh: DhAlg,
    pub(crate) kdf: HashAlg,
    id: u16,
}

impl Kem {
    pub(crate) const X25519: Kem = Kem {
        dh: DhAlg::X25519,
        kdf: HashAlg::Sha256,
        id: 0x0020,
    };
    pub(crate) const X448: Kem = Kem {
        dh: DhAlg::X448,
        kdf: HashAlg::Sha512,
        id: 0x0021,
    };

    fn suite_id(&self) -> [u8; 5] {
        let id = self.id.to_be_bytes();
        [b'K', b'E', b'M', id[0], id[1]]
    }

    /// Length of the KEM shared secret (Nsecret).
    fn n_secret(&self) -> usize {
        self.kdf.output_len()
    }
}

/// An HPKE configuration this crate supports.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Hpke<B> {
    pub(crate) kem: Kem,
    kdf: HashAlg,
    /// `None`: export-only.
    aead: Option<AeadAlg>,
    kdf_id: u16,
    aead_id: u16,
    backend: PhantomData<B>,
}

fn labeled_extract<B: Backend>(
    kdf: HashAlg,
    suite_id: &[u8],
    salt: &[u8],
    label: &[u8],
    ikm: &[u8],
) -> Result<SecretBytes, CryptoError> {
    let mut labeled =
        Vec::with_capacity(VERSION_LABEL.len() + suite_id.len() + label.len() + ikm.len());
    labeled.extend_from_slice(VERSION_LABEL);
    labeled.extend_from_slice(suite_id);
    labeled.extend_from_slice(label);
    labeled.extend_from_slice(ikm);
    let labeled = SecretBytes::new(labeled);
    B::hkdf_extract(kdf, salt, labeled.expose())
}

fn labeled_expand<B: Backend>(
    kdf: HashAlg,
    suite_id: &[u8],
    prk: &[u8],
    label: &[u8],
    info: &[u8],
    len: usize,
) -> Result<SecretBytes, CryptoError> {
    let len16 = u16::try_from(len).map_err(|_| CryptoError::HkdfOutputLengthInvalid)?;
    let mut labeled =
        Vec::with_capacity(2 + VERSION_LABEL.len() + suite_id.len() + label.len() + info.len());
    labeled.extend_from_slice(&len16.to_be_bytes());
    labeled.extend_from_slice(VERSION_LABEL);
    labeled.extend_from_slice(suite_id);
    labeled.extend_from_slice(label);
    labeled.extend_from_slice(info);
    B::hkdf_expand(kdf, prk, &labeled, len)
}

/// The secrets of an HPKE context (RFC 9180 §5.1).
struct Context {
    key: SecretBytes,
    base_nonce: SecretBytes,
    exporter_secret: SecretBytes,
}

impl<B: Backend> Hpke<B> {
    /// The configuration for `config`, or an error naming what is unsupported.
    pub(crate) fn new(config: &HpkeConfig) -> Result<Self, CryptoError> {
        let HpkeConfig(kem, kdf, aead) = config;
        let kem = match kem {
            HpkeKemType::DhKem25519 => Kem::X25519,
            HpkeKemType::DhKem448 => Kem::X448,
            _ => return Err(CryptoError::UnsupportedCiphersuite),
        };
        let kdf = match kdf {
            HpkeKdfType::HkdfSha256 => HashAlg::Sha256,
            HpkeKdfType::HkdfSha512 => HashAlg::Sha512,
            HpkeKdfType::HkdfSha384 => return Err(CryptoError::UnsupportedKdf),
        };
        let aead_alg = match aead {
            HpkeAeadType::AesGcm128 => Some(AeadAlg::Aes128Gcm),
            HpkeAeadType::AesGcm256 => Some(AeadAlg::Aes256Gcm),
            HpkeAeadType::Export => None,
            HpkeAeadType::ChaCha20Poly1305 => return Err(CryptoError::UnsupportedAeadAlgorithm),
        };
        Ok(Self {
            kem,
            kdf,
            aead: aead_alg,
            kdf_id: config.1 as u16,
            aead_id: config.2 as u16,
            backend: PhantomData,
        })
    }

    fn suite_id(&self) -> [u8; 10] {
        let k = self.kem.id.to_be_bytes();
        let f = self.kdf_id.to_be_bytes();
        let a = self.aead_id.to_be_bytes();
        [b'H', b'P', b'K', b'E', k[0], k[1], f[0], f[1], a[0], a[1]]
    }

    /// DeriveKeyPair (RFC 9180 §7.1.3 for X25519/X448): deterministic in `ikm`.
    pub(crate) fn derive_key_pair(
        &self,
        ikm: &[u8],
    ) -> Result<(SecretBytes, Vec<u8>), CryptoError> {
        let kem = self.kem;
        let suite = kem.suite_id();
        let dkp_prk = labeled_extract::<B>(kem.kdf, &suite, b"", b"dkp_prk", ikm)?;
        let sk = labeled_expand::<B>(
            kem.kdf,
            &suite,
            dkp_prk.expose(),
            b"sk",
            b"",
            kem.dh.key_len(),
        )?;
        let pk = B::dh_public(kem.dh, sk.expose())?;
        Ok((sk, pk))
    }

    /// ExtractAndExpand (RFC 9180 §4.1).
    fn extract_and_expand(
        &self,
        dh: &SecretBytes,
        kem_context: &[u8],
    ) -> Result<SecretBytes, CryptoError> {
        let kem = self.kem;
        let suite = kem.suite_id();
        let eae_prk = labeled_extract::<B>(kem.kdf, &suite, b"", b"eae_prk", dh.expose())?;
        labeled_expand::<B>(
            kem.kdf,
            &suite,
            eae_prk.expose(),
            b"shared_secret",
            kem_context,
            kem.n_secret(),
        )
    }

    /// Encap (RFC 9180 §4.1) with a fresh ephemeral key pair.
    fn encap(&self, pk_r: &[u8]) -> Result<(SecretBytes, Vec<u8>), CryptoError> {
        if pk_r.len() != self.kem.dh.key_len() {
            return Err(CryptoError::InvalidPublicKey);
        }
        let mut ikm = vec![0u8; self.kem.dh.key_len()];
        B::fill_random(&mut ikm)?;
        let ikm = SecretBytes::new(ikm);
        let (sk_e, enc) = self.derive_key_pair(ikm.expose())?;
        let dh = B::dh(self.kem.dh, sk_e.expose(), pk_r)?;
        let mut kem_context = enc.clone();
        kem_context.extend_from_slice(pk_r);
        Ok((self.extract_and_expand(&dh, &kem_context)?, enc))
    }

    fn decap(&self, enc: &[u8], sk_r: &[u8]) -> Result<SecretBytes, CryptoError> {
        if enc.len() != self.kem.dh.key_len() {
            return Err(CryptoError::InvalidLength);
        }
        if sk_r.len() != self.kem.dh.key_len() {
            return Err(CryptoError::InvalidLength);
        }
        let dh = B::dh(self.kem.dh, sk_r, enc)?;
        let pk_r = B::dh_public(self.kem.dh, sk_r)?;
        let mut kem_context = enc.to_vec();
        kem_context.extend_from_slice(&pk_r);
        self.extract_and_expand(&dh, &kem_context)
    }

    /// KeySchedule for mode_base (RFC 9180 §5.1).
    fn key_schedule(
        &self,
        shared_secret: &SecretBytes,
        info: &[u8],
    ) -> Result<Context, CryptoError> {
        let suite = self.suite_id();
        let kdf = self.kdf;
        let psk_id_hash = labeled_extract::<B>(kdf, &suite, b"", b"psk_id_hash", b"")?;
        let info_hash = labeled_extract::<B>(kdf, &suite, b"", b"info_hash", info)?;
        let mut context = Vec::with_capacity(1 + 2 * kdf.output_len());
        context.push(MODE_BASE);
        context.extend_from_slice(psk_id_hash.expose());
        context.extend_from_slice(info_hash.expose());
        let secret = labeled_extract::<B>(kdf, &suite, shared_secret.expose(), b"secret", b"")?;
        let (key, base_nonce) = match self.aead {
            Some(aead) => (
                labeled_expand::<B>(
                    kdf,
                    &suite,
                    secret.expose(),
                    b"key",
                    &context,
                    aead.key_len(),
                )?,
                labeled_expand::<B>(
                    kdf,
                    &suite,
                    secret.expose(),
                    b"base_nonce",
                    &context,
                    AeadAlg::NONCE_LEN,
                )?,
            ),
            None => (SecretBytes::default(), SecretBytes::default()),
        };
        let exporter_secret = labeled_expand::<B>(
            kdf,
            &suite,
            secret.expose(),
            b"exp",
            &context,
            kdf.output_len(),
        )?;
        Ok(Context {
            key,
            base_nonce,
            exporter_secret,
        })
    }

    fn export(
        &self,
        ctx: &Context,
        exporter_context: &[u8],
        len: usize,
    ) -> Result<SecretBytes, CryptoError> {
        labeled_expand::<B>(
            self.kdf,
            &self.suite_id(),
            ctx.exporter_secret.expose(),
            b"sec",
            exporter_context,
            len,
        )
        .map_err(|_| CryptoError::ExporterError)
    }

    /// Single-shot seal: (enc, ciphertext).
    pub(crate) fn seal(
        &self,
        pk_r: &[u8],
        info: &[u8],
        aad: &[u8],
        plaintext: &[u8],
    ) -> Result<(Vec<u8>, Vec<u8>), CryptoError> {
        let aead = self.aead.ok_or(CryptoError::UnsupportedAeadAlgorithm)?;
        let (shared, enc) = self.encap(pk_r)?;
        let ctx = self.key_schedule(&shared, info)?;
        let ct = B::aead_seal(
            aead,
            ctx.key.expose(),
            ctx.base_nonce.expose(),
            aad,
            plaintext,
        )?;
        Ok((enc, ct))
    }

    /// Single-shot open.
    pub(crate) fn open(
        &self,
        enc: &[u8],
        sk_r: &[u8],
        info: &[u8],
        aad: &[u8],
        ciphertext: &[u8],
    ) -> Result<SecretBytes, CryptoError> {
        let aead = self.aead.ok_or(CryptoError::UnsupportedAeadAlgorithm)?;
        let shared = self
            .decap(enc, sk_r)
            .map_err(|_| CryptoError::HpkeDecryptionError)?;
        let ctx = self.key_schedule(&shared, info)?;
        B::aead_open(
            aead,
            ctx.key.expose(),
            ctx.base_nonce.expose(),
            aad,
            ciphertext,
        )
        .map_err(|_| CryptoError::HpkeDecryptionError)
    }

    /// SetupBaseS + Export: (enc, exported secret).
    pub(crate) fn sender_export(
        &self,
        pk_r: &[u8],
        info: &[u8],
        exporter_context: &[u8],
        len: usize,
    ) -> Result<(Vec<u8>, SecretBytes), CryptoError> {
        let (shared, enc) = self
            .encap(pk_r)
            .map_err(|_| CryptoError::SenderSetupError)?;
        let ctx = self.key_schedule(&shared, info)?;
        Ok((enc, self.export(&ctx, exporter_context, len)?))
    }

    /// SetupBaseR + Export.
    pub(crate) fn receiver_export(
        &self,
        enc: &[u8],
        sk_r: &[u8],
        info: &[u8],
        exporter_context: &[u8],
        len: usize,
    ) -> Result<SecretBytes, CryptoError> {
        let shared = self
            .decap(enc, sk_r)
            .map_err(|_| CryptoError::ReceiverSetupError)?;
        let ctx = self.key_schedule(&shared, info)?;
        self.export(&ctx, exporter_context, len)
    }
}
