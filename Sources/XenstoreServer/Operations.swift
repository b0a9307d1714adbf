// The node operations (read, write, mkdir, rm, directory, permissions) applied to one version of the tree.

import XenstoreStore
import XenstoreWire

/// A request that reads or changes nodes. The same value is executed live, inside a
/// transaction, and again when a transaction is replayed onto a newer head.
public enum NodeOperation: Hashable, Sendable {
    case read(NodePath)
    case write(NodePath, value: [UInt8])
    case mkdir(NodePath)
    case rm(NodePath)
    case directory(NodePath)
    case directoryPart(NodePath, offset: Int)
    case getPerms(NodePath)
    case setPerms(NodePath, Permissions)

    /// The node the operation is about.
    public var path: NodePath {
        switch self {
        case .read(let p), .write(let p, _), .mkdir(let p), .rm(let p), .directory(let p),
             .directoryPart(let p, _), .getPerms(let p), .setPerms(let p, _):
            return p
        }
    }

    /// Whether the operation can change the tree.
    public var isMutation: Bool {
        switch self {
        case .write, .mkdir, .rm, .setPerms: return true
        default: return false
        }
    }

    /// The verb used in commit messages (`write`, `rm`, ...).
    var verb: StaticString {
        switch self {
        case .read: return "read"
        case .write: return "write"
        case .mkdir: return "mkdir"
        case .rm: return "rm"
        case .directory: return "directory"
        case .directoryPart: return "directory_part"
        case .getPerms: return "get_perms"
        case .setPerms: return "set_perms"
        }
    }
}

/// The outcome of a request, before it is framed as a reply message.
public enum Outcome: Equatable, Sendable {
    /// Success with this reply payload.
    case success([UInt8])
    /// Failure with this wire error.
    case failure(XenstoreError)

    /// The plain `OK` acknowledgement.
    static let ok = Outcome.success(Payload.ok)
}

/// A change that may fire watches once it is committed.
public struct WatchTrigger: Sendable {
    /// The changed node.
    public let path: NodePath
    /// Permission lists of which any one readable lets a watcher see the event: the node's
    /// (old and new, for SET_PERMS) and its parent's, as C xenstored's `watch_permitted`.
    public let visibleThrough: [Permissions]
    /// For RM: the removed subtree, so that watches on removed descendants fire too.
    public let removedSubtree: Node?
}

/// One version of the tree being changed, plus what the changes owe to quotas and watches.
public struct Workspace {
    /// The tree as changed so far.
    public var root: Node
    /// Change in the number of nodes each domain owns, relative to the committed count.
    public var ownedNodesDelta: [UInt32: Int] = [:]
    /// Change in the accounted bytes of the nodes each domain owns (`NodeOperations.footprint`).
    public var ownedBytesDelta: [UInt32: Int] = [:]
    /// Watch triggers of the successful changes, in order.
    public var triggers: [WatchTrigger] = []

    /// Starts from `root` with no changes.
    public init(root: Node) {
        self.root = root
    }
}

/// Counts of work the server did, for tests and CONTROL `memreport`: they show that costs are
/// bounded by what a request returns or changes, not by the size of the store.
public final class WorkCounters {
    /// Child entries examined by DIRECTORY_PART requests.
    public internal(set) var directoryPartEntriesVisited = 0
    /// Requests re-executed when transactions were replayed onto a newer head.
    public internal(set) var transactionRequestsReplayed = 0
    /// Privileged transactions committed onto a moved head without a replay, because nothing
    /// their requests could observe had changed (`Server.logUnaffected`).
    public internal(set) var transactionsMergedWithoutReplay = 0
    /// Privileged transactions whose conflicts were traced to the commits that caused them.
    public internal(set) var conflictsBlamed = 0

    /// All zero.
    public init() {}
}

/// What an operation needs to know beyond the tree: who asks, under which quotas, and how
/// many nodes each domain owns in the committed store.
struct OperationContext {
    let caller: Caller
    let quotas: Quotas
    let committedOwnedNodes: [UInt32: Int]
    let generations: GenerationCounter
    /// What the caller's domain and all guests hold, and the bounds on it.
    var memory = MemoryBudget()
    /// Whether a domain exists (owners named in SET_PERMS must).
    let domainExists: (UInt32) -> Bool
    /// Where the work done is counted (a private counter when the caller does not care).
    var counters = WorkCounters()

    func ownedNodes(_ domid: UInt32, _ workspace: Workspace) -> Int {
        (committedOwnedNodes[domid] ?? 0) + (workspace.ownedNodesDelta[domid] ?? 0)
    }
}

/// The memory an unprivileged caller may still make the daemon hold, as of the request.
struct MemoryBudget {
    /// Bytes the caller's domain holds in every use (`DomainTable.usage`).
    var callerHolds = 0
    /// Bytes all unprivileged domains hold together (`DomainTable.guestBytes`).
    var guestsHold = 0
    /// The caller's `memory` quota (0: unlimited).
    var quota = 0
    /// `ServerConfiguration.guestMemoryLimit` (0: unlimited).
    var guestLimit = 0
}

/// Executes node operations against a workspace with C xenstored's semantics.
enum NodeOperations {
    /// Bytes a node is accounted for against its owner's `memory` quota: the estimated
    /// allocations of a node (`Limits.nodeMemoryOverhead`), its value, 8 bytes per
    /// permission and its name in its parent's child list.
    static func footprint(valueBytes: Int, permissions: Int, nameBytes: Int) -> Int {
        Limits.nodeMemoryOverhead + valueBytes + 8 * permissions + nameBytes
    }

    /// `footprint` of an existing node whose name is `nameBytes` long.
    static func footprint(of node: Node, nameBytes: Int) -> Int {
        footprint(valueBytes: node.compactValue.count, permissions: node.permissions.count, nameBytes: nameBytes)
    }

    /// Records `bytes` more (or fewer) node bytes owned by `owner`. Growth caused by an
    /// unprivileged caller is refused with ENOMEM (and nothing recorded) when it would take the
    /// caller over its `memory` quota (for its own nodes) or all guests over `guestLimit`.
    static func charge(_ bytes: Int, to owner: UInt32, in workspace: inout Workspace,
                       _ context: OperationContext) -> XenstoreError? {
        if bytes > 0, !context.caller.privileged, owner != 0 {
            let budget = context.memory
            if owner == context.caller.domid,
               Quotas.exceeds(budget.callerHolds + (workspace.ownedBytesDelta[owner] ?? 0) + bytes, budget.quota) {
                return .ENOMEM
            }
            var guestDelta = 0
            for (domid, change) in workspace.ownedBytesDelta where domid != 0 { guestDelta += change }
            if Quotas.exceeds(budget.guestsHold + guestDelta + bytes, budget.guestLimit) { return .ENOMEM }
        }
        workspace.ownedBytesDelta[owner, default: 0] += bytes
        return nil
    }

    /// Size of a node as C xenstored's `node-size` quota counts it: record header,
    /// 8 bytes per permission, the value, and every child name with its NUL.
    /// C refuses a record whose size *reaches* the quota, hence the `+ 1` at the call sites.
    static func recordSize(value: Int, permissions: Int, childNameBytes: Int) -> Int {
        24 + 8 * permissions + value + childNameBytes
    }

    /// Looks up a node the caller needs `rights` on, with C's error rules: a missing or
    /// forbidden node reports EACCES unless the nearest existing ancestor grants `rights`.
    static func access(_ path: NodePath, _ rights: Rights, in workspace: Workspace,
                       _ context: OperationContext) -> Result<Node, XenstoreError> {
        let spine = Tree.spine(workspace.root, path.components)
        let exists = spine.count == path.components.count + 1
        var error = XenstoreError.ENOENT
        if exists {
            let node = spine.last!
            if Rights.of(context.caller, on: node.permissions).isSuperset(of: rights) { return .success(node) }
            error = .EACCES
        }
        // Ask the nearest existing strict ancestor (C's errno_from_parents); the root is its own parent.
        // C tests `parent_perm & perm`: any one of the requested rights reveals the real error.
        let ancestor = exists ? spine[max(spine.count - 2, 0)] : spine.last!
        if !Rights.of(context.caller, on: ancestor.permissions).intersection(rights).isEmpty {
            return .failure(error)
        }
        return .failure(.EACCES)
    }

    /// Executes `operation`; on success the workspace holds the changed tree and its triggers.
    static func execute(_ operation: NodeOperation, in workspace: inout Workspace,
                        _ context: OperationContext) -> Outcome {
        switch operation {
        case .read(let path):
            switch access(path, .read, in: workspace, context) {
            case .success(let node): return .success(node.value)
            case .failure(let error): return .failure(error)
            }
        case .getPerms(let path):
            switch access(path, .read, in: workspace, context) {
            case .success(let node): return .success(Payload.join(node.permissions.entries.map { $0.encoded }))
            case .failure(let error): return .failure(error)
            }
        case .directory(let path):
            switch access(path, .read, in: workspace, context) {
            case .success(let node):
                let payload = node.children.nameList
                return payload.count > Limits.payloadMax ? .failure(.E2BIG) : .success(payload)
            case .failure(let error): return .failure(error)
            }
        case .directoryPart(let path, let offset):
            switch access(path, .read, in: workspace, context) {
            case .success(let node): return .success(directoryPart(node, offset: offset, counters: context.counters))
            case .failure(let error): return .failure(error)
            }
        case .write(let path, let value):
            return write(path, value: value, createOnly: false, in: &workspace, context)
        case .mkdir(let path):
            return write(path, value: [], createOnly: true, in: &workspace, context)
        case .rm(let path):
            return remove(path, in: &workspace, context)
        case .setPerms(let path, let permissions):
            return setPermissions(path, permissions, in: &workspace, context)
        }
    }

    /// DIRECTORY_PART: `<generation>\0` then as many whole child names from byte `offset` of the
    /// child list as fit; an extra NUL marks the end of the list. The slice is taken from the
    /// (chunked) child list directly, so each call costs what it returns plus at most one chunk.
    static func directoryPart(_ node: Node, offset: Int, counters: WorkCounters) -> [UInt8] {
        var out = Payload.decimal(node.generation)
        out.append(0)
        let slice = node.children.nameListSlice(fromByte: offset, maxBytes: Limits.payloadMax - out.count - 1)
        counters.directoryPartEntriesVisited += slice.visited
        out.append(contentsOf: slice.bytes)
        if slice.atEnd { out.append(0) }
        return out
    }

    private static func write(_ path: NodePath, value: [UInt8], createOnly: Bool,
                              in workspace: inout Workspace, _ context: OperationContext) -> Outcome {
        let caller = context.caller
        switch access(path, .write, in: workspace, context) {
        case .success(let existing):
            if createOnly { return .ok }
            if !caller.privileged && Quotas.exceeds(
                recordSize(value: value.count, permissions: existing.permissions.count,
                           childNameBytes: existing.children.nameBytes) + 1, context.quotas.nodeSize) {
                return .failure(.ENOSPC)
            }
            if let error = charge(value.count - existing.compactValue.count, to: existing.permissions.owner,
                                  in: &workspace, context) {
                return .failure(error)
            }
            let replacement = existing.withValue(value, generation: context.generations.take())
            workspace.root = Tree.replacing(workspace.root, at: path.components, with: replacement,
                                            generations: context.generations)
            let parent = Tree.lookup(workspace.root, path.parent.components)!
            workspace.triggers.append(WatchTrigger(path: path, visibleThrough: [replacement.permissions, parent.permissions],
                                                   removedSubtree: nil))
            return .ok
        case .failure(let error):
            guard error == .ENOENT else { return .failure(error) }
        }
        // Create the node and every missing ancestor, inheriting permissions from the parent;
        // an unprivileged creator owns what it creates.
        let spine = Tree.spine(workspace.root, path.components)
        let existingDepth = spine.count - 1
        var inherited = spine.last!.permissions
        if !caller.privileged {
            var entries = inherited.entries
            entries[0].domid = caller.domid
            inherited = Permissions(entries)
        }
        let newCount = path.components.count - existingDepth
        let owner = inherited.owner
        if !caller.privileged && Quotas.exceeds(context.ownedNodes(caller.domid, workspace) + newCount,
                                                context.quotas.nodes) {
            return .failure(.ENOSPC)
        }
        if !caller.privileged {
            let leafSize = recordSize(value: value.count, permissions: inherited.count, childNameBytes: 0)
            let parent = spine.last!
            let parentSize = recordSize(value: parent.compactValue.count, permissions: parent.permissions.count,
                                        childNameBytes: parent.children.nameBytes + path.components[existingDepth].count + 1)
            if Quotas.exceeds(leafSize + 1, context.quotas.nodeSize)
                || Quotas.exceeds(parentSize + 1, context.quotas.nodeSize) {
                return .failure(.ENOSPC)
            }
        }
        var createdBytes = value.count
        for name in path.components[existingDepth...] {
            createdBytes += footprint(valueBytes: 0, permissions: inherited.count, nameBytes: name.count)
        }
        if let error = charge(createdBytes, to: owner, in: &workspace, context) { return .failure(error) }
        var chain = Node(value: value, permissions: inherited, generation: context.generations.take())
        var level = path.components.count - 1
        while level > existingDepth {
            chain = Node(value: [], permissions: inherited,
                         children: [Child(name: path.components[level], node: chain)],
                         generation: context.generations.take())
            level -= 1
        }
        workspace.root = Tree.replacing(workspace.root,
                                        at: Array(path.components.prefix(existingDepth + 1)), with: chain,
                                        generations: context.generations)
        workspace.ownedNodesDelta[owner, default: 0] += newCount
        let parentPermissions = path.isRoot ? inherited : Tree.lookup(workspace.root, path.parent.components)!.permissions
        workspace.triggers.append(WatchTrigger(path: path, visibleThrough: [inherited, parentPermissions],
                                               removedSubtree: nil))
        return .ok
    }

    private static func remove(_ path: NodePath, in workspace: inout Workspace,
                               _ context: OperationContext) -> Outcome {
        let node: Node
        switch access(path, .write, in: workspace, context) {
        case .success(let found):
            node = found
        case .failure(let error):
            // Removing a missing node is fine if its parent exists.
            if error == .ENOENT {
                return Tree.lookup(workspace.root, path.parent.components) != nil ? .ok : .failure(.ENOENT)
            }
            return .failure(error)
        }
        if path.isRoot { return .failure(.EINVAL) }
        let parent = Tree.lookup(workspace.root, path.parent.components)!
        let (removedNodes, removedBytes) = DomainTable.ownership(of: node)
        // The walk counts the subtree's root without its name; its name leaves the parent too.
        let nameBytes = path.components.last?.count ?? 0
        workspace.root = Tree.replacing(workspace.root, at: path.components, with: nil,
                                        generations: context.generations)
        for (owner, count) in removedNodes { workspace.ownedNodesDelta[owner, default: 0] -= count }
        for (owner, bytes) in removedBytes { workspace.ownedBytesDelta[owner, default: 0] -= bytes }
        workspace.ownedBytesDelta[node.permissions.owner, default: 0] -= nameBytes
        workspace.triggers.append(WatchTrigger(path: path, visibleThrough: [node.permissions, parent.permissions],
                                               removedSubtree: node))
        return .ok
    }

    private static func setPermissions(_ path: NodePath, _ permissions: Permissions,
                                       in workspace: inout Workspace, _ context: OperationContext) -> Outcome {
        let caller = context.caller
        let node: Node
        switch access(path, [.write, .owner], in: workspace, context) {
        case .success(let found): node = found
        case .failure(let error): return .failure(error)
        }
        if !caller.privileged && permissions.owner != node.permissions.owner { return .failure(.EPERM) }
        if !context.domainExists(permissions.owner) { return .failure(.ENOENT) }
        if !caller.privileged && Quotas.exceeds(
            recordSize(value: node.compactValue.count, permissions: permissions.count,
                       childNameBytes: node.children.nameBytes) + 1,
            context.quotas.nodeSize) {
            return .failure(.ENOSPC)
        }
        let nameBytes = path.components.last?.count ?? 0
        let oldBytes = footprint(of: node, nameBytes: nameBytes)
        let newBytes = footprint(valueBytes: node.compactValue.count, permissions: permissions.count, nameBytes: nameBytes)
        if node.permissions.owner == permissions.owner {
            if let error = charge(newBytes - oldBytes, to: permissions.owner, in: &workspace, context) {
                return .failure(error)
            }
        } else {
            // Only a privileged caller can give a node away: nothing to refuse.
            _ = charge(-oldBytes, to: node.permissions.owner, in: &workspace, context)
            _ = charge(newBytes, to: permissions.owner, in: &workspace, context)
            workspace.ownedNodesDelta[node.permissions.owner, default: 0] -= 1
            workspace.ownedNodesDelta[permissions.owner, default: 0] += 1
        }
        let replacement = node.withPermissions(permissions, generation: context.generations.take())
        workspace.root = Tree.replacing(workspace.root, at: path.components, with: replacement,
                                        generations: context.generations)
        let parentPermissions = path.isRoot ? permissions : Tree.lookup(workspace.root, path.parent.components)!.permissions
        workspace.triggers.append(WatchTrigger(path: path,
                                               visibleThrough: [permissions, node.permissions, parentPermissions],
                                               removedSubtree: nil))
        return .ok
    }
}
