// The deployment manifest (manifest.json): what was built, from which commit, with which toolchain and
// flags, and the size and SHA-256 of every file it lists. It has no timestamps, so a pack is reproducible.
import Foundation

/// One compressed image in a pack or deployment.
public struct ImageEntry: Codable, Equatable {
    /// CPU architecture, e.g. `x86_64`.
    public var arch: String
    /// Boot variant, `pvh` or `pv`.
    public var variant: String
    /// Path relative to the manifest, e.g. `images/xenstore-stubdom-x86_64-pvh.gz`.
    public var file: String
    /// Compression of `file` (always `gzip`).
    public var compression: String
    /// Size of `file` in bytes.
    public var size: Int
    /// SHA-256 of `file`.
    public var sha256: String
    /// Size of the uncompressed ELF image.
    public var rawSize: Int
    /// SHA-256 of the uncompressed ELF image (what `make image` produced).
    public var rawSha256: String
}

/// A generated configuration file covered by the manifest.
public struct FileEntry: Codable, Equatable {
    /// Path relative to the manifest.
    public var file: String
    /// Size in bytes.
    public var size: Int
    /// SHA-256 of the file.
    public var sha256: String
}

/// Where the images came from.
public struct SourceInfo: Codable, Equatable {
    /// The source commit (`git rev-parse HEAD`).
    public var commit: String
    /// Whether the image inputs had uncommitted changes (only with `--allow-dirty`).
    public var dirty: Bool
}

/// The whole manifest.
public struct Manifest: Codable, Equatable {
    /// Format tag, `xsdeploy-manifest/1`.
    public var format: String = Manifest.currentFormat
    /// Source commit.
    public var source: SourceInfo
    /// First line of `swiftc --version` (and the C compiler / linker versions).
    public var toolchain: [String: String]
    /// The image build flags as mk/image.mk used them (swift, c, ld, opt, layout, heapPages).
    public var buildFlags: [String: String]
    /// The images, in a fixed order.
    public var images: [ImageEntry]
    /// Generated configs (filled in by `config`/`deploy`).
    public var configs: [FileEntry] = []

    /// The format tag written by this version.
    public static let currentFormat = "xsdeploy-manifest/1"
    /// The manifest's file name inside a pack or deployment.
    public static let fileName = "manifest.json"

    /// Creates a manifest.
    public init(source: SourceInfo, toolchain: [String: String], buildFlags: [String: String],
                images: [ImageEntry], configs: [FileEntry] = []) {
        self.source = source
        self.toolchain = toolchain
        self.buildFlags = buildFlags
        self.images = images
        self.configs = configs
    }

    /// Stable JSON: sorted keys, pretty-printed, trailing newline.
    public func encoded() throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return Array(try encoder.encode(self)) + [0x0a]
    }

    /// Reads `manifest.json` from `directory`.
    public static func load(from directory: String) throws -> Manifest {
        let path = "\(directory)/\(fileName)"
        guard let data = FileManager.default.contents(atPath: path) else {
            throw DeployError.manifest("no \(fileName) in \(directory)")
        }
        return try decode(Array(data), origin: path)
    }

    /// Decodes manifest bytes; `origin` names them in errors.
    public static func decode(_ bytes: [UInt8], origin: String) throws -> Manifest {
        let manifest: Manifest
        do { manifest = try JSONDecoder().decode(Manifest.self, from: Data(bytes)) } catch {
            throw DeployError.manifest("\(origin) is not a valid manifest: \(error)")
        }
        guard manifest.format == currentFormat else {
            throw DeployError.manifest("\(origin) has format \(manifest.format), expected \(currentFormat)")
        }
        return manifest
    }

    /// Writes `manifest.json` into `directory`.
    public func save(to directory: String) throws {
        try Files.write(try encoded(), to: "\(directory)/\(Manifest.fileName)")
    }
}
