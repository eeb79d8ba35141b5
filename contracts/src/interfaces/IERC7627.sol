// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title ERC-7627 Secure Messaging Protocol (Final interface)
/// @notice The interface of ERC-7627, byte-for-byte in its function and event signatures.
/// @dev `PublicKeyAlgorithm` is extended append-only by `X448` and `ED448` (DESIGN.md decision 6):
/// enums are `uint8` in the ABI, so every selector, event topic and the struct encoding stay
/// those of the standard, and the first three values keep their meaning.
interface IERC7627 {
    /// @notice Algorithm of a registered public key.
    enum PublicKeyAlgorithm {
        ECDSA,
        ED25519,
        X25519,
        X448,
        ED448
    }

    /// @notice A registered public key.
    /// @param public_key The encoded key (length fixed per algorithm).
    /// @param valid_before Unix time from which the key is expired; 0 means it never expires.
    /// @param algorithm The key's algorithm.
    struct PublicKey {
        bytes public_key;
        uint64 valid_before;
        PublicKeyAlgorithm algorithm;
    }

    /// @notice Event emitted when a message is sent between users.
    /// @param from The address of the sender
    /// @param to The address of the recipient
    /// @param keyIndex The index of the public key used to encrypt the message
    /// @param sessionId The session ID for the communication
    /// @param encryptedMessage The encrypted message in bytes
    event MessageSent(
        address indexed from,
        address indexed to,
        bytes32 indexed keyIndex,
        bytes32 sessionId,
        bytes encryptedMessage
    );

    /// @notice Event emitted when a user's public key is updated.
    /// @param user The address of the user whose public key is updated
    /// @param keyIndex The index of the public key being updated
    /// @param newPublicKey The new public key data
    event PublicKeyUpdated(address indexed user, bytes32 indexed keyIndex, PublicKey newPublicKey);

    /// @notice Updates the public key for the sender.
    /// @param _keyIndex The index of the key to be updated
    /// @param _publicKey The new public key data
    function updatePublicKey(bytes32 _keyIndex, PublicKey memory _publicKey) external;

    /// @notice Sends an encrypted message to a specified address.
    /// @param _to The recipient's address
    /// @param _keyIndex The index of the public key used to encrypt the message
    /// @param _sessionId The session ID for the communication
    /// @param _encryptedMessage The encrypted message in bytes
    function sendMessage(
        address _to,
        bytes32 _keyIndex,
        bytes32 _sessionId,
        bytes calldata _encryptedMessage
    ) external;

    /// @notice Retrieves a public key for a specific user and key index.
    /// @param _user The address of the user
    /// @param _keyIndex The index of the key to retrieve
    /// @return The public key data associated with the user and key index
    function getUserPublicKey(address _user, bytes32 _keyIndex)
        external
        view
        returns (PublicKey memory);
}
