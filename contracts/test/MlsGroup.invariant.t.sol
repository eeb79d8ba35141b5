// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Test, Vm} from "./utils/Test.sol";
import {ERC7627} from "../src/ERC7627.sol";
import {MlsGroup} from "../src/MlsGroup.sol";
import {MlsGroupFactory} from "../src/MlsGroupFactory.sol";

/// @notice Drives one group with random callers (members, admins, outsiders) and random
/// arguments, and keeps a model of what the group should be.
contract GroupHandler {
    Vm internal constant vm = Vm(0x7109709ECfa91a80626fF3989D68f67F5b1DD12D);
    uint256 internal constant ACTORS = 10;

    MlsGroup public immutable group;
    address[ACTORS] public actors;
    mapping(address => bool) public modelMember;
    uint64 public modelEpoch;
    mapping(bytes32 => bool) public modelKeyPackage;

    /// Set when a call by a non-member changed the group.
    bool public nonMemberChangedGroup;
    /// Set when a registration moved the epoch by anything but one.
    bool public epochSkipped;
    /// Set when a key package hash was accepted twice.
    bool public keyPackageAcceptedTwice;
    /// Set when a commit was registered by someone the policy does not allow.
    bool public unauthorisedCommit;
    /// Set when a removed (or never added) account registered a commit.
    bool public removedRegistered;
    uint256 public replacements;
    uint256 public successfulCalls;

    constructor(MlsGroup group_, address owner) {
        group = group_;
        actors[0] = owner;
        for (uint256 i = 1; i < ACTORS; ++i) {
            actors[i] = address(uint160(0x5000 + i));
        }
        modelMember[owner] = true;
    }

    function actor(uint256 seed) internal view returns (address) {
        return actors[seed % ACTORS];
    }

    function track(address caller, bool ok) internal {
        if (ok) {
            ++successfulCalls;
            if (!modelMember[caller]) nonMemberChangedGroup = true;
        }
    }

    function acl(address[] memory added, bytes32[] memory k, address[] memory removed)
        internal
        pure
        returns (MlsGroup.AclChanges memory)
    {
        return MlsGroup.AclChanges({added: added, keyPackages: k, removed: removed});
    }

    function kpList(bytes32 kp) internal pure returns (bytes32[] memory l) {
        l = new bytes32[](1);
        l[0] = kp;
    }

    function one(address a) internal pure returns (address[] memory l) {
        l = new address[](1);
        l[0] = a;
    }

    /// A commit with random ACL changes (possibly none) by a random caller.
    function commit(
        uint256 callerSeed,
        uint256 addSeed,
        uint256 removeSeed,
        uint8 kpSeed,
        uint8 shape,
        bool next
    ) external {
        address caller = actor(callerSeed);
        (uint64 before,,) = group.currentEpoch();
        uint64 epoch = next ? before + 1 : uint64(shape);
        address[] memory added = shape % 3 == 1 ? one(actor(addSeed)) : new address[](0);
        address[] memory removed = shape % 4 == 2 ? one(actor(removeSeed)) : new address[](0);
        bytes32 kp = keccak256(abi.encode(kpSeed % 16));
        bytes32[] memory kps = added.length == 1 ? kpList(kp) : new bytes32[](0);
        bool mayCommit = group.canCommit(caller);
        bool admin = group.isAdmin(caller);
        bool wasMember = group.isMember(caller);
        vm.prank(caller);
        try group.commit(epoch, abi.encode(epoch), bytes32(uint256(epoch)), added, kps, removed) {
            track(caller, true);
            if (!mayCommit) unauthorisedCommit = true;
            if ((added.length != 0 || removed.length != 0) && !admin) unauthorisedCommit = true;
            if (!wasMember) removedRegistered = true;
            (uint64 afterwards,,) = group.currentEpoch();
            if (afterwards != before + 1) epochSkipped = true;
            modelEpoch = afterwards;
            for (uint256 i; i < removed.length; ++i) {
                modelMember[removed[i]] = false;
            }
            for (uint256 i; i < added.length; ++i) {
                modelMember[added[i]] = true;
                if (modelKeyPackage[kp]) keyPackageAcceptedTwice = true;
                modelKeyPackage[kp] = true;
            }
        } catch {}
    }

    function leave(uint256 callerSeed) external {
        address caller = actor(callerSeed);
        vm.prank(caller);
        try group.leave() {
            track(caller, true);
            modelMember[caller] = false;
        } catch {}
    }

    function setAdmin(uint256 callerSeed, uint256 targetSeed, bool role) external {
        address caller = actor(callerSeed);
        vm.prank(caller);
        try group.setAdmin(actor(targetSeed), role) {
            track(caller, true);
        } catch {}
    }

    /// The owner replaces the head when it changed no ACL (undo lists empty).
    function replaceHead(uint8 back) external {
        (uint64 before,,) = group.currentEpoch();
        uint64 lastAcl = group.lastAclChangeEpoch();
        if (before == 0) return;
        uint64 epoch = before - uint64(back % 3);
        if (epoch == 0) epoch = 1;
        address[] memory noAccounts = new address[](0);
        bytes32[] memory noKps = new bytes32[](0);
        vm.prank(group.owner());
        try group.replaceHead(
            epoch,
            new MlsGroup.AclChanges[](0),
            "replacement",
            bytes32(0),
            acl(noAccounts, noKps, noAccounts)
        ) {
            ++successfulCalls;
            // Only epochs above the last ACL change can be dropped (here, with empty undo lists).
            if (epoch > before || lastAcl >= epoch) epochSkipped = true;
            modelEpoch = epoch;
            ++replacements;
        } catch {}
    }
}

contract MlsGroupInvariantTest is Test {
    MlsGroup internal group;
    GroupHandler internal handler;
    address internal constant OWNER = address(0x0A);

    function setUp() public {
        ERC7627 registry = new ERC7627();
        MlsGroupFactory factory = new MlsGroupFactory(address(new MlsGroup()), address(registry));
        vm.prank(OWNER);
        group = MlsGroup(factory.createGroup("invariant", 4, MlsGroup.CommitPolicy.AnyMember));
        handler = new GroupHandler(group, OWNER);
        targetContract(address(handler));
    }

    /// A non-member never changes the group.
    function invariant_nonMemberNeverChangesGroup() public view {
        vm.assertFalse(handler.nonMemberChangedGroup(), "a non-member changed the group");
    }

    /// The epoch only ever increases by one (or goes back through an owner's replacement),
    /// and equals the model's.
    function invariant_epochStepsByOne() public view {
        vm.assertFalse(handler.epochSkipped(), "epoch moved by more than one");
        (uint64 epoch,,) = group.currentEpoch();
        vm.assertEq(uint256(epoch), uint256(handler.modelEpoch()), "epoch matches model");
    }

    /// Only the policy's committers register; ACL changes only by the owner or admins; no
    /// removed account registers.
    function invariant_onlyPolicyCommitters() public view {
        vm.assertFalse(handler.unauthorisedCommit(), "a commit outside the policy");
        vm.assertFalse(handler.removedRegistered(), "a removed account registered");
    }

    /// A key package hash is never accepted twice.
    function invariant_keyPackageOnce() public view {
        vm.assertFalse(handler.keyPackageAcceptedTwice(), "key package accepted twice");
    }

    /// The ACL is the set of accounts added minus those removed (the model); a removed member
    /// is never a member until re-added; count and enumeration agree.
    function invariant_membership() public view {
        uint256 count;
        for (uint256 i; i < 10; ++i) {
            address a = handler.actors(i);
            bool member = group.isMember(a);
            if (group.wasRemoved(a)) vm.assertFalse(member, "removed yet member");
            vm.assertEq(member, handler.modelMember(a), "membership matches model");
            if (member) ++count;
        }
        vm.assertEq(group.memberCount(), count, "memberCount");
        (address[] memory page,) = group.members(address(0), 100);
        vm.assertEq(page.length, count, "enumeration");
        vm.assertTrue(group.isMember(group.owner()), "owner is always a member");
    }
}
