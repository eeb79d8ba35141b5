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

/// A JSON-RPC endpoint that answers `eth_chainId` and refuses everything else with
/// `code`/`message` (a rate limit, an unknown block...). Serves `requests` requests.
fn refusing_endpoint(code: i64, message: &'static str, requests: usize) -> String {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming().take(requests) {
            let Ok(mut stream) = stream else { return };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut length = 0usize;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 {
                    break;
                }
                let lower = line.to_ascii_lowercase();
                if let Some(v) = lower.strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
                if line == "\r\n" {
                    break;
                }
            }
            let mut body = vec![0u8; length];
            if reader.read_exact(&mut body).is_err() {
                continue;
            }
            let request: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
            let id = request["id"].clone();
            let reply = if request["method"] == "eth_chainId" {
                serde_json::json!({"jsonrpc": "2.0", "id": id, "result": "0x7a69"})
            } else {
                serde_json::json!({"jsonrpc": "2.0", "id": id,
                    "error": {"code": code, "message": message}})
            };
            let text = reply.to_string();
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{text}",
                text.len()
            );
        }
    });
    url
}

/// JSON-RPC errors that are not reverts (rate limits, unknown blocks, internal errors) are
/// failures to ask, never "invalid signature": the caller can retry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rpc_error_responses_are_not_verdicts() {
    let owner = SigningKey::from_slice(&[0x11; 32]).unwrap();
    let wallet = eth_mls_siwe::Address::repeat_byte(0x42);
    let message = Message::builder("example.com", wallet, "https://example.com", 31337)
        .build()
        .unwrap();
    let signature = eip191::sign_message(&owner, message.to_string().as_bytes());
    for (code, text) in [
        (-32005, "rate limit exceeded"),
        (-32000, "header not found"),
        (-32603, "internal error"),
        (429, "Too Many Requests"),
    ] {
        let url = refusing_endpoint(code, text, 8);
        let chain = eth_mls_chain::Chain::connect(&url, None).await.unwrap();
        for verifier in [
            RpcErc1271Verifier::new().with_chain(&chain),
            RpcErc1271Verifier::new().with_chain(&chain).at_block(5),
        ] {
            let opts = VerificationOpts {
                erc1271: Some(&verifier),
                ..Default::default()
            };
            match message.verify(&signature, &opts).await {
                Err(VerificationError::Rpc(_)) => {}
                other => panic!("{code} {text}: expected an RPC error, got {other:?}"),
            }
        }
    }
}

/// Pinned to a block, the check sees the chain as it was then: before the wallet existed its
/// address had no code (invalid); from its deployment block on, the owner's signature holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erc1271_at_a_block() {
    use alloy::providers::Provider;
    let devnet = Devnet::start().unwrap();
    let chain = devnet.chain(0).await.unwrap();
    let before = chain.provider().get_block_number().await.unwrap();
    let owner = SigningKey::from_slice(&[0x11; 32]).unwrap();
    let wallet = chain
        .deploy_contract(MockErc1271Wallet::deploy_builder(
            chain.provider(),
            eip191::address_of(owner.verifying_key()),
        ))
        .await
        .unwrap();
    let deployed = chain.provider().get_block_number().await.unwrap();
    let message = Message::builder(
        "example.com",
        wallet,
        "https://example.com",
        devnet.chain_id(),
    )
    .build()
    .unwrap();
    let signature = eip191::sign_message(&owner, message.to_string().as_bytes());
    let at = |block| RpcErc1271Verifier::new().with_chain(&chain).at_block(block);
    let verify = |v: RpcErc1271Verifier| {
        let message = message.clone();
        async move {
            let opts = VerificationOpts {
                erc1271: Some(&v),
                ..Default::default()
            };
            message.verify(&signature, &opts).await.map(|_| ())
        }
    };
    assert!(matches!(
        verify(at(before)).await,
        Err(VerificationError::Erc1271Rejected { .. })
    ));
    verify(at(deployed)).await.unwrap();
    verify(RpcErc1271Verifier::new().with_chain(&chain))
        .await
        .unwrap();
    assert_eq!(at(7).block(), Some(7));
}
