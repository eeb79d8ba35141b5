// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Test} from "./utils/Test.sol";
import {ERC7627} from "../src/ERC7627.sol";
import {MlsGroup} from "../src/MlsGroup.sol";
import {MlsGroupFactory} from "../src/MlsGroupFactory.sol";
import {Initializable} from "@openzeppelin/contracts/proxy/utils/Initializable.sol";
import {Clones} from "@openzeppelin/contracts/proxy/Clones.sol";

contract MlsGroupTest is Test {
    ERC7627 internal registry;
    MlsGroup internal implementation;
    MlsGroupFactory internal factory;
    MlsGroup internal group;

    address internal constant OWNER = address(0x0A);
    address internal constant ADMIN = address(0xAD);
    address internal constant BOB = address(0xB0B);
    address internal constant CAROL = address(0xCA);
    address internal constant DAVE = address(0xDA);
    address internal constant SENTINEL = address(1);
    uint16 internal constant SUITE = 0x0004;

    function setUp() public {
        registry = new ERC7627();
        implementation = new MlsGroup();
        factory = new MlsGroupFactory(address(implementation), address(registry));
        vm.prank(OWNER);
        group = MlsGroup(factory.createGroup("group-1", SUITE));
    }

    function list(address a) internal pure returns (address[] memory l) {
        l = new address[](1);
        l[0] = a;
    }

    function list(address a, address b) internal pure returns (address[] memory l) {
        l = new address[](2);
        l[0] = a;
        l[1] = b;
    }

    function list(address a, address b, address c) internal pure returns (address[] memory l) {
        l = new address[](3);
        l[0] = a;
        l[1] = b;
        l[2] = c;
    }

    /// Removes `member` as an admin would: hint computed by the contract's own view.
    function removeAs(address by, address member) internal {
        address prev = group.removalHints(list(member))[0];
        vm.prank(by);
        group.removeMember(prev, member);
    }

    // ------------------------------------------------------------ initialisation

    function test_initialState() public view {
        vm.assertEq(group.owner(), OWNER, "owner");
        vm.assertEq(uint256(group.cipherSuite()), SUITE, "suite");
        vm.assertEq(group.registry(), address(registry), "registry");
        vm.assertEq(group.groupId(), bytes("group-1"), "group id");
        vm.assertEq(uint256(group.memberCount()), 1, "one member");
        vm.assertTrue(group.isMember(OWNER), "owner is member");
        vm.assertTrue(group.isAdmin(OWNER), "owner is admin");
        vm.assertEq(group.members(), list(OWNER), "members");
        (uint64 epoch, bytes32 c, bytes32 a, address who) = group.currentEpoch();
        vm.assertEq(uint256(epoch), 0, "epoch 0");
        vm.assertEq(c, bytes32(0), "no commit");
        vm.assertEq(a, bytes32(0), "no authenticator");
        vm.assertEq(who, OWNER, "the creator made epoch 0");
    }

    function test_revert_initializeTwice() public {
        vm.expectRevert(Initializable.InvalidInitialization.selector);
        group.initialize(BOB, "x", SUITE, address(registry));
    }

    function test_revert_initializeImplementation() public {
        vm.expectRevert(Initializable.InvalidInitialization.selector);
        implementation.initialize(BOB, "x", SUITE, address(registry));
    }

    function test_initialize_emits() public {
        MlsGroup clone = MlsGroup(Clones.clone(address(implementation)));
        vm.expectEmit(address(clone));
        emit MlsGroup.GroupInitialized(BOB, "gid", SUITE, address(registry));
        vm.expectEmit(address(clone));
        emit MlsGroup.MemberAdded(BOB, BOB);
        clone.initialize(BOB, "gid", SUITE, address(registry));
    }

    function test_revert_initialize_invalidOwner() public {
        MlsGroup clone = MlsGroup(Clones.clone(address(implementation)));
        vm.expectRevert(abi.encodeWithSelector(MlsGroup.InvalidAccount.selector, address(0)));
        clone.initialize(address(0), "gid", SUITE, address(registry));
        vm.expectRevert(abi.encodeWithSelector(MlsGroup.InvalidAccount.selector, SENTINEL));
        clone.initialize(SENTINEL, "gid", SUITE, address(registry));
    }

    function test_sentinelIsNeverAMember() public view {
        vm.assertFalse(group.isMember(SENTINEL), "sentinel");
        vm.assertFalse(group.isMember(address(0)), "zero");
    }

    // ------------------------------------------------------------ adding

    function test_addMember() public {
        vm.expectEmit(address(group));
        emit MlsGroup.MemberAdded(BOB, OWNER);
        vm.prank(OWNER);
        group.addMember(BOB);
        vm.assertTrue(group.isMember(BOB), "bob member");
        vm.assertEq(uint256(group.memberCount()), 2, "count");
        vm.assertEq(group.members(), list(BOB, OWNER), "newest first");
        vm.assertFalse(group.wasRemoved(BOB), "not removed");
    }

    function test_addMembers() public {
        vm.prank(OWNER);
        group.addMembers(list(BOB, CAROL, DAVE));
        vm.assertEq(uint256(group.memberCount()), 4, "count");
        address[] memory expected = new address[](4);
        expected[0] = DAVE;
        expected[1] = CAROL;
        expected[2] = BOB;
        expected[3] = OWNER;
        vm.assertEq(group.members(), expected, "members");
    }

    function test_revert_addMembers_duplicateInBatch() public {
        vm.prank(OWNER);
        vm.expectRevert(abi.encodeWithSelector(MlsGroup.AlreadyMember.selector, BOB));
        group.addMembers(list(BOB, CAROL, BOB));
        vm.assertFalse(group.isMember(CAROL), "batch is atomic");
    }

    function test_revert_addMember_notAdmin() public {
        vm.prank(BOB);
        vm.expectRevert(abi.encodeWithSelector(MlsGroup.NotAdmin.selector, BOB));
        group.addMember(CAROL);
    }

    function test_revert_addMember_member_isNotAdmin() public {
        vm.prank(OWNER);
        group.addMember(BOB);
        vm.prank(BOB);
        vm.expectRevert(abi.encodeWithSelector(MlsGroup.NotAdmin.selector, BOB));
        group.addMember(CAROL);
    }

    function test_revert_addMember_already() public {
        vm.prank(OWNER);
        vm.expectRevert(abi.encodeWithSelector(MlsGroup.AlreadyMember.selector, OWNER));
        group.addMember(OWNER);
    }

    function test_revert_addMember_invalid() public {
        vm.startPrank(OWNER);
        vm.expectRevert(abi.encodeWithSelector(MlsGroup.InvalidAccount.selector, address(0)));
        group.addMember(address(0));
        vm.expectRevert(abi.encodeWithSelector(MlsGroup.InvalidAccount.selector, SENTINEL));
        group.addMember(SENTINEL);
        vm.stopPrank();
    }

    // ------------------------------------------------------------ admins and ownership

    function test_admin_canAddAndRemove() public {
        vm.startPrank(OWNER);
        group.addMember(ADMIN);
        vm.expectEmit(address(group));
        emit MlsGroup.AdminChanged(ADMIN, true);
        group.setAdmin(ADMIN, true);
        vm.stopPrank();
        vm.assertTrue(group.isAdmin(ADMIN), "admin");
        vm.prank(ADMIN);
        group.addMember(BOB);
        removeAs(ADMIN, BOB);
        vm.assertFalse(group.isMember(BOB), "removed by admin");
    }

    function test_admin_dismissed() public {
        vm.startPrank(OWNER);
        group.addMember(ADMIN);
        group.setAdmin(ADMIN, true);
        group.setAdmin(ADMIN, false);
        vm.stopPrank();
        vm.assertFalse(group.isAdmin(ADMIN), "dismissed");
        vm.prank(ADMIN);
        vm.expectRevert(abi.encodeWithSelector(MlsGroup.NotAdmin.selector, ADMIN));
        group.addMember(BOB);
    }

    function test_admin_loses_role_on_removal() public {
        vm.startPrank(OWNER);
        group.addMember(ADMIN);
        group.setAdmin(ADMIN, true);
        vm.stopPrank();
        removeAs(OWNER, ADMIN);
        vm.assertFalse(group.isAdmin(ADMIN), "role gone");
        vm.prank(OWNER);
        group.addMember(ADMIN);
        vm.assertFalse(group.isAdmin(ADMIN), "re-added as plain member");
    }

    function test_revert_setAdmin_notOwner() public {
        vm.prank(OWNER);
        group.addMember(ADMIN);
        vm.prank(ADMIN);
        vm.expectRevert(abi.encodeWithSelector(MlsGroup.NotOwner.selector, ADMIN));
        group.setAdmin(ADMIN, true);
    }

    function test_revert_setAdmin_nonMember() public {
        vm.prank(OWNER);
        vm.expectRevert(abi.encodeWithSelector(MlsGroup.NotMember.selector, BOB));
        group.setAdmin(BOB, true);
    }

    function test_transferOwnership() public {
        vm.startPrank(OWNER);
        group.addMember(BOB);
        vm.expectEmit(address(group));
        emit MlsGroup.OwnershipTransferred(OWNER, BOB);
        group.transferOwnership(BOB);
        vm.stopPrank();
        vm.assertEq(group.owner(), BOB, "new owner");
        vm.assertFalse(group.isAdmin(OWNER), "old owner no longer admin");
        // The old owner can now leave; the new one cannot.
        address prev = group.removalHints(list(OWNER))[0];
        vm.prank(OWNER);
        group.leave(prev);
        vm.assertFalse(group.isMember(OWNER), "old owner left");
    }

    function test_revert_transferOwnership_nonMember() public {
        vm.prank(OWNER);
        vm.expectRevert(abi.encodeWithSelector(MlsGroup.NotMember.selector, BOB));
        group.transferOwnership(BOB);
    }

    function test_revert_transferOwnership_notOwner() public {
        vm.prank(BOB);
        vm.expectRevert(abi.encodeWithSelector(MlsGroup.NotOwner.selector, BOB));
        group.transferOwnership(BOB);
    }

    // ------------------------------------------------------------ removing and leaving

    function test_removeMember() public {
        vm.prank(OWNER);
        group.addMembers(list(BOB, CAROL));
        // List: CAROL, BOB, OWNER. BOB's predecessor is CAROL.
        vm.expectEmit(address(group));
        emit MlsGroup.MemberRemoved(BOB, OWNER);
        vm.prank(OWNER);
        group.removeMember(CAROL, BOB);
        vm.assertFalse(group.isMember(BOB), "bob gone");
        vm.assertTrue(group.wasRemoved(BOB), "bob removed");
        vm.assertEq(group.members(), list(CAROL, OWNER), "list relinked");
        vm.assertEq(uint256(group.memberCount()), 2, "count");
    }

    function test_removeHead() public {
        vm.prank(OWNER);
        group.addMember(BOB);
        vm.prank(OWNER);
        group.removeMember(SENTINEL, BOB);
        vm.assertEq(group.members(), list(OWNER), "only owner");
    }

    function test_removeMembers_withHints() public {
        vm.prank(OWNER);
        group.addMembers(list(BOB, CAROL, DAVE));
        address[] memory victims = list(CAROL, DAVE, BOB);
        address[] memory prevs = group.removalHints(victims);
        vm.prank(OWNER);
        group.removeMembers(prevs, victims);
        vm.assertEq(group.members(), list(OWNER), "only owner left");
        vm.assertEq(uint256(group.memberCount()), 1, "count");
        for (uint256 i; i < 3; ++i) {
            vm.assertTrue(group.wasRemoved(victims[i]), "removed");
        }
    }

    function test_revert_removeMembers_lengthMismatch() public {
        vm.prank(OWNER);
        vm.expectRevert(abi.encodeWithSelector(MlsGroup.LengthMismatch.selector, 1, 2));
        group.removeMembers(list(SENTINEL), list(BOB, CAROL));
    }

    function test_revert_removeMember_wrongPredecessor() public {
        vm.prank(OWNER);
        group.addMembers(list(BOB, CAROL));
        vm.prank(OWNER);
        vm.expectRevert(abi.encodeWithSelector(MlsGroup.WrongPredecessor.selector, OWNER, BOB));
        group.removeMember(OWNER, BOB);
    }

    function test_revert_removeMember_owner() public {
        vm.prank(OWNER);
        vm.expectRevert(MlsGroup.OwnerCannotLeave.selector);
        group.removeMember(SENTINEL, OWNER);
    }

    function test_revert_removeMember_nonMember() public {
        vm.prank(OWNER);
        vm.expectRevert(abi.encodeWithSelector(MlsGroup.NotMember.selector, BOB));
        group.removeMember(SENTINEL, BOB);
    }

    function test_revert_removeMember_notAdmin() public {
        vm.prank(OWNER);
        group.addMembers(list(BOB, CAROL));
        vm.prank(BOB);
        vm.expectRevert(abi.encodeWithSelector(MlsGroup.NotAdmin.selector, BOB));
        group.removeMember(SENTINEL, CAROL);
    }

    function test_revert_removalHints_nonMember() public {
        vm.expectRevert(abi.encodeWithSelector(MlsGroup.NotMember.selector, BOB));
        group.removalHints(list(BOB));
    }

    function test_leave() public {
        vm.prank(OWNER);
        group.addMembers(list(BOB, CAROL));
        address prev = group.removalHints(list(BOB))[0];
        vm.expectEmit(address(group));
        emit MlsGroup.MemberLeft(BOB);
        vm.prank(BOB);
        group.leave(prev);
        vm.assertFalse(group.isMember(BOB), "left");
        vm.assertTrue(group.wasRemoved(BOB), "counts as removed");
    }

    function test_revert_leave_owner() public {
        vm.prank(OWNER);
        vm.expectRevert(MlsGroup.OwnerCannotLeave.selector);
        group.leave(SENTINEL);
    }

    function test_revert_leave_nonMember() public {
        vm.prank(BOB);
        vm.expectRevert(abi.encodeWithSelector(MlsGroup.NotMember.selector, BOB));
        group.leave(SENTINEL);
    }

    function test_readd_afterRemoval() public {
        vm.prank(OWNER);
        group.addMember(BOB);
        removeAs(OWNER, BOB);
        vm.prank(OWNER);
        group.addMember(BOB);
        vm.assertTrue(group.isMember(BOB), "member again");
        vm.assertFalse(group.wasRemoved(BOB), "removal flag cleared");
    }

    // ------------------------------------------------------------ key packages

    function test_recordKeyPackage_once() public {
        bytes32 kp = keccak256("kp");
        vm.expectEmit(address(group));
        emit MlsGroup.KeyPackageRecorded(kp, OWNER);
        vm.prank(OWNER);
        group.recordKeyPackage(kp);
        vm.assertTrue(group.isKeyPackageUsed(kp), "used");
        vm.prank(OWNER);
        vm.expectRevert(abi.encodeWithSelector(MlsGroup.KeyPackageAlreadyUsed.selector, kp));
        group.recordKeyPackage(kp);
    }

    function test_revert_recordKeyPackage_notAdmin() public {
        vm.prank(BOB);
        vm.expectRevert(abi.encodeWithSelector(MlsGroup.NotAdmin.selector, BOB));
        group.recordKeyPackage(keccak256("kp"));
    }

    function test_keyPackagesArePerGroup() public {
        vm.prank(OWNER);
        MlsGroup other = MlsGroup(factory.createGroup("group-2", SUITE));
        bytes32 kp = keccak256("kp");
        vm.prank(OWNER);
        group.recordKeyPackage(kp);
        vm.assertFalse(other.isKeyPackageUsed(kp), "other group unaffected");
    }

    // ------------------------------------------------------------ epochs

    function test_registerEpoch() public {
        bytes32 c = keccak256("commit-1");
        bytes32 a = keccak256("auth-1");
        vm.expectEmit(address(group));
        emit MlsGroup.EpochRegistered(1, OWNER, c, a);
        vm.prank(OWNER);
        group.registerEpoch(1, c, a);
        (uint64 epoch, bytes32 gc, bytes32 ga, address who) = group.currentEpoch();
        vm.assertEq(uint256(epoch), 1, "epoch");
        vm.assertEq(gc, c, "commit");
        vm.assertEq(ga, a, "authenticator");
        vm.assertEq(who, OWNER, "committer");
    }

    function test_registerEpoch_plainMemberMayCommit() public {
        vm.prank(OWNER);
        group.addMember(BOB);
        vm.prank(BOB);
        group.registerEpoch(1, keccak256("c"), keccak256("a"));
        (,,, address who) = group.currentEpoch();
        vm.assertEq(who, BOB, "bob committed");
    }

    function test_revert_registerEpoch_firstComeFirstServed() public {
        vm.prank(OWNER);
        group.addMember(BOB);
        vm.prank(OWNER);
        group.registerEpoch(1, keccak256("owner's"), keccak256("a"));
        vm.prank(BOB);
        vm.expectRevert(abi.encodeWithSelector(MlsGroup.EpochOutOfOrder.selector, 2, 1));
        group.registerEpoch(1, keccak256("bob's"), keccak256("b"));
        (, bytes32 c,,) = group.currentEpoch();
        vm.assertEq(c, keccak256("owner's"), "first registration kept");
    }

    function test_revert_registerEpoch_skip() public {
        vm.prank(OWNER);
        vm.expectRevert(abi.encodeWithSelector(MlsGroup.EpochOutOfOrder.selector, 1, 2));
        group.registerEpoch(2, keccak256("c"), keccak256("a"));
    }

    function test_revert_registerEpoch_nonMember() public {
        vm.prank(BOB);
        vm.expectRevert(abi.encodeWithSelector(MlsGroup.NotMember.selector, BOB));
        group.registerEpoch(1, keccak256("c"), keccak256("a"));
    }

    function test_revert_registerEpoch_removedMember() public {
        vm.prank(OWNER);
        group.addMember(BOB);
        removeAs(OWNER, BOB);
        vm.prank(BOB);
        vm.expectRevert(abi.encodeWithSelector(MlsGroup.NotMember.selector, BOB));
        group.registerEpoch(1, keccak256("c"), keccak256("a"));
    }

    function test_revert_registerEpoch_zeroCommit() public {
        vm.prank(OWNER);
        vm.expectRevert(MlsGroup.EmptyCommitHash.selector);
        group.registerEpoch(1, bytes32(0), keccak256("a"));
    }

    // ------------------------------------------------------------ fuzz

    /// Any sequence of adds and removes keeps `members()`, `isMember`, `memberCount` and
    /// `wasRemoved` consistent with a model kept here.
    function testFuzz_aclOperations(uint8[24] memory ops) public {
        address[8] memory pool;
        bool[8] memory inGroup;
        bool[8] memory removed;
        for (uint256 i; i < 8; ++i) {
            pool[i] = address(uint160(0x1000 + i));
        }
        uint256 count = 1;
        for (uint256 k; k < ops.length; ++k) {
            uint256 who = ops[k] % 8;
            bool add = (ops[k] >> 3) % 2 == 0;
            if (add && !inGroup[who]) {
                vm.prank(OWNER);
                group.addMember(pool[who]);
                inGroup[who] = true;
                removed[who] = false;
                ++count;
            } else if (!add && inGroup[who]) {
                removeAs(OWNER, pool[who]);
                inGroup[who] = false;
                removed[who] = true;
                --count;
            }
        }
        vm.assertEq(uint256(group.memberCount()), count, "count");
        address[] memory ms = group.members();
        vm.assertEq(ms.length, count, "enumeration length");
        for (uint256 i; i < 8; ++i) {
            vm.assertEq(group.isMember(pool[i]), inGroup[i], "isMember");
            vm.assertEq(group.wasRemoved(pool[i]), removed[i], "wasRemoved");
        }
        for (uint256 i; i < ms.length; ++i) {
            vm.assertTrue(group.isMember(ms[i]), "enumerated are members");
        }
    }

    /// Batch removal with contract-computed hints removes exactly the chosen members.
    function testFuzz_batchRemoval(uint8 size, uint256 pickSeed) public {
        size = uint8(bound(size, 1, 20));
        address[] memory batch = new address[](size);
        for (uint256 i; i < size; ++i) {
            batch[i] = address(uint160(0x2000 + i));
        }
        vm.prank(OWNER);
        group.addMembers(batch);
        uint256 n = bound(pickSeed, 1, size);
        address[] memory victims = new address[](n);
        for (uint256 i; i < n; ++i) {
            victims[i] = batch[(pickSeed >> 8) % size == 0 ? i : (size - 1 - i)];
        }
        address[] memory prevs = group.removalHints(victims);
        vm.prank(OWNER);
        group.removeMembers(prevs, victims);
        vm.assertEq(uint256(group.memberCount()), 1 + size - n, "count");
        for (uint256 i; i < n; ++i) {
            vm.assertFalse(group.isMember(victims[i]), "victim gone");
        }
        vm.assertEq(group.members().length, 1 + size - n, "enumeration");
    }

    /// Only `current + 1` is ever accepted.
    function testFuzz_epochSequencing(uint64 attempt, uint8 steps) public {
        steps = uint8(bound(steps, 0, 10));
        vm.startPrank(OWNER);
        for (uint64 e = 1; e <= steps; ++e) {
            group.registerEpoch(e, keccak256(abi.encode(e)), bytes32(0));
        }
        (bool ok,) = address(group)
            .call(abi.encodeCall(MlsGroup.registerEpoch, (attempt, keccak256("x"), bytes32(0))));
        vm.stopPrank();
        vm.assertEq(ok, attempt == uint64(steps) + 1, "accepted iff next epoch");
        (uint64 epoch,,,) = group.currentEpoch();
        vm.assertEq(uint256(epoch), ok ? uint256(steps) + 1 : uint256(steps), "epoch");
    }

    /// A key package hash is accepted exactly once.
    function testFuzz_keyPackageOnce(bytes32 kp) public {
        vm.startPrank(OWNER);
        group.recordKeyPackage(kp);
        (bool ok,) = address(group).call(abi.encodeCall(MlsGroup.recordKeyPackage, (kp)));
        vm.stopPrank();
        vm.assertFalse(ok, "second record rejected");
    }
}
