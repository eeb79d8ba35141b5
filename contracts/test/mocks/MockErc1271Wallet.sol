// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {IERC1271} from "@openzeppelin/contracts/interfaces/IERC1271.sol";

/// @notice Test-only contract wallet: approves (ERC-1271) exactly the signatures its owner key
/// made over the given hash. Used by eth-mls-chain's tests of `RpcErc1271Verifier`.
contract MockErc1271Wallet is IERC1271 {
    /// @notice The key whose signatures the wallet approves.
    address public immutable owner;

    /// @param owner_ The approving key.
    constructor(address owner_) {
        owner = owner_;
    }

    /// @notice ERC-1271: the magic value when `signature` is `owner`'s signature over `hash`.
    /// @param hash The signed hash.
    /// @param signature A 65-byte ECDSA signature.
    /// @return magicValue 0x1626ba7e when valid, 0xffffffff otherwise.
    function isValidSignature(bytes32 hash, bytes calldata signature)
        external
        view
        returns (bytes4 magicValue)
    {
        (address signer, ECDSA.RecoverError err,) = ECDSA.tryRecover(hash, signature);
        if (err == ECDSA.RecoverError.NoError && signer == owner) {
            return IERC1271.isValidSignature.selector;
        }
        return 0xffffffff;
    }
}
