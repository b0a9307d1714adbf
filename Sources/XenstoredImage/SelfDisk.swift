// The Xenstore domain's own virtual disk: the blkif frontend handshake run on the store we serve, through a loopback connection of our own domain.

import XenRuntime
import XenstoreServer
import XenstoreWire

/// A client of our own `Server`, as domain `caller`: requests are executed at once (the server is
/// sans-IO), replies and watch events are read back from the connection's output.
final class LoopbackClient {
    let server: Server
    let connection: ConnectionID
    var decoder = FrameDecoder()
    var nextRequest: UInt32 = 1
    /// Watch events received since the last `takeWatchEvents`.
    var watchEvents = 0

    init(server: Server, caller: Caller) {
        self.server = server
        connection = server.openConnection(caller: caller, transport: Payload.bytes("loopback (the disk handshake)"))
    }

    /// Sends one request and returns its reply (nil if the server sent none, which it always does).
    func call(_ type: MessageType, _ payload: [UInt8]) -> Message? {
        let id = nextRequest
        nextRequest &+= 1
        server.receive(Message(type, requestID: id, payload: payload).encoded, on: connection, time: clock_wall_seconds())
        var reply: Message?
        for message in drain() where message.header.requestID == id && message.knownType != .watchEvent {
            reply = message
        }
        return reply
    }

    /// Reads the output waiting on the connection; counts the watch events in it.
    @discardableResult
    func drain() -> [Message] {
        guard server.hasOutput(connection) else { return [] }
        let bytes = server.takeOutput(connection)
        let messages = (try? decoder.feed(bytes)) ?? []
        for message in messages where message.knownType == .watchEvent { watchEvents += 1 }
        return messages
    }

    /// Whether a watch fired since the last call.
    func takeWatchEvents() -> Bool {
        drain()
        defer { watchEvents = 0 }
        return watchEvents > 0
    }

    /// A node's value, or nil (absent, unreadable).
    func read(_ path: [UInt8]) -> [UInt8]? {
        guard let reply = call(.read, path + [0]), reply.knownType == .read else { return nil }
        return reply.payload
    }

    /// A node's value as a decimal number, or nil.
    func readNumber(_ path: [UInt8]) -> UInt64? {
        read(path).flatMap(Payload.parseDecimal)
    }

    /// Writes a node; whether the server accepted it.
    func write(_ path: [UInt8], _ value: [UInt8]) -> Bool {
        call(.write, path + [0] + value)?.knownType == .write
    }

    /// Registers a watch; whether the server accepted it.
    func watch(_ path: [UInt8], token: [UInt8]) -> Bool {
        call(.watch, path + [0] + token + [0])?.knownType == .watch
    }
}

/// Xenbus states (xen/io/xenbus.h) the handshake uses.
enum XenbusState {
    static let initWait: UInt64 = 2
    static let initialised: UInt64 = 3
    static let connected: UInt64 = 4
    static let closing: UInt64 = 5
}

/// The frontend side of our own disk's xenbus handshake, run on our own store: dom0 creates
/// `/local/domain/<self>/device/vbd/<vdev>` and the backend directory (docs/stubdom.md, "A disk
/// for the stub domain"); dom0's blkback reaches InitWait; we grant the ring (`blkfront_prepare`),
/// publish ring-ref, event-channel and protocol, switch to Initialised; blkback connects; we read
/// the geometry (`blkfront_attach`), switch to Connected, and wait for a first read to be
/// answered while serving on. Driven by watches on the two directories and by the disk's event
/// channel: `advance` is called after every round of the event loop.
final class SelfDiskHandshake {
    enum Phase: Equatable {
        /// Waiting for dom0 to create the device and for blkback to reach InitWait.
        case waiting
        /// Published our half; waiting for blkback to connect.
        case initialised
        /// Connected; the first read is out, and the loop keeps serving until it is answered:
        /// blkback starts its ring's thread only after more answers from our store (it reads
        /// its own nodes after switching to Connected), so a read waited for at once would
        /// wait for ever.
        case probing
        /// Requests may start.
        case connected
        /// The backend closed, or a step failed; reported once.
        case failed
    }

    let client: LoopbackClient
    let frontend: [UInt8]
    private(set) var phase = Phase.waiting
    var backend: [UInt8] = []
    var watchingBackend = false
    /// `--test-crash-handshake`: crash once in the round that published our half.
    var crashOnceWhenPublished = false

    /// Starts watching `/local/domain/<domid>/device/vbd/<vdev>` as domain `domid`.
    init(server: Server, domid: UInt16, vdev: UInt32) {
        client = LoopbackClient(server: server, caller: Caller(domid: UInt32(domid), privileged: false))
        frontend = Payload.bytes("/local/domain/") + Payload.decimal(UInt64(domid))
            + Payload.bytes("/device/vbd/") + Payload.decimal(UInt64(vdev))
        _ = client.watch(frontend, token: Payload.bytes("self-disk"))
        Console.write("xenstored: waiting for dom0 to give us a disk at ")
        Console.write(bytes: frontend)
        Console.write("\n")
    }

    /// After a restart in place: a new loopback connection (the old one was not saved), whose
    /// watch fires at once, and the phase the runtime's blkfront reached (it outlives the
    /// restart). Before the ring was granted or with only that done, the handshake starts over:
    /// `blkfront_prepare` gives the same ring-ref and event channel again, and writing our half
    /// again is harmless. Once blkback's geometry was taken, the backend is connected: Connected
    /// is written again if the crashed round's write of it was lost, and the first read started
    /// or waited for (`blkfront_probe_poll` keeps answering 1 once it was answered).
    static func resuming(server: Server, domid: UInt16, vdev: UInt32) -> SelfDiskHandshake {
        let handshake = SelfDiskHandshake(server: server, domid: domid, vdev: vdev)
        let reached = blkfront_phase()
        Console.write("xenstored: our disk's handshake goes on after the restart (blkfront phase ")
        Console.write(decimal: UInt64(reached.rawValue))
        Console.write(")\n")
        guard reached.rawValue >= BLKFRONT_ATTACHED.rawValue else { return handshake }
        let state = handshake.node(handshake.frontend, "state")
        if handshake.client.readNumber(state) != XenbusState.connected,
           !handshake.client.write(state, Payload.decimal(XenbusState.connected)) {
            _ = handshake.fail("switching to Connected again")
            return handshake
        }
        if reached == BLKFRONT_ATTACHED, blkfront_probe_start() != 0 {
            _ = handshake.fail("the first read from the disk")
            return handshake
        }
        handshake.phase = .probing
        return handshake
    }

    func node(_ directory: [UInt8], _ leaf: StaticString) -> [UInt8] {
        directory + [0x2F] + Payload.bytes(leaf)
    }

    /// Takes the handshake as far as the store allows now; returns true once, when the disk has
    /// just connected.
    func advance() -> Bool {
        let fired = client.takeWatchEvents()
        if phase == .probing {
            let outcome = blkfront_probe_poll()
            if outcome < 0 { return fail("the first read from the disk") }
            if outcome == 0 { return false }
            phase = .connected
            return true
        }
        guard fired else { return false }
        switch phase {
        case .waiting:
            guard let path = client.read(node(frontend, "backend")), let backendID = client.readNumber(node(frontend, "backend-id")),
                  backendID <= UInt64(UInt16.max) else { return false }
            backend = path
            if !watchingBackend {
                watchingBackend = client.watch(backend, token: Payload.bytes("self-disk-backend"))
            }
            guard let state = client.readNumber(node(backend, "state")) else { return false }
            if state >= XenbusState.closing { return fail("the backend is closing before the handshake") }
            guard state == XenbusState.initWait || state == XenbusState.connected else { return false }
            var ringRef: UInt32 = 0
            var eventChannel: UInt32 = 0
            let rc = blkfront_prepare(UInt16(backendID), &ringRef, &eventChannel)
            guard rc == 0 else { return fail("granting the ring and allocating the event channel") }
            guard client.write(node(frontend, "ring-ref"), Payload.decimal(UInt64(ringRef))),
                  client.write(node(frontend, "event-channel"), Payload.decimal(UInt64(eventChannel))),
                  client.write(node(frontend, "protocol"), cString(blkfront_protocol())),
                  client.write(node(frontend, "state"), Payload.decimal(XenbusState.initialised)) else {
                return fail("publishing ring-ref, event-channel and protocol")
            }
            phase = .initialised
            TestCrashPoint.handshakePublished.crashIfAsked(crashOnceWhenPublished)
            return false
        case .initialised:
            guard let state = client.readNumber(node(backend, "state")) else { return false }
            if state >= XenbusState.closing { return fail("the backend closed during the handshake") }
            guard state == XenbusState.connected, let sectors = client.readNumber(node(backend, "sectors")) else { return false }
            let sectorSize = client.readNumber(node(backend, "sector-size")) ?? 512
            let flush = client.read(node(backend, "feature-flush-cache")) == [0x31]
            guard blkfront_attach(sectors, UInt32(truncatingIfNeeded: sectorSize), flush ? 1 : 0) == 0,
                  client.write(node(frontend, "state"), Payload.decimal(XenbusState.connected)) else {
                return fail("switching to Connected")
            }
            guard blkfront_probe_start() == 0 else { return fail("the first read from the disk") }
            phase = .probing
            return false
        case .probing, .connected, .failed:
            return false
        }
    }

    func fail(_ what: StaticString) -> Bool {
        Console.write("xenstored: our disk's handshake failed: ")
        Console.write(what)
        Console.write("\n")
        phase = .failed
        return false
    }
}

/// The bytes of a NUL-terminated C string (empty for nil).
func cString(_ pointer: UnsafePointer<CChar>?) -> [UInt8] {
    guard let pointer else { return [] }
    var bytes: [UInt8] = []
    var index = 0
    while pointer[index] != 0 {
        bytes.append(UInt8(bitPattern: pointer[index]))
        index += 1
    }
    return bytes
}
