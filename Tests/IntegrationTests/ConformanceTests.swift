// Runs Xen's own conformance test (test-xenstore) and xenstore-control (check, quota, history) against the daemon.

import Foundation
import Testing
import XenstoreHost
import XenstoreWire

@Suite("Upstream test-xenstore and xenstore-control")
struct ConformanceTests {
    /// The 12 tests of `tools/tests/xenstore/test-xenstore.c` (Xen 4.17).
    static let upstreamTests: Set<String> = [
        "read 1", "read 2000", "write 1", "write 2000", "dir", "rm node", "rm dir",
        "ta empty", "ta empty x", "ta rmw", "ta rmw x", "ta err",
    ]

    @Test("test-xenstore -i 100 passes all 12 tests")
    func upstreamIterations() throws {
        try Programs.require(Programs.testXenstore, package: "xen-utils-4.17")
        let daemon = try Daemon(watchdogSeconds: 75)
        defer { daemon.stop() }
        let result = try daemon.run(Programs.testXenstore, ["-i", "100"], seconds: 60)
        #expect(result.rc == 0, "\(result)")
        // Result lines look like `ta rmw x : avg: 492116 ns (299753 ns .. 628099 ns)`.
        let reported = Set(result.lines.compactMap { line -> String? in
            guard let colon = line.range(of: ": avg:") else { return nil }
            return line[..<colon.lowerBound].trimmingCharacters(in: .whitespaces)
        })
        #expect(reported == ConformanceTests.upstreamTests, "\(result)")
        #expect(!result.stdout.contains("ERROR") && !result.stderr.contains("ERROR"), "\(result)")
        // The test cleans up after itself: its working directory is gone.
        let leftovers = try daemon.xs("xenstore-list", "/local/domain/0/xenstore-test")
        #expect(leftovers.stdout.isEmpty, "\(leftovers)")
        let check = try daemon.run(Programs.xenstoreControl, ["check"])
        #expect(check.rc == 0 && check.stdout.hasPrefix("OK"), "accounting must stay consistent: \(check)")
    }

    @Test("test-xenstore random mode -r 5 -i 10 passes")
    func upstreamRandom() throws {
        try Programs.require(Programs.testXenstore, package: "xen-utils-4.17")
        let daemon = try Daemon(watchdogSeconds: 75)
        defer { daemon.stop() }
        let result = try daemon.run(Programs.testXenstore, ["-r", "5", "-i", "10"], seconds: 40)
        #expect(result.rc == 0, "\(result)")
        #expect(!result.stdout.contains("ERROR") && !result.stderr.contains("ERROR"), "\(result)")
        #expect(daemon.isRunning)
    }

    @Test("xenstore-control check, quota and history")
    func control() throws {
        try Programs.require(Programs.xenstoreControl, package: "xen-utils-4.17")
        let daemon = try Daemon(watchdogSeconds: 75)
        defer { daemon.stop() }

        let check = try daemon.run(Programs.xenstoreControl, ["check"])
        #expect(check.rc == 0 && check.lines == ["OK"], "\(check)")

        let quota = try daemon.run(Programs.xenstoreControl, ["quota"])
        #expect(quota.rc == 0, "\(quota)")
        #expect(quota.lines.contains("nodes: 1000"), "\(quota)")
        // `name: value` lines (C xenstored pads them: `nodes            :     1000 Nodes per domain`).
        var settings: [String: Int] = [:]
        for line in quota.lines {
            let parts = line.split(separator: ":", maxSplits: 1)
            guard parts.count == 2, let value = parts[1].split(separator: " ").first.flatMap({ Int($0) }) else { continue }
            settings[parts[0].trimmingCharacters(in: .whitespaces)] = value
        }
        let defaults = ["nodes": 1000, "watches": 128, "transactions": 10, "transaction-nodes": 1024,
                        "node-size": 2048, "permissions": 5, "path-max": 2048, "outstanding": 20, "memory": 2_621_440]
        for (name, value) in defaults {
            #expect(settings[name] == value, "C xenstored's default \(name) = \(value): \(quota)")
        }

        #expect(try daemon.xs("xenstore-write", "/x", "1").rc == 0)
        #expect(try daemon.xs("xenstore-write", "/x", "2").rc == 0)
        try daemon.client().remove("/x")  // a plain RM (xenstore-rm wraps its RM in a transaction)
        let history = try daemon.run(Programs.xenstoreControl, ["history", "5"])
        #expect(history.rc == 0, "\(history)")
        let lines = history.lines.filter { !$0.isEmpty }
        #expect(lines.count == 4, "three commits plus the initial store: \(history)")
        // `<40 hex commit id> <time> <summary>`, newest first.
        var summaries: [String] = []
        for line in lines {
            let fields = line.split(separator: " ", maxSplits: 2).map(String.init)
            #expect(fields.count == 3, "\(line)")
            guard fields.count == 3 else { continue }
            #expect(fields[0].count == 40 && fields[0].allSatisfy { $0.isHexDigit }, "\(line)")
            #expect(Int64(fields[1]) != nil, "\(line)")
            summaries.append(fields[2])
        }
        #expect(summaries == ["Domain 0: rm /x", "Domain 0: write /x", "Domain 0: write /x", "Domain 0: initial store"],
                "\(history)")
        #expect(Set(lines.map { $0.prefix(40) }).count == lines.count, "commit ids are distinct: \(history)")
        let limited = try daemon.run(Programs.xenstoreControl, ["history", "2"])
        #expect(limited.lines.filter { !$0.isEmpty }.count == 2, "\(limited)")
        // xenstore-rm runs in a transaction: its commit is the transaction's.
        #expect(try daemon.xs("xenstore-write", "/y/z", "1").rc == 0)
        #expect(try daemon.xs("xenstore-rm", "/y").rc == 0)
        let newest = try daemon.run(Programs.xenstoreControl, ["history", "1"])
        #expect(newest.lines.first?.contains(" Domain 0: merging transaction ") == true, "\(newest)")

        let unknown = try daemon.run(Programs.xenstoreControl, ["no-such-command"])
        #expect(unknown.rc != 0, "\(unknown)")
        let check2 = try daemon.run(Programs.xenstoreControl, ["check"])
        #expect(check2.rc == 0 && check2.lines == ["OK"], "\(check2)")
    }
}
