//! Cheap checks on frames before they are stored or forwarded: size per topic kind, and the
//! MLS framing (RFC 9420 §6) without decrypting anything. Malformed frames are rejected, so
//! gossipsub does not forward them and penalises the peer that sent them.

use std::collections::HashMap;
use std::sync::RwLock;

use crate::{Error, Topic, TopicKind};

/// Size limits per topic kind. Commits and Welcomes of large groups exceed gossipsub's default
/// 64 KiB (a Welcome grows by about 1 KB per member), application messages do not need more.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest frame on a `commit` topic.
    pub commit: usize,
    /// Largest frame on an `app` topic.
    pub app: usize,
    /// Largest frame on an `inbox` topic.
    pub inbox: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            commit: 2 << 20,
            app: 64 << 10,
            inbox: 2 << 20,
        }
    }
}

impl Limits {
    /// The limit for `kind`.
    pub fn for_kind(&self, kind: TopicKind) -> usize {
        match kind {
            TopicKind::Commit => self.commit,
            TopicKind::App => self.app,
            TopicKind::Inbox => self.inbox,
        }
    }

    /// The largest of the limits (what the wire must carry).
    pub fn max(&self) -> usize {
        self.commit.max(self.app).max(self.inbox)
    }

    /// `Ok` when `len` fits `topic`'s limit.
    pub fn check(&self, topic: &Topic, len: usize) -> Result<(), Error> {
        let limit = self.for_kind(topic.kind());
        if len > limit {
            return Err(Error::TooLarge {
                topic: topic.to_string(),
                size: len,
                limit,
            });
        }
        Ok(())
    }
}

/// A validator's verdict on a received frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Well-formed: store, deliver, forward.
    Accept,
    /// Malformed: drop, do not forward, penalise the sender.
    Reject(&'static str),
    /// Not for us but not malicious (e.g. an old epoch): drop without penalty.
    Ignore,
}

/// Checks a frame on a topic. Must be cheap and must never decrypt: it runs on every frame
/// from every peer before anything else looks at it.
pub trait Validator: Send + Sync + 'static {
    /// The verdict on `bytes` received on `topic`.
    fn validate(&self, topic: &Topic, bytes: &[u8]) -> Verdict;
}

/// MLS wire formats (RFC 9420 §6).
const WF_PUBLIC: u16 = 1;
const WF_PRIVATE: u16 = 2;
const WF_WELCOME: u16 = 3;
const WF_GROUP_INFO: u16 = 4;
const WF_KEY_PACKAGE: u16 = 5;
/// Content types.
const CT_APPLICATION: u8 = 1;
const CT_PROPOSAL: u8 = 2;
const CT_COMMIT: u8 = 3;

/// MLS group id per (chain id, group contract).
type GroupIds = HashMap<(u64, [u8; 20]), Vec<u8>>;

/// The default validator: topic size limits, and for group topics the MLS framing (version
/// mls10; on `app` topics a PrivateMessage of application content; on `commit` topics a
/// PublicMessage or PrivateMessage carrying a proposal or commit, or a Welcome, GroupInfo or
/// KeyPackage) and, once the group id of the topic's contract is known ([`Self::bind`]), that
/// the frame's group id is that one. `inbox` frames are 1:1 channel frames, checked for size
/// and non-emptiness only.
#[derive(Debug, Default)]
pub struct FrameValidator {
    limits: Limits,
    groups: RwLock<GroupIds>,
}

impl FrameValidator {
    /// A validator with `limits`.
    pub fn new(limits: Limits) -> Self {
        FrameValidator {
            limits,
            groups: RwLock::default(),
        }
    }

    /// From now on, frames on the topics of group contract `group` on `chain_id` must carry
    /// MLS group id `group_id`.
    pub fn bind(&self, chain_id: u64, group: [u8; 20], group_id: &[u8]) {
        let mut groups = self.groups.write().unwrap_or_else(|e| e.into_inner());
        groups.insert((chain_id, group), group_id.to_vec());
    }

    fn group_id(&self, topic: &Topic) -> Option<Vec<u8>> {
        let groups = self.groups.read().unwrap_or_else(|e| e.into_inner());
        groups.get(&(topic.chain_id(), topic.address())).cloned()
    }
}

impl Validator for FrameValidator {
    fn validate(&self, topic: &Topic, bytes: &[u8]) -> Verdict {
        if bytes.is_empty() {
            return Verdict::Reject("empty frame");
        }
        if bytes.len() > self.limits.for_kind(topic.kind()) {
            return Verdict::Reject("frame exceeds the topic's size limit");
        }
        if topic.kind() == TopicKind::Inbox {
            return Verdict::Accept;
        }
        let frame = match parse_mls(bytes) {
            Ok(frame) => frame,
            Err(reason) => return Verdict::Reject(reason),
        };
        let allowed = matches!(
            (topic.kind(), frame.wire_format, frame.content_type),
            (TopicKind::App, WF_PRIVATE, Some(CT_APPLICATION))
                | (
                    TopicKind::Commit,
                    WF_PUBLIC | WF_PRIVATE,
                    Some(CT_PROPOSAL | CT_COMMIT)
                )
                | (
                    TopicKind::Commit,
                    WF_WELCOME | WF_GROUP_INFO | WF_KEY_PACKAGE,
                    None
                )
        );
        if !allowed {
            return Verdict::Reject("wire format or content type not carried on this topic");
        }
        if let (Some(expected), Some(got)) = (self.group_id(topic), frame.group_id)
            && expected != got
        {
            return Verdict::Reject("group id does not match the topic's group");
        }
        Verdict::Accept
    }
}

/// What the cheap parse found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct MlsFrame<'a> {
    pub wire_format: u16,
    pub group_id: Option<&'a [u8]>,
    pub content_type: Option<u8>,
}

struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], &'static str> {
        if self.bytes.len() < n {
            return Err("truncated MLS frame");
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(head)
    }
    fn u8(&mut self) -> Result<u8, &'static str> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, &'static str> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
    /// RFC 9420 §2.1.2 variable-length integer.
    fn varint(&mut self) -> Result<usize, &'static str> {
        let first = self.u8()?;
        let len = 1usize << (first >> 6);
        if len == 8 {
            return Err("invalid variable-length integer prefix");
        }
        let mut v = u64::from(first & 0x3f);
        for b in self.take(len - 1)? {
            v = (v << 8) | u64::from(*b);
        }
        usize::try_from(v).map_err(|_| "length out of range")
    }
    fn vec(&mut self) -> Result<&'a [u8], &'static str> {
        let n = self.varint()?;
        self.take(n)
    }
}

/// Parses the cleartext framing of an MLSMessage: for PrivateMessage all of it (group id,
/// epoch, content type, authenticated data, sender data, ciphertext, nothing after); for
/// PublicMessage the FramedContent header (group id, epoch, sender, authenticated data,
/// content type); for the other wire formats only the header.
pub(crate) fn parse_mls(bytes: &[u8]) -> Result<MlsFrame<'_>, &'static str> {
    let mut r = Reader { bytes };
    if r.u16()? != 1 {
        return Err("not MLS protocol version mls10");
    }
    let wire_format = r.u16()?;
    match wire_format {
        WF_PRIVATE => {
            let group_id = r.vec()?;
            r.take(8)?; // epoch
            let content_type = r.u8()?;
            if !(CT_APPLICATION..=CT_COMMIT).contains(&content_type) {
                return Err("unknown content type");
            }
            r.vec()?; // authenticated_data
            if r.vec()?.is_empty() {
                return Err("empty encrypted sender data");
            }
            if r.vec()?.is_empty() {
                return Err("empty ciphertext");
            }
            if !r.bytes.is_empty() {
                return Err("trailing bytes after PrivateMessage");
            }
            Ok(MlsFrame {
                wire_format,
                group_id: Some(group_id),
                content_type: Some(content_type),
            })
        }
        WF_PUBLIC => {
            let group_id = r.vec()?;
            r.take(8)?; // epoch
            match r.u8()? {
                1 | 2 => {
                    r.take(4)?;
                }
                3 | 4 => {}
                _ => return Err("unknown sender type"),
            }
            r.vec()?; // authenticated_data
            let content_type = r.u8()?;
            if !(CT_APPLICATION..=CT_COMMIT).contains(&content_type) {
                return Err("unknown content type");
            }
            if r.bytes.is_empty() {
                return Err("PublicMessage without content");
            }
            Ok(MlsFrame {
                wire_format,
                group_id: Some(group_id),
                content_type: Some(content_type),
            })
        }
        WF_WELCOME | WF_GROUP_INFO | WF_KEY_PACKAGE => {
            if r.bytes.len() < 4 {
                return Err("truncated MLS frame");
            }
            Ok(MlsFrame {
                wire_format,
                group_id: None,
                content_type: None,
            })
        }
        _ => Err("unknown MLS wire format"),
    }
}

/// A syntactically valid PrivateMessage frame (for tests and benchmarks of the transport:
/// the validator accepts it on an `app` topic when `group_id` matches).
pub fn sample_private_message(group_id: &[u8], epoch: u64, ciphertext: &[u8]) -> Vec<u8> {
    fn vec(out: &mut Vec<u8>, v: &[u8]) {
        let n = v.len();
        if n < 64 {
            out.push(n as u8);
        } else if n < (1 << 14) {
            out.extend_from_slice(&((n as u16) | 0x4000).to_be_bytes());
        } else {
            out.extend_from_slice(&((n as u32) | 0x8000_0000).to_be_bytes());
        }
        out.extend_from_slice(v);
    }
    let mut out = vec![0, 1, 0, WF_PRIVATE as u8];
    vec(&mut out, group_id);
    out.extend_from_slice(&epoch.to_be_bytes());
    out.push(CT_APPLICATION);
    vec(&mut out, b"");
    vec(&mut out, &[0x5a; 16]);
    vec(&mut out, ciphertext);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const GROUP: [u8; 20] = [7; 20];

    fn app() -> Topic {
        Topic::App {
            chain_id: 1,
            group: GROUP,
        }
    }

    #[test]
    fn private_message_round_trip_and_binding() {
        let v = FrameValidator::new(Limits::default());
        let frame = sample_private_message(b"group-1", 3, &[1; 1024]);
        assert_eq!(v.validate(&app(), &frame), Verdict::Accept);
        v.bind(1, GROUP, b"group-1");
        assert_eq!(v.validate(&app(), &frame), Verdict::Accept);
        v.bind(1, GROUP, b"group-2");
        assert!(matches!(v.validate(&app(), &frame), Verdict::Reject(_)));
        // Another chain's topic with the same address is not bound.
        assert_eq!(
            v.validate(
                &Topic::App {
                    chain_id: 2,
                    group: GROUP
                },
                &frame
            ),
            Verdict::Accept
        );
    }

    #[test]
    fn wrong_topic_kind_and_garbage_are_rejected() {
        let v = FrameValidator::new(Limits::default());
        let frame = sample_private_message(b"g", 0, b"ct");
        let commit = Topic::Commit {
            chain_id: 1,
            group: GROUP,
        };
        assert!(matches!(v.validate(&commit, &frame), Verdict::Reject(_)));
        assert!(matches!(v.validate(&app(), b""), Verdict::Reject(_)));
        assert!(matches!(
            v.validate(&app(), b"garbage!"),
            Verdict::Reject(_)
        ));
        let mut trailing = frame.clone();
        trailing.push(0);
        assert!(matches!(v.validate(&app(), &trailing), Verdict::Reject(_)));
        let inbox = Topic::Inbox {
            chain_id: 1,
            account: GROUP,
        };
        assert_eq!(v.validate(&inbox, b"any channel frame"), Verdict::Accept);
    }

    #[test]
    fn size_limits_are_per_topic_kind() {
        let v = FrameValidator::new(Limits::default());
        let big = sample_private_message(b"g", 0, &vec![0; 70 << 10]);
        assert!(matches!(v.validate(&app(), &big), Verdict::Reject(_)));
        let inbox = Topic::Inbox {
            chain_id: 1,
            account: GROUP,
        };
        assert_eq!(v.validate(&inbox, &big), Verdict::Accept);
        assert!(matches!(
            Limits::default().check(&app(), big.len()),
            Err(Error::TooLarge { .. })
        ));
    }

    proptest! {
        #[test]
        fn parsing_random_and_mutated_bytes_never_panics(
            bytes in proptest::collection::vec(any::<u8>(), 0..300),
            flip in any::<usize>(), cut in any::<usize>(),
        ) {
            let _ = parse_mls(&bytes);
            let mut frame = sample_private_message(b"group", 1, &bytes);
            let _ = parse_mls(&frame[..cut % (frame.len() + 1)]);
            let i = flip % frame.len();
            frame[i] ^= 0x80;
            let _ = parse_mls(&frame);
        }
    }
}
