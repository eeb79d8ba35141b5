//! Following a group's contract (decisions 11 and 12): its events read from the saved cursor
//! up to the confirmed head, the registrations handed to the sequencer, each registered commit
//! processed, judged and merged in epoch order. A registered commit that does not decode,
//! verify or pass the verdict leaves the group *stalled* at its epoch (security review H2):
//! state kept, still subscribed, [`ClientEvent::Stalled`], until the owner replaces it
//! ([`Client::recover`]); a transient failure (RPC, ERC-1271) is retried at the next sync
//! (review M1); a fork is only a merged commit that the chain dropped (review H3).

use alloy_primitives::keccak256;
use eth_mls_chain::GroupEvent;
use eth_mls_chain::alloy::providers::Provider;
use eth_mls_core::{Checks, CommitSummary};
use eth_mls_siwe::Address;
use eth_mls_transport::DeliveryService;

use super::{Client, ClientEvent, chain_err, core, erc1271, random_id};
use crate::Error;
pub(super) use crate::catchup::{block_time, group_logs};
use crate::cursor::{self, BlockRef, Pending, Stalled};
use crate::records::{self, ReceivedInvitation};
use crate::sequencer::Action;
use crate::verdict::{Acl, Policy, Registration, check_commit, check_epoch_authenticator};
use crate::wire::{ClientMessage, InvitationRequest, ReaddRequest};

/// Whether `e` may pass by itself (an RPC, delivery or ERC-1271 failure): retried, never a
/// verdict.
pub(super) fn is_transient(e: &Error) -> bool {
    matches!(
        e,
        Error::Chain(_) | Error::Delivery(_) | Error::Erc1271Unavailable(_)
    )
}

/// The node's wake-ups for the logs of a set of groups.
pub(super) struct ChainWatch {
    /// The groups watched (sorted).
    groups: Vec<Address>,
    watch: eth_mls_chain::Watch,
}

/// Returns when the node reported something to read, or `news` is already waiting, and
/// `not_before` has passed (never without a watch).
pub(super) async fn woken(
    watch: &mut Option<ChainWatch>,
    news: bool,
    not_before: Option<tokio::time::Instant>,
) {
    match watch {
        Some(w) if !w.watch.ended() => {
            if !news {
                w.watch.wait().await;
            }
            if let Some(t) = not_before {
                tokio::time::sleep_until(t).await;
            }
        }
        _ => std::future::pending().await,
    }
}

impl<D: DeliveryService + 'static> Client<D> {
    /// Whether [`Client::sync`] reads the chain now. Over HTTP: always (polling). Over a
    /// WebSocket endpoint: when the node reported a log of the `active` groups (with its
    /// confirmations) or a removed one, right after (re)subscribing (for the blocks before the
    /// subscription), after a failed read, and at least every
    /// [`ClientConfig::pushed_poll_interval`](super::ClientConfig::pushed_poll_interval).
    pub(super) async fn chain_has_news(&mut self, active: &[Address]) -> bool {
        if !self.chain.is_pubsub() || active.is_empty() {
            self.watch = None;
            return true;
        }
        let stale = self
            .chain_read_at
            .is_none_or(|t| t.elapsed() >= self.config.pushed_poll_interval);
        match &mut self.watch {
            Some(w) if w.groups == active && !w.watch.ended() => {
                let news = w.watch.take();
                self.chain_news |= news || stale;
                if self.chain_fresh() {
                    // A node flooding notifications gets one read per poll interval; the news
                    // waits for it.
                    return false;
                }
            }
            _ => {
                let filter =
                    eth_mls_chain::alloy::rpc::types::Filter::new().address(active.to_vec());
                let watch =
                    eth_mls_chain::Watch::open(&self.chain, &filter, self.config.confirmations);
                // A failed subscription polls (the next sync tries again).
                self.watch = watch.await.ok().flatten().map(|watch| ChainWatch {
                    groups: active.to_vec(),
                    watch,
                });
                self.chain_news = true;
            }
        }
        self.chain_news
    }

    /// Whether the chain was read in full within the poll interval.
    pub(super) fn chain_fresh(&self) -> bool {
        self.chain_read_at
            .is_some_and(|t| t.elapsed() < self.config.poll_interval)
    }

    /// Over a WebSocket endpoint, the earliest the chain is read again (one read per poll
    /// interval at most).
    pub(super) fn next_read_at(&self) -> Option<tokio::time::Instant> {
        self.chain_read_at.map(|t| t + self.config.poll_interval)
    }

    /// The last epoch registered in `group`'s contract at the latest block (confirmed or
    /// not): compare with [`Client::epoch`] to see how far behind this client is.
    pub async fn chain_epoch(&self, group: Address) -> Result<u64, Error> {
        self.head_epoch(group).await
    }

    /// The last epoch registered in `group`'s contract in the blocks this client has read
    /// (confirmed ones, up to its last sync): compare with [`Client::epoch`] to see how far
    /// behind it is, without a request to the node ([`Client::chain_epoch`] asks the latest
    /// block).
    pub fn read_epoch(&self, group: Address) -> Result<u64, Error> {
        let chain = &self.joined(group)?.chain;
        Ok(chain
            .registered
            .keys()
            .next_back()
            .copied()
            .unwrap_or(0)
            .max(chain.pending.keys().next_back().copied().unwrap_or(0)))
    }

    /// Why `group` is stalled, if it is: a registered commit this member could not process or
    /// refused (its epoch, and the reason). The owner's [`Client::recover`] replaces it.
    pub fn stalled(&self, group: Address) -> Result<Option<Stalled>, Error> {
        Ok(self.joined(group)?.chain.stalled.clone())
    }

    /// The last epoch registered in the group's contract at the latest block (confirmed or
    /// not).
    pub(super) async fn head_epoch(&self, contract: Address) -> Result<u64, Error> {
        Ok(self
            .chain
            .group(contract)
            .current_epoch()
            .await
            .map_err(chain_err)?
            .epoch)
    }

    /// The latest block with the configured confirmations on top: what is read.
    pub(super) async fn confirmed_head(&self) -> Result<u64, Error> {
        let head = self
            .chain
            .provider()
            .get_block_number()
            .await
            .map_err(chain_err)?;
        Ok(head.saturating_sub(self.config.confirmations))
    }

    /// Saves the group's chain state (after a read of the chain or a merge).
    pub(super) fn save_chain(&mut self, contract: Address) -> Result<(), Error> {
        let j = self
            .engine
            .groups
            .get_mut(&contract)
            .ok_or(Error::UnknownGroup { group: contract })?;
        j.chain.merged = j.sequencer.merged_hashes().clone();
        j.chain.trim(j.group.epoch());
        cursor::save(&mut self.engine.store, contract, &j.chain)
    }

    /// Reads the group's contract events (see [`Client::read_chains`]).
    pub(super) async fn read_chain(&mut self, contract: Address) -> Result<(), Error> {
        self.read_chains(&[contract]).await
    }

    /// Reads the contract events of `contracts`' groups from their saved cursors up to the
    /// confirmed head into their ACL mirrors, registrations and sequencers, and saves the
    /// cursors: each event is read once (opening a client replays nothing), and one ranged
    /// `eth_getLogs` covers every group (issue 30). A group whose last read block is no longer
    /// on the chain (a reorg deeper than the confirmations) is read again from its origin
    /// first ([`ClientEvent::ChainReorganized`]).
    pub(super) async fn read_chains(&mut self, contracts: &[Address]) -> Result<(), Error> {
        if contracts.is_empty() {
            return Ok(());
        }
        // The head and the hashes of the blocks last read, all at once (one round trip).
        let read_to: std::collections::BTreeSet<u64> = contracts
            .iter()
            .filter_map(|c| Some(self.engine.groups.get(c)?.chain.read_to?.number))
            .collect();
        let (safe, hashes) = futures_util::future::try_join(
            self.confirmed_head(),
            futures_util::future::try_join_all(read_to.iter().map(|n| self.block_hash(*n))),
        )
        .await?;
        let hashes: std::collections::BTreeMap<u64, Option<[u8; 32]>> =
            read_to.into_iter().zip(hashes).collect();
        let mut reorganized = Vec::new();
        for contract in contracts {
            let Some(read_to) = self
                .engine
                .groups
                .get(contract)
                .and_then(|j| j.chain.read_to)
            else {
                continue;
            };
            if hashes.get(&read_to.number).copied().flatten() != Some(read_to.hash) {
                reorganized.push((*contract, read_to.number));
            }
        }
        for (contract, block) in reorganized {
            self.read_again(contract, block, safe).await?;
        }
        let due: Vec<(Address, u64)> = contracts
            .iter()
            .filter_map(|c| {
                let j = self.engine.groups.get(c)?;
                (j.chain.next_block <= safe).then_some((*c, j.chain.next_block))
            })
            .collect();
        if let Some(from) = due.iter().map(|(_, b)| *b).min() {
            self.read_logs(&due, from, safe).await?;
        }
        for contract in contracts {
            self.recommit_dropped(*contract).await?;
        }
        Ok(())
    }

    /// Reads the logs of the `due` groups (each from its own next block) from `from` to `safe`
    /// with one ranged query, and takes them in.
    async fn read_logs(
        &mut self,
        due: &[(Address, u64)],
        from: u64,
        safe: u64,
    ) -> Result<(), Error> {
        let addresses: Vec<Address> = due.iter().map(|(c, _)| *c).collect();
        // Every read that can fail first: the state changes all at once. The logs and the
        // block read to at once (one round trip).
        let (logs, at) = futures_util::future::try_join(
            group_logs(&self.chain, &addresses, from, safe),
            self.block_ref(safe),
        )
        .await?;
        let times = self.registration_times(&logs).await?;
        for &(contract, next) in due {
            let mine = logs
                .iter()
                .filter(|(c, _, block, _)| *c == contract && *block >= next)
                .map(|(_, e, b, t)| (e.clone(), *b, *t));
            self.apply_logs(contract, mine, &times)?;
            let j = self
                .engine
                .groups
                .get_mut(&contract)
                .ok_or(Error::UnknownGroup { group: contract })?;
            j.chain.next_block = safe + 1;
            j.chain.read_to = at;
            self.save_chain(contract)?;
        }
        Ok(())
    }

    /// The hash of block `number`, if the chain has it.
    async fn block_hash(&self, number: u64) -> Result<Option<[u8; 32]>, Error> {
        Ok(self.block_ref(number).await?.map(|b| b.hash))
    }

    /// Block `number` by number and hash, if the chain has it.
    async fn block_ref(&self, number: u64) -> Result<Option<BlockRef>, Error> {
        let block = self
            .chain
            .provider()
            .get_block_by_number(number.into())
            .await
            .map_err(chain_err)?;
        Ok(block.map(|b| BlockRef {
            number,
            hash: b.header.hash.0,
        }))
    }

    /// The timestamps of the blocks with registrations among `logs`.
    async fn registration_times(
        &self,
        logs: &[(Address, GroupEvent, u64, Option<[u8; 32]>)],
    ) -> Result<std::collections::BTreeMap<u64, i64>, Error> {
        use futures_util::{StreamExt, TryStreamExt};
        let blocks: std::collections::BTreeSet<u64> = logs
            .iter()
            .filter(|(_, event, _, _)| matches!(event, GroupEvent::CommitRegistered(_)))
            .map(|(_, _, block, _)| *block)
            .collect();
        // Up to 16 requests at a time: a long catch-up is not one round trip per block.
        futures_util::stream::iter(blocks)
            .map(|block| async move { Ok::<_, Error>((block, block_time(&self.chain, block).await?)) })
            .buffered(16)
            .try_collect()
            .await
    }

    /// Takes `logs` (the group's, in order) into its mirror, registrations and sequencer.
    fn apply_logs(
        &mut self,
        contract: Address,
        logs: impl Iterator<Item = (GroupEvent, u64, Option<[u8; 32]>)>,
        times: &std::collections::BTreeMap<u64, i64>,
    ) -> Result<(), Error> {
        let me = self.address();
        let j = self
            .engine
            .groups
            .get_mut(&contract)
            .ok_or(Error::UnknownGroup { group: contract })?;
        for (event, block, tx) in logs {
            let acl = j.chain.mirror.apply(&crate::facts::group_fact(&event), tx);
            match (&event, acl) {
                (GroupEvent::CommitRegistered(r), Some(acl)) => {
                    let t = times.get(&block).copied().unwrap_or_default();
                    let reg = crate::facts::registration(r, block, t);
                    j.chain.registered.insert(r.epoch, r.commitHash.0);
                    if j.chain.dropped_from.is_some_and(|d| {
                        r.epoch >= d && j.chain.merged.get(&r.epoch) == Some(&r.commitHash.0)
                    }) {
                        // The chain has the dropped commit again.
                        j.chain.dropped_from = Some(r.epoch + 1).filter(|next| {
                            *next <= j.group.epoch() && j.chain.merged.contains_key(next)
                        });
                    }
                    let pending = Pending {
                        registration: reg.clone(),
                        acl,
                        commit: r.commit.to_vec(),
                    };
                    if reg.registrant == me {
                        j.chain.own.insert(r.epoch, pending.clone());
                    }
                    j.sequencer.on_head(block);
                    j.sequencer.on_registered(reg, r.commit.to_vec());
                    if r.epoch > j.group.epoch() {
                        j.chain.pending.insert(r.epoch, pending);
                    }
                }
                (GroupEvent::HeadReplaced(e), _) => {
                    j.chain.registered.retain(|ep, _| *ep < e.epoch);
                    j.chain.pending.retain(|ep, _| *ep < e.epoch);
                    // The sequencer offers a stalled member the replacement and, through the
                    // replacement's registration, tells one that merged a dropped commit.
                    j.sequencer.on_head_replaced(e.epoch);
                    j.chain.replaced_at =
                        Some(j.chain.replaced_at.map_or(e.epoch, |r| r.min(e.epoch)));
                    if j.chain.stalled.as_ref().is_some_and(|s| s.epoch >= e.epoch) {
                        j.chain.stalled = None;
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// The chain no longer has block `block`, the last this client read of `contract`'s group:
    /// a reorg deeper than the confirmations. What was read is forgotten (mirror, registrations
    /// not merged, a stall) and the group's events read again from its origin up to `safe`;
    /// the commits this member merged and the chain no longer registers are reported, and this
    /// account's own are registered again ([`Client::recommit_dropped`]). One that another
    /// commit took the place of is a fork, handled as one.
    async fn read_again(&mut self, contract: Address, block: u64, safe: u64) -> Result<(), Error> {
        let origin = {
            let j = self
                .engine
                .groups
                .get(&contract)
                .ok_or(Error::UnknownGroup { group: contract })?;
            j.chain.origin.max(self.config.deployment.block)
        };
        // This account's transactions may have gone with the dropped blocks.
        self.chain.reset_nonce().await;
        let logs = group_logs(&self.chain, &[contract], origin, safe).await?;
        let times = self.registration_times(&logs).await?;
        let at = self.block_ref(safe).await?;
        let j = self
            .engine
            .groups
            .get_mut(&contract)
            .ok_or(Error::UnknownGroup { group: contract })?;
        let epoch = j.group.epoch();
        j.chain.mirror = crate::verdict::AclMirror::new();
        j.chain.pending.clear();
        j.chain.registered.clear();
        j.chain.stalled = None;
        j.sequencer.on_head_replaced(epoch + 1);
        self.apply_logs(
            contract,
            logs.into_iter().map(|(_, e, b, t)| (e, b, t)),
            &times,
        )?;
        let j = self
            .engine
            .groups
            .get_mut(&contract)
            .ok_or(Error::UnknownGroup { group: contract })?;
        // Merged epochs past the chain's last registration (one whose registration another
        // took the place of is the sequencer's fork).
        let head = j.chain.registered.keys().next_back().copied().unwrap_or(0);
        let dropped: Vec<u64> = j.chain.merged.range(head + 1..).map(|(e, _)| *e).collect();
        j.chain.dropped_from = dropped.first().copied();
        j.chain.next_block = safe + 1;
        j.chain.read_to = at;
        self.save_chain(contract)?;
        self.engine.events.push_back(ClientEvent::ChainReorganized {
            group: contract,
            block,
            dropped,
        });
        Ok(())
    }

    /// Registers again this account's own merged commits whose registrations a reorg dropped
    /// (in epoch order, from the chain's head epoch on): the members that merged them stay
    /// on the group's line. A registration that fails is tried at the next read.
    async fn recommit_dropped(&mut self, contract: Address) -> Result<(), Error> {
        let Some(from) = self
            .engine
            .groups
            .get(&contract)
            .and_then(|j| j.chain.dropped_from)
        else {
            return Ok(());
        };
        let head = self.head_epoch(contract).await?;
        let j = self
            .engine
            .groups
            .get(&contract)
            .ok_or(Error::UnknownGroup { group: contract })?;
        if head + 1 < from {
            return Ok(());
        }
        let Some(own) = j.chain.own.get(&(head + 1)) else {
            return Ok(());
        };
        if j.chain.merged.get(&(head + 1)) != Some(&own.registration.commit_hash) {
            return Ok(());
        }
        let r = &own.registration;
        let changes = eth_mls_chain::AclChanges {
            added: r.added.clone(),
            key_packages: r.key_packages.iter().map(|k| (*k).into()).collect(),
            removed: r.removed.clone(),
        };
        let group = self.chain.group(contract);
        match group
            .commit(
                r.epoch,
                &own.commit,
                r.epoch_authenticator_hash.into(),
                &changes,
            )
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => {
                self.engine.events.push_back(ClientEvent::MergeDelayed {
                    group: contract,
                    epoch: r.epoch,
                    error: chain_err(e),
                });
                Ok(())
            }
        }
    }

    /// Runs the group's intents and sequencer until neither can move.
    pub(super) async fn advance(&mut self, contract: Address) -> Result<(), Error> {
        self.advance_to(contract, None).await
    }

    /// Runs the group's intents and sequencer until nothing moves, or until the group is at
    /// epoch `target`.
    pub(super) async fn advance_to(
        &mut self,
        contract: Address,
        target: Option<u64>,
    ) -> Result<(), Error> {
        let epoch = self.epoch(contract)?;
        let rounds = target.map_or(64, |t| 64 + 4 * t.saturating_sub(epoch).min(1 << 20));
        for _ in 0..rounds {
            if target.is_some_and(|t| self.epoch(contract).is_ok_and(|e| e >= t)) {
                break;
            }
            let moved_intent = self.step_intent(contract).await?;
            let moved_seq = self.step_sequencer(contract).await?;
            if !moved_intent && !moved_seq {
                break;
            }
        }
        Ok(())
    }

    /// Whether the chain (as read so far) registered a commit to `epoch` of `contract`.
    pub(super) fn is_registered(&self, contract: Address, epoch: u64) -> bool {
        self.engine
            .groups
            .get(&contract)
            .is_some_and(|j| j.is_registered(epoch))
    }

    /// One action of the group's sequencer; whether it moved.
    pub(super) async fn step_sequencer(&mut self, contract: Address) -> Result<bool, Error> {
        let j = self
            .engine
            .groups
            .get_mut(&contract)
            .ok_or(Error::UnknownGroup { group: contract })?;
        if !j.active {
            return Ok(false);
        }
        let Some(action) = j.sequencer.poll() else {
            return Ok(false);
        };
        match action {
            // The intent merges or discards its own commit.
            Action::Won { .. } | Action::Lost { .. } => Ok(true),
            Action::Process {
                registration,
                bytes,
                ..
            } => {
                if j.group
                    .pending_commit(&self.engine.store)
                    .map_err(core)?
                    .is_some()
                {
                    // Our intent discards its commit first; the registration is offered again.
                    let reg = *registration;
                    j.sequencer.on_registered(reg, bytes);
                    return Ok(false);
                }
                let epoch = registration.epoch;
                let acl = j
                    .chain
                    .pending
                    .get(&epoch)
                    .map(|p| p.acl.clone())
                    .unwrap_or_default();
                let policy = j.chain.mirror.policy().unwrap_or(Policy::AdminsOnly);
                match self
                    .merge_registered(contract, &bytes, &registration, policy, &acl)
                    .await
                {
                    Ok(()) => {}
                    Err(e) if is_transient(&e) => {
                        // Nothing changed: the same registration is tried at the next sync
                        // (security review M1: an RPC failure is not a verdict).
                        let j = self
                            .engine
                            .groups
                            .get_mut(&contract)
                            .ok_or(Error::UnknownGroup { group: contract })?;
                        j.sequencer.on_registered(*registration, bytes);
                        self.engine.events.push_back(ClientEvent::MergeDelayed {
                            group: contract,
                            epoch,
                            error: e,
                        });
                        return Ok(false);
                    }
                    // A commit this account registered and this device cannot process (a
                    // member cannot decrypt its own commit): the device lost the state it
                    // built it from (a restored backup). Nobody can replace that commit for
                    // it — the others merged it — so it rejoins: a fork.
                    Err(e) if registration.registrant == self.address() => {
                        let j = self
                            .engine
                            .groups
                            .get_mut(&contract)
                            .ok_or(Error::UnknownGroup { group: contract })?;
                        j.sequencer.failed(epoch);
                        self.forked(
                            contract,
                            epoch,
                            format!(
                                "this account's own commit, which this device cannot process: {e}"
                            ),
                        )
                        .await?;
                    }
                    Err(e) => self.stall(contract, epoch, e.to_string())?,
                }
                Ok(true)
            }
            Action::Forked { epoch } => {
                self.forked(
                    contract,
                    epoch,
                    "the chain dropped a commit this member merged (the owner replaced it)".into(),
                )
                .await?;
                Ok(true)
            }
        }
    }

    /// The registered commit of `epoch` could not be processed or was refused: the group is
    /// stalled before it (state kept, still subscribed), reported, and saved.
    fn stall(&mut self, contract: Address, epoch: u64, reason: String) -> Result<(), Error> {
        let j = self
            .engine
            .groups
            .get_mut(&contract)
            .ok_or(Error::UnknownGroup { group: contract })?;
        j.sequencer.failed(epoch);
        j.chain.stalled = Some(Stalled {
            epoch,
            reason: reason.clone(),
        });
        let at = j.group.epoch();
        self.save_chain(contract)?;
        self.engine.events.push_back(ClientEvent::Stalled {
            group: contract,
            epoch: at,
            reason,
        });
        Ok(())
    }

    /// Processes, judges and merges the registered commit `commit` of `reg`. Checks that read
    /// the chain come before anything changes, so a transient failure leaves the group as it
    /// was and the same registration can be tried again.
    async fn merge_registered(
        &mut self,
        contract: Address,
        commit: &[u8],
        reg: &Registration,
        policy: Policy,
        acl: &Acl,
    ) -> Result<(), Error> {
        let j = self
            .engine
            .groups
            .get_mut(&contract)
            .ok_or(Error::UnknownGroup { group: contract })?;
        let epoch = j.group.epoch();
        let binding = j
            .group
            .binding()
            .ok_or_else(|| Error::Core("the group has no chain binding".into()))?;
        let v = erc1271(&self.chain, Some(reg.block));
        // The consents of the accounts the registration adds (the verdict then requires the
        // commit's adds to be exactly these).
        let registered = CommitSummary {
            committer: reg.registrant,
            added: reg.added.clone(),
            added_key_packages: reg.key_packages.clone(),
            removed: reg.removed.clone(),
            updated: Vec::new(),
            other_proposals: Vec::new(),
            new_epoch: reg.epoch,
            self_removed: false,
        };
        crate::invitation::check_consents(commit, reg, &registered, acl, &binding, Some(&v))
            .await?;
        let checks = Checks::at(reg.timestamp).with_erc1271(&v);
        crate::catchup::take_in_carried(&mut j.group, &mut self.engine.store, commit, &checks)
            .await?;
        j.group
            .process(&mut self.engine.store, commit, &checks)
            .await
            .map_err(core)?;
        let staged = j
            .group
            .staged_commit()
            .map_err(core)?
            .ok_or_else(|| Error::Core("the commit staged nothing".into()))?;
        if let Err(e) = check_commit(epoch, commit, reg, &staged, policy, acl) {
            j.group
                .discard_staged_commit(&mut self.engine.store)
                .map_err(core)?;
            return Err(e);
        }
        j.group
            .merge_staged_commit(&mut self.engine.store)
            .map_err(core)?;
        let new_epoch = j.group.epoch();
        j.sequencer.merged(new_epoch, keccak256(commit).0);
        j.chain.stalled = None;
        if staged.self_removed {
            j.active = false;
            self.save_chain(contract)?;
            self.report_merge(contract, &staged, new_epoch);
            self.engine
                .events
                .push_back(ClientEvent::Removed { group: contract });
            return Ok(());
        }
        let authenticated = check_epoch_authenticator(reg, &j.group.epoch_authenticator());
        self.save_chain(contract)?;
        // Merged and saved: a wrong authenticator after the merge is a fork (this member's
        // state differs from the committer's), reported as one.
        if let Err(e) = authenticated {
            let j = self
                .engine
                .groups
                .get_mut(&contract)
                .ok_or(Error::UnknownGroup { group: contract })?;
            j.sequencer.failed(new_epoch + 1);
            self.forked(contract, new_epoch, e.to_string()).await?;
            return Ok(());
        }
        self.report_merge(contract, &staged, new_epoch);
        self.retry_deferred(contract).await?;
        Ok(())
    }

    /// This member forked at `epoch`: report it and ask the group's owner to re-add it.
    pub(super) async fn forked(
        &mut self,
        contract: Address,
        epoch: u64,
        reason: String,
    ) -> Result<(), Error> {
        let j = self
            .engine
            .groups
            .get_mut(&contract)
            .ok_or(Error::UnknownGroup { group: contract })?;
        j.active = false;
        let owner = j.chain.mirror.acl().owner;
        let last_epoch = j.group.epoch();
        self.engine.events.push_back(ClientEvent::ForkDetected {
            group: contract,
            epoch,
            reason,
        });
        // What this member sent from `epoch` on was encrypted under secrets the group no
        // longer has: said so, never silently dropped (security review H3).
        if last_epoch >= epoch {
            self.engine.events.push_back(ClientEvent::MessageLost {
                group: contract,
                epoch,
                reason: format!(
                    "what this account sent in epochs {epoch}..={last_epoch} was in commits the \
                     chain dropped: nobody in the group can read it"
                ),
            });
        }
        let Some(admin) = owner.filter(|o| *o != self.address()) else {
            return Ok(());
        };
        let key_package = self.engine.store.generate_key_package(None).map_err(core)?;
        let request = ReaddRequest {
            request_id: random_id()?,
            group: self.group_ref(contract),
            last_epoch,
            key_package,
        };
        // Its Welcome is accepted like an invitation's.
        let group_id = self.joined(contract)?.group.id().to_vec();
        let session = self
            .send_direct(admin, None, &ClientMessage::ReaddRequest(request.clone()))
            .await?;
        records::put_received(
            &mut self.engine.store,
            &ReceivedInvitation {
                from: admin,
                session,
                answered: true,
                request: InvitationRequest {
                    request_id: request.request_id,
                    group: request.group,
                    group_id,
                    inviter: admin.into_array(),
                    expiry: u64::MAX,
                    note: String::new(),
                },
            },
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// M1: an RPC or ERC-1271 failure is retried, never a verdict (on ec4cec7 core's
    /// `CheckUnavailable` became `Error::Core` and the member forked).
    #[test]
    fn transient_failures_are_told_apart_from_verdicts() {
        let unavailable = super::super::core(eth_mls_core::Error::CheckUnavailable("rpc".into()));
        assert_eq!(unavailable, Error::Erc1271Unavailable("rpc".into()));
        assert!(is_transient(&unavailable));
        assert!(is_transient(&Error::Chain("timeout".into())));
        assert!(is_transient(&Error::Delivery("down".into())));
        assert!(!is_transient(&super::super::core(
            eth_mls_core::Error::Rejected("garbage".into())
        )));
        assert!(!is_transient(&Error::CommitHashMismatch));
        assert!(!is_transient(&Error::UnaccountedProposals {
            types: vec![8]
        }));
    }
}
