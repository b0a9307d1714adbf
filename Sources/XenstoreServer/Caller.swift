// Who is asking: a caller's domain, privilege and target, and the access it has to a node.

import XenstoreStore

/// The identity a request is checked against.
public struct Caller: Equatable, Sendable {
    /// The caller's domain id (0 for dom0 and for sockets).
    public var domid: UInt32
    /// Whether the caller is privileged (dom0, or the control domain): full access, no quotas.
    public var privileged: Bool
    /// Set by SET_TARGET: the caller also acts with this domain's rights (device-model stub domains).
    public var target: UInt32?

    /// Creates a caller identity.
    public init(domid: UInt32, privileged: Bool, target: UInt32? = nil) {
        self.domid = domid
        self.privileged = privileged
        self.target = target
    }

    /// Dom0 through the socket or its ring: privileged.
    public static let dom0 = Caller(domid: 0, privileged: true)
}

/// Rights of a caller on one node, as C xenstored's `perm_for_conn` computes them.
public struct Rights: OptionSet, Sendable {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }
    /// May read the value, children and permissions.
    public static let read = Rights(rawValue: 1)
    /// May write the value and create or remove children.
    public static let write = Rights(rawValue: 2)
    /// May change the permissions (owner, or privileged).
    public static let owner = Rights(rawValue: 4)
    /// All rights.
    public static let all: Rights = [.read, .write, .owner]

    /// The rights `caller` has on a node with `permissions`.
    public static func of(_ caller: Caller, on permissions: Permissions) -> Rights {
        let owner = permissions.owner
        if caller.privileged || owner == caller.domid || (caller.target != nil && owner == caller.target!) {
            return .all
        }
        for entry in permissions.dropFirst()
        where entry.domid == caller.domid || (caller.target != nil && entry.domid == caller.target!) {
            return Rights(access: entry.access)
        }
        return Rights(access: permissions[0].access)
    }

    init(access: Access) {
        var rights: Rights = []
        if access.canRead { rights.insert(.read) }
        if access.canWrite { rights.insert(.write) }
        self = rights
    }
}
