// A node's sorted children: a plain array while small, shared fixed-size chunks once large.

/// A named child of a node.
public struct Child: Sendable {
    /// The child's name (one path component, never containing `/` or `.`), inline when short.
    public let compactName: CompactBytes
    /// The child node.
    public let node: Node

    /// The child's name as an array (a new one for a short name: compare with `compactName`).
    public var name: [UInt8] { compactName.array }

    /// Pairs a name with a node.
    public init(name: [UInt8], node: Node) {
        self.compactName = CompactBytes(name)
        self.node = node
    }

    /// Pairs a name already held compactly with a node.
    public init(compactName: CompactBytes, node: Node) {
        self.compactName = compactName
        self.node = node
    }
}

/// A run of consecutive children of a large directory. Chunks are immutable and shared between
/// every version of the directory that did not change them, so one write under a directory of
/// 10,000 domains copies one chunk and the chunk list, not 10,000 entries.
public final class ChildChunk: @unchecked Sendable {
    /// The entries, sorted by name; never empty.
    public let entries: [Child]
    /// Bytes of the entries' names, each counted with a terminating NUL (as C xenstored stores them).
    public let nameBytes: Int

    init(_ entries: [Child]) {
        self.entries = entries
        var bytes = 0
        for entry in entries { bytes += entry.compactName.count + 1 }
        self.nameBytes = bytes
    }
}

/// The children of a node, sorted by name bytes with no duplicates.
///
/// Up to `flatLimit` children are a plain array. Larger lists are a sequence of immutable
/// `ChildChunk`s of at most `chunkLimit` entries: replacing, adding or removing one child copies
/// one chunk plus the (count / chunk size) chunk references, and two versions of a list share
/// every chunk neither changed — which `unsharedNames` uses to compare big directories without
/// walking them.
public struct ChildList: RandomAccessCollection, Sendable {
    /// Largest list kept as one plain array.
    public static let flatLimit = 128
    /// Entries per chunk when a list is first chunked or a chunk is split.
    public static let chunkTarget = 64
    /// Largest chunk; a chunk growing past it is split in two.
    public static let chunkLimit = 128
    /// A chunk shrinking below this is merged with a neighbour when the two fit in `chunkTarget`.
    public static let chunkMergeBelow = 16

    /// The chunks of a large list, the index of the first entry of each, and the byte offset of
    /// each chunk's first name in the NUL-separated name list (what DIRECTORY_PART offsets count).
    /// A class, so that a list is one word in its node whichever form it has.
    final class ChunkIndex: @unchecked Sendable {
        let chunks: [ChildChunk]
        let starts: [Int]
        let byteStarts: [Int]
        let count: Int

        init(chunks: [ChildChunk], starts: [Int], byteStarts: [Int], count: Int) {
            self.chunks = chunks
            self.starts = starts
            self.byteStarts = byteStarts
            self.count = count
        }
    }

    enum Storage: Sendable {
        case flat([Child])
        case chunked(ChunkIndex)
    }

    let storage: Storage

    /// Number of children.
    public var count: Int {
        switch storage {
        case .flat(let entries): return entries.count
        case .chunked(let index): return index.count
        }
    }

    /// No children.
    public init() {
        storage = .flat([])
    }

    /// Wraps children already sorted by name with no duplicates.
    public init(_ sorted: [Child]) {
        if sorted.count <= ChildList.flatLimit {
            storage = .flat(sorted)
            return
        }
        // Evenly sized chunks of at most `chunkTarget` entries.
        let chunkCount = (sorted.count + ChildList.chunkTarget - 1) / ChildList.chunkTarget
        var chunks: [ChildChunk] = []
        chunks.reserveCapacity(chunkCount)
        var start = 0
        for index in 0..<chunkCount {
            let end = start + (sorted.count - start) / (chunkCount - index)
            chunks.append(ChildChunk(Array(sorted[start..<end])))
            start = end
        }
        storage = ChildList.chunkedStorage(chunks)
    }

    private init(chunks: [ChildChunk]) {
        storage = ChildList.chunkedStorage(chunks)
    }

    private static func chunkedStorage(_ chunks: [ChildChunk]) -> Storage {
        var starts: [Int] = []
        var byteStarts: [Int] = []
        starts.reserveCapacity(chunks.count)
        byteStarts.reserveCapacity(chunks.count)
        var position = 0
        var bytes = 0
        for chunk in chunks {
            starts.append(position)
            byteStarts.append(bytes)
            position += chunk.entries.count
            bytes += chunk.nameBytes
        }
        return .chunked(ChunkIndex(chunks: chunks, starts: starts, byteStarts: byteStarts, count: position))
    }

    /// Always 0.
    public var startIndex: Int { 0 }
    /// The number of children.
    public var endIndex: Int { count }

    /// The child at `index` (O(log chunks) for a chunked list).
    public subscript(index: Int) -> Child {
        switch storage {
        case .flat(let entries):
            return entries[index]
        case .chunked(let large):
            let chunks = large.chunks
            let starts = large.starts
            precondition(index >= 0 && index < count, "child index out of range")
            var low = 0
            var high = starts.count - 1
            while low < high {  // last chunk whose start is <= index
                let mid = (low + high + 1) / 2
                if starts[mid] <= index { low = mid } else { high = mid - 1 }
            }
            return chunks[low].entries[index - starts[low]]
        }
    }

    /// Iterates in order without per-element searches.
    public struct Iterator: IteratorProtocol {
        let list: ChildList
        var chunk = 0
        var offset = 0

        /// The next child, or nil at the end.
        public mutating func next() -> Child? {
            switch list.storage {
            case .flat(let entries):
                guard offset < entries.count else { return nil }
                offset += 1
                return entries[offset - 1]
            case .chunked(let large):
                let chunks = large.chunks
                guard chunk < chunks.count else { return nil }
                let child = chunks[chunk].entries[offset]
                offset += 1
                if offset == chunks[chunk].entries.count {
                    chunk += 1
                    offset = 0
                }
                return child
            }
        }
    }

    /// An iterator over the children in name order.
    public func makeIterator() -> Iterator { Iterator(list: self) }

    /// Bytes of all names, each counted with a NUL: the child part of C xenstored's node size.
    public var nameBytes: Int {
        switch storage {
        case .flat(let entries):
            var bytes = 0
            for entry in entries { bytes += entry.compactName.count + 1 }
            return bytes
        case .chunked(let large):
            let chunks = large.chunks
            let byteStarts = large.byteStarts
            guard let last = chunks.last else { return 0 }
            return byteStarts[byteStarts.count - 1] + last.nameBytes
        }
    }

    /// A slice of the NUL-separated name list (`name\0name\0...`) for DIRECTORY_PART: from byte
    /// `offset` (which may fall inside a name, as C xenstored allows), as many whole names as fit
    /// in fewer than `maxBytes` name bytes, each with its NUL. `atEnd` tells whether the slice
    /// reaches the end of the list; `visited` counts the entries examined, which is at most one
    /// chunk (or the flat list) plus the entries returned: a large directory served by many
    /// calls costs time linear in its size, never the whole list per call.
    public func nameListSlice(fromByte offset: Int, maxBytes: Int) -> (bytes: [UInt8], atEnd: Bool, visited: Int) {
        var visited = 0
        // Find the entry containing byte `offset`, and how far into its name the offset falls.
        var entries: [Child]
        var chunkIndex = 0
        var entryStart = 0
        switch storage {
        case .flat(let flat):
            entries = flat
        case .chunked(let large):
            let chunks = large.chunks
            let byteStarts = large.byteStarts
            var low = 0
            var high = byteStarts.count - 1
            while low < high {  // last chunk starting at or before `offset`
                let mid = (low + high + 1) / 2
                if byteStarts[mid] <= offset { low = mid } else { high = mid - 1 }
            }
            chunkIndex = low
            entries = chunks.isEmpty ? [] : chunks[low].entries
            entryStart = byteStarts.isEmpty ? 0 : byteStarts[low]
        }
        var index = 0
        while index < entries.count && entryStart + entries[index].compactName.count + 1 <= offset {
            entryStart += entries[index].compactName.count + 1
            index += 1
            visited += 1
        }
        var out: [UInt8] = []
        var skip = offset - entryStart  // bytes of the first name already sent
        while true {
            if index == entries.count {
                guard case .chunked(let large) = storage, chunkIndex + 1 < large.chunks.count else {
                    return (out, true, visited)
                }
                chunkIndex += 1
                entries = large.chunks[chunkIndex].entries
                index = 0
            }
            let name = entries[index].name
            visited += 1
            let part = name.count - skip
            if out.count + part >= maxBytes { return (out, false, visited) }
            out.append(contentsOf: name[skip...])
            out.append(0)
            skip = 0
            index += 1
        }
    }

    /// Position of `name` in a sorted array, or where it would be inserted.
    static func search(_ entries: [Child], _ name: [UInt8]) -> (index: Int, found: Bool) {
        var low = 0
        var high = entries.count
        while low < high {
            let mid = (low + high) / 2
            let order = entries[mid].compactName.compare(name)
            if order == 0 { return (mid, true) }
            if order < 0 { low = mid + 1 } else { high = mid }
        }
        return (low, false)
    }

    /// The chunk that holds `name` or would receive it: the last chunk whose first name is not
    /// after `name` (the first chunk for names before everything).
    private static func chunkIndex(_ chunks: [ChildChunk], _ name: [UInt8]) -> Int {
        var low = 0
        var high = chunks.count - 1
        while low < high {
            let mid = (low + high + 1) / 2
            if chunks[mid].entries[0].compactName.compare(name) > 0 { high = mid - 1 } else { low = mid }
        }
        return low
    }

    /// The child called `name`, if any (binary search).
    public func node(named name: [UInt8]) -> Node? {
        switch storage {
        case .flat(let entries):
            let (index, found) = ChildList.search(entries, name)
            return found ? entries[index].node : nil
        case .chunked(let large):
            let chunks = large.chunks
            let entries = chunks[ChildList.chunkIndex(chunks, name)].entries
            let (index, found) = ChildList.search(entries, name)
            return found ? entries[index].node : nil
        }
    }

    /// A list with the child `name` replaced or added (`node` non-nil) or removed (`node` nil);
    /// nil when removing a name that is not there.
    public func setting(_ name: [UInt8], to node: Node?) -> ChildList? {
        switch storage {
        case .flat(let entries):
            guard let changed = ChildList.set(entries, name, node) else { return nil }
            return ChildList(changed)
        case .chunked(let large):
            var chunks = large.chunks
            let position = ChildList.chunkIndex(chunks, name)
            guard let changed = ChildList.set(chunks[position].entries, name, node) else { return nil }
            if changed.count > ChildList.chunkLimit {
                let half = changed.count / 2
                chunks[position] = ChildChunk(Array(changed[..<half]))
                chunks.insert(ChildChunk(Array(changed[half...])), at: position + 1)
            } else if changed.isEmpty {
                chunks.remove(at: position)
            } else if changed.count < ChildList.chunkMergeBelow, chunks.count > 1 {
                // Merge with the smaller neighbour if the pair fits in one ordinary chunk.
                let neighbour = position + 1 < chunks.count
                    && (position == 0 || chunks[position + 1].entries.count < chunks[position - 1].entries.count)
                    ? position + 1 : position - 1
                let first = Swift.min(position, neighbour)
                let combined = first == position ? changed + chunks[neighbour].entries
                                                  : chunks[neighbour].entries + changed
                if combined.count <= ChildList.chunkTarget {
                    chunks[first] = ChildChunk(combined)
                    chunks.remove(at: first + 1)
                } else {
                    chunks[position] = ChildChunk(changed)
                }
            } else {
                chunks[position] = ChildChunk(changed)
            }
            let result = ChildList(chunks: chunks)
            if result.count <= ChildList.flatLimit / 2 { return ChildList(Array(result)) }
            return result
        }
    }

    private static func set(_ entries: [Child], _ name: [UInt8], _ node: Node?) -> [Child]? {
        var changed = entries
        let (index, found) = search(entries, name)
        if let node {
            if found {
                changed[index] = Child(compactName: entries[index].compactName, node: node)
            } else {
                changed.insert(Child(name: name, node: node), at: index)
            }
        } else if found {
            changed.remove(at: index)
        } else {
            return nil
        }
        return changed
    }

    /// The chunks two versions of a list share (empty unless both are chunked).
    static func sharedChunks(_ a: ChildList, _ b: ChildList) -> Set<ObjectIdentifier> {
        var shared: Set<ObjectIdentifier> = []
        if case .chunked(let leftIndex) = a.storage, case .chunked(let rightIndex) = b.storage {
            let left = leftIndex.chunks, right = rightIndex.chunks
            var leftChunks: Set<ObjectIdentifier> = []
            for chunk in left { leftChunks.insert(ObjectIdentifier(chunk)) }
            for chunk in right where leftChunks.contains(ObjectIdentifier(chunk)) {
                shared.insert(ObjectIdentifier(chunk))
            }
        }
        return shared
    }

    /// Calls `body` for every name whose child differs between `a` and `b`, in name order: the
    /// old and new node (nil when the name is only on one side). Children the two versions share
    /// are skipped without a lookup: shared chunks as a whole, and in the rest the entries whose
    /// node is the same object. Costs one pass over the unshared entries, no allocation per name
    /// (a per-commit walk calls it for every changed directory).
    public static func forEachChange(_ a: ChildList, _ b: ChildList,
                                     _ body: (_ name: [UInt8], _ old: Node?, _ new: Node?) -> Void) {
        // The common case of a rewritten value: two flat lists with the same names in place.
        if case .flat(let left) = a.storage, case .flat(let right) = b.storage, left.count == right.count {
            var index = 0
            while index < left.count, left[index].compactName.equals(right[index].compactName) { index += 1 }
            if index == left.count {
                for index in 0..<left.count where left[index].node !== right[index].node {
                    body(right[index].name, left[index].node, right[index].node)
                }
                return
            }
        }
        let shared = sharedChunks(a, b)
        func runs(_ list: ChildList) -> [[Child]] {
            switch list.storage {
            case .flat(let entries):
                return [entries]
            case .chunked(let large):
                let chunks = large.chunks
                var out: [[Child]] = []
                for chunk in chunks where !shared.contains(ObjectIdentifier(chunk)) { out.append(chunk.entries) }
                return out
            }
        }
        // Each side's unshared entries are sorted: merge the two runs by name.
        let left = runs(a)
        let right = runs(b)
        var (li, le, ri, re) = (0, 0, 0, 0)
        func skipEmpty(_ runs: [[Child]], _ run: inout Int, _ entry: inout Int) {
            while run < runs.count && entry == runs[run].count { run += 1; entry = 0 }
        }
        while true {
            skipEmpty(left, &li, &le)
            skipEmpty(right, &ri, &re)
            let x: Child? = li < left.count ? left[li][le] : nil
            let y: Child? = ri < right.count ? right[ri][re] : nil
            guard x != nil || y != nil else { return }
            if let x, let y, x.compactName.equals(y.compactName) {
                if x.node !== y.node { body(y.name, x.node, y.node) }
                le += 1
                re += 1
            } else if let x, y == nil || x.compactName.precedes(y!.compactName) {
                body(x.name, x.node, nil)
                le += 1
            } else if let y {
                body(y.name, nil, y.node)
                re += 1
            }
        }
    }

    /// Estimated bytes of the child entries `b` does not share with `a`: every entry of a flat
    /// list (the array is copied whole on a change), the entries of unshared chunks otherwise;
    /// `entryBytes` each plus the name.
    public static func copiedEntryBytes(_ b: ChildList, since a: ChildList, entryBytes: Int) -> Int {
        switch b.storage {
        case .flat(let entries):
            var bytes = 0
            for entry in entries { bytes += entryBytes + entry.compactName.count }
            return bytes
        case .chunked(let large):
            let chunks = large.chunks
            var old: Set<ObjectIdentifier> = []
            if case .chunked(let previousIndex) = a.storage {
                let previous = previousIndex.chunks
                for chunk in previous { old.insert(ObjectIdentifier(chunk)) }
            }
            var bytes = 0
            for chunk in chunks where !old.contains(ObjectIdentifier(chunk)) {
                bytes += (entryBytes - 1) * chunk.entries.count + chunk.nameBytes
            }
            return bytes
        }
    }

    /// The names, sorted, that may differ between `a` and `b`: every name of either list except
    /// those in chunks the two lists share (a shared chunk maps its names to the same nodes in
    /// both). For small lists that is simply the union of both lists' names.
    public static func unsharedNames(_ a: ChildList, _ b: ChildList) -> [[UInt8]] {
        let shared = sharedChunks(a, b)
        // Each list's names outside shared chunks are already sorted: merge the two runs.
        func names(_ list: ChildList) -> [[UInt8]] {
            switch list.storage {
            case .flat(let entries):
                return entries.map { $0.name }
            case .chunked(let large):
                let chunks = large.chunks
                var out: [[UInt8]] = []
                for chunk in chunks where !shared.contains(ObjectIdentifier(chunk)) {
                    for entry in chunk.entries { out.append(entry.name) }
                }
                return out
            }
        }
        let left = names(a)
        let right = names(b)
        var merged: [[UInt8]] = []
        merged.reserveCapacity(Swift.max(left.count, right.count))
        var i = 0
        var j = 0
        while i < left.count || j < right.count {
            if j == right.count || (i < left.count && left[i].lexicographicallyPrecedes(right[j])) {
                merged.append(left[i])
                i += 1
            } else if i == left.count || right[j].lexicographicallyPrecedes(left[i]) {
                merged.append(right[j])
                j += 1
            } else {
                merged.append(left[i])
                i += 1
                j += 1
            }
        }
        return merged
    }
}
