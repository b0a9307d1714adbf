// Who is protected from starvation and which guests that protection holds back (XSA-206), on a clock that never goes back.

import XenstoreWire

/// The starvation guard's state, owned by `Server`: the one protected transaction (a dom0
/// client's, after `Limits.starvationConflicts` EAGAINs in a row), the guests blamed for each
/// privileged connection's EAGAINs (not read until that connection commits), and a monotonic
/// clock for the expiry of both.
///
/// The clock advances by the forward steps of the wall-clock times the shell passes in; a wall
/// clock stepped back does not move it back (so a protection cannot be stretched by a clock
/// change), a step forward can only end a protection early.
struct StarvationGuard {
    /// The protected transaction and when (monotonic seconds) it became protected.
    private var protected: (connection: ConnectionID, transaction: UInt32, since: Int64)? = nil
    /// Unprivileged domains blamed for each privileged connection's EAGAINs, and when
    /// (monotonic seconds) the latest blame was laid.
    private var culprits: [ConnectionID: (domains: Set<UInt32>, since: Int64)] = [:]
    /// Seconds since the first observed time, never decreasing.
    private(set) var monotonic: Int64 = 0
    private var lastWall: Int64? = nil

    /// Takes the wall-clock time of an input (a request, a domain event).
    mutating func observe(wallTime: Int64) {
        if let lastWall, wallTime > lastWall { monotonic += wallTime - lastWall }
        lastWall = wallTime
    }

    /// Whether a protection is recorded (it may have expired; see `current`).
    var isProtecting: Bool { protected != nil }

    /// Protects `transaction` of `connection` from now on.
    mutating func protect(_ connection: ConnectionID, transaction: UInt32) {
        protected = (connection, transaction, monotonic)
    }

    /// The protection in force, or nil (an expired one is dropped). The caller drops it too
    /// (`end`) when the connection or transaction no longer exists.
    mutating func current() -> (connection: ConnectionID, transaction: UInt32)? {
        guard let protection = protected else { return nil }
        guard monotonic - protection.since <= Limits.starvationProtectionSeconds else {
            protected = nil
            return nil
        }
        return (protection.connection, protection.transaction)
    }

    /// Ends the protection.
    mutating func end() { protected = nil }

    /// The guests blamed for `connection`'s EAGAINs.
    func culprits(of connection: ConnectionID) -> Set<UInt32> { culprits[connection]?.domains ?? [] }

    /// Replaces the guests blamed for `connection`'s EAGAINs (empty: none); the blame holds from
    /// now for at most `Limits.starvationProtectionSeconds`.
    mutating func setCulprits(_ domains: Set<UInt32>, of connection: ConnectionID) {
        culprits[connection] = domains.isEmpty ? nil : (domains, monotonic)
    }

    /// Whether `domid` is blamed for the EAGAINs of a privileged connection that has not
    /// committed since, within `Limits.starvationProtectionSeconds` of the blame (older blames
    /// are dropped here).
    mutating func isBlamed(_ domid: UInt32) -> Bool {
        var blamed = false
        for (connection, blame) in culprits {
            if monotonic - blame.since > Limits.starvationProtectionSeconds {
                culprits[connection] = nil
            } else if blame.domains.contains(domid) {
                blamed = true
            }
        }
        return blamed
    }

    /// Forgets what was recorded about a closed connection (its protection lapses by itself).
    mutating func forget(_ connection: ConnectionID) { culprits[connection] = nil }
}
