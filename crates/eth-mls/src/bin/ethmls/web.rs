//! The daemon's HTTP + WebSocket API on 127.0.0.1: `POST /rpc` (one JSON-RPC 2.0 request per
//! body), `GET /ws` (JSON-RPC over WebSocket text messages, events streamed after
//! `subscribe`), and the chat page (`GET /?token=TOKEN`, its script and style embedded in the
//! binary, under a Content-Security-Policy that allows nothing but them and this WebSocket). Every request carries the token (`Authorization: Bearer TOKEN`, or
//! `?token=TOKEN` where a browser cannot set a header), compared in constant time; the `Host`
//! must be the loopback address and port (a page elsewhere cannot reach it through DNS
//! rebinding), and a WebSocket's `Origin`, when sent, must be this server.

use std::convert::Infallible;
use std::path::Path;
use std::sync::Arc;

use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use subtle::ConstantTimeEq as _;
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use zeroize::Zeroizing;

use crate::daemon::{Jobs, MAX_REQUEST, parse_request, response, serve_messages};
use crate::out::{Failure, Kind};

/// The API's token: 32 random bytes in hex, made at each start, kept in a 0600 file.
pub struct Token(Zeroizing<String>);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(..)")
    }
}

impl Token {
    /// A new token, written to `path` (0600).
    pub fn new_in(path: &Path) -> Result<Self, Failure> {
        let mut bytes = Zeroizing::new([0u8; 32]);
        getrandom::fill(bytes.as_mut_slice())
            .map_err(|e| Failure::new(Kind::Other, format!("no randomness: {e}"), ""))?;
        let token = Zeroizing::new(hex::encode(bytes.as_slice()));
        crate::private::write(path, token.as_bytes())?;
        Ok(Token(token))
    }

    /// Whether `given` is the token (constant time in its content).
    fn matches(&self, given: &[u8]) -> bool {
        given.len() == self.0.len() && bool::from(given.ct_eq(self.0.as_bytes()))
    }
}

/// Serves HTTP on `tcp` until the task is dropped.
pub async fn serve(tcp: tokio::net::TcpListener, jobs: Jobs, token: Token, port: u16) {
    let token = Arc::new(token);
    while let Ok((stream, _)) = tcp.accept().await {
        let (jobs, token) = (jobs.clone(), token.clone());
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                handle(req, jobs.clone(), token.clone(), port)
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades()
                .await;
        });
    }
}

type Reply = Response<Full<Bytes>>;

/// The page, its script and its style (embedded: nothing is fetched from elsewhere).
const PAGE: &str = include_str!("ui/index.html");
const SCRIPT: &str = include_str!("ui/app.js");
const STYLE: &str = include_str!("ui/app.css");

/// A part of the page, under its Content-Security-Policy: its own script and style, this
/// daemon's WebSocket, nothing inline, no frames, no forms posted anywhere.
fn page(port: u16, content_type: &str, body: impl Into<Bytes>) -> Reply {
    let mut r = reply(StatusCode::OK, content_type, body);
    let csp = format!(
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
         connect-src ws://127.0.0.1:{port} ws://localhost:{port}; base-uri 'none'; \
         form-action 'none'; frame-ancestors 'none'"
    );
    if let Ok(v) = HeaderValue::from_str(&csp) {
        r.headers_mut().insert(header::CONTENT_SECURITY_POLICY, v);
    }
    r
}

/// A response with the headers every answer carries.
fn reply(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Reply {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    let h = r.headers_mut();
    if let Ok(v) = HeaderValue::from_str(content_type) {
        h.insert(header::CONTENT_TYPE, v);
    }
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    r
}

fn text(status: StatusCode, body: &'static str) -> Reply {
    reply(status, "text/plain; charset=utf-8", body)
}

/// Whether the request is for this server on loopback (`Host`), and a cross-origin
/// `Origin` is absent.
fn same_host(req: &Request<Incoming>, port: u16) -> bool {
    let ours = |v: &str| v == format!("127.0.0.1:{port}") || v == format!("localhost:{port}");
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .is_some_and(ours);
    let origin = match req.headers().get(header::ORIGIN) {
        None => true,
        Some(o) => o
            .to_str()
            .ok()
            .is_some_and(|o| o.strip_prefix("http://").is_some_and(ours)),
    };
    host && origin
}

/// The token the request carries: its bearer header, else its `token` query parameter.
fn given_token(req: &Request<Incoming>) -> Option<String> {
    if let Some(v) = req.headers().get(header::AUTHORIZATION)
        && let Some(t) = v.to_str().ok().and_then(|v| v.strip_prefix("Bearer "))
    {
        return Some(t.trim().to_string());
    }
    req.uri().query().and_then(|q| {
        q.split('&')
            .find_map(|kv| kv.strip_prefix("token=").map(str::to_string))
    })
}

async fn handle(
    req: Request<Incoming>,
    jobs: Jobs,
    token: Arc<Token>,
    port: u16,
) -> Result<Reply, Infallible> {
    if !same_host(&req, port) {
        return Ok(text(StatusCode::FORBIDDEN, "not this host\n"));
    }
    let authorized = given_token(&req).is_some_and(|t| token.matches(t.as_bytes()));
    if !authorized {
        return Ok(text(
            StatusCode::UNAUTHORIZED,
            "the daemon's token is required (see `ethmls daemon --status`)\n",
        ));
    }
    Ok(match (req.method(), req.uri().path()) {
        (&Method::POST, "/rpc") => rpc(req, jobs).await,
        (&Method::GET, "/ws") => websocket(req, jobs),
        (&Method::GET, "/") => {
            let html = PAGE.replace("{{TOKEN}}", &token.0);
            page(port, "text/html; charset=utf-8", html)
        }
        (&Method::GET, "/app.js") => page(port, "text/javascript; charset=utf-8", SCRIPT),
        (&Method::GET, "/app.css") => page(port, "text/css; charset=utf-8", STYLE),
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    })
}

/// `POST /rpc`: one request, its answer.
async fn rpc(req: Request<Incoming>, jobs: Jobs) -> Reply {
    let body = match Limited::new(req.into_body(), MAX_REQUEST).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return text(StatusCode::PAYLOAD_TOO_LARGE, "at most 1 MiB\n"),
    };
    let line = String::from_utf8_lossy(&body);
    let answer = match parse_request(&line) {
        Ok((id, method, params)) => response(&id, jobs.call(method, params, None).await),
        Err(answer) => answer,
    };
    reply(StatusCode::OK, "application/json", answer)
}

/// `GET /ws`: the upgrade, then JSON-RPC over text messages.
fn websocket(mut req: Request<Incoming>, jobs: Jobs) -> Reply {
    let key = req
        .headers()
        .get(header::SEC_WEBSOCKET_KEY)
        .map(|k| k.as_bytes().to_vec());
    let upgrade = req
        .headers()
        .get(header::UPGRADE)
        .and_then(|u| u.to_str().ok())
        .is_some_and(|u| u.eq_ignore_ascii_case("websocket"));
    let Some(key) = key.filter(|_| upgrade) else {
        return text(StatusCode::BAD_REQUEST, "a WebSocket upgrade is expected\n");
    };
    let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(&key);
    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        let Ok(upgraded) = on_upgrade.await else {
            return;
        };
        let mut config = WebSocketConfig::default();
        config.max_message_size = Some(MAX_REQUEST);
        config.max_frame_size = Some(MAX_REQUEST);
        let ws =
            WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, Some(config))
                .await;
        serve_websocket(ws, jobs).await;
    });
    let mut r = reply(StatusCode::SWITCHING_PROTOCOLS, "text/plain", Bytes::new());
    let h = r.headers_mut();
    h.remove(header::CONTENT_TYPE);
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    if let Ok(v) = HeaderValue::from_str(&accept) {
        h.insert(header::SEC_WEBSOCKET_ACCEPT, v);
    }
    r
}

async fn serve_websocket<S>(ws: WebSocketStream<S>, jobs: Jobs)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    use futures_util::{SinkExt as _, StreamExt as _};
    let (mut sink, mut stream) = ws.split();
    let (in_tx, in_rx) = mpsc::channel::<String>(16);
    let (out_tx, mut out_rx) = mpsc::channel::<String>(1024);
    let writer = tokio::spawn(async move {
        while let Some(line) = out_rx.recv().await {
            if sink.send(Message::text(line)).await.is_err() {
                return;
            }
        }
        let _ = sink.close().await;
    });
    let reader = tokio::spawn(async move {
        while let Some(Ok(m)) = stream.next().await {
            let line = match m {
                Message::Text(t) => t.to_string(),
                Message::Close(_) => return,
                _ => continue,
            };
            if in_tx.send(line).await.is_err() {
                return;
            }
        }
    });
    serve_messages(jobs, in_rx, out_tx).await;
    let _ = reader.await;
    let _ = writer.await;
}
