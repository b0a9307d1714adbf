// Quotas: the named per-domain limits of GET_QUOTA/SET_QUOTA and the checks that use them.

import XenstoreWire

/// The quotas that bound an unprivileged domain. 0 means "no limit", as in C xenstored.
public struct Quotas: Equatable, Sendable {
    /// Nodes the domain may own (`nodes`).
    public var nodes = Limits.defaultNodesPerDomain
    /// Watches the domain may register (`watches`).
    public var watches = Limits.defaultWatchesPerDomain
    /// Transactions a connection may have open (`transactions`).
    public var transactions = Limits.defaultTransactionsPerDomain
    /// Distinct nodes one transaction may touch (`transaction-nodes`).
    public var transactionNodes = Limits.defaultTransactionNodes
    /// Bytes of one node: value, permissions and child names (`node-size`).
    public var nodeSize = Limits.defaultNodeSize
    /// Entries in one permission list (`permissions`).
    public var permissions = Limits.defaultPermissionsPerNode
    /// Path length after the domain prefix (`path-max`).
    public var pathMax = Limits.relativePathMax
    /// Requests awaiting their reply (`outstanding`).
    public var outstanding = Limits.defaultOutstandingPerDomain
    /// Bytes the domain may hold in its open transactions (`memory`): request logs and pending
    /// watch triggers; over it a transaction request gets ENOMEM (see docs/quotas.md).
    public var memory = Limits.defaultMemoryPerDomain

    /// The C xenstored defaults.
    public init() {}

    /// The quota names GET_QUOTA lists, in order.
    public static let names: [[UInt8]] = [
        Payload.bytes("nodes"), Payload.bytes("watches"), Payload.bytes("transactions"),
        Payload.bytes("transaction-nodes"), Payload.bytes("node-size"), Payload.bytes("permissions"),
        Payload.bytes("path-max"), Payload.bytes("outstanding"), Payload.bytes("memory"),
    ]

    /// The value of the quota called `name`, or nil for an unknown name.
    public func value(named name: [UInt8]) -> Int? {
        switch Quotas.names.firstIndex(of: name) {
        case 0: return nodes
        case 1: return watches
        case 2: return transactions
        case 3: return transactionNodes
        case 4: return nodeSize
        case 5: return permissions
        case 6: return pathMax
        case 7: return outstanding
        case 8: return memory
        default: return nil
        }
    }

    /// Sets the quota called `name`; false for an unknown name.
    public mutating func set(named name: [UInt8], to value: Int) -> Bool {
        switch Quotas.names.firstIndex(of: name) {
        case 0: nodes = value
        case 1: watches = value
        case 2: transactions = value
        case 3: transactionNodes = value
        case 4: nodeSize = value
        case 5: permissions = value
        case 6: pathMax = value
        case 7: outstanding = value
        case 8: memory = value
        default: return false
        }
        return true
    }

    /// Whether `count` items exceed the quota `limit` (0 = unlimited).
    static func exceeds(_ count: Int, _ limit: Int) -> Bool {
        limit > 0 && count > limit
    }
}
