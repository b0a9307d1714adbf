// ChildList: sorted children in shared chunks — agreement with a plain sorted model, sharing between versions, big-directory merges and diffs.

import Testing
import XenstoreStore

@Suite struct ChildListTests {
    /// Random adds, replacements and removals on one list, checked after every step against a
    /// sorted array: order, count, lookups, indexing, iteration and name bytes.
    @Test(arguments: [1, 2, 3] as [UInt64])
    func agreesWithASortedArray(seed: UInt64) {
        var rng = SplitMix64(seed: seed)
        let gen = GenerationCounter()
        var list = ChildList()
        var model: [([UInt8], Node)] = []
        for step in 0..<6000 {
            // Grow to ~1,500 entries, then shrink back below the flat limit, to cross every threshold.
            let removing = step < 3000 ? rng.below(10) < 2 : rng.below(10) < 8
            let name = b(String(rng.below(2000)))
            let index = model.firstIndex { !$0.0.lexicographicallyPrecedes(name) } ?? model.count
            let present = index < model.count && model[index].0 == name
            if removing {
                let changed = list.setting(name, to: nil)
                #expect((changed == nil) == !present)
                if let changed { list = changed }
                if present { model.remove(at: index) }
            } else {
                let child = node(String(step), gen: gen)
                list = list.setting(name, to: child)!
                if present { model[index].1 = child } else { model.insert((name, child), at: index) }
            }
            if step % 97 == 0 || step == 5999 {
                #expect(list.count == model.count)
                #expect(list.map { $0.name } == model.map { $0.0 })
                #expect(zip(list, model).allSatisfy { $0.node === $1.1 })
                #expect((0..<list.count).allSatisfy { list[$0].name == model[$0].0 })
                #expect(list.nameBytes == model.reduce(0) { $0 + $1.0.count + 1 })
                for (name, child) in model.prefix(40) { #expect(list.node(named: name) === child) }
                #expect(list.node(named: b("x")) == nil)
            }
        }
        #expect(model.count < 700, "the run shrank the list again")
    }

    /// `forEachChange` reports exactly the names whose child differs (added, removed, replaced),
    /// once each, in name order, for flat and chunked lists and the change of one into the other.
    @Test(arguments: [1, 2, 3, 4] as [UInt64])
    func forEachChangeReportsExactlyTheDifferences(seed: UInt64) {
        var rng = SplitMix64(seed: seed)
        let gen = GenerationCounter()
        var list = ChildList()
        for _ in 0..<(seed % 2 == 0 ? 60 : 600) {
            list = list.setting(b(String(rng.below(3000))), to: node("", gen: gen))!
        }
        for _ in 0..<200 {
            var changed = list
            for _ in 0..<(1 + rng.below(rng.chance(80) ? 2 : 150)) {
                let name = b(String(rng.below(3000)))
                changed = changed.setting(name, to: rng.chance(30) ? nil : node("", gen: gen)) ?? changed
            }
            var expected: [String] = []
            var all = Set(list.map { s($0.name) })
            for child in changed { all.insert(s(child.name)) }
            for name in all.sorted(by: { b($0).lexicographicallyPrecedes(b($1)) })
            where list.node(named: b(name)) !== changed.node(named: b(name)) {
                expected.append(name)
            }
            var reported: [String] = []
            ChildList.forEachChange(list, changed) { compactName, old, new in
                let name = compactName.array
                #expect(old === list.node(named: name) && new === changed.node(named: name))
                reported.append(s(name))
            }
            #expect(reported == expected)
            list = changed
        }
    }

    /// One change to a 10,000-entry list leaves all but one chunk shared, so comparing the two
    /// versions looks at one chunk's names, not 10,000.
    @Test func versionsShareUnchangedChunks() {
        let gen = GenerationCounter()
        let leaf = node("", gen: gen)
        let names = (0..<10_000).map { b(String($0)) }.sorted { $0.lexicographicallyPrecedes($1) }
        let big = ChildList(names.map { Child(name: $0, node: leaf) })
        #expect(ChildList.unsharedNames(big, big).isEmpty)
        let replaced = big.setting(b("5000"), to: node("new", gen: gen))!
        let unshared = ChildList.unsharedNames(big, replaced)
        #expect(unshared.contains(b("5000")))
        #expect(unshared.count <= ChildList.chunkLimit)
        let added = replaced.setting(b("5000x"), to: leaf)!
        #expect(ChildList.unsharedNames(big, added).count <= 2 * ChildList.chunkLimit + 1)
        // Two flat lists: every name of either.
        let small = ChildList([Child(name: b("a"), node: leaf)])
        #expect(ChildList.unsharedNames(small, ChildList([Child(name: b("b"), node: leaf)])).map(s) == ["a", "b"])
    }

    /// Equality, diff and three-way merge of trees whose directory has 5,000 children agree with
    /// what a walk of every child says.
    @Test func bigDirectoriesMergeDiffAndCompareCorrectly() throws {
        let gen = GenerationCounter()
        var base = node("", gen: gen)
        let domains = (0..<5000).map { b(String($0)) }.sorted { $0.lexicographicallyPrecedes($1) }
        let directory = Node(value: [], permissions: .ownedBy(0),
                             children: domains.map { Child(name: $0, node: node($0 == b("7") ? "seven" : "", gen: gen)) },
                             generation: gen.take())
        base = Tree.replacing(base, at: comps("/d"), with: directory, generations: gen)
        func write(_ root: Node, _ path: String, _ value: String) -> Node {
            let existing = Tree.lookup(root, comps(path))
            let replacement = existing.map { $0.withValue(b(value), generation: gen.take()) } ?? node(value, gen: gen)
            return Tree.replacing(root, at: comps(path), with: replacement, generations: gen)
        }
        let ours = write(write(base, "/d/12", "ours"), "/d/4999", "ours")
        let theirs = write(write(base, "/d/3000", "theirs"), "/d/new", "theirs")
        let merged = try ThreeWayMerge.merge(base: base, ours: ours, theirs: theirs, generations: gen)
        let expected = write(write(write(write(base, "/d/12", "ours"), "/d/4999", "ours"), "/d/3000", "theirs"),
                             "/d/new", "theirs")
        #expect(Tree.equal(merged, expected))
        #expect(!Tree.equal(merged, ours))
        #expect(Tree.lookup(merged, comps("/d"))!.children.count == 5001)
        #expect(Tree.lookup(merged, comps("/d/7")).map { s($0.value) } == "seven")
        var changes: [String] = []
        TreeDiff.changes(from: base, to: merged) { change in
            switch change {
            case .added(let path, _): changes.append("+" + path.map(s).joined(separator: "/"))
            case .removed(let path, _): changes.append("-" + path.map(s).joined(separator: "/"))
            case .modified(let path, _, _): changes.append("~" + path.map(s).joined(separator: "/"))
            }
        }
        #expect(changes == ["~d/12", "~d/3000", "~d/4999", "+d/new"])
        #expect(throws: MergeConflict.value(path: comps("/d/12"))) {
            _ = try ThreeWayMerge.merge(base: base, ours: ours, theirs: write(base, "/d/12", "other"), generations: gen)
        }
        // A child removed on one side: equality notices a missing name inside an unshared chunk.
        let removed = Tree.replacing(base, at: comps("/d/12"), with: nil, generations: gen)
        #expect(!Tree.equal(removed, base))
        #expect(Tree.equal(Tree.replacing(removed, at: comps("/d/12"), with: Tree.lookup(base, comps("/d/12")),
                                          generations: gen), base))
    }

    /// Persisting a change next to the tree written last visits exactly the objects a full check
    /// visits, while looking up the ids of one chunk instead of all 5,000 siblings.
    @Test func objectsSinceThePreviousTreeAreTheNewOnesOnly() {
        let gen = GenerationCounter()
        let names = (0..<5000).map { b(String($0)) }.sorted { $0.lexicographicallyPrecedes($1) }
        let directory = Node(value: [], permissions: .ownedBy(0),
                             children: names.map { Child(name: $0, node: node(s($0), gen: gen)) },
                             generation: gen.take())
        let base = Tree.replacing(node("", gen: gen), at: comps("/d"), with: directory, generations: gen)
        var stored: Set<ObjectID> = []
        GitEncoding.forEachObject(base, skipping: { _ in false }) { id, _, _ in stored.insert(id) }
        let changed = Tree.replacing(base, at: comps("/d/2500"), with: node("new", gen: gen), generations: gen)
        var full: [ObjectID] = []
        var fullLookups = 0
        GitEncoding.forEachObject(changed, skipping: { fullLookups += 1; return stored.contains($0) }) { id, _, _ in
            full.append(id)
        }
        var incremental: [ObjectID] = []
        var incrementalLookups = 0
        GitEncoding.forEachObject(changed, since: base, skipping: { incrementalLookups += 1; return stored.contains($0) }) {
            id, _, _ in incremental.append(id)
        }
        #expect(Set(incremental) == Set(full))
        #expect(incremental.contains(GitEncoding.treeID(changed)))
        #expect(fullLookups >= 5000)
        #expect(incrementalLookups < 300)
    }
}
