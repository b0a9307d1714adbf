// Path operations on immutable trees: lookup, copy-on-write replacement, counting, equality — all iterative.

/// A source of fresh node generation numbers, shared by everything that builds nodes.
public final class GenerationCounter {
    private var next: UInt64

    /// Starts counting after `start`.
    public init(start: UInt64 = 0) {
        self.next = start
    }

    /// Returns a generation number never returned before.
    public func take() -> UInt64 {
        next &+= 1
        return next
    }

    /// The last number handed out.
    public var current: UInt64 { next }
}

/// Path-addressed operations on trees of `Node`s. A path is a list of components (no slashes);
/// the empty list is the root. Every walk here is a loop, never recursion, so a 3000-level path
/// costs heap, not stack.
public enum Tree {
    /// The node at `components`, or nil if it or an ancestor is missing.
    public static func lookup(_ root: Node, _ components: [[UInt8]]) -> Node? {
        var node = root
        for component in components {
            guard let next = node.child(component) else { return nil }
            node = next
        }
        return node
    }

    /// The existing nodes along `components`: element 0 is the root, element i the node at the
    /// first i components. Stops at the first missing node, so the count tells how deep the path exists.
    public static func spine(_ root: Node, _ components: [[UInt8]]) -> [Node] {
        var nodes: [Node] = [root]
        nodes.reserveCapacity(components.count + 1)
        var node = root
        for component in components {
            guard let next = node.child(component) else { break }
            nodes.append(next)
            node = next
        }
        return nodes
    }

    /// A new root in which the node at `components` is `replacement` (nil removes it).
    /// Every ancestor must exist; ancestors are copied, everything else is shared.
    /// Replacing the root itself (`components` empty) requires a non-nil replacement.
    public static func replacing(_ root: Node, at components: [[UInt8]], with replacement: Node?,
                                 generations: GenerationCounter) -> Node {
        if components.isEmpty {
            guard let replacement else { preconditionFailure("the root cannot be removed") }
            return replacement
        }
        let ancestors = spine(root, Array(components.dropLast()))
        precondition(ancestors.count == components.count, "ancestors of a replaced node must exist")
        var current = replacement
        var level = components.count - 1
        while level >= 0 {
            let parent = ancestors[level]
            current = parent.settingChild(components[level], to: current, generation: generations.take())
            level -= 1
        }
        return current!
    }

    /// Every node of the subtree, parents before children, with its path relative to `root`.
    public static func walk(_ root: Node, visit: ([[UInt8]], Node) -> Void) {
        var stack: [([[UInt8]], Node)] = [([], root)]
        while let entry = stack.popLast() {
            let (path, node) = entry
            visit(path, node)
            for child in node.children.reversed() {
                stack.append((path + [child.name], child.node))
            }
        }
    }

    /// Number of nodes in the subtree, itself included.
    public static func count(_ root: Node) -> Int {
        var total = 0
        var stack: [Node] = [root]
        while let node = stack.popLast() {
            total += 1
            for child in node.children { stack.append(child.node) }
        }
        return total
    }

    /// Whether two subtrees have the same values, permissions and children (generations ignored).
    /// Shared subtrees are recognised by identity and not descended into.
    public static func equal(_ lhs: Node, _ rhs: Node) -> Bool {
        var stack: [(Node, Node)] = [(lhs, rhs)]
        while let pair = stack.popLast() {
            let (a, b) = pair
            if a === b { continue }
            if a.compactValue != b.compactValue || a.permissions != b.permissions || a.children.count != b.children.count {
                return false
            }
            var missing = false  // a name on one side only
            ChildList.forEachChange(a.children, b.children) { _, x, y in
                if let x, let y { stack.append((x, y)) } else { missing = true }
            }
            if missing { return false }
        }
        return true
    }
}
