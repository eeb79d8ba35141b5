//! Every client call against a real anvil, including each reachable custom error decoded
//! to its typed variant; deployments saved, loaded and checked; the epoch race.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use alloy::primitives::{Address, B256, keccak256};
use alloy::providers::Provider;
use eth_mls_chain::{
    AclChanges, Chain, CommitPolicy, Deployment, Devnet, Erc7627Revert, Error, FactoryRevert,
    GroupContract, GroupRevert, KeyAlgorithm,
};

fn idx(s: &str) -> B256 {
    keccak256(s.as_bytes())
}

async fn increase_time(chain: &Chain, secs: u64) {
    let p = chain.provider();
    let _: serde_json::Value = p
        .raw_request("evm_increaseTime".into(), (secs,))
        .await
        .unwrap();
    let _: serde_json::Value = p.raw_request("evm_mine".into(), ()).await.unwrap();
}

macro_rules! assert_revert {
    ($result:expr, $pattern:pat) => {
        match $result {
            Err($pattern) => {}
            other => panic!(
                "expected {}, got {:?}",
                stringify!($pattern),
                other.map(|_| ())
            ),
        }
    };
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deployment_save_load_and_check() {
    let devnet = Devnet::start().unwrap();
    let deployment = devnet.deploy().await.unwrap();
    assert_eq!(deployment.chain_id, devnet.chain_id());
    let chain = devnet.chain(0).await.unwrap();
    deployment.check(&chain).await.unwrap();

    let dir = std::env::temp_dir().join(format!("eth-mls-deploy-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("deployment.json");
    deployment.save(&path).unwrap();
    assert_eq!(Deployment::load(&path).unwrap(), deployment);
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(matches!(
        Deployment::load(&path),
        Err(Error::DeploymentFile { .. })
    ));

    // Another chain, or missing code, is refused.
    let wrong = Deployment {
        chain_id: 1,
        ..deployment
    };
    assert!(matches!(
        wrong.check(&chain).await,
        Err(Error::WrongChain { deployment: 1, .. })
    ));
    let empty = Deployment {
        erc7627: Address::repeat_byte(0x42),
        ..deployment
    };
    assert!(matches!(
        empty.check(&chain).await,
        Err(Error::NoCode { .. })
    ));

    // Reconnect by URL, read-only: reads work, writes say there is no signer.
    let reader = Chain::connect(&devnet.rpc_url(), None).await.unwrap();
    let (registry, factory) = deployment.connect(&reader).await.unwrap();
    assert_eq!(
        factory.implementation().await.unwrap(),
        deployment.group_implementation
    );
    assert_eq!(factory.registry().await.unwrap(), deployment.erc7627);
    assert!(matches!(
        registry.revoke_public_key(idx("k")).await,
        Err(Error::NoSigner)
    ));
    assert!(matches!(
        Chain::connect("ftp://127.0.0.1:1", None).await,
        Err(Error::InvalidUrl { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erc7627_calls_and_errors() {
    let devnet = Devnet::start().unwrap();
    let d = devnet.deploy().await.unwrap();
    let alice = devnet.chain(1).await.unwrap().erc7627(d.erc7627);
    let bob_chain = devnet.chain(2).await.unwrap();
    let bob = bob_chain.erc7627(d.erc7627);
    let (a, b) = (devnet.addresses()[1], devnet.addresses()[2]);

    let key = [7u8; 56];
    let receipt = bob
        .update_public_key(idx("x448"), &key, KeyAlgorithm::X448, 0)
        .await
        .unwrap();
    assert!(receipt.gas_used > 0);
    let got = alice.public_key(b, idx("x448")).await.unwrap().unwrap();
    assert_eq!(
        (got.key.as_slice(), got.valid_before, got.algorithm),
        (&key[..], 0, KeyAlgorithm::X448)
    );
    assert!(alice.is_key_valid(b, idx("x448")).await.unwrap());
    assert_eq!(alice.public_key(a, idx("x448")).await.unwrap(), None);
    alice
        .send_message(b, idx("x448"), B256::repeat_byte(1), b"ciphertext")
        .await
        .unwrap();

    // Each custom error, decoded.
    assert_revert!(
        bob.update_public_key(idx("x448"), &key[..55], KeyAlgorithm::X448, 0)
            .await,
        Error::Erc7627(Erc7627Revert::InvalidPublicKey(_))
    );
    assert_revert!(
        bob.update_public_key(idx("x448"), &[], KeyAlgorithm::X448, 0)
            .await,
        Error::Erc7627(Erc7627Revert::EmptyPublicKey(_))
    );
    assert_revert!(
        bob.update_public_key(idx("old"), &key, KeyAlgorithm::X448, 1)
            .await,
        Error::Erc7627(Erc7627Revert::PublicKeyAlreadyExpired(_))
    );
    assert_revert!(
        alice.send_message(a, idx("x448"), B256::ZERO, b"x").await,
        Error::Erc7627(Erc7627Revert::NoPublicKey(_))
    );
    assert_revert!(
        alice.send_message(b, idx("x448"), B256::ZERO, b"").await,
        Error::Erc7627(Erc7627Revert::EmptyMessage(_))
    );
    // Expiry: a key valid for 100 s, then time moves past it.
    let now = bob_chain
        .provider()
        .get_block(alloy::eips::BlockId::latest())
        .await
        .unwrap()
        .unwrap()
        .header
        .timestamp;
    bob.update_public_key(idx("short"), &[1u8; 57], KeyAlgorithm::Ed448, now + 100)
        .await
        .unwrap();
    increase_time(&bob_chain, 200).await;
    assert!(!alice.is_key_valid(b, idx("short")).await.unwrap());
    assert_revert!(
        alice
            .send_message(b, idx("short"), B256::ZERO, b"late")
            .await,
        Error::Erc7627(Erc7627Revert::PublicKeyExpired(_))
    );
    // Revocation.
    bob.revoke_public_key(idx("x448")).await.unwrap();
    assert_eq!(alice.public_key(b, idx("x448")).await.unwrap(), None);
    assert_revert!(
        bob.revoke_public_key(idx("x448")).await,
        Error::Erc7627(Erc7627Revert::NoPublicKey(_))
    );
}

fn adds(accounts: &[Address], tag: &[u8]) -> AclChanges {
    AclChanges {
        added: accounts.to_vec(),
        key_packages: accounts
            .iter()
            .map(|a| keccak256([a.as_slice(), tag].concat()))
            .collect(),
        removed: vec![],
    }
}

fn removes(accounts: &[Address]) -> AclChanges {
    AclChanges {
        removed: accounts.to_vec(),
        ..AclChanges::none()
    }
}

/// Registers the next epoch of `group` with `changes`.
async fn commit_next(group: &GroupContract, changes: &AclChanges) -> Result<u64, Error> {
    let next = group.current_epoch().await?.epoch + 1;
    group
        .commit(
            next,
            format!("commit {next}").as_bytes(),
            keccak256(next.to_be_bytes()),
            changes,
        )
        .await?;
    Ok(next)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn factory_and_group_calls_and_errors() {
    let devnet = Devnet::start().unwrap();
    let d = devnet.deploy().await.unwrap();
    let owner_chain = devnet.chain(1).await.unwrap();
    let factory = owner_chain.factory(d.group_factory);
    let [owner, bob, carol, dave] = [1, 2, 3, 4].map(|i| devnet.addresses()[i]);

    let predicted = factory.predict_group_address(owner, b"gid").await.unwrap();
    let (group, receipt) = factory
        .create_group(b"gid", 4, CommitPolicy::AdminsOnly)
        .await
        .unwrap();
    assert_eq!(group.address(), predicted);
    assert!(receipt.gas_used > 0);
    assert_eq!(
        factory.groups_created_by(owner).await.unwrap(),
        vec![predicted]
    );
    let info = group.info().await.unwrap();
    assert_eq!(
        (
            info.owner,
            info.group_id.as_slice(),
            info.cipher_suite,
            info.registry,
            info.commit_policy
        ),
        (owner, &b"gid"[..], 4, d.erc7627, CommitPolicy::AdminsOnly)
    );
    assert_revert!(
        factory
            .create_group(b"gid", 4, CommitPolicy::AdminsOnly)
            .await,
        Error::Factory(FactoryRevert::GroupExists(_))
    );
    assert_revert!(
        factory.create_group(b"", 4, CommitPolicy::AdminsOnly).await,
        Error::Group(GroupRevert::EmptyGroupId(_))
    );
    assert_revert!(
        factory
            .create_group(b"z", 0, CommitPolicy::AdminsOnly)
            .await,
        Error::Group(GroupRevert::InvalidCipherSuite(_))
    );

    // ACL changes travel with commits.
    let bob_add = adds(&[bob], b"1");
    let c1: &[u8] = b"the commit adding bob";
    group
        .commit(1, c1, keccak256(b"a1"), &bob_add)
        .await
        .unwrap();
    let epoch = group.current_epoch().await.unwrap();
    assert_eq!(
        (
            epoch.epoch,
            epoch.commit_hash,
            epoch.epoch_authenticator_hash
        ),
        (1, keccak256(c1), keccak256(b"a1"))
    );
    assert!(
        group
            .is_key_package_used(bob_add.key_packages[0])
            .await
            .unwrap()
    );
    commit_next(&group, &adds(&[carol, dave], b"2"))
        .await
        .unwrap();
    assert_eq!(
        group.members().await.unwrap(),
        vec![dave, carol, bob, owner]
    );
    assert_eq!(group.member_count().await.unwrap(), 4);
    let (page, next) = group.members_page(None, 3).await.unwrap();
    assert_eq!(page, vec![dave, carol, bob]);
    assert_eq!(
        group.members_page(next, 3).await.unwrap(),
        (vec![owner], None)
    );
    assert!(group.is_member(carol).await.unwrap());
    assert_revert!(
        commit_next(&group, &adds(&[bob], b"3")).await,
        Error::Group(GroupRevert::AlreadyMember(_))
    );
    assert_revert!(
        commit_next(&group, &adds(&[Address::ZERO], b"3")).await,
        Error::Group(GroupRevert::InvalidAccount(_))
    );
    assert_revert!(
        commit_next(&group, &bob_add).await,
        Error::Group(GroupRevert::AlreadyMember(_))
    );
    commit_next(&group, &removes(&[carol])).await.unwrap();
    assert!(group.was_removed(carol).await.unwrap());
    assert_revert!(
        commit_next(&group, &removes(&[Address::with_last_byte(9)])).await,
        Error::Group(GroupRevert::NotMember(_))
    );
    assert_revert!(
        commit_next(&group, &removes(&[owner])).await,
        Error::Group(GroupRevert::OwnerCannotLeave(_))
    );
    commit_next(&group, &removes(&[dave])).await.unwrap();
    assert_eq!(group.members().await.unwrap(), vec![bob, owner]);
    assert_eq!(group.last_acl_change_epoch().await.unwrap(), 4);

    let bob_view = devnet.chain(2).await.unwrap().group(group.address());
    assert!(!bob_view.can_commit(bob).await.unwrap());
    assert_revert!(
        commit_next(&bob_view, &AclChanges::none()).await,
        Error::Group(GroupRevert::NotCommitter(_))
    );
    assert_revert!(
        commit_next(&bob_view, &adds(&[carol], b"5")).await,
        Error::Group(GroupRevert::NotAdmin(_))
    );
    assert_revert!(
        bob_view.set_admin(bob, true).await,
        Error::Group(GroupRevert::NotOwner(_))
    );
    assert_revert!(
        group.set_admin(carol, true).await,
        Error::Group(GroupRevert::NotMember(_))
    );
    group.set_admin(bob, true).await.unwrap();
    assert!(group.is_admin(bob).await.unwrap());
    commit_next(&bob_view, &adds(&[carol], b"5")).await.unwrap();

    // Epoch sequencing and empty commits.
    assert_revert!(
        group.commit(9, b"c", B256::ZERO, &AclChanges::none()).await,
        Error::Group(GroupRevert::EpochOutOfOrder(_))
    );
    assert_revert!(
        group.commit(6, b"", B256::ZERO, &AclChanges::none()).await,
        Error::Group(GroupRevert::EmptyCommit(_))
    );
    let outsider = devnet.chain(5).await.unwrap().group(group.address());
    assert_revert!(
        commit_next(&outsider, &AclChanges::none()).await,
        Error::Group(GroupRevert::NotCommitter(_))
    );
    assert_revert!(
        outsider.leave().await,
        Error::Group(GroupRevert::NotMember(_))
    );

    // The owner replaces the head (an update commit), then a head with ACL changes.
    commit_next(&group, &AclChanges::none()).await.unwrap(); // 6
    group
        .replace_head(6, &[], b"replacement", B256::ZERO, &AclChanges::none())
        .await
        .unwrap();
    assert_eq!(
        group.current_epoch().await.unwrap().commit_hash,
        keccak256(b"replacement")
    );
    let dave_add = adds(&[dave], b"7");
    commit_next(&group, &dave_add).await.unwrap(); // 7
    // A replacement with no ACL changes of its own and nothing undone.
    let replace_plain = |g: &GroupContract, epoch: u64| {
        let g = g.clone();
        async move {
            g.replace_head(epoch, &[], b"r", B256::ZERO, &AclChanges::none())
                .await
        }
    };
    assert_revert!(
        replace_plain(&group, 7).await,
        Error::Group(GroupRevert::WrongUndo(_))
    );
    assert_revert!(
        replace_plain(&group, 5).await,
        Error::Group(GroupRevert::WrongUndo(_))
    );
    assert_revert!(
        replace_plain(&group, 0).await,
        Error::Group(GroupRevert::CannotReplace(_))
    );
    assert_eq!(group.replaceable_from().await.unwrap(), 1);
    group
        .replace_head(
            7,
            std::slice::from_ref(&dave_add),
            b"r7",
            B256::ZERO,
            &AclChanges::none(),
        )
        .await
        .unwrap();
    assert!(!group.is_member(dave).await.unwrap());
    assert_revert!(
        replace_plain(&bob_view, 7).await,
        Error::Group(GroupRevert::NotOwner(_))
    );

    // Leaving (ACL only), and handing over ownership.
    devnet
        .chain(3)
        .await
        .unwrap()
        .group(group.address())
        .leave()
        .await
        .unwrap();
    assert!(!group.is_member(carol).await.unwrap());
    // The admin's commit removing carol's leaf still registers after her leave.
    commit_next(&group, &removes(&[carol])).await.unwrap();
    assert_revert!(
        group.transfer_ownership(carol).await,
        Error::Group(GroupRevert::NotMember(_))
    );
    group.transfer_ownership(bob).await.unwrap();
    assert_eq!(group.info().await.unwrap().owner, bob);
}

/// Two members register the same next epoch in one block: the first wins, the second's
/// mined transaction reverts, and the replay decodes `EpochOutOfOrder`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn epoch_race_first_registration_wins() {
    let devnet = Devnet::start().unwrap();
    let d = devnet.deploy().await.unwrap();
    let owner = devnet.chain(1).await.unwrap();
    let (group, _) = owner
        .factory(d.group_factory)
        .create_group(b"race", 4, CommitPolicy::AnyMember)
        .await
        .unwrap();
    commit_next(&group, &adds(&[devnet.addresses()[2]], b"kp"))
        .await
        .unwrap();
    let bob = devnet.chain(2).await.unwrap().group(group.address());

    let p = owner.provider();
    let _: serde_json::Value = p
        .raw_request("evm_setAutomine".into(), (false,))
        .await
        .unwrap();
    let a = tokio::spawn({
        let g = group.clone();
        async move { g.commit(2, b"owner", B256::ZERO, &AclChanges::none()).await }
    });
    let b =
        tokio::spawn(async move { bob.commit(2, b"bob", B256::ZERO, &AclChanges::none()).await });
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let _: serde_json::Value = p.raw_request("evm_mine".into(), ()).await.unwrap();
    let _: serde_json::Value = p
        .raw_request("evm_setAutomine".into(), (true,))
        .await
        .unwrap();
    let results = [a.await.unwrap(), b.await.unwrap()];
    let wins = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(wins, 1, "exactly one registration wins: {results:?}");
    assert!(
        results
            .iter()
            .any(|r| matches!(r, Err(Error::Group(GroupRevert::EpochOutOfOrder(_))))),
        "{results:?}"
    );
    assert_eq!(group.current_epoch().await.unwrap().epoch, 2);
}

/// The group's event stream delivers every state change, in order, decoded; a registered
/// commit's bytes and ACL changes can be read back from its event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_event_stream() {
    use eth_mls_chain::bindings::MlsGroup::MlsGroupEvents as E;
    use eth_mls_chain::{Cursor, StreamConfig};
    use futures_util::StreamExt;

    let devnet = Devnet::start().unwrap();
    let d = devnet.deploy().await.unwrap();
    let owner = devnet.chain(1).await.unwrap();
    let bob = devnet.addresses()[2];
    let (group, receipt) = owner
        .factory(d.group_factory)
        .create_group(b"events", 4, CommitPolicy::AdminsOnly)
        .await
        .unwrap();
    let bob_add = adds(&[bob], b"kp");
    let c1 = vec![0xab; 1500];
    group
        .commit(1, &c1, keccak256(b"a1"), &bob_add)
        .await
        .unwrap();
    group.set_admin(bob, true).await.unwrap();
    commit_next(&group, &removes(&[bob])).await.unwrap();

    let start = Cursor::at_block(receipt.block_number.unwrap());
    let cfg = StreamConfig {
        poll_interval: std::time::Duration::from_millis(20),
        ..StreamConfig::default()
    };
    let events: Vec<_> = group.events(start, cfg).take(9).collect().await;
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| match &e.as_ref().unwrap().data {
            E::GroupInitialized(_) => "init",
            E::MemberAdded(_) => "added",
            E::CommitRegistered(_) => "commit",
            E::MemberRemoved(_) => "removed",
            E::AdminChanged(_) => "admin",
            E::Initialized(_) => "initialized (OpenZeppelin)",
            _ => "other",
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "init",
            "added",
            "initialized (OpenZeppelin)",
            "added",
            "commit",
            "admin",
            "admin",
            "removed",
            "commit"
        ]
    );
    match &events[4].as_ref().unwrap().data {
        E::CommitRegistered(e) => {
            assert_eq!((e.epoch, e.commitHash), (1, keccak256(&c1)));
            assert_eq!(e.commit.as_ref(), c1.as_slice(), "the bytes are in the log");
            assert_eq!(e.added, vec![bob]);
            assert_eq!(e.keyPackages, bob_add.key_packages);
            assert!(e.removed.is_empty());
        }
        other => panic!("{other:?}"),
    }
    match &events[6].as_ref().unwrap().data {
        E::AdminChanged(e) => assert_eq!((e.member, e.isAdmin), (bob, false)),
        other => panic!("{other:?}"),
    }
}

/// One address on every chain (issue 30): the contracts go through the standard CREATE2
/// deployer, so two separate chains get the same addresses, `Deployment::deterministic`
/// predicts them, a second `deploy` sends nothing and finds where they appeared, and a chain
/// without the deployer still gets a working deployment (plain CREATE).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deployments_have_one_address_on_every_chain() {
    let one = Devnet::start().unwrap();
    let two = Devnet::start().unwrap();
    let a = one.deploy().await.unwrap();
    let b = two.deploy().await.unwrap();
    let expected = Deployment::deterministic(one.chain_id());
    for d in [a, b] {
        assert_eq!(
            (d.erc7627, d.group_implementation, d.group_factory),
            (
                expected.erc7627,
                expected.group_implementation,
                expected.group_factory
            )
        );
    }
    let chain = one.chain(0).await.unwrap();
    let sender = chain.sender().unwrap();
    let nonce = chain
        .provider()
        .get_transaction_count(sender)
        .await
        .unwrap();
    let again = one.deploy().await.unwrap();
    assert_eq!(again, a, "found where it is, block included");
    assert_eq!(
        chain
            .provider()
            .get_transaction_count(sender)
            .await
            .unwrap(),
        nonce,
        "nothing sent the second time"
    );
    assert_eq!(Deployment::find(&chain).await.unwrap(), Some(a));
    a.check(&chain).await.unwrap();
    // The README lists these addresses (they change with the contracts' bytecode).
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).unwrap();
    for address in [a.erc7627, a.group_implementation, a.group_factory] {
        assert!(
            readme.contains(&format!("`{address:#x}`")),
            "README.md does not list {address:#x}: update its table of deterministic addresses"
        );
    }
    // It works: a group through the deterministic factory.
    let alice = one.chain(1).await.unwrap();
    alice
        .factory(a.group_factory)
        .create_group(b"anywhere", 4, CommitPolicy::AdminsOnly)
        .await
        .unwrap();
    // A separate set and a chain without the deployer: plain CREATE, other addresses.
    let separate = one.deploy_separate_set().await.unwrap();
    assert_ne!(separate.group_factory, a.group_factory);
    let bare = Devnet::start_with(&["--no-create2"]).unwrap();
    let chain = bare.chain(0).await.unwrap();
    assert_eq!(Deployment::find(&chain).await.unwrap(), None);
    let d = bare.deploy().await.unwrap();
    assert_ne!(d.group_factory, a.group_factory);
    d.check(&chain).await.unwrap();
}

/// An account that cannot pay gets a typed error before anything is sent (issue 30).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_account_that_cannot_pay_is_told_before_sending() {
    let devnet = Devnet::start().unwrap();
    let d = devnet.deploy().await.unwrap();
    let broke = alloy::signers::local::PrivateKeySigner::random();
    let address = broke.address();
    let chain = Chain::connect(&devnet.rpc_url(), Some(broke))
        .await
        .unwrap();
    let result = chain
        .factory(d.group_factory)
        .create_group(b"unpaid", 4, CommitPolicy::AdminsOnly)
        .await;
    assert!(
        matches!(result, Err(Error::InsufficientFunds(_))),
        "{:?}",
        result.map(|_| ())
    );
    assert_eq!(
        chain
            .provider()
            .get_transaction_count(address)
            .await
            .unwrap(),
        0,
        "nothing sent"
    );
}
