//! Gossip for `ethmls`: each command's own libp2p node (its key derived from the account's, so
//! its PeerId is stable and can be published in ERC-7627), the peers it bootstraps from, mesh
//! readiness, and `ethmls node`, the long-running relay and history store. A peer that is down
//! is known within two seconds (its TCP address refuses, does not answer, or is not libp2p).

use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use eth_mls_transport::libp2p::identity::Keypair;
use eth_mls_transport::libp2p::{Multiaddr, PeerId};
use eth_mls_transport::{FrameValidator, GossipConfig, GossipNode, Limits};
use serde_json::{Value, json};
use sha2_legacy::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::out::{Failure, Kind, Out, Progress};

/// Where `ethmls node` listens unless told otherwise.
pub const NODE_LISTEN: &str = "/ip4/127.0.0.1/tcp/7627";
/// Where a command's own node listens unless told otherwise (a free port on loopback).
pub const CLIENT_LISTEN: &str = "/ip4/127.0.0.1/tcp/0";
/// How long a command waits to be connected to one of its peers.
const CONNECT_WAIT: Duration = Duration::from_secs(15);
/// Domain of the derivation of an account's node key.
const NODE_KEY_DOMAIN: &[u8] = b"eth-mls/ethmls/libp2p-node-key/v1";

/// The node this process runs, shut down (its queued frames sent) before the process exits.
static NODE: OnceLock<GossipNode> = OnceLock::new();

/// Stops this process's gossip node, if it started one, letting queued frames leave.
pub async fn shutdown() {
    if let Some(node) = NODE.get() {
        node.shutdown().await;
    }
}

/// The account's libp2p node key: Ed25519 from SHA-256 of a fixed domain and the account's
/// secp256k1 key, so it needs no file of its own (the keystore protects it) and one account
/// has one PeerId, the one `ethmls register` publishes.
pub fn account_node_key(account_key: &[u8; 32]) -> Result<Keypair, Failure> {
    let mut h = Sha256::new();
    h.update(NODE_KEY_DOMAIN);
    h.update(account_key);
    let mut seed = Zeroizing::new(<[u8; 32]>::from(h.finalize()));
    Keypair::ed25519_from_bytes(seed.as_mut_slice())
        .map_err(|e| Failure::new(Kind::Other, format!("node key: {e}"), ""))
}

/// The relay's own key: `<home>/node.key` (hex seed, owner-only), made on its first run.
fn relay_key(home: &Path) -> Result<Keypair, Failure> {
    let path = home.join("node.key");
    let mut seed = Zeroizing::new([0u8; 32]);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let bytes = Zeroizing::new(hex::decode(text.trim()).map_err(|_| {
                Failure::usage(
                    format!("{} is not a hex key", path.display()),
                    "delete it to make a new one (the node's PeerId changes)",
                )
            })?);
            if bytes.len() != 32 {
                return Err(Failure::usage(
                    format!("{} is not a 32-byte key", path.display()),
                    "delete it to make a new one (the node's PeerId changes)",
                ));
            }
            seed.copy_from_slice(&bytes);
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            getrandom::fill(seed.as_mut())
                .map_err(|e| Failure::new(Kind::Other, format!("no randomness: {e}"), ""))?;
            crate::private::dir(home)?;
            crate::account::write_private(&path, hex::encode(seed.as_slice()).as_bytes())?;
        }
        Err(e) => return Err(Failure::io(&path, e)),
    }
    Keypair::ed25519_from_bytes(seed.as_mut_slice())
        .map_err(|e| Failure::new(Kind::Other, format!("node key: {e}"), ""))
}

fn parse_multiaddr(s: &str, what: &str) -> Result<Multiaddr, Failure> {
    s.trim().parse().map_err(|e| {
        Failure::usage(
            format!("{what} {s:?} is not a multiaddr: {e}"),
            "write it as /ip4/127.0.0.1/tcp/7627/p2p/<peer id> (what `ethmls node` prints)",
        )
    })
}

/// The peers to bootstrap from: each must name its PeerId (`/p2p/...`).
pub fn parse_peers(peers: &[String]) -> Result<Vec<Multiaddr>, Failure> {
    let mut out = Vec::new();
    for p in peers.iter().filter(|p| !p.trim().is_empty()) {
        let addr = parse_multiaddr(p, "peer")?;
        if peer_of(&addr).is_none() {
            return Err(Failure::usage(
                format!("peer {p:?} does not end in /p2p/<peer id>"),
                "copy the whole address `ethmls node` printed",
            ));
        }
        out.push(addr);
    }
    Ok(out)
}

fn peer_of(addr: &Multiaddr) -> Option<PeerId> {
    addr.iter().find_map(|p| match p {
        eth_mls_transport::libp2p::multiaddr::Protocol::P2p(id) => Some(id),
        _ => None,
    })
}

/// Starts this command's node as `keypair` (once per process: later calls get that one),
/// listening on `listen`, and waits (with a progress line) until it is connected to one of
/// `peers`. A failure is a transport error that says what to check.
pub async fn start_client_node(
    keypair: Keypair,
    listen: &str,
    peers: Vec<Multiaddr>,
) -> Result<GossipNode, Failure> {
    if let Some(node) = NODE.get() {
        // Started already (a command that reset a lost chain opens its client again).
        return Ok(node.clone());
    }
    if peers.is_empty() {
        return Err(Failure::usage(
            "gossip delivery needs at least one peer",
            "start a relay with `ethmls node` and pass its address with --peer (or ETHMLS_PEERS)",
        ));
    }
    // A relay that is down refuses or ignores TCP (or something else answers): known within
    // PROBE_WAIT, not CONNECT_WAIT.
    let probes = futures_util::future::join_all(peers.iter().map(probe)).await;
    if probes.iter().all(|p| p.is_err()) {
        let why = probes
            .iter()
            .filter_map(|p| p.as_ref().err().cloned())
            .collect::<Vec<_>>()
            .join("; ");
        let f = Failure::new(
            Kind::Transport,
            format!(
                "none of the {} gossip peers answered within {} s ({why})",
                peers.len(),
                PROBE_WAIT.as_secs()
            ),
            "is `ethmls node` running at the --peer address? (or use --delivery chain)",
        );
        let _ = DOWN.set(f.message().to_string());
        return Err(f);
    }
    let cfg = GossipConfig {
        listen: vec![parse_multiaddr(listen, "listen address")?],
        bootstrap: peers.clone(),
        heartbeat: Duration::from_millis(200),
        publish_timeout: Duration::from_secs(10),
        ..GossipConfig::default()
    };
    let node = start(keypair, cfg, "the gossip node").await?;
    let _ = NODE.set(node.clone());
    let wanted: Vec<PeerId> = peers.iter().filter_map(peer_of).collect();
    let mut bar = Progress::new("connecting to gossip peers", wanted.len() as u64);
    let deadline = Instant::now() + CONNECT_WAIT;
    loop {
        let connected = node.peers().await.map_err(transport)?;
        let n = wanted.iter().filter(|p| connected.contains(p)).count();
        bar.set(n as u64);
        if n == wanted.len() || (n > 0 && Instant::now() + CONNECT_WAIT / 3 > deadline) {
            bar.done();
            return Ok(node);
        }
        if Instant::now() >= deadline {
            bar.done();
            if n > 0 {
                return Ok(node);
            }
            return Err(Failure::new(
                Kind::Transport,
                format!(
                    "none of the {} gossip peers answered within {} s",
                    wanted.len(),
                    CONNECT_WAIT.as_secs()
                ),
                "is `ethmls node` running at the --peer address? (or use --delivery chain)",
            ));
        }
        // A loopback relay answers in a few milliseconds: look again soon.
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// How long a peer's TCP address is given to answer before it counts as down.
const PROBE_WAIT: Duration = Duration::from_secs(2);

/// Why gossip was found unreachable by this process, if it was (for `doctor`).
static DOWN: OnceLock<String> = OnceLock::new();

/// Why the gossip peers were unreachable, when they were.
pub fn down() -> Option<&'static str> {
    DOWN.get().map(String::as_str)
}

/// Whether a libp2p node answers at a peer's TCP address within [`PROBE_WAIT`]. Addresses
/// that are not plain IP + TCP (DNS names, other transports) are left to libp2p: `Ok`.
async fn probe(addr: &Multiaddr) -> Result<(), String> {
    use eth_mls_transport::libp2p::multiaddr::Protocol;
    let mut ip = None;
    let mut port = None;
    for p in addr.iter() {
        match p {
            Protocol::Ip4(a) => ip = Some(std::net::IpAddr::V4(a)),
            Protocol::Ip6(a) => ip = Some(std::net::IpAddr::V6(a)),
            Protocol::Tcp(p) => port = Some(p),
            _ => {}
        }
    }
    let (Some(ip), Some(port)) = (ip, port) else {
        return Ok(());
    };
    match tokio::time::timeout(PROBE_WAIT, speaks_libp2p(ip, port)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(format!("{ip}:{port}: {e}")),
        Err(_) => Err(format!("{ip}:{port}: no answer")),
    }
}

/// The multistream-select header every libp2p connection starts with (length-prefixed).
const MULTISTREAM: &[u8] = b"\x13/multistream/1.0.0\n";

/// Whether a libp2p node answers at `ip:port`: a TCP connection that answers our
/// multistream-select header with its own. A port that merely accepts (a proxy, another
/// service) is not a relay.
async fn speaks_libp2p(ip: std::net::IpAddr, port: u16) -> Result<(), String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect((ip, port))
        .await
        .map_err(|e| e.to_string())?;
    stream
        .write_all(MULTISTREAM)
        .await
        .map_err(|e| e.to_string())?;
    let mut answer = [0u8; 20];
    let mut read = 0;
    while read < MULTISTREAM.len() {
        match stream.read(&mut answer[read..]).await {
            Ok(0) => break,
            Ok(n) => read += n,
            Err(e) => return Err(e.to_string()),
        }
    }
    if answer.get(..MULTISTREAM.len()) == Some(MULTISTREAM) {
        Ok(())
    } else {
        Err("not a libp2p node".into())
    }
}

/// Starts a node checking frames' framing; a failure says what to check.
async fn start(keypair: Keypair, cfg: GossipConfig, what: &str) -> Result<GossipNode, Failure> {
    GossipNode::start(
        keypair,
        cfg,
        Arc::new(FrameValidator::new(Limits::default())),
    )
    .await
    .map_err(|e| {
        Failure::new(
            Kind::Transport,
            format!("{what} did not start: {e}"),
            "is the --listen address (ETHMLS_LISTEN) taken? pass another, e.g. /ip4/127.0.0.1/tcp/0",
        )
    })
}

fn transport(e: eth_mls_transport::Error) -> Failure {
    Failure::new(
        Kind::Transport,
        e.to_string(),
        "the gossip node stopped; run the command again",
    )
}

/// What `doctor` says about gossip: this node's PeerId, its peers, and whether the PeerId
/// the chain has for the account is this one.
pub async fn doctor_info(registered: Option<PeerId>) -> Option<Value> {
    let node = NODE.get()?;
    let peers: Vec<String> = node
        .peers()
        .await
        .unwrap_or_default()
        .iter()
        .map(|p| p.to_base58())
        .collect();
    Some(json!({
        "peer_id": node.peer_id().to_base58(),
        "peers": peers,
        "registered_peer_id": registered.map(|p| p.to_base58()),
    }))
}

/// `ethmls node`: a relay that subscribes to every eth-mls topic its peers subscribe to,
/// forwards and stores their frames (the history returning peers ask for, kept across
/// restarts in `<home>/node-history.journal`, a week or 10,000 frames per topic); runs until
/// interrupted or its standard input closes.
pub async fn run_node(
    home: &Path,
    listen: &str,
    peers: Vec<Multiaddr>,
    out: &Out,
) -> Result<Value, Failure> {
    let keypair = relay_key(home)?;
    let cfg = GossipConfig {
        listen: vec![parse_multiaddr(listen, "listen address")?],
        bootstrap: peers,
        relay: true,
        heartbeat: Duration::from_millis(200),
        journal: Some(home.join("node-history.journal")),
        ..GossipConfig::default()
    };
    out.progress("starting the gossip relay");
    let node = start(keypair, cfg, "the relay").await?;
    let addresses: Vec<String> = node.addresses().iter().map(ToString::to_string).collect();
    let info = json!({ "peer_id": node.peer_id().to_base58(), "addresses": addresses });
    let path = home.join("node.json");
    crate::private::write(&path, info.to_string().as_bytes())?;
    out.event(&json!({ "event": "node_ready", "peer_id": info["peer_id"], "addresses": info["addresses"] }));
    let stop = crate::signals::signal_or_end_of_input();
    tokio::pin!(stop);
    let mut last = eth_mls_transport::NodeStats::default();
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    loop {
        tokio::select! {
            _ = &mut stop => break,
            _ = tick.tick() => {
                let stats = node.stats().await.map_err(transport)?;
                if stats != last {
                    out.event(&json!({
                        "event": "node_stats",
                        "peers": stats.peers,
                        "stored": stats.stored,
                        "rejected": stats.rejected,
                        "history_served": stats.history_served,
                    }));
                    last = stats;
                }
            }
        }
    }
    let stats = node.stats().await.map_err(transport)?;
    node.shutdown().await;
    Ok(json!({
        "peer_id": info["peer_id"],
        "addresses": info["addresses"],
        "frames_stored": stats.stored,
        "history_served": stats.history_served,
    }))
}
