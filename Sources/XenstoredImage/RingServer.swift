// The stub domain's event loop under Xen: serves dom0's ring and every introduced domain's ring.

import XenRuntime
import XenstoreRing
import XenstoreServer
import XenstoreStore
import XenstoreWire

/// A store page mapped from a domain's grant: the `RingMemory` the core's ring transport works on.
/// Index words go through the runtime's volatile accessors; data bytes are plain copies.
struct MappedRingPage: RingMemory {
    let base: UnsafeMutableRawPointer

    func load32(at offset: Int) -> UInt32 { xsring_load32(base, offset) }
    func store32(_ value: UInt32, at offset: Int) { xsring_store32(base, offset, value) }
    func copyBytes(from offset: Int, count: Int, appendingTo bytes: inout [UInt8]) {
        let source = UnsafeRawBufferPointer(start: base + offset, count: count)
        bytes.append(contentsOf: source)
    }
    func storeBytes(_ bytes: ArraySlice<UInt8>, at offset: Int) {
        bytes.withUnsafeBytes { (base + offset).copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
    }
    func readBarrier() { xsring_rmb() }
    func writeBarrier() { xsring_wmb() }
    func fullBarrier() { xsring_mb() }
}

/// One domain's store ring, mapped through its grant reference 1, and the link serving it.
final class DomainRing {
    let domid: UInt16
    let page: UnsafeMutableRawPointer
    let grantHandle: UInt32
    let port: UInt32
    let link: RingLink<MappedRingPage>

    init(domid: UInt16, page: UnsafeMutableRawPointer, grantHandle: UInt32, port: UInt32, link: RingLink<MappedRingPage>) {
        self.domid = domid
        self.page = page
        self.grantHandle = grantHandle
        self.port = port
        self.link = link
    }
}

/// Moves bytes between mapped rings and the sans-IO `Server`, and carries out its effects
/// (INTRODUCE maps a new ring, RELEASE unmaps one). Single-threaded; sleeps in `evtchn_wait`.
public final class RingServer {
    /// The core server state machine.
    public let server: Server
    var rings: [DomainRing] = []
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
        let link = RingLink(server: server, memory: MappedRingPage(base: page), caller: Caller(domid: UInt32(domid), privileged: privileged))
        rings.append(DomainRing(domid: domid, page: page, grantHandle: handle, port: port, link: link))
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
        ring.link.close(server)
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
            // one turn per ring, then effects (which may add or remove rings), then sleep if idle
            for ring in rings {
                let activity = ring.link.serve(server, time: clock_wall_seconds())
                if let failure = activity.failure { reportFailure(failure, domid: ring.domid) }
                if activity.shouldNotify { _ = evtchn_notify(ring.port) }
            }
            apply(server.takeEffects())
            // replies for other rings (watch events) may have been queued after their turn
            var busy = false
            for ring in rings where ring.link.hasPendingWork(server) { busy = true }
            if !busy { _ = evtchn_wait(0) }
        }
        return 0
    }

    func reportFailure(_ failure: RingError, domid: UInt16) {
        switch failure {
        case .requestIndexes:
            report("corrupt request ring indexes, ignoring domain ", UInt64(domid))
        case .responseIndexes:
            report("corrupt reply ring indexes, ignoring domain ", UInt64(domid))
        }
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
                for ring in rings where ring.link.connection == id {
                    ring.link.stall(server, reason: .protocolViolation)
                    _ = evtchn_notify(ring.port)
                }
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
