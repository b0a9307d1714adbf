// Hostile repositories with the real git and xsctl: pull, restore and checkout refuse them whole, naming the rule.

import Foundation
import Testing
import XenstoreHost
import XenstoreStore
import XenstoreWire

/// Writes a git object into `repository` without git's own checks (`hash-object --literally`).
private func writeObject(_ repository: String, type: String, _ body: [UInt8], scratch: String) throws -> String {
    let file = scratch + "/object"
    try Data(body).write(to: URL(fileURLWithPath: file))
    let result = try git("-C", repository, "hash-object", "-w", "--literally", "-t", type, file)
    try #require(result.status == 0)
    return result.output.trimmingCharacters(in: .whitespacesAndNewlines)
}

/// A tree entry line of a git tree body.
private func entry(_ mode: String, _ name: String, _ hex: String) -> [UInt8] {
    Array(mode.utf8) + [0x20] + Array(name.utf8) + [0] + ObjectID(hex: Array(hex.utf8))!.bytes
}

/// Commits on `repository`'s main a root tree holding `/shared/key` = 0 and a child named
/// `evilName`, through git plumbing (so git's own checks do not stop it).
private func commitHostileTree(_ repository: String, evilName: String, scratch: String) throws {
    let perms = try writeObject(repository, type: "blob", Array("n0\n".utf8), scratch: scratch)
    let empty = try writeObject(repository, type: "blob", [], scratch: scratch)
    let zero = try writeObject(repository, type: "blob", Array("0".utf8), scratch: scratch)
    let evilValue = try writeObject(repository, type: "blob", Array("escaped".utf8), scratch: scratch)
    let key = try writeObject(repository, type: "tree", entry("100644", ".perms", perms) + entry("100644", ".value", zero), scratch: scratch)
    let shared = try writeObject(repository, type: "tree",
                                 entry("100644", ".perms", perms) + entry("100644", ".value", empty) + entry("40000", "key", key),
                                 scratch: scratch)
    let evil = try writeObject(repository, type: "tree", entry("100644", ".perms", perms) + entry("100644", ".value", evilValue),
                               scratch: scratch)
    let root = try writeObject(repository, type: "tree",
                               entry("40000", evilName, evil) + entry("100644", ".perms", perms) + entry("100644", ".value", empty)
                                   + entry("40000", "shared", shared), scratch: scratch)
    let commit = try git("-C", repository, "commit-tree", root, "-p", "main", "-m", "hostile")
    try #require(commit.status == 0)
    try #require(try git("-C", repository, "update-ref", "refs/heads/main",
                         commit.output.trimmingCharacters(in: .whitespacesAndNewlines)).status == 0)
}

@Suite("hostile repositories", .serialized)
struct HostileImportTests {
    @Test("pull, restore and checkout refuse a hostile tree whole and name the rule")
    func hostileRepositoryIsRefused() throws {
        let root = try makeTemporaryDirectory("xshostile")
        defer { try? FileManager.default.removeItem(atPath: root) }
        let db = root + "/db"
        let evil = root + "/evil"
        let daemon = try Daemon(extraArguments: ["--database", db])
        defer { daemon.stop() }
        let client = try daemon.client()
        try client.write("/shared/key", bytes("0"))
        let sock = daemon.socket
        #expect(try xsctl(socket: sock, "clone", db, evil).status == 0)
        let countBefore = try git("-C", db, "rev-list", "--count", "main").output

        try commitHostileTree(evil, evilName: "..", scratch: root)
        let pull = try xsctl(socket: sock, "-C", db, "pull", evil)
        #expect(pull.status != 0)
        #expect(pull.output.contains("rejected, nothing was fetched or merged") && pull.output.contains("entry '..'")
                && pull.output.contains("a child is named '.' or '..'"), "\(pull.output)")
        // Nothing changed: no commit, no fetched ref, no node, and git's strict check passes.
        #expect(try git("-C", db, "rev-list", "--count", "main").output == countBefore)
        #expect(try git("-C", db, "rev-parse", "--verify", "-q", "refs/remotes/pulled/main").status != 0)
        #expect(try client.list("/") == ["local", "shared", "tool"])
        #expect(try git("-C", db, "fsck", "--strict").status == 0)

        // The hostile commit named directly for restore is checked before the daemon is asked.
        let restore = try xsctl(socket: sock, "-C", evil, "restore", "main")
        #expect(restore.status != 0 && restore.output.contains("rejected, nothing was changed"), "\(restore.output)")
        #expect(try git("-C", db, "rev-list", "--count", "main").output == countBefore)

        // checkout never writes outside its directory.
        try commitHostileTree(evil, evilName: "../../escaped-by-pull", scratch: root)
        let out = root + "/co/out"
        let checkout = try xsctl(socket: sock, "-C", evil, "checkout", "main", out)
        #expect(checkout.status != 0 && checkout.output.contains("contains '/'"), "\(checkout.output)")
        #expect(!FileManager.default.fileExists(atPath: root + "/escaped-by-pull"))
        #expect(!FileManager.default.fileExists(atPath: out))
        // A good revision still checks out.
        let good = root + "/good"
        let goodCheckout = try xsctl(socket: sock, "-C", evil, "checkout", "main~2", good)
        #expect(goodCheckout.status == 0, "\(goodCheckout.output)")
        #expect((try? String(contentsOfFile: good + "/shared/key/.value", encoding: .utf8)) == "0")

        // A daemon started on the hostile database refuses it, naming the rule.
        do {
            let refused = try Daemon(extraArguments: ["--database", evil])
            refused.stop()
            Issue.record("xenstored started on a database whose head has a child named ../../escaped-by-pull")
        } catch {
            #expect("\(error)".contains("contains '/'"), "\(error)")
        }

        // Other failures say which request failed and what the error means.
        let read = try xsctl(socket: sock, "read", "/nothere")
        #expect(read.status != 0 && read.output.contains("read /nothere: ENOENT (no such node or revision)"), "\(read.output)")
    }
}
