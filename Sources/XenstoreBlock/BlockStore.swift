// The storage engine: superblocks, an append-only log of git objects in one of two halves, squashing.

import XenstoreStore

/// Errors of the block storage engine.
public enum BlockStoreError: Error, Equatable, Sendable {
    /// The device failed.
    case device(BlockDeviceError)
    /// The device is too small or its block size unsupported.
    case badGeometry
    /// Neither superblock is valid and the device is not blank, so it is not formatted either:
    /// `problem` says what the superblocks look like, `dataBlock` is the first block found
    /// holding data (nil when only the superblock blocks are non-zero).
    case noValidSuperblock(SuperblockProblem, dataBlock: UInt64?)
    /// A checksum or structure check failed at byte `offset` of the active half.
    case corrupt(offset: UInt64)
    /// An object the state refers to is absent.
    case missingObject(ObjectID)
    /// Even the live state (head plus pinned commits) does not fit: nothing was written.
    case noSpace
}

/// What the two superblock slots of a device without a usable superblock look like.
public enum SuperblockProblem: Equatable, Sendable {
    /// Both slots are all zero (a blank device, or superblocks wiped over existing data).
    case zeroed
    /// No slot carries the magic, and at least one is not zero (flipped bits, or not our device).
    case badMagic
    /// A slot carries the magic but its version is unknown or its checksum fails.
    case badChecksum
    /// A valid superblock describes another geometry: the file was resized or the block size differs.
    case geometry(blockSize: UInt32, blockCount: UInt64)
    /// A superblock could not be read.
    case unreadable(BlockDeviceError)
}

/// When opening may format a new, empty store (never over anything that is not blank).
public enum BlockFormatRule: Sendable {
    /// Never: a device without a valid superblock is refused.
    case never
    /// When every block of the device reads as zero (the host: reading a file is cheap).
    case ifWholeDeviceZero
    /// When both superblocks and the first block of each half read as zero: for a disk too slow
    /// to read whole at every boot (the stub domain's). Every store ever written has a non-zero
    /// superblock, and every batch or squash starts at block 0 of a half, so damage confined to
    /// other blocks of a used device still leaves a non-zero block among these four.
    case ifHeaderBlocksZero
    /// The caller has just created the device itself (zero-filled, of the size it chose).
    case newDevice
}

/// When and how far history is squashed.
public struct SquashPolicy: Sendable {
    /// Squash before a batch would fill the active half beyond this many percent.
    public var watermarkPercent: Int
    /// Commits on the head's first-parent chain that survive a squash (at least 1: the head).
    public var keepLast: Int
    /// Commits at most this many seconds older than the head also survive (0: none extra).
    public var keepNewerThan: Int64

    /// A policy; defaults keep the last 16 commits and squash at 90 %.
    public init(watermarkPercent: Int = 90, keepLast: Int = 16, keepNewerThan: Int64 = 0) {
        self.watermarkPercent = max(1, min(100, watermarkPercent))
        self.keepLast = max(1, keepLast)
        self.keepNewerThan = max(0, keepNewerThan)
    }
}

/// A git object kind as stored in a record.
public enum BlockObjectKind: UInt8, Sendable {
    /// A blob (node value or permissions).
    case blob = 1
    /// A tree (a node).
    case tree = 2
    /// A commit.
    case commit = 3

    /// The matching git object type.
    public var gitType: GitObjectType {
        switch self {
        case .blob: return .blob
        case .tree: return .tree
        case .commit: return .commit
        }
    }
}

/// Git history on a fixed-size block device. See docs/block-format.md for the byte format.
///
/// Every `persist` call is one durable batch: records are appended to the active half, the device
/// is flushed, then superblock slot 0 and then slot 1 are rewritten with a higher generation, each
/// followed by a flush. A crash anywhere leaves the previous superblock (and so the previous state) valid.
/// When a batch would cross the watermark, the retained commits are copied into the other half
/// (a squash) and the superblock flips to it.
public final class BlockStore<Device: BlockDevice> {
    struct Location {
        var offset: UInt64
        var length: UInt32
        var kind: BlockObjectKind
    }

    /// The device.
    public let device: Device
    /// The squash policy.
    public var policy: SquashPolicy
    /// Commit ids that must survive squashes (open transactions' bases); asked on each squash.
    public var pinned: () -> [ObjectID] = { [] }
    /// Whether this open formatted the device (only then may a fresh initial store be written).
    public private(set) var isNew = false
    /// Whether a server should refuse requests that grow the store (ENOSPC) until removals make
    /// room. Set whenever anything ran out of space (`.noSpace`), and after every batch whose
    /// log, squashed if need be, leaves less than `roundReserve` below `nearlyFullThreshold`; it
    /// is only cleared by a squash that measured enough room. A server checks it per request but
    /// it only changes in `persist`, between rounds: so a whole round is admitted on the answer
    /// of the previous one, and the reserve is what that round may use (docs/block-format.md).
    public private(set) var isNearlyFull = false
    /// Set, with the same measure, when the live log leaves less than `dom0Reserve` more than
    /// `isNearlyFull` needs: only dom0 may then grow the store, so guests writing within their
    /// quotas cannot push dom0 into ENOSPC.
    public private(set) var isReservedForDom0 = false
    /// Log bytes kept for dom0 alone: `1/dom0ReserveDivisor` of a half.
    public var dom0Reserve: UInt64 { halfCapacity / BlockLimits.dom0ReserveDivisor }

    /// Log bytes after a squash above which (less `roundReserve`) the store counts as nearly
    /// full: the squash watermark less 10 points (at least half the log half).
    public var nearlyFullThreshold: UInt64 {
        halfCapacity * UInt64(max(policy.watermarkPercent - 10, 50)) / 100
    }

    /// The largest batch (bytes, padded) written since opening.
    public private(set) var largestBatch: UInt64 = 0

    /// Bytes kept free for the next round while the store accepts growth: twice the largest
    /// batch written since opening, at least `1/roundReserveFloorDivisor` of a half.
    public var roundReserve: UInt64 {
        max(BlockLimits.roundReserveFactor * largestBatch, halfCapacity / BlockLimits.roundReserveFloorDivisor)
    }

    /// Number of squashes performed since opening.
    public private(set) var squashCount = 0
    /// Batches appended since opening, and their bytes (padded to blocks).
    public private(set) var batchCount = 0
    public private(set) var batchBytes: UInt64 = 0
    /// The superblock generation in force.
    public private(set) var generation: UInt64 = 0
    /// The head commit id in force.
    public private(set) var headID: ObjectID?
    /// The tree of the last head this store wrote (nil after loading or squashing): every object
    /// of it is on the device, which lets the next batch skip what it shares.
    private var lastWrittenRoot: Node?
    /// The id of the connection-state blob in force (see `persist(head:history:state:)`).
    public private(set) var stateID: ObjectID?
    /// Bytes used in the active half.
    public private(set) var logEnd: UInt64 = 0
    /// Which half (0 or 1) holds the log.
    public private(set) var activeHalf: UInt32 = 0

    let blockSize: Int
    let halfBlocks: UInt64
    var index: [ObjectID: Location] = [:]
    /// The last run of blocks read (`maxBlocksPerRequest` of them): reading records in log order,
    /// as the scan at open does, costs one device request per run instead of one per record.
    /// Every write drops it.
    var readAhead: (first: UInt64, bytes: [UInt8])?

    /// Bytes available in one half.
    public var halfCapacity: UInt64 { halfBlocks * UInt64(blockSize) }

    /// The generation of the newest valid superblock on `device`, read from the two superblock
    /// slots alone (nil if neither is valid): whether a store in use has moved on, without
    /// opening it again.
    public static func newestGeneration(on device: Device) -> UInt64? {
        guard let halfBlocks = halfBlocks(of: device) else { return nil }
        return Superblock.newest(on: device, halfCapacity: halfBlocks * UInt64(device.blockSize)).0?.generation
    }

    /// Blocks in each log half of `device` (after the two superblocks); nil when the device is
    /// too small or its blocks are.
    static func halfBlocks(of device: Device) -> UInt64? {
        guard device.blockSize >= BlockLimits.minimumBlockSize, device.blockCount >= BlockLimits.minimumBlockCount else {
            return nil
        }
        return (device.blockCount - 2) / 2
    }
    /// Number of objects in the active half.
    public var objectCount: Int { index.count }

    /// Opens the device: recovers the newest valid state; when neither superblock is valid,
    /// formats an empty store only if `format` allows it for this device (see `BlockFormatRule`),
    /// else throws `noValidSuperblock` having written nothing.
    public init(device: Device, policy: SquashPolicy = SquashPolicy(), format: BlockFormatRule = .ifWholeDeviceZero) throws(BlockStoreError) {
        self.device = device
        self.policy = policy
        blockSize = device.blockSize
        guard let halfBlocks = Self.halfBlocks(of: device) else { throw .badGeometry }
        self.halfBlocks = halfBlocks
        let (best, problem) = Superblock.newest(on: device, halfCapacity: halfBlocks * UInt64(blockSize))
        if let best {
            generation = best.generation
            headID = best.head
            stateID = best.state
            logEnd = best.logEnd
            activeHalf = best.half
            isNew = best.head == nil && best.logEnd == 0  // formatted, nothing ever committed
            try scan()
            return
        }
        // Nothing valid: format only what is provably blank, else refuse without writing.
        var dataBlock: UInt64? = nil
        switch format {
        case .never, .ifWholeDeviceZero:
            dataBlock = try Self.firstNonZeroBlock(device, among: 2..<device.blockCount)
        case .ifHeaderBlocksZero:
            for block in [2, 2 + halfBlocks] where dataBlock == nil {
                dataBlock = try Self.firstNonZeroBlock(device, among: block..<(block + 1))
            }
        case .newDevice:
            break
        }
        guard problem == .zeroed, dataBlock == nil, format != .never else {
            throw .noValidSuperblock(problem, dataBlock: dataBlock)
        }
        try writeSuperblock(Superblock(generation: 1, half: 0, logEnd: 0, head: nil,
                                       blockSize: UInt32(blockSize), blockCount: device.blockCount))
        isNew = true
    }

    /// The first block in `blocks` that is not all zero, or nil.
    static func firstNonZeroBlock(_ device: Device, among blocks: Range<UInt64>) throws(BlockStoreError) -> UInt64? {
        for block in blocks {
            let bytes: [UInt8]
            do throws(BlockDeviceError) { bytes = try device.read(block: block) } catch { throw .device(error) }
            if bytes.contains(where: { $0 != 0 }) { return block }
        }
        return nil
    }

    // MARK: - Reading

    func blockOf(half: UInt32, offset: UInt64) -> UInt64 { 2 + UInt64(half) * halfBlocks + offset / UInt64(blockSize) }

    /// Reads `count` bytes at `offset` of `half`, through the read-ahead run.
    func readBytes(half: UInt32, offset: UInt64, count: Int) throws(BlockStoreError) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(count)
        var position = offset
        let end = offset + UInt64(count)
        let size = UInt64(blockSize)
        while position < end {
            let block = blockOf(half: half, offset: position)
            let run = try readAheadRun(containing: block)
            let start = Int(block - run.first) * blockSize + Int(position % size)
            let take = min(blockSize - Int(position % size), Int(end - position))
            out.append(contentsOf: run.bytes[start..<(start + take)])
            position += UInt64(take)
        }
        return out
    }

    /// The read-ahead run holding `block`, read from the device (up to `readAheadBlocks` blocks
    /// from it, at most `maxBlocksPerRequest`) when the current run does not hold it.
    func readAheadRun(containing block: UInt64) throws(BlockStoreError) -> (first: UInt64, bytes: [UInt8]) {
        if let run = readAhead, block >= run.first, block < run.first + UInt64(run.bytes.count / blockSize) {
            return run
        }
        let last = min(device.blockCount, block + UInt64(max(1, min(device.readAheadBlocks, device.maxBlocksPerRequest))))
        do throws(BlockDeviceError) { readAhead = (block, try device.read(blocks: block..<last)) } catch { throw .device(error) }
        return readAhead!
    }

    /// Rebuilds the object index by reading every record of the active half up to `logEnd`.
    func scan() throws(BlockStoreError) {
        index = [:]
        var offset: UInt64 = 0
        while offset < logEnd {
            let kindByte = try readBytes(half: activeHalf, offset: offset, count: 1)[0]
            if kindByte == 0 {  // padding up to the next block
                offset = (offset / UInt64(blockSize) + 1) * UInt64(blockSize)
                continue
            }
            let (kind, id, body) = try readRecord(half: activeHalf, offset: offset)
            index[id] = Location(offset: offset, length: UInt32(body.count), kind: kind)
            offset += UInt64(BlockLimits.recordHeader + body.count + BlockLimits.recordTrailer)
        }
        if offset != logEnd { throw .corrupt(offset: offset) }
        if let headID {
            guard let location = index[headID], location.kind == .commit else { throw .missingObject(headID) }
        }
        if let stateID {
            guard let location = index[stateID], location.kind == .blob else { throw .missingObject(stateID) }
        }
    }

    /// Reads and verifies one record.
    func readRecord(half: UInt32, offset: UInt64) throws(BlockStoreError) -> (BlockObjectKind, ObjectID, [UInt8]) {
        guard offset + UInt64(BlockLimits.recordHeader + BlockLimits.recordTrailer) <= halfCapacity else {
            throw .corrupt(offset: offset)
        }
        let header = try readBytes(half: half, offset: offset, count: BlockLimits.recordHeader)
        let length = Int(LE.get32(header, 1))
        guard let kind = BlockObjectKind(rawValue: header[0]), length <= BlockLimits.maximumBody,
              offset + UInt64(BlockLimits.recordHeader + length + BlockLimits.recordTrailer) <= halfCapacity else {
            throw .corrupt(offset: offset)
        }
        let rest = try readBytes(half: half, offset: offset + UInt64(BlockLimits.recordHeader),
                                 count: length + BlockLimits.recordTrailer)
        let record = header + rest
        let stored = LE.get32(record, record.count - 4)
        guard CRC32C.checksum(record, 0..<(record.count - 4)) == stored else { throw .corrupt(offset: offset) }
        return (kind, ObjectID(bytes: Array(header[5..<25])), Array(rest[0..<length]))
    }

    /// The kind and body of a stored object, checksum-verified; nil when absent.
    public func object(_ id: ObjectID) throws(BlockStoreError) -> (kind: BlockObjectKind, body: [UInt8])? {
        guard let location = index[id] else { return nil }
        let (kind, storedID, body) = try readRecord(half: activeHalf, offset: location.offset)
        guard storedID == id, kind == location.kind else { throw .corrupt(offset: location.offset) }
        return (kind, body)
    }

    /// Whether the active half holds object `id`.
    public func contains(_ id: ObjectID) -> Bool { index[id] != nil }

    /// A stored commit's parsed record.
    public func commitRecord(_ id: ObjectID) throws(BlockStoreError) -> CommitRecord? {
        guard let (kind, body) = try object(id), kind == .commit else { return nil }
        do throws(GitDecodingError) { return try GitDecoding.parseCommit(body, id: id) } catch { throw .corrupt(offset: index[id]!.offset) }
    }

    /// Loads the tree `rootID` from the store.
    public func loadTree(_ rootID: ObjectID, generations: GenerationCounter) throws(BlockStoreError) -> Node {
        var failure: BlockStoreError? = nil
        let root: Node
        do throws(GitDecodingError) {
            root = try GitDecoding.loadTree(rootID, generations: generations) { id in
                if failure != nil { return nil }
                do throws(BlockStoreError) { return try self.object(id)?.body } catch { failure = error; return nil }
            }
        } catch {
            if let failure { throw failure }
            if case .missingObject(let id) = error { throw .missingObject(id) }
            throw .corrupt(offset: 0)
        }
        return root
    }

    /// Loads the head commit and its tree, or nil for an empty store.
    public func loadHead(generations: GenerationCounter) throws(BlockStoreError) -> (record: CommitRecord, id: ObjectID, root: Node)? {
        guard let headID else { return nil }
        guard let record = try commitRecord(headID) else { throw .missingObject(headID) }
        return (record, headID, try loadTree(record.tree, generations: generations))
    }

    /// The connection state saved with the newest batch, checksum-verified; nil if none was saved.
    public func loadState() throws(BlockStoreError) -> [UInt8]? {
        guard let stateID else { return nil }
        guard let (_, body) = try object(stateID) else { throw .missingObject(stateID) }
        return body
    }

    /// Loads the head into a resumed `History`, or nil for an empty store.
    public func loadHistory(generations: GenerationCounter, retainedCommits: Int) throws(BlockStoreError) -> History? {
        guard let (record, id, root) = try loadHead(generations: generations) else { return nil }
        return History(resuming: record, id: id, root: root, generations: generations, retainedCommits: retainedCommits)
    }

    /// Visits every stored object (id, git type, body), commits last, so a host tool can write a
    /// git repository with the same ids. Returns the ids of commits whose parents were squashed
    /// away (git's `shallow` list).
    public func export(visit: (ObjectID, GitObjectType, [UInt8]) -> Void) throws(BlockStoreError) -> [ObjectID] {
        var entries: [(ObjectID, Location)] = []
        for (id, location) in index { entries.append((id, location)) }
        entries.sort { $0.1.offset < $1.1.offset }
        var shallow: [ObjectID] = []
        for (id, _) in entries {
            guard let (kind, body) = try object(id) else { continue }
            visit(id, kind.gitType, body)
            if kind == .commit, let record = try commitRecord(id) {
                if record.parents.contains(where: { index[$0] == nil }) { shallow.append(id) }
            }
        }
        return shallow
    }

    // MARK: - Writing

    /// Appends records to the active half; used by `persist` and by the squash copier.
    struct Appender {
        var pending: [UInt8] = []
        var offset: UInt64
        var locations: [(ObjectID, Location)] = []
        var seen: Set<ObjectID> = []

        mutating func add(_ kind: BlockObjectKind, _ id: ObjectID, _ body: [UInt8]) {
            if seen.contains(id) { return }
            seen.insert(id)
            let start = offset + UInt64(pending.count)
            let first = pending.count
            pending.append(kind.rawValue)
            LE.put32(UInt32(body.count), &pending)
            id.append(to: &pending)
            pending.append(contentsOf: body)
            LE.put32(CRC32C.checksum(pending, first..<pending.count), &pending)
            locations.append((id, Location(offset: start, length: UInt32(body.count), kind: kind)))
        }
        var end: UInt64 { offset + UInt64(pending.count) }
    }

    /// Writes `bytes` (starting on a block boundary at `offset` of `half`), zero-padding the tail,
    /// as few requests as the device takes (`maxBlocksPerRequest` blocks each).
    func writeBlocks(half: UInt32, offset: UInt64, _ bytes: [UInt8]) throws(BlockStoreError) {
        readAhead = nil
        var padded = bytes
        let tail = padded.count % blockSize
        if tail != 0 { padded.append(contentsOf: repeatElement(0, count: blockSize - tail)) }
        let requestBytes = max(1, device.maxBlocksPerRequest) * blockSize
        var position = 0
        var block = blockOf(half: half, offset: offset)
        while position < padded.count {
            let end = min(padded.count, position + requestBytes)
            // all in one request: the padded bytes as they are, not copied once more
            let request = position == 0 && end == padded.count ? padded : Array(padded[position..<end])
            do throws(BlockDeviceError) { try device.write(startingAt: block, request) } catch { throw .device(error) }
            block += UInt64((end - position) / blockSize)
            position = end
        }
    }

    func padded(_ end: UInt64) -> UInt64 { (end + UInt64(blockSize) - 1) / UInt64(blockSize) * UInt64(blockSize) }

    func writeSuperblock(_ superblock: Superblock) throws(BlockStoreError) {
        readAhead = nil
        do throws(BlockDeviceError) {
            // Data first, then slot 0, then slot 1: each slot is durable before the other is touched,
            // so a torn superblock write always leaves one valid copy, and after an acknowledged
            // batch both copies carry the newest state (one flipped bit cannot roll it back).
            let encoded = superblock.encoded(blockSize: blockSize)
            try device.flush()
            try device.write(block: 0, encoded)
            try device.flush()
            try device.write(block: 1, encoded)
            try device.flush()
        } catch { throw .device(error) }
        generation = superblock.generation
        headID = superblock.head
        stateID = superblock.state
        logEnd = superblock.logEnd
        activeHalf = superblock.half
    }

    /// Makes `head` (and every in-memory ancestor not yet stored) durable in one batch, squashing
    /// first when the batch would cross the watermark, then reserves room for the next round
    /// (`reserveRoom`). Throws `.noSpace` (with nothing committed lost, and `isNearlyFull` set)
    /// when even the squashed live state plus the batch cannot fit.
    public func persist(head: Commit, history: History) throws(BlockStoreError) {
        try persist(head: head, history: history, state: nil)
    }

    /// Like `persist(head:history:)`, and makes `state` (the server's encoded connection state,
    /// an opaque blob here) the state in force in the same batch; nil keeps the current one.
    public func persist(head: Commit, history: History, state: [UInt8]?) throws(BlockStoreError) {
        do {
            if try appendBatch(head: head, history: history, state: state) { try reserveRoom() }
        } catch {
            if error == .noSpace { isNearlyFull = true }
            throw error
        }
    }

    /// The batch itself: squashes first (keeping `keepLast`, then only the head) when it would
    /// cross the watermark; `.noSpace` when it cannot fit even then. False if nothing was new.
    func appendBatch(head: Commit, history: History, state: [UInt8]?) throws(BlockStoreError) -> Bool {
        let newStateID = state.map { GitEncoding.objectID(.blob, body: $0) }
        let newState = newStateID ?? stateID
        if let known = history.computedID(of: head), known == headID && newState == stateID { return false }
        let stateBlob = state.flatMap { bytes in newStateID.map { (id: $0, bytes: bytes) } }
        var batch = makeBatch(head: head, history: history, state: stateBlob)
        let newHead = history.id(of: head)
        if newHead == headID && newState == stateID { return false }
        let limit = halfCapacity * UInt64(policy.watermarkPercent) / 100
        if padded(batch.end) > limit {
            for keep in policy.keepLast > 1 ? [policy.keepLast, 1] : [1] where padded(batch.end) > limit {
                do {
                    try squash(extra: batch.pending.count, keepLast: keep, newerThan: keep > 1 ? policy.keepNewerThan : 0)
                } catch {
                    guard error == .noSpace else { throw error }  // nothing changed: try keeping less
                }
                batch = makeBatch(head: head, history: history, state: stateBlob)
            }
            if padded(batch.end) > halfCapacity { throw .noSpace }
        }
        try writeBlocks(half: activeHalf, offset: batch.offset, batch.pending)
        try writeSuperblock(Superblock(generation: generation + 1, half: activeHalf, logEnd: padded(batch.end),
                                       head: newHead, state: newState, blockSize: UInt32(blockSize),
                                       blockCount: device.blockCount))
        for (id, location) in batch.locations { index[id] = location }
        lastWrittenRoot = head.root
        largestBatch = max(largestBatch, padded(batch.end) - batch.offset)
        batchCount += 1
        batchBytes += padded(batch.end) - batch.offset
        return true
    }

    /// Makes sure the next round finds `roundReserve` bytes free below the watermark, squashing
    /// now by the policy if it would not, and sets `isNearlyFull` from what the squash measured
    /// (the policy's `keepLast` commits count as live: they are not dropped to make room for
    /// growth). While the store is nearly full every call squashes again (the only way to learn
    /// that removals freed space). `persist` calls it after each batch; a shell calls it once
    /// after opening a store it will write to.
    public func reserveRoom() throws(BlockStoreError) {
        guard headID != nil else { return }
        let limit = halfCapacity * UInt64(policy.watermarkPercent) / 100
        guard isNearlyFull || logEnd + roundReserve > limit else { return }
        try squash(keepLast: policy.keepLast, newerThan: policy.keepNewerThan)  // sets isNearlyFull
    }

    func makeBatch(head: Commit, history: History, state: (id: ObjectID, bytes: [UInt8])?) -> Appender {
        var appender = Appender(offset: logEnd)
        history.forEachUnstoredObject(from: head, since: lastWrittenRoot, isStored: { self.index[$0] != nil }) { id, type, body in
            appender.add(type == .tree ? .tree : type == .blob ? .blob : .commit, id, body)
        }
        if let state, index[state.id] == nil { appender.add(.blob, state.id, state.bytes) }
        return appender
    }

    /// Copies the retained commits (head's first-parent chain per policy, plus pinned ids) and
    /// their objects into the other half, then flips the superblock to it. `extra` bytes must
    /// remain free afterwards, else `.noSpace` is thrown and the old half stays in force.
    public func squash(extra: Int = 0, keepLast: Int, newerThan: Int64) throws(BlockStoreError) {
        guard let headID else { return }
        var keep: [ObjectID] = []
        var current: ObjectID? = headID
        var headTime: Int64? = nil
        while let id = current, let record = try commitRecord(id) {
            if headTime == nil { headTime = record.time }
            let recent = newerThan > 0 && record.time >= headTime! - newerThan
            if keep.count >= keepLast && !recent { break }
            keep.append(id)
            current = record.parents.first
        }
        for id in pinned() where index[id] != nil && !keep.contains(id) { keep.append(id) }
        let target: UInt32 = activeHalf ^ 1
        var appender = Appender(offset: 0)
        var written: UInt64 = 0
        if let stateID {
            guard let (_, body) = try object(stateID) else { throw .missingObject(stateID) }
            appender.add(.blob, stateID, body)
        }
        // Oldest first, so parents precede children in the log.
        for commitID in keep.reversed() {
            guard let record = try commitRecord(commitID) else { throw .missingObject(commitID) }
            var stack: [ObjectID] = [record.tree]
            var postorder: [ObjectID] = []
            var visited: Set<ObjectID> = []
            while let id = stack.popLast() {
                if appender.seen.contains(id) || visited.contains(id) { continue }
                guard let (kind, body) = try object(id) else { throw .missingObject(id) }
                postorder.append(id)
                visited.insert(id)
                if kind == .tree {
                    let entries: [GitDecoding.Entry]
                    do throws(GitDecodingError) { entries = try GitDecoding.parseTree(body, id: id) } catch { throw .corrupt(offset: index[id]!.offset) }
                    for entry in entries where !appender.seen.contains(entry.id) { stack.append(entry.id) }
                }
            }
            for id in postorder.reversed() {
                guard let (kind, body) = try object(id) else { throw .missingObject(id) }
                appender.add(kind, id, body)
            }
            guard let (_, body) = try object(commitID) else { throw .missingObject(commitID) }
            appender.add(.commit, commitID, body)
            if padded(appender.end) + UInt64(extra) > halfCapacity {
                isNearlyFull = true
                throw .noSpace
            }
            // Stream whole blocks out so memory stays bounded by one commit's objects.
            let whole = appender.pending.count / blockSize * blockSize
            if whole > 0 {
                try writeBlocks(half: target, offset: written, Array(appender.pending[0..<whole]))
                written += UInt64(whole)
                appender.pending.removeFirst(whole)
                appender.offset = written
            }
        }
        try writeBlocks(half: target, offset: written, appender.pending)
        let end = padded(appender.end)
        try writeSuperblock(Superblock(generation: generation + 1, half: target, logEnd: end, head: headID,
                                       state: stateID, blockSize: UInt32(blockSize), blockCount: device.blockCount))
        index = [:]
        for (id, location) in appender.locations { index[id] = location }
        lastWrittenRoot = nil  // the next batch checks every id against the squashed index once
        squashCount += 1
        isNearlyFull = logEnd + roundReserve > nearlyFullThreshold
        isReservedForDom0 = isNearlyFull || logEnd + roundReserve + dom0Reserve > nearlyFullThreshold
    }
}

extension BlockStore: HistoryStore {
    /// A stored commit as a detached commit of `history`; nil when absent or unreadable.
    public func loadCommit(_ id: ObjectID, into history: History) -> Commit? {
        do throws(BlockStoreError) {
            guard let record = try commitRecord(id) else { return nil }
            return history.storedCommit(record, id: id, root: try loadTree(record.tree, generations: history.generations))
        } catch {
            return nil
        }
    }
}

/// The decoded contents of a superblock.
struct Superblock {
    var generation: UInt64
    var half: UInt32
    var logEnd: UInt64
    var head: ObjectID?
    var state: ObjectID?
    var blockSize: UInt32
    var blockCount: UInt64

    init(generation: UInt64, half: UInt32, logEnd: UInt64, head: ObjectID?, state: ObjectID? = nil,
         blockSize: UInt32, blockCount: UInt64) {
        self.generation = generation
        self.half = half
        self.logEnd = logEnd
        self.head = head
        self.state = state
        self.blockSize = blockSize
        self.blockCount = blockCount
    }

    /// The valid superblock with the highest generation on `device` (nil if none), and what is
    /// wrong with the slots when none is valid (the most telling problem of the two).
    static func newest<D: BlockDevice>(on device: D, halfCapacity: UInt64) -> (Superblock?, SuperblockProblem) {
        var best: Superblock? = nil
        var problem = SuperblockProblem.zeroed
        func note(_ found: SuperblockProblem) {
            func rank(_ value: SuperblockProblem) -> Int {
                switch value {
                case .zeroed: return 0
                case .badMagic: return 1
                case .badChecksum: return 2
                case .geometry: return 3
                case .unreadable: return 4
                }
            }
            if rank(found) > rank(problem) { problem = found }
        }
        for slot in UInt64(0)..<2 {
            let bytes: [UInt8]
            do throws(BlockDeviceError) { bytes = try device.read(block: slot) } catch {
                note(.unreadable(error))
                continue
            }
            guard let superblock = Superblock(decoding: bytes) else {
                if Array(bytes[0..<8]) == BlockLimits.magic {
                    note(.badChecksum)
                } else if bytes.contains(where: { $0 != 0 }) {
                    note(.badMagic)
                }
                continue
            }
            guard superblock.blockSize == UInt32(device.blockSize), superblock.blockCount == device.blockCount,
                  superblock.logEnd <= halfCapacity else {
                note(.geometry(blockSize: superblock.blockSize, blockCount: superblock.blockCount))
                continue
            }
            if best == nil || superblock.generation > best!.generation { best = superblock }
        }
        return (best, problem)
    }

    init?(decoding bytes: [UInt8]) {
        // Version 1 (no connection state, 73-byte payload) is still read; version 2 is written.
        guard bytes.count >= BlockLimits.superblockPayload + 4, Array(bytes[0..<8]) == BlockLimits.magic else { return nil }
        let version = LE.get32(bytes, 8)
        guard version == 1 || version == BlockLimits.version else { return nil }
        let payload = version == 1 ? BlockLimits.superblockPayloadVersion1 : BlockLimits.superblockPayload
        guard CRC32C.checksum(bytes, 0..<payload) == LE.get32(bytes, payload) else { return nil }
        state = version >= 2 && bytes[65] == 1 ? ObjectID(bytes: Array(bytes[66..<86])) : nil
        blockSize = LE.get32(bytes, 12)
        blockCount = LE.get64(bytes, 16)
        generation = LE.get64(bytes, 24)
        half = LE.get32(bytes, 32)
        logEnd = LE.get64(bytes, 36)
        head = bytes[44] == 1 ? ObjectID(bytes: Array(bytes[45..<65])) : nil
        guard half < 2 else { return nil }
    }

    func encoded(blockSize size: Int) -> [UInt8] {
        var out = BlockLimits.magic
        LE.put32(BlockLimits.version, &out)
        LE.put32(blockSize, &out)
        LE.put64(blockCount, &out)
        LE.put64(generation, &out)
        LE.put32(half, &out)
        LE.put64(logEnd, &out)
        out.append(head == nil ? 0 : 1)
        out.append(contentsOf: head?.bytes ?? [UInt8](repeating: 0, count: 20))
        out.append(state == nil ? 0 : 1)
        out.append(contentsOf: state?.bytes ?? [UInt8](repeating: 0, count: 20))
        out.append(contentsOf: [UInt8](repeating: 0, count: 8))  // reserved
        LE.put32(CRC32C.checksum(out, 0..<out.count), &out)
        out.append(contentsOf: [UInt8](repeating: 0, count: size - out.count))
        return out
    }
}
