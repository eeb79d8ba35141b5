//! `cargo xtask demo`: the contracts on a fresh local anvil, driven with `cast`.
//!
//! For now (until the client crate lands) it deploys ERC7627, the MlsGroup implementation and
//! MlsGroupFactory from the committed artifacts, registers two accounts' X448 keys, creates a
//! group through the factory, adds a member, registers the epoch the add starts, and prints
//! addresses and the gas of every transaction.

use std::fs;
use std::io::Read;
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::contracts;
use crate::tools::{self, Tools};
use crate::{Result, output, stage};

/// anvil on 127.0.0.1 and a free port; killed on drop.
struct Anvil {
    child: Child,
    url: String,
    accounts: Vec<(String, String)>,
    dir: PathBuf,
}

impl Anvil {
    fn spawn(tools: &Tools) -> Result<Self> {
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
            .local_addr()?
            .port();
        let dir = std::env::temp_dir().join(format!("eth-mls-demo-{}-{port}", std::process::id()));
        fs::create_dir_all(&dir)?;
        let config = dir.join("anvil.json");
        let child = Command::new(&tools.anvil)
            .args([
                "--host",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--quiet",
            ])
            .arg("--config-out")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("could not start anvil: {e}"))?;
        let mut anvil = Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
            accounts: Vec::new(),
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = anvil.child.try_wait()? {
                return Err(format!("anvil exited early with {status}").into());
            }
            let ready = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_ok()
                && fs::metadata(&config).map(|m| m.len() > 0).unwrap_or(false);
            if ready {
                break;
            }
            if Instant::now() > deadline {
                return Err("anvil did not start within 30 s".into());
            }
            sleep(Duration::from_millis(50));
        }
        let cfg: Value = serde_json::from_str(&fs::read_to_string(&config)?)?;
        let list = |key: &str| -> Vec<String> {
            cfg.get(key)
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default()
        };
        anvil.accounts = list("available_accounts")
            .into_iter()
            .zip(list("private_keys"))
            .collect();
        if anvil.accounts.len() < 3 {
            return Err("anvil reported fewer than 3 funded accounts".into());
        }
        Ok(anvil)
    }
}

impl Drop for Anvil {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// A transaction's outcome as the demo prints it.
struct Sent {
    gas: u64,
    contract: Option<String>,
}

struct Chain<'a> {
    tools: &'a Tools,
    anvil: &'a Anvil,
    log: Vec<(String, u64)>,
}

impl Chain<'_> {
    fn cast(&self) -> Command {
        let mut cmd = Command::new(&self.tools.cast);
        cmd.env("FOUNDRY_DISABLE_NIGHTLY_WARNING", "1");
        cmd
    }

    /// `cast send` (a call, or `--create` when `to` is None); fails on a reverted receipt.
    fn send(&mut self, label: &str, key: &str, to: Option<&str>, args: &[&str]) -> Result<Sent> {
        let mut cmd = self.cast();
        cmd.args([
            "send",
            "--json",
            "--rpc-url",
            &self.anvil.url,
            "--private-key",
            key,
        ]);
        match to {
            Some(address) => cmd.arg(address),
            None => cmd.arg("--create"),
        };
        cmd.args(args);
        let receipt: Value = serde_json::from_str(&output(&mut cmd)?)
            .map_err(|e| format!("{label}: unreadable receipt: {e}"))?;
        let status = receipt.get("status").and_then(Value::as_str).unwrap_or("");
        if status != "0x1" && status != "1" {
            return Err(format!("{label}: transaction reverted ({receipt})").into());
        }
        let gas = receipt
            .get("gasUsed")
            .and_then(Value::as_str)
            .and_then(|g| u64::from_str_radix(g.trim_start_matches("0x"), 16).ok())
            .ok_or_else(|| format!("{label}: receipt without gasUsed"))?;
        let contract = receipt
            .get("contractAddress")
            .and_then(Value::as_str)
            .map(str::to_owned);
        self.log.push((label.to_owned(), gas));
        println!("  {label:<46} gas {gas:>9}");
        Ok(Sent { gas, contract })
    }

    fn deploy(&mut self, label: &str, key: &str, code: &str, ctor: &[&str]) -> Result<String> {
        let mut args = vec![code];
        args.extend_from_slice(ctor);
        let sent = self.send(label, key, None, &args)?;
        let address = sent
            .contract
            .ok_or_else(|| format!("{label}: no contract address"))?;
        println!("  {:<46}     at {address}", "");
        Ok(address)
    }

    fn call(&self, to: &str, sig: &str, args: &[&str]) -> Result<String> {
        let mut cmd = self.cast();
        cmd.args(["call", "--rpc-url", &self.anvil.url, to, sig])
            .args(args);
        Ok(output(&mut cmd)?.trim().to_owned())
    }

    fn keccak(&self, text: &str) -> Result<String> {
        Ok(output(self.cast().args(["keccak", text]))?
            .trim()
            .to_owned())
    }
}

fn random_hex(len: usize) -> Result<String> {
    let mut bytes = vec![0u8; len];
    fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(format!(
        "0x{}",
        bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
    ))
}

/// `cargo xtask demo`.
pub fn run(root: &Path) -> Result<()> {
    let tools = tools::ensure(root)?;
    stage("demo: starting a local anvil (127.0.0.1, free port)");
    let anvil = Anvil::spawn(&tools)?;
    println!("  rpc {}", anvil.url);
    let (deployer, alice, bob) = (&anvil.accounts[0], &anvil.accounts[1], &anvil.accounts[2]);
    println!(
        "  deployer {}\n  alice    {}\n  bob      {}",
        deployer.0, alice.0, bob.0
    );
    let mut chain = Chain {
        tools: &tools,
        anvil: &anvil,
        log: Vec::new(),
    };

    stage("demo: deploying the contracts (from crates/eth-mls-chain/artifacts)");
    let registry = chain.deploy(
        "deploy ERC7627",
        &deployer.1,
        &contracts::bytecode(root, "ERC7627")?,
        &[],
    )?;
    let implementation = chain.deploy(
        "deploy MlsGroup implementation",
        &deployer.1,
        &contracts::bytecode(root, "MlsGroup")?,
        &[],
    )?;
    let factory = chain.deploy(
        "deploy MlsGroupFactory",
        &deployer.1,
        &contracts::bytecode(root, "MlsGroupFactory")?,
        &["constructor(address,address)", &implementation, &registry],
    )?;

    stage("demo: alice and bob register X448 keys in ERC7627");
    let key_index = chain.keccak("eth-mls/x448/0")?;
    for (name, account) in [("alice", alice), ("bob", bob)] {
        // Any 56 bytes are a valid X448 public key encoding (RFC 7748); real key generation
        // arrives with eth-mls-crypto.
        let key = format!("({},0,3)", random_hex(56)?);
        chain.send(
            &format!("{name}: updatePublicKey (X448)"),
            &account.1,
            Some(&registry),
            &[
                "updatePublicKey(bytes32,(bytes,uint64,uint8))",
                &key_index,
                &key,
            ],
        )?;
    }
    let bob_key = chain.call(
        &registry,
        "isKeyValid(address,bytes32)(bool)",
        &[&bob.0, &key_index],
    )?;
    println!("  bob's key is valid: {bob_key}");

    stage("demo: alice creates a group (suite 0x0004, admins commit) and adds bob");
    let group_id = random_hex(16)?;
    let group = chain.call(
        &factory,
        "predictGroupAddress(address,bytes)(address)",
        &[&alice.0, &group_id],
    )?;
    let created = chain.send(
        "alice: factory.createGroup",
        &alice.1,
        Some(&factory),
        &["createGroup(bytes,uint16,uint8)", &group_id, "4", "0"],
    )?;
    println!("  group {group} (id {group_id})");
    // The commit adding bob travels with its bytes, bob's account and his key package hash.
    let key_package = random_hex(32)?;
    chain.send(
        "alice: group.commit(1, 1 KiB, +bob)",
        &alice.1,
        Some(&group),
        &[
            "commit(uint64,bytes,bytes32,address[],bytes32[],address[])",
            "1",
            &random_hex(1024)?,
            &random_hex(32)?,
            &format!("[{}]", bob.0),
            &format!("[{key_package}]"),
            "[]",
        ],
    )?;
    chain.send(
        "alice: group.commit(2, 1 KiB, no ACL change)",
        &alice.1,
        Some(&group),
        &[
            "commit(uint64,bytes,bytes32,address[],bytes32[],address[])",
            "2",
            &random_hex(1024)?,
            &random_hex(32)?,
            "[]",
            "[]",
            "[]",
        ],
    )?;
    let members = chain.call(
        &group,
        "members(address,uint256)(address[],address)",
        &["0x0000000000000000000000000000000000000000", "100"],
    )?;
    let members = members.lines().next().unwrap_or_default().trim().to_owned();
    let epoch = chain.call(&group, "currentEpoch()(uint64,bytes32,bytes32)", &[])?;
    println!("  members: {members}");
    println!(
        "  epoch:   {}",
        epoch.lines().next().unwrap_or_default().trim()
    );
    let bob_member = chain.call(&group, "isMember(address)(bool)", &[&bob.0])?;
    if bob_member != "true" {
        return Err(format!("bob should be a member, contract says {bob_member}").into());
    }

    stage("demo: summary (transaction gas, as in the receipts)");
    let total: u64 = chain.log.iter().map(|(_, g)| g).sum();
    println!("  {} transactions, {total} gas in all", chain.log.len());
    println!("  group creation through the factory: {} gas", created.gas);
    drop(anvil);

    stage(
        "demo: MLS groups of Ethereum accounts (cargo run -p eth-mls-core --example three_accounts)",
    );
    crate::run(
        std::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .current_dir(root)
            .args([
                "run",
                "--quiet",
                "-p",
                "eth-mls-core",
                "--example",
                "three_accounts",
            ]),
    )
}
