// Three-way, tree-structured merge of two versions of a tree against their common base.

/// Why a three-way merge could not combine two versions.
public enum MergeConflict: Error, Hashable, Sendable {
    /// Both sides changed the value of the node at this path differently.
    case value(path: [[UInt8]])
    /// Both sides changed the permissions of the node at this path differently.
    case permissions(path: [[UInt8]])
    /// One side deleted the node at this path while the other changed it (or created it anew).
    case deleteModify(path: [[UInt8]])
}

/// Three-way merge of node trees, node by node: value, permissions and each child merge
/// independently, so changes to different nodes — or to the value and the permissions of one
/// node — never conflict. Unchanged subtrees are detected by identity and never descended into.
/// A side that deleted a node the other side still holds conflicts only if that side changed it:
/// a node equal to the base's by content (e.g. loaded again from storage) counts as unchanged.
public enum ThreeWayMerge {
    private final class Frame {
        let path: [[UInt8]]
        let base: Node?
        let ours: Node
        let theirs: Node
        /// The children that differ between the two sides, with our node and theirs (nil: absent).
        let differing: [(name: [UInt8], ours: Node?, theirs: Node?)]
        var index = 0
        /// Starts as our children; every name whose merge differs from ours is set in it.
        var merged: ChildList

        init(path: [[UInt8]], base: Node?, ours: Node, theirs: Node) {
            self.path = path
            self.base = base
            self.ours = ours
            self.theirs = theirs
            // Only names whose child differs between the two sides: a name holding the same node
            // on both (every name of a chunk both share, most names of a small directory) merges
            // to that node, so it is skipped without a lookup or a copy of its name.
            var differing: [(name: [UInt8], ours: Node?, theirs: Node?)] = []
            ChildList.forEachChange(ours.children, theirs.children) { name, mine, other in
                differing.append((name.array, mine, other))
            }
            self.differing = differing
            self.merged = ours.children
        }

        /// Records the merged child `name` (nil: absent); `ours` is our child of that name.
        func set(_ name: [UInt8], _ node: Node?, ours: Node?) {
            if node === ours { return }
            if let changed = merged.setting(name, to: node) { merged = changed }
        }
    }

    /// Result of merging one slot (node or absence) without descending.
    private enum Shortcut {
        case resolved(Node?)
        case descend(base: Node?, ours: Node, theirs: Node)
    }

    private static func shortcut<Failure: Error>(base: Node?, ours: Node?, theirs: Node?, path: [[UInt8]],
                                                 settle: (MergeConflict) throws(Failure) -> Void) throws(Failure) -> Shortcut {
        if ours === theirs { return .resolved(ours) }
        if base === ours { return .resolved(theirs) }
        if base === theirs { return .resolved(ours) }
        guard let ours, let theirs else {
            // One side deleted; the other (both unchanged or both deleted were handled above)
            // conflicts unless it holds the base's subtree again.
            if let base, let kept = ours ?? theirs, Tree.equal(base, kept) { return .resolved(nil) }
            try settle(.deleteModify(path: path))
            return .resolved(theirs)
        }
        return .descend(base: base, ours: ours, theirs: theirs)
    }

    private static func merge3<T: Equatable>(_ base: T?, _ ours: T, _ theirs: T) -> T? {
        if ours == theirs { return ours }
        if let base {
            if base == ours { return theirs }
            if base == theirs { return ours }
        }
        return nil
    }

    /// Merges `ours` and `theirs`, both derived from `base`; returns the merged root, or throws
    /// the first true conflict.
    public static func merge(base: Node, ours: Node, theirs: Node,
                             generations: GenerationCounter) throws(MergeConflict) -> Node {
        try merge(base: base, ours: ours, theirs: theirs, generations: generations) { conflict throws(MergeConflict) in
            throw conflict
        }
    }

    /// Merges `ours` and `theirs` like `merge(base:ours:theirs:generations:)`, but settles every
    /// true conflict for `theirs`, node by node: where both changed a node's value differently
    /// the node gets their value, likewise for its permissions (each decided on its own, so a
    /// change only one side made to the other field is kept); where one side deleted a node the
    /// other changed, the node is as they have it (deleted, or their subtree, merged no
    /// further). Children of a conflicting node are still merged one by one. Returns the merged
    /// root and the conflicts settled so, in the order met.
    public static func mergePreferringTheirs(base: Node, ours: Node, theirs: Node,
                                             generations: GenerationCounter) -> (root: Node, overridden: [MergeConflict]) {
        var overridden: [MergeConflict] = []
        let root = merge(base: base, ours: ours, theirs: theirs, generations: generations) { conflict in
            overridden.append(conflict)
        }
        return (root, overridden)
    }

    /// The merge itself; `settle` is told every true conflict and either throws (the merge
    /// fails) or returns (their side is taken).
    private static func merge<Failure: Error>(base: Node, ours: Node, theirs: Node, generations: GenerationCounter,
                                              settle: (MergeConflict) throws(Failure) -> Void) throws(Failure) -> Node {
        let top = try shortcut(base: base, ours: ours, theirs: theirs, path: [], settle: settle)
        guard case let .descend(topBase, topOurs, topTheirs) = top else {
            if case let .resolved(node) = top, let node { return node }
            preconditionFailure("the root cannot be deleted")
        }
        var stack: [Frame] = [Frame(path: [], base: topBase, ours: topOurs, theirs: topTheirs)]
        var finished: Node? = nil
        while let frame = stack.last {
            if frame.index < frame.differing.count {
                let (name, oursChild, theirsChild) = frame.differing[frame.index]
                frame.index += 1
                let path = frame.path + [name]
                let result = try shortcut(base: frame.base?.child(name), ours: oursChild,
                                          theirs: theirsChild, path: path, settle: settle)
                switch result {
                case .resolved(let node):
                    frame.set(name, node, ours: oursChild)
                case .descend(let b, let o, let t):
                    stack.append(Frame(path: path, base: b, ours: o, theirs: t))
                }
                continue
            }
            stack.removeLast()
            var value = frame.theirs.compactValue
            if let merged = merge3(frame.base?.compactValue, frame.ours.compactValue, value) {
                value = merged
            } else {
                try settle(.value(path: frame.path))
            }
            var permissions = frame.theirs.permissions
            if let merged = merge3(frame.base?.permissions, frame.ours.permissions, permissions) {
                permissions = merged
            } else {
                try settle(.permissions(path: frame.path))
            }
            let node = Node(compactValue: value, permissions: permissions, children: frame.merged,
                            generation: generations.take())
            if let parent = stack.last {
                parent.set(frame.path.last!, node, ours: frame.ours)
            } else {
                finished = node
            }
        }
        return finished!
    }
}
