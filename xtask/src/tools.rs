//! The project-local tools folder (`.tools/`, git-ignored): Foundry, solcjs and
//! OpenZeppelin from the npm registry, and the solc wrapper forge is pointed at.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{Result, run, stage};

/// npm packages and their pinned versions. Changing a pin reinstalls.
pub const NPM_PINS: &[(&str, &str)] = &[
    ("@foundry-rs/forge", "1.7.1"),
    ("@foundry-rs/anvil", "1.7.1"),
    ("@foundry-rs/cast", "1.7.1"),
    ("solc", "0.8.30"),
    ("@openzeppelin/contracts", "5.4.0"),
];

/// Paths of the installed tools.
pub struct Tools {
    /// `.tools/` at the workspace root.
    pub dir: PathBuf,
    /// The forge platform binary (never the npm launcher, which exits 0 on failure).
    pub forge: PathBuf,
    /// The anvil platform binary.
    pub anvil: PathBuf,
    /// The cast platform binary.
    pub cast: PathBuf,
    /// The solc wrapper script around solcjs.
    pub solc: PathBuf,
}

impl Tools {
    /// Where the tools live (or will live) under `root`.
    pub fn locate(root: &Path) -> Result<Self> {
        let dir = root.join(".tools");
        let platform = platform()?;
        let bin = |tool: &str| {
            dir.join("node_modules/@foundry-rs")
                .join(format!("{tool}-{platform}"))
                .join("bin")
                .join(tool)
        };
        Ok(Self {
            forge: bin("forge"),
            anvil: bin("anvil"),
            cast: bin("cast"),
            solc: dir.join("bin/solc"),
            dir,
        })
    }

    /// A `forge` command run at the workspace root with the wrapper as compiler.
    pub fn forge(&self, root: &Path) -> Command {
        let mut cmd = Command::new(&self.forge);
        cmd.current_dir(root)
            .env("FOUNDRY_SOLC", &self.solc)
            .env("FOUNDRY_OFFLINE", "true")
            .env("FOUNDRY_DISABLE_NIGHTLY_WARNING", "1");
        cmd
    }

    fn stamp_text() -> String {
        let mut s = String::from("eth-mls tools v1\n");
        for (name, version) in NPM_PINS {
            s.push_str(&format!("{name}@{version}\n"));
        }
        s
    }

    fn is_installed(&self) -> bool {
        let stamp = fs::read_to_string(self.dir.join(".stamp")).unwrap_or_default();
        stamp == Self::stamp_text()
            && self.forge.is_file()
            && self.anvil.is_file()
            && self.cast.is_file()
            && self.solc.is_file()
    }
}

/// `linux-amd64` etc., as the `@foundry-rs/*` platform packages name it.
fn platform() -> Result<&'static str> {
    Ok(match (std::env::consts::OS, std::env::consts::ARCH) {
        ("linux", "x86_64") => "linux-amd64",
        ("linux", "aarch64") => "linux-arm64",
        ("macos", "x86_64") => "darwin-amd64",
        ("macos", "aarch64") => "darwin-arm64",
        (os, arch) => {
            return Err(format!(
                    "no Foundry npm package for {os}/{arch} (supported: linux and macOS on x86_64 or aarch64)"
                )
                .into());
        }
    })
}

/// Installs the pinned tools when they are missing or their pins changed; quick otherwise.
pub fn ensure(root: &Path) -> Result<Tools> {
    let tools = Tools::locate(root)?;
    if tools.is_installed() {
        return Ok(tools);
    }
    stage("setup: installing Foundry, solcjs and OpenZeppelin into .tools/");
    for needed in ["node", "npm"] {
        if Command::new(needed).arg("--version").output().is_err() {
            return Err(format!(
                "`{needed}` was not found; install Node.js 18+ and npm first \
                 (Debian/Ubuntu: `apt-get install -y nodejs npm`)"
            )
            .into());
        }
    }
    fs::create_dir_all(tools.dir.join("bin"))?;
    let deps: serde_json::Map<String, serde_json::Value> = NPM_PINS
        .iter()
        .map(|(n, v)| ((*n).to_owned(), serde_json::Value::from(*v)))
        .collect();
    let package = serde_json::json!({
        "name": "eth-mls-tools",
        "private": true,
        "description": "written by `cargo xtask setup`; do not edit",
        "dependencies": deps,
    });
    fs::write(
        tools.dir.join("package.json"),
        serde_json::to_string_pretty(&package)? + "\n",
    )?;
    run(Command::new("npm").current_dir(&tools.dir).args([
        "install",
        "--no-audit",
        "--no-fund",
        "--no-package-lock",
        "--loglevel=error",
    ]))?;
    for bin in [&tools.forge, &tools.anvil, &tools.cast] {
        if !bin.is_file() {
            return Err(format!("npm install finished but {} is missing", bin.display()).into());
        }
    }
    write_solc_wrapper(&tools)?;
    fs::write(tools.dir.join(".stamp"), Tools::stamp_text())?;
    let out = Command::new(&tools.forge).arg("--version").output()?;
    println!(
        "  {}",
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .next()
            .unwrap_or("")
    );
    let out = Command::new(&tools.solc).arg("--version").output()?;
    println!(
        "  solc {}",
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .nth(1)
            .unwrap_or("")
    );
    Ok(tools)
}

/// forge speaks to `solc` over a non-blocking pipe and parses `solc --version`;
/// solcjs needs files for both directions and prints a different banner.
fn write_solc_wrapper(tools: &Tools) -> Result<()> {
    let solcjs = tools.dir.join("node_modules/solc/solc.js");
    let script = format!(
        r#"#!/usr/bin/env bash
# solc wrapper around solcjs for forge; written by `cargo xtask setup`.
set -u
SOLCJS='{solcjs}'
if [ "${{1:-}}" = "--version" ]; then
  echo "solc, the solidity compiler commandline interface"
  echo "Version: $(node "$SOLCJS" --version)"
  exit 0
fi
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --allow-paths) shift; [ $# -gt 0 ] && shift ;;
    --allow-paths=*) shift ;;
    *) args+=("$1"); shift ;;
  esac
done
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cat > "$tmp/in"
node "$SOLCJS" "${{args[@]}}" < "$tmp/in" > "$tmp/out"
rc=$?
grep -v '^>>>' "$tmp/out"
exit $rc
"#,
        solcjs = solcjs.display()
    );
    fs::write(&tools.solc, script)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&tools.solc, fs::Permissions::from_mode(0o755))?;
    }
    Ok(())
}
