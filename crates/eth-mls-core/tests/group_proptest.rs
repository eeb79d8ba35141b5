//! Property test: random sequences of add, remove, self-update and application messages
//! among up to 8 members (suite 0x0004), everyone processing the same ordered stream. After
//! each step all current members agree on epoch, epoch authenticator and member list; every
//! application message decrypts for every current member and for no removed one.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use eth_mls_core::Event;
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Op {
    /// A member (by position among the current members) adds a new account.
    Add(usize),
    /// A member removes another (positions).
    Remove(usize, usize),
    /// A member commits a self-update.
    Update(usize),
    /// A member sends an application message.
    Send(usize, Vec<u8>),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => any::<usize>().prop_map(Op::Add),
        2 => (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Op::Remove(a, b)),
        2 => any::<usize>().prop_map(Op::Update),
        3 => (any::<usize>(), proptest::collection::vec(any::<u8>(), 0..64)).prop_map(|(a, d)| Op::Send(a, d)),
    ]
}

struct World {
    members: Vec<Peer>,
    removed: Vec<Peer>,
    next_account: u8,
}

impl World {
    fn new() -> Self {
        let mut first = Peer::in_memory(identity(1));
        first.create(b"prop");
        Self {
            members: vec![first],
            removed: Vec::new(),
            next_account: 2,
        }
    }

    /// Delivers a commit of member `from` to everyone (removed members of this commit
    /// included); the committer merges its own.
    fn commit(&mut self, from: usize, commit: &[u8]) -> Vec<usize> {
        let mut leaving = Vec::new();
        for (i, p) in self.members.iter_mut().enumerate() {
            if i == from {
                let g = p.group.as_mut().unwrap();
                g.merge_pending_commit(&mut p.store).unwrap();
                continue;
            }
            let events = p.process(commit).unwrap();
            let [Event::StagedCommit(summary)] = events.as_slice() else {
                panic!("{events:?}")
            };
            if summary.self_removed {
                leaving.push(i);
            }
            let g = p.group.as_mut().unwrap();
            g.merge_staged_commit(&mut p.store).unwrap();
        }
        leaving
    }

    fn step(&mut self, op: &Op) {
        let n = self.members.len();
        match op {
            Op::Add(by) if n < 8 => {
                let by = by % n;
                let mut new = Peer::in_memory(identity(self.next_account));
                self.next_account += 1;
                let kp = new.key_package();
                let p = &mut self.members[by];
                let out = block_on(p.group.as_mut().unwrap().add_members(
                    &mut p.store,
                    &[kp],
                    &checks(),
                ))
                .unwrap();
                assert_eq!(out.summary.added, vec![new.address()]);
                self.commit(by, &out.commit);
                new.join(out.welcome.as_ref().unwrap()).unwrap();
                self.members.push(new);
            }
            Op::Remove(by, who) if n > 1 => {
                let by = by % n;
                let mut who = who % n;
                if who == by {
                    who = (who + 1) % n;
                }
                let target = self.members[who].address();
                let p = &mut self.members[by];
                let out = p
                    .group
                    .as_mut()
                    .unwrap()
                    .remove_members(&mut p.store, &[target])
                    .unwrap();
                let leaving = self.commit(by, &out.commit);
                assert_eq!(leaving, vec![who]);
                let gone = self.members.remove(who);
                assert!(!gone.g().is_active());
                self.removed.push(gone);
            }
            Op::Update(by) => {
                let by = by % n;
                let p = &mut self.members[by];
                let out = p.group.as_mut().unwrap().self_update(&mut p.store).unwrap();
                self.commit(by, &out.commit);
            }
            Op::Send(by, data) => {
                let by = by % n;
                let m = self.members[by].send(data);
                let sender = self.members[by].address();
                for (i, p) in self.members.iter_mut().enumerate() {
                    if i == by {
                        continue;
                    }
                    let events = p.process(&m).unwrap();
                    let Some(Event::Application(app)) = events.last() else {
                        panic!("{events:?}")
                    };
                    assert_eq!(app.sender, sender);
                    assert_eq!(&app.data, data);
                }
                for p in &mut self.removed {
                    assert!(p.process(&m).is_err(), "a removed member decrypted");
                }
            }
            _ => {}
        }
        let refs: Vec<&Peer> = self.members.iter().collect();
        assert_agree(&refs);
        let mut expected: Vec<_> = self.members.iter().map(Peer::address).collect();
        let mut listed = self.members[0].g().members();
        expected.sort();
        listed.sort();
        assert_eq!(listed, expected);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]
    #[test]
    fn members_agree_and_messages_reach_exactly_the_members(ops in proptest::collection::vec(op(), 1..16)) {
        let mut world = World::new();
        for op in &ops {
            world.step(op);
        }
    }
}
