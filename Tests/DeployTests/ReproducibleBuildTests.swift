// Two clean `make image` builds of the tracked sources, in two different directories, give identical bytes.
import DeployKit
import Foundation
import Testing

@Suite struct ReproducibleBuildTests {
    init() { Progress.enabled = false }

    @Test(.timeLimit(.minutes(10))) func twoCleanBuildsAreByteIdentical() throws {
        let root = try temporaryDirectory("repro")
        defer { cleanup(root) }
        let dirs = ["\(root)/one", "\(root)/two/with/a/longer/path"]
        var images: [[String: [UInt8]]] = []
        for dir in dirs {
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            // The working tree (tracked + untracked, not ignored: nothing from build/ or .build/), limited to
            // what `make image` reads.
            try sh(["sh", "-c", "cd \"$1\" && git ls-files -z --cached --others --exclude-standard -- Makefile mk Sources Runtime Linker | tar --ignore-failed-read --null -T - -cf - | tar -xf - -C \"$2\"", "sh", packageRoot, dir])
            let build = try Shell.run(["make", "-C", dir, "--no-print-directory", "image"])
            #expect(build.status == 0, "make image in \(dir) failed:\n\(build.stdout)\n\(build.stderr)")
            try #require(build.status == 0)
            var built: [String: [UInt8]] = [:]
            for kind in ImageKind.buildable { built[kind.imageName] = try Files.read("\(dir)/build/\(kind.imageName)") }
            images.append(built)
        }
        for kind in ImageKind.buildable {
            let a = try #require(images[0][kind.imageName]), b = try #require(images[1][kind.imageName])
            #expect(a.count > 100_000, "\(kind.imageName) is suspiciously small")
            // Booleans first, so a failure prints two digests and an offset, not 250 KB of bytes.
            let identical = a == b
            let firstDifference = zip(a, b).enumerated().first { $0.element.0 != $0.element.1 }?.offset ?? min(a.count, b.count)
            #expect(identical, "\(kind.imageName) differs at byte \(firstDifference): \(SHA256.hex(a)) (\(a.count) bytes) vs \(SHA256.hex(b)) (\(b.count) bytes)")
            // No build path leaked into the image.
            let leaksPath = String(decoding: a, as: UTF8.self).contains(root)
            #expect(!leaksPath, "\(kind.imageName) contains the build directory \(root)")
            // Packing is deterministic too: same compressed bytes.
            let packedIdentical = try Gzip.compress(a) == (try Gzip.compress(b))
            #expect(packedIdentical, "gzip of \(kind.imageName) differs")
        }
    }
}
