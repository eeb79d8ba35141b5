//! The client's wire format (WIRE.md): pinned encodings of every message type, round trips,
//! and decoders that never panic and accept only canonical bytes.
#![allow(clippy::unwrap_used)]

use eth_mls::Error;
use eth_mls::wire::*;
use proptest::prelude::*;

fn group() -> GroupRef {
    GroupRef {
        chain_id: 31337,
        factory: [0x11; 20],
        group_contract: [0x22; 20],
    }
}

fn samples() -> Vec<ClientMessage> {
    vec![
        ClientMessage::InvitationRequest(InvitationRequest {
            request_id: [1; 16],
            group: group(),
            group_id: b"gid".to_vec(),
            inviter: [0xaa; 20],
            expiry: 1_785_000_000,
            note: "hi".into(),
        }),
        ClientMessage::InvitationResponse(InvitationResponse {
            request_id: [1; 16],
            key_package: vec![0x33; 3],
            siwe_message: "s".into(),
            signature: vec![0x44; 2],
        }),
        ClientMessage::InvitationDecline {
            request_id: [2; 16],
        },
        ClientMessage::Welcome(WelcomeMessage {
            request_id: [1; 16],
            group: group(),
            epoch: 7,
            delivery: WelcomeDelivery::Inline(vec![0x55; 2]),
        }),
        ClientMessage::Welcome(WelcomeMessage {
            request_id: [1; 16],
            group: group(),
            epoch: 7,
            delivery: WelcomeDelivery::ByHash([0x66; 32]),
        }),
        ClientMessage::ChangeRequest(ChangeRequest {
            request_id: [3; 16],
            group: group(),
            epoch: 9,
            kind: ChangeKind::Removal,
            target: [0xcc; 20],
            proposal: vec![],
        }),
        ClientMessage::ReaddRequest(ReaddRequest {
            request_id: [4; 16],
            group: group(),
            last_epoch: 12,
            key_package: vec![0x77],
        }),
        ClientMessage::RequestRejected(RequestRejected {
            request_id: [5; 16],
            reason: RejectReason::NotAdmin,
        }),
    ]
}

const GROUP_HEX: &str = "0000000000007a69\
    1111111111111111111111111111111111111111\
    2222222222222222222222222222222222222222";

/// The exact bytes WIRE.md specifies, one per message type.
#[test]
fn pinned_encodings() {
    let ids = |b: u8| format!("{b:02x}").repeat(16);
    let want = [
        format!(
            "000101{}{GROUP_HEX}03676964{}000000006a64f040026869",
            ids(1),
            "aa".repeat(20)
        ),
        format!("000102{}03333333{}{}", ids(1), "0173", "024444"),
        format!("000103{}", ids(2)),
        format!("000104{}{GROUP_HEX}0000000000000007010255 55", ids(1)),
        format!(
            "000104{}{GROUP_HEX}000000000000000702{}",
            ids(1),
            "66".repeat(32)
        ),
        format!(
            "000105{}{GROUP_HEX}000000000000000902{}00",
            ids(3),
            "cc".repeat(20)
        ),
        format!("000106{}{GROUP_HEX}000000000000000c0177", ids(4)),
        format!("000107{}02", ids(5)),
    ];
    for (m, w) in samples().iter().zip(want) {
        let w = w.replace(' ', "");
        assert_eq!(hex::encode(m.encode().unwrap()), w, "{m:?}");
        assert_eq!(
            &ClientMessage::decode(&hex::decode(&w).unwrap()).unwrap(),
            m
        );
    }
}

#[test]
fn versions_types_and_limits() {
    assert_eq!(
        ClientMessage::decode(&[]),
        Err(Error::Decode { what: "version" })
    );
    assert_eq!(
        ClientMessage::decode(&[0]),
        Err(Error::Decode { what: "version" })
    );
    assert_eq!(
        ClientMessage::decode(&[0, 2]),
        Err(Error::UnsupportedVersion { version: 2 })
    );
    assert_eq!(
        ClientMessage::decode(&[0, 1, 8]),
        Err(Error::Decode { what: "msg_type" })
    );
    assert_eq!(
        ClientMessage::decode(&[0, 1, 0]),
        Err(Error::Decode { what: "msg_type" })
    );
    let mut rejected = samples()[7].encode().unwrap();
    *rejected.last_mut().unwrap() = 7;
    assert_eq!(
        ClientMessage::decode(&rejected),
        Err(Error::Decode { what: "reason" })
    );
    // Non-minimal length prefix of the note (2 bytes written as 40 02).
    let mut req = samples()[0].encode().unwrap();
    let at = req.len() - 3;
    req.splice(at..at + 1, [0x40, 0x02]);
    assert!(ClientMessage::decode(&req).is_err());
    // Limits on both sides.
    let mut big = match samples()[0].clone() {
        ClientMessage::InvitationRequest(r) => r,
        _ => unreachable!(),
    };
    big.note = "x".repeat(MAX_NOTE + 1);
    assert!(matches!(
        ClientMessage::InvitationRequest(big.clone()).encode(),
        Err(Error::TooLong { field: "note", .. })
    ));
    big.note = String::new();
    big.group_id = vec![];
    assert!(ClientMessage::InvitationRequest(big).encode().is_err());
    // A note that is not UTF-8.
    let mut bad = samples()[0].encode().unwrap();
    let n = bad.len();
    bad[n - 1] = 0xff;
    assert_eq!(
        ClientMessage::decode(&bad),
        Err(Error::Decode { what: "note" })
    );
}

fn arb_group() -> impl Strategy<Value = GroupRef> {
    (any::<u64>(), any::<[u8; 20]>(), any::<[u8; 20]>()).prop_map(
        |(chain_id, factory, group_contract)| GroupRef {
            chain_id,
            factory,
            group_contract,
        },
    )
}

fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..max)
}

fn arb_message() -> impl Strategy<Value = ClientMessage> {
    prop_oneof![
        (
            any::<[u8; 16]>(),
            arb_group(),
            proptest::collection::vec(any::<u8>(), 1..80),
            any::<[u8; 20]>(),
            any::<u64>(),
            ".{0,40}"
        )
            .prop_map(|(request_id, group, group_id, inviter, expiry, note)| {
                ClientMessage::InvitationRequest(InvitationRequest {
                    request_id,
                    group,
                    group_id,
                    inviter,
                    expiry,
                    note,
                })
            }),
        (any::<[u8; 16]>(), bytes(300), ".{0,200}", bytes(100)).prop_map(
            |(request_id, key_package, siwe_message, signature)| {
                ClientMessage::InvitationResponse(InvitationResponse {
                    request_id,
                    key_package,
                    siwe_message,
                    signature,
                })
            }
        ),
        any::<[u8; 16]>().prop_map(|request_id| ClientMessage::InvitationDecline { request_id }),
        (
            any::<[u8; 16]>(),
            arb_group(),
            any::<u64>(),
            prop_oneof![
                bytes(300).prop_map(WelcomeDelivery::Inline),
                any::<[u8; 32]>().prop_map(WelcomeDelivery::ByHash)
            ]
        )
            .prop_map(
                |(request_id, group, epoch, delivery)| ClientMessage::Welcome(WelcomeMessage {
                    request_id,
                    group,
                    epoch,
                    delivery
                })
            ),
        (
            any::<[u8; 16]>(),
            arb_group(),
            any::<u64>(),
            any::<bool>(),
            any::<[u8; 20]>(),
            bytes(300)
        )
            .prop_map(|(request_id, group, epoch, upd, target, proposal)| {
                ClientMessage::ChangeRequest(ChangeRequest {
                    request_id,
                    group,
                    epoch,
                    kind: if upd {
                        ChangeKind::Update
                    } else {
                        ChangeKind::Removal
                    },
                    target,
                    proposal,
                })
            }),
        (any::<[u8; 16]>(), arb_group(), any::<u64>(), bytes(300)).prop_map(
            |(request_id, group, last_epoch, key_package)| {
                ClientMessage::ReaddRequest(ReaddRequest {
                    request_id,
                    group,
                    last_epoch,
                    key_package,
                })
            }
        ),
        (any::<[u8; 16]>(), 1u8..=6).prop_map(|(request_id, r)| ClientMessage::RequestRejected(
            RequestRejected {
                request_id,
                reason: [
                    RejectReason::Expired,
                    RejectReason::NotAdmin,
                    RejectReason::Invalid,
                    RejectReason::Policy,
                    RejectReason::Declined,
                    RejectReason::UnknownRequest
                ][usize::from(r - 1)],
            }
        )),
    ]
}

proptest! {
    #[test]
    fn round_trip(m in arb_message()) {
        let b = m.encode().unwrap();
        let d = ClientMessage::decode(&b).unwrap();
        prop_assert_eq!(&d, &m);
        prop_assert_eq!(d.request_id(), m.request_id());
    }

    #[test]
    fn truncated_or_extended_fails(m in arb_message(), cut in any::<prop::sample::Index>(), extra in 0u8..=255) {
        let b = m.encode().unwrap();
        prop_assert!(ClientMessage::decode(&b[..cut.index(b.len())]).is_err());
        let mut longer = b.clone();
        longer.push(extra);
        prop_assert!(ClientMessage::decode(&longer).is_err());
    }

    #[test]
    fn mutated_bytes_never_panic_and_decode_canonically(m in arb_message(), flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6)) {
        let mut b = m.encode().unwrap();
        for (i, x) in flips {
            let at = i.index(b.len());
            b[at] ^= x;
        }
        if let Ok(d) = ClientMessage::decode(&b) {
            prop_assert_eq!(d.encode().unwrap(), b);
        }
    }

    #[test]
    fn random_bytes_never_panic(b in bytes(400)) {
        if let Ok(d) = ClientMessage::decode(&b) {
            prop_assert_eq!(d.encode().unwrap(), b);
        }
    }
}

/// The consents an add commit carries: round trip, limits, and total decoding.
#[test]
fn consents_round_trip_and_decode_totally() {
    use eth_mls::wire::{Consent, MAX_CONSENTS, decode_consents, encode_consents};
    let consents = vec![
        Consent {
            siwe_message: "eth-mls wants you to sign in".into(),
            signature: vec![7; 65],
        },
        Consent {
            siwe_message: "another".into(),
            signature: vec![],
        },
    ];
    let bytes = encode_consents(&consents).unwrap();
    assert_eq!(decode_consents(&bytes).unwrap(), consents);
    assert_eq!(
        decode_consents(&encode_consents(&[]).unwrap()).unwrap(),
        vec![]
    );
    let too_many = vec![consents[1].clone(); MAX_CONSENTS + 1];
    assert!(encode_consents(&too_many).is_err());
    // Every cut and any trailing byte is an error, never a panic.
    for cut in 0..bytes.len() {
        assert!(decode_consents(&bytes[..cut]).is_err(), "cut at {cut}");
    }
    let mut longer = bytes.clone();
    longer.push(0);
    assert!(decode_consents(&longer).is_err());
    let mut bad_utf8 = bytes;
    let at = bad_utf8.iter().position(|b| *b == b'e').unwrap();
    bad_utf8[at] = 0xff;
    assert!(decode_consents(&bad_utf8).is_err());
}

/// WIRE.md §4.2: a commit's data (consents, carried proposals) round-trips; consents alone
/// encode as before; decoding is total.
#[test]
fn commit_data_round_trips_and_decodes_totally() {
    use eth_mls::wire::{
        CommitData, Consent, MAX_CARRIED_PROPOSALS, decode_commit_data, encode_commit_data,
        encode_consents,
    };
    let consent = Consent {
        siwe_message: "text".into(),
        signature: vec![7; 65],
    };
    let only = CommitData {
        consents: vec![consent.clone()],
        proposals: vec![],
    };
    let bytes = encode_commit_data(&only).unwrap();
    assert_eq!(
        bytes,
        encode_consents(std::slice::from_ref(&consent)).unwrap()
    );
    assert_eq!(decode_commit_data(&bytes).unwrap(), only);
    assert_eq!(decode_commit_data(&[]).unwrap(), CommitData::default());
    let both = CommitData {
        consents: vec![],
        proposals: vec![vec![1, 2, 3], vec![4; 300]],
    };
    let bytes = encode_commit_data(&both).unwrap();
    assert_eq!(decode_commit_data(&bytes).unwrap(), both);
    // Cut anywhere, it is an error — except right after the consents, where it is the
    // data without proposals.
    let consents_only = encode_consents(&[]).unwrap().len();
    for cut in 1..bytes.len() {
        let decoded = decode_commit_data(&bytes[..cut]);
        if cut == consents_only {
            assert_eq!(decoded.unwrap(), CommitData::default());
        } else {
            assert!(decoded.is_err(), "cut at {cut}");
        }
    }
    let mut longer = bytes.clone();
    longer.push(0);
    assert!(decode_commit_data(&longer).is_err());
    let too_many = CommitData {
        consents: vec![],
        proposals: vec![vec![1]; MAX_CARRIED_PROPOSALS + 1],
    };
    assert!(encode_commit_data(&too_many).is_err());
    // An empty proposals list is not an encoding (absent is).
    let mut empty_list = encode_consents(&[]).unwrap();
    empty_list.extend_from_slice(&[0]);
    assert!(decode_commit_data(&empty_list).is_err());
}
