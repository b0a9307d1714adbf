// Reading a git database's history: log, show, diff, blame, bisect and checkout into a directory.

#if canImport(Glibc)
import Glibc
#endif
import XenstoreStore

/// A node-level change between two revisions, found by comparing git ids (unchanged subtrees are
/// never read).
public struct NodeChange: Equatable {
    /// What happened to the node.
    public enum Kind: Equatable { case added, removed, modified }
    /// The node's absolute path.
    public var path: String
    /// What happened.
    public var kind: Kind
    /// Value blob before and after (nil when absent).
    public var oldValue: ObjectID?
    public var newValue: ObjectID?
    /// Permission blob before and after.
    public var oldPerms: ObjectID?
    public var newPerms: ObjectID?
}

/// Why history from elsewhere was refused, in words naming the commit, the object and the rule.
public struct ImportError: Error, CustomStringConvertible, Equatable {
    /// The message.
    public let description: String

    /// Wraps a message.
    public init(_ description: String) { self.description = description }
}

extension GitDecodingError: CustomStringConvertible {
    /// `TreeValidation`'s wording: the object and the rule it breaks.
    public var description: String { String(decoding: explanation, as: UTF8.self) }
}

/// Read-only queries over the history in a `GitDatabase`.
public final class HistoryBrowser {
    /// The database read.
    public let database: GitDatabase
    private var trees: [ObjectID: [GitDecoding.Entry]] = [:]

    /// Browses `database`.
    public init(database: GitDatabase) {
        self.database = database
    }

    private struct NodeIDs {
        var tree: ObjectID
        var value: ObjectID?
        var perms: ObjectID?
        var children: [(String, ObjectID)]
    }

    private func node(_ tree: ObjectID) -> NodeIDs? {
        let entries: [GitDecoding.Entry]
        if let cached = trees[tree] {
            entries = cached
        } else {
            guard let body = database.readObject(tree)?.body,
                  let parsed = try? GitDecoding.parseTree(body, id: tree) else { return nil }
            if trees.count > 100_000 { trees.removeAll() }
            trees[tree] = parsed
            entries = parsed
        }
        var result = NodeIDs(tree: tree, value: nil, perms: nil, children: [])
        for entry in entries {
            if entry.isTree {
                result.children.append((String(decoding: entry.name, as: UTF8.self), entry.id))
            } else if entry.name == GitEncoding.valueEntry {
                result.value = entry.id
            } else if entry.name == GitEncoding.permsEntry {
                result.perms = entry.id
            }
        }
        return result
    }

    /// Components of an absolute path.
    static func components(_ path: String) -> [String] {
        path.split(separator: "/").map(String.init)
    }

    static func join(_ components: [String]) -> String {
        components.isEmpty ? "/" : "/" + components.joined(separator: "/")
    }

    /// The tree id of the node at `path` in commit `commit`, or nil if absent.
    public func subtree(_ commit: ObjectID, _ path: String) -> ObjectID? {
        guard let record = database.commitRecord(commit) else { return nil }
        var current = record.tree
        for component in HistoryBrowser.components(path) {
            guard let ids = node(current), let child = ids.children.first(where: { $0.0 == component }) else { return nil }
            current = child.1
        }
        return current
    }

    /// Node-level changes between two subtrees (either may be absent), parents first.
    public func changes(from old: ObjectID?, to new: ObjectID?, at path: String) -> [NodeChange] {
        var result: [NodeChange] = []
        var stack: [([String], ObjectID?, ObjectID?)] = [(HistoryBrowser.components(path), old, new)]
        while let (components, a, b) = stack.popLast().map({ ($0.0, $0.1, $0.2) }) {
            if a == b { continue }
            let before = a.flatMap { node($0) }
            let after = b.flatMap { node($0) }
            let here = HistoryBrowser.join(components)
            switch (before, after) {
            case (nil, nil):
                continue
            case (let x?, nil):
                result.append(NodeChange(path: here, kind: .removed, oldValue: x.value, newValue: nil, oldPerms: x.perms, newPerms: nil))
            case (nil, let y?):
                result.append(NodeChange(path: here, kind: .added, oldValue: nil, newValue: y.value, oldPerms: nil, newPerms: y.perms))
            case (let x?, let y?):
                if x.value != y.value || x.perms != y.perms {
                    result.append(NodeChange(path: here, kind: .modified, oldValue: x.value, newValue: y.value,
                                             oldPerms: x.perms, newPerms: y.perms))
                }
            }
            var names = Set((before?.children ?? []).map { $0.0 })
            names.formUnion((after?.children ?? []).map { $0.0 })
            for name in names.sorted().reversed() {
                stack.append((components + [name], before?.children.first { $0.0 == name }?.1,
                              after?.children.first { $0.0 == name }?.1))
            }
        }
        return result
    }

    /// The contents of a blob as text (values are conventionally ASCII).
    public func text(_ blob: ObjectID?) -> String {
        guard let blob, let body = database.readObject(blob)?.body else { return "" }
        return String(decoding: body, as: UTF8.self)
    }

    /// One line per change, `+ /path = value`, `- /path`, `M /path = old -> new`, `P /path perms`.
    public func describe(_ change: NodeChange) -> String {
        func perms(_ id: ObjectID?) -> String {
            text(id).split(separator: "\n").joined(separator: ",")
        }
        switch change.kind {
        case .added:
            return "+ \(change.path) = \"\(text(change.newValue))\" (\(perms(change.newPerms)))"
        case .removed:
            return "- \(change.path)"
        case .modified:
            var line = "M \(change.path)"
            if change.oldValue != change.newValue { line += " = \"\(text(change.oldValue))\" -> \"\(text(change.newValue))\"" }
            if change.oldPerms != change.newPerms { line += " perms \(perms(change.oldPerms)) -> \(perms(change.newPerms))" }
            return line
        }
    }

    /// Commits along first parents from `start`, newest first.
    public func firstParentChain(from start: ObjectID, limit: Int = Int.max) -> [(ObjectID, CommitRecord)] {
        var result: [(ObjectID, CommitRecord)] = []
        var current: ObjectID? = start
        while let id = current, result.count < limit, let record = database.commitRecord(id) {
            result.append((id, record))
            current = record.parents.first
        }
        return result
    }

    /// One log line: short id, date, message summary (and the number of parents for merges).
    public func logLine(_ id: ObjectID, _ record: CommitRecord) -> String {
        let short = String(hexString(id).prefix(12))
        var seconds = time_t(record.time)
        var parts = tm()
        gmtime_r(&seconds, &parts)
        var buffer = [CChar](repeating: 0, count: 32)
        strftime(&buffer, buffer.count, "%Y-%m-%d %H:%M:%S", &parts)
        let date = buffer.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
        let summary = String(decoding: record.message.prefix(while: { $0 != 0x0A }), as: UTF8.self)
        return "\(short) \(date) \(summary)" + (record.parents.count > 1 ? " [merge]" : "")
    }

    /// `log [PATH]`: first-parent history, restricted to commits that changed PATH's subtree.
    public func log(from head: ObjectID, path: String?, limit: Int) -> [String] {
        var lines: [String] = []
        for (id, record) in firstParentChain(from: head) {
            if lines.count >= limit { break }
            if let path {
                let mine = subtree(id, path)
                let parent = record.parents.first.flatMap { subtree($0, path) }
                if mine == parent { continue }
            }
            lines.append(logLine(id, record))
        }
        return lines
    }

    /// `diff A B [PATH]`: node-level changes from revision A to revision B.
    public func diff(_ a: ObjectID, _ b: ObjectID, path: String) -> [String] {
        changes(from: subtree(a, path), to: subtree(b, path), at: path).map(describe)
    }

    /// `show REV [PATH]`: the commit, then its changes against its first parent.
    public func show(_ id: ObjectID, path: String) -> [String] {
        guard let record = database.commitRecord(id) else { return [] }
        var lines = ["commit \(hexString(id))"]
        for parent in record.parents { lines.append("parent \(hexString(parent))") }
        lines.append("author Domain \(record.author)")
        lines.append("")
        lines.append(contentsOf: String(decoding: record.message, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false).map { "    " + $0 })
        lines.append("")
        let before = record.parents.first.flatMap { subtree($0, path) }
        lines.append(contentsOf: changes(from: before, to: subtree(id, path), at: path).map(describe))
        return lines
    }

    /// `blame PATH`: for every node of the subtree at the head, the newest commit that changed its
    /// value or permissions (searching at most `limit` first-parent commits).
    public func blame(from head: ObjectID, path: String, limit: Int) -> [String] {
        var open: [String: Bool] = [:]
        var order: [String] = []
        for change in changes(from: nil, to: subtree(head, path), at: path) {
            open[change.path] = true
            order.append(change.path)
        }
        var blamed: [String: String] = [:]
        for (id, record) in firstParentChain(from: head, limit: limit) {
            if open.isEmpty { break }
            let parent = record.parents.first.flatMap { subtree($0, path) }
            for change in changes(from: parent, to: subtree(id, path), at: path)
            where change.kind != .removed && open[change.path] != nil {
                blamed[change.path] = logLine(id, record)
                open[change.path] = nil
            }
        }
        return order.map { "\($0): " + (blamed[$0] ?? "(older than the searched history)") }
    }

    /// Checks every commit in `commits` (e.g. those a pull would bring in) as the daemon would
    /// load them: the commit must parse and its tree must pass `TreeValidation`. Subtrees shared
    /// between the commits are read once.
    public func validateImport(_ commits: [ObjectID]) throws(ImportError) {
        let read: (ObjectID) -> (type: String, body: [UInt8])? = { self.database.readObject($0) }
        var checked = TreeValidation.Checked()
        for id in commits {
            guard let (type, body) = read(id) else {
                throw ImportError("commit \(hexString(id)) is missing")
            }
            guard type == "commit", let record = try? GitDecoding.parseCommit(body, id: id) else {
                throw ImportError("commit \(hexString(id)): not a commit this daemon can read")
            }
            do throws(GitDecodingError) {
                try TreeValidation.validate(record.tree, checked: &checked) { read($0)?.body }
            } catch {
                throw ImportError("commit \(hexString(id)): \(error)")
            }
        }
    }

    /// Writes the tree of a revision into `directory` as directories with `.value` and `.perms`
    /// files. The whole tree is validated first (`validateImport`), so every name written is one
    /// path component of `[A-Za-z0-9-_@]`: nothing is written outside `directory`, and existing
    /// symbolic links inside it are never followed.
    public func checkout(_ commit: ObjectID, into directory: String) throws(ImportError) {
        try validateImport([commit])
        guard let record = database.commitRecord(commit) else { throw ImportError("commit \(hexString(commit)) is missing") }
        var stack: [(String, ObjectID)] = [(directory, record.tree)]
        while let (dir, tree) = stack.popLast().map({ ($0.0, $0.1) }) {
            guard let ids = node(tree) else { throw ImportError("tree \(hexString(tree)) is missing") }
            if mkdir(dir, 0o755) != 0 && errno != EEXIST { throw ImportError("cannot create \(dir): \(String(cString: strerror(errno)))") }
            var status = stat()
            guard lstat(dir, &status) == 0, status.st_mode & S_IFMT == S_IFDIR else {
                throw ImportError("\(dir) exists and is not a directory")
            }
            for (name, blob) in [(".value", ids.value), (".perms", ids.perms)] {
                guard let blob else { continue }
                guard let body = database.readObject(blob)?.body else { throw ImportError("blob \(hexString(blob)) is missing") }
                let fd = open(dir + "/" + name, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW, 0o644)
                guard fd >= 0 else { throw ImportError("cannot write \(dir)/\(name): \(String(cString: strerror(errno)))") }
                _ = body.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
                close(fd)
            }
            for (name, child) in ids.children { stack.append((dir + "/" + name, child)) }
        }
    }
}
