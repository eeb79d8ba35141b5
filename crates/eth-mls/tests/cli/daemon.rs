//! `ethmls daemon` (issue 31): one client per account serving its operations, so several
//! terminals use one account at once; its API over the Unix socket, HTTP and WebSocket with
//! the token; stopped, the account works in-process again with everything it kept.

use super::*;

use std::io::{Read as _, Write as _};

/// An HTTP/1.1 request to the daemon on 127.0.0.1: the whole answer.
fn http_raw(port: u16, request: &str) -> String {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    // An upgraded connection stays open: what came within the timeout is the answer.
    s.set_read_timeout(Some(std::time::Duration::from_secs(1)))
        .unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

/// An HTTP/1.1 request to the daemon on 127.0.0.1: the status code and the body.
fn http(port: u16, request: &str) -> (u16, String) {
    let answer = http_raw(port, request);
    let code = answer
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (code, body)
}

/// A JSON-RPC call over `POST /rpc` with `headers`.
fn rpc(port: u16, headers: &str, body: &str) -> (u16, String) {
    http(
        port,
        &format!(
            "POST /rpc HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n{headers}\r\n{body}",
            body.len()
        ),
    )
}

/// A WebSocket connection to a daemon's API at `url` (with its token), subscribed to its
/// events; every message it sends after the subscription's answer.
fn subscribe(rt: &tokio::runtime::Runtime, url: String) -> std::sync::mpsc::Receiver<Value> {
    let (tx, rx) = std::sync::mpsc::channel::<Value>();
    rt.spawn(async move {
        use futures_util::{SinkExt as _, StreamExt as _};
        let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        ws.send(tokio_tungstenite::tungstenite::Message::text(
            r#"{"jsonrpc":"2.0","id":1,"method":"subscribe"}"#,
        ))
        .await
        .unwrap();
        while let Some(Ok(m)) = ws.next().await {
            if let Ok(v) = serde_json::from_str::<Value>(m.to_text().unwrap_or("")) {
                let _ = tx.send(v);
            }
        }
    });
    let subscribed = rx.recv_timeout(std::time::Duration::from_secs(10)).unwrap();
    assert_eq!(subscribed["result"]["subscribed"], true, "{subscribed}");
    rx
}

fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// Alice runs a daemon; her `watch`, `group create`, `invite`, `send` and `read` run at the
/// same time from other terminals (no `StoreInUse`), and her daemon adds bob when he accepts
/// with nothing else of hers running. The API answers over HTTP only with the token and the
/// loopback host, streams events over WebSocket; stopped, her account opens in-process with
/// the history the daemon kept.
#[test]
fn two_terminals_share_one_account_through_its_daemon() {
    let Pair {
        rt,
        devnet,
        dir: _,
        alice,
        bob,
        _daemons,
    } = Pair::registered("cli-daemon");
    let b = format!("{:#x}", devnet.addresses()[2]);

    // Started in the background; its files are the owner's only.
    let status = alice.ok(&["daemon", "--detach"]);
    assert_eq!(status["running"], true, "{status}");
    let info = &status["daemon"];
    let socket = PathBuf::from(info["socket"].as_str().unwrap());
    let token_file = PathBuf::from(info["token_file"].as_str().unwrap());
    assert_eq!(mode(&socket), 0o600);
    assert_eq!(mode(&token_file), 0o600);
    assert_eq!(mode(socket.parent().unwrap()), 0o700);
    let port: u16 = info["http"]
        .as_str()
        .unwrap()
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let again = alice.ok(&["daemon", "--detach"]);
    assert_eq!(again["already_running"], true, "{again}");

    // A `watch` in one terminal while the others act.
    let mut watch = alice.spawn(&["watch", "--timeout", "120"]);
    let mut watched = Lines::of(&mut watch);
    let group = alice.ok(&["group", "create", "daemon"])["group"]
        .as_str()
        .unwrap()
        .to_string();
    alice.ok(&["group", "invite", &group, &b]);
    let mut id = None;
    for _ in 0..40 {
        if let Some(i) = bob.ok(&["group", "requests"])["invitations"]
            .as_array()
            .unwrap()
            .first()
        {
            id = Some(i["id"].as_str().unwrap().to_string());
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
    // Alice's daemon adds bob: no command of hers runs meanwhile.
    let joined = bob.ok(&["group", "accept", &id.unwrap(), "--wait", "60"]);
    assert_eq!(joined["joined"], true, "{joined}");
    watched.wait_for("alice's watch to see bob added", 30, |e| {
        e["event"] == "member_added" && e["member"] == b.as_str()
    });

    // Events over WebSocket, with the token.
    let token = std::fs::read_to_string(&token_file).unwrap();
    let ws_rx = subscribe(&rt, format!("ws://127.0.0.1:{port}/ws?token={token}"));

    // Messages both ways; alice's `send` goes through her daemon.
    alice.ok(&["send", &group, "from alice's second terminal"]);
    bob.ok(&["send", &group, "hello alice"]);
    watched.wait_for("bob's message in alice's watch", 30, |e| {
        e["event"] == "message" && e["text"] == "hello alice"
    });
    let over_ws = loop {
        let v = ws_rx
            .recv_timeout(std::time::Duration::from_secs(30))
            .unwrap();
        if v["params"]["event"] == "message" {
            break v;
        }
    };
    assert_eq!(over_ws["method"], "event");
    assert_eq!(over_ws["params"]["text"], "hello alice");
    let read = alice.ok(&["read", &group]);
    let t = texts(&read);
    assert!(t.contains(&"hello alice".to_string()), "{t:?}");
    bob.ok(&["sync", "--wait", "2"]);
    let t = texts(&bob.ok(&["read", &group]));
    assert!(
        t.contains(&"from alice's second terminal".to_string()),
        "{t:?}"
    );

    // `doctor` through the daemon: its groups against the chain.
    let d = alice.ok(&["doctor"]);
    assert_eq!(d["healthy"], true, "{d}");
    assert_eq!(
        d["groups"][0]["local_epoch"], d["groups"][0]["chain_epoch"],
        "{d}"
    );

    // HTTP: the token is required, compared exactly; the host must be loopback.
    let call = r#"{"jsonrpc":"2.0","id":7,"method":"group.list"}"#;
    let (code, _) = rpc(port, "", call);
    assert_eq!(code, 401);
    // The token with its last digit changed.
    let last = if token.ends_with('0') { '1' } else { '0' };
    let wrong = format!(
        "Authorization: Bearer {}{last}\r\n",
        &token[..token.len() - 1]
    );
    assert_eq!(rpc(port, &wrong, call).0, 401);
    let bearer = format!("Authorization: Bearer {token}\r\n");
    let (code, body) = rpc(port, &bearer, call);
    assert_eq!(code, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["id"], 7);
    assert_eq!(v["result"]["groups"][0]["group"], group.as_str(), "{v}");
    let rebound = format!(
        "POST /rpc HTTP/1.1\r\nHost: attacker.example:{port}\r\nContent-Length: {}\r\n\
         Connection: close\r\n{bearer}\r\n{call}",
        call.len()
    );
    assert_eq!(http(port, &rebound).0, 403);
    // A page of another site cannot use a stolen token over WebSocket (its Origin).
    let upgrade = |origin: &str| {
        http(
            port,
            &format!(
                "GET /ws?token={token} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n\
                 Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\
                 Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n{origin}\r\n"
            ),
        )
        .0
    };
    assert_eq!(upgrade("Origin: http://evil.example\r\n"), 403);
    assert_eq!(
        upgrade(&format!("Origin: http://127.0.0.1:{port}\r\n")),
        101
    );
    // The page comes with the token only, under a strict policy.
    let page = http_raw(
        port,
        &format!(
            "GET /?token={token} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
        ),
    );
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    let csp = page
        .lines()
        .find(|l| {
            l.to_ascii_lowercase()
                .starts_with("content-security-policy:")
        })
        .unwrap_or_default()
        .to_string();
    assert!(
        csp.contains("default-src 'none'") && csp.contains("script-src 'self'"),
        "{csp}"
    );
    assert!(!csp.contains("unsafe"), "{csp}");
    let (code, _) = http(
        port,
        &format!("GET /app.js HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"),
    );
    assert_eq!(code, 401);

    // JSON-RPC's own errors.
    let (_, body) = rpc(port, &bearer, r#"{"jsonrpc":"2.0","id":1,"method":"nope"}"#);
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["error"]["code"], -32601, "{v}");
    let (_, body) = rpc(
        port,
        &bearer,
        r#"{"jsonrpc":"2.0","id":2,"method":"send","params":{"group":"0x12"}}"#,
    );
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["error"]["code"], -32602, "{v}");
    let (_, body) = rpc(port, &bearer, "{not json");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["error"]["code"], -32700, "{v}");

    // Its store is not moved aside under it.
    let (code, env, _) = alice.run(&["reset", "--yes"]);
    assert_eq!(code, 2, "{env}");
    assert!(
        env["error"]["message"]
            .as_str()
            .unwrap()
            .contains("daemon is running"),
        "{env}"
    );

    // Stopped: the socket is gone, the account opens in-process with its history.
    watch.kill().unwrap();
    let _ = watch.wait();
    let stopped = alice.ok(&["daemon", "--stop"]);
    assert_eq!(stopped["stopped"], true, "{stopped}");
    assert!(!socket.exists());
    assert_eq!(alice.ok(&["daemon", "--status"])["running"], false);
    let t = texts(&alice.ok(&["read", &group]));
    assert!(
        t.contains(&"hello alice".to_string())
            && t.contains(&"from alice's second terminal".to_string()),
        "{t:?}"
    );
    alice.ok(&["send", &group, "in-process again"]);

    // The chain goes away under a running daemon: its subscribers are told, `status` says
    // what fails.
    let status = alice.ok(&["daemon", "--detach"]);
    let http = status["daemon"]["http"]
        .as_str()
        .unwrap()
        .replace("http://", "ws://");
    let token = std::fs::read_to_string(&token_file).unwrap();
    let rx = subscribe(&rt, format!("{http}/ws?token={token}"));
    drop(devnet);
    let told = loop {
        let v = rx.recv_timeout(std::time::Duration::from_secs(30)).unwrap();
        if v["params"]["event"] == "daemon_error" {
            break v;
        }
    };
    assert!(
        !told["params"]["message"].as_str().unwrap().is_empty(),
        "{told}"
    );
    let status = alice.ok(&["daemon", "--status"]);
    assert_eq!(status["last_error"]["event"], "daemon_error", "{status}");
    alice.ok(&["daemon", "--stop"]);
}
