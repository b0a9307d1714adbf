// The in-image self-test: drives the sans-IO server with framed requests and checks the exact reply bytes.

import XenstoreRing
import XenstoreServer
import XenstoreStore
import XenstoreWire

/// A scripted conversation with the core server over one dom0 connection.
///
/// Each step sends wire bytes (built here by hand, independently of the core's encoder) and
/// compares every byte the server queues for output. The first mismatch ends the test; its exit
/// code is `SelfTest.firstFailureCode + step index`.
public enum SelfTest {
    /// Exit code of the first step; step n fails with `firstFailureCode + n`.
    public static let firstFailureCode: Int32 = 10

    /// A fixed clock, so that replies are deterministic.
    static let time: Int64 = 1_700_000_000

    /// Xenstore message type numbers (xs_wire.h), spelled out so the test checks the encoder.
    enum Wire {
        static let directory: UInt32 = 1
        static let read: UInt32 = 2
        static let watch: UInt32 = 4
        static let transactionStart: UInt32 = 6
        static let transactionEnd: UInt32 = 7
        static let write: UInt32 = 11
        static let rm: UInt32 = 13
        static let watchEvent: UInt32 = 15
        static let error: UInt32 = 16
    }

    /// One request and the exact output it must produce.
    struct Step {
        let name: StaticString
        let request: [UInt8]
        let expected: [UInt8]
        /// Feed the request one byte at a time (exercises partial framing).
        var bytewise = false
    }

    /// Runs every step; prints `SELFTEST: PASS` or the failing step and returns the exit code.
    public static func run() -> Int32 {
        let server = Server(time: time)
        let connection = server.openConnection(caller: .dom0, transport: Payload.bytes("loopback (the boot self-test)"))
        let steps = script()
        for (index, step) in steps.enumerated() {
            if step.bytewise {
                for byte in step.request { server.receive(CollectionOfOne(byte), on: connection, time: time) }
            } else {
                server.receive(step.request, on: connection, time: time)
            }
            let output = server.takeOutput(connection)
            if output != step.expected {
                Console.write("SELFTEST: FAIL at step ")
                Console.write(decimal: UInt64(index))
                Console.write(" (")
                Console.write(step.name)
                Console.write(")\n  expected: ")
                Console.write(escaped: step.expected)
                Console.write("\n  got:      ")
                Console.write(escaped: output)
                Console.write("\n")
                return firstFailureCode + Int32(index)
            }
            Console.write("selftest: ok ")
            Console.write(step.name)
            Console.write("\n")
        }
        let ringCode = ringCheck(server)
        if ringCode != 0 {
            Console.write("SELFTEST: FAIL in the ring transport check ")
            Console.write(decimal: UInt64(ringCode))
            Console.write("\n")
            return firstFailureCode + Int32(steps.count) + ringCode
        }
        Console.write("selftest: ok ring transport (wrap-around, corrupt indexes, reconnection)\n")
        let effects = server.takeEffects()
        Console.write("selftest: effects queued: ")
        Console.write(decimal: UInt64(effects.count))
        Console.write("\nSELFTEST: PASS\n")
        return 0
    }

    /// The conversation: write, read (fed byte by byte), directory, watch, a transaction, rm.
    static func script() -> [Step] {
        [
            Step(name: "write /selftest/key",
                 request: frame(Wire.write, 1, 0, Payload.bytes("/selftest/key") + [0] + Payload.bytes("value")),
                 expected: frame(Wire.write, 1, 0, Payload.bytes("OK") + [0])),
            Step(name: "read /selftest/key (bytewise)",
                 request: frame(Wire.read, 2, 0, Payload.bytes("/selftest/key") + [0]),
                 expected: frame(Wire.read, 2, 0, Payload.bytes("value")),
                 bytewise: true),
            Step(name: "directory /selftest",
                 request: frame(Wire.directory, 3, 0, Payload.bytes("/selftest") + [0]),
                 expected: frame(Wire.directory, 3, 0, Payload.bytes("key") + [0])),
            Step(name: "watch /selftest",
                 request: frame(Wire.watch, 4, 0, Payload.bytes("/selftest") + [0] + Payload.bytes("tok") + [0]),
                 expected: frame(Wire.watch, 4, 0, Payload.bytes("OK") + [0])
                     + frame(Wire.watchEvent, 0, 0, Payload.bytes("/selftest") + [0] + Payload.bytes("tok") + [0])),
            Step(name: "transaction start",
                 request: frame(Wire.transactionStart, 5, 0, [0]),
                 expected: frame(Wire.transactionStart, 5, 0, Payload.bytes("1") + [0])),
            Step(name: "write /selftest/tx in transaction",
                 request: frame(Wire.write, 6, 1, Payload.bytes("/selftest/tx") + [0] + Payload.bytes("inside")),
                 expected: frame(Wire.write, 6, 1, Payload.bytes("OK") + [0])),
            Step(name: "read /selftest/tx outside the transaction",
                 request: frame(Wire.read, 7, 0, Payload.bytes("/selftest/tx") + [0]),
                 expected: frame(Wire.error, 7, 0, Payload.bytes("ENOENT") + [0])),
            Step(name: "transaction end (commit)",
                 request: frame(Wire.transactionEnd, 8, 1, Payload.bytes("T") + [0]),
                 // the watch fires before the reply, as in C xenstored
                 expected: frame(Wire.watchEvent, 0, 0, Payload.bytes("/selftest/tx") + [0] + Payload.bytes("tok") + [0])
                     + frame(Wire.transactionEnd, 8, 1, Payload.bytes("OK") + [0])),
            Step(name: "read /selftest/tx after commit",
                 request: frame(Wire.read, 9, 0, Payload.bytes("/selftest/tx") + [0]),
                 expected: frame(Wire.read, 9, 0, Payload.bytes("inside"))),
            Step(name: "rm /selftest/key",
                 request: frame(Wire.rm, 10, 0, Payload.bytes("/selftest/key") + [0]),
                 expected: frame(Wire.watchEvent, 0, 0, Payload.bytes("/selftest/key") + [0] + Payload.bytes("tok") + [0])
                     + frame(Wire.rm, 10, 0, Payload.bytes("OK") + [0])),
        ]
    }

    /// The core's ring transport over an in-memory page, playing the guest by hand: a read whose
    /// request and reply wrap around the ring and the 32-bit counter; corrupt indexes must stall
    /// the ring with XENSTORE_ERROR_RINGIDX; a reconnection must zero the indexes. Returns 0 or
    /// the number of the failed check.
    static func ringCheck(_ server: Server) -> Int32 {
        let page = ArrayRingMemory()
        let start = UInt32.max - 4
        for offset in [RingLayout.requestConsumer, RingLayout.requestProducer, RingLayout.responseConsumer, RingLayout.responseProducer] {
            page.store32(start, at: offset)
        }
        let link = RingLink(server: server, memory: page, caller: .dom0)
        let guest = RingClientEndpoint(memory: page)
        let request = frame(Wire.read, 11, 0, Payload.bytes("/selftest/tx") + [0])
        guard guest.writeRequests(request[...]) == request.count else { return 1 }
        guard link.serve(server, time: time).shouldNotify else { return 2 }
        var reply: [UInt8] = []
        _ = guest.readResponses(appendingTo: &reply)
        guard reply == frame(Wire.read, 11, 0, Payload.bytes("inside")) else { return 3 }
        page.store32(start &+ 4000, at: RingLayout.requestProducer)
        guard link.serve(server, time: time).failure != nil, link.isStalled, guest.error == 2 else { return 4 }
        guest.requestReconnection()
        guard link.serve(server, time: time).reconnected, guest.isConnected, guest.error == 0,
              page.load32(at: RingLayout.requestProducer) == 0 else { return 5 }
        link.close(server)
        return 0
    }

    /// Encodes a message by hand: four little-endian u32 (type, request id, transaction id, length), payload.
    static func frame(_ type: UInt32, _ requestID: UInt32, _ transactionID: UInt32, _ payload: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        for word in [type, requestID, transactionID, UInt32(payload.count)] {
            for shift: UInt32 in [0, 8, 16, 24] { out.append(UInt8(truncatingIfNeeded: word >> shift)) }
        }
        return out + payload
    }
}
