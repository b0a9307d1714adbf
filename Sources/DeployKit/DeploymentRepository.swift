// `xsdeploy deploy/list/rollback/verify`: a git repository whose commits are deployments. Each deployment is
// one commit holding manifest.json, images/ and config/, tagged `deploy-N` (annotated). Rollback is a NEW
// commit whose tree is exactly an earlier deployment's, tagged as the next deployment: history only grows,
// the branch never moves backwards, and `git log` shows the rollback.
import Foundation

/// One deployment as `list` shows it.
public struct DeploymentInfo: Equatable {
    /// The tag, `deploy-N`.
    public var tag: String
    /// Deployment number N.
    public var number: Int
    /// The tagged commit.
    public var commit: String
    /// The tag message's first line (what was deployed or rolled back to).
    public var subject: String
    /// Source commit recorded in the manifest at that tag.
    public var sourceCommit: String
    /// `arch-variant` of each image.
    public var images: [String]
    /// Whether HEAD's tree is this deployment's tree.
    public var isCurrent: Bool
}

/// Operations on a deployment repository.
public struct DeploymentRepository {
    /// Tag prefix of deployments.
    public static let tagPrefix = "deploy-"
    /// The repository's work tree.
    public let path: String

    /// Opens the repository at `path` (not created).
    public init(path: String) { self.path = Files.absolute(path) }

    /// git with a fallback identity when none is configured (the tool must work on a fresh CI machine).
    @discardableResult
    func git(_ arguments: [String]) throws -> String {
        var identity: [String] = []
        if (try? Shell.run(["git", "-C", path, "config", "user.email"]))?.status != 0 {
            identity = ["-c", "user.name=xsdeploy", "-c", "user.email=xsdeploy@localhost"]
        }
        return try Shell.check(["git"] + identity + ["-C", path] + arguments)
    }

    /// Creates the repository if `path` is absent or an empty directory; otherwise it must be a clean git work tree.
    public func openOrCreate() throws {
        if !Files.exists(path) || ((try? FileManager.default.contentsOfDirectory(atPath: path))?.isEmpty ?? false) {
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
            try Shell.check(["git", "init", "-q", "-b", "main", path])
            Progress.note("created deployment repository \(path)")
            return
        }
        try requireRepository(clean: true)
    }

    /// Throws `badRepository` unless `path` is the top of a git work tree (and clean, if asked).
    public func requireRepository(clean: Bool) throws {
        guard Files.exists(path, directory: true) else { throw DeployError.badRepository("\(path) does not exist") }
        let top = try Shell.run(["git", "-C", path, "rev-parse", "--show-toplevel"])
        guard top.status == 0 else {
            throw DeployError.badRepository("\(path) is not a git repository (deploy creates one only in a missing or empty directory)")
        }
        let topPath = top.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        guard URL(fileURLWithPath: topPath).resolvingSymlinksInPath().path == URL(fileURLWithPath: path).resolvingSymlinksInPath().path else {
            throw DeployError.badRepository("\(path) is inside the git repository \(topPath), not its top; give the repository itself")
        }
        if clean {
            let status = try git(["status", "--porcelain", "--untracked-files=all"])
            guard status.isEmpty else {
                throw DeployError.badRepository("\(path) has uncommitted changes; commit or discard them first:\n\(status)")
            }
        }
    }

    /// Deployments, oldest first.
    public func deployments() throws -> [DeploymentInfo] {
        try requireRepository(clean: false)
        let refs = try git(["for-each-ref", "--format=%(refname:short)", "refs/tags/\(DeploymentRepository.tagPrefix)*"])
        let headTree = (try? git(["rev-parse", "HEAD^{tree}"])) ?? ""
        var result: [DeploymentInfo] = []
        for tag in refs.split(separator: "\n").map(String.init) {
            guard let number = Int(tag.dropFirst(DeploymentRepository.tagPrefix.count)) else { continue }
            let commit = try git(["rev-parse", "\(tag)^{commit}"])
            let subject = try git(["for-each-ref", "--format=%(contents:subject)", "refs/tags/\(tag)"])
            let tree = try git(["rev-parse", "\(tag)^{tree}"])
            let manifestText = try git(["show", "\(tag):\(Manifest.fileName)"])
            let manifest = try Manifest.decode(Array(manifestText.utf8), origin: "\(tag):\(Manifest.fileName)")
            result.append(DeploymentInfo(tag: tag, number: number, commit: commit, subject: subject,
                                         sourceCommit: manifest.source.commit,
                                         images: manifest.images.map { "\($0.arch)-\($0.variant)" },
                                         isCurrent: tree == headTree))
        }
        return result.sorted { $0.number < $1.number }
    }

    /// Commits a verified pack directory as the next deployment and tags it; returns the tag.
    @discardableResult
    public func deploy(pack: String, message: String? = nil) throws -> String {
        let pack = Files.absolute(pack)
        Progress.step(1, of: 4, "verifying pack \(pack)")
        let manifest = try Verifier.verify(directory: pack)
        Progress.step(2, of: 4, "opening deployment repository \(path)")
        try openOrCreate()
        let number = (try deployments().map(\.number).max() ?? 0) + 1
        let tag = "\(DeploymentRepository.tagPrefix)\(number)"
        Progress.step(3, of: 4, "copying manifest, \(manifest.images.count) images and \(manifest.configs.count) configs")
        for directory in ["images", "config"] { try? FileManager.default.removeItem(atPath: "\(path)/\(directory)") }
        for file in [Manifest.fileName] + manifest.images.map(\.file) + manifest.configs.map(\.file) {
            let target = "\(path)/\(file)"
            try FileManager.default.createDirectory(atPath: (target as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            try? FileManager.default.removeItem(atPath: target)
            try FileManager.default.copyItem(atPath: "\(pack)/\(file)", toPath: target)
        }
        try git(["add", "-A", "."])
        let variants = manifest.images.map { "\($0.arch)-\($0.variant)" }.joined(separator: ", ")
        let subject = message ?? "deploy \(number): \(variants) from \(manifest.source.commit.prefix(12))\(manifest.source.dirty ? " (dirty)" : "")"
        let body = manifest.images.map { "\($0.file) \($0.size) bytes sha256 \($0.sha256)" }.joined(separator: "\n")
        Progress.step(4, of: 4, "committing and tagging \(tag)")
        try git(["commit", "-q", "--allow-empty", "-m", subject, "-m", "source \(manifest.source.commit)\ntoolchain \(manifest.toolchain["swiftc"] ?? "?")\n\(body)"])
        try git(["tag", "-a", tag, "-m", subject])
        return tag
    }

    /// Restores deployment `target` (a tag or number) as a new commit tagged as the next deployment.
    @discardableResult
    public func rollback(to target: String) throws -> String {
        try requireRepository(clean: true)
        let tagName = Int(target) != nil ? "\(DeploymentRepository.tagPrefix)\(target)" : target
        let all = try deployments()
        guard let old = all.first(where: { $0.tag == tagName }) else {
            throw DeployError.badRepository("no deployment \(tagName) (have: \(all.map(\.tag).joined(separator: ", ")))")
        }
        let number = (all.map(\.number).max() ?? 0) + 1
        let tag = "\(DeploymentRepository.tagPrefix)\(number)"
        Progress.step(1, of: 3, "committing the tree of \(old.tag) on top of HEAD")
        let subject = "deploy \(number): rollback to \(old.tag) (\(old.images.joined(separator: ", ")) from \(old.sourceCommit.prefix(12)))"
        let commit = try git(["commit-tree", "\(old.tag)^{tree}", "-p", "HEAD", "-m", subject, "-m", "restores the tree of \(old.tag) (\(old.commit))"])
        Progress.step(2, of: 3, "moving the branch to \(commit.prefix(12)) and updating the work tree")
        try git(["reset", "-q", "--hard", commit])
        Progress.step(3, of: 3, "tagging \(tag) and verifying")
        try git(["tag", "-a", tag, "-m", subject])
        try Verifier.verify(directory: path)
        return tag
    }
}

/// Checks a manifest against its files.
public enum Verifier {
    /// Verifies every image (size, sha256, gzip integrity, raw size/sha256, ELF) and config (size, sha256)
    /// listed in `<directory>/manifest.json`; throws `manifest` listing every mismatch.
    @discardableResult
    public static func verify(directory: String) throws -> Manifest {
        let manifest = try Manifest.load(from: directory)
        var problems: [String] = []
        guard !manifest.images.isEmpty else { throw DeployError.manifest("\(directory)/\(Manifest.fileName) lists no images") }
        func check(_ file: String, size: Int, sha256: String) -> [UInt8]? {
            let before = problems.count
            guard !file.hasPrefix("/"), !file.split(separator: "/").contains("..") else {
                problems.append("\(file): path leaves the deployment"); return nil
            }
            guard let data = FileManager.default.contents(atPath: "\(directory)/\(file)") else {
                problems.append("\(file): missing"); return nil
            }
            let bytes = [UInt8](data)
            if bytes.count != size { problems.append("\(file): size \(bytes.count), manifest says \(size)") }
            let digest = SHA256.hex(bytes)
            if digest != sha256 { problems.append("\(file): sha256 \(digest), manifest says \(sha256)") }
            return problems.count == before ? bytes : nil
        }
        for image in manifest.images {
            guard let bytes = check(image.file, size: image.size, sha256: image.sha256) else { continue }
            do {
                let raw = try Gzip.decompress(bytes)
                if raw.count != image.rawSize { problems.append("\(image.file): uncompressed size \(raw.count), manifest says \(image.rawSize)") }
                if SHA256.hex(raw) != image.rawSha256 { problems.append("\(image.file): uncompressed sha256 differs from the manifest") }
                if !raw.starts(with: [0x7f, 0x45, 0x4c, 0x46]) { problems.append("\(image.file): not an ELF image inside") }
            } catch {
                problems.append("\(image.file): \(error)")
            }
        }
        for config in manifest.configs { _ = check(config.file, size: config.size, sha256: config.sha256) }
        guard problems.isEmpty else {
            throw DeployError.manifest("\(directory) does not match its manifest:\n  " + problems.joined(separator: "\n  "))
        }
        return manifest
    }
}
