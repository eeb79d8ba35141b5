//! ERC-1271 over RPC: a contract wallet (test-only `MockErc1271Wallet`) approves its owner's
//! signatures; a SIWE message signed for the wallet verifies through `RpcErc1271Verifier`,
//! a wrong signer is rejected, and RPC trouble is reported as such.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use eth_mls_chain::bindings::MockErc1271Wallet;
use eth_mls_chain::{Devnet, RpcErc1271Verifier};
use eth_mls_siwe::{Message, VerificationError, VerificationOpts, eip191};
use k256::ecdsa::SigningKey;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn siwe_for_a_contract_wallet() {
    let devnet = Devnet::start().unwrap();
    let chain = devnet.chain(0).await.unwrap();
    let owner = SigningKey::from_slice(&[0x11; 32]).unwrap();
    let owner_address = eip191::address_of(owner.verifying_key());
    let wallet_address = chain
        .deploy_contract(MockErc1271Wallet::deploy_builder(
            chain.provider(),
            owner_address,
        ))
        .await
        .unwrap();

    let message = Message::builder(
        "example.com",
        wallet_address,
        "https://example.com",
        devnet.chain_id(),
    )
    .build()
    .unwrap();
    let signature = eip191::sign_message(&owner, message.to_string().as_bytes());

    let verifier = RpcErc1271Verifier::new().with_chain(&chain);
    let opts = VerificationOpts {
        erc1271: Some(&verifier),
        ..Default::default()
    };
    let session = message.verify(&signature, &opts).await.unwrap();
    assert_eq!(session.address(), wallet_address);

    // Another key's signature: the wallet says no.
    let stranger = SigningKey::from_slice(&[0x22; 32]).unwrap();
    let bad = eip191::sign_message(&stranger, message.to_string().as_bytes());
    assert!(matches!(
        message.verify(&bad, &opts).await,
        Err(VerificationError::Erc1271Rejected { .. })
    ));
    // Garbage signature bytes: the wallet says no (the call reverts inside ECDSA or returns
    // the failure value), never an RPC error.
    assert!(matches!(
        message.verify(&[1, 2, 3], &opts).await,
        Err(VerificationError::Erc1271Rejected { .. })
    ));
    // An address without code (an EOA that did not sign) is not a valid contract signature.
    let eoa_message = Message::builder(
        "example.com",
        devnet.addresses()[5],
        "https://example.com",
        devnet.chain_id(),
    )
    .build()
    .unwrap();
    assert!(matches!(
        eoa_message.verify(&signature, &opts).await,
        Err(VerificationError::Erc1271Rejected { .. })
    ));

    // The message's chain selects the endpoint: none for chain 1 here.
    let mainnet = Message::builder("example.com", wallet_address, "https://example.com", 1)
        .build()
        .unwrap();
    let sig = eip191::sign_message(&owner, mainnet.to_string().as_bytes());
    assert!(matches!(
        mainnet.verify(&sig, &opts).await,
        Err(VerificationError::Rpc(_))
    ));

    // The endpoint goes away: an RPC error, not an invalid signature.
    drop(devnet);
    match message.verify(&signature, &opts).await {
        Err(VerificationError::Rpc(e)) => {
            assert!(e.to_string().contains("isValidSignature"), "{e}")
        }
        other => panic!("expected an RPC error, got {other:?}"),
    }
}
