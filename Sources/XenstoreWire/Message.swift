// Message types, the 16-byte header, and whole-message encoding of the Xenstore wire protocol.

/// The message types of `enum xsd_sockmsg_type` in Xen's `xs_wire.h`.
public enum MessageType: UInt32, Sendable {
    case control = 0
    case directory = 1
    case read = 2
    case getPerms = 3
    case watch = 4
    case unwatch = 5
    case transactionStart = 6
    case transactionEnd = 7
    case introduce = 8
    case release = 9
    case getDomainPath = 10
    case write = 11
    case mkdir = 12
    case rm = 13
    case setPerms = 14
    case watchEvent = 15
    case error = 16
    case isDomainIntroduced = 17
    case resume = 18
    case setTarget = 19
    case restrict = 20
    case resetWatches = 21
    case directoryPart = 22
    case getFeature = 23
    case setFeature = 24
    case getQuota = 25
    case setQuota = 26
    case invalid = 0xFFFF

    /// The upper-case name used in logs and commit messages (`WRITE`, `TRANSACTION_END`, ...).
    public var name: StaticString {
        switch self {
        case .control: return "CONTROL"
        case .directory: return "DIRECTORY"
        case .read: return "READ"
        case .getPerms: return "GET_PERMS"
        case .watch: return "WATCH"
        case .unwatch: return "UNWATCH"
        case .transactionStart: return "TRANSACTION_START"
        case .transactionEnd: return "TRANSACTION_END"
        case .introduce: return "INTRODUCE"
        case .release: return "RELEASE"
        case .getDomainPath: return "GET_DOMAIN_PATH"
        case .write: return "WRITE"
        case .mkdir: return "MKDIR"
        case .rm: return "RM"
        case .setPerms: return "SET_PERMS"
        case .watchEvent: return "WATCH_EVENT"
        case .error: return "ERROR"
        case .isDomainIntroduced: return "IS_DOMAIN_INTRODUCED"
        case .resume: return "RESUME"
        case .setTarget: return "SET_TARGET"
        case .restrict: return "RESTRICT"
        case .resetWatches: return "RESET_WATCHES"
        case .directoryPart: return "DIRECTORY_PART"
        case .getFeature: return "GET_FEATURE"
        case .setFeature: return "SET_FEATURE"
        case .getQuota: return "GET_QUOTA"
        case .setQuota: return "SET_QUOTA"
        case .invalid: return "INVALID"
        }
    }
}

/// The fixed header that precedes every message (`struct xsd_sockmsg`), little-endian on the wire.
public struct MessageHeader: Equatable, Sendable {
    /// The raw message type; may be a value this daemon does not know (answered with ENOSYS).
    public var type: UInt32
    /// Request id chosen by the client and echoed in the reply.
    public var requestID: UInt32
    /// Transaction id, 0 outside a transaction; echoed in the reply.
    public var transactionID: UInt32
    /// Length of the payload that follows.
    public var length: UInt32

    /// Creates a header from its four fields.
    public init(type: UInt32, requestID: UInt32, transactionID: UInt32, length: UInt32) {
        self.type = type
        self.requestID = requestID
        self.transactionID = transactionID
        self.length = length
    }

    /// Decodes a header from the first 16 bytes of `bytes` starting at `offset`.
    public init<C: RandomAccessCollection>(decoding bytes: C, at offset: C.Index) where C.Element == UInt8 {
        func word(_ index: Int) -> UInt32 {
            let start = bytes.index(offset, offsetBy: index * 4)
            var value: UInt32 = 0
            var position = start
            for shift in 0..<4 {
                value |= UInt32(bytes[position]) << UInt32(shift * 8)
                position = bytes.index(after: position)
            }
            return value
        }
        self.init(type: word(0), requestID: word(1), transactionID: word(2), length: word(3))
    }

    /// Appends the 16 encoded header bytes to `out`.
    public func encode(into out: inout [UInt8]) {
        for field in [type, requestID, transactionID, length] {
            out.append(UInt8(truncatingIfNeeded: field))
            out.append(UInt8(truncatingIfNeeded: field >> 8))
            out.append(UInt8(truncatingIfNeeded: field >> 16))
            out.append(UInt8(truncatingIfNeeded: field >> 24))
        }
    }
}

/// One complete message: header plus payload.
public struct Message: Equatable, Sendable {
    /// The header; its `length` always equals `payload.count` for messages built by `init`.
    public var header: MessageHeader
    /// The payload bytes (NUL-separated strings or a raw value).
    public var payload: [UInt8]

    /// Creates a message whose header length matches the payload.
    public init(type: UInt32, requestID: UInt32, transactionID: UInt32, payload: [UInt8]) {
        self.header = MessageHeader(type: type, requestID: requestID, transactionID: transactionID,
                                    length: UInt32(truncatingIfNeeded: payload.count))
        self.payload = payload
    }

    /// Creates a message of a known type.
    public init(_ type: MessageType, requestID: UInt32 = 0, transactionID: UInt32 = 0, payload: [UInt8]) {
        self.init(type: type.rawValue, requestID: requestID, transactionID: transactionID, payload: payload)
    }

    /// The known type of this message, or nil for an unknown type number.
    public var knownType: MessageType? { MessageType(rawValue: header.type) }

    /// The encoded bytes: header followed by payload.
    public var encoded: [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(Limits.headerSize + payload.count)
        header.encode(into: &out)
        out.append(contentsOf: payload)
        return out
    }
}
