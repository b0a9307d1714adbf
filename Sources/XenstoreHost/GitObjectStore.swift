// Every object of a git repository as real git may leave it: loose files, packs, and alternate object directories.

#if canImport(Glibc)
import Glibc
#endif
import XenstoreStore

/// Read access to the objects of a repository: `objects/XX/…` loose files, `objects/pack/*.pack`
/// with their indexes, and the object directories listed in `objects/info/alternates` (as
/// `git clone --shared` leaves them). Packs that appear later (a `git repack` or `git gc` while
/// the daemon runs) are found on the next lookup that misses.
final class GitObjectStore {
    /// The repository's own `objects` directory, then its alternates.
    let directories: [String]
    private var packs: [String: GitPack] = [:]
    /// Names of the packs in `packs`, newest scan order (git's own order does not matter here).
    private var packOrder: [String] = []

    /// Depth of nested REF_DELTA lookups across packs (each level is a whole chain).
    private static let maximumExternalDepth = 64

    /// Opens the object directories below `gitDirectory` and reads every pack index.
    /// Throws when an alternates file or a pack cannot be used.
    init(gitDirectory: String) throws(DatabaseError) {
        let own = gitDirectory + "/objects"
        var directories = [own]
        if let text = GitObjectStore.readText(own + "/info/alternates") {
            for line in text.split(separator: "\n") where !line.hasPrefix("#") && !line.isEmpty {
                let path = line.hasPrefix("/") ? String(line) : own + "/" + line
                guard access(path, F_OK) == 0 else {
                    throw .corrupt("objects/info/alternates names \(path), which does not exist")
                }
                directories.append(path)
            }
        }
        self.directories = directories
        if let problem = rescanPacks() { throw .corrupt(problem) }
    }

    /// Reads the pack directories again, keeping packs already open; returns the first problem
    /// found with a new pack (which is then skipped), or nil.
    @discardableResult
    func rescanPacks() -> String? {
        var problem: String? = nil
        var seen: Set<String> = []
        for directory in directories {
            let packDirectory = directory + "/pack"
            for file in GitObjectStore.listDirectory(packDirectory) where file.hasSuffix(".idx") {
                let name = String(file.dropLast(4))
                let key = packDirectory + "/" + name
                seen.insert(key)
                if packs[key] != nil { continue }
                do throws(GitPackError) {
                    packs[key] = try GitPack(directory: packDirectory, name: name)
                    packOrder.append(key)
                } catch {
                    if problem == nil { problem = "\(packDirectory): \(error)" }
                }
            }
        }
        // Packs removed by a repack are dropped; their objects are in the newer pack.
        packOrder.removeAll { key in
            if seen.contains(key) { return false }
            packs[key] = nil
            return true
        }
        return problem
    }

    /// Whether the repository's own object directory holds no object at all (no loose object, no pack).
    var isEmpty: Bool {
        guard packOrder.isEmpty else { return false }
        let own = directories[0]
        return GitObjectStore.listDirectory(own).allSatisfy { fanout in
            fanout.count != 2 || GitObjectStore.listDirectory(own + "/" + fanout).isEmpty
        }
    }

    /// Number of packs in use.
    var packCount: Int { packOrder.count }

    /// The path of loose object `id` in `directory`.
    static func loosePath(_ directory: String, _ id: ObjectID) -> String {
        let hex = String(decoding: id.hex, as: UTF8.self)
        return directory + "/" + hex.prefix(2) + "/" + hex.dropFirst(2)
    }

    /// Reads object `id` wherever it is stored, verified against its id; nil when absent or damaged.
    func read(_ id: ObjectID) -> (type: String, body: [UInt8])? {
        if let found = read(id, depth: 0) { return found }
        rescanPacks()
        return read(id, depth: 0)
    }

    private func read(_ id: ObjectID, depth: Int) -> (type: String, body: [UInt8])? {
        guard depth <= GitObjectStore.maximumExternalDepth else { return nil }
        for directory in directories {
            if let found = readLoose(GitObjectStore.loosePath(directory, id)), GitObjectStore.verify(found, id) {
                return found
            }
        }
        for key in packOrder {
            guard let pack = packs[key], pack.contains(id) else { continue }
            if let found = pack.read(id, external: { self.read($0, depth: depth + 1) }), GitObjectStore.verify(found, id) {
                return found
            }
        }
        return nil
    }

    /// Whether `id` is stored (loose or packed), without reading it.
    func contains(_ id: ObjectID) -> Bool {
        for directory in directories where access(GitObjectStore.loosePath(directory, id), F_OK) == 0 { return true }
        return packOrder.contains { packs[$0]?.contains(id) == true }
    }

    /// Every stored id starting with the lowercase hex digits `prefix` (4 to 39 of them).
    func ids(withHexPrefix prefix: String) -> [ObjectID] {
        let bytes = Array(prefix.utf8)
        var found: Set<ObjectID> = []
        for directory in directories {
            let fanout = String(prefix.prefix(2))
            for file in GitObjectStore.listDirectory(directory + "/" + fanout) where file.count == 38 {
                if let id = ObjectID(hex: Array((fanout + file).utf8)), id.hex.starts(with: bytes) { found.insert(id) }
            }
        }
        for key in packOrder { found.formUnion(packs[key]?.ids(withHexPrefix: bytes) ?? []) }
        return Array(found)
    }

    /// Whether a type word and body hash to `id` (anything else is treated as missing, never returned).
    static func verify(_ object: (type: String, body: [UInt8]), _ id: ObjectID) -> Bool {
        let type: GitObjectType
        switch object.type {
        case "blob": type = .blob
        case "tree": type = .tree
        case "commit": type = .commit
        default: return false  // tags are never part of a store's history
        }
        return GitEncoding.objectID(type, body: object.body) == id
    }

    private func readLoose(_ path: String) -> (type: String, body: [UInt8])? {
        guard let compressed = GitObjectStore.readFile(path),
              let raw = Zlib.inflate(compressed, limit: GitPack.maximumObjectSize + 64),
              let nul = raw.firstIndex(of: 0), let space = raw[..<nul].firstIndex(of: 0x20) else { return nil }
        let declared = Int(String(decoding: raw[(space + 1)..<nul], as: UTF8.self))
        guard declared == raw.count - nul - 1 else { return nil }
        return (String(decoding: raw[..<space], as: UTF8.self), Array(raw[(nul + 1)...]))
    }

    // MARK: - Files

    /// The names in a directory (without `.` and `..`); empty when it cannot be read.
    static func listDirectory(_ path: String) -> [String] {
        guard let directory = opendir(path) else { return [] }
        defer { closedir(directory) }
        var names: [String] = []
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }

    /// A whole file, or nil when it cannot be opened.
    static func readFile(_ path: String) -> [UInt8]? {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var out: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if count < 0 && errno == EINTR { continue }
            if count < 0 { return nil }
            if count == 0 { break }
            out.append(contentsOf: buffer[0..<count])
        }
        return out
    }

    /// A whole file as text, or nil.
    static func readText(_ path: String) -> String? {
        readFile(path).map { String(decoding: $0, as: UTF8.self) }
    }
}
