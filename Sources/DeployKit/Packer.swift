// `xsdeploy pack`: reads the built images, records source commit, toolchain and flags, writes gzip images
// and manifest.json into a pack directory.
import Foundation

/// One image kind: an architecture and a boot variant.
public struct ImageKind: Hashable, CustomStringConvertible {
    /// CPU architecture (`x86_64`, `arm32`).
    public var arch: String
    /// Boot variant (`pvh`, `pv`).
    public var variant: String

    /// Creates an image kind.
    public init(arch: String, variant: String) { self.arch = arch; self.variant = variant }

    /// Parses `x86_64-pvh` style names.
    public init?(_ text: String) {
        guard let dash = text.lastIndex(of: "-") else { return nil }
        arch = String(text[..<dash]); variant = String(text[text.index(after: dash)...])
        guard !arch.isEmpty, !variant.isEmpty else { return nil }
    }

    /// `x86_64-pvh`.
    public var description: String { "\(arch)-\(variant)" }
    /// The file name `make image` writes: `xenstore-stubdom-x86_64-pvh`.
    public var imageName: String { "xenstore-stubdom-\(description)" }

    /// Every kind `make image` builds today, in manifest order.
    public static let buildable: [ImageKind] = [ImageKind(arch: "x86_64", variant: "pvh"), ImageKind(arch: "x86_64", variant: "pv")]
    /// Kinds the project builds but does not pack: `make image ARCH=arm32` makes a zImage that runs as an
    /// ordinary guest (docs/stubdom-arm.md), not an init-xenstore-domain ELF image.
    public static let planned: [ImageKind] = [ImageKind(arch: "arm32", variant: "pvh")]
}

/// Inputs of `pack`.
public struct PackOptions {
    /// The source tree (a git work tree with mk/image.mk).
    public var sourceDirectory: String
    /// Where the built images are (default `<source>/build`).
    public var imageDirectory: String
    /// The pack directory to write.
    public var outputDirectory: String
    /// Which images to pack.
    public var kinds: [ImageKind] = ImageKind.buildable
    /// Pack even if the image inputs have uncommitted changes (recorded as `dirty: true`).
    public var allowDirty = false
    /// Build flags; nil asks `make -f mk/deploy.mk deploy-print-flags` in the source tree.
    public var buildFlags: [String: String]?
    /// The Swift compiler whose version is recorded; nil takes `swiftc` from buildFlags or PATH.
    public var swiftc: String?

    /// Creates options with the default image directory `<source>/build`.
    public init(sourceDirectory: String, outputDirectory: String) {
        self.sourceDirectory = sourceDirectory
        self.imageDirectory = "\(sourceDirectory)/build"
        self.outputDirectory = outputDirectory
    }
}

/// Writes packs.
public enum Packer {
    /// The paths (relative to the source tree) that go into an image; a change there makes the tree dirty.
    public static let imageInputs = ["Sources/XenstoreWire", "Sources/XenstoreStore", "Sources/XenstoreServer",
                                     "Sources/XenstoreBlock", "Sources/XenstoredImage", "Runtime", "Linker", "mk/image.mk"]

    /// The commit of `directory` and whether the image inputs differ from it (tracked changes or new files).
    public static func sourceState(_ directory: String) throws -> SourceInfo {
        let inside = try Shell.run(["git", "-C", directory, "rev-parse", "--is-inside-work-tree"])
        guard inside.status == 0 else {
            throw DeployError.dirtySourceTree("\(directory) is not a git work tree; the manifest needs a source commit")
        }
        let commit = try Shell.check(["git", "-C", directory, "rev-parse", "HEAD"])
        let status = try Shell.check(["git", "-C", directory, "status", "--porcelain", "--untracked-files=all", "--"] + imageInputs)
        return SourceInfo(commit: commit, dirty: !status.isEmpty)
    }

    /// The build flags mk/image.mk uses, as `key=value` lines printed by `make -f mk/deploy.mk deploy-print-flags`.
    public static func buildFlags(_ directory: String) throws -> [String: String] {
        guard Files.exists("\(directory)/mk/deploy.mk") else {
            throw DeployError.missingTool("\(directory)/mk/deploy.mk not found (needed to read the image build flags)")
        }
        let output = try Shell.check(["make", "-s", "--no-print-directory", "-f", "mk/deploy.mk", "deploy-print-flags"], in: directory)
        return parseFlags(output)
    }

    /// Parses `key=value` lines (blank and `#` lines ignored).
    public static func parseFlags(_ text: String) -> [String: String] {
        var flags: [String: String] = [:]
        for line in text.split(separator: "\n") {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            guard !trimmed.isEmpty, !trimmed.hasPrefix("#"), let eq = trimmed.firstIndex(of: "=") else { continue }
            flags[String(trimmed[..<eq])] = String(trimmed[trimmed.index(after: eq)...])
                .split(separator: " ", omittingEmptySubsequences: true).joined(separator: " ")
        }
        return flags
    }

    /// First line of `<tool> --version`, or `missingTool`.
    public static func toolVersion(_ tool: String) throws -> String {
        guard Shell.which(tool) != nil else {
            throw DeployError.missingTool("\(tool) not found; install the Swift toolchain (/opt/swift) or set IMAGE_TOOLCHAIN")
        }
        let result = try Shell.run([tool, "--version"])
        guard result.status == 0 else { throw DeployError.missingTool("\(tool) --version failed: \(result.stderr)") }
        return String((result.stdout + result.stderr).split(separator: "\n").first ?? "")
    }

    /// Packs the images: checks the tree and toolchain, compresses each image, writes manifest.json.
    @discardableResult
    public static func pack(_ options: PackOptions) throws -> Manifest {
        let total = 3 + options.kinds.count
        Progress.step(1, of: total, "checking source tree \(options.sourceDirectory)")
        let source = try sourceState(options.sourceDirectory)
        if source.dirty && !options.allowDirty {
            let changed = try Shell.check(["git", "-C", options.sourceDirectory, "status", "--short", "--untracked-files=all", "--"] + imageInputs)
            throw DeployError.dirtySourceTree("uncommitted changes in the image inputs (commit them, or pass --allow-dirty):\n\(changed)")
        }
        Progress.note("commit \(source.commit)\(source.dirty ? " (dirty)" : "")")

        Progress.step(2, of: total, "reading toolchain version and build flags")
        let flags = try options.buildFlags ?? buildFlags(options.sourceDirectory)
        let swiftc = options.swiftc ?? flags["swiftc"] ?? "swiftc"
        var toolchain = ["swiftc": try toolVersion(swiftc)]
        for (key, tool) in [("clang", flags["cc"]), ("ld.lld", flags["ld_tool"])] {
            if let tool, !tool.isEmpty, let version = try? toolVersion(tool) { toolchain[key] = version }
        }
        Progress.note(toolchain["swiftc"] ?? "")

        for kind in options.kinds where !ImageKind.buildable.contains(kind) {
            if ImageKind.planned.contains(where: { $0.arch == kind.arch }) {
                throw DeployError.missingImage("\(kind): not packed: the \(kind.arch) image (make image ARCH=\(kind.arch)) is a zImage run as an ordinary guest, not an init-xenstore-domain image (docs/stubdom-arm.md); packable: \(ImageKind.buildable.map(\.description).joined(separator: ", "))")
            }
            throw DeployError.missingImage("\(kind): unknown image kind")
        }
        for kind in options.kinds where !Files.exists("\(options.imageDirectory)/\(kind.imageName)") {
            throw DeployError.missingImage("\(options.imageDirectory)/\(kind.imageName) does not exist; run `make images` first")
        }
        let imagesDirectory = "\(options.outputDirectory)/images"
        try? FileManager.default.removeItem(atPath: imagesDirectory)
        var entries: [ImageEntry] = []
        for (index, kind) in options.kinds.enumerated() {
            let path = "\(options.imageDirectory)/\(kind.imageName)"
            Progress.step(3 + index, of: total, "compressing \(path)")
            guard let data = FileManager.default.contents(atPath: path) else {
                throw DeployError.missingImage("\(path) does not exist; run `make images` first")
            }
            let raw = [UInt8](data)
            guard raw.starts(with: [0x7f, 0x45, 0x4c, 0x46]) else { throw DeployError.missingImage("\(path) is not an ELF image") }
            let compressed = try Gzip.compress(raw)
            let file = "images/\(kind.imageName).gz"
            try Files.write(compressed, to: "\(options.outputDirectory)/\(file)")
            entries.append(ImageEntry(arch: kind.arch, variant: kind.variant, file: file, compression: "gzip",
                                      size: compressed.count, sha256: SHA256.hex(compressed),
                                      rawSize: raw.count, rawSha256: SHA256.hex(raw)))
            Progress.note("\(raw.count) -> \(compressed.count) bytes, sha256 \(SHA256.hex(compressed).prefix(16))…")
        }
        let manifest = Manifest(source: source, toolchain: toolchain, buildFlags: flags, images: entries)
        Progress.step(total, of: total, "writing \(options.outputDirectory)/\(Manifest.fileName)")
        try manifest.save(to: options.outputDirectory)
        return manifest
    }
}
