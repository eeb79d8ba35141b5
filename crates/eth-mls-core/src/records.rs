//! Records of the application built on the store: the eth-mls client keeps its 1:1 channel
//! state, intents and cursors here, in the same encrypted file as the groups, one transaction
//! per write. Keys and values are opaque bytes under a namespace.

use eth_mls_crypto::Backend;
use rusqlite::{OptionalExtension, params};

use crate::Error;
use crate::journal::now;
use crate::store::{Store, sql};

/// A record: its key and its value.
pub type Record = (Vec<u8>, Vec<u8>);

/// Longest namespace name.
pub const MAX_NAMESPACE: usize = 64;

fn check(namespace: &str) -> Result<(), Error> {
    if namespace.is_empty() || namespace.len() > MAX_NAMESPACE {
        return Err(Error::Malformed(format!(
            "record namespace of {} bytes (1..={MAX_NAMESPACE})",
            namespace.len()
        )));
    }
    Ok(())
}

/// One write of [`Store::write_records`].
#[derive(Clone, Copy, Debug)]
pub enum RecordWrite<'a> {
    /// Write (or replace) the record `key` of `namespace`.
    Put {
        /// The namespace.
        namespace: &'a str,
        /// The key.
        key: &'a [u8],
        /// The value.
        value: &'a [u8],
    },
    /// Delete the record `key` of `namespace` (nothing when there is none).
    Delete {
        /// The namespace.
        namespace: &'a str,
        /// The key.
        key: &'a [u8],
    },
}

impl<B: Backend> Store<B> {
    /// Applies `writes` in order, all in one transaction: all of them or none.
    pub fn write_records(&mut self, writes: &[RecordWrite<'_>]) -> Result<(), Error> {
        for w in writes {
            match w {
                RecordWrite::Put { namespace, .. } | RecordWrite::Delete { namespace, .. } => {
                    check(namespace)?;
                }
            }
        }
        self.transact(|store| {
            for w in writes {
                match *w {
                    RecordWrite::Put {
                        namespace,
                        key,
                        value,
                    } => store.conn().execute(
                        "INSERT INTO eth_mls_record (namespace, key, value, updated_at) VALUES (?1, ?2, ?3, ?4)
                         ON CONFLICT (namespace, key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
                        params![namespace, key, value, now()],
                    ),
                    RecordWrite::Delete { namespace, key } => store.conn().execute(
                        "DELETE FROM eth_mls_record WHERE namespace = ?1 AND key = ?2",
                        params![namespace, key],
                    ),
                }
                .map_err(sql)?;
            }
            Ok(())
        })
    }

    /// Writes (or replaces) the record `key` of `namespace`, in one transaction.
    pub fn put_record(&mut self, namespace: &str, key: &[u8], value: &[u8]) -> Result<(), Error> {
        check(namespace)?;
        self.transact(|store| {
            store
                .conn()
                .execute(
                    "INSERT INTO eth_mls_record (namespace, key, value, updated_at) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (namespace, key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
                    params![namespace, key, value, now()],
                )
                .map_err(sql)?;
            Ok(())
        })
    }

    /// The record `key` of `namespace`, if any.
    pub fn record(&self, namespace: &str, key: &[u8]) -> Result<Option<Vec<u8>>, Error> {
        check(namespace)?;
        self.conn()
            .query_row(
                "SELECT value FROM eth_mls_record WHERE namespace = ?1 AND key = ?2",
                params![namespace, key],
                |r| r.get(0),
            )
            .optional()
            .map_err(sql)
    }

    /// Deletes the record `key` of `namespace`; returns whether it existed.
    pub fn delete_record(&mut self, namespace: &str, key: &[u8]) -> Result<bool, Error> {
        check(namespace)?;
        self.transact(|store| {
            let n = store
                .conn()
                .execute(
                    "DELETE FROM eth_mls_record WHERE namespace = ?1 AND key = ?2",
                    params![namespace, key],
                )
                .map_err(sql)?;
            Ok(n > 0)
        })
    }

    /// Every record of `namespace`, by key.
    pub fn records(&self, namespace: &str) -> Result<Vec<Record>, Error> {
        check(namespace)?;
        let mut stmt = self
            .conn()
            .prepare("SELECT key, value FROM eth_mls_record WHERE namespace = ?1 ORDER BY key")
            .map_err(sql)?;
        let rows = stmt
            .query_map(params![namespace], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(sql)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(sql)?;
        Ok(rows)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::{BindingRequest, Identity, LocalEthereumSigner, StoreKey};

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        let mut f = std::pin::pin!(f);
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        loop {
            if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) {
                return v;
            }
        }
    }

    #[test]
    fn records_are_kept_by_namespace_and_survive_a_reopen() {
        let dir = std::env::temp_dir().join(format!("eth-mls-records-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("r.db");
        let account = LocalEthereumSigner::from_bytes(&[7; 32]).unwrap();
        let request = BindingRequest {
            domain: "records.test".into(),
            uri: "https://records.test".into(),
            chain_id: 1,
            valid_for: None,
        };
        let identity = block_on(Identity::create(&account, &request)).unwrap();
        let key = StoreKey::raw([3; 32]);
        let mut store: Store = Store::create(&path, &key, identity).unwrap();
        store.put_record("channel", b"device", b"state 1").unwrap();
        store.put_record("channel", b"device", b"state 2").unwrap();
        store
            .put_record("intents", b"\x00\x01", &[0xab; 100_000])
            .unwrap();
        store.put_record("intents", b"\x00\x00", b"first").unwrap();
        assert_eq!(
            store.record("channel", b"device").unwrap(),
            Some(b"state 2".to_vec())
        );
        assert_eq!(store.record("other", b"device").unwrap(), None);
        let keys: Vec<Vec<u8>> = store
            .records("intents")
            .unwrap()
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(keys, [b"\x00\x00".to_vec(), b"\x00\x01".to_vec()]);
        drop(store);
        let mut store: Store = Store::open(&path, &key).unwrap();
        assert_eq!(
            store.record("channel", b"device").unwrap(),
            Some(b"state 2".to_vec())
        );
        assert!(store.delete_record("channel", b"device").unwrap());
        assert!(!store.delete_record("channel", b"device").unwrap());
        assert_eq!(store.record("channel", b"device").unwrap(), None);
        assert!(store.put_record("", b"k", b"v").is_err());
        assert!(store.record(&"n".repeat(MAX_NAMESPACE + 1), b"k").is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
