// The guest side of an emulated domain ring: creates the ring files and speaks the protocol through the page, as Linux xenbus would.

#if canImport(Glibc)
import Glibc
#endif
import XenstoreRing
import XenstoreWire

/// Why an emulated domain could not be set up or did not hear back.
public struct EmulatedDomainError: Error, CustomStringConvertible {
    /// What went wrong.
    public let description: String
}

/// An emulated guest: it owns `DIR/<domid>/page` and the two FIFOs (see `EmulatedRingFiles`),
/// writes requests into the page's request ring, and reads replies and watch events from the
/// reply ring. Used by tests (a domain that outlives a store restart) and for experiments.
public final class EmulatedDomain {
    /// The domain id.
    public let domid: UInt32
    /// The shared page.
    public let page: UnsafeMutableRawPointer
    /// The guest's end of the ring.
    public let client: RingClientEndpoint<SharedRingPage>
    private let toStore: Int32
    private let toDomain: Int32
    private var decoder = FrameDecoder()
    /// Messages received and not yet taken.
    public var inbox: [Message] = []
    private var unsent: [UInt8] = []

    /// Creates (or re-opens) the ring files of `domid` under `root` and maps the page.
    public init(root: String, domid: UInt32) throws {
        self.domid = domid
        let directory = EmulatedRingFiles.directory(root, domid: domid)
        mkdir(root, 0o700)
        mkdir(directory, 0o700)
        for fifo in [EmulatedRingFiles.toStore(root, domid: domid), EmulatedRingFiles.toDomain(root, domid: domid)] {
            if mkfifo(fifo, 0o600) != 0 && errno != EEXIST { throw EmulatedDomainError(description: "mkfifo \(fifo): errno \(errno)") }
        }
        let pagePath = EmulatedRingFiles.page(root, domid: domid)
        let fd = open(pagePath, O_RDWR | O_CREAT, 0o600)
        guard fd >= 0, ftruncate(fd, off_t(RingLayout.pageSize)) == 0 else {
            throw EmulatedDomainError(description: "cannot create \(pagePath)")
        }
        close(fd)
        guard let mapped = EmulatedRingFiles.mapPage(pagePath) else { throw EmulatedDomainError(description: "cannot map \(pagePath)") }
        page = mapped
        client = RingClientEndpoint(memory: SharedRingPage(base: mapped))
        toStore = EmulatedRingFiles.openFIFO(EmulatedRingFiles.toStore(root, domid: domid))
        toDomain = EmulatedRingFiles.openFIFO(EmulatedRingFiles.toDomain(root, domid: domid))
        guard toStore >= 0, toDomain >= 0 else { throw EmulatedDomainError(description: "cannot open the FIFOs of domain \(domid)") }
    }

    deinit {
        munmap(page, RingLayout.pageSize)
        close(toStore)
        close(toDomain)
    }

    /// Queues raw bytes (possibly part of a message) and pushes what fits into the ring.
    public func sendRaw(_ bytes: [UInt8]) {
        unsent += bytes
        pump()
    }

    /// Sends one request.
    public func send(_ type: MessageType, _ payload: [UInt8], requestID: UInt32, transaction: UInt32 = 0) {
        sendRaw(Message(type, requestID: requestID, transactionID: transaction, payload: payload).encoded)
    }

    /// Moves queued request bytes into the ring and reply bytes out of it; notifies the store
    /// when anything moved. Returns whether anything moved.
    @discardableResult
    public func pump() -> Bool {
        var moved = false
        if !unsent.isEmpty {
            let written = client.writeRequests(unsent[...])
            if written > 0 {
                unsent.removeFirst(written)
                moved = true
            }
        }
        var bytes: [UInt8] = []
        if client.readResponses(appendingTo: &bytes) > 0 {
            moved = true
            do { try decoder.feed(bytes, into: &inbox) } catch { inbox.append(Message(.error, payload: Array("bad framing".utf8) + [0])) }
        }
        if moved { EmulatedRingFiles.notify(toStore) }
        return moved
    }

    /// Bytes not yet in the ring.
    public var unsentCount: Int { unsent.count }

    /// Pumps until `done` holds for the inbox or `seconds` pass (waiting on the store's notifications).
    public func wait(seconds: Double, until done: ([Message]) -> Bool) throws {
        let deadline = Double(time(nil)) + seconds
        while !done(inbox) {
            pump()
            if done(inbox) { return }
            if Double(time(nil)) > deadline {
                throw EmulatedDomainError(description: "domain \(domid): timed out; inbox \(inbox.map { $0.header.type })")
            }
            var descriptor = pollfd(fd: toDomain, events: Int16(POLLIN), revents: 0)
            _ = poll(&descriptor, 1, 50)
            EmulatedRingFiles.drain(toDomain)
        }
    }

    /// Sends a request and waits for the reply with its request id (events received meanwhile stay in the inbox).
    public func request(_ type: MessageType, _ payload: [UInt8], requestID: UInt32, transaction: UInt32 = 0,
                        seconds: Double = 10) throws -> Message {
        send(type, payload, requestID: requestID, transaction: transaction)
        try wait(seconds: seconds) { $0.contains { $0.header.requestID == requestID && $0.header.type != MessageType.watchEvent.rawValue } }
        let index = inbox.firstIndex { $0.header.requestID == requestID && $0.header.type != MessageType.watchEvent.rawValue }!
        return inbox.remove(at: index)
    }
}
