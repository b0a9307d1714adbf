// The xsdeploy executable end to end: pack, config, deploy, verify, list, rollback, and its error exits.
import DeployKit
import Foundation
import Testing

@Suite struct CommandLineTests {
    /// The xsdeploy binary next to the test bundle (swift test builds every product).
    func xsdeploy() throws -> String {
        let directory = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().path
        var candidates = ["\(directory)/xsdeploy"]
        if let bin = try? Shell.check(["swift", "build", "--show-bin-path"], in: packageRoot) { candidates.append("\(bin)/xsdeploy") }
        let found = candidates.first { FileManager.default.isExecutableFile(atPath: $0) }
        return try #require(found, "xsdeploy not built (looked in \(candidates)); run swift build --product xsdeploy")
    }

    @Test func fullFlowThroughTheCommandLine() throws {
        let tool = try xsdeploy()
        let root = try temporaryDirectory("cli")
        defer { cleanup(root) }
        let source = try FakeSource(in: root, seed: 11)
        try Files.write(fakeFlags.map { "\($0.key)=\($0.value)" }.joined(separator: "\n"), to: "\(root)/flags")
        let pack = try Shell.run([tool, "pack", "--source", source.path, "--out", "\(root)/pack", "--flags-file", "\(root)/flags"])
        #expect(pack.status == 0, "\(pack.stderr)")
        #expect(pack.stderr.contains("[3/5] compressing"), "progress output on stderr")
        #expect(pack.stdout.split(separator: "\n").count == 2)
        let config = try Shell.run([tool, "config", "--pack", "\(root)/pack", "--memory", "8", "--xl-parser", "\(root)/none"])
        #expect(config.status == 0, "\(config.stderr)")
        #expect(config.stderr.contains("parsed back by xsdeploy's own xl.cfg parser"))
        let deploy = try Shell.run([tool, "deploy", "--pack", "\(root)/pack", "--repo", "\(root)/repo"])
        #expect(deploy.status == 0, "\(deploy.stderr)")
        #expect(deploy.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "deploy-1")
        try source.writeImages(seed: 12)
        #expect(try Shell.run([tool, "pack", "--source", source.path, "--out", "\(root)/pack", "--flags-file", "\(root)/flags"]).status == 0)
        #expect(try Shell.run([tool, "config", "--pack", "\(root)/pack", "--xl-parser", "\(root)/none"]).status == 0)
        #expect(try Shell.run([tool, "deploy", "--pack", "\(root)/pack", "--repo", "\(root)/repo"]).stdout.contains("deploy-2"))
        let rollback = try Shell.run([tool, "rollback", "--repo", "\(root)/repo", "--to", "1"])
        #expect(rollback.status == 0, "\(rollback.stderr)")
        #expect(rollback.stdout.contains("deploy-3"))
        let list = try Shell.run([tool, "list", "--repo", "\(root)/repo"])
        let lines = list.stdout.split(separator: "\n")
        #expect(lines.count == 3)
        #expect(lines.first?.hasPrefix("* deploy-1") == true && lines.last?.hasPrefix("* deploy-3") == true)
        let verify = try Shell.run([tool, "verify", "--repo", "\(root)/repo"])
        #expect(verify.status == 0 && verify.stdout.hasPrefix("OK: 2 images and 3 configs"))
        #expect(try sh(["git", "-C", "\(root)/repo", "grep", "-h", "XENSTORE_DOMAIN_SIZE=", "deploy-1", "--", "config/xencommons"]).hasSuffix("XENSTORE_DOMAIN_SIZE=8"))

        // The memory default: 16 MiB, 32 with a history disk (its index needs room), --memory wins.
        func domainSize(_ extra: [String]) throws -> String? {
            let run = try Shell.run([tool, "config", "--pack", "\(root)/pack", "--xl-parser", "\(root)/none",
                                     "--source", packageRoot] + extra)
            #expect(run.status == 0, "\(run.stderr)")
            let text = String(decoding: try Files.read("\(root)/pack/\(XenConfig.xencommonsFile)"), as: UTF8.self)
            return text.split(separator: "\n").first { $0.hasPrefix("XENSTORE_DOMAIN_SIZE=") }.map(String.init)
        }
        #expect(try domainSize([]) == "XENSTORE_DOMAIN_SIZE=16")
        #expect(try domainSize(["--history-disk", "/var/lib/xenstored/history.img"]) == "XENSTORE_DOMAIN_SIZE=32")
        #expect(try domainSize(["--history-disk", "/var/lib/xenstored/history.img", "--memory", "20"]) == "XENSTORE_DOMAIN_SIZE=20")

        // Errors: non-zero exit and one clear line on stderr.
        var image = try Files.read("\(root)/repo/images/xenstore-stubdom-x86_64-pv.gz")
        image[100] ^= 0x40
        try Files.write(image, to: "\(root)/repo/images/xenstore-stubdom-x86_64-pv.gz")
        let bad = try Shell.run([tool, "verify", "--repo", "\(root)/repo"])
        #expect(bad.status == 1)
        #expect(bad.stderr.contains("xsdeploy: manifest:") && bad.stderr.contains("xenstore-stubdom-x86_64-pv.gz: sha256"))
        try Files.write("x", to: "\(root)/plain/file")
        let notRepo = try Shell.run([tool, "list", "--repo", "\(root)/plain"])
        #expect(notRepo.status == 1 && notRepo.stderr.hasPrefix("xsdeploy: bad deployment repository"))
        let noImages = try Shell.run([tool, "pack", "--source", source.path, "--images", "\(root)/nowhere", "--out", "\(root)/p2", "--flags-file", "\(root)/flags"])
        #expect(noImages.status == 1 && noImages.stderr.contains("xsdeploy: missing image"))
    }
}
