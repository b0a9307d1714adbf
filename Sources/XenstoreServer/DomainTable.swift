// The domains the server knows: their records (introduction, target, features, quotas), the nodes each owns, the bytes their transactions hold.

import XenstoreStore

/// A domain the server knows about.
struct DomainRecord {
    var gfn: UInt64 = 0
    var eventChannel: UInt32 = 0
    var introduced = false
    var target: UInt32?
    var features: UInt32 = 0
    var quotas: Quotas?
    /// Set when the domain shut down (and `@releaseDomain` fired for it); cleared by RESUME.
    var shutDown = false
}

/// Everything the server keeps per domain, owned by `Server` as `domains`. Records are read and
/// written by domain id; ownership counts change only by a committed workspace's delta or a
/// recount from a tree; transaction bytes only by `hold`/`release`.
struct DomainTable {
    private var records: [UInt32: DomainRecord] = [:]
    /// Nodes each domain owns in the committed store (the `nodes` quota).
    private(set) var ownedNodes: [UInt32: Int] = [:]
    /// Bytes each domain's open transactions hold (the `memory` quota).
    private(set) var transactionBytes: [UInt32: Int] = [:]

    /// The record of `domid`, if the domain is known.
    subscript(_ domid: UInt32) -> DomainRecord? {
        get { records[domid] }
        set { records[domid] = newValue }
    }

    /// The record of `domid`, created empty when missing.
    subscript(_ domid: UInt32, default empty: @autoclosure () -> DomainRecord) -> DomainRecord {
        get { records[domid] ?? empty() }
        set { records[domid] = newValue }
    }

    /// Number of known domains.
    var count: Int { records.count }

    /// Known domain ids, ascending.
    var ids: [UInt32] { records.keys.sorted() }

    /// The quotas in force for `domid`: its own (SET_QUOTA) or `defaults`.
    func quotas(of domid: UInt32, defaults: Quotas) -> Quotas { records[domid]?.quotas ?? defaults }

    /// Counts every node of `root` for its owner, replacing the previous counts.
    mutating func recountOwnership(from root: Node) {
        ownedNodes.removeAll()
        var stack: [Node] = [root]
        while let node = stack.popLast() {
            ownedNodes[node.permissions.owner, default: 0] += 1
            for child in node.children { stack.append(child.node) }
        }
    }

    /// Applies a committed workspace's change of ownership counts.
    mutating func applyOwnership(_ delta: [UInt32: Int]) {
        for (domid, change) in delta {
            let count = (ownedNodes[domid] ?? 0) + change
            ownedNodes[domid] = count == 0 ? nil : count
        }
    }

    /// Bytes `domid`'s open transactions hold.
    func heldBytes(of domid: UInt32) -> Int { transactionBytes[domid] ?? 0 }

    /// Bytes all open transactions hold.
    var totalHeldBytes: Int { transactionBytes.values.reduce(0, +) }

    /// Adds `delta` (possibly negative) to what `domid`'s transactions hold.
    mutating func hold(_ delta: Int, by domid: UInt32) {
        let remaining = heldBytes(of: domid) + delta
        transactionBytes[domid] = remaining > 0 ? remaining : nil
    }
}
