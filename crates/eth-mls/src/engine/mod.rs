//! The client's engine (DESIGN.md decision 24): the protocol's state and decisions with no
//! chain connection, delivery service, async runtime or clock. Facts from the chain arrive as
//! values ([`verdict::GroupFact`], [`verdict::Registration`], [`invitation::RequestFacts`]),
//! frames as bytes, time as a number; what the engine decides is returned as values for the
//! driver (the `Client`) to carry out. Its modules import neither `eth-mls-chain` nor
//! `eth-mls-transport`, nor an async runtime (a test below holds every file of this directory
//! to it); they keep their state in eth-mls-core's encrypted store, synchronously.
//!
//! - [`machine`]: the engine's state (store, groups, events) and the flows that need nothing
//!   else (application frames taken in, held back, tried again after a merge);
//! - [`events`]: what the client reports;
//! - [`sequencer`]: per group, registrations from the chain against commits from delivery;
//! - [`verdict`]: the chain-checked merge (decisions 11 and 12) and the ACL mirror;
//! - [`intent`], [`state`]: the persisted intents and the channel device;
//! - [`records`], [`cursor`]: what the client keeps in its store (invitations, messages,
//!   outbox, per-group chain state);
//! - [`requests`]: update and removal requests judged against the ACL;
//! - [`invitation`]: an invitation request judged against the facts read for it;
//! - [`prekeys`]: the one-time prekeys kept and renewed;
//! - [`wire`]: the client's messages on the 1:1 channel.

pub mod cursor;
pub mod events;
pub mod intent;
pub mod invitation;
pub mod machine;
pub mod prekeys;
pub mod records;
pub mod requests;
pub mod sequencer;
pub mod state;
pub mod verdict;
pub mod wire;

#[cfg(test)]
mod tests {
    /// No file of the engine imports the chain, the delivery layer, an async runtime or a
    /// clock (issue 31): facts and time come in as values.
    #[test]
    fn the_engine_does_no_io() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/engine");
        let mut checked = 0;
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            let text = std::fs::read_to_string(&path).unwrap();
            // The tests at the bottom of a file may use what they like, and comments may
            // name the driver.
            let code: String = text
                .split("#[cfg(test)]")
                .next()
                .unwrap_or("")
                .lines()
                .filter(|l| !l.trim_start().starts_with("//"))
                .collect::<Vec<_>>()
                .join("\n");
            for forbidden in [
                "eth_mls_chain",
                "eth_mls_transport",
                "tokio",
                "Instant::now",
                "SystemTime::now",
                "crate::now",
                "async fn",
                ".await",
                "crate::client",
                "crate::Client",
            ] {
                assert!(
                    !code.contains(forbidden),
                    "{} uses {forbidden}",
                    path.display()
                );
            }
            checked += 1;
        }
        assert!(checked >= 10, "only {checked} files checked");
    }
}
