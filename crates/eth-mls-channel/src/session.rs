//! X3DH (§6) and the Double Ratchet session (§7).

use std::collections::VecDeque;

use eth_mls_crypto::Backend;
use zeroize::Zeroizing;

use crate::codec::{Reader, Writer};
use crate::message::{ChannelMessage, MessageHeader, NormalMessage, PrekeyMessage, RatchetMessage};
use crate::primitives::{
    Hex, KeyPair, KeySource, ZERO64, dh, hkdf, kdf_ck, kdf_ck_next, kdf_rk, open, seal, sha512,
};
use crate::secret::{Key64, Secret};
use crate::{Error, LABEL_SID, LABEL_X3DH, MAX_RECEIVING_CHAINS, MAX_SKIP, MAX_SKIPPED_PER_CHAIN};

/// Version of the encoding of [`Session::to_bytes`].
pub const SESSION_STATE_VERSION: u16 = 1;

/// Length of the associated data `IK_A || IK_B || address_A || address_B`.
pub const AD_LEN: usize = 152;

/// `session_id = SHA512(LABEL_SID || IK_A || IK_B || EK)[..32]` (§6.1).
pub fn session_id<B: Backend>(
    ik_a: &[u8; 56],
    ik_b: &[u8; 56],
    ek_a: &[u8; 56],
) -> Result<[u8; 32], Error> {
    let h = sha512::<B>(&[LABEL_SID, ik_a, ik_b, ek_a].concat())?;
    let mut out = [0u8; 32];
    out.copy_from_slice(h.get(..32).ok_or(Error::State {
        what: "hash length",
    })?);
    Ok(out)
}

/// The output of X3DH (§6.1 step 3). `Debug` shows no secret.
pub struct X3dh {
    pub(crate) sk: Key64,
    pub(crate) ad: [u8; AD_LEN],
    pub(crate) session_id: [u8; 32],
}

impl X3dh {
    /// `SK`, the Double Ratchet's initial secret.
    pub fn sk(&self) -> &Secret<64> {
        &self.sk
    }
    /// `AD = IK_A || IK_B || address_A || address_B`.
    pub fn ad(&self) -> &[u8; AD_LEN] {
        &self.ad
    }
    /// The session id.
    pub fn session_id(&self) -> &[u8; 32] {
        &self.session_id
    }
}

impl std::fmt::Debug for X3dh {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("X3dh")
            .field("session_id", &Hex(&self.session_id))
            .finish_non_exhaustive()
    }
}

/// The public inputs of X3DH besides the DH outputs.
#[derive(Debug, Clone, Copy)]
pub struct X3dhPublic<'a> {
    /// `IK_A`.
    pub ik_a: &'a [u8; 56],
    /// `IK_B`.
    pub ik_b: &'a [u8; 56],
    /// `EK_A`.
    pub ek_a: &'a [u8; 56],
    /// Alice's account.
    pub address_a: &'a [u8; 20],
    /// Bob's account (the bundle's `address`).
    pub address_b: &'a [u8; 20],
}

/// SK, AD and session_id from the DH outputs (§6.1 step 3).
fn x3dh_derive<B: Backend>(dhs: &[Secret<56>], p: &X3dhPublic<'_>) -> Result<X3dh, Error> {
    let mut ikm = Zeroizing::new(Vec::with_capacity(57 + 56 * 4));
    ikm.extend_from_slice(&[0xFF; 57]);
    for d in dhs {
        ikm.extend_from_slice(d.expose());
    }
    let sk = hkdf::<B>(&ZERO64, &ikm, LABEL_X3DH, 64)?;
    let sk = Secret::from_slice(sk.expose()).ok_or(Error::State { what: "SK length" })?;
    let mut ad = [0u8; AD_LEN];
    ad[..56].copy_from_slice(p.ik_a);
    ad[56..112].copy_from_slice(p.ik_b);
    ad[112..132].copy_from_slice(p.address_a);
    ad[132..].copy_from_slice(p.address_b);
    Ok(X3dh {
        sk,
        ad,
        session_id: session_id::<B>(p.ik_a, p.ik_b, p.ek_a)?,
    })
}

/// X3DH as initiator (§6.1 steps 2-3): DH1..DH4 in order, failing with [`Error::ZeroDh`] at
/// the first all-zero output. [`crate::Device::initiate`] runs it; public for the vectors.
pub fn x3dh_initiator<B: Backend>(
    ik_a: &KeyPair,
    ek: &KeyPair,
    spk_b: &[u8; 56],
    opk_b: Option<&[u8; 56]>,
    p: &X3dhPublic<'_>,
) -> Result<X3dh, Error> {
    let mut dhs = vec![
        dh::<B>(ik_a.secret(), spk_b)?,
        dh::<B>(ek.secret(), p.ik_b)?,
        dh::<B>(ek.secret(), spk_b)?,
    ];
    if let Some(opk) = opk_b {
        dhs.push(dh::<B>(ek.secret(), opk)?);
    }
    x3dh_derive::<B>(&dhs, p)
}

/// X3DH as responder (§6.3). [`crate::Device::receive`] runs it; public for the vectors.
pub fn x3dh_responder<B: Backend>(
    ik_b: &KeyPair,
    spk_b: &KeyPair,
    opk_b: Option<&KeyPair>,
    p: &X3dhPublic<'_>,
) -> Result<X3dh, Error> {
    let mut dhs = vec![
        dh::<B>(spk_b.secret(), p.ik_a)?,
        dh::<B>(ik_b.secret(), p.ek_a)?,
        dh::<B>(spk_b.secret(), p.ek_a)?,
    ];
    if let Some(opk) = opk_b {
        dhs.push(dh::<B>(opk.secret(), p.ek_a)?);
    }
    x3dh_derive::<B>(&dhs, p)
}

/// A receiving chain (§7.1).
#[derive(Clone)]
struct Chain {
    dh: [u8; 56],
    ck: Option<Key64>,
    nr: u64,
    skipped: VecDeque<(u32, Key64)>,
}

/// The X3DH fields the initiator repeats until it hears from the responder (§8.2).
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Pending {
    pub(crate) sender: [u8; 20],
    pub(crate) identity_key: [u8; 56],
    pub(crate) ephemeral_key: [u8; 56],
    pub(crate) signed_prekey_id: u32,
    pub(crate) one_time_prekey_id: Option<u32>,
}

/// A Double Ratchet session with one peer device (§7.1).
///
/// `Debug` shows only public fields. Serialise it with [`Session::to_bytes`] (versioned; the
/// result holds secrets and is wiped on drop) and keep it encrypted at rest.
#[derive(Clone)]
pub struct Session {
    initiator: bool,
    ad: [u8; AD_LEN],
    session_id: [u8; 32],
    rk: Key64,
    dhs: KeyPair,
    cks: Option<Key64>,
    ns: u32,
    pn: u32,
    chains: Vec<Chain>,
    pending: Option<Pending>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("session_id", &Hex(&self.session_id))
            .field("initiator", &self.initiator)
            .field("peer_address", &Hex(self.peer_address()))
            .field("ns", &self.ns)
            .field("pn", &self.pn)
            .field("receiving_chains", &self.chains.len())
            .field("pending", &self.pending.is_some())
            .finish_non_exhaustive()
    }
}

/// A view of a session's state in the terms of §7.1, as the test vectors' `state_after`
/// lists it. It holds copies of secrets (wiped on drop; redacted in `Debug`): for tests and
/// diagnostics only.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionSnapshot {
    /// `RK`.
    pub root_key: Secret<64>,
    /// `DHs` public.
    pub sending_ratchet_key: [u8; 56],
    /// `CKs`.
    pub sending_chain_key: Option<Secret<64>>,
    /// `Ns`.
    pub ns: u32,
    /// `PN`.
    pub pn: u32,
    /// Receiving chains, oldest first.
    pub receiving_chains: Vec<ChainSnapshot>,
}

impl std::fmt::Debug for SessionSnapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionSnapshot")
            .field("root_key", &self.root_key)
            .field("sending_ratchet_key", &Hex(&self.sending_ratchet_key))
            .field("sending_chain_key", &self.sending_chain_key)
            .field("ns", &self.ns)
            .field("pn", &self.pn)
            .field("receiving_chains", &self.receiving_chains)
            .finish()
    }
}

impl std::fmt::Debug for ChainSnapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChainSnapshot")
            .field("ratchet_key", &Hex(&self.ratchet_key))
            .field("chain_key", &self.chain_key)
            .field("next_n", &self.next_n)
            .field("skipped", &self.skipped)
            .finish()
    }
}

/// One receiving chain of a [`SessionSnapshot`].
#[derive(Clone, PartialEq, Eq)]
pub struct ChainSnapshot {
    /// The peer's ratchet public key.
    pub ratchet_key: [u8; 56],
    /// The chain key (newest chain only).
    pub chain_key: Option<Secret<64>>,
    /// The next message number (newest chain only).
    pub next_n: Option<u64>,
    /// Message numbers whose keys are stored, in storage order.
    pub skipped: Vec<u32>,
}

/// `Skip(C, until)` of §7.5.
fn skip<B: Backend>(c: &mut Chain, until: u64) -> Result<(), Error> {
    if c.nr + MAX_SKIP < until {
        return Err(Error::TooManySkipped { gap: until - c.nr });
    }
    if c.nr >= until {
        return Ok(());
    }
    let mut ck = c.ck.take().ok_or(Error::State {
        what: "receiving chain without a chain key",
    })?;
    // Keys that the bound would evict at once are not derived (§7.5 notes).
    let keep_from = until.saturating_sub(MAX_SKIPPED_PER_CHAIN as u64);
    while c.nr < until {
        let n = u32::try_from(c.nr).map_err(|_| Error::TooManySkipped { gap: until - c.nr })?;
        if c.nr >= keep_from {
            let (next, mk) = kdf_ck::<B>(&ck)?;
            c.skipped.push_back((n, mk));
            if c.skipped.len() > MAX_SKIPPED_PER_CHAIN {
                c.skipped.pop_front();
            }
            ck = next;
        } else {
            ck = kdf_ck_next::<B>(&ck)?;
        }
        c.nr += 1;
    }
    c.ck = Some(ck);
    Ok(())
}

/// The next message key of a chain (KDF_CK, `nr + 1`).
fn step<B: Backend>(c: &mut Chain) -> Result<Key64, Error> {
    let ck = c.ck.as_ref().ok_or(Error::State {
        what: "receiving chain without a chain key",
    })?;
    let (next, mk) = kdf_ck::<B>(ck)?;
    c.ck = Some(next);
    c.nr += 1;
    Ok(mk)
}

impl Session {
    /// Alice's side after X3DH (§7.3): `ratchet` is her first ratchet key pair.
    pub(crate) fn new_initiator<B: Backend>(
        x: X3dh,
        ratchet: KeyPair,
        spk_b: &[u8; 56],
        pending: Pending,
    ) -> Result<Self, Error> {
        let (rk, cks) = kdf_rk::<B>(&x.sk, &dh::<B>(ratchet.secret(), spk_b)?)?;
        Ok(Self {
            initiator: true,
            ad: x.ad,
            session_id: x.session_id,
            rk,
            dhs: ratchet,
            cks: Some(cks),
            ns: 0,
            pn: 0,
            chains: Vec::new(),
            pending: Some(pending),
        })
    }

    /// Bob's side after X3DH (§7.3).
    pub(crate) fn new_responder(x: X3dh, spk: KeyPair) -> Self {
        Self {
            initiator: false,
            ad: x.ad,
            session_id: x.session_id,
            rk: x.sk.clone(),
            dhs: spk,
            cks: None,
            ns: 0,
            pn: 0,
            chains: Vec::new(),
            pending: None,
        }
    }

    /// The session id (§6.2), also ERC-7627's `sessionId`.
    pub fn id(&self) -> &[u8; 32] {
        &self.session_id
    }

    /// Whether this device started the session.
    pub fn is_initiator(&self) -> bool {
        self.initiator
    }

    /// The associated data `IK_A || IK_B || address_A || address_B`.
    pub fn associated_data(&self) -> &[u8; AD_LEN] {
        &self.ad
    }

    fn field<const N: usize>(&self, at: usize) -> &[u8; N] {
        #[allow(clippy::expect_used)]
        self.ad[at..]
            .first_chunk::<N>()
            .expect("AD field offsets are constants within its 152 bytes")
    }

    /// The peer's Ethereum account.
    pub fn peer_address(&self) -> &[u8; 20] {
        self.field(if self.initiator { 132 } else { 112 })
    }

    /// The peer's identity key.
    pub fn peer_identity_key(&self) -> &[u8; 56] {
        self.field(if self.initiator { 56 } else { 0 })
    }

    /// Whether the initiator is still waiting for the peer's first message (its messages are
    /// prekey messages until then).
    pub fn is_pending(&self) -> bool {
        self.pending.is_some()
    }

    /// Encrypts `plaintext` (`RatchetEncrypt`, §7.4) into a `ChannelMessage`: a prekey message
    /// while the initiator waits for a reply, a normal message otherwise.
    pub fn encrypt<B: Backend>(&mut self, plaintext: &[u8]) -> Result<Vec<u8>, Error> {
        let msg = self.encrypt_message::<B>(plaintext)?;
        msg.encode()
    }

    /// [`Session::encrypt`], returning the structure rather than its bytes.
    pub fn encrypt_message<B: Backend>(
        &mut self,
        plaintext: &[u8],
    ) -> Result<ChannelMessage, Error> {
        if plaintext.len() > crate::message::MAX_CIPHERTEXT - crate::message::TAG_LEN {
            return Err(Error::TooLarge {
                len: plaintext.len(),
            });
        }
        let cks = self.cks.as_ref().ok_or(Error::State {
            what: "no sending chain",
        })?;
        if self.ns == u32::MAX {
            return Err(Error::ChainExhausted);
        }
        let (next, mk) = kdf_ck::<B>(cks)?;
        let header = MessageHeader {
            dh: *self.dhs.public(),
            pn: self.pn,
            n: self.ns,
        };
        let aad = [&self.ad[..], &header.encode()].concat();
        let ciphertext = seal::<B>(&mk, plaintext, &aad)?;
        self.cks = Some(next);
        self.ns += 1;
        let message = RatchetMessage { header, ciphertext };
        Ok(match &self.pending {
            Some(p) => ChannelMessage::Prekey(PrekeyMessage {
                sender: p.sender,
                identity_key: p.identity_key,
                ephemeral_key: p.ephemeral_key,
                signed_prekey_id: p.signed_prekey_id,
                one_time_prekey_id: p.one_time_prekey_id,
                message,
            }),
            None => ChannelMessage::Normal(NormalMessage {
                session_id: self.session_id,
                message,
            }),
        })
    }

    /// `RatchetDecrypt` (§7.5), transactional: the state changes only when a plaintext is
    /// returned; on any error it is exactly as before and no key was drawn from `keys`.
    pub fn decrypt<B: Backend>(
        &mut self,
        message: &RatchetMessage,
        keys: &mut dyn KeySource,
    ) -> Result<Vec<u8>, Error> {
        let mut next = self.clone();
        let pt = next.decrypt_in_place::<B>(message, keys)?;
        *self = next;
        Ok(pt)
    }

    fn decrypt_in_place<B: Backend>(
        &mut self,
        m: &RatchetMessage,
        keys: &mut dyn KeySource,
    ) -> Result<Vec<u8>, Error> {
        let h = &m.header;
        let aad = [&self.ad[..], &h.encode()].concat();
        let newest = self.chains.len().checked_sub(1);
        if let Some(i) = self.chains.iter().position(|c| c.dh == h.dh) {
            let c = &mut self.chains[i];
            if let Some(p) = c.skipped.iter().position(|(n, _)| *n == h.n) {
                let pt = open::<B>(&c.skipped[p].1, &m.ciphertext, &aad)?;
                c.skipped.remove(p);
                self.pending = None;
                return Ok(pt);
            }
            if Some(i) != newest || u64::from(h.n) < c.nr {
                return Err(Error::Duplicate { n: h.n });
            }
            skip::<B>(c, u64::from(h.n))?;
            let mk = step::<B>(c)?;
            let pt = open::<B>(&mk, &m.ciphertext, &aad)?;
            self.pending = None;
            return Ok(pt);
        }

        // A new ratchet key: DH ratchet step.
        match self.chains.last_mut() {
            None => {
                if u64::from(h.pn) > MAX_SKIP {
                    return Err(Error::TooManySkipped {
                        gap: u64::from(h.pn),
                    });
                }
            }
            Some(c) => {
                skip::<B>(c, u64::from(h.pn))?;
                c.ck = None;
            }
        }
        let (rk, ck) = kdf_rk::<B>(&self.rk, &dh::<B>(self.dhs.secret(), &h.dh)?)?;
        self.rk = rk;
        self.chains.push(Chain {
            dh: h.dh,
            ck: Some(ck),
            nr: 0,
            skipped: VecDeque::new(),
        });
        if self.chains.len() > MAX_RECEIVING_CHAINS {
            self.chains.remove(0);
        }
        let n = self.chains.len() - 1;
        let c = &mut self.chains[n];
        skip::<B>(c, u64::from(h.n))?;
        let mk = step::<B>(c)?;
        let pt = open::<B>(&mk, &m.ciphertext, &aad)?;
        // Authenticated: the sending half of the step.
        self.pn = self.ns;
        self.ns = 0;
        self.dhs = KeyPair::from_secret::<B>(keys.next_key()?)?;
        let (rk, cks) = kdf_rk::<B>(&self.rk, &dh::<B>(self.dhs.secret(), &h.dh)?)?;
        self.rk = rk;
        self.cks = Some(cks);
        self.pending = None;
        Ok(pt)
    }

    /// The state in the terms of §7.1 (holds secrets; for tests and diagnostics).
    pub fn snapshot(&self) -> SessionSnapshot {
        let last = self.chains.len().saturating_sub(1);
        SessionSnapshot {
            root_key: self.rk.clone(),
            sending_ratchet_key: *self.dhs.public(),
            sending_chain_key: self.cks.clone(),
            ns: self.ns,
            pn: self.pn,
            receiving_chains: self
                .chains
                .iter()
                .enumerate()
                .map(|(i, c)| ChainSnapshot {
                    ratchet_key: c.dh,
                    chain_key: if i == last { c.ck.clone() } else { None },
                    next_n: (i == last).then_some(c.nr),
                    skipped: c.skipped.iter().map(|(n, _)| *n).collect(),
                })
                .collect(),
        }
    }

    /// Exact length of [`Session::to_bytes`].
    pub(crate) fn encoded_len(&self) -> usize {
        let opt = |k: &Option<Key64>| 1 + if k.is_some() { 64 } else { 0 };
        2 + 1
            + AD_LEN
            + 32
            + 64
            + 112
            + opt(&self.cks)
            + 8
            + 1
            + self
                .chains
                .iter()
                .map(|c| 56 + opt(&c.ck) + 8 + 1 + c.skipped.len() * 68)
                .sum::<usize>()
            + 1
            + self.pending.as_ref().map_or(0, |p| {
                20 + 112 + 4 + 1 + if p.one_time_prekey_id.is_some() { 4 } else { 0 }
            })
    }

    /// The versioned encoding of the whole state. It holds secrets: the buffer is wiped on
    /// drop; store it encrypted.
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let mut w = Writer::with_capacity(self.encoded_len());
        self.write(&mut w);
        Zeroizing::new(w.buf)
    }

    pub(crate) fn write(&self, w: &mut Writer) {
        w.u16(SESSION_STATE_VERSION);
        w.u8(u8::from(self.initiator));
        w.bytes(&self.ad);
        w.bytes(&self.session_id);
        w.bytes(self.rk.expose());
        w.bytes(self.dhs.secret().expose());
        w.bytes(self.dhs.public());
        write_opt_key(w, self.cks.as_ref());
        w.u32(self.ns);
        w.u32(self.pn);
        w.u8(self.chains.len() as u8);
        for c in &self.chains {
            w.bytes(&c.dh);
            write_opt_key(w, c.ck.as_ref());
            w.u64(c.nr);
            w.u8(c.skipped.len() as u8);
            for (n, mk) in &c.skipped {
                w.u32(*n);
                w.bytes(mk.expose());
            }
        }
        match &self.pending {
            None => w.u8(0),
            Some(p) => {
                w.u8(1);
                w.bytes(&p.sender);
                w.bytes(&p.identity_key);
                w.bytes(&p.ephemeral_key);
                w.u32(p.signed_prekey_id);
                w.opt_u32(p.one_time_prekey_id);
            }
        }
    }

    /// Restores a session from [`Session::to_bytes`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, Error> {
        let mut r = Reader::new(bytes);
        let s = Self::read(&mut r).map_err(state_error)?;
        r.finish("trailing bytes").map_err(state_error)?;
        Ok(s)
    }

    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Self, Error> {
        let version = r.u16("session version")?;
        if version != SESSION_STATE_VERSION {
            return Err(Error::UnsupportedVersion { version });
        }
        let initiator = r.bool("initiator")?;
        let ad = r.array("ad")?;
        let session_id = r.array("session_id")?;
        let rk = Secret::new(r.array("rk")?);
        let dhs = KeyPair::from_parts(Secret::new(r.array("dhs")?), r.array("dhs public")?);
        let cks = read_opt_key(r)?;
        let ns = r.u32("ns")?;
        let pn = r.u32("pn")?;
        let count = usize::from(r.u8("chains")?);
        if count > MAX_RECEIVING_CHAINS {
            return Err(Error::State {
                what: "too many receiving chains",
            });
        }
        let mut chains = Vec::with_capacity(count);
        for _ in 0..count {
            let dh = r.array("chain dh")?;
            let ck = read_opt_key(r)?;
            let nr = r.u64("chain nr")?;
            let k = usize::from(r.u8("skipped")?);
            if k > MAX_SKIPPED_PER_CHAIN {
                return Err(Error::State {
                    what: "too many skipped keys",
                });
            }
            let mut skipped = VecDeque::with_capacity(k);
            for _ in 0..k {
                skipped.push_back((r.u32("skipped n")?, Secret::new(r.array("skipped key")?)));
            }
            chains.push(Chain {
                dh,
                ck,
                nr,
                skipped,
            });
        }
        if chains.last().is_some_and(|c| c.ck.is_none()) {
            return Err(Error::State {
                what: "newest receiving chain without a chain key",
            });
        }
        let pending = if r.bool("pending")? {
            Some(Pending {
                sender: r.array("pending sender")?,
                identity_key: r.array("pending identity key")?,
                ephemeral_key: r.array("pending ephemeral key")?,
                signed_prekey_id: r.u32("pending spk id")?,
                one_time_prekey_id: r.opt_u32("pending opk id")?,
            })
        } else {
            None
        };
        Ok(Self {
            initiator,
            ad,
            session_id,
            rk,
            dhs,
            cks,
            ns,
            pn,
            chains,
            pending,
        })
    }
}

/// Any failure to read stored state is [`Error::State`], except a version mismatch.
pub(crate) fn state_error(e: Error) -> Error {
    match e {
        Error::Decode { what } => Error::State { what },
        e => e,
    }
}

fn write_opt_key(w: &mut Writer, k: Option<&Key64>) {
    match k {
        None => w.u8(0),
        Some(k) => {
            w.u8(1);
            w.bytes(k.expose());
        }
    }
}

fn read_opt_key(r: &mut Reader<'_>) -> Result<Option<Key64>, Error> {
    Ok(if r.bool("key flag")? {
        Some(Secret::new(r.array("key")?))
    } else {
        None
    })
}
