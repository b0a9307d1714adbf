// Malformed and hostile raw protocol input: oversized headers, unknown types, missing NULs, bad paths, truncation, seeded garbage.

import Foundation
#if canImport(Glibc)
import Glibc
#endif
import Testing
import XenstoreHost
import XenstoreWire

@Suite("Bad input over the socket")
struct BadInputTests {
    /// A 16-byte header with an arbitrary length field.
    static func header(type: UInt32, requestID: UInt32, transactionID: UInt32 = 0, length: UInt32) -> [UInt8] {
        var out: [UInt8] = []
        MessageHeader(type: type, requestID: requestID, transactionID: transactionID, length: length).encode(into: &out)
        return out
    }

    @Test("a header announcing 5000 bytes closes only that connection")
    func oversizedHeader() throws {
        let daemon = try Daemon()
        defer { daemon.stop() }
        let victim = try daemon.client()
        let bystander = try daemon.client()
        try bystander.write("/k", bytes("v"))
        #expect(try victim.read("/k") == bytes("v"))

        try victim.sendRaw(BadInputTests.header(type: MessageType.write.rawValue, requestID: 9, length: 5000)
            + bytes("/k/x") + [0] + [UInt8](repeating: 0x41, count: 200))
        #expect((try? victim.receive()) == nil, "the daemon must close a connection that announces 5000 bytes")

        // The other connection, open all along, is unaffected and gets correct answers.
        #expect(try bystander.read("/k") == bytes("v"))
        try bystander.write("/k", bytes("w"))
        #expect(try bystander.read("/k") == bytes("w"))
        #expect(throws: ClientError.server(.ENOENT)) { try bystander.read("/k/x") }
        #expect(try daemon.client().read("/k") == bytes("w"))

        // The limit is inclusive: a 4096-byte payload is a normal request.
        let edge = try daemon.client()
        let value = [UInt8](repeating: 0x61, count: 4096 - 3)
        let reply = try edge.exchange(type: MessageType.write.rawValue, requestID: 1, payload: bytes("/e") + [0] + value)
        #expect(reply?.payload == Payload.ok, "\(String(describing: reply))")
        #expect(try edge.read("/e") == value)
        // 4097 is over the limit.
        try edge.sendRaw(BadInputTests.header(type: MessageType.write.rawValue, requestID: 2, length: 4097)
            + bytes("/e") + [0] + [UInt8](repeating: 0x62, count: 4094))
        #expect((try? edge.receive()) == nil)
        #expect(try bystander.read("/e") == value, "the oversized write changed nothing")
        #expect(daemon.isRunning)
    }

    @Test("unknown message types get ENOSYS and the connection stays usable")
    func unknownTypes() throws {
        let daemon = try Daemon()
        defer { daemon.stop() }
        let client = try daemon.client()
        for (index, type) in [UInt32(99), 20, 15, 16, 0xFFFF, 0xFFFF_FFFF].enumerated() {
            let requestID = UInt32(100 + index)
            let reply = try client.exchange(type: type, requestID: requestID, transactionID: 0, payload: payload("/x"))
            #expect(reply?.header.type == MessageType.error.rawValue, "type \(type): \(String(describing: reply))")
            #expect(wireError(reply) == .ENOSYS, "type \(type): \(String(describing: reply))")
            #expect(reply?.header.requestID == requestID, "the reply echoes the request id")
            #expect(reply?.payload == bytes("ENOSYS") + [0])
        }
        try client.write("/after", bytes("fine"))
        #expect(try client.read("/after") == bytes("fine"))
    }

    @Test("replies echo request and transaction ids; a READ value has no NUL")
    func framingEcho() throws {
        let daemon = try Daemon()
        defer { daemon.stop() }
        let client = try daemon.client()
        try client.write("/bin", [0x61, 0, 0x62, 0])
        let reply = try client.exchange(type: MessageType.read.rawValue, requestID: 0xDEAD_BEEF, payload: payload("/bin"))
        #expect(reply?.header.type == MessageType.read.rawValue)
        #expect(reply?.header.requestID == 0xDEAD_BEEF)
        #expect(reply?.payload == [0x61, 0, 0x62, 0], "binary values round-trip unchanged")
        let transaction = try client.startTransaction()
        let inside = try client.exchange(type: MessageType.read.rawValue, requestID: 5, transactionID: transaction,
                                         payload: payload("/bin"))
        #expect(inside?.header.transactionID == transaction)
        let unknown = try client.exchange(type: MessageType.read.rawValue, requestID: 6, transactionID: 4242,
                                          payload: payload("/bin"))
        #expect(wireError(unknown) == .ENOENT && unknown?.header.transactionID == 4242, "unknown transaction id")

        // A request split into many small writes is reassembled.
        let whole = Message(.read, requestID: 77, payload: payload("/bin")).encoded
        for byte in whole {
            try client.sendRaw([byte])
            usleep(1_000)
        }
        let split = try client.receive()
        #expect(split?.header.requestID == 77 && split?.payload == [0x61, 0, 0x62, 0])
        // Two requests in one write get two replies, in order.
        try client.sendRaw(Message(.read, requestID: 1, payload: payload("/bin")).encoded
            + Message(.read, requestID: 2, payload: payload("/missing")).encoded)
        let first = try client.receive()
        let second = try client.receive()
        #expect(first?.header.requestID == 1 && first?.payload == [0x61, 0, 0x62, 0])
        #expect(second?.header.requestID == 2 && wireError(second) == .ENOENT)
    }

    @Test("WRITE without a NUL is EINVAL; the connection stays usable")
    func writeWithoutNul() throws {
        let daemon = try Daemon()
        defer { daemon.stop() }
        let client = try daemon.client()
        let reply = try client.exchange(type: MessageType.write.rawValue, requestID: 3, payload: bytes("/nonul"))
        #expect(wireError(reply) == .EINVAL, "\(String(describing: reply))")
        let empty = try client.exchange(type: MessageType.write.rawValue, requestID: 4, payload: [])
        #expect(wireError(empty) == .EINVAL, "\(String(describing: empty))")
        #expect(throws: ClientError.server(.ENOENT)) { try client.read("/nonul") }
        try client.write("/ok", bytes("1"))
        #expect(try client.read("/ok") == bytes("1"))
    }

    @Test("READ without its NUL is an error, as in C xenstored; the connection stays usable")
    func readWithoutNul() throws {
        let daemon = try Daemon()
        defer { daemon.stop() }
        let client = try daemon.client()
        try client.write("/p/a", bytes("x"))
        // An empty payload has no argument at all (cx: ENOENT from a stale errno, ox: EINVAL).
        let empty = try client.exchange(type: MessageType.read.rawValue, requestID: 1, payload: [])
        #expect(wireError(empty) == .EINVAL || wireError(empty) == .ENOENT, "\(String(describing: empty))")
        // C's onearg() requires exactly one NUL, at the end; without it C answers an error
        // (cx: ENOENT from a stale errno, ox: EINVAL) and never the value.
        let reply = try client.exchange(type: MessageType.read.rawValue, requestID: 2, payload: bytes("/p/a"))
        // C xenstored 4.17's onearg() refuses it; measured against cx the reply is ENOENT.
        #expect(wireError(reply) == .ENOENT, "\(String(describing: reply))")
        // Two arguments where one is expected.
        let two = try client.exchange(type: MessageType.read.rawValue, requestID: 3, payload: payload("/p/a", "/p"))
        #expect(wireError(two) == .EINVAL || wireError(two) == .ENOENT, "\(String(describing: two))")
        #expect(try client.read("/p/a") == bytes("x"))
    }

    @Test("paths with '.', '//', a trailing '/', bad characters or no name are EINVAL")
    func invalidPaths() throws {
        let daemon = try Daemon()
        defer { daemon.stop() }
        let client = try daemon.client()
        try client.write("/a/b", bytes("v"))
        let invalid = ["/a.b", "/a/.", "/a/..", ".", "a.b", "/a//b", "//a", "//", "/a/", "/a/b/", "",
                       "/bad path", "/bad~", "/a\u{7F}", "/caf\u{E9}"]
        var requestID: UInt32 = 1
        for path in invalid {
            for type in [MessageType.read, .write, .directory, .mkdir, .rm, .getPerms] {
                let body = type == .write ? bytes(path) + [0] + bytes("v") : bytes(path) + [0]
                let reply = try client.exchange(type: type.rawValue, requestID: requestID, payload: body)
                requestID += 1
                #expect(wireError(reply) == .EINVAL, "\(type.name) \(path.debugDescription): \(String(describing: reply))")
            }
        }
        let badPerms = try client.exchange(type: MessageType.setPerms.rawValue, requestID: requestID,
                                           payload: payload("/a/b/", "n0"))
        #expect(wireError(badPerms) == .EINVAL)
        let badWatch = try client.exchange(type: MessageType.watch.rawValue, requestID: requestID + 1,
                                           payload: payload("/a//b", "tok"))
        #expect(wireError(badWatch) == .EINVAL)
        // C xenstored refuses to write special '@' paths.
        let special = try client.exchange(type: MessageType.write.rawValue, requestID: requestID + 2,
                                          payload: bytes("@foo") + [0] + bytes("x"))
        #expect(wireError(special) == .EINVAL)
        // Nothing was created, and the valid neighbours still work.
        #expect(try client.list("/a") == ["b"])
        #expect(Set(try client.list("/")) == ["a", "local", "tool"])
        #expect(try client.read("/a/b") == bytes("v"))
        // The allowed punctuation is - _ @.
        try client.write("/ok-_@", bytes("1"))
        #expect(try client.read("/ok-_@") == bytes("1"))
        // RM of / is refused.
        #expect(throws: ClientError.server(.EINVAL)) { try client.remove("/") }
    }

    @Test("a truncated header or payload followed by close leaves the daemon serving")
    func truncatedThenClose() throws {
        let daemon = try Daemon()
        defer { daemon.stop() }
        let keeper = try daemon.client()
        try keeper.write("/t", bytes("1"))
        do {
            let truncated = try daemon.client()
            try truncated.sendRaw(Array(Message(.write, requestID: 1, payload: payload("/t")).encoded.prefix(7)))
        }  // closed here
        do {
            let truncated = try daemon.client()
            let whole = Message(.write, requestID: 1, payload: bytes("/t") + [0] + bytes("2")).encoded
            try truncated.sendRaw(Array(whole.prefix(whole.count - 1)))
        }  // closed with the payload one byte short: nothing is written
        do {
            let silent = try daemon.client()
            _ = silent
        }
        #expect(try keeper.read("/t") == bytes("1"), "a partial WRITE must not be executed")
        for _ in 0..<3 {
            let fresh = try daemon.client()
            #expect(try fresh.read("/t") == bytes("1"))
        }
        #expect(daemon.isRunning)
    }

    /// A random request: mostly well-framed messages of known types with path-like, NUL-laden
    /// or binary payloads, some unknown types and transaction ids.
    static func garbageMessage(_ random: inout SplitMix64, requestID: UInt32) -> Message {
        let type: UInt32 = Int.random(in: 0..<10, using: &random) < 8
            ? UInt32.random(in: 0...27, using: &random)
            : UInt32.random(in: 0...UInt32.max, using: &random)
        let transactionID: UInt32 = Int.random(in: 0..<10, using: &random) < 8 ? 0 : UInt32.random(in: 0...20, using: &random)
        let pieces: [[UInt8]] = [
            bytes("/"), bytes("/local/domain/0"), bytes("/local/domain/5/x"), bytes("a"), bytes("g"),
            bytes("/g/h"), bytes("@introduceDomain"), bytes("@releaseDomain"), bytes("T"), bytes("F"),
            bytes("n0"), bytes("r5"), bytes("b1"), bytes("x9"), bytes("5"), bytes("0"), bytes("4294967295"),
            bytes("print"), bytes("check"), bytes("quota"), bytes("history"), bytes(".."), bytes("//"), [0], [0], [0],
        ]
        var body: [UInt8] = []
        let parts = Int.random(in: 0...6, using: &random)
        for _ in 0..<parts {
            if Int.random(in: 0..<4, using: &random) == 0 {
                for _ in 0..<Int.random(in: 1...12, using: &random) { body.append(UInt8.random(in: 0...255, using: &random)) }
            } else {
                body += pieces[Int.random(in: 0..<pieces.count, using: &random)]
            }
        }
        if Int.random(in: 0..<20, using: &random) == 0 {
            body += [UInt8](repeating: UInt8.random(in: 0...255, using: &random), count: Int.random(in: 0...3000, using: &random))
        }
        return Message(type: type, requestID: requestID, transactionID: transactionID, payload: Array(body.prefix(4096)))
    }

    @Test("200 seeded garbage messages never crash the daemon; it still answers afterwards")
    func seededGarbage() throws {
        let daemon = try Daemon(domains: [5])
        defer { daemon.stop() }
        let dom0 = try daemon.client()
        let domain5 = try daemon.client(domain: 5)
        try dom0.write("/g/h", bytes("v"))
        try dom0.write("/local/domain/5/x", bytes("y"))
        var random = SplitMix64(seed: 0x5EED_2024)

        // Well-framed garbage: every message gets exactly one reply with its request id.
        for index in 0..<200 {
            let client = index % 4 == 3 ? domain5 : dom0
            let message = BadInputTests.garbageMessage(&random, requestID: UInt32(1000 + index))
            guard let reply = try client.exchange(type: message.header.type, requestID: message.header.requestID,
                                                  transactionID: message.header.transactionID, payload: message.payload) else {
                Issue.record("message \(index) (type \(message.header.type), payload \(message.payload.prefix(64))) closed the connection")
                break
            }
            #expect(reply.header.requestID == message.header.requestID, "message \(index)")
            #expect(reply.header.type == message.header.type || reply.header.type == MessageType.error.rawValue,
                    "message \(index): reply type \(reply.header.type) to type \(message.header.type)")
            if reply.header.type == MessageType.error.rawValue {
                #expect(wireError(reply) != nil, "message \(index): error payload \(reply.payload) is not an xsd_errors name")
            }
            #expect(reply.payload.count <= 4096)
        }

        // Unframed garbage: random byte streams on throw-away connections, some hitting the size limit.
        for _ in 0..<20 {
            let noise = try daemon.client()
            var chunk: [UInt8] = []
            for _ in 0..<Int.random(in: 1...600, using: &random) { chunk.append(UInt8.random(in: 0...255, using: &random)) }
            try? noise.sendRaw(chunk)
        }

        #expect(daemon.isRunning, "xenstored died: \(daemon.log)")
        let fresh = try daemon.client()
        try fresh.write("/after/garbage", bytes("ok"))
        #expect(try fresh.read("/after/garbage") == bytes("ok"))
        #expect(try domain5.request(.getDomainPath, payload("5")) == bytes("/local/domain/5") + [0],
                "domain 5's connection still answers")
        try Programs.require(Programs.xenstoreControl, package: "xen-utils-4.17")
        let check = try daemon.run(Programs.xenstoreControl, ["check"])
        #expect(check.rc == 0 && check.lines == ["OK"], "store accounting after garbage: \(check)")
        #expect(daemon.isRunning)
    }
}
