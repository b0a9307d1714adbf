// SHA-1, in pure Swift, for git-compatible object ids (no Foundation, no C library).

/// A streaming SHA-1 (FIPS 180-4) hasher.
public struct SHA1: Sendable {
    private var h0: UInt32 = 0x6745_2301
    private var h1: UInt32 = 0xEFCD_AB89
    private var h2: UInt32 = 0x98BA_DCFE
    private var h3: UInt32 = 0x1032_5476
    private var h4: UInt32 = 0xC3D2_E1F0
    /// Bytes of an incomplete 64-byte block.
    private var block: [UInt8] = []
    private var totalLength: UInt64 = 0

    /// Creates a hasher with the standard initial state.
    public init() {}

    /// Hashes `bytes` in one call.
    public static func hash<C: Collection>(_ bytes: C) -> ObjectID where C.Element == UInt8 {
        var hasher = SHA1()
        hasher.update(bytes)
        return hasher.finalize()
    }

    /// Adds bytes to the message.
    public mutating func update<C: Collection>(_ bytes: C) where C.Element == UInt8 {
        let done: Void? = bytes.withContiguousStorageIfAvailable { buffer in
            update(UnsafeRawBufferPointer(buffer))
        }
        if done == nil {
            let copy = Array(bytes)
            copy.withUnsafeBytes { update($0) }
        }
    }

    /// Adds the bytes of a buffer to the message.
    public mutating func update(_ bytes: UnsafeRawBufferPointer) {
        totalLength &+= UInt64(bytes.count)
        var offset = 0
        if !block.isEmpty {
            let take = min(64 - block.count, bytes.count)
            block.append(contentsOf: bytes[0..<take])
            offset = take
            if block.count < 64 { return }
            block.withUnsafeBytes { compress($0.baseAddress!) }
            block.removeAll(keepingCapacity: true)
        }
        while bytes.count - offset >= 64 {
            compress(bytes.baseAddress! + offset)
            offset += 64
        }
        if offset < bytes.count { block.append(contentsOf: bytes[offset...]) }
    }

    /// Finishes the message and returns its digest.
    public mutating func finalize() -> ObjectID {
        let bitLength = totalLength &* 8
        var tail: [UInt8] = [0x80]
        let used = Int(totalLength % 64)
        let padding = used < 56 ? 55 - used : 119 - used
        tail.append(contentsOf: repeatElement(0, count: padding))
        for shift in stride(from: 56, through: 0, by: -8) {
            tail.append(UInt8(truncatingIfNeeded: bitLength >> UInt64(shift)))
        }
        let savedLength = totalLength
        tail.withUnsafeBytes { update($0) }
        totalLength = savedLength
        return ObjectID(words: (h0, h1, h2, h3, h4))
    }

    @inline(__always)
    private static func rotl(_ x: UInt32, _ n: UInt32) -> UInt32 { (x << n) | (x >> (32 - n)) }

    /// One 64-byte block; the 80-word schedule is kept as a 16-word ring in scratch memory.
    private mutating func compress(_ pointer: UnsafeRawPointer) {
        withUnsafeTemporaryAllocation(of: UInt32.self, capacity: 16) { buffer in
            let w = buffer.baseAddress!
            for i in 0..<16 {
                w[i] = UInt32(bigEndian: pointer.loadUnaligned(fromByteOffset: i * 4, as: UInt32.self))
            }
            var a = h0, b = h1, c = h2, d = h3, e = h4
            @inline(__always) func schedule(_ i: Int) -> UInt32 {
                if i < 16 { return w[i] }
                let word = SHA1.rotl(w[(i &- 3) & 15] ^ w[(i &- 8) & 15] ^ w[(i &- 14) & 15] ^ w[i & 15], 1)
                w[i & 15] = word
                return word
            }
            @inline(__always) func round(_ f: UInt32, _ k: UInt32, _ word: UInt32) {
                let temp = SHA1.rotl(a, 5) &+ f &+ e &+ k &+ word
                e = d
                d = c
                c = SHA1.rotl(b, 30)
                b = a
                a = temp
            }
            for i in 0..<20 { round((b & c) | (~b & d), 0x5A82_7999, schedule(i)) }
            for i in 20..<40 { round(b ^ c ^ d, 0x6ED9_EBA1, schedule(i)) }
            for i in 40..<60 { round((b & c) | (b & d) | (c & d), 0x8F1B_BCDC, schedule(i)) }
            for i in 60..<80 { round(b ^ c ^ d, 0xCA62_C1D6, schedule(i)) }
            h0 &+= a
            h1 &+= b
            h2 &+= c
            h3 &+= d
            h4 &+= e
        }
    }
}

/// A 20-byte git object id (SHA-1 digest), stored inline as five big-endian 32-bit words: no
/// allocation of its own, so a node's cached id costs 20 bytes of the node, not an array.
public struct ObjectID: Hashable, Sendable, Comparable {
    private var w0: UInt32, w1: UInt32, w2: UInt32, w3: UInt32, w4: UInt32

    /// Wraps 20 raw bytes.
    public init(bytes: [UInt8]) {
        precondition(bytes.count == 20, "object id must be 20 bytes")
        func word(_ i: Int) -> UInt32 {
            UInt32(bytes[i]) << 24 | UInt32(bytes[i + 1]) << 16 | UInt32(bytes[i + 2]) << 8 | UInt32(bytes[i + 3])
        }
        (w0, w1, w2, w3, w4) = (word(0), word(4), word(8), word(12), word(16))
    }

    /// The raw 20 digest bytes.
    public var bytes: [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(20)
        append(to: &out)
        return out
    }

    /// The digest as SHA-1's five state words, first word first.
    init(words: (UInt32, UInt32, UInt32, UInt32, UInt32)) {
        (w0, w1, w2, w3, w4) = words
    }

    /// Appends the 20 digest bytes to `out` (no intermediate array).
    public func append(to out: inout [UInt8]) {
        func appendWord(_ word: UInt32) {
            out.append(UInt8(truncatingIfNeeded: word >> 24))
            out.append(UInt8(truncatingIfNeeded: word >> 16))
            out.append(UInt8(truncatingIfNeeded: word >> 8))
            out.append(UInt8(truncatingIfNeeded: word))
        }
        appendWord(w0)
        appendWord(w1)
        appendWord(w2)
        appendWord(w3)
        appendWord(w4)
    }

    /// Parses 40 lowercase or uppercase hex digits.
    public init?(hex: [UInt8]) {
        guard hex.count == 40 else { return nil }
        var raw: [UInt8] = []
        raw.reserveCapacity(20)
        var index = 0
        while index < 40 {
            guard let high = ObjectID.nibble(hex[index]), let low = ObjectID.nibble(hex[index + 1]) else { return nil }
            raw.append(high << 4 | low)
            index += 2
        }
        self.init(bytes: raw)
    }

    private static func nibble(_ c: UInt8) -> UInt8? {
        switch c {
        case 0x30...0x39: return c - 0x30
        case 0x61...0x66: return c - 0x61 + 10
        case 0x41...0x46: return c - 0x41 + 10
        default: return nil
        }
    }

    /// The 40 lowercase hex digits git prints.
    public var hex: [UInt8] {
        func digit(_ nibble: UInt8) -> UInt8 { nibble < 10 ? 0x30 + nibble : 0x61 + nibble - 10 }
        var out: [UInt8] = []
        out.reserveCapacity(40)
        for byte in bytes {
            out.append(digit(byte >> 4))
            out.append(digit(byte & 0xF))
        }
        return out
    }

    /// Hashes the first 16 digest bytes as two words (a digest is uniformly distributed; feeding
    /// 20 single bytes made dictionary lookups of ids a visible cost when persisting big trees).
    public func hash(into hasher: inout Hasher) {
        hasher.combine(UInt64(w0) << 32 | UInt64(w1))
        hasher.combine(UInt64(w2) << 32 | UInt64(w3))
    }

    /// Equal when the digest bytes are equal.
    public static func == (lhs: ObjectID, rhs: ObjectID) -> Bool {
        lhs.w0 == rhs.w0 && lhs.w1 == rhs.w1 && lhs.w2 == rhs.w2 && lhs.w3 == rhs.w3 && lhs.w4 == rhs.w4
    }

    /// Orders ids bytewise (the words are big-endian, so word order is byte order).
    public static func < (lhs: ObjectID, rhs: ObjectID) -> Bool {
        if lhs.w0 != rhs.w0 { return lhs.w0 < rhs.w0 }
        if lhs.w1 != rhs.w1 { return lhs.w1 < rhs.w1 }
        if lhs.w2 != rhs.w2 { return lhs.w2 < rhs.w2 }
        if lhs.w3 != rhs.w3 { return lhs.w3 < rhs.w3 }
        return lhs.w4 < rhs.w4
    }
}
