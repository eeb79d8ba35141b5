//! Which channel identity key speaks for an account (decision 20, channel spec §9).
//!
//! A 1:1 session's peer is an account only through the account's registered ERC-7627 inbox
//! key: the session's identity key must equal it. [`PeerKeys`] is the client's cache of those
//! registered keys, sans-IO: it answers [`Binding::Bound`], [`Binding::NotBound`] or
//! [`Binding::LookUp`] (read the registry, then [`PeerKeys::record`]) from what it holds and the
//! time it is given.
//!
//! A cached key is trusted for [`PeerKeys::TTL`]; an identity key that differs from a cached
//! one triggers a fresh look-up (the account may have rotated its key), but at most once per
//! [`PeerKeys::MIN_REFRESH`] per account, so a flood of forged frames costs the client at most
//! one registry read per account and interval.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use eth_mls_siwe::Address;

/// What the cache knows of an (account, identity key) pair.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Binding {
    /// The key is the account's registered inbox key.
    Bound,
    /// It is not (and the registry was read recently enough to say so).
    NotBound,
    /// Read the account's registered key, then [`PeerKeys::record`] it and ask again.
    LookUp,
}

#[derive(Clone, Copy, Debug)]
struct Entry {
    /// The registered inbox key (`None`: none, revoked, expired, or not X448).
    key: Option<[u8; 56]>,
    fetched: Instant,
}

/// Registered inbox keys by account, with the time each was read.
#[derive(Clone, Debug, Default)]
pub struct PeerKeys {
    entries: BTreeMap<Address, Entry>,
}

impl PeerKeys {
    /// How long a key read from the registry is trusted without reading it again.
    pub const TTL: Duration = Duration::from_secs(300);
    /// The shortest time between two reads of one account's key.
    pub const MIN_REFRESH: Duration = Duration::from_secs(5);
    /// Accounts kept (the oldest read is dropped beyond).
    pub const MAX_ENTRIES: usize = 4096;

    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether `identity_key` speaks for `account` at `now`, as far as the cache knows.
    pub fn check(&self, account: Address, identity_key: &[u8; 56], now: Instant) -> Binding {
        let Some(e) = self.entries.get(&account) else {
            return Binding::LookUp;
        };
        let age = now.saturating_duration_since(e.fetched);
        if e.key.as_ref() == Some(identity_key) {
            if age < Self::TTL {
                Binding::Bound
            } else {
                Binding::LookUp
            }
        } else if age < Self::MIN_REFRESH {
            Binding::NotBound
        } else {
            Binding::LookUp
        }
    }

    /// The cached registered key of `account`, if read less than [`PeerKeys::TTL`] ago.
    pub fn registered(&self, account: Address, now: Instant) -> Option<Option<[u8; 56]>> {
        self.entries
            .get(&account)
            .filter(|e| now.saturating_duration_since(e.fetched) < Self::TTL)
            .map(|e| e.key)
    }

    /// Records `account`'s registered inbox key as read at `now`.
    pub fn record(&mut self, account: Address, key: Option<[u8; 56]>, now: Instant) {
        if self.entries.len() >= Self::MAX_ENTRIES && !self.entries.contains_key(&account) {
            let oldest = self
                .entries
                .iter()
                .min_by_key(|(_, e)| e.fetched)
                .map(|(a, _)| *a);
            if let Some(a) = oldest {
                self.entries.remove(&a);
            }
        }
        self.entries.insert(account, Entry { key, fetched: now });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: Address = Address::repeat_byte(0xaa);

    #[test]
    fn unknown_accounts_are_looked_up_and_recorded_keys_answer() {
        let t = Instant::now();
        let mut p = PeerKeys::new();
        assert_eq!(p.check(A, &[1; 56], t), Binding::LookUp);
        p.record(A, Some([1; 56]), t);
        assert_eq!(p.check(A, &[1; 56], t), Binding::Bound);
        assert_eq!(p.check(A, &[2; 56], t), Binding::NotBound);
        assert_eq!(p.registered(A, t), Some(Some([1; 56])));
    }

    #[test]
    fn a_mismatch_is_looked_up_again_only_after_the_refresh_interval() {
        let t = Instant::now();
        let mut p = PeerKeys::new();
        p.record(A, Some([1; 56]), t);
        let soon = t + PeerKeys::MIN_REFRESH / 2;
        assert_eq!(p.check(A, &[2; 56], soon), Binding::NotBound);
        let later = t + PeerKeys::MIN_REFRESH;
        assert_eq!(p.check(A, &[2; 56], later), Binding::LookUp);
        // The account rotated its key: the new one is bound, the old one no more.
        p.record(A, Some([2; 56]), later);
        assert_eq!(p.check(A, &[2; 56], later), Binding::Bound);
        assert_eq!(p.check(A, &[1; 56], later), Binding::NotBound);
    }

    #[test]
    fn no_registered_key_binds_nothing_and_old_reads_expire() {
        let t = Instant::now();
        let mut p = PeerKeys::new();
        p.record(A, None, t);
        assert_eq!(p.check(A, &[0; 56], t), Binding::NotBound);
        p.record(A, Some([1; 56]), t);
        assert_eq!(p.check(A, &[1; 56], t + PeerKeys::TTL), Binding::LookUp);
        assert_eq!(p.registered(A, t + PeerKeys::TTL), None);
    }

    #[test]
    fn the_cache_is_bounded() {
        let t = Instant::now();
        let mut p = PeerKeys::new();
        for i in 0..PeerKeys::MAX_ENTRIES + 10 {
            let mut a = [0u8; 20];
            a[..8].copy_from_slice(&(i as u64).to_be_bytes());
            p.record(Address::from(a), None, t + Duration::from_millis(i as u64));
        }
        assert_eq!(p.entries.len(), PeerKeys::MAX_ENTRIES);
        // The oldest reads went first.
        assert_eq!(p.check(Address::ZERO, &[0; 56], t), Binding::LookUp);
    }
}
