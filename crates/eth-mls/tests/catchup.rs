//! Catch-up from the chain: a member offline for several epochs (updates, an addition) reaches
//! the group's epoch from the registrations alone and agrees with everyone on the epoch
//! authenticator and the member list (= the on-chain ACL); a later registration that fails the
//! verdict stops it with a typed error and leaves its group as it was.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;

use alloy_primitives::keccak256;
use eth_mls::Error;
use eth_mls::catchup::catch_up;
use eth_mls_chain::alloy::primitives::B256;
use eth_mls_chain::{AclChanges, CommitPolicy, Devnet};
use eth_mls_core::{Checks, validate_key_package_bytes};
use eth_mls_crypto::{Provider as MlsProvider, SUITE};
use openmls_traits::OpenMlsProvider as _;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offline_member_catches_up_from_the_chain() {
    let devnet = Devnet::start().unwrap();
    let d = devnet.deploy().await.unwrap();
    let mut s = common::setup(&devnet, &d, CommitPolicy::AdminsOnly, "catchup").await;
    let dir = common::dir("catchup-dave");
    let (dave_account, mut dave) = common::account(&devnet, 4, &dir).await;

    // Carol is offline while alice commits five times; bob follows live.
    for epoch in 2..=6u64 {
        let inviter = s.alice.address().into_array();
        let contract = s.contract.address().into_array();
        let (group, store) = s.alice.group();
        let (out, changes) = if epoch == 4 {
            // Dave consents (WIRE.md §4.1): the add carries it, and every member checks it.
            let request = eth_mls::wire::InvitationRequest {
                request_id: [4; 16],
                group: eth_mls::wire::GroupRef {
                    chain_id: devnet.chain_id(),
                    factory: d.group_factory.into_array(),
                    group_contract: contract,
                },
                group_id: b"group-catchup".to_vec(),
                inviter,
                expiry: common::now() as u64 + 3600,
                note: String::new(),
            };
            let response = eth_mls::flows::answer_invitation(
                &mut dave,
                &dave_account,
                &request,
                common::now(),
            )
            .await
            .unwrap();
            let bytes = response.key_package.clone();
            let aad = eth_mls::wire::encode_consents(&[eth_mls::wire::Consent {
                siwe_message: response.siwe_message,
                signature: response.signature,
            }])
            .unwrap();
            let kp = validate_key_package_bytes(
                &bytes,
                MlsProvider::new().crypto(),
                SUITE,
                &s.config.policy(),
                None,
            )
            .await
            .unwrap();
            let out = group
                .add_members_with_aad(store, &[kp], &Checks::at(common::now()), aad)
                .await
                .unwrap();
            let changes = AclChanges {
                added: vec![dave.identity().address()],
                key_packages: vec![B256::from(keccak256(&bytes).0)],
                removed: vec![],
            };
            (out, changes)
        } else {
            (group.self_update(store).unwrap(), AclChanges::none())
        };
        common::register(&s.contract, epoch, &out, changes)
            .await
            .unwrap();
        group.merge_pending_commit(store).unwrap();
        let (reg, acl) =
            common::registration(&s.bob.chain, s.contract.address(), d.block, epoch).await;
        let (group, store) = s.bob.group();
        common::judge(group, store, &out.commit, &reg, s.policy, &acl)
            .await
            .unwrap();
    }

    let (group, store) = (s.carol.group.as_mut().unwrap(), &mut s.carol.store);
    assert_eq!(group.epoch(), 1);
    let done = catch_up(
        &s.carol.chain,
        s.contract.address(),
        d.block,
        group,
        store,
        s.policy,
    )
    .await
    .unwrap();
    assert_eq!((done.from_epoch, done.to_epoch), (1, 6));
    assert_eq!(s.contract.current_epoch().await.unwrap().epoch, 6);
    let alice = s.alice.group.as_ref().unwrap();
    assert_eq!(group.epoch_authenticator(), alice.epoch_authenticator());
    let acl: BTreeSet<_> = s.contract.members().await.unwrap().into_iter().collect();
    assert_eq!(group.members().into_iter().collect::<BTreeSet<_>>(), acl);
    assert_eq!(acl.len(), 4);
    // Nothing new: a second call is a no-op.
    let again = catch_up(
        &s.carol.chain,
        s.contract.address(),
        d.block,
        group,
        store,
        s.policy,
    )
    .await
    .unwrap();
    assert_eq!((again.from_epoch, again.to_epoch), (6, 6));

    // A registration whose ACL change does not match its commit stops the catch-up.
    let bob = s.bob.address();
    let (group, store) = s.alice.group();
    let out = group.remove_members(store, &[bob]).unwrap();
    common::register(&s.contract, 7, &out, AclChanges::none())
        .await
        .unwrap();
    let (group, store) = (s.carol.group.as_mut().unwrap(), &mut s.carol.store);
    let before = group.epoch_authenticator();
    assert!(matches!(
        catch_up(
            &s.carol.chain,
            s.contract.address(),
            d.block,
            group,
            store,
            s.policy
        )
        .await,
        Err(Error::AclMismatch { .. })
    ));
    assert_eq!((group.epoch(), group.epoch_authenticator()), (6, before));
    let _ = std::fs::remove_dir_all(&dir);
}
