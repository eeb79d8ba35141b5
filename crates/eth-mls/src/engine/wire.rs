//! The client's own messages, byte-exact as `WIRE.md` (next to this crate) defines them.
//! They travel as plaintexts of the 1:1 channel. Decoders are total: every input is consumed,
//! every length bounded, and nothing panics.

use eth_mls_channel::codec::{Reader, Writer};

use crate::Error;

/// The version of every message.
pub const WIRE_VERSION: u16 = 1;
/// Longest MLS group id.
pub const MAX_GROUP_ID: usize = 255;
/// Longest invitation note (bytes of UTF-8).
pub const MAX_NOTE: usize = 1024;
/// Longest key package or proposal.
pub const MAX_KEY_PACKAGE: usize = 65_536;
/// Longest SIWE text.
pub const MAX_SIWE: usize = 8192;
/// Longest signature (ERC-1271 signatures can be long).
pub const MAX_SIGNATURE: usize = 4096;
/// Longest inline Welcome.
pub const MAX_WELCOME: usize = 2 << 20;

/// A 16-byte request id: answers repeat it.
pub type RequestId = [u8; 16];

/// A group on a chain: `GroupRef`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct GroupRef {
    /// The chain id.
    pub chain_id: u64,
    /// The `MlsGroupFactory`.
    pub factory: [u8; 20],
    /// The group's `MlsGroup` contract.
    pub group_contract: [u8; 20],
}

/// Step 2 of an invitation: an admin invites an account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvitationRequest {
    /// The request id.
    pub request_id: RequestId,
    /// The group.
    pub group: GroupRef,
    /// The MLS group id (1..=255 bytes).
    pub group_id: Vec<u8>,
    /// The admin's account.
    pub inviter: [u8; 20],
    /// Unix seconds from which responses are refused.
    pub expiry: u64,
    /// Text for the invitee (UTF-8, at most 1024 bytes).
    pub note: String,
}

/// Step 3: the invitee's key package and signed consent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvitationResponse {
    /// The invitation's id.
    pub request_id: RequestId,
    /// The `KeyPackage` (TLS-serialised).
    pub key_package: Vec<u8>,
    /// The EIP-4361 text (see [`crate::invitation`]).
    pub siwe_message: String,
    /// EIP-191 or ERC-1271 signature of `siwe_message` by the invitee's account.
    pub signature: Vec<u8>,
}

/// How a Welcome is delivered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WelcomeDelivery {
    /// `MLSMessage(Welcome)` bytes.
    Inline(Vec<u8>),
    /// SHA-256 of the Welcome bytes, published on the group's commit topic.
    ByHash([u8; 32]),
}

/// Step 6: the Welcome for an accepted invitation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WelcomeMessage {
    /// The invitation's id.
    pub request_id: RequestId,
    /// The group.
    pub group: GroupRef,
    /// The epoch the Welcome joins.
    pub epoch: u64,
    /// The Welcome or its id.
    pub delivery: WelcomeDelivery,
}

/// What a member asks an admin to commit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChangeKind {
    /// Update the requester's leaf.
    Update,
    /// Remove `target`.
    Removal,
}

/// A member's update or removal request to an admin.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChangeRequest {
    /// The request id.
    pub request_id: RequestId,
    /// The group.
    pub group: GroupRef,
    /// The requester's epoch.
    pub epoch: u64,
    /// Update or removal.
    pub kind: ChangeKind,
    /// The requester (update) or the account to remove (removal).
    pub target: [u8; 20],
    /// `MLSMessage` of the proposal for `epoch` (may be empty for a removal).
    pub proposal: Vec<u8>,
}

/// A forked member asks an admin to re-add it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReaddRequest {
    /// The request id.
    pub request_id: RequestId,
    /// The group.
    pub group: GroupRef,
    /// The last epoch the requester could process.
    pub last_epoch: u64,
    /// A fresh `KeyPackage` (TLS-serialised).
    pub key_package: Vec<u8>,
}

/// Why a request was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RejectReason {
    /// The request expired.
    Expired,
    /// The receiver is not an admin of the group.
    NotAdmin,
    /// The request failed verification.
    Invalid,
    /// The group's policy forbids it.
    Policy,
    /// The receiver declined.
    Declined,
    /// The request id names nothing the receiver knows.
    UnknownRequest,
}

/// A refusal of a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RequestRejected {
    /// The refused request's id.
    pub request_id: RequestId,
    /// Why.
    pub reason: RejectReason,
}

/// `ClientMessage`: everything clients send each other over the 1:1 channel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientMessage {
    /// `invitation_request(1)`.
    InvitationRequest(InvitationRequest),
    /// `invitation_response(2)`.
    InvitationResponse(InvitationResponse),
    /// `invitation_decline(3)`.
    InvitationDecline {
        /// The invitation's id.
        request_id: RequestId,
    },
    /// `welcome(4)`.
    Welcome(WelcomeMessage),
    /// `change_request(5)`.
    ChangeRequest(ChangeRequest),
    /// `readd_request(6)`.
    ReaddRequest(ReaddRequest),
    /// `request_rejected(7)`.
    RequestRejected(RequestRejected),
}

fn bounded(v: &[u8], max: usize, what: &'static str) -> Result<(), Error> {
    if v.len() > max {
        return Err(Error::TooLong {
            field: what,
            len: v.len(),
            max,
        });
    }
    Ok(())
}

fn put_vec(w: &mut Writer, v: &[u8], max: usize, what: &'static str) -> Result<(), Error> {
    bounded(v, max, what)?;
    w.vec(v).map_err(|_| Error::TooLong {
        field: what,
        len: v.len(),
        max,
    })
}

fn get_vec<'a>(r: &mut Reader<'a>, max: usize, what: &'static str) -> Result<&'a [u8], Error> {
    let v = r.vec(what).map_err(|_| Error::Decode { what })?;
    bounded(v, max, what).map_err(|_| Error::Decode { what })?;
    Ok(v)
}

fn get_text(r: &mut Reader<'_>, max: usize, what: &'static str) -> Result<String, Error> {
    let v = get_vec(r, max, what)?;
    String::from_utf8(v.to_vec()).map_err(|_| Error::Decode { what })
}

fn de<T>(r: Result<T, eth_mls_channel::Error>, what: &'static str) -> Result<T, Error> {
    r.map_err(|_| Error::Decode { what })
}

impl GroupRef {
    fn write(&self, w: &mut Writer) {
        w.u64(self.chain_id);
        w.bytes(&self.factory);
        w.bytes(&self.group_contract);
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, Error> {
        Ok(Self {
            chain_id: de(r.u64("chain_id"), "chain_id")?,
            factory: de(r.array("factory"), "factory")?,
            group_contract: de(r.array("group_contract"), "group_contract")?,
        })
    }
}

impl RejectReason {
    fn code(self) -> u8 {
        match self {
            Self::Expired => 1,
            Self::NotAdmin => 2,
            Self::Invalid => 3,
            Self::Policy => 4,
            Self::Declined => 5,
            Self::UnknownRequest => 6,
        }
    }
    fn from_code(c: u8) -> Option<Self> {
        Some(match c {
            1 => Self::Expired,
            2 => Self::NotAdmin,
            3 => Self::Invalid,
            4 => Self::Policy,
            5 => Self::Declined,
            6 => Self::UnknownRequest,
            _ => return None,
        })
    }
}

impl ClientMessage {
    /// The request id the message carries or answers.
    pub fn request_id(&self) -> &RequestId {
        match self {
            Self::InvitationRequest(m) => &m.request_id,
            Self::InvitationResponse(m) => &m.request_id,
            Self::InvitationDecline { request_id } => request_id,
            Self::Welcome(m) => &m.request_id,
            Self::ChangeRequest(m) => &m.request_id,
            Self::ReaddRequest(m) => &m.request_id,
            Self::RequestRejected(m) => &m.request_id,
        }
    }

    /// The byte-exact encoding; a field over its limit is [`Error::TooLong`].
    pub fn encode(&self) -> Result<Vec<u8>, Error> {
        let mut w = Writer::with_capacity(256);
        w.u16(WIRE_VERSION);
        match self {
            Self::InvitationRequest(m) => {
                w.u8(1);
                w.bytes(&m.request_id);
                m.group.write(&mut w);
                if m.group_id.is_empty() {
                    return Err(Error::TooLong {
                        field: "group_id (empty)",
                        len: 0,
                        max: MAX_GROUP_ID,
                    });
                }
                put_vec(&mut w, &m.group_id, MAX_GROUP_ID, "group_id")?;
                w.bytes(&m.inviter);
                w.u64(m.expiry);
                put_vec(&mut w, m.note.as_bytes(), MAX_NOTE, "note")?;
            }
            Self::InvitationResponse(m) => {
                w.u8(2);
                w.bytes(&m.request_id);
                put_vec(&mut w, &m.key_package, MAX_KEY_PACKAGE, "key_package")?;
                put_vec(&mut w, m.siwe_message.as_bytes(), MAX_SIWE, "siwe_message")?;
                put_vec(&mut w, &m.signature, MAX_SIGNATURE, "signature")?;
            }
            Self::InvitationDecline { request_id } => {
                w.u8(3);
                w.bytes(request_id);
            }
            Self::Welcome(m) => {
                w.u8(4);
                w.bytes(&m.request_id);
                m.group.write(&mut w);
                w.u64(m.epoch);
                match &m.delivery {
                    WelcomeDelivery::Inline(b) => {
                        w.u8(1);
                        put_vec(&mut w, b, MAX_WELCOME, "welcome")?;
                    }
                    WelcomeDelivery::ByHash(h) => {
                        w.u8(2);
                        w.bytes(h);
                    }
                }
            }
            Self::ChangeRequest(m) => {
                w.u8(5);
                w.bytes(&m.request_id);
                m.group.write(&mut w);
                w.u64(m.epoch);
                w.u8(match m.kind {
                    ChangeKind::Update => 1,
                    ChangeKind::Removal => 2,
                });
                w.bytes(&m.target);
                put_vec(&mut w, &m.proposal, MAX_KEY_PACKAGE, "proposal")?;
            }
            Self::ReaddRequest(m) => {
                w.u8(6);
                w.bytes(&m.request_id);
                m.group.write(&mut w);
                w.u64(m.last_epoch);
                put_vec(&mut w, &m.key_package, MAX_KEY_PACKAGE, "key_package")?;
            }
            Self::RequestRejected(m) => {
                w.u8(7);
                w.bytes(&m.request_id);
                w.u8(m.reason.code());
            }
        }
        Ok(w.buf)
    }

    /// Decodes a message: [`Error::UnsupportedVersion`] for another version, else any
    /// malformation is [`Error::Decode`] naming the field. Never panics.
    pub fn decode(bytes: &[u8]) -> Result<Self, Error> {
        let mut r = Reader::new(bytes);
        let version = de(r.u16("version"), "version")?;
        if version != WIRE_VERSION {
            return Err(Error::UnsupportedVersion { version });
        }
        let id = |r: &mut Reader<'_>| de(r.array::<16>("request_id"), "request_id");
        let msg = match de(r.u8("msg_type"), "msg_type")? {
            1 => {
                let request_id = id(&mut r)?;
                let group = GroupRef::read(&mut r)?;
                let group_id = get_vec(&mut r, MAX_GROUP_ID, "group_id")?.to_vec();
                if group_id.is_empty() {
                    return Err(Error::Decode { what: "group_id" });
                }
                Self::InvitationRequest(InvitationRequest {
                    request_id,
                    group,
                    group_id,
                    inviter: de(r.array("inviter"), "inviter")?,
                    expiry: de(r.u64("expiry"), "expiry")?,
                    note: get_text(&mut r, MAX_NOTE, "note")?,
                })
            }
            2 => Self::InvitationResponse(InvitationResponse {
                request_id: id(&mut r)?,
                key_package: get_vec(&mut r, MAX_KEY_PACKAGE, "key_package")?.to_vec(),
                siwe_message: get_text(&mut r, MAX_SIWE, "siwe_message")?,
                signature: get_vec(&mut r, MAX_SIGNATURE, "signature")?.to_vec(),
            }),
            3 => Self::InvitationDecline {
                request_id: id(&mut r)?,
            },
            4 => {
                let request_id = id(&mut r)?;
                let group = GroupRef::read(&mut r)?;
                let epoch = de(r.u64("epoch"), "epoch")?;
                let delivery = match de(r.u8("delivery"), "delivery")? {
                    1 => WelcomeDelivery::Inline(get_vec(&mut r, MAX_WELCOME, "welcome")?.to_vec()),
                    2 => WelcomeDelivery::ByHash(de(r.array("welcome_id"), "welcome_id")?),
                    _ => return Err(Error::Decode { what: "delivery" }),
                };
                Self::Welcome(WelcomeMessage {
                    request_id,
                    group,
                    epoch,
                    delivery,
                })
            }
            5 => Self::ChangeRequest(ChangeRequest {
                request_id: id(&mut r)?,
                group: GroupRef::read(&mut r)?,
                epoch: de(r.u64("epoch"), "epoch")?,
                kind: match de(r.u8("kind"), "kind")? {
                    1 => ChangeKind::Update,
                    2 => ChangeKind::Removal,
                    _ => return Err(Error::Decode { what: "kind" }),
                },
                target: de(r.array("target"), "target")?,
                proposal: get_vec(&mut r, MAX_KEY_PACKAGE, "proposal")?.to_vec(),
            }),
            6 => Self::ReaddRequest(ReaddRequest {
                request_id: id(&mut r)?,
                group: GroupRef::read(&mut r)?,
                last_epoch: de(r.u64("last_epoch"), "last_epoch")?,
                key_package: get_vec(&mut r, MAX_KEY_PACKAGE, "key_package")?.to_vec(),
            }),
            7 => Self::RequestRejected(RequestRejected {
                request_id: id(&mut r)?,
                reason: RejectReason::from_code(de(r.u8("reason"), "reason")?)
                    .ok_or(Error::Decode { what: "reason" })?,
            }),
            _ => return Err(Error::Decode { what: "msg_type" }),
        };
        if r.remaining() != 0 {
            return Err(Error::Decode {
                what: "trailing bytes",
            });
        }
        Ok(msg)
    }
}

/// Consents carried at most in one commit.
pub const MAX_CONSENTS: usize = 64;

/// An invitee's signed consent as an add commit carries it (WIRE.md §4.1): the SIWE text and
/// the account's signature, exactly as the invitee answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Consent {
    /// The EIP-4361 text.
    pub siwe_message: String,
    /// EIP-191 or ERC-1271 signature of `siwe_message` by the invitee's account.
    pub signature: Vec<u8>,
}

/// The authenticated data of an add commit: the consents of the accounts it adds
/// (`uint16 version = 1`, then `Consent consents<V>`, each `opaque siwe_message<V>` and
/// `opaque signature<V>`).
pub fn encode_consents(consents: &[Consent]) -> Result<Vec<u8>, Error> {
    if consents.len() > MAX_CONSENTS {
        return Err(Error::TooLong {
            field: "consents",
            len: consents.len(),
            max: MAX_CONSENTS,
        });
    }
    let mut inner = Writer::with_capacity(512 * consents.len());
    for c in consents {
        put_vec(
            &mut inner,
            c.siwe_message.as_bytes(),
            MAX_SIWE,
            "siwe_message",
        )?;
        put_vec(&mut inner, &c.signature, MAX_SIGNATURE, "signature")?;
    }
    let mut w = Writer::with_capacity(inner.buf.len() + 8);
    w.u16(WIRE_VERSION);
    let max = MAX_CONSENTS * (MAX_SIWE + MAX_SIGNATURE + 8);
    put_vec(&mut w, &inner.buf, max, "consents")?;
    Ok(w.buf)
}

/// Proposals one commit carries at most (WIRE.md §4.2).
pub const MAX_CARRIED_PROPOSALS: usize = 8;

/// Bytes of one carried proposal (an `MLSMessage`) at most.
pub const MAX_CARRIED_PROPOSAL: usize = 16 * 1024;

/// What a commit's authenticated data carries (WIRE.md §4.1, §4.2): the consents of the
/// accounts it adds, and the proposals it commits by reference — the `MLSMessage`s exactly as
/// their senders published them, so a member that never saw them (offline, or reading the
/// chain only) can process the commit from its registration alone (security review M4).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CommitData {
    /// Invitees' consents.
    pub consents: Vec<Consent>,
    /// Proposals committed by reference.
    pub proposals: Vec<Vec<u8>>,
}

/// Encodes [`CommitData`]: [`encode_consents`]' bytes, then — only when there are any —
/// `opaque proposals<V>` holding each `opaque proposal<V>`.
pub fn encode_commit_data(data: &CommitData) -> Result<Vec<u8>, Error> {
    let mut w = encode_consents(&data.consents)?;
    if data.proposals.is_empty() {
        return Ok(w);
    }
    if data.proposals.len() > MAX_CARRIED_PROPOSALS {
        return Err(Error::TooLong {
            field: "proposals",
            len: data.proposals.len(),
            max: MAX_CARRIED_PROPOSALS,
        });
    }
    let mut inner = Writer::with_capacity(data.proposals.iter().map(|p| p.len() + 4).sum());
    for p in &data.proposals {
        put_vec(&mut inner, p, MAX_CARRIED_PROPOSAL, "proposal")?;
    }
    let mut out = Writer::with_capacity(inner.buf.len() + 4);
    let max = MAX_CARRIED_PROPOSALS * (MAX_CARRIED_PROPOSAL + 4);
    put_vec(&mut out, &inner.buf, max, "proposals")?;
    w.extend_from_slice(&out.buf);
    Ok(w)
}

/// Decodes [`encode_commit_data`]'s bytes (total); empty bytes are empty data (a commit
/// that carries nothing).
pub fn decode_commit_data(bytes: &[u8]) -> Result<CommitData, Error> {
    if bytes.is_empty() {
        return Ok(CommitData::default());
    }
    let mut r = Reader::new(bytes);
    let consents = decode_consents_from(&mut r)?;
    let mut proposals = Vec::new();
    if r.remaining() != 0 {
        let max = MAX_CARRIED_PROPOSALS * (MAX_CARRIED_PROPOSAL + 4);
        let inner = get_vec(&mut r, max, "proposals")?;
        let mut ri = Reader::new(inner);
        while ri.remaining() != 0 {
            if proposals.len() == MAX_CARRIED_PROPOSALS {
                return Err(Error::Decode { what: "proposals" });
            }
            proposals.push(get_vec(&mut ri, MAX_CARRIED_PROPOSAL, "proposal")?.to_vec());
        }
        if proposals.is_empty() {
            // Absent and empty are one encoding: absent.
            return Err(Error::Decode { what: "proposals" });
        }
    }
    if r.remaining() != 0 {
        return Err(Error::Decode {
            what: "trailing bytes",
        });
    }
    Ok(CommitData {
        consents,
        proposals,
    })
}

/// Decodes [`encode_consents`]' bytes (total: anything else is [`Error::Decode`]).
pub fn decode_consents(bytes: &[u8]) -> Result<Vec<Consent>, Error> {
    let mut r = Reader::new(bytes);
    let out = decode_consents_from(&mut r)?;
    if r.remaining() != 0 {
        return Err(Error::Decode {
            what: "trailing bytes",
        });
    }
    Ok(out)
}

fn decode_consents_from(r: &mut Reader<'_>) -> Result<Vec<Consent>, Error> {
    let version = de(r.u16("version"), "version")?;
    if version != WIRE_VERSION {
        return Err(Error::UnsupportedVersion { version });
    }
    let max = MAX_CONSENTS * (MAX_SIWE + MAX_SIGNATURE + 8);
    let inner = get_vec(r, max, "consents")?;
    let mut r = Reader::new(inner);
    let mut out = Vec::new();
    while r.remaining() != 0 {
        if out.len() == MAX_CONSENTS {
            return Err(Error::Decode { what: "consents" });
        }
        out.push(Consent {
            siwe_message: get_text(&mut r, MAX_SIWE, "siwe_message")?,
            signature: get_vec(&mut r, MAX_SIGNATURE, "signature")?.to_vec(),
        });
    }
    Ok(out)
}
