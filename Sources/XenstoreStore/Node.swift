// Immutable Xenstore nodes: value, permissions and sorted children, shared between versions.

/// Access a permission entry grants: the letters `n`, `r`, `w`, `b` of the wire format.
public enum Access: UInt8, Sendable {
    case none = 0
    case read = 1
    case write = 2
    case both = 3

    /// Whether reading is allowed.
    public var canRead: Bool { self == .read || self == .both }
    /// Whether writing is allowed.
    public var canWrite: Bool { self == .write || self == .both }

    /// The letter used on the wire and in `.perms` blobs.
    public var letter: UInt8 {
        switch self {
        case .none: return 0x6E  // n
        case .read: return 0x72  // r
        case .write: return 0x77  // w
        case .both: return 0x62  // b
        }
    }

    /// Parses a wire letter.
    public init?(letter: UInt8) {
        switch letter {
        case 0x6E: self = .none
        case 0x72: self = .read
        case 0x77: self = .write
        case 0x62: self = .both
        default: return nil
        }
    }
}

/// One permission entry: a domain and what it may do.
public struct PermissionEntry: Hashable, Sendable {
    /// The domain the entry is about.
    public var domid: UInt32
    /// What that domain may do.
    public var access: Access

    /// Creates an entry.
    public init(domid: UInt32, access: Access) {
        self.domid = domid
        self.access = access
    }

    /// The wire form, e.g. `r5`.
    public var encoded: [UInt8] {
        var out: [UInt8] = []
        append(to: &out)
        return out
    }

    /// Appends the wire form to `out` (no array of its own: permission blobs are built often).
    public func append(to out: inout [UInt8]) {
        out.append(access.letter)
        GitEncoding.appendDecimal(Int64(domid), to: &out)
    }

    /// Parses the wire form (`<letter><decimal domid>`); nil if malformed.
    public init?(encoded bytes: [UInt8]) {
        guard bytes.count >= 2, bytes.count <= 11, let access = Access(letter: bytes[0]) else { return nil }
        var value: UInt64 = 0
        for byte in bytes.dropFirst() {
            guard byte >= 0x30 && byte <= 0x39 else { return nil }
            value = value * 10 + UInt64(byte - 0x30)
        }
        guard value <= UInt64(UInt32.max) else { return nil }
        self.init(domid: UInt32(value), access: access)
    }
}

/// A node's permission list. The first entry names the owner and the default access of
/// every domain not listed later.
///
/// Lists of one or two entries (nearly every node: the owner, perhaps one reader) are held inline,
/// with no allocation of their own; longer lists in an array.
public struct Permissions: Hashable, Sendable, RandomAccessCollection {
    /// One canonical form per list length, so derived equality is equality of the entries.
    private enum Storage: Hashable, Sendable {
        case one(PermissionEntry)
        case two(PermissionEntry, PermissionEntry)
        case many([PermissionEntry])
    }

    private let storage: Storage

    /// Creates a list; `entries` must not be empty.
    public init(_ entries: [PermissionEntry]) {
        precondition(!entries.isEmpty, "a permission list names at least its owner")
        switch entries.count {
        case 1: storage = .one(entries[0])
        case 2: storage = .two(entries[0], entries[1])
        default: storage = .many(entries)
        }
    }

    /// The entries, owner first; never empty. (A new array: iterate the list itself where it matters.)
    public var entries: [PermissionEntry] {
        switch storage {
        case .one(let first): return [first]
        case .two(let first, let second): return [first, second]
        case .many(let all): return all
        }
    }

    /// Always 0.
    public var startIndex: Int { 0 }
    /// The number of entries.
    public var endIndex: Int {
        switch storage {
        case .one: return 1
        case .two: return 2
        case .many(let all): return all.count
        }
    }

    /// The entry at `position` (0 is the owner).
    public subscript(position: Int) -> PermissionEntry {
        switch storage {
        case .one(let first):
            precondition(position == 0, "permission index out of range")
            return first
        case .two(let first, let second):
            precondition(position == 0 || position == 1, "permission index out of range")
            return position == 0 ? first : second
        case .many(let all): return all[position]
        }
    }

    /// Owned by `owner`, nobody else has access: the C xenstored default for dom0 nodes (`n0`).
    public static func ownedBy(_ owner: UInt32) -> Permissions {
        Permissions([PermissionEntry(domid: owner, access: .none)])
    }

    /// The owning domain.
    public var owner: UInt32 { self[0].domid }

    /// The contents of the `.perms` blob: one entry per line (`n0\nr5\n`).
    public var blob: [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(count * 8)
        for entry in self {
            entry.append(to: &out)
            out.append(0x0A)
        }
        return out
    }

    /// Parses a `.perms` blob.
    public init?(blob: [UInt8]) {
        var entries: [PermissionEntry] = []
        var current: [UInt8] = []
        for byte in blob {
            if byte == 0x0A {
                guard let entry = PermissionEntry(encoded: current) else { return nil }
                entries.append(entry)
                current.removeAll()
            } else {
                current.append(byte)
            }
        }
        guard current.isEmpty, !entries.isEmpty else { return nil }
        self.init(entries)
    }
}

/// One immutable node of a Xenstore tree. Versions of the tree share every unchanged node, so
/// `===` between two nodes means "same subtree" and lets merges and diffs skip whole subtrees.
public final class Node: @unchecked Sendable {
    /// The node's value (binary-safe bytes), inline when short.
    public let compactValue: CompactBytes
    /// The node's value as an array (a new one for a short value: compare with `compactValue`).
    public var value: [UInt8] { compactValue.array }
    /// The node's permission list.
    public let permissions: Permissions
    /// The children, sorted by name bytes.
    public let children: ChildList
    /// A number that changes whenever a new version of this node is made; reported as the
    /// generation count of DIRECTORY_PART. Not part of the git encoding.
    public let generation: UInt64
    /// The git tree id, computed on first use by `GitEncoding`.
    var cachedID: ObjectID?

    /// Creates a node; `children` must be sorted by name with no duplicates.
    public init(value: [UInt8], permissions: Permissions, children: [Child] = [], generation: UInt64) {
        self.compactValue = CompactBytes(value)
        self.permissions = permissions
        self.children = ChildList(children)
        self.generation = generation
    }

    /// Creates a node with an existing child list.
    public init(value: [UInt8], permissions: Permissions, children: ChildList, generation: UInt64) {
        self.compactValue = CompactBytes(value)
        self.permissions = permissions
        self.children = children
        self.generation = generation
    }

    /// Creates a node whose value is already held compactly (copies that keep the value).
    init(compactValue: CompactBytes, permissions: Permissions, children: ChildList, generation: UInt64) {
        self.compactValue = compactValue
        self.permissions = permissions
        self.children = children
        self.generation = generation
    }

    /// The child called `name`, if any.
    public func child(_ name: [UInt8]) -> Node? {
        children.node(named: name)
    }

    /// The child names in order.
    public var childNames: [[UInt8]] { children.map { $0.name } }

    /// A copy with the child `name` replaced, added (`node` non-nil) or removed (`node` nil).
    public func settingChild(_ name: [UInt8], to node: Node?, generation: UInt64) -> Node {
        guard let newChildren = children.setting(name, to: node) else { return self }
        return Node(compactValue: compactValue, permissions: permissions, children: newChildren, generation: generation)
    }

    /// A copy with a different value.
    public func withValue(_ newValue: [UInt8], generation: UInt64) -> Node {
        Node(value: newValue, permissions: permissions, children: children, generation: generation)
    }

    /// A copy with a different permission list.
    public func withPermissions(_ newPermissions: Permissions, generation: UInt64) -> Node {
        Node(compactValue: compactValue, permissions: newPermissions, children: children, generation: generation)
    }
}
