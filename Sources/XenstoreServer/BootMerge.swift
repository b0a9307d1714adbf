// The boot branch: a server that started serving before its durable store was reachable adopts the history recovered from it, with what was written since boot merged onto it.

import XenstoreStore
import XenstoreWire

/// What `Server.adoptRecoveredHistory(from:state:time:)` did.
public struct BootMergeReport {
    /// The head the store held: the merge commit's first parent. Nil when the store was new and
    /// the server's history was written into it as it is.
    public let recoveredHead: ObjectID?
    /// The server's head afterwards: the merge commit (or, for a new store, the boot branch's head).
    public let head: ObjectID
    /// The nodes both sides changed differently since the boot branch's base, where the store's
    /// version was overridden by the boot branch's, in the order met (parents first).
    public let overridden: [MergeConflict]
    /// The store's head was already a commit of this boot branch (an adoption written before a
    /// restart in place that resumed the branch): the branch continued it, no merge commit.
    public let continued: Bool
}

extension Server {
    /// Adopts the history of `store` into a server that has been serving since boot without it
    /// (created with `init(configuration:time:)`: its commits since then are the boot branch).
    ///
    /// The store's head becomes the base: a three-way merge of the boot branch's initial tree
    /// (`bootBase`), the store's head tree and the server's head tree — the merge of
    /// TRANSACTION_END — becomes a commit `Xenstore: merging the boot branch onto the history from
    /// the disk` whose parents are the store's head (first: `git log --first-parent` continues the
    /// store's history) and the boot branch's head (its commits become reachable, ids unchanged).
    /// Where both sides changed one node differently, the boot branch wins, for the value and for
    /// the permissions separately (clients were acknowledged its version during this boot), and
    /// a node one side deleted and the other changed is as the boot branch has it; every such node
    /// is in the report, the log (`.log`) and the commit message (`ThreeWayMerge.mergePreferringTheirs`).
    /// A store holding no history (it must be new) simply receives the server's history; so does a
    /// store whose head is a commit of the server's boot branch, as after an adoption written
    /// before a restart in place that resumed the branch (`continued`).
    ///
    /// Connections, watches, domains, quotas and open transactions are untouched: watches fire
    /// for every node that differs between the boot branch's head and the merged tree (what the
    /// clients saw), node ownership is recounted from the merged tree, and a transaction started
    /// before ends like any transaction whose base is older than the head (validated replay, or
    /// EAGAIN). From then on the server is durable, as `open(from:configuration:time:)` makes it:
    /// every commit is reported and hashed, and the store's older commits are reachable through
    /// `revisionLoader`.
    ///
    /// Before it returns the result is made durable in `store` with `state` as the connection
    /// state (nil keeps the one the store holds, which belongs to an earlier run: pass the
    /// running server's `encodeState`). If that write fails (`.store`), the adoption stands in
    /// memory and the next `persist(to:state:)` writes it; the store's head is never written over,
    /// it stays the merge commit's first parent. The shell measures `storageState` afterwards.
    public func adoptRecoveredHistory<Store: HistoryStore>(from store: Store, state: [UInt8]?,
                                                           time: Int64) throws(OpenStoreError<Store.Failure>) -> BootMergeReport {
        guard let base = bootBase else { throw .noBootBranch }
        observe(time)
        let recovered = try Server.loadStoredHistory(from: store, generations: history.generations,
                                                     retainedCommits: configuration.retainedCommits)
        configuration = configuration.durable
        history.idHashBudget = nil
        bootBase = nil
        loadRevisions(from: store)
        var overridden: [MergeConflict] = []
        // A store whose head is a commit of this very boot branch (an adoption written before a
        // restart in place resumed the branch) needs no merge: the branch continues it. Only ids
        // already computed are compared (a server on a stored boot branch has them all); computing
        // a fresh server's would change where a long boot branch is cut.
        let recoveredID = recovered.map { $0.id(of: $0.head) }
        let continued = recoveredID != nil && history.firstParentLog(limit: history.retainedCommits + 1)
            .contains { history.computedID(of: $0) == recoveredID }
        if let recovered, !continued {
            let stored = recovered.head
            let merged = ThreeWayMerge.mergePreferringTheirs(base: base, ours: stored.root, theirs: history.head.root,
                                                             generations: history.generations)
            overridden = merged.overridden
            commitTree(merged.root, message: Server.bootMergeMessage(overridden), author: 0,
                       parents: [stored, history.head])
            var line = Payload.bytes("boot branch merged onto the history from the disk; conflicting nodes kept as written since boot: ")
            line.append(contentsOf: Payload.decimal(overridden.count))
            effects.append(.log(line))
        }
        try persistOrReport(to: store, state: state)
        return BootMergeReport(recoveredHead: recoveredID, head: history.id(of: history.head),
                               overridden: overridden, continued: continued)
    }

    /// The boot merge commit's message: the summary, then the overridden nodes (at most
    /// `Limits.bootMergeConflictsListed`, then how many more), one per line as `value /path`,
    /// `permissions /path` or `deleted-or-changed /path`.
    static func bootMergeMessage(_ overridden: [MergeConflict]) -> [UInt8] {
        var message = Payload.bytes("Xenstore: merging the boot branch onto the history from the disk")
        guard !overridden.isEmpty else { return message }
        message.append(contentsOf: Payload.bytes("\n\nNodes both changed, kept as the boot branch wrote them: "))
        message.append(contentsOf: Payload.decimal(overridden.count))
        for conflict in overridden.prefix(Limits.bootMergeConflictsListed) {
            let kind: [UInt8]
            let path: [[UInt8]]
            switch conflict {
            case .value(let at): (kind, path) = (Payload.bytes("value "), at)
            case .permissions(let at): (kind, path) = (Payload.bytes("permissions "), at)
            case .deleteModify(let at): (kind, path) = (Payload.bytes("deleted-or-changed "), at)
            }
            message.append(0x0A)
            message.append(contentsOf: kind)
            message.append(contentsOf: NodePath(components: path).bytes)
        }
        if overridden.count > Limits.bootMergeConflictsListed {
            message.append(contentsOf: Payload.bytes("\nand "))
            message.append(contentsOf: Payload.decimal(overridden.count - Limits.bootMergeConflictsListed))
            message.append(contentsOf: Payload.bytes(" more"))
        }
        return message
    }
}
