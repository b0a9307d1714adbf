// Path bytes (or a prefix of them) as a dictionary key, hashed in one pass rather than byte by byte.

/// The bytes of an absolute node path, or of one of its ancestors (a prefix of the same bytes,
/// so naming an ancestor allocates nothing), as a `Dictionary` key.
///
/// `[UInt8]`'s own `Hashable` feeds the hasher one byte at a time; this hashes the whole run in
/// one call, which matters where every request of a transaction looks up its path and each of
/// its ancestors (`TransactionLog`).
struct PathKey: Hashable {
    /// The path bytes.
    let bytes: ArraySlice<UInt8>

    /// The key of a whole path.
    init(_ bytes: [UInt8]) { self.bytes = bytes[...] }

    /// The key of a prefix of a path's bytes.
    init(_ bytes: ArraySlice<UInt8>) { self.bytes = bytes }

    static func == (left: PathKey, right: PathKey) -> Bool {
        guard left.bytes.count == right.bytes.count else { return false }
        return left.bytes.withUnsafeBytes { a in
            right.bytes.withUnsafeBytes { b in
                // Eight bytes at a time, then the tail.
                var index = 0
                while index + 8 <= a.count {
                    if a.loadUnaligned(fromByteOffset: index, as: UInt64.self)
                        != b.loadUnaligned(fromByteOffset: index, as: UInt64.self) { return false }
                    index += 8
                }
                while index < a.count {
                    if a[index] != b[index] { return false }
                    index += 1
                }
                return true
            }
        }
    }

    func hash(into hasher: inout Hasher) {
        bytes.withUnsafeBytes { hasher.combine(bytes: $0) }
    }

    /// The strict ancestors of the absolute path `path`, root first, as keys that share its
    /// bytes: `/a/b/c` gives `/`, `/a`, `/a/b`; the root has none.
    static func ancestors(of path: [UInt8]) -> Ancestors { Ancestors(path: path) }

    /// The ancestors of a path, produced one by one without allocating.
    struct Ancestors: Sequence, IteratorProtocol {
        let path: [UInt8]
        var index = 0

        mutating func next() -> PathKey? {
            if index == 0 {
                index = 1
                return path.count > 1 ? PathKey(path[0..<1]) : nil
            }
            while index < path.count {
                let at = index
                index += 1
                if path[at] == 0x2F { return PathKey(path[0..<at]) }
            }
            return nil
        }
    }
}
