// Reading packfiles as real git writes them: version-2 indexes, whole objects, OFS_DELTA and REF_DELTA chains.

#if canImport(Glibc)
import Glibc
#endif
import XenstoreStore

/// A read-only memory mapping of a whole file (packs and their indexes are never rewritten in
/// place: git writes new ones and unlinks old ones, which leaves an existing mapping valid).
final class MappedFile {
    let bytes: UnsafeRawBufferPointer
    private let base: UnsafeMutableRawPointer?

    /// Maps `path`, or returns nil when it cannot be opened or mapped.
    init?(path: String) {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var status = stat()
        guard fstat(fd, &status) == 0, status.st_size > 0 else { return nil }
        let size = Int(status.st_size)
        guard let mapped = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), mapped != MAP_FAILED else { return nil }
        base = mapped
        bytes = UnsafeRawBufferPointer(start: mapped, count: size)
    }

    deinit {
        if let base { munmap(base, bytes.count) }
    }

    var count: Int { bytes.count }

    func u32(_ offset: Int) -> UInt32 {
        (UInt32(bytes[offset]) << 24) | (UInt32(bytes[offset + 1]) << 16) | (UInt32(bytes[offset + 2]) << 8) | UInt32(bytes[offset + 3])
    }
}

/// Why a packfile or its index was not usable.
enum GitPackError: Error, CustomStringConvertible {
    case badIndex(String)
    case badPack(String)

    var description: String {
        switch self {
        case .badIndex(let why): return "bad pack index: \(why)"
        case .badPack(let why): return "bad pack: \(why)"
        }
    }
}

/// One packfile (`objects/pack/pack-*.pack`) with its version-2 index (`.idx`).
final class GitPack {
    /// Pack object types (git's `object_type`).
    enum EntryType: UInt8 {
        case commit = 1, tree = 2, blob = 3, tag = 4, offsetDelta = 6, referenceDelta = 7

        /// The object's type word; nil for the two delta kinds.
        var word: String? {
            switch self {
            case .commit: return "commit"
            case .tree: return "tree"
            case .blob: return "blob"
            case .tag: return "tag"
            case .offsetDelta, .referenceDelta: return nil
            }
        }
    }

    /// The pack's file name without extension, e.g. `pack-1234…`.
    let name: String
    private let index: MappedFile
    private let pack: MappedFile
    /// Objects in the pack.
    let objectCount: Int
    private let idsStart = 8 + 256 * 4
    private var offsetsStart: Int { idsStart + objectCount * 20 + objectCount * 4 }
    private var largeOffsetsStart: Int { offsetsStart + objectCount * 4 }

    /// Longest delta chain followed (git's default maximum depth is 50; `--depth` allows 4095).
    static let maximumDeltaDepth = 10_000
    /// Largest object inflated (values are at most 4 KiB; trees of huge directories are large).
    static let maximumObjectSize = 256 << 20

    /// Opens `directory/name.idx` and `directory/name.pack` and checks their headers and sizes.
    init(directory: String, name: String) throws(GitPackError) {
        self.name = name
        guard let index = MappedFile(path: directory + "/" + name + ".idx") else { throw .badIndex("\(name).idx cannot be read") }
        guard let pack = MappedFile(path: directory + "/" + name + ".pack") else { throw .badPack("\(name).pack cannot be read") }
        self.index = index
        self.pack = pack
        // Index v2: ff 74 4f 63, version 2, 256 fan-out words, ids, CRCs, 4-byte offsets,
        // 8-byte offsets for entries whose 4-byte word has the top bit set, two trailing SHA-1s.
        guard index.count >= 8 + 256 * 4 + 40, index.u32(0) == 0xff74_4f63, index.u32(4) == 2 else {
            throw .badIndex("\(name).idx is not a version-2 pack index")
        }
        var previous: UInt32 = 0
        for bucket in 0..<256 {
            let value = index.u32(8 + bucket * 4)
            guard value >= previous else { throw .badIndex("\(name).idx fan-out is not monotonic") }
            previous = value
        }
        objectCount = Int(previous)
        let minimum = 8 + 256 * 4 + objectCount * 28 + 40
        guard index.count >= minimum else { throw .badIndex("\(name).idx is truncated") }
        let largeCount = (index.count - minimum) / 8
        guard index.count == minimum + largeCount * 8 else { throw .badIndex("\(name).idx has a bad size") }
        guard pack.count >= 32, pack.u32(0) == 0x5041_434b, [2, 3].contains(pack.u32(4)),
              Int(pack.u32(8)) == objectCount else {
            throw .badPack("\(name).pack header does not match its index")
        }
    }

    private func id(at position: Int) -> ObjectID {
        let start = idsStart + position * 20
        return ObjectID(bytes: Array(index.bytes[start..<(start + 20)]))
    }

    private func compare(_ position: Int, _ target: [UInt8]) -> Int {
        let start = idsStart + position * 20
        for offset in 0..<20 {
            let a = index.bytes[start + offset], b = target[offset]
            if a != b { return a < b ? -1 : 1 }
        }
        return 0
    }

    /// The pack offset of `id`, or nil when the pack does not hold it.
    func offset(of id: ObjectID) -> Int? {
        let target = id.bytes
        let first = Int(target[0])
        var low = first == 0 ? 0 : Int(index.u32(8 + (first - 1) * 4))
        var high = Int(index.u32(8 + first * 4))
        while low < high {
            let middle = (low + high) / 2
            let order = compare(middle, target)
            if order == 0 { return packOffset(at: middle) }
            if order < 0 { low = middle + 1 } else { high = middle }
        }
        return nil
    }

    private func packOffset(at position: Int) -> Int? {
        let word = index.u32(offsetsStart + position * 4)
        if word & 0x8000_0000 == 0 { return Int(word) }
        let slot = largeOffsetsStart + Int(word & 0x7fff_ffff) * 8
        guard slot + 8 <= index.count - 40 else { return nil }
        let value = (UInt64(index.u32(slot)) << 32) | UInt64(index.u32(slot + 4))
        return value < UInt64(pack.count - 20) ? Int(value) : nil
    }

    /// Every id in the pack that starts with the hex digits of `prefix` (lowercase, 4–39 digits).
    func ids(withHexPrefix prefix: [UInt8]) -> [ObjectID] {
        var found: [ObjectID] = []
        for position in 0..<objectCount {
            let candidate = id(at: position)
            if candidate.hex.starts(with: prefix) { found.append(candidate) }
        }
        return found
    }

    /// Whether the pack holds `id`.
    func contains(_ id: ObjectID) -> Bool { offset(of: id) != nil }

    /// One entry's header: type, inflated size, where its data (or delta base reference) starts.
    private func entryHeader(at offset: Int) -> (type: EntryType, size: Int, dataStart: Int)? {
        let end = pack.count - 20
        var position = offset
        guard position < end else { return nil }
        var byte = pack.bytes[position]
        position += 1
        guard let type = EntryType(rawValue: (byte >> 4) & 7) else { return nil }
        var size = Int(byte & 0x0f)
        var shift = 4
        while byte & 0x80 != 0 {
            guard position < end, shift < 56 else { return nil }
            byte = pack.bytes[position]
            position += 1
            size |= Int(byte & 0x7f) << shift
            shift += 7
        }
        return (type, size, position)
    }

    private func inflate(from start: Int, size: Int) -> [UInt8]? {
        let end = pack.count - 20
        guard start < end, size <= GitPack.maximumObjectSize, let base = pack.bytes.baseAddress else { return nil }
        return Zlib.inflate(base + start, available: end - start, expected: size, limit: size)
    }

    /// Reads object `id` (type word and body), following delta chains iteratively. A REF_DELTA
    /// base that is not in this pack is asked of `external` (other packs, loose objects).
    func read(_ id: ObjectID, external: (ObjectID) -> (type: String, body: [UInt8])?) -> (type: String, body: [UInt8])? {
        guard let start = offset(of: id) else { return nil }
        return read(at: start, external: external)
    }

    private func read(at start: Int, external: (ObjectID) -> (type: String, body: [UInt8])?) -> (type: String, body: [UInt8])? {
        // Walk down to a whole object, remembering each delta, then apply them from the base up.
        var deltas: [(start: Int, size: Int)] = []
        var offset = start
        var base: (type: String, body: [UInt8])? = nil
        while base == nil {
            guard deltas.count <= GitPack.maximumDeltaDepth, let header = entryHeader(at: offset) else { return nil }
            switch header.type {
            case .commit, .tree, .blob, .tag:
                guard let word = header.type.word, let body = inflate(from: header.dataStart, size: header.size) else { return nil }
                base = (word, body)
            case .offsetDelta:
                // Base offset: big-endian base-128 with an implicit +1 per continuation byte.
                var position = header.dataStart
                guard position < pack.count - 20 else { return nil }
                var byte = pack.bytes[position]
                position += 1
                var distance = Int(byte & 0x7f)
                while byte & 0x80 != 0 {
                    guard position < pack.count - 20, distance < (Int.max >> 8) else { return nil }
                    byte = pack.bytes[position]
                    position += 1
                    distance = ((distance + 1) << 7) | Int(byte & 0x7f)
                }
                guard distance > 0, distance <= offset else { return nil }
                deltas.append((position, header.size))
                offset -= distance
            case .referenceDelta:
                let position = header.dataStart
                guard position + 20 <= pack.count - 20 else { return nil }
                let baseID = ObjectID(bytes: Array(pack.bytes[position..<(position + 20)]))
                deltas.append((position + 20, header.size))
                if let local = self.offset(of: baseID), local != offset {
                    offset = local
                } else {
                    guard let found = external(baseID) else { return nil }
                    base = found
                }
            }
        }
        guard let whole = base else { return nil }
        var body = whole.body
        for delta in deltas.reversed() {
            guard let instructions = inflate(from: delta.start, size: delta.size),
                  let result = GitPack.applyDelta(instructions, to: body) else { return nil }
            body = result
        }
        return (whole.type, body)
    }

    /// Applies one git delta (source size, target size, copy/insert instructions) to `source`.
    static func applyDelta(_ delta: [UInt8], to source: [UInt8]) -> [UInt8]? {
        var position = 0
        func size() -> Int? {
            var value = 0
            var shift = 0
            while position < delta.count {
                let byte = delta[position]
                position += 1
                guard shift < 56 else { return nil }
                value |= Int(byte & 0x7f) << shift
                shift += 7
                if byte & 0x80 == 0 { return value }
            }
            return nil
        }
        guard let sourceSize = size(), sourceSize == source.count, let targetSize = size(),
              targetSize <= maximumObjectSize else { return nil }
        var target: [UInt8] = []
        target.reserveCapacity(targetSize)
        while position < delta.count {
            let opcode = delta[position]
            position += 1
            if opcode & 0x80 != 0 {
                var copyOffset = 0
                var copySize = 0
                for bit in 0..<4 where opcode & (1 << bit) != 0 {
                    guard position < delta.count else { return nil }
                    copyOffset |= Int(delta[position]) << (8 * bit)
                    position += 1
                }
                for bit in 0..<3 where opcode & (0x10 << bit) != 0 {
                    guard position < delta.count else { return nil }
                    copySize |= Int(delta[position]) << (8 * bit)
                    position += 1
                }
                if copySize == 0 { copySize = 0x10000 }
                guard copyOffset + copySize <= source.count, target.count + copySize <= targetSize else { return nil }
                target.append(contentsOf: source[copyOffset..<(copyOffset + copySize)])
            } else if opcode != 0 {
                let count = Int(opcode)
                guard position + count <= delta.count, target.count + count <= targetSize else { return nil }
                target.append(contentsOf: delta[position..<(position + count)])
                position += count
            } else {
                return nil  // opcode 0 is reserved
            }
        }
        return target.count == targetSize ? target : nil
    }
}
