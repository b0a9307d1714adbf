// One conformance suite for every HistoryStore: the git database, the block store on a simulated device and on a file.

import Foundation
import Testing
import XenstoreBlock
import XenstoreHost
import XenstoreServer
import XenstoreStore
import XenstoreWire

/// The backends under test.
enum ConformanceBackend: String, CaseIterable, CustomStringConvertible {
    case gitDatabase = "git database"
    case blockOnSimulatedDevice = "block store on a simulated device"
    case blockOnFile = "block store on a file"

    var description: String { rawValue }
}

/// A check written once for every store: `open` opens the same storage each time it is called
/// (new the first time, as after a restart later).
private protocol ConformanceCheck {
    func run<Store: HistoryStore>(_ backend: ConformanceBackend, open: () throws -> Store) throws
}

/// Runs `check` on `backend`'s storage in a temporary directory.
private func conformance(_ backend: ConformanceBackend, _ check: some ConformanceCheck) throws {
    let root = try makeTemporaryDirectory("xsconf")
    defer { try? FileManager.default.removeItem(atPath: root) }
    switch backend {
    case .gitDatabase:
        try check.run(backend) { try GitDatabase(directory: root + "/db") }
    case .blockOnSimulatedDevice:
        let device = SimDevice(blockSize: 4096, blockCount: 1024)
        try check.run(backend) { try BlockStore(device: device) }
    case .blockOnFile:
        try check.run(backend) { try openBlockFile(path: root + "/disk.img", createSize: 4 << 20, requiredSize: nil, policy: SquashPolicy()) }
    }
}

/// Fresh start, batches with and without a new connection state, a reopen that resumes the
/// same head, tree and state, older commits read back, and a continued chain.
private struct RoundTrip: ConformanceCheck {
    func run<Store: HistoryStore>(_ backend: ConformanceBackend, open: () throws -> Store) throws {
        let first = try open()
        #expect(first.isNew, "\(backend): a new store must say so")
        let (server, resumedAt) = try Server.open(from: first, configuration: ServerConfiguration(), time: 1_700_000_000)
        #expect(resumedAt == nil)
        let initialID = server.history.id(of: server.history.head)
        let client = TestClient(server)
        #expect(client.write("/vm/a", "1").isOK)
        #expect(client.write("/vm/b", "2").isOK)
        try server.persist(to: first, state: b("connections v1"))
        let tx = client.start()
        #expect(client.write("/vm/c", "3", tx: tx).isOK)
        #expect(client.end(tx).isOK)
        #expect(client.rm("/vm/a").isOK)
        try server.persist(to: first, state: nil)  // two commits in one batch, the state kept
        let head = server.history.id(of: server.history.head)

        let second = try open()
        #expect(!second.isNew, "\(backend): a reopened store is not new")
        #expect(try second.loadState() == b("connections v1"))
        let (resumed, resumedFrom) = try Server.open(from: second, configuration: ServerConfiguration(), time: 1_700_000_100)
        #expect(resumedFrom == head)
        let again = TestClient(resumed)
        #expect(again.read("/vm/a").error == .ENOENT)
        #expect(again.read("/vm/b").text == "2")
        #expect(again.read("/vm/c").text == "3")
        // Older commits come back through the store (restore, revert and merges use this).
        let initial = try #require(resumed.revisionLoader?(initialID), "\(backend): the initial commit is not readable")
        #expect(Tree.lookup(initial.root, [b("vm")]) == nil)
        #expect(again.write("/vm/d", "4").isOK)
        try resumed.persist(to: second, state: b("connections v2"))
        let third = try open()
        #expect(try third.loadState() == b("connections v2"))
        #expect(try third.loadHistory(generations: GenerationCounter(), retainedCommits: 8).map { $0.id(of: $0.head) }
                == resumed.history.id(of: resumed.history.head))
    }
}

/// The ids a store keeps are git's ids: the same as an in-memory server computes for the same requests.
private struct SameIDs: ConformanceCheck {
    func run<Store: HistoryStore>(_ backend: ConformanceBackend, open: () throws -> Store) throws {
        func workload(_ server: Server) {
            let client = TestClient(server, time: 1_700_000_000)
            for index in 0..<5 { #expect(client.write("/k\(index)", "v\(index)").isOK) }
        }
        let store = try open()
        let (server, _) = try Server.open(from: store, configuration: ServerConfiguration(), time: 1_700_000_000)
        workload(server)
        try server.persist(to: store, state: nil)
        let reference = Server(configuration: ServerConfiguration(), time: 1_700_000_000)
        workload(reference)
        let stored = try #require(try open().loadHistory(generations: GenerationCounter(), retainedCommits: 8))
        #expect(stored.id(of: stored.head) == reference.history.id(of: reference.history.head), "\(backend)")
    }
}

@Suite("HistoryStore conformance: every backend behaves the same")
struct HistoryStoreConformanceTests {
    @Test("fresh start, batches, connection state, reopen, older commits", arguments: ConformanceBackend.allCases)
    func roundTrip(_ backend: ConformanceBackend) throws {
        try conformance(backend, RoundTrip())
    }

    @Test("the stored ids are git's ids, as an in-memory server computes them", arguments: ConformanceBackend.allCases)
    func sameIDs(_ backend: ConformanceBackend) throws {
        try conformance(backend, SameIDs())
    }
}
