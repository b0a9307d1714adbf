// Entry point of the host daemon: parses options, builds the server and runs the socket loop.

#if canImport(Glibc)
import Glibc
#endif
import XenstoreBlock
import XenstoreHost
import XenstoreServer
import XenstoreStore
import XenstoreXen

let usage = """
Usage: xenstored [options]

Serves the Xenstore protocol on a Unix socket; every change is a git-style commit.

  --socket PATH              socket to listen on (default: $XENSTORED_PATH,
                             else $XENSTORED_RUNDIR/socket, else /var/run/xenstored/socket)
  --pid-file FILE, -F FILE   write the daemon's pid to FILE
  --database DIR             keep the history as a git repository in DIR/.git (created if
                             missing; a restart on the same DIR resumes from its head)
  --reserve SIZE             with --database: answer ENOSPC to requests that would grow the
                             store while its file system has less than SIZE free (default 8M)
  --repack-every N           with --database: pack loose objects with a background
                             `git repack -d` every N objects written (default 20000; 0: never)
  --block FILE               keep the history in FILE used as a fixed-size block device
                             (docs/block-format.md; created if missing; a restart resumes).
                             A file without a valid store is formatted only when it reads
                             as all zero; a damaged, truncated or foreign one is refused,
                             unchanged. When the store is nearly full, requests that would
                             grow it get ENOSPC; if a batch still cannot be written the
                             daemon stops (non-zero exit) without answering that round
  --block-size SIZE          size of a new --block file, e.g. 16M (default 16M); if given,
                             an existing file must have this size. Old history is squashed
                             when the file fills
  --squash-at PERCENT        squash --block history when a batch would fill the log half
                             past PERCENT (default 90)
  --keep-last N              a squash keeps the newest N commits of the head's first-parent
                             chain (default 16), plus open transactions' bases
  --keep-newer-than AGE      a squash also keeps commits younger than AGE (seconds, or with
                             m/h/d: 90m, 12h, 7d; default: none)
  --export-block FILE --to DIR
                             write the history kept in block FILE as a git repository in DIR
                             (same commit ids as --database), then exit. A damaged FILE is
                             salvaged: every commit still readable is exported, what was
                             lost is reported, and the exit status is 1 (0: complete)
  --history N                commits kept in memory with their parents (default 4096)
  --history-bytes SIZE       and at most about SIZE of old node versions (default 64M)
  --guest-memory SIZE        bound on what all guests together make the daemon hold (nodes
                             they own, transactions, watches, queued output; default 256M,
                             0: none); past it guests get ENOMEM, dom0 never (docs/quotas.md)
  --ring-dir DIR             serve emulated domain rings: an INTRODUCEd domain D is served
                             through DIR/D/page (a shared xenstore ring page) and the FIFOs
                             DIR/D/to-store, DIR/D/to-domain (event channel). With --database
                             or --block, ring connections survive a restart of the daemon
  --quota NAME=VALUE, -Q     set a global quota (nodes, watches, transactions,
                             transaction-nodes, node-size, permissions, path-max, ...)
  --test-domain-socket DOMID=PATH
                             TEST HOOK: also listen on PATH; its clients act as the
                             unprivileged domain DOMID (for permission and quota tests)
  --xen                      run as dom0's xenstored on a real Xen host: also serve dom0's
                             kernel ring (xenfs on /proc/xen) and the ring of every
                             introduced guest; watch VIRQ_DOM_EXC for dying domains
  --no-fork, -N              accepted for compatibility (the daemon never forks)
  --verbose, -V              log connections and domain events
  --help, -H                 show this text

"""

/// Seconds in "3600", "90m", "12h" or "7d"; nil if malformed.
func parseDuration(_ text: String) -> Int64? {
    let units: [Character: Int64] = ["s": 1, "m": 60, "h": 3600, "d": 86400]
    if let unit = text.last, let scale = units[unit], let number = Int64(text.dropLast()), number >= 0 { return number * scale }
    return Int64(text).flatMap { $0 >= 0 ? $0 : nil }
}

func fail(_ message: String) -> Never {
    logLine(message)
    exit(2)
}

var configuration = ServerConfiguration()
var socketPath = defaultSocketPath()
var pidFile: String? = nil
var databasePath: String? = nil
var blockPath: String? = nil
var databaseReserve = GitDatabase.defaultReserveBytes
var databaseRepackEvery = GitDatabase.defaultRepackThreshold
var blockSize: UInt64 = 16 << 20
var blockSizeGiven = false
var exportBlock: String? = nil
var exportTarget: String? = nil
var verbose = false
var testSockets: [(UInt32, String)] = []
var ringDirectory: String? = nil
var squashPolicy = SquashPolicy()
var xenMode = false
var arguments = Array(CommandLine.arguments.dropFirst())
while !arguments.isEmpty {
    let option = arguments.removeFirst()
    func value() -> String {
        guard !arguments.isEmpty else { fail("option \(option) needs a value") }
        return arguments.removeFirst()
    }
    switch option {
    case "--socket": socketPath = value()
    case "--pid-file", "-F": pidFile = value()
    case "--database": databasePath = value()
    case "--block": blockPath = value()
    case "--repack-every":
        guard let count = Int(value()), count >= 0 else { fail("--repack-every needs a number (0: never)") }
        databaseRepackEvery = count
    case "--reserve":
        guard let size = parseByteSize(value()) else { fail("--reserve needs a size such as 8M or 0") }
        databaseReserve = size
    case "--block-size":
        guard let size = parseByteSize(value()), size >= 64 << 10, size % 4096 == 0 else {
            fail("--block-size needs a size of at least 64K, a multiple of 4K (e.g. 16M)")
        }
        blockSize = size
        blockSizeGiven = true
    case "--export-block": exportBlock = value()
    case "--to": exportTarget = value()
    case "--history":
        guard let count = Int(value()), count > 0 else { fail("--history needs a positive number") }
        configuration.retainedCommits = count
    case "--history-bytes":
        guard let size = parseByteSize(value()), size >= 1 << 16, size <= UInt64(Int.max) else {
            fail("--history-bytes needs a size of at least 64K, e.g. 64M")
        }
        configuration.retainedHistoryBytes = Int(size)
    case "--guest-memory":
        guard let size = parseByteSize(value()), size <= UInt64(Int.max) else {
            fail("--guest-memory needs a size, e.g. 256M (0: no bound)")
        }
        configuration.guestMemoryLimit = Int(size)
    case "--quota", "-Q":
        let setting = value()
        guard let equals = setting.firstIndex(of: "="), let number = Int(setting[setting.index(after: equals)...]),
              configuration.quotas.set(named: Array(setting[..<equals].utf8), to: number) else {
            fail("bad quota setting \(setting)")
        }
    case "--test-domain-socket":
        let setting = value()
        guard let equals = setting.firstIndex(of: "="), let domid = UInt32(setting[..<equals]), domid != 0 else {
            fail("--test-domain-socket needs DOMID=PATH with DOMID > 0")
        }
        testSockets.append((domid, String(setting[setting.index(after: equals)...])))
    case "--ring-dir": ringDirectory = value()
    case "--squash-at":
        let setting = value()
        guard let percent = Int(setting.hasSuffix("%") ? String(setting.dropLast()) : setting), (10...99).contains(percent) else {
            fail("--squash-at needs a percentage from 10 to 99")
        }
        squashPolicy.watermarkPercent = percent
    case "--keep-last":
        guard let count = Int(value()), count >= 1 else { fail("--keep-last needs a number of at least 1") }
        squashPolicy.keepLast = count
    case "--keep-newer-than":
        guard let seconds = parseDuration(value()) else { fail("--keep-newer-than needs a duration such as 3600, 90m, 12h or 7d") }
        squashPolicy.keepNewerThan = seconds
    case "--xen": xenMode = true
    case "--no-fork", "-N": break
    case "--verbose", "-V": verbose = true
    case "--help", "-H":
        print(usage, terminator: "")
        exit(0)
    default:
        fail("unknown option \(option) (see --help)")
    }
}

if let exportBlock {
    guard let exportTarget else { fail("--export-block needs --to DIR") }
    let device: FileBlockDevice
    do {
        device = try FileBlockDevice(path: exportBlock, createSize: nil, readOnly: true)
    } catch {
        fail("export \(exportBlock): \(error)")
    }
    do {
        let store = try BlockStore(device: device, format: .never)
        let count = try exportBlockStore(store, to: exportTarget)
        logLine("exported \(count) objects from \(exportBlock) to \(exportTarget)"
                + (store.headID.map { " (head \(hexString($0)))" } ?? ""))
        exit(0)
    } catch let error as BlockStoreError {
        logLine("cannot export as is: " + describe(error, path: exportBlock, blockSize: device.blockSize, blockCount: device.blockCount))
    } catch {
        fail("export \(exportBlock): \(error)")
    }
    // The store cannot be opened as it is: salvage what still verifies.
    logLine("salvaging \(exportBlock): scanning both halves for records that verify")
    do {
        let outcome = try salvageBlockFile(path: exportBlock, to: exportTarget)
        for line in outcome.report { logLine("salvage: " + line) }
        logLine("salvaged \(outcome.objectsWritten) objects from \(exportBlock) to \(exportTarget)"
                + (outcome.head.map { " (head \(hexString($0)))" } ?? ""))
        exit(outcome.lostSomething || outcome.head == nil ? 1 : 0)
    } catch {
        fail("salvage \(exportBlock): \(error)")
    }
}
if databasePath != nil && blockPath != nil { fail("--database and --block cannot be combined") }

if xenMode && ringDirectory != nil { fail("--xen and --ring-dir cannot be combined") }
var backend: DurableBackend? = nil
var hypervisor: XenHypervisor? = nil
if xenMode {
    do {
        let xen = try XenHypervisor()
        hypervisor = xen
        // libxl makes a new domain the owner of its nodes before INTRODUCE: ask Xen.
        configuration.domainExists = { xen.domainExists($0) }
    } catch {
        fail("--xen: \(error)")
    }
}

let server: Server
if let ringDirectory {
    // libxl makes a new domain the owner of its nodes before INTRODUCE: an emulated domain
    // exists once its ring page does.
    configuration.domainExists = { access(EmulatedRingFiles.page(ringDirectory, domid: $0), F_OK) == 0 }
}
do {
    if let blockPath {
        backend = try DurableBackend.blockFile(path: blockPath, createSize: blockSize,
                                               requiredSize: blockSizeGiven ? blockSize : nil, policy: squashPolicy)
    } else if let databasePath {
        backend = try DurableBackend.gitDatabase(directory: databasePath, reserve: databaseReserve,
                                                  repackEvery: databaseRepackEvery)
    }
} catch let refusal as BlockFileRefusal {
    fail(refusal.description)
} catch {
    fail("\(blockPath ?? databasePath ?? ""): \(error)")
}
if let backend {
    do {
        let (made, resumedAt) = try backend.makeServer(configuration: configuration, time: Int64(time(nil)))
        server = made
        if let resumedAt { logLine("resumed from \(backend.location) at \(hexString(resumedAt))") }
    } catch {
        fail("\(backend.location): \(error)")
    }
} else {
    server = Server(configuration: configuration, time: Int64(time(nil)))
}
let rings = ringDirectory.map { EmulatedRings(root: $0) }
let daemon = SocketDaemon(server: server, backend: backend, rings: rings, verbose: verbose)
if rings != nil {
    let resumed = daemon.resumeRings()
    if resumed > 0 { logLine("resumed \(resumed) domain ring(s) from the saved connection state") }
}
if let hypervisor {
    let transport = XenTransport(hypervisor: hypervisor, verbose: verbose)
    do {
        try transport.watchDomainExceptions()
        try transport.connectDom0(server)
    } catch {
        fail("--xen: \(error)")
    }
    daemon.transport = transport
}
// The pid file is written before the sockets exist: whoever waits for the socket may then read it.
if let pidFile {
    let text = "\(getpid())\n"
    if let file = fopen(pidFile, "w") {
        fputs(text, file)
        fclose(file)
    }
}
do {
    try daemon.listen(Listener(path: socketPath, caller: .dom0))
    for (domid, path) in testSockets {
        try daemon.listen(Listener(path: path, caller: Caller(domid: domid, privileged: false)))
    }
} catch {
    fail("\(error)")
}
logLine("serving on \(socketPath)" + (testSockets.isEmpty ? "" : " (test domain sockets: \(testSockets.map { "\($0.0)=\($0.1)" }.joined(separator: ", ")))"))
daemon.run()
