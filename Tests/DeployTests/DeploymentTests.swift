// Deploys into a temporary git repository: commits, tags, manifest checksums, list, rollback, verify, errors.
import DeployKit
import Foundation
import Testing

@Suite struct DeploymentTests {
    init() { Progress.enabled = false }

    @Test func deployTwiceThenRollback() throws {
        let root = try temporaryDirectory("deploy")
        defer { cleanup(root) }
        let source = try FakeSource(in: root, seed: 1)
        let repo = DeploymentRepository(path: "\(root)/repo")

        // Deployment 1.
        let first = try source.pack(into: "\(root)/pack1")
        #expect(try repo.deploy(pack: "\(root)/pack1") == "deploy-1")
        // Deployment 2: new source commit, new image bytes.
        try Files.write("// changed\n", to: "\(source.path)/Runtime/main.c")
        try source.commit("source 2")
        try source.writeImages(seed: 2)
        let second = try source.pack(into: "\(root)/pack2")
        #expect(try repo.deploy(pack: "\(root)/pack2") == "deploy-2")
        #expect(first.source.commit != second.source.commit)
        #expect(first.images[0].sha256 != second.images[0].sha256)

        // One commit per deployment, each tagged (annotated tags).
        #expect(try sh(["git", "-C", repo.path, "rev-list", "--count", "HEAD"]) == "2")
        #expect(try sh(["git", "-C", repo.path, "tag", "--list", "deploy-*"]).split(separator: "\n") == ["deploy-1", "deploy-2"])
        #expect(try sh(["git", "-C", repo.path, "cat-file", "-t", "deploy-1"]) == "tag")
        #expect(try sh(["git", "-C", repo.path, "rev-parse", "deploy-2^{commit}"]) == (try sh(["git", "-C", repo.path, "rev-parse", "HEAD"])))
        #expect(try sh(["git", "-C", repo.path, "rev-parse", "deploy-1^{commit}"]) == (try sh(["git", "-C", repo.path, "rev-parse", "HEAD^"])))
        #expect(try sh(["git", "-C", repo.path, "status", "--porcelain"]).isEmpty)
        try sh(["git", "-C", repo.path, "fsck", "--strict"])

        // The committed manifest's checksums match the committed files (checked with sha256sum, not our code).
        let manifest = try Manifest.load(from: repo.path)
        #expect(manifest == second)
        #expect(manifest.source.commit == (try sh(["git", "-C", source.path, "rev-parse", "HEAD"])))
        #expect(manifest.configs.count == 3)
        for entry in manifest.images {
            #expect(try sha256sum("\(repo.path)/\(entry.file)") == entry.sha256)
            #expect(Int(try sh(["stat", "-c", "%s", "\(repo.path)/\(entry.file)"])) == entry.size)
            #expect(try sh(["sh", "-c", "gzip -dc \"$1\" | sha256sum | cut -c1-64", "sh", "\(repo.path)/\(entry.file)"]) == entry.rawSha256)
        }
        for entry in manifest.configs { #expect(try sha256sum("\(repo.path)/\(entry.file)") == entry.sha256) }
        let old = try Manifest.decode(Array(try sh(["git", "-C", repo.path, "show", "deploy-1:manifest.json"]).utf8), origin: "deploy-1")
        #expect(old.images == first.images)

        let listed = try repo.deployments()
        #expect(listed.map(\.tag) == ["deploy-1", "deploy-2"])
        #expect(listed.map(\.isCurrent) == [false, true])
        #expect(listed[0].sourceCommit == first.source.commit)

        // Rollback: a new commit on top whose tree is exactly deployment 1's, tagged deploy-3.
        let deploy2Commit = try sh(["git", "-C", repo.path, "rev-parse", "HEAD"])
        #expect(try repo.rollback(to: "deploy-1") == "deploy-3")
        #expect(try sh(["git", "-C", repo.path, "rev-list", "--count", "HEAD"]) == "3")
        #expect(try sh(["git", "-C", repo.path, "rev-parse", "HEAD^"]) == deploy2Commit)
        #expect(try sh(["git", "-C", repo.path, "rev-parse", "HEAD^{tree}"]) == (try sh(["git", "-C", repo.path, "rev-parse", "deploy-1^{tree}"])))
        #expect(try sh(["git", "-C", repo.path, "rev-parse", "deploy-3^{commit}"]) == (try sh(["git", "-C", repo.path, "rev-parse", "HEAD"])))
        #expect(try sh(["git", "-C", repo.path, "log", "-1", "--format=%s"]).contains("rollback to deploy-1"))
        #expect(try sh(["git", "-C", repo.path, "status", "--porcelain"]).isEmpty)
        #expect(try Verifier.verify(directory: repo.path) == first)
        #expect(try Gzip.decompress(try Files.read("\(repo.path)/images/xenstore-stubdom-x86_64-pvh.gz")) == fakeImage(seed: 1))
        let after = try repo.deployments()
        #expect(after.map(\.tag) == ["deploy-1", "deploy-2", "deploy-3"])
        #expect(after.map(\.isCurrent) == [true, false, true])
        // Rolling forward again by number works the same way.
        #expect(try repo.rollback(to: "2") == "deploy-4")
        #expect(try Verifier.verify(directory: repo.path) == second)
    }

    @Test func verifyRejectsACorruptedImage() throws {
        let root = try temporaryDirectory("corrupt")
        defer { cleanup(root) }
        let source = try FakeSource(in: root, seed: 5)
        try source.pack(into: "\(root)/pack")
        let repo = DeploymentRepository(path: "\(root)/repo")
        try repo.deploy(pack: "\(root)/pack")
        try Verifier.verify(directory: repo.path)
        let image = "\(repo.path)/images/xenstore-stubdom-x86_64-pvh.gz"
        let good = try Files.read(image)

        // One flipped byte: same size, different sha256.
        var flipped = good
        flipped[flipped.count / 2] ^= 0x01
        try Files.write(flipped, to: image)
        let flipError = #expect(throws: DeployError.self) { try Verifier.verify(directory: repo.path) }
        #expect(flipError?.description.contains("xenstore-stubdom-x86_64-pvh.gz: sha256") == true, "\(String(describing: flipError))")

        // Truncated: size and sha256 both reported.
        try Files.write(Array(good.prefix(good.count - 10)), to: image)
        let cutError = #expect(throws: DeployError.self) { try Verifier.verify(directory: repo.path) }
        #expect(cutError?.description.contains("size \(good.count - 10), manifest says \(good.count)") == true)

        // Missing.
        try FileManager.default.removeItem(atPath: image)
        let goneError = #expect(throws: DeployError.self) { try Verifier.verify(directory: repo.path) }
        #expect(goneError?.description.contains("missing") == true)

        // Corrupted AND the manifest "fixed" to match: the gzip CRC still catches it.
        try Files.write(flipped, to: image)
        var manifest = try Manifest.load(from: repo.path)
        manifest.images[0].sha256 = SHA256.hex(flipped)
        try manifest.save(to: repo.path)
        let crcError = #expect(throws: DeployError.self) { try Verifier.verify(directory: repo.path) }
        #expect(crcError?.description.contains("gzip") == true || crcError?.description.contains("uncompressed") == true)

        // And deploy refuses to commit on top of such a dirty repository.
        let dirtyError = #expect(throws: DeployError.self) { try repo.deploy(pack: "\(root)/pack") }
        #expect(dirtyError?.description.contains("uncommitted changes") == true)

        // A corrupted pack is refused before anything is committed.
        try sh(["git", "-C", repo.path, "reset", "-q", "--hard"])
        try Files.write(flipped, to: "\(root)/pack/images/xenstore-stubdom-x86_64-pv.gz")
        #expect(throws: DeployError.self) { try repo.deploy(pack: "\(root)/pack") }
        #expect(try sh(["git", "-C", repo.path, "rev-list", "--count", "HEAD"]) == "1")
    }

    @Test func clearErrors() throws {
        let root = try temporaryDirectory("errors")
        defer { cleanup(root) }
        let source = try FakeSource(in: root, seed: 9)

        // Dirty source tree (a change in an image input), unless --allow-dirty, which records it.
        try Files.write("// edited\n", to: "\(source.path)/Sources/XenstoreWire/Wire.swift")
        let dirty = #expect(throws: DeployError.self) { try source.pack(into: "\(root)/p") }
        #expect(dirty?.description.hasPrefix("dirty source tree") == true)
        #expect(dirty?.description.contains("Sources/XenstoreWire/Wire.swift") == true)
        #expect(try source.pack(into: "\(root)/p", allowDirty: true).source.dirty)
        try sh(["git", "-C", source.path, "checkout", "--", "."])

        // Missing toolchain.
        let tool = #expect(throws: DeployError.self) { try source.pack(into: "\(root)/p", swiftc: "/nonexistent/swiftc") }
        #expect(tool?.description.hasPrefix("missing toolchain") == true)

        // Missing image, and arm32, which is built but not packed.
        try FileManager.default.removeItem(atPath: "\(source.path)/build/xenstore-stubdom-x86_64-pv")
        let missing = #expect(throws: DeployError.self) { try source.pack(into: "\(root)/p") }
        #expect(missing?.description.contains("make images") == true)
        var arm = PackOptions(sourceDirectory: source.path, outputDirectory: "\(root)/p")
        arm.buildFlags = fakeFlags
        arm.kinds = [ImageKind("arm32-pvh")!]
        let armError = #expect(throws: DeployError.self) { try Packer.pack(arm) }
        #expect(armError?.description.contains("arm32-pvh: not packed") == true)

        // Not a git repository: a non-empty plain directory, and a directory inside another repository.
        try Files.write("x", to: "\(root)/plain/file")
        let plain = #expect(throws: DeployError.self) { try DeploymentRepository(path: "\(root)/plain").deployments() }
        #expect(plain?.description.hasPrefix("bad deployment repository") == true)
        try Files.write("x", to: "\(source.path)/nested/file")
        let nested = #expect(throws: DeployError.self) { try DeploymentRepository(path: "\(source.path)/nested").deployments() }
        #expect(nested?.description.contains("not its top") == true)
        // No such deployment.
        try source.writeImages(seed: 9)
        try source.pack(into: "\(root)/pack")
        let repo = DeploymentRepository(path: "\(root)/repo")
        try repo.deploy(pack: "\(root)/pack")
        let unknown = #expect(throws: DeployError.self) { try repo.rollback(to: "deploy-7") }
        #expect(unknown?.description.contains("no deployment deploy-7") == true)
        // A pack without a manifest.
        let noManifest = #expect(throws: DeployError.self) { try Verifier.verify(directory: root) }
        #expect(noManifest?.description.contains("no manifest.json") == true)
    }
}
