//! The bounded per-topic history every node keeps of what it saw (its own frames included):
//! it makes delivery exactly-once at the node (a frame whose id is stored is a duplicate) and
//! answers history requests from peers.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use crate::{Cursor, Envelope, HistoryBatch, MessageId, Origin, Topic};

/// How much history a node keeps per topic. The oldest entries go first when any bound is hit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retention {
    /// Most entries per topic.
    pub max_entries: usize,
    /// Most bytes of frames per topic.
    pub max_bytes: usize,
    /// Entries older than this (by receive time) are dropped.
    pub max_age: Duration,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            max_entries: 10_000,
            max_bytes: 64 << 20,
            max_age: Duration::from_secs(7 * 24 * 3600),
        }
    }
}

#[derive(Clone, Debug)]
struct Entry {
    id: MessageId,
    bytes: Vec<u8>,
    origin: Origin,
    received_at: u64,
}

#[derive(Debug, Default)]
struct TopicLog {
    entries: BTreeMap<Cursor, Entry>,
    ids: HashMap<MessageId, Cursor>,
    bytes: usize,
}

/// The history of every topic a node saw.
#[derive(Debug)]
pub struct HistoryStore {
    retention: Retention,
    topics: HashMap<Topic, TopicLog>,
    last: Cursor,
}

impl HistoryStore {
    /// An empty store.
    pub fn new(retention: Retention) -> Self {
        HistoryStore {
            retention,
            topics: HashMap::new(),
            last: Cursor::START,
        }
    }

    /// The greatest cursor handed out so far.
    pub(crate) fn last_cursor(&self) -> Cursor {
        self.last
    }

    /// Every stored frame, in cursor order (for the journal's compaction).
    pub(crate) fn all(&self) -> Vec<Envelope> {
        let mut out: Vec<Envelope> = self
            .topics
            .iter()
            .flat_map(|(topic, log)| {
                log.entries.iter().map(|(&cursor, e)| Envelope {
                    topic: *topic,
                    bytes: e.bytes.clone(),
                    id: e.id,
                    origin: e.origin.clone(),
                    received_at: e.received_at,
                    cursor,
                })
            })
            .collect();
        out.sort_by_key(|e| e.cursor);
        out
    }

    /// Whether `id` is stored under `topic`.
    pub fn contains(&self, topic: &Topic, id: &MessageId) -> bool {
        self.topics
            .get(topic)
            .is_some_and(|t| t.ids.contains_key(id))
    }

    /// Number of entries stored for `topic`.
    pub fn len(&self, topic: &Topic) -> usize {
        self.topics.get(topic).map_or(0, |t| t.entries.len())
    }

    /// Whether nothing at all is stored.
    pub fn is_empty(&self) -> bool {
        self.topics.values().all(|t| t.entries.is_empty())
    }

    /// Stores a frame received at `now_ms`; `None` when it was already stored (a duplicate).
    /// Cursors are strictly increasing even if the clock goes backwards.
    pub fn insert(
        &mut self,
        topic: Topic,
        bytes: Vec<u8>,
        origin: Origin,
        now_ms: u64,
    ) -> Option<Envelope> {
        let id = MessageId::of(&bytes);
        if self.contains(&topic, &id) {
            return None;
        }
        let cursor = if now_ms > self.last.at {
            Cursor {
                at: now_ms,
                index: 0,
            }
        } else {
            self.last.next()
        };
        self.insert_at(topic, bytes, origin, now_ms, cursor)
    }

    /// Stores a frame at a cursor chosen by the caller (greater than every cursor given
    /// before); `None` when it was already stored. The in-memory network uses network-wide
    /// cursors so that pages merged from several nodes have a strict order.
    pub(crate) fn insert_at(
        &mut self,
        topic: Topic,
        bytes: Vec<u8>,
        origin: Origin,
        now_ms: u64,
        cursor: Cursor,
    ) -> Option<Envelope> {
        let id = MessageId::of(&bytes);
        let log = self.topics.entry(topic).or_default();
        if log.ids.contains_key(&id) {
            return None;
        }
        self.last = self.last.max(cursor);
        log.bytes += bytes.len();
        log.ids.insert(id, cursor);
        let envelope = Envelope {
            topic,
            bytes: bytes.clone(),
            id,
            origin: origin.clone(),
            received_at: now_ms,
            cursor,
        };
        log.entries.insert(
            cursor,
            Entry {
                id,
                bytes,
                origin,
                received_at: now_ms,
            },
        );
        self.prune(&topic, now_ms);
        Some(envelope)
    }

    fn prune(&mut self, topic: &Topic, now_ms: u64) {
        let r = self.retention;
        let Some(log) = self.topics.get_mut(topic) else {
            return;
        };
        let oldest =
            now_ms.saturating_sub(u64::try_from(r.max_age.as_millis()).unwrap_or(u64::MAX));
        while let Some((&cursor, entry)) = log.entries.first_key_value() {
            let over = log.entries.len() > r.max_entries
                || log.bytes > r.max_bytes
                || entry.received_at < oldest;
            if !over {
                break;
            }
            log.bytes -= entry.bytes.len();
            log.ids.remove(&entry.id);
            log.entries.remove(&cursor);
        }
    }

    /// Drops what the retention no longer allows at `now_ms` in every topic.
    pub fn prune_all(&mut self, now_ms: u64) {
        let topics: Vec<Topic> = self.topics.keys().copied().collect();
        for t in topics {
            self.prune(&t, now_ms);
        }
    }

    /// Up to `limit` entries (and at most `max_bytes` of frames, but at least one entry) of
    /// `topic` at or after `since`, and where the next page starts.
    pub fn query(
        &self,
        topic: &Topic,
        since: Cursor,
        limit: usize,
        max_bytes: usize,
    ) -> HistoryBatch {
        let Some(log) = self.topics.get(topic) else {
            return HistoryBatch::default();
        };
        let mut batch = HistoryBatch::default();
        let mut bytes = 0usize;
        for (&cursor, e) in log.entries.range(since..) {
            let full = batch.envelopes.len() >= limit
                || (!batch.envelopes.is_empty() && bytes + e.bytes.len() > max_bytes);
            if full {
                batch.next = Some(cursor);
                break;
            }
            bytes += e.bytes.len();
            batch.envelopes.push(Envelope {
                topic: *topic,
                bytes: e.bytes.clone(),
                id: e.id,
                origin: e.origin.clone(),
                received_at: e.received_at,
                cursor,
            });
        }
        batch
    }

    /// Forgets everything (a process that lost its memory).
    pub fn clear(&mut self) {
        self.topics.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topic() -> Topic {
        Topic::App {
            chain_id: 1,
            group: [1; 20],
        }
    }

    #[test]
    fn duplicates_are_refused_and_cursors_increase() {
        let mut s = HistoryStore::new(Retention::default());
        let a = s
            .insert(topic(), b"a".to_vec(), Origin::Peer("x".into()), 10)
            .unwrap();
        assert!(
            s.insert(topic(), b"a".to_vec(), Origin::Peer("y".into()), 11)
                .is_none()
        );
        let b = s
            .insert(topic(), b"b".to_vec(), Origin::Peer("x".into()), 5)
            .unwrap();
        assert!(b.cursor > a.cursor);
        let c = s
            .insert(topic(), b"c".to_vec(), Origin::Peer("x".into()), 20)
            .unwrap();
        assert!(c.cursor > b.cursor);
        let page = s.query(&topic(), b.cursor, 10, usize::MAX);
        assert_eq!(
            page.envelopes
                .iter()
                .map(|e| e.bytes.clone())
                .collect::<Vec<_>>(),
            vec![b"b".to_vec(), b"c".to_vec()]
        );
        assert_eq!(page.next, None);
        let page = s.query(&topic(), Cursor::START, 1, usize::MAX);
        assert_eq!(page.envelopes.len(), 1);
        assert_eq!(page.next, Some(b.cursor));
    }

    #[test]
    fn retention_bounds_entries_bytes_and_age() {
        let r = Retention {
            max_entries: 3,
            max_bytes: 1000,
            max_age: Duration::from_millis(100),
        };
        let mut s = HistoryStore::new(r);
        for i in 0..10u8 {
            s.insert(topic(), vec![i; 10], Origin::Peer("x".into()), u64::from(i));
        }
        assert_eq!(s.len(&topic()), 3);
        assert!(!s.contains(&topic(), &MessageId::of(&[0; 10])));
        s.insert(topic(), vec![42; 995], Origin::Peer("x".into()), 20);
        assert_eq!(s.len(&topic()), 1, "byte bound");
        s.insert(topic(), vec![43; 1], Origin::Peer("x".into()), 500);
        assert_eq!(s.len(&topic()), 1, "age bound");
        s.prune_all(10_000);
        assert_eq!(s.len(&topic()), 0);
    }
}
