//! An in-process network of nodes with seeded faults, on a virtual clock.
//!
//! Publishing draws, for every other node, whether the frame is dropped, duplicated and how
//! long each copy takes, from one ChaCha8 generator seeded by the caller; deliveries happen
//! when the test moves the clock ([`MemoryNetwork::advance`], [`MemoryNetwork::run_until_idle`]).
//! Partitions and node restarts act at delivery time. Every delivery attempt is recorded in
//! the [trace](MemoryNetwork::trace): the same seed and the same sequence of operations give
//! the same trace, so a failing simulation replays from its seed.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tokio::sync::mpsc;

use crate::{
    Cursor, DeliveryService, Envelope, Error, FrameValidator, HistoryBatch, HistoryStore, Limits,
    MessageId, Origin, Retention, Subscription, Topic, Validator, Verdict,
};

/// Faults applied to every delivery from one node to another.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Faults {
    /// Probability that a copy is lost.
    pub drop: f64,
    /// Probability that a frame is delivered twice.
    pub duplicate: f64,
    /// Shortest delivery delay.
    pub min_delay: Duration,
    /// Longest delivery delay (before reordering).
    pub max_delay: Duration,
    /// Extra random delay of up to this much, so that frames published within the window
    /// may arrive in any order.
    pub reorder_window: Duration,
}

impl Faults {
    /// No faults: every frame arrives once, after 1 ms, in order.
    pub const NONE: Faults = Faults {
        drop: 0.0,
        duplicate: 0.0,
        min_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(1),
        reorder_window: Duration::ZERO,
    };
}

impl Default for Faults {
    fn default() -> Self {
        Faults::NONE
    }
}

/// A node of a [`MemoryNetwork`].
pub type NodeId = usize;

/// What happened to one copy of a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// Handed to the node's subscribers.
    Delivered,
    /// The node had it already; not handed on again.
    Duplicate,
    /// Lost by the drop fault.
    Dropped,
    /// Sender and receiver were in different partitions.
    Partitioned,
    /// The receiver was down.
    Down,
    /// The receiver was not subscribed to the topic.
    NotSubscribed,
}

/// One delivery attempt.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TraceEvent {
    /// Virtual time (ms).
    pub at: u64,
    /// Publisher.
    pub from: NodeId,
    /// Receiver.
    pub to: NodeId,
    /// The frame.
    pub id: MessageId,
    /// What happened.
    pub outcome: Outcome,
}

struct Pending {
    from: NodeId,
    to: NodeId,
    topic: Topic,
    bytes: Arc<Vec<u8>>,
    dropped: bool,
}

struct NodeState {
    name: String,
    up: bool,
    subs: HashMap<Topic, Vec<mpsc::UnboundedSender<Envelope>>>,
    store: HistoryStore,
}

struct Net {
    rng: ChaCha8Rng,
    faults: Faults,
    now: u64,
    seq: u64,
    /// Cursors are unique network-wide: (virtual ms, this counter).
    cursor_seq: u64,
    nodes: Vec<NodeState>,
    queue: BTreeMap<(u64, u64), Pending>,
    partition: Option<Vec<usize>>,
    trace: Vec<TraceEvent>,
    limits: Limits,
    retention: Retention,
    validator: Arc<dyn Validator>,
}

/// The network. Cloning gives another handle to the same network.
#[derive(Clone)]
pub struct MemoryNetwork {
    net: Arc<Mutex<Net>>,
}

impl std::fmt::Debug for MemoryNetwork {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let net = self.lock();
        f.debug_struct("MemoryNetwork")
            .field("nodes", &net.nodes.len())
            .field("now_ms", &net.now)
            .field("in_flight", &net.queue.len())
            .finish()
    }
}

fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl MemoryNetwork {
    /// A network whose faults are drawn from `seed`.
    pub fn new(seed: u64, faults: Faults) -> Self {
        MemoryNetwork {
            net: Arc::new(Mutex::new(Net {
                rng: ChaCha8Rng::seed_from_u64(seed),
                faults,
                now: 0,
                seq: 0,
                cursor_seq: 0,
                nodes: Vec::new(),
                queue: BTreeMap::new(),
                partition: None,
                trace: Vec::new(),
                limits: Limits::default(),
                retention: Retention::default(),
                validator: Arc::new(FrameValidator::new(Limits::default())),
            })),
        }
    }

    /// Replaces the validator every node applies to frames it publishes and receives.
    pub fn set_validator(&self, validator: Arc<dyn Validator>) {
        self.lock().validator = validator;
    }

    /// Replaces the faults for frames published from now on.
    pub fn set_faults(&self, faults: Faults) {
        self.lock().faults = faults;
    }

    /// Replaces the history retention of nodes added from now on.
    pub fn set_retention(&self, retention: Retention) {
        self.lock().retention = retention;
    }

    fn lock(&self) -> MutexGuard<'_, Net> {
        self.net.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds a node named `name` (its [`Origin::Peer`]), up.
    pub fn add_node(&self, name: &str) -> MemoryNode {
        let mut net = self.lock();
        let retention = net.retention;
        net.nodes.push(NodeState {
            name: name.into(),
            up: true,
            subs: HashMap::new(),
            store: HistoryStore::new(retention),
        });
        MemoryNode {
            net: self.clone(),
            id: net.nodes.len() - 1,
        }
    }

    /// Virtual time now (ms since the network started).
    pub fn now_ms(&self) -> u64 {
        self.lock().now
    }

    /// Copies still in flight.
    pub fn in_flight(&self) -> usize {
        self.lock().queue.len()
    }

    /// Splits the network: nodes in different sets cannot reach each other; nodes in no set
    /// form one more partition together.
    pub fn partition(&self, sets: &[&[NodeId]]) {
        let mut net = self.lock();
        let n = net.nodes.len();
        let mut label = vec![sets.len(); n];
        for (i, set) in sets.iter().enumerate() {
            for &node in *set {
                if node < n {
                    label[node] = i;
                }
            }
        }
        net.partition = Some(label);
    }

    /// Heals every partition.
    pub fn heal(&self) {
        self.lock().partition = None;
    }

    /// Stops `node` as a crashed process would: its subscriptions end, its history is lost,
    /// frames reaching it while down are lost.
    pub fn stop(&self, node: NodeId) {
        let mut net = self.lock();
        if let Some(n) = net.nodes.get_mut(node) {
            n.up = false;
            n.subs.clear();
            n.store.clear();
        }
    }

    /// Starts a stopped node again (with no subscriptions and no history).
    pub fn start(&self, node: NodeId) {
        if let Some(n) = self.lock().nodes.get_mut(node) {
            n.up = true;
        }
    }

    /// Delivers everything due within the next `by` of virtual time, and moves the clock.
    pub fn advance(&self, by: Duration) {
        let mut net = self.lock();
        let until = net.now.saturating_add(duration_ms(by));
        net.deliver_until(until);
        net.now = until;
    }

    /// Delivers everything in flight, moving the clock as far as needed.
    pub fn run_until_idle(&self) {
        let mut net = self.lock();
        net.deliver_until(u64::MAX);
    }

    /// Every delivery attempt so far, in order.
    pub fn trace(&self) -> Vec<TraceEvent> {
        self.lock().trace.clone()
    }
}

impl Net {
    fn reachable(&self, a: NodeId, b: NodeId) -> bool {
        self.partition.as_ref().is_none_or(|p| p.get(a) == p.get(b))
    }

    fn deliver_until(&mut self, until: u64) {
        while let Some(entry) = self.queue.first_entry() {
            let (at, _) = *entry.key();
            if at > until {
                break;
            }
            let p = entry.remove();
            self.now = self.now.max(at);
            let id = MessageId::of(&p.bytes);
            let outcome = self.deliver(&p);
            self.trace.push(TraceEvent {
                at: self.now,
                from: p.from,
                to: p.to,
                id,
                outcome,
            });
        }
    }

    fn deliver(&mut self, p: &Pending) -> Outcome {
        if p.dropped {
            return Outcome::Dropped;
        }
        if !self.reachable(p.from, p.to) {
            return Outcome::Partitioned;
        }
        let now = self.now;
        let origin = Origin::Peer(self.nodes[p.from].name.clone());
        let valid = self.validator.validate(&p.topic, &p.bytes) == Verdict::Accept;
        let node = &mut self.nodes[p.to];
        if !node.up {
            return Outcome::Down;
        }
        let Some(subs) = node.subs.get_mut(&p.topic) else {
            return Outcome::NotSubscribed;
        };
        if !valid {
            return Outcome::Dropped;
        }
        let cursor = Cursor {
            at: now,
            index: self.cursor_seq,
        };
        let Some(envelope) = node
            .store
            .insert_at(p.topic, p.bytes.to_vec(), origin, now, cursor)
        else {
            return Outcome::Duplicate;
        };
        subs.retain(|tx| tx.send(envelope.clone()).is_ok());
        self.cursor_seq += 1;
        Outcome::Delivered
    }

    fn publish(&mut self, from: NodeId, topic: Topic, bytes: Vec<u8>) -> Result<MessageId, Error> {
        if !self.nodes[from].up {
            return Err(Error::Stopped);
        }
        self.limits.check(&topic, bytes.len())?;
        if let Verdict::Reject(reason) = self.validator.validate(&topic, &bytes) {
            return Err(Error::Invalid {
                topic: topic.to_string(),
                reason,
            });
        }
        let id = MessageId::of(&bytes);
        let now = self.now;
        let origin = Origin::Peer(self.nodes[from].name.clone());
        let cursor = Cursor {
            at: now,
            index: self.cursor_seq,
        };
        let store = &mut self.nodes[from].store;
        if store
            .insert_at(topic, bytes.clone(), origin, now, cursor)
            .is_none()
        {
            return Ok(id); // republished: already sent
        }
        self.cursor_seq += 1;
        let bytes = Arc::new(bytes);
        let f = self.faults;
        let (min, max) = (
            duration_ms(f.min_delay),
            duration_ms(f.max_delay).max(duration_ms(f.min_delay)),
        );
        let window = duration_ms(f.reorder_window);
        for to in 0..self.nodes.len() {
            if to == from {
                continue;
            }
            // A fixed number of draws per receiver keeps the stream aligned across runs.
            let dropped = self.rng.random_bool(f.drop.clamp(0.0, 1.0));
            let dup = self.rng.random_bool(f.duplicate.clamp(0.0, 1.0));
            let delays = [
                self.rng.random_range(min..=max) + self.rng.random_range(0..=window),
                self.rng.random_range(min..=max) + self.rng.random_range(0..=window),
            ];
            let copies = if dup { 2 } else { 1 };
            for delay in delays.into_iter().take(copies) {
                self.seq += 1;
                self.queue.insert(
                    (now.saturating_add(delay), self.seq),
                    Pending {
                        from,
                        to,
                        topic,
                        bytes: bytes.clone(),
                        dropped,
                    },
                );
            }
        }
        Ok(id)
    }
}

/// One node of a [`MemoryNetwork`]; a [`DeliveryService`].
#[derive(Clone)]
pub struct MemoryNode {
    net: MemoryNetwork,
    id: NodeId,
}

impl std::fmt::Debug for MemoryNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryNode").field("id", &self.id).finish()
    }
}

impl MemoryNode {
    /// Its id in the network.
    pub fn id(&self) -> NodeId {
        self.id
    }
}

#[async_trait::async_trait]
impl DeliveryService for MemoryNode {
    async fn publish(&self, topic: &Topic, bytes: Vec<u8>) -> Result<MessageId, Error> {
        self.net.lock().publish(self.id, *topic, bytes)
    }

    async fn subscribe(&self, topic: &Topic) -> Result<Subscription, Error> {
        let mut net = self.net.lock();
        let node = &mut net.nodes[self.id];
        if !node.up {
            return Err(Error::Stopped);
        }
        let (tx, rx) = mpsc::unbounded_channel();
        node.subs.entry(*topic).or_default().push(tx);
        Ok(Subscription::from_receiver(rx))
    }

    /// This node's history merged with that of every node it can reach (as a gossip node asks
    /// its peers); entries from other nodes carry their cursors.
    async fn history(
        &self,
        topic: &Topic,
        since: Cursor,
        limit: u32,
    ) -> Result<HistoryBatch, Error> {
        crate::wire::check_limit(limit)?;
        let net = self.net.lock();
        if !net.nodes[self.id].up {
            return Err(Error::Stopped);
        }
        let mut merged: BTreeMap<(Cursor, MessageId), Envelope> = BTreeMap::new();
        let mut next: Option<Cursor> = None;
        for (i, node) in net.nodes.iter().enumerate() {
            if !node.up || !net.reachable(self.id, i) {
                continue;
            }
            let page = node.store.query(topic, since, limit as usize, usize::MAX);
            if let Some(n) = page.next {
                next = Some(next.map_or(n, |m: Cursor| m.min(n)));
            }
            for e in page.envelopes {
                merged.entry((e.cursor, e.id)).or_insert(e);
            }
        }
        let mut seen = std::collections::HashSet::new();
        let mut envelopes: Vec<Envelope> =
            merged.into_values().filter(|e| seen.insert(e.id)).collect();
        if envelopes.len() > limit as usize {
            let first_left = envelopes[limit as usize].cursor;
            envelopes.truncate(limit as usize);
            next = Some(next.map_or(first_left, |m| m.min(first_left)));
        }
        // Everything before `next` was in some page: return exactly that, so pages neither
        // overlap nor leave gaps.
        if let Some(n) = next {
            envelopes.retain(|e| e.cursor < n);
        }
        Ok(HistoryBatch { envelopes, next })
    }
}
