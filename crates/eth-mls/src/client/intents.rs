//! The group's intents (DESIGN.md decision 14's persisted operations): one step at a time,
//! from durable facts — build the commit of the operation, register it with exactly the ACL
//! changes the built commit makes, merge it once it won the epoch (or drop it once it lost),
//! send the Welcome of an add.

use alloy_primitives::keccak256;
use eth_mls_chain::alloy::primitives::B256;
use eth_mls_chain::{AclChanges, GroupRevert, TxSlot};
use eth_mls_core::{Checks, CommitSummary, OutboxKind, validate_key_package_bytes};
use eth_mls_crypto::{Crypto, DefaultBackend, SUITE};
use eth_mls_siwe::Address;
use eth_mls_transport::{DeliveryService, MessageId};

use super::{Client, ClientEvent, chain_err, core, delivery_err, erc1271, now};
use crate::Error;
use crate::intent::{Facts, Outcome, Sent, Step};
use crate::records::{self, Op};
use crate::verdict::epoch_authenticator_hash;
use crate::wire::{ClientMessage, RequestId, WelcomeDelivery, WelcomeMessage};

impl<D: DeliveryService + 'static> Client<D> {
    /// One step of the group's current intent; whether it moved.
    pub(super) async fn step_intent(&mut self, contract: Address) -> Result<bool, Error> {
        let Some((mut intent, op)) = self.engine.current_intent(contract)? else {
            return Ok(false);
        };
        let j = self
            .engine
            .groups
            .get(&contract)
            .ok_or(Error::UnknownGroup { group: contract })?;
        if !j.active {
            return Ok(false);
        }
        let pending = j.group.pending_commit(&self.engine.store).map_err(core)?;
        let recovering = matches!(op, Op::Recover { .. });
        // A recovery replaces the registered commit the group is stalled on: to its intent
        // that commit is as good as absent.
        let stalled_on = j
            .chain
            .stalled
            .as_ref()
            .filter(|s| recovering && s.epoch == j.group.epoch() + 1)
            .and_then(|s| j.chain.registered.get(&s.epoch).copied());
        let registered = |e: u64| {
            j.chain
                .registered
                .get(&e)
                .copied()
                .filter(|h| Some(*h) != stalled_on || e != j.group.epoch() + 1)
        };
        let facts = Facts {
            local_epoch: j.group.epoch(),
            pending: pending.as_ref().map(|p| keccak256(&p.commit).0),
            registered_next: registered(j.group.epoch() + 1),
            registered_built: intent.built_for.and_then(registered),
        };
        if recovering && stalled_on.is_none() && intent.built_for.is_none() {
            // Nothing (left) to replace: the group moved on, or was never stalled.
            self.fail_intent(
                contract,
                intent.id,
                Error::NotStalled { group: contract }.to_string(),
            )?;
            return Ok(true);
        }
        match intent.next(&facts) {
            Step::Build => {
                let result = self.build(contract, &op).await;
                match result {
                    Ok(out) => {
                        let j = self
                            .engine
                            .groups
                            .get_mut(&contract)
                            .ok_or(Error::UnknownGroup { group: contract })?;
                        intent.built(j.group.epoch() + 1, keccak256(&out.commit).0);
                        j.sequencer.own_pending(keccak256(&out.commit).0);
                        crate::step("intent:built");
                        crate::state::save_intent(&mut self.engine.store, &intent)?;
                    }
                    Err(e @ (Error::Chain(_) | Error::Delivery(_))) => return Err(e),
                    Err(e) => {
                        self.fail_intent(contract, intent.id, e.to_string())?;
                    }
                }
                Ok(true)
            }
            Step::Adopt => {
                let Some(p) = pending else { return Ok(false) };
                intent.built(facts.local_epoch + 1, keccak256(&p.commit).0);
                crate::state::save_intent(&mut self.engine.store, &intent)?;
                Ok(true)
            }
            Step::Register { epoch } => {
                let Some(p) = pending else { return Ok(false) };
                // With a confirmation depth, the chain may hold a registration for this epoch
                // (this commit's, sent before, or a rival's) that is not confirmed yet: wait
                // for it rather than send a transaction that cannot succeed.
                if !recovering
                    && self.config.confirmations > 0
                    && self.head_epoch(contract).await? >= epoch
                {
                    return Ok(false);
                }
                // Proposals the commit refers to go out before it is registered.
                self.flush_outbox().await?;
                let changes = match Self::acl_changes(&op, &p.summary) {
                    Ok(changes) => changes,
                    Err(e) => {
                        // The commit does more than the operation means (a proposal that
                        // rode along): never registered.
                        self.drop_own_commit(contract, intent.id, e.to_string())?;
                        return Ok(true);
                    }
                };
                let auth = B256::from(epoch_authenticator_hash(&p.epoch_authenticator));
                let undo = if recovering {
                    let Some(undo) = self.recovery_undo(contract, epoch).await? else {
                        // The dropped registrations are not all read yet.
                        return Ok(false);
                    };
                    Some(undo)
                } else {
                    None
                };
                // The transaction's slot is saved before it is sent: a restarted client
                // sends the registration again in the same nonce (a replacement), never as
                // a second transaction beside one still in the pool.
                let slot = self
                    .chain
                    .slot(
                        intent
                            .sent
                            .map(|s| TxSlot::saved(s.nonce, s.max_fee, s.tip)),
                    )
                    .await
                    .map_err(chain_err)?;
                intent.sent = Some(Sent {
                    nonce: slot.nonce,
                    max_fee: slot.max_fee_per_gas,
                    tip: slot.max_priority_fee_per_gas,
                });
                if let Err(e) = crate::state::save_intent(&mut self.engine.store, &intent) {
                    self.chain.abandon(slot).await;
                    return Err(e);
                }
                crate::step("intent:sending");
                let chain = self.chain.in_slot(slot);
                let sent = if let Some(undo) = undo {
                    let sent = chain
                        .group(contract)
                        .replace_head(epoch, &undo, &p.commit, auth, &changes)
                        .await;
                    if let Err(
                        e
                        @ (eth_mls_chain::Error::Reverted { .. } | eth_mls_chain::Error::Group(_)),
                    ) = &sent
                    {
                        // Refused (not the owner, an ACL change out of reach): dropped.
                        self.drop_own_commit(contract, intent.id, e.to_string())?;
                        return Ok(true);
                    }
                    sent
                } else {
                    chain
                        .group(contract)
                        .commit(epoch, &p.commit, auth, &changes)
                        .await
                };
                crate::step("intent:registered");
                self.read_chain(contract).await?;
                let registered = self
                    .engine
                    .groups
                    .get(&contract)
                    .is_some_and(|j| j.chain.registered.contains_key(&epoch));
                match sent {
                    Ok(_) => Ok(true),
                    // Another commit took the epoch: the next step discards ours.
                    Err(_) if registered => Ok(true),
                    // The slot's nonce was mined meanwhile (this registration sent by an
                    // earlier process, or another transaction): the chain, read again at
                    // the next step, tells which; a new slot then.
                    Err(eth_mls_chain::Error::NonceUsed { .. }) => Ok(false),
                    // A registration for the epoch waits in the pool (the node estimated on
                    // its state): decided once it is mined, or sent again if it never is.
                    Err(eth_mls_chain::Error::Group(GroupRevert::EpochOutOfOrder(e)))
                        if e.expected > epoch =>
                    {
                        Ok(false)
                    }
                    // Taken, but not confirmed yet: decided once it is.
                    Err(_)
                        if self.config.confirmations > 0
                            && self.head_epoch(contract).await? >= epoch =>
                    {
                        Ok(false)
                    }
                    Err(e) => {
                        // Refused for a reason of its own (not an admin, a stale ACL change):
                        // the intent fails and its commit is dropped.
                        if matches!(
                            e,
                            eth_mls_chain::Error::Reverted { .. } | eth_mls_chain::Error::Group(_)
                        ) {
                            self.drop_own_commit(contract, intent.id, e.to_string())?;
                            return Ok(true);
                        }
                        Err(chain_err(e))
                    }
                }
            }
            Step::Merge => {
                let j = self
                    .engine
                    .groups
                    .get_mut(&contract)
                    .ok_or(Error::UnknownGroup { group: contract })?;
                let hash = pending.as_ref().map(|p| keccak256(&p.commit).0);
                let summary = pending.map(|p| p.summary);
                let welcome = j
                    .group
                    .merge_pending_commit(&mut self.engine.store)
                    .map_err(core)?;
                crate::step("intent:merged");
                let epoch = j.group.epoch();
                j.sequencer.merged(epoch, hash.unwrap_or_default());
                self.save_chain(contract)?;
                if let Some(s) = &summary {
                    self.report_merge(contract, s, epoch);
                }
                if let (
                    Some(w),
                    Op::Add {
                        invitee,
                        request_id,
                        ..
                    },
                ) = (welcome, &op)
                {
                    self.send_welcome(contract, *invitee, *request_id, w.seq, epoch, w.bytes)
                        .await?;
                }
                intent.merged(epoch);
                crate::state::save_intent(&mut self.engine.store, &intent)?;
                crate::step("intent:recorded");
                self.retry_deferred(contract).await?;
                Ok(true)
            }
            Step::Discard => {
                let j = self
                    .engine
                    .groups
                    .get_mut(&contract)
                    .ok_or(Error::UnknownGroup { group: contract })?;
                j.group
                    .discard_pending_commit(&mut self.engine.store)
                    .map_err(core)?;
                Ok(true)
            }
            Step::RecordMerged { epoch } => {
                // Merged just before a crash: the Welcome may still be in the outbox.
                if let Op::Add {
                    invitee,
                    request_id,
                    ..
                } = &op
                {
                    let id = self.joined(contract)?.group.id().to_vec();
                    for e in self.engine.store.outbox_pending().map_err(core)? {
                        if e.kind == OutboxKind::Welcome && e.group_id == id && e.epoch == epoch {
                            self.send_welcome(
                                contract,
                                *invitee,
                                *request_id,
                                e.seq,
                                epoch,
                                e.bytes,
                            )
                            .await?;
                        }
                    }
                }
                intent.merged(epoch);
                crate::state::save_intent(&mut self.engine.store, &intent)?;
                Ok(true)
            }
            Step::RecordLost => {
                if let Some(epoch) = intent.built_for {
                    self.engine.events.push_back(ClientEvent::EpochLost {
                        group: contract,
                        intent: intent.id,
                        epoch,
                    });
                }
                intent.lost();
                crate::state::save_intent(&mut self.engine.store, &intent)?;
                Ok(true)
            }
            Step::Wait => Ok(false),
            Step::Done => {
                if intent.outcome == Some(Outcome::GaveUp) {
                    self.engine.events.push_back(ClientEvent::IntentFailed {
                        group: contract,
                        intent: intent.id,
                        reason: format!("lost the epoch {} times", crate::intent::MAX_ATTEMPTS),
                    });
                }
                records::delete_intent(&mut self.engine.store, intent.id)?;
                Ok(true)
            }
        }
    }

    /// Drops this client's pending commit in `contract` and fails intent `id` with `reason`.
    pub(super) fn drop_own_commit(
        &mut self,
        contract: Address,
        id: u64,
        reason: String,
    ) -> Result<(), Error> {
        self.engine
            .groups
            .get_mut(&contract)
            .ok_or(Error::UnknownGroup { group: contract })?
            .group
            .discard_pending_commit(&mut self.engine.store)
            .map_err(core)?;
        self.fail_intent(contract, id, reason)
    }

    pub(super) fn fail_intent(
        &mut self,
        contract: Address,
        id: u64,
        reason: String,
    ) -> Result<(), Error> {
        records::delete_intent(&mut self.engine.store, id)?;
        self.engine.events.push_back(ClientEvent::IntentFailed {
            group: contract,
            intent: id,
            reason,
        });
        Ok(())
    }

    /// Builds the commit of `op` (it becomes core's pending commit).
    pub(super) async fn build(
        &mut self,
        contract: Address,
        op: &Op,
    ) -> Result<eth_mls_core::OutgoingCommit, Error> {
        let j = self
            .engine
            .groups
            .get_mut(&contract)
            .ok_or(Error::UnknownGroup { group: contract })?;
        let t = now();
        let v = erc1271(&self.chain, None);
        match op {
            Op::Add {
                key_package,
                invitee,
                readd,
                request_id,
            } => {
                let crypto = Crypto::<DefaultBackend>::new();
                let kp = validate_key_package_bytes(
                    key_package,
                    &crypto,
                    SUITE,
                    &j.group.config().policy_at(t),
                    Some(&v),
                )
                .await
                .map_err(|e| Error::Core(e.to_string()))?;
                if *readd && j.group.members().contains(invitee) {
                    // The forked member's old leaf and its new one in one commit, by value:
                    // the members need nothing but the registered commit.
                    return j
                        .group
                        .swap_member(
                            &mut self.engine.store,
                            *invitee,
                            &kp,
                            &Checks::at(t).with_erc1271(&v),
                        )
                        .await
                        .map_err(core);
                }
                // A newcomer's add carries its signed consent (members refuse it otherwise); a
                // re-added member is in the ACL already.
                let aad = if *readd {
                    Vec::new()
                } else {
                    let consent = records::consent(&self.engine.store, request_id)?
                        .ok_or(Error::NoConsent { account: *invitee })?;
                    crate::wire::encode_consents(&[consent])?
                };
                j.group
                    .add_members_with_aad(
                        &mut self.engine.store,
                        &[kp],
                        &Checks::at(t).with_erc1271(&v),
                        aad,
                    )
                    .await
                    .map_err(core)
            }
            Op::Remove { members } => j
                .group
                .remove_members(&mut self.engine.store, members)
                .map_err(core),
            Op::Recover { remove } if !remove.is_empty() => j
                .group
                .remove_members(&mut self.engine.store, remove)
                .map_err(core),
            Op::Recover { .. } => j.group.self_update(&mut self.engine.store).map_err(core),
            Op::Update => j.group.self_update(&mut self.engine.store).map_err(core),
            Op::CommitUpdate {
                proposal,
                reference,
                ..
            } => {
                let aad = crate::wire::encode_commit_data(&crate::wire::CommitData {
                    consents: Vec::new(),
                    proposals: vec![proposal.clone()],
                })?;
                j.group
                    .commit_proposals(&mut self.engine.store, std::slice::from_ref(reference), aad)
                    .map_err(core)
            }
        }
    }

    /// The ACL changes to undo when replacing the commits from `epoch` to the chain's head:
    /// those of every dropped registration that changed the ACL, newest first (`removed` =
    /// the removals that took effect: accounts in the ACL before the registration). `None`
    /// while a dropped registration is not read yet.
    async fn recovery_undo(
        &mut self,
        contract: Address,
        epoch: u64,
    ) -> Result<Option<Vec<AclChanges>>, Error> {
        let head = self.head_epoch(contract).await?;
        let j = self
            .engine
            .groups
            .get(&contract)
            .ok_or(Error::UnknownGroup { group: contract })?;
        let mut undo = Vec::new();
        for e in (epoch..=head).rev() {
            let Some(p) = j.chain.pending.get(&e) else {
                return Ok(None);
            };
            let r = &p.registration;
            if r.added.is_empty() && r.removed.is_empty() {
                continue;
            }
            undo.push(AclChanges {
                added: r.added.clone(),
                key_packages: r.key_packages.iter().map(|h| B256::from(*h)).collect(),
                removed: r
                    .removed
                    .iter()
                    .copied()
                    .filter(|a| p.acl.members.contains(a))
                    .collect(),
            });
        }
        Ok(Some(undo))
    }

    /// The ACL changes registered with the commit of `op`: derived from the built commit
    /// (every member's verdict compares them with the commit's proposals), and refused
    /// ([`Error::AclMismatch`] / [`Error::KeyPackageMismatch`]) unless they are exactly what
    /// the operation meant — a commit that adds, removes or re-keys anything else is never
    /// registered.
    pub(super) fn acl_changes(op: &Op, summary: &CommitSummary) -> Result<AclChanges, Error> {
        let changes = AclChanges {
            added: summary.added.clone(),
            key_packages: summary
                .added_key_packages
                .iter()
                .map(|h| B256::from(*h))
                .collect(),
            removed: summary.removed.clone(),
        };
        let (added, removed, key_package): (Vec<Address>, Vec<Address>, Option<[u8; 32]>) = match op
        {
            // A re-add removes the old leaf and adds the new one: the same account in
            // both lists.
            Op::Add {
                invitee,
                key_package,
                readd,
                ..
            } => (
                vec![*invitee],
                if *readd { vec![*invitee] } else { vec![] },
                Some(keccak256(key_package).0),
            ),
            Op::Remove { members } | Op::Recover { remove: members } => {
                (vec![], members.clone(), None)
            }
            Op::Update | Op::CommitUpdate { .. } => (vec![], vec![], None),
        };
        if !summary.other_proposals.is_empty() {
            return Err(Error::UnaccountedProposals {
                types: summary.other_proposals.clone(),
            });
        }
        if let Op::CommitUpdate { member, .. } = op
            && !summary.updated.contains(member)
        {
            // The proposal was not committed (not stored any more: of a past epoch).
            return Err(Error::UpdateNotCommitted { member: *member });
        }
        let mut sorted_removed = summary.removed.clone();
        sorted_removed.sort();
        let mut want_removed = removed.clone();
        want_removed.sort();
        if summary.added != added || sorted_removed != want_removed {
            return Err(Error::AclMismatch {
                proposed_added: summary.added.clone(),
                proposed_removed: summary.removed.clone(),
                registered_added: added,
                registered_removed: removed,
            });
        }
        if summary.added_key_packages != key_package.into_iter().collect::<Vec<_>>() {
            return Err(Error::KeyPackageMismatch);
        }
        Ok(changes)
    }

    pub(super) async fn send_welcome(
        &mut self,
        contract: Address,
        invitee: Address,
        request_id: RequestId,
        seq: u64,
        epoch: u64,
        welcome: Vec<u8>,
    ) -> Result<(), Error> {
        let delivery = if welcome.len() > self.config.inline_welcome_limit {
            // Too large for the 1:1 frame: published on the group's commit topic, named by
            // its hash.
            let hash = MessageId::of(&welcome).0;
            self.delivery
                .publish(&self.commit_topic(contract), welcome)
                .await
                .map_err(delivery_err)?;
            WelcomeDelivery::ByHash(hash)
        } else {
            WelcomeDelivery::Inline(welcome)
        };
        let message = ClientMessage::Welcome(WelcomeMessage {
            request_id,
            group: self.group_ref(contract),
            epoch,
            delivery,
        });
        self.send_direct(invitee, None, &message).await?;
        crate::step("intent:welcome-sent");
        self.engine.store.mark_published(seq).map_err(core)?;
        Ok(())
    }

    pub(super) fn report_merge(&mut self, contract: Address, s: &CommitSummary, epoch: u64) {
        if let Some(j) = self.engine.groups.get_mut(&contract) {
            let built_in = s.new_epoch.saturating_sub(1);
            j.saw(s.committer, built_in);
            for m in &s.updated {
                j.saw(*m, built_in);
            }
            for m in &s.added {
                j.saw(*m, s.new_epoch);
            }
        }
        for m in &s.added {
            self.engine.events.push_back(ClientEvent::MemberAdded {
                group: contract,
                member: *m,
            });
        }
        for m in &s.removed {
            self.engine.events.push_back(ClientEvent::MemberRemoved {
                group: contract,
                member: *m,
            });
        }
        self.engine.events.push_back(ClientEvent::CommitMerged {
            group: contract,
            epoch,
            committer: s.committer,
        });
    }
}
