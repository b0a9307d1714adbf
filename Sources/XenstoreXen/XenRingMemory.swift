// A xenstore ring page mapped from another domain (or dom0's own kernel), as `RingMemory` for the pure ring code.

import CXen
import XenstoreRing

/// One mapped 4 KiB ring page. Index words are read with a single volatile load each and the
/// barriers are real fences, because the domain on the other side writes the page concurrently.
/// Offsets come from `RingEndpoint`, which has already checked them against the ring size.
public struct XenRingMemory: RingMemory {
    /// Start of the mapping.
    public let base: UnsafeMutableRawPointer

    /// Wraps a mapping of at least one page.
    public init(base: UnsafeMutableRawPointer) { self.base = base }

    public func load32(at offset: Int) -> UInt32 { xsx_load32(base, offset) }

    public func store32(_ value: UInt32, at offset: Int) { xsx_store32(base, offset, value) }

    public func copyBytes(from offset: Int, count: Int, appendingTo bytes: inout [UInt8]) {
        guard count > 0, offset >= 0, offset + count <= RingLayout.pageSize else { return }
        let start = bytes.count
        bytes.append(contentsOf: repeatElement(0, count: count))
        bytes.withUnsafeMutableBytes { raw in xsx_copy_out(base, offset, raw.baseAddress! + start, count) }
    }

    public func storeBytes(_ bytes: ArraySlice<UInt8>, at offset: Int) {
        guard !bytes.isEmpty, offset >= 0, offset + bytes.count <= RingLayout.pageSize else { return }
        bytes.withUnsafeBytes { raw in xsx_copy_in(base, offset, raw.baseAddress!, raw.count) }
    }

    public func readBarrier() { xsx_read_barrier() }
    public func writeBarrier() { xsx_write_barrier() }
    public func fullBarrier() { xsx_full_barrier() }
}
