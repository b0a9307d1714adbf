// SharedRingPage (the view of a mapped ring page used by --xen and --ring-dir) driven through RingLink without Xen: a page of ordinary memory plays the mapping.

#if canImport(Glibc)
import Glibc
#endif
import Testing
import XenstoreHost
import XenstoreRing
import XenstoreServer
import XenstoreWire
import XenstoreXen

/// A zeroed, page-aligned 4 KiB page, freed at the end of the test.
final class Page {
    let base: UnsafeMutableRawPointer
    init() {
        var pointer: UnsafeMutableRawPointer? = nil
        precondition(posix_memalign(&pointer, 4096, 4096) == 0)
        base = pointer!
        memset(base, 0, 4096)
    }
    deinit { free(base) }
}

private func request(_ type: MessageType, _ parts: [String], id: UInt32) -> [UInt8] {
    var payload: [UInt8] = []
    for (index, part) in parts.enumerated() {
        payload += Array(part.utf8)
        if index < parts.count - 1 || type != .write { payload.append(0) }
    }
    return Message(type, requestID: id, transactionID: 0, payload: payload).encoded
}

@Suite struct SharedRingPageTests {
    @Test func requestsAndRepliesCrossAMappedPage() throws {
        let page = Page()
        let server = Server(time: 1)
        let link = RingLink(server: server, memory: SharedRingPage(base: page.base), caller: Caller(domid: 3, privileged: true))
        let guest = RingClientEndpoint(memory: SharedRingPage(base: page.base))
        #expect(guest.serverFeatures == RingLayout.offeredFeatures)
        let bytes = request(.write, ["/vm/a", "hello"], id: 1) + request(.read, ["/vm/a"], id: 2)
        #expect(guest.writeRequests(bytes[...]) == bytes.count)
        var activity = link.serveInput(server, time: 1)
        #expect(activity.consumedRequests && !activity.wroteReplies)
        activity.merge(link.flushOutput(server))
        #expect(activity.wroteReplies)
        var replies: [UInt8] = []
        _ = guest.readResponses(appendingTo: &replies)
        var decoder = FrameDecoder()
        var messages: [Message] = []
        try decoder.feed(replies, into: &messages)
        #expect(messages.count == 2)
        #expect(messages.last?.payload == Array("hello".utf8))
    }

    @Test func corruptIndexesInTheMappedPageStallTheRing() {
        let page = Page()
        let server = Server(time: 1)
        let link = RingLink(server: server, memory: SharedRingPage(base: page.base), caller: Caller(domid: 4, privileged: false))
        let memory = SharedRingPage(base: page.base)
        memory.store32(5000, at: RingLayout.requestProducer)  // more than a ring ahead of req_cons = 0
        let activity = link.serveInput(server, time: 1)
        #expect(activity.failure != nil)
        #expect(link.isStalled)
        #expect(memory.load32(at: RingLayout.error) == RingErrorCode.ringIndex.rawValue)
    }

    @Test func outOfPageCopiesAreIgnored() {
        let page = Page()
        let memory = SharedRingPage(base: page.base)
        var bytes: [UInt8] = []
        memory.copyBytes(from: 4090, count: 100, appendingTo: &bytes)
        memory.storeBytes([1, 2, 3][...], at: 4095)
        #expect(bytes.isEmpty)
    }
}
