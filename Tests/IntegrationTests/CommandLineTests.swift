// The command lines of xenstored and xsctl: help, C xenstored's short flags, refused bad values, and bisect's argv passed on unchanged.

import Foundation
#if canImport(Glibc)
import Glibc
#endif
import Testing

@Suite("xenstored and xsctl command lines", .serialized)
struct CommandLineOptionTests {
    /// Runs the daemon with `arguments` that must be refused before it serves; returns its output.
    func refusedDaemon(_ arguments: [String], sourceLocation: SourceLocation = #_sourceLocation) throws -> String {
        let result = try runCapturing(Programs.timeout, ["10", Programs.daemon] + arguments, mergingStandardError: true)
        #expect(result.status == 2, "xenstored \(arguments) must exit 2: \(result)", sourceLocation: sourceLocation)
        #expect(result.output.split(separator: "\n").count == 1, "one log line: \(result.output)", sourceLocation: sourceLocation)
        #expect(!result.output.contains("Swift runtime failure"), sourceLocation: sourceLocation)
        return result.output
    }

    @Test("xenstored --help and -H list every option, C xenstored's short flags included")
    func daemonHelp() throws {
        for flag in ["--help", "-H"] {
            let help = try runCapturing(Programs.daemon, [flag])
            #expect(help.status == 0)
            for option in ["--socket", "-F, --pid-file", "--database", "--reserve", "--repack-every", "--block ", "--block-size",
                           "--squash-at", "--keep-last", "--keep-newer-than", "--export-block", "--to", "--history ",
                           "--history-bytes", "--guest-memory", "--ring-dir", "-Q, --quota", "-E, --entry-nb",
                           "-S, --entry-size", "-W, --watch-nb", "-t, --transaction", "-A, --perm-nb", "-M, --path-max",
                           "--test-domain-socket", "--xen", "-N, --no-fork", "-V, --verbose", "-H, --help"] {
                #expect(help.output.contains(option), "\(flag) does not list \(option):\n\(help.output)")
            }
        }
    }

    @Test("xenstored refuses bad numbers, sizes, durations and unknown options with a line naming the option")
    func daemonRefusesBadValues() throws {
        let history = try refusedDaemon(["--history", "abc"])
        #expect(history.hasPrefix("xenstored: ") && history.contains("'abc'") && history.contains("--history"), "\(history)")
        #expect(try refusedDaemon(["--history", "0"]).contains("needs a positive number"))
        let blockSize = try refusedDaemon(["--block-size", "12Q"])
        #expect(blockSize.contains("--block-size") && blockSize.contains("12Q"), "\(blockSize)")
        #expect(try refusedDaemon(["--block-size", "100000"]).contains("multiple of 4K"))
        // Sizes and durations whose product overflows 64 bits are refused, not a crash.
        #expect(try refusedDaemon(["--guest-memory", "99999999999999G"]).contains("--guest-memory"))
        #expect(try refusedDaemon(["--keep-newer-than", "999999999999999999d"]).contains("--keep-newer-than"))
        #expect(try refusedDaemon(["--squash-at", "5%"]).contains("from 10 to 99"))
        #expect(try refusedDaemon(["--repack-every", "-1"]).contains("--repack-every"))
        #expect(try refusedDaemon(["-Q", "bogus=1"]).contains("bad quota setting"))
        #expect(try refusedDaemon(["--test-domain-socket", "0=/tmp/x"]).contains("DOMID > 0"))
        #expect(try refusedDaemon(["-E", "many"]).contains("-E"))
        #expect(try refusedDaemon(["--history"]).contains("Missing value for '--history"))
        // C xenstored options without a counterpart here are refused, not silently ignored.
        #expect(try refusedDaemon(["-T", "/tmp/trace"]).contains("Unknown option '-T'"))
        #expect(try refusedDaemon(["--no-such-option"]).contains("Unknown option '--no-such-option'"))
    }

    @Test("C xenstored's short flags work: -F writes the pid, -N and -V are accepted, -E/-W/-Q set global quotas")
    func daemonShortFlags() throws {
        // -F on its own (the harness's Daemon passes --pid-file itself); the watchdog ends it (it ignores SIGTERM
        // under the test runner, hence -k).
        let root = try makeTemporaryDirectory("xscli")
        defer { try? FileManager.default.removeItem(atPath: root) }
        let alone = try runCapturing(Programs.timeout, ["-k", "1", "2", Programs.daemon, "--socket", root + "/socket", "-F", root + "/c.pid", "-N", "-V"],
                                     mergingStandardError: true)
        #expect(alone.output.contains("serving on \(root)/socket"), "\(alone)")
        #expect(Int32(readText(root + "/c.pid").trimmingCharacters(in: .whitespacesAndNewlines)) != nil, "-F wrote no pid")
        let daemon = try Daemon(extraArguments: ["-N", "-V", "-E", "33", "-W", "44", "-Q", "transactions=5"])
        defer { daemon.stop() }
        let quotas = try daemon.client().control(["quota"])
        for expected in ["nodes: 33", "watches: 44", "transactions: 5"] {
            #expect(quotas.split(separator: "\n").contains { $0.hasPrefix(expected) }, "\(expected) missing in:\n\(quotas)")
        }
    }

    @Test("xsctl --help lists the commands with their arguments; bad numbers and usage are errors with status 2")
    func clientHelpAndUsageErrors() throws {
        let help = try runCapturing(Programs.xsctl, ["--help"])
        #expect(help.status == 0)
        for line in ["read PATH...", "write KEY=VALUE...", "log [PATH] [-n N]", "bisect --good REV --bad REV -- COMMAND",
                     "pull SOURCE [BRANCH]", "--socket <path>", "-C <database>"] {
            #expect(help.output.contains(line), "--help does not list \(line):\n\(help.output)")
        }
        let none = try runCapturing(Programs.xsctl, [], mergingStandardError: true)
        #expect(none.status == 2 && none.output.contains("read PATH..."), "\(none)")
        let count = try runCapturing(Programs.xsctl, ["-C", "/nonexistent", "log", "-n", "abc"], mergingStandardError: true)
        #expect(count.status == 2 && count.output.contains("'abc'") && count.output.contains("-n"), "\(count)")
        let watch = try runCapturing(Programs.xsctl, ["watch", "/a", "x"], mergingStandardError: true)
        #expect(watch.status == 2 && watch.output.contains("'x'"), "\(watch)")
        let history = try runCapturing(Programs.xsctl, ["history", "0"], mergingStandardError: true)
        #expect(history.status == 2 && history.output.contains("at least 1"), "\(history)")
        let unknown = try runCapturing(Programs.xsctl, ["frobnicate"], mergingStandardError: true)
        #expect(unknown.status == 2 && unknown.output.contains("frobnicate"), "\(unknown)")
        let noCommand = try runCapturing(Programs.xsctl, ["-C", "/nonexistent", "bisect", "--good", "a", "--bad", "b"], mergingStandardError: true)
        #expect(noCommand.status == 2 && noCommand.output.contains("needs the command after --"), "\(noCommand)")
    }

    @Test("xsctl bisect runs the command's argv as given (no shell), in a checkout of each revision")
    func bisectPassesArgumentsUnchanged() throws {
        let root = try makeTemporaryDirectory("xscli")
        defer { try? FileManager.default.removeItem(atPath: root) }
        let db = root + "/db"
        let daemon = try Daemon(extraArguments: ["--database", db])
        defer { daemon.stop() }
        let client = try daemon.client()
        for i in 1...6 { try client.write("/vm/counter", bytes("\(i)")) }
        // Words a shell would split, unquote or expand.
        let words = ["two words", "it's \"quoted\"", "$(touch \(root)/expanded);*", ""]
        // The recorder writes each argument it got, and the value in its working directory.
        let recorder = """
            for word in "$@"; do printf '[%s]\\n' "$word" >> "$0.arguments"; done
            value=$(cat vm/counter/.value); echo "$value" >> "$0.values"; test "$value" -lt 4
            """
        let bisect = try xsctl(socket: daemon.socket, "-C", db, "bisect", "--good", "main~6", "--bad", "main", "--",
                               "/bin/sh", "-c", recorder, root + "/record", words[0], words[1], words[2], words[3])
        #expect(bisect.status == 0, "\(bisect.output)")
        let first = bisect.output.split(separator: "\n").last.map(String.init) ?? ""
        #expect(first.hasPrefix("first bad commit:") && first.contains("write /vm/counter"), "\(bisect.output)")
        let values = readText(root + "/record.values").split(separator: "\n")
        #expect(!values.isEmpty && values.allSatisfy { Int($0) != nil }, "the command ran in a checkout: \(values)")
        let recorded = readText(root + "/record.arguments").split(separator: "\n", omittingEmptySubsequences: false).dropLast()
        let expected = Array(repeating: words.map { "[\($0)]" }, count: values.count).flatMap { $0 }
        #expect(Array(recorded) == expected.map { Substring($0) }, "arguments changed on the way:\n\(recorded)")
        #expect(!FileManager.default.fileExists(atPath: root + "/expanded"), "an argument was run through a shell")

        // A program that is not a shell gets its argument as given too: one file name with spaces and quotes.
        let name = root + "/a file 'named' \"so\""
        let touch = try xsctl(socket: daemon.socket, "-C", db, "bisect", "--good", "main~2", "--bad", "main", "--", "/usr/bin/touch", name)
        #expect(touch.status == 0, "\(touch.output)")
        #expect(FileManager.default.fileExists(atPath: name), "\(touch.output)")
        // A command that cannot be started is an error, not a verdict.
        let missing = try xsctl(socket: daemon.socket, "-C", db, "bisect", "--good", "main~2", "--bad", "main", "--", root + "/no-such-program")
        #expect(missing.status == 1 && missing.output.contains("cannot run"), "\(missing.output)")
    }
}
