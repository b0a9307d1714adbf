// The dom0 daemon's Xen side: dom0's kernel ring (xenfs), guests' rings (grant or foreign mapping), event channels, VIRQ_DOM_EXC.

#if canImport(Glibc)
import Glibc
#endif
import CXen
import XenstoreHost
import XenstoreRing
import XenstoreServer

/// Startup failures of the Xen transport (guest input never raises these).
public enum XenTransportError: Error, CustomStringConvertible {
    /// A Xen library handle or a xenfs file could not be opened.
    case unavailable(String, Int32)

    public var description: String {
        switch self {
        case .unavailable(let what, let code): return "\(what): \(String(cString: strerror(code)))"
        }
    }
}

/// The handles of Xen's user-space libraries that the daemon needs in dom0.
public final class XenHypervisor {
    let events: OpaquePointer
    let grants: OpaquePointer
    let foreign: OpaquePointer?
    let control: OpaquePointer

    /// Opens libxenevtchn (non-blocking, so draining notifications never sleeps), libxengnttab,
    /// libxenforeignmemory (optional: only the fallback mapping needs it) and libxenctrl.
    public init() throws {
        guard let events = xenevtchn_open(nil, 0) else { throw XenTransportError.unavailable("xenevtchn_open", errno) }
        guard let grants = xengnttab_open(nil, 0) else { throw XenTransportError.unavailable("xengnttab_open", errno) }
        guard let control = xc_interface_open(nil, nil, 0) else { throw XenTransportError.unavailable("xc_interface_open", errno) }
        self.events = events
        self.grants = grants
        self.control = control
        self.foreign = xenforeignmemory_open(nil, 0)
        let fd = xenevtchn_fd(events)
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL, 0) | O_NONBLOCK)
    }

    /// The domain's state as Xen reports it now (`XSX_DOMAIN_*`).
    public func domainState(_ domid: UInt32) -> Int32 { xsx_domain_state(control, domid) }

    /// Whether Xen knows the domain (for `ServerConfiguration.domainExists`).
    public func domainExists(_ domid: UInt32) -> Bool { domainState(domid) != Int32(XSX_DOMAIN_GONE) }
}

/// Serves the Xenstore rings of dom0's kernel and of every introduced guest inside the socket
/// daemon's loop, as C xenstored does in dom0: dom0's page comes from `/proc/xen/xsd_kva` and
/// its port from `/proc/xen/xsd_port`; a guest's page is its grant reference 1
/// (GNTTAB_RESERVED_XENSTORE), else the frame named by INTRODUCE mapped as foreign memory; each
/// ring has an interdomain event channel; VIRQ_DOM_EXC reports shut-down and dying domains.
/// The ring protocol itself (index checks, reconnection, the error word) is `RingLink`'s.
public final class XenTransport: DaemonTransport {
    private enum Mapping {
        case kernel      // mmap of /proc/xen/xsd_kva
        case grant       // xengnttab_map_grant_ref
        case foreign     // xenforeignmemory_map
    }

    private final class Ring {
        let domid: UInt32
        let link: RingLink<SharedRingPage>
        let port: UInt32
        let mapping: Mapping
        var activity = RingActivity()
        var reportedStall = false

        init(domid: UInt32, link: RingLink<SharedRingPage>, port: UInt32, mapping: Mapping) {
            self.domid = domid
            self.link = link
            self.port = port
            self.mapping = mapping
        }
    }

    private let xen: XenHypervisor
    private var rings: [Ring] = []
    /// Domains introduced to the server (also those whose ring could not be attached).
    private var introduced: Set<UInt32> = []
    private var exceptionPort: UInt32?
    private let verbose: Bool

    /// Creates the transport; `connectDom0` and `watchDomainExceptions` start it.
    public init(hypervisor: XenHypervisor, verbose: Bool = false) {
        self.xen = hypervisor
        self.verbose = verbose
    }

    /// Attaches dom0's own kernel ring (xenfs must be mounted on /proc/xen) as a privileged connection.
    public func connectDom0(_ server: Server) throws {
        let portText = try Self.readFile("/proc/xen/xsd_port")
        guard let remotePort = UInt32(portText.filter { $0.isNumber }) else {
            throw XenTransportError.unavailable("/proc/xen/xsd_port holds no port", EINVAL)
        }
        let fd = open("/proc/xen/xsd_kva", O_RDWR)
        guard fd >= 0 else { throw XenTransportError.unavailable("open /proc/xen/xsd_kva", errno) }
        let page = mmap(nil, RingLayout.pageSize, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)
        let mapError = errno
        close(fd)
        guard let page, page != UnsafeMutableRawPointer(bitPattern: -1) else {
            throw XenTransportError.unavailable("mmap /proc/xen/xsd_kva", mapError)
        }
        let local = xenevtchn_bind_interdomain(xen.events, 0, remotePort)
        guard local >= 0 else {
            munmap(page, RingLayout.pageSize)
            throw XenTransportError.unavailable("bind dom0's event channel \(remotePort)", errno)
        }
        let link = RingLink(server: server, memory: SharedRingPage(base: page), caller: .dom0)
        rings.append(Ring(domid: 0, link: link, port: UInt32(local), mapping: .kernel))
        _ = xenevtchn_notify(xen.events, UInt32(local))
        logLine("serving dom0's kernel ring (event channel \(remotePort) -> local port \(local))")
    }

    /// Binds VIRQ_DOM_EXC so that guests that shut down or die are noticed.
    public func watchDomainExceptions() throws {
        let port = xenevtchn_bind_virq(xen.events, UInt32(VIRQ_DOM_EXC))
        guard port >= 0 else { throw XenTransportError.unavailable("bind VIRQ_DOM_EXC", errno) }
        exceptionPort = UInt32(port)
    }

    // MARK: DaemonTransport

    public var pollDescriptors: [Int32] { [xenevtchn_fd(xen.events)] }

    public func hasPendingWork(_ server: Server) -> Bool {
        rings.contains { $0.link.hasPendingWork(server) }
    }

    public func receive(_ server: Server, time: Int64) {
        var checkDomains = false
        while true {
            let port = xenevtchn_pending(xen.events)
            if port < 0 { break }  // EAGAIN: nothing more pending
            if UInt32(port) == exceptionPort { checkDomains = true }
            _ = xenevtchn_unmask(xen.events, UInt32(port))
        }
        if checkDomains { self.checkDomains(server, time: time) }
        // Every ring gets one bounded turn per round (RingLink's byte budget), so a guest that
        // floods its ring cannot starve dom0 or the other guests.
        for ring in rings {
            ring.activity = ring.link.serveInput(server, time: time)
            if let failure = ring.activity.failure { reportStall(ring, "corrupt ring indexes (\(failure))") }
        }
    }

    public func handle(_ effect: ServerEffect, server: Server, time: Int64) -> Bool {
        switch effect {
        case .connectDomain(let domid, let gfn, let eventChannel):
            introduced.insert(domid)
            if !rings.contains(where: { $0.domid == domid }) {
                attach(domid: domid, gfn: gfn, remotePort: eventChannel, server: server)
            }
            return true
        case .disconnectDomain(let domid):
            introduced.remove(domid)
            detach(domid: domid, server: server)
            return true
        case .closeConnection(let id):
            guard let ring = rings.first(where: { $0.link.connection == id }) else { return false }
            // The server refused the domain's input (a header announcing an oversized payload):
            // stop reading the ring and say so in its error word; the domain may reconnect.
            ring.link.stall(server, reason: .protocolViolation)
            ring.activity.failure = nil
            reportStall(ring, "protocol violation (oversized packet)")
            _ = xenevtchn_notify(xen.events, ring.port)
            return true
        case .committed, .log:
            return false
        }
    }

    public func transmit(_ server: Server) {
        for ring in rings {
            var activity = ring.activity
            ring.activity = RingActivity()
            activity.merge(ring.link.flushOutput(server))
            if let failure = activity.failure { reportStall(ring, "corrupt ring indexes (\(failure))") }
            if activity.reconnected {
                ring.reportedStall = false
                logLine("domain \(ring.domid) reconnected its ring")
            }
            if activity.shouldNotify { _ = xenevtchn_notify(xen.events, ring.port) }
        }
    }

    // MARK: Domains

    /// After VIRQ_DOM_EXC: a domain that shut down fires @releaseDomain once; one that is dying
    /// or gone is forgotten (the server then asks for its ring to be detached).
    private func checkDomains(_ server: Server, time: Int64) {
        for domid in introduced.sorted() where domid != 0 {
            let state = xen.domainState(domid)
            if state == Int32(XSX_DOMAIN_SHUTDOWN) {
                server.domainShutDown(domid, time: time)
            } else if state == Int32(XSX_DOMAIN_DYING) || state == Int32(XSX_DOMAIN_GONE) {
                if verbose { logLine("domain \(domid) is going away") }
                server.domainDied(domid, time: time)
            }
        }
    }

    private func attach(domid: UInt32, gfn: UInt64, remotePort: UInt32, server: Server) {
        var mapping = Mapping.grant
        var page = xengnttab_map_grant_ref(xen.grants, domid, UInt32(GNTTAB_RESERVED_XENSTORE), PROT_READ | PROT_WRITE)
        if page == nil, let foreign = xen.foreign {
            var frame = xen_pfn_t(gfn)
            var error: Int32 = 0
            page = xenforeignmemory_map(foreign, domid, PROT_READ | PROT_WRITE, 1, &frame, &error)
            if page != nil && error != 0 {
                _ = xenforeignmemory_unmap(foreign, page, 1)
                page = nil
            }
            mapping = .foreign
        }
        guard let page else {
            logLine("domain \(domid): cannot map its store ring (grant 1 or gfn \(gfn)): \(String(cString: strerror(errno)))")
            return
        }
        let local = xenevtchn_bind_interdomain(xen.events, domid, remotePort)
        guard local >= 0 else {
            logLine("domain \(domid): cannot bind its event channel \(remotePort): \(String(cString: strerror(errno)))")
            unmap(page, mapping)
            return
        }
        let link = RingLink(server: server, memory: SharedRingPage(base: page), caller: Caller(domid: domid, privileged: false))
        rings.append(Ring(domid: domid, link: link, port: UInt32(local), mapping: mapping))
        _ = xenevtchn_notify(xen.events, UInt32(local))
        logLine("domain \(domid): serving its ring (\(mapping == .grant ? "grant 1" : "foreign gfn \(gfn)"), event channel \(remotePort))")
    }

    private func detach(domid: UInt32, server: Server) {
        guard domid != 0, let index = rings.firstIndex(where: { $0.domid == domid }) else { return }
        let ring = rings.remove(at: index)
        ring.link.close(server)
        _ = xenevtchn_unbind(xen.events, ring.port)
        unmap(ring.link.endpoint.memory.base, ring.mapping)
        logLine("domain \(domid): released its ring")
    }

    private func unmap(_ page: UnsafeMutableRawPointer, _ mapping: Mapping) {
        switch mapping {
        case .kernel: munmap(page, RingLayout.pageSize)
        case .grant:
            if xengnttab_unmap(xen.grants, page, 1) != 0 { logLine("cannot unmap a ring grant: \(String(cString: strerror(errno)))") }
        case .foreign:
            if let foreign = xen.foreign { _ = xenforeignmemory_unmap(foreign, page, 1) }
        }
    }

    private func reportStall(_ ring: Ring, _ reason: String) {
        guard !ring.reportedStall else { return }
        ring.reportedStall = true
        logLine("domain \(ring.domid): \(reason); its ring is no longer served (dom0 and other domains unaffected)")
    }

    private static func readFile(_ path: String) throws -> String {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { throw XenTransportError.unavailable("open \(path)", errno) }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 64)
        let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        guard count > 0 else { throw XenTransportError.unavailable("read \(path)", errno) }
        return String(decoding: buffer[0..<count], as: UTF8.self)
    }
}
