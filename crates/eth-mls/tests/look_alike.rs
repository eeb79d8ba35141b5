//! The invitee's checks before it answers: an invitation for another chain, from an untrusted
//! factory, or naming a look-alike contract (a group of another factory, or the wrong group
//! id) is refused; and a Welcome for a group on another chain does not join.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use eth_mls::Error;
use eth_mls::invitation::check_request;
use eth_mls::wire::{GroupRef, InvitationRequest};
use eth_mls_chain::{CommitPolicy, Devnet};
use eth_mls_core::{Checks, Group, GroupConfig, validate_key_package_bytes};
use eth_mls_crypto::{Provider as MlsProvider, SUITE};
use openmls_traits::OpenMlsProvider as _;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn look_alikes_and_other_chains_are_refused() {
    let devnet = Devnet::start().unwrap();
    let d = devnet.deploy().await.unwrap();
    let other = devnet.deploy_separate_set().await.unwrap();
    let alice = devnet.chain(1).await.unwrap();
    let bob = devnet.chain(2).await.unwrap();
    let (group, _) = alice
        .factory(d.group_factory)
        .create_group(b"real", 4, CommitPolicy::AdminsOnly)
        .await
        .unwrap();
    let (fake, _) = alice
        .factory(other.group_factory)
        .create_group(b"real", 4, CommitPolicy::AdminsOnly)
        .await
        .unwrap();
    let request =
        |factory: [u8; 20], contract: [u8; 20], group_id: &[u8], chain_id| InvitationRequest {
            request_id: [1; 16],
            group: GroupRef {
                chain_id,
                factory,
                group_contract: contract,
            },
            group_id: group_id.to_vec(),
            inviter: alice.sender().unwrap().into_array(),
            expiry: 0,
            note: String::new(),
        };
    let trusted = d.group_factory;
    let (t, g, f) = (
        trusted.into_array(),
        group.address().into_array(),
        fake.address().into_array(),
    );
    let id = devnet.chain_id();
    assert_eq!(
        check_request(&bob, trusted, d.block, &request(t, g, b"real", id)).await,
        Ok(alice.sender().unwrap())
    );
    assert!(matches!(
        check_request(&bob, trusted, d.block, &request(t, g, b"real", id + 1)).await,
        Err(Error::WrongChain { .. })
    ));
    assert_eq!(
        check_request(
            &bob,
            trusted,
            d.block,
            &request(other.group_factory.into_array(), f, b"real", id)
        )
        .await,
        Err(Error::UntrustedFactory)
    );
    assert_eq!(
        check_request(&bob, trusted, d.block, &request(t, f, b"real", id)).await,
        Err(Error::NotFactoryGroup)
    );
    assert_eq!(
        check_request(&bob, trusted, d.block, &request(t, g, b"other id", id)).await,
        Err(Error::NotFactoryGroup)
    );

    // A Welcome for the real group, joined by a member whose client is on another chain.
    let dir = common::dir("look-alike");
    let (_, mut a_store) = common::account(&devnet, 1, &dir).await;
    let (_, mut b_store) = common::account(&devnet, 2, &dir).await;
    let config = GroupConfig::new(id, common::DOMAIN).bound_to(d.group_factory, group.address());
    let mut mls = Group::create(&mut a_store, b"real", config.clone(), Default::default()).unwrap();
    let kp = b_store.generate_key_package(None).unwrap();
    let provider = MlsProvider::new();
    let kp = validate_key_package_bytes(&kp, provider.crypto(), SUITE, &config.policy(), None)
        .await
        .unwrap();
    let out = mls
        .add_members(&mut a_store, &[kp], &Checks::at(common::now()))
        .await
        .unwrap();
    let welcome = out.welcome.unwrap();
    let elsewhere =
        GroupConfig::new(id + 1, common::DOMAIN).bound_to(d.group_factory, group.address());
    assert!(
        Group::join(
            &mut b_store,
            &welcome,
            elsewhere,
            &Checks::at(common::now())
        )
        .await
        .is_err()
    );
    let wrong_contract =
        GroupConfig::new(id, common::DOMAIN).bound_to(d.group_factory, fake.address());
    assert!(
        Group::join(
            &mut b_store,
            &welcome,
            wrong_contract,
            &Checks::at(common::now())
        )
        .await
        .is_err()
    );
    // The right configuration joins.
    assert!(
        Group::join(&mut b_store, &welcome, config, &Checks::at(common::now()))
            .await
            .is_ok()
    );
    let _ = std::fs::remove_dir_all(&dir);
}
