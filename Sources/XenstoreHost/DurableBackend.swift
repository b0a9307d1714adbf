// Where a host daemon keeps its history and connection state: any `HistoryStore` (the git database of --database, the block file of --block) behind one interface.

import XenstoreBlock
import XenstoreServer
import XenstoreStore

/// A durable home for the history and the connection state. Every round of the daemon's loop
/// ends in at most one `persist` (group commit), before that round's replies leave.
///
/// It wraps one `HistoryStore` (its generic parts are captured at creation, so the shell holds
/// one concrete type whatever the store) plus what only the host knows about it: how much room
/// it has left.
public final class DurableBackend {
    /// For messages: the directory or file.
    public let location: String
    private let openServer: (ServerConfiguration, Int64) throws -> (server: Server, resumedAt: ObjectID?)
    private let persistRound: (Server, [UInt8]?) throws -> Void
    private let savedState: () throws -> [UInt8]?
    private let measureRoom: () -> StorageState

    /// Wraps an opened store; `room` measures how much room it has left.
    public init<Store: HistoryStore>(_ store: Store, location: String, room: @escaping () -> StorageState) {
        self.location = location
        openServer = { configuration, time in
            do throws(OpenStoreError<Store.Failure>) {
                return try Server.open(from: store, configuration: configuration, time: time)
            } catch {
                switch error {
                case .store(let failure): throw failure
                case .noHeadInExistingStore:
                    throw DatabaseError.corrupt("the store is not new but has no head; refusing to write a fresh store over it")
                case .noBootBranch:
                    preconditionFailure("only adoption reports noBootBranch, never open")
                }
            }
        }
        persistRound = { server, state in try server.persist(to: store, state: state) }
        savedState = { try store.loadState() }
        measureRoom = room
    }

    /// Opens (creating if needed) a git database directory; requests that grow the store get
    /// ENOSPC while its file system has less than `reserve` bytes free (guests below twice that).
    /// Loose objects are packed in the background every `repackEvery` objects (0: never).
    public static func gitDatabase(directory: String, reserve: UInt64 = GitDatabase.defaultReserveBytes,
                                   repackEvery: Int = GitDatabase.defaultRepackThreshold) throws -> DurableBackend {
        let database = try GitDatabase(directory: directory)
        database.reserveBytes = reserve
        database.repackThreshold = repackEvery
        database.log = logLine
        return DurableBackend(database, location: directory) { database.storageState() }
    }

    /// Opens a block file (created with `createSize` bytes when missing; an existing one must be
    /// `requiredSize` bytes when given), squashing by `policy`. Refuses, unchanged, a file that
    /// holds no valid store and is not blank (see `openBlockFile`).
    public static func blockFile(path: String, createSize: UInt64, requiredSize: UInt64?,
                                 policy: SquashPolicy = SquashPolicy()) throws -> DurableBackend {
        let store = try openBlockFile(path: path, createSize: createSize, requiredSize: requiredSize, policy: policy)
        return DurableBackend(store, location: path) {
            store.isNearlyFull ? .full : store.isReservedForDom0 ? .reservedForDom0 : .available
        }
    }

    /// Builds the server through the one path every shell uses (`Server.open(from:)`): resumed
    /// from the stored head, or for a new store a fresh one whose initial commit is written at once.
    public func makeServer(configuration: ServerConfiguration, time: Int64) throws -> (server: Server, resumedAt: ObjectID?) {
        let opened = try openServer(configuration, time)
        opened.server.storageState = storageState()
        return opened
    }

    /// Makes the server's head (and unstored ancestors) durable, with `state` (nil: unchanged).
    public func persist(_ server: Server, state: [UInt8]?) throws {
        try persistRound(server, state)
    }

    /// Room left in the store, measured now (see `Server.storageState`).
    public func storageState() -> StorageState {
        measureRoom()
    }

    /// The connection state saved with the newest durable batch, or nil.
    public func loadState() throws -> [UInt8]? {
        try savedState()
    }
}
