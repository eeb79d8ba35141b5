// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Test} from "./utils/Test.sol";
import {ReferenceERC7627} from "./utils/ReferenceERC7627.sol";
import {ERC7627} from "../src/ERC7627.sol";
import {IERC7627} from "../src/interfaces/IERC7627.sol";
import {MlsGroup} from "../src/MlsGroup.sol";
import {MlsGroupFactory} from "../src/MlsGroupFactory.sol";

/// @notice One measured call per test, for `forge snapshot` (the gas targets in README.md are
/// checked against `.gas-snapshot` by `cargo xtask bench` / `cargo xtask test`). The state each
/// call needs is built in `setUp`, so a test's gas is the call plus a small constant overhead.
contract GasTest is Test {
    ERC7627 internal registry;
    ReferenceERC7627 internal referenceImpl;
    MlsGroup internal implementation;
    MlsGroupFactory internal factory;
    MlsGroup internal group;
    MlsGroup internal fresh;
    address internal constant OWNER = address(0x0A);
    address internal constant BOB = address(0xB0B);
    address internal constant MEMBER = address(0x1234);
    bytes32 internal constant IDX = keccak256("x448");
    bytes internal message256;
    address[] internal none;
    bytes32[] internal noKps;

    function setUp() public {
        registry = new ERC7627();
        referenceImpl = new ReferenceERC7627();
        implementation = new MlsGroup();
        factory = new MlsGroupFactory(address(implementation), address(registry));
        vm.prank(OWNER);
        group = MlsGroup(factory.createGroup("gas-group", 4, MlsGroup.CommitPolicy.AnyMember));
        address[] memory first = new address[](1);
        first[0] = MEMBER;
        bytes32[] memory firstKp = new bytes32[](1);
        firstKp[0] = keccak256("kp-member");
        vm.startPrank(OWNER);
        group.commit(1, "c1", keccak256("a1"), first, firstKp, none);
        group.commit(2, "c2", keccak256("a2"), none, noKps, none);
        vm.stopPrank();

        vm.prank(BOB);
        fresh = MlsGroup(factory.createGroup("fresh", 4, MlsGroup.CommitPolicy.AdminsOnly));
        vm.prank(BOB);
        registry.updatePublicKey(
            IDX,
            IERC7627.PublicKey({
                public_key: new bytes(56),
                valid_before: 0,
                algorithm: IERC7627.PublicKeyAlgorithm.X448
            })
        );
        message256 = new bytes(256);
        for (uint256 i; i < 256; ++i) {
            message256[i] = bytes1(uint8(i));
        }
    }

    /// `n` fresh accounts and their key package hashes, built in memory (storage reads would
    /// be counted in the measured gas).
    function adds(uint256 n) internal pure returns (address[] memory a, bytes32[] memory k) {
        a = new address[](n);
        k = new bytes32[](n);
        for (uint256 i; i < n; ++i) {
            a[i] = address(uint160(0x3000 + i));
            k[i] = bytes32(i + 1);
        }
    }

    /// 1 KiB of commit bytes (the content does not change the execution cost).
    function commit1k() internal pure returns (bytes memory) {
        return new bytes(1024);
    }

    function test_gas_deployMlsGroupDirect() public {
        new MlsGroup();
    }

    function test_gas_factoryCreateGroup() public {
        vm.prank(BOB);
        factory.createGroup("another-group", 4, MlsGroup.CommitPolicy.AdminsOnly);
    }

    /// A later commit (epoch 3) with 1 KiB of bytes and no ACL change.
    function test_gas_commit1k_noAcl() public {
        vm.prank(MEMBER);
        group.commit(3, commit1k(), keccak256("a3"), none, noKps, none);
    }

    /// The group's first commit (epoch 1) with 1 KiB of bytes and no ACL change.
    function test_gas_commit1k_noAcl_first() public {
        vm.prank(BOB);
        fresh.commit(1, commit1k(), keccak256("a1"), none, noKps, none);
    }

    /// A later commit with 1 KiB of bytes adding one member (and recording its key package).
    function test_gas_commit1k_add1() public {
        (address[] memory a, bytes32[] memory k) = adds(1);
        vm.prank(OWNER);
        group.commit(3, commit1k(), keccak256("a3"), a, k, none);
    }

    /// The group's first commit with 1 KiB of bytes adding one member.
    function test_gas_commit1k_add1_first() public {
        (address[] memory a, bytes32[] memory k) = adds(1);
        vm.prank(BOB);
        fresh.commit(1, commit1k(), keccak256("a1"), a, k, none);
    }

    /// A later commit with 1 KiB of bytes adding ten members.
    function test_gas_commit1k_add10() public {
        (address[] memory a, bytes32[] memory k) = adds(10);
        vm.prank(OWNER);
        group.commit(3, commit1k(), keccak256("a3"), a, k, none);
    }

    /// A later commit with 1 KiB of bytes removing one member.
    function test_gas_commit1k_remove1() public {
        address[] memory r = new address[](1);
        r[0] = MEMBER;
        vm.prank(OWNER);
        group.commit(3, commit1k(), keccak256("a3"), none, noKps, r);
    }

    function test_gas_leave() public {
        vm.prank(MEMBER);
        group.leave();
    }

    function test_gas_updatePublicKey_x448() public {
        vm.prank(OWNER);
        registry.updatePublicKey(
            IDX,
            IERC7627.PublicKey({
                public_key: new bytes(56),
                valid_before: 0,
                algorithm: IERC7627.PublicKeyAlgorithm.X448
            })
        );
    }

    function test_gas_sendMessage256() public {
        registry.sendMessage(BOB, IDX, bytes32(uint256(1)), message256);
    }

    function test_gas_sendMessage256_reference() public {
        referenceImpl.sendMessage(BOB, IDX, bytes32(uint256(1)), message256);
    }
}
