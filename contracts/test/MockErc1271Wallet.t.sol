// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Test} from "./utils/Test.sol";
import {MockErc1271Wallet} from "./mocks/MockErc1271Wallet.sol";

interface SignVm {
    function sign(uint256 privateKey, bytes32 digest)
        external
        pure
        returns (uint8 v, bytes32 r, bytes32 s);
}

contract MockErc1271WalletTest is Test {
    SignVm internal constant signer = SignVm(0x7109709ECfa91a80626fF3989D68f67F5b1DD12D);

    function test_approvesOwnerOnly() public {
        uint256 ownerKey = 0xA11CE;
        MockErc1271Wallet wallet = new MockErc1271Wallet(vm.addr(ownerKey));
        bytes32 hash = keccak256("message");
        (uint8 v, bytes32 r, bytes32 s) = signer.sign(ownerKey, hash);
        vm.assertEq(
            wallet.isValidSignature(hash, abi.encodePacked(r, s, v)), bytes4(0x1626ba7e), "owner"
        );
        (v, r, s) = signer.sign(0xB0B, hash);
        vm.assertEq(
            wallet.isValidSignature(hash, abi.encodePacked(r, s, v)), bytes4(0xffffffff), "other"
        );
        vm.assertEq(wallet.isValidSignature(hash, hex"0102"), bytes4(0xffffffff), "garbage");
    }
}
