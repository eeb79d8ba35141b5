//! The client's durable state in eth-mls-core's encrypted store (its application records):
//! the 1:1 channel device (keys, prekeys, sessions) and the intents. Every save is one
//! transaction; the channel state is written in the same call that hands a received plaintext
//! on (channel spec §9), by the caller saving before acting on it.

use eth_mls_channel::{Backend, Device};
use eth_mls_core::Store;

use crate::Error;
use crate::intent::Intent;

/// The namespace of the channel device.
pub const CHANNEL: &str = "eth-mls/channel";
/// The namespace of intents (key: the intent id, big-endian).
pub const INTENTS: &str = "eth-mls/intents";

fn core(e: eth_mls_core::Error) -> Error {
    Error::Core(e.to_string())
}

/// Saves the channel device.
pub fn save_device<B: Backend, S: Backend>(
    store: &mut Store<S>,
    device: &Device<B>,
) -> Result<(), Error> {
    store
        .put_record(CHANNEL, b"device", &device.to_bytes())
        .map_err(core)
}

/// The saved channel device, if any.
pub fn load_device<B: Backend, S: Backend>(store: &Store<S>) -> Result<Option<Device<B>>, Error> {
    let Some(bytes) = store.record(CHANNEL, b"device").map_err(core)? else {
        return Ok(None);
    };
    let bytes = zeroize::Zeroizing::new(bytes);
    Device::from_bytes(&bytes).map(Some).map_err(Error::Channel)
}

/// Saves an intent record.
pub fn save_intent<S: Backend>(store: &mut Store<S>, intent: &Intent) -> Result<(), Error> {
    store
        .put_record(INTENTS, &intent.id.to_be_bytes(), &intent.encode())
        .map_err(core)
}

/// Every saved intent, by id.
pub fn intents<S: Backend>(store: &Store<S>) -> Result<Vec<Intent>, Error> {
    store
        .records(INTENTS)
        .map_err(core)?
        .iter()
        .map(|(_, v)| Intent::decode(v))
        .collect()
}

/// The namespace of invitations sent and not answered yet (key: the request id).
pub const INVITATIONS: &str = "eth-mls/invitations";

/// How often each invitation was sent and when it is sent next (key: the request id).
pub const INVITATION_SENDS: &str = "eth-mls/invitation-sends";

/// How often invitation `request_id` was sent, and the Unix time it is due again; `None`
/// when it was never sent (a crash right after it was recorded).
pub fn invitation_sends<S: Backend>(
    store: &Store<S>,
    request_id: &crate::wire::RequestId,
) -> Result<Option<(u32, u64)>, Error> {
    let Some(v) = store.record(INVITATION_SENDS, request_id).map_err(core)? else {
        return Ok(None);
    };
    let bad = || Error::Decode {
        what: "invitation sends",
    };
    let (sends, next) = v.split_at_checked(4).ok_or_else(bad)?;
    let sends = u32::from_be_bytes(sends.try_into().map_err(|_| bad())?);
    let next = u64::from_be_bytes(next.try_into().map_err(|_| bad())?);
    Ok(Some((sends, next)))
}

/// Records that invitation `request_id` was sent `sends` times and is due again at `next`.
pub fn put_invitation_sends<S: Backend>(
    store: &mut Store<S>,
    request_id: &crate::wire::RequestId,
    sends: u32,
    next: u64,
) -> Result<(), Error> {
    let mut v = sends.to_be_bytes().to_vec();
    v.extend_from_slice(&next.to_be_bytes());
    store
        .put_record(INVITATION_SENDS, request_id, &v)
        .map_err(core)
}

/// Forgets invitation `request_id` (expired): it is not sent again, and an answer to it is
/// [`Error::UnknownRequest`].
pub fn drop_invitation<S: Backend>(
    store: &mut Store<S>,
    request_id: &crate::wire::RequestId,
) -> Result<(), Error> {
    store
        .delete_record(INVITATION_SENDS, request_id)
        .map_err(core)?;
    store.delete_record(INVITATIONS, request_id).map_err(core)?;
    Ok(())
}

/// Records an invitation sent to `invitee` (WIRE.md §4, step 2), before it is sent.
pub fn remember_invitation<S: Backend>(
    store: &mut Store<S>,
    invitee: eth_mls_siwe::Address,
    req: &crate::wire::InvitationRequest,
) -> Result<(), Error> {
    let mut value = invitee.as_slice().to_vec();
    value.extend_from_slice(&crate::wire::ClientMessage::InvitationRequest(req.clone()).encode()?);
    store
        .put_record(INVITATIONS, &req.request_id, &value)
        .map_err(core)
}

/// The invitation an answer from `peer` names (WIRE.md §4, step 4.1), taken out of the store:
/// an id that names no invitation sent to this account, or one already answered, is
/// [`Error::UnknownRequest`]. Call it once the answer has been verified, or use
/// [`pending_invitation`] to look first.
pub fn take_invitation<S: Backend>(
    store: &mut Store<S>,
    peer: eth_mls_siwe::Address,
    request_id: &crate::wire::RequestId,
) -> Result<crate::wire::InvitationRequest, Error> {
    let req = pending_invitation(store, peer, request_id)?;
    drop_invitation(store, request_id)?;
    Ok(req)
}

/// The invitation `request_id` sent to `peer`, if it is still waiting for its answer.
pub fn pending_invitation<S: Backend>(
    store: &Store<S>,
    peer: eth_mls_siwe::Address,
    request_id: &crate::wire::RequestId,
) -> Result<crate::wire::InvitationRequest, Error> {
    let value = store
        .record(INVITATIONS, request_id)
        .map_err(core)?
        .ok_or(Error::UnknownRequest)?;
    let (invitee, message) = value.split_at_checked(20).ok_or(Error::UnknownRequest)?;
    if invitee != peer.as_slice() {
        return Err(Error::UnknownRequest);
    }
    match crate::wire::ClientMessage::decode(message)? {
        crate::wire::ClientMessage::InvitationRequest(req) => Ok(req),
        _ => Err(Error::UnknownRequest),
    }
}
