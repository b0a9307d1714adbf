// Serves one domain's ring: moves request bytes into the sans-IO Server and its replies back, handles reconnection and bad rings.

import XenstoreServer
import XenstoreWire

/// What one serving turn did, so the shell knows whether to notify the domain's event channel.
public struct RingActivity: Equatable, Sendable {
    /// Request bytes were consumed (the domain may be waiting for space).
    public var consumedRequests = false
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
    private var scratch: [UInt8] = []

    /// Connects a domain's ring to `server` (a new connection) and advertises the store's features.
    public init(server: Server, memory: Memory, caller: Caller) {
        self.endpoint = RingEndpoint(memory: memory)
        self.caller = caller
        self.connection = server.openConnection(caller: caller)
        endpoint.advertise()
    }

    /// Re-attaches a ring whose connection already exists in `server` (a restarted store
    /// resuming its saved connections); the page keeps its indexes.
    public init(memory: Memory, caller: Caller, resuming connection: ConnectionID, stalled: Bool) {
        self.endpoint = RingEndpoint(memory: memory)
        self.caller = caller
        self.connection = connection
        self.isStalled = stalled
        endpoint.advertise()
    }

    /// One serving turn: a pending reconnection first, then up to `Limits.ringBytesPerTurn`
    /// request bytes (while the server wants input), then as many replies as fit.
    public func serve(_ server: Server, time: Int64) -> RingActivity {
        var activity = receive(server, time: time)
        if activity.reconnected || activity.failure != nil { return activity }
        transmit(server, into: &activity)
        return activity
    }

    /// The first half of a turn, for shells that make commits durable before any reply leaves
    /// (group commit): a pending reconnection, or up to `Limits.ringBytesPerTurn` request bytes.
    public func receive(_ server: Server, time: Int64) -> RingActivity {
        var activity = RingActivity()
        if endpoint.reconnectRequested {
            // Discard everything of the old connection (watches, transactions, partial packets,
            // queued replies) and start over on zeroed indexes.
            server.closeConnection(connection)
            connection = server.openConnection(caller: caller)
            endpoint.completeReconnection()
            isStalled = false
            activity.reconnected = true
            return activity
        }
        guard !isStalled else { return activity }
        do {
            var budget = Limits.ringBytesPerTurn
            while budget > 0 && server.wantsInput(connection) {
                scratch.removeAll(keepingCapacity: true)
                let count = try endpoint.readRequests(upTo: min(budget, RingLayout.ringSize), appendingTo: &scratch)
                if count == 0 { break }
                budget -= count
                activity.consumedRequests = true
                server.receive(scratch, on: connection, time: time)
            }
        } catch {
            activity.failure = error
            stall(server, reason: .ringIndex)
        }
        return activity
    }

    /// The second half of a turn: as many queued replies as the reply ring has room for.
    public func transmit(_ server: Server, into activity: inout RingActivity) {
        guard !isStalled else { return }
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
    }

    /// Whether another turn right away would make progress (requests waiting that the server
    /// will take, or replies waiting with room in the ring).
    public func hasPendingWork(_ server: Server) -> Bool {
        guard !isStalled else { return endpoint.reconnectRequested }
        if endpoint.reconnectRequested { return true }
        if endpoint.hasRequests && server.wantsInput(connection) { return true }
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
