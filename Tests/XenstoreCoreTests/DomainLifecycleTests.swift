// Domain lifecycle as the hypervisor reports it: shutdown fires @releaseDomain once, death forgets the domain.

import Testing
import XenstoreWire
@testable import XenstoreServer

@Suite struct DomainLifecycleTests {
    @Test func shutdownFiresOnceAndDeathFiresAgainAndForgets() {
        let server = Server(time: 1_700_000_000)
        let c = TestClient(server)
        c.watch("@releaseDomain", "r")
        _ = c.takeEvents()
        #expect(c.request(.introduce, args("7", "1", "9")).isOK)
        _ = server.takeEffects()
        server.domainShutDown(7, time: 1_700_000_001)
        server.domainShutDown(7, time: 1_700_000_002)
        #expect(c.takeEvents() == [Event(path: "@releaseDomain", token: "r")])
        #expect(c.request(.isDomainIntroduced, args("7")).payload == b("T") + [0])
        #expect(server.takeEffects().isEmpty)
        server.domainDied(7, time: 1_700_000_003)
        #expect(c.takeEvents() == [Event(path: "@releaseDomain", token: "r")])
        #expect(server.takeEffects() == [.disconnectDomain(domid: 7)])
        #expect(c.request(.isDomainIntroduced, args("7")).payload == b("F") + [0])
    }

    @Test func resumeRearmsShutdownNotification() {
        let server = Server(time: 1_700_000_000)
        let c = TestClient(server)
        c.watch("@releaseDomain", "r")
        _ = c.takeEvents()
        #expect(c.request(.introduce, args("4", "1", "9")).isOK)
        server.domainShutDown(4, time: 1_700_000_001)
        #expect(c.takeEvents().count == 1)
        #expect(c.request(.resume, args("4")).isOK)
        server.domainShutDown(4, time: 1_700_000_002)
        #expect(c.takeEvents().count == 1)
    }

    @Test func ownerMayBeADomainTheHypervisorKnowsBeforeIntroduce() {
        var configuration = ServerConfiguration()
        configuration.domainExists = { $0 == 12 }
        let server = Server(configuration: configuration, time: 1_700_000_000)
        let c = TestClient(server)
        c.write("/local/domain/12", "")
        #expect(c.request(.setPerms, args("/local/domain/12", "b12")).isOK)
        #expect(c.request(.setPerms, args("/local/domain/12", "b13")).error == .ENOENT)
        let plain = TestClient(Server(time: 1_700_000_000))
        plain.write("/local/domain/12", "")
        #expect(plain.request(.setPerms, args("/local/domain/12", "b12")).error == .ENOENT)
    }
}
