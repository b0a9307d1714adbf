// A regular file of fixed size used as a BlockDevice (pread/pwrite/fdatasync), plus the git export of a block store.

#if canImport(Glibc)
import Glibc
#endif
import XenstoreBlock
import XenstoreStore

/// A fixed-size file acting as a block device. Created (zero-filled, sparse) at `size` bytes when
/// missing; an existing file keeps its size, which must be a whole number of blocks.
public final class FileBlockDevice: BlockDevice {
    /// Bytes per block.
    public let blockSize: Int
    /// Number of blocks.
    public let blockCount: UInt64
    private let fd: Int32

    /// Opens or creates `path`. `size` (bytes) is required for a new file and must match an
    /// existing one when given.
    public init(path: String, size: UInt64?, blockSize: Int = 4096, readOnly: Bool = false) throws {
        self.blockSize = blockSize
        fd = open(path, readOnly ? O_RDONLY : (O_RDWR | O_CREAT), 0o644)
        guard fd >= 0 else { throw DatabaseError.io("open \(path)", errno) }
        var status = stat()
        guard fstat(fd, &status) == 0 else { throw DatabaseError.io("stat \(path)", errno) }
        var bytes = UInt64(status.st_size)
        if bytes == 0, let size, !readOnly {
            guard ftruncate(fd, off_t(size)) == 0 else { throw DatabaseError.io("truncate \(path)", errno) }
            bytes = size
        } else if let size, size != bytes {
            close(fd)
            throw DatabaseError.corrupt("\(path) is \(bytes) bytes, not the requested \(size)")
        }
        guard bytes % UInt64(blockSize) == 0, bytes > 0 else {
            close(fd)
            throw DatabaseError.corrupt("\(path): size \(bytes) is not a positive multiple of \(blockSize)")
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
