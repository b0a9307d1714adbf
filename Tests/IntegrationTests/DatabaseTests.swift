// The --database git repository checked with the real git: fsck, log, ids, contents, restart, SIGKILL recovery.

import Foundation
import Testing
import XenstoreHost
import XenstoreWire

@Suite("git database (--database)", .serialized)
struct DatabaseTests {
    @Test("the history is a git repository that git fsck, log and cat-file agree with")
    func historyIsAGitRepository() throws {
        let root = try makeTemporaryDirectory("xsdb")
        defer { try? FileManager.default.removeItem(atPath: root) }
        let db = root + "/db"
        let daemon = try Daemon(extraArguments: ["--database", db])
        defer { daemon.stop() }
        let client = try daemon.client()
        try client.write("/vm/a", bytes("1"))
        let firstRevision = try git("-C", db, "rev-parse", "main").output.trimmingCharacters(in: .whitespacesAndNewlines)
        try client.write("/vm/a", bytes("2"))
        try client.remove("/vm/a")
        // Two transactions on disjoint subtrees, interleaved: the second becomes a merge commit.
        let other = try daemon.client()
        let t1 = try client.startTransaction()
        let t2 = try other.startTransaction()
        _ = try client.request(.write, Array(payload("/local/domain/1/name", "one").dropLast()), transaction: t1)
        _ = try other.request(.write, Array(payload("/local/domain/2/name", "two").dropLast()), transaction: t2)
        try client.endTransaction(t1, commit: true)
        try other.endTransaction(t2, commit: true)

        let fsck = try git("-C", db, "fsck", "--strict")
        #expect(fsck.status == 0, "git fsck --strict failed")
        let subjects = try git("-C", db, "log", "--format=%s", "main").output
        #expect(subjects.contains("Domain 0: write /vm/a"))
        #expect(subjects.contains("Domain 0: rm /vm/a"))
        #expect(subjects.contains("Domain 0: merging transaction \(t2)"))
        let merge = try git("-C", db, "rev-list", "--parents", "-n", "1", "main").output.split(separator: " ")
        #expect(merge.count == 3, "head should be a merge commit with two parents: \(merge)")
        // The daemon's reported ids are git's ids.
        let reported = try client.control(["history", "1"]).split(separator: " ").first.map(String.init)
        let head = try git("-C", db, "rev-parse", "main").output.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(reported == head)
        // A node's .value at a revision is what xenstore-read returned then.
        let blob = try git("-C", db, "cat-file", "-p", "\(firstRevision):vm/a/.value").output
        #expect(blob == "1")
        let perms = try git("-C", db, "cat-file", "-p", "\(head):local/domain/2/.perms").output
        #expect(perms == "n0\n")
        // git checkout REV && ls shows the store as directories.
        #expect(try git("-C", db, "checkout", "-q", firstRevision).status == 0)
        #expect(FileManager.default.fileExists(atPath: db + "/vm/a/.value"))
        #expect(!FileManager.default.fileExists(atPath: db + "/local/domain/2"))
    }

    @Test("a restart on the same directory resumes from the head and continues the history")
    func restartResumes() throws {
        let root = try makeTemporaryDirectory("xsdb")
        defer { try? FileManager.default.removeItem(atPath: root) }
        let db = root + "/db"
        var daemon = try Daemon(extraArguments: ["--database", db])
        try daemon.client().write("/keep/me", bytes("here"))
        let before = try git("-C", db, "rev-parse", "main").output.trimmingCharacters(in: .whitespacesAndNewlines)
        daemon.stop()
        daemon = try Daemon(extraArguments: ["--database", db])
        defer { daemon.stop() }
        let client = try daemon.client()
        #expect(try client.read("/keep/me") == bytes("here"))
        try client.write("/keep/more", bytes("x"))
        let parent = try git("-C", db, "rev-parse", "main^").output.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(parent == before)
        #expect(try git("-C", db, "fsck", "--strict").status == 0)
    }

    @Test("SIGKILL during a write storm loses no acknowledged write and leaves git fsck clean")
    func sigkillDuringWriteStorm() throws {
        let root = try makeTemporaryDirectory("xsdb")
        defer { try? FileManager.default.removeItem(atPath: root) }
        let db = root + "/db"
        let daemon = try Daemon(extraArguments: ["--database", db])
        let storm = try writeStormThenKill(daemon, microseconds: 700_000)
        #expect(storm.writersStopped, "writers did not notice the crash")
        #expect(storm.count > 20, "the storm wrote too little to mean anything (\(storm.count) writes)")
        #expect(try git("-C", db, "fsck", "--strict").status == 0)
        let restarted = try Daemon(extraArguments: ["--database", db])
        defer { restarted.stop() }
        let client = try restarted.client()
        // A write acknowledged later on the same key may only be newer, never older.
        try expectNoAcknowledgedWriteLost(storm, reading: client)
    }
}

@Suite("history commands of xsctl", .serialized)
struct HistoryCommandTests {
    @Test("log, show, diff, blame, bisect, checkout, restore and revert")
    func historyCommands() throws {
        let root = try makeTemporaryDirectory("xsdb")
        defer { try? FileManager.default.removeItem(atPath: root) }
        let db = root + "/db"
        let daemon = try Daemon(extraArguments: ["--database", db])
        defer { daemon.stop() }
        let client = try daemon.client()
        for i in 1...6 {
            try client.write("/vm/counter", bytes("\(i)"))
            try client.write("/vm/x\(i)", bytes("y"))
        }
        let sock = daemon.socket
        let log = try xsctl(socket: sock, "-C", db, "log", "/vm/x3")
        #expect(log.status == 0)
        #expect(log.output.split(separator: "\n").count == 1 && log.output.contains("Domain 0: write /vm/x3"), "\(log.output)")
        let show = try xsctl(socket: sock, "-C", db, "show", "main")
        #expect(show.output.contains("+ /vm/x6 = \"y\" (n0)"), "\(show.output)")
        let diff = try xsctl(socket: sock, "-C", db, "diff", "main~3", "main", "/vm")
        #expect(diff.output.contains("M /vm/counter = \"5\" -> \"6\""), "\(diff.output)")
        #expect(diff.output.contains("+ /vm/x5"), "\(diff.output)")
        let blame = try xsctl(socket: sock, "-C", db, "blame", "/vm/x2")
        #expect(blame.output.contains("/vm/x2: ") && blame.output.contains("write /vm/x2"), "\(blame.output)")
        let bisect = try xsctl(socket: sock, "-C", db, "bisect", "--good", "main~11", "--bad", "main", "--",
                               "sh", "-c", "test \"$(cat vm/counter/.value)\" -lt 4")
        #expect(bisect.status == 0)
        let firstBad = bisect.output.split(separator: "\n").last.map(String.init) ?? ""
        #expect(firstBad.hasPrefix("first bad commit:") && firstBad.contains("write /vm/counter"), "\(bisect.output)")
        // The first bad commit is the one that wrote 4.
        let badID = String(firstBad.split(separator: " ")[3])
        let shown = try xsctl(socket: sock, "-C", db, "show", badID)
        #expect(shown.output.contains("M /vm/counter = \"3\" -> \"4\""), "\(shown.output)")
        let checkout = root + "/co"
        #expect(try xsctl(socket: sock, "-C", db, "checkout", "main~1", checkout).status == 0)
        #expect((try? String(contentsOfFile: checkout + "/vm/counter/.value", encoding: .utf8)) == "6")
        // restore fires watches and commits.
        let watcher = try daemon.client()
        try watcher.watch("/vm", token: "t")
        _ = try watcher.nextEvent()
        let restore = try xsctl(socket: sock, "-C", db, "restore", "main~3", "/vm")
        #expect(restore.status == 0, "\(restore.output)")
        #expect(try client.read("/vm/counter") == bytes("5"))
        #expect((try? client.read("/vm/x6")) == nil)
        let event = try watcher.nextEvent()
        #expect(text(event.0).hasPrefix("/vm"))
        let revert = try xsctl(socket: sock, "-C", db, "revert", "main")
        #expect(revert.status == 0, "\(revert.output)")
        #expect(try client.read("/vm/counter") == bytes("6"))
        #expect(try client.read("/vm/x6") == bytes("y"))
        #expect(try git("-C", db, "fsck", "--strict").status == 0)
    }

    @Test("clone, pull (merge commit, conflicts reported) and push between two daemons")
    func betweenHosts() throws {
        let root = try makeTemporaryDirectory("xsdb")
        defer { try? FileManager.default.removeItem(atPath: root) }
        let db1 = root + "/db1"
        let db2 = root + "/db2"
        let first = try Daemon(extraArguments: ["--database", db1])
        defer { first.stop() }
        try first.client().write("/shared/key", bytes("0"))
        #expect(try xsctl(socket: first.socket, "clone", db1, db2).status == 0)
        let second = try Daemon(extraArguments: ["--database", db2])
        defer { second.stop() }
        #expect(try second.client().read("/shared/key") == bytes("0"))
        try second.client().write("/host2/only", bytes("yes"))
        try first.client().write("/host1/only", bytes("yes"))
        let pull = try xsctl(socket: first.socket, "-C", db1, "pull", db2)
        #expect(pull.status == 0, "\(pull.output)")
        #expect(try first.client().read("/host2/only") == bytes("yes"))
        #expect(try first.client().read("/host1/only") == bytes("yes"))
        let parents = try git("-C", db1, "rev-list", "--parents", "-n", "1", "main").output.split(separator: " ")
        #expect(parents.count == 3)
        // A true conflict: both change the same key differently.
        try second.client().write("/shared/key", bytes("from-2"))
        try first.client().write("/shared/key", bytes("from-1"))
        let conflict = try xsctl(socket: first.socket, "-C", db1, "pull", db2)
        #expect(conflict.status != 0 && conflict.output.contains("conflict"), "\(conflict.output)")
        #expect(try first.client().read("/shared/key") == bytes("from-1"))
        // push goes to a side branch, never to the live main.
        #expect(try xsctl(socket: first.socket, "-C", db1, "push", db2).status == 0)
        #expect(try git("-C", db2, "rev-parse", "--verify", "pushed").status == 0)
        #expect(try xsctl(socket: first.socket, "-C", db1, "push", db2, "main").status != 0)
        #expect(try git("-C", db1, "fsck", "--strict").status == 0)
        #expect(try git("-C", db2, "fsck", "--strict").status == 0)
    }
}
