// Named limits and format constants of the block storage engine (see docs/block-format.md).

/// Constants of the on-device format and the engine's bounds.
public enum BlockLimits {
    /// Superblock magic, "XSBLOCK1".
    public static let magic: [UInt8] = [0x58, 0x53, 0x42, 0x4C, 0x4F, 0x43, 0x4B, 0x31]
    /// Format version stored in the superblock.
    public static let version: UInt32 = 2
    /// Smallest supported block size.
    public static let minimumBlockSize = 512
    /// Smallest supported device: two superblocks plus two halves of at least 4 blocks.
    public static let minimumBlockCount: UInt64 = 10
    /// Bytes of a record header: kind (1), body length (4), id (20).
    public static let recordHeader = 25
    /// Bytes of a record trailer: CRC32C (4).
    public static let recordTrailer = 4
    /// Largest object body accepted (a node value is at most 4 KiB; trees can be larger).
    public static let maximumBody = 16 * 1024 * 1024
    /// Bytes of the superblock payload covered by its checksum.
    public static let superblockPayload = 94
    /// Bytes covered by the checksum in a version-1 superblock (no connection-state id).
    public static let superblockPayloadVersion1 = 73
    /// A round's reserve is this many times the largest batch seen (`BlockStore.roundReserve`).
    public static let roundReserveFactor: UInt64 = 2
    /// ... and at least one this-many-th of a log half.
    public static let roundReserveFloorDivisor: UInt64 = 16
    /// dom0's own reserve is 1/dom0ReserveDivisor of a log half (`BlockStore.dom0Reserve`).
    public static let dom0ReserveDivisor: UInt64 = 16
    /// Attempts of `--export-block` on a store that keeps changing under it (a disk in use)
    /// before it treats a record that does not verify as damage.
    public static let liveExportAttempts = 8
}
