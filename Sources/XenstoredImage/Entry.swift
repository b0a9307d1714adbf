// The Embedded image's entry point and console: called by the C runtime once boot, traps and heap are up.

import XenRuntime
import XenstoreBlock
import XenstoreServer
import XenstoreStore
import XenstoreWire

/// Exit codes of the image (the runtime adds its own from 96 up, see runtime.h).
public enum ImageExitCode {
    /// Everything passed (QEMU) or the serving loop ended normally.
    public static let success: Int32 = 0
    /// Under Xen: dom0's ring could not be mapped or its event channel not bound.
    public static let dom0RingUnavailable: Int32 = 2
    /// Under Xen with `--vchan`: the vchan could not be granted, bound or published.
    public static let vchanUnavailable: Int32 = 3
    /// Under Xen with `--block`: the disk did not appear, or its history could not be read or
    /// started (a damaged or foreign disk is refused, never formatted).
    public static let diskUnavailable: Int32 = 4
    /// Under Xen with `--block`: a round's commits could not be written to the disk; the image
    /// stopped before answering that round (nothing is acknowledged that is not durable).
    public static let diskWriteFailed: Int32 = 5
    /// After a crash: the kept memory, the history store or the saved connection state could not be
    /// read, so the restart in place could not resume (Restart.swift).
    public static let restartFailed: Int32 = 6
    /// Self-test step n failed: `selfTestFirstFailure + n`.
    public static let selfTestFirstFailure: Int32 = SelfTest.firstFailureCode
}

/// Runs the image and returns its exit code (0 = success) to the runtime, which shuts the domain down.
///
/// Runs the core self-test first; under Xen with `--event <port>` it then serves the store rings
/// (the Xenstore domain), with `--vchan` it serves dom0 clients over a vchan of its own (an
/// ordinary guest, the ARM route), otherwise (QEMU smoke test) it exits with the self-test's result.
@_cdecl("xenstored_main")
public func xenstoredMain(_ cmdline: UnsafePointer<CChar>?) -> Int32 {
    let arguments = BootArguments(cString: cmdline)
    if let port = arguments.dom0EventChannel {
        Console.write("xenstored: dom0 event channel ")
        Console.write(decimal: UInt64(port))
        Console.write(arguments.internalDatabase ? ", internal db\n" : "\n")
    }
    for word in arguments.unknown {
        Console.write("xenstored: ignoring argument ")
        Console.write(escaped: word)
        Console.write("\n")
    }
    Console.write("xenstored: core self-test starting\n")
    let code = SelfTest.run()
    Console.write("xenstored: heap in use ")
    Console.write(decimal: UInt64(mm_heap_used() / 1024))
    Console.write(" KiB\n")
    if arguments.selfTestTrap {
        Console.write("xenstored: trapping on purpose (--selftest-trap)\n")
        trapOnPurpose([1, 2, 3])
    }
    if arguments.selfTestOverflow {
        Console.write("xenstored: overflowing the stack on purpose (--selftest-overflow)\n")
        var sink: UInt64 = 0
        Console.write(decimal: recurseOnPurpose(1, &sink))
    }
    if arguments.selfTestRestart { crashForRestartSelfTest() }
    if arguments.selfTestBadAccess {
        Console.write("xenstored: reading address 8 on purpose (--selftest-badaccess)\n")
        Console.write(decimal: readOnPurpose(8))
    }
    guard code == 0, xen_present() != 0 else { return code }
    let crashFlag = TestCrashFlag()
    var configuration = imageConfiguration(arguments, crashFlag: crashFlag)
    if arguments.block {
        // every commit will be written to the disk, the boot branch's too: keep the chain whole
        configuration = configuration.durable
    }
    let loop: RingServer
    var memoryStore: KeptMemory?
    // As the Xenstore domain (--event), the disk's handshake runs on the store we serve: start
    // from a fresh boot store and take the disk's history on when it connects (SelfDisk.swift).
    if arguments.block && arguments.dom0EventChannel == nil {
        guard let opened = openDiskHistory(configuration) else { return ImageExitCode.diskUnavailable }
        loop = RingServer(server: opened.server)
        persistEveryRound(loop, to: opened.store)
    } else if arguments.dom0EventChannel != nil, let opened = openKeptMemoryHistory(configuration, bootBranch: arguments.block) {
        // The history lives in memory a crash does not take (restart in place): for good without
        // a disk, as the boot branch until the disk connects with one.
        memoryStore = opened.kept
        loop = RingServer(server: opened.server)
        persistEveryRound(loop, to: opened.store)
    } else {
        loop = RingServer(server: Server(configuration: configuration, time: clock_wall_seconds()))
    }
    loop.testCrash = crashFlag
    loop.traceRounds = arguments.traceRounds
    guard let port = arguments.dom0EventChannel else {
        guard arguments.vchan else { return code }
        // An ordinary guest: dom0's clients reach us through vchan-socket-proxy.
        guard loop.offerVchan(to: 0, at: "data/xenstore-vchan") else { return ImageExitCode.vchanUnavailable }
        return loop.run()
    }
    // The Xenstore domain (--event): serve dom0's ring (grant reference 1) and every domain it introduces.
    guard loop.attach(domid: 0, remotePort: port, privileged: true) else { return ImageExitCode.dom0RingUnavailable }
    _ = loop.watchDomainExceptions()
    if let memoryStore {
        armRestart(loop, kept: memoryStore)
        Console.write(arguments.block ? "xenstored: restart in place armed (history in kept memory until the disk connects)\n"
                                      : "xenstored: restart in place armed (history in kept memory)\n")
    }
    if arguments.block { startSelfDisk(loop, arguments, resuming: false) }
    return loop.run()
}

/// Points where `--test-crash-handshake` (with `--test-hooks`) crashes the image once each
/// (`rt_first_time`), to test that our disk's handshake resumes from any phase.
enum TestCrashPoint: UInt32 {
    /// Our half of the handshake published, in the round that wrote it (SelfDisk.swift).
    case handshakePublished = 0
    /// The disk's history adopted and written, before restart in place moved to the disk.
    case diskAdopted = 1

    /// Crashes here if this boot asked for it and it did not happen yet.
    func crashIfAsked(_ asked: Bool) {
        guard asked, rt_first_time(rawValue) != 0 else { return }
        Console.write(self == .handshakePublished
            ? "xenstored: crashing on purpose (our disk's handshake published, --test-crash-handshake)\n"
            : "xenstored: crashing on purpose (the disk's history adopted, --test-crash-handshake)\n")
        trapOnPurpose([])
    }
}

/// With `--block`, as the Xenstore domain: runs our own disk's handshake on the store we serve
/// (SelfDisk.swift) and takes the disk's history on when it connects. `resuming` after a restart
/// in place that came before: the handshake goes on from where the runtime's blkfront got.
func startSelfDisk(_ loop: RingServer, _ arguments: BootArguments, resuming: Bool) {
    let ownDomid = domain_find_xenstore()
    guard ownDomid >= 0 else {
        Console.write("xenstored: cannot find our own domain id (no domain flagged as the Xenstore domain); serving without a disk\n")
        return
    }
    let handshake = resuming ? SelfDiskHandshake.resuming(server: loop.server, domid: UInt16(ownDomid), vdev: 51712)
                             : SelfDiskHandshake(server: loop.server, domid: UInt16(ownDomid), vdev: 51712)
    let crashes = arguments.testHooks && arguments.testCrashHandshake
    handshake.crashOnceWhenPublished = crashes
    loop.selfDisk = handshake
    loop.onSelfDiskConnected = { [loop] in takeOnOwnDisk(loop, crashOnceWhenAdopted: crashes) }
}

/// Set by CONTROL test-crash (`--test-hooks` only): the loop crashes at its next round with input.
final class TestCrashFlag {
    var requested = false
}

/// The server configuration of the image, from its heap and boot arguments (also after a restart).
func imageConfiguration(_ arguments: BootArguments, crashFlag: TestCrashFlag) -> ServerConfiguration {
    var configuration = ServerConfiguration()
    // The heap is a few MiB: keep only the newest commits' trees alive (older ones keep their ids),
    // or a write-heavy client (test-xenstore writes 2000-byte values) exhausts memory.
    configuration.retainedCommits = 32
    // ... and at most about 512 KiB of old node versions, however large the values rewritten.
    configuration.retainedHistoryBytes = 512 << 10
    // ... of which at most 128 KiB for the commits of any one guest.
    configuration.retainedHistoryBytesPerGuest = 128 << 10
    // Guests together may make the store hold at most half the heap (docs/quotas.md): the rest
    // stays for dom0, the history window and the runtime.
    configuration.guestMemoryLimit = Int(mm_heap_size() / 2)
    configuration.domainExists = { domain_state(UInt16(truncatingIfNeeded: $0)) != Int32(DOMAIN_STATE_GONE.rawValue) }
    configuration.profile = { request in roundProfile.handle(request) }
    configuration.memoryReport = {
        Payload.bytes("heap in use KiB: ") + Payload.decimal(UInt64(mm_heap_used() / 1024))
            + Payload.bytes("\nheap size KiB: ") + Payload.decimal(UInt64(mm_heap_size() / 1024))
            + Payload.bytes("\nheap peak KiB: ") + Payload.decimal(UInt64(mm_heap_peak() / 1024))
            + Payload.bytes("\nheap reach KiB: ") + Payload.decimal(UInt64(mm_heap_reach() / 1024))
            + Payload.bytes("\nstack peak KiB: ") + Payload.decimal(UInt64(rt_stack_peak() / 1024))
            + Payload.bytes(" of ") + Payload.decimal(UInt64(rt_stack_size() / 1024))
    }
    if arguments.testHooks {
        Console.write("xenstored: test hooks on (--test-hooks): CONTROL test-crash is accepted, WRITE /tool/xenstored/test-poison crashes\n")
        configuration.testCrash = { crashFlag.requested = true }
        // a request that crashes the server every time: its connection must be dropped after the second crash
        configuration.testPoisonWrite = (Payload.bytes("/tool/xenstored/test-poison"), {
            Console.write("xenstored: crashing on purpose (WRITE /tool/xenstored/test-poison, --test-hooks)\n")
            trapOnPurpose([])
        })
    }
    return configuration
}

/// The history store in kept memory (`Limits.restartMemoryStoreDivisor` of the heap), so that a
/// crash restarts in place with every acknowledged write: for good without a disk; with one
/// (`bootBranch`), it holds the boot branch until the disk connects and is then given back to
/// the heap. Nil (reported) when the memory cannot be had; the image then serves from the heap
/// alone, without restart in place (with a disk: until the disk connects).
func openKeptMemoryHistory(_ configuration: ServerConfiguration, bootBranch: Bool) -> (kept: KeptMemory, store: BlockStore<KeptMemoryDevice>, server: Server)? {
    let storeBytes = Int(mm_heap_size()) / Limits.restartMemoryStoreDivisor / 4096 * 4096
    guard let kept = KeptMemory.create(storeBytes: storeBytes, place: .memory) else {
        Console.write("xenstored: no memory to keep the history across a crash; restart in place is off\n")
        return nil
    }
    let store: BlockStore<KeptMemoryDevice>
    do throws(BlockStoreError) {
        store = try kept.openStore(format: .newDevice)
    } catch {
        Console.write("xenstored: the history store in kept memory cannot be made: ")
        reportDiskProblem(error)
        Console.write("; restart in place is off\n")
        return nil
    }
    do throws(OpenStoreError<BlockStoreError>) {
        let server = try Server.open(from: store, configuration: configuration, time: clock_wall_seconds(),
                                     bootBranch: bootBranch).server
        server.storageState = roomLeft(store)
        Console.write("xenstored: history in kept memory (")
        Console.write(decimal: UInt64(storeBytes / 1024))
        Console.write(bootBranch ? " KiB) until the disk connects: a crash restarts in place\n" : " KiB): a crash restarts in place\n")
        return (kept, store, server)
    } catch {
        Console.write("xenstored: the history store in kept memory cannot be started; restart in place is off\n")
        return nil
    }
}

/// Opens the history on the virtual disk xvda (waiting up to 30 s for it): resumes from its head, or
/// starts a new store and writes it there. A new store is written only on a blank disk: both
/// superblocks and the first block of each half all zero (reading a whole disk through blkfront
/// at every boot is too slow; every store ever written has non-zero blocks among these four).
/// Nil (reported) when the disk or its contents are unusable; a refused disk is left unchanged.
func openDiskHistory(_ configuration: ServerConfiguration) -> (server: Server, store: BlockStore<XenBlockDevice>)? {
    guard let device = XenBlockDevice(vdev: 51712, timeoutSeconds: 30) else {
        Console.write("xenstored: no virtual disk xvda\n")
        return nil
    }
    guard let store = openBlockStore(device) else { return nil }
    // The same path as the host daemon's: resume from the head, or a fresh store only on a new disk.
    do throws(OpenStoreError<BlockStoreError>) {
        let (server, resumedAt) = try Server.open(from: store, configuration: configuration, time: clock_wall_seconds())
        server.storageState = roomLeft(store)
        Console.write(resumedAt == nil ? "xenstored: new history on the disk\n" : "xenstored: history resumed from the disk\n")
        return (server, store)
    } catch {
        switch error {
        case .store(let failure): refuseDisk(failure)
        case .noHeadInExistingStore: Console.write("xenstored: the disk holds a store without a head; refusing it unchanged\n")
        case .noBootBranch: break  // only adoption reports it, never open
        }
        return nil
    }
}

/// The Xenstore domain's own disk has connected: its history becomes the base of the store we
/// serve (the boot branch merged onto it, `Server.adoptRecoveredHistory`), and from then on every
/// round's commits are on the disk before their replies leave. A disk that cannot be read is left
/// unchanged and reported; we keep serving from memory (the host's xenbus depends on us).
///
/// Restart in place, armed since boot with the boot branch in kept memory, moves to the disk in
/// this order: the merged history and the connection state on the disk, the state in the kept
/// slot with the disk's head, then the kept header says "disk" and the boot store's memory goes
/// back to the heap. A crash before the header changes resumes the boot branch and the handshake
/// (`blkfront_phase` is ready), and adopts the disk again: on a disk that held no history before,
/// it now holds exactly the boot branch (nothing to merge); otherwise a second merge commit, of
/// the same tree.
func takeOnOwnDisk(_ loop: RingServer, crashOnceWhenAdopted: Bool) {
    guard let device = XenBlockDevice(alreadyConnected: ()) else {
        Console.write("xenstored: our disk connected with no usable size; serving from memory only\n")
        return
    }
    guard let store = openBlockStore(device) else {
        Console.write("xenstored: serving from memory only\n")
        return
    }
    do throws(OpenStoreError<BlockStoreError>) {
        let report = try loop.server.adoptRecoveredHistory(from: store, state: nil, time: clock_wall_seconds())
        loop.server.storageState = roomLeft(store)
        if report.recoveredHead == nil {
            Console.write("xenstored: new history on the disk\n")
        } else if report.continued {
            Console.write("xenstored: the disk already holds the boot branch (adopted before a restart in place): continued\n")
        } else {
            Console.write("xenstored: history resumed from the disk, the boot branch merged onto it (")
            Console.write(decimal: UInt64(report.overridden.count))
            Console.write(" nodes both changed, the boot branch's version kept)\n")
        }
    } catch {
        let adopted = loop.server.bootBase == nil  // the merge stands; only its write failed
        switch error {
        case .store(let failure) where adopted:
            Console.write("xenstored: FATAL: cannot write the merged history to the disk: ")
            reportDiskProblem(failure)
            Console.write("; stopping before answering anything more\n")
            loop.durabilityFailed = true
            loop.durabilityFailureCode = ImageExitCode.diskWriteFailed
            return
        case .store(let failure): refuseDisk(failure)
        case .noHeadInExistingStore: Console.write("xenstored: the disk holds a store without a head; refusing it unchanged\n")
        case .noBootBranch: Console.write("xenstored: no boot branch to merge (cannot happen)\n")
        }
        Console.write("xenstored: serving from memory only\n")
        return
    }
    TestCrashPoint.diskAdopted.crashIfAsked(crashOnceWhenAdopted)
    persistEveryRound(loop, to: store)
    if let kept = loop.kept {
        guard loop.afterCommits?() == true else {  // the state in force on the disk is now this run's
            loop.durabilityFailed = true
            return
        }
        loop.saveRoundState()
        kept.place = .disk
        let released = kept.releaseStore()
        Console.write("xenstored: restart in place now resumes from the disk; the boot branch's ")
        Console.write(decimal: UInt64(released / 1024))
        Console.write(" KiB of kept memory went back to the heap\n")
    } else if let kept = KeptMemory.create(storeBytes: 0, place: .disk) {
        armRestart(loop, kept: kept)
        Console.write("xenstored: restart in place armed (history on the disk)\n")
    } else {
        Console.write("xenstored: no memory to keep the connection state across a crash; restart in place is off\n")
    }
}

/// From now on, each round's commits are written to `store` before that round's replies leave
/// (with the round's connection state, once restart in place is armed).
func persistEveryRound<Device: BlockDevice>(_ loop: RingServer, to store: BlockStore<Device>) {
    loop.durableHead = { store.headID }
    roundProfile.storeCounters = {
        [(name: "store-batches" as StaticString, value: UInt64(store.batchCount)),
         (name: "store-batch-bytes" as StaticString, value: store.batchBytes),
         (name: "store-squashes" as StaticString, value: UInt64(store.squashCount))]
    }
    loop.afterCommits = { [loop] in
        do throws(BlockStoreError) {
            let outer = roundProfile.enter(.stateEncode)
            let state = loop.kept == nil ? nil : loop.roundStateForCommits()
            roundProfile.enter(.historyStore)
            defer { roundProfile.enter(outer) }
            try loop.server.persist(to: store, state: state)
            loop.server.storageState = roomLeft(store)
            return true
        } catch {
            Console.write("xenstored: FATAL: cannot write this round's commits to the disk (")
            Console.write(error == .noSpace ? "the disk is full" : "device error")
            Console.write("); stopping without answering them\n")
            return false
        }
    }
    loop.durabilityFailureCode = ImageExitCode.diskWriteFailed
}

/// The block store on `device`: formatted only if blank (`ifHeaderBlocksZero`), room reserved;
/// nil (reported, the disk left unchanged) when its contents cannot be used.
func openBlockStore(_ device: XenBlockDevice) -> BlockStore<XenBlockDevice>? {
    do throws(BlockStoreError) {
        let store = try BlockStore(device: device, format: .ifHeaderBlocksZero)
        try store.reserveRoom()
        return store
    } catch {
        refuseDisk(error)
        return nil
    }
}

/// Room left on the disk, as the server takes it (`Server.storageState`).
func roomLeft<Device: BlockDevice>(_ store: BlockStore<Device>) -> StorageState {
    store.isNearlyFull ? .full : store.isReservedForDom0 ? .reservedForDom0 : .available
}

/// Reports a disk that cannot be used.
func refuseDisk(_ error: BlockStoreError) {
    Console.write("xenstored: the disk's history cannot be used, refusing it unchanged: ")
    reportDiskProblem(error)
    Console.write("\n")
}

/// Names what is wrong with the disk on the console.
func reportDiskProblem(_ error: BlockStoreError) {
    switch error {
    case .noValidSuperblock(let problem, let dataBlock):
        switch problem {
        case .zeroed: Console.write("both superblocks are zero")
        case .badMagic: Console.write("neither superblock carries the magic XSBLOCK1")
        case .badChecksum: Console.write("both superblocks fail their checksum")
        case .geometry: Console.write("the superblock describes another disk size or block size")
        case .unreadable: Console.write("the superblocks cannot be read")
        }
        if let dataBlock {
            Console.write(", and block ")
            Console.write(decimal: dataBlock)
            Console.write(" holds data (not a blank disk)")
        }
    case .corrupt(let offset):
        Console.write("a log record fails its checksum at log byte ")
        Console.write(decimal: offset)
    case .missingObject: Console.write("an object of the stored state is missing")
    case .badGeometry: Console.write("the disk is too small")
    case .device(let failure):
        switch failure {
        case .io(let code):
            Console.write("device error ")
            Console.write(decimal: UInt64(code))
        case .outOfRange: Console.write("a block past the end of the disk")
        }
    case .noSpace: Console.write("the live state does not fit the disk")
    }
}

/// Indexes past the end of `values`: a Swift runtime trap (ud2), which the runtime reports as #UD.
@inline(never)
func trapOnPurpose(_ values: [Int]) {
    var index = values.count
    withUnsafeMutablePointer(to: &index) { _ in }  // keep the optimizer from proving the trap statically
    Console.write(decimal: UInt64(values[index]))
}

/// Calls itself with a 256-byte frame until `depth` wraps (never): overflows any stack.
/// Unoptimized, or the optimizer turns the recursion into a loop.
@_optimize(none)
func recurseOnPurpose(_ depth: UInt64, _ sink: UnsafeMutablePointer<UInt64>) -> UInt64 {
    if depth == 0 { return 0 }
    var frame = (depth, depth, depth, depth, depth, depth, depth, depth,
                 depth, depth, depth, depth, depth, depth, depth, depth,
                 depth, depth, depth, depth, depth, depth, depth, depth,
                 depth, depth, depth, depth, depth, depth, depth, depth)
    withUnsafeMutablePointer(to: &frame) { sink.pointee &+= $0.pointee.31 }  // the frame must exist
    return recurseOnPurpose(depth &+ 1, sink) &+ frame.0  // not a tail call
}

/// Reads the word at `address`: a fault when nothing is mapped there (page 0 is not, on x86).
@inline(never)
func readOnPurpose(_ address: UInt) -> UInt64 {
    var target = address
    withUnsafeMutablePointer(to: &target) { _ in }  // keep the optimizer from folding the address
    return UnsafePointer<UInt64>(bitPattern: target)?.pointee ?? 0
}

/// Writes to the runtime console (PV ring, Xen debug port or COM1, whichever is present).
public enum Console {
    /// Writes a static string.
    public static func write(_ text: StaticString) {
        console_write(text.utf8Start, text.utf8CodeUnitCount)
    }

    /// Writes raw bytes.
    public static func write(bytes: [UInt8]) {
        bytes.withUnsafeBufferPointer { console_write($0.baseAddress, $0.count) }
    }

    /// Writes an unsigned number in decimal.
    public static func write(decimal value: UInt64) {
        write(bytes: Payload.decimal(value))
    }

    /// Writes bytes with NUL shown as `\0` and other non-printable bytes as `\xNN`.
    public static func write(escaped bytes: [UInt8]) {
        var out: [UInt8] = []
        let hex = Payload.bytes("0123456789abcdef")
        for byte in bytes {
            switch byte {
            case 0: out.append(contentsOf: [0x5C, 0x30])
            case 0x20...0x7E where byte != 0x5C: out.append(byte)
            default: out.append(contentsOf: [0x5C, 0x78, hex[Int(byte >> 4)], hex[Int(byte & 15)]])
            }
        }
        write(bytes: out)
    }
}
