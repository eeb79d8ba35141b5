//! A command talking to the account's running daemon over its Unix socket: the same methods
//! and answers as in-process ([`crate::api`]), with no password, store, node or chain to
//! open. `watch` and `chat` subscribe to its events.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::UnixStream;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};

use crate::args::Cli;
use crate::daemon::Paths;
use crate::out::{Failure, Kind, Out};

/// A connection to the account's daemon.
pub struct Remote {
    read: tokio::io::Lines<BufReader<OwnedReadHalf>>,
    write: OwnedWriteHalf,
    next_id: u64,
    /// What the daemon said about itself when it started (its `info` file).
    pub info: Value,
}

/// The account's daemon, when one runs (its socket answers); `None` otherwise (a socket
/// left by one that died does not answer).
pub async fn connect(cli: &Cli, home: &Path) -> Result<Option<Remote>, Failure> {
    let Ok(account) = crate::account_name(cli, home) else {
        return Ok(None);
    };
    connect_to(&Paths::new(home, &account)).await
}

/// [`connect`] by the daemon's paths.
pub async fn connect_to(paths: &Paths) -> Result<Option<Remote>, Failure> {
    let Ok(stream) = UnixStream::connect(&paths.socket).await else {
        return Ok(None);
    };
    let info = std::fs::read_to_string(&paths.info)
        .ok()
        .and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or(Value::Null);
    let (read, write) = stream.into_split();
    Ok(Some(Remote {
        read: BufReader::new(read).lines(),
        write,
        next_id: 1,
        info,
    }))
}

/// A failure the daemon answered with, as the command's own.
fn failure(error: &Value) -> Failure {
    let data = &error["data"];
    let kind = match data["kind"].as_str().unwrap_or("") {
        "usage" => Kind::Usage,
        "chain" => Kind::Chain,
        "transport" => Kind::Transport,
        "verification" => Kind::Verification,
        "fork" => Kind::Fork,
        _ if error["code"] == -32601 || error["code"] == -32602 => Kind::Usage,
        _ => Kind::Other,
    };
    let f = Failure::new(
        kind,
        error["message"].as_str().unwrap_or("the daemon failed"),
        data["hint"].as_str().unwrap_or(""),
    );
    match &data["result"] {
        Value::Null => f,
        r => f.with_result(r.clone()),
    }
}

fn lost(e: impl std::fmt::Display) -> Failure {
    Failure::new(
        Kind::Other,
        format!("the daemon's connection broke: {e}"),
        "`ethmls daemon --status`; its log says why",
    )
}

impl Remote {
    /// Sends a request; its id.
    async fn send(&mut self, method: &str, params: &Value) -> Result<u64, Failure> {
        let id = self.next_id;
        self.next_id += 1;
        let mut line =
            json!({ "jsonrpc": "2.0", "id": id, "method": method, "params": params }).to_string();
        line.push('\n');
        self.write.write_all(line.as_bytes()).await.map_err(lost)?;
        Ok(id)
    }

    /// The next message from the daemon (`None` when it closed the connection).
    async fn next(&mut self) -> Result<Option<Value>, Failure> {
        match self.read.next_line().await.map_err(lost)? {
            None => Ok(None),
            Some(line) => serde_json::from_str(&line).map(Some).map_err(lost),
        }
    }

    /// Runs `method` on the daemon; the events it streams meanwhile are printed.
    pub async fn call(
        &mut self,
        method: &str,
        params: &Value,
        out: &Out,
    ) -> Result<Value, Failure> {
        let id = self.send(method, params).await?;
        loop {
            let Some(m) = self.next().await? else {
                return Err(lost("closed"));
            };
            if m["method"] == "event" {
                out.event(&m["params"]);
                continue;
            }
            if m["id"] != id {
                continue;
            }
            return match m.get("error") {
                Some(e) => Err(failure(e)),
                None => Ok(m["result"].clone()),
            };
        }
    }

    /// `ethmls watch` through the daemon: its events until `count` of them, `timeout`, a
    /// signal, or the daemon's end.
    pub async fn watch(
        mut self,
        timeout: Option<u64>,
        count: Option<u64>,
        out: &Out,
    ) -> Result<Value, Failure> {
        self.call("subscribe", &json!({}), out).await?;
        let stop = crate::signals::listen();
        let deadline = timeout.map(|t| Instant::now() + Duration::from_secs(t));
        let mut n = 0u64;
        while count.is_none_or(|m| n < m) && !stop.requested() {
            let left = deadline.map_or(Duration::from_millis(250), |d| {
                d.saturating_duration_since(Instant::now())
            });
            if left.is_zero() {
                break;
            }
            match tokio::time::timeout(left.min(Duration::from_millis(250)), self.next()).await {
                Err(_) => {}
                Ok(Ok(Some(m))) if m["method"] == "event" => {
                    n += 1;
                    out.event(&m["params"]);
                }
                Ok(Ok(Some(_))) => {}
                Ok(Ok(None)) => break,
                Ok(Err(f)) => return Err(f),
            }
        }
        Ok(json!({ "events": n, "interrupted": stop.requested() }))
    }

    /// `ethmls chat` through the daemon: typed lines sent, the group's messages and
    /// membership changes printed as they come (as [`crate::chat::run`] does in-process).
    pub async fn chat(mut self, g: &str, out: &Out) -> Result<Value, Failure> {
        let group = g.to_lowercase();
        let me = self.info["address"].as_str().unwrap_or("").to_string();
        let groups = self.call("group.list", &json!({}), out).await?;
        let member = groups["groups"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|x| x["group"].as_str() == Some(group.as_str()) && x["active"] == true);
        if !member {
            return Err(Failure::usage(
                format!("this account is not a member of {group}"),
                "see `ethmls group list`",
            ));
        }
        self.call("subscribe", &json!({}), out).await?;
        let (tx, mut lines) = tokio::sync::mpsc::unbounded_channel::<String>();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::stdin().lock().lines().map_while(|l| l.ok()) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        let stop = crate::signals::listen();
        let (mut sent, mut received) = (0u64, 0u64);
        let mut pending: std::collections::BTreeMap<u64, String> = Default::default();
        let mut input_open = true;
        let mut closing_until: Option<Instant> = None;
        loop {
            if closing_until.is_some_and(|t| Instant::now() >= t && pending.is_empty()) {
                break;
            }
            if stop.requested() && pending.is_empty() && lines.is_empty() {
                break;
            }
            tokio::select! {
                line = lines.recv(), if input_open => match line {
                    Some(line) if !line.trim().is_empty() => {
                        let id = self.send("send", &json!({ "group": group, "text": line })).await?;
                        pending.insert(id, line);
                    }
                    Some(_) => {}
                    None => {
                        // End of input: a last look for answers, then exit.
                        input_open = false;
                        closing_until = Some(Instant::now() + Duration::from_secs(2));
                    }
                },
                m = self.next() => {
                    let Some(m) = m? else { break };
                    if m["method"] == "event" {
                        let e = &m["params"];
                        let ours = e["group"].as_str() == Some(group.as_str());
                        let shown = match e["event"].as_str().unwrap_or("") {
                            "message" if ours => {
                                received += 1;
                                true
                            }
                            "member_added" | "member_removed" | "removed" | "fork_detected" => ours,
                            "invitation_received" => true,
                            _ => false,
                        };
                        if shown {
                            out.event(e);
                        }
                        if e["event"] == "removed" && ours {
                            break;
                        }
                    } else if let Some(line) = m["id"].as_u64().and_then(|id| pending.remove(&id)) {
                        if let Some(e) = m.get("error") {
                            return Err(failure(e));
                        }
                        sent += 1;
                        out.event(&json!({ "event": "sent", "group": group, "sender": me, "text": line }));
                    }
                }
                () = tokio::time::sleep(Duration::from_millis(200)) => {}
            }
        }
        Ok(
            json!({ "group": group, "sent": sent, "received": received, "interrupted": stop.requested() }),
        )
    }
}

/// `ethmls daemon --status`: what the account's daemon serves, or that none runs.
pub async fn status(cli: &Cli, home: &Path, out: &Out) -> Result<Value, Failure> {
    let account = crate::account_name(cli, home)?;
    match connect_to(&Paths::new(home, &account)).await? {
        Some(mut r) => r.call("status", &json!({}), out).await.map(|mut v| {
            v["running"] = json!(true);
            v
        }),
        None => Ok(json!({ "running": false, "account": account })),
    }
}

/// `ethmls daemon --stop`: asks the account's daemon to stop and waits until it did.
pub async fn stop(cli: &Cli, home: &Path, out: &Out) -> Result<Value, Failure> {
    let account = crate::account_name(cli, home)?;
    let paths = Paths::new(home, &account);
    let Some(mut r) = connect_to(&paths).await? else {
        return Ok(
            json!({ "stopped": false, "account": account, "note": "no daemon was running" }),
        );
    };
    r.call("stop", &json!({}), out).await?;
    // It is gone when its connection closes (after its last sync).
    let _ = tokio::time::timeout(Duration::from_secs(30), async {
        while let Ok(Some(_)) = r.next().await {}
    })
    .await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while paths.socket.exists() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(json!({ "stopped": true, "account": account }))
}
