// Where a host daemon keeps its history and connection state: the git database (--database) or the block file (--block), behind one interface.

import XenstoreBlock
import XenstoreServer
import XenstoreStore

/// A durable home for the history and the connection state. Every round of the daemon's loop
/// ends in at most one `persist` (group commit), before that round's replies leave.
public final class DurableBackend {
    /// The two kinds of store.
    public enum Kind {
        /// Loose git objects and refs/heads/main in DIR/.git.
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

    /// Opens (creating if needed) a git database directory.
    public static func gitDatabase(directory: String) throws -> DurableBackend {
        DurableBackend(.gitDatabase(try GitDatabase(directory: directory)), location: directory)
    }

    /// Opens a block file (created with `createSize` bytes when missing; an existing one must be
    /// `requiredSize` bytes when given), squashing by `policy`. Refuses, unchanged, a file that
    /// holds no valid store and is not blank (see `openBlockFile`).
    public static func blockFile(path: String, createSize: UInt64, requiredSize: UInt64?,
                                 policy: SquashPolicy = SquashPolicy()) throws -> DurableBackend {
        let store = try openBlockFile(path: path, createSize: createSize, requiredSize: requiredSize, policy: policy)
        return DurableBackend(.blockStore(store), location: path)
    }

    /// Builds the server: resumed from the stored head when there is one, else a fresh store
    /// whose initial commit is written at once. Installs the loader of older revisions.
    public func makeServer(configuration: ServerConfiguration, time: Int64) throws -> (server: Server, resumedAt: ObjectID?) {
        var configuration = configuration
        configuration.reportCommits = true
        configuration.idHashBudget = nil  // every commit is hashed and stored: keep the chain whole
        if case .blockStore(let store) = kind { configuration.storageFull = { store.isNearlyFull } }
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

    /// The connection state saved with the newest durable batch, or nil.
    public func loadState() throws -> [UInt8]? {
        switch kind {
        case .gitDatabase(let database):
            return database.loadState()
        case .blockStore(let store):
            return try store.loadState()
        }
    }
}
