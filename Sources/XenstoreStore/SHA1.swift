// SHA-1, in pure Swift, for git-compatible object ids (no Foundation, no C library).

/// A streaming SHA-1 (FIPS 180-4) hasher.
public struct SHA1: Sendable {
    private var h0: UInt32 = 0x6745_2301
    private var h1: UInt32 = 0xEFCD_AB89
    private var h2: UInt32 = 0x98BA_DCFE
    private var h3: UInt32 = 0x1032_5476
    private var h4: UInt32 = 0xC3D2_E1F0
    /// Bytes of an incomplete 64-byte block, held inline (no array: hashing a small blob
    /// allocates nothing); `pendingCount` of them are used.
    private var pending: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0, 0, 0, 0, 0)
    private var pendingCount = 0
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
        guard let base = bytes.baseAddress, bytes.count > 0 else { return }
        totalLength &+= UInt64(bytes.count)
        var offset = 0
        if pendingCount > 0 {
            let take = min(64 - pendingCount, bytes.count)
            let used = pendingCount
            withUnsafeMutableBytes(of: &pending) { ($0.baseAddress! + used).copyMemory(from: base, byteCount: take) }
            pendingCount += take
            offset = take
            if pendingCount < 64 { return }
            var full = pending  // compress mutates self: hash a copy of the block
            withUnsafeBytes(of: &full) { compress($0.baseAddress!) }
            pendingCount = 0
        }
        while bytes.count - offset >= 64 {
            compress(base + offset)
            offset += 64
        }
        if offset < bytes.count {
            let rest = bytes.count - offset
            withUnsafeMutableBytes(of: &pending) { $0.baseAddress!.copyMemory(from: base + offset, byteCount: rest) }
            pendingCount = rest
        }
    }

    /// Finishes the message and returns its digest.
    public mutating func finalize() -> ObjectID {
        let bitLength = totalLength &* 8
        let used = pendingCount
        // 0x80, zeros up to 56 mod 64, the bit length big-endian: one or two blocks in place
        var tail: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64,
                   UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        let blocks = used < 56 ? 1 : 2
        var block = pending
        withUnsafeMutableBytes(of: &tail) { out in
            withUnsafeBytes(of: &block) { out.baseAddress!.copyMemory(from: $0.baseAddress!, byteCount: used) }
            out[used] = 0x80
            out.storeBytes(of: bitLength.bigEndian, toByteOffset: blocks * 64 - 8, as: UInt64.self)
        }
        withUnsafeBytes(of: &tail) { raw in
            for index in 0..<blocks { compress(raw.baseAddress! + index * 64) }
        }
        pendingCount = 0
        return ObjectID(words: (h0, h1, h2, h3, h4))
    }

    @inline(__always)
    private static func rotl(_ x: UInt32, _ n: UInt32) -> UInt32 { (x << n) | (x >> (32 - n)) }

    /// One 64-byte block. The 80 rounds are written out (16 lines of 5): each round's word
    /// index and round function are constants, the five state words rotate roles instead of
    /// being moved, and the 16-word schedule ring stays at fixed offsets. (The rounds as loops
    /// cost about 2,600 instructions per block, written out about 1,450: hashing new trees is a
    /// large part of each durable commit, and under Xen in QEMU instructions are time.)
    private mutating func compress(_ pointer: UnsafeRawPointer) {
        withUnsafeTemporaryAllocation(of: UInt32.self, capacity: 16) { buffer in
            let w = buffer.baseAddress!
            @inline(__always) func word(_ i: Int) -> UInt32 {
                if i < 16 {
                    let value = UInt32(bigEndian: pointer.loadUnaligned(fromByteOffset: i * 4, as: UInt32.self))
                    w[i] = value
                    return value
                }
                let value = SHA1.rotl(w[(i &- 3) & 15] ^ w[(i &- 8) & 15] ^ w[(i &- 14) & 15] ^ w[i & 15], 1)
                w[i & 15] = value
                return value
            }
            /// Round `i`: `e` takes the new word, `b` is rotated; the caller passes the state
            /// words rotated one place for the next round.
            @inline(__always) func step(_ i: Int, _ a: UInt32, _ b: inout UInt32, _ c: UInt32, _ d: UInt32, _ e: inout UInt32) {
                let mixed: UInt32
                let constant: UInt32
                if i < 20 {
                    mixed = d ^ (b & (c ^ d))
                    constant = 0x5A82_7999
                } else if i < 40 {
                    mixed = b ^ c ^ d
                    constant = 0x6ED9_EBA1
                } else if i < 60 {
                    mixed = (b & c) | (d & (b | c))
                    constant = 0x8F1B_BCDC
                } else {
                    mixed = b ^ c ^ d
                    constant = 0xCA62_C1D6
                }
                e = e &+ SHA1.rotl(a, 5) &+ mixed &+ constant &+ word(i)
                b = SHA1.rotl(b, 30)
            }
            var a = h0, b = h1, c = h2, d = h3, e = h4
            step(0, a, &b, c, d, &e); step(1, e, &a, b, c, &d); step(2, d, &e, a, b, &c); step(3, c, &d, e, a, &b); step(4, b, &c, d, e, &a)
            step(5, a, &b, c, d, &e); step(6, e, &a, b, c, &d); step(7, d, &e, a, b, &c); step(8, c, &d, e, a, &b); step(9, b, &c, d, e, &a)
            step(10, a, &b, c, d, &e); step(11, e, &a, b, c, &d); step(12, d, &e, a, b, &c); step(13, c, &d, e, a, &b); step(14, b, &c, d, e, &a)
            step(15, a, &b, c, d, &e); step(16, e, &a, b, c, &d); step(17, d, &e, a, b, &c); step(18, c, &d, e, a, &b); step(19, b, &c, d, e, &a)
            step(20, a, &b, c, d, &e); step(21, e, &a, b, c, &d); step(22, d, &e, a, b, &c); step(23, c, &d, e, a, &b); step(24, b, &c, d, e, &a)
            step(25, a, &b, c, d, &e); step(26, e, &a, b, c, &d); step(27, d, &e, a, b, &c); step(28, c, &d, e, a, &b); step(29, b, &c, d, e, &a)
            step(30, a, &b, c, d, &e); step(31, e, &a, b, c, &d); step(32, d, &e, a, b, &c); step(33, c, &d, e, a, &b); step(34, b, &c, d, e, &a)
            step(35, a, &b, c, d, &e); step(36, e, &a, b, c, &d); step(37, d, &e, a, b, &c); step(38, c, &d, e, a, &b); step(39, b, &c, d, e, &a)
            step(40, a, &b, c, d, &e); step(41, e, &a, b, c, &d); step(42, d, &e, a, b, &c); step(43, c, &d, e, a, &b); step(44, b, &c, d, e, &a)
            step(45, a, &b, c, d, &e); step(46, e, &a, b, c, &d); step(47, d, &e, a, b, &c); step(48, c, &d, e, a, &b); step(49, b, &c, d, e, &a)
            step(50, a, &b, c, d, &e); step(51, e, &a, b, c, &d); step(52, d, &e, a, b, &c); step(53, c, &d, e, a, &b); step(54, b, &c, d, e, &a)
            step(55, a, &b, c, d, &e); step(56, e, &a, b, c, &d); step(57, d, &e, a, b, &c); step(58, c, &d, e, a, &b); step(59, b, &c, d, e, &a)
            step(60, a, &b, c, d, &e); step(61, e, &a, b, c, &d); step(62, d, &e, a, b, &c); step(63, c, &d, e, a, &b); step(64, b, &c, d, e, &a)
            step(65, a, &b, c, d, &e); step(66, e, &a, b, c, &d); step(67, d, &e, a, b, &c); step(68, c, &d, e, a, &b); step(69, b, &c, d, e, &a)
            step(70, a, &b, c, d, &e); step(71, e, &a, b, c, &d); step(72, d, &e, a, b, &c); step(73, c, &d, e, a, &b); step(74, b, &c, d, e, &a)
            step(75, a, &b, c, d, &e); step(76, e, &a, b, c, &d); step(77, d, &e, a, b, &c); step(78, c, &d, e, a, &b); step(79, b, &c, d, e, &a)
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

    /// Appends the 20 digest bytes to `out` (no intermediate array; one bulk append, as tree
    /// bodies append an id per entry).
    public func append(to out: inout [UInt8]) {
        var words = (w0.bigEndian, w1.bigEndian, w2.bigEndian, w3.bigEndian, w4.bigEndian)
        withUnsafeBytes(of: &words) { out.append(contentsOf: $0) }
    }

    /// Stores the 20 digest bytes at `destination` (unaligned).
    public func store(at destination: UnsafeMutableRawPointer) {
        destination.storeBytes(of: w0.bigEndian, as: UInt32.self)
        destination.storeBytes(of: w1.bigEndian, toByteOffset: 4, as: UInt32.self)
        destination.storeBytes(of: w2.bigEndian, toByteOffset: 8, as: UInt32.self)
        destination.storeBytes(of: w3.bigEndian, toByteOffset: 12, as: UInt32.self)
        destination.storeBytes(of: w4.bigEndian, toByteOffset: 16, as: UInt32.self)
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
        var out: [UInt8] = []
        appendHex(to: &out)
        return out
    }

    /// Appends the 40 lowercase hex digits to `out` (commit bodies name their tree and parents).
    public func appendHex(to out: inout [UInt8]) {
        func appendWord(_ word: UInt32) {
            var shift: UInt32 = 28
            while true {
                let nibble = UInt8(truncatingIfNeeded: word >> shift) & 0xF
                out.append(nibble < 10 ? 0x30 + nibble : 0x61 + nibble - 10)
                if shift == 0 { break }
                shift -= 4
            }
        }
        appendWord(w0)
        appendWord(w1)
        appendWord(w2)
        appendWord(w3)
        appendWord(w4)
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
