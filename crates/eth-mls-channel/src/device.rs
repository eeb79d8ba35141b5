//! A device (§4): its keys, its prekeys, its sessions, and receiving (§9).

use std::collections::{BTreeMap, BTreeSet};
use std::marker::PhantomData;

use eth_mls_crypto::{Backend, DefaultBackend};
use zeroize::Zeroizing;

use crate::bundle::{
    OneTimePrekey, PrekeyBundle, SignedPrekey, VerifiedBundle, identity_tbs, signed_prekey_tbs,
};
use crate::codec::{Reader, Writer};
use crate::message::ChannelMessage;
use crate::primitives::{Hex, KeyPair, KeySource, OsKeySource, sig_public, sign};
use crate::secret::{Ed448Seed, Secret, X448Secret};
use crate::session::{
    Pending, Session, X3dhPublic, session_id, state_error, x3dh_initiator, x3dh_responder,
};
use crate::{Error, SPK_GRACE};

/// Version of the encoding of [`Device::to_bytes`].
pub const DEVICE_STATE_VERSION: u16 = 1;

/// Which of a bundle's one-time prekeys the initiator uses (§6.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OneTimePrekeyChoice {
    /// One chosen uniformly at random when the bundle lists any (the recommended choice).
    Random,
    /// The one with this id (a test hook, §11).
    Id(u32),
    /// None: X3DH without DH4.
    None,
}

/// A signed prekey held by the device.
#[derive(Clone)]
struct HeldSignedPrekey {
    id: u32,
    expiry: u64,
    pair: KeyPair,
}

/// A plaintext received through [`Device::receive`].
#[derive(Clone, PartialEq, Eq)]
pub struct Received {
    /// The session it arrived in.
    pub session_id: [u8; 32],
    /// The peer's Ethereum account as the session's AD states it.
    pub peer_address: [u8; 20],
    /// The peer's identity key. For a new session the application MUST check that it is
    /// bound to `peer_address` and [`Device::remove_session`] if not (§9).
    pub peer_identity_key: [u8; 56],
    /// Whether this message created the session.
    pub new_session: bool,
    /// The decrypted message.
    pub plaintext: Vec<u8>,
}

impl std::fmt::Debug for Received {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Received")
            .field("session_id", &Hex(&self.session_id))
            .field("peer_address", &Hex(&self.peer_address))
            .field("new_session", &self.new_session)
            .field("plaintext_len", &self.plaintext.len())
            .finish_non_exhaustive()
    }
}

/// One device of an Ethereum account: identity key, Ed448 signature key, signed and one-time
/// prekeys, and the sessions with other devices. A sans-IO state machine: feed it bundles and
/// received bytes, get bytes to send and plaintexts; persist [`Device::to_bytes`] after every
/// call that changed it (in the same atomic step that hands a plaintext on, §9).
///
/// Every method that fails leaves the device exactly as it was.
pub struct Device<B: Backend = DefaultBackend> {
    address: [u8; 20],
    identity: KeyPair,
    signature_seed: Ed448Seed,
    signature_key: [u8; 57],
    signed_prekeys: Vec<HeldSignedPrekey>,
    one_time_prekeys: BTreeMap<u32, KeyPair>,
    used_one_time_prekeys: BTreeSet<u32>,
    next_spk_id: u32,
    next_opk_id: u32,
    sessions: BTreeMap<[u8; 32], Session>,
    keys: Box<dyn KeySource>,
    backend: PhantomData<fn() -> B>,
}

impl<B: Backend> std::fmt::Debug for Device<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Device")
            .field("backend", &B::NAME)
            .field("address", &Hex(&self.address))
            .field("identity_key", &Hex(self.identity.public()))
            .field("signature_key", &Hex(&self.signature_key))
            .field(
                "signed_prekeys",
                &self.signed_prekeys.iter().map(|s| s.id).collect::<Vec<_>>(),
            )
            .field("one_time_prekeys", &self.one_time_prekeys.len())
            .field("used_one_time_prekeys", &self.used_one_time_prekeys.len())
            .field("sessions", &self.sessions.len())
            .finish_non_exhaustive()
    }
}

fn next_id(counter: &mut u32, kind: &'static str) -> Result<u32, Error> {
    let id = *counter;
    *counter = id.checked_add(1).ok_or(Error::IdsExhausted { kind })?;
    Ok(id)
}

impl<B: Backend> Device<B> {
    /// A device of `address` with a fresh identity key, signing with `signature_seed` (the
    /// device's MLS signature key, bound to the account by its credential). It has no
    /// prekeys yet: call [`Device::rotate_signed_prekey`] and
    /// [`Device::generate_one_time_prekeys`] before publishing a bundle.
    pub fn generate(address: [u8; 20], signature_seed: Ed448Seed) -> Result<Self, Error> {
        let identity = KeyPair::generate::<B>()?;
        Self::build(address, identity, signature_seed)
    }

    /// A device from existing keys (a test hook, §11, and for migrating keys).
    pub fn from_keys(
        address: [u8; 20],
        identity: X448Secret,
        signature_seed: Ed448Seed,
    ) -> Result<Self, Error> {
        let identity = KeyPair::from_secret::<B>(identity)?;
        Self::build(address, identity, signature_seed)
    }

    fn build(
        address: [u8; 20],
        identity: KeyPair,
        signature_seed: Ed448Seed,
    ) -> Result<Self, Error> {
        let signature_key = sig_public::<B>(&signature_seed)?;
        Ok(Self {
            address,
            identity,
            signature_seed,
            signature_key,
            signed_prekeys: Vec::new(),
            one_time_prekeys: BTreeMap::new(),
            used_one_time_prekeys: BTreeSet::new(),
            next_spk_id: 1,
            next_opk_id: 1,
            sessions: BTreeMap::new(),
            keys: Box::new(OsKeySource::<B>::default()),
            backend: PhantomData,
        })
    }

    /// Replaces the source of ephemeral and ratchet keys (a test hook, §11).
    pub fn set_key_source(&mut self, keys: Box<dyn KeySource>) {
        self.keys = keys;
    }

    /// The owner's Ethereum account.
    pub fn address(&self) -> &[u8; 20] {
        &self.address
    }

    /// The identity public key `IK`.
    pub fn identity_key(&self) -> &[u8; 56] {
        self.identity.public()
    }

    /// The Ed448 signature public key.
    pub fn signature_key(&self) -> &[u8; 57] {
        &self.signature_key
    }

    // ------------------------------------------------------------------ prekeys

    /// Adds a signed prekey with a given id (a test hook, §11; devices use
    /// [`Device::rotate_signed_prekey`]). Ids are never reused.
    pub fn add_signed_prekey(
        &mut self,
        id: u32,
        expiry: u64,
        private: X448Secret,
    ) -> Result<(), Error> {
        if self.signed_prekeys.iter().any(|s| s.id == id) {
            return Err(Error::IdInUse { kind: "signed", id });
        }
        let pair = KeyPair::from_secret::<B>(private)?;
        self.signed_prekeys
            .push(HeldSignedPrekey { id, expiry, pair });
        self.signed_prekeys.sort_by_key(|s| s.id);
        self.next_spk_id = self.next_spk_id.max(id.saturating_add(1));
        Ok(())
    }

    /// Adds a one-time prekey with a given id (a test hook, §11; devices use
    /// [`Device::generate_one_time_prekeys`]).
    pub fn add_one_time_prekey(&mut self, id: u32, private: X448Secret) -> Result<(), Error> {
        if self.one_time_prekeys.contains_key(&id) || self.used_one_time_prekeys.contains(&id) {
            return Err(Error::IdInUse {
                kind: "one-time",
                id,
            });
        }
        let pair = KeyPair::from_secret::<B>(private)?;
        self.one_time_prekeys.insert(id, pair);
        self.next_opk_id = self.next_opk_id.max(id.saturating_add(1));
        Ok(())
    }

    /// Records a one-time prekey id as used (its key, if held, is deleted).
    pub fn mark_one_time_prekey_used(&mut self, id: u32) {
        self.one_time_prekeys.remove(&id);
        self.used_one_time_prekeys.insert(id);
        self.next_opk_id = self.next_opk_id.max(id.saturating_add(1));
    }

    /// Creates a new current signed prekey valid until `now + lifetime` seconds (at most 30
    /// days is recommended), keeps the older ones for their grace period and deletes those
    /// past it (§7.7). Returns the new id.
    pub fn rotate_signed_prekey(&mut self, now: u64, lifetime: u64) -> Result<u32, Error> {
        let pair = KeyPair::generate::<B>()?;
        let mut counter = self.next_spk_id;
        let id = next_id(&mut counter, "signed")?;
        self.next_spk_id = counter;
        self.signed_prekeys.push(HeldSignedPrekey {
            id,
            expiry: now.saturating_add(lifetime),
            pair,
        });
        self.prune(now);
        Ok(id)
    }

    /// Deletes the signed prekeys whose grace period is over (`now >= expiry + SPK_GRACE`).
    pub fn prune(&mut self, now: u64) {
        self.signed_prekeys
            .retain(|s| now < s.expiry.saturating_add(SPK_GRACE));
    }

    /// Generates `count` one-time prekeys with fresh ids; returns the ids.
    pub fn generate_one_time_prekeys(&mut self, count: usize) -> Result<Vec<u32>, Error> {
        let mut counter = self.next_opk_id;
        let mut new = Vec::with_capacity(count);
        for _ in 0..count {
            new.push((
                next_id(&mut counter, "one-time")?,
                KeyPair::generate::<B>()?,
            ));
        }
        self.next_opk_id = counter;
        Ok(new
            .into_iter()
            .map(|(id, pair)| {
                self.one_time_prekeys.insert(id, pair);
                id
            })
            .collect())
    }

    /// Ids of the one-time prekeys still held (unused).
    pub fn one_time_prekey_ids(&self) -> Vec<u32> {
        self.one_time_prekeys.keys().copied().collect()
    }

    /// Ids and expiries of the signed prekeys held, oldest first.
    pub fn signed_prekeys(&self) -> Vec<(u32, u64)> {
        self.signed_prekeys
            .iter()
            .map(|s| (s.id, s.expiry))
            .collect()
    }

    /// This device's bundle: the current (newest) signed prekey and up to
    /// `max_one_time_prekeys` unused one-time prekeys (lowest ids first), signed now.
    pub fn bundle(&self, now: u64, max_one_time_prekeys: usize) -> Result<PrekeyBundle, Error> {
        let spk = self.signed_prekeys.last().ok_or(Error::NoSignedPrekey)?;
        if now >= spk.expiry {
            return Err(Error::SpkExpired {
                id: spk.id,
                expiry: spk.expiry,
                now,
            });
        }
        let ik = self.identity.public();
        let identity_signature = sign::<B>(&self.signature_seed, &identity_tbs(&self.address, ik))?;
        let tbs = signed_prekey_tbs(ik, spk.id, spk.expiry, spk.pair.public());
        Ok(PrekeyBundle {
            address: self.address,
            signature_key: self.signature_key,
            identity_key: *ik,
            identity_signature,
            signed_prekey: SignedPrekey {
                id: spk.id,
                expiry: spk.expiry,
                key: *spk.pair.public(),
                signature: sign::<B>(&self.signature_seed, &tbs)?,
            },
            one_time_prekeys: self
                .one_time_prekeys
                .iter()
                .take(max_one_time_prekeys)
                .map(|(id, k)| OneTimePrekey {
                    id: *id,
                    key: *k.public(),
                })
                .collect(),
        })
    }

    // ------------------------------------------------------------------ sessions

    /// Starts a session with the device behind `bundle` (X3DH as initiator, §6.1) and
    /// returns its id. Messages from [`Device::encrypt`] are prekey messages until the peer
    /// answers.
    pub fn initiate(
        &mut self,
        bundle: &VerifiedBundle,
        choice: OneTimePrekeyChoice,
    ) -> Result<[u8; 32], Error> {
        let b = bundle.bundle();
        let opk = match choice {
            OneTimePrekeyChoice::None => None,
            OneTimePrekeyChoice::Id(id) => Some(
                b.one_time_prekeys
                    .iter()
                    .find(|k| k.id == id)
                    .ok_or(Error::OpkNotInBundle { id })?,
            ),
            OneTimePrekeyChoice::Random if b.one_time_prekeys.is_empty() => None,
            OneTimePrekeyChoice::Random => {
                let mut r = [0u8; 8];
                B::fill_random(&mut r).map_err(|_| Error::KeySource("random generator failed"))?;
                let i = u64::from_le_bytes(r) % b.one_time_prekeys.len() as u64;
                b.one_time_prekeys.get(i as usize)
            }
        };
        let ek = KeyPair::from_secret::<B>(self.keys.next_key()?)?;
        let public = X3dhPublic {
            ik_a: self.identity.public(),
            ik_b: &b.identity_key,
            ek_a: ek.public(),
            address_a: &self.address,
            address_b: &b.address,
        };
        let x = x3dh_initiator::<B>(
            &self.identity,
            &ek,
            &b.signed_prekey.key,
            opk.map(|k| &k.key),
            &public,
        )?;
        let pending = Pending {
            sender: self.address,
            identity_key: *self.identity.public(),
            ephemeral_key: *ek.public(),
            signed_prekey_id: b.signed_prekey.id,
            one_time_prekey_id: opk.map(|k| k.id),
        };
        drop(ek);
        let ratchet = KeyPair::from_secret::<B>(self.keys.next_key()?)?;
        let session = Session::new_initiator::<B>(x, ratchet, &b.signed_prekey.key, pending)?;
        let id = *session.id();
        self.sessions.insert(id, session);
        Ok(id)
    }

    /// Encrypts `plaintext` in session `session_id`; returns the `ChannelMessage` bytes.
    pub fn encrypt(&mut self, session_id: &[u8; 32], plaintext: &[u8]) -> Result<Vec<u8>, Error> {
        let session = self
            .sessions
            .get_mut(session_id)
            .ok_or(Error::UnknownSession {
                session_id: *session_id,
            })?;
        session.encrypt::<B>(plaintext)
    }

    /// Receives a `ChannelMessage` at `now` (unix seconds), as §9 specifies: decodes it,
    /// routes it to its session or creates one from a prekey message, and decrypts. On any
    /// error nothing changes: no session created or modified, no prekey consumed, no key
    /// drawn. [`Error::Duplicate`] is routine on eth-mls transports: drop it silently.
    pub fn receive(&mut self, bytes: &[u8], now: u64) -> Result<Received, Error> {
        let message = ChannelMessage::decode(bytes)?;
        let p = match message {
            ChannelMessage::Normal(m) => {
                return self.decrypt_existing(&m.session_id, &m.message);
            }
            ChannelMessage::Prekey(p) => p,
        };
        let sid = session_id::<B>(&p.identity_key, self.identity.public(), &p.ephemeral_key)?;
        if self.sessions.contains_key(&sid) {
            return self.decrypt_existing(&sid, &p.message);
        }
        let spk = self
            .signed_prekeys
            .iter()
            .find(|s| s.id == p.signed_prekey_id)
            .ok_or(Error::UnknownSpk {
                id: p.signed_prekey_id,
            })?;
        if now >= spk.expiry.saturating_add(SPK_GRACE) {
            return Err(Error::SpkExpired {
                id: spk.id,
                expiry: spk.expiry,
                now,
            });
        }
        let opk = match p.one_time_prekey_id {
            None => None,
            Some(id) => match self.one_time_prekeys.get(&id) {
                Some(k) => Some(k),
                None if self.used_one_time_prekeys.contains(&id) => {
                    return Err(Error::OpkReused { id });
                }
                None => return Err(Error::UnknownOpk { id }),
            },
        };
        let public = X3dhPublic {
            ik_a: &p.identity_key,
            ik_b: self.identity.public(),
            ek_a: &p.ephemeral_key,
            address_a: &p.sender,
            address_b: &self.address,
        };
        let x = x3dh_responder::<B>(&self.identity, &spk.pair, opk, &public)?;
        let mut session = Session::new_responder(x, spk.pair.clone());
        let plaintext = session.decrypt::<B>(&p.message, self.keys.as_mut())?;
        if let Some(id) = p.one_time_prekey_id {
            self.mark_one_time_prekey_used(id);
        }
        let received = Received {
            session_id: sid,
            peer_address: *session.peer_address(),
            peer_identity_key: *session.peer_identity_key(),
            new_session: true,
            plaintext,
        };
        self.sessions.insert(sid, session);
        Ok(received)
    }

    fn decrypt_existing(
        &mut self,
        sid: &[u8; 32],
        message: &crate::message::RatchetMessage,
    ) -> Result<Received, Error> {
        let session = self
            .sessions
            .get_mut(sid)
            .ok_or(Error::UnknownSession { session_id: *sid })?;
        let plaintext = session.decrypt::<B>(message, self.keys.as_mut())?;
        Ok(Received {
            session_id: *sid,
            peer_address: *session.peer_address(),
            peer_identity_key: *session.peer_identity_key(),
            new_session: false,
            plaintext,
        })
    }

    /// The session with this id.
    pub fn session(&self, session_id: &[u8; 32]) -> Option<&Session> {
        self.sessions.get(session_id)
    }

    /// Every session, by id.
    pub fn sessions(&self) -> impl Iterator<Item = &Session> {
        self.sessions.values()
    }

    /// The sessions with devices of `address`, oldest id order.
    pub fn sessions_with<'a>(&'a self, address: &'a [u8; 20]) -> impl Iterator<Item = &'a Session> {
        self.sessions
            .values()
            .filter(move |s| s.peer_address() == address)
    }

    /// Deletes a session (e.g. when its peer's identity key is not bound to its account).
    /// Returns whether it existed.
    pub fn remove_session(&mut self, session_id: &[u8; 32]) -> bool {
        self.sessions.remove(session_id).is_some()
    }

    /// Adds (or replaces) a session restored with [`Session::from_bytes`].
    pub fn insert_session(&mut self, session: Session) {
        self.sessions.insert(*session.id(), session);
    }

    // ------------------------------------------------------------------ state

    /// The versioned encoding of the whole device: keys, prekeys, used ids, sessions. It
    /// holds secrets: the buffer is wiped on drop; store it encrypted (decision 18).
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        self.encode(true)
    }

    /// [`Device::to_bytes`] without the sessions (the same encoding with none): keys,
    /// prekeys and used ids only, for an application that stores each session on its own
    /// ([`Session::to_bytes`], restored with [`Device::insert_session`]) and so writes only
    /// what a message changed. It holds secrets: the buffer is wiped on drop.
    pub fn keys_to_bytes(&self) -> Zeroizing<Vec<u8>> {
        self.encode(false)
    }

    fn encode(&self, with_sessions: bool) -> Zeroizing<Vec<u8>> {
        let len = 2
            + 20
            + 112
            + 57
            + 57
            + 8
            + 4
            + self.signed_prekeys.len() * 124
            + 4
            + self.one_time_prekeys.len() * 116
            + 4
            + self.used_one_time_prekeys.len() * 4
            + 4
            + if with_sessions {
                self.sessions
                    .values()
                    .map(Session::encoded_len)
                    .sum::<usize>()
            } else {
                0
            };
        let mut w = Writer::with_capacity(len);
        w.u16(DEVICE_STATE_VERSION);
        w.bytes(&self.address);
        w.bytes(self.identity.secret().expose());
        w.bytes(self.identity.public());
        w.bytes(self.signature_seed.expose());
        w.bytes(&self.signature_key);
        w.u32(self.next_spk_id);
        w.u32(self.next_opk_id);
        w.u32(self.signed_prekeys.len() as u32);
        for s in &self.signed_prekeys {
            w.u32(s.id);
            w.u64(s.expiry);
            w.bytes(s.pair.secret().expose());
            w.bytes(s.pair.public());
        }
        w.u32(self.one_time_prekeys.len() as u32);
        for (id, k) in &self.one_time_prekeys {
            w.u32(*id);
            w.bytes(k.secret().expose());
            w.bytes(k.public());
        }
        w.u32(self.used_one_time_prekeys.len() as u32);
        for id in &self.used_one_time_prekeys {
            w.u32(*id);
        }
        if with_sessions {
            w.u32(self.sessions.len() as u32);
            for s in self.sessions.values() {
                s.write(&mut w);
            }
        } else {
            w.u32(0);
        }
        Zeroizing::new(w.buf)
    }

    /// Restores a device from [`Device::to_bytes`] (with the operating system's key source).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, Error> {
        Self::read(bytes).map_err(state_error)
    }

    fn read(bytes: &[u8]) -> Result<Self, Error> {
        let mut r = Reader::new(bytes);
        let version = r.u16("device version")?;
        if version != DEVICE_STATE_VERSION {
            return Err(Error::UnsupportedVersion { version });
        }
        let address = r.array("address")?;
        let identity = KeyPair::from_parts(Secret::new(r.array("identity")?), r.array("ik")?);
        let signature_seed = Secret::new(r.array("signature seed")?);
        let signature_key = r.array("signature key")?;
        let next_spk_id = r.u32("next spk id")?;
        let next_opk_id = r.u32("next opk id")?;
        let mut signed_prekeys = Vec::new();
        for _ in 0..r.u32("spk count")? {
            signed_prekeys.push(HeldSignedPrekey {
                id: r.u32("spk id")?,
                expiry: r.u64("spk expiry")?,
                pair: KeyPair::from_parts(Secret::new(r.array("spk")?), r.array("spk public")?),
            });
        }
        let mut one_time_prekeys = BTreeMap::new();
        for _ in 0..r.u32("opk count")? {
            let id = r.u32("opk id")?;
            let pair = KeyPair::from_parts(Secret::new(r.array("opk")?), r.array("opk public")?);
            one_time_prekeys.insert(id, pair);
        }
        let mut used_one_time_prekeys = BTreeSet::new();
        for _ in 0..r.u32("used count")? {
            used_one_time_prekeys.insert(r.u32("used id")?);
        }
        let mut sessions = BTreeMap::new();
        for _ in 0..r.u32("session count")? {
            let s = Session::read(&mut r)?;
            sessions.insert(*s.id(), s);
        }
        r.finish("trailing bytes")?;
        Ok(Self {
            address,
            identity,
            signature_seed,
            signature_key,
            signed_prekeys,
            one_time_prekeys,
            used_one_time_prekeys,
            next_spk_id,
            next_opk_id,
            sessions,
            keys: Box::new(OsKeySource::<B>::default()),
            backend: PhantomData,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn device_and_session_are_send_and_sync() {
        assert_send_sync::<Device>();
        assert_send_sync::<Session>();
    }
}
