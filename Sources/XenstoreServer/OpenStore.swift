// The one path from a durable store to a running server, shared by the host daemon, the stub image and the tools.

import XenstoreStore

/// Why a server could not be built on a store.
public enum OpenStoreError<StoreFailure: Error>: Error {
    /// The store failed (it could not be read or written).
    case store(StoreFailure)
    /// The store is not new but holds no head: a fresh store is never written over it.
    case noHeadInExistingStore
}

extension Server {
    /// Builds a server on `store`: resumed from the head of its newest durable batch, or — only
    /// when the store is new — a fresh store whose initial commit is made durable at once.
    /// Every commit is hashed and reported (`.committed`) so the shell can persist each round
    /// (with `persist(to:state:)`); the store's older commits are reachable through
    /// `revisionLoader` (a synchronous read of the store, used only by history operations).
    /// Returns the server and the head it resumed from (nil when fresh).
    public static func open<Store: HistoryStore>(from store: Store, configuration: ServerConfiguration,
                                                 time: Int64) throws(OpenStoreError<Store.Failure>) -> (server: Server, resumedAt: ObjectID?) {
        var configuration = configuration
        configuration.reportCommits = true
        configuration.idHashBudget = nil  // every commit is stored: keep the chain whole
        let loaded: History?
        do throws(Store.Failure) {
            loaded = try store.loadHistory(generations: GenerationCounter(), retainedCommits: configuration.retainedCommits)
        } catch {
            throw .store(error)
        }
        let server: Server
        if let loaded {
            server = Server(configuration: configuration, history: loaded, time: time)
        } else {
            guard store.isNew else { throw .noHeadInExistingStore }
            server = Server(configuration: configuration, time: time)
            do throws(Store.Failure) {
                try store.persist(head: server.history.head, history: server.history, state: nil)
            } catch {
                throw .store(error)
            }
        }
        let history = server.history  // captured instead of the server: no reference cycle
        server.revisionLoader = { id in store.loadCommit(id, into: history) }
        return (server, loaded.map { $0.id(of: $0.head) })
    }

    /// Makes the head and its unstored ancestors durable in `store` as one batch, with `state`
    /// as the connection state in force (nil keeps the saved one). Call it once per round of the
    /// shell's loop after effects, before any reply of the round leaves. The bases of open
    /// transactions are pinned first so that a squash keeps them.
    public func persist<Store: HistoryStore>(to store: Store, state: [UInt8]?) throws(Store.Failure) {
        let bases = openTransactionBases.map { history.id(of: $0) }
        store.pinned = { bases }
        try store.persist(head: history.head, history: history, state: state)
    }
}
