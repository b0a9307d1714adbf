// The boot branch: a server that served from a fresh store since boot adopts the history on its disk (simulated), merged with what was written since boot.

import Foundation
import Testing
import XenstoreBlock
@testable import XenstoreServer
import XenstoreStore
import XenstoreWire

private let bootTime: Int64 = 1_800_000_000

/// A simulated disk large enough for the tests' histories.
private func blankDisk() -> SimDevice { SimDevice(blockSize: 512, blockCount: 2 + 2 * 512) }

/// A disk holding a history written by an earlier run (through `Server.open`, as the stub and
/// the host daemon do): `write` runs dom0's requests on it; returns the disk's head id.
private func diskWithHistory(_ device: SimDevice, _ write: (TestClient) -> Void) throws -> ObjectID {
    let store = try BlockStore(device: device)
    let (server, _) = try Server.open(from: store, configuration: ServerConfiguration(), time: bootTime - 1000)
    let admin = TestClient(server, time: bootTime - 1000)
    write(admin)
    try server.persist(to: store, state: nil)
    return try #require(store.headID)
}

/// The store of the earlier run, as a test writes it for most cases: a guest (5) owning its home
/// with three nodes in it, a node the boot branch never writes, a node both sides write, and a
/// value under /tool/xenstored (a node of the initial tree).
private func typicalDisk(_ device: SimDevice) throws -> ObjectID {
    try diskWithHistory(device) { admin in
        _ = TestClient(admin.server, caller: Caller(domid: 5, privileged: false))  // domain 5 exists
        admin.mkdir("/local/domain/5")
        #expect(admin.setPerms("/local/domain/5", "n5").isOK)
        for name in ["name", "memory", "vm"] { admin.write("/local/domain/5/\(name)", "disk-\(name)") }
        admin.setPerms("/local/domain/5/name", "n5")
        admin.setPerms("/local/domain/5/memory", "n5")
        admin.setPerms("/local/domain/5/vm", "n5")
        admin.write("/disk/only", "from the disk")
        admin.write("/shared", "disk")
        admin.write("/tool/xenstored/version", "1")
    }
}

/// Opens the disk again as the stub does once blkfront is connected.
private func reopen(_ device: SimDevice) throws -> BlockStore<SimDevice> { try BlockStore(device: device) }

/// Every node of the server's head, path -> value.
private func contents(_ server: Server) -> [String: String] { dump(server) }

/// The stored commit record of `id`.
private func record(_ store: BlockStore<SimDevice>, _ id: ObjectID) throws -> CommitRecord {
    try #require(try store.commitRecord(id))
}

@Suite struct BootMergeTests {
    /// Disk-only nodes, boot-only nodes, and a node both wrote (the boot branch's value wins and
    /// is reported); the merge commit's parents are the disk's head then the boot branch's head.
    @Test func bootBranchIsMergedOntoTheDiskHead() throws {
        let device = blankDisk()
        let diskHead = try typicalDisk(device)
        let server = Server(time: bootTime)
        let dom0 = TestClient(server, time: bootTime)
        let vbd = "/local/domain/0/backend/vbd/1/51712"
        #expect(dom0.write("\(vbd)/state", "4").isOK)
        #expect(dom0.write("\(vbd)/params", "/dev/vg/xenstore").isOK)
        #expect(dom0.write("/shared", "boot").isOK)
        let bootHead = server.history.head
        let store = try reopen(device)
        let report = try server.adoptRecoveredHistory(from: store, state: nil, time: bootTime + 5)

        let merged = contents(server)
        #expect(merged["/disk/only"] == "from the disk")
        #expect(merged["/local/domain/5/name"] == "disk-name")
        #expect(merged["/tool/xenstored/version"] == "1")
        #expect(merged["\(vbd)/state"] == "4")
        #expect(merged["\(vbd)/params"] == "/dev/vg/xenstore")
        #expect(merged["/shared"] == "boot")
        #expect(dom0.read("/disk/only").text == "from the disk")
        #expect(report.overridden == [.value(path: [b("shared")])])
        #expect(report.recoveredHead == diskHead)
        #expect(server.takeEffects().contains(.log(b("boot branch merged onto the history from the disk; conflicting nodes kept as written since boot: 1"))))

        let head = server.history.head
        #expect(report.head == server.history.id(of: head))
        #expect(head.parentIDs == [diskHead, server.history.id(of: bootHead)])
        #expect(s(head.message) == "Xenstore: merging the boot branch onto the history from the disk\n\n"
                + "Nodes both changed, kept as the boot branch wrote them: 1\nvalue /shared")
        // Durable when adoption returned: the disk's head is the merge commit.
        #expect(store.headID == report.head)
        #expect(try record(store, report.head).parents == [diskHead, server.history.id(of: bootHead)])
    }

    /// Without the merge's node bookkeeping the guest's nodes from the disk would not count:
    /// ownership is recounted from the merged tree, so its `nodes` quota holds.
    @Test func ownershipIsRecountedFromTheMergedTree() throws {
        let device = blankDisk()
        _ = try typicalDisk(device)  // domain 5 owns its home and three nodes: 4
        var configuration = ServerConfiguration()
        configuration.quotas.nodes = 5
        let server = Server(configuration: configuration, time: bootTime)
        let dom0 = TestClient(server, time: bootTime)
        let guest = TestClient(server, caller: Caller(domid: 5, privileged: false), time: bootTime)
        dom0.mkdir("/local/domain/5")
        #expect(dom0.setPerms("/local/domain/5", "n5").isOK)
        #expect(guest.write("/local/domain/5/boot", "b").isOK)  // 2 nodes on the boot branch
        #expect(server.domains.ownedNodes[5] == 2)
        _ = try server.adoptRecoveredHistory(from: try reopen(device), state: nil, time: bootTime + 5)
        // The home (both sides), name, memory, vm (disk) and boot (boot branch).
        #expect(server.domains.ownedNodes[5] == 5)
        let expected = DomainTable.ownership(of: server.history.head.root)
        #expect(server.domains.ownedNodes == expected.nodes)
        #expect(server.domains.ownedBytes == expected.bytes)
        #expect(guest.write("/local/domain/5/more", "x").error == .ENOSPC)
        #expect(guest.write("/local/domain/5/boot", "rewritten").isOK)
    }

    /// DIRECTORY_PART tells clients a child list changed by the node's generation: every node
    /// the merge brings in place of the one clients saw (from the disk or made by the merge) has a
    /// generation newer than any handed out before, so it never repeats a number a client holds.
    @Test func nodesFromTheDiskHaveNewGenerations() throws {
        let device = blankDisk()
        _ = try typicalDisk(device)
        let server = Server(time: bootTime)
        #expect(TestClient(server, time: bootTime).write("/boot", "b").isOK)
        let bootRoot = server.history.head.root
        let handedOut = server.history.generations.current
        _ = try server.adoptRecoveredHistory(from: try reopen(device), state: nil, time: bootTime + 5)
        var replaced = 0
        var stale: [String] = []
        Tree.walk(server.history.head.root) { components, node in
            if Tree.lookup(bootRoot, components) === node { return }
            replaced += 1
            if node.generation <= handedOut { stale.append(s(components.flatMap { [0x2F] + $0 })) }
        }
        #expect(replaced > 10)
        #expect(stale.isEmpty, "nodes with generations from before the merge: \(stale)")
        // /tool/xenstored is the boot branch's untouched base node replaced by the disk's whole.
        let dom0 = TestClient(server, time: bootTime)
        let part = dom0.request(.directoryPart, args("/tool/xenstored", "0"))
        #expect(Payload.strings(part.payload).strings.first.flatMap { Payload.parseDecimal($0) }.map { $0 > handedOut } == true)
    }

    /// Deletions are judged against the boot branch's base (the initial tree): the boot branch
    /// deleting a base node the disk changed wins and is reported; deleting one the disk left as
    /// it was is no conflict; a node the boot branch created and deleted again leaves the disk's.
    @Test func deletionsAreJudgedAgainstTheBootBase() throws {
        let device = blankDisk()
        _ = try diskWithHistory(device) { admin in
            admin.write("/tool/xenstored/version", "1")  // the disk changed a base node
            admin.write("/disk/temporary", "kept")
        }
        let server = Server(time: bootTime)
        let dom0 = TestClient(server, time: bootTime)
        #expect(dom0.rm("/tool/xenstored").isOK)  // deleted on the boot branch, changed on the disk
        #expect(dom0.write("/disk/temporary", "boot").isOK)
        #expect(dom0.rm("/disk").isOK)  // created and deleted on the boot branch
        let report = try server.adoptRecoveredHistory(from: try reopen(device), state: nil, time: bootTime + 5)
        let merged = contents(server)
        #expect(merged["/tool/xenstored"] == nil && merged["/tool/xenstored/version"] == nil)
        #expect(merged["/tool"] == "")
        #expect(merged["/disk/temporary"] == "kept")
        #expect(report.overridden == [.deleteModify(path: [b("tool"), b("xenstored")])])

        // The disk left /tool/xenstored as it was at boot: deleting it is no conflict.
        let second = blankDisk()
        _ = try diskWithHistory(second) { admin in admin.write("/elsewhere", "x") }
        let other = Server(time: bootTime)
        #expect(TestClient(other, time: bootTime).rm("/tool/xenstored").isOK)
        let quiet = try other.adoptRecoveredHistory(from: try reopen(second), state: nil, time: bootTime + 5)
        #expect(quiet.overridden.isEmpty)
        #expect(contents(other)["/tool/xenstored"] == nil)
        #expect(contents(other)["/elsewhere"] == "x")
    }

    /// Clients saw the boot branch's head: watches fire for every node the disk brings, not for
    /// the nodes the merge leaves as they were (the boot branch's, including a conflict it won).
    @Test func watchesFireForWhatTheDiskBrings() throws {
        let device = blankDisk()
        _ = try typicalDisk(device)
        let server = Server(time: bootTime)
        let dom0 = TestClient(server, time: bootTime)
        #expect(dom0.write("/shared", "boot").isOK)
        #expect(dom0.write("/local/domain/0/backend/vbd/1/51712/state", "4").isOK)
        for (path, token) in [("/disk", "disk"), ("/shared", "shared"), ("/local/domain/0", "dom0"), ("/local/domain/5", "dom5")] {
            #expect(dom0.watch(path, token).isOK)
        }
        _ = dom0.takeEvents()  // the events every new watch fires
        _ = try server.adoptRecoveredHistory(from: try reopen(device), state: nil, time: bootTime + 5)
        let events = dom0.takeEvents()
        #expect(events.map(\.description).sorted() == ["/disk/only@disk", "/disk@disk", "/local/domain/5/memory@dom5",
                                                       "/local/domain/5/name@dom5", "/local/domain/5/vm@dom5",
                                                       "/local/domain/5@dom5"])
    }

    /// A transaction started on the boot branch ends after adoption like any transaction whose
    /// base is older than the head: committed when its replay gives what its client saw, EAGAIN
    /// when a read it made now answers differently.
    @Test func openTransactionsEndCorrectlyAfterAdoption() throws {
        let device = blankDisk()
        _ = try typicalDisk(device)
        let server = Server(time: bootTime)
        let dom0 = TestClient(server, time: bootTime)
        let independent = dom0.start()
        #expect(dom0.write("/boot/tx", "1", tx: independent).isOK)
        let stale = dom0.start()
        #expect(dom0.read("/disk/only", tx: stale).error == .ENOENT)
        #expect(dom0.write("/boot/stale", "1", tx: stale).isOK)
        let bootHead = server.history.head
        let store = try reopen(device)
        _ = try server.adoptRecoveredHistory(from: store, state: nil, time: bootTime + 5)
        #expect(server.openTransactionBases.allSatisfy { $0 === bootHead })
        #expect(dom0.end(independent).isOK)
        #expect(dom0.end(stale).error == .EAGAIN)
        let merged = contents(server)
        #expect(merged["/boot/tx"] == "1" && merged["/boot/stale"] == nil && merged["/disk/only"] == "from the disk")
        // The transaction's commit persists on top of the merge commit.
        let mergeID = try #require(store.headID)
        try server.persist(to: store, state: nil)
        let head = try record(store, try #require(store.headID))
        #expect(head.parents.first == mergeID)
    }

    /// After persisting and reopening (`Server.open`, as the next boot with the disk resumes),
    /// the head is the merge commit followed by what came later, its first parent the disk's old
    /// head; the boot branch's commits are on the disk through the second parent.
    @Test func reopenedStoreContinuesTheDiskHistory() throws {
        let device = blankDisk()
        let diskHead = try typicalDisk(device)
        let server = Server(time: bootTime)
        let dom0 = TestClient(server, time: bootTime)
        #expect(dom0.write("/boot/one", "1").isOK)
        #expect(dom0.write("/boot/two", "2").isOK)
        let bootHead = server.history.id(of: server.history.head)
        let store = try reopen(device)
        let report = try server.adoptRecoveredHistory(from: store, state: server.encodeState(connections: [dom0.id]),
                                                      time: bootTime + 5)
        #expect(dom0.write("/after", "3").isOK)
        try server.persist(to: store, state: nil)
        let after = server.history.id(of: server.history.head)

        let (resumed, resumedAt) = try Server.open(from: try reopen(device), configuration: ServerConfiguration(),
                                                   time: bootTime + 10)
        #expect(resumedAt == after)
        #expect(contents(resumed) == contents(server))
        #expect(resumed.bootBase == nil)
        let reread = try reopen(device)
        #expect(try record(reread, after).parents == [report.head])
        #expect(try record(reread, report.head).parents == [diskHead, bootHead])
        // The boot branch: two writes on the initial commit of this boot.
        let two = try record(reread, bootHead)
        let one = try record(reread, try #require(two.parents.first))
        let initial = try record(reread, try #require(one.parents.first))
        #expect(initial.parents.isEmpty && s(initial.message) == "Domain 0: initial store")
        // Every exported object hashes to its id (git's ids), nothing squashed away.
        var bad = 0
        let shallow = try reread.export { id, type, body in
            if GitEncoding.objectID(type, body: body) != id { bad += 1 }
        }
        #expect(bad == 0 && shallow.isEmpty)
        #expect(try reread.loadState() == server.encodeState(connections: [dom0.id]))
    }

    /// Real git reads the merged history: `git log --first-parent` runs through the disk's
    /// history, the merge commit's second parent is the boot branch's head, `git fsck` is clean.
    @Test func realGitSeesTheMergeAndBothHistories() throws {
        let device = blankDisk()
        let diskHead = try typicalDisk(device)
        let server = Server(time: bootTime)
        #expect(TestClient(server, time: bootTime).write("/boot", "b").isOK)
        let bootHead = server.history.id(of: server.history.head)
        let store = try reopen(device)
        let report = try server.adoptRecoveredHistory(from: store, state: nil, time: bootTime + 5)
        let repository = try makeTempDir("bootmerge")
        defer { try? FileManager.default.removeItem(at: repository) }
        _ = try git(["init", "-q", "--bare"], in: repository)
        var objects: [(ObjectID, GitObjectType, [UInt8])] = []
        _ = try store.export { id, type, body in objects.append((id, type, body)) }
        for (id, type, body) in objects {
            let name: String
            switch type {
            case .blob: name = "blob"
            case .tree: name = "tree"
            case .commit: name = "commit"
            }
            #expect(try git(["hash-object", "-w", "-t", name, "--stdin"], in: repository, input: body) == s(id.hex))
        }
        _ = try git(["update-ref", "refs/heads/main", s(report.head.hex)], in: repository)
        let firstParents = try git(["log", "--first-parent", "--format=%H %s", "main"], in: repository)
            .split(separator: "\n").map(String.init)
        #expect(firstParents.first == "\(s(report.head.hex)) Xenstore: merging the boot branch onto the history from the disk")
        #expect(firstParents.dropFirst().first?.hasPrefix(s(diskHead.hex)) == true)
        #expect(firstParents.last?.hasSuffix(" Domain 0: initial store") == true)
        #expect(try git(["rev-parse", "main^2"], in: repository) == s(bootHead.hex))
        #expect(try git(["merge-base", "--is-ancestor", s(diskHead.hex), "main"], in: repository).isEmpty)
        _ = try git(["fsck", "--strict", "--no-dangling"], in: repository)
    }

    /// A boot branch longer than the in-memory window reaches the disk cut where memory no
    /// longer holds it: the oldest commit held becomes a root commit, or, if its id had been asked
    /// for, keeps a parent the disk lacks (exported as shallow, as after a squash). Everything
    /// else is whole and reopens.
    @Test(arguments: [false, true]) func aBootBranchLongerThanTheWindowIsCutThere(idAsked: Bool) throws {
        let device = blankDisk()
        let diskHead = try typicalDisk(device)
        var configuration = ServerConfiguration()
        configuration.retainedCommits = 4
        let server = Server(configuration: configuration, time: bootTime)
        let dom0 = TestClient(server, time: bootTime)
        // Commits 2...13; the merge commit (14) leaves 11...14 in the window, 10 still held by 11.
        for index in 0..<12 {
            #expect(dom0.write("/boot/\(index)", "\(index)").isOK)
            if idAsked && index == 8 { _ = server.history.id(of: server.history.head) }  // commit 10
        }
        let bootHead = server.history.head
        let report = try server.adoptRecoveredHistory(from: try reopen(device), state: nil, time: bootTime + 5)
        let reread = try reopen(device)
        var bad = 0
        let shallow = try reread.export { id, type, body in
            if GitEncoding.objectID(type, body: body) != id { bad += 1 }
        }
        #expect(bad == 0)
        var oldest = try record(reread, server.history.id(of: bootHead))
        var held = 1
        while let parent = oldest.parents.first, let stored = try reread.commitRecord(parent) {
            oldest = stored
            held += 1
        }
        #expect(held == 4)  // 13, 12, 11, 10
        #expect(oldest.parents.count == (idAsked ? 1 : 0))
        #expect(shallow.count == (idAsked ? 1 : 0))
        #expect(try record(reread, report.head).parents.first == diskHead)
        let (resumed, _) = try Server.open(from: reread, configuration: ServerConfiguration(), time: bootTime + 10)
        #expect(contents(resumed) == contents(server))
        #expect(contents(resumed)["/boot/11"] == "11" && contents(resumed)["/disk/only"] == "from the disk")
    }

    /// A blank disk simply receives the boot branch's history: no merge commit, same head.
    @Test func blankDiskReceivesTheBootHistory() throws {
        let device = blankDisk()
        let server = Server(time: bootTime)
        let dom0 = TestClient(server, time: bootTime)
        #expect(dom0.write("/local/domain/0/backend/vbd/1/51712/state", "4").isOK)
        let bootHead = server.history.id(of: server.history.head)
        let store = try BlockStore(device: device)
        #expect(store.isNew)
        let report = try server.adoptRecoveredHistory(from: store, state: nil, time: bootTime + 5)
        #expect(report.recoveredHead == nil && report.head == bootHead && report.overridden.isEmpty)
        #expect(store.headID == bootHead)
        let (resumed, resumedAt) = try Server.open(from: try reopen(device), configuration: ServerConfiguration(),
                                                   time: bootTime + 10)
        #expect(resumedAt == bootHead)
        #expect(contents(resumed) == contents(server))
        // Commits are now reported for the shell to persist.
        #expect(dom0.write("/later", "x").isOK)
        #expect(server.takeEffects().contains { if case .committed = $0 { return true } else { return false } })
    }

    /// A boot branch kept in a store of its own (the stub's kept memory before its disk
    /// connects) and resumed from it (a restart in place) still merges onto the disk: the
    /// resumed server's base is the initial tree again, so only the node both sides wrote
    /// conflicts, and the merge commit's second parent is the boot branch's stored head.
    @Test func aBootBranchResumedFromItsOwnStoreIsMergedOntoTheDisk() throws {
        let device = blankDisk()
        let diskHead = try typicalDisk(device)
        let bootDevice = blankDisk()
        let (first, fresh) = try Server.open(from: try BlockStore(device: bootDevice), configuration: ServerConfiguration(),
                                             time: bootTime, bootBranch: true)
        #expect(fresh == nil)
        #expect(first.bootBase != nil)
        let dom0 = TestClient(first, time: bootTime)
        let vbd = "/local/domain/0/backend/vbd/1/51712"
        #expect(dom0.write("\(vbd)/state", "4").isOK)
        #expect(dom0.write("/shared", "boot").isOK)
        #expect(dom0.write("/tool/xenstored/boot", "yes").isOK)
        let bootStore = try BlockStore(device: bootDevice)
        try first.persist(to: bootStore, state: nil)
        let bootHead = try #require(bootStore.headID)

        // the restart: a new server from the boot branch's store
        let (resumed, resumedAt) = try Server.open(from: try BlockStore(device: bootDevice), configuration: ServerConfiguration(),
                                                   time: bootTime + 2, bootBranch: true)
        #expect(resumedAt == bootHead)
        #expect(resumed.bootBase != nil)
        let report = try resumed.adoptRecoveredHistory(from: try reopen(device), state: nil, time: bootTime + 5)
        let merged = contents(resumed)
        #expect(merged["/disk/only"] == "from the disk")
        #expect(merged["/local/domain/5/name"] == "disk-name")
        #expect(merged["/tool/xenstored/version"] == "1")
        #expect(merged["/tool/xenstored/boot"] == "yes")
        #expect(merged["\(vbd)/state"] == "4")
        #expect(merged["/shared"] == "boot")
        #expect(report.overridden == [.value(path: [b("shared")])])
        #expect(resumed.history.head.parentIDs == [diskHead, bootHead])
    }

    /// A crash after the adoption was written, before restart in place moved to the disk: the
    /// boot branch resumes from its store, dom0 writes on, and the disk is adopted again. A disk
    /// that was blank before now holds an earlier commit of that branch: the branch continues it,
    /// no merge commit. A disk that had a history gets a second merge commit, nothing reported
    /// as overridden.
    @Test(arguments: [false, true]) func anAdoptionRepeatedAfterARestartChangesNothing(diskHadHistory: Bool) throws {
        let device = blankDisk()
        let diskHead: ObjectID? = diskHadHistory ? try typicalDisk(device) : nil
        let bootDevice = blankDisk()
        let (server, _) = try Server.open(from: try BlockStore(device: bootDevice), configuration: ServerConfiguration(),
                                          time: bootTime, bootBranch: true)
        let dom0 = TestClient(server, time: bootTime)
        #expect(dom0.write("/shared", "boot").isOK)
        #expect(dom0.write("/boot/only", "yes").isOK)
        try server.persist(to: try BlockStore(device: bootDevice), state: nil)
        let first = try server.adoptRecoveredHistory(from: try reopen(device), state: nil, time: bootTime + 5)
        #expect(first.recoveredHead == diskHead)
        let firstTree = contents(server)

        let (resumed, _) = try Server.open(from: try BlockStore(device: bootDevice), configuration: ServerConfiguration(),
                                           time: bootTime + 6, bootBranch: true)
        #expect(TestClient(resumed, time: bootTime + 6).write("/after/restart", "yes").isOK)
        let resumedHead = resumed.history.id(of: resumed.history.head)
        let disk = try reopen(device)
        let again = try resumed.adoptRecoveredHistory(from: disk, state: nil, time: bootTime + 7)
        #expect(again.recoveredHead == first.head)
        #expect(again.overridden.isEmpty)
        var expected = firstTree
        expected["/after/restart"] = "yes"
        expected["/after"] = ""
        #expect(contents(resumed) == expected)
        #expect(disk.headID == again.head)
        #expect(again.continued == !diskHadHistory)
        if diskHadHistory {
            #expect(try record(disk, again.head).parents == [first.head, resumedHead])
        } else {
            #expect(again.head == resumedHead)
            #expect(try record(disk, again.head).parents == [first.head])
        }
    }

    /// Adoption is for a server with a boot branch, once: not twice, not on a server opened
    /// from a store; nothing is read or changed then.
    @Test func adoptionNeedsABootBranch() throws {
        let device = blankDisk()
        _ = try typicalDisk(device)
        let server = Server(time: bootTime)
        _ = try server.adoptRecoveredHistory(from: try reopen(device), state: nil, time: bootTime + 5)
        let head = server.history.head
        #expect(throws: OpenStoreError<BlockStoreError>.self) {
            _ = try server.adoptRecoveredHistory(from: try reopen(device), state: nil, time: bootTime + 6)
        }
        #expect(server.history.head === head)
        let (opened, _) = try Server.open(from: try reopen(device), configuration: ServerConfiguration(), time: bootTime)
        var refused = false
        let store = try reopen(device)
        do throws(OpenStoreError<BlockStoreError>) {
            _ = try opened.adoptRecoveredHistory(from: store, state: nil, time: bootTime + 6)
        } catch {
            if case .noBootBranch = error { refused = true }
        }
        #expect(refused)
        let (fresh, _) = try Server.open(from: try BlockStore(device: blankDisk()), configuration: ServerConfiguration(), time: bootTime)
        #expect(fresh.bootBase == nil)
    }
}
