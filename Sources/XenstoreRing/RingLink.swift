// Serves one domain's ring: moves request bytes into the sans-IO Server and its replies back, handles reconnection and bad rings.

import XenstoreServer
import XenstoreWire

/// What one serving turn did, so the shell knows whether to notify the domain's event channel.
public struct RingActivity: Equatable, Sendable {
    /// Request bytes were consumed (the domain may be waiting for space).
    public var consumedRequests = false
    /// Request bytes were read and given to the server, whether or not their space was handed
    /// back yet (with deferred release it is not: `consumedRequests` stays false).
    public var readRequests = false
    /// Reply bytes were written.
    public var wroteReplies = false
    /// A reconnection was completed.
    public var reconnected = false
    /// The ring was found corrupt during this turn and is no longer served.
    public var failure: RingError? = nil

    /// Creates an empty record.
    public init() {}

    /// Whether the domain must be notified.
    public var shouldNotify: Bool { consumedRequests || wroteReplies || reconnected || failure != nil }

    /// Adds what a later part of the same turn did (e.g. `flushOutput` after `serveInput`).
    public mutating func merge(_ later: RingActivity) {
        consumedRequests = consumedRequests || later.consumedRequests
        readRequests = readRequests || later.readRequests
        wroteReplies = wroteReplies || later.wroteReplies
        reconnected = reconnected || later.reconnected
        if failure == nil { failure = later.failure }
    }
}

/// One domain's ring and the server connection behind it. Shared by every shell that serves
/// rings: the stub domain (mapped grant), dom0 on real Xen (foreign mapping), and the host
/// emulation (shared-memory file). The shell calls `serve` whenever the domain's event channel
/// fires, or while `hasPendingWork` says more can be done, and notifies when asked to.
public final class RingLink<Memory: RingMemory> {
    /// The store's end of the shared page.
    public let endpoint: RingEndpoint<Memory>
    /// Who the domain is.
    public let caller: Caller
    /// The server connection serving this ring now (a reconnection replaces it).
    public private(set) var connection: ConnectionID
    /// Set when the ring's indexes were corrupt or the server dropped the connection (oversized
    /// packet); the ring is not read until the domain asks for a reconnection.
    public private(set) var isStalled = false
    /// With deferred release: request bytes up to here were given to the server, but their ring
    /// space is handed back only by `releaseConsumedSpace` (after the shell made them durable).
    private var cursor: UInt32?
    private var scratch: [UInt8] = []

    /// Connects a domain's ring to `server` (a new connection) and advertises the store's features.
    /// With `deferRelease`, consumed request space is handed back only by `releaseConsumedSpace`.
    public init(server: Server, memory: Memory, caller: Caller, deferRelease: Bool = false) {
        self.endpoint = RingEndpoint(memory: memory)
        self.caller = caller
        self.connection = server.openConnection(caller: caller, transport: RingLink.transportLabel(caller))
        if deferRelease { cursor = endpoint.storeIndexes.requestConsumer }
        endpoint.advertise()
    }

    /// How a ring connection is shown under `/tool/xenstored/connection/<id>/transport`.
    static func transportLabel(_ caller: Caller) -> [UInt8] {
        Payload.bytes("ring of domain ") + Payload.decimal(caller.domid)
    }

    /// Re-attaches a ring after a restart: `state` was saved in the same durable batch as the
    /// server state `server` was restored from. Request bytes the saved server had already read
    /// are skipped (their space is handed back); reply bytes written after the save are dropped
    /// from the front of the restored output, so the domain sees every byte exactly once. If the
    /// page does not fit the saved positions, the ring is stalled with XENSTORE_ERROR_COMM and
    /// the domain must reconnect.
    public init(server: Server, memory: Memory, caller: Caller, resuming state: RingLinkState, deferRelease: Bool = false) {
        self.endpoint = RingEndpoint(memory: memory)
        self.caller = caller
        self.connection = state.connection
        server.describeTransport(state.connection, RingLink.transportLabel(caller))
        endpoint.advertise()
        if state.stalled {
            isStalled = true
            return
        }
        let (consumer, producer) = endpoint.storeIndexes
        let requestProducer = memory.load32(at: RingLayout.requestProducer)
        let written = producer &- state.responseProducer
        let readAhead = state.requestCursor &- consumer
        let queued = server.outputByteCount(state.connection)
        guard requestProducer &- consumer <= UInt32(RingLayout.ringSize), readAhead <= requestProducer &- consumer,
              written <= UInt32(RingLayout.ringSize), Int(written) <= queued else {
            stall(server, reason: .communication)
            return
        }
        _ = server.takeOutput(state.connection, maxBytes: Int(written))
        if deferRelease {
            cursor = state.requestCursor
        } else if readAhead > 0 {
            endpoint.releaseRequests(through: state.requestCursor)
        }
    }

    /// What a restarted store needs to resume this ring (see `init(server:memory:caller:resuming:)`).
    /// Take it after the turn's input was read and before its replies are written.
    public func state(domid: UInt32) -> RingLinkState {
        let (consumer, producer) = endpoint.storeIndexes
        return RingLinkState(domid: domid, connection: connection, stalled: isStalled,
                             requestCursor: cursor ?? consumer, responseProducer: producer)
    }

    /// With deferred release: hands the space of every request byte read so far back to the
    /// domain; returns whether anything moved (then notify the domain).
    public func releaseConsumedSpace() -> Bool {
        guard let cursor, !isStalled else { return false }
        if cursor == endpoint.storeIndexes.requestConsumer { return false }
        endpoint.releaseRequests(through: cursor)
        return true
    }

    /// One serving turn: a pending reconnection first, then up to `Limits.ringBytesPerTurn`
    /// request bytes (while the server wants input), then as many replies as fit.
    public func serve(_ server: Server, time: Int64) -> RingActivity {
        var activity = serveInput(server, time: time)
        if activity.reconnected || activity.failure != nil { return activity }
        activity.merge(flushOutput(server))
        return activity
    }

    /// The input half of a turn: a pending reconnection, then up to `Limits.ringBytesPerTurn`
    /// request bytes while the server wants input. Replies stay queued for `flushOutput`.
    public func serveInput(_ server: Server, time: Int64) -> RingActivity {
        var activity = RingActivity()
        if endpoint.reconnectRequested {
            // Discard everything of the old connection (watches, transactions, partial packets,
            // queued replies) and start over on zeroed indexes.
            server.closeConnection(connection)
            connection = server.openConnection(caller: caller, transport: RingLink.transportLabel(caller))
            endpoint.completeReconnection()
            if cursor != nil { cursor = 0 }
            isStalled = false
            activity.reconnected = true
            return activity
        }
        guard !isStalled else { return activity }
        do {
            var budget = Limits.ringBytesPerTurn
            while budget > 0 && server.wantsInput(connection) {
                scratch.removeAll(keepingCapacity: true)
                let count: Int
                if let start = cursor {
                    let end = try endpoint.readRequests(from: start, upTo: min(budget, RingLayout.ringSize), appendingTo: &scratch)
                    cursor = end
                    count = Int(end &- start)
                } else {
                    count = try endpoint.readRequests(upTo: min(budget, RingLayout.ringSize), appendingTo: &scratch)
                }
                if count == 0 { break }
                budget -= count
                activity.readRequests = true
                activity.consumedRequests = cursor == nil
                server.receive(scratch, on: connection, time: time)
            }
        } catch {
            activity.failure = error
            stall(server, reason: .ringIndex)
        }
        return activity
    }

    /// The output half of a turn: as many queued replies as the reply ring has room for.
    public func flushOutput(_ server: Server) -> RingActivity {
        var activity = RingActivity()
        guard !isStalled else { return activity }
        do {
            while server.hasOutput(connection) {
                let space = try endpoint.responseSpace()
                if space == 0 { break }
                let bytes = server.takeOutput(connection, maxBytes: space)
                let written = try endpoint.writeResponses(bytes[...])
                if written > 0 { activity.wroteReplies = true }
                if written < bytes.count { break }  // cannot happen: space was checked and only we produce
            }
        } catch {
            activity.failure = error
            stall(server, reason: .ringIndex)
        }
        return activity
    }

    /// Whether another turn right away would make progress (requests waiting that the server
    /// will take, or replies waiting with room in the ring).
    public func hasPendingWork(_ server: Server) -> Bool {
        guard !isStalled else { return endpoint.reconnectRequested }
        if endpoint.reconnectRequested { return true }
        if server.wantsInput(connection) {
            if let cursor {
                do {
                    let pending = try endpoint.pendingRequestBytes()
                    if Int(cursor &- endpoint.storeIndexes.requestConsumer) < pending { return true }
                } catch { return true }
            } else if endpoint.hasRequests {
                return true
            }
        }
        if server.hasOutput(connection) {
            do { return try endpoint.responseSpace() > 0 } catch { return true }
        }
        return false
    }

    /// Stops serving the ring: the server connection is closed (watches and transactions
    /// dropped, as C xenstored's `ignore_connection` does) and the domain is told why in the
    /// `error` word. Called for corrupt indexes and when the server closes the connection
    /// (`ServerEffect.closeConnection`, e.g. an oversized packet).
    public func stall(_ server: Server, reason: RingErrorCode) {
        guard !isStalled else { return }
        isStalled = true
        server.closeConnection(connection)
        endpoint.report(reason)
    }

    /// Closes the server connection for good (the domain was released or died).
    public func close(_ server: Server) {
        server.closeConnection(connection)
        isStalled = true
    }
}
