// The block device abstraction the storage engine runs on, plus its CRC32C and byte helpers.

/// Failures reported by a block device.
public enum BlockDeviceError: Error, Equatable, Sendable {
    /// The underlying medium failed; `code` is an errno-like number.
    case io(code: Int32)
    /// A block number past the end of the device.
    case outOfRange
}

/// A device of `blockCount` fixed-size blocks. Writes are durable only after `flush()`.
/// Always used through generics (`BlockStore<D>`), never as an existential.
public protocol BlockDevice: AnyObject {
    /// Bytes per block (at least 512).
    var blockSize: Int { get }
    /// Number of blocks.
    var blockCount: UInt64 { get }
    /// Reads one whole block.
    func read(block: UInt64) throws(BlockDeviceError) -> [UInt8]
    /// Writes one whole block (`bytes.count == blockSize`).
    func write(block: UInt64, _ bytes: [UInt8]) throws(BlockDeviceError)
    /// Makes every earlier write durable.
    func flush() throws(BlockDeviceError)
    /// The most blocks one `read(blocks:)` or `write(startingAt:_:)` moves in one request to the
    /// medium (a Xen virtual disk: the pages one blkif request carries). 1 by default.
    var maxBlocksPerRequest: Int { get }
    /// How many blocks a store reads at once when it needs one it does not hold (its read-ahead
    /// run, at most `maxBlocksPerRequest`). `maxBlocksPerRequest` by default: a request to a disk
    /// costs a round trip however many blocks it moves, so reading ahead pays; memory does not
    /// (every block read is a copy) and reads only what it is asked.
    var readAheadBlocks: Int { get }
    /// Reads consecutive whole blocks (at most `maxBlocksPerRequest` of them) in one request.
    func read(blocks: Range<UInt64>) throws(BlockDeviceError) -> [UInt8]
    /// Writes consecutive whole blocks (`bytes.count` a multiple of `blockSize`, at most
    /// `maxBlocksPerRequest` blocks) in one request.
    func write(startingAt block: UInt64, _ bytes: [UInt8]) throws(BlockDeviceError)
}

extension BlockDevice {
    /// One block per request.
    public var maxBlocksPerRequest: Int { 1 }

    /// As many blocks as one request moves.
    public var readAheadBlocks: Int { maxBlocksPerRequest }

    /// Block by block.
    public func read(blocks: Range<UInt64>) throws(BlockDeviceError) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(blocks.count * blockSize)
        for block in blocks { bytes.append(contentsOf: try read(block: block)) }
        return bytes
    }

    /// Block by block.
    public func write(startingAt block: UInt64, _ bytes: [UInt8]) throws(BlockDeviceError) {
        var position = 0
        var target = block
        while position < bytes.count {
            try write(block: target, Array(bytes[position..<min(bytes.count, position + blockSize)]))
            position += blockSize
            target += 1
        }
    }
}

/// CRC32C (Castagnoli), table-driven, pure Swift.
public enum CRC32C {
    /// Eight 256-entry tables: table k maps a byte to its CRC contribution k bytes further on,
    /// so the main loop folds 8 input bytes per step (slicing-by-8) instead of one.
    static let tables: [UInt32] = {
        var tables = [UInt32](repeating: 0, count: 8 * 256)
        for index in 0..<256 {
            var value = UInt32(index)
            for _ in 0..<8 { value = (value & 1) != 0 ? (value >> 1) ^ 0x82F6_3B78 : value >> 1 }
            tables[index] = value
        }
        for slice in 1..<8 {
            for index in 0..<256 {
                let previous = tables[(slice - 1) * 256 + index]
                tables[slice * 256 + index] = (previous >> 8) ^ tables[Int(previous & 0xFF)]
            }
        }
        return tables
    }()

    /// The checksum of `bytes[range]`.
    public static func checksum(_ bytes: [UInt8], _ range: Range<Int>) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        Self.tables.withUnsafeBufferPointer { t in
            bytes.withUnsafeBytes { raw in
                precondition(range.lowerBound >= 0 && range.upperBound <= raw.count, "checksum range outside the bytes")
                var index = range.lowerBound
                while range.upperBound - index >= 8 {
                    let one = UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: index, as: UInt32.self)) ^ crc
                    let two = UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: index + 4, as: UInt32.self))
                    crc = t[7 * 256 + Int(one & 0xFF)] ^ t[6 * 256 + Int((one >> 8) & 0xFF)]
                        ^ t[5 * 256 + Int((one >> 16) & 0xFF)] ^ t[4 * 256 + Int(one >> 24)]
                        ^ t[3 * 256 + Int(two & 0xFF)] ^ t[2 * 256 + Int((two >> 8) & 0xFF)]
                        ^ t[256 + Int((two >> 16) & 0xFF)] ^ t[Int(two >> 24)]
                    index += 8
                }
                while index < range.upperBound {
                    crc = t[Int((crc ^ UInt32(raw[index])) & 0xFF)] ^ (crc >> 8)
                    index += 1
                }
            }
        }
        return crc ^ 0xFFFF_FFFF
    }
}

/// Little-endian integer encoding helpers.
enum LE {
    static func put32(_ value: UInt32, _ out: inout [UInt8]) {
        for shift in stride(from: 0, to: 32, by: 8) { out.append(UInt8(truncatingIfNeeded: value >> UInt32(shift))) }
    }
    static func put64(_ value: UInt64, _ out: inout [UInt8]) {
        for shift in stride(from: 0, to: 64, by: 8) { out.append(UInt8(truncatingIfNeeded: value >> UInt64(shift))) }
    }
    static func get32(_ bytes: [UInt8], _ at: Int) -> UInt32 {
        var value: UInt32 = 0
        for index in 0..<4 { value |= UInt32(bytes[at + index]) << UInt32(8 * index) }
        return value
    }
    static func get64(_ bytes: [UInt8], _ at: Int) -> UInt64 {
        var value: UInt64 = 0
        for index in 0..<8 { value |= UInt64(bytes[at + index]) << UInt64(8 * index) }
        return value
    }
}
