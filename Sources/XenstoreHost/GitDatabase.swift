// The on-disk git repository backend: loose zlib objects plus refs/heads/main, readable by real git.

#if canImport(Glibc)
import Glibc
#endif
import CHost
import XenstoreServer
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
/// rename, never overwritten), then `refs/heads/main` is replaced by rename under git's lock
/// file protocol (`main.lock`, created exclusively), then one `syncfs` makes the batch durable.
/// A crash leaves at worst unreferenced objects behind. Everything real git may leave in a
/// repository is read: loose objects, packs (after `git gc`, `git repack`, a clone over the
/// pack protocol), `packed-refs` and alternate object directories.
public final class GitDatabase {
    /// The work-tree directory.
    public let directory: String
    private let gitDirectory: String
    private let objects: GitObjectStore
    private var knownObjects: Set<ObjectID> = []
    private var lastWritten: ObjectID?
    /// The tree of `lastWritten`: all its objects are stored, so the next batch skips what it shares.
    private var lastWrittenRoot: Node?
    private var lastState: [UInt8]?
    private var directoryFD: Int32 = -1
    /// Whether this open created the repository (only then may a fresh store be written into it).
    public let isNew: Bool
    /// Asked by squashing stores; git keeps every commit, so nothing is done with it.
    public var pinned: () -> [ObjectID] = { [] }
    /// The branch the daemon advances.
    public static let branch = "refs/heads/main"
    /// Default of `reserveBytes`: each commit's objects are separate files (a 4 KiB block each
    /// on most file systems), and a round of many writers admitted together needs headroom.
    public static let defaultReserveBytes: UInt64 = 8 << 20
    /// Free bytes below which the file system counts as full for requests that grow the store.
    public var reserveBytes: UInt64 = GitDatabase.defaultReserveBytes
    /// Free inodes below which the file system counts as full (one file per new object).
    public static let reserveInodes: UInt64 = 4096
    /// How long a persist waits for a `main.lock` held by a git command before it gives up.
    static let lockWaitMicroseconds: UInt32 = 5_000_000
    /// A `main.lock` older than this at startup was left by a crash and is removed.
    static let staleLockSeconds = 60
    /// Settings of every repository we create or open: no git command we run (fetch, merge)
    /// may start an automatic gc or maintenance behind the daemon.
    static let configuration = "[gc]\n\tauto = 0\n\tautoDetach = false\n[maintenance]\n\tauto = false\n[receive]\n\tautogc = false\n"

    /// Default of `repackThreshold`.
    public static let defaultRepackThreshold = 20_000
    /// Once this many loose objects were written since the last repack, a background
    /// `git repack -d` packs them (with `-a` too once there are `consolidatePacks` packs), so
    /// the repository's file count stays bounded; 0 never repacks.
    public var repackThreshold = GitDatabase.defaultRepackThreshold
    /// Number of packs at which a background repack rewrites them all into one.
    static let consolidatePacks = 16
    private var looseSinceRepack = 0
    private var repackProcess: pid_t?
    /// Background repacks started since opening.
    public private(set) var repacksStarted = 0
    /// Where the database reports background events (a repack that failed or could not start).
    public var log: (String) -> Void = { _ in }

    /// Opens the repository at `directory`, creating it when `directory/.git` does not exist.
    /// An existing repository must be one git can read; it is never reinitialised.
    public init(directory: String) throws(DatabaseError) {
        self.directory = directory
        self.gitDirectory = directory + "/.git"
        let existed = access(gitDirectory, F_OK) == 0
        if existed {
            guard access(gitDirectory + "/HEAD", F_OK) == 0 else {
                throw DatabaseError.corrupt("\(gitDirectory) exists but has no HEAD: not a git repository; refusing to write a new store into it")
            }
        } else {
            for path in [directory, gitDirectory, gitDirectory + "/objects", gitDirectory + "/refs",
                         gitDirectory + "/refs/heads", gitDirectory + "/refs/tags"] {
                if mkdir(path, 0o755) != 0 && errno != EEXIST { throw DatabaseError.io("mkdir \(path)", errno) }
            }
            try GitDatabase.writeFile(gitDirectory + "/config", Array(
                ("[core]\n\trepositoryformatversion = 0\n\tfilemode = true\n\tbare = false\n" + GitDatabase.configuration).utf8))
            try GitDatabase.writeFile(gitDirectory + "/description", Array("Xenstore history written by xenstored\n".utf8))
            // HEAD last: a repository with a HEAD is a complete, possibly empty, repository.
            try GitDatabase.writeFile(gitDirectory + "/HEAD", Array("ref: \(GitDatabase.branch)\n".utf8))
        }
        for path in [gitDirectory + "/objects", gitDirectory + "/refs/heads"] {
            if mkdir(path, 0o755) != 0 && errno != EEXIST { throw DatabaseError.io("mkdir \(path)", errno) }
        }
        objects = try GitObjectStore(gitDirectory: gitDirectory)
        directoryFD = open(gitDirectory, O_RDONLY | O_DIRECTORY)
        // A repository that has a HEAD but no ref and no object was created by a run that
        // stopped before its first commit: still new.
        let hasBranch = try GitDatabase.refValue(gitDirectory, GitDatabase.branch) != nil
        isNew = !existed || (!hasBranch && objects.isEmpty)
        try removeStaleLock()
    }

    deinit {
        if directoryFD >= 0 { close(directoryFD) }
    }

    /// The commit id `refs/heads/main` points at (loose ref first, then `packed-refs`), if any.
    public func headID() throws(DatabaseError) -> ObjectID? {
        try GitDatabase.refValue(gitDirectory, GitDatabase.branch)
    }

    /// The value of ref `name` (e.g. `refs/heads/main`): the loose file, else its `packed-refs`
    /// line; nil when neither has it. Throws on a ref file or `packed-refs` git would not accept.
    static func refValue(_ gitDirectory: String, _ name: String) throws(DatabaseError) -> ObjectID? {
        if let bytes = GitObjectStore.readFile(gitDirectory + "/" + name) {
            guard bytes.count >= 40, let id = ObjectID(hex: Array(bytes.prefix(40))),
                  bytes.count == 40 || bytes[40] == 0x0A else {
                throw DatabaseError.corrupt("\(name) does not hold a commit id")
            }
            return id
        }
        guard let text = GitObjectStore.readText(gitDirectory + "/packed-refs") else { return nil }
        var lineNumber = 0
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            lineNumber += 1
            if line.isEmpty || line.hasPrefix("#") { continue }
            if line.hasPrefix("^") {
                guard line.count == 41, ObjectID(hex: Array(line.utf8.dropFirst())) != nil else {
                    throw DatabaseError.corrupt("packed-refs line \(lineNumber) is not a peeled id")
                }
                continue
            }
            let parts = line.split(separator: " ", maxSplits: 1)
            guard parts.count == 2, parts[0].count == 40, let id = ObjectID(hex: Array(parts[0].utf8)),
                  parts[1].hasPrefix("refs/") else {
                throw DatabaseError.corrupt("packed-refs line \(lineNumber) is not '<id> refs/…'")
            }
            if parts[1] == name { return id }
        }
        return nil
    }

    /// Loads the head commit and its tree, or returns nil for an empty repository.
    public func loadHead(generations: GenerationCounter) throws(DatabaseError) -> (record: CommitRecord, id: ObjectID, root: Node)? {
        guard var id = try headID() else {
            if isNew { return nil }
            throw DatabaseError.corrupt("\(GitDatabase.branch) cannot be resolved (no loose ref and no packed-refs entry) in a repository that holds objects; refusing to start a fresh store over it")
        }
        // The saved connection state names the head of its batch and is that batch's commit
        // point: a crash between the state and the ref update leaves `main` one batch apart
        // from it, and nothing of that batch was answered. Follow the state (see `persist`).
        let saved = try savedState()
        if let stateHead = saved?.head, stateHead != id {
            guard let (type, _) = readObject(stateHead), type == "commit" else {
                throw DatabaseError.corrupt("the saved connection state belongs to commit \(hexString(stateHead)), which is missing")
            }
            try updateBranch(to: stateHead)
            try sync()
            id = stateHead
        }
        // Every later batch rewrites the state file with its own head, the state unchanged.
        lastState = saved?.state
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
        // A repository made elsewhere (a clone, an older version) gets our settings once it has
        // proven readable: no automatic gc behind the daemon.
        if let config = GitObjectStore.readText(gitDirectory + "/config"), !config.contains("[gc]") {
            try GitDatabase.append(gitDirectory + "/config", GitDatabase.configuration)
        }
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
        } else if let found = resolveRef(String(name)) {
            id = found
        } else if name.count == 40 {
            id = ObjectID(hex: Array(name.utf8))
        } else if name.count >= 4, name.count < 40, name.allSatisfy(\.isHexDigit) {
            let matches = objects.ids(withHexPrefix: String(name).lowercased()).filter { commitRecord($0) != nil }
            id = matches.count == 1 ? matches[0] : nil
        }
        while steps > 0, let current = id {
            id = commitRecord(current)?.parents.first
            steps -= 1
        }
        return id
    }

    /// A ref given as `refs/…`, or a name under refs/heads, refs/remotes or refs/tags.
    private func resolveRef(_ name: String) -> ObjectID? {
        guard !name.contains(".."), !name.hasPrefix("/") else { return nil }
        let candidates = name.hasPrefix("refs/") ? [name] : ["refs/heads/" + name, "refs/remotes/" + name, "refs/tags/" + name]
        for candidate in candidates {
            if let id = try? GitDatabase.refValue(gitDirectory, candidate) { return id }
        }
        return nil
    }

    /// Writes every commit from `head` back to the last written one (with their trees) and
    /// moves `refs/heads/main` to `head`, durably.
    public func persist(head: Commit, history: History) throws(DatabaseError) {
        try persist(head: head, history: history, state: nil)
    }

    /// File in the git directory holding the daemon's connection state (not a git object: it is
    /// not history, and git ignores unknown files there).
    public static let stateFile = "xenstored-state"

    /// First line of the connection-state file; the second holds the id of its batch's head.
    static let stateMagic = Array("xenstored-state 2\n".utf8)

    /// The connection state saved by the last `persist`, or nil.
    public func loadState() throws(DatabaseError) -> [UInt8]? {
        try savedState()?.state
    }

    /// The saved connection state and the head of the batch it was saved with (nil for a file
    /// of the first version, which named no head and was saved before its batch's ref update).
    private func savedState() throws(DatabaseError) -> (head: ObjectID?, state: [UInt8])? {
        guard let bytes = GitObjectStore.readFile(gitDirectory + "/" + GitDatabase.stateFile) else { return nil }
        guard Array(bytes.prefix(GitDatabase.stateMagic.count)) == GitDatabase.stateMagic else { return (nil, bytes) }
        let headerLength = GitDatabase.stateMagic.count + 41
        guard bytes.count >= headerLength,
              let head = ObjectID(hex: Array(bytes[GitDatabase.stateMagic.count..<(headerLength - 1)])),
              bytes[headerLength - 1] == 0x0A else {
            throw DatabaseError.corrupt("\(GitDatabase.stateFile) has a damaged header")
        }
        return (head, Array(bytes[headerLength...]))
    }

    /// Like `persist(head:history:)`, and replaces the saved connection state with `state` (nil
    /// keeps the current one). Order of one batch: the new objects; then, when a connection state
    /// is kept, one `syncfs` and the state file (naming the batch's head) renamed into place —
    /// the batch's commit point; then `main`; then one `syncfs`. A restart follows the state
    /// file's head (`loadHead`), so the saved rings' positions and undelivered replies always
    /// belong to the head the daemon resumes from. Without a state, `main` is the commit point.
    public func persist(head: Commit, history: History, state: [UInt8]?) throws(DatabaseError) {
        let keptState = state ?? lastState
        let isStored: (ObjectID) -> Bool = { $0 == self.lastWritten || self.knownObjects.contains($0) }
        if let known = history.computedID(of: head), isStored(known), state == nil || state == lastState { return }
        var failure: DatabaseError? = nil
        history.forEachUnstoredObject(from: head, since: lastWrittenRoot, isStored: isStored) { id, type, body in
            if failure != nil { return }
            do throws(DatabaseError) { try self.writeObject(id, type, body) } catch { failure = error }
        }
        if let failure { throw failure }
        let headID = history.id(of: head)
        if let keptState {
            try sync()
            let temporary = gitDirectory + "/" + GitDatabase.stateFile + ".tmp"
            try GitDatabase.writeFile(temporary, GitDatabase.stateMagic + headID.hex + [0x0A] + keptState)
            guard rename(temporary, gitDirectory + "/" + GitDatabase.stateFile) == 0 else {
                throw DatabaseError.io("rename state", errno)
            }
            lastState = keptState
        }
        if headID != lastWritten { try updateBranch(to: headID) }
        try sync()
        superviseRepack()
        lastWritten = headID
        lastWrittenRoot = head.root
        if knownObjects.count > 1_000_000 { knownObjects.removeAll(keepingCapacity: true) }
    }

    // MARK: - Objects

    /// Stores one object as a loose object (nothing is done if it is already stored, loose or packed).
    public func writeObject(_ id: ObjectID, _ type: GitObjectType, _ body: [UInt8]) throws(DatabaseError) {
        if knownObjects.contains(id) { return }
        if objects.contains(id) {
            knownObjects.insert(id)
            return
        }
        let file = GitObjectStore.loosePath(gitDirectory + "/objects", id)
        let directory = String(file.dropLast(39))
        guard let compressed = Zlib.deflate(GitEncoding.header(type, length: body.count) + body) else {
            throw DatabaseError.corrupt("zlib could not compress object \(hexString(id))")
        }
        let temporary = file + ".tmp"
        // git's prune-packed (run by repack and gc) removes empty fan-out directories: one may
        // vanish between our mkdir and the open, so a missing directory is made again.
        var attempts = 0
        while true {
            if mkdir(directory, 0o755) != 0 && errno != EEXIST { throw DatabaseError.io("mkdir \(directory)", errno) }
            do {
                try GitDatabase.writeFile(temporary, compressed)
                break
            } catch DatabaseError.io(_, ENOENT) where attempts < 100 {
                attempts += 1
            }
        }
        guard rename(temporary, file) == 0 else { throw DatabaseError.io("rename \(file)", errno) }
        knownObjects.insert(id)
        looseSinceRepack += 1
    }

    /// Moves `refs/heads/main` to `id` under git's lock protocol: `main.lock` is created
    /// exclusively (waiting while a git command such as `pack-refs` holds it), written, renamed.
    private func updateBranch(to id: ObjectID) throws(DatabaseError) {
        let lock = gitDirectory + "/" + GitDatabase.branch + ".lock"
        var waited: UInt32 = 0
        var fd: Int32 = -1
        while true {
            fd = open(lock, O_WRONLY | O_CREAT | O_EXCL, 0o644)
            if fd >= 0 { break }
            if errno == ENOENT, waited < GitDatabase.lockWaitMicroseconds {
                // git removes empty ref directories when it prunes loose refs: make it again.
                mkdir(gitDirectory + "/refs", 0o755)
                mkdir(gitDirectory + "/refs/heads", 0o755)
                waited += 1000
                continue
            }
            guard errno == EEXIST, waited < GitDatabase.lockWaitMicroseconds else {
                throw DatabaseError.io("create \(lock) (held by another git process?)", errno)
            }
            usleep(1000)
            waited += 1000
        }
        let bytes = id.hex + [0x0A]
        let written = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
        let failure = errno
        close(fd)
        guard written == bytes.count else {
            unlink(lock)
            throw DatabaseError.io("write \(lock)", written < 0 ? failure : ENOSPC)
        }
        guard rename(lock, gitDirectory + "/" + GitDatabase.branch) == 0 else {
            let failure = errno
            unlink(lock)
            throw DatabaseError.io("rename \(lock)", failure)
        }
    }

    /// Reaps a finished background repack and starts the next one when enough loose objects
    /// have been written. git's own locking makes a repack safe beside our writes: it packs what
    /// is reachable, and its prune-packed removes only loose objects that are in a pack.
    private func superviseRepack() {
        if let pid = repackProcess {
            var status: Int32 = 0
            let reaped = waitpid(pid, &status, WNOHANG)
            if reaped == 0 { return }
            repackProcess = nil
            if reaped == pid, status != 0 { log("background git repack in \(directory) failed (wait status \(status))") }
        }
        guard repackThreshold > 0, looseSinceRepack >= repackThreshold else { return }
        looseSinceRepack = 0
        var argv = ["git", "-C", directory, "repack", "-d", "-q"]
        if objects.packCount + 1 >= GitDatabase.consolidatePacks { argv.append("-a") }
        var pid: pid_t = 0
        var cArguments = argv.map { strdup($0) } + [nil]
        defer { for pointer in cArguments { free(pointer) } }
        // The child gets none of the daemon's sockets or files (only standard output and error).
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addclosefrom_np(&actions, 3)
        let result = posix_spawnp(&pid, "git", &actions, nil, &cArguments, environ)
        guard result == 0 else {
            log("cannot start git repack in \(directory): \(String(cString: strerror(result))); loose objects accumulate")
            return
        }
        repackProcess = pid
        repacksStarted += 1
    }

    /// Removes a `main.lock` left behind by a crash (older than `staleLockSeconds`).
    private func removeStaleLock() throws(DatabaseError) {
        let lock = gitDirectory + "/" + GitDatabase.branch + ".lock"
        var status = stat()
        guard stat(lock, &status) == 0 else { return }
        if Int(time(nil)) - Int(status.st_mtim.tv_sec) >= GitDatabase.staleLockSeconds {
            unlink(lock)
        }
    }

    /// One `syncfs` of the repository's file system; its failure is the batch's failure.
    private func sync() throws(DatabaseError) {
        guard directoryFD >= 0 else { throw DatabaseError.io("open \(gitDirectory)", EBADF) }
        guard syncfs(directoryFD) == 0 else { throw DatabaseError.io("syncfs \(gitDirectory)", errno) }
    }

    /// Room left on the file system holding the repository: `.full` below `reserveBytes` bytes
    /// or `reserveInodes` inodes free (so the batches already admitted still fit), and
    /// `.reservedForDom0` below twice that (the second reserve is dom0's, so guests cannot push
    /// dom0 into ENOSPC).
    public func storageState() -> StorageState {
        var status = statvfs()
        guard statvfs(gitDirectory, &status) == 0 else { return .available }
        let freeBytes = UInt64(status.f_bavail) * UInt64(status.f_frsize)
        let freeInodes = status.f_files > 0 ? UInt64(status.f_favail) : UInt64.max
        if freeBytes < reserveBytes || freeInodes < GitDatabase.reserveInodes { return .full }
        if freeBytes < 2 * reserveBytes || freeInodes < 2 * GitDatabase.reserveInodes { return .reservedForDom0 }
        return .available
    }

    /// Points `refs/heads/main` at `head` and records the `shallow` commits (whose parents are
    /// not in the repository), for repositories written from another store (block export).
    public func setBranch(head: ObjectID, shallow: [ObjectID]) throws(DatabaseError) {
        try GitDatabase.writeFile(gitDirectory + "/" + GitDatabase.branch, head.hex + [0x0A])
        let shallowPath = gitDirectory + "/shallow"
        if shallow.isEmpty {
            unlink(shallowPath)
        } else {
            try GitDatabase.writeFile(shallowPath, shallow.flatMap { $0.hex + [0x0A] })
        }
        lastWritten = head
    }

    /// Reads a stored object (loose or packed): its type word and body, verified against `id`.
    public func readObject(_ id: ObjectID) -> (type: String, body: [UInt8])? {
        objects.read(id)
    }

    // MARK: - Files

    private static func writeFile(_ path: String, _ bytes: [UInt8]) throws(DatabaseError) {
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

    private static func append(_ path: String, _ text: String) throws(DatabaseError) {
        let fd = open(path, O_WRONLY | O_APPEND)
        guard fd >= 0 else { throw DatabaseError.io("open \(path)", errno) }
        defer { close(fd) }
        let bytes = Array(text.utf8)
        guard bytes.withUnsafeBytes({ Glibc.write(fd, $0.baseAddress, $0.count) }) == bytes.count else {
            throw DatabaseError.io("write \(path)", errno)
        }
    }
}

extension GitDatabase: HistoryStore {
    /// The head resumed into a `History`, or nil for a new repository.
    public func loadHistory(generations: GenerationCounter, retainedCommits: Int) throws(DatabaseError) -> History? {
        guard let (record, id, root) = try loadHead(generations: generations) else { return nil }
        return History(resuming: record, id: id, root: root, generations: generations, retainedCommits: retainedCommits)
    }
}

/// Hex text of an object id.
public func hexString(_ id: ObjectID) -> String { String(decoding: id.hex, as: UTF8.self) }
