// Starvation guard: a dom0 client that keeps losing a true conflict gets its next transaction through; guests never hold commits back; protection expires.

import Testing
import XenstoreWire
@testable import XenstoreServer

@Suite struct StarvationTests {
    /// `loser` reads /counter in a transaction; `winner` changes /counter before loser's end,
    /// `times` times in a row: each of loser's ends answers EAGAIN.
    func loseRepeatedly(_ loser: TestClient, to winner: TestClient, times: Int) {
        for round in 0..<times {
            let tx = loser.start()
            _ = loser.read("/counter", tx: tx)
            winner.write("/counter", "w\(round)")
            loser.write("/counter", "l\(round)", tx: tx)
            #expect(loser.end(tx).error == .EAGAIN)
        }
    }

    /// A transaction that reads /counter, writes `value` there and ends: the END reply.
    func readModifyWrite(_ client: TestClient, _ value: String) -> Reply {
        let tx = client.start()
        _ = client.read("/counter", tx: tx)
        client.write("/counter", value, tx: tx)
        return client.end(tx)
    }

    /// Two dom0 clients on a fresh server; the loser has just lost `starvationConflicts` times.
    func starvedLoser() -> (loser: TestClient, winner: TestClient) {
        let server = Server(time: 1_700_000_000)
        let loser = TestClient(server)
        let winner = TestClient(server)
        winner.write("/counter", "0")
        loseRepeatedly(loser, to: winner, times: Limits.starvationConflicts)
        return (loser, winner)
    }

    @Test func aStarvingDom0TransactionIsProtected() {
        let (loser, winner) = starvedLoser()
        // Now protected: the winner's conflicting transaction is refused, the loser commits.
        let protected = loser.start()
        #expect(s(loser.read("/counter", tx: protected).payload) == "w\(Limits.starvationConflicts - 1)")
        #expect(readModifyWrite(winner, "rival").error == .EAGAIN)
        // A transaction that does not touch what the protected one read still commits.
        let unrelated = winner.start()
        winner.write("/elsewhere", "x", tx: unrelated)
        #expect(winner.end(unrelated).error == nil)
        loser.write("/counter", "loser", tx: protected)
        #expect(loser.end(protected).error == nil)
        #expect(s(loser.read("/counter").payload) == "loser")
        // Protection ended with the commit: the winner's retry goes through.
        #expect(readModifyWrite(winner, "retry").error == nil)
    }

    @Test func fewerConflictsOrAGuestGetNoProtection() {
        let server = Server(time: 1_700_000_000)
        let admin = TestClient(server)
        admin.write("/counter", "0")
        #expect(admin.request(.introduce, args("7", "1", "1")).error == nil)
        #expect(admin.setPerms("/counter", "b7").error == nil)
        let loser = TestClient(server)
        let winner = TestClient(server)
        loseRepeatedly(loser, to: winner, times: Limits.starvationConflicts - 1)
        let open = loser.start()
        _ = loser.read("/counter", tx: open)
        #expect(readModifyWrite(winner, "rival").error == nil, "not starving yet: first to commit wins")
        #expect(loser.end(open, commit: false).error == nil)

        let guest = TestClient(server, caller: Caller(domid: 7, privileged: false))
        loseRepeatedly(guest, to: winner, times: Limits.starvationConflicts + 1)
        let guestTx = guest.start()
        _ = guest.read("/counter", tx: guestTx)
        #expect(readModifyWrite(winner, "dom0").error == nil, "a guest's transaction never holds dom0 back")
    }

    @Test func protectionExpires() {
        let (loser, winner) = starvedLoser()
        let stalled = loser.start()
        _ = loser.read("/counter", tx: stalled)
        winner.time += Limits.starvationProtectionSeconds + 1
        #expect(readModifyWrite(winner, "rival").error == nil, "a stalled protected client holds others back only for a while")
    }

    /// The protection's window is measured on a clock that never goes back: a wall clock
    /// stepped back an hour neither stretches it nor ends it early.
    @Test func protectionWindowIgnoresClockStepsBack() {
        let (loser, winner) = starvedLoser()
        let protected = loser.start()
        _ = loser.read("/counter", tx: protected)
        winner.time -= 3600  // the host's clock was stepped back
        #expect(readModifyWrite(winner, "rival").error == .EAGAIN, "still protected right after the step")
        winner.time += Limits.starvationProtectionSeconds + 1
        #expect(readModifyWrite(winner, "rival").error == nil,
                "the window ends after starvationProtectionSeconds of elapsed time, not an hour later")
    }
}
