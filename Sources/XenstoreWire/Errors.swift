// The wire error set: exactly Xen's `xsd_errors`, with the strings clients expect.

/// An error a Xenstore request can fail with, sent as an `ERROR` reply carrying its name.
///
/// The cases and their order are those of `xsd_errors[]` in Xen's `xs_wire.h`; nothing else
/// ever goes on the wire.
public enum XenstoreError: UInt8, Error, CaseIterable, Sendable {
    case EINVAL, EACCES, EEXIST, EISDIR, ENOENT, ENOMEM, ENOSPC, EIO, ENOTEMPTY, ENOSYS
    case EROFS, EBUSY, EAGAIN, EISCONN, E2BIG, EPERM

    /// The symbolic name as sent in an `ERROR` reply, without the terminating NUL.
    public var name: StaticString {
        switch self {
        case .EINVAL: return "EINVAL"
        case .EACCES: return "EACCES"
        case .EEXIST: return "EEXIST"
        case .EISDIR: return "EISDIR"
        case .ENOENT: return "ENOENT"
        case .ENOMEM: return "ENOMEM"
        case .ENOSPC: return "ENOSPC"
        case .EIO: return "EIO"
        case .ENOTEMPTY: return "ENOTEMPTY"
        case .ENOSYS: return "ENOSYS"
        case .EROFS: return "EROFS"
        case .EBUSY: return "EBUSY"
        case .EAGAIN: return "EAGAIN"
        case .EISCONN: return "EISCONN"
        case .E2BIG: return "E2BIG"
        case .EPERM: return "EPERM"
        }
    }

    /// The payload of the `ERROR` reply: the name followed by one NUL.
    public var payload: [UInt8] {
        var bytes: [UInt8] = []
        name.withUTF8Buffer { bytes.append(contentsOf: $0) }
        bytes.append(0)
        return bytes
    }

    /// Parses an `ERROR` reply payload (with or without its NUL) back into an error.
    public init?(payload: [UInt8]) {
        var name = payload
        if name.last == 0 { name.removeLast() }
        for candidate in XenstoreError.allCases {
            var candidateBytes: [UInt8] = []
            candidate.name.withUTF8Buffer { candidateBytes.append(contentsOf: $0) }
            if candidateBytes == name {
                self = candidate
                return
            }
        }
        return nil
    }
}
