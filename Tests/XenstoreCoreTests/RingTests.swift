// The shared ring transport (XenstoreRing) driven as a guest would: wrap-around, back-pressure, corrupt indexes, reconnection.

import Testing
import XenstoreRing
import XenstoreStore
import XenstoreWire
@testable import XenstoreServer

/// A domain on the other end of an in-memory ring page, speaking through `RingClientEndpoint`.
final class RingGuest {
    let memory = ArrayRingMemory()
    var client: RingClientEndpoint<ArrayRingMemory> { RingClientEndpoint(memory: memory) }
    var unsent: [UInt8] = []
    var received: [UInt8] = []
    var decoder = FrameDecoder()
    var messages: [Message] = []

    /// Queues a request and pushes as much as fits.
    func send(_ type: MessageType, _ payload: [UInt8], requestID: UInt32 = 7, tx: UInt32 = 0) {
        unsent += Message(type, requestID: requestID, transactionID: tx, payload: payload).encoded
        push()
    }

    func push() {
        let written = client.writeRequests(unsent[...])
        unsent.removeFirst(written)
    }

    /// Reads the reply ring and decodes complete messages.
    func pull() {
        var bytes: [UInt8] = []
        _ = client.readResponses(appendingTo: &bytes)
        received += bytes
        do { try decoder.feed(bytes, into: &messages) } catch { Issue.record("bad reply framing: \(error)") }
    }

    func setIndexes(requestConsumer: UInt32, requestProducer: UInt32, responseConsumer: UInt32, responseProducer: UInt32) {
        memory.store32(requestConsumer, at: RingLayout.requestConsumer)
        memory.store32(requestProducer, at: RingLayout.requestProducer)
        memory.store32(responseConsumer, at: RingLayout.responseConsumer)
        memory.store32(responseProducer, at: RingLayout.responseProducer)
    }
}

/// Serves until neither side makes progress (bounded).
@discardableResult
func pump(_ link: RingLink<ArrayRingMemory>, _ guest: RingGuest, _ server: Server, turns: Int = 100) -> [RingActivity] {
    var log: [RingActivity] = []
    for _ in 0..<turns {
        let activity = link.serve(server, time: 1_700_000_000)
        log.append(activity)
        guest.pull()
        guest.push()
        if !activity.shouldNotify && !link.hasPendingWork(server) && guest.unsent.isEmpty { break }
    }
    return log
}

@Suite struct RingTests {
    @Test func advertisesReconnectionAndErrorFeatures() {
        let server = Server(time: 1)
        let guest = RingGuest()
        _ = RingLink(server: server, memory: guest.memory, caller: Caller(domid: 5, privileged: false))
        #expect(guest.client.serverFeatures == RingLayout.featureReconnection | RingLayout.featureError)
        #expect(guest.client.isConnected)
    }

    @Test func requestAndReplyThroughTheRing() {
        let server = Server(time: 1)
        let guest = RingGuest()
        let link = RingLink(server: server, memory: guest.memory, caller: .dom0)
        guest.send(.write, args("/vm/a") + b("hello"))
        let first = link.serve(server, time: 1)
        #expect(first.consumedRequests && first.wroteReplies && first.shouldNotify)
        guest.pull()
        guest.send(.read, args("/vm/a"), requestID: 8)
        pump(link, guest, server)
        #expect(guest.messages.count == 2)
        #expect(guest.messages[0].payload == Payload.ok && guest.messages[0].header.requestID == 7)
        #expect(guest.messages[1].payload == b("hello") && guest.messages[1].header.requestID == 8)
        // every byte was consumed, and nothing more is pending
        #expect((try? link.endpoint.pendingRequestBytes()) == 0)
        #expect(!link.hasPendingWork(server))
    }

    @Test func inputAloneWritesNoReplyUntilOutputIsFlushed() {
        // the dom0 daemon's group commit: requests are read, commits made durable, then replies go out
        let server = Server(time: 1)
        let guest = RingGuest()
        let link = RingLink(server: server, memory: guest.memory, caller: .dom0)
        guest.send(.write, args("/vm/a") + b("hello"))
        var activity = link.serveInput(server, time: 1)
        #expect(activity.consumedRequests && !activity.wroteReplies)
        #expect(guest.memory.load32(at: RingLayout.responseProducer) == 0)
        #expect(server.hasOutput(link.connection))
        activity.merge(link.flushOutput(server))
        #expect(activity.wroteReplies && activity.shouldNotify)
        guest.pull()
        #expect(guest.messages.count == 1 && guest.messages[0].payload == Payload.ok)
    }

    @Test func indexesWrapAroundTheRingAndTheCounter() {
        let server = Server(time: 1)
        let guest = RingGuest()
        // both rings start 10 bytes before the 32-bit counter wraps and 10 bytes before the ring end
        let start = UInt32.max - 9
        guest.setIndexes(requestConsumer: start, requestProducer: start, responseConsumer: start, responseProducer: start)
        let link = RingLink(server: server, memory: guest.memory, caller: .dom0)
        let value = [UInt8](repeating: 0x61, count: 900)
        guest.send(.write, args("/wrap") + value)
        pump(link, guest, server)
        guest.send(.read, args("/wrap"), requestID: 9)
        pump(link, guest, server)
        #expect(guest.messages.count == 2)
        #expect(guest.messages.last?.payload == value)
        #expect(guest.memory.load32(at: RingLayout.requestConsumer) == start &+ UInt32(16 + 6 + 900 + 16 + 6))
    }

    @Test func maximalRequestLargerThanTheRingArrivesInPieces() {
        let server = Server(time: 1)
        let guest = RingGuest()
        let link = RingLink(server: server, memory: guest.memory, caller: .dom0)
        let value = [UInt8](repeating: 0x62, count: Limits.payloadMax - 3)  // "/x\0" + value = 4096 bytes
        guest.send(.write, args("/x") + value)
        #expect(guest.unsent.count == 16 + 4096 - RingLayout.ringSize)  // only one ring-full went in
        pump(link, guest, server)
        #expect(guest.unsent.isEmpty)
        #expect(guest.messages.first?.payload == Payload.ok)
        #expect(Tree.lookup(server.history.head.root, comps("/x"))?.value == value)
    }

    @Test func repliesWaitForRoomWhenTheGuestDoesNotRead() {
        let server = Server(time: 1)
        let guest = RingGuest()
        let link = RingLink(server: server, memory: guest.memory, caller: .dom0)
        let value = [UInt8](repeating: 0x63, count: 700)
        guest.send(.write, args("/big") + value)
        _ = link.serve(server, time: 1)
        guest.pull()
        // two reads whose replies (2 × 716 bytes) exceed the reply ring; the guest does not read yet
        guest.send(.read, args("/big"), requestID: 20)
        guest.send(.read, args("/big"), requestID: 21)
        _ = link.serve(server, time: 1)
        #expect(server.hasOutput(link.connection))
        let used = guest.memory.load32(at: RingLayout.responseProducer) &- guest.memory.load32(at: RingLayout.responseConsumer)
        #expect(used == UInt32(RingLayout.ringSize))
        pump(link, guest, server)
        #expect(guest.messages.map(\.header.requestID) == [7, 20, 21])
        #expect(guest.messages[2].payload == value)
    }

    @Test func corruptRequestIndexesStallTheRingAndSetTheErrorWord() {
        let server = Server(time: 1)
        let guest = RingGuest()
        let link = RingLink(server: server, memory: guest.memory, caller: Caller(domid: 3, privileged: false))
        guest.setIndexes(requestConsumer: 0, requestProducer: 5000, responseConsumer: 0, responseProducer: 0)
        let activity = link.serve(server, time: 1)
        #expect(activity.failure == .requestIndexes(consumer: 0, producer: 5000))
        #expect(link.isStalled)
        #expect(guest.client.error == RingErrorCode.ringIndex.rawValue)
        // the page was not touched beyond the error word: our consumer index stays where it was
        #expect(guest.memory.load32(at: RingLayout.requestConsumer) == 0)
        // a stalled ring is not read again
        #expect(!link.serve(server, time: 1).shouldNotify)
    }

    @Test func corruptResponseIndexesAreCaughtToo() {
        let server = Server(time: 1)
        let guest = RingGuest()
        let link = RingLink(server: server, memory: guest.memory, caller: .dom0)
        guest.setIndexes(requestConsumer: 0, requestProducer: 0, responseConsumer: 0, responseProducer: 0x8000_0000)
        guest.send(.read, args("/local"))
        let activity = link.serve(server, time: 1)
        #expect(activity.failure == .responseIndexes(consumer: 0, producer: 0x8000_0000))
        #expect(guest.memory.load32(at: RingLayout.responseProducer) == 0x8000_0000)  // nothing written
    }

    @Test func reconnectionDropsWatchesAndTransactionsAndRecoversAStalledRing() throws {
        let server = Server(time: 1)
        let guest = RingGuest()
        let link = RingLink(server: server, memory: guest.memory, caller: .dom0)
        guest.send(.watch, args("/w", "tok"))
        guest.send(.transactionStart, args(""), requestID: 8)
        pump(link, guest, server)
        let oldConnection = link.connection
        #expect(server.connections[oldConnection]?.watches.count == 1)
        // break the ring, then ask for a reconnection
        guest.setIndexes(requestConsumer: 0, requestProducer: 9999, responseConsumer: 0, responseProducer: 0)
        _ = link.serve(server, time: 1)
        #expect(link.isStalled)
        guest.client.requestReconnection()
        #expect(link.hasPendingWork(server))
        let activity = link.serve(server, time: 1)
        #expect(activity.reconnected && activity.shouldNotify)
        #expect(guest.client.isConnected && guest.client.error == 0)
        #expect(!link.isStalled && link.connection != oldConnection)
        #expect(server.connections[oldConnection] == nil)
        for offset in [RingLayout.requestConsumer, RingLayout.requestProducer, RingLayout.responseConsumer, RingLayout.responseProducer] {
            #expect(guest.memory.load32(at: offset) == 0)
        }
        // the new connection works and has no watch: writing /w fires nothing
        guest.messages.removeAll()
        guest.decoder = FrameDecoder()
        guest.send(.write, args("/w") + b("1"), requestID: 30)
        pump(link, guest, server)
        #expect(guest.messages.map(\.header.type) == [MessageType.write.rawValue])
    }

    @Test func oversizedPacketGetsTheProtocolErrorWhenTheShellStallsTheRing() {
        let server = Server(time: 1)
        let guest = RingGuest()
        let link = RingLink(server: server, memory: guest.memory, caller: Caller(domid: 4, privileged: false))
        var header: [UInt8] = []
        MessageHeader(type: MessageType.write.rawValue, requestID: 1, transactionID: 0, length: 5000).encode(into: &header)
        guest.unsent = header
        guest.push()
        _ = link.serve(server, time: 1)
        let closing = server.takeEffects().contains(.closeConnection(link.connection))
        #expect(closing)
        link.stall(server, reason: .protocolViolation)
        #expect(guest.client.error == RingErrorCode.protocolViolation.rawValue)
        #expect(link.isStalled)
    }

    @Test func oneTurnTakesABoundedAmountOfInput() {
        let server = Server(time: 1)
        let guest = RingGuest()
        let link = RingLink(server: server, memory: guest.memory, caller: .dom0)
        for index in 0..<200 { guest.unsent += Message(.read, requestID: UInt32(index), payload: args("/local")).encoded }
        guest.push()
        // the server reads ring-fulls while it wants input, but never more than the budget per turn
        var consumedBefore = guest.memory.load32(at: RingLayout.requestConsumer)
        for _ in 0..<50 {
            _ = link.serve(server, time: 1)
            let consumed = guest.memory.load32(at: RingLayout.requestConsumer)
            #expect(consumed &- consumedBefore <= UInt32(Limits.ringBytesPerTurn))
            consumedBefore = consumed
            guest.pull()
            guest.push()
        }
        #expect(guest.messages.count == 200)
    }
}

/// Crash and restart of a store serving a ring with deferred release: the saved state and the
/// page together give every request exactly one execution and every reply byte exactly once.
@Suite struct RingRestartTests {
    /// Restarts `server` from `saved` (its history is kept: what was durable) and re-attaches the ring.
    func restart(_ server: Server, _ saved: [UInt8], _ guest: RingGuest) throws -> (Server, RingLink<ArrayRingMemory>) {
        let restarted = Server(history: server.history, time: 1_700_000_500)
        let rings = try ResumableState.restore(saved, into: restarted)
        #expect(rings.count == 1)
        let link = RingLink(server: restarted, memory: guest.memory, caller: .dom0, resuming: rings[0], deferRelease: true)
        return (restarted, link)
    }

    @Test func repliesPartlyWrittenBeforeTheCrashAreNotRepeated() throws {
        let server = Server(time: 1)
        let guest = RingGuest()
        let link = RingLink(server: server, memory: guest.memory, caller: .dom0, deferRelease: true)
        let value = [UInt8](repeating: 0x64, count: 900)
        guest.send(.write, args("/r") + value)
        pump(link, guest, server)
        _ = link.releaseConsumedSpace()
        guest.messages.removeAll()
        // two reads: 2 × 916 reply bytes, more than the reply ring holds
        guest.send(.read, args("/r"), requestID: 40)
        guest.send(.read, args("/r"), requestID: 41)
        _ = link.serveInput(server, time: 1)
        let saved = ResumableState.encode(server: server, rings: [link.state(domid: 0)])  // the round's durable batch
        _ = link.releaseConsumedSpace()
        _ = link.flushOutput(server)      // one ring-full of replies reaches the page, then the store dies
        let (restarted, resumed) = try restart(server, saved, guest)
        // The resumed ring says again how it reaches the store (/tool/xenstored).
        let dom0 = TestClient(restarted, time: 1_700_000_500)
        #expect(dom0.read("/tool/xenstored/connection/\(link.connection.raw)/transport").text == "ring of domain 0")
        restarted.closeConnection(dom0.id)
        pump(resumed, guest, restarted)
        _ = resumed.releaseConsumedSpace()
        #expect(guest.messages.map(\.header.requestID) == [40, 41])
        #expect(guest.messages.allSatisfy { $0.payload == value })
    }

    @Test func requestsReadButNotYetDurableAreReadAgain() throws {
        let server = Server(time: 1)
        let guest = RingGuest()
        let link = RingLink(server: server, memory: guest.memory, caller: .dom0, deferRelease: true)
        let saved = ResumableState.encode(server: server, rings: [link.state(domid: 0)])
        // the store reads a request and half of the next, then dies before its batch is durable
        guest.send(.read, args("/local"), requestID: 50)
        let second = Message(.read, requestID: 51, payload: args("/tool")).encoded
        guest.unsent = Array(second[..<9])
        guest.push()
        let activity = link.serveInput(server, time: 1)
        #expect(activity.readRequests && !activity.consumedRequests)  // read, but its space kept
        #expect(guest.memory.load32(at: RingLayout.requestConsumer) == 0)  // space not handed back
        guest.unsent = Array(second[9...])
        let (restarted, resumed) = try restart(server, saved, guest)
        pump(resumed, guest, restarted)
        #expect(guest.messages.map(\.header.requestID) == [50, 51])
        #expect(resumed.releaseConsumedSpace())
        #expect(guest.memory.load32(at: RingLayout.requestConsumer) == guest.memory.load32(at: RingLayout.requestProducer))
    }

    @Test func aPartialRequestSavedInTheStateIsCompletedAfterRestart() throws {
        let server = Server(time: 1)
        let guest = RingGuest()
        let link = RingLink(server: server, memory: guest.memory, caller: .dom0, deferRelease: true)
        let request = Message(.write, requestID: 60, payload: args("/p") + b("partial")).encoded
        guest.unsent = Array(request[..<12])
        guest.push()
        _ = link.serveInput(server, time: 1)
        let saved = ResumableState.encode(server: server, rings: [link.state(domid: 0)])
        _ = link.releaseConsumedSpace()
        let (restarted, resumed) = try restart(server, saved, guest)
        guest.unsent = Array(request[12...])
        pump(resumed, guest, restarted)
        #expect(guest.messages.map(\.header.requestID) == [60])
        #expect(Tree.lookup(restarted.history.head.root, comps("/p"))?.value == b("partial"))
    }

    @Test func aPageThatContradictsTheSavedPositionsStallsWithTheCommunicationError() throws {
        let server = Server(time: 1)
        let guest = RingGuest()
        let link = RingLink(server: server, memory: guest.memory, caller: .dom0, deferRelease: true)
        let saved = ResumableState.encode(server: server, rings: [link.state(domid: 0)])
        // while the store was down, the reply producer moved by bytes it never queued
        guest.memory.store32(300, at: RingLayout.responseProducer)
        let (_, resumed) = try restart(server, saved, guest)
        #expect(resumed.isStalled)
        #expect(guest.client.error == RingErrorCode.communication.rawValue)
    }
}
