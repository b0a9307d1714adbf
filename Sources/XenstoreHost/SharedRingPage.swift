// A xenstore ring page mapped into this process (a shared-memory file, or a Xen page mapped by dom0): the RingMemory of the host shells.

import CHost
import XenstoreRing

/// `RingMemory` over a mapped page: index words through C atomics (read exactly once), data
/// bytes as plain copies, barriers as C11 fences.
public struct SharedRingPage: RingMemory {
    /// Start of the mapped page (`RingLayout.pageSize` bytes).
    public let base: UnsafeMutableRawPointer

    /// Wraps a mapping.
    public init(base: UnsafeMutableRawPointer) { self.base = base }

    public func load32(at offset: Int) -> UInt32 { xs_shared_load32(base, offset) }
    public func store32(_ value: UInt32, at offset: Int) { xs_shared_store32(base, offset, value) }
    public func copyBytes(from offset: Int, count: Int, appendingTo bytes: inout [UInt8]) {
        bytes.append(contentsOf: UnsafeRawBufferPointer(start: base + offset, count: count))
    }
    public func storeBytes(_ bytes: ArraySlice<UInt8>, at offset: Int) {
        bytes.withUnsafeBytes { source in
            if let address = source.baseAddress { (base + offset).copyMemory(from: address, byteCount: source.count) }
        }
    }
    public func readBarrier() { xs_fence_acquire() }
    public func writeBarrier() { xs_fence_release() }
    public func fullBarrier() { xs_fence_full() }
}
