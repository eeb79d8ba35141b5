//! Event streams and concurrency on a real anvil: 500 events consumed while the stream is
//! interrupted (resumed from its saved cursor) and while its RPC connection is cut and
//! restored (a TCP proxy stopped and restarted), with nothing lost or repeated; 100
//! concurrent transactions from one signer; the same logs read through the fault harness
//! (a provider capping ranges and results, rate limiting, hanging) and a transaction whose
//! answer was lost sent exactly once; over WebSocket, streams woken by the node, through a
//! cut socket and a notification flood.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use alloy::primitives::{Address, B256, keccak256};
use eth_mls_chain::{Chain, Cursor, Deployment, Devnet, KeyAlgorithm, StreamConfig};
use futures_util::{StreamExt, future::join_all};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// A TCP proxy on 127.0.0.1 that can be cut (every connection dropped, the port closed)
/// and restored on the same port.
struct Proxy {
    port: u16,
    target: SocketAddr,
    tasks: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl Proxy {
    async fn start(target: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let proxy = Proxy {
            port,
            target,
            tasks: Arc::default(),
        };
        proxy.serve(listener);
        proxy
    }

    fn serve(&self, listener: TcpListener) {
        let (target, tasks) = (self.target, self.tasks.clone());
        let accept = tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    return;
                };
                let conn = tokio::spawn(async move {
                    if let Ok(mut upstream) = TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                    }
                });
                tasks.lock().unwrap().push(conn);
            }
        });
        self.tasks.lock().unwrap().push(accept);
    }

    fn cut(&self) {
        for t in self.tasks.lock().unwrap().drain(..) {
            t.abort();
        }
    }

    async fn restore(&self) {
        let listener = loop {
            match TcpListener::bind(("127.0.0.1", self.port)).await {
                Ok(l) => break l,
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        };
        self.serve(listener);
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

fn fast() -> StreamConfig {
    StreamConfig {
        poll_interval: Duration::from_millis(50),
        initial_backoff: Duration::from_millis(50),
        max_backoff: Duration::from_millis(400),
        max_block_range: 50,
        ..StreamConfig::default()
    }
}

/// A devnet with the contracts, alice's client, and bob with a registered X448 key.
async fn setup() -> (Devnet, Deployment, Chain, Address) {
    let devnet = Devnet::start().unwrap();
    let (d, bob) = registered(&devnet).await;
    let alice = devnet.chain(1).await.unwrap();
    (devnet, d, alice, bob)
}

/// The contracts on `devnet`, and bob (account 2) with a registered X448 key.
async fn registered(devnet: &Devnet) -> (Deployment, Address) {
    let d = devnet.deploy().await.unwrap();
    let bob = devnet.addresses()[2];
    devnet
        .chain(2)
        .await
        .unwrap()
        .erc7627(d.erc7627)
        .update_public_key(keccak256(b"x448"), &[9u8; 56], KeyAlgorithm::X448, 0)
        .await
        .unwrap();
    (d, bob)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_resumes_without_loss_or_duplicates() {
    let (devnet, d, alice, bob) = setup().await;

    // 500 messages, sent in waves of 25 concurrent transactions while the consumer works.
    let producer = tokio::spawn({
        let registry = alice.erc7627(d.erc7627);
        async move {
            for wave in 0..20u32 {
                let sends = (0..25u32).map(|i| {
                    let registry = registry.clone();
                    let n = wave * 25 + i;
                    async move {
                        registry
                            .send_message(bob, keccak256(b"x448"), B256::ZERO, &n.to_be_bytes())
                            .await
                            .unwrap()
                    }
                });
                join_all(sends).await;
            }
        }
    });

    let url: SocketAddr = devnet
        .rpc_url()
        .trim_start_matches("http://")
        .parse()
        .unwrap();
    let proxy = Proxy::start(url).await;
    let reader = Chain::connect(&proxy.url(), None).await.unwrap();
    let registry = reader.erc7627(d.erc7627);

    let mut seen: Vec<u32> = Vec::new();
    let mut positions: Vec<(u64, u64)> = Vec::new();
    let mut cursor = Cursor::at_block(d.block);
    let mut interruptions = 0;
    let mut cut_done = false;
    'outer: loop {
        let mut stream = Box::pin(registry.messages(None, Some(bob), cursor, fast()));
        while let Some(event) = stream.next().await {
            let event = event.unwrap();
            let n = u32::from_be_bytes(event.data.encryptedMessage[..4].try_into().unwrap());
            seen.push(n);
            positions.push((event.block, event.log_index));
            cursor = event.cursor;
            if seen.len() == 500 {
                break 'outer;
            }
            if seen.len() == 150 && interruptions == 0 {
                // Interruption: drop the stream, start again from the saved cursor.
                interruptions += 1;
                continue 'outer;
            }
            if seen.len() == 300 && !cut_done {
                // The RPC connection goes away for a second and comes back.
                cut_done = true;
                proxy.cut();
                let restore = tokio::spawn({
                    let p = Proxy {
                        port: proxy.port,
                        target: proxy.target,
                        tasks: proxy.tasks.clone(),
                    };
                    async move {
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        p.restore().await;
                    }
                });
                drop(restore);
                interruptions += 1;
            }
        }
    }
    producer.await.unwrap();
    assert_eq!(interruptions, 2);
    assert_eq!(seen.len(), 500, "every event delivered");
    let unique: BTreeSet<u32> = seen.iter().copied().collect();
    assert_eq!(unique.len(), 500, "no event delivered twice");
    assert_eq!(unique, (0..500).collect::<BTreeSet<u32>>());
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "chain order");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_concurrent_transactions_from_one_signer() {
    let (devnet, d, alice, bob) = setup().await;
    let registry = alice.erc7627(d.erc7627);
    let receipts = join_all((0..100u32).map(|n| {
        let r = registry.clone();
        async move {
            r.send_message(bob, keccak256(b"x448"), B256::ZERO, &n.to_be_bytes())
                .await
        }
    }))
    .await;
    let receipts: Vec<_> = receipts.into_iter().map(Result::unwrap).collect();
    assert!(receipts.iter().all(|r| r.status()));
    let hashes: BTreeSet<B256> = receipts.iter().map(|r| r.transaction_hash).collect();
    assert_eq!(hashes.len(), 100);
    // All 100 messages are on chain.
    let mut stream = Box::pin(registry.messages(
        Some(devnet.addresses()[1]),
        None,
        Cursor::at_block(d.block),
        fast(),
    ));
    let mut got = BTreeSet::new();
    while got.len() < 100 {
        let e = stream.next().await.unwrap().unwrap();
        got.insert(u32::from_be_bytes(
            e.data.encryptedMessage[..4].try_into().unwrap(),
        ));
    }
    assert_eq!(got, (0..100).collect());
}

/// Issue 30: a provider that caps `eth_getLogs` at 100 blocks and 20 results, answers 429 in
/// bursts and lets requests hang past the client's timeout still gives every log exactly once,
/// in order; the connection learns the range the provider accepts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_through_a_capped_rate_limiting_hanging_provider() {
    use eth_mls_chain::faults::{Burst, FaultConfig, FaultProxy};
    use eth_mls_chain::{RpcConfig, alloy::rpc::types::Filter};
    let (devnet, d, alice, bob) = setup().await;
    let registry = alice.erc7627(d.erc7627);
    // 60 messages in 60 blocks, 30 more in one block's worth of concurrent sends.
    for n in 0..60u32 {
        registry
            .send_message(bob, keccak256(b"x448"), B256::ZERO, &n.to_be_bytes())
            .await
            .unwrap();
    }
    join_all((60..90u32).map(|n| {
        let registry = registry.clone();
        async move {
            registry
                .send_message(bob, keccak256(b"x448"), B256::ZERO, &n.to_be_bytes())
                .await
                .unwrap()
        }
    }))
    .await;
    let head = alloy::providers::Provider::get_block_number(alice.provider())
        .await
        .unwrap();
    let filter = Filter::new().address(d.erc7627);
    let direct = alice.logs(&filter, 0, head).await.unwrap();
    assert!(direct.len() > 90, "{} logs", direct.len());

    let proxy = FaultProxy::start(
        &devnet.rpc_url(),
        FaultConfig {
            latency: Duration::from_millis(5),
            rate_limit: Some(Burst {
                every: 7,
                length: 2,
            }),
            hang: Some(Burst {
                every: 11,
                length: 1,
            }),
            hang_for: Duration::from_secs(2),
            max_log_range: Some(100),
            max_log_results: Some(20),
            ..FaultConfig::default()
        },
    )
    .await
    .unwrap();
    let config = RpcConfig {
        request_timeout: Duration::from_millis(500),
        initial_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(100),
        ..RpcConfig::default()
    };
    let reader = Chain::connect_with(&proxy.url(), None, &config)
        .await
        .unwrap();
    let through = reader.logs(&filter, 0, head).await.unwrap();
    let key = |l: &alloy::rpc::types::Log| (l.block_number, l.log_index, l.transaction_hash);
    assert_eq!(
        through.iter().map(key).collect::<Vec<_>>(),
        direct.iter().map(key).collect::<Vec<_>>()
    );
    let stats = proxy.stats();
    assert!(stats.logs_refused > 0, "{stats:?}");
    assert!(stats.rate_limited > 0 && stats.hung > 0, "{stats:?}");
    assert!(reader.log_range() <= 100, "{}", reader.log_range());

    // A send whose answer is lost after the node took it: retried, recognised, mined once.
    let sender = Chain::connect_with(&proxy.url(), devnet.signer(1), &config)
        .await
        .unwrap();
    proxy.set(FaultConfig::default());
    proxy.lose_answers("eth_sendRawTransaction", 1);
    let nonce = |c: &Chain| {
        let p = c.provider().clone();
        let a = devnet.addresses()[1];
        async move {
            alloy::providers::Provider::get_transaction_count(&p, a)
                .await
                .unwrap()
        }
    };
    let before = nonce(&alice).await;
    let receipt = sender
        .erc7627(d.erc7627)
        .send_message(bob, keccak256(b"x448"), B256::ZERO, b"once")
        .await
        .unwrap();
    assert!(receipt.status());
    assert_eq!(proxy.stats().answers_lost, 1);
    assert_eq!(nonce(&alice).await, before + 1, "sent exactly once");
}

/// Issue 30: transactions as a wallet sends them. With 1 s blocks, a provider that loses the
/// first transaction (answers with its hash, passes nothing on): it is replaced (same nonce,
/// fees up an eighth) and mined — exactly one — with progress told while it waits. A fee cap
/// below the base fee sends nothing and says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_transaction_is_replaced_and_a_fee_cap_sends_nothing() {
    use alloy::providers::Provider;
    use eth_mls_chain::faults::{FaultConfig, FaultProxy};
    use eth_mls_chain::{Error, Progress, RpcConfig};
    use std::sync::atomic::{AtomicU32, Ordering};
    let devnet = Devnet::start_with(&["--block-time", "1"]).unwrap();
    let (d, bob) = registered(&devnet).await;
    let me = devnet.addresses()[1];
    let proxy = FaultProxy::start(&devnet.rpc_url(), FaultConfig::default())
        .await
        .unwrap();
    let config = RpcConfig {
        replace_after: Duration::from_millis(2500),
        ..RpcConfig::default()
    };
    let chain = Chain::connect_with(&proxy.url(), devnet.signer(1), &config)
        .await
        .unwrap();
    let told = Arc::new(AtomicU32::new(0));
    let t = told.clone();
    chain.on_progress(move |p: &Progress| {
        assert_eq!(p.replacements, 0, "told before the replacement");
        t.fetch_add(1, Ordering::SeqCst);
    });
    let provider = devnet.chain(0).await.unwrap().provider().clone();
    let before = provider.get_transaction_count(me).await.unwrap();
    proxy.swallow_transactions(1);
    let receipt = chain
        .erc7627(d.erc7627)
        .send_message(bob, keccak256(b"x448"), B256::ZERO, b"stuck")
        .await
        .unwrap();
    assert!(receipt.status());
    assert!(told.load(Ordering::SeqCst) >= 1, "waited without a word");
    let stats = proxy.stats();
    assert_eq!(stats.calls("eth_sendRawTransaction"), 2, "{stats:?}");
    assert_eq!(stats.answered("eth_sendRawTransaction"), 1, "{stats:?}");
    assert_eq!(
        provider.get_transaction_count(me).await.unwrap(),
        before + 1,
        "exactly one mined"
    );

    // A cap below the base fee: refused before anything is sent.
    let capped = Chain::connect_with(
        &devnet.rpc_url(),
        devnet.signer(1),
        &RpcConfig {
            max_fee_per_gas: Some(1),
            ..RpcConfig::default()
        },
    )
    .await
    .unwrap();
    let nonce = provider.get_transaction_count(me).await.unwrap();
    let refused = capped
        .erc7627(d.erc7627)
        .send_message(bob, keccak256(b"x448"), B256::ZERO, b"too dear")
        .await;
    assert!(
        matches!(refused, Err(Error::FeeAboveCap { cap: 1, .. })),
        "{refused:?}"
    );
    assert_eq!(provider.get_transaction_count(me).await.unwrap(), nonce);
}

/// A slot saved before a restart: while its transaction waits in the pool, the new process
/// gets the same nonce back with higher fees and its send replaces the pooled one (one
/// mined); once mined, the saved slot gives way to a new one. Another transaction sent
/// meanwhile never takes the pooled nonce.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saved_slot_is_resumed_in_place_after_a_restart() {
    use alloy::providers::Provider;
    use eth_mls_chain::TxSlot;
    let devnet = Devnet::start().unwrap();
    let (d, bob) = registered(&devnet).await;
    let me = devnet.addresses()[1];
    let provider = devnet.chain(0).await.unwrap().provider().clone();
    let mine = |on: bool| {
        let p = provider.clone();
        async move {
            let _: serde_json::Value = p
                .raw_request("evm_setAutomine".into(), (on,))
                .await
                .unwrap();
        }
    };
    let before = provider.get_transaction_count(me).await.unwrap();
    mine(false).await;

    // The first process: a slot, a send into the pool, then it dies waiting.
    let first = devnet.chain(1).await.unwrap();
    let slot = first.slot(None).await.unwrap();
    assert_eq!(slot.nonce, before);
    let registry = first.in_slot(slot).erc7627(d.erc7627);
    let send = registry.send_message(bob, keccak256(b"x448"), B256::ZERO, b"one");
    assert!(
        tokio::time::timeout(Duration::from_millis(500), send)
            .await
            .is_err()
    );
    drop(first);
    let saved = TxSlot::saved(
        slot.nonce,
        slot.max_fee_per_gas,
        slot.max_priority_fee_per_gas,
    );

    // The second process resumes it: same nonce, both fees higher.
    let second = devnet.chain(1).await.unwrap();
    let resumed = second.slot(Some(saved)).await.unwrap();
    assert_eq!(resumed.nonce, slot.nonce);
    assert!(resumed.max_fee_per_gas > slot.max_fee_per_gas);
    assert!(resumed.max_priority_fee_per_gas > slot.max_priority_fee_per_gas);
    // Another transaction now goes after it, not into it.
    assert_eq!(second.slot(None).await.unwrap().nonce, before + 1);
    second.reset_nonce().await;
    let registry = second.in_slot(resumed).erc7627(d.erc7627);
    let task = tokio::spawn(async move {
        registry
            .send_message(bob, keccak256(b"x448"), B256::ZERO, b"one")
            .await
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let pool: serde_json::Value = provider
        .raw_request("txpool_status".into(), ())
        .await
        .unwrap();
    assert_eq!(pool["pending"], "0x1", "replaced in the pool, not added");
    mine(true).await;
    let _: serde_json::Value = provider.raw_request("evm_mine".into(), ()).await.unwrap();
    let receipt = task.await.unwrap().unwrap();
    assert!(receipt.status());
    assert_eq!(
        provider.get_transaction_count(me).await.unwrap(),
        before + 1,
        "one transaction mined for the operation"
    );

    // Mined: the saved slot gives way to the next nonce; sending in the old one is refused.
    let third = devnet.chain(1).await.unwrap();
    assert_eq!(third.slot(Some(saved)).await.unwrap().nonce, before + 1);
    assert!(matches!(
        third
            .in_slot(saved)
            .erc7627(d.erc7627)
            .send_message(bob, keccak256(b"x448"), B256::ZERO, b"again")
            .await,
        Err(eth_mls_chain::Error::NonceUsed { nonce }) if nonce == before
    ));
}

/// A reorg drops a mined transaction of this connection (anvil puts nothing back in the
/// pool): the next transaction takes the freed nonce and is mined. Before, the connection's
/// counter still pointed past the dropped one: a nonce gap, never mined (the send waited ten
/// minutes for its receipt).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_after_a_reorg_dropped_the_previous_one_is_mined() {
    use alloy::providers::Provider;
    let devnet = Devnet::start().unwrap();
    let (d, bob) = registered(&devnet).await;
    let me = devnet.addresses()[1];
    let provider = devnet.chain(0).await.unwrap().provider().clone();
    let chain = devnet.chain(1).await.unwrap();
    let registry = chain.erc7627(d.erc7627);
    let before = provider.get_transaction_count(me).await.unwrap();
    registry
        .send_message(bob, keccak256(b"x448"), B256::ZERO, b"dropped")
        .await
        .unwrap();
    let _: serde_json::Value = provider
        .raw_request("anvil_rollback".into(), (1,))
        .await
        .unwrap();
    assert_eq!(provider.get_transaction_count(me).await.unwrap(), before);
    let next = tokio::time::timeout(
        Duration::from_secs(20),
        registry.send_message(bob, keccak256(b"x448"), B256::ZERO, b"after"),
    )
    .await
    .expect("mined, not stuck behind a nonce gap")
    .unwrap();
    assert!(next.status());
    assert_eq!(
        provider.get_transaction_count(me).await.unwrap(),
        before + 1
    );
}

/// Bob's messages from the next block on, streamed over the devnet's WebSocket endpoint
/// through the fault harness's WebSocket proxy, polling every 100 ms when not subscribed and
/// reading every ten minutes at the least when subscribed (so only the node's notifications
/// wake it in a test).
#[cfg(feature = "ws")]
async fn pushed_stream(
    devnet: &Devnet,
    d: Deployment,
    bob: Address,
    confirmations: u64,
) -> (
    eth_mls_chain::faults::WsFaultProxy,
    futures_util::stream::BoxStream<
        'static,
        Result<eth_mls_chain::Event<eth_mls_chain::MessageSent>, eth_mls_chain::Error>,
    >,
) {
    use alloy::providers::Provider;
    let proxy = eth_mls_chain::faults::WsFaultProxy::start(&devnet.ws_url())
        .await
        .unwrap();
    let reader = Chain::connect(&proxy.url(), None).await.unwrap();
    assert!(reader.is_pubsub());
    let config = StreamConfig {
        poll_interval: Duration::from_millis(100),
        pushed_poll_interval: Duration::from_secs(600),
        confirmations,
        ..fast()
    };
    let head = reader.provider().get_block_number().await.unwrap();
    let stream =
        reader
            .erc7627(d.erc7627)
            .messages(None, Some(bob), Cursor::at_block(head + 1), config);
    (proxy, stream.boxed())
}

/// Over a WebSocket endpoint a caught-up stream is woken by `eth_subscribe`, not by polling
/// (its fallback read every ten minutes; it asks the node a handful of times in the seconds
/// it waits, where polling every 100 ms would ask dozens): a message with one confirmation
/// arrives once the block on top of it is mined, not before.
#[cfg(feature = "ws")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_over_websocket_is_woken_by_the_node_not_by_polling() {
    use alloy::providers::Provider;
    use std::sync::atomic::{AtomicBool, Ordering};
    let (devnet, d, alice, bob) = setup().await;
    assert!(!alice.is_pubsub(), "HTTP polls");
    let (proxy, mut stream) = pushed_stream(&devnet, d, bob, 1).await;
    let confirmed = Arc::new(AtomicBool::new(false));
    let writer = tokio::spawn({
        let (registry, confirmed) = (alice.erc7627(d.erc7627), confirmed.clone());
        async move {
            // The stream has caught up and subscribed by then.
            tokio::time::sleep(Duration::from_secs(1)).await;
            registry
                .send_message(bob, keccak256(b"x448"), B256::ZERO, b"pushed")
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_secs(2)).await;
            confirmed.store(true, Ordering::SeqCst);
            let _: serde_json::Value = alice
                .provider()
                .raw_request("evm_mine".into(), ())
                .await
                .unwrap();
        }
    });
    let event = tokio::time::timeout(Duration::from_secs(60), stream.next())
        .await
        .expect("woken by the node, not after the ten-minute poll interval")
        .unwrap()
        .unwrap();
    assert_eq!(&event.data.encryptedMessage[..], b"pushed");
    assert!(
        confirmed.load(Ordering::SeqCst),
        "delivered only with its confirmation on top"
    );
    let asked = proxy.calls("eth_blockNumber");
    assert!(
        asked <= 10,
        "{asked} head reads in ~3 s: woken, not polling"
    );
    writer.await.unwrap();
}

/// A slot given back unused leaves no nonce gap: the next transaction takes its nonce and is
/// mined (without `abandon` it waited behind the gap until its receipt timeout).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abandoned_slot_leaves_no_nonce_gap() {
    use alloy::providers::Provider;
    let (devnet, d, alice, bob) = setup().await;
    let me = devnet.addresses()[1];
    let before = alice.provider().get_transaction_count(me).await.unwrap();
    let slot = alice.slot(None).await.unwrap();
    assert_eq!(slot.nonce, before);
    alice.abandon(slot).await;
    let receipt = tokio::time::timeout(
        Duration::from_secs(20),
        alice.erc7627(d.erc7627).send_message(
            bob,
            keccak256(b"x448"),
            B256::ZERO,
            b"after a slot given back",
        ),
    )
    .await
    .expect("mined, not held behind the abandoned nonce")
    .unwrap();
    assert!(receipt.status());
    assert_eq!(
        alice.provider().get_transaction_count(me).await.unwrap(),
        before + 1
    );
}

/// A stream over a WebSocket endpoint (through the fault harness's WebSocket proxy; polling
/// every ten minutes, so only the node's notifications wake it): a message after the socket
/// was cut still arrives (the connection and its subscriptions come back), and when the
/// endpoint repeats every notification every 2 ms the stream reads at most once per poll
/// interval (before the floor: once per notification). Each message arrives once.
#[cfg(feature = "ws")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_stream_survives_a_cut_socket_and_a_notification_flood() {
    let (devnet, d, alice, bob) = setup().await;
    let (proxy, mut stream) = pushed_stream(&devnet, d, bob, 0).await;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let reading = tokio::spawn(async move {
        while let Some(e) = stream.next().await {
            let _ = tx.send(e.unwrap().data.encryptedMessage.to_vec());
        }
    });
    let registry = alice.erc7627(d.erc7627);
    let mut next = async |text: &[u8]| {
        registry
            .send_message(bob, keccak256(b"x448"), B256::ZERO, text)
            .await
            .unwrap();
        let got = tokio::time::timeout(Duration::from_secs(30), rx.recv())
            .await
            .expect("woken by the node")
            .unwrap();
        assert_eq!(got, text);
    };
    // Caught up and subscribed.
    tokio::time::sleep(Duration::from_secs(1)).await;
    next(b"before the cut").await;
    proxy.cut();
    tokio::time::sleep(Duration::from_millis(500)).await;
    next(b"after the cut").await;
    proxy.flood(Some(Duration::from_millis(2)));
    next(b"flooded").await;
    let (notes, reads) = (proxy.notifications(), proxy.calls("eth_blockNumber"));
    let start = std::time::Instant::now();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let elapsed = start.elapsed().as_millis() as u64;
    let (notes, reads) = (
        proxy.notifications() - notes,
        proxy.calls("eth_blockNumber") - reads,
    );
    assert!(notes > 100, "the endpoint flooded ({notes} notifications)");
    assert!(
        reads <= elapsed / 100 + 2,
        "{reads} reads in {elapsed} ms under {notes} notifications: one per poll interval at most"
    );
    reading.abort();
    assert!(rx.try_recv().is_err(), "each message once");
}
