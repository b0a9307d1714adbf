// --block durability: a full device under concurrent writers, refusal of damaged files (unchanged), salvage checked by real git.

import Foundation
import Testing
import XenstoreHost
import XenstoreWire

/// Runs the daemon on `file` for at most 10 s (a daemon that starts serving is ended by
/// `timeout`, status 124); returns its exit status and everything it wrote.
private func startDaemon(on file: String, _ extra: [String] = []) throws -> (status: Int32, output: String) {
    let directory = try makeTemporaryDirectory("xsrefuse")
    defer { try? FileManager.default.removeItem(atPath: directory) }
    return try runCapturing(Programs.timeout, ["10", Programs.daemon, "--socket", directory + "/socket", "--block", file] + extra,
                            mergingStandardError: true)
}

/// A block file holding a few commits, written by a daemon that was stopped cleanly.
private func makeStore(_ file: String, size: String = "1M", keys: Int = 3) throws {
    let daemon = try Daemon(extraArguments: ["--block", file, "--block-size", size])
    let client = try daemon.client()
    for index in 0..<keys { try client.write("/s/k\(index)", bytes("value \(index)")) }
    daemon.stop()
}

/// The byte offset of the record of commit `hex` in the raw device file.
private func commitRecordOffset(_ hex: String, in contents: [UInt8]) -> Int? {
    var id: [UInt8] = []
    var index = hex.startIndex
    while index < hex.endIndex {
        let next = hex.index(index, offsetBy: 2)
        id.append(UInt8(hex[index..<next], radix: 16)!)
        index = next
    }
    var offset = 5
    while offset + 20 <= contents.count {
        if contents[offset - 5] == 3 && Array(contents[offset..<(offset + 20)]) == id { return offset - 5 }
        offset += 1
    }
    return nil
}

@Suite("block-device durability (--block)", .serialized)
struct BlockDurabilityTests {
    @Test("five concurrent writers (four guests and dom0) fill a 256 KiB device: ENOSPC, then SIGKILL and restart keep every acknowledged write")
    func fullDeviceUnderConcurrentWriters() throws {
        let root = try makeTemporaryDirectory("xsfull")
        defer { try? FileManager.default.removeItem(atPath: root) }
        let file = root + "/small.blk"
        // Only the head is kept by squashes: the live state is (nearly) all there is on the device.
        let arguments = ["--block", file, "--block-size", "256K", "--keep-last", "1"]
        let guests: [UInt32] = [1, 2, 3, 4]
        // Guests may own directories of a few thousand entries (node-size counts child names).
        let quotas = ["node-size=262144", "nodes=20000"]
        let daemon = try Daemon(quotas: quotas, domains: guests, watchdogSeconds: 120, extraArguments: arguments)
        let dom0 = try daemon.client()
        // Every writer fills one flat directory: its git tree, rewritten by every commit, grows
        // with it, so a round of five commits grows too, up to a large part of the device (the
        // case where a 10-point margin measured only at squashes let a round fail to fit).
        var writers: [(client: XenstoreClient, home: String)] = [(dom0, "/dom0fill")]
        for domid in guests {
            let guest = try daemon.client(domain: domid)  // the domain exists once connected
            try dom0.write("/local/domain/\(domid)/data", [])
            try dom0.setPermissions("/local/domain/\(domid)/data", "n\(domid)")
            writers.append((guest, "/local/domain/\(domid)/data"))
        }
        /// Acknowledged writes and the errors that stopped each writer, shared under `lock`.
        final class Outcome: @unchecked Sendable {
            var acknowledged: [(String, [UInt8])] = []
            var errors: [ClientError] = []
        }
        let lock = NSLock()
        let outcome = Outcome()
        let finished = DispatchGroup()
        for (number, writer) in writers.enumerated() {
            finished.enter()
            Thread {
                defer { finished.leave() }
                for index in 0..<20_000 {
                    let path = "\(writer.home)/k\(index)"
                    let value = Array("w\(number) v\(index % 10)".utf8)  // few distinct blobs: the trees dominate
                    do throws(ClientError) {
                        try writer.client.write(path, value)
                    } catch {
                        lock.lock()
                        outcome.errors.append(error)
                        lock.unlock()
                        return
                    }
                    lock.lock()
                    outcome.acknowledged.append((path, value))
                    lock.unlock()
                }
            }.start()
        }
        #expect(finished.wait(timeout: .now() + 90) == .success, "the writers did not stop")
        lock.lock()
        let acknowledged = outcome.acknowledged
        let errors = outcome.errors
        lock.unlock()
        #expect(errors.count == writers.count)
        #expect(errors.allSatisfy { $0 == .server(.ENOSPC) }, "every writer must be stopped by ENOSPC: \(errors)")
        #expect(acknowledged.count > 100, "too few writes to fill the device: \(acknowledged.count)")
        #expect(daemon.isRunning, "the daemon must keep serving when the device is full: \(daemon.log)")
        #expect(!daemon.log.contains("cannot write"), "a durable batch failed: \(daemon.log)")
        daemon.killHard()

        let restarted = try Daemon(quotas: quotas, domains: guests, watchdogSeconds: 60, extraArguments: arguments)
        defer { restarted.stop() }
        let reader = try restarted.client()
        var lost = 0
        for (path, value) in acknowledged where (try? reader.read(path)) != value { lost += 1 }
        #expect(lost == 0, "\(lost) of \(acknowledged.count) acknowledged writes lost after SIGKILL and restart")
    }

    @Test("damaged or mismatched block files are refused with a clear message and left byte-for-byte unchanged")
    func damagedFilesAreRefusedUnchanged() throws {
        let root = try makeTemporaryDirectory("xsrefuse")
        defer { try? FileManager.default.removeItem(atPath: root) }
        let pristine = root + "/pristine.blk"
        try makeStore(pristine)
        let original = try [UInt8](Data(contentsOf: URL(fileURLWithPath: pristine)))
        let block = 4096

        /// Writes `damage(original)` to a file, starts the daemon on it and checks the refusal.
        func expectRefusal(_ name: String, _ extra: [String] = [], message: String,
                           damage: (inout [UInt8]) -> Void, sourceLocation: SourceLocation = #_sourceLocation) throws {
            let file = root + "/" + name + ".blk"
            var contents = original
            damage(&contents)
            try Data(contents).write(to: URL(fileURLWithPath: file))
            let (status, output) = try startDaemon(on: file, extra)
            #expect(status != 0 && status != 124, "\(name): the daemon must refuse (exit \(status)): \(output)",
                    sourceLocation: sourceLocation)
            #expect(output.contains(message), "\(name): expected a message with \"\(message)\", got: \(output)",
                    sourceLocation: sourceLocation)
            let after = try [UInt8](Data(contentsOf: URL(fileURLWithPath: file)))
            #expect(after == contents, "\(name): the file was changed", sourceLocation: sourceLocation)
        }

        try expectRefusal("magic-flipped", message: "neither superblock carries the magic XSBLOCK1") {
            $0[0] ^= 0x01
            $0[block + 3] ^= 0x10
        }
        try expectRefusal("superblocks-zeroed", message: "both superblocks are zero and block 2 holds data") {
            for index in 0..<(2 * block) { $0[index] = 0 }
        }
        try expectRefusal("superblocks-checksum", message: "both superblocks fail their checksum") {
            $0[30] ^= 0x04
            $0[block + 30] ^= 0x04
        }
        try expectRefusal("truncated-empty", message: "exists but is empty (0 bytes)") { $0 = [] }
        try expectRefusal("size-option-mismatch", ["--block-size", "2M"], message: "not the 2097152 asked for") { _ in }
        try expectRefusal("extended", message: "(was the file resized?)") {
            $0 += [UInt8](repeating: 0, count: 64 * block)
        }
        try expectRefusal("bad-record", message: "fails its checksum at byte") { $0[2 * block + 40] ^= 0x01 }

        // Control: the undamaged file is accepted (and, without --block-size, at its own size).
        let daemon = try Daemon(extraArguments: ["--block", pristine])
        #expect(try daemon.client().read("/s/k2") == bytes("value 2"))
        daemon.stop()
        // A missing file is created; an all-zero file is formatted.
        let zero = root + "/zero.blk"
        try Data(count: 1 << 20).write(to: URL(fileURLWithPath: zero))
        let fresh = try Daemon(extraArguments: ["--block", zero])
        try fresh.client().write("/fresh", bytes("1"))
        fresh.stop()
    }

    @Test("salvage: one bad old commit record; --export-block returns every other commit, checked by git log and git fsck")
    func salvageOfOneBadOldRecord() throws {
        let root = try makeTemporaryDirectory("xssalvage")
        defer { try? FileManager.default.removeItem(atPath: root) }
        let file = root + "/store.blk"
        try makeStore(file, keys: 12)
        let clean = root + "/clean"
        #expect(try runCapturing(Programs.daemon, ["--export-block", file, "--to", clean]).status == 0)
        let all = try git("-C", clean, "log", "--format=%H", "main").output.split(separator: "\n").map(String.init)
        #expect(all.count == 13)  // the initial store and 12 writes
        let head = all[0]
        let victim = all[8]  // an old commit: "write /s/k3"
        var contents = try [UInt8](Data(contentsOf: URL(fileURLWithPath: file)))
        let offset = try #require(commitRecordOffset(victim, in: contents))
        contents[offset + 25 + 10] ^= 0x20  // a byte of the commit's body: its checksum fails
        try Data(contents).write(to: URL(fileURLWithPath: file))

        let refused = try startDaemon(on: file)
        #expect(refused.status == 2 && refused.output.contains("salvages what is readable"), "\(refused)")

        for zeroSuperblocks in [false, true] {
            if zeroSuperblocks {
                for index in 0..<(2 * 4096) { contents[index] = 0 }
                try Data(contents).write(to: URL(fileURLWithPath: file))
            }
            let repository = root + "/salvaged-\(zeroSuperblocks)"
            let export = try runCapturing(Programs.daemon, ["--export-block", file, "--to", repository],
                                          mergingStandardError: true)
            #expect(export.status == 1, "a salvage that lost something exits 1: \(export.output)")
            #expect(export.output.contains("commit \(victim) is not on the device (its record is damaged)"), "\(export.output)")
            #expect(export.output.contains("skipped "), "\(export.output)")
            #expect(try git("-C", repository, "fsck", "--strict").status == 0, "git fsck --strict failed")
            #expect(try git("-C", repository, "rev-parse", "main").output.trimmingCharacters(in: .whitespacesAndNewlines) == head)
            let salvaged = Set(try git("-C", repository, "log", "--all", "--format=%H").output.split(separator: "\n").map(String.init))
            #expect(salvaged == Set(all).subtracting([victim]), "every other commit must be exported")
            #expect(try git("-C", repository, "cat-file", "-p", "main:s/k11/.value").output == "value 11")
            #expect(try git("-C", repository, "cat-file", "-p", "\(all[9]):s/k2/.value").output == "value 2")
        }
        // The salvage never writes to the device.
        #expect(try [UInt8](Data(contentsOf: URL(fileURLWithPath: file))) == contents)
    }
}
