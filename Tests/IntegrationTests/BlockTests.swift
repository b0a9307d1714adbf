// The --block fixed-size history file: SIGKILL during a write storm, restart, squashing, export checked by git fsck.

import Foundation
import Testing
import XenstoreHost
import XenstoreWire

private func export(_ file: String, to directory: String) throws -> Int32 {
    try runCapturing(Programs.daemon, ["--export-block", file, "--to", directory]).status
}

@Suite("block-device history (--block)", .serialized)
struct BlockTests {
    @Test("SIGKILL during a write storm on a small device loses no acknowledged write; export passes git fsck")
    func sigkillDuringWriteStorm() throws {
        let root = try makeTemporaryDirectory("xsblk")
        defer { try? FileManager.default.removeItem(atPath: root) }
        let file = root + "/store.blk"
        // 256 KiB: small enough that the storm squashes history several times.
        let daemon = try Daemon(extraArguments: ["--block", file, "--block-size", "256K"])
        let storm = try writeStormThenKill(daemon, microseconds: 1_500_000)
        #expect(storm.writersStopped, "writers did not notice the crash")
        #expect(storm.count > 200, "the storm wrote too little to mean anything (\(storm.count) writes)")
        var size = stat()
        #expect(stat(file, &size) == 0 && size.st_size == 256 * 1024, "the device file changed size")

        let restarted = try Daemon(extraArguments: ["--block", file, "--block-size", "256K"])
        let client = try restarted.client()
        try expectNoAcknowledgedWriteLost(storm, reading: client)
        try client.write("/after/restart", bytes("yes"))
        let reported = try client.control(["history", "1"]).split(separator: " ").first.map(String.init)
        _ = restarted.stop()

        let repository = root + "/git"
        #expect(try export(file, to: repository) == 0)
        #expect(try git("-C", repository, "fsck", "--strict").status == 0, "git fsck --strict failed")
        #expect(FileManager.default.fileExists(atPath: repository + "/.git/shallow"),
                "the storm should have squashed history (commits with squashed-away parents are listed as shallow)")
        let head = try git("-C", repository, "rev-parse", "main").output.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(reported == head, "the daemon's reported head id is the exported git id")
        #expect(try git("-C", repository, "log", "--format=%s", "-n", "1", "main").output
                .contains("Domain 0: write /after/restart"))
        #expect(try git("-C", repository, "cat-file", "-p", "main:after/restart/.value").output == "yes")
    }

    @Test("a device too small for the live state answers ENOSPC before committing; acknowledged writes survive")
    func fullDeviceAnswersENOSPC() throws {
        let root = try makeTemporaryDirectory("xsblk")
        defer { try? FileManager.default.removeItem(atPath: root) }
        let file = root + "/small.blk"
        let arguments = ["--block", file, "--block-size", "64K", "--keep-last", "1"]
        let daemon = try Daemon(extraArguments: arguments)
        let client = try daemon.client()
        var acknowledged: [String] = []
        var refusal: ClientError? = nil
        for index in 0..<200 {
            let path = "/fill/k\(index)"
            do {
                try client.write(path, [UInt8](repeating: UInt8(0x41 + index % 26), count: 1500))
                acknowledged.append(path)
            } catch {
                refusal = error
                break
            }
        }
        #expect(refusal == .server(.ENOSPC), "expected ENOSPC, got \(String(describing: refusal))")
        #expect(acknowledged.count > 5 && acknowledged.count < 200)
        #expect(daemon.isRunning)
        #expect(text(try client.read(acknowledged[0])).count == 1500)   // reads still work
        for path in acknowledged.suffix(10) { try client.remove(path) }  // removals still work
        daemon.killHard()
        let restarted = try Daemon(extraArguments: arguments)
        let after = try restarted.client()
        for path in acknowledged.dropLast(10) { #expect(text(try after.read(path)).count == 1500, "\(path) lost") }
        for path in acknowledged.suffix(10) { #expect(throws: ClientError.server(.ENOENT)) { _ = try after.read(path) } }
    }

    @Test("without squashing, the export has the same ids as the --database repository")
    func exportMatchesGitBackend() throws {
        let root = try makeTemporaryDirectory("xsblk")
        defer { try? FileManager.default.removeItem(atPath: root) }
        let file = root + "/store.blk"
        let daemon = try Daemon(extraArguments: ["--block", file, "--block-size", "4M"])
        let client = try daemon.client()
        try client.write("/vm/a", bytes("1"))
        try client.write("/vm/b", bytes("2"))
        try client.remove("/vm/a")
        let reported = try client.control(["history", "1"]).split(separator: " ").first.map(String.init)
        _ = daemon.stop()
        let repository = root + "/git"
        #expect(try export(file, to: repository) == 0)
        #expect(try git("-C", repository, "fsck", "--strict").status == 0)
        #expect(!FileManager.default.fileExists(atPath: repository + "/.git/shallow"))
        let subjects = try git("-C", repository, "log", "--format=%s", "main").output
        #expect(subjects.contains("Domain 0: write /vm/b"))
        #expect(subjects.contains("Domain 0: rm /vm/a"))
        #expect(subjects.contains("Domain 0: initial store"))
        let head = try git("-C", repository, "rev-parse", "main").output.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(reported == head)
    }

    @Test("--export-block of a device in use: exports taken during a write storm that squashes it are complete, pass git fsck, and hold values the writers wrote")
    func exportWhileTheDaemonWrites() throws {
        let root = try makeTemporaryDirectory("xsblk")
        defer { try? FileManager.default.removeItem(atPath: root) }
        let file = root + "/store.blk"
        // 256 KiB with one commit kept: the storm squashes (rewrites a half) many times a second.
        let daemon = try Daemon(extraArguments: ["--block", file, "--block-size", "256K", "--keep-last", "1"])
        // One storm key before the first export (which may start before any writer), so every
        // export has a storm key to check; writer 0 overwrites it.
        try daemon.client().write("/storm/w0/k0", bytes("v0"))
        /// The exports' exit statuses and outputs, shared with the exporting thread under `lock`.
        final class Exports: @unchecked Sendable { var stop = false; var results: [(Int32, String)] = [] }
        let exports = Exports()
        let lock = NSLock()
        let exporter = Thread {
            var number = 0
            while !lock.withLock({ exports.stop }) {
                number += 1
                let result = (try? runCapturing(Programs.daemon, ["--export-block", file, "--to", root + "/export\(number)"],
                                                mergingStandardError: true)) ?? (-1, "could not run the export")
                lock.withLock { exports.results.append(result) }
            }
        }
        exporter.start()
        let storm = try writeStormThenKill(daemon, microseconds: 3_000_000)
        lock.withLock { exports.stop = true }
        while !exporter.isFinished { usleep(10_000) }
        let results = lock.withLock { exports.results }
        #expect(storm.count > 200, "the storm wrote too little to mean anything (\(storm.count) writes)")
        #expect(results.count >= 3, "too few exports during the storm (\(results.count))")
        let again = results.filter { $0.1.contains("exporting again") }.count
        print("export during a storm: \(results.count) exports, \(again) restarted after a squash, \(storm.count) writes")
        for (number, (status, output)) in results.enumerated() {
            #expect(status == 0, "export \(number + 1) failed: \(output)")
            guard status == 0 else { continue }
            let repository = root + "/export\(number + 1)"
            #expect(try git("-C", repository, "fsck", "--strict").status == 0, "git fsck --strict failed on export \(number + 1)")
            // Every storm key in the exported head holds a value some writer wrote ("v<index>").
            let tree = try git("-C", repository, "ls-tree", "-r", "--name-only", "main").output
            let keys = tree.split(separator: "\n").filter { $0.hasPrefix("storm/w") && $0.contains("/k") && $0.hasSuffix("/.value") }
            #expect(!keys.isEmpty, "export \(number + 1) holds no storm key")
            for path in keys {
                let value = try git("-C", repository, "cat-file", "-p", "main:\(path)").output
                #expect(value.first == "v" && Int(value.dropFirst()) != nil, "export \(number + 1): \(path) = \(value)")
            }
        }
        let restarted = try Daemon(extraArguments: ["--block", file, "--block-size", "256K", "--keep-last", "1"])
        defer { restarted.stop() }
        try expectNoAcknowledgedWriteLost(storm, reading: restarted.client())
    }
}
