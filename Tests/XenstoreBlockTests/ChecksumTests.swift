// CRC32C (Castagnoli) of the block format: the standard check value and slicing-by-8 against a bitwise reference.

import Testing
@testable import XenstoreBlock

@Suite struct ChecksumTests {
    /// One bit at a time, straight from the polynomial: the reference the table-driven code must match.
    static func bitwise(_ bytes: [UInt8]) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        for byte in bytes {
            crc ^= UInt32(byte)
            for _ in 0..<8 { crc = (crc & 1) != 0 ? (crc >> 1) ^ 0x82F6_3B78 : crc >> 1 }
        }
        return crc ^ 0xFFFF_FFFF
    }

    @Test func standardCheckValue() {
        let digits = Array("123456789".utf8)
        #expect(CRC32C.checksum(digits, 0..<digits.count) == 0xE306_9283)
        #expect(CRC32C.checksum([], 0..<0) == 0)
    }

    @Test func everyLengthAndOffsetMatchesTheBitwiseReference() {
        var state: UInt64 = 0x1234_5678
        let bytes: [UInt8] = (0..<300).map { _ in
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return UInt8(truncatingIfNeeded: state >> 33)
        }
        for start in 0..<9 {
            for end in start...bytes.count where (end - start) % 7 == 0 || end - start < 20 {
                #expect(CRC32C.checksum(bytes, start..<end) == Self.bitwise(Array(bytes[start..<end])))
            }
        }
    }
}
