//! `ethmls reset`: starting afresh on the chain this home uses, when that chain is new (a
//! restarted devnet, a local chain whose state was lost or damaged) or the account's store is
//! damaged. Nothing is deleted: what no longer fits is moved to `<home>/reset/<time>/`.

use std::path::{Path, PathBuf};

use eth_mls_chain::alloy::providers::Provider;
use eth_mls_chain::alloy::signers::local::PrivateKeySigner;
use serde_json::{Value, json};

use crate::args::Cli;
use crate::out::{Failure, Kind, Out, Tag};
use crate::{Config, deployment, local, open, private};

/// Whether the user, asked on a terminal, agrees to [`reset`] after `f`. `false` (no
/// question) when standard input or error is not a terminal: scripts say `reset --yes`.
pub fn consent_on_terminal(f: &Failure) -> Result<bool, Failure> {
    use std::io::IsTerminal;
    if !std::io::stdin().is_terminal() || !std::io::stderr().is_terminal() {
        return Ok(false);
    }
    say_err!("{}", f.message());
    ask("Move this account's state for the old chain aside and start afresh? [y/N] ")
}

/// A yes/no question on the terminal.
fn ask(question: &str) -> Result<bool, Failure> {
    use std::io::Write;
    let mut err = std::io::stderr().lock();
    let _ = write!(err, "{question}");
    let _ = err.flush();
    let mut answer = String::new();
    std::io::stdin()
        .read_line(&mut answer)
        .map_err(|e| Failure::usage(format!("could not read the answer: {e}"), ""))?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes" | "Yes"))
}

/// `ethmls reset [--yes]`: asks first on a terminal; without one, `--yes` is the consent.
pub async fn command(cli: &Cli, home: &Path, yes: bool, out: &Out) -> Result<Value, Failure> {
    if !yes {
        use std::io::IsTerminal;
        if !std::io::stdin().is_terminal() {
            return Err(Failure::usage(
                "`reset` moves this account's state for the chain aside and needs your consent",
                "run it on a terminal, or pass --yes",
            ));
        }
        if !ask(
            "Move this account's state for the chain this home uses aside and start afresh? [y/N] ",
        )? {
            return Err(Failure::usage("nothing was changed", "answer y to reset"));
        }
    }
    reset(cli, home, out).await
}

/// Moves aside, into `<home>/reset/<unix time>/`: the local chain's saved state when the
/// on-demand chain cannot start with it; the current account's store for the chain (and the
/// record of the chain it was made on); every other store of the home for that chain that
/// was made on another chain (by its record). Returns what it moved.
pub async fn reset(cli: &Cli, home: &Path, out: &Out) -> Result<Value, Failure> {
    // A running daemon has the store open: moving it aside under its feet would lose what it
    // writes next.
    if crate::remote::connect(cli, home).await?.is_some() {
        return Err(Failure::usage(
            "the account's daemon is running: its store cannot be moved aside",
            "stop it first: `ethmls daemon --stop`",
        ));
    }
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let backup = home.join("reset").join(stamp.to_string());
    let mut moved: Vec<String> = Vec::new();
    let mut move_aside = |path: &Path| -> Result<(), Failure> {
        if !path.exists() {
            return Ok(());
        }
        private::dir(&backup)?;
        let to = backup.join(path.file_name().unwrap_or_default());
        std::fs::rename(path, &to).map_err(|e| Failure::io(path, e))?;
        moved.push(path.display().to_string());
        Ok(())
    };
    // The chain: the on-demand one started again, its damaged state moved aside if needed.
    let on_demand = cli.rpc_url.is_none() && Config::load(home)?.rpc_url.is_none();
    let (chain, url) = match open::chain_for(cli, home, None, out).await {
        Ok(c) => c,
        Err(f) if on_demand && f.tag() == Some(Tag::LocalChainDied) => {
            local::stop(home)?;
            move_aside(&local::state_file(home))?;
            open::chain_for(cli, home, None, out).await?
        }
        Err(f) => return Err(f),
    };
    let genesis = chain
        .provider()
        .get_block_by_number(0.into())
        .await
        .ok()
        .flatten()
        .map(|b| format!("{:#x}", b.header.hash));
    let chain_id = chain.chain_id();
    // The current account's store for this chain, whatever it holds.
    let mine = match open::account_key(cli, home) {
        Ok((_, key, _)) => {
            let address = PrivateKeySigner::from_slice(key.as_slice())
                .map_err(|e| Failure::usage(format!("bad key: {e}"), ""))?
                .address();
            Some(open::store_path(home, address, chain_id)?)
        }
        Err(f) if f.kind() == Kind::Usage => None,
        Err(f) => return Err(f),
    };
    let stores = home.join("stores");
    let suffix = format!("-{chain_id}.db");
    let mut entries: Vec<PathBuf> = std::fs::read_dir(&stores)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    entries.sort();
    for path in entries {
        let name = path
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        if !name.ends_with(&suffix) {
            continue;
        }
        let recorded = std::fs::read_to_string(open::chain_marker(&path))
            .ok()
            .and_then(|t| serde_json::from_str::<Value>(&t).ok())
            .and_then(|v| v["genesis"].as_str().map(str::to_string));
        let stale = recorded.is_some() && recorded != genesis;
        if Some(&path) == mine.as_ref() || stale {
            for side in ["", "-wal", "-shm", "-journal"] {
                let mut p = path.clone().into_os_string();
                p.push(side);
                move_aside(Path::new(&p))?;
            }
            move_aside(&open::chain_marker(&path))?;
        }
    }
    // A deployment whose contracts are not on this chain goes too (the on-demand chain
    // deploys them again; elsewhere `ethmls deploy` or `ethmls devnet` writes a new one).
    if let Ok(d) = deployment(cli, home) {
        let code = chain.provider().get_code_at(d.group_factory).await;
        if code.is_ok_and(|c| c.is_empty()) && on_demand {
            move_aside(&crate::deployment_path(cli, home))?;
        }
    }
    if on_demand {
        // Deploys the contracts to a fresh local chain.
        crate::rpc_url(cli, home, out).await?;
    }
    Ok(json!({
        "chain_id": chain_id,
        "rpc_url": url,
        "genesis": genesis,
        "moved": moved,
        "backup": if moved.is_empty() { Value::Null } else { json!(backup.display().to_string()) },
        "next": "register again (`ethmls register`), then create or be invited to groups",
    }))
}
