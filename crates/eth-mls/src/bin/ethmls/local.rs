//! The local chain `ethmls` starts on demand: with no RPC endpoint given, an anvil in the
//! background (its state saved in the home every second and on exit), the contracts deployed
//! the first time, and the acting account funded. `ethmls devnet --stop` ends it.

use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use eth_mls_chain::alloy::primitives::{Address, U256};
use eth_mls_chain::alloy::providers::Provider;
use eth_mls_chain::alloy::signers::local::PrivateKeySigner;
use eth_mls_chain::{Chain, Deployment};
use serde_json::Value;

use crate::out::{Failure, Kind, Out, Tag};

fn dir(home: &Path) -> PathBuf {
    home.join("devnet")
}

/// Where the on-demand chain's state is saved.
pub fn state_file(home: &Path) -> PathBuf {
    dir(home).join("state.json")
}

/// Whether `url` names this machine (loopback).
fn is_loopback(url: &str) -> bool {
    let host = url
        .split("://")
        .nth(1)
        .and_then(|rest| rest.split(['/', '?']).next())
        .and_then(|hostport| {
            hostport
                .rsplit_once(':')
                .map_or(Some(hostport), |(h, _)| Some(h))
        })
        .unwrap_or("");
    matches!(host, "127.0.0.1" | "localhost" | "[::1]")
}

/// Whether the node behind `chain` says it is anvil (`web3_clientVersion`).
async fn is_anvil(chain: &Chain) -> bool {
    let version: Result<String, _> = chain
        .provider()
        .raw_request("web3_clientVersion".into(), ())
        .await;
    version.is_ok_and(|v| v.to_ascii_lowercase().starts_with("anvil"))
}

/// On an anvil on this machine (`known` when the command started it, or asked over the
/// command's own connection when `url` is a loopback URL: an `ethmls devnet`), gives
/// `address` 100 ETH when it has less than 1, as `ethmls fund` does. The question and the
/// balance go at once (one round trip); a remote URL costs nothing.
pub async fn fund_if_local(
    chain: &Chain,
    url: &str,
    address: Address,
    known: bool,
) -> Result<(), Failure> {
    if !known && !is_loopback(url) {
        return Ok(());
    }
    let (anvil, balance) = tokio::join!(
        async { known || is_anvil(chain).await },
        chain.provider().get_balance(address)
    );
    if !anvil {
        return Ok(());
    }
    let balance = balance.map_err(|e| Failure::new(Kind::Chain, e.to_string(), ""))?;
    if balance < U256::from(10u64).pow(U256::from(18u64)) {
        fund(chain, address).await?;
    }
    Ok(())
}

/// The running local chain's URL, if it answers.
fn running(home: &Path) -> Option<String> {
    let url = std::fs::read_to_string(dir(home).join("url")).ok()?;
    let port: u16 = url.trim().rsplit(':').next()?.parse().ok()?;
    TcpStream::connect((Ipv4Addr::LOCALHOST, port)).ok()?;
    Some(url.trim().to_string())
}

/// The local chain's URL: the running one, or one started now (and the contracts deployed
/// to it when the home has no deployment there).
pub async fn ensure(home: &Path, deployment: &Path, out: &Out) -> Result<String, Failure> {
    let url = match running(home) {
        Some(url) => url,
        None => start(home, out)?,
    };
    let deployed = match Deployment::load(deployment) {
        Ok(d) => {
            let chain = connect(&url, None).await?;
            let code = chain
                .provider()
                .get_code_at(d.group_factory)
                .await
                .map_err(|e| Failure::new(Kind::Chain, e.to_string(), "see `ethmls doctor`"))?;
            !code.is_empty()
        }
        Err(_) => false,
    };
    if !deployed {
        let key = deployer_key(home)?;
        let chain = connect(&url, Some(key)).await?;
        let d = crate::deploy(&chain)
            .await
            .map_err(|e| Failure::chain(e, "see the local chain's state in the home"))?;
        if let Some(parent) = deployment.parent() {
            crate::private::dir(parent)?;
        }
        d.save(deployment)
            .map_err(|e| Failure::chain(e, "check the home directory"))?;
        crate::private::restrict(deployment, false)?;
    }
    Ok(url)
}

async fn connect(url: &str, key: Option<PrivateKeySigner>) -> Result<Chain, Failure> {
    Chain::connect(url, key).await.map_err(|e| {
        Failure::chain(
            e,
            "the local chain did not answer; `ethmls devnet --stop` and retry",
        )
    })
}

fn start(home: &Path, out: &Out) -> Result<String, Failure> {
    out.progress("starting a local chain (anvil, in the background)");
    let anvil = eth_mls_chain::find_anvil()
        .map_err(|e| Failure::chain(e, "install Foundry's anvil, or pass --rpc-url URL"))?;
    let dir = dir(home);
    crate::private::dir(&dir)?;
    let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map_err(|e| Failure::new(Kind::Chain, format!("no free port: {e}"), ""))?
        .port();
    let config = dir.join("anvil.json");
    let _ = std::fs::remove_file(&config);
    let mut cmd = Command::new(anvil);
    cmd.args([
        "--host",
        "127.0.0.1",
        "--port",
        &port.to_string(),
        "--quiet",
    ])
    .args(["--state-interval", "1", "--state"])
    .arg(state_file(home))
    .arg("--config-out")
    .arg(&config)
    .stdin(Stdio::null());
    // anvil's output goes to a log in the home: what it says when it cannot start is shown.
    let log_path = dir.join("anvil.log");
    let log = std::fs::File::create(&log_path).map_err(|e| Failure::io(&log_path, e))?;
    let log_err = log.try_clone().map_err(|e| Failure::io(&log_path, e))?;
    cmd.stdout(Stdio::from(log)).stderr(Stdio::from(log_err));
    #[cfg(unix)]
    {
        // Its own process group: a Ctrl-C to this command does not end the chain.
        use std::os::unix::process::CommandExt;
        cmd.process_group(0);
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| Failure::new(Kind::Chain, format!("could not start anvil: {e}"), ""))?;
    let url = format!("http://127.0.0.1:{port}");
    crate::private::write(&dir.join("pid"), child.id().to_string().as_bytes())?;
    crate::private::write(&dir.join("url"), url.as_bytes())?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_err()
        || std::fs::metadata(&config)
            .map(|m| m.len() == 0)
            .unwrap_or(true)
    {
        if let Ok(Some(status)) = child.try_wait() {
            let said = std::fs::read_to_string(&log_path).unwrap_or_default();
            // Its error line (clap's and anvil's start with "error"), else its last line.
            let said = said
                .lines()
                .find(|l| l.trim_start().to_ascii_lowercase().starts_with("error"))
                .or_else(|| said.lines().rev().find(|l| !l.trim().is_empty()))
                .unwrap_or("(nothing)")
                .trim()
                .to_string();
            let _ = std::fs::remove_file(dir.join("pid"));
            let _ = std::fs::remove_file(dir.join("url"));
            return Err(Failure::new(
                Kind::Chain,
                format!("the local chain (anvil) exited as it started ({status}): {said}"),
                format!(
                    "its saved state {} may be damaged: `ethmls reset --yes` moves it aside and \
                     starts an empty chain (see {} for all anvil said)",
                    state_file(home).display(),
                    log_path.display()
                ),
            )
            .tagged(Tag::LocalChainDied));
        }
        if Instant::now() > deadline {
            return Err(Failure::new(
                Kind::Chain,
                "the local chain did not start within 30 s",
                "pass --rpc-url URL, or run `ethmls devnet` to see anvil's output",
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(url)
}

/// anvil's first funded key (from its config), which deploys the contracts.
fn deployer_key(home: &Path) -> Result<PrivateKeySigner, Failure> {
    let path = dir(home).join("anvil.json");
    let text = std::fs::read_to_string(&path).map_err(|e| Failure::io(&path, e))?;
    let v: Value = serde_json::from_str(&text)
        .map_err(|e| Failure::new(Kind::Chain, format!("{}: {e}", path.display()), ""))?;
    let key = v["private_keys"][0].as_str().unwrap_or_default();
    key.parse().map_err(|_| {
        Failure::new(
            Kind::Chain,
            format!("{}: no funded key", path.display()),
            "`ethmls devnet --stop`, then retry",
        )
    })
}

/// Gives `address` 100 ETH on the local chain when it has less than 1.
pub async fn fund(chain: &Chain, address: Address) -> Result<(), Failure> {
    let one = U256::from(10u64).pow(U256::from(18u64));
    let balance = chain
        .provider()
        .get_balance(address)
        .await
        .map_err(|e| Failure::new(Kind::Chain, e.to_string(), ""))?;
    if balance < one {
        let _: Value = chain
            .provider()
            .raw_request(
                "anvil_setBalance".into(),
                (address, one * U256::from(100u64)),
            )
            .await
            .map_err(|e| Failure::new(Kind::Chain, e.to_string(), ""))?;
    }
    Ok(())
}

/// Stops the local chain (its state is saved); whether one was running.
pub fn stop(home: &Path) -> Result<bool, Failure> {
    let dir = dir(home);
    let Ok(pid) = std::fs::read_to_string(dir.join("pid")) else {
        return Ok(false);
    };
    let was_running = running(home).is_some();
    let pid = pid.trim().to_string();
    if was_running && pid.chars().all(|c| c.is_ascii_digit()) {
        // SIGTERM: anvil writes its state and exits.
        let _ = Command::new("kill").arg(&pid).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while running(home).is_some() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    let _ = std::fs::remove_file(dir.join("pid"));
    let _ = std::fs::remove_file(dir.join("url"));
    Ok(was_running)
}
