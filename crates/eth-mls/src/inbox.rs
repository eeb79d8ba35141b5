//! An account's 1:1 inbox on chain (ERC-7627 `MessageSent` to the account under its inbox
//! keyIndex): each message is a channel message whose plaintext is a [`ClientMessage`]. The
//! reader skips the account's own bundle self-messages, drops channel duplicates silently
//! (channel spec §10), and reports every other failure as an item — a peer's garbage never
//! stops the reader and is never shown as a message.

use eth_mls_chain::{MessageSent, bundle_session_id};
use eth_mls_channel::{Backend, Device, Received};
use eth_mls_siwe::Address;

use crate::Error;
use crate::wire::ClientMessage;

/// What one inbox message turned out to be.
#[derive(Debug)]
pub enum InboxItem {
    /// A client message from a device of `received.peer_address`.
    Message {
        /// The channel's result (session, peer, whether it created the session).
        received: Received,
        /// The decoded client message.
        message: ClientMessage,
    },
    /// Not for the application: the account's own bundle, or a channel duplicate.
    Skipped,
    /// A message that failed (report it; never answer it, channel spec §10).
    Failed {
        /// The account that sent it on chain.
        from: Address,
        /// Why.
        error: Error,
    },
}

/// Opens one `MessageSent` event of the inbox with `device` at `now` (unix seconds).
pub fn open<B: Backend>(device: &mut Device<B>, event: &MessageSent, now: u64) -> InboxItem {
    if event.sessionId == bundle_session_id() {
        return InboxItem::Skipped;
    }
    let received = match device.receive(&event.encryptedMessage, now) {
        Ok(r) => r,
        Err(e) if e.is_duplicate() => return InboxItem::Skipped,
        Err(e) => {
            return InboxItem::Failed {
                from: event.from,
                error: Error::Channel(e),
            };
        }
    };
    match ClientMessage::decode(&received.plaintext) {
        Ok(message) => InboxItem::Message { received, message },
        Err(error) => InboxItem::Failed {
            from: event.from,
            error,
        },
    }
}
