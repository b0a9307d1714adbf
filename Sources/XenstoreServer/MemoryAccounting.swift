// Memory accounting of connections: queued output and watches charged to their domain, and the bound on all guests together.

import XenstoreWire

extension Server {
    /// Queues an encoded message for a connection, accounting it to the connection's domain.
    func enqueue(_ encoded: [UInt8], reply: Bool, on connection: Connection) {
        connection.output.append(encoded, reply: reply)
        domains.hold(encoded.count, in: .output, by: connection.caller.domid)
    }

    /// Registers a watch on a connection, accounting its bytes to the connection's domain.
    func addWatch(_ watch: Watch, to connection: Connection) {
        connection.watches.append(watch)
        domains.hold(Server.watchBytes([watch]), in: .watches, by: connection.caller.domid)
        if Server.watchesIntrospection(watch) { introspectionWatchers += 1 }
        introspectionChanged(connection: connection.id, "watch")
    }

    /// Drops one watch of a connection and gives its bytes back.
    func removeWatch(at index: Int, from connection: Connection) {
        let watch = connection.watches.remove(at: index)
        domains.hold(-Server.watchBytes([watch]), in: .watches, by: connection.caller.domid)
        if Server.watchesIntrospection(watch) { introspectionWatchers -= 1 }
        introspectionChanged(connection: connection.id, "watch")
    }

    /// Drops every watch of a connection and gives their bytes back; `announce` false when the
    /// connection itself goes (one change of `/tool/xenstored/connection/<id>` says it all).
    func removeAllWatches(of connection: Connection, announce: Bool = true) {
        domains.hold(-Server.watchBytes(connection.watches), in: .watches, by: connection.caller.domid)
        for watch in connection.watches where Server.watchesIntrospection(watch) { introspectionWatchers -= 1 }
        let had = !connection.watches.isEmpty
        connection.watches.removeAll()
        if had && announce { introspectionChanged(connection: connection.id, "watch") }
    }

    /// Whether a watch is at or below `/tool/xenstored` (it may see the virtual subtrees change).
    static func watchesIntrospection(_ watch: Watch) -> Bool {
        guard let node = watch.node else { return false }
        return Introspection.watches(node)
    }

    /// Accounted bytes of watches: path, token and `Limits.watchMemoryOverhead` each.
    static func watchBytes(_ watches: [Watch]) -> Int {
        var total = 0
        for watch in watches { total += Limits.watchMemoryOverhead + watch.path.count + watch.token.count }
        return total
    }

    /// Whether all guests together would hold more than `guestMemoryLimit` with `bytes` more.
    func guestsOverMemoryLimit(adding bytes: Int) -> Bool {
        Quotas.exceeds(domains.guestBytes + bytes, configuration.guestMemoryLimit)
    }

    /// Whether `bytes` more held for an unprivileged `caller` would take its domain over its
    /// `memory` quota or all guests over `guestMemoryLimit` (a request then gets ENOMEM).
    /// Privileged callers are never refused.
    func refusesMemoryGrowth(_ bytes: Int, by caller: Caller, quota: Int) -> Bool {
        !caller.privileged
            && (Quotas.exceeds(domains.usage(of: caller.domid) + bytes, quota) || guestsOverMemoryLimit(adding: bytes))
    }
}
