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
        left.bytes.count == right.bytes.count && left.bytes.elementsEqual(right.bytes)
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
