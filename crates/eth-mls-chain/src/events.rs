//! Event streams that lose nothing and repeat nothing: `eth_getLogs` over block ranges from
//! a [`Cursor`] the caller can persist, a confirmation depth, and RPC failures retried with
//! exponential backoff, resuming at the cursor. Over a WebSocket endpoint a caught-up stream
//! waits for `eth_subscribe` notifications ([`crate::Watch`]) instead of polling.

use std::collections::VecDeque;
use std::time::Duration;

use alloy::primitives::B256;
use alloy::providers::{DynProvider, Provider};
use alloy::rpc::types::{Filter, Log};
use futures_util::Stream;
use serde::{Deserialize, Serialize};

use crate::Error;

/// Where a stream resumes: the next event delivered is the first at or after
/// (`block`, `log_index`). Persist the cursor of the last event you handled
/// ([`Event::cursor`]) and start from it after a restart.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Cursor {
    /// Block number.
    pub block: u64,
    /// Log index within the block.
    pub log_index: u64,
}

impl Cursor {
    /// The start of `block`.
    pub fn at_block(block: u64) -> Cursor {
        Cursor {
            block,
            log_index: 0,
        }
    }
}

/// How a stream polls.
#[derive(Clone, Debug)]
pub struct StreamConfig {
    /// Deliver only logs at least this many blocks below the head (0: the head itself).
    /// Logs inside the window may still be reorganised away; choose it per chain.
    pub confirmations: u64,
    /// Wait between polls once caught up.
    pub poll_interval: Duration,
    /// Over a WebSocket endpoint the stream is woken by `eth_subscribe` ([`crate::Watch`])
    /// instead of polling, and still reads at least this often (a notification lost in a
    /// reconnect costs at most this much latency). It never reads more often than
    /// [`StreamConfig::poll_interval`], however many notifications the node sends.
    pub pushed_poll_interval: Duration,
    /// Largest block range asked of `eth_getLogs` at once (halved whenever the provider
    /// refuses a range or a result count).
    pub max_block_range: u64,
    /// First wait after an RPC failure; doubled each further failure.
    pub initial_backoff: Duration,
    /// Longest wait between retries.
    pub max_backoff: Duration,
    /// Give up (yield [`Error::StreamGaveUp`] and end) after this many consecutive failures;
    /// `None` retries forever.
    pub max_attempts: Option<u32>,
}

impl Default for StreamConfig {
    fn default() -> Self {
        Self {
            confirmations: 0,
            poll_interval: Duration::from_millis(500),
            pushed_poll_interval: Duration::from_secs(30),
            max_block_range: 2_000,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(10),
            max_attempts: None,
        }
    }
}

/// A decoded event with where it was, and the cursor to resume after it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event<T> {
    /// The decoded event.
    pub data: T,
    /// Block number.
    pub block: u64,
    /// Log index within the block.
    pub log_index: u64,
    /// The transaction that emitted it.
    pub tx: Option<B256>,
    /// Resume here to get the events after this one.
    pub cursor: Cursor,
}

struct State {
    provider: DynProvider,
    filter: Filter,
    cursor: Cursor,
    /// Block from which the next range is scanned once the buffer is drained.
    next_scan: u64,
    buffer: VecDeque<Log>,
    cfg: StreamConfig,
    failures: u32,
    done: bool,
    /// Wake-ups over `eth_subscribe`, once opened.
    watch: Option<crate::Watch>,
    /// A watch was asked for (once per stream).
    watch_tried: bool,
}

impl State {
    /// One scan; `Ok(false)` when caught up.
    async fn scan(&mut self) -> Result<bool, Error> {
        let head = self.provider.get_block_number().await?;
        let safe = head.saturating_sub(self.cfg.confirmations);
        let from = self.next_scan;
        if from > safe {
            return Ok(false);
        }
        let to = safe.min(from + self.cfg.max_block_range.max(1) - 1);
        let filter = self.filter.clone().from_block(from).to_block(to);
        let logs = match self.provider.get_logs(&filter).await {
            Ok(logs) => logs,
            // The provider refuses the range or the result count: narrower from now on.
            Err(e) if crate::rpc::is_log_cap(&e) && to > from => {
                self.cfg.max_block_range = (to - from).div_ceil(2).max(1);
                return Ok(true);
            }
            Err(e) => return Err(e.into()),
        };
        let cursor = self.cursor;
        let mut fresh: Vec<Log> = logs
            .into_iter()
            .filter(|l| {
                let at = Cursor {
                    block: l.block_number.unwrap_or(0),
                    log_index: l.log_index.unwrap_or(0),
                };
                l.block_number.is_some() && !l.removed && at >= cursor
            })
            .collect();
        fresh.sort_by_key(|l| (l.block_number, l.log_index));
        self.buffer.extend(fresh);
        self.next_scan = to + 1;
        if self.buffer.is_empty() {
            self.cursor = self.cursor.max(Cursor::at_block(self.next_scan));
        }
        Ok(true)
    }

    /// Waits for the next scan once caught up: woken by the endpoint's notifications when it
    /// has subscriptions, else after the poll interval.
    async fn wait(&mut self) {
        if !self.watch_tried {
            self.watch_tried = true;
            let open = crate::Watch::open_on(&self.provider, &self.filter, self.cfg.confirmations);
            self.watch = open.await.ok().flatten();
            if self.watch.is_some() {
                // Subscribed after the last scan: scan once more, so nothing between is missed.
                return;
            }
        }
        match &mut self.watch {
            Some(w) if !w.ended() => {
                let scanned = tokio::time::Instant::now();
                let _ = tokio::time::timeout(self.cfg.pushed_poll_interval, w.wait()).await;
                // A node that floods notifications gets at most one read per poll interval
                // (what polling would cost); what arrives meanwhile is read by that one.
                tokio::time::sleep_until(scanned + self.cfg.poll_interval).await;
                w.take();
            }
            _ => tokio::time::sleep(self.cfg.poll_interval).await,
        }
    }

    fn backoff(&self) -> Duration {
        let factor = 1u32 << self.failures.min(16);
        (self.cfg.initial_backoff * factor).min(self.cfg.max_backoff)
    }
}

/// All logs matching `filter` (its address and topics; its block range is ignored) from
/// `from` on, in chain order, forever. Requires a Tokio runtime with timers.
pub fn log_stream(
    provider: DynProvider,
    filter: Filter,
    from: Cursor,
    cfg: StreamConfig,
) -> impl Stream<Item = Result<Log, Error>> + Send + 'static {
    let state = State {
        provider,
        filter,
        cursor: from,
        next_scan: from.block,
        buffer: VecDeque::new(),
        cfg,
        failures: 0,
        done: false,
        watch: None,
        watch_tried: false,
    };
    futures_util::stream::unfold(state, |mut s| async move {
        loop {
            if let Some(log) = s.buffer.pop_front() {
                let (block, index) = (log.block_number.unwrap_or(0), log.log_index.unwrap_or(0));
                s.cursor = Cursor {
                    block,
                    log_index: index + 1,
                };
                if s.buffer.is_empty() {
                    s.cursor = s.cursor.max(Cursor::at_block(s.next_scan));
                }
                return Some((Ok(log), s));
            }
            if s.done {
                return None;
            }
            match s.scan().await {
                Ok(true) => s.failures = 0,
                Ok(false) => {
                    s.failures = 0;
                    s.wait().await;
                }
                Err(e) => {
                    s.failures += 1;
                    if s.cfg.max_attempts.is_some_and(|max| s.failures >= max) {
                        s.done = true;
                        let error = Error::StreamGaveUp {
                            attempts: s.failures,
                            last: e.to_string(),
                        };
                        return Some((Err(error), s));
                    }
                    tokio::time::sleep(s.backoff()).await;
                }
            }
        }
    })
}

/// Where to resume after `log`.
pub(crate) fn cursor_after(log: &Log) -> Cursor {
    Cursor {
        block: log.block_number.unwrap_or(0),
        log_index: log.log_index.unwrap_or(0) + 1,
    }
}

/// Decodes a stream of logs with `decode`.
pub(crate) fn typed<T, S, F>(logs: S, decode: F) -> impl Stream<Item = Result<Event<T>, Error>>
where
    S: Stream<Item = Result<Log, Error>>,
    F: Fn(&Log) -> Result<T, String>,
{
    use futures_util::StreamExt;
    logs.map(move |item| {
        let log = item?;
        let (block, log_index) = (log.block_number.unwrap_or(0), log.log_index.unwrap_or(0));
        let data = decode(&log).map_err(|reason| Error::BadLog {
            block,
            log_index,
            reason,
        })?;
        Ok(Event {
            data,
            block,
            log_index,
            tx: log.transaction_hash,
            cursor: cursor_after(&log),
        })
    })
}
