// The stub domain's event loop under Xen: serves dom0's ring and every introduced domain's ring, or dom0 clients over a vchan we offer.

import XenRuntime
import XenstoreServer
import XenstoreStore
import XenstoreWire

/// How a ring's bytes move.
enum RingTransport {
    /// A Xenstore ring (xs_wire.h) a domain granted us: it writes requests, we write replies.
    case xenstore
    /// A libxenvchan ring we granted: the client (dom0's vchan-socket-proxy) writes requests, we
    /// write replies; clients come and go, each gets a fresh connection.
    case vchan
}

/// One domain's store ring (mapped through its grant reference 1, or a vchan page of ours) and the server connection behind it.
final class DomainRing {
    let domid: UInt16
    let page: UnsafeMutableRawPointer
    let grantHandle: UInt32
    let port: UInt32
    let transport: RingTransport
    var connection: ConnectionID
    /// Set when the ring's indices were corrupt or the server closed the connection; it is no longer read.
    var broken = false
    /// vchan only: whether a client was connected at the last look.
    var clientConnected = false

    init(domid: UInt16, page: UnsafeMutableRawPointer, grantHandle: UInt32, port: UInt32, connection: ConnectionID,
         transport: RingTransport = .xenstore) {
        self.domid = domid
        self.page = page
        self.grantHandle = grantHandle
        self.port = port
        self.connection = connection
        self.transport = transport
    }

    /// Copies request bytes out of the ring; -1 if its indices are corrupt.
    func read(into buffer: UnsafeMutableBufferPointer<UInt8>) -> Int {
        switch transport {
        case .xenstore: return xsring_read(page, buffer.baseAddress, buffer.count)
        case .vchan: return vchan_read(page, buffer.baseAddress, buffer.count)
        }
    }

    /// Copies reply bytes into the ring; returns how many fitted.
    func write(_ bytes: UnsafeBufferPointer<UInt8>) -> Int {
        switch transport {
        case .xenstore: return xsring_write(page, bytes.baseAddress, bytes.count)
        case .vchan: return vchan_write(page, bytes.baseAddress, bytes.count)
        }
    }

    /// Free reply space in bytes.
    var space: Int {
        switch transport {
        case .xenstore: return xsring_space(page)
        case .vchan: return vchan_space(page)
        }
    }

    /// Whether unread request bytes are waiting.
    var hasInput: Bool {
        switch transport {
        case .xenstore: return xsring_has_input(page) != 0
        case .vchan: return vchan_has_input(page) != 0
        }
    }
}

/// Moves bytes between mapped rings and the sans-IO `Server`, and carries out its effects
/// (INTRODUCE maps a new ring, RELEASE unmaps one). Single-threaded; sleeps in `evtchn_wait`.
public final class RingServer {
    /// The core server state machine.
    public let server: Server
    var rings: [DomainRing] = []
    var buffer = [UInt8](repeating: 0, count: 4096)
    /// Local port of VIRQ_DOM_EXC, once bound.
    var domainExceptionPort: UInt32?
    /// Called once after every round of effects that committed (with `reportCommits` on): makes
    /// the new commits durable before the next requests are read.
    public var afterCommits: (() -> Void)?

    /// Creates a loop around `server`.
    public init(server: Server) {
        self.server = server
    }

    /// Maps `domid`'s store ring (grant reference 1) and binds its event channel `remotePort`.
    public func attach(domid: UInt16, remotePort: UInt32, privileged: Bool) -> Bool {
        var handle: UInt32 = 0
        guard let page = gnttab_map_foreign(domid, GNTTAB_XENSTORE_REF, &handle) else {
            report("cannot map the store ring of domain ", UInt64(domid))
            return false
        }
        var port: UInt32 = 0
        let rc = evtchn_bind_interdomain(domid, remotePort, &port)
        guard rc == 0 else {
            _ = gnttab_unmap_foreign(page, handle)
            report("cannot bind the event channel of domain ", UInt64(domid))
            return false
        }
        let connection = server.openConnection(caller: Caller(domid: UInt32(domid), privileged: privileged))
        rings.append(DomainRing(domid: domid, page: page, grantHandle: handle, port: port, connection: connection))
        report("serving the ring of domain ", UInt64(domid))
        return true
    }

    /// Offers a vchan to `domid` (published under `directory`, relative to our own Xenstore home in
    /// dom0's xenstored) and serves its clients as privileged connections of that domain.
    public func offerVchan(to domid: UInt16, at directory: StaticString) -> Bool {
        var port: UInt32 = 0
        let path = UnsafeRawPointer(directory.utf8Start).assumingMemoryBound(to: CChar.self)  // literals are NUL-terminated
        guard let page = vchan_offer(domid, path, &port) else {
            report("cannot offer a vchan to domain ", UInt64(domid))
            return false
        }
        let connection = server.openConnection(caller: Caller(domid: UInt32(domid), privileged: true))
        rings.append(DomainRing(domid: domid, page: page, grantHandle: 0, port: port, connection: connection, transport: .vchan))
        Console.write("xenstored: vchan offered at ")
        Console.write(directory)
        Console.write(" (event channel ")
        Console.write(decimal: UInt64(port))
        Console.write(")\n")
        return true
    }

    /// vchan rings: a client that has gone loses its connection (watches, transactions) and its
    /// unread bytes; the next client starts afresh. Returns whether anything changed.
    func checkVchanClients() -> Bool {
        var changed = false
        for ring in rings where ring.transport == .vchan {
            let connected = vchan_client_state(ring.page) == 1
            if connected == ring.clientConnected { continue }
            changed = true
            ring.clientConnected = connected
            if connected {
                report("vchan client connected, domain ", UInt64(ring.domid))
            } else {
                server.closeConnection(ring.connection)
                vchan_reset(ring.page)
                ring.connection = server.openConnection(caller: Caller(domid: UInt32(ring.domid), privileged: true))
                ring.broken = false
            }
        }
        return changed
    }

    /// Binds VIRQ_DOM_EXC (init-xenstore-domain made us its handler) so that shut-down and
    /// dying domains are noticed; returns false if Xen refused.
    public func watchDomainExceptions() -> Bool {
        var port: UInt32 = 0
        guard evtchn_bind_virq(RT_VIRQ_DOM_EXC, &port) == 0 else {
            report("cannot bind VIRQ_DOM_EXC; domain deaths go unnoticed, virq ", UInt64(RT_VIRQ_DOM_EXC))
            return false
        }
        domainExceptionPort = port
        return true
    }

    /// After VIRQ_DOM_EXC: a ring domain that has shut down fires @releaseDomain once (the
    /// toolstack then destroys it); one that is dying or gone fires it again and is forgotten,
    /// and the server asks (`.disconnectDomain`) for its ring to go — as C xenstored does.
    func checkDomains() {
        for ring in rings where ring.domid != 0 {
            let state = domain_state(ring.domid)
            if state == Int32(DOMAIN_STATE_SHUTDOWN.rawValue) {
                server.domainShutDown(UInt32(ring.domid), time: clock_wall_seconds())
            } else if state == Int32(DOMAIN_STATE_DYING.rawValue) || state == Int32(DOMAIN_STATE_GONE.rawValue) {
                report("domain went away: ", UInt64(ring.domid))
                server.domainDied(UInt32(ring.domid), time: clock_wall_seconds())
            }
        }
    }

    /// Drops a domain's ring: closes its connection, unbinds its port and unmaps the page.
    func detach(domid: UInt16) {
        guard let index = rings.firstIndex(where: { $0.domid == domid && $0.transport == .xenstore }) else { return }
        let ring = rings.remove(at: index)
        server.closeConnection(ring.connection)
        if evtchn_close(ring.port) != 0 { report("cannot close the event channel of domain ", UInt64(domid)) }
        if gnttab_unmap_foreign(ring.page, ring.grantHandle) != 0 {
            // the domain cannot finish dying while we hold its page: say so loudly
            report("cannot unmap the store ring of domain ", UInt64(domid))
        }
        report("released the ring of domain ", UInt64(domid))
    }

    /// Serves until nothing is left to serve (never, while dom0's ring is attached).
    public func run() -> Int32 {
        while !rings.isEmpty {
            if let port = domainExceptionPort, evtchn_take_pending(port) != 0 {
                checkDomains()
                apply(server.takeEffects())
            }
            for ring in rings { _ = evtchn_take_pending(ring.port) }
            _ = checkVchanClients()
            var consumed: [Bool] = []
            for ring in rings { consumed.append(pump(ring)) }
            var busy = false
            for (index, ring) in rings.enumerated() {
                let wrote = flush(ring)
                if wrote || consumed[index] { _ = evtchn_notify(ring.port) }
                if !ring.broken && (ring.hasInput && server.wantsInput(ring.connection)) { busy = true }
            }
            apply(server.takeEffects())
            if !busy {
                // vchan clients signal only when asked to: ask, then look once more before sleeping
                for ring in rings where ring.transport == .vchan { vchan_rearm(ring.page) }
                let pending = rings.contains { ring in
                    (ring.transport == .vchan && (vchan_client_state(ring.page) == 1) != ring.clientConnected)
                        || (!ring.broken && ring.hasInput && server.wantsInput(ring.connection))
                }
                if !pending { _ = evtchn_wait(0) }
            }
        }
        return 0
    }

    /// Feeds every request byte waiting in a ring to the server; returns whether any was consumed.
    func pump(_ ring: DomainRing) -> Bool {
        var consumed = false
        while !ring.broken && server.wantsInput(ring.connection) {
            let count = buffer.withUnsafeMutableBufferPointer { ring.read(into: $0) }
            if count < 0 {
                report("corrupt ring indices, ignoring domain ", UInt64(ring.domid))
                ring.broken = true
                break
            }
            if count == 0 { break }
            consumed = true
            server.receive(buffer[0..<count], on: ring.connection, time: clock_wall_seconds())
        }
        return consumed
    }

    /// Writes as much queued output as the reply ring has room for; returns whether anything was written.
    func flush(_ ring: DomainRing) -> Bool {
        var wrote = false
        while server.hasOutput(ring.connection) {
            let space = ring.space
            if space == 0 { break }
            let bytes = server.takeOutput(ring.connection, maxBytes: space)
            let written = bytes.withUnsafeBufferPointer { ring.write($0) }
            wrote = wrote || written > 0
            if written < bytes.count { break }  // cannot happen: space was checked
        }
        return wrote
    }

    /// Carries out what the server asked for.
    func apply(_ effects: [ServerEffect]) {
        var committed = false
        defer { if committed { afterCommits?() } }
        for effect in effects {
            switch effect {
            case .connectDomain(let domid, _, let eventChannel):
                if domid <= UInt32(UInt16.max) && !rings.contains(where: { $0.domid == UInt16(domid) }) {
                    _ = attach(domid: UInt16(domid), remotePort: eventChannel, privileged: false)
                }
            case .disconnectDomain(let domid):
                if domid <= UInt32(UInt16.max) { detach(domid: UInt16(domid)) }
            case .closeConnection(let id):
                for ring in rings where ring.connection == id { ring.broken = true }
            case .log(let line):
                Console.write("xenstored: ")
                Console.write(bytes: line)
                Console.write("\n")
            case .committed:
                committed = true
            }
        }
    }

    func report(_ text: StaticString, _ number: UInt64) {
        Console.write("xenstored: ")
        Console.write(text)
        Console.write(decimal: number)
        Console.write("\n")
    }
}
