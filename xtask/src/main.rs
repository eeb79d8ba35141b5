//! `cargo xtask`: the project's automation. Run `cargo xtask help`.

mod bench;
mod contracts;
mod demo;
mod tools;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

/// Errors are reported as text; every failure exits non-zero.
pub type Result<T, E = Box<dyn std::error::Error>> = std::result::Result<T, E>;

const HELP: &str = "\
cargo xtask <command>

  setup               install pinned Foundry, solcjs and OpenZeppelin into .tools/
  contracts [--check] build the contracts and export ABI + bytecode JSON to
                      crates/eth-mls-chain/artifacts/ (--check: fail when stale)
  test                every check: forge fmt, forge test, gas snapshot, cargo fmt,
                      clippy, cargo test, artifact freshness
  bench               forge gas snapshot and the gas targets, criterion suites, delivery
  demo                deploy to a fresh local anvil and run the demo flow
  forge <args>        run the project's forge with its compiler wrapper
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let started = Instant::now();
    let result = dispatch(&args);
    match result {
        Ok(()) => {
            if !matches!(
                args.first().map(String::as_str),
                None | Some("help" | "forge" | "test")
            ) {
                println!("\nxtask: done in {:.1}s", started.elapsed().as_secs_f64());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("\nxtask: FAILED: {e}");
            ExitCode::FAILURE
        }
    }
}

fn dispatch(args: &[String]) -> Result<()> {
    let root = workspace_root();
    let rest: Vec<&str> = args.iter().skip(1).map(String::as_str).collect();
    match args.first().map(String::as_str) {
        None | Some("help" | "--help" | "-h") => {
            print!("{HELP}");
            Ok(())
        }
        Some("setup") => tools::ensure(&root).map(|_| ()),
        Some("contracts") => {
            let check = match rest.as_slice() {
                [] => false,
                ["--check"] => true,
                other => return Err(format!("contracts: unknown arguments {other:?}").into()),
            };
            let tools = tools::ensure(&root)?;
            contracts::build(&root, &tools)?;
            contracts::export(&root, check)
        }
        Some("test") => test(&root),
        Some("bench") => bench::run(&root),
        Some("demo") => demo::run(&root),
        Some("forge") => {
            let tools = tools::ensure(&root)?;
            run(tools.forge(&root).args(&rest))
        }
        Some(other) => Err(format!("unknown command `{other}`\n\n{HELP}").into()),
    }
}

/// `cargo xtask test`: everything CI checks, in order, stopping at the first failure.
fn test(root: &Path) -> Result<()> {
    let tools = tools::ensure(root)?;
    stage("test: forge fmt --check");
    run(tools.forge(root).args(["fmt", "--check"]))?;
    contracts::build(root, &tools)?;
    let mut counts = Counts::default();
    stage("test: forge test (unit, fuzz, invariant)");
    run_counting(tools.forge(root).args(["test"]), &mut counts)?;
    stage("test: forge snapshot --check (gas)");
    bench::snapshot(root, &tools, true)?;
    stage("test: contract artifacts are up to date");
    contracts::export(root, true)?;
    stage("test: cargo fmt --check");
    run(cargo().args(["fmt", "--all", "--check"]))?;
    stage("test: cargo clippy -D warnings");
    run(cargo().args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--all-features",
        "--",
        "-D",
        "warnings",
    ]))?;
    // Each crypto backend alone must build too (the features are additive).
    run(cargo().args([
        "clippy",
        "-p",
        "eth-mls-crypto",
        "--no-default-features",
        "--features",
        "openssl",
        "--",
        "-D",
        "warnings",
    ]))?;
    run(cargo().args([
        "clippy",
        "-p",
        "eth-mls-channel",
        "--no-default-features",
        "--features",
        "openssl",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))?;
    stage("test: cargo test (all features: both crypto backends)");
    run_counting(
        cargo().args(["test", "--workspace", "--all-features"]),
        &mut counts,
    )?;
    stage("test: patched dependencies' own tests (vendor/README.md)");
    run_counting(
        cargo()
            .args(["test", "--manifest-path"])
            .arg(root.join("vendor/tls_codec/Cargo.toml"))
            .args(["--features", "serde", "--tests"]),
        &mut counts,
    )?;
    openmls_test_vectors(root)?;
    run_counting(
        cargo()
            .args(["test", "--manifest-path"])
            .arg(root.join("vendor/openmls/Cargo.toml"))
            .args(["--features", "test-utils", "--lib", "--"])
            // The modules the patches touch, with upstream's tests of them (tree math, diffs,
            // tree hashes and parent hashes against the tree-validation, tree-operations and
            // TreeKEM vectors, past epochs' secrets, the message secrets a group stores as
            // it decrypts, proposal and commit validation (key uniqueness among them), and the
            // group's own tests: storing, loading, deleting) and the patches' own.
            .args([
                "binary_tree",
                "treesync",
                "past_secrets",
                "decryption_ratchet_updates",
                "validation",
                "tests::mls_group::",
                "eth_mls_patch",
            ]),
        &mut counts,
    )?;
    stage("test: MLS test vectors, entries passed per file (already counted above)");
    run(cargo().args([
        "test",
        "--quiet",
        "-p",
        "eth-mls-crypto",
        "--all-features",
        "--test",
        "mls_vectors",
        "--",
        "--nocapture",
        "--test-threads=1",
    ]))?;
    run(cargo().args([
        "test",
        "--quiet",
        "-p",
        "eth-mls-core",
        "--all-features",
        "--test",
        "passive_client",
        "--",
        "--nocapture",
        "--test-threads=1",
    ]))?;
    stage(
        "test: channel test vectors, entries passed per file and backend (already counted above)",
    );
    run(cargo().args([
        "test",
        "--quiet",
        "-p",
        "eth-mls-channel",
        "--all-features",
        "--test",
        "vectors",
        "--",
        "--nocapture",
        "--test-threads=1",
    ]))?;
    stage("test: eth-mls-channel depends on eth-mls-crypto only (of our crates)");
    let tree = output(cargo().args([
        "tree",
        "-p",
        "eth-mls-channel",
        "--all-features",
        "-e",
        "normal",
        "--prefix",
        "none",
    ]))?;
    let ours: std::collections::BTreeSet<&str> = tree
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|name| name.starts_with("eth-mls-") && *name != "eth-mls-channel")
        .collect();
    if ours.iter().any(|name| *name != "eth-mls-crypto") {
        return Err(format!("eth-mls-channel depends on {ours:?}").into());
    }
    println!("  of our crates: {ours:?}");
    stage("test: eth-mls-siwe stands alone (no provider, HTTP client or async runtime)");
    let tree = output(cargo().args([
        "tree",
        "-p",
        "eth-mls-siwe",
        "--all-features",
        "-e",
        "normal",
        "--prefix",
        "none",
    ]))?;
    let banned: Vec<&str> = tree
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|name| {
            [
                "tokio",
                "reqwest",
                "hyper",
                "alloy-provider",
                "alloy-transport",
            ]
            .contains(name)
        })
        .collect();
    if !banned.is_empty() {
        return Err(format!("eth-mls-siwe pulls {banned:?}").into());
    }
    println!(
        "  {} crates, none of them a provider, HTTP client or runtime",
        tree.lines().count()
    );
    stage("test: eth-mls-chain has no TLS stack by default");
    let tree = output(cargo().args([
        "tree",
        "-p",
        "eth-mls-chain",
        "-e",
        "normal",
        "--prefix",
        "none",
    ]))?;
    let tls: Vec<&str> = tree
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|name| {
            [
                "rustls",
                "native-tls",
                "openssl",
                "openssl-sys",
                "hyper-tls",
                "hyper-rustls",
                "tokio-rustls",
            ]
            .contains(name)
        })
        .collect();
    if !tls.is_empty() {
        return Err(format!("eth-mls-chain pulls a TLS stack by default: {tls:?}").into());
    }
    println!("  no TLS crate among {} dependencies", tree.lines().count());
    stage("test: eth-mls-chain and eth-mls-transport without `gossip` pull no libp2p");
    for (package, extra) in [
        ("eth-mls-chain", None),
        ("eth-mls-transport", Some("--no-default-features")),
    ] {
        let mut cmd = cargo();
        cmd.args(["tree", "-p", package, "-e", "normal", "--prefix", "none"]);
        cmd.args(extra);
        let tree = output(&mut cmd)?;
        let p2p: Vec<&str> = tree
            .lines()
            .filter_map(|l| l.split_whitespace().next())
            .filter(|name| name.starts_with("libp2p"))
            .collect();
        if !p2p.is_empty() {
            return Err(format!("{package} pulls libp2p: {p2p:?}").into());
        }
        println!(
            "  {package}: no libp2p among {} dependencies",
            tree.lines().count()
        );
    }
    stage("test: fuzz targets build (cargo-fuzz: eth-mls-siwe, eth-mls-channel)");
    let has_fuzz = Command::new("rustup")
        .args(["run", "nightly", "cargo", "fuzz", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if has_fuzz {
        for dir in ["crates/eth-mls-siwe/fuzz", "crates/eth-mls-channel/fuzz"] {
            run(Command::new("rustup").current_dir(root).args([
                "run",
                "nightly",
                "cargo",
                "fuzz",
                "build",
                "--fuzz-dir",
                dir,
            ]))?;
        }
    } else {
        println!(
            "  skipped: cargo-fuzz or a nightly toolchain is not installed \
             (cargo install cargo-fuzz)"
        );
    }
    // The last line CI reads: forge's and cargo's test counts together.
    println!(
        "\ntests: {} passed, {} failed",
        counts.passed, counts.failed
    );
    Ok(())
}

/// Test counts gathered from forge's and cargo's summary lines.
#[derive(Default)]
struct Counts {
    passed: u64,
    failed: u64,
}

impl Counts {
    /// Reads `... : 91 tests passed, 0 failed, ...` (forge) and
    /// `test result: ok. 2 passed; 0 failed; ...` (cargo test).
    fn read(&mut self, line: &str) {
        let number_before = |text: &str, word: &str| -> Option<u64> {
            let end = text.find(word)?;
            text[..end].split_whitespace().last()?.parse().ok()
        };
        if let Some(rest) = line.strip_prefix("test result: ") {
            self.passed += number_before(rest, " passed").unwrap_or(0);
            self.failed += number_before(rest, " failed").unwrap_or(0);
        } else if line.starts_with("Ran ") && line.contains(" tests passed, ") {
            let rest = line.rsplit(": ").next().unwrap_or("");
            self.passed += number_before(rest, " tests passed").unwrap_or(0);
            self.failed += number_before(rest, " failed").unwrap_or(0);
        }
    }
}

/// Like `run`, echoing stdout line by line while counting test results.
fn run_counting(cmd: &mut Command, counts: &mut Counts) -> Result<()> {
    use std::io::{BufRead, BufReader};
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("could not start {:?}: {e}", cmd.get_program()))?;
    if let Some(stdout) = child.stdout.take() {
        for line in BufReader::new(stdout).lines() {
            let line = line?;
            println!("{line}");
            counts.read(&line);
        }
    }
    let status = child.wait()?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{} exited with {status}", describe(cmd)).into())
    }
}

/// The workspace root (parent of the xtask crate).
fn workspace_root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().map(Path::to_path_buf).unwrap_or(manifest)
}

fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

/// The test vectors openmls's tests include when they compile (`vendor/openmls/test_vectors`,
/// not in its published crate): the official ones from `../shared/testdata/mls-vectors` (or
/// `MLS_TEST_VECTORS`), and an empty list for openmls's own encryption vectors, which the tests
/// run here do not read.
fn openmls_test_vectors(root: &Path) -> Result<()> {
    let from = std::env::var_os("MLS_TEST_VECTORS").map_or_else(
        || root.join("../shared/testdata/mls-vectors"),
        PathBuf::from,
    );
    let to = root.join("vendor/openmls/test_vectors");
    std::fs::create_dir_all(&to)?;
    for entry in std::fs::read_dir(&from)
        .map_err(|e| format!("the MLS test vectors at {}: {e}", from.display()))?
    {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "json")
            && let Some(name) = path.file_name()
        {
            std::fs::copy(&path, to.join(name))?;
        }
    }
    std::fs::write(to.join("kat_encryption_openmls.json"), "[]")?;
    Ok(())
}

/// Prints a stage banner.
pub fn stage(what: &str) {
    println!("\n==> {what}");
}

/// Runs a command with inherited output; a non-zero exit is an error naming the command.
pub fn run(cmd: &mut Command) -> Result<()> {
    let status = cmd
        .status()
        .map_err(|e| format!("could not start {:?}: {e}", cmd.get_program()))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{} exited with {status}", describe(cmd)).into())
    }
}

/// Runs a command and returns its stdout; a non-zero exit is an error with its stderr.
pub fn output(cmd: &mut Command) -> Result<String> {
    let out = cmd
        .output()
        .map_err(|e| format!("could not start {:?}: {e}", cmd.get_program()))?;
    if out.status.success() {
        Ok(String::from_utf8(out.stdout)?)
    } else {
        Err(format!(
            "{} exited with {}:\n{}{}",
            describe(cmd),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
        .into())
    }
}

fn describe(cmd: &Command) -> String {
    let program = Path::new(cmd.get_program())
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let args: Vec<String> = cmd
        .get_args()
        .take(4)
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    format!("`{program} {}`", args.join(" "))
}

#[cfg(test)]
mod tests {
    use super::Counts;

    #[test]
    fn counts_forge_and_cargo_summaries() {
        let mut c = Counts::default();
        c.read("Ran 5 test suites in 2.1s (3.0s CPU time): 91 tests passed, 2 failed, 0 skipped (93 total tests)");
        c.read("test result: ok. 7 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out");
        c.read("test result: FAILED. 1 passed; 3 failed; 0 ignored");
        c.read("[PASS] test_x() (gas: 1)");
        assert_eq!((c.passed, c.failed), (99, 5));
    }
}
