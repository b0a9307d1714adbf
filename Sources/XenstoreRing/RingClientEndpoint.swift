// The domain's side of a xenstore ring (what Linux xenbus does): used by tests, fuzzing and the host ring emulation.

/// The guest's end of a shared ring page: writes requests, reads replies, asks for reconnection.
/// The store never runs this code against a real domain; it exists so that emulated domains
/// drive `RingLink` through exactly the bytes a real guest would put in the page.
public struct RingClientEndpoint<Memory: RingMemory> {
    /// The shared page.
    public let memory: Memory

    /// Wraps a shared page.
    public init(memory: Memory) { self.memory = memory }

    /// Writes as much of `bytes` as the request ring has room for; returns the number written
    /// (0 if the store's indexes look corrupt: a real guest would then wait or reconnect).
    public func writeRequests(_ bytes: ArraySlice<UInt8>) -> Int {
        let consumer = memory.load32(at: RingLayout.requestConsumer)
        let producer = memory.load32(at: RingLayout.requestProducer)
        let used = producer &- consumer
        guard used <= UInt32(RingLayout.ringSize) else { return 0 }
        let count = min(bytes.count, RingLayout.ringSize - Int(used))
        guard count > 0 else { return 0 }
        memory.fullBarrier()
        var next = bytes.startIndex
        let end = RingLayout.walk(count: count, from: producer) { offset, length in
            memory.storeBytes(bytes[next..<(next + length)], at: RingLayout.requestRing + offset)
            next += length
        }
        memory.writeBarrier()
        memory.store32(end, at: RingLayout.requestProducer)
        return count
    }

    /// Moves every reply byte waiting in the ring to the end of `bytes`; returns how many.
    public func readResponses(appendingTo bytes: inout [UInt8]) -> Int {
        let consumer = memory.load32(at: RingLayout.responseConsumer)
        let producer = memory.load32(at: RingLayout.responseProducer)
        memory.readBarrier()
        let used = producer &- consumer
        guard used <= UInt32(RingLayout.ringSize), used > 0 else { return 0 }
        let end = RingLayout.walk(count: Int(used), from: consumer) { offset, length in
            memory.copyBytes(from: RingLayout.responseRing + offset, count: length, appendingTo: &bytes)
        }
        memory.fullBarrier()
        memory.store32(end, at: RingLayout.responseConsumer)
        return Int(used)
    }

    /// The features the store advertised.
    public var serverFeatures: UInt32 { memory.load32(at: RingLayout.serverFeatures) }

    /// The store's error word.
    public var error: UInt32 { memory.load32(at: RingLayout.error) }

    /// Asks the store to reset the connection (the store answers by zeroing the indexes and
    /// setting `connection` back to XENSTORE_CONNECTED); then notify it.
    public func requestReconnection() {
        memory.store32(RingLayout.reconnect, at: RingLayout.connection)
        memory.writeBarrier()
    }

    /// Whether the store has completed a requested reconnection.
    public var isConnected: Bool { memory.load32(at: RingLayout.connection) == RingLayout.connected }
}
