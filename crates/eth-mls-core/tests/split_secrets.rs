//! openmls's message-secrets record with the past epochs' member lists kept apart
//! (`SplitStorage`): they are written once each, a message rewrites only the rest, and a
//! late message of a past epoch still decrypts after a restart (the record is put together
//! again from the pieces). Checked in the database file itself (a plain SQLite store, so the
//! test can read it). Also the record of a received commit staged and not merged yet.
#![cfg(feature = "unencrypted-store-for-benchmarks")]
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use common::*;
use eth_mls_core::{BinaryCodec, Event, Store, StoreKey};

fn peer(dir: &TempDir, n: u8) -> Peer {
    let id = identity(n);
    let path = dir.0.join(format!("plain-{n}.db"));
    let store = Store::create(&path, &StoreKey::unencrypted(), id).unwrap();
    Peer {
        path,
        store,
        group: None,
    }
}

/// Rows and bytes of the pieces of `kind` kept apart in a store file (0: past epochs' member
/// lists; 1: runs of the tree's nodes).
fn pieces(path: &std::path::Path, kind: i64) -> (i64, i64) {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.query_row(
        "SELECT COUNT(*), COALESCE(SUM(LENGTH(bytes)), 0) FROM eth_mls_secret_blob WHERE kind = ?1",
        [kind],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .unwrap()
}

fn blobs(path: &std::path::Path) -> (i64, i64) {
    pieces(path, 0)
}

/// The blobs of one column of a query on a store file.
fn column(path: &std::path::Path, sql: &str) -> Vec<Vec<u8>> {
    let conn = rusqlite::Connection::open(path).unwrap();
    let mut q = conn.prepare(sql).unwrap();
    q.query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// The runs of the past epochs' member lists kept apart, as stored.
fn member_lists(path: &std::path::Path) -> Vec<Vec<u8>> {
    column(path, "SELECT bytes FROM eth_mls_secret_blob WHERE kind = 0")
}

/// The hashes of the tree's pieces.
fn tree_hashes(path: &std::path::Path) -> Vec<Vec<u8>> {
    column(
        path,
        "SELECT hash FROM eth_mls_secret_blob WHERE kind = 1 ORDER BY hash",
    )
}

/// The message-secrets records in a store file of one group: the rowid of the past epochs'
/// (a split record, `EMS1`; written anew, it gets a new rowid: `INSERT OR REPLACE`), and the
/// rowid and bytes of the head (updated in place; a message always changes its bytes, as it
/// moves a ratchet).
fn secrets_rows(path: &std::path::Path) -> (i64, (i64, Vec<u8>)) {
    let conn = rusqlite::Connection::open(path).unwrap();
    let mut q = conn
        .prepare(
            "SELECT rowid, INSTR(group_data, CAST('EMS1' AS BLOB)) > 0, group_data \
             FROM openmls_group_data WHERE data_type = 'message_secrets'",
        )
        .unwrap();
    let rows: Vec<(i64, bool, Vec<u8>)> = q
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let past: Vec<i64> = rows.iter().filter(|r| r.1).map(|r| r.0).collect();
    let head: Vec<(i64, Vec<u8>)> = rows
        .iter()
        .filter(|r| !r.1)
        .map(|r| (r.0, r.2.clone()))
        .collect();
    assert_eq!((past.len(), head.len()), (1, 1), "{} rows", rows.len());
    (past[0], head[0].clone())
}

fn reopen(p: &mut Peer) {
    let id = p.group.as_ref().map(|g| g.id().to_vec());
    p.store = Store::open(&p.path, &StoreKey::unencrypted()).unwrap();
    p.group = id.map(|id| eth_mls_core::Group::load(&p.store, &id).unwrap());
}

#[test]
fn past_member_lists_are_kept_once_and_late_messages_still_decrypt() {
    let dir = TempDir::new();
    let mut alice = peer(&dir, 1);
    let mut bob = peer(&dir, 2);
    let mut carol = peer(&dir, 3);
    alice.create(b"split");
    let kps = [bob.key_package(), carol.key_package()];
    let out = alice.add(&kps);
    alice.merge_own();
    bob.join(&out.welcome.clone().unwrap()).unwrap();
    carol.join(&out.welcome.unwrap()).unwrap();
    // Two more epochs: bob's past epochs now have member lists.
    for _ in 0..2 {
        let out = alice.update();
        alice.merge_own();
        bob.apply(&out.commit);
        carol.apply(&out.commit);
    }
    let (rows, bytes) = blobs(&bob.path);
    assert!(rows >= 1, "no member list was kept apart");
    assert!(bytes > 1000, "member lists of {bytes} bytes");
    // openmls patched (vendor/README.md): each list is one blob, the TLS encoding of the
    // members, kept here in runs of members; each run starts with a member's leaf index (u32)
    // and its credential type (u16), and holds all three members of this small group.
    for run in member_lists(&bob.path) {
        let leaf = u32::from_be_bytes(run[..4].try_into().unwrap());
        assert_eq!(
            leaf, 0,
            "a run of members starts with the first one's leaf index"
        );
        let credentials = run
            .windows(b"Ethereum account".len())
            .filter(|w| *w == b"Ethereum account")
            .count();
        assert_eq!(credentials, 3, "three members' SIWE credentials in the run");
    }

    // A message alice sends now reaches bob only after the next commit (late).
    let late = alice.send(b"late");
    let out = alice.update();
    alice.merge_own();
    bob.apply(&out.commit);
    carol.apply(&out.commit);
    // Messages do not add member lists: the same ones stay (one per kept past epoch).
    let before = blobs(&bob.path);
    let tree_before = tree_hashes(&bob.path);
    assert!(!tree_before.is_empty(), "the tree was written whole");
    // openmls patched (vendor/README.md): a message of the current epoch rewrites the head
    // record alone, never the past epochs' record, on both sides.
    let (bob_past, bob_head) = secrets_rows(&bob.path);
    let (alice_past, alice_head) = secrets_rows(&alice.path);
    for i in 0..5u8 {
        let m = alice.send(&[i; 100]);
        let events = bob.process(&m).unwrap();
        assert!(matches!(events.as_slice(), [Event::Application(_)]));
    }
    let (bob_past_now, bob_head_now) = secrets_rows(&bob.path);
    let (alice_past_now, alice_head_now) = secrets_rows(&alice.path);
    assert_eq!((bob_past_now, alice_past_now), (bob_past, alice_past));
    assert_ne!(
        bob_head_now.1, bob_head.1,
        "the receiver's head was written"
    );
    assert_ne!(
        alice_head_now.1, alice_head.1,
        "the sender's head was written"
    );
    // In place: the same row.
    assert_eq!(
        (bob_head_now.0, alice_head_now.0),
        (bob_head.0, alice_head.0)
    );
    assert_eq!(blobs(&bob.path), before);
    assert_eq!(
        tree_hashes(&bob.path),
        tree_before,
        "messages do not touch the tree"
    );

    // After a restart the record is whole again: the late message of the past epoch decrypts.
    reopen(&mut bob);
    let (past, head) = secrets_rows(&bob.path);
    match bob.process(&late).unwrap().as_slice() {
        [Event::Application(a)] => {
            // The sender is found in the past epoch's member list, read back from its blob.
            assert_eq!(a.data, b"late");
            assert_eq!(a.sender, alice.store.identity().address());
        }
        other => panic!("{other:?}"),
    }
    // A late message advances a past epoch's ratchet: the past epochs' record is written,
    // not the head; and after a restart the late message is not delivered twice.
    let (past_now, head_now) = secrets_rows(&bob.path);
    assert_ne!(past_now, past);
    assert_eq!(head_now, head);
    reopen(&mut bob);
    if let Ok(events) = bob.process(&late) {
        assert!(
            events.is_empty(),
            "a late message delivered twice: {events:?}"
        );
    }
    // And the group goes on; a commit replaces some of the tree's pieces, not all, and the
    // tree reads back after a restart.
    let alice_tree = tree_hashes(&alice.path);
    let out = bob.update();
    bob.merge_own();
    alice.apply(&out.commit);
    carol.apply(&out.commit);
    let alice_tree_after = tree_hashes(&alice.path);
    assert!(!alice_tree_after.is_empty());
    assert_ne!(
        alice_tree_after, alice_tree,
        "the merge wrote the changed runs"
    );
    reopen(&mut alice);
    reopen(&mut carol);
    let m = alice.send(b"after the restart");
    match carol.process(&m).unwrap().as_slice() {
        [Event::Application(a)] => assert_eq!(a.data, b"after the restart"),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        alice.g().epoch_authenticator(),
        bob.g().epoch_authenticator()
    );
    assert_eq!(
        carol.g().epoch_authenticator(),
        bob.g().epoch_authenticator()
    );
}

/// The staged commit kept in a store file of one group: its SQLite type and bytes.
fn staged_row(path: &std::path::Path) -> (String, Vec<u8>) {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.query_row(
        "SELECT typeof(staged), CAST(staged AS BLOB) FROM eth_mls_incoming_commit",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .unwrap()
}

/// Restarts `p` with a staged commit pending, merges it, and checks `p` is in `with`'s epoch.
fn restart_and_merge(p: &mut Peer, with: &Peer) {
    reopen(p);
    p.group
        .as_mut()
        .unwrap()
        .merge_staged_commit(&mut p.store)
        .unwrap();
    assert_eq!(with.g().epoch_authenticator(), p.g().epoch_authenticator());
}

#[test]
fn a_staged_commit_is_kept_in_message_pack_and_one_kept_as_json_still_loads() {
    use openmls_sqlite_storage::Codec as _;
    let dir = TempDir::new();
    let mut alice = peer(&dir, 1);
    let mut bob = peer(&dir, 2);
    alice.create(b"staged");
    let out = alice.add(&[bob.key_package()]);
    alice.merge_own();
    bob.join(&out.welcome.unwrap()).unwrap();

    // Staged, then a restart: the staged commit is read back (MessagePack) and merges.
    let out = alice.update();
    alice.merge_own();
    let events = bob.process(&out.commit).unwrap();
    assert!(matches!(events.as_slice(), [Event::StagedCommit(_)]));
    let (kind, bytes) = staged_row(&bob.path);
    assert_eq!(kind, "blob");
    let staged: openmls::prelude::StagedCommit = BinaryCodec::from_slice(&bytes).unwrap();
    let json = serde_json::to_string(&staged).unwrap();
    assert!(
        bytes.len() * 2 < json.len(),
        "{} bytes against {} in JSON",
        bytes.len(),
        json.len()
    );
    restart_and_merge(&mut bob, &alice);

    // As an earlier version kept it (JSON, TEXT): it loads and merges too.
    let out = alice.update();
    alice.merge_own();
    bob.process(&out.commit).unwrap();
    let (_, bytes) = staged_row(&bob.path);
    let staged: openmls::prelude::StagedCommit = BinaryCodec::from_slice(&bytes).unwrap();
    rusqlite::Connection::open(&bob.path)
        .unwrap()
        .execute(
            "UPDATE eth_mls_incoming_commit SET staged = ?1",
            [serde_json::to_string(&staged).unwrap()],
        )
        .unwrap();
    assert_eq!(staged_row(&bob.path).0, "text");
    restart_and_merge(&mut bob, &alice);
    // A merge deletes the staged commit.
    let conn = rusqlite::Connection::open(&bob.path).unwrap();
    let left: i64 = conn
        .query_row("SELECT COUNT(*) FROM eth_mls_incoming_commit", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(left, 0);
}
