// Test support of the core tests: quick nodes and paths (the client, PRNG and helpers are in TestSupport).

@_exported import TestSupport
import Testing
import XenstoreStore
import XenstoreWire
@testable import XenstoreServer

/// Builds a node quickly for store-level tests.
func node(_ value: String, perms: Permissions = .ownedBy(0), _ children: [(String, Node)] = [],
          gen: GenerationCounter) -> Node {
    let sorted = children.sorted { b($0.0).lexicographicallyPrecedes(b($1.0)) }
    return Node(value: b(value), permissions: perms, children: sorted.map { Child(name: b($0.0), node: $0.1) },
                generation: gen.take())
}

/// Components of an absolute path string.
func comps(_ path: String) -> [[UInt8]] {
    path.split(separator: "/").map { b(String($0)) }
}
