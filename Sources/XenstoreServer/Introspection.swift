// The read-only /tool/xenstored subtrees: live connection, domain and server state answered from memory, never committed.

import XenstoreStore
import XenstoreWire

/// How the live state is laid out under `/tool/xenstored` (see docs/introspection.md):
///
///     server/      nodes, commits, head, connections, domains, storage, memory/...
///     connection/<id>/   domid, privileged, target, transport, input-bytes, conflicts, throttled,
///                        output/{bytes,messages,replies,events,dropped-events},
///                        watch/<n>/{path,token,depth}, transaction/<id>/{started,requests,base}
///     domain/<domid>/    introduced, ring/{gfn,event-channel}, target, shut-down, connections,
///                        nodes, watches, transactions, outstanding, memory/{...}, history-bytes,
///                        quota/<name>
///
/// Every node is owned by dom0 with no access for others (`n0`): only privileged callers can
/// read it; nobody can write it. Values are decimal numbers or text.
enum Introspection {
    /// The names of the virtual subtrees below `/tool/xenstored`, sorted.
    static let subtrees: [[UInt8]] = [Payload.bytes("connection"), Payload.bytes("domain"), Payload.bytes("server")]

    /// `/tool/xenstored`.
    static let root = NodePath(components: [Payload.bytes("tool"), Payload.bytes("xenstored")])

    /// The permissions of every virtual node: dom0's, nobody else's.
    static let permissions = Permissions.ownedBy(0)

    /// Whether `path` is a virtual node: `/tool/xenstored/{connection,domain,server}` or below.
    static func contains(_ path: NodePath) -> Bool {
        path.components.count >= 3 && path.components[0] == root.components[0]
            && path.components[1] == root.components[1] && subtrees.contains(path.components[2])
    }

    /// Whether a watch on `watched` can see changes of the virtual subtrees: it is at or below
    /// `/tool/xenstored` (a watch on `/` or `/tool` does not get them, so the toolstack's
    /// watches never see the server's own bookkeeping).
    static func watches(_ watched: NodePath) -> Bool {
        watched.isInside(root)
    }
}

/// Builds virtual nodes: every node of one answer shares `generation` (DIRECTORY_PART's
/// generation count), which changes only when the set of names can change.
struct IntrospectionBuilder {
    let generation: UInt64

    /// A node with a value and no children.
    func leaf(_ value: [UInt8]) -> Node {
        Node(value: value, permissions: Introspection.permissions, generation: generation)
    }

    /// A decimal leaf.
    func number<T: BinaryInteger>(_ value: T) -> Node { leaf(Payload.decimal(value)) }

    /// `1` or `0`.
    func flag(_ value: Bool) -> Node { leaf(value ? [0x31] : [0x30]) }

    /// A directory of `entries` (sorted here by name bytes, as the store keeps children).
    func directory(_ entries: [(StaticString, Node)]) -> Node {
        directory(bytes: entries.map { (Payload.bytes($0.0), $0.1) })
    }

    /// A directory of entries named by bytes (numbers), sorted here.
    func directory(bytes entries: [([UInt8], Node)]) -> Node {
        let sorted = entries.sorted { $0.0.lexicographicallyPrecedes($1.0) }
        return Node(value: [], permissions: Introspection.permissions,
                    children: sorted.map { Child(name: $0.0, node: $0.1) }, generation: generation)
    }
}

extension Server {
    /// Answers a node operation on a virtual path (`Introspection.contains`), or returns nil for
    /// every other path. Reads need read access to `n0` (privileged callers only); changes are
    /// refused with EACCES for everybody. Nothing is logged in a transaction or committed.
    func introspect(_ operation: NodeOperation, caller: Caller) -> Outcome? {
        let path = operation.path
        guard Introspection.contains(path) else { return nil }
        if operation.isMutation { return .failure(.EACCES) }
        guard Rights.of(caller, on: Introspection.permissions).contains(.read) else { return .failure(.EACCES) }
        // `server` is one node; `connection` and `domain` are a listing, or one entity by key.
        let subtree = path.components[2]
        var below = Array(path.components[3...])
        var key: [UInt8]? = nil
        if subtree != Payload.bytes("server"), !below.isEmpty { key = below.removeFirst() }
        guard let top = introspectionNode(subtree, key) else { return .failure(.ENOENT) }
        let spine = Tree.spine(top, below)
        guard spine.count == below.count + 1 else { return .failure(.ENOENT) }
        let node = spine[spine.count - 1]
        switch operation {
        case .read:
            return .success(node.value)
        case .getPerms:
            return .success(Payload.join(Introspection.permissions.entries.map { $0.encoded }))
        default:
            return listing(of: node, operation) ?? .failure(.EACCES)
        }
    }

    /// DIRECTORY or DIRECTORY_PART of a virtual node; nil for any other operation.
    func listing(of node: Node, _ operation: NodeOperation) -> Outcome? {
        switch operation {
        case .directory:
            let payload = node.children.nameList
            return payload.count > Limits.payloadMax ? .failure(.E2BIG) : .success(payload)
        case .directoryPart(_, let offset):
            return .success(NodeOperations.directoryPart(node, offset: offset, counters: counters))
        default:
            return nil
        }
    }

    /// DIRECTORY or DIRECTORY_PART of `/tool/xenstored` itself for a caller that may read the
    /// virtual subtrees: the stored node's children plus the virtual names. Nil otherwise.
    func introspectRoot(_ operation: NodeOperation, caller: Caller, stored: Outcome, in root: Node) -> Outcome? {
        guard case .success = stored, operation.path == Introspection.root,
              Rights.of(caller, on: Introspection.permissions).contains(.read) else { return nil }
        let spine = Tree.spine(root, operation.path.components)
        guard spine.count == operation.path.components.count + 1 else { return nil }
        let node = spine[spine.count - 1]
        var names = node.childNames
        for name in Introspection.subtrees where !names.contains(name) { names.append(name) }
        names.sort { $0.lexicographicallyPrecedes($1) }
        let builder = IntrospectionBuilder(generation: node.generation)
        return listing(of: builder.directory(bytes: names.map { ($0, builder.leaf([])) }), operation)
    }

    /// The virtual node `/tool/xenstored/<subtree>` or, for `connection` and `domain` with a
    /// `key`, the node of that one connection or domain (nil if there is none). Only what the
    /// request needs is built: one connection's or domain's state, or a listing of names.
    func introspectionNode(_ subtree: [UInt8], _ key: [UInt8]?) -> Node? {
        let build = IntrospectionBuilder(generation: introspectionGeneration)
        switch subtree {
        case Payload.bytes("server"):
            return serverNode(build)
        case Payload.bytes("connection"):
            guard let key else {
                return build.directory(bytes: connectionsInOrder.map { (Payload.decimal($0.id.raw), build.leaf([])) })
            }
            guard let raw = Payload.parseDecimal(key), raw <= UInt64(UInt32.max), Payload.decimal(raw) == key,
                  let connection = connections[ConnectionID(raw: UInt32(raw))] else { return nil }
            return connectionNode(connection, build)
        case Payload.bytes("domain"):
            guard let key else {
                return build.directory(bytes: introspectedDomains().map { (Payload.decimal($0), build.leaf([])) })
            }
            guard let raw = Payload.parseDecimal(key), raw <= UInt64(UInt32.max), Payload.decimal(raw) == key,
                  isIntrospectedDomain(UInt32(raw)) else { return nil }
            return domainNode(UInt32(raw), build)
        default:
            return nil
        }
    }

    /// Whether `domain/<domid>` exists (`introspectedDomains`), without listing them all.
    func isIntrospectedDomain(_ domid: UInt32) -> Bool {
        domains[domid] != nil || connections.values.contains { $0.caller.domid == domid }
    }

    /// Domains shown under `domain/`: every known domain and every domain with a connection.
    func introspectedDomains() -> [UInt32] {
        var ids = Set(domains.ids)
        for connection in connections.values { ids.insert(connection.caller.domid) }
        return ids.sorted()
    }

    func serverNode(_ build: IntrospectionBuilder) -> Node {
        var nodes = 0
        for count in domains.ownedNodes.values { nodes += count }
        let storage: StaticString
        switch storageState {
        case .available: storage = "available"
        case .reservedForDom0: storage = "reserved-for-dom0"
        case .full: storage = "full"
        }
        var transactions = 0
        var watches = 0
        for connection in connections.values {
            transactions += connection.transactions.count
            watches += connection.watches.count
        }
        let memory = build.directory([
            ("nodes", build.number(domains.total(in: .nodes))),
            ("transactions", build.number(domains.total(in: .transactions))),
            ("watches", build.number(domains.total(in: .watches))),
            ("output", build.number(domains.total(in: .output))),
            ("guests", build.number(domains.guestBytes)),
            ("guest-limit", build.number(configuration.guestMemoryLimit)),
            ("history", build.number(history.retainedBytes)),
        ])
        return build.directory([
            ("nodes", build.number(nodes)),
            ("commits", build.number(history.commitCount)),
            ("head", build.number(history.head.sequence)),
            ("connections", build.number(connections.count)),
            ("domains", build.number(domains.count)),
            ("transactions", build.number(transactions)),
            ("watches", build.number(watches)),
            ("storage", build.leaf(Payload.bytes(storage))),
            ("memory", memory),
        ])
    }

    func connectionNode(_ connection: Connection, _ build: IntrospectionBuilder) -> Node {
        let caller = connection.caller
        let output = connection.output
        let watchEntries = connection.watches.enumerated().map { index, watch in
            (Payload.decimal(index), build.directory([
                ("path", build.leaf(watch.path)),
                ("token", build.leaf(watch.token)),
                ("depth", build.leaf(watch.depth.map { Payload.decimal($0) } ?? [])),
            ]))
        }
        let transactionEntries = connection.transactions.map { id, transaction in
            (Payload.decimal(id), build.directory([
                ("started", build.number(transaction.startedAt)),
                ("requests", build.number(transaction.requests)),
                ("base", build.number(transaction.base.sequence)),
            ]))
        }
        let transport = connection.transport ?? Payload.bytes(caller.domid == 0 ? "socket" : "ring")
        return build.directory([
            ("domid", build.number(caller.domid)),
            ("privileged", build.flag(caller.privileged)),
            ("target", build.leaf(caller.target.map { Payload.decimal($0) } ?? [])),
            ("transport", build.leaf(transport)),
            ("input-bytes", build.number(connection.decoder.partial.count)),
            ("conflicts", build.number(connection.consecutiveConflicts)),
            ("throttled", build.flag(isThrottled(connection))),
            ("output", build.directory([
                ("bytes", build.number(output.byteCount)),
                ("messages", build.number(output.count)),
                ("replies", build.number(output.replyCount)),
                ("events", build.number(output.count - output.replyCount)),
                ("dropped-events", build.number(connection.droppedEvents)),
            ])),
            ("watch", build.directory(bytes: watchEntries)),
            ("transaction", build.directory(bytes: transactionEntries)),
        ])
    }

    func domainNode(_ domid: UInt32, _ build: IntrospectionBuilder) -> Node {
        let record = domains[domid]
        var entries: [(StaticString, Node)] = []
        entries.append(("introduced", build.flag(record?.introduced ?? (domid == 0))))
        if let record, record.introduced {
            entries.append(("ring", build.directory([
                ("gfn", build.number(record.gfn)),
                ("event-channel", build.number(record.eventChannel)),
            ])))
        }
        entries.append(("target", build.leaf(record?.target.map { Payload.decimal($0) } ?? [])))
        entries.append(("shut-down", build.flag(record?.shutDown ?? false)))
        var connectionCount = 0
        var transactions = 0
        var outstanding = 0
        for connection in connections.values where connection.caller.domid == domid {
            connectionCount += 1
            transactions += connection.transactions.count
            outstanding += connection.output.replyCount
        }
        entries.append(("connections", build.number(connectionCount)))
        entries.append(("nodes", build.number(domains.ownedNodes[domid] ?? 0)))
        entries.append(("watches", build.number(watchCount(of: domid))))
        entries.append(("transactions", build.number(transactions)))
        entries.append(("outstanding", build.number(outstanding)))
        entries.append(("memory", build.directory([
            ("total", build.number(domains.usage(of: domid))),
            ("nodes", build.number(domains.usage(of: domid, in: .nodes))),
            ("transactions", build.number(domains.usage(of: domid, in: .transactions))),
            ("watches", build.number(domains.usage(of: domid, in: .watches))),
            ("output", build.number(domains.usage(of: domid, in: .output))),
        ])))
        entries.append(("history-bytes", build.number(history.retainedBytesByAuthor[domid] ?? 0)))
        let quotas = domains.quotas(of: domid, defaults: configuration.quotas)
        entries.append(("quota", build.directory(bytes: Quotas.names.map { ($0, build.number(quotas.value(named: $0) ?? 0)) })))
        return build.directory(entries)
    }

    /// Records that the names under the virtual subtrees may have changed at `path` (a
    /// connection opened or closed, a watch or transaction added or removed, a domain
    /// introduced or released): the generation count moves, and watches at or below
    /// `/tool/xenstored` that cover `path`, or lie below it, fire once with `path`. Counters
    /// (bytes, queued messages) change without events: an event would itself change them.
    /// `components` (below `/tool/xenstored`) are only built when somebody watches: this runs at
    /// every TRANSACTION_START and END.
    func introspectionChanged(_ components: @autoclosure () -> [[UInt8]]) {
        introspectionGeneration &+= 1
        guard introspectionWatchers > 0 else { return }
        if deferredIntrospection != nil {
            deferredIntrospection!.append(components())
            return
        }
        fireIntrospection(components())
    }

    /// Queues the event of a change at `components` for every watch at or below `/tool/xenstored`
    /// that covers it or lies below it.
    func fireIntrospection(_ components: [[UInt8]]) {
        let path = NodePath(components: Introspection.root.components + components)
        for connection in connectionsInOrder {
            guard !connection.isBroken,
                  Rights.of(connection.caller, on: Introspection.permissions).contains(.read) else { continue }
            for watch in connection.watches {
                guard let watched = watch.node, Introspection.watches(watched) else { continue }
                if path.isInside(watched) {
                    if let depth = watch.depth, path.components.count - watched.components.count > depth { continue }
                } else if !watched.isInside(path) {
                    continue
                }
                let reported = watch.relative ? relativeEventPath(path.bytes, connection) : path.bytes
                queueEvent(on: connection, path: reported, token: watch.token)
            }
        }
    }

    /// `introspectionChanged` for one connection's `part` (`watch`, `transaction`) or, with nil,
    /// the connection itself.
    func introspectionChanged(connection id: ConnectionID, _ part: StaticString? = nil) {
        var components = [Payload.bytes("connection"), Payload.decimal(id.raw)]
        if let part { components.append(Payload.bytes(part)) }
        introspectionChanged(components)
    }

    /// `introspectionChanged` for one domain.
    func introspectionChanged(domain domid: UInt32) {
        introspectionChanged([Payload.bytes("domain"), Payload.decimal(domid)])
    }
}
