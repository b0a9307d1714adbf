// The daemon's command line (swift-argument-parser): C xenstored's option names and short flags where the meaning is the same, every value checked before anything starts.
#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import XenstoreHost
import XenstoreServer

/// Every option of `xenstored`; `main.swift` turns them into the server's configuration.
struct DaemonOptions: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "xenstored",
        abstract: "Serves the Xenstore protocol on a Unix socket; every change is a git-style commit.",
        discussion: """
            Sizes are bytes or a number with K, M or G (powers of 1024). The short flags -F, -N, -V, -H, \
            -Q, -E, -S, -W, -t, -A and -M mean what they mean for C xenstored 4.17; its other options \
            (-D, -P, -T trace file, -q, -w, -R, -I, -K) have no counterpart here and are refused. \
            Exit status: 0 after --help or a complete --export-block, 1 for an export that lost \
            something, 2 for a bad option or a store or socket the daemon refuses (see the log line).
            """,
        helpNames: [.customShort("H"), .short, .long])

    @Option(help: ArgumentHelp("Socket to listen on (default: $XENSTORED_PATH, else $XENSTORED_RUNDIR/socket, else /var/run/xenstored/socket).",
                               valueName: "path"))
    var socket: String?

    @Option(name: [.customLong("pid-file"), .customShort("F")], help: ArgumentHelp("Write the daemon's pid to FILE.", valueName: "file"))
    var pidFile: String?

    @Option(help: ArgumentHelp("Keep the history as a git repository in DIR/.git (created if missing; a restart on the same DIR resumes from its head).",
                               valueName: "dir"))
    var database: String?

    @Option(help: ArgumentHelp("With --database: answer ENOSPC to requests that would grow the store while its file system has less than SIZE free (default 8M).",
                               valueName: "size"),
            transform: { try size($0, expecting: "a size such as 8M or 0") })
    var reserve: UInt64?

    @Option(help: ArgumentHelp("With --database: pack loose objects with a background `git repack -d` every N objects written (default 20000; 0: never).",
                               valueName: "n"),
            transform: { try number($0, atLeast: 0, expecting: "a number (0: never)") })
    var repackEvery: Int?

    @Option(help: ArgumentHelp("""
        Keep the history in FILE used as a fixed-size block device (docs/block-format.md; created if missing; a restart \
        resumes). A file without a valid store is formatted only when it reads as all zero; a damaged, truncated or \
        foreign one is refused, unchanged. When the store is nearly full, requests that would grow it get ENOSPC; if a \
        batch still cannot be written the daemon stops (non-zero exit) without answering that round.
        """, valueName: "file"))
    var block: String?

    @Option(help: ArgumentHelp("Size of a new --block file, e.g. 16M (default 16M); if given, an existing file must have this size. Old history is squashed when the file fills.",
                               valueName: "size"),
            transform: { text in
                let bytes = try size(text, expecting: "a size of at least 64K, a multiple of 4K (e.g. 16M)")
                guard bytes >= 64 << 10, bytes % 4096 == 0 else {
                    throw ValidationError("needs a size of at least 64K, a multiple of 4K (e.g. 16M)")
                }
                return bytes
            })
    var blockSize: UInt64?

    @Option(help: ArgumentHelp("Squash --block history when a batch would fill the log half past PERCENT (default 90).", valueName: "percent"),
            transform: { text in
                try number(text.hasSuffix("%") ? String(text.dropLast()) : text, atLeast: 10, atMost: 99,
                           expecting: "a percentage from 10 to 99")
            })
    var squashAt: Int?

    @Option(help: ArgumentHelp("A squash keeps the newest N commits of the head's first-parent chain (default 16), plus open transactions' bases.",
                               valueName: "n"),
            transform: { try number($0, atLeast: 1, expecting: "a number of at least 1") })
    var keepLast: Int?

    @Option(help: ArgumentHelp("A squash also keeps commits younger than AGE (seconds, or with m/h/d: 90m, 12h, 7d; default: none).",
                               valueName: "age"),
            transform: { text in
                guard let seconds = parseDuration(text) else {
                    throw ValidationError("needs a duration such as 3600, 90m, 12h or 7d")
                }
                return seconds
            })
    var keepNewerThan: Int64?

    @Option(help: ArgumentHelp("""
        With --to DIR: write the history kept in block FILE as a git repository in DIR (same commit ids as --database), \
        then exit. A damaged FILE is salvaged: every commit still readable is exported, what was lost is reported, and \
        the exit status is 1 (0: complete).
        """, valueName: "file"))
    var exportBlock: String?

    @Option(help: ArgumentHelp("The directory --export-block writes.", valueName: "dir"))
    var to: String?

    @Option(help: ArgumentHelp("Commits kept in memory with their parents (default 4096).", valueName: "n"),
            transform: { try number($0, atLeast: 1, expecting: "a positive number") })
    var history: Int?

    @Option(help: ArgumentHelp("And at most about SIZE of old node versions (default 64M).", valueName: "size"),
            transform: { text in
                let bytes = try size(text, expecting: "a size of at least 64K, e.g. 64M")
                guard bytes >= 1 << 16, bytes <= UInt64(Int.max) else {
                    throw ValidationError("needs a size of at least 64K, e.g. 64M")
                }
                return Int(bytes)
            })
    var historyBytes: Int?

    @Option(help: ArgumentHelp("""
        Bound on what all guests together make the daemon hold (nodes they own, transactions, watches, queued output; \
        default 256M, 0: none); past it guests get ENOMEM, dom0 never (docs/quotas.md).
        """, valueName: "size"),
            transform: { text in
                let bytes = try size(text, expecting: "a size, e.g. 256M (0: no bound)")
                guard bytes <= UInt64(Int.max) else { throw ValidationError("needs a size, e.g. 256M (0: no bound)") }
                return Int(bytes)
            })
    var guestMemory: Int?

    @Option(help: ArgumentHelp("""
        Serve emulated domain rings: an INTRODUCEd domain D is served through DIR/D/page (a shared xenstore ring page) \
        and the FIFOs DIR/D/to-store, DIR/D/to-domain (event channel). With --database or --block, ring connections \
        survive a restart of the daemon.
        """, valueName: "dir"))
    var ringDir: String?

    @Option(name: [.customLong("quota"), .customShort("Q")],
            help: ArgumentHelp("Set a global quota (nodes, watches, transactions, transaction-nodes, node-size, permissions, path-max, outstanding, memory); repeatable.",
                               valueName: "name=value"),
            transform: { try QuotaSetting($0) })
    var quota: [QuotaSetting] = []

    @Option(name: [.customLong("entry-nb"), .customShort("E")], help: ArgumentHelp("As C xenstored: the same as --quota nodes=N.", valueName: "n"),
            transform: { try number($0, atLeast: 0, expecting: "a number (0: unlimited)") })
    var entryCount: Int?

    @Option(name: [.customLong("entry-size"), .customShort("S")], help: ArgumentHelp("As C xenstored: the same as --quota node-size=N.", valueName: "n"),
            transform: { try number($0, atLeast: 0, expecting: "a number of bytes (0: unlimited)") })
    var entrySize: Int?

    @Option(name: [.customLong("watch-nb"), .customShort("W")], help: ArgumentHelp("As C xenstored: the same as --quota watches=N.", valueName: "n"),
            transform: { try number($0, atLeast: 0, expecting: "a number (0: unlimited)") })
    var watchCount: Int?

    @Option(name: [.customLong("transaction"), .customShort("t")], help: ArgumentHelp("As C xenstored: the same as --quota transactions=N.", valueName: "n"),
            transform: { try number($0, atLeast: 0, expecting: "a number (0: unlimited)") })
    var transactionCount: Int?

    @Option(name: [.customLong("perm-nb"), .customShort("A")], help: ArgumentHelp("As C xenstored: the same as --quota permissions=N.", valueName: "n"),
            transform: { try number($0, atLeast: 0, expecting: "a number (0: unlimited)") })
    var permissionCount: Int?

    @Option(name: [.customLong("path-max"), .customShort("M")], help: ArgumentHelp("As C xenstored: the same as --quota path-max=N.", valueName: "chars"),
            transform: { try number($0, atLeast: 0, expecting: "a number of characters (0: unlimited)") })
    var pathMax: Int?

    @Option(help: ArgumentHelp("TEST HOOK: also listen on PATH; its clients act as the unprivileged domain DOMID (for permission and quota tests); repeatable.",
                               valueName: "domid=path"),
            transform: { try TestDomainSocket($0) })
    var testDomainSocket: [TestDomainSocket] = []

    @Flag(help: """
        Run as dom0's xenstored on a real Xen host: also serve dom0's kernel ring (xenfs on /proc/xen) and the ring of \
        every introduced guest; watch VIRQ_DOM_EXC for dying domains.
        """)
    var xen = false

    @Flag(name: [.customLong("no-fork"), .customShort("N")], help: "Accepted for compatibility (the daemon never forks).")
    var noFork = false

    @Flag(name: [.customLong("verbose"), .customShort("V")], help: "Log connections and domain events.")
    var verbose = false

    /// The quota settings of `--quota` followed by those of C xenstored's per-quota options, in that order.
    var quotaSettings: [QuotaSetting] {
        let shorthands: [(String, Int?)] = [("nodes", entryCount), ("node-size", entrySize), ("watches", watchCount),
                                            ("transactions", transactionCount), ("permissions", permissionCount), ("path-max", pathMax)]
        return quota + shorthands.compactMap { name, value in value.map { QuotaSetting(name: name, value: $0) } }
    }

    /// The options, or the process ends: help on standard output with status 0, a bad option as
    /// one log line with status 2 (as every refusal of the daemon).
    static func parseOrExitWithStatus2() -> DaemonOptions {
        do {
            return try parse()
        } catch {
            if exitCode(for: error) == .success {
                print(fullMessage(for: error))
                Glibc.exit(0)
            }
            logLine(message(for: error) + " (see --help)")
            Glibc.exit(2)
        }
    }
}

/// One `--quota NAME=VALUE`; the name is checked against the server's quota names.
struct QuotaSetting {
    let name: String
    let value: Int

    init(name: String, value: Int) {
        self.name = name
        self.value = value
    }

    init(_ text: String) throws {
        var probe = Quotas()
        guard let equals = text.firstIndex(of: "="), let number = Int(text[text.index(after: equals)...]),
              probe.set(named: Array(text[..<equals].utf8), to: number) else {
            throw ValidationError("bad quota setting (NAME=NUMBER; names: \(Quotas.names.map { String(decoding: $0, as: UTF8.self) }.joined(separator: ", ")))")
        }
        self.init(name: String(text[..<equals]), value: number)
    }
}

/// One `--test-domain-socket DOMID=PATH`.
struct TestDomainSocket {
    let domid: UInt32
    let path: String

    init(_ text: String) throws {
        guard let equals = text.firstIndex(of: "="), let domid = UInt32(text[..<equals]), domid != 0 else {
            throw ValidationError("needs DOMID=PATH with DOMID > 0")
        }
        self.domid = domid
        path = String(text[text.index(after: equals)...])
    }
}

/// A size such as `16M` in bytes, or a ValidationError saying what it needs.
func size(_ text: String, expecting what: String) throws -> UInt64 {
    // parseByteSize does not check that the number times its unit fits in 64 bits: 2^34 G is refused here.
    let digits = text.last.map { $0.isNumber } == true ? text : String(text.dropLast())
    guard let count = UInt64(digits), count <= UInt64.max >> 30, let bytes = parseByteSize(text) else {
        throw ValidationError("needs \(what)")
    }
    return bytes
}

/// A whole number within bounds, or a ValidationError saying what it needs.
func number(_ text: String, atLeast low: Int, atMost high: Int = Int.max, expecting what: String) throws -> Int {
    guard let value = Int(text), value >= low, value <= high else { throw ValidationError("needs \(what)") }
    return value
}

/// Seconds in "3600", "90m", "12h" or "7d"; nil if malformed.
func parseDuration(_ text: String) -> Int64? {
    let units: [Character: Int64] = ["s": 1, "m": 60, "h": 3600, "d": 86400]
    if let unit = text.last, let scale = units[unit], let number = Int64(text.dropLast()), number >= 0 {
        let (seconds, overflow) = number.multipliedReportingOverflow(by: scale)
        return overflow ? nil : seconds
    }
    return Int64(text).flatMap { $0 >= 0 ? $0 : nil }
}
