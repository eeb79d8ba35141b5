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
    address[] internal batch1;
    address[] internal batch10;

    function setUp() public {
        registry = new ERC7627();
        referenceImpl = new ReferenceERC7627();
        implementation = new MlsGroup();
        factory = new MlsGroupFactory(address(implementation), address(registry));
        vm.prank(OWNER);
        group = MlsGroup(factory.createGroup("gas-group", 4));
        vm.startPrank(OWNER);
        group.addMember(MEMBER);
        group.registerEpoch(1, keccak256("c1"), keccak256("a1"));
        vm.stopPrank();

        vm.prank(BOB);
        fresh = MlsGroup(factory.createGroup("fresh", 4));
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
        batch1.push(address(0x3000));
        for (uint256 i; i < 10; ++i) {
            batch10.push(address(uint160(0x3000 + i)));
        }
    }

    function test_gas_deployMlsGroupDirect() public {
        new MlsGroup();
    }

    function test_gas_factoryCreateGroup() public {
        vm.prank(BOB);
        factory.createGroup("another-group", 4);
    }

    function test_gas_addMember() public {
        vm.prank(OWNER);
        group.addMember(BOB);
    }

    function test_gas_addMembers_1() public {
        vm.prank(OWNER);
        group.addMembers(batch1);
    }

    function test_gas_addMembers_10() public {
        vm.prank(OWNER);
        group.addMembers(batch10);
    }

    function test_gas_removeMember() public {
        vm.prank(OWNER);
        group.removeMember(address(1), MEMBER);
    }

    function test_gas_recordKeyPackage() public {
        vm.prank(OWNER);
        group.recordKeyPackage(keccak256("kp"));
    }

    function test_gas_registerEpoch_next() public {
        vm.prank(MEMBER);
        group.registerEpoch(2, keccak256("c2"), keccak256("a2"));
    }

    function test_gas_registerEpoch_first() public {
        vm.prank(BOB);
        fresh.registerEpoch(1, keccak256("c1"), keccak256("a1"));
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
