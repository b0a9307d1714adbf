// Unprivileged domain 5 through the daemon's test socket: home access, isolation from dom0 nodes, owner rules, watch filtering, node quota.

import Foundation
import Testing
import XenstoreHost
import XenstoreWire

@Suite("Unprivileged domain over the test socket")
struct DomainTests {
    /// Starts a daemon with a socket for domain 5 and gives domain 5 its home, as the toolstack would.
    static func prepare(_ daemon: Daemon) throws -> XenstoreClient {
        // Domain 5 exists while it has a connection: open it before naming it in permissions.
        let domain5 = try daemon.client(domain: 5)
        let write = try daemon.xs("xenstore-write", "/local/domain/5/x", "y")
        #expect(write.rc == 0, "\(write)")
        let chmod = try daemon.xs("xenstore-chmod", "-r", "/local/domain/5", "n5")
        #expect(chmod.rc == 0, "\(chmod)")
        return domain5
    }

    @Test("domain 5 uses its home with relative paths and cannot reach dom0's nodes")
    func homeAndIsolation() throws {
        let daemon = try Daemon(domains: [5])
        defer { daemon.stop() }
        let domain5 = try DomainTests.prepare(daemon)

        // Its own home, with relative and absolute paths.
        #expect(try domain5.read("x") == bytes("y"))
        #expect(try domain5.read("/local/domain/5/x") == bytes("y"))
        try domain5.write("data/k", bytes("v"))
        #expect(try domain5.read("data/k") == bytes("v"))
        #expect(try domain5.permissions("data/k") == ["n5"], "a domain owns what it creates")
        #expect(Set(try domain5.list("/local/domain/5")) == ["x", "data"])
        let dom0View = try daemon.xs("xenstore-read", "/local/domain/5/data/k")
        #expect(dom0View.stdout == "v\n", "\(dom0View)")
        let path = try domain5.request(.getDomainPath, payload("5"))
        #expect(path == bytes("/local/domain/5") + [0])
        try domain5.remove("data")
        #expect(throws: ClientError.server(.ENOENT)) { try domain5.read("data/k") }

        // dom0's nodes (owner 0, no access for others).
        #expect(throws: ClientError.server(.EACCES)) { try domain5.read("/tool") }
        #expect(throws: ClientError.server(.EACCES)) { try domain5.read("/tool/xenstored") }
        #expect(throws: ClientError.server(.EACCES)) { try domain5.list("/tool") }
        #expect(throws: ClientError.server(.EACCES)) { try domain5.write("/tool/evil", bytes("1")) }
        #expect(throws: ClientError.server(.EACCES)) { try domain5.write("/evil", bytes("1")) }
        #expect(try daemon.xs("xenstore-write", "/private", "secret").rc == 0)
        #expect(throws: ClientError.server(.EACCES)) { try domain5.read("/private") }
        #expect(throws: ClientError.server(.EACCES)) { try domain5.remove("/private") }
        // A dom0 node inside the home, explicitly closed with n0.
        #expect(try daemon.xs("xenstore-write", "/local/domain/5/locked", "s").rc == 0)
        #expect(try daemon.xs("xenstore-chmod", "/local/domain/5/locked", "n0").rc == 0)
        #expect(throws: ClientError.server(.EACCES)) { try domain5.read("locked") }
        #expect(throws: ClientError.server(.EACCES)) { try domain5.write("locked", bytes("mine")) }
        #expect(throws: ClientError.server(.EACCES)) { try domain5.permissions("locked") }
        #expect(try daemon.xs("xenstore-read", "/local/domain/5/locked").stdout == "s\n", "dom0 value unchanged")
        // Read access granted by dom0 works, write stays forbidden.
        #expect(try daemon.xs("xenstore-chmod", "/private", "n0", "r5").rc == 0)
        #expect(try domain5.read("/private") == bytes("secret"))
        #expect(throws: ClientError.server(.EACCES)) { try domain5.write("/private", bytes("changed")) }

        // Permissions: no chmod of /, no owner change, but its own nodes' other entries are fine.
        #expect(throws: ClientError.server(.EACCES)) { try domain5.setPermissions("/", "n5") }
        #expect(throws: ClientError.server(.EACCES)) { try domain5.setPermissions("/", "n0", "r5") }
        #expect(throws: ClientError.server(.EPERM)) { try domain5.setPermissions("x", "n0") }
        #expect(throws: ClientError.server(.EPERM)) { try domain5.setPermissions("x", "n0", "b5") }
        try domain5.setPermissions("x", "n5", "r0")
        #expect(try domain5.permissions("x") == ["n5", "r0"])
        #expect(try daemon.xs("xenstore-ls", "-p", "/local/domain/5").lines.first { $0.hasPrefix("x = ") }?
            .hasSuffix("(n5,r0)") == true)

        // Privileged-only requests.
        #expect(throws: ClientError.server(.EACCES)) { try domain5.control(["check"]) }
        #expect(throws: ClientError.server(.EACCES)) { _ = try domain5.request(.introduce, payload("9", "1", "3")) }
        #expect(throws: ClientError.server(.EACCES)) { _ = try domain5.request(.release, payload("5")) }
        // The connection is still fine after all these refusals.
        #expect(try domain5.read("x") == bytes("y"))
    }

    @Test("a domain 5 watch on / sees its own home but not dom0's unreadable nodes")
    func watchFiltering() throws {
        let daemon = try Daemon(domains: [5])
        defer { daemon.stop() }
        let domain5 = try DomainTests.prepare(daemon)
        let dom0 = try daemon.client()

        try domain5.watch("/", token: "root")
        let initial = try domain5.nextWatchEvent()
        #expect(initial.path == "/" && initial.token == "root")
        try domain5.watch("rel", token: "relative")
        let relativeInitial = try domain5.nextWatchEvent()
        #expect(relativeInitial.path == "rel" && relativeInitial.token == "relative", "relative watches report relative paths")

        // Events are delivered in order, so the first event after these writes must be the readable one.
        try dom0.write("/private/a", bytes("hidden"))           // owner 0, n0: invisible to domain 5
        try dom0.write("/tool/xenstored/hidden", bytes("h"))
        try dom0.write("/local/domain/5/x", bytes("by dom0"))   // owner 5: visible
        let visible = try domain5.nextWatchEvent()
        #expect(visible.path == "/local/domain/5/x" && visible.token == "root", "got \(visible)")

        try domain5.write("own/key", bytes("1"))                 // its own write
        let own = try domain5.nextWatchEvent()
        #expect(own.path == "/local/domain/5/own/key" && own.token == "root", "got \(own)")

        try dom0.write("/local/domain/5/rel/z", bytes("1"))
        var seen: [(String, String)] = []
        for _ in 0..<2 {
            let event = try domain5.nextWatchEvent()
            seen.append((event.path, event.token))
        }
        #expect(seen.contains { $0 == ("/local/domain/5/rel/z", "root") }, "\(seen)")
        #expect(seen.contains { $0 == ("rel/z", "relative") }, "\(seen)")

        try dom0.remove("/private")                            // invisible too
        try dom0.remove("/local/domain/5/own")
        let removed = try domain5.nextWatchEvent()
        #expect(removed.path == "/local/domain/5/own" && removed.token == "root", "got \(removed)")
        // A request's reply comes after every event queued before it: nothing else was sent.
        #expect(try domain5.read("x") == bytes("by dom0"))
        #expect(domain5.events.isEmpty, "no other event queued: \(domain5.events.map { text($0.0) })")
    }

    @Test("node quota: domain 5 is stopped after 20 nodes, dom0 keeps working")
    func nodeQuota() throws {
        let daemon = try Daemon(quotas: ["nodes=20"], domains: [5])
        defer { daemon.stop() }
        let domain5 = try DomainTests.prepare(daemon)  // domain 5 owns /local/domain/5 and .../x

        var successes = 0
        var failures: [Int: ClientError] = [:]
        for index in 0..<50 {
            do {
                try domain5.write("q/n\(index)", bytes("v"))
                successes += 1
                #expect(failures.isEmpty, "write \(index) succeeded after an earlier quota failure")
            } catch {
                failures[index] = error
            }
        }
        // 2 nodes owned before, plus q, plus the leaves: at most 20 in all.
        #expect((15...17).contains(successes), "domain 5 created \(successes) leaves under a 20-node quota")
        #expect(failures.count == 50 - successes)
        #expect(failures.values.allSatisfy { $0 == .server(.ENOSPC) }, "\(Set(failures.values.map { "\($0)" }))")
        // Still connected, and existing nodes can be rewritten (no new node).
        #expect(try domain5.read("q/n0") == bytes("v"))
        try domain5.write("q/n0", bytes("rewritten"))

        // dom0 is not subject to domain quotas.
        let dom0 = try daemon.client()
        for index in 0..<100 { try dom0.write("/dom0/n\(index)", bytes("\(index)")) }
        #expect(try dom0.list("/dom0").count == 100)
        let tool = try daemon.xs("xenstore-write", "/after/quota", "ok")
        #expect(tool.rc == 0, "\(tool)")
        // Nodes created by dom0 in the domain's home belong to dom0 and do not count for domain 5.
        try dom0.write("/local/domain/5/q/by-dom0", bytes("1"))

        // Freeing nodes gives the quota back.
        try domain5.remove("q")
        try domain5.write("q2/a", bytes("1"))
        try Programs.require(Programs.xenstoreControl, package: "xen-utils-4.17")
        let check = try daemon.run(Programs.xenstoreControl, ["check"])
        #expect(check.rc == 0 && check.lines == ["OK"], "node accounting must be consistent: \(check)")
    }

    @Test("watch and transaction quotas of an unprivileged domain")
    func watchAndTransactionQuotas() throws {
        let daemon = try Daemon(quotas: ["watches=3", "transactions=2"], domains: [5])
        defer { daemon.stop() }
        let domain5 = try DomainTests.prepare(daemon)
        for index in 0..<3 {
            try domain5.watch("w\(index)", token: "t")
            _ = try domain5.nextEvent()
        }
        #expect(throws: ClientError.server(.E2BIG)) { try domain5.watch("w3", token: "t") }
        let first = try domain5.startTransaction()
        _ = try domain5.startTransaction()
        #expect(throws: ClientError.server(.ENOSPC)) { _ = try domain5.startTransaction() }
        try domain5.endTransaction(first, commit: false)
        _ = try domain5.startTransaction()
        // dom0 is exempt.
        let dom0 = try daemon.client()
        for index in 0..<5 { try dom0.watch("/d\(index)", token: "t") }
        for _ in 0..<5 { _ = try dom0.startTransaction() }
    }
}
