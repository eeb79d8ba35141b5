//! The delivery trait every transport implements.

use std::collections::HashSet;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_util::Stream;

use crate::{Cursor, Envelope, Error, HistoryBatch, MessageId, Topic};

/// Largest page [`DeliveryService::subscribe_since`] asks for.
const CATCH_UP_PAGE: u32 = 256;

/// A stream of envelopes for one topic. It ends when the node stops (and stays ended).
pub struct Subscription {
    inner: Pin<Box<dyn Stream<Item = Envelope> + Send>>,
    done: bool,
}

impl Subscription {
    /// Wraps any stream of envelopes.
    pub fn new(stream: impl Stream<Item = Envelope> + Send + 'static) -> Self {
        Subscription {
            inner: Box::pin(stream),
            done: false,
        }
    }
}

impl Subscription {
    /// The envelopes sent into `rx`, ending when every sender is gone.
    pub(crate) fn from_receiver(rx: tokio::sync::mpsc::UnboundedReceiver<Envelope>) -> Self {
        Subscription::new(futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|e| (e, rx))
        }))
    }
}

impl Stream for Subscription {
    type Item = Envelope;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Envelope>> {
        if self.done {
            return Poll::Ready(None);
        }
        let item = self.inner.as_mut().poll_next(cx);
        if let Poll::Ready(None) = item {
            self.done = true;
        }
        item
    }
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Subscription")
    }
}

/// Publish/subscribe delivery of frames on eth-mls topics, with history for those who were
/// away (DESIGN.md decision 15). Frames are opaque ciphertext to the transport; ids are
/// SHA-256 of the frame, and a node delivers each id at most once to each subscription.
#[async_trait::async_trait]
pub trait DeliveryService: Send + Sync {
    /// Publishes `bytes` on `topic`; returns its id. Publishing the same bytes again is not an
    /// error (a crash-restarted outbox may republish): it returns the same id.
    async fn publish(&self, topic: &Topic, bytes: Vec<u8>) -> Result<MessageId, Error>;

    /// Frames published on `topic` by others from now on.
    async fn subscribe(&self, topic: &Topic) -> Result<Subscription, Error>;

    /// Up to `limit` frames of `topic` at or after `since` that this service can find, and
    /// where the next page starts.
    async fn history(
        &self,
        topic: &Topic,
        since: Cursor,
        limit: u32,
    ) -> Result<HistoryBatch, Error>;

    /// [`subscribe`](Self::subscribe), preceded by everything [`history`](Self::history)
    /// finds from `since` on: no frame published after the call is missed, and none is
    /// yielded twice by the returned subscription.
    async fn subscribe_since(&self, topic: &Topic, since: Cursor) -> Result<Subscription, Error> {
        use futures_util::StreamExt;
        let live = self.subscribe(topic).await?;
        let mut seen: HashSet<MessageId> = HashSet::new();
        let mut backlog = Vec::new();
        let mut cursor = since;
        loop {
            let page = self.history(topic, cursor, CATCH_UP_PAGE).await?;
            for e in page.envelopes {
                if seen.insert(e.id) {
                    backlog.push(e);
                }
            }
            match page.next {
                Some(next) if next > cursor => cursor = next,
                _ => break,
            }
        }
        let live = live.filter(move |e| std::future::ready(!seen.contains(&e.id)));
        Ok(Subscription::new(
            futures_util::stream::iter(backlog).chain(live),
        ))
    }
}

/// A shared service is a service: `Arc<dyn DeliveryService>` lets a program choose its
/// delivery at run time (the `ethmls` command line: chain, gossip, or both).
#[async_trait::async_trait]
impl<T: DeliveryService + ?Sized> DeliveryService for std::sync::Arc<T> {
    async fn publish(&self, topic: &Topic, bytes: Vec<u8>) -> Result<MessageId, Error> {
        (**self).publish(topic, bytes).await
    }

    async fn subscribe(&self, topic: &Topic) -> Result<Subscription, Error> {
        (**self).subscribe(topic).await
    }

    async fn history(
        &self,
        topic: &Topic,
        since: Cursor,
        limit: u32,
    ) -> Result<HistoryBatch, Error> {
        (**self).history(topic, since, limit).await
    }

    async fn subscribe_since(&self, topic: &Topic, since: Cursor) -> Result<Subscription, Error> {
        (**self).subscribe_since(topic, since).await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::{Faults, MemoryNetwork};

    #[tokio::test]
    async fn a_shared_service_delegates_every_call() {
        let net = MemoryNetwork::new(7, Faults::default());
        let a: Arc<dyn DeliveryService> = Arc::new(net.add_node("a"));
        let b: Arc<dyn DeliveryService> = Arc::new(net.add_node("b"));
        let topic = Topic::Inbox {
            chain_id: 1,
            account: [2; 20],
        };
        let mut sub = b.subscribe(&topic).await.unwrap();
        let id = a.publish(&topic, vec![1; 40]).await.unwrap();
        net.run_until_idle();
        let got = futures_util::StreamExt::next(&mut sub).await.unwrap();
        assert_eq!((got.id, got.bytes), (id, vec![1; 40]));
        let page = b.history(&topic, Cursor::START, 10).await.unwrap();
        assert_eq!(page.envelopes.len(), 1);
        let mut again = b.subscribe_since(&topic, Cursor::START).await.unwrap();
        let first = futures_util::StreamExt::next(&mut again).await.unwrap();
        assert_eq!(first.id, id);
    }
}
