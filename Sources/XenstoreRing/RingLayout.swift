// The shared xenstore ring page (struct xenstore_domain_interface, xs_wire.h) and the memory interface a shell provides for it.

import XenstoreWire

/// Byte offsets and constants of `struct xenstore_domain_interface` (one 4 KiB page shared by a
/// domain and the store): a 1 KiB request ring, a 1 KiB reply ring, four free-running 32-bit
/// indexes, and the feature / connection / error words of docs/misc/xenstore-ring.txt.
public enum RingLayout {
    /// Size of each of the two byte rings (XENSTORE_RING_SIZE); a power of two.
    public static let ringSize = Limits.ringSize
    /// The whole shared page.
    public static let pageSize = 4096
    /// `req[]`: requests written by the domain.
    public static let requestRing = 0
    /// `rsp[]`: replies and watch events written by the store.
    public static let responseRing = 1024
    /// `req_cons`: owned by the store.
    public static let requestConsumer = 2048
    /// `req_prod`: owned by the domain.
    public static let requestProducer = 2052
    /// `rsp_cons`: owned by the domain.
    public static let responseConsumer = 2056
    /// `rsp_prod`: owned by the store.
    public static let responseProducer = 2060
    /// `server_features`: written by the store when it connects.
    public static let serverFeatures = 2064
    /// `connection`: the domain writes RECONNECT, the store answers CONNECTED.
    public static let connection = 2068
    /// `error`: written by the store when it gives up on the ring.
    public static let error = 2072

    /// XENSTORE_SERVER_FEATURE_RECONNECTION.
    public static let featureReconnection: UInt32 = 1
    /// XENSTORE_SERVER_FEATURE_ERROR.
    public static let featureError: UInt32 = 2
    /// The features this store offers on every ring (as C xenstored does).
    public static let offeredFeatures: UInt32 = featureReconnection | featureError

    /// XENSTORE_CONNECTED.
    public static let connected: UInt32 = 0
    /// XENSTORE_RECONNECT.
    public static let reconnect: UInt32 = 1

    /// Position of a free-running index inside a ring (MASK_XENSTORE_IDX).
    @inline(__always)
    public static func mask(_ index: UInt32) -> Int { Int(index & UInt32(ringSize - 1)) }

    /// Walks `count` bytes of a ring from free-running index `start` in at most two contiguous
    /// chunks (the ring wraps once at most), calling `chunk` with each chunk's offset in the ring
    /// and its length; returns the index after the last byte. Both ends of a ring copy this way.
    static func walk(count: Int, from start: UInt32, _ chunk: (_ offset: Int, _ length: Int) -> Void) -> UInt32 {
        var index = start
        var done = 0
        while done < count {
            let offset = mask(index)
            let length = min(count - done, ringSize - offset)
            chunk(offset, length)
            done += length
            index &+= UInt32(length)
        }
        return index
    }
}

/// The `error` word's values (XENSTORE_ERROR_*).
public enum RingErrorCode: UInt32, Sendable {
    /// No error.
    case none = 0
    /// Communication problem.
    case communication = 1
    /// An index was out of range (the distance between producer and consumer exceeds the ring).
    case ringIndex = 2
    /// Protocol violation (payload too long).
    case protocolViolation = 3
}

/// Access to one shared ring page, supplied by the shell: a mapped grant in the stub domain,
/// a foreign mapping in dom0, a shared-memory file in the host emulation, an array in tests.
///
/// The other side writes the page concurrently. `load32` must read memory exactly once
/// (a volatile or atomic load: no re-reading a checked index later), and the barriers must
/// order the loads and stores around them as Linux's `virt_rmb`/`virt_wmb`/`virt_mb` do.
public protocol RingMemory {
    /// Reads the 32-bit little-endian word at `offset` exactly once.
    func load32(at offset: Int) -> UInt32
    /// Writes the 32-bit word at `offset`.
    func store32(_ value: UInt32, at offset: Int)
    /// Copies `count` bytes starting at `offset` to the end of `bytes`.
    func copyBytes(from offset: Int, count: Int, appendingTo bytes: inout [UInt8])
    /// Copies `bytes` to the page starting at `offset`.
    func storeBytes(_ bytes: ArraySlice<UInt8>, at offset: Int)
    /// Loads before the barrier complete before loads after it.
    func readBarrier()
    /// Stores before the barrier are visible before stores after it.
    func writeBarrier()
    /// Loads and stores before the barrier complete before those after it.
    func fullBarrier()
}

/// A ring page held in ordinary memory: for tests, fuzzing and simulations in one process.
public final class ArrayRingMemory: RingMemory {
    /// The page's bytes; the test plays the domain by editing them.
    public var bytes: [UInt8]

    /// A zeroed page.
    public init() { bytes = [UInt8](repeating: 0, count: RingLayout.pageSize) }

    public func load32(at offset: Int) -> UInt32 {
        UInt32(bytes[offset]) | UInt32(bytes[offset + 1]) << 8 | UInt32(bytes[offset + 2]) << 16 | UInt32(bytes[offset + 3]) << 24
    }

    public func store32(_ value: UInt32, at offset: Int) {
        for index in 0..<4 { bytes[offset + index] = UInt8(truncatingIfNeeded: value >> (8 * UInt32(index))) }
    }

    public func copyBytes(from offset: Int, count: Int, appendingTo out: inout [UInt8]) {
        out.append(contentsOf: bytes[offset..<(offset + count)])
    }

    public func storeBytes(_ source: ArraySlice<UInt8>, at offset: Int) {
        bytes.replaceSubrange(offset..<(offset + source.count), with: source)
    }

    public func readBarrier() {}
    public func writeBarrier() {}
    public func fullBarrier() {}
}
