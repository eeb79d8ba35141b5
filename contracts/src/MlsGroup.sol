// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Initializable} from "@openzeppelin/contracts/proxy/utils/Initializable.sol";

/// @title One MLS group's on-chain state: access-control list, key-package records, epochs
/// @notice Deployed once as an implementation and used through EIP-1167 clones created by
/// `MlsGroupFactory` (DESIGN.md decision 5). The owner (the group's creator) appoints admins;
/// the owner and admins add and remove members; any member may leave. Each MLS key package may be
/// recorded once. Commits are sequenced: the commit for epoch `n + 1` is the first one a current
/// member registers for `n + 1`, so concurrent committers cannot fork the group.
/// @dev Members form a singly linked list through `_slots` (one storage slot per member holds the
/// next pointer and the flags), which keeps an addition to one new slot. Removal therefore takes
/// the member's predecessor in `members()` order; `removalHints` computes it off-chain for free.
contract MlsGroup is Initializable {
    /// @dev One slot per account that ever was a member.
    struct Slot {
        address next; // next member in the list; zero when not a member
        bool removed; // removed (or left) and not re-added since
        bool admin; // appointed admin (cleared on removal)
    }

    /// @dev The epoch sequencing state that changes on every registration.
    struct EpochHead {
        uint64 epoch;
        address committer;
    }

    /// @dev List head and terminator.
    address private constant SENTINEL = address(1);

    /// @notice The group's owner: its creator, unless ownership was transferred.
    address public owner;
    /// @notice The MLS cipher suite of the group (RFC 9420 registry value, e.g. 0x0004).
    uint16 public cipherSuite;
    /// @notice The ERC-7627 registry where members publish their keys and receive invitations.
    address public registry;
    /// @notice The MLS group id.
    bytes public groupId;

    mapping(address account => Slot) private _slots;
    mapping(bytes32 keyPackageHash => bool) private _usedKeyPackages;
    EpochHead private _head;
    bytes32 private _commitHash;
    bytes32 private _epochAuthenticatorHash;

    /// @notice `member` was added by `by`.
    event MemberAdded(address indexed member, address indexed by);
    /// @notice `member` was removed by `by`.
    event MemberRemoved(address indexed member, address indexed by);
    /// @notice `member` left the group.
    event MemberLeft(address indexed member);
    /// @notice `member` was appointed admin (`isAdmin`) or lost the role.
    event AdminChanged(address indexed member, bool isAdmin);
    /// @notice Ownership moved from `previousOwner` to `newOwner`.
    event OwnershipTransferred(address indexed previousOwner, address indexed newOwner);
    /// @notice A key package hash was recorded as used.
    event KeyPackageRecorded(bytes32 indexed keyPackageHash, address indexed by);
    /// @notice The commit for `epoch` was registered.
    event EpochRegistered(
        uint64 indexed epoch,
        address indexed committer,
        bytes32 commitHash,
        bytes32 epochAuthenticatorHash
    );
    /// @notice The group was initialised.
    event GroupInitialized(
        address indexed owner, bytes groupId, uint16 cipherSuite, address registry
    );

    /// @notice The caller is neither the owner nor an admin.
    error NotAdmin(address caller);
    /// @notice The caller is not the owner.
    error NotOwner(address caller);
    /// @notice `account` is not a current member.
    error NotMember(address account);
    /// @notice `account` is already a member.
    error AlreadyMember(address account);
    /// @notice `account` cannot be a member (the zero address or the list sentinel).
    error InvalidAccount(address account);
    /// @notice `prev` is not the predecessor of `member` in the member list.
    error WrongPredecessor(address prev, address member);
    /// @notice The owner can be neither removed nor leave; transfer ownership first.
    error OwnerCannotLeave();
    /// @notice Two arrays of a batch call differ in length.
    error LengthMismatch(uint256 a, uint256 b);
    /// @notice The key package hash was recorded before.
    error KeyPackageAlreadyUsed(bytes32 keyPackageHash);
    /// @notice Only `current + 1` can be registered.
    error EpochOutOfOrder(uint64 expected, uint64 got);
    /// @notice A commit hash must not be zero.
    error EmptyCommitHash();
    /// @notice The group id must not be empty.
    error EmptyGroupId();
    /// @notice Cipher suite 0 is reserved.
    error InvalidCipherSuite();

    modifier onlyAdmin() {
        if (msg.sender != owner && !_slots[msg.sender].admin) revert NotAdmin(msg.sender);
        _;
    }

    modifier onlyOwner() {
        if (msg.sender != owner) revert NotOwner(msg.sender);
        _;
    }

    /// @dev The implementation itself can never be initialised; only its clones can.
    constructor() {
        _disableInitializers();
    }

    /// @notice Sets up a fresh clone; runs once. The owner becomes the first member.
    /// @param owner_ The group's owner (its creator).
    /// @param groupId_ The MLS group id (non-empty).
    /// @param cipherSuite_ The MLS cipher suite (non-zero).
    /// @param registry_ The ERC-7627 registry used by the group.
    function initialize(
        address owner_,
        bytes calldata groupId_,
        uint16 cipherSuite_,
        address registry_
    ) external initializer {
        if (owner_ == address(0) || owner_ == SENTINEL) {
            revert InvalidAccount(owner_);
        }
        if (groupId_.length == 0) revert EmptyGroupId();
        if (cipherSuite_ == 0) revert InvalidCipherSuite();
        owner = owner_;
        cipherSuite = cipherSuite_;
        registry = registry_;
        groupId = groupId_;
        _slots[owner_].next = SENTINEL;
        _slots[SENTINEL].next = owner_;
        _head = EpochHead({epoch: 0, committer: owner_}); // the creator made epoch 0
        emit GroupInitialized(owner_, groupId_, cipherSuite_, registry_);
        emit MemberAdded(owner_, owner_);
    }

    // ---------------------------------------------------------------- access control

    /// @notice Adds `member` to the group. Owner or admin only.
    /// @param member The account to add.
    function addMember(address member) external onlyAdmin {
        _add(member);
    }

    /// @notice Adds every account of `members`, in order. Owner or admin only.
    /// @param accounts The accounts to add; the call reverts when any cannot be added.
    function addMembers(address[] calldata accounts) external onlyAdmin {
        uint256 n = accounts.length;
        for (uint256 i; i < n; ++i) {
            _add(accounts[i]);
        }
    }

    /// @notice Removes `member`, whose predecessor in `members()` order is `prev`. Owner or admin.
    /// @param prev The member listed before `member` (see `removalHints`), or address(1) when
    /// `member` is listed first.
    /// @param member The member to remove; not the owner.
    function removeMember(address prev, address member) external onlyAdmin {
        _remove(prev, member);
        emit MemberRemoved(member, msg.sender);
    }

    /// @notice Removes `accounts[i]` with predecessor `prevs[i]`, in order (each hint as it stands
    /// after the earlier removals: `removalHints` computes them). Owner or admin only.
    /// @param prevs The predecessors.
    /// @param accounts The members to remove.
    function removeMembers(address[] calldata prevs, address[] calldata accounts)
        external
        onlyAdmin
    {
        uint256 n = accounts.length;
        if (prevs.length != n) revert LengthMismatch(prevs.length, n);
        for (uint256 i; i < n; ++i) {
            _remove(prevs[i], accounts[i]);
            emit MemberRemoved(accounts[i], msg.sender);
        }
    }

    /// @notice The caller leaves the group. The owner must transfer ownership first.
    /// @param prev The caller's predecessor in `members()` order (see `removalHints`).
    function leave(address prev) external {
        _remove(prev, msg.sender);
        emit MemberLeft(msg.sender);
    }

    /// @notice Appoints (`isAdmin_`) or dismisses an admin. Owner only; admins must be members.
    /// @param member The member whose role changes.
    /// @param isAdmin_ The new role.
    function setAdmin(address member, bool isAdmin_) external onlyOwner {
        Slot storage slot = _slots[member];
        if (slot.next == address(0)) revert NotMember(member);
        slot.admin = isAdmin_;
        emit AdminChanged(member, isAdmin_);
    }

    /// @notice Hands ownership to `newOwner`, a current member. Owner only.
    /// @param newOwner The new owner.
    function transferOwnership(address newOwner) external onlyOwner {
        if (_slots[newOwner].next == address(0)) revert NotMember(newOwner);
        emit OwnershipTransferred(owner, newOwner);
        owner = newOwner;
    }

    /// @notice Whether `account` is a current member.
    /// @param account The account.
    /// @return True for a current member.
    function isMember(address account) public view returns (bool) {
        return account != SENTINEL && _slots[account].next != address(0);
    }

    /// @notice Whether `account` may change the ACL (the owner or an appointed admin).
    /// @param account The account.
    /// @return True for the owner and admins.
    function isAdmin(address account) external view returns (bool) {
        return account == owner || _slots[account].admin;
    }

    /// @notice Whether `account` was removed (or left) and has not been re-added since.
    /// @param account The account.
    /// @return True for a removed, not re-added account.
    function wasRemoved(address account) external view returns (bool) {
        return _slots[account].removed;
    }

    /// @notice Number of current members. Walks the list (no counter is stored, which keeps
    /// additions and removals cheaper): meant for `eth_call`.
    /// @return count The number of current members.
    function memberCount() public view returns (uint256 count) {
        for (address cursor = _slots[SENTINEL].next; cursor != SENTINEL; ++count) {
            cursor = _slots[cursor].next;
        }
    }

    /// @notice The current members, newest first. Meant for `eth_call`.
    /// @return list Every current member.
    function members() external view returns (address[] memory list) {
        list = new address[](memberCount());
        address cursor = _slots[SENTINEL].next;
        for (uint256 i; cursor != SENTINEL; ++i) {
            list[i] = cursor;
            cursor = _slots[cursor].next;
        }
    }

    /// @notice The `prevs` argument for `removeMembers(prevs, toRemove)` (for one member, the
    /// `prev` of `removeMember` and `leave`). Meant for `eth_call`: it walks the whole list.
    /// @param toRemove Current members, distinct, in the order they will be removed.
    /// @return prevs Each member's predecessor once the earlier ones are removed.
    function removalHints(address[] calldata toRemove)
        external
        view
        returns (address[] memory prevs)
    {
        uint256 n = memberCount();
        address[] memory order = new address[](n + 1);
        order[0] = SENTINEL;
        address cursor = _slots[SENTINEL].next;
        for (uint256 i = 1; cursor != SENTINEL; ++i) {
            order[i] = cursor;
            cursor = _slots[cursor].next;
        }
        prevs = new address[](toRemove.length);
        for (uint256 k; k < toRemove.length; ++k) {
            address target = toRemove[k];
            if (!isMember(target)) revert NotMember(target);
            address last = SENTINEL;
            for (uint256 i = 1; i <= n; ++i) {
                address at = order[i];
                if (at == target) {
                    prevs[k] = last;
                    order[i] = address(0); // removed from here on
                    break;
                }
                if (at != address(0)) last = at;
            }
        }
    }

    // ---------------------------------------------------------------- key packages

    /// @notice Records a key package as used in this group; each hash is accepted once.
    /// Owner or admin only (whoever adds the member with it).
    /// @param keyPackageHash Hash of the MLS KeyPackage (e.g. its KeyPackageRef).
    function recordKeyPackage(bytes32 keyPackageHash) external onlyAdmin {
        if (_usedKeyPackages[keyPackageHash]) revert KeyPackageAlreadyUsed(keyPackageHash);
        _usedKeyPackages[keyPackageHash] = true;
        emit KeyPackageRecorded(keyPackageHash, msg.sender);
    }

    /// @notice Whether a key package hash was recorded in this group.
    /// @param keyPackageHash The hash.
    /// @return True once recorded.
    function isKeyPackageUsed(bytes32 keyPackageHash) external view returns (bool) {
        return _usedKeyPackages[keyPackageHash];
    }

    // ---------------------------------------------------------------- epochs

    /// @notice Registers the commit that starts `epoch`; only `current + 1` is accepted, the
    /// first registration wins. Current members only.
    /// @param epoch The new epoch (current epoch + 1).
    /// @param commitHash Hash of the MLS commit message (non-zero).
    /// @param epochAuthenticatorHash Hash of the new epoch's epoch authenticator.
    function registerEpoch(uint64 epoch, bytes32 commitHash, bytes32 epochAuthenticatorHash)
        external
    {
        if (!isMember(msg.sender)) revert NotMember(msg.sender);
        uint64 expected = _head.epoch + 1;
        if (epoch != expected) revert EpochOutOfOrder(expected, epoch);
        if (commitHash == bytes32(0)) revert EmptyCommitHash();
        _head = EpochHead({epoch: epoch, committer: msg.sender});
        _commitHash = commitHash;
        _epochAuthenticatorHash = epochAuthenticatorHash;
        emit EpochRegistered(epoch, msg.sender, commitHash, epochAuthenticatorHash);
    }

    /// @notice The current epoch and the commitment registered for it. Epoch 0 has no commit:
    /// its hashes are zero and its committer is the group's creator.
    /// @return epoch The current epoch.
    /// @return commitHash Hash of the commit that started it.
    /// @return epochAuthenticatorHash Hash of its epoch authenticator.
    /// @return committer The member who registered it.
    function currentEpoch()
        external
        view
        returns (
            uint64 epoch,
            bytes32 commitHash,
            bytes32 epochAuthenticatorHash,
            address committer
        )
    {
        EpochHead memory head = _head;
        return (head.epoch, _commitHash, _epochAuthenticatorHash, head.committer);
    }

    // ---------------------------------------------------------------- internals

    function _add(address member) private {
        if (member == address(0) || member == SENTINEL) revert InvalidAccount(member);
        if (_slots[member].next != address(0)) revert AlreadyMember(member);
        Slot storage head = _slots[SENTINEL];
        _slots[member] = Slot({next: head.next, removed: false, admin: false});
        head.next = member;
        emit MemberAdded(member, msg.sender);
    }

    function _remove(address prev, address member) private {
        if (!isMember(member)) revert NotMember(member);
        if (member == owner) revert OwnerCannotLeave();
        Slot storage prevSlot = _slots[prev];
        if (prevSlot.next != member) revert WrongPredecessor(prev, member);
        prevSlot.next = _slots[member].next;
        _slots[member] = Slot({next: address(0), removed: true, admin: false});
    }
}
