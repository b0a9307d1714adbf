// The stub domain's restart in place, simulated: rounds as its loop runs them (input, durable batch with state, kept slot, replies, release), a crash at each point, a restart from store + slot.

import Testing
import XenstoreBlock
import XenstoreRing
import XenstoreServer
import XenstoreStore
import XenstoreWire

/// A stub domain's serving loop over one ring and a block store, cut where a crash may fall.
private final class SimulatedStub {
    let store: BlockStore<SimDevice>
    let server: Server
    let link: RingLink<ArrayRingMemory>
    /// The kept slot: the last round's state and the durable head it went with.
    var slot: (state: [UInt8], head: ObjectID?)?

    /// Boots on `device` (a new store, or the one a crashed run left), resuming `slot` if given.
    init(device: SimDevice, memory: ArrayRingMemory, slot: (state: [UInt8], head: ObjectID?)?) throws {
        store = try BlockStore(device: device)
        server = try Server.open(from: store, configuration: ServerConfiguration(), time: 1_800_000_000).server
        let stored = try store.loadState()
        if let state = ResumableState.newest(slot: slot, storeHead: store.headID, storeState: stored) {
            let rings = try ResumableState.restore(state, into: server)
            link = RingLink(server: server, memory: memory, caller: Caller(domid: 0, privileged: true), resuming: rings[0], deferRelease: true)
        } else {
            link = RingLink(server: server, memory: memory, caller: Caller(domid: 0, privileged: true), deferRelease: true)
        }
        self.slot = slot
        saveSlot()
    }

    var state: [UInt8] { ResumableState.encode(server: server, rings: [link.state(domid: 0)]) }

    func saveSlot() { slot = (state, store.headID) }

    /// Where a round stops when it crashes.
    enum CrashPoint { case afterInput, afterStore, afterSlot, never }

    /// One round; returns at `crash` as if the domain had died there.
    func round(crash: CrashPoint) throws {
        _ = link.serveInput(server, time: 1_800_000_001)
        if crash == .afterInput { return }
        let committed = server.takeEffects().contains { if case .committed = $0 { return true } else { return false } }
        if committed { try server.persist(to: store, state: state) }
        if crash == .afterStore { return }
        saveSlot()
        if crash == .afterSlot { return }
        _ = link.flushOutput(server)
        _ = link.releaseConsumedSpace()
    }
}

@Suite struct RestartInPlaceTests {
    /// dom0 writes through the ring, the stub crashes at `point` of that round, restarts on the
    /// same disk and kept slot: the write is there once, its reply arrives exactly once, and a
    /// watch registered before keeps firing.
    @Test(arguments: [0, 1, 2])
    func aCrashAnywhereInARoundLosesNothingAndRepeatsNothing(point: Int) throws {
        let crash: [SimulatedStub.CrashPoint] = [.afterInput, .afterStore, .afterSlot]
        let device = SimDevice(blockSize: 512, blockCount: 2 + 2 * 1024)
        let memory = ArrayRingMemory()
        let dom0 = RingClientEndpoint(memory: memory)
        var decoder = FrameDecoder()
        var replies: [Message] = []
        func send(_ type: MessageType, _ payload: [UInt8], id: UInt32) {
            #expect(dom0.writeRequests(Message(type, requestID: id, payload: payload).encoded[...]) > 0)
        }
        func receive() throws {
            var bytes: [UInt8] = []
            _ = dom0.readResponses(appendingTo: &bytes)
            try decoder.feed(bytes, into: &replies)
        }
        let first = try SimulatedStub(device: device, memory: memory, slot: nil)
        send(.watch, args("/vm", "tok"), id: 1)
        try first.round(crash: .never)
        try receive()
        #expect(replies.map(\.knownType) == [.watch, .watchEvent])  // the reply and the initial event
        replies.removeAll()

        send(.write, args("/vm/counter") + b("41"), id: 2)
        try first.round(crash: crash[point])
        try receive()
        #expect(replies.isEmpty)  // nothing left the stub before it died

        let second = try SimulatedStub(device: device, memory: memory, slot: first.slot)
        try second.round(crash: .never)
        try second.round(crash: .never)
        try receive()
        #expect(replies.filter { $0.knownType == .write }.map(\.header.requestID) == [2])
        #expect(replies.filter { $0.knownType == .watchEvent }.count == 1)
        let node = try #require(second.server.history.head.root.child(b("vm"))?.child(b("counter")))
        #expect(node.value == b("41"))
        // one commit for the write, whether it was made before the crash or after
        #expect(second.server.history.firstParentLog(limit: 10).filter { s($0.message).contains("write /vm/counter") }.count == 1)
    }
}
