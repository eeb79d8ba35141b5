//! The 1:1 channel (eth-mls-channel) per crypto backend: X3DH as initiator (validate the
//! bundle, initiate, first message) and as responder (receive the prekey message: X3DH,
//! ratchet initialisation, first decryption), and the double ratchet on 1 KiB messages:
//! encrypt, decrypt in the current chain (no DH step), decrypt with a DH ratchet step.
//! `cargo xtask bench` prints the table of crates/eth-mls-channel/README.md from the results.
#![allow(missing_docs, clippy::unwrap_used)]

use std::hint::black_box;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use eth_mls_channel::{
    Backend, ChannelMessage, Device, OneTimePrekeyChoice, OsKeySource, PrekeyBundle, Secret,
};
use eth_mls_crypto::{OpenSsl, RustCrypto};

const NOW: u64 = 1_785_000_000;
const KIB: &[u8] = &[0x5a; 1024];

fn bench<B: Backend>(c: &mut Criterion) {
    let mut g = c.benchmark_group(format!("channel/{}", B::NAME));
    let mut bob = Device::<B>::generate([0xbb; 20], Secret::new([2; 57])).unwrap();
    bob.rotate_signed_prekey(NOW, 86_400).unwrap();
    bob.generate_one_time_prekeys(1).unwrap();
    let bundle = bob.bundle(NOW, 1).unwrap().encode().unwrap();
    let bob_state = bob.to_bytes();
    let alice = || Device::<B>::generate([0xaa; 20], Secret::new([1; 57])).unwrap();

    g.bench_function("x3dh_initiate", |b| {
        b.iter_batched(
            alice,
            |mut a| {
                let v = PrekeyBundle::validate::<B>(black_box(&bundle), NOW).unwrap();
                let sid = a.initiate(&v, OneTimePrekeyChoice::Random).unwrap();
                a.encrypt(&sid, KIB).unwrap()
            },
            BatchSize::SmallInput,
        )
    });
    let mut a = alice();
    let v = PrekeyBundle::validate::<B>(&bundle, NOW).unwrap();
    let sid = a.initiate(&v, OneTimePrekeyChoice::Random).unwrap();
    let first = a.encrypt(&sid, KIB).unwrap();
    g.bench_function("x3dh_respond", |b| {
        b.iter_batched(
            || Device::<B>::from_bytes(&bob_state).unwrap(),
            |mut bob| bob.receive(black_box(&first), NOW).unwrap(),
            BatchSize::SmallInput,
        )
    });

    // An established session.
    let mut bob = Device::<B>::from_bytes(&bob_state).unwrap();
    bob.receive(&first, NOW).unwrap();
    let reply = bob.encrypt(&sid, b"reply").unwrap();
    a.receive(&reply, NOW).unwrap();
    let alice_session = a.session(&sid).unwrap().clone();
    g.bench_function("encrypt_1k", |b| {
        b.iter_batched(
            || alice_session.clone(),
            |mut s| s.encrypt::<B>(black_box(KIB)).unwrap(),
            BatchSize::SmallInput,
        )
    });
    // Same chain: Bob already has the receiving chain of Alice's current key.
    let mut s = alice_session.clone();
    let _ = s.encrypt::<B>(KIB).unwrap();
    let same_chain = ChannelMessage::decode(&a.encrypt(&sid, KIB).unwrap()).unwrap();
    let m0 = ChannelMessage::decode(&a.encrypt(&sid, KIB).unwrap()).unwrap();
    bob.receive(&same_chain.encode().unwrap(), NOW).unwrap();
    let bob_session = bob.session(&sid).unwrap().clone();
    g.bench_function("decrypt_1k", |b| {
        b.iter_batched(
            || (bob_session.clone(), OsKeySource::<B>::default()),
            |(mut s, mut keys)| s.decrypt::<B>(m0.ratchet_message(), &mut keys).unwrap(),
            BatchSize::SmallInput,
        )
    });
    // A DH ratchet step: Bob's reply carries a new ratchet key for Alice.
    let turn = ChannelMessage::decode(&bob.encrypt(&sid, KIB).unwrap()).unwrap();
    g.bench_function("decrypt_1k_dh_step", |b| {
        b.iter_batched(
            || (alice_session.clone(), OsKeySource::<B>::default()),
            |(mut s, mut keys)| s.decrypt::<B>(turn.ratchet_message(), &mut keys).unwrap(),
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

fn channel(c: &mut Criterion) {
    bench::<RustCrypto>(c);
    bench::<OpenSsl>(c);
}

criterion_group!(benches, channel);
criterion_main!(benches);
