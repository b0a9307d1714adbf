// Restart in place (Runtime/restart.c): the memory that outlives a crash — each round's connection state and, without a disk, the history store — and the entry that resumes from it.

import XenRuntime
import XenstoreBlock
import XenstoreRing
import XenstoreServer
import XenstoreStore
import XenstoreWire

/// Where the Xenstore domain keeps its history, as the kept header records it for a restart.
enum KeptHistoryPlace: UInt32 {
    /// Not set up: a restart cannot resume.
    case none = 0
    /// On the domain's own disk (`--block`, after the disk was taken on).
    case disk = 1
    /// In the kept memory region itself (no disk).
    case memory = 2
}

/// The region the runtime keeps across restarts (`rt_kept_region`): a header page, two slots that
/// alternate holding the last round's connection state (`ResumableState`) with the durable head it
/// goes with, and without a disk the history's block store.
///
///     0                 header: magic "XSKEEP01", place, store bytes
///     4096              slot 0: sequence, length, CRC32C, head id, then the state
///     4096 + slot       slot 1
///     4096 + 2 * slot   the block store (KeptMemoryDevice), `storeBytes` long
final class KeptMemory {
    static let magic: UInt64 = 0x3130_5045_454B_5358
    static let headerBytes = 4096
    static let slotHeaderBytes = 64
    static let slotBytes = Limits.restartStateSlotBytes
    let base: UnsafeMutableRawPointer
    private(set) var storeBytes: Int
    /// The state last saved (to skip saving the same bytes again).
    var lastSaved: [UInt8] = []
    var lastSavedHead: ObjectID?

    private init(base: UnsafeMutableRawPointer, storeBytes: Int) {
        self.base = base
        self.storeBytes = storeBytes
    }

    /// Takes the region at boot, with room for a block store of `storeBytes` (0 with a disk).
    static func create(storeBytes: Int, place: KeptHistoryPlace) -> KeptMemory? {
        let total = headerBytes + 2 * slotBytes + storeBytes
        guard let base = rt_kept_region(total) else { return nil }
        base.storeBytes(of: magic, toByteOffset: 0, as: UInt64.self)
        base.storeBytes(of: place.rawValue, toByteOffset: 8, as: UInt32.self)
        base.storeBytes(of: UInt64(storeBytes), toByteOffset: 16, as: UInt64.self)
        return KeptMemory(base: base, storeBytes: storeBytes)
    }

    /// After a restart: the region taken at boot, or nil if there is none.
    static func existing() -> KeptMemory? {
        guard let base = rt_kept_region(headerBytes),
              base.load(fromByteOffset: 0, as: UInt64.self) == magic else { return nil }
        let storeBytes = Int(base.load(fromByteOffset: 16, as: UInt64.self))
        return KeptMemory(base: base, storeBytes: storeBytes)
    }

    /// The history's block store in this region, room reserved: `.newDevice` at boot, `.never`
    /// after a restart (what the crashed run wrote must be there).
    func openStore(format: BlockFormatRule) throws(BlockStoreError) -> BlockStore<KeptMemoryDevice> {
        let store = try BlockStore(device: KeptMemoryDevice(self), format: format)
        try store.reserveRoom()
        return store
    }

    /// Gives the block store's memory back to the heap, once the history is on the disk and the
    /// header says so; returns how many bytes went back.
    func releaseStore() -> Int {
        let released = storeBytes
        base.storeBytes(of: UInt64(0), toByteOffset: 16, as: UInt64.self)
        storeBytes = 0
        rt_kept_shrink(KeptMemory.headerBytes + 2 * KeptMemory.slotBytes)
        return released
    }

    /// Where the history is.
    var place: KeptHistoryPlace {
        get { KeptHistoryPlace(rawValue: base.load(fromByteOffset: 8, as: UInt32.self)) ?? .none }
        set { base.storeBytes(of: newValue.rawValue, toByteOffset: 8, as: UInt32.self) }
    }

    /// The block store's memory.
    var storeBase: UnsafeMutableRawPointer { base + KeptMemory.headerBytes + 2 * KeptMemory.slotBytes }

    private func slot(_ index: Int) -> UnsafeMutableRawPointer { base + KeptMemory.headerBytes + index * KeptMemory.slotBytes }

    private func sequence(of index: Int) -> UInt64 { slot(index).load(as: UInt64.self) }

    /// The slot written last (0 when neither was).
    private var newerSlot: Int { sequence(of: 0) >= sequence(of: 1) ? 0 : 1 }

    /// Saves `state` (with the durable `head` it belongs to) over the older slot; false if it does not fit.
    func save(state: [UInt8], head: ObjectID?) -> Bool {
        if state == lastSaved && head == lastSavedHead { return true }
        guard state.count <= KeptMemory.slotBytes - KeptMemory.slotHeaderBytes else { return false }
        let target = slot(1 - newerSlot)
        target.storeBytes(of: 0, as: UInt64.self)  // invalid while it is rewritten
        state.withUnsafeBytes { (target + KeptMemory.slotHeaderBytes).copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
        target.storeBytes(of: UInt32(state.count), toByteOffset: 8, as: UInt32.self)
        target.storeBytes(of: CRC32C.checksum(state, 0..<state.count), toByteOffset: 12, as: UInt32.self)
        target.storeBytes(of: UInt8(head == nil ? 0 : 1), toByteOffset: 16, as: UInt8.self)
        if let head { head.bytes.withUnsafeBytes { (target + 20).copyMemory(from: $0.baseAddress!, byteCount: 20) } }
        target.storeBytes(of: max(sequence(of: 0), sequence(of: 1)) &+ 1, as: UInt64.self)
        lastSaved = state
        lastSavedHead = head
        return true
    }

    /// The newest slot whose checksum holds: its state and head.
    func newestState() -> (state: [UInt8], head: ObjectID?)? {
        for index in [newerSlot, 1 - newerSlot] where sequence(of: index) != 0 {
            let slot = slot(index)
            let length = Int(slot.load(fromByteOffset: 8, as: UInt32.self))
            guard length <= KeptMemory.slotBytes - KeptMemory.slotHeaderBytes else { continue }
            let state = Array(UnsafeRawBufferPointer(start: slot + KeptMemory.slotHeaderBytes, count: length))
            guard CRC32C.checksum(state, 0..<length) == slot.load(fromByteOffset: 12, as: UInt32.self) else { continue }
            let head = slot.load(fromByteOffset: 16, as: UInt8.self) == 1
                ? ObjectID(bytes: Array(UnsafeRawBufferPointer(start: slot + 20, count: 20))) : nil
            return (state, head)
        }
        return nil
    }
}

/// The kept memory's block store area as a `BlockDevice`: the history of a Xenstore domain
/// without a disk, which outlives a restart in place (not the domain).
final class KeptMemoryDevice: BlockDevice {
    let blockSize = 4096
    let blockCount: UInt64
    let base: UnsafeMutableRawPointer

    init(_ kept: KeptMemory) {
        base = kept.storeBase
        blockCount = UInt64(kept.storeBytes / 4096)
    }

    var maxBlocksPerRequest: Int { 256 }
    /// Reads are copies out of memory: a miss copies 8 KiB, not the 1 MiB of a whole request (a
    /// squash reads objects all over the log, and copying 1 MiB per miss made it stall the stub
    /// for 80-350 ms under Xen in QEMU).
    var readAheadBlocks: Int { 2 }

    func read(block: UInt64) throws(BlockDeviceError) -> [UInt8] { try read(blocks: block..<block + 1) }

    func write(block: UInt64, _ bytes: [UInt8]) throws(BlockDeviceError) {
        guard bytes.count == blockSize else { throw .io(code: 22) }
        try write(startingAt: block, bytes)
    }

    func read(blocks: Range<UInt64>) throws(BlockDeviceError) -> [UInt8] {
        guard blocks.upperBound <= blockCount else { throw .outOfRange }
        return Array(UnsafeRawBufferPointer(start: base + Int(blocks.lowerBound) * 4096, count: blocks.count * 4096))
    }

    func write(startingAt block: UInt64, _ bytes: [UInt8]) throws(BlockDeviceError) {
        guard bytes.count % 4096 == 0 else { throw .io(code: 22) }
        guard block <= blockCount, UInt64(bytes.count / 4096) <= blockCount - block else { throw .outOfRange }
        let outer = roundProfile.enter(.deviceWrite)
        bytes.withUnsafeBytes { (base + Int(block) * 4096).copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
        roundProfile.enter(outer)
    }

    func flush() throws(BlockDeviceError) {}
}

/// Arms restart in place for `loop`: from now on every round saves its connection state in
/// `kept` (and with the round's commits in the history store) before its replies leave.
func armRestart(_ loop: RingServer, kept: KeptMemory) {
    loop.kept = kept
    loop.saveRoundState()
    rt_restart_arm(1)
}

/// Entered by the runtime instead of `xenstored_main` after a crash, with Swift's globals and heap
/// as at boot: reopens the history store, restores the connections of the last round saved,
/// re-attaches the rings the runtime kept mapped, and serves again.
@_cdecl("xenstored_resume")
public func xenstoredResume(_ cmdline: UnsafePointer<CChar>?) -> Int32 {
    let arguments = BootArguments(cString: cmdline)
    if arguments.selfTestRestart { return checkRestartSelfTest() }
    Console.write("xenstored: restarting in place after a crash (restart ")
    Console.write(decimal: UInt64(rt_restart_count()))
    Console.write(", ")
    Console.write(decimal: UInt64(rt_consecutive_crashes()))
    Console.write(" in a row)\n")
    guard let port = arguments.dom0EventChannel, let kept = KeptMemory.existing() else {
        Console.write("xenstored: FATAL: no kept memory to restart from\n")
        return ImageExitCode.restartFailed
    }
    let crashFlag = TestCrashFlag()
    let configuration = imageConfiguration(arguments, crashFlag: crashFlag).durable
    switch kept.place {
    case .disk:
        guard let device = XenBlockDevice(alreadyConnected: ()), let store = openBlockStore(device) else {
            Console.write("xenstored: FATAL: the disk cannot be read after the crash\n")
            return ImageExitCode.restartFailed
        }
        return resume(from: store, kept: kept, configuration: configuration, crashFlag: crashFlag, arguments: arguments, dom0Port: port)
    case .memory:
        let store: BlockStore<KeptMemoryDevice>
        do throws(BlockStoreError) {
            store = try kept.openStore(format: .never)
        } catch {
            Console.write("xenstored: FATAL: the history in kept memory cannot be read: ")
            reportDiskProblem(error)
            Console.write("\n")
            return ImageExitCode.restartFailed
        }
        // with --block, the boot branch: the disk had not been taken on yet
        return resume(from: store, kept: kept, configuration: configuration, crashFlag: crashFlag, arguments: arguments,
                      dom0Port: port, bootBranch: arguments.block)
    case .none:
        Console.write("xenstored: FATAL: the kept memory names no history store\n")
        return ImageExitCode.restartFailed
    }
}

/// The common part of `xenstored_resume` for either history store. With `bootBranch` (kept
/// memory holding the boot branch of a `--block` boot), our disk's handshake goes on afterwards.
func resume<Device: BlockDevice>(from store: BlockStore<Device>, kept: KeptMemory, configuration: ServerConfiguration,
                                 crashFlag: TestCrashFlag, arguments: BootArguments, dom0Port: UInt32,
                                 bootBranch: Bool = false) -> Int32 {
    let server: Server
    do throws(OpenStoreError<BlockStoreError>) {
        server = try Server.open(from: store, configuration: configuration, time: clock_wall_seconds(),
                                 bootBranch: bootBranch).server
    } catch {
        Console.write("xenstored: FATAL: the history cannot be reopened after the crash\n")
        return ImageExitCode.restartFailed
    }
    server.storageState = roomLeft(store)
    // The slot saved after the last round, unless the crash came between a round's commits reaching
    // the store and that slot: then the state written with those commits.
    let slot = kept.newestState()
    let source: StaticString = slot != nil && slot?.head == store.headID ? "the kept slot" : "the history store"
    let stored: [UInt8]?
    do throws(BlockStoreError) { stored = try store.loadState() } catch { stored = nil }
    guard let state = ResumableState.newest(slot: slot, storeHead: store.headID, storeState: stored) else {
        Console.write("xenstored: FATAL: no saved connection state to resume\n")
        return ImageExitCode.restartFailed
    }
    let rings: [RingLinkState]
    do throws(SnapshotError) {
        rings = try ResumableState.restore(state, into: server)
    } catch {
        Console.write("xenstored: FATAL: the saved connection state is damaged\n")
        return ImageExitCode.restartFailed
    }
    let loop = RingServer(server: server)
    loop.testCrash = crashFlag
    loop.traceRounds = arguments.traceRounds
    // Rings mapped in the crashed round (an INTRODUCE not yet saved) go: the request comes again.
    for index in 0..<UInt32(RT_KEPT_RINGS) {
        let domid = rt_ring_kept_domid(index)
        if UInt32(domid) != UInt32(RT_NO_DOMID) && !rings.contains(where: { $0.domid == UInt32(domid) }) {
            loop.releaseKeptRing(domid: domid)
        }
    }
    for ring in rings {
        let domid = UInt16(truncatingIfNeeded: ring.domid)
        let remotePort = domid == 0 ? dom0Port : server.eventChannel(of: ring.domid)
        if !loop.attach(domid: domid, remotePort: remotePort, privileged: domid == 0, resuming: ring) {
            Console.write("xenstored: could not re-attach the ring of domain ")
            Console.write(decimal: UInt64(domid))
            Console.write("\n")
        }
    }
    dropRepeatOffender(loop)
    _ = loop.watchDomainExceptions()
    persistEveryRound(loop, to: store)
    armRestart(loop, kept: kept)
    Console.write("xenstored: resumed ")
    Console.write(decimal: UInt64(rings.count))
    Console.write(" rings and their connections from ")
    Console.write(source)
    Console.write(" at the durable head\n")
    if bootBranch { startSelfDisk(loop, arguments, resuming: true) }
    loop.notifyAll()
    return loop.run()
}

/// When the last two crashes in a row came while serving the same connection, that connection's
/// requests crash the server: its ring is stalled (the domain must reconnect) instead of crashing
/// a third time, which would end the domain.
func dropRepeatOffender(_ loop: RingServer) {
    let culprit = rt_crash_culprit(0)
    guard rt_consecutive_crashes() >= 2, culprit != 0, culprit == rt_crash_culprit(1) else { return }
    for ring in loop.rings where ring.connection.raw == culprit {
        ring.link?.stall(loop.server, reason: .protocolViolation)
        Console.write("xenstored: the requests of domain ")
        Console.write(decimal: UInt64(ring.domid))
        Console.write(" crashed the server twice in a row: its connection is dropped (the domain must reconnect)\n")
    }
}

/// `--selftest-restart`: a global the restart must put back to its initial value.
nonisolated(unsafe) var restartProbe = 7
/// `--selftest-restart`: heap bytes in use just before the crash.
nonisolated(unsafe) var restartProbeHeapBefore = 0

/// `--selftest-restart`, before the crash: changes a global, fills a few MiB of heap, arms
/// restart in place and traps.
func crashForRestartSelfTest() {
    restartProbe = 42
    var ballast: [[UInt8]] = []
    for _ in 0..<64 { ballast.append([UInt8](repeating: 1, count: 32 * 1024)) }
    Console.write("xenstored: heap in use before the crash ")
    Console.write(decimal: UInt64(mm_heap_used() / 1024))
    Console.write(" KiB; crashing with restart in place armed (--selftest-restart)\n")
    rt_restart_arm(1)
    trapOnPurpose([ballast.count])
}

/// `--selftest-restart`, after each restart: the first checks that Swift's globals and heap are as
/// at boot and prints the verdict; every one crashes again, so that the runtime ends the loop.
func checkRestartSelfTest() -> Int32 {
    if rt_restart_count() == 1 {
        let used = mm_heap_used()
        let fresh = restartProbe == 7 && used < 512 * 1024
        Console.write("xenstored: after the restart: probe global ")
        Console.write(decimal: UInt64(restartProbe))
        Console.write(", heap in use ")
        Console.write(decimal: UInt64(used / 1024))
        Console.write(" KiB\n")
        Console.write(fresh ? "SELFTEST-RESTART: PASS\n" : "SELFTEST-RESTART: FAIL\n")
        if !fresh { return 1 }
    }
    restartProbe = 42
    trapOnPurpose([])
    return 1
}
