// The test client's socket handling: a failed connect closes its descriptor once, so other threads' descriptors stay theirs.

import Foundation
import Testing
import XenstoreHost

@Suite("XenstoreClient descriptors")
struct ClientSocketTests {
    /// One thread keeps failing to connect (as the harness does while a daemon starts); another
    /// keeps opening pipes and using them. A failed connect that closed its socket twice would,
    /// now and then, close the other thread's new pipe between the two closes (EBADF there):
    /// the crash of the whole test process seen in CI, through Foundation's `try!` on read.
    @Test("failed connects never close another thread's descriptor")
    func failedConnectsCloseOnlyTheirOwnSocket() throws {
        let missing = "/tmp/xs-no-daemon-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        final class Flag: @unchecked Sendable { var stop = false }
        let flag = Flag()
        let lock = NSLock()
        let connector = Thread {
            while !lock.withLock({ flag.stop }) {
                for _ in 0..<100 { _ = try? XenstoreClient(path: missing) }
            }
        }
        connector.start()
        defer {
            lock.withLock { flag.stop = true }
            while !connector.isFinished { usleep(1_000) }
        }
        var failures: [String] = []
        let deadline = Date().addingTimeInterval(2)
        var rounds = 0
        while Date() < deadline && failures.isEmpty {
            rounds += 1
            var ends: [Int32] = [-1, -1]
            guard pipe(&ends) == 0 else { failures.append("pipe: errno \(errno)"); break }
            var byte: UInt8 = 0x2A
            for _ in 0..<20 {
                if write(ends[1], &byte, 1) != 1 { failures.append("write to a new pipe: errno \(errno)"); break }
                if read(ends[0], &byte, 1) != 1 { failures.append("read from a new pipe: errno \(errno)"); break }
            }
            close(ends[0])
            close(ends[1])
        }
        #expect(failures.isEmpty, "after \(rounds) pipes: \(failures)")
    }
}
