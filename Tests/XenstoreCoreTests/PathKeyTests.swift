// Path keys: ancestors as prefixes of the same bytes, and equality and hashing that agree with the byte arrays they stand for.

import Testing
@testable import XenstoreServer

@Suite struct PathKeyTests {
    /// `/a/bc/d` has the ancestors `/`, `/a`, `/a/bc`; `/x` has `/`; the root has none.
    @Test func ancestorsArePrefixesRootFirst() {
        func ancestors(_ path: String) -> [String] {
            PathKey.ancestors(of: Array(path.utf8)).map { String(decoding: Array($0.bytes), as: UTF8.self) }
        }
        #expect(ancestors("/a/bc/d") == ["/", "/a", "/a/bc"])
        #expect(ancestors("/x") == ["/"])
        #expect(ancestors("/") == [])
        #expect(ancestors("/local/domain/7/device/vbd/51712/state")
                == ["/", "/local", "/local/domain", "/local/domain/7", "/local/domain/7/device",
                    "/local/domain/7/device/vbd", "/local/domain/7/device/vbd/51712"])
    }

    /// A key made from a prefix of one path equals, and hashes like, the key of that prefix as
    /// a path of its own; different bytes make different keys.
    @Test func prefixKeysMatchWholePathKeys() {
        let path = Array("/local/domain/7/name".utf8)
        var table: [PathKey: Int] = [:]
        for (index, ancestor) in PathKey.ancestors(of: path).enumerated() { table[ancestor] = index }
        #expect(table[PathKey(Array("/".utf8))] == 0)
        #expect(table[PathKey(Array("/local".utf8))] == 1)
        #expect(table[PathKey(Array("/local/domain".utf8))] == 2)
        #expect(table[PathKey(Array("/local/domain/7".utf8))] == 3)
        #expect(table[PathKey(Array("/local/domain/8".utf8))] == nil)
        #expect(table[PathKey(Array("/local/domai".utf8))] == nil)
        #expect(PathKey(path) != PathKey(path[0..<(path.count - 1)]))
    }

    /// Node paths compare and hash by their bytes.
    @Test func nodePathsHashByBytes() {
        let one = NodePath(trusted: Array("/vm/1/name".utf8))
        let same = NodePath(components: [Array("vm".utf8), Array("1".utf8), Array("name".utf8)])
        #expect(one == same)
        #expect(Set([one, same]).count == 1)
        #expect(one != NodePath(trusted: Array("/vm/1/nam".utf8)))
    }
}
