// Permission and quota tables for an unprivileged caller (domain 5): EACCES/EPERM/ENOSPC/E2BIG choices and event filtering.

import Testing
import XenstoreStore
import XenstoreWire
@testable import XenstoreServer

@Suite struct PermissionTests {
    let server = Server(time: 1_700_000_000)
    let admin: TestClient
    let guest: TestClient

    init() {
        (admin, guest) = adminAndGuest(server)
        admin.write("/secret/inner", "s")
        admin.write("/pub/x", "p")
        admin.setPerms("/pub", "n0", "r5")
        admin.setPerms("/pub/x", "n0", "r5")
    }

    @Test func unreadableNodesGiveEACCES() {
        #expect(guest.read("/secret").error == .EACCES)
        #expect(guest.read("/secret/inner").error == .EACCES)
        #expect(guest.directory("/secret").error == .EACCES)
        #expect(guest.getPerms("/secret").error == .EACCES)
        #expect(guest.directory("/").error == .EACCES)
        #expect(guest.request(.directoryPart, args("/secret", "0")).error == .EACCES)
        // Readable ones work.
        #expect(guest.read("/pub/x").text == "p")
        #expect(guest.directory("/pub").strings == ["x"])
        #expect(guest.getPerms("/pub").payload == args("n0", "r5"))
    }

    @Test func missingChildrenOfUnreadableNodesAreEACCESNotENOENT() {
        #expect(guest.read("/secret/nothere").error == .EACCES)
        #expect(guest.read("/secret/nothere/deeper").error == .EACCES)
        #expect(guest.read("/nothere").error == .EACCES)  // the root is not readable either
        #expect(guest.getPerms("/secret/nothere").error == .EACCES)
        #expect(guest.rm("/secret/nothere").error == .EACCES)
        #expect(guest.rm("/secret/nothere/deeper").error == .EACCES)
        // Under a readable parent, absence is reported.
        #expect(guest.read("/pub/missing").error == .ENOENT)
        #expect(guest.read("/local/domain/5/missing").error == .ENOENT)
        #expect(guest.read("missing").error == .ENOENT)
        // The privileged caller sees ENOENT everywhere.
        #expect(admin.read("/secret/nothere").error == .ENOENT)
    }

    @Test func writesNeedWriteAccessAndCreateOwnedNodes() {
        #expect(guest.write("/pub/x", "v").error == .EACCES)  // read-only
        #expect(guest.write("/pub/new", "v").error == .EACCES)
        #expect(guest.write("/secret/new", "v").error == .EACCES)
        #expect(guest.mkdir("/newtop").error == .EACCES)
        #expect(guest.write("/local/domain/5/a/b", "1").isOK)
        #expect(guest.write("rel", "2").isOK)
        #expect(admin.read("/local/domain/5/rel").text == "2")
        #expect(guest.getPerms("/local/domain/5/a/b").payload == args("n5"))
        // Write access without ownership: may write and create, not change permissions.
        admin.write("/shared", "")
        admin.setPerms("/shared", "n0", "b5")
        #expect(guest.write("/shared", "v").isOK)
        #expect(guest.write("/shared/mine", "c").isOK)
        #expect(guest.getPerms("/shared/mine").payload == args("n5", "b5"))  // inherited, owner replaced
        #expect(guest.setPerms("/shared", "n0", "b5").error == .EACCES)
        #expect(guest.rm("/shared/mine").isOK)
        #expect(guest.rm("/shared/ghost").isOK)  // missing child, writable parent
        // Write-only access: cannot read.
        admin.write("/wo", "hidden")
        admin.setPerms("/wo", "n0", "w5")
        #expect(guest.write("/wo", "x").isOK)
        #expect(guest.read("/wo").error == .EACCES)
    }

    @Test func setPermsOnMissingNodeFollowsErrnoFromParents() {
        // C's errno_from_parents reports the real errno when the nearest existing ancestor grants
        // *any* of the requested rights (`parent_perm & perm`); SET_PERMS asks for write|owner.
        admin.write("/wr", "")
        admin.setPerms("/wr", "n0", "w5")  // writable, not owned, not readable
        #expect(guest.setPerms("/wr/missing", "n5").error == .ENOENT)
        #expect(guest.setPerms("/wr/missing/deeper", "n5").error == .ENOENT)
        #expect(guest.setPerms("/pub/missing", "n5").error == .EACCES)  // read-only parent
        #expect(guest.setPerms("/secret/missing", "n5").error == .EACCES)  // no rights at all
        #expect(guest.setPerms("/wr", "n0", "b5").error == .EACCES)  // existing, not owner
        #expect(guest.setPerms("/local/domain/5/missing", "n5").error == .ENOENT)  // owned parent
    }

    @Test func ownerChangeByUnprivilegedIsEPERM() {
        guest.write("/local/domain/5/o", "")
        #expect(guest.setPerms("/local/domain/5/o", "n7").error == .EPERM)
        #expect(guest.setPerms("/local/domain/5/o", "n0").error == .EPERM)
        #expect(guest.setPerms("/local/domain/5/o", "r5", "b0").isOK)  // same owner, new default
        #expect(admin.getPerms("/local/domain/5/o").payload == args("r5", "b0"))
    }

    @Test func rootIsProtected() {
        #expect(guest.rm("/").error == .EACCES)
        #expect(guest.write("/", "x").error == .EACCES)
        #expect(guest.setPerms("/", "n5").error == .EACCES)
        #expect(guest.setPerms("/", "n0", "r5").error == .EACCES)
        #expect(guest.mkdir("/").error == .EACCES)
        #expect(admin.rm("/").error == .EINVAL)
        #expect(admin.read("/secret/inner").text == "s")
    }

    @Test func privilegedOnlyRequestsAreEACCES() {
        let requests: [(MessageType, [UInt8])] = [
            (.introduce, args("9", "1", "1")), (.release, args("5")), (.setTarget, args("5", "0")),
            (.getQuota, []), (.getQuota, args("nodes")), (.setQuota, args("nodes", "1")),
            (.control, args("check")), (.control, args("help")), (.isDomainIntroduced, args("0")),
            (.resume, args("5")), (.setFeature, args("5", "4")),
        ]
        for (type, payload) in requests {
            #expect(guest.request(type, payload).error == .EACCES, "\(s(Payload.bytes(type.name)))")
        }
        #expect(guest.request(.getFeature, args("0")).error == .EACCES)  // another domain's features
        #expect(guest.request(.getFeature, []).error == nil)  // own features
        #expect(guest.request(.getDomainPath, args("5")).payload == b("/local/domain/5") + [0])
        // Nothing changed.
        #expect(admin.request(.getQuota, args("nodes")).payload == b("1000") + [0])
        #expect(admin.request(.isDomainIntroduced, args("9")).payload == b("F") + [0])
    }

    @Test func setTargetGrantsTheTargetsRights() {
        let dom7 = TestClient(server, caller: Caller(domid: 7, privileged: false))
        admin.mkdir("/local/domain/7")
        admin.setPerms("/local/domain/7", "n7")
        #expect(dom7.write("/local/domain/7/disk", "d").isOK)
        #expect(guest.read("/local/domain/7/disk").error == .EACCES)
        #expect(guest.write("/local/domain/7/disk", "x").error == .EACCES)
        #expect(admin.request(.setTarget, args("5", "7")).isOK)
        #expect(guest.read("/local/domain/7/disk").text == "d")
        #expect(guest.write("/local/domain/7/disk", "x").isOK)
        #expect(dom7.read("/local/domain/7/disk").text == "x")
        // New connections of domain 5 get the target too; domain 7 gets nothing from 5.
        let guest2 = TestClient(server, caller: Caller(domid: 5, privileged: false))
        #expect(guest2.read("/local/domain/7/disk").text == "x")
        guest.write("/local/domain/5/own", "o")
        #expect(dom7.read("/local/domain/5/own").error == .EACCES)
        #expect(admin.request(.setTarget, args("5", "99")).error == .ENOENT)
        #expect(admin.request(.setTarget, args("5")).error == .EINVAL)
    }

    @Test func specialWatchEventsNeedPermissionOnTheSpecialNode() {
        #expect(guest.watch("@releaseDomain", "r").isOK)
        #expect(guest.takeEvents() == [Event(path: "@releaseDomain", token: "r")])
        admin.request(.introduce, args("9", "1", "1"))
        admin.request(.release, args("9"))
        #expect(guest.takeEvents().isEmpty)
        #expect(guest.setPerms("@releaseDomain", "n0", "r5").error == .EACCES)
        #expect(admin.setPerms("@releaseDomain", "n0", "r5").isOK)
        admin.request(.introduce, args("10", "1", "1"))
        admin.request(.release, args("10"))
        #expect(guest.takeEvents() == [Event(path: "@releaseDomain", token: "r")])
        #expect(admin.setPerms("@nosuch", "n0").error == .ENOENT)
    }

    @Test func watchEventsAreFilteredByReadPermission() {
        #expect(guest.watch("/", "all").isOK)  // watching an unreadable path is allowed
        #expect(guest.takeEvents() == [Event(path: "/", token: "all")])
        admin.write("/secret/inner", "changed")
        admin.write("/secret/newnode", "n")
        admin.rm("/secret/newnode")
        #expect(guest.takeEvents().isEmpty)
        admin.write("/local/domain/5/byadmin", "v")
        admin.write("/pub/x", "again")
        #expect(guest.takeEvents().map(\.path) == ["/local/domain/5/byadmin", "/pub/x"])
        // A permission change that makes a node readable is seen; one on an unreadable node is not.
        admin.setPerms("/secret/inner", "n0", "r5")
        admin.setPerms("/secret", "n0")
        #expect(guest.takeEvents().map(\.path) == ["/secret/inner"])
        // The guest's own writes notify it.
        guest.write("mine", "")
        #expect(guest.takeEvents().map(\.path) == ["/local/domain/5/mine"])
    }
}

@Suite struct QuotaTests {
    let server = Server(time: 1_700_000_000)
    let admin: TestClient
    let guest: TestClient

    init() {
        admin = TestClient(server)
        guest = TestClient(server, caller: Caller(domid: 5, privileged: false))
        admin.request(.introduce, args("5", "1", "1"))
        admin.mkdir("/local/domain/5")
        admin.setPerms("/local/domain/5", "n5")
    }

    @Test func nodeQuota() {
        #expect(admin.request(.setQuota, args("5", "nodes", "4")).isOK)
        #expect(admin.request(.getQuota, args("5", "nodes")).payload == b("4") + [0])
        #expect(admin.request(.getQuota, args("nodes")).payload == b("1000") + [0])  // global unchanged
        // Domain 5 owns its home: 1 node. Three more fit.
        #expect(guest.write("a", "").isOK)
        #expect(guest.write("b", "").isOK)
        #expect(guest.write("c/d", "").error == .ENOSPC)  // two new nodes, one left
        #expect(guest.read("c").error == .ENOENT)  // nothing was created
        #expect(guest.write("c", "").isOK)
        #expect(guest.write("e", "").error == .ENOSPC)
        #expect(guest.mkdir("e").error == .ENOSPC)
        // Modifying existing nodes is not limited.
        #expect(guest.write("a", "changed").isOK)
        // Removing frees quota.
        #expect(guest.rm("a").isOK)
        #expect(guest.write("e", "").isOK)
        // Nodes dom0 creates in the guest's home inherit the owner (as in C) and are charged to it,
        // without a quota check for the privileged creator.
        #expect(admin.write("/local/domain/5/byadmin", "").isOK)
        #expect(admin.getPerms("/local/domain/5/byadmin").payload == args("n5"))
        #expect(admin.request(.control, args("quota", "5")).text.contains("nodes: 5\n"))
        #expect(guest.write("f", "").error == .ENOSPC)
        #expect(admin.request(.control, args("check")).text == "OK\0")
        // Lowering the global default applies to domains without their own quotas.
        let other = TestClient(server, caller: Caller(domid: 6, privileged: false))
        admin.mkdir("/local/domain/6")
        admin.setPerms("/local/domain/6", "n6")
        #expect(admin.request(.setQuota, args("nodes", "2")).isOK)
        #expect(other.write("x", "").isOK)
        #expect(other.write("y", "").error == .ENOSPC)
        // Privileged callers are exempt.
        for i in 0..<5 { #expect(admin.write("/local/domain/5/p\(i)", "").isOK) }
    }

    @Test func watchQuota() {
        #expect(admin.request(.setQuota, args("5", "watches", "2")).isOK)
        #expect(guest.watch("w1", "t").isOK)
        #expect(guest.watch("w2", "t").isOK)
        #expect(guest.watch("w3", "t").error == .E2BIG)
        // Counted per domain, across connections.
        let guest2 = TestClient(server, caller: Caller(domid: 5, privileged: false))
        #expect(guest2.watch("w4", "t").error == .E2BIG)
        #expect(guest.unwatch("w1", "t").isOK)
        #expect(guest2.watch("w4", "t").isOK)
        for i in 0..<5 { #expect(admin.watch("/aw\(i)", "t").isOK) }
    }

    @Test func transactionQuota() {
        #expect(admin.request(.setQuota, args("5", "transactions", "2")).isOK)
        let t1 = guest.start()
        _ = guest.start()
        #expect(guest.request(.transactionStart, [0]).error == .ENOSPC)
        #expect(guest.end(t1, commit: false).isOK)
        #expect(guest.request(.transactionStart, [0]).error == nil)
        // Default quota is 10 per connection.
        let fresh = TestClient(server, caller: Caller(domid: 8, privileged: false))
        for _ in 0..<10 { #expect(fresh.request(.transactionStart, [0]).error == nil) }
        #expect(fresh.request(.transactionStart, [0]).error == .ENOSPC)
        // dom0 is exempt.
        for _ in 0..<12 { #expect(admin.request(.transactionStart, [0]).error == nil) }
    }

    @Test func nodeSizePermissionsAndPathQuotas() {
        #expect(guest.write("small", String(repeating: "x", count: 1000)).isOK)
        #expect(guest.write("large", String(repeating: "x", count: 2048)).error == .ENOSPC)
        #expect(guest.write("small", String(repeating: "x", count: 2048)).error == .ENOSPC)
        #expect(guest.read("small").payload.count == 1000)
        guest.write("p", "")
        #expect(guest.setPerms("p", "n5", "r1", "r2", "r3", "r4").isOK)  // 5 entries
        #expect(guest.setPerms("p", "n5", "r1", "r2", "r3", "r4", "r0").error == .ENOSPC)
        // path-max (2048) counts the part after /local/domain/5/.
        var long = Array(repeating: String(repeating: "a", count: 63), count: 32).joined(separator: "/")
        long += "z"
        #expect(long.utf8.count == 2048)
        #expect(guest.write(long, "").isOK)
        #expect(guest.write(long + "z", "").error == .EINVAL)
        #expect(guest.write("/local/domain/5/" + long + "z", "").error == .EINVAL)
        #expect(admin.write("/local/domain/5/" + long + "z", "").error == .EINVAL)  // path-max binds dom0 too (C 4.17)
        #expect(admin.request(.getQuota, []).text.hasPrefix("nodes watches transactions"))
        #expect(admin.request(.setQuota, args("5", "bogus", "1")).error == .EINVAL)
        #expect(admin.request(.setQuota, args("77", "nodes", "1")).error == .ENOENT)
    }

    @Test func transactionNodesQuota() {
        #expect(admin.request(.setQuota, args("5", "transaction-nodes", "3")).isOK)
        let tx = guest.start()
        #expect(guest.write("t1", "", tx: tx).isOK)
        #expect(guest.write("t2", "", tx: tx).isOK)
        #expect(guest.read("t1", tx: tx).error == nil)  // same node again: not counted twice
        #expect(guest.write("t3", "", tx: tx).isOK)
        #expect(guest.write("t4", "", tx: tx).error == .ENOSPC)
    }
}

/// A full durable store (`Server.storageState`, set by the shell) refuses what would grow it,
/// with ENOSPC, and keeps answering reads and removals; dom0 keeps a reserve guests cannot use.
@Suite struct StorageFullTests {
    @Test func growthIsRefusedWhileTheStoreIsFull() {
        let server = Server(configuration: ServerConfiguration(), time: 1)
        let client = TestClient(server)
        #expect(client.write("/a", "1").isOK)
        let tx = client.start()
        #expect(client.write("/b", "2", tx: tx).isOK)
        server.storageState = .full
        let commits = server.history.commitCount
        #expect(client.write("/a", "2").error == .ENOSPC)
        #expect(client.mkdir("/m").error == .ENOSPC)
        #expect(client.setPerms("/a", "n0", "r1").error == .ENOSPC)
        #expect(client.write("/c", "3", tx: tx).isOK)        // inside the transaction: memory only
        #expect(client.end(tx).error == .ENOSPC)              // its commit would grow the store
        #expect(server.history.commitCount == commits)        // nothing was committed
        #expect(client.read("/a").payload == b("1"))
        #expect(client.rm("/a").isOK)                         // removals still work
        server.storageState = .available
        #expect(client.write("/a", "3").isOK)
    }

    @Test func dom0KeepsItsReserveWhenGuestsAreRefused() {
        let server = Server(configuration: ServerConfiguration(), time: 1)
        let dom0 = TestClient(server)
        let guest = TestClient(server, caller: Caller(domid: 7, privileged: false))
        #expect(dom0.write("/local/domain/7/x", "1").isOK)
        #expect(dom0.setPerms("/local/domain/7", "n7").isOK)
        #expect(dom0.setPerms("/local/domain/7/x", "n7").isOK)
        #expect(guest.write("/local/domain/7/x", "2").isOK)
        server.storageState = .reservedForDom0
        #expect(guest.write("/local/domain/7/x", "3").error == .ENOSPC)
        #expect(guest.mkdir("/local/domain/7/m").error == .ENOSPC)
        #expect(guest.rm("/local/domain/7/x").isOK)
        #expect(dom0.write("/local/domain/7/y", "dom0").isOK)
        server.storageState = .full
        #expect(dom0.write("/local/domain/7/z", "1").error == .ENOSPC)
    }
}

/// The `outstanding` quota: a guest that does not read its replies is not read further once
/// that many replies wait (the shells ask `wantsInput` before every read); dom0 is not limited.
@Suite struct OutstandingQuotaTests {
    @Test func unreadRepliesStopReadingAGuestAtTheQuota() {
        let server = Server(configuration: ServerConfiguration(), time: 1_700_000_000)
        let guest = server.openConnection(caller: Caller(domid: 9, privileged: false))
        let dom0 = server.openConnection(caller: .dom0)
        let quota = Limits.defaultOutstandingPerDomain
        var sent = 0
        while server.wantsInput(guest) && sent < 10 * quota {
            server.receive(Message(.read, requestID: UInt32(sent), payload: args("/local")).encoded, on: guest, time: 1_700_000_000)
            sent += 1
        }
        #expect(sent == quota, "the guest was read until \(sent) replies waited, quota \(quota)")
        for index in 0..<(2 * quota) {
            #expect(server.wantsInput(dom0))
            server.receive(Message(.read, requestID: UInt32(index), payload: args("/local")).encoded, on: dom0, time: 1_700_000_000)
        }
        #expect(server.wantsInput(dom0), "dom0 has no outstanding quota (only the general back-pressure bound)")
        // Reading its replies lets the guest in again.
        _ = server.takeOutput(guest)
        #expect(server.wantsInput(guest))
        // A raised quota for the (introduced) domain applies at once.
        let admin = TestClient(server)
        #expect(admin.request(.introduce, args("9", "1", "1")).error == nil)
        #expect(admin.request(.setQuota, args("9", "outstanding", String(2 * quota))).error == nil)
        _ = server.takeOutput(guest)
        sent = 0
        while server.wantsInput(guest) && sent < 10 * quota {
            server.receive(Message(.read, requestID: UInt32(sent), payload: args("/local")).encoded, on: guest, time: 1_700_000_000)
            sent += 1
        }
        #expect(sent == 2 * quota)
    }
}
