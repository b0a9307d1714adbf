// Immutable tree operations and the three-way merge: sharing, conflicts, and 3000-level paths without recursion.

import Testing
import XenstoreStore

/// Sets (creating parents) or removes a value at `path` in `root`, copy-on-write.
private func set(_ root: Node, _ path: String, _ value: String?, perms: Permissions? = nil,
                 _ gen: GenerationCounter) -> Node {
    let components = comps(path)
    if let value {
        let spine = Tree.spine(root, components)
        var result = root
        // Create missing ancestors one by one.
        for depth in stride(from: spine.count, to: components.count, by: 1) {
            result = Tree.replacing(result, at: Array(components.prefix(depth)),
                                    with: node("", gen: gen), generations: gen)
        }
        let existing = Tree.lookup(result, components)
        var replacement = existing?.withValue(b(value), generation: gen.take()) ?? node(value, gen: gen)
        if let perms { replacement = replacement.withPermissions(perms, generation: gen.take()) }
        return Tree.replacing(result, at: components, with: replacement, generations: gen)
    }
    return Tree.replacing(root, at: components, with: nil, generations: gen)
}

private func values(_ root: Node) -> [String: String] {
    var out: [String: String] = [:]
    Tree.walk(root) { c, n in out["/" + c.map { s($0) }.joined(separator: "/")] = s(n.value) }
    return out
}

@Suite struct TreeTests {
    @Test func lookupSpineAndReplaceShareUnchangedSubtrees() {
        let gen = GenerationCounter()
        var root = node("", gen: gen)
        root = set(root, "/a/b/c", "1", gen)
        root = set(root, "/x/y", "2", gen)
        #expect(Tree.count(root) == 6)
        #expect(Tree.lookup(root, comps("/a/b/c")).map { s($0.value) } == "1")
        #expect(Tree.lookup(root, comps("/a/b/zz")) == nil)
        #expect(Tree.spine(root, comps("/a/b/zz/q")).count == 3)  // root, a, b
        let before = root
        let after = set(root, "/a/b/c", "9", gen)
        #expect(after !== before)
        #expect(after.child(b("x")) === before.child(b("x")))  // untouched subtree shared
        #expect(after.child(b("a")) !== before.child(b("a")))
        #expect(Tree.lookup(before, comps("/a/b/c")).map { s($0.value) } == "1")  // old version intact
        let removed = Tree.replacing(after, at: comps("/a/b"), with: nil, generations: gen)
        #expect(values(removed) == ["/": "", "/a": "", "/x": "", "/x/y": "2"])
        // Removing a missing child returns the same parent (no spurious copies below the root).
        let noop = before.settingChild(b("nothere"), to: nil, generation: gen.take())
        #expect(noop === before)
    }

    @Test func childrenStaySortedAndUnique() {
        let gen = GenerationCounter()
        var n = node("", gen: gen)
        for name in ["m", "a", "z", "b", "a", "Z", "0"] {
            n = n.settingChild(b(name), to: node(name, gen: gen), generation: gen.take())
        }
        #expect(n.childNames.map(s) == ["0", "Z", "a", "b", "m", "z"])
        #expect(n.child(b("m")).map { s($0.value) } == "m")
    }

    @Test func equalIgnoresGenerationsAndWalkIsPreorder() {
        let gen = GenerationCounter()
        let a = set(set(node("", gen: gen), "/p/q", "v", gen), "/p/r", "w", gen)
        let b2 = set(set(node("", gen: gen), "/p/r", "w", gen), "/p/q", "v", gen)
        #expect(a !== b2)
        #expect(Tree.equal(a, b2))
        #expect(!Tree.equal(a, set(b2, "/p/q", "V", gen)))
        #expect(!Tree.equal(a, set(b2, "/p/q", "v", perms: .ownedBy(3), gen)))
        #expect(!Tree.equal(a, set(b2, "/p/s", "", gen)))
        var order: [String] = []
        Tree.walk(a) { c, _ in order.append("/" + c.map { s($0) }.joined(separator: "/")) }
        #expect(order == ["/", "/p", "/p/q", "/p/r"])
        // Generations are fresh for every new node.
        #expect(Tree.lookup(a, comps("/p"))!.generation != Tree.lookup(b2, comps("/p"))!.generation)
    }

    @Test func deepPathReplaceAndHashWithoutRecursion() {
        let gen = GenerationCounter()
        let depth = 3000
        var chain = node("bottom", gen: gen)
        for _ in 0..<depth { chain = node("", [("d", chain)], gen: gen) }
        let components = [[UInt8]](repeating: b("d"), count: depth)
        #expect(Tree.lookup(chain, components).map { s($0.value) } == "bottom")
        let replaced = Tree.replacing(chain, at: components, with: node("new", gen: gen), generations: gen)
        #expect(Tree.lookup(replaced, components).map { s($0.value) } == "new")
        #expect(Tree.count(replaced) == depth + 1)
        #expect(!Tree.equal(chain, replaced))
        #expect(GitEncoding.treeID(chain) != GitEncoding.treeID(replaced))
        // Rebuilding the same content gives the same id (content addressing).
        var again = node("new", gen: gen)
        for _ in 0..<depth { again = node("", [("d", again)], gen: gen) }
        #expect(GitEncoding.treeID(again) == GitEncoding.treeID(replaced))
        #expect(Tree.equal(again, replaced))
    }
}

@Suite struct MergeTests {
    let gen = GenerationCounter()

    func baseTree() -> Node {
        var root = node("", gen: gen)
        for (path, value) in [("/a", "1"), ("/b", "1"), ("/c/d", "1"), ("/c/e", "1")] {
            root = set(root, path, value, gen)
        }
        return root
    }

    func merge(_ base: Node, _ ours: Node, _ theirs: Node) -> Result<Node, MergeConflict> {
        do { return .success(try ThreeWayMerge.merge(base: base, ours: ours, theirs: theirs, generations: gen)) }
        catch { return .failure(error) }
    }

    @Test func disjointChangesMerge() throws {
        let base = baseTree()
        let ours = set(set(base, "/a", "2", gen), "/c/new", "n", gen)
        let theirs = set(set(base, "/b", "3", gen), "/c/e", nil, gen)
        let merged = try merge(base, ours, theirs).get()
        #expect(values(merged) == ["/": "", "/a": "2", "/b": "3", "/c": "", "/c/d": "1", "/c/new": "n"])
        // Symmetric.
        #expect(Tree.equal(try merge(base, theirs, ours).get(), merged))
        // An unchanged subtree is shared, not copied.
        let onlyOurs = try merge(base, ours, base).get()
        #expect(onlyOurs === ours)
    }

    @Test func sameValueChangedDifferentlyConflicts() {
        let base = baseTree()
        let ours = set(base, "/c/d", "x", gen)
        let theirs = set(base, "/c/d", "y", gen)
        #expect(throws: MergeConflict.value(path: comps("/c/d"))) {
            _ = try ThreeWayMerge.merge(base: base, ours: ours, theirs: theirs, generations: gen)
        }
        // Both creating the same new node with different values conflicts too.
        let o2 = set(base, "/n", "1", gen)
        let t2 = set(base, "/n", "2", gen)
        #expect(throws: MergeConflict.value(path: comps("/n"))) {
            _ = try ThreeWayMerge.merge(base: base, ours: o2, theirs: t2, generations: gen)
        }
    }

    @Test func sameChangeOnBothSidesMerges() throws {
        let base = baseTree()
        let ours = set(set(base, "/a", "same", gen), "/new/x", "v", gen)
        let theirs = set(set(base, "/a", "same", gen), "/new/x", "v", gen)
        #expect(ours.child(b("a")) !== theirs.child(b("a")))
        let merged = try merge(base, ours, theirs).get()
        #expect(Tree.equal(merged, ours))
        // Both deleting the same node merges as well.
        let d1 = set(base, "/c/d", nil, gen)
        let d2 = set(base, "/c/d", nil, gen)
        #expect(values(try merge(base, d1, d2).get())["/c/d"] == nil)
    }

    @Test func deleteVersusModifyConflicts() {
        let base = baseTree()
        let deleted = set(base, "/c", nil, gen)
        let modified = set(base, "/c/d", "2", gen)
        #expect(throws: MergeConflict.deleteModify(path: comps("/c"))) {
            _ = try ThreeWayMerge.merge(base: base, ours: deleted, theirs: modified, generations: gen)
        }
        #expect(throws: MergeConflict.deleteModify(path: comps("/c"))) {
            _ = try ThreeWayMerge.merge(base: base, ours: modified, theirs: deleted, generations: gen)
        }
        // Deleting a parent while the other side adds a child below it also conflicts.
        let added = set(base, "/c/zz", "new", gen)
        #expect(throws: MergeConflict.deleteModify(path: comps("/c"))) {
            _ = try ThreeWayMerge.merge(base: base, ours: deleted, theirs: added, generations: gen)
        }
    }

    @Test func valueVersusPermissionsOnSameNodeMerges() throws {
        let base = baseTree()
        let ours = set(base, "/a", "2", gen)
        let newPerms = Permissions([PermissionEntry(domid: 0, access: .none), PermissionEntry(domid: 4, access: .read)])
        let a = Tree.lookup(base, comps("/a"))!
        let theirs = Tree.replacing(base, at: comps("/a"), with: a.withPermissions(newPerms, generation: gen.take()),
                                    generations: gen)
        let merged = try merge(base, ours, theirs).get()
        let node = try #require(Tree.lookup(merged, comps("/a")))
        #expect(s(node.value) == "2")
        #expect(node.permissions == newPerms)
        // Different permission changes conflict.
        let otherPerms = Permissions.ownedBy(9)
        let ours2 = Tree.replacing(base, at: comps("/a"), with: a.withPermissions(otherPerms, generation: gen.take()),
                                   generations: gen)
        #expect(throws: MergeConflict.permissions(path: comps("/a"))) {
            _ = try ThreeWayMerge.merge(base: base, ours: ours2, theirs: theirs, generations: gen)
        }
    }

    /// A copy of `root` made of new node objects (as a tree loaded again from storage is).
    func copy(_ root: Node) -> Node {
        var children: [(String, Node)] = []
        for child in root.children { children.append((s(child.name), copy(child.node))) }
        return node(s(root.value), perms: root.permissions, children, gen: gen)
    }

    /// A node deleted on one side and unchanged by content (but another object) on the other is
    /// deleted: not a conflict, in either direction.
    @Test func deletionAgainstAnEqualCopyOfTheBaseMerges() throws {
        let base = baseTree()
        let loaded = copy(base)
        #expect(loaded.child(b("c")) !== base.child(b("c")))
        let deleted = set(base, "/c", nil, gen)
        #expect(values(try merge(base, loaded, deleted).get())["/c"] == nil)
        #expect(values(try merge(base, deleted, loaded).get())["/c"] == nil)
        // A changed copy still conflicts.
        #expect(throws: MergeConflict.deleteModify(path: comps("/c"))) {
            _ = try ThreeWayMerge.merge(base: base, ours: set(loaded, "/c/d", "2", gen), theirs: deleted, generations: gen)
        }
    }

    /// Preferring theirs: every true conflict is settled for their side, node by node and field
    /// by field, reported in order; what does not conflict merges as usual.
    @Test func preferringTheirsSettlesEachConflictForThem() throws {
        let base = baseTree()
        let perms9 = Permissions.ownedBy(9)
        let perms4 = Permissions.ownedBy(4)
        // ours: /a value, /b permissions, /c/d value and /n created; deletes /c/e.
        var ours = set(base, "/a", "ours", gen)
        ours = set(ours, "/b", "1", perms: perms9, gen)
        ours = set(ours, "/c/d", "ours", gen)
        ours = set(ours, "/n", "ours", gen)
        ours = set(ours, "/only-ours", "o", gen)
        ours = set(ours, "/c/e", nil, gen)
        // theirs: /a value and permissions, /b value only, /c/d value, /n created, /c/e changed.
        var theirs = set(base, "/a", "theirs", perms: perms4, gen)
        theirs = set(theirs, "/b", "theirs", gen)
        theirs = set(theirs, "/c/d", "theirs", gen)
        theirs = set(theirs, "/n", "theirs", gen)
        theirs = set(theirs, "/c/e", "theirs", gen)
        theirs = set(theirs, "/only-theirs", "t", gen)
        let (merged, overridden) = ThreeWayMerge.mergePreferringTheirs(base: base, ours: ours, theirs: theirs, generations: gen)
        #expect(values(merged) == ["/": "", "/a": "theirs", "/b": "theirs", "/c": "", "/c/d": "theirs",
                                   "/c/e": "theirs", "/n": "theirs", "/only-ours": "o", "/only-theirs": "t"])
        // /a: only they changed the permissions; /b: only we did (kept, not a conflict).
        #expect(Tree.lookup(merged, comps("/a"))?.permissions == perms4)
        #expect(Tree.lookup(merged, comps("/b"))?.permissions == perms9)
        #expect(Set(overridden) == [.value(path: comps("/a")), .value(path: comps("/c/d")), .value(path: comps("/n")),
                                    .deleteModify(path: comps("/c/e"))])
        #expect(overridden.count == 4)
        // Both changed the permissions differently: theirs, reported; the value merges on its own.
        let o2 = set(base, "/a", "ours", perms: perms9, gen)
        let t2 = set(base, "/a", "1", perms: perms4, gen)
        let (m2, r2) = ThreeWayMerge.mergePreferringTheirs(base: base, ours: o2, theirs: t2, generations: gen)
        #expect(Tree.lookup(m2, comps("/a")).map { s($0.value) } == "ours")
        #expect(Tree.lookup(m2, comps("/a"))?.permissions == perms4)
        #expect(r2 == [.permissions(path: comps("/a"))])
        // They deleted what we changed: deleted. We deleted what they changed: theirs, whole.
        let (m3, r3) = ThreeWayMerge.mergePreferringTheirs(base: base, ours: set(base, "/c/d", "x", gen),
                                                           theirs: set(base, "/c", nil, gen), generations: gen)
        #expect(values(m3)["/c"] == nil && r3 == [.deleteModify(path: comps("/c"))])
        let (m4, r4) = ThreeWayMerge.mergePreferringTheirs(base: base, ours: set(base, "/c", nil, gen),
                                                           theirs: set(base, "/c/d", "x", gen), generations: gen)
        #expect(values(m4)["/c/d"] == "x" && values(m4)["/c/e"] == "1" && r4 == [.deleteModify(path: comps("/c"))])
        // Without conflicts it is the ordinary merge.
        let plain = ThreeWayMerge.mergePreferringTheirs(base: base, ours: set(base, "/a", "2", gen),
                                                        theirs: set(base, "/b", "2", gen), generations: gen)
        #expect(plain.overridden.isEmpty && values(plain.root)["/a"] == "2" && values(plain.root)["/b"] == "2")
    }

    @Test func deepPathMergeWithoutStackOverflow() throws {
        let depth = 3000
        var chain = node("bottom", gen: gen)
        for _ in 0..<depth { chain = node("", [("d", chain)], gen: gen) }
        let base = chain
        let bottomPath = [[UInt8]](repeating: b("d"), count: depth)
        let midPath = [[UInt8]](repeating: b("d"), count: depth / 2)
        // Ours changes the bottom value; theirs adds a sibling half way down.
        let ours = Tree.replacing(base, at: bottomPath,
                                  with: Tree.lookup(base, bottomPath)!.withValue(b("changed"), generation: gen.take()),
                                  generations: gen)
        let theirs = Tree.replacing(base, at: midPath + [b("side")], with: node("s", gen: gen), generations: gen)
        let merged = try merge(base, ours, theirs).get()
        #expect(Tree.lookup(merged, bottomPath).map { s($0.value) } == "changed")
        #expect(Tree.lookup(merged, midPath + [b("side")]).map { s($0.value) } == "s")
        #expect(Tree.count(merged) == depth + 2)
        // Conflict at the bottom is reported with the full path.
        let theirs2 = Tree.replacing(base, at: bottomPath,
                                     with: Tree.lookup(base, bottomPath)!.withValue(b("other"), generation: gen.take()),
                                     generations: gen)
        #expect(throws: MergeConflict.value(path: bottomPath)) {
            _ = try ThreeWayMerge.merge(base: base, ours: ours, theirs: theirs2, generations: gen)
        }
        _ = GitEncoding.treeID(merged)
    }
}
