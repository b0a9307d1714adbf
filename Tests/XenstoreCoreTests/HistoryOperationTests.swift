// restore, revert and merge of foreign commits in the core: results, conflicts, watches, accounting.

import Testing
import XenstoreStore
import XenstoreWire
@testable import XenstoreServer

@Suite struct HistoryOperationTests {
    func headHex(_ server: Server) -> String { s(server.history.id(of: server.history.head).hex) }

    @Test func restoreSubtreeFiresWatchesAndKeepsAccounting() {
        let server = Server(time: 1_700_000_000)
        let c = TestClient(server)
        c.write("/vm/a", "1")
        let old = headHex(server)
        c.write("/vm/a", "2")
        c.write("/vm/b", "new")
        c.write("/other", "untouched")
        c.watch("/vm", "w")
        _ = c.takeEvents()
        let reply = c.request(.control, args("restore", String(old.prefix(8)), "/vm"))
        #expect(reply.error == nil, "\(reply)")
        #expect(c.read("/vm/a").payload == b("1"))
        #expect(c.read("/vm/b").error == .ENOENT)
        #expect(c.read("/other").payload == b("untouched"))
        let events = c.takeEvents().map(\.path)
        #expect(events.contains("/vm/a") && events.contains("/vm/b"))
        #expect(s(server.history.head.summary).hasPrefix("Domain 0: restore /vm to "))
        #expect(c.request(.control, args("check")).error == nil)
    }

    @Test func revertUndoesOneCommitAndConflictsWhenLaterChangesCollide() {
        let server = Server(time: 1_700_000_000)
        let c = TestClient(server)
        c.write("/x", "1")
        c.write("/y", "a")
        let changeY = headHex(server)
        c.write("/x", "2")
        #expect(c.request(.control, args("revert", changeY)).error == nil)
        #expect(c.read("/y").error == .ENOENT)
        #expect(c.read("/x").payload == b("2"))
        // Reverting a write after the same node changed again conflicts and changes nothing.
        c.write("/z", "1")
        let writeZ = headHex(server)
        c.write("/z", "2")
        let commits = server.history.commitCount
        #expect(c.request(.control, args("revert", writeZ)).error == .EAGAIN)
        #expect(server.history.commitCount == commits)
        #expect(c.read("/z").payload == b("2"))
    }

    @Test func mergeOfAForeignBranchMakesATwoParentCommit() {
        let server = Server(time: 1_700_000_000)
        let c = TestClient(server)
        c.write("/shared", "0")
        let base = server.history.head
        // A commit made "elsewhere" on the same base.
        var theirs = Workspace(root: base.root)
        let context = OperationContext(caller: .dom0, quotas: Quotas(), committedOwnedNodes: [:],
                                       generations: server.history.generations, domainExists: { _ in true })
        _ = NodeOperations.execute(.write(NodePath(trusted: b("/remote")), value: b("r")), in: &theirs, context)
        let foreign = server.history.makeCommit(root: theirs.root, parents: [base], author: 0,
                                                message: b("Domain 0: write /remote"), time: 1_700_000_001)
        c.write("/local-change", "l")
        let reply = c.request(.control, args("merge", s(server.history.id(of: foreign).hex), s(server.history.id(of: base).hex)))
        #expect(reply.error == nil, "\(reply)")
        #expect(c.read("/remote").payload == b("r"))
        #expect(c.read("/local-change").payload == b("l"))
        #expect(server.history.head.parents.count == 2)
        #expect(c.request(.control, args("merge", "zzzz", "abcd")).error == .EINVAL)
        #expect(c.request(.control, args("restore", "0000000")).error == .ENOENT)
    }

    @Test func pastRevisionsAreReadableWithControlRevCommands() {
        let server = Server(time: 1_700_000_000)
        let c = TestClient(server)
        #expect(c.write("/vm/a", "one").isOK)
        #expect(c.write("/vm/a", "two").isOK)
        #expect(c.setPerms("/vm/a", "n0", "r3").isOK)
        #expect(c.write("/vm/b", "x").isOK)
        let head = server.history.id(of: server.history.head).hex
        func control(_ parts: String...) -> Reply { c.request(.control, Payload.join(parts.map { b($0) })) }
        #expect(control("rev-read", "main", "/vm/a").payload == b("two"))
        #expect(control("rev-read", "HEAD~2", "/vm/a").payload == b("two"))
        #expect(control("rev-read", "main~3", "/vm/a").payload == b("one"))
        #expect(control("rev-read", String(decoding: head.prefix(8), as: UTF8.self), "/vm/b").payload == b("x"))
        #expect(control("rev-directory", "main", "/vm").strings == ["a", "b"])
        #expect(control("rev-directory", "main~1", "/vm").strings == ["a"])
        #expect(control("rev-perms", "main~1", "/vm/a").strings == ["n0", "r3"])
        #expect(control("rev-perms", "main~2", "/vm/a").strings == ["n0"])
        #expect(control("rev-read", "main~1", "/vm/b").error == .ENOENT)
        #expect(control("rev-read", "main~100000", "/vm/a").error == .EINVAL)
        #expect(control("rev-read", "main~50", "/vm/a").error == .ENOENT)  // older than the first commit
        #expect(control("rev-read", "nothex", "/vm/a").error == .EINVAL)
        #expect(control("rev-read", "main").error == .EINVAL)
        let guest = TestClient(server, caller: Caller(domid: 3, privileged: false))
        #expect(guest.request(.control, Payload.join([b("rev-read"), b("main"), b("/vm/a")])).error == .EACCES)
    }
}
