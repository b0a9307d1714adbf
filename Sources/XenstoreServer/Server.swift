// The sans-IO Xenstore server: bytes and events in; replies, watch events and effects out.

import XenstoreStore
import XenstoreWire

/// Something the shell around the server must do, or may want to know.
public enum ServerEffect: Equatable, Sendable {
    /// INTRODUCE: map the domain's store ring (`gfn`, or grant 1) and bind `eventChannel`.
    case connectDomain(domid: UInt32, gfn: UInt64, eventChannel: UInt32)
    /// RELEASE or domain death: unmap the domain's ring and unbind its event channel.
    case disconnectDomain(domid: UInt32)
    /// The connection broke the protocol (e.g. an oversized header) and must be closed.
    case closeConnection(ConnectionID)
    /// A commit became the new head (for persistent history backends).
    case committed(sequence: UInt64)
    /// A line worth logging.
    case log([UInt8])
}

/// Settings of a server instance.
public struct ServerConfiguration {
    /// Quotas applied to unprivileged domains that have no quotas of their own.
    public var quotas = Quotas()
    /// Commits kept with their parent links in memory.
    public var retainedCommits = Limits.defaultInMemoryHistory
    /// Estimated bytes of old node versions kept by the in-memory window (`History.retainedBytesLimit`).
    public var retainedHistoryBytes = Limits.defaultInMemoryHistoryBytes
    /// Hashing budget of one commit-id request in memory (`History.idHashBudget`); nil when a
    /// durable backend stores every commit (its chain must stay complete).
    public var idHashBudget: Int? = Limits.inMemoryIDHashBudget
    /// Bound on what all unprivileged domains hold together (`Limits.defaultGuestMemoryTotal`):
    /// past it a guest's growing request gets ENOMEM, a guest's further watch events are
    /// dropped, and a guest with unread replies is not read; dom0 is never limited by it, so
    /// the rest of the memory is dom0's reserve. 0: unlimited.
    public var guestMemoryLimit = Limits.defaultGuestMemoryTotal
    /// Whether to emit `.committed` effects.
    public var reportCommits = false
    /// Asks the hypervisor whether a domain exists, for domains the server has not met yet
    /// (libxl makes a new domain the owner of its nodes before INTRODUCE). Nil: only dom0,
    /// introduced and connected domains exist. A synchronous port, on purpose: the answer is
    /// needed in the middle of a SET_PERMS or WRITE naming an unknown domain and cannot be
    /// pushed in before it (the stub answers with one hypercall, the host with a file check).
    public var domainExists: ((UInt32) -> Bool)? = nil
    /// Extra lines for CONTROL `memreport` from the shell (e.g. the stub domain's heap use). A
    /// synchronous port: it reads counters only, when dom0 asks for the report.
    public var memoryReport: (() -> [UInt8])? = nil

    /// The defaults of C xenstored 4.17.
    public init() {}
}

/// How much room the durable store has left, as the shell last measured it. Requests that would
/// grow the store (WRITE, MKDIR, SET_PERMS outside transactions, committing TRANSACTION_END) are
/// refused with ENOSPC before anything is committed when the caller may not grow it; reads and
/// removals always work.
public enum StorageState: Equatable, Sendable {
    /// Everybody may grow the store.
    case available
    /// Only privileged callers (dom0) may grow it: the rest is dom0's reserve, so guests
    /// cannot push dom0 into ENOSPC.
    case reservedForDom0
    /// Nobody may grow it until removals (or the operator) make room.
    case full

    /// Whether a request from `caller` that grows the store may go ahead.
    public func allowsGrowth(by caller: Caller) -> Bool {
        switch self {
        case .available: return true
        case .reservedForDom0: return caller.privileged
        case .full: return false
        }
    }
}

/// The Xenstore server state machine. It performs no I/O: the shell feeds it bytes with
/// `receive`, writes out what `takeOutput` returns, and carries out `takeEffects`.
public final class Server {
    /// The versioned store: every change is a commit.
    public let history: History
    /// The configuration in force (quotas can be changed with SET_QUOTA).
    public private(set) var configuration: ServerConfiguration
    var connections: [ConnectionID: Connection] = [:]
    var connectionOrder: [ConnectionID] = []
    /// Known domains, their ownership counts and the bytes their transactions hold.
    var domains = DomainTable()
    var specialPermissions: [[UInt8]: Permissions] = [:]
    var effects: [ServerEffect] = []
    var nextConnection: UInt32 = 1
    var nextTransaction: UInt32 = 1
    /// The starvation guard: the protected transaction, the guests it holds back, its clock
    /// (see `protectIfStarving`, `blameConflict`, `isThrottled`).
    var starvation = StarvationGuard()
    var now: Int64
    /// Room left in the durable store. The shell sets it after opening the store, after every
    /// durable batch, and whenever it re-measures (a file system can also gain room from outside).
    public var storageState: StorageState = .available
    /// Work done so far, counted (see `WorkCounters`).
    public let counters = WorkCounters()
    /// Loads a commit that is not held in memory (from a persistent history); nil if unknown.
    public var revisionLoader: ((ObjectID) -> Commit?)? = nil

    /// Features this server can offer a domain (GET_FEATURE): watch depth.
    public static let supportedFeatures: UInt32 = 4

    /// Special watch names.
    static let introduceDomain = Payload.bytes("@introduceDomain")
    static let releaseDomain = Payload.bytes("@releaseDomain")

    /// Creates a server with the initial tree of C xenstored (`/`, `/tool`, `/tool/xenstored`,
    /// plus `/local` and `/local/domain`), dom0 introduced, at `time` (seconds since the epoch).
    public convenience init(configuration: ServerConfiguration = ServerConfiguration(), time: Int64) {
        let generations = GenerationCounter()
        let perms = Permissions.ownedBy(0)
        func node(_ children: [Child]) -> Node { Node(value: [], permissions: perms, children: children, generation: generations.take()) }
        let tool = node([Child(name: Payload.bytes("xenstored"), node: node([]))])
        let local = node([Child(name: Payload.bytes("domain"), node: node([]))])
        let root = node([Child(name: Payload.bytes("local"), node: local), Child(name: Payload.bytes("tool"), node: tool)])
        let history = History(root: root, author: 0, message: Payload.bytes("Domain 0: initial store"), time: time,
                              generations: generations, retainedCommits: configuration.retainedCommits)
        self.init(configuration: configuration, history: history, time: time)
    }

    /// Creates a server continuing an existing history (e.g. loaded from a git database):
    /// the store is the history's head; node ownership is recounted from it.
    public init(configuration: ServerConfiguration = ServerConfiguration(), history: History, time: Int64) {
        self.configuration = configuration
        self.now = time
        self.history = history
        starvation.observe(wallTime: time)
        history.idHashBudget = configuration.idHashBudget
        history.retainedBytesLimit = configuration.retainedHistoryBytes
        let perms = Permissions.ownedBy(0)
        domains.recountOwnership(from: history.head.root)
        domains[0] = DomainRecord(introduced: true)
        specialPermissions[Server.introduceDomain] = perms
        specialPermissions[Server.releaseDomain] = perms
    }

    // MARK: - Connections

    /// Opens a connection for a caller (a socket client, a test socket, or a domain ring).
    public func openConnection(caller: Caller) -> ConnectionID {
        let id = ConnectionID(raw: nextConnection)
        nextConnection += 1
        var identity = caller
        identity.target = domains[caller.domid]?.target
        connections[id] = Connection(id: id, caller: identity)
        connectionOrder.append(id)
        return id
    }

    /// Closes a connection, dropping its watches and open transactions.
    public func closeConnection(_ id: ConnectionID) {
        starvation.forget(id)
        if let connection = connections[id] {
            for transaction in connection.transactions.values { release(transaction, of: connection) }
            setWatches([], of: connection)
            domains.hold(-connection.output.byteCount, in: .output, by: connection.caller.domid)
        }
        connections[id] = nil
        if let index = connectionOrder.firstIndex(of: id) { connectionOrder.remove(at: index) }
    }

    /// Feeds bytes received on a connection; complete requests are executed at once. Call it
    /// for every read of the round, before `takeEffects`; `time` is the wall clock (commit
    /// timestamps; the starvation guard derives a monotonic clock from it).
    public func receive<C: Collection>(_ bytes: C, on id: ConnectionID, time: Int64) where C.Element == UInt8 {
        guard let connection = connections[id], !connection.isBroken else { return }
        observe(time)
        var messages: [Message] = []
        var framingFailed = false
        do {
            try connection.decoder.feed(bytes, into: &messages)
        } catch {
            framingFailed = true
        }
        for message in messages {
            handle(message, on: connection)
        }
        if framingFailed {
            // Like C xenstored: a client announcing more than 4096 bytes is disconnected.
            connection.isBroken = true
            effects.append(.log(Payload.bytes("closing connection: payload length over 4096")))
            effects.append(.closeConnection(id))
        }
    }

    /// Whether output is waiting for a connection: ask it when deciding whether to poll the
    /// connection for writing (after the round's batch is durable).
    public func hasOutput(_ id: ConnectionID) -> Bool {
        !(connections[id]?.output.isEmpty ?? true)
    }

    /// The base commits of every open transaction (a fixed-size store must not squash them away
    /// while the transactions may still merge against them).
    public var openTransactionBases: [Commit] {
        var bases: [Commit] = []
        for id in connectionOrder {
            guard let connection = connections[id] else { continue }
            for transaction in connection.transactions.values { bases.append(transaction.base) }
        }
        return bases
    }

    /// Bytes of output waiting for a connection.
    public func outputByteCount(_ id: ConnectionID) -> Int {
        connections[id]?.output.byteCount ?? 0
    }

    /// Whether the shell should read more requests from a connection (back-pressure on a
    /// client that does not read its replies; throttled guests). Ask it before every read:
    /// when false, leave the bytes in the socket or ring.
    public func wantsInput(_ id: ConnectionID) -> Bool {
        guard let connection = connections[id] else { return false }
        if isThrottled(connection) { return false }
        // The `outstanding` quota: an unprivileged client with that many replies unread is
        // not read further (as C xenstored stops reading a domain over its quota).
        if !connection.caller.privileged,
           connection.output.replyCount >= quotas(for: connection.caller).outstanding { return false }
        // With no room left under the guests' memory bound for one more message, a guest is
        // read only once its replies were taken.
        if !connection.caller.privileged, connection.output.replyCount > 0,
           guestsOverMemoryLimit(adding: Limits.headerSize + Limits.payloadMax) {
            return false
        }
        return !connection.isBroken && connection.output.count < Limits.maxQueuedRepliesBeforeBackpressure
    }

    /// Conflict-based rate limiting (XSA-206): an unprivileged domain blamed for the EAGAINs of
    /// a starving privileged connection is not read while that connection's protected
    /// transaction is open, so it cannot invalidate it again; its requests wait in its ring or
    /// socket. The throttle ends with the protection: when the transaction ends, its connection
    /// closes, or `Limits.starvationProtectionSeconds` after it began (noticed at the next request).
    func isThrottled(_ connection: Connection) -> Bool {
        guard !connection.caller.privileged, starvation.isProtecting,
              let (owner, _) = activeProtection() else { return false }
        return starvation.culprits(of: owner.id).contains(connection.caller.domid)
    }

    /// Whether the shell should read `id` now (`wantsInput`), and if not because of conflict
    /// rate limiting rather than output back-pressure.
    public func isRateLimited(_ id: ConnectionID) -> Bool {
        guard let connection = connections[id] else { return false }
        return isThrottled(connection)
    }

    /// Removes and returns up to `maxBytes` of output for a connection. Call it only after the
    /// round's effects were carried out and its commits made durable: the output may report them.
    public func takeOutput(_ id: ConnectionID, maxBytes: Int = Int.max) -> [UInt8] {
        guard let connection = connections[id] else { return [] }
        let taken = connection.output.take(maxBytes: maxBytes)
        domains.hold(-taken.count, in: .output, by: connection.caller.domid)
        return taken
    }

    /// Queues an encoded message for a connection, accounting it to the connection's domain.
    func enqueue(_ encoded: [UInt8], reply: Bool, on connection: Connection) {
        connection.output.append(encoded, reply: reply)
        domains.hold(encoded.count, in: .output, by: connection.caller.domid)
    }

    /// Replaces a connection's watches, accounting their bytes to its domain.
    func setWatches(_ watches: [Watch], of connection: Connection) {
        let before = Server.watchBytes(connection.watches)
        connection.watches = watches
        domains.hold(Server.watchBytes(watches) - before, in: .watches, by: connection.caller.domid)
    }

    /// Accounted bytes of watches: path, token and `Limits.watchMemoryOverhead` each.
    static func watchBytes(_ watches: [Watch]) -> Int {
        var total = 0
        for watch in watches { total += Limits.watchMemoryOverhead + watch.path.count + watch.token.count }
        return total
    }

    /// Whether all guests together would hold more than `guestMemoryLimit` with `bytes` more.
    func guestsOverMemoryLimit(adding bytes: Int) -> Bool {
        Quotas.exceeds(domains.guestBytes + bytes, configuration.guestMemoryLimit)
    }

    /// Removes and returns the effects produced so far. Call it once per round after every
    /// input was fed, carry them out in order, then make the round durable (`.committed`:
    /// `persist(to:state:)`) before taking any output.
    public func takeEffects() -> [ServerEffect] {
        let taken = effects
        effects.removeAll()
        return taken
    }

    /// Watch events dropped for a connection because its output queue was full.
    public func droppedEvents(_ id: ConnectionID) -> Int { connections[id]?.droppedEvents ?? 0 }

    // MARK: - Domains (events from the hypervisor side)

    /// The domain shut down (poweroff, crash, suspend) but still exists: fire `@releaseDomain`
    /// once, as C xenstored does, so the toolstack notices and destroys it.
    public func domainShutDown(_ domid: UInt32, time: Int64) {
        observe(time)
        guard domid != 0, var record = domains[domid], !record.shutDown else { return }
        record.shutDown = true
        domains[domid] = record
        fireSpecial(Server.releaseDomain, domid: domid)
    }

    /// The domain is dying or gone: fire `@releaseDomain` and forget it.
    public func domainDied(_ domid: UInt32, time: Int64) {
        observe(time)
        guard domid != 0, domains[domid] != nil else { return }
        forgetDomain(domid)
    }

    /// Forgets an introduced domain; the shell closes its ring connection on `.disconnectDomain`.
    func forgetDomain(_ domid: UInt32) {
        domains[domid] = nil
        effects.append(.disconnectDomain(domid: domid))
        removeTraces(of: domid)
        fireSpecial(Server.releaseDomain, domid: domid)
    }

    /// Whether a domain is known (dom0, introduced, or connected).
    func domainExists(_ domid: UInt32) -> Bool {
        if domains[domid] != nil { return true }
        for connection in connections.values where connection.caller.domid == domid { return true }
        return configuration.domainExists?(domid) ?? false
    }

    /// The quotas in force for a caller.
    func quotas(for caller: Caller) -> Quotas {
        domains.quotas(of: caller.domid, defaults: configuration.quotas)
    }

    // MARK: - Requests

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
        let outcome = execute(type, message.payload, transaction: transaction, on: connection)
        reply(connection, to: message, outcome)
        if type == .watch, case .success = outcome, let watch = connection.watches.last {
            // The initial event follows the acknowledgement.
            queueEvent(on: connection, path: watch.relative ? relativeEventPath(watch.path, connection) : watch.path,
                       token: watch.token)
        }
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
            setWatches([], of: connection)
            for open in connection.transactions.values { release(open, of: connection) }
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

    // MARK: - Transactions

    func startTransaction(on connection: Connection) -> Outcome {
        let caller = connection.caller
        if !caller.privileged && Quotas.exceeds(connection.transactions.count + 1, quotas(for: caller).transactions) {
            return .failure(.ENOSPC)
        }
        var id = nextTransaction
        while id == 0 || connection.transactions[id] != nil || connection.abortedTransactions.contains(id) { id &+= 1 }
        nextTransaction = id &+ 1
        connection.transactions[id] = Transaction(id: id, base: history.head)
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
    /// replay, else as a rebased commit on the head.
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
        guard let replay = replay(transaction, onto: head.root, for: connection) else {
            blameConflict(transaction, of: connection)
            return .failure(.EAGAIN)
        }
        if replay.root === head.root { return .ok }
        if wouldStarveProtected(replay.root, ending: transaction) { return .failure(.EAGAIN) }
        let merged = try? ThreeWayMerge.merge(base: transaction.base.root, ours: head.root,
                                              theirs: transaction.workspace.root, generations: history.generations)
        let commit: Commit
        if let merged, Tree.equal(merged, replay.root) {
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

    // MARK: - Domains (requests)

    func introduce(_ payload: [UInt8]) -> Outcome {
        let (strings, _) = Payload.strings(payload)
        guard strings.count >= 3, let domid = Payload.parseDecimal(strings[0]), domid <= UInt64(UInt16.max),
              let gfn = Payload.parseDecimal(strings[1]) else { return .failure(.EINVAL) }
        let port = Payload.parseLeadingDecimal(strings[2])
        guard port > 0, port <= UInt64(UInt32.max) else { return .failure(.EINVAL) }
        let id = UInt32(domid)
        var record = domains[id] ?? DomainRecord()
        let isNew = !record.introduced
        record.introduced = true
        record.gfn = gfn
        record.eventChannel = UInt32(port)
        domains[id] = record
        if isNew {
            effects.append(.connectDomain(domid: id, gfn: gfn, eventChannel: UInt32(port)))
            fireSpecial(Server.introduceDomain, domid: id)
        }
        return .ok
    }

    func release(_ payload: [UInt8]) -> Outcome {
        guard let domid = Server.domidArgument(payload) else { return .failure(.EINVAL) }
        guard domid != 0 else { return .failure(.EINVAL) }
        guard domains[domid]?.introduced == true else { return .failure(.ENOENT) }
        forgetDomain(domid)
        return .ok
    }

    func setTarget(_ payload: [UInt8]) -> Outcome {
        let (strings, _) = Payload.strings(payload)
        guard strings.count == 2, let domid = Payload.parseDecimal(strings[0]), domid <= UInt64(UInt32.max),
              let target = Payload.parseDecimal(strings[1]), target <= UInt64(UInt32.max) else {
            return .failure(.EINVAL)
        }
        let id = UInt32(domid)
        guard domainExists(id), domainExists(UInt32(target)) else { return .failure(.ENOENT) }
        domains[id, default: DomainRecord()].target = UInt32(target)
        for connection in connections.values where connection.caller.domid == id {
            connection.caller.target = UInt32(target)
        }
        return .ok
    }

    func getFeature(_ payload: [UInt8], on connection: Connection) -> Outcome {
        let (strings, _) = Payload.strings(payload)
        if strings.isEmpty {
            let features = domains[connection.caller.domid]?.features ?? Server.supportedFeatures
            return .success(Payload.decimal(features == 0 ? Server.supportedFeatures : features) + [0])
        }
        guard connection.caller.privileged else { return .failure(.EACCES) }
        guard strings.count == 1, let domid = Payload.parseDecimal(strings[0]), domid <= UInt64(UInt32.max) else {
            return .failure(.EINVAL)
        }
        guard let record = domains[UInt32(domid)] else { return .failure(.ENOENT) }
        return .success(Payload.decimal(record.features) + [0])
    }

    func setFeature(_ payload: [UInt8]) -> Outcome {
        let (strings, _) = Payload.strings(payload)
        guard strings.count == 2, let domid = Payload.parseDecimal(strings[0]), domid <= UInt64(UInt32.max),
              let value = Payload.parseDecimal(strings[1]), value <= UInt64(UInt32.max) else {
            return .failure(.EINVAL)
        }
        guard UInt32(value) & ~Server.supportedFeatures == 0 else { return .failure(.EINVAL) }
        guard domains[UInt32(domid)] != nil else { return .failure(.ENOENT) }
        domains[UInt32(domid)]!.features = UInt32(value)
        return .ok
    }

    func getQuota(_ payload: [UInt8]) -> Outcome {
        let (strings, _) = Payload.strings(payload)
        switch strings.count {
        case 0:
            var out: [UInt8] = []
            for name in Quotas.names {
                if !out.isEmpty { out.append(0x20) }
                out.append(contentsOf: name)
            }
            return .success(out + [0])
        case 1:
            guard let value = configuration.quotas.value(named: strings[0]) else { return .failure(.EINVAL) }
            return .success(Payload.decimal(value) + [0])
        case 2:
            guard let domid = Payload.parseDecimal(strings[0]), domid <= UInt64(UInt32.max) else { return .failure(.EINVAL) }
            guard let record = domains[UInt32(domid)] else { return .failure(.ENOENT) }
            guard let value = (record.quotas ?? configuration.quotas).value(named: strings[1]) else {
                return .failure(.EINVAL)
            }
            return .success(Payload.decimal(value) + [0])
        default:
            return .failure(.EINVAL)
        }
    }

    func setQuota(_ payload: [UInt8]) -> Outcome {
        let (strings, _) = Payload.strings(payload)
        guard strings.count == 2 || strings.count == 3,
              let value = Payload.parseDecimal(strings[strings.count - 1]), value <= UInt64(Int32.max) else {
            return .failure(.EINVAL)
        }
        let name = strings[strings.count - 2]
        if strings.count == 2 {
            return configuration.quotas.set(named: name, to: Int(value)) ? .ok : .failure(.EINVAL)
        }
        guard let domid = Payload.parseDecimal(strings[0]), domid <= UInt64(UInt32.max) else { return .failure(.EINVAL) }
        guard var record = domains[UInt32(domid)] else { return .failure(.ENOENT) }
        var quotas = record.quotas ?? configuration.quotas
        guard quotas.set(named: name, to: Int(value)) else { return .failure(.EINVAL) }
        record.quotas = quotas
        domains[UInt32(domid)] = record
        return .ok
    }
}
