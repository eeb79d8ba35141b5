//! The WebSocket side of the fault harness: a proxy in front of a node's WebSocket endpoint
//! that counts requests, can cut every connection (a provider restarting, a NAT dropping an
//! idle socket) and can flood subscribers by repeating each subscription notification (a
//! misbehaving or hostile provider).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;

use crate::Error;

#[derive(Default)]
struct Shared {
    /// Requests by JSON-RPC method.
    methods: BTreeMap<String, u64>,
    /// Subscription notifications sent to clients (repeats included).
    notifications: u64,
    /// Repeat every notification this often until the connection ends.
    flood: Option<Duration>,
}

/// A WebSocket JSON-RPC proxy; it stops when dropped.
pub struct WsFaultProxy {
    addr: SocketAddr,
    shared: Arc<Mutex<Shared>>,
    /// Bumped to cut every open connection.
    cuts: watch::Sender<u64>,
    task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for WsFaultProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WsFaultProxy")
            .field("addr", &self.addr)
            .finish()
    }
}

impl Drop for WsFaultProxy {
    fn drop(&mut self) {
        self.task.abort();
        self.cuts.send_modify(|n| *n += 1);
    }
}

impl WsFaultProxy {
    /// Listens on a free loopback port and forwards every connection to `upstream` (a
    /// `ws://` URL). Needs a Tokio runtime with I/O and timers.
    pub async fn start(upstream: &str) -> Result<WsFaultProxy, Error> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| Error::Devnet(format!("ws fault proxy: {e}")))?;
        let addr = listener
            .local_addr()
            .map_err(|e| Error::Devnet(format!("ws fault proxy: {e}")))?;
        let shared = Arc::new(Mutex::new(Shared::default()));
        let (cuts, _) = watch::channel(0u64);
        let upstream = upstream.to_owned();
        let (state, cut) = (shared.clone(), cuts.clone());
        let task = tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let (state, upstream, cut) = (state.clone(), upstream.clone(), cut.subscribe());
                tokio::spawn(async move {
                    let _ = serve(socket, &upstream, &state, cut).await;
                });
            }
        });
        Ok(WsFaultProxy {
            addr,
            shared,
            cuts,
            task,
        })
    }

    /// The proxy's URL, to give clients instead of the node's.
    pub fn url(&self) -> String {
        format!("ws://{}", self.addr)
    }

    /// Closes every open connection now (new ones are accepted).
    pub fn cut(&self) {
        self.cuts.send_modify(|n| *n += 1);
    }

    /// From now on, every subscription notification is sent again every `every` until its
    /// connection ends (`None`: once, as the node sent it).
    pub fn flood(&self, every: Option<Duration>) {
        if let Ok(mut s) = self.shared.lock() {
            s.flood = every;
        }
    }

    /// Requests of `method` seen so far.
    pub fn calls(&self, method: &str) -> u64 {
        self.shared
            .lock()
            .map(|s| s.methods.get(method).copied().unwrap_or(0))
            .unwrap_or(0)
    }

    /// Requests seen so far, all methods.
    pub fn requests(&self) -> u64 {
        self.shared
            .lock()
            .map(|s| s.methods.values().sum())
            .unwrap_or(0)
    }

    /// Subscription notifications sent to clients so far (repeats included).
    pub fn notifications(&self) -> u64 {
        self.shared.lock().map(|s| s.notifications).unwrap_or(0)
    }
}

/// The JSON-RPC methods of a request or batch.
fn methods(text: &str) -> Vec<String> {
    let method = |v: &Value| v["method"].as_str().map(str::to_owned);
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Array(batch)) => batch.iter().filter_map(method).collect(),
        Ok(v) => method(&v).into_iter().collect(),
        Err(_) => Vec::new(),
    }
}

async fn serve(
    socket: TcpStream,
    upstream: &str,
    shared: &Mutex<Shared>,
    mut cut: watch::Receiver<u64>,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    cut.borrow_and_update();
    let client = tokio_tungstenite::accept_async(socket).await?;
    let (node, _) = tokio_tungstenite::connect_async(upstream).await?;
    let (mut to_client, mut from_client) = client.split();
    let (mut to_node, mut from_node) = node.split();
    // The notifications to repeat, and when next.
    let mut repeat: Vec<Message> = Vec::new();
    let mut next_repeat = tokio::time::Instant::now();
    loop {
        let flood = shared.lock().ok().and_then(|s| s.flood);
        tokio::select! {
            _ = cut.changed() => break,
            m = from_client.next() => match m {
                Some(Ok(m)) => {
                    if let Message::Text(t) = &m
                        && let Ok(mut s) = shared.lock()
                    {
                        for method in methods(t.as_str()) {
                            *s.methods.entry(method).or_default() += 1;
                        }
                    }
                    to_node.send(m).await?;
                }
                _ => break,
            },
            m = from_node.next() => match m {
                Some(Ok(m)) => {
                    let note = matches!(&m, Message::Text(t)
                        if t.as_str().contains("\"eth_subscription\""));
                    if note && let Ok(mut s) = shared.lock() {
                        s.notifications += 1;
                        if s.flood.is_some() {
                            repeat.push(m.clone());
                        }
                    }
                    to_client.send(m).await?;
                }
                _ => break,
            },
            () = tokio::time::sleep_until(next_repeat), if flood.is_some() && !repeat.is_empty() => {
                next_repeat = tokio::time::Instant::now() + flood.unwrap_or_default();
                for m in &repeat {
                    to_client.send(m.clone()).await?;
                }
                if let Ok(mut s) = shared.lock() {
                    s.notifications += repeat.len() as u64;
                }
            }
        }
    }
    let _ = to_client.close().await;
    let _ = to_node.close().await;
    Ok(())
}
