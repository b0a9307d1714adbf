// The stub domain's event loop under Xen: serves dom0's ring and every introduced domain's ring.

import XenRuntime
import XenstoreServer
import XenstoreStore
import XenstoreWire

/// One domain's store ring, mapped through its grant reference 1, and the server connection behind it.
final class DomainRing {
    let domid: UInt16
    let page: UnsafeMutableRawPointer
    let grantHandle: UInt32
    let port: UInt32
    let connection: ConnectionID
    /// Set when the ring's indices were corrupt or the server closed the connection; it is no longer read.
    var broken = false

    init(domid: UInt16, page: UnsafeMutableRawPointer, grantHandle: UInt32, port: UInt32, connection: ConnectionID) {
        self.domid = domid
        self.page = page
        self.grantHandle = grantHandle
        self.port = port
        self.connection = connection
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
        guard let index = rings.firstIndex(where: { $0.domid == domid }) else { return }
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
            var consumed: [Bool] = []
            for ring in rings { consumed.append(pump(ring)) }
            var busy = false
            for (index, ring) in rings.enumerated() {
                let wrote = flush(ring)
                if wrote || consumed[index] { _ = evtchn_notify(ring.port) }
                if !ring.broken && (xsring_has_input(ring.page) != 0 && server.wantsInput(ring.connection)) { busy = true }
            }
            apply(server.takeEffects())
            if !busy { _ = evtchn_wait(0) }
        }
        return 0
    }

    /// Feeds every request byte waiting in a ring to the server; returns whether any was consumed.
    func pump(_ ring: DomainRing) -> Bool {
        var consumed = false
        while !ring.broken && server.wantsInput(ring.connection) {
            let count = buffer.withUnsafeMutableBufferPointer { xsring_read(ring.page, $0.baseAddress, $0.count) }
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
            let space = xsring_space(ring.page)
            if space == 0 { break }
            let bytes = server.takeOutput(ring.connection, maxBytes: space)
            let written = bytes.withUnsafeBufferPointer { xsring_write(ring.page, $0.baseAddress, $0.count) }
            wrote = wrote || written > 0
            if written < bytes.count { break }  // cannot happen: space was checked
        }
        return wrote
    }

    /// Carries out what the server asked for.
    func apply(_ effects: [ServerEffect]) {
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
                break
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
