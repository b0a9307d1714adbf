// libFuzzer target: the whole sans-IO Server driven by a fuzzed sequence of operations, with invariants checked after each.

// The input is a program. Byte 0 picks the in-memory history window (16 commits if B%3==2,
// else 4096: evicting commits hashes trees, which is slow under coverage instrumentation); then each operation is
// an op byte (mod 9) followed by its operands (a missing byte reads as 0):
//   0 open  B            open a connection: dom0 if B%4==0, else unprivileged domain 1+B%8
//   1 request C T X N (K V)*N   a well-formed message of type T (every known type, unknown ones
//                        too) on connection C, transaction id from X, N arguments built from
//                        tables of paths, tokens, values, numbers, permissions and words
//   2 raw C L bytes[L]   raw bytes (may break framing: the connection is then closed)
//   3 take C M           take up to M output bytes and check every frame
//   4 effects            take the effects and check / carry them out like a shell
//   5 close C            close the connection
//   6 domain K D         domain D shut down (K even) or died (K odd)
//   7 time S             advance the clock
//   8 burst C P N        N*2 WRITEs of one path (not the deep ones), draining C's replies
//                        (fills watchers' queues)
// Invariants (a violation stops the fuzzer with the input saved):
// - no trap or memory error anywhere in the core;
// - the server's output is always well-framed: payload <= Limits.payloadMax, header length matches;
// - each reply answers the oldest outstanding request of its connection (same request and
//   transaction id) with the request's type or ERROR; ERROR payloads are Xen error names;
//   unknown types get ENOSYS, privileged-only types from unprivileged callers get an error;
//   WATCH_EVENT payloads are exactly two NUL-terminated strings;
// - a connection's queued output never exceeds its bound (Limits.*OutputQueueBytes) by more
//   than the replies still queued in it (for a client sending raw bytes: the back-pressure
//   limit Limits.maxQueuedRepliesBeforeBackpressure, plus one receive's worth);
// - only a connection that was sent raw bytes is ever closed for a protocol violation;
// - node ownership accounting equals a recount of the tree (CONTROL check) after every step;
// - a closed connection produces no output and wants no input.

/// Stops the run: libFuzzer records the input that got here as a crash.
func fuzzFail(_ message: String, file: StaticString = #file, line: UInt = #line) -> Never {
    fatalError("fuzz invariant violated: \(message)", file: file, line: line)
}

/// Reads operands from the fuzzer's input; past the end every byte is 0.
struct ProgramReader {
    let bytes: UnsafeBufferPointer<UInt8>
    var index = 0
    var atEnd: Bool { index >= bytes.count }
    mutating func next() -> UInt8 {
        guard index < bytes.count else { return 0 }
        index += 1
        return bytes[index - 1]
    }
    mutating func take(_ count: Int) -> [UInt8] {
        let end = min(bytes.count, index + count)
        let out = Array(bytes[index..<end])
        index = end
        return out
    }
}

/// The fuzzer's view of one connection, as a well-behaved client would keep it.
final class FuzzClient {
    let id: ConnectionID
    let caller: Caller
    var decoder = FrameDecoder()
    /// Requests sent and not yet answered, oldest first (only tracked while `clean`).
    var outstanding: [(requestID: UInt32, transactionID: UInt32, type: UInt32)] = []
    /// False once raw bytes were sent: replies can then no longer be matched to requests.
    var clean = true
    var closed = false
    var transactionIDs: [UInt32] = []
    var nextRequest: UInt32 = 1
    init(id: ConnectionID, caller: Caller) {
        self.id = id
        self.caller = caller
    }
}

enum FuzzTables {
    static let longPath = "/a/" + String(repeating: "l", count: 300)
    static let relativeLongPath = "a/" + String(repeating: "r", count: 300)
    static let deepPath = "/" + Array(repeating: "d", count: 1000).joined(separator: "/")
    static let overlongPath = "/" + String(repeating: "o", count: 3100)
    static let paths: [String] = [
        "/", "/a", "/a/b", "/a/b/c", "/local/domain/1", "/local/domain/1/x", "/local/domain/6/d",
        "@introduceDomain", "@releaseDomain", "@releaseDomain/3", "a", "x/y", "/tool/xenstored",
        "//bad", "/a/", "", longPath, relativeLongPath, deepPath, overlongPath, "/local/domain", "/a\u{7f}",
        "/local/domain/2/../x", "/a/b/c/d/e", "@other", "/local/domain/3",
    ]
    /// Paths a burst may use: the table's prefix up to and including `relativeLongPath`.
    static let burstPaths = 18
    static let numbers: [String] = [
        "0", "1", "2", "3", "5", "7", "65535", "65536", "4294967295", "4294967296",
        "18446744073709551615", "99999999999999999999", "-1", "", "abc", "12abc",
    ]
    static let permissions: [String] = ["n0", "r1", "w2", "b3", "n6", "r6", "b1", "x1", "n", "r4294967295", "n99999999999"]
    static let words: [String] = [
        "check", "log", "print", "quota", "memreport", "history", "restore", "revert", "merge", "help",
        "nodes", "watches", "transactions", "transaction-nodes", "node-size", "permissions", "path-max",
        "memory", "outstanding", "main", "main~1", "HEAD", "logfile", "",
    ]
    static let transactionEnds: [String] = ["T", "F", "X", "TT"]
    static let oddTypes: [UInt32] = [27, 100, 0xFFFF, 0xFFFF_FFFF]
}

/// Runs one fuzzer program against a fresh server and checks the invariants.
final class ServerMachine {
    let server: Server
    var clients: [FuzzClient] = []
    var time: Int64 = 1_700_000_000
    /// Messages that can reach one connection in a single receive of this program: a request
    /// op sends one; a raw op at most 255 bytes, i.e. 15 whole messages plus one completed.
    static let maxMessagesPerReceive = 17
    static let frameMax = Limits.headerSize + Limits.payloadMax

    init(retainedCommits: Int) {
        var configuration = ServerConfiguration()
        configuration.retainedCommits = retainedCommits
        server = Server(configuration: configuration, time: time)
        let dom0 = FuzzClient(id: server.openConnection(caller: .dom0), caller: .dom0)
        clients.append(dom0)
        // As a toolstack would: guest domains 1...8 introduced, each with a home it owns, so
        // that guests can write there and receive watch events for it.
        for domid in 1...8 {
            let home = Array("/local/domain/\(domid)".utf8)
            send(Message(.introduce, requestID: dom0.nextRequest, payload: Array("\(domid)\u{0}1\u{0}\(domid)\u{0}".utf8)), to: dom0)
            send(Message(.mkdir, requestID: dom0.nextRequest, payload: home + [0]), to: dom0)
            send(Message(.setPerms, requestID: dom0.nextRequest, payload: home + [0] + Array("n\(domid)".utf8) + [0]), to: dom0)
        }
        take(dom0, maxBytes: Int.max)
        _ = server.takeEffects()
    }

    func client(_ byte: UInt8) -> FuzzClient { clients[Int(byte) % clients.count] }

    func run(_ program: inout ProgramReader) {
        while !program.atEnd {
            step(&program)
            checkInvariants()
        }
        // Drain everything at the end: every frame still queued is checked too.
        for client in clients { take(client, maxBytes: Int.max) }
        handleEffects()
        checkInvariants()
    }

    func step(_ program: inout ProgramReader) {
        switch program.next() % 9 {
        case 0:
            guard clients.count < 16 else { return }
            let b = program.next()
            let caller = b % 4 == 0 ? Caller.dom0 : Caller(domid: 1 + UInt32(b % 8), privileged: false)
            clients.append(FuzzClient(id: server.openConnection(caller: caller), caller: caller))
        case 1:
            let client = client(program.next())
            let message = buildRequest(for: client, &program)
            send(message, to: client)
        case 2:
            let client = client(program.next())
            let bytes = program.take(Int(program.next()))
            guard server.wantsInput(client.id) else { return }
            client.clean = false
            client.outstanding.removeAll()
            server.receive(bytes, on: client.id, time: time)
        case 3:
            let client = client(program.next())
            let m = program.next()
            take(client, maxBytes: m == 255 ? Int.max : Int(m) * 64 + 1)
        case 4:
            handleEffects()
        case 5:
            let client = client(program.next())
            server.closeConnection(client.id)
            client.closed = true
        case 6:
            let kind = program.next()
            let domid = UInt32(program.next() % 10)
            if kind % 2 == 0 { server.domainShutDown(domid, time: time) } else { server.domainDied(domid, time: time) }
        case 7:
            time += Int64(program.next()) * 1000
        default:
            let writer = client(program.next())
            // Not the 1000-level path: hundreds of commits of it, each hashed under ASan and
            // coverage, take tens of seconds (a fuzzer timeout, not a server problem).
            let path = FuzzTables.paths[Int(program.next()) % FuzzTables.burstPaths]
            let count = Int(program.next()) * 2
            for n in 0..<count {
                guard server.wantsInput(writer.id) else { break }
                let payload = Array(path.utf8) + [0] + Payload.decimal(n)
                send(Message(.write, requestID: writer.nextRequest, payload: payload), to: writer)
                take(writer, maxBytes: Int.max)
                checkOutputBounds()
            }
        }
    }

    func buildRequest(for client: FuzzClient, _ program: inout ProgramReader) -> Message {
        let t = program.next()
        let type: UInt32 = t < 27 ? UInt32(t) : (t < 240 ? UInt32(t % 27) : FuzzTables.oddTypes[Int(t % 4)])
        let x = program.next()
        let transaction: UInt32
        if x == 0 {
            transaction = 0
        } else if x < 128 && !client.transactionIDs.isEmpty {
            transaction = client.transactionIDs[Int(x - 1) % client.transactionIDs.count]
        } else {
            transaction = UInt32(x)
        }
        let countByte = program.next()
        var parts: [[UInt8]] = []
        for _ in 0..<(countByte % 5) {
            let kind = program.next()
            let value = Int(program.next())
            switch kind % 8 {
            case 0: parts.append(Array(FuzzTables.paths[value % FuzzTables.paths.count].utf8))
            case 1: parts.append(Array("t\(value % 8)".utf8))
            case 2: parts.append([UInt8](repeating: 0x76, count: value * 16))
            case 3: parts.append(Array(FuzzTables.transactionEnds[value % 4].utf8))
            case 4: parts.append(Array(FuzzTables.numbers[value % FuzzTables.numbers.count].utf8))
            case 5: parts.append(Array(FuzzTables.permissions[value % FuzzTables.permissions.count].utf8))
            case 6: parts.append(Array(FuzzTables.words[value % FuzzTables.words.count].utf8))
            default: parts.append(program.take(value % 32))
            }
        }
        var payload = Payload.join(parts)
        if countByte & 0x80 != 0 && !payload.isEmpty { payload.removeLast() }
        if payload.count > Limits.payloadMax { payload.removeLast(payload.count - Limits.payloadMax) }
        return Message(type: type, requestID: client.nextRequest, transactionID: transaction, payload: payload)
    }

    /// Sends a well-formed message, as a shell would: only while the server wants input.
    func send(_ message: Message, to client: FuzzClient) {
        guard server.wantsInput(client.id) else { return }
        client.nextRequest &+= 1
        if client.clean {
            client.outstanding.append((message.header.requestID, message.header.transactionID, message.header.type))
        }
        server.receive(message.encoded, on: client.id, time: time)
    }

    /// Takes output and checks every complete frame in it.
    func take(_ client: FuzzClient, maxBytes: Int) {
        let hadOutput = server.hasOutput(client.id)
        let bytes = server.takeOutput(client.id, maxBytes: maxBytes)
        if hadOutput != !bytes.isEmpty && maxBytes > 0 { fuzzFail("hasOutput disagrees with takeOutput") }
        if client.closed && !bytes.isEmpty { fuzzFail("a closed connection produced output") }
        let frames: [Message]
        do {
            frames = try client.decoder.feed(bytes)
        } catch {
            fuzzFail("server output cannot be framed")
        }
        for frame in frames { check(frame, on: client) }
    }

    func check(_ frame: Message, on client: FuzzClient) {
        if frame.payload.count > Limits.payloadMax || Int(frame.header.length) != frame.payload.count {
            fuzzFail("oversized or mis-framed reply")
        }
        let errorType = MessageType.error.rawValue
        if frame.header.type == MessageType.watchEvent.rawValue {
            let (strings, trailing) = Payload.strings(frame.payload)
            if strings.count != 2 || !trailing.isEmpty { fuzzFail("watch event is not path NUL token NUL") }
            if strings[0].isEmpty { fuzzFail("watch event with an empty path") }
            return
        }
        if frame.header.type == errorType && XenstoreError(payload: frame.payload) == nil {
            fuzzFail("ERROR payload is not a Xen error name")
        }
        guard client.clean else { return }
        guard !client.outstanding.isEmpty else { fuzzFail("a reply nobody asked for") }
        let request = client.outstanding.removeFirst()
        if frame.header.requestID != request.requestID || frame.header.transactionID != request.transactionID {
            fuzzFail("reply ids do not echo the oldest outstanding request")
        }
        if frame.header.type != request.type && frame.header.type != errorType {
            fuzzFail("reply type is neither the request's type nor ERROR")
        }
        let known = MessageType(rawValue: request.type)
        if known == nil && XenstoreError(payload: frame.payload) != .ENOSYS { fuzzFail("unknown type not answered ENOSYS") }
        if let known, Server.isPrivilegedOnly(known), !client.caller.privileged, frame.header.type != errorType {
            fuzzFail("an unprivileged caller got a privileged-only request through")
        }
        if known == .transactionStart, frame.header.type == request.type {
            guard let id = Server.oneArgument(frame.payload).flatMap({ Payload.parseDecimal($0) }), id > 0,
                  id <= UInt64(UInt32.max) else { fuzzFail("TRANSACTION_START reply is not an id") }
            client.transactionIDs.append(UInt32(id))
        }
    }

    func handleEffects() {
        for effect in server.takeEffects() {
            switch effect {
            case .closeConnection(let id):
                guard let client = clients.first(where: { $0.id == id }) else { fuzzFail("close of an unknown connection") }
                if client.clean { fuzzFail("a well-formed client was disconnected") }
                if server.wantsInput(id) { fuzzFail("a broken connection still wants input") }
                take(client, maxBytes: Int.max)
                server.closeConnection(id)
                client.closed = true
            case .log(let line):
                if line.isEmpty { fuzzFail("empty log line") }
            case .connectDomain, .disconnectDomain, .committed:
                break
            }
        }
    }

    func checkOutputBounds() {
        for client in clients {
            guard let connection = server.connections[client.id] else {
                if !client.closed { fuzzFail("an open connection vanished") }
                continue
            }
            // An event is queued only while the queue is within its bound; replies are always queued.
            // So the queue may exceed the bound by at most the replies still in it: for a client
            // whose requests we can match, its unanswered requests; else the back-pressure limit.
            let replies = client.clean ? client.outstanding.count
                : Limits.maxQueuedRepliesBeforeBackpressure + ServerMachine.maxMessagesPerReceive
            if connection.output.byteCount > connection.outputBound + replies * ServerMachine.frameMax {
                fuzzFail("output queue over its bound")
            }
        }
    }

    func checkInvariants() {
        checkOutputBounds()
        for client in clients where client.closed {
            if server.wantsInput(client.id) || server.hasOutput(client.id) { fuzzFail("a closed connection is alive") }
        }
        if !server.checkStore() { fuzzFail("node ownership accounting differs from a recount") }
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func serverMachineFuzzOne(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size > 0 else { return 0 }
    var program = ProgramReader(bytes: UnsafeBufferPointer(start: data, count: size))
    let windows = [4096, 4096, 16]
    let machine = ServerMachine(retainedCommits: windows[Int(program.next()) % windows.count])
    machine.run(&program)
    return 0
}
