//! Signatures verified ahead of time, in parallel, so that openmls's sequential checks (for
//! example of every leaf of a Welcome's ratchet tree) find them already done.
//!
//! Sound because a verification is a pure function of (scheme, public key, message,
//! signature): only positive results of exactly that tuple are recorded (by a SHA-256 of its
//! length-prefixed parts), and only by [`VerifiedSignatures::verify_all`] itself.

use std::collections::HashSet;
use std::sync::Mutex;

use openmls_traits::types::SignatureScheme;

use crate::backend::{Backend, HashAlg};
use crate::crypto::sig_alg;

/// One signature to verify.
#[derive(Clone, Copy, Debug)]
pub struct SignedMessage<'a> {
    /// The scheme (Ed448 or Ed25519).
    pub scheme: SignatureScheme,
    /// The public key.
    pub public_key: &'a [u8],
    /// The exact bytes that were signed.
    pub message: &'a [u8],
    /// The signature.
    pub signature: &'a [u8],
}

/// A set of signatures known to be valid; attach it to a provider with
/// [`crate::Provider::with_verified_signatures`].
#[derive(Debug, Default)]
pub struct VerifiedSignatures {
    verified: Mutex<HashSet<Vec<u8>>>,
}

/// `items.iter().map(f)`, on as many threads as the machine has when there are at least
/// `min_items` items. A thread that panics yields `R::default()` for its items.
pub fn parallel_map<T: Sync, R: Send + Default>(
    items: &[T],
    min_items: usize,
    f: impl Fn(&T) -> R + Sync,
) -> Vec<R> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    if items.len() < min_items.max(2) || threads == 1 {
        return items.iter().map(f).collect();
    }
    let chunk = items.len().div_ceil(threads);
    let f = &f;
    std::thread::scope(|s| {
        let handles: Vec<_> = items
            .chunks(chunk)
            .map(|c| {
                (
                    c.len(),
                    s.spawn(move || c.iter().map(f).collect::<Vec<_>>()),
                )
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|(len, h)| {
                h.join()
                    .unwrap_or_else(|_| (0..len).map(|_| R::default()).collect())
            })
            .collect()
    })
}

/// Ed448 signatures in at least this many are batch-verified.
#[cfg(feature = "rustcrypto")]
const MIN_BATCH: usize = 8;

/// `verify_all`'s results: the Ed448 items in one batch per thread, the rest with `one`.
#[cfg(feature = "rustcrypto")]
fn batched<B: Backend>(
    items: &[SignedMessage<'_>],
    one: impl Fn(&SignedMessage<'_>) -> Option<Vec<u8>> + Sync,
) -> Vec<Option<Vec<u8>>> {
    let ed448: Vec<usize> = (0..items.len())
        .filter(|&i| items[i].scheme == SignatureScheme::ED448)
        .collect();
    let mut seed = [0u8; 32];
    if ed448.len() < MIN_BATCH || getrandom::fill(&mut seed).is_err() {
        return parallel_map(items, 2, one);
    }
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let chunks: Vec<&[usize]> = ed448.chunks(ed448.len().div_ceil(threads)).collect();
    let mut results: Vec<Option<Vec<u8>>> = vec![None; items.len()];
    let per_chunk = parallel_map(&chunks, 2, |chunk| -> Vec<(usize, Option<Vec<u8>>)> {
        let batch: Vec<(&[u8], &[u8], &[u8])> = chunk
            .iter()
            .map(|&i| (items[i].public_key, items[i].message, items[i].signature))
            .collect();
        if crate::curve448::ed448_verify_batch(&batch, &seed) {
            chunk.iter().map(|&i| (i, key::<B>(&items[i]))).collect()
        } else {
            chunk.iter().map(|&i| (i, one(&items[i]))).collect()
        }
    });
    for (i, result) in per_chunk.into_iter().flatten() {
        results[i] = result;
    }
    let others: Vec<usize> = (0..items.len())
        .filter(|&i| items[i].scheme != SignatureScheme::ED448)
        .collect();
    let other_results = parallel_map(&others, 2, |&i| one(&items[i]));
    for (i, result) in others.into_iter().zip(other_results) {
        results[i] = result;
    }
    results
}

fn key<B: Backend>(item: &SignedMessage<'_>) -> Option<Vec<u8>> {
    let mut input = Vec::with_capacity(
        2 + 12 + item.public_key.len() + item.message.len() + item.signature.len(),
    );
    input.extend_from_slice(&(item.scheme as u16).to_be_bytes());
    for part in [item.public_key, item.message, item.signature] {
        input.extend_from_slice(&(part.len() as u32).to_be_bytes());
        input.extend_from_slice(part);
    }
    B::hash(HashAlg::Sha256, &input).ok()
}

impl VerifiedSignatures {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Verifies every item, on as many threads as the machine has, records the valid ones
    /// and returns which were valid.
    ///
    /// With the `rustcrypto` feature, Ed448 signatures are checked in batches (one per thread,
    /// `curve448`'s batch verification, whatever `B` is): a batch that holds has every signature valid under
    /// the rules both backends share; a batch that does not is verified one by one with `B`,
    /// so the verdicts are always `B`'s.
    pub fn verify_all<B: Backend>(&self, items: &[SignedMessage<'_>]) -> Vec<bool> {
        let one = |item: &SignedMessage<'_>| -> Option<Vec<u8>> {
            let alg = sig_alg(item.scheme).ok()?;
            B::verify(alg, item.public_key, item.message, item.signature).ok()?;
            key::<B>(item)
        };
        #[cfg(feature = "rustcrypto")]
        let results = batched::<B>(items, one);
        #[cfg(not(feature = "rustcrypto"))]
        let results = parallel_map(items, 2, one);
        let valid = results.iter().map(Option::is_some).collect();
        if let Ok(mut set) = self.verified.lock() {
            set.extend(results.into_iter().flatten());
        }
        valid
    }

    /// Whether this exact signature was verified.
    pub(crate) fn contains<B: Backend>(&self, item: &SignedMessage<'_>) -> bool {
        match (key::<B>(item), self.verified.lock()) {
            (Some(k), Ok(set)) => set.contains(&k),
            _ => false,
        }
    }

    /// How many signatures are recorded.
    pub fn len(&self) -> usize {
        self.verified.lock().map_or(0, |s| s.len())
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
