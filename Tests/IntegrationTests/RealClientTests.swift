// Drives the daemon with Debian's real xenstore-utils clients (read/write/ls/list/exists/rm/chmod/watch) and checks their output.

import Foundation
import Testing
import XenstoreHost
import XenstoreWire

@Suite("Real Xen clients")
struct RealClientTests {
    @Test("xenstore-write, -read, -ls, -list, -exists and -rm round trip")
    func roundTrip() throws {
        let daemon = try Daemon()
        defer { daemon.stop() }

        // Several path/value pairs in one call; children are written in sorted order so that
        // insertion order (C xenstored) and sorted order give the same listing.
        let write = try daemon.xs("xenstore-write", "/vm/1/memory/static-max", "1048576",
                                  "/vm/1/memory/target", "524288", "/vm/1/name", "vm1", "/vm/2", "two")
        #expect(write.rc == 0, "\(write)")

        let read = try daemon.xs("xenstore-read", "/vm/1/name")
        #expect(read.rc == 0 && read.stdout == "vm1\n", "\(read)")
        let readTwo = try daemon.xs("xenstore-read", "/vm/1/memory/target", "/vm/2")
        #expect(readTwo.lines == ["524288", "two"], "\(readTwo)")
        let implicitParent = try daemon.xs("xenstore-read", "/vm/1/memory")
        #expect(implicitParent.rc == 0 && implicitParent.stdout == "\n", "implicitly created parents are empty: \(implicitParent)")
        let missing = try daemon.xs("xenstore-read", "/vm/1/nonexistent")
        #expect(missing.rc != 0, "\(missing)")
        #expect(missing.stderr.contains("couldn't read path /vm/1/nonexistent"), "\(missing)")

        let tree = try daemon.xs("xenstore-ls", "/vm")
        #expect(tree.rc == 0, "\(tree)")
        #expect(tree.lines == [
            "1 = \"\"",
            " memory = \"\"",
            "  static-max = \"1048576\"",
            "  target = \"524288\"",
            " name = \"vm1\"",
            "2 = \"two\"",
        ], "\(tree)")
        let full = try daemon.xs("xenstore-ls", "-f", "/vm/1")
        #expect(full.lines == [
            "/vm/1/memory = \"\"",
            "/vm/1/memory/static-max = \"1048576\"",
            "/vm/1/memory/target = \"524288\"",
            "/vm/1/name = \"vm1\"",
        ], "\(full)")
        let rootListing = try daemon.xs("xenstore-list", "/")
        #expect(Set(rootListing.lines) == ["local", "tool", "vm"], "initial tree plus /vm: \(rootListing)")
        let missingListing = try daemon.xs("xenstore-ls", "/nonexistent")
        #expect(missingListing.rc != 0 && missingListing.stderr.contains("No such file or directory"), "\(missingListing)")

        let list = try daemon.xs("xenstore-list", "/vm/1")
        #expect(list.rc == 0 && list.lines == ["memory", "name"], "\(list)")
        let leaf = try daemon.xs("xenstore-list", "/vm/1/name")
        #expect(leaf.rc == 0 && leaf.stdout.isEmpty, "a leaf has no children: \(leaf)")

        #expect(try daemon.xs("xenstore-exists", "/vm/1/name").rc == 0)
        #expect(try daemon.xs("xenstore-exists", "/vm/1/memory").rc == 0)
        #expect(try daemon.xs("xenstore-exists", "/vm/1/nope").rc == 1)

        // RM removes the whole subtree.
        let rm = try daemon.xs("xenstore-rm", "/vm/1/memory")
        #expect(rm.rc == 0, "\(rm)")
        #expect(try daemon.xs("xenstore-exists", "/vm/1/memory").rc == 1)
        #expect(try daemon.xs("xenstore-exists", "/vm/1/memory/target").rc == 1)
        #expect(try daemon.xs("xenstore-list", "/vm/1").lines == ["name"])
        // RM of a missing node whose parent exists is OK (rc 0); with a missing parent it fails.
        let rmAgain = try daemon.xs("xenstore-rm", "/vm/1/memory")
        #expect(rmAgain.rc == 0, "\(rmAgain)")
        let rmOrphan = try daemon.xs("xenstore-rm", "/vm/nope/deeper")
        #expect(rmOrphan.rc != 0, "\(rmOrphan)")
        // Relative paths of a dom0 socket client live under /local/domain/0.
        #expect(try daemon.xs("xenstore-write", "relative/key", "r").rc == 0)
        #expect(try daemon.xs("xenstore-read", "/local/domain/0/relative/key").stdout == "r\n")
        // Invalid paths are refused by the daemon.
        let badPath = try daemon.xs("xenstore-write", "/bad//path", "x")
        #expect(badPath.rc != 0, "\(badPath)")
        #expect(try daemon.xs("xenstore-exists", "/bad").rc == 1)
    }

    @Test("xenstore-chmod sets permissions that xenstore-ls -p shows")
    func chmodAndLsPermissions() throws {
        let daemon = try Daemon(domains: [5])
        defer { daemon.stop() }
        // Domain 5 exists while one of its connections is open (C refuses perms naming unknown domains).
        let domain5 = try daemon.client(domain: 5)
        _ = domain5

        #expect(try daemon.xs("xenstore-write", "/perm/a", "1", "/perm/b/c", "2").rc == 0)
        let chmod = try daemon.xs("xenstore-chmod", "/perm/a", "n0", "r5")
        #expect(chmod.rc == 0, "\(chmod)")
        let listing = try daemon.xs("xenstore-ls", "-p", "/perm")
        #expect(listing.rc == 0, "\(listing)")
        let aLine = listing.lines.first { $0.hasPrefix("a = \"1\"") }
        #expect(aLine?.hasSuffix("(n0,r5)") == true, "\(listing)")
        let bLine = listing.lines.first { $0.hasPrefix("b = \"\"") }
        #expect(bLine?.hasSuffix("(n0)") == true, "untouched nodes keep the inherited n0: \(listing)")

        // -r applies to the node and its whole subtree; the owner may be any existing domain.
        let recursive = try daemon.xs("xenstore-chmod", "-r", "/perm/b", "n5", "b0")
        #expect(recursive.rc == 0, "\(recursive)")
        let after = try daemon.xs("xenstore-ls", "-p", "/perm")
        let bAfter = after.lines.first { $0.hasPrefix("b = ") }
        let cAfter = after.lines.first { $0.hasPrefix(" c = \"2\"") }
        #expect(bAfter?.hasSuffix("(n5,b0)") == true, "\(after)")
        #expect(cAfter?.hasSuffix("(n5,b0)") == true, "\(after)")
        #expect(try domain5.permissions("/perm/b/c") == ["n5", "b0"])

        // Like C xenstored: permissions naming a domain that does not exist are refused.
        let unknownDomain = try daemon.xs("xenstore-chmod", "/perm/a", "n7")
        #expect(unknownDomain.rc != 0, "\(unknownDomain)")
        #expect(unknownDomain.stderr.contains("No such file or directory"), "\(unknownDomain)")
        #expect(try daemon.xs("xenstore-ls", "-p", "/perm").lines.first?.hasSuffix("(n0,r5)") == true)
        // A bad permission letter is refused.
        let badLetter = try daemon.xs("xenstore-chmod", "/perm/a", "x0")
        #expect(badLetter.rc != 0, "\(badLetter)")
    }

    @Test("xenstore-watch gets the initial event, every change (even an unchanged rewrite) and the rm")
    func watchEvents() throws {
        let daemon = try Daemon()
        defer { daemon.stop() }
        let watch = try daemon.start(Programs.client("xenstore-watch"), ["-n", "6", "/w"])
        // The initial event proves that the watch is registered before anything is written.
        #expect(watch.waitForLines(1), "no initial event: \(watch.finish(seconds: 0))")
        #expect(try daemon.xs("xenstore-write", "/w/a", "1").rc == 0)
        #expect(watch.waitForLines(2))
        #expect(try daemon.xs("xenstore-write", "/w/a", "1").rc == 0)  // same value again
        #expect(watch.waitForLines(3))
        #expect(try daemon.xs("xenstore-write", "/w/b/c", "2").rc == 0)
        #expect(watch.waitForLines(4))
        #expect(try daemon.xs("xenstore-write", "/unrelated", "x").rc == 0)  // outside /w: no event
        #expect(try daemon.xs("xenstore-chmod", "/w/a", "n0", "r0").rc == 0)
        #expect(watch.waitForLines(5))
        #expect(try daemon.xs("xenstore-rm", "/w").rc == 0)
        let result = watch.finish(seconds: 10)
        #expect(result.rc == 0, "xenstore-watch -n 6 must exit by itself after 6 events: \(result)")
        #expect(result.lines == ["/w", "/w/a", "/w/a", "/w/b/c", "/w/a", "/w"], "\(result)")
    }

    @Test("xenstore-ls, -read and -watch show a guest's watches and transactions under /tool/xenstored as they come and go")
    func liveStateUnderToolXenstored() throws {
        let daemon = try Daemon(domains: [7])
        defer { daemon.stop() }
        let guest = try daemon.client(domain: 7)  // connected first: SET_PERMS may name only known domains
        #expect(try daemon.xs("xenstore-write", "/local/domain/7/x", "").rc == 0)
        let chmod = try daemon.xs("xenstore-chmod", "-r", "/local/domain/7", "n7")
        #expect(chmod.rc == 0, "\(chmod)")
        _ = try guest.request(.watch, payload("x", "guest-token"))
        _ = try guest.nextWatchEvent()
        let transaction = try guest.startTransaction()
        _ = try guest.request(.write, bytes("x/in-transaction") + [0] + bytes("1"), transaction: transaction)

        // Find the guest's connection by its domain.
        let ids = try daemon.xs("xenstore-list", "/tool/xenstored/connection")
        #expect(ids.rc == 0, "\(ids)")
        let mine = try ids.lines.filter { try daemon.xs("xenstore-read", "/tool/xenstored/connection/\($0)/domid").stdout == "7\n" }
        #expect(mine.count == 1, "\(ids)")
        let connection = "/tool/xenstored/connection/\(mine.first ?? "none")"
        let listing = try daemon.xs("xenstore-ls", "-f", connection)
        #expect(listing.rc == 0, "\(listing)")
        #expect(listing.lines.contains("\(connection)/watch/0/path = \"/local/domain/7/x\""), "\(listing)")
        #expect(listing.lines.contains("\(connection)/watch/0/token = \"guest-token\""), "\(listing)")
        #expect(listing.lines.contains("\(connection)/transaction/\(transaction)/requests = \"1\""), "\(listing)")
        #expect(listing.lines.contains("\(connection)/privileged = \"0\""), "\(listing)")
        #expect(try daemon.xs("xenstore-read", "/tool/xenstored/domain/7/transactions").stdout == "1\n")
        #expect(try daemon.xs("xenstore-read", "/tool/xenstored/domain/7/watches").stdout == "1\n")
        let whole = try daemon.xs("xenstore-ls", "/tool/xenstored")
        #expect(whole.rc == 0 && whole.lines.contains("server = \"\""), "\(whole)")

        // Read-only, dom0 only.
        let write = try daemon.xs("xenstore-write", "/tool/xenstored/server/nodes", "0")
        #expect(write.rc != 0 && write.stderr.contains("could not write"), "\(write)")
        #expect(throws: ClientError.server(.EACCES)) { try guest.request(.read, payload("/tool/xenstored/server/nodes")) }
        #expect(throws: ClientError.server(.EACCES)) { try guest.request(.directory, payload("/tool/xenstored/connection")) }

        // The transaction ends: it is gone from the listing.
        try guest.endTransaction(transaction, commit: true)
        #expect(try daemon.xs("xenstore-list", "\(connection)/transaction").stdout == "")
        #expect(try daemon.xs("xenstore-read", "/tool/xenstored/domain/7/transactions").stdout == "0\n")

        // Events the guest does not read pile up, in its socket and then in the daemon's queue for
        // it; once it reads them the queue is empty again.
        let dom0 = try daemon.client()
        for i in 0..<8000 { try dom0.write("/local/domain/7/x/k\(i)", [0x61]) }  // about 400 KB of events
        func counter(_ name: String) throws -> Int {
            Int(try daemon.xs("xenstore-read", "\(connection)/output/\(name)").stdout.trimmingCharacters(in: .whitespacesAndNewlines)) ?? -1
        }
        let queued = try counter("events")
        #expect(queued > 0, "8,000 unread events: more than a socket holds wait in the daemon's queue")
        #expect(try counter("bytes") > 0)
        let delivered = 8000 - (try counter("dropped-events"))
        for _ in 0..<delivered { _ = try guest.nextWatchEvent() }
        var drained = false
        for _ in 0..<100 where !drained {
            drained = try counter("events") == 0 && counter("bytes") == 0
            if !drained { usleep(50_000) }
        }
        #expect(drained, "the guest read every event: nothing left queued")

        // A watcher of /tool/xenstored/connection sees its own watch registered, then a connection
        // open and close.
        let watch = try daemon.start(Programs.client("xenstore-watch"), ["-n", "4", "/tool/xenstored/connection"])
        #expect(watch.waitForLines(2), "\(watch.finish(seconds: 0))")
        var newcomer: XenstoreClient? = try daemon.client()
        _ = try newcomer?.request(.read, payload("/local/domain/7/x"))
        #expect(watch.waitForLines(3))
        newcomer = nil
        let result = watch.finish(seconds: 10)
        #expect(result.rc == 0, "\(result)")
        #expect(result.lines.count == 4, "\(result)")
        if result.lines.count == 4 {
            #expect(result.lines[0] == "/tool/xenstored/connection")
            #expect(result.lines[1].hasPrefix("/tool/xenstored/connection/") && result.lines[1].hasSuffix("/watch"), "\(result)")
            #expect(result.lines[2].hasPrefix("/tool/xenstored/connection/") && result.lines[2] == result.lines[3], "\(result)")
        }
    }

    @Test("xenstore-watch on a subtree reports the watched path when an ancestor is removed")
    func watchRemovedAncestor() throws {
        let daemon = try Daemon()
        defer { daemon.stop() }
        #expect(try daemon.xs("xenstore-write", "/top/mid/leaf", "v").rc == 0)
        let watch = try daemon.start(Programs.client("xenstore-watch"), ["-n", "2", "/top/mid/leaf"])
        #expect(watch.waitForLines(1), "no initial event: \(watch.finish(seconds: 0))")
        #expect(try daemon.xs("xenstore-rm", "/top").rc == 0)
        let result = watch.finish(seconds: 10)
        #expect(result.rc == 0 && result.lines == ["/top/mid/leaf", "/top/mid/leaf"], "\(result)")
    }
}
