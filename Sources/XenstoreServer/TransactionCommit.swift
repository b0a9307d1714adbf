// Transactions: TRANSACTION_START as a branch from the head, TRANSACTION_END as a fast-forward, a merge or a validated rebase, and the starvation protection between them.

import XenstoreStore
import XenstoreWire

extension Server {
    func startTransaction(on connection: Connection) -> Outcome {
        let caller = connection.caller
        if !caller.privileged && Quotas.exceeds(connection.transactions.count + 1, quotas(for: caller).transactions) {
            return .failure(.ENOSPC)
        }
        var id = nextTransaction
        while id == 0 || connection.transactions[id] != nil || connection.abortedTransactions.contains(id) { id &+= 1 }
        nextTransaction = id &+ 1
        connection.transactions[id] = Transaction(id: id, base: history.head, startedAt: now)
        introspectionChanged(connection: connection.id, "transaction")
        protectIfStarving(connection, transaction: id)
        return .success(Payload.decimal(id) + [0])
    }

    /// Optimistic transactions favour whoever commits first: a client that keeps losing the race
    /// for a contended key can fail for ever while others commit. After
    /// `Limits.starvationConflicts` EAGAINs in a row, a privileged connection's new transaction
    /// becomes the protected one (one at a time, for `Limits.starvationProtectionSeconds`): until
    /// it ends, another transaction whose commit would turn its outcomes stale is refused with
    /// EAGAIN instead. Only dom0 clients (the toolstack) are protected, so a guest cannot use
    /// this to hold anybody's commits back; plain writes are never refused, but the guests
    /// blamed for the connection's EAGAINs are not read meanwhile (`isThrottled`).
    func protectIfStarving(_ connection: Connection, transaction id: UInt32) {
        guard connection.caller.privileged, connection.consecutiveConflicts >= Limits.starvationConflicts else { return }
        if activeProtection() != nil { return }
        starvation.protect(connection.id, transaction: id)
    }

    /// The protected transaction and its connection, dropping a protection that ended or expired.
    func activeProtection() -> (Connection, Transaction)? {
        guard let protection = starvation.current() else { return nil }
        guard let connection = connections[protection.connection],
              let transaction = connection.transactions[protection.transaction] else {
            starvation.end()
            return nil
        }
        return (connection, transaction)
    }

    /// Takes the wall-clock time of an input: commit timestamps use it as it is, the
    /// starvation guard's expiry a monotonic clock derived from it.
    func observe(_ time: Int64) {
        now = time
        starvation.observe(wallTime: time)
    }

    /// Whether committing `newRoot` would make the protected transaction (other than `ending`)
    /// fail, when it would still succeed against the current head.
    func wouldStarveProtected(_ newRoot: Node, ending: Transaction) -> Bool {
        guard let (owner, protected) = activeProtection(), protected !== ending else { return false }
        return replay(protected, onto: history.head.root, for: owner) != nil
            && replay(protected, onto: newRoot, for: owner) == nil
    }

    /// Whether a replayed outcome is what the client saw. DIRECTORY_PART's generation count
    /// may differ for an unchanged child list, so only the list is compared.
    static func sameOutcome(_ operation: NodeOperation, _ recorded: Outcome, _ replayed: Outcome) -> Bool {
        if case .directoryPart = operation, case .success(let a) = recorded, case .success(let b) = replayed {
            guard let i = a.firstIndex(of: 0), let j = b.firstIndex(of: 0) else { return a == b }
            return a[(i + 1)...] == b[(j + 1)...]
        }
        return recorded == replayed
    }

    /// TRANSACTION_END T: merge the transaction's branch into the head.
    ///
    /// If the head has not moved, the branch is fast-forwarded. Otherwise the transaction's
    /// requests are replayed on the new head and every outcome re-validated (reads, listings,
    /// permission checks): only a differing outcome is a true conflict (EAGAIN). A validated
    /// transaction is recorded as a three-way merge commit when the tree merge agrees with the
    /// replay, else as a rebased commit on the head. A privileged transaction none of whose
    /// logged requests can see what changed since its base (`logUnaffected`) skips the replay:
    /// every outcome would be the same, so the three-way merge is the result.
    func commit(_ transaction: Transaction, by connection: Connection) -> Outcome {
        let head = history.head
        let author = connection.caller.domid
        var message = Server.domainLabel(author)
        message.append(contentsOf: Payload.bytes(": merging transaction "))
        message.append(contentsOf: Payload.decimal(transaction.id))
        if head === transaction.base {
            let workspace = transaction.workspace
            if workspace.root === head.root { return .ok }
            if wouldStarveProtected(workspace.root, ending: transaction) { return .failure(.EAGAIN) }
            history.commitOnHead(root: workspace.root, author: author, message: message, time: now)
            apply(workspace)
            return .ok
        }
        var merged: Node? = nil
        let replay: Workspace
        if let unaffected = mergeWithoutReplay(transaction, by: connection, onto: head) {
            merged = unaffected.root
            replay = unaffected
        } else {
            guard let replayed = self.replay(transaction, onto: head.root, for: connection) else {
                blameConflict(transaction, of: connection)
                return .failure(.EAGAIN)
            }
            replay = replayed
        }
        if replay.root === head.root { return .ok }
        if wouldStarveProtected(replay.root, ending: transaction) { return .failure(.EAGAIN) }
        if merged == nil {
            merged = try? ThreeWayMerge.merge(base: transaction.base.root, ours: head.root,
                                              theirs: transaction.workspace.root, generations: history.generations)
        }
        let commit: Commit
        if let merged, merged === replay.root || Tree.equal(merged, replay.root) {
            var branchMessage = Server.domainLabel(author)
            branchMessage.append(contentsOf: Payload.bytes(": transaction "))
            branchMessage.append(contentsOf: Payload.decimal(transaction.id))
            let branch = history.makeCommit(root: transaction.workspace.root, parents: [transaction.base],
                                            author: author, message: branchMessage, time: now)
            commit = history.makeCommit(root: replay.root, parents: [head, branch], author: author,
                                        message: message, time: now)
        } else {
            message.append(contentsOf: Payload.bytes(" (rebased)"))
            commit = history.makeCommit(root: replay.root, parents: [head], author: author, message: message, time: now)
        }
        history.advanceHead(to: commit)
        apply(replay)
        return .ok
    }

    /// The result of committing a privileged transaction without replaying it, when nothing its
    /// log can observe changed since its base: the three-way merge of the branch into `head`,
    /// with the branch's watch triggers and ownership changes. nil when the replay is needed:
    /// an unprivileged caller (its quotas count nodes anywhere), a SET_PERMS in the log (it asks
    /// whether the new owner's domain exists), a logged path that changed, or a merge conflict.
    func mergeWithoutReplay(_ transaction: Transaction, by connection: Connection, onto head: Commit) -> Workspace? {
        guard connection.caller.privileged,
              Server.logUnaffected(transaction.log, base: transaction.base.root, head: head.root),
              let merged = try? ThreeWayMerge.merge(base: transaction.base.root, ours: head.root,
                                                    theirs: transaction.workspace.root,
                                                    generations: history.generations) else { return nil }
        var result = transaction.workspace
        result.root = merged
        #if DEBUG
        // Tests run debug builds: every commit that skips the replay is checked against it.
        let replayedBefore = counters.transactionRequestsReplayed
        let check = replay(transaction, onto: head.root, for: connection)
        counters.transactionRequestsReplayed = replayedBefore
        precondition(check.map { Tree.equal($0.root, merged) } == true, "merge without replay differs from the replay")
        // The same events: the branch keeps one trigger per node and visibility (as a
        // fast-forward fires them), a replay may repeat one for a node written twice.
        func covers(_ a: [WatchTrigger], _ b: [WatchTrigger]) -> Bool {
            a.allSatisfy { x in b.contains { $0.path == x.path && $0.visibleThrough == x.visibleThrough
                                             && ($0.removedSubtree == nil) == (x.removedSubtree == nil) } }
        }
        precondition(covers(check!.triggers, result.triggers) && covers(result.triggers, check!.triggers),
                     "merge without replay fires other watches than the replay")
        precondition(check!.ownedNodesDelta.filter { $0.value != 0 } == result.ownedNodesDelta.filter { $0.value != 0 }
                     && check!.ownedBytesDelta.filter { $0.value != 0 } == result.ownedBytesDelta.filter { $0.value != 0 },
                     "merge without replay accounts other node ownership than the replay")
        #endif
        counters.transactionsMergedWithoutReplay += 1
        return result
    }

    /// Whether no logged request of a privileged transaction can tell `head` from `base`: for
    /// each logged path, the node there is the same object in both trees (so is everything
    /// below it) or absent from both, and every ancestor on the way has the same value and
    /// permissions; and no request is a SET_PERMS. Costs a walk of each logged path, however
    /// many commits came in between.
    static func logUnaffected(_ log: TransactionLog, base: Node, head: Node) -> Bool {
        if base === head { return true }
        entries: for entry in log.entries {
            if case .setPerms = entry.operation { return false }
            var old: Node? = base
            var new: Node? = head
            var remaining = entry.operation.path.components[...]
            while true {
                guard let before = old, let after = new else {
                    if old == nil && new == nil { continue entries }
                    return false
                }
                if before === after { continue entries }
                guard let component = remaining.first else { return false }
                if before.compactValue != after.compactValue || before.permissions != after.permissions { return false }
                remaining = remaining.dropFirst()
                old = before.child(component)
                new = after.child(component)
            }
        }
        return true
    }
}
