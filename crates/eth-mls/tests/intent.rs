//! The intent's next step is a pure function of durable facts. This simulation kills the
//! process at random points (an effect done, its record not yet written), lets a competitor
//! win epochs on the chain, and restarts from the durable state only: the intent never builds
//! a second commit while one is pending, never merges a commit the chain did not register,
//! gets at most one of its commits registered, and ends merged (or gives up after
//! `MAX_ATTEMPTS` lost epochs).
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, HashSet};

use eth_mls::intent::{Facts, Intent, MAX_ATTEMPTS, Outcome, Sent, Step};
use proptest::prelude::*;

#[derive(Default)]
struct World {
    local_epoch: u64,
    pending: Option<([u8; 32], u64)>,
    chain: BTreeMap<u64, [u8; 32]>,
    record: Vec<u8>,
    counter: u64,
    ours: HashSet<[u8; 32]>,
}

impl World {
    fn hash(&mut self) -> [u8; 32] {
        self.counter += 1;
        let mut h = [0u8; 32];
        h[..8].copy_from_slice(&self.counter.to_be_bytes());
        h
    }
    fn head(&self) -> u64 {
        self.chain.keys().next_back().copied().unwrap_or(0)
    }
    fn facts(&self, intent: &Intent) -> Facts {
        Facts {
            local_epoch: self.local_epoch,
            pending: self.pending.map(|(h, _)| h),
            registered_next: self.chain.get(&(self.local_epoch + 1)).copied(),
            registered_built: intent.built_for.and_then(|e| self.chain.get(&e)).copied(),
        }
    }

    /// One step of the intent; with `crash`, the process dies after the step's effect and
    /// before its record is written.
    fn step(&mut self, crash: bool) -> Result<Step, TestCaseError> {
        let mut intent = Intent::decode(&self.record).unwrap();
        let step = intent.next(&self.facts(&intent));
        match step {
            Step::Build => {
                prop_assert!(self.pending.is_none(), "built a second pending commit");
                let h = self.hash();
                self.ours.insert(h);
                self.pending = Some((h, self.local_epoch + 1));
                intent.built(self.local_epoch + 1, h);
            }
            Step::Adopt => {
                let (h, e) = self.pending.unwrap();
                prop_assert_eq!(e, self.local_epoch + 1);
                intent.built(e, h);
            }
            Step::Register { epoch } => {
                let (h, _) = self.pending.unwrap();
                // The contract: epoch = head + 1, first come first served.
                if epoch == self.head() + 1 {
                    self.chain.insert(epoch, h);
                }
            }
            Step::Merge => {
                let (h, e) = self.pending.take().unwrap();
                prop_assert_eq!(
                    self.chain.get(&e),
                    Some(&h),
                    "merged an unregistered commit"
                );
                self.local_epoch = e;
            }
            Step::Discard => {
                self.pending = None;
            }
            Step::RecordMerged { epoch } => intent.merged(epoch),
            Step::RecordLost => intent.lost(),
            Step::Wait | Step::Done => {}
        }
        if !crash {
            self.record = intent.encode();
        }
        Ok(step)
    }

    /// The sequencer merges someone else's registered commit when nothing of ours is pending.
    fn sequencer(&mut self) -> Result<(), TestCaseError> {
        if self.pending.is_none()
            && let Some(h) = self.chain.get(&(self.local_epoch + 1))
        {
            prop_assert!(
                !self.ours.contains(h),
                "our registered commit was discarded"
            );
            self.local_epoch += 1;
        }
        Ok(())
    }
}

#[derive(Clone, Debug)]
enum Op {
    Step,
    Crash,
    Competitor,
    Sequencer,
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn killed_at_any_point_the_intent_lands_once(
        ops in proptest::collection::vec(prop_oneof![
            4 => Just(Op::Step),
            2 => Just(Op::Crash),
            1 => Just(Op::Competitor),
            2 => Just(Op::Sequencer),
        ], 0..120),
    ) {
        let mut w = World { record: Intent::new(1).encode(), ..World::default() };
        let mut competitor_wins = 0;
        for op in &ops {
            match op {
                Op::Step => { w.step(false)?; }
                Op::Crash => { w.step(true)?; }
                Op::Competitor if competitor_wins < 8 => {
                    let h = w.hash();
                    let e = w.head() + 1;
                    w.chain.insert(e, h);
                    competitor_wins += 1;
                }
                Op::Competitor => {}
                Op::Sequencer => w.sequencer()?,
            }
            let registered_ours = w.chain.values().filter(|h| w.ours.contains(*h)).count();
            prop_assert!(registered_ours <= 1, "two of our commits registered");
        }
        // Quiet network, no more crashes: the intent finishes.
        let mut done = false;
        for _ in 0..200 {
            w.sequencer()?;
            if w.step(false)? == Step::Done {
                done = true;
                break;
            }
        }
        prop_assert!(done, "the intent did not finish");
        let intent = Intent::decode(&w.record).unwrap();
        match intent.outcome.unwrap() {
            Outcome::Merged(e) => {
                prop_assert!(w.ours.contains(&w.chain[&e]));
                prop_assert!(w.local_epoch >= e);
            }
            Outcome::GaveUp => prop_assert_eq!(intent.attempts, MAX_ATTEMPTS),
        }
    }

    #[test]
    fn records_decode_or_fail_cleanly(bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
        if let Ok(i) = Intent::decode(&bytes) {
            // Version 1 (before `sent`) is read and written as version 2.
            if bytes[..2] == [0, 1] {
                prop_assert_eq!(i.sent, None);
                prop_assert_eq!(Intent::decode(&i.encode()).unwrap(), i);
            } else {
                prop_assert_eq!(i.encode(), bytes);
            }
        }
    }

    #[test]
    fn a_sent_slot_survives_the_record(nonce in any::<u64>(), max_fee in any::<u128>(), tip in any::<u128>()) {
        let mut i = Intent::new(7);
        i.built(3, [9; 32]);
        i.sent = Some(Sent { nonce, max_fee, tip });
        prop_assert_eq!(Intent::decode(&i.encode()).unwrap(), i);
    }
}
