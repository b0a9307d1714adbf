// What a restarted store needs to resume its rings: per-ring positions plus the server's connection state, in one blob.

import XenstoreServer
import XenstoreStore
import XenstoreWire

/// The saved position of one ring (see `RingLink.state(domid:)`).
public struct RingLinkState: Equatable, Sendable {
    /// The domain on the other end.
    public var domid: UInt32
    /// The server connection serving the ring.
    public var connection: ConnectionID
    /// Whether the ring was stalled (waiting for the domain to reconnect).
    public var stalled: Bool
    /// Request bytes before this free-running index had been given to the server.
    public var requestCursor: UInt32
    /// `rsp_prod` when the state was taken: reply bytes after it were written after the save.
    public var responseProducer: UInt32

    /// Creates a saved position.
    public init(domid: UInt32, connection: ConnectionID, stalled: Bool, requestCursor: UInt32, responseProducer: UInt32) {
        self.domid = domid
        self.connection = connection
        self.stalled = stalled
        self.requestCursor = requestCursor
        self.responseProducer = responseProducer
    }
}

/// The durable state of a store serving rings: the server's connection state for the ring
/// connections plus each ring's positions. Saved in the same durable batch as the round's
/// commits, before the round's replies are written and before request space is handed back.
public enum ResumableState {
    /// "XSR1": format version 1.
    static let magic: UInt32 = 0x3152_5358

    /// Encodes the server state of `rings`' connections and the rings' positions.
    public static func encode(server: Server, rings: [RingLinkState]) -> [UInt8] {
        var out = SnapshotWriter()
        out.u32(magic)
        out.blob(server.encodeState(connections: rings.map { $0.connection }))
        out.u32(UInt32(rings.count))
        for ring in rings {
            out.u32(ring.domid)
            out.u32(ring.connection.raw)
            out.bool(ring.stalled)
            out.u32(ring.requestCursor)
            out.u32(ring.responseProducer)
        }
        return out.bytes
    }

    /// The state a restart in place resumes. `slot` is the state saved after the last round that
    /// completed, with the durable head it went with; `storeState` is the state written in the
    /// history store's last batch, whose head is `storeHead`. The slot is newer unless the crash
    /// came between a round's commits reaching the store and its slot: then the slot names an
    /// older head, and the state written with the commits is the one that matches them.
    public static func newest(slot: (state: [UInt8], head: ObjectID?)?, storeHead: ObjectID?, storeState: [UInt8]?) -> [UInt8]? {
        if let slot, slot.head == storeHead { return slot.state }
        return storeState
    }

    /// Restores the server part into `server` (freshly made from the persisted history) and
    /// returns the rings to re-attach. A damaged blob throws; the server part is applied only
    /// once it has parsed completely.
    public static func restore(_ bytes: [UInt8], into server: Server) throws(SnapshotError) -> [RingLinkState] {
        var reader = SnapshotReader(bytes)
        guard try reader.u32() == magic else { throw .badMagic }
        let serverState = try reader.blob()
        var rings: [RingLinkState] = []
        for _ in 0..<(try reader.count(minimumElementSize: 17)) {
            let domid = try reader.u32()
            let connection = ConnectionID(raw: try reader.u32())
            let stalled = try reader.bool()
            let cursor = try reader.u32()
            let producer = try reader.u32()
            rings.append(RingLinkState(domid: domid, connection: connection, stalled: stalled,
                                       requestCursor: cursor, responseProducer: producer))
        }
        guard reader.isAtEnd else { throw .truncated }
        let restored = try server.restoreState(serverState)
        for ring in rings where !restored.contains(ring.connection) { throw .truncated }
        return rings
    }
}
