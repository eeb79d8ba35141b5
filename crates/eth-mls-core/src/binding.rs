//! The group's binding to its contract (DESIGN.md decision 13): a GroupContext extension of
//! type [`GROUP_BINDING_EXTENSION_TYPE`] naming the chain, the factory and the group
//! contract, so a look-alike group on another chain or contract cannot pass for this one.
//!
//! Encoding (TLS presentation language, fixed 48 bytes):
//!
//! ```text
//! struct {
//!     uint64 chain_id;
//!     opaque factory[20];
//!     opaque group_contract[20];
//! } EthMlsGroupBinding;
//! ```
//!
//! Groups created with a binding list the extension type in their RequiredCapabilities, so
//! every member must support it; [`crate::Group::join`] refuses a Welcome whose binding is not
//! the one the caller expects. A client also checks that the contract is
//! `factory.predictGroupAddress(creator, groupId)` on a factory it knows, and that the
//! contract's `groupId` is the MLS group id.

use eth_mls_siwe::Address;
use openmls::prelude::{Extension, ExtensionType, UnknownExtension};

/// The GroupContext extension type of the binding (private-use range).
pub const GROUP_BINDING_EXTENSION_TYPE: u16 = 0xF0E2;

/// Where a group lives on chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct GroupBinding {
    /// The chain id.
    pub chain_id: u64,
    /// The `MlsGroupFactory` that created the group contract.
    pub factory: Address,
    /// The group's `MlsGroup` contract.
    pub contract: Address,
}

impl GroupBinding {
    /// The 48-byte encoding.
    pub fn to_bytes(&self) -> [u8; 48] {
        let mut out = [0u8; 48];
        out[..8].copy_from_slice(&self.chain_id.to_be_bytes());
        out[8..28].copy_from_slice(self.factory.as_slice());
        out[28..].copy_from_slice(self.contract.as_slice());
        out
    }

    /// Decodes the 48-byte encoding; `None` for any other length.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        let bytes: &[u8; 48] = bytes.try_into().ok()?;
        let (chain, rest) = bytes.split_at(8);
        let (factory, contract) = rest.split_at(20);
        Some(Self {
            chain_id: u64::from_be_bytes(chain.try_into().ok()?),
            factory: Address::from_slice(factory),
            contract: Address::from_slice(contract),
        })
    }

    /// The extension type as openmls names it.
    pub fn extension_type() -> ExtensionType {
        ExtensionType::Unknown(GROUP_BINDING_EXTENSION_TYPE)
    }

    /// The GroupContext extension.
    pub(crate) fn to_extension(self) -> Extension {
        Extension::Unknown(
            GROUP_BINDING_EXTENSION_TYPE,
            UnknownExtension(self.to_bytes().to_vec()),
        )
    }
}

impl serde::Serialize for GroupBinding {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(self.to_bytes()))
    }
}

impl<'de> serde::Deserialize<'de> for GroupBinding {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <String as serde::Deserialize>::deserialize(d)?;
        hex::decode(&text)
            .ok()
            .and_then(|b| Self::from_bytes(&b))
            .ok_or_else(|| serde::de::Error::custom("a group binding is 48 bytes in hex"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_lengths() {
        let b = GroupBinding {
            chain_id: 31337,
            factory: Address::repeat_byte(0xfa),
            contract: Address::repeat_byte(0xc0),
        };
        assert_eq!(GroupBinding::from_bytes(&b.to_bytes()), Some(b));
        assert_eq!(GroupBinding::from_bytes(&[0u8; 47]), None);
        assert_eq!(GroupBinding::from_bytes(&[0u8; 49]), None);
        let json = serde_json::to_string(&b).unwrap_or_default();
        assert_eq!(serde_json::from_str::<GroupBinding>(&json).ok(), Some(b));
    }
}
