// A small blocking Xenstore client over a Unix socket, for the CLI and the integration tests.

#if canImport(Glibc)
import Glibc
#endif
import XenstoreWire

/// Failure of a client request: the daemon's wire error, or a broken connection.
public enum ClientError: Error, Equatable, CustomStringConvertible {
    case server(XenstoreError)
    case connection(String)

    public var description: String {
        switch self {
        case .server(let error): return "\(error)"
        case .connection(let text): return text
        }
    }
}

/// The socket path libxenstore would use: `XENSTORED_PATH`, else `$XENSTORED_RUNDIR/socket`,
/// else `/var/run/xenstored/socket`.
public func defaultSocketPath() -> String {
    if let path = getenv("XENSTORED_PATH") { return String(cString: path) }
    if let rundir = getenv("XENSTORED_RUNDIR") { return String(cString: rundir) + "/socket" }
    return "/var/run/xenstored/socket"
}

/// One connection to a Xenstore daemon; requests are sent one at a time, watch events are queued.
public final class XenstoreClient {
    private let fd: Int32
    private var decoder = FrameDecoder()
    private var nextRequest: UInt32 = 1
    /// Watch events received while waiting for replies, oldest first: (path, token).
    public private(set) var events: [([UInt8], [UInt8])] = []

    /// Connects to the socket at `path`.
    ///
    /// The socket is this client's (`fd`, closed by `deinit`) only once connected: a failed
    /// attempt closes it here, once. (Assigning `fd` first made a failed init run `deinit` too,
    /// closing the number a second time — by then, perhaps, another thread's new pipe or socket.)
    public init(path: String) throws(ClientError) {
        let descriptor = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { throw .connection("socket failed") }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else {
            close(descriptor)
            throw .connection("path too long")
        }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (index, byte) in bytes.enumerated() { raw[index] = byte }
            raw[bytes.count] = 0
        }
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard result == 0 else {
            let code = errno
            close(descriptor)
            throw .connection("cannot connect to \(path): \(String(cString: strerror(code)))")
        }
        fd = descriptor
    }

    deinit { close(fd) }

    /// Sends raw bytes (for protocol tests).
    public func sendRaw(_ bytes: [UInt8]) throws(ClientError) {
        var offset = 0
        while offset < bytes.count {
            let written = bytes[offset...].withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
            guard written > 0 else { throw .connection("write failed") }
            offset += written
        }
    }

    /// Reads the next message of any type; nil when the daemon closed the connection.
    public func receive() throws(ClientError) -> Message? {
        var buffer = [UInt8](repeating: 0, count: 4096 + 16)
        while true {
            let count = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, decoder.bytesWanted) }
            if count == 0 { return nil }
            guard count > 0 else {
                if errno == EINTR { continue }
                if errno == ECONNRESET { return nil }
                throw .connection("read failed")
            }
            let messages: [Message]
            do { messages = try decoder.feed(buffer[0..<count]) } catch { throw .connection("bad framing") }
            if let message = messages.first { return message }
        }
    }

    /// Sends a request and waits for its reply, queueing watch events that arrive meanwhile.
    public func request(_ type: MessageType, _ payload: [UInt8], transaction: UInt32 = 0) throws(ClientError) -> [UInt8] {
        let id = nextRequest
        nextRequest &+= 1
        try sendRaw(Message(type, requestID: id, transactionID: transaction, payload: payload).encoded)
        while true {
            guard let message = try receive() else { throw .connection("connection closed") }
            if message.header.type == MessageType.watchEvent.rawValue {
                let parts = Payload.strings(message.payload).strings
                if parts.count >= 2 { events.append((parts[0], parts[1])) }
                continue
            }
            if message.header.type == MessageType.error.rawValue {
                throw .server(XenstoreError(payload: message.payload) ?? .EIO)
            }
            return message.payload
        }
    }

    /// Waits for the next watch event.
    public func nextEvent() throws(ClientError) -> ([UInt8], [UInt8]) {
        if !events.isEmpty { return events.removeFirst() }
        while true {
            guard let message = try receive() else { throw .connection("connection closed") }
            if message.header.type == MessageType.watchEvent.rawValue {
                let parts = Payload.strings(message.payload).strings
                if parts.count >= 2 { return (parts[0], parts[1]) }
            }
        }
    }

    /// READ: the value of `path`.
    public func read(_ path: String) throws(ClientError) -> [UInt8] {
        try request(.read, Array(path.utf8) + [0])
    }

    /// WRITE `path` = `value`.
    public func write(_ path: String, _ value: [UInt8]) throws(ClientError) {
        _ = try request(.write, Array(path.utf8) + [0] + value)
    }

    /// DIRECTORY: child names of `path`.
    public func list(_ path: String) throws(ClientError) -> [String] {
        Payload.strings(try request(.directory, Array(path.utf8) + [0])).strings.map { String(decoding: $0, as: UTF8.self) }
    }

    /// RM `path` and its subtree.
    public func remove(_ path: String) throws(ClientError) {
        _ = try request(.rm, Array(path.utf8) + [0])
    }

    /// WATCH `path` with `token`.
    public func watch(_ path: String, token: String) throws(ClientError) {
        _ = try request(.watch, Payload.join([Array(path.utf8), Array(token.utf8)]))
    }

    /// CONTROL with a command and arguments; returns the reply text.
    public func control(_ arguments: [String]) throws(ClientError) -> String {
        var reply = try request(.control, Payload.join(arguments.map { Array($0.utf8) }))
        if reply.last == 0 { reply.removeLast() }
        return String(decoding: reply, as: UTF8.self)
    }
}
