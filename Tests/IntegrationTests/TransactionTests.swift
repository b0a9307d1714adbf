// Transactions over the socket with two raw clients: conflicts (EAGAIN), disjoint commits, isolation, abort and error cases.

import Foundation
import Testing
import XenstoreHost
import XenstoreWire

@Suite("Transactions over the socket")
struct TransactionTests {
    @Test("ta err: a node read in a transaction and changed outside makes the commit fail with EAGAIN")
    func conflictIsEAGAIN() throws {
        let daemon = try Daemon()
        defer { daemon.stop() }
        let inside = try daemon.client()
        let outside = try daemon.client()
        try outside.write("/ta/val", bytes("0"))

        let transaction = try inside.startTransaction()
        #expect(try inside.request(.read, payload("/ta/val"), transaction: transaction) == bytes("0"))
        try outside.write("/ta/val", bytes("outside"))
        _ = try inside.request(.write, bytes("/ta/val") + [0] + bytes("inside"), transaction: transaction)
        #expect(try inside.request(.read, payload("/ta/val"), transaction: transaction) == bytes("inside"),
                "a transaction sees its own writes")
        #expect(try outside.read("/ta/val") == bytes("outside"), "and nobody else does")
        #expect(throws: ClientError.server(.EAGAIN)) { try inside.endTransaction(transaction, commit: true) }
        #expect(try outside.read("/ta/val") == bytes("outside"), "the outside write wins")
        #expect(throws: ClientError.server(.ENOENT)) { try inside.endTransaction(transaction, commit: true) }

        // The retry loop of libxenstore: a fresh transaction now succeeds.
        let retry = try inside.startTransaction()
        let current = try inside.request(.read, payload("/ta/val"), transaction: retry)
        _ = try inside.request(.write, bytes("/ta/val") + [0] + current + bytes("+1"), transaction: retry)
        try inside.endTransaction(retry, commit: true)
        #expect(try outside.read("/ta/val") == bytes("outside+1"))

        // A directory listed in a transaction and changed outside conflicts too.
        let listing = try inside.startTransaction()
        #expect(Payload.strings(try inside.request(.directory, payload("/ta"), transaction: listing)).strings == [bytes("val")])
        try outside.write("/ta/new", bytes("1"))
        _ = try inside.request(.write, bytes("/other") + [0] + bytes("1"), transaction: listing)
        #expect(throws: ClientError.server(.EAGAIN)) { try inside.endTransaction(listing, commit: true) }
        #expect(throws: ClientError.server(.ENOENT)) { try outside.read("/other") }
    }

    @Test("transactions on disjoint subtrees both commit")
    func disjointCommits() throws {
        let daemon = try Daemon()
        defer { daemon.stop() }
        let first = try daemon.client()
        let second = try daemon.client()
        try first.write("/left/base", bytes("l"))
        try first.write("/right/base", bytes("r"))

        let t1 = try first.startTransaction()
        let t2 = try second.startTransaction()
        #expect(try first.request(.read, payload("/left/base"), transaction: t1) == bytes("l"))
        #expect(try second.request(.read, payload("/right/base"), transaction: t2) == bytes("r"))
        _ = try first.request(.write, bytes("/left/a") + [0] + bytes("1"), transaction: t1)
        _ = try second.request(.write, bytes("/right/b") + [0] + bytes("2"), transaction: t2)
        _ = try second.request(.rm, payload("/right/base"), transaction: t2)
        // Uncommitted work is invisible outside.
        #expect(throws: ClientError.server(.ENOENT)) { try second.read("/left/a") }
        #expect(throws: ClientError.server(.ENOENT)) { try first.read("/right/b") }

        try first.endTransaction(t1, commit: true)
        try second.endTransaction(t2, commit: true)
        let observer = try daemon.client()
        #expect(try observer.read("/left/a") == bytes("1"))
        #expect(try observer.read("/left/base") == bytes("l"))
        #expect(try observer.read("/right/b") == bytes("2"))
        #expect(throws: ClientError.server(.ENOENT)) { try observer.read("/right/base") }

        try Programs.require(Programs.xenstoreControl, package: "xen-utils-4.17")
        let history = try daemon.run(Programs.xenstoreControl, ["history", "3"])
        #expect(history.rc == 0, "\(history)")
        #expect(history.lines.filter { $0.contains("Domain 0: merging transaction") }.count == 2, "\(history)")
        let check = try daemon.run(Programs.xenstoreControl, ["check"])
        #expect(check.rc == 0 && check.lines == ["OK"], "\(check)")
    }

    @Test("abort, nested start, bad end argument, and watches fire only on commit")
    func abortAndErrors() throws {
        let daemon = try Daemon()
        defer { daemon.stop() }
        let client = try daemon.client()
        let watcher = try daemon.client()
        // Both parents exist beforehand: C xenstored fails a commit whose new node's parent (here /)
        // got another new child meanwhile.
        try client.write("/tx/base", bytes("0"))
        try client.write("/elsewhere/base", bytes("0"))
        try watcher.watch("/tx", token: "t")
        #expect(try watcher.nextWatchEvent() == ("/tx", "t"))
        try watcher.watch("/elsewhere", token: "e")
        #expect(try watcher.nextWatchEvent() == ("/elsewhere", "e"))

        let aborted = try client.startTransaction()
        _ = try client.request(.write, bytes("/tx/ab") + [0] + bytes("1"), transaction: aborted)
        #expect(throws: ClientError.server(.EBUSY)) { _ = try client.request(.transactionStart, [0], transaction: aborted) }
        #expect(throws: ClientError.server(.EINVAL)) { _ = try client.request(.transactionEnd, payload("X"), transaction: aborted) }
        try client.endTransaction(aborted, commit: false)
        #expect(throws: ClientError.server(.ENOENT)) { try client.read("/tx/ab") }

        let committed = try client.startTransaction()
        _ = try client.request(.write, bytes("/tx/c") + [0] + bytes("1"), transaction: committed)
        _ = try client.request(.write, bytes("/tx/d") + [0] + bytes("2"), transaction: committed)
        // Nothing has fired yet: the first event after this outside write is the write itself.
        // (It is outside /tx: C xenstored would fail the commit if /tx got a new child meanwhile.)
        try client.write("/elsewhere/x", bytes("0"))
        #expect(try watcher.nextWatchEvent() == ("/elsewhere/x", "e"))
        try client.endTransaction(committed, commit: true)
        let events = [try watcher.nextWatchEvent().path, try watcher.nextWatchEvent().path]
        #expect(Set(events) == ["/tx/c", "/tx/d"], "\(events)")
        #expect(try client.read("/tx/c") == bytes("1"))
    }
}
