//! Latency of the on-chain steps of eth-mls on a local anvil (automine): creating a group
//! through the factory, adding a member, registering the next epoch — each a full
//! transaction: gas estimation, signing, submission and the receipt. Gas per call is
//! printed once.
#![allow(missing_docs, clippy::unwrap_used)]

use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use eth_mls_chain::Devnet;
use eth_mls_chain::alloy::primitives::{Address, B256, U256};

fn chain(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let devnet = Devnet::start().unwrap();
    let (deployment, owner) = rt.block_on(async {
        let d = devnet.deploy().await.unwrap();
        (d, devnet.chain(1).await.unwrap())
    });
    let factory = owner.factory(deployment.group_factory);
    let (group, receipt) = rt.block_on(factory.create_group(b"bench", 4)).unwrap();
    let create_gas = receipt.gas_used;

    let mut g = c.benchmark_group("chain");
    let mut n = 0u64;
    g.bench_function("create_group", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                n += 1;
                rt.block_on(factory.create_group(&n.to_be_bytes(), 4))
                    .unwrap();
            }
            start.elapsed()
        })
    });
    let mut m = 0u64;
    let mut add_gas = 0;
    g.bench_function("add_member", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                m += 1;
                let member = Address::from_word(B256::from(U256::from(m + 1000)));
                add_gas = rt.block_on(group.add_member(member)).unwrap().gas_used;
            }
            start.elapsed()
        })
    });
    let mut epoch = 0u64;
    let mut epoch_gas = 0;
    g.bench_function("register_epoch", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                epoch += 1;
                let r = rt.block_on(group.register_epoch(
                    epoch,
                    B256::from(U256::from(epoch)),
                    B256::ZERO,
                ));
                epoch_gas = r.unwrap().gas_used;
            }
            start.elapsed()
        })
    });
    g.finish();
    println!(
        "\ngas per transaction (receipts): create_group {create_gas}, add_member {add_gas}, register_epoch {epoch_gas}"
    );
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).warm_up_time(Duration::from_millis(300)).measurement_time(Duration::from_secs(2));
    targets = chain
}
criterion_main!(benches);
