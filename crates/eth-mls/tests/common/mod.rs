//! Helpers shared by the client's anvil tests: accounts with MLS stores, registrations read
//! from the group's events with the ACL of their block, and the chain-checked merge.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::Duration;

use eth_mls::Error;
use eth_mls::verdict::{
    Acl, AclMirror, Policy, Registration, check_commit, check_epoch_authenticator,
};
use eth_mls_chain::alloy::primitives::Address;
use eth_mls_chain::alloy::providers::Provider;
use eth_mls_chain::{Chain, Cursor, Devnet, GroupEvent, StreamConfig};
use eth_mls_core::{BindingRequest, Checks, Group, Identity, LocalEthereumSigner, Store, StoreKey};
use futures_util::StreamExt;

pub const DOMAIN: &str = "eth-mls.test";

pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

pub fn fast() -> StreamConfig {
    StreamConfig {
        poll_interval: Duration::from_millis(20),
        ..StreamConfig::default()
    }
}

/// A fresh directory for this test process.
pub fn dir(tag: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("eth-mls-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Anvil account `index` as an Ethereum signer, with an SIWE-bound identity and a store.
pub async fn account(devnet: &Devnet, index: usize, dir: &Path) -> (LocalEthereumSigner, Store) {
    let key = devnet.signer(index).unwrap().to_bytes();
    let account = LocalEthereumSigner::from_bytes(key.as_slice()).unwrap();
    let request = BindingRequest {
        domain: DOMAIN.into(),
        uri: format!("https://{DOMAIN}"),
        chain_id: devnet.chain_id(),
        valid_for: Some(Duration::from_secs(24 * 3600)),
    };
    let identity = Identity::create(&account, &request).await.unwrap();
    let store = Store::create(
        dir.join(format!("{index}.db")),
        &StoreKey::raw([index as u8; 32]),
        identity,
    )
    .unwrap();
    (account, store)
}

/// The registration of `epoch` from the group's events, with the ACL of its block.
pub async fn registration(
    chain: &Chain,
    contract: Address,
    from: u64,
    epoch: u64,
) -> (Registration, Acl) {
    let mut events = Box::pin(chain.group(contract).events(Cursor::at_block(from), fast()));
    let mut mirror = AclMirror::new();
    loop {
        let e = tokio::time::timeout(Duration::from_secs(30), events.next())
            .await
            .expect("registration not found")
            .unwrap()
            .unwrap();
        let acl = mirror.apply(&e.data, e.tx.map(|t| t.0));
        if let (GroupEvent::CommitRegistered(r), Some(acl)) = (&e.data, acl)
            && r.epoch == epoch
        {
            let block = chain
                .provider()
                .get_block_by_number(e.block.into())
                .await
                .unwrap()
                .unwrap();
            return (
                Registration::from_event(r, e.block, block.header.timestamp as i64),
                acl,
            );
        }
    }
}

/// Processes `commit` at the registration's block time and judges it: merged (and the
/// authenticator checked) when it passes, discarded with the epoch unchanged when not.
pub async fn judge(
    group: &mut Group,
    store: &mut Store,
    commit: &[u8],
    reg: &Registration,
    policy: Policy,
    acl: &Acl,
) -> Result<(), Error> {
    let epoch = group.epoch();
    group
        .process(store, commit, &Checks::at(reg.timestamp))
        .await
        .unwrap();
    let staged = group.staged_commit().unwrap().expect("a staged commit");
    let verdict = check_commit(epoch, commit, reg, &staged, policy, acl);
    match &verdict {
        Ok(()) => {
            group.merge_staged_commit(store).unwrap();
            check_epoch_authenticator(reg, &group.epoch_authenticator())?;
        }
        Err(_) => {
            group.discard_staged_commit(store).unwrap();
            assert_eq!(group.epoch(), epoch, "a rejected commit changed the epoch");
        }
    }
    verdict
}

/// Registers `out` as the commit of `epoch` with `changes` (the committer's transaction).
pub async fn register(
    contract: &eth_mls_chain::GroupContract,
    epoch: u64,
    out: &eth_mls_core::OutgoingCommit,
    changes: eth_mls_chain::AclChanges,
) -> Result<(), eth_mls_chain::Error> {
    let auth = eth_mls_chain::alloy::primitives::B256::from(
        eth_mls::verdict::epoch_authenticator_hash(&out.epoch_authenticator),
    );
    contract
        .commit(epoch, &out.commit, auth, &changes)
        .await
        .map(|_| ())
}

/// The ACL change of removing `accounts`.
pub fn removal(accounts: &[Address]) -> eth_mls_chain::AclChanges {
    eth_mls_chain::AclChanges {
        added: vec![],
        key_packages: vec![],
        removed: accounts.to_vec(),
    }
}

/// Joins from `welcome` at the registration's block time and checks the epoch against it.
pub async fn join(
    store: &mut Store,
    welcome: &[u8],
    config: eth_mls_core::GroupConfig,
    reg: &Registration,
) -> Group {
    let g = Group::join(store, welcome, config, &Checks::at(reg.timestamp))
        .await
        .unwrap();
    // A joiner checks its epoch against the registered authenticator.
    check_epoch_authenticator(reg, &g.epoch_authenticator()).unwrap();
    g
}
