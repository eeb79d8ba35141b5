//! [`SplitStorage`]: openmls's SQLite storage, with its message-secrets and tree records split
//! so that a message or a commit writes only what it changed.
//!
//! openmls (patched, `vendor/README.md`) stores its message secrets as two records: the current
//! epoch's secrets, written after every message, and the kept past epochs' secrets *with their
//! member lists* (leaf nodes with their credentials: about 1.4 MB at 1000 members with two past
//! epochs), written at a merge and when a late message moves a past epoch's ratchet. The
//! member lists never change once an epoch is past, so here they are cut out of the past
//! epochs' record, in runs of 32 members, and kept once each, by SHA-256, in
//! `eth_mls_secret_blob`; the record keeps the rest and where each run goes. A new past epoch's
//! list then adds only the runs its commit changed. The tree (written at every merge) is cut
//! the same way into runs of 32 leaves and of 32 parents, so a commit, which changes one leaf
//! and the parents on its path, rewrites a few runs instead of the whole tree. Records written
//! before (whole, or a whole store of secrets split) still read, and a record of another
//! layout (the current epoch's secrets) is written whole.
//!
//! Everything else is openmls_sqlite_storage's, unchanged, on the same connection, so it is in
//! the same transaction as the rest of an operation.

use openmls_sqlite_storage::{Codec, Connection, SqliteStorageProvider};
use openmls_traits::storage::{CURRENT_VERSION, StorageProvider, traits};
use rusqlite::{OptionalExtension, params};
use sha2::{Digest, Sha256};

use crate::store::BinaryCodec;

type SqlError = rusqlite::Error;

/// First bytes of a split record.
const MAGIC: &[u8; 4] = b"EMS1";

/// openmls's storage on a borrowed connection, message secrets split (see the module docs).
pub struct SplitStorage<'a> {
    inner: SqliteStorageProvider<BinaryCodec, &'a Connection>,
    conn: &'a Connection,
}

impl std::fmt::Debug for SplitStorage<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SplitStorage")
    }
}

impl<'a> SplitStorage<'a> {
    /// The storage on `conn`.
    pub fn new(conn: &'a Connection) -> Self {
        SplitStorage {
            inner: SqliteStorageProvider::new(conn),
            conn,
        }
    }
}

fn codec_error(e: impl std::error::Error + Send + Sync + 'static) -> SqlError {
    SqlError::ToSqlConversionFailure(Box::new(e))
}

/// A split record as openmls_sqlite_storage stores it: opaque bytes.
#[derive(Debug)]
struct Split(Vec<u8>);

impl serde::Serialize for Split {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for Split {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Split;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a split message-secrets record")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Split, E> {
                if v.starts_with(MAGIC) {
                    Ok(Split(v.to_vec()))
                } else {
                    Err(E::custom("not a split record"))
                }
            }
        }
        d.deserialize_bytes(V)
    }
}

impl traits::MessageSecrets<CURRENT_VERSION> for Split {}
impl traits::TreeSync<CURRENT_VERSION> for Split {}
impl openmls_traits::storage::Entity<CURRENT_VERSION> for Split {}

/// MessagePack, as far as finding where values end: the end of the value at `pos`.
fn skip(b: &[u8], pos: usize) -> Option<usize> {
    let m = *b.get(pos)?;
    let p = pos + 1;
    let be = |at: usize, n: usize| -> Option<usize> {
        let s = b.get(at..at + n)?;
        Some(s.iter().fold(0usize, |acc, x| (acc << 8) | usize::from(*x)))
    };
    let items = |mut at: usize, n: usize| -> Option<usize> {
        for _ in 0..n {
            at = skip(b, at)?;
        }
        Some(at)
    };
    let end = match m {
        0x00..=0x7f | 0xe0..=0xff | 0xc0 | 0xc2 | 0xc3 => p,
        0x80..=0x8f => items(p, 2 * usize::from(m & 0x0f))?,
        0x90..=0x9f => items(p, usize::from(m & 0x0f))?,
        0xa0..=0xbf => p + usize::from(m & 0x1f),
        0xc4 | 0xd9 => p + 1 + be(p, 1)?,
        0xc5 | 0xda => p + 2 + be(p, 2)?,
        0xc6 | 0xdb => p + 4 + be(p, 4)?,
        0xc7 => p + 2 + be(p, 1)?,
        0xc8 => p + 3 + be(p, 2)?,
        0xc9 => p + 5 + be(p, 4)?,
        0xca => p + 4,
        0xcb => p + 8,
        0xcc | 0xd0 => p + 1,
        0xcd | 0xd1 => p + 2,
        0xce | 0xd2 => p + 4,
        0xcf | 0xd3 => p + 8,
        0xd4 => p + 2,
        0xd5 => p + 3,
        0xd6 => p + 5,
        0xd7 => p + 9,
        0xd8 => p + 17,
        0xdc => items(p + 2, be(p, 2)?)?,
        0xdd => items(p + 4, be(p, 4)?)?,
        0xde => items(p + 2, 2 * be(p, 2)?)?,
        0xdf => items(p + 4, 2 * be(p, 4)?)?,
        0xc1 => return None,
    };
    (end <= b.len()).then_some(end)
}

/// The length of the array at `pos` and where its first element starts.
fn array(b: &[u8], pos: usize) -> Option<(usize, usize)> {
    let m = *b.get(pos)?;
    match m {
        0x90..=0x9f => Some((usize::from(m & 0x0f), pos + 1)),
        0xdc => Some((
            usize::from(u16::from_be_bytes(
                b.get(pos + 1..pos + 3)?.try_into().ok()?,
            )),
            pos + 3,
        )),
        0xdd => Some((
            usize::try_from(u32::from_be_bytes(
                b.get(pos + 1..pos + 5)?.try_into().ok()?,
            ))
            .ok()?,
            pos + 5,
        )),
        _ => None,
    }
}

/// The byte ranges of the past epochs' member lists in an encoded record of them (openmls
/// patched, vendor/README.md: `[layout, [[epoch, secrets, leaves], …]]`, `layout` a string) or
/// in a whole `MessageSecretsStore` written before that patch (`[max_epochs, [[epoch,
/// secrets, leaves], …], secrets]`); `leaves` an array of members, or a `bin` of their TLS
/// encoding, cut in runs of members. `None` when the bytes have neither layout (the record of
/// the current epoch's secrets, which has no member list).
fn member_lists(b: &[u8]) -> Option<Vec<std::ops::Range<usize>>> {
    let (fields, at) = array(b, 0)?;
    let whole_store = match (fields, b.get(at)?) {
        (2, 0xa0..=0xbf | 0xd9..=0xdb) => false,
        (3, 0x00..=0x7f | 0xcc..=0xcf) => true,
        _ => return None,
    };
    let at = skip(b, at)?;
    let (trees, mut at) = array(b, at)?;
    let mut ranges = Vec::with_capacity(trees);
    for _ in 0..trees {
        let (3, t) = array(b, at)? else {
            return None;
        };
        let t = skip(b, t)?;
        let t = skip(b, t)?;
        let end = skip(b, t)?;
        // A list of members, or (openmls patched, vendor/README.md) its encoding as one blob,
        // cut in runs of members: the next epoch's list differs in the runs of the members a
        // commit changed, and shares the others.
        let header = match b.get(t)? {
            0xc4 => Some(2),
            0xc5 => Some(3),
            0xc6 => Some(5),
            _ => None,
        };
        match header.and_then(|h| member_runs(b, t + h, end)) {
            Some(runs) => ranges.extend(runs),
            None if header.is_some() => ranges.push(t..end),
            None => {
                array(b, t)?;
                ranges.push(t..end);
            }
        }
        at = end;
    }
    let end = if whole_store { skip(b, at)? } else { at };
    (end == b.len()).then_some(ranges)
}

/// Nodes per piece of the tree: a commit changes one leaf and the parents on its path, so
/// it rewrites a few pieces, not the whole tree.
const TREE_RUN: usize = 32;

/// An MLS variable-length vector's length prefix at `pos`: where its content starts and ends.
fn vl_bytes(b: &[u8], pos: usize) -> Option<usize> {
    let first = *b.get(pos)?;
    let (prefix, mut len) = match first >> 6 {
        0 => (1, usize::from(first & 0x3f)),
        1 => (2, usize::from(first & 0x3f)),
        2 => (4, usize::from(first & 0x3f)),
        _ => return None,
    };
    for i in 1..prefix {
        len = (len << 8) | usize::from(*b.get(pos + i)?);
    }
    pos.checked_add(prefix)?.checked_add(len)
}

/// The runs of `TREE_RUN` members in a member list's TLS encoding at `start..end` (openmls
/// patched: a u32 count, then each member's leaf index, credential type and content,
/// encryption key and signature key), or `None` when the bytes are not that.
fn member_runs(b: &[u8], start: usize, end: usize) -> Option<Vec<std::ops::Range<usize>>> {
    let count = u32::from_be_bytes(b.get(start..start + 4)?.try_into().ok()?) as usize;
    let mut at = start + 4;
    let mut runs = Vec::with_capacity(count.div_ceil(TREE_RUN).min(1 << 16));
    let mut left = count;
    while left > 0 {
        let run_start = at;
        for _ in 0..left.min(TREE_RUN) {
            // Leaf index and credential type, then three variable-length vectors.
            at = vl_bytes(b, at + 6)?;
            at = vl_bytes(b, at)?;
            at = vl_bytes(b, at)?;
            if at > end {
                return None;
            }
        }
        runs.push(run_start..at);
        left -= left.min(TREE_RUN);
    }
    (at == end).then_some(runs)
}

/// The pieces of an encoded `TreeSync` (`[[leaf_nodes, parent_nodes, default_leaf,
/// default_parent], tree_hash]`): runs of `TREE_RUN` consecutive leaves and of parents; `None`
/// for another layout.
fn tree_runs(b: &[u8]) -> Option<Vec<std::ops::Range<usize>>> {
    let (2, at) = array(b, 0)? else {
        return None;
    };
    let (4, mut at) = array(b, at)? else {
        return None;
    };
    let mut ranges = Vec::new();
    for _ in 0..2 {
        let (n, mut e) = array(b, at)?;
        let mut left = n;
        while left > 0 {
            let start = e;
            for _ in 0..left.min(TREE_RUN) {
                e = skip(b, e)?;
            }
            ranges.push(start..e);
            left -= left.min(TREE_RUN);
        }
        at = e;
    }
    let at = skip(b, at)?;
    let at = skip(b, at)?;
    let end = skip(b, at)?;
    (end == b.len()).then_some(ranges)
}

/// A piece cut out of a record (a run of a member list or of the tree): its SHA-256 and its
/// bytes.
type Piece<'b> = ([u8; 32], &'b [u8]);

/// How many bytes of pieces [`HashCache`] keeps before it starts again empty.
const HASH_CACHE_BYTES: usize = 64 << 20;

/// The pieces last written for each group and kind, with their SHA-256, in this process.
///
/// A message rewrites the same past epochs' member lists every time, and a merge most runs of
/// the tree unchanged: a piece equal, byte for byte, to the one at its place last time has that
/// one's hash, and comparing costs a fraction of hashing. This only saves work: a piece that
/// differs (or is not cached) is hashed, so the cache can never give a wrong hash.
#[derive(Default)]
struct HashCache {
    bytes: usize,
    pieces: std::collections::HashMap<(Vec<u8>, u8), Vec<CachedPiece>>,
}

/// A piece's bytes and SHA-256.
type CachedPiece = (Vec<u8>, [u8; 32]);

static HASH_CACHE: std::sync::LazyLock<std::sync::Mutex<HashCache>> =
    std::sync::LazyLock::new(Default::default);

/// The SHA-256 of each piece of `b` at `ranges`, those of group `key`'s pieces of `kind` unchanged
/// since the last time taken from [`HASH_CACHE`].
fn piece_hashes(
    key: &[u8],
    kind: u8,
    b: &[u8],
    ranges: &[std::ops::Range<usize>],
) -> Vec<[u8; 32]> {
    // A poisoned cache is still a map of pieces to their hashes, each entry written whole.
    let mut cache = HASH_CACHE.lock().unwrap_or_else(|e| e.into_inner());
    let mut before = cache
        .pieces
        .remove(&(key.to_vec(), kind))
        .unwrap_or_default();
    cache.bytes -= before.iter().map(|(p, _)| p.len()).sum::<usize>();
    let mut now = Vec::with_capacity(ranges.len());
    for (i, r) in ranges.iter().enumerate() {
        let piece = &b[r.clone()];
        match before.get_mut(i) {
            Some((old, hash)) if old.as_slice() == piece => now.push((std::mem::take(old), *hash)),
            _ => now.push((piece.to_vec(), Sha256::digest(piece).into())),
        }
    }
    let hashes = now.iter().map(|(_, h)| *h).collect();
    let size: usize = now.iter().map(|(p, _)| p.len()).sum();
    if cache.bytes + size > HASH_CACHE_BYTES {
        *cache = HashCache::default();
    }
    if size <= HASH_CACHE_BYTES {
        cache.bytes += size;
        cache.pieces.insert((key.to_vec(), kind), now);
    }
    hashes
}

/// `value` encoded, the buffer reserved at the size of the last record of `kind` written under
/// `key` on this thread (a record keeps about its size: no growing and copying step by step).
fn encode<T: serde::Serialize>(key: &[u8], kind: u8, value: &T) -> Result<Vec<u8>, SqlError> {
    thread_local! {
        static LAST: std::cell::RefCell<std::collections::HashMap<(Vec<u8>, u8), usize>> =
            Default::default();
    }
    let last = LAST.with(|l| l.borrow().get(&(key.to_vec(), kind)).copied());
    let mut out = Vec::with_capacity(last.unwrap_or(0));
    BinaryCodec::encode_into(value, &mut out).map_err(codec_error)?;
    if last != Some(out.len()) {
        LAST.with(|l| {
            let mut l = l.borrow_mut();
            // Sizes of groups long gone are not kept forever.
            if l.len() >= 1024 {
                l.clear();
            }
            l.insert((key.to_vec(), kind), out.len());
        });
    }
    Ok(out)
}

/// A split record: `MAGIC`, the number of pieces, each piece's offset (u64) and SHA-256, then
/// the bytes without the pieces; `hashes` are the pieces' SHA-256, in order.
fn split<'b>(
    b: &'b [u8],
    ranges: &[std::ops::Range<usize>],
    hashes: &[[u8; 32]],
) -> (Vec<u8>, Vec<Piece<'b>>) {
    let mut record = MAGIC.to_vec();
    record.extend_from_slice(&(ranges.len() as u32).to_be_bytes());
    let mut pieces = Vec::with_capacity(ranges.len());
    for (r, hash) in ranges.iter().zip(hashes) {
        let piece = &b[r.clone()];
        let hash = *hash;
        record.extend_from_slice(&(r.start as u64).to_be_bytes());
        record.extend_from_slice(&hash);
        pieces.push((hash, piece));
    }
    let mut at = 0;
    for r in ranges {
        record.extend_from_slice(&b[at..r.start]);
        at = r.end;
    }
    record.extend_from_slice(&b[at..]);
    (record, pieces)
}

/// The SHA-256 of each piece a split record refers to, in order; `None` if it is not one.
fn record_hashes(record: &[u8]) -> Option<Vec<[u8; 32]>> {
    let body = record.strip_prefix(MAGIC.as_slice())?;
    let n = u32::from_be_bytes(body.get(..4)?.try_into().ok()?) as usize;
    let entries = body.get(4..4 + n.checked_mul(40)?)?;
    entries
        .chunks_exact(40)
        .map(|e| e[8..].try_into().ok())
        .collect()
}

/// The whole record again from a split one, the pieces read with `piece`.
fn join(
    record: &[u8],
    mut piece: impl FnMut(&[u8; 32]) -> Result<Vec<u8>, SqlError>,
) -> Result<Vec<u8>, SqlError> {
    let corrupt = || {
        codec_error(crate::store::CodecError::new(
            "corrupt split message secrets",
        ))
    };
    let body = record.strip_prefix(MAGIC.as_slice()).ok_or_else(corrupt)?;
    let n = u32::from_be_bytes(
        body.get(..4)
            .ok_or_else(corrupt)?
            .try_into()
            .map_err(|_| corrupt())?,
    ) as usize;
    let mut at = 4;
    let mut pieces = Vec::with_capacity(n.min(64));
    for _ in 0..n {
        let entry = body.get(at..at + 40).ok_or_else(corrupt)?;
        let offset = u64::from_be_bytes(entry[..8].try_into().map_err(|_| corrupt())?);
        let hash: [u8; 32] = entry[8..].try_into().map_err(|_| corrupt())?;
        pieces.push((usize::try_from(offset).map_err(|_| corrupt())?, hash));
        at += 40;
    }
    let rest = &body[at..];
    let mut out = Vec::with_capacity(rest.len() + 1024);
    let mut taken = 0;
    for (offset, hash) in pieces {
        // `offset` is where the piece starts in the whole record: the rest's bytes before it
        // are those not yet taken.
        let before = offset.checked_sub(out.len()).ok_or_else(corrupt)?;
        out.extend_from_slice(rest.get(taken..taken + before).ok_or_else(corrupt)?);
        taken += before;
        let bytes = piece(&hash)?;
        if <[u8; 32]>::from(Sha256::digest(&bytes)) != hash {
            return Err(corrupt());
        }
        out.extend_from_slice(&bytes);
    }
    out.extend_from_slice(&rest[taken..]);
    Ok(out)
}

/// The kind of a piece: a past epoch's member list, or a run of the tree's nodes.
const SECRETS: u8 = 0;
const TREE: u8 = 1;

impl SplitStorage<'_> {
    fn key<GroupId: traits::GroupId<CURRENT_VERSION>>(
        group_id: &GroupId,
    ) -> Result<Vec<u8>, SqlError> {
        BinaryCodec::to_vec(group_id).map_err(codec_error)
    }

    /// Stores the pieces of `bytes` at `ranges` (those not stored yet), deletes the group's
    /// pieces of `kind` no longer used, and returns the record that refers to them.
    ///
    /// `before` is the group's split record of `kind` as stored now, if any: the pieces stored
    /// are exactly those it refers to (every write keeps them so), so what is stored is known
    /// without a query; without it (first write, or a record written whole) they are listed.
    fn put_pieces(
        &self,
        key: &[u8],
        kind: u8,
        bytes: &[u8],
        ranges: &[std::ops::Range<usize>],
        before: Option<Vec<u8>>,
    ) -> Result<Vec<u8>, SqlError> {
        let (record, pieces) = split(bytes, ranges, &piece_hashes(key, kind, bytes, ranges));
        let stored: std::collections::HashSet<[u8; 32]> =
            match before.as_deref().and_then(record_hashes) {
                Some(hashes) => hashes.into_iter().collect(),
                None => {
                    let mut listed = self.conn.prepare_cached(
                        "SELECT hash FROM eth_mls_secret_blob WHERE group_id = ?1 AND kind = ?2",
                    )?;
                    let hashes: Vec<Vec<u8>> = listed
                        .query_map(params![key, kind], |r| r.get(0))?
                        .collect::<Result<_, _>>()?;
                    // A row whose hash is not 32 bytes is no piece of ours: it stays unlisted.
                    hashes
                        .into_iter()
                        .filter_map(|h| <[u8; 32]>::try_from(h.as_slice()).ok())
                        .collect()
                }
            };
        let now: std::collections::HashSet<[u8; 32]> = pieces.iter().map(|(h, _)| *h).collect();
        let mut insert = self.conn.prepare_cached(
            "INSERT OR IGNORE INTO eth_mls_secret_blob (group_id, kind, hash, bytes) \
             VALUES (?1, ?2, ?3, ?4)",
        )?;
        for (hash, piece) in pieces.iter().filter(|(h, _)| !stored.contains(h)) {
            insert.execute(params![key, kind, hash.as_slice(), piece])?;
        }
        let mut delete = self.conn.prepare_cached(
            "DELETE FROM eth_mls_secret_blob WHERE group_id = ?1 AND kind = ?2 AND hash = ?3",
        )?;
        for hash in stored.difference(&now) {
            delete.execute(params![key, kind, hash.as_slice()])?;
        }
        Ok(record)
    }

    /// The whole record again from a split one.
    fn whole(&self, key: &[u8], kind: u8, record: &[u8]) -> Result<Vec<u8>, SqlError> {
        let mut get = self.conn.prepare_cached(
            "SELECT bytes FROM eth_mls_secret_blob WHERE group_id = ?1 AND kind = ?2 AND hash = ?3",
        )?;
        join(record, |hash| {
            get.query_row(params![key, kind, hash.as_slice()], |r| {
                r.get::<_, Vec<u8>>(0)
            })
            .optional()?
            .ok_or_else(|| {
                codec_error(crate::store::CodecError::new(
                    "a piece of a split record is missing",
                ))
            })
        })
    }
}

impl StorageProvider<CURRENT_VERSION> for SplitStorage<'_> {
    type Error = SqlError;

    fn write_message_secrets<
        GroupId: traits::GroupId<CURRENT_VERSION>,
        MessageSecrets: traits::MessageSecrets<CURRENT_VERSION>,
    >(
        &self,
        group_id: &GroupId,
        message_secrets: &MessageSecrets,
    ) -> Result<(), SqlError> {
        let key = Self::key(group_id)?;
        let bytes = encode(&key, SECRETS, message_secrets)?;
        let Some(ranges) = member_lists(&bytes) else {
            // A record with no member list (the current epoch's secrets) refers to no piece:
            // those of a split record it replaces (a whole store written before openmls was
            // patched, under the same key) go.
            self.conn
                .prepare_cached(
                    "DELETE FROM eth_mls_secret_blob WHERE group_id = ?1 AND kind = ?2",
                )?
                .execute(params![key, SECRETS])?;
            // openmls_sqlite_storage's own row (0.3, provider version 1), written from the
            // bytes already encoded (it would encode the value again, and prepare its
            // statement anew): it reads it back as it wrote it (tested through it). Updated in
            // place, not replaced (`INSERT OR REPLACE` deletes the row and inserts it anew,
            // rewriting its index entry and another table page): a third fewer pages written
            // per message.
            self.conn
                .prepare_cached(
                    "INSERT INTO openmls_group_data \
                     (group_id, data_type, group_data, provider_version) \
                     VALUES (?1, 'message_secrets', ?2, 1) \
                     ON CONFLICT (group_id, data_type) DO UPDATE \
                     SET group_data = excluded.group_data, provider_version = 1",
                )?
                .execute(params![key, bytes])?;
            return Ok(());
        };
        let before = match self.inner.message_secrets::<GroupId, Split>(group_id) {
            Ok(Some(Split(record))) => Some(record),
            _ => None,
        };
        let record = self.put_pieces(&key, SECRETS, &bytes, &ranges, before)?;
        self.inner
            .write_message_secrets::<GroupId, Split>(group_id, &Split(record))
    }

    fn message_secrets<
        GroupId: traits::GroupId<CURRENT_VERSION>,
        MessageSecrets: traits::MessageSecrets<CURRENT_VERSION>,
    >(
        &self,
        group_id: &GroupId,
    ) -> Result<Option<MessageSecrets>, SqlError> {
        // A record written whole (before the split, or of another layout) does not read as a
        // split one: then it is read as it is.
        let Ok(Some(Split(record))) = self.inner.message_secrets::<GroupId, Split>(group_id) else {
            return self
                .inner
                .message_secrets::<GroupId, MessageSecrets>(group_id);
        };
        let whole = self.whole(&Self::key(group_id)?, SECRETS, &record)?;
        BinaryCodec::from_slice(&whole)
            .map(Some)
            .map_err(codec_error)
    }

    fn delete_message_secrets<GroupId: traits::GroupId<CURRENT_VERSION>>(
        &self,
        group_id: &GroupId,
    ) -> Result<(), SqlError> {
        self.conn.execute(
            "DELETE FROM eth_mls_secret_blob WHERE group_id = ?1 AND kind = ?2",
            params![Self::key(group_id)?, SECRETS],
        )?;
        self.inner.delete_message_secrets(group_id)
    }

    fn write_mls_join_config<
        GroupId: traits::GroupId<CURRENT_VERSION>,
        MlsGroupJoinConfig: traits::MlsGroupJoinConfig<CURRENT_VERSION>,
    >(
        &self,
        group_id: &GroupId,
        config: &MlsGroupJoinConfig,
    ) -> Result<(), SqlError> {
        self.inner
            .write_mls_join_config::<GroupId, MlsGroupJoinConfig>(group_id, config)
    }

    fn append_own_leaf_node<
        GroupId: traits::GroupId<CURRENT_VERSION>,
        LeafNode: traits::LeafNode<CURRENT_VERSION>,
    >(
        &self,
        group_id: &GroupId,
        leaf_node: &LeafNode,
    ) -> Result<(), SqlError> {
        self.inner
            .append_own_leaf_node::<GroupId, LeafNode>(group_id, leaf_node)
    }

    fn queue_proposal<
        GroupId: traits::GroupId<CURRENT_VERSION>,
        ProposalRef: traits::ProposalRef<CURRENT_VERSION>,
        QueuedProposal: traits::QueuedProposal<CURRENT_VERSION>,
    >(
        &self,
        group_id: &GroupId,
        proposal_ref: &ProposalRef,
        proposal: &QueuedProposal,
    ) -> Result<(), SqlError> {
        self.inner
            .queue_proposal::<GroupId, ProposalRef, QueuedProposal>(
                group_id,
                proposal_ref,
                proposal,
            )
    }

    fn write_tree<
        GroupId: traits::GroupId<CURRENT_VERSION>,
        TreeSync: traits::TreeSync<CURRENT_VERSION>,
    >(
        &self,
        group_id: &GroupId,
        tree: &TreeSync,
    ) -> Result<(), SqlError> {
        let key = Self::key(group_id)?;
        let bytes = encode(&key, TREE, tree)?;
        let Some(ranges) = tree_runs(&bytes) else {
            return self.inner.write_tree::<GroupId, TreeSync>(group_id, tree);
        };
        let before = match self.inner.tree::<GroupId, Split>(group_id) {
            Ok(Some(Split(record))) => Some(record),
            _ => None,
        };
        let record = self.put_pieces(&key, TREE, &bytes, &ranges, before)?;
        self.inner
            .write_tree::<GroupId, Split>(group_id, &Split(record))
    }

    fn write_interim_transcript_hash<
        GroupId: traits::GroupId<CURRENT_VERSION>,
        InterimTranscriptHash: traits::InterimTranscriptHash<CURRENT_VERSION>,
    >(
        &self,
        group_id: &GroupId,
        interim_transcript_hash: &InterimTranscriptHash,
    ) -> Result<(), SqlError> {
        self.inner
            .write_interim_transcript_hash::<GroupId, InterimTranscriptHash>(
                group_id,
                interim_transcript_hash,
            )
    }

    fn write_context<
        GroupId: traits::GroupId<CURRENT_VERSION>,
        GroupContext: traits::GroupContext<CURRENT_VERSION>,
    >(
        &self,
        group_id: &GroupId,
        group_context: &GroupContext,
    ) -> Result<(), SqlError> {
        self.inner
            .write_context::<GroupId, GroupContext>(group_id, group_context)
    }

    fn write_confirmation_tag<
        GroupId: traits::GroupId<CURRENT_VERSION>,
        ConfirmationTag: traits::ConfirmationTag<CURRENT_VERSION>,
    >(
        &self,
        group_id: &GroupId,
        confirmation_tag: &ConfirmationTag,
    ) -> Result<(), SqlError> {
        self.inner
            .write_confirmation_tag::<GroupId, ConfirmationTag>(group_id, confirmation_tag)
    }

    fn write_group_state<
        GroupState: traits::GroupState<CURRENT_VERSION>,
        GroupId: traits::GroupId<CURRENT_VERSION>,
    >(
        &self,
        group_id: &GroupId,
        group_state: &GroupState,
    ) -> Result<(), SqlError> {
        self.inner
            .write_group_state::<GroupState, GroupId>(group_id, group_state)
    }

    fn write_resumption_psk_store<
        GroupId: traits::GroupId<CURRENT_VERSION>,
        ResumptionPskStore: traits::ResumptionPskStore<CURRENT_VERSION>,
    >(
        &self,
        group_id: &GroupId,
        resumption_psk_store: &ResumptionPskStore,
    ) -> Result<(), SqlError> {
        self.inner
            .write_resumption_psk_store::<GroupId, ResumptionPskStore>(
                group_id,
                resumption_psk_store,
            )
    }

    fn write_own_leaf_index<
        GroupId: traits::GroupId<CURRENT_VERSION>,
        LeafNodeIndex: traits::LeafNodeIndex<CURRENT_VERSION>,
    >(
        &self,
        group_id: &GroupId,
        own_leaf_index: &LeafNodeIndex,
    ) -> Result<(), SqlError> {
        self.inner
            .write_own_leaf_index::<GroupId, LeafNodeIndex>(group_id, own_leaf_index)
    }

    fn write_group_epoch_secrets<
        GroupId: traits::GroupId<CURRENT_VERSION>,
        GroupEpochSecrets: traits::GroupEpochSecrets<CURRENT_VERSION>,
    >(
        &self,
        group_id: &GroupId,
        group_epoch_secrets: &GroupEpochSecrets,
    ) -> Result<(), SqlError> {
        self.inner
            .write_group_epoch_secrets::<GroupId, GroupEpochSecrets>(group_id, group_epoch_secrets)
    }

    fn write_signature_key_pair<
        SignaturePublicKey: traits::SignaturePublicKey<CURRENT_VERSION>,
        SignatureKeyPair: traits::SignatureKeyPair<CURRENT_VERSION>,
    >(
        &self,
        public_key: &SignaturePublicKey,
        signature_key_pair: &SignatureKeyPair,
    ) -> Result<(), SqlError> {
        self.inner
            .write_signature_key_pair::<SignaturePublicKey, SignatureKeyPair>(
                public_key,
                signature_key_pair,
            )
    }

    fn write_encryption_key_pair<
        EncryptionKey: traits::EncryptionKey<CURRENT_VERSION>,
        HpkeKeyPair: traits::HpkeKeyPair<CURRENT_VERSION>,
    >(
        &self,
        public_key: &EncryptionKey,
        key_pair: &HpkeKeyPair,
    ) -> Result<(), SqlError> {
        self.inner
            .write_encryption_key_pair::<EncryptionKey, HpkeKeyPair>(public_key, key_pair)
    }

    fn write_encryption_epoch_key_pairs<
        GroupId: traits::GroupId<CURRENT_VERSION>,
        EpochKey: traits::EpochKey<CURRENT_VERSION>,
        HpkeKeyPair: traits::HpkeKeyPair<CURRENT_VERSION>,
    >(
        &self,
        group_id: &GroupId,
        epoch: &EpochKey,
        leaf_index: u32,
        key_pairs: &[HpkeKeyPair],
    ) -> Result<(), SqlError> {
        self.inner
            .write_encryption_epoch_key_pairs::<GroupId, EpochKey, HpkeKeyPair>(
                group_id, epoch, leaf_index, key_pairs,
            )
    }

    fn write_key_package<
        HashReference: traits::HashReference<CURRENT_VERSION>,
        KeyPackage: traits::KeyPackage<CURRENT_VERSION>,
    >(
        &self,
        hash_ref: &HashReference,
        key_package: &KeyPackage,
    ) -> Result<(), SqlError> {
        self.inner
            .write_key_package::<HashReference, KeyPackage>(hash_ref, key_package)
    }

    fn write_psk<
        PskId: traits::PskId<CURRENT_VERSION>,
        PskBundle: traits::PskBundle<CURRENT_VERSION>,
    >(
        &self,
        psk_id: &PskId,
        psk: &PskBundle,
    ) -> Result<(), SqlError> {
        self.inner.write_psk::<PskId, PskBundle>(psk_id, psk)
    }

    fn mls_group_join_config<
        GroupId: traits::GroupId<CURRENT_VERSION>,
        MlsGroupJoinConfig: traits::MlsGroupJoinConfig<CURRENT_VERSION>,
    >(
        &self,
        group_id: &GroupId,
    ) -> Result<Option<MlsGroupJoinConfig>, SqlError> {
        self.inner
            .mls_group_join_config::<GroupId, MlsGroupJoinConfig>(group_id)
    }

    fn own_leaf_nodes<
        GroupId: traits::GroupId<CURRENT_VERSION>,
        LeafNode: traits::LeafNode<CURRENT_VERSION>,
    >(
        &self,
        group_id: &GroupId,
    ) -> Result<Vec<LeafNode>, SqlError> {
        self.inner.own_leaf_nodes::<GroupId, LeafNode>(group_id)
    }

    fn queued_proposal_refs<
        GroupId: traits::GroupId<CURRENT_VERSION>,
        ProposalRef: traits::ProposalRef<CURRENT_VERSION>,
    >(
        &self,
        group_id: &GroupId,
    ) -> Result<Vec<ProposalRef>, SqlError> {
        self.inner
            .queued_proposal_refs::<GroupId, ProposalRef>(group_id)
    }

    fn queued_proposals<
        GroupId: traits::GroupId<CURRENT_VERSION>,
        ProposalRef: traits::ProposalRef<CURRENT_VERSION>,
        QueuedProposal: traits::QueuedProposal<CURRENT_VERSION>,
    >(
        &self,
        group_id: &GroupId,
    ) -> Result<Vec<(ProposalRef, QueuedProposal)>, SqlError> {
        self.inner
            .queued_proposals::<GroupId, ProposalRef, QueuedProposal>(group_id)
    }

    fn tree<
        GroupId: traits::GroupId<CURRENT_VERSION>,
        TreeSync: traits::TreeSync<CURRENT_VERSION>,
    >(
        &self,
        group_id: &GroupId,
    ) -> Result<Option<TreeSync>, SqlError> {
        let Ok(Some(Split(record))) = self.inner.tree::<GroupId, Split>(group_id) else {
            return self.inner.tree::<GroupId, TreeSync>(group_id);
        };
        let whole = self.whole(&Self::key(group_id)?, TREE, &record)?;
        BinaryCodec::from_slice(&whole)
            .map(Some)
            .map_err(codec_error)
    }

    fn group_context<
        GroupId: traits::GroupId<CURRENT_VERSION>,
        GroupContext: traits::GroupContext<CURRENT_VERSION>,
    >(
        &self,
        group_id: &GroupId,
    ) -> Result<Option<GroupContext>, SqlError> {
        self.inner.group_context::<GroupId, GroupContext>(group_id)
    }

    fn interim_transcript_hash<
        GroupId: traits::GroupId<CURRENT_VERSION>,
        InterimTranscriptHash: traits::InterimTranscriptHash<CURRENT_VERSION>,
    >(
        &self,
        group_id: &GroupId,
    ) -> Result<Option<InterimTranscriptHash>, SqlError> {
        self.inner
            .interim_transcript_hash::<GroupId, InterimTranscriptHash>(group_id)
    }

    fn confirmation_tag<
        GroupId: traits::GroupId<CURRENT_VERSION>,
        ConfirmationTag: traits::ConfirmationTag<CURRENT_VERSION>,
    >(
        &self,
        group_id: &GroupId,
    ) -> Result<Option<ConfirmationTag>, SqlError> {
        self.inner
            .confirmation_tag::<GroupId, ConfirmationTag>(group_id)
    }

    fn group_state<
        GroupState: traits::GroupState<CURRENT_VERSION>,
        GroupId: traits::GroupId<CURRENT_VERSION>,
    >(
        &self,
        group_id: &GroupId,
    ) -> Result<Option<GroupState>, SqlError> {
        self.inner.group_state::<GroupState, GroupId>(group_id)
    }

    fn resumption_psk_store<
        GroupId: traits::GroupId<CURRENT_VERSION>,
        ResumptionPskStore: traits::ResumptionPskStore<CURRENT_VERSION>,
    >(
        &self,
        group_id: &GroupId,
    ) -> Result<Option<ResumptionPskStore>, SqlError> {
        self.inner
            .resumption_psk_store::<GroupId, ResumptionPskStore>(group_id)
    }

    fn own_leaf_index<
        GroupId: traits::GroupId<CURRENT_VERSION>,
        LeafNodeIndex: traits::LeafNodeIndex<CURRENT_VERSION>,
    >(
        &self,
        group_id: &GroupId,
    ) -> Result<Option<LeafNodeIndex>, SqlError> {
        self.inner
            .own_leaf_index::<GroupId, LeafNodeIndex>(group_id)
    }

    fn group_epoch_secrets<
        GroupId: traits::GroupId<CURRENT_VERSION>,
        GroupEpochSecrets: traits::GroupEpochSecrets<CURRENT_VERSION>,
    >(
        &self,
        group_id: &GroupId,
    ) -> Result<Option<GroupEpochSecrets>, SqlError> {
        self.inner
            .group_epoch_secrets::<GroupId, GroupEpochSecrets>(group_id)
    }

    fn signature_key_pair<
        SignaturePublicKey: traits::SignaturePublicKey<CURRENT_VERSION>,
        SignatureKeyPair: traits::SignatureKeyPair<CURRENT_VERSION>,
    >(
        &self,
        public_key: &SignaturePublicKey,
    ) -> Result<Option<SignatureKeyPair>, SqlError> {
        self.inner
            .signature_key_pair::<SignaturePublicKey, SignatureKeyPair>(public_key)
    }

    fn encryption_key_pair<
        HpkeKeyPair: traits::HpkeKeyPair<CURRENT_VERSION>,
        EncryptionKey: traits::EncryptionKey<CURRENT_VERSION>,
    >(
        &self,
        public_key: &EncryptionKey,
    ) -> Result<Option<HpkeKeyPair>, SqlError> {
        self.inner
            .encryption_key_pair::<HpkeKeyPair, EncryptionKey>(public_key)
    }

    fn encryption_epoch_key_pairs<
        GroupId: traits::GroupId<CURRENT_VERSION>,
        EpochKey: traits::EpochKey<CURRENT_VERSION>,
        HpkeKeyPair: traits::HpkeKeyPair<CURRENT_VERSION>,
    >(
        &self,
        group_id: &GroupId,
        epoch: &EpochKey,
        leaf_index: u32,
    ) -> Result<Vec<HpkeKeyPair>, SqlError> {
        self.inner
            .encryption_epoch_key_pairs::<GroupId, EpochKey, HpkeKeyPair>(
                group_id, epoch, leaf_index,
            )
    }

    fn key_package<
        KeyPackageRef: traits::HashReference<CURRENT_VERSION>,
        KeyPackage: traits::KeyPackage<CURRENT_VERSION>,
    >(
        &self,
        hash_ref: &KeyPackageRef,
    ) -> Result<Option<KeyPackage>, SqlError> {
        self.inner
            .key_package::<KeyPackageRef, KeyPackage>(hash_ref)
    }

    fn psk<PskBundle: traits::PskBundle<CURRENT_VERSION>, PskId: traits::PskId<CURRENT_VERSION>>(
        &self,
        psk_id: &PskId,
    ) -> Result<Option<PskBundle>, SqlError> {
        self.inner.psk::<PskBundle, PskId>(psk_id)
    }

    fn remove_proposal<
        GroupId: traits::GroupId<CURRENT_VERSION>,
        ProposalRef: traits::ProposalRef<CURRENT_VERSION>,
    >(
        &self,
        group_id: &GroupId,
        proposal_ref: &ProposalRef,
    ) -> Result<(), SqlError> {
        self.inner
            .remove_proposal::<GroupId, ProposalRef>(group_id, proposal_ref)
    }

    fn delete_own_leaf_nodes<GroupId: traits::GroupId<CURRENT_VERSION>>(
        &self,
        group_id: &GroupId,
    ) -> Result<(), SqlError> {
        self.inner.delete_own_leaf_nodes::<GroupId>(group_id)
    }

    fn delete_group_config<GroupId: traits::GroupId<CURRENT_VERSION>>(
        &self,
        group_id: &GroupId,
    ) -> Result<(), SqlError> {
        self.inner.delete_group_config::<GroupId>(group_id)
    }

    fn delete_tree<GroupId: traits::GroupId<CURRENT_VERSION>>(
        &self,
        group_id: &GroupId,
    ) -> Result<(), SqlError> {
        self.conn.execute(
            "DELETE FROM eth_mls_secret_blob WHERE group_id = ?1 AND kind = ?2",
            params![Self::key(group_id)?, TREE],
        )?;
        self.inner.delete_tree::<GroupId>(group_id)
    }

    fn delete_confirmation_tag<GroupId: traits::GroupId<CURRENT_VERSION>>(
        &self,
        group_id: &GroupId,
    ) -> Result<(), SqlError> {
        self.inner.delete_confirmation_tag::<GroupId>(group_id)
    }

    fn delete_group_state<GroupId: traits::GroupId<CURRENT_VERSION>>(
        &self,
        group_id: &GroupId,
    ) -> Result<(), SqlError> {
        self.inner.delete_group_state::<GroupId>(group_id)
    }

    fn delete_context<GroupId: traits::GroupId<CURRENT_VERSION>>(
        &self,
        group_id: &GroupId,
    ) -> Result<(), SqlError> {
        self.inner.delete_context::<GroupId>(group_id)
    }

    fn delete_interim_transcript_hash<GroupId: traits::GroupId<CURRENT_VERSION>>(
        &self,
        group_id: &GroupId,
    ) -> Result<(), SqlError> {
        self.inner
            .delete_interim_transcript_hash::<GroupId>(group_id)
    }

    fn delete_all_resumption_psk_secrets<GroupId: traits::GroupId<CURRENT_VERSION>>(
        &self,
        group_id: &GroupId,
    ) -> Result<(), SqlError> {
        self.inner
            .delete_all_resumption_psk_secrets::<GroupId>(group_id)
    }

    fn delete_own_leaf_index<GroupId: traits::GroupId<CURRENT_VERSION>>(
        &self,
        group_id: &GroupId,
    ) -> Result<(), SqlError> {
        self.inner.delete_own_leaf_index::<GroupId>(group_id)
    }

    fn delete_group_epoch_secrets<GroupId: traits::GroupId<CURRENT_VERSION>>(
        &self,
        group_id: &GroupId,
    ) -> Result<(), SqlError> {
        self.inner.delete_group_epoch_secrets::<GroupId>(group_id)
    }

    fn clear_proposal_queue<
        GroupId: traits::GroupId<CURRENT_VERSION>,
        ProposalRef: traits::ProposalRef<CURRENT_VERSION>,
    >(
        &self,
        group_id: &GroupId,
    ) -> Result<(), SqlError> {
        self.inner
            .clear_proposal_queue::<GroupId, ProposalRef>(group_id)
    }

    fn delete_signature_key_pair<
        SignaturePublicKey: traits::SignaturePublicKey<CURRENT_VERSION>,
    >(
        &self,
        public_key: &SignaturePublicKey,
    ) -> Result<(), SqlError> {
        self.inner
            .delete_signature_key_pair::<SignaturePublicKey>(public_key)
    }

    fn delete_encryption_key_pair<EncryptionKey: traits::EncryptionKey<CURRENT_VERSION>>(
        &self,
        public_key: &EncryptionKey,
    ) -> Result<(), SqlError> {
        self.inner
            .delete_encryption_key_pair::<EncryptionKey>(public_key)
    }

    fn delete_encryption_epoch_key_pairs<
        GroupId: traits::GroupId<CURRENT_VERSION>,
        EpochKey: traits::EpochKey<CURRENT_VERSION>,
    >(
        &self,
        group_id: &GroupId,
        epoch: &EpochKey,
        leaf_index: u32,
    ) -> Result<(), SqlError> {
        self.inner
            .delete_encryption_epoch_key_pairs::<GroupId, EpochKey>(group_id, epoch, leaf_index)
    }

    fn delete_key_package<KeyPackageRef: traits::HashReference<CURRENT_VERSION>>(
        &self,
        hash_ref: &KeyPackageRef,
    ) -> Result<(), SqlError> {
        self.inner.delete_key_package::<KeyPackageRef>(hash_ref)
    }

    fn delete_psk<PskKey: traits::PskId<CURRENT_VERSION>>(
        &self,
        psk_id: &PskKey,
    ) -> Result<(), SqlError> {
        self.inner.delete_psk::<PskKey>(psk_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `split` with every piece hashed afresh.
    fn fresh<'b>(b: &'b [u8], ranges: &[std::ops::Range<usize>]) -> (Vec<u8>, Vec<Piece<'b>>) {
        let hashes: Vec<[u8; 32]> = ranges
            .iter()
            .map(|r| Sha256::digest(&b[r.clone()]).into())
            .collect();
        split(b, ranges, &hashes)
    }

    /// A member list as patched openmls writes it: a `bin` of the TLS encoding.
    fn tls_members(keys: &[u8]) -> Vec<u8> {
        let mut tls = (keys.len() as u32).to_be_bytes().to_vec();
        for (i, k) in keys.iter().enumerate() {
            tls.extend_from_slice(&(i as u32).to_be_bytes());
            tls.extend_from_slice(&1u16.to_be_bytes());
            // A 100-byte credential (two-byte length), 56- and 57-byte keys (one byte).
            tls.extend_from_slice(&[0x40, 100]);
            tls.extend_from_slice(&[*k; 100]);
            tls.extend_from_slice(&[56]);
            tls.extend_from_slice(&[k.wrapping_add(1); 56]);
            tls.extend_from_slice(&[57]);
            tls.extend_from_slice(&[k.wrapping_add(2); 57]);
        }
        let mut bin = vec![0xc6];
        bin.extend_from_slice(&(tls.len() as u32).to_be_bytes());
        bin.extend_from_slice(&tls);
        bin
    }

    #[test]
    fn member_lists_are_cut_in_runs_that_later_epochs_share() {
        let keys: Vec<u8> = (0..100).collect();
        let mut changed = keys.clone();
        changed[70] = 0xff;
        let store = |lists: &[Vec<u8>]| -> Vec<u8> {
            let mut b = vec![0x93, 0x02, 0x90 + lists.len() as u8];
            for list in lists {
                b.extend_from_slice(&[0x93, 0x05, 0xc0]);
                b.extend_from_slice(list);
            }
            b.push(0xc0);
            b
        };
        let bytes = store(&[tls_members(&keys), tls_members(&changed)]);
        let ranges = member_lists(&bytes).unwrap();
        // 100 members: runs of 32, 32, 32 and 4, for each list.
        assert_eq!(ranges.len(), 8);
        let (record, pieces) = fresh(&bytes, &ranges);
        let hashes: Vec<[u8; 32]> = pieces.iter().map(|(h, _)| *h).collect();
        // The second list shares every run but the one with member 70 (the third).
        assert_eq!(hashes[0], hashes[4]);
        assert_eq!(hashes[1], hashes[5]);
        assert_ne!(hashes[2], hashes[6]);
        assert_eq!(hashes[3], hashes[7]);
        // Put back together, the record is the original bytes.
        let table: std::collections::HashMap<[u8; 32], Vec<u8>> =
            pieces.iter().map(|(h, p)| (*h, p.to_vec())).collect();
        assert_eq!(join(&record, |h| Ok(table[h].clone())).unwrap(), bytes);
        // A list whose encoding does not parse is kept whole.
        let mut bad = tls_members(&keys);
        let last = bad.len() - 1;
        bad.truncate(last);
        bad[1..5].copy_from_slice(&((last - 5) as u32).to_be_bytes());
        let bytes = store(&[bad]);
        assert_eq!(member_lists(&bytes).unwrap().len(), 1);
    }

    #[test]
    fn stored_pieces_are_exactly_those_the_record_refers_to() {
        let mut conn = Connection::open_in_memory().unwrap();
        crate::migrate::migrate(&mut conn).unwrap();
        let storage = SplitStorage::new(&conn);
        // The group's tree pieces as stored: hash to bytes.
        let table = || -> std::collections::BTreeMap<[u8; 32], Vec<u8>> {
            let mut q = conn
                .prepare(
                    "SELECT hash, bytes FROM eth_mls_secret_blob WHERE group_id = x'01' AND kind = 1",
                )
                .unwrap();
            q.query_map([], |r| {
                let h: Vec<u8> = r.get(0)?;
                Ok((h.try_into().unwrap(), r.get(1)?))
            })
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
        };
        let stored = || {
            table()
                .into_keys()
                .collect::<std::collections::BTreeSet<_>>()
        };
        let referred = |record: &[u8]| -> std::collections::BTreeSet<[u8; 32]> {
            record_hashes(record).unwrap().into_iter().collect()
        };
        let cut = |b: &[u8]| -> Vec<std::ops::Range<usize>> {
            (0..b.len())
                .step_by(100)
                .map(|i| i..(i + 100).min(b.len()))
                .collect()
        };
        let mut bytes: Vec<u8> = (0..1000u32).map(|i| (i % 7) as u8).collect();
        // A piece left over from an earlier layout: the first write lists what is stored and
        // deletes it.
        conn.execute(
            "INSERT INTO eth_mls_secret_blob (group_id, kind, hash, bytes) VALUES (x'01', 1, ?1, x'00')",
            [[0xeeu8; 32].as_slice()],
        )
        .unwrap();
        // First written with no record before (the stored pieces listed), then from the one
        // before.
        let mut record = storage
            .put_pieces(&[1], TREE, &bytes, &cut(&bytes), None)
            .unwrap();
        assert_eq!(stored(), referred(&record));
        for step in 0..6usize {
            bytes[step * 150] ^= 0xff;
            if step == 3 {
                bytes.truncate(640);
            }
            if step == 4 {
                bytes.extend_from_slice(&[9; 500]);
            }
            record = storage
                .put_pieces(&[1], TREE, &bytes, &cut(&bytes), Some(record))
                .unwrap();
            assert_eq!(stored(), referred(&record), "step {step}");
            let table = table();
            assert_eq!(join(&record, |h| Ok(table[h].clone())).unwrap(), bytes);
        }
        assert_eq!(record_hashes(b"not a record"), None);
    }

    #[test]
    fn cached_hashes_are_the_hashes_of_the_pieces() {
        let key = b"cached-hashes-test".to_vec();
        let sha = |b: &[u8], rs: &[std::ops::Range<usize>]| -> Vec<[u8; 32]> {
            rs.iter()
                .map(|r| Sha256::digest(&b[r.clone()]).into())
                .collect()
        };
        // Hashes `b` at `rs` through the cache: always the SHA-256 of the bytes as they are,
        // and the pieces kept for the next time.
        let check = |kind: u8, b: &[u8], rs: &[std::ops::Range<usize>]| -> Vec<[u8; 32]> {
            let hashes = piece_hashes(&key, kind, b, rs);
            assert_eq!(hashes, sha(b, rs));
            let cache = HASH_CACHE.lock().unwrap();
            let kept = &cache.pieces[&(key.clone(), kind)];
            assert_eq!(kept.iter().map(|(_, h)| *h).collect::<Vec<_>>(), hashes);
            hashes
        };
        let mut bytes: Vec<u8> = (0..3000u32).map(|i| (i % 251) as u8).collect();
        let ranges = vec![0..1000, 1000..2000, 2000..3000];
        // First time, again unchanged, then with the middle piece changed, then cut otherwise.
        let unchanged = check(TREE, &bytes, &ranges);
        assert_eq!(check(TREE, &bytes, &ranges), unchanged);
        bytes[1500] ^= 1;
        let hashes = check(TREE, &bytes, &ranges);
        assert_eq!(hashes[0], unchanged[0]);
        assert_ne!(hashes[1], unchanged[1]);
        check(TREE, &bytes, &[0..10, 10..2990, 2990..3000]);
        // Another kind of the same group is cached apart.
        check(SECRETS, &bytes, &ranges);
        // Pieces larger than the cache are hashed, and not kept.
        let big = vec![7u8; HASH_CACHE_BYTES + 1];
        let whole: Vec<std::ops::Range<usize>> = std::iter::once(0..big.len()).collect();
        assert_eq!(piece_hashes(&key, TREE, &big, &whole), sha(&big, &whole));
        assert!(HASH_CACHE.lock().unwrap().bytes <= HASH_CACHE_BYTES);
    }

    #[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Member {
        index: u32,
        credential: Vec<u8>,
        key: Vec<u8>,
    }

    #[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
    struct EpochTree {
        epoch: u64,
        secrets: Vec<Vec<u8>>,
        leaves: Vec<Member>,
    }

    /// The shape of openmls's `MessageSecretsStore`.
    #[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Store {
        max_epochs: usize,
        past: Vec<EpochTree>,
        secrets: Vec<Vec<u8>>,
    }

    fn store(members: u32, past: u64) -> Store {
        let leaves = |e: u64| {
            (0..members)
                .map(|i| Member {
                    index: i,
                    credential: vec![(i as u8) ^ (e as u8); 546],
                    key: vec![0xee; 57],
                })
                .collect()
        };
        Store {
            max_epochs: 2,
            past: (0..past)
                .map(|e| EpochTree {
                    epoch: e,
                    secrets: vec![vec![e as u8; 64]; 3],
                    leaves: leaves(e),
                })
                .collect(),
            secrets: vec![vec![7; 64]; 5],
        }
    }

    #[test]
    fn the_member_lists_are_found_cut_out_and_put_back() {
        for (members, past) in [(0, 0), (1, 1), (20, 2), (300, 2)] {
            let s = store(members, past);
            let bytes = BinaryCodec::to_vec(&s).unwrap();
            let ranges = member_lists(&bytes).expect("the layout is recognised");
            assert_eq!(ranges.len(), past as usize);
            let (record, pieces) = fresh(&bytes, &ranges);
            if members >= 20 {
                assert!(
                    record.len() < bytes.len() / 4,
                    "{} of {}",
                    record.len(),
                    bytes.len()
                );
            }
            let whole = join(&record, |h| {
                Ok(pieces.iter().find(|(x, _)| x == h).unwrap().1.to_vec())
            })
            .unwrap();
            assert_eq!(whole, bytes);
            assert_eq!(BinaryCodec::from_slice::<Store>(&whole).unwrap(), s);
        }
    }

    /// The shapes of patched openmls's two records (vendor/README.md): the past epochs, and
    /// the head (the current epoch's secrets), each led by a string naming it.
    #[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
    struct PastRecord {
        layout: String,
        past: Vec<EpochTree>,
    }

    #[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
    struct HeadRecord {
        layout: String,
        max_epochs: usize,
        secrets: Vec<Vec<u8>>,
    }

    #[test]
    fn the_past_epochs_record_is_cut_and_the_head_is_written_whole() {
        for (members, past) in [(0, 0), (20, 2), (300, 2)] {
            let s = store(members, past);
            let record = PastRecord {
                layout: "openmls past epoch secrets v2".into(),
                past: s.past.clone(),
            };
            let bytes = BinaryCodec::to_vec(&record).unwrap();
            let ranges = member_lists(&bytes).expect("the layout is recognised");
            assert_eq!(ranges.len(), past as usize);
            let (cut, pieces) = fresh(&bytes, &ranges);
            let whole = join(&cut, |h| {
                Ok(pieces.iter().find(|(x, _)| x == h).unwrap().1.to_vec())
            })
            .unwrap();
            assert_eq!(
                BinaryCodec::from_slice::<PastRecord>(&whole).unwrap(),
                record
            );
            // The head has no member list: not cut.
            let head = HeadRecord {
                layout: "openmls message secrets head v2".into(),
                max_epochs: 2,
                secrets: s.secrets.clone(),
            };
            assert!(member_lists(&BinaryCodec::to_vec(&head).unwrap()).is_none());
        }
    }

    /// A key and an entity as openmls's storage passes them.
    #[derive(serde::Serialize, serde::Deserialize)]
    struct Key(Vec<u8>);
    impl openmls_traits::storage::Key<CURRENT_VERSION> for Key {}
    impl traits::GroupId<CURRENT_VERSION> for Key {}
    impl openmls_traits::storage::Entity<CURRENT_VERSION> for Store {}
    impl traits::MessageSecrets<CURRENT_VERSION> for Store {}
    impl openmls_traits::storage::Entity<CURRENT_VERSION> for HeadRecord {}
    impl traits::MessageSecrets<CURRENT_VERSION> for HeadRecord {}

    #[test]
    fn a_head_written_over_a_whole_store_leaves_no_piece_behind() {
        let mut conn = Connection::open_in_memory().unwrap();
        crate::migrate::migrate(&mut conn).unwrap();
        let storage = SplitStorage::new(&conn);
        let pieces = || -> i64 {
            conn.query_row("SELECT COUNT(*) FROM eth_mls_secret_blob", [], |r| r.get(0))
                .unwrap()
        };
        let group = Key(b"group".to_vec());
        // A store written whole, as before openmls was patched: its member lists cut out.
        let whole = store(40, 2);
        storage.write_message_secrets(&group, &whole).unwrap();
        assert!(pieces() > 0);
        assert_eq!(storage.message_secrets(&group).unwrap(), Some(whole));
        // The head replaces it under the same key: the pieces go, and it reads back as written.
        let head = HeadRecord {
            layout: "openmls message secrets head v2".into(),
            max_epochs: 2,
            secrets: vec![vec![3; 64]; 4],
        };
        storage.write_message_secrets(&group, &head).unwrap();
        assert_eq!(pieces(), 0);
        assert_eq!(storage.message_secrets(&group).unwrap(), Some(head.clone()));
        // Through openmls_sqlite_storage itself, too: the row is its own.
        assert_eq!(
            storage
                .inner
                .message_secrets::<Key, HeadRecord>(&group)
                .unwrap(),
            Some(head)
        );
        storage.delete_message_secrets(&group).unwrap();
        assert_eq!(
            storage.message_secrets::<Key, HeadRecord>(&group).unwrap(),
            None
        );
    }

    #[test]
    fn other_layouts_and_bad_pieces_are_refused() {
        assert!(member_lists(&BinaryCodec::to_vec(&vec![1u8, 2, 3]).unwrap()).is_none());
        assert!(member_lists(&BinaryCodec::to_vec(&(1u32, 2u32)).unwrap()).is_none());
        let bytes = BinaryCodec::to_vec(&store(5, 1)).unwrap();
        assert!(member_lists(&bytes[..bytes.len() - 1]).is_none());
        let ranges = member_lists(&bytes).unwrap();
        let (record, _) = fresh(&bytes, &ranges);
        // A piece whose bytes do not match its hash, a missing piece, a cut record.
        assert!(join(&record, |_| Ok(vec![1, 2, 3])).is_err());
        assert!(join(&record, |_| Err(SqlError::QueryReturnedNoRows)).is_err());
        assert!(join(&record[..10], |_| Ok(Vec::new())).is_err());
    }

    /// The shape of openmls's `TreeSync`.
    #[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Tree {
        tree: Nodes,
        tree_hash: Vec<u8>,
    }

    /// The shape of openmls's array-represented binary tree.
    #[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Nodes {
        leaves: Vec<Option<Member>>,
        parents: Vec<Option<Vec<u8>>>,
        default_leaf: Option<Member>,
        default_parent: Option<Vec<u8>>,
    }

    #[test]
    fn the_tree_is_cut_in_runs_and_put_back() {
        for leaves in [1u32, 2, 31, 32, 33, 100] {
            let t = Tree {
                tree: Nodes {
                    leaves: (0..leaves)
                        .map(|i| {
                            (i % 3 != 1).then(|| Member {
                                index: i,
                                credential: vec![i as u8; 546],
                                key: vec![1; 57],
                            })
                        })
                        .collect(),
                    parents: (0..leaves.saturating_sub(1))
                        .map(|i| (i % 2 == 0).then(|| vec![i as u8; 56]))
                        .collect(),
                    default_leaf: None,
                    default_parent: None,
                },
                tree_hash: vec![9; 64],
            };
            let bytes = BinaryCodec::to_vec(&t).unwrap();
            let ranges = tree_runs(&bytes).expect("the layout is recognised");
            let runs = |n: u32| (n as usize).div_ceil(TREE_RUN);
            assert_eq!(ranges.len(), runs(leaves) + runs(leaves.saturating_sub(1)));
            let (record, pieces) = fresh(&bytes, &ranges);
            let whole = join(&record, |h| {
                Ok(pieces.iter().find(|(x, _)| x == h).unwrap().1.to_vec())
            })
            .unwrap();
            assert_eq!(BinaryCodec::from_slice::<Tree>(&whole).unwrap(), t);
            // A change to one leaf changes one run.
            let mut changed = t.clone();
            if let Some(Some(m)) = changed.tree.leaves.last_mut() {
                m.key = vec![2; 57];
                let bytes2 = BinaryCodec::to_vec(&changed).unwrap();
                let (_, pieces2) = fresh(&bytes2, &tree_runs(&bytes2).unwrap());
                let differ = pieces
                    .iter()
                    .zip(&pieces2)
                    .filter(|(a, b)| a.0 != b.0)
                    .count();
                assert_eq!(differ, 1);
            }
        }
    }

    proptest::proptest! {
        /// Arbitrary bytes never make the parser panic.
        #[test]
        fn parsing_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..256)) {
            let _ = member_lists(&bytes);
            let _ = tree_runs(&bytes);
            let _ = join(&bytes, |_| Ok(Vec::new()));
        }
    }
}
