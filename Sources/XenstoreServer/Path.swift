// Xenstore path rules: canonicalisation of relative paths, validation, and splitting into components.

import XenstoreStore
import XenstoreWire

/// A validated, canonical (absolute) Xenstore node path such as `/local/domain/3/name`.
public struct NodePath: Equatable, Hashable, Sendable {
    /// The absolute path bytes, starting with `/`, without a trailing `/` (except the root).
    public let bytes: [UInt8]
    /// The components between slashes; empty for the root.
    public let components: [[UInt8]]

    /// The root path `/`.
    public static let root = NodePath(trusted: [0x2F])

    /// Builds a path from bytes already known to be valid.
    init(trusted bytes: [UInt8]) {
        self.bytes = bytes
        // A plain scan: the generic `split` cost several times more per request.
        var components: [[UInt8]] = []
        var start = 0
        for index in 0...bytes.count where index == bytes.count || bytes[index] == 0x2F {
            if index > start { components.append(Array(bytes[start..<index])) }
            start = index + 1
        }
        self.components = components
    }

    /// Builds a path from components (each already valid).
    init(components: [[UInt8]]) {
        self.components = components
        var bytes: [UInt8] = []
        for component in components {
            bytes.append(0x2F)
            bytes.append(contentsOf: component)
        }
        self.bytes = bytes.isEmpty ? [0x2F] : bytes
    }

    /// Whether this is `/`.
    public var isRoot: Bool { components.isEmpty }

    /// Paths are equal when their bytes are (the components follow from them).
    public static func == (left: NodePath, right: NodePath) -> Bool { left.bytes == right.bytes }

    /// Hashes the bytes in one pass (`[UInt8]`'s own hashing takes them one at a time).
    public func hash(into hasher: inout Hasher) {
        bytes.withUnsafeBytes { hasher.combine(bytes: $0) }
    }

    /// The parent path; the root is its own parent.
    public var parent: NodePath {
        isRoot ? self : NodePath(components: Array(components.dropLast()))
    }

    /// The path of a child of this node.
    public func appending(_ component: [UInt8]) -> NodePath {
        NodePath(components: components + [component])
    }

    /// Whether `self` equals `other` or lies below it (`/` contains everything).
    public func isInside(_ other: NodePath) -> Bool {
        if other.isRoot { return true }
        guard bytes.count >= other.bytes.count, bytes.starts(with: other.bytes) else { return false }
        return bytes.count == other.bytes.count || bytes[other.bytes.count] == 0x2F
    }
}

/// Path validation and canonicalisation exactly as C xenstored does it.
public enum PathRules {
    /// `/local/domain/` — the prefix of every domain's home.
    public static let domainPrefix: [UInt8] = Payload.bytes("/local/domain/")

    /// The home path of a domain: `/local/domain/<domid>`.
    public static func home(of domid: UInt32) -> [UInt8] {
        domainPrefix + Payload.decimal(domid)
    }

    /// Whether every byte is in `[A-Za-z0-9-/_@]`.
    static func hasValidCharacters(_ bytes: [UInt8]) -> Bool {
        for byte in bytes where !TreeValidation.isPathCharacter(byte) { return false }
        return true
    }

    /// Length of the path that counts against the `path-max` quota: the part after
    /// `/local/domain/<id>/` when the path is inside a domain home, else the whole path.
    static func quotaLength(_ bytes: [UInt8]) -> Int {
        guard bytes.starts(with: domainPrefix) else { return bytes.count }
        var index = domainPrefix.count
        var digits = 0
        while index < bytes.count, bytes[index] >= 0x30, bytes[index] <= 0x39, digits < 5 {
            index += 1
            digits += 1
        }
        guard digits > 0, index < bytes.count, bytes[index] == 0x2F else { return bytes.count }
        return bytes.count - index - 1
    }

    /// Turns a request's path argument into an absolute path: relative paths are taken
    /// relative to the caller's home (`/local/domain/<domid>/`).
    public static func absolute(_ raw: [UInt8], domid: UInt32) -> [UInt8] {
        if raw.first == 0x2F || raw.first == 0x40 { return raw }
        return home(of: domid) + [0x2F] + raw
    }

    /// Canonicalises and validates a node path argument.
    ///
    /// - Parameters:
    ///   - raw: the path as sent (absolute or relative).
    ///   - domid: the caller's domain, for relative paths.
    ///   - pathQuota: the `path-max` quota to apply (nil or 0: none).
    public static func nodePath(_ raw: [UInt8], domid: UInt32, pathQuota: Int?) -> Result<NodePath, XenstoreError> {
        let bytes = absolute(raw, domid: domid)
        guard bytes.first == 0x2F else { return .failure(.EINVAL) }
        if bytes.count > 1 && bytes.last == 0x2F { return .failure(.EINVAL) }
        var previous: UInt8 = 0
        for byte in bytes {
            if byte == 0x2F && previous == 0x2F { return .failure(.EINVAL) }
            previous = byte
        }
        guard bytes.count <= Limits.absolutePathMax else { return .failure(.EINVAL) }
        if let pathQuota, pathQuota > 0, quotaLength(bytes) > pathQuota { return .failure(.EINVAL) }
        guard hasValidCharacters(bytes) else { return .failure(.EINVAL) }
        return .success(NodePath(trusted: bytes))
    }

    /// Whether a watch path names a special event (`@introduceDomain`, `@releaseDomain`, ...).
    public static func isSpecial(_ raw: [UInt8]) -> Bool { raw.first == 0x40 }
}
