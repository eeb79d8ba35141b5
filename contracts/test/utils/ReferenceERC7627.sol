// SPDX-License-Identifier: CC0-1.0
pragma solidity ^0.8.0;

/// @notice The ERC-7627 reference implementation, verbatim from the EIP (test-only: the
/// baseline of the `sendMessage` gas comparison).
contract ReferenceERC7627 {
    /// @dev Enum to specify the algorithm used for the public key.
    enum PublicKeyAlgorithm {
        ECDSA,
        ED25519,
        X25519
    }

    /// @dev Structure to represent a user's public key.
    struct PublicKey {
        bytes public_key;
        uint64 valid_before;
        PublicKeyAlgorithm algorithm;
    }

    /// @dev Mapping to store public keys for each address. The mapping is by user address and a unique key index.
    mapping(address => mapping(bytes32 => PublicKey)) public pk;

    event MessageSent(
        address indexed from,
        address indexed to,
        bytes32 indexed keyIndex,
        bytes32 sessionId,
        bytes encryptedMessage
    );

    event PublicKeyUpdated(address indexed user, bytes32 indexed keyIndex, PublicKey newPublicKey);

    function updatePublicKey(bytes32 _keyIndex, PublicKey memory _publicKey) external {
        pk[msg.sender][_keyIndex] = _publicKey;
        emit PublicKeyUpdated(msg.sender, _keyIndex, _publicKey);
    }

    function sendMessage(
        address _to,
        bytes32 _keyIndex,
        bytes32 _sessionId,
        bytes calldata _encryptedMessage
    ) external {
        emit MessageSent(msg.sender, _to, _keyIndex, _sessionId, _encryptedMessage);
    }

    function getUserPublicKey(address _user, bytes32 _keyIndex)
        external
        view
        returns (PublicKey memory)
    {
        return pk[_user][_keyIndex];
    }
}
