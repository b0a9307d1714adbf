// Connection state survives a restart: domains, watches, partial packets and undelivered output come back; open transactions get EAGAIN.

import Testing
import XenstoreStore
import XenstoreWire
@testable import XenstoreServer

@Suite struct SnapshotTests {
    /// A server with a dom0 client and an introduced domain's connection carrying every kind of state.
    struct Scene {
        let server: Server
        let admin: TestClient
        let guest: TestClient
        let transaction: UInt32
        let partialWrite: [UInt8]

        init() {
            server = Server(time: 1_700_000_000)
            admin = TestClient(server)
            #expect(admin.request(.introduce, args("5", "4242", "17")).isOK)
            _ = server.takeEffects()
            admin.mkdir("/local/domain/5")
            admin.setPerms("/local/domain/5", "n5")
            guest = TestClient(server, caller: Caller(domid: 5, privileged: false))
            #expect(guest.watch("data", "rel").isOK)              // relative watch
            #expect(guest.request(.watch, args("/local/domain/5/deep", "d", "0")).isOK)  // depth 0
            admin.watch("@releaseDomain", "gone")
            _ = guest.takeEvents()
            _ = admin.takeEvents()
            transaction = admin.start()
            #expect(admin.write("/tx/x", "1", tx: transaction).isOK)
            // an event the guest has not read yet
            admin.write("/local/domain/5/data", "pending")
            // half a request from the guest
            let request = Message(.write, requestID: 99, payload: args("/local/domain/5/late") + b("v")).encoded
            partialWrite = request
            server.receive(request[..<10], on: guest.id, time: 1_700_000_001)
        }
    }

    @Test func restoredConnectionsResumeWhereTheyStopped() throws {
        let scene = Scene()
        let saved = scene.server.encodeState(connections: [scene.admin.id, scene.guest.id])
        // restart: a new server over the same history, no connections
        let restarted = Server(history: scene.server.history, time: 1_700_000_100)
        let ids = try restarted.restoreState(saved)
        #expect(ids == [scene.admin.id, scene.guest.id])
        let admin = TestClient(restarted, existing: scene.admin.id)
        let guest = TestClient(restarted, existing: scene.guest.id)
        // the undelivered event comes first, then the rest of the half-sent request completes
        guest.drain()
        #expect(guest.takeEvents() == [Event(path: "data", token: "rel")])
        let replies = guest.sendRaw(Array(scene.partialWrite[10...]))
        #expect(replies.map(\.header.requestID) == [99])
        #expect(replies.first?.payload == Payload.ok)
        // watches still fire (relative path, depth limit kept)
        admin.write("/local/domain/5/data", "again")
        admin.write("/local/domain/5/deep/child", "not reported: below depth 0")
        admin.write("/local/domain/5/deep", "reported")
        #expect(guest.takeEvents() == [Event(path: "data", token: "rel"), Event(path: "/local/domain/5/deep", token: "d")])
        // the open transaction was aborted: EAGAIN inside it and at its end, then it is gone
        #expect(admin.read("/tx/x", tx: scene.transaction).error == .EAGAIN)
        #expect(admin.end(scene.transaction).error == .EAGAIN)
        #expect(admin.end(scene.transaction).error == .ENOENT)
        #expect(admin.read("/tx/x").error == .ENOENT)  // its write never reached the store
        // the domain is still introduced, and its death reaches the restored @releaseDomain watch
        #expect(admin.request(.isDomainIntroduced, args("5")).payload == b("T") + [0])
        restarted.domainDied(5, time: 1_700_000_200)
        #expect(admin.takeEvents() == [Event(path: "@releaseDomain", token: "gone")])
        #expect(restarted.takeEffects().contains(.disconnectDomain(domid: 5)))
        // new connections never reuse a restored id
        let fresh = restarted.openConnection(caller: .dom0)
        #expect(fresh.raw > scene.guest.id.raw)
    }

    @Test func restoredDomainKeepsItsRingAddressAndOwnership() throws {
        let scene = Scene()
        let restarted = Server(history: scene.server.history, time: 1_700_000_100)
        _ = try restarted.restoreState(scene.server.encodeState(connections: []))
        #expect(restarted.domains[5]?.gfn == 4242)
        #expect(restarted.domains[5]?.eventChannel == 17)
        #expect(restarted.domains[5]?.introduced == true)
        // quota accounting is recounted from the tree: the guest still owns its home
        #expect(restarted.domains.ownedNodes[5] == scene.server.domains.ownedNodes[5])
    }

    @Test func damagedSnapshotsAreRejectedWithoutChangingTheServer() {
        let scene = Scene()
        let saved = scene.server.encodeState(connections: [scene.admin.id, scene.guest.id])
        for length in stride(from: 0, to: saved.count, by: 7) {
            let restarted = Server(history: scene.server.history, time: 1)
            #expect(throws: SnapshotError.self) { try restarted.restoreState(Array(saved[..<length])) }
            #expect(restarted.connections.isEmpty)
            #expect(restarted.domains.count == 1)
        }
        var wrongMagic = saved
        wrongMagic[0] ^= 0xFF
        #expect(throws: SnapshotError.badMagic) { try Server(history: scene.server.history, time: 1).restoreState(wrongMagic) }
        var trailing = saved
        trailing.append(0)
        #expect(throws: SnapshotError.truncated) { try Server(history: scene.server.history, time: 1).restoreState(trailing) }
        // a huge count cannot make the reader allocate or loop: it fails at once
        var hugeCount = SnapshotWriter()
        hugeCount.u32(Server.snapshotMagic)
        hugeCount.u32(1)
        hugeCount.u32(1)
        hugeCount.u32(0xFFFF_FFFF)
        #expect(throws: SnapshotError.truncated) { try Server(history: scene.server.history, time: 1).restoreState(hugeCount.bytes) }
    }
}
