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
/// every chunk neither changed — which `forEachChange` uses to compare big directories without
/// walking them. Every retained commit that changed a child of a big directory holds its own
/// copy of one chunk and of the chunk references, so both are kept small (issue 20: with 1,300
/// domains and a 4,096-commit history window, chunks of 64-128 entries and three index arrays per
/// version cost more than the nodes themselves).
public struct ChildList: RandomAccessCollection, Sendable {
    /// Largest list kept as one plain array.
    public static let flatLimit = 64
    /// Entries per chunk when a list is first chunked or a chunk is split.
    public static let chunkTarget = 32
    /// Largest chunk; a chunk growing past it is split in two.
    public static let chunkLimit = 64
    /// A chunk shrinking below this is merged with a neighbour when the two fit in `chunkTarget`.
    public static let chunkMergeBelow = 8

    /// The chunks of a large list with their total entries and name bytes (what DIRECTORY_PART
    /// offsets count). Positions inside the list are found by walking the chunks' counts (a walk
    /// over chunks, not entries): per-version index arrays would cost memory in every retained
    /// commit. A class, so that a list is one word in its node whichever form it has.
    final class ChunkIndex: @unchecked Sendable {
        let chunks: [ChildChunk]
        let count: Int
        let nameBytes: Int

        init(chunks: [ChildChunk]) {
            var count = 0
            var nameBytes = 0
            for chunk in chunks {
                count += chunk.entries.count
                nameBytes += chunk.nameBytes
            }
            self.chunks = chunks
            self.count = count
            self.nameBytes = nameBytes
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
        .chunked(ChunkIndex(chunks: chunks))
    }

    /// Always 0.
    public var startIndex: Int { 0 }
    /// The number of children.
    public var endIndex: Int { count }

    /// The child at `index` (O(chunks) for a chunked list: iterate rather than index in loops).
    public subscript(index: Int) -> Child {
        switch storage {
        case .flat(let entries):
            return entries[index]
        case .chunked(let large):
            precondition(index >= 0 && index < large.count, "child index out of range")
            var remaining = index
            for chunk in large.chunks {
                if remaining < chunk.entries.count { return chunk.entries[remaining] }
                remaining -= chunk.entries.count
            }
            preconditionFailure("chunk counts disagree with the list's count")
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
            return large.nameBytes
        }
    }

    /// The NUL-separated name list (`name\0name\0...`, DIRECTORY's payload), built straight
    /// from the names without an array per name.
    public var nameList: [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(nameBytes)
        for child in self {
            child.compactName.withUnsafeBufferPointer { out.append(contentsOf: $0) }
            out.append(0)
        }
        return out
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
            // the last chunk starting at or before `offset` (a walk over the chunks' byte counts)
            let chunks = large.chunks
            while chunkIndex + 1 < chunks.count && entryStart + chunks[chunkIndex].nameBytes <= offset {
                entryStart += chunks[chunkIndex].nameBytes
                chunkIndex += 1
            }
            entries = chunks.isEmpty ? [] : chunks[chunkIndex].entries
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

    /// `entries` with `name` replaced, added or removed, in a new array of exactly the size it
    /// needs: every version of a directory that a retained commit holds keeps its array, and
    /// copy-on-write growth would leave up to half of each one unused.
    private static func set(_ entries: [Child], _ name: [UInt8], _ node: Node?) -> [Child]? {
        let (index, found) = search(entries, name)
        var changed: [Child] = []
        if let node {
            changed.reserveCapacity(found ? entries.count : entries.count + 1)
            changed.append(contentsOf: entries[..<index])
            changed.append(found ? Child(compactName: entries[index].compactName, node: node) : Child(name: name, node: node))
            changed.append(contentsOf: entries[(found ? index + 1 : index)...])
        } else if found {
            changed.reserveCapacity(entries.count - 1)
            changed.append(contentsOf: entries[..<index])
            changed.append(contentsOf: entries[(index + 1)...])
        } else {
            return nil
        }
        return changed
    }

    /// The entries of `a` and of `b` outside the chunks the two share, as runs in name order
    /// (a flat list is one run). Both chunk sequences are sorted by name and a shared chunk has the
    /// same first name on both sides, so one walk over the two sequences pairs them, with no set
    /// of chunk identities to build and hash (a per-commit walk calls this for every changed
    /// directory).
    static func unsharedRuns(_ a: ChildList, _ b: ChildList) -> (left: [[Child]], right: [[Child]]) {
        guard case .chunked(let leftIndex) = a.storage, case .chunked(let rightIndex) = b.storage else {
            func whole(_ list: ChildList) -> [[Child]] {
                switch list.storage {
                case .flat(let entries): return [entries]
                case .chunked(let large): return large.chunks.map { $0.entries }
                }
            }
            return (whole(a), whole(b))
        }
        let left = leftIndex.chunks, right = rightIndex.chunks
        var leftRuns: [[Child]] = []
        var rightRuns: [[Child]] = []
        var i = 0
        var j = 0
        while i < left.count || j < right.count {
            if i < left.count, j < right.count, left[i] === right[j] {
                i += 1
                j += 1
                continue
            }
            if j == right.count {
                leftRuns.append(left[i].entries)
                i += 1
            } else if i == left.count {
                rightRuns.append(right[j].entries)
                j += 1
            } else {
                // The chunk with the smaller first name cannot be shared with anything ahead on
                // the other side; with equal first names (and different chunks) neither can.
                let order = left[i].entries[0].compactName.compare(right[j].entries[0].compactName)
                if order <= 0 {
                    leftRuns.append(left[i].entries)
                    i += 1
                }
                if order >= 0 {
                    rightRuns.append(right[j].entries)
                    j += 1
                }
            }
        }
        return (leftRuns, rightRuns)
    }

    /// Calls `body` for every name whose child differs between `a` and `b`, in name order: the
    /// old and new node (nil when the name is only on one side). Children the two versions share
    /// are skipped without a lookup: shared chunks as a whole, and in the rest the entries whose
    /// node is the same object. Costs one pass over the unshared entries, no allocation per name
    /// (a per-commit walk calls it for every changed directory).
    public static func forEachChange(_ a: ChildList, _ b: ChildList,
                                     _ body: (_ name: CompactBytes, _ old: Node?, _ new: Node?) -> Void) {
        /// Whether two runs hold the same names at the same places.
        func sameNamesInPlace(_ x: [Child], _ y: [Child]) -> Bool {
            guard x.count == y.count else { return false }
            for index in 0..<x.count where x[index].compactName != y[index].compactName { return false }
            return true
        }
        /// Reports the entries of two such runs whose nodes differ.
        func reportReplaced(_ x: [Child], _ y: [Child]) {
            for index in 0..<x.count where x[index].node !== y[index].node {
                body(y[index].compactName, x[index].node, y[index].node)
            }
        }
        // The common case of a rewritten value: two flat lists with the same names in place
        // (checked before `unsharedRuns`, which would wrap each list in an array).
        if case .flat(let x) = a.storage, case .flat(let y) = b.storage, sameNamesInPlace(x, y) {
            reportReplaced(x, y)
            return
        }
        let (left, right) = unsharedRuns(a, b)
        // Likewise when the unshared runs (the one chunk a write copied, typically) pair up with
        // the same names in place.
        if left.count == right.count, (0..<left.count).allSatisfy({ sameNamesInPlace(left[$0], right[$0]) }) {
            for run in 0..<left.count { reportReplaced(left[run], right[run]) }
            return
        }
        // Otherwise each side's unshared entries are sorted: merge the two runs by name.
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
            if let x, let y, x.compactName == y.compactName {
                if x.node !== y.node { body(y.compactName, x.node, y.node) }
                le += 1
                re += 1
            } else if let x, y == nil || x.compactName.precedes(y!.compactName) {
                body(x.compactName, x.node, nil)
                le += 1
            } else if let y {
                body(y.compactName, nil, y.node)
                re += 1
            }
        }
    }

    /// Estimated bytes of the child entries `b` does not share with `a`: every entry of a flat
    /// list (the array is copied whole on a change), the entries of unshared chunks otherwise;
    /// `entryBytes` each plus the name.
    public static func copiedEntryBytes(_ b: ChildList, since a: ChildList, entryBytes: Int) -> Int {
        func bytes(_ run: [Child]) -> Int {
            var total = 0
            for entry in run { total += entryBytes + entry.compactName.count }
            return total
        }
        if case .flat(let entries) = b.storage { return bytes(entries) }  // copied whole on a change
        var total = 0
        for run in unsharedRuns(a, b).right { total += bytes(run) }
        return total
    }

    /// The names, sorted, that may differ between `a` and `b`: every name of either list except
    /// those in chunks the two lists share (a shared chunk maps its names to the same nodes in
    /// both). For small lists that is simply the union of both lists' names.
    public static func unsharedNames(_ a: ChildList, _ b: ChildList) -> [[UInt8]] {
        // Each list's names outside shared chunks are already sorted: merge the two runs.
        let (leftRuns, rightRuns) = unsharedRuns(a, b)
        let left = leftRuns.flatMap { $0.map { $0.name } }
        let right = rightRuns.flatMap { $0.map { $0.name } }
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
