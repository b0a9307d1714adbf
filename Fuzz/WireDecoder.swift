// libFuzzer target: the wire FrameDecoder and payload helpers on arbitrary bytes split at arbitrary points.

// Input layout: byte 0 picks a chunking seed; the rest is the byte stream. The stream is fed
// (a) in one piece and (b) in chunks whose sizes come from the seed. Checked:
// - both feedings give the same messages and the same framing outcome (split points do not matter);
// - framing fails exactly when some header announces more than Limits.payloadMax bytes, and
//   the messages before that header are still returned;
// - every message has header.length == payload.count <= Limits.payloadMax, and re-encoding the
//   messages reproduces the consumed bytes exactly; the partial message left over is the rest;
// - bytesWanted is always in 1...headerSize+payloadMax and the partial never reaches a whole message;
// - Payload.strings/join round-trip and the decimal parsers agree with a reference.

/// Stops the run with a message: libFuzzer records the input that got here as a crash.
func fuzzFail(_ message: StaticString, file: StaticString = #file, line: UInt = #line) -> Never {
    fatalError("fuzz invariant violated: \(message)", file: file, line: line)
}

/// Feeds `stream` to a fresh decoder in chunks of the given sizes (cycled); returns what the
/// decoder produced and whether framing failed, plus the decoder's state.
func feedInChunks(_ stream: [UInt8], sizes: [Int]) -> (messages: [Message], failed: UInt32?, decoder: FrameDecoder) {
    var decoder = FrameDecoder()
    var messages: [Message] = []
    var index = 0
    var turn = 0
    while index < stream.count {
        let size = min(max(sizes[turn % sizes.count], 1), stream.count - index)
        turn += 1
        do {
            try decoder.feed(stream[index..<(index + size)], into: &messages)
        } catch {
            switch error {
            case .payloadTooLarge(let length): return (messages, length, decoder)
            }
        }
        let wanted = decoder.bytesWanted
        if wanted < 1 || wanted > Limits.headerSize + Limits.payloadMax { fuzzFail("bytesWanted out of range") }
        if decoder.partial.count >= Limits.headerSize + Limits.payloadMax { fuzzFail("partial holds a whole message") }
        index += size
    }
    return (messages, nil, decoder)
}

/// The reference framing: walks the stream header by header.
func referenceFrames(_ stream: [UInt8]) -> (messages: [Message], failed: UInt32?, rest: [UInt8]) {
    var messages: [Message] = []
    var offset = 0
    while stream.count - offset >= Limits.headerSize {
        let header = MessageHeader(decoding: stream, at: offset)
        if header.length > UInt32(Limits.payloadMax) { return (messages, header.length, []) }
        let end = offset + Limits.headerSize + Int(header.length)
        if end > stream.count { break }
        messages.append(Message(type: header.type, requestID: header.requestID, transactionID: header.transactionID,
                                payload: Array(stream[(offset + Limits.headerSize)..<end])))
        offset = end
    }
    return (messages, nil, Array(stream[offset...]))
}

func checkPayloadHelpers(_ bytes: [UInt8]) {
    let (strings, trailing) = Payload.strings(bytes)
    if Payload.join(strings) + trailing != bytes { fuzzFail("Payload.strings/join do not round-trip") }
    for part in strings where part.contains(0) { fuzzFail("a split string contains a NUL") }
    // parseDecimal: digits only, 1...19 of them, no overflow possible at 19 digits.
    let prefix = Array(bytes.prefix(20))
    let allDigits = !prefix.isEmpty && prefix.count <= 19 && prefix.allSatisfy { $0 >= 0x30 && $0 <= 0x39 }
    let parsed = Payload.parseDecimal(prefix)
    if allDigits != (parsed != nil) { fuzzFail("parseDecimal accepts exactly 1...19 digits") }
    if let parsed, Payload.decimal(parsed).count > prefix.count { fuzzFail("decimal re-encoding longer than input") }
    if let parsed, Payload.parseDecimal(Payload.decimal(parsed)) != parsed { fuzzFail("decimal does not round-trip") }
    _ = Payload.parseLeadingDecimal(bytes)
}

@_cdecl("LLVMFuzzerTestOneInput")
public func wireDecoderFuzzOne(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size > 0 else { return 0 }
    let seed = data[0]
    let stream = Array(UnsafeBufferPointer(start: data + 1, count: size - 1))

    let whole = feedInChunks(stream, sizes: [Int.max])
    var sizes: [Int] = []
    var state = UInt32(seed) &* 2_654_435_761 | 1
    for _ in 0..<16 {
        state ^= state << 13; state ^= state >> 17; state ^= state << 5
        sizes.append(seed & 1 == 0 ? Int(state % 7) + 1 : Int(state % 300) + 1)
    }
    let chunked = feedInChunks(stream, sizes: sizes)
    let reference = referenceFrames(stream)

    if whole.messages != reference.messages || chunked.messages != reference.messages {
        fuzzFail("decoded messages differ from the reference framing")
    }
    if whole.failed != reference.failed || chunked.failed != reference.failed {
        fuzzFail("framing failure differs from the reference")
    }
    if reference.failed == nil {
        if whole.decoder.partial != reference.rest || chunked.decoder.partial != reference.rest {
            fuzzFail("partial message is not the unconsumed rest")
        }
    } else if !whole.decoder.partial.isEmpty || !chunked.decoder.partial.isEmpty {
        fuzzFail("decoder keeps bytes after a framing failure")
    }
    var reencoded: [UInt8] = []
    for message in whole.messages {
        if Int(message.header.length) != message.payload.count { fuzzFail("header length differs from payload") }
        if message.payload.count > Limits.payloadMax { fuzzFail("payload over payloadMax") }
        reencoded += message.encoded
    }
    if reencoded != Array(stream.prefix(reencoded.count)) { fuzzFail("re-encoding differs from the input") }
    if stream.count >= Limits.headerSize {
        var header: [UInt8] = []
        MessageHeader(decoding: stream, at: 0).encode(into: &header)
        if header != Array(stream.prefix(Limits.headerSize)) { fuzzFail("header does not round-trip") }
    }
    checkPayloadHelpers(stream)
    for message in whole.messages { checkPayloadHelpers(message.payload) }
    return 0
}
