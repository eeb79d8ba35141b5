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
    address[] internal none;
    bytes32[] internal noKps;

    function setUp() public {
        registry = new ERC7627();
        implementation = new MlsGroup();
        factory = new MlsGroupFactory(address(implementation), address(registry));
        vm.prank(OWNER);
        group = MlsGroup(factory.createGroup("group-1", SUITE, MlsGroup.CommitPolicy.AdminsOnly));
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

    function acl(address[] memory added, bytes32[] memory k, address[] memory removed)
        internal
        pure
        returns (MlsGroup.AclChanges memory)
    {
        return MlsGroup.AclChanges({added: added, keyPackages: k, removed: removed});
    }

    function noUndo() internal pure returns (MlsGroup.AclChanges[] memory u) {
        u = new MlsGroup.AclChanges[](0);
    }

    function undo1(MlsGroup.AclChanges memory a)
        internal
        pure
        returns (MlsGroup.AclChanges[] memory u)
    {
        u = new MlsGroup.AclChanges[](1);
        u[0] = a;
    }

    function reversed(MlsGroup.AclChanges[] memory a)
        internal
        pure
        returns (MlsGroup.AclChanges[] memory r)
    {
        r = new MlsGroup.AclChanges[](a.length);
        for (uint256 i; i < a.length; ++i) {
            r[i] = a[a.length - 1 - i];
        }
    }

    function epochOf(MlsGroup g) internal view returns (uint64 epoch) {
        (epoch,,) = g.currentEpoch();
    }

    /// Key package hashes for `accounts`, distinct per account and epoch.
    function kps(address[] memory accounts, uint64 epoch)
        internal
        pure
        returns (bytes32[] memory out)
    {
        out = new bytes32[](accounts.length);
        for (uint256 i; i < accounts.length; ++i) {
            out[i] = keccak256(abi.encode(accounts[i], epoch));
        }
    }

    function commitBytes(uint64 epoch) internal pure returns (bytes memory) {
        return abi.encodePacked("mls commit for epoch ", epoch);
    }

    /// Registers the next epoch on `g` as `by`, with ACL changes.
    function commitOn(MlsGroup g, address by, address[] memory added, address[] memory removed)
        internal
    {
        uint64 next = epochOf(g) + 1;
        vm.prank(by);
        g.commit(
            next,
            commitBytes(next),
            keccak256(abi.encode("auth", next)),
            added,
            kps(added, next),
            removed
        );
    }

    function commitAs(address by, address[] memory added, address[] memory removed) internal {
        commitOn(group, by, added, removed);
    }

    function addAs(address by, address member) internal {
        commitAs(by, list(member), none);
    }

    function removeAs(address by, address member) internal {
        commitAs(by, none, list(member));
    }

    function allMembers(MlsGroup g) internal view returns (address[] memory) {
        (address[] memory page, address next) = g.members(address(0), 1000);
        vm.assertEq(next, address(0), "one page");
        return page;
    }

    // ------------------------------------------------------------ initialisation

    function test_initialState() public view {
        vm.assertEq(group.owner(), OWNER, "owner");
        vm.assertEq(uint256(group.cipherSuite()), SUITE, "suite");
        vm.assertEq(group.registry(), address(registry), "registry");
        vm.assertEq(group.groupId(), bytes("group-1"), "group id");
        vm.assertEq(
            uint256(group.commitPolicy()), uint256(MlsGroup.CommitPolicy.AdminsOnly), "policy"
        );
        vm.assertEq(group.memberCount(), 1, "one member");
        vm.assertTrue(group.isMember(OWNER), "owner is member");
        vm.assertTrue(group.isAdmin(OWNER), "owner is admin");
        vm.assertEq(allMembers(group), list(OWNER), "members");
        (uint64 epoch, bytes32 c, bytes32 a) = group.currentEpoch();
        vm.assertEq(uint256(epoch), 0, "epoch 0");
        vm.assertEq(c, bytes32(0), "no commit");
        vm.assertEq(a, bytes32(0), "no authenticator");
        vm.assertEq(uint256(group.lastAclChangeEpoch()), 0, "no ACL change yet");
    }

    function test_revert_initializeTwice() public {
        vm.expectRevert(Initializable.InvalidInitialization.selector);
        group.initialize(BOB, "x", SUITE, address(registry), MlsGroup.CommitPolicy.AdminsOnly);
    }

    function test_revert_initializeImplementation() public {
        vm.expectRevert(Initializable.InvalidInitialization.selector);
        implementation.initialize(
            BOB, "x", SUITE, address(registry), MlsGroup.CommitPolicy.AdminsOnly
        );
    }

    function test_initialize_emits() public {
        MlsGroup clone = MlsGroup(Clones.clone(address(implementation)));
        vm.expectEmit(address(clone));
        emit MlsGroup.GroupInitialized(
            BOB, "gid", SUITE, address(registry), MlsGroup.CommitPolicy.AnyMember
        );
        vm.expectEmit(address(clone));
        emit MlsGroup.MemberAdded(BOB, BOB);
        clone.initialize(BOB, "gid", SUITE, address(registry), MlsGroup.CommitPolicy.AnyMember);
    }

    function test_revert_initialize_invalid() public {
        MlsGroup clone = MlsGroup(Clones.clone(address(implementation)));
        MlsGroup.CommitPolicy p = MlsGroup.CommitPolicy.AdminsOnly;
        vm.expectRevert(abi.encodeWithSelector(MlsGroup.InvalidAccount.selector, address(0)));
        clone.initialize(address(0), "gid", SUITE, address(registry), p);
        vm.expectRevert(abi.encodeWithSelector(MlsGroup.InvalidAccount.selector, SENTINEL));
        clone.initialize(SENTINEL, "gid", SUITE, address(registry), p);
        vm.expectRevert(MlsGroup.EmptyGroupId.selector);
        clone.initialize(BOB, "", SUITE, address(registry), p);
        vm.expectRevert(MlsGroup.InvalidCipherSuite.selector);
        clone.initialize(BOB, "gid", 0, address(registry), p);
    }

    function test_sentinelIsNeverAMember() public view {
        vm.assertFalse(group.isMember(SENTINEL), "sentinel");
        vm.assertFalse(group.isMember(address(0)), "zero");
    }

    // ------------------------------------------------------------ commits

    function test_commit_storesHashAndEmitsBytes() public {
        bytes memory c = commitBytes(1);
        bytes32 auth = keccak256("auth");
        bytes32[] memory k = kps(list(BOB), 1);
        vm.expectEmit(address(group));
        emit MlsGroup.MemberAdded(BOB, OWNER);
        vm.expectEmit(address(group));
        emit MlsGroup.CommitRegistered(1, OWNER, keccak256(c), auth, c, list(BOB), k, none);
        vm.prank(OWNER);
        group.commit(1, c, auth, list(BOB), k, none);
        (uint64 epoch, bytes32 hash, bytes32 a) = group.currentEpoch();
        vm.assertEq(uint256(epoch), 1, "epoch");
        vm.assertEq(hash, keccak256(c), "keccak256 of the bytes");
        vm.assertEq(a, auth, "authenticator");
        vm.assertTrue(group.isMember(BOB), "added with the commit");
        vm.assertTrue(group.isKeyPackageUsed(k[0]), "key package recorded with the commit");
        vm.assertEq(group.memberCount(), 2, "count");
        vm.assertEq(uint256(group.lastAclChangeEpoch()), 1, "ACL changed at 1");
    }

    function test_commit_withoutAclChange() public {
        addAs(OWNER, BOB);
        commitAs(OWNER, none, none);
        vm.assertEq(uint256(epochOf(group)), 2, "epoch 2");
        vm.assertEq(uint256(group.lastAclChangeEpoch()), 1, "ACL unchanged at 2");
        vm.assertEq(group.memberCount(), 2, "count");
    }

    function test_revert_commit_withoutBytes() public {
        vm.prank(OWNER);
        vm.expectRevert(MlsGroup.EmptyCommit.selector);
        group.commit(1, "", bytes32(0), none, noKps, none);
    }

    function test_revert_commit_keyPackageCountMismatch() public {
        vm.prank(OWNER);
        vm.expectRevert(abi.encodeWithSelector(MlsGroup.LengthMismatch.selector, 2, 1));
        group.commit(1, commitBytes(1), bytes32(0), list(BOB, CAROL), kps(list(BOB), 1), none);
    }

    function test_revert_commit_firstComeFirstServed() public {
        addAs(OWNER, BOB);
        vm.prank(OWNER);
        group.setAdmin(BOB, true);
        commitAs(BOB, none, none); // epoch 2
        vm.prank(OWNER);
        vm.expectRevert(abi.encodeWithSelector(MlsGroup.EpochOutOfOrder.selector, 3, 2));
        group.commit(2, commitBytes(2), bytes32(0), none, noKps, none);
    }

    function test_revert_commit_skip() public {
        vm.prank(OWNER);
        vm.expectRevert(abi.encodeWithSelector(MlsGroup.EpochOutOfOrder.selector, 1, 5));
        group.commit(5, commitBytes(5), bytes32(0), none, noKps, none);
    }

    function test_revert_commit_nonMember() public {
        vm.prank(BOB);
        vm.expectRevert(abi.encodeWithSelector(MlsGroup.NotCommitter.selector, BOB));
        group.commit(1, commitBytes(1), bytes32(0), none, noKps, none);
    }

    function test_adminsOnly_plainMemberCannotCommit() public {
        addAs(OWNER, BOB);
        vm.prank(BOB);
        vm.expectRevert(abi.encodeWithSelector(MlsGroup.NotCommitter.selector, BOB));
        group.commit(2, commitBytes(2), bytes32(0), none, noKps, none);
        vm.assertFalse(group.canCommit(BOB), "not under AdminsOnly");
        vm.assertTrue(group.canCommit(OWNER), "owner");
    }

    function test_anyMember_plainMemberCommitsButCannotChangeAcl() public {
        vm.prank(OWNER);
        MlsGroup open =
            MlsGroup(factory.createGroup("open", SUITE, MlsGroup.CommitPolicy.AnyMember));
        commitOn(open, OWNER, list(BOB), none);
        vm.assertTrue(open.canCommit(BOB), "members commit");
        commitOn(open, BOB, none, none);
        vm.assertEq(uint256(epochOf(open)), 2, "bob's update registered");
        vm.prank(BOB);
        vm.expectRevert(abi.encodeWithSelector(MlsGroup.NotAdmin.selector, BOB));
        open.commit(3, commitBytes(3), bytes32(0), list(CAROL), kps(list(CAROL), 3), none);
        vm.prank(CAROL);
        vm.expectRevert(abi.encodeWithSelector(MlsGroup.NotCommitter.selector, CAROL));
        open.commit(3, commitBytes(3), bytes32(0), none, noKps, none);
    }

    // ------------------------------------------------------------ adding

    function test_add_newestFirst() public {
        commitAs(OWNER, list(BOB, CAROL, DAVE), none);
        vm.assertEq(group.memberCount(), 4, "count");
        address[] memory expected = new address[](4);
        expected[0] = DAVE;
        expected[1] = CAROL;
        expected[2] = BOB;
        expected[3] = OWNER;
        vm.assertEq(allMembers(group), expected, "members");
        vm.assertFalse(group.wasRemoved(BOB), "not removed");
    }

    function test_revert_add_duplicateInBatch() public {
        vm.prank(OWNER);
        vm.expectRevert(abi.encodeWithSelector(MlsGroup.AlreadyMember.selector, BOB));
        group.commit(
            1,
            commitBytes(1),
            bytes32(0),
            list(BOB, CAROL, BOB),
            kps(list(BOB, CAROL, DAVE), 1),
            none
        );
        vm.assertFalse(group.isMember(CAROL), "the commit is atomic");
        vm.assertEq(uint256(epochOf(group)), 0, "nothing registered");
    }

    function test_revert_add_notAdmin() public {
        addAs(OWNER, BOB);
        vm.prank(BOB);
        vm.expectRevert(abi.encodeWithSelector(MlsGroup.NotAdmin.selector, BOB));
        group.commit(2, commitBytes(2), bytes32(0), list(CAROL), kps(list(CAROL), 2), none);
    }

    function test_revert_add_already() public {
        vm.prank(OWNER);
        vm.expectRevert(abi.encodeWithSelector(MlsGroup.AlreadyMember.selector, OWNER));
        group.commit(1, commitBytes(1), bytes32(0), list(OWNER), kps(list(OWNER), 1), none);
    }

    function test_revert_add_invalid() public {
        vm.startPrank(OWNER);
        vm.expectRevert(abi.encodeWithSelector(MlsGroup.InvalidAccount.selector, address(0)));
        group.commit(
            1, commitBytes(1), bytes32(0), list(address(0)), kps(list(address(0)), 1), none
        );
        vm.expectRevert(abi.encodeWithSelector(MlsGroup.InvalidAccount.selector, SENTINEL));
        group.commit(1, commitBytes(1), bytes32(0), list(SENTINEL), kps(list(SENTINEL), 1), none);
        vm.stopPrank();
    }

    function test_keyPackageOnce() public {
        bytes32[] memory k = kps(list(BOB), 1);
        vm.prank(OWNER);
        group.commit(1, commitBytes(1), bytes32(0), list(BOB), k, none);
        removeAs(OWNER, BOB);
        vm.prank(OWNER);
        vm.expectRevert(abi.encodeWithSelector(MlsGroup.KeyPackageAlreadyUsed.selector, k[0]));
        group.commit(3, commitBytes(3), bytes32(0), list(BOB), k, none);
        vm.assertFalse(group.isMember(BOB), "not re-added with a used key package");
    }

    function test_keyPackagesArePerGroup() public {
        vm.prank(OWNER);
        MlsGroup other =
            MlsGroup(factory.createGroup("group-2", SUITE, MlsGroup.CommitPolicy.AdminsOnly));
        commitOn(group, OWNER, list(BOB), none);
        commitOn(other, OWNER, list(BOB), none); // same hashes (same account and epoch)
        vm.assertTrue(other.isKeyPackageUsed(kps(list(BOB), 1)[0]), "recorded in both");
    }

    // ------------------------------------------------------------ removing and leaving

    function test_remove_byAddressAlone() public {
        commitAs(OWNER, list(BOB, CAROL, DAVE), none);
        vm.expectEmit(address(group));
        emit MlsGroup.MemberRemoved(CAROL, OWNER);
        removeAs(OWNER, CAROL);
        vm.assertFalse(group.isMember(CAROL), "removed");
        vm.assertTrue(group.wasRemoved(CAROL), "marked removed");
        vm.assertEq(group.memberCount(), 3, "count");
        vm.assertEq(allMembers(group), list(DAVE, BOB, OWNER), "listed without carol");
    }

    function test_revert_remove_owner() public {
        vm.prank(OWNER);
        vm.expectRevert(MlsGroup.OwnerCannotLeave.selector);
        group.commit(1, commitBytes(1), bytes32(0), none, noKps, list(OWNER));
    }

    function test_revert_remove_neverMember() public {
        vm.prank(OWNER);
        vm.expectRevert(abi.encodeWithSelector(MlsGroup.NotMember.selector, BOB));
        group.commit(1, commitBytes(1), bytes32(0), none, noKps, list(BOB));
    }

    function test_leave() public {
        addAs(OWNER, BOB);
        vm.expectEmit(address(group));
        emit MlsGroup.MemberLeft(BOB);
        vm.prank(BOB);
        group.leave();
        vm.assertFalse(group.isMember(BOB), "left");
        vm.assertTrue(group.wasRemoved(BOB), "marked");
        vm.assertEq(group.memberCount(), 1, "count");
    }

    function test_revert_leave_ownerOrNonMember() public {
        vm.prank(OWNER);
        vm.expectRevert(MlsGroup.OwnerCannotLeave.selector);
        group.leave();
        vm.prank(BOB);
        vm.expectRevert(abi.encodeWithSelector(MlsGroup.NotMember.selector, BOB));
        group.leave();
    }

    /// Review finding: a removal front-run by the member's own leave made the admin's call
    /// revert (stale predecessor hint). Now the commit removing a member who just left goes
    /// through; the ACL stays consistent.
    function test_regression_removalFrontRunByLeave() public {
        commitAs(OWNER, list(BOB, CAROL), none);
        vm.prank(BOB);
        group.leave(); // lands first
        removeAs(OWNER, BOB); // the admin's commit (Remove of bob's leaf) still registers
        vm.assertEq(uint256(epochOf(group)), 2, "commit registered");
        vm.assertFalse(group.isMember(BOB), "bob gone");
        vm.assertEq(group.memberCount(), 2, "counted once");
        vm.assertEq(allMembers(group), list(CAROL, OWNER), "members");
    }

    function test_readd_afterRemoval_andInOneCommit() public {
        addAs(OWNER, BOB);
        removeAs(OWNER, BOB);
        addAs(OWNER, BOB);
        vm.assertTrue(group.isMember(BOB), "re-added");
        vm.assertFalse(group.wasRemoved(BOB), "flag cleared");
        vm.assertEq(allMembers(group), list(BOB, OWNER), "listed once");
        // A fork recovery: Remove + Add of the same account in one commit.
        commitAs(OWNER, list(BOB), list(BOB));
        vm.assertTrue(group.isMember(BOB), "still a member");
        vm.assertEq(group.memberCount(), 2, "count");
    }

    // ------------------------------------------------------------ admins and ownership

    function test_admin_canAddAndRemove() public {
        addAs(OWNER, ADMIN);
        vm.expectEmit(address(group));
        emit MlsGroup.AdminChanged(ADMIN, true);
        vm.prank(OWNER);
        group.setAdmin(ADMIN, true);
        vm.assertTrue(group.isAdmin(ADMIN), "admin");
        addAs(ADMIN, BOB);
        removeAs(ADMIN, BOB);
        vm.assertFalse(group.isMember(BOB), "removed by admin");
    }

    function test_admin_dismissed() public {
        addAs(OWNER, ADMIN);
        vm.startPrank(OWNER);
        group.setAdmin(ADMIN, true);
        group.setAdmin(ADMIN, false);
        vm.stopPrank();
        vm.assertFalse(group.isAdmin(ADMIN), "dismissed");
        vm.prank(ADMIN);
        vm.expectRevert(abi.encodeWithSelector(MlsGroup.NotAdmin.selector, ADMIN));
        group.commit(2, commitBytes(2), bytes32(0), list(BOB), kps(list(BOB), 2), none);
    }

    /// Review finding: removing an admin cleared the role without an event.
    function test_regression_adminRemovalEmitsAdminChanged() public {
        addAs(OWNER, ADMIN);
        vm.prank(OWNER);
        group.setAdmin(ADMIN, true);
        vm.expectEmit(address(group));
        emit MlsGroup.AdminChanged(ADMIN, false);
        vm.expectEmit(address(group));
        emit MlsGroup.MemberRemoved(ADMIN, OWNER);
        removeAs(OWNER, ADMIN);
        vm.assertFalse(group.isAdmin(ADMIN), "role gone");
        // Leaving as an admin also emits it.
        addAs(OWNER, BOB);
        vm.prank(OWNER);
        group.setAdmin(BOB, true);
        vm.expectEmit(address(group));
        emit MlsGroup.AdminChanged(BOB, false);
        vm.prank(BOB);
        group.leave();
        // Re-added later, the role does not come back.
        addAs(OWNER, ADMIN);
        vm.assertFalse(group.isAdmin(ADMIN), "no role after re-adding");
    }

    /// Review finding: the list sentinel passed the membership check of setAdmin and
    /// transferOwnership. Neither it nor any non-member can become admin or owner.
    function test_regression_sentinelNeverAdminOrOwner() public {
        vm.startPrank(OWNER);
        vm.expectRevert(abi.encodeWithSelector(MlsGroup.NotMember.selector, SENTINEL));
        group.setAdmin(SENTINEL, true);
        vm.expectRevert(abi.encodeWithSelector(MlsGroup.NotMember.selector, SENTINEL));
        group.transferOwnership(SENTINEL);
        vm.expectRevert(abi.encodeWithSelector(MlsGroup.NotMember.selector, BOB));
        group.setAdmin(BOB, true);
        vm.expectRevert(abi.encodeWithSelector(MlsGroup.NotMember.selector, address(0)));
        group.transferOwnership(address(0));
        vm.stopPrank();
        vm.assertFalse(group.isAdmin(SENTINEL), "sentinel not admin");
        vm.assertEq(group.owner(), OWNER, "owner unchanged");
    }

    function test_revert_setAdmin_notOwner() public {
        addAs(OWNER, BOB);
        vm.prank(BOB);
        vm.expectRevert(abi.encodeWithSelector(MlsGroup.NotOwner.selector, BOB));
        group.setAdmin(BOB, true);
    }

    function test_transferOwnership() public {
        addAs(OWNER, BOB);
        vm.expectEmit(address(group));
        emit MlsGroup.OwnershipTransferred(OWNER, BOB);
        vm.prank(OWNER);
        group.transferOwnership(BOB);
        vm.assertEq(group.owner(), BOB, "new owner");
        vm.assertTrue(group.isAdmin(BOB), "owner is admin");
        vm.assertFalse(group.isAdmin(OWNER), "old owner is a plain member");
        removeAs(BOB, OWNER); // the old owner can now be removed
        vm.assertFalse(group.isMember(OWNER), "removed");
    }

    function test_revert_transferOwnership_notOwner() public {
        addAs(OWNER, BOB);
        vm.prank(BOB);
        vm.expectRevert(abi.encodeWithSelector(MlsGroup.NotOwner.selector, BOB));
        group.transferOwnership(BOB);
    }

    // ------------------------------------------------------------ pagination

    function test_members_paginated() public {
        address[] memory many = new address[](7);
        for (uint256 i; i < 7; ++i) {
            many[i] = address(uint160(0x7000 + i));
        }
        commitAs(OWNER, many, none);
        removeAs(OWNER, many[3]);
        address[] memory seen = new address[](7);
        uint256 n;
        address cursor;
        uint256 pages;
        do {
            (address[] memory page, address next) = group.members(cursor, 3);
            vm.assertLe(page.length, 3, "page size");
            for (uint256 i; i < page.length; ++i) {
                seen[n++] = page[i];
            }
            cursor = next;
            ++pages;
        } while (cursor != address(0));
        vm.assertEq(n, 7, "every current member once");
        vm.assertEq(pages, 3, "three pages");
        for (uint256 i; i < n; ++i) {
            vm.assertTrue(seen[i] != many[3], "removed member not listed");
            vm.assertTrue(group.isMember(seen[i]), "members only");
        }
    }

    // ------------------------------------------------------------ recovery

    /// Review finding: a member could register garbage for n + 1 and stall the group for good.
    /// In an AnyMember group, the owner replaces the griefer's heads (even stacked ones) with a
    /// real commit that removes the griefer, who can never register again.
    function test_regression_griefedEpochRecovers() public {
        vm.prank(OWNER);
        MlsGroup open =
            MlsGroup(factory.createGroup("open", SUITE, MlsGroup.CommitPolicy.AnyMember));
        commitOn(open, OWNER, list(BOB, CAROL), none); // epoch 1
        // Bob registers garbage for 2 and 3.
        vm.startPrank(BOB);
        open.commit(2, "garbage", bytes32(0), none, noKps, none);
        open.commit(3, "more garbage", bytes32(0), none, noKps, none);
        vm.stopPrank();
        bytes memory real = commitBytes(2);
        vm.expectEmit(address(open));
        emit MlsGroup.HeadReplaced(2, 3, keccak256("more garbage"), OWNER);
        vm.prank(OWNER);
        open.replaceHead(2, noUndo(), real, keccak256("a2"), acl(none, noKps, list(BOB)));
        (uint64 epoch, bytes32 hash, bytes32 auth) = open.currentEpoch();
        vm.assertEq(uint256(epoch), 2, "rewound to 2");
        vm.assertEq(hash, keccak256(real), "replacement registered");
        vm.assertEq(auth, keccak256("a2"), "its authenticator");
        vm.assertFalse(open.isMember(BOB), "griefer removed");
        // The group goes on (members after the recovery window); the removed account can
        // never register.
        vm.roll(block.number + open.RECOVERY_WINDOW() + 1);
        commitOn(open, CAROL, none, none);
        vm.assertEq(uint256(epochOf(open)), 3, "epoch 3 by carol");
        vm.prank(BOB);
        vm.expectRevert(abi.encodeWithSelector(MlsGroup.NotCommitter.selector, BOB));
        open.commit(4, "garbage", bytes32(0), none, noKps, none);
    }

    /// Review finding: a removed member could still register epochs.
    function test_regression_removedMemberCannotRegister() public {
        vm.prank(OWNER);
        MlsGroup open =
            MlsGroup(factory.createGroup("open", SUITE, MlsGroup.CommitPolicy.AnyMember));
        commitOn(open, OWNER, list(BOB), none);
        commitOn(open, OWNER, none, list(BOB));
        vm.prank(BOB);
        vm.expectRevert(abi.encodeWithSelector(MlsGroup.NotCommitter.selector, BOB));
        open.commit(3, commitBytes(3), bytes32(0), none, noKps, none);
        vm.prank(BOB);
        vm.expectRevert(abi.encodeWithSelector(MlsGroup.NotOwner.selector, BOB));
        open.replaceHead(2, noUndo(), commitBytes(2), bytes32(0), acl(none, noKps, none));
    }

    function test_replaceHead_undoesTheHeadsAclChanges() public {
        commitAs(OWNER, list(BOB, CAROL), none); // 1
        addAs(OWNER, ADMIN);
        vm.prank(OWNER);
        group.setAdmin(ADMIN, true);
        // The admin's head (epoch 3) adds dave and removes carol.
        commitAs(ADMIN, list(DAVE), list(CAROL));
        vm.assertEq(group.memberCount(), 4, "owner, bob, admin, dave");
        bytes32[] memory undoKps = kps(list(DAVE), 3);
        // Wrong undo lists are refused.
        vm.prank(OWNER);
        vm.expectRevert(MlsGroup.WrongUndo.selector);
        group.replaceHead(
            3,
            undo1(acl(list(DAVE), undoKps, none)),
            commitBytes(3),
            bytes32(0),
            acl(none, noKps, none)
        );
        vm.prank(OWNER);
        vm.expectRevert(MlsGroup.WrongUndo.selector);
        group.replaceHead(3, noUndo(), commitBytes(3), bytes32(0), acl(none, noKps, none));
        vm.prank(OWNER);
        group.replaceHead(
            3,
            undo1(acl(list(DAVE), undoKps, list(CAROL))),
            commitBytes(3),
            bytes32(0),
            acl(none, noKps, none)
        );
        vm.assertFalse(group.isMember(DAVE), "addition undone");
        vm.assertTrue(group.isMember(CAROL), "removal undone");
        vm.assertEq(group.memberCount(), 4, "owner, bob, carol, admin");
        vm.assertTrue(group.isKeyPackageUsed(undoKps[0]), "key packages stay used");
        vm.assertEq(uint256(epochOf(group)), 3, "epoch");
    }

    /// Security review M2: an ACL-changing head stacked under later commits stays
    /// replaceable; every dropped ACL change is undone, newest first.
    function test_replaceHead_unwindsSeveralHeadsAclChangesIncluded() public {
        commitAs(OWNER, list(BOB), none); // 1: adds bob
        commitAs(OWNER, none, none); // 2
        commitAs(OWNER, list(CAROL), list(BOB)); // 3: adds carol, removes bob
        commitAs(OWNER, none, none); // 4
        MlsGroup.AclChanges[] memory undo = new MlsGroup.AclChanges[](2);
        undo[0] = acl(list(CAROL), kps(list(CAROL), 3), list(BOB));
        undo[1] = acl(list(BOB), kps(list(BOB), 1), none);
        vm.startPrank(OWNER);
        // The undo lists must name every dropped ACL change, in order.
        vm.expectRevert(MlsGroup.WrongUndo.selector);
        group.replaceHead(1, undo1(undo[0]), commitBytes(1), bytes32(0), acl(none, noKps, none));
        vm.expectRevert(MlsGroup.WrongUndo.selector);
        group.replaceHead(1, reversed(undo), commitBytes(1), bytes32(0), acl(none, noKps, none));
        vm.expectRevert(abi.encodeWithSelector(MlsGroup.CannotReplace.selector, 0));
        group.replaceHead(0, noUndo(), commitBytes(1), bytes32(0), acl(none, noKps, none));
        vm.expectRevert(abi.encodeWithSelector(MlsGroup.CannotReplace.selector, 5));
        group.replaceHead(5, noUndo(), commitBytes(1), bytes32(0), acl(none, noKps, none));
        vm.expectEmit(address(group));
        emit MlsGroup.HeadReplaced(1, 4, keccak256(commitBytes(4)), OWNER);
        group.replaceHead(1, undo, commitBytes(1), bytes32(0), acl(none, noKps, none));
        vm.stopPrank();
        vm.assertEq(uint256(epochOf(group)), 1, "rewound to 1");
        vm.assertFalse(group.isMember(BOB), "bob's addition undone");
        vm.assertFalse(group.isMember(CAROL), "carol's addition undone");
        vm.assertEq(group.memberCount(), 1, "the owner alone");
        vm.assertEq(uint256(group.lastAclChangeEpoch()), 0, "no ACL change left");
    }

    /// Only the last `ACL_RING` ACL changes can be undone: older epochs are out of reach.
    function test_revert_replaceHead_belowTheRing() public {
        uint256 ring = group.ACL_RING();
        address[] memory one = new address[](1);
        for (uint256 i; i <= ring; ++i) {
            one[0] = address(uint160(0x7000 + i));
            commitAs(OWNER, one, none); // epochs 1 ..= ring + 1, each an ACL change
        }
        vm.assertEq(uint256(group.replaceableFrom()), 2, "epoch 1 left the ring");
        vm.prank(OWNER);
        vm.expectRevert(abi.encodeWithSelector(MlsGroup.CannotReplace.selector, 1));
        group.replaceHead(1, noUndo(), commitBytes(1), bytes32(0), acl(none, noKps, none));
        // Epoch 2 is still reachable, with all `ring` undo entries.
        MlsGroup.AclChanges[] memory undo = new MlsGroup.AclChanges[](ring);
        for (uint256 i; i < ring; ++i) {
            uint64 epoch = uint64(ring + 1 - i);
            one = new address[](1);
            one[0] = address(uint160(0x7000 + epoch - 1));
            undo[i] = acl(one, kps(one, epoch), none);
        }
        vm.prank(OWNER);
        group.replaceHead(2, undo, commitBytes(2), bytes32(0), acl(none, noKps, none));
        vm.assertEq(group.memberCount(), 2, "owner and the account of epoch 1");
    }

    /// Security review H2/M2 under AnyMember: after a replacement, only admins commit for
    /// `RECOVERY_WINDOW` blocks (a griefer cannot bury the replacement at once); then members
    /// commit again.
    function test_anyMember_recoveryWindowAfterReplaceHead() public {
        vm.prank(OWNER);
        MlsGroup open =
            MlsGroup(factory.createGroup("open", SUITE, MlsGroup.CommitPolicy.AnyMember));
        commitOn(open, OWNER, list(BOB, CAROL), none); // 1
        vm.prank(BOB);
        open.commit(2, "garbage", bytes32(0), none, noKps, none);
        vm.prank(OWNER);
        open.replaceHead(2, noUndo(), commitBytes(2), bytes32(0), acl(none, noKps, list(BOB)));
        uint64 until = open.adminsOnlyUntil();
        vm.assertEq(uint256(until), block.number + open.RECOVERY_WINDOW(), "window");
        vm.prank(CAROL);
        vm.expectRevert(abi.encodeWithSelector(MlsGroup.AdminsOnlyUntil.selector, until));
        open.commit(3, "more garbage", bytes32(0), none, noKps, none);
        commitOn(open, OWNER, none, none); // 3: the owner commits
        vm.roll(uint256(until) + 1);
        commitOn(open, CAROL, none, none); // 4: members again
        vm.assertEq(uint256(epochOf(open)), 4, "epoch 4");
    }

    // ------------------------------------------------------------ fuzz

    /// Random commits of adds and removals by random callers: the ACL always equals the set of
    /// accounts added minus those removed (a model), and the count and listing agree.
    function testFuzz_aclFollowsCommits(uint8[24] memory ops) public {
        address[6] memory accounts =
            [address(0x6001), address(0x6002), address(0x6003), address(0x6004), ADMIN, BOB];
        bool[6] memory model;
        addAs(OWNER, ADMIN);
        model[4] = true;
        vm.prank(OWNER);
        group.setAdmin(ADMIN, true);
        for (uint256 i; i < ops.length; ++i) {
            uint8 op = ops[i];
            uint256 who = op % 6;
            address caller = (op >> 3) % 2 == 0 ? OWNER : ADMIN;
            if (!group.isAdmin(caller)) caller = OWNER;
            uint64 next = epochOf(group) + 1;
            address[] memory one = list(accounts[who]);
            vm.prank(caller);
            if ((op >> 4) % 2 == 0) {
                try group.commit(next, commitBytes(next), bytes32(0), one, kps(one, next), none) {
                    vm.assertFalse(model[who], "added a member twice");
                    model[who] = true;
                } catch {
                    vm.assertTrue(model[who], "a valid add failed");
                }
            } else {
                try group.commit(next, commitBytes(next), bytes32(0), none, noKps, one) {
                    model[who] = false;
                } catch {
                    vm.assertFalse(group.wasRemoved(accounts[who]), "removal of a former member");
                }
            }
        }
        uint256 count = 1;
        for (uint256 i; i < 6; ++i) {
            vm.assertEq(group.isMember(accounts[i]), model[i], "model");
            if (model[i]) ++count;
        }
        vm.assertEq(group.memberCount(), count, "count");
        vm.assertEq(allMembers(group).length, count, "listing");
    }

    /// Random heads (no ACL change, an add, a removal), then `replaceHead` at a random epoch
    /// with the dropped ACL changes named newest first: the ACL is the one of the epoch before
    /// (a model), whatever was stacked on it (security review M2).
    function testFuzz_replaceHeadRestoresTheAclOfItsEpoch(uint8[12] memory ops, uint8 back) public {
        address[4] memory accounts =
            [address(0x6001), address(0x6002), address(0x6003), address(0x6004)];
        // Per epoch (index epoch - 1): 0 no change, 1 add, 2 removal; and which account.
        uint8[12] memory kind;
        uint8[12] memory whom;
        bool[4][13] memory model; // membership after each epoch (index: epoch)
        for (uint256 i; i < ops.length; ++i) {
            uint8 who = ops[i] % 4;
            uint8 k = (ops[i] >> 2) % 3;
            bool[4] memory m; // a copy (memory arrays alias)
            for (uint256 j; j < 4; ++j) {
                m[j] = model[i][j];
            }
            if (k == 1 && m[who]) k = 0;
            if (k == 2 && !m[who]) k = 0;
            (kind[i], whom[i]) = (k, who);
            address[] memory one = list(accounts[who]);
            if (k == 1) {
                commitAs(OWNER, one, none);
                m[who] = true;
            } else if (k == 2) {
                commitAs(OWNER, none, one);
                m[who] = false;
            } else {
                commitAs(OWNER, none, none);
            }
            model[i + 1] = m;
        }
        uint64 target = uint64(1 + uint256(back) % ops.length);
        uint256 n;
        for (uint256 e = ops.length; e >= target; --e) {
            if (kind[e - 1] != 0) ++n;
        }
        MlsGroup.AclChanges[] memory undo = new MlsGroup.AclChanges[](n);
        n = 0;
        for (uint256 e = ops.length; e >= target; --e) {
            address[] memory one = list(accounts[whom[e - 1]]);
            if (kind[e - 1] == 1) undo[n++] = acl(one, kps(one, uint64(e)), none);
            if (kind[e - 1] == 2) undo[n++] = acl(none, noKps, one);
        }
        vm.prank(OWNER);
        group.replaceHead(target, undo, commitBytes(target), bytes32(0), acl(none, noKps, none));
        uint256 count = 1;
        for (uint256 i; i < 4; ++i) {
            vm.assertEq(group.isMember(accounts[i]), model[target - 1][i], "the ACL of its epoch");
            if (model[target - 1][i]) ++count;
        }
        vm.assertEq(group.memberCount(), count, "count");
        vm.assertEq(uint256(epochOf(group)), target, "epoch");
    }

    /// Only `current + 1` registers; the epoch steps by one.
    function testFuzz_epochSequencing(uint64 attempt, uint8 steps) public {
        for (uint64 i; i < steps % 8; ++i) {
            commitAs(OWNER, none, none);
        }
        uint64 current = epochOf(group);
        vm.prank(OWNER);
        if (attempt != current + 1) {
            vm.expectRevert(
                abi.encodeWithSelector(MlsGroup.EpochOutOfOrder.selector, current + 1, attempt)
            );
        }
        group.commit(attempt, commitBytes(attempt), bytes32(0), none, noKps, none);
    }

    /// A key package hash is accepted once, whatever it is.
    function testFuzz_keyPackageOnce(bytes32 kp) public {
        bytes32[] memory k = new bytes32[](1);
        k[0] = kp;
        vm.prank(OWNER);
        group.commit(1, commitBytes(1), bytes32(0), list(BOB), k, none);
        vm.prank(OWNER);
        vm.expectRevert(abi.encodeWithSelector(MlsGroup.KeyPackageAlreadyUsed.selector, kp));
        group.commit(2, commitBytes(2), bytes32(0), list(CAROL), k, none);
    }

    /// Any non-admin caller fails to change the ACL, under either policy.
    function testFuzz_nonAdminNeverChangesAcl(address caller, bool anyMember) public {
        vm.assume(caller != OWNER);
        vm.prank(OWNER);
        MlsGroup g = MlsGroup(
            factory.createGroup(
                "fuzz",
                SUITE,
                anyMember ? MlsGroup.CommitPolicy.AnyMember : MlsGroup.CommitPolicy.AdminsOnly
            )
        );
        commitOn(g, OWNER, list(caller == BOB ? CAROL : BOB), none);
        vm.prank(caller);
        vm.expectRevert(abi.encodeWithSelector(MlsGroup.NotAdmin.selector, caller));
        g.commit(2, commitBytes(2), bytes32(0), list(DAVE), kps(list(DAVE), 2), none);
    }

    // ------------------------------------------------------------ delivery key

    function test_setDeliveryKey_makesTheGroupARecipient() public {
        bytes memory key = new bytes(56);
        key[0] = 0x42;
        bytes32 index = group.DELIVERY_KEY_INDEX();
        vm.assertEq(index, keccak256("eth-mls/group-delivery/v1"), "index");
        vm.expectRevert(abi.encodeWithSelector(ERC7627.NoPublicKey.selector, address(group), index));
        registry.sendMessage(address(group), index, bytes32(0), hex"01");
        vm.expectEmit(address(group));
        emit MlsGroup.DeliveryKeySet(OWNER, key);
        vm.prank(OWNER);
        group.setDeliveryKey(key);
        vm.assertTrue(registry.isKeyValid(address(group), index), "registered");
        vm.assertEq(registry.getUserPublicKey(address(group), index).public_key, key, "key");
        registry.sendMessage(address(group), index, bytes32(uint256(7)), hex"01");
    }

    function test_revert_setDeliveryKey_notAdmin() public {
        vm.prank(BOB);
        vm.expectRevert(abi.encodeWithSelector(MlsGroup.NotAdmin.selector, BOB));
        group.setDeliveryKey(new bytes(56));
    }

    function test_revert_setDeliveryKey_wrongLength() public {
        vm.prank(OWNER);
        vm.expectRevert();
        group.setDeliveryKey(new bytes(32));
    }
}
