// The contract every durable backend fulfils (git database, block store), and the one routine that turns unstored commits into objects.

/// A durable home for a `History` and the connection state saved beside it, in the spirit of
/// Irmin's backend signature: content-addressed git objects, one head, one durable batch.
///
/// Implemented by the git database (`XenstoreHost.GitDatabase`) and the block store
/// (`XenstoreBlock.BlockStore`, on any `BlockDevice`). The server is built from a store through
/// one path, `Server.open(from:configuration:time:)`, in the host daemon and in the stub image
/// alike; the conformance suite (Tests/IntegrationTests/HistoryStoreConformanceTests.swift)
/// runs the same checks against every implementation.
public protocol HistoryStore: AnyObject {
    /// The error a store reports (its own small enum).
    associatedtype Failure: Error

    /// Whether this store was new when opened: only then may a fresh initial store be written
    /// into it. An existing store that cannot be read must have failed to open instead.
    var isNew: Bool { get }

    /// The head saved by the newest durable batch, resumed into a `History` (whose head is that
    /// commit with its tree loaded), or nil for a new, empty store.
    func loadHistory(generations: GenerationCounter, retainedCommits: Int) throws(Failure) -> History?

    /// Makes `head` and every in-memory ancestor the store lacks durable in one batch, with
    /// `state` as the connection state in force (nil keeps the saved one). When it returns, the
    /// batch survives a crash; when it throws, the previous batch is still the one in force.
    func persist(head: Commit, history: History, state: [UInt8]?) throws(Failure)

    /// The connection state saved with the newest durable batch, or nil if none was saved.
    func loadState() throws(Failure) -> [UInt8]?

    /// A stored commit loaded as a detached commit of `history` (for restore, revert and
    /// merges); nil when the store does not hold it.
    func loadCommit(_ id: ObjectID, into history: History) -> Commit?

    /// Commits that must stay readable whatever the store drops to make room (the bases of
    /// open transactions); asked when the store is about to squash. A synchronous port between
    /// two core parts, not I/O: the server answers from memory.
    var pinned: () -> [ObjectID] { get set }
}

extension History {
    /// Visits every object a store lacks for `head` to be complete: the commits reachable from
    /// `head` through in-memory parents whose ids `isStored` does not know, oldest first, each
    /// after the trees and blobs of its tree (`since` is a tree all of whose objects are stored,
    /// e.g. the last one written, so shared subtrees are skipped without hashing them again).
    /// Every backend's batch is built by this one routine.
    public func forEachUnstoredObject(from head: Commit, since stored: Node?, isStored: (ObjectID) -> Bool,
                                      visit: (ObjectID, GitObjectType, [UInt8]) -> Void) {
        var previous = stored
        for commit in unstoredCommits(from: head, stored: isStored) {
            GitEncoding.forEachObject(commit.root, since: previous, skipping: isStored, visit: visit)
            let (id, body) = encoded(commit)
            visit(id, .commit, body)
            previous = commit.root
        }
    }
}
