//! `cargo xtask demo`: the whole system on a fresh local anvil. alice, bob and carol are three
//! `ethmls` users with their own homes (keystores, encrypted stores), talking over libp2p
//! gossip on 127.0.0.1 through an `ethmls node` relay (which keeps the history for whoever was
//! not running); the chain orders and stores the commits. alice deploys the contracts, creates
//! a group and invites bob and carol (the seven steps run between their processes while
//! alice's `watch` is running), messages flow both ways, bob commits new keys, carol is removed
//! and provably cannot read the next message, and bob's `watch` is killed with SIGKILL and
//! restarted and catches up. Every command is printed as a user would type it, with what it
//! answered; any failed check ends the demo with a non-zero exit.

use std::fs;
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::tools::{self, Tools};
use crate::{Result, stage};

/// The demo's transcript: everything it prints, also written to `target/demo/transcript.txt`.
static TRANSCRIPT: std::sync::Mutex<Option<fs::File>> = std::sync::Mutex::new(None);

/// `println!`, and the line in the transcript.
macro_rules! say {
    ($($t:tt)*) => {{
        let line = format!($($t)*);
        println!("{line}");
        if let Ok(mut t) = TRANSCRIPT.lock()
            && let Some(f) = t.as_mut()
        {
            use std::io::Write as _;
            let _ = writeln!(f, "{line}");
        }
    }};
}

/// A stage's title, printed and in the transcript.
fn show_stage(what: &str) {
    stage(what);
    if let Ok(mut t) = TRANSCRIPT.lock()
        && let Some(f) = t.as_mut()
    {
        use std::io::Write as _;
        let _ = writeln!(f, "\n==> {what}");
    }
}

/// anvil on 127.0.0.1 and a free port; killed on drop.
struct Anvil {
    child: Child,
    url: String,
    accounts: Vec<(String, String)>,
    dir: PathBuf,
}

impl Anvil {
    fn spawn(tools: &Tools) -> Result<Self> {
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
            .local_addr()?
            .port();
        let dir = std::env::temp_dir().join(format!("eth-mls-demo-{}-{port}", std::process::id()));
        fs::create_dir_all(&dir)?;
        let config = dir.join("anvil.json");
        let child = Command::new(&tools.anvil)
            .args([
                "--host",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--quiet",
            ])
            .arg("--config-out")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("could not start anvil: {e}"))?;
        let mut anvil = Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
            accounts: Vec::new(),
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = anvil.child.try_wait()? {
                return Err(format!("anvil exited early with {status}").into());
            }
            let ready = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_ok()
                && fs::metadata(&config).map(|m| m.len() > 0).unwrap_or(false);
            if ready {
                break;
            }
            if Instant::now() > deadline {
                return Err("anvil did not start within 30 s".into());
            }
            sleep(Duration::from_millis(50));
        }
        let cfg: Value = serde_json::from_str(&fs::read_to_string(&config)?)?;
        let list = |key: &str| -> Vec<String> {
            cfg.get(key)
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default()
        };
        anvil.accounts = list("available_accounts")
            .into_iter()
            .zip(list("private_keys"))
            .collect();
        if anvil.accounts.len() < 3 {
            return Err("anvil reported fewer than 3 funded accounts".into());
        }
        Ok(anvil)
    }
}

impl Drop for Anvil {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// One `ethmls` user: a home, a password file, the shared RPC and deployment.
struct User<'a> {
    name: &'static str,
    home: PathBuf,
    demo: &'a Demo,
}

/// What every user shares.
struct Demo {
    bin: PathBuf,
    rpc: String,
    deployment: PathBuf,
    password: PathBuf,
    /// The relay's address (`/ip4/127.0.0.1/tcp/PORT/p2p/PEERID`).
    peer: String,
}

/// `ethmls node`, the gossip relay, in the background; ended (its input closed) on drop.
struct Relay {
    child: Child,
    address: String,
}

impl Relay {
    fn spawn(bin: &Path, home: &Path) -> Result<Self> {
        say!("  relay $ ethmls node --listen /ip4/127.0.0.1/tcp/0 &");
        let mut child = Command::new(bin)
            .arg("--home")
            .arg(home)
            .args(["--json", "node", "--listen", "/ip4/127.0.0.1/tcp/0"])
            .env_remove("ETHMLS_HOME")
            .env_remove("ETHMLS_PEERS")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("could not start ethmls node: {e}"))?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stdout));
        let ready: Value = match lines.next() {
            Some(Ok(line)) => serde_json::from_str(&line)?,
            _ => return Err("ethmls node printed nothing".into()),
        };
        let address = ready["addresses"][0]
            .as_str()
            .ok_or_else(|| format!("ethmls node did not say where it listens: {ready}"))?
            .to_string();
        say!("          listening on {address}");
        // Its statistics, printed as they change.
        std::thread::spawn(move || {
            for line in lines.map_while(|l| l.ok()) {
                if let Ok(v) = serde_json::from_str::<Value>(&line)
                    && v["event"] == "node_stats"
                {
                    say!(
                        "  relay | {} peers, {} frames stored, {} history requests served",
                        v["peers"],
                        v["stored"],
                        v["history_served"]
                    );
                }
            }
        });
        Ok(Relay { child, address })
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl User<'_> {
    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.demo.bin);
        c.arg("--home")
            .arg(&self.home)
            .arg("--rpc-url")
            .arg(&self.demo.rpc)
            .arg("--deployment")
            .arg(&self.demo.deployment)
            .arg("--password-file")
            .arg(&self.demo.password)
            .args(["--delivery", "gossip", "--peer", &self.demo.peer])
            .args(args)
            .env_remove("ETHMLS_DELIVERY")
            .env_remove("ETHMLS_PEERS")
            .env_remove("ETH_RPC_URL")
            .env_remove("ETHMLS_HOME")
            .env_remove("ETHMLS_ACCOUNT")
            .stdin(Stdio::null());
        c
    }

    /// Runs `ethmls --json ARGS`, prints the command and its answer; the result, or an error.
    fn run(&self, args: &[&str]) -> Result<Value> {
        say!("  {:<6}$ ethmls {}", self.name, args.join(" "));
        let mut json_args = vec!["--json"];
        json_args.extend_from_slice(args);
        let out = self.command(&json_args).stderr(Stdio::null()).output()?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        let mut envelope = Value::Null;
        for line in stdout.lines() {
            let v: Value = serde_json::from_str(line)
                .map_err(|e| format!("{} {args:?}: not JSON ({e}): {line}", self.name))?;
            if v.get("event").is_some() {
                say!("          {}", event_line(&v));
            } else {
                envelope = v;
            }
        }
        if envelope["ok"] != true {
            return Err(format!(
                "{}: `ethmls {}` failed ({}): {}",
                self.name,
                args.join(" "),
                out.status,
                envelope["error"]
            )
            .into());
        }
        let result = envelope["result"].clone();
        if let Value::Object(map) = &result {
            for (k, v) in map {
                match v {
                    Value::Array(items) => {
                        for item in items {
                            let line = match (item["sender"].as_str(), item["text"].as_str()) {
                                (Some(sender), Some(text)) => format!("{sender}: {text}"),
                                _ if item["id"].is_string() => format!(
                                    "invitation {} to {} from {}",
                                    item["id"].as_str().unwrap_or_default(),
                                    item["group"].as_str().unwrap_or_default(),
                                    item["from"].as_str().unwrap_or_default()
                                ),
                                _ => format!(
                                    "{k}: {}",
                                    item.as_str().map_or(item.to_string(), String::from)
                                ),
                            };
                            say!("          {line}");
                        }
                    }
                    v => say!(
                        "          {k}: {}",
                        v.as_str().map_or(v.to_string(), String::from)
                    ),
                }
            }
        }
        Ok(result)
    }

    /// `ethmls watch` in the background, its events printed as they come.
    fn watch(&self) -> Result<Watch> {
        say!("  {:<6}$ ethmls watch &", self.name);
        let mut child = self
            .command(&["--json", "watch", "--timeout", "300"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let name = self.name;
        let printer = std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(|l| l.ok())
            {
                if let Ok(v) = serde_json::from_str::<Value>(&line)
                    && v.get("event").is_some()
                {
                    say!("  {name:<6}| {}", event_line(&v));
                }
            }
        });
        Ok(Watch {
            child,
            printer: Some(printer),
        })
    }
}

/// A background `ethmls watch`; killed (SIGKILL) on drop.
struct Watch {
    child: Child,
    printer: Option<std::thread::JoinHandle<()>>,
}

impl Watch {
    fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(p) = self.printer.take() {
            let _ = p.join();
        }
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn event_line(v: &Value) -> String {
    let s = |k: &str| v[k].as_str().map_or(v[k].to_string(), String::from);
    match v["event"].as_str().unwrap_or("") {
        "message" => format!("message from {}: {}", s("sender"), s("text")),
        "invitation_received" => {
            format!("invitation {} from {} ({})", s("id"), s("from"), s("note"))
        }
        "joined" => format!("joined {} at epoch {}", s("group"), s("epoch")),
        "commit_merged" => format!("epoch {} (committed by {})", s("epoch"), s("committer")),
        "member_added" => format!("member added: {}", s("member")),
        "member_removed" => format!("member removed: {}", s("member")),
        "removed" => format!("removed from {}", s("group")),
        other => format!("{other} {v}"),
    }
}

/// The members of `group` as `u` sees them, sorted.
fn members(u: &User<'_>, group: &str) -> Result<Vec<String>> {
    let r = u.run(&["group", "members", group])?;
    let mut members: Vec<String> = r["members"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|m| m.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    members.sort();
    Ok(members)
}

fn texts(read: &Value) -> Vec<String> {
    read["messages"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|m| m["text"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

fn check(ok: bool, what: &str) -> Result<()> {
    if ok {
        say!("  ✓ {what}");
        Ok(())
    } else {
        Err(format!("check failed: {what}").into())
    }
}

/// Polls `f` (up to 60 s) until it returns `Some`.
fn eventually<T>(what: &str, mut f: impl FnMut() -> Result<Option<T>>) -> Result<T> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(t) = f()? {
            return Ok(t);
        }
        if Instant::now() > deadline {
            return Err(format!("timed out: {what}").into());
        }
        sleep(Duration::from_millis(500));
    }
}

/// `cargo xtask demo`.
pub fn run(root: &Path) -> Result<()> {
    let tools = tools::ensure(root)?;
    show_stage("demo: building ethmls");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    crate::run(
        Command::new(&cargo)
            .current_dir(root)
            .args(["build", "--quiet", "-p", "eth-mls", "--bin", "ethmls"]),
    )?;
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let bin = target.join("debug").join("ethmls");
    let out_dir = target.join("demo");
    fs::create_dir_all(&out_dir)?;
    if let Ok(mut t) = TRANSCRIPT.lock() {
        *t = Some(fs::File::create(out_dir.join("transcript.txt"))?);
    }

    show_stage("demo: starting a local anvil (127.0.0.1, free port)");
    let anvil = Anvil::spawn(&tools)?;
    say!("  rpc {}", anvil.url);
    let dir = anvil.dir.join("homes");
    fs::create_dir_all(&dir)?;
    let password = dir.join("password");
    fs::write(&password, "demo password\n")?;
    // `ethmls` refuses a password file that others can read.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&password, fs::Permissions::from_mode(0o600))?;
    }

    show_stage("demo: a gossip relay and history store (ethmls node, 127.0.0.1, free port)");
    let relay = Relay::spawn(&bin, &dir.join("relay"))?;
    let demo = Demo {
        bin,
        rpc: anvil.url.clone(),
        deployment: dir.join("deployment.json"),
        password,
        peer: relay.address.clone(),
    };
    let users: Vec<User<'_>> = ["alice", "bob", "carol"]
        .into_iter()
        .map(|name| User {
            name,
            home: dir.join(name),
            demo: &demo,
        })
        .collect();
    let [alice, bob, carol] = &users[..] else {
        return Err("three users".into());
    };

    show_stage("demo: three accounts (anvil's funded keys, imported into keystores)");
    let mut addresses = Vec::new();
    for (i, u) in users.iter().enumerate() {
        let key_file = dir.join(format!("{}.key", u.name));
        fs::write(&key_file, &anvil.accounts[i + 1].1)?;
        let r = u.run(&[
            "account",
            "import",
            u.name,
            "--private-key-file",
            &key_file.to_string_lossy(),
        ])?;
        fs::remove_file(&key_file)?;
        addresses.push(r["address"].as_str().unwrap_or_default().to_string());
    }
    let (a, b, c) = (
        addresses[0].clone(),
        addresses[1].clone(),
        addresses[2].clone(),
    );

    show_stage("demo: alice deploys ERC7627, MlsGroup and the factory");
    alice.run(&["deploy"])?;

    show_stage(
        "demo: everyone publishes their keys in ERC-7627 (prekey bundle, inbox key, PeerId)",
    );
    for u in &users {
        u.run(&["register"])?;
    }

    show_stage("demo: alice creates a group (its contract through the factory, epoch 0)");
    let group = alice.run(&["group", "create", "friends", "--any-member"])?["group"]
        .as_str()
        .unwrap_or_default()
        .to_string();

    show_stage("demo: alice invites bob and carol, in the seven steps of an invitation");
    say!("  step 1: alice's request (group contract, chain id, group id, expiry) goes to");
    say!("          each invitee over the 1:1 channel (X3DH + double ratchet, gossip)");
    alice.run(&["group", "invite", &group, &b, "--note", "hi bob"])?;
    alice.run(&["group", "invite", &group, &c, "--note", "hi carol"])?;
    let watch = alice.watch()?;
    for u in [bob, carol] {
        say!(
            "  step 2: {} receives it (from the relay's history: it was not running)",
            u.name
        );
        let id = eventually("the invitation arrives", || {
            let r = u.run(&["group", "requests"])?;
            Ok(r["invitations"]
                .as_array()
                .and_then(|l| l.first())
                .and_then(|i| i["id"].as_str().map(String::from)))
        })?;
        say!(
            "  step 3: {} consents: a SIWE message signed by the account names the group",
            u.name
        );
        say!("          and the hash of the key package sent with it");
        say!("  step 4: alice's client (its watch) verifies the consent and the key package");
        say!("  step 5: one transaction adds the account to the ACL and registers the commit");
        say!("  step 6: the Welcome goes back over the 1:1 channel");
        say!("  step 7: the commit is on the group topic; members merge it once the chain");
        say!("          has it, and the invitee joins from the Welcome");
        let r = u.run(&["group", "accept", &id])?;
        check(r["joined"] == true, &format!("{} joined the group", u.name))?;
    }
    // alice's watch merges the last commit before it stops.
    sleep(Duration::from_secs(2));
    watch.kill();
    let mut expected = addresses.clone();
    expected.sort();
    for u in &users {
        // `members` reads the store: each takes in what arrived first.
        u.run(&["sync"])?;
        let members = members(u, &group)?;
        check(
            members == expected,
            &format!("{} sees alice, bob and carol", u.name),
        )?;
    }

    show_stage("demo: messages both ways");
    alice.run(&["send", &group, "hello bob and carol"])?;
    bob.run(&["send", &group, "hi alice!"])?;
    carol.run(&["send", &group, "hey both"])?;
    for u in &users {
        u.run(&["sync"])?;
    }
    for u in &users {
        let t = texts(&u.run(&["read", &group])?);
        check(
            ["hello bob and carol", "hi alice!", "hey both"]
                .iter()
                .all(|m| t.contains(&m.to_string())),
            &format!("{} read all three messages", u.name),
        )?;
    }

    show_stage("demo: bob updates his keys (a commit registered on chain, merged by all)");
    let before = bob.run(&["group", "members", &group])?["epoch"]
        .as_u64()
        .unwrap_or(0);
    let after = bob.run(&["group", "update", &group])?["epoch"]
        .as_u64()
        .unwrap_or(0);
    check(
        after > before,
        "bob's commit moved the group to a new epoch",
    )?;

    show_stage("demo: alice removes carol; carol cannot read what comes next");
    alice.run(&["group", "remove", &group, &c])?;
    alice.run(&["send", &group, "carol cannot read this"])?;
    carol.run(&["sync"])?;
    bob.run(&["sync"])?;
    let carol_read = texts(&carol.run(&["read", &group])?);
    let bob_read = texts(&bob.run(&["read", &group])?);
    check(
        bob_read.contains(&"carol cannot read this".to_string()),
        "bob read the message sent after the removal",
    )?;
    check(
        !carol_read.contains(&"carol cannot read this".to_string()),
        "carol did not",
    )?;
    let r = carol.run(&["group", "members", &group])?;
    check(r["active"] == false, "carol's client knows she was removed")?;
    let members = members(alice, &group)?;
    let mut expected = vec![a.clone(), b.clone()];
    expected.sort();
    check(members == expected, "the group is alice and bob")?;

    show_stage("demo: bob's watch is killed (SIGKILL) and restarted; it catches up");
    let watch = bob.watch()?;
    alice.run(&["send", &group, "one"])?;
    sleep(Duration::from_millis(1500));
    say!("  bob   $ kill -9 (watch)");
    watch.kill();
    alice.run(&["send", &group, "two"])?;
    alice.run(&["send", &group, "three"])?;
    // Restarted (for a few seconds: one process per account at a time).
    bob.run(&["watch", "--timeout", "6"])?;
    let t = texts(&bob.run(&["read", &group])?);
    check(
        ["one", "two", "three"]
            .iter()
            .all(|m| t.iter().filter(|x| x == m).count() == 1),
        "bob read one, two and three exactly once after the restart",
    )?;

    show_stage("demo: the chat page (ethmls ui: each account's daemon serves it on 127.0.0.1)");
    let mut pages = Vec::new();
    for u in [alice, bob] {
        let url = u.run(&["ui", "--no-open"])?["url"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        pages.push((u, url));
    }
    // Through alice's daemon, while it runs.
    alice.run(&["send", &group, "sent while the pages are open"])?;
    sleep(Duration::from_secs(1));
    for (u, url) in &pages {
        let file = out_dir.join(format!("{}-page.png", u.name));
        match screenshot(&format!("{url}#group={group}"), &file, &anvil.dir) {
            Ok(()) => say!("  {}'s page: {}", u.name, file.display()),
            Err(e) => say!("  no screenshot ({e}): install chromium to get one"),
        }
        u.run(&["daemon", "--stop"])?;
    }

    show_stage("demo: done");
    say!("  three ethmls users over gossip, one group on chain, messages, an update, a removal,");
    say!("  a restart, the chat page");
    say!("  transcript and screenshots: {}", out_dir.display());
    drop(relay);
    drop(anvil);
    Ok(())
}

/// A PNG of the page at `url`, taken by headless Chromium (its own `--screenshot`), after
/// the page had a few seconds to connect and load.
fn screenshot(url: &str, file: &Path, scratch: &Path) -> Result<()> {
    let browser = ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|b| {
            Command::new(b)
                .arg("--version")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        })
        .ok_or("no chromium found")?;
    let _ = fs::remove_file(file);
    let status = Command::new(browser)
        .args([
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--window-size=1280,720",
            "--virtual-time-budget=5000",
        ])
        .arg(format!(
            "--user-data-dir={}",
            scratch.join("chromium").display()
        ))
        .arg(format!("--screenshot={}", file.display()))
        .arg(url)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()?;
    if !status.success() || !file.exists() {
        return Err(format!("chromium exited with {status}").into());
    }
    Ok(())
}
