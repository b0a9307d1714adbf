// SHA-256 against FIPS vectors and sha256sum; gzip output deterministic and readable by the real gzip.
import DeployKit
import Foundation
import Testing

@Suite struct PrimitivesTests {
    init() { Progress.enabled = false }

    @Test func sha256KnownVectors() {
        #expect(SHA256.hex([UInt8]()) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(SHA256.hex(Array("abc".utf8)) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(SHA256.hex(Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8))
                == "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
    }

    @Test func sha256MatchesSha256sum() throws {
        let dir = try temporaryDirectory("sha")
        defer { cleanup(dir) }
        for size in [0, 55, 56, 63, 64, 65, 1000, 100_003] {
            let bytes = fakeImage(seed: UInt8(size % 251), size: size)
            try Files.write(bytes, to: "\(dir)/f")
            #expect(SHA256.hex(bytes) == (try sha256sum("\(dir)/f")), "size \(size)")
        }
    }

    @Test func gzipIsDeterministicAndReadableByGzip() throws {
        let dir = try temporaryDirectory("gz")
        defer { cleanup(dir) }
        let raw = fakeImage(seed: 7, size: 300_000)
        let first = try Gzip.compress(raw)
        #expect(first == (try Gzip.compress(raw)))
        #expect(Array(first.prefix(8)) == [0x1f, 0x8b, 8, 0, 0, 0, 0, 0], "gzip magic, deflate, no flags, mtime 0")
        #expect(first.count < raw.count)
        try Files.write(first, to: "\(dir)/image.gz")
        try sh(["gzip", "-t", "\(dir)/image.gz"])
        try sh(["gzip", "-d", "-k", "\(dir)/image.gz"])
        #expect(try Files.read("\(dir)/image") == raw)
        // And the other direction: our inflate reads `gzip -n` output.
        try Files.write(raw, to: "\(dir)/other")
        try sh(["gzip", "-n", "-9", "\(dir)/other"])
        #expect(try Gzip.decompress(try Files.read("\(dir)/other.gz")) == raw)
    }

    @Test func gzipRejectsCorruption() throws {
        var packed = try Gzip.compress(fakeImage(seed: 3))
        packed[packed.count - 6] ^= 0xff  // CRC32 trailer
        #expect(throws: DeployError.self) { try Gzip.decompress(packed) }
        #expect(throws: DeployError.self) { try Gzip.decompress(Array(packed.prefix(packed.count / 2))) }
    }
}
