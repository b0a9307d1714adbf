// Helpers for the deployment tests: temporary directories, a fake source tree with fake images, git queries.
import DeployKit
import Foundation
import Testing

/// The package root (this file is Tests/DeployTests/Support.swift).
let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path

/// A fresh temporary directory, removed by `cleanup`.
func temporaryDirectory(_ label: String) throws -> String {
    let path = NSTemporaryDirectory() + "xsdeploy-\(label)-\(UUID().uuidString.prefix(8))"
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}

/// Removes a temporary directory.
func cleanup(_ path: String) { try? FileManager.default.removeItem(atPath: path) }

/// Runs a command and returns trimmed stdout; records a test failure (and throws) on a non-zero exit.
@discardableResult
func sh(_ arguments: [String], in directory: String? = nil) throws -> String {
    try Shell.check(arguments, in: directory)
}

/// Fixed flags so these tests do not depend on mk/deploy.mk.
let fakeFlags = ["swift": "-Osize", "c": "-Os", "ld": "-static", "layout": "single"]

/// An ELF-looking image: the ELF magic and then `seed`-dependent bytes.
func fakeImage(seed: UInt8, size: Int = 20_000) -> [UInt8] {
    var bytes: [UInt8] = [0x7f, 0x45, 0x4c, 0x46, 2, 1, 1, 0]
    var x = UInt32(seed) &* 2654435761 &+ 1
    while bytes.count < size { x = x &* 1664525 &+ 1013904223; bytes.append(UInt8(truncatingIfNeeded: x >> 24) & 0x3f) }
    return bytes
}

/// A git work tree shaped like the project (image inputs + build/ images), committed once.
struct FakeSource {
    let path: String

    init(in root: String, seed: UInt8) throws {
        path = "\(root)/src"
        for file in ["Sources/XenstoreWire/Wire.swift", "Runtime/main.c", "mk/image.mk"] {
            try Files.write("// \(file)\n", to: "\(path)/\(file)")
        }
        try Files.write("build/\n", to: "\(path)/.gitignore")
        try sh(["git", "init", "-q", "-b", "main", path])
        try commit("source 1")
        try writeImages(seed: seed)
    }

    /// Writes both x86_64 images derived from `seed`.
    func writeImages(seed: UInt8) throws {
        try Files.write(fakeImage(seed: seed), to: "\(path)/build/xenstore-stubdom-x86_64-pvh")
        try Files.write(fakeImage(seed: seed &+ 100), to: "\(path)/build/xenstore-stubdom-x86_64-pv")
    }

    /// Commits everything.
    func commit(_ message: String) throws {
        try sh(["git", "-C", path, "add", "-A"])
        try sh(["git", "-c", "user.name=t", "-c", "user.email=t@t", "-C", path, "commit", "-q", "-m", message])
    }

    /// Packs into `out` (and writes configs there), returning the manifest.
    @discardableResult
    func pack(into out: String, allowDirty: Bool = false, swiftc: String = "swiftc") throws -> Manifest {
        var options = PackOptions(sourceDirectory: path, outputDirectory: out)
        options.buildFlags = fakeFlags
        options.swiftc = swiftc
        options.allowDirty = allowDirty
        try Packer.pack(options)
        try XenConfig.generate(ConfigOptions(packDirectory: out), xlParser: nil)
        return try Manifest.load(from: out)
    }
}

/// `sha256sum FILE`'s digest: an independent check of our SHA-256.
func sha256sum(_ path: String) throws -> String {
    String(try sh(["sha256sum", path]).prefix(64))
}

/// Builds scripts/xlcfg-check.c (libxlutil) into `directory`; needs libxen-dev (`make packages` installs it).
func buildXLParser(into directory: String) throws -> String {
    let output = "\(directory)/xlcfg-check"
    let result = try Shell.run(["cc", "-O1", "-o", output, "\(packageRoot)/scripts/xlcfg-check.c", "-lxlutil", "-lxenlight"])
    guard result.status == 0 else {
        throw DeployError.missingTool("cannot build the libxlutil helper (install libxen-dev: make packages): \(result.stderr)")
    }
    return output
}
