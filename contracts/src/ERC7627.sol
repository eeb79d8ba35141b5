// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IERC165} from "@openzeppelin/contracts/utils/introspection/IERC165.sol";
import {IERC7627} from "./interfaces/IERC7627.sol";

/// @title ERC-7627 public-key registry and 1:1 encrypted message channel
/// @notice Users register public keys under a key index; anyone can send an encrypted message
/// to a user's registered, unexpired key. The message itself travels in the `MessageSent` event.
/// @dev Beyond the reference implementation: key lengths are checked per algorithm, `valid_before`
/// is enforced (0 = no expiry; otherwise the key is valid while `block.timestamp < valid_before`),
/// keys can be revoked, `sendMessage` refuses a missing or expired key, and ERC-165 is supported.
contract ERC7627 is IERC7627, IERC165 {
    /// @dev Storage form of a key: the fields `sendMessage` checks share one slot.
    struct StoredKey {
        uint64 validBefore;
        PublicKeyAlgorithm algorithm;
        bool exists;
        bytes publicKey;
    }

    mapping(address user => mapping(bytes32 keyIndex => StoredKey)) private keys;

    /// @notice Emitted when a user revokes the key at `keyIndex`.
    event PublicKeyRevoked(address indexed user, bytes32 indexed keyIndex);

    /// @notice The key is empty.
    error EmptyPublicKey();
    /// @notice The key's length or encoding does not fit its algorithm.
    error InvalidPublicKey(PublicKeyAlgorithm algorithm, uint256 length);
    /// @notice `valid_before` is not zero and not in the future.
    error PublicKeyAlreadyExpired(uint64 validBefore, uint256 nowTimestamp);
    /// @notice The user has no key at that index (never registered, or revoked).
    error NoPublicKey(address user, bytes32 keyIndex);
    /// @notice The user's key at that index has expired.
    error PublicKeyExpired(address user, bytes32 keyIndex, uint64 validBefore);
    /// @notice An encrypted message must not be empty.
    error EmptyMessage();

    /// @inheritdoc IERC7627
    /// @dev Reverts with `EmptyPublicKey`, `InvalidPublicKey` or `PublicKeyAlreadyExpired`.
    function updatePublicKey(bytes32 _keyIndex, PublicKey memory _publicKey) external {
        bytes memory key = _publicKey.public_key;
        if (key.length == 0) revert EmptyPublicKey();
        if (!_wellFormed(_publicKey.algorithm, key)) {
            revert InvalidPublicKey(_publicKey.algorithm, key.length);
        }
        uint64 validBefore = _publicKey.valid_before;
        // Expiry has one-second granularity; validator timestamp drift is acceptable here.
        // forge-lint: disable-next-line(block-timestamp)
        if (validBefore != 0 && validBefore <= block.timestamp) {
            revert PublicKeyAlreadyExpired(validBefore, block.timestamp);
        }
        StoredKey storage stored = keys[msg.sender][_keyIndex];
        stored.validBefore = validBefore;
        stored.algorithm = _publicKey.algorithm;
        stored.exists = true;
        stored.publicKey = key;
        emit PublicKeyUpdated(msg.sender, _keyIndex, _publicKey);
    }

    /// @notice Revokes the caller's key at `keyIndex`; messages to it are refused from now on.
    /// @param keyIndex The index of the key to revoke.
    /// @dev Reverts with `NoPublicKey` when there is no key to revoke.
    function revokePublicKey(bytes32 keyIndex) external {
        StoredKey storage stored = keys[msg.sender][keyIndex];
        if (!stored.exists) revert NoPublicKey(msg.sender, keyIndex);
        delete keys[msg.sender][keyIndex];
        emit PublicKeyRevoked(msg.sender, keyIndex);
    }

    /// @inheritdoc IERC7627
    /// @dev Reverts with `NoPublicKey`, `PublicKeyExpired` or `EmptyMessage`.
    function sendMessage(
        address _to,
        bytes32 _keyIndex,
        bytes32 _sessionId,
        bytes calldata _encryptedMessage
    ) external {
        StoredKey storage stored = keys[_to][_keyIndex];
        if (!stored.exists) revert NoPublicKey(_to, _keyIndex);
        uint64 validBefore = stored.validBefore;
        // Expiry has one-second granularity; validator timestamp drift is acceptable here.
        // forge-lint: disable-next-line(block-timestamp)
        if (validBefore != 0 && validBefore <= block.timestamp) {
            revert PublicKeyExpired(_to, _keyIndex, validBefore);
        }
        if (_encryptedMessage.length == 0) revert EmptyMessage();
        emit MessageSent(msg.sender, _to, _keyIndex, _sessionId, _encryptedMessage);
    }

    /// @inheritdoc IERC7627
    /// @dev A missing or revoked key reads as the zero struct, as in the reference implementation.
    /// An expired key is still returned: check `valid_before`, or use `isKeyValid`.
    function getUserPublicKey(address _user, bytes32 _keyIndex)
        external
        view
        returns (PublicKey memory)
    {
        StoredKey storage stored = keys[_user][_keyIndex];
        return PublicKey({
            public_key: stored.publicKey,
            valid_before: stored.validBefore,
            algorithm: stored.algorithm
        });
    }

    /// @notice Whether `user` has a key at `keyIndex` that messages can be sent to now.
    /// @param user The key's owner.
    /// @param keyIndex The key's index.
    /// @return True when the key exists and has not expired.
    function isKeyValid(address user, bytes32 keyIndex) external view returns (bool) {
        StoredKey storage stored = keys[user][keyIndex];
        uint64 validBefore = stored.validBefore;
        // forge-lint: disable-next-line(block-timestamp)
        return stored.exists && (validBefore == 0 || block.timestamp < validBefore);
    }

    /// @notice ERC-165: true for IERC7627 and IERC165.
    /// @param interfaceId The interface identifier.
    /// @return Whether the interface is implemented.
    function supportsInterface(bytes4 interfaceId) external pure returns (bool) {
        return interfaceId == type(IERC7627).interfaceId || interfaceId == type(IERC165).interfaceId;
    }

    /// @dev Length (and for ECDSA, SEC1 prefix) per algorithm: X25519/ED25519 32 bytes,
    /// X448 56, ED448 57, ECDSA 33 (compressed, 0x02/0x03) or 65 (uncompressed, 0x04).
    function _wellFormed(PublicKeyAlgorithm algorithm, bytes memory key)
        private
        pure
        returns (bool)
    {
        uint256 len = key.length;
        if (algorithm == PublicKeyAlgorithm.ECDSA) {
            bytes1 prefix = key[0];
            return
                (len == 33 && (prefix == 0x02 || prefix == 0x03)) || (len == 65 && prefix == 0x04);
        }
        if (algorithm == PublicKeyAlgorithm.ED25519 || algorithm == PublicKeyAlgorithm.X25519) {
            return len == 32;
        }
        if (algorithm == PublicKeyAlgorithm.X448) return len == 56;
        return len == 57; // ED448
    }
}
