// Node-level differences between two versions of a tree, skipping shared subtrees.

/// One difference between two trees.
public enum TreeChange {
    /// A node exists only in the new tree (reported for every node of an added subtree).
    case added(path: [[UInt8]], node: Node)
    /// A node and its whole subtree exist only in the old tree (reported once, at its top).
    case removed(path: [[UInt8]], node: Node)
    /// A node exists in both with a different value or permission list.
    case modified(path: [[UInt8]], old: Node, new: Node)
}

/// Computes differences between trees.
public enum TreeDiff {
    /// Whether two nodes are known to hold the same subtree without looking inside:
    /// the same object, or the same git id where both ids are already known.
    static func sameSubtree(_ a: Node, _ b: Node) -> Bool {
        if a === b { return true }
        if let x = a.cachedID, let y = b.cachedID { return x == y }
        return false
    }

    /// Visits the changes from `old` to `new` (either may be nil, meaning "absent") in path order,
    /// parents before children. Iterative.
    public static func changes(from old: Node?, to new: Node?, at base: [[UInt8]] = [],
                               visit: (TreeChange) -> Void) {
        var stack: [([[UInt8]], Node?, Node?)] = [(base, old, new)]
        while let entry = stack.popLast() {
            let (path, before, after) = entry
            switch (before, after) {
            case (nil, nil):
                continue
            case (let removed?, nil):
                visit(.removed(path: path, node: removed))
            case (nil, let added?):
                visit(.added(path: path, node: added))
                for child in added.children.reversed() { stack.append((path + [child.name], nil, child.node)) }
            case (let a?, let b?):
                if sameSubtree(a, b) { continue }
                if a.compactValue != b.compactValue || a.permissions != b.permissions {
                    visit(.modified(path: path, old: a, new: b))
                }
                // only the children that differ (shared ones are the same subtree), pushed in
                // reverse so that they are visited in name order
                var differing: [([UInt8], Node?, Node?)] = []
                ChildList.forEachChange(a.children, b.children) { name, old, new in differing.append((name.array, old, new)) }
                for (name, old, new) in differing.reversed() { stack.append((path + [name], old, new)) }
            }
        }
    }
}
