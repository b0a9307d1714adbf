// Durable connection state: introduced domains, watches, partial packets and undelivered output, encoded so a restarted store resumes them.

import XenstoreStore
import XenstoreWire

/// Why saved connection state could not be restored (a restarted store then starts with none).
public enum SnapshotError: Error, Equatable, Sendable {
    /// Not a snapshot, or of another format version.
    case badMagic
    /// The bytes end early or a field is out of range.
    case truncated
}

/// Little-endian field writer for snapshots.
public struct SnapshotWriter {
    /// The bytes written so far.
    public private(set) var bytes: [UInt8] = []

    /// An empty writer (room for a typical connection state reserved: no regrowing on the way).
    public init() { bytes.reserveCapacity(1024) }

    /// Appends a 32-bit word.
    public mutating func u32(_ value: UInt32) {
        bytes.append(UInt8(truncatingIfNeeded: value))
        bytes.append(UInt8(truncatingIfNeeded: value >> 8))
        bytes.append(UInt8(truncatingIfNeeded: value >> 16))
        bytes.append(UInt8(truncatingIfNeeded: value >> 24))
    }

    /// Appends a 64-bit word.
    public mutating func u64(_ value: UInt64) {
        u32(UInt32(truncatingIfNeeded: value))
        u32(UInt32(truncatingIfNeeded: value >> 32))
    }

    /// Appends a flag.
    public mutating func bool(_ value: Bool) { bytes.append(value ? 1 : 0) }

    /// Appends a length-prefixed byte string.
    public mutating func blob(_ value: [UInt8]) {
        u32(UInt32(value.count))
        bytes.append(contentsOf: value)
    }
}

/// Little-endian field reader for snapshots; every read is bounds-checked.
public struct SnapshotReader {
    private let bytes: [UInt8]
    private var offset = 0

    /// Reads `bytes` from the start.
    public init(_ bytes: [UInt8]) { self.bytes = bytes }

    /// Whether every byte was read.
    public var isAtEnd: Bool { offset == bytes.count }

    /// Reads a 32-bit word.
    public mutating func u32() throws(SnapshotError) -> UInt32 {
        guard bytes.count - offset >= 4 else { throw .truncated }
        var value: UInt32 = 0
        for index in 0..<4 { value |= UInt32(bytes[offset + index]) << (8 * UInt32(index)) }
        offset += 4
        return value
    }

    /// Reads a 64-bit word.
    public mutating func u64() throws(SnapshotError) -> UInt64 {
        let low = try u32()
        let high = try u32()
        return UInt64(low) | UInt64(high) << 32
    }

    /// Reads a flag.
    public mutating func bool() throws(SnapshotError) -> Bool {
        guard offset < bytes.count, bytes[offset] <= 1 else { throw .truncated }
        offset += 1
        return bytes[offset - 1] == 1
    }

    /// Reads a length-prefixed byte string of at most `limit` bytes.
    public mutating func blob(limit: Int = Int.max) throws(SnapshotError) -> [UInt8] {
        let count = Int(try u32())
        guard count <= limit, bytes.count - offset >= count else { throw .truncated }
        offset += count
        return Array(bytes[(offset - count)..<offset])
    }

    /// Reads an element count, rejecting counts that cannot fit in the remaining bytes.
    public mutating func count(minimumElementSize: Int) throws(SnapshotError) -> Int {
        let value = Int(try u32())
        guard value * max(minimumElementSize, 1) <= bytes.count - offset else { throw .truncated }
        return value
    }
}

extension Server {
    /// "XSS1": format version 1 of `encodeState`.
    static let snapshotMagic: UInt32 = 0x3153_5358

    /// Encodes the state a restarted store needs to resume the given connections: id counters,
    /// every known domain (ring address, event channel, target, features, quotas, shut-down
    /// flag), the permissions of the special watch paths, and per connection its caller, partial
    /// request bytes, undelivered output (replies and watch events), watches, and the ids of its
    /// open transactions (which a restart aborts). The tree itself is in the history, not here.
    public func encodeState(connections ids: [ConnectionID]) -> [UInt8] {
        var out = SnapshotWriter()
        out.u32(Server.snapshotMagic)
        out.u32(nextConnection)
        out.u32(nextTransaction)
        out.u32(UInt32(domains.count))
        for domid in domains.ids {
            let record = domains[domid]!
            out.u32(domid)
            out.u64(record.gfn)
            out.u32(record.eventChannel)
            out.bool(record.introduced)
            out.bool(record.target != nil)
            out.u32(record.target ?? 0)
            out.u32(record.features)
            out.bool(record.shutDown)
            out.bool(record.quotas != nil)
            let quotas = record.quotas ?? configuration.quotas
            func quota(_ value: Int) { out.u32(UInt32(truncatingIfNeeded: value)) }
            quota(quotas.nodes)
            quota(quotas.watches)
            quota(quotas.transactions)
            quota(quotas.transactionNodes)
            quota(quotas.nodeSize)
            quota(quotas.permissions)
            quota(quotas.pathMax)
            quota(quotas.outstanding)
            quota(quotas.memory)
        }
        let special = specialPermissions.keys.sorted { $0.lexicographicallyPrecedes($1) }
        out.u32(UInt32(special.count))
        for name in special {
            out.blob(name)
            out.blob(specialPermissions[name]!.blob)
        }
        let saved = ids.filter { connections[$0] != nil }
        out.u32(UInt32(saved.count))
        for id in saved {
            let connection = connections[id]!
            out.u32(id.raw)
            out.u32(connection.caller.domid)
            out.bool(connection.caller.privileged)
            out.bool(connection.caller.target != nil)
            out.u32(connection.caller.target ?? 0)
            out.bool(connection.isBroken)
            out.u32(UInt32(truncatingIfNeeded: connection.droppedEvents))
            out.blob(connection.decoder.partial)
            out.blob(connection.output.peekAll())
            out.u32(UInt32(connection.watches.count))
            for watch in connection.watches {
                out.blob(watch.path)
                out.blob(watch.token)
                out.bool(watch.relative)
                out.bool(watch.depth != nil)
                out.u32(UInt32(truncatingIfNeeded: watch.depth ?? 0))
            }
            let aborted = Array(connection.transactions.keys) + connection.abortedTransactions
            out.u32(UInt32(aborted.count))
            for transaction in aborted.sorted() { out.u32(transaction) }
        }
        return out.bytes
    }

    /// The event channel `domid` was introduced with (0 for a domain not known), so that a
    /// restarted store can bind a restored domain's ring again.
    public func eventChannel(of domid: UInt32) -> UInt32 { domains[domid]?.eventChannel ?? 0 }

    /// Restores state saved by `encodeState` into a server just created from the persisted
    /// history (no connections yet). Saved connections come back under their old ids with their
    /// partial requests, undelivered output and watches; their open transactions are aborted:
    /// any request in one gets EAGAIN, so clients retry. Returns the restored connection ids.
    public func restoreState(_ bytes: [UInt8]) throws(SnapshotError) -> [ConnectionID] {
        var reader = SnapshotReader(bytes)
        guard try reader.u32() == Server.snapshotMagic else { throw .badMagic }
        let savedNextConnection = try reader.u32()
        let savedNextTransaction = try reader.u32()
        var restoredDomains: [UInt32: DomainRecord] = [:]
        for _ in 0..<(try reader.count(minimumElementSize: 40)) {
            let domid = try reader.u32()
            var record = DomainRecord()
            record.gfn = try reader.u64()
            record.eventChannel = try reader.u32()
            record.introduced = try reader.bool()
            let hasTarget = try reader.bool()
            let target = try reader.u32()
            record.target = hasTarget ? target : nil
            record.features = try reader.u32()
            record.shutDown = try reader.bool()
            let hasQuotas = try reader.bool()
            var quotas = Quotas()
            quotas.nodes = Int(try reader.u32())
            quotas.watches = Int(try reader.u32())
            quotas.transactions = Int(try reader.u32())
            quotas.transactionNodes = Int(try reader.u32())
            quotas.nodeSize = Int(try reader.u32())
            quotas.permissions = Int(try reader.u32())
            quotas.pathMax = Int(try reader.u32())
            quotas.outstanding = Int(try reader.u32())
            quotas.memory = Int(try reader.u32())
            record.quotas = hasQuotas ? quotas : nil
            restoredDomains[domid] = record
        }
        var restoredSpecial: [[UInt8]: Permissions] = [:]
        for _ in 0..<(try reader.count(minimumElementSize: 8)) {
            let name = try reader.blob(limit: Limits.absolutePathMax)
            guard let permissions = Permissions(blob: try reader.blob(limit: Limits.payloadMax)) else { throw .truncated }
            restoredSpecial[name] = permissions
        }
        var restored: [Connection] = []
        for _ in 0..<(try reader.count(minimumElementSize: 30)) {
            let id = ConnectionID(raw: try reader.u32())
            let domid = try reader.u32()
            let privileged = try reader.bool()
            let hasTarget = try reader.bool()
            let target = try reader.u32()
            let connection = Connection(id: id, caller: Caller(domid: domid, privileged: privileged, target: hasTarget ? target : nil))
            connection.isBroken = try reader.bool()
            connection.droppedEvents = Int(try reader.u32())
            let partial = try reader.blob(limit: Limits.headerSize + Limits.payloadMax)
            connection.decoder = FrameDecoder(partial: partial)
            let output = try reader.blob(limit: Limits.privilegedOutputQueueBytes + Limits.headerSize + Limits.payloadMax)
            if !output.isEmpty { connection.output.append(output) }
            for _ in 0..<(try reader.count(minimumElementSize: 11)) {
                let path = try reader.blob(limit: Limits.absolutePathMax)
                let token = try reader.blob(limit: Limits.payloadMax)
                let relative = try reader.bool()
                let hasDepth = try reader.bool()
                let depth = Int(try reader.u32())
                guard path.first == 0x2F || PathRules.isSpecial(path) else { throw .truncated }
                let node: NodePath? = PathRules.isSpecial(path) ? nil : NodePath(trusted: path)
                connection.watches.append(Watch(path: path, node: node, token: token, relative: relative, depth: hasDepth ? depth : nil))
            }
            for _ in 0..<(try reader.count(minimumElementSize: 4)) {
                connection.abortedTransactions.append(try reader.u32())
            }
            restored.append(connection)
        }
        guard reader.isAtEnd else { throw .truncated }
        // Everything parsed: apply it.
        nextConnection = max(nextConnection, savedNextConnection)
        nextTransaction = savedNextTransaction
        for (domid, record) in restoredDomains { domains[domid] = record }
        for (name, permissions) in restoredSpecial { specialPermissions[name] = permissions }
        for connection in restored {
            if connections[connection.id] != nil { closeConnection(connection.id) }
            connections[connection.id] = connection
            connectionsInOrder.append(connection)
            domains.hold(connection.output.byteCount, in: .output, by: connection.caller.domid)
            domains.hold(Server.watchBytes(connection.watches), in: .watches, by: connection.caller.domid)
            nextConnection = max(nextConnection, connection.id.raw &+ 1)
        }
        connectionsInOrder.sort { $0.id < $1.id }
        introspectionWatchers = 0
        for connection in connections.values {
            for watch in connection.watches where Server.watchesIntrospection(watch) { introspectionWatchers += 1 }
        }
        introspectionGeneration &+= 1
        return restored.map { $0.id }
    }
}
