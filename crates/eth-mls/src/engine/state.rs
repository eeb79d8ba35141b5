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

/// The namespace of the channel's sessions, one record each (key: the session id).
pub const CHANNEL_SESSIONS: &str = "eth-mls/channel-sessions";

/// Saves the whole channel device: its keys, and each session in a record of its own (records
/// of sessions it no longer holds are deleted). A message that changed one session is saved
/// with [`save_session`] (and [`save_device_keys`] when it used a prekey): the device is not
/// rewritten whole for every frame (security review L1).
pub fn save_device<B: Backend, S: Backend>(
    store: &mut Store<S>,
    device: &Device<B>,
) -> Result<(), Error> {
    save_device_keys(store, device)?;
    for s in device.sessions() {
        store
            .put_record(CHANNEL_SESSIONS, s.id(), &s.to_bytes())
            .map_err(core)?;
    }
    for (id, _) in store.records(CHANNEL_SESSIONS).map_err(core)? {
        let held = <[u8; 32]>::try_from(id.as_slice())
            .ok()
            .is_some_and(|id| device.session(&id).is_some());
        if !held {
            store.delete_record(CHANNEL_SESSIONS, &id).map_err(core)?;
        }
    }
    Ok(())
}

/// Saves the device's keys, prekeys and used prekey ids (not its sessions).
pub fn save_device_keys<B: Backend, S: Backend>(
    store: &mut Store<S>,
    device: &Device<B>,
) -> Result<(), Error> {
    store
        .put_record(CHANNEL, b"device", &device.keys_to_bytes())
        .map_err(core)
}

/// Saves what a received frame changed, in one transaction: session `id` as the device holds
/// it (or its deletion), and with `keys` the device's keys too (a new session used a
/// one-time prekey).
pub fn save_received<B: Backend, S: Backend>(
    store: &mut Store<S>,
    device: &Device<B>,
    id: &[u8; 32],
    keys: bool,
) -> Result<(), Error> {
    use eth_mls_core::RecordWrite;
    let session = device.session(id).map(|s| s.to_bytes());
    let key_bytes = keys.then(|| device.keys_to_bytes());
    let mut writes = Vec::with_capacity(2);
    writes.push(match &session {
        Some(bytes) => RecordWrite::Put {
            namespace: CHANNEL_SESSIONS,
            key: id,
            value: bytes,
        },
        None => RecordWrite::Delete {
            namespace: CHANNEL_SESSIONS,
            key: id,
        },
    });
    if let Some(bytes) = &key_bytes {
        writes.push(RecordWrite::Put {
            namespace: CHANNEL,
            key: b"device",
            value: bytes,
        });
    }
    store.write_records(&writes).map_err(core)
}

/// Saves session `id` as the device holds it, or deletes its record when the device holds it
/// no more.
pub fn save_session<B: Backend, S: Backend>(
    store: &mut Store<S>,
    device: &Device<B>,
    id: &[u8; 32],
) -> Result<(), Error> {
    match device.session(id) {
        Some(s) => store
            .put_record(CHANNEL_SESSIONS, id, &s.to_bytes())
            .map_err(core),
        None => store
            .delete_record(CHANNEL_SESSIONS, id)
            .map_err(core)
            .map(|_| ()),
    }
}

/// The saved channel device with its sessions, if any, and whether it was saved whole by an
/// earlier version (its sessions inside the device record): then [`save_device`] it once.
pub fn load_device<B: Backend, S: Backend>(store: &Store<S>) -> Result<Option<Device<B>>, Error> {
    Ok(load_device_marked(store)?.map(|(d, _)| d))
}

/// [`load_device`], with whether the device record held sessions (an earlier version's).
pub fn load_device_marked<B: Backend, S: Backend>(
    store: &Store<S>,
) -> Result<Option<(Device<B>, bool)>, Error> {
    let Some(bytes) = store.record(CHANNEL, b"device").map_err(core)? else {
        return Ok(None);
    };
    let bytes = zeroize::Zeroizing::new(bytes);
    let mut device = Device::<B>::from_bytes(&bytes).map_err(Error::Channel)?;
    let legacy = device.sessions().next().is_some();
    for (_, v) in store.records(CHANNEL_SESSIONS).map_err(core)? {
        let v = zeroize::Zeroizing::new(v);
        device.insert_session(eth_mls_channel::Session::from_bytes(&v).map_err(Error::Channel)?);
    }
    Ok(Some((device, legacy)))
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
