//! The commit sequencer (decisions 11 and 14): a sans-IO state machine that turns what the
//! chain and gossip deliver, in any order and with duplicates, into the one commit to process
//! next. The chain orders commits: the registration of epoch `n + 1` (with the commit's bytes,
//! from the `CommitRegistered` log) is acted on once it has the configured number of
//! confirmations. Gossip is the fast path: a commit that arrives before its registration is
//! buffered (bounded) and, once the registration names its hash, processed from those bytes.
//! A commit gossip never brought is processed from the registration's own bytes.
//!
//! It also tells the member's own pending commit that it lost the epoch to another
//! registration, and the member that the chain dropped a commit it had merged (a fork: rejoin
//! through an admin) — only then: a registered commit this member cannot process or refuses
//! leaves it *stalled* at its epoch (security review H2), and a replacement of that epoch
//! (`replaceHead`) is processed like any registration; an old head replacement read again, of
//! commits this member never merged, is nothing (review H3).

use std::collections::{BTreeMap, VecDeque};

use alloy_primitives::keccak256;

use crate::verdict::Registration;

/// Gossip commits kept while their registrations are not known.
pub const MAX_BUFFERED: usize = 64;

/// What the member should do next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Process this commit for epoch `registration.epoch` (= local epoch + 1), judge it with
    /// [`crate::verdict::check_commit`], then report [`Sequencer::merged`] or
    /// [`Sequencer::failed`].
    Process {
        /// The registration (confirmed).
        registration: Box<Registration>,
        /// The commit's bytes (their keccak256 is the registered hash).
        bytes: Vec<u8>,
        /// Whether the bytes came from gossip before the registration.
        from_gossip: bool,
    },
    /// The own pending commit for `epoch` lost to another registration: discard it and build
    /// the intent again on the new epoch.
    Lost {
        /// The epoch it was built for.
        epoch: u64,
    },
    /// The own pending commit is the registered one: merge it.
    Won {
        /// The epoch it starts.
        epoch: u64,
    },
    /// The chain now registers another commit for `epoch` than the one this member merged
    /// (the owner replaced it): it has forked and must ask an admin to re-add it.
    Forked {
        /// The first epoch whose merged commit the chain dropped.
        epoch: u64,
    },
}

/// Merged commit hashes kept to recognise a dropped one (the owner can unwind at most this
/// many heads).
pub const MERGED_KEPT: usize = 64;

/// See the module documentation.
#[derive(Clone, Debug)]
pub struct Sequencer {
    epoch: u64,
    confirmations: u64,
    head: u64,
    registrations: BTreeMap<u64, (Registration, Vec<u8>)>,
    gossip: VecDeque<([u8; 32], Vec<u8>)>,
    own: Option<([u8; 32], u64)>,
    stuck: bool,
    forked: Option<u64>,
    merged: BTreeMap<u64, [u8; 32]>,
}

impl Sequencer {
    /// A member at `epoch` that acts on registrations `confirmations` blocks deep (0 on a
    /// devnet).
    pub fn new(epoch: u64, confirmations: u64) -> Self {
        Self {
            epoch,
            confirmations,
            head: 0,
            registrations: BTreeMap::new(),
            gossip: VecDeque::new(),
            own: None,
            stuck: false,
            forked: None,
            merged: BTreeMap::new(),
        }
    }

    /// A member at `epoch` that merged these commits (epoch -> keccak256 of the commit, as
    /// [`Sequencer::merged_hashes`] gave them) and is stalled there when `stalled`.
    pub fn restore(
        epoch: u64,
        confirmations: u64,
        merged: BTreeMap<u64, [u8; 32]>,
        stalled: bool,
    ) -> Self {
        let mut s = Self::new(epoch, confirmations);
        s.merged = merged;
        s.stuck = stalled;
        s
    }

    /// The hashes of the last commits this member merged, by epoch (at most [`MERGED_KEPT`]).
    pub fn merged_hashes(&self) -> &BTreeMap<u64, [u8; 32]> {
        &self.merged
    }

    /// The local epoch.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// A commit frame from gossip (any epoch, possibly a duplicate or garbage).
    pub fn on_gossip(&mut self, bytes: Vec<u8>) {
        let hash = keccak256(&bytes).0;
        if self.gossip.iter().any(|(h, _)| *h == hash)
            || self
                .registrations
                .values()
                .any(|(r, _)| r.commit_hash == hash)
        {
            return;
        }
        self.gossip.push_back((hash, bytes));
        if self.gossip.len() > MAX_BUFFERED {
            self.gossip.pop_front();
        }
    }

    /// A `CommitRegistered` log with the commit's bytes. Registrations of past epochs and
    /// repeats are ignored; one that replaces a known registration of the same epoch (after a
    /// head replacement) takes its place.
    pub fn on_registered(&mut self, registration: Registration, bytes: Vec<u8>) {
        if registration.epoch <= self.epoch {
            // A registration of an epoch this member merged: the chain dropped its commit
            // when the hashes differ (an old registration read again is the same).
            if self
                .merged
                .get(&registration.epoch)
                .is_some_and(|h| *h != registration.commit_hash)
            {
                self.forked = Some(
                    self.forked
                        .map_or(registration.epoch, |f| f.min(registration.epoch)),
                );
            }
            return;
        }
        if keccak256(&bytes).0 != registration.commit_hash {
            // The log's bytes always hash to the registered hash; anything else is not a
            // registration of this contract.
            return;
        }
        self.registrations
            .insert(registration.epoch, (registration, bytes));
    }

    /// The owner replaced the head: registrations from `epoch` on are dropped (a new one for
    /// `epoch` follows in the same transaction, and [`Sequencer::on_registered`] tells whether
    /// this member had merged a dropped one). A member stalled before `epoch` is offered the
    /// replacement.
    pub fn on_head_replaced(&mut self, epoch: u64) {
        self.registrations.retain(|e, _| *e < epoch);
        if epoch <= self.epoch + 1 {
            self.stuck = false;
        }
    }

    /// The chain's latest block.
    pub fn on_head(&mut self, block: u64) {
        self.head = self.head.max(block);
    }

    /// The member built its own commit for `epoch + 1` (bytes hashing to `hash`) and is about
    /// to register it.
    pub fn own_pending(&mut self, hash: [u8; 32]) {
        self.own = Some((hash, self.epoch + 1));
    }

    /// The member merged the commit of `epoch` (`hash`: keccak256 of its bytes).
    pub fn merged(&mut self, epoch: u64, hash: [u8; 32]) {
        if epoch == self.epoch + 1 {
            self.merged.insert(epoch, hash);
            while self.merged.len() > MERGED_KEPT {
                self.merged.pop_first();
            }
            self.epoch = epoch;
            self.stuck = false;
            self.registrations.retain(|e, _| *e > epoch);
            if self.own.is_some_and(|(_, e)| e <= epoch) {
                self.own = None;
            }
        }
    }

    /// The member could not process (or rejected) the registered commit of `epoch`: it is
    /// stalled at its epoch and offered nothing until the owner replaces that commit
    /// ([`Sequencer::on_head_replaced`]). Not a fork: its state is the group's at `epoch - 1`.
    pub fn failed(&mut self, epoch: u64) {
        if epoch == self.epoch + 1 {
            self.stuck = true;
        }
    }

    /// Whether the member is stalled before a registered commit it could not process.
    pub fn is_stuck(&self) -> bool {
        self.stuck
    }

    /// The next action, if any.
    pub fn poll(&mut self) -> Option<Action> {
        if let Some(epoch) = self.forked.take() {
            self.stuck = true;
            return Some(Action::Forked { epoch });
        }
        if self.stuck {
            return None;
        }
        let next = self.epoch + 1;
        let (reg, bytes) = self.registrations.get(&next)?;
        if self.head < reg.block.saturating_add(self.confirmations) {
            return None;
        }
        if let Some((own, e)) = self.own
            && e == next
        {
            self.own = None;
            return Some(if own == reg.commit_hash {
                Action::Won { epoch: next }
            } else {
                Action::Lost { epoch: next }
            });
        }
        let gossip = self.gossip.iter().position(|(h, _)| *h == reg.commit_hash);
        let (bytes, from_gossip) = match gossip {
            Some(i) => (
                self.gossip.remove(i).map(|(_, b)| b).unwrap_or_default(),
                true,
            ),
            None => (bytes.clone(), false),
        };
        Some(Action::Process {
            registration: Box::new(reg.clone()),
            bytes,
            from_gossip,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use eth_mls_siwe::Address;

    fn reg(epoch: u64, bytes: &[u8], block: u64) -> Registration {
        Registration {
            epoch,
            registrant: Address::ZERO,
            commit_hash: keccak256(bytes).0,
            epoch_authenticator_hash: [0; 32],
            added: vec![],
            key_packages: vec![],
            removed: vec![],
            block,
            timestamp: 0,
        }
    }

    fn commit(e: u64) -> Vec<u8> {
        format!("commit {e}").into_bytes()
    }

    #[test]
    fn registrations_in_order_with_confirmations() {
        let mut s = Sequencer::new(0, 2);
        s.on_registered(reg(2, &commit(2), 11), commit(2));
        s.on_registered(reg(1, &commit(1), 10), commit(1));
        s.on_head(11);
        assert_eq!(s.poll(), None, "not confirmed yet");
        s.on_head(12);
        let Some(Action::Process {
            registration,
            bytes,
            from_gossip,
        }) = s.poll()
        else {
            panic!("epoch 1 is ready")
        };
        assert_eq!(
            (registration.epoch, bytes, from_gossip),
            (1, commit(1), false)
        );
        // Until merged, the same action again (idempotent after a restart).
        assert!(matches!(s.poll(), Some(Action::Process { .. })));
        s.merged(1, keccak256(commit(1)).0);
        assert_eq!(s.poll(), None, "epoch 2 needs block 13");
        s.on_head(13);
        assert!(
            matches!(s.poll(), Some(Action::Process { registration, .. }) if registration.epoch == 2)
        );
        s.merged(2, keccak256(commit(2)).0);
        assert_eq!((s.poll(), s.epoch()), (None, 2));
    }

    #[test]
    fn gossip_first_and_garbage() {
        let mut s = Sequencer::new(4, 0);
        s.on_gossip(b"garbage".to_vec());
        s.on_gossip(commit(5));
        s.on_gossip(commit(5));
        assert_eq!(s.poll(), None, "gossip alone is never processed");
        s.on_registered(reg(5, &commit(5), 1), commit(5));
        s.on_head(1);
        assert!(matches!(
            s.poll(),
            Some(Action::Process {
                from_gossip: true,
                ..
            })
        ));
        // A log whose bytes do not hash to its registration is ignored.
        let mut s = Sequencer::new(4, 0);
        s.on_registered(reg(5, &commit(5), 1), commit(6));
        s.on_head(5);
        assert_eq!(s.poll(), None);
        // The buffer is bounded.
        for i in 0..(MAX_BUFFERED as u64 + 10) {
            s.on_gossip(commit(100 + i));
        }
        assert_eq!(s.gossip.len(), MAX_BUFFERED);
    }

    #[test]
    fn own_commit_wins_or_loses() {
        let mut s = Sequencer::new(3, 0);
        s.own_pending(keccak256(commit(4)).0);
        s.on_registered(reg(4, &commit(4), 1), commit(4));
        s.on_head(1);
        assert_eq!(s.poll(), Some(Action::Won { epoch: 4 }));
        s.merged(4, keccak256(commit(4)).0);
        s.own_pending(keccak256(b"mine").0);
        s.on_registered(reg(5, b"theirs", 2), b"theirs".to_vec());
        s.on_head(2);
        assert_eq!(s.poll(), Some(Action::Lost { epoch: 5 }));
        // Then the winner is processed like any other commit.
        assert!(
            matches!(s.poll(), Some(Action::Process { registration, .. }) if registration.epoch == 5)
        );
    }

    #[test]
    fn a_failed_commit_stalls_the_member_and_only_a_dropped_merged_commit_forks_it() {
        let mut s = Sequencer::new(0, 0);
        s.on_registered(reg(1, &commit(1), 1), commit(1));
        s.on_head(1);
        assert!(s.poll().is_some());
        s.failed(1);
        assert!(s.is_stuck());
        assert_eq!(s.poll(), None);
        let mut s = Sequencer::new(0, 0);
        for e in 1..=3 {
            s.on_registered(reg(e, &commit(e), e), commit(e));
            s.on_head(e);
            assert!(s.poll().is_some());
            s.merged(e, keccak256(commit(e)).0);
        }
        s.on_head_replaced(2);
        // An old replacement read again, with the registrations this member merged: nothing.
        s.on_registered(reg(2, &commit(2), 2), commit(2));
        assert_eq!(s.poll(), None);
        // The replacement of a merged commit: a fork.
        s.on_registered(reg(2, b"replacement", 4), b"replacement".to_vec());
        assert_eq!(s.poll(), Some(Action::Forked { epoch: 2 }));
        assert_eq!(s.poll(), None);
        // A stalled member is offered the replacement of the commit it could not process.
        let mut s = Sequencer::new(0, 0);
        s.on_registered(reg(1, &commit(1), 1), commit(1));
        s.on_head(1);
        assert!(s.poll().is_some());
        s.failed(1);
        s.on_head_replaced(1);
        s.on_registered(reg(1, b"fixed", 2), b"fixed".to_vec());
        s.on_head(2);
        assert!(matches!(s.poll(), Some(Action::Process { bytes, .. }) if bytes == b"fixed"));
        // A replacement of epochs the member has not reached is no fork.
        let mut s = Sequencer::new(1, 0);
        s.on_registered(reg(2, &commit(2), 1), commit(2));
        s.on_head_replaced(2);
        s.on_registered(reg(2, b"replacement", 2), b"replacement".to_vec());
        s.on_head(2);
        assert!(matches!(s.poll(), Some(Action::Process { bytes, .. }) if bytes == b"replacement"));
    }

    use proptest::prelude::*;

    #[derive(Clone, Debug)]
    enum Ev {
        Reg(u64),
        Gossip(u64),
        Garbage(u8),
        Head(u64),
    }

    proptest! {
        /// Whatever the order, duplicates and garbage: every epoch is processed once, in
        /// order, with the registered bytes, and only once confirmed.
        #[test]
        fn any_interleaving_processes_each_epoch_once_in_order(
            events in proptest::collection::vec(prop_oneof![
                (1u64..=8).prop_map(Ev::Reg),
                (1u64..=8).prop_map(Ev::Gossip),
                any::<u8>().prop_map(Ev::Garbage),
                (0u64..=20).prop_map(Ev::Head),
            ], 0..80),
            confirmations in 0u64..3,
        ) {
            let mut s = Sequencer::new(0, confirmations);
            let block = |e: u64| e * 2;
            let mut head = 0;
            let mut processed = Vec::new();
            let all = (1..=8).map(Ev::Reg).chain([Ev::Head(100)]);
            for ev in events.into_iter().chain(all) {
                match ev {
                    Ev::Reg(e) => s.on_registered(reg(e, &commit(e), block(e)), commit(e)),
                    Ev::Gossip(e) => s.on_gossip(commit(e)),
                    Ev::Garbage(b) => s.on_gossip(vec![b; 3]),
                    Ev::Head(h) => {
                        head = head.max(h);
                        s.on_head(h);
                    }
                }
                while let Some(a) = s.poll() {
                    let Action::Process { registration, bytes, .. } = a else {
                        return Err(TestCaseError::fail(format!("unexpected {a:?}")));
                    };
                    prop_assert_eq!(registration.epoch, s.epoch() + 1);
                    prop_assert_eq!(keccak256(&bytes).0, registration.commit_hash);
                    prop_assert!(head >= registration.block + confirmations);
                    processed.push(registration.epoch);
                    s.merged(registration.epoch, registration.commit_hash);
                }
            }
            prop_assert_eq!(processed, (1..=8).collect::<Vec<_>>());
        }
    }
}
