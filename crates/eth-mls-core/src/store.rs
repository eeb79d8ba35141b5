//! Persistent state: one SQLite database per local identity, holding openmls's group and
//! key state (openmls_sqlite_storage, JSON codec) and eth-mls's own tables (the identity,
//! group policies, commits waiting to be merged, application-message generations).
//!
//! The file is encrypted at rest with SQLCipher (AES-256, HMAC-SHA512 per page; the WAL
//! too), keyed by a [`StoreKey`]: a passphrase stretched with Argon2id (parameters in
//! [`StoreKey::passphrase`]) or a raw 256-bit key. Nothing but the 16-byte salt at the start
//! of the file is in plaintext. A wrong key is [`Error::WrongKey`].
//!
//! Every operation that changes state runs in one `BEGIN IMMEDIATE` … `COMMIT` transaction,
//! so a process that stops at any point restarts either before or after the whole operation:
//! openmls's storage commits each write alone otherwise. The database runs in WAL mode with
//! `synchronous = FULL`.

use std::path::Path;

use eth_mls_crypto::{Backend, DefaultBackend, Provider, SecretBytes, SignatureKeyPair};
use openmls::prelude::GroupId;
use openmls_sqlite_storage::{Codec, Connection};
use openmls_traits::types::SignatureScheme;
use rusqlite::{OptionalExtension, params};
use zeroize::Zeroizing;

use crate::Error;
use crate::credential::EthereumCredential;
use crate::identity::Identity;

/// The serde codec of openmls's SQLite tables: MessagePack, compact and self-describing, with
/// byte strings as `bin`. (JSON writes every byte of a key as a decimal number: encoding a
/// 1000-member group's state took ~20 ms per message.)
#[derive(Debug, Default, Clone, Copy)]
pub struct BinaryCodec;

/// A MessagePack encoding or decoding failure.
#[derive(Debug, thiserror::Error)]
#[error("MessagePack: {0}")]
pub struct CodecError(String);

impl CodecError {
    pub(crate) fn new(what: &str) -> Self {
        CodecError(what.to_string())
    }
}

impl BinaryCodec {
    /// [`Codec::to_vec`], appending to `out` (which may have room reserved already).
    pub(crate) fn encode_into<T: serde::Serialize>(
        value: &T,
        out: &mut Vec<u8>,
    ) -> Result<(), CodecError> {
        let mut ser = rmp_serde::Serializer::new(out)
            .with_bytes(rmp_serde::config::BytesMode::ForceIterables);
        value
            .serialize(&mut ser)
            .map_err(|e| CodecError(e.to_string()))
    }
}

impl Codec for BinaryCodec {
    type Error = CodecError;

    /// Byte strings (`Vec<u8>`, `[u8]` behind serde's sequences: keys, secrets, signatures,
    /// credentials) are written as MessagePack `bin`, one length and the raw bytes, instead
    /// of one integer per byte (which took most of a message's CPU time at 1000 members).
    /// Reading accepts both forms, so stores written before read as they are.
    fn to_vec<T: serde::Serialize>(value: &T) -> Result<Vec<u8>, Self::Error> {
        let mut out = Vec::new();
        Self::encode_into(value, &mut out)?;
        Ok(out)
    }

    fn from_slice<T: serde::de::DeserializeOwned>(slice: &[u8]) -> Result<T, Self::Error> {
        rmp_serde::from_slice(slice).map_err(|e| CodecError(e.to_string()))
    }
}

/// openmls's storage on a borrowed connection (message secrets split: see
/// [`SplitStorage`](crate::SplitStorage)).
pub type SqlStorage<'a> = crate::split::SplitStorage<'a>;

/// The openmls provider of a [`Store`]: eth-mls-crypto on backend `B`, SQLite storage.
pub type StoreProvider<'a, B> = Provider<B, SqlStorage<'a>>;

/// Argon2id parameters for passphrases: 64 MiB of memory, 3 passes, one lane (stronger than
/// OWASP's 19 MiB / 2 passes minimum; about a quarter of a second here).
pub const ARGON2_MEMORY_KIB: u32 = 64 * 1024;
/// Argon2id passes (see [`ARGON2_MEMORY_KIB`]).
pub const ARGON2_PASSES: u32 = 3;
/// The length of the salt at the start of an encrypted store file.
const SALT_LEN: usize = 16;

/// The key of an encrypted [`Store`]. Secret: zeroized on drop, redacted in `Debug`.
pub struct StoreKey(KeySource);

enum KeySource {
    Passphrase(Zeroizing<Vec<u8>>),
    Raw(Zeroizing<[u8; 32]>),
    #[cfg(feature = "unencrypted-store-for-benchmarks")]
    Unencrypted,
}

impl std::fmt::Debug for StoreKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self.0 {
            KeySource::Passphrase(_) => "StoreKey::Passphrase(<redacted>)",
            KeySource::Raw(_) => "StoreKey::Raw(<redacted>)",
            #[cfg(feature = "unencrypted-store-for-benchmarks")]
            KeySource::Unencrypted => "StoreKey::Unencrypted",
        })
    }
}

impl StoreKey {
    /// A passphrase. The database key is Argon2id(passphrase, salt) with 64 MiB, 3 passes,
    /// one lane and a 32-byte output; the 16-byte random salt is the store file's first 16
    /// bytes (SQLCipher keeps its salt there), so each store has its own.
    pub fn passphrase(passphrase: impl AsRef<[u8]>) -> Self {
        Self(KeySource::Passphrase(Zeroizing::new(
            passphrase.as_ref().to_vec(),
        )))
    }

    /// A raw 256-bit key (e.g. from a keystore or an OS secret store), used as is.
    pub fn raw(key: [u8; 32]) -> Self {
        Self(KeySource::Raw(Zeroizing::new(key)))
    }

    /// No encryption at all: only to measure what encryption costs (feature
    /// `unencrypted-store-for-benchmarks`). Never use it for real data.
    #[cfg(feature = "unencrypted-store-for-benchmarks")]
    #[doc(hidden)]
    pub fn unencrypted() -> Self {
        Self(KeySource::Unencrypted)
    }

    /// Whether the store file at `path` opens with this key (it is not opened further: no
    /// migration runs). `false` for a wrong key, and for a file that is not an encrypted
    /// SQLite database under any key (damaged, or not a store): the two cannot be told apart
    /// without the right key, so a caller that knows its key is right reports damage.
    pub fn opens(&self, path: impl AsRef<Path>) -> Result<bool, Error> {
        let key = self;
        let path = path.as_ref();
        let salt = read_salt(path)?;
        let conn = Connection::open(path).map_err(sql)?;
        match apply_key(&conn, key, &salt) {
            Ok(()) => Ok(true),
            Err(Error::WrongKey) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Re-encrypts the (closed) store file at `path` from this key (`old`) to `new`, keeping
    /// its salt. SQLCipher rewrites every page in one transaction: a crash leaves the store
    /// under `old` or wholly under `new`. [`Error::WrongKey`] when `old` does not open it.
    pub fn rekey(&self, path: impl AsRef<Path>, new: &StoreKey) -> Result<(), Error> {
        let old = self;
        let path = path.as_ref();
        let salt = read_salt(path)?;
        let conn = Connection::open(path).map_err(sql)?;
        apply_key(&conn, old, &salt)?;
        // Everything in the main file first (rekey rewrites it; the WAL would keep pages
        // under the old key), and a rollback journal for the rewrite.
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .map_err(sql)?;
        conn.pragma_update(None, "journal_mode", "DELETE")
            .map_err(sql)?;
        let derived = new.derive(&salt)?;
        let mut pragma = Zeroizing::new(String::with_capacity(2 * (32 + SALT_LEN) + 3));
        pragma.push_str("x'");
        pragma.push_str(&hex::encode(derived.as_ref()));
        pragma.push_str(&hex::encode(salt));
        pragma.push('\'');
        conn.pragma_update(None, "rekey", pragma.as_str())
            .map_err(sql)?;
        conn.close().map_err(|(_, e)| sql(e))?;
        // The new key opens it (and only it does).
        let conn = Connection::open(path).map_err(sql)?;
        apply_key(&conn, new, &salt)
    }

    /// The 32-byte database key for `salt`.
    fn derive(&self, salt: &[u8; SALT_LEN]) -> Result<Zeroizing<[u8; 32]>, Error> {
        match &self.0 {
            KeySource::Raw(k) => Ok(k.clone()),
            KeySource::Passphrase(p) => {
                let params = argon2::Params::new(ARGON2_MEMORY_KIB, ARGON2_PASSES, 1, Some(32))
                    .map_err(|e| Error::Storage(format!("argon2 parameters: {e}")))?;
                let argon = argon2::Argon2::new(
                    argon2::Algorithm::Argon2id,
                    argon2::Version::V0x13,
                    params,
                );
                let mut out = Zeroizing::new([0u8; 32]);
                argon
                    .hash_password_into(p, salt, out.as_mut())
                    .map_err(|e| Error::Storage(format!("argon2: {e}")))?;
                Ok(out)
            }
            #[cfg(feature = "unencrypted-store-for-benchmarks")]
            KeySource::Unencrypted => Ok(Zeroizing::new([0u8; 32])),
        }
    }
}

/// Keys a fresh connection: SQLCipher's raw-key form `x'<key><salt>'`, so no PBKDF2 runs
/// on top of Argon2id and the salt is the one given. Then checks the key by reading.
fn apply_key(conn: &Connection, key: &StoreKey, salt: &[u8; SALT_LEN]) -> Result<(), Error> {
    // SQLCipher logs decryption failures to stderr by default.
    quiet(conn);
    #[cfg(feature = "unencrypted-store-for-benchmarks")]
    if matches!(key.0, KeySource::Unencrypted) {
        return Ok(());
    }
    let derived = key.derive(salt)?;
    let mut pragma = Zeroizing::new(String::with_capacity(2 * (32 + SALT_LEN) + 3));
    pragma.push_str("x'");
    pragma.push_str(&hex::encode(derived.as_ref()));
    pragma.push_str(&hex::encode(salt));
    pragma.push('\'');
    conn.pragma_update(None, "key", pragma.as_str())
        .map_err(sql)?;
    // Again after the key: SQLCipher's first keyed connection activates it, and activation
    // resets an unset log to WARN on stderr (a wrong key or a damaged page would print).
    quiet(conn);
    match conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| {
        r.get::<_, i64>(0)
    }) {
        Ok(_) => Ok(()),
        Err(rusqlite::Error::SqliteFailure(e, _))
            if e.code == rusqlite::ErrorCode::NotADatabase =>
        {
            Err(Error::WrongKey)
        }
        Err(e) => Err(sql(e)),
    }
}

/// Turns SQLCipher's own logging off (process-wide): failures are returned as errors, and
/// a library must not write to its user's stderr.
fn quiet(conn: &Connection) {
    for (pragma, value) in [("cipher_log_level", "NONE"), ("cipher_log", "off")] {
        // Each answers with a row: read as a query (an `execute` would report it as an error).
        let _ = conn.query_row(&format!("PRAGMA {pragma} = {value}"), [], |_| Ok(()));
    }
}

/// The salt of an existing store file (its first 16 bytes).
fn read_salt(path: &Path) -> Result<[u8; SALT_LEN], Error> {
    use std::io::Read;
    let mut salt = [0u8; SALT_LEN];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut salt))
        .map_err(|e| Error::Storage(format!("reading {}: {e}", path.display())))?;
    Ok(salt)
}

/// A local identity's persistent state: its Ethereum identity (account, Ed448 signature key,
/// credential) and every group it belongs to.
///
/// The database holds private keys (the Ed448 signature key, HPKE keys of key packages and
/// of the ratchet tree), encrypted with the store's [`StoreKey`].
pub struct Store<B: Backend = DefaultBackend> {
    conn: Connection,
    identity: Identity<B>,
}

impl<B: Backend> std::fmt::Debug for Store<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("address", &self.identity.address())
            .finish_non_exhaustive()
    }
}

pub(crate) fn sql(e: rusqlite::Error) -> Error {
    Error::Storage(e.to_string())
}

/// Sets up a connection to a keyed database: WAL with full synchronisation for files, a
/// busy timeout, every pending migration (each set whole or not at all).
fn prepare(mut conn: Connection, file: bool) -> Result<Connection, Error> {
    if file {
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(sql)?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(sql)?;
    }
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .map_err(sql)?;
    crate::migrate::migrate(&mut conn)?;
    Ok(conn)
}

/// Whether a keyed database holds an identity (without migrating it).
fn has_identity(conn: &Connection) -> Result<bool, Error> {
    let table: i64 = conn
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'eth_mls_identity'",
            [],
            |r| r.get(0),
        )
        .map_err(sql)?;
    if table == 0 {
        return Ok(false);
    }
    conn.query_row("SELECT count(*) FROM eth_mls_identity", [], |r| {
        r.get::<_, i64>(0)
    })
    .map(|n| n > 0)
    .map_err(sql)
}

/// `path` with `suffix` appended to its file name.
fn with_suffix(path: &Path, suffix: &str) -> std::path::PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(suffix);
    path.with_file_name(name)
}

/// Makes a database file and the files SQLite keeps beside it readable by their owner only
/// (0600; security review L5). SQLite creates its WAL and shared-memory files with the
/// database file's mode, so a store created 0600 stays so; this also tightens one created
/// by an earlier version with the umask's mode.
fn restrict_database(path: &Path) -> Result<(), Error> {
    #[cfg(unix)]
    for file in [
        path.to_path_buf(),
        with_suffix(path, "-journal"),
        with_suffix(path, "-wal"),
        with_suffix(path, "-shm"),
    ] {
        use std::os::unix::fs::PermissionsExt;
        match std::fs::metadata(&file) {
            Ok(m) if m.permissions().mode() & 0o077 != 0 => {
                std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600))
                    .map_err(io(&file))?;
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(&file)(e)),
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// Creates an empty file readable by its owner only (SQLite then takes it as an empty
/// database, and gives its side files the same mode).
fn create_private(path: &Path) -> Result<(), Error> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path).map(|_| ()).map_err(io(path))
}

/// Removes a database file and the files SQLite keeps beside it.
fn remove_database(path: &Path) -> Result<(), Error> {
    for file in [
        path.to_path_buf(),
        with_suffix(path, "-journal"),
        with_suffix(path, "-wal"),
        with_suffix(path, "-shm"),
    ] {
        match std::fs::remove_file(&file) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(Error::Storage(format!("removing {}: {e}", file.display())));
            }
        }
    }
    Ok(())
}

fn io(what: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |e| Error::Storage(format!("{}: {e}", what.display()))
}

impl<B: Backend> Store<B> {
    /// Creates the encrypted database at `path` for `identity`, keyed by `key`. Fails with
    /// [`Error::IdentityExists`] when the file already holds an identity (and
    /// [`Error::WrongKey`] when it exists under another key).
    ///
    /// Creation is atomic: the database is built whole in `<path>.creating` (migrations,
    /// identity), synced, then renamed to `path`. A crash leaves either no store at `path` or
    /// a complete one; the next `create` removes the leftover. A file at `path` that opens
    /// with `key` but holds no identity (left half-made by an older version) is replaced.
    pub fn create(
        path: impl AsRef<Path>,
        key: &StoreKey,
        identity: Identity<B>,
    ) -> Result<Self, Error> {
        let path = path.as_ref();
        if path.exists() {
            let len = std::fs::metadata(path).map_err(io(path))?.len();
            if len as usize >= SALT_LEN {
                let salt = read_salt(path)?;
                let conn = Connection::open(path).map_err(sql)?;
                apply_key(&conn, key, &salt)?;
                if has_identity(&conn)? {
                    return Err(Error::IdentityExists);
                }
            }
            remove_database(path)?;
        }
        let building = with_suffix(path, ".creating");
        remove_database(&building)?;
        crate::step("create:begin");
        let mut salt = [0u8; SALT_LEN];
        getrandom::fill(&mut salt)
            .map_err(|e| Error::Storage(format!("no randomness for the salt: {e}")))?;
        create_private(&building)?;
        {
            let conn = Connection::open(&building).map_err(sql)?;
            apply_key(&conn, key, &salt)?;
            // The default rollback journal: once closed, nothing is left beside the file.
            let conn = prepare(conn, false)?;
            crate::step("create:migrated");
            Self::insert_identity(&conn, &identity)?;
            conn.close().map_err(|(_, e)| sql(e))?;
        }
        std::fs::File::open(&building)
            .and_then(|f| f.sync_all())
            .map_err(io(&building))?;
        crate::step("create:written");
        std::fs::rename(&building, path).map_err(io(path))?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            // The rename is durable once the directory is synced.
            std::fs::File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(io(dir))?;
        }
        crate::step("create:renamed");
        let conn = Connection::open(path).map_err(sql)?;
        apply_key(&conn, key, &salt)?;
        let conn = prepare(conn, true)?;
        Ok(Self { conn, identity })
    }

    /// A store in memory (lost when dropped): for tests and ephemeral clients.
    pub fn in_memory(identity: Identity<B>) -> Result<Self, Error> {
        let conn = prepare(Connection::open_in_memory().map_err(sql)?, false)?;
        Self::init(conn, identity)
    }

    fn init(conn: Connection, identity: Identity<B>) -> Result<Self, Error> {
        if has_identity(&conn)? {
            return Err(Error::IdentityExists);
        }
        Self::insert_identity(&conn, &identity)?;
        Ok(Self { conn, identity })
    }

    fn insert_identity(conn: &Connection, identity: &Identity<B>) -> Result<(), Error> {
        let scheme = identity.signer().public_key().scheme() as u16;
        conn.execute(
            "INSERT INTO eth_mls_identity (id, scheme, private_key, credential) VALUES (1, ?1, ?2, ?3)",
            params![
                scheme,
                identity.signer().private_key().expose(),
                identity.credential().to_bytes()
            ],
        )
        .map(drop)
        .map_err(sql)
    }

    /// Opens an existing encrypted database with `key` and restores its identity and groups,
    /// applying pending migrations (each set whole or not at all: a crash mid-way leaves the
    /// store as before them, and the next open applies them). A wrong key is
    /// [`Error::WrongKey`]; a file without identity is [`Error::NoIdentity`] (create it).
    pub fn open(path: impl AsRef<Path>, key: &StoreKey) -> Result<Self, Error> {
        let path = path.as_ref();
        if !path.exists() {
            return Err(Error::Storage(format!("{} does not exist", path.display())));
        }
        restrict_database(path)?;
        let salt = read_salt(path)?;
        let conn = Connection::open(path).map_err(sql)?;
        apply_key(&conn, key, &salt)?;
        if !has_identity(&conn)? {
            return Err(Error::NoIdentity);
        }
        let conn = prepare(conn, true)?;
        let row: Option<(u16, Zeroizing<Vec<u8>>, Vec<u8>)> = conn
            .query_row(
                "SELECT scheme, private_key, credential FROM eth_mls_identity WHERE id = 1",
                [],
                |r| Ok((r.get(0)?, Zeroizing::new(r.get(1)?), r.get(2)?)),
            )
            .optional()
            .map_err(sql)?;
        let (scheme, private, credential) = row.ok_or(Error::NoIdentity)?;
        let scheme = SignatureScheme::try_from(scheme)
            .map_err(|_| Error::Corrupt(format!("unknown signature scheme {scheme:#06x}")))?;
        let signer =
            SignatureKeyPair::from_private_bytes(scheme, &SecretBytes::new(private.to_vec()))
                .map_err(|e| Error::Corrupt(format!("identity key: {e}")))?;
        let credential = EthereumCredential::from_bytes(&credential)?;
        Ok(Self {
            conn,
            identity: Identity::from_parts(signer, credential),
        })
    }

    /// The local identity.
    pub fn identity(&self) -> &Identity<B> {
        &self.identity
    }

    /// Replaces the identity's credential with a renewed one (see [`Identity::renew`]): it
    /// must name the same account and bind the same MLS signature key. New key packages
    /// carry it; each group sees it with the next [`crate::Group::self_update`].
    pub fn renew_credential(&mut self, credential: EthereumCredential) -> Result<(), Error> {
        if credential.address() != self.identity.address() {
            return Err(Error::AccountChange {
                leaf: u32::MAX,
                from: self.identity.address(),
                to: credential.address(),
            });
        }
        if credential.bound_key()?.as_bytes() != self.identity.signer().public_key().as_bytes() {
            return Err(Error::Credential(
                crate::credential::CredentialError::KeyMismatch,
            ));
        }
        self.conn
            .execute(
                "UPDATE eth_mls_identity SET credential = ?1 WHERE id = 1",
                params![credential.to_bytes()],
            )
            .map_err(sql)?;
        self.identity.set_credential(credential);
        Ok(())
    }

    /// Writes a consistent copy of the database to `path` (SQLite `VACUUM INTO`), e.g. for
    /// a backup. The copy is encrypted with the same key and salt: open it with the same
    /// [`StoreKey`].
    pub fn backup(&self, path: impl AsRef<Path>) -> Result<(), Error> {
        let path = path
            .as_ref()
            .to_str()
            .ok_or_else(|| Error::Storage("the backup path is not valid UTF-8".into()))?;
        self.conn
            .execute("VACUUM INTO ?1", params![path])
            .map(drop)
            .map_err(sql)
    }

    /// The ids of the groups this store holds.
    pub fn group_ids(&self) -> Result<Vec<GroupId>, Error> {
        let mut stmt = self
            .conn
            .prepare("SELECT group_id FROM eth_mls_group ORDER BY group_id")
            .map_err(sql)?;
        let rows = stmt
            .query_map([], |r| r.get::<_, Vec<u8>>(0))
            .map_err(sql)?;
        rows.map(|r| r.map(|id| GroupId::from_slice(&id)).map_err(sql))
            .collect()
    }

    /// Generates a key package (suite 0x0004, [`crate::DEFAULT_KEY_PACKAGE_LIFETIME`] when
    /// `lifetime` is `None`) and stores its private keys; returns it serialized, ready to
    /// publish. Each key package is for one use.
    pub fn generate_key_package(
        &mut self,
        lifetime: Option<std::time::Duration>,
    ) -> Result<Vec<u8>, Error> {
        use tls_codec::Serialize as _;
        self.transact(|store| {
            let provider = store.provider();
            let bundle = crate::generate_key_package(&store.identity, &provider, lifetime)?;
            let kp = bundle.key_package();
            let bytes = kp
                .tls_serialize_detached()
                .map_err(|e| Error::Corrupt(format!("serializing the key package: {e}")))?;
            let reference = kp
                .hash_ref(provider.crypto_provider())
                .map_err(|e| Error::Corrupt(format!("key package reference: {e:?}")))?;
            let not_after = kp.life_time().not_after() as i64;
            crate::journal::put_key_package(&store.conn, reference.as_slice(), &bytes, not_after)?;
            crate::step("key-package:before-commit");
            Ok(bytes)
        })
    }

    /// The openmls provider over this store.
    pub fn provider(&self) -> StoreProvider<'_, B> {
        Provider::with_storage(crate::split::SplitStorage::new(&self.conn))
    }

    /// Runs `f` in one transaction: commits what it did on success, rolls back on error.
    pub(crate) fn transact<T>(
        &mut self,
        f: impl FnOnce(&Self) -> Result<T, Error>,
    ) -> Result<T, Error> {
        self.begin()?;
        match f(self).and_then(|v| self.commit().map(|()| v)) {
            Ok(v) => Ok(v),
            Err(e) => {
                self.rollback();
                Err(e)
            }
        }
    }

    /// Starts a transaction. A transaction left open by an operation whose future was
    /// dropped mid-way is rolled back first.
    pub(crate) fn begin(&self) -> Result<(), Error> {
        if !self.conn.is_autocommit() {
            self.rollback();
        }
        self.conn.execute_batch("BEGIN IMMEDIATE").map_err(sql)
    }

    /// Commits the open transaction.
    pub(crate) fn commit(&self) -> Result<(), Error> {
        self.conn.execute_batch("COMMIT").map_err(sql)
    }

    /// Rolls the open transaction back (a failed rollback leaves it to SQLite's recovery).
    pub(crate) fn rollback(&self) {
        let _ = self.conn.execute_batch("ROLLBACK");
    }

    pub(crate) fn conn(&self) -> &Connection {
        &self.conn
    }
}

/// Own-table helpers (inside a transaction).
pub(crate) mod tables {
    use super::*;

    pub(crate) fn put_group(conn: &Connection, id: &GroupId, config: &str) -> Result<(), Error> {
        conn.execute(
            "INSERT OR REPLACE INTO eth_mls_group (group_id, config) VALUES (?1, ?2)",
            params![id.as_slice(), config],
        )
        .map(drop)
        .map_err(sql)
    }

    pub(crate) fn get_group(conn: &Connection, id: &GroupId) -> Result<Option<String>, Error> {
        conn.query_row(
            "SELECT config FROM eth_mls_group WHERE group_id = ?1",
            params![id.as_slice()],
            |r| r.get(0),
        )
        .optional()
        .map_err(sql)
    }

    pub(crate) fn delete_group(conn: &Connection, id: &GroupId) -> Result<(), Error> {
        for table in [
            "eth_mls_group",
            "eth_mls_outgoing_commit",
            "eth_mls_incoming_commit",
            "eth_mls_generation",
        ] {
            conn.execute(
                &format!("DELETE FROM {table} WHERE group_id = ?1"),
                params![id.as_slice()],
            )
            .map_err(sql)?;
        }
        crate::journal::drop_group_outbox(conn, id)
    }

    pub(crate) fn put_outgoing(
        conn: &Connection,
        id: &GroupId,
        commit: &[u8],
        welcome: Option<&[u8]>,
        outbox_seq: u64,
    ) -> Result<(), Error> {
        conn.execute(
            "INSERT OR REPLACE INTO eth_mls_outgoing_commit (group_id, commit_message, welcome, outbox_seq) VALUES (?1, ?2, ?3, ?4)",
            params![id.as_slice(), commit, welcome, outbox_seq as i64],
        )
        .map(drop)
        .map_err(sql)
    }

    /// The commit message, Welcome and outbox entry of the own pending commit.
    pub(crate) type Outgoing = (Vec<u8>, Option<Vec<u8>>, u64);

    pub(crate) fn get_outgoing(conn: &Connection, id: &GroupId) -> Result<Option<Outgoing>, Error> {
        conn.query_row(
            "SELECT commit_message, welcome, outbox_seq FROM eth_mls_outgoing_commit WHERE group_id = ?1",
            params![id.as_slice()],
            |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    u64::try_from(r.get::<_, Option<i64>>(2)?.unwrap_or(0)).unwrap_or(0),
                ))
            },
        )
        .optional()
        .map_err(sql)
    }

    pub(crate) fn delete_commits(conn: &Connection, id: &GroupId) -> Result<(), Error> {
        for table in ["eth_mls_outgoing_commit", "eth_mls_incoming_commit"] {
            conn.execute(
                &format!("DELETE FROM {table} WHERE group_id = ?1"),
                params![id.as_slice()],
            )
            .map_err(sql)?;
        }
        Ok(())
    }

    /// A received commit staged and not yet merged, with its committer's address: stored
    /// MessagePack-encoded (a BLOB; JSON before, read still: [`get_incoming`]).
    pub(crate) fn put_incoming(
        conn: &Connection,
        id: &GroupId,
        staged: &[u8],
        committer: &[u8],
    ) -> Result<(), Error> {
        conn.prepare_cached("INSERT OR REPLACE INTO eth_mls_incoming_commit VALUES (?1, ?2, ?3)")
            .and_then(|mut q| q.execute(params![id.as_slice(), staged, committer]))
            .map(drop)
            .map_err(sql)
    }

    /// The staged commit stored for group `id`, if any: the committer's address and the
    /// commit, MessagePack (a BLOB) or, written before, JSON (TEXT).
    pub(crate) fn get_incoming(
        conn: &Connection,
        id: &GroupId,
    ) -> Result<Option<(StoredStaged, Vec<u8>)>, Error> {
        conn.query_row(
            "SELECT staged, committer FROM eth_mls_incoming_commit WHERE group_id = ?1",
            params![id.as_slice()],
            |r| {
                let staged = match r.get_ref(0)? {
                    rusqlite::types::ValueRef::Blob(b) => StoredStaged::Binary(b.to_vec()),
                    rusqlite::types::ValueRef::Text(t) => {
                        StoredStaged::Json(String::from_utf8_lossy(t).into_owned())
                    }
                    other => {
                        return Err(rusqlite::Error::InvalidColumnType(
                            0,
                            "staged".into(),
                            other.data_type(),
                        ));
                    }
                };
                Ok((staged, r.get(1)?))
            },
        )
        .optional()
        .map_err(sql)
    }

    /// A staged commit as stored: MessagePack, or JSON (written by earlier versions).
    pub(crate) enum StoredStaged {
        Binary(Vec<u8>),
        Json(String),
    }

    /// The next generation of (epoch, leaf): the next one to send for the own leaf, one
    /// past the highest received for others.
    pub(crate) fn get_generation(
        conn: &Connection,
        id: &GroupId,
        epoch: u64,
        leaf: u32,
    ) -> Result<Option<u32>, Error> {
        conn.query_row(
            "SELECT generation FROM eth_mls_generation WHERE group_id = ?1 AND epoch = ?2 AND leaf = ?3",
            params![id.as_slice(), epoch as i64, leaf],
            |r| r.get(0),
        )
        .optional()
        .map_err(sql)
    }

    pub(crate) fn put_generation(
        conn: &Connection,
        id: &GroupId,
        epoch: u64,
        leaf: u32,
        generation: u32,
    ) -> Result<(), Error> {
        conn.execute(
            "INSERT OR REPLACE INTO eth_mls_generation VALUES (?1, ?2, ?3, ?4)",
            params![id.as_slice(), epoch as i64, leaf, generation],
        )
        .map(drop)
        .map_err(sql)
    }

    /// Forgets generations of epochs before `oldest`.
    pub(crate) fn prune_generations(
        conn: &Connection,
        id: &GroupId,
        oldest: u64,
    ) -> Result<(), Error> {
        conn.execute(
            "DELETE FROM eth_mls_generation WHERE group_id = ?1 AND epoch < ?2",
            params![id.as_slice(), oldest as i64],
        )
        .map(drop)
        .map_err(sql)
    }
}

#[cfg(test)]
mod codec_tests {
    use openmls_sqlite_storage::Codec;

    use super::BinaryCodec;

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Sample {
        key: Vec<u8>,
        keys: Vec<Vec<u8>>,
        numbers: Vec<u32>,
        fixed: [u8; 4],
        name: String,
        empty: Vec<u8>,
    }

    fn sample() -> Sample {
        Sample {
            key: (0..=255u8).collect(),
            keys: vec![vec![0xff; 57], vec![]],
            numbers: vec![1, 300, 70_000],
            fixed: [9, 8, 7, 6],
            name: "leaf".into(),
            empty: Vec::new(),
        }
    }

    #[test]
    fn byte_strings_are_written_as_bytes_and_read_back() {
        let bytes = BinaryCodec::to_vec(&sample()).unwrap();
        let old = rmp_serde::to_vec(&sample()).unwrap();
        // 256 + 57 bytes of keys: as `bin` about that many; as integers, every byte from 128
        // up takes two.
        assert!(bytes.len() < 256 + 57 + 40, "{}", bytes.len());
        assert!(
            old.len() >= bytes.len() + 128 + 57,
            "{} vs {}",
            old.len(),
            bytes.len()
        );
        assert_eq!(BinaryCodec::from_slice::<Sample>(&bytes).unwrap(), sample());
    }

    #[test]
    fn values_written_before_the_change_still_read() {
        let old = rmp_serde::to_vec(&sample()).unwrap();
        assert_eq!(BinaryCodec::from_slice::<Sample>(&old).unwrap(), sample());
    }
}
