// A regular file of fixed size used as a BlockDevice (pread/pwrite/fdatasync), plus the git export of a block store.

#if canImport(Glibc)
import Glibc
#endif
import XenstoreBlock
import XenstoreStore

/// A fixed-size file acting as a block device. A missing file is created (zero-filled, sparse)
/// at the size asked for; an existing file keeps its size, which must be a positive whole number
/// of blocks (an existing empty file is refused: it is what a truncated store looks like).
public final class FileBlockDevice: BlockDevice {
    /// Bytes per block.
    public let blockSize: Int
    /// Number of blocks.
    public let blockCount: UInt64
    /// Whether this open created the file (so it is blank by construction and may be formatted).
    public let created: Bool
    private let fd: Int32

    /// Opens `path`, creating it with `createSize` bytes when it is missing (not when `readOnly`).
    /// An existing file must be `requiredSize` bytes when that is given.
    public init(path: String, createSize: UInt64?, requiredSize: UInt64? = nil, blockSize: Int = 4096,
                readOnly: Bool = false) throws {
        self.blockSize = blockSize
        var made = false
        var descriptor = readOnly ? open(path, O_RDONLY) : open(path, O_RDWR)
        if descriptor < 0 && errno == ENOENT && !readOnly, let createSize {
            descriptor = open(path, O_RDWR | O_CREAT | O_EXCL, 0o644)
            made = descriptor >= 0
            if made && ftruncate(descriptor, off_t(createSize)) != 0 {
                let code = errno
                close(descriptor)
                unlink(path)
                throw DatabaseError.io("truncate \(path)", code)
            }
        }
        guard descriptor >= 0 else { throw DatabaseError.io("open \(path)", errno) }
        fd = descriptor
        created = made
        var status = stat()
        guard fstat(fd, &status) == 0 else {
            let code = errno
            close(fd)
            throw DatabaseError.io("stat \(path)", code)
        }
        let bytes = UInt64(status.st_size)
        if bytes == 0 {
            close(fd)
            throw BlockFileRefusal("\(path) exists but is empty (0 bytes): a truncated store? Refusing to format it; "
                                   + "remove the file to start a new store")
        }
        if let requiredSize, requiredSize != bytes {
            close(fd)
            throw BlockFileRefusal("\(path) is \(bytes) bytes, not the \(requiredSize) asked for with --block-size; "
                                   + "refusing to use it (leave out --block-size to use the file at its size)")
        }
        guard bytes % UInt64(blockSize) == 0 else {
            close(fd)
            throw BlockFileRefusal("\(path): size \(bytes) is not a multiple of the \(blockSize)-byte block size; "
                                   + "refusing to use it (was the file truncated or extended?)")
        }
        blockCount = bytes / UInt64(blockSize)
    }

    deinit { close(fd) }

    /// Reads one block with pread.
    public func read(block: UInt64) throws(BlockDeviceError) -> [UInt8] {
        guard block < blockCount else { throw .outOfRange }
        var buffer = [UInt8](repeating: 0, count: blockSize)
        var done = 0
        while done < blockSize {
            let count = buffer.withUnsafeMutableBytes { raw in
                pread(fd, raw.baseAddress! + done, blockSize - done, off_t(block * UInt64(blockSize)) + off_t(done))
            }
            if count < 0 && errno == EINTR { continue }
            if count < 0 { throw .io(code: errno) }
            if count == 0 { break }  // past EOF of a sparse tail reads as zeros
            done += count
        }
        return buffer
    }

    /// Writes one block with pwrite.
    public func write(block: UInt64, _ bytes: [UInt8]) throws(BlockDeviceError) {
        guard block < blockCount, bytes.count == blockSize else { throw .outOfRange }
        var done = 0
        while done < blockSize {
            let count = bytes.withUnsafeBytes { raw in
                pwrite(fd, raw.baseAddress! + done, blockSize - done, off_t(block * UInt64(blockSize)) + off_t(done))
            }
            if count < 0 && errno == EINTR { continue }
            if count <= 0 { throw .io(code: count < 0 ? errno : EIO) }
            done += count
        }
    }

    /// fdatasync.
    public func flush() throws(BlockDeviceError) {
        guard fdatasync(fd) == 0 else { throw .io(code: errno) }
    }
}

/// Parses a size such as `16M`, `512K`, `1G` or plain bytes.
public func parseByteSize(_ text: String) -> UInt64? {
    guard let last = text.last else { return nil }
    let multipliers: [Character: UInt64] = ["K": 1 << 10, "k": 1 << 10, "M": 1 << 20, "m": 1 << 20, "G": 1 << 30, "g": 1 << 30]
    if let multiplier = multipliers[last] {
        return UInt64(text.dropLast()).map { $0 * multiplier }
    }
    return UInt64(text)
}

/// A block file that is refused as it is: the message names the problem; nothing was written.
public struct BlockFileRefusal: Error, CustomStringConvertible {
    /// What is wrong, for the operator.
    public let description: String

    /// A refusal with its message.
    public init(_ description: String) { self.description = description }
}

/// Opens (creating when missing) the block file at `path` for the daemon: a new store is
/// formatted only in a file this call created or one that reads as all zero; anything else
/// without a valid superblock is refused with a `BlockFileRefusal`, the file unchanged.
public func openBlockFile(path: String, createSize: UInt64, requiredSize: UInt64?,
                          policy: SquashPolicy) throws -> BlockStore<FileBlockDevice> {
    let device = try FileBlockDevice(path: path, createSize: createSize, requiredSize: requiredSize)
    let store: BlockStore<FileBlockDevice>
    do {
        store = try BlockStore(device: device, policy: policy, format: device.created ? .newDevice : .ifWholeDeviceZero)
    } catch {
        throw BlockFileRefusal(describe(error, path: path, blockSize: device.blockSize, blockCount: device.blockCount))
    }
    do {
        try store.reserveRoom()
    } catch {
        throw BlockFileRefusal("\(path): cannot make room for new commits: \(describe(error, path: path, blockSize: device.blockSize, blockCount: device.blockCount))")
    }
    return store
}

/// An operator's message for a block store error on `path`.
public func describe(_ error: BlockStoreError, path: String, blockSize: Int, blockCount: UInt64) -> String {
    let salvage = "nothing was changed; `xenstored --export-block \(path) --to DIR` salvages what is readable"
    switch error {
    case .noValidSuperblock(let problem, let dataBlock):
        let data = dataBlock.map { " and block \($0) holds data" } ?? ""
        switch problem {
        case .zeroed:
            return "\(path): both superblocks are zero\(data): not a blank device, refusing to format it; \(salvage)"
        case .badMagic:
            return "\(path): neither superblock carries the magic XSBLOCK1 (damaged, or not a xenstored block file)\(data); "
                + "refusing to format it; \(salvage)"
        case .badChecksum:
            return "\(path): both superblocks fail their checksum (damaged)\(data); refusing to use or format it; \(salvage)"
        case .geometry(let size, let count):
            return "\(path): its superblock describes \(count) blocks of \(size) bytes, but the file has \(blockCount) "
                + "blocks of \(blockSize) bytes (was the file resized?); refusing to use it; \(salvage)"
        case .unreadable(let failure):
            return "\(path): cannot read the superblocks (\(failure)); refusing to use it"
        }
    case .corrupt(let offset):
        return "\(path): a record of the active log fails its checksum at byte \(offset) of the log; refusing to use it; \(salvage)"
    case .missingObject(let id):
        return "\(path): object \(hexString(id)) of the stored state is missing; refusing to use it; \(salvage)"
    case .badGeometry:
        return "\(path): too small for a block store (at least \(BlockLimits.minimumBlockCount) blocks)"
    case .device(let failure):
        return "\(path): device error \(failure)"
    case .noSpace:
        return "\(path): the live state does not fit the device"
    }
}

/// A read-only view of a device that keeps every block it reads: a store opened on it reads
/// the device once, while it opens (superblocks, then the log as it scans it), and later reads
/// come from what it kept. Exporting a disk in use this way sees the disk as it was during the
/// open, however long writing the export takes. Writes are refused.
public final class SnapshotBlockDevice<Base: BlockDevice>: BlockDevice {
    /// The device read through.
    public let base: Base
    private var kept: [UInt64: [UInt8]] = [:]

    /// A view of `base` that has kept nothing yet.
    public init(_ base: Base) { self.base = base }

    /// Bytes per block, as the base device's.
    public var blockSize: Int { base.blockSize }
    /// Number of blocks, as the base device's.
    public var blockCount: UInt64 { base.blockCount }

    /// The block as first read.
    public func read(block: UInt64) throws(BlockDeviceError) -> [UInt8] {
        if let bytes = kept[block] { return bytes }
        let bytes = try base.read(block: block)
        kept[block] = bytes
        return bytes
    }

    /// Refused: a snapshot is read-only.
    public func write(block: UInt64, _ bytes: [UInt8]) throws(BlockDeviceError) { throw .io(code: EROFS) }

    /// Nothing to make durable.
    public func flush() throws(BlockDeviceError) {}
}

/// Writes every object retained in a block store into a git repository at `directory` (loose
/// objects, `refs/heads/main` at the head, `.git/shallow` listing commits whose parents were
/// squashed away), so `git log` and `git fsck` read it with the ids the git backend would have.
/// Returns the number of objects written.
public func exportBlockStore<D: BlockDevice>(_ store: BlockStore<D>, to directory: String) throws -> Int {
    let repository = try GitDatabase(directory: directory)
    var count = 0
    var failure: Error? = nil
    let shallow: [ObjectID]
    do {
        shallow = try store.export { id, type, body in
            if failure != nil { return }
            do {
                try repository.writeObject(id, type, body)
                count += 1
            } catch { failure = error }
        }
    } catch {
        throw DatabaseError.corrupt("block store: \(error)")
    }
    if let failure { throw failure }
    if let head = store.headID {
        try repository.setBranch(head: head, shallow: shallow)
    }
    return count
}

/// What `salvageBlockFile` exported and what it could not.
public struct SalvageOutcome {
    /// Objects written into the repository.
    public var objectsWritten = 0
    /// The head `refs/heads/main` points at (nil: nothing could be recovered).
    public var head: ObjectID?
    /// One line per finding, for standard error: what was skipped and which commits were lost.
    public var report: [String] = []
    /// Whether anything at all was lost (skipped bytes, dropped commits, bad superblocks).
    public var lostSomething = false
}

/// Recovers what is still readable from a damaged block file into a git repository at
/// `directory`: every verified record of both halves, every commit whose tree is complete
/// (`BlockSalvage`), `refs/heads/main` at the chosen head, `refs/heads/salvaged-<id>` at every
/// other commit that would otherwise be unreachable, `.git/shallow` for commits whose parents
/// are lost. Never writes to the block file.
public func salvageBlockFile(path: String, to directory: String) throws -> SalvageOutcome {
    let device = try FileBlockDevice(path: path, createSize: nil, readOnly: true)
    let salvage: BlockSalvage
    do {
        salvage = try BlockSalvage.scan(device)
    } catch {
        throw BlockFileRefusal(describe(error, path: path, blockSize: device.blockSize, blockCount: device.blockCount))
    }
    var outcome = SalvageOutcome()
    if let problem = salvage.superblockProblem {
        outcome.lostSomething = true
        outcome.report.append("no valid superblock (\(problem)): head chosen among the commits found")
    }
    for range in salvage.skipped {
        outcome.lostSomething = true
        let claim = range.claimed.map { " (its header claims \($0.kind) \(hexString($0.id)), unverified)" } ?? ""
        outcome.report.append("skipped \(range.length) bytes at offset \(range.offset) of half \(range.half)"
                              + (range.inLiveLog.map { $0 ? " inside the live log" : " outside the live log" } ?? "") + claim)
    }
    for (commit, missing) in salvage.incompleteCommits {
        outcome.lostSomething = true
        outcome.report.append("lost commit \(hexString(commit)): its tree lacks object \(hexString(missing))")
    }
    for parent in salvage.absentParents {
        let damaged = salvage.skipped.contains { $0.claimed?.id == parent }
        if damaged { outcome.lostSomething = true }
        outcome.report.append("commit \(hexString(parent)) is not on the device"
                              + (damaged ? " (its record is damaged)" : " (squashed away earlier, or damaged)")
                              + "; its children are exported as shallow")
    }
    let repository = try GitDatabase(directory: directory)
    var needed: Set<ObjectID> = []
    var stack: [ObjectID] = []
    for commit in salvage.completeCommits {
        needed.insert(commit)
        if let body = salvage.objects[commit]?.body, let record = try? GitDecoding.parseCommit(body, id: commit) {
            stack.append(record.tree)
        }
    }
    while let id = stack.popLast() {
        guard !needed.contains(id), let object = salvage.objects[id] else { continue }
        needed.insert(id)
        if object.kind == .tree, let entries = try? GitDecoding.parseTree(object.body, id: id) {
            for entry in entries { stack.append(entry.id) }
        }
    }
    for id in needed.sorted(by: { $0.bytes.lexicographicallyPrecedes($1.bytes) }) {
        guard let object = salvage.objects[id] else { continue }
        try repository.writeObject(id, object.kind.gitType, object.body)
        outcome.objectsWritten += 1
    }
    let unused = salvage.objects.count - needed.count
    if unused > 0 { outcome.report.append("\(unused) verified objects belong to no complete commit and were left out") }
    if let head = salvage.head {
        try repository.setBranch(head: head, shallow: salvage.shallow)
        outcome.head = head
        for tip in salvage.otherTips {
            let name = "salvaged-" + String(hexString(tip).prefix(12))
            try writeRefFile(directory + "/.git/refs/heads/" + name, tip)
            outcome.report.append("commit \(hexString(tip)) is not reachable from the head: kept as refs/heads/\(name)")
        }
    } else {
        outcome.lostSomething = true
        outcome.report.append("no complete commit was found: nothing to export")
    }
    return outcome
}

/// Writes a loose ref file (`<hex id>\n`).
private func writeRefFile(_ path: String, _ id: ObjectID) throws {
    let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    guard fd >= 0 else { throw DatabaseError.io("open \(path)", errno) }
    defer { close(fd) }
    let line = id.hex + [0x0A]
    let written = line.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
    guard written == line.count else { throw DatabaseError.io("write \(path)", errno) }
}
