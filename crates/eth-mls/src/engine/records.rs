//! The client's own records in eth-mls-core's encrypted store (besides [`crate::state`]'s
//! device, intents and sent invitations): the groups it follows, the invitations it received,
//! the operation behind each intent, the Welcomes waiting for their registration, and the
//! delivery cursors. Each record is versioned (its first byte) and decoded totally.

use eth_mls_channel::codec::{Reader, Writer};
use eth_mls_core::Store;
use eth_mls_crypto::Backend;
use eth_mls_siwe::Address;

use crate::Error;
use crate::wire::{ClientMessage, InvitationRequest, RequestId};

/// Groups the client follows (key: the contract address).
pub const GROUPS: &str = "eth-mls/groups";
/// Invitations received (key: the request id).
pub const RECEIVED: &str = "eth-mls/received";
/// The operation of each intent (key: the intent id, big-endian).
pub const OPS: &str = "eth-mls/ops";
/// Welcomes received and not joined yet (key: the request id).
pub const WELCOMES: &str = "eth-mls/welcomes";
/// 1:1 messages decrypted and not handled yet (key: keccak256 of the frame): written before
/// the channel state that consumed them, deleted once handled, so a crash between the two
/// loses nothing (the frame comes again and decrypts again) and a crash after them replays
/// the handling.
pub const INCOMING: &str = "eth-mls/incoming";
/// Retries of queued 1:1 messages that failed for a reason that may pass (key: the queued
/// message's key): how many attempts, and the Unix time of the next.
pub const INCOMING_TRIES: &str = "eth-mls/incoming-tries";
/// Queued 1:1 messages given up on (key: the message's key): the message and the last error.
pub const DEAD_LETTERS: &str = "eth-mls/dead-letters";
/// Dead letters kept (the oldest key goes beyond).
pub const MAX_DEAD_LETTERS: usize = 256;
/// Inbox frames whose sender could not be checked yet (the chain unreachable), with their
/// attempts (key: keccak256 of the frame).
pub const HELD: &str = "eth-mls/held-frames";
/// Frames held at most.
pub const MAX_HELD: usize = 256;
/// When each channel session was made, by this client or by the peer (key: the session id):
/// Unix seconds.
pub const SESSIONS: &str = "eth-mls/sessions";
/// Members' requests answered (key: the request id): Unix time (WIRE.md §2: a request id is
/// acted on once).
pub const REQUESTS: &str = "eth-mls/requests-answered";
/// When each member's last request was granted (key: group contract ‖ member): Unix time.
pub const GRANTED: &str = "eth-mls/requests-granted";
/// Invitees' verified consents (key: the invitation's request id): carried by the add
/// commit (WIRE.md §4.1).
pub const CONSENTS: &str = "eth-mls/consents";
/// Delivery cursors (key: the topic's name) and counters.
pub const META: &str = "eth-mls/meta";
/// Application messages received (when the client keeps them), by group and arrival order.
pub const MESSAGES: &str = "eth-mls/messages";

const VERSION: u8 = 1;

fn core(e: eth_mls_core::Error) -> Error {
    Error::Core(e.to_string())
}

fn decode_err(what: &'static str) -> impl Fn(eth_mls_channel::Error) -> Error {
    move |_| Error::Decode { what }
}

fn too_long(field: &'static str) -> impl Fn(eth_mls_channel::Error) -> Error {
    move |_| Error::TooLong {
        field,
        len: usize::MAX,
        max: eth_mls_channel::codec::MAX_VARINT,
    }
}

fn start<'a>(bytes: &'a [u8], what: &'static str) -> Result<Reader<'a>, Error> {
    let mut r = Reader::new(bytes);
    let v = r.u8(what).map_err(decode_err(what))?;
    if v != VERSION {
        return Err(Error::UnsupportedVersion { version: v.into() });
    }
    Ok(r)
}

/// A group the client follows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupRecord {
    /// The MLS group id.
    pub group_id: Vec<u8>,
    /// The block from which the contract's events are read (its creation or earlier).
    pub from_block: u64,
    /// The epoch this member created or joined the group at.
    pub joined_epoch: u64,
}

/// Saves the record of the group of `contract`.
pub fn put_group<B: Backend>(
    store: &mut Store<B>,
    contract: Address,
    g: &GroupRecord,
) -> Result<(), Error> {
    let mut w = Writer::default();
    w.u8(VERSION);
    w.u64(g.from_block);
    w.u64(g.joined_epoch);
    w.vec(&g.group_id).map_err(|_| Error::TooLong {
        field: "group id",
        len: g.group_id.len(),
        max: eth_mls_channel::codec::MAX_VARINT,
    })?;
    store
        .put_record(GROUPS, contract.as_slice(), &w.buf)
        .map_err(core)
}

/// Every group record, by contract.
pub fn groups<B: Backend>(store: &Store<B>) -> Result<Vec<(Address, GroupRecord)>, Error> {
    let mut out = Vec::new();
    for (k, v) in store.records(GROUPS).map_err(core)? {
        let contract = Address::try_from(k.as_slice()).map_err(|_| Error::Decode {
            what: "group record key",
        })?;
        let what = "group record";
        let mut r = start(&v, what)?;
        let from_block = r.u64(what).map_err(decode_err(what))?;
        let joined_epoch = r.u64(what).map_err(decode_err(what))?;
        let group_id = r.vec(what).map_err(decode_err(what))?.to_vec();
        r.finish(what).map_err(decode_err(what))?;
        out.push((
            contract,
            GroupRecord {
                group_id,
                from_block,
                joined_epoch,
            },
        ));
    }
    Ok(out)
}

/// An invitation received, checked against the factory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReceivedInvitation {
    /// The inviting account (the channel peer).
    pub from: Address,
    /// The channel session it came in.
    pub session: [u8; 32],
    /// Whether it was answered (accepted or declined).
    pub answered: bool,
    /// The request.
    pub request: InvitationRequest,
}

/// Saves a received invitation.
pub fn put_received<B: Backend>(
    store: &mut Store<B>,
    inv: &ReceivedInvitation,
) -> Result<(), Error> {
    let mut w = Writer::default();
    w.u8(VERSION);
    w.bytes(inv.from.as_slice());
    w.bytes(&inv.session);
    w.u8(inv.answered.into());
    let m = ClientMessage::InvitationRequest(inv.request.clone()).encode()?;
    w.bytes(&m);
    store
        .put_record(RECEIVED, &inv.request.request_id, &w.buf)
        .map_err(core)
}

fn decode_received(v: &[u8]) -> Result<ReceivedInvitation, Error> {
    let what = "received invitation";
    let mut r = start(v, what)?;
    let from = Address::from(r.array::<20>(what).map_err(decode_err(what))?);
    let session = r.array::<32>(what).map_err(decode_err(what))?;
    let answered = r.u8(what).map_err(decode_err(what))? != 0;
    let rest = r.take(r.remaining(), what).map_err(decode_err(what))?;
    let ClientMessage::InvitationRequest(request) = ClientMessage::decode(rest)? else {
        return Err(Error::Decode { what });
    };
    Ok(ReceivedInvitation {
        from,
        session,
        answered,
        request,
    })
}

/// The received invitation `id`, if any.
pub fn received<B: Backend>(
    store: &Store<B>,
    id: &RequestId,
) -> Result<Option<ReceivedInvitation>, Error> {
    store
        .record(RECEIVED, id)
        .map_err(core)?
        .map(|v| decode_received(&v))
        .transpose()
}

/// Every received invitation.
pub fn all_received<B: Backend>(store: &Store<B>) -> Result<Vec<ReceivedInvitation>, Error> {
    store
        .records(RECEIVED)
        .map_err(core)?
        .iter()
        .map(|(_, v)| decode_received(v))
        .collect()
}

/// What an intent does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// Add `invitee` with its key package (an accepted invitation, or a re-add).
    Add {
        /// The account.
        invitee: Address,
        /// The invitation (or re-add request) it answers.
        request_id: RequestId,
        /// The key package.
        key_package: Vec<u8>,
        /// Whether it re-adds a forked member (its old leaf is removed in the same commit).
        readd: bool,
    },
    /// Remove these accounts.
    Remove {
        /// The accounts.
        members: Vec<Address>,
    },
    /// A self-update (fresh leaf and path; the renewed credential if any).
    Update,
    /// Commit a member's Update proposal by reference (an update request that passed its
    /// checks): exactly that proposal, carried in the commit (WIRE.md §4.2).
    CommitUpdate {
        /// The requester.
        member: Address,
        /// The proposal's `MLSMessage`, as the request carried it.
        proposal: Vec<u8>,
        /// Its reference (RFC 9420 §5.2).
        reference: Vec<u8>,
    },
    /// The owner replaces the registered commit the group is stalled on (`replaceHead`),
    /// removing these accounts in the replacement (a self-update when none).
    Recover {
        /// The accounts removed (the griefer).
        remove: Vec<Address>,
    },
}

/// An intent's operation on a group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpRecord {
    /// The group's contract.
    pub group: Address,
    /// The operation.
    pub op: Op,
}

/// Saves the operation of intent `id`.
pub fn put_op<B: Backend>(store: &mut Store<B>, id: u64, op: &OpRecord) -> Result<(), Error> {
    let mut w = Writer::default();
    w.u8(VERSION);
    w.bytes(op.group.as_slice());
    match &op.op {
        Op::Add {
            invitee,
            request_id,
            key_package,
            readd,
        } => {
            w.u8(1);
            w.bytes(invitee.as_slice());
            w.bytes(request_id);
            w.u8((*readd).into());
            w.vec(key_package).map_err(too_long("key package"))?;
        }
        Op::Remove { members } => {
            w.u8(2);
            w.u16(members.len() as u16);
            for m in members {
                w.bytes(m.as_slice());
            }
        }
        Op::Update => w.u8(3),
        Op::CommitUpdate {
            member,
            proposal,
            reference,
        } => {
            w.u8(4);
            w.bytes(member.as_slice());
            w.vec(proposal).map_err(too_long("proposal"))?;
            w.vec(reference).map_err(too_long("proposal reference"))?;
        }
        Op::Recover { remove } => {
            w.u8(5);
            w.u16(remove.len() as u16);
            for m in remove {
                w.bytes(m.as_slice());
            }
        }
    }
    store
        .put_record(OPS, &id.to_be_bytes(), &w.buf)
        .map_err(core)
}

/// The operation of intent `id`.
pub fn op<B: Backend>(store: &Store<B>, id: u64) -> Result<Option<OpRecord>, Error> {
    let what = "intent operation";
    let Some(v) = store.record(OPS, &id.to_be_bytes()).map_err(core)? else {
        return Ok(None);
    };
    let d = decode_err(what);
    let mut r = start(&v, what)?;
    let group = Address::from(r.array::<20>(what).map_err(&d)?);
    let op = match r.u8(what).map_err(&d)? {
        1 => {
            let invitee = Address::from(r.array::<20>(what).map_err(&d)?);
            let request_id = r.array::<16>(what).map_err(&d)?;
            let readd = r.u8(what).map_err(&d)? != 0;
            let key_package = r.vec(what).map_err(&d)?.to_vec();
            Op::Add {
                invitee,
                request_id,
                key_package,
                readd,
            }
        }
        2 => {
            let n = r.u16(what).map_err(&d)?;
            let mut members = Vec::new();
            for _ in 0..n {
                members.push(Address::from(r.array::<20>(what).map_err(&d)?));
            }
            Op::Remove { members }
        }
        3 => Op::Update,
        4 => {
            let member = Address::from(r.array::<20>(what).map_err(&d)?);
            let proposal = r.vec(what).map_err(&d)?.to_vec();
            let reference = r.vec(what).map_err(&d)?.to_vec();
            Op::CommitUpdate {
                member,
                proposal,
                reference,
            }
        }
        5 => {
            let n = r.u16(what).map_err(&d)?;
            let mut remove = Vec::new();
            for _ in 0..n {
                remove.push(Address::from(r.array::<20>(what).map_err(&d)?));
            }
            Op::Recover { remove }
        }
        _ => return Err(Error::Decode { what }),
    };
    r.finish(what).map_err(&d)?;
    Ok(Some(OpRecord { group, op }))
}

/// Deletes the operation and the intent record of intent `id` (it is done).
pub fn delete_intent<B: Backend>(store: &mut Store<B>, id: u64) -> Result<(), Error> {
    store.delete_record(OPS, &id.to_be_bytes()).map_err(core)?;
    store
        .delete_record(crate::state::INTENTS, &id.to_be_bytes())
        .map_err(core)?;
    Ok(())
}

/// A Welcome received for an answered invitation, waiting for its registration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingWelcome {
    /// The epoch it joins.
    pub epoch: u64,
    /// The Welcome (`MlsMessage`); empty while only its hash is known.
    pub welcome: Vec<u8>,
    /// SHA-256 of a Welcome sent by hash (WIRE.md: fetched from the group's commit topic).
    pub hash: Option<[u8; 32]>,
}

/// Saves a Welcome for invitation `id`.
pub fn put_welcome<B: Backend>(
    store: &mut Store<B>,
    id: &RequestId,
    w: &PendingWelcome,
) -> Result<(), Error> {
    let mut out = Writer::default();
    out.u8(VERSION);
    out.u64(w.epoch);
    out.vec(&w.welcome).map_err(too_long("Welcome"))?;
    if let Some(h) = &w.hash {
        out.bytes(h);
    }
    store.put_record(WELCOMES, id, &out.buf).map_err(core)
}

/// Every Welcome waiting, by invitation id.
pub fn welcomes<B: Backend>(store: &Store<B>) -> Result<Vec<(RequestId, PendingWelcome)>, Error> {
    let what = "pending Welcome";
    let mut out = Vec::new();
    for (k, v) in store.records(WELCOMES).map_err(core)? {
        let id: RequestId = k
            .as_slice()
            .try_into()
            .map_err(|_| Error::Decode { what })?;
        let mut r = start(&v, what)?;
        let epoch = r.u64(what).map_err(decode_err(what))?;
        let welcome = r.vec(what).map_err(decode_err(what))?.to_vec();
        let hash = if r.remaining() > 0 {
            Some(r.array::<32>(what).map_err(decode_err(what))?)
        } else {
            None
        };
        r.finish(what).map_err(decode_err(what))?;
        out.push((
            id,
            PendingWelcome {
                epoch,
                welcome,
                hash,
            },
        ));
    }
    Ok(out)
}

/// Drops the Welcome of invitation `id` (joined, or refused for good).
pub fn delete_welcome<B: Backend>(store: &mut Store<B>, id: &RequestId) -> Result<(), Error> {
    store.delete_record(WELCOMES, id).map_err(core).map(|_| ())
}

/// Where a topic's history was read up to: the delivery service's cursor, as kept.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct SavedCursor {
    /// Time (ms) or block.
    pub at: u64,
    /// Order within `at`.
    pub index: u64,
}

/// The delivery cursor saved under `name`.
pub fn cursor<B: Backend>(store: &Store<B>, name: &str) -> Result<Option<SavedCursor>, Error> {
    let what = "cursor";
    let Some(v) = store.record(META, name.as_bytes()).map_err(core)? else {
        return Ok(None);
    };
    let mut r = start(&v, what)?;
    let at = r.u64(what).map_err(decode_err(what))?;
    let index = r.u64(what).map_err(decode_err(what))?;
    r.finish(what).map_err(decode_err(what))?;
    Ok(Some(SavedCursor { at, index }))
}

/// Saves a delivery cursor under `name`.
pub fn put_cursor<B: Backend>(
    store: &mut Store<B>,
    name: &str,
    c: SavedCursor,
) -> Result<(), Error> {
    let mut w = Writer::default();
    w.u8(VERSION);
    w.u64(c.at);
    w.u64(c.index);
    store
        .put_record(META, name.as_bytes(), &w.buf)
        .map_err(core)
}

/// The next intent id (and counts it).
pub fn next_intent_id<B: Backend>(store: &mut Store<B>) -> Result<u64, Error> {
    next_counter(store, b"next-intent", "intent counter")
}

/// Takes the next value (from 1) of the counter kept in META under `key`.
fn next_counter<B: Backend>(
    store: &mut Store<B>,
    key: &[u8],
    what: &'static str,
) -> Result<u64, Error> {
    let n = match store.record(META, key).map_err(core)? {
        Some(v) => u64::from_be_bytes(
            v.as_slice()
                .try_into()
                .map_err(|_| Error::Decode { what })?,
        ),
        None => 1,
    };
    store
        .put_record(META, key, &(n + 1).to_be_bytes())
        .map_err(core)?;
    Ok(n)
}

/// A decrypted 1:1 message waiting to be handled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Incoming {
    /// keccak256 of the frame.
    pub key: [u8; 32],
    /// The peer account.
    pub from: Address,
    /// The channel session.
    pub session: [u8; 32],
    /// The plaintext (a client message's bytes).
    pub plaintext: Vec<u8>,
}

/// Queues a decrypted message.
pub fn put_incoming<B: Backend>(store: &mut Store<B>, m: &Incoming) -> Result<(), Error> {
    let mut w = Writer::default();
    w.u8(VERSION);
    w.bytes(m.from.as_slice());
    w.bytes(&m.session);
    w.vec(&m.plaintext).map_err(too_long("plaintext"))?;
    store.put_record(INCOMING, &m.key, &w.buf).map_err(core)
}

/// The queued messages, oldest key first.
pub fn incoming<B: Backend>(store: &Store<B>) -> Result<Vec<Incoming>, Error> {
    let what = "queued message";
    let mut out = Vec::new();
    for (k, v) in store.records(INCOMING).map_err(core)? {
        let key: [u8; 32] = k
            .as_slice()
            .try_into()
            .map_err(|_| Error::Decode { what })?;
        let mut r = start(&v, what)?;
        let from = Address::from(r.array::<20>(what).map_err(decode_err(what))?);
        let session = r.array::<32>(what).map_err(decode_err(what))?;
        let plaintext = r.vec(what).map_err(decode_err(what))?.to_vec();
        r.finish(what).map_err(decode_err(what))?;
        out.push(Incoming {
            key,
            from,
            session,
            plaintext,
        });
    }
    Ok(out)
}

/// Drops a handled message (and its retry count).
pub fn delete_incoming<B: Backend>(store: &mut Store<B>, key: &[u8; 32]) -> Result<(), Error> {
    store.delete_record(INCOMING_TRIES, key).map_err(core)?;
    store.delete_record(INCOMING, key).map_err(core).map(|_| ())
}

/// The attempts made at queued message `key` and the Unix time of the next, if any failed.
pub fn incoming_tries<B: Backend>(
    store: &Store<B>,
    key: &[u8; 32],
) -> Result<Option<(u32, u64)>, Error> {
    let what = "retry count";
    let Some(v) = store.record(INCOMING_TRIES, key).map_err(core)? else {
        return Ok(None);
    };
    let mut r = start(&v, what)?;
    let attempts = r.u32(what).map_err(decode_err(what))?;
    let next = r.u64(what).map_err(decode_err(what))?;
    r.finish(what).map_err(decode_err(what))?;
    Ok(Some((attempts, next)))
}

/// Records `attempts` failed attempts at queued message `key`, the next at `next` (Unix s).
pub fn put_incoming_tries<B: Backend>(
    store: &mut Store<B>,
    key: &[u8; 32],
    attempts: u32,
    next: u64,
) -> Result<(), Error> {
    let mut w = Writer::default();
    w.u8(VERSION);
    w.u32(attempts);
    w.u64(next);
    store.put_record(INCOMING_TRIES, key, &w.buf).map_err(core)
}

/// Moves queued message `m` to the dead letters with its last error (the oldest dead letters
/// beyond [`MAX_DEAD_LETTERS`] are dropped). Written before the queued message is deleted: a
/// crash in between buries it again, under the same key.
pub fn bury_incoming<B: Backend>(
    store: &mut Store<B>,
    m: &Incoming,
    error: &str,
) -> Result<(), Error> {
    let mut w = Writer::default();
    w.u8(VERSION);
    w.bytes(m.from.as_slice());
    w.vec(error.as_bytes()).map_err(too_long("error"))?;
    w.vec(&m.plaintext).map_err(too_long("plaintext"))?;
    store
        .put_record(DEAD_LETTERS, &m.key, &w.buf)
        .map_err(core)?;
    let all = store.records(DEAD_LETTERS).map_err(core)?;
    for (k, _) in all.iter().take(all.len().saturating_sub(MAX_DEAD_LETTERS)) {
        store.delete_record(DEAD_LETTERS, k).map_err(core)?;
    }
    delete_incoming(store, &m.key)
}

/// The dead letters: sender and last error of each, by key.
pub fn dead_letters<B: Backend>(store: &Store<B>) -> Result<Vec<(Address, String)>, Error> {
    let what = "dead letter";
    let mut out = Vec::new();
    for (_, v) in store.records(DEAD_LETTERS).map_err(core)? {
        let mut r = start(&v, what)?;
        let from = Address::from(r.array::<20>(what).map_err(decode_err(what))?);
        let error = String::from_utf8_lossy(r.vec(what).map_err(decode_err(what))?).into_owned();
        out.push((from, error));
    }
    Ok(out)
}

/// Every intent's operation, by intent id.
pub fn ops<B: Backend>(store: &Store<B>) -> Result<Vec<(u64, OpRecord)>, Error> {
    let mut out = Vec::new();
    for (k, _) in store.records(OPS).map_err(core)? {
        let id = u64::from_be_bytes(k.as_slice().try_into().map_err(|_| Error::Decode {
            what: "intent operation key",
        })?);
        if let Some(op) = op(store, id)? {
            out.push((id, op));
        }
    }
    Ok(out)
}

/// A group message this client received and kept (when the client is configured to keep them: `ClientConfig::keep_messages`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredMessage {
    /// Arrival order (increasing over all groups).
    pub seq: u64,
    /// The sending account.
    pub sender: Address,
    /// The epoch it was sent in.
    pub epoch: u64,
    /// When this client received it (Unix seconds, local clock).
    pub received_at: i64,
    /// The plaintext.
    pub data: Vec<u8>,
}

/// Keeps a received message of `group`.
pub fn put_message<B: Backend>(
    store: &mut Store<B>,
    group: Address,
    sender: Address,
    epoch: u64,
    received_at: i64,
    data: &[u8],
) -> Result<(), Error> {
    let seq = next_counter(store, b"next-message", "message counter")?;
    let mut w = Writer::default();
    w.u8(VERSION);
    w.bytes(sender.as_slice());
    w.u64(epoch);
    w.u64(received_at as u64);
    w.vec(data).map_err(too_long("message"))?;
    let mut k = group.to_vec();
    k.extend_from_slice(&seq.to_be_bytes());
    store.put_record(MESSAGES, &k, &w.buf).map_err(core)
}

/// The messages kept for `group`, oldest first.
pub fn messages<B: Backend>(store: &Store<B>, group: Address) -> Result<Vec<StoredMessage>, Error> {
    let what = "kept message";
    let mut out = Vec::new();
    for (k, v) in store.records(MESSAGES).map_err(core)? {
        if k.len() != 28 || k[..20] != group[..] {
            continue;
        }
        let seq = u64::from_be_bytes(k[20..].try_into().map_err(|_| Error::Decode { what })?);
        let mut r = start(&v, what)?;
        let sender = Address::from(r.array::<20>(what).map_err(decode_err(what))?);
        let epoch = r.u64(what).map_err(decode_err(what))?;
        let received_at = r.u64(what).map_err(decode_err(what))? as i64;
        let data = r.vec(what).map_err(decode_err(what))?.to_vec();
        r.finish(what).map_err(decode_err(what))?;
        out.push(StoredMessage {
            seq,
            sender,
            epoch,
            received_at,
            data,
        });
    }
    out.sort_by_key(|m| m.seq);
    Ok(out)
}

/// Holds inbox `frame` for another try at Unix time `next` after `attempts` failed ones;
/// `false` (nothing written) when [`MAX_HELD`] other frames are held already.
pub fn hold_frame<B: Backend>(
    store: &mut Store<B>,
    frame: &[u8],
    attempts: u32,
    next: u64,
) -> Result<bool, Error> {
    let key = alloy_primitives::keccak256(frame).0;
    if store.record(HELD, &key).map_err(core)?.is_none()
        && store.records(HELD).map_err(core)?.len() >= MAX_HELD
    {
        return Ok(false);
    }
    let mut w = Writer::default();
    w.u8(VERSION);
    w.u32(attempts);
    w.u64(next);
    w.vec(frame).map_err(too_long("frame"))?;
    store.put_record(HELD, &key, &w.buf).map_err(core)?;
    Ok(true)
}

/// The held inbox frames: each with its failed attempts and the Unix time of its next try.
pub fn held_frames<B: Backend>(store: &Store<B>) -> Result<Vec<(Vec<u8>, u32, u64)>, Error> {
    let what = "held frame";
    let mut out = Vec::new();
    for (_, v) in store.records(HELD).map_err(core)? {
        let mut r = start(&v, what)?;
        let attempts = r.u32(what).map_err(decode_err(what))?;
        let next = r.u64(what).map_err(decode_err(what))?;
        let frame = r.vec(what).map_err(decode_err(what))?.to_vec();
        r.finish(what).map_err(decode_err(what))?;
        out.push((frame, attempts, next));
    }
    Ok(out)
}

/// Drops a held inbox frame.
pub fn release_frame<B: Backend>(store: &mut Store<B>, frame: &[u8]) -> Result<(), Error> {
    let key = alloy_primitives::keccak256(frame).0;
    store.delete_record(HELD, &key).map_err(core).map(|_| ())
}

/// What this client last published of its prekeys, if it ever did.
pub fn published_keys<B: Backend>(
    store: &Store<B>,
) -> Result<Option<crate::prekeys::Published>, Error> {
    let what = "published keys";
    let Some(v) = store.record(META, b"published-keys").map_err(core)? else {
        return Ok(None);
    };
    let mut r = start(&v, what)?;
    let at = r.u64(what).map_err(decode_err(what))?;
    let signed_prekey = r.u32(what).map_err(decode_err(what))?;
    r.finish(what).map_err(decode_err(what))?;
    Ok(Some(crate::prekeys::Published { at, signed_prekey }))
}

/// Records what was published.
pub fn put_published_keys<B: Backend>(
    store: &mut Store<B>,
    p: crate::prekeys::Published,
) -> Result<(), Error> {
    let mut w = Writer::default();
    w.u8(VERSION);
    w.u64(p.at);
    w.u32(p.signed_prekey);
    store
        .put_record(META, b"published-keys", &w.buf)
        .map_err(core)
}

/// When channel session `id` was made (Unix seconds), if recorded.
pub fn session_made<B: Backend>(store: &Store<B>, id: &[u8; 32]) -> Result<Option<u64>, Error> {
    let what = "session record";
    let Some(v) = store.record(SESSIONS, id).map_err(core)? else {
        return Ok(None);
    };
    let mut r = start(&v, what)?;
    let at = r.u64(what).map_err(decode_err(what))?;
    r.finish(what).map_err(decode_err(what))?;
    Ok(Some(at))
}

/// Records that channel session `id` was made at `at`.
pub fn put_session_made<B: Backend>(
    store: &mut Store<B>,
    id: &[u8; 32],
    at: u64,
) -> Result<(), Error> {
    let mut w = Writer::default();
    w.u8(VERSION);
    w.u64(at);
    store.put_record(SESSIONS, id, &w.buf).map_err(core)
}

/// Forgets when channel session `id` was made (it was deleted).
pub fn delete_session_made<B: Backend>(store: &mut Store<B>, id: &[u8; 32]) -> Result<(), Error> {
    store.delete_record(SESSIONS, id).map_err(core).map(|_| ())
}

fn time_record<B: Backend>(
    store: &Store<B>,
    namespace: &str,
    key: &[u8],
    what: &'static str,
) -> Result<Option<u64>, Error> {
    let Some(v) = store.record(namespace, key).map_err(core)? else {
        return Ok(None);
    };
    let mut r = start(&v, what)?;
    let t = r.u64(what).map_err(decode_err(what))?;
    r.finish(what).map_err(decode_err(what))?;
    Ok(Some(t))
}

fn put_time_record<B: Backend>(
    store: &mut Store<B>,
    namespace: &str,
    key: &[u8],
    t: u64,
) -> Result<(), Error> {
    let mut w = Writer::default();
    w.u8(VERSION);
    w.u64(t);
    store.put_record(namespace, key, &w.buf).map_err(core)
}

/// Whether request `id` was answered already.
pub fn request_answered<B: Backend>(store: &Store<B>, id: &RequestId) -> Result<bool, Error> {
    Ok(time_record(store, REQUESTS, id, "answered request")?.is_some())
}

/// Records that request `id` was answered at `t`.
pub fn put_request_answered<B: Backend>(
    store: &mut Store<B>,
    id: &RequestId,
    t: u64,
) -> Result<(), Error> {
    put_time_record(store, REQUESTS, id, t)
}

fn granted_key(group: Address, member: Address) -> Vec<u8> {
    [group.as_slice(), member.as_slice()].concat()
}

/// When `member`'s last request in `group` was granted.
pub fn last_granted<B: Backend>(
    store: &Store<B>,
    group: Address,
    member: Address,
) -> Result<Option<u64>, Error> {
    time_record(
        store,
        GRANTED,
        &granted_key(group, member),
        "granted request",
    )
}

/// Update requests this client sent (key: the request id): the group and the reference of
/// its own Update proposal, forgotten when the request is refused (openmls sends no
/// application message while a proposal is stored).
pub const UPDATE_REQUESTS: &str = "eth-mls/update-requests-sent";

/// Remembers update request `id` for `group` with its proposal's `reference`, sent at `t`.
pub fn put_update_request<B: Backend>(
    store: &mut Store<B>,
    id: &RequestId,
    group: Address,
    reference: &[u8],
    t: u64,
) -> Result<(), Error> {
    let mut w = Writer::default();
    w.u8(VERSION);
    w.u64(t);
    w.bytes(group.as_slice());
    w.vec(reference).map_err(too_long("proposal reference"))?;
    store.put_record(UPDATE_REQUESTS, id, &w.buf).map_err(core)
}

/// An update request this client sent: when, the group, its proposal's reference.
type SentUpdate = (u64, Address, Vec<u8>);

fn decode_update_request(v: &[u8]) -> Result<SentUpdate, Error> {
    let what = "update request";
    let d = decode_err(what);
    let mut r = start(v, what)?;
    let t = r.u64(what).map_err(&d)?;
    let group = Address::from(r.array::<20>(what).map_err(&d)?);
    let reference = r.vec(what).map_err(&d)?.to_vec();
    r.finish(what).map_err(&d)?;
    Ok((t, group, reference))
}

/// Takes (reads and deletes) update request `id`: its group and proposal reference.
pub fn take_update_request<B: Backend>(
    store: &mut Store<B>,
    id: &RequestId,
) -> Result<Option<(Address, Vec<u8>)>, Error> {
    let Some(v) = store.record(UPDATE_REQUESTS, id).map_err(core)? else {
        return Ok(None);
    };
    store.delete_record(UPDATE_REQUESTS, id).map_err(core)?;
    let (_, group, reference) = decode_update_request(&v)?;
    Ok(Some((group, reference)))
}

/// Takes the update requests sent at or before `before`: their groups and proposal
/// references.
pub fn take_update_requests_before<B: Backend>(
    store: &mut Store<B>,
    before: u64,
) -> Result<Vec<(Address, Vec<u8>)>, Error> {
    let mut out = Vec::new();
    for (k, v) in store.records(UPDATE_REQUESTS).map_err(core)? {
        let (t, group, reference) = decode_update_request(&v)?;
        if t <= before {
            store.delete_record(UPDATE_REQUESTS, &k).map_err(core)?;
            out.push((group, reference));
        }
    }
    Ok(out)
}

/// Records that a request of `member` in `group` was granted at `t`.
pub fn put_granted<B: Backend>(
    store: &mut Store<B>,
    group: Address,
    member: Address,
    t: u64,
) -> Result<(), Error> {
    put_time_record(store, GRANTED, &granted_key(group, member), t)
}

/// Keeps the verified consent of invitation `id` for its add commit.
pub fn put_consent<B: Backend>(
    store: &mut Store<B>,
    id: &RequestId,
    consent: &crate::wire::Consent,
) -> Result<(), Error> {
    let bytes = crate::wire::encode_consents(std::slice::from_ref(consent))?;
    store.put_record(CONSENTS, id, &bytes).map_err(core)
}

/// The consent kept for invitation `id`.
pub fn consent<B: Backend>(
    store: &Store<B>,
    id: &RequestId,
) -> Result<Option<crate::wire::Consent>, Error> {
    let Some(v) = store.record(CONSENTS, id).map_err(core)? else {
        return Ok(None);
    };
    Ok(crate::wire::decode_consents(&v)?.into_iter().next())
}

/// Drops the consent kept for invitation `id` (its add is merged or failed).
pub fn delete_consent<B: Backend>(store: &mut Store<B>, id: &RequestId) -> Result<(), Error> {
    store.delete_record(CONSENTS, id).map_err(core).map(|_| ())
}

/// When a request of `member` in `group` was last answered with a refusal.
pub fn last_refused<B: Backend>(
    store: &Store<B>,
    group: Address,
    member: Address,
) -> Result<Option<u64>, Error> {
    let mut key = granted_key(group, member);
    key.push(b'r');
    time_record(store, GRANTED, &key, "refused request")
}

/// Records that a request of `member` in `group` was answered with a refusal at `t`.
pub fn put_refused<B: Backend>(
    store: &mut Store<B>,
    group: Address,
    member: Address,
    t: u64,
) -> Result<(), Error> {
    let mut key = granted_key(group, member);
    key.push(b'r');
    put_time_record(store, GRANTED, &key, t)
}
