//! The `ethmls` binary driven as a user would: three homes (alice, bob, carol) on one anvil,
//! accounts imported from key files, keys registered, a group created, two invitations
//! accepted while alice's `watch` runs, messages both ways, a removal after which carol reads
//! nothing new; `--json` envelopes parsed and checked; error paths with their exit codes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

/// Issue 30: a chain that misbehaves.
#[path = "cli/chain.rs"]
mod chain;
mod common;
/// Issue 31: the daemon.
#[path = "cli/daemon.rs"]
mod daemon;
/// Issue 29's edges: chain resets, refusals, text output, signals, passwords, damage.
#[path = "cli/edges.rs"]
mod edges;
/// Issue 31: the page, in a real browser.
#[path = "cli/page.rs"]
mod page;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use eth_mls_chain::Devnet;
use serde_json::Value;

struct User {
    home: PathBuf,
    name: &'static str,
    rpc: String,
    deployment: PathBuf,
    password: PathBuf,
    /// Arguments every command of this user gets (delivery, peers).
    extra: Vec<String>,
}

impl User {
    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_ethmls"));
        c.arg("--home")
            .arg(&self.home)
            .arg("--json")
            .arg("--rpc-url")
            .arg(&self.rpc)
            .arg("--deployment")
            .arg(&self.deployment)
            .arg("--password-file")
            .arg(&self.password)
            .args(&self.extra)
            .args(args)
            .env_remove("ETHMLS_DELIVERY")
            .env_remove("ETHMLS_PEERS")
            .env_remove("ETH_RPC_URL")
            .env_remove("ETHMLS_HOME")
            .env_remove("ETHMLS_ACCOUNT")
            .stdin(Stdio::null());
        c
    }

    /// Runs `ethmls` and returns its exit code and JSON envelope (the last stdout line).
    fn run(&self, args: &[&str]) -> (i32, Value, Vec<Value>) {
        let out: Output = self.command(args).output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let lines: Vec<Value> = stdout
            .lines()
            .map(|l| {
                serde_json::from_str(l).unwrap_or_else(|e| {
                    panic!(
                        "{} {args:?}: not JSON ({e}): {l}\nstderr: {}",
                        self.name,
                        String::from_utf8_lossy(&out.stderr)
                    )
                })
            })
            .collect();
        let envelope = lines.last().cloned().unwrap_or(Value::Null);
        let events = lines[..lines.len().saturating_sub(1)].to_vec();
        (out.status.code().unwrap_or(-1), envelope, events)
    }

    /// Runs a command that must succeed; its `result`.
    fn ok(&self, args: &[&str]) -> Value {
        let (code, envelope, _) = self.run(args);
        assert_eq!(code, 0, "{} {args:?} failed: {envelope}", self.name);
        assert_eq!(envelope["ok"], true, "{envelope}");
        envelope["result"].clone()
    }

    /// Runs `ethmls` with `input` on its standard input; exit code and stdout lines.
    fn run_with_input(&self, args: &[&str], input: &str) -> (i32, Vec<Value>) {
        use std::io::Write;
        let mut child = self
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        let lines = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        (out.status.code().unwrap_or(-1), lines)
    }

    fn spawn(&self, args: &[&str]) -> Child {
        self.command(args).stdout(Stdio::piped()).spawn().unwrap()
    }

    /// Imports the devnet's funded account `index` under this user's name, from a key file
    /// in `dir` (the key never on the command line); the `account import` result.
    fn import(&self, devnet: &Devnet, index: usize, dir: &Path) -> Value {
        let key_file = dir.join(format!("{}.key", self.name));
        write(
            &key_file,
            &hex::encode(devnet.signer(index).unwrap().to_bytes()),
        );
        self.ok(&[
            "account",
            "import",
            self.name,
            "--private-key-file",
            key_file.to_str().unwrap(),
        ])
    }
}

/// Kills the daemons of these homes when dropped (a failed test leaves none running).
struct Daemons(Vec<PathBuf>);

impl Drop for Daemons {
    fn drop(&mut self) {
        for home in &self.0 {
            for entry in std::fs::read_dir(home.join("daemon"))
                .into_iter()
                .flatten()
                .flatten()
            {
                let info: Option<Value> = std::fs::read_to_string(entry.path())
                    .ok()
                    .and_then(|s| serde_json::from_str(&s).ok());
                if let Some(pid) = info.as_ref().and_then(|i| i["pid"].as_u64()) {
                    let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
                }
            }
        }
    }
}

/// Alice and bob (anvil's accounts 1 and 2) in homes of their own on a fresh anvil, imported
/// and registered; their daemons killed when `_daemons` drops.
struct Pair {
    rt: tokio::runtime::Runtime,
    devnet: Devnet,
    dir: PathBuf,
    alice: User,
    bob: User,
    _daemons: Daemons,
}

impl Pair {
    fn registered(tag: &str) -> Pair {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap();
        let devnet = Devnet::start().unwrap();
        let deployment = rt.block_on(devnet.deploy()).unwrap();
        let dir = common::dir(tag);
        let deployment_file = dir.join("deployment.json");
        deployment.save(&deployment_file).unwrap();
        let password = dir.join("password");
        write(&password, "correct horse battery staple\n");
        let user = |name| User {
            home: dir.join(name),
            name,
            rpc: devnet.rpc_url(),
            deployment: deployment_file.clone(),
            password: password.clone(),
            extra: Vec::new(),
        };
        let (alice, bob) = (user("alice"), user("bob"));
        let _daemons = Daemons(vec![alice.home.clone(), bob.home.clone()]);
        alice.import(&devnet, 1, &dir);
        bob.import(&devnet, 2, &dir);
        alice.ok(&["register"]);
        bob.ok(&["register"]);
        Pair {
            rt,
            devnet,
            dir,
            alice,
            bob,
            _daemons,
        }
    }
}

/// Writes a file readable by its owner only (`ethmls` refuses a password file others can
/// read).
fn write(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// Every file and directory under `dir` that its group or others can access (security
/// review L5).
fn open_to_others(dir: &Path) -> Vec<(PathBuf, u32)> {
    use std::os::unix::fs::PermissionsExt;
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        let mode = std::fs::symlink_metadata(&d).unwrap().permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            out.push((d.clone(), mode));
        }
        for entry in std::fs::read_dir(&d).unwrap().flatten() {
            let kind = entry.file_type().unwrap();
            if kind.is_dir() {
                todo.push(entry.path());
            } else if kind.is_file() {
                let mode = entry.metadata().map(|m| m.permissions().mode() & 0o777);
                if let Ok(mode) = mode
                    && mode & 0o077 != 0
                {
                    out.push((entry.path(), mode));
                }
            }
        }
    }
    out
}

fn texts(read: &Value) -> Vec<String> {
    read["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["text"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn three_users_chat_through_the_cli() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let devnet = Devnet::start().unwrap();
    let deployment = rt.block_on(devnet.deploy()).unwrap();
    let dir = common::dir("cli");
    let deployment_file = dir.join("deployment.json");
    deployment.save(&deployment_file).unwrap();
    let password = dir.join("password");
    write(&password, "correct horse battery staple\n");
    let users: Vec<User> = ["alice", "bob", "carol"]
        .into_iter()
        .map(|name| User {
            home: dir.join(name),
            name,
            rpc: devnet.rpc_url(),
            deployment: deployment_file.clone(),
            password: password.clone(),
            extra: Vec::new(),
        })
        .collect();
    let [alice, bob, carol] = &users[..] else {
        unreachable!()
    };

    // Accounts: anvil's funded keys, imported from files; the key never on the command line.
    let mut addresses = Vec::new();
    for (i, u) in users.iter().enumerate() {
        let key = devnet.signer(i + 1).unwrap().to_bytes();
        let r = u.import(&devnet, i + 1, &dir);
        let expected = format!("{:#x}", devnet.addresses()[i + 1]);
        assert_eq!(r["address"], expected);
        // The keystore holds no plaintext key.
        let ks = std::fs::read_to_string(r["keystore"].as_str().unwrap()).unwrap();
        assert!(!ks.contains(&hex::encode(key)));
        let list = u.ok(&["account", "list"]);
        assert_eq!(list["accounts"][0]["name"], u.name);
        addresses.push(expected);
        u.ok(&["register"]);
    }
    let (b, c) = (addresses[1].as_str(), addresses[2].as_str());

    // Alice creates a group and invites bob and carol; her `watch` runs while they accept.
    let group = alice.ok(&["group", "create", "friends"])["group"]
        .as_str()
        .unwrap()
        .to_string();
    alice.ok(&["group", "invite", &group, b, "--note", "hi bob"]);
    alice.ok(&["group", "invite", &group, c]);
    let mut watch = alice.spawn(&["watch", "--timeout", "120"]);
    for (u, note) in [(bob, "hi bob"), (carol, "")] {
        let mut id = None;
        for _ in 0..40 {
            let r = u.ok(&["group", "requests"]);
            if let Some(inv) = r["invitations"].as_array().unwrap().first() {
                assert_eq!(inv["group"], group.as_str());
                assert_eq!(inv["from"], addresses[0].as_str());
                assert_eq!(inv["note"], note);
                id = Some(inv["id"].as_str().unwrap().to_string());
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(250));
        }
        let id = id.unwrap_or_else(|| panic!("{} never saw the invitation", u.name));
        let r = u.ok(&["group", "accept", &id, "--wait", "90"]);
        assert_eq!(r["joined"], true, "{r}");
    }
    watch.kill().unwrap();
    let _ = watch.wait();

    // Everyone sees the same members (once each has taken in what arrived: `members` reads
    // the store alone).
    for u in &users {
        u.ok(&["sync", "--wait", "1"]);
        let r = u.ok(&["group", "members", &group]);
        let mut members: Vec<String> = r["members"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m.as_str().unwrap().to_string())
            .collect();
        members.sort();
        let mut expected = addresses.clone();
        expected.sort();
        assert_eq!(members, expected, "{}", u.name);
    }

    // Messages both ways.
    alice.ok(&["send", &group, "hello from alice"]);
    bob.ok(&["send", &group, "hello from bob"]);
    for u in &users {
        u.ok(&["sync", "--wait", "2"]);
    }
    for u in &users {
        let read = u.ok(&["read", &group]);
        let t = texts(&read);
        assert!(
            t.contains(&"hello from alice".to_string()),
            "{}: {t:?}",
            u.name
        );
        assert!(
            t.contains(&"hello from bob".to_string()),
            "{}: {t:?}",
            u.name
        );
    }

    // Bob chats through standard input; the lines reach alice.
    let (code, lines) = bob.run_with_input(&["chat", &group], "line one\nline two\n");
    assert_eq!(code, 0, "{lines:?}");
    let sent: Vec<&Value> = lines.iter().filter(|l| l["event"] == "sent").collect();
    assert_eq!(sent.len(), 2, "{lines:?}");
    assert_eq!(lines.last().unwrap()["result"]["sent"], 2);
    alice.ok(&["sync", "--wait", "2"]);
    let t = texts(&alice.ok(&["read", &group]));
    assert!(t.contains(&"line one".to_string()) && t.contains(&"line two".to_string()));

    // The doctor finds nothing wrong: local epoch = the chain's.
    let d = alice.ok(&["doctor"]);
    assert_eq!(d["healthy"], true, "{d}");
    let g = &d["groups"][0];
    assert_eq!(g["local_epoch"], g["chain_epoch"], "{d}");

    // One process per account: a second one while `watch` runs is refused.
    let mut watch = bob.spawn(&["watch", "--timeout", "30"]);
    std::thread::sleep(std::time::Duration::from_secs(3));
    let (code, env, _) = bob.run(&["group", "list"]);
    assert_eq!(code, 2, "{env}");
    assert!(
        env["error"]["message"]
            .as_str()
            .unwrap()
            .contains("another ethmls")
    );
    watch.kill().unwrap();
    let _ = watch.wait();

    // Alice removes carol; what alice sends next carol never reads.
    let r = alice.ok(&["group", "remove", &group, c]);
    assert_eq!(r["removed"], c);
    alice.ok(&["send", &group, "carol is gone"]);
    let (_, env, events) = carol.run(&["sync", "--wait", "3"]);
    assert_eq!(env["ok"], true, "{env}");
    assert!(
        events.iter().any(|e| e["event"] == "removed"),
        "carol was not told: {events:?}"
    );
    bob.ok(&["sync", "--wait", "2"]);
    assert!(texts(&bob.ok(&["read", &group])).contains(&"carol is gone".to_string()));
    assert!(!texts(&carol.ok(&["read", &group])).contains(&"carol is gone".to_string()));
    let r = carol.ok(&["group", "members", &group]);
    assert_eq!(r["active"], false);

    // Bob leaves: his request reaches alice's client, which removes him.
    bob.ok(&["group", "leave", &group]);
    let (_, _, events) = alice.run(&["sync", "--wait", "4"]);
    assert!(
        events
            .iter()
            .any(|e| e["event"] == "member_removed" && e["member"] == b),
        "{events:?}"
    );
    let (_, _, events) = bob.run(&["sync", "--wait", "3"]);
    assert!(events.iter().any(|e| e["event"] == "removed"), "{events:?}");
    // The owner, the only admin, cannot leave this way.
    let (code, env, _) = alice.run(&["group", "leave", &group]);
    assert_eq!(code, 2, "{env}");

    // Error paths: exit codes and envelopes that say what to do.
    let wrong = dir.join("wrong-password");
    write(&wrong, "not it\n");
    let bob_wrong = User {
        password: wrong,
        home: bob.home.clone(),
        deployment: bob.deployment.clone(),
        rpc: bob.rpc.clone(),
        name: "bob",
        extra: Vec::new(),
    };
    let (code, env, _) = bob_wrong.run(&["group", "list"]);
    assert_eq!(code, 5, "{env}");
    assert_eq!(env["error"]["kind"], "verification");
    assert!(!env["error"]["hint"].as_str().unwrap().is_empty());
    let (code, env, _) = bob.run(&["send", "not-an-address", "x"]);
    assert_eq!(code, 2, "{env}");
    assert_eq!(env["error"]["kind"], "usage");
    let (code, env, _) = carol.run(&["send", &group, "let me in"]);
    assert_eq!(code, 2, "{env}");
    let (code, env, _) = bob.run(&["--account", "nobody", "group", "list"]);
    assert_eq!(code, 2, "{env}");
    let bob_offline = User {
        rpc: "http://127.0.0.1:1".into(),
        home: bob.home.clone(),
        deployment: bob.deployment.clone(),
        password: bob.password.clone(),
        name: "bob",
        extra: Vec::new(),
    };
    let (code, env, _) = bob_offline.run(&["sync", "--wait", "0"]);
    assert_eq!(code, 3, "{env}");
    assert_eq!(env["error"]["kind"], "chain");
    // Local questions need no chain (issue 29): the store answers them.
    let r = bob_offline.ok(&["group", "list"]);
    assert_eq!(r["groups"][0]["group"], group.as_str(), "{r}");
    let r = bob_offline.ok(&["read", &group]);
    assert!(texts(&r).contains(&"hello from bob".to_string()), "{r}");
    let (code, _, _) = bob.run(&["group", "frobnicate"]);
    assert_eq!(code, 2);
}

/// The commands that need no group: `account new|show|remove`, `devnet` (anvil + contracts,
/// ended by closing its standard input), `deploy` and `fund` against it, and the config file
/// `devnet` writes (no --rpc-url needed afterwards).
#[test]
fn accounts_devnet_deploy_and_fund() {
    let dir = common::dir("cli-accounts");
    let home = dir.join("home");
    let password = dir.join("password");
    write(&password, "pw\n");
    let ethmls_in = |home: &Path, args: &[&str]| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_ethmls"));
        c.arg("--home")
            .arg(home)
            .arg("--json")
            .arg("--password-file")
            .arg(&password)
            .args(args)
            .env_remove("ETH_RPC_URL")
            .env_remove("ETHMLS_HOME")
            .env_remove("ETHMLS_ACCOUNT")
            .env_remove("ETHMLS_DEPLOYMENT");
        c
    };
    let run_in = |home: &Path, args: &[&str]| -> (i32, Value) {
        let out = ethmls_in(home, args).stdin(Stdio::null()).output().unwrap();
        let last = String::from_utf8_lossy(&out.stdout)
            .lines()
            .last()
            .map(|l| serde_json::from_str(l).unwrap())
            .unwrap_or(Value::Null);
        (out.status.code().unwrap_or(-1), last)
    };
    let ethmls = |args: &[&str]| ethmls_in(&home, args);
    let run = |args: &[&str]| run_in(&home, args);

    // Accounts.
    let (code, env) = run(&["account", "new", "dave"]);
    assert_eq!(code, 0, "{env}");
    let address = env["result"]["address"].as_str().unwrap().to_string();
    let (code, env) = run(&["account", "new", "dave"]);
    assert_eq!(code, 2, "a second account of the same name: {env}");
    let (code, env) = run(&["account", "new", "../escape"]);
    assert_eq!(code, 2, "{env}");
    let (_, env) = run(&["account", "show"]);
    assert_eq!(env["result"]["address"], address.as_str());

    // No RPC given: a local chain starts in the background, the contracts are deployed to it
    // and the account is funded, so the first commands work on a fresh machine.
    let local = dir.join("local-home");
    let on_demand = |args: &[&str]| run_in(&local, args);
    // Whatever happens below, the background chain is stopped at the end.
    struct StopLocal(PathBuf);
    impl Drop for StopLocal {
        fn drop(&mut self) {
            let _ = Command::new(env!("CARGO_BIN_EXE_ethmls"))
                .arg("--home")
                .arg(&self.0)
                .args(["devnet", "--stop"])
                .stdin(Stdio::null())
                .output();
        }
    }
    let _stop = StopLocal(local.clone());
    let (code, env) = on_demand(&["account", "new", "erin"]);
    assert_eq!(code, 0, "{env}");
    let (code, env) = on_demand(&["register"]);
    assert_eq!(code, 0, "{env}");
    assert!(local.join("deployment.json").exists());
    let (code, env) = on_demand(&["group", "create", "first"]);
    assert_eq!(code, 0, "{env}");
    let first = env["result"]["group"].as_str().unwrap().to_string();
    // Stopped, its state kept: the next command starts it again and the group is there.
    let (code, env) = on_demand(&["devnet", "--stop"]);
    assert_eq!(code, 0, "{env}");
    assert_eq!(env["result"]["stopped"], true, "{env}");
    let (code, env) = on_demand(&["group", "members", &first]);
    assert_eq!(code, 0, "{env}");
    assert_eq!(env["result"]["epoch"], 0);
    let (_, env) = on_demand(&["doctor"]);
    assert_eq!(env["result"]["healthy"], true, "{env}");
    let (_, env) = on_demand(&["devnet", "--stop"]);
    assert_eq!(env["result"]["stopped"], true, "{env}");
    // L5: the home, its stores (with WAL and shared memory), locks, config, deployment and
    // devnet files are the owner's alone.
    assert!(local.join("stores").is_dir());
    assert_eq!(open_to_others(&local), vec![], "readable by others");
    // A home made by an earlier version (umask modes) is tightened by the next command.
    {
        use std::os::unix::fs::PermissionsExt;
        let config = local.join("deployment.json");
        std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o644)).unwrap();
        std::fs::set_permissions(&local, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let (code, _) = on_demand(&["account", "list"]);
    assert_eq!(code, 0);
    assert_eq!(open_to_others(&local), vec![], "tightened");
    // A password file others can read is refused, with a hint.
    let shared = dir.join("shared-password");
    std::fs::write(&shared, "pw\n").unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let out = Command::new(env!("CARGO_BIN_EXE_ethmls"))
        .arg("--home")
        .arg(&local)
        .arg("--json")
        .arg("--password-file")
        .arg(&shared)
        .args(["account", "new", "frank"])
        .env_remove("ETHMLS_HOME")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let env: Value =
        serde_json::from_str(String::from_utf8_lossy(&out.stdout).lines().last().unwrap()).unwrap();
    assert_eq!(out.status.code(), Some(2), "{env}");
    assert!(
        env["error"]["hint"]
            .as_str()
            .unwrap_or("")
            .contains("chmod 600"),
        "{env}"
    );

    // A devnet: anvil and the contracts; the home gets its deployment and RPC URL.
    let mut devnet = ethmls(&["devnet"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = std::io::BufReader::new(devnet.stdout.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut stdout, &mut line).unwrap();
    let ready: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(ready["event"], "devnet_ready", "{ready}");
    assert!(home.join("deployment.json").exists());

    // Fund the new account, register it, deploy a second set of contracts with it.
    let (code, env) = run(&["fund", &address, "--eth", "5"]);
    assert_eq!(code, 0, "{env}");
    let (code, env) = run(&["register"]);
    assert_eq!(code, 0, "{env}");
    let second = dir.join("second.json");
    let (code, env) = run(&["--deployment", second.to_str().unwrap(), "deploy"]);
    assert_eq!(code, 0, "{env}");
    assert!(second.exists());
    // One address on every chain: the contracts were there, at the same addresses.
    assert_eq!(
        env["result"]["group_factory"],
        ready["devnet"]["group_factory"]
    );
    let (code, env) = run(&["group", "create", "solo"]);
    assert_eq!(code, 0, "{env}");
    let group = env["result"]["group"].as_str().unwrap().to_string();
    let (_, env) = run(&["group", "list"]);
    assert_eq!(env["result"]["groups"][0]["group"], group.as_str());
    let (code, env) = run(&["group", "update", &group]);
    assert_eq!(code, 0, "{env}");
    assert_eq!(env["result"]["epoch"], 1);
    let (_, env) = run(&["doctor"]);
    assert_eq!(env["result"]["healthy"], true, "{env}");

    // Closing its input ends the devnet with its envelope.
    drop(devnet.stdin.take());
    let status = devnet.wait().unwrap();
    assert!(status.success());
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).unwrap();
    let env: Value = serde_json::from_str(rest.lines().last().unwrap()).unwrap();
    assert_eq!(env["ok"], true, "{env}");
    let (code, env) = run(&["sync", "--wait", "0"]);
    assert_eq!(code, 3, "the chain is gone: {env}");

    // Removing an account deletes its key: not without consent (a terminal's or --yes).
    let (code, env) = run(&["account", "remove", "dave"]);
    assert_eq!(code, 2, "{env}");
    assert!(home.join("keystores/dave.json").exists());
    let (code, _) = run(&["account", "remove", "dave", "--yes"]);
    assert_eq!(code, 0);
    let (code, env) = run(&["account", "remove", "dave", "--yes"]);
    assert_eq!(code, 2, "{env}");
}

/// A long-running process's stdout lines, read on a thread.
struct Lines {
    rx: std::sync::mpsc::Receiver<Value>,
    seen: Vec<Value>,
}

impl Lines {
    fn of(child: &mut Child) -> Lines {
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                if let Ok(v) = serde_json::from_str(&line)
                    && tx.send(v).is_err()
                {
                    return;
                }
            }
        });
        Lines {
            rx,
            seen: Vec::new(),
        }
    }

    /// Waits (up to `secs`) for a line for which `f` holds; returns it.
    fn wait_for(&mut self, what: &str, secs: u64, f: impl Fn(&Value) -> bool) -> Value {
        if let Some(v) = self.seen.iter().find(|v| f(v)) {
            return v.clone();
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(v) => {
                    self.seen.push(v.clone());
                    if f(&v) {
                        return v;
                    }
                }
                Err(_) => panic!("timed out waiting for {what}; saw {:#?}", self.seen),
            }
        }
    }
}

fn message_from(v: &Value, sender: &str, text: &str) -> bool {
    v["event"] == "message" && v["sender"] == sender && v["text"] == text
}

/// Two users chat over gossip through an `ethmls node` relay, in two `chat` processes as in
/// two terminals: the invitation, consent and Welcome travel by gossip (and the commit's
/// registration on chain), typed lines reach the other side, a killed process catches up
/// from the relay's history after its restart, and the gossip settings' errors have their
/// exit codes.
#[test]
fn two_users_chat_over_gossip_through_a_relay() {
    use std::io::Write;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let devnet = Devnet::start().unwrap();
    let deployment = rt.block_on(devnet.deploy()).unwrap();
    let dir = common::dir("cli-gossip");
    let deployment_file = dir.join("deployment.json");
    deployment.save(&deployment_file).unwrap();
    let password = dir.join("password");
    write(&password, "gossip pw\n");

    // The relay: it prints the address peers connect to.
    let relay = User {
        home: dir.join("relay"),
        name: "relay",
        rpc: devnet.rpc_url(),
        deployment: deployment_file.clone(),
        password: password.clone(),
        extra: Vec::new(),
    };
    let mut node = relay
        .command(&["node", "--listen", "/ip4/127.0.0.1/tcp/0"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut node_out = Lines::of(&mut node);
    let ready = node_out.wait_for("the relay", 30, |v| v["event"] == "node_ready");
    let relay_addr = ready["addresses"][0].as_str().unwrap().to_string();
    let relay_id = ready["peer_id"].as_str().unwrap().to_string();
    assert!(relay_addr.ends_with(&relay_id), "{ready}");

    // Alice keeps her gossip settings in her home's config; bob passes them as flags, and
    // reaches the chain over WebSocket (woken by the node, not polling).
    let alice = User {
        home: dir.join("alice"),
        name: "alice",
        rpc: devnet.rpc_url(),
        deployment: deployment_file.clone(),
        password: password.clone(),
        extra: Vec::new(),
    };
    let bob = User {
        home: dir.join("bob"),
        name: "bob",
        rpc: devnet.ws_url(),
        deployment: deployment_file.clone(),
        password: password.clone(),
        extra: vec![
            "--delivery".into(),
            "gossip".into(),
            "--peer".into(),
            relay_addr.clone(),
        ],
    };
    alice.ok(&["config", "set", "peers", &relay_addr]);
    alice.ok(&["config", "set", "delivery", "gossip"]);
    let shown = alice.ok(&["config", "show"]);
    assert_eq!(shown["delivery"], "gossip", "{shown}");
    assert_eq!(shown["delivery_from"], "config file", "{shown}");
    assert_eq!(shown["peers"][0], relay_addr.as_str(), "{shown}");
    let (code, env, _) = alice.run(&["config", "set", "delivery", "pigeons"]);
    assert_eq!(code, 2, "{env}");
    let (code, env, _) = alice.run(&["config", "set", "colour", "blue"]);
    assert_eq!(code, 2, "{env}");

    let mut addresses = Vec::new();
    for (i, u) in [&alice, &bob].into_iter().enumerate() {
        let r = u.import(&devnet, i + 1, &dir);
        addresses.push(r["address"].as_str().unwrap().to_string());
        // The PeerId goes into ERC-7627 with the keys; the doctor checks it and the peers.
        let r = u.ok(&["register"]);
        let peer_id = r["peer_id"].as_str().unwrap().to_string();
        let d = u.ok(&["doctor"]);
        assert_eq!(d["delivery"], "gossip", "{d}");
        assert_eq!(d["gossip"]["peer_id"], peer_id.as_str(), "{d}");
        assert_eq!(d["gossip"]["registered_peer_id"], peer_id.as_str(), "{d}");
        assert!(
            d["gossip"]["peers"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p == relay_id.as_str()),
            "{d}"
        );
        assert_eq!(d["healthy"], true, "{d}");
    }
    let (a, b) = (addresses[0].clone(), addresses[1].clone());

    // Alice creates a group and invites bob; her `chat` runs (as in her terminal) and adds him
    // when he accepts.
    let group = alice.ok(&["group", "create", "gossip"])["group"]
        .as_str()
        .unwrap()
        .to_string();
    alice.ok(&["group", "invite", &group, &b, "--note", "over gossip"]);
    let mut alice_chat = alice
        .command(&["chat", &group])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut alice_in = alice_chat.stdin.take().unwrap();
    let mut alice_out = Lines::of(&mut alice_chat);
    let mut id = None;
    for _ in 0..40 {
        let r = bob.ok(&["group", "requests"]);
        if let Some(inv) = r["invitations"].as_array().unwrap().first() {
            assert_eq!(inv["note"], "over gossip");
            id = Some(inv["id"].as_str().unwrap().to_string());
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
    let id = id.expect("bob never saw the invitation");
    let r = bob.ok(&["group", "accept", &id, "--wait", "90"]);
    assert_eq!(r["joined"], true, "{r}");
    alice_out.wait_for("alice's chat to add bob", 60, |v| {
        v["event"] == "member_added" && v["member"] == b.as_str()
    });

    // Bob's `chat` in his terminal; lines typed on either side reach the other.
    let mut bob_chat = bob
        .command(&["chat", &group])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut bob_in = bob_chat.stdin.take().unwrap();
    let mut bob_out = Lines::of(&mut bob_chat);
    writeln!(alice_in, "hello bob, this is gossip").unwrap();
    bob_out.wait_for("alice's line at bob", 60, |v| {
        message_from(v, &a, "hello bob, this is gossip")
    });
    writeln!(bob_in, "hi alice").unwrap();
    alice_out.wait_for("bob's line at alice", 60, |v| {
        message_from(v, &b, "hi alice")
    });

    // Bob's chat is killed; what alice says meanwhile reaches him after a restart, once,
    // from the relay's history.
    bob_chat.kill().unwrap();
    let _ = bob_chat.wait();
    writeln!(alice_in, "while you were away").unwrap();
    alice_out.wait_for("alice's line sent", 30, |v| {
        v["event"] == "sent" && v["text"] == "while you were away"
    });
    std::thread::sleep(std::time::Duration::from_secs(1));
    let (code, _, events) = bob.run(&["sync", "--wait", "3"]);
    assert_eq!(code, 0);
    assert!(
        events
            .iter()
            .any(|v| message_from(v, &a, "while you were away")),
        "{events:?}"
    );
    let t = texts(&bob.ok(&["read", &group]));
    assert_eq!(
        t.iter().filter(|m| *m == "while you were away").count(),
        1,
        "{t:?}"
    );
    assert!(
        t.contains(&"hello bob, this is gossip".to_string()),
        "{t:?}"
    );

    // Ctrl-C ends alice's chat cleanly (issue 29): a line typed just before it still leaves,
    // the envelope says what it counted.
    writeln!(alice_in, "last words").unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));
    signal(&alice_chat, "INT");
    let status = exits_within(&mut alice_chat, 30, "alice's chat after SIGINT");
    assert!(status.success(), "{status}");
    let end = alice_out.wait_for("alice's chat envelope", 10, |v| v["ok"] == true);
    assert_eq!(end["result"]["sent"], 3, "{end}");
    assert_eq!(end["result"]["interrupted"], true, "{end}");
    assert!(end["result"]["received"].as_u64().unwrap() >= 1, "{end}");
    drop(alice_in);
    let (_, _, events) = bob.run(&["sync", "--wait", "3"]);
    assert!(
        events.iter().any(|v| message_from(v, &a, "last words")),
        "{events:?}"
    );

    // A second invitation, declined: alice's client is told.
    let second = alice.ok(&["group", "create", "second"])["group"]
        .as_str()
        .unwrap()
        .to_string();
    alice.ok(&["group", "invite", &second, &b]);
    let mut id = None;
    for _ in 0..40 {
        let r = bob.ok(&["group", "requests"]);
        if let Some(inv) = r["invitations"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["group"] == second.as_str())
        {
            id = Some(inv["id"].as_str().unwrap().to_string());
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
    let id = id.expect("bob never saw the second invitation");
    let r = bob.ok(&["group", "decline", &id]);
    assert_eq!(r["declined"], id.as_str());
    let (_, _, events) = alice.run(&["sync", "--wait", "3"]);
    assert!(
        events
            .iter()
            .any(|e| e["event"] == "invitation_declined" && e["id"] == id.as_str()),
        "{events:?}"
    );
    assert!(
        bob.ok(&["group", "requests"])["invitations"]
            .as_array()
            .unwrap()
            .is_empty()
    );

    // `watch --count 1` ends after one event.
    let watch = bob.spawn(&["watch", "--count", "1", "--timeout", "60"]);
    std::thread::sleep(std::time::Duration::from_secs(3));
    alice.ok(&["send", &group, "counted"]);
    let out = watch.wait_with_output().unwrap();
    assert!(out.status.success());
    let lines: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.last().unwrap()["result"]["events"], 1, "{lines:?}");
    assert!(message_from(&lines[0], &a, "counted"), "{lines:?}");

    // Settings come back to their defaults when unset.
    alice.ok(&["config", "unset", "delivery"]);
    let shown = alice.ok(&["config", "show"]);
    assert_eq!(shown["delivery"], "both", "peers set, no delivery: {shown}");
    assert_eq!(shown["delivery_from"], "default", "{shown}");

    // Gossip settings that cannot work: a usage error or a transport error, each with a hint.
    let bob = User {
        extra: vec!["--delivery".into(), "gossip".into()],
        ..bob
    };
    let (code, env, _) = bob.run(&["sync", "--wait", "0"]);
    assert_eq!(code, 2, "gossip with no peer: {env}");
    let (code, env, _) = bob.run(&["--peer", "not-a-multiaddr", "sync", "--wait", "0"]);
    assert_eq!(code, 2, "{env}");
    let (code, env, _) = bob.run(&["--peer", "/ip4/127.0.0.1/tcp/9", "sync", "--wait", "0"]);
    assert_eq!(code, 2, "a peer without its /p2p/ id: {env}");
    // A relay that is down is known within about 2 s (issue 29: it cost 15 s per command).
    let nobody = format!("/ip4/127.0.0.1/tcp/9/p2p/{relay_id}");
    let started = std::time::Instant::now();
    let (code, env, _) = bob.run(&["--peer", &nobody, "sync", "--wait", "0"]);
    assert_eq!(code, 4, "{env}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(env["error"]["kind"], "transport");
    assert!(!env["error"]["hint"].as_str().unwrap().is_empty());
    // A port where something else answers (here anvil's HTTP) is no relay either.
    let port = devnet.rpc_url().rsplit(':').next().unwrap().to_string();
    let not_libp2p = format!("/ip4/127.0.0.1/tcp/{port}/p2p/{relay_id}");
    let started = std::time::Instant::now();
    let (code, env, _) = bob.run(&["--peer", &not_libp2p, "sync", "--wait", "0"]);
    assert_eq!(code, 4, "{env}");
    assert!(
        env["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not a libp2p node"),
        "{env}"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(8));
    // With `both`, the chain carries on when no peer answers; doctor reports the relay.
    let bob = User {
        extra: Vec::new(),
        ..bob
    };
    let started = std::time::Instant::now();
    let (code, env, _) = bob.run(&[
        "--delivery",
        "both",
        "--peer",
        &nobody,
        "send",
        &group,
        "by chain",
    ]);
    assert_eq!(code, 0, "{env}");
    assert!(started.elapsed() < std::time::Duration::from_secs(8));
    let (code, env, _) = bob.run(&["--delivery", "both", "--peer", &nobody, "doctor"]);
    assert_eq!(code, 1, "{env}");
    assert_eq!(env["result"]["healthy"], false, "{env}");
    assert!(
        env["result"]["problems"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["problem"].as_str().unwrap().contains("gossip is down")),
        "{env}"
    );
    // Gossip only, relay down: doctor still answers, with the reason.
    let (code, env, _) = bob.run(&["--delivery", "gossip", "--peer", &nobody, "doctor"]);
    assert_eq!(code, 4, "{env}");
    assert_eq!(env["result"]["healthy"], false, "{env}");

    // Ctrl-C ends the relay, with what it carried.
    signal(&node, "INT");
    assert!(exits_within(&mut node, 20, "the relay after SIGINT").success());
    let end = node_out.wait_for("the relay's envelope", 10, |v| v["ok"] == true);
    assert!(
        end["result"]["frames_stored"].as_u64().unwrap() > 0,
        "{end}"
    );
}

/// Sends `signal` (`INT`, `TERM`) to a child process, as a terminal's Ctrl-C or a service
/// manager would.
fn signal(child: &Child, signal: &str) {
    let status = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success());
}

/// Waits for a child to exit (up to `secs`); its status, or a panic naming `what`.
fn exits_within(child: &mut Child, secs: u64, what: &str) -> std::process::ExitStatus {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("{what} did not end within {secs} s");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// `ethmls` run in `home` with the password file and `--json`; no RPC, deployment, delivery
/// or peers from the environment: what the home's config says (as a user's shell would have
/// it).
fn in_home(home: &Path, password: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_ethmls"));
    c.arg("--home")
        .arg(home)
        .arg("--json")
        .arg("--password-file")
        .arg(password)
        .args(args)
        .env_remove("ETH_RPC_URL")
        .env_remove("ETHMLS_HOME")
        .env_remove("ETHMLS_ACCOUNT")
        .env_remove("ETHMLS_DEPLOYMENT")
        .env_remove("ETHMLS_DELIVERY")
        .env_remove("ETHMLS_PEERS")
        .stdin(Stdio::null());
    c
}

/// Exit code, envelope (the last stdout line) and stderr of a finished command.
fn finished(mut c: Command) -> (i32, Value, String) {
    let out = c.output().unwrap();
    let env = String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()
        .map(|l| serde_json::from_str(l).unwrap())
        .unwrap_or(Value::Null);
    (
        out.status.code().unwrap_or(-1),
        env,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Starts a foreground `ethmls devnet` in `home`; the child and its ready event.
fn start_devnet(home: &Path, password: &Path) -> (Child, Lines, Value) {
    let mut devnet = in_home(home, password, &["devnet"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = Lines::of(&mut devnet);
    let ready = lines.wait_for("the devnet", 60, |v| v["event"] == "devnet_ready");
    (devnet, lines, ready)
}
