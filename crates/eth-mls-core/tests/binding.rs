//! Groups are bound to their contract (decision 13): the GroupContext carries chain id,
//! factory and group contract in a required extension, and a Welcome for another chain,
//! factory or contract (or without binding) is refused, leaving the joiner's store as it was.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use common::*;
use eth_mls_core::{Error, Group, GroupBinding, GroupConfig};
use eth_mls_siwe::Address;

const FACTORY: Address = Address::repeat_byte(0xfa);
const CONTRACT: Address = Address::repeat_byte(0xc0);

fn bound(factory: Address, contract: Address) -> GroupConfig {
    config().bound_to(factory, contract)
}

fn join_as(peer: &mut Peer, welcome: &[u8], config: GroupConfig) -> Result<(), Error> {
    let group = block_on(Group::join(&mut peer.store, welcome, config, &checks()))?;
    peer.group = Some(group);
    Ok(())
}

#[test]
fn welcomes_for_another_contract_or_chain_are_refused() {
    let dir = TempDir::new();
    let mut alice = Peer::new(&dir, identity(1));
    alice.group = Some(
        Group::create(
            &mut alice.store,
            b"bound",
            bound(FACTORY, CONTRACT),
            Default::default(),
        )
        .unwrap(),
    );
    let expected = GroupBinding {
        chain_id: CHAIN,
        factory: FACTORY,
        contract: CONTRACT,
    };
    assert_eq!(alice.g().binding(), Some(expected));
    let mut bob = Peer::new(&dir, identity(2));
    let kp = bob.key_package();
    let out = alice.add(&[kp]);
    alice.merge_own();
    let welcome = out.welcome.unwrap();
    // Look-alikes: another contract, another factory, another chain, or no binding at all.
    let mut other_chain = config();
    other_chain.binding = Some(GroupBinding {
        chain_id: 1,
        ..expected
    });
    for wrong in [
        bound(FACTORY, Address::repeat_byte(0xc1)),
        bound(Address::repeat_byte(0xfb), CONTRACT),
        other_chain,
        config(),
    ] {
        let err = join_as(&mut bob, &welcome, wrong.clone()).unwrap_err();
        assert!(
            matches!(err, Error::WrongBinding { found: Some(f), .. } if f == expected),
            "{err:?}"
        );
        assert!(bob.group.is_none());
        assert!(bob.store.group_ids().unwrap().is_empty(), "nothing stored");
    }
    // The key package survived the refusals: the right expectation joins.
    join_as(&mut bob, &welcome, bound(FACTORY, CONTRACT)).unwrap();
    assert_eq!(bob.g().binding(), Some(expected));
    assert_agree(&[&alice, &bob]);
    // The binding survives a restart and later epochs.
    bob.restart();
    assert_eq!(bob.g().binding(), Some(expected));
    let m = alice.send(b"bound");
    assert_eq!(bob.receive(&m), b"bound");
}

#[test]
fn an_unbound_group_does_not_pass_for_a_bound_one() {
    let dir = TempDir::new();
    let mut alice = Peer::new(&dir, identity(1));
    alice.create(b"unbound");
    let mut bob = Peer::new(&dir, identity(2));
    let kp = bob.key_package();
    let out = alice.add(&[kp]);
    alice.merge_own();
    let err = join_as(&mut bob, &out.welcome.unwrap(), bound(FACTORY, CONTRACT)).unwrap_err();
    assert!(
        matches!(err, Error::WrongBinding { found: None, .. }),
        "{err:?}"
    );
}

#[test]
fn a_binding_for_another_chain_than_the_policy_is_refused_at_creation() {
    let dir = TempDir::new();
    let mut alice = Peer::new(&dir, identity(1));
    let mut config = config();
    config.binding = Some(GroupBinding {
        chain_id: CHAIN + 1,
        factory: FACTORY,
        contract: CONTRACT,
    });
    let err = Group::create(&mut alice.store, b"g", config, Default::default()).unwrap_err();
    assert!(matches!(err, Error::WrongBinding { .. }), "{err:?}");
    assert!(alice.store.group_ids().unwrap().is_empty());
}
