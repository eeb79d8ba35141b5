//! EIP-191 `personal_sign` messages: hashing, signing, and address recovery.

use alloy_primitives::{Address, B256, keccak256};
use k256::ecdsa::{RecoveryId, Signature, SigningKey, VerifyingKey};

/// Why a 65-byte signature does not yield an address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// Not 65 bytes (r || s || v).
    #[error("signature must be 65 bytes (r, s, v), got {0}")]
    Length(usize),
    /// v is not 0, 1, 27 or 28.
    #[error("recovery byte v = {0} (expected 0, 1, 27 or 28)")]
    RecoveryId(u8),
    /// r or s is zero or not below the group order.
    #[error("r or s is out of range")]
    Malformed,
    /// s is in the upper half of the order (a malleable signature); refused unless allowed.
    #[error("s is in the upper half of the group order (malleable signature)")]
    HighS,
    /// No public key recovers from this signature and hash.
    #[error("no public key recovers from this signature")]
    Unrecoverable,
}

/// The EIP-191 version 0x45 hash: `keccak256("\x19Ethereum Signed Message:\n" || len || message)`.
pub fn hash_message(message: &[u8]) -> B256 {
    let prefix = format!("\x19Ethereum Signed Message:\n{}", message.len());
    keccak256([prefix.as_bytes(), message].concat())
}

/// The address of an secp256k1 public key: the last 20 bytes of keccak256 of its
/// uncompressed coordinates.
pub fn address_of(key: &VerifyingKey) -> Address {
    let point = key.to_sec1_point(false);
    let hash = keccak256(&point.as_bytes()[1..]);
    Address::from_slice(&hash[12..])
}

/// Recovers the signing address of a 65-byte `r || s || v` signature over `hash`.
///
/// `v` may be 0/1 or 27/28. High-s signatures (`s > n/2`) are malleable copies of a low-s
/// one; Ethereum has required low s since EIP-2, so they are refused unless `allow_high_s`.
pub fn recover_address(
    hash: &B256,
    signature: &[u8],
    allow_high_s: bool,
) -> Result<Address, SignatureError> {
    if signature.len() != 65 {
        return Err(SignatureError::Length(signature.len()));
    }
    let v = signature[64];
    let parity = match v {
        0 | 27 => 0,
        1 | 28 => 1,
        _ => return Err(SignatureError::RecoveryId(v)),
    };
    let mut sig = Signature::from_slice(&signature[..64]).map_err(|_| SignatureError::Malformed)?;
    let mut recid = RecoveryId::from_byte(parity).ok_or(SignatureError::RecoveryId(v))?;
    let normalized = sig.normalize_s();
    if normalized != sig {
        if !allow_high_s {
            return Err(SignatureError::HighS);
        }
        // Negating s flips the parity of the recovered point's y.
        sig = normalized;
        recid = RecoveryId::new(!recid.is_y_odd(), recid.is_x_reduced());
    }
    let key = VerifyingKey::recover_from_prehash(hash.as_slice(), &sig, recid)
        .map_err(|_| SignatureError::Unrecoverable)?;
    Ok(address_of(&key))
}

/// Signs `message` the way `personal_sign` does: EIP-191 hash, low-s ECDSA, v = 27 or 28.
pub fn sign_message(key: &SigningKey, message: &[u8]) -> [u8; 65] {
    let hash = hash_message(message);
    let (sig, recid) = key.sign_prehash_recoverable(hash.as_slice());
    let mut out = [0u8; 65];
    out[..64].copy_from_slice(&sig.to_bytes());
    out[64] = 27 + recid.to_byte();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> SigningKey {
        SigningKey::from_slice(&[n; 32]).unwrap()
    }

    #[test]
    fn known_hash() {
        // keccak256("\x19Ethereum Signed Message:\n5hello")
        assert_eq!(
            hash_message(b"hello").to_string(),
            "0x50b2c43fd39106bafbba0da34fc430e1f91e3c96ea2acee2bc34119f92b37750"
        );
    }

    #[test]
    fn sign_and_recover_every_v_form() {
        let k = key(7);
        let address = address_of(k.verifying_key());
        let sig = sign_message(&k, b"hi");
        let hash = hash_message(b"hi");
        assert_eq!(recover_address(&hash, &sig, false).unwrap(), address);
        let mut zero_one = sig;
        zero_one[64] -= 27;
        assert_eq!(recover_address(&hash, &zero_one, false).unwrap(), address);
        let mut bad = sig;
        bad[64] = 29;
        assert_eq!(
            recover_address(&hash, &bad, false),
            Err(SignatureError::RecoveryId(29))
        );
        assert_eq!(
            recover_address(&hash, &sig[..64], false),
            Err(SignatureError::Length(64))
        );
        let other = recover_address(&hash_message(b"ho"), &sig, false);
        assert_ne!(other.ok(), Some(address));
    }

    #[test]
    fn high_s_refused_by_default() {
        let k = key(9);
        let address = address_of(k.verifying_key());
        let sig = sign_message(&k, b"m");
        let hash = hash_message(b"m");
        // Make the malleable twin: s' = n - s, flipped parity.
        let low = Signature::from_slice(&sig[..64]).unwrap();
        let (r, s) = low.split_scalars();
        let high = Signature::from_scalars(r, -*s).unwrap();
        let mut twin = [0u8; 65];
        twin[..64].copy_from_slice(&high.to_bytes());
        twin[64] = if sig[64] == 27 { 28 } else { 27 };
        assert_eq!(
            recover_address(&hash, &twin, false),
            Err(SignatureError::HighS)
        );
        assert_eq!(recover_address(&hash, &twin, true).unwrap(), address);
    }

    #[test]
    fn malformed() {
        let hash = hash_message(b"m");
        assert_eq!(
            recover_address(&hash, &[0u8; 65], false),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            recover_address(&hash, &[0xffu8; 65], false),
            Err(SignatureError::RecoveryId(0xff))
        );
    }
}
