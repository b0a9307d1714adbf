// Every protocol limit, quota default and queue bound of the daemon, named in one place.

/// Protocol limits from Xen's `xs_wire.h`, and the defaults of every bound the daemon enforces.
///
/// Quota defaults follow C xenstored 4.17 (`xenstored_domain.c`, `xenstored_core.c`); the queue
/// bounds are this daemon's own and exist so that no client can make memory grow without limit.
public enum Limits {
    /// Largest payload of one message in either direction (`XENSTORE_PAYLOAD_MAX`).
    public static let payloadMax = 4096
    /// Size of the fixed message header: type, req_id, tx_id, len as 32-bit words.
    public static let headerSize = 16
    /// Longest absolute path (`XENSTORE_ABS_PATH_MAX`).
    public static let absolutePathMax = 3072
    /// Longest relative path (`XENSTORE_REL_PATH_MAX`); also the default `path-max` quota.
    public static let relativePathMax = 2048
    /// Size of each of the two byte queues in a shared ring page.
    public static let ringSize = 1024
    /// Request bytes taken from one domain's ring per serving turn, so one busy domain cannot
    /// starve the others (two ring-fulls: a maximal request is 4112 bytes and takes several turns).
    public static let ringBytesPerTurn = 2 * ringSize

    /// Default `nodes` quota: nodes an unprivileged domain may own.
    public static let defaultNodesPerDomain = 1000
    /// Default `watches` quota per unprivileged domain.
    public static let defaultWatchesPerDomain = 128
    /// Default `transactions` quota: open transactions per unprivileged connection.
    public static let defaultTransactionsPerDomain = 10
    /// Default `transaction-nodes` quota: distinct nodes one transaction may touch.
    public static let defaultTransactionNodes = 1024
    /// Default `node-size` quota: bytes of value + permissions + child names of one node.
    public static let defaultNodeSize = 2048
    /// Default `permissions` quota: entries in one node's permission list.
    public static let defaultPermissionsPerNode = 5
    /// Default `outstanding` quota: requests of an unprivileged domain awaiting a reply.
    public static let defaultOutstandingPerDomain = 20
    /// Default `memory` quota in bytes for an unprivileged domain (2.5 MB, C xenstored's hard
    /// quota): bounds what the domain makes the daemon hold — the nodes it owns, its open
    /// transactions' logs, its watches and its undelivered output, as C xenstored 4.17 counts
    /// them; a request over it gets ENOMEM, as in C. Privileged callers are not limited.
    public static let defaultMemoryPerDomain = 2_621_440
    /// Bytes one node is accounted for beyond its value, name and permissions: an estimate of
    /// its allocations (the node object, the value, permission and child-name arrays with their
    /// headers, the slot in its parent's child list). Counted against the owner's `memory`.
    public static let nodeMemoryOverhead = 256
    /// Bytes one watch is accounted for beyond its path and token (the record, its parsed path).
    public static let watchMemoryOverhead = 64
    /// Default bound on the sum of what every unprivileged domain holds (nodes they own, their
    /// transactions, watches and undelivered output, as the `memory` quota counts them): a guest
    /// request that would grow the sum past it gets ENOMEM, whatever its own quota, so no set
    /// of guests can take the memory dom0 needs. The stub domain sets it from its heap
    /// (`ServerConfiguration.guestMemoryLimit`); 0 means unlimited.
    public static let defaultGuestMemoryTotal = 256 << 20

    /// Most first-parent steps a revision may name (`main~N`, CONTROL rev-read and friends):
    /// as many commits as the default in-memory window keeps.
    public static let revisionStepsMax = 4096

    /// Bytes of undelivered output (replies and watch events) kept for a privileged connection
    /// before further watch events for it are dropped and counted.
    public static let privilegedOutputQueueBytes = 16 * 1024 * 1024
    /// The same bound for an unprivileged domain's connection.
    public static let unprivilegedOutputQueueBytes = 256 * 1024
    /// The stub domain's restart in place: bytes of each of the two kept slots holding the last
    /// round's connection state (a larger state turns restart in place off until it fits again).
    public static let restartStateSlotBytes = 256 * 1024
    /// The stub domain without a disk keeps its history store in kept memory: this fraction
    /// (1/n) of its heap, so that a crash restarts in place with nothing committed lost.
    public static let restartMemoryStoreDivisor = 4
    /// Replies queued for a connection at which the daemon stops reading its requests
    /// (back-pressure: a client that never reads its replies cannot grow our memory).
    public static let maxQueuedRepliesBeforeBackpressure = 64
    /// Commits kept in memory by the in-memory history before the oldest are forgotten.
    public static let defaultInMemoryHistory = 4096
    /// Estimated bytes of old node versions the in-memory history keeps beside the head
    /// (`History.retainedBytesLimit`): whichever of this and `defaultInMemoryHistory` is reached
    /// first evicts the oldest commits, so rewriting large values cannot grow memory unbounded.
    public static let defaultInMemoryHistoryBytes = 64 << 20
    /// In memory, the changed tree entries one id request may hash for commits nobody hashed
    /// before (about 16 MB of SHA-1 input); older unhashed commits are squashed. With 10,000
    /// domains under `/local/domain` that keeps about 50 commits with ids, with 100 domains about
    /// 3,000. (The first id request also hashes every tree never hashed: the whole store once.)
    public static let inMemoryIDHashBudget = 1 << 19
    /// EAGAINs in a row after which a privileged connection's next transaction is protected
    /// from starvation: other transactions whose commit would make it fail get EAGAIN instead.
    public static let starvationConflicts = 3
    /// Seconds a protected transaction keeps its protection (a stalled client cannot hold
    /// everyone else's commits back for longer).
    public static let starvationProtectionSeconds: Int64 = 2
    /// Commits examined, newest first, to find which domains caused a privileged transaction's
    /// conflict (conflict-based rate limiting; older culprits are not blamed).
    public static let conflictBlameCommits = 1024
    /// Ancestor steps searched for a merge base before a merge is declared a conflict.
    public static let mergeBaseSearchDepth = 1 << 16
    /// Overridden nodes listed by path in the message of the commit that merges the boot branch
    /// onto a recovered history (`Server.adoptRecoveredHistory`); the rest are counted.
    public static let bootMergeConflictsListed = 64
}
