// libFuzzer target: the xenstore ring transport (RingEndpoint, RingLink) on a page whose indexes and bytes a hostile domain controls.

// Byte 0 picks the program: even = endpoint level, odd = link level (a Server behind a RingLink).
// The page is a `CheckedRingMemory`: every access is checked against the layout (data copies
// only inside the request ring, stores only inside the reply ring, word accesses only at the
// index / feature / connection / error words, and the store never writes a domain-owned index
// except to zero it on reconnection). In "hostile" mode each index load may first overwrite the
// word with a fuzzed value, as a domain racing the store would.
// Endpoint-level invariants: no crash; readRequests returns no more than the limit, the ring
// size, and the bytes between the consumer and producer values it loaded; the bytes it returns
// are the ring's bytes from the consumer; req_cons moves by exactly the count; writeResponses
// writes no more than the free space it saw, at the producer, and advances rsp_prod by the
// count; a loaded producer-consumer distance above the ring size is reported as RingError
// (and only then).
// Link-level invariants: no crash; corrupt request indexes seen by a serving turn stall the
// ring with XENSTORE_ERROR_RING_IDX in the error word; a stalled ring is not read; a
// reconnection zeroes the indexes and sets XENSTORE_CONNECTED; replies the guest reads are
// well-formed frames (while the guest has not corrupted the indexes); ownership accounting holds.

/// Stops the run: libFuzzer records the input that got here as a crash.
func fuzzFail(_ message: String, file: StaticString = #file, line: UInt = #line) -> Never {
    fatalError("fuzz invariant violated: \(message)", file: file, line: line)
}

/// Reads operands from the fuzzer's input; past the end every byte is 0.
final class ByteSource {
    let bytes: [UInt8]
    var index = 0
    init(_ bytes: [UInt8]) { self.bytes = bytes }
    var atEnd: Bool { index >= bytes.count }
    func next() -> UInt8 {
        guard index < bytes.count else { return 0 }
        index += 1
        return bytes[index - 1]
    }
    func word() -> UInt32 {
        UInt32(next()) | UInt32(next()) << 8 | UInt32(next()) << 16 | UInt32(next()) << 24
    }
    func take(_ count: Int) -> [UInt8] {
        let end = min(bytes.count, index + count)
        let out = Array(bytes[index..<end])
        index = end
        return out
    }
}

/// Index values that sit at the edges of the ring arithmetic, relative to a current value.
func edgeValue(_ selector: UInt8, current: UInt32, source: ByteSource) -> UInt32 {
    switch selector % 12 {
    case 0: return 0
    case 1: return current &+ 1
    case 2: return current &- 1
    case 3: return current &+ 1024
    case 4: return current &+ 1025
    case 5: return current &- 1024
    case 6: return 0xFFFF_FFFF
    case 7: return 0x8000_0000
    case 8: return current &+ UInt32(source.next())
    case 9: return current &- UInt32(source.next())
    case 10: return 0xFFFF_FC00
    default: return source.word()
    }
}

/// A ring page in ordinary memory that checks every access the store makes.
final class CheckedRingMemory: RingMemory {
    var bytes = [UInt8](repeating: 0, count: RingLayout.pageSize)
    /// When set, each index load may first be overwritten from this source (a racing domain).
    var hostile: ByteSource? = nil
    /// Values returned by load32, in order, since the last `resetLog`.
    var loads: [(offset: Int, value: UInt32)] = []
    var stores: [(offset: Int, value: UInt32)] = []
    /// Whether the store may zero domain-owned indexes (only during a reconnection).
    var reconnecting = false
    /// Set while the fuzzer plays the domain (RingClientEndpoint): its accesses are not checked.
    var guestActive = false

    static let indexWords = [RingLayout.requestConsumer, RingLayout.requestProducer,
                             RingLayout.responseConsumer, RingLayout.responseProducer]
    static let words = indexWords + [RingLayout.serverFeatures, RingLayout.connection, RingLayout.error]

    func resetLog() {
        loads.removeAll()
        stores.removeAll()
    }

    func raw32(_ offset: Int) -> UInt32 {
        UInt32(bytes[offset]) | UInt32(bytes[offset + 1]) << 8 | UInt32(bytes[offset + 2]) << 16 | UInt32(bytes[offset + 3]) << 24
    }

    func setRaw32(_ value: UInt32, _ offset: Int) {
        for index in 0..<4 { bytes[offset + index] = UInt8(truncatingIfNeeded: value >> (8 * UInt32(index))) }
    }

    func load32(at offset: Int) -> UInt32 {
        if guestActive { return raw32(offset) }
        guard CheckedRingMemory.words.contains(offset) else { fuzzFail("load32 outside the ring's words") }
        if let hostile, CheckedRingMemory.indexWords.contains(offset) {
            let selector = hostile.next()
            if selector & 0x80 != 0 { setRaw32(edgeValue(selector, current: raw32(offset), source: hostile), offset) }
        }
        let value = raw32(offset)
        loads.append((offset, value))
        return value
    }

    func store32(_ value: UInt32, at offset: Int) {
        if guestActive { return setRaw32(value, offset) }
        guard CheckedRingMemory.words.contains(offset) else { fuzzFail("store32 outside the ring's words") }
        if offset == RingLayout.requestProducer || offset == RingLayout.responseConsumer {
            if !(reconnecting && value == 0) { fuzzFail("the store wrote a domain-owned index") }
        }
        stores.append((offset, value))
        setRaw32(value, offset)
    }

    func copyBytes(from offset: Int, count: Int, appendingTo out: inout [UInt8]) {
        if guestActive { return out.append(contentsOf: bytes[offset..<(offset + count)]) }
        guard count > 0, offset >= RingLayout.requestRing, offset + count <= RingLayout.requestRing + RingLayout.ringSize else {
            fuzzFail("copy outside the request ring (or empty)")
        }
        out.append(contentsOf: bytes[offset..<(offset + count)])
    }

    func storeBytes(_ source: ArraySlice<UInt8>, at offset: Int) {
        if guestActive { return bytes.replaceSubrange(offset..<(offset + source.count), with: source) }
        guard !source.isEmpty, offset >= RingLayout.responseRing,
              offset + source.count <= RingLayout.responseRing + RingLayout.ringSize else {
            fuzzFail("store outside the reply ring (or empty): offset \(offset), count \(source.count)")
        }
        bytes.replaceSubrange(offset..<(offset + source.count), with: source)
    }

    func readBarrier() {}
    func writeBarrier() {}
    func fullBarrier() {}

    /// The last value loaded from `offset` in the log, or the first with `first`.
    func loaded(_ offset: Int, first: Bool = false) -> UInt32? {
        let matching = loads.filter { $0.offset == offset }
        return first ? matching.first?.value : matching.last?.value
    }

    /// Ring bytes from free-running index `start`.
    func ringBytes(_ base: Int, from start: UInt32, count: Int) -> [UInt8] {
        var out: [UInt8] = []
        for i in 0..<count { out.append(bytes[base + RingLayout.mask(start &+ UInt32(i))]) }
        return out
    }
}

let ringSize = UInt32(RingLayout.ringSize)

// MARK: - Endpoint level

func endpointProgram(_ source: ByteSource) {
    let memory = CheckedRingMemory()
    let endpoint = RingEndpoint(memory: memory)
    var hostile = false
    while !source.atEnd {
        memory.hostile = hostile ? source : nil
        memory.resetLog()
        switch source.next() % 7 {
        case 0:  // the domain fills ring data
            let offset = Int(source.next()) * 8
            let data = source.take(Int(source.next()))
            for (i, byte) in data.enumerated() where offset + i < RingLayout.requestConsumer {
                memory.bytes[offset + i] = byte
            }
        case 1:  // the domain sets an index (any of the four) to an edge value
            let offset = CheckedRingMemory.indexWords[Int(source.next()) % 4]
            memory.setRaw32(edgeValue(source.next(), current: memory.raw32(offset), source: source), offset)
        case 2:
            let limit = Int(source.next()) * 8 - 8
            var out: [UInt8] = [7]
            let result: Result<Int, RingError>
            do { result = .success(try endpoint.readRequests(upTo: limit, appendingTo: &out)) } catch { result = .failure(error) }
            checkRead(memory, limit: limit, out: out, result: result, cursorGiven: nil)
        case 3:
            let delta = UInt32(source.next())
            let cursor = memory.raw32(RingLayout.requestConsumer) &+ delta
            memory.resetLog()
            let limit = Int(source.next()) * 8 - 8
            var out: [UInt8] = [7]
            let result: Result<Int, RingError>
            do {
                let end = try endpoint.readRequests(from: cursor, upTo: limit, appendingTo: &out)
                result = .success(Int(end &- cursor))
            } catch { result = .failure(error) }
            checkRead(memory, limit: limit, out: out, result: result, cursorGiven: cursor)
        case 4:
            let data = source.take(Int(source.next()) * 8)
            let result: Result<Int, RingError>
            do { result = .success(try endpoint.writeResponses(data[...])) } catch { result = .failure(error) }
            checkWrite(memory, data: data, result: result)
        case 5:
            do {
                let pending = try endpoint.pendingRequestBytes()
                if pending < 0 || pending > RingLayout.ringSize { fuzzFail("pending request bytes out of range") }
            } catch {
                guard let c = memory.loaded(RingLayout.requestConsumer), let p = memory.loaded(RingLayout.requestProducer),
                      p &- c > ringSize else { fuzzFail("pendingRequestBytes threw for sane indexes") }
            }
            do {
                let space = try endpoint.responseSpace()
                if space < 0 || space > RingLayout.ringSize { fuzzFail("response space out of range") }
            } catch {
                guard let c = memory.loaded(RingLayout.responseConsumer), let p = memory.loaded(RingLayout.responseProducer),
                      p &- c > ringSize else { fuzzFail("responseSpace threw for sane indexes") }
            }
        default:
            hostile.toggle()
        }
    }
}

/// Checks one readRequests call against the values it loaded.
func checkRead(_ memory: CheckedRingMemory, limit: Int, out: [UInt8], result: Result<Int, RingError>, cursorGiven: UInt32?) {
    // readRequests(from:) loads req_cons then req_prod; readRequests(upTo:) loads req_cons once more first.
    guard let consumer = memory.loaded(RingLayout.requestConsumer), let producer = memory.loaded(RingLayout.requestProducer),
          let firstConsumer = memory.loaded(RingLayout.requestConsumer, first: true) else {
        fuzzFail("readRequests did not load its indexes")
    }
    let start = cursorGiven ?? firstConsumer
    switch result {
    case .failure:
        if producer &- consumer <= ringSize && start &- consumer <= producer &- consumer {
            fuzzFail("readRequests threw for indexes that were in range")
        }
        if out != [7] { fuzzFail("readRequests appended bytes and threw") }
    case .success(let count):
        if producer &- consumer > ringSize { fuzzFail("corrupt request indexes were not reported") }
        if count < 0 || count > max(limit, 0) || count > RingLayout.ringSize { fuzzFail("read more than the limit or the ring") }
        if UInt32(count) > producer &- start { fuzzFail("read past the producer index") }
        if out.count != count + 1 || out[0] != 7 { fuzzFail("appended bytes differ from the count returned") }
        if Array(out.dropFirst()) != memory.ringBytes(RingLayout.requestRing, from: start, count: count) {
            fuzzFail("returned bytes are not the ring's bytes from the consumer")
        }
        let consumerStores = memory.stores.filter { $0.offset == RingLayout.requestConsumer }
        if cursorGiven == nil {
            if count > 0 && consumerStores.map({ $0.value }) != [start &+ UInt32(count)] { fuzzFail("req_cons did not move by the count") }
            if count == 0 && !consumerStores.isEmpty { fuzzFail("req_cons moved although nothing was read") }
        } else if !consumerStores.isEmpty {
            fuzzFail("readRequests(from:) released space")
        }
    }
}

/// Checks one writeResponses call against the values it loaded.
func checkWrite(_ memory: CheckedRingMemory, data: [UInt8], result: Result<Int, RingError>) {
    guard let consumer = memory.loaded(RingLayout.responseConsumer), let producer = memory.loaded(RingLayout.responseProducer) else {
        fuzzFail("writeResponses did not load its indexes")
    }
    let used = producer &- consumer
    switch result {
    case .failure:
        if used <= ringSize { fuzzFail("writeResponses threw for indexes that were in range") }
        if !memory.stores.isEmpty { fuzzFail("writeResponses stored and threw") }
    case .success(let count):
        if used > ringSize { fuzzFail("corrupt response indexes were not reported") }
        if count < 0 || count > data.count || UInt32(count) > ringSize - used { fuzzFail("wrote more than the free space") }
        let producerStores = memory.stores.filter { $0.offset == RingLayout.responseProducer }
        if count > 0 {
            if producerStores.map({ $0.value }) != [producer &+ UInt32(count)] { fuzzFail("rsp_prod did not move by the count") }
            if memory.ringBytes(RingLayout.responseRing, from: producer, count: count) != Array(data.prefix(count)) {
                fuzzFail("reply bytes not written at the producer index")
            }
        } else if !producerStores.isEmpty {
            fuzzFail("rsp_prod moved although nothing was written")
        }
    }
}

// MARK: - Link level

func linkProgram(_ source: ByteSource, deferRelease: Bool) {
    let server = Server(time: 1_700_000_000)
    let memory = CheckedRingMemory()
    let caller = Caller(domid: 5, privileged: false)
    memory.reconnecting = false
    let link = RingLink(server: server, memory: memory, caller: caller, deferRelease: deferRelease)
    let guest = RingClientEndpoint(memory: memory)
    var decoder = FrameDecoder()
    var guestCorrupted = false
    var time: Int64 = 1_700_000_000
    var nextRequest: UInt32 = 1
    let paths = ["/local/domain/5/a", "a", "/", "/local/domain/5", "b/c", "@releaseDomain"]
    while !source.atEnd {
        memory.resetLog()
        switch source.next() % 8 {
        case 0:  // a well-formed request
            let type = [MessageType.read, .write, .watch, .directory, .transactionStart, .rm, .mkdir, .getPerms][Int(source.next()) % 8]
            let path = Array(paths[Int(source.next()) % paths.count].utf8)
            var payload = path + [0]
            if type == .write { payload += source.take(Int(source.next() % 64)) }
            if type == .watch { payload += Array("tok".utf8) + [0] }
            if type == .transactionStart { payload = [0] }
            let message = Message(type, requestID: nextRequest, payload: payload).encoded
            nextRequest &+= 1
            memory.guestActive = true
            _ = guest.writeRequests(message[...])
            memory.guestActive = false
        case 1:  // raw bytes
            let bytes = source.take(Int(source.next()))
            memory.guestActive = true
            _ = guest.writeRequests(bytes[...])
            memory.guestActive = false
        case 2:  // a racing or hostile domain rewrites an index
            let offset = CheckedRingMemory.indexWords[Int(source.next()) % 4]
            memory.setRaw32(edgeValue(source.next(), current: memory.raw32(offset), source: source), offset)
            guestCorrupted = true
        case 3:
            let requestUsed = memory.raw32(RingLayout.requestProducer) &- memory.raw32(RingLayout.requestConsumer)
            let wasStalled = link.isStalled
            let reconnect = memory.raw32(RingLayout.connection) == RingLayout.reconnect
            let wantsInput = server.wantsInput(link.connection)
            memory.reconnecting = reconnect
            memory.resetLog()
            time += 1
            let activity = link.serve(server, time: time)
            memory.reconnecting = false
            if reconnect {
                if !activity.reconnected { fuzzFail("a reconnection request was not served") }
                for offset in CheckedRingMemory.indexWords + [RingLayout.error] where memory.raw32(offset) != 0 {
                    fuzzFail("reconnection left an index or the error word set")
                }
                if memory.raw32(RingLayout.connection) != RingLayout.connected { fuzzFail("reconnection not acknowledged") }
                if link.isStalled { fuzzFail("still stalled after a reconnection") }
                decoder = FrameDecoder()
                guestCorrupted = false
            } else if wasStalled {
                if memory.loads.contains(where: { $0.offset == RingLayout.requestProducer }) { fuzzFail("a stalled ring was read") }
                if activity.consumedRequests || activity.wroteReplies { fuzzFail("a stalled ring was served") }
            } else if requestUsed > ringSize && wantsInput {
                if activity.failure == nil || !link.isStalled { fuzzFail("corrupt request indexes were not reported") }
                if memory.raw32(RingLayout.error) != RingErrorCode.ringIndex.rawValue { fuzzFail("error word not set to RING_IDX") }
            }
            if activity.failure != nil && !link.isStalled { fuzzFail("a ring failure did not stall the ring") }
            for effect in server.takeEffects() {
                if case .closeConnection(let id) = effect, id == link.connection { link.stall(server, reason: .protocolViolation) }
            }
        case 4:  // the guest reads replies
            var replies: [UInt8] = []
            memory.guestActive = true
            _ = guest.readResponses(appendingTo: &replies)
            memory.guestActive = false
            if !guestCorrupted {
                do {
                    for frame in try decoder.feed(replies) where frame.payload.count > Limits.payloadMax {
                        fuzzFail("oversized reply frame")
                    }
                } catch {
                    fuzzFail("replies on the ring cannot be framed")
                }
            }
        case 5:
            memory.guestActive = true
            guest.requestReconnection()
            memory.guestActive = false
        case 6:
            _ = link.releaseConsumedSpace()
        default:
            _ = link.hasPendingWork(server)
        }
        if !server.checkStore() { fuzzFail("node ownership accounting differs from a recount") }
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func ringIndexesFuzzOne(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size > 0 else { return 0 }
    let source = ByteSource(Array(UnsafeBufferPointer(start: data, count: size)))
    let selector = source.next()
    if selector % 2 == 0 {
        endpointProgram(source)
    } else {
        linkProgram(source, deferRelease: selector & 2 != 0)
    }
    return 0
}
