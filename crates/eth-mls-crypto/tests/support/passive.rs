//! Shared by the passive-client vector tests of eth-mls-crypto (`tests/mls_vectors.rs`) and
//! eth-mls-core (`tests/passive_client.rs`, which includes this file by path): the storage
//! record of a key package bundle, and the libfaketime re-execution.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use openmls::prelude::KeyPackage;
use openmls_traits::types::HpkePrivateKey;

/// The serde form openmls's storage uses for a `KeyPackageBundle`.
#[derive(serde::Serialize, serde::Deserialize)]
pub struct KeyPackageBundleRecord {
    pub key_package: KeyPackage,
    pub private_init_key: HpkePrivateKey,
    pub private_encryption_key: PrivateKeyRecord,
}
#[derive(serde::Serialize, serde::Deserialize)]
pub struct PrivateKeyRecord {
    pub key: HpkePrivateKey,
}
impl openmls_traits::storage::Entity<{ openmls_traits::storage::CURRENT_VERSION }>
    for KeyPackageBundleRecord
{
}
impl openmls_traits::storage::traits::KeyPackage<{ openmls_traits::storage::CURRENT_VERSION }>
    for KeyPackageBundleRecord
{
}

/// openmls refuses leaf nodes whose lifetime has passed (a check it can switch off only in its
/// own unit tests), and the key packages in the passive-client vectors expired in 2024 and
/// 2025. These runs therefore happen with the process clock set back inside the vectors'
/// lifetimes by libfaketime (Debian package `faketime`, installed by `.ci/run`): the test
/// re-executes just itself under it and checks that the child ran and passed.
pub fn under_faketime(test: &str, at: &str, run: impl FnOnce()) {
    if std::env::var_os("ETH_MLS_UNDER_FAKETIME").is_some() {
        return run();
    }
    let lib = [
        "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1",
        "/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1",
        "/usr/lib/faketime/libfaketime.so.1",
    ]
    .into_iter()
    .find(|p| std::path::Path::new(p).is_file())
    .expect("libfaketime not found: install it (Debian: apt-get install faketime)");
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env("LD_PRELOAD", lib)
        .env("FAKETIME", at)
        .env("ETH_MLS_UNDER_FAKETIME", "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    for line in stdout.lines() {
        if let Some(start) = line.find('[') {
            println!("{} (clock at {at})", &line[start..]);
        }
    }
    assert!(
        out.status.success() && stdout.contains("test result: ok. 1 passed"),
        "{test} under faketime failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
