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

mod account;
mod api;
mod args;
mod chat;
mod daemon;
mod doctor;
mod local;
mod net;
mod open;
mod out;
mod private;
mod remote;
mod reset;
mod signals;
mod web;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use eth_mls::{Client, ClientEvent};
use eth_mls_chain::alloy::providers::Provider;
use eth_mls_chain::{Chain, Deployment, Devnet};
use eth_mls_siwe::Address;
use eth_mls_transport::DeliveryService;
use serde_json::{Value, json};
use zeroize::Zeroizing;

use args::{Cli, Command, ConfigCmd, Delivery};
use open::{client, client_on_chain};
use out::{Failure, Kind, Out, Progress};

/// The SIWE domain every credential made by `ethmls` names (members must agree on it).
const DOMAIN: &str = "ethmls.local";
/// scrypt cost of new keystores (2^13: quick on a laptop; geth's "light" setting is 2^12).
const KEYSTORE_LOG_N: u8 = 13;

fn main() {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => usage_error(e),
    };
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
    // Nothing is left to wait for (a thread reading a terminal never ends by itself).
    rt.shutdown_background();
    match result {
        Ok(mut result) => {
            // Every transaction this command sent, and what it cost (issue 30).
            let spent = open::spent();
            if spent.transactions > 0
                && let Value::Object(map) = &mut result
            {
                map.insert("transactions".into(), json!(spent.transactions));
                map.insert("gas_used".into(), json!(spent.gas_used));
                map.insert("cost_eth".into(), json!(open::eth(spent.wei)));
            }
            out.ok(command, result);
            std::process::exit(0)
        }
        Err(f) => out.fail(&f),
    }
}

/// clap's verdict on the command line: help and version as clap prints them; a usage error
/// as a usage failure (exit 2), in the JSON envelope when `--json` was given.
fn usage_error(e: clap::Error) -> ! {
    use clap::error::ErrorKind;
    if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion)
        || !std::env::args_os().any(|a| a == "--json")
    {
        e.exit()
    }
    let message = e
        .render()
        .to_string()
        .lines()
        .next()
        .unwrap_or("bad command line")
        .trim_start_matches("error: ")
        .to_string();
    Out::new(true).fail(&Failure::usage(message, "see `ethmls --help`"))
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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    confirmations: Option<u64>,
    /// The most a transaction may pay per gas, gwei (EIP-1559 `maxFeePerGas`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max_fee_gwei: Option<f64>,
}

/// The fee cap in effect, wei per gas.
pub fn max_fee_per_gas(home: &Path) -> Result<Option<u128>, Failure> {
    Ok(Config::load(home)?
        .max_fee_gwei
        .map(|g| (g * 1e9).round() as u128))
}

/// How many blocks must be on top of a registration before this chain's commits count
/// (DESIGN.md decision 23): 0 on devnets, a few seconds' worth on known L2s, about the `safe`
/// head's depth on Ethereum and its testnets, and a careful 12 elsewhere. A reorg deeper than
/// this is detected by registration hash.
pub fn default_confirmations(chain_id: u64) -> u64 {
    match chain_id {
        // anvil, hardhat, ganache.
        31337 | 1337 => 0,
        // Ethereum, Sepolia, Holesky, Hoodi: one epoch (~6.4 min), the `safe` head's depth.
        1 | 11155111 | 17000 | 560048 => 32,
        // OP stack (OP, Base and their Sepolias; 2 s blocks): 20 s.
        10 | 8453 | 11155420 | 84532 => 10,
        // Arbitrum One, Nova, Sepolia (0.25 s blocks): 10 s.
        42161 | 42170 | 421614 => 40,
        // Polygon PoS and Amoy (2 s blocks, deeper reorgs seen).
        137 | 80002 => 64,
        _ => 12,
    }
}

/// The confirmations in effect: the config's, else [`default_confirmations`].
fn confirmations(home: &Path, chain_id: u64) -> Result<u64, Failure> {
    Ok(Config::load(home)?
        .confirmations
        .unwrap_or_else(|| default_confirmations(chain_id)))
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
            "the chain does not have the contracts at their usual addresses: run `ethmls devnet` \
             (local) or `ethmls deploy`, or pass --deployment FILE",
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
    if matches!(
        cli.command,
        Command::Daemon {
            password_stdin: true,
            ..
        }
    ) {
        let mut line = Zeroizing::new(String::new());
        std::io::stdin()
            .read_line(&mut line)
            .map_err(|e| Failure::usage(format!("could not read the password: {e}"), ""))?;
        let trimmed = Zeroizing::new(line.trim_end_matches(['\r', '\n']).to_string());
        return Ok(trimmed);
    }
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
    out::set_names(account::names(&home));
    if let Some((method, params)) = api::request(&cli.command) {
        return operation(cli, &home, out, method, &params).await;
    }
    match &cli.command {
        Command::Account(cmd) => account::run(cli, &home, cmd).await,
        Command::Reset { yes } => reset::command(cli, &home, *yes, out).await,
        Command::Devnet { stop: true, .. } => {
            let stopped = local::stop(&home)?;
            Ok(json!({ "stopped": stopped }))
        }
        Command::Devnet { port, .. } => devnet(&home, *port, out).await,
        Command::Deploy => {
            let (_, key, _) = open::account_key(cli, &home)?;
            let (chain, _) = open::chain_for(cli, &home, Some(&key), out).await?;
            let d = deploy(&chain).await.map_err(|e| {
                Failure::chain(
                    e,
                    "is the account funded? (on a local anvil: `ethmls fund ADDRESS`)",
                )
            })?;
            let path = deployment_path(cli, &home);
            d.save(&path)
                .map_err(|e| Failure::chain(e, "check the deployment path"))?;
            Ok(deployment_json(&d, &path))
        }
        Command::Fund { address, eth } => {
            let address = parse_address(address)?;
            let (chain, _) = open::chain_for(cli, &home, None, out).await?;
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
        Command::Daemon { stop: true, .. } => remote::stop(cli, &home, out).await,
        Command::Daemon { status: true, .. } => remote::status(cli, &home, out).await,
        Command::Daemon { detach: true, .. } => daemon::detach(cli, &home, out).await,
        Command::Ui { no_open } => daemon::ui(cli, &home, *no_open, out).await,
        Command::Daemon { port, .. } => daemon::run(cli, &home, *port, out).await,
        Command::Watch { timeout, count } => {
            if let Some(r) = remote::connect(cli, &home).await? {
                return r.watch(*timeout, *count, out).await;
            }
            let mut c = client(cli, &home, out).await?;
            let stop = signals::listen();
            let deadline = timeout.map(|t| Instant::now() + Duration::from_secs(t));
            let mut n = 0u64;
            loop {
                if count.is_some_and(|m| n >= m) || stop.requested() {
                    break;
                }
                let left = match deadline {
                    Some(d) => d.saturating_duration_since(Instant::now()),
                    None => Duration::from_secs(3600),
                };
                if left.is_zero() {
                    break;
                }
                // Short waits: a signal ends the loop between two steps, never inside one.
                let wait = left.min(Duration::from_millis(250));
                if let Some(e) = c.next_event(wait).await.map_err(Failure::from_client)? {
                    n += 1;
                    out.event(&out::event_json(&e));
                }
            }
            Ok(json!({ "events": n, "interrupted": stop.requested() }))
        }
        Command::Chat { group } => {
            let g = parse_address(group)?;
            if let Some(r) = remote::connect(cli, &home).await? {
                paid_messages_chosen(cli, &home, r.info["chain_id"].as_u64().unwrap_or(0))?;
                return r.chat(&format!("{g:#x}"), out).await;
            }
            let mut c = client(cli, &home, out).await?;
            if !c.is_active(g) {
                return Err(Failure::usage(
                    format!("this account is not a member of {g:#x}"),
                    "see `ethmls group list`",
                ));
            }
            paid_messages_chosen(cli, &home, c.chain_id())?;
            chat::run(&mut c, g, out).await
        }
        Command::Node => {
            let listen = listen(cli, &home, net::NODE_LISTEN)?;
            let peers = net::parse_peers(&peers(cli, &home)?)?;
            net::run_node(&home, &listen, peers, out).await
        }
        Command::Config(cmd) => config(cli, &home, cmd),
        Command::Register
        | Command::Send { .. }
        | Command::Read { .. }
        | Command::Group(_)
        | Command::Doctor
        | Command::Sync { .. } => Err(Failure::new(
            Kind::Other,
            "an operation of the account (see `api::request`)",
            "",
        )),
    }
}

/// One of the account's operations ([`api`]): through the account's daemon when one runs,
/// else in this process.
async fn operation(
    cli: &Cli,
    home: &Path,
    out: &Out,
    method: &str,
    params: &Value,
) -> Result<Value, Failure> {
    if method == "group.create" {
        out.progress("creating the group contract");
    }
    let result = match remote::connect(cli, home).await? {
        Some(mut r) => {
            if method == "send" {
                paid_messages_chosen(cli, home, r.info["chain_id"].as_u64().unwrap_or(0))?;
            }
            r.call(method, params, out).await
        }
        None => in_process(cli, home, out, method, params).await,
    };
    if let Ok(v) = &result {
        api::show(method, v, out);
    }
    result
}

/// [`operation`] in this process: the store alone for the local questions, else the client.
async fn in_process(
    cli: &Cli,
    home: &Path,
    out: &Out,
    method: &str,
    params: &Value,
) -> Result<Value, Failure> {
    if api::is_local(method) {
        // Local: what the store kept, with no chain or relay involved.
        return match open::view(cli, home, out)? {
            Some(v) => api::local(&v, method, params),
            None => api::local_empty(method, params),
        };
    }
    if method == "doctor" {
        return doctor::run(cli, home, out).await;
    }
    let (mut c, chain, deployment, key) = client_on_chain(cli, home, out).await?;
    if method == "send" {
        paid_messages_chosen(cli, home, c.chain_id())?;
    }
    let ctx = api::Ctx {
        chain,
        deployment,
        key,
        delivery: delivery(cli, home)?.name(),
        recent: Vec::new(),
    };
    match api::call(&mut c, &ctx, method, params).await? {
        api::Outcome::Done(v) => Ok(v),
        api::Outcome::Wait(w) => {
            let events = sync_until(&mut c, w.within, w.progress, |s| (w.done)(s)).await?;
            if w.show_events {
                for e in &events {
                    out.event(&out::event_json(e));
                }
            }
            (w.finish)(&c, &events)
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
                "confirmations": match (config.confirmations, deployment(cli, home)) {
                    (Some(n), _) => json!(n),
                    (None, Ok(d)) => json!(default_confirmations(d.chain_id)),
                    (None, Err(_)) => json!("the chain's default (0 on devnets)"),
                },
                "confirmations_from": from(false, config.confirmations.is_some()),
                "max_fee_gwei": config.max_fee_gwei,
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
                "confirmations" => {
                    config.confirmations = Some(value.parse().map_err(|_| {
                        Failure::usage(
                            format!("confirmations {value:?} is not a block count"),
                            "ethmls config set confirmations 12",
                        )
                    })?);
                }
                "max_fee_gwei" => {
                    let gwei: f64 = value
                        .parse()
                        .ok()
                        .filter(|g: &f64| g.is_finite() && *g > 0.0)
                        .ok_or_else(|| {
                            Failure::usage(
                                format!("max_fee_gwei {value:?} is not a positive number of gwei"),
                                "ethmls config set max_fee_gwei 30",
                            )
                        })?;
                    config.max_fee_gwei = Some(gwei);
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
                "confirmations" => config.confirmations = None,
                "max_fee_gwei" => config.max_fee_gwei = None,
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
        "the settings are rpc_url, account, delivery, peers, listen, confirmations and \
         max_fee_gwei",
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
    // Runs until interrupted (SIGINT, SIGTERM) or its standard input closes (scripts).
    signals::signal_or_end_of_input().await;
    drop(devnet);
    Ok(info)
}

/// Application messages go over the chain channel (a transaction each, paid) only when the
/// user chose that delivery (flag, environment or config); on devnets they may by default.
fn paid_messages_chosen(cli: &Cli, home: &Path, chain_id: u64) -> Result<(), Failure> {
    let devnet = matches!(chain_id, 31337 | 1337);
    let chosen = cli.delivery.is_some() || Config::load(home)?.delivery.is_some();
    if devnet || chosen || delivery(cli, home)? != Delivery::Chain {
        return Ok(());
    }
    Err(Failure::usage(
        format!(
            "with no gossip peers, messages would go over chain {chain_id} as transactions: one \
             paid transaction per message (21,000 gas for the transaction and 33,000 for a \
             256-byte message in the gas snapshot)"
        ),
        "set up gossip (`ethmls config set peers ADDRESS` of an `ethmls node`), or choose the \
         chain explicitly: `ethmls config set delivery chain` (or --delivery chain)",
    ))
}

#[cfg(test)]
mod tests {
    use super::default_confirmations;

    /// Wei shown as ETH exactly.
    #[test]
    fn wei_as_eth() {
        assert_eq!(crate::open::eth(0), "0");
        assert_eq!(crate::open::eth(1), "0.000000000000000001");
        assert_eq!(crate::open::eth(1_500_000_000_000_000_000), "1.5");
        assert_eq!(crate::open::eth(123_000_000_000_000), "0.000123");
    }

    /// Devnets confirm at once; Ethereum waits for about the safe head; L2s a few seconds;
    /// an unknown chain a careful 12 (issue 30).
    #[test]
    fn confirmations_by_chain() {
        assert_eq!(default_confirmations(31337), 0);
        assert_eq!(default_confirmations(1), 32);
        assert_eq!(default_confirmations(8453), 10);
        assert_eq!(default_confirmations(42161), 40);
        assert_eq!(default_confirmations(987_654), 12);
    }
}
