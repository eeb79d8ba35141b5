//! Issue 31's targets, through `ethmls daemon` (included by `client.rs`): `ethmls send` as a
//! process while the account's daemon runs (target 50 ms), and a message from one user's
//! page to the other's — through the daemons' WebSocket APIs, over gossip on 127.0.0.1
//! through a relay (target p99 100 ms).

use std::path::Path;
use std::time::{Duration, Instant};

use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use super::{dir, ethmls, percentile};

/// Runs `ethmls ARGS` in `home` (gossip through `relay`); its JSON result.
fn run(home: &Path, d: &Path, rpc: &str, relay: &str, args: &[&str]) -> Value {
    let out = ethmls(home, d, rpc)
        .args(["--delivery", "gossip", "--peer", relay])
        .args(args)
        .output()
        .unwrap();
    let v: Value = String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()
        .and_then(|l| serde_json::from_str(l).ok())
        .unwrap_or(Value::Null);
    assert_eq!(
        v["ok"],
        true,
        "{args:?}: {v} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    v["result"].clone()
}

/// A WebSocket connection to a daemon's API.
struct Api {
    ws: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    id: u64,
}

impl Api {
    async fn connect(home: &Path, name: &str) -> Api {
        let info: Value = serde_json::from_str(
            &std::fs::read_to_string(home.join("daemon").join(format!("{name}.json"))).unwrap(),
        )
        .unwrap();
        let token = std::fs::read_to_string(info["token_file"].as_str().unwrap()).unwrap();
        let http = info["http"].as_str().unwrap().replace("http://", "ws://");
        let (ws, _) = tokio_tungstenite::connect_async(format!("{http}/ws?token={token}"))
            .await
            .unwrap();
        Api { ws, id: 0 }
    }

    async fn send(&mut self, method: &str, params: Value) {
        self.id += 1;
        let m = json!({ "jsonrpc": "2.0", "id": self.id, "method": method, "params": params });
        self.ws.send(Message::text(m.to_string())).await.unwrap();
    }

    async fn next(&mut self) -> Value {
        loop {
            if let Some(Ok(Message::Text(t))) = self.ws.next().await {
                return serde_json::from_str(&t).unwrap();
            }
        }
    }
}

/// `ethmls send` with the daemon running (p50, p99 of `runs`), and page to page through the
/// APIs (p50, p99 of `messages`).
pub async fn daemon_targets(runs: usize, messages: usize) -> [(Duration, Duration); 2] {
    let devnet = eth_mls_chain::Devnet::start().unwrap();
    let deployment = devnet.deploy().await.unwrap();
    let d = dir("daemon");
    deployment.save(&d.join("deployment.json")).unwrap();
    std::fs::write(d.join("password"), "bench\n").unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(d.join("password"), std::fs::Permissions::from_mode(0o600))
            .unwrap();
    }
    let rpc = devnet.rpc_url();
    let mut relay = ethmls(&d.join("relay"), &d, &rpc)
        .args(["node", "--listen", "/ip4/127.0.0.1/tcp/0"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let relay_addr = {
        use std::io::BufRead;
        let out = relay.stdout.take().unwrap();
        let mut lines = std::io::BufReader::new(out).lines();
        loop {
            let line = lines.next().expect("the relay ended").unwrap();
            if let Ok(v) = serde_json::from_str::<Value>(&line)
                && v["event"] == "node_ready"
            {
                break v["addresses"][0].as_str().unwrap().to_string();
            }
        }
    };
    let (alice, bob) = (d.join("alice"), d.join("bob"));
    for (i, (home, name)) in [(&alice, "alice"), (&bob, "bob")].into_iter().enumerate() {
        let key = d.join(format!("{name}.key"));
        std::fs::write(&key, hex::encode(devnet.signer(i + 1).unwrap().to_bytes())).unwrap();
        run(
            home,
            &d,
            &rpc,
            &relay_addr,
            &[
                "account",
                "import",
                name,
                "--private-key-file",
                key.to_str().unwrap(),
            ],
        );
        run(home, &d, &rpc, &relay_addr, &["register"]);
        run(home, &d, &rpc, &relay_addr, &["daemon", "--detach"]);
    }
    let b = format!("{:#x}", devnet.addresses()[2]);
    let group = run(&alice, &d, &rpc, &relay_addr, &["group", "create", "bench"])["group"]
        .as_str()
        .unwrap()
        .to_string();
    run(
        &alice,
        &d,
        &rpc,
        &relay_addr,
        &["group", "invite", &group, &b],
    );
    let id = loop {
        let r = run(&bob, &d, &rpc, &relay_addr, &["group", "requests"]);
        if let Some(i) = r["invitations"].as_array().unwrap().first() {
            break i["id"].as_str().unwrap().to_string();
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    run(
        &bob,
        &d,
        &rpc,
        &relay_addr,
        &["group", "accept", &id, "--wait", "60"],
    );

    // `ethmls send` with the daemon running.
    let mut cli = Vec::new();
    for i in 0..runs {
        let start = Instant::now();
        run(
            &alice,
            &d,
            &rpc,
            &relay_addr,
            &["send", &group, &format!("cli {i}")],
        );
        cli.push(start.elapsed());
    }
    cli.sort();

    // Page to page: alice's API sends, bob's API streams the message.
    let mut a = Api::connect(&alice, "alice").await;
    let mut bb = Api::connect(&bob, "bob").await;
    bb.send("subscribe", json!({})).await;
    bb.next().await;
    let mut latency = Vec::new();
    for i in 0..messages {
        let text = format!("page {i}");
        let start = Instant::now();
        a.send("send", json!({ "group": group, "text": text }))
            .await;
        loop {
            let v = bb.next().await;
            if v["params"]["event"] == "message" && v["params"]["text"] == text.as_str() {
                break;
            }
        }
        latency.push(start.elapsed());
        // Alice's answer (sent).
        a.next().await;
    }
    latency.sort();
    for home in [&alice, &bob] {
        run(home, &d, &rpc, &relay_addr, &["daemon", "--stop"]);
    }
    let _ = relay.kill();
    let _ = relay.wait();
    [
        (percentile(&cli, 0.5), percentile(&cli, 0.99)),
        (percentile(&latency, 0.5), percentile(&latency, 0.99)),
    ]
}
