// SHA-1 known-answer vectors and git object ids, checked against the real `git` binary (trees and commits).

import Foundation
import Testing
import XenstoreServer
import XenstoreStore
import XenstoreWire

private func hex(_ id: ObjectID) -> String { s(id.hex) }

/// Writes a node as git would see it: `.value`, `.perms` and one directory per child (replacing `dir`).
private func materialize(_ node: Node, at dir: URL) throws {
    let fm = FileManager.default
    if fm.fileExists(atPath: dir.path) { try fm.removeItem(at: dir) }
    try fm.createDirectory(at: dir, withIntermediateDirectories: true)
    try Data(node.value).write(to: dir.appendingPathComponent(".value"))
    try Data(node.permissions.blob).write(to: dir.appendingPathComponent(".perms"))
    for child in node.children {
        try materialize(child.node, at: dir.appendingPathComponent(s(child.name)))
    }
}

/// A tree with binary values, multi-entry permissions, names that stress git's tree sort
/// (`a` vs `a-b` vs `a_b`, names starting with `-` that sort before `.perms`, upper case, digits,
/// `@`), and nesting.
private func sampleTree(_ gen: GenerationCounter) -> Node {
    let perms5 = Permissions([PermissionEntry(domid: 5, access: .read), PermissionEntry(domid: 7, access: .both)])
    let binary = Node(value: [0, 1, 2, 0xFF, 0x0A, 0x0D, 0x0A], permissions: .ownedBy(0), generation: gen.take())
    let deep = node("leaf", [("x", node("", [("y", node("zz", gen: gen))], gen: gen))], gen: gen)
    return node("", [
        ("a", node("A", [("b", binary), ("a", node("nested-a", gen: gen))], gen: gen)),
        ("a-b", node("dash", gen: gen)),
        ("a_b", node("underscore", perms: perms5, gen: gen)),
        ("aa", deep),
        ("B", node("upper", gen: gen)),
        ("0", node("zero", gen: gen)),
        ("@x", node("", gen: gen)),
        ("-", node("minus", gen: gen)),
        ("-x", node("minus-x", [("c", node("", gen: gen)), ("c-d", node("", gen: gen))], gen: gen)),
        ("--y", node("minus-minus", gen: gen)),
        ("local", node("", [("domain", node("", [("5", node("vm", perms: perms5, gen: gen))], gen: gen))], gen: gen)),
    ], gen: gen)
}

@Suite struct SHA1Tests {
    @Test func knownVectors() {
        #expect(hex(SHA1.hash([UInt8]())) == "da39a3ee5e6b4b0d3255bfef95601890afd80709")
        #expect(hex(SHA1.hash(b("abc"))) == "a9993e364706816aba3e25717850c26c9cd0d89d")
        #expect(hex(SHA1.hash(b("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")))
                == "84983e441c3bd26ebaae4aa1f95129e5e54670f1")
        #expect(hex(SHA1.hash(b("abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu")))
                == "a49b2446a02c645bf419f995b67091253a04a259")
        #expect(hex(SHA1.hash(b("The quick brown fox jumps over the lazy dog")))
                == "2fd4e1c67a2d28fced849ee1bb76e7391b93eb12")
    }

    @Test func millionA() {
        var hasher = SHA1()
        let chunk = [UInt8](repeating: 0x61, count: 1000)
        for _ in 0..<1000 { hasher.update(chunk) }
        #expect(hex(hasher.finalize()) == "34aa973cd4c4daa4f61eeb2bdbad27316534016f")
    }

    @Test func streamingEqualsOneShotAcrossBlockBoundaries() {
        var rng = SplitMix64(seed: 42)
        for length in [0, 1, 55, 56, 57, 63, 64, 65, 119, 120, 127, 128, 129, 1000] {
            let data = (0..<length).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            let oneShot = SHA1.hash(data)
            var hasher = SHA1()
            var index = 0
            while index < data.count {
                let step = 1 + rng.below(17)
                hasher.update(data[index..<min(index + step, data.count)])
                index += step
            }
            #expect(hasher.finalize() == oneShot, "length \(length)")
        }
    }

    @Test func objectIDHex() {
        let id = SHA1.hash(b("abc"))
        #expect(ObjectID(hex: id.hex) == id)
        #expect(ObjectID(hex: b("A9993E364706816ABA3E25717850C26C9CD0D89D")) == id)
        #expect(ObjectID(hex: b("a9993e")) == nil)
        #expect(ObjectID(hex: b("g9993e364706816aba3e25717850c26c9cd0d89d")) == nil)
    }
}

@Suite struct GitEncodingTests {
    @Test func blobIDs() {
        // `git hash-object -t blob /dev/null` (the brief quoted ...d6484b8b29fb5ac7d03c3a5d62bd, which is not git's id).
        #expect(hex(GitEncoding.objectID(.blob, body: [])) == "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391")
        // `printf 'hello\n' | git hash-object --stdin`
        #expect(hex(GitEncoding.objectID(.blob, body: b("hello\n"))) == "ce013625030ba8dba906f756967f9e9ca394464a")
        #expect(GitEncoding.header(.tree, length: 37) == b("tree 37") + [0])
        #expect(GitEncoding.header(.commit, length: 0) == b("commit 0") + [0])
        // The empty tree is never produced (every node has .value and .perms), but the encoding of
        // a lone node is fixed: two blob entries.
        let gen = GenerationCounter()
        let lone = node("", gen: gen)
        let body = GitEncoding.treeBody(lone)
        let emptyBlob = GitEncoding.objectID(.blob, body: [])
        let permsBlob = GitEncoding.objectID(.blob, body: b("n0\n"))
        #expect(body == b("100644 .perms") + [0] + permsBlob.bytes + b("100644 .value") + [0] + emptyBlob.bytes)
    }

    @Test func blobIDsMatchGitHashObject() throws {
        let dir = try makeTempDir("blob")
        defer { try? FileManager.default.removeItem(at: dir) }
        let samples: [[UInt8]] = [[], b("n0\n"), b("n0\nr5\n"), [0, 0xFF, 0x0A, 0x0D], Array(repeating: 0x61, count: 5000)]
        for sample in samples {
            let fromGit = try git(["hash-object", "-t", "blob", "--stdin"], in: dir, input: sample)
            #expect(fromGit == hex(GitEncoding.objectID(.blob, body: sample)), "\(sample.prefix(8))")
        }
    }

    @Test func permissionsBlobRoundTrip() {
        let perms = Permissions([PermissionEntry(domid: 0, access: .none), PermissionEntry(domid: 5, access: .read),
                                 PermissionEntry(domid: 4_294_967_295, access: .both), PermissionEntry(domid: 2, access: .write)])
        #expect(perms.blob == b("n0\nr5\nb4294967295\nw2\n"))
        #expect(Permissions(blob: perms.blob) == perms)
        #expect(Permissions(blob: b("n0")) == nil)  // missing final newline
        #expect(Permissions(blob: []) == nil)
        #expect(Permissions(blob: b("x0\n")) == nil)
        #expect(Permissions(blob: b("r4294967296\n")) == nil)
    }

    @Test func treeIDMatchesGitWriteTree() throws {
        let gen = GenerationCounter()
        let root = sampleTree(gen)
        let dir = try makeTempDir("tree")
        defer { try? FileManager.default.removeItem(at: dir) }
        try git(["init", "-q"], in: dir)
        let work = dir.appendingPathComponent("store")
        try materialize(root, at: work)
        try git(["add", "-A", "store"], in: dir)
        // write-tree gives the id of the repository root; the store is its only entry, so ask git
        // for the subtree id of `store` from the written tree.
        let top = try git(["write-tree"], in: dir)
        let storeTree = try git(["rev-parse", "\(top):store"], in: dir)
        #expect(storeTree == hex(GitEncoding.treeID(root)))
        // Every subtree id matches too.
        var checked = 0
        Tree.walk(root) { components, sub in
            guard !components.isEmpty, components.count <= 3 else { return }
            let path = "store/" + components.map { s($0) }.joined(separator: "/")
            if let id = try? git(["rev-parse", "\(top):\(path)"], in: dir) {
                #expect(id == hex(GitEncoding.treeID(sub)), "subtree \(path)")
                checked += 1
            } else {
                Issue.record("git has no tree at \(path)")
            }
        }
        #expect(checked >= 10)
    }

    @Test func serverStoreTreeIDMatchesGit() throws {
        // The initial store of a Server, plus writes, hashed by git.
        let server = XenstoreServer.Server(time: 1_700_000_000)
        let client = TestClient(server)
        client.write("/local/domain/3/name", "guest")
        client.write("/vm/uuid/data", "with space and\ttab")
        client.setPerms("/local/domain/3", "n3", "r0")
        let root = server.history.head.root
        let dir = try makeTempDir("server")
        defer { try? FileManager.default.removeItem(at: dir) }
        try materialize(root, at: dir)
        try git(["init", "-q"], in: dir)
        try git(["add", "-A"], in: dir)
        let top = try git(["write-tree"], in: dir)
        #expect(top == hex(GitEncoding.treeID(root)))
    }

    @Test func commitIDsMatchGit() throws {
        let time: Int64 = 1_700_000_123
        let server = XenstoreServer.Server(time: time)
        let client = TestClient(server, time: time + 5)
        client.write("/a/b", "1")
        let history = server.history
        let second = history.head
        let first = second.parents[0]
        let dir = try makeTempDir("commit")
        defer { try? FileManager.default.removeItem(at: dir) }
        try git(["init", "-q"], in: dir)

        // hash-object of the commit body equals History.id(of:).
        let secondID = hex(history.id(of: second))
        let firstID = hex(history.id(of: first))
        #expect(try git(["hash-object", "-t", "commit", "--stdin"], in: dir, input: history.commitBody(first)) == firstID)
        #expect(try git(["hash-object", "-t", "commit", "--stdin"], in: dir, input: history.commitBody(second)) == secondID)
        #expect(s(history.commitBody(first)).hasPrefix("tree \(hex(GitEncoding.treeID(first.root)))\nauthor Domain 0 <domain-0@xenstore> \(time) +0000\n"))
        #expect(s(history.commitBody(second)).contains("\nparent \(firstID)\n"))

        // git commit-tree with the same identity, date and message produces the same ids.
        func commitTree(_ commit: Commit, parent: String?) throws -> String {
            try materialize(commit.root, at: dir.appendingPathComponent("store"))
            try git(["add", "-A", "store"], in: dir)
            let top = try git(["write-tree"], in: dir)
            let tree = try git(["rev-parse", "\(top):store"], in: dir)
            #expect(tree == hex(GitEncoding.treeID(commit.root)))
            let identity = [
                "GIT_AUTHOR_NAME": "Domain \(commit.author)", "GIT_AUTHOR_EMAIL": "domain-\(commit.author)@xenstore",
                "GIT_AUTHOR_DATE": "@\(commit.time) +0000",
                "GIT_COMMITTER_NAME": "Domain \(commit.author)", "GIT_COMMITTER_EMAIL": "domain-\(commit.author)@xenstore",
                "GIT_COMMITTER_DATE": "@\(commit.time) +0000",
            ]
            var arguments = ["commit-tree", tree, "-m", s(commit.message)]
            if let parent { arguments += ["-p", parent] }
            return try git(arguments, in: dir, environment: identity)
        }
        let gitFirst = try commitTree(first, parent: nil)
        #expect(gitFirst == firstID)
        let gitSecond = try commitTree(second, parent: gitFirst)
        #expect(gitSecond == secondID)
        #expect(s(second.message) == "Domain 0: write /a/b")
    }

    @Test func mergeCommitIDMatchesGit() throws {
        let server = XenstoreServer.Server(time: 1_700_000_000)
        let c1 = TestClient(server)
        let c2 = TestClient(server)
        let t1 = c1.start()
        let t2 = c2.start()
        c1.write("/local/domain/1/x", "1", tx: t1)
        c2.write("/local/domain/2/x", "2", tx: t2)
        #expect(c1.end(t1).isOK)
        #expect(c2.end(t2).isOK)
        let history = server.history
        let merge = history.head
        #expect(merge.parents.count == 2)
        let dir = try makeTempDir("merge")
        defer { try? FileManager.default.removeItem(at: dir) }
        try git(["init", "-q"], in: dir)
        let id = hex(history.id(of: merge))
        let body = history.commitBody(merge)
        #expect(try git(["hash-object", "-t", "commit", "--stdin"], in: dir, input: body) == id)
        let lines = s(body).split(separator: "\n").map(String.init)
        #expect(lines.filter { $0.hasPrefix("parent ") }.count == 2)
        #expect(lines[1] == "parent \(hex(history.id(of: merge.parents[0])))")
        #expect(lines[2] == "parent \(hex(history.id(of: merge.parents[1])))")
    }

    @Test func idsAskedForInsideTheWindowSurviveEviction() {
        // With a tiny retained window, ids computed while commits were retained equal those of a
        // full chain, however many commits were evicted since.
        var config = ServerConfiguration()
        config.retainedCommits = 2
        let small = XenstoreServer.Server(configuration: config, time: 1_700_000_000)
        let large = XenstoreServer.Server(time: 1_700_000_000)
        let c1 = TestClient(small)
        let c2 = TestClient(large)
        for i in 0..<20 {
            c1.write("/k\(i % 3)", "\(i)")
            c2.write("/k\(i % 3)", "\(i)")
            _ = small.history.id(of: small.history.head)
        }
        #expect(small.history.id(of: small.history.head) == large.history.id(of: large.history.head))
        #expect(small.history.commitCount == 21)
    }

    @Test func commitsNobodyHashedAreSquashedWhenTheyLeaveTheWindow() throws {
        // Nothing asks for ids while the commits are made: the chain behind the head ends in a root
        // commit inside the window whose tree is the whole store (git accepts the chain).
        var config = ServerConfiguration()
        config.retainedCommits = 4
        let server = XenstoreServer.Server(configuration: config, time: 1_700_000_000)
        let c = TestClient(server)
        for i in 0..<20 { c.write("/k\(i % 3)", "\(i)") }
        var chain: [Commit] = [server.history.head]
        while let parent = chain.last!.parents.first { chain.append(parent) }
        #expect(chain.count <= 5)
        let oldest = chain.last!
        _ = server.history.id(of: server.history.head)
        #expect(oldest.parentCount == 0)
        #expect(!s(server.history.commitBody(oldest)).contains("parent "))
        let dir = try makeTempDir("squash")
        defer { try? FileManager.default.removeItem(at: dir) }
        try git(["init", "-q"], in: dir)
        for commit in chain {
            let body = server.history.commitBody(commit)
            #expect(try git(["hash-object", "-t", "commit", "--stdin"], in: dir, input: body)
                    == hex(server.history.id(of: commit)))
        }
        #expect(Tree.lookup(oldest.root, [b("k0")]) != nil, "the root commit holds the whole store")
    }

    @Test func anIDRequestHashesOnlyWithinItsBudget() throws {
        // Each write below changes the root directory (up to ~50 entries): a budget of 40 entries
        // lets one id request hash only the newest commit or two; older unhashed ones are squashed,
        // an id seen earlier stays findable, and git still accepts the chain that is left.
        var config = ServerConfiguration()
        config.idHashBudget = 40
        let server = XenstoreServer.Server(configuration: config, time: 1_700_000_000)
        let c = TestClient(server)
        c.write("/seen", "1")
        let seen = server.history.id(of: server.history.head)
        for i in 0..<50 { c.write("/k\(i)", "\(i)") }
        _ = server.history.id(of: server.history.head)
        var chain: [Commit] = [server.history.head]
        while let parent = chain.last!.parents.first { chain.append(parent) }
        #expect(chain.count <= 3)
        #expect(chain.last!.parentCount == 0)
        #expect(server.history.retainedCommits(matching: seen.hex).count == 1)
        let dir = try makeTempDir("budget")
        defer { try? FileManager.default.removeItem(at: dir) }
        try git(["init", "-q"], in: dir)
        for commit in chain {
            #expect(try git(["hash-object", "-t", "commit", "--stdin"], in: dir, input: server.history.commitBody(commit))
                    == hex(server.history.id(of: commit)))
        }
        // Without a budget (durable stores) the whole chain is hashed.
        config.idHashBudget = nil
        let whole = XenstoreServer.Server(configuration: config, time: 1_700_000_000)
        let w = TestClient(whole)
        w.write("/seen", "1")
        for i in 0..<50 { w.write("/k\(i)", "\(i)") }
        _ = whole.history.id(of: whole.history.head)
        #expect(whole.history.firstParentLog(limit: 1000).count == 52)
    }
}
