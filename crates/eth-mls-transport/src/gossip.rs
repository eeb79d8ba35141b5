//! [`GossipNode`]: delivery over rust-libp2p gossipsub, with history for returning peers.
//!
//! One Tokio task owns the libp2p swarm; the [`GossipNode`] handle talks to it over a channel,
//! so the handle is cheap to clone and usable from any task. The task ends when the last
//! handle is dropped or [`GossipNode::shutdown`] is called.

use std::collections::{HashMap, HashSet};
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::StreamExt;
use libp2p::futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::gossipsub::{
    self, IdentTopic, MessageAcceptance, MessageAuthenticity, PeerScoreParams, PeerScoreThresholds,
    TopicHash, TopicScoreParams, TopicSubscriptionFilter, ValidationMode,
};
use libp2p::identity::Keypair;
use libp2p::request_response::{self, OutboundRequestId, ProtocolSupport};
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{Multiaddr, PeerId, StreamProtocol, Swarm, identify, noise, ping, tcp, yamux};
use tokio::sync::{mpsc, oneshot};

use crate::wire::{
    HistoryEntry, HistoryRequest, HistoryResponse, MAX_ENTRIES, MAX_REQUEST, MAX_RESPONSE,
};
use crate::{
    Cursor, DeliveryService, Envelope, Error, HistoryBatch, HistoryStore, Journal, Limits,
    MessageId, Origin, Retention, Subscription, Topic, Validator, Verdict,
};

/// The history protocol's name.
pub const HISTORY_PROTOCOL: &str = "/eth-mls/history/1";
/// The identify protocol version nodes announce.
pub const IDENTIFY_PROTOCOL: &str = "/eth-mls/1";
/// Most history pages fetched from one peer per call.
const MAX_PAGES_PER_PEER: usize = 64;
/// How long a graceful shutdown lets queued frames leave.
const SHUTDOWN_GRACE: Duration = Duration::from_millis(500);
/// Room for gossipsub's own framing (signature, key, topic, protobuf) above a frame.
const RPC_OVERHEAD: usize = 4096;

/// How a [`GossipNode`] runs.
#[derive(Clone, Debug)]
pub struct GossipConfig {
    /// Addresses to listen on. Default: `/ip4/127.0.0.1/tcp/0` (loopback, a free port).
    pub listen: Vec<Multiaddr>,
    /// Peers to connect to, as `/ip4/../tcp/../p2p/<peer id>` (no mDNS: peers are explicit, or
    /// found through ERC-7627).
    pub bootstrap: Vec<Multiaddr>,
    /// Size limits per topic kind.
    pub limits: Limits,
    /// History kept per topic.
    pub retention: Retention,
    /// Most topics a remote peer may be subscribed to before its subscriptions are refused
    /// (a relay serving many groups needs many); also bounds this node's own topics.
    pub max_topics: usize,
    /// Most subscription changes a peer may send in one RPC.
    pub max_subscriptions_per_request: usize,
    /// How long a publish waits for a subscribed peer before failing with
    /// [`Error::NoPeers`]; it retries meanwhile.
    pub publish_timeout: Duration,
    /// How many peers a history call asks.
    pub history_peers: usize,
    /// How long to wait for a history response.
    pub history_timeout: Duration,
    /// Clock skew allowed between peers: history requests start this much before the cursor
    /// asked for (duplicates are filtered by id).
    pub history_skew: Duration,
    /// Relay/store mode: subscribe to every eth-mls topic a peer subscribes to (up to
    /// `max_topics`), forwarding and storing its history, for a long-running node.
    pub relay: bool,
    /// Addresses others reach this node at, announced to peers (a relay's reservations carry
    /// them). Empty: none, except that a relay announces where it listens.
    pub external: Vec<Multiaddr>,
    /// Gossipsub heartbeat.
    pub heartbeat: Duration,
    /// Mesh degree (`mesh_n`); `mesh_n_low` is half of it, `mesh_n_high` twice. Small values
    /// let groups of 2-10 peers form a mesh.
    pub mesh_n: usize,
    /// A file that keeps the history (and the topics subscribed to) across restarts: a
    /// [`Journal`], replayed when the node starts (a relay subscribes again to the topics it
    /// served). `None`: history in memory only.
    pub journal: Option<std::path::PathBuf>,
}

impl Default for GossipConfig {
    fn default() -> Self {
        GossipConfig {
            listen: vec!["/ip4/127.0.0.1/tcp/0".parse().expect("a valid multiaddr")],
            bootstrap: Vec::new(),
            limits: Limits::default(),
            retention: Retention::default(),
            max_topics: 10_000,
            max_subscriptions_per_request: 1_000,
            publish_timeout: Duration::from_secs(10),
            history_peers: 3,
            history_timeout: Duration::from_secs(10),
            history_skew: Duration::from_secs(30),
            relay: false,
            external: Vec::new(),
            heartbeat: Duration::from_millis(500),
            mesh_n: 4,
            journal: None,
        }
    }
}

/// Counters of a node.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NodeStats {
    /// Connected peers.
    pub peers: usize,
    /// Frames handed to subscriptions.
    pub delivered: u64,
    /// Frames from peers accepted into this node's history (a relay's count of what it
    /// carries).
    pub stored: u64,
    /// Frames rejected by validation (from peers or history responses).
    pub rejected: u64,
    /// History requests answered.
    pub history_served: u64,
    /// Writes to the history journal that failed (the journal is given up after the first;
    /// the node goes on with its history in memory).
    pub journal_errors: u64,
}

/// Accepts only eth-mls topics (wrapped in gossipsub's count limit for remote peers).
#[derive(Clone, Debug, Default)]
struct EthMlsTopics;

impl TopicSubscriptionFilter for EthMlsTopics {
    fn can_subscribe(&mut self, topic: &TopicHash) -> bool {
        topic.as_str().parse::<Topic>().is_ok()
    }
}

type Filter = gossipsub::MaxCountSubscriptionFilter<EthMlsTopics>;

/// The history protocol's codec: whole messages, bounded reads.
#[derive(Clone, Debug)]
struct HistoryCodec {
    max_frame: usize,
}

async fn read_bounded<T: AsyncRead + Unpin + Send>(io: &mut T, max: usize) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    io.take(max as u64 + 1).read_to_end(&mut out).await?;
    if out.len() > max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "message too large",
        ));
    }
    Ok(out)
}

fn invalid(e: Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e.to_string())
}

impl request_response::Codec for HistoryCodec {
    type Protocol = StreamProtocol;
    type Request = HistoryRequest;
    type Response = HistoryResponse;

    async fn read_request<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> io::Result<HistoryRequest>
    where
        T: AsyncRead + Unpin + Send,
    {
        HistoryRequest::decode(&read_bounded(io, MAX_REQUEST).await?).map_err(invalid)
    }

    async fn read_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> io::Result<HistoryResponse>
    where
        T: AsyncRead + Unpin + Send,
    {
        HistoryResponse::decode(&read_bounded(io, MAX_RESPONSE).await?, self.max_frame)
            .map_err(invalid)
    }

    async fn write_request<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        req: HistoryRequest,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        io.write_all(&req.encode()).await?;
        io.close().await
    }

    async fn write_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        res: HistoryResponse,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        io.write_all(&res.encode()).await?;
        io.close().await
    }
}

#[cfg(not(feature = "nat"))]
#[derive(NetworkBehaviour)]
struct Behaviour {
    gossipsub: gossipsub::Behaviour<gossipsub::IdentityTransform, Filter>,
    history: request_response::Behaviour<HistoryCodec>,
    identify: identify::Behaviour,
    ping: ping::Behaviour,
}

/// With `nat`: Kademlia (addresses of a PeerId), circuit relay (client; server in relay
/// mode), DCUtR and AutoNAT as well.
#[cfg(feature = "nat")]
#[derive(NetworkBehaviour)]
struct Behaviour {
    gossipsub: gossipsub::Behaviour<gossipsub::IdentityTransform, Filter>,
    history: request_response::Behaviour<HistoryCodec>,
    identify: identify::Behaviour,
    ping: ping::Behaviour,
    kad: libp2p::kad::Behaviour<libp2p::kad::store::MemoryStore>,
    relay_client: libp2p::relay::client::Behaviour,
    relay: libp2p::swarm::behaviour::toggle::Toggle<libp2p::relay::Behaviour>,
    dcutr: libp2p::dcutr::Behaviour,
    autonat: libp2p::autonat::Behaviour,
}

/// The Kademlia protocol of eth-mls nodes (a private DHT, apart from IPFS's).
#[cfg(feature = "nat")]
pub const KAD_PROTOCOL: &str = "/eth-mls/kad/1.0.0";

/// The behaviours every node has.
type Base = (
    gossipsub::Behaviour<gossipsub::IdentityTransform, Filter>,
    request_response::Behaviour<HistoryCodec>,
    identify::Behaviour,
    ping::Behaviour,
);

/// The gossipsub configuration of eth-mls nodes: SHA-256 content ids, strict signatures,
/// validation before forwarding, a transmit size for the largest topic limit, small meshes.
pub(crate) fn gossipsub_config(cfg: &GossipConfig) -> Result<gossipsub::Config, Error> {
    let mesh_n = cfg.mesh_n.max(2);
    gossipsub::ConfigBuilder::default()
        .validation_mode(ValidationMode::Strict)
        .validate_messages()
        .message_id_fn(|m: &gossipsub::Message| {
            gossipsub::MessageId::new(&MessageId::of(&m.data).0)
        })
        .max_transmit_size(cfg.limits.max() + RPC_OVERHEAD)
        .heartbeat_interval(cfg.heartbeat)
        .heartbeat_initial_delay(Duration::from_millis(100))
        .mesh_n(mesh_n)
        .mesh_n_low((mesh_n / 2).max(1))
        .mesh_n_high(mesh_n * 2)
        .mesh_outbound_min(1)
        .gossip_lazy(mesh_n)
        .flood_publish(true)
        .duplicate_cache_time(Duration::from_secs(300))
        // A busy node must not drop queued frames after gossipsub's default 1 s (forwards) or
        // 5 s (publishes): late is better than lost (history covers what still is).
        .forward_queue_duration(Duration::from_secs(30))
        .publish_queue_duration(Duration::from_secs(30))
        // Gossip (IHAVE/IWANT) covers the last 6 heartbeats (3 s), not 3.
        .history_length(10)
        .history_gossip(6)
        .build()
        .map_err(|e| Error::Transport(format!("gossipsub config: {e}")))
}

/// Peer scoring: invalid frames cost their sender (P4, quadratic, slowly decaying), so a peer
/// sending a few malformed frames is graylisted; the mesh-delivery penalties (P3, P3b) are off
/// because chat topics are bursty and often silent. Loopback is exempt from the IP
/// colocation penalty (tests and local relays run many nodes on one address).
pub(crate) fn score_params() -> (PeerScoreParams, PeerScoreThresholds) {
    let mut params = PeerScoreParams::default();
    params
        .ip_colocation_factor_whitelist
        .insert("127.0.0.1".parse().expect("an IP"));
    params
        .ip_colocation_factor_whitelist
        .insert("::1".parse().expect("an IP"));
    (params, PeerScoreThresholds::default())
}

pub(crate) fn topic_score_params() -> TopicScoreParams {
    TopicScoreParams {
        topic_weight: 1.0,
        time_in_mesh_weight: 0.01,
        time_in_mesh_quantum: Duration::from_secs(1),
        time_in_mesh_cap: 10.0,
        first_message_deliveries_weight: 0.1,
        first_message_deliveries_decay: 0.9,
        first_message_deliveries_cap: 10.0,
        mesh_message_deliveries_weight: 0.0,
        mesh_failure_penalty_weight: 0.0,
        invalid_message_deliveries_weight: -10.0,
        invalid_message_deliveries_decay: 0.99,
        ..TopicScoreParams::default()
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

enum Command {
    Publish {
        topic: Topic,
        bytes: Vec<u8>,
        reply: oneshot::Sender<Result<MessageId, Error>>,
    },
    Subscribe {
        topic: Topic,
        reply: oneshot::Sender<Result<mpsc::UnboundedReceiver<Envelope>, Error>>,
    },
    History {
        topic: Topic,
        since: Cursor,
        limit: u32,
        reply: oneshot::Sender<Result<HistoryBatch, Error>>,
    },
    Dial {
        addr: Multiaddr,
        reply: oneshot::Sender<Result<(), Error>>,
    },
    Peers {
        reply: oneshot::Sender<Vec<PeerId>>,
    },
    MeshPeers {
        topic: Topic,
        reply: oneshot::Sender<Vec<PeerId>>,
    },
    SubscribedPeers {
        topic: Topic,
        reply: oneshot::Sender<Vec<PeerId>>,
    },
    Score {
        peer: PeerId,
        reply: oneshot::Sender<Option<f64>>,
    },
    Stats {
        reply: oneshot::Sender<NodeStats>,
    },
    RequestHistory {
        peer: PeerId,
        request: HistoryRequest,
        reply: oneshot::Sender<DirectResult>,
    },
    #[cfg(feature = "nat")]
    FindPeer {
        peer: PeerId,
        timeout: Duration,
        reply: oneshot::Sender<Result<(), Error>>,
    },
    Shutdown {
        reply: oneshot::Sender<()>,
    },
}

/// A gossipsub node (see the module docs). Clone it freely.
#[derive(Clone)]
pub struct GossipNode {
    tx: mpsc::UnboundedSender<Command>,
    peer_id: PeerId,
    listen: Arc<Vec<Multiaddr>>,
}

impl std::fmt::Debug for GossipNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GossipNode")
            .field("peer_id", &self.peer_id)
            .field("listen", &self.listen)
            .finish()
    }
}

struct PendingPublish {
    topic: Topic,
    bytes: Vec<u8>,
    deadline: Instant,
    started: Instant,
    reply: oneshot::Sender<Result<MessageId, Error>>,
}

struct HistoryQuery {
    topic: Topic,
    since: Cursor,
    limit: u32,
    waiting: HashSet<OutboundRequestId>,
    pages: HashMap<PeerId, usize>,
    deadline: Instant,
    reply: oneshot::Sender<Result<HistoryBatch, Error>>,
}

struct Actor {
    swarm: Swarm<Behaviour>,
    cfg: GossipConfig,
    validator: Arc<dyn Validator>,
    store: HistoryStore,
    subs: HashMap<Topic, Vec<mpsc::UnboundedSender<Envelope>>>,
    pending: Vec<PendingPublish>,
    queries: Vec<HistoryQuery>,
    requests: HashMap<OutboundRequestId, usize>,
    /// History requests made through `GossipNode::request_history`: the limit asked, whom to tell.
    direct: HashMap<OutboundRequestId, (u32, oneshot::Sender<DirectResult>)>,
    stats: NodeStats,
    journal: Option<Journal>,
    last_redial: Instant,
    /// Peers being looked up in the DHT, with when to give up.
    #[cfg(feature = "nat")]
    finds: Vec<Find>,
}

impl GossipNode {
    /// Starts a node with identity `keypair` (Ed25519; its public key is what ERC-7627
    /// publishes), listening and dialling as `cfg` says, checking frames with `validator`.
    /// Must be called within a Tokio runtime. Returns once the node listens.
    pub async fn start(
        keypair: Keypair,
        cfg: GossipConfig,
        validator: Arc<dyn Validator>,
    ) -> Result<GossipNode, Error> {
        let gs_config = gossipsub_config(&cfg)?;
        let filter = Filter {
            filter: EthMlsTopics,
            max_subscribed_topics: cfg.max_topics,
            max_subscriptions_per_request: cfg.max_subscriptions_per_request,
        };
        let max_frame = cfg.limits.max();
        let history_timeout = cfg.history_timeout;
        #[cfg(feature = "nat")]
        let relay_server = cfg.relay;
        let base = move |key: &Keypair| -> Result<Base, Box<dyn std::error::Error + Send + Sync>> {
            let mut gossipsub = gossipsub::Behaviour::new_with_subscription_filter(
                MessageAuthenticity::Signed(key.clone()),
                gs_config,
                filter,
            )?;
            let (params, thresholds) = score_params();
            gossipsub.with_peer_score(params, thresholds)?;
            let history = request_response::Behaviour::with_codec(
                HistoryCodec { max_frame },
                [(StreamProtocol::new(HISTORY_PROTOCOL), ProtocolSupport::Full)],
                request_response::Config::default().with_request_timeout(history_timeout),
            );
            let identify = identify::Behaviour::new(identify::Config::new(
                IDENTIFY_PROTOCOL.into(),
                key.public(),
            ));
            Ok((
                gossipsub,
                history,
                identify,
                ping::Behaviour::new(ping::Config::new()),
            ))
        };
        let transport_error = |e: &dyn std::fmt::Display| Error::Transport(e.to_string());
        let builder = libp2p::SwarmBuilder::with_existing_identity(keypair)
            .with_tokio()
            .with_tcp(
                tcp::Config::default().nodelay(true),
                noise::Config::new,
                yamux::Config::default,
            )
            .map_err(|e| transport_error(&e))?;
        // QUIC (`/ip4/../udp/../quic-v1` addresses) beside TCP when the feature is on.
        #[cfg(feature = "quic")]
        let builder = builder.with_quic();
        #[cfg(not(feature = "nat"))]
        let builder = builder
            .with_behaviour(move |key| {
                let (gossipsub, history, identify, ping) = base(key)?;
                Ok(Behaviour {
                    gossipsub,
                    history,
                    identify,
                    ping,
                })
            })
            .map_err(|e| transport_error(&e))?;
        #[cfg(feature = "nat")]
        let builder = builder
            .with_relay_client(noise::Config::new, yamux::Config::default)
            .map_err(|e| transport_error(&e))?
            .with_behaviour(move |key, relay_client| {
                let (gossipsub, history, identify, ping) = base(key)?;
                let id = key.public().to_peer_id();
                let mut kad = libp2p::kad::Behaviour::with_config(
                    id,
                    libp2p::kad::store::MemoryStore::new(id),
                    libp2p::kad::Config::new(StreamProtocol::new(KAD_PROTOCOL)),
                );
                if relay_server {
                    kad.set_mode(Some(libp2p::kad::Mode::Server));
                }
                let relay =
                    relay_server.then(|| libp2p::relay::Behaviour::new(id, Default::default()));
                Ok(Behaviour {
                    gossipsub,
                    history,
                    identify,
                    ping,
                    kad,
                    relay_client,
                    relay: relay.into(),
                    dcutr: libp2p::dcutr::Behaviour::new(id),
                    autonat: libp2p::autonat::Behaviour::new(id, Default::default()),
                })
            })
            .map_err(|e| transport_error(&e))?;
        let mut swarm = builder
            .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(3600)))
            .build();
        for addr in &cfg.listen {
            swarm
                .listen_on(addr.clone())
                .map_err(|e| Error::Transport(format!("listen on {addr}: {e}")))?;
        }
        let mut listen = Vec::new();
        while listen.len() < cfg.listen.len() {
            match tokio::time::timeout(Duration::from_secs(10), swarm.select_next_some()).await {
                Ok(SwarmEvent::NewListenAddr { address, .. }) => listen.push(address),
                Ok(SwarmEvent::ListenerError { error, .. }) => {
                    return Err(Error::Transport(error.to_string()));
                }
                Ok(_) => {}
                Err(_) => return Err(Error::Transport("no listen address within 10 s".into())),
            }
        }
        // A relay tells the nodes it serves where it can be reached (reservations carry these
        // addresses); by default, where it listens.
        let external = if cfg.external.is_empty() && cfg.relay {
            listen.clone()
        } else {
            cfg.external.clone()
        };
        for addr in external {
            swarm.add_external_address(addr);
        }
        for addr in &cfg.bootstrap {
            swarm
                .dial(addr.clone())
                .map_err(|e| Error::Transport(format!("dial {addr}: {e}")))?;
        }
        let peer_id = *swarm.local_peer_id();
        let mut store = HistoryStore::new(cfg.retention);
        let journal = match &cfg.journal {
            Some(path) => {
                let (journal, topics) = Journal::open(path, &mut store, now_ms())?;
                Some((journal, topics))
            }
            None => None,
        };
        let (tx, rx) = mpsc::unbounded_channel();
        let relay = cfg.relay;
        let (journal, topics) = match journal {
            Some((j, t)) => (Some(j), t),
            None => (None, Vec::new()),
        };
        let mut actor = Actor {
            swarm,
            validator,
            store,
            journal,
            cfg,
            subs: HashMap::new(),
            pending: Vec::new(),
            queries: Vec::new(),
            requests: HashMap::new(),
            direct: HashMap::new(),
            stats: NodeStats::default(),
            last_redial: Instant::now(),
            #[cfg(feature = "nat")]
            finds: Vec::new(),
        };
        // A relay serves again the topics it served before its restart.
        if relay {
            for t in topics {
                actor.subscribe_topic(&t)?;
            }
        }
        tokio::spawn(actor.run(rx));
        Ok(GossipNode {
            tx,
            peer_id,
            listen: Arc::new(listen),
        })
    }

    /// This node's PeerId.
    pub fn peer_id(&self) -> PeerId {
        self.peer_id
    }

    /// The addresses it listens on, each with `/p2p/<peer id>` (what others bootstrap from).
    pub fn addresses(&self) -> Vec<Multiaddr> {
        self.listen
            .iter()
            .map(|a| {
                a.clone()
                    .with(libp2p::multiaddr::Protocol::P2p(self.peer_id))
            })
            .collect()
    }

    async fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Command) -> Result<T, Error> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(make(reply)).map_err(|_| Error::Stopped)?;
        rx.await.map_err(|_| Error::Stopped)
    }

    /// Connects to `addr` (with `/p2p/<peer id>`).
    pub async fn dial(&self, addr: Multiaddr) -> Result<(), Error> {
        self.ask(|reply| Command::Dial { addr, reply }).await?
    }

    /// Connected peers.
    pub async fn peers(&self) -> Result<Vec<PeerId>, Error> {
        self.ask(|reply| Command::Peers { reply }).await
    }

    /// Peers in this node's mesh for `topic`.
    pub async fn mesh_peers(&self, topic: &Topic) -> Result<Vec<PeerId>, Error> {
        let topic = *topic;
        self.ask(|reply| Command::MeshPeers { topic, reply }).await
    }

    /// Connected peers known to be subscribed to `topic`.
    pub async fn subscribed_peers(&self, topic: &Topic) -> Result<Vec<PeerId>, Error> {
        let topic = *topic;
        self.ask(|reply| Command::SubscribedPeers { topic, reply })
            .await
    }

    /// Waits until at least `n` connected peers are subscribed to `topic` (mesh readiness).
    pub async fn wait_for_peers(
        &self,
        topic: &Topic,
        n: usize,
        timeout: Duration,
    ) -> Result<(), Error> {
        let deadline = Instant::now() + timeout;
        loop {
            if self.subscribed_peers(topic).await?.len() >= n {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(Error::NoPeers {
                    topic: topic.to_string(),
                    waited: timeout,
                });
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The gossipsub score this node gives `peer` (negative: misbehaving).
    pub async fn peer_score(&self, peer: &PeerId) -> Result<Option<f64>, Error> {
        let peer = *peer;
        self.ask(|reply| Command::Score { peer, reply }).await
    }

    /// Connects to the node `peer` (e.g. a PeerId read from ERC-7627) without knowing its
    /// address: asks the DHT for it (relay nodes serve the DHT), then dials. Feature `nat`.
    #[cfg(feature = "nat")]
    pub async fn connect_peer(&self, peer: PeerId, timeout: Duration) -> Result<(), Error> {
        self.ask(|reply| Command::FindPeer {
            peer,
            timeout,
            reply,
        })
        .await?
    }

    /// Sends one history request to `peer` and returns its answer as it came: entries not
    /// validated, not stored, not delivered (for relays and diagnostics; [`history`]
    /// (DeliveryService::history) is the checked path). A refusal is a typed error:
    /// [`Error::HistoryLimit`] or [`Error::NotServed`].
    pub async fn request_history(&self, peer: PeerId, request: HistoryRequest) -> DirectResult {
        self.ask(|reply| Command::RequestHistory {
            peer,
            request,
            reply,
        })
        .await?
    }

    /// Counters.
    pub async fn stats(&self) -> Result<NodeStats, Error> {
        self.ask(|reply| Command::Stats { reply }).await
    }

    /// Stops the node gracefully: frames already accepted by [`publish`](DeliveryService::publish)
    /// get up to half a second to leave, then subscriptions end and connections close. (A
    /// publish returns once its frame is queued for the peers; a process killed before the
    /// queue drained loses it, which is why clients keep an outbox.)
    pub async fn shutdown(&self) {
        let _ = self.ask(|reply| Command::Shutdown { reply }).await;
    }
}

#[async_trait::async_trait]
impl DeliveryService for GossipNode {
    async fn publish(&self, topic: &Topic, bytes: Vec<u8>) -> Result<MessageId, Error> {
        let topic = *topic;
        self.ask(|reply| Command::Publish {
            topic,
            bytes,
            reply,
        })
        .await?
    }

    async fn subscribe(&self, topic: &Topic) -> Result<Subscription, Error> {
        let topic = *topic;
        let rx = self
            .ask(|reply| Command::Subscribe { topic, reply })
            .await??;
        Ok(Subscription::from_receiver(rx))
    }

    /// Asks up to `history_peers` peers for what they stored of `topic` since `since` (minus
    /// the allowed clock skew), adds what passes validation to this node's store (and hands
    /// frames it had not seen to its subscriptions), then answers from the store.
    async fn history(
        &self,
        topic: &Topic,
        since: Cursor,
        limit: u32,
    ) -> Result<HistoryBatch, Error> {
        crate::wire::check_limit(limit)?;
        let topic = *topic;
        self.ask(|reply| Command::History {
            topic,
            since,
            limit,
            reply,
        })
        .await?
    }
}

impl Actor {
    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Command>) {
        let mut tick = tokio::time::interval(Duration::from_millis(50));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                cmd = rx.recv() => match cmd {
                    None => break,
                    Some(Command::Shutdown { reply }) => {
                        self.drain(SHUTDOWN_GRACE).await;
                        let _ = reply.send(());
                        break;
                    }
                    Some(cmd) => self.command(cmd),
                },
                event = self.swarm.select_next_some() => self.event(event),
                _ = tick.tick() => self.tick(),
            }
        }
    }

    /// Keeps the swarm running (sending what is queued) for `grace`, without new commands.
    async fn drain(&mut self, grace: Duration) {
        self.subs.clear();
        let deadline = tokio::time::Instant::now() + grace;
        loop {
            tokio::select! {
                event = self.swarm.select_next_some() => self.event(event),
                _ = tokio::time::sleep_until(deadline) => break,
            }
        }
    }

    fn ident(topic: &Topic) -> IdentTopic {
        IdentTopic::new(topic.to_string())
    }

    fn subscribe_topic(&mut self, topic: &Topic) -> Result<(), Error> {
        let t = Self::ident(topic);
        let gs = &mut self.swarm.behaviour_mut().gossipsub;
        if gs.topics().any(|h| *h == t.hash()) {
            return Ok(());
        }
        if gs.topics().count() >= self.cfg.max_topics {
            return Err(Error::Transport(format!(
                "subscribed to the maximum of {} topics",
                self.cfg.max_topics
            )));
        }
        gs.subscribe(&t)
            .map_err(|e| Error::Transport(format!("subscribe {topic}: {e:?}")))?;
        gs.set_topic_params(t, topic_score_params())
            .map_err(|e| Error::Transport(format!("topic score params: {e}")))?;
        if let Some(j) = &mut self.journal {
            let written = j.topic(topic);
            self.journal_result(written);
        }
        Ok(())
    }

    /// Stores a frame (and appends it to the journal); `None` for a duplicate.
    fn store_frame(&mut self, topic: Topic, bytes: Vec<u8>, origin: Origin) -> Option<Envelope> {
        let envelope = self.store.insert(topic, bytes, origin, now_ms())?;
        if let Some(j) = &mut self.journal {
            let written = j.entry(&envelope);
            self.journal_result(written);
        }
        Some(envelope)
    }

    /// A failed journal write gives the journal up (counted in the stats).
    fn journal_result(&mut self, written: Result<(), Error>) {
        if written.is_err() {
            self.stats.journal_errors += 1;
            self.journal = None;
        }
    }

    fn command(&mut self, cmd: Command) {
        match cmd {
            Command::Publish {
                topic,
                bytes,
                reply,
            } => {
                let checked =
                    self.cfg.limits.check(&topic, bytes.len()).and_then(|()| {
                        match self.validator.validate(&topic, &bytes) {
                            Verdict::Reject(reason) => Err(Error::Invalid {
                                topic: topic.to_string(),
                                reason,
                            }),
                            _ => Ok(()),
                        }
                    });
                match checked {
                    Err(e) => {
                        let _ = reply.send(Err(e));
                    }
                    Ok(()) => {
                        let now = Instant::now();
                        self.pending.push(PendingPublish {
                            topic,
                            bytes,
                            deadline: now + self.cfg.publish_timeout,
                            started: now,
                            reply,
                        });
                        self.flush_publishes();
                    }
                }
            }
            Command::Subscribe { topic, reply } => {
                let result = self.subscribe_topic(&topic).map(|()| {
                    let (tx, rx) = mpsc::unbounded_channel();
                    self.subs.entry(topic).or_default().push(tx);
                    rx
                });
                let _ = reply.send(result);
            }
            Command::History {
                topic,
                since,
                limit,
                reply,
            } => self.start_history(topic, since, limit, reply),
            Command::Dial { addr, reply } => {
                let r = self
                    .swarm
                    .dial(addr.clone())
                    .map_err(|e| Error::Transport(format!("dial {addr}: {e}")));
                let _ = reply.send(r);
            }
            Command::Peers { reply } => {
                let _ = reply.send(self.swarm.connected_peers().copied().collect());
            }
            Command::MeshPeers { topic, reply } => {
                let h = Self::ident(&topic).hash();
                let _ = reply.send(
                    self.swarm
                        .behaviour()
                        .gossipsub
                        .mesh_peers(&h)
                        .copied()
                        .collect(),
                );
            }
            Command::SubscribedPeers { topic, reply } => {
                let _ = reply.send(self.subscribed_peers(&topic));
            }
            Command::Score { peer, reply } => {
                let _ = reply.send(self.swarm.behaviour().gossipsub.peer_score(&peer));
            }
            Command::Stats { reply } => {
                let mut stats = self.stats;
                stats.peers = self.swarm.connected_peers().count();
                let _ = reply.send(stats);
            }
            Command::Shutdown { .. } => {}
            Command::RequestHistory {
                peer,
                request,
                reply,
            } => {
                let limit = request.limit;
                let id = self
                    .swarm
                    .behaviour_mut()
                    .history
                    .send_request(&peer, request);
                self.direct.insert(id, (limit, reply));
            }
            #[cfg(feature = "nat")]
            Command::FindPeer {
                peer,
                timeout,
                reply,
            } => {
                if self.swarm.is_connected(&peer) {
                    let _ = reply.send(Ok(()));
                } else {
                    self.swarm.behaviour_mut().kad.get_closest_peers(peer);
                    self.finds.push((peer, Instant::now() + timeout, reply));
                }
            }
        }
    }

    fn subscribed_peers(&self, topic: &Topic) -> Vec<PeerId> {
        let h = Self::ident(topic).hash();
        self.swarm
            .behaviour()
            .gossipsub
            .all_peers()
            .filter(|(_, topics)| topics.contains(&&h))
            .map(|(p, _)| *p)
            .collect()
    }

    /// Tries every waiting publish; answers those that went out or timed out.
    fn flush_publishes(&mut self) {
        let now = Instant::now();
        let pending = std::mem::take(&mut self.pending);
        for p in pending {
            let id = MessageId::of(&p.bytes);
            if self.store.contains(&p.topic, &id) {
                let _ = p.reply.send(Ok(id));
                continue;
            }
            let gs = &mut self.swarm.behaviour_mut().gossipsub;
            match gs.publish(Self::ident(&p.topic), p.bytes.clone()) {
                Ok(_) | Err(gossipsub::PublishError::Duplicate) => {
                    let origin = Origin::Peer(self.swarm.local_peer_id().to_base58());
                    self.store_frame(p.topic, p.bytes, origin);
                    let _ = p.reply.send(Ok(id));
                }
                Err(
                    gossipsub::PublishError::NoPeersSubscribedToTopic
                    | gossipsub::PublishError::AllQueuesFull(_),
                ) if now < p.deadline => {
                    self.pending.push(p);
                }
                Err(
                    gossipsub::PublishError::NoPeersSubscribedToTopic
                    | gossipsub::PublishError::AllQueuesFull(_),
                ) => {
                    let waited = now.duration_since(p.started);
                    let _ = p.reply.send(Err(Error::NoPeers {
                        topic: p.topic.to_string(),
                        waited,
                    }));
                }
                Err(gossipsub::PublishError::MessageTooLarge) => {
                    let limit = self.cfg.limits.for_kind(p.topic.kind());
                    let _ = p.reply.send(Err(Error::TooLarge {
                        topic: p.topic.to_string(),
                        size: p.bytes.len(),
                        limit,
                    }));
                }
                Err(e) => {
                    let _ = p.reply.send(Err(Error::Transport(format!("publish: {e}"))));
                }
            }
        }
    }

    fn deliver(&mut self, envelope: Envelope) {
        if let Some(subs) = self.subs.get_mut(&envelope.topic) {
            subs.retain(|tx| tx.send(envelope.clone()).is_ok());
            self.stats.delivered += 1;
        }
    }

    fn event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        match event {
            SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(e)) => self.gossip_event(e),
            SwarmEvent::Behaviour(BehaviourEvent::History(e)) => self.history_event(e),
            #[cfg(feature = "nat")]
            SwarmEvent::Behaviour(BehaviourEvent::Identify(identify::Event::Received {
                peer_id,
                info,
                ..
            })) => {
                for addr in info.listen_addrs {
                    self.swarm.behaviour_mut().kad.add_address(&peer_id, addr);
                }
            }
            #[cfg(feature = "nat")]
            SwarmEvent::Behaviour(BehaviourEvent::Kad(
                libp2p::kad::Event::OutboundQueryProgressed {
                    result: libp2p::kad::QueryResult::GetClosestPeers(Ok(ok)),
                    ..
                },
            )) => {
                for info in ok.peers {
                    let wanted = self.finds.iter().any(|(p, ..)| *p == info.peer_id);
                    if wanted && !info.addrs.is_empty() && !self.swarm.is_connected(&info.peer_id) {
                        let opts = libp2p::swarm::dial_opts::DialOpts::peer_id(info.peer_id)
                            .addresses(info.addrs)
                            .build();
                        let _ = self.swarm.dial(opts);
                    }
                }
            }
            #[cfg(feature = "nat")]
            SwarmEvent::ConnectionEstablished { peer_id, .. } => {
                for (_, _, reply) in extract(&mut self.finds, |(p, ..)| *p == peer_id) {
                    let _ = reply.send(Ok(()));
                }
            }
            _ => {}
        }
    }

    fn gossip_event(&mut self, event: gossipsub::Event) {
        match event {
            gossipsub::Event::Message {
                propagation_source,
                message_id,
                message,
            } => {
                let topic = message.topic.as_str().parse::<Topic>();
                let verdict = match &topic {
                    Err(_) => Verdict::Reject("not an eth-mls topic"),
                    Ok(t) => self.validator.validate(t, &message.data),
                };
                let acceptance = match verdict {
                    Verdict::Accept => MessageAcceptance::Accept,
                    Verdict::Ignore => MessageAcceptance::Ignore,
                    Verdict::Reject(_) => {
                        self.stats.rejected += 1;
                        MessageAcceptance::Reject
                    }
                };
                let gs = &mut self.swarm.behaviour_mut().gossipsub;
                gs.report_message_validation_result(&message_id, &propagation_source, acceptance);
                if let (Verdict::Accept, Ok(topic)) = (verdict, topic) {
                    let origin =
                        Origin::Peer(message.source.unwrap_or(propagation_source).to_base58());
                    if let Some(envelope) = self.store_frame(topic, message.data, origin) {
                        self.stats.stored += 1;
                        self.deliver(envelope);
                    }
                }
            }
            gossipsub::Event::Subscribed { peer_id: _, topic } => {
                if self.cfg.relay
                    && let Ok(t) = topic.as_str().parse::<Topic>()
                {
                    let _ = self.subscribe_topic(&t);
                }
                self.flush_publishes();
            }
            _ => {}
        }
    }

    fn start_history(
        &mut self,
        topic: Topic,
        since: Cursor,
        limit: u32,
        reply: oneshot::Sender<Result<HistoryBatch, Error>>,
    ) {
        let mut peers = self.subscribed_peers(&topic);
        for p in self.swarm.connected_peers() {
            if !peers.contains(p) {
                peers.push(*p);
            }
        }
        peers.truncate(self.cfg.history_peers);
        let skew = u64::try_from(self.cfg.history_skew.as_millis()).unwrap_or(u64::MAX);
        let remote_since = Cursor {
            at: since.at.saturating_sub(skew),
            index: 0,
        };
        let mut query = HistoryQuery {
            topic,
            since,
            limit,
            waiting: HashSet::new(),
            pages: HashMap::new(),
            deadline: Instant::now() + self.cfg.history_timeout,
            reply,
        };
        let index = self.queries.len();
        for peer in peers {
            let req = HistoryRequest {
                topic,
                since: remote_since,
                limit: MAX_ENTRIES,
            };
            let id = self.swarm.behaviour_mut().history.send_request(&peer, req);
            query.waiting.insert(id);
            query.pages.insert(peer, 1);
            self.requests.insert(id, index);
        }
        self.queries.push(query);
        self.finish_queries();
    }

    /// Answers the history queries no longer waiting for peers, from the store.
    fn finish_queries(&mut self) {
        let now = Instant::now();
        let mut i = 0;
        while i < self.queries.len() {
            let q = &self.queries[i];
            if q.waiting.is_empty() || now >= q.deadline {
                let q = self.queries.swap_remove(i);
                let page = self
                    .store
                    .query(&q.topic, q.since, q.limit as usize, MAX_RESPONSE / 2);
                let _ = q.reply.send(Ok(page));
                // Re-point the moved query's requests.
                if i < self.queries.len() {
                    for id in &self.queries[i].waiting {
                        self.requests.insert(*id, i);
                    }
                }
                for id in q.waiting {
                    self.requests.remove(&id);
                }
            } else {
                i += 1;
            }
        }
    }

    fn history_event(&mut self, event: request_response::Event<HistoryRequest, HistoryResponse>) {
        match event {
            request_response::Event::Message { peer, message, .. } => match message {
                request_response::Message::Request {
                    request, channel, ..
                } => {
                    let response = self.serve(&request);
                    self.stats.history_served += 1;
                    let _ = self
                        .swarm
                        .behaviour_mut()
                        .history
                        .send_response(channel, response);
                }
                request_response::Message::Response {
                    request_id,
                    response,
                } => {
                    if let Some((limit, reply)) = self.direct.remove(&request_id) {
                        let _ = reply.send(direct_result(response, limit));
                    } else {
                        self.history_response(peer, request_id, response);
                    }
                }
            },
            request_response::Event::OutboundFailure {
                request_id, error, ..
            } if self.direct.contains_key(&request_id) => {
                if let Some((_, reply)) = self.direct.remove(&request_id) {
                    let _ = reply.send(Err(Error::Transport(format!("history request: {error}"))));
                }
            }
            request_response::Event::OutboundFailure { request_id, .. } => {
                if let Some(q) = self.requests.remove(&request_id)
                    && let Some(q) = self.queries.get_mut(q)
                {
                    q.waiting.remove(&request_id);
                }
                self.finish_queries();
            }
            _ => {}
        }
    }

    fn serve(&self, req: &HistoryRequest) -> HistoryResponse {
        if req.limit > MAX_ENTRIES {
            return HistoryResponse::RefusedLimit;
        }
        let hash = Self::ident(&req.topic).hash();
        let subscribed = self
            .swarm
            .behaviour()
            .gossipsub
            .topics()
            .any(|h| *h == hash);
        if !subscribed && self.store.len(&req.topic) == 0 {
            return HistoryResponse::RefusedTopic;
        }
        let page = self
            .store
            .query(&req.topic, req.since, req.limit as usize, MAX_RESPONSE / 2);
        HistoryResponse::Ok {
            entries: page
                .envelopes
                .into_iter()
                .map(|e| HistoryEntry {
                    cursor: e.cursor,
                    received_at: e.received_at,
                    origin: e.origin.to_string(),
                    bytes: e.bytes,
                })
                .collect(),
            next: page.next,
        }
    }

    fn history_response(
        &mut self,
        peer: PeerId,
        request_id: OutboundRequestId,
        response: HistoryResponse,
    ) {
        let Some(qi) = self.requests.remove(&request_id) else {
            return;
        };
        let Some(q) = self.queries.get_mut(qi) else {
            return;
        };
        q.waiting.remove(&request_id);
        let topic = q.topic;
        if let HistoryResponse::Ok { entries, next } = response {
            for e in entries {
                if self.validator.validate(&topic, &e.bytes) != Verdict::Accept
                    || self.cfg.limits.check(&topic, e.bytes.len()).is_err()
                {
                    self.stats.rejected += 1;
                    continue;
                }
                if let Some(envelope) = self.store_frame(topic, e.bytes, Origin::Peer(e.origin)) {
                    self.deliver(envelope);
                }
            }
            let q = &mut self.queries[qi];
            let pages = q.pages.entry(peer).or_insert(1);
            if let Some(next) = next
                && *pages < MAX_PAGES_PER_PEER
            {
                *pages += 1;
                let req = HistoryRequest {
                    topic,
                    since: next,
                    limit: MAX_ENTRIES,
                };
                let id = self.swarm.behaviour_mut().history.send_request(&peer, req);
                self.queries[qi].waiting.insert(id);
                self.requests.insert(id, qi);
            }
        }
        self.finish_queries();
    }

    fn tick(&mut self) {
        #[cfg(feature = "nat")]
        {
            let now = Instant::now();
            for (peer, _, reply) in extract(&mut self.finds, |(_, deadline, _)| now >= *deadline) {
                let _ = reply.send(Err(Error::PeerNotFound {
                    peer: peer.to_base58(),
                }));
            }
        }
        if !self.pending.is_empty() {
            self.flush_publishes();
        }
        if !self.queries.is_empty() {
            self.finish_queries();
        }
        // Reconnect to the bootstrap peers when alone.
        if self.swarm.connected_peers().next().is_none()
            && !self.cfg.bootstrap.is_empty()
            && self.last_redial.elapsed() > Duration::from_secs(2)
        {
            self.last_redial = Instant::now();
            for addr in self.cfg.bootstrap.clone() {
                let _ = self.swarm.dial(addr);
            }
        }
        self.store.prune_all(now_ms());
        if let Some(j) = &mut self.journal {
            let written = j.flush();
            self.journal_result(written);
        }
    }
}

/// A DHT lookup: the peer, when to give up, whom to tell.
#[cfg(feature = "nat")]
type Find = (PeerId, Instant, oneshot::Sender<Result<(), Error>>);

/// Removes and returns the items matching `f`.
#[cfg(feature = "nat")]
fn extract<T>(items: &mut Vec<T>, mut f: impl FnMut(&T) -> bool) -> Vec<T> {
    let (out, keep) = std::mem::take(items).into_iter().partition(|t| f(t));
    *items = keep;
    out
}

/// The answer to [`GossipNode::request_history`]: entries and where the next page starts.
pub type DirectResult = Result<(Vec<HistoryEntry>, Option<Cursor>), Error>;

fn direct_result(response: HistoryResponse, limit: u32) -> DirectResult {
    match response {
        HistoryResponse::Ok { entries, next } => Ok((entries, next)),
        HistoryResponse::RefusedLimit => Err(Error::HistoryLimit {
            requested: limit,
            max: MAX_ENTRIES,
        }),
        HistoryResponse::RefusedTopic => Err(Error::NotServed),
    }
}

/// The 32-byte Ed25519 public key of a node identity: what the node publishes in ERC-7627
/// (eth-mls-chain's `Erc7627::publish_peer_key`) so others find its PeerId by account.
/// `None` for a non-Ed25519 identity.
pub fn ed25519_public_key(keypair: &Keypair) -> Option<[u8; 32]> {
    keypair
        .public()
        .try_into_ed25519()
        .ok()
        .map(|k| k.to_bytes())
}

/// The PeerId of the node whose Ed25519 public key is `key` (as read from ERC-7627).
pub fn peer_id_from_ed25519(key: &[u8; 32]) -> Result<PeerId, Error> {
    let public =
        libp2p::identity::ed25519::PublicKey::try_from_bytes(key).map_err(|_| Error::Decode {
            what: "Ed25519 peer key",
            reason: "not a valid Ed25519 public key",
        })?;
    Ok(libp2p::identity::PublicKey::from(public).to_peer_id())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_codec_refuses_garbage_and_oversized_input_with_bounded_reads() {
        use request_response::Codec;
        let mut codec = HistoryCodec { max_frame: 1024 };
        let protocol = StreamProtocol::new(HISTORY_PROTOCOL);
        let mut garbage = libp2p::futures::io::Cursor::new(vec![0xffu8; 100]);
        assert!(codec.read_request(&protocol, &mut garbage).await.is_err());
        // Far more than any request: refused after reading just past the limit.
        let mut huge = libp2p::futures::io::Cursor::new(vec![1u8; 1 << 20]);
        assert!(codec.read_request(&protocol, &mut huge).await.is_err());
        assert!(huge.position() <= (MAX_REQUEST + 1) as u64);
        let mut garbage = libp2p::futures::io::Cursor::new(vec![1u8, 0, 0, 0xff, 0xff, 0xff, 0xff]);
        assert!(codec.read_response(&protocol, &mut garbage).await.is_err());
        // A valid request goes through.
        let topic = Topic::App {
            chain_id: 1,
            group: [1; 20],
        };
        let req = HistoryRequest {
            topic,
            since: Cursor::START,
            limit: 5,
        };
        let mut ok = libp2p::futures::io::Cursor::new(req.encode());
        assert_eq!(
            codec.read_request(&protocol, &mut ok).await.expect("valid"),
            req
        );
    }

    #[test]
    fn peer_keys_round_trip_to_peer_ids() {
        let keypair = Keypair::generate_ed25519();
        let key = ed25519_public_key(&keypair).expect("ed25519");
        assert_eq!(
            peer_id_from_ed25519(&key).expect("valid"),
            keypair.public().to_peer_id()
        );
        // Not every 32-byte string is a point.
        let bad = (0u8..=255)
            .map(|b| [b; 32])
            .find(|k| peer_id_from_ed25519(k).is_err());
        assert!(bad.is_some());
    }
}
