//! How a [`crate::Chain`] talks to its RPC endpoint: a request timeout, and failures that may
//! pass (HTTP 429 and 5xx, a provider's rate-limit error, a timeout, a dropped connection)
//! retried with exponential backoff, honouring `Retry-After`. A retried
//! `eth_sendRawTransaction` whose first attempt reached the node (its answer was lost) is
//! recognised — "already known", or "nonce too low" with the transaction found by its hash —
//! and answered with the transaction's hash: a transaction is never sent twice, nor reported
//! failed when it was sent. A request that may have reached the node (a timeout, a dropped
//! connection) is sent again only when that is harmless: reads and raw transactions, not a
//! node's own methods such as `anvil_mine`. `eth_getLogs` refusals for a too-wide range or too many results
//! are not retried: the log reader narrows the range instead ([`is_log_cap`]).

use std::task::{Context, Poll};
use std::time::Duration;

use alloy::primitives::keccak256;
use alloy::rpc::json_rpc::{
    Request, RequestPacket, Response, ResponsePacket, ResponsePayload, SerializedRequest,
};
use alloy::transports::{TransportError, TransportErrorKind, TransportFut};

/// How a connection treats its RPC endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RpcConfig {
    /// An HTTP request without an answer after this long fails (and is retried).
    pub request_timeout: Duration,
    /// Retries of a request that failed for a reason that may pass, after the first attempt.
    pub max_retries: u32,
    /// The wait before the first retry; doubled for each further one.
    pub initial_backoff: Duration,
    /// The longest wait between two attempts.
    pub max_backoff: Duration,
    /// The widest block range asked of `eth_getLogs` at first; narrowed (for the connection's
    /// lifetime) when the provider refuses a range or a result count.
    pub max_log_range: u64,
    /// The most a transaction may pay per gas (EIP-1559 `maxFeePerGas`, wei); `None`: the
    /// provider's estimate, whatever it is. Nothing is sent while the base fee is above it.
    pub max_fee_per_gas: Option<u128>,
    /// A transaction not mined after this long is sent again with the same nonce and fees
    /// raised by an eighth (as long as the cap allows).
    pub replace_after: Duration,
}

impl Default for RpcConfig {
    /// 30 s per request, 8 retries from 100 ms doubling up to 5 s (about 17 s of waiting in
    /// all), log ranges of 2,000 blocks (what most public providers accept), no fee cap, a
    /// transaction replaced after a minute unmined.
    fn default() -> Self {
        Self {
            request_timeout: Duration::from_secs(30),
            max_retries: 8,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
            max_log_range: 2_000,
            max_fee_per_gas: None,
            replace_after: Duration::from_secs(60),
        }
    }
}

/// Whether `e`, an answer to `eth_getLogs`, is the provider refusing the query's block range or
/// result count (Alchemy, Infura, QuickNode and others word it differently; what they share is
/// matched here). Such a query is asked again over a narrower range, not retried as it was.
pub fn is_log_cap(e: &TransportError) -> bool {
    let message = match e {
        TransportError::ErrorResp(p) => p.message.to_ascii_lowercase(),
        TransportError::Transport(TransportErrorKind::HttpError(h)) if h.status != 429 => {
            h.body.to_ascii_lowercase()
        }
        _ => return false,
    };
    [
        "block range",
        "range too large",
        "range is too large",
        "exceed maximum block range",
        "more than",
        "response size",
        "too many results",
        "results exceed",
        "limited to",
        "query timeout",
    ]
    .iter()
    .any(|p| message.contains(p))
}

/// Whether `e` may pass by itself, so the same request is worth sending again.
pub(crate) fn is_transient(e: &TransportError) -> bool {
    match e {
        TransportError::Transport(kind) => match kind {
            TransportErrorKind::HttpError(h) => matches!(h.status, 408 | 425 | 429 | 500..=599),
            TransportErrorKind::HttpErrorWithRetryAfter { .. }
            | TransportErrorKind::MissingBatchResponse(_)
            | TransportErrorKind::BackendGone => true,
            // reqwest: timeouts, refused, reset or closed connections, truncated bodies.
            TransportErrorKind::Custom(_) => true,
            _ => false,
        },
        TransportError::ErrorResp(p) => {
            let m = p.message.to_ascii_lowercase();
            p.code == 429
                || m.contains("rate limit")
                || m.contains("too many requests")
                || m.contains("exceeded the quota")
                || m.contains("capacity exceeded")
                || m.contains("try again")
        }
        // An answer that is not JSON-RPC at all (a proxy's error page).
        TransportError::DeserError { .. } => true,
        _ => false,
    }
}

/// Whether sending `method` twice does no harm: the standard reads, and
/// `eth_sendRawTransaction` (a resent transaction is recognised). Not `eth_sendTransaction`,
/// nor a node's own methods (`anvil_mine`, `evm_*`, …).
fn is_repeatable(method: &str) -> bool {
    method == "eth_sendRawTransaction"
        || (method.starts_with("eth_") && method != "eth_sendTransaction")
        || method.starts_with("net_")
        || method.starts_with("web3_")
}

/// The wait a failure asks for (`Retry-After`), if it names one.
fn hinted_wait(e: &TransportError) -> Option<Duration> {
    match e {
        TransportError::Transport(TransportErrorKind::HttpErrorWithRetryAfter {
            retry_after,
            ..
        }) => Some(*retry_after),
        _ => None,
    }
}

/// The tower layer that retries (see the module documentation).
#[derive(Clone, Debug)]
pub(crate) struct RetryLayer {
    pub(crate) config: RpcConfig,
}

impl<S> tower::Layer<S> for RetryLayer {
    type Service = Retry<S>;

    fn layer(&self, inner: S) -> Retry<S> {
        Retry {
            inner,
            config: self.config.clone(),
        }
    }
}

/// See [`RetryLayer`].
#[derive(Clone, Debug)]
pub(crate) struct Retry<S> {
    inner: S,
    config: RpcConfig,
}

/// The single request of `packet`, if it is one.
fn single(packet: &RequestPacket) -> Option<&SerializedRequest> {
    match packet {
        RequestPacket::Single(r) => Some(r),
        RequestPacket::Batch(_) => None,
    }
}

/// The answer to `req` saying its transaction was accepted, with the transaction's hash.
fn accepted(req: &SerializedRequest, hash: alloy::primitives::B256) -> Option<ResponsePacket> {
    let payload = serde_json::value::to_raw_value(&hash).ok()?;
    Some(ResponsePacket::Single(Response {
        id: req.id().clone(),
        payload: ResponsePayload::Success(payload),
    }))
}

/// The signed transaction bytes of an `eth_sendRawTransaction` request.
fn raw_transaction(req: &SerializedRequest) -> Option<Vec<u8>> {
    if req.method() != "eth_sendRawTransaction" {
        return None;
    }
    let params: Vec<alloy::primitives::Bytes> = serde_json::from_str(req.params()?.get()).ok()?;
    params.into_iter().next().map(|b| b.to_vec())
}

impl<S> tower::Service<RequestPacket> for Retry<S>
where
    S: tower::Service<RequestPacket, Future = TransportFut<'static>, Error = TransportError>
        + Send
        + Clone
        + 'static,
{
    type Response = ResponsePacket;
    type Error = TransportError;
    type Future = TransportFut<'static>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: RequestPacket) -> Self::Future {
        let mut inner = self.inner.clone();
        let config = self.config.clone();
        Box::pin(async move {
            let raw = single(&request).and_then(raw_transaction);
            let is_logs = single(&request).is_some_and(|r| r.method() == "eth_getLogs");
            let repeatable = match &request {
                RequestPacket::Single(r) => is_repeatable(r.method()),
                RequestPacket::Batch(b) => b.iter().all(|r| is_repeatable(r.method())),
            };
            let mut attempt = 0u32;
            loop {
                let err = match inner.call(request.clone()).await {
                    Ok(res) => match res.as_error() {
                        None => return Ok(res),
                        Some(e) => TransportError::ErrorResp(e.clone()),
                    },
                    Err(e) => e,
                };
                // A send retried after its first attempt reached the node.
                if attempt > 0
                    && let (Some(raw), Some(req)) = (&raw, single(&request))
                    && let TransportError::ErrorResp(p) = &err
                {
                    let m = p.message.to_ascii_lowercase();
                    let hash = keccak256(raw);
                    let known = m.contains("already known")
                        || m.contains("known transaction")
                        || m.contains("already imported")
                        || ((m.contains("nonce too low") || m.contains("replacement"))
                            && transaction_known(&mut inner, hash).await);
                    if known && let Some(ok) = accepted(req, hash) {
                        return Ok(ok);
                    }
                }
                // A request that may have reached the node is sent again only when doing so
                // twice is harmless: reads, and raw transactions (recognised above).
                let may_have_acted = !matches!(
                    &err,
                    TransportError::ErrorResp(_)
                        | TransportError::Transport(
                            TransportErrorKind::HttpError(_)
                                | TransportErrorKind::HttpErrorWithRetryAfter { .. }
                        )
                );
                if (is_logs && is_log_cap(&err))
                    || !is_transient(&err)
                    || (may_have_acted && !repeatable)
                    || attempt >= config.max_retries
                {
                    return Err(err);
                }
                let doubled = config
                    .initial_backoff
                    .saturating_mul(1u32 << attempt.min(16))
                    .min(config.max_backoff);
                let wait = hinted_wait(&err).map_or(doubled, |h| h.min(config.max_backoff * 4));
                attempt += 1;
                tokio::time::sleep(wait).await;
            }
        })
    }
}

/// Whether the node knows transaction `hash` (pending or mined).
async fn transaction_known<S>(inner: &mut S, hash: alloy::primitives::B256) -> bool
where
    S: tower::Service<RequestPacket, Future = TransportFut<'static>, Error = TransportError>,
{
    let Ok(req) = Request::new("eth_getTransactionByHash", 1u64.into(), [hash]).serialize() else {
        return false;
    };
    match inner.call(RequestPacket::Single(req)).await {
        Ok(ResponsePacket::Single(Response {
            payload: ResponsePayload::Success(v),
            ..
        })) => v.get() != "null",
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy::rpc::json_rpc::ErrorPayload;

    fn resp(code: i64, message: &str) -> TransportError {
        TransportError::ErrorResp(ErrorPayload {
            code,
            message: message.to_owned().into(),
            data: None,
        })
    }

    /// The providers' own words for a refused log query are told apart from rate limits.
    #[test]
    fn log_caps_are_recognised_and_not_retried_as_such() {
        for (code, m) in [
            (-32005, "query returned more than 10000 results"),
            (
                -32600,
                "Log response size exceeded. You can make eth_getLogs requests with up to a 2K block range",
            ),
            (-32602, "eth_getLogs is limited to a 1000 block range"),
            (-32000, "block range is too large"),
            (-32000, "exceed maximum block range: 5000"),
        ] {
            assert!(is_log_cap(&resp(code, m)), "{m}");
        }
        assert!(!is_log_cap(&resp(
            -32005,
            "daily request count exceeded, request rate limited"
        )));
        assert!(is_transient(&resp(
            -32005,
            "daily request count exceeded, request rate limited"
        )));
        assert!(is_transient(&resp(429, "Too Many Requests")));
        assert!(!is_transient(&resp(3, "execution reverted")));
        assert!(!is_transient(&resp(-32000, "nonce too low")));
        let http = |status| {
            TransportError::Transport(TransportErrorKind::HttpError(
                alloy::transports::HttpError {
                    status,
                    body: String::new(),
                },
            ))
        };
        assert!(is_transient(&http(429)));
        assert!(is_transient(&http(503)));
        assert!(!is_transient(&http(401)));
    }
}
