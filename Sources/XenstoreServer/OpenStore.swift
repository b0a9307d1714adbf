// The one path from a durable store to a running server, shared by the host daemon, the stub image and the tools.

import XenstoreStore

/// Why a server could not be built on a store (or adopt the history a store holds).
public enum OpenStoreError<StoreFailure: Error>: Error {
    /// The store failed (it could not be read or written).
    case store(StoreFailure)
    /// The store is not new but holds no head: a fresh store is never written over it.
    case noHeadInExistingStore
    /// `adoptRecoveredHistory` was asked of a server that has no boot branch: it was built on
    /// a stored history, or has adopted one already. Nothing was read or changed.
    case noBootBranch
}

extension ServerConfiguration {
    /// This configuration for a server whose every commit a durable store keeps: commits are
    /// reported (`.committed`) and no id request squashes the chain.
    public var durable: ServerConfiguration {
        var configuration = self
        configuration.reportCommits = true
        configuration.idHashBudget = nil
        return configuration
    }
}

extension Server {
    /// Builds a server on `store`: resumed from the head of its newest durable batch, or — only
    /// when the store is new — a fresh store whose initial commit is made durable at once.
    /// Every commit is hashed and reported (`.committed`) so the shell can persist each round
    /// (with `persist(to:state:)`); the store's older commits are reachable through
    /// `revisionLoader` (a synchronous read of the store, used only by history operations).
    /// Returns the server and the head it resumed from (nil when fresh).
    ///
    /// With `bootBranch`, the store holds a boot branch (a store kept only until the real one is
    /// reachable, such as the stub domain's history in kept memory before its disk connects):
    /// the server keeps a `bootBase` — the initial tree, which every boot branch starts from, also
    /// when resumed from the store — so that `adoptRecoveredHistory` can later merge what the
    /// store holds onto the real store's history.
    public static func open<Store: HistoryStore>(from store: Store, configuration: ServerConfiguration, time: Int64,
                                                 bootBranch: Bool = false) throws(OpenStoreError<Store.Failure>) -> (server: Server, resumedAt: ObjectID?) {
        let configuration = configuration.durable
        let loaded = try loadStoredHistory(from: store, generations: GenerationCounter(),
                                           retainedCommits: configuration.retainedCommits)
        let server: Server
        if let loaded {
            server = Server(configuration: configuration, history: loaded, time: time)
            if bootBranch { server.bootBase = Server.initialTree(generations: loaded.generations) }
        } else {
            server = Server(configuration: configuration, time: time)
            // its initial commit goes to the store now: nothing to adopt later, unless the store
            // itself is the boot branch
            if !bootBranch { server.bootBase = nil }
            try server.persistOrReport(to: store, state: nil)
        }
        server.loadRevisions(from: store)
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

    /// `persist(to:state:)`, its failure reported as an `OpenStoreError`.
    func persistOrReport<Store: HistoryStore>(to store: Store, state: [UInt8]?) throws(OpenStoreError<Store.Failure>) {
        do throws(Store.Failure) {
            try persist(to: store, state: state)
        } catch {
            throw .store(error)
        }
    }

    /// The history of the newest durable batch of `store` (nil for a store that holds none),
    /// with `generations` numbering its nodes. A store that holds none must be new.
    static func loadStoredHistory<Store: HistoryStore>(from store: Store, generations: GenerationCounter,
                                                       retainedCommits: Int) throws(OpenStoreError<Store.Failure>) -> History? {
        let loaded: History?
        do throws(Store.Failure) {
            loaded = try store.loadHistory(generations: generations, retainedCommits: retainedCommits)
        } catch {
            throw .store(error)
        }
        guard loaded != nil || store.isNew else { throw .noHeadInExistingStore }
        return loaded
    }

    /// Makes the commits of `store` that memory no longer holds reachable (`revisionLoader`).
    func loadRevisions<Store: HistoryStore>(from store: Store) {
        let history = self.history  // captured instead of the server: no reference cycle
        revisionLoader = { id in store.loadCommit(id, into: history) }
    }
}
