// Git's object encoding of nodes and commits, so that every id equals what `git hash-object` computes.

/// The kind of a git object.
public enum GitObjectType: Sendable {
    case blob, tree, commit

    /// The type word that prefixes the object body before hashing (`blob`, `tree`, `commit`).
    public var word: [UInt8] {
        switch self {
        case .blob: return [0x62, 0x6C, 0x6F, 0x62]
        case .tree: return [0x74, 0x72, 0x65, 0x65]
        case .commit: return [0x63, 0x6F, 0x6D, 0x6D, 0x69, 0x74]
        }
    }
}

/// Encodes nodes as git trees and blobs: each Xenstore node is one tree holding a `.value` blob,
/// a `.perms` blob and one subtree per child. `.` never occurs in a Xenstore name, so the
/// reserved entries cannot collide with children.
public enum GitEncoding {
    /// Name of the tree entry holding a node's value.
    public static let valueEntry: [UInt8] = [0x2E, 0x76, 0x61, 0x6C, 0x75, 0x65]  // .value
    /// Name of the tree entry holding a node's permission list.
    public static let permsEntry: [UInt8] = [0x2E, 0x70, 0x65, 0x72, 0x6D, 0x73]  // .perms
    static let blobMode: [UInt8] = [0x31, 0x30, 0x30, 0x36, 0x34, 0x34]  // 100644
    static let treeMode: [UInt8] = [0x34, 0x30, 0x30, 0x30, 0x30]  // 40000
    /// The id of the empty blob (`git hash-object /dev/null`): the value of most directory nodes.
    static let emptyBlobID = objectID(.blob, body: [])

    /// The id of an object: SHA-1 over `type SP length NUL body`.
    public static func objectID(_ type: GitObjectType, body: [UInt8]) -> ObjectID {
        body.withUnsafeBytes { objectID(type, bytes: $0) }
    }

    /// The id of an object whose body is `bytes` (the header is hashed from a stack buffer:
    /// hashing a small blob allocates nothing).
    public static func objectID(_ type: GitObjectType, bytes: UnsafeRawBufferPointer) -> ObjectID {
        var hasher = SHA1()
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 32) { buffer in
            var count = 0
            func put(_ byte: UInt8) {
                buffer[count] = byte
                count += 1
            }
            switch type {
            case .blob: put(0x62); put(0x6C); put(0x6F); put(0x62)
            case .tree: put(0x74); put(0x72); put(0x65); put(0x65)
            case .commit: put(0x63); put(0x6F); put(0x6D); put(0x6D); put(0x69); put(0x74)
            }
            put(0x20)
            forEachDigit(of: UInt64(bytes.count), put)
            put(0)
            hasher.update(UnsafeRawBufferPointer(start: buffer.baseAddress, count: count))
        }
        hasher.update(bytes)
        return hasher.finalize()
    }

    /// The id of the blob holding `value`'s bytes (no array made for an inline value).
    public static func blobID(_ value: CompactBytes) -> ObjectID {
        value.withUnsafeBufferPointer { objectID(.blob, bytes: UnsafeRawBufferPointer($0)) }
    }

    /// The header git hashes and stores before an object body.
    public static func header(_ type: GitObjectType, length: Int) -> [UInt8] {
        var out = type.word
        out.append(0x20)
        out.append(contentsOf: decimal(length))
        out.append(0)
        return out
    }

    /// Git's tree entry order: bytewise by name, a tree's name compared as if it ended in '/'.
    static func gitPrecedes(_ a: [UInt8], aIsTree: Bool, _ b: [UInt8], bIsTree: Bool) -> Bool {
        let common = min(a.count, b.count)
        var index = 0
        while index < common {
            if a[index] != b[index] { return a[index] < b[index] }
            index += 1
        }
        let nextA: UInt8 = a.count > common ? a[common] : (aIsTree ? 0x2F : 0)
        let nextB: UInt8 = b.count > common ? b[common] : (bIsTree ? 0x2F : 0)
        return nextA < nextB
    }

    /// The tree body of `node`; the ids of its children must already be known.
    public static func treeBody(_ node: Node) -> [UInt8] {
        treeBody(node, valueID: blobID(node.compactValue), permsID: objectID(.blob, body: node.permissions.blob))
    }

    /// The tree body of `node` whose `.value` and `.perms` blobs have the given ids (a writer
    /// that stores those blobs too hashes each once).
    static func treeBody(_ node: Node, valueID: ObjectID, permsID: ObjectID) -> [UInt8] {
        // The common case in one pass over the children, copying no list: names in plain byte
        // order are in git's order unless one continues the previous with a byte below '/'.
        // Written through a pointer into a buffer of the exact bound: per entry `40000 `, the name,
        // NUL and 20 id bytes (a name is stored 16 bytes at a time, hence the slack); the two blob
        // entries 34 bytes each.
        let children = node.children
        let capacity = children.nameBytes + children.count * (treeMode.count + 21) + 2 * (blobMode.count + 28) + 16
        var inGitOrder = true
        let body = [UInt8](unsafeUninitializedCapacity: capacity) { buffer, count in
            var out = UnsafeMutableRawPointer(buffer.baseAddress!)
            func appendBlobs() {
                out = appendBlobEntry(at: out, name: permsEntry, id: permsID)
                out = appendBlobEntry(at: out, name: valueEntry, id: valueID)
            }
            var blobsWritten = false
            var previous = CompactBytes()
            for child in children {
                let name = child.compactName
                if name.continues(previous, withByteBelow: 0x2F) {
                    inGitOrder = false
                    break
                }
                if !blobsWritten && name.firstByte >= 0x2E {
                    appendBlobs()
                    blobsWritten = true
                }
                guard let childID = child.node.cachedID else { preconditionFailure("child id must be computed first") }
                out.storeBytes(of: (0x3030_3034 as UInt32).littleEndian, as: UInt32.self)  // "4000"
                out.storeBytes(of: (0x2030 as UInt16).littleEndian, toByteOffset: 4, as: UInt16.self)  // "0 "
                out += 6
                out += name.store(at: out)
                out.storeBytes(of: 0 as UInt8, as: UInt8.self)
                childID.store(at: out + 1)
                out += 21
                previous = name
            }
            if !blobsWritten { appendBlobs() }
            count = inGitOrder ? out - UnsafeMutableRawPointer(buffer.baseAddress!) : 0
        }
        return inGitOrder ? body : sortedTreeBody(node, valueID: valueID, permsID: permsID)
    }

    /// Writes the tree entry `100644 name NUL id` at `out`; returns the position after it.
    private static func appendBlobEntry(at out: UnsafeMutableRawPointer, name: [UInt8], id: ObjectID) -> UnsafeMutableRawPointer {
        var position = out
        for byte in blobMode {
            position.storeBytes(of: byte, as: UInt8.self)
            position += 1
        }
        position.storeBytes(of: 0x20 as UInt8, as: UInt8.self)
        position += 1
        name.withUnsafeBytes { position.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
        position += name.count
        position.storeBytes(of: 0 as UInt8, as: UInt8.self)
        id.store(at: position + 1)
        return position + 21
    }

    /// `treeBody` where git's order is not the children's plain order (a name continues another
    /// with a byte below '/', which among Xenstore's characters is '-' alone): every entry,
    /// `.perms` and `.value` among them, sorted as git sorts tree entries.
    static func sortedTreeBody(_ node: Node, valueID: ObjectID, permsID: ObjectID) -> [UInt8] {
        let children = Array(node.children)  // indexing a chunked list searches
        func name(_ entry: Int) -> [UInt8] {
            entry == -2 ? permsEntry : entry == -1 ? valueEntry : children[entry].name
        }
        let order = (Array(0..<children.count) + [-2, -1]).sorted {  // -2: .perms, -1: .value
            gitPrecedes(name($0), aIsTree: $0 >= 0, name($1), bIsTree: $1 >= 0)
        }
        var body: [UInt8] = []
        body.reserveCapacity(children.count * 40 + 80)
        for entry in order {
            if entry < 0 {
                appendEntry(to: &body, blobMode, name(entry), entry == -2 ? permsID : valueID)
            } else {
                guard let childID = children[entry].node.cachedID else { preconditionFailure("child id must be computed first") }
                appendEntry(to: &body, treeMode, children[entry].name, childID)
            }
        }
        return body
    }

    /// Appends one tree entry: `mode SP name NUL id`.
    static func appendEntry(to body: inout [UInt8], _ mode: [UInt8], _ name: [UInt8], _ id: ObjectID) {
        body.append(contentsOf: mode)
        body.append(0x20)
        body.append(contentsOf: name)
        body.append(0)
        id.append(to: &body)
    }

    /// The git tree id of `node`, computing (and caching) ids of every subtree not yet hashed.
    /// Post-order with an explicit stack: deep trees use heap, not call stack.
    public static func treeID(_ node: Node) -> ObjectID {
        if let id = node.cachedID { return id }
        var stack: [(Node, Bool)] = [(node, false)]
        while let entry = stack.popLast() {
            let (current, expanded) = entry
            if current.cachedID != nil { continue }
            if expanded {
                current.cachedID = objectID(.tree, body: treeBody(current))
            } else {
                stack.append((current, true))
                for child in current.children where child.node.cachedID == nil {
                    stack.append((child.node, false))
                }
            }
        }
        return node.cachedID!
    }

    /// Visits every object of the subtree not accepted by `known` (tree, then its blobs), children
    /// before parents, so a writer can store them in dependency order. Ids are computed as needed,
    /// and each new tree is serialized once (its body serves both its id and the visit).
    /// A subtree whose id is already known is not descended into: a store holds the objects of
    /// every tree it holds. `previous`, if given, is a tree the store holds entirely (the last one
    /// it wrote): subtrees shared with it are skipped without a lookup, and in a big directory
    /// only the children outside chunks shared with it are looked at, so writing one change
    /// under 10,000 domains does not look up 10,000 ids.
    public static func forEachObject(_ root: Node, since previous: Node? = nil, skipping known: (ObjectID) -> Bool,
                                     visit: (ObjectID, GitObjectType, [UInt8]) -> Void) {
        var stack: [(node: Node, previous: Node?, expanded: Bool)] = [(root, previous, false)]
        var lastPermissions = Permissions.ownedBy(0)
        var lastPermissionsBlob = lastPermissions.blob
        var lastPermissionsID = objectID(.blob, body: lastPermissionsBlob)
        while let entry = stack.popLast() {
            let current = entry.node
            if entry.expanded {
                let valueID = current.compactValue.isEmpty ? emptyBlobID : blobID(current.compactValue)
                if current.permissions != lastPermissions {  // siblings mostly share their permissions
                    lastPermissions = current.permissions
                    lastPermissionsBlob = current.permissions.blob
                    lastPermissionsID = objectID(.blob, body: lastPermissionsBlob)
                }
                let permsID = lastPermissionsID
                let body = treeBody(current, valueID: valueID, permsID: permsID)
                let id = current.cachedID ?? objectID(.tree, body: body)
                current.cachedID = id
                if known(id) { continue }
                visit(valueID, .blob, current.value)
                visit(permsID, .blob, lastPermissionsBlob)
                visit(id, .tree, body)
                continue
            }
            if current === entry.previous { continue }
            if let id = current.cachedID, known(id) { continue }
            stack.append((current, nil, true))
            if let old = entry.previous {
                ChildList.forEachChange(old.children, current.children) { _, oldChild, newChild in
                    guard let child = newChild else { return }
                    if let id = child.cachedID, known(id) { return }
                    stack.append((child, oldChild, false))
                }
            } else {
                for child in current.children {
                    if let id = child.node.cachedID, known(id) { continue }
                    stack.append((child.node, nil, false))
                }
            }
        }
    }

    /// ASCII decimal digits of an integer (with a leading `-` when negative).
    public static func decimal<T: BinaryInteger>(_ value: T) -> [UInt8] {
        var digits: [UInt8] = []
        appendDecimal(Int64(value), to: &digits)
        return digits
    }

    /// Appends the ASCII decimal digits of `value` (with a leading `-` when negative) to `out`.
    public static func appendDecimal(_ value: Int64, to out: inout [UInt8]) {
        if value < 0 { out.append(0x2D) }
        forEachDigit(of: value.magnitude) { out.append($0) }
    }

    /// Calls `body` with each ASCII decimal digit of `value`, most significant first.
    static func forEachDigit(of value: UInt64, _ body: (UInt8) -> Void) {
        var divisor: UInt64 = 1
        while divisor <= value / 10 { divisor *= 10 }
        var remaining = value
        while divisor > 0 {
            body(0x30 + UInt8(truncatingIfNeeded: remaining / divisor))
            remaining %= divisor
            divisor /= 10
        }
    }
}
