//! Catching up on application messages from the delivery service's history (decision 15's
//! history protocol): a member back online pages through the group's app topic from its last
//! cursor and processes every frame; what it cannot recover is reported, never silently
//! skipped — eth-mls-core's `MissedMessages` events for generation gaps (frames no peer kept
//! any more), and the count of frames it could not process.

use eth_mls_core::{Checks, Event, Group, Store};
use eth_mls_crypto::Backend;
use eth_mls_transport::{Cursor, DeliveryService, Topic};

use crate::Error;

/// Frames per history page.
const PAGE: u32 = 256;

/// What [`catch_up_messages`] found.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct MessagesCaughtUp {
    /// The events the frames produced, in cursor order (application messages, missed-message
    /// reports, proposals).
    pub events: Vec<Event>,
    /// Frames seen before (same bytes): nothing to do.
    pub duplicates: usize,
    /// Frames the group could not process (another group's, an epoch no longer held, tampered),
    /// with the reason of the first.
    pub rejected: usize,
    /// Why the first rejected frame was rejected.
    pub first_rejection: Option<String>,
    /// Where to continue next time.
    pub next: Cursor,
}

/// Pages through `topic`'s history from `since` and processes every frame into `group`.
pub async fn catch_up_messages<B: Backend>(
    delivery: &dyn DeliveryService,
    topic: &Topic,
    since: Cursor,
    group: &mut Group,
    store: &mut Store<B>,
    checks: &Checks<'_>,
) -> Result<MessagesCaughtUp, Error> {
    let mut out = MessagesCaughtUp {
        next: since,
        ..MessagesCaughtUp::default()
    };
    loop {
        let batch = delivery
            .history(topic, out.next, PAGE)
            .await
            .map_err(|e| Error::Delivery(e.to_string()))?;
        for envelope in &batch.envelopes {
            out.next = envelope.cursor.next();
            match group.process(store, &envelope.bytes, checks).await {
                Ok(p) if p.is_duplicate() => out.duplicates += 1,
                Ok(p) => out.events.extend(p.into_events()),
                Err(e) => {
                    out.rejected += 1;
                    out.first_rejection.get_or_insert_with(|| e.to_string());
                }
            }
        }
        match batch.next {
            Some(next) if !batch.envelopes.is_empty() || next != out.next => out.next = next,
            _ => return Ok(out),
        }
    }
}
