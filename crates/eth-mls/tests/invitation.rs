//! The invitee's consent (WIRE.md §4, steps 3-4): accepted when it is exactly right; every
//! attack of the client issue rejected with its typed error — signed by the wrong account,
//! replayed for another group or invitation, expired, another key package, tampered text.
#![allow(clippy::unwrap_used)]

use eth_mls::Error;
use eth_mls::invitation::{consent_message, key_package_hash, verify_response};
use eth_mls::wire::{GroupRef, InvitationRequest, InvitationResponse};
use eth_mls_core::{EthereumSigner, LocalEthereumSigner};

const NOW: i64 = 1_785_000_000;

fn signer(b: u8) -> LocalEthereumSigner {
    LocalEthereumSigner::from_bytes(&[b; 32]).unwrap()
}

fn request() -> InvitationRequest {
    InvitationRequest {
        request_id: [7; 16],
        group: GroupRef {
            chain_id: 31337,
            factory: [0x11; 20],
            group_contract: [0x22; 20],
        },
        group_id: b"group".to_vec(),
        inviter: [0xaa; 20],
        expiry: (NOW + 3600) as u64,
        note: "join us".into(),
    }
}

async fn respond(
    req: &InvitationRequest,
    who: &LocalEthereumSigner,
    kp: &[u8],
) -> InvitationResponse {
    let text = consent_message(req, who.address(), kp, NOW)
        .unwrap()
        .to_string();
    InvitationResponse {
        request_id: req.request_id,
        key_package: kp.to_vec(),
        signature: who.sign_message(text.as_bytes()).await.unwrap(),
        siwe_message: text,
    }
}

#[tokio::test]
async fn a_correct_consent_is_accepted() {
    let bob = signer(2);
    let req = request();
    let resp = respond(&req, &bob, b"key package").await;
    assert!(
        resp.siwe_message
            .starts_with("eth-mls wants you to sign in with your Ethereum account:\n")
    );
    assert!(
        resp.siwe_message
            .contains("\nURI: eth-mls:invitation:07070707070707070707070707070707\n")
    );
    let ok = verify_response(&req, bob.address(), &resp, NOW + 10, None)
        .await
        .unwrap();
    assert_eq!(ok.invitee, bob.address());
    assert_eq!(ok.key_package_hash, key_package_hash(b"key package"));
}

#[tokio::test]
async fn attacks_are_rejected() {
    let (bob, mallory) = (signer(2), signer(3));
    let req = request();
    let good = respond(&req, &bob, b"kp").await;

    // Signed by another account than the one invited.
    let by_mallory = respond(&req, &mallory, b"kp").await;
    assert!(matches!(
        verify_response(&req, bob.address(), &by_mallory, NOW, None).await,
        Err(Error::WrongAccount { .. })
    ));
    // Bob's text, Mallory's signature.
    let mut forged = good.clone();
    forged.signature = by_mallory.signature.clone();
    assert!(matches!(
        verify_response(&req, bob.address(), &forged, NOW, None).await,
        Err(Error::BadSignature(_))
    ));
    // Replayed for another group (same request id), for another chain, for another invitation.
    let mut other_group = req.clone();
    other_group.group.group_contract = [0x23; 20];
    assert_eq!(
        verify_response(&other_group, bob.address(), &good, NOW, None).await,
        Err(Error::WrongGroup)
    );
    let mut other_chain = req.clone();
    other_chain.group.chain_id = 1;
    assert_eq!(
        verify_response(&other_chain, bob.address(), &good, NOW, None).await,
        Err(Error::WrongGroup)
    );
    let mut other_request = req.clone();
    other_request.request_id = [8; 16];
    assert_eq!(
        verify_response(&other_request, bob.address(), &good, NOW, None).await,
        Err(Error::UnknownRequest)
    );
    let mut relabelled = good.clone();
    relabelled.request_id = [8; 16];
    assert_eq!(
        verify_response(&other_request, bob.address(), &relabelled, NOW, None).await,
        Err(Error::WrongGroup)
    );
    // Expired: at the expiry and after it; an expiry other than the invitation's.
    for t in [NOW + 3600, NOW + 7200] {
        assert_eq!(
            verify_response(&req, bob.address(), &good, t, None).await,
            Err(Error::Expired)
        );
    }
    let mut later = req.clone();
    later.expiry += 60;
    assert_eq!(
        verify_response(&later, bob.address(), &good, NOW, None).await,
        Err(Error::WrongExpiry)
    );
    // Issued too far in the future (a clock far ahead).
    let future = {
        let text = consent_message(&req, bob.address(), b"kp", NOW + 1000)
            .unwrap()
            .to_string();
        InvitationResponse {
            signature: bob.sign_message(text.as_bytes()).await.unwrap(),
            siwe_message: text,
            ..good.clone()
        }
    };
    assert_eq!(
        verify_response(&req, bob.address(), &future, NOW, None).await,
        Err(Error::Expired)
    );
    // Another key package than the one signed for.
    let mut swapped = good.clone();
    swapped.key_package = b"another kp".to_vec();
    assert_eq!(
        verify_response(&req, bob.address(), &swapped, NOW, None).await,
        Err(Error::KeyPackageMismatch)
    );
    // Tampered text (the nonce), and text that is not SIWE at all.
    let mut tampered = good.clone();
    tampered.siwe_message = tampered.siwe_message.replace("Nonce: 0707", "Nonce: 0708");
    assert_eq!(
        verify_response(&req, bob.address(), &tampered, NOW, None).await,
        Err(Error::WrongGroup)
    );
    let mut garbage = good.clone();
    garbage.siwe_message = "hello".into();
    assert!(matches!(
        verify_response(&req, bob.address(), &garbage, NOW, None).await,
        Err(Error::BadSiwe(_))
    ));
    // The genuine one still passes.
    assert!(
        verify_response(&req, bob.address(), &good, NOW, None)
            .await
            .is_ok()
    );
}
