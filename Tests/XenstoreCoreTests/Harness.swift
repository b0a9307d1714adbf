// Test support: a framing client for the sans-IO Server, byte/string helpers, a deterministic PRNG and tree dumps.

import Testing
import XenstoreStore
import XenstoreWire
@testable import XenstoreServer

/// UTF-8 bytes of a string.
func b(_ text: String) -> [UInt8] { Array(text.utf8) }

/// A string from bytes (tests only use ASCII).
func s(_ bytes: [UInt8]) -> String { String(decoding: bytes, as: UTF8.self) }

/// NUL-terminated arguments joined: `args("a", "b") == "a\0b\0"`.
func args(_ parts: String...) -> [UInt8] { Payload.join(parts.map { b($0) }) }

/// One decoded reply.
struct Reply: CustomStringConvertible {
    let message: Message

    var type: UInt32 { message.header.type }
    var payload: [UInt8] { message.payload }
    /// The wire error, if the reply is an ERROR message.
    var error: XenstoreError? {
        type == MessageType.error.rawValue ? XenstoreError(payload: payload) : nil
    }
    var isOK: Bool { type != MessageType.error.rawValue && payload == Payload.ok }
    /// The payload as text (NULs kept).
    var text: String { s(payload) }
    /// The NUL-terminated strings of the payload.
    var strings: [String] { Payload.strings(payload).strings.map { s($0) } }

    var description: String {
        if let error { return "ERROR(\(error))" }
        return "type \(type): \(payload.map { $0 == 0 ? "|" : String(UnicodeScalar($0)) }.joined())"
    }
}

/// A watch event as delivered.
struct Event: Equatable, CustomStringConvertible {
    let path: String
    let token: String
    var description: String { "\(path)@\(token)" }
}

/// A client connection to an in-memory server: frames requests, parses everything the server sends back.
final class TestClient {
    let server: Server
    let id: ConnectionID
    var nextRequest: UInt32 = 100
    var decoder = FrameDecoder()
    /// Every message received, in order (replies and events).
    var received: [Message] = []
    /// Events received and not yet taken.
    var pendingEvents: [Event] = []
    var time: Int64

    init(_ server: Server, caller: Caller = .dom0, time: Int64 = 1_700_000_000) {
        self.server = server
        self.id = server.openConnection(caller: caller)
        self.time = time
    }

    /// A client for a connection that already exists (e.g. restored from a snapshot).
    init(_ server: Server, existing id: ConnectionID, time: Int64 = 1_700_000_000) {
        self.server = server
        self.id = id
        self.time = time
    }

    /// Sends raw bytes and collects whatever the server outputs.
    @discardableResult
    func sendRaw(_ bytes: [UInt8]) -> [Message] {
        server.receive(bytes, on: id, time: time)
        return drain()
    }

    /// Collects pending output.
    @discardableResult
    func drain() -> [Message] {
        let out = server.takeOutput(id)
        let messages: [Message]
        do {
            messages = try decoder.feed(out)
        } catch {
            Issue.record("server output cannot be framed: \(error)")
            return []
        }
        for message in messages {
            received.append(message)
            if message.header.type == MessageType.watchEvent.rawValue {
                let parts = Payload.strings(message.payload).strings
                pendingEvents.append(Event(path: parts.count > 0 ? s(parts[0]) : "", token: parts.count > 1 ? s(parts[1]) : ""))
            }
        }
        return messages
    }

    /// Sends one request and returns its reply (events go to `pendingEvents`).
    @discardableResult
    func request(_ type: UInt32, _ payload: [UInt8], tx: UInt32 = 0) -> Reply {
        let requestID = nextRequest
        nextRequest += 1
        let messages = sendRaw(Message(type: type, requestID: requestID, transactionID: tx, payload: payload).encoded)
        let replies = messages.filter { $0.header.type != MessageType.watchEvent.rawValue }
        guard replies.count == 1 else {
            Issue.record("expected exactly one reply to type \(type), got \(replies.count)")
            return Reply(message: Message(.error, requestID: requestID, transactionID: tx, payload: XenstoreError.EIO.payload))
        }
        let reply = replies[0]
        #expect(reply.header.requestID == requestID && reply.header.transactionID == tx, "reply ids not echoed")
        return Reply(message: reply)
    }

    @discardableResult
    func request(_ type: MessageType, _ payload: [UInt8], tx: UInt32 = 0) -> Reply {
        request(type.rawValue, payload, tx: tx)
    }

    // MARK: conveniences

    @discardableResult
    func write(_ path: String, _ value: String, tx: UInt32 = 0) -> Reply {
        request(.write, b(path) + [0] + b(value), tx: tx)
    }
    @discardableResult
    func read(_ path: String, tx: UInt32 = 0) -> Reply { request(.read, args(path), tx: tx) }
    @discardableResult
    func mkdir(_ path: String, tx: UInt32 = 0) -> Reply { request(.mkdir, args(path), tx: tx) }
    @discardableResult
    func rm(_ path: String, tx: UInt32 = 0) -> Reply { request(.rm, args(path), tx: tx) }
    @discardableResult
    func directory(_ path: String, tx: UInt32 = 0) -> Reply { request(.directory, args(path), tx: tx) }
    @discardableResult
    func getPerms(_ path: String, tx: UInt32 = 0) -> Reply { request(.getPerms, args(path), tx: tx) }
    @discardableResult
    func setPerms(_ path: String, _ perms: String..., tx: UInt32 = 0) -> Reply {
        request(.setPerms, Payload.join([b(path)] + perms.map { b($0) }), tx: tx)
    }
    @discardableResult
    func watch(_ path: String, _ token: String) -> Reply { request(.watch, args(path, token)) }
    @discardableResult
    func unwatch(_ path: String, _ token: String) -> Reply { request(.unwatch, args(path, token)) }

    /// TRANSACTION_START; returns the id (traps if it failed).
    func start() -> UInt32 {
        let reply = request(.transactionStart, [0])
        guard reply.error == nil, let first = Payload.strings(reply.payload).strings.first,
              let id = Payload.parseDecimal(first), id > 0, id <= UInt64(UInt32.max) else {
            Issue.record("TRANSACTION_START failed: \(reply)")
            return 0
        }
        return UInt32(id)
    }
    @discardableResult
    func end(_ tx: UInt32, commit: Bool = true) -> Reply {
        request(.transactionEnd, args(commit ? "T" : "F"), tx: tx)
    }

    /// Removes and returns the events received so far.
    func takeEvents() -> [Event] {
        drain()
        let events = pendingEvents
        pendingEvents.removeAll()
        return events
    }
}

/// The whole store of a server as path -> value (values as text).
func dump(_ server: Server) -> [String: String] {
    var result: [String: String] = [:]
    Tree.walk(server.history.head.root) { components, node in
        let path = components.isEmpty ? "/" : "/" + components.map { s($0) }.joined(separator: "/")
        result[path] = s(node.value)
    }
    return result
}

/// A small deterministic PRNG (SplitMix64), so property tests are reproducible.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func below(_ n: Int) -> Int { Int(next() % UInt64(n)) }
}

/// Builds a node quickly for store-level tests.
func node(_ value: String, perms: Permissions = .ownedBy(0), _ children: [(String, Node)] = [],
          gen: GenerationCounter) -> Node {
    let sorted = children.sorted { b($0.0).lexicographicallyPrecedes(b($1.0)) }
    return Node(value: b(value), permissions: perms, children: sorted.map { Child(name: b($0.0), node: $0.1) },
                generation: gen.take())
}

/// Components of an absolute path string.
func comps(_ path: String) -> [[UInt8]] {
    path.split(separator: "/").map { b(String($0)) }
}

/// Gives domain `domid` its home `/local/domain/<domid>`, owned by it (as the toolstack does).
func giveHome(to domid: UInt32, by admin: TestClient) {
    admin.mkdir("/local/domain/\(domid)")
    admin.setPerms("/local/domain/\(domid)", "n\(domid)")
}

/// A dom0 client and a client of unprivileged domain 5 on `server`, domain 5 owning its home.
func adminAndGuest(_ server: Server) -> (admin: TestClient, guest: TestClient) {
    let admin = TestClient(server)
    let guest = TestClient(server, caller: Caller(domid: 5, privileged: false))
    giveHome(to: 5, by: admin)
    return (admin, guest)
}
