//! Prekey bundles (§5): encoding, the signed byte strings, and validation by the initiator.

use std::collections::BTreeSet;

use eth_mls_crypto::Backend;

use crate::codec::{Reader, Writer};
use crate::primitives::{Hex, verify};
use crate::{Error, LABEL_IDENTITY, LABEL_SPK, VERSION};

/// Bytes of one encoded one-time prekey (`uint32 id || key[56]`).
pub const ONE_TIME_PREKEY_LEN: usize = 60;
/// Bytes of a bundle without one-time prekeys (and without their length prefix).
pub const BUNDLE_FIXED_LEN: usize = 431;

/// A signed prekey as published: id, expiry, public key, signature.
#[derive(Clone, PartialEq, Eq)]
pub struct SignedPrekey {
    /// The id (never reused by the device).
    pub id: u32,
    /// Unix seconds from which initiators refuse it.
    pub expiry: u64,
    /// `SPK`.
    pub key: [u8; 56],
    /// `Sign(signature key, SignedPrekeyTBS)`.
    pub signature: [u8; 114],
}

impl std::fmt::Debug for SignedPrekey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignedPrekey")
            .field("id", &self.id)
            .field("expiry", &self.expiry)
            .field("key", &Hex(&self.key))
            .finish_non_exhaustive()
    }
}

/// A one-time prekey as published: id and public key.
#[derive(Clone, PartialEq, Eq)]
pub struct OneTimePrekey {
    /// The id (never reused by the device).
    pub id: u32,
    /// `OPK`.
    pub key: [u8; 56],
}

impl std::fmt::Debug for OneTimePrekey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OneTimePrekey")
            .field("id", &self.id)
            .field("key", &Hex(&self.key))
            .finish()
    }
}

/// A `PrekeyBundle` (§5.1), decoded but not validated. Everything in it is public.
///
/// Validate received bytes with [`PrekeyBundle::validate`], which returns a
/// [`VerifiedBundle`]; only a verified bundle can start a session.
#[derive(Clone, PartialEq, Eq)]
pub struct PrekeyBundle {
    /// The owner's Ethereum account.
    pub address: [u8; 20],
    /// The device's Ed448 signature key.
    pub signature_key: [u8; 57],
    /// The device's X448 identity key `IK`.
    pub identity_key: [u8; 56],
    /// `Sign(signature key, IdentityTBS)`.
    pub identity_signature: [u8; 114],
    /// The current signed prekey.
    pub signed_prekey: SignedPrekey,
    /// One-time prekeys.
    pub one_time_prekeys: Vec<OneTimePrekey>,
}

impl std::fmt::Debug for PrekeyBundle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrekeyBundle")
            .field("address", &Hex(&self.address))
            .field("signature_key", &Hex(&self.signature_key))
            .field("identity_key", &Hex(&self.identity_key))
            .field("signed_prekey", &self.signed_prekey)
            .field("one_time_prekeys", &self.one_time_prekeys)
            .finish_non_exhaustive()
    }
}

/// `IdentityTBS = LABEL_IDENTITY || address || IK` (107 bytes).
pub fn identity_tbs(address: &[u8; 20], identity_key: &[u8; 56]) -> Vec<u8> {
    [LABEL_IDENTITY, address, identity_key].concat()
}

/// `SignedPrekeyTBS = LABEL_SPK || IK || uint32 id || uint64 expiry || SPK` (156 bytes).
pub fn signed_prekey_tbs(identity_key: &[u8; 56], id: u32, expiry: u64, spk: &[u8; 56]) -> Vec<u8> {
    [
        LABEL_SPK,
        identity_key,
        &id.to_be_bytes(),
        &expiry.to_be_bytes(),
        spk,
    ]
    .concat()
}

impl PrekeyBundle {
    /// The byte-exact encoding.
    pub fn encode(&self) -> Result<Vec<u8>, Error> {
        let opks = self.one_time_prekeys.len() * ONE_TIME_PREKEY_LEN;
        let mut w = Writer::with_capacity(BUNDLE_FIXED_LEN + 4 + opks);
        w.u16(VERSION);
        w.bytes(&self.address);
        w.bytes(&self.signature_key);
        w.bytes(&self.identity_key);
        w.bytes(&self.identity_signature);
        w.u32(self.signed_prekey.id);
        w.u64(self.signed_prekey.expiry);
        w.bytes(&self.signed_prekey.key);
        w.bytes(&self.signed_prekey.signature);
        w.varint(opks)?;
        for k in &self.one_time_prekeys {
            w.u32(k.id);
            w.bytes(&k.key);
        }
        Ok(w.buf)
    }

    /// Decodes a bundle (§5.3 step 1) without checking its signatures.
    pub fn decode(bytes: &[u8]) -> Result<Self, Error> {
        let mut r = Reader::new(bytes);
        let version = r.u16("version")?;
        if version != VERSION {
            return Err(Error::UnsupportedVersion { version });
        }
        let address = r.array("address")?;
        let signature_key = r.array("signature_key")?;
        let identity_key = r.array("identity_key")?;
        let identity_signature = r.array("identity_signature")?;
        let signed_prekey = SignedPrekey {
            id: r.u32("signed_prekey.id")?,
            expiry: r.u64("signed_prekey.expiry")?,
            key: r.array("signed_prekey.key")?,
            signature: r.array("signed_prekey.signature")?,
        };
        let list = r.vec("one_time_prekeys")?;
        r.finish("trailing bytes after the bundle")?;
        if list.len() % ONE_TIME_PREKEY_LEN != 0 {
            return Err(Error::Decode {
                what: "one_time_prekeys is not a multiple of 60 bytes",
            });
        }
        let mut one_time_prekeys = Vec::with_capacity(list.len() / ONE_TIME_PREKEY_LEN);
        let mut lr = Reader::new(list);
        while lr.remaining() > 0 {
            one_time_prekeys.push(OneTimePrekey {
                id: lr.u32("one_time_prekey.id")?,
                key: lr.array("one_time_prekey.key")?,
            });
        }
        Ok(Self {
            address,
            signature_key,
            identity_key,
            identity_signature,
            signed_prekey,
            one_time_prekeys,
        })
    }

    /// `IdentityTBS` of this bundle.
    pub fn identity_tbs(&self) -> Vec<u8> {
        identity_tbs(&self.address, &self.identity_key)
    }

    /// `SignedPrekeyTBS` of this bundle.
    pub fn signed_prekey_tbs(&self) -> Vec<u8> {
        let s = &self.signed_prekey;
        signed_prekey_tbs(&self.identity_key, s.id, s.expiry, &s.key)
    }

    /// Validates `bytes` at `now` (unix seconds), in the order of §5.3: decoding, the identity
    /// signature, the signed-prekey signature, the expiry, distinct one-time prekey ids.
    ///
    /// The caller must still check that `signature_key` is bound to `address` by a valid
    /// credential and that `address` is the account it means to reach (§5.3).
    pub fn validate<B: Backend>(bytes: &[u8], now: u64) -> Result<VerifiedBundle, Error> {
        let b = Self::decode(bytes)?;
        if !verify::<B>(&b.signature_key, &b.identity_tbs(), &b.identity_signature) {
            return Err(Error::BadIdentitySignature);
        }
        if !verify::<B>(
            &b.signature_key,
            &b.signed_prekey_tbs(),
            &b.signed_prekey.signature,
        ) {
            return Err(Error::BadSpkSignature);
        }
        if now >= b.signed_prekey.expiry {
            return Err(Error::SpkExpired {
                id: b.signed_prekey.id,
                expiry: b.signed_prekey.expiry,
                now,
            });
        }
        let mut seen = BTreeSet::new();
        for k in &b.one_time_prekeys {
            if !seen.insert(k.id) {
                return Err(Error::DuplicateOpkId { id: k.id });
            }
        }
        Ok(VerifiedBundle(b))
    }
}

/// A bundle that passed [`PrekeyBundle::validate`]: signatures verified, signed prekey not
/// expired at the time given, one-time prekey ids distinct.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct VerifiedBundle(PrekeyBundle);

impl VerifiedBundle {
    /// The bundle's content.
    pub fn bundle(&self) -> &PrekeyBundle {
        &self.0
    }

    /// The owner's account, as the bundle states it (check the credential binding, §5.3).
    pub fn address(&self) -> &[u8; 20] {
        &self.0.address
    }
}
