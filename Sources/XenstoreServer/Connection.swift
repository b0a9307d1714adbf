// Per-connection state: identity, framing, bounded output queue, watches and open transactions.

import XenstoreStore
import XenstoreWire

/// Identifies a connection (socket client or domain ring) for the lifetime of the server.
public struct ConnectionID: Hashable, Sendable, Comparable {
    /// The raw number; never reused while the server runs.
    public let raw: UInt32

    /// Wraps a raw number.
    public init(raw: UInt32) { self.raw = raw }

    /// Orders by creation.
    public static func < (lhs: ConnectionID, rhs: ConnectionID) -> Bool { lhs.raw < rhs.raw }
}

/// A FIFO of encoded messages waiting to be written to a connection, with a byte count.
struct OutputQueue {
    private var messages: [[UInt8]] = []
    /// Whether each message is a reply (not a watch event), parallel to `messages`.
    private var isReply: [Bool] = []
    private var head = 0
    private var frontOffset = 0
    /// Bytes not yet taken.
    private(set) var byteCount = 0

    /// Whether anything is waiting.
    var isEmpty: Bool { head == messages.count }

    /// Number of whole or partly sent messages waiting.
    var count: Int { messages.count - head }
    /// Replies (not watch events) waiting, whole or partly sent: the requests still
    /// outstanding for their client (the `outstanding` quota).
    private(set) var replyCount = 0

    /// Queues one encoded message; `reply` tells a reply from a watch event.
    mutating func append(_ message: [UInt8], reply: Bool = false) {
        messages.append(message)
        isReply.append(reply)
        if reply { replyCount += 1 }
        byteCount += message.count
    }

    /// Removes and returns up to `maxBytes` bytes from the front (possibly part of a message).
    mutating func take(maxBytes: Int) -> [UInt8] {
        var out: [UInt8] = []
        while head < messages.count && out.count < maxBytes {
            let message = messages[head]
            let available = message.count - frontOffset
            let wanted = min(available, maxBytes - out.count)
            out.append(contentsOf: message[frontOffset..<(frontOffset + wanted)])
            frontOffset += wanted
            if frontOffset == message.count {
                messages[head] = []
                if isReply[head] { replyCount -= 1 }
                head += 1
                frontOffset = 0
            }
        }
        byteCount -= out.count
        if head > 64 && head * 2 > messages.count {
            messages.removeFirst(head)
            isReply.removeFirst(head)
            head = 0
        }
        return out
    }

    /// Every byte not yet taken, without taking it (for snapshots).
    func peekAll() -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(byteCount)
        for index in head..<messages.count {
            let message = messages[index]
            out.append(contentsOf: index == head ? message[frontOffset...] : message[...])
        }
        return out
    }

    mutating func removeAll() {
        messages.removeAll()
        head = 0
        frontOffset = 0
        byteCount = 0
    }
}

/// A registered watch.
struct Watch {
    /// The absolute watched path, or the special name (`@releaseDomain`).
    let path: [UInt8]
    /// The parsed node path for non-special watches.
    let node: NodePath?
    /// The token echoed in every event.
    let token: [UInt8]
    /// Whether the watch was registered with a relative path; events then use relative paths.
    let relative: Bool
    /// Optional depth limit (WATCHDEPTH): 0 = only the path itself.
    let depth: Int?
}

/// An open transaction: a branch from the head at TRANSACTION_START, its working tree, and the
/// log of its requests with the outcomes the client saw — what a rebase replays and re-validates.
final class Transaction {
    let id: UInt32
    let base: Commit
    var workspace: Workspace
    var log = TransactionLog()
    var touched: Set<NodePath> = []
    /// Index in `workspace.triggers` of the latest trigger of each path (for one event per node).
    var lastTrigger: [PathKey: Int] = [:]
    /// Bytes held for this transaction, accounted against its domain's `memory` quota.
    var heldBytes = 0
    /// When TRANSACTION_START came (the server's wall clock, seconds since the epoch).
    let startedAt: Int64
    /// Requests made in the transaction so far (TRANSACTION_END not counted).
    var requests = 0

    init(id: UInt32, base: Commit, startedAt: Int64) {
        self.id = id
        self.base = base
        self.startedAt = startedAt
        self.workspace = Workspace(root: base.root)
    }
}

/// Everything the server knows about one connection.
final class Connection {
    let id: ConnectionID
    var caller: Caller
    var decoder = FrameDecoder()
    var output = OutputQueue()
    var watches: [Watch] = []
    var transactions: [UInt32: Transaction] = [:]
    /// TRANSACTION_ENDs in a row that answered EAGAIN (reset by a successful commit).
    var consecutiveConflicts = 0
    /// Transactions that were open when the store restarted: requests in them get EAGAIN.
    var abortedTransactions: [UInt32] = []
    /// Watch events not queued because the output queue was over its bound.
    var droppedEvents = 0
    /// Set when framing failed; nothing more is read from or queued for this connection.
    var isBroken = false
    /// How the connection reaches the server, as the shell described it (not saved across a restart).
    var transport: [UInt8]?

    init(id: ConnectionID, caller: Caller) {
        self.id = id
        self.caller = caller
    }

    /// Bound on queued output bytes before watch events are dropped.
    var outputBound: Int {
        caller.privileged ? Limits.privilegedOutputQueueBytes : Limits.unprivilegedOutputQueueBytes
    }
}
