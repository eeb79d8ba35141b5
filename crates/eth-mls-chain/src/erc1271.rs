//! `RpcErc1271Verifier`: eth-mls-siwe's ERC-1271 check over JSON-RPC (`eth_call` of
//! `isValidSignature`), one endpoint per chain id.

use std::collections::HashMap;

use alloy::primitives::{Address, B256, Bytes, FixedBytes};
use alloy::providers::DynProvider;
use eth_mls_siwe::{BoxFuture, ERC1271_MAGIC_VALUE, Erc1271Error, Erc1271Verifier};

use crate::Chain;
use crate::bindings::IERC1271;

/// Asks contract accounts `isValidSignature(hash, signature)` over JSON-RPC. The message's
/// chain id selects the endpoint; a chain without one is an error (not a rejection).
#[derive(Clone, Debug, Default)]
pub struct RpcErc1271Verifier {
    chains: HashMap<u64, DynProvider>,
}

impl RpcErc1271Verifier {
    /// A verifier with no chains yet.
    pub fn new() -> Self {
        Self::default()
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
            match wallet
                .isValidSignature(hash, Bytes::copy_from_slice(signature))
                .call()
                .await
            {
                Ok(magic) => Ok(magic == FixedBytes(ERC1271_MAGIC_VALUE)),
                // The node answered: the call reverted (or the account has no such function).
                Err(alloy::contract::Error::TransportError(e)) if e.as_error_resp().is_some() => {
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
