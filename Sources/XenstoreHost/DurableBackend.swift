// Where a host daemon keeps its history and connection state: the git database (--database) or the block file (--block), behind one interface.

import XenstoreBlock
import XenstoreServer
import XenstoreStore

/// A durable home for the history and the connection state. Every round of the daemon's loop
/// ends in at most one `persist` (group commit), before that round's replies leave.
public final class DurableBackend {
    /// The two kinds of store.
    public enum Kind {
        /// A git repository in DIR/.git (loose objects written, packs and packed-refs read).
        case gitDatabase(GitDatabase)
        /// The fixed-size block format of docs/block-format.md on a file.
        case blockStore(BlockStore<FileBlockDevice>)
    }

    /// The store behind this backend.
    public let kind: Kind
    /// For messages: the directory or file.
    public let location: String

    /// Wraps an opened store.
    public init(_ kind: Kind, location: String) {
        self.kind = kind
        self.location = location
    }

    /// Opens (creating if needed) a git database directory; requests that grow the store get
    /// ENOSPC while its file system has less than `reserve` bytes free.
    /// Loose objects are packed in the background every `repackEvery` objects (0: never).
    public static func gitDatabase(directory: String, reserve: UInt64 = GitDatabase.defaultReserveBytes,
                                   repackEvery: Int = GitDatabase.defaultRepackThreshold) throws -> DurableBackend {
        let database = try GitDatabase(directory: directory)
        database.reserveBytes = reserve
        database.repackThreshold = repackEvery
        database.log = logLine
        return DurableBackend(.gitDatabase(database), location: directory)
    }

    /// Opens (creating if needed, `size` bytes) a block file, squashing by `policy`.
    public static func blockFile(path: String, size: UInt64?, policy: SquashPolicy = SquashPolicy()) throws -> DurableBackend {
        let store = try BlockStore(device: try FileBlockDevice(path: path, size: size), policy: policy)
        return DurableBackend(.blockStore(store), location: path)
    }

    /// Builds the server: resumed from the stored head when there is one, else a fresh store
    /// whose initial commit is written at once. Installs the loader of older revisions.
    public func makeServer(configuration: ServerConfiguration, time: Int64) throws -> (server: Server, resumedAt: ObjectID?) {
        var configuration = configuration
        configuration.reportCommits = true
        configuration.idHashBudget = nil  // every commit is hashed and stored: keep the chain whole
        let generations = GenerationCounter()
        var history: History? = nil
        switch kind {
        case .gitDatabase(let database):
            if let (record, id, root) = try database.loadHead(generations: generations) {
                history = History(resuming: record, id: id, root: root, generations: generations,
                                  retainedCommits: configuration.retainedCommits)
            }
        case .blockStore(let store):
            history = try store.loadHistory(generations: generations, retainedCommits: configuration.retainedCommits)
        }
        let server: Server
        if let history {
            server = Server(configuration: configuration, history: history, time: time)
        } else {
            server = Server(configuration: configuration, time: time)
            try persist(server, state: nil)
        }
        server.storageState = storageState()
        switch kind {
        case .gitDatabase(let database):
            server.revisionLoader = { [unowned server] id in database.loadCommit(id, into: server.history) }
        case .blockStore(let store):
            store.pinned = { [unowned server] in server.openTransactionBases.map { server.history.id(of: $0) } }
            server.revisionLoader = { [unowned server] id in
                guard let record = try? store.commitRecord(id),
                      let root = try? store.loadTree(record.tree, generations: server.history.generations) else { return nil }
                return server.history.storedCommit(record, id: id, root: root)
            }
        }
        return (server, history.map { $0.id(of: $0.head) })
    }

    /// Makes the server's head (and unstored ancestors) durable, with `state` (nil: unchanged).
    public func persist(_ server: Server, state: [UInt8]?) throws {
        switch kind {
        case .gitDatabase(let database):
            try database.persist(head: server.history.head, history: server.history, state: state)
        case .blockStore(let store):
            try store.persist(head: server.history.head, history: server.history, state: state)
        }
    }

    /// Room left in the store, measured now (see `Server.storageState`).
    public func storageState() -> StorageState {
        switch kind {
        case .gitDatabase(let database):
            return database.storageState()
        case .blockStore(let store):
            return store.isNearlyFull ? .full : .available
        }
    }

    /// The connection state saved with the newest durable batch, or nil.
    public func loadState() throws -> [UInt8]? {
        switch kind {
        case .gitDatabase(let database):
            return try database.loadState()
        case .blockStore(let store):
            return try store.loadState()
        }
    }
}
