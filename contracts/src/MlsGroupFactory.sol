// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Clones} from "@openzeppelin/contracts/proxy/Clones.sol";
import {MlsGroup} from "./MlsGroup.sol";

/// @title Factory of MLS group contracts
/// @notice Creates each group's `MlsGroup` as an EIP-1167 clone of one implementation, at an
/// address determined by the creator and the MLS group id (so it can be known before creation,
/// e.g. to name it inside the MLS group context), and records the groups each account created.
contract MlsGroupFactory {
    /// @notice The `MlsGroup` implementation every group delegates to.
    address public immutable implementation;
    /// @notice The ERC-7627 registry handed to every group.
    address public immutable registry;

    mapping(address creator => address[]) private _created;

    /// @notice A group contract was created.
    /// @param group The new group contract.
    /// @param creator Its owner.
    /// @param groupId The MLS group id.
    /// @param cipherSuite The MLS cipher suite.
    /// @param commitPolicy Who may register commits in it.
    event GroupCreated(
        address indexed group,
        address indexed creator,
        bytes groupId,
        uint16 cipherSuite,
        MlsGroup.CommitPolicy commitPolicy
    );

    /// @notice A constructor argument was the zero address.
    error ZeroAddress();
    /// @notice The creator already created a group with this id, at `group`.
    error GroupExists(address group);

    /// @param implementation_ A deployed `MlsGroup` (its constructor locks it).
    /// @param registry_ The ERC-7627 registry for the groups.
    constructor(address implementation_, address registry_) {
        if (implementation_ == address(0) || registry_ == address(0)) revert ZeroAddress();
        implementation = implementation_;
        registry = registry_;
    }

    /// @notice Creates a group owned by the caller.
    /// @param groupId The MLS group id (non-empty; unique per creator).
    /// @param cipherSuite The MLS cipher suite (non-zero; 0x0004 in eth-mls).
    /// @param commitPolicy Who may register commits (`AdminsOnly` is the seed's flow); fixed.
    /// @return group The new group contract.
    function createGroup(
        bytes calldata groupId,
        uint16 cipherSuite,
        MlsGroup.CommitPolicy commitPolicy
    ) external returns (address group) {
        bytes32 salt = _salt(msg.sender, groupId);
        address predicted = Clones.predictDeterministicAddress(implementation, salt);
        if (predicted.code.length != 0) revert GroupExists(predicted);
        group = Clones.cloneDeterministic(implementation, salt);
        MlsGroup(group).initialize(msg.sender, groupId, cipherSuite, registry, commitPolicy);
        _created[msg.sender].push(group);
        emit GroupCreated(group, msg.sender, groupId, cipherSuite, commitPolicy);
    }

    /// @notice The address `createGroup` gives `creator` for `groupId`.
    /// @param creator The creating account.
    /// @param groupId The MLS group id.
    /// @return The group contract's address (created or not).
    function predictGroupAddress(address creator, bytes calldata groupId)
        external
        view
        returns (address)
    {
        return Clones.predictDeterministicAddress(implementation, _salt(creator, groupId));
    }

    /// @notice The groups `creator` created, oldest first.
    /// @param creator The creating account.
    /// @return The group contracts.
    function groupsCreatedBy(address creator) external view returns (address[] memory) {
        return _created[creator];
    }

    function _salt(address creator, bytes calldata groupId) private pure returns (bytes32) {
        return keccak256(abi.encode(creator, groupId));
    }
}
