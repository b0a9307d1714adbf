// Cleanup after a domain goes away: its nodes are removed and permission entries naming it dropped.

import XenstoreStore
import XenstoreWire

extension Server {
    /// Removes every trace of a domain that died or was released, as one commit: nodes it owns are
    /// deleted with their subtrees (XSA-419) and entries naming it are dropped from other nodes'
    /// permission lists (XSA-322), so a later domain reusing the id inherits no access and no quota.
    func removeTraces(of domid: UInt32) {
        guard domid != 0 else { return }
        var removals: [NodePath] = []
        var edits: [(NodePath, Permissions)] = []
        var stack: [([[UInt8]], Node)] = [([], history.head.root)]
        while let (components, node) = stack.popLast().map({ ($0.0, $0.1) }) {
            if !components.isEmpty && node.permissions.owner == domid {
                removals.append(NodePath(components: components))
                continue
            }
            let kept = node.permissions.entries.enumerated().filter { $0.offset == 0 || $0.element.domid != domid }
            if kept.count != node.permissions.count {
                edits.append((NodePath(components: components), Permissions(kept.map { $0.element })))
            }
            for child in node.children { stack.append((components + [child.name], child.node)) }
        }
        if removals.isEmpty && edits.isEmpty { return }
        var workspace = Workspace(root: history.head.root)
        let context = OperationContext(caller: .dom0, quotas: configuration.quotas, committedOwnedNodes: domains.ownedNodes,
                                       generations: history.generations, domainExists: { _ in true })
        for (path, permissions) in edits {
            _ = NodeOperations.execute(.setPerms(path, permissions), in: &workspace, context)
        }
        for path in removals {
            _ = NodeOperations.execute(.rm(path), in: &workspace, context)
        }
        let message = Server.domainLabel(0) + Payload.bytes(": clean up after domain ") + Payload.decimal(domid)
        history.commitOnHead(root: workspace.root, author: 0, message: message, time: now)
        apply(workspace)
    }
}
