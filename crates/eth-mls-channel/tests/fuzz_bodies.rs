//! The cargo-fuzz targets' bodies (`eth_mls_channel::fuzzing`) over a seed corpus, so CI runs
//! them on stable: every message and bundle of the vectors, the fixture's own valid messages,
//! every truncation of those, and bit flips.
#![allow(clippy::unwrap_used)]

mod support;

use eth_mls_channel::fuzzing::{decode, decrypt, fixture};
use serde_json::Value;
use support::load;

/// Every `message` and `bundle` string anywhere in a vector file.
fn collect(v: &Value, out: &mut Vec<Vec<u8>>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                if let (true, Some(s)) = (k == "message" || k == "bundle", x.as_str()) {
                    out.push(hex::decode(s).unwrap());
                } else {
                    collect(x, out);
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|x| collect(x, out)),
        _ => {}
    }
}

fn flips(m: &[u8], every: usize) -> impl Iterator<Item = Vec<u8>> + '_ {
    (0..m.len() * 8).step_by(every).map(move |bit| {
        let mut c = m.to_vec();
        c[bit / 8] ^= 1 << (bit % 8);
        c
    })
}

#[test]
fn vector_corpus() {
    let mut corpus = Vec::new();
    for file in ["session.json", "negative.json", "bundle.json"] {
        collect(&load(file), &mut corpus);
    }
    let mut runs = 0;
    for m in &corpus {
        decode(m);
        // Vector messages belong to other devices: none decrypts here.
        assert_eq!(decrypt(m), 0);
        runs += 2;
        for c in flips(m, 97) {
            decode(&c);
            assert_eq!(decrypt(&c), 0);
            runs += 2;
        }
    }
    println!("{} vector messages and bundles, {runs} runs", corpus.len());
    assert!(corpus.len() > 300);
}

#[test]
fn fixture_corpus() {
    let f = fixture();
    let mut runs = 0;
    for m in &f.messages {
        decode(m);
        assert_eq!(decrypt(m), 1, "a valid message is accepted");
        for cut in 0..m.len() {
            decode(&m[..cut]);
            assert_eq!(decrypt(&m[..cut]), 0);
            runs += 2;
        }
        // Every byte once, and every bit of the headers and the tag.
        // A prekey message for an existing session is routed by (IK_A, EK_A) alone: its
        // sender and prekey ids are not re-checked (§9 step 3), so flips there may decrypt.
        let routing_only = |bit: usize| {
            m[2] == 1 && ((3..23).contains(&(bit / 8)) || (135..144).contains(&(bit / 8)))
        };
        for (bit, c) in (0..m.len() * 8).step_by(11).zip(flips(m, 11)) {
            decode(&c);
            // Any other flipped bit is caught (decoding, routing or the tag).
            if !routing_only(bit) {
                assert_eq!(decrypt(&c), 0, "a flip of bit {bit} was accepted");
            } else {
                decrypt(&c);
            }
            runs += 2;
        }
        // The ratchet part alone (the body wraps it into a normal message of the session).
        if let Ok(msg) = eth_mls_channel::ChannelMessage::decode(m) {
            let r = msg.ratchet_message();
            let mut part = r.header.encode().to_vec();
            let len = r.ciphertext.len();
            assert!(len < 0x4000);
            if len < 0x40 {
                part.push(len as u8);
            } else {
                part.extend_from_slice(&(len as u16 | 0x4000).to_be_bytes());
            }
            part.extend_from_slice(&r.ciphertext);
            let wrapped = decrypt(&part);
            // Normal messages of the session decrypt when wrapped again.
            if matches!(msg, eth_mls_channel::ChannelMessage::Normal(_)) {
                assert_eq!(wrapped, 1);
            }
            runs += 1;
        }
    }
    println!("{} fixture messages, {runs} runs", f.messages.len());
    assert_eq!(f.messages.len(), 6);
}

#[test]
fn random_inputs() {
    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestRunner};
    let mut runner = TestRunner::new(Config::with_cases(256));
    runner
        .run(&proptest::collection::vec(any::<u8>(), 0..400), |data| {
            decode(&data);
            decrypt(&data);
            Ok(())
        })
        .unwrap();
}
