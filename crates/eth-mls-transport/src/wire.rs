//! The history protocol's messages (`/eth-mls/history/1`), byte-exact:
//!
//! ```text
//! Request  = version u8 (1) | topic_len u16 | topic (UTF-8, canonical) | since.at u64
//!            | since.index u64 | limit u32
//! Response = version u8 (1) | status u8 (0 ok, 1 refused: limit, 2 refused: topic)
//!            | has_next u8 (0|1) | [next.at u64 | next.index u64] | count u32
//!            | count x ( at u64 | index u64 | received_at u64 | origin_len u16 | origin
//!                        | len u32 | frame )
//! ```
//!
//! Big-endian integers. Decoders check every length against what remains and against the
//! limits below before allocating, and refuse trailing bytes.

use crate::{Cursor, Error, Topic, topic::MAX_TOPIC_LEN};

/// Most entries one history response carries (and a request may ask for).
pub const MAX_ENTRIES: u32 = 512;
/// Largest history response in bytes.
pub const MAX_RESPONSE: usize = 8 << 20;
/// Largest history request in bytes.
pub const MAX_REQUEST: usize = 3 + MAX_TOPIC_LEN + 20;
const MAX_ORIGIN: usize = 128;

/// `Ok` when a history call may ask for `limit` entries; [`Error::HistoryLimit`] above
/// [`MAX_ENTRIES`].
pub fn check_limit(limit: u32) -> Result<(), Error> {
    if limit > MAX_ENTRIES {
        return Err(Error::HistoryLimit {
            requested: limit,
            max: MAX_ENTRIES,
        });
    }
    Ok(())
}

/// A request for a topic's history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HistoryRequest {
    /// The topic.
    pub topic: Topic,
    /// First position wanted.
    pub since: Cursor,
    /// Most entries wanted (at most [`MAX_ENTRIES`]).
    pub limit: u32,
}

/// One stored frame in a response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HistoryEntry {
    /// Its position at the responder.
    pub cursor: Cursor,
    /// When the responder received it (Unix ms).
    pub received_at: u64,
    /// Who published it, as the responder saw it.
    pub origin: String,
    /// The frame.
    pub bytes: Vec<u8>,
}

/// A history response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HistoryResponse {
    /// Entries, and where the next page starts.
    Ok {
        /// The entries in cursor order.
        entries: Vec<HistoryEntry>,
        /// `None`: nothing more.
        next: Option<Cursor>,
    },
    /// The request asked for more than [`MAX_ENTRIES`].
    RefusedLimit,
    /// The responder does not serve this topic.
    RefusedTopic,
}

struct R<'a>(&'a [u8], &'static str);

impl<'a> R<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], Error> {
        if self.0.len() < n {
            return Err(Error::Decode {
                what: self.1,
                reason: "truncated",
            });
        }
        let (h, t) = self.0.split_at(n);
        self.0 = t;
        Ok(h)
    }
    fn u8(&mut self) -> Result<u8, Error> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, Error> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Result<u32, Error> {
        let mut a = [0; 4];
        a.copy_from_slice(self.take(4)?);
        Ok(u32::from_be_bytes(a))
    }
    fn u64(&mut self) -> Result<u64, Error> {
        let mut a = [0; 8];
        a.copy_from_slice(self.take(8)?);
        Ok(u64::from_be_bytes(a))
    }
    fn cursor(&mut self) -> Result<Cursor, Error> {
        Ok(Cursor {
            at: self.u64()?,
            index: self.u64()?,
        })
    }
    fn bad(&self, reason: &'static str) -> Error {
        Error::Decode {
            what: self.1,
            reason,
        }
    }
    fn end(&self) -> Result<(), Error> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(self.bad("trailing bytes"))
        }
    }
}

impl HistoryRequest {
    /// Encodes the request.
    pub fn encode(&self) -> Vec<u8> {
        let topic = self.topic.to_string();
        let mut out = Vec::with_capacity(23 + topic.len());
        out.push(1);
        out.extend_from_slice(&(topic.len() as u16).to_be_bytes());
        out.extend_from_slice(topic.as_bytes());
        out.extend_from_slice(&self.since.at.to_be_bytes());
        out.extend_from_slice(&self.since.index.to_be_bytes());
        out.extend_from_slice(&self.limit.to_be_bytes());
        out
    }

    /// Decodes a request. A limit above [`MAX_ENTRIES`] decodes (the responder answers
    /// [`HistoryResponse::RefusedLimit`]); a malformed topic is an error.
    pub fn decode(bytes: &[u8]) -> Result<HistoryRequest, Error> {
        let mut r = R(bytes, "history request");
        if bytes.len() > MAX_REQUEST {
            return Err(r.bad("longer than any request"));
        }
        if r.u8()? != 1 {
            return Err(r.bad("unknown version"));
        }
        let n = usize::from(r.u16()?);
        let topic = std::str::from_utf8(r.take(n)?).map_err(|_| r.bad("topic is not UTF-8"))?;
        let topic: Topic = topic.parse()?;
        let since = r.cursor()?;
        let limit = r.u32()?;
        r.end()?;
        Ok(HistoryRequest {
            topic,
            since,
            limit,
        })
    }
}

impl HistoryResponse {
    /// Encodes the response.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![1];
        match self {
            HistoryResponse::RefusedLimit => out.extend_from_slice(&[1, 0, 0, 0, 0, 0]),
            HistoryResponse::RefusedTopic => out.extend_from_slice(&[2, 0, 0, 0, 0, 0]),
            HistoryResponse::Ok { entries, next } => {
                out.push(0);
                match next {
                    Some(c) => {
                        out.push(1);
                        out.extend_from_slice(&c.at.to_be_bytes());
                        out.extend_from_slice(&c.index.to_be_bytes());
                    }
                    None => out.push(0),
                }
                out.extend_from_slice(&(entries.len() as u32).to_be_bytes());
                for e in entries {
                    out.extend_from_slice(&e.cursor.at.to_be_bytes());
                    out.extend_from_slice(&e.cursor.index.to_be_bytes());
                    out.extend_from_slice(&e.received_at.to_be_bytes());
                    let origin = &e.origin.as_bytes()[..e.origin.len().min(MAX_ORIGIN)];
                    out.extend_from_slice(&(origin.len() as u16).to_be_bytes());
                    out.extend_from_slice(origin);
                    out.extend_from_slice(&(e.bytes.len() as u32).to_be_bytes());
                    out.extend_from_slice(&e.bytes);
                }
            }
        }
        out
    }

    /// Decodes a response of at most [`MAX_RESPONSE`] bytes with at most [`MAX_ENTRIES`]
    /// entries of at most `max_frame` bytes each.
    pub fn decode(bytes: &[u8], max_frame: usize) -> Result<HistoryResponse, Error> {
        let mut r = R(bytes, "history response");
        if bytes.len() > MAX_RESPONSE {
            return Err(r.bad("larger than any response"));
        }
        if r.u8()? != 1 {
            return Err(r.bad("unknown version"));
        }
        let status = r.u8()?;
        let next = match r.u8()? {
            0 => None,
            1 => Some(r.cursor()?),
            _ => return Err(r.bad("has_next is not 0 or 1")),
        };
        let count = r.u32()?;
        match status {
            1 | 2 => {
                if next.is_some() || count != 0 {
                    return Err(r.bad("a refusal carries entries"));
                }
                r.end()?;
                return Ok(if status == 1 {
                    HistoryResponse::RefusedLimit
                } else {
                    HistoryResponse::RefusedTopic
                });
            }
            0 => {}
            _ => return Err(r.bad("unknown status")),
        }
        if count > MAX_ENTRIES {
            return Err(r.bad("more entries than any response carries"));
        }
        let mut entries = Vec::with_capacity(count as usize);
        let mut previous: Option<Cursor> = None;
        for _ in 0..count {
            let cursor = r.cursor()?;
            if previous.is_some_and(|p| p >= cursor) {
                return Err(r.bad("entries not in cursor order"));
            }
            previous = Some(cursor);
            let received_at = r.u64()?;
            let n = usize::from(r.u16()?);
            if n > MAX_ORIGIN {
                return Err(r.bad("origin too long"));
            }
            let origin = std::str::from_utf8(r.take(n)?)
                .map_err(|_| r.bad("origin is not UTF-8"))?
                .to_owned();
            let len = r.u32()? as usize;
            if len > max_frame {
                return Err(r.bad("frame larger than any topic allows"));
            }
            let bytes = r.take(len)?.to_vec();
            entries.push(HistoryEntry {
                cursor,
                received_at,
                origin,
                bytes,
            });
        }
        r.end()?;
        Ok(HistoryResponse::Ok { entries, next })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn topic() -> Topic {
        Topic::Commit {
            chain_id: 31337,
            group: [9; 20],
        }
    }

    #[test]
    fn round_trips() {
        let req = HistoryRequest {
            topic: topic(),
            since: Cursor { at: 5, index: 6 },
            limit: 7,
        };
        assert_eq!(HistoryRequest::decode(&req.encode()).unwrap(), req);
        let resp = HistoryResponse::Ok {
            entries: vec![
                HistoryEntry {
                    cursor: Cursor { at: 1, index: 0 },
                    received_at: 1,
                    origin: "p".into(),
                    bytes: vec![1, 2],
                },
                HistoryEntry {
                    cursor: Cursor { at: 1, index: 1 },
                    received_at: 2,
                    origin: "q".into(),
                    bytes: vec![],
                },
            ],
            next: Some(Cursor { at: 3, index: 0 }),
        };
        assert_eq!(HistoryResponse::decode(&resp.encode(), 10).unwrap(), resp);
        for r in [HistoryResponse::RefusedLimit, HistoryResponse::RefusedTopic] {
            assert_eq!(HistoryResponse::decode(&r.encode(), 10).unwrap(), r);
        }
    }

    #[test]
    fn hostile_inputs_are_typed_errors() {
        // A huge count with no bytes behind it allocates nothing.
        let mut huge = vec![1, 0, 0];
        huge.extend_from_slice(&u32::MAX.to_be_bytes());
        assert!(matches!(
            HistoryResponse::decode(&huge, 10),
            Err(Error::Decode { .. })
        ));
        // A frame above the limit.
        let resp = HistoryResponse::Ok {
            entries: vec![HistoryEntry {
                cursor: Cursor::START,
                received_at: 0,
                origin: String::new(),
                bytes: vec![0; 11],
            }],
            next: None,
        };
        assert!(matches!(
            HistoryResponse::decode(&resp.encode(), 10),
            Err(Error::Decode { .. })
        ));
        // Unknown topic and garbage requests.
        let mut req = HistoryRequest {
            topic: topic(),
            since: Cursor::START,
            limit: 1,
        }
        .encode();
        req[5] = b'X';
        assert!(matches!(
            HistoryRequest::decode(&req),
            Err(Error::InvalidTopic { .. })
        ));
        assert!(matches!(
            HistoryRequest::decode(&[1, 255, 255]),
            Err(Error::Decode { .. })
        ));
        assert!(HistoryRequest::decode(&[0; 4096]).is_err());
    }

    proptest! {
        #[test]
        fn decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400), flip in any::<usize>()) {
            let _ = HistoryRequest::decode(&bytes);
            let _ = HistoryResponse::decode(&bytes, 64);
            let req = HistoryRequest { topic: topic(), since: Cursor::START, limit: 3 }.encode();
            let mut m = req.clone();
            let i = flip % m.len();
            m[i] ^= 1 << (flip % 8);
            let _ = HistoryRequest::decode(&m);
            let _ = HistoryRequest::decode(&req[..flip % req.len()]);
        }
    }
}
