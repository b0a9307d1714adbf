// The domains the server knows: their records (introduction, target, features, quotas), the nodes each owns, the memory each holds.

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

/// The kinds of memory a domain is accounted for (the `memory` quota counts their sum).
enum MemoryUse {
    /// Nodes the domain owns in the committed store (`NodeOperations.footprint`).
    case nodes
    /// Its open transactions' logs (`TransactionLog`).
    case transactions
    /// Its registered watches.
    case watches
    /// Replies and watch events queued for its connections and not yet taken by the shell.
    case output
}

/// Everything the server keeps per domain, owned by `Server` as `domains`. Records are read and
/// written by domain id; ownership counts and bytes change only by a committed workspace's delta
/// or a recount from a tree; the other memory uses only by `hold`.
struct DomainTable {
    private var records: [UInt32: DomainRecord] = [:]
    /// Nodes each domain owns in the committed store (the `nodes` quota).
    private(set) var ownedNodes: [UInt32: Int] = [:]
    /// Accounted bytes of the nodes each domain owns in the committed store.
    private(set) var ownedBytes: [UInt32: Int] = [:]
    private var transactionBytes: [UInt32: Int] = [:]
    private var watchBytes: [UInt32: Int] = [:]
    private var outputBytes: [UInt32: Int] = [:]
    /// The sum of every use of every domain but dom0, bounded by `guestMemoryLimit`.
    private(set) var guestBytes = 0

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

    /// Counts every node of `root` for its owner, replacing the previous counts and bytes.
    mutating func recountOwnership(from root: Node) {
        let (nodes, bytes) = DomainTable.ownership(of: root)
        for (domid, old) in ownedBytes where domid != 0 { guestBytes -= old }
        for (domid, new) in bytes where domid != 0 { guestBytes += new }
        ownedNodes = nodes
        ownedBytes = bytes
    }

    /// The nodes and accounted bytes each owner has in `root` (an iterative walk).
    static func ownership(of root: Node) -> (nodes: [UInt32: Int], bytes: [UInt32: Int]) {
        var nodes: [UInt32: Int] = [:]
        var bytes: [UInt32: Int] = [:]
        var stack: [(nameBytes: Int, node: Node)] = [(0, root)]
        while let (nameBytes, node) = stack.popLast() {
            nodes[node.permissions.owner, default: 0] += 1
            bytes[node.permissions.owner, default: 0] += NodeOperations.footprint(of: node, nameBytes: nameBytes)
            for child in node.children { stack.append((child.name.count, child.node)) }
        }
        return (nodes, bytes)
    }

    /// Applies a committed workspace's change of ownership counts and bytes.
    mutating func applyOwnership(of workspace: Workspace) {
        for (domid, change) in workspace.ownedNodesDelta {
            let count = (ownedNodes[domid] ?? 0) + change
            ownedNodes[domid] = count == 0 ? nil : count
        }
        for (domid, change) in workspace.ownedBytesDelta {
            let total = (ownedBytes[domid] ?? 0) + change
            ownedBytes[domid] = total == 0 ? nil : total
            if domid != 0 { guestBytes += change }
        }
    }

    /// Bytes `domid` holds in every use together: what its `memory` quota bounds.
    func usage(of domid: UInt32) -> Int {
        (ownedBytes[domid] ?? 0) + (transactionBytes[domid] ?? 0) + (watchBytes[domid] ?? 0) + (outputBytes[domid] ?? 0)
    }

    /// Bytes `domid` holds in one use.
    func usage(of domid: UInt32, in use: MemoryUse) -> Int {
        switch use {
        case .nodes: return ownedBytes[domid] ?? 0
        case .transactions: return transactionBytes[domid] ?? 0
        case .watches: return watchBytes[domid] ?? 0
        case .output: return outputBytes[domid] ?? 0
        }
    }

    /// Bytes all domains together hold in one use.
    func total(in use: MemoryUse) -> Int {
        switch use {
        case .nodes: return ownedBytes.values.reduce(0, +)
        case .transactions: return transactionBytes.values.reduce(0, +)
        case .watches: return watchBytes.values.reduce(0, +)
        case .output: return outputBytes.values.reduce(0, +)
        }
    }

    /// Adds `delta` (possibly negative) to what `domid` holds in `use`. Node bytes change only
    /// with committed workspaces (`applyOwnership`), so `.nodes` is ignored here.
    mutating func hold(_ delta: Int, in use: MemoryUse, by domid: UInt32) {
        guard delta != 0 else { return }
        func adjust(_ table: inout [UInt32: Int]) {
            let remaining = (table[domid] ?? 0) + delta
            table[domid] = remaining > 0 ? remaining : nil
        }
        switch use {
        case .nodes: return
        case .transactions: adjust(&transactionBytes)
        case .watches: adjust(&watchBytes)
        case .output: adjust(&outputBytes)
        }
        if domid != 0 { guestBytes += delta }
    }
}
