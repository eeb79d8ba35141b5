//! Building the contracts and exporting the artifacts that `eth-mls-chain` loads
//! with alloy's `sol!` (DESIGN.md decision 8).

use std::fs;
use std::path::Path;

use serde_json::{Value, json};

use crate::tools::Tools;
use crate::{Result, run, stage};

/// Deployable contracts exported for the Rust bindings: (source file, contract name). The
/// mock wallet is test-only (eth-mls-chain's ERC-1271 tests deploy it).
pub const EXPORTED: &[(&str, &str)] = &[
    ("ERC7627.sol", "ERC7627"),
    ("MlsGroup.sol", "MlsGroup"),
    ("MlsGroupFactory.sol", "MlsGroupFactory"),
    ("MockErc1271Wallet.sol", "MockErc1271Wallet"),
];

/// Where the committed artifacts live.
pub const ARTIFACT_DIR: &str = "crates/eth-mls-chain/artifacts";

/// `forge build` of the whole Foundry project.
pub fn build(root: &Path, tools: &Tools) -> Result<()> {
    stage("contracts: forge build");
    run(tools.forge(root).args(["build"]))
}

/// Writes (or with `check`, compares) `ARTIFACT_DIR/<Name>.json`: ABI, bytecode
/// and deployed bytecode of each exported contract.
pub fn export(root: &Path, check: bool) -> Result<()> {
    let dir = root.join(ARTIFACT_DIR);
    let mut stale = Vec::new();
    for (file, name) in EXPORTED {
        let forge_out = root.join("out").join(file).join(format!("{name}.json"));
        let text = fs::read_to_string(&forge_out)
            .map_err(|e| format!("{}: {e} (did forge build run?)", forge_out.display()))?;
        let artifact: Value = serde_json::from_str(&text)?;
        let field = |key: &str| -> Result<Value> {
            let object = artifact
                .get(key)
                .and_then(|v| v.get("object"))
                .and_then(Value::as_str)
                .ok_or_else(|| format!("{}: no {key}.object", forge_out.display()))?;
            Ok(json!({ "object": object }))
        };
        let exported = json!({
            "contractName": name,
            "abi": artifact.get("abi").cloned().unwrap_or(Value::Null),
            "bytecode": field("bytecode")?,
            "deployedBytecode": field("deployedBytecode")?,
        });
        let text = serde_json::to_string_pretty(&exported)? + "\n";
        let path = dir.join(format!("{name}.json"));
        if check {
            if fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
                stale.push(path.display().to_string());
            }
        } else {
            fs::create_dir_all(&dir)?;
            fs::write(&path, text)?;
            println!("  exported {}", path.display());
        }
    }
    if stale.is_empty() {
        if check {
            println!("  {} artifacts up to date", EXPORTED.len());
        }
        Ok(())
    } else {
        Err(format!(
            "stale contract artifacts (run `cargo xtask contracts` and commit): {}",
            stale.join(", ")
        )
        .into())
    }
}
