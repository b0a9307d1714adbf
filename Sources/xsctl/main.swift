// xsctl: a small command-line client for the daemon — read, write, ls, rm, watch and history.

#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import XenstoreHost
import XenstoreStore
import XenstoreWire

/// The `xsctl` command: options shared by every command, and the commands.
struct XSCtl: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "xsctl",
        abstract: "A small command-line client for xenstored: the live store, its history, and history between hosts.",
        usage: "xsctl [--socket PATH] [-C DATABASE] COMMAND [ARGS]",
        discussion: """
            Live store (over the socket):
              read PATH...                 print each value
              write KEY=VALUE...           write values (creating parents)
              ls [PATH]                    list the subtree under PATH (default /) with
                                           values
              rm PATH...                   remove nodes and their subtrees
              watch PATH [COUNT]           print watch events (COUNT events, default
                                           forever)
              history [COUNT]              the newest commits held by the daemon: id,
                                           time, summary (default 20)
              restore REV [PATH]           bring PATH (default /) back to REV as a new
                                           commit (fires watches)
              revert REV                   undo the change REV made, as a new commit
                                           (EAGAIN on conflict)
              mount MOUNTPOINT             the live store (read-write, with this
                                           connection's rights) and history/<REV>/
                                           (read-only) as a file system (FUSE)

            History (in the daemon's --database directory, given with -C):
              log [PATH] [-n N]            first-parent history, only commits that
                                           changed PATH
              show REV [PATH]              a commit and its node changes
              diff REV1 REV2 [PATH]        node changes between two revisions
              blame PATH                   the commit that last changed each node
                                           under PATH
              bisect --good REV --bad REV -- COMMAND [ARGS...]
                                           find the first commit where COMMAND (run
                                           as given, no shell, in a checkout of each
                                           revision: exit 0 good, 125 skip, else bad)
                                           turns bad
              checkout REV DIR             write the tree of REV into DIR (.value/.perms
                                           files)
              gc                           pack the repository with `git gc` (safe
                                           while the daemon runs)

            Between hosts (ordinary git remotes):
              clone SOURCE DIR             clone a database (then: xenstored --database
                                           DIR)
              pull SOURCE [BRANCH]         fetch SOURCE's BRANCH (default main) and
                                           merge it into the live store
              push REMOTE [BRANCH]         push our main to REMOTE as BRANCH (default
                                           "pushed"; never its main)

            REV: a commit id or unique prefix, main/HEAD, a branch, each optionally
            with ~N. The socket defaults to $XENSTORED_PATH, else
            $XENSTORED_RUNDIR/socket, else /var/run/xenstored/socket.
            `xsctl COMMAND --help` shows one command's arguments.
            Exit status: 0 success, 1 a failed request or command, 2 a usage error.
            """,
        subcommands: [Read.self, Write.self, List.self, Remove.self, Watch.self, History.self, Restore.self, Revert.self, Mount.self,
                      Log.self, Show.self, Diff.self, Blame.self, Bisect.self, Checkout.self, GC.self,
                      Clone.self, Pull.self, Push.self])

    @Option(help: ArgumentHelp("The daemon's socket.", valueName: "path"))
    var socket: String?

    @Option(name: .customShort("C"), help: ArgumentHelp("The daemon's --database directory (history commands, pull, push; restore/revert check REV in it).",
                                                         valueName: "database"))
    var database: String?

    /// Without a command: the help, and the status of a usage error.
    func run() throws {
        print(XSCtl.helpMessage())
        throw ExitCode(2)
    }

    /// The socket to talk to.
    var socketPath: String { socket ?? defaultSocketPath() }

    /// A connection to the daemon for `command`, or the process ends.
    func client(for command: String) -> XenstoreClient {
        do { return try XenstoreClient(path: socketPath) } catch { die(command, error) }
    }
}

// MARK: - Live store

struct Read: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print each value.", shouldDisplay: false)
    @ParentCommand var xsctl: XSCtl
    @Argument(help: ArgumentHelp("Node paths.", valueName: "path")) var paths: [String] = []

    func run() {
        let client = xsctl.client(for: "read")
        for path in paths {
            do { print(text(try client.read(path))) } catch { die("read \(path)", error) }
        }
    }
}

struct Write: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Write values (creating parents).", shouldDisplay: false)
    @ParentCommand var xsctl: XSCtl
    @Argument(help: ArgumentHelp("Node path and value.", valueName: "key=value")) var pairs: [String] = []

    func validate() throws {
        for pair in pairs where !pair.contains("=") { throw ValidationError("write needs KEY=VALUE, got \(pair)") }
    }

    func run() {
        let client = xsctl.client(for: "write")
        for pair in pairs {
            let equals = pair.firstIndex(of: "=")!
            let key = String(pair[..<equals])
            do { try client.write(key, Array(pair[pair.index(after: equals)...].utf8)) } catch { die("write \(key)", error) }
        }
    }
}

struct List: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "ls", abstract: "List the subtree under PATH (default /) with values.", shouldDisplay: false)
    @ParentCommand var xsctl: XSCtl
    @Argument(help: "Top of the subtree.") var path = "/"

    func run() {
        let client = xsctl.client(for: "ls")
        var stack: [(String, Int)] = [(path, 0)]
        while let (path, depth) = stack.popLast().map({ ($0.0, $0.1) }) {
            let name = depth == 0 ? path : String(path.split(separator: "/").last ?? "")
            let value = (try? client.read(path)) ?? []
            print(String(repeating: " ", count: depth) + name + " = \"" + text(value) + "\"")
            let children: [String]
            do { children = try client.list(path) } catch { die("ls", error) }
            for child in children.reversed() {
                stack.append(((path == "/" ? "" : path) + "/" + child, depth + 1))
            }
        }
    }
}

struct Remove: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "rm", abstract: "Remove nodes and their subtrees.", shouldDisplay: false)
    @ParentCommand var xsctl: XSCtl
    @Argument(help: ArgumentHelp("Node paths.", valueName: "path")) var paths: [String] = []

    func run() {
        let client = xsctl.client(for: "rm")
        for path in paths {
            do { try client.remove(path) } catch { die("rm \(path)", error) }
        }
    }
}

struct Watch: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print watch events (COUNT events, default forever).", shouldDisplay: false)
    @ParentCommand var xsctl: XSCtl
    @Argument(help: "Node path to watch.") var path: String
    @Argument(help: "Events to print before exiting.") var count: Int?

    func validate() throws {
        if let count, count < 1 { throw ValidationError("watch COUNT must be at least 1") }
    }

    func run() {
        let client = xsctl.client(for: "watch")
        do {
            try client.watch(path, token: "xsctl")
            var seen = 0
            while seen < count ?? Int.max {
                let (eventPath, _) = try client.nextEvent()
                print(text(eventPath))
                fflush(stdout)
                seen += 1
            }
        } catch {
            die("watch", error)
        }
    }
}

struct History: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "The newest commits held by the daemon: id, time, summary.", shouldDisplay: false)
    @ParentCommand var xsctl: XSCtl
    @Argument(help: "How many commits.") var count = 20

    func validate() throws {
        if count < 1 { throw ValidationError("history COUNT must be at least 1") }
    }

    func run() {
        do { print(try xsctl.client(for: "history").control(["history", String(count)]), terminator: "") } catch { die("history", error) }
    }
}

/// `restore` and `revert`: a revision (checked in the database first if -C is given) sent to the daemon.
func sendRevision(_ command: String, _ revision: String, _ extra: [String], _ xsctl: XSCtl) {
    let client = xsctl.client(for: command)
    var full = revision
    if xsctl.database != nil {
        // The revision comes from the database on disk: check it as the daemon will load it.
        let database = openDatabase(xsctl.database, for: command)
        let id = resolve(database, revision)
        do { try HistoryBrowser(database: database).validateImport([id]) } catch {
            die("\(command) \(revision): rejected, nothing was changed: \(error)")
        }
        full = hexString(id)
    }
    do {
        print(try client.control([command, full] + extra))
    } catch ClientError.server(.ENOENT) {
        die("\(command) \(revision): ENOENT: the daemon has no such revision (or node path), or the revision's tree breaks the store's rules (check it with xsctl -C DATABASE show \(revision))")
    } catch {
        die("\(command) \(revision)", error)
    }
}

struct Restore: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Bring PATH (default /) back to REV as a new commit (fires watches).", shouldDisplay: false)
    @ParentCommand var xsctl: XSCtl
    @Argument(help: "Revision.") var rev: String
    @Argument(help: "Subtree to restore.") var path: String?

    func run() { sendRevision("restore", rev, path.map { [$0] } ?? [], xsctl) }
}

struct Revert: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Undo the change REV made, as a new commit (EAGAIN on conflict).", shouldDisplay: false)
    @ParentCommand var xsctl: XSCtl
    @Argument(help: "Revision.") var rev: String

    func run() { sendRevision("revert", rev, [], xsctl) }
}

// MARK: - History (in the database given with -C)

/// The database of -C, its browser and head, for the history commands.
func history(_ xsctl: XSCtl, _ command: String) -> (GitDatabase, HistoryBrowser, ObjectID) {
    let database = openDatabase(xsctl.database, for: command)
    guard let head = try? database.headID() else { die("the database has no commits") }
    return (database, HistoryBrowser(database: database), head)
}

struct Log: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "First-parent history, only commits that changed PATH.", shouldDisplay: false)
    @ParentCommand var xsctl: XSCtl
    @Argument(help: "Only commits that changed this subtree.") var path: String?
    @Option(name: .customShort("n"), help: ArgumentHelp("At most N commits.", valueName: "n")) var limit: Int?

    func validate() throws {
        if let limit, limit < 0 { throw ValidationError("-n needs a number of commits (0 or more)") }
    }

    func run() {
        let (_, browser, head) = history(xsctl, "log")
        for line in browser.log(from: head, path: path, limit: limit ?? Int.max) { print(line) }
    }
}

struct Show: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "A commit and its node changes.", shouldDisplay: false)
    @ParentCommand var xsctl: XSCtl
    @Argument(help: "Revision.") var rev: String
    @Argument(help: "Only changes under this subtree.") var path = "/"

    func run() {
        let (database, browser, _) = history(xsctl, "show")
        for line in browser.show(resolve(database, rev), path: path) { print(line) }
    }
}

struct Diff: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Node changes between two revisions.", shouldDisplay: false)
    @ParentCommand var xsctl: XSCtl
    @Argument(help: "From this revision.") var rev1: String
    @Argument(help: "To this revision.") var rev2: String
    @Argument(help: "Only changes under this subtree.") var path = "/"

    func run() {
        let (database, browser, _) = history(xsctl, "diff")
        for line in browser.diff(resolve(database, rev1), resolve(database, rev2), path: path) { print(line) }
    }
}

struct Blame: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "The commit that last changed each node under PATH.", shouldDisplay: false)
    @ParentCommand var xsctl: XSCtl
    @Argument(help: "Subtree.") var path: String

    func run() {
        let (_, browser, head) = history(xsctl, "blame")
        for line in browser.blame(from: head, path: path, limit: 100_000) { print(line) }
    }
}

struct Bisect: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Find the first commit where COMMAND turns bad.",
        usage: "xsctl -C DATABASE bisect --good REV --bad REV -- COMMAND [ARGS...]",
        discussion: """
            COMMAND runs in a checkout of each revision (.value/.perms files, as `checkout` writes), with its \
            arguments exactly as given: no shell in between (for shell syntax, run `sh -c '...'`). Its exit status \
            0 means good, 125 skip, anything else (or a signal) bad.
            """,
        shouldDisplay: false)
    @ParentCommand var xsctl: XSCtl
    @Option(help: "A revision known to be good.") var good: String
    @Option(help: "A revision known to be bad, a first-parent descendant of --good.") var bad: String
    @Argument(parsing: .postTerminator, help: ArgumentHelp("The command and its arguments, after --.", valueName: "command"))
    var command: [String] = []

    func validate() throws {
        if command.isEmpty { throw ValidationError("bisect needs the command after --: bisect --good REV --bad REV -- COMMAND...") }
    }

    func run() {
        let (database, browser, _) = history(xsctl, "bisect")
        let goodID = resolve(database, good)
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
            let status = runInDirectory(command, directory)
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
    }
}

struct Checkout: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Write the tree of REV into DIR (.value/.perms files).", shouldDisplay: false)
    @ParentCommand var xsctl: XSCtl
    @Argument(help: "Revision.") var rev: String
    @Argument(help: "Directory to write.") var dir: String

    func run() {
        let (database, browser, _) = history(xsctl, "checkout")
        do { try browser.checkout(resolve(database, rev), into: dir) } catch { die("checkout \(rev): \(error)") }
    }
}

struct GC: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "gc", abstract: "Pack the repository with `git gc` (safe while the daemon runs).", shouldDisplay: false)
    @ParentCommand var xsctl: XSCtl

    func run() throws {
        // git gc keeps unreachable objects for two weeks, so the objects of a batch the daemon
        // is writing (not yet referenced by main) are never pruned; main moves under git's lock.
        let database = openDatabase(xsctl.database, for: "gc")
        guard shell("git -C \(quoted(database.directory)) gc --quiet") == 0 else { throw ExitCode.failure }
    }
}

// MARK: - Between hosts

struct Clone: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Clone a database (then: xenstored --database DIR).", shouldDisplay: false)
    @Argument(help: "A database or git remote.") var source: String
    @Argument(help: "The new database directory.") var dir: String

    func run() throws {
        guard shell("git clone -q \(quoted(source)) \(quoted(dir))") == 0 else { throw ExitCode.failure }
        // No automatic gc behind the daemon that will serve the clone (see GitDatabase.configuration).
        guard shell("git -C \(quoted(dir)) config gc.auto 0 && git -C \(quoted(dir)) config maintenance.auto false") == 0 else {
            throw ExitCode.failure
        }
    }
}

struct Pull: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Fetch SOURCE's BRANCH and merge it into the live store.", shouldDisplay: false)
    @ParentCommand var xsctl: XSCtl
    @Argument(help: "A database or git remote.") var source: String
    @Argument(help: "Its branch.") var branch = "main"

    func run() {
        let client = xsctl.client(for: "pull")
        let database = openDatabase(xsctl.database, for: "pull")
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
    }
}

struct Push: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Push our main to REMOTE as BRANCH (never its main).", shouldDisplay: false)
    @ParentCommand var xsctl: XSCtl
    @Argument(help: "A database or git remote.") var remote: String
    @Argument(help: "The branch to push to.") var branch = "pushed"

    func run() throws {
        let database = openDatabase(xsctl.database, for: "push")
        guard branch != "main" else { die("refusing to push to main: a running daemon owns it; push to another branch and pull from it there") }
        guard shell("git -C \(quoted(database.directory)) push -q \(quoted(remote)) main:refs/heads/\(quoted(branch))") == 0 else {
            throw ExitCode.failure
        }
    }
}

// MARK: - Entry

do {
    var command = try XSCtl.parseAsRoot()
    try command.run()
} catch {
    let status = XSCtl.exitCode(for: error)
    if status == .success {
        print(XSCtl.fullMessage(for: error))
    } else if !(error is ExitCode) {
        // A usage error: one line, status 2.
        fputs("xsctl: \(XSCtl.message(for: error)) (see xsctl --help)\n", stderr)
        exit(2)
    }
    exit(status.rawValue)
}
