//! `sol!` bindings generated from the committed forge artifacts in `artifacts/` (DESIGN.md
//! decision 8: no Node or Foundry needed to build this crate).
#![allow(missing_docs, clippy::too_many_arguments)]

alloy::sol!(
    #[sol(rpc)]
    #[derive(Debug, PartialEq, Eq)]
    ERC7627,
    "artifacts/ERC7627.json"
);

alloy::sol!(
    #[sol(rpc)]
    #[derive(Debug, PartialEq, Eq)]
    MlsGroup,
    "artifacts/MlsGroup.json"
);

/// The factory's ABI names `MlsGroup.CommitPolicy`, for which `sol!` declares its own
/// `MlsGroup` module: kept apart here so it does not clash with the group's bindings.
mod factory {
    alloy::sol!(
        #[sol(rpc)]
        #[derive(Debug, PartialEq, Eq)]
        MlsGroupFactory,
        "artifacts/MlsGroupFactory.json"
    );
}
pub use factory::MlsGroupFactory;

alloy::sol!(
    #[sol(rpc)]
    #[derive(Debug, PartialEq, Eq)]
    MockErc1271Wallet,
    "artifacts/MockErc1271Wallet.json"
);

alloy::sol! {
    /// ERC-1271: standard signature validation for contract accounts.
    #[sol(rpc)]
    interface IERC1271 {
        function isValidSignature(bytes32 hash, bytes signature) external view returns (bytes4 magicValue);
    }
}
