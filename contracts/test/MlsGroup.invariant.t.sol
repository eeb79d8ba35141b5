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

    function addMember(uint256 callerSeed, uint256 targetSeed) external {
        address caller = actor(callerSeed);
        address target = actor(targetSeed);
        vm.prank(caller);
        try group.addMember(target) {
            track(caller, true);
            modelMember[target] = true;
        } catch {}
    }

    function addMembers(uint256 callerSeed, uint256 aSeed, uint256 bSeed) external {
        address caller = actor(callerSeed);
        address[] memory batch = new address[](2);
        batch[0] = actor(aSeed);
        batch[1] = actor(bSeed);
        vm.prank(caller);
        try group.addMembers(batch) {
            track(caller, true);
            modelMember[batch[0]] = true;
            modelMember[batch[1]] = true;
        } catch {}
    }

    function removeMember(uint256 callerSeed, uint256 targetSeed, uint256 prevSeed, bool hint)
        external
    {
        address caller = actor(callerSeed);
        address target = actor(targetSeed);
        address prev = actor(prevSeed);
        if (hint && group.isMember(target)) {
            address[] memory one = new address[](1);
            one[0] = target;
            prev = group.removalHints(one)[0];
        }
        vm.prank(caller);
        try group.removeMember(prev, target) {
            track(caller, true);
            modelMember[target] = false;
        } catch {}
    }

    function leave(uint256 callerSeed) external {
        address caller = actor(callerSeed);
        address prev = address(1);
        if (group.isMember(caller)) {
            address[] memory one = new address[](1);
            one[0] = caller;
            prev = group.removalHints(one)[0];
        }
        vm.prank(caller);
        try group.leave(prev) {
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

    function recordKeyPackage(uint256 callerSeed, uint8 kpSeed) external {
        address caller = actor(callerSeed);
        bytes32 kp = keccak256(abi.encode(kpSeed % 16));
        vm.prank(caller);
        try group.recordKeyPackage(kp) {
            track(caller, true);
            if (modelKeyPackage[kp]) keyPackageAcceptedTwice = true;
            modelKeyPackage[kp] = true;
        } catch {}
    }

    function registerEpoch(uint256 callerSeed, uint64 epoch, bool next) external {
        address caller = actor(callerSeed);
        (uint64 before,,,) = group.currentEpoch();
        if (next) epoch = before + 1;
        vm.prank(caller);
        try group.registerEpoch(epoch, keccak256(abi.encode(epoch)), bytes32(uint256(epoch))) {
            track(caller, true);
            (uint64 afterwards,,,) = group.currentEpoch();
            if (afterwards != before + 1) epochSkipped = true;
            modelEpoch = afterwards;
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
        group = MlsGroup(factory.createGroup("invariant", 4));
        handler = new GroupHandler(group, OWNER);
        targetContract(address(handler));
    }

    /// A non-member never changes the group.
    function invariant_nonMemberNeverChangesGroup() public view {
        vm.assertFalse(handler.nonMemberChangedGroup(), "a non-member changed the group");
    }

    /// The epoch only ever increases by one, and equals the model's.
    function invariant_epochStepsByOne() public view {
        vm.assertFalse(handler.epochSkipped(), "epoch moved by more than one");
        (uint64 epoch,,,) = group.currentEpoch();
        vm.assertEq(uint256(epoch), uint256(handler.modelEpoch()), "epoch matches model");
    }

    /// A key package hash is never accepted twice.
    function invariant_keyPackageOnce() public view {
        vm.assertFalse(handler.keyPackageAcceptedTwice(), "key package accepted twice");
    }

    /// A removed member is never a member until re-added; membership matches the model and
    /// the enumeration.
    function invariant_membership() public view {
        uint256 count;
        for (uint256 i; i < 10; ++i) {
            address a = handler.actors(i);
            bool member = group.isMember(a);
            if (group.wasRemoved(a)) vm.assertFalse(member, "removed yet member");
            vm.assertEq(member, handler.modelMember(a), "membership matches model");
            if (member) ++count;
        }
        vm.assertEq(uint256(group.memberCount()), count, "memberCount");
        vm.assertEq(group.members().length, count, "enumeration");
        vm.assertTrue(group.isMember(group.owner()), "owner is always a member");
    }
}
