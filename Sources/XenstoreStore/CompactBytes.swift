// Short byte strings held inline (node values, child names): most cost no allocation of their own.

/// An immutable byte string that keeps up to `inlineCapacity` bytes inside itself and longer
/// ones in an array. Sixteen bytes either way; nearly every Xenstore name (`backend-id`,
/// `51712`, `state`) and most values (`4`, `online`, `262144`) fit inline, which saves the
/// array header and the allocator's overhead on each (issue 20: memory per node).
public struct CompactBytes: Sendable, Equatable {
    /// Longest string kept inline.
    public static let inlineCapacity = 14

    private enum Storage: Sendable {
        /// Bytes 0-7, 8-11 and 12-13 in little-endian order, then the length.
        case inline(UInt64, UInt32, UInt16, UInt8)
        case array([UInt8])
    }

    private let storage: Storage

    /// The empty string.
    public init() {
        storage = .inline(0, 0, 0, 0)
    }

    /// Holds `bytes`, inline when they fit.
    public init<Bytes: Collection>(_ bytes: Bytes) where Bytes.Element == UInt8 {
        let count = bytes.count
        guard count <= CompactBytes.inlineCapacity else {
            storage = .array(Array(bytes))
            return
        }
        var low: UInt64 = 0
        var middle: UInt32 = 0
        var high: UInt16 = 0
        var position = 0
        for byte in bytes {
            switch position {
            case 0..<8: low |= UInt64(byte) << UInt64(8 * position)
            case 8..<12: middle |= UInt32(byte) << UInt32(8 * (position - 8))
            default: high |= UInt16(byte) << UInt16(8 * (position - 12))
            }
            position += 1
        }
        storage = .inline(low, middle, high, UInt8(count))
    }

    /// Number of bytes.
    public var count: Int {
        switch storage {
        case .inline(_, _, _, let count): return Int(count)
        case .array(let bytes): return bytes.count
        }
    }

    /// Whether there are no bytes.
    public var isEmpty: Bool { count == 0 }

    /// The bytes as a new array (an inline string allocates it; an array-backed one shares its array).
    public var array: [UInt8] {
        switch storage {
        case .array(let bytes): return bytes
        case .inline:
            return withUnsafeBufferPointer { Array($0) }
        }
    }

    /// Calls `body` with the bytes, without copying them into an array.
    public func withUnsafeBufferPointer<Result>(_ body: (UnsafeBufferPointer<UInt8>) -> Result) -> Result {
        switch storage {
        case .array(let bytes):
            return bytes.withUnsafeBufferPointer(body)
        case .inline(let low, let middle, let high, let count):
            var words = (low.littleEndian, middle.littleEndian, high.littleEndian)
            return withUnsafeBytes(of: &words) { raw in
                // The tuple is laid out as 8 + 4 + 2 bytes with no padding between them.
                body(UnsafeBufferPointer(start: raw.baseAddress!.assumingMemoryBound(to: UInt8.self), count: Int(count)))
            }
        }
    }

    /// Whether the bytes equal `other`.
    public func equals(_ other: [UInt8]) -> Bool {
        other.count == count && compare(other) == 0
    }

    /// Equal when the bytes are equal.
    public static func == (lhs: CompactBytes, rhs: CompactBytes) -> Bool {
        if case .inline(let a0, let a1, let a2, let ac) = lhs.storage {
            guard case .inline(let b0, let b1, let b2, let bc) = rhs.storage else { return false }
            return a0 == b0 && a1 == b1 && a2 == b2 && ac == bc
        }
        // (an inline string is never equal to an array-backed one: arrays hold only longer ones)
        guard case .array(let mine) = lhs.storage, case .array(let theirs) = rhs.storage else { return false }
        return mine == theirs
    }

    /// Bytewise order against `other`: negative if these bytes sort first, 0 if equal, positive after.
    public func compare(_ other: UnsafeBufferPointer<UInt8>) -> Int {
        withUnsafeBufferPointer { mine in
            let shared = min(mine.count, other.count)
            var index = 0
            while index < shared {
                if mine[index] != other[index] { return mine[index] < other[index] ? -1 : 1 }
                index += 1
            }
            return mine.count - other.count
        }
    }

    /// Bytewise order against `other` (see `compare(_:)` above).
    public func compare(_ other: [UInt8]) -> Int {
        other.withUnsafeBufferPointer { compare($0) }
    }

    /// Bytewise order against `other`'s bytes (see `compare(_:)` above).
    public func compare(_ other: CompactBytes) -> Int {
        other.withUnsafeBufferPointer { compare($0) }
    }

    /// Whether these bytes sort before `other`'s.
    public func precedes(_ other: CompactBytes) -> Bool { compare(other) < 0 }

    /// Copies the bytes to `destination` and returns how many they are. An inline string stores
    /// all 14 inline bytes: `destination` must have room for at least 14 (or `count`) bytes.
    public func store(at destination: UnsafeMutableRawPointer) -> Int {
        switch storage {
        case .inline(let low, let middle, let high, let count):
            destination.storeBytes(of: low.littleEndian, as: UInt64.self)
            destination.storeBytes(of: middle.littleEndian, toByteOffset: 8, as: UInt32.self)
            destination.storeBytes(of: high.littleEndian, toByteOffset: 12, as: UInt16.self)
            return Int(count)
        case .array(let bytes):
            bytes.withUnsafeBytes { destination.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
            return bytes.count
        }
    }

    /// The first byte (0 for the empty string).
    public var firstByte: UInt8 {
        switch storage {
        case .inline(let low, _, _, _): return UInt8(truncatingIfNeeded: low)
        case .array(let bytes): return bytes.first ?? 0
        }
    }

    /// Whether these bytes are the non-empty `prefix` followed by at least one byte, the first of
    /// which is below `limit` (git's tree order puts such a name before a directory `prefix/`).
    public func continues(_ prefix: CompactBytes, withByteBelow limit: UInt8) -> Bool {
        let length = prefix.count
        guard length > 0, count > length else { return false }
        return withUnsafeBufferPointer { mine in
            prefix.withUnsafeBufferPointer { start in
                mine[length] < limit && UnsafeBufferPointer(rebasing: mine[0..<length]).elementsEqual(start)
            }
        }
    }
}
