// The Xen virtual disk (Runtime/blkfront.c) as a XenstoreBlock device: where the image keeps its history across restarts.

import XenRuntime
import XenstoreBlock

/// The stub domain's virtual disk as a `BlockDevice` of 4096-byte blocks (up to `BLKFRONT_MAX_PAGES` per request).
public final class XenBlockDevice: BlockDevice {
    /// Bytes per block: one granted page.
    public let blockSize = 4096
    /// Whole blocks on the disk.
    public let blockCount: UInt64

    /// Connects to virtual device `vdev` (51712 = xvda), waiting up to `timeoutSeconds` for the
    /// toolstack to create it; nil if it does not appear or the backend does not connect.
    public init?(vdev: UInt32, timeoutSeconds: UInt64) {
        guard blkfront_open(vdev, timeoutSeconds * 1_000_000_000) == 0 else { return nil }
        blockCount = blkfront_size() / 4096
    }

    /// The disk whose handshake the caller ran itself (`blkfront_prepare`, `blkfront_attach`: the
    /// Xenstore domain's own disk, `SelfDiskHandshake`); nil if it is not connected.
    public init?(alreadyConnected: ()) {
        guard blkfront_size() >= 4096 else { return nil }
        blockCount = blkfront_size() / 4096
    }

    /// Reads one block.
    public func read(block: UInt64) throws(BlockDeviceError) -> [UInt8] {
        guard block < blockCount else { throw .outOfRange }
        return try read(blocks: block..<block + 1)
    }

    /// Writes one block.
    public func write(block: UInt64, _ bytes: [UInt8]) throws(BlockDeviceError) {
        guard block < blockCount else { throw .outOfRange }
        guard bytes.count == blockSize else { throw .io(code: 22) }
        try write(startingAt: block, bytes)
    }

    /// The pages one blkif request carries.
    public var maxBlocksPerRequest: Int { Int(BLKFRONT_MAX_PAGES) }

    /// Reads up to `maxBlocksPerRequest` consecutive blocks in one request.
    public func read(blocks: Range<UInt64>) throws(BlockDeviceError) -> [UInt8] {
        guard blocks.upperBound <= blockCount, blocks.count <= maxBlocksPerRequest else { throw .outOfRange }
        var bytes = [UInt8](repeating: 0, count: blocks.count * 4096)
        let rc = bytes.withUnsafeMutableBufferPointer { blkfront_read(blocks.lowerBound * 4096, $0.baseAddress, $0.count) }
        guard rc == 0 else { throw .io(code: -rc) }
        return bytes
    }

    /// Writes up to `maxBlocksPerRequest` consecutive blocks in one request.
    public func write(startingAt block: UInt64, _ bytes: [UInt8]) throws(BlockDeviceError) {
        let count = bytes.count / 4096
        guard bytes.count % 4096 == 0, count <= maxBlocksPerRequest else { throw .io(code: 22) }
        guard block <= blockCount, UInt64(count) <= blockCount - block else { throw .outOfRange }
        let outer = roundProfile.enter(.deviceWrite)
        let rc = bytes.withUnsafeBufferPointer { blkfront_write(block * 4096, $0.baseAddress, $0.count) }
        roundProfile.enter(outer)
        guard rc == 0 else { throw .io(code: -rc) }
    }

    /// Makes earlier writes durable.
    public func flush() throws(BlockDeviceError) {
        let outer = roundProfile.enter(.deviceWrite)
        let rc = blkfront_flush()
        roundProfile.enter(outer)
        guard rc == 0 else { throw .io(code: -rc) }
    }
}
