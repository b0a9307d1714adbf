// Three-way, tree-structured merge of two versions of a tree against their common base.

/// Why a three-way merge could not combine two versions.
public enum MergeConflict: Error, Equatable, Sendable {
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
public enum ThreeWayMerge {
    private final class Frame {
        let path: [[UInt8]]
        let base: Node?
        let ours: Node
        let theirs: Node
        let names: [[UInt8]]
        var index = 0
        /// Starts as our children; every name whose merge differs from ours is set in it.
        var merged: ChildList

        init(path: [[UInt8]], base: Node?, ours: Node, theirs: Node) {
            self.path = path
            self.base = base
            self.ours = ours
            self.theirs = theirs
            // Names in chunks both sides share hold the same node on both: nothing to merge.
            self.names = ChildList.unsharedNames(ours.children, theirs.children)
            self.merged = ours.children
        }

        /// Records the merged child `name` (nil: absent).
        func set(_ name: [UInt8], _ node: Node?) {
            if node === ours.child(name) { return }
            if let changed = merged.setting(name, to: node) { merged = changed }
        }
    }

    /// Result of merging one slot (node or absence) without descending.
    private enum Shortcut {
        case resolved(Node?)
        case descend(base: Node?, ours: Node, theirs: Node)
    }

    private static func shortcut(base: Node?, ours: Node?, theirs: Node?, path: [[UInt8]]) throws(MergeConflict) -> Shortcut {
        if ours === theirs { return .resolved(ours) }
        if base === ours { return .resolved(theirs) }
        if base === theirs { return .resolved(ours) }
        guard let ours, let theirs else {
            // One side deleted, the other changed (both unchanged or both deleted were handled above).
            throw .deleteModify(path: path)
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

    /// Merges `ours` and `theirs`, both derived from `base`; returns the merged root.
    public static func merge(base: Node, ours: Node, theirs: Node,
                             generations: GenerationCounter) throws(MergeConflict) -> Node {
        let top = try shortcut(base: base, ours: ours, theirs: theirs, path: [])
        guard case let .descend(topBase, topOurs, topTheirs) = top else {
            if case let .resolved(node) = top, let node { return node }
            preconditionFailure("the root cannot be deleted")
        }
        var stack: [Frame] = [Frame(path: [], base: topBase, ours: topOurs, theirs: topTheirs)]
        var finished: Node? = nil
        while let frame = stack.last {
            if frame.index < frame.names.count {
                let name = frame.names[frame.index]
                frame.index += 1
                let path = frame.path + [name]
                let result = try shortcut(base: frame.base?.child(name), ours: frame.ours.child(name),
                                          theirs: frame.theirs.child(name), path: path)
                switch result {
                case .resolved(let node):
                    frame.set(name, node)
                case .descend(let b, let o, let t):
                    stack.append(Frame(path: path, base: b, ours: o, theirs: t))
                }
                continue
            }
            stack.removeLast()
            guard let value = merge3(frame.base?.value, frame.ours.value, frame.theirs.value) else {
                throw .value(path: frame.path)
            }
            guard let permissions = merge3(frame.base?.permissions, frame.ours.permissions, frame.theirs.permissions) else {
                throw .permissions(path: frame.path)
            }
            let node = Node(value: value, permissions: permissions, children: frame.merged,
                            generation: generations.take())
            if let parent = stack.last {
                parent.set(frame.path.last!, node)
            } else {
                finished = node
            }
        }
        return finished!
    }
}
