//! `cargo xtask bench`: the forge gas snapshot and the gas targets (README.md), then the
//! criterion suites and the crypto speed targets (crates/eth-mls-crypto/README.md).

use std::collections::HashMap;
use std::fs;
use std::path::Path;

use crate::tools::{self, Tools};
use crate::{Result, stage};

/// The snapshot file `forge snapshot` writes at the workspace root.
const SNAPSHOT: &str = ".gas-snapshot";
/// The test contract whose tests are the measured calls (contracts/test/Gas.t.sol).
const GAS_CONTRACT: &str = "GasTest";

/// `cargo xtask bench`.
pub fn run(root: &Path) -> Result<()> {
    let tools = tools::ensure(root)?;
    stage("bench: forge snapshot (gas)");
    snapshot(root, &tools, false)?;
    stage("bench: criterion, crypto backends (cargo bench -p eth-mls-benches)");
    crate::run(
        std::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .current_dir(root)
            .args(["bench", "-p", "eth-mls-benches", "--bench", "crypto"]),
    )?;
    crypto_report(&root.join("target/criterion"))?;
    stage(
        "bench: criterion, on-chain latency on anvil (cargo bench -p eth-mls-benches --bench chain)",
    );
    crate::run(
        std::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .current_dir(root)
            .args(["bench", "-p", "eth-mls-benches", "--bench", "chain"]),
    )?;
    stage(
        "bench: criterion, groups of 2-1000 members (cargo bench -p eth-mls-benches --bench groups; ETH_MLS_BENCH_LARGE=1 adds 10,000)",
    );
    crate::run(
        std::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .current_dir(root)
            .args(["bench", "-p", "eth-mls-benches", "--bench", "groups"]),
    )?;
    groups_report(&root.join("target/criterion"))?;
    stage(
        "bench: criterion, the 1:1 channel per backend (cargo bench -p eth-mls-benches --bench channel)",
    );
    crate::run(
        std::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .current_dir(root)
            .args(["bench", "-p", "eth-mls-benches", "--bench", "channel"]),
    )?;
    channel_report(&root.join("target/criterion"))?;
    stage(
        "bench: delivery, gossip (20 nodes on loopback) and the chain channel (cargo bench -p eth-mls-benches --bench delivery)",
    );
    crate::run(
        std::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .current_dir(root)
            .args(["bench", "-p", "eth-mls-benches", "--bench", "delivery"]),
    )?;
    stage(
        "bench: the client's flows — invitation to first message at 2/10/100 members, message latency over gossip and the chain, catch-up (cargo bench -p eth-mls-benches --bench client)",
    );
    // `ethmls send` is measured as a process too: the release binary first.
    crate::run(
        std::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .current_dir(root)
            .args(["build", "--release", "-p", "eth-mls", "--bin", "ethmls"]),
    )?;
    crate::run(
        std::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .current_dir(root)
            .env("ETHMLS_BIN", root.join("target/release/ethmls"))
            .args(["bench", "-p", "eth-mls-benches", "--bench", "client"]),
    )?;
    stage(
        "bench: eth-mls-core and mls-rs side by side at 10, 1000 and 2000 members, with the issue #16 targets (cargo bench -p eth-mls-benches --bench versus; ETH_MLS_VERSUS_ENFORCE=1 fails on a missed target)",
    );
    crate::run(
        std::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .current_dir(root)
            .args(["bench", "-p", "eth-mls-benches", "--bench", "versus"]),
    )
}

/// The table of crates/eth-mls-channel/README.md: X3DH and the double ratchet per backend.
fn channel_report(criterion: &Path) -> Result<()> {
    const OPS: &[(&str, &str)] = &[
        (
            "x3dh_initiate",
            "X3DH initiate (validate bundle, initiate, first 1 KiB message)",
        ),
        ("x3dh_respond", "X3DH respond (receive that prekey message)"),
        ("encrypt_1k", "ratchet encrypt, 1 KiB"),
        (
            "decrypt_1k",
            "ratchet decrypt, 1 KiB, same chain (no DH step)",
        ),
        (
            "decrypt_1k_dh_step",
            "ratchet decrypt, 1 KiB, with a DH ratchet step",
        ),
    ];
    let fmt = |ns: Option<f64>| match ns {
        Some(ns) if ns >= 1_000_000.0 => format!("{:.2} ms", ns / 1_000_000.0),
        Some(ns) if ns >= 1000.0 => format!("{:.1} µs", ns / 1000.0),
        Some(ns) => format!("{ns:.0} ns"),
        None => "—".into(),
    };
    println!("\n| operation | rustcrypto | openssl |");
    println!("| --- | --- | --- |");
    let mut missing = Vec::new();
    for (op, what) in OPS {
        let rc = median_ns(criterion, &format!("channel_rustcrypto/{op}"));
        let os = median_ns(criterion, &format!("channel_openssl/{op}"));
        if rc.is_none() || os.is_none() {
            missing.push(*op);
        }
        println!("| {what} | {} | {} |", fmt(rc), fmt(os));
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!("no channel measurement for {}", missing.join(", ")).into())
    }
}

/// The group table of crates/eth-mls-core/README.md and the targets at 1000 members, suite
/// 0x0004: add-member commit at most 50 ms, processing it at most 30 ms, joining from the
/// Welcome at most 400 ms.
fn groups_report(criterion: &Path) -> Result<()> {
    const OPS: &[&str] = &[
        "add_member_commit",
        "process_add_commit",
        "join_from_welcome",
        "self_update_commit",
        "process_update_commit",
        "remove_commit",
        "process_remove_commit",
        "message_1KiB_encrypt_decrypt",
    ];
    const TARGETS: &[(&str, f64)] = &[
        ("add_member_commit", 50.0),
        ("process_add_commit", 30.0),
        ("join_from_welcome", 400.0),
    ];
    let ms = |ns: Option<f64>| ns.map_or("—".to_owned(), |ns| format!("{:.2} ms", ns / 1e6));
    println!("\n| members | operation | suite 0x0004 | suite 0x0001 | 4 / 1 |");
    println!("| --- | --- | --- | --- | --- |");
    for n in [2, 10, 100, 1000, 10_000] {
        for op in OPS {
            let s4 = median_ns(criterion, &format!("group_suite4_{n}/{op}"));
            let s1 = median_ns(criterion, &format!("group_suite1_{n}/{op}"));
            if s4.is_none() && s1.is_none() {
                continue;
            }
            let ratio = match (s4, s1) {
                (Some(a), Some(b)) => format!("{:.2}x", a / b),
                _ => "—".into(),
            };
            println!("| {n} | {op} | {} | {} | {ratio} |", ms(s4), ms(s1));
        }
    }
    let mut missed = Vec::new();
    for (op, target) in TARGETS {
        match median_ns(criterion, &format!("group_suite4_1000/{op}")) {
            Some(ns) if ns / 1e6 > *target => {
                missed.push(format!("{op} {:.1} ms (target {target} ms)", ns / 1e6))
            }
            Some(_) => {}
            None => missed.push(format!("no measurement for {op} at 1000 members")),
        }
    }
    if missed.is_empty() {
        println!("\n  group speed targets at 1000 members: all met");
        Ok(())
    } else {
        Err(format!("group speed targets missed: {}", missed.join("; ")).into())
    }
}

/// Median time in nanoseconds of criterion benchmark `group/id`.
fn median_ns(criterion: &Path, id: &str) -> Option<f64> {
    let text = fs::read_to_string(criterion.join(id).join("new/estimates.json")).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    v.pointer("/median/point_estimate")?.as_f64()
}

/// The crypto table (markdown) with the ratios and the targets of the crypto issue: the
/// `openssl` backend within 1.2x of raw OpenSSL, the `rustcrypto` backend within 2x of
/// OpenSSL for Ed448 sign/verify and X448.
fn crypto_report(criterion: &Path) -> Result<()> {
    const OPS: &[&str] = &[
        "ed448_sign",
        "ed448_verify",
        "x448_dh",
        "ed25519_sign",
        "ed25519_verify",
        "x25519_dh",
        "x448_hpke_seal_256",
        "x448_hpke_open_256",
        "x25519_hpke_seal_256",
        "x25519_hpke_open_256",
        "aes256gcm_seal/1024",
        "aes256gcm_seal/65536",
        "hkdf_sha512_expand_64",
    ];
    let fmt = |ns: Option<f64>| match ns {
        Some(ns) if ns >= 1000.0 => format!("{:.1} µs", ns / 1000.0),
        Some(ns) => format!("{ns:.0} ns"),
        None => "—".into(),
    };
    let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) => format!("{:.2}x", a / b),
        _ => "—".into(),
    };
    println!(
        "\n| operation | rustcrypto | openssl backend | raw OpenSSL | openssl / raw | rustcrypto / raw |"
    );
    println!("| --- | --- | --- | --- | --- | --- |");
    let mut missed = Vec::new();
    for op in OPS {
        let rc = median_ns(criterion, &format!("rustcrypto/{op}"));
        let os = median_ns(criterion, &format!("openssl/{op}"));
        let raw = median_ns(criterion, &format!("raw-openssl/{op}"));
        println!(
            "| {op} | {} | {} | {} | {} | {} |",
            fmt(rc),
            fmt(os),
            fmt(raw),
            ratio(os, raw),
            ratio(rc, raw)
        );
        if let (Some(os), Some(raw)) = (os, raw)
            && os > 1.2 * raw
        {
            missed.push(format!(
                "openssl backend {op} {:.2}x raw (target 1.2x)",
                os / raw
            ));
        }
        if ["ed448_sign", "ed448_verify", "x448_dh"].contains(op) {
            match (rc, raw) {
                (Some(rc), Some(raw)) if rc > 2.0 * raw => missed.push(format!(
                    "rustcrypto {op} {:.2}x OpenSSL (target 2x)",
                    rc / raw
                )),
                (Some(_), Some(_)) => {}
                _ => missed.push(format!("no measurement for {op}")),
            }
        }
    }
    if missed.is_empty() {
        println!("\n  crypto speed targets: all met");
        Ok(())
    } else {
        Err(format!("crypto speed targets missed: {}", missed.join("; ")).into())
    }
}

/// Writes (or with `check`, verifies) `.gas-snapshot`, then checks the gas targets against it.
pub fn snapshot(root: &Path, tools: &Tools, check: bool) -> Result<()> {
    let mut cmd = tools.forge(root);
    cmd.args(["snapshot", "--match-contract", GAS_CONTRACT]);
    if check {
        cmd.arg("--check");
    }
    crate::run(&mut cmd)?;
    check_targets(&fs::read_to_string(root.join(SNAPSHOT))?)
}

/// Parses `GasTest:test_gas_x() (gas: 123)` lines into `test_gas_x -> 123`.
fn parse(snapshot: &str) -> HashMap<String, u64> {
    snapshot
        .lines()
        .filter_map(|line| {
            let (name, rest) = line.split_once("() (gas: ")?;
            let name = name.rsplit(':').next()?.to_owned();
            let gas = rest.strip_suffix(')')?.parse().ok()?;
            Some((name, gas))
        })
        .collect()
}

/// One gas target: what it measures, the measured value, the limit.
struct Target {
    what: &'static str,
    measured: f64,
    limit: f64,
    unit: &'static str,
}

fn check_targets(snapshot: &str) -> Result<()> {
    let gas = parse(snapshot);
    let get = |name: &str| -> Result<f64> {
        gas.get(name)
            .map(|&g| g as f64)
            .ok_or_else(|| format!("{SNAPSHOT} has no {GAS_CONTRACT}:{name}()").into())
    };
    let targets = [
        Target {
            what: "group via factory / direct MlsGroup deployment",
            measured: get("test_gas_factoryCreateGroup")? / get("test_gas_deployMlsGroupDirect")?,
            limit: 0.2,
            unit: "ratio",
        },
        Target {
            what: "add one member (commit with 1 add over none)",
            measured: get("test_gas_commit1k_add1")? - get("test_gas_commit1k_noAcl")?,
            limit: 60_000.0,
            unit: "gas",
        },
        // Each added member writes two fresh slots, its list node and its key package record
        // (22,100 gas each): 44,200 is the floor. The old 30,000 target was for an ACL-only
        // add without a key package record, which commits no longer allow.
        Target {
            what: "each extra member in a commit (with its key package)",
            measured: (get("test_gas_commit1k_add10")? - get("test_gas_commit1k_add1")?) / 9.0,
            limit: 50_000.0,
            unit: "gas",
        },
        Target {
            what: "sendMessage(256 B) above the reference",
            measured: get("test_gas_sendMessage256")? - get("test_gas_sendMessage256_reference")?,
            limit: 5_000.0,
            unit: "gas",
        },
        Target {
            what: "later commit, 1 KiB, no ACL change",
            measured: get("test_gas_commit1k_noAcl")?,
            limit: 70_000.0,
            unit: "gas",
        },
        Target {
            what: "first commit, 1 KiB, no ACL change",
            measured: get("test_gas_commit1k_noAcl_first")?,
            limit: 70_000.0,
            unit: "gas",
        },
    ];
    println!(
        "\n  {:<48} {:>12} {:>12}  result",
        "gas target", "measured", "limit"
    );
    let mut missed = Vec::new();
    for t in &targets {
        let ok = t.measured <= t.limit;
        let fmt = |v: f64| {
            if t.unit == "ratio" {
                format!("{v:.3}")
            } else {
                format!("{v:.0}")
            }
        };
        println!(
            "  {:<48} {:>12} {:>12}  {}",
            t.what,
            fmt(t.measured),
            fmt(t.limit),
            if ok { "ok" } else { "MISSED" }
        );
        if !ok {
            missed.push(t.what);
        }
    }
    if missed.is_empty() {
        Ok(())
    } else {
        Err(format!("gas targets missed: {}", missed.join(", ")).into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
GasTest:test_gas_commit1k_add1() (gas: 108281)
GasTest:test_gas_commit1k_add10() (gas: 549396)
GasTest:test_gas_commit1k_noAcl() (gas: 54784)
GasTest:test_gas_commit1k_noAcl_first() (gas: 50192)
GasTest:test_gas_deployMlsGroupDirect() (gas: 2287927)
GasTest:test_gas_factoryCreateGroup() (gas: 318646)
GasTest:test_gas_sendMessage256() (gas: 33083)
GasTest:test_gas_sendMessage256_reference() (gas: 30664)
";

    #[test]
    fn parses_snapshot_lines() {
        let gas = parse(SAMPLE);
        assert_eq!(gas.get("test_gas_commit1k_noAcl"), Some(&54784));
        assert_eq!(gas.len(), 8);
    }

    #[test]
    fn targets_pass_and_fail() {
        assert!(check_targets(SAMPLE).is_ok());
        let worse = SAMPLE.replace("(gas: 54784)", "(gas: 70001)");
        assert!(check_targets(&worse).is_err());
        let missing = SAMPLE.replace("GasTest:test_gas_commit1k_noAcl() (gas: 54784)\n", "");
        assert!(check_targets(&missing).is_err());
    }
}
