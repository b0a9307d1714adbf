// Operations on the history itself: restore a subtree to a revision, revert a commit, merge a foreign commit.

import XenstoreStore
import XenstoreWire

extension Server {
    /// Finds a commit by hex id or unique prefix (at least 4 digits): first among the commits
    /// held in memory, then through `revisionLoader` (full ids only).
    public func findCommit(_ hex: [UInt8]) -> Result<Commit, XenstoreError> {
        guard hex.count >= 4, hex.count <= 40,
              hex.allSatisfy({ ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x66) }) else {
            return .failure(.EINVAL)
        }
        let matches = history.retainedCommits(matching: hex)
        if matches.count == 1 { return .success(matches[0]) }
        if matches.count > 1 { return .failure(.EINVAL) }
        if hex.count == 40, let id = ObjectID(hex: hex), let loaded = revisionLoader?(id) { return .success(loaded) }
        return .failure(.ENOENT)
    }

    /// Runs `body` with the commit named by `hex`, or fails as `findCommit` does.
    func withCommit(_ hex: [UInt8], _ body: (Commit) -> Outcome) -> Outcome {
        switch findCommit(hex) {
        case .success(let commit): return body(commit)
        case .failure(let error): return .failure(error)
        }
    }

    /// The first parent of a commit, from memory or through `revisionLoader`.
    func firstParent(_ commit: Commit) -> Commit? {
        if let parent = commit.parents.first { return parent }
        if let id = commit.parentIDs?.first { return revisionLoader?(id) }
        return nil
    }

    /// Makes the store's tree `root` the new head as one commit (with `parents`; nil: the head
    /// alone, and nothing is committed if `root` is the head's tree), recounting node ownership
    /// and firing watches for every node that changed since the head.
    func commitTree(_ root: Node, message: [UInt8], author: UInt32, parents: [Commit]? = nil) {
        let old = history.head.root
        if root === old && parents == nil { return }
        var triggers: [WatchTrigger] = []
        TreeDiff.changes(from: old, to: root) { change in
            switch change {
            case .added(let components, let node), .modified(let components, _, let node):
                let path = NodePath(components: components)
                let parent = Tree.lookup(root, path.parent.components)?.permissions ?? node.permissions
                triggers.append(WatchTrigger(path: path, visibleThrough: [node.permissions, parent], removedSubtree: nil))
            case .removed(let components, let node):
                let path = NodePath(components: components)
                let parent = Tree.lookup(old, path.parent.components)?.permissions ?? node.permissions
                triggers.append(WatchTrigger(path: path, visibleThrough: [node.permissions, parent], removedSubtree: node))
            }
        }
        let commit = history.makeCommit(root: root, parents: parents ?? [history.head], author: author,
                                        message: message, time: now)
        history.advanceHead(to: commit)
        domains.recountOwnership(from: root)
        if configuration.reportCommits { effects.append(.committed(sequence: commit.sequence)) }
        for trigger in triggers { fire(trigger) }
    }

    /// CONTROL `restore <rev> [<path>]`: bring the subtree at `path` (default `/`) back to how it
    /// was at `rev`, as a new commit (removing it if it did not exist then).
    func restore(_ arguments: [[UInt8]], author: UInt32) -> Outcome {
        guard arguments.count == 1 || arguments.count == 2 else { return .failure(.EINVAL) }
        return withCommit(arguments[0]) { commit in restore(commit, arguments.count == 2 ? arguments[1] : nil, author: author) }
    }

    func restore(_ commit: Commit, _ rawPath: [UInt8]?, author: UInt32) -> Outcome {
        var path = NodePath.root
        if let rawPath {
            switch PathRules.nodePath(rawPath, domid: author, pathQuota: nil) {
            case .success(let p): path = p
            case .failure(let error): return .failure(error)
            }
        }
        let target = Tree.lookup(commit.root, path.components)
        let root: Node
        if path.isRoot {
            root = target!
        } else if Tree.lookup(history.head.root, path.parent.components) != nil {
            root = Tree.replacing(history.head.root, at: path.components, with: target, generations: history.generations)
        } else {
            // The parent is gone from the live store: restore an ancestor that still exists instead.
            return target == nil ? Server.text(history.id(of: history.head).hex) : .failure(.ENOENT)
        }
        var message = Server.domainLabel(author) + Payload.bytes(": restore ") + path.bytes
        message += Payload.bytes(" to ") + history.id(of: commit).hex
        commitTree(root, message: message, author: author)
        return Server.text(history.id(of: history.head).hex)
    }

    /// CONTROL `revert <rev>`: undo the change `rev` made (relative to its first parent) with a
    /// three-way merge into the head; EAGAIN if later changes conflict with the undo.
    func revert(_ arguments: [[UInt8]], author: UInt32) -> Outcome {
        guard arguments.count == 1 else { return .failure(.EINVAL) }
        return withCommit(arguments[0]) { commit in revert(commit, author: author) }
    }

    func revert(_ commit: Commit, author: UInt32) -> Outcome {
        guard let parent = firstParent(commit) else { return .failure(.ENOENT) }
        var message = Server.domainLabel(author) + Payload.bytes(": revert ") + history.id(of: commit).hex
        message += Payload.bytes("\n\nReverts: ") + commit.summary
        return mergeIntoHead(base: commit.root, theirs: parent.root, message: message, author: author)
    }

    /// Three-way merges `theirs` (relative to `base`) into the head and commits the result;
    /// EAGAIN, with nothing changed, on a conflict. Replies with the new head's id.
    func mergeIntoHead(base: Node, theirs: Node, message: [UInt8], author: UInt32,
                       secondParent: Commit? = nil) -> Outcome {
        let merged: Node
        do {
            merged = try ThreeWayMerge.merge(base: base, ours: history.head.root, theirs: theirs,
                                             generations: history.generations)
        } catch {
            return .failure(.EAGAIN)
        }
        commitTree(merged, message: message, author: author, parents: secondParent.map { [history.head, $0] })
        return Server.text(history.id(of: history.head).hex)
    }

    /// CONTROL `merge <rev> <base-rev>`: merge a commit from elsewhere (e.g. fetched from another
    /// host) into the head, `base-rev` being their common ancestor; a two-parent commit on success,
    /// EAGAIN on a conflict (nothing is changed then).
    func mergeForeign(_ arguments: [[UInt8]], author: UInt32) -> Outcome {
        guard arguments.count == 2 else { return .failure(.EINVAL) }
        return withCommit(arguments[0]) { theirs in
            withCommit(arguments[1]) { base in merge(theirs, base: base, author: author) }
        }
    }

    func merge(_ theirs: Commit, base: Commit, author: UInt32) -> Outcome {
        let message = Server.domainLabel(author) + Payload.bytes(": merge ") + history.id(of: theirs).hex
        return mergeIntoHead(base: base.root, theirs: theirs.root, message: message, author: author, secondParent: theirs)
    }
}
