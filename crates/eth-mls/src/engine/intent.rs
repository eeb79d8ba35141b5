//! Intents (decision 14): a change the member wants (update, add, remove, leave) is a durable
//! record that moves `build -> registered -> merged`, or is rebuilt when another commit won
//! the epoch, or fails. The next step is a **pure function of durable facts** — the intent's
//! record, eth-mls-core's pending commit (which core persists atomically with the commit), the
//! local epoch, and the chain's registration for the next epoch — so whatever moment a process
//! is killed at, the restarted one computes the same next step from the same facts. Nothing
//! in memory is trusted across a restart, and a commit is never built twice for one epoch
//! (core refuses a second pending commit) nor merged unless the chain registered it.

/// How many times an intent is rebuilt after losing the epoch before it fails.
pub const MAX_ATTEMPTS: u32 = 5;

/// The durable record of an intent (the client's store keeps it; [`Intent::encode`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Intent {
    /// Its id (the client's counter).
    pub id: u64,
    /// How many times it lost the epoch to another commit.
    pub attempts: u32,
    /// The epoch its current commit was built for (`None` before the first build).
    pub built_for: Option<u64>,
    /// keccak256 of its current commit's bytes.
    pub commit_hash: Option<[u8; 32]>,
    /// Whether it is done (merged) or failed.
    pub outcome: Option<Outcome>,
    /// The transaction slot its registration was last sent in (saved before sending, so a
    /// restarted client sends it again in the same nonce instead of a second transaction).
    pub sent: Option<Sent>,
}

/// Where an intent's registration transaction was sent: its nonce and the fees it offered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sent {
    /// The nonce.
    pub nonce: u64,
    /// EIP-1559 maximum fee per gas offered, wei (0: the provider priced it).
    pub max_fee: u128,
    /// EIP-1559 priority fee per gas offered, wei.
    pub tip: u128,
}

/// How an intent ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Its commit was registered and merged in this epoch.
    Merged(u64),
    /// It lost the epoch [`MAX_ATTEMPTS`] times.
    GaveUp,
}

/// The facts the next step is computed from, all read from durable state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Facts {
    /// The group's epoch in eth-mls-core.
    pub local_epoch: u64,
    /// keccak256 of core's pending (own, unmerged) commit, if any.
    pub pending: Option<[u8; 32]>,
    /// keccak256 of the commit the chain registered for `local_epoch + 1`, if any (confirmed).
    pub registered_next: Option<[u8; 32]>,
    /// keccak256 of the commit the chain registered for the epoch this intent's commit was
    /// built for, if it has one and that epoch is registered.
    pub registered_built: Option<[u8; 32]>,
}

/// What to do next. The client runs one intent per group at a time, so a pending commit the
/// intent has not recorded is the one it built just before a crash.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Build the commit with eth-mls-core (it becomes the pending commit), then record its
    /// epoch and hash with [`Intent::built`].
    Build,
    /// Record the pending commit as this intent's ([`Intent::built`] with `local_epoch + 1`):
    /// it was built just before a crash.
    Adopt,
    /// Send the registration transaction of the pending commit for `epoch` (again, if a
    /// previous attempt's fate is unknown: a duplicate registration only reverts).
    Register {
        /// The epoch it starts.
        epoch: u64,
    },
    /// The chain registered our commit: merge the pending commit.
    Merge,
    /// Another commit won the epoch (or ours is stale): discard the pending commit; the
    /// sequencer then merges the winner.
    Discard,
    /// Our commit was merged (possibly just before a crash): [`Intent::merged`].
    RecordMerged {
        /// The epoch it started.
        epoch: u64,
    },
    /// Our commit lost its epoch: [`Intent::lost`], then build again.
    RecordLost,
    /// Wait for the chain or for the sequencer to merge someone else's commit.
    Wait,
    /// Nothing left to do.
    Done,
}

impl Intent {
    /// A new intent.
    pub fn new(id: u64) -> Self {
        Self {
            id,
            attempts: 0,
            built_for: None,
            commit_hash: None,
            outcome: None,
            sent: None,
        }
    }

    /// The next step from the durable facts.
    pub fn next(&self, f: &Facts) -> Step {
        if self.outcome.is_some() {
            return Step::Done;
        }
        let next_epoch = f.local_epoch + 1;
        match (f.pending, self.commit_hash, self.built_for) {
            // A pending commit this intent has not recorded: built just before a crash.
            (Some(_), None, _) => Step::Adopt,
            (Some(p), Some(h), Some(e)) if p == h && e == next_epoch => match f.registered_next {
                Some(r) if r == h => Step::Merge,
                Some(_) => Step::Discard,
                None => Step::Register { epoch: e },
            },
            // A pending commit that is stale or not the recorded one.
            (Some(_), _, _) => Step::Discard,
            (None, Some(h), Some(e)) if f.local_epoch >= e => {
                if f.registered_built == Some(h) {
                    Step::RecordMerged { epoch: e }
                } else {
                    Step::RecordLost
                }
            }
            // Discarded before its epoch was decided: wait for the winner to be merged.
            (None, Some(_), Some(_)) if f.registered_next.is_some() => Step::Wait,
            (None, Some(_), Some(_)) => Step::RecordLost,
            (None, _, _) if f.registered_next.is_some() => Step::Wait,
            (None, _, _) => Step::Build,
        }
    }

    /// Records the commit built for `epoch` with `hash` (persist before sending it).
    pub fn built(&mut self, epoch: u64, hash: [u8; 32]) {
        self.built_for = Some(epoch);
        self.commit_hash = Some(hash);
    }

    /// Records that the commit was merged in `epoch`.
    pub fn merged(&mut self, epoch: u64) {
        self.outcome = Some(Outcome::Merged(epoch));
    }

    /// Records that the epoch was lost; the intent is rebuilt, or gives up after
    /// [`MAX_ATTEMPTS`].
    pub fn lost(&mut self) {
        self.attempts += 1;
        self.built_for = None;
        self.commit_hash = None;
        if self.attempts >= MAX_ATTEMPTS {
            self.outcome = Some(Outcome::GaveUp);
        }
    }

    /// The versioned byte encoding of the record.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = eth_mls_channel::codec::Writer::with_capacity(96);
        w.u16(2);
        w.u64(self.id);
        w.u32(self.attempts);
        match (self.built_for, self.commit_hash) {
            (Some(e), Some(h)) => {
                w.u8(1);
                w.u64(e);
                w.bytes(&h);
            }
            _ => w.u8(0),
        }
        match self.outcome {
            None => w.u8(0),
            Some(Outcome::Merged(e)) => {
                w.u8(1);
                w.u64(e);
            }
            Some(Outcome::GaveUp) => w.u8(2),
        }
        match self.sent {
            None => w.u8(0),
            Some(s) => {
                w.u8(1);
                w.u64(s.nonce);
                w.bytes(&s.max_fee.to_be_bytes());
                w.bytes(&s.tip.to_be_bytes());
            }
        }
        w.buf
    }

    /// Decodes [`Intent::encode`] (and version 1, written before `sent`); never panics.
    pub fn decode(bytes: &[u8]) -> Result<Self, crate::Error> {
        let bad = |what| crate::Error::Decode { what };
        let mut r = eth_mls_channel::codec::Reader::new(bytes);
        let version = r.u16("version").map_err(|_| bad("intent version"))?;
        if version != 1 && version != 2 {
            return Err(crate::Error::UnsupportedVersion { version });
        }
        let id = r.u64("id").map_err(|_| bad("intent id"))?;
        let attempts = r.u32("attempts").map_err(|_| bad("intent attempts"))?;
        let (built_for, commit_hash) = match r.u8("built").map_err(|_| bad("intent built"))? {
            0 => (None, None),
            1 => (
                Some(r.u64("epoch").map_err(|_| bad("intent epoch"))?),
                Some(r.array::<32>("hash").map_err(|_| bad("intent hash"))?),
            ),
            _ => return Err(bad("intent built")),
        };
        let outcome = match r.u8("outcome").map_err(|_| bad("intent outcome"))? {
            0 => None,
            1 => Some(Outcome::Merged(
                r.u64("epoch").map_err(|_| bad("intent outcome"))?,
            )),
            2 => Some(Outcome::GaveUp),
            _ => return Err(bad("intent outcome")),
        };
        let sent = match version {
            1 => None,
            _ => match r.u8("sent").map_err(|_| bad("intent sent"))? {
                0 => None,
                1 => Some(Sent {
                    nonce: r.u64("nonce").map_err(|_| bad("intent sent"))?,
                    max_fee: u128::from_be_bytes(
                        r.array::<16>("max fee").map_err(|_| bad("intent sent"))?,
                    ),
                    tip: u128::from_be_bytes(r.array::<16>("tip").map_err(|_| bad("intent sent"))?),
                }),
                _ => return Err(bad("intent sent")),
            },
        };
        if r.remaining() != 0 {
            return Err(bad("trailing bytes"));
        }
        Ok(Self {
            id,
            attempts,
            built_for,
            commit_hash,
            outcome,
            sent,
        })
    }
}
