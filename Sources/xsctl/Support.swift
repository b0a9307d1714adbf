// What xsctl's commands share: error exits, the database given with -C, and running git and bisect's command.
#if canImport(Glibc)
import Glibc
#endif
import XenstoreHost
import XenstoreStore
import XenstoreWire

func die(_ message: String) -> Never {
    fputs("xsctl: \(message)\n", stderr)
    exit(1)
}

/// What a daemon's error answer means, for messages.
func meaning(_ error: XenstoreError) -> String {
    switch error {
    case .ENOENT: return "no such node or revision"
    case .EACCES: return "permission denied"
    case .EINVAL: return "invalid argument"
    case .EAGAIN: return "conflict, nothing was changed; try again"
    case .ENOSPC: return "over a quota, or the store is full"
    case .ENOMEM: return "over the memory quota"
    case .E2BIG: return "reply too large"
    case .EEXIST: return "already exists"
    case .EBUSY: return "busy"
    default: return "request failed"
    }
}

/// Dies with a message naming the request that failed and what its error means.
func die(_ request: String, _ error: Error) -> Never {
    if let failure = error as? ClientError, case .server(let code) = failure {
        die("\(request): \(code) (\(meaning(code)))")
    }
    die("\(request): \(error)")
}

func text(_ bytes: [UInt8]) -> String { String(decoding: bytes, as: UTF8.self) }

/// The database given with -C, which `command` needs.
func openDatabase(_ databasePath: String?, for command: String) -> GitDatabase {
    guard let databasePath else { die("\(command) needs the database directory: xsctl -C DIR \(command) ...") }
    guard access(databasePath + "/.git/HEAD", F_OK) == 0 else { die("\(databasePath) is not a xenstored database") }
    do { return try GitDatabase(directory: databasePath) } catch { die("\(error)") }
}

func resolve(_ database: GitDatabase, _ revision: String) -> ObjectID {
    guard let id = database.resolve(revision) else { die("unknown revision \(revision)") }
    return id
}

/// Runs a shell command; returns its exit status (-1 if it could not run).
func shell(_ command: String) -> Int32 {
    let status = system(command)
    guard status != -1 else { return -1 }
    return (status >> 8) & 0xFF
}

/// Runs a command and returns its standard output.
func capture(_ command: String) -> String {
    guard let pipe = popen(command, "r") else { return "" }
    var output = ""
    var buffer = [CChar](repeating: 0, count: 4096)
    while fgets(&buffer, Int32(buffer.count), pipe) != nil { output += String(cString: buffer) }
    pclose(pipe)
    return output
}

/// Single-quotes a word for /bin/sh.
func quoted(_ text: String) -> String {
    var out = "'"
    for character in text { out += character == "'" ? "'\\''" : String(character) }
    return out + "'"
}

/// Text without surrounding whitespace and newlines.
func trimmed(_ text: String) -> String {
    String(text.drop(while: { $0 == " " || $0 == "\n" }).reversed().drop(while: { $0 == " " || $0 == "\n" }).reversed())
}

/// Runs `argv` as it is (found on PATH, no shell in between) in `directory` and waits for it.
///
/// - Returns: its exit status, or 128 + the signal that ended it; dies if it cannot be started.
func runInDirectory(_ argv: [String], _ directory: String) -> Int32 {
    // The child inherits the working directory at spawn time: move there for the spawn only.
    let home = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)
    guard home >= 0 else { die("cannot open the working directory: \(String(cString: strerror(errno)))") }
    defer { close(home) }
    guard chdir(directory) == 0 else { die("cannot enter \(directory): \(String(cString: strerror(errno)))") }
    var cArguments = argv.map { strdup($0) } + [nil]
    defer { for pointer in cArguments { free(pointer) } }
    fflush(stdout)
    var pid: pid_t = 0
    let started = posix_spawnp(&pid, argv[0], nil, nil, &cArguments, environ)
    guard fchdir(home) == 0 else { die("cannot return to the working directory: \(String(cString: strerror(errno)))") }
    guard started == 0 else { die("cannot run \(argv[0]): \(String(cString: strerror(started)))") }
    var status: Int32 = 0
    while waitpid(pid, &status, 0) < 0 {
        guard errno == EINTR else { die("waitpid: \(String(cString: strerror(errno)))") }
    }
    let signal = status & 0x7F
    return signal == 0 ? (status >> 8) & 0xFF : 128 + signal
}
