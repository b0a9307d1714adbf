// Compact node storage: short byte strings inline, permission lists inline, ids without arrays — same behaviour as the arrays they replace.

import Testing
import TestSupport
import XenstoreStore

@Suite struct CompactStorageTests {
    /// Every length around the inline limit, with every byte value at every position: the bytes
    /// come back unchanged and count, equality and order agree with plain arrays.
    @Test func compactBytesAgreeWithArrays() {
        var rng = SplitMix64(seed: 20)
        var samples: [[UInt8]] = [[], [0], [255], [0, 0], Array(repeating: 0, count: 14), Array(repeating: 255, count: 14)]
        for length in 0...40 {
            for _ in 0..<8 { samples.append((0..<length).map { _ in UInt8(truncatingIfNeeded: rng.below(256)) }) }
        }
        // pairs that differ only in length, or only in the last inline byte, or past it
        samples.append(Array(repeating: 7, count: 13))
        samples.append(Array(repeating: 7, count: 15))
        samples.append(Array(repeating: 7, count: 13) + [8])
        for bytes in samples {
            let compact = CompactBytes(bytes)
            #expect(compact.array == bytes)
            #expect(compact.count == bytes.count)
            #expect(compact.isEmpty == bytes.isEmpty)
            #expect(compact.equals(bytes))
            compact.withUnsafeBufferPointer { #expect(Array($0) == bytes) }
        }
        for a in samples {
            for b in samples {
                let (ca, cb) = (CompactBytes(a), CompactBytes(b))
                #expect((ca == cb) == (a == b))
                #expect(ca.equals(b) == (a == b))
                #expect(ca.precedes(cb) == a.lexicographicallyPrecedes(b))
                let order = ca.compare(b)
                #expect((order < 0) == a.lexicographicallyPrecedes(b))
                #expect((order == 0) == (a == b))
            }
        }
    }

    /// Permission lists of one, two and more entries: the same entries, owner, blob, equality
    /// and hashing whatever the storage.
    @Test func permissionListsKeepTheirEntries() {
        let lists: [[PermissionEntry]] = [
            [PermissionEntry(domid: 0, access: .none)],
            [PermissionEntry(domid: 5, access: .read)],
            [PermissionEntry(domid: 0, access: .none), PermissionEntry(domid: 5, access: .read)],
            [PermissionEntry(domid: 0, access: .none), PermissionEntry(domid: 5, access: .both)],
            [PermissionEntry(domid: 7, access: .write), PermissionEntry(domid: 5, access: .read), PermissionEntry(domid: 9, access: .both)],
        ]
        for entries in lists {
            let permissions = Permissions(entries)
            #expect(permissions.entries == entries)
            #expect(Array(permissions) == entries)
            #expect(permissions.count == entries.count)
            #expect(permissions.owner == entries[0].domid)
            #expect(Permissions(blob: permissions.blob) == permissions)
            for other in lists {
                #expect((Permissions(other) == permissions) == (other == entries))
            }
            var set = Set<Permissions>()
            set.insert(permissions)
            #expect(set.contains(Permissions(entries)))
        }
    }

    /// Object ids: bytes, hex, order and equality as 20-byte arrays have them.
    @Test func objectIDsBehaveAsTheirBytes() {
        var rng = SplitMix64(seed: 21)
        var ids: [[UInt8]] = [Array(repeating: 0, count: 20), Array(repeating: 255, count: 20)]
        for _ in 0..<40 { ids.append((0..<20).map { _ in UInt8(truncatingIfNeeded: rng.below(256)) }) }
        ids.append(Array(repeating: 0, count: 19) + [1])
        for a in ids {
            let id = ObjectID(bytes: a)
            #expect(id.bytes == a)
            #expect(ObjectID(hex: id.hex) == id)
            var appended: [UInt8] = [9]
            id.append(to: &appended)
            #expect(appended == [9] + a)
            for b in ids {
                #expect((ObjectID(bytes: b) == id) == (a == b))
                #expect((id < ObjectID(bytes: b)) == a.lexicographicallyPrecedes(b))
            }
        }
        #expect(SHA1.hash(Array("blob 0\0".utf8)).hex == Array("e69de29bb2d1d6434b8b29ae775ad8c2e48c5391".utf8))
    }
}
