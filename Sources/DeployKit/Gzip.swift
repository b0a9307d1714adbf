// gzip (RFC 1952) compression and decompression through zlib (the CHost system library), deterministic:
// zlib's own header carries mtime 0 and no file name, so the same input always gives the same bytes.
import CHost
import Foundation

/// gzip streams as Xen's domain builder accepts them for kernels (`xc_dom_try_gunzip`).
public enum Gzip {
    /// windowBits 15 + 16: zlib writes and reads a gzip wrapper instead of a zlib one.
    private static let gzipWindowBits: Int32 = 15 + 16

    /// Compresses `data` at level 9 into a gzip member with mtime 0 and no name.
    public static func compress(_ data: [UInt8]) throws -> [UInt8] {
        var stream = z_stream()
        guard deflateInit2_(&stream, 9, Z_DEFLATED, gzipWindowBits, 9, Z_DEFAULT_STRATEGY,
                            ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
            throw DeployError.compression("deflateInit2 failed")
        }
        defer { deflateEnd(&stream) }
        var input = data
        var output = [UInt8](repeating: 0, count: Int(deflateBound(&stream, UInt(data.count))) + 64)
        let status: Int32 = input.withUnsafeMutableBufferPointer { inBuffer in
            output.withUnsafeMutableBufferPointer { outBuffer in
                stream.next_in = inBuffer.baseAddress
                stream.avail_in = UInt32(inBuffer.count)
                stream.next_out = outBuffer.baseAddress
                stream.avail_out = UInt32(outBuffer.count)
                return deflate(&stream, Z_FINISH)
            }
        }
        guard status == Z_STREAM_END else { throw DeployError.compression("deflate returned \(status)") }
        return Array(output.prefix(Int(stream.total_out)))
    }

    /// Decompresses one gzip member; throws on a corrupt stream or a CRC/length mismatch.
    public static func decompress(_ data: [UInt8]) throws -> [UInt8] {
        var stream = z_stream()
        guard inflateInit2_(&stream, gzipWindowBits, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
            throw DeployError.compression("inflateInit2 failed")
        }
        defer { inflateEnd(&stream) }
        var input = data
        var result: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        var status: Int32 = Z_OK
        try input.withUnsafeMutableBufferPointer { inBuffer in
            stream.next_in = inBuffer.baseAddress
            stream.avail_in = UInt32(inBuffer.count)
            while status != Z_STREAM_END {
                let produced: Int = chunk.withUnsafeMutableBufferPointer { outBuffer in
                    stream.next_out = outBuffer.baseAddress
                    stream.avail_out = UInt32(outBuffer.count)
                    status = inflate(&stream, Z_NO_FLUSH)
                    return outBuffer.count - Int(stream.avail_out)
                }
                result.append(contentsOf: chunk.prefix(produced))
                if status == Z_BUF_ERROR && stream.avail_in == 0 { throw DeployError.compression("gzip stream is truncated") }
                guard status == Z_OK || status == Z_STREAM_END else {
                    throw DeployError.compression("gzip stream is corrupt (inflate returned \(status))")
                }
            }
        }
        return result
    }
}
