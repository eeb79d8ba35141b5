//! Schema migrations, each set applied whole or not at all.
//!
//! openmls_sqlite_storage's own `run_migrations` commits every migration's SQL and its
//! bookkeeping row in separate transactions: a process killed between the two leaves a file
//! whose next open re-runs a plain `CREATE TABLE` and fails for good. So its migrations are
//! embedded here (copied verbatim from openmls_sqlite_storage 0.3, same names, so the same
//! refinery checksums and the same history table `openmls_sqlite_storage_migrations`) and
//! run by refinery in *grouped* mode: all pending migrations and their history rows in one
//! transaction. A test checks that the copy is complete (openmls's own runner then finds
//! nothing to do).
//!
//! eth-mls's own tables follow in a second transaction, versioned by SQLite's
//! `user_version`: the DDL of every pending migration and the new version commit together.
//! A crash between the two sets leaves a store whose next open applies the rest.

use openmls_sqlite_storage::Connection;

use crate::Error;

mod openmls_migrations {
    refinery::embed_migrations!("migrations/openmls");
}

/// The refinery history table of openmls_sqlite_storage (as its `run_migrations` names it).
pub(crate) const OPENMLS_HISTORY_TABLE: &str = "openmls_sqlite_storage_migrations";

/// eth-mls's migrations, in order: migration `i` brings `user_version` from `i` to `i + 1`.
const OWN: &[&str] = &[
    // 1: identity, groups, pending commits, application-message generations (`IF NOT
    // EXISTS`: stores made before versioning have these tables).
    "
CREATE TABLE IF NOT EXISTS eth_mls_identity (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    scheme INTEGER NOT NULL,
    private_key BLOB NOT NULL,
    credential BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS eth_mls_group (
    group_id BLOB PRIMARY KEY,
    config TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS eth_mls_outgoing_commit (
    group_id BLOB PRIMARY KEY,
    commit_message BLOB NOT NULL,
    welcome BLOB
);
CREATE TABLE IF NOT EXISTS eth_mls_incoming_commit (
    group_id BLOB PRIMARY KEY,
    staged TEXT NOT NULL,
    committer BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS eth_mls_generation (
    group_id BLOB NOT NULL,
    epoch INTEGER NOT NULL,
    leaf INTEGER NOT NULL,
    generation INTEGER NOT NULL,
    PRIMARY KEY (group_id, epoch, leaf)
);
",
    // 2: the durable inbox and outbox, processed-message records, own key packages,
    // settings (retention).
    "
CREATE TABLE eth_mls_inbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    group_id BLOB NOT NULL,
    message_hash BLOB NOT NULL,
    event BLOB NOT NULL,
    received_at INTEGER NOT NULL
);
CREATE TABLE eth_mls_processed (
    group_id BLOB NOT NULL,
    message_hash BLOB NOT NULL,
    processed_at INTEGER NOT NULL,
    PRIMARY KEY (group_id, message_hash)
);
CREATE INDEX eth_mls_processed_at ON eth_mls_processed (processed_at);
CREATE TABLE eth_mls_outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    group_id BLOB NOT NULL,
    kind INTEGER NOT NULL,
    epoch INTEGER NOT NULL,
    generation INTEGER,
    bytes BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    published_at INTEGER
);
CREATE INDEX eth_mls_outbox_unpublished ON eth_mls_outbox (published_at, seq);
CREATE TABLE eth_mls_key_package (
    reference BLOB PRIMARY KEY,
    bytes BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    not_after INTEGER NOT NULL
);
CREATE TABLE eth_mls_setting (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
INSERT INTO eth_mls_setting (name, value) VALUES ('inbox_acked', 0);
ALTER TABLE eth_mls_outgoing_commit ADD COLUMN outbox_seq INTEGER;
",
    // 3: records of the application built on the store (the client's 1:1 channel state,
    // intents, cursors), by namespace and key.
    "
CREATE TABLE eth_mls_record (
    namespace TEXT NOT NULL,
    key BLOB NOT NULL,
    value BLOB NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (namespace, key)
);
",
    // 4: pieces cut out of openmls's records (`SplitStorage`), kept once each by SHA-256:
    // the member lists of past epochs (kind 0), runs of the tree's nodes (kind 1).
    "
CREATE TABLE eth_mls_secret_blob (
    group_id BLOB NOT NULL,
    kind INTEGER NOT NULL,
    hash BLOB NOT NULL,
    bytes BLOB NOT NULL,
    PRIMARY KEY (group_id, kind, hash)
);
",
];

/// The schema version this code writes (`PRAGMA user_version`).
pub(crate) const SCHEMA_VERSION: usize = OWN.len();

fn sql(e: rusqlite::Error) -> Error {
    Error::Storage(e.to_string())
}

/// Applies every pending migration: openmls's in one transaction, then eth-mls's in another.
pub(crate) fn migrate(conn: &mut Connection) -> Result<(), Error> {
    let mut runner = openmls_migrations::migrations::runner();
    runner.set_migration_table_name(OPENMLS_HISTORY_TABLE);
    runner
        .set_grouped(true)
        .run(conn)
        .map_err(|e| Error::Storage(format!("openmls storage migrations: {e}")))?;
    crate::step("migrate:openmls");
    // Nothing to do is the common case: decided without a write lock (another connection
    // may hold one).
    let current: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(sql)?;
    if current == SCHEMA_VERSION as i64 {
        return Ok(());
    }
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(sql)?;
    let version: i64 = tx
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(sql)?;
    let version = usize::try_from(version)
        .map_err(|_| Error::Corrupt(format!("schema version {version}")))?;
    if version > SCHEMA_VERSION {
        return Err(Error::Corrupt(format!(
            "the store's schema version {version} is newer than this code's {SCHEMA_VERSION}"
        )));
    }
    if version == SCHEMA_VERSION {
        return Ok(());
    }
    for migration in &OWN[version..] {
        tx.execute_batch(migration).map_err(sql)?;
    }
    tx.execute_batch(&format!("PRAGMA user_version = {SCHEMA_VERSION}"))
        .map_err(sql)?;
    crate::step("migrate:own");
    tx.commit().map_err(sql)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::BinaryCodec;
    use openmls_sqlite_storage::SqliteStorageProvider;

    fn history(conn: &Connection) -> i64 {
        conn.query_row(
            &format!("SELECT count(*) FROM {OPENMLS_HISTORY_TABLE}"),
            [],
            |r| r.get(0),
        )
        .unwrap()
    }

    /// The embedded copy is openmls_sqlite_storage's whole list, with the same checksums:
    /// its own runner, after ours, neither fails nor applies anything.
    #[test]
    fn the_embedded_openmls_migrations_are_complete_and_identical() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(&mut conn).unwrap();
        let ours = history(&conn);
        assert_eq!(ours, 6);
        SqliteStorageProvider::<BinaryCodec, &mut Connection>::new(&mut conn)
            .run_migrations()
            .unwrap();
        assert_eq!(history(&conn), ours);
    }

    /// A set of migrations that fails part-way leaves nothing of itself behind, and the next
    /// run applies it whole.
    #[test]
    fn a_failed_migration_leaves_no_trace_and_resumes() {
        let mut conn = Connection::open_in_memory().unwrap();
        // A table in the way of migration 2 makes it fail after migration 1 ran.
        conn.execute_batch("CREATE TABLE eth_mls_inbox (x INTEGER)")
            .unwrap();
        assert!(migrate(&mut conn).is_err());
        // openmls's set committed whole; ours not at all.
        assert_eq!(history(&conn), 6);
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version, 0);
        let identity: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE name = 'eth_mls_identity'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(identity, 0, "a half-applied migration left a table");
        conn.execute_batch("DROP TABLE eth_mls_inbox").unwrap();
        migrate(&mut conn).unwrap();
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version as usize, SCHEMA_VERSION);
        // And again: nothing to do.
        migrate(&mut conn).unwrap();
    }
}
