// The host shell: Unix sockets and a poll loop around the sans-IO server. All I/O lives here.

#if canImport(Glibc)
import Glibc
#endif
import XenstoreBlock
import XenstoreServer
import XenstoreWire

/// A listening Unix socket and the identity its clients get.
public struct Listener {
    /// Filesystem path of the socket.
    public var path: String
    /// The caller identity of every connection accepted on it.
    public var caller: Caller

    /// Creates a listener description.
    public init(path: String, caller: Caller) {
        self.path = path
        self.caller = caller
    }
}

/// Errors of the host shell (startup only; client errors never reach here).
public enum HostError: Error, CustomStringConvertible {
    case socket(String, Int32)

    public var description: String {
        switch self {
        case .socket(let what, let code): return "\(what): \(String(cString: strerror(code)))"
        }
    }
}

/// Seconds since the epoch, the only clock input the server gets.
func currentTime() -> Int64 { Int64(time(nil)) }

/// Writes a line to standard error.
public func logLine(_ text: String) {
    let line = "xenstored: " + text + "\n"
    _ = line.withCString { fputs($0, stderr) }
}

private var stopRequested: sig_atomic_t = 0

/// Serves the Xenstore protocol on Unix sockets until SIGTERM or SIGINT.
public final class SocketDaemon {
    private struct Client {
        let fd: Int32
        var pending: [UInt8] = []
    }

    private let server: Server
    private var listeners: [(fd: Int32, listener: Listener)] = []
    private var clients: [ConnectionID: Client] = [:]
    private let verbose: Bool
    private let database: GitDatabase?
    private let blockStore: BlockStore<FileBlockDevice>?
    /// Non-socket connections served in the same loop (the Xen rings with `--xen`).
    public var transport: DaemonTransport?

    /// Creates a daemon around `server`; with a `database`, every commit is written to it before
    /// the replies of the requests that made it are sent (the server must report commits).
    /// A `blockStore` (`--block`) is written the same way, one durable batch per round of effects.
    public init(server: Server, database: GitDatabase? = nil, blockStore: BlockStore<FileBlockDevice>? = nil,
                verbose: Bool = false) {
        self.server = server
        self.database = database
        self.blockStore = blockStore
        self.verbose = verbose
    }

    /// Creates, binds and listens on a Unix socket (replacing a stale socket file).
    public func listen(_ listener: Listener) throws {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw HostError.socket("socket", errno) }
        unlink(listener.path)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let pathBytes = Array(listener.path.utf8)
        guard pathBytes.count < MemoryLayout.size(ofValue: address.sun_path) else {
            close(fd)
            throw HostError.socket("socket path too long: \(listener.path)", ENAMETOOLONG)
        }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (index, byte) in pathBytes.enumerated() { raw[index] = byte }
            raw[pathBytes.count] = 0
        }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        guard bound == 0 else {
            let code = errno
            close(fd)
            throw HostError.socket("bind \(listener.path)", code)
        }
        chmod(listener.path, 0o600)
        guard Glibc.listen(fd, 128) == 0 else { throw HostError.socket("listen", errno) }
        setNonBlocking(fd)
        listeners.append((fd, listener))
    }

    private func setNonBlocking(_ fd: Int32) {
        let flags = fcntl(fd, F_GETFL, 0)
        _ = fcntl(fd, F_SETFL, flags | O_NONBLOCK)
    }

    /// Runs the poll loop until a stop signal arrives.
    public func run() {
        signal(SIGPIPE, SIG_IGN)
        signal(SIGTERM) { _ in stopRequested = 1 }
        signal(SIGINT) { _ in stopRequested = 1 }
        var buffer = [UInt8](repeating: 0, count: 65536)
        while stopRequested == 0 {
            var fds: [pollfd] = listeners.map { pollfd(fd: $0.fd, events: Int16(POLLIN), revents: 0) }
            let order = clients.keys.sorted()
            for id in order {
                var events: Int16 = 0
                if server.wantsInput(id) { events |= Int16(POLLIN) }
                if !clients[id]!.pending.isEmpty || server.hasOutput(id) { events |= Int16(POLLOUT) }
                fds.append(pollfd(fd: clients[id]!.fd, events: events, revents: 0))
            }
            for fd in transport?.pollDescriptors ?? [] { fds.append(pollfd(fd: fd, events: Int16(POLLIN), revents: 0)) }
            let ready = poll(&fds, nfds_t(fds.count), transport?.hasPendingWork(server) == true ? 0 : 1000)
            if ready < 0 {
                if errno == EINTR { continue }
                logLine("poll failed: \(String(cString: strerror(errno)))")
                break
            }
            for index in 0..<listeners.count where fds[index].revents & Int16(POLLIN) != 0 {
                accept(on: listeners[index])
            }
            // Read every ready client first, then make the round's commits durable once (group
            // commit), then write replies: no reply leaves before its commit is on disk.
            for (offset, id) in order.enumerated() {
                let revents = fds[listeners.count + offset].revents
                guard let client = clients[id], revents & Int16(POLLIN | POLLHUP | POLLERR) != 0 else { continue }
                let count = buffer.withUnsafeMutableBytes { read(client.fd, $0.baseAddress, $0.count) }
                if count > 0 {
                    server.receive(buffer[0..<count], on: id, time: currentTime())
                } else if count == 0 || (errno != EAGAIN && errno != EINTR) {
                    drop(id)
                }
            }
            transport?.receive(server, time: currentTime())
            handleEffects()
            transport?.transmit(server)
            for id in clients.keys {
                guard var client = clients[id], !client.pending.isEmpty || server.hasOutput(id) else { continue }
                if flush(&client, id) { clients[id] = client } else { drop(id) }
            }
        }
        for (fd, listener) in listeners {
            close(fd)
            unlink(listener.path)
        }
    }

    private func accept(on entry: (fd: Int32, listener: Listener)) {
        while true {
            let fd = Glibc.accept(entry.fd, nil, nil)
            if fd < 0 { return }
            setNonBlocking(fd)
            let id = server.openConnection(caller: entry.listener.caller)
            clients[id] = Client(fd: fd)
            if verbose { logLine("connection \(id.raw) as domain \(entry.listener.caller.domid)") }
        }
    }

    /// Writes as much queued output as the socket takes; false if the peer is gone.
    private func flush(_ client: inout Client, _ id: ConnectionID) -> Bool {
        while true {
            if client.pending.isEmpty {
                client.pending = server.takeOutput(id, maxBytes: 65536)
                if client.pending.isEmpty { return true }
            }
            let written = client.pending.withUnsafeBytes { write(client.fd, $0.baseAddress, $0.count) }
            if written < 0 {
                return errno == EAGAIN || errno == EINTR
            }
            client.pending.removeFirst(written)
            if !client.pending.isEmpty { return true }
        }
    }

    private func drop(_ id: ConnectionID) {
        if let client = clients[id] { close(client.fd) }
        clients[id] = nil
        server.closeConnection(id)
        if verbose { logLine("connection \(id.raw) closed") }
    }

    private func handleEffects() {
        var committed = false
        defer {
            if committed, let database {
                do {
                    try database.persist(head: server.history.head, history: server.history)
                } catch {
                    logLine("cannot write the git database: \(error); history continues in memory only")
                }
            }
            if committed, let blockStore {
                do {
                    try blockStore.persist(head: server.history.head, history: server.history)
                } catch {
                    logLine("cannot write the block store: \(error); history continues in memory only")
                }
            }
        }
        for effect in server.takeEffects() {
            if let transport, transport.handle(effect, server: server, time: currentTime()) { continue }
            switch effect {
            case .closeConnection(let id):
                if let client = clients[id] {
                    // Flush what is queued (error replies), then close: only this client is affected.
                    var copy = client
                    _ = flush(&copy, id)
                }
                drop(id)
            case .connectDomain(let domid, let gfn, let port):
                logLine("INTRODUCE domain \(domid) (gfn \(gfn), event channel \(port)): host mode has no ring transport; the domain is recorded only")
            case .disconnectDomain(let domid):
                if verbose { logLine("domain \(domid) released") }
            case .committed:
                committed = true
            case .log(let bytes):
                logLine(String(decoding: bytes, as: UTF8.self))
            }
        }
    }
}
