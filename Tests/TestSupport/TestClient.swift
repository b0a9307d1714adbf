// Test support shared by every test target: a framing client for the sans-IO Server, byte/string helpers and tree dumps.

import Testing
import XenstoreServer
import XenstoreStore
import XenstoreWire

/// UTF-8 bytes of a string.
public func b(_ text: String) -> [UInt8] { Array(text.utf8) }

/// A string from bytes (tests only use ASCII).
public func s(_ bytes: [UInt8]) -> String { String(decoding: bytes, as: UTF8.self) }

/// NUL-terminated arguments joined: `args("a", "b") == "a\0b\0"`.
public func args(_ parts: String...) -> [UInt8] { Payload.join(parts.map { b($0) }) }

/// One decoded reply.
public struct Reply: CustomStringConvertible {
    public let message: Message
    /// Wraps a decoded message.
    public init(message: Message) { self.message = message }

    public var type: UInt32 { message.header.type }
    public var payload: [UInt8] { message.payload }
    /// The wire error, if the reply is an ERROR message.
    public var error: XenstoreError? {
        type == MessageType.error.rawValue ? XenstoreError(payload: payload) : nil
    }
    public var isOK: Bool { type != MessageType.error.rawValue && payload == Payload.ok }
    /// The payload as text (NULs kept).
    public var text: String { s(payload) }
    /// The NUL-terminated strings of the payload.
    public var strings: [String] { Payload.strings(payload).strings.map { s($0) } }

    public var description: String {
        if let error { return "ERROR(\(error))" }
        return "type \(type): \(payload.map { $0 == 0 ? "|" : String(UnicodeScalar($0)) }.joined())"
    }
}

/// A watch event as delivered.
public struct Event: Equatable, CustomStringConvertible {
    public let path: String
    public let token: String
    /// An event with this path and token.
    public init(path: String, token: String) {
        self.path = path
        self.token = token
    }
    public var description: String { "\(path)@\(token)" }
}

/// A client connection to an in-memory server: frames requests, parses everything the server sends back.
public final class TestClient {
    public let server: Server
    public let id: ConnectionID
    public var nextRequest: UInt32 = 100
    public var decoder = FrameDecoder()
    /// Every message received, in order (replies and events).
    public var received: [Message] = []
    /// Events received and not yet taken.
    public var pendingEvents: [Event] = []
    public var time: Int64

    public init(_ server: Server, caller: Caller = .dom0, time: Int64 = 1_700_000_000) {
        self.server = server
        self.id = server.openConnection(caller: caller)
        self.time = time
    }

    /// A client for a connection that already exists (e.g. restored from a snapshot).
    public init(_ server: Server, existing id: ConnectionID, time: Int64 = 1_700_000_000) {
        self.server = server
        self.id = id
        self.time = time
    }

    /// Sends raw bytes and collects whatever the server outputs.
    @discardableResult
    public func sendRaw(_ bytes: [UInt8]) -> [Message] {
        server.receive(bytes, on: id, time: time)
        return drain()
    }

    /// Collects pending output.
    @discardableResult
    public func drain() -> [Message] {
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
    public func request(_ type: UInt32, _ payload: [UInt8], tx: UInt32 = 0) -> Reply {
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
    public func request(_ type: MessageType, _ payload: [UInt8], tx: UInt32 = 0) -> Reply {
        request(type.rawValue, payload, tx: tx)
    }

    // MARK: conveniences

    @discardableResult
    public func write(_ path: String, _ value: String, tx: UInt32 = 0) -> Reply {
        request(.write, b(path) + [0] + b(value), tx: tx)
    }
    @discardableResult
    public func read(_ path: String, tx: UInt32 = 0) -> Reply { request(.read, args(path), tx: tx) }
    @discardableResult
    public func mkdir(_ path: String, tx: UInt32 = 0) -> Reply { request(.mkdir, args(path), tx: tx) }
    @discardableResult
    public func rm(_ path: String, tx: UInt32 = 0) -> Reply { request(.rm, args(path), tx: tx) }
    @discardableResult
    public func directory(_ path: String, tx: UInt32 = 0) -> Reply { request(.directory, args(path), tx: tx) }
    @discardableResult
    public func getPerms(_ path: String, tx: UInt32 = 0) -> Reply { request(.getPerms, args(path), tx: tx) }
    @discardableResult
    public func setPerms(_ path: String, _ perms: String..., tx: UInt32 = 0) -> Reply {
        request(.setPerms, Payload.join([b(path)] + perms.map { b($0) }), tx: tx)
    }
    @discardableResult
    public func watch(_ path: String, _ token: String) -> Reply { request(.watch, args(path, token)) }
    @discardableResult
    public func unwatch(_ path: String, _ token: String) -> Reply { request(.unwatch, args(path, token)) }

    /// TRANSACTION_START; returns the id (traps if it failed).
    public func start() -> UInt32 {
        let reply = request(.transactionStart, [0])
        guard reply.error == nil, let first = Payload.strings(reply.payload).strings.first,
              let id = Payload.parseDecimal(first), id > 0, id <= UInt64(UInt32.max) else {
            Issue.record("TRANSACTION_START failed: \(reply)")
            return 0
        }
        return UInt32(id)
    }
    @discardableResult
    public func end(_ tx: UInt32, commit: Bool = true) -> Reply {
        request(.transactionEnd, args(commit ? "T" : "F"), tx: tx)
    }

    /// Removes and returns the events received so far.
    public func takeEvents() -> [Event] {
        drain()
        let events = pendingEvents
        pendingEvents.removeAll()
        return events
    }
}

/// The whole store of a server as path -> value (values as text).
public func dump(_ server: Server) -> [String: String] {
    var result: [String: String] = [:]
    Tree.walk(server.history.head.root) { components, node in
        let path = components.isEmpty ? "/" : "/" + components.map { s($0) }.joined(separator: "/")
        result[path] = s(node.value)
    }
    return result
}
