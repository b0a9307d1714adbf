// The host shell: Unix sockets and a poll loop around the sans-IO server. All I/O lives here.

#if canImport(Glibc)
import Glibc
#endif
import XenstoreBlock
import XenstoreRing
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
    private let backend: DurableBackend?
    private let rings: EmulatedRings?
    /// The connection state made durable last (nothing is written while it does not change).
    private var savedState: [UInt8]? = nil
    /// When the store's room was last measured while it was short of room (seconds).
    private var lastStorageMeasure: Int64 = 0
    /// Non-socket connections served in the same loop (the Xen rings with `--xen`).
    public var transport: DaemonTransport?

    /// Creates a daemon around `server`. With a `backend` (`--database` or `--block`), every
    /// round's commits, and with `rings` also the connection state of the rings, are made durable
    /// in one batch before that round's replies leave and before request space is handed back
    /// to the domains (the server must report commits). `rings` serves emulated domain rings.
    public init(server: Server, backend: DurableBackend? = nil, rings: EmulatedRings? = nil, verbose: Bool = false) {
        self.server = server
        self.backend = backend
        self.rings = rings
        self.verbose = verbose
    }

    /// After a restart: restores the connection state saved with the newest durable batch and
    /// re-attaches every saved ring (introduced domains, watches, partial packets, undelivered
    /// replies and events come back; open transactions answer EAGAIN). A saved domain whose
    /// ring files are gone is treated as dead. Returns the number of rings resumed.
    public func resumeRings() -> Int {
        guard let backend, let rings else { return 0 }
        let saved: [UInt8]
        do {
            guard let bytes = try backend.loadState() else { return 0 }
            saved = bytes
        } catch {
            logLine("cannot read the saved connection state: \(error); starting without it")
            return 0
        }
        let states: [RingLinkState]
        do {
            states = try ResumableState.restore(saved, into: server)
        } catch {
            logLine("saved connection state is damaged (\(error)); starting without it")
            return 0
        }
        var resumed = 0
        for state in states {
            if let problem = rings.attach(domid: state.domid, server: server, resuming: state) {
                logLine("\(problem); the domain is treated as dead")
                server.closeConnection(state.connection)
                server.domainDied(state.domid, time: currentTime())
            } else {
                resumed += 1
                if verbose { logLine("resumed the ring of domain \(state.domid)") }
            }
        }
        savedState = saved
        handleEffects()
        return resumed
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

    /// Exit status when a round's commits cannot be made durable (disk full beyond the reserve,
    /// I/O error): the daemon stops before any reply of that round leaves.
    public static let durabilityFailureExitCode: Int32 = 3

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
            let ringOrder = rings?.domids ?? []
            var busy = false
            for domid in ringOrder {
                let ring = rings!.rings[domid]!
                fds.append(pollfd(fd: ring.toStore, events: Int16(POLLIN), revents: 0))
                if ring.link.hasPendingWork(server) { busy = true }
            }
            for fd in transport?.pollDescriptors ?? [] { fds.append(pollfd(fd: fd, events: Int16(POLLIN), revents: 0)) }
            if transport?.hasPendingWork(server) == true { busy = true }
            let ready = poll(&fds, nfds_t(fds.count), busy ? 0 : 1000)
            if ready < 0 {
                if errno == EINTR { continue }
                logLine("poll failed: \(String(cString: strerror(errno)))")
                break
            }
            for index in 0..<listeners.count where fds[index].revents & Int16(POLLIN) != 0 {
                accept(on: listeners[index])
            }
            // Read every ready client and ring first, then make the round's commits and connection
            // state durable once (group commit), then hand request space back and write replies:
            // no reply leaves, and no request is forgotten, before the state it belongs to is on disk.
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
            var notify: Set<UInt32> = []
            for (offset, domid) in ringOrder.enumerated() {
                guard let ring = rings?.rings[domid] else { continue }
                let notified = fds[listeners.count + order.count + offset].revents & Int16(POLLIN) != 0
                if notified { EmulatedRingFiles.drain(ring.toStore) }
                guard notified || ring.link.hasPendingWork(server) else { continue }
                let activity = ring.link.serveInput(server, time: currentTime())
                if activity.shouldNotify { notify.insert(domid) }
                if let failure = activity.failure { logRingFailure(domid, failure) }
            }
            transport?.receive(server, time: currentTime())
            handleEffects()
            transport?.transmit(server)
            if let rings {
                for domid in rings.domids {
                    let ring = rings.rings[domid]!
                    if ring.link.releaseConsumedSpace() { notify.insert(domid) }
                    let activity = ring.link.flushOutput(server)
                    if activity.shouldNotify { notify.insert(domid) }
                    if let failure = activity.failure { logRingFailure(domid, failure) }
                }
                for domid in notify { if let ring = rings.rings[domid] { EmulatedRingFiles.notify(ring.toDomain) } }
            }
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
            let id = server.openConnection(caller: entry.listener.caller, transport: Array("socket \(entry.listener.path)".utf8))
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

    private func logRingFailure(_ domid: UInt32, _ failure: RingError) {
        logLine("domain \(domid): \(failure); the ring is ignored until the domain reconnects")
    }

    /// Carries out the server's effects, then makes the round durable (commits, and the rings'
    /// connection state when it changed) in one batch.
    private func handleEffects() {
        var committed = false
        var closing: [ConnectionID] = []
        defer {
            for id in closing {
                if var client = clients[id] { _ = flush(&client, id) }
                drop(id)
            }
        }
        for effect in server.takeEffects() {
            if let transport, transport.handle(effect, server: server, time: currentTime()) { continue }
            switch effect {
            case .closeConnection(let id):
                if let ring = rings?.ring(of: id) {
                    // e.g. an oversized packet: the ring is ignored until the domain reconnects
                    ring.link.stall(server, reason: .protocolViolation)
                    EmulatedRingFiles.notify(ring.toDomain)
                    logLine("domain \(ring.domid): protocol violation; the ring is ignored until the domain reconnects")
                    continue
                }
                // Flushed (error replies) and closed once the round is durable: only this client is affected.
                closing.append(id)
            case .connectDomain(let domid, let gfn, let port):
                if let rings {
                    if let problem = rings.attach(domid: domid, server: server) {
                        logLine("INTRODUCE domain \(domid): \(problem)")
                    } else if verbose {
                        logLine("serving the emulated ring of domain \(domid)")
                    }
                } else {
                    logLine("INTRODUCE domain \(domid) (gfn \(gfn), event channel \(port)): no ring transport (see --ring-dir); the domain is recorded only")
                }
            case .disconnectDomain(let domid):
                rings?.detach(domid: domid, server: server)
                if verbose { logLine("domain \(domid) released") }
            case .committed:
                committed = true
            case .log(let bytes):
                logLine(String(decoding: bytes, as: UTF8.self))
            }
        }
        guard let backend else { return }
        let state = rings.map { ResumableState.encode(server: server, rings: $0.states()) }
        let stateChanged = state != nil && state != savedState
        guard committed || stateChanged else {
            // Short of room, nothing grows and nothing is written: the file system can still
            // gain room from outside, so measure again (at most once a second).
            if server.storageState != .available, currentTime() != lastStorageMeasure {
                lastStorageMeasure = currentTime()
                server.storageState = backend.storageState()
            }
            return
        }
        do {
            try backend.persist(server, state: stateChanged ? state : nil)
            if stateChanged { savedState = state }
            server.storageState = backend.storageState()
        } catch {
            // Nothing of this round has been answered yet: stopping here loses nothing that a
            // client was told is done. A restart resumes from the last durable batch.
            logLine("cannot make this round durable in \(backend.location): \(error); stopping without answering it (exit \(SocketDaemon.durabilityFailureExitCode))")
            exit(SocketDaemon.durabilityFailureExitCode)
        }
    }
}
