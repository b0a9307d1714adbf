// Regression tests derived from the Xen security advisories that hit xenstored, each with an asserted outcome.

import Testing
import XenstoreStore
import XenstoreWire
@testable import XenstoreServer

@Suite struct SecurityAdvisoryTests {
    let guestCaller = Caller(domid: 7, privileged: false)

    /// XSA-322/417/419: a released domain's nodes go, its permission entries go, and a new domain
    /// reusing the id inherits neither access nor quota usage.
    @Test func domainIdReuseInheritsNothing() {
        let server = Server(time: 1_700_000_000)
        let dom0 = TestClient(server)
        #expect(dom0.request(.introduce, args("7", "1", "5")).isOK)
        dom0.write("/local/domain/7/data", "x")
        #expect(dom0.setPerms("/local/domain/7", "n7").isOK)
        #expect(dom0.setPerms("/local/domain/7/data", "n7").isOK)
        dom0.write("/shared", "secret")
        #expect(dom0.setPerms("/shared", "n0", "r7").isOK)
        let guest = TestClient(server, caller: guestCaller)
        #expect(guest.read("/shared").payload == b("secret"))
        #expect(server.domains.ownedNodes[7] == 2)
        #expect(dom0.request(.release, args("7")).isOK)
        #expect(dom0.read("/local/domain/7").error == .ENOENT)
        #expect(dom0.getPerms("/shared").strings == ["n0"])
        #expect(server.domains.ownedNodes[7] == nil)
        #expect(s(server.history.head.summary) == "Domain 0: clean up after domain 7")
        #expect(dom0.request(.introduce, args("7", "1", "6")).isOK)
        let reborn = TestClient(server, caller: guestCaller)
        #expect(reborn.read("/shared").error == .EACCES)
        #expect(dom0.request(.control, args("check")).error == nil)
    }

    /// XSA-418: very deep paths (the longest legal ones) through write, directory, watch, rm,
    /// transactions and hashing, without recursion.
    @Test func deepTreesUseNoRecursion() {
        let server = Server(time: 1_700_000_000)
        let c = TestClient(server)
        let depth = 1000
        let path = "/" + Array(repeating: "d", count: depth).joined(separator: "/")
        #expect(path.count <= Limits.relativePathMax)
        c.watch("/d", "deep")
        _ = c.takeEvents()
        #expect(c.write(path, "bottom").isOK)
        #expect(c.read(path).payload == b("bottom"))
        #expect(c.takeEvents() == [Event(path: path, token: "deep")])
        let tx = c.start()
        #expect(c.write(path + "/tx", "1", tx: tx).isOK)
        c.write("/other", "concurrent")  // forces replay and a three-way merge at commit
        #expect(c.end(tx).isOK)
        _ = GitEncoding.treeID(server.history.head.root)
        #expect(c.rm("/d").isOK)
        #expect(c.read(path).error == .ENOENT)
        #expect(c.request(.control, args("check")).error == nil)
    }

    /// XSA-72/324: replies and watch events larger than 4096 bytes are refused or dropped, never sent.
    @Test func oversizedRepliesAndEventsAreNeverSent() {
        let server = Server(time: 1_700_000_000)
        let c = TestClient(server)
        let name = String(repeating: "n", count: 60)
        for i in 0..<80 { c.mkdir("/big/\(name)\(i)") }
        #expect(c.directory("/big").error == .E2BIG)
        // DIRECTORY_PART pages through the same list within the limit.
        var offset = 0
        var names: [String] = []
        while true {
            let part = c.request(.directoryPart, args("/big", "\(offset)"))
            #expect(part.payload.count <= Limits.payloadMax)
            let strings = Payload.strings(part.payload).strings.dropFirst().map { s($0) }
            let chunk = strings.filter { !$0.isEmpty }
            names += chunk
            if strings.last == "" || chunk.isEmpty { break }
            offset += chunk.reduce(0) { $0 + $1.utf8.count + 1 }
        }
        #expect(names.count == 80)
        // A watch whose event would exceed the payload limit: registered, event dropped.
        let token = String(repeating: "t", count: 4085)
        #expect(c.watch("/big", token).isOK)
        #expect(c.takeEvents().count == 1)  // "/big" + token still fits
        #expect(c.write("/big/\(name)0", "changed").isOK)
        #expect(c.takeEvents().isEmpty)  // the event path makes it 4158 bytes: dropped
        #expect(c.received.allSatisfy { $0.payload.count <= Limits.payloadMax })
    }

    /// XSA-326 (watch and event flooding): a watcher that never reads is bounded; writers are not stalled.
    @Test func eventFloodIsBoundedAndDoesNotStallWriters() {
        let server = Server(time: 1_700_000_000)
        let dom0 = TestClient(server)
        dom0.mkdir("/flood")
        #expect(dom0.setPerms("/flood", "n0", "r7").isOK)
        let watcher = server.openConnection(caller: guestCaller)
        let token = String(repeating: "w", count: 200)  // about 230 bytes per event
        server.receive(Message(.watch, requestID: 1, payload: args("/flood", token)).encoded, on: watcher, time: 0)
        for i in 0..<2_000 {
            #expect(dom0.write("/flood/k\(i % 10)", "value-\(i)").isOK)
        }
        #expect(server.droppedEvents(watcher) > 0)
        #expect(server.connections[watcher]!.output.byteCount <= Limits.unprivilegedOutputQueueBytes)
        #expect(!server.wantsInput(watcher) || server.connections[watcher]!.output.count < Limits.maxQueuedRepliesBeforeBackpressure)
    }

    /// XSA-326/416 (slow readers): a client that never reads replies stops being read.
    @Test func clientThatNeverReadsIsThrottled() {
        let server = Server(time: 1_700_000_000)
        let id = server.openConnection(caller: guestCaller)
        var requests: [UInt8] = []
        for i in 0..<(Limits.maxQueuedRepliesBeforeBackpressure + 5) {
            requests += Message(.read, requestID: UInt32(i), payload: args("/tool")).encoded
        }
        server.receive(requests, on: id, time: 0)
        #expect(!server.wantsInput(id))
        _ = server.takeOutput(id)
        #expect(server.wantsInput(id))
    }

    /// XSA-326/XSA-415 (quota evasion through transactions): node quota applies inside a transaction.
    @Test func quotaAppliesInsideTransactions() {
        let server = Server(time: 1_700_000_000)
        let dom0 = TestClient(server)
        #expect(dom0.request(.introduce, args("7", "1", "5")).isOK)
        #expect(dom0.request(.setQuota, args("7", "nodes", "5")).isOK)
        dom0.mkdir("/local/domain/7")
        #expect(dom0.setPerms("/local/domain/7", "n7").isOK)
        let guest = TestClient(server, caller: guestCaller)
        let tx = guest.start()
        var failures = 0
        for i in 0..<10 where guest.write("k\(i)", "v", tx: tx).error == .ENOSPC { failures += 1 }
        #expect(failures == 6)  // the home node itself counts: 1 + 4 new nodes fit
        #expect(guest.end(tx).isOK)
        #expect(server.domains.ownedNodes[7] == 5)
        #expect(guest.write("more", "v").error == .ENOSPC)
    }

    /// XSA-330/484: RESET_WATCHES inside a transaction drops watches and transactions, idempotently.
    @Test func resetWatchesInsideATransaction() {
        let server = Server(time: 1_700_000_000)
        let c = TestClient(server)
        let tx = c.start()
        c.watch("/r", "t")
        #expect(c.takeEvents().count == 1)
        #expect(c.request(.resetWatches, [0], tx: tx).isOK)
        #expect(c.request(.resetWatches, [0]).isOK)
        #expect(c.end(tx).error == .ENOENT)
        c.write("/r", "x")
        #expect(c.takeEvents().isEmpty)
        #expect(c.watch("/r", "t").isOK)
    }

    /// XSA-115/353/352: no permission bypass through relative paths, SET_TARGET or ownership.
    @Test func noPermissionBypass() {
        let server = Server(time: 1_700_000_000)
        let dom0 = TestClient(server)
        #expect(dom0.request(.introduce, args("3", "1", "5")).isOK)
        #expect(dom0.request(.introduce, args("7", "1", "6")).isOK)
        dom0.write("/local/domain/3/secret", "s")
        #expect(dom0.setPerms("/local/domain/3", "n3").isOK)
        #expect(dom0.setPerms("/local/domain/3/secret", "n3").isOK)
        let guest = TestClient(server, caller: guestCaller)
        #expect(guest.read("../3/secret").error == .EINVAL)
        #expect(guest.read("/local/domain/3/secret").error == .EACCES)
        #expect(guest.request(.setTarget, args("7", "3")).error == .EACCES)
        #expect(guest.setPerms("/", "b7").error == .EACCES)
        #expect(guest.rm("/local").error == .EACCES)
        #expect(dom0.request(.setTarget, args("7", "3")).isOK)
        #expect(guest.read("/local/domain/3/secret").payload == b("s"))
        // Special watches need read permission on the special node.
        guest.watch("@releaseDomain", "r")
        _ = guest.takeEvents()
        #expect(dom0.request(.release, args("3")).isOK)
        #expect(guest.takeEvents().isEmpty)
    }
}
