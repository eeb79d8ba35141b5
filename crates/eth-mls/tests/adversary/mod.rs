//! An adversarial peer of the 1:1 channel (security review 2026-12, issue 27): it publishes raw
//! channel frames on any account's inbox topic, claiming any sender and using any keys it
//! likes. Its tests are in `tests/client.rs` (one test binary for the client).

use eth_mls::wire::ClientMessage;
use eth_mls_chain::{Chain, Deployment};
use eth_mls_channel::{
    DefaultBackend as ChannelBackend, Device, OneTimePrekeyChoice, PrekeyBundle, Secret,
};
use eth_mls_siwe::Address;
use eth_mls_transport::{DeliveryService, MemoryNode, Topic};

/// Mallory: a network node and a chain reader, and channel devices that claim to be any
/// account (each with Mallory's own fresh keys).
pub struct Mallory {
    /// Mallory's node on the in-memory network.
    pub node: MemoryNode,
    /// A chain client (reads the victims' published bundles).
    pub chain: Chain,
    /// The deployment (the registry's address).
    pub deployment: Deployment,
}

/// Unix seconds now.
fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

impl Mallory {
    /// A channel device that claims to be `claimed`: Mallory's own identity and signature
    /// keys, the victim's address.
    pub fn device_claiming(claimed: Address) -> Device<ChannelBackend> {
        let mut seed = [0u8; 57];
        getrandom::fill(&mut seed).unwrap();
        let seed = Secret::from_slice(&seed).unwrap();
        let mut d = Device::<ChannelBackend>::generate(claimed.into_array(), seed).unwrap();
        d.rotate_signed_prekey(now(), 86_400).unwrap();
        d
    }

    /// A channel device of Mallory's own account, its bundle published (her identity key
    /// registered as her inbox key): what an outsider with a funded account can do.
    pub async fn registered_device(&self) -> Device<ChannelBackend> {
        let me = self.chain.sender().unwrap();
        let mut d = Self::device_claiming(me);
        d.generate_one_time_prekeys(2).unwrap();
        let bundle = d.bundle(now(), 2).unwrap().encode().unwrap();
        self.chain
            .erc7627(self.deployment.erc7627)
            .publish_channel_bundle(d.identity_key(), &bundle)
            .await
            .unwrap();
        d
    }

    /// `victim`'s published, valid bundle.
    pub async fn bundle_of(&self, victim: Address) -> eth_mls_channel::VerifiedBundle {
        let published = self
            .chain
            .erc7627(self.deployment.erc7627)
            .channel_bundle(victim, self.deployment.block)
            .await
            .unwrap()
            .expect("the victim published a bundle");
        PrekeyBundle::validate::<ChannelBackend>(&published.bundle, now()).unwrap()
    }

    /// Opens a session from `device` to `victim` (one-time prekey as chosen) and sends
    /// `message` on it; returns the session id.
    pub async fn send_as(
        &self,
        device: &mut Device<ChannelBackend>,
        victim: Address,
        choice: OneTimePrekeyChoice,
        message: &ClientMessage,
    ) -> [u8; 32] {
        let bundle = self.bundle_of(victim).await;
        let session = device.initiate(&bundle, choice).unwrap();
        let bytes = device
            .encrypt(&session, &message.encode().unwrap())
            .unwrap();
        self.publish(victim, bytes).await;
        session
    }

    /// Publishes raw bytes on `victim`'s inbox topic.
    pub async fn publish(&self, victim: Address, bytes: Vec<u8>) {
        let topic = Topic::Inbox {
            chain_id: self.chain.chain_id(),
            account: victim.into_array(),
        };
        self.node.publish(&topic, bytes).await.unwrap();
    }
}

/// A JSON-RPC endpoint in front of anvil that behaves like a public provider: `eth_getLogs`
/// spanning more than `max_range` blocks (an open `toBlock` counts to the head) is refused
/// with the error such providers give; while `down` is set, every request fails (HTTP 503).
pub struct LimitedRpc {
    /// Its URL (127.0.0.1, a free port).
    pub url: String,
    /// An outage switch.
    pub down: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// `eth_getLogs` calls refused so far.
    pub refused: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    /// JSON-RPC requests received so far.
    pub requests: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    /// While set, `eth_call` fails (a provider's error that is not a revert: rate limits, gas
    /// caps, timeouts); everything else works.
    pub calls_down: std::sync::Arc<std::sync::atomic::AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for LimitedRpc {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl LimitedRpc {
    /// Starts the endpoint in front of `upstream`.
    pub async fn start(upstream: String, max_range: u64) -> Self {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicBool, AtomicUsize};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let down = Arc::new(AtomicBool::new(false));
        let refused = Arc::new(AtomicUsize::new(0));
        let requests = Arc::new(AtomicUsize::new(0));
        let calls_down = Arc::new(AtomicBool::new(false));
        let (d, r, l, c) = (
            down.clone(),
            refused.clone(),
            requests.clone(),
            calls_down.clone(),
        );
        let task = tokio::spawn(async move {
            let http = eth_mls_chain::alloy::transports::http::reqwest::Client::new();
            loop {
                let Ok((socket, _)) = listener.accept().await else {
                    return;
                };
                let (http, upstream, d, r, l, c) = (
                    http.clone(),
                    upstream.clone(),
                    d.clone(),
                    r.clone(),
                    l.clone(),
                    c.clone(),
                );
                tokio::spawn(async move {
                    let _ = serve(socket, http, upstream, max_range, (d, c), (r, l)).await;
                });
            }
        });
        Self {
            url,
            down,
            refused,
            requests,
            calls_down,
            task,
        }
    }
}

async fn serve(
    socket: tokio::net::TcpStream,
    http: eth_mls_chain::alloy::transports::http::reqwest::Client,
    upstream: String,
    max_range: u64,
    (down, calls_down): (
        std::sync::Arc<std::sync::atomic::AtomicBool>,
        std::sync::Arc<std::sync::atomic::AtomicBool>,
    ),
    (refused, requests): (
        std::sync::Arc<std::sync::atomic::AtomicUsize>,
        std::sync::Arc<std::sync::atomic::AtomicUsize>,
    ),
) -> std::io::Result<()> {
    use std::sync::atomic::Ordering;
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
    let mut socket = BufReader::new(socket);
    loop {
        let mut len = 0usize;
        let mut line = String::new();
        loop {
            line.clear();
            if socket.read_line(&mut line).await? == 0 {
                return Ok(());
            }
            if line == "\r\n" {
                break;
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                len = v.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0u8; len];
        socket.read_exact(&mut body).await?;
        let (status, answer) = if down.load(Ordering::SeqCst) {
            ("503 Service Unavailable", Vec::new())
        } else {
            let request: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
            requests.fetch_add(1, Ordering::SeqCst);
            if calls_down.load(Ordering::SeqCst) && request["method"] == "eth_call" {
                let e = serde_json::json!({ "jsonrpc": "2.0", "id": request["id"], "error": { "code": -32005, "message": "request rate exceeded" } });
                let body = e.to_string().into_bytes();
                let head = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
                    body.len()
                );
                socket.get_mut().write_all(head.as_bytes()).await?;
                socket.get_mut().write_all(&body).await?;
                continue;
            }
            match too_wide(&http, &upstream, &request, max_range).await {
                Some(id) => {
                    refused.fetch_add(1, Ordering::SeqCst);
                    let e = serde_json::json!({ "jsonrpc": "2.0", "id": id, "error": { "code": -32005, "message": format!("query exceeds max block range {max_range}") } });
                    ("200 OK", e.to_string().into_bytes())
                }
                None => {
                    let answer = http
                        .post(&upstream)
                        .header("content-type", "application/json")
                        .body(body)
                        .send()
                        .await
                        .map_err(std::io::Error::other)?
                        .bytes()
                        .await
                        .map_err(std::io::Error::other)?;
                    ("200 OK", answer.to_vec())
                }
            }
        };
        let head = format!(
            "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
            answer.len()
        );
        let s = socket.get_mut();
        s.write_all(head.as_bytes()).await?;
        s.write_all(&answer).await?;
    }
}

/// The id of an `eth_getLogs` request spanning more than `max_range` blocks.
async fn too_wide(
    http: &eth_mls_chain::alloy::transports::http::reqwest::Client,
    upstream: &str,
    request: &serde_json::Value,
    max_range: u64,
) -> Option<serde_json::Value> {
    if request["method"] != "eth_getLogs" {
        return None;
    }
    let filter = &request["params"][0];
    if filter.get("blockHash").is_some() {
        return None;
    }
    let number = |v: &serde_json::Value| {
        v.as_str()
            .and_then(|s| s.strip_prefix("0x"))
            .and_then(|h| u64::from_str_radix(h, 16).ok())
    };
    let head = async {
        let answer: serde_json::Value = http
            .post(upstream)
            .json(&serde_json::json!({ "jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber", "params": [] }))
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        number(&answer["result"])
    };
    let from = number(&filter["fromBlock"]).unwrap_or(0);
    let to = match number(&filter["toBlock"]) {
        Some(to) => to,
        None => head.await?,
    };
    (to.saturating_sub(from) >= max_range).then(|| request["id"].clone())
}
