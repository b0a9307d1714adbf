// Memory a guest makes the server hold: nodes, transactions, watches and queued output, per domain (`memory` quota) and for all guests together (`guestMemoryLimit`).

import Testing
import XenstoreStore
import XenstoreWire
@testable import XenstoreServer

@Suite struct MemoryAccountingTests {
    /// The accounted bytes of a node as `NodeOperations.footprint` defines them, restated.
    static func expectedFootprint(value: Int, permissions: Int, name: String) -> Int {
        Limits.nodeMemoryOverhead + value + 8 * permissions + name.utf8.count
    }

    /// A server whose guests together may hold `guestLimit` bytes.
    static func server(guestLimit: Int = Limits.defaultGuestMemoryTotal) -> Server {
        var configuration = ServerConfiguration()
        configuration.guestMemoryLimit = guestLimit
        return Server(configuration: configuration, time: 1_700_000_000)
    }

    /// The incremental accounting agrees with a recount (CONTROL check).
    static func expectConsistent(_ admin: TestClient, _ comment: Comment? = nil) {
        #expect(admin.request(.control, args("check")).text == "OK\0", comment)
    }

    @Test func nodesAreAccountedToTheirOwner() throws {
        let server = MemoryAccountingTests.server()
        let (admin, guest) = adminAndGuest(server)
        let before = server.domains.usage(of: 5, in: .nodes)
        #expect(guest.write("/local/domain/5/data/name", "abcdef").isOK)
        let created = MemoryAccountingTests.expectedFootprint(value: 0, permissions: 1, name: "data")
            + MemoryAccountingTests.expectedFootprint(value: 6, permissions: 1, name: "name")
        #expect(server.domains.usage(of: 5, in: .nodes) == before + created)
        // A longer value costs its extra bytes; more permission entries 8 bytes each.
        #expect(guest.write("/local/domain/5/data/name", "abcdefghij").isOK)
        #expect(guest.setPerms("/local/domain/5/data/name", "n5", "r0", "b7").isOK)
        #expect(server.domains.usage(of: 5, in: .nodes) == before + created + 4 + 16)
        #expect(admin.request(.control, args("quota", "5")).text.contains("memory nodes: \(before + created + 20)\n"))
        MemoryAccountingTests.expectConsistent(admin)
        // dom0 giving the node away moves its bytes to the new owner.
        #expect(admin.request(.introduce, args("6", "1", "1")).isOK)
        #expect(admin.setPerms("/local/domain/5/data/name", "n6").isOK)
        #expect(server.domains.usage(of: 5, in: .nodes) == before + created - MemoryAccountingTests.expectedFootprint(value: 6, permissions: 1, name: "name"))
        #expect(server.domains.usage(of: 6, in: .nodes) == MemoryAccountingTests.expectedFootprint(value: 10, permissions: 1, name: "name"))
        // Removing the subtree gives everything back, to both owners.
        #expect(admin.rm("/local/domain/5/data").isOK)
        #expect(server.domains.usage(of: 5, in: .nodes) == before)
        #expect(server.domains.usage(of: 6, in: .nodes) == 0)
        MemoryAccountingTests.expectConsistent(admin)
    }

    /// A guest over its own `memory` quota gets ENOMEM for anything that grows what it holds;
    /// rewriting without growing, removing, and dom0 writing for it keep working.
    @Test func aGuestStopsAtItsMemoryQuota() throws {
        let server = MemoryAccountingTests.server()
        let (admin, guest) = adminAndGuest(server)
        #expect(admin.request(.introduce, args("5", "1", "1")).isOK)
        let quota = server.domains.usage(of: 5) + 10_000
        #expect(admin.request(.setQuota, args("5", "memory", "\(quota)")).isOK)
        let value = String(repeating: "v", count: 1000)
        var written = 0
        while guest.write("/local/domain/5/n\(written)", value).isOK { written += 1 }
        #expect(written == 7 || written == 8, "1,000-byte nodes of about 1,260 accounted bytes in 10,000: \(written)")
        #expect(guest.write("/local/domain/5/n\(written)", value).error == .ENOMEM)
        #expect(server.domains.usage(of: 5) <= quota)
        // Growing n0 by exactly what is left fits; one byte more, or a watch, does not.
        let left = quota - server.domains.usage(of: 5)
        try #require(left >= 0 && left < 2000)
        let first = min(left, 1000)
        #expect(guest.write("/local/domain/5/n0", String(repeating: "w", count: 1000 + first)).isOK)
        #expect(guest.write("/local/domain/5/n1", String(repeating: "w", count: 1000 + left - first)).isOK)
        #expect(server.domains.usage(of: 5) == quota)
        #expect(guest.write("/local/domain/5/n1", String(repeating: "w", count: 1001 + left - first)).error == .ENOMEM)
        #expect(guest.watch("/local/domain/5", "tok").error == .ENOMEM)
        #expect(guest.write("/local/domain/5/n0", String(repeating: "w", count: 1000)).isOK)
        let tx = guest.start()
        #expect(guest.write("/local/domain/5/n1", "x", tx: tx).isOK)  // shrinks: allowed
        #expect(guest.end(tx).isOK)
        #expect(admin.write("/local/domain/5/from-dom0", value).isOK)
        #expect(guest.rm("/local/domain/5/n0").isOK)
        #expect(guest.rm("/local/domain/5/from-dom0").isOK)
        #expect(guest.write("/local/domain/5/again", value).isOK)
        MemoryAccountingTests.expectConsistent(admin)
    }

    /// Many guests each within their quota cannot together pass `guestMemoryLimit`: past it every
    /// guest's growth gets ENOMEM while dom0 keeps writing, and room freed by one guest serves another.
    @Test func guestsTogetherStopAtTheGuestLimit() throws {
        let limit = 200_000
        let server = MemoryAccountingTests.server(guestLimit: limit)
        let admin = TestClient(server)
        var guests: [TestClient] = []
        for domid in UInt32(1)...8 {
            guests.append(TestClient(server, caller: Caller(domid: domid, privileged: false)))
            giveHome(to: domid, by: admin)
        }
        let value = String(repeating: "g", count: 1500)
        var refusedEveryone = false
        var round = 0
        while !refusedEveryone && round < 1000 {
            refusedEveryone = true
            for (index, guest) in guests.enumerated() {
                let reply = guest.write("/local/domain/\(index + 1)/r\(round)", value)
                if reply.isOK { refusedEveryone = false } else { #expect(reply.error == .ENOMEM) }
            }
            round += 1
        }
        #expect(refusedEveryone)
        #expect(server.domains.guestBytes <= limit)
        #expect(server.domains.guestBytes > limit - 2 * 1800)
        for domid in UInt32(1)...8 { #expect(server.domains.usage(of: domid) < Quotas().memory) }
        #expect(admin.write("/local/domain/0/big", String(repeating: "d", count: 4000)).isOK)
        #expect(admin.write("/local/domain/3/for-the-guest", value).isOK)  // dom0 is never refused
        #expect(guests[0].rm("/local/domain/1/r0").isOK)
        #expect(guests[0].rm("/local/domain/1/r1").isOK)
        #expect(guests[0].rm("/local/domain/1/r2").isOK)
        #expect(guests[0].rm("/local/domain/1/r3").isOK)
        #expect(guests[5].write("/local/domain/6/later", value).isOK)
        #expect(admin.request(.control, args("memreport")).text.contains("guest bytes: \(server.domains.guestBytes) of \(limit)"))
        MemoryAccountingTests.expectConsistent(admin)
    }

    /// Watches are accounted while registered; transaction logs while open.
    @Test func watchesAndTransactionsAreAccountedWhileTheyLast() throws {
        let server = MemoryAccountingTests.server()
        let (admin, guest) = adminAndGuest(server)
        #expect(guest.watch("/local/domain/5/device", "token-1").isOK)
        #expect(server.domains.usage(of: 5, in: .watches) == Limits.watchMemoryOverhead + "/local/domain/5/device".utf8.count + 7)
        let tx = guest.start()
        #expect(guest.write("/local/domain/5/t", "in a transaction", tx: tx).isOK)
        #expect(server.domains.usage(of: 5, in: .transactions) > 0)
        MemoryAccountingTests.expectConsistent(admin)
        #expect(guest.end(tx).isOK)
        #expect(server.domains.usage(of: 5, in: .transactions) == 0)
        #expect(guest.unwatch("/local/domain/5/device", "token-1").isOK)
        #expect(server.domains.usage(of: 5, in: .watches) == 0)
        #expect(guest.watch("/local/domain/5/a", "x").isOK)
        #expect(guest.watch("/local/domain/5/b", "y").isOK)
        #expect(guest.request(.resetWatches, []).isOK)
        #expect(server.domains.usage(of: 5, in: .watches) == 0)
        #expect(guest.watch("/local/domain/5/c", "z").isOK)
        server.closeConnection(guest.id)
        #expect(server.domains.usage(of: 5, in: .watches) == 0)
        #expect(server.domains.usage(of: 5, in: .output) == 0)
        MemoryAccountingTests.expectConsistent(admin)
    }

    /// Attack: guests that watch a busy node and never read their ring. Each connection's queue
    /// is bounded by `unprivilegedOutputQueueBytes`; all of them together by the guest limit:
    /// further events for guests are dropped (and counted), and a guest with unread replies is
    /// not read. dom0's events are not affected.
    @Test func unreadEventsOfGuestsStopAtTheGuestLimit() throws {
        let limit = 300_000
        let server = MemoryAccountingTests.server(guestLimit: limit)
        let admin = TestClient(server)
        admin.mkdir("/busy")
        admin.setPerms("/busy", "r0")
        var silent: [ConnectionID] = []
        for domid in UInt32(1)...4 {
            let id = server.openConnection(caller: Caller(domid: domid, privileged: false))
            // A long token makes every event about 2 KiB.
            server.receive(Message(.watch, payload: args("/busy", String(repeating: "t", count: 2000))).encoded,
                           on: id, time: 1_700_000_000)
            silent.append(id)
        }
        let watcher = TestClient(server)
        #expect(watcher.watch("/busy", "dom0").isOK)
        for i in 0..<400 {
            #expect(admin.write("/busy", "\(i)").isOK)
            watcher.drain()
        }
        #expect(server.domains.guestBytes <= limit)
        #expect(server.domains.guestBytes > limit - 2100, "no room left for one more event")
        let dropped = silent.reduce(0) { $0 + server.droppedEvents($1) }
        #expect(dropped > 0)
        #expect(watcher.takeEvents().filter { $0.token == "dom0" }.count == 401)
        for id in silent {
            #expect(server.outputByteCount(id) <= Limits.unprivilegedOutputQueueBytes)
            #expect(!server.wantsInput(id), "over the guest limit with replies unread: not read")
        }
        // Taking one guest's output lets it be read and its events be queued again.
        _ = server.takeOutput(silent[0])
        #expect(server.wantsInput(silent[0]))
        MemoryAccountingTests.expectConsistent(admin)
    }

    /// Attack: a guest rewriting large values keeps every old version alive in the history
    /// window. Its share of the window is accounted to it and bounded
    /// (`retainedHistoryBytesPerGuest`): older commits leave the window instead; dom0's writes
    /// are not bounded by it.
    @Test func historyKeptForAGuestIsBounded() throws {
        var configuration = ServerConfiguration()
        configuration.retainedHistoryBytesPerGuest = 100_000
        let server = Server(configuration: configuration, time: 1_700_000_000)
        let (admin, guest) = adminAndGuest(server)
        for round in 0..<300 {
            #expect(guest.write("/local/domain/5/big", String(repeating: "\(round % 10)", count: 2000)).isOK)
        }
        let share = server.history.retainedBytesByAuthor[5] ?? 0
        #expect(share > 90_000 && share <= 100_000, "\(share)")
        #expect(admin.request(.control, args("quota", "5")).text.contains("history bytes: \(share)\n"))
        for round in 0..<100 {
            #expect(admin.write("/local/domain/0/big", String(repeating: "\(round % 10)", count: 2000)).isOK)
        }
        #expect((server.history.retainedBytesByAuthor[0] ?? 0) > 100_000)
    }

    /// Random requests of dom0 and three guests (nodes, permissions, transactions, watches,
    /// unread output, closing connections): the incremental accounting always equals a recount.
    @Test(arguments: [1, 2, 3]) func accountingMatchesARecount(seed: UInt64) throws {
        var rng = SplitMix64(seed: seed)
        let server = MemoryAccountingTests.server(guestLimit: 60_000)
        let admin = TestClient(server)
        var guests: [UInt32: TestClient] = [:]
        for domid in UInt32(1)...3 {
            guests[domid] = TestClient(server, caller: Caller(domid: domid, privileged: false))
            giveHome(to: domid, by: admin)
        }
        var open: [UInt32: UInt32] = [:]
        // A second connection per guest that sends without reading, as far as the server lets it.
        var silent: [UInt32: ConnectionID] = [:]
        for domid in UInt32(1)...3 { silent[domid] = server.openConnection(caller: Caller(domid: domid, privileged: false)) }
        for step in 0..<1500 {
            let domid = UInt32(1 + rng.below(3))
            var client = guests[domid]!
            let asAdmin = rng.chance(20)
            let actor = asAdmin ? admin : client
            let path = "/local/domain/\(domid)/" + ["a", "a/b", "c", "c/d/e", "f"][rng.below(5)]
            let tx = !asAdmin ? (open[domid] ?? 0) : 0
            switch rng.below(10) {
            case 0, 1, 2: actor.write(path, String(repeating: "x", count: rng.below(1200)), tx: tx)
            case 3: actor.rm(path, tx: tx)
            case 4: actor.setPerms(path, "n\(asAdmin ? UInt32(rng.below(4)) : domid)", "r0", tx: tx)
            case 5: actor.watch(path, "w\(rng.below(3))")
            case 6: actor.unwatch(path, "w\(rng.below(3))")
            case 7:
                if let current = open[domid] {
                    client.end(current, commit: rng.chance(70))
                    open[domid] = nil
                } else {
                    open[domid] = client.start()
                }
            case 8:
                // A guest that sends without reading: its replies and events stay queued.
                let id = silent[domid]!
                if rng.chance(10) {
                    _ = server.takeOutput(id)
                } else if server.wantsInput(id) {
                    let type: MessageType = rng.chance(50) ? .write : .watch
                    server.receive(Message(type, payload: args(path, "unread\(rng.below(5))")).encoded, on: id, time: client.time)
                }
            default:
                if rng.chance(10) {
                    server.closeConnection(client.id)
                    open[domid] = nil
                    client = TestClient(server, caller: Caller(domid: domid, privileged: false))
                    guests[domid] = client
                } else {
                    client.drain()
                }
            }
            if step % 50 == 0 { MemoryAccountingTests.expectConsistent(admin, "step \(step)") }
        }
        MemoryAccountingTests.expectConsistent(admin)
    }
}
