//! [`Journal`]: a node's history kept across restarts, as an append-only file.
//!
//! Every frame stored and every topic subscribed to is appended as one record (length,
//! payload, the first 4 bytes of the payload's SHA-256); opening the file replays it into a
//! [`HistoryStore`] with the same cursors (so cursors handed out before a restart stay
//! meaningful), applies the retention, and rewrites the file with what is left. A record cut
//! short by a crash, or whose checksum does not match, ends the replay: what was written
//! before it is kept.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::{Cursor, Envelope, Error, HistoryStore, Origin, Topic};

/// First bytes of a journal file (format version 1).
const MAGIC: &[u8; 8] = b"EMLSHJ1\n";
/// Largest record accepted on replay (a frame is far smaller).
const MAX_RECORD: usize = 16 << 20;

const TOPIC: u8 = 1;
const ENTRY: u8 = 2;
const ORIGIN_PEER: u8 = 0;
const ORIGIN_ACCOUNT: u8 = 1;

/// The append-only history file of a node (see the module docs).
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    out: BufWriter<File>,
}

fn io(path: &Path, e: std::io::Error) -> Error {
    Error::Transport(format!("history journal {}: {e}", path.display()))
}

fn checksum(payload: &[u8]) -> [u8; 4] {
    let h = Sha256::digest(payload);
    [h[0], h[1], h[2], h[3]]
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u32).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn topic_record(topic: &Topic) -> Vec<u8> {
    let mut p = vec![TOPIC];
    put_str(&mut p, &topic.to_string());
    p
}

fn entry_record(e: &Envelope) -> Vec<u8> {
    let mut p = vec![ENTRY];
    put_str(&mut p, &e.topic.to_string());
    p.extend_from_slice(&e.cursor.at.to_be_bytes());
    p.extend_from_slice(&e.cursor.index.to_be_bytes());
    p.extend_from_slice(&e.received_at.to_be_bytes());
    match &e.origin {
        Origin::Peer(peer) => {
            p.push(ORIGIN_PEER);
            put_str(&mut p, peer);
        }
        Origin::Account(a) => {
            p.push(ORIGIN_ACCOUNT);
            p.extend_from_slice(a);
        }
    }
    p.extend_from_slice(&(e.bytes.len() as u32).to_be_bytes());
    p.extend_from_slice(&e.bytes);
    p
}

fn frame(payload: &[u8]) -> Vec<u8> {
    let mut r = Vec::with_capacity(payload.len() + 8);
    r.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    r.extend_from_slice(payload);
    r.extend_from_slice(&checksum(payload));
    r
}

/// A record read back.
enum Record {
    Topic(Topic),
    Entry(Envelope),
}

struct Reader<'a> {
    b: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.b.len() < n {
            return None;
        }
        let (head, rest) = self.b.split_at(n);
        self.b = rest;
        Some(head)
    }

    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_be_bytes(self.take(4)?.try_into().ok()?))
    }

    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_be_bytes(self.take(8)?.try_into().ok()?))
    }

    fn string(&mut self) -> Option<String> {
        let n = self.u32()? as usize;
        String::from_utf8(self.take(n)?.to_vec()).ok()
    }
}

fn parse(payload: &[u8]) -> Option<Record> {
    let mut r = Reader { b: payload };
    let kind = r.take(1)?[0];
    let topic: Topic = r.string()?.parse().ok()?;
    let record = match kind {
        TOPIC => Record::Topic(topic),
        ENTRY => {
            let cursor = Cursor {
                at: r.u64()?,
                index: r.u64()?,
            };
            let received_at = r.u64()?;
            let origin = match r.take(1)?[0] {
                ORIGIN_PEER => Origin::Peer(r.string()?),
                ORIGIN_ACCOUNT => Origin::Account(r.take(20)?.try_into().ok()?),
                _ => return None,
            };
            let n = r.u32()? as usize;
            let bytes = r.take(n)?.to_vec();
            Record::Entry(Envelope {
                topic,
                id: crate::MessageId::of(&bytes),
                bytes,
                origin,
                received_at,
                cursor,
            })
        }
        _ => return None,
    };
    r.b.is_empty().then_some(record)
}

/// The records of a journal's bytes, up to the first damaged one.
fn records(bytes: &[u8]) -> Vec<Record> {
    let mut out = Vec::new();
    let Some(mut rest) = bytes.strip_prefix(MAGIC.as_slice()) else {
        return out;
    };
    while rest.len() >= 4 {
        let n = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        if n > MAX_RECORD || rest.len() < 4 + n + 4 {
            break;
        }
        let payload = &rest[4..4 + n];
        if checksum(payload) != rest[4 + n..8 + n] {
            break;
        }
        match parse(payload) {
            Some(r) => out.push(r),
            None => break,
        }
        rest = &rest[8 + n..];
    }
    out
}

impl Journal {
    /// Opens (or creates) the journal at `path`: replays it into `store` (cursors kept; the
    /// retention applied at `now_ms`), rewrites it compacted, and returns it ready for
    /// appending, with the topics it recorded.
    pub fn open(
        path: &Path,
        store: &mut HistoryStore,
        now_ms: u64,
    ) -> Result<(Journal, Vec<Topic>), Error> {
        let mut bytes = Vec::new();
        match File::open(path) {
            Ok(mut f) => {
                f.read_to_end(&mut bytes).map_err(|e| io(path, e))?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(path, e)),
        }
        if !bytes.is_empty() && !bytes.starts_with(MAGIC) {
            return Err(Error::Transport(format!(
                "{} is not a history journal",
                path.display()
            )));
        }
        let mut topics = Vec::new();
        for record in records(&bytes) {
            match record {
                Record::Topic(t) => {
                    if !topics.contains(&t) {
                        topics.push(t);
                    }
                }
                Record::Entry(e) => {
                    if e.cursor > store.last_cursor() {
                        store.insert_at(e.topic, e.bytes, e.origin, e.received_at, e.cursor);
                    }
                }
            }
        }
        store.prune_all(now_ms);
        // Compacted: the topics, then what the retention kept, in cursor order; written aside
        // and renamed over the old file, so a crash leaves one or the other whole.
        let mut compact = MAGIC.to_vec();
        for t in &topics {
            compact.extend_from_slice(&frame(&topic_record(t)));
        }
        for e in store.all() {
            compact.extend_from_slice(&frame(&entry_record(&e)));
        }
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
        }
        let tmp = path.with_extension("tmp");
        {
            let mut f = File::create(&tmp).map_err(|e| io(&tmp, e))?;
            f.write_all(&compact).map_err(|e| io(&tmp, e))?;
            f.sync_all().map_err(|e| io(&tmp, e))?;
        }
        std::fs::rename(&tmp, path).map_err(|e| io(path, e))?;
        let file = OpenOptions::new()
            .append(true)
            .open(path)
            .map_err(|e| io(path, e))?;
        Ok((
            Journal {
                path: path.to_path_buf(),
                out: BufWriter::new(file),
            },
            topics,
        ))
    }

    /// Appends a stored frame (written out at the next [`flush`](Self::flush)).
    pub fn entry(&mut self, e: &Envelope) -> Result<(), Error> {
        self.out
            .write_all(&frame(&entry_record(e)))
            .map_err(|err| io(&self.path, err))
    }

    /// Appends a topic subscribed to.
    pub fn topic(&mut self, t: &Topic) -> Result<(), Error> {
        self.out
            .write_all(&frame(&topic_record(t)))
            .map_err(|err| io(&self.path, err))
    }

    /// Writes out what was appended.
    pub fn flush(&mut self) -> Result<(), Error> {
        self.out.flush().map_err(|e| io(&self.path, e))
    }
}

impl Drop for Journal {
    fn drop(&mut self) {
        let _ = self.out.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Retention;

    fn topic(n: u8) -> Topic {
        Topic::Inbox {
            chain_id: 1,
            account: [n; 20],
        }
    }

    fn path(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("eth-mls-journal-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join(name);
        let _ = std::fs::remove_file(&p);
        p
    }

    #[test]
    fn history_and_topics_survive_a_restart_with_their_cursors() {
        let p = path("restart");
        let mut store = HistoryStore::new(Retention::default());
        let (mut j, topics) = Journal::open(&p, &mut store, 1_000).unwrap();
        assert!(topics.is_empty());
        j.topic(&topic(1)).unwrap();
        j.topic(&topic(2)).unwrap();
        let mut stored = Vec::new();
        for i in 0..5u8 {
            let e = store
                .insert(
                    topic(1),
                    vec![i; 50],
                    Origin::Peer("p".into()),
                    1_000 + u64::from(i),
                )
                .unwrap();
            j.entry(&e).unwrap();
            stored.push(e);
        }
        let e = store
            .insert(topic(2), vec![9; 60], Origin::Account([7; 20]), 2_000)
            .unwrap();
        j.entry(&e).unwrap();
        j.flush().unwrap();
        drop(j);

        let mut again = HistoryStore::new(Retention::default());
        let (_j, topics) = Journal::open(&p, &mut again, 3_000).unwrap();
        assert_eq!(topics, vec![topic(1), topic(2)]);
        let page = again.query(&topic(1), Cursor::START, 100, usize::MAX);
        assert_eq!(page.envelopes, stored);
        let page = again.query(&topic(2), Cursor::START, 100, usize::MAX);
        assert_eq!(page.envelopes, vec![e]);
        // New frames get cursors after the replayed ones.
        let next = again
            .insert(topic(1), vec![42; 50], Origin::Peer("p".into()), 1)
            .unwrap();
        assert!(next.cursor > stored[4].cursor);
    }

    #[test]
    fn a_torn_or_corrupted_tail_keeps_what_came_before() {
        let p = path("torn");
        let mut store = HistoryStore::new(Retention::default());
        let (mut j, _) = Journal::open(&p, &mut store, 0).unwrap();
        for i in 0..3u8 {
            let e = store
                .insert(topic(1), vec![i; 40], Origin::Peer("p".into()), 10)
                .unwrap();
            j.entry(&e).unwrap();
        }
        j.flush().unwrap();
        drop(j);
        let full = std::fs::read(&p).unwrap();
        // Cut in the middle of the last record.
        std::fs::write(&p, &full[..full.len() - 10]).unwrap();
        let mut s = HistoryStore::new(Retention::default());
        Journal::open(&p, &mut s, 10).unwrap();
        assert_eq!(s.len(&topic(1)), 2);
        // A flipped byte in the second record: only the first survives.
        let mut bad = full.clone();
        let second = MAGIC.len() + (full.len() - MAGIC.len()) / 3 + 20;
        bad[second] ^= 0xff;
        std::fs::write(&p, &bad).unwrap();
        let mut s = HistoryStore::new(Retention::default());
        Journal::open(&p, &mut s, 10).unwrap();
        assert_eq!(s.len(&topic(1)), 1);
        // Not a journal at all: an error, the file untouched.
        std::fs::write(&p, b"something else").unwrap();
        let mut s = HistoryStore::new(Retention::default());
        assert!(Journal::open(&p, &mut s, 10).is_err());
        assert_eq!(std::fs::read(&p).unwrap(), b"something else");
    }

    #[test]
    fn replay_applies_the_retention_and_compacts_the_file() {
        let p = path("compact");
        let retention = Retention {
            max_entries: 2,
            ..Retention::default()
        };
        let mut store = HistoryStore::new(Retention::default());
        let (mut j, _) = Journal::open(&p, &mut store, 0).unwrap();
        for i in 0..10u8 {
            let e = store
                .insert(topic(1), vec![i; 40], Origin::Peer("p".into()), 5)
                .unwrap();
            j.entry(&e).unwrap();
        }
        drop(j);
        let before = std::fs::metadata(&p).unwrap().len();
        let mut s = HistoryStore::new(retention);
        Journal::open(&p, &mut s, 5).unwrap();
        assert_eq!(s.len(&topic(1)), 2);
        let after = std::fs::metadata(&p).unwrap().len();
        assert!(after < before / 3, "{before} -> {after}");
    }

    proptest::proptest! {
        /// Any bytes after the magic replay without a panic.
        #[test]
        fn replay_never_panics(tail in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            let mut bytes = MAGIC.to_vec();
            bytes.extend_from_slice(&tail);
            let _ = records(&bytes);
        }
    }
}
