// xsctl: a small command-line client for the daemon — read, write, ls, rm, watch and history.

#if canImport(Glibc)
import Glibc
#endif
import XenstoreHost
import XenstoreStore
import XenstoreWire

let usage = """
Usage: xsctl [--socket PATH] [-C DATABASE] COMMAND [ARGS]

Live store (over the socket):
  read PATH...                 print each value
  write KEY=VALUE...           write values (creating parents)
  ls [PATH]                    list the subtree under PATH (default /) with values
  rm PATH...                   remove nodes and their subtrees
  watch PATH [COUNT]           print watch events (COUNT events, default forever)
  history [COUNT]              the newest commits held by the daemon: id, time, summary
  restore REV [PATH]           bring PATH (default /) back to REV as a new commit (fires watches)
  revert REV                   undo the change REV made, as a new commit (EAGAIN on conflict)

History (in the daemon's --database directory, given with -C):
  log [PATH] [-n N]            first-parent history, only commits that changed PATH
  show REV [PATH]              a commit and its node changes
  diff REV1 REV2 [PATH]        node changes between two revisions
  blame PATH                   the commit that last changed each node under PATH
  bisect --good REV --bad REV -- COMMAND...
                               find the first commit where COMMAND (run by /bin/sh in a checkout
                               of each revision: exit 0 good, 125 skip, else bad) turns bad
  checkout REV DIR             write the tree of REV into DIR (.value/.perms files)
  gc                           pack the repository with `git gc` (safe while the daemon runs)

Between hosts (ordinary git remotes):
  clone SOURCE DIR             clone a database (then: xenstored --database DIR)
  pull SOURCE [BRANCH]         fetch SOURCE's BRANCH (default main) and merge it into the live store
  push REMOTE [BRANCH]         push our main to REMOTE as BRANCH (default "pushed"; never its main)

REV: a commit id or unique prefix, main/HEAD, a branch, each optionally with ~N.
The socket defaults to $XENSTORED_PATH, else $XENSTORED_RUNDIR/socket, else /var/run/xenstored/socket.

"""

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

var arguments = Array(CommandLine.arguments.dropFirst())
var socketPath = defaultSocketPath()
var databasePath: String? = nil
while let first = arguments.first, first == "--socket" || first == "-C" {
    guard arguments.count >= 2 else { die("\(first) needs a path") }
    if first == "--socket" { socketPath = arguments[1] } else { databasePath = arguments[1] }
    arguments.removeFirst(2)
}
guard let command = arguments.first else {
    print(usage, terminator: "")
    exit(2)
}
let rest = Array(arguments.dropFirst())

func text(_ bytes: [UInt8]) -> String { String(decoding: bytes, as: UTF8.self) }

/// The database given with -C (required by the history commands).
func openDatabase() -> GitDatabase {
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

let historyCommands: Set<String> = ["log", "show", "diff", "blame", "bisect", "checkout", "clone", "push", "gc"]
if historyCommands.contains(command) {
    switch command {
    case "clone":
        guard rest.count == 2 else { die("clone SOURCE DIR") }
        guard shell("git clone -q \(quoted(rest[0])) \(quoted(rest[1]))") == 0 else { exit(1) }
        // No automatic gc behind the daemon that will serve the clone (see GitDatabase.configuration).
        exit(shell("git -C \(quoted(rest[1])) config gc.auto 0 && git -C \(quoted(rest[1])) config maintenance.auto false") == 0 ? 0 : 1)
    case "gc":
        // git gc keeps unreachable objects for two weeks, so the objects of a batch the daemon
        // is writing (not yet referenced by main) are never pruned; main moves under git's lock.
        let database = openDatabase()
        exit(shell("git -C \(quoted(database.directory)) gc --quiet") == 0 ? 0 : 1)
    case "push":
        let database = openDatabase()
        guard let remote = rest.first else { die("push REMOTE [BRANCH]") }
        let branch = rest.count > 1 ? rest[1] : "pushed"
        guard branch != "main" else { die("refusing to push to main: a running daemon owns it; push to another branch and pull from it there") }
        exit(shell("git -C \(quoted(database.directory)) push -q \(quoted(remote)) main:refs/heads/\(quoted(branch))") == 0 ? 0 : 1)
    default:
        break
    }
    let database = openDatabase()
    let browser = HistoryBrowser(database: database)
    guard let head = try? database.headID() else { die("the database has no commits") }
    switch command {
    case "log":
        var limit = Int.max
        var path: String? = nil
        var index = 0
        while index < rest.count {
            if rest[index] == "-n", index + 1 < rest.count { limit = Int(rest[index + 1]) ?? limit; index += 2 } else { path = rest[index]; index += 1 }
        }
        for line in browser.log(from: head, path: path, limit: limit) { print(line) }
    case "show":
        guard let revision = rest.first else { die("show REV [PATH]") }
        for line in browser.show(resolve(database, revision), path: rest.count > 1 ? rest[1] : "/") { print(line) }
    case "diff":
        guard rest.count >= 2 else { die("diff REV1 REV2 [PATH]") }
        for line in browser.diff(resolve(database, rest[0]), resolve(database, rest[1]), path: rest.count > 2 ? rest[2] : "/") {
            print(line)
        }
    case "blame":
        guard let path = rest.first else { die("blame PATH") }
        for line in browser.blame(from: head, path: path, limit: 100_000) { print(line) }
    case "checkout":
        guard rest.count == 2 else { die("checkout REV DIR") }
        do { try browser.checkout(resolve(database, rest[0]), into: rest[1]) } catch { die("checkout \(rest[0]): \(error)") }
    case "bisect":
        guard let separator = rest.firstIndex(of: "--"), separator + 1 < rest.count else {
            die("bisect --good REV --bad REV -- COMMAND...")
        }
        var good: String? = nil
        var bad: String? = nil
        var index = 0
        while index + 1 < separator {
            if rest[index] == "--good" { good = rest[index + 1] } else if rest[index] == "--bad" { bad = rest[index + 1] }
            index += 2
        }
        guard let good, let bad else { die("bisect needs --good REV and --bad REV") }
        let goodID = resolve(database, good)
        let predicate = rest[(separator + 1)...].joined(separator: " ")
        // Candidates: first-parent commits after good, up to and including bad, oldest first.
        var candidates: [ObjectID] = []
        for (id, _) in browser.firstParentChain(from: resolve(database, bad)) {
            if id == goodID { break }
            candidates.append(id)
        }
        candidates.reverse()
        guard !candidates.isEmpty else { die("bad is not a descendant of good along first parents") }
        func isBad(_ id: ObjectID) -> Bool? {
            var template = Array("/tmp/xsctl-bisect-XXXXXX".utf8CString)
            guard let made = mkdtemp(&template) else { die("mkdtemp failed") }
            let directory = String(cString: made)
            defer { _ = shell("rm -rf \(quoted(directory))") }
            do { try browser.checkout(id, into: directory) } catch { die("cannot check out \(hexString(id)): \(error)") }
            let status = shell("cd \(quoted(directory)) && \(predicate)")
            print("bisect: \(String(hexString(id).prefix(12))) \(status == 0 ? "good" : status == 125 ? "skip" : "bad")")
            return status == 125 ? nil : status != 0
        }
        var low = 0  // candidates[..<low] are good
        var high = candidates.count - 1  // candidates[high] is bad (given)
        while low < high {
            var middle = (low + high) / 2
            var verdict = isBad(candidates[middle])
            while verdict == nil && middle < high - 1 {
                middle += 1
                verdict = isBad(candidates[middle])
            }
            if verdict ?? true { high = middle } else { low = middle + 1 }
        }
        let first = candidates[high]
        print("first bad commit: " + browser.logLine(first, database.commitRecord(first)!))
    default:
        break
    }
    exit(0)
}

do {
    let client = try XenstoreClient(path: socketPath)
    switch command {
    case "read":
        for path in rest {
            do { print(text(try client.read(path))) } catch { die("read \(path)", error) }
        }
    case "write":
        for pair in rest {
            guard let equals = pair.firstIndex(of: "=") else { die("write needs KEY=VALUE, got \(pair)") }
            let key = String(pair[..<equals])
            do { try client.write(key, Array(pair[pair.index(after: equals)...].utf8)) } catch { die("write \(key)", error) }
        }
    case "ls":
        let top = rest.first ?? "/"
        var stack: [(String, Int)] = [(top, 0)]
        while let (path, depth) = stack.popLast().map({ ($0.0, $0.1) }) {
            let name = depth == 0 ? path : String(path.split(separator: "/").last ?? "")
            let value = (try? client.read(path)) ?? []
            print(String(repeating: " ", count: depth) + name + " = \"" + text(value) + "\"")
            let children = try client.list(path)
            for child in children.reversed() {
                stack.append(((path == "/" ? "" : path) + "/" + child, depth + 1))
            }
        }
    case "rm":
        for path in rest {
            do { try client.remove(path) } catch { die("rm \(path)", error) }
        }
    case "watch":
        guard let path = rest.first else { die("watch needs a path") }
        let count = rest.count > 1 ? Int(rest[1]) ?? Int.max : Int.max
        try client.watch(path, token: "xsctl")
        var seen = 0
        while seen < count {
            let (eventPath, _) = try client.nextEvent()
            print(text(eventPath))
            fflush(stdout)
            seen += 1
        }
    case "history":
        print(try client.control(["history", rest.first ?? "20"]), terminator: "")
    case "restore", "revert":
        guard let revision = rest.first else { die("\(command) REV") }
        var full = revision
        if databasePath != nil {
            // The revision comes from the database on disk: check it as the daemon will load it.
            let database = openDatabase()
            let id = resolve(database, revision)
            do { try HistoryBrowser(database: database).validateImport([id]) } catch {
                die("\(command) \(revision): rejected, nothing was changed: \(error)")
            }
            full = hexString(id)
        }
        do {
            print(try client.control([command, full] + rest.dropFirst()))
        } catch ClientError.server(.ENOENT) {
            die("\(command) \(revision): ENOENT: the daemon has no such revision (or node path), or the revision's tree breaks the store's rules (check it with xsctl -C DATABASE show \(revision))")
        } catch {
            die("\(command) \(revision)", error)
        }
    case "pull":
        let database = openDatabase()
        guard let source = rest.first else { die("pull SOURCE [BRANCH]") }
        let branch = rest.count > 1 ? rest[1] : "main"
        let dir = quoted(database.directory)
        // Fetch into a quarantine repository first (borrowing our objects through git's
        // alternates), check every incoming commit like client input, and only then copy the
        // objects into the database: a rejected pull leaves the database untouched.
        var template = Array("/tmp/xsctl-pull-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { die("pull: mkdtemp failed") }
        let quarantinePath = String(cString: made)
        defer { _ = shell("rm -rf \(quoted(quarantinePath))") }
        let quarantine = quoted(quarantinePath)
        guard shell("git init -q \(quarantine)") == 0,
              shell("echo \(quoted(database.directory + "/.git/objects")) > \(quarantine)/.git/objects/info/alternates") == 0 else {
            die("pull: cannot prepare a quarantine repository in \(quarantinePath)")
        }
        guard shell("git -C \(quarantine) fetch -q \(quoted(source)) +\(quoted(branch)):refs/heads/incoming") == 0 else {
            die("git fetch from \(source) failed")
        }
        let ours = trimmed(capture("git -C \(dir) rev-parse main"))
        var incoming: [ObjectID] = []
        for line in capture("git -C \(quarantine) rev-list refs/heads/incoming --not \(quoted(ours))").split(separator: "\n") {
            guard let id = ObjectID(hex: Array(trimmed(String(line)).utf8)) else { continue }
            incoming.append(id)
        }
        let staged: GitDatabase
        do { staged = try GitDatabase(directory: quarantinePath) } catch { die("pull: \(error)") }
        do {
            // The quarantine borrows the database's objects through its alternates file.
            try HistoryBrowser(database: staged).validateImport(incoming)
        } catch {
            die("pull from \(source) rejected, nothing was fetched or merged: \(error)")
        }
        guard shell("git -C \(dir) fetch -q \(quarantine) +refs/heads/incoming:refs/remotes/pulled/main") == 0 else {
            die("git fetch from the quarantine \(quarantinePath) failed")
        }
        let theirs = trimmed(capture("git -C \(dir) rev-parse refs/remotes/pulled/main"))
        let base = trimmed(capture("git -C \(dir) merge-base main refs/remotes/pulled/main"))
        guard theirs.count == 40, base.count == 40 else { die("no common history with \(source) (merge-base failed)") }
        if base == theirs {
            print("already up to date")
        } else {
            do {
                print("merged: " + (try client.control(["merge", theirs, base])))
            } catch {
                guard error == .server(.EAGAIN) else { die("merge of \(source)'s \(branch) (\(theirs))", error) }
                die("conflict: \(source) changed nodes that changed here too; nothing was merged (inspect with xsctl -C \(database.directory) diff main refs/remotes/pulled/main)")
            }
        }
    default:
        die("unknown command \(command)\n\(usage)")
    }
} catch {
    die(command, error)
}
