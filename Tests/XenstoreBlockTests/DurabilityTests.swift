// Full store under rounds of concurrent writers, refusal of damaged devices (unchanged), salvage of damaged logs.

import Testing
import XenstoreBlock
import XenstoreStore

/// A history whose root has one directory per writer.
private func writersHistory(_ writers: Int) -> (GenerationCounter, History) {
    let generations = GenerationCounter()
    var root = Node(value: [], permissions: .ownedBy(0), generation: generations.take())
    for writer in 0..<writers {
        root = Tree.replacing(root, at: [bytes("w\(writer)")], with: Node(value: [], permissions: .ownedBy(0),
                                                                        generation: generations.take()),
                              generations: generations)
    }
    let history = History(root: root, author: 0, message: bytes("initial"), time: 1, generations: generations,
                          retainedCommits: 64)
    return (generations, history)
}

/// One commit per writer: writer `w` sets `w<w>/k<round>` to `size` bytes.
private func writeRound(_ history: History, _ generations: GenerationCounter, round: Int, writers: Int,
                        size: Int, time: Int64? = nil) -> Commit {
    var commit = history.head
    for writer in 0..<writers {
        let value = Node(value: [UInt8](repeating: UInt8(65 + (round + writer) % 26), count: size),
                         permissions: .ownedBy(0), generation: generations.take())
        let root = Tree.replacing(history.head.root, at: [bytes("w\(writer)"), bytes("k\(round)")], with: value,
                                  generations: generations)
        commit = history.commitOnHead(root: root, author: 0, message: bytes("r\(round) w\(writer)"),
                                      time: time ?? Int64(round + 2))
    }
    return commit
}

/// The offset in `device` (block, byte) of the record of `id`, found by its header in the raw blocks.
private func recordLocation(of id: ObjectID, kind: UInt8, in device: SimDevice) -> (block: Int, byte: Int)? {
    let all = device.durable.flatMap { $0 }
    let pattern = id.bytes
    var index = 5
    while index + pattern.count <= all.count {
        if all[index - 5] == kind && Array(all[index..<(index + pattern.count)]) == pattern {
            return ((index - 5) / device.blockSize, (index - 5) % device.blockSize)
        }
        index += 1
    }
    return nil
}

@Suite struct DurabilityTests {
    /// Rounds of five concurrent writers, each round admitted whole while the store is not nearly
    /// full (as the server's ENOSPC gate does): no round ever fails to fit, and the store does
    /// report nearly full before the device is exhausted.
    @Test(arguments: [(512, 2 + 2 * 64), (4096, 256)])
    func concurrentRoundsAdmittedBeforeTheSignalFit(blockSize: Int, blockCount: UInt64) throws {
        let device = SimDevice(blockSize: blockSize, blockCount: blockCount)
        let store = try BlockStore(device: device, policy: SquashPolicy(watermarkPercent: 90, keepLast: 16))
        let writers = 5
        let (generations, history) = writersHistory(writers)
        try store.persist(head: history.head, history: history)
        var refusedRounds = 0
        for round in 0..<2_000 where refusedRounds < 3 {
            if store.isNearlyFull {
                refusedRounds += 1
                continue
            }
            let head = writeRound(history, generations, round: round, writers: writers, size: blockSize / 4)
            let outcome = Result { () throws(BlockStoreError) in try store.persist(head: head, history: history) }
            if case .failure(let error) = outcome {
                Issue.record("round \(round), admitted while not nearly full, failed: \(error)")
                return
            }
        }
        #expect(refusedRounds == 3, "the store never reported nearly full")
        let reopened = try BlockStore(device: device)
        #expect(reopened.headID == history.id(of: history.head))
    }

    /// Every `.noSpace` marks the store nearly full, also when the last squash attempt fails.
    @Test func everyNoSpaceSetsNearlyFull() throws {
        let device = SimDevice(blockSize: 512, blockCount: 2 + 2 * 16)
        let store = try BlockStore(device: device, policy: SquashPolicy(keepLast: 4))
        let (generations, history) = writersHistory(1)
        try store.persist(head: history.head, history: history)
        let huge = writeRound(history, generations, round: 0, writers: 1, size: 20_000)  // larger than a half
        #expect(throws: BlockStoreError.noSpace) { try store.persist(head: huge, history: history) }
        #expect(store.isNearlyFull)
    }

    /// Damaged superblocks, superblocks zeroed over data, another geometry: refused, device unchanged.
    @Test func damagedDevicesAreRefusedUnchanged() throws {
        let device = SimDevice(blockSize: 512, blockCount: 40)
        let store = try BlockStore(device: device)
        let (_, history) = writersHistory(2)
        try store.persist(head: history.head, history: history)

        func refused(_ damaged: SimDevice, _ expected: BlockStoreError, format: BlockFormatRule) {
            let before = damaged.durable
            #expect(throws: expected) { try BlockStore(device: damaged, format: format) }
            #expect(damaged.durable == before, "refusing must not write")
            #expect(damaged.volatile.isEmpty, "refusing must not write")
        }
        func copy(_ blocks: UInt64 = 40) -> SimDevice {
            let twin = SimDevice(blockSize: 512, blockCount: blocks)
            for block in 0..<min(Int(blocks), device.durable.count) { twin.durable[block] = device.durable[block] }
            return twin
        }
        let flipped = copy()
        flipped.flip(block: 0, bit: 3)  // one bit of the magic in each copy
        flipped.flip(block: 1, bit: 17)
        for rule in [BlockFormatRule.ifWholeDeviceZero, .ifHeaderBlocksZero, .newDevice, .never] {
            refused(flipped, .noValidSuperblock(.badMagic, dataBlock: rule == .newDevice ? nil : 2),
                    format: rule)
        }
        let zeroed = copy()
        zeroed.durable[0] = [UInt8](repeating: 0, count: 512)
        zeroed.durable[1] = [UInt8](repeating: 0, count: 512)
        refused(zeroed, .noValidSuperblock(.zeroed, dataBlock: 2), format: .ifWholeDeviceZero)
        refused(zeroed, .noValidSuperblock(.zeroed, dataBlock: 2), format: .ifHeaderBlocksZero)
        let checksum = copy()
        checksum.flip(block: 0, bit: 100)
        checksum.flip(block: 1, bit: 200)
        refused(checksum, .noValidSuperblock(.badChecksum, dataBlock: 2), format: .ifWholeDeviceZero)
        let grown = copy(60)
        refused(grown, .noValidSuperblock(.geometry(blockSize: 512, blockCount: 40), dataBlock: 2), format: .ifWholeDeviceZero)

        // Data only deep inside an otherwise blank device: the whole-device rule sees it.
        let stray = SimDevice(blockSize: 512, blockCount: 40)
        stray.durable[30][7] = 1
        refused(stray, .noValidSuperblock(.zeroed, dataBlock: 30), format: .ifWholeDeviceZero)
        // A blank device is formatted.
        _ = try BlockStore(device: SimDevice(blockSize: 512, blockCount: 40), format: .ifWholeDeviceZero)
        _ = try BlockStore(device: SimDevice(blockSize: 512, blockCount: 40), format: .ifHeaderBlocksZero)
    }

    /// One damaged old commit record: the store refuses to open, salvage keeps every other commit;
    /// with both superblocks also zeroed it still picks the same head (also when every commit has
    /// the same time, as a burst of writes within one second does).
    @Test(arguments: [false, true])
    func salvageSkipsOneBadOldRecord(sameTime: Bool) throws {
        let device = SimDevice(blockSize: 512, blockCount: 2 + 2 * 128)
        let store = try BlockStore(device: device, policy: SquashPolicy(keepLast: 64))
        let (generations, history) = writersHistory(1)
        try store.persist(head: history.head, history: history)
        var commits = [history.id(of: history.head)]
        for round in 0..<12 {
            try store.persist(head: writeRound(history, generations, round: round, writers: 1, size: 40,
                                               time: sameTime ? 1 : nil), history: history)
            commits.append(history.id(of: history.head))
        }
        #expect(store.squashCount == 0)
        let victim = commits[9]  // the older part of the broken chain is the longer one
        let location = try #require(recordLocation(of: victim, kind: 3, in: device))
        let target = location.block * 512 + location.byte + 25 + 10  // a byte inside the body
        device.flip(block: UInt64(target / 512), bit: (target % 512) * 8)
        #expect(throws: BlockStoreError.self) { try BlockStore(device: device, format: .never) }

        for zeroSuperblocks in [false, true] {
            if zeroSuperblocks {
                device.durable[0] = [UInt8](repeating: 0, count: 512)
                device.durable[1] = [UInt8](repeating: 0, count: 512)
            }
            let salvage = try BlockSalvage.scan(device)
            #expect(salvage.head == commits.last)
            #expect(Set(salvage.completeCommits) == Set(commits.filter { $0 != victim }))
            #expect(salvage.shallow == [commits[10]])
            #expect(salvage.otherTips == [commits[8]])
            #expect(salvage.absentParents == [victim])
            #expect(salvage.skipped.count == 1 && salvage.skipped.first?.claimed?.id == victim)
            #expect(salvage.superblockProblem == (zeroSuperblocks ? .zeroed : nil))
            for id in salvage.completeCommits {
                let object = try #require(salvage.objects[id])
                #expect(GitEncoding.objectID(object.kind.gitType, body: object.body) == id)
            }
        }
    }
}
