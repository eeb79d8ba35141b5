//! Property test: two devices send to each other while the network drops, duplicates and
//! reorders their messages. Every message delivered while its keys are retained decrypts
//! exactly once, in whatever order it arrives; every other delivery (duplicates, messages of
//! an evicted chain) is rejected with a typed error and changes nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeSet, HashSet};

use eth_mls_channel::{
    ChannelMessage, DefaultBackend as B, Device, ErrorCode, OneTimePrekeyChoice, PrekeyBundle,
    Secret,
};
use proptest::prelude::*;

const NOW: u64 = 1_785_000_000;
/// Sends per party: below MAX_SKIPPED_PER_CHAIN, so no skipped key is ever evicted; only
/// whole chains (more than MAX_RECEIVING_CHAINS turns old) can be.
const MAX_SENDS: usize = 35;

#[derive(Clone, Debug)]
enum Op {
    /// Party 0 (Alice) or 1 (Bob) sends.
    Send(usize),
    /// Deliver one in-flight message to party `.0`, picked by `.1`.
    Deliver(usize, usize),
    /// Deliver again a message party `.0` already received.
    Duplicate(usize, usize),
    /// The network loses an in-flight message to party `.0`.
    Drop(usize, usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..2usize).prop_map(Op::Send),
        5 => (0..2usize, any::<usize>()).prop_map(|(p, i)| Op::Deliver(p, i)),
        1 => (0..2usize, any::<usize>()).prop_map(|(p, i)| Op::Duplicate(p, i)),
        1 => (0..2usize, any::<usize>()).prop_map(|(p, i)| Op::Drop(p, i)),
    ]
}

struct Party {
    dev: Device<B>,
    /// Messages on their way to this party: (id, bytes).
    inbox: Vec<(u32, Vec<u8>)>,
    /// Messages this party received.
    received: Vec<(u32, Vec<u8>)>,
    /// Ids this party decrypted.
    decrypted: HashSet<u32>,
    /// Every ratchet key this party has had a receiving chain for.
    seen_chains: BTreeSet<[u8; 56]>,
    sends: usize,
}

struct World {
    parties: [Party; 2],
    sid: [u8; 32],
    next_id: u32,
    evicted: usize,
}

fn world() -> World {
    let mut bob = Device::<B>::generate([0xbb; 20], Secret::new([2; 57])).unwrap();
    bob.rotate_signed_prekey(NOW, 86_400).unwrap();
    bob.generate_one_time_prekeys(1).unwrap();
    let bundle =
        PrekeyBundle::validate::<B>(&bob.bundle(NOW, 1).unwrap().encode().unwrap(), NOW).unwrap();
    let mut alice = Device::<B>::generate([0xaa; 20], Secret::new([1; 57])).unwrap();
    let sid = alice
        .initiate(&bundle, OneTimePrekeyChoice::Random)
        .unwrap();
    let party = |dev| Party {
        dev,
        inbox: Vec::new(),
        received: Vec::new(),
        decrypted: HashSet::new(),
        seen_chains: BTreeSet::new(),
        sends: 0,
    };
    World {
        parties: [party(alice), party(bob)],
        sid,
        next_id: 0,
        evicted: 0,
    }
}

fn header_dh(bytes: &[u8]) -> [u8; 56] {
    ChannelMessage::decode(bytes)
        .unwrap()
        .ratchet_message()
        .header
        .dh
}

impl World {
    fn step(&mut self, op: &Op) -> Result<(), TestCaseError> {
        match *op {
            Op::Send(p) => {
                let me = &mut self.parties[p];
                // Bob has no session before Alice's first message arrives.
                if me.sends >= MAX_SENDS || me.dev.session(&self.sid).is_none() {
                    return Ok(());
                }
                let id = self.next_id;
                self.next_id += 1;
                let bytes = me.dev.encrypt(&self.sid, &id.to_be_bytes()).unwrap();
                me.sends += 1;
                self.parties[1 - p].inbox.push((id, bytes));
            }
            Op::Deliver(p, i) => {
                let me = &mut self.parties[p];
                if me.inbox.is_empty() {
                    return Ok(());
                }
                let (id, bytes) = me.inbox.remove(i % me.inbox.len());
                let dh = header_dh(&bytes);
                let before = me.dev.to_bytes();
                match me.dev.receive(&bytes, NOW) {
                    Ok(got) => {
                        prop_assert_eq!(got.plaintext, id.to_be_bytes().to_vec());
                        prop_assert!(me.decrypted.insert(id), "message {} decrypted twice", id);
                    }
                    Err(e) => {
                        // Only a message of an evicted chain may fail on first delivery.
                        let retained = me.dev.session(&self.sid).is_some_and(|s| {
                            s.snapshot()
                                .receiving_chains
                                .iter()
                                .any(|c| c.ratchet_key == dh)
                        });
                        prop_assert!(
                            me.seen_chains.contains(&dh) && !retained,
                            "message {} failed: {:?}",
                            id,
                            e
                        );
                        prop_assert_eq!(e.code(), Some(ErrorCode::AeadFailure));
                        prop_assert!(
                            me.dev.to_bytes() == before,
                            "a rejection changed the device"
                        );
                        self.evicted += 1;
                    }
                }
                if let Some(s) = me.dev.session(&self.sid) {
                    me.seen_chains
                        .extend(s.snapshot().receiving_chains.iter().map(|c| c.ratchet_key));
                }
                me.received.push((id, bytes));
            }
            Op::Duplicate(p, i) => {
                let me = &mut self.parties[p];
                if me.received.is_empty() {
                    return Ok(());
                }
                let (id, bytes) = me.received[i % me.received.len()].clone();
                let before = me.dev.to_bytes();
                let r = me.dev.receive(&bytes, NOW);
                prop_assert!(r.is_err(), "duplicate of message {} accepted", id);
                prop_assert!(
                    me.dev.to_bytes() == before,
                    "a duplicate changed the device"
                );
            }
            Op::Drop(p, i) => {
                let me = &mut self.parties[p];
                if !me.inbox.is_empty() {
                    let n = me.inbox.len();
                    me.inbox.remove(i % n);
                }
            }
        }
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn every_delivered_message_decrypts_exactly_once(ops in proptest::collection::vec(op(), 1..160)) {
        let mut w = world();
        for op in &ops {
            w.step(op)?;
        }
        // The network heals: everything still in flight arrives, in reverse order.
        for p in 0..2 {
            while !w.parties[p].inbox.is_empty() {
                let last = w.parties[p].inbox.len() - 1;
                w.step(&Op::Deliver(p, last))?;
            }
        }
        let delivered: usize = w.parties.iter().map(|p| p.received.len()).sum();
        let decrypted: usize = w.parties.iter().map(|p| p.decrypted.len()).sum();
        prop_assert_eq!(decrypted + w.evicted, delivered);
    }
}

/// A long fixed interleaving: many turns, so chains are evicted and late messages of evicted
/// chains are rejected, while everything else decrypts.
#[test]
fn evicted_chains_are_rejected_cleanly() {
    let mut w = world();
    let mut late = Vec::new();
    for turn in 0..20 {
        let p = turn % 2;
        w.step(&Op::Send(p)).unwrap();
        w.step(&Op::Send(p)).unwrap();
        // Hold back the first message of each of Alice's turns after the first.
        if p == 0 && turn > 0 {
            late.push(w.parties[1].inbox.remove(0));
        }
        while !w.parties[1 - p].inbox.is_empty() {
            w.step(&Op::Deliver(1 - p, 0)).unwrap();
        }
    }
    w.parties[1].inbox.extend(late);
    while !w.parties[1].inbox.is_empty() {
        w.step(&Op::Deliver(1, 0)).unwrap();
    }
    // Alice had 10 chains; Bob keeps 5: the held-back messages of turns 2, 4, 6 and 8 are lost.
    assert_eq!(w.evicted, 4);
    assert_eq!(w.parties[1].decrypted.len(), 20 - 4);
}
