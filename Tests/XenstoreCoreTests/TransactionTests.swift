// Transaction semantics: C's `ta err`, branch merges vs rebases, listing conflicts, and lost-update freedom under retries.

import Testing
import XenstoreStore
import XenstoreWire
@testable import XenstoreServer

@Suite struct TransactionTests {
    let server = Server(time: 1_700_000_000)

    @Test func taErrOutsideWriteOfReadNodeGivesEAGAINAndOutsideWins() {
        // test-xenstore.c `ta err`.
        let c = TestClient(server)
        let outside = TestClient(server)
        c.write("/ta/a", "0")
        c.write("/ta/b", "0")
        let tx = c.start()
        #expect(c.read("/ta/a", tx: tx).text == "0")
        #expect(outside.write("/ta/a", "outside").isOK)
        #expect(c.write("/ta/b", "tx", tx: tx).isOK)
        let commitsBefore = server.history.commitCount
        #expect(c.end(tx).error == .EAGAIN)
        #expect(server.history.commitCount == commitsBefore)
        #expect(c.read("/ta/a").text == "outside")
        #expect(c.read("/ta/b").text == "0")
        #expect(c.end(tx).error == .ENOENT)  // the transaction is gone after EAGAIN
    }

    @Test func taRmwAndAbort() {
        // test-xenstore.c `ta rmw` and `ta rmw x`.
        let c = TestClient(server)
        let outside = TestClient(server)
        c.write("/rmw", "1")
        let tx = c.start()
        let value = Int(c.read("/rmw", tx: tx).text) ?? -100
        c.write("/rmw", "\(value + 1)", tx: tx)
        #expect(c.read("/rmw", tx: tx).text == "2")
        #expect(outside.read("/rmw").text == "1")
        #expect(c.end(tx).isOK)
        #expect(outside.read("/rmw").text == "2")
        let tx2 = c.start()
        c.write("/rmw", "99", tx: tx2)
        #expect(c.end(tx2, commit: false).isOK)
        #expect(outside.read("/rmw").text == "2")
    }

    /// A dom0 transaction whose requests cannot see what others committed meanwhile is merged
    /// without replaying it, with the same result; one that read a node changed meanwhile is
    /// replayed and fails; a guest's transaction is always replayed (its quotas count nodes
    /// anywhere). Debug builds check every merge without replay against a replay.
    @Test func disjointPrivilegedTransactionsMergeWithoutReplay() {
        let dom0 = TestClient(server)
        let other = TestClient(server)
        dom0.write("/vm/a/name", "a")
        dom0.write("/vm/b/name", "b")
        var tx = dom0.start()
        #expect(dom0.read("/vm/a/name", tx: tx).text == "a")
        #expect(dom0.write("/vm/a/state", "running", tx: tx).isOK)
        #expect(other.write("/vm/b/state", "paused").isOK)  // moves the head, elsewhere
        let replayedBefore = server.counters.transactionRequestsReplayed
        #expect(dom0.end(tx).isOK)
        #expect(server.counters.transactionsMergedWithoutReplay == 1)
        #expect(server.counters.transactionRequestsReplayed == replayedBefore)
        #expect(dump(server)["/vm/a/state"] == "running" && dump(server)["/vm/b/state"] == "paused")
        #expect(server.history.head.parents.count == 2)  // a merge commit, as with a replay

        // The read node changed meanwhile: replayed, a true conflict.
        tx = dom0.start()
        #expect(dom0.read("/vm/a/name", tx: tx).text == "a")
        #expect(dom0.write("/vm/a/state", "stopped", tx: tx).isOK)
        #expect(other.write("/vm/a/name", "renamed").isOK)
        #expect(dom0.end(tx).error == .EAGAIN)
        #expect(server.counters.transactionsMergedWithoutReplay == 1)
        #expect(dump(server)["/vm/a/state"] == "running")

        // A listing sees a child created below it: replayed, and the listing differs.
        tx = dom0.start()
        #expect(dom0.directory("/vm/b", tx: tx).error == nil)
        #expect(dom0.write("/vm/a/state", "stopped", tx: tx).isOK)
        #expect(other.write("/vm/b/extra", "1").isOK)
        #expect(dom0.end(tx).error == .EAGAIN)
        #expect(server.counters.transactionsMergedWithoutReplay == 1)

        // A guest's transaction is replayed even when disjoint.
        let guest = TestClient(server, caller: Caller(domid: 5, privileged: false))
        giveHome(to: 5, by: dom0)
        tx = guest.start()
        #expect(guest.write("/local/domain/5/data/x", "1", tx: tx).isOK)
        #expect(other.write("/vm/b/state", "running").isOK)
        #expect(guest.end(tx).isOK)
        #expect(server.counters.transactionsMergedWithoutReplay == 1)
        #expect(server.counters.transactionRequestsReplayed > replayedBefore)
    }

    @Test func interferingCases() {
        let c = TestClient(server)
        let o = TestClient(server)
        c.write("/i/a", "1")
        c.write("/i/b", "1")
        // Read A, outside writes B, tx writes C: no conflict.
        var tx = c.start()
        _ = c.read("/i/a", tx: tx)
        o.write("/i/b", "2")
        c.write("/i/c", "tx", tx: tx)
        #expect(c.end(tx).isOK)
        #expect(dump(server)["/i/c"] == "tx" && dump(server)["/i/b"] == "2")
        // Concurrent delete of a read node.
        tx = c.start()
        _ = c.read("/i/a", tx: tx)
        o.rm("/i/a")
        c.write("/i/d", "x", tx: tx)
        #expect(c.end(tx).error == .EAGAIN)
        // Read of a missing node, then it is created outside.
        tx = c.start()
        #expect(c.read("/i/new", tx: tx).error == .ENOENT)
        o.write("/i/new", "appeared")
        c.write("/i/e", "x", tx: tx)
        #expect(c.end(tx).error == .EAGAIN)
        // Two interfering transactions: first commit wins, second EAGAIN.
        let t1 = c.start()
        let t2 = o.start()
        let v1 = c.read("/i/b", tx: t1).text
        let v2 = o.read("/i/b", tx: t2).text
        c.write("/i/b", v1 + "+1", tx: t1)
        o.write("/i/b", v2 + "+2", tx: t2)
        #expect(c.end(t1).isOK)
        #expect(o.end(t2).error == .EAGAIN)
        #expect(c.read("/i/b").text == "2+1")
        // A read-only transaction whose reads changed also fails (like C).
        tx = c.start()
        _ = c.read("/i/b", tx: tx)
        o.write("/i/b", "3")
        #expect(c.end(tx).error == .EAGAIN)
        // Permission reads count as reads.
        tx = c.start()
        _ = c.getPerms("/i/b", tx: tx)
        o.setPerms("/i/b", "r0")
        c.write("/i/f", "", tx: tx)
        #expect(c.end(tx).error == .EAGAIN)
    }

    @Test func disjointDomainSubtreesMergeWithTwoParents() {
        let c1 = TestClient(server)
        let c2 = TestClient(server)
        let t1 = c1.start()
        let t2 = c2.start()
        for key in ["name", "memory/target", "device/vif/0/state"] {
            #expect(c1.write("/local/domain/1/\(key)", "one", tx: t1).isOK)
            #expect(c2.write("/local/domain/2/\(key)", "two", tx: t2).isOK)
        }
        let base = server.history.head
        #expect(c1.end(t1).isOK)
        let first = server.history.head
        #expect(first.parents.count == 1 && first.parents[0] === base)  // fast-forward
        #expect(s(first.message) == "Domain 0: merging transaction \(t1)")
        #expect(c2.end(t2).isOK)  // no EAGAIN: the subtrees are disjoint
        let merge = server.history.head
        #expect(merge.parents.count == 2)
        #expect(s(merge.message) == "Domain 0: merging transaction \(t2)")
        #expect(merge.parents[0] === first)
        let branch = merge.parents[1]
        #expect(branch.parents.count == 1 && branch.parents[0] === base)
        #expect(s(branch.message) == "Domain 0: transaction \(t2)")
        #expect(Tree.equal(branch.root, c2Tree(base: base.root)))
        let d = dump(server)
        #expect(d["/local/domain/1/device/vif/0/state"] == "one")
        #expect(d["/local/domain/2/device/vif/0/state"] == "two")
        #expect(server.history.commitCount == 4)  // initial, t1, branch t2, merge
    }

    /// The tree transaction 2 built on its own: base plus /local/domain/2/...
    private func c2Tree(base: Node) -> Node {
        let scratch = Server(time: 0)
        let c = TestClient(scratch)
        for key in ["name", "memory/target", "device/vif/0/state"] { c.write("/local/domain/2/\(key)", "two") }
        return scratch.history.head.root
    }

    @Test func blindWritesOfSameKeyRebaseAndLaterCommitWins() {
        let c1 = TestClient(server)
        let c2 = TestClient(server)
        c1.write("/blind", "0")
        var t1 = c1.start()
        var t2 = c2.start()
        c1.write("/blind", "first", tx: t1)
        c2.write("/blind", "second", tx: t2)
        #expect(c1.end(t1).isOK)
        #expect(c2.end(t2).isOK)
        #expect(c1.read("/blind").text == "second")
        let head = server.history.head
        #expect(head.parents.count == 1)
        #expect(s(head.message) == "Domain 0: merging transaction \(t2) (rebased)")
        // Reverse commit order: the later commit still wins.
        t1 = c1.start()
        t2 = c2.start()
        c1.write("/blind", "A", tx: t1)
        c2.write("/blind", "B", tx: t2)
        #expect(c2.end(t2).isOK)
        #expect(c1.end(t1).isOK)
        #expect(c1.read("/blind").text == "A")
    }

    @Test func rebaseWhenTreeMergeDisagreesWithSerialReplay() {
        // The tx removes /q while it is absent (OK); meanwhile /q is created outside. Serially the
        // tx comes last, so /q must go: a tree merge would keep it, hence a rebased commit.
        let c = TestClient(server)
        let o = TestClient(server)
        let tx = c.start()
        #expect(c.rm("/q", tx: tx).isOK)
        c.write("/r", "x", tx: tx)
        o.write("/q", "created")
        #expect(c.end(tx).isOK)
        #expect(c.read("/q").error == .ENOENT)
        #expect(c.read("/r").text == "x")
        let head = server.history.head
        #expect(head.parents.count == 1)
        #expect(s(head.message) == "Domain 0: merging transaction \(tx) (rebased)")
    }

    @Test func listingThenConcurrentChildAddIsEAGAIN() {
        let c = TestClient(server)
        let o = TestClient(server)
        c.write("/dir/a", "1")
        c.write("/dir/b", "1")
        var tx = c.start()
        #expect(c.directory("/dir", tx: tx).strings == ["a", "b"])
        o.write("/dir/c", "new")
        c.write("/elsewhere", "x", tx: tx)
        #expect(c.end(tx).error == .EAGAIN)
        #expect(c.read("/elsewhere").error == .ENOENT)
        // Child removal changes the listing too.
        tx = c.start()
        _ = c.directory("/dir", tx: tx)
        o.rm("/dir/a")
        c.write("/elsewhere", "x", tx: tx)
        #expect(c.end(tx).error == .EAGAIN)
        // A value change of a listed child does not change the listing: commit succeeds.
        tx = c.start()
        #expect(c.directory("/dir", tx: tx).strings == ["b", "c"])
        o.write("/dir/b", "changed")
        c.write("/elsewhere", "x", tx: tx)
        #expect(c.end(tx).isOK)
        #expect(c.read("/elsewhere").text == "x")
        // DIRECTORY_PART listings are checked as well.
        tx = c.start()
        _ = c.request(.directoryPart, args("/dir", "0"), tx: tx)
        o.write("/dir/d", "")
        c.write("/elsewhere", "y", tx: tx)
        #expect(c.end(tx).error == .EAGAIN)
    }

    @Test func writesCreatingSiblingsUnderSameParentBothCommit() {
        // C xenstored gives EAGAIN here (observed with Debian's 4.17 daemon); the branch design merges (like oxenstored).
        let c = TestClient(server)
        let o = TestClient(server)
        c.mkdir("/p")
        let tx = c.start()
        c.write("/p/s1", "1", tx: tx)
        o.write("/p/s2", "2")
        #expect(c.end(tx).isOK)
        #expect(c.directory("/p").strings == ["s1", "s2"])
    }

    @Test func failedOperationInsideTransactionMustFailAgainOnReplay() {
        let c = TestClient(server)
        let o = TestClient(server)
        let tx = c.start()
        #expect(c.rm("/nope/child", tx: tx).error == .ENOENT)
        o.mkdir("/nope")
        c.write("/other", "x", tx: tx)
        #expect(c.end(tx).error == .EAGAIN)  // the rm would now succeed: the tx saw a different world
    }

    @Test func readModifyWriteCounterNeverLosesUpdates() {
        let clients = (0..<4).map { _ in TestClient(server) }
        TestClient(server).write("/counter", "0")
        let perClient = 6
        var done = [Int](repeating: 0, count: clients.count)
        var phase = [Int](repeating: 0, count: clients.count)
        var txs = [UInt32](repeating: 0, count: clients.count)
        var seen = [Int](repeating: 0, count: clients.count)
        var retries = 0
        var rng = SplitMix64(seed: 7)
        var steps = 0
        while done.contains(where: { $0 < perClient }) && steps < 100_000 {
            steps += 1
            let i = rng.below(clients.count)
            guard done[i] < perClient else { continue }
            let c = clients[i]
            switch phase[i] {
            case 0:
                txs[i] = c.start()
                phase[i] = 1
            case 1:
                seen[i] = Int(c.read("/counter", tx: txs[i]).text) ?? -1000
                phase[i] = 2
            case 2:
                #expect(c.write("/counter", "\(seen[i] + 1)", tx: txs[i]).isOK)
                phase[i] = 3
            default:
                let reply = c.end(txs[i])
                if reply.isOK {
                    done[i] += 1
                } else {
                    #expect(reply.error == .EAGAIN)
                    retries += 1
                }
                phase[i] = 0
            }
        }
        #expect(TestClient(server).read("/counter").text == "\(clients.count * perClient)")
        #expect(retries > 0)  // the interleaving really did conflict
    }

    @Test func transactionCreatingDeepPathMergesWithConcurrentWrites() {
        let c = TestClient(server)
        let o = TestClient(server)
        let tx = c.start()
        // 1001 levels below the dom0 home; 2004 bytes count against path-max (2048).
        let deep = "/local/domain/0/deep" + String(repeating: "/d", count: 1000)
        #expect(c.write(deep, "bottom", tx: tx).isOK)
        o.write("/local/domain/0/deep/side", "s")
        #expect(c.end(tx).isOK)
        #expect(c.read(deep).text == "bottom")
        #expect(c.read("deep/side").text == "s")
        #expect(server.history.head.parents.count == 2)  // a genuine merge
        #expect(c.rm("deep").isOK)
        #expect(c.request(.control, args("check")).text == "OK\0")
    }
}
