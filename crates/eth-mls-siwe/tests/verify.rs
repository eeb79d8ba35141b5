//! Signature verification: EOAs with generated keys, every failure variant, and contract
//! accounts through a mock ERC-1271 verifier.
#![allow(clippy::unwrap_used)]

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};

use eth_mls_siwe::{
    Address, B256, BoxFuture, Erc1271Error, Erc1271Verifier, Message, TimeStamp, VerificationError,
    VerificationOpts, eip191,
};
use k256::ecdsa::SigningKey;

fn block_on<F: Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    loop {
        if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
    }
}

fn key(n: u8) -> SigningKey {
    SigningKey::from_slice(&[n; 32]).unwrap()
}

fn t(s: &str) -> TimeStamp {
    TimeStamp::parse(s).unwrap()
}

/// A message for `address`, valid from 2024-01-01 to 2024-01-02.
fn message(address: Address) -> Message {
    Message::builder("example.com", address, "https://example.com/login", 1)
        .scheme("https")
        .nonce("abcdefgh1234")
        .issued_at(t("2024-01-01T00:00:00Z"))
        .not_before(t("2024-01-01T00:00:00Z"))
        .expiration_time(t("2024-01-02T00:00:00Z"))
        .build()
        .unwrap()
}

fn signed(n: u8) -> (Message, [u8; 65]) {
    let k = key(n);
    let m = message(eip191::address_of(k.verifying_key()));
    let sig = eip191::sign_message(&k, m.to_string().as_bytes());
    (m, sig)
}

fn opts(now: &TimeStamp) -> VerificationOpts<'_> {
    VerificationOpts {
        domain: Some("example.com"),
        nonce: Some("abcdefgh1234"),
        chain_id: Some(1),
        scheme: Some("https"),
        time: Some(now),
        ..Default::default()
    }
}

#[test]
fn eoa_signature_verifies() {
    let (m, sig) = signed(1);
    let now = t("2024-01-01T12:00:00Z");
    let session = block_on(m.verify(&sig, &opts(&now))).unwrap();
    assert_eq!(session.address(), m.address());
    assert_eq!(session.chain_id(), 1);
    assert_eq!(session.domain(), "example.com");
    assert_eq!(session.expires_at(), m.expiration_time());
    assert!(session.is_valid_at(&now));
    assert!(!session.is_valid_at(&t("2024-01-02T00:00:00Z")));
    m.verify_eip191(&sig).unwrap();
    // Through text: parse what was signed and verify.
    let parsed: Message = m.to_string().parse().unwrap();
    block_on(parsed.verify(&sig, &opts(&now))).unwrap();
}

#[test]
fn each_failure_has_its_variant() {
    let (m, sig) = signed(2);
    let now = t("2024-01-01T12:00:00Z");
    let check = |o: VerificationOpts<'_>| block_on(m.verify(&sig, &o)).unwrap_err();

    assert!(matches!(
        check(VerificationOpts {
            domain: Some("evil.com"),
            ..opts(&now)
        }),
        VerificationError::DomainMismatch { .. }
    ));
    assert!(matches!(
        check(VerificationOpts {
            nonce: Some("zzzzzzzz"),
            ..opts(&now)
        }),
        VerificationError::NonceMismatch { .. }
    ));
    assert!(matches!(
        check(VerificationOpts {
            chain_id: Some(5),
            ..opts(&now)
        }),
        VerificationError::ChainIdMismatch {
            expected: 5,
            found: 1
        }
    ));
    assert!(matches!(
        check(VerificationOpts {
            scheme: Some("http"),
            ..opts(&now)
        }),
        VerificationError::SchemeMismatch { .. }
    ));
    let early = t("2023-12-31T23:59:59Z");
    assert!(matches!(
        check(opts(&early)),
        VerificationError::NotYetValid { .. }
    ));
    let expiry = t("2024-01-02T00:00:00Z");
    assert!(matches!(
        check(opts(&expiry)),
        VerificationError::Expired { .. }
    ));
    // Boundaries: not-before inclusive, expiration exclusive.
    let start = t("2024-01-01T00:00:00Z");
    block_on(m.verify(&sig, &opts(&start))).unwrap();
    let last = t("2024-01-01T23:59:59.999Z");
    block_on(m.verify(&sig, &opts(&last))).unwrap();

    // A tampered message recovers to another address.
    let tampered: Message = m
        .to_string()
        .replace("Nonce: abcdefgh1234", "Nonce: abcdefgh1235")
        .parse()
        .unwrap();
    let o = VerificationOpts {
        nonce: None,
        ..opts(&now)
    };
    assert!(matches!(
        block_on(tampered.verify(&sig, &o)),
        Err(VerificationError::AddressMismatch { .. })
    ));
    // Another signer.
    let (_, other_sig) = signed(3);
    assert!(matches!(
        block_on(m.verify(&other_sig, &opts(&now))),
        Err(VerificationError::AddressMismatch { .. })
    ));
    // Malformed signatures.
    assert!(matches!(
        block_on(m.verify(&sig[..64], &opts(&now))),
        Err(VerificationError::InvalidSignature(_))
    ));
    let mut bad_v = sig;
    bad_v[64] = 5;
    assert!(matches!(
        m.verify_eip191(&bad_v),
        Err(VerificationError::InvalidSignature(_))
    ));
}

#[test]
fn scheme_defaults_to_https() {
    let k = key(4);
    let m = Message::builder(
        "example.com",
        eip191::address_of(k.verifying_key()),
        "https://example.com",
        1,
    )
    .nonce("abcdefgh1234")
    .build()
    .unwrap();
    let sig = eip191::sign_message(&k, m.to_string().as_bytes());
    let o = VerificationOpts {
        scheme: Some("https"),
        ..Default::default()
    };
    block_on(m.verify(&sig, &o)).unwrap();
    let o = VerificationOpts {
        scheme: Some("http"),
        ..Default::default()
    };
    assert!(matches!(
        block_on(m.verify(&sig, &o)),
        Err(VerificationError::SchemeMismatch { .. })
    ));
}

/// A contract wallet that approves signatures made by one owner key (like a 1-of-1 Safe),
/// or fails like an unreachable RPC endpoint.
struct MockWallet {
    wallet: Address,
    owner: Address,
    chain_id: u64,
    fail: bool,
    calls: AtomicUsize,
}

impl Erc1271Verifier for MockWallet {
    fn is_valid_signature<'a>(
        &'a self,
        chain_id: u64,
        contract: Address,
        hash: B256,
        signature: &'a [u8],
    ) -> BoxFuture<'a, Result<bool, Erc1271Error>> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        Box::pin(async move {
            if self.fail {
                return Err(Erc1271Error::new("connection refused"));
            }
            if chain_id != self.chain_id || contract != self.wallet {
                return Ok(false); // no such contract there: not the magic value
            }
            Ok(eip191::recover_address(&hash, signature, false).ok() == Some(self.owner))
        })
    }
}

#[test]
fn contract_wallet_through_erc1271() {
    let owner = key(5);
    let wallet: Address = "0x1111111111111111111111111111111111111111"
        .parse()
        .unwrap();
    let m = message(wallet);
    let sig = eip191::sign_message(&owner, m.to_string().as_bytes());
    let now = t("2024-01-01T12:00:00Z");
    let mock = MockWallet {
        wallet,
        owner: eip191::address_of(owner.verifying_key()),
        chain_id: 1,
        fail: false,
        calls: AtomicUsize::new(0),
    };
    // Without a verifier the EOA check fails.
    assert!(matches!(
        block_on(m.verify(&sig, &opts(&now))),
        Err(VerificationError::AddressMismatch { .. })
    ));
    // With it, the wallet approves its owner's signature.
    let o = VerificationOpts {
        erc1271: Some(&mock),
        ..opts(&now)
    };
    let session = block_on(m.verify(&sig, &o)).unwrap();
    assert_eq!(session.address(), wallet);
    assert_eq!(mock.calls.load(Ordering::SeqCst), 1);
    // A signature by someone else: rejected by the contract.
    let stranger = eip191::sign_message(&key(6), m.to_string().as_bytes());
    assert!(matches!(
        block_on(m.verify(&stranger, &o)),
        Err(VerificationError::Erc1271Rejected { chain_id: 1, .. })
    ));
    // The contract decides even for non-ECDSA signature bytes.
    assert!(matches!(
        block_on(m.verify(&[1, 2, 3], &o)),
        Err(VerificationError::Erc1271Rejected { .. })
    ));
    // An RPC failure is reported as such, never as an invalid signature.
    let down = MockWallet {
        fail: true,
        calls: AtomicUsize::new(0),
        ..mock
    };
    let o = VerificationOpts {
        erc1271: Some(&down),
        ..opts(&now)
    };
    match block_on(m.verify(&sig, &o)) {
        Err(VerificationError::Rpc(e)) => assert!(e.to_string().contains("connection refused")),
        other => panic!("expected an RPC error, got {other:?}"),
    }
    // An EOA signature never reaches the verifier.
    let (eoa, eoa_sig) = signed(7);
    block_on(eoa.verify(&eoa_sig, &o)).unwrap();
    assert_eq!(down.calls.load(Ordering::SeqCst), 1);
}
