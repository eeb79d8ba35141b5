//! The durable inbox and outbox, processed-message records, own key packages, retention.
//!
//! **Inbox.** [`crate::Group::process`] stores what a message produced (application
//! plaintext, staged-commit summary, proposal, missed-message report) as [`InboxEntry`]s in
//! the same transaction as the ratchet step and a record of the message's SHA-256, so a
//! crash never loses a processed message and a message processed again is
//! [`Processed::Duplicate`]. The application reads from a cursor ([`Store::inbox`],
//! [`Store::unacked`]) and acknowledges ([`Store::ack`]).
//!
//! **Outbox.** [`crate::Group::send`], every commit and every proposal store the exact bytes
//! to publish ([`OutboxEntry`], with epoch and generation) in the same transaction as the
//! step that created them; a merged commit's Welcome enters the outbox with the merge. The
//! application publishes [`Store::outbox_pending`] and marks entries
//! ([`Store::mark_published`]); after a crash it publishes the unmarked ones again (the same
//! bytes: receivers see a duplicate at most), so no generation is burned without its
//! message. A discarded own commit's unpublished entry is dropped with it.
//!
//! **Retention.** Acknowledged inbox entries, published outbox entries and processed-message
//! records are kept within a [`Retention`] (entries and age, bounded by
//! [`Retention::MAX_ENTRIES`] and [`Retention::MAX_AGE`]); unacknowledged and unpublished
//! entries are never dropped.

use std::time::Duration;

use eth_mls_crypto::Backend;
use openmls::prelude::{GroupId, KeyPackageBundle, KeyPackageRef};
use openmls_traits::storage::StorageProvider as _;
use rusqlite::{OptionalExtension, params};
use serde::{Deserialize, Serialize};

use crate::Error;
use crate::group::Event;
use crate::store::{Store, sql};

/// The outcome of [`crate::Group::process`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Processed {
    /// Processed now. The events (all but [`Event::OwnMessage`]) are also in the inbox.
    New(Vec<Event>),
    /// This exact message (same bytes) was processed before: nothing changed; what it
    /// produced went to the inbox then.
    Duplicate,
}

impl Processed {
    /// The events (none for a duplicate).
    pub fn into_events(self) -> Vec<Event> {
        match self {
            Self::New(events) => events,
            Self::Duplicate => Vec::new(),
        }
    }

    /// Whether the message had been processed before.
    pub fn is_duplicate(&self) -> bool {
        matches!(self, Self::Duplicate)
    }
}

/// An entry of the inbox: one event a processed message produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InboxEntry {
    /// Its position: increasing, never reused.
    pub seq: u64,
    /// The group.
    pub group_id: Vec<u8>,
    /// What the message produced.
    pub event: Event,
    /// SHA-256 of the message's bytes.
    pub message_hash: [u8; 32],
    /// When it was processed (Unix seconds, local clock).
    pub received_at: i64,
}

/// What an outbox entry is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum OutboxKind {
    /// An application message (to the group's topic).
    Application,
    /// A commit (to the group's contract and topic).
    Commit,
    /// The Welcome of a merged commit (to the added members).
    Welcome,
    /// A proposal (to the group's topic).
    Proposal,
}

impl OutboxKind {
    fn code(self) -> i64 {
        match self {
            Self::Application => 1,
            Self::Commit => 2,
            Self::Welcome => 3,
            Self::Proposal => 4,
        }
    }

    fn from_code(code: i64) -> Result<Self, Error> {
        Ok(match code {
            1 => Self::Application,
            2 => Self::Commit,
            3 => Self::Welcome,
            4 => Self::Proposal,
            other => return Err(Error::Corrupt(format!("outbox kind {other}"))),
        })
    }
}

/// An entry of the outbox: exact bytes to publish.
#[derive(Clone, PartialEq, Eq)]
pub struct OutboxEntry {
    /// Its position: increasing, never reused. Publish in this order.
    pub seq: u64,
    /// The group.
    pub group_id: Vec<u8>,
    /// What it is.
    pub kind: OutboxKind,
    /// The epoch it was created in (for a Welcome: the epoch the new members join).
    pub epoch: u64,
    /// The sender's generation (application messages).
    pub generation: Option<u32>,
    /// The `MlsMessage` to publish.
    pub bytes: Vec<u8>,
    /// When it was created (Unix seconds, local clock).
    pub created_at: i64,
    /// When [`Store::mark_published`] marked it.
    pub published_at: Option<i64>,
}

impl std::fmt::Debug for OutboxEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutboxEntry")
            .field("seq", &self.seq)
            .field("kind", &self.kind)
            .field("epoch", &self.epoch)
            .field("generation", &self.generation)
            .field("bytes", &self.bytes.len())
            .field("published_at", &self.published_at)
            .finish_non_exhaustive()
    }
}

/// An own key package not used yet (its private keys are in the store).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OwnKeyPackage {
    /// Its reference (RFC 9420 `KeyPackageRef`).
    pub reference: Vec<u8>,
    /// The serialized `KeyPackage`, as published.
    pub bytes: Vec<u8>,
    /// When it was generated (Unix seconds).
    pub created_at: i64,
    /// The end of its lifetime (Unix seconds).
    pub not_after: i64,
}

/// How long acknowledged inbox entries, published outbox entries and processed-message
/// records (which recognise duplicates) are kept: at most `max_entries` of each, none older
/// than `max_age`. Unacknowledged and unpublished entries are always kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retention {
    /// The most entries of each kind kept.
    pub max_entries: u64,
    /// The oldest an entry may be.
    pub max_age: Duration,
}

impl Retention {
    /// The bound on [`Retention::max_entries`].
    pub const MAX_ENTRIES: u64 = 1_000_000;
    /// The bound on [`Retention::max_age`]: one year.
    pub const MAX_AGE: Duration = Duration::from_secs(365 * 24 * 3600);
}

impl Default for Retention {
    /// 10,000 entries, 30 days.
    fn default() -> Self {
        Self {
            max_entries: 10_000,
            max_age: Duration::from_secs(30 * 24 * 3600),
        }
    }
}

/// Now, Unix seconds (local clock: only for retention and display).
pub(crate) fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn to_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// Whether `hash` of a message of `group` was processed (and is still remembered).
pub(crate) fn was_processed(
    conn: &rusqlite::Connection,
    group: &GroupId,
    hash: &[u8; 32],
) -> Result<bool, Error> {
    conn.query_row(
        "SELECT 1 FROM eth_mls_processed WHERE group_id = ?1 AND message_hash = ?2",
        params![group.as_slice(), hash.as_slice()],
        |_| Ok(()),
    )
    .optional()
    .map(|r| r.is_some())
    .map_err(sql)
}

/// Records a processed message and stores its events (but [`Event::OwnMessage`]).
pub(crate) fn record_processed(
    conn: &rusqlite::Connection,
    group: &GroupId,
    hash: &[u8; 32],
    events: &[Event],
) -> Result<(), Error> {
    let at = now();
    conn.execute(
        "INSERT INTO eth_mls_processed (group_id, message_hash, processed_at) VALUES (?1, ?2, ?3)",
        params![group.as_slice(), hash.as_slice(), at],
    )
    .map_err(sql)?;
    for event in events {
        if matches!(event, Event::OwnMessage) {
            continue;
        }
        let encoded = rmp_serde::to_vec_named(event)
            .map_err(|e| Error::Corrupt(format!("encoding an event: {e}")))?;
        conn.execute(
            "INSERT INTO eth_mls_inbox (group_id, message_hash, event, received_at) VALUES (?1, ?2, ?3, ?4)",
            params![group.as_slice(), hash.as_slice(), encoded, at],
        )
        .map_err(sql)?;
    }
    Ok(())
}

/// Stores bytes to publish; returns the entry.
pub(crate) fn put_outbox(
    conn: &rusqlite::Connection,
    group: &GroupId,
    kind: OutboxKind,
    epoch: u64,
    generation: Option<u32>,
    bytes: Vec<u8>,
) -> Result<OutboxEntry, Error> {
    let at = now();
    conn.execute(
        "INSERT INTO eth_mls_outbox (group_id, kind, epoch, generation, bytes, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![group.as_slice(), kind.code(), epoch as i64, generation, bytes, at],
    )
    .map_err(sql)?;
    Ok(OutboxEntry {
        seq: to_u64(conn.last_insert_rowid()),
        group_id: group.as_slice().to_vec(),
        kind,
        epoch,
        generation,
        bytes,
        created_at: at,
        published_at: None,
    })
}

/// Drops an unpublished outbox entry (a discarded commit's).
pub(crate) fn drop_unpublished(conn: &rusqlite::Connection, seq: u64) -> Result<(), Error> {
    conn.execute(
        "DELETE FROM eth_mls_outbox WHERE seq = ?1 AND published_at IS NULL",
        params![seq as i64],
    )
    .map(drop)
    .map_err(sql)
}

/// Drops a deleted group's unpublished outbox entries.
pub(crate) fn drop_group_outbox(conn: &rusqlite::Connection, group: &GroupId) -> Result<(), Error> {
    conn.execute(
        "DELETE FROM eth_mls_outbox WHERE group_id = ?1 AND published_at IS NULL",
        params![group.as_slice()],
    )
    .map(drop)
    .map_err(sql)
}

/// Records an own key package.
pub(crate) fn put_key_package(
    conn: &rusqlite::Connection,
    reference: &[u8],
    bytes: &[u8],
    not_after: i64,
) -> Result<(), Error> {
    conn.execute(
        "INSERT OR REPLACE INTO eth_mls_key_package (reference, bytes, created_at, not_after) VALUES (?1, ?2, ?3, ?4)",
        params![reference, bytes, now(), not_after],
    )
    .map(drop)
    .map_err(sql)
}

const OUTBOX_COLUMNS: &str =
    "seq, group_id, kind, epoch, generation, bytes, created_at, published_at";

fn outbox_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(OutboxEntry, i64)> {
    Ok((
        OutboxEntry {
            seq: to_u64(r.get(0)?),
            group_id: r.get(1)?,
            kind: OutboxKind::Application,
            epoch: to_u64(r.get(3)?),
            generation: r.get(4)?,
            bytes: r.get(5)?,
            created_at: r.get(6)?,
            published_at: r.get(7)?,
        },
        r.get(2)?,
    ))
}

fn limit(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl<B: Backend> Store<B> {
    /// Inbox entries after `after` (a `seq`; 0 for the first), at most `limit`, in order:
    /// acknowledged ones too while retention keeps them.
    pub fn inbox(&self, after: u64, limit_to: usize) -> Result<Vec<InboxEntry>, Error> {
        let mut stmt = self
            .conn()
            .prepare(
                "SELECT seq, group_id, message_hash, event, received_at FROM eth_mls_inbox WHERE seq > ?1 ORDER BY seq LIMIT ?2",
            )
            .map_err(sql)?;
        let rows = stmt
            .query_map(params![after as i64, limit(limit_to)], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, Vec<u8>>(1)?,
                    r.get::<_, Vec<u8>>(2)?,
                    r.get::<_, Vec<u8>>(3)?,
                    r.get::<_, i64>(4)?,
                ))
            })
            .map_err(sql)?;
        rows.map(|row| {
            let (seq, group_id, hash, event, received_at) = row.map_err(sql)?;
            Ok(InboxEntry {
                seq: to_u64(seq),
                group_id,
                event: rmp_serde::from_slice(&event)
                    .map_err(|e| Error::Corrupt(format!("inbox entry {seq}: {e}")))?,
                message_hash: hash
                    .try_into()
                    .map_err(|_| Error::Corrupt(format!("inbox entry {seq}: message hash")))?,
                received_at,
            })
        })
        .collect()
    }

    /// The inbox entries not acknowledged yet, at most `limit`, in order.
    pub fn unacked(&self, limit_to: usize) -> Result<Vec<InboxEntry>, Error> {
        self.inbox(self.inbox_acked()?, limit_to)
    }

    /// The acknowledgement cursor: every entry up to this `seq` is acknowledged.
    pub fn inbox_acked(&self) -> Result<u64, Error> {
        self.conn()
            .query_row(
                "SELECT value FROM eth_mls_setting WHERE name = 'inbox_acked'",
                [],
                |r| r.get::<_, i64>(0),
            )
            .optional()
            .map(|v| v.map_or(0, to_u64))
            .map_err(sql)
    }

    /// Acknowledges every inbox entry up to `seq` (the application has them); retention
    /// may then drop them. Acknowledging an older position again changes nothing; a
    /// position past the last entry is [`Error::UnknownEntry`].
    pub fn ack(&mut self, seq: u64) -> Result<(), Error> {
        let last: Option<i64> = self
            .conn()
            .query_row("SELECT max(seq) FROM eth_mls_inbox", [], |r| r.get(0))
            .map_err(sql)?;
        let acked = self.inbox_acked()?;
        if seq <= acked {
            return Ok(());
        }
        if seq > last.map_or(0, to_u64) {
            return Err(Error::UnknownEntry(seq));
        }
        self.transact(|store| {
            let conn = store.conn();
            conn.execute(
                "INSERT OR REPLACE INTO eth_mls_setting (name, value) VALUES ('inbox_acked', ?1)",
                params![seq as i64],
            )
            .map_err(sql)?;
            prune(conn)
        })
    }

    /// The outbox entries not marked published, in order: publish them (again, after a
    /// restart), then [`Store::mark_published`].
    pub fn outbox_pending(&self) -> Result<Vec<OutboxEntry>, Error> {
        self.outbox_query(
            &format!(
                "SELECT {OUTBOX_COLUMNS} FROM eth_mls_outbox WHERE published_at IS NULL ORDER BY seq"
            ),
            params![],
        )
    }

    /// Outbox entries after `after` (a `seq`), at most `limit`, published ones too while
    /// retention keeps them.
    pub fn outbox(&self, after: u64, limit_to: usize) -> Result<Vec<OutboxEntry>, Error> {
        self.outbox_query(
            &format!(
                "SELECT {OUTBOX_COLUMNS} FROM eth_mls_outbox WHERE seq > ?1 ORDER BY seq LIMIT ?2"
            ),
            params![after as i64, limit(limit_to)],
        )
    }

    fn outbox_query(
        &self,
        query: &str,
        args: impl rusqlite::Params,
    ) -> Result<Vec<OutboxEntry>, Error> {
        let mut stmt = self.conn().prepare(query).map_err(sql)?;
        let rows = stmt.query_map(args, outbox_row).map_err(sql)?;
        rows.map(|row| {
            let (mut entry, kind) = row.map_err(sql)?;
            entry.kind = OutboxKind::from_code(kind)?;
            Ok(entry)
        })
        .collect()
    }

    /// Marks an outbox entry published (idempotent). An unknown `seq` (never created, or
    /// dropped with a discarded commit) is [`Error::UnknownEntry`].
    pub fn mark_published(&mut self, seq: u64) -> Result<(), Error> {
        self.transact(|store| {
            let conn = store.conn();
            let changed = conn
                .execute(
                    "UPDATE eth_mls_outbox SET published_at = coalesce(published_at, ?2) WHERE seq = ?1",
                    params![seq as i64, now()],
                )
                .map_err(sql)?;
            if changed == 0 {
                return Err(Error::UnknownEntry(seq));
            }
            prune(conn)
        })
    }

    /// The own key packages not used yet (no Welcome consumed them), oldest first: compare
    /// with what was published to tell which still need publishing.
    pub fn unused_key_packages(&self) -> Result<Vec<OwnKeyPackage>, Error> {
        let mut stmt = self
            .conn()
            .prepare(
                "SELECT reference, bytes, created_at, not_after FROM eth_mls_key_package ORDER BY created_at, reference",
            )
            .map_err(sql)?;
        let rows: Vec<OwnKeyPackage> = stmt
            .query_map([], |r| {
                Ok(OwnKeyPackage {
                    reference: r.get(0)?,
                    bytes: r.get(1)?,
                    created_at: r.get(2)?,
                    not_after: r.get(3)?,
                })
            })
            .map_err(sql)?
            .collect::<Result<_, _>>()
            .map_err(sql)?;
        let provider = self.provider();
        let mut unused = Vec::with_capacity(rows.len());
        for kp in rows {
            use tls_codec::{Deserialize as _, Serialize as _};
            // A KeyPackageRef's wire form is its bytes with a variable-length prefix.
            let reference = tls_codec::VLBytes::new(kp.reference.clone())
                .tls_serialize_detached()
                .ok()
                .and_then(|wire| KeyPackageRef::tls_deserialize_exact(wire).ok())
                .ok_or_else(|| Error::Corrupt("a key package reference".into()))?;
            let bundle: Option<KeyPackageBundle> = provider
                .storage_provider()
                .key_package(&reference)
                .map_err(sql)?;
            if bundle.is_some() {
                unused.push(kp);
            }
        }
        Ok(unused)
    }

    /// Forgets the records of own key packages openmls no longer holds (a Welcome used
    /// them).
    pub(crate) fn forget_used_key_packages(&self) -> Result<(), Error> {
        let unused: Vec<Vec<u8>> = self
            .unused_key_packages()?
            .into_iter()
            .map(|kp| kp.reference)
            .collect();
        let mut stmt = self
            .conn()
            .prepare("SELECT reference FROM eth_mls_key_package")
            .map_err(sql)?;
        let all: Vec<Vec<u8>> = stmt
            .query_map([], |r| r.get(0))
            .map_err(sql)?
            .collect::<Result<_, _>>()
            .map_err(sql)?;
        for reference in all.iter().filter(|r| !unused.contains(r)) {
            self.conn()
                .execute(
                    "DELETE FROM eth_mls_key_package WHERE reference = ?1",
                    params![reference],
                )
                .map_err(sql)?;
        }
        Ok(())
    }

    /// The retention of acknowledged and published entries.
    pub fn retention(&self) -> Result<Retention, Error> {
        let get = |name: &str| -> Result<Option<i64>, Error> {
            self.conn()
                .query_row(
                    "SELECT value FROM eth_mls_setting WHERE name = ?1",
                    params![name],
                    |r| r.get(0),
                )
                .optional()
                .map_err(sql)
        };
        let default = Retention::default();
        Ok(Retention {
            max_entries: get("retention_entries")?.map_or(default.max_entries, to_u64),
            max_age: get("retention_age")?
                .map_or(default.max_age, |s| Duration::from_secs(to_u64(s))),
        })
    }

    /// Sets the retention (persisted); beyond [`Retention::MAX_ENTRIES`] or
    /// [`Retention::MAX_AGE`] is [`Error::Retention`]. Prunes at once.
    pub fn set_retention(&mut self, retention: Retention) -> Result<(), Error> {
        if retention.max_entries > Retention::MAX_ENTRIES {
            return Err(Error::Retention(format!(
                "{} entries is more than the bound {}",
                retention.max_entries,
                Retention::MAX_ENTRIES
            )));
        }
        if retention.max_age > Retention::MAX_AGE {
            return Err(Error::Retention(format!(
                "{} s is longer than the bound {} s",
                retention.max_age.as_secs(),
                Retention::MAX_AGE.as_secs()
            )));
        }
        self.transact(|store| {
            let conn = store.conn();
            for (name, value) in [
                ("retention_entries", retention.max_entries as i64),
                ("retention_age", retention.max_age.as_secs() as i64),
            ] {
                conn.execute(
                    "INSERT OR REPLACE INTO eth_mls_setting (name, value) VALUES (?1, ?2)",
                    params![name, value],
                )
                .map_err(sql)?;
            }
            prune(conn)
        })
    }
}

/// Drops acknowledged inbox entries, published outbox entries and processed-message records
/// beyond the retention.
fn prune(conn: &rusqlite::Connection) -> Result<(), Error> {
    let setting = |name: &str, default: i64| -> Result<i64, Error> {
        conn.query_row(
            "SELECT value FROM eth_mls_setting WHERE name = ?1",
            params![name],
            |r| r.get(0),
        )
        .optional()
        .map(|v| v.unwrap_or(default))
        .map_err(sql)
    };
    let default = Retention::default();
    let entries = setting("retention_entries", default.max_entries as i64)?;
    let oldest = now() - setting("retention_age", default.max_age.as_secs() as i64)?;
    let acked = setting("inbox_acked", 0)?;
    conn.execute(
        "DELETE FROM eth_mls_inbox WHERE seq <= ?1 AND (received_at < ?2 OR seq <= coalesce(
            (SELECT seq FROM eth_mls_inbox WHERE seq <= ?1 ORDER BY seq DESC LIMIT 1 OFFSET ?3), -1))",
        params![acked, oldest, entries],
    )
    .map_err(sql)?;
    conn.execute(
        "DELETE FROM eth_mls_outbox WHERE published_at IS NOT NULL AND (published_at < ?1 OR seq <= coalesce(
            (SELECT seq FROM eth_mls_outbox WHERE published_at IS NOT NULL ORDER BY seq DESC LIMIT 1 OFFSET ?2), -1))",
        params![oldest, entries],
    )
    .map_err(sql)?;
    conn.execute(
        "DELETE FROM eth_mls_processed WHERE processed_at < ?1 OR rowid <= coalesce(
            (SELECT rowid FROM eth_mls_processed ORDER BY rowid DESC LIMIT 1 OFFSET ?2), -1)",
        params![oldest, entries],
    )
    .map_err(sql)?;
    Ok(())
}
