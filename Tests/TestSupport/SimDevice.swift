// A deterministic fault-injecting in-memory block device: crashes at the N-th write, loses, keeps or tears unflushed writes.

import XenstoreBlock

/// An in-memory device whose writes stay volatile until `flush`; it can crash at the N-th write
/// and, on crash, drops, keeps or tears each unflushed write at random.
public final class SimDevice: BlockDevice {
    public let blockSize: Int
    public let blockCount: UInt64
    /// What survives a crash.
    public var durable: [[UInt8]]
    /// Unflushed writes in order.
    public var volatile: [(UInt64, [UInt8])] = []
    /// Crash when this many more writes have been attempted (nil: never).
    public var writesUntilCrash: Int? = nil
    public var crashed = false
    public var writeCount = 0
    public var maxBlockTouched: UInt64 = 0

    public init(blockSize: Int, blockCount: UInt64) {
        self.blockSize = blockSize
        self.blockCount = blockCount
        durable = Array(repeating: [UInt8](repeating: 0, count: blockSize), count: Int(blockCount))
    }

    public func read(block: UInt64) throws(BlockDeviceError) -> [UInt8] {
        if crashed { throw .io(code: 5) }
        guard block < blockCount else { throw .outOfRange }
        for (number, bytes) in volatile.reversed() where number == block { return bytes }
        return durable[Int(block)]
    }

    public func write(block: UInt64, _ bytes: [UInt8]) throws(BlockDeviceError) {
        if crashed { throw .io(code: 5) }
        guard block < blockCount, bytes.count == blockSize else { throw .outOfRange }
        maxBlockTouched = max(maxBlockTouched, block)
        writeCount += 1
        if let remaining = writesUntilCrash {
            if remaining <= 0 {
                // The crashing write itself may land torn.
                volatile.append((block, bytes))
                crashed = true
                throw .io(code: 5)
            }
            writesUntilCrash = remaining - 1
        }
        volatile.append((block, bytes))
    }

    public func flush() throws(BlockDeviceError) {
        if crashed { throw .io(code: 5) }
        for (block, bytes) in volatile { durable[Int(block)] = bytes }
        volatile = []
    }

    /// Power loss: each unflushed write is lost, kept, or torn (a prefix of sectors written).
    public func crash(_ random: inout SplitMix64) {
        for (block, bytes) in volatile {
            switch random.below(3) {
            case 0: break
            case 1: durable[Int(block)] = bytes
            default:
                let sectors = blockSize / 512
                let cut = random.below(sectors) * 512 + (random.chance(30) ? random.below(512) : 0)
                var torn = durable[Int(block)]
                for index in 0..<cut { torn[index] = bytes[index] }
                durable[Int(block)] = torn
            }
        }
        volatile = []
        crashed = false
        writesUntilCrash = nil
    }

    /// Flips one bit of a durable block.
    public func flip(block: UInt64, bit: Int) {
        durable[Int(block)][bit / 8] ^= UInt8(1 << (bit % 8))
    }
}
