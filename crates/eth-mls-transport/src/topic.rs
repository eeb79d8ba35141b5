//! Topic names (DESIGN.md decision 15): `/eth-mls/1/<chain id>/<group contract>/{commit,app}`
//! and `/eth-mls/1/<chain id>/inbox/<address>`, addresses as lowercase `0x` hex.

use std::fmt;
use std::str::FromStr;

use crate::Error;

/// The prefix every eth-mls topic starts with (protocol version 1).
pub const PREFIX: &str = "/eth-mls/1/";

/// Longest topic string accepted anywhere (the longest valid one is shorter).
pub const MAX_TOPIC_LEN: usize = 128;

/// A delivery topic. Its string form is canonical: two different strings never name the same
/// topic, so a topic can key a gossipsub mesh or a history store directly.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Topic {
    /// Commits, proposals and Welcomes of the group whose contract is `group`.
    Commit {
        /// EIP-155 chain id.
        chain_id: u64,
        /// The group contract's address.
        group: [u8; 20],
    },
    /// Application messages of the group whose contract is `group`.
    App {
        /// EIP-155 chain id.
        chain_id: u64,
        /// The group contract's address.
        group: [u8; 20],
    },
    /// 1:1 messages (invitations, Welcomes, requests) to `account`.
    Inbox {
        /// EIP-155 chain id.
        chain_id: u64,
        /// The receiving Ethereum account.
        account: [u8; 20],
    },
}

/// What a topic carries; limits and validation depend on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TopicKind {
    /// [`Topic::Commit`].
    Commit,
    /// [`Topic::App`].
    App,
    /// [`Topic::Inbox`].
    Inbox,
}

impl Topic {
    /// Its kind.
    pub fn kind(&self) -> TopicKind {
        match self {
            Topic::Commit { .. } => TopicKind::Commit,
            Topic::App { .. } => TopicKind::App,
            Topic::Inbox { .. } => TopicKind::Inbox,
        }
    }

    /// The chain id in the name.
    pub fn chain_id(&self) -> u64 {
        match *self {
            Topic::Commit { chain_id, .. }
            | Topic::App { chain_id, .. }
            | Topic::Inbox { chain_id, .. } => chain_id,
        }
    }

    /// The address in the name: the group contract, or the inbox's account.
    pub fn address(&self) -> [u8; 20] {
        match *self {
            Topic::Commit { group, .. } | Topic::App { group, .. } => group,
            Topic::Inbox { account, .. } => account,
        }
    }
}

impl fmt::Display for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let addr = hex::encode(self.address());
        match self {
            Topic::Commit { chain_id, .. } => write!(f, "{PREFIX}{chain_id}/0x{addr}/commit"),
            Topic::App { chain_id, .. } => write!(f, "{PREFIX}{chain_id}/0x{addr}/app"),
            Topic::Inbox { chain_id, .. } => write!(f, "{PREFIX}{chain_id}/inbox/0x{addr}"),
        }
    }
}

fn parse_address(s: &str, topic: &str) -> Result<[u8; 20], Error> {
    let bad = |reason| Error::InvalidTopic {
        topic: topic.into(),
        reason,
    };
    let hex_part = s.strip_prefix("0x").ok_or(bad("address without 0x"))?;
    if hex_part.len() != 40 {
        return Err(bad("address is not 20 bytes"));
    }
    if hex_part.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(bad("address not in lowercase hex"));
    }
    let mut out = [0u8; 20];
    hex::decode_to_slice(hex_part, &mut out).map_err(|_| bad("address is not hex"))?;
    Ok(out)
}

fn parse_chain_id(s: &str, topic: &str) -> Result<u64, Error> {
    let canonical = !s.is_empty() && (s == "0" || !s.starts_with('0'));
    match s.parse::<u64>() {
        Ok(id) if canonical && s.bytes().all(|b| b.is_ascii_digit()) => Ok(id),
        _ => Err(Error::InvalidTopic {
            topic: topic.into(),
            reason: "chain id is not a canonical decimal u64",
        }),
    }
}

impl FromStr for Topic {
    type Err = Error;

    fn from_str(s: &str) -> Result<Topic, Error> {
        let shown: String = s.chars().take(MAX_TOPIC_LEN).collect();
        let bad = |reason| Error::InvalidTopic {
            topic: shown.clone(),
            reason,
        };
        if s.len() > MAX_TOPIC_LEN {
            return Err(bad("longer than any eth-mls topic"));
        }
        let rest = s
            .strip_prefix(PREFIX)
            .ok_or(bad("not an /eth-mls/1/ topic"))?;
        let parts: Vec<&str> = rest.split('/').collect();
        match parts.as_slice() {
            [chain, "inbox", account] => Ok(Topic::Inbox {
                chain_id: parse_chain_id(chain, &shown)?,
                account: parse_address(account, &shown)?,
            }),
            [chain, group, "commit"] => Ok(Topic::Commit {
                chain_id: parse_chain_id(chain, &shown)?,
                group: parse_address(group, &shown)?,
            }),
            [chain, group, "app"] => Ok(Topic::App {
                chain_id: parse_chain_id(chain, &shown)?,
                group: parse_address(group, &shown)?,
            }),
            _ => Err(bad(
                "expected <chain id>/<group>/{commit,app} or <chain id>/inbox/<address>",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn names_are_those_of_decision_15() {
        let group = [0xab; 20];
        let t = Topic::Commit {
            chain_id: 31337,
            group,
        };
        assert_eq!(
            t.to_string(),
            format!("/eth-mls/1/31337/0x{}/commit", "ab".repeat(20))
        );
        let t = Topic::App { chain_id: 1, group };
        assert_eq!(
            t.to_string(),
            format!("/eth-mls/1/1/0x{}/app", "ab".repeat(20))
        );
        let t = Topic::Inbox {
            chain_id: 10,
            account: group,
        };
        assert_eq!(
            t.to_string(),
            format!("/eth-mls/1/10/inbox/0x{}", "ab".repeat(20))
        );
    }

    #[test]
    fn non_canonical_names_are_refused() {
        let a = "ab".repeat(20);
        for s in [
            format!("/eth-mls/1/031337/0x{a}/commit"),
            format!("/eth-mls/1/31337/0x{}/commit", "AB".repeat(20)),
            format!("/eth-mls/1/31337/{a}/commit"),
            format!("/eth-mls/1/31337/0x{a}/commits"),
            format!("/eth-mls/2/31337/0x{a}/app"),
            format!("/eth-mls/1/+1/0x{a}/app"),
            format!("/eth-mls/1/1/0x{a}/app/"),
            format!("/eth-mls/1/1/inbox/0x{a}0"),
            "x".repeat(10_000),
        ] {
            assert!(
                matches!(s.parse::<Topic>(), Err(Error::InvalidTopic { .. })),
                "{s}"
            );
        }
    }

    proptest! {
        #[test]
        fn round_trip(chain_id: u64, addr: [u8; 20], kind in 0u8..3) {
            let t = match kind {
                0 => Topic::Commit { chain_id, group: addr },
                1 => Topic::App { chain_id, group: addr },
                _ => Topic::Inbox { chain_id, account: addr },
            };
            prop_assert_eq!(t.to_string().parse::<Topic>().ok(), Some(t));
            prop_assert!(t.to_string().len() <= MAX_TOPIC_LEN);
        }

        #[test]
        fn parsing_never_panics(s in ".{0,200}") {
            if let Ok(t) = s.parse::<Topic>() {
                prop_assert_eq!(t.to_string(), s);
            }
        }
    }
}
