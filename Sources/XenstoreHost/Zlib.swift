// zlib streams as git stores them: deflate for new loose objects, bounded inflate for loose and packed ones.

import CHost

/// The zlib calls of the git database (RFC 1950 streams, as git writes loose and packed objects).
enum Zlib {
    /// Compresses `input` into one zlib stream (level 1: objects are small and written often).
    static func deflate(_ input: [UInt8]) -> [UInt8]? {
        var length = compressBound(uLong(input.count))
        var output = [UInt8](repeating: 0, count: Int(length))
        let status = output.withUnsafeMutableBufferPointer { out in
            input.withUnsafeBufferPointer { source in
                compress2(out.baseAddress, &length, source.baseAddress, uLong(input.count), 1)
            }
        }
        guard status == Z_OK else { return nil }
        return Array(output[0..<Int(length)])
    }

    /// Inflates the zlib stream that starts at `source` (at most `available` bytes are read).
    /// Returns nil when the stream is damaged, ends early, or would produce more than
    /// `limit` bytes; when `expected` is given the output must be exactly that long.
    static func inflate(_ source: UnsafeRawPointer, available: Int, expected: Int? = nil, limit: Int) -> [UInt8]? {
        var stream = z_stream()
        guard inflateInit_(&stream, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size)) == Z_OK else { return nil }
        defer { inflateEnd(&stream) }
        stream.next_in = UnsafeMutablePointer(mutating: source.assumingMemoryBound(to: UInt8.self))
        var remaining = available
        var output: [UInt8] = []
        if let expected { output.reserveCapacity(expected) }
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            // avail_in is 32 bits wide: feed huge inputs in slices.
            if stream.avail_in == 0 {
                let slice = min(remaining, Int(UInt32.max >> 1))
                stream.avail_in = uInt(slice)
                remaining -= slice
            }
            let status = chunk.withUnsafeMutableBufferPointer { out -> Int32 in
                stream.next_out = out.baseAddress
                stream.avail_out = uInt(out.count)
                return CHost.inflate(&stream, Z_NO_FLUSH)
            }
            let produced = chunk.count - Int(stream.avail_out)
            if output.count + produced > limit { return nil }
            output.append(contentsOf: chunk[0..<produced])
            if status == Z_STREAM_END { break }
            // Z_BUF_ERROR with input left means no progress was possible: damaged or truncated.
            if status != Z_OK || (produced == 0 && stream.avail_in == 0 && remaining == 0) { return nil }
        }
        if let expected, output.count != expected { return nil }
        return output
    }

    /// Inflates a whole buffer holding one zlib stream.
    static func inflate(_ input: [UInt8], limit: Int) -> [UInt8]? {
        input.withUnsafeBytes { raw in
            guard let base = raw.baseAddress else { return nil }
            return inflate(base, available: raw.count, limit: limit)
        }
    }
}
