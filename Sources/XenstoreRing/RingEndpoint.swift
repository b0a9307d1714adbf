// The store's side of one xenstore ring: validated index arithmetic, reading requests, writing replies, reconnection.

/// A ring whose indexes cannot be right: the producer is more than a ring's size ahead of the consumer.
public enum RingError: Error, Equatable, Sendable {
    /// `req_prod - req_cons` exceeds the ring size.
    case requestIndexes(consumer: UInt32, producer: UInt32)
    /// `rsp_prod - rsp_cons` exceeds the ring size.
    case responseIndexes(consumer: UInt32, producer: UInt32)
}

/// The store's end of a shared ring page. The domain owns `req_prod` and `rsp_cons`, the store
/// owns `req_cons` and `rsp_prod`; but the whole page is writable by the domain, so every index
/// is read once from the page and every distance is checked against the ring size before use
/// (XSA-38): a malicious index yields `RingError`, never an access outside the ring.
public struct RingEndpoint<Memory: RingMemory> {
    /// The shared page.
    public let memory: Memory

    /// Wraps a shared page.
    public init(memory: Memory) { self.memory = memory }

    /// Announces the store's features in `server_features` (done when a domain is connected).
    public func advertise(features: UInt32 = RingLayout.offeredFeatures) {
        memory.store32(features, at: RingLayout.serverFeatures)
    }

    /// Request bytes the domain has produced and the store not yet consumed.
    public func pendingRequestBytes() throws(RingError) -> Int {
        let consumer = memory.load32(at: RingLayout.requestConsumer)
        let producer = memory.load32(at: RingLayout.requestProducer)
        return try Self.distance(consumer: consumer, producer: producer, request: true)
    }

    /// Whether the domain has produced requests (true for corrupt indexes too: reading reports them).
    public var hasRequests: Bool {
        do { return try pendingRequestBytes() > 0 } catch { return true }
    }

    /// Moves up to `limit` request bytes from the ring to the end of `bytes` and hands the space
    /// back to the domain; returns the number of bytes moved.
    public func readRequests(upTo limit: Int, appendingTo bytes: inout [UInt8]) throws(RingError) -> Int {
        let consumer = memory.load32(at: RingLayout.requestConsumer)
        let end = try readRequests(from: consumer, upTo: limit, appendingTo: &bytes)
        if end != consumer { releaseRequests(through: end) }
        return Int(end &- consumer)
    }

    /// Copies up to `limit` request bytes starting at free-running index `cursor` (at or after
    /// `req_cons`) to the end of `bytes` without handing the space back; returns the index after
    /// the last byte copied. A store that must not lose requests across a crash reads this way
    /// and calls `releaseRequests(through:)` only once what it read is durable.
    public func readRequests(from cursor: UInt32, upTo limit: Int, appendingTo bytes: inout [UInt8]) throws(RingError) -> UInt32 {
        let consumer = memory.load32(at: RingLayout.requestConsumer)
        let producer = memory.load32(at: RingLayout.requestProducer)
        memory.readBarrier()  // the data must not be read before the producer index
        let available = try Self.distance(consumer: consumer, producer: producer, request: true)
        let alreadyRead = cursor &- consumer
        guard alreadyRead <= UInt32(available) else { throw .requestIndexes(consumer: consumer, producer: producer) }
        let count = min(available - Int(alreadyRead), max(limit, 0))
        guard count > 0 else { return cursor }
        return RingLayout.walk(count: count, from: cursor) { offset, chunk in
            memory.copyBytes(from: RingLayout.requestRing + offset, count: chunk, appendingTo: &bytes)
        }
    }

    /// Hands the request space up to free-running index `cursor` back to the domain (`req_cons`).
    public func releaseRequests(through cursor: UInt32) {
        memory.fullBarrier()  // finish reading the data before the space is handed back
        memory.store32(cursor, at: RingLayout.requestConsumer)
    }

    /// The current `req_cons` and `rsp_prod`, as a restarted store compares them with saved ones.
    public var storeIndexes: (requestConsumer: UInt32, responseProducer: UInt32) {
        (memory.load32(at: RingLayout.requestConsumer), memory.load32(at: RingLayout.responseProducer))
    }

    /// Free space in the reply ring.
    public func responseSpace() throws(RingError) -> Int {
        let consumer = memory.load32(at: RingLayout.responseConsumer)
        let producer = memory.load32(at: RingLayout.responseProducer)
        return RingLayout.ringSize - (try Self.distance(consumer: consumer, producer: producer, request: false))
    }

    /// Writes as much of `bytes` as the reply ring has room for; returns the number written.
    public func writeResponses(_ bytes: ArraySlice<UInt8>) throws(RingError) -> Int {
        let consumer = memory.load32(at: RingLayout.responseConsumer)
        let producer = memory.load32(at: RingLayout.responseProducer)
        let used = try Self.distance(consumer: consumer, producer: producer, request: false)
        let count = min(bytes.count, RingLayout.ringSize - used)
        guard count > 0 else { return 0 }
        memory.fullBarrier()  // the consumer index was read before the space it freed is overwritten
        var next = bytes.startIndex
        let end = RingLayout.walk(count: count, from: producer) { offset, chunk in
            memory.storeBytes(bytes[next..<(next + chunk)], at: RingLayout.responseRing + offset)
            next += chunk
        }
        memory.writeBarrier()  // the data is visible before the producer index
        memory.store32(end, at: RingLayout.responseProducer)
        return count
    }

    /// Whether the domain asked for a reconnection (`connection` = XENSTORE_RECONNECT).
    public var reconnectRequested: Bool {
        memory.load32(at: RingLayout.connection) == RingLayout.reconnect
    }

    /// Finishes a reconnection as docs/misc/xenstore-ring.txt asks: all four indexes and the
    /// error word zeroed, then `connection` = XENSTORE_CONNECTED. The caller has discarded the
    /// connection's state and notifies the domain afterwards.
    public func completeReconnection() {
        for offset in [RingLayout.requestConsumer, RingLayout.requestProducer,
                       RingLayout.responseConsumer, RingLayout.responseProducer, RingLayout.error] {
            memory.store32(0, at: offset)
        }
        memory.fullBarrier()
        memory.store32(RingLayout.connected, at: RingLayout.connection)
    }

    /// Tells the domain why the store stopped serving the ring (the `error` word).
    public func report(_ code: RingErrorCode) {
        memory.store32(code.rawValue, at: RingLayout.error)
        memory.writeBarrier()
    }

    /// The error word as it is now.
    public var reportedError: UInt32 { memory.load32(at: RingLayout.error) }

    /// `producer - consumer` in free-running arithmetic, rejected above the ring size.
    private static func distance(consumer: UInt32, producer: UInt32, request: Bool) throws(RingError) -> Int {
        let used = producer &- consumer
        guard used <= UInt32(RingLayout.ringSize) else {
            throw request ? .requestIndexes(consumer: consumer, producer: producer)
                          : .responseIndexes(consumer: consumer, producer: producer)
        }
        return Int(used)
    }
}
