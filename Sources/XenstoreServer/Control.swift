// CONTROL requests (`xenstore-control`): check, log, quota, print, help, memreport, history, revisions, profile (stub only), and the test-only test-crash.

import XenstoreStore
import XenstoreWire

extension Server {
    /// Text reply of a CONTROL command: the text plus a NUL, as C xenstored sends it.
    static func text(_ bytes: [UInt8]) -> Outcome { .success(bytes + [0]) }

    /// CONTROL `<command>|[<argument>|]*` (privileged only).
    func control(_ payload: [UInt8], on connection: Connection) -> Outcome {
        let (strings, _) = Payload.strings(payload)
        guard let command = strings.first else { return .failure(.EINVAL) }
        let arguments = Array(strings.dropFirst())
        switch command {
        case Payload.bytes("check"):
            guard arguments.isEmpty else { return .failure(.EINVAL) }
            return checkStore() ? Server.text(Payload.bytes("OK")) : .failure(.EIO)
        case Payload.bytes("log"), Payload.bytes("logfile"):
            return Server.text(Payload.bytes("OK"))
        case Payload.bytes("print"):
            guard arguments.count == 1 else { return .failure(.EINVAL) }
            effects.append(.log(arguments[0]))
            return Server.text(Payload.bytes("OK"))
        case Payload.bytes("quota"):
            return quotaReport(arguments)
        case Payload.bytes("memreport"):
            var out = Payload.bytes("nodes: ") + Payload.decimal(Tree.count(history.head.root))
            out += Payload.bytes("\ncommits: ") + Payload.decimal(history.commitCount)
            out += Payload.bytes("\nconnections: ") + Payload.decimal(connections.count)
            out += Payload.bytes("\ndomains: ") + Payload.decimal(domains.count)
            out += Payload.bytes("\nnode bytes: ") + Payload.decimal(domains.total(in: .nodes))
            out += Payload.bytes("\ntransaction bytes: ") + Payload.decimal(domains.total(in: .transactions))
            out += Payload.bytes("\nwatch bytes: ") + Payload.decimal(domains.total(in: .watches))
            out += Payload.bytes("\noutput bytes: ") + Payload.decimal(domains.total(in: .output))
            out += Payload.bytes("\nguest bytes: ") + Payload.decimal(domains.guestBytes)
            out += Payload.bytes(" of ") + Payload.decimal(configuration.guestMemoryLimit)
            out += Payload.bytes("\ndirectory_part entries visited: ") + Payload.decimal(counters.directoryPartEntriesVisited)
            out += Payload.bytes("\ntransaction requests replayed: ") + Payload.decimal(counters.transactionRequestsReplayed)
            if let extra = configuration.memoryReport?() { out += [0x0A] + extra }
            return Server.text(out)
        case Payload.bytes("profile"):
            guard let profile = configuration.profile else { return .failure(.EINVAL) }
            switch arguments.first {
            case nil: return Server.text(profile(.report))
            case Payload.bytes("start") where arguments.count == 1: return Server.text(profile(.start))
            case Payload.bytes("stop") where arguments.count == 1: return Server.text(profile(.stop))
            default: return .failure(.EINVAL)
            }
        case Payload.bytes("history"):
            let limit = arguments.first.flatMap { Payload.parseDecimal($0) }.map { Int(min($0, 10_000)) } ?? 20
            return historyReport(limit: limit)
        case Payload.bytes("rev-read"), Payload.bytes("rev-directory"), Payload.bytes("rev-perms"):
            return revisionRead(command, arguments, caller: connection.caller)
        case Payload.bytes("restore"):
            return restore(arguments, author: connection.caller.domid)
        case Payload.bytes("revert"):
            return revert(arguments, author: connection.caller.domid)
        case Payload.bytes("merge"):
            return mergeForeign(arguments, author: connection.caller.domid)
        case Payload.bytes("test-crash"):
            guard arguments.isEmpty else { return .failure(.EINVAL) }
            guard let crash = configuration.testCrash else { return .failure(.EACCES) }
            crash()
            return Server.text(Payload.bytes("OK"))
        case Payload.bytes("help"):
            return Server.text(Payload.bytes(
                "Available commands:\ncheck\nhelp\nhistory [<count>]\nlog\nlogfile\nmemreport\nmerge <rev> <base-rev>\nprint <string>\nprofile [start|stop]\nquota [<domid>]\nrestore <rev> [<path>]\nrev-directory <rev> <path>\nrev-perms <rev> <path>\nrev-read <rev> <path>\nrevert <rev>\n"))
        default:
            return .failure(.EINVAL)
        }
    }

    /// Recounts node ownership and every domain's memory and compares them with the
    /// incremental accounting.
    func checkStore() -> Bool {
        let (nodes, bytes) = DomainTable.ownership(of: history.head.root)
        guard nodes == domains.ownedNodes, bytes == domains.ownedBytes else { return false }
        var watches: [UInt32: Int] = [:]
        var output: [UInt32: Int] = [:]
        var transactions: [UInt32: Int] = [:]
        for connection in connections.values {
            let domid = connection.caller.domid
            watches[domid, default: 0] += Server.watchBytes(connection.watches)
            output[domid, default: 0] += connection.output.byteCount
            for transaction in connection.transactions.values { transactions[domid, default: 0] += transaction.heldBytes }
        }
        var guests = 0
        for (domid, owned) in bytes where domid != 0 { guests += owned }
        for (use, table) in [(MemoryUse.watches, watches), (.output, output), (.transactions, transactions)] {
            for (domid, held) in table {
                if domains.usage(of: domid, in: use) != held { return false }
                if domid != 0 { guests += held }
            }
            if domains.total(in: use) != table.values.reduce(0, +) { return false }
        }
        return guests == domains.guestBytes
    }

    func quotaReport(_ arguments: [[UInt8]]) -> Outcome {
        var out: [UInt8] = []
        if let first = arguments.first {
            guard let domid = Payload.parseDecimal(first), domid <= UInt64(UInt32.max) else { return .failure(.EINVAL) }
            let id = UInt32(domid)
            guard domainExists(id) else { return .failure(.ENOENT) }
            out += Payload.bytes("Domain ") + Payload.decimal(id) + Payload.bytes(":\n")
            out += Payload.bytes("nodes: ") + Payload.decimal(domains.ownedNodes[id] ?? 0) + [0x0A]
            out += Payload.bytes("watches: ") + Payload.decimal(watchCount(of: id)) + [0x0A]
            out += Payload.bytes("memory: ") + Payload.decimal(domains.usage(of: id)) + [0x0A]
            out += Payload.bytes("memory nodes: ") + Payload.decimal(domains.usage(of: id, in: .nodes)) + [0x0A]
            out += Payload.bytes("memory transactions: ") + Payload.decimal(domains.usage(of: id, in: .transactions)) + [0x0A]
            out += Payload.bytes("memory watches: ") + Payload.decimal(domains.usage(of: id, in: .watches)) + [0x0A]
            out += Payload.bytes("memory output: ") + Payload.decimal(domains.usage(of: id, in: .output)) + [0x0A]
            out += Payload.bytes("history bytes: ") + Payload.decimal(history.retainedBytesByAuthor[id] ?? 0) + [0x0A]
            return Server.text(out)
        }
        for name in Quotas.names {
            out += name + Payload.bytes(": ") + Payload.decimal(configuration.quotas.value(named: name)!) + [0x0A]
        }
        return Server.text(out)
    }

    /// The newest commits along first parents: `<id> <author> <time> <summary>` per line.
    func historyReport(limit: Int) -> Outcome {
        var out: [UInt8] = []
        for commit in history.firstParentLog(limit: limit) {
            var line = history.id(of: commit).hex
            line += [0x20] + Payload.decimal(commit.time) + [0x20] + commit.summary + [0x0A]
            if out.count + line.count + 1 > Limits.payloadMax { break }
            out += line
        }
        return Server.text(out)
    }
}
