// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Initializable} from "@openzeppelin/contracts/proxy/utils/Initializable.sol";
import {IERC7627} from "./interfaces/IERC7627.sol";

/// @title One MLS group's on-chain state: access-control list, commit log, key-package records
/// @notice Deployed once as an implementation and used through EIP-1167 clones created by
/// `MlsGroupFactory` (DESIGN.md decisions 5 and 11). The chain orders the group's commits and
/// stores them: `commit` registers the MLS commit for epoch `current + 1` together with its
/// bytes (emitted in `CommitRegistered`, their keccak256 stored), the accounts it adds (with
/// the key packages that add them, each usable once) and the accounts it removes, and applies
/// those ACL changes in the same call, so the ACL and the MLS membership change together.
/// First come, first served: concurrent committers cannot fork the group.
///
/// Who may commit is fixed at creation (`commitPolicy`): only the owner and admins (the
/// default), or any member. Commits that change the ACL always need the owner or an admin.
/// Any member may `leave`; the owner can neither leave nor be removed.
///
/// Recovery: the owner can replace the registered head with `replaceHead`, rewinding the epoch
/// counter to `epoch` (at most the current epoch). Every commit registered for `epoch` or later
/// is dropped. Members that merged a dropped commit have forked from the group and must rejoin
/// (an admin re-adds them with a Remove + Add of their account); members that could not process
/// it (a griefer's garbage) are stalled before it and simply process the replacement. The ACL
/// changes of every dropped commit are undone: the caller names them, newest first, and each is
/// checked against the hash recorded for it in a ring of the last `ACL_RING` ACL-changing
/// commits (security review M2: a head that changed the ACL stays replaceable when commits are
/// stacked on it). Commits that change no ACL can be dropped in any number. Under `AnyMember`,
/// for `RECOVERY_WINDOW` blocks after a replacement only the owner and admins may commit, so a
/// griefer cannot bury the replacement at once.
/// @dev Members form a singly linked list through `_slots` (one slot per account that ever was a
/// member: next pointer and flags), which keeps an addition to one new slot. Removal clears the
/// membership flag and leaves the node in the list (lazy deletion), so it needs no predecessor
/// and is O(1); the paginated `members` view skips non-members.
contract MlsGroup is Initializable {
    /// @notice Who may register commits.
    enum CommitPolicy {
        /// The owner and admins only (the seed's flow: members send requests to an admin).
        AdminsOnly,
        /// Any current member; commits that change the ACL still need the owner or an admin.
        AnyMember
    }

    /// @dev One slot per account that ever was a member.
    struct Slot {
        address next; // next account in the list; zero when never listed
        bool member; // a current member
        bool removed; // removed (or left) and not re-added since
        bool admin; // appointed admin (cleared on removal)
    }

    /// @dev The state every registration changes, in one slot.
    struct Head {
        uint64 epoch; // the current epoch
        uint64 floor; // no commit at or below this epoch can be dropped (an ACL change evicted
        // from the ring)
        uint32 memberCount; // current members
        uint64 adminsOnlyUntil; // under AnyMember, only admins commit up to this block
        uint8 aclTop; // ring index of the newest ACL-changing commit
        uint8 aclCount; // ACL-changing commits in the ring
    }

    /// @notice The ACL changes of a commit: the accounts it adds, the hash of the key package of
    /// each (same order), the accounts it removes.
    struct AclChanges {
        address[] added;
        bytes32[] keyPackages;
        address[] removed;
    }

    /// @notice How many of the latest ACL-changing commits `replaceHead` can undo.
    uint256 public constant ACL_RING = 16;
    /// @notice Blocks after a `replaceHead` during which, under `AnyMember`, only the owner and
    /// admins may commit.
    uint64 public constant RECOVERY_WINDOW = 64;

    /// @dev List head and terminator.
    address private constant SENTINEL = address(1);
    /// @dev Non-zero placeholder for the hash slots at epoch 0: the first registration then
    /// rewrites a non-zero slot (5,000 gas) instead of filling an empty one (22,100).
    bytes32 private constant UNSET = bytes32(uint256(1));

    /// @notice The group's owner: its creator, unless ownership was transferred.
    address public owner;
    /// @notice The ERC-7627 registry where members publish their keys and receive invitations.
    address public registry;
    /// @notice The MLS cipher suite of the group (RFC 9420 registry value, e.g. 0x0004).
    uint16 public cipherSuite;
    /// @notice Who may register commits; fixed at creation.
    CommitPolicy public commitPolicy;
    /// @notice The MLS group id.
    bytes public groupId;

    mapping(address account => Slot) private _slots;
    mapping(bytes32 keyPackageHash => bool) private _usedKeyPackages;
    Head private _head;
    bytes32 private _commitHash;
    bytes32 private _epochAuthenticatorHash;
    /// @dev The last `ACL_RING` ACL-changing commits, two per slot (entry `i` in the low or
    /// high half of slot `i / 2`): epoch (high 64 bits of the half) and the low 64 bits of the
    /// hash of their effective ACL changes. The slots are never zero (initialised to a
    /// placeholder), so recording an entry rewrites a slot (5,000 gas) instead of filling one
    /// (22,100). 64 bits suffice: the owner, who alone undoes, may change the ACL anyway; the
    /// check catches a wrong undo list, not a hostile owner.
    uint256[8] private _aclRing;

    /// @notice `member` was added by `by` (in the commit registered in the same transaction).
    event MemberAdded(address indexed member, address indexed by);
    /// @notice `member` was removed by `by` (in the commit registered in the same transaction,
    /// or by a head replacement undoing an addition).
    event MemberRemoved(address indexed member, address indexed by);
    /// @notice `member` left the group.
    event MemberLeft(address indexed member);
    /// @notice `member` was appointed admin (`isAdmin`) or lost the role.
    event AdminChanged(address indexed member, bool isAdmin);
    /// @notice Ownership moved from `previousOwner` to `newOwner`.
    event OwnershipTransferred(address indexed previousOwner, address indexed newOwner);
    /// @notice The commit that starts `epoch` was registered by `committer`. `commit` is the
    /// MLS message (its keccak256 is `commitHash`); `added`, `keyPackages` (one per added
    /// account) and `removed` are the ACL changes applied with it.
    event CommitRegistered(
        uint64 indexed epoch,
        address indexed committer,
        bytes32 commitHash,
        bytes32 epochAuthenticatorHash,
        bytes commit,
        address[] added,
        bytes32[] keyPackages,
        address[] removed
    );
    /// @notice The owner dropped the commits of epochs `epoch` to `previousEpoch`; the
    /// `CommitRegistered` for `epoch` that follows in the same transaction replaces them.
    event HeadReplaced(
        uint64 indexed epoch, uint64 previousEpoch, bytes32 replacedCommitHash, address indexed by
    );
    /// @notice The group was initialised.
    event GroupInitialized(
        address indexed owner,
        bytes groupId,
        uint16 cipherSuite,
        address registry,
        CommitPolicy commitPolicy
    );

    /// @notice The group registered (or replaced) its delivery key in the ERC-7627 registry.
    event DeliveryKeySet(address indexed by, bytes key);

    /// @notice The caller is neither the owner nor an admin.
    error NotAdmin(address caller);
    /// @notice The caller is not the owner.
    error NotOwner(address caller);
    /// @notice The caller may not register commits under the group's policy.
    error NotCommitter(address caller);
    /// @notice `account` is not a current member (or, for a removal, never was one).
    error NotMember(address account);
    /// @notice `account` is already a member.
    error AlreadyMember(address account);
    /// @notice `account` cannot be a member (the zero address or the list sentinel).
    error InvalidAccount(address account);
    /// @notice The owner can be neither removed nor leave; transfer ownership first.
    error OwnerCannotLeave();
    /// @notice Two arrays of a call differ in length.
    error LengthMismatch(uint256 a, uint256 b);
    /// @notice The key package hash was recorded before.
    error KeyPackageAlreadyUsed(bytes32 keyPackageHash);
    /// @notice Only `current + 1` can be registered.
    error EpochOutOfOrder(uint64 expected, uint64 got);
    /// @notice A commit must carry its bytes.
    error EmptyCommit();
    /// @notice The group id must not be empty.
    error EmptyGroupId();
    /// @notice Cipher suite 0 is reserved.
    error InvalidCipherSuite();
    /// @notice `epoch` cannot be replaced: it is 0, beyond the current epoch, or at or below an
    /// ACL-changing commit that left the ring (`replaceableFrom`).
    error CannotReplace(uint64 epoch);
    /// @notice The ACL changes named for undoing do not match the dropped commits'.
    error WrongUndo();
    /// @notice Under `AnyMember`, only the owner and admins may commit until block `until`
    /// (a head was just replaced).
    error AdminsOnlyUntil(uint64 until);

    modifier onlyAdmin() {
        if (!_isAdmin(msg.sender)) revert NotAdmin(msg.sender);
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
    /// @param policy Who may register commits.
    function initialize(
        address owner_,
        bytes calldata groupId_,
        uint16 cipherSuite_,
        address registry_,
        CommitPolicy policy
    ) external initializer {
        if (owner_ == address(0) || owner_ == SENTINEL) {
            revert InvalidAccount(owner_);
        }
        if (groupId_.length == 0) revert EmptyGroupId();
        if (cipherSuite_ == 0) revert InvalidCipherSuite();
        owner = owner_;
        registry = registry_;
        cipherSuite = cipherSuite_;
        commitPolicy = policy;
        groupId = groupId_;
        _slots[owner_] = Slot({next: SENTINEL, member: true, removed: false, admin: false});
        _slots[SENTINEL].next = owner_;
        _head =
            Head({epoch: 0, floor: 0, memberCount: 1, adminsOnlyUntil: 0, aclTop: 0, aclCount: 0});
        _commitHash = UNSET;
        _epochAuthenticatorHash = UNSET;
        for (uint256 i; i < _aclRing.length; ++i) {
            _aclRing[i] = 1;
        }
        emit GroupInitialized(owner_, groupId_, cipherSuite_, registry_, policy);
        emit MemberAdded(owner_, owner_);
    }

    // ---------------------------------------------------------------- commits

    /// @notice Registers the MLS commit that starts `epoch` (the current epoch + 1; the first
    /// registration wins) with its bytes, and applies its ACL changes: first every removal,
    /// then every addition (an account in both is re-added, as a fork recovery does). Who may
    /// call: see `commitPolicy`; a commit that changes the ACL needs the owner or an admin.
    /// @param epoch The new epoch (current epoch + 1).
    /// @param commitBytes The MLS commit message (non-empty); its keccak256 is stored.
    /// @param epochAuthenticatorHash Hash of the new epoch's epoch authenticator.
    /// @param added Accounts the commit adds (its Add proposals), each not a current member.
    /// @param keyPackages The hash of the key package of each added account (same order);
    /// each hash is accepted once per group.
    /// @param removed Accounts the commit removes (its Remove proposals): current members, or
    /// former members who already left or were removed (then a no-op for the ACL).
    function commit(
        uint64 epoch,
        bytes calldata commitBytes,
        bytes32 epochAuthenticatorHash,
        address[] calldata added,
        bytes32[] calldata keyPackages,
        address[] calldata removed
    ) external {
        Head memory head = _head;
        if (epoch != head.epoch + 1) revert EpochOutOfOrder(head.epoch + 1, epoch);
        _register(head, epoch, commitBytes, epochAuthenticatorHash, added, keyPackages, removed);
    }

    /// @notice Owner only: drops the commits registered for `epoch` up to the current epoch and
    /// registers `commitBytes` for `epoch` instead (see the contract's notes on recovery). The
    /// ACL changes of every dropped commit that changed the ACL are undone: name them in
    /// `undo`, newest first (`added` and `keyPackages` as registered, `removed` the accounts
    /// whose removal took effect: the `MemberRemoved` events of that registration), each
    /// checked against the hash recorded for it. Undone additions count as removed accounts;
    /// undone removals restore membership but not the admin role; key packages stay used.
    /// Commits that changed no ACL need no entry. Under `AnyMember`, only the owner and admins
    /// may commit for `RECOVERY_WINDOW` blocks afterwards.
    /// @param epoch The epoch to register again (`replaceableFrom() <= epoch <= current`).
    /// @param undo The dropped commits' ACL changes, newest first (none when none changed it).
    /// @param commitBytes The replacement commit (built on epoch `epoch - 1`).
    /// @param epochAuthenticatorHash Hash of the replacement epoch's authenticator.
    /// @param changes The replacement's ACL changes (as in `commit`).
    function replaceHead(
        uint64 epoch,
        AclChanges[] calldata undo,
        bytes calldata commitBytes,
        bytes32 epochAuthenticatorHash,
        AclChanges calldata changes
    ) external onlyOwner {
        Head memory head = _head;
        if (epoch == 0 || epoch > head.epoch || epoch <= head.floor) revert CannotReplace(epoch);
        _unwind(head, epoch, undo);
        head.memberCount = _head.memberCount;
        if (commitPolicy == CommitPolicy.AnyMember) {
            head.adminsOnlyUntil = uint64(block.number) + RECOVERY_WINDOW;
        }
        emit HeadReplaced(epoch, head.epoch, _commitHash, msg.sender);
        _register(
            head,
            epoch,
            commitBytes,
            epochAuthenticatorHash,
            changes.added,
            changes.keyPackages,
            changes.removed
        );
    }

    /// @notice The current epoch and the commitment registered for it. Epoch 0 has no commit:
    /// its hashes are zero.
    /// @return epoch The current epoch.
    /// @return commitHash keccak256 of the commit that started it.
    /// @return epochAuthenticatorHash Hash of its epoch authenticator.
    function currentEpoch()
        external
        view
        returns (uint64 epoch, bytes32 commitHash, bytes32 epochAuthenticatorHash)
    {
        epoch = _head.epoch;
        if (epoch != 0) {
            commitHash = _commitHash;
            epochAuthenticatorHash = _epochAuthenticatorHash;
        }
    }

    /// @notice The newest epoch whose commit changed the ACL and can still be undone (or the
    /// last one that left the ring; 0 when none did).
    /// @return The epoch.
    function lastAclChangeEpoch() external view returns (uint64) {
        Head memory head = _head;
        if (head.aclCount == 0) return head.floor;
        return uint64(_aclEntry(head.aclTop) >> 64);
    }

    /// @notice The oldest epoch `replaceHead` can replace now (ACL-changing commits older than
    /// the last `ACL_RING` can no longer be undone).
    /// @return The epoch.
    function replaceableFrom() external view returns (uint64) {
        return _head.floor + 1;
    }

    /// @notice Under `AnyMember`, the last block of the window after a `replaceHead` in which
    /// only the owner and admins may commit (0 when there was none).
    /// @return The block number.
    function adminsOnlyUntil() external view returns (uint64) {
        return _head.adminsOnlyUntil;
    }

    /// @notice Whether `account` may register commits now.
    /// @param account The account.
    /// @return True for the owner and admins, and for members under `AnyMember`.
    function canCommit(address account) public view returns (bool) {
        if (_isAdmin(account)) return true;
        return commitPolicy == CommitPolicy.AnyMember && isMember(account);
    }

    // ---------------------------------------------------------------- membership

    /// @notice The caller leaves the group (the ACL only: an admin's commit then removes the
    /// caller's MLS leaf, naming the caller in `removed`). The owner must transfer ownership
    /// first.
    function leave() external {
        if (!isMember(msg.sender)) revert NotMember(msg.sender);
        if (msg.sender == owner) revert OwnerCannotLeave();
        _clear(msg.sender);
        _head.memberCount -= 1;
        emit MemberLeft(msg.sender);
    }

    /// @notice Appoints (`isAdmin_`) or dismisses an admin. Owner only; admins must be current
    /// members.
    /// @param member The member whose role changes.
    /// @param isAdmin_ The new role.
    function setAdmin(address member, bool isAdmin_) external onlyOwner {
        if (!isMember(member)) revert NotMember(member);
        _slots[member].admin = isAdmin_;
        emit AdminChanged(member, isAdmin_);
    }

    /// @notice ERC-7627 key index of the group's delivery key (DESIGN.md decision 15):
    /// `sendMessage(group, DELIVERY_KEY_INDEX, sessionId, frame)` carries the group's MLS
    /// frames on chain once the key is registered.
    bytes32 public constant DELIVERY_KEY_INDEX = keccak256("eth-mls/group-delivery/v1");

    /// @notice Registers (or replaces) the group contract's delivery key in the ERC-7627
    /// registry, which makes the group a valid `sendMessage` recipient. The key is an X448
    /// public key of the group (its epoch's external HPKE key); frames sent to the group are
    /// MLS messages, protected by the group's epoch secrets. Owner or admin only.
    /// @param x448Key The 56-byte X448 public key.
    function setDeliveryKey(bytes calldata x448Key) external onlyAdmin {
        IERC7627(registry)
            .updatePublicKey(
                DELIVERY_KEY_INDEX,
                IERC7627.PublicKey({
                public_key: x448Key, valid_before: 0, algorithm: IERC7627.PublicKeyAlgorithm.X448
            })
            );
        emit DeliveryKeySet(msg.sender, x448Key);
    }

    /// @notice Hands ownership to `newOwner`, a current member. Owner only.
    /// @param newOwner The new owner.
    function transferOwnership(address newOwner) external onlyOwner {
        if (!isMember(newOwner)) revert NotMember(newOwner);
        emit OwnershipTransferred(owner, newOwner);
        owner = newOwner;
    }

    /// @notice Whether `account` is a current member.
    /// @param account The account.
    /// @return True for a current member.
    function isMember(address account) public view returns (bool) {
        return _slots[account].member;
    }

    /// @notice Whether `account` may change the ACL (the owner or an appointed admin).
    /// @param account The account.
    /// @return True for the owner and admins.
    function isAdmin(address account) external view returns (bool) {
        return _isAdmin(account);
    }

    /// @notice Whether `account` was removed (or left) and has not been re-added since.
    /// @param account The account.
    /// @return True for a removed, not re-added account.
    function wasRemoved(address account) external view returns (bool) {
        return _slots[account].removed;
    }

    /// @notice Number of current members.
    /// @return The count.
    function memberCount() external view returns (uint256) {
        return _head.memberCount;
    }

    /// @notice One page of the current members, newest first. Meant for `eth_call`.
    /// @param cursor Zero for the first page, else the `next` of the previous page.
    /// @param limit The most members to return.
    /// @return page Up to `limit` current members.
    /// @return next The cursor of the following page; zero when this was the last.
    function members(address cursor, uint256 limit)
        external
        view
        returns (address[] memory page, address next)
    {
        page = new address[](limit);
        uint256 n;
        address node = cursor == address(0) ? _slots[SENTINEL].next : cursor;
        while (node != SENTINEL && node != address(0) && n < limit) {
            Slot storage slot = _slots[node];
            if (slot.member) page[n++] = node;
            node = slot.next;
        }
        assembly ("memory-safe") {
            mstore(page, n)
        }
        next = node == SENTINEL ? address(0) : node;
    }

    /// @notice Whether a key package hash was recorded in this group.
    /// @param keyPackageHash The hash.
    /// @return True once recorded.
    function isKeyPackageUsed(bytes32 keyPackageHash) external view returns (bool) {
        return _usedKeyPackages[keyPackageHash];
    }

    // ---------------------------------------------------------------- internals

    function _isAdmin(address account) private view returns (bool) {
        return account == owner || _slots[account].admin;
    }

    function _aclHash(
        address[] calldata added,
        bytes32[] calldata keyPackages,
        address[] memory effectivelyRemoved
    ) private pure returns (bytes32) {
        return keccak256(abi.encode(added, keyPackages, effectivelyRemoved));
    }

    /// @dev Checks the caller's right to commit, applies the ACL changes, stores the head.
    function _register(
        Head memory head,
        uint64 epoch,
        bytes calldata commitBytes,
        bytes32 epochAuthenticatorHash,
        address[] calldata added,
        bytes32[] calldata keyPackages,
        address[] calldata removed
    ) private {
        if (commitBytes.length == 0) revert EmptyCommit();
        if (added.length != keyPackages.length) {
            revert LengthMismatch(added.length, keyPackages.length);
        }
        bool changesAcl = added.length != 0 || removed.length != 0;
        _checkCommitter(head, changesAcl);
        if (changesAcl) {
            uint32 count = head.memberCount;
            address[] memory effective = new address[](removed.length);
            uint256 n;
            for (uint256 i; i < removed.length; ++i) {
                if (_remove(removed[i])) effective[n++] = removed[i];
            }
            assembly ("memory-safe") {
                mstore(effective, n)
            }
            // Each effective removal was a counted member, so n <= count < 2^32.
            // forge-lint: disable-next-line(unsafe-typecast)
            count -= uint32(n);
            for (uint256 i; i < added.length; ++i) {
                _add(added[i]);
                bytes32 kp = keyPackages[i];
                if (_usedKeyPackages[kp]) revert KeyPackageAlreadyUsed(kp);
                _usedKeyPackages[kp] = true;
            }
            head.memberCount = count + uint32(added.length);
            _pushAcl(head, epoch, _aclHash(added, keyPackages, effective));
        }
        head.epoch = epoch;
        _head = head;
        bytes32 commitHash = keccak256(commitBytes);
        _commitHash = commitHash;
        _epochAuthenticatorHash = epochAuthenticatorHash;
        emit CommitRegistered(
            epoch,
            msg.sender,
            commitHash,
            epochAuthenticatorHash,
            commitBytes,
            added,
            keyPackages,
            removed
        );
    }

    /// @dev Makes `account` a member; links it into the list the first time.
    function _add(address account) private {
        if (account == address(0) || account == SENTINEL) revert InvalidAccount(account);
        Slot storage slot = _slots[account];
        if (slot.member) revert AlreadyMember(account);
        if (slot.next == address(0)) {
            Slot storage list = _slots[SENTINEL];
            _slots[account] = Slot({next: list.next, member: true, removed: false, admin: false});
            list.next = account;
        } else {
            slot.member = true;
            slot.removed = false;
        }
        emit MemberAdded(account, msg.sender);
    }

    /// @dev Removes `account`; returns whether it was a member (a former member that left or
    /// was removed is a no-op; an account that never was one is an error).
    function _remove(address account) private returns (bool) {
        Slot storage slot = _slots[account];
        if (!slot.member) {
            if (slot.removed) return false;
            revert NotMember(account);
        }
        if (account == owner) revert OwnerCannotLeave();
        _clear(account);
        emit MemberRemoved(account, msg.sender);
        return true;
    }

    /// @dev Clears membership and the admin role (with its event); the node stays listed.
    function _clear(address account) private {
        Slot storage slot = _slots[account];
        bool wasAdmin = slot.admin;
        slot.member = false;
        slot.removed = true;
        slot.admin = false;
        if (wasAdmin) emit AdminChanged(account, false);
    }

    /// @dev Every ACL-changing commit above the floor is in the ring: pops those at or above
    /// `epoch`, newest first, each undone as `undo` names it (all of `undo` used).
    function _unwind(Head memory head, uint64 epoch, AclChanges[] calldata undo) private {
        uint256 k;
        while (head.aclCount != 0) {
            uint128 entry = _aclEntry(head.aclTop);
            // casting is safe: the entry's high 64 bits are its epoch
            // forge-lint: disable-next-line(unsafe-typecast)
            if (uint64(entry >> 64) < epoch) break;
            if (k == undo.length) revert WrongUndo();
            AclChanges calldata u = undo[k++];
            // forge-lint: disable-next-line(unsafe-typecast)
            if (uint64(entry) != uint64(uint256(_aclHash(u.added, u.keyPackages, u.removed)))) {
                revert WrongUndo();
            }
            _undo(u);
            // casting is safe: a ring index is below ACL_RING = 16
            // forge-lint: disable-next-line(unsafe-typecast)
            head.aclTop = uint8((uint256(head.aclTop) + ACL_RING - 1) % ACL_RING);
            --head.aclCount;
        }
        if (k != undo.length) revert WrongUndo();
    }

    /// @dev Whether the caller may register a commit (`changesAcl`: one that changes the ACL).
    function _checkCommitter(Head memory head, bool changesAcl) private view {
        if (_isAdmin(msg.sender)) return;
        if (changesAcl) revert NotAdmin(msg.sender);
        if (commitPolicy != CommitPolicy.AnyMember || !isMember(msg.sender)) {
            revert NotCommitter(msg.sender);
        }
        if (block.number <= head.adminsOnlyUntil) revert AdminsOnlyUntil(head.adminsOnlyUntil);
    }

    /// @dev Records an ACL-changing commit in the ring; the one it evicts raises the floor.
    function _pushAcl(Head memory head, uint64 epoch, bytes32 aclHash) private {
        // casting is safe: a ring index is below ACL_RING = 16
        // forge-lint: disable-next-line(unsafe-typecast)
        uint8 top = uint8((uint256(head.aclTop) + 1) % ACL_RING);
        uint256 slot = _aclRing[top / 2];
        uint256 shift = (top % 2) * 128;
        if (head.aclCount == ACL_RING) {
            // The evicted entry's epoch: nothing at or below it can be dropped any more.
            // casting is safe: the entry's high 64 bits are its epoch
            // forge-lint: disable-next-line(unsafe-typecast)
            head.floor = uint64(slot >> (shift + 64));
        } else {
            ++head.aclCount;
        }
        head.aclTop = top;
        // forge-lint: disable-next-line(unsafe-typecast)
        uint256 entry = (uint256(epoch) << 64) | uint256(uint64(uint256(aclHash)));
        _aclRing[top / 2] = (slot & ~(uint256(type(uint128).max) << shift)) | (entry << shift);
    }

    /// @dev Ring entry `i`: epoch (high 64 bits) and hash (low 64 bits).
    function _aclEntry(uint8 i) private view returns (uint128) {
        // forge-lint: disable-next-line(unsafe-typecast)
        return uint128(_aclRing[i / 2] >> ((i % 2) * 128));
    }

    /// @dev Undoes one dropped commit's ACL changes, in reverse order.
    function _undo(AclChanges calldata undo) private {
        for (uint256 i = undo.added.length; i > 0; --i) {
            _unAdd(undo.added[i - 1]);
        }
        for (uint256 i = undo.removed.length; i > 0; --i) {
            _unRemove(undo.removed[i - 1]);
        }
    }

    /// @dev Undoes an addition of the replaced head.
    function _unAdd(address account) private {
        if (account == owner) revert OwnerCannotLeave();
        if (_slots[account].member) {
            _clear(account);
            _head.memberCount -= 1;
            emit MemberRemoved(account, msg.sender);
        }
    }

    /// @dev Undoes a removal of the replaced head (the admin role is not restored).
    function _unRemove(address account) private {
        Slot storage slot = _slots[account];
        if (!slot.member && slot.next != address(0)) {
            slot.member = true;
            slot.removed = false;
            _head.memberCount += 1;
            emit MemberAdded(account, msg.sender);
        }
    }
}
