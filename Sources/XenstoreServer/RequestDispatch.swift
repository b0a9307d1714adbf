// Request dispatch: a decoded message to its operation, with C xenstored's argument rules and error answers, and its reply.

import XenstoreStore
import XenstoreWire

extension Server {
    /// Requests only privileged callers may make.
    static func isPrivilegedOnly(_ type: MessageType) -> Bool {
        switch type {
        case .control, .introduce, .release, .isDomainIntroduced, .resume, .setTarget, .setFeature,
             .getQuota, .setQuota:
            return true
        default:
            return false
        }
    }

    func reply(_ connection: Connection, to message: Message, _ outcome: Outcome) {
        let type: UInt32
        let payload: [UInt8]
        switch outcome {
        case .success(let bytes) where bytes.count <= Limits.payloadMax:
            type = message.header.type
            payload = bytes
        case .success:
            type = MessageType.error.rawValue
            payload = XenstoreError.E2BIG.payload
        case .failure(let error):
            type = MessageType.error.rawValue
            payload = error.payload
        }
        let out = Message(type: type, requestID: message.header.requestID,
                          transactionID: message.header.transactionID, payload: payload)
        enqueue(out.encoded, reply: true, on: connection)
    }

    func handle(_ message: Message, on connection: Connection) {
        guard let type = message.knownType else {
            reply(connection, to: message, .failure(.ENOSYS))
            return
        }
        if Server.isPrivilegedOnly(type) && !connection.caller.privileged {
            reply(connection, to: message, .failure(.EACCES))
            return
        }
        if storageState != .available, Server.growsStore(type, message), !storageState.allowsGrowth(by: connection.caller) {
            reply(connection, to: message, .failure(.ENOSPC))
            return
        }
        var transaction: Transaction? = nil
        if type != .watch && type != .unwatch && message.header.transactionID != 0 {
            guard let found = connection.transactions[message.header.transactionID] else {
                if let aborted = connection.abortedTransactions.firstIndex(of: message.header.transactionID) {
                    // open when the store restarted: the client must retry the whole transaction
                    if type == .transactionEnd { connection.abortedTransactions.remove(at: aborted) }
                    reply(connection, to: message, .failure(.EAGAIN))
                } else {
                    reply(connection, to: message, .failure(.ENOENT))
                }
                return
            }
            transaction = found
        }
        deferredIntrospection = []
        let outcome = execute(type, message.payload, transaction: transaction, on: connection)
        let changed = deferredIntrospection ?? []
        deferredIntrospection = nil
        reply(connection, to: message, outcome)
        if type == .watch, case .success = outcome, let watch = connection.watches.last {
            // The initial event follows the acknowledgement.
            queueEvent(on: connection, path: watch.relative ? relativeEventPath(watch.path, connection) : watch.path,
                       token: watch.token)
        }
        // Changes of the virtual /tool/xenstored subtrees the request made, after its reply.
        for components in changed { fireIntrospection(components) }
    }

    /// Requests that can make the durable store grow: a mutation outside a transaction, or the
    /// commit of one (inside a transaction, changes stay in memory until its end).
    static func growsStore(_ type: MessageType, _ message: Message) -> Bool {
        switch type {
        case .write, .mkdir, .setPerms:
            return message.header.transactionID == 0
        case .transactionEnd:
            return message.payload.first == 0x54  // "T"
        default:
            return false
        }
    }

    /// The single argument of a one-argument request: exactly one NUL, at the end (C's `onearg`).
    static func oneArgument(_ payload: [UInt8]) -> [UInt8]? {
        let (strings, trailing) = Payload.strings(payload)
        return strings.count == 1 && trailing.isEmpty ? strings[0] : nil
    }

    /// Canonicalises a path argument. A malformed one-argument payload (nil) is ENOENT, the
    /// answer C xenstored 4.17 gives. The `path-max` quota applies to every caller in 4.17.
    func nodePath(_ raw: [UInt8]?, _ connection: Connection) -> Result<NodePath, XenstoreError> {
        guard let raw else { return .failure(.ENOENT) }
        let caller = connection.caller
        return PathRules.nodePath(raw, domid: caller.domid, pathQuota: quotas(for: caller).pathMax)
    }

    func execute(_ type: MessageType, _ payload: [UInt8], transaction: Transaction?,
                 on connection: Connection) -> Outcome {
        switch type {
        case .read, .directory, .getPerms, .mkdir, .rm:
            let path: NodePath
            switch nodePath(Server.oneArgument(payload), connection) {
            case .success(let p): path = p
            case .failure(let error): return .failure(error)
            }
            let operation: NodeOperation
            switch type {
            case .read: operation = .read(path)
            case .directory: operation = .directory(path)
            case .getPerms: operation = .getPerms(path)
            case .mkdir: operation = .mkdir(path)
            default: operation = .rm(path)
            }
            return run(operation, transaction: transaction, on: connection)
        case .directoryPart:
            let (strings, trailing) = Payload.strings(payload)
            guard strings.count == 2, trailing.isEmpty else { return .failure(.EINVAL) }
            switch nodePath(strings[0], connection) {
            case .success(let path):
                let offset = Int(min(Payload.parseLeadingDecimal(strings[1]), UInt64(Int32.max)))
                return run(.directoryPart(path, offset: offset), transaction: transaction, on: connection)
            case .failure(let error): return .failure(error)
            }
        case .write:
            guard let nul = payload.firstIndex(of: 0) else { return .failure(.EINVAL) }
            switch nodePath(Array(payload[..<nul]), connection) {
            case .success(let path):
                if let poison = configuration.testPoisonWrite, path.bytes == poison.path { poison.crash() }
                return run(.write(path, value: Array(payload[(nul + 1)...])), transaction: transaction, on: connection)
            case .failure(let error): return .failure(error)
            }
        case .setPerms:
            return setPermissions(payload, transaction: transaction, on: connection)
        case .watch:
            return watch(payload, on: connection)
        case .unwatch:
            return unwatch(payload, on: connection)
        case .resetWatches:
            removeAllWatches(of: connection)
            for open in connection.transactions.values { release(open, of: connection) }
            if !connection.transactions.isEmpty { introspectionChanged(connection: connection.id, "transaction") }
            connection.transactions.removeAll()
            connection.abortedTransactions.removeAll()
            return .ok
        case .transactionStart:
            if transaction != nil { return .failure(.EBUSY) }
            return startTransaction(on: connection)
        case .transactionEnd:
            guard let transaction else { return .failure(.ENOENT) }
            guard let argument = Server.oneArgument(payload), argument == [0x54] || argument == [0x46] else {
                return .failure(.EINVAL)
            }
            connection.transactions[transaction.id] = nil
            release(transaction, of: connection)
            introspectionChanged(connection: connection.id, "transaction")
            if argument == [0x46] { return .ok }
            let outcome = commit(transaction, by: connection)
            if case .failure(.EAGAIN) = outcome {
                connection.consecutiveConflicts += 1
            } else {
                connection.consecutiveConflicts = 0
                starvation.setCulprits([], of: connection.id)
            }
            return outcome
        case .getDomainPath:
            guard let argument = Server.oneArgument(payload) else { return .failure(.EINVAL) }
            let domid = UInt32(truncatingIfNeeded: Payload.parseLeadingDecimal(argument))
            return .success(PathRules.home(of: domid) + [0])
        case .introduce:
            return introduce(payload)
        case .release:
            return release(payload)
        case .isDomainIntroduced:
            // C parses the domid with atoi: a non-numeric argument means domain 0.
            guard let argument = Server.oneArgument(payload) else { return .failure(.EINVAL) }
            let domid = UInt32(truncatingIfNeeded: Payload.parseLeadingDecimal(argument))
            return .success([domains[domid]?.introduced == true ? 0x54 : 0x46, 0])
        case .resume:
            guard let domid = Server.domidArgument(payload) else { return .failure(.EINVAL) }
            guard domains[domid]?.introduced == true else { return .failure(.ENOENT) }
            domains[domid]!.shutDown = false
            introspectionChanged(domain: domid)
            return .ok
        case .setTarget:
            return setTarget(payload)
        case .getFeature:
            return getFeature(payload, on: connection)
        case .setFeature:
            return setFeature(payload)
        case .getQuota:
            return getQuota(payload)
        case .setQuota:
            return setQuota(payload)
        case .control:
            return control(payload, on: connection)
        case .watchEvent, .error, .restrict, .invalid:
            return .failure(.ENOSYS)
        }
    }

    static func domidArgument(_ payload: [UInt8]) -> UInt32? {
        guard let argument = oneArgument(payload), let value = Payload.parseDecimal(argument),
              value <= UInt64(UInt32.max) else { return nil }
        return UInt32(value)
    }

    func context(for connection: Connection) -> OperationContext {
        let quotas = quotas(for: connection.caller)
        let memory = MemoryBudget(callerHolds: domains.usage(of: connection.caller.domid), guestsHold: domains.guestBytes,
                                  quota: quotas.memory, guestLimit: configuration.guestMemoryLimit)
        return OperationContext(caller: connection.caller, quotas: quotas,
                                committedOwnedNodes: domains.ownedNodes, generations: history.generations, memory: memory,
                                domainExists: { [unowned(unsafe) self] in self.domainExists($0) }, counters: counters)
    }

    /// Runs a node operation: inside a transaction on its branch, else directly on the head
    /// as a one-operation commit.
    func run(_ operation: NodeOperation, transaction: Transaction?, on connection: Connection) -> Outcome {
        // The virtual /tool/xenstored subtrees: answered live, never logged or committed.
        if let answer = introspect(operation, caller: connection.caller) { return answer }
        let outcome = runStored(operation, transaction: transaction, on: connection)
        if operation.path == Introspection.root,
           let merged = introspectRoot(operation, caller: connection.caller, stored: outcome,
                                       in: transaction?.workspace.root ?? history.head.root) {
            return merged
        }
        return outcome
    }

    /// `run` on the stored tree.
    func runStored(_ operation: NodeOperation, transaction: Transaction?, on connection: Connection) -> Outcome {
        let context = context(for: connection)
        if let transaction {
            if !connection.caller.privileged {
                transaction.touched.insert(operation.path)
                if Quotas.exceeds(transaction.touched.count, context.quotas.transactionNodes) {
                    return .failure(.ENOSPC)
                }
            }
            return runInTransaction(operation, transaction, on: connection, context)
        }
        var workspace = Workspace(root: history.head.root)
        let outcome = NodeOperations.execute(operation, in: &workspace, context)
        // A mutation that changed nothing (MKDIR of an existing node, RM of a missing one) makes no commit.
        if case .success = outcome, operation.isMutation, workspace.root !== history.head.root {
            var message = Server.domainLabel(connection.caller.domid)
            message.append(contentsOf: Payload.bytes(": "))
            operation.verb.withUTF8Buffer { message.append(contentsOf: $0) }
            message.append(0x20)
            message.append(contentsOf: operation.path.bytes)
            history.commitOnHead(root: workspace.root, author: connection.caller.domid, message: message, time: now)
            apply(workspace)
        }
        return outcome
    }

    static func domainLabel(_ domid: UInt32) -> [UInt8] {
        Payload.bytes("Domain ") + Payload.decimal(domid)
    }

    /// Makes a committed workspace's accounting and watch events take effect.
    func apply(_ workspace: Workspace) {
        domains.applyOwnership(of: workspace)
        if configuration.reportCommits { effects.append(.committed(sequence: history.head.sequence)) }
        for trigger in workspace.triggers { fire(trigger) }
    }

    // MARK: - Permissions

    func setPermissions(_ payload: [UInt8], transaction: Transaction?, on connection: Connection) -> Outcome {
        let (strings, _) = Payload.strings(payload)
        guard strings.count >= 2 else { return .failure(.EINVAL) }
        let caller = connection.caller
        if !caller.privileged && Quotas.exceeds(strings.count - 1, quotas(for: caller).permissions) {
            return .failure(.ENOSPC)
        }
        var entries: [PermissionEntry] = []
        for text in strings.dropFirst() {
            guard let entry = PermissionEntry(encoded: text) else { return .failure(.EINVAL) }
            entries.append(entry)
        }
        let permissions = Permissions(entries)
        if PathRules.isSpecial(strings[0]) {
            guard let current = specialPermissions[strings[0]] else { return .failure(.ENOENT) }
            guard Rights.of(caller, on: current).isSuperset(of: [.write, .owner]) else { return .failure(.EACCES) }
            specialPermissions[strings[0]] = permissions
            return .ok
        }
        switch nodePath(strings[0], connection) {
        case .success(let path): return run(.setPerms(path, permissions), transaction: transaction, on: connection)
        case .failure(let error): return .failure(error)
        }
    }
}
