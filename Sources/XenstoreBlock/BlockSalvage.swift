// Salvage of a damaged block device: scans both halves for records that verify, keeps every commit whose tree is complete.

import XenstoreStore

/// A stretch of a log half that held no verifiable record although it was not blank.
public struct SkippedRange: Equatable, Sendable {
    /// The half (0 or 1).
    public var half: UInt32
    /// Byte offset in the half.
    public var offset: UInt64
    /// Bytes skipped.
    public var length: UInt64
    /// Whether the range lies inside the log a valid superblock declares (damage), rather than in
    /// free space or an older log's leftovers; nil when no superblock is valid (unknown).
    public var inLiveLog: Bool?
    /// What the first record header of the range claimed to be (kind and id), unverified.
    public var claimed: (kind: BlockObjectKind, id: ObjectID)?

    public static func == (left: SkippedRange, right: SkippedRange) -> Bool {
        left.half == right.half && left.offset == right.offset && left.length == right.length
    }
}

/// What a salvage scan recovered from a device, and what it had to leave behind. Only records
/// whose CRC32C and git id (SHA-1 of git header and body) both verify are used: nothing is
/// invented. Built by `BlockSalvage.scan(_:)`; see docs/block-format.md, "Salvage".
public struct BlockSalvage {
    /// Every verified object found in either half (one copy per id).
    public private(set) var objects: [ObjectID: (kind: BlockObjectKind, body: [UInt8])] = [:]
    /// Non-blank ranges that held no verifiable record.
    public private(set) var skipped: [SkippedRange] = []
    /// Heads of the valid superblocks, newest generation first (empty when both are damaged).
    public private(set) var superblockHeads: [ObjectID] = []
    /// The problem with the superblocks when none is valid.
    public private(set) var superblockProblem: SuperblockProblem? = nil

    /// The chosen head (nil: no complete commit was found).
    public private(set) var head: ObjectID? = nil
    /// Commits whose tree is complete, in log order of discovery: these are exported.
    public private(set) var completeCommits: [ObjectID] = []
    /// Commits found but dropped because their tree is incomplete, each with one missing object.
    public private(set) var incompleteCommits: [(commit: ObjectID, missing: ObjectID)] = []
    /// Exported commits with a parent that is not exported (git's `shallow` list).
    public private(set) var shallow: [ObjectID] = []
    /// Parents named by exported commits that are not on the device (squashed away, or damaged).
    public private(set) var absentParents: [ObjectID] = []
    /// Exported commits other than the head that no exported, non-shallow commit names as a
    /// parent: each needs a ref of its own to stay reachable.
    public private(set) var otherTips: [ObjectID] = []

    /// Where each commit record was found (half, byte offset): a later offset in a half is a later write.
    var positions: [ObjectID: (half: UInt32, offset: Int)] = [:]

    /// Bytes skipped in total.
    public var skippedBytes: UInt64 { skipped.reduce(0) { $0 + $1.length } }

    /// Scans `device` (any geometry the device itself reports; the block size is the device's).
    public static func scan<D: BlockDevice>(_ device: D) throws(BlockStoreError) -> BlockSalvage {
        let blockSize = device.blockSize
        guard blockSize >= BlockLimits.minimumBlockSize, device.blockCount >= BlockLimits.minimumBlockCount else {
            throw .badGeometry
        }
        let halfBlocks = (device.blockCount - 2) / 2
        var salvage = BlockSalvage()
        var valid: [Superblock] = []
        for slot in UInt64(0)..<2 {
            guard let bytes = try? device.read(block: slot), let superblock = Superblock(decoding: bytes),
                  superblock.blockSize == UInt32(blockSize), superblock.blockCount == device.blockCount else { continue }
            valid.append(superblock)
        }
        valid.sort { $0.generation > $1.generation }
        for superblock in valid { if let head = superblock.head { salvage.superblockHeads.append(head) } }
        if valid.isEmpty {
            salvage.superblockProblem = Superblock.newest(on: device, halfCapacity: halfBlocks * UInt64(blockSize)).1
        }
        for half in UInt32(0)..<2 {
            var bytes: [UInt8] = []
            bytes.reserveCapacity(Int(halfBlocks) * blockSize)
            for block in 0..<halfBlocks {
                do throws(BlockDeviceError) {
                    bytes.append(contentsOf: try device.read(block: 2 + UInt64(half) * halfBlocks + block))
                } catch {
                    bytes.append(contentsOf: [UInt8](repeating: 0, count: blockSize))  // unreadable: nothing to verify
                }
            }
            let liveEnd = valid.first.map { $0.half == half ? $0.logEnd : 0 }
            salvage.scanHalf(half, bytes, blockSize: blockSize, liveEnd: liveEnd)
        }
        salvage.plan()
        return salvage
    }

    /// Walks one half: verified records are taken whole; blank space (zero to the next block
    /// boundary) is skipped; anything else is damage, resynchronised first at the end its header
    /// claims, then byte by byte, until a record verifies again.
    mutating func scanHalf(_ half: UInt32, _ bytes: [UInt8], blockSize: Int, liveEnd: UInt64?) {
        var offset = 0
        var damageStart: Int? = nil
        var claimed: (kind: BlockObjectKind, id: ObjectID)? = nil
        func endDamage(at end: Int) {
            guard let start = damageStart else { return }
            skipped.append(SkippedRange(half: half, offset: UInt64(start), length: UInt64(end - start),
                                        inLiveLog: liveEnd.map { UInt64(start) < $0 }, claimed: claimed))
            damageStart = nil
            claimed = nil
        }
        while offset < bytes.count {
            if let length = Self.verifiedRecord(bytes, at: offset) {
                endDamage(at: offset)
                let bodyStart = offset + BlockLimits.recordHeader
                let id = ObjectID(bytes: Array(bytes[(offset + 5)..<bodyStart]))
                if objects[id] == nil, let kind = BlockObjectKind(rawValue: bytes[offset]) {
                    objects[id] = (kind, Array(bytes[bodyStart..<(bodyStart + length)]))
                    if kind == .commit { positions[id] = (half, offset) }
                }
                offset = bodyStart + length + BlockLimits.recordTrailer
                continue
            }
            let boundary = min(bytes.count, (offset / blockSize + 1) * blockSize)
            if bytes[offset..<boundary].allSatisfy({ $0 == 0 }) {
                endDamage(at: offset)
                offset = boundary
                continue
            }
            if damageStart == nil {
                damageStart = offset
                if let (kind, id, end) = Self.plausibleHeader(bytes, at: offset) {
                    claimed = (kind, id)
                    // A damaged body with an intact header: the next record (or padding) starts where it claims to end.
                    let padding = min(bytes.count, (end + blockSize - 1) / blockSize * blockSize)
                    if end < bytes.count && (Self.verifiedRecord(bytes, at: end) != nil
                                             || bytes[end..<padding].allSatisfy({ $0 == 0 })) {
                        offset = end
                        continue
                    }
                }
            }
            offset += 1
        }
        endDamage(at: bytes.count)
    }

    /// Kind, id and end of a record header that could be real (kind known, length fits).
    static func plausibleHeader(_ bytes: [UInt8], at offset: Int) -> (BlockObjectKind, ObjectID, Int)? {
        guard offset + BlockLimits.recordHeader + BlockLimits.recordTrailer <= bytes.count,
              let kind = BlockObjectKind(rawValue: bytes[offset]) else { return nil }
        let length = Int(LE.get32(bytes, offset + 1))
        let end = offset + BlockLimits.recordHeader + length + BlockLimits.recordTrailer
        guard length <= BlockLimits.maximumBody, end <= bytes.count else { return nil }
        return (kind, ObjectID(bytes: Array(bytes[(offset + 5)..<(offset + BlockLimits.recordHeader)])), end)
    }

    /// The body length of the record at `offset` if its CRC32C and its git id both verify.
    static func verifiedRecord(_ bytes: [UInt8], at offset: Int) -> Int? {
        guard let (kind, id, end) = plausibleHeader(bytes, at: offset) else { return nil }
        let bodyStart = offset + BlockLimits.recordHeader
        let bodyEnd = end - BlockLimits.recordTrailer
        // Cheap structural checks before the checksums: a commit starts with "tree ", a non-empty tree with a mode.
        if kind == .commit && (bodyEnd - bodyStart < 5 || bytes[bodyStart] != 0x74) { return nil }
        if kind == .tree && bodyEnd > bodyStart && bytes[bodyStart] != 0x31 && bytes[bodyStart] != 0x34 { return nil }
        guard CRC32C.checksum(bytes, offset..<bodyEnd) == LE.get32(bytes, bodyEnd) else { return nil }
        let body = Array(bytes[bodyStart..<bodyEnd])
        guard GitEncoding.objectID(kind.gitType, body: body) == id else { return nil }
        return body.count
    }

    /// Decides what is exported: complete commits, the head, shallow commits and extra tips.
    mutating func plan() {
        var records: [ObjectID: CommitRecord] = [:]
        var commitIDs: [ObjectID] = []
        for (id, object) in objects where object.kind == .commit {
            guard let record = try? GitDecoding.parseCommit(object.body, id: id) else { continue }
            records[id] = record
            commitIDs.append(id)
        }
        commitIDs.sort { $0.bytes.lexicographicallyPrecedes($1.bytes) }  // deterministic order
        var completeness: [ObjectID: ObjectID?] = [:]  // tree or blob id -> a missing object below it, or nil
        var complete: Set<ObjectID> = []
        for id in commitIDs {
            if let missing = missingObject(below: records[id]!.tree, memo: &completeness) {
                incompleteCommits.append((id, missing))
            } else {
                complete.insert(id)
                completeCommits.append(id)
            }
        }
        // The head: the newest valid superblock's head if it is complete; else the newest tip.
        head = superblockHeads.first(where: { complete.contains($0) })
        if head == nil {
            var named: Set<ObjectID> = []
            for id in completeCommits { for parent in records[id]!.parents { named.insert(parent) } }
            var depthMemo: [ObjectID: Int] = [:]
            /// Whether tip `a` is newer than tip `b`: later commit time; at equal times (one
            /// second), written later in the same half; else the longer complete chain; else the id.
            func newer(_ a: ObjectID, _ b: ObjectID) -> Bool {
                if records[a]!.time != records[b]!.time { return records[a]!.time > records[b]!.time }
                if let left = positions[a], let right = positions[b], left.half == right.half, left.offset != right.offset {
                    return left.offset > right.offset
                }
                let (depthA, depthB) = (chainDepth(a, records, complete, &depthMemo), chainDepth(b, records, complete, &depthMemo))
                if depthA != depthB { return depthA > depthB }
                return b.bytes.lexicographicallyPrecedes(a.bytes)
            }
            for id in completeCommits where !named.contains(id) {
                if let current = head, !newer(id, current) { continue }
                head = id
            }
        }
        var absent: Set<ObjectID> = []
        var reached: Set<ObjectID> = []
        for id in completeCommits {
            let parents = records[id]!.parents
            for parent in parents where objects[parent] == nil && !absent.contains(parent) {
                absent.insert(parent)
                absentParents.append(parent)
            }
            if parents.contains(where: { !complete.contains($0) }) {
                shallow.append(id)
            } else {
                for parent in parents { reached.insert(parent) }
            }
        }
        for id in completeCommits where id != head && !reached.contains(id) { otherTips.append(id) }
    }

    /// One object missing below `root` (itself included), or nil when everything is present and
    /// verified. Iterative; results are memoised per tree, so shared subtrees are walked once.
    func missingObject(below root: ObjectID, memo: inout [ObjectID: ObjectID?]) -> ObjectID? {
        var stack: [(id: ObjectID, expanded: Bool)] = [(root, false)]
        while let (id, expanded) = stack.popLast() {
            if memo[id] != nil { continue }
            guard let object = objects[id] else {
                memo[id] = .some(id)
                continue
            }
            guard object.kind == .tree, let entries = try? GitDecoding.parseTree(object.body, id: id) else {
                memo[id] = object.kind == .tree ? .some(id) : .some(nil)  // an unparsable tree counts as missing
                continue
            }
            if expanded {
                var missing: ObjectID? = nil
                for entry in entries where missing == nil {
                    if let below = memo[entry.id], let found = below { missing = found }
                }
                memo[id] = .some(missing)
            } else {
                stack.append((id, true))
                for entry in entries where memo[entry.id] == nil { stack.append((entry.id, false)) }
            }
        }
        return memo[root] ?? nil
    }

    /// How many complete commits the first-parent chain from `id` has (iterative, memoised).
    func chainDepth(_ id: ObjectID, _ records: [ObjectID: CommitRecord], _ complete: Set<ObjectID>,
                    _ memo: inout [ObjectID: Int]) -> Int {
        var chain: [ObjectID] = []
        var current: ObjectID? = id
        while let commit = current, complete.contains(commit), memo[commit] == nil {
            chain.append(commit)
            current = records[commit]!.parents.first
        }
        var depth = current.flatMap { memo[$0] } ?? 0
        for commit in chain.reversed() {
            depth += 1
            memo[commit] = depth
        }
        return memo[id] ?? depth
    }
}
