// Host emulation of domain rings: a shared-memory page and two FIFOs per domain stand in for the grant and the event channel.

#if canImport(Glibc)
import Glibc
#endif
import XenstoreRing
import XenstoreServer

/// The files of one emulated domain under the rings directory (`xenstored --ring-dir DIR`):
///
///     DIR/<domid>/page        4096 bytes, struct xenstore_domain_interface, mapped MAP_SHARED
///     DIR/<domid>/to-store    FIFO: the domain writes a byte to notify the store
///     DIR/<domid>/to-domain   FIFO: the store writes a byte to notify the domain
///
/// The domain (a test, or `EmulatedDomain`) creates them, then dom0 introduces the domain with
/// INTRODUCE; the store maps them when the server asks (`.connectDomain`). Everything the ring
/// transport does is the core's `RingLink`, as in the stub domain.
public enum EmulatedRingFiles {
    /// The directory of one domain.
    public static func directory(_ root: String, domid: UInt32) -> String { root + "/\(domid)" }
    /// The page file.
    public static func page(_ root: String, domid: UInt32) -> String { directory(root, domid: domid) + "/page" }
    /// The domain-to-store notification FIFO.
    public static func toStore(_ root: String, domid: UInt32) -> String { directory(root, domid: domid) + "/to-store" }
    /// The store-to-domain notification FIFO.
    public static func toDomain(_ root: String, domid: UInt32) -> String { directory(root, domid: domid) + "/to-domain" }

    /// Maps a page file read-write and shared; nil if it is missing or not a page.
    public static func mapPage(_ path: String) -> UnsafeMutableRawPointer? {
        let fd = open(path, O_RDWR)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0, info.st_size == RingLayout.pageSize else { return nil }
        let address = mmap(nil, RingLayout.pageSize, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)
        guard let address, address != MAP_FAILED else { return nil }
        return address
    }

    /// Opens a FIFO without blocking and without ever seeing end-of-file (O_RDWR).
    public static func openFIFO(_ path: String) -> Int32 {
        open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC)
    }

    /// Writes one notification byte (a full FIFO already holds a pending notification).
    public static func notify(_ fd: Int32) {
        var byte: UInt8 = 1
        _ = write(fd, &byte, 1)
    }

    /// Reads and discards every pending notification byte.
    public static func drain(_ fd: Int32) {
        var buffer = [UInt8](repeating: 0, count: 256)
        while buffer.withUnsafeMutableBytes({ read(fd, $0.baseAddress, $0.count) }) > 0 {}
    }
}

/// One emulated domain's ring as the store serves it.
final class EmulatedRing {
    let domid: UInt32
    let page: UnsafeMutableRawPointer
    let toStore: Int32
    let toDomain: Int32
    let link: RingLink<SharedRingPage>

    init(domid: UInt32, page: UnsafeMutableRawPointer, toStore: Int32, toDomain: Int32, link: RingLink<SharedRingPage>) {
        self.domid = domid
        self.page = page
        self.toStore = toStore
        self.toDomain = toDomain
        self.link = link
    }

    func close(_ server: Server) {
        link.close(server)
        munmap(page, RingLayout.pageSize)
        Glibc.close(toStore)
        Glibc.close(toDomain)
    }
}

/// The emulated rings a daemon serves, keyed by domain id.
public final class EmulatedRings {
    /// The rings directory.
    public let root: String
    var rings: [UInt32: EmulatedRing] = [:]

    /// Serves rings found under `root`.
    public init(root: String) { self.root = root }

    /// Domains with a ring, in order.
    var domids: [UInt32] { rings.keys.sorted() }

    /// Maps domain `domid`'s files and connects its ring to `server` (a new connection, or the
    /// saved one when `resuming`). Returns a message on failure.
    func attach(domid: UInt32, server: Server, resuming state: RingLinkState? = nil) -> String? {
        guard rings[domid] == nil else { return nil }
        guard let page = EmulatedRingFiles.mapPage(EmulatedRingFiles.page(root, domid: domid)) else {
            return "domain \(domid): no ring page at \(EmulatedRingFiles.page(root, domid: domid))"
        }
        let toStore = EmulatedRingFiles.openFIFO(EmulatedRingFiles.toStore(root, domid: domid))
        let toDomain = EmulatedRingFiles.openFIFO(EmulatedRingFiles.toDomain(root, domid: domid))
        guard toStore >= 0, toDomain >= 0 else {
            munmap(page, RingLayout.pageSize)
            if toStore >= 0 { close(toStore) }
            if toDomain >= 0 { close(toDomain) }
            return "domain \(domid): missing notification FIFOs in \(EmulatedRingFiles.directory(root, domid: domid))"
        }
        let caller = Caller(domid: domid, privileged: false)
        let memory = SharedRingPage(base: page)
        let link: RingLink<SharedRingPage>
        if let state {
            link = RingLink(server: server, memory: memory, caller: caller, resuming: state, deferRelease: true)
        } else {
            link = RingLink(server: server, memory: memory, caller: caller, deferRelease: true)
        }
        rings[domid] = EmulatedRing(domid: domid, page: page, toStore: toStore, toDomain: toDomain, link: link)
        // wake the domain: after a restart, replies and request space may have changed while the store was away
        EmulatedRingFiles.notify(toDomain)
        return nil
    }

    /// Unmaps a released or dead domain's ring and closes its connection.
    func detach(domid: UInt32, server: Server) {
        rings.removeValue(forKey: domid)?.close(server)
    }

    /// The ring whose server connection is `id`.
    func ring(of id: ConnectionID) -> EmulatedRing? {
        rings.values.first { $0.link.connection == id }
    }

    /// Every ring's saved position, for the durable state.
    func states() -> [RingLinkState] {
        domids.map { rings[$0]!.link.state(domid: $0) }
    }
}
