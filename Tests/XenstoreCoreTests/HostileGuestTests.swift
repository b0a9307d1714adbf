// Hostile guests: attacks that tried to make the server do unbounded work or hold unbounded memory, with their bounds.

import Testing
import XenstoreStore
import XenstoreWire
@testable import XenstoreServer

@Suite struct DirectoryPartCostTests {
    /// The DIRECTORY_PART slice as the old implementation computed it from the whole joined list:
    /// the reference the chunk walk must agree with, byte for byte.
    static func referenceSlice(_ names: [[UInt8]], offset: Int, maxBytes: Int) -> (bytes: [UInt8], atEnd: Bool) {
        let list = Payload.join(names)
        if offset >= list.count { return ([], true) }
        var length = 0
        var position = offset
        while position < list.count {
            var end = position
            while end < list.count && list[end] != 0 { end += 1 }
            if length + (end - position) >= maxBytes { break }
            length += end - position + 1
            position = end + 1
        }
        return (Array(list[offset..<(offset + length)]), offset + length >= list.count)
    }

    /// Every offset (including ones inside names and past the end) of flat and chunked lists gives
    /// the same slice as the reference.
    @Test(arguments: [5, 128, 129, 700])
    func sliceAgreesWithTheJoinedList(count: Int) {
        let gen = GenerationCounter()
        var rng = SplitMix64(seed: UInt64(count))
        var names: Set<String> = []
        while names.count < count { names.insert("n" + String(rng.below(100_000)) + String(repeating: "x", count: rng.below(30))) }
        let sorted = names.map { b($0) }.sorted { $0.lexicographicallyPrecedes($1) }
        let list = ChildList(sorted.map { Child(name: $0, node: node("", gen: gen)) })
        let total = Payload.join(sorted).count
        for maxBytes in [40, 4000] {
            var offset = 0
            while offset <= total + 3 {
                let slice = list.nameListSlice(fromByte: offset, maxBytes: maxBytes)
                let expected = DirectoryPartCostTests.referenceSlice(sorted, offset: offset, maxBytes: maxBytes)
                #expect(slice.bytes == expected.bytes && slice.atEnd == expected.atEnd, "offset \(offset)")
                offset += 1 + rng.below(7)
            }
        }
    }

    /// Attack: many DIRECTORY_PART calls on a 5,000-entry directory. Reading it whole takes
    /// about 19 calls; reading it 200 times over, 3,800. The entries examined stay within the
    /// names returned plus one chunk per call (each call used to rebuild the whole list: 5,000
    /// entries per call, 19 million in all).
    @Test func largeDirectoryIsServedInLinearTotalWork() throws {
        let server = Server(time: 1_700_000_000)
        let c = TestClient(server)
        let tx = c.start()
        var names: [String] = []
        for i in 0..<5000 {
            let name = "device-" + String(100_000 + i)
            names.append(name)
            #expect(c.write("/big/\(name)", "", tx: tx).isOK)
        }
        #expect(c.end(tx).isOK)
        var calls = 0
        var entriesReturned = 0
        let before = server.counters.directoryPartEntriesVisited
        for _ in 0..<200 {
            var collected: [String] = []
            var offset = 0
            while true {
                calls += 1
                let reply = c.request(.directoryPart, args("/big", "\(offset)"))
                try #require(reply.error == nil)
                var strings = reply.strings
                strings.removeFirst()  // generation
                let atEnd = strings.last == ""
                if atEnd { strings.removeLast() }
                collected += strings
                offset += strings.reduce(0) { $0 + $1.utf8.count + 1 }
                if atEnd { break }
                try #require(!strings.isEmpty)
            }
            entriesReturned += collected.count
            #expect(collected == names)
        }
        let visited = server.counters.directoryPartEntriesVisited - before
        #expect(calls < 200 * 25)
        // One entry per name returned, one that did not fit per call, one chunk to find the offset.
        #expect(visited <= entriesReturned + calls * (1 + ChildList.chunkLimit))
    }
}

@Suite struct TransactionLogBoundTests {
    let server = Server(time: 1_700_000_000)
    let admin: TestClient
    let guest: TestClient

    init() {
        (admin, guest) = adminAndGuest(server)
        admin.write("/local/domain/5/data/x", "0")
        admin.setPerms("/local/domain/5/data", "n5")
        admin.setPerms("/local/domain/5/data/x", "n5")
        admin.write("/local/domain/5/other", "0")
        admin.setPerms("/local/domain/5/other", "n5")
    }

    var guestTransactionBytes: Int { server.domains.usage(of: 5, in: .transactions) }

    /// Attack: one guest transaction rewrites one node 100,000 times (the probe grew the daemon
    /// by 231 MB). The transaction holds one log entry, a few hundred bytes; its commit, rebased
    /// over another change, replays one request.
    @Test func rewritingOneNodeHoldsOneChange() throws {
        let tx = guest.start()
        var largestHeld = 0
        for i in 0..<100_000 {
            let reply = guest.write("/local/domain/5/data/x", "value-\(i)", tx: tx)
            if !reply.isOK { try #require(reply.isOK, "write \(i): \(reply)") }
            largestHeld = max(largestHeld, guestTransactionBytes)
        }
        let connection = try #require(server.connections[guest.id])
        let transaction = try #require(connection.transactions[tx])
        #expect(transaction.log.entries.count == 1)
        #expect(transaction.workspace.triggers.count == 1)
        #expect(largestHeld < 1024)
        #expect(largestHeld == transaction.heldBytes)
        // Someone else changes another node: the commit is a replay of what the transaction did.
        #expect(guest.write("/local/domain/5/other", "outside").isOK)
        let replayedBefore = server.counters.transactionRequestsReplayed
        #expect(guest.end(tx).isOK)
        #expect(server.counters.transactionRequestsReplayed - replayedBefore == 1)
        #expect(admin.read("/local/domain/5/data/x").text == "value-99999")
        #expect(guestTransactionBytes == 0)
    }

    /// Rewrites interleaved over several nodes fold too, and reads repeated without a change in
    /// between are not logged again.
    @Test func interleavedRewritesAndPollingReadsStayBounded() throws {
        let tx = guest.start()
        for i in 0..<20_000 {
            #expect(guest.read("/local/domain/5/other", tx: tx).text == "0")
            #expect(guest.write("/local/domain/5/data/n\(i % 4)", "v\(i)", tx: tx).isOK)
        }
        let transaction = try #require(server.connections[guest.id]?.transactions[tx])
        // One read of /other before the first write, then one read per write of the first round
        // (each write makes the next read new), then the four folded writes and nothing more.
        #expect(transaction.log.entries.count <= 9)
        #expect(guestTransactionBytes < 4096)
        #expect(guest.end(tx).isOK)
        for n in 0..<4 { #expect(admin.read("/local/domain/5/data/n\(n)").text == "v\(19_996 + n)") }
    }

    /// Folding keeps the branch semantics: what the transaction read is still re-validated, and a
    /// folded write's largest value must still fit the `node-size` quota at the commit.
    @Test func foldedLogsStillConflictWhereTheFullLogWould() throws {
        // A read before the rewrites: an outside change of what was read is a conflict.
        let tx = guest.start()
        #expect(guest.read("/local/domain/5/other", tx: tx).text == "0")
        for i in 0..<1000 { #expect(guest.write("/local/domain/5/data/x", "\(i)", tx: tx).isOK) }
        #expect(admin.write("/local/domain/5/other", "changed").isOK)
        #expect(guest.end(tx).error == .EAGAIN)
        #expect(admin.read("/local/domain/5/data/x").text == "0")

        // A 1,900-byte value then a short one; meanwhile dom0 gives the node children whose names
        // leave no room for 1,900 bytes under the 2,048-byte node-size quota. Replaying every write
        // would fail the first; the folded entry must fail the same way.
        let tx2 = guest.start()
        #expect(guest.write("/local/domain/5/data/x", String(repeating: "b", count: 1900), tx: tx2).isOK)
        #expect(guest.write("/local/domain/5/data/x", "short", tx: tx2).isOK)
        #expect(server.connections[guest.id]?.transactions[tx2]?.log.entries.count == 1)
        for i in 0..<10 { #expect(admin.write("/local/domain/5/data/x/child-with-a-long-name-\(i)", "").isOK) }
        #expect(guest.end(tx2).error == .EAGAIN)
        // Without the big value the same change commits over the new children.
        let tx3 = guest.start()
        #expect(guest.write("/local/domain/5/data/x", "tiny", tx: tx3).isOK)
        #expect(guest.write("/local/domain/5/data/x", "short", tx: tx3).isOK)
        #expect(admin.write("/local/domain/5/data/x/one-more", "").isOK)
        #expect(guest.end(tx3).isOK)
        #expect(admin.read("/local/domain/5/data/x").text == "short")
    }

    /// A pattern that cannot be folded (reading back each write) is bounded by the `memory`
    /// quota: ENOMEM, as C xenstored answers over its hard memory quota, with the transaction
    /// unchanged and still usable; dom0 is not limited.
    @Test func unfoldableLogsStopAtTheMemoryQuota() throws {
        let quota = Quotas().memory
        let tx = guest.start()
        #expect(guest.read("/local/domain/5/other", tx: tx).text == "0")
        var failedAt: Int? = nil
        var lastWritten = ""
        for i in 0..<200_000 {
            let value = "v\(i)-" + String(repeating: "z", count: 200)
            let write = guest.write("/local/domain/5/data/x", value, tx: tx)
            if write.error == .ENOMEM { failedAt = i; break }
            try #require(write.isOK, "write \(i): \(write)")
            lastWritten = value
            let read = guest.read("/local/domain/5/data/x", tx: tx)
            if read.error == .ENOMEM { failedAt = i; break }
            try #require(read.text == value)
        }
        let stoppedAt = try #require(failedAt)
        #expect(stoppedAt > 1000)
        // The quota counts the nodes the guest owns too (a few hundred bytes each).
        let nodeBytes = server.domains.usage(of: 5, in: .nodes)
        #expect(nodeBytes > 0 && nodeBytes < 4096)
        #expect(guestTransactionBytes + nodeBytes <= quota)
        #expect(guestTransactionBytes + nodeBytes > quota - 4096)
        // A repeated read costs nothing and still answers; anything new is refused.
        #expect(guest.read("/local/domain/5/other", tx: tx).text == "0")
        #expect(guest.write("/local/domain/5/other", String(repeating: "y", count: 1000), tx: tx).error == .ENOMEM)
        #expect(guest.request(.control, args("memreport")).error == .EACCES)
        #expect(admin.request(.control, args("quota", "5")).text.contains("memory transactions: \(guestTransactionBytes)\n"))
        // Another transaction of the same domain is refused too: the quota is per domain.
        let other = guest.start()
        #expect(guest.write("/local/domain/5/other", String(repeating: "y", count: 1000), tx: other).error == .ENOMEM)
        #expect(guest.end(other, commit: false).isOK)
        // The refused requests left the transaction as it was: it commits what was accepted.
        #expect(guest.end(tx).isOK)
        #expect(admin.read("/local/domain/5/data/x").text == lastWritten)
        #expect(admin.read("/local/domain/5/other").text == "0")
        #expect(guestTransactionBytes == 0)
        // dom0 doing the same is not limited.
        let adminTx = admin.start()
        for i in 0..<(stoppedAt + 100) {
            let value = "v\(i)-" + String(repeating: "z", count: 200)
            try #require(admin.write("/local/domain/5/data/x", value, tx: adminTx).isOK)
            try #require(admin.read("/local/domain/5/data/x", tx: adminTx).text == value)
        }
        #expect(admin.end(adminTx).isOK)
    }

    /// Closing a connection or RESET_WATCHES gives its transactions' bytes back.
    @Test func droppedTransactionsReleaseTheirBytes() {
        let tx = guest.start()
        #expect(guest.write("/local/domain/5/data/x", "1", tx: tx).isOK)
        #expect(guestTransactionBytes > 0)
        #expect(guest.request(.resetWatches, []).isOK)
        #expect(guestTransactionBytes == 0)
        let second = TestClient(server, caller: Caller(domid: 5, privileged: false))
        let tx2 = second.start()
        #expect(second.write("/local/domain/5/data/x", "2", tx: tx2).isOK)
        #expect(guestTransactionBytes > 0)
        server.closeConnection(second.id)
        #expect(guestTransactionBytes == 0)
    }
}

@Suite struct ConflictRateLimitTests {
    let server = Server(time: 1_700_000_000)
    let admin: TestClient
    let guest: TestClient
    let bystander: TestClient

    init() {
        admin = TestClient(server)
        guest = TestClient(server, caller: Caller(domid: 5, privileged: false))
        bystander = TestClient(server, caller: Caller(domid: 6, privileged: false))
        for domid: UInt32 in [5, 6] { giveHome(to: domid, by: admin) }
        admin.write("/local/domain/5/state", "0")
        admin.setPerms("/local/domain/5/state", "n5")
    }

    /// A shell's turn for a guest: it is read only when the server wants its input. Returns
    /// whether the guest got to send its write.
    @discardableResult
    func guestTurn(_ client: TestClient, _ path: String, _ value: String) -> Bool {
        guard server.wantsInput(client.id) else { return false }
        #expect(client.write(path, value).isOK)
        return true
    }

    /// Attack (XSA-206 pattern): between every read and commit of dom0's transactions, a guest
    /// rewrites the node they read. dom0's transactions used to fail for ever (18,025 commits in
    /// 8 s fell to 9). Now each commits within 2 attempts: the first conflict is traced to the
    /// guest, which is not read until dom0's retry has committed. The guest keeps going between
    /// dom0's transactions, and a bystander guest is never held.
    @Test func dom0CommitsWithinABoundUnderAttack() {
        var attempts: [Int] = []
        var guestWrites = 0
        var bystanderWrites = 0
        for round in 0..<200 {
            var attempt = 0
            while true {
                attempt += 1
                if attempt > 50 { Issue.record("round \(round): dom0 starved"); return }
                let tx = admin.start()
                _ = admin.read("/local/domain/5/state", tx: tx)
                if guestTurn(guest, "/local/domain/5/state", "g\(round)-\(attempt)") { guestWrites += 1 }
                if guestTurn(bystander, "/local/domain/6/x", "\(round)") { bystanderWrites += 1 }
                #expect(admin.write("/vm/seen", "\(round)", tx: tx).isOK)
                let end = admin.end(tx)
                if end.isOK { break }
                #expect(end.error == .EAGAIN)
            }
            attempts.append(attempt)
        }
        #expect(attempts.max()! <= 2)
        // The guest was slowed, not stopped: it wrote during every round's first attempt.
        #expect(guestWrites == 200)
        #expect(bystanderWrites == attempts.reduce(0, +))
        #expect(server.counters.conflictsBlamed == 200)
        #expect(server.wantsInput(guest.id))  // the last retry committed
    }

    /// The same attack against eight dom0 clients whose transactions overlap (as parallel domain
    /// builds do): every client's retry is covered, not only one protected transaction, so each
    /// transaction commits within 2 attempts (the measured bench point needed up to 17 retries
    /// when only one transaction at a time was protected).
    @Test func everyDom0ClientCommitsWithinABoundUnderAttack() {
        let clients = (0..<8).map { _ in TestClient(server) }
        var attempts = [Int](repeating: 0, count: 8)
        var worst = 0
        var committed = 0
        var guestWrites = 0
        var round = 0
        while committed < 400 && round < 2000 {
            round += 1
            var open: [(Int, UInt32)] = []
            for (index, client) in clients.enumerated() {
                let tx = client.start()
                _ = client.read("/local/domain/5/state", tx: tx)
                open.append((index, tx))
                // The guest writes between the clients' reads and their commits.
                if index == 3, guestTurn(guest, "/local/domain/5/state", "r\(round)") { guestWrites += 1 }
            }
            for (index, tx) in open {
                #expect(clients[index].write("/vm/c\(index)", "\(round)", tx: tx).isOK)
                attempts[index] += 1
                let end = clients[index].end(tx)
                if end.isOK {
                    worst = max(worst, attempts[index])
                    attempts[index] = 0
                    committed += 1
                } else {
                    #expect(end.error == .EAGAIN)
                }
            }
        }
        #expect(committed >= 400)
        #expect(worst <= 2, "worst transaction took \(worst) attempts")
        #expect(guestWrites > 0)
    }

    /// A blame lapses: a dom0 client that gives up after an EAGAIN holds the guest back for at
    /// most `starvationProtectionSeconds`.
    @Test func aBlameExpires() {
        let tx = admin.start()
        _ = admin.read("/local/domain/5/state", tx: tx)
        #expect(guestTurn(guest, "/local/domain/5/state", "x"))
        #expect(admin.end(tx).error == .EAGAIN)
        #expect(!server.wantsInput(guest.id))
        admin.time += Limits.starvationProtectionSeconds + 1
        _ = admin.read("/local/domain/5/state")  // any input tells the server the time
        #expect(server.wantsInput(guest.id))
    }

    /// A guest whose writes do not touch what dom0's transactions read is never held back, and
    /// dom0 losing to another dom0 client blames nobody.
    @Test func onlyCulpritsAreThrottled() {
        let rival = TestClient(server)
        for round in 0..<(Limits.starvationConflicts + 1) {
            let tx = admin.start()
            _ = admin.read("/vm/counter", tx: tx)
            #expect(rival.write("/vm/counter", "\(round)").isOK)
            #expect(guestTurn(guest, "/local/domain/5/state", "\(round)"))
            #expect(admin.write("/vm/counter", "admin", tx: tx).isOK)
            #expect(admin.end(tx).error == .EAGAIN)
        }
        let protected = admin.start()
        _ = admin.read("/vm/counter", tx: protected)
        #expect(server.wantsInput(guest.id))
        #expect(!server.isRateLimited(guest.id))
        #expect(admin.end(protected).isOK)
    }
}
