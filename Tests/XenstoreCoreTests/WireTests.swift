// Golden vectors for the wire codec: header bytes, framing of chunked streams, error payloads, payload helpers.

import Testing
import XenstoreWire

@Suite struct WireTests {
    @Test func headerEncodesLittleEndianByteExact() {
        let header = MessageHeader(type: 11, requestID: 0x0102_0304, transactionID: 7, length: 5)
        var out: [UInt8] = []
        header.encode(into: &out)
        #expect(out == [0x0B, 0, 0, 0, 0x04, 0x03, 0x02, 0x01, 0x07, 0, 0, 0, 0x05, 0, 0, 0])
        #expect(MessageHeader(decoding: out, at: 0) == header)
        // Decoding at an offset inside a larger buffer.
        let shifted: [UInt8] = [0xAA, 0xBB] + out
        #expect(MessageHeader(decoding: shifted, at: 2) == header)
        // All-ones fields.
        let big = MessageHeader(type: 0xFFFF, requestID: 0xFFFF_FFFF, transactionID: 0x8000_0001, length: 4096)
        var bigOut: [UInt8] = []
        big.encode(into: &bigOut)
        #expect(bigOut == [0xFF, 0xFF, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0x01, 0, 0, 0x80, 0x00, 0x10, 0, 0])
        #expect(MessageHeader(decoding: bigOut, at: 0) == big)
    }

    @Test func messageEncodingGolden() {
        let message = Message(.read, requestID: 1, transactionID: 0, payload: b("/a") + [0])
        #expect(message.encoded == [2, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 0x2F, 0x61, 0])
        #expect(message.knownType == .read)
        #expect(Message(type: 99, requestID: 0, transactionID: 0, payload: []).knownType == nil)
        #expect(MessageType.transactionEnd.rawValue == 7)
        #expect(MessageType.directoryPart.rawValue == 22)
        #expect(MessageType.setQuota.rawValue == 26)
        #expect(s(Payload.bytes(MessageType.transactionStart.name)) == "TRANSACTION_START")
    }

    @Test func decoderOneByteAtATime() throws {
        let first = Message(.write, requestID: 9, transactionID: 3, payload: b("/x") + [0] + b("value"))
        let second = Message(.read, requestID: 10, transactionID: 0, payload: b("/x") + [0])
        let stream = first.encoded + second.encoded
        var decoder = FrameDecoder()
        var out: [Message] = []
        for (index, byte) in stream.enumerated() {
            let got = try decoder.feed([byte])
            out += got
            if index == first.encoded.count - 1 {
                #expect(got == [first])
                #expect(!decoder.hasPartialMessage)
            } else if index < first.encoded.count - 1 {
                #expect(got.isEmpty)
                #expect(decoder.hasPartialMessage)
            }
        }
        #expect(out == [first, second])
        #expect(decoder.bytesWanted == 16)
    }

    @Test func decoderBytesWantedTracksHeaderThenPayload() throws {
        let message = Message(.write, requestID: 1, transactionID: 0, payload: [1, 2, 3, 4])
        var decoder = FrameDecoder()
        _ = try decoder.feed(message.encoded.prefix(10))
        #expect(decoder.bytesWanted == 6)
        _ = try decoder.feed(message.encoded[10..<16])
        #expect(decoder.bytesWanted == 4)
        #expect(decoder.partial.count == 16)
        // Resume from persisted partial state.
        var resumed = FrameDecoder(partial: decoder.partial)
        #expect(try resumed.feed(message.encoded[16...]) == [message])
    }

    @Test func decoderSeveralMessagesInOneChunk() throws {
        let messages = (0..<5).map { i in
            Message(type: UInt32(i), requestID: UInt32(100 + i), transactionID: UInt32(i * 2),
                    payload: Array(repeating: UInt8(0x41 + i), count: i * 3))
        }
        var chunk: [UInt8] = []
        for m in messages { chunk += m.encoded }
        let partialNext = Message(.read, requestID: 7, transactionID: 0, payload: b("/abc") + [0])
        chunk += partialNext.encoded.prefix(5)
        var decoder = FrameDecoder()
        let got = try decoder.feed(chunk)
        #expect(got == messages)
        #expect(got[0].payload.isEmpty)  // a zero-length payload completes at its header
        #expect(decoder.hasPartialMessage)
        #expect(try decoder.feed(partialNext.encoded.dropFirst(5)) == [partialNext])
        #expect(try decoder.feed([UInt8]()).isEmpty)
    }

    @Test func decoderRejectsOversizedLength() throws {
        var header: [UInt8] = []
        MessageHeader(type: 11, requestID: 1, transactionID: 0, length: 4097).encode(into: &header)
        var decoder = FrameDecoder()
        #expect(throws: FramingError.payloadTooLarge(4097)) { _ = try decoder.feed(header) }
        // One byte at a time: throws exactly when the 16th byte arrives.
        var slow = FrameDecoder()
        for byte in header.prefix(15) { #expect(try slow.feed([byte]).isEmpty) }
        #expect(throws: FramingError.payloadTooLarge(4097)) { _ = try slow.feed([header[15]]) }
        // 4096 is allowed.
        let maxMessage = Message(.write, requestID: 2, transactionID: 0, payload: Array(repeating: 0x61, count: 4096))
        var ok = FrameDecoder()
        #expect(try ok.feed(maxMessage.encoded) == [maxMessage])
        // Huge lengths too.
        var huge: [UInt8] = []
        MessageHeader(type: 2, requestID: 1, transactionID: 0, length: 0xFFFF_FFFF).encode(into: &huge)
        var decoder2 = FrameDecoder()
        #expect(throws: FramingError.payloadTooLarge(0xFFFF_FFFF)) { _ = try decoder2.feed(huge) }
    }

    @Test func errorPayloadsAndOrder() {
        #expect(XenstoreError.EINVAL.payload == b("EINVAL") + [0])
        #expect(XenstoreError.EAGAIN.payload == b("EAGAIN") + [0])
        #expect(XenstoreError.E2BIG.payload == b("E2BIG") + [0])
        let names = XenstoreError.allCases.map { s(Payload.bytes($0.name)) }
        #expect(names == ["EINVAL", "EACCES", "EEXIST", "EISDIR", "ENOENT", "ENOMEM", "ENOSPC", "EIO", "ENOTEMPTY",
                          "ENOSYS", "EROFS", "EBUSY", "EAGAIN", "EISCONN", "E2BIG", "EPERM"])
        for (index, error) in XenstoreError.allCases.enumerated() {
            #expect(Int(error.rawValue) == index)
            #expect(XenstoreError(payload: error.payload) == error)
            #expect(XenstoreError(payload: Array(error.payload.dropLast())) == error)
        }
        #expect(XenstoreError(payload: b("EQUOTA") + [0]) == nil)
        #expect(XenstoreError(payload: []) == nil)
        #expect(XenstoreError(payload: b("EINVAL") + [0, 0]) == nil)
    }

    @Test func payloadStringsAndJoin() {
        let split = Payload.strings(b("a") + [0] + b("bc") + [0] + [0] + b("tail"))
        #expect(split.strings == [b("a"), b("bc"), []])
        #expect(split.trailing == b("tail"))
        let empty = Payload.strings([])
        #expect(empty.strings.isEmpty && empty.trailing.isEmpty)
        #expect(Payload.strings([0]).strings == [[]])
        #expect(Payload.join([b("x"), [], b("yz")]) == [0x78, 0, 0, 0x79, 0x7A, 0])
        #expect(Payload.join([]) == [])
        #expect(Payload.ok == b("OK") + [0])
        #expect(Payload.bytes("héllo") == b("héllo"))
    }

    @Test func payloadDecimals() {
        #expect(Payload.decimal(0) == b("0"))
        #expect(Payload.decimal(UInt32(42)) == b("42"))
        #expect(Payload.decimal(UInt32.max) == b("4294967295"))
        #expect(Payload.decimal(UInt64.max) == b("18446744073709551615"))
        #expect(Payload.parseDecimal(b("0")) == 0)
        #expect(Payload.parseDecimal(b("4294967296")) == 4_294_967_296)
        #expect(Payload.parseDecimal(b("")) == nil)
        #expect(Payload.parseDecimal(b("12a")) == nil)
        #expect(Payload.parseDecimal(b("-1")) == nil)
        #expect(Payload.parseDecimal(b("+1")) == nil)
        #expect(Payload.parseDecimal(b("99999999999999999999")) == nil)  // 20 digits
        #expect(Payload.parseDecimal(b("9999999999999999999")) == 9_999_999_999_999_999_999)
        #expect(Payload.parseLeadingDecimal(b("12abc")) == 12)
        #expect(Payload.parseLeadingDecimal(b("abc")) == 0)
        #expect(Payload.parseLeadingDecimal(b("")) == 0)
        #expect(Payload.parseLeadingDecimal(b("99999999999999999999999")) == UInt64.max)
    }
}
