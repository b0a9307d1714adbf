// The request log of an open transaction, kept proportional to what the transaction changed, and its replay.

import XenstoreStore
import XenstoreWire

/// One logged request of a transaction and the outcome its client saw.
struct LoggedRequest {
    /// The request (for a WRITE that absorbed later writes of its node: the last value written).
    var operation: NodeOperation
    /// What the client was answered.
    var outcome: Outcome
    /// For a WRITE: the largest value any of the writes folded into this entry wrote. The replay
    /// checks that size first, so the `node-size` quota is re-validated for every folded write.
    var largestValue: Int
}

/// The requests of an open transaction that a replay must re-execute and re-validate, in order.
///
/// A rebase replays the log on the new head and compares every outcome with what the client saw.
/// Two rules keep the log proportional to what the transaction changed rather than to how many
/// requests it sent, without changing what a replay decides:
/// - **Repeats.** A read (READ, DIRECTORY, DIRECTORY_PART, GET_PERMS) identical, request and
///   outcome, to one already logged, with no successful mutation since of its node, an ancestor
///   or a descendant, is not logged again: replayed, it would see the same nodes and give the
///   same answer. The same holds for a failed mutation repeated with no successful mutation at
///   all since (its outcome may depend on node counts anywhere).
/// - **Rewrites.** A successful WRITE of node P folds into the transaction's previous logged
///   successful WRITE of P when no request logged after that one is about P, an ancestor of P or
///   a descendant of P: those in between cannot observe P's value, so the two writes can be
///   replayed as one at the first one's place (checking the largest value's size, see
///   `LoggedRequest.largestValue`). Rewriting one node 100,000 times is then one entry.
struct TransactionLog {
    /// The requests to replay, in order.
    private(set) var entries: [LoggedRequest] = []
    /// What the log knows about each path it mentions, at the position `slots` gives.
    private var marks: [PathMarks] = []
    /// Where in `marks` each mentioned path's marks are.
    private var slots: [PathKey: Int] = [:]
    /// Reads and failed mutations already logged, with their outcome and the mutation count then.
    private var repeatable: [NodeOperation: (outcome: Outcome, mutations: Int)] = [:]
    /// Successful mutations so far; each one's number is its serial.
    private var mutations = 0
    /// Bytes this log holds, as accounted against the `memory` quota.
    private(set) var heldBytes = 0

    /// Accounted cost of one entry or bookkeeping record beyond its variable bytes: the array
    /// slot, enum tags, the dictionary slots and allocation headers.
    static let fixedCost = 64

    /// The last entry index and mutation serial about a path and about its strict descendants.
    struct PathMarks {
        var entryAt = -1
        var entryBelow = -1
        var mutationAt = 0
        var mutationBelow = 0
    }

    /// Where the marks of one request's path and of each of its strict ancestors (root first)
    /// are, nil for those the log does not mention yet: looked up once per request, then used by
    /// `placement`, `cost` and `record`.
    struct MarkSlots {
        var here: (key: PathKey, slot: Int?)
        var ancestors: [(key: PathKey, slot: Int?)]
    }

    /// The mark slots of `path` and its ancestors.
    func markSlots(of path: NodePath) -> MarkSlots {
        let key = PathKey(path.bytes)
        var ancestors: [(key: PathKey, slot: Int?)] = []
        ancestors.reserveCapacity(path.components.count)  // a path below the root has one ancestor per component
        for ancestor in PathKey.ancestors(of: path.bytes) { ancestors.append((ancestor, slots[ancestor])) }
        return MarkSlots(here: (key, slots[key]), ancestors: ancestors)
    }

    /// The marks at `slot`, or none.
    private func marks(at slot: Int?) -> PathMarks { slot.map { marks[$0] } ?? PathMarks() }

    /// What recording a request will do.
    enum Placement: Equatable {
        /// Nothing: an identical earlier entry already validates it.
        case redundant
        /// It replaces the value of the write at this index.
        case fold(Int)
        /// It becomes a new entry.
        case append
    }

    /// Where a request with this outcome would go (`found`: the request path's mark slots);
    /// nothing is changed.
    func placement(of operation: NodeOperation, _ outcome: Outcome, _ found: MarkSlots) -> Placement {
        if !operation.isMutation || !TransactionLog.succeeded(outcome) {
            guard let earlier = repeatable[operation], earlier.outcome == outcome else { return .append }
            if operation.isMutation {
                // A failed mutation may depend on anything (node counts): only if nothing changed.
                return earlier.mutations == mutations ? .redundant : .append
            }
            // A read depends on its node, the node's ancestors and (listings) its descendants.
            let here = marks(at: found.here.slot)
            if here.mutationAt > earlier.mutations || here.mutationBelow > earlier.mutations { return .append }
            for ancestor in found.ancestors where marks(at: ancestor.slot).mutationAt > earlier.mutations {
                return .append
            }
            return .redundant
        }
        guard case .write = operation, let slot = found.here.slot, case let here = marks[slot], here.entryAt >= 0,
              case .write = entries[here.entryAt].operation, entries[here.entryAt].outcome == outcome else {
            return .append
        }
        let index = here.entryAt
        if here.entryBelow > index { return .append }
        for ancestor in found.ancestors where marks(at: ancestor.slot).entryAt > index { return .append }
        return .fold(index)
    }

    /// The change in `heldBytes` that recording the request at `placement` makes.
    func cost(of operation: NodeOperation, _ outcome: Outcome, at placement: Placement, _ found: MarkSlots) -> Int {
        switch placement {
        case .redundant:
            return 0
        case .fold(let index):
            return TransactionLog.valueBytes(operation) - TransactionLog.valueBytes(entries[index].operation)
        case .append:
            let path = operation.path.bytes
            var bytes = TransactionLog.fixedCost + path.count + TransactionLog.valueBytes(operation)
            if case .success(let payload) = outcome { bytes += payload.count }
            if found.here.slot == nil { bytes += TransactionLog.fixedCost + path.count }
            for ancestor in found.ancestors where ancestor.slot == nil {
                bytes += TransactionLog.fixedCost + ancestor.key.bytes.count
            }
            if !operation.isMutation || !TransactionLog.succeeded(outcome) {
                // The repeat table holds a second copy of the request and its outcome.
                bytes += TransactionLog.fixedCost + path.count + TransactionLog.valueBytes(operation)
                if case .success(let payload) = outcome { bytes += payload.count }
            }
            return bytes
        }
    }

    /// Records a request at the placement `placement(of:_:)` chose; `cost` is what
    /// `cost(of:_:at:)` said for it (computed once by the caller, which checks it against quotas).
    mutating func record(_ operation: NodeOperation, _ outcome: Outcome, at placement: Placement, cost: Int,
                         _ found: MarkSlots) {
        heldBytes += cost
        let successfulMutation = operation.isMutation && TransactionLog.succeeded(outcome)
        if successfulMutation { mutations += 1 }
        // One lookup per path and ancestor: the entry marks (a new entry) and the mutation
        // marks (a successful mutation) are set together.
        var entryIndex: Int? = nil
        switch placement {
        case .redundant:
            return
        case .fold(let index):
            entries[index].operation = operation
            entries[index].largestValue = max(entries[index].largestValue, TransactionLog.valueBytes(operation))
        case .append:
            entryIndex = entries.count
            entries.append(LoggedRequest(operation: operation, outcome: outcome,
                                         largestValue: TransactionLog.valueBytes(operation)))
            if !successfulMutation { repeatable[operation] = (outcome, mutations) }
        }
        guard entryIndex != nil || successfulMutation else { return }
        let serial = mutations
        func mark(_ marks: inout PathMarks, below: Bool) {
            if let entryIndex {
                if below { marks.entryBelow = entryIndex } else { marks.entryAt = entryIndex }
            }
            if successfulMutation {
                if below { marks.mutationBelow = serial } else { marks.mutationAt = serial }
            }
        }
        func slot(_ known: (key: PathKey, slot: Int?)) -> Int {
            if let slot = known.slot { return slot }
            marks.append(PathMarks())
            slots[known.key] = marks.count - 1
            return marks.count - 1
        }
        mark(&marks[slot(found.here)], below: false)
        for ancestor in found.ancestors { mark(&marks[slot(ancestor)], below: true) }
    }

    /// Whether a change at `path` could have changed an outcome this log records: the log has
    /// an entry about `path`, an ancestor of it, or a descendant of it.
    func mentions(relatedTo path: [UInt8]) -> Bool {
        let here = marks(at: slots[PathKey(path)])
        if here.entryAt >= 0 || here.entryBelow >= 0 { return true }
        for ancestor in PathKey.ancestors(of: path) where marks(at: slots[ancestor]).entryAt >= 0 { return true }
        return false
    }

    /// Whether an outcome is a success.
    static func succeeded(_ outcome: Outcome) -> Bool {
        if case .success = outcome { return true }
        return false
    }

    /// Bytes of the value a request carries (WRITE) or of its permission list (SET_PERMS).
    static func valueBytes(_ operation: NodeOperation) -> Int {
        switch operation {
        case .write(_, let value): return value.count
        case .setPerms(_, let permissions): return 8 * permissions.count
        default: return 0
        }
    }

}

extension Server {
    /// Replays a transaction's log on `root` with `connection`'s rights and quotas: the resulting
    /// workspace if every outcome is what the client saw, nil at the first difference.
    func replay(_ transaction: Transaction, onto root: Node, for connection: Connection) -> Workspace? {
        var replay = Workspace(root: root)
        let context = context(for: connection)
        for entry in transaction.log.entries {
            counters.transactionRequestsReplayed += 1
            if case .write(let path, let value) = entry.operation, entry.largestValue > value.count {
                // A folded write: the largest value written must still have fitted at this point.
                let probe = NodeOperation.write(path, value: [UInt8](repeating: 0x30, count: entry.largestValue))
                guard NodeOperations.execute(probe, in: &replay, context) == entry.outcome else { return nil }
                replay.triggers.removeLast()
            }
            let replayed = NodeOperations.execute(entry.operation, in: &replay, context)
            if !Server.sameOutcome(entry.operation, entry.outcome, replayed) { return nil }
        }
        return replay
    }

    /// Runs a request inside a transaction: executes it on the transaction's branch and logs it,
    /// unless what it adds to the log would take the caller's domain over its `memory` quota or
    /// all guests over `guestMemoryLimit` (then ENOMEM, as C xenstored answers over its hard
    /// memory quota, and the transaction is unchanged). Privileged callers are not limited.
    func runInTransaction(_ operation: NodeOperation, _ transaction: Transaction, on connection: Connection,
                          _ context: OperationContext) -> Outcome {
        // Take the workspace out of the transaction so that it is changed in place (a second
        // reference would make every request copy its trigger list); what a refused request
        // changed is undone below.
        transaction.requests += 1
        var workspace = transaction.workspace
        transaction.workspace = Workspace(root: workspace.root)
        let savedRoot = workspace.root
        let savedOwnedNodesDelta = workspace.ownedNodesDelta
        let savedOwnedBytesDelta = workspace.ownedBytesDelta
        let triggersBefore = workspace.triggers.count
        let outcome = NodeOperations.execute(operation, in: &workspace, context)
        let found = transaction.log.markSlots(of: operation.path)
        let placement = transaction.log.placement(of: operation, outcome, found)
        let logCost = transaction.log.cost(of: operation, outcome, at: placement, found)
        var delta = logCost
        // One watch event per node and visibility at commit: a trigger equal to the node's
        // previous one is dropped.
        var newTrigger: WatchTrigger? = nil
        if workspace.triggers.count > triggersBefore, let trigger = workspace.triggers.last {
            workspace.triggers.removeLast()
            if let previous = transaction.lastTrigger[PathKey(trigger.path.bytes)],
               Server.sameEvent(workspace.triggers[previous], trigger) {
                newTrigger = nil
            } else {
                newTrigger = trigger
                delta += TransactionLog.fixedCost + trigger.path.bytes.count + 8 * trigger.visibleThrough.count
            }
        }
        let domid = connection.caller.domid
        if refusesMemoryGrowth(delta, by: connection.caller, quota: context.quotas.memory) {
            workspace.root = savedRoot
            workspace.ownedNodesDelta = savedOwnedNodesDelta
            workspace.ownedBytesDelta = savedOwnedBytesDelta
            workspace.triggers.removeSubrange(triggersBefore...)
            transaction.workspace = workspace
            return .failure(.ENOMEM)
        }
        if let newTrigger {
            transaction.lastTrigger[PathKey(newTrigger.path.bytes)] = workspace.triggers.count
            workspace.triggers.append(newTrigger)
        }
        transaction.workspace = workspace
        transaction.log.record(operation, outcome, at: placement, cost: logCost, found)
        transaction.heldBytes += delta
        domains.hold(delta, in: .transactions, by: domid)
        return outcome
    }

    /// Whether two watch triggers fire the same events (same node, same visibility, no removal).
    static func sameEvent(_ a: WatchTrigger, _ b: WatchTrigger) -> Bool {
        a.path == b.path && a.removedSubtree == nil && b.removedSubtree == nil && a.visibleThrough == b.visibleThrough
    }

    /// After a privileged connection's transaction failed a replay: remembers the unprivileged
    /// domains that authored a commit since the transaction's base changing a node the
    /// transaction's log is about (its own node, an ancestor or a descendant). Only the newest
    /// `Limits.conflictBlameCommits` commits are examined; guests' commits are small (quotas),
    /// so each costs what it changed.
    func blameConflict(_ transaction: Transaction, of connection: Connection) {
        guard connection.caller.privileged else { return }
        var culprits = starvation.culprits(of: connection.id)
        var commit = history.head
        var examined = 0
        while commit !== transaction.base, examined < Limits.conflictBlameCommits,
              let parent = commit.parents.first {
            examined += 1
            if commit.author != 0 && !culprits.contains(commit.author) {
                var related = false
                TreeDiff.changes(from: parent.root, to: commit.root) { change in
                    if related { return }
                    let components: [[UInt8]]
                    switch change {
                    case .added(let path, _), .removed(let path, _), .modified(let path, _, _): components = path
                    }
                    related = transaction.log.mentions(relatedTo: NodePath(components: components).bytes)
                }
                if related { culprits.insert(commit.author) }
            }
            commit = parent
        }
        counters.conflictsBlamed += 1
        starvation.setCulprits(culprits, of: connection.id)
    }

    /// Forgets the bytes an ended or dropped transaction held against its domain's `memory` quota.
    func release(_ transaction: Transaction, of connection: Connection) {
        let domid = connection.caller.domid
        domains.hold(-transaction.heldBytes, in: .transactions, by: domid)
        transaction.heldBytes = 0
    }
}
