// xsctl mount: the live store read and written through the file system and checked with the real clients; history/ read-only; the protocol's denials become EACCES.

import Foundation
import Testing
import XenstoreHost
import XenstoreWire

/// Whether FUSE can run here: the kernel's device and the unmount helper.
private let fuseAvailable = FileManager.default.fileExists(atPath: "/dev/fuse")
    && FileManager.default.isExecutableFile(atPath: "/usr/bin/fusermount3")

@Suite("xsctl mount (FUSE)", .enabled(if: fuseAvailable, "needs /dev/fuse and fusermount3 (package fuse3): skipped"))
struct FuseMountTests {
    /// Starts `xsctl [--socket SOCKET] mount --foreground DIR` and waits until the mount answers.
    func mount(_ daemon: Daemon, at directory: String, socket: String? = nil) throws -> BackgroundTool {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        var arguments = socket.map { ["--socket", $0] } ?? []
        arguments += ["mount", "--foreground", directory]
        let tool = try daemon.start(Programs.xsctl, arguments, seconds: 60, package: "xsctl (swift build)")
        let deadline = Date().addingTimeInterval(15)
        while !isMounted(directory) {
            if Date() >= deadline {
                let result = tool.finish(seconds: 0)
                throw HarnessError("xsctl mount did not mount \(directory) within 15 s: \(result)")
            }
            usleep(20_000)
        }
        return tool
    }

    func isMounted(_ directory: String) -> Bool {
        readText("/proc/self/mounts").split(separator: "\n").contains { $0.split(separator: " ").dropFirst().first.map(String.init) == directory }
    }

    func unmount(_ directory: String, _ tool: BackgroundTool) {
        let result = try? runCapturing("/usr/bin/fusermount3", ["-u", directory], mergingStandardError: true)
        #expect(result?.status == 0, "fusermount3 -u \(directory): \(String(describing: result))")
        let finished = tool.finish(seconds: 10)
        #expect(finished.rc == 0, "xsctl mount ends cleanly when unmounted: \(finished)")
        #expect(!isMounted(directory))
    }

    func contents(_ path: String) throws -> String {
        try String(contentsOfFile: path, encoding: .utf8)
    }

    func write(_ text: String, to path: String) throws {
        try text.write(toFile: path, atomically: false, encoding: .utf8)
    }

    @Test("write through the mount, read with xenstore-read; mkdir, rmdir, perms and grep -r; history/ read-only")
    func readWriteAndHistory() throws {
        let daemon = try Daemon()
        defer { daemon.stop() }
        #expect(try daemon.xs("xenstore-write", "/vm/1/name", "first").rc == 0)
        #expect(try daemon.xs("xenstore-write", "/vm/1/name", "second").rc == 0)
        let m = daemon.directory + "/mnt"
        let tool = try mount(daemon, at: m)

        #expect(try contents("\(m)/vm/1/name/value") == "second")
        #expect(try contents("\(m)/history/main/vm/1/name/value") == "second")
        #expect(try contents("\(m)/history/main~1/vm/1/name/value") == "first")
        let commits = try daemon.run(Programs.xsctl, ["history", "100"]).lines.count
        try write("through fuse", to: "\(m)/vm/1/name/value")
        #expect(try daemon.xs("xenstore-read", "/vm/1/name").stdout == "through fuse\n")
        // Opened with O_TRUNC, then written: one WRITE, one commit (no empty value in between).
        #expect(try daemon.run(Programs.xsctl, ["history", "100"]).lines.count == commits + 1)
        try FileManager.default.createDirectory(atPath: "\(m)/vm/2", withIntermediateDirectories: false)
        #expect(try daemon.xs("xenstore-exists", "/vm/2").rc == 0)
        try write("n0 r5", to: "\(m)/vm/2/perms")
        let permissions = try daemon.xs("xenstore-ls", "-p", "/vm")
        #expect(permissions.lines.contains { $0.hasPrefix("2 = \"\"") && $0.hasSuffix("(n0,r5)") }, "\(permissions)")
        #expect(try contents("\(m)/vm/2/perms") == "n0 r5\n")
        let listing = try FileManager.default.contentsOfDirectory(atPath: "\(m)/vm/1").sorted()
        #expect(listing == ["name", "perms", "value"])
        let grep = try runCapturing("/bin/grep", ["-r", "fuse", "\(m)/vm"])
        #expect(grep.status == 0 && grep.output == "\(m)/vm/1/name/value:through fuse\n", "\(grep)")
        #expect(rmdir("\(m)/vm/2") == 0)
        #expect(try daemon.xs("xenstore-exists", "/vm/2").rc == 1)
        #expect(try daemon.xs("xenstore-write", "/vm/3/a/b", "x").rc == 0)
        let rm = try runCapturing("/bin/rm", ["-r", "\(m)/vm/3"], mergingStandardError: true)
        #expect(rm.status == 0, "\(rm)")
        #expect(try daemon.xs("xenstore-exists", "/vm/3").rc == 1)
        #expect(throws: (any Error).self) { try self.write("x", to: "\(m)/vm/1/other-file") }

        // history/: past values, read-only.
        let ids = try FileManager.default.contentsOfDirectory(atPath: "\(m)/history")
        #expect(ids.contains("main") && ids.filter { $0.count == 40 }.count >= 4, "\(ids)")
        let newest = try daemon.run(Programs.xsctl, ["history", "1"]).stdout.split(separator: " ").first.map(String.init) ?? "?"
        #expect(try contents("\(m)/history/\(newest)/vm/1/name/value") == "through fuse")
        #expect(throws: (any Error).self) { try self.write("x", to: "\(m)/history/main/vm/1/name/value") }
        #expect(mkdir("\(m)/history/main/vm/3", 0o755) == -1 && errno == EROFS)

        unmount(m, tool)
    }

    @Test("a guest's mount gets EACCES where the protocol denies it")
    func guestMountIsDenied() throws {
        let daemon = try Daemon(domains: [7])
        defer { daemon.stop() }
        #expect(try daemon.xs("xenstore-write", "/local/domain/0/secret", "s").rc == 0)
        let m = daemon.directory + "/guest-mnt"
        let tool = try mount(daemon, at: m, socket: daemon.domainSocket(7))
        #expect(open("\(m)/local/domain/0/secret/value", O_RDONLY) == -1 && errno == EACCES)
        #expect(open("\(m)/local/domain/0/secret/value", O_WRONLY | O_TRUNC) == -1 && errno == EACCES)
        #expect(throws: (any Error).self) { try FileManager.default.contentsOfDirectory(atPath: "\(m)/history") }
        #expect(try daemon.xs("xenstore-read", "/local/domain/0/secret").stdout == "s\n")
        unmount(m, tool)
    }
}
