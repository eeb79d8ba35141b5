//! The client's durable state in the encrypted store: a channel device saved mid-conversation
//! and an intent record come back after the store is closed and reopened, and the
//! conversation goes on from the restored device.
#![allow(clippy::unwrap_used)]

mod common;

use eth_mls::intent::Intent;
use eth_mls::state::{intents, load_device, save_device, save_intent};
use eth_mls_channel::{DefaultBackend as B, Device, OneTimePrekeyChoice, PrekeyBundle, Secret};
use eth_mls_core::{BindingRequest, Identity, LocalEthereumSigner, Store, StoreKey};

const NOW: u64 = 1_785_000_000;

#[tokio::test]
async fn device_and_intents_survive_a_reopen() {
    let dir = std::env::temp_dir().join(format!("eth-mls-state-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut store = common::local_store(&dir, 0xb2).await;
    let (path, key) = (
        dir.join(format!("{}.db", 0xb2u8)),
        StoreKey::raw([0xb2; 32]),
    );
    assert!(load_device::<B, _>(&store).unwrap().is_none());

    let mut bob = Device::<B>::generate([0xbb; 20], Secret::new([2; 57])).unwrap();
    bob.rotate_signed_prekey(NOW, 86_400).unwrap();
    bob.generate_one_time_prekeys(2).unwrap();
    let mut alice = Device::<B>::generate([0xaa; 20], Secret::new([1; 57])).unwrap();
    let bundle =
        PrekeyBundle::validate::<B>(&bob.bundle(NOW, 2).unwrap().encode().unwrap(), NOW).unwrap();
    let sid = alice
        .initiate(&bundle, OneTimePrekeyChoice::Random)
        .unwrap();
    let first = alice.encrypt(&sid, b"first").unwrap();
    bob.receive(&first, NOW).unwrap();
    // Saved with the received plaintext handed on, as channel spec §9 asks.
    save_device(&mut store, &bob).unwrap();
    let mut intent = Intent::new(7);
    intent.built(3, [5; 32]);
    save_intent(&mut store, &intent).unwrap();
    save_intent(&mut store, &Intent::new(8)).unwrap();
    drop((bob, store));

    let store: Store = Store::open(&path, &key).unwrap();
    let mut bob: Device<B> = load_device(&store).unwrap().unwrap();
    // The replayed first message is a duplicate; the conversation goes on.
    assert!(bob.receive(&first, NOW).unwrap_err().is_duplicate());
    let second = alice.encrypt(&sid, b"second").unwrap();
    assert_eq!(bob.receive(&second, NOW).unwrap().plaintext, b"second");
    let reply = bob.encrypt(&sid, b"reply").unwrap();
    assert_eq!(alice.receive(&reply, NOW).unwrap().plaintext, b"reply");
    assert_eq!(intents(&store).unwrap(), vec![intent, Intent::new(8)]);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn an_invitation_is_answered_once_and_only_by_its_invitee() {
    use eth_mls::Error;
    use eth_mls::state::{pending_invitation, remember_invitation, take_invitation};
    use eth_mls::wire::{GroupRef, InvitationRequest};
    use eth_mls_siwe::Address;

    let dir = std::env::temp_dir().join(format!("eth-mls-invitations-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let account = LocalEthereumSigner::from_bytes(&[0xa1; 32]).unwrap();
    let request = BindingRequest {
        domain: "state.test".into(),
        uri: "https://state.test".into(),
        chain_id: 1,
        valid_for: None,
    };
    let identity = Identity::create(&account, &request).await.unwrap();
    let mut store: Store =
        Store::create(dir.join("alice.db"), &StoreKey::raw([1; 32]), identity).unwrap();
    let (bob, carol) = (Address::repeat_byte(0xbb), Address::repeat_byte(0xcc));
    let req = InvitationRequest {
        request_id: [4; 16],
        group: GroupRef {
            chain_id: 1,
            factory: [1; 20],
            group_contract: [2; 20],
        },
        group_id: b"g".to_vec(),
        inviter: [0xa1; 20],
        expiry: NOW + 60,
        note: String::new(),
    };
    remember_invitation(&mut store, bob, &req).unwrap();
    // Another account answering bob's invitation, or an id never sent: unknown.
    assert_eq!(
        pending_invitation(&store, carol, &req.request_id),
        Err(Error::UnknownRequest)
    );
    assert_eq!(
        pending_invitation(&store, bob, &[5; 16]),
        Err(Error::UnknownRequest)
    );
    assert_eq!(
        pending_invitation(&store, bob, &req.request_id).unwrap(),
        req
    );
    assert_eq!(
        take_invitation(&mut store, bob, &req.request_id).unwrap(),
        req
    );
    // Answered once.
    assert_eq!(
        take_invitation(&mut store, bob, &req.request_id),
        Err(Error::UnknownRequest)
    );
    let _ = std::fs::remove_dir_all(&dir);
}
