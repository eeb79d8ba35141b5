//! Latency of the on-chain steps of eth-mls on a local anvil (automine): creating a group
//! through the factory, adding a member, registering the next epoch — each a full
//! transaction: gas estimation, signing, submission and the receipt. Gas per call is
//! printed once.
#![allow(missing_docs, clippy::unwrap_used)]

use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use eth_mls_chain::alloy::primitives::{Address, B256, U256};
use eth_mls_chain::{AclChanges, CommitPolicy, Devnet};

fn chain(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let devnet = Devnet::start().unwrap();
    let (deployment, owner) = rt.block_on(async {
        let d = devnet.deploy().await.unwrap();
        (d, devnet.chain(1).await.unwrap())
    });
    let factory = owner.factory(deployment.group_factory);
    let (group, receipt) = rt
        .block_on(factory.create_group(b"bench", 4, CommitPolicy::AdminsOnly))
        .unwrap();
    let create_gas = receipt.gas_used;

    let mut g = c.benchmark_group("chain");
    let mut n = 0u64;
    g.bench_function("create_group", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                n += 1;
                rt.block_on(factory.create_group(&n.to_be_bytes(), 4, CommitPolicy::AdminsOnly))
                    .unwrap();
            }
            start.elapsed()
        })
    });
    // Commits carry 1 KiB of bytes, as a small group's commit does.
    let commit = vec![0x5a; 1024];
    let mut epoch = 0u64;
    let mut add_gas = 0;
    g.bench_function("commit_1KiB_add_member", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                epoch += 1;
                let member = Address::from_word(B256::from(U256::from(epoch + 1000)));
                let changes = AclChanges {
                    added: vec![member],
                    key_packages: vec![B256::from(U256::from(epoch))],
                    removed: vec![],
                };
                add_gas = rt
                    .block_on(group.commit(epoch, &commit, B256::ZERO, &changes))
                    .unwrap()
                    .gas_used;
            }
            start.elapsed()
        })
    });
    let mut epoch_gas = 0;
    g.bench_function("commit_1KiB", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                epoch += 1;
                let r = rt.block_on(group.commit(epoch, &commit, B256::ZERO, &AclChanges::none()));
                epoch_gas = r.unwrap().gas_used;
            }
            start.elapsed()
        })
    });
    g.finish();
    println!(
        "\ngas per transaction (receipts): create_group {create_gas}, commit 1 KiB + add {add_gas}, commit 1 KiB {epoch_gas}"
    );
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).warm_up_time(Duration::from_millis(300)).measurement_time(Duration::from_secs(2));
    targets = chain
}
criterion_main!(benches);
