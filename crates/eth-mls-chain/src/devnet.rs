//! A local anvil devnet: started on 127.0.0.1 and a free port, stopped on drop.

use std::path::PathBuf;

use alloy::node_bindings::{Anvil, AnvilInstance};
use alloy::primitives::Address;
use alloy::signers::local::PrivateKeySigner;

use crate::{Chain, Deployment, Error};

/// Where anvil is looked for, in order: `ETH_MLS_ANVIL`, the eth-mls tools folder
/// (`.tools/`, filled by `cargo xtask setup`), then `anvil` on `PATH`.
pub fn find_anvil() -> Result<PathBuf, Error> {
    let mut searched = Vec::new();
    if let Some(p) = std::env::var_os("ETH_MLS_ANVIL") {
        let p = PathBuf::from(p);
        if p.is_file() {
            return Ok(p);
        }
        searched.push(p);
    }
    let platform = match (std::env::consts::OS, std::env::consts::ARCH) {
        ("linux", "x86_64") => Some("linux-amd64"),
        ("linux", "aarch64") => Some("linux-arm64"),
        ("macos", "x86_64") => Some("darwin-amd64"),
        ("macos", "aarch64") => Some("darwin-arm64"),
        _ => None,
    };
    if let Some(platform) = platform {
        let tools = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../.tools/node_modules/@foundry-rs")
            .join(format!("anvil-{platform}"))
            .join("bin/anvil");
        if tools.is_file() {
            return Ok(tools);
        }
        searched.push(tools);
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let candidate = dir.join("anvil");
            if candidate.is_file() {
                return Ok(candidate);
            }
        }
    }
    searched.push(PathBuf::from("anvil (on PATH)"));
    Err(Error::AnvilNotFound { searched })
}

/// A running anvil on 127.0.0.1 with ten funded accounts; killed when dropped.
pub struct Devnet {
    anvil: AnvilInstance,
}

impl std::fmt::Debug for Devnet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Devnet")
            .field("rpc_url", &self.anvil.endpoint())
            .field("chain_id", &self.anvil.chain_id())
            .finish()
    }
}

impl Devnet {
    /// Starts anvil (found by [`find_anvil`]) on 127.0.0.1 and a free port.
    pub fn start() -> Result<Devnet, Error> {
        Self::start_with(&[])
    }

    /// Starts anvil with extra command-line arguments (e.g. `["--block-time", "1"]`).
    pub fn start_with(args: &[&str]) -> Result<Devnet, Error> {
        let path = find_anvil()?;
        let anvil = Anvil::at(path)
            .host("127.0.0.1")
            .port(0u16)
            .args(args.iter().copied())
            .try_spawn()
            .map_err(|e| Error::Devnet(e.to_string()))?;
        Ok(Devnet { anvil })
    }

    /// The HTTP RPC URL.
    pub fn rpc_url(&self) -> String {
        self.anvil.endpoint()
    }

    /// The WebSocket RPC URL (the same port: anvil serves both).
    pub fn ws_url(&self) -> String {
        self.anvil.ws_endpoint()
    }

    /// The chain id (31337 unless configured).
    pub fn chain_id(&self) -> u64 {
        self.anvil.chain_id()
    }

    /// The funded accounts' addresses.
    pub fn addresses(&self) -> &[Address] {
        self.anvil.addresses()
    }

    /// The signer of funded account `index` (0..10).
    pub fn signer(&self, index: usize) -> Option<PrivateKeySigner> {
        self.anvil.nth_key(index).and_then(|k| {
            let bytes = alloy::primitives::B256::from_slice(&k.to_bytes()[..]);
            PrivateKeySigner::from_bytes(&bytes).ok()
        })
    }

    /// A client signing with funded account `index`.
    pub async fn chain(&self, index: usize) -> Result<Chain, Error> {
        let signer = self
            .signer(index)
            .ok_or_else(|| Error::Devnet(format!("anvil has no account {index}")))?;
        // A local node under a loaded test machine: generous with time (mining thousands of
        // blocks at once takes a while).
        let config = crate::RpcConfig {
            request_timeout: std::time::Duration::from_secs(300),
            ..crate::RpcConfig::default()
        };
        Chain::connect_with(&self.rpc_url(), Some(signer), &config).await
    }

    /// Deploys the contracts with account 0 (through the CREATE2 deployer: the same
    /// addresses every time, already there after the first call).
    pub async fn deploy(&self) -> Result<Deployment, Error> {
        Deployment::deploy(&self.chain(0).await?).await
    }

    /// Deploys another, separate set of contracts with account 0 (plain CREATE).
    pub async fn deploy_separate_set(&self) -> Result<Deployment, Error> {
        Deployment::deploy_separate_set(&self.chain(0).await?).await
    }
}
