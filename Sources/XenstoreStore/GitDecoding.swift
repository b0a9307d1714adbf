// Reading git objects back into nodes and commit records (for restarting from a git database).

/// Why stored git objects could not be turned back into a store.
public enum GitDecodingError: Error, Equatable, Sendable {
    /// An object the history refers to is not in the database.
    case missingObject(ObjectID)
    /// An object does not have the shape this daemon writes (bad tree entry, perms blob, commit header).
    case malformed(ObjectID)
    /// The tree or blob `id` breaks `rule` (`name`: the offending entry, empty for the tree itself).
    case invalid(ObjectID, name: [UInt8], rule: TreeRule)

    /// The error in words: `tree <id> entry '<name>': <rule>`, or what is missing or malformed.
    public var explanation: [UInt8] {
        func bytes(_ text: StaticString) -> [UInt8] {
            var out: [UInt8] = []
            text.withUTF8Buffer { out.append(contentsOf: $0) }
            return out
        }
        switch self {
        case .missingObject(let id):
            return bytes("object ") + id.hex + bytes(" is missing")
        case .malformed(let id):
            return bytes("object ") + id.hex + bytes(" is malformed")
        case .invalid(let id, let name, let rule):
            var out = bytes("object ") + id.hex
            if !name.isEmpty {
                out += bytes(" entry '")
                for byte in name.prefix(64) { out.append(byte >= 0x20 && byte < 0x7F ? byte : 0x3F) }
                out += bytes(name.count > 64 ? "...'" : "'")
            }
            return out + bytes(": ") + bytes(rule.explanation)
        }
    }
}

/// The fields of a git commit object that the store uses.
public struct CommitRecord: Equatable, Sendable {
    /// The root tree.
    public var tree: ObjectID
    /// The parent commits, in order.
    public var parents: [ObjectID]
    /// The authoring domain, parsed from `Domain N <...>`; 0 if the author is someone else.
    public var author: UInt32
    /// Author time in seconds since the epoch.
    public var time: Int64
    /// The message.
    public var message: [UInt8]
}

/// Decodes the git objects written by `GitEncoding`.
public enum GitDecoding {
    /// Parses a commit body.
    public static func parseCommit(_ body: [UInt8], id: ObjectID) throws(GitDecodingError) -> CommitRecord {
        var tree: ObjectID? = nil
        var parents: [ObjectID] = []
        var author: UInt32 = 0
        var time: Int64 = 0
        var index = 0
        while index < body.count {
            var end = index
            while end < body.count && body[end] != 0x0A { end += 1 }
            let line = Array(body[index..<end])
            index = end + 1
            if line.isEmpty {
                guard let tree else { throw .malformed(id) }
                var message = index <= body.count ? Array(body[min(index, body.count)...]) : []
                if message.last == 0x0A { message.removeLast() }
                return CommitRecord(tree: tree, parents: parents, author: author, time: time, message: message)
            }
            if line.starts(with: Array("tree ".utf8)) {
                tree = ObjectID(hex: Array(line[5...]))
                if tree == nil { throw .malformed(id) }
            } else if line.starts(with: Array("parent ".utf8)) {
                guard let parent = ObjectID(hex: Array(line[7...])) else { throw .malformed(id) }
                parents.append(parent)
            } else if line.starts(with: Array("author ".utf8)) {
                // author Domain N <domain-N@xenstore> TIME +0000
                let fields = line.split(separator: 0x20).map { Array($0) }
                if fields.count >= 3, fields[1] == Array("Domain".utf8), let domid = parseNumber(fields[2]) {
                    author = UInt32(truncatingIfNeeded: domid)
                }
                if fields.count >= 2, let seconds = parseNumber(fields[fields.count - 2]) { time = Int64(seconds) }
            }
        }
        throw .malformed(id)
    }

    static func parseNumber(_ bytes: [UInt8]) -> UInt64? {
        guard !bytes.isEmpty, bytes.count <= 19 else { return nil }
        var value: UInt64 = 0
        for byte in bytes {
            guard byte >= 0x30 && byte <= 0x39 else { return nil }
            value = value * 10 + UInt64(byte - 0x30)
        }
        return value
    }

    /// One entry of a git tree.
    public struct Entry: Sendable {
        /// The entry name (a child name, `.value` or `.perms`).
        public let name: [UInt8]
        /// Whether the entry is a subtree (a child node).
        public let isTree: Bool
        /// The id of the blob or tree.
        public let id: ObjectID
        /// The mode as written in the tree (`40000`, `100644`, ...).
        public let mode: [UInt8]
    }

    /// Parses a tree body into its entries.
    public static func parseTree(_ body: [UInt8], id: ObjectID) throws(GitDecodingError) -> [Entry] {
        var entries: [Entry] = []
        var index = 0
        while index < body.count {
            guard let space = body[index...].firstIndex(of: 0x20),
                  let nul = body[space...].firstIndex(of: 0), nul + 21 <= body.count else { throw .malformed(id) }
            let mode = Array(body[index..<space])
            let name = Array(body[(space + 1)..<nul])
            let entryID = ObjectID(bytes: Array(body[(nul + 1)..<(nul + 21)]))
            entries.append(Entry(name: name, isTree: mode == GitEncoding.treeMode, id: entryID, mode: mode))
            index = nul + 21
        }
        return entries
    }

    /// Rebuilds the node tree whose root tree is `rootID`; `fetch` returns an object's body
    /// (nil when absent). Every tree and blob is checked by `TreeValidation` against `limits`
    /// first: a tree this daemon could not have written is rejected whole, naming the object
    /// and the rule. Iterative, so deep trees need no deep stack. Node ids are remembered, so
    /// unchanged subtrees are never hashed again.
    public static func loadTree(_ rootID: ObjectID, generations: GenerationCounter, limits: ImportLimits = ImportLimits(),
                                fetch: (ObjectID) -> [UInt8]?) throws(GitDecodingError) -> Node {
        func open(_ id: ObjectID, _ name: [UInt8], pathLength: Int) throws(GitDecodingError) -> PendingTree {
            guard let body = fetch(id) else { throw .missingObject(id) }
            let entries = try TreeValidation.checkNode(try parseTree(body, id: id), id: id, pathLength: pathLength,
                                                       limits: limits)
            let pending = PendingTree(id: id, name: name, pathLength: pathLength)
            if let valueID = entries.value {
                guard let value = fetch(valueID) else { throw .missingObject(valueID) }
                try TreeValidation.checkValue(value, id: valueID, limits: limits)
                pending.value = value
            }
            guard let blob = fetch(entries.permissions) else { throw .missingObject(entries.permissions) }
            pending.permissions = try TreeValidation.permissions(blob, id: entries.permissions, limits: limits)
            pending.childEntries = entries.children
            return pending
        }
        var stack: [PendingTree] = [try open(rootID, [], pathLength: 1)]
        while let top = stack.last {
            if top.next < top.childEntries.count {
                let entry = top.childEntries[top.next]
                top.next += 1
                let length = TreeValidation.childPathLength(parentLength: top.pathLength, name: entry.name)
                stack.append(try open(entry.id, entry.name, pathLength: length))
                continue
            }
            stack.removeLast()
            let node = Node(value: top.value, permissions: top.permissions!, children: top.children,
                            generation: generations.take())
            node.cachedID = top.id
            guard let parent = stack.last else { return node }
            parent.children.append(Child(name: top.name, node: node))
        }
        preconditionFailure("unreachable")
    }
}

/// A tree being rebuilt by `GitDecoding.loadTree`: its parsed entries and the children built so far.
final class PendingTree {
    let id: ObjectID
    let name: [UInt8]
    let pathLength: Int
    var value: [UInt8] = []
    var permissions: Permissions? = nil
    var childEntries: [GitDecoding.Entry] = []
    var next = 0
    var children: [Child] = []

    init(id: ObjectID, name: [UInt8], pathLength: Int) {
        self.id = id
        self.name = name
        self.pathLength = pathLength
    }
}
