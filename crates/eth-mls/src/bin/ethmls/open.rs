//! Opening an account: its key from the keystore, the store key derived from it, the chain
//! (checked to be the one the account's state was made on), the delivery, and the client on
//! its encrypted store. Local questions (`read`, lists) open the store alone ([`view`]).

use std::future::IntoFuture as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use eth_mls::{Client, ClientConfig, LocalView};
use eth_mls_chain::alloy::providers::Provider;
use eth_mls_chain::alloy::signers::local::PrivateKeySigner;
use eth_mls_chain::{Chain, ChainChannel, Deployment, StreamConfig};
use eth_mls_core::{EthereumSigner, LocalEthereumSigner, StoreKey};
use eth_mls_siwe::Address;
use eth_mls_transport::{DeliveryService, Redundant};
use serde_json::json;
use sha2_legacy::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::args::{Cli, Delivery};
use crate::out::{Failure, Kind, Out, Progress};
use crate::{
    Cl, DOMAIN, account_file_error, account_name, delivery, deployment, deployment_path,
    keystore_path, listen, local, net, password, peers, private, rpc_url,
};

/// Domain of the derivation of an account's store key.
const STORE_KEY_DOMAIN: &[u8] = b"eth-mls/ethmls/store-key/v1";

/// An account's name, key and password.
pub type Unlocked = (String, Zeroizing<[u8; 32]>, Zeroizing<String>);

/// Opens the account's client (its store under the home, keyed by the account's key) and
/// takes in what arrived.
pub async fn client(cli: &Cli, home: &Path, out: &Out) -> Result<Cl, Failure> {
    Ok(client_on_chain(cli, home, out).await?.0)
}

/// [`client`], with the chain connection and the deployment it uses.
pub async fn client_on_chain(
    cli: &Cli,
    home: &Path,
    out: &Out,
) -> Result<(Cl, Chain, Deployment, Zeroizing<[u8; 32]>), Failure> {
    let (_, key, pw) = account_key(cli, home)?;
    let mode = delivery(cli, home)?;
    // The gossip node starts and dials its peers while the chain is checked: both wait on
    // the network, neither on the other.
    let gossip = async {
        Ok(match mode {
            Delivery::Chain => None,
            Delivery::Gossip | Delivery::Both => Some(
                net::start_client_node(
                    net::account_node_key(&key)?,
                    &listen(cli, home, net::CLIENT_LISTEN)?,
                    net::parse_peers(&peers(cli, home)?)?,
                )
                .await,
            ),
        })
    };
    let (checked, node) = tokio::try_join!(checked_chain(cli, home, &key, &pw, out), gossip)?;
    let (chain, d, signer, path, store_key) = match checked {
        Ok(checked) => checked,
        Err(f) => {
            if !f.is_new_chain() || !crate::reset::consent_on_terminal(&f)? {
                return Err(f);
            }
            crate::reset::reset(cli, home, out).await?;
            // The contracts of a chain that was lost are deployed again by its next use.
            return Box::pin(client_on_chain(cli, home, out)).await;
        }
    };
    let stream = StreamConfig {
        poll_interval: Duration::from_millis(200),
        ..StreamConfig::default()
    };
    let chain_channel = || ChainChannel::new(chain.clone(), d.erc7627, stream.clone());
    let delivery: Arc<dyn DeliveryService> = match (mode, node) {
        (Delivery::Chain, _) | (_, None) => Arc::new(chain_channel()),
        (Delivery::Gossip, Some(node)) => Arc::new(node?),
        (_, Some(Ok(node))) => Arc::new(Redundant::new(node, chain_channel())),
        (_, Some(Err(e))) => {
            // Both: the chain alone still delivers everything (later).
            out.progress(&format!(
                "gossip unavailable ({}); using the chain alone",
                e.message()
            ));
            Arc::new(chain_channel())
        }
    };
    let mut config = ClientConfig::new(d, DOMAIN);
    config.confirmations = crate::confirmations(home, d.chain_id)?;
    config.keep_messages = true;
    config.poll_interval = Duration::from_millis(200);
    let mut c = Client::open(signer, chain.clone(), delivery, path, &store_key, config)
        .await
        .map_err(Failure::from_client)?;
    c.sync().await.map_err(Failure::from_client)?;
    catch_up(&mut c).await?;
    Ok((c, chain, d, key))
}

/// A checked chain with the deployment, the account's signer, its store's path and key.
type Checked = (
    Chain,
    Deployment,
    Arc<dyn EthereumSigner>,
    PathBuf,
    StoreKey,
);

/// The chain, checked to be the one the account's store was made on (a new chain is the
/// inner `Err`, for the caller to offer a reset), with the deployment, the account's signer,
/// its store's path (locked) and key.
async fn checked_chain(
    cli: &Cli,
    home: &Path,
    key: &Zeroizing<[u8; 32]>,
    pw: &str,
    out: &Out,
) -> Result<Result<Checked, Failure>, Failure> {
    let (chain, url) = chain_for(cli, home, Some(key), out).await?;
    let d = deployment_on(cli, home, &chain).await?;
    let signer: Arc<dyn EthereumSigner> = Arc::new(
        LocalEthereumSigner::from_bytes(key.as_slice())
            .map_err(|e| Failure::usage(format!("bad key: {e}"), ""))?,
    );
    let address = signer.address();
    let path = store_path(home, address, d.chain_id)?;
    lock_store(&path)?;
    let store_key = prepare_store(&path, key, pw, out)?;
    // The store's groups' contracts tell, whatever the record says: a devnet restarted within
    // the same second has the same genesis block.
    let groups = active_groups(&path, &store_key, address).unwrap_or_default();
    Ok(check_chain(&chain, &d, &path, &url, &groups)
        .await
        .map(|()| (chain, d, signer, path, store_key)))
}

/// Epochs the chain has registered beyond this client's, over its active groups.
fn epochs_behind(c: &Cl) -> Result<u64, Failure> {
    let mut behind = 0;
    for g in c.groups() {
        if c.is_active(g) {
            // What the client read of the chain: no request per group (issue 30: an account
            // in 50 groups waited 50 round trips here).
            let local = c.epoch(g).map_err(Failure::from_client)?;
            let chain = c.read_epoch(g).map_err(Failure::from_client)?;
            behind += chain.saturating_sub(local);
        }
    }
    Ok(behind)
}

/// Catch-up with a progress bar: runs the client while it gets closer to the chain's epochs
/// (it stops when two seconds bring nothing; `doctor` reports what is still behind).
async fn catch_up(c: &mut Cl) -> Result<(), Failure> {
    let start = epochs_behind(c)?;
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
            now_behind = epochs_behind(c)?;
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

/// The account's key, decrypted from its keystore.
pub fn account_key(cli: &Cli, home: &Path) -> Result<Unlocked, Failure> {
    let name = account_name(cli, home)?;
    let (key, pw) = unlock(cli, home, &name, &format!("password for {name}: "))?;
    Ok((name, key, pw))
}

/// Account `name`'s key and the password that opened its keystore (asked with `prompt`).
pub fn unlock(
    cli: &Cli,
    home: &Path,
    name: &str,
    prompt: &str,
) -> Result<(Zeroizing<[u8; 32]>, Zeroizing<String>), Failure> {
    let path = keystore_path(home, name)?;
    let json = std::fs::read_to_string(&path).map_err(|e| account_file_error(name, &path, e))?;
    let pw = password(cli, prompt)?;
    let key = eth_mls::keystore::decrypt(&json, pw.as_bytes()).map_err(|e| match e {
        eth_mls::Error::WrongPassword => Failure::new(
            Kind::Verification,
            format!("wrong password for account {name}"),
            "check the password file",
        ),
        e => Failure::from_client(e),
    })?;
    Ok((key, pw))
}

/// The chain at the configured endpoint (see [`rpc_url`]), with the account's key to sign;
/// on a local anvil (the on-demand chain or an `ethmls devnet`) the account gets ETH for its
/// gas first. Also the endpoint's URL.
pub async fn chain_for(
    cli: &Cli,
    home: &Path,
    key: Option<&[u8; 32]>,
    out: &Out,
) -> Result<(Chain, String), Failure> {
    let (url, on_demand) = rpc_url(cli, home, out).await?;
    let signer = match key {
        Some(k) => Some(
            PrivateKeySigner::from_slice(k)
                .map_err(|e| Failure::usage(format!("bad key: {e}"), ""))?,
        ),
        None => None,
    };
    let signs = signer.is_some();
    let config = eth_mls_chain::RpcConfig {
        max_fee_per_gas: crate::max_fee_per_gas(home)?,
        ..eth_mls_chain::RpcConfig::default()
    };
    let chain = Chain::connect_with(&url, signer, &config)
        .await
        .map_err(|e| {
            Failure::chain(
                e,
                &format!("is the node at {url} running? (`ethmls devnet` starts one)"),
            )
        })?;
    if let Some(address) = chain.sender() {
        // On the local chain, the acting account gets ETH for its gas.
        local::fund_if_local(&chain, &url, address, on_demand).await?;
    }
    if signs {
        // A transaction that takes a while to be mined says so (stderr: stdout is the result).
        chain.on_progress(|p| {
            eprintln!(
                "waiting for transaction {} to be mined ({} s{})",
                p.tx,
                p.waited.as_secs(),
                match p.replacements {
                    0 => String::new(),
                    n => format!(", sent again with higher fees {n}×"),
                }
            );
        });
    }
    if signs && let Ok(mut used) = SIGNING.lock() {
        used.push(chain.clone());
    }
    Ok((chain, url))
}

/// The signing connections this process made (their clones share what they spent).
static SIGNING: std::sync::Mutex<Vec<Chain>> = std::sync::Mutex::new(Vec::new());

/// What this process's transactions cost, over every signing connection it made.
pub fn spent() -> eth_mls_chain::Spent {
    let mut total = eth_mls_chain::Spent::default();
    if let Ok(used) = SIGNING.lock() {
        for c in used.iter() {
            let s = c.spent();
            total.transactions += s.transactions;
            total.gas_used = total.gas_used.saturating_add(s.gas_used);
            total.wei = total.wei.saturating_add(s.wei);
        }
    }
    total
}

/// Wei as ETH, exactly (`0.000123`, trailing zeros cut).
pub fn eth(wei: u128) -> String {
    let whole = wei / 1_000_000_000_000_000_000;
    let frac = wei % 1_000_000_000_000_000_000;
    if frac == 0 {
        return whole.to_string();
    }
    let digits = format!("{frac:018}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

/// The lock of the store this process opened, held until it exits.
static STORE_LOCK: std::sync::OnceLock<std::fs::File> = std::sync::OnceLock::new();

/// The key of an account's store: SHA-256 of a fixed domain and the account's secp256k1 key,
/// so it survives a change of the keystore's password (made by `ethmls account password` or
/// by `cast wallet change-password`), and the store opens for whoever can open the keystore
/// and no one else. Raw, not stretched: the account key is already 256 bits of entropy.
pub fn store_key(account_key: &[u8; 32]) -> StoreKey {
    let mut h = Sha256::new();
    h.update(STORE_KEY_DOMAIN);
    h.update(account_key);
    let mut bytes = Zeroizing::new(<[u8; 32]>::from(h.finalize()));
    let key = StoreKey::raw(*bytes);
    bytes.iter_mut().for_each(|b| *b = 0);
    key
}

/// Where the account's store for `chain_id` is (`<home>/stores/<address>-<chain id>.db`).
pub fn store_path(home: &Path, address: Address, chain_id: u64) -> Result<PathBuf, Failure> {
    let dir = home.join("stores");
    private::dir(&dir)?;
    Ok(dir.join(format!("{address:#x}-{chain_id}.db")))
}

/// The key the store at `path` opens with: the account's store key ([`store_key`]). A store
/// made before it (keyed by the keystore's password) is re-keyed to it now, once. A store that
/// neither opens (the password was right: the keystore decrypted) is damaged, and is
/// reported as such, with what to do.
pub fn prepare_store(
    path: &Path,
    key: &[u8; 32],
    password: &str,
    out: &Out,
) -> Result<StoreKey, Failure> {
    let store_key = store_key(key);
    if !path.exists() {
        return Ok(store_key);
    }
    let damaged = |detail: String| {
        Failure::new(
            Kind::Other,
            format!(
                "the store {} is damaged: it does not open with this account's key ({detail})",
                path.display()
            ),
            "the password was right (the keystore opened). Restore the file from a backup, or \
             `ethmls reset --yes` to move it aside and start this account afresh on this chain \
             (its groups are joined again by invitation)",
        )
    };
    match store_key.opens(path) {
        Ok(true) => return Ok(store_key),
        Ok(false) => {}
        Err(e) => return Err(damaged(e.to_string())),
    }
    let legacy = StoreKey::passphrase(password.as_bytes());
    match legacy.opens(path) {
        Ok(true) => {
            out.progress("re-keying the store from the account's key (once)");
            legacy
                .rekey(path, &store_key)
                .map_err(|e| damaged(e.to_string()))?;
            Ok(store_key)
        }
        Ok(false) => Err(damaged("nor with the keystore password".into())),
        Err(e) => Err(damaged(e.to_string())),
    }
}

/// The account's store opened for local questions: no RPC endpoint, relay or peer is
/// touched. `None` when the account has no store yet (it never ran a command on a chain).
pub fn view(cli: &Cli, home: &Path, out: &Out) -> Result<Option<LocalView>, Failure> {
    let (_, key, pw) = account_key(cli, home)?;
    let address = PrivateKeySigner::from_slice(key.as_slice())
        .map_err(|e| Failure::usage(format!("bad key: {e}"), ""))?
        .address();
    let chain_id = match Deployment::load(&deployment_path(cli, home)) {
        Ok(d) => d.chain_id,
        Err(_) => return Ok(None),
    };
    let path = store_path(home, address, chain_id)?;
    if !path.exists() {
        return Ok(None);
    }
    lock_store(&path)?;
    let store_key = prepare_store(&path, &key, &pw, out)?;
    LocalView::open(&path, &store_key, address)
        .map(Some)
        .map_err(Failure::from_client)
}

/// The groups a store follows as a member (at most the first `GROUPS_CHECKED`); `None` when
/// there is no store.
fn active_groups(path: &Path, key: &StoreKey, account: Address) -> Option<Vec<Address>> {
    if !path.exists() {
        return None;
    }
    LocalView::open(path, key, account).ok().map(|v| {
        v.groups()
            .into_iter()
            .filter(|g| v.is_active(*g))
            .take(GROUPS_CHECKED)
            .collect()
    })
}

/// How many of a store's groups are looked for on the chain at each open (one is enough when
/// it is there: a new chain has none of them).
const GROUPS_CHECKED: usize = 3;

/// A new chain when none of `groups` has its contract on it (all looked for at once).
async fn groups_on_chain(chain: &Chain, groups: &[Address], url: &str) -> Result<(), Failure> {
    if groups.is_empty() {
        return Ok(());
    }
    let codes = futures_util::future::join_all(
        groups
            .iter()
            .map(|g| chain.provider().get_code_at(*g).into_future()),
    )
    .await;
    let mut found = false;
    for code in codes {
        let code = code.map_err(|e| {
            Failure::new(
                Kind::Chain,
                format!("the chain at {url} did not answer: {e}"),
                "check the RPC endpoint (--rpc-url)",
            )
        })?;
        found |= !code.is_empty();
    }
    if found {
        return Ok(());
    }
    Err(Failure::new_chain(format!(
        "the chain at {url} has none of this account's {} group contracts: it is a new chain (a \
         restarted devnet, or a local chain whose state was lost)",
        groups.len()
    )))
}

/// The file beside a store that names the chain it was made on (its genesis block hash).
pub fn chain_marker(store: &Path) -> PathBuf {
    store.with_extension("chain.json")
}

/// Checks that the chain at `url` is the one the account's state at `store` was made on
/// (the genesis block hash recorded beside the store the first time), and that the
/// deployment's contracts are on it. A restarted devnet or a local chain whose state was lost
/// is a new chain: every group the store follows is gone from it, so a store's active
/// `groups` (a few of them) are looked for too. All in one round trip.
pub async fn check_chain(
    chain: &Chain,
    d: &Deployment,
    store: &Path,
    url: &str,
    groups: &[Address],
) -> Result<(), Failure> {
    let rpc = |e: String| {
        Failure::new(
            Kind::Chain,
            format!("the chain at {url} did not answer: {e}"),
            "check the RPC endpoint (--rpc-url)",
        )
    };
    // Every read at once (one round trip).
    let (genesis, code, found) = tokio::join!(
        chain.provider().get_block_by_number(0.into()),
        chain.provider().get_code_at(d.group_factory),
        groups_on_chain(chain, groups, url)
    );
    // (The chain is recorded only once the store is known to belong to it.)
    found?;
    let genesis = genesis
        .map_err(|e| rpc(e.to_string()))?
        .map(|b| format!("{:#x}", b.header.hash))
        .ok_or_else(|| rpc("no genesis block".into()))?;
    let marker = chain_marker(store);
    let recorded = std::fs::read_to_string(&marker)
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|v| v["genesis"].as_str().map(str::to_string));
    match recorded {
        Some(r) if r != genesis => {
            return Err(Failure::new_chain(format!(
                "the chain at {url} is a new chain (its genesis block is {genesis}; this \
                 account's state was made on {r}): a restarted devnet, or a local chain whose \
                 state was lost. The groups this account follows are not on it"
            )));
        }
        Some(_) => {}
        None => {
            // First use (or a store made before the record existed): this chain.
            let text = json!({ "genesis": genesis, "rpc_url": url }).to_string();
            let _ = std::fs::remove_file(&marker);
            private::write(&marker, text.as_bytes())?;
        }
    }
    let code = code.map_err(|e| rpc(e.to_string()))?;
    if code.is_empty() {
        return Err(Failure::new(
            Kind::Chain,
            format!(
                "no eth-mls contracts at the deployment's addresses on the chain at {url} \
                 (group factory {:#x})",
                d.group_factory
            ),
            "the deployment file is for another chain: `ethmls devnet` (local) or `ethmls \
             deploy` writes one for this chain, or pass --deployment FILE",
        ));
    }
    Ok(())
}

/// The deployment to use on `chain`: the deployment file when there is one; else the
/// contracts at their deterministic addresses (deployed through the CREATE2 deployer, the
/// same on every chain) when the chain has them, written to the home's deployment file.
pub async fn deployment_on(cli: &Cli, home: &Path, chain: &Chain) -> Result<Deployment, Failure> {
    let path = deployment_path(cli, home);
    if path.exists() || cli.deployment.is_some() {
        return deployment(cli, home);
    }
    match Deployment::find(chain).await {
        Ok(Some(d)) => {
            d.save(&path)
                .map_err(|e| Failure::chain(e, "check the home directory"))?;
            private::restrict(&path, false)?;
            Ok(d)
        }
        _ => deployment(cli, home),
    }
}
