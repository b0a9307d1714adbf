// Where the stub domain's time goes, phase by phase of its event loop: the counters behind CONTROL `profile`.

import XenRuntime
import XenstoreServer
import XenstoreWire

/// The phases one round of `RingServer.run` passes through. Every moment of the loop is charged
/// to exactly one phase: the one most recently entered.
enum RoundPhase: Int {
    /// Asleep in `evtchn_wait` (nothing to serve).
    case idle
    /// Copying request bytes out of the rings (`MappedRingPage.copyBytes`).
    case ringIn
    /// The server's work on the requests read: framing, permissions, the tree, transactions,
    /// merges, watch events (`RingLink.serveInput` minus the copying).
    case requests
    /// Carrying out the server's effects (mapping rings, logging) minus what is listed below.
    case effects
    /// Encoding the connection state for the history store and the kept slot (`resumableState`).
    case stateEncode
    /// Making a round's commits durable in the block store (minus the device writes): git ids of
    /// the new trees and commits, the batch, its checksums, the superblock.
    case historyStore
    /// The block device's writes (kept memory or the disk).
    case deviceWrite
    /// Saving the round's connection state in the kept slot (compare, copy, CRC32C).
    case stateSave
    /// Taking replies and events from the server and copying them into the rings.
    case ringOut
    /// Event-channel notifications (hypercalls).
    case notify
    /// Everything else of the loop (domain exceptions, vchan and disk polling, bookkeeping).
    case other

    /// Every phase, in report order.
    static let all: [RoundPhase] = [.idle, .ringIn, .requests, .effects, .stateEncode, .historyStore,
                                    .deviceWrite, .stateSave, .ringOut, .notify, .other]

    /// The phase's name in the report.
    var name: StaticString {
        switch self {
        case .idle: return "idle"
        case .ringIn: return "ring-in"
        case .requests: return "requests"
        case .effects: return "effects"
        case .stateEncode: return "state-encode"
        case .historyStore: return "history-store"
        case .deviceWrite: return "device-write"
        case .stateSave: return "state-save"
        case .ringOut: return "ring-out"
        case .notify: return "notify"
        case .other: return "other"
        }
    }
}

/// Nanoseconds spent in each `RoundPhase` since `profile start`, from the domain's monotonic
/// clock (the TSC scaled by Xen's time record, or the ARM generic timer). Off until started:
/// where Xen emulates the TSC every reading is a trap (`clock-read-ns` in the report), so the
/// loop reads no clock for the profile unless asked to.
struct RoundProfile {
    private var enabled = false
    private var nanoseconds = [UInt64](repeating: 0, count: RoundPhase.all.count)
    private var entries = [UInt64](repeating: 0, count: RoundPhase.all.count)
    private var current = RoundPhase.other
    private var mark: UInt64 = 0
    private var since: UInt64 = 0
    /// Rounds of the loop, and of those the ones that read at least one request.
    private var rounds: UInt64 = 0
    private var roundsWithRequests: UInt64 = 0
    /// Connection states encoded (restart in place) and their bytes.
    private var stateEncodes: UInt64 = 0
    private var stateBytes: UInt64 = 0
    /// The longest busy stretch between two sleeps, and the longest time the history store took
    /// in one (a squash shows there), in ns; the totals when the current stretch began.
    private var longestBusy: UInt64 = 0
    private var longestStore: UInt64 = 0
    private var busyAtWake: UInt64 = 0
    private var storeAtWake: UInt64 = 0
    /// The history store's counters, named (set once rounds are persisted): reported as the
    /// change since the start.
    var storeCounters: (() -> [(name: StaticString, value: UInt64)])?
    private var storeBaseline: [UInt64] = []

    /// Charges the time since the last switch to the current phase and makes `phase` current;
    /// returns the phase that was current (to switch back to after a nested phase).
    @discardableResult
    mutating func enter(_ phase: RoundPhase) -> RoundPhase {
        let previous = current
        current = phase
        guard enabled else { return previous }
        let now = clock_monotonic_ns()
        nanoseconds[previous.rawValue] &+= now &- mark
        entries[phase.rawValue] &+= 1
        mark = now
        if phase == .idle || previous == .idle { noteStretch(waking: previous == .idle) }
        return previous
    }

    /// At a sleep: how long the stretch since the last wake-up was busy, and how much of it the
    /// history store took; at a wake-up: the totals the next stretch starts from.
    private mutating func noteStretch(waking: Bool) {
        var busy: UInt64 = 0
        for phase in RoundPhase.all where phase != .idle { busy &+= nanoseconds[phase.rawValue] }
        let store = nanoseconds[RoundPhase.historyStore.rawValue] &+ nanoseconds[RoundPhase.deviceWrite.rawValue]
        if !waking {
            longestBusy = max(longestBusy, busy &- busyAtWake)
            longestStore = max(longestStore, store &- storeAtWake)
        }
        busyAtWake = busy
        storeAtWake = store
    }

    /// Counts one round of the loop.
    mutating func countRound(readRequests: Bool) {
        guard enabled else { return }
        rounds &+= 1
        if readRequests { roundsWithRequests &+= 1 }
    }

    /// Counts one encoding of the connection state, `bytes` long.
    mutating func countState(bytes: Int) {
        guard enabled else { return }
        stateEncodes &+= 1
        stateBytes &+= UInt64(bytes)
    }

    /// CONTROL `profile`: `start` zeroes the counts and starts counting, `report` and `stop`
    /// report them (`stop` then stops counting). The report: microseconds since the start and
    /// per phase, how often each phase was entered, the rounds, the store's counters and the
    /// cost of one clock reading, one `name value` line each.
    mutating func handle(_ request: ServerConfiguration.ProfileRequest) -> [UInt8] {
        if request == .start {
            for index in nanoseconds.indices {
                nanoseconds[index] = 0
                entries[index] = 0
            }
            rounds = 0
            roundsWithRequests = 0
            stateEncodes = 0
            stateBytes = 0
            longestBusy = 0
            longestStore = 0
            busyAtWake = 0
            storeAtWake = 0
            storeBaseline = (storeCounters?() ?? []).map { $0.value }
            enabled = true
            mark = clock_monotonic_ns()
            since = mark
            return Payload.bytes("started")
        }
        guard enabled else { return Payload.bytes("not started") }
        enter(current)  // charge the time up to now
        var out = Payload.bytes("elapsed-us ") + Payload.decimal((mark &- since) / 1000)
        for phase in RoundPhase.all {
            out += [0x0A] + Payload.bytes(phase.name) + Payload.bytes("-us ") + Payload.decimal(nanoseconds[phase.rawValue] / 1000)
        }
        for phase in RoundPhase.all {
            out += [0x0A] + Payload.bytes(phase.name) + Payload.bytes("-entries ") + Payload.decimal(entries[phase.rawValue])
        }
        out += Payload.bytes("\nrounds ") + Payload.decimal(rounds)
        out += Payload.bytes("\nrounds-with-requests ") + Payload.decimal(roundsWithRequests)
        out += Payload.bytes("\nstate-encodes ") + Payload.decimal(stateEncodes)
        out += Payload.bytes("\nstate-bytes ") + Payload.decimal(stateBytes)
        out += Payload.bytes("\nlongest-busy-us ") + Payload.decimal(longestBusy / 1000)
        out += Payload.bytes("\nlongest-store-us ") + Payload.decimal(longestStore / 1000)
        for (index, counter) in (storeCounters?() ?? []).enumerated() {
            let base = index < storeBaseline.count ? storeBaseline[index] : 0
            out += [0x0A] + Payload.bytes(counter.name) + [0x20] + Payload.decimal(counter.value &- base)
        }
        out += Payload.bytes("\nclock-read-ns ") + Payload.decimal(RoundProfile.clockReadCost())
        if request == .stop { enabled = false }
        return out
    }
}

extension RoundProfile {
    /// What one reading of the clock costs (ns, the mean of 1,000): the profile's own overhead
    /// per phase switch, and expensive where the hypervisor traps the time-stamp counter.
    static func clockReadCost() -> UInt64 {
        let start = clock_monotonic_ns()
        var last = start
        for _ in 0..<1000 { last = clock_monotonic_ns() }
        return (last &- start) / 1000
    }
}

/// The image's one profile (the loop is single-threaded; a restart in place starts it afresh).
nonisolated(unsafe) var roundProfile = RoundProfile()
