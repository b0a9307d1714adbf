// The stub domain's event loop under Xen: serves dom0's ring and every introduced domain's ring, or dom0 clients over a vchan we offer.

import XenRuntime
import XenstoreRing
import XenstoreServer
import XenstoreStore
import XenstoreWire

/// How a ring's bytes move.
enum RingTransport {
    /// A Xenstore ring (xs_wire.h) a domain granted us, served by the core's `RingLink`.
    case xenstore
    /// A libxenvchan ring we granted: the client (dom0's vchan-socket-proxy) writes requests, we
    /// write replies; clients come and go, each gets a fresh connection.
    case vchan
}

/// A store page mapped from a domain's grant: the `RingMemory` the core's ring transport works on.
/// Index words go through the runtime's volatile accessors; data bytes are plain copies.
struct MappedRingPage: RingMemory {
    let base: UnsafeMutableRawPointer

    func load32(at offset: Int) -> UInt32 { xsring_load32(base, offset) }
    func store32(_ value: UInt32, at offset: Int) { xsring_store32(base, offset, value) }
    func copyBytes(from offset: Int, count: Int, appendingTo bytes: inout [UInt8]) {
        let outer = roundProfile.enter(.ringIn)
        let source = UnsafeRawBufferPointer(start: base + offset, count: count)
        bytes.append(contentsOf: source)
        roundProfile.enter(outer)
    }
    func storeBytes(_ bytes: ArraySlice<UInt8>, at offset: Int) {
        bytes.withUnsafeBytes { (base + offset).copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
    }
    func readBarrier() { xsring_rmb() }
    func writeBarrier() { xsring_wmb() }
    func fullBarrier() { xsring_mb() }
}

/// One domain's store ring (mapped through its grant reference 1, or a vchan page of ours) and the server connection behind it.
final class DomainRing {
    let domid: UInt16
    let page: UnsafeMutableRawPointer
    let grantHandle: UInt32
    let port: UInt32
    let transport: RingTransport
    /// Xenstore rings: the core's ring transport, which owns the connection.
    let link: RingLink<MappedRingPage>?
    /// vchan rings: the connection of the current client.
    var vchanConnection: ConnectionID
    /// vchan only: set when the ring's indices were corrupt or the server closed the connection.
    var broken = false
    /// vchan only: whether a client was connected at the last look.
    var clientConnected = false

    init(domid: UInt16, page: UnsafeMutableRawPointer, grantHandle: UInt32, port: UInt32, link: RingLink<MappedRingPage>) {
        self.domid = domid
        self.page = page
        self.grantHandle = grantHandle
        self.port = port
        self.transport = .xenstore
        self.link = link
        self.vchanConnection = link.connection
    }

    init(domid: UInt16, vchanPage page: UnsafeMutableRawPointer, port: UInt32, connection: ConnectionID) {
        self.domid = domid
        self.page = page
        self.grantHandle = 0
        self.port = port
        self.transport = .vchan
        self.link = nil
        self.vchanConnection = connection
    }

    /// The server connection serving this ring now.
    var connection: ConnectionID { link?.connection ?? vchanConnection }
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
    /// the new commits durable before that round's replies leave. Returns false when it could
    /// not: the loop then stops at once, with `durabilityFailureCode`, releasing no reply.
    public var afterCommits: (() -> Bool)?
    /// What `run` returns when `afterCommits` failed.
    public var durabilityFailureCode: Int32 = 1
    /// Set when `afterCommits` failed: nothing more is served.
    var durabilityFailed = false
    /// The Xenstore domain's own disk, while its handshake runs on our own store.
    var selfDisk: SelfDiskHandshake?
    /// Called once, after the replies of the round in which the own disk connected: takes on the
    /// history on it.
    var onSelfDiskConnected: (() -> Void)?
    var selfDiskJustConnected = false
    /// Set once restart in place is armed (`armRestart`): every round's connection state is saved here.
    var kept: KeptMemory?
    /// The head the history store holds durably (set with `afterCommits`), saved with each round's state.
    var durableHead: (() -> ObjectID?)?
    /// The state did not fit its kept slot: restart in place is off until it fits again.
    var restartSuspended = false
    /// Set by CONTROL test-crash (`--test-hooks`): crash at the next round with input.
    var testCrash: TestCrashFlag?

    /// Creates a loop around `server`.
    public init(server: Server) {
        self.server = server
    }

    /// Maps `domid`'s store ring (grant reference 1) and binds its event channel `remotePort`, or
    /// takes the ring the runtime kept mapped across a restart (`rt_ring_find`), resuming its saved
    /// position when `state` is given. Request space is handed back only once the round that read
    /// the requests is durable (`releaseConsumedSpace`), so a crash before that reads them again.
    public func attach(domid: UInt16, remotePort: UInt32, privileged: Bool, resuming state: RingLinkState? = nil) -> Bool {
        var handle: UInt32 = 0
        var port: UInt32 = 0
        var page = rt_ring_find(domid, &handle, &port)
        if page == nil {
            guard let mapped = gnttab_map_foreign(domid, GNTTAB_XENSTORE_REF, &handle) else {
                report("cannot map the store ring of domain ", UInt64(domid))
                return false
            }
            let rc = evtchn_bind_interdomain(domid, remotePort, &port)
            guard rc == 0 else {
                _ = gnttab_unmap_foreign(mapped, handle)
                report("cannot bind the event channel of domain ", UInt64(domid))
                return false
            }
            page = mapped
            if rt_ring_keep(domid, mapped, handle, port) != 0 { report("no room to keep the ring across a restart, domain ", UInt64(domid)) }
        }
        guard let page else { return false }
        let memory = MappedRingPage(base: page)
        let caller = Caller(domid: UInt32(domid), privileged: privileged)
        let link: RingLink<MappedRingPage>
        if let state {
            link = RingLink(server: server, memory: memory, caller: caller, resuming: state, deferRelease: true)
        } else {
            link = RingLink(server: server, memory: memory, caller: caller, deferRelease: true)
        }
        rings.append(DomainRing(domid: domid, page: page, grantHandle: handle, port: port, link: link))
        report(state == nil ? "serving the ring of domain " : "resumed the ring of domain ", UInt64(domid))
        return true
    }

    /// Unmaps a ring the runtime kept but the saved state does not know (mapped in the round that
    /// crashed): the INTRODUCE that asked for it is read again and maps it afresh.
    func releaseKeptRing(domid: UInt16) {
        var handle: UInt32 = 0
        var port: UInt32 = 0
        guard let page = rt_ring_find(domid, &handle, &port) else { return }
        rt_ring_forget(domid)
        _ = evtchn_close(port)
        _ = gnttab_unmap_foreign(page, handle)
    }

    /// This round's encoded `resumableState`, once the round's commits were written with it:
    /// the kept slot then saves the same bytes instead of encoding them again. Cleared whenever
    /// the server may have changed since (`apply` starts; the kept slot took it).
    var encodedRoundState: [UInt8]?

    /// The connection state of every store ring and their positions, encoded as the round's
    /// commits are written with it (and kept for `saveRoundState` of the same round).
    func roundStateForCommits() -> [UInt8] {
        let state = resumableState()
        encodedRoundState = state
        return state
    }

    /// The connection state of every store ring and their positions, as a restart resumes them.
    func resumableState() -> [UInt8] {
        var states: [RingLinkState] = []
        for ring in rings { if let link = ring.link { states.append(link.state(domid: UInt32(ring.domid))) } }
        let state = ResumableState.encode(server: server, rings: states)
        roundProfile.countState(bytes: state.count)
        return state
    }

    /// Saves this round's connection state in the kept memory (restart in place armed): after the
    /// round's commits are durable, before its replies leave and its request space is handed back.
    func saveRoundState() {
        guard let kept else { return }
        let outer = roundProfile.enter(.stateEncode)
        let state = encodedRoundState ?? resumableState()
        encodedRoundState = nil
        roundProfile.enter(.stateSave)
        defer { roundProfile.enter(outer) }
        if kept.save(state: state, head: durableHead?()) {
            if restartSuspended {
                restartSuspended = false
                rt_restart_arm(1)
                Console.write("xenstored: the connection state fits its kept slot again: restart in place is on\n")
            }
        } else if !restartSuspended {
            restartSuspended = true
            rt_restart_arm(0)
            Console.write("xenstored: the connection state outgrew its kept slot: restart in place is off until it fits (a crash now ends the domain)\n")
        }
    }

    /// `--trace-rounds`: one console line per ring and round with its indexes (diagnosis only: slow).
    var traceRounds = false

    func traceRingIndexes() {
        for ring in rings {
            guard let link = ring.link else { continue }
            Console.write("trace: domain ")
            Console.write(decimal: UInt64(ring.domid))
            Console.write(":")
            for (label, offset) in [("req_cons ", RingLayout.requestConsumer), (" req_prod ", RingLayout.requestProducer),
                                    (" rsp_cons ", RingLayout.responseConsumer), (" rsp_prod ", RingLayout.responseProducer)] as [(StaticString, Int)] {
                Console.write(label)
                Console.write(decimal: UInt64(xsring_load32(ring.page, offset)))
            }
            Console.write(" cursor ")
            Console.write(decimal: UInt64(link.state(domid: 0).requestCursor))
            Console.write(" queued ")
            Console.write(decimal: UInt64(server.outputByteCount(ring.connection)))
            Console.write(link.isStalled ? " stalled\n" : "\n")
        }
    }

    /// Wakes every ring's domain (after a restart: replies and request space may have changed).
    func notifyAll() {
        for ring in rings { _ = evtchn_notify(ring.port) }
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
        let connection = server.openConnection(caller: Caller(domid: UInt32(domid), privileged: true), transport: Payload.bytes("vchan of domain ") + Payload.decimal(domid))
        rings.append(DomainRing(domid: domid, vchanPage: page, port: port, connection: connection))
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
                server.closeConnection(ring.vchanConnection)
                vchan_reset(ring.page)
                ring.vchanConnection = server.openConnection(caller: Caller(domid: UInt32(ring.domid), privileged: true), transport: Payload.bytes("vchan of domain ") + Payload.decimal(ring.domid))
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
        rt_ring_forget(domid)
        ring.link?.close(server)
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
                if durabilityFailed { return durabilityFailureCode }
            }
            for ring in rings { _ = evtchn_take_pending(ring.port) }
            let diskPort = blkfront_event_port()  // woke us for a disk response (SelfDisk.swift)
            if diskPort != 0 { _ = evtchn_take_pending(diskPort) }
            _ = checkVchanClients()
            // Input of every ring, then effects (commits made durable, rings added or removed),
            // then replies: no reply leaves before the commit it reports is on the disk.
            var notify: [Bool] = []
            var readAny = false
            let crashDue = testCrash?.requested == true  // asked in an earlier round, whose reply has left
            for ring in rings {
                if let link = ring.link {
                    rt_serving(ring.connection.raw)  // a crash now names this connection (restart.c)
                    roundProfile.enter(.requests)
                    let activity = link.serveInput(server, time: clock_wall_seconds())
                    roundProfile.enter(.other)
                    rt_serving(0)
                    if let failure = activity.failure { reportFailure(failure, domid: ring.domid) }
                    readAny = readAny || activity.readRequests
                    notify.append(activity.shouldNotify)
                } else {
                    notify.append(pumpVchan(ring))
                }
            }
            if crashDue && readAny {
                // --test-hooks: the crash comes after this round's requests were read, before any
                // of it is durable: the restart must read them again
                Console.write("xenstored: crashing on purpose (CONTROL test-crash)\n")
                trapOnPurpose([])
            }
            roundProfile.countRound(readRequests: readAny)
            let served = rings.map { $0.port }
            apply(server.takeEffects())
            if durabilityFailed { return durabilityFailureCode }  // this round's replies stay unsent
            if let disk = selfDisk {
                // our own disk's handshake answers what this round wrote (its watches fired in it)
                selfDiskJustConnected = disk.advance()
                if selfDiskJustConnected || disk.phase == .failed { selfDisk = nil }
                apply(server.takeEffects())
                if durabilityFailed { return durabilityFailureCode }
            }
            saveRoundState()
            for (index, ring) in rings.enumerated() {
                var wrote = false
                if let link = ring.link {
                    roundProfile.enter(.ringOut)
                    let activity = link.flushOutput(server)
                    roundProfile.enter(.other)
                    if let failure = activity.failure { reportFailure(failure, domid: ring.domid) }
                    let released = link.releaseConsumedSpace()  // (not short-circuited: every round hands space back)
                    wrote = activity.shouldNotify || released
                } else {
                    wrote = flushVchan(ring)
                }
                let consumed = index < served.count && served[index] == ring.port && notify[index]
                if wrote || consumed {
                    roundProfile.enter(.notify)
                    _ = evtchn_notify(ring.port)
                    roundProfile.enter(.other)
                }
            }
            if selfDiskJustConnected {
                // Only now, with this round's replies gone: blkback starts serving our ring once
                // dom0's write of its Connected state has been answered, and the history is read
                // with requests that wait for it.
                selfDiskJustConnected = false
                onSelfDiskConnected?()
                apply(server.takeEffects())
                if durabilityFailed { return durabilityFailureCode }
            }
            rt_round_completed()
            if traceRounds { traceRingIndexes() }
            var busy = false
            for ring in rings where hasPendingWork(ring) { busy = true }
            if !busy {
                // vchan clients signal only when asked to: ask, then look once more before sleeping
                for ring in rings where ring.transport == .vchan { vchan_rearm(ring.page) }
                let pending = rings.contains { ring in
                    (ring.transport == .vchan && (vchan_client_state(ring.page) == 1) != ring.clientConnected)
                        || hasPendingWork(ring)
                }
                if !pending {
                    roundProfile.enter(.idle)
                    _ = evtchn_wait(0)
                    roundProfile.enter(.other)
                }
            }
        }
        return 0
    }

    /// Whether serving a ring again right away would make progress.
    func hasPendingWork(_ ring: DomainRing) -> Bool {
        if let link = ring.link { return link.hasPendingWork(server) }
        return !ring.broken && vchan_has_input(ring.page) != 0 && server.wantsInput(ring.vchanConnection)
    }

    func reportFailure(_ failure: RingError, domid: UInt16) {
        switch failure {
        case .requestIndexes:
            report("corrupt request ring indexes, ignoring domain ", UInt64(domid))
        case .responseIndexes:
            report("corrupt reply ring indexes, ignoring domain ", UInt64(domid))
        }
    }

    /// vchan: feeds every request byte waiting in the ring to the server; returns whether any was consumed.
    func pumpVchan(_ ring: DomainRing) -> Bool {
        var consumed = false
        while !ring.broken && server.wantsInput(ring.vchanConnection) {
            let count = buffer.withUnsafeMutableBufferPointer { vchan_read(ring.page, $0.baseAddress, $0.count) }
            if count < 0 {
                report("corrupt vchan indices, ignoring domain ", UInt64(ring.domid))
                ring.broken = true
                break
            }
            if count == 0 { break }
            consumed = true
            server.receive(buffer[0..<count], on: ring.vchanConnection, time: clock_wall_seconds())
        }
        return consumed
    }

    /// vchan: writes as much queued output as the ring has room for; returns whether anything was written.
    func flushVchan(_ ring: DomainRing) -> Bool {
        var wrote = false
        while server.hasOutput(ring.vchanConnection) {
            let space = vchan_space(ring.page)
            if space == 0 { break }
            let bytes = server.takeOutput(ring.vchanConnection, maxBytes: space)
            let written = bytes.withUnsafeBufferPointer { vchan_write(ring.page, $0.baseAddress, $0.count) }
            wrote = wrote || written > 0
            if written < bytes.count { break }  // cannot happen: space was checked
        }
        return wrote
    }

    /// Carries out what the server asked for.
    func apply(_ effects: [ServerEffect]) {
        encodedRoundState = nil  // what was served since may have changed the state
        var committed = false
        let outer = roundProfile.enter(.effects)
        defer {
            if committed, let afterCommits, !afterCommits() { durabilityFailed = true }
            roundProfile.enter(outer)
        }
        for effect in effects {
            switch effect {
            case .connectDomain(let domid, _, let eventChannel):
                if domid <= UInt32(UInt16.max) && !rings.contains(where: { $0.domid == UInt16(domid) }) {
                    _ = attach(domid: UInt16(domid), remotePort: eventChannel, privileged: false)
                }
            case .disconnectDomain(let domid):
                if domid <= UInt32(UInt16.max) { detach(domid: UInt16(domid)) }
            case .closeConnection(let id):
                for ring in rings where ring.connection == id {
                    if let link = ring.link {
                        link.stall(server, reason: .protocolViolation)
                        _ = evtchn_notify(ring.port)
                    } else {
                        ring.broken = true
                    }
                }
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
