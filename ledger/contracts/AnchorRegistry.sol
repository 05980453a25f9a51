// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

/// @title Kexin anchor registry
/// @notice Each registered participant anchors the Merkle roots of its ledger batches, one after
/// the other: batch n names the root of batch n - 1 as its previous root and continues its event
/// range, so that a participant cannot fork or rewrite its own history. Only participants that
/// the data-space operator (the deployer) registered, and did not suspend, may anchor.
contract AnchorRegistry {
    enum Status {
        Unknown,
        Active,
        Suspended
    }

    struct Anchor {
        bytes32 root;
        uint64 firstEvent;
        uint64 lastEvent;
        uint64 blockNumber;
        uint64 timestamp;
    }

    struct AnchorView {
        bytes32 root;
        bytes32 previousRoot;
        uint64 firstEvent;
        uint64 lastEvent;
        uint64 blockNumber;
        uint64 timestamp;
    }

    address public immutable operator;
    mapping(address => Status) public statusOf;
    mapping(address => string) public didOf;
    mapping(address => Anchor[]) private anchors;

    event ParticipantRegistered(address indexed account, string did);
    event ParticipantSuspended(address indexed account);
    event ParticipantReinstated(address indexed account);
    event Anchored(
        address indexed participant,
        uint64 indexed batchSequence,
        bytes32 root,
        bytes32 previousRoot,
        uint64 firstEvent,
        uint64 lastEvent
    );

    error NotOperator(address caller);
    error AlreadyRegistered(address account);
    error NotRegistered(address account);
    error ParticipantIsSuspended(address account);
    error WrongBatchSequence(uint64 expected, uint64 given);
    error WrongPreviousRoot(bytes32 expected, bytes32 given);
    error WrongEventRange(uint64 expectedFirst, uint64 first, uint64 last);
    error EmptyRoot();
    error NoSuchAnchor(address account, uint64 batchSequence);

    constructor() {
        operator = msg.sender;
    }

    modifier onlyOperator() {
        if (msg.sender != operator) revert NotOperator(msg.sender);
        _;
    }

    function register(address account, string calldata did) external onlyOperator {
        if (statusOf[account] != Status.Unknown) revert AlreadyRegistered(account);
        statusOf[account] = Status.Active;
        didOf[account] = did;
        emit ParticipantRegistered(account, did);
    }

    function suspend(address account) external onlyOperator {
        if (statusOf[account] == Status.Unknown) revert NotRegistered(account);
        statusOf[account] = Status.Suspended;
        emit ParticipantSuspended(account);
    }

    function reinstate(address account) external onlyOperator {
        if (statusOf[account] == Status.Unknown) revert NotRegistered(account);
        statusOf[account] = Status.Active;
        emit ParticipantReinstated(account);
    }

    /// @notice Anchor batch `batchSequence`, holding events `firstEvent`..`lastEvent` (inclusive).
    function anchor(
        uint64 batchSequence,
        bytes32 root,
        bytes32 previousRoot,
        uint64 firstEvent,
        uint64 lastEvent
    ) external {
        Status status = statusOf[msg.sender];
        if (status == Status.Unknown) revert NotRegistered(msg.sender);
        if (status == Status.Suspended) revert ParticipantIsSuspended(msg.sender);
        Anchor[] storage own = anchors[msg.sender];
        uint64 count = uint64(own.length);
        if (batchSequence != count) revert WrongBatchSequence(count, batchSequence);
        bytes32 expectedPrevious;
        uint64 expectedFirst;
        if (count > 0) {
            Anchor storage last = own[count - 1];
            expectedPrevious = last.root;
            expectedFirst = last.lastEvent + 1;
        }
        if (previousRoot != expectedPrevious) revert WrongPreviousRoot(expectedPrevious, previousRoot);
        if (firstEvent != expectedFirst || lastEvent < firstEvent) {
            revert WrongEventRange(expectedFirst, firstEvent, lastEvent);
        }
        if (root == bytes32(0)) revert EmptyRoot();
        own.push(Anchor(root, firstEvent, lastEvent, uint64(block.number), uint64(block.timestamp)));
        emit Anchored(msg.sender, batchSequence, root, previousRoot, firstEvent, lastEvent);
    }

    function anchorCount(address account) external view returns (uint64) {
        return uint64(anchors[account].length);
    }

    function anchorAt(address account, uint64 batchSequence) external view returns (AnchorView memory) {
        Anchor[] storage own = anchors[account];
        if (batchSequence >= own.length) revert NoSuchAnchor(account, batchSequence);
        Anchor storage found = own[batchSequence];
        bytes32 previousRoot = batchSequence == 0 ? bytes32(0) : own[batchSequence - 1].root;
        return AnchorView(
            found.root, previousRoot, found.firstEvent, found.lastEvent, found.blockNumber, found.timestamp
        );
    }
}
