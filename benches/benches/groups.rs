//! Group operations of eth-mls-core at 2, 10, 100, 1000 members (10,000 for joining and for
//! processing a commit, with `ETH_MLS_BENCH_LARGE=1`), suite 0x0004 and suite 0x0001:
//! adding one member (creating the commit), processing that commit as another member,
//! joining from the Welcome, a self-update commit and its processing, a removal and its
//! processing, and a 1 KiB application message encrypted and decrypted.
//!
//! The tree is that of a group in use: after the creator added everyone in one commit, the
//! members at leaves 2, 4, 8, … committed a self-update each, so the creator's copath is
//! populated (right after a mass add, every other parent node is blank and a commit encrypts
//! to every leaf — see the README). Every operation includes its SQLite transaction (an
//! in-memory database).
//!
//! Sizes: `ETH_MLS_BENCH_SIZES=2,10` to choose; `ETH_MLS_BENCH_SUITES=4` for suite 0x0004
//! only; `ETH_MLS_BENCH_STORE=encrypted|unencrypted` for file stores (SQLCipher, or plain
//! SQLite to measure the encryption's cost) instead of in-memory ones.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

#[path = "support/ours.rs"]
mod ours;

use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use eth_mls_core::{Group, ValidatedKeyPackage};
use openmls::prelude::Ciphersuite;

use ours::{Member, Setup, block_on, checks, config, custom, phantom_key_package, setup};

const SUITE4: Ciphersuite = Ciphersuite::MLS_256_DHKEMX448_AES256GCM_SHA512_Ed448;
const SUITE1: Ciphersuite = Ciphersuite::MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519;

fn bench_size(c: &mut Criterion, n: usize, suite: Ciphersuite, only_large_ops: bool) {
    let name = if suite == SUITE4 { "suite4" } else { "suite1" };
    let t = Instant::now();
    let mut s = setup(n, suite, !only_large_ops);
    eprintln!("setup of {n} members ({name}): {:.1?}", t.elapsed());
    // File-backed runs get their own names, so the in-memory table is not overwritten.
    let store = match std::env::var("ETH_MLS_BENCH_STORE")
        .unwrap_or_default()
        .as_str()
    {
        "" | "memory" => String::new(),
        kind => format!("_{kind}"),
    };
    let mut group = c.benchmark_group(format!("group/{name}{store}/{n}"));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(if n >= 1000 { 20 } else { 5 }));
    group.warm_up_time(Duration::from_secs(1));

    let suite = s.suite;
    let next_id = s.next_id;
    let joiner_kp = phantom_key_package(next_id, suite);
    let state = &mut s;

    // A commit the processor has not seen: made by the creator, then discarded by it.
    let commit_of = |creator: &mut Member, kind: &str, kp: &ValidatedKeyPackage| -> Vec<u8> {
        let (g, st) = creator.g();
        let out = match kind {
            "add" => block_on(g.add_members(st, std::slice::from_ref(kp), &checks())).unwrap(),
            "update" => g.self_update(st).unwrap(),
            _ => {
                let last = *g.members().last().unwrap();
                g.remove_members(st, &[last]).unwrap()
            }
        };
        g.discard_pending_commit(st).unwrap();
        out.commit
    };
    // Benchmarks that only create commits consume the creator's handshake generations;
    // a merged commit afterwards starts fresh ratchets for the processor.
    let advance = |s: &mut Setup| {
        let (g, st) = s.creator.g();
        let out = g.self_update(st).unwrap();
        g.merge_pending_commit(st).unwrap();
        s.processor.apply(&out.commit);
    };
    let discard_own = |s: &mut Setup, _| {
        let (g, st) = s.creator.g();
        g.discard_pending_commit(st).unwrap();
    };

    if !only_large_ops {
        group.bench_function("add_member_commit", |b| {
            b.iter_custom(|iters| {
                custom(
                    iters,
                    state,
                    |_| (),
                    |s, ()| {
                        let (g, st) = s.creator.g();
                        block_on(g.add_members(st, std::slice::from_ref(&joiner_kp), &checks()))
                            .unwrap()
                    },
                    discard_own,
                )
            })
        });
        advance(state);
    }

    for kind in ["add", "update", "remove"] {
        if only_large_ops && kind != "add" {
            continue;
        }
        group.bench_function(format!("process_{kind}_commit"), |b| {
            b.iter_custom(|iters| {
                custom(
                    iters,
                    state,
                    |s| commit_of(&mut s.creator, kind, &joiner_kp),
                    |s, commit| {
                        let (g, st) = s.processor.g();
                        block_on(g.process(st, &commit, &checks())).unwrap()
                    },
                    |s, _| {
                        let (g, st) = s.processor.g();
                        g.discard_staged_commit(st).unwrap();
                    },
                )
            })
        });
    }

    group.bench_function("join_from_welcome", |b| {
        b.iter_custom(|iters| {
            custom(
                iters,
                state,
                |s| {
                    let mut joiner = Member::new(next_id, suite);
                    let kp = joiner.key_package(suite);
                    let (g, st) = s.creator.g();
                    let out = block_on(g.add_members(st, &[kp], &checks())).unwrap();
                    g.discard_pending_commit(st).unwrap();
                    (joiner, out.welcome.unwrap())
                },
                |_, (mut joiner, welcome): (Member, Vec<u8>)| {
                    let group = block_on(Group::join(
                        &mut joiner.store,
                        &welcome,
                        config(),
                        &checks(),
                    ))
                    .unwrap();
                    (joiner, group)
                },
                |_, out| drop(out),
            )
        })
    });

    if !only_large_ops {
        group.bench_function("self_update_commit", |b| {
            b.iter_custom(|iters| {
                custom(
                    iters,
                    state,
                    |_| (),
                    |s, ()| {
                        let (g, st) = s.creator.g();
                        g.self_update(st).unwrap()
                    },
                    discard_own,
                )
            })
        });
        advance(state);
        group.bench_function("remove_commit", |b| {
            b.iter_custom(|iters| {
                custom(
                    iters,
                    state,
                    |_| (),
                    |s, ()| {
                        let (g, st) = s.creator.g();
                        let last = *g.members().last().unwrap();
                        g.remove_members(st, &[last]).unwrap()
                    },
                    discard_own,
                )
            })
        });
        advance(state);
        let data = vec![0x5a; 1024];
        group.bench_function("message_1KiB_encrypt_decrypt", |b| {
            b.iter(|| {
                let (g, st) = state.creator.g();
                let m = g.send(st, &data).unwrap().bytes;
                let (g, st) = state.processor.g();
                block_on(g.process(st, &m, &checks())).unwrap()
            })
        });
    }
    group.finish();
}

fn sizes() -> Vec<usize> {
    std::env::var("ETH_MLS_BENCH_SIZES")
        .ok()
        .map(|s| s.split(',').filter_map(|x| x.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![2, 10, 100, 1000])
}

/// `ETH_MLS_BENCH_SUITES=4` runs suite 0x0004 only.
fn suites() -> Vec<Ciphersuite> {
    match std::env::var("ETH_MLS_BENCH_SUITES").as_deref() {
        Ok("4") => vec![SUITE4],
        _ => vec![SUITE4, SUITE1],
    }
}

fn groups(c: &mut Criterion) {
    for n in sizes() {
        for suite in suites() {
            bench_size(c, n, suite, false);
        }
    }
    if std::env::var_os("ETH_MLS_BENCH_LARGE").is_some() {
        for suite in [SUITE4, SUITE1] {
            bench_size(c, 10_000, suite, true);
        }
    }
}

criterion_group!(benches, groups);
criterion_main!(benches);
