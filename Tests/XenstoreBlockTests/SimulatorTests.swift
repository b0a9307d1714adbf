// Deterministic crash/corruption simulator for the block store: seeded workloads, recovery checks, long squash runs.

import Foundation
import Testing
import XenstoreBlock
import XenstoreStore

/// The expected store contents: key number -> value (absent keys are deleted).
typealias Model = [Int: [UInt8]]

let directories = 4
let keys = 24

func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }
func directoryName(_ key: Int) -> [UInt8] { bytes("d\(key % directories)") }
func keyName(_ key: Int) -> [UInt8] { bytes("k\(key)") }

func initialRoot(_ generations: GenerationCounter) -> Node {
    var root = Node(value: [], permissions: .ownedBy(0), generation: generations.take())
    for index in 0..<directories {
        root = Tree.replacing(root, at: [bytes("d\(index)")],
                              with: Node(value: [], permissions: .ownedBy(0), generation: generations.take()),
                              generations: generations)
    }
    return root
}

/// Applies one random "transaction" (1 to 4 writes or deletes) to both the tree and the model.
func randomTransaction(_ root: Node, _ model: Model, _ random: inout SplitMix64, _ generations: GenerationCounter,
                       maxValue: Int) -> (Node, Model) {
    var root = root
    var model = model
    for _ in 0..<(1 + random.below(4)) {
        let key = random.below(keys)
        let path = [directoryName(key), keyName(key)]
        if random.chance(15) && model[key] != nil {
            root = Tree.replacing(root, at: path, with: nil, generations: generations)
            model[key] = nil
        } else {
            var value = [UInt8](repeating: 0, count: random.below(maxValue + 1))
            for index in value.indices { value[index] = UInt8(truncatingIfNeeded: random.next()) }
            root = Tree.replacing(root, at: path,
                                  with: Node(value: value, permissions: .ownedBy(0), generation: generations.take()),
                                  generations: generations)
            model[key] = value
        }
    }
    return (root, model)
}

/// Whether `root` shows exactly `model` (every key, nothing extra).
func matches(_ root: Node, _ model: Model) -> Bool {
    for key in 0..<keys {
        let node = Tree.lookup(root, [directoryName(key), keyName(key)])
        if node?.value != model[key] { return false }
    }
    var count = 0
    for child in root.children { count += child.node.children.count }
    return count == model.count
}

struct SimulationResult {
    var crashes = 0
    var squashes = 0
    var flipsCaught = 0
    var flipsHarmless = 0
    var commits = 0
}

/// One seeded simulation: random transactions persisted on a small device with crashes at random
/// write points, torn and lost writes, and bit flips; checks every invariant after each recovery.
func simulate(seed: UInt64, steps: Int) throws -> SimulationResult {
    var random = SplitMix64(blockSeed: seed)
    let blockSize = 512 * (1 + random.below(2))
    let halfBlocks = UInt64(48 + random.below(80))
    let device = SimDevice(blockSize: blockSize, blockCount: 2 + 2 * halfBlocks)
    let keepLast = 1 + random.below(6)
    let policy = SquashPolicy(watermarkPercent: 60 + random.below(41), keepLast: keepLast,
                              keepNewerThan: random.chance(30) ? Int64(random.below(10)) : 0)
    let maxValue = 16 + random.below(120)
    var result = SimulationResult()
    var generations = GenerationCounter()
    var store = try BlockStore(device: device, policy: policy)
    var history = History(root: initialRoot(generations), author: 0, message: bytes("initial"), time: 1_000,
                          generations: generations, retainedCommits: 8)
    try store.persist(head: history.head, history: history)
    var model: Model = [:]
    /// Acknowledged commits, newest last, with their models (bounded: only the recent ones).
    var acked: [(ObjectID, Model)] = [(history.id(of: history.head), model)]
    var pin: (ObjectID, Model, Int)? = nil
    var time: Int64 = 1_000

    func reopen(expecting candidates: [(ObjectID, Model)]) throws -> (BlockStore<SimDevice>, History, ObjectID, Model) {
        let generations2 = GenerationCounter()
        let reopened = try BlockStore(device: device, policy: policy)
        guard let loaded = try reopened.loadHead(generations: generations2) else {
            throw SimulationFailure("seed \(seed): store empty after recovery")
        }
        guard let match = candidates.first(where: { $0.0 == loaded.id }) else {
            throw SimulationFailure("seed \(seed): recovered head is neither the last acknowledged nor the in-flight commit")
        }
        guard matches(loaded.root, match.1) else {
            throw SimulationFailure("seed \(seed): recovered tree differs from its commit's model (partial state visible)")
        }
        // The latest keepLast commits are all on the first-parent chain: the recovered head and
        // the acknowledged commits before it (a squash may follow a batch that became durable).
        var chain: [ObjectID] = []
        var current: ObjectID? = loaded.id
        while let id = current, chain.count < keepLast + 1, let record = try reopened.commitRecord(id) {
            chain.append(id)
            current = record.parents.first
        }
        for (id, _) in acked.suffix(loaded.id == acked.last?.0 ? keepLast : keepLast - 1) where !chain.contains(id) {
            throw SimulationFailure("seed \(seed): acknowledged commit lost after recovery")
        }
        let resumed = History(resuming: loaded.record, id: loaded.id, root: loaded.root, generations: generations2,
                              retainedCommits: 8)
        generations = generations2
        return (reopened, resumed, loaded.id, match.1)
    }

    for step in 0..<steps {
        time += Int64(1 + random.below(3))
        if random.chance(25) { device.writesUntilCrash = random.below(14) }
        let (root, nextModel) = randomTransaction(history.head.root, model, &random, generations, maxValue: maxValue)
        let commit = history.commitOnHead(root: root, author: 0, message: bytes("step \(step)"), time: time)
        let commitID = history.id(of: commit)
        if let (pinID, _, until) = pin, step >= until || !store.contains(pinID) {
            if !store.contains(pinID) { throw SimulationFailure("seed \(seed): pinned commit squashed away") }
            pin = nil
            store.pinned = { [] }
        }
        do {
            try store.persist(head: commit, history: history)
            model = nextModel
            acked.append((commitID, model))
            if acked.count > 16 { acked.removeFirst() }
            result.commits += 1
            device.writesUntilCrash = nil
        } catch {
            guard case .device(.io(code: 5)) = error else { throw SimulationFailure("seed \(seed): persist failed: \(error)") }
            result.crashes += 1
            result.squashes += store.squashCount
            device.crash(&random)
            let last = acked.last!
            (store, history, _, model) = try reopen(expecting: [last, (commitID, nextModel)])
            if store.headID == commitID { acked.append((commitID, model)) }
            if let (pinID, _, _) = pin { store.pinned = { [pinID] } }
            continue
        }
        if pin == nil && random.chance(3) {
            let pinID = acked[0].0
            if store.contains(pinID) {
                pin = (pinID, acked[0].1, step + 40)
                store.pinned = { [pinID] }
            }
        }
        if random.chance(4) {
            try flipAndCheck(device, store, &random, &result, seed: seed, expected: acked.last!)
            result.squashes += store.squashCount
            (store, history, _, model) = try reopen(expecting: [acked.last!])
            if let (pinID, _, _) = pin { store.pinned = { [pinID] } }
        }
        if device.maxBlockTouched >= device.blockCount { throw SimulationFailure("device size exceeded") }
    }
    result.squashes += store.squashCount
    return result
}

/// Flips a bit in an unreferenced block (must be harmless) and in a referenced one (must be caught
/// or harmless, never a wrong answer), then undoes both flips.
func flipAndCheck(_ device: SimDevice, _ store: BlockStore<SimDevice>, _ random: inout SplitMix64,
                  _ result: inout SimulationResult, seed: UInt64, expected: (ObjectID, Model)) throws {
    let halfBlocks = (device.blockCount - 2) / 2
    let usedBlocks = (store.logEnd + UInt64(device.blockSize) - 1) / UInt64(device.blockSize)
    let activeStart = 2 + UInt64(store.activeHalf) * halfBlocks
    let inactiveStart = 2 + UInt64(store.activeHalf ^ 1) * halfBlocks
    let bits = device.blockSize * 8
    // Unreferenced: the inactive half, or the free tail of the active half.
    var unreferenced = inactiveStart + UInt64(random.below(Int(halfBlocks)))
    if usedBlocks < halfBlocks && random.chance(50) {
        unreferenced = activeStart + usedBlocks + UInt64(random.below(Int(halfBlocks - usedBlocks)))
    }
    let bit1 = random.below(bits)
    device.flip(block: unreferenced, bit: bit1)
    let reopened = try BlockStore(device: device, policy: store.policy)
    guard let loaded = try reopened.loadHead(generations: GenerationCounter()), loaded.id == expected.0,
          matches(loaded.root, expected.1) else {
        throw SimulationFailure("seed \(seed): flip in an unreferenced block changed the state")
    }
    device.flip(block: unreferenced, bit: bit1)
    // Referenced: a log block of the active half, or one superblock copy.
    let referenced = random.chance(15) ? UInt64(random.below(2)) : activeStart + UInt64(random.below(Int(max(usedBlocks, 1))))
    let bit2 = random.below(bits)
    device.flip(block: referenced, bit: bit2)
    do {
        let reopened = try BlockStore(device: device, policy: store.policy)
        let loaded = try reopened.loadHead(generations: GenerationCounter())
        guard let loaded, loaded.id == expected.0, matches(loaded.root, expected.1) else {
            throw SimulationFailure("seed \(seed): flip in block \(referenced) produced a wrong answer")
        }
        result.flipsHarmless += 1  // landed in padding or the other superblock copy
    } catch let error as BlockStoreError {
        switch error {
        case .corrupt, .missingObject, .noValidSuperblock: result.flipsCaught += 1
        default: throw SimulationFailure("seed \(seed): unexpected error \(error)")
        }
    }
    device.flip(block: referenced, bit: bit2)
}

struct SimulationFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

@Suite struct SimulatorTests {
    /// Many seeds by default; `SEED=n` runs one seed `SIM_STEPS` (default 20000) steps instead.
    @Test func seededCrashRecovery() throws {
        let environment = ProcessInfo.processInfo.environment
        let seeds: [UInt64]
        var steps = 300
        if let text = environment["SEED"], let seed = UInt64(text) {
            seeds = [seed]
            steps = Int(environment["SIM_STEPS"] ?? "") ?? 20_000
        } else {
            seeds = Array(1...UInt64(Int(environment["SIM_SEEDS"] ?? "") ?? 32))
        }
        var total = SimulationResult()
        for seed in seeds {
            do {
                let result = try simulate(seed: seed, steps: steps)
                total.crashes += result.crashes
                total.squashes += result.squashes
                total.flipsCaught += result.flipsCaught
                total.flipsHarmless += result.flipsHarmless
                total.commits += result.commits
            } catch {
                Issue.record("seed \(seed): \(error)")
                return
            }
        }
        print("simulator: \(seeds.count) seeds x \(steps) steps: \(total.commits) acknowledged commits, "
              + "\(total.crashes) crashes, \(total.squashes) squashes, \(total.flipsCaught) flips caught, "
              + "\(total.flipsHarmless) harmless")
        #expect(total.crashes > 0)
        #expect(total.squashes > 0)
        #expect(total.flipsCaught > 0)
    }
}
