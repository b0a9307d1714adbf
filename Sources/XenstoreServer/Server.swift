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
    /// Bytes of old node versions the window may keep for the commits of any one guest
    /// (`History.retainedBytesPerAuthorLimit`; default the `memory` quota's default).
    public var retainedHistoryBytesPerGuest = Limits.defaultMemoryPerDomain
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
    /// CONTROL `profile [start|stop]` from the shell: starts counting where the shell's time
    /// goes (the stub domain's phases of its event loop), reports the counts, or reports and
    /// stops. Nil (the host daemon): the command is refused with EINVAL, as an unknown one.
    public var profile: ((ProfileRequest) -> [UInt8])? = nil
    /// CONTROL `test-crash`, for tests of a restart in place (the stub booted with
    /// `--test-hooks`): asks the shell to crash at its next round with input, after this reply
    /// has left. Nil (the default): the command is refused with EACCES.
    public var testCrash: (() -> Void)? = nil
    /// For tests of crash loops (the stub with `--test-hooks`): a WRITE to `path` calls `crash`
    /// (which does not return) every time it is executed, as a request that crashes the server
    /// would. Nil (the default): no path is special.
    public var testPoisonWrite: (path: [UInt8], crash: () -> Void)? = nil

    /// The defaults of C xenstored 4.17.
    public init() {}

    /// What CONTROL `profile` asks of the shell's profiler.
    public enum ProfileRequest: Sendable {
        /// `profile start`: zero the counts and count from now on.
        case start
        /// `profile`: the counts since the start.
        case report
        /// `profile stop`: the counts, and stop counting.
        case stop
    }
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
    public internal(set) var configuration: ServerConfiguration
    var connections: [ConnectionID: Connection] = [:]
    /// The open connections in creation order (ids ascending): watch events and listings go in
    /// this order, and firing walks it without a lookup per connection.
    var connectionsInOrder: [Connection] = []
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
    /// The initial tree of a server started without a store (the boot branch's base), kept
    /// until a history recovered from a durable store is adopted (`adoptRecoveredHistory`); nil
    /// for a server built on a history, and after adoption.
    public internal(set) var bootBase: Node?
    /// The generation count of the virtual `/tool/xenstored` subtrees: moves whenever the names
    /// in them may change (`introspectionChanged`).
    var introspectionGeneration: UInt64 = 1
    /// Watches registered at or below `/tool/xenstored` (none: changes fire nothing).
    var introspectionWatchers = 0
    /// While a request runs, changes of the virtual subtrees wait here, so their events follow
    /// the request's reply (`handle`); nil outside requests (events are queued at once).
    var deferredIntrospection: [[[UInt8]]]? = nil

    /// Features this server can offer a domain (GET_FEATURE): watch depth.
    public static let supportedFeatures: UInt32 = 4

    /// Special watch names.
    static let introduceDomain = Payload.bytes("@introduceDomain")
    static let releaseDomain = Payload.bytes("@releaseDomain")

    /// Creates a server with the initial tree of C xenstored (`/`, `/tool`, `/tool/xenstored`,
    /// plus `/local` and `/local/domain`), dom0 introduced, at `time` (seconds since the epoch).
    public convenience init(configuration: ServerConfiguration = ServerConfiguration(), time: Int64) {
        let generations = GenerationCounter()
        let root = Server.initialTree(generations: generations)
        let history = History(root: root, author: 0, message: Payload.bytes("Domain 0: initial store"), time: time,
                              generations: generations, retainedCommits: configuration.retainedCommits)
        self.init(configuration: configuration, history: history, time: time)
        bootBase = root
    }

    /// The initial tree of `init(configuration:time:)`, its nodes numbered by `generations`: the
    /// base of every boot branch (`bootBase`).
    static func initialTree(generations: GenerationCounter) -> Node {
        let perms = Permissions.ownedBy(0)
        func node(_ children: [Child]) -> Node { Node(value: [], permissions: perms, children: children, generation: generations.take()) }
        let tool = node([Child(name: Payload.bytes("xenstored"), node: node([]))])
        let local = node([Child(name: Payload.bytes("domain"), node: node([]))])
        return node([Child(name: Payload.bytes("local"), node: local), Child(name: Payload.bytes("tool"), node: tool)])
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
        history.retainedBytesPerAuthorLimit = configuration.retainedHistoryBytesPerGuest
        let perms = Permissions.ownedBy(0)
        domains.recountOwnership(from: history.head.root)
        domains[0] = DomainRecord(introduced: true)
        specialPermissions[Server.introduceDomain] = perms
        specialPermissions[Server.releaseDomain] = perms
    }

    // MARK: - Connections

    /// Opens a connection for a caller (a socket client, a test socket, or a domain ring).
    /// `transport` says how it reaches the server, for `/tool/xenstored/connection/<id>/transport`
    /// (e.g. `socket /run/xenstored/socket`, `ring of domain 3`); without it (and for connections
    /// restored after a restart until `describeTransport`) that node says `socket` for dom0 and
    /// `ring` for other domains.
    public func openConnection(caller: Caller, transport: [UInt8]? = nil) -> ConnectionID {
        let id = ConnectionID(raw: nextConnection)
        nextConnection += 1
        var identity = caller
        identity.target = domains[caller.domid]?.target
        let connection = Connection(id: id, caller: identity)
        connection.transport = transport
        connections[id] = connection
        connectionsInOrder.append(connection)
        introspectionChanged(connection: id)
        return id
    }

    /// Says how an existing connection reaches the server (see `openConnection`): for
    /// connections restored after a restart, whose transport the saved state does not keep.
    public func describeTransport(_ id: ConnectionID, _ transport: [UInt8]) {
        connections[id]?.transport = transport
    }

    /// Closes a connection, dropping its watches and open transactions.
    public func closeConnection(_ id: ConnectionID) {
        starvation.forget(id)
        if let connection = connections[id] {
            for transaction in connection.transactions.values { release(transaction, of: connection) }
            removeAllWatches(of: connection, announce: false)
            domains.hold(-connection.output.byteCount, in: .output, by: connection.caller.domid)
        }
        connections[id] = nil
        if let index = connectionsInOrder.firstIndex(where: { $0.id == id }) { connectionsInOrder.remove(at: index) }
        introspectionChanged(connection: id)
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
        for connection in connectionsInOrder {
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
    /// a privileged connection is not read until that connection's next transaction commits
    /// (or closes, or `Limits.starvationProtectionSeconds` pass, noticed at the next input), so
    /// it cannot invalidate the retry; its requests wait in its ring or socket. Every dom0
    /// connection's retry is covered at once, not only the one protected transaction.
    func isThrottled(_ connection: Connection) -> Bool {
        !connection.caller.privileged && starvation.isBlamed(connection.caller.domid)
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
        introspectionChanged(domain: domid)
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
        introspectionChanged(domain: domid)
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
}
