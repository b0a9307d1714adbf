// The virtual /tool/xenstored subtrees: live connection, domain and server state, readable by dom0 only, never committed.

import Testing
import XenstoreWire
@testable import XenstoreServer

@Suite struct IntrospectionTests {
    let start: Int64 = 1_700_000_000

    /// A server with dom0's client and an introduced guest (domain 5, ring gfn 77, event channel 9).
    func setUp() -> (Server, TestClient, TestClient) {
        let server = Server(time: start)
        let dom0 = TestClient(server, time: start)
        #expect(dom0.request(.introduce, args("5", "77", "9")).isOK)
        _ = server.takeEffects()
        #expect(dom0.mkdir("/local/domain/5").isOK)
        #expect(dom0.setPerms("/local/domain/5", "n5").isOK)
        let guest = TestClient(server, caller: Caller(domid: 5, privileged: false), time: start)
        return (server, dom0, guest)
    }

    @Test func connectionsWatchesTransactionsAndDomainsAreReadableAsNodes() {
        let (server, dom0, guest) = setUp()
        #expect(guest.watch("data", "tok").isOK)
        let base = server.history.head.sequence
        guest.time = start + 42
        let tx = guest.start()
        #expect(guest.write("data/a", "1", tx: tx).isOK)
        #expect(guest.read("data/a", tx: tx).text == "1")
        var commits = server.history.commitCount

        #expect(Set(dom0.directory("/tool/xenstored").strings).isSuperset(of: ["connection", "domain", "server"]))
        #expect(Set(dom0.directory("/tool/xenstored/connection").strings) == ["\(dom0.id.raw)", "\(guest.id.raw)"])
        let me = "/tool/xenstored/connection/\(guest.id.raw)"
        #expect(dom0.read("\(me)/domid").text == "5")
        #expect(dom0.read("\(me)/privileged").text == "0")
        #expect(dom0.read("\(me)/transport").text == "ring")
        #expect(dom0.read("/tool/xenstored/connection/\(dom0.id.raw)/transport").text == "socket")
        #expect(dom0.directory("\(me)/watch").strings == ["0"])
        #expect(dom0.read("\(me)/watch/0/path").text == "/local/domain/5/data")
        #expect(dom0.read("\(me)/watch/0/token").text == "tok")
        #expect(dom0.read("\(me)/watch/0/depth").text == "")
        #expect(dom0.directory("\(me)/transaction").strings == ["\(tx)"])
        #expect(dom0.read("\(me)/transaction/\(tx)/requests").text == "2")
        #expect(dom0.read("\(me)/transaction/\(tx)/started").text == "\(start + 42)")
        #expect(dom0.read("\(me)/transaction/\(tx)/base").text == "\(base)")
        // An event for the guest waits in its output until it reads it.
        #expect(dom0.read("\(me)/output/events").text == "0")
        #expect(dom0.write("/local/domain/5/data/b", "2").isOK)
        commits += 1
        #expect(dom0.read("\(me)/output/events").text == "1")
        #expect(dom0.read("\(me)/output/replies").text == "0")
        #expect(Int(dom0.read("\(me)/output/bytes").text)! > 0)
        #expect(dom0.read("/tool/xenstored/domain/5/introduced").text == "1")
        #expect(dom0.read("/tool/xenstored/domain/5/ring/gfn").text == "77")
        #expect(dom0.read("/tool/xenstored/domain/5/ring/event-channel").text == "9")
        #expect(dom0.read("/tool/xenstored/domain/5/watches").text == "1")
        #expect(dom0.read("/tool/xenstored/domain/5/transactions").text == "1")
        #expect(dom0.read("/tool/xenstored/domain/5/quota/transactions").text == "\(Limits.defaultTransactionsPerDomain)")
        #expect(Int(dom0.read("/tool/xenstored/domain/5/memory/transactions").text)! > 0)
        #expect(dom0.read("/tool/xenstored/server/connections").text == "2")
        #expect(dom0.read("/tool/xenstored/server/commits").text == "\(commits)")
        #expect(dom0.getPerms("/tool/xenstored/server/nodes").strings == ["n0"])
        #expect(dom0.read("/tool/xenstored/connection/999/domid").error == .ENOENT)
        #expect(dom0.read("/tool/xenstored/server/nothing").error == .ENOENT)

        // Reading it committed nothing and stored nothing.
        #expect(server.history.commitCount == commits)
        #expect(dump(server).keys.allSatisfy { !$0.hasPrefix("/tool/xenstored/") })

        #expect(guest.end(tx).isOK)
        _ = guest.takeEvents()
        #expect(dom0.directory("\(me)/transaction").strings == [])
        #expect(dom0.read("\(me)/output/events").text == "0")
    }

    @Test func guestsCannotReadItAndNobodyCanChangeIt() {
        let (server, dom0, guest) = setUp()
        let commits = server.history.commitCount
        #expect(guest.read("/tool/xenstored/server/nodes").error == .EACCES)
        #expect(guest.directory("/tool/xenstored/connection").error == .EACCES)
        #expect(guest.getPerms("/tool/xenstored/domain/5").error == .EACCES)
        #expect(dom0.write("/tool/xenstored/server/nodes", "1").error == .EACCES)
        #expect(dom0.mkdir("/tool/xenstored/domain/5/extra").error == .EACCES)
        #expect(dom0.rm("/tool/xenstored/connection").error == .EACCES)
        #expect(dom0.setPerms("/tool/xenstored/server", "b0").error == .EACCES)
        let tx = dom0.start()
        #expect(dom0.write("/tool/xenstored/domain/5/nodes", "0", tx: tx).error == .EACCES)
        #expect(dom0.end(tx).isOK)
        #expect(server.history.commitCount == commits)
        // /tool/xenstored itself stays an ordinary node.
        #expect(dom0.write("/tool/xenstored/version", "1").isOK)
        #expect(dom0.directory("/tool/xenstored").strings == ["connection", "domain", "server", "version"])
    }

    @Test func watchersAtOrBelowItSeeConnectionsWatchesAndTransactionsComeAndGo() {
        let server = Server(time: start)
        let dom0 = TestClient(server, time: start)
        let everything = TestClient(server, time: start)
        #expect(dom0.watch("/tool/xenstored", "live").isOK)
        #expect(everything.watch("/", "all").isOK)
        _ = dom0.takeEvents()
        _ = everything.takeEvents()

        let other = TestClient(server, time: start)
        let base = "/tool/xenstored/connection/\(other.id.raw)"
        #expect(dom0.takeEvents() == [Event(path: base, token: "live")])
        #expect(other.watch("/local", "x").isOK)
        #expect(dom0.takeEvents() == [Event(path: "\(base)/watch", token: "live")])
        let tx = other.start()
        #expect(dom0.takeEvents() == [Event(path: "\(base)/transaction", token: "live")])
        #expect(other.end(tx, commit: false).isOK)
        #expect(dom0.takeEvents() == [Event(path: "\(base)/transaction", token: "live")])
        #expect(dom0.request(.introduce, args("6", "1", "3")).isOK)
        #expect(dom0.takeEvents() == [Event(path: "/tool/xenstored/domain/6", token: "live")])
        server.closeConnection(other.id)
        #expect(dom0.takeEvents() == [Event(path: base, token: "live")])
        // A watch on / gets none of it: only the watch's own initial event came.
        #expect(everything.takeEvents().isEmpty)
    }

    @Test func theEventOfAWatchRegistrationFollowsItsReply() {
        let server = Server(time: start)
        let dom0 = TestClient(server, time: start)
        #expect(dom0.watch("/tool/xenstored/connection", "c").isOK)
        let types = dom0.received.map { $0.header.type }
        // The reply, the watch's initial event, then the event of the watch being added.
        #expect(types == [MessageType.watch.rawValue, MessageType.watchEvent.rawValue, MessageType.watchEvent.rawValue])
        #expect(dom0.takeEvents() == [Event(path: "/tool/xenstored/connection", token: "c"),
                                      Event(path: "/tool/xenstored/connection/\(dom0.id.raw)/watch", token: "c")])
    }

    @Test func aTransactionThatReadItIsNotReplayedForIt() {
        let (server, dom0, _) = setUp()
        let tx = dom0.start()
        let before = dom0.read("/tool/xenstored/server/commits", tx: tx).text
        #expect(dom0.write("/local/domain/0/x", "1", tx: tx).isOK)
        let other = TestClient(server, time: start)
        #expect(other.write("/local/domain/0/y", "2").isOK)
        #expect(dom0.read("/tool/xenstored/server/commits", tx: tx).text != before)
        #expect(dom0.end(tx).isOK)  // the virtual reads are live, not part of what the transaction read
    }

    @Test func directoryPartKeepsItsGenerationUntilNamesChange() {
        let (server, dom0, _) = setUp()
        func part() -> (generation: String, names: [String]) {
            let strings = Payload.strings(dom0.request(.directoryPart, args("/tool/xenstored/connection", "0")).payload).strings
            return (s(strings[0]), strings.dropFirst().map { s($0) }.filter { !$0.isEmpty })
        }
        let first = part()
        #expect(first.names.count == 2)
        #expect(dom0.write("/local/domain/0/x", "1").isOK)  // a counter changes, names do not
        #expect(part().generation == first.generation)
        _ = TestClient(server, time: start)
        let third = part()
        #expect(third.generation != first.generation)
        #expect(third.names.count == 3)
        let root = Payload.strings(dom0.request(.directoryPart, args("/tool/xenstored", "0")).payload).strings
        #expect(root.dropFirst().map { s($0) }.filter { !$0.isEmpty } == ["connection", "domain", "server"])
    }

    @Test func aRestoredWatchOnItStillFires() throws {
        let server = Server(time: start)
        let dom0 = TestClient(server, time: start)
        #expect(dom0.watch("/tool/xenstored/connection", "c").isOK)
        _ = dom0.takeEvents()
        let state = server.encodeState(connections: [dom0.id])
        let restarted = Server(history: server.history, time: start)
        let ids = try restarted.restoreState(state)
        #expect(ids == [dom0.id])
        let again = TestClient(restarted, existing: dom0.id, time: start)
        let newcomer = TestClient(restarted, time: start)
        #expect(again.takeEvents() == [Event(path: "/tool/xenstored/connection/\(newcomer.id.raw)", token: "c")])
        #expect(again.read("/tool/xenstored/connection/\(dom0.id.raw)/watch/0/path").text == "/tool/xenstored/connection")
        #expect(again.read("/tool/xenstored/connection/\(dom0.id.raw)/transport").text == "socket")
        restarted.describeTransport(dom0.id, Array("ring of domain 0".utf8))
        #expect(again.read("/tool/xenstored/connection/\(dom0.id.raw)/transport").text == "ring of domain 0")
    }
}
