// Request semantics and error choices of the server for a privileged caller, matched to C xenstored (observed with Debian's 4.17 daemon).

import Testing
import XenstoreStore
import XenstoreWire
@testable import XenstoreServer

@Suite struct NodeRequestTests {
    let server = Server(time: 1_700_000_000)

    @Test func initialTree() {
        #expect(dump(server) == ["/": "", "/local": "", "/local/domain": "", "/tool": "", "/tool/xenstored": ""])
        let c = TestClient(server)
        #expect(c.directory("/").strings == ["local", "tool"])
        #expect(c.getPerms("/").payload == b("n0") + [0])
    }

    @Test func readWriteRoundTripAndRepliesEchoIDs() {
        let c = TestClient(server)
        let reply = c.request(MessageType.write.rawValue, b("/a/b/c") + [0] + b("value"))
        #expect(reply.isOK)
        #expect(reply.type == MessageType.write.rawValue)
        #expect(reply.message.header.requestID == 100)
        let read = c.read("/a/b/c")
        #expect(read.type == MessageType.read.rawValue)
        #expect(read.payload == b("value"))  // no NUL appended
        // Parents were created with empty values.
        #expect(c.read("/a").payload == [])
        #expect(c.read("/a/b").payload == [])
        // Binary values with embedded NULs round-trip; empty values too.
        let binary: [UInt8] = [0, 1, 0, 0xFF, 0]
        #expect(c.request(.write, b("/bin") + [0] + binary).isOK)
        #expect(c.read("/bin").payload == binary)
        #expect(c.write("/empty", "").isOK)
        #expect(c.read("/empty").payload == [])
        #expect(c.read("/empty").error == nil)
        #expect(c.read("/missing").error == .ENOENT)
        #expect(c.read("/a/b/c/d").error == .ENOENT)
        // Large value by dom0 (node-size quota does not apply to privileged callers).
        let big = String(repeating: "v", count: 4089)
        #expect(c.write("/big", big).isOK)
        #expect(c.read("/big").payload.count == 4089)
    }

    @Test func writeWithoutPathNulIsEINVAL() {
        let c = TestClient(server)
        #expect(c.request(.write, b("/nonul")).error == .EINVAL)
        #expect(c.read("/nonul").error == .ENOENT)
    }

    @Test func mkdirIsIdempotentAndKeepsValue() {
        let c = TestClient(server)
        #expect(c.mkdir("/m/n").isOK)
        #expect(c.read("/m/n").payload == [])
        #expect(c.read("/m").payload == [])
        c.write("/m/n", "keep")
        #expect(c.mkdir("/m/n").isOK)
        #expect(c.read("/m/n").text == "keep")
    }

    @Test func directoryListings() {
        let c = TestClient(server)
        c.write("/d/b", "")
        c.write("/d/a", "")
        c.write("/d/c/deep", "")
        #expect(c.directory("/d").payload == b("a") + [0] + b("b") + [0] + b("c") + [0])
        #expect(c.directory("/d/a").payload == [])  // a leaf lists nothing
        #expect(c.directory("/d/a").error == nil)
        #expect(c.directory("/nothere").error == .ENOENT)
    }

    @Test func directoryPart() throws {
        let c = TestClient(server)
        c.write("/dp/alpha", "")
        c.write("/dp/be", "")
        c.write("/dp/c", "")
        let full = c.request(.directoryPart, args("/dp", "0"))
        #expect(full.error == nil)
        let parts = Payload.strings(full.payload).strings.map(s)
        try #require(parts.count == 5)
        let generation = parts[0]
        #expect(Payload.parseDecimal(b(generation)) != nil)
        #expect(Array(parts.dropFirst()) == ["alpha", "be", "c", ""])  // extra NUL ends the list
        #expect(full.payload == b(generation) + [0] + b("alpha") + [0] + b("be") + [0] + b("c") + [0, 0])
        // Offset is in bytes into "alpha\0be\0c\0".
        let tail = c.request(.directoryPart, args("/dp", "6"))
        #expect(tail.payload == b(generation) + [0] + b("be") + [0] + b("c") + [0, 0])
        let past = c.request(.directoryPart, args("/dp", "100"))
        #expect(past.payload == b(generation) + [0, 0])
        // The generation changes when the child list changes.
        c.write("/dp/d", "")
        let after = Payload.strings(c.request(.directoryPart, args("/dp", "0")).payload).strings.map(s)
        #expect(after.first != generation)
        #expect(c.request(.directoryPart, args("/dp")).error == .EINVAL)
        #expect(c.request(.directoryPart, args("/nothere", "0")).error == .ENOENT)
    }

    @Test func directoryPartSplitsLongListings() throws {
        let c = TestClient(server)
        // 300 children of 20-byte names: 6300 bytes, more than one reply can hold.
        var names: [String] = []
        for i in 0..<300 {
            let name = "child-" + String(repeating: "x", count: 10) + String(format3(i))
            names.append(name)
            c.write("/many/\(name)", "")
        }
        #expect(c.directory("/many").error == .E2BIG)
        var collected: [String] = []
        var offset = 0
        var rounds = 0
        while rounds < 10 {
            rounds += 1
            let reply = c.request(.directoryPart, args("/many", "\(offset)"))
            #expect(reply.payload.count <= Limits.payloadMax)
            var strings = Payload.strings(reply.payload).strings.map(s)
            try #require(!strings.isEmpty)
            strings.removeFirst()
            if strings.last == "" {
                collected += strings.dropLast()
                break
            }
            collected += strings
            offset += strings.reduce(0) { $0 + $1.utf8.count + 1 }
        }
        #expect(collected == names.sorted())
        #expect(rounds == 2)
    }

    @Test func permissionsGetAndSet() {
        let c = TestClient(server, caller: .dom0)
        _ = TestClient(server, caller: Caller(domid: 5, privileged: false))
        c.write("/p", "")
        #expect(c.getPerms("/p").payload == b("n0") + [0])
        #expect(c.setPerms("/p", "r0", "b5").isOK)
        #expect(c.getPerms("/p").payload == args("r0", "b5"))
        // Children created later inherit the parent's permissions.
        c.write("/p/child", "")
        #expect(c.getPerms("/p/child").payload == args("r0", "b5"))
        #expect(c.setPerms("/p", "x0").error == .EINVAL)  // unknown letter
        #expect(c.setPerms("/p").error == .EINVAL)  // no entries
        #expect(c.setPerms("/p", "r").error == .EINVAL)  // no domid
        #expect(c.setPerms("/p", "n77").error == .ENOENT)  // non-existent owner domain
        #expect(c.setPerms("/nothere", "n0").error == .ENOENT)
        #expect(c.getPerms("/nothere").error == .ENOENT)
        #expect(c.setPerms("/p", "n5").isOK)  // dom0 may change the owner
        #expect(c.getPerms("/p").payload == args("n5"))
    }

    @Test func invalidPaths() {
        let c = TestClient(server)
        for path in ["/a/", "/a//b", "//", "/a.b", ".", "", "/a b", "/a\u{7F}", "@foo", "/local/domain/"] {
            #expect(c.read(path).error == .EINVAL, "read \(path)")
            #expect(c.write(path, "v").error == .EINVAL, "write \(path)")
            #expect(c.mkdir(path).error == .EINVAL, "mkdir \(path)")
            #expect(c.rm(path).error == .EINVAL, "rm \(path)")
            #expect(c.directory(path).error == .EINVAL, "directory \(path)")
            #expect(c.getPerms(path).error == .EINVAL, "get_perms \(path)")
        }
        #expect(c.read("/").error == nil)
        // Length limits (C 4.17, for every caller): path-max 2048 counts the part after
        // /local/domain/<id>/, or the whole path outside domain homes.
        let longest = "/" + String(repeating: "a", count: 2047)
        #expect(c.write(longest, "x").isOK)
        #expect(c.write(longest + "b", "x").error == .EINVAL)
        let home = String(repeating: "h", count: 2048)
        #expect(c.write("/local/domain/0/" + home, "x").isOK)
        #expect(c.write(home, "x").isOK)  // the same node, relative
        #expect(c.read("/local/domain/0/" + home + "h").error == .EINVAL)
        #expect(c.read(home + "h").error == .EINVAL)
        // A READ payload without its NUL is malformed: ENOENT, as C 4.17 answers.
        #expect(c.request(.read, b("/local")).error == .ENOENT)
        // Allowed characters.
        #expect(c.write("/Az-09_@/x", "ok").isOK)
    }

    @Test func relativePathsResolveUnderHome() {
        let c = TestClient(server)
        #expect(c.write("rel/x", "1").isOK)
        #expect(c.read("/local/domain/0/rel/x").text == "1")
        #expect(c.read("rel/x").text == "1")
        #expect(c.request(.getDomainPath, args("7")).payload == b("/local/domain/7") + [0])
        #expect(c.request(.getDomainPath, args("abc")).payload == b("/local/domain/0") + [0])
    }

    @Test func rmSemantics() {
        let c = TestClient(server)
        c.write("/r/a/b", "1")
        c.write("/r/c", "2")
        #expect(c.rm("/r/a").isOK)
        #expect(c.read("/r/a/b").error == .ENOENT)
        #expect(c.read("/r/c").text == "2")
        #expect(c.rm("/r/missing").isOK)  // parent exists
        #expect(c.rm("/r/missing/child").error == .ENOENT)  // parent missing
        #expect(c.rm("/").error == .EINVAL)
        #expect(c.read("/r/c").text == "2")
        #expect(c.rm("/r").isOK)
        #expect(c.directory("/").strings == ["local", "tool"])
    }

    @Test func unknownAndServerOnlyTypesAreENOSYS() {
        let c = TestClient(server)
        for type: UInt32 in [99, 20, 15, 16, 27, 0xFFFF, 0xFFFF_FFFF] {
            let reply = c.request(type, args("/x"))
            #expect(reply.error == .ENOSYS, "type \(type)")
            #expect(reply.type == MessageType.error.rawValue)
        }
    }

    @Test func transactionErrors() {
        let c = TestClient(server)
        let tx = c.start()
        #expect(tx != 0)
        #expect(c.request(.transactionStart, [0], tx: tx).error == .EBUSY)  // nested
        #expect(c.request(.transactionEnd, args("X"), tx: tx).error == .EINVAL)
        #expect(c.request(.transactionEnd, [], tx: tx).error == .EINVAL)
        #expect(c.request(.transactionEnd, args("TT"), tx: tx).error == .EINVAL)
        // The transaction survived the bad END.
        #expect(c.write("/t", "1", tx: tx).isOK)
        #expect(c.end(tx).isOK)
        #expect(c.read("/t").text == "1")
        // Finished or unknown transactions.
        #expect(c.end(tx).error == .ENOENT)
        #expect(c.read("/t", tx: 4242).error == .ENOENT)
        #expect(c.request(.transactionEnd, args("T")).error == .ENOENT)  // tx_id 0
        // Another connection cannot use my transaction.
        let other = TestClient(server)
        let mine = c.start()
        #expect(other.read("/t", tx: mine).error == .ENOENT)
        #expect(c.end(mine, commit: false).isOK)
    }

    @Test func transactionIsolationAndAbort() {
        let c = TestClient(server)
        let other = TestClient(server)
        c.write("/iso", "old")
        let tx = c.start()
        #expect(c.write("/iso", "new", tx: tx).isOK)
        #expect(c.write("/iso2/x", "created", tx: tx).isOK)
        #expect(c.read("/iso", tx: tx).text == "new")  // own writes visible inside
        #expect(other.read("/iso").text == "old")  // invisible outside
        #expect(c.read("/iso").text == "old")  // and to the same connection outside the tx
        #expect(other.read("/iso2/x").error == .ENOENT)
        #expect(c.end(tx, commit: false).isOK)
        #expect(other.read("/iso").text == "old")
        #expect(other.read("/iso2").error == .ENOENT)
        let tx2 = c.start()
        c.write("/iso", "committed", tx: tx2)
        #expect(c.end(tx2).isOK)
        #expect(other.read("/iso").text == "committed")
    }

    @Test func resetWatchesDropsWatchesAndTransactions() {
        let c = TestClient(server)
        c.watch("/rw", "t")
        _ = c.takeEvents()
        let tx = c.start()
        #expect(c.request(.resetWatches, [0]).isOK)
        #expect(c.read("/", tx: tx).error == .ENOENT)
        c.write("/rw", "x")
        #expect(c.takeEvents().isEmpty)
    }

    @Test func misc() {
        let c = TestClient(server)
        #expect(c.request(.isDomainIntroduced, args("0")).payload == b("T") + [0])
        #expect(c.request(.isDomainIntroduced, args("9")).payload == b("F") + [0])
        #expect(c.request(.getFeature, []).error == nil)
        #expect(c.request(.control, args("check")).error == nil)
        #expect(c.request(.control, args("bogus")).error == .EINVAL)
    }

    @Test func oversizedHeaderClosesConnection() {
        let c = TestClient(server)
        _ = server.takeEffects()
        var header: [UInt8] = []
        MessageHeader(type: 11, requestID: 1, transactionID: 0, length: 4097).encode(into: &header)
        let replies = c.sendRaw(header + [0x2F, 0x78, 0])
        #expect(replies.isEmpty)
        #expect(server.takeEffects().contains(.closeConnection(c.id)))
        // Nothing further is processed on the broken connection.
        let after = c.sendRaw(Message(.write, requestID: 2, transactionID: 0, payload: b("/after") + [0] + b("x")).encoded)
        #expect(after.isEmpty)
        #expect(TestClient(server).read("/after").error == .ENOENT)
        #expect(!server.wantsInput(c.id))
    }

    @Test func chunkedRequestsAreExecutedOncePerMessage() {
        let c = TestClient(server)
        let w1 = Message(.write, requestID: 1, transactionID: 0, payload: b("/c1") + [0] + b("1")).encoded
        let w2 = Message(.write, requestID: 2, transactionID: 0, payload: b("/c2") + [0] + b("2")).encoded
        let r = Message(.read, requestID: 3, transactionID: 0, payload: b("/c1") + [0]).encoded
        var all: [Message] = []
        for byte in w1 + w2 + r { all += c.sendRaw([byte]) }
        #expect(all.map { $0.header.requestID } == [1, 2, 3])
        #expect(all[2].payload == b("1"))
        // Output can be taken in small pieces.
        let more = Message(.read, requestID: 4, transactionID: 0, payload: b("/c2") + [0]).encoded
        server.receive(more, on: c.id, time: 0)
        var bytes: [UInt8] = []
        while server.hasOutput(c.id) { bytes += server.takeOutput(c.id, maxBytes: 3) }
        var decoder = FrameDecoder()
        #expect((try? decoder.feed(bytes)) == [Message(.read, requestID: 4, transactionID: 0, payload: b("2"))])
    }
}

private func format3(_ i: Int) -> String {
    let text = String(i)
    return String(repeating: "0", count: 3 - text.count) + text
}

@Suite struct WatchTests {
    let server = Server(time: 1_700_000_000)

    @Test func initialEventFollowsTheOKReply() throws {
        let c = TestClient(server)
        let before = c.received.count
        #expect(c.watch("/w", "tok").isOK)
        let got = Array(c.received[before...])
        try #require(got.count == 2)
        #expect(got[0].header.type == MessageType.watch.rawValue)
        #expect(got[1].header.type == MessageType.watchEvent.rawValue)
        #expect(got[1].payload == args("/w", "tok"))
        #expect(got[1].header.requestID == 0 && got[1].header.transactionID == 0)
        // A watch on a missing node is fine; so is a special path.
        #expect(c.takeEvents() == [Event(path: "/w", token: "tok")])
        #expect(c.watch("@introduceDomain", "s").isOK)
        #expect(c.takeEvents() == [Event(path: "@introduceDomain", token: "s")])
        #expect(c.watch("@bogus", "s").isOK)
        #expect(c.takeEvents() == [Event(path: "@bogus", token: "s")])
    }

    @Test func duplicatesAndUnknownUnwatch() {
        let c = TestClient(server)
        #expect(c.watch("/w", "tok").isOK)
        #expect(c.watch("/w", "tok").error == .EEXIST)
        #expect(c.watch("/w", "tok2").isOK)  // different token is a different watch
        #expect(c.unwatch("/w", "nope").error == .ENOENT)
        #expect(c.unwatch("/other", "tok").error == .ENOENT)
        #expect(c.unwatch("/w", "tok").isOK)
        #expect(c.unwatch("/w", "tok").error == .ENOENT)
        #expect(c.watch("/w/", "t").error == .EINVAL)
        #expect(c.watch("/w", "t").isOK)
        #expect(c.request(.watch, args("/w")).error == .EINVAL)
        _ = c.takeEvents()
        c.write("/w", "x")
        #expect(c.takeEvents() == [Event(path: "/w", token: "tok2"), Event(path: "/w", token: "t")])
    }

    @Test func eventsForNodeAndDescendantsFromOtherConnections() {
        let watcher = TestClient(server)
        let writer = TestClient(server)
        watcher.watch("/w", "t")
        _ = watcher.takeEvents()
        writer.write("/w/a/b", "1")
        writer.write("/wx", "not inside")  // prefix but not a descendant
        writer.write("/w", "2")
        writer.mkdir("/w/m")
        writer.setPerms("/w/m", "r0")
        #expect(watcher.takeEvents().map(\.path) == ["/w/a/b", "/w", "/w/m", "/w/m"])
        #expect(writer.takeEvents().isEmpty)
    }

    @Test func eventOnEveryWriteEvenUnchanged() {
        let c = TestClient(server)
        c.write("/same", "v")
        c.watch("/same", "t")
        _ = c.takeEvents()
        c.write("/same", "v")
        c.write("/same", "v")
        #expect(c.takeEvents() == [Event(path: "/same", token: "t"), Event(path: "/same", token: "t")])
        // No event for a failed request or a no-op MKDIR/RM.
        c.mkdir("/same")
        c.rm("/same/nochild")
        c.write("/same/", "x")
        #expect(c.takeEvents().isEmpty)
    }

    @Test func relativeWatchPathsStayRelative() {
        let c = TestClient(server)
        #expect(c.watch("rel", "t").isOK)
        #expect(c.takeEvents() == [Event(path: "rel", token: "t")])
        c.write("/local/domain/0/rel/x", "1")
        c.write("rel", "2")
        #expect(c.takeEvents() == [Event(path: "rel/x", token: "t"), Event(path: "rel", token: "t")])
        #expect(c.unwatch("rel", "t").isOK)  // UNWATCH with the same relative path
        c.write("rel", "3")
        #expect(c.takeEvents().isEmpty)
        // An absolute watch on the same node reports absolute paths.
        c.watch("/local/domain/0/rel", "abs")
        _ = c.takeEvents()
        c.write("rel/y", "")
        #expect(c.takeEvents() == [Event(path: "/local/domain/0/rel/y", token: "abs")])
    }

    @Test func rmFiresOnRemovedPathAndOnWatchedDescendants() {
        let c = TestClient(server)
        c.write("/r/a/b", "1")
        c.watch("/r", "top")
        c.watch("/r/a/b", "deep")
        c.watch("/r/a/b/c", "missing")
        _ = c.takeEvents()
        #expect(c.rm("/r/a").isOK)
        #expect(Set(c.takeEvents().map(\.description)) == Set(["/r/a@top", "/r/a/b@deep"]))
    }

    @Test func depthLimitedWatch() {
        let c = TestClient(server)
        #expect(c.request(.watch, args("/dw", "d0", "0")).isOK)
        #expect(c.request(.watch, args("/dw", "d1", "1")).isOK)
        _ = c.takeEvents()
        c.write("/dw", "")
        c.write("/dw/a", "")
        c.write("/dw/a/b", "")
        #expect(c.takeEvents().map(\.description) == ["/dw@d0", "/dw@d1", "/dw/a@d1"])
    }

    @Test func transactionEventsOnlyAfterCommitAndNeverForAborts() {
        let watcher = TestClient(server)
        let c = TestClient(server)
        watcher.watch("/tw", "t")
        _ = watcher.takeEvents()
        let aborted = c.start()
        c.write("/tw/a", "1", tx: aborted)
        #expect(watcher.takeEvents().isEmpty)
        c.end(aborted, commit: false)
        #expect(watcher.takeEvents().isEmpty)
        let tx = c.start()
        c.write("/tw/b", "1", tx: tx)
        c.write("/tw/c", "1", tx: tx)
        #expect(watcher.takeEvents().isEmpty)
        #expect(c.end(tx).isOK)
        #expect(watcher.takeEvents().map(\.path) == ["/tw/b", "/tw/c"])
        // A failed (EAGAIN) commit fires nothing either.
        let t1 = c.start()
        _ = c.read("/tw/b", tx: t1)
        c.write("/tw/d", "x", tx: t1)
        TestClient(server).write("/tw/b", "changed")
        _ = watcher.takeEvents()
        #expect(c.end(t1).error == .EAGAIN)
        #expect(watcher.takeEvents().isEmpty)
    }

    @Test func watchInsideTransactionIgnoresTxID() {
        let c = TestClient(server)
        let tx = c.start()
        #expect(c.request(.watch, args("/wt", "t"), tx: tx).isOK)
        _ = c.takeEvents()
        c.end(tx, commit: false)
        c.write("/wt", "x")
        #expect(c.takeEvents() == [Event(path: "/wt", token: "t")])
        // Even an unknown tx id is ignored for WATCH.
        #expect(c.request(.watch, args("/wt2", "t"), tx: 999).isOK)
    }

    @Test func specialWatchesFireOnIntroduceAndRelease() {
        let c = TestClient(server)
        c.watch("@introduceDomain", "i")
        c.watch("@releaseDomain", "r")
        c.request(.watch, args("@releaseDomain", "r1", "1"))
        _ = c.takeEvents()
        #expect(c.request(.introduce, args("3", "1234", "5")).isOK)
        #expect(server.takeEffects().contains(.connectDomain(domid: 3, gfn: 1234, eventChannel: 5)))
        #expect(c.takeEvents() == [Event(path: "@introduceDomain", token: "i")])
        #expect(c.request(.isDomainIntroduced, args("3")).payload == b("T") + [0])
        #expect(c.request(.release, args("3")).isOK)
        #expect(server.takeEffects().contains(.disconnectDomain(domid: 3)))
        #expect(c.takeEvents() == [Event(path: "@releaseDomain", token: "r"), Event(path: "@releaseDomain/3", token: "r1")])
        #expect(c.request(.release, args("3")).error == .ENOENT)
    }
}
