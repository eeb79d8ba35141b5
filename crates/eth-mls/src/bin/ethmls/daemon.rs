//! `ethmls daemon`: one long-running client per account, serving the account's operations
//! ([`crate::api`]) as JSON-RPC 2.0 over a Unix socket (`<home>/daemon/ACCOUNT.sock`, 0600, one
//! JSON message per line) and over HTTP + WebSocket on 127.0.0.1 with a random token
//! (`<home>/daemon/ACCOUNT.token`, 0600; see [`crate::web`]). Events are streamed to the
//! connections that called `subscribe`. While it runs, every `ethmls` command of the account
//! goes through it ([`crate::remote`]).
//!
//! One task owns the client: requests queue for it and wake it between two steps, never
//! inside one; a change that takes blocks answers when its events came, and the client keeps
//! taking in input meanwhile.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use eth_mls::ClientEvent;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{Notify, mpsc, oneshot};

use crate::api::{self, Ctx, Outcome};
use crate::args::Cli;
use crate::out::{self, Failure, Kind, Out};
use crate::{Cl, account_name, delivery, private};

/// The longest request line (or WebSocket message) taken: 1 MiB.
pub const MAX_REQUEST: usize = 1 << 20;
/// Events queued for a subscriber that does not read before it is dropped.
const SUBSCRIBER_QUEUE: usize = 1024;

/// Where an account's daemon keeps its files.
#[derive(Clone, Debug)]
pub struct Paths {
    /// The Unix socket.
    pub socket: PathBuf,
    /// What it serves where (`pid`, `http`, `address`, `chain_id`).
    pub info: PathBuf,
    /// The HTTP API's token.
    pub token: PathBuf,
    /// Its output when detached.
    pub log: PathBuf,
}

impl Paths {
    /// The paths of `account`'s daemon under `home`.
    pub fn new(home: &Path, account: &str) -> Self {
        let dir = home.join("daemon");
        Paths {
            socket: dir.join(format!("{account}.sock")),
            info: dir.join(format!("{account}.json")),
            token: dir.join(format!("{account}.token")),
            log: dir.join(format!("{account}.log")),
        }
    }
}

/// A request for the client's task.
pub struct Job {
    /// The method.
    pub method: String,
    /// Its parameters.
    pub params: Value,
    /// Where the answer goes.
    pub reply: oneshot::Sender<Result<Value, Failure>>,
    /// The connection's notifications (events), when it can take them.
    pub notify: Option<mpsc::Sender<String>>,
}

/// Hands jobs to the client's task and wakes it.
#[derive(Clone)]
pub struct Jobs {
    tx: mpsc::UnboundedSender<Job>,
    wake: Arc<Notify>,
}

impl Jobs {
    /// Runs `method` on the client; the answer, or a failure when the daemon is stopping.
    pub async fn call(
        &self,
        method: String,
        params: Value,
        notify: Option<mpsc::Sender<String>>,
    ) -> Result<Value, Failure> {
        let (reply, answer) = oneshot::channel();
        let job = Job {
            method,
            params,
            reply,
            notify,
        };
        if self.tx.send(job).is_err() {
            return Err(stopping());
        }
        self.wake.notify_one();
        answer.await.unwrap_or_else(|_| Err(stopping()))
    }
}

fn stopping() -> Failure {
    Failure::new(Kind::Other, "the daemon is stopping", "start it again")
}

/// A JSON-RPC 2.0 notification of an event.
pub fn event_notification(event: &Value) -> String {
    json!({ "jsonrpc": "2.0", "method": "event", "params": event }).to_string()
}

/// A JSON-RPC 2.0 response to `id`.
pub fn response(id: &Value, result: Result<Value, Failure>) -> String {
    match result {
        Ok(v) => json!({ "jsonrpc": "2.0", "id": id, "result": v }).to_string(),
        Err(f) => json!({ "jsonrpc": "2.0", "id": id, "error": rpc_error(&f) }).to_string(),
    }
}

/// A failure as a JSON-RPC error object: the standard codes for what JSON-RPC names
/// (-32601 no such method, -32602 bad parameters), else -32000; `data` carries the kind (and
/// the exit code `ethmls` uses for it), the hint and what the method found.
fn rpc_error(f: &Failure) -> Value {
    let code = if f.tag() == Some(out::Tag::NoMethod) {
        -32601
    } else if f.kind() == Kind::Usage {
        -32602
    } else {
        -32000
    };
    json!({
        "code": code,
        "message": f.message(),
        "data": { "kind": f.kind().name(), "exit": f.kind().code(), "hint": f.hint(), "result": f.result() },
    })
}

/// A JSON-RPC 2.0 request line: `(id, method, params)`, or the error response to send.
pub fn parse_request(line: &str) -> Result<(Value, String, Value), String> {
    let bad = |id: &Value, code: i64, message: &str| {
        json!({ "jsonrpc": "2.0", "id": id, "error": { "code": code, "message": message } })
            .to_string()
    };
    let v: Value =
        serde_json::from_str(line).map_err(|_| bad(&Value::Null, -32700, "parse error"))?;
    let id = v.get("id").cloned().unwrap_or(Value::Null);
    if v["jsonrpc"] != "2.0" || !v["method"].is_string() {
        return Err(bad(
            &id,
            -32600,
            "invalid request: jsonrpc 2.0 with a method",
        ));
    }
    let params = match v.get("params") {
        None | Some(Value::Null) => json!({}),
        Some(p @ Value::Object(_)) => p.clone(),
        Some(_) => return Err(bad(&id, -32602, "params are named (an object)")),
    };
    Ok((id, v["method"].as_str().unwrap_or("").to_string(), params))
}

/// Serves the JSON-RPC messages of one connection: each request runs on the client (several
/// may be in flight); answers and notifications go to `out`, in the order they are made.
pub async fn serve_messages(
    jobs: Jobs,
    mut incoming: mpsc::Receiver<String>,
    out: mpsc::Sender<String>,
) {
    while let Some(line) = incoming.recv().await {
        if line.trim().is_empty() {
            continue;
        }
        let (id, method, params) = match parse_request(&line) {
            Ok(r) => r,
            Err(answer) => {
                if out.send(answer).await.is_err() {
                    return;
                }
                continue;
            }
        };
        let (jobs, out) = (jobs.clone(), out.clone());
        tokio::spawn(async move {
            let result = jobs.call(method, params, Some(out.clone())).await;
            // A notification (no id) gets no answer.
            if !id.is_null() {
                let _ = out.send(response(&id, result)).await;
            }
        });
    }
}

/// One Unix-socket connection: lines in, lines out.
async fn serve_unix(jobs: Jobs, stream: UnixStream) {
    let (read, mut write) = stream.into_split();
    let (in_tx, in_rx) = mpsc::channel::<String>(16);
    let (out_tx, mut out_rx) = mpsc::channel::<String>(SUBSCRIBER_QUEUE);
    let writer = tokio::spawn(async move {
        while let Some(mut line) = out_rx.recv().await {
            line.push('\n');
            if write.write_all(line.as_bytes()).await.is_err() {
                return;
            }
        }
    });
    let reader = tokio::spawn(async move {
        let mut read = BufReader::new(read);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            // A line longer than the limit ends the connection.
            let mut limited = (&mut read).take(MAX_REQUEST as u64 + 1);
            match limited.read_until(b'\n', &mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) if buf.len() > MAX_REQUEST => return,
                Ok(_) => {}
            }
            let line = String::from_utf8_lossy(&buf).into_owned();
            if in_tx.send(line).await.is_err() {
                return;
            }
        }
    });
    serve_messages(jobs, in_rx, out_tx).await;
    let _ = reader.await;
    let _ = writer.await;
}

/// Runs the daemon in the foreground until `ethmls daemon --stop`, SIGINT or SIGTERM.
pub async fn run(cli: &Cli, home: &Path, port: Option<u16>, out: &Out) -> Result<Value, Failure> {
    let account = account_name(cli, home)?;
    let paths = Paths::new(home, &account);
    private::dir(home.join("daemon").as_path())?;
    if UnixStream::connect(&paths.socket).await.is_ok() {
        return Err(Failure::usage(
            format!("a daemon already serves {account}"),
            "`ethmls daemon --status` shows it; `ethmls daemon --stop` stops it",
        ));
    }
    let (mut c, chain, deployment, key) = crate::open::client_on_chain(cli, home, out).await?;
    let mut ctx = Ctx {
        chain,
        deployment,
        key,
        delivery: delivery(cli, home)?.name(),
        recent: Vec::new(),
    };
    // The store is ours now (its lock): a socket file left by a daemon that died is stale.
    let _ = std::fs::remove_file(&paths.socket);
    let unix = UnixListener::bind(&paths.socket).map_err(|e| {
        Failure::new(
            Kind::Other,
            format!("cannot listen on {}: {e}", paths.socket.display()),
            "a Unix socket's path holds at most 107 bytes: use a shorter --home",
        )
    })?;
    private::restrict(&paths.socket, false)?;
    let token = crate::web::Token::new_in(&paths.token)?;
    let tcp = tokio::net::TcpListener::bind(("127.0.0.1", port.unwrap_or(0)))
        .await
        .map_err(|e| {
            Failure::usage(
                format!("cannot listen on 127.0.0.1: {e}"),
                "pick another --port",
            )
        })?;
    let http_port = tcp
        .local_addr()
        .map_err(|e| Failure::new(Kind::Other, e.to_string(), ""))?
        .port();
    let info = json!({
        "pid": std::process::id(),
        "account": account,
        "address": format!("{:#x}", c.address()),
        "chain_id": c.chain_id(),
        "socket": paths.socket.display().to_string(),
        "http": format!("http://127.0.0.1:{http_port}"),
        "token_file": paths.token.display().to_string(),
        "log": paths.log.display().to_string(),
        "started_at": std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
    });
    private::write(&paths.info, info.to_string().as_bytes())?;

    let (tx, mut rx) = mpsc::unbounded_channel::<Job>();
    let wake = Arc::new(Notify::new());
    let jobs = Jobs {
        tx,
        wake: wake.clone(),
    };
    let accept_jobs = jobs.clone();
    let unix_task = tokio::spawn(async move {
        while let Ok((stream, _)) = unix.accept().await {
            tokio::spawn(serve_unix(accept_jobs.clone(), stream));
        }
    });
    let web_task = tokio::spawn(crate::web::serve(tcp, jobs.clone(), token, http_port));
    let stop = crate::signals::listen();
    {
        let wake = wake.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            while !stop.requested() {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            wake.notify_one();
        });
    }
    out.event(&json!({ "event": "daemon_ready", "daemon": info.clone() }));

    let mut state = State::default();
    let mut served = 0u64;
    loop {
        while let Ok(job) = rx.try_recv() {
            served += 1;
            state.handle(&mut c, &mut ctx, job, &info).await;
        }
        if stop.requested() || state.stopping {
            break;
        }
        state.expire(&c);
        let wait = state
            .next_deadline()
            .map_or(Duration::from_secs(1), |d| {
                d.saturating_duration_since(Instant::now())
            })
            .min(Duration::from_secs(1));
        match c.next_event_or(wait, wake.notified()).await {
            Ok(Some(e)) => {
                state.recovered();
                state.event(&c, &mut ctx, e);
            }
            Ok(None) => state.recovered(),
            Err(e) => {
                // The chain or the relay failed this step; the next one tries again. The
                // subscribers (the page) are told, once per different failure.
                let f = Failure::from_client(e);
                say_err!("daemon: {} ({})", f.message(), f.hint());
                state.failed(&f);
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
    // Answer what is still waiting, then let queued frames leave.
    for w in state.waiters.drain(..) {
        let _ = w.reply.send(Err(stopping()));
    }
    rx.close();
    while let Ok(job) = rx.try_recv() {
        let _ = job.reply.send(Err(stopping()));
    }
    unix_task.abort();
    web_task.abort();
    // A last look, bounded: with the chain or the relay down it would retry for long (what it
    // did not finish, the next start resumes: the store loses nothing).
    let _ = tokio::time::timeout(Duration::from_secs(5), c.sync()).await;
    let _ = std::fs::remove_file(&paths.socket);
    let _ = std::fs::remove_file(&paths.info);
    Ok(json!({ "stopped": true, "requests": served }))
}

/// A method waiting for events.
struct Waiter {
    deadline: Instant,
    wait: api::Wait,
    seen: Vec<ClientEvent>,
    reply: oneshot::Sender<Result<Value, Failure>>,
    notify: Option<mpsc::Sender<String>>,
}

/// The client task's state besides the client.
#[derive(Default)]
struct State {
    waiters: Vec<Waiter>,
    subscribers: Vec<mpsc::Sender<String>>,
    stopping: bool,
    /// The failure of the client's last step, while it lasts (`status` reports it).
    last_error: Option<Value>,
}

impl State {
    /// The client's step failed: kept for `status`, and told to the subscribers as a
    /// `daemon_error` event when it is not the one told last.
    fn failed(&mut self, f: &Failure) {
        let error = json!({ "event": "daemon_error", "message": f.message(), "hint": f.hint() });
        if self.last_error.as_ref() != Some(&error) {
            let line = event_notification(&error);
            self.subscribers
                .retain(|s| s.try_send(line.clone()).is_ok());
        }
        self.last_error = Some(error);
    }

    /// The client's step went through again: `daemon_recovered` for the subscribers when
    /// one had failed.
    fn recovered(&mut self) {
        if self.last_error.take().is_some() {
            let line = event_notification(&json!({ "event": "daemon_recovered" }));
            self.subscribers
                .retain(|s| s.try_send(line.clone()).is_ok());
        }
    }

    async fn handle(&mut self, c: &mut Cl, ctx: &mut Ctx, job: Job, info: &Value) {
        let answer = match job.method.as_str() {
            "status" => Ok(json!({
                "daemon": info,
                "groups": c.groups().len(),
                "subscribers": self.subscribers.len(),
                "waiting": self.waiters.len(),
                "last_error": self.last_error,
            })),
            "subscribe" => match job.notify {
                Some(n) => {
                    self.subscribers.push(n);
                    Ok(json!({ "subscribed": true }))
                }
                None => Err(Failure::usage(
                    "events are streamed over the Unix socket or WebSocket",
                    "connect to /ws",
                )),
            },
            "stop" => {
                self.stopping = true;
                Ok(json!({ "stopping": true }))
            }
            method => match api::call(c, ctx, method, &job.params).await {
                Ok(Outcome::Done(v)) => Ok(v),
                Ok(Outcome::Wait(wait)) => {
                    self.waiters.push(Waiter {
                        deadline: Instant::now() + wait.within,
                        wait,
                        seen: Vec::new(),
                        reply: job.reply,
                        notify: job.notify,
                    });
                    return;
                }
                Err(f) => Err(f),
            },
        };
        let _ = job.reply.send(answer);
    }

    /// An event: to the subscribers, the waiters, and `doctor`'s memory.
    fn event(&mut self, c: &Cl, ctx: &mut Ctx, e: ClientEvent) {
        ctx.remember(std::slice::from_ref(&e));
        let mut shown = out::event_json(&e);
        out::annotate(&mut shown);
        let line = event_notification(&shown);
        // A subscriber that stopped reading (or left) is dropped.
        self.subscribers
            .retain(|s| s.try_send(line.clone()).is_ok());
        let mut i = 0;
        while i < self.waiters.len() {
            let w = &mut self.waiters[i];
            w.seen.push(e.clone());
            // A subscribed connection has the event already.
            if w.wait.show_events
                && let Some(n) = &w.notify
                && !self.subscribers.iter().any(|s| s.same_channel(n))
            {
                let _ = n.try_send(line.clone());
            }
            if (w.wait.done)(&w.seen) {
                let w = self.waiters.swap_remove(i);
                let answer = (w.wait.finish)(c, &w.seen);
                let _ = w.reply.send(answer);
            } else {
                i += 1;
            }
        }
    }

    /// Answers the waiters whose time is up.
    fn expire(&mut self, c: &Cl) {
        let now = Instant::now();
        let mut i = 0;
        while i < self.waiters.len() {
            if self.waiters[i].deadline <= now {
                let w = self.waiters.swap_remove(i);
                let answer = (w.wait.finish)(c, &w.seen);
                let _ = w.reply.send(answer);
            } else {
                i += 1;
            }
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        self.waiters.iter().map(|w| w.deadline).min()
    }
}

/// `ethmls daemon --detach`: the daemon started in the background (its own process group,
/// so the terminal's Ctrl-C does not reach it; the password handed over on its standard
/// input, never on its command line); returns its status once it serves.
pub async fn detach(cli: &Cli, home: &Path, out: &Out) -> Result<Value, Failure> {
    use std::io::Write as _;
    let account = account_name(cli, home)?;
    let paths = Paths::new(home, &account);
    if crate::remote::connect_to(&paths).await?.is_some() {
        let mut status = crate::remote::status(cli, home, out).await?;
        status["already_running"] = json!(true);
        return Ok(status);
    }
    private::dir(home.join("daemon").as_path())?;
    // The password is checked here (a wrong one fails now, not in the log).
    let (_, _, password) = crate::open::account_key(cli, home)?;
    let log = {
        let mut o = std::fs::OpenOptions::new();
        o.create(true).append(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
        o.open(&paths.log).map_err(|e| Failure::io(&paths.log, e))?
    };
    let log2 = log.try_clone().map_err(|e| Failure::io(&paths.log, e))?;
    let exe = std::env::current_exe()
        .map_err(|e| Failure::new(Kind::Other, format!("where is ethmls? {e}"), ""))?;
    // The daemon gets this command's settings (the environment is inherited too).
    let mut args: Vec<std::ffi::OsString> = vec!["--home".into(), home.into()];
    args.extend(["--account".into(), account.clone().into()]);
    let flag = |args: &mut Vec<std::ffi::OsString>, name: &str, v: Option<std::ffi::OsString>| {
        if let Some(v) = v {
            args.extend([name.into(), v]);
        }
    };
    flag(&mut args, "--rpc-url", cli.rpc_url.clone().map(Into::into));
    flag(
        &mut args,
        "--deployment",
        cli.deployment.clone().map(Into::into),
    );
    flag(
        &mut args,
        "--delivery",
        cli.delivery.map(|d| d.name().into()),
    );
    flag(&mut args, "--listen", cli.listen.clone().map(Into::into));
    if !cli.peers.is_empty() {
        args.extend(["--peer".into(), cli.peers.join(",").into()]);
    }
    if cli.json {
        args.push("--json".into());
    }
    args.extend(["daemon".into(), "--password-stdin".into()]);
    if let crate::args::Command::Daemon {
        port: Some(port), ..
    } = &cli.command
    {
        args.extend(["--port".into(), port.to_string().into()]);
    }
    let mut command = std::process::Command::new(exe);
    command
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(log)
        .stderr(log2);
    #[cfg(unix)]
    std::os::unix::process::CommandExt::process_group(&mut command, 0);
    let mut child = command
        .spawn()
        .map_err(|e| Failure::new(Kind::Other, format!("could not start the daemon: {e}"), ""))?;
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(password.as_bytes());
        let _ = stdin.write_all(b"\n");
    }
    out.progress("starting the daemon (opening the account, catching up)");
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        if crate::remote::connect_to(&paths).await?.is_some() {
            return crate::remote::status(cli, home, out).await;
        }
        if let Ok(Some(status)) = child.try_wait() {
            let log = std::fs::read_to_string(&paths.log).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(5).collect();
            return Err(Failure::new(
                Kind::Other,
                format!(
                    "the daemon exited ({status}): {}",
                    tail.into_iter().rev().collect::<Vec<_>>().join(" / ")
                ),
                format!("its log: {}", paths.log.display()),
            ));
        }
        if Instant::now() >= deadline {
            return Err(Failure::new(
                Kind::Other,
                "the daemon did not start serving within 5 minutes",
                format!("its log: {}", paths.log.display()),
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `ethmls ui`: the account's daemon (started when it is not running), and its page opened
/// in the browser (`xdg-open`, or `open` on macOS) or its address printed.
pub async fn ui(cli: &Cli, home: &Path, no_open: bool, out: &Out) -> Result<Value, Failure> {
    let status = detach(cli, home, out).await?;
    let http = status["daemon"]["http"].as_str().unwrap_or("").to_string();
    let token_file = status["daemon"]["token_file"].as_str().unwrap_or("");
    let token =
        std::fs::read_to_string(token_file).map_err(|e| Failure::io(Path::new(token_file), e))?;
    let url = format!("{http}/?token={}", token.trim());
    let mut opened = false;
    if !no_open {
        let opener = if cfg!(target_os = "macos") {
            "open"
        } else {
            "xdg-open"
        };
        opened = std::process::Command::new(opener)
            .arg(&url)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !opened {
            out.progress("no browser could be opened: open the address below");
        }
    }
    Ok(json!({ "url": url, "opened": opened, "daemon": status["daemon"] }))
}
