//! Helpers shared by the client's anvil tests: accounts with MLS stores, registrations read
//! from the group's events with the ACL of their block, and the chain-checked merge.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::Duration;

use alloy_primitives::keccak256;
use eth_mls::Error;
use eth_mls::verdict::{
    Acl, AclMirror, Policy, Registration, check_commit, check_epoch_authenticator,
};
use eth_mls_chain::alloy::primitives::Address;
use eth_mls_chain::alloy::primitives::B256;
use eth_mls_chain::alloy::providers::Provider;
use eth_mls_chain::{AclChanges, CommitPolicy, Deployment, GroupContract};
use eth_mls_chain::{Chain, Cursor, Devnet, GroupEvent, StreamConfig};
use eth_mls_core::{BindingRequest, Checks, Group, Identity, LocalEthereumSigner, Store, StoreKey};
use eth_mls_core::{GroupConfig, validate_key_package_bytes};
use eth_mls_crypto::{Provider as MlsProvider, SUITE};
use futures_util::StreamExt;
use openmls_traits::OpenMlsProvider as _;

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

/// Reorganizes the devnet's last `depth` blocks away (anvil drops their transactions; it
/// puts nothing back in the pool).
pub async fn rollback(devnet: &Devnet, depth: u64) {
    let _: serde_json::Value = devnet
        .chain(0)
        .await
        .unwrap()
        .provider()
        .raw_request("anvil_rollback".into(), (depth,))
        .await
        .unwrap();
}

/// A fresh directory for this test process.
pub fn dir(tag: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("eth-mls-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// An account of secp256k1 key `key` with an SIWE-bound identity (on `chain_id`) and an
/// encrypted store in `dir` named after `tag`.
pub async fn store_for(account: &LocalEthereumSigner, chain_id: u64, dir: &Path, tag: u8) -> Store {
    let request = BindingRequest {
        domain: DOMAIN.into(),
        uri: format!("https://{DOMAIN}"),
        chain_id,
        valid_for: Some(Duration::from_secs(24 * 3600)),
    };
    let identity = Identity::create(account, &request).await.unwrap();
    Store::create(
        dir.join(format!("{tag}.db")),
        &StoreKey::raw([tag; 32]),
        identity,
    )
    .unwrap()
}

/// A store off any chain: account key `[key; 32]`, chain id 31337.
pub async fn local_store(dir: &Path, key: u8) -> Store {
    let account = LocalEthereumSigner::from_bytes(&[key; 32]).unwrap();
    store_for(&account, 31337, dir, key).await
}

/// Anvil account `index` as an Ethereum signer, with an SIWE-bound identity and a store.
pub async fn account(devnet: &Devnet, index: usize, dir: &Path) -> (LocalEthereumSigner, Store) {
    let key = devnet.signer(index).unwrap().to_bytes();
    let account = LocalEthereumSigner::from_bytes(key.as_slice()).unwrap();
    let store = store_for(&account, devnet.chain_id(), dir, index as u8).await;
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
        let acl = mirror.apply(&eth_mls::facts::group_fact(&e.data), e.tx.map(|t| t.0));
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
                eth_mls::facts::registration(r, e.block, block.header.timestamp as i64),
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

/// A member of the test groups: its chain client, store and group.
pub struct Member {
    /// pub for the tests.
    pub chain: Chain,
    /// Its store.
    pub store: Store,
    /// Its group, once in one.
    pub group: Option<Group>,
}

/// The chain-checked merge of `commit` by `m`.
pub async fn judge_member(
    m: &mut Member,
    commit: &[u8],
    reg: &Registration,
    policy: Policy,
    acl: &Acl,
) -> Result<(), Error> {
    let (group, store) = m.group();
    judge(group, store, commit, reg, policy, acl).await
}

impl Member {
    pub fn address(&self) -> Address {
        self.store.identity().address()
    }
    pub fn group(&mut self) -> (&mut Group, &mut Store) {
        (self.group.as_mut().unwrap(), &mut self.store)
    }
}

pub async fn member(devnet: &Devnet, index: usize, dir: &std::path::Path) -> Member {
    let (_, store) = account(devnet, index, dir).await;
    Member {
        chain: devnet.chain(index).await.unwrap(),
        store,
        group: None,
    }
}

/// A group contract with `policy` owned by alice (account 1), and alice, bob (2) and carol (3)
/// in its MLS group at epoch 1 (alice's add commit registered on chain).
pub struct Setup {
    pub contract: GroupContract,
    pub policy: Policy,
    pub alice: Member,
    pub bob: Member,
    pub carol: Member,
    pub config: GroupConfig,
}

pub async fn setup(devnet: &Devnet, d: &Deployment, policy: CommitPolicy, tag: &str) -> Setup {
    let dir = dir(tag);
    let mut alice = member(devnet, 1, &dir).await;
    let mut bob = member(devnet, 2, &dir).await;
    let mut carol = member(devnet, 3, &dir).await;
    let gid = format!("group-{tag}");
    let (contract, _) = alice
        .chain
        .factory(d.group_factory)
        .create_group(gid.as_bytes(), 4, policy)
        .await
        .unwrap();
    let config =
        GroupConfig::new(devnet.chain_id(), DOMAIN).bound_to(d.group_factory, contract.address());
    alice.group = Some(
        Group::create(
            &mut alice.store,
            gid.as_bytes(),
            config.clone(),
            Default::default(),
        )
        .unwrap(),
    );
    let provider = MlsProvider::new();
    let mut kps = Vec::new();
    let mut hashes = Vec::new();
    for m in [&mut bob, &mut carol] {
        let bytes = m.store.generate_key_package(None).unwrap();
        hashes.push(B256::from(keccak256(&bytes).0));
        kps.push(
            validate_key_package_bytes(&bytes, provider.crypto(), SUITE, &config.policy(), None)
                .await
                .unwrap(),
        );
    }
    let (group, store) = alice.group();
    let out = group
        .add_members(store, &kps, &Checks::at(now()))
        .await
        .unwrap();
    register(
        &contract,
        1,
        &out,
        AclChanges {
            added: vec![bob.address(), carol.address()],
            key_packages: hashes,
            removed: vec![],
        },
    )
    .await
    .unwrap();
    group.merge_pending_commit(store).unwrap();
    let welcome = out.welcome.unwrap();
    let (reg, _) = registration(&alice.chain, contract.address(), d.block, 1).await;
    for m in [&mut bob, &mut carol] {
        m.group = Some(join(&mut m.store, &welcome, config.clone(), &reg).await);
    }
    Setup {
        contract,
        policy: match policy {
            CommitPolicy::AdminsOnly => Policy::AdminsOnly,
            CommitPolicy::AnyMember => Policy::AnyMember,
        },
        alice,
        bob,
        carol,
        config,
    }
}
