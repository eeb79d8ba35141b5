//! `ethmls`: end-to-end encrypted group chat between Ethereum accounts, from the command line.
//!
//! Accounts are keystore v3 files in the home directory (as Foundry's cast keeps them); every
//! command that acts for an account opens its `eth_mls::Client` (the encrypted store in the
//! home, keyed by the account's password), takes in what arrived, does its work, and exits.
//! Delivery (`--delivery`) is the chain channel (ERC-7627 messages: durable, so one-shot
//! commands see what was sent while they were not running), libp2p gossip through peers such
//! as an `ethmls node` relay (whose history serves those who were away), or both at once.

/// `println!` that ignores a closed stdout (`ethmls read | head` must not panic).
macro_rules! say {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout().lock(), $($t)*);
    }};
}

/// `eprintln!` that ignores a closed stderr.
macro_rules! say_err {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr().lock(), $($t)*);
    }};
}

mod args;
mod local;
mod net;
mod out;
mod private;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use eth_mls::{Client, ClientConfig, ClientEvent};
use eth_mls_chain::alloy::providers::Provider;
use eth_mls_chain::alloy::signers::local::PrivateKeySigner;
use eth_mls_chain::{Chain, ChainChannel, CommitPolicy, Deployment, Devnet, StreamConfig};
use eth_mls_core::{EthereumSigner, LocalEthereumSigner, StoreKey};
use eth_mls_siwe::Address;
use eth_mls_transport::{DeliveryService, Redundant};
use serde_json::{Value, json};
use zeroize::Zeroizing;

use args::{AccountCmd, Cli, Command, ConfigCmd, Delivery, GroupCmd};
use out::{Failure, Kind, Out, Progress};

/// The SIWE domain every credential made by `ethmls` names (members must agree on it).
const DOMAIN: &str = "ethmls.local";
/// scrypt cost of new keystores (2^13: quick on a laptop; geth's "light" setting is 2^12).
const KEYSTORE_LOG_N: u8 = 13;

fn main() {
    let cli = Cli::parse();
    let out = Out::new(cli.json);
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => out.fail(&Failure::new(
            Kind::Other,
            format!("no async runtime: {e}"),
            "",
        )),
    };
    let command = cli.command.name();
    let result = rt.block_on(async {
        let result = run(&cli, &out).await;
        // Frames queued on gossip leave before the process does.
        net::shutdown().await;
        result
    });
    match result {
        Ok(result) => out.ok(command, result),
        Err(f) => out.fail(&f),
    }
}

/// Where everything lives: `--home`, `ETHMLS_HOME`, `$XDG_DATA_HOME/ethmls`, or
/// `~/.local/share/ethmls`.
fn home(cli: &Cli) -> Result<PathBuf, Failure> {
    if let Some(h) = &cli.home {
        return Ok(h.clone());
    }
    if let Some(xdg) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(xdg).join("ethmls"));
    }
    match std::env::var_os("HOME") {
        Some(h) => Ok(PathBuf::from(h).join(".local/share/ethmls")),
        None => Err(Failure::usage(
            "no home directory",
            "pass --home DIR or set ETHMLS_HOME",
        )),
    }
}

/// The home's `config.json`: what `ethmls devnet` / `deploy` / `config` wrote.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct Config {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    rpc_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    account: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    delivery: Option<Delivery>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    peers: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    listen: Option<String>,
}

impl Config {
    fn load(home: &Path) -> Result<Self, Failure> {
        let path = home.join("config.json");
        match std::fs::read_to_string(&path) {
            Ok(s) => serde_json::from_str(&s).map_err(|e| {
                Failure::usage(
                    format!("{} is not valid: {e}", path.display()),
                    "fix or delete the file",
                )
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Config::default()),
            Err(e) => Err(Failure::io(&path, e)),
        }
    }

    fn save(&self, home: &Path) -> Result<(), Failure> {
        let path = home.join("config.json");
        private::dir(home)?;
        let text = serde_json::to_string_pretty(self).unwrap_or_default();
        private::write(&path, text.as_bytes())
    }
}

/// Where the chain is: flags, then environment (clap reads both), then the home's config
/// file; with none of them, the local chain `ethmls` runs in the background (started, with
/// the contracts deployed, when it is not running). The second value says which.
async fn rpc_url(cli: &Cli, home: &Path, out: &Out) -> Result<(String, bool), Failure> {
    if let Some(u) = &cli.rpc_url {
        return Ok((u.clone(), false));
    }
    if let Some(u) = Config::load(home)?.rpc_url {
        return Ok((u, false));
    }
    let url = local::ensure(home, &deployment_path(cli, home), out).await?;
    Ok((url, true))
}

fn deployment_path(cli: &Cli, home: &Path) -> PathBuf {
    cli.deployment
        .clone()
        .unwrap_or_else(|| home.join("deployment.json"))
}

fn deployment(cli: &Cli, home: &Path) -> Result<Deployment, Failure> {
    let path = deployment_path(cli, home);
    if !path.exists() {
        return Err(Failure::usage(
            format!("no deployment at {}", path.display()),
            "run `ethmls devnet` (local) or `ethmls deploy`, or pass --deployment FILE",
        ));
    }
    Deployment::load(&path).map_err(|e| Failure::chain(e, "check the deployment file"))
}

fn keystore_dir(home: &Path) -> PathBuf {
    home.join("keystores")
}

fn keystore_path(home: &Path, name: &str) -> Result<PathBuf, Failure> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
        && !name.starts_with('.');
    if !ok {
        return Err(Failure::usage(
            format!("bad account name {name:?}"),
            "use letters, digits, '-', '_' or '.' (at most 64)",
        ));
    }
    Ok(keystore_dir(home).join(format!("{name}.json")))
}

/// The account to act as: `--account`, `ETHMLS_ACCOUNT`, the config's, or the only one.
fn account_name(cli: &Cli, home: &Path) -> Result<String, Failure> {
    if let Some(a) = &cli.account {
        return Ok(a.clone());
    }
    if let Some(a) = Config::load(home)?.account {
        return Ok(a);
    }
    let names = account_names(home)?;
    match names.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err(Failure::usage(
            "no account",
            "create one with `ethmls account new NAME` or `ethmls account import NAME`",
        )),
        _ => Err(Failure::usage(
            "more than one account",
            "pick one with --account NAME (or ETHMLS_ACCOUNT)",
        )),
    }
}

fn account_names(home: &Path) -> Result<Vec<String>, Failure> {
    let dir = keystore_dir(home);
    let mut names = Vec::new();
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(names),
        Err(e) => return Err(Failure::io(&dir, e)),
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(n) = name.strip_suffix(".json") {
            names.push(n.to_string());
        }
    }
    names.sort();
    Ok(names)
}

/// The password: `--password-file` (or `ETHMLS_PASSWORD_FILE`), else a hidden prompt on a
/// terminal. Never from the command line itself.
fn password(cli: &Cli, prompt: &str) -> Result<Zeroizing<String>, Failure> {
    if let Some(path) = &cli.password_file {
        private::check_password_file(path)?;
        let text = std::fs::read_to_string(path).map_err(|e| Failure::io(path, e))?;
        let line = text.lines().next().unwrap_or("").to_string();
        return Ok(Zeroizing::new(line));
    }
    if !std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        return Err(Failure::usage(
            "a password is needed and there is no terminal to ask on",
            "pass --password-file FILE (or ETHMLS_PASSWORD_FILE)",
        ));
    }
    rpassword::prompt_password(prompt)
        .map(Zeroizing::new)
        .map_err(|e| Failure::usage(format!("could not read the password: {e}"), ""))
}

/// An account's name, key and password.
type Unlocked = (String, Zeroizing<[u8; 32]>, Zeroizing<String>);

/// A keystore that could not be read or removed: a missing one is a usage error.
fn account_file_error(name: &str, path: &Path, e: std::io::Error) -> Failure {
    if e.kind() == std::io::ErrorKind::NotFound {
        Failure::usage(
            format!("no account named {name}"),
            "see `ethmls account list`",
        )
    } else {
        Failure::io(path, e)
    }
}

/// The account's key, decrypted from its keystore.
fn account_key(cli: &Cli, home: &Path) -> Result<Unlocked, Failure> {
    let name = account_name(cli, home)?;
    let path = keystore_path(home, &name)?;
    let json = std::fs::read_to_string(&path).map_err(|e| account_file_error(&name, &path, e))?;
    let pw = password(cli, &format!("password for {name}: "))?;
    let key = eth_mls::keystore::decrypt(&json, pw.as_bytes()).map_err(|e| match e {
        eth_mls::Error::WrongPassword => Failure::new(
            Kind::Verification,
            format!("wrong password for account {name}"),
            "check the password file",
        ),
        e => Failure::from_client(e),
    })?;
    Ok((name, key, pw))
}

async fn chain_for(
    cli: &Cli,
    home: &Path,
    key: Option<&[u8; 32]>,
    out: &Out,
) -> Result<Chain, Failure> {
    let (url, local) = rpc_url(cli, home, out).await?;
    if local && let Some(k) = key {
        // On the local chain, the acting account gets ETH for its gas.
        let address = PrivateKeySigner::from_slice(k)
            .map_err(|e| Failure::usage(format!("bad key: {e}"), ""))?
            .address();
        local::fund(&url, address).await?;
    }
    let signer = match key {
        Some(k) => Some(
            PrivateKeySigner::from_slice(k)
                .map_err(|e| Failure::usage(format!("bad key: {e}"), ""))?,
        ),
        None => None,
    };
    Chain::connect(&url, signer).await.map_err(|e| {
        Failure::chain(
            e,
            &format!("is the node at {url} running? (`ethmls devnet` starts one)"),
        )
    })
}

type Cl = Client<Arc<dyn DeliveryService>>;

/// The peers to gossip with: `--peer` / `ETHMLS_PEERS`, else the config file's.
fn peers(cli: &Cli, home: &Path) -> Result<Vec<String>, Failure> {
    if !cli.peers.is_empty() {
        return Ok(cli.peers.clone());
    }
    Ok(Config::load(home)?.peers)
}

/// The delivery: `--delivery` / `ETHMLS_DELIVERY`, the config file's, else `both` when
/// there are peers to gossip with and `chain` when there are none.
fn delivery(cli: &Cli, home: &Path) -> Result<Delivery, Failure> {
    if let Some(d) = cli.delivery {
        return Ok(d);
    }
    let config = Config::load(home)?;
    if let Some(d) = config.delivery {
        return Ok(d);
    }
    Ok(if peers(cli, home)?.is_empty() {
        Delivery::Chain
    } else {
        Delivery::Both
    })
}

/// Where this process's gossip node listens: `--listen` / `ETHMLS_LISTEN`, the config's, or
/// `default`.
fn listen(cli: &Cli, home: &Path, default: &str) -> Result<String, Failure> {
    if let Some(l) = &cli.listen {
        return Ok(l.clone());
    }
    Ok(Config::load(home)?
        .listen
        .unwrap_or_else(|| default.to_string()))
}

/// Opens the account's client (its store under the home, keyed by its password) and takes
/// in what arrived.
async fn client(cli: &Cli, home: &Path, out: &Out) -> Result<Cl, Failure> {
    Ok(client_on_chain(cli, home, out).await?.0)
}

/// [`client`], with the chain connection and the deployment it uses.
async fn client_on_chain(
    cli: &Cli,
    home: &Path,
    out: &Out,
) -> Result<(Cl, Chain, Deployment, Zeroizing<[u8; 32]>), Failure> {
    let (_, key, pw) = account_key(cli, home)?;
    let chain = chain_for(cli, home, Some(&key), out).await?;
    let d = deployment(cli, home)?;
    let signer: Arc<dyn EthereumSigner> = Arc::new(
        LocalEthereumSigner::from_bytes(key.as_slice())
            .map_err(|e| Failure::usage(format!("bad key: {e}"), ""))?,
    );
    let address = signer.address();
    let stream = StreamConfig {
        poll_interval: Duration::from_millis(200),
        ..StreamConfig::default()
    };
    let mode = delivery(cli, home)?;
    let chain_channel = || ChainChannel::new(chain.clone(), d.erc7627, stream.clone());
    let delivery: Arc<dyn DeliveryService> = match mode {
        Delivery::Chain => Arc::new(chain_channel()),
        Delivery::Gossip | Delivery::Both => {
            let node = net::start_client_node(
                net::account_node_key(&key)?,
                &listen(cli, home, net::CLIENT_LISTEN)?,
                net::parse_peers(&peers(cli, home)?)?,
            )
            .await;
            match (mode, node) {
                (Delivery::Gossip, node) => Arc::new(node?),
                (_, Ok(node)) => Arc::new(Redundant::new(node, chain_channel())),
                (_, Err(e)) => {
                    // Both: the chain alone still delivers everything (later).
                    out.progress(&format!(
                        "gossip unavailable ({}); using the chain alone",
                        e.message()
                    ));
                    Arc::new(chain_channel())
                }
            }
        }
    };
    let mut config = ClientConfig::new(d, DOMAIN);
    config.keep_messages = true;
    config.poll_interval = Duration::from_millis(200);
    let dir = home.join("stores");
    private::dir(&dir)?;
    let path = dir.join(format!("{address:#x}-{}.db", d.chain_id));
    lock_store(&path)?;
    let mut c = Client::open(
        signer,
        chain.clone(),
        delivery,
        path,
        &StoreKey::passphrase(pw.as_bytes()),
        config,
    )
    .await
    .map_err(Failure::from_client)?;
    c.sync().await.map_err(Failure::from_client)?;
    catch_up(&mut c).await?;
    Ok((c, chain, d, key))
}

/// Epochs the chain has registered beyond this client's, over its active groups.
async fn epochs_behind(c: &Cl) -> Result<u64, Failure> {
    let mut behind = 0;
    for g in c.groups() {
        if c.is_active(g) {
            let local = c.epoch(g).map_err(Failure::from_client)?;
            let chain = c.chain_epoch(g).await.map_err(Failure::from_client)?;
            behind += chain.saturating_sub(local);
        }
    }
    Ok(behind)
}

/// Catch-up with a progress bar: runs the client while it gets closer to the chain's epochs
/// (it stops when two seconds bring nothing; `doctor` reports what is still behind).
async fn catch_up(c: &mut Cl) -> Result<(), Failure> {
    let start = epochs_behind(c).await?;
    if start == 0 {
        return Ok(());
    }
    let mut bar = Progress::new("catching up (epochs)", start);
    let mut behind = start;
    while behind > 0 {
        bar.set(start - behind);
        let deadline = Instant::now() + Duration::from_secs(2);
        let mut now_behind = behind;
        while now_behind >= behind && Instant::now() < deadline {
            // Events stay queued for the command (sync, not next_event).
            c.sync().await.map_err(Failure::from_client)?;
            tokio::time::sleep(Duration::from_millis(200)).await;
            now_behind = epochs_behind(c).await?;
        }
        if now_behind >= behind {
            break;
        }
        behind = now_behind;
    }
    bar.set(start - behind);
    bar.done();
    Ok(())
}

/// The lock of the store this process opened, held until it exits.
static STORE_LOCK: std::sync::OnceLock<std::fs::File> = std::sync::OnceLock::new();

/// One process per account store at a time (a `watch` and a `send` on the same account would
/// both take in and answer the same frames): an exclusive lock on `<store>.lock`.
fn lock_store(path: &Path) -> Result<(), Failure> {
    let lock_path = path.with_extension("lock");
    let mut options = std::fs::OpenOptions::new();
    options.create(true).truncate(false).write(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let file = options
        .open(&lock_path)
        .map_err(|e| Failure::io(&lock_path, e))?;
    match file.try_lock() {
        Ok(()) => {
            let _ = STORE_LOCK.set(file);
            Ok(())
        }
        Err(std::fs::TryLockError::WouldBlock) => Err(Failure::usage(
            "another ethmls process is using this account",
            "stop it (a `watch` or `chat`?) or wait for it to finish",
        )),
        Err(std::fs::TryLockError::Error(e)) => Err(Failure::io(&lock_path, e)),
    }
}

/// Syncs for up to `wait`, until `done` holds for the events seen; returns them. With
/// `progress`, a bar of the seconds waited is drawn under that label.
async fn sync_until(
    c: &mut Cl,
    wait: Duration,
    progress: Option<&str>,
    done: impl Fn(&[ClientEvent]) -> bool,
) -> Result<Vec<ClientEvent>, Failure> {
    let start = Instant::now();
    let deadline = start + wait;
    let mut bar = progress.map(|what| Progress::new(what, wait.as_secs()));
    let mut seen = c.drain_events();
    while !done(&seen) && Instant::now() < deadline {
        if let Some(b) = bar.as_mut() {
            b.set(start.elapsed().as_secs());
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if let Some(e) = c
            .next_event(left.min(Duration::from_millis(500)))
            .await
            .map_err(Failure::from_client)?
        {
            seen.push(e);
        }
        seen.extend(c.drain_events());
    }
    Ok(seen)
}

fn parse_address(s: &str) -> Result<Address, Failure> {
    s.parse().map_err(|_| {
        Failure::usage(
            format!("{s:?} is not an address"),
            "give a 0x-prefixed 20-byte hex address",
        )
    })
}

fn parse_request_id(s: &str) -> Result<[u8; 16], Failure> {
    let bad = || {
        Failure::usage(
            format!("{s:?} is not an invitation id"),
            "see `ethmls group requests` for the ids",
        )
    };
    let bytes = hex::decode(s.trim_start_matches("0x")).map_err(|_| bad())?;
    bytes.try_into().map_err(|_| bad())
}

async fn run(cli: &Cli, out: &Out) -> Result<Value, Failure> {
    let home = home(cli)?;
    private::secure_home(&home)?;
    match &cli.command {
        Command::Account(cmd) => account(cli, &home, cmd).await,
        Command::Devnet { stop: true, .. } => {
            let stopped = local::stop(&home)?;
            Ok(json!({ "stopped": stopped }))
        }
        Command::Devnet { port, .. } => devnet(&home, *port, out).await,
        Command::Deploy => {
            let (_, key, _) = account_key(cli, &home)?;
            let chain = chain_for(cli, &home, Some(&key), out).await?;
            let d = deploy(&chain)
                .await
                .map_err(|e| Failure::chain(e, "is the account funded?"))?;
            let path = deployment_path(cli, &home);
            d.save(&path)
                .map_err(|e| Failure::chain(e, "check the deployment path"))?;
            Ok(deployment_json(&d, &path))
        }
        Command::Fund { address, eth } => {
            let address = parse_address(address)?;
            let chain = chain_for(cli, &home, None, out).await?;
            let wei = eth_mls_chain::alloy::primitives::U256::from(*eth)
                * eth_mls_chain::alloy::primitives::U256::from(10u64)
                    .pow(eth_mls_chain::alloy::primitives::U256::from(18u64));
            let _: Value = chain
                .provider()
                .raw_request("anvil_setBalance".into(), (address, wei))
                .await
                .map_err(|e| {
                    Failure::new(
                        Kind::Chain,
                        format!("could not set the balance: {e}"),
                        "`fund` works on a local anvil only; on a real chain send ETH",
                    )
                })?;
            Ok(json!({ "address": format!("{address:#x}"), "eth": eth }))
        }
        Command::Register => {
            let (mut c, chain, d, key) = client_on_chain(cli, &home, out).await?;
            let mut bar = Progress::new("registering (prekey bundle, node key)", 2);
            bar.set(0);
            c.publish_keys().await.map_err(Failure::from_client)?;
            bar.set(1);
            // The account's gossip node key, so members find its PeerId by its address.
            let node_key = net::account_node_key(&key)?;
            let public = eth_mls_transport::ed25519_public_key(&node_key)
                .ok_or_else(|| Failure::new(Kind::Other, "the node key is not Ed25519", ""))?;
            chain
                .erc7627(d.erc7627)
                .publish_peer_key(&public, 0)
                .await
                .map_err(|e| Failure::chain(e, "is the account funded?"))?;
            bar.set(2);
            bar.done();
            Ok(json!({
                "address": format!("{:#x}", c.address()),
                "peer_id": node_key.public().to_peer_id().to_base58(),
            }))
        }
        Command::Group(cmd) => group(cli, &home, cmd, out).await,
        Command::Send { group, text } => {
            let g = parse_address(group)?;
            let mut c = client(cli, &home, out).await?;
            c.send(g, text.as_bytes())
                .await
                .map_err(Failure::from_client)?;
            c.sync().await.map_err(Failure::from_client)?;
            Ok(json!({ "group": format!("{g:#x}"), "epoch": c.epoch(g).ok() }))
        }
        Command::Read { group } => {
            let g = parse_address(group)?;
            let c = client(cli, &home, out).await?;
            let messages: Vec<Value> = c
                .messages(g)
                .map_err(Failure::from_client)?
                .into_iter()
                .map(|m| {
                    json!({
                        "sender": format!("{:#x}", m.sender),
                        "epoch": m.epoch,
                        "received_at": m.received_at,
                        "text": String::from_utf8_lossy(&m.data),
                    })
                })
                .collect();
            if !out.json {
                for m in &messages {
                    say!(
                        "{} {}: {}",
                        m["received_at"],
                        out::clean(m["sender"].as_str().unwrap_or("")),
                        out::clean(m["text"].as_str().unwrap_or(""))
                    );
                }
            }
            Ok(json!({ "group": format!("{g:#x}"), "messages": messages }))
        }
        Command::Watch { timeout, count } => {
            let mut c = client(cli, &home, out).await?;
            let deadline = timeout.map(|t| Instant::now() + Duration::from_secs(t));
            let mut n = 0u64;
            loop {
                if count.is_some_and(|m| n >= m) {
                    break;
                }
                let left = match deadline {
                    Some(d) => d.saturating_duration_since(Instant::now()),
                    None => Duration::from_secs(3600),
                };
                if left.is_zero() {
                    break;
                }
                if let Some(e) = c.next_event(left).await.map_err(Failure::from_client)? {
                    n += 1;
                    out.event(&out::event_json(&e));
                }
            }
            Ok(json!({ "events": n }))
        }
        Command::Chat { group } => {
            let g = parse_address(group)?;
            let mut c = client(cli, &home, out).await?;
            if !c.is_active(g) {
                return Err(Failure::usage(
                    format!("this account is not a member of {g:#x}"),
                    "see `ethmls group list`",
                ));
            }
            chat(&mut c, g, out).await
        }
        Command::Doctor => {
            let (mut c, chain, d, _) = client_on_chain(cli, &home, out).await?;
            let events = sync_until(&mut c, Duration::from_secs(2), None, |_| false).await?;
            let mut report = doctor(&c, &events).await?;
            let registered = chain
                .erc7627(d.erc7627)
                .peer_key(c.address())
                .await
                .map_err(|e| Failure::chain(e, "check the RPC endpoint"))?
                .and_then(|k| eth_mls_transport::peer_id_from_ed25519(&k).ok());
            report["delivery"] = json!(delivery(cli, &home)?.name());
            if let Some(gossip) = net::doctor_info(registered).await {
                let mut problems = Vec::new();
                if gossip["peers"].as_array().is_none_or(|p| p.is_empty()) {
                    problems.push(json!({
                        "problem": "no gossip peers connected",
                        "fix": "check that `ethmls node` runs at the --peer address",
                    }));
                }
                if gossip["registered_peer_id"] != gossip["peer_id"] {
                    problems.push(json!({
                        "problem": "the chain does not have this account's gossip PeerId",
                        "fix": "run `ethmls register`",
                    }));
                }
                if let Some(list) = report["problems"].as_array_mut() {
                    list.extend(problems);
                }
                report["healthy"] =
                    json!(report["problems"].as_array().is_none_or(|p| p.is_empty()));
                report["gossip"] = gossip;
            }
            Ok(report)
        }
        Command::Node => {
            let listen = listen(cli, &home, net::NODE_LISTEN)?;
            let peers = net::parse_peers(&peers(cli, &home)?)?;
            net::run_node(&home, &listen, peers, out).await
        }
        Command::Config(cmd) => config(cli, &home, cmd),
        Command::Sync { wait } => {
            let mut c = client(cli, &home, out).await?;
            let events = sync_until(&mut c, Duration::from_secs(*wait), None, |_| false).await?;
            for e in &events {
                out.event(&out::event_json(e));
            }
            Ok(json!({ "events": events.len() }))
        }
    }
}

/// `ethmls config show|set|unset`.
fn config(cli: &Cli, home: &Path, cmd: &ConfigCmd) -> Result<Value, Failure> {
    let mut config = Config::load(home)?;
    match cmd {
        ConfigCmd::Show => {
            let from = |flag: bool, file: bool| {
                if flag {
                    "flag or environment"
                } else if file {
                    "config file"
                } else {
                    "default"
                }
            };
            let delivery = delivery(cli, home)?;
            let peers = peers(cli, home)?;
            Ok(json!({
                "file": home.join("config.json").display().to_string(),
                "rpc_url": cli.rpc_url.clone().or(config.rpc_url.clone())
                    .unwrap_or_else(|| "the local chain (started on demand)".into()),
                "rpc_url_from": from(cli.rpc_url.is_some(), config.rpc_url.is_some()),
                "account": cli.account.clone().or(config.account.clone()),
                "delivery": delivery.name(),
                "delivery_from": from(cli.delivery.is_some(), config.delivery.is_some()),
                "peers": peers,
                "peers_from": from(!cli.peers.is_empty(), !config.peers.is_empty()),
                "listen": listen(cli, home, net::CLIENT_LISTEN)?,
            }))
        }
        ConfigCmd::Set { key, value } => {
            match key.as_str() {
                "rpc_url" => config.rpc_url = Some(value.clone()),
                "account" => {
                    keystore_path(home, value)?;
                    config.account = Some(value.clone());
                }
                "delivery" => {
                    config.delivery = Some(
                        <Delivery as clap::ValueEnum>::from_str(value, true).map_err(|_| {
                            Failure::usage(
                                format!("delivery {value:?} is not chain, gossip or both"),
                                "ethmls config set delivery both",
                            )
                        })?,
                    );
                }
                "peers" => {
                    let list: Vec<String> = value
                        .split(',')
                        .map(|p| p.trim().to_string())
                        .filter(|p| !p.is_empty())
                        .collect();
                    net::parse_peers(&list)?;
                    config.peers = list;
                }
                "listen" => {
                    value
                        .parse::<eth_mls_transport::libp2p::Multiaddr>()
                        .map_err(|e| {
                            Failure::usage(
                                format!("{value:?} is not a multiaddr: {e}"),
                                "e.g. /ip4/127.0.0.1/tcp/0",
                            )
                        })?;
                    config.listen = Some(value.clone());
                }
                other => return Err(unknown_setting(other)),
            }
            config.save(home)?;
            Ok(json!({ "set": key, "value": value }))
        }
        ConfigCmd::Unset { key } => {
            match key.as_str() {
                "rpc_url" => config.rpc_url = None,
                "account" => config.account = None,
                "delivery" => config.delivery = None,
                "peers" => config.peers.clear(),
                "listen" => config.listen = None,
                other => return Err(unknown_setting(other)),
            }
            config.save(home)?;
            Ok(json!({ "unset": key }))
        }
    }
}

fn unknown_setting(key: &str) -> Failure {
    Failure::usage(
        format!("no setting named {key:?}"),
        "the settings are rpc_url, account, delivery, peers and listen",
    )
}

/// Deploys the contracts with a progress bar.
pub(crate) async fn deploy(chain: &Chain) -> Result<Deployment, eth_mls_chain::Error> {
    let mut bar = Progress::new("deploying the contracts", Deployment::DEPLOY_STEPS);
    let d = Deployment::deploy_with_progress(chain, |done, _| bar.set(done)).await;
    bar.done();
    d
}

fn deployment_json(d: &Deployment, path: &Path) -> Value {
    json!({
        "chain_id": d.chain_id,
        "erc7627": format!("{:#x}", d.erc7627),
        "group_factory": format!("{:#x}", d.group_factory),
        "block": d.block,
        "file": path.display().to_string(),
    })
}

async fn account(cli: &Cli, home: &Path, cmd: &AccountCmd) -> Result<Value, Failure> {
    match cmd {
        AccountCmd::New { name } => {
            let path = keystore_path(home, name)?;
            if path.exists() {
                return Err(Failure::usage(
                    format!("an account named {name} exists"),
                    "pick another name or `ethmls account remove` it",
                ));
            }
            let mut key = Zeroizing::new([0u8; 32]);
            loop {
                getrandom::fill(key.as_mut())
                    .map_err(|e| Failure::new(Kind::Other, format!("no randomness: {e}"), ""))?;
                if PrivateKeySigner::from_slice(key.as_slice()).is_ok() {
                    break;
                }
            }
            save_account(cli, home, name, &path, &key)
        }
        AccountCmd::Import {
            name,
            private_key_file,
        } => {
            let path = keystore_path(home, name)?;
            if path.exists() {
                return Err(Failure::usage(
                    format!("an account named {name} exists"),
                    "pick another name or `ethmls account remove` it",
                ));
            }
            let text = match private_key_file {
                Some(f) => {
                    Zeroizing::new(std::fs::read_to_string(f).map_err(|e| Failure::io(f, e))?)
                }
                None => {
                    if !std::io::IsTerminal::is_terminal(&std::io::stdin()) {
                        return Err(Failure::usage(
                            "no key to import",
                            "pass --private-key-file FILE (the key is never taken on the command line)",
                        ));
                    }
                    Zeroizing::new(
                        rpassword::prompt_password("private key (hex): ").map_err(|e| {
                            Failure::usage(format!("could not read the key: {e}"), "")
                        })?,
                    )
                }
            };
            let hexkey = text.trim().trim_start_matches("0x");
            let bytes = Zeroizing::new(hex::decode(hexkey).map_err(|_| {
                Failure::usage("the key is not hex", "a secp256k1 key is 64 hex digits")
            })?);
            let key: Zeroizing<[u8; 32]> =
                Zeroizing::new(bytes.as_slice().try_into().map_err(|_| {
                    Failure::usage(
                        "the key is not 32 bytes",
                        "a secp256k1 key is 64 hex digits",
                    )
                })?);
            PrivateKeySigner::from_slice(key.as_slice())
                .map_err(|_| Failure::usage("not a valid secp256k1 key", ""))?;
            save_account(cli, home, name, &path, &key)
        }
        AccountCmd::List => {
            let mut list = Vec::new();
            for name in account_names(home)? {
                let path = keystore_path(home, &name)?;
                list.push(json!({ "name": name, "address": keystore_address(&path) }));
            }
            Ok(json!({ "accounts": list }))
        }
        AccountCmd::Show { name } => {
            let name = match name {
                Some(n) => n.clone(),
                None => account_name(cli, home)?,
            };
            let path = keystore_path(home, &name)?;
            if !path.exists() {
                return Err(Failure::usage(
                    format!("no account named {name}"),
                    "see `ethmls account list`",
                ));
            }
            Ok(
                json!({ "name": name, "address": keystore_address(&path), "keystore": path.display().to_string() }),
            )
        }
        AccountCmd::Remove { name } => {
            let path = keystore_path(home, name)?;
            std::fs::remove_file(&path).map_err(|e| account_file_error(name, &path, e))?;
            Ok(json!({ "removed": name }))
        }
    }
}

fn save_account(
    cli: &Cli,
    home: &Path,
    name: &str,
    path: &Path,
    key: &[u8; 32],
) -> Result<Value, Failure> {
    let pw = password(cli, &format!("new password for {name}: "))?;
    if pw.is_empty() {
        return Err(Failure::usage("the password is empty", "choose a password"));
    }
    let json = eth_mls::keystore::encrypt(key, pw.as_bytes(), KEYSTORE_LOG_N)
        .map_err(Failure::from_client)?;
    let dir = keystore_dir(home);
    private::dir(&dir)?;
    write_private(path, json.as_bytes())?;
    let address = PrivateKeySigner::from_slice(key)
        .map(|s| s.address())
        .map_err(|_| Failure::usage("not a valid secp256k1 key", ""))?;
    Ok(
        json!({ "name": name, "address": format!("{address:#x}"), "keystore": path.display().to_string() }),
    )
}

/// Writes a file readable by its owner only.
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> Result<(), Failure> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut f = options.open(path).map_err(|e| Failure::io(path, e))?;
    f.write_all(bytes).map_err(|e| Failure::io(path, e))
}

/// The address a keystore file names (its `address` field), as cast shows it.
fn keystore_address(path: &Path) -> Value {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|s| serde_json::from_str::<Value>(&s).ok())
        .and_then(|v| {
            v.get("address")
                .and_then(|a| a.as_str())
                .map(|a| format!("0x{}", a.trim_start_matches("0x")))
        })
        .map(Value::String)
        .unwrap_or(Value::Null)
}

/// `ethmls devnet`: anvil on 127.0.0.1, the contracts deployed, the deployment and the RPC
/// URL written to the home; runs until interrupted.
async fn devnet(home: &Path, port: Option<u16>, out: &Out) -> Result<Value, Failure> {
    out.progress("starting anvil");
    let port_arg = port.map(|p| p.to_string());
    let mut args = vec!["--accounts", "20"];
    if let Some(p) = &port_arg {
        args.extend(["--port", p.as_str()]);
    }
    let devnet = Devnet::start_with(&args).map_err(|e| {
        Failure::chain(
            e,
            "install Foundry's anvil (cargo xtask setup puts it in .tools/)",
        )
    })?;
    let chain = devnet
        .chain(0)
        .await
        .map_err(|e| Failure::chain(e, "see anvil's output"))?;
    let d = deploy(&chain)
        .await
        .map_err(|e| Failure::chain(e, "see anvil's output"))?;
    let path = home.join("deployment.json");
    private::dir(home)?;
    d.save(&path)
        .map_err(|e| Failure::chain(e, "check the home directory"))?;
    private::restrict(&path, false)?;
    let mut config = Config::load(home)?;
    config.rpc_url = Some(devnet.rpc_url());
    config.save(home)?;
    let mut info = deployment_json(&d, &path);
    info["rpc_url"] = json!(devnet.rpc_url());
    out.event(&json!({ "event": "devnet_ready", "devnet": info.clone() }));
    // Runs until interrupted (or its standard input closes, for scripts).
    let stdin_closed = tokio::task::spawn_blocking(|| {
        let mut sink = Vec::new();
        let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut sink);
    });
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = stdin_closed => {}
    }
    drop(devnet);
    Ok(info)
}

async fn group(cli: &Cli, home: &Path, cmd: &GroupCmd, out: &Out) -> Result<Value, Failure> {
    let mut c = client(cli, home, out).await?;
    match cmd {
        GroupCmd::Create { name, any_member } => {
            let policy = if *any_member {
                CommitPolicy::AnyMember
            } else {
                CommitPolicy::AdminsOnly
            };
            out.progress("creating the group contract");
            let g = c
                .create_group(name.as_bytes(), policy)
                .await
                .map_err(Failure::from_client)?;
            Ok(json!({ "group": format!("{g:#x}"), "name": name, "epoch": c.epoch(g).ok() }))
        }
        GroupCmd::Invite {
            group,
            address,
            note,
        } => {
            let g = parse_address(group)?;
            let who = parse_address(address)?;
            c.invite(g, who, note).await.map_err(Failure::from_client)?;
            Ok(json!({ "group": format!("{g:#x}"), "invited": format!("{who:#x}") }))
        }
        GroupCmd::Requests => {
            let list: Vec<Value> = c
                .invitations()
                .map_err(Failure::from_client)?
                .into_iter()
                .filter(|i| !i.answered)
                .map(|i| {
                    json!({
                        "id": hex::encode(i.request.request_id),
                        "from": format!("{:#x}", i.from),
                        "group": format!("{:#x}", Address::from(i.request.group.group_contract)),
                        "note": i.request.note,
                        "expiry": i.request.expiry,
                    })
                })
                .collect();
            if !out.json {
                for i in &list {
                    say!(
                        "{}  group {} from {}  {}",
                        i["id"].as_str().unwrap_or(""),
                        i["group"].as_str().unwrap_or(""),
                        i["from"].as_str().unwrap_or(""),
                        out::clean(i["note"].as_str().unwrap_or(""))
                    );
                }
            }
            Ok(json!({ "invitations": list }))
        }
        GroupCmd::Accept { id, wait } => {
            let id = parse_request_id(id)?;
            let group = c
                .invitations()
                .map_err(Failure::from_client)?
                .into_iter()
                .find(|i| i.request.request_id == id)
                .map(|i| Address::from(i.request.group.group_contract))
                .ok_or_else(|| {
                    Failure::usage("no such invitation", "see `ethmls group requests`")
                })?;
            c.accept(id).await.map_err(Failure::from_client)?;
            // The inviter's client commits the add and sends the Welcome: wait for it.
            let waiting = Some("waiting for the inviter to add this account (s)");
            let events = sync_until(&mut c, Duration::from_secs(*wait), waiting, |s| {
                s.iter()
                    .any(|e| matches!(e, ClientEvent::Joined { group: g, .. } if *g == group))
            })
            .await?;
            let joined = c.is_active(group);
            for e in &events {
                out.event(&out::event_json(e));
            }
            Ok(
                json!({ "group": format!("{group:#x}"), "joined": joined, "epoch": c.epoch(group).ok() }),
            )
        }
        GroupCmd::Decline { id } => {
            let id = parse_request_id(id)?;
            c.decline(id).await.map_err(Failure::from_client)?;
            Ok(json!({ "declined": hex::encode(id) }))
        }
        GroupCmd::Members { group } => {
            let g = parse_address(group)?;
            let members: Vec<String> = c
                .members(g)
                .map_err(Failure::from_client)?
                .into_iter()
                .map(|m| format!("{m:#x}"))
                .collect();
            if !out.json {
                for m in &members {
                    say!("{m}");
                }
            }
            Ok(json!({
                "group": format!("{g:#x}"),
                "epoch": c.epoch(g).ok(),
                "members": members,
                "active": c.is_active(g),
            }))
        }
        GroupCmd::List => {
            let groups: Vec<Value> = c
                .groups()
                .into_iter()
                .map(|g| {
                    json!({
                        "group": format!("{g:#x}"),
                        "epoch": c.epoch(g).ok(),
                        "active": c.is_active(g),
                    })
                })
                .collect();
            Ok(json!({ "groups": groups }))
        }
        GroupCmd::Remove { group, address } => {
            let g = parse_address(group)?;
            let who = parse_address(address)?;
            let before = c.epoch(g).map_err(Failure::from_client)?;
            c.remove(g, &[who]).await.map_err(Failure::from_client)?;
            let waiting = Some("waiting for the commit's confirmation and merge (s)");
            let events = sync_until(&mut c, Duration::from_secs(60), waiting, |s| {
                s.iter().any(|e| {
                    matches!(e, ClientEvent::MemberRemoved { group: gg, member } if *gg == g && *member == who)
                        || matches!(e, ClientEvent::IntentFailed { .. })
                })
            })
            .await?;
            committed(&c, g, before, &events)?;
            Ok(
                json!({ "group": format!("{g:#x}"), "removed": format!("{who:#x}"), "epoch": c.epoch(g).ok() }),
            )
        }
        GroupCmd::Leave { group } => {
            let g = parse_address(group)?;
            c.leave(g).await.map_err(|e| match e {
                eth_mls::Error::RequestNotAllowed => Failure::usage(
                    "this account is the group's only admin",
                    "make another member an admin first, or keep the group",
                ),
                e => Failure::from_client(e),
            })?;
            Ok(json!({
                "group": format!("{g:#x}"),
                "requested": true,
                "note": "an admin removes this account when its client next runs",
            }))
        }
        GroupCmd::Update { group } => {
            let g = parse_address(group)?;
            let before = c.epoch(g).map_err(Failure::from_client)?;
            c.update(g).await.map_err(Failure::from_client)?;
            merged_after(
                &mut c,
                g,
                before,
                "waiting for the commit's confirmation and merge (s)",
            )
            .await?;
            Ok(json!({ "group": format!("{g:#x}"), "epoch": c.epoch(g).ok() }))
        }
        GroupCmd::Recover { group, remove } => {
            let g = parse_address(group)?;
            let remove = remove
                .iter()
                .map(|a| parse_address(a))
                .collect::<Result<Vec<_>, _>>()?;
            let before = c.epoch(g).map_err(Failure::from_client)?;
            c.recover(g, &remove).await.map_err(|e| match e {
                eth_mls::Error::NotOwner { .. } => Failure::usage(
                    "only the group's owner can recover it",
                    "ask the owner to run `ethmls group recover`",
                ),
                eth_mls::Error::NotStalled { .. } => Failure::usage(
                    "the group is not stalled: there is nothing to replace",
                    "`ethmls doctor` shows each group's state",
                ),
                e => Failure::from_client(e),
            })?;
            let waiting = "waiting for the replacement's confirmation and merge (s)";
            merged_after(&mut c, g, before, waiting).await?;
            let removed: Vec<String> = remove.iter().map(|a| format!("{a:#x}")).collect();
            Ok(json!({ "group": format!("{g:#x}"), "epoch": c.epoch(g).ok(), "removed": removed }))
        }
    }
}

/// Syncs until a commit of `g` past epoch `before` is merged (or the intent failed), then
/// [`committed`].
async fn merged_after(c: &mut Cl, g: Address, before: u64, waiting: &str) -> Result<(), Failure> {
    let events = sync_until(c, Duration::from_secs(60), Some(waiting), |s| {
        s.iter().any(|e| {
            matches!(e, ClientEvent::CommitMerged { group: gg, epoch, .. } if *gg == g && *epoch > before)
                || matches!(e, ClientEvent::IntentFailed { .. })
        })
    })
    .await?;
    committed(c, g, before, &events)
}

/// Fails when the change's intent failed or the epoch did not move.
fn committed(c: &Cl, g: Address, before: u64, events: &[ClientEvent]) -> Result<(), Failure> {
    if let Some(reason) = events.iter().find_map(|e| match e {
        ClientEvent::IntentFailed { reason, .. } => Some(reason.clone()),
        _ => None,
    }) {
        return Err(Failure::new(
            Kind::Chain,
            format!("the change failed: {reason}"),
            "check that this account may commit in the group (`ethmls group members`)",
        ));
    }
    if c.epoch(g).unwrap_or(before) <= before {
        return Err(Failure::new(
            Kind::Chain,
            "the change was not committed in time",
            "it stays queued: run `ethmls sync` to finish it",
        ));
    }
    Ok(())
}

/// `ethmls chat`: standard input lines are sent; incoming messages and membership changes
/// are printed as they come. Ends at the end of input (after taking in what arrived).
async fn chat(c: &mut Cl, g: Address, out: &Out) -> Result<Value, Failure> {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::stdin().lock().lines().map_while(|l| l.ok()) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let me = c.address();
    let (mut sent, mut received) = (0u64, 0u64);
    let mut input_open = true;
    let mut closing_until: Option<Instant> = None;
    loop {
        if let Some(t) = closing_until
            && Instant::now() >= t
        {
            break;
        }
        // Typed lines first, then one bounded look for input (never cancelled halfway: the
        // client's work is not interrupted at an await point).
        loop {
            match rx.try_recv() {
                Ok(line) if !line.trim().is_empty() => {
                    c.send(g, line.as_bytes())
                        .await
                        .map_err(Failure::from_client)?;
                    sent += 1;
                    out.event(&json!({ "event": "sent", "group": format!("{g:#x}"), "sender": format!("{me:#x}"), "text": line }));
                }
                Ok(_) => {}
                Err(tokio::sync::mpsc::error::TryRecvError::Empty) => break,
                Err(tokio::sync::mpsc::error::TryRecvError::Disconnected) => {
                    if input_open {
                        // End of input: a last look for answers, then exit.
                        input_open = false;
                        closing_until = Some(Instant::now() + Duration::from_secs(2));
                    }
                    break;
                }
            }
        }
        if let Some(e) = c
            .next_event(Duration::from_millis(200))
            .await
            .map_err(Failure::from_client)?
        {
            let shown = match &e {
                ClientEvent::Message { group, .. } if *group == g => {
                    received += 1;
                    true
                }
                ClientEvent::MemberAdded { group, .. }
                | ClientEvent::MemberRemoved { group, .. }
                | ClientEvent::Removed { group }
                | ClientEvent::ForkDetected { group, .. } => *group == g,
                ClientEvent::InvitationReceived { .. } => true,
                _ => false,
            };
            if shown {
                out.event(&out::event_json(&e));
            }
            if matches!(e, ClientEvent::Removed { group } if group == g) {
                break;
            }
        }
    }
    Ok(json!({ "group": format!("{g:#x}"), "sent": sent, "received": received }))
}

/// `ethmls doctor`: what is wrong with this account's groups, and what to do.
async fn doctor(c: &Cl, events: &[ClientEvent]) -> Result<Value, Failure> {
    let mut groups = Vec::new();
    let mut problems = Vec::new();
    for g in c.groups() {
        let local = c.epoch(g).map_err(Failure::from_client)?;
        let chain = c.chain_epoch(g).await.map_err(Failure::from_client)?;
        let active = c.is_active(g);
        let stalled = c.stalled(g).map_err(Failure::from_client)?;
        if let Some(s) = &stalled {
            let owner = c.acl(g).ok().and_then(|a| a.owner);
            let fix = if owner == Some(c.address()) {
                format!(
                    "you own it: `ethmls group recover {g:#x}` (with `--remove ADDRESS` for \
                     whoever registered it)"
                )
            } else {
                format!(
                    "its owner ({}) replaces the commit with `ethmls group recover`; nothing to \
                     do here",
                    owner.map_or("unknown".into(), |o| format!("{o:#x}"))
                )
            };
            problems.push(json!({
                "group": format!("{g:#x}"),
                "problem": format!("stalled at epoch {local}: the commit registered for {} was refused ({})", s.epoch, s.reason),
                "fix": fix,
            }));
        } else if active && chain > local {
            problems.push(json!({
                "group": format!("{g:#x}"),
                "problem": format!("{} epochs behind the chain", chain - local),
                "fix": "run `ethmls sync` (more confirmations may still be due)",
            }));
        }
        // The tree and the ACL should name the same accounts (security review L2: an account
        // that left keeps its leaf until an admin commits its removal).
        if active && let (Ok(tree), Ok(acl)) = (c.members(g), c.acl(g)) {
            let tree: std::collections::BTreeSet<_> = tree.into_iter().collect();
            let only_tree: Vec<String> = tree
                .difference(&acl.members)
                .map(|a| format!("{a:#x}"))
                .collect();
            let only_acl: Vec<String> = acl
                .members
                .difference(&tree)
                .map(|a| format!("{a:#x}"))
                .collect();
            if !only_tree.is_empty() || !only_acl.is_empty() {
                problems.push(json!({
                    "group": format!("{g:#x}"),
                    "problem": format!(
                        "the group's tree and its ACL differ: in the tree only {only_tree:?}, in the ACL only {only_acl:?}"
                    ),
                    "fix": "an admin's client commits the removal of accounts that left; run `ethmls sync` on an admin's account",
                }));
            }
        }
        groups.push(json!({
            "group": format!("{g:#x}"),
            "local_epoch": local,
            "chain_epoch": chain,
            "active": active,
            "stalled": stalled.as_ref().map(|s| json!({ "epoch": s.epoch, "reason": s.reason })),
        }));
    }
    for e in events {
        let (problem, fix) = match e {
            ClientEvent::ForkDetected { reason, .. } => (
                format!("forked: {reason}"),
                "the owner was asked to re-add this account; keep `ethmls watch` running",
            ),
            ClientEvent::MergeDelayed { epoch, error, .. } => (
                format!("the commit of epoch {epoch} could not be checked yet: {error}"),
                "it is tried again at the next sync; check the RPC endpoint",
            ),
            ClientEvent::MissedMessages { count, .. } => (
                format!("{count} messages missed"),
                "they were not delivered to this device while it was away",
            ),
            ClientEvent::MessageLost { reason, .. } => (
                format!("a message could not be decrypted: {reason}"),
                "it arrived after its epoch's keys were gone",
            ),
            ClientEvent::CredentialDue { .. } => (
                "the account's credential expires soon".to_string(),
                "renew it (a self-update in each group carries the new one)",
            ),
            ClientEvent::MemberDue { member, .. } => (
                format!("member {member:#x}'s credential expired"),
                "an admin removes it (`ethmls group remove`)",
            ),
            ClientEvent::IntentFailed { reason, .. } => {
                (format!("a change failed: {reason}"), "try it again")
            }
            _ => continue,
        };
        problems.push(json!({ "problem": problem, "fix": fix }));
    }
    Ok(json!({
        "address": format!("{:#x}", c.address()),
        "groups": groups,
        "problems": problems,
        "healthy": problems.is_empty(),
    }))
}
