//! The in-memory network: determinism from the seed, and each fault's effect.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use eth_mls_transport::{
    Cursor, DeliveryService, Error, Faults, MemoryNetwork, MemoryNode, MessageId, Outcome,
    Subscription, Topic, TraceEvent, sample_private_message,
};
use futures_util::{FutureExt, StreamExt};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const GROUP_ID: &[u8] = b"memory group";

fn app() -> Topic {
    Topic::App {
        chain_id: 1,
        group: [3; 20],
    }
}

fn frame(i: u64) -> Vec<u8> {
    sample_private_message(GROUP_ID, 0, &i.to_be_bytes())
}

/// Everything a subscription has ready now.
fn drain(sub: &mut Subscription) -> Vec<eth_mls_transport::Envelope> {
    let mut out = Vec::new();
    while let Some(Some(e)) = tokio::task::unconstrained(sub.next()).now_or_never() {
        out.push(e);
    }
    out
}

async fn network(
    seed: u64,
    faults: Faults,
    n: usize,
) -> (MemoryNetwork, Vec<MemoryNode>, Vec<Subscription>) {
    let net = MemoryNetwork::new(seed, faults);
    let nodes: Vec<MemoryNode> = (0..n).map(|i| net.add_node(&format!("node{i}"))).collect();
    let mut subs = Vec::new();
    for node in &nodes {
        subs.push(node.subscribe(&app()).await.unwrap());
    }
    (net, nodes, subs)
}

const FAULTY: Faults = Faults {
    drop: 0.2,
    duplicate: 0.2,
    min_delay: Duration::from_millis(5),
    max_delay: Duration::from_millis(50),
    reorder_window: Duration::from_millis(30),
};

async fn scenario(seed: u64) -> Vec<TraceEvent> {
    let (net, nodes, _subs) = network(seed, FAULTY, 5).await;
    let mut ops = ChaCha8Rng::seed_from_u64(7);
    for i in 0..100 {
        let from = ops.random_range(0..nodes.len());
        nodes[from].publish(&app(), frame(i)).await.unwrap();
        if i == 40 {
            net.partition(&[&[0, 1], &[2, 3, 4]]);
        }
        if i == 70 {
            net.heal();
        }
        net.advance(Duration::from_millis(ops.random_range(0..20)));
    }
    net.run_until_idle();
    net.trace()
}

#[tokio::test]
async fn the_same_seed_gives_the_same_trace() {
    let a = scenario(42).await;
    let b = scenario(42).await;
    let c = scenario(43).await;
    assert!(a.len() > 400);
    assert_eq!(a, b, "same seed, same operations: same trace");
    assert_ne!(a, c, "another seed: another trace");
    let outcomes: HashSet<Outcome> = a.iter().map(|e| e.outcome).collect();
    for o in [
        Outcome::Delivered,
        Outcome::Dropped,
        Outcome::Duplicate,
        Outcome::Partitioned,
    ] {
        assert!(outcomes.contains(&o), "{o:?} never happened");
    }
}

fn count(trace: &[TraceEvent], outcome: Outcome) -> usize {
    trace.iter().filter(|e| e.outcome == outcome).count()
}

#[tokio::test]
async fn drops_and_duplicates_happen_at_their_rates_and_subscribers_see_each_frame_once() {
    let faults = Faults {
        drop: 0.25,
        duplicate: 0.3,
        ..Faults::NONE
    };
    let (net, nodes, mut subs) = network(1, faults, 5).await;
    for i in 0..500 {
        nodes[(i % 5) as usize]
            .publish(&app(), frame(i))
            .await
            .unwrap();
    }
    net.run_until_idle();
    let trace = net.trace();
    let pairs = 500 * 4;
    let dropped_pairs: HashSet<(MessageId, usize)> = trace
        .iter()
        .filter(|e| e.outcome == Outcome::Dropped)
        .map(|e| (e.id, e.to))
        .collect();
    let drop_rate = dropped_pairs.len() as f64 / pairs as f64;
    let duplicates = count(&trace, Outcome::Duplicate);
    let delivered = count(&trace, Outcome::Delivered);
    eprintln!(
        "drop rate {drop_rate:.3}, {duplicates} duplicates, {delivered} delivered of {pairs}"
    );
    assert!((0.21..0.29).contains(&drop_rate), "drop rate {drop_rate}");
    assert_eq!(
        delivered,
        pairs - dropped_pairs.len(),
        "every copy not dropped arrives"
    );
    let dup_rate = duplicates as f64 / delivered as f64;
    assert!(
        (0.25..0.35).contains(&dup_rate),
        "duplicate rate {dup_rate}"
    );
    for (i, sub) in subs.iter_mut().enumerate() {
        let got = drain(sub);
        let ids: HashSet<MessageId> = got.iter().map(|e| e.id).collect();
        assert_eq!(ids.len(), got.len(), "node {i} got a frame twice");
        let want = trace
            .iter()
            .filter(|e| e.to == i && e.outcome == Outcome::Delivered)
            .count();
        assert_eq!(got.len(), want);
    }
}

#[tokio::test]
async fn delays_stay_in_bounds_and_the_reorder_window_reorders() {
    // Without a reorder window and with a fixed delay, order is kept.
    let fixed = Faults {
        min_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(10),
        ..Faults::NONE
    };
    let (net, nodes, mut subs) = network(5, fixed, 2).await;
    for i in 0..50 {
        nodes[0].publish(&app(), frame(i)).await.unwrap();
        net.advance(Duration::from_millis(1));
    }
    net.run_until_idle();
    let got: Vec<Vec<u8>> = drain(&mut subs[1]).into_iter().map(|e| e.bytes).collect();
    assert_eq!(got, (0..50).map(frame).collect::<Vec<_>>());

    let jittery = Faults {
        min_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(20),
        reorder_window: Duration::from_millis(40),
        ..Faults::NONE
    };
    let (net, nodes, mut subs) = network(5, jittery, 2).await;
    let mut sent_at = HashMap::new();
    for i in 0..200 {
        let id = nodes[0].publish(&app(), frame(i)).await.unwrap();
        sent_at.insert(id, net.now_ms());
        net.advance(Duration::from_millis(1));
    }
    net.run_until_idle();
    for e in net.trace() {
        let delay = e.at - sent_at[&e.id];
        assert!((10..=60).contains(&delay), "delay {delay} ms out of bounds");
    }
    let got: Vec<Vec<u8>> = drain(&mut subs[1]).into_iter().map(|e| e.bytes).collect();
    assert_eq!(got.len(), 200);
    let inversions = got.windows(2).filter(|w| w[0] > w[1]).count();
    assert!(inversions > 20, "only {inversions} reorderings");
}

#[tokio::test]
async fn partitions_split_and_heal_and_history_fills_the_gap() {
    let (net, nodes, mut subs) = network(9, Faults::NONE, 4).await;
    net.partition(&[&[0, 1], &[2, 3]]);
    let during = nodes[0].publish(&app(), frame(1)).await.unwrap();
    net.run_until_idle();
    assert_eq!(drain(&mut subs[1]).len(), 1);
    assert!(drain(&mut subs[2]).is_empty());
    // History cannot cross the partition either.
    assert!(
        nodes[2]
            .history(&app(), Cursor::START, 10)
            .await
            .unwrap()
            .envelopes
            .is_empty()
    );
    net.heal();
    let after = nodes[0].publish(&app(), frame(2)).await.unwrap();
    net.run_until_idle();
    assert_eq!(
        drain(&mut subs[2]).iter().map(|e| e.id).collect::<Vec<_>>(),
        vec![after]
    );
    // A member that missed frames catches up from its peers' history.
    let mut caught_up = nodes[2]
        .subscribe_since(&app(), Cursor::START)
        .await
        .unwrap();
    let ids: Vec<MessageId> = drain(&mut caught_up).into_iter().map(|e| e.id).collect();
    assert_eq!(ids.len(), 2);
    assert!(ids.contains(&during) && ids.contains(&after));
}

#[tokio::test]
async fn a_restarted_node_loses_its_state_and_catches_up_through_history() {
    let (net, nodes, mut subs) = network(11, Faults::NONE, 3).await;
    nodes[0].publish(&app(), frame(1)).await.unwrap();
    net.run_until_idle();
    net.stop(2);
    // Its subscription ended; frames for it are lost; it cannot publish.
    assert_eq!(drain(&mut subs[2]).len(), 1);
    assert_eq!(subs[2].next().await, None);
    nodes[1].publish(&app(), frame(2)).await.unwrap();
    net.run_until_idle();
    assert_eq!(net.trace().last().unwrap().outcome, Outcome::Down);
    assert!(matches!(
        nodes[2].publish(&app(), frame(3)).await,
        Err(Error::Stopped)
    ));
    net.start(2);
    let mut sub = nodes[2]
        .subscribe_since(&app(), Cursor::START)
        .await
        .unwrap();
    assert_eq!(
        drain(&mut sub).len(),
        2,
        "both frames from the peers' history"
    );
    nodes[0].publish(&app(), frame(4)).await.unwrap();
    net.run_until_idle();
    assert_eq!(drain(&mut sub).len(), 1, "and live frames after");
}

#[tokio::test]
async fn bad_input_gets_typed_errors() {
    let (_net, nodes, _subs) = network(1, Faults::NONE, 2).await;
    assert!(matches!(
        nodes[0].publish(&app(), b"garbage".to_vec()).await,
        Err(Error::Invalid { .. })
    ));
    let big = sample_private_message(GROUP_ID, 0, &vec![0; 65 << 10]);
    assert!(matches!(
        nodes[0].publish(&app(), big).await,
        Err(Error::TooLarge { .. })
    ));
    assert!(matches!(
        nodes[0].history(&app(), Cursor::START, u32::MAX).await,
        Err(Error::HistoryLimit { .. })
    ));
    let unknown = Topic::Inbox {
        chain_id: 9,
        account: [9; 20],
    };
    assert!(
        nodes[0]
            .history(&unknown, Cursor::START, 10)
            .await
            .unwrap()
            .envelopes
            .is_empty()
    );
    // Republishing the same bytes is idempotent.
    let id = nodes[0].publish(&app(), frame(1)).await.unwrap();
    assert_eq!(nodes[0].publish(&app(), frame(1)).await.unwrap(), id);
}

/// History pages neither overlap nor leave gaps, whatever the page size.
#[tokio::test]
async fn history_pages_cover_everything_once() {
    let (net, nodes, _subs) = network(
        3,
        Faults {
            drop: 0.3,
            ..Faults::NONE
        },
        4,
    )
    .await;
    let mut all = HashSet::new();
    for i in 0..120 {
        all.insert(
            nodes[(i % 4) as usize]
                .publish(&app(), frame(i))
                .await
                .unwrap(),
        );
        net.advance(Duration::from_millis(1));
    }
    net.run_until_idle();
    for limit in [1, 7, 50, 512] {
        let mut seen = Vec::new();
        let mut cursor = Cursor::START;
        loop {
            let page = nodes[0].history(&app(), cursor, limit).await.unwrap();
            seen.extend(page.envelopes.iter().map(|e| e.id));
            match page.next {
                Some(next) => {
                    assert!(
                        next > cursor,
                        "limit {limit}: next {next:?} after {cursor:?}, page {:?}",
                        page.envelopes.iter().map(|e| e.cursor).collect::<Vec<_>>()
                    );
                    cursor = next;
                }
                None => break,
            }
        }
        let set: HashSet<MessageId> = seen.iter().copied().collect();
        assert_eq!(set, all, "limit {limit}");
    }
}
