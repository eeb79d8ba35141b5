//! Sessions end to end, one suite run on every backend: round trips, duplicates and
//! reordering, rejections that change nothing, forward secrecy and post-compromise security,
//! one-time prekeys used once, signed-prekey rotation and grace, state that survives a
//! restart; plus a conversation across the two backends.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use eth_mls_channel::{
    Backend, ChannelMessage, Device, Error, ErrorCode, OneTimePrekeyChoice, PrekeyBundle, Secret,
    Session,
};

const NOW: u64 = 1_785_000_000;
const DAY: u64 = 86_400;

fn device<B: Backend>(tag: u8) -> Device<B> {
    Device::<B>::generate([tag; 20], Secret::new([tag; 57])).unwrap()
}

/// Bob with a signed prekey valid for a week and `opks` one-time prekeys.
fn bob<B: Backend>(opks: usize) -> Device<B> {
    let mut b = device::<B>(0xbb);
    b.rotate_signed_prekey(NOW, 7 * DAY).unwrap();
    b.generate_one_time_prekeys(opks).unwrap();
    b
}

fn bundle_of<B: Backend>(d: &Device<B>, opks: usize) -> eth_mls_channel::VerifiedBundle {
    PrekeyBundle::validate::<B>(&d.bundle(NOW, opks).unwrap().encode().unwrap(), NOW).unwrap()
}

/// Alice and Bob after one message each way.
fn established<B: Backend>() -> (Device<B>, Device<B>, [u8; 32]) {
    let mut bob = bob::<B>(5);
    let mut alice = device::<B>(0xaa);
    let sid = alice
        .initiate(&bundle_of(&bob, 5), OneTimePrekeyChoice::Random)
        .unwrap();
    let m = alice.encrypt(&sid, b"hi").unwrap();
    assert!(bob.receive(&m, NOW).unwrap().new_session);
    let r = bob.encrypt(&sid, b"hello").unwrap();
    assert_eq!(alice.receive(&r, NOW).unwrap().plaintext, b"hello");
    (alice, bob, sid)
}

fn code(r: Result<impl Sized, Error>) -> Option<ErrorCode> {
    r.err().and_then(|e| e.code())
}

/// Receives and checks that a rejection changed nothing.
fn reject<B: Backend>(d: &mut Device<B>, bytes: &[u8], want: ErrorCode) {
    let before = d.to_bytes();
    assert_eq!(code(d.receive(bytes, NOW)), Some(want));
    assert!(
        d.to_bytes() == before,
        "a rejected message changed the device"
    );
}

fn round_trips<B: Backend>() {
    let (mut alice, mut bob, sid) = established::<B>();
    assert!(!alice.session(&sid).unwrap().is_pending());
    for round in 0..20 {
        let sizes = [0usize, 1, 1024, 65_536];
        let size = sizes[round % sizes.len()];
        let text = vec![round as u8; size];
        for _ in 0..(round % 3 + 1) {
            let m = alice.encrypt(&sid, &text).unwrap();
            assert!(matches!(
                ChannelMessage::decode(&m).unwrap(),
                ChannelMessage::Normal(_)
            ));
            let got = bob.receive(&m, NOW).unwrap();
            assert_eq!(got.plaintext, text);
            assert_eq!(got.peer_address, [0xaa; 20]);
            assert_eq!(&got.peer_identity_key, alice.identity_key());
        }
        let m = bob.encrypt(&sid, &text).unwrap();
        let got = alice.receive(&m, NOW).unwrap();
        assert_eq!((got.plaintext, got.peer_address), (text, [0xbb; 20]));
    }
    let a = alice.session(&sid).unwrap();
    let b = bob.session(&sid).unwrap();
    assert_eq!(a.associated_data(), b.associated_data());
    assert_eq!(a.peer_address(), &[0xbb; 20]);
    assert_eq!(b.peer_address(), &[0xaa; 20]);
    assert!(a.is_initiator() && !b.is_initiator());
}

fn early_messages_are_prekey_messages<B: Backend>() {
    let mut bob = bob::<B>(1);
    let mut alice = device::<B>(0xaa);
    let sid = alice
        .initiate(&bundle_of(&bob, 1), OneTimePrekeyChoice::Random)
        .unwrap();
    let early: Vec<_> = (0..3).map(|i| alice.encrypt(&sid, &[i]).unwrap()).collect();
    for m in &early {
        let ChannelMessage::Prekey(p) = ChannelMessage::decode(m).unwrap() else {
            panic!("early messages are prekey messages");
        };
        assert_eq!(p.one_time_prekey_id, Some(1));
    }
    // The last one arrives first and creates the session; the others decrypt from skipped keys.
    assert_eq!(bob.receive(&early[2], NOW).unwrap().plaintext, [2]);
    assert_eq!(bob.receive(&early[0], NOW).unwrap().plaintext, [0]);
    assert!(!bob.receive(&early[1], NOW).unwrap().new_session);
    // Every one again: a duplicate, never OPK_REUSED.
    for m in &early {
        reject(&mut bob, m, ErrorCode::Duplicate);
    }
    let r = bob.encrypt(&sid, b"reply").unwrap();
    alice.receive(&r, NOW).unwrap();
    let later = alice.encrypt(&sid, b"normal").unwrap();
    assert!(matches!(
        ChannelMessage::decode(&later).unwrap(),
        ChannelMessage::Normal(_)
    ));
    assert_eq!(bob.receive(&later, NOW).unwrap().plaintext, b"normal");
}

fn out_of_order_and_duplicates<B: Backend>() {
    let (mut alice, mut bob, sid) = established::<B>();
    let batch: Vec<_> = (0..30u8)
        .map(|i| alice.encrypt(&sid, &[i]).unwrap())
        .collect();
    // Deliver in a scrambled order, each twice.
    let order: Vec<usize> = (0..30).map(|i| (i * 17 + 5) % 30).collect();
    for &i in &order {
        assert_eq!(bob.receive(&batch[i], NOW).unwrap().plaintext, [i as u8]);
        reject(&mut bob, &batch[i], ErrorCode::Duplicate);
    }
    // Messages across a turn: Alice's old-chain messages arrive after her new chain's.
    let old: Vec<_> = (0..3u8)
        .map(|i| alice.encrypt(&sid, &[100 + i]).unwrap())
        .collect();
    let r = bob.encrypt(&sid, b"turn").unwrap();
    alice.receive(&r, NOW).unwrap();
    let new = alice.encrypt(&sid, b"new chain").unwrap();
    assert_eq!(bob.receive(&new, NOW).unwrap().plaintext, b"new chain");
    for (i, m) in old.iter().enumerate().rev() {
        assert_eq!(bob.receive(m, NOW).unwrap().plaintext, [100 + i as u8]);
    }
    let snap = bob.session(&sid).unwrap().snapshot();
    assert!(snap.receiving_chains.iter().all(|c| c.skipped.is_empty()));
}

fn rejections_change_nothing<B: Backend>() {
    let (mut alice, mut bob, sid) = established::<B>();
    let m = alice.encrypt(&sid, b"genuine").unwrap();
    // Tampering anywhere in the header or the ciphertext.
    for at in [40usize, 95, 99, 102, m.len() - 1] {
        let mut t = m.clone();
        t[at] ^= 0x01;
        let before = bob.to_bytes();
        assert!(bob.receive(&t, NOW).is_err(), "flip at {at} accepted");
        assert!(bob.to_bytes() == before);
    }
    // A message for no session, garbage, an unsupported version.
    let mut other = m.clone();
    other[3] ^= 0xff;
    reject(&mut bob, &other, ErrorCode::UnknownSession);
    reject(&mut bob, b"", ErrorCode::DecodeError);
    reject(&mut bob, &[0, 2, 2], ErrorCode::UnsupportedVersion);
    reject(&mut bob, &m[..m.len() - 1], ErrorCode::DecodeError);
    assert_eq!(bob.receive(&m, NOW).unwrap().plaintext, b"genuine");
    // A gap beyond MAX_SKIP, through the public structures.
    let mut msg = ChannelMessage::decode(&alice.encrypt(&sid, b"x").unwrap()).unwrap();
    if let ChannelMessage::Normal(n) = &mut msg {
        n.message.header.n += 2001;
    }
    reject(&mut bob, &msg.encode().unwrap(), ErrorCode::TooManySkipped);
    // Session-level decrypt is transactional too.
    let session: &Session = bob.session(&sid).unwrap();
    let mut copy = session.clone();
    let before = copy.to_bytes();
    let bad = ChannelMessage::decode(&m).unwrap();
    let mut keys = eth_mls_channel::ScriptedKeys::default();
    assert!(copy.decrypt::<B>(bad.ratchet_message(), &mut keys).is_err());
    assert!(copy.to_bytes() == before);
}

fn forward_secrecy<B: Backend>() {
    let mut bob = bob::<B>(5);
    let mut alice = device::<B>(0xaa);
    let sid = alice
        .initiate(&bundle_of(&bob, 5), OneTimePrekeyChoice::Random)
        .unwrap();
    let first = alice.encrypt(&sid, b"first").unwrap();
    bob.receive(&first, NOW).unwrap();
    let r = bob.encrypt(&sid, b"reply").unwrap();
    alice.receive(&r, NOW).unwrap();
    let sent: Vec<_> = (0..3u8)
        .map(|i| alice.encrypt(&sid, &[i]).unwrap())
        .collect();
    for m in &sent {
        bob.receive(m, NOW).unwrap();
    }
    // Bob's state is stolen now: the messages he already read cannot be read from it.
    let mut stolen = Device::<B>::from_bytes(&bob.to_bytes()).unwrap();
    for m in sent.iter().chain([&first]) {
        reject(&mut stolen, m, ErrorCode::Duplicate);
    }
    // Nor can the session be re-created from the first message: its one-time prekey is gone.
    assert_eq!(stolen.one_time_prekey_ids().len(), 4);
    assert!(stolen.remove_session(&sid));
    reject(&mut stolen, &first, ErrorCode::OpkReused);
    // Alice's own copy cannot read Bob's old reply again either.
    let mut alice_copy = Device::<B>::from_bytes(&alice.to_bytes()).unwrap();
    reject(&mut alice_copy, &r, ErrorCode::Duplicate);
}

fn post_compromise_security<B: Backend>() {
    let (mut alice, mut bob, sid) = established::<B>();
    // An attacker copies Alice's state.
    let mut stolen = Device::<B>::from_bytes(&alice.to_bytes()).unwrap();
    // Bob writes in his current chain: the copy reads it (no ratchet step yet).
    let same_chain = bob.encrypt(&sid, b"same chain").unwrap();
    assert_eq!(
        stolen.receive(&same_chain, NOW).unwrap().plaintext,
        b"same chain"
    );
    alice.receive(&same_chain, NOW).unwrap();
    // Two turns: Alice's next DH ratchet step (a key the copy never had) reaches Bob.
    let a1 = alice.encrypt(&sid, b"a1").unwrap();
    bob.receive(&a1, NOW).unwrap();
    let b1 = bob.encrypt(&sid, b"b1").unwrap();
    alice.receive(&b1, NOW).unwrap();
    let a2 = alice.encrypt(&sid, b"a2").unwrap();
    bob.receive(&a2, NOW).unwrap();
    let b2 = bob.encrypt(&sid, b"b2").unwrap();
    // The copy cannot read what Bob sent after that step; Alice can.
    let before = stolen.to_bytes();
    assert!(stolen.receive(&b2, NOW).is_err());
    assert!(stolen.to_bytes() == before);
    assert_eq!(alice.receive(&b2, NOW).unwrap().plaintext, b"b2");
}

fn one_time_prekeys_are_used_once<B: Backend>() {
    let mut bob = bob::<B>(3);
    let bundle = bundle_of(&bob, 3);
    let mut alice = device::<B>(0xaa);
    let mut carol = device::<B>(0xcc);
    let s1 = alice.initiate(&bundle, OneTimePrekeyChoice::Id(2)).unwrap();
    let s2 = carol.initiate(&bundle, OneTimePrekeyChoice::Id(2)).unwrap();
    let m1 = alice.encrypt(&s1, b"alice").unwrap();
    let m2 = carol.encrypt(&s2, b"carol").unwrap();
    bob.receive(&m1, NOW).unwrap();
    assert_eq!(bob.one_time_prekey_ids(), [1, 3]);
    // The second initiator who picked the same one-time prekey is refused.
    reject(&mut bob, &m2, ErrorCode::OpkReused);
    // After Bob deletes the session, a replay of the prekey message is refused as well.
    assert!(bob.remove_session(&s1));
    reject(&mut bob, &m1, ErrorCode::OpkReused);
    // A new bundle no longer lists it; an id never issued is UNKNOWN_OPK.
    assert!(
        bob.bundle(NOW, 10)
            .unwrap()
            .one_time_prekeys
            .iter()
            .all(|k| k.id != 2)
    );
    let mut forged = ChannelMessage::decode(&m2).unwrap();
    if let ChannelMessage::Prekey(p) = &mut forged {
        p.one_time_prekey_id = Some(999);
    }
    reject(&mut bob, &forged.encode().unwrap(), ErrorCode::UnknownOpk);
    assert_eq!(
        alice.initiate(&bundle, OneTimePrekeyChoice::Id(7)).err(),
        Some(Error::OpkNotInBundle { id: 7 })
    );
}

fn prekey_batches_and_rotation<B: Backend>() {
    let mut bob = device::<B>(0xbb);
    assert_eq!(bob.bundle(NOW, 0).err(), Some(Error::NoSignedPrekey));
    let ids = bob.generate_one_time_prekeys(100).unwrap();
    assert_eq!(ids, (1..=100).collect::<Vec<_>>());
    assert_eq!(bob.generate_one_time_prekeys(2).unwrap(), [101, 102]);
    let spk1 = bob.rotate_signed_prekey(NOW, 7 * DAY).unwrap();
    let b1 = bob.bundle(NOW, 10).unwrap();
    assert_eq!(b1.one_time_prekeys.len(), 10);
    assert_eq!(b1.signed_prekey.id, spk1);
    let bytes = b1.encode().unwrap();
    assert_eq!(bytes.len(), eth_mls_channel::BUNDLE_FIXED_LEN + 2 + 600);
    let verified = PrekeyBundle::validate::<B>(&bytes, NOW).unwrap();
    // Initiators refuse the signed prekey from its expiry on.
    assert_eq!(
        code(PrekeyBundle::validate::<B>(&bytes, NOW + 7 * DAY)),
        Some(ErrorCode::SpkExpired)
    );
    let mut alice = device::<B>(0xaa);
    let sid = alice
        .initiate(&verified, OneTimePrekeyChoice::None)
        .unwrap();
    let late = alice.encrypt(&sid, b"late").unwrap();
    // Bob rotates; the old key stays for its grace period.
    let spk2 = bob.rotate_signed_prekey(NOW + 6 * DAY, 7 * DAY).unwrap();
    assert!(spk2 > spk1);
    assert_eq!(bob.bundle(NOW + 6 * DAY, 0).unwrap().signed_prekey.id, spk2);
    let grace_end = NOW + 7 * DAY + eth_mls_channel::SPK_GRACE;
    let mut copy = Device::<B>::from_bytes(&bob.to_bytes()).unwrap();
    assert_eq!(
        copy.receive(&late, grace_end - 1).unwrap().plaintext,
        b"late"
    );
    reject_at(&mut bob, &late, grace_end, ErrorCode::SpkExpired);
    // Past the grace period the old private key is deleted.
    bob.prune(grace_end);
    assert_eq!(bob.signed_prekeys().len(), 1);
    reject_at(&mut bob, &late, grace_end, ErrorCode::UnknownSpk);
    // Ids are never reused.
    assert!(matches!(
        bob.add_signed_prekey(spk2, NOW, Secret::new([9; 56])),
        Err(Error::IdInUse { .. })
    ));
}

fn reject_at<B: Backend>(d: &mut Device<B>, bytes: &[u8], now: u64, want: ErrorCode) {
    let before = d.to_bytes();
    assert_eq!(code(d.receive(bytes, now)), Some(want));
    assert!(d.to_bytes() == before);
}

fn state_survives_restart<B: Backend>() {
    let (mut alice, mut bob, sid) = established::<B>();
    let pending: Vec<_> = (0..5u8)
        .map(|i| alice.encrypt(&sid, &[i]).unwrap())
        .collect();
    bob.receive(&pending[4], NOW).unwrap();
    // Bob restarts from his stored bytes: skipped keys, chains and prekeys come back.
    let saved = bob.to_bytes();
    // The buffer was sized exactly: no reallocation left an unwiped copy of a secret behind.
    assert_eq!(saved.capacity(), saved.len());
    let mut bob = Device::<B>::from_bytes(&saved).unwrap();
    assert!(bob.to_bytes() == saved);
    for (i, m) in pending[..4].iter().enumerate() {
        assert_eq!(bob.receive(m, NOW).unwrap().plaintext, [i as u8]);
    }
    let session = bob.session(&sid).unwrap().clone();
    let bytes = session.to_bytes();
    assert_eq!(bytes.capacity(), bytes.len());
    let restored = Session::from_bytes(&bytes).unwrap();
    assert_eq!(restored.snapshot(), session.snapshot());
    // Alice too, and the conversation goes on.
    let mut alice = Device::<B>::from_bytes(&alice.to_bytes()).unwrap();
    let r = bob.encrypt(&sid, b"after restart").unwrap();
    assert_eq!(alice.receive(&r, NOW).unwrap().plaintext, b"after restart");
    // Damaged state is a typed error, never a panic.
    for cut in [0, 1, 2, 50, saved.len() / 2, saved.len() - 1] {
        assert!(Device::<B>::from_bytes(&saved[..cut]).is_err());
    }
    let mut v2 = saved.to_vec();
    v2[1] = 2;
    assert_eq!(
        Device::<B>::from_bytes(&v2).err(),
        Some(Error::UnsupportedVersion { version: 2 })
    );
    let mut longer = saved.to_vec();
    longer.push(0);
    assert!(matches!(
        Device::<B>::from_bytes(&longer),
        Err(Error::State { .. })
    ));
}

macro_rules! suite {
    ($backend:ty, $($name:ident),* $(,)?) => {
        $( #[test] fn $name() { super::$name::<$backend>(); } )*
    };
}

#[cfg(feature = "rustcrypto")]
mod rustcrypto {
    suite!(
        eth_mls_crypto::RustCrypto,
        round_trips,
        early_messages_are_prekey_messages,
        out_of_order_and_duplicates,
        rejections_change_nothing,
        forward_secrecy,
        post_compromise_security,
        one_time_prekeys_are_used_once,
        prekey_batches_and_rotation,
        state_survives_restart,
    );
}

#[cfg(feature = "openssl")]
mod openssl {
    suite!(
        eth_mls_crypto::OpenSsl,
        round_trips,
        early_messages_are_prekey_messages,
        out_of_order_and_duplicates,
        rejections_change_nothing,
        forward_secrecy,
        post_compromise_security,
        one_time_prekeys_are_used_once,
        prekey_batches_and_rotation,
        state_survives_restart,
    );
}

/// A RustCrypto device and an OpenSSL device talk; each one's state restores on the other
/// backend.
#[cfg(all(feature = "rustcrypto", feature = "openssl"))]
#[test]
fn across_backends() {
    use eth_mls_crypto::{OpenSsl, RustCrypto};
    let mut bob = bob::<OpenSsl>(2);
    let b = bob.bundle(NOW, 2).unwrap().encode().unwrap();
    let mut alice = device::<RustCrypto>(0xaa);
    let sid = alice
        .initiate(
            &PrekeyBundle::validate::<RustCrypto>(&b, NOW).unwrap(),
            OneTimePrekeyChoice::Random,
        )
        .unwrap();
    for i in 0..10u8 {
        let m = alice.encrypt(&sid, &[i]).unwrap();
        assert_eq!(bob.receive(&m, NOW).unwrap().plaintext, [i]);
        let r = bob.encrypt(&sid, &[i, i]).unwrap();
        assert_eq!(alice.receive(&r, NOW).unwrap().plaintext, [i, i]);
    }
    let mut bob = Device::<RustCrypto>::from_bytes(&bob.to_bytes()).unwrap();
    let m = alice.encrypt(&sid, b"moved").unwrap();
    assert_eq!(bob.receive(&m, NOW).unwrap().plaintext, b"moved");
}
