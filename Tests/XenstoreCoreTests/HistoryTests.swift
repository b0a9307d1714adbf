// History: one commit per successful non-transaction mutation with its message, none for reads or failures, CONTROL check/history.

import Testing
import XenstoreStore
import XenstoreWire
@testable import XenstoreServer

@Suite struct HistoryTests {
    /// A stub domain keeps 32 commits in a 4 MiB heap: trees of commits that left the window must
    /// be freed soon after, not kept until thousands more commits compact the window (a write
    /// load of 2000-byte values ran the image out of memory that way).
    @Test func treesOfEvictedCommitsAreReleased() {
        var configuration = ServerConfiguration()
        configuration.retainedCommits = 8
        let server = Server(configuration: configuration, time: 1_700_000_000)
        let admin = TestClient(server)
        admin.write("/big", String(repeating: "v", count: 2000))
        weak let oldRoot = server.history.head.root
        #expect(oldRoot != nil)
        for index in 0..<40 { admin.write("/big", String(repeating: "w", count: 1990) + String(index)) }
        #expect(oldRoot == nil)
        #expect(server.history.commitCount == 42)
    }

    /// A guest rewriting its nodes (within its quotas) in one transaction per round must not
    /// make the in-memory history hold every round's old values: the window is bounded in bytes.
    @Test func historyWindowIsBoundedInBytes() {
        var configuration = ServerConfiguration()
        configuration.retainedHistoryBytes = 2 << 20
        let server = Server(configuration: configuration, time: 1_700_000_000)
        let admin = TestClient(server)
        let guest = TestClient(server, caller: Caller(domid: 5, privileged: false))
        admin.mkdir("/local/domain/5")
        admin.setPerms("/local/domain/5", "n5")
        let value = String(repeating: "x", count: 1000)
        weak var firstRoundValue: Node? = nil
        for round in 0..<100 {
            let tx = guest.start()
            for key in 0..<200 { #expect(guest.write("/local/domain/5/k\(key)", value + String(round), tx: tx).isOK) }
            #expect(guest.end(tx).isOK)
            if round == 0 { firstRoundValue = server.history.head.root.child(b("local"))?.child(b("domain"))?.child(b("5"))?.child(b("k0")) }
        }
        #expect(server.history.commitCount > 100)
        #expect(server.history.retainedBytes <= configuration.retainedHistoryBytes)
        #expect(firstRoundValue == nil, "the first round's values are still held")
        // Independently of the estimate: the old values really held by retained commits.
        var seen: Set<ObjectIdentifier> = []
        var headNodes: Set<ObjectIdentifier> = []
        var stack: [Node] = [server.history.head.root]
        while let node = stack.popLast() {
            headNodes.insert(ObjectIdentifier(node))
            for child in node.children { stack.append(child.node) }
        }
        var oldValueBytes = 0
        for commit in server.history.firstParentLog(limit: Int.max) {
            stack = [commit.root]
            while let node = stack.popLast() {
                let key = ObjectIdentifier(node)
                if headNodes.contains(key) || !seen.insert(key).inserted { continue }
                oldValueBytes += node.value.count
                for child in node.children { stack.append(child.node) }
            }
        }
        #expect(oldValueBytes > 0 && oldValueBytes <= configuration.retainedHistoryBytes,
                "old values held: \(oldValueBytes) bytes")
    }

    @Test func initialCommit() {
        let server = Server(time: 1_700_000_000)
        let head = server.history.head
        #expect(server.history.commitCount == 1)
        #expect(head.parentCount == 0)
        #expect(s(head.message) == "Domain 0: initial store")
        #expect(head.time == 1_700_000_000)
        #expect(head.author == 0)
    }

    @Test func eachMutationMakesExactlyOneCommitWithItsMessage() {
        let server = Server(time: 1_700_000_000)
        let admin = TestClient(server, time: 1_700_000_100)
        let guest = TestClient(server, caller: Caller(domid: 5, privileged: false), time: 1_700_000_200)
        admin.mkdir("/local/domain/5")
        admin.setPerms("/local/domain/5", "n5")
        let cases: [(UInt32, () -> Reply, String)] = [
            (0, { admin.write("/a/b", "1") }, "Domain 0: write /a/b"),
            (0, { admin.mkdir("/m/n") }, "Domain 0: mkdir /m/n"),
            (0, { admin.setPerms("/a/b", "n0", "r5") }, "Domain 0: set_perms /a/b"),
            (0, { admin.rm("/a") }, "Domain 0: rm /a"),
            (0, { admin.write("rel", "x") }, "Domain 0: write /local/domain/0/rel"),
            (5, { guest.write("x", "1") }, "Domain 5: write /local/domain/5/x"),
            (5, { guest.rm("/local/domain/5/x") }, "Domain 5: rm /local/domain/5/x"),
        ]
        for (author, action, message) in cases {
            let before = server.history.head
            let count = server.history.commitCount
            #expect(action().isOK, "\(message)")
            let head = server.history.head
            #expect(server.history.commitCount == count + 1, "\(message)")
            #expect(s(head.message) == message)
            #expect(head.parents.count == 1 && head.parents[0] === before)
            #expect(head.author == author)
            #expect(head.time == (author == 0 ? admin.time : guest.time))
            #expect(!Tree.equal(head.root, before.root))
        }
        #expect(server.history.head.author == 5)
    }

    @Test func readsAndFailuresMakeNoCommits() {
        let server = Server(time: 1_700_000_000)
        let c = TestClient(server)
        let guest = TestClient(server, caller: Caller(domid: 5, privileged: false))
        c.write("/x/y", "v")
        let count = server.history.commitCount
        let head = server.history.head
        c.read("/x/y")
        c.read("/missing")
        c.directory("/x")
        c.request(.directoryPart, args("/x", "0"))
        c.getPerms("/x")
        c.watch("/x", "t")
        c.unwatch("/x", "t")
        c.request(.getDomainPath, args("3"))
        c.request(.control, args("check"))
        c.request(.control, args("history"))
        c.request(.getQuota, args("nodes"))
        // Failures.
        c.write("/bad/", "v")
        c.rm("/")
        c.rm("/no/such")
        c.setPerms("/x", "q0")
        c.request(99, [])
        guest.write("/x/y", "no")
        guest.rm("/x")
        // Transactions that change nothing.
        let ro = c.start()
        c.read("/x/y", tx: ro)
        #expect(c.end(ro).isOK)
        let aborted = c.start()
        c.write("/x/y", "tx", tx: aborted)
        #expect(c.end(aborted, commit: false).isOK)
        #expect(server.history.commitCount == count)
        #expect(server.history.head === head)
    }

    @Test func mutationsThatChangeNothingMakeNoCommits() {
        let server = Server(time: 1_700_000_000)
        let c = TestClient(server)
        c.write("/x/y", "v")
        let count = server.history.commitCount
        #expect(c.request(.mkdir, args("/x/y")).isOK)
        #expect(c.request(.rm, args("/x/missing")).isOK)
        #expect(server.history.commitCount == count)
        c.write("/x/y", "v")  // an unchanged rewrite is a change (it fires watches) and commits
        #expect(server.history.commitCount == count + 1)
    }

    @Test func transactionCommitIsOneCommit() {
        let server = Server(time: 1_700_000_000)
        let c = TestClient(server)
        let count = server.history.commitCount
        let tx = c.start()
        for i in 0..<10 { c.write("/many/\(i)", "\(i)", tx: tx) }
        #expect(server.history.commitCount == count)
        #expect(c.end(tx).isOK)
        #expect(server.history.commitCount == count + 1)
        #expect(s(server.history.head.message) == "Domain 0: merging transaction \(tx)")
    }

    @Test func committedEffectsWhenRequested() {
        var config = ServerConfiguration()
        config.reportCommits = true
        let server = Server(configuration: config, time: 0)
        let c = TestClient(server)
        _ = server.takeEffects()
        c.write("/e", "1")
        c.read("/e")
        c.write("/e", "2")
        let effects = server.takeEffects().filter { if case .committed = $0 { return true } else { return false } }
        #expect(effects == [.committed(sequence: 2), .committed(sequence: 3)])
    }

    @Test func controlHistoryListsNewestFirst() throws {
        let server = Server(time: 1_700_000_000)
        let c = TestClient(server)
        c.write("/h1", "")
        c.write("/h2", "")
        let reply = c.request(.control, args("history", "2"))
        let lines = s(Array(reply.payload.dropLast())).split(separator: "\n").map(String.init)
        try #require(lines.count == 2)
        #expect(lines[0].hasSuffix(" Domain 0: write /h2"))
        #expect(lines[1].hasSuffix(" Domain 0: write /h1"))
        #expect(lines[0].hasPrefix(s(server.history.id(of: server.history.head).hex) + " 1700000000 "))
        #expect(c.request(.control, args("help")).error == nil)
        #expect(c.request(.control, args("memreport")).text.contains("commits: 3"))
    }

    @Test func controlProfileGoesToTheShellsProfiler() {
        // no profiler (the host daemon): refused as an unknown command
        #expect(TestClient(Server(time: 1)).request(.control, args("profile")).error == .EINVAL)
        var configuration = ServerConfiguration()
        var asked: [ServerConfiguration.ProfileRequest] = []
        configuration.profile = { request in
            asked.append(request)
            return b("rounds 7")
        }
        let c = TestClient(Server(configuration: configuration, time: 1))
        #expect(c.request(.control, args("profile", "start")).text == "rounds 7\0")
        #expect(c.request(.control, args("profile")).text == "rounds 7\0")
        #expect(c.request(.control, args("profile", "stop")).text == "rounds 7\0")
        #expect(c.request(.control, args("profile", "reset")).error == .EINVAL)
        #expect(c.request(.control, args("profile", "start", "now")).error == .EINVAL)
        #expect(asked == [.start, .report, .stop])
        #expect(c.request(.control, args("help")).text.contains("profile [start|stop]"))
    }

    @Test func controlTestCrashOnlyWithTheShellsHook() {
        // refused unless the shell gave a hook (the stub booted with --test-hooks)
        #expect(TestClient(Server(time: 1)).request(.control, args("test-crash")).error == .EACCES)
        var configuration = ServerConfiguration()
        var calls = 0
        configuration.testCrash = { calls += 1 }
        let c = TestClient(Server(configuration: configuration, time: 1))
        #expect(c.request(.control, args("test-crash")).text == "OK\0")
        #expect(c.request(.control, args("test-crash", "now")).error == .EINVAL)
        #expect(calls == 1)
        // the poison write: only the exact path, every time it runs
        var poisoned = 0
        var poisonConfiguration = ServerConfiguration()
        poisonConfiguration.testPoisonWrite = (b("/poison"), { poisoned += 1 })
        let p = TestClient(Server(configuration: poisonConfiguration, time: 1))
        p.write("/poison-not", "x")
        p.write("/poison", "x")
        p.write("/poison", "y")
        #expect(poisoned == 2)
    }

    @Test func controlCheckDetectsCorruptAccounting() {
        let server = Server(time: 1_700_000_000)
        let c = TestClient(server)
        c.write("/acct/a", "")
        #expect(c.request(.control, args("check")).text == "OK\0")
        // Node counts, node bytes (also what guests hold in all): each skew is detected and undone.
        for (nodes, bytes) in [([UInt32(0): 1], [UInt32: Int]()), ([:], [7: 100])] {
            var skew = Workspace(root: server.history.head.root)
            (skew.ownedNodesDelta, skew.ownedBytesDelta) = (nodes, bytes)
            server.domains.applyOwnership(of: skew)
            #expect(c.request(.control, args("check")).error == .EIO)
            (skew.ownedNodesDelta, skew.ownedBytesDelta) = (nodes.mapValues { -$0 }, bytes.mapValues { -$0 })
            server.domains.applyOwnership(of: skew)
            #expect(c.request(.control, args("check")).text == "OK\0")
        }
        server.domains.hold(64, in: .watches, by: 7)
        #expect(c.request(.control, args("check")).error == .EIO)
    }

    @Test func longHistoryIsBoundedAndTearsDown() {
        // More commits than the retained window: ids stay computable and releasing the whole
        // server (a chain of thousands of commits) must not overflow the stack.
        var server: Server? = Server(time: 1_700_000_000)
        let c = TestClient(server!)
        for i in 0..<(Limits.defaultInMemoryHistory + 500) { c.write("/long/k\(i % 7)", "\(i)") }
        #expect(server!.history.commitCount == UInt64(Limits.defaultInMemoryHistory + 501))
        #expect(server!.history.firstParentLog(limit: 100_000).count <= Limits.defaultInMemoryHistory + 1)
        _ = server!.history.id(of: server!.history.head)
        server = nil
    }

    @Test(arguments: [11, 22, 33] as [UInt64])
    func controlCheckAfterRandomWorkload(seed: UInt64) {
        var rng = SplitMix64(seed: seed)
        let server = Server(time: 1_700_000_000)
        let admin = TestClient(server)
        let guests = [5, 6, 7].map { TestClient(server, caller: Caller(domid: UInt32($0), privileged: false)) }
        for domid in [5, 6, 7] {
            admin.mkdir("/local/domain/\(domid)")
            admin.setPerms("/local/domain/\(domid)", "n\(domid)", "r0")
        }
        admin.request(.introduce, args("6", "1", "1"))
        admin.request(.setQuota, args("6", "nodes", "12"))
        let names = ["a", "b", "c", "a/x", "b/y", "c/z/w", "d"]
        var open: [Int: UInt32] = [:]
        for _ in 0..<400 {
            let who = rng.below(4)
            let c = who == 0 ? admin : guests[who - 1]
            let domid = who == 0 ? 5 + rng.below(3) : 4 + who
            let path = "/local/domain/\(domid)/" + names[rng.below(names.count)]
            var tx: UInt32 = 0
            if let t = open[who] {
                tx = t
            } else if rng.below(5) == 0 {
                let reply = c.request(.transactionStart, [0])
                if reply.error == nil, let first = Payload.strings(reply.payload).strings.first,
                   let id = Payload.parseDecimal(first) {
                    tx = UInt32(id)
                    open[who] = tx
                }
            }
            switch rng.below(8) {
            case 0, 1, 2: c.write(path, "v\(rng.below(9))", tx: tx)
            case 3: c.rm(path, tx: tx)
            case 4: c.mkdir(path, tx: tx)
            case 5: c.setPerms(path, rng.below(2) == 0 ? "n\(domid)" : "n0", "r\(5 + rng.below(3))", tx: tx)
            case 6: c.read(path, tx: tx)
            default: c.directory(path, tx: tx)
            }
            if tx != 0 && rng.below(3) == 0 {
                let reply = c.end(tx, commit: rng.below(5) != 0)
                #expect(reply.isOK || reply.error == .EAGAIN)
                open[who] = nil
            }
            #expect(admin.request(.control, args("check")).text == "OK\0")
        }
        // The per-owner count the server keeps equals a recount of the final tree.
        var counted: [UInt32: Int] = [:]
        Tree.walk(server.history.head.root) { _, node in counted[node.permissions.owner, default: 0] += 1 }
        #expect(counted == server.domains.ownedNodes)
    }
}
