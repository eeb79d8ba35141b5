//! Delivery over two services at once: a fast one (gossip) and a durable one (the chain
//! channel). Every frame is published to both; subscribers get each frame once, from
//! whichever service brings it first; history and cursors are the durable service's, so a
//! client that resumes from a saved cursor misses nothing the durable service holds.

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex};

use futures_util::StreamExt;

use crate::{
    Cursor, DeliveryService, Envelope, Error, HistoryBatch, MessageId, Subscription, Topic,
};

/// How many recent frame ids a subscription remembers to drop the second copy of a frame.
const SEEN: usize = 4096;

/// Fast delivery `F` with a durable copy through `D`: publish goes to both (it succeeds when
/// either took the frame), subscriptions merge both without duplicates, history and cursors
/// come from `D`.
///
/// The cursor of a frame that came through `F` first is the last cursor of `D` seen on that
/// subscription (its position is not known yet), so resuming from a saved cursor reads again
/// from the durable history what may not have been saved; those repeats are the same bytes
/// (eth-mls-core recognises a frame processed before).
#[derive(Debug, Clone)]
pub struct Redundant<F, D> {
    fast: F,
    durable: D,
}

impl<F, D> Redundant<F, D> {
    /// Both services; `durable` holds the history.
    pub fn new(fast: F, durable: D) -> Self {
        Redundant { fast, durable }
    }

    /// The fast service.
    pub fn fast(&self) -> &F {
        &self.fast
    }

    /// The durable service.
    pub fn durable(&self) -> &D {
        &self.durable
    }
}

/// One subscription's memory: the ids seen recently and the last durable cursor.
struct Merge {
    seen: HashSet<MessageId>,
    order: VecDeque<MessageId>,
    last_durable: Cursor,
}

impl Merge {
    fn new(since: Cursor) -> Self {
        Merge {
            seen: HashSet::new(),
            order: VecDeque::new(),
            last_durable: before(since),
        }
    }

    /// Whether `id` is new (and remembers it).
    fn first(&mut self, id: MessageId) -> bool {
        if !self.seen.insert(id) {
            return false;
        }
        self.order.push_back(id);
        if self.order.len() > SEEN
            && let Some(old) = self.order.pop_front()
        {
            self.seen.remove(&old);
        }
        true
    }

    /// The envelope to hand out, if it is the first copy.
    fn take(&mut self, mut envelope: Envelope, durable: bool) -> Option<Envelope> {
        if durable {
            self.last_durable = self.last_durable.max(envelope.cursor);
        }
        if !self.first(envelope.id) {
            return None;
        }
        if !durable {
            envelope.cursor = self.last_durable;
        }
        Some(envelope)
    }
}

/// The cursor whose [`Cursor::next`] is `since` (or `since` itself at the very start).
fn before(since: Cursor) -> Cursor {
    if since.index > 0 {
        Cursor {
            at: since.at,
            index: since.index - 1,
        }
    } else if since.at > 0 {
        Cursor {
            at: since.at - 1,
            index: u64::MAX,
        }
    } else {
        since
    }
}

fn merged(fast: Subscription, durable: Subscription, since: Cursor) -> Subscription {
    let state = Arc::new(Mutex::new(Merge::new(since)));
    let stream = futures_util::stream::select(fast.map(|e| (e, false)), durable.map(|e| (e, true)))
        .filter_map(move |(e, durable)| {
            let out = state.lock().map(|mut s| s.take(e, durable)).unwrap_or(None);
            std::future::ready(out)
        });
    Subscription::new(stream)
}

#[async_trait::async_trait]
impl<F: DeliveryService, D: DeliveryService> DeliveryService for Redundant<F, D> {
    /// Publishes to both at once; the frame's id when either took it, else the durable
    /// service's error.
    async fn publish(&self, topic: &Topic, bytes: Vec<u8>) -> Result<MessageId, Error> {
        let (fast, durable) = tokio::join!(
            self.fast.publish(topic, bytes.clone()),
            self.durable.publish(topic, bytes)
        );
        match (fast, durable) {
            (_, Ok(id)) | (Ok(id), Err(_)) => Ok(id),
            (Err(_), Err(e)) => Err(e),
        }
    }

    async fn subscribe(&self, topic: &Topic) -> Result<Subscription, Error> {
        let fast = self.fast.subscribe(topic).await?;
        let durable = self.durable.subscribe(topic).await?;
        Ok(merged(fast, durable, Cursor::START))
    }

    /// The durable service's history.
    async fn history(
        &self,
        topic: &Topic,
        since: Cursor,
        limit: u32,
    ) -> Result<HistoryBatch, Error> {
        self.durable.history(topic, since, limit).await
    }

    async fn subscribe_since(&self, topic: &Topic, since: Cursor) -> Result<Subscription, Error> {
        let fast = self.fast.subscribe(topic).await?;
        let durable = self.durable.subscribe_since(topic, since).await?;
        Ok(merged(fast, durable, since))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Faults, MemoryNetwork, Origin};

    fn envelope(bytes: &[u8], cursor: Cursor) -> Envelope {
        Envelope {
            topic: Topic::Inbox {
                chain_id: 1,
                account: [1; 20],
            },
            bytes: bytes.to_vec(),
            id: MessageId::of(bytes),
            origin: Origin::Peer("test".into()),
            received_at: 0,
            cursor,
        }
    }

    #[test]
    fn second_copies_are_dropped_and_fast_frames_carry_the_last_durable_cursor() {
        let since = Cursor { at: 10, index: 0 };
        let mut m = Merge::new(since);
        // A fast frame first: resuming from its cursor's next reads from `since` again.
        let a = m
            .take(envelope(b"a", Cursor { at: 99, index: 5 }), false)
            .unwrap();
        assert_eq!(a.cursor.next(), since);
        // Its durable copy is dropped but moves the cursor.
        assert!(
            m.take(envelope(b"a", Cursor { at: 12, index: 3 }), true)
                .is_none()
        );
        let b = m
            .take(envelope(b"b", Cursor { at: 1, index: 1 }), false)
            .unwrap();
        assert_eq!(b.cursor, Cursor { at: 12, index: 3 });
        // A durable frame first keeps its own cursor; its fast copy is dropped.
        let c = m
            .take(envelope(b"c", Cursor { at: 13, index: 0 }), true)
            .unwrap();
        assert_eq!(c.cursor, Cursor { at: 13, index: 0 });
        assert!(m.take(envelope(b"c", Cursor::START), false).is_none());
    }

    #[test]
    fn the_seen_set_is_bounded() {
        let mut m = Merge::new(Cursor::START);
        for i in 0..(SEEN as u32 + 10) {
            assert!(m.first(MessageId::of(&i.to_be_bytes())));
        }
        assert_eq!(m.seen.len(), SEEN);
        assert_eq!(m.order.len(), SEEN);
        // The oldest were forgotten, the newest are remembered.
        assert!(m.first(MessageId::of(&0u32.to_be_bytes())));
        assert!(!m.first(MessageId::of(&(SEEN as u32 + 9).to_be_bytes())));
    }

    #[test]
    fn before_is_the_inverse_of_next() {
        for c in [
            Cursor { at: 5, index: 3 },
            Cursor { at: 5, index: 0 },
            Cursor { at: 1, index: 0 },
        ] {
            assert_eq!(before(c).next(), c);
        }
        assert_eq!(before(Cursor::START), Cursor::START);
    }

    /// Everything published arrives exactly once when the fast network loses all of it, and
    /// when neither loses anything; history is the durable network's.
    #[tokio::test]
    async fn frames_arrive_once_through_either_service() {
        for fast_faults in [
            Faults::NONE,
            Faults {
                drop: 1.0,
                ..Faults::NONE
            },
        ] {
            let fast = MemoryNetwork::new(1, fast_faults);
            let durable = MemoryNetwork::new(2, Faults::NONE);
            let alice = Redundant::new(fast.add_node("a"), durable.add_node("a"));
            let bob = Redundant::new(fast.add_node("b"), durable.add_node("b"));
            let topic = Topic::Inbox {
                chain_id: 1,
                account: [2; 20],
            };
            let mut sub = bob.subscribe_since(&topic, Cursor::START).await.unwrap();
            for i in 0..20u8 {
                alice.publish(&topic, vec![i; 40]).await.unwrap();
            }
            fast.run_until_idle();
            durable.run_until_idle();
            let mut got = Vec::new();
            while let Some(Some(e)) = futures_util::FutureExt::now_or_never(sub.next()) {
                got.push(e.bytes[0]);
            }
            got.sort();
            assert_eq!(got, (0..20).collect::<Vec<_>>(), "{fast_faults:?}");
            let history = bob.history(&topic, Cursor::START, 100).await.unwrap();
            assert_eq!(history.envelopes.len(), 20);
        }
    }

    #[tokio::test]
    async fn publish_fails_only_when_both_fail() {
        let fast = MemoryNetwork::new(1, Faults::NONE);
        let durable = MemoryNetwork::new(2, Faults::NONE);
        let node = Redundant::new(fast.add_node("a"), durable.add_node("a"));
        let topic = Topic::Inbox {
            chain_id: 1,
            account: [2; 20],
        };
        fast.stop(0);
        assert!(node.publish(&topic, vec![1; 40]).await.is_ok());
        durable.stop(0);
        assert!(node.publish(&topic, vec![2; 40]).await.is_err());
    }
}
