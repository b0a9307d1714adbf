// What real git does to a --database repository (gc, repack, pack-refs, clone over the pack protocol), refusals, and a full file system.

import Foundation
import Testing
import XenstoreHost
import XenstoreStore
import XenstoreWire

/// Every regular file below `directory` with its bytes (to show that a refusal changed nothing).
private func snapshot(_ directory: String) -> [String: Data] {
    var files: [String: Data] = [:]
    guard let walker = FileManager.default.enumerator(atPath: directory) else { return files }
    while let relative = walker.nextObject() as? String {
        let path = directory + "/" + relative
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), !isDirectory.boolValue {
            files[relative] = FileManager.default.contents(atPath: path)
        }
    }
    return files
}

/// The trimmed standard output of a git command that must succeed.
private func gitOutput(_ arguments: String..., sourceLocation: SourceLocation = #_sourceLocation) throws -> String {
    try gitOutput(arguments, sourceLocation: sourceLocation)
}

/// The same with the arguments as an array.
private func gitOutput(_ arguments: [String], sourceLocation: SourceLocation = #_sourceLocation) throws -> String {
    let result = try runCapturing("/usr/bin/git", arguments, mergingStandardError: true)
    #expect(result.status == 0, "git \(arguments.joined(separator: " ")): \(result.output)", sourceLocation: sourceLocation)
    return result.output.trimmingCharacters(in: .whitespacesAndNewlines)
}

/// Runs the daemon on `arguments` expecting it to refuse to start; returns its exit status and log.
private func expectRefusal(_ arguments: [String], sourceLocation: SourceLocation = #_sourceLocation) throws -> (status: Int32, log: String) {
    let result = try runCapturing(Programs.timeout, ["10", Programs.daemon, "--socket", "/tmp/xs-refused-\(getpid()).sock"] + arguments,
                                  mergingStandardError: true)
    #expect(result.status != 0 && result.status != 124, "the daemon started instead of refusing: \(result.output)",
            sourceLocation: sourceLocation)
    return (result.status, result.output)
}

/// Writes `count` keys under /vm (values long and alike, so that git's packing makes deltas).
private func writeKeys(_ client: XenstoreClient, count: Int, prefix: String = "k") throws {
    for index in 0..<count {
        try client.write("/vm/\(prefix)\(index)", bytes("value-\(index)-" + String(repeating: "x", count: 200)))
    }
}

/// Checks, through the daemon, that every key written by `writeKeys` is there.
private func expectKeys(_ client: XenstoreClient, count: Int, prefix: String = "k", sourceLocation: SourceLocation = #_sourceLocation) throws {
    for index in 0..<count {
        let value = text(try client.read("/vm/\(prefix)\(index)"))
        #expect(value.hasPrefix("value-\(index)-"), "/vm/\(prefix)\(index) = \(value)", sourceLocation: sourceLocation)
    }
}

@Suite("a --database repository handled by real git", .serialized)
struct GitRepositoryTests {
    @Test("git gc, pack-refs and repack -ad (OFS and REF deltas) while stopped: same head, every key, fsck clean, every object reads as git reads it")
    func packedRepositoryResumes() throws {
        let root = try makeTemporaryDirectory("xsgit")
        defer { try? FileManager.default.removeItem(atPath: root) }
        let db = root + "/db"
        var daemon = try Daemon(extraArguments: ["--database", db])
        try writeKeys(daemon.client(), count: 150)
        daemon.stop()
        let head = try gitOutput("-C", db, "rev-parse", "main")

        for packing in [["gc", "-q"], ["pack-refs", "--all"], ["-c", "repack.useDeltaBaseOffset=false", "repack", "-adf", "-q"],
                        ["repack", "-adf", "-q", "--depth=250", "--window=250"]] {
            _ = try gitOutput(["-C", db] + packing)
            #expect(!FileManager.default.fileExists(atPath: db + "/.git/refs/heads/main") || packing[0] != "pack-refs",
                    "pack-refs --all should have moved main into packed-refs")
            #expect(try gitOutput("-C", db, "count-objects", "-v").contains("count: 0"), "objects should all be packed")
            // The packs hold deltas (what the reader must resolve), not only whole objects.
            let pack = try FileManager.default.contentsOfDirectory(atPath: db + "/.git/objects/pack").first { $0.hasSuffix(".idx") }!
            let verify = try gitOutput("-C", db, "verify-pack", "-v", db + "/.git/objects/pack/" + pack)
            #expect(verify.contains("chain length = "), "\(packing): the pack has no delta chains")

            // Every object reads exactly as git reads it.
            let database = try GitDatabase(directory: db)
            let listing = try gitOutput("-C", db, "cat-file", "--batch-all-objects", "--batch-check=%(objectname) %(objecttype)")
            var checked = 0
            for line in listing.split(separator: "\n") {
                let parts = line.split(separator: " ")
                let id = try #require(ObjectID(hex: Array(parts[0].utf8)))
                let object = database.readObject(id)
                #expect(object?.type == String(parts[1]), "\(parts[0]) not read from the pack")
                if let object {
                    #expect(GitEncoding.objectID(object.type == "blob" ? .blob : object.type == "tree" ? .tree : .commit,
                                                 body: object.body) == id)
                }
                checked += 1
            }
            #expect(checked > 300)

            daemon = try Daemon(extraArguments: ["--database", db])
            let client = try daemon.client()
            try expectKeys(client, count: 150)
            #expect(try gitOutput("-C", db, "rev-parse", "main") == head, "\(packing): the head moved on restart")
            daemon.stop()
            #expect(try git("-C", db, "fsck", "--strict").status == 0)
        }
        // And the daemon continues the packed history.
        daemon = try Daemon(extraArguments: ["--database", db])
        try daemon.client().write("/after/packing", bytes("yes"))
        daemon.stop()
        #expect(try gitOutput("-C", db, "rev-parse", "main^") == head)
        #expect(try gitOutput("-C", db, "log", "--format=%s", "-1") == "Domain 0: write /after/packing")
        #expect(try git("-C", db, "fsck", "--strict").status == 0)
    }

    @Test("git repack -ad and pack-refs during a write storm, then SIGKILL: no acknowledged write lost")
    func repackDuringStorm() throws {
        let root = try makeTemporaryDirectory("xsgit")
        defer { try? FileManager.default.removeItem(atPath: root) }
        let db = root + "/db"
        let daemon = try Daemon(extraArguments: ["--database", db])
        try daemon.client().write("/storm/start", bytes("1"))
        final class Flag: @unchecked Sendable { var stop = false; var repacks = 0; var failures: [String] = [] }
        let flag = Flag()
        let lock = NSLock()
        let packer = Thread {
            while !lock.withLock({ flag.stop }) {
                for command in [["repack", "-ad", "-q"], ["pack-refs", "--all"]] {
                    let result = try? runCapturing("/usr/bin/git", ["-C", db] + command, mergingStandardError: true)
                    lock.withLock {
                        flag.repacks += 1
                        if let result, result.status != 0 { flag.failures.append(result.output) }
                    }
                }
            }
        }
        packer.start()
        let storm = try writeStormThenKill(daemon, writers: 3, microseconds: 5_000_000)
        lock.withLock { flag.stop = true }
        while !packer.isFinished { usleep(10_000) }
        #expect(storm.writersStopped)
        #expect(storm.count > 100, "too few writes to mean anything (\(storm.count))")
        #expect(lock.withLock { flag.repacks } >= 4, "git ran too rarely during the storm")
        print("repack during storm: \(storm.count) acknowledged writes, \(lock.withLock { flag.repacks }) git runs")
        #expect(try git("-C", db, "fsck", "--strict").status == 0)
        let restarted = try Daemon(extraArguments: ["--database", db])
        defer { restarted.stop() }
        try expectNoAcknowledgedWriteLost(storm, reading: restarted.client())
    }

    @Test("git clone file:// (pack transport) of a database serves the same head and store; xsctl pull from a packed remote merges")
    func cloneAndPull() throws {
        let root = try makeTemporaryDirectory("xsgit")
        defer { try? FileManager.default.removeItem(atPath: root) }
        let origin = root + "/origin", copy = root + "/copy"
        var daemon = try Daemon(extraArguments: ["--database", origin])
        try writeKeys(daemon.client(), count: 40)
        daemon.stop()
        let head = try gitOutput("-C", origin, "rev-parse", "main")
        _ = try gitOutput("clone", "-q", "file://" + origin, copy)
        #expect(try gitOutput("-C", copy, "count-objects", "-v").contains("count: 0"), "a file:// clone should arrive as a pack")
        daemon = try Daemon(extraArguments: ["--database", copy])
        try expectKeys(daemon.client(), count: 40)
        #expect(try gitOutput("-C", copy, "rev-parse", "main") == head)
        daemon.stop()

        // The origin moves on and is packed; the copy's daemon pulls it.
        daemon = try Daemon(extraArguments: ["--database", origin])
        try writeKeys(daemon.client(), count: 10, prefix: "later")
        daemon.stop()
        _ = try gitOutput("-C", origin, "gc", "-q")
        daemon = try Daemon(extraArguments: ["--database", copy])
        defer { daemon.stop() }
        let pull = try xsctl(socket: daemon.socket, "-C", copy, "pull", origin)
        #expect(pull.status == 0, "\(pull.output)")
        try expectKeys(daemon.client(), count: 10, prefix: "later")
        try expectKeys(daemon.client(), count: 40)
        // Our repositories never start git's automatic gc behind the daemon.
        #expect(try gitOutput("-C", copy, "config", "gc.auto") == "0")
    }

    @Test("background git repack keeps the file count bounded; xsctl gc packs everything while the daemon runs")
    func repackKeepsFileCountBounded() throws {
        let root = try makeTemporaryDirectory("xsgit")
        defer { try? FileManager.default.removeItem(atPath: root) }
        let db = root + "/db"
        var daemon = try Daemon(extraArguments: ["--database", db, "--repack-every", "200"])
        try writeKeys(daemon.client(), count: 400)
        usleep(500_000)  // the last background repack may still be running
        try daemon.client().write("/vm/last", bytes("1"))
        daemon.stop()
        let counts = try gitOutput("-C", db, "count-objects", "-v")
        let loose = Int(counts.split(separator: "\n").first { $0.hasPrefix("count: ") }!.dropFirst(7))!
        let inPack = Int(counts.split(separator: "\n").first { $0.hasPrefix("in-pack: ") }!.dropFirst(9))!
        #expect(inPack > 1000, "background repacks packed too little: \(counts)")
        #expect(loose < 600, "loose objects were not packed: \(counts)")
        #expect(try git("-C", db, "fsck", "--strict").status == 0)

        daemon = try Daemon(extraArguments: ["--database", db, "--repack-every", "0"])
        defer { daemon.stop() }
        try expectKeys(daemon.client(), count: 400)
        try writeKeys(daemon.client(), count: 20, prefix: "more")
        let gc = try xsctl(socket: daemon.socket, "-C", db, "gc")
        #expect(gc.status == 0, "\(gc.output)")
        #expect(try gitOutput("-C", db, "count-objects", "-v").contains("count: 0"))
        try writeKeys(daemon.client(), count: 5, prefix: "after")
        try expectKeys(daemon.client(), count: 20, prefix: "more")
        #expect(try git("-C", db, "fsck", "--strict").status == 0)
    }

    @Test("unreadable state is refused with a message naming it, and the directory is left byte-for-byte unchanged")
    func refusals() throws {
        let root = try makeTemporaryDirectory("xsgit")
        defer { try? FileManager.default.removeItem(atPath: root) }
        let db = root + "/db"
        let daemon = try Daemon(extraArguments: ["--database", db])
        try writeKeys(daemon.client(), count: 3)
        daemon.stop()
        let head = try gitOutput("-C", db, "rev-parse", "main")

        // 1. The head commit object is missing (a copy of the loose-object repository without it).
        let missing = root + "/missing"
        #expect(try runCapturing("/bin/cp", ["-a", db, missing]).status == 0)
        try FileManager.default.removeItem(atPath: missing + "/.git/objects/" + head.prefix(2) + "/" + head.dropFirst(2))
        var before = snapshot(missing)
        var refused = try expectRefusal(["--database", missing])
        #expect(refused.log.contains("head commit") && refused.log.contains(head), Comment(rawValue: refused.log))
        #expect(snapshot(missing) == before, "a refused start changed the repository")

        // 2. Garbage packed-refs and no loose main.
        let garbage = root + "/garbage"
        _ = try gitOutput("clone", "-q", "--no-local", db, garbage)
        _ = try gitOutput("-C", garbage, "pack-refs", "--all")
        try? FileManager.default.removeItem(atPath: garbage + "/.git/refs/heads/main")
        try Data("this is not a packed-refs file\n".utf8).write(to: URL(fileURLWithPath: garbage + "/.git/packed-refs"))
        before = snapshot(garbage)
        refused = try expectRefusal(["--database", garbage])
        #expect(refused.log.contains("packed-refs line 1"), Comment(rawValue: refused.log))
        #expect(snapshot(garbage) == before)

        // 3. Objects but no main at all (e.g. the ref deleted): never a fresh store over it.
        let noRef = root + "/noref"
        _ = try gitOutput("clone", "-q", "--no-local", db, noRef)
        try? FileManager.default.removeItem(atPath: noRef + "/.git/refs/heads/main")
        try? FileManager.default.removeItem(atPath: noRef + "/.git/packed-refs")
        _ = try gitOutput("-C", noRef, "symbolic-ref", "HEAD", "refs/heads/main")
        before = snapshot(noRef)
        refused = try expectRefusal(["--database", noRef])
        #expect(refused.log.contains("cannot be resolved"), Comment(rawValue: refused.log))
        #expect(snapshot(noRef) == before)

        // 4. A .git that is not a repository.
        let notGit = root + "/notgit"
        try FileManager.default.createDirectory(atPath: notGit + "/.git/objects", withIntermediateDirectories: true)
        refused = try expectRefusal(["--database", notGit])
        #expect(refused.log.contains("not a git repository"), Comment(rawValue: refused.log))
        #expect(try FileManager.default.contentsOfDirectory(atPath: notGit + "/.git") == ["objects"])
    }
}

/// A tmpfs of `megabytes` MiB mounted on a new directory (root only); `resize` changes its size.
private final class SmallFileSystem {
    let path: String

    init(megabytes: Int) throws {
        path = try makeTemporaryDirectory("xsfull")
        let mounted = try runCapturing("/bin/mount", ["-t", "tmpfs", "-o", "size=\(megabytes)m", "tmpfs", path], mergingStandardError: true)
        guard mounted.status == 0 else { throw HarnessError("mount tmpfs on \(path): \(mounted.output)") }
    }

    func resize(megabytes: Int) throws {
        let remounted = try runCapturing("/bin/mount", ["-o", "remount,size=\(megabytes)m", path], mergingStandardError: true)
        guard remounted.status == 0 else { throw HarnessError("remount \(path): \(remounted.output)") }
    }

    deinit {
        _ = try? runCapturing("/bin/umount", [path])
        rmdir(path)
    }
}

@Suite("a --database on a full file system", .serialized, .enabled(if: getuid() == 0, "mounting a small tmpfs needs root"))
struct FullFileSystemTests {
    /// Three dom0 writers and two guests (domains 5 and 6, each in its own home).
    private static func writers(_ daemon: Daemon) throws -> [(client: XenstoreClient, prefix: String)] {
        try guestWriters(daemon) + dom0Writers(daemon)
    }

    private static func dom0Writers(_ daemon: Daemon) throws -> [(client: XenstoreClient, prefix: String)] {
        try (0..<3).map { (client: try daemon.client(), prefix: "/storm/w\($0)") }
    }

    private static func guestWriters(_ daemon: Daemon) throws -> [(client: XenstoreClient, prefix: String)] {
        try [UInt32(5), 6].map { domid in
            let guest = try daemon.client(domain: domid)
            _ = try daemon.xs("xenstore-write", "/local/domain/\(domid)/storm/k0", "start")
            _ = try daemon.xs("xenstore-chmod", "-r", "/local/domain/\(domid)", "n\(domid)")
            return (guest, "/local/domain/\(domid)/storm")
        }
    }

    @Test("guests writing until ENOSPC leave dom0 its reserve; dom0 writers then fill it; the daemon keeps serving; after SIGKILL and a restart every acknowledged write is there")
    func enospcBeforeFull() throws {
        let disk = try SmallFileSystem(megabytes: 16)
        let db = disk.path + "/db"
        let daemon = try Daemon(domains: [5, 6], watchdogSeconds: 60, extraArguments: ["--database", db, "--reserve", "4M"])
        let guests = writeStorm(try FullFileSystemTests.guestWriters(daemon), microseconds: 20_000_000) {}
        #expect(guests.writersStopped, "the guests never got ENOSPC")
        #expect(guests.errors.allSatisfy { $0 == .server(.ENOSPC) }, "\(guests.errors)")
        #expect(guests.count > 20, "too few guest writes before the reserve (\(guests.count))")
        // dom0's reserve is intact: it still writes, until its own reserve is used up too.
        let dom0 = writeStorm(try FullFileSystemTests.dom0Writers(daemon), microseconds: 20_000_000) {}
        #expect(dom0.writersStopped, "dom0 never got ENOSPC")
        #expect(dom0.errors.allSatisfy { $0 == .server(.ENOSPC) }, "\(dom0.errors)")
        #expect(dom0.count > 20, "guests left dom0 too little (\(dom0.count) writes)")
        // Still serving: reads and removals (which shrink the store) work.
        let client = try daemon.client()
        #expect(try client.read("/storm/w0/k0").count > 0)
        try client.remove("/storm/w0/k1")
        daemon.killHard()
        try disk.resize(megabytes: 64)
        let restarted = try Daemon(domains: [5, 6], extraArguments: ["--database", db])
        defer { restarted.stop() }
        var expected = guests.lastValues.merging(dom0.lastValues) { $1 }
        expected["/storm/w0/k1"] = nil
        try expectNoAcknowledgedWriteLost(StormOutcome(lastValues: expected, count: 0, writersStopped: true, errors: []),
                                          reading: restarted.client())
        #expect(try git("-C", db, "fsck", "--strict").status == 0)
    }

    @Test("with no reserve the disk really fills: the daemon stops (exit 3) without acknowledging the round it could not write; nothing acknowledged is lost")
    func stopsWhenABatchCannotBeWritten() throws {
        let disk = try SmallFileSystem(megabytes: 4)
        let db = disk.path + "/db"
        let daemon = try Daemon(domains: [5, 6], watchdogSeconds: 60, extraArguments: ["--database", db, "--reserve", "0"])
        let storm = writeStorm(try FullFileSystemTests.writers(daemon), microseconds: 20_000_000) {}
        #expect(storm.writersStopped, "the disk never filled")
        let status = daemon.waitForOwnExit(seconds: 5)
        #expect(status?.code == 3, "the daemon should stop with exit status 3, got \(String(describing: status))")
        #expect(readText(daemon.logPath).contains("cannot make this round durable"))
        #expect(storm.count > 20)
        daemon.killHard()
        try disk.resize(megabytes: 64)
        let restarted = try Daemon(domains: [5, 6], extraArguments: ["--database", db])
        defer { restarted.stop() }
        try expectNoAcknowledgedWriteLost(storm, reading: restarted.client())
        try restarted.client().write("/after/full", bytes("ok"))
        #expect(try git("-C", db, "fsck", "--strict").status == 0)
    }
}

@Suite("the git database's connection state is its batch's commit point")
struct GitStateCommitPointTests {
    /// A database with two batches, each with its own connection state; returns the directory,
    /// both heads, and the ref and state files as they were after the first batch.
    private func twoBatches(_ root: String) throws -> (db: String, first: ObjectID, second: ObjectID, ref1: Data, state1: Data) {
        let db = root + "/db"
        let database = try GitDatabase(directory: db)
        let generations = GenerationCounter()
        let history = History(root: Node(value: [], permissions: .ownedBy(0), generation: generations.take()), author: 0,
                              message: bytes("Domain 0: initial store"), time: 1, generations: generations, retainedCommits: 16)
        try database.persist(head: history.head, history: history, state: bytes("state one"))
        let ref1 = try #require(FileManager.default.contents(atPath: db + "/.git/refs/heads/main"))
        let state1 = try #require(FileManager.default.contents(atPath: db + "/.git/" + GitDatabase.stateFile))
        let first = history.id(of: history.head)
        history.commitOnHead(root: Node(value: bytes("two"), permissions: .ownedBy(0), generation: generations.take()),
                             author: 0, message: bytes("Domain 0: write /"), time: 2)
        try database.persist(head: history.head, history: history, state: bytes("state two"))
        return (db, first, history.id(of: history.head), ref1, state1)
    }

    @Test("a crash after the state file and before main: the restart rolls main forward to the state's head")
    func stateAheadOfMain() throws {
        let root = try makeTemporaryDirectory("xsstate")
        defer { try? FileManager.default.removeItem(atPath: root) }
        let (db, _, second, ref1, _) = try twoBatches(root)
        try ref1.write(to: URL(fileURLWithPath: db + "/.git/refs/heads/main"))
        let reopened = try GitDatabase(directory: db)
        let loaded = try #require(try reopened.loadHead(generations: GenerationCounter()))
        #expect(loaded.id == second)
        #expect(try reopened.headID() == second)
        #expect(try reopened.loadState() == bytes("state two"))
    }

    @Test("a crash after main and before the state file: the restart goes back to the state's head (nothing of that batch was answered)")
    func mainAheadOfState() throws {
        let root = try makeTemporaryDirectory("xsstate")
        defer { try? FileManager.default.removeItem(atPath: root) }
        let (db, first, _, _, state1) = try twoBatches(root)
        try state1.write(to: URL(fileURLWithPath: db + "/.git/" + GitDatabase.stateFile))
        let reopened = try GitDatabase(directory: db)
        let loaded = try #require(try reopened.loadHead(generations: GenerationCounter()))
        #expect(loaded.id == first)
        #expect(try reopened.headID() == first)
        #expect(try reopened.loadState() == bytes("state one"))
    }

    @Test("later batches without a new state keep the state file naming the newest head")
    func stateFollowsEveryBatch() throws {
        let root = try makeTemporaryDirectory("xsstate")
        defer { try? FileManager.default.removeItem(atPath: root) }
        let (db, _, second, _, _) = try twoBatches(root)
        let database = try GitDatabase(directory: db)
        let generations = GenerationCounter()
        let loaded = try #require(try database.loadHead(generations: generations))
        let history = History(resuming: loaded.record, id: loaded.id, root: loaded.root, generations: generations, retainedCommits: 16)
        history.commitOnHead(root: Node(value: bytes("three"), permissions: .ownedBy(0), generation: generations.take()),
                             author: 0, message: bytes("Domain 0: write /"), time: 3)
        try database.persist(head: history.head, history: history, state: nil)
        let third = history.id(of: history.head)
        #expect(third != second)
        let reopened = try GitDatabase(directory: db)
        #expect(try reopened.loadHead(generations: GenerationCounter())?.id == third)
        #expect(try reopened.loadState() == bytes("state two"))
    }
}
