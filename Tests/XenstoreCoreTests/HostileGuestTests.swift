// Hostile guests: attacks that tried to make the server do unbounded work or hold unbounded memory, with their bounds.

import Testing
import XenstoreStore
import XenstoreWire
@testable import XenstoreServer

@Suite struct DirectoryPartCostTests {
    /// The DIRECTORY_PART slice as the old implementation computed it from the whole joined list:
    /// the reference the chunk walk must agree with, byte for byte.
    static func referenceSlice(_ names: [[UInt8]], offset: Int, maxBytes: Int) -> (bytes: [UInt8], atEnd: Bool) {
        let list = Payload.join(names)
        if offset >= list.count { return ([], true) }
        var length = 0
        var position = offset
        while position < list.count {
            var end = position
            while end < list.count && list[end] != 0 { end += 1 }
            if length + (end - position) >= maxBytes { break }
            length += end - position + 1
            position = end + 1
        }
        return (Array(list[offset..<(offset + length)]), offset + length >= list.count)
    }

    /// Every offset (including ones inside names and past the end) of flat and chunked lists gives
    /// the same slice as the reference.
    @Test(arguments: [5, 128, 129, 700])
    func sliceAgreesWithTheJoinedList(count: Int) {
        let gen = GenerationCounter()
        var rng = SplitMix64(seed: UInt64(count))
        var names: Set<String> = []
        while names.count < count { names.insert("n" + String(rng.below(100_000)) + String(repeating: "x", count: rng.below(30))) }
        let sorted = names.map { b($0) }.sorted { $0.lexicographicallyPrecedes($1) }
        let list = ChildList(sorted.map { Child(name: $0, node: node("", gen: gen)) })
        let total = Payload.join(sorted).count
        for maxBytes in [40, 4000] {
            var offset = 0
            while offset <= total + 3 {
                let slice = list.nameListSlice(fromByte: offset, maxBytes: maxBytes)
                let expected = DirectoryPartCostTests.referenceSlice(sorted, offset: offset, maxBytes: maxBytes)
                #expect(slice.bytes == expected.bytes && slice.atEnd == expected.atEnd, "offset \(offset)")
                offset += 1 + rng.below(7)
            }
        }
    }

    /// Attack: many DIRECTORY_PART calls on a 5,000-entry directory. Reading it whole takes
    /// about 19 calls; reading it 200 times over, 3,800. The entries examined stay within the
    /// names returned plus one chunk per call (each call used to rebuild the whole list: 5,000
    /// entries per call, 19 million in all).
    @Test func largeDirectoryIsServedInLinearTotalWork() throws {
        let server = Server(time: 1_700_000_000)
        let c = TestClient(server)
        let tx = c.start()
        var names: [String] = []
        for i in 0..<5000 {
            let name = "device-" + String(100_000 + i)
            names.append(name)
            #expect(c.write("/big/\(name)", "", tx: tx).isOK)
        }
        #expect(c.end(tx).isOK)
        var calls = 0
        var entriesReturned = 0
        let before = server.counters.directoryPartEntriesVisited
        for _ in 0..<200 {
            var collected: [String] = []
            var offset = 0
            while true {
                calls += 1
                let reply = c.request(.directoryPart, args("/big", "\(offset)"))
                try #require(reply.error == nil)
                var strings = reply.strings
                strings.removeFirst()  // generation
                let atEnd = strings.last == ""
                if atEnd { strings.removeLast() }
                collected += strings
                offset += strings.reduce(0) { $0 + $1.utf8.count + 1 }
                if atEnd { break }
                try #require(!strings.isEmpty)
            }
            entriesReturned += collected.count
            #expect(collected == names)
        }
        let visited = server.counters.directoryPartEntriesVisited - before
        #expect(calls < 200 * 25)
        // One entry per name returned, one that did not fit per call, one chunk to find the offset.
        #expect(visited <= entriesReturned + calls * (1 + ChildList.chunkLimit))
    }
}
