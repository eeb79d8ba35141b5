//! A connection to a chain: the provider (gas estimation, cached nonces for concurrent
//! sends, chain id), the optional signer, and the transaction helper every client uses.

use std::sync::Arc;

use alloy::contract::{CallBuilder, CallDecoder};
use alloy::network::EthereumWallet;
use alloy::primitives::{Address, B256};
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::rpc::types::{Filter, Log, TransactionReceipt};
use alloy::signers::local::PrivateKeySigner;
use tokio::sync::Mutex;

use crate::error::{Contract, Error};
use crate::rpc::{RetryLayer, RpcConfig, is_log_cap};
use crate::{Erc7627, GroupContract, GroupFactory};

/// A connection to an EVM chain over JSON-RPC, with or without a signing key.
///
/// Transactions get their gas estimated and their nonce from this client's counter, so one
/// signer can have many transactions in flight at once (clones share the counter; use one
/// `Chain` per key). A send that fails before reaching the node leaves no nonce gap: the
/// counter is re-read from the chain — as it is whenever no transaction is in flight, so one
/// that a reorg dropped leaves none either. Every receipt is checked: a reverted transaction is an
/// [`Error`], with the contract's custom error decoded when there is one.
#[derive(Clone)]
pub struct Chain {
    provider: DynProvider,
    sender: Option<Address>,
    chain_id: u64,
    /// The signer's nonces while transactions of this connection are in flight.
    nonce: Arc<Mutex<Nonces>>,
    /// What this connection's transactions cost so far (shared by clones).
    spent: Arc<std::sync::Mutex<Spent>>,
    /// The widest `eth_getLogs` range the endpoint accepts, as learned (shared by clones).
    log_range: Arc<std::sync::atomic::AtomicU64>,
    /// Fee cap and replacement.
    config: RpcConfig,
    /// Called while a transaction waits to be mined.
    progress: Arc<std::sync::Mutex<Option<ProgressFn>>>,
    /// The slot the next transaction goes in ([`Chain::in_slot`]), instead of the counter's.
    slot: Option<TxSlot>,
}

/// The nonce counter: the next nonce of the signer, kept only while a transaction of this
/// connection (or its clones) is in flight — after that it is read from the node again, so a
/// transaction a reorg dropped leaves no gap behind.
#[derive(Debug, Default)]
struct Nonces {
    /// The next nonce, when known.
    next: Option<u64>,
    /// Transactions sent (or slots handed out) and not settled yet.
    in_flight: usize,
}

/// A progress callback.
type ProgressFn = Arc<dyn Fn(&Progress) + Send + Sync>;

impl std::fmt::Debug for Chain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Chain")
            .field("chain_id", &self.chain_id)
            .field("sender", &self.sender)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// A transaction waiting to be mined ([`Chain::on_progress`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Progress {
    /// The transaction (the latest replacement, if any).
    pub tx: B256,
    /// How long it has waited.
    pub waited: std::time::Duration,
    /// How many times it was replaced with higher fees.
    pub replacements: u32,
}

/// `c` offering `fees` (the provider's filler prices it when `None`).
fn priced<D: CallDecoder>(
    c: CallBuilder<&DynProvider, D>,
    fees: Option<Fees>,
) -> CallBuilder<&DynProvider, D> {
    match fees {
        Some(f) => c.max_fee_per_gas(f.max).max_priority_fee_per_gas(f.tip),
        None => c,
    }
}

/// EIP-1559 fees, wei per gas.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Fees {
    max: u128,
    tip: u128,
}

impl Fees {
    /// Both raised by an eighth (nodes take a replacement only 10% above), the maximum never
    /// past `cap`; `None` when the cap leaves no room for a replacement.
    fn bumped(self, cap: Option<u128>) -> Option<Fees> {
        let up = |v: u128| v.saturating_add(v / 8).saturating_add(1);
        let max = cap.map_or(up(self.max), |c| up(self.max).min(c));
        let tip = up(self.tip).min(max);
        let enough = |new: u128, old: u128| new >= old.saturating_add(old / 10).saturating_add(1);
        (enough(max, self.max) && enough(tip, self.tip)).then_some(Fees { max, tip })
    }
}

/// A transaction's place in its sender's sequence (its nonce) and the fees it offers, chosen
/// before it is sent ([`Chain::slot`]) so that the caller can persist it first. After a
/// crash between sending and the receipt, the same operation goes in the same place again
/// ([`Chain::slot`] with the saved slot, then [`Chain::in_slot`]): it replaces whatever was
/// sent before, so at most one of them is mined — never a second transaction for one
/// operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TxSlot {
    /// The nonce.
    pub nonce: u64,
    /// EIP-1559 maximum fee per gas offered, wei (0: the provider prices it).
    pub max_fee_per_gas: u128,
    /// EIP-1559 priority fee per gas offered, wei.
    pub max_priority_fee_per_gas: u128,
    /// Whether it takes over a slot a transaction may already be in (sent by an earlier
    /// process): gas is then estimated on the latest block, not on the pool's state, which
    /// holds the earlier transaction.
    resumed: bool,
}

impl TxSlot {
    /// A slot as saved (give it to [`Chain::slot`] to resume it).
    pub fn saved(nonce: u64, max_fee_per_gas: u128, max_priority_fee_per_gas: u128) -> Self {
        Self {
            nonce,
            max_fee_per_gas,
            max_priority_fee_per_gas,
            resumed: false,
        }
    }

    fn fees(&self) -> Option<Fees> {
        (self.max_fee_per_gas > 0).then_some(Fees {
            max: self.max_fee_per_gas,
            tip: self.max_priority_fee_per_gas,
        })
    }
}

/// Whether a node refused a transaction because one with its nonce is in the pool at a fee it
/// does not beat by enough.
fn underpriced(e: &alloy::contract::Error) -> bool {
    e.to_string().contains("underpriced")
}

/// Whether a node refused a transaction because its nonce was mined already.
fn nonce_too_low(e: &alloy::contract::Error) -> bool {
    e.to_string().to_lowercase().contains("nonce too low")
}

/// What a connection's transactions cost: counted from their receipts (reverted ones too:
/// they are paid).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Spent {
    /// Transactions mined.
    pub transactions: u64,
    /// Gas used, summed.
    pub gas_used: u64,
    /// Wei paid (gas used times the effective gas price), summed.
    pub wei: u128,
}

impl Chain {
    /// Connects to `rpc_url` (`http://…`; `https://…` with the `rustls` feature; `ws://…`
    /// with the `ws` feature), signing with `signer` when given.
    pub async fn connect(rpc_url: &str, signer: Option<PrivateKeySigner>) -> Result<Chain, Error> {
        Self::connect_with(rpc_url, signer, &RpcConfig::default()).await
    }

    /// [`Chain::connect`] with a request timeout, retries and log ranges of one's own (HTTP
    /// endpoints; a WebSocket endpoint keeps its connection's own handling).
    pub async fn connect_with(
        rpc_url: &str,
        signer: Option<PrivateKeySigner>,
        config: &RpcConfig,
    ) -> Result<Chain, Error> {
        let invalid = |reason: String| Error::InvalidUrl {
            url: rpc_url.to_owned(),
            reason,
        };
        let sender = signer.as_ref().map(PrivateKeySigner::address);
        // Gas estimation and chain id from fillers; nonces are ours (see `transact`).
        let builder = ProviderBuilder::new()
            .disable_recommended_fillers()
            .with_gas_estimation()
            .fetch_chain_id();
        let provider: DynProvider = if rpc_url.starts_with("ws://") || rpc_url.starts_with("wss://")
        {
            #[cfg(feature = "ws")]
            {
                let ws = alloy::providers::WsConnect::new(rpc_url);
                match signer {
                    Some(s) => builder
                        .wallet(EthereumWallet::from(s))
                        .connect_ws(ws)
                        .await?
                        .erased(),
                    None => builder.connect_ws(ws).await?.erased(),
                }
            }
            #[cfg(not(feature = "ws"))]
            {
                return Err(invalid("WebSocket endpoints need the `ws` feature".into()));
            }
        } else {
            let url: alloy::transports::http::reqwest::Url =
                rpc_url.parse().map_err(|e| invalid(format!("{e}")))?;
            if !matches!(url.scheme(), "http" | "https") {
                return Err(invalid(format!("unsupported scheme {:?}", url.scheme())));
            }
            let http = alloy::transports::http::reqwest::Client::builder()
                .timeout(config.request_timeout)
                .build()
                .map_err(|e| invalid(format!("{e}")))?;
            let is_local = url
                .host_str()
                .is_some_and(|h| h == "localhost" || h == "127.0.0.1" || h == "[::1]");
            let client = alloy::rpc::client::ClientBuilder::default()
                .layer(RetryLayer {
                    config: config.clone(),
                })
                .transport(
                    alloy::transports::http::Http::with_client(http, url),
                    is_local,
                );
            match signer {
                Some(s) => builder
                    .wallet(EthereumWallet::from(s))
                    .connect_client(client)
                    .erased(),
                None => builder.connect_client(client).erased(),
            }
        };
        let chain_id = provider.get_chain_id().await?;
        Ok(Chain {
            provider,
            sender,
            chain_id,
            nonce: Arc::new(Mutex::new(Nonces::default())),
            spent: Arc::new(std::sync::Mutex::new(Spent::default())),
            log_range: Arc::new(std::sync::atomic::AtomicU64::new(
                config.max_log_range.max(1),
            )),
            config: config.clone(),
            progress: Arc::new(std::sync::Mutex::new(None)),
            slot: None,
        })
    }

    /// The provider, for anything this crate does not wrap.
    pub fn provider(&self) -> &DynProvider {
        &self.provider
    }

    /// Whether the endpoint takes subscriptions (`eth_subscribe`: a WebSocket URL with the
    /// `ws` feature): [`crate::Watch`] wakes readers then, instead of polling.
    pub fn is_pubsub(&self) -> bool {
        crate::watch::is_pubsub(&self.provider)
    }

    /// The signer's address, when there is one.
    pub fn sender(&self) -> Option<Address> {
        self.sender
    }

    /// The chain id the endpoint reported.
    pub fn chain_id(&self) -> u64 {
        self.chain_id
    }

    /// What the transactions sent through this connection (and its clones) cost so far.
    pub fn spent(&self) -> Spent {
        self.spent.lock().map(|s| *s).unwrap_or_default()
    }

    /// Every log matching `filter` (its addresses and topics; its block range is ignored) from
    /// block `from` to `to`, in chain order, without removed ones: as few `eth_getLogs` calls
    /// as the endpoint allows. A range or result count the endpoint refuses ([`is_log_cap`]) is
    /// halved, and the narrower range kept for this connection's later queries.
    pub async fn logs(&self, filter: &Filter, from: u64, to: u64) -> Result<Vec<Log>, Error> {
        use std::sync::atomic::Ordering;
        let mut out = Vec::new();
        let mut start = from;
        while start <= to {
            let range = self.log_range.load(Ordering::Relaxed).max(1);
            let end = to.min(start.saturating_add(range - 1));
            let query = filter.clone().from_block(start).to_block(end);
            match self.provider.get_logs(&query).await {
                Ok(logs) => {
                    out.extend(logs.into_iter().filter(|l| !l.removed));
                    start = end + 1;
                }
                Err(e) if is_log_cap(&e) && end > start => {
                    // Halve what was asked (not what is stored: another query may have
                    // narrowed it already).
                    let half = (end - start).div_ceil(2).max(1);
                    self.log_range.fetch_min(half, Ordering::Relaxed);
                }
                Err(e) => return Err(e.into()),
            }
        }
        out.sort_by_key(|l| (l.block_number, l.log_index));
        Ok(out)
    }

    /// The widest `eth_getLogs` range this connection asks for now.
    pub fn log_range(&self) -> u64 {
        self.log_range.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Forgets the cached nonce: the next transaction reads it from the chain. Call it after a
    /// reorg (transactions of this signer may have been dropped with their blocks, and a
    /// nonce after a gap would never be mined).
    pub async fn reset_nonce(&self) {
        self.nonce.lock().await.next = None;
    }

    /// A transaction of this connection settled (mined, failed, or never sent): with none left
    /// in flight, the next nonce is read from the node again.
    async fn release(&self) {
        let mut n = self.nonce.lock().await;
        n.in_flight = n.in_flight.saturating_sub(1);
        if n.in_flight == 0 {
            n.next = None;
        }
    }

    /// The slot for this signer's next transaction, for a caller that persists it before
    /// sending (then sends through [`Chain::in_slot`] at once, or gives it back with
    /// [`Chain::abandon`]: a slot not used leaves a nonce gap otherwise).
    ///
    /// With `resume`, a slot saved before a restart: when nothing is mined in its nonce yet
    /// and the node holds a transaction there, the same slot with its fees raised by an
    /// eighth (at least the network's price now, never past the cap) — the operation sent
    /// again replaces the earlier transaction. Otherwise (mined, or the node has nothing
    /// there) a new slot: the next nonce and the fees now.
    pub async fn slot(&self, resume: Option<TxSlot>) -> Result<TxSlot, Error> {
        let sender = self.sender.ok_or(Error::NoSigner)?;
        let mut nonces = self.nonce.lock().await;
        // The fees and (when no transaction is in flight) the next nonce in one round trip;
        // the counter is held meanwhile, so no other send takes that nonce.
        let next = nonces.next;
        let (now, pending) = futures_util::future::try_join(self.fees(), async {
            match next {
                Some(n) => Ok(n),
                None => Ok::<_, Error>(
                    self.provider
                        .get_transaction_count(sender)
                        .pending()
                        .await?,
                ),
            }
        })
        .await?;
        if let Some(old) = resume
            && old.nonce < pending
        {
            let mined = self.provider.get_transaction_count(sender).latest().await?;
            if old.nonce >= mined {
                let raised = old
                    .fees()
                    .map(|f| f.bumped(self.config.max_fee_per_gas).unwrap_or(f));
                let fees = match (raised, now) {
                    (Some(r), Some(n)) => Some(Fees {
                        max: r.max.max(n.max),
                        tip: r.tip.max(n.tip),
                    }),
                    (r, n) => r.or(n),
                };
                nonces.next = Some(pending);
                nonces.in_flight += 1;
                return Ok(TxSlot {
                    nonce: old.nonce,
                    max_fee_per_gas: fees.map_or(0, |f| f.max),
                    max_priority_fee_per_gas: fees.map_or(0, |f| f.tip),
                    resumed: true,
                });
            }
        }
        nonces.next = Some(pending + 1);
        nonces.in_flight += 1;
        Ok(TxSlot {
            nonce: pending,
            max_fee_per_gas: now.map_or(0, |f| f.max),
            max_priority_fee_per_gas: now.map_or(0, |f| f.tip),
            resumed: false,
        })
    }

    /// Gives back a slot from [`Chain::slot`] that will not be sent in (its operation failed
    /// before sending): the next slot is read from the node again, so no nonce gap holds later
    /// transactions.
    pub async fn abandon(&self, slot: TxSlot) {
        let _ = slot;
        let mut nonces = self.nonce.lock().await;
        nonces.in_flight = nonces.in_flight.saturating_sub(1);
        nonces.next = None;
    }

    /// This connection, sending its next transaction in `slot` (from [`Chain::slot`]) rather
    /// than at the counter's nonce. [`Error::NonceUsed`] when a transaction was mined in the
    /// slot meanwhile; a transaction of the same nonce in the pool at a fee too close is
    /// outbid (by an eighth at a time, within the cap).
    pub fn in_slot(&self, slot: TxSlot) -> Chain {
        Chain {
            slot: Some(slot),
            ..self.clone()
        }
    }

    /// The ERC-7627 registry at `address`.
    pub fn erc7627(&self, address: Address) -> Erc7627 {
        Erc7627::new(self.clone(), address)
    }

    /// The group factory at `address`.
    pub fn factory(&self, address: Address) -> GroupFactory {
        GroupFactory::new(self.clone(), address)
    }

    /// The group contract at `address`.
    pub fn group(&self, address: Address) -> GroupContract {
        GroupContract::new(self.clone(), address)
    }

    /// Sends `call` and waits for its receipt; a revert (at estimation or after mining) is a
    /// typed error of `contract`. Fees are EIP-1559's, within the configured cap
    /// ([`Error::FeeAboveCap`] before sending when the network's base fee is above it); a
    /// transaction not mined after [`RpcConfig::replace_after`] is replaced (same nonce, fees
    /// raised by an eighth, never past the cap).
    pub(crate) async fn transact<D: CallDecoder + Clone>(
        &self,
        call: CallBuilder<&DynProvider, D>,
        contract: Contract,
    ) -> Result<TransactionReceipt, Error> {
        let sender = self.sender.ok_or(Error::NoSigner)?;
        let replay = call.clone();
        if let Some(slot) = self.slot {
            let call = if slot.resumed {
                // The pool's state holds the transaction this one replaces.
                let gas = call
                    .clone()
                    .block(alloy::eips::BlockId::latest())
                    .estimate_gas()
                    .await;
                match gas {
                    Ok(gas) => call.gas(gas),
                    Err(e) => {
                        self.release().await;
                        return Err(contract.error(e));
                    }
                }
            } else {
                call
            };
            let mut fees = slot.fees();
            let mut outbids = 0;
            let first = loop {
                match priced(call.clone(), fees).nonce(slot.nonce).send().await {
                    Ok(pending) => break *pending.tx_hash(),
                    Err(e) if nonce_too_low(&e) => {
                        self.release().await;
                        return Err(Error::NonceUsed { nonce: slot.nonce });
                    }
                    Err(e) if underpriced(&e) && outbids < 8 => {
                        outbids += 1;
                        if let Some(f) = fees.and_then(|f| f.bumped(self.config.max_fee_per_gas)) {
                            fees = Some(f);
                        } else {
                            self.release().await;
                            return Err(contract.error(e));
                        }
                    }
                    Err(e) => {
                        self.nonce.lock().await.next = None;
                        self.release().await;
                        return Err(contract.error(e));
                    }
                }
            };
            let settled = self
                .settle(call, replay, contract, slot.nonce, first, fees)
                .await;
            self.release().await;
            return settled;
        }
        let fees = self.fees().await?;
        let (nonce, first) = {
            // Hold the counter while the node accepts the transaction, not while it is mined.
            let mut n = self.nonce.lock().await;
            let nonce = match n.next {
                Some(n) => n,
                None => {
                    self.provider
                        .get_transaction_count(sender)
                        .pending()
                        .await?
                }
            };
            match priced(call.clone(), fees).nonce(nonce).send().await {
                Ok(pending) => {
                    n.next = Some(nonce + 1);
                    n.in_flight += 1;
                    (nonce, *pending.tx_hash())
                }
                Err(e) => {
                    n.next = None;
                    return Err(contract.error(e));
                }
            }
        };
        let settled = self
            .settle(call, replay, contract, nonce, first, fees)
            .await;
        self.release().await;
        settled
    }

    /// Waits for the receipt of `first` (sent in `nonce` offering `fees`) or of a
    /// replacement: replaced when not mined after [`RpcConfig::replace_after`] or lost; a
    /// revert decoded by replaying `replay` on its block.
    async fn settle<D: CallDecoder + Clone>(
        &self,
        call: CallBuilder<&DynProvider, D>,
        replay: CallBuilder<&DynProvider, D>,
        contract: Contract,
        nonce: u64,
        first: B256,
        fees: Option<Fees>,
    ) -> Result<TransactionReceipt, Error> {
        let mut sent = vec![first];
        let mut fees = fees;
        let start = std::time::Instant::now();
        let mut last_sent = start;
        let mut delay = std::time::Duration::from_millis(2);
        let mut polls = 0u32;
        let mut told = start;
        let receipt = loop {
            if let Some(r) = self.receipt_of(&sent).await? {
                break r;
            }
            if start.elapsed() > std::time::Duration::from_secs(600) {
                return Err(Error::ReceiptTimeout { tx: first });
            }
            polls += 1;
            // Now and then: does the node still have any of them? (A reorg or a pool
            // eviction drops transactions, a provider may lose one; waiting ten minutes for
            // it would hold every later one up.)
            let lost = polls.is_multiple_of(16) && !self.any_known(&sent).await?;
            // Not mined for a while, or lost: the same transaction again (same nonce) with
            // higher fees.
            if lost || last_sent.elapsed() >= self.config.replace_after {
                last_sent = std::time::Instant::now();
                let bumped = fees.and_then(|f| f.bumped(self.config.max_fee_per_gas));
                let resent = if bumped.is_some() || lost {
                    priced(call.clone(), bumped.or(fees))
                        .nonce(nonce)
                        .send()
                        .await
                        .ok()
                } else {
                    None
                };
                match resent {
                    Some(p) => {
                        sent.push(*p.tx_hash());
                        fees = bumped.or(fees);
                    }
                    None if lost => {
                        self.nonce.lock().await.next = None;
                        return Err(Error::TransactionDropped { tx: first });
                    }
                    None => {}
                }
            }
            if told.elapsed() >= std::time::Duration::from_secs(2) {
                told = std::time::Instant::now();
                self.tell(Progress {
                    tx: *sent.last().unwrap_or(&first),
                    waited: start.elapsed(),
                    replacements: sent.len() as u32 - 1,
                });
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(std::time::Duration::from_secs(1));
        };
        if let Ok(mut spent) = self.spent.lock() {
            spent.transactions += 1;
            spent.gas_used = spent.gas_used.saturating_add(receipt.gas_used);
            spent.wei = spent.wei.saturating_add(
                u128::from(receipt.gas_used).saturating_mul(receipt.effective_gas_price),
            );
        }
        if receipt.status() {
            return Ok(receipt);
        }
        // Mined but reverted (e.g. another member registered the epoch first): replay the
        // call against that block to learn the custom error.
        let tx = receipt.transaction_hash;
        let at = receipt.block_number.map(Into::into).unwrap_or_default();
        match replay.block(at).call_raw().await {
            Err(e) => Err(e
                .as_revert_data()
                .and_then(|d: alloy::primitives::Bytes| contract.decode(d.as_ref()))
                .unwrap_or(Error::Reverted { tx })),
            Ok(_) => Err(Error::Reverted { tx }),
        }
    }

    /// The fees to offer now: the provider's EIP-1559 estimate within the cap; `None` on a
    /// chain without EIP-1559 (the provider's filler prices it).
    async fn fees(&self) -> Result<Option<Fees>, Error> {
        let Ok(estimate) = self.provider.estimate_eip1559_fees().await else {
            return Ok(None);
        };
        let mut fees = Fees {
            max: estimate.max_fee_per_gas,
            tip: estimate.max_priority_fee_per_gas,
        };
        if let Some(cap) = self.config.max_fee_per_gas {
            let base = self
                .provider
                .get_block_by_number(alloy::eips::BlockNumberOrTag::Latest)
                .await?
                .and_then(|b| b.header.base_fee_per_gas)
                .map_or(0, u128::from);
            if base > cap {
                return Err(Error::FeeAboveCap {
                    base_fee: base,
                    cap,
                });
            }
            fees.max = fees.max.min(cap);
            fees.tip = fees.tip.min(fees.max);
        }
        Ok(Some(fees))
    }

    /// The receipt of whichever of `sent` (one transaction and its replacements) was mined.
    async fn receipt_of(&self, sent: &[B256]) -> Result<Option<TransactionReceipt>, Error> {
        for tx in sent.iter().rev() {
            if let Some(r) = self.provider.get_transaction_receipt(*tx).await? {
                return Ok(Some(r));
            }
        }
        Ok(None)
    }

    /// Whether the node knows any of `sent`.
    async fn any_known(&self, sent: &[B256]) -> Result<bool, Error> {
        for tx in sent.iter().rev() {
            if self.provider.get_transaction_by_hash(*tx).await?.is_some() {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Calls the progress callback, if one is set.
    fn tell(&self, progress: Progress) {
        if let Ok(f) = self.progress.lock()
            && let Some(f) = f.as_ref()
        {
            f(&progress);
        }
    }

    /// Calls `f` every two seconds while a transaction of this connection (or its clones)
    /// waits to be mined: for a progress line.
    pub fn on_progress(&self, f: impl Fn(&Progress) + Send + Sync + 'static) {
        if let Ok(mut p) = self.progress.lock() {
            *p = Some(Arc::new(f));
        }
    }

    /// Sends any contract call (e.g. from [`crate::bindings`]) through this client's nonce
    /// counter and receipt check. Send transactions this way, not with the bindings'
    /// `send()`, which has no nonce.
    pub async fn send<D: CallDecoder + Clone>(
        &self,
        call: CallBuilder<&DynProvider, D>,
    ) -> Result<TransactionReceipt, Error> {
        self.transact(call, Contract::Other).await
    }

    /// Deploys a contract from a bindings' `deploy_builder`; returns its address.
    pub async fn deploy_contract(
        &self,
        call: CallBuilder<&DynProvider, ()>,
    ) -> Result<Address, Error> {
        self.deploy(call, Contract::Other).await
    }

    /// Deploys a contract from its creation code; returns its address.
    pub(crate) async fn deploy(
        &self,
        call: CallBuilder<&DynProvider, ()>,
        contract: Contract,
    ) -> Result<Address, Error> {
        let receipt = self.transact(call, contract).await?;
        receipt.contract_address.ok_or(Error::Reverted {
            tx: receipt.transaction_hash,
        })
    }

    /// Makes a read-only call, decoding a revert into a typed error of `contract`.
    pub(crate) async fn view<D: CallDecoder>(
        call: CallBuilder<&DynProvider, D>,
        contract: Contract,
    ) -> Result<D::CallOutput, Error> {
        call.call().await.map_err(|e| contract.error(e))
    }
}

#[cfg(test)]
mod tests {
    use super::Fees;

    #[test]
    fn replacements_raise_both_fees_enough_and_stop_at_the_cap() {
        let f = Fees { max: 80, tip: 8 };
        let b = f.bumped(None).unwrap();
        assert!(b.max >= 89 && b.tip >= 9, "{b:?}");
        assert_eq!(f.bumped(Some(85)), None, "the cap leaves no room for 10%");
        let c = f.bumped(Some(100)).unwrap();
        assert!(c.max <= 100);
        assert!(Fees { max: 100, tip: 100 }.bumped(Some(100)).is_none());
    }
}
