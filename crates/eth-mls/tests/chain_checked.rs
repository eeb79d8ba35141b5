//! The chain-checked merge on a real anvil with real MLS groups (eth-mls-core): a commit is
//! merged only when it is the registered one for `n + 1`, its proposals are the registered
//! ACL changes and its committer's role fits the policy; the epoch authenticator is checked
//! after merging. The attacks of the client issue are each rejected with their typed error,
//! and the member's group is unchanged.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{judge_member as judge, setup};

use eth_mls::Error;
use eth_mls::verdict::{check_commit, check_epoch_authenticator, epoch_authenticator_hash};
use eth_mls_chain::{AclChanges, CommitPolicy, Devnet};
use eth_mls_core::Checks;
use eth_mls_siwe::B256;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commits_are_merged_only_as_registered() {
    let devnet = Devnet::start().unwrap();
    let d = devnet.deploy().await.unwrap();

    // A removal registered with its ACL change: merged by the others, all agree.
    let mut s = setup(&devnet, &d, CommitPolicy::AdminsOnly, "ok").await;
    let carol = s.carol.address();
    let (group, store) = s.alice.group();
    let out = group.remove_members(store, &[carol]).unwrap();
    common::register(&s.contract, 2, &out, common::removal(&[carol]))
        .await
        .unwrap();
    group.merge_pending_commit(store).unwrap();
    let (reg, acl) = common::registration(&s.alice.chain, s.contract.address(), d.block, 2).await;
    assert_eq!(acl.owner, Some(s.alice.address()));
    assert!(acl.members.contains(&carol));
    judge(&mut s.bob, &out.commit, &reg, s.policy, &acl)
        .await
        .unwrap();
    let chain_epoch = s.contract.current_epoch().await.unwrap();
    assert_eq!(chain_epoch.epoch, 2);
    assert_eq!(s.bob.group.as_ref().unwrap().epoch(), 2);
    assert_eq!(
        s.bob.group.as_ref().unwrap().epoch_authenticator(),
        s.alice.group.as_ref().unwrap().epoch_authenticator()
    );
    assert_eq!(s.bob.group.as_ref().unwrap().members().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attacks_are_rejected() {
    let devnet = Devnet::start().unwrap();
    let d = devnet.deploy().await.unwrap();

    // A commit whose proposals differ from its registered ACL changes.
    let mut s = setup(&devnet, &d, CommitPolicy::AdminsOnly, "acl").await;
    let carol = s.carol.address();
    let (group, store) = s.alice.group();
    let out = group.remove_members(store, &[carol]).unwrap();
    common::register(&s.contract, 2, &out, AclChanges::none())
        .await
        .unwrap();
    let (reg, acl) = common::registration(&s.alice.chain, s.contract.address(), d.block, 2).await;
    assert!(matches!(
        judge(&mut s.bob, &out.commit, &reg, s.policy, &acl).await,
        Err(Error::AclMismatch { .. })
    ));

    // M5: an add registered with a key-package hash that is not the added key package's
    // (the contract records any hash it is given): members refuse it.
    let mut s = setup(&devnet, &d, CommitPolicy::AdminsOnly, "kp").await;
    let mut dave = common::member(&devnet, 4, &common::dir("kp-dave")).await;
    let bytes = dave.store.generate_key_package(None).unwrap();
    let (group, _) = s.alice.group();
    let config = group.config().clone();
    let provider = eth_mls_crypto::Provider::new();
    let kp = eth_mls_core::validate_key_package_bytes(
        &bytes,
        openmls_traits::OpenMlsProvider::crypto(&provider),
        eth_mls_crypto::SUITE,
        &config.policy(),
        None,
    )
    .await
    .unwrap();
    let (group, store) = s.alice.group();
    let out = group
        .add_members(store, &[kp], &Checks::at(common::now()))
        .await
        .unwrap();
    let wrong = AclChanges {
        added: vec![dave.address()],
        key_packages: vec![B256::repeat_byte(0x42)],
        removed: vec![],
    };
    common::register(&s.contract, 2, &out, wrong).await.unwrap();
    let (reg, acl) = common::registration(&s.alice.chain, s.contract.address(), d.block, 2).await;
    assert_eq!(
        judge(&mut s.bob, &out.commit, &reg, s.policy, &acl).await,
        Err(Error::KeyPackageMismatch)
    );

    // Gossip bytes that differ from the registered hash: bob's update arrives while alice's
    // removal is the registered commit.
    let mut s = setup(&devnet, &d, CommitPolicy::AdminsOnly, "hash").await;
    let carol = s.carol.address();
    let (group, store) = s.alice.group();
    let registered = group.remove_members(store, &[carol]).unwrap();
    common::register(&s.contract, 2, &registered, common::removal(&[carol]))
        .await
        .unwrap();
    let (group, store) = s.bob.group();
    let other = group.self_update(store).unwrap();
    let (reg, acl) = common::registration(&s.alice.chain, s.contract.address(), d.block, 2).await;
    assert_eq!(
        judge(&mut s.carol, &other.commit, &reg, s.policy, &acl).await,
        Err(Error::CommitHashMismatch)
    );

    // A commit registered by an admin for a member the policy does not let commit.
    let mut s = setup(&devnet, &d, CommitPolicy::AdminsOnly, "role").await;
    let (group, store) = s.bob.group();
    let update = group.self_update(store).unwrap();
    // The contract itself refuses bob's registration...
    assert!(
        s.bob
            .chain
            .group(s.contract.address())
            .commit(
                2,
                &update.commit,
                B256::from(epoch_authenticator_hash(&update.epoch_authenticator)),
                &AclChanges::none()
            )
            .await
            .is_err()
    );
    // ...so an admin registers it for him: members still reject it.
    common::register(&s.contract, 2, &update, AclChanges::none())
        .await
        .unwrap();
    let (reg, acl) = common::registration(&s.alice.chain, s.contract.address(), d.block, 2).await;
    assert_eq!(
        judge(&mut s.carol, &update.commit, &reg, s.policy, &acl).await,
        Err(Error::CommitterNotAllowed {
            committer: s.bob.address()
        })
    );

    // Under AnyMember the same update by bob, registered by bob, is merged.
    let mut s = setup(&devnet, &d, CommitPolicy::AnyMember, "any").await;
    let (group, store) = s.bob.group();
    let update = group.self_update(store).unwrap();
    let bob_contract = s.bob.chain.group(s.contract.address());
    common::register(&bob_contract, 2, &update, AclChanges::none())
        .await
        .unwrap();
    let (group, store) = s.bob.group();
    group.merge_pending_commit(store).unwrap();
    let (reg, acl) = common::registration(&s.alice.chain, s.contract.address(), d.block, 2).await;
    judge(&mut s.carol, &update.commit, &reg, s.policy, &acl)
        .await
        .unwrap();
    // A registration with a wrong epoch authenticator: the member notices the fork after
    // merging.
    let (group, store) = s.alice.group();
    group
        .process(store, &update.commit, &Checks::at(reg.timestamp))
        .await
        .unwrap();
    let staged = group.staged_commit().unwrap().unwrap();
    check_commit(1, &update.commit, &reg, &staged, s.policy, &acl).unwrap();
    group.merge_staged_commit(store).unwrap();
    let mut forged = reg.clone();
    forged.epoch_authenticator_hash = [0; 32];
    assert_eq!(
        check_epoch_authenticator(&forged, &group.epoch_authenticator()),
        Err(Error::EpochAuthenticatorMismatch { epoch: 2 })
    );
}

/// M5: an add carries the invitee's signed consent in the commit's authenticated data, and
/// every member checks it for each account the commit brings in: an add with a consent the
/// invitee gave for another group, or with none, is refused `NoConsent`; with its own, it
/// passes. (The first commit is registered; the others are judged against the same
/// registration with their own hashes, as if they had won the epoch.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adds_carry_the_invitees_consent() {
    let devnet = Devnet::start().unwrap();
    let d = devnet.deploy().await.unwrap();
    let mut s = setup(&devnet, &d, CommitPolicy::AdminsOnly, "consent").await;
    let (dave, mut dave_store) = common::account(&devnet, 4, &common::dir("consent-dave")).await;
    let dave_address = eth_mls_core::EthereumSigner::address(&dave);
    let inviter = s.alice.address().into_array();
    let request = |contract: [u8; 20], id: u8| eth_mls::wire::InvitationRequest {
        request_id: [id; 16],
        group: eth_mls::wire::GroupRef {
            chain_id: devnet.chain_id(),
            factory: d.group_factory.into_array(),
            group_contract: contract,
        },
        group_id: b"group-consent".to_vec(),
        inviter,
        expiry: common::now() as u64 + 3600,
        note: String::new(),
    };
    let provider = eth_mls_crypto::Provider::new();
    let mut registered: Option<(eth_mls::verdict::Registration, eth_mls::verdict::Acl)> = None;
    // (the group the consent names, whether the commit carries it, whether it passes)
    for (id, (contract, carried, passes)) in [
        ([0x77; 20], true, false),
        (s.contract.address().into_array(), false, false),
        (s.contract.address().into_array(), true, true),
    ]
    .into_iter()
    .enumerate()
    {
        let response = eth_mls::flows::answer_invitation(
            &mut dave_store,
            &dave,
            &request(contract, id as u8),
            common::now(),
        )
        .await
        .unwrap();
        let aad = if carried {
            eth_mls::wire::encode_consents(&[eth_mls::wire::Consent {
                siwe_message: response.siwe_message.clone(),
                signature: response.signature.clone(),
            }])
            .unwrap()
        } else {
            Vec::new()
        };
        let hash = alloy_primitives::keccak256(&response.key_package).0;
        let kp = eth_mls_core::validate_key_package_bytes(
            &response.key_package,
            openmls_traits::OpenMlsProvider::crypto(&provider),
            eth_mls_crypto::SUITE,
            &s.config.policy(),
            None,
        )
        .await
        .unwrap();
        let (group, store) = s.alice.group();
        let out = group
            .add_members_with_aad(store, &[kp], &Checks::at(common::now()), aad)
            .await
            .unwrap();
        group.discard_pending_commit(store).unwrap();
        let (mut reg, acl) = match &registered {
            Some(r) => r.clone(),
            None => {
                let changes = AclChanges {
                    added: vec![dave_address],
                    key_packages: vec![B256::from(hash)],
                    removed: vec![],
                };
                common::register(&s.contract, 2, &out, changes)
                    .await
                    .unwrap();
                let r =
                    common::registration(&s.alice.chain, s.contract.address(), d.block, 2).await;
                registered = Some(r.clone());
                r
            }
        };
        reg.commit_hash = alloy_primitives::keccak256(&out.commit).0;
        reg.key_packages = vec![hash];
        let (group, store) = s.bob.group();
        group
            .process(store, &out.commit, &Checks::at(reg.timestamp))
            .await
            .unwrap();
        let staged = group.staged_commit().unwrap().unwrap();
        check_commit(1, &out.commit, &reg, &staged, s.policy, &acl).unwrap();
        let binding = group.binding().unwrap();
        let verdict =
            eth_mls::invitation::check_consents(&out.commit, &reg, &staged, &acl, &binding, None)
                .await;
        if passes {
            assert_eq!(verdict, Ok(()));
        } else {
            assert_eq!(
                verdict,
                Err(Error::NoConsent {
                    account: dave_address
                }),
                "consent for {contract:?}, carried: {carried}"
            );
        }
        group.discard_staged_commit(store).unwrap();
    }
}
