// Imported history is client input: every tree rule of TreeValidation, checked through loadTree and validate, and a hostile revision changing nothing.

import Testing
import XenstoreStore
import XenstoreWire
@testable import XenstoreServer

/// Git objects in memory, built by hand so that tests can make trees this daemon never writes.
struct ObjectPile {
    var bodies: [ObjectID: [UInt8]] = [:]

    static let blobMode = b("100644")
    static let treeMode = b("40000")

    mutating func blob(_ body: [UInt8]) -> ObjectID {
        let id = GitEncoding.objectID(.blob, body: body)
        bodies[id] = body
        return id
    }

    /// A tree from raw entries (mode, name, id), in the given order.
    mutating func tree(_ entries: [([UInt8], [UInt8], ObjectID)]) -> ObjectID {
        var body: [UInt8] = []
        for (mode, name, id) in entries {
            body += mode + [0x20] + name + [0] + id.bytes
        }
        let id = GitEncoding.objectID(.tree, body: body)
        bodies[id] = body
        return id
    }

    /// A well-formed node: `.perms`, `.value` and child trees.
    mutating func node(_ value: [UInt8] = [], perms: [UInt8] = b("n0\n"), _ children: [([UInt8], ObjectID)] = []) -> ObjectID {
        var entries: [([UInt8], [UInt8], ObjectID)] = [
            (ObjectPile.blobMode, GitEncoding.permsEntry, blob(perms)),
            (ObjectPile.blobMode, GitEncoding.valueEntry, blob(value)),
        ]
        for (name, id) in children { entries.append((ObjectPile.treeMode, name, id)) }
        return tree(entries)
    }

    /// Stores every object of a node tree as GitEncoding writes it; returns the root tree id.
    mutating func store(_ root: Node) -> ObjectID {
        let id = GitEncoding.treeID(root)
        Tree.walk(root) { _, node in
            bodies[GitEncoding.objectID(.tree, body: GitEncoding.treeBody(node))] = GitEncoding.treeBody(node)
            _ = blob(node.value)
            _ = blob(node.permissions.blob)
        }
        return id
    }

    func fetch(_ id: ObjectID) -> [UInt8]? { bodies[id] }
}

@Suite struct ImportValidationTests {
    /// Loads `root` both ways (building nodes, and validating without) and returns the errors.
    static func rejections(_ pile: ObjectPile, _ root: ObjectID) -> (load: GitDecodingError?, validate: GitDecodingError?) {
        var loadError: GitDecodingError? = nil
        do throws(GitDecodingError) {
            _ = try GitDecoding.loadTree(root, generations: GenerationCounter()) { pile.fetch($0) }
        } catch { loadError = error }
        var validateError: GitDecodingError? = nil
        var checked = TreeValidation.Checked()
        do throws(GitDecodingError) {
            try TreeValidation.validate(root, checked: &checked) { pile.fetch($0) }
        } catch { validateError = error }
        return (loadError, validateError)
    }

    /// One hostile tree per rule; each is rejected by both entry points naming the object, the
    /// entry and the rule.
    @Test func everyRuleRejectsItsTree() {
        struct Case { let rule: TreeRule; let build: (inout ObjectPile) -> (root: ObjectID, object: ObjectID, name: [UInt8]) }
        func withChild(_ name: [UInt8], _ pile: inout ObjectPile) -> (ObjectID, ObjectID, [UInt8]) {
            let root = pile.node([], [(b("ok"), pile.node()), (name, pile.node(b("evil")))])
            return (root, root, name)
        }
        let cases: [Case] = [
            Case(rule: .dotName) { withChild(b(".."), &$0) },
            Case(rule: .dotName) { withChild(b("."), &$0) },
            Case(rule: .slashInName) { withChild(b("a/b"), &$0) },
            Case(rule: .slashInName) { withChild(b("../../escaped-by-pull"), &$0) },
            Case(rule: .emptyName) { withChild([], &$0) },
            Case(rule: .invalidCharacter) { withChild(b("has space"), &$0) },
            Case(rule: .invalidCharacter) { withChild(b("x.y"), &$0) },
            Case(rule: .reservedNameAsSubtree) { withChild(GitEncoding.valueEntry, &$0) },
            Case(rule: .reservedNameAsSubtree) { withChild(GitEncoding.permsEntry, &$0) },
            Case(rule: .duplicateName) { pile in
                let child = pile.node()
                let root = pile.tree([(ObjectPile.blobMode, GitEncoding.permsEntry, pile.blob(b("n0\n"))),
                                      (ObjectPile.treeMode, b("twin"), child), (ObjectPile.treeMode, b("twin"), pile.node(b("2")))])
                return (root, root, b("twin"))
            },
            Case(rule: .duplicateName) { pile in
                let root = pile.tree([(ObjectPile.blobMode, GitEncoding.permsEntry, pile.blob(b("n0\n"))),
                                      (ObjectPile.blobMode, GitEncoding.valueEntry, pile.blob(b("1"))),
                                      (ObjectPile.blobMode, GitEncoding.valueEntry, pile.blob(b("2")))])
                return (root, root, GitEncoding.valueEntry)
            },
            Case(rule: .unknownEntry) { pile in
                let root = pile.tree([(ObjectPile.blobMode, GitEncoding.permsEntry, pile.blob(b("n0\n"))),
                                      (ObjectPile.blobMode, b("README"), pile.blob(b("hello")))])
                return (root, root, b("README"))
            },
            Case(rule: .unknownEntry) { pile in
                let root = pile.tree([(ObjectPile.blobMode, GitEncoding.permsEntry, pile.blob(b("n0\n"))),
                                      (b("120000"), GitEncoding.valueEntry, pile.blob(b("/etc/passwd")))])
                return (root, root, GitEncoding.valueEntry)
            },
            Case(rule: .missingPermissions) { pile in
                let inner = pile.tree([(ObjectPile.blobMode, GitEncoding.valueEntry, pile.blob(b("v")))])
                return (pile.node([], [(b("inner"), inner)]), inner, GitEncoding.permsEntry)
            },
            Case(rule: .malformedPermissions) { pile in
                let inner = pile.node(perms: b("x5\n"))
                return (pile.node([], [(b("inner"), inner)]), pile.blob(b("x5\n")), GitEncoding.permsEntry)
            },
            Case(rule: .tooManyPermissions) { pile in
                var perms: [UInt8] = []
                for domid in 0..<100_000 { perms += b("r\(domid)\n") }
                let inner = pile.node(perms: perms)
                return (pile.node([], [(b("inner"), inner)]), pile.blob(perms), GitEncoding.permsEntry)
            },
            Case(rule: .valueTooLarge) { pile in
                let big = [UInt8](repeating: 0x41, count: 1 << 20)
                let inner = pile.node(big)
                return (pile.node([], [(b("inner"), inner)]), pile.blob(big), GitEncoding.valueEntry)
            },
            Case(rule: .pathTooLong) { pile in
                // 1,600 nested "a": the deepest path is 3,200 bytes.
                var current = pile.node()
                var ids = [current]
                for _ in 0..<1600 {
                    current = pile.node([], [(b("a"), current)])
                    ids.append(current)
                }
                return (current, ids[1600 - 1537], [])
            },
        ]
        for (index, testCase) in cases.enumerated() {
            var pile = ObjectPile()
            let (root, object, name) = testCase.build(&pile)
            let (load, validate) = ImportValidationTests.rejections(pile, root)
            let expected = GitDecodingError.invalid(object, name: name, rule: testCase.rule)
            #expect(load == expected, "case \(index) \(testCase.rule): \(String(describing: load))")
            #expect(validate == expected, "case \(index) \(testCase.rule): \(String(describing: validate))")
        }
    }

    /// The message names the object, the entry and the rule.
    @Test func explanationNamesObjectEntryAndRule() {
        var pile = ObjectPile()
        let root = pile.node([], [(b(".."), pile.node())])
        let error = ImportValidationTests.rejections(pile, root).load
        let text = s(error?.explanation ?? [])
        #expect(text == "object \(s(root.hex)) entry '..': a child is named '.' or '..'")
    }

    /// What this daemon writes always loads, including what only dom0 can create: a value of a
    /// whole payload and a permission list far over the `permissions` quota.
    @Test func storesTheDaemonWritesAreAccepted() throws {
        let server = Server(time: 1_700_000_000)
        let c = TestClient(server)
        #expect(c.write("/big", String(repeating: "v", count: Limits.payloadMax - 6)).isOK)
        #expect(c.request(.setPerms, Payload.join([b("/big")] + (0..<600).map { b("r\($0)") })).isOK)
        for i in 0..<300 { #expect(c.write("/dir/child-\(i)/leaf_@-x", "\(i)").isOK) }
        var pile = ObjectPile()
        let rootID = pile.store(server.history.head.root)
        let (load, validate) = ImportValidationTests.rejections(pile, rootID)
        #expect(load == nil && validate == nil)
        let loaded = try GitDecoding.loadTree(rootID, generations: GenerationCounter()) { pile.fetch($0) }
        #expect(Tree.equal(loaded, server.history.head.root))
    }

    /// Validating many commits of one history reads each shared subtree once.
    @Test func sharedSubtreesAreCheckedOnce() throws {
        var pile = ObjectPile()
        var big: [([UInt8], ObjectID)] = []
        for i in 0..<200 { big.append((b("n\(i)"), pile.node(b("\(i)")))) }
        let shared = pile.node([], big)
        let first = pile.node([], [(b("shared"), shared), (b("x"), pile.node(b("1")))])
        let second = pile.node([], [(b("shared"), shared), (b("x"), pile.node(b("2")))])
        var reads = 0
        var checked = TreeValidation.Checked()
        try TreeValidation.validate(first, checked: &checked) { reads += 1; return pile.fetch($0) }
        let afterFirst = reads
        try TreeValidation.validate(second, checked: &checked) { reads += 1; return pile.fetch($0) }
        #expect(afterFirst > 400)
        #expect(reads - afterFirst <= 4)  // the root, x and x's blobs
    }

    /// A revision whose tree breaks the rules, offered to the daemon (restore, revert, merge of a
    /// pulled commit), is refused and changes nothing: no commit, no event.
    @Test func hostileRevisionChangesNothing() {
        let server = Server(time: 1_700_000_000)
        let c = TestClient(server)
        #expect(c.write("/shared/key", "0").isOK)
        #expect(c.watch("/", "all").isOK)
        _ = c.takeEvents()
        var pile = ObjectPile()
        let hostileRoot = pile.node([], [(b("shared"), pile.node([], [(b("key"), pile.node(b("0")))])),
                                         (b(".."), pile.node(b("escaped")))])
        let commitBody = b("tree ") + hostileRoot.hex + b("\nauthor Domain 0 <d@x> 1700000000 +0000\n\nhostile\n")
        let commitID = GitEncoding.objectID(.commit, body: commitBody)
        let history = server.history
        server.revisionLoader = { id in
            guard id == commitID, let record = try? GitDecoding.parseCommit(commitBody, id: id),
                  let root = try? GitDecoding.loadTree(record.tree, generations: history.generations, fetch: { pile.fetch($0) })
            else { return nil }
            return history.storedCommit(record, id: id, root: root)
        }
        let before = server.history.commitCount
        let hex = s(commitID.hex)
        #expect(c.request(.control, args("restore", hex)).error == .ENOENT)
        #expect(c.request(.control, args("revert", hex)).error == .ENOENT)
        #expect(c.request(.control, args("merge", hex, hex)).error == .ENOENT)
        #expect(server.history.commitCount == before)
        #expect(c.takeEvents().isEmpty)
        #expect(dump(server)["/.."] == nil)
    }
}
