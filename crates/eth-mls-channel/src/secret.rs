//! Fixed-size secrets: zeroized on drop, redacted in `Debug`, compared in constant time.

use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop};

/// `N` secret bytes: a private key, a root, chain or message key.
///
/// The bytes are wiped when the value is dropped; `Debug` prints only the length; `==`
/// compares in constant time.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct Secret<const N: usize>([u8; N]);

/// An X448 private key (56 bytes, used as drawn; clamping happens inside X448).
pub type X448Secret = Secret<56>;
/// An Ed448 private key: the 57-byte RFC 8032 seed.
pub type Ed448Seed = Secret<57>;
/// A 64-byte chain secret (SK, root, chain and message keys).
pub(crate) type Key64 = Secret<64>;

impl<const N: usize> Secret<N> {
    /// Takes ownership of `bytes`; they are wiped when the secret is dropped.
    pub fn new(bytes: [u8; N]) -> Self {
        Self(bytes)
    }

    /// Copies `bytes`, which must be exactly `N` long.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        let mut out = [0u8; N];
        if bytes.len() != N {
            return None;
        }
        out.copy_from_slice(bytes);
        Some(Self(out))
    }

    /// The secret bytes. Do not copy them anywhere that is not wiped.
    pub fn expose(&self) -> &[u8; N] {
        &self.0
    }
}

impl<const N: usize> std::fmt::Debug for Secret<N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secret<{N}>(redacted)")
    }
}

impl<const N: usize> PartialEq for Secret<N> {
    fn eq(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl<const N: usize> Eq for Secret<N> {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_is_redacted_and_equality_works() {
        let a = Secret::new([0xAB; 56]);
        assert_eq!(format!("{a:?}"), "Secret<56>(redacted)");
        assert_eq!(a, Secret::new([0xAB; 56]));
        assert_ne!(a, Secret::new([0xAC; 56]));
        assert!(Secret::<56>::from_slice(&[0; 55]).is_none());
    }
}
