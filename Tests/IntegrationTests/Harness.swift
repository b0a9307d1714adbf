// Test support: runs a private xenstored per test (under /usr/bin/timeout), the real Xen clients with time limits, and raw-protocol helpers.

import Foundation
@_exported import TestSupport
#if canImport(Glibc)
import Glibc
#endif
import Testing
import XenstoreHost
import XenstoreWire

// MARK: - Locations

/// Fixed locations of the programs the integration tests drive.
enum Programs {
    /// The package root: the nearest ancestor of this file that holds `Package.swift`.
    static let packageRoot: String = {
        var url = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        while url.path != "/" {
            if FileManager.default.fileExists(atPath: url.appendingPathComponent("Package.swift").path) { return url.path }
            url = url.deletingLastPathComponent()
        }
        // Tests/IntegrationTests/Harness.swift → the package root is two levels above this folder.
        return URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().path
    }()

    /// Where the build system put the products of this build: the directory of the test
    /// bundle itself (`swift build --show-bin-path`), whatever the configuration or triple.
    static let binDirectory: String = {
        let bundle = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        return bundle.deletingLastPathComponent().path
    }()
    /// The daemon under test, built by `swift build` next to the tests.
    static let daemon = binDirectory + "/xenstored"
    /// The command-line client, built next to the tests.
    static let xsctl = binDirectory + "/xsctl"
    /// GNU coreutils `timeout`: every child process runs under it.
    static let timeout = "/usr/bin/timeout"
    /// Xen 4.17 tools (Debian `xen-utils-4.17`).
    static let xenstoreControl = "/usr/lib/xen-4.17/bin/xenstore-control"
    static let testXenstore = "/usr/lib/xen-4.17/bin/test-xenstore"

    /// A client of Debian's `xenstore-utils` (`xenstore-read`, ...).
    static func client(_ name: String) -> String { "/usr/bin/" + name }

    /// Fails the current test (does not skip it) when a program is missing.
    static func require(_ path: String, package: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
        try #require(FileManager.default.isExecutableFile(atPath: path),
                     "required program \(path) is missing: install the Debian package \(package) (CI installs it with `make packages`)",
                     sourceLocation: sourceLocation)
    }
}

// MARK: - Child processes

/// How a child process ended.
struct ExitStatus: Equatable, CustomStringConvertible {
    /// Exit code when the process exited normally.
    let code: Int32?
    /// Signal number when the process was killed by a signal.
    let signal: Int32?

    init(raw: Int32) {
        if raw & 0x7F == 0 {
            code = (raw >> 8) & 0xFF
            signal = nil
        } else {
            code = nil
            signal = raw & 0x7F
        }
    }

    var description: String { code.map { "exit \($0)" } ?? "signal \(signal ?? -1)" }
}

/// The result of running a client tool to completion.
struct ToolResult: CustomStringConvertible {
    let command: [String]
    let status: ExitStatus
    let stdout: String
    let stderr: String

    /// The exit code; 124 means `timeout` killed the tool.
    var rc: Int32 { status.code ?? (128 + (status.signal ?? 0)) }
    /// Standard output split into lines (without the final empty line).
    var lines: [String] {
        var parts = stdout.components(separatedBy: "\n")
        if parts.last == "" { parts.removeLast() }
        return parts
    }

    var description: String {
        "`\(command.joined(separator: " "))` → \(status)\nstdout:\n\(stdout)stderr:\n\(stderr)"
    }
}

/// Spawns a program with stdin from /dev/null and stdout/stderr into files; no other descriptors
/// are inherited (sockets of concurrently running tests must not leak into children).
func spawnProcess(_ argv: [String], stdout: String, stderr: String, environment: [String: String]) throws -> pid_t {
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
    posix_spawn_file_actions_addopen(&actions, 1, stdout, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    posix_spawn_file_actions_addopen(&actions, 2, stderr, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    closeInheritedDescriptors(&actions)
    let cArguments: [UnsafeMutablePointer<CChar>?] = argv.map { strdup($0) } + [nil]
    let cEnvironment: [UnsafeMutablePointer<CChar>?] = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
    defer {
        for pointer in cArguments { free(pointer) }
        for pointer in cEnvironment { free(pointer) }
    }
    // The test runner's threads may block or ignore signals (SIGPIPE is ignored here); children
    // start with an empty mask and default dispositions so that SIGTERM and timeouts work.
    var attributes = posix_spawnattr_t()
    posix_spawnattr_init(&attributes)
    defer { posix_spawnattr_destroy(&attributes) }
    var emptyMask = sigset_t()
    sigemptyset(&emptyMask)
    posix_spawnattr_setsigmask(&attributes, &emptyMask)
    var defaults = sigset_t()
    sigemptyset(&defaults)
    for signalNumber in [SIGPIPE, SIGTERM, SIGINT, SIGHUP, SIGALRM, SIGCHLD, SIGQUIT, SIGUSR1, SIGUSR2] {
        sigaddset(&defaults, signalNumber)
    }
    posix_spawnattr_setsigdefault(&attributes, &defaults)
    posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
    var pid: pid_t = 0
    let result = posix_spawn(&pid, argv[0], &actions, &attributes, cArguments, cEnvironment)
    guard result == 0 else {
        throw HarnessError("cannot start \(argv[0]): \(String(cString: strerror(result)))")
    }
    return pid
}

/// glibc's `posix_spawn_file_actions_addclosefrom_np` (2.34+), which Swift's Glibc module does not import.
private let addCloseFrom: (@convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32)? = {
    guard let symbol = dlsym(nil, "posix_spawn_file_actions_addclosefrom_np") else { return nil }
    return unsafeBitCast(symbol, to: (@convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32).self)
}()

/// Makes the child close every descriptor above stderr.
private func closeInheritedDescriptors(_ actions: inout posix_spawn_file_actions_t) {
    if let addCloseFrom, addCloseFrom(&actions, 3) == 0 { return }
    // Older glibc: close what is open now (descriptors opened concurrently may still leak).
    let open = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []
    for fd in open.compactMap({ Int32($0) }) where fd > 2 && fcntl(fd, F_GETFD) >= 0 {
        posix_spawn_file_actions_addclose(&actions, fd)
    }
}

/// Waits for a child until `seconds` have passed; nil if it is still running.
func waitForExit(_ pid: pid_t, seconds: Double) -> ExitStatus? {
    let deadline = Date().addingTimeInterval(seconds)
    while true {
        var status: Int32 = 0
        let result = waitpid(pid, &status, WNOHANG)
        if result == pid { return ExitStatus(raw: status) }
        if result < 0 && errno != EINTR { return ExitStatus(raw: 0x7F & SIGKILL) }
        if Date() >= deadline { return nil }
        usleep(5_000)
    }
}

/// A harness failure (not a daemon behaviour).
struct HarnessError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Reads a whole file as text ("" if it is missing).
func readText(_ path: String) -> String {
    (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
}

/// A client tool running in the background (for `xenstore-watch`).
final class BackgroundTool {
    let command: [String]
    let pid: pid_t
    let stdoutPath: String
    let stderrPath: String
    private var finished: ExitStatus?

    init(command: [String], pid: pid_t, stdoutPath: String, stderrPath: String) {
        self.command = command
        self.pid = pid
        self.stdoutPath = stdoutPath
        self.stderrPath = stderrPath
    }

    /// The lines printed so far.
    var lines: [String] {
        var parts = readText(stdoutPath).components(separatedBy: "\n")
        parts.removeLast()  // the unfinished (or empty) last line
        return parts
    }

    /// Polls until at least `count` lines were printed; false on timeout or early exit.
    func waitForLines(_ count: Int, seconds: Double = 10) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if lines.count >= count { return true }
            if finished == nil, let status = waitForExit(pid, seconds: 0) { finished = status }
            if finished != nil { return lines.count >= count }
            usleep(10_000)
        }
        return false
    }

    /// Waits for the tool to exit by itself; kills it after `seconds`.
    func finish(seconds: Double = 10) -> ToolResult {
        if finished == nil { finished = waitForExit(pid, seconds: seconds) }
        if finished == nil {
            kill(pid, SIGKILL)
            finished = waitForExit(pid, seconds: 5)
        }
        return ToolResult(command: command, status: finished ?? ExitStatus(raw: SIGKILL),
                          stdout: readText(stdoutPath), stderr: readText(stderrPath))
    }

    deinit {
        if finished == nil {
            kill(pid, SIGKILL)
            _ = waitForExit(pid, seconds: 5)
        }
    }
}

// MARK: - The daemon

/// One private xenstored on a fresh temporary directory, stopped by `stop()`.
///
/// The daemon runs under `timeout` so that it dies even if the test process is killed; a test
/// that blocks on a reply that never comes is released when that watchdog ends the daemon.
final class Daemon {
    let directory: String
    let socket: String
    let logPath: String
    let watchdogSeconds: Int
    private let wrapperPID: pid_t
    private var daemonPID: pid_t?
    private var stopped: ExitStatus?
    private var outputCounter = 0

    private static let ignoreSIGPIPE: Void = { signal(SIGPIPE, SIG_IGN) }()

    /// Starts the daemon and waits until its socket accepts connections.
    ///
    /// - Parameters:
    ///   - quotas: `NAME=VALUE` settings passed as `--quota`.
    ///   - domains: unprivileged domains that get a test socket (`--test-domain-socket`).
    ///   - watchdogSeconds: the daemon's lifetime limit.
    ///   - extraArguments: further daemon options (e.g. `--database DIR`).
    init(quotas: [String] = [], domains: [UInt32] = [], watchdogSeconds: Int = 30, extraArguments: [String] = [],
         sourceLocation: SourceLocation = #_sourceLocation) throws {
        _ = Daemon.ignoreSIGPIPE
        try Programs.require(Programs.timeout, package: "coreutils", sourceLocation: sourceLocation)
        try #require(FileManager.default.isExecutableFile(atPath: Programs.daemon),
                     "the daemon \(Programs.daemon) is not built: run `swift build` before `swift test`",
                     sourceLocation: sourceLocation)
        var template = Array("/tmp/xsit-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { throw HarnessError("mkdtemp failed") }
        directory = String(cString: made)
        socket = directory + "/socket"
        logPath = directory + "/daemon.log"
        self.watchdogSeconds = watchdogSeconds
        var argv = [Programs.timeout, "-k", "3", String(watchdogSeconds), Programs.daemon,
                    "--socket", socket, "--pid-file", directory + "/daemon.pid"]
        for quota in quotas { argv += ["--quota", quota] }
        for domid in domains { argv += ["--test-domain-socket", "\(domid)=\(directory)/dom\(domid)"] }
        argv += extraArguments
        wrapperPID = try spawnProcess(argv, stdout: directory + "/daemon.out", stderr: logPath,
                                      environment: ProcessInfo.processInfo.environment)
        let deadline = Date().addingTimeInterval(15)
        while true {
            if let status = waitForExit(wrapperPID, seconds: 0) {
                stopped = status
                throw HarnessError("xenstored exited at startup (\(status)): \(readText(logPath))")
            }
            let ready = (try? XenstoreClient(path: socket)) != nil
                && domains.allSatisfy { (try? XenstoreClient(path: domainSocket($0))) != nil }
            if ready { break }
            if Date() >= deadline {
                stop()
                throw HarnessError("xenstored did not accept connections on \(socket) within 15 s: \(readText(logPath))")
            }
            usleep(10_000)
        }
        // xenstored writes its pid file before it listens; without the pid, killHard could not
        // kill the daemon (the watchdog wrapper does not pass SIGKILL on) and a "restarted"
        // daemon would run next to the old one.
        daemonPID = pid_t(readText(directory + "/daemon.pid").trimmingCharacters(in: .whitespacesAndNewlines))
        if daemonPID == nil {
            stop()
            throw HarnessError("xenstored accepted connections before writing its pid file \(directory)/daemon.pid")
        }
    }

    /// Path of the test socket of an unprivileged domain.
    func domainSocket(_ domid: UInt32) -> String { "\(directory)/dom\(domid)" }

    /// A new privileged (dom0) connection.
    func client() throws -> XenstoreClient { try XenstoreClient(path: socket) }

    /// A new connection acting as unprivileged domain `domid`.
    func client(domain domid: UInt32) throws -> XenstoreClient { try XenstoreClient(path: domainSocket(domid)) }

    /// Whether the daemon process is still alive.
    var isRunning: Bool {
        if stopped != nil { return false }
        if let status = waitForExit(wrapperPID, seconds: 0) {
            stopped = status
            return false
        }
        return daemonPID.map { kill($0, 0) == 0 } ?? true
    }

    /// The daemon's standard error so far.
    var log: String { readText(logPath) }

    private func outputPaths() -> (String, String) {
        outputCounter += 1
        return ("\(directory)/tool\(outputCounter).out", "\(directory)/tool\(outputCounter).err")
    }

    private func toolEnvironment() -> [String: String] {
        var environment = ProcessInfo.processInfo.environment
        environment["XENSTORED_PATH"] = socket
        environment.removeValue(forKey: "XENSTORED_RUNDIR")
        return environment
    }

    /// Runs a client tool against this daemon (via `XENSTORED_PATH`), killed after `seconds`.
    func run(_ program: String, _ arguments: [String], seconds: Int = 20) throws -> ToolResult {
        let (out, err) = outputPaths()
        let command = [program] + arguments
        let pid = try spawnProcess([Programs.timeout, "-k", "2", String(seconds)] + command,
                                   stdout: out, stderr: err, environment: toolEnvironment())
        let status = waitForExit(pid, seconds: Double(seconds) + 10) ?? {
            kill(pid, SIGKILL)
            return waitForExit(pid, seconds: 5) ?? ExitStatus(raw: SIGKILL)
        }()
        return ToolResult(command: command, status: status, stdout: readText(out), stderr: readText(err))
    }

    /// Runs one of the `xenstore-*` clients of `xenstore-utils`.
    func xs(_ name: String, _ arguments: String..., seconds: Int = 20) throws -> ToolResult {
        let path = Programs.client(name)
        try Programs.require(path, package: "xenstore-utils")
        return try run(path, arguments, seconds: seconds)
    }

    /// Starts a client tool in the background.
    func start(_ program: String, _ arguments: [String], seconds: Int = 20, package: String = "xenstore-utils") throws -> BackgroundTool {
        try Programs.require(program, package: package)
        let (out, err) = outputPaths()
        let command = [program] + arguments
        let pid = try spawnProcess([Programs.timeout, "-k", "2", String(seconds)] + command,
                                   stdout: out, stderr: err, environment: toolEnvironment())
        return BackgroundTool(command: command, pid: pid, stdoutPath: out, stderrPath: err)
    }

    /// Stops the daemon (SIGTERM, then SIGKILL), removes its directory, and records an issue if it
    /// had crashed or been ended by the watchdog before.
    @discardableResult
    func stop(sourceLocation: SourceLocation = #_sourceLocation) -> ExitStatus {
        if let stopped {
            cleanUp()
            return stopped
        }
        var status = waitForExit(wrapperPID, seconds: 0)
        let diedEarly = status != nil
        if status == nil {
            kill(wrapperPID, SIGTERM)  // timeout forwards it to the daemon
            status = waitForExit(wrapperPID, seconds: 5)
        }
        if status == nil {
            if let daemonPID { kill(daemonPID, SIGKILL) }
            kill(wrapperPID, SIGKILL)
            status = waitForExit(wrapperPID, seconds: 5)
        }
        let final = status ?? ExitStatus(raw: SIGKILL)
        stopped = final
        if final.code == 124 || (diedEarly && final.signal == SIGKILL) {
            Issue.record("the \(watchdogSeconds) s watchdog ended xenstored: the test was blocked (probably waiting for a reply that never came); log:\n\(log)",
                         sourceLocation: sourceLocation)
        } else if diedEarly || final.code != 0 {
            Issue.record("xenstored did not shut down cleanly (\(final)\(diedEarly ? ", it had already exited" : "")); log:\n\(log)",
                         sourceLocation: sourceLocation)
        }
        cleanUp()
        return final
    }

    /// Waits up to `seconds` for the daemon to exit by itself; its exit status, or nil if it still runs.
    func waitForOwnExit(seconds: Double) -> ExitStatus? {
        if let stopped { return stopped }
        stopped = waitForExit(wrapperPID, seconds: seconds)
        return stopped
    }

    /// Kills the daemon with SIGKILL (a crash, for recovery tests) and removes its directory.
    func killHard() {
        if stopped == nil {
            if let daemonPID { kill(daemonPID, SIGKILL) }
            stopped = waitForExit(wrapperPID, seconds: 5) ?? ExitStatus(raw: SIGKILL)
        }
        cleanUp()
    }

    private func cleanUp() {
        try? FileManager.default.removeItem(atPath: directory)
    }

    deinit {
        if stopped == nil { stop() }
    }
}

// MARK: - Protocol helpers

/// UTF-8 bytes of a string.
/// Runs a program to completion; returns its exit status and standard output (standard error
/// too with `mergingStandardError`, else it is discarded).
func runCapturing(_ program: String, _ arguments: [String], mergingStandardError: Bool = false) throws -> (status: Int32, output: String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: program)
    process.arguments = arguments
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = mergingStandardError ? pipe : FileHandle.nullDevice
    try process.run()
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: data, as: UTF8.self))
}

/// Runs xsctl (built next to the daemon) and returns its exit status and output.
func xsctl(socket: String, _ arguments: String...) throws -> (status: Int32, output: String) {
    try runCapturing(Programs.xsctl, ["--socket", socket] + arguments, mergingStandardError: true)
}

/// Runs git with arguments; returns exit status and standard output.
func git(_ arguments: String...) throws -> (status: Int32, output: String) { try runCapturing("/usr/bin/git", arguments) }

/// A new empty directory `/tmp/<prefix>-XXXXXX`; the caller removes it.
func makeTemporaryDirectory(_ prefix: String) throws -> String {
    var template = Array("/tmp/\(prefix)-XXXXXX".utf8CString)
    guard let made = mkdtemp(&template) else { throw HarnessError("mkdtemp failed") }
    return String(cString: made)
}

/// What a write storm got acknowledged before the daemon was killed.
struct StormOutcome {
    /// The last acknowledged value of each key.
    let lastValues: [String: String]
    /// All acknowledged writes.
    let count: Int
    /// Whether every writer stopped (on an error) within 10 s of the storm's end.
    let writersStopped: Bool
    /// The error that stopped each writer (nil for a writer still running at the end).
    let errors: [ClientError?]
}

/// Each writer writes `<prefix>/k<index % 50>` = `v<index>` as fast as it can until a request
/// fails; after `microseconds` (or once every writer has stopped), `end` runs (e.g. a SIGKILL of the daemon) and the writers are
/// given 10 s to notice.
func writeStorm(_ writers: [(client: XenstoreClient, prefix: String)], microseconds: UInt32, then end: () -> Void) -> StormOutcome {
    /// The writes the daemon acknowledged and the writers' errors, shared under `lock`.
    final class Shared: @unchecked Sendable {
        var writes: [(String, String)] = []
        var errors: [ClientError?]
        init(_ count: Int) { errors = Array(repeating: nil, count: count) }
    }
    let lock = NSLock()
    let shared = Shared(writers.count)
    let finished = DispatchGroup()
    for (number, writer) in writers.enumerated() {
        finished.enter()
        Thread {
            defer { finished.leave() }
            var index = 0
            while true {
                let path = "\(writer.prefix)/k\(index % 50)"
                let value = "v\(index)"
                do throws(ClientError) { try writer.client.write(path, bytes(value)) } catch {
                    lock.withLock { shared.errors[number] = error }
                    return
                }
                lock.withLock { shared.writes.append((path, value)) }
                index += 1
            }
        }.start()
    }
    _ = finished.wait(timeout: .now() + .microseconds(Int(microseconds)))
    end()
    let stopped = finished.wait(timeout: .now() + 10) == .success
    lock.lock()
    defer { lock.unlock() }
    var last: [String: String] = [:]
    for (path, value) in shared.writes { last[path] = value }
    return StormOutcome(lastValues: last, count: shared.writes.count, writersStopped: stopped, errors: shared.errors)
}

/// `writers` dom0 clients write `/storm/w<writer>/k<index % 50>` = `v<index>` as fast as they
/// can; after `microseconds` the daemon is killed with SIGKILL.
func writeStormThenKill(_ daemon: Daemon, writers: Int = 3, microseconds: UInt32) throws -> StormOutcome {
    let clients = try (0..<writers).map { (client: try daemon.client(), prefix: "/storm/w\($0)") }
    return writeStorm(clients, microseconds: microseconds) { daemon.killHard() }
}

/// After a storm: every key holds its last acknowledged value or a later one, never an older one.
func expectNoAcknowledgedWriteLost(_ outcome: StormOutcome, reading client: XenstoreClient,
                                   sourceLocation: SourceLocation = #_sourceLocation) throws {
    for (path, value) in outcome.lastValues.sorted(by: { $0.key < $1.key }) {
        let stored = text(try client.read(path))
        let storedIndex = Int(stored.dropFirst()) ?? -1
        let expectedIndex = Int(value.dropFirst()) ?? -1
        #expect(storedIndex >= expectedIndex, "\(path): acknowledged \(value), found \(stored)", sourceLocation: sourceLocation)
    }
}

func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

/// Text of a byte array.
func text(_ value: [UInt8]) -> String { String(decoding: value, as: UTF8.self) }

/// NUL-terminated strings joined into one payload.
func payload(_ parts: String...) -> [UInt8] { Payload.join(parts.map { bytes($0) }) }

/// The wire error of a reply, nil if it is not an ERROR message.
func wireError(_ message: Message?) -> XenstoreError? {
    guard let message, message.header.type == MessageType.error.rawValue else { return nil }
    return XenstoreError(payload: message.payload)
}

extension XenstoreClient {
    /// Sends one raw request and returns its reply, skipping watch events; nil if the daemon closed the connection.
    func exchange(type: UInt32, requestID: UInt32, transactionID: UInt32 = 0, payload: [UInt8]) throws -> Message? {
        try sendRaw(Message(type: type, requestID: requestID, transactionID: transactionID, payload: payload).encoded)
        while let message = try receive() {
            if message.header.type == MessageType.watchEvent.rawValue { continue }
            return message
        }
        return nil
    }

    /// GET_PERMS as a list of strings such as `["n5", "r0"]`.
    func permissions(_ path: String) throws -> [String] {
        Payload.strings(try request(.getPerms, payload(path))).strings.map { text($0) }
    }

    /// SET_PERMS with permission strings such as `"n5"`.
    func setPermissions(_ path: String, _ permissions: String...) throws {
        _ = try request(.setPerms, Payload.join(([path] + permissions).map { bytes($0) }))
    }

    /// TRANSACTION_START; returns the transaction id.
    func startTransaction() throws -> UInt32 {
        let reply = try request(.transactionStart, [0])
        guard let id = UInt32(text(Payload.strings(reply).strings.first ?? [])) else {
            throw ClientError.connection("bad TRANSACTION_START reply \(reply)")
        }
        return id
    }

    /// TRANSACTION_END with `T` (commit) or `F` (abort).
    func endTransaction(_ id: UInt32, commit: Bool) throws {
        _ = try request(.transactionEnd, payload(commit ? "T" : "F"), transaction: id)
    }

    /// The next watch event as (path, token) text.
    func nextWatchEvent() throws -> (path: String, token: String) {
        let (path, token) = try nextEvent()
        return (text(path), text(token))
    }
}

