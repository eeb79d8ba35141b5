//! `RpcErc1271Verifier`: eth-mls-siwe's ERC-1271 check over JSON-RPC (`eth_call` of
//! `isValidSignature`), one endpoint per chain id.

use std::collections::HashMap;

use alloy::eips::BlockId;
use alloy::primitives::{Address, B256, Bytes, FixedBytes};
use alloy::providers::DynProvider;
use eth_mls_siwe::{BoxFuture, ERC1271_MAGIC_VALUE, Erc1271Error, Erc1271Verifier};

use crate::Chain;
use crate::bindings::IERC1271;

/// Asks contract accounts `isValidSignature(hash, signature)` over JSON-RPC. The message's
/// chain id selects the endpoint; a chain without one is an error (not a rejection).
///
/// Only an answer about the signature is a verdict: the magic value (valid), a revert, no
/// code or another return value (invalid). Anything else — a timeout, a refused
/// connection, a JSON-RPC error that is not a revert (rate limit, unknown block, internal
/// error) — is an [`Erc1271Error`], which callers treat as "try again", never as "invalid"
/// (DESIGN.md decision 12). [`RpcErc1271Verifier::at_block`] pins the check to a block, so
/// that every member judges a group change by the chain at its registration block.
#[derive(Clone, Debug, Default)]
pub struct RpcErc1271Verifier {
    chains: HashMap<u64, DynProvider>,
    block: Option<u64>,
}

impl RpcErc1271Verifier {
    /// A verifier with no chains yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// The same verifier, asking at block `number` instead of the latest block.
    pub fn at_block(mut self, number: u64) -> Self {
        self.block = Some(number);
        self
    }

    /// The block the checks are pinned to (`None`: the latest).
    pub fn block(&self) -> Option<u64> {
        self.block
    }

    /// Adds `chain`'s endpoint for its chain id.
    pub fn with_chain(mut self, chain: &Chain) -> Self {
        self.chains
            .insert(chain.chain_id(), chain.provider().clone());
        self
    }
}

impl Erc1271Verifier for RpcErc1271Verifier {
    fn is_valid_signature<'a>(
        &'a self,
        chain_id: u64,
        contract: Address,
        hash: B256,
        signature: &'a [u8],
    ) -> BoxFuture<'a, Result<bool, Erc1271Error>> {
        Box::pin(async move {
            let provider = self.chains.get(&chain_id).ok_or_else(|| {
                Erc1271Error::new(format!("no RPC endpoint configured for chain {chain_id}"))
            })?;
            let wallet = IERC1271::new(contract, provider);
            let mut call = wallet.isValidSignature(hash, Bytes::copy_from_slice(signature));
            if let Some(number) = self.block {
                call = call.block(BlockId::number(number));
            }
            match call.call().await {
                Ok(magic) => Ok(magic == FixedBytes(ERC1271_MAGIC_VALUE)),
                // The node answered that the call reverted (or the account has no such
                // function): a verdict.
                Err(alloy::contract::Error::TransportError(e))
                    if e.as_error_resp()
                        .is_some_and(|p| is_revert(p.code, &p.message)) =>
                {
                    Ok(false)
                }
                // No code, or a return value that is not a bytes4: not a valid signature.
                Err(alloy::contract::Error::AbiError(_) | alloy::contract::Error::ZeroData(..)) => {
                    Ok(false)
                }
                Err(e) => Err(Erc1271Error::with_source(
                    format!("eth_call isValidSignature on chain {chain_id}"),
                    e,
                )),
            }
        })
    }
}

/// Whether a JSON-RPC error response says the call reverted (code 3 with or without data, as
/// geth, anvil and most nodes answer; or an "execution reverted" message, as older nodes
/// do). Every other error response is a failure to ask, not an answer.
fn is_revert(code: i64, message: &str) -> bool {
    code == 3 || message.to_ascii_lowercase().contains("revert")
}
