// Seeded property test: random interleaved transactions are serializable in commit order against a reference model, and every EAGAIN is justified.

import Testing
import XenstoreStore
import XenstoreWire
@testable import XenstoreServer

/// A serial reference model of the store: absolute path -> value, parents always present.
struct ReferenceModel: Equatable {
    var nodes: [String: String]

    enum Op: CustomStringConvertible {
        case read(String), write(String, String), mkdir(String), rm(String), directory(String), getPerms(String)
        var description: String {
            switch self {
            case .read(let p): return "read \(p)"
            case .write(let p, let v): return "write \(p)=\(v)"
            case .mkdir(let p): return "mkdir \(p)"
            case .rm(let p): return "rm \(p)"
            case .directory(let p): return "directory \(p)"
            case .getPerms(let p): return "get_perms \(p)"
            }
        }
    }

    static func parent(_ path: String) -> String {
        guard let slash = path.lastIndex(of: "/"), slash != path.startIndex else { return "/" }
        return String(path[..<slash])
    }

    private mutating func create(_ path: String, _ value: String) {
        var ancestors: [String] = []
        var current = ReferenceModel.parent(path)
        while current != "/" && nodes[current] == nil {
            ancestors.append(current)
            current = ReferenceModel.parent(current)
        }
        for ancestor in ancestors { nodes[ancestor] = "" }
        nodes[path] = value
    }

    /// Executes one privileged operation with the daemon's semantics.
    mutating func apply(_ op: Op) -> Outcome {
        switch op {
        case .read(let p):
            return nodes[p].map { .success(b($0)) } ?? .failure(.ENOENT)
        case .getPerms(let p):
            return nodes[p] != nil ? .success(args("n0")) : .failure(.ENOENT)
        case .write(let p, let v):
            create(p, v)
            return .success(Payload.ok)
        case .mkdir(let p):
            if nodes[p] == nil { create(p, "") }
            return .success(Payload.ok)
        case .rm(let p):
            if nodes[p] != nil {
                for key in nodes.keys where key == p || key.hasPrefix(p + "/") { nodes[key] = nil }
                return .success(Payload.ok)
            }
            let parent = ReferenceModel.parent(p)
            return parent == "/" || nodes[parent] != nil ? .success(Payload.ok) : .failure(.ENOENT)
        case .directory(let p):
            guard nodes[p] != nil else { return .failure(.ENOENT) }
            let prefix = p == "/" ? "/" : p + "/"
            let names = nodes.keys.filter { $0.hasPrefix(prefix) && $0 != p && !$0.dropFirst(prefix.count).contains("/") }
                .map { String($0.dropFirst(prefix.count)) }
                .sorted { b($0).lexicographicallyPrecedes(b($1)) }
            return .success(Payload.join(names.map { b($0) }))
        }
    }

    /// Runs `ops` and returns their outcomes.
    mutating func run(_ ops: [Op]) -> [Outcome] { ops.map { apply($0) } }
}

private func outcome(_ reply: Reply) -> Outcome {
    if let error = reply.error { return .failure(error) }
    return .success(reply.payload)
}

private func send(_ op: ReferenceModel.Op, _ client: TestClient, tx: UInt32) -> Outcome {
    switch op {
    case .read(let p): return outcome(client.read(p, tx: tx))
    case .write(let p, let v): return outcome(client.write(p, v, tx: tx))
    case .mkdir(let p): return outcome(client.mkdir(p, tx: tx))
    case .rm(let p): return outcome(client.rm(p, tx: tx))
    case .directory(let p): return outcome(client.directory(p, tx: tx))
    case .getPerms(let p): return outcome(client.getPerms(p, tx: tx))
    }
}

/// Statistics over one run, to make sure the interesting paths were exercised.
struct RunStats {
    var commits = 0, eagains = 0, aborts = 0, merges = 0, rebases = 0, fastForwards = 0, plainOps = 0
}

private let paths = ["/t", "/t/a", "/t/b", "/t/a/x", "/t/a/y", "/t/b/x", "/t/c", "/t/c/z/w"]

private func randomOp(_ rng: inout SplitMix64) -> ReferenceModel.Op {
    let path = paths[rng.below(paths.count)]
    switch rng.below(10) {
    case 0, 1, 2: return .read(path)
    case 3, 4, 5: return .write(path, "v\(rng.below(4))")
    case 6: return .rm(path)
    case 7: return .mkdir(path)
    case 8: return .directory(path)
    default: return .getPerms(path)
    }
}

private func storeUnderT(_ server: Server) -> [String: String] {
    dump(server).filter { $0.key == "/t" || $0.key.hasPrefix("/t/") }
}

/// One seeded run; records issues through `#expect`.
private func runInterleaving(seed: UInt64, connections: Int, steps: Int) -> RunStats {
    var rng = SplitMix64(seed: seed)
    let server = Server(time: 1_700_000_000)
    let clients = (0..<connections).map { _ in TestClient(server) }
    var model = ReferenceModel(nodes: [:])
    struct Open { var id: UInt32; var snapshot: ReferenceModel; var log: [(ReferenceModel.Op, Outcome)]; var remaining: Int }
    var open = [Open?](repeating: nil, count: connections)
    var stats = RunStats()

    for step in 0..<steps {
        let i = rng.below(connections)
        let c = clients[i]
        if var tx = open[i] {
            if tx.remaining > 0 {
                let op = randomOp(&rng)
                let got = send(op, c, tx: tx.id)
                tx.log.append((op, got))
                tx.remaining -= 1
                open[i] = tx
                continue
            }
            open[i] = nil
            // Snapshot isolation: inside the tx the client saw exactly a serial run on its snapshot.
            var snapshot = tx.snapshot
            let snapshotOutcomes = snapshot.run(tx.log.map { $0.0 })
            #expect(snapshotOutcomes == tx.log.map { $0.1 }, "seed \(seed) step \(step): tx view is not its snapshot")
            if rng.below(10) == 0 {
                #expect(c.end(tx.id, commit: false).isOK)
                stats.aborts += 1
                #expect(storeUnderT(server) == model.nodes, "seed \(seed) step \(step): abort changed the store")
                continue
            }
            let headBefore = server.history.head
            let reply = c.end(tx.id)
            var serial = model
            let serialOutcomes = serial.run(tx.log.map { $0.0 })
            let identical = serialOutcomes == tx.log.map { $0.1 }
            if reply.isOK {
                stats.commits += 1
                // Serializability: the tx's observations equal a serial run at its commit point,
                // and the store equals the serial model afterwards.
                #expect(identical, "seed \(seed) step \(step): committed tx \(tx.log.map { "\($0.0)" }) is not serializable")
                model = serial
                #expect(storeUnderT(server) == model.nodes, "seed \(seed) step \(step): store differs from serial replay")
                let head = server.history.head
                if head === headBefore {
                    // Nothing changed (read-only or no-op).
                } else if head.parents.count == 2 {
                    stats.merges += 1
                    // A merge commit is honest: its tree is the three-way merge of its parents
                    // against the branch's base.
                    let branch = head.parents[1]
                    if let base = branch.parents.first,
                       let merged = try? ThreeWayMerge.merge(base: base.root, ours: head.parents[0].root,
                                                             theirs: branch.root, generations: GenerationCounter()) {
                        #expect(Tree.equal(merged, head.root), "seed \(seed) step \(step): merge commit tree")
                    } else {
                        Issue.record("seed \(seed) step \(step): merge commit whose parents do not merge")
                    }
                } else if s(head.message).hasSuffix("(rebased)") {
                    stats.rebases += 1
                } else {
                    stats.fastForwards += 1
                }
            } else {
                #expect(reply.error == .EAGAIN, "seed \(seed) step \(step): unexpected \(reply)")
                stats.eagains += 1
                // Justified: some result the tx saw differs from the state at commit — or it
                // conflicts with another open transaction that the starvation guard protects:
                // that one's observations hold now and would not after this commit.
                let protectsAnother = identical && open.contains { other in
                    guard let other else { return false }
                    var now = model
                    var after = serial
                    let recorded = other.log.map { $0.1 }
                    return now.run(other.log.map { $0.0 }) == recorded && after.run(other.log.map { $0.0 }) != recorded
                }
                #expect(!identical || protectsAnother,
                        "seed \(seed) step \(step): unjustified EAGAIN for \(tx.log.map { "\($0.0)" })")
                #expect(storeUnderT(server) == model.nodes, "seed \(seed) step \(step): EAGAIN changed the store")
            }
            continue
        }
        if rng.below(4) == 0 {
            // A plain request outside any transaction: a one-op serial step.
            let op = randomOp(&rng)
            let got = send(op, c, tx: 0)
            #expect(got == model.apply(op), "seed \(seed) step \(step): \(op)")
            #expect(storeUnderT(server) == model.nodes, "seed \(seed) step \(step): after \(op)")
            stats.plainOps += 1
        } else {
            open[i] = Open(id: c.start(), snapshot: model, log: [], remaining: 1 + rng.below(4))
        }
    }
    #expect(clients[0].request(.control, args("check")).text == "OK\0", "seed \(seed): CONTROL check")
    return stats
}

@Suite struct TransactionPropertyTests {
    @Test(arguments: [1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 144, 233] as [UInt64])
    func randomInterleavingsAreSerializable(seed: UInt64) {
        let stats = runInterleaving(seed: seed, connections: 2 + Int(seed % 3), steps: 1500)
        #expect(stats.commits > 50)
        #expect(stats.eagains > 0)
    }

    @Test func interleavingsExerciseEveryCommitKind() {
        var total = RunStats()
        for seed in 1000..<1006 as Range<UInt64> {
            let stats = runInterleaving(seed: seed, connections: 4, steps: 500)
            total.commits += stats.commits
            total.eagains += stats.eagains
            total.merges += stats.merges
            total.rebases += stats.rebases
            total.fastForwards += stats.fastForwards
            total.aborts += stats.aborts
        }
        #expect(total.merges > 0)
        #expect(total.rebases > 0)
        #expect(total.fastForwards > 0)
        #expect(total.eagains > 0)
        #expect(total.aborts > 0)
    }

    @Test func referenceModelAgreesWithPlainRequests() {
        // Sanity of the model itself on a fixed script.
        var m = ReferenceModel(nodes: [:])
        #expect(m.apply(.rm("/t/a")) == .failure(.ENOENT))
        #expect(m.apply(.write("/t/a/x", "1")) == .success(Payload.ok))
        #expect(m.nodes == ["/t": "", "/t/a": "", "/t/a/x": "1"])
        #expect(m.apply(.directory("/t")) == .success(args("a")))
        #expect(m.apply(.rm("/t/b")) == .success(Payload.ok))
        #expect(m.apply(.rm("/t")) == .success(Payload.ok))
        #expect(m.nodes.isEmpty)
    }
}
