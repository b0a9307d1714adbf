// Incremental framing: turns a byte stream (socket or ring) into whole messages, keeping partial ones.

/// Why a byte stream can no longer be framed; the connection must be closed (C xenstored does the same).
public enum FramingError: Error, Equatable, Sendable {
    /// The header announced a payload larger than `Limits.payloadMax`.
    case payloadTooLarge(UInt32)
}

/// Reassembles messages from arbitrary chunks of a byte stream.
///
/// The decoder holds at most one partial message (at most `Limits.headerSize + Limits.payloadMax`
/// bytes); its state is plain data so that it can be persisted and restored across a restart.
public struct FrameDecoder: Sendable {
    /// Bytes of the message currently being received (header first, then payload).
    public private(set) var partial: [UInt8] = []

    /// Creates an empty decoder, or one resuming from a persisted partial message.
    public init(partial: [UInt8] = []) {
        self.partial = partial
    }

    /// Whether a message has been started but not completed.
    public var hasPartialMessage: Bool { !partial.isEmpty }

    /// Number of bytes still needed to complete the current header or message.
    public var bytesWanted: Int {
        if partial.count < Limits.headerSize { return Limits.headerSize - partial.count }
        let header = MessageHeader(decoding: partial, at: 0)
        return Limits.headerSize + Int(header.length) - partial.count
    }

    /// Feeds bytes; returns every message completed by them, in order.
    ///
    /// Throws as soon as a header announces an oversized payload; the bytes after it are not looked at.
    public mutating func feed<C: Collection>(_ bytes: C) throws(FramingError) -> [Message] where C.Element == UInt8 {
        var messages: [Message] = []
        try feed(bytes, into: &messages)
        return messages
    }

    /// Feeds bytes, appending every completed message to `messages`; the messages completed
    /// before an oversized header are kept, so a server can answer them before disconnecting.
    public mutating func feed<C: Collection>(_ bytes: C, into messages: inout [Message]) throws(FramingError)
    where C.Element == UInt8 {
        // Arrays, slices and buffers (every shell's reads) go through the concrete loop below:
        // called from another module this generic function is not specialized, and the generic
        // loop costs several thousand instructions per message.
        var failure: FramingError? = nil
        let contiguous: Void? = bytes.withContiguousStorageIfAvailable { buffer in
            do throws(FramingError) { try feedBuffer(buffer, into: &messages) } catch { failure = error }
        }
        if let failure { throw failure }
        if contiguous != nil { return }
        try feedBuffer(bytes, into: &messages)
    }

    /// The framing loop, for any collection (specialized for buffers above).
    mutating func feedBuffer<C: Collection>(_ bytes: C, into messages: inout [Message]) throws(FramingError)
    where C.Element == UInt8 {
        var index = bytes.startIndex
        while index != bytes.endIndex {
            let want = bytesWanted
            let available = bytes.distance(from: index, to: bytes.endIndex)
            let take = min(want, available)
            let end = bytes.index(index, offsetBy: take)
            partial.append(contentsOf: bytes[index..<end])
            index = end
            if partial.count == Limits.headerSize {
                let header = MessageHeader(decoding: partial, at: 0)
                if header.length > UInt32(Limits.payloadMax) {
                    partial.removeAll()
                    throw .payloadTooLarge(header.length)
                }
            }
            if partial.count >= Limits.headerSize && bytesWanted == 0 {
                let header = MessageHeader(decoding: partial, at: 0)
                let payload = Array(partial[Limits.headerSize...])
                messages.append(Message(type: header.type, requestID: header.requestID,
                                        transactionID: header.transactionID, payload: payload))
                partial.removeAll(keepingCapacity: true)
            }
        }
    }
}

/// Helpers for the NUL-separated string payloads of requests and replies.
public enum Payload {
    /// Splits a payload at NULs into the NUL-terminated strings it contains.
    ///
    /// Bytes after the last NUL are returned separately as `trailing` (C xenstored ignores them
    /// for most requests; WRITE uses everything after the first NUL as the value).
    public static func strings(_ payload: [UInt8]) -> (strings: [[UInt8]], trailing: [UInt8]) {
        var result: [[UInt8]] = []
        var start = 0
        var index = 0
        while index < payload.count {
            if payload[index] == 0 {
                result.append(Array(payload[start..<index]))
                start = index + 1
            }
            index += 1
        }
        return (result, Array(payload[start..<payload.count]))
    }

    /// Joins strings, terminating each with a NUL.
    public static func join(_ parts: [[UInt8]]) -> [UInt8] {
        var out: [UInt8] = []
        for part in parts {
            out.append(contentsOf: part)
            out.append(0)
        }
        return out
    }

    /// The `OK\0` payload of a plain acknowledgement.
    public static let ok: [UInt8] = [0x4F, 0x4B, 0]

    /// Encodes an unsigned decimal number as ASCII digits.
    public static func decimal<T: BinaryInteger>(_ value: T) -> [UInt8] {
        if value == 0 { return [0x30] }
        var digits: [UInt8] = []
        var remaining = value
        while remaining > 0 {
            digits.append(0x30 + UInt8(truncatingIfNeeded: remaining % 10))
            remaining /= 10
        }
        return digits.reversed()
    }

    /// Parses a non-negative decimal number made only of digits; nil on anything else or overflow.
    public static func parseDecimal(_ bytes: [UInt8]) -> UInt64? {
        if bytes.isEmpty || bytes.count > 19 { return nil }
        var value: UInt64 = 0
        for byte in bytes {
            guard byte >= 0x30 && byte <= 0x39 else { return nil }
            value = value * 10 + UInt64(byte - 0x30)
        }
        return value
    }

    /// Parses like C's `atoi`/`strtoul` prefix rule: leading digits, 0 if there are none.
    public static func parseLeadingDecimal(_ bytes: [UInt8]) -> UInt64 {
        var value: UInt64 = 0
        for byte in bytes {
            guard byte >= 0x30 && byte <= 0x39 else { break }
            let (product, overflow1) = value.multipliedReportingOverflow(by: 10)
            let (sum, overflow2) = product.addingReportingOverflow(UInt64(byte - 0x30))
            if overflow1 || overflow2 { return UInt64.max }
            value = sum
        }
        return value
    }

    /// Bytes of a string literal (ASCII).
    public static func bytes(_ text: StaticString) -> [UInt8] {
        var out: [UInt8] = []
        text.withUTF8Buffer { out.append(contentsOf: $0) }
        return out
    }
}
