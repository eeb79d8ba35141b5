//! `ethmls doctor`: what is wrong with this account, and what to do. It always answers: a
//! failure to open the account (the chain down or new, a relay down, a damaged store) is
//! reported as its problem.

use std::path::Path;
use std::time::Duration;

use eth_mls::ClientEvent;
use serde_json::{Value, json};

use crate::api::Ctx;
use crate::args::Cli;
use crate::out::{Failure, Kind, Out};
use crate::{Cl, client_on_chain, delivery, net, sync_until};

/// Gas of a commit that adds one member with its ACL change (`.gas-snapshot`,
/// `test_gas_commit1k_add1`).
const COMMIT_ADD_GAS: u64 = 110_266;
/// Gas of a group's creation through the factory (`.gas-snapshot`,
/// `test_gas_factoryCreateGroup`).
const CREATE_GROUP_GAS: u64 = 475_072;

/// `ethmls doctor`: the report, exit 0 when healthy; otherwise the same report with the
/// first problem as the failure (exit 1, or the code of what stopped the account opening).
pub async fn run(cli: &Cli, home: &Path, out: &Out) -> Result<Value, Failure> {
    let (mut c, chain, deployment, key) = match client_on_chain(cli, home, out).await {
        Ok(opened) => opened,
        Err(f) => {
            let report = json!({
                "healthy": false,
                "problems": [{ "problem": f.message(), "fix": f.hint() }],
            });
            return Err(f.with_result(report));
        }
    };
    let events = sync_until(&mut c, Duration::from_secs(2), None, |_| false).await?;
    let mut ctx = Ctx {
        chain,
        deployment,
        key,
        delivery: delivery(cli, home)?.name(),
        recent: Vec::new(),
    };
    ctx.remember(&events);
    check(&c, &ctx).await
}

/// The report on an open client: its groups, the events of `ctx.recent`, the balance and the
/// prices, gossip.
pub async fn check(c: &Cl, ctx: &Ctx) -> Result<Value, Failure> {
    let (chain, d) = (&ctx.chain, &ctx.deployment);
    let mut report = report(c, &ctx.recent).await?;
    let mut problems = Vec::new();
    let registered = match chain.erc7627(d.erc7627).peer_key(c.address()).await {
        Ok(k) => k.and_then(|k| eth_mls_transport::peer_id_from_ed25519(&k).ok()),
        Err(e) => {
            problems.push(json!({
                "problem": format!("the registry could not be read: {e}"),
                "fix": "check the RPC endpoint (--rpc-url)",
            }));
            None
        }
    };
    report["delivery"] = json!(ctx.delivery);
    // What the account holds and what its transactions cost now (issue 30).
    let balance =
        eth_mls_chain::alloy::providers::Provider::get_balance(chain.provider(), c.address()).await;
    let price = eth_mls_chain::alloy::providers::Provider::get_gas_price(chain.provider()).await;
    if let (Ok(balance), Ok(price)) = (balance, price) {
        let balance = u128::try_from(balance).unwrap_or(u128::MAX);
        let commit = u128::from(COMMIT_ADD_GAS).saturating_mul(price);
        report["balance_eth"] = json!(crate::open::eth(balance));
        report["gas_price_gwei"] = json!(price as f64 / 1e9);
        report["commit_cost_eth"] = json!(crate::open::eth(commit));
        report["create_group_cost_eth"] = json!(crate::open::eth(
            u128::from(CREATE_GROUP_GAS).saturating_mul(price)
        ));
        if balance < commit {
            problems.push(json!({
                "problem": format!(
                    "the balance ({} ETH) cannot pay a commit now ({} ETH at {} gwei)",
                    crate::open::eth(balance),
                    crate::open::eth(commit),
                    price as f64 / 1e9
                ),
                "fix": "send ETH to the account (on a local anvil: `ethmls fund ADDRESS`)",
            }));
        }
    }
    if let Some(why) = net::down() {
        problems.push(json!({
            "problem": format!("gossip is down: {why}; the chain carries everything meanwhile"),
            "fix": "start `ethmls node` at the --peer address, fix the peer setting \
                    (`ethmls config show`), or use --delivery chain",
        }));
    }
    if let Some(gossip) = net::doctor_info(registered).await {
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
        report["gossip"] = gossip;
    }
    if let Some(list) = report["problems"].as_array_mut() {
        list.extend(problems);
    }
    let first = report["problems"]
        .as_array()
        .and_then(|p| p.first())
        .cloned();
    report["healthy"] = json!(first.is_none());
    match first {
        None => Ok(report),
        Some(p) => {
            let n = report["problems"].as_array().map_or(0, Vec::len);
            Err(Failure::new(
                Kind::Other,
                format!(
                    "{n} problem{} found; the first: {}",
                    if n == 1 { "" } else { "s" },
                    p["problem"].as_str().unwrap_or("")
                ),
                p["fix"].as_str().unwrap_or("").to_string(),
            )
            .with_result(report))
        }
    }
}

/// `ethmls doctor`: what is wrong with this account's groups, and what to do.
async fn report(c: &Cl, events: &[ClientEvent]) -> Result<Value, Failure> {
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

#[cfg(test)]
mod tests {
    /// The gas `doctor` prices are the gas snapshot's (`forge snapshot --check` keeps that one
    /// true).
    #[test]
    fn priced_gas_is_the_snapshots() {
        let snapshot =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../.gas-snapshot"))
                .unwrap_or_default();
        for (test, gas) in [
            ("test_gas_commit1k_add1()", super::COMMIT_ADD_GAS),
            ("test_gas_factoryCreateGroup()", super::CREATE_GROUP_GAS),
        ] {
            let line = snapshot.lines().find(|l| l.contains(test));
            assert_eq!(
                line.map(|l| l.contains(&format!("(gas: {gas})"))),
                Some(true),
                "{test}: {line:?}"
            );
        }
    }
}
