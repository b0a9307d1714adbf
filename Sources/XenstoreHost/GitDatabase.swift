// The on-disk git repository backend: loose zlib objects plus refs/heads/main, readable by real git.

#if canImport(Glibc)
import Glibc
#endif
import CHost
import XenstoreStore

/// Errors of the git database (at startup, or when a commit cannot be made durable).
public enum DatabaseError: Error, CustomStringConvertible {
    case io(String, Int32)
    case corrupt(String)

    public var description: String {
        switch self {
        case .io(let what, let code): return "\(what): \(String(cString: strerror(code)))"
        case .corrupt(let what): return "corrupt database: \(what)"
        }
    }
}

/// A git repository in `DIR/.git` (with `DIR` as its work tree, so `git checkout REV && ls -R`
/// shows a revision) into which every commit of the store is written.
///
/// Each commit costs one batch: its new objects are written as loose objects (temp file +
/// rename, never overwritten), then `refs/heads/main` is replaced by rename, then one
/// `syncfs` makes the batch durable. A crash leaves at worst unreferenced objects behind.
public final class GitDatabase {
    /// The work-tree directory.
    public let directory: String
    private let gitDirectory: String
    private var knownObjects: Set<ObjectID> = []
    private var lastWritten: ObjectID?
    /// The tree of `lastWritten`: all its objects are stored, so the next batch skips what it shares.
    private var lastWrittenRoot: Node?
    private var lastState: [UInt8]?
    private var stateDirty = false
    private var directoryFD: Int32 = -1
    /// The branch the daemon advances.
    public static let branch = "refs/heads/main"

    /// Opens (creating if needed) the repository at `directory`.
    public init(directory: String) throws {
        self.directory = directory
        self.gitDirectory = directory + "/.git"
        for path in [directory, gitDirectory, gitDirectory + "/objects", gitDirectory + "/refs",
                     gitDirectory + "/refs/heads", gitDirectory + "/refs/tags"] {
            if mkdir(path, 0o755) != 0 && errno != EEXIST { throw DatabaseError.io("mkdir \(path)", errno) }
        }
        if access(gitDirectory + "/HEAD", F_OK) != 0 {
            try writeFile(gitDirectory + "/HEAD", Array("ref: \(GitDatabase.branch)\n".utf8))
            try writeFile(gitDirectory + "/config", Array(
                "[core]\n\trepositoryformatversion = 0\n\tfilemode = true\n\tbare = false\n".utf8))
            try writeFile(gitDirectory + "/description", Array("Xenstore history written by xenstored\n".utf8))
        }
        directoryFD = open(gitDirectory, O_RDONLY | O_DIRECTORY)
    }

    deinit {
        if directoryFD >= 0 { close(directoryFD) }
    }

    /// The commit id `refs/heads/main` points at, if the repository has one.
    public func headID() throws -> ObjectID? {
        guard let bytes = readFile(gitDirectory + "/" + GitDatabase.branch) else { return nil }
        let hex = Array(bytes.prefix(40))
        guard let id = ObjectID(hex: hex) else { throw DatabaseError.corrupt("bad ref \(GitDatabase.branch)") }
        return id
    }

    /// Loads the head commit and its tree, or returns nil for an empty repository.
    public func loadHead(generations: GenerationCounter) throws -> (record: CommitRecord, id: ObjectID, root: Node)? {
        guard let id = try headID() else { return nil }
        guard let (type, body) = readObject(id), type == "commit" else {
            throw DatabaseError.corrupt("head commit \(hexString(id)) missing")
        }
        let record: CommitRecord
        do { record = try GitDecoding.parseCommit(body, id: id) } catch {
            throw DatabaseError.corrupt("head commit \(hexString(id)): \(error)")
        }
        let root: Node
        do {
            root = try GitDecoding.loadTree(record.tree, generations: generations) { objectID in
                self.readObject(objectID)?.body
            }
        } catch {
            throw DatabaseError.corrupt("tree of \(hexString(id)): \(error)")
        }
        lastWritten = id
        // Every subtree id of the loaded tree is on disk already.
        Tree.walk(root) { _, node in
            knownObjects.insert(GitEncoding.treeID(node))
        }
        return (record, id, root)
    }

    /// Reads a stored commit record.
    public func commitRecord(_ id: ObjectID) -> CommitRecord? {
        guard let (type, body) = readObject(id), type == "commit" else { return nil }
        return try? GitDecoding.parseCommit(body, id: id)
    }

    /// Loads the tree of a stored commit.
    public func tree(of record: CommitRecord, generations: GenerationCounter) -> Node? {
        let root = try? GitDecoding.loadTree(record.tree, generations: generations) { self.readObject($0)?.body }
        if let root {
            Tree.walk(root) { _, node in knownObjects.insert(GitEncoding.treeID(node)) }
        }
        return root
    }

    /// Loads a stored commit as a detached commit of `history` (for restore, revert and merge).
    public func loadCommit(_ id: ObjectID, into history: History) -> Commit? {
        guard let record = commitRecord(id), let root = tree(of: record, generations: history.generations) else {
            return nil
        }
        return history.storedCommit(record, id: id, root: root)
    }

    /// Resolves a revision: a full or abbreviated (at least 4 digits) commit id, `main`/`HEAD`,
    /// any ref under refs/, each optionally followed by `~N` (N first-parent steps back).
    public func resolve(_ revision: String) -> ObjectID? {
        var name = Substring(revision)
        var steps = 0
        if let tilde = name.firstIndex(of: "~") {
            steps = Int(name[name.index(after: tilde)...]) ?? (name.index(after: tilde) == name.endIndex ? 1 : -1)
            if steps < 0 { return nil }
            name = name[..<tilde]
        }
        var id: ObjectID? = nil
        if name == "HEAD" || name == "main" {
            id = try? headID()
        } else if let bytes = readFile(gitDirectory + "/" + name) ?? readFile(gitDirectory + "/refs/heads/" + name)
                    ?? readFile(gitDirectory + "/refs/remotes/" + name) ?? readFile(gitDirectory + "/refs/tags/" + name) {
            id = ObjectID(hex: Array(bytes.prefix(40)))
        } else if name.count == 40 {
            id = ObjectID(hex: Array(name.utf8))
        } else if name.count >= 4, name.count < 40 {
            let hex = String(name).lowercased()
            let directory = gitDirectory + "/objects/" + hex.prefix(2)
            var matches: [ObjectID] = []
            if let dir = opendir(directory) {
                while let entry = readdir(dir) {
                    let file = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                        String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
                    }
                    if file.count == 38, (String(hex.prefix(2)) + file).hasPrefix(hex),
                       let candidate = ObjectID(hex: Array((String(hex.prefix(2)) + file).utf8)),
                       commitRecord(candidate) != nil {
                        matches.append(candidate)
                    }
                }
                closedir(dir)
            }
            id = matches.count == 1 ? matches[0] : nil
        }
        while steps > 0, let current = id {
            id = commitRecord(current)?.parents.first
            steps -= 1
        }
        return id
    }

    /// Writes every commit from `head` back to the last written one (with their trees) and
    /// moves `refs/heads/main` to `head`, durably.
    public func persist(head: Commit, history: History) throws {
        try persist(head: head, history: history, state: nil)
    }

    /// File in the git directory holding the daemon's connection state (not a git object: it is
    /// not history, and git ignores unknown files there).
    public static let stateFile = "xenstored-state"

    /// The connection state saved by the last `persist`, or nil.
    public func loadState() -> [UInt8]? {
        readFile(gitDirectory + "/" + GitDatabase.stateFile)
    }

    /// Like `persist(head:history:)`, and replaces the saved connection state with `state` in the
    /// same batch (renamed into place before the one syncfs); nil keeps the current state.
    public func persist(head: Commit, history: History, state: [UInt8]?) throws {
        if let state, state != lastState {
            let temporary = gitDirectory + "/" + GitDatabase.stateFile + ".tmp"
            try writeFile(temporary, state)
            guard rename(temporary, gitDirectory + "/" + GitDatabase.stateFile) == 0 else {
                throw DatabaseError.io("rename state", errno)
            }
            lastState = state
            stateDirty = true
        }
        // Unwritten commits, following all in-memory parents, oldest first.
        let pending = history.unstoredCommits(from: head) { $0 == lastWritten || knownObjects.contains($0) }
        if pending.isEmpty {
            if stateDirty, directoryFD >= 0 { syncfs(directoryFD) }
            stateDirty = false
            return
        }
        var previous = lastWrittenRoot
        for commit in pending {
            defer { previous = commit.root }
            var failure: DatabaseError? = nil
            GitEncoding.forEachObject(commit.root, since: previous, skipping: { self.knownObjects.contains($0) }) { id, type, body in
                if failure != nil { return }
                do { try self.writeObject(id, type, body) } catch let error as DatabaseError { failure = error } catch {}
            }
            if let failure { throw failure }
            try writeObject(history.id(of: commit), .commit, history.commitBody(commit))
        }
        let headID = history.id(of: head)
        let temporary = gitDirectory + "/" + GitDatabase.branch + ".lock"
        try writeFile(temporary, headID.hex + [0x0A])
        guard rename(temporary, gitDirectory + "/" + GitDatabase.branch) == 0 else {
            throw DatabaseError.io("rename ref", errno)
        }
        if directoryFD >= 0 { syncfs(directoryFD) }
        stateDirty = false
        lastWritten = headID
        lastWrittenRoot = head.root
        if knownObjects.count > 1_000_000 { knownObjects.removeAll(keepingCapacity: true) }
    }

    // MARK: - Objects

    private func objectPath(_ id: ObjectID) -> (directory: String, file: String) {
        let hex = String(decoding: id.hex, as: UTF8.self)
        let directory = gitDirectory + "/objects/" + hex.prefix(2)
        return (directory, directory + "/" + hex.dropFirst(2))
    }

    /// Stores one object as a loose object (nothing is done if it is already there).
    public func writeObject(_ id: ObjectID, _ type: GitObjectType, _ body: [UInt8]) throws {
        if knownObjects.contains(id) { return }
        let (directory, file) = objectPath(id)
        if access(file, F_OK) == 0 {
            knownObjects.insert(id)
            return
        }
        if mkdir(directory, 0o755) != 0 && errno != EEXIST { throw DatabaseError.io("mkdir \(directory)", errno) }
        let raw = GitEncoding.header(type, length: body.count) + body
        let compressed = try deflate(raw)
        let temporary = file + ".tmp"
        try writeFile(temporary, compressed)
        guard rename(temporary, file) == 0 else { throw DatabaseError.io("rename \(file)", errno) }
        knownObjects.insert(id)
    }

    /// Points `refs/heads/main` at `head` and records the `shallow` commits (whose parents are
    /// not in the repository), for repositories written from another store (block export).
    public func setBranch(head: ObjectID, shallow: [ObjectID]) throws {
        try writeFile(gitDirectory + "/" + GitDatabase.branch, head.hex + [0x0A])
        let shallowPath = gitDirectory + "/shallow"
        if shallow.isEmpty {
            unlink(shallowPath)
        } else {
            try writeFile(shallowPath, shallow.flatMap { $0.hex + [0x0A] })
        }
        lastWritten = head
    }

    /// Reads and inflates a loose object: its type word and body.
    public func readObject(_ id: ObjectID) -> (type: String, body: [UInt8])? {
        guard let compressed = readFile(objectPath(id).file), let raw = inflate(compressed),
              let nul = raw.firstIndex(of: 0), let space = raw[..<nul].firstIndex(of: 0x20) else { return nil }
        let type = String(decoding: raw[..<space], as: UTF8.self)
        let body = Array(raw[(nul + 1)...])
        guard GitEncoding.objectID(type == "blob" ? .blob : type == "tree" ? .tree : .commit, body: body) == id else {
            return nil  // checksum mismatch: treat as missing rather than return wrong data
        }
        return (type, body)
    }

    // MARK: - Files and zlib

    private func writeFile(_ path: String, _ bytes: [UInt8]) throws {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        guard fd >= 0 else { throw DatabaseError.io("open \(path)", errno) }
        defer { close(fd) }
        var offset = 0
        while offset < bytes.count {
            let written = bytes[offset...].withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
            if written < 0 {
                if errno == EINTR { continue }
                throw DatabaseError.io("write \(path)", errno)
            }
            offset += written
        }
    }

    private func readFile(_ path: String) -> [UInt8]? {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var out: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if count < 0 && errno == EINTR { continue }
            if count <= 0 { break }
            out.append(contentsOf: buffer[0..<count])
        }
        return out
    }

    private func deflate(_ input: [UInt8]) throws -> [UInt8] {
        var length = compressBound(uLong(input.count))
        var output = [UInt8](repeating: 0, count: Int(length))
        let status = output.withUnsafeMutableBufferPointer { out in
            input.withUnsafeBufferPointer { source in
                compress2(out.baseAddress, &length, source.baseAddress, uLong(input.count), 1)
            }
        }
        guard status == Z_OK else { throw DatabaseError.corrupt("zlib compress failed (\(status))") }
        return Array(output[0..<Int(length)])
    }

    private func inflate(_ input: [UInt8]) -> [UInt8]? {
        var stream = z_stream()
        guard inflateInit_(&stream, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size)) == Z_OK else { return nil }
        defer { inflateEnd(&stream) }
        var output: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        var source = input
        return source.withUnsafeMutableBufferPointer { sourceBuffer -> [UInt8]? in
            stream.next_in = sourceBuffer.baseAddress
            stream.avail_in = uInt(sourceBuffer.count)
            while true {
                let status = chunk.withUnsafeMutableBufferPointer { out -> Int32 in
                    stream.next_out = out.baseAddress
                    stream.avail_out = uInt(out.count)
                    return CHost.inflate(&stream, Z_NO_FLUSH)
                }
                let produced = chunk.count - Int(stream.avail_out)
                output.append(contentsOf: chunk[0..<produced])
                if status == Z_STREAM_END { return output }
                if status != Z_OK { return nil }
            }
        }
    }
}

/// Hex text of an object id.
public func hexString(_ id: ObjectID) -> String { String(decoding: id.hex, as: UTF8.self) }
