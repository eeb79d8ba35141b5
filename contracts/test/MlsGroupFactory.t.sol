// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Test} from "./utils/Test.sol";
import {ERC7627} from "../src/ERC7627.sol";
import {MlsGroup} from "../src/MlsGroup.sol";
import {MlsGroupFactory} from "../src/MlsGroupFactory.sol";

contract MlsGroupFactoryTest is Test {
    ERC7627 internal registry;
    MlsGroup internal implementation;
    MlsGroupFactory internal factory;
    address internal constant ALICE = address(0xA11CE);
    address internal constant BOB = address(0xB0B);

    function setUp() public {
        registry = new ERC7627();
        implementation = new MlsGroup();
        factory = new MlsGroupFactory(address(implementation), address(registry));
    }

    function test_constructor() public view {
        vm.assertEq(factory.implementation(), address(implementation), "implementation");
        vm.assertEq(factory.registry(), address(registry), "registry");
    }

    function test_revert_constructor_zero() public {
        vm.expectRevert(MlsGroupFactory.ZeroAddress.selector);
        new MlsGroupFactory(address(0), address(registry));
        vm.expectRevert(MlsGroupFactory.ZeroAddress.selector);
        new MlsGroupFactory(address(implementation), address(0));
    }

    function test_createGroup() public {
        address predicted = factory.predictGroupAddress(ALICE, "g");
        vm.expectEmit(address(factory));
        emit MlsGroupFactory.GroupCreated(
            predicted, ALICE, "g", 4, MlsGroup.CommitPolicy.AdminsOnly
        );
        vm.prank(ALICE);
        address g = factory.createGroup("g", 4, MlsGroup.CommitPolicy.AdminsOnly);
        vm.assertEq(g, predicted, "deterministic address");
        MlsGroup group = MlsGroup(g);
        vm.assertEq(group.owner(), ALICE, "creator owns");
        vm.assertEq(group.registry(), address(registry), "registry handed on");
        vm.assertEq(group.groupId(), bytes("g"), "group id");
        vm.assertEq(uint256(group.cipherSuite()), 4, "suite");
        vm.assertEq(
            uint256(group.commitPolicy()), uint256(MlsGroup.CommitPolicy.AdminsOnly), "policy"
        );
        // EIP-1167 runtime code: 45 bytes that embed the implementation address.
        vm.assertEq(g.code.length, 45, "minimal proxy");
        vm.assertEq(
            g.code,
            abi.encodePacked(
                hex"363d3d373d3d3d363d73",
                address(implementation),
                hex"5af43d82803e903d91602b57fd5bf3"
            ),
            "EIP-1167 bytecode"
        );
    }

    function test_createGroup_anyMemberPolicy() public {
        vm.prank(ALICE);
        MlsGroup group = MlsGroup(factory.createGroup("open", 4, MlsGroup.CommitPolicy.AnyMember));
        vm.assertEq(
            uint256(group.commitPolicy()), uint256(MlsGroup.CommitPolicy.AnyMember), "policy"
        );
    }

    function test_groupsCreatedBy() public {
        vm.startPrank(ALICE);
        address g1 = factory.createGroup("a", 4, MlsGroup.CommitPolicy.AdminsOnly);
        address g2 = factory.createGroup("b", 1, MlsGroup.CommitPolicy.AdminsOnly);
        vm.stopPrank();
        address[] memory expected = new address[](2);
        expected[0] = g1;
        expected[1] = g2;
        vm.assertEq(factory.groupsCreatedBy(ALICE), expected, "alice's groups");
        vm.assertEq(factory.groupsCreatedBy(BOB).length, 0, "bob has none");
    }

    function test_sameIdDifferentCreators() public {
        vm.prank(ALICE);
        address a = factory.createGroup("same", 4, MlsGroup.CommitPolicy.AdminsOnly);
        vm.prank(BOB);
        address b = factory.createGroup("same", 4, MlsGroup.CommitPolicy.AdminsOnly);
        vm.assertTrue(a != b, "distinct groups");
    }

    function test_revert_duplicate() public {
        vm.prank(ALICE);
        address g = factory.createGroup("g", 4, MlsGroup.CommitPolicy.AdminsOnly);
        vm.prank(ALICE);
        vm.expectRevert(abi.encodeWithSelector(MlsGroupFactory.GroupExists.selector, g));
        factory.createGroup("g", 4, MlsGroup.CommitPolicy.AdminsOnly);
    }

    function test_revert_emptyGroupId() public {
        vm.expectRevert(MlsGroup.EmptyGroupId.selector);
        factory.createGroup("", 4, MlsGroup.CommitPolicy.AdminsOnly);
    }

    function test_revert_zeroSuite() public {
        vm.expectRevert(MlsGroup.InvalidCipherSuite.selector);
        factory.createGroup("g", 0, MlsGroup.CommitPolicy.AdminsOnly);
    }

    function testFuzz_predictMatches(address creator, bytes calldata groupId) public {
        vm.assume(groupId.length > 0 && creator != address(0) && creator != address(1));
        address predicted = factory.predictGroupAddress(creator, groupId);
        vm.prank(creator);
        vm.assertEq(
            factory.createGroup(groupId, 4, MlsGroup.CommitPolicy.AdminsOnly),
            predicted,
            "prediction"
        );
    }
}
