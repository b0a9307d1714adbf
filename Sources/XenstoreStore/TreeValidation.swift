// The rules a git tree must follow to become a store: imported history is checked like client input.

import XenstoreWire

/// A rule of the store's git layout that an imported tree broke.
public enum TreeRule: UInt8, Sendable, CaseIterable {
    /// A child name is empty.
    case emptyName
    /// A child is named `.` or `..`.
    case dotName
    /// A child name contains `/`.
    case slashInName
    /// A child name has a byte outside Xenstore's `[A-Za-z0-9-_@]`.
    case invalidCharacter
    /// `.value` or `.perms` is a subtree instead of a blob.
    case reservedNameAsSubtree
    /// Two entries of one tree have the same name.
    case duplicateName
    /// A blob other than `.value` and `.perms`, or an entry whose mode is neither a plain blob
    /// (100644) nor a tree (40000).
    case unknownEntry
    /// The node has no `.perms` blob.
    case missingPermissions
    /// The `.perms` blob is not one `<letter><domid>` entry per line.
    case malformedPermissions
    /// The permission list is longer than any SET_PERMS request can carry.
    case tooManyPermissions
    /// The value is longer than any WRITE request can carry.
    case valueTooLarge
    /// The node's absolute path is longer than `XENSTORE_ABS_PATH_MAX`.
    case pathTooLong

    /// The rule in words, for error messages.
    public var explanation: StaticString {
        switch self {
        case .emptyName: return "a child name is empty"
        case .dotName: return "a child is named '.' or '..'"
        case .slashInName: return "a child name contains '/'"
        case .invalidCharacter: return "a child name has a character outside [A-Za-z0-9-_@]"
        case .reservedNameAsSubtree: return "'.value' or '.perms' is a subtree, not a blob"
        case .duplicateName: return "two entries have the same name"
        case .unknownEntry: return "an entry is neither '.value', '.perms' (blobs, mode 100644) nor a child tree (mode 40000)"
        case .missingPermissions: return "the node has no '.perms' blob"
        case .malformedPermissions: return "the '.perms' blob is not one <letter><domid> entry per line"
        case .tooManyPermissions: return "the permission list is longer than one SET_PERMS request can carry"
        case .valueTooLarge: return "the value is longer than one WRITE request can carry"
        case .pathTooLong: return "the node's path is longer than XENSTORE_ABS_PATH_MAX (3072)"
        }
    }
}

/// Bounds an imported tree must respect. The defaults are what any client, dom0 included, can
/// create through the protocol: dom0 is exempt from the `node-size` and `permissions` quotas and
/// legitimately writes beyond them, so a store written by this daemon always passes.
public struct ImportLimits: Sendable {
    /// Longest value (one WRITE payload).
    public var valueBytes = Limits.payloadMax
    /// Longest permission list: one SET_PERMS payload of the shortest entries (`n0\0`).
    public var permissionEntries = Limits.payloadMax / 3
    /// Longest absolute node path.
    public var pathBytes = Limits.absolutePathMax

    /// The protocol's maxima.
    public init() {}
}

/// Checks git trees against the store's layout: each node is a tree of a `.perms` blob, an
/// optional `.value` blob and one subtree per child whose name is a valid Xenstore path component.
/// `GitDecoding.loadTree` applies these checks to every tree it loads, so every backend, the
/// stub domain and the history tools reject the same inputs.
public enum TreeValidation {
    /// The parts of one validated tree object.
    public struct NodeEntries: Sendable {
        /// The `.value` blob, if any.
        public var value: ObjectID?
        /// The `.perms` blob.
        public var permissions: ObjectID
        /// The child subtrees, sorted by name.
        public var children: [GitDecoding.Entry]
    }

    /// Whether `byte` may appear in a Xenstore path (`[A-Za-z0-9-/_@]`).
    public static func isPathCharacter(_ byte: UInt8) -> Bool {
        switch byte {
        case 0x41...0x5A, 0x61...0x7A, 0x30...0x39, 0x2D, 0x2F, 0x5F, 0x40: return true
        default: return false
        }
    }

    /// The rule a child name breaks, or nil for a valid name.
    public static func brokenRule(childName name: [UInt8]) -> TreeRule? {
        if name.isEmpty { return .emptyName }
        if name == [0x2E] || name == [0x2E, 0x2E] { return .dotName }
        if name.contains(0x2F) { return .slashInName }
        for byte in name where !isPathCharacter(byte) { return .invalidCharacter }
        return nil
    }

    /// Checks the entries of the tree `id` for the node whose absolute path is `pathLength` bytes.
    public static func checkNode(_ entries: [GitDecoding.Entry], id: ObjectID, pathLength: Int,
                                 limits: ImportLimits) throws(GitDecodingError) -> NodeEntries {
        if pathLength > limits.pathBytes { throw .invalid(id, name: [], rule: .pathTooLong) }
        var value: ObjectID? = nil
        var permissions: ObjectID? = nil
        var children: [GitDecoding.Entry] = []
        for entry in entries {
            let reserved = entry.name == GitEncoding.valueEntry || entry.name == GitEncoding.permsEntry
            if entry.isTree {
                if reserved { throw .invalid(id, name: entry.name, rule: .reservedNameAsSubtree) }
                if let rule = brokenRule(childName: entry.name) { throw .invalid(id, name: entry.name, rule: rule) }
                children.append(entry)
            } else if !reserved || entry.mode != GitEncoding.blobMode {
                throw .invalid(id, name: entry.name, rule: .unknownEntry)
            } else if entry.name == GitEncoding.valueEntry {
                if value != nil { throw .invalid(id, name: entry.name, rule: .duplicateName) }
                value = entry.id
            } else {
                if permissions != nil { throw .invalid(id, name: entry.name, rule: .duplicateName) }
                permissions = entry.id
            }
        }
        guard let permissions else { throw .invalid(id, name: GitEncoding.permsEntry, rule: .missingPermissions) }
        children.sort { $0.name.lexicographicallyPrecedes($1.name) }
        var index = 1
        while index < children.count {
            if children[index].name == children[index - 1].name {
                throw .invalid(id, name: children[index].name, rule: .duplicateName)
            }
            index += 1
        }
        return NodeEntries(value: value, permissions: permissions, children: children)
    }

    /// Checks a value blob's size.
    public static func checkValue(_ value: [UInt8], id: ObjectID, limits: ImportLimits) throws(GitDecodingError) {
        if value.count > limits.valueBytes { throw .invalid(id, name: GitEncoding.valueEntry, rule: .valueTooLarge) }
    }

    /// Parses and checks a `.perms` blob.
    public static func permissions(_ blob: [UInt8], id: ObjectID,
                                   limits: ImportLimits) throws(GitDecodingError) -> Permissions {
        var lines = 0
        for byte in blob where byte == 0x0A { lines += 1 }
        if lines > limits.permissionEntries {
            throw .invalid(id, name: GitEncoding.permsEntry, rule: .tooManyPermissions)
        }
        guard let permissions = Permissions(blob: blob) else {
            throw .invalid(id, name: GitEncoding.permsEntry, rule: .malformedPermissions)
        }
        return permissions
    }

    /// Length of the absolute path of a child called `name` of a node whose path is `parentLength`
    /// bytes (`/` counts 1).
    public static func childPathLength(parentLength: Int, name: [UInt8]) -> Int {
        (parentLength == 1 ? 0 : parentLength) + 1 + name.count
    }

    /// Trees already checked, each with the longest path at which it was (a subtree valid at one
    /// depth may be too deep further down), so that checking many commits of one history reads
    /// each distinct subtree once.
    public struct Checked: Sendable {
        var pathLengths: [ObjectID: Int] = [:]

        /// Nothing checked yet.
        public init() {}
    }

    /// Checks the whole tree `rootID` without building nodes; subtrees in `checked` at this
    /// depth or deeper are skipped, and on success every tree checked is added. Iterative.
    public static func validate(_ rootID: ObjectID, limits: ImportLimits = ImportLimits(), checked: inout Checked,
                                fetch: (ObjectID) -> [UInt8]?) throws(GitDecodingError) {
        var stack: [(ObjectID, Int)] = [(rootID, 1)]
        var passed: [(ObjectID, Int)] = []
        var checkedBlobs: Set<ObjectID> = []
        while let (id, pathLength) = stack.popLast() {
            if let known = checked.pathLengths[id], known >= pathLength { continue }
            guard let body = fetch(id) else { throw .missingObject(id) }
            let node = try checkNode(try GitDecoding.parseTree(body, id: id), id: id, pathLength: pathLength, limits: limits)
            if !checkedBlobs.contains(node.permissions) {
                guard let blob = fetch(node.permissions) else { throw .missingObject(node.permissions) }
                _ = try permissions(blob, id: node.permissions, limits: limits)
                checkedBlobs.insert(node.permissions)
            }
            if let valueID = node.value, !checkedBlobs.contains(valueID) {
                guard let blob = fetch(valueID) else { throw .missingObject(valueID) }
                try checkValue(blob, id: valueID, limits: limits)
                checkedBlobs.insert(valueID)
            }
            for child in node.children {
                stack.append((child.id, childPathLength(parentLength: pathLength, name: child.name)))
            }
            passed.append((id, pathLength))
        }
        for (id, pathLength) in passed where (checked.pathLengths[id] ?? 0) < pathLength {
            checked.pathLengths[id] = pathLength
        }
    }
}
