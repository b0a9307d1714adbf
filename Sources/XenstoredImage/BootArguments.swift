// The stub domain's command line, as init-xenstore-domain writes it: `--event <port> --internal-db ...`
// (or, for an ordinary guest on ARM, the xl config's `extra=`: `--vchan --internal-db`).

/// Options understood on the image's command line; unknown words are kept for the log.
public struct BootArguments {
    /// `--event <port>`: dom0's xenbus event channel, set up by init-xenstore-domain.
    public var dom0EventChannel: UInt32?
    /// `--internal-db`: keep the store in memory (the only mode so far).
    public var internalDatabase = false
    /// `--selftest-trap`: trap on purpose after the self-test, to check crash reporting.
    public var selfTestTrap = false
    /// `--selftest-overflow`: recurse without end after the self-test, to check stack-overflow reporting.
    public var selfTestOverflow = false
    /// `--selftest-badaccess`: read through a null pointer after the self-test, to check fault reporting.
    public var selfTestBadAccess = false
    /// `--selftest-restart`: crash on purpose with restart in place armed (QEMU, no Xen): the
    /// restarted image checks that Swift's globals and heap started afresh, then crashes until the
    /// runtime gives up on the crash loop (exit 99).
    public var selfTestRestart = false
    /// `--vchan`: as an ordinary guest (no `--event`), offer dom0 a vchan and serve its clients on it.
    public var vchan = false
    /// `--block`: keep the history on the virtual disk xvda (XenstoreBlock's format) and resume from it.
    public var block = false
    /// `--test-hooks`: accept CONTROL `test-crash` (tests of restart in place); never in production.
    public var testHooks = false
    /// `--test-crash-handshake` (with `--test-hooks`): crash once when our disk's handshake has
    /// published its half, and once when the disk's history has been adopted (tests that a
    /// restart in place resumes the handshake from any phase).
    public var testCrashHandshake = false
    /// `--trace-rounds`: print every ring's indexes after each serving round (diagnosis; slow).
    public var traceRounds = false
    /// Words that were not understood.
    public var unknown: [[UInt8]] = []

    /// Parses a NUL-terminated command line (words separated by spaces).
    public init(cString: UnsafePointer<CChar>?) {
        var words: [[UInt8]] = []
        var current: [UInt8] = []
        if var cursor = cString {
            while cursor.pointee != 0 {
                let byte = UInt8(bitPattern: cursor.pointee)
                if byte == 0x20 || byte == 0x09 {
                    if !current.isEmpty { words.append(current); current = [] }
                } else {
                    current.append(byte)
                }
                cursor += 1
            }
        }
        if !current.isEmpty { words.append(current) }
        var index = 0
        while index < words.count {
            let word = words[index]
            if word == Payload.bytes("--event"), index + 1 < words.count, let port = BootArguments.number(words[index + 1]) {
                dom0EventChannel = port
                index += 1
            } else if word == Payload.bytes("--internal-db") {
                internalDatabase = true
            } else if word == Payload.bytes("--selftest-trap") {
                selfTestTrap = true
            } else if word == Payload.bytes("--selftest-overflow") {
                selfTestOverflow = true
            } else if word == Payload.bytes("--selftest-badaccess") {
                selfTestBadAccess = true
            } else if word == Payload.bytes("--selftest-restart") {
                selfTestRestart = true
            } else if word == Payload.bytes("--vchan") {
                vchan = true
            } else if word == Payload.bytes("--block") {
                block = true
            } else if word == Payload.bytes("--trace-rounds") {
                traceRounds = true
            } else if word == Payload.bytes("--test-crash-handshake") {
                testCrashHandshake = true
            } else if word == Payload.bytes("--test-hooks") {
                testHooks = true
            } else {
                unknown.append(word)
            }
            index += 1
        }
    }

    /// A decimal number that fits UInt32, or nil.
    static func number(_ digits: [UInt8]) -> UInt32? {
        guard !digits.isEmpty, digits.count <= 10 else { return nil }
        var value: UInt64 = 0
        for digit in digits {
            guard digit >= 0x30 && digit <= 0x39 else { return nil }
            value = value * 10 + UInt64(digit - 0x30)
        }
        return value <= UInt64(UInt32.max) ? UInt32(value) : nil
    }
}
