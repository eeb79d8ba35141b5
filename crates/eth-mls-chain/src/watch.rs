//! Pushed wake-ups instead of polling (issue 30): over a WebSocket endpoint, `eth_subscribe`
//! tells a reader when a log of its contracts arrives and when such a log has its
//! confirmations, so a reader that is caught up asks the node nothing until there is
//! something to read.
//!
//! What is read stays the ranged `eth_getLogs` from the reader's saved cursor
//! ([`Chain::logs`], [`crate::log_stream`]): a notification only wakes the reader. That keeps
//! confirmations and reorg detection in one place, and a lost notification (a reconnect, a
//! lagging subscriber) costs latency, never an event: readers still read at a slow interval.

use std::pin::Pin;

use alloy::providers::DynProvider;
use alloy::rpc::types::{Filter, Log};
use futures_util::{FutureExt, Stream, StreamExt};

use crate::{Chain, Error};

/// Whether `provider` takes subscriptions (a WebSocket endpoint, with the `ws` feature).
pub(crate) fn is_pubsub(provider: &DynProvider) -> bool {
    #[cfg(feature = "ws")]
    {
        use alloy::providers::Provider;
        provider.client().pubsub_frontend().is_some()
    }
    #[cfg(not(feature = "ws"))]
    {
        let _ = provider;
        false
    }
}

/// A boxed stream of notifications.
type Notes<T> = Pin<Box<dyn Stream<Item = T> + Send>>;

/// Notifications for the logs matching one filter: see the [module](self) documentation.
pub struct Watch {
    logs: Notes<Log>,
    /// Block numbers of new heads (only subscribed with confirmations).
    heads: Notes<u64>,
    confirmations: u64,
    /// The latest head seen.
    head: u64,
    /// The lowest block at which a log seen but not yet read has its confirmations.
    due: Option<u64>,
    /// Something is there to read.
    ready: bool,
    /// The endpoint ended a subscription: read by polling from now on.
    ended: bool,
}

impl std::fmt::Debug for Watch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watch")
            .field("confirmations", &self.confirmations)
            .field("head", &self.head)
            .field("due", &self.due)
            .field("ready", &self.ready)
            .field("ended", &self.ended)
            .finish_non_exhaustive()
    }
}

impl Watch {
    /// Subscribes to the logs matching `filter` (its addresses and topics) and, with
    /// `confirmations`, to new heads. `Ok(None)` when the endpoint has no subscriptions
    /// (HTTP), or when the filter names no contract (it would match every contract's logs):
    /// poll then.
    pub async fn open(
        chain: &Chain,
        filter: &Filter,
        confirmations: u64,
    ) -> Result<Option<Watch>, Error> {
        Self::open_on(chain.provider(), filter, confirmations).await
    }

    /// [`Watch::open`] on a provider.
    pub(crate) async fn open_on(
        provider: &DynProvider,
        filter: &Filter,
        confirmations: u64,
    ) -> Result<Option<Watch>, Error> {
        if !is_pubsub(provider) || filter.address.is_empty() {
            return Ok(None);
        }
        Self::subscribe(provider, filter, confirmations).await
    }

    #[cfg(feature = "ws")]
    async fn subscribe(
        provider: &DynProvider,
        filter: &Filter,
        confirmations: u64,
    ) -> Result<Option<Watch>, Error> {
        use alloy::providers::Provider;
        let logs = provider.subscribe_logs(filter).await?.into_stream();
        let heads: Notes<u64> = if confirmations > 0 {
            Box::pin(
                provider
                    .subscribe_blocks()
                    .await?
                    .into_stream()
                    .map(|h| h.number),
            )
        } else {
            Box::pin(futures_util::stream::pending())
        };
        Ok(Some(Watch {
            logs: Box::pin(logs),
            heads,
            confirmations,
            head: 0,
            due: None,
            ready: false,
            ended: false,
        }))
    }

    #[cfg(not(feature = "ws"))]
    async fn subscribe(_: &DynProvider, _: &Filter, _: u64) -> Result<Option<Watch>, Error> {
        Ok(None)
    }

    /// Takes in one notification.
    fn note(&mut self, log: Option<Log>, head: Option<u64>) {
        if let Some(log) = log {
            if log.removed {
                // A reorg took one of the logs away: read (and find the reorg) now.
                self.ready = true;
            } else {
                let block = log.block_number.unwrap_or(self.head);
                self.head = self.head.max(block);
                let at = block.saturating_add(self.confirmations);
                self.due = Some(self.due.map_or(at, |d| d.min(at)));
            }
        }
        if let Some(head) = head {
            self.head = self.head.max(head);
        }
        if self.due.is_some_and(|d| d <= self.head) {
            self.due = None;
            self.ready = true;
        }
    }

    /// Takes in the notifications that arrived, without waiting.
    fn drain(&mut self) {
        loop {
            if self.ended {
                return;
            }
            let log = match self.logs.next().now_or_never() {
                Some(Some(log)) => Some(log),
                Some(None) => {
                    self.ended = true;
                    None
                }
                None => None,
            };
            let head = match self.heads.next().now_or_never() {
                Some(Some(h)) => Some(h),
                Some(None) => {
                    self.ended = true;
                    None
                }
                None => None,
            };
            if log.is_none() && head.is_none() {
                return;
            }
            self.note(log, head);
        }
    }

    /// Whether there is something to read since the last call (a log with its
    /// confirmations, or a removed one); clears it. Does not wait.
    pub fn take(&mut self) -> bool {
        self.drain();
        std::mem::take(&mut self.ready)
    }

    /// Waits until there is something to read (does not clear it: [`Watch::take`] does).
    /// Returns `false` at once when the endpoint ended a subscription ([`Watch::ended`]).
    pub async fn wait(&mut self) -> bool {
        loop {
            self.drain();
            if self.ready {
                return true;
            }
            if self.ended {
                return false;
            }
            tokio::select! {
                log = self.logs.next() => match log {
                    Some(log) => self.note(Some(log), None),
                    None => self.ended = true,
                },
                head = self.heads.next() => match head {
                    Some(head) => self.note(None, Some(head)),
                    None => self.ended = true,
                },
            }
        }
    }

    /// Whether the endpoint ended a subscription (the reader should poll, or open a new
    /// watch).
    pub fn ended(&self) -> bool {
        self.ended
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn watch(confirmations: u64) -> Watch {
        Watch {
            logs: Box::pin(futures_util::stream::pending()),
            heads: Box::pin(futures_util::stream::pending()),
            confirmations,
            head: 0,
            due: None,
            ready: false,
            ended: false,
        }
    }

    fn log(block: u64, removed: bool) -> Log {
        Log {
            block_number: Some(block),
            removed,
            ..Log::default()
        }
    }

    #[test]
    fn a_log_is_ready_once_it_has_its_confirmations() {
        let mut w = watch(2);
        w.note(Some(log(10, false)), None);
        assert!(!w.take(), "block 10 at head 10 has no confirmation yet");
        w.note(None, Some(11));
        assert!(!w.take());
        w.note(None, Some(12));
        assert!(w.take(), "two blocks on top");
        assert!(!w.take(), "taken once");
        w.note(None, Some(13));
        assert!(!w.take(), "a head alone wakes nothing");
    }

    #[test]
    fn without_confirmations_a_log_is_ready_at_once_and_a_removed_one_always() {
        let mut w = watch(0);
        w.note(Some(log(5, false)), None);
        assert!(w.take());
        let mut w = watch(6);
        w.note(Some(log(5, true)), None);
        assert!(w.take(), "a reorg is read at once");
    }

    #[test]
    fn the_earliest_log_sets_when_to_read() {
        let mut w = watch(1);
        w.note(Some(log(20, false)), None);
        w.note(Some(log(21, false)), None);
        w.note(None, Some(21));
        assert!(w.take(), "block 20 has its confirmation at 21");
    }

    #[tokio::test]
    async fn an_ended_subscription_is_reported() {
        let mut w = watch(0);
        w.logs = Box::pin(futures_util::stream::empty());
        assert!(!w.wait().await);
        assert!(w.ended());
    }
}
