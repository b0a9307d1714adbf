// Extra connections of the socket daemon that are not sockets (the Xen rings of dom0 and guests).

import XenstoreServer

/// A source of connections served inside `SocketDaemon`'s poll loop next to its sockets, e.g.
/// the shared-memory rings of Xen domains. Each loop round the daemon calls `receive` (after
/// poll), then makes the round's commits durable, hands over the effects, then calls `transmit`:
/// so no reply leaves through a transport before the commit that produced it is durable.
public protocol DaemonTransport: AnyObject {
    /// Descriptors to wait on for input (e.g. the event-channel device).
    var pollDescriptors: [Int32] { get }
    /// Whether more can be done at once (poll must not sleep).
    func hasPendingWork(_ server: Server) -> Bool
    /// Takes notifications and feeds waiting requests to the server.
    func receive(_ server: Server, time: Int64)
    /// Carries out an effect of the server; returns false if it is not the transport's business
    /// (the daemon then handles it). `.closeConnection` is offered for every connection.
    func handle(_ effect: ServerEffect, server: Server, time: Int64) -> Bool
    /// Writes queued replies and notifies the other ends.
    func transmit(_ server: Server)
}
