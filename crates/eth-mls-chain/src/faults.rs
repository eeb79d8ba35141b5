//! The chain fault harness (test support, feature `faults`): an HTTP JSON-RPC proxy in front of
//! a node (anvil) that behaves like the providers users meet — latency, HTTP 429 bursts,
//! requests that hang and time out, answers lost after the node acted on the request, and the
//! `eth_getLogs` caps of common providers (block range, result count) — and counts what went
//! through it. Faults are chosen by request number (deterministic: a test's run is the same
//! every time) and can be changed while the proxy runs.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use eth_mls_chain::faults::{Burst, FaultConfig, FaultProxy};
//! let devnet = eth_mls_chain::Devnet::start()?;
//! let proxy = FaultProxy::start(&devnet.rpc_url(), FaultConfig {
//!     latency: std::time::Duration::from_millis(100),
//!     rate_limit: Some(Burst { every: 10, length: 3 }),   // 3 of every 10 requests: 429
//!     max_log_range: Some(1_000),                          // like a free-tier provider
//!     ..FaultConfig::default()
//! }).await?;
//! let chain = eth_mls_chain::Chain::connect(&proxy.url(), None).await?;
//! # let _ = chain; Ok(()) }
//! ```

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

use crate::Error;

mod ws;
pub use ws::WsFaultProxy;

/// Requests `n` (counted from 0 over all requests the proxy saw) with
/// `n % every < length`: a burst of `length` in every `every`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Burst {
    /// The period, in requests.
    pub every: u64,
    /// How many requests of each period are hit.
    pub length: u64,
}

impl Burst {
    fn hits(self, n: u64) -> bool {
        self.every > 0 && n % self.every < self.length
    }
}

/// What the proxy does to requests. The default passes everything through unchanged.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FaultConfig {
    /// Added before every answer.
    pub latency: Duration,
    /// Requests answered HTTP 429 (`Too Many Requests`) without reaching the node.
    pub rate_limit: Option<Burst>,
    /// Requests held for [`FaultConfig::hang_for`], then their connection closed without an
    /// answer, without reaching the node (a timeout).
    pub hang: Option<Burst>,
    /// How long a hung request is held.
    pub hang_for: Duration,
    /// Requests passed to the node whose answer is lost (the connection closed instead): the
    /// node acted on them, the client cannot know.
    pub lose_answer: Option<Burst>,
    /// `eth_getLogs` over more blocks than this is refused (as Alchemy's and Infura's free
    /// tiers do).
    pub max_log_range: Option<u64>,
    /// `eth_getLogs` with more results than this is refused (Infura: 10,000).
    pub max_log_results: Option<usize>,
}

/// What went through the proxy.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FaultStats {
    /// Requests by JSON-RPC method (a batch counts each of its requests), retries included.
    pub methods: BTreeMap<String, u64>,
    /// Requests passed to the node (and answered by it) by method: the queries that cost the
    /// provider something.
    pub forwarded: BTreeMap<String, u64>,
    /// Requests answered 429.
    pub rate_limited: u64,
    /// Requests hung.
    pub hung: u64,
    /// Requests whose answer was lost.
    pub answers_lost: u64,
    /// `eth_getLogs` refused for their range or result count.
    pub logs_refused: u64,
}

impl FaultStats {
    /// Requests of `method`, retries included.
    pub fn calls(&self, method: &str) -> u64 {
        self.methods.get(method).copied().unwrap_or(0)
    }

    /// Requests of `method` the node answered.
    pub fn answered(&self, method: &str) -> u64 {
        self.forwarded.get(method).copied().unwrap_or(0)
    }
}

#[derive(Default)]
struct Shared {
    config: FaultConfig,
    stats: FaultStats,
    requests: u64,
    /// Answers still to lose, by method.
    lose: BTreeMap<String, u64>,
    /// Raw transactions still to swallow.
    swallow: u64,
}

/// The proxy; it stops when dropped.
pub struct FaultProxy {
    addr: SocketAddr,
    shared: Arc<Mutex<Shared>>,
    task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for FaultProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaultProxy")
            .field("addr", &self.addr)
            .finish()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What to do with one request.
enum Fate {
    Pass,
    Swallow,
    RateLimit,
    Hang(Duration),
    LoseAnswer,
}

impl FaultProxy {
    /// Listens on a free loopback port and forwards to `upstream` (an `http://` JSON-RPC URL)
    /// with `config`'s faults. Needs a Tokio runtime with I/O and timers.
    pub async fn start(upstream: &str, config: FaultConfig) -> Result<FaultProxy, Error> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| Error::Devnet(format!("fault proxy: {e}")))?;
        let addr = listener
            .local_addr()
            .map_err(|e| Error::Devnet(format!("fault proxy: {e}")))?;
        let shared = Arc::new(Mutex::new(Shared {
            config,
            ..Shared::default()
        }));
        let http = alloy::transports::http::reqwest::Client::new();
        let upstream = upstream.to_owned();
        let state = shared.clone();
        let task = tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let (state, http, upstream) = (state.clone(), http.clone(), upstream.clone());
                tokio::spawn(async move {
                    let _ = serve(socket, &state, &http, &upstream).await;
                });
            }
        });
        Ok(FaultProxy { addr, shared, task })
    }

    /// The proxy's URL, to give clients instead of the node's.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Changes the faults from the next request on.
    pub fn set(&self, config: FaultConfig) {
        if let Ok(mut s) = self.shared.lock() {
            s.config = config;
        }
    }

    /// The faults in force.
    pub fn config(&self) -> FaultConfig {
        self.shared
            .lock()
            .map(|s| s.config.clone())
            .unwrap_or_default()
    }

    /// What went through so far.
    pub fn stats(&self) -> FaultStats {
        self.shared
            .lock()
            .map(|s| s.stats.clone())
            .unwrap_or_default()
    }

    /// Loses the answers to the next `count` requests of `method` (after the node acted on
    /// them), besides the configured faults: e.g. the answer to the next
    /// `eth_sendRawTransaction`.
    pub fn lose_answers(&self, method: &str, count: u64) {
        if let Ok(mut s) = self.shared.lock() {
            s.lose.insert(method.to_owned(), count);
        }
    }

    /// Answers the next `count` `eth_sendRawTransaction` with the transaction's hash, as if
    /// the node took it, without passing it on: a transaction the provider lost, never mined.
    pub fn swallow_transactions(&self, count: u64) {
        if let Ok(mut s) = self.shared.lock() {
            s.swallow = count;
        }
    }

    /// Forgets the counts (the request numbering of the bursts goes on).
    pub fn reset_stats(&self) {
        if let Ok(mut s) = self.shared.lock() {
            s.stats = FaultStats::default();
        }
    }
}

/// One HTTP/1.1 request: its body (`None` when the peer closed the connection).
async fn read_request(reader: &mut BufReader<TcpStream>) -> std::io::Result<Option<Vec<u8>>> {
    let mut length = 0usize;
    let mut first = true;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).await? == 0 {
            return Ok(None);
        }
        if first && line.trim().is_empty() {
            continue;
        }
        first = false;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0; length.min(64 << 20)];
    reader.read_exact(&mut body).await?;
    Ok(Some(body))
}

async fn respond(socket: &mut TcpStream, status: &str, body: &[u8]) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    socket.write_all(head.as_bytes()).await?;
    socket.write_all(body).await?;
    socket.flush().await
}

async fn serve(
    socket: TcpStream,
    state: &Mutex<Shared>,
    http: &alloy::transports::http::reqwest::Client,
    upstream: &str,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(socket);
    while let Some(body) = read_request(&mut reader).await? {
        let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let calls: Vec<&Value> = match &request {
            Value::Array(a) => a.iter().collect(),
            v => vec![v],
        };
        let (config, fate) = {
            let Ok(mut s) = state.lock() else {
                return Ok(());
            };
            for c in &calls {
                let method = c["method"].as_str().unwrap_or("?").to_owned();
                *s.stats.methods.entry(method).or_default() += 1;
            }
            let n = s.requests;
            s.requests += 1;
            let c = s.config.clone();
            let method = calls
                .first()
                .and_then(|c| c["method"].as_str())
                .unwrap_or("?");
            let targeted = match s.lose.get_mut(method) {
                Some(left) if *left > 0 => {
                    *left -= 1;
                    true
                }
                _ => false,
            };
            let swallow = method == "eth_sendRawTransaction" && s.swallow > 0;
            if swallow {
                s.swallow -= 1;
            }
            let fate = if swallow {
                Fate::Swallow
            } else if targeted {
                s.stats.answers_lost += 1;
                Fate::LoseAnswer
            } else if c.rate_limit.is_some_and(|b| b.hits(n)) {
                s.stats.rate_limited += 1;
                Fate::RateLimit
            } else if c.hang.is_some_and(|b| b.hits(n)) {
                s.stats.hung += 1;
                Fate::Hang(c.hang_for)
            } else if c.lose_answer.is_some_and(|b| b.hits(n)) {
                s.stats.answers_lost += 1;
                Fate::LoseAnswer
            } else {
                Fate::Pass
            };
            (c, fate)
        };
        tokio::time::sleep(config.latency).await;
        let socket = reader.get_mut();
        match fate {
            Fate::RateLimit => {
                let body = json!({"jsonrpc": "2.0", "id": request.get("id"),
                    "error": {"code": 429, "message": "Too Many Requests"}});
                respond(socket, "429 Too Many Requests", body.to_string().as_bytes()).await?;
                continue;
            }
            Fate::Hang(d) => {
                tokio::time::sleep(d).await;
                return Ok(());
            }
            Fate::Swallow => {
                let raw = request["params"][0].as_str().unwrap_or("0x");
                let bytes = alloy::primitives::hex::decode(raw).unwrap_or_default();
                let body = json!({"jsonrpc": "2.0", "id": request.get("id"),
                    "result": alloy::primitives::keccak256(bytes)});
                respond(socket, "200 OK", body.to_string().as_bytes()).await?;
                continue;
            }
            Fate::LoseAnswer | Fate::Pass => {}
        }
        // The log caps, before the node is asked (a refused query costs it nothing).
        if let (Value::Object(_), Some("eth_getLogs")) = (&request, request["method"].as_str())
            && let Some(refusal) = log_refusal(&request, &config, http, upstream).await
        {
            if let Ok(mut s) = state.lock() {
                s.stats.logs_refused += 1;
            }
            respond(socket, "200 OK", refusal.to_string().as_bytes()).await?;
            continue;
        }
        let answer = match http
            .post(upstream)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
        {
            Ok(r) => r.bytes().await.map(|b| b.to_vec()).unwrap_or_default(),
            Err(_) => return Ok(()),
        };
        if let Ok(mut s) = state.lock() {
            for c in &calls {
                let method = c["method"].as_str().unwrap_or("?").to_owned();
                *s.stats.forwarded.entry(method).or_default() += 1;
            }
        }
        if matches!(fate, Fate::LoseAnswer) {
            return Ok(());
        }
        // The result cap, on the node's answer.
        if let (Some(max), Some("eth_getLogs")) =
            (config.max_log_results, request["method"].as_str())
            && let Ok(v) = serde_json::from_slice::<Value>(&answer)
            && v["result"].as_array().is_some_and(|r| r.len() > max)
        {
            if let Ok(mut s) = state.lock() {
                s.stats.logs_refused += 1;
            }
            let refusal = json!({"jsonrpc": "2.0", "id": request.get("id"), "error": {
                "code": -32005, "message": format!("query returned more than {max} results")}});
            respond(socket, "200 OK", refusal.to_string().as_bytes()).await?;
            continue;
        }
        respond(socket, "200 OK", &answer).await?;
    }
    Ok(())
}

/// The provider's refusal of an `eth_getLogs` over too many blocks, if it is one.
async fn log_refusal(
    request: &Value,
    config: &FaultConfig,
    http: &alloy::transports::http::reqwest::Client,
    upstream: &str,
) -> Option<Value> {
    let max = config.max_log_range?;
    let filter = &request["params"][0];
    if filter.get("blockHash").is_some() {
        return None;
    }
    let number = |v: &Value| -> Option<u64> {
        match v.as_str() {
            Some(s) if s.starts_with("0x") => u64::from_str_radix(&s[2..], 16).ok(),
            Some("earliest") => Some(0),
            _ => None,
        }
    };
    let (from, to) = (number(&filter["fromBlock"]), number(&filter["toBlock"]));
    let head = if from.is_none() || to.is_none() {
        let r = http
            .post(upstream)
            .json(&json!({"jsonrpc": "2.0", "id": 0, "method": "eth_blockNumber", "params": []}))
            .send()
            .await
            .ok()?;
        let v: Value = r.json().await.ok()?;
        u64::from_str_radix(v["result"].as_str()?.trim_start_matches("0x"), 16).ok()?
    } else {
        0
    };
    let (from, to) = (from.unwrap_or(head), to.unwrap_or(head));
    (to.saturating_sub(from) + 1 > max).then(|| {
        json!({"jsonrpc": "2.0", "id": request.get("id"), "error": {"code": -32600,
            "message": format!("eth_getLogs is limited to a {max} block range")}})
    })
}
