// Block store behaviour outside crashes: long squashing runs, ENOSPC, pinned commits, export ids, History resume.

import Testing
import XenstoreBlock
import XenstoreStore

/// A new history with the initial tree, keeping `retainedCommits` in memory.
private func freshHistory(retainedCommits: Int) -> (GenerationCounter, History) {
    let generations = GenerationCounter()
    let history = History(root: initialRoot(generations), author: 0, message: bytes("initial"), time: 1,
                          generations: generations, retainedCommits: retainedCommits)
    return (generations, history)
}

@Suite struct StoreTests {
    /// Writes far more history than the device holds: squashes repeat, memory stays bounded.
    @Test func longRunSquashesRepeatedly() throws {
        let device = SimDevice(blockSize: 512, blockCount: 2 + 2 * 96)
        let store = try BlockStore(device: device, policy: SquashPolicy(watermarkPercent: 85, keepLast: 3))
        let (generations, history) = freshHistory(retainedCommits: 8)
        try store.persist(head: history.head, history: history)
        var random = SplitMix64(blockSeed: 7)
        var model: Model = [:]
        var written = 0
        var maxObjects = 0
        for step in 0..<6_000 {
            let (root, next) = randomTransaction(history.head.root, model, &random, generations, maxValue: 64)
            let commit = history.commitOnHead(root: root, author: 0, message: bytes("s\(step)"), time: Int64(step + 2))
            let (before, squashes) = (store.logEnd, store.squashCount)
            try store.persist(head: commit, history: history)
            model = next
            written += Int(store.squashCount == squashes ? store.logEnd - before : store.logEnd)
            maxObjects = max(maxObjects, store.objectCount)
        }
        #expect(store.squashCount > 20)
        #expect(UInt64(written) > 10 * store.halfCapacity)
        #expect(maxObjects < Int(store.halfCapacity) / 29)  // index bounded by the device, not the history
        #expect(device.maxBlockTouched < device.blockCount)
        let reopened = try BlockStore(device: device)
        let loaded = try #require(try reopened.loadHead(generations: GenerationCounter()))
        #expect(loaded.id == history.id(of: history.head))
        #expect(matches(loaded.root, model))
    }

    /// Connection state rides in the same batch as the commits, survives reopening and squashes,
    /// and a state-only change (no new commit) is a batch of its own.
    @Test func connectionStateIsDurableAndSurvivesSquashes() throws {
        let device = SimDevice(blockSize: 512, blockCount: 2 + 2 * 64)
        let store = try BlockStore(device: device, policy: SquashPolicy(watermarkPercent: 70, keepLast: 2))
        let (generations, history) = freshHistory(retainedCommits: 4)
        #expect(try store.loadState() == nil)
        try store.persist(head: history.head, history: history, state: bytes("state-0"))
        let generation = store.generation
        try store.persist(head: history.head, history: history, state: bytes("state-1"))  // no new commit
        #expect(store.generation == generation + 1)
        try store.persist(head: history.head, history: history, state: bytes("state-1"))  // nothing new: no batch
        #expect(store.generation == generation + 1)
        #expect(try BlockStore(device: device).loadState() == bytes("state-1"))
        var random = SplitMix64(blockSeed: 5)
        var model: Model = [:]
        for step in 0..<400 {
            let (root, next) = randomTransaction(history.head.root, model, &random, generations, maxValue: 40)
            let commit = history.commitOnHead(root: root, author: 0, message: bytes("s"), time: Int64(step + 2))
            // every tenth batch carries new state, the others keep the state in force
            try store.persist(head: commit, history: history, state: step % 10 == 0 ? bytes("state-at-\(step)") : nil)
            model = next
        }
        #expect(store.squashCount > 2)
        let reopened = try BlockStore(device: device)
        #expect(try reopened.loadState() == bytes("state-at-390"))
        #expect(reopened.headID == history.id(of: history.head))
    }

    /// A live state close to the device's size sets `isNearlyFull` (the daemon then answers ENOSPC);
    /// removing data and squashing clears it.
    @Test func nearlyFullIsSetAndCleared() throws {
        let device = SimDevice(blockSize: 512, blockCount: 2 + 2 * 32)
        let store = try BlockStore(device: device, policy: SquashPolicy(watermarkPercent: 90, keepLast: 1))
        let (generations, history) = freshHistory(retainedCommits: 4)
        let withDirectory = Tree.replacing(history.head.root, at: [bytes("d")],
                                           with: Node(value: [], permissions: .ownedBy(0), generation: generations.take()),
                                           generations: generations)
        try store.persist(head: history.commitOnHead(root: withDirectory, author: 0, message: bytes("mkdir"), time: 1),
                          history: history)
        var step = 0
        while !store.isNearlyFull && step < 200 {
            let big = Node(value: [UInt8](repeating: UInt8(65 + step % 26), count: 600), permissions: .ownedBy(0),
                           generation: generations.take())
            let root = Tree.replacing(history.head.root, at: [bytes("d"), bytes("k\(step)")], with: big, generations: generations)
            let commit = history.commitOnHead(root: root, author: 0, message: bytes("grow"), time: Int64(step + 2))
            let outcome = Result { () throws(BlockStoreError) in try store.persist(head: commit, history: history) }
            if case .failure(let error) = outcome {
                #expect(error == .noSpace)
                break
            }
            step += 1
        }
        #expect(store.isNearlyFull)
        #expect(step < 200)
        let emptied = Tree.replacing(history.head.root, at: [bytes("d")], with: nil, generations: generations)
        try store.persist(head: history.commitOnHead(root: emptied, author: 0, message: bytes("rm"), time: 1000), history: history)
        try store.squash(keepLast: 1, newerThan: 0)
        #expect(!store.isNearlyFull)
    }

    /// When the live state cannot fit, persist fails with .noSpace and the previous state survives.
    @Test func liveStateTooLargeIsNoSpace() throws {
        let device = SimDevice(blockSize: 512, blockCount: 2 + 2 * 8)
        let store = try BlockStore(device: device, policy: SquashPolicy(keepLast: 1))
        let (generations, history) = freshHistory(retainedCommits: 8)
        try store.persist(head: history.head, history: history)
        let goodID = history.id(of: history.head)
        let big = Node(value: [UInt8](repeating: 0x41, count: 8 * 512), permissions: .ownedBy(0),
                       generation: generations.take())
        let root = Tree.replacing(history.head.root, at: [bytes("d0"), bytes("big")], with: big, generations: generations)
        let commit = history.commitOnHead(root: root, author: 0, message: bytes("too big"), time: 2)
        #expect(throws: BlockStoreError.noSpace) { try store.persist(head: commit, history: history) }
        let reopened = try BlockStore(device: device)
        #expect(reopened.headID == goodID)
        #expect(try reopened.loadHead(generations: GenerationCounter())?.id == goodID)
    }

    /// A pinned commit (an open transaction's base) survives squashes beyond keep-last.
    @Test func pinnedCommitSurvivesSquash() throws {
        let device = SimDevice(blockSize: 512, blockCount: 2 + 2 * 64)
        let store = try BlockStore(device: device, policy: SquashPolicy(watermarkPercent: 70, keepLast: 1))
        let (generations, history) = freshHistory(retainedCommits: 4)
        try store.persist(head: history.head, history: history)
        let base = history.id(of: history.head)
        store.pinned = { [base] }
        var random = SplitMix64(blockSeed: 3)
        var model: Model = [:]
        for step in 0..<600 {
            let (root, next) = randomTransaction(history.head.root, model, &random, generations, maxValue: 40)
            try store.persist(head: history.commitOnHead(root: root, author: 0, message: bytes("s"), time: Int64(step + 2)),
                              history: history)
            model = next
        }
        #expect(store.squashCount > 2)
        let record = try #require(try store.commitRecord(base))
        #expect(matches(try store.loadTree(record.tree, generations: GenerationCounter()), [:]))
    }

    /// Exported objects hash to their ids; the head id is the History's (git backend's) id; a
    /// resumed History continues the same chain.
    @Test func exportIdsMatchGit() throws {
        let device = SimDevice(blockSize: 1024, blockCount: 2 + 2 * 64)
        let store = try BlockStore(device: device)
        let (generations, history) = freshHistory(retainedCommits: 8)
        var random = SplitMix64(blockSeed: 11)
        var model: Model = [:]
        for step in 0..<20 {
            let (root, next) = randomTransaction(history.head.root, model, &random, generations, maxValue: 20)
            _ = history.commitOnHead(root: root, author: 3, message: bytes("s\(step)"), time: Int64(step + 2))
            model = next
            if step % 5 == 4 { try store.persist(head: history.head, history: history) }
        }
        var commits = 0
        var bad = 0
        let shallow = try store.export { id, type, body in
            if GitEncoding.objectID(type, body: body) != id { bad += 1 }
            if case .commit = type { commits += 1 }
        }
        #expect(bad == 0)
        #expect(commits == 21)
        #expect(shallow.isEmpty)
        #expect(store.headID == history.id(of: history.head))
        let resumed = try #require(try BlockStore(device: device).loadHistory(generations: GenerationCounter(), retainedCommits: 8))
        #expect(resumed.id(of: resumed.head) == history.id(of: history.head))
        #expect(matches(resumed.head.root, model))
    }

    /// A blank device formats; a foreign or fully corrupt one is refused with a clear error.
    @Test func superblocksBothBadIsClearError() throws {
        let device = SimDevice(blockSize: 512, blockCount: 20)
        _ = try BlockStore(device: device)
        device.flip(block: 0, bit: 100)
        device.flip(block: 1, bit: 200)
        #expect(throws: BlockStoreError.noValidSuperblock(.badChecksum, dataBlock: nil)) { try BlockStore(device: device) }
        #expect(throws: BlockStoreError.badGeometry) { try BlockStore(device: SimDevice(blockSize: 512, blockCount: 4)) }
    }
}
