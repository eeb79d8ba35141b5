//! The wire format of §8: `ChannelMessage` with its prekey and normal forms.

use crate::codec::{Reader, Writer};
use crate::primitives::Hex;
use crate::{Error, VERSION};

/// Length of an AES-256-GCM tag: the shortest valid ciphertext.
pub const TAG_LEN: usize = 16;

/// Largest ciphertext this implementation encodes or accepts (the 30-bit length prefix).
pub const MAX_CIPHERTEXT: usize = crate::codec::MAX_VARINT;

/// `MessageHeader` (§8.1): 64 bytes, `Encode(header)` in the associated data.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct MessageHeader {
    /// The sender's current ratchet public key.
    pub dh: [u8; 56],
    /// Number of messages in the sender's previous sending chain.
    pub pn: u32,
    /// This message's number in its sending chain.
    pub n: u32,
}

impl MessageHeader {
    /// `dh || uint32 pn || uint32 n`.
    pub fn encode(&self) -> [u8; 64] {
        let mut out = [0u8; 64];
        out[..56].copy_from_slice(&self.dh);
        out[56..60].copy_from_slice(&self.pn.to_be_bytes());
        out[60..].copy_from_slice(&self.n.to_be_bytes());
        out
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, Error> {
        Ok(Self {
            dh: r.array("header.dh")?,
            pn: r.u32("header.pn")?,
            n: r.u32("header.n")?,
        })
    }
}

impl std::fmt::Debug for MessageHeader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MessageHeader")
            .field("dh", &Hex(&self.dh))
            .field("pn", &self.pn)
            .field("n", &self.n)
            .finish()
    }
}

/// `RatchetMessage`: a header and the AES-256-GCM output (tag included).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct RatchetMessage {
    /// The header.
    pub header: MessageHeader,
    /// Ciphertext followed by the 16-byte tag.
    pub ciphertext: Vec<u8>,
}

impl RatchetMessage {
    fn write(&self, w: &mut Writer) -> Result<(), Error> {
        w.bytes(&self.header.encode());
        w.vec(&self.ciphertext)
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, Error> {
        let header = MessageHeader::read(r)?;
        let ciphertext = r.vec("ciphertext")?;
        if ciphertext.len() < TAG_LEN {
            return Err(Error::Decode {
                what: "ciphertext shorter than its tag",
            });
        }
        Ok(Self {
            header,
            ciphertext: ciphertext.to_vec(),
        })
    }
}

/// `PrekeyMessage`: the X3DH fields of the initiator and its first ratchet message(s).
#[derive(Clone, PartialEq, Eq)]
pub struct PrekeyMessage {
    /// The initiator's Ethereum account (`address_A`).
    pub sender: [u8; 20],
    /// The initiator's identity key `IK_A`.
    pub identity_key: [u8; 56],
    /// The initiator's ephemeral key `EK_A`.
    pub ephemeral_key: [u8; 56],
    /// The id of the responder's signed prekey used.
    pub signed_prekey_id: u32,
    /// The id of the responder's one-time prekey used, if any.
    pub one_time_prekey_id: Option<u32>,
    /// The ratchet message.
    pub message: RatchetMessage,
}

impl std::fmt::Debug for PrekeyMessage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrekeyMessage")
            .field("sender", &Hex(&self.sender))
            .field("identity_key", &Hex(&self.identity_key))
            .field("ephemeral_key", &Hex(&self.ephemeral_key))
            .field("signed_prekey_id", &self.signed_prekey_id)
            .field("one_time_prekey_id", &self.one_time_prekey_id)
            .field("message", &self.message)
            .finish()
    }
}

/// `NormalMessage`: a ratchet message of an established session.
#[derive(Clone, PartialEq, Eq)]
pub struct NormalMessage {
    /// The session id (§6.2).
    pub session_id: [u8; 32],
    /// The ratchet message.
    pub message: RatchetMessage,
}

impl std::fmt::Debug for NormalMessage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NormalMessage")
            .field("session_id", &Hex(&self.session_id))
            .field("message", &self.message)
            .finish()
    }
}

/// `ChannelMessage` (§8.1): what travels on the transports.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum ChannelMessage {
    /// `msg_type` 1.
    Prekey(PrekeyMessage),
    /// `msg_type` 2.
    Normal(NormalMessage),
}

impl ChannelMessage {
    /// The inner ratchet message.
    pub fn ratchet_message(&self) -> &RatchetMessage {
        match self {
            Self::Prekey(m) => &m.message,
            Self::Normal(m) => &m.message,
        }
    }

    /// The byte-exact encoding.
    pub fn encode(&self) -> Result<Vec<u8>, Error> {
        let body = self.ratchet_message().ciphertext.len();
        let mut w = Writer::with_capacity(body + 220);
        w.u16(VERSION);
        match self {
            Self::Prekey(m) => {
                w.u8(1);
                w.bytes(&m.sender);
                w.bytes(&m.identity_key);
                w.bytes(&m.ephemeral_key);
                w.u32(m.signed_prekey_id);
                w.opt_u32(m.one_time_prekey_id);
                m.message.write(&mut w)?;
            }
            Self::Normal(m) => {
                w.u8(2);
                w.bytes(&m.session_id);
                m.message.write(&mut w)?;
            }
        }
        Ok(w.buf)
    }

    /// Decodes a message (§8.3). Consults no state; never panics.
    pub fn decode(bytes: &[u8]) -> Result<Self, Error> {
        let mut r = Reader::new(bytes);
        let version = r.u16("version")?;
        if version != VERSION {
            return Err(Error::UnsupportedVersion { version });
        }
        let msg = match r.u8("msg_type")? {
            1 => Self::Prekey(PrekeyMessage {
                sender: r.array("sender")?,
                identity_key: r.array("identity_key")?,
                ephemeral_key: r.array("ephemeral_key")?,
                signed_prekey_id: r.u32("signed_prekey_id")?,
                one_time_prekey_id: r.opt_u32("one_time_prekey_id")?,
                message: RatchetMessage::read(&mut r)?,
            }),
            2 => Self::Normal(NormalMessage {
                session_id: r.array("session_id")?,
                message: RatchetMessage::read(&mut r)?,
            }),
            _ => return Err(Error::Decode { what: "msg_type" }),
        };
        r.finish("trailing bytes after the message")?;
        Ok(msg)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;

    fn arb_message() -> impl Strategy<Value = ChannelMessage> {
        let ratchet = (
            any::<[u8; 32]>(),
            any::<[u8; 24]>(),
            any::<u32>(),
            any::<u32>(),
            proptest::collection::vec(any::<u8>(), 16..200),
        )
            .prop_map(|(a, b, pn, n, ciphertext)| {
                let mut dh = [0u8; 56];
                dh[..32].copy_from_slice(&a);
                dh[32..].copy_from_slice(&b);
                RatchetMessage {
                    header: MessageHeader { dh, pn, n },
                    ciphertext,
                }
            });
        prop_oneof![
            (
                any::<[u8; 20]>(),
                any::<[u8; 32]>(),
                any::<u32>(),
                any::<Option<u32>>(),
                ratchet.clone()
            )
                .prop_map(|(sender, k, spk, opk, message)| {
                    let mut key = [0u8; 56];
                    key[..32].copy_from_slice(&k);
                    ChannelMessage::Prekey(PrekeyMessage {
                        sender,
                        identity_key: key,
                        ephemeral_key: [7; 56],
                        signed_prekey_id: spk,
                        one_time_prekey_id: opk,
                        message,
                    })
                }),
            (any::<[u8; 32]>(), ratchet).prop_map(|(session_id, message)| {
                ChannelMessage::Normal(NormalMessage {
                    session_id,
                    message,
                })
            }),
        ]
    }

    proptest! {
        #[test]
        fn round_trip(m in arb_message()) {
            let bytes = m.encode().unwrap();
            prop_assert_eq!(ChannelMessage::decode(&bytes).unwrap(), m);
        }

        #[test]
        fn truncation_and_extension_fail(m in arb_message(), cut in any::<prop::sample::Index>()) {
            let bytes = m.encode().unwrap();
            let at = cut.index(bytes.len());
            prop_assert!(ChannelMessage::decode(&bytes[..at]).is_err());
            let mut longer = bytes.clone();
            longer.push(0);
            prop_assert!(ChannelMessage::decode(&longer).is_err());
        }

        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = ChannelMessage::decode(&bytes);
        }
    }
}
