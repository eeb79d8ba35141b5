//! Discovery on a real anvil: an account finds exactly the factory's groups it is a member of
//! now (added, not removed, not left), and nothing from another factory.
#![allow(clippy::unwrap_used)]

use eth_mls::discovery::groups_of;
use eth_mls_chain::alloy::primitives::B256;
use eth_mls_chain::{AclChanges, CommitPolicy, Devnet};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_are_found_from_events() {
    let devnet = Devnet::start().unwrap();
    let d = devnet.deploy().await.unwrap();
    let other = devnet.deploy_separate_set().await.unwrap();
    let alice = devnet.chain(1).await.unwrap();
    let bob = devnet.chain(2).await.unwrap();
    let carol = devnet.chain(3).await.unwrap();
    let (a, b, c) = (
        alice.sender().unwrap(),
        bob.sender().unwrap(),
        carol.sender().unwrap(),
    );
    let add = |who, kp: u8| AclChanges {
        added: vec![who],
        key_packages: vec![B256::repeat_byte(kp)],
        removed: vec![],
    };
    let factory = alice.factory(d.group_factory);
    let mut groups = Vec::new();
    for (i, name) in ["kept", "removed", "left"].iter().enumerate() {
        let (g, _) = factory
            .create_group(name.as_bytes(), 4, CommitPolicy::AdminsOnly)
            .await
            .unwrap();
        g.commit(1, b"add bob", B256::ZERO, &add(b, i as u8 + 1))
            .await
            .unwrap();
        groups.push(g);
    }
    groups[1]
        .commit(
            2,
            b"remove bob",
            B256::ZERO,
            &AclChanges {
                added: vec![],
                key_packages: vec![],
                removed: vec![b],
            },
        )
        .await
        .unwrap();
    bob.group(groups[2].address()).leave().await.unwrap();
    // Bob in a group of another factory: not this deployment's.
    let (foreign, _) = alice
        .factory(other.group_factory)
        .create_group(b"foreign", 4, CommitPolicy::AdminsOnly)
        .await
        .unwrap();
    foreign
        .commit(1, b"add bob", B256::ZERO, &add(b, 9))
        .await
        .unwrap();

    let found = groups_of(&bob, d.group_factory, b, d.block).await.unwrap();
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].contract, groups[0].address());
    assert_eq!(
        (found[0].creator, found[0].group_id.as_slice()),
        (a, &b"kept"[..])
    );
    assert!(found[0].since >= found[0].created_at);
    let mut all: Vec<_> = groups_of(&alice, d.group_factory, a, d.block)
        .await
        .unwrap()
        .into_iter()
        .map(|g| g.contract)
        .collect();
    all.sort();
    let mut want: Vec<_> = groups.iter().map(|g| g.address()).collect();
    want.sort();
    assert_eq!(all, want);
    assert!(
        groups_of(&carol, d.group_factory, c, d.block)
            .await
            .unwrap()
            .is_empty()
    );
    // Re-added after a removal: found again.
    groups[1]
        .commit(3, b"re-add bob", B256::ZERO, &add(b, 7))
        .await
        .unwrap();
    assert_eq!(
        groups_of(&bob, d.group_factory, b, d.block)
            .await
            .unwrap()
            .len(),
        2
    );
}
