// Entry point of the host daemon: reads the options (Options.swift), builds the server and runs the socket loop.

#if canImport(Glibc)
import CHost
import Glibc
#endif
import XenstoreBlock
import XenstoreHost
import XenstoreServer
import XenstoreStore
import XenstoreXen

let options = DaemonOptions.parseOrExitWithStatus2()

func fail(_ message: String) -> Never {
    logLine(message)
    exit(2)
}

var configuration = ServerConfiguration()
let socketPath = options.socket ?? defaultSocketPath()
let pidFile = options.pidFile
let databasePath = options.database
let blockPath = options.block
let databaseReserve = options.reserve ?? GitDatabase.defaultReserveBytes
let databaseRepackEvery = options.repackEvery ?? GitDatabase.defaultRepackThreshold
let blockSize: UInt64 = options.blockSize ?? 16 << 20
let blockSizeGiven = options.blockSize != nil
let exportBlock = options.exportBlock
let exportTarget = options.to
let verbose = options.verbose
let testSockets = options.testDomainSocket.map { ($0.domid, $0.path) }
let ringDirectory = options.ringDir
let xenMode = options.xen
var squashPolicy = SquashPolicy()
if let history = options.history { configuration.retainedCommits = history }
if let historyBytes = options.historyBytes { configuration.retainedHistoryBytes = historyBytes }
if let guestMemory = options.guestMemory { configuration.guestMemoryLimit = guestMemory }
// CONTROL memreport adds the C heap's figures (glibc's mallinfo2): what make bench's memory
// section divides by the node count.
configuration.memoryReport = {
    let info = mallinfo2()
    return Array("heap in use KiB: \((info.uordblks + info.hblkhd) / 1024)\nheap arena KiB: \(info.arena / 1024)".utf8)
}
for setting in options.quotaSettings {
    // Names were checked while parsing.
    _ = configuration.quotas.set(named: Array(setting.name.utf8), to: setting.value)
}
if let squashAt = options.squashAt { squashPolicy.watermarkPercent = squashAt }
if let keepLast = options.keepLast { squashPolicy.keepLast = keepLast }
if let keepNewerThan = options.keepNewerThan { squashPolicy.keepNewerThan = keepNewerThan }

if let exportBlock {
    guard let exportTarget else { fail("--export-block needs --to DIR") }
    let device: FileBlockDevice
    do {
        device = try FileBlockDevice(path: exportBlock, createSize: nil, readOnly: true)
    } catch {
        fail("export \(exportBlock): \(error)")
    }
    // The disk may be in use (the stub domain's disk, read from dom0). Each attempt reads what
    // it needs once, while the store opens (SnapshotBlockDevice), and every record it reads is
    // verified: it exports the head it opened at, complete, or fails where a squash rewrote the
    // half during that read. Then, if the store moved on meanwhile, it starts again from the
    // newest superblock; a store that fails without moving is damaged.
    var attempt = 0
    exportAttempts: while true {
        attempt += 1
        var openedAt: UInt64? = nil
        var problem: String
        do {
            let store = try BlockStore(device: SnapshotBlockDevice(device), format: .never)
            openedAt = store.generation
            let count = try exportBlockStore(store, to: exportTarget)
            logLine("exported \(count) objects from \(exportBlock) to \(exportTarget)"
                    + (store.headID.map { " (head \(hexString($0)))" } ?? ""))
            exit(0)
        } catch let error as BlockStoreError {
            problem = describe(error, path: exportBlock, blockSize: device.blockSize, blockCount: device.blockCount)
        } catch DatabaseError.corrupt(let detail) {
            problem = detail
        } catch {
            fail("export \(exportBlock): \(error)")
        }
        let now = BlockStore<FileBlockDevice>.newestGeneration(on: device)
        if let now, now != openedAt, attempt < BlockLimits.liveExportAttempts {
            logLine("the store changed while it was read (superblock generation \(openedAt.map(String.init) ?? "unread") -> \(now)): \(problem); exporting again")
            continue exportAttempts
        }
        logLine("cannot export as is: " + problem)
        break
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
