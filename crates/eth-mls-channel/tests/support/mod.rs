//! Helpers shared by the channel's integration tests: vector loading, devices built from
//! vector keys with a counting scripted key source, per-section tallies.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use eth_mls_channel::{
    Backend, Device, Error, KeySource, ScriptedKeys, Secret, SessionSnapshot, X448Secret,
};
use serde_json::Value;

/// The vectors directory: `CHANNEL_TEST_VECTORS`, else `../shared/testdata/channel-vectors`
/// beside the repository.
pub fn vectors_dir() -> PathBuf {
    let dir = std::env::var_os("CHANNEL_TEST_VECTORS").map_or_else(
        || {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../../../shared/testdata/channel-vectors")
        },
        PathBuf::from,
    );
    assert!(
        dir.join("session.json").is_file(),
        "channel test vectors not found at {} (set CHANNEL_TEST_VECTORS to a directory with \
         the layout of shared/testdata/channel-vectors)",
        dir.display()
    );
    dir
}

pub fn load(file: &str) -> Value {
    let path = vectors_dir().join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

pub fn hx(v: &Value, key: &str) -> Vec<u8> {
    let s = v[key]
        .as_str()
        .unwrap_or_else(|| panic!("field {key} missing"));
    hex::decode(s).unwrap_or_else(|e| panic!("field {key}: {e}"))
}

fn secret<const N: usize>(v: &Value, key: &str) -> Secret<N> {
    Secret::from_slice(&hx(v, key)).unwrap_or_else(|| panic!("{key}: not {N} bytes"))
}

/// A scripted key source whose draws can be counted from outside.
#[derive(Clone, Default)]
pub struct Draws {
    keys: Arc<Mutex<ScriptedKeys>>,
    drawn: Arc<AtomicUsize>,
}

impl Draws {
    pub fn new(keys: Vec<X448Secret>) -> Self {
        Self {
            keys: Arc::new(Mutex::new(ScriptedKeys::new(keys))),
            drawn: Arc::default(),
        }
    }
    pub fn drawn(&self) -> usize {
        self.drawn.load(Ordering::SeqCst)
    }
    pub fn remaining(&self) -> usize {
        self.keys.lock().unwrap().remaining()
    }
}

impl KeySource for Draws {
    fn next_key(&mut self) -> Result<X448Secret, Error> {
        let k = self.keys.lock().unwrap().next_key()?;
        self.drawn.fetch_add(1, Ordering::SeqCst);
        Ok(k)
    }
}

/// A device from a vector party (`address`, `identity_private`, `signature_private`,
/// `key_draws`), with its key draws scripted.
pub fn device<B: Backend>(p: &Value) -> (Device<B>, Draws) {
    let mut d = Device::<B>::from_keys(
        hx(p, "address").try_into().unwrap(),
        secret(p, "identity_private"),
        secret(p, "signature_private"),
    )
    .unwrap();
    assert_eq!(d.identity_key()[..], hx(p, "identity_public")[..]);
    assert_eq!(d.signature_key()[..], hx(p, "signature_public")[..]);
    let draws = Draws::new(
        p["key_draws"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| secret(k, "private"))
            .collect(),
    );
    d.set_key_source(Box::new(draws.clone()));
    (d, draws)
}

/// [`device`] plus Bob's `signed_prekeys`, `one_time_prekeys` and `used_one_time_prekey_ids`.
pub fn bob_device<B: Backend>(p: &Value) -> (Device<B>, Draws) {
    let (mut d, draws) = device::<B>(p);
    for s in p["signed_prekeys"].as_array().unwrap() {
        d.add_signed_prekey(
            s["id"].as_u64().unwrap() as u32,
            s["expiry"].as_u64().unwrap(),
            secret(s, "private"),
        )
        .unwrap();
    }
    for o in p["one_time_prekeys"].as_array().unwrap() {
        d.add_one_time_prekey(o["id"].as_u64().unwrap() as u32, secret(o, "private"))
            .unwrap();
    }
    for id in p["used_one_time_prekey_ids"].as_array().unwrap() {
        d.mark_one_time_prekey_used(id.as_u64().unwrap() as u32);
    }
    (d, draws)
}

/// Compares a session snapshot with a vector's `state_after`.
pub fn snapshot_matches(s: &SessionSnapshot, v: &Value) -> Result<(), String> {
    let opt = |k: &Option<Secret<64>>, key: &str, v: &Value| match (k, v[key].as_str()) {
        (None, None) => true,
        (Some(k), Some(h)) => hex::decode(h).unwrap()[..] == k.expose()[..],
        _ => false,
    };
    let mut bad = Vec::new();
    if s.root_key.expose()[..] != hx(v, "root_key")[..] {
        bad.push("root_key".to_string());
    }
    if s.sending_ratchet_key[..] != hx(v, "sending_ratchet_key")[..] {
        bad.push("sending_ratchet_key".into());
    }
    if !opt(&s.sending_chain_key, "sending_chain_key", v) {
        bad.push("sending_chain_key".into());
    }
    if Some(u64::from(s.ns)) != v["ns"].as_u64() || Some(u64::from(s.pn)) != v["pn"].as_u64() {
        bad.push("ns/pn".into());
    }
    let chains = v["receiving_chains"].as_array().unwrap();
    if chains.len() != s.receiving_chains.len() {
        bad.push(format!(
            "{} receiving chains, want {}",
            s.receiving_chains.len(),
            chains.len()
        ));
    } else {
        for (i, (c, w)) in s.receiving_chains.iter().zip(chains).enumerate() {
            let skipped: Vec<u64> = w["skipped"]
                .as_array()
                .unwrap()
                .iter()
                .map(|n| n.as_u64().unwrap())
                .collect();
            let ok = c.ratchet_key[..] == hx(w, "ratchet_key")[..]
                && opt(&c.chain_key, "chain_key", w)
                && c.next_n == w["next_n"].as_u64()
                && c.skipped.iter().map(|n| u64::from(*n)).collect::<Vec<_>>() == skipped;
            if !ok {
                bad.push(format!("receiving chain {i}"));
            }
        }
    }
    if bad.is_empty() {
        Ok(())
    } else {
        Err(format!("state differs: {}", bad.join(", ")))
    }
}

/// Per-section pass counts of one file on one backend; prints them and fails on any failure.
pub struct Tally {
    label: String,
    sections: BTreeMap<String, (usize, usize)>,
    order: Vec<String>,
    failures: Vec<String>,
}

impl Tally {
    pub fn new<B: Backend>(file: &str) -> Self {
        Self {
            label: format!("[{}] {file}", B::NAME),
            sections: BTreeMap::new(),
            order: Vec::new(),
            failures: Vec::new(),
        }
    }

    pub fn record(&mut self, section: &str, name: &str, r: Result<(), String>) {
        if !self.sections.contains_key(section) {
            self.order.push(section.to_string());
        }
        let e = self.sections.entry(section.to_string()).or_default();
        e.1 += 1;
        match r {
            Ok(()) => e.0 += 1,
            Err(err) => self
                .failures
                .push(format!("{} {section} {name}: {err}", self.label)),
        }
    }

    pub fn finish(self) {
        let parts: Vec<String> = self
            .order
            .iter()
            .map(|s| {
                let (ok, all) = self.sections[s];
                format!("{s} {ok}/{all}")
            })
            .collect();
        println!("{}: {}", self.label, parts.join(", "));
        assert!(!self.sections.is_empty(), "{}: no entries", self.label);
        assert!(
            self.failures.is_empty(),
            "{} failures:\n{}",
            self.failures.len(),
            self.failures.join("\n")
        );
    }
}
