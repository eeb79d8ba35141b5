//! The store is encrypted at rest (SQLCipher): no secret and no plaintext in the database
//! file or its WAL; a wrong key is a typed error; passphrases go through Argon2id.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use common::*;
use eth_mls_core::{Error, Store, StoreKey};

/// Every file of a store: the database and, when present, its WAL and shared memory.
fn files(path: &std::path::Path) -> Vec<u8> {
    let mut all = Vec::new();
    for suffix in ["", "-wal", "-shm"] {
        let p = format!("{}{suffix}", path.display());
        if let Ok(bytes) = std::fs::read(&p) {
            all.extend(bytes);
        }
    }
    all
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn no_secret_or_plaintext_in_the_files() {
    let dir = TempDir::new();
    let mut peers = group_of(&dir, b"a secret group id", &[1, 2]);
    let secret_message = b"the launch code is 0451, tell nobody";
    let ciphertext = peers[0].send(secret_message);
    assert_eq!(peers[1].receive(&ciphertext), secret_message);
    // What must never be readable from the files: the Ed448 private key, the exporter
    // secret of the epoch, the message, and any of the (public but telling) metadata that an
    // unencrypted SQLite file would show.
    let private_key = peers[0]
        .store
        .identity()
        .signer()
        .private_key()
        .expose()
        .to_vec();
    let exporter = peers[0]
        .g()
        .export_secret(&peers[0].store, "test", b"", 32)
        .unwrap();
    let statement = b"Authorize this MLS signature key";
    for p in &peers {
        let bytes = files(&p.path);
        assert!(bytes.len() > 4096, "the store has content");
        for (what, needle) in [
            ("Ed448 private key", private_key.as_slice()),
            ("exporter secret", exporter.as_slice()),
            ("message plaintext", &secret_message[..]),
            ("SIWE statement", &statement[..]),
            ("group id", &b"a secret group id"[..]),
            ("SQLite header", &b"SQLite format 3"[..]),
            ("table names", &b"eth_mls_identity"[..]),
        ] {
            assert!(
                !contains(&bytes, needle),
                "{what} found in {}",
                p.path.display()
            );
        }
    }
    // The secrets are in the files, only encrypted: reopened with the key, the store gives
    // back the same private key.
    peers[0].restart();
    assert_eq!(
        peers[0].store.identity().signer().private_key().expose(),
        private_key.as_slice()
    );
}

#[test]
fn wrong_key_is_a_typed_error_and_the_right_one_opens() {
    let dir = TempDir::new();
    let path = dir.0.join("store.db");
    let store = Store::create(&path, &StoreKey::raw([1; 32]), identity(1)).unwrap();
    let address = store.identity().address();
    drop(store);
    assert!(matches!(
        Store::<eth_mls_crypto::DefaultBackend>::open(&path, &StoreKey::raw([2; 32])),
        Err(Error::WrongKey)
    ));
    assert!(matches!(
        Store::<eth_mls_crypto::DefaultBackend>::open(&path, &StoreKey::passphrase("guess")),
        Err(Error::WrongKey)
    ));
    // Creating again over it with another key is refused too, the file untouched.
    assert!(matches!(
        Store::create(&path, &StoreKey::raw([3; 32]), identity(1)),
        Err(Error::WrongKey)
    ));
    let store: Store = Store::open(&path, &StoreKey::raw([1; 32])).unwrap();
    assert_eq!(store.identity().address(), address);
}

#[test]
fn passphrase_stores_have_their_own_salt_and_reopen() {
    let dir = TempDir::new();
    let key = StoreKey::passphrase("correct horse battery staple");
    let a = dir.0.join("a.db");
    let b = dir.0.join("b.db");
    drop(Store::create(&a, &key, identity(1)).unwrap());
    drop(Store::create(&b, &key, identity(2)).unwrap());
    let salt = |p: &std::path::Path| std::fs::read(p).unwrap()[..16].to_vec();
    assert_ne!(salt(&a), salt(&b), "a random salt per store");
    let store: Store = Store::open(&a, &key).unwrap();
    assert_eq!(store.identity().address(), identity(1).address());
    assert!(
        !format!("{key:?}").contains("horse"),
        "Debug redacts the key"
    );
    // A backup is encrypted under the same key.
    let backup = dir.0.join("backup.db");
    store.backup(&backup).unwrap();
    assert!(!contains(
        &std::fs::read(&backup).unwrap(),
        b"SQLite format 3"
    ));
    let restored: Store = Store::open(&backup, &key).unwrap();
    assert_eq!(restored.identity().address(), identity(1).address());
}

/// The mode bits of `path` (0 when it does not exist).
#[cfg(unix)]
fn mode(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .map(|m| m.permissions().mode() & 0o777)
        .unwrap_or(0)
}

/// Security review L5: a store and the files SQLite keeps beside it are readable by their
/// owner only, whatever the umask; one created group- or world-readable (by an earlier
/// version) is tightened when opened.
#[cfg(unix)]
#[test]
fn store_files_are_readable_by_their_owner_only() {
    let dir = TempDir::new();
    let mut peers = group_of(&dir, b"modes", &[1, 2]);
    let ciphertext = peers[0].send(b"hello");
    assert_eq!(peers[1].receive(&ciphertext), b"hello");
    let path = peers[0].path.clone();
    let mut seen = 0;
    for suffix in ["", "-wal", "-shm"] {
        let p = std::path::PathBuf::from(format!("{}{suffix}", path.display()));
        if p.exists() {
            seen += 1;
            assert_eq!(mode(&p), 0o600, "{}", p.display());
        }
    }
    assert!(seen >= 2, "the database and its WAL");
    drop(peers);
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let store: Store = Store::open(&path, &store_key()).unwrap();
    assert_eq!(mode(&path), 0o600);
    drop(store);
}

/// A store re-keyed from a passphrase to a raw key opens with the new key only, keeps its
/// contents and salt; a wrong old key is refused and changes nothing.
#[test]
fn a_store_is_rekeyed_whole() {
    let dir = TempDir::new();
    let old = StoreKey::passphrase("old password");
    let new = StoreKey::raw([7u8; 32]);
    let path = dir.0.join("s.db");
    drop(Store::create(&path, &old, identity(3)).unwrap());
    let salt = std::fs::read(&path).unwrap()[..16].to_vec();
    assert!(old.opens(&path).unwrap());
    assert!(!new.opens(&path).unwrap());
    assert!(matches!(
        StoreKey::passphrase("not it").rekey(&path, &new),
        Err(eth_mls_core::Error::WrongKey)
    ));
    assert!(old.opens(&path).unwrap(), "a refused rekey changes nothing");
    old.rekey(&path, &new).unwrap();
    assert!(new.opens(&path).unwrap());
    assert!(!old.opens(&path).unwrap());
    assert_eq!(
        std::fs::read(&path).unwrap()[..16],
        salt[..],
        "the salt stays"
    );
    let store: Store = Store::open(&path, &new).unwrap();
    assert_eq!(store.identity().address(), identity(3).address());
    // Damaged pages past the header: no key opens it, and nothing panics.
    drop(store);
    let mut bytes = std::fs::read(&path).unwrap();
    for b in bytes.iter_mut().skip(16) {
        *b ^= 0x5a;
    }
    std::fs::write(&path, &bytes).unwrap();
    assert!(!new.opens(&path).unwrap());
}
