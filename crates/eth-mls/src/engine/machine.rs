//! The engine's state: what a client knows of its groups, with no chain, delivery service,
//! runtime or clock — the store, the groups followed in memory, the events to report — and
//! the flows that need nothing else: an application frame taken in (read, held back for an
//! epoch not reached yet, or reported lost) and the held-back frames tried again after a
//! merge. Time comes in as a value.

use std::collections::{BTreeMap, VecDeque};

use eth_mls_core::{Checks, Event as CoreEvent, Group, Store};
use eth_mls_siwe::Address;
use futures_util::FutureExt as _;

use crate::Error;
use crate::engine::events::ClientEvent;
use crate::intent::Intent;
use crate::records::{self, GroupRecord, Op, OpRecord};
use crate::sequencer::Sequencer;

/// Group frames held back because their epoch is not reached yet, per group.
pub(crate) const MAX_DEFERRED: usize = 1024;
/// Epochs ahead of the local one whose frames are held back when the chain has not registered
/// them (security review M6: a forged epoch header costs nothing to make).
pub(crate) const MAX_AHEAD: u64 = 4;
/// Frames held back per claimed epoch.
pub(crate) const MAX_PER_EPOCH: usize = 256;
/// How many merges a deferred frame of an epoch not registered on chain waits for before it
/// is reported lost.
pub(crate) const DEFERRED_PATIENCE: u32 = 8;

/// A group the client follows, in memory.
pub(crate) struct Joined {
    pub(crate) group: Group,
    pub(crate) sequencer: Sequencer,
    /// What this client read of the group's contract (saved: [`crate::cursor`]).
    pub(crate) chain: crate::cursor::ChainState,
    /// Frames of epochs not reached yet, with how many merges they waited.
    pub(crate) deferred: Vec<(Vec<u8>, u32)>,
    /// The epoch this member joined (or created) the group at, in this process's knowledge:
    /// older frames are not for it.
    pub(crate) joined_epoch: u64,
    /// Member of the group (false once removed or forked).
    pub(crate) active: bool,
    /// Members reported due for removal.
    pub(crate) due_reported: Vec<Address>,
    /// The latest epoch of anything each member authored that this client saw (a message of
    /// that epoch, a commit or update built in it, its join): a member is not stuck before.
    pub(crate) active_at: BTreeMap<Address, u64>,
}

impl Joined {
    /// Whether the chain (as read so far) registered a commit to `epoch`.
    pub(crate) fn is_registered(&self, epoch: u64) -> bool {
        self.chain
            .registered
            .keys()
            .next_back()
            .is_some_and(|last| epoch <= *last)
    }

    pub(crate) fn saw(&mut self, member: Address, epoch: u64) {
        let e = self.active_at.entry(member).or_insert(epoch);
        *e = (*e).max(epoch);
    }
}

/// An eth-mls-core error as the client's: a check that could not be made (an ERC-1271 call
/// that failed) is not a verdict (security review M1), the rest as they are.
pub(crate) fn core(e: eth_mls_core::Error) -> Error {
    match e {
        // Not a verdict: the check is tried again (security review M1).
        eth_mls_core::Error::CheckUnavailable(e) => Error::Erc1271Unavailable(e),
        e => Error::Core(e.to_string()),
    }
}

/// The engine: the store, the groups followed, the events not yet taken. The driver (the
/// `Client`) feeds it; a simulation may drive it directly ([`Engine::new`], [`Engine::follow`],
/// [`Engine::take_app_frame`], [`Engine::drain_events`]).
pub struct Engine {
    /// The encrypted store (eth-mls-core's, with the client's records).
    pub(crate) store: Store,
    /// The groups followed.
    pub(crate) groups: BTreeMap<Address, Joined>,
    /// Events in the order they happened.
    pub(crate) events: VecDeque<ClientEvent>,
    /// Whether application messages are kept in the store.
    pub(crate) keep_messages: bool,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("groups", &self.groups.len())
            .field("events", &self.events.len())
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// An engine on `store`, following no group yet; `keep_messages`: application messages
    /// are kept in the store.
    pub fn new(store: Store, keep_messages: bool) -> Self {
        Self {
            store,
            groups: BTreeMap::new(),
            events: VecDeque::new(),
            keep_messages,
        }
    }

    /// The events so far, in order.
    pub fn drain_events(&mut self) -> Vec<ClientEvent> {
        self.events.drain(..).collect()
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The contracts of the groups followed.
    pub fn groups(&self) -> Vec<Address> {
        self.groups.keys().copied().collect()
    }

    pub(crate) fn joined(&self, group: Address) -> Result<&Joined, Error> {
        self.groups.get(&group).ok_or(Error::UnknownGroup { group })
    }

    /// The members of `group` (their accounts, by leaf).
    pub fn members(&self, group: Address) -> Result<Vec<Address>, Error> {
        Ok(self.joined(group)?.group.members())
    }

    /// The local epoch of `group`.
    pub fn epoch(&self, group: Address) -> Result<u64, Error> {
        Ok(self.joined(group)?.group.epoch())
    }

    /// The epoch authenticator of `group`'s current epoch.
    pub fn epoch_authenticator(&self, group: Address) -> Result<Vec<u8>, Error> {
        Ok(self.joined(group)?.group.epoch_authenticator())
    }

    /// The ACL of `group` as the mirror of its contract's events has it.
    pub fn acl(&self, group: Address) -> Result<crate::verdict::Acl, Error> {
        Ok(self.joined(group)?.chain.mirror.acl().clone())
    }

    /// The application messages of `group` kept so far, oldest first.
    pub fn messages(&self, group: Address) -> Result<Vec<records::StoredMessage>, Error> {
        records::messages(&self.store, group)
    }

    /// Whether this account is still a member of `group` and follows it.
    pub fn is_active(&self, group: Address) -> bool {
        self.groups.get(&group).is_some_and(|j| j.active)
    }

    /// Takes `group` (at `contract`) into the groups followed, with its saved chain state;
    /// whether it is active (its topics are to be subscribed).
    pub fn follow(
        &mut self,
        contract: Address,
        group: Group,
        record: GroupRecord,
    ) -> Result<bool, Error> {
        let epoch = group.epoch();
        let active = group.is_active();
        // The saved cursor (older stores have none: their groups are read from the record's
        // block once, then never again).
        let state = crate::cursor::load(&self.store, contract)?
            .unwrap_or_else(|| crate::cursor::ChainState::from_block(record.from_block));
        let mut sequencer = Sequencer::restore(
            epoch,
            0,
            state.merged.clone(),
            state.stalled.as_ref().is_some_and(|s| s.epoch == epoch + 1),
        );
        for p in state.pending.values() {
            sequencer.on_head(p.registration.block);
            sequencer.on_registered(p.registration.clone(), p.commit.clone());
        }
        self.groups.insert(
            contract,
            Joined {
                group,
                joined_epoch: record.joined_epoch,
                sequencer,
                chain: state,
                deferred: Vec::new(),
                active,
                due_reported: Vec::new(),
                active_at: BTreeMap::new(),
            },
        );
        Ok(active)
    }

    /// The oldest unfinished intent of `contract` with its operation (a recovery goes
    /// first: the intents before it wait for the epoch it replaces).
    pub(crate) fn current_intent(&self, contract: Address) -> Result<Option<(Intent, Op)>, Error> {
        let mut first = None;
        for intent in crate::state::intents(&self.store)? {
            if let Some(op) = records::op(&self.store, intent.id)?
                && op.group == contract
            {
                if matches!(op.op, Op::Recover { .. }) {
                    return Ok(Some((intent, op.op)));
                }
                if first.is_none() {
                    first = Some((intent, op.op));
                }
            }
        }
        Ok(first)
    }

    /// Update requests unanswered for [`ClientConfig::request_interval`] are given up: their
    /// proposals are forgotten (openmls sends no application message while one is stored;
    /// an admin may refuse silently, e.g. a request sent too soon after the last).
    /// At `now` (Unix seconds), with requests answered within `interval` seconds.
    pub(crate) fn expire_update_requests(&mut self, now: i64, interval: u64) -> Result<(), Error> {
        let before = (now as u64).saturating_sub(interval);
        for (group, reference) in records::take_update_requests_before(&mut self.store, before)? {
            if let Some(j) = self.groups.get_mut(&group) {
                j.group
                    .forget_proposal(&mut self.store, &reference)
                    .map_err(core)?;
            }
        }
        Ok(())
    }

    /// An admin's client commits the removal of accounts that left the group's ACL (the
    /// contract's `leave`) but still hold a leaf (security review L2: they could read and
    /// send until then). Only when this client is caught up with the chain and no intent of
    /// the group is running; whether it started one.
    /// `me`: this client's account.
    pub(crate) fn remove_departed(
        &mut self,
        contract: Address,
        me: Address,
    ) -> Result<bool, Error> {
        let Some(j) = self.groups.get(&contract) else {
            return Ok(false);
        };
        let acl = j.chain.mirror.acl();
        let admin = acl.owner == Some(me) || acl.admins.contains(&me);
        if !j.active || !admin || j.chain.stalled.is_some() || !j.chain.pending.is_empty() {
            return Ok(false);
        }
        let mut gone: Vec<Address> = j
            .group
            .members()
            .into_iter()
            .filter(|m| !acl.members.contains(m) && *m != me)
            .collect();
        gone.sort();
        gone.dedup();
        if gone.is_empty() || self.current_intent(contract)?.is_some() {
            return Ok(false);
        }
        let id = records::next_intent_id(&mut self.store)?;
        records::put_op(
            &mut self.store,
            id,
            &OpRecord {
                group: contract,
                op: Op::Remove { members: gone },
            },
        )?;
        crate::state::save_intent(&mut self.store, &Intent::new(id))?;
        Ok(true)
    }

    /// Takes in an application frame of `contract` at `now` (Unix seconds): read, held back
    /// (bounded) when it is of an epoch not reached yet, or reported; whether it was read.
    /// `fresh`: it just arrived (a held-back frame tried again is not).
    pub fn take_app_frame(
        &mut self,
        contract: Address,
        bytes: Vec<u8>,
        fresh: bool,
        now: i64,
    ) -> Result<bool, Error> {
        let Some(j) = self.groups.get_mut(&contract) else {
            return Ok(true);
        };
        if !j.active {
            return Ok(true);
        }
        // Application messages are checked at the frame's arrival with no ERC-1271 lookup:
        // processing waits on nothing.
        let processed = j
            .group
            .process(&mut self.store, &bytes, &Checks::at(now))
            .now_or_never()
            .ok_or_else(|| {
                Error::Core("processing a frame waited on input it has not got".into())
            })?;
        match processed {
            Ok(p) => {
                for e in p.into_events() {
                    match e {
                        CoreEvent::Application(m) => {
                            if self.keep_messages {
                                records::put_message(
                                    &mut self.store,
                                    contract,
                                    m.sender,
                                    m.epoch,
                                    now,
                                    &m.data,
                                )?;
                            }
                            if let Some(j) = self.groups.get_mut(&contract) {
                                j.saw(m.sender, m.epoch);
                            }
                            self.events.push_back(ClientEvent::Message {
                                group: contract,
                                sender: m.sender,
                                epoch: m.epoch,
                                data: m.data,
                            })
                        }
                        CoreEvent::MissedMessages {
                            sender,
                            epoch,
                            missed,
                        } => self.events.push_back(ClientEvent::MissedMessages {
                            group: contract,
                            sender,
                            epoch,
                            count: missed,
                        }),
                        _ => {}
                    }
                }
                Ok(true)
            }
            Err(e) => {
                let epoch = frame_epoch(&bytes);
                let local = j.group.epoch();
                let ahead = epoch.is_some_and(|ep| ep > local);
                let registered = epoch.is_some_and(|ep| j.is_registered(ep));
                // Held back: a frame of an epoch the chain registered, or of one of the next
                // few; a bounded number per claimed epoch; a full queue makes room only for a
                // frame of a registered epoch, by dropping one of an unregistered epoch —
                // unauthenticated frames never evict the others (security review M6).
                let hold = fresh
                    && ahead
                    && (registered || epoch.is_some_and(|ep| ep <= local + MAX_AHEAD))
                    && j.deferred
                        .iter()
                        .filter(|(d, _)| frame_epoch(d) == epoch)
                        .count()
                        < MAX_PER_EPOCH;
                if hold
                    && j.deferred.len() >= MAX_DEFERRED
                    && registered
                    && let Some(i) = j
                        .deferred
                        .iter()
                        .position(|(d, _)| frame_epoch(d).is_none_or(|ep| !j.is_registered(ep)))
                {
                    j.deferred.remove(i);
                }
                let room = j.deferred.len() < MAX_DEFERRED;
                if hold && room {
                    j.deferred.push((bytes, 0));
                } else if let Some(epoch) = epoch.filter(|ep| *ep < j.group.epoch())
                    && epoch >= j.joined_epoch
                {
                    // A message of an epoch whose keys are gone: lost, and said so.
                    self.events.push_back(ClientEvent::MessageLost {
                        group: contract,
                        epoch,
                        reason: e.to_string(),
                    });
                } else if epoch == Some(local) && j.chain.replaced_at.is_some_and(|r| r <= local) {
                    // Of this epoch number but not decryptable, after the owner replaced a
                    // head here: sent in a dropped epoch (a forked member's), lost.
                    self.events.push_back(ClientEvent::MessageLost {
                        group: contract,
                        epoch: local,
                        reason: format!("sent in a dropped epoch: {e}"),
                    });
                } else if epoch.is_some_and(|ep| ep < j.joined_epoch) {
                    // From before this member joined (history): not for it.
                } else if fresh || !ahead {
                    self.events.push_back(ClientEvent::Rejected {
                        from: Address::ZERO,
                        error: Error::Core(e.to_string()),
                    });
                }
                Ok(false)
            }
        }
    }

    /// After a merge: frames held back are tried again.
    pub(crate) fn retry_deferred(&mut self, contract: Address, now: i64) -> Result<(), Error> {
        let Some(j) = self.groups.get_mut(&contract) else {
            return Ok(());
        };
        let frames = std::mem::take(&mut j.deferred);
        for (envelope, waited) in frames {
            let j = self
                .groups
                .get_mut(&contract)
                .ok_or(Error::UnknownGroup { group: contract })?;
            let epoch = frame_epoch(&envelope);
            let ahead = epoch.is_some_and(|ep| ep > j.group.epoch());
            if !ahead {
                // Its epoch is reached: processed now (read, or reported).
                self.take_app_frame(contract, envelope, false, now)?;
                continue;
            }
            // Still ahead (not tried: that would cost a failed decryption per frame and
            // merge). A frame of an epoch the chain registered will be readable once this
            // member gets there, however many commits that takes; one of an epoch nobody
            // registered waits a few merges, then is reported.
            let registered = epoch.is_some_and(|ep| j.is_registered(ep));
            let j = self
                .groups
                .get_mut(&contract)
                .ok_or(Error::UnknownGroup { group: contract })?;
            if registered || waited < DEFERRED_PATIENCE {
                j.deferred.push((envelope, waited + 1));
            } else {
                self.events.push_back(ClientEvent::MessageLost {
                    group: contract,
                    epoch: epoch.unwrap_or_default(),
                    reason: format!("epoch not reached after {DEFERRED_PATIENCE} commits"),
                });
            }
        }
        Ok(())
    }
}

/// Whether an `MlsMessage` frame is a proposal (content type 2; both `PublicMessage` and
/// `PrivateMessage` show it in the clear).
pub(crate) fn is_proposal(bytes: &[u8]) -> bool {
    frame_kind(bytes) == Some(2)
}

/// The epoch of a `PrivateMessage` or `PublicMessage` frame (RFC 9420 §6).
pub(crate) fn frame_epoch(bytes: &[u8]) -> Option<u64> {
    let (_, epoch, _) = frame_header(bytes)?;
    Some(epoch)
}

fn frame_kind(bytes: &[u8]) -> Option<u8> {
    let (_, _, kind) = frame_header(bytes)?;
    Some(kind)
}

/// (wire format, epoch, content type) of an `MlsMessage`.
fn frame_header(bytes: &[u8]) -> Option<(u16, u64, u8)> {
    let mut r = eth_mls_channel::codec::Reader::new(bytes);
    let what = "frame";
    let _version = r.u16(what).ok()?;
    let wire_format = r.u16(what).ok()?;
    if wire_format != 1 && wire_format != 2 {
        return None;
    }
    let _group_id = r.vec(what).ok()?;
    let epoch = r.u64(what).ok()?;
    let kind = if wire_format == 1 {
        // PublicMessage: sender, authenticated data, then content type.
        match r.u8(what).ok()? {
            1 => {
                r.u32(what).ok()?;
            }
            2 => {
                r.u32(what).ok()?;
            }
            3 | 4 => {}
            _ => return None,
        }
        let _aad = r.vec(what).ok()?;
        r.u8(what).ok()?
    } else {
        r.u8(what).ok()?
    };
    Some((wire_format, epoch, kind))
}
