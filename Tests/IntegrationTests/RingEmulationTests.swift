// Emulated domain rings (--ring-dir): guests served through shared pages, and a SIGKILL of the daemon that every guest survives.

import Foundation
import Testing
import XenstoreHost
import XenstoreWire

private func strings(_ parts: String...) -> [UInt8] { Payload.join(parts.map { Array($0.utf8) }) }

private func events(_ inbox: [Message], token: String) -> [String] {
    inbox.filter { $0.header.type == MessageType.watchEvent.rawValue }
        .map { Payload.strings($0.payload).strings }
        .filter { $0.count == 2 && $0[1] == Array(token.utf8) }
        .map { String(decoding: $0[0], as: UTF8.self) }
}

@Suite("emulated domain rings (--ring-dir)", .serialized)
struct RingEmulationTests {
    /// dom0 introduces a domain whose ring is an emulated page; the guest reads, writes and
    /// watches through it; RELEASE fires @releaseDomain and removes its nodes.
    @Test("a guest served through an emulated ring: read, write, watch, release")
    func guestThroughEmulatedRing() throws {
        let root = try makeTemporaryDirectory("xsring")
        defer { try? FileManager.default.removeItem(atPath: root) }
        let daemon = try Daemon(extraArguments: ["--ring-dir", root + "/rings"])
        let guest = try EmulatedDomain(root: root + "/rings", domid: 7)
        let dom0 = try daemon.client()
        try dom0.watch("@releaseDomain", token: "gone")
        _ = try dom0.nextEvent()
        _ = try dom0.request(.mkdir, strings("/local/domain/7"))
        _ = try dom0.request(.setPerms, strings("/local/domain/7", "n7"))
        _ = try dom0.request(.introduce, strings("7", "0", "1"))
        #expect(try guest.request(.write, strings("/local/domain/7/name") + Array("guest".utf8), requestID: 1).payload == Payload.ok)
        #expect(text(try dom0.read("/local/domain/7/name")) == "guest")
        #expect(try guest.request(.read, strings("name"), requestID: 2).payload == Array("guest".utf8))
        #expect(try guest.request(.write, strings("/forbidden") + [0x31], requestID: 3).payload == Array("EACCES".utf8) + [0])
        #expect(try guest.request(.watch, strings("control", "c"), requestID: 4).payload == Payload.ok)
        try dom0.write("/local/domain/7/control/shutdown", Array("poweroff".utf8))
        try guest.wait(seconds: 10) { events($0, token: "c").contains("control/shutdown") }
        _ = try dom0.request(.release, strings("7"))
        let (path, token) = try dom0.nextEvent()
        #expect(text(path) == "@releaseDomain" && text(token) == "gone")
        #expect(throws: (any Error).self) { _ = try dom0.read("/local/domain/7") }
        #expect(daemon.isRunning)
    }

    /// The reliability test: SIGKILL while three guests have half-written packets in
    /// their rings, undelivered watch events queued and open transactions; after a restart every
    /// request completes, every event arrives (at most duplicated, never lost), acknowledged
    /// writes are present, and open transactions answer EAGAIN.
    @Test("SIGKILL with half-written packets and pending events: every guest resumes", arguments: ["--block", "--database"])
    func sigkillWithGuestsMidway(backendOption: String) throws {
        let root = try makeTemporaryDirectory("xsring")
        defer { try? FileManager.default.removeItem(atPath: root) }
        let rings = root + "/rings"
        let store = backendOption == "--block" ? root + "/store.blk" : root + "/db"
        let arguments = [backendOption, store, "--ring-dir", rings] + (backendOption == "--block" ? ["--block-size", "1M"] : [])
        let daemon = try Daemon(extraArguments: arguments)
        let dom0 = try daemon.client()
        let domids: [UInt32] = [1, 2, 3]
        var guests: [UInt32: EmulatedDomain] = [:]
        var transactions: [UInt32: UInt32] = [:]
        let eventCount = 60
        for domid in domids {
            let guest = try EmulatedDomain(root: rings, domid: domid)
            guests[domid] = guest
            _ = try dom0.request(.mkdir, strings("/local/domain/\(domid)"))
            _ = try dom0.request(.setPerms, strings("/local/domain/\(domid)", "n\(domid)"))
            _ = try dom0.request(.introduce, strings("\(domid)", "0", "\(domid)"))
            #expect(try guest.request(.write, strings("acked") + Array("before".utf8), requestID: 1).payload == Payload.ok)
            #expect(try guest.request(.watch, strings("/local/domain/\(domid)/watched", "w"), requestID: 2).payload == Payload.ok)
            let started = try guest.request(.transactionStart, [0], requestID: 3)
            transactions[domid] = UInt32(String(decoding: started.payload.dropLast(), as: UTF8.self))
            #expect(transactions[domid] != nil)
            #expect(try guest.request(.write, strings("in-tx") + [0x31], requestID: 4, transaction: transactions[domid]!).payload == Payload.ok)
        }
        // The guests stop reading: dom0 fires more events than a reply ring holds, so most of
        // them wait in the daemon's queues.
        for index in 0..<eventCount {
            for domid in domids { try dom0.write("/local/domain/\(domid)/watched/e\(index)", [0x78]) }
        }
        // Each guest leaves half a request in its ring.
        for domid in domids {
            let request = Message(.write, requestID: 99, payload: strings("/local/domain/\(domid)/late") + Array("done".utf8)).encoded
            guests[domid]!.sendRaw(Array(request[..<11]))
        }
        usleep(300_000)  // the daemon reads the partial packets and saves its state
        daemon.killHard()
        #expect(!daemon.isRunning)

        let restarted = try Daemon(extraArguments: arguments)
        #expect(restarted.log.contains("resumed 3 domain ring(s)"), "log: \(restarted.log)")
        let admin = try restarted.client()
        for domid in domids {
            let guest = guests[domid]!
            let request = Message(.write, requestID: 99, payload: strings("/local/domain/\(domid)/late") + Array("done".utf8)).encoded
            guest.sendRaw(Array(request[11...]))
            try guest.wait(seconds: 15) { inbox in
                Set(events(inbox, token: "w").filter { $0.contains("/watched/e") }).count == eventCount
                    && inbox.contains { $0.header.requestID == 99 }
            }
            let delivered = events(guest.inbox, token: "w").filter { $0.contains("/watched/e") }
            #expect(delivered.count <= 2 * eventCount, "domain \(domid): events duplicated beyond once each")
            #expect(guest.inbox.first { $0.header.requestID == 99 }?.payload == Payload.ok)
            #expect(try guest.request(.read, strings("acked"), requestID: 5).payload == Array("before".utf8))
            #expect(try guest.request(.read, strings("late"), requestID: 6).payload == Array("done".utf8))
            // the open transaction was aborted by the restart: EAGAIN, and its write never landed
            let ended = try guest.request(.transactionEnd, strings("T"), requestID: 7, transaction: transactions[domid]!)
            #expect(ended.payload == Array("EAGAIN".utf8) + [0],
                    "domain \(domid): END of tx \(transactions[domid]!) answered \(ended); log: \(restarted.log)")
            let inTransaction = try guest.request(.read, strings("in-tx"), requestID: 8)
            #expect(inTransaction.payload == Array("ENOENT".utf8) + [0], "domain \(domid): in-tx read answered \(inTransaction)")
            // the restored watch still fires
            guest.inbox.removeAll()
            try admin.write("/local/domain/\(domid)/watched/after", [0x79])
            try guest.wait(seconds: 10) { events($0, token: "w").contains("/local/domain/\(domid)/watched/after") }
        }
        let introduced = try admin.request(.isDomainIntroduced, strings("2"))
        #expect(introduced == Array("T".utf8) + [0])
        #expect(restarted.isRunning)
    }
}
