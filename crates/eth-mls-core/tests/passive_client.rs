//! The suite 0x0004 passive-client vectors (mlswg/mls-implementations) with the state kept
//! in eth-mls-core's SQLite [`Store`]: join from the vector's Welcome, then process every
//! proposal and commit, **reopening the database before each message** (the restart path:
//! `MlsGroup` and every key reloaded from SQLite), and check every epoch authenticator.
//!
//! The vectors' members carry basic credentials, so openmls's `MlsGroup` is driven directly
//! on the store's provider (the Ethereum-credential policy of `Group` does not apply to
//! them). As in eth-mls-crypto's harness, the vectors' key packages have expired, so the
//! test re-executes itself under libfaketime with the clock inside their lifetimes;
//! `MLS_TEST_VECTORS` points at another copy of the vectors.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "../../eth-mls-crypto/tests/support/passive.rs"]
mod passive;

use std::path::PathBuf;

use common::{TempDir, block_on};
use eth_mls_core::{BindingRequest, Identity, Store};
use openmls::prelude::tls_codec::Deserialize as _;
use openmls::prelude::*;
use openmls::schedule::PreSharedKeyId;
use openmls_traits::OpenMlsProvider;
use openmls_traits::storage::StorageProvider as _;
use passive::{KeyPackageBundleRecord, PrivateKeyRecord, under_faketime};
use serde_json::Value;

fn vectors_dir() -> PathBuf {
    let dir = std::env::var_os("MLS_TEST_VECTORS").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/testdata/mls-vectors"),
        PathBuf::from,
    );
    assert!(
        dir.join("passive-client-welcome.json").is_file(),
        "MLS test vectors not found at {} (set MLS_TEST_VECTORS)",
        dir.display()
    );
    dir
}

fn hx(v: &Value, key: &str) -> Vec<u8> {
    hex::decode(v[key].as_str().unwrap_or_else(|| panic!("{key} missing"))).unwrap()
}

fn store(path: &std::path::Path) -> Store {
    let account = common::account(1);
    let request = BindingRequest {
        domain: "chat.example".into(),
        uri: "https://chat.example".into(),
        chain_id: 1,
        valid_for: None,
    };
    Store::create(
        path,
        &eth_mls_core::StoreKey::raw([0x5e; 32]),
        block_on(Identity::create(&account, &request)).unwrap(),
    )
    .unwrap()
}

fn run(entry: &Value) -> Result<usize, String> {
    let dir = TempDir::new();
    let path = dir.0.join("passive.db");
    let mut store = store(&path);
    {
        let provider = store.provider();
        for psk in entry["external_psks"].as_array().unwrap() {
            PreSharedKeyId::external(hx(psk, "psk_id"), vec![])
                .store(&provider, &hx(psk, "psk"))
                .map_err(|e| format!("psk: {e:?}"))?;
        }
        let MlsMessageBodyIn::KeyPackage(kp) =
            MlsMessageIn::tls_deserialize_exact(hx(entry, "key_package"))
                .unwrap()
                .extract()
        else {
            return Err("not a key package".into());
        };
        let kp = kp
            .validate(provider.crypto(), ProtocolVersion::Mls10)
            .map_err(|e| format!("key package: {e:?}"))?;
        let hash_ref = kp.hash_ref(provider.crypto()).unwrap();
        let record = KeyPackageBundleRecord {
            key_package: kp,
            private_init_key: hx(entry, "init_priv").into(),
            private_encryption_key: PrivateKeyRecord {
                key: hx(entry, "encryption_priv").into(),
            },
        };
        provider
            .storage()
            .write_key_package(&hash_ref, &record)
            .unwrap();
    }
    let config = MlsGroupJoinConfig::builder()
        .use_ratchet_tree_extension(true)
        .wire_format_policy(MIXED_PLAINTEXT_WIRE_FORMAT_POLICY)
        .number_of_resumption_psks(16)
        .build();
    let tree = entry["ratchet_tree"]
        .as_str()
        .map(|t| RatchetTreeIn::tls_deserialize_exact(hex::decode(t).unwrap()).unwrap());
    let MlsMessageBodyIn::Welcome(welcome) =
        MlsMessageIn::tls_deserialize_exact(hx(entry, "welcome"))
            .unwrap()
            .extract()
    else {
        return Err("not a welcome".into());
    };
    let group = {
        let provider = store.provider();
        StagedWelcome::new_from_welcome(&provider, &config, welcome, tree)
            .map_err(|e| format!("welcome: {e:?}"))?
            .into_group(&provider)
            .map_err(|e| format!("join: {e:?}"))?
    };
    let id = group.group_id().clone();
    if group.epoch_authenticator().as_slice() != hx(entry, "initial_epoch_authenticator") {
        return Err("initial epoch authenticator".into());
    }
    drop(group);
    let mut restarts = 0;
    for (i, epoch) in entry["epochs"].as_array().unwrap().iter().enumerate() {
        let messages = epoch["proposals"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| hex::decode(p.as_str().unwrap()).unwrap())
            .chain([hx(epoch, "commit")]);
        for bytes in messages {
            // A restart: everything comes back from the file.
            drop(store);
            store = Store::open(&path, &eth_mls_core::StoreKey::raw([0x5e; 32]))
                .map_err(|e| format!("reopen: {e}"))?;
            restarts += 1;
            let provider = store.provider();
            let mut group = MlsGroup::load(provider.storage(), &id)
                .map_err(|e| format!("load: {e:?}"))?
                .ok_or("group missing after restart")?;
            let protocol = MlsMessageIn::tls_deserialize_exact(bytes)
                .unwrap()
                .try_into_protocol_message()
                .map_err(|e| format!("epoch {i}: {e:?}"))?;
            match group
                .process_message(&provider, protocol)
                .map_err(|e| format!("epoch {i}: {e:?}"))?
                .into_content()
            {
                ProcessedMessageContent::ProposalMessage(p) => group
                    .store_pending_proposal(provider.storage(), *p)
                    .unwrap(),
                ProcessedMessageContent::StagedCommitMessage(c) => group
                    .merge_staged_commit(&provider, *c)
                    .map_err(|e| format!("epoch {i}: merge: {e:?}"))?,
                other => return Err(format!("epoch {i}: unexpected {other:?}")),
            }
        }
        drop(store);
        store = Store::open(&path, &eth_mls_core::StoreKey::raw([0x5e; 32]))
            .map_err(|e| format!("reopen: {e}"))?;
        let group = MlsGroup::load(store.provider().storage(), &id)
            .map_err(|e| format!("load: {e:?}"))?
            .ok_or("group missing after restart")?;
        if group.epoch_authenticator().as_slice() != hx(epoch, "epoch_authenticator") {
            return Err(format!("epoch {i} authenticator"));
        }
    }
    Ok(restarts)
}

fn run_file(file: &str) {
    let text = std::fs::read_to_string(vectors_dir().join(file)).unwrap();
    let entries: Vec<Value> = serde_json::from_str(&text).unwrap();
    let mut passed = 0;
    let mut restarts = 0;
    let mut failures = Vec::new();
    let suite4: Vec<_> = entries
        .iter()
        .enumerate()
        .filter(|(_, e)| e["cipher_suite"] == 4)
        .collect();
    for (i, entry) in &suite4 {
        match run(entry) {
            Ok(r) => {
                passed += 1;
                restarts += r;
            }
            Err(e) => failures.push(format!("entry {i}: {e}")),
        }
    }
    println!(
        "[sqlite store] {file}: suite 4: {passed}/{} ({restarts} restarts)",
        suite4.len()
    );
    assert!(!suite4.is_empty(), "{file}: no suite 4 entries");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn passive_client_welcome() {
    under_faketime("passive_client_welcome", "@2024-03-01 12:00:00", || {
        run_file("passive-client-welcome.json")
    });
}

#[test]
fn passive_client_handling_commit() {
    under_faketime(
        "passive_client_handling_commit",
        "@2025-03-13 12:00:00",
        || run_file("passive-client-handling-commit.json"),
    );
}
