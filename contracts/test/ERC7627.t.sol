// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Test} from "./utils/Test.sol";
import {ERC7627} from "../src/ERC7627.sol";
import {IERC7627} from "../src/interfaces/IERC7627.sol";
import {IERC165} from "@openzeppelin/contracts/utils/introspection/IERC165.sol";

contract ERC7627Test is Test {
    ERC7627 internal reg;
    address internal constant ALICE = address(0xA11CE);
    address internal constant BOB = address(0xB0B);
    bytes32 internal constant IDX = keccak256("mls-x448");
    bytes32 internal constant SESSION = keccak256("session");

    function setUp() public {
        reg = new ERC7627();
        vm.warp(1_700_000_000);
    }

    function key(IERC7627.PublicKeyAlgorithm alg, uint256 len, uint64 validBefore)
        internal
        pure
        returns (IERC7627.PublicKey memory)
    {
        bytes memory k = new bytes(len);
        for (uint256 i; i < len; ++i) {
            k[i] = bytes1(uint8(i + 1));
        }
        if (alg == IERC7627.PublicKeyAlgorithm.ECDSA && len > 0) {
            k[0] = len == 65 ? bytes1(0x04) : bytes1(0x02);
        }
        return IERC7627.PublicKey({public_key: k, valid_before: validBefore, algorithm: alg});
    }

    function validLength(IERC7627.PublicKeyAlgorithm alg) internal pure returns (uint256) {
        if (alg == IERC7627.PublicKeyAlgorithm.ECDSA) return 33;
        if (alg == IERC7627.PublicKeyAlgorithm.X448) return 56;
        if (alg == IERC7627.PublicKeyAlgorithm.ED448) return 57;
        return 32;
    }

    // ------------------------------------------------------------ interface conformance

    function test_signaturesAreTheStandardOnes() public pure {
        bytes4 update = bytes4(keccak256("updatePublicKey(bytes32,(bytes,uint64,uint8))"));
        bytes4 send = bytes4(keccak256("sendMessage(address,bytes32,bytes32,bytes)"));
        bytes4 get = bytes4(keccak256("getUserPublicKey(address,bytes32)"));
        vm.assertEq(IERC7627.updatePublicKey.selector, update, "updatePublicKey selector");
        vm.assertEq(IERC7627.sendMessage.selector, send, "sendMessage selector");
        vm.assertEq(IERC7627.getUserPublicKey.selector, get, "getUserPublicKey selector");
        vm.assertEq(
            IERC7627.MessageSent.selector,
            keccak256("MessageSent(address,address,bytes32,bytes32,bytes)"),
            "MessageSent topic"
        );
        vm.assertEq(
            IERC7627.PublicKeyUpdated.selector,
            keccak256("PublicKeyUpdated(address,bytes32,(bytes,uint64,uint8))"),
            "PublicKeyUpdated topic"
        );
        vm.assertEq(
            type(IERC7627).interfaceId, update ^ send ^ get, "interface id is the selector xor"
        );
    }

    function test_supportsInterface() public view {
        vm.assertTrue(reg.supportsInterface(type(IERC7627).interfaceId), "IERC7627");
        vm.assertTrue(reg.supportsInterface(0x01ffc9a7), "IERC165");
        vm.assertTrue(reg.supportsInterface(type(IERC165).interfaceId), "IERC165 type");
        vm.assertFalse(reg.supportsInterface(0xffffffff), "0xffffffff");
        vm.assertFalse(reg.supportsInterface(0x12345678), "random id");
    }

    // ------------------------------------------------------------ updatePublicKey

    function test_updatePublicKey_everyAlgorithm() public {
        for (uint8 a; a <= uint8(IERC7627.PublicKeyAlgorithm.ED448); ++a) {
            IERC7627.PublicKeyAlgorithm alg = IERC7627.PublicKeyAlgorithm(a);
            IERC7627.PublicKey memory k = key(alg, validLength(alg), 0);
            bytes32 idx = bytes32(uint256(a));
            vm.expectEmit(address(reg));
            emit IERC7627.PublicKeyUpdated(ALICE, idx, k);
            vm.prank(ALICE);
            reg.updatePublicKey(idx, k);
            IERC7627.PublicKey memory got = reg.getUserPublicKey(ALICE, idx);
            vm.assertEq(got.public_key, k.public_key, "stored key");
            vm.assertEq(uint256(got.algorithm), a, "stored algorithm");
            vm.assertEq(uint256(got.valid_before), 0, "stored valid_before");
            vm.assertTrue(reg.isKeyValid(ALICE, idx), "valid");
        }
    }

    function test_updatePublicKey_ecdsaUncompressed() public {
        IERC7627.PublicKey memory k = key(IERC7627.PublicKeyAlgorithm.ECDSA, 65, 0);
        vm.prank(ALICE);
        reg.updatePublicKey(IDX, k);
        vm.assertEq(reg.getUserPublicKey(ALICE, IDX).public_key, k.public_key, "stored");
    }

    function test_updatePublicKey_overwrites() public {
        vm.startPrank(ALICE);
        reg.updatePublicKey(IDX, key(IERC7627.PublicKeyAlgorithm.X448, 56, 0));
        IERC7627.PublicKey memory k2 = key(IERC7627.PublicKeyAlgorithm.ED448, 57, 1_800_000_000);
        reg.updatePublicKey(IDX, k2);
        vm.stopPrank();
        IERC7627.PublicKey memory got = reg.getUserPublicKey(ALICE, IDX);
        vm.assertEq(got.public_key, k2.public_key, "new key");
        vm.assertEq(uint256(got.valid_before), 1_800_000_000, "new expiry");
        vm.assertEq(uint256(got.algorithm), uint256(IERC7627.PublicKeyAlgorithm.ED448), "alg");
    }

    function test_updatePublicKey_keysArePerSender() public {
        vm.prank(ALICE);
        reg.updatePublicKey(IDX, key(IERC7627.PublicKeyAlgorithm.X448, 56, 0));
        vm.assertEq(reg.getUserPublicKey(BOB, IDX).public_key.length, 0, "bob has none");
        vm.assertFalse(reg.isKeyValid(BOB, IDX), "bob invalid");
    }

    function test_revert_emptyKey() public {
        IERC7627.PublicKey memory k = key(IERC7627.PublicKeyAlgorithm.X448, 0, 0);
        vm.expectRevert(ERC7627.EmptyPublicKey.selector);
        reg.updatePublicKey(IDX, k);
    }

    function test_revert_wrongLength() public {
        IERC7627.PublicKey memory k = key(IERC7627.PublicKeyAlgorithm.X448, 57, 0);
        vm.expectRevert(
            abi.encodeWithSelector(
                ERC7627.InvalidPublicKey.selector, IERC7627.PublicKeyAlgorithm.X448, 57
            )
        );
        reg.updatePublicKey(IDX, k);
    }

    function test_revert_ecdsaBadPrefix() public {
        IERC7627.PublicKey memory k = key(IERC7627.PublicKeyAlgorithm.ECDSA, 33, 0);
        k.public_key[0] = 0x04; // uncompressed prefix on a compressed length
        vm.expectRevert(
            abi.encodeWithSelector(
                ERC7627.InvalidPublicKey.selector, IERC7627.PublicKeyAlgorithm.ECDSA, 33
            )
        );
        reg.updatePublicKey(IDX, k);
    }

    function test_revert_unknownAlgorithm() public {
        bytes memory data = abi.encodeWithSelector(
            IERC7627.updatePublicKey.selector, IDX, key(IERC7627.PublicKeyAlgorithm.X448, 56, 0)
        );
        (bool controlOk,) = address(reg).call(data);
        vm.assertTrue(controlOk, "the unmodified call (X448) is accepted");
        // The algorithm is the third word of the struct: offset 4 + 32*2 (head) + 32*2.
        assembly {
            mstore(add(add(data, 32), 132), 5)
        }
        (bool ok,) = address(reg).call(data);
        vm.assertFalse(ok, "algorithm 5 must be rejected");
    }

    function test_revert_alreadyExpired() public {
        IERC7627.PublicKey memory k =
            key(IERC7627.PublicKeyAlgorithm.X448, 56, uint64(block.timestamp));
        vm.expectRevert(
            abi.encodeWithSelector(
                ERC7627.PublicKeyAlreadyExpired.selector, uint64(block.timestamp), block.timestamp
            )
        );
        reg.updatePublicKey(IDX, k);
    }

    // ------------------------------------------------------------ sendMessage

    function registerBob(uint64 validBefore) internal {
        vm.prank(BOB);
        reg.updatePublicKey(IDX, key(IERC7627.PublicKeyAlgorithm.X448, 56, validBefore));
    }

    function test_sendMessage_emits() public {
        registerBob(0);
        bytes memory ct = hex"deadbeef";
        vm.expectEmit(address(reg));
        emit IERC7627.MessageSent(ALICE, BOB, IDX, SESSION, ct);
        vm.prank(ALICE);
        reg.sendMessage(BOB, IDX, SESSION, ct);
    }

    function test_revert_sendMessage_noKey() public {
        vm.expectRevert(abi.encodeWithSelector(ERC7627.NoPublicKey.selector, BOB, IDX));
        reg.sendMessage(BOB, IDX, SESSION, hex"01");
    }

    function test_revert_sendMessage_empty() public {
        registerBob(0);
        vm.expectRevert(ERC7627.EmptyMessage.selector);
        reg.sendMessage(BOB, IDX, SESSION, "");
    }

    function test_sendMessage_expiryBoundary() public {
        uint64 vb = uint64(block.timestamp + 100);
        registerBob(vb);
        vm.warp(vb - 1); // last valid second
        reg.sendMessage(BOB, IDX, SESSION, hex"01");
        vm.assertTrue(reg.isKeyValid(BOB, IDX), "valid before valid_before");
        vm.warp(vb); // valid_before itself is expired
        vm.assertFalse(reg.isKeyValid(BOB, IDX), "expired at valid_before");
        vm.expectRevert(abi.encodeWithSelector(ERC7627.PublicKeyExpired.selector, BOB, IDX, vb));
        reg.sendMessage(BOB, IDX, SESSION, hex"01");
        // The expired key is still readable.
        vm.assertEq(reg.getUserPublicKey(BOB, IDX).public_key.length, 56, "still readable");
    }

    // ------------------------------------------------------------ revocation

    function test_revoke() public {
        registerBob(0);
        vm.expectEmit(address(reg));
        emit ERC7627.PublicKeyRevoked(BOB, IDX);
        vm.prank(BOB);
        reg.revokePublicKey(IDX);
        IERC7627.PublicKey memory got = reg.getUserPublicKey(BOB, IDX);
        vm.assertEq(got.public_key.length, 0, "cleared key");
        vm.assertEq(uint256(got.valid_before), 0, "cleared expiry");
        vm.assertFalse(reg.isKeyValid(BOB, IDX), "invalid");
        vm.expectRevert(abi.encodeWithSelector(ERC7627.NoPublicKey.selector, BOB, IDX));
        reg.sendMessage(BOB, IDX, SESSION, hex"01");
    }

    function test_revert_revokeMissing() public {
        vm.expectRevert(abi.encodeWithSelector(ERC7627.NoPublicKey.selector, ALICE, IDX));
        vm.prank(ALICE);
        reg.revokePublicKey(IDX);
    }

    function test_revokeOnlyOwnKey() public {
        registerBob(0);
        vm.prank(ALICE);
        vm.expectRevert(abi.encodeWithSelector(ERC7627.NoPublicKey.selector, ALICE, IDX));
        reg.revokePublicKey(IDX);
        vm.assertTrue(reg.isKeyValid(BOB, IDX), "bob's key untouched");
    }

    // ------------------------------------------------------------ fuzz

    /// Exactly the per-algorithm lengths (and SEC1 prefixes for ECDSA) are accepted.
    function testFuzz_keyLengths(uint8 algSeed, uint256 lenSeed, bytes1 prefix) public {
        IERC7627.PublicKeyAlgorithm alg = IERC7627.PublicKeyAlgorithm(bound(algSeed, 0, 4));
        uint256 len = bound(lenSeed, 0, 100);
        IERC7627.PublicKey memory k = key(alg, len, 0);
        if (len > 0) k.public_key[0] = prefix;
        bool expected;
        if (alg == IERC7627.PublicKeyAlgorithm.ECDSA) {
            expected =
                (len == 33 && (prefix == 0x02 || prefix == 0x03)) || (len == 65 && prefix == 0x04);
        } else {
            expected = len != 0 && len == validLength(alg);
        }
        vm.prank(ALICE);
        (bool ok,) = address(reg).call(abi.encodeCall(IERC7627.updatePublicKey, (IDX, k)));
        vm.assertEq(ok, expected, "acceptance matches the length rule");
        vm.assertEq(reg.isKeyValid(ALICE, IDX), expected, "stored only when accepted");
    }

    /// A key is usable exactly while block.timestamp < valid_before (or forever for 0).
    function testFuzz_expiry(uint64 validBefore, uint64 at) public {
        validBefore = uint64(bound(validBefore, block.timestamp + 1, type(uint64).max));
        registerBob(validBefore);
        at = uint64(bound(at, block.timestamp, type(uint64).max));
        vm.warp(at);
        bool valid = at < validBefore;
        vm.assertEq(reg.isKeyValid(BOB, IDX), valid, "isKeyValid");
        (bool ok,) =
            address(reg).call(abi.encodeCall(IERC7627.sendMessage, (BOB, IDX, SESSION, bytes("m"))));
        vm.assertEq(ok, valid, "sendMessage accepted iff valid");
    }
}
