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

/// Gives domain `domid` its home `/local/domain/<domid>`, owned by it (as the toolstack does).
func giveHome(to domid: UInt32, by admin: TestClient) {
    admin.mkdir("/local/domain/\(domid)")
    admin.setPerms("/local/domain/\(domid)", "n\(domid)")
}

/// A dom0 client and a client of unprivileged domain 5 on `server`, domain 5 owning its home.
func adminAndGuest(_ server: Server) -> (admin: TestClient, guest: TestClient) {
    let admin = TestClient(server)
    let guest = TestClient(server, caller: Caller(domid: 5, privileged: false))
    giveHome(to: 5, by: admin)
    return (admin, guest)
}
