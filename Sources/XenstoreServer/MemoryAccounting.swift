// Memory accounting of connections: queued output and watches charged to their domain, and the bound on all guests together.

import XenstoreWire

extension Server {
    /// Queues an encoded message for a connection, accounting it to the connection's domain.
    func enqueue(_ encoded: [UInt8], reply: Bool, on connection: Connection) {
        connection.output.append(encoded, reply: reply)
        domains.hold(encoded.count, in: .output, by: connection.caller.domid)
    }

    /// Replaces a connection's watches, accounting their bytes to its domain.
    func setWatches(_ watches: [Watch], of connection: Connection) {
        let before = Server.watchBytes(connection.watches)
        connection.watches = watches
        domains.hold(Server.watchBytes(watches) - before, in: .watches, by: connection.caller.domid)
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
}
