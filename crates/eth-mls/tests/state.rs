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

/// L1: a received frame writes its session (and the keys, for a new session), not the whole
/// device: the device record holds keys only and each session has a record of its own; a
/// device saved whole by an earlier version loads with its sessions and is marked for saving
/// in the new layout.
#[tokio::test]
async fn sessions_are_saved_one_by_one() {
    use eth_mls::state::{CHANNEL, CHANNEL_SESSIONS, load_device_marked, save_received};
    let dir = std::env::temp_dir().join(format!("eth-mls-state-l1-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut store = common::local_store(&dir, 0xb3).await;
    let mut bob = Device::<B>::generate([0xbb; 20], Secret::new([2; 57])).unwrap();
    bob.rotate_signed_prekey(NOW, 86_400).unwrap();
    bob.generate_one_time_prekeys(4).unwrap();
    let bundle =
        PrekeyBundle::validate::<B>(&bob.bundle(NOW, 4).unwrap().encode().unwrap(), NOW).unwrap();
    let ids = bob.one_time_prekey_ids();
    let mut peers = Vec::new();
    for k in 0..3u8 {
        let mut p = Device::<B>::generate([0xa0 + k; 20], Secret::new([10 + k; 57])).unwrap();
        let choice = OneTimePrekeyChoice::Id(ids[k as usize]);
        let sid = p.initiate(&bundle, choice).unwrap();
        let frame = p.encrypt(&sid, b"hello").unwrap();
        let got = bob.receive(&frame, NOW).unwrap();
        save_received(&mut store, &bob, &got.session_id, got.new_session).unwrap();
        peers.push((p, sid));
    }
    // The device record holds no session; three session records.
    let keys =
        Device::<B>::from_bytes(&store.record(CHANNEL, b"device").unwrap().unwrap()).unwrap();
    assert_eq!(keys.sessions().count(), 0);
    assert_eq!(store.records(CHANNEL_SESSIONS).unwrap().len(), 3);
    // A frame in one session rewrites that session's record only.
    let before = store.records(CHANNEL_SESSIONS).unwrap();
    let (p, sid) = &mut peers[1];
    let frame = p.encrypt(sid, b"again").unwrap();
    let got = bob.receive(&frame, NOW).unwrap();
    assert!(!got.new_session);
    save_received(&mut store, &bob, &got.session_id, false).unwrap();
    let after = store.records(CHANNEL_SESSIONS).unwrap();
    let changed: Vec<&Vec<u8>> = before
        .iter()
        .zip(&after)
        .filter(|(b, a)| b.1 != a.1)
        .map(|(b, _)| &b.0)
        .collect();
    assert_eq!(changed, vec![&sid.to_vec()]);
    // Restored: every session, the one-time prekeys used stay used.
    let (restored, legacy) = load_device_marked::<B, _>(&store).unwrap().unwrap();
    assert!(!legacy);
    assert_eq!(restored.sessions().count(), 3);
    assert_eq!(restored.one_time_prekey_ids().len(), 1);
    // An earlier version's whole device: loaded with its sessions, marked.
    store
        .put_record(CHANNEL, b"device", &bob.to_bytes())
        .unwrap();
    let (_, legacy) = load_device_marked::<B, _>(&store).unwrap().unwrap();
    assert!(legacy);
    let _ = std::fs::remove_dir_all(&dir);
}
