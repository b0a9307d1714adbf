// Commits and the in-memory history: head, commit creation, git commit ids, bounded retention.

/// One commit: a whole tree plus who made it, when, why, and its parents.
public final class Commit: @unchecked Sendable {
    /// Position in creation order within this daemon's history (1 = first commit).
    public let sequence: UInt64
    /// The tree of the store after this commit.
    public let root: Node
    /// The domain whose request produced the commit.
    public let author: UInt32
    /// The commit message (first line is the summary).
    public let message: [UInt8]
    /// Seconds since the Unix epoch, UTC.
    public let time: Int64
    /// Parents still held in memory; cleared once the commit leaves the retained window.
    public internal(set) var parents: [Commit]
    /// Ids of the parents, filled when the commit's own id is computed.
    public internal(set) var parentIDs: [ObjectID]?
    var cachedID: ObjectID?
    /// Estimated bytes of node versions this commit made that its parent does not share
    /// (`History.changedBytes`): what keeping its predecessor in memory costs.
    public internal(set) var changedBytes = 0

    init(sequence: UInt64, root: Node, parents: [Commit], author: UInt32, message: [UInt8], time: Int64) {
        self.sequence = sequence
        self.root = root
        self.parents = parents
        self.author = author
        self.message = message
        self.time = time
    }

    /// Number of parents (0 for the root commit, 2 for a merge).
    public var parentCount: Int { parentIDs?.count ?? parents.count }

    /// The first line of the message.
    public var summary: [UInt8] {
        if let newline = message.firstIndex(of: 0x0A) { return Array(message[..<newline]) }
        return message
    }

    /// The git identity line value for the author: `Domain N <domain-N@xenstore> TIME +0000`.
    public var identity: [UInt8] {
        var out: [UInt8] = []
        appendIdentity(to: &out)
        return out
    }

    /// Appends `identity` to `out` (a commit body holds it twice).
    public func appendIdentity(to out: inout [UInt8]) {
        out.append(contentsOf: "Domain ".utf8)
        GitEncoding.appendDecimal(Int64(author), to: &out)
        out.append(contentsOf: " <domain-".utf8)
        GitEncoding.appendDecimal(Int64(author), to: &out)
        out.append(contentsOf: "@xenstore> ".utf8)
        GitEncoding.appendDecimal(time, to: &out)
        out.append(contentsOf: " +0000".utf8)
    }
}

/// The store's history: every commit since start (or since the oldest retained one), and the head.
///
/// Commits keep their parents alive only inside a retained window of recent commits, so memory
/// stays bounded. Git ids are computed lazily — when a backend persists a commit or a client asks
/// for one — because hashing every version of a directory with thousands of entries would make
/// each commit cost O(directory size). A commit whose id was computed keeps it for ever and its
/// ancestors' ids with it. A commit that leaves the window before anything asked for its id is
/// squashed away: the oldest retained commit of such a run becomes a root commit (no parent line)
/// whose tree holds the whole store. Durable backends hash every commit when they persist it,
/// so their chains are complete. In memory, `idHashBudget` also squashes unhashed ancestors
/// beyond a hashing budget when an id is asked for.
public final class History {
    /// The commit the store currently shows.
    public private(set) var head: Commit
    /// Node generation numbers shared by all trees of this history.
    public let generations: GenerationCounter
    /// How many recent commits keep their parent links in memory.
    public let retainedCommits: Int
    /// When set (the in-memory store), computing an id hashes the trees of at most about this
    /// many changed tree entries of commits nobody hashed before: older unhashed ancestors are
    /// squashed (the oldest one kept becomes a root commit). It bounds how long one `history`
    /// request can stall the daemon after a long run of commits under a huge directory. nil
    /// (durable stores, which hash every commit as they write it): the whole chain is hashed.
    public var idHashBudget: Int? = nil
    /// Estimated bytes of old node versions the retained window may hold beside the head (sum
    /// of the window's `changedBytes`). Commits leave the window when either bound is reached,
    /// so a domain rewriting many large values cannot make history grow without limit.
    public var retainedBytesLimit = Int.max
    /// The current sum of `changedBytes` over the retained window.
    public private(set) var retainedBytes = 0
    /// Bound on the part of `retainedBytes` whose commits one author other than dom0 made: a
    /// guest rewriting its nodes makes older commits leave the window once its own share passes
    /// it, so no guest can make history hold more than this for it (a shorter window for all).
    public var retainedBytesPerAuthorLimit = Int.max
    /// `retainedBytes` split by the commits' authors.
    public private(set) var retainedBytesByAuthor: [UInt32: Int] = [:]
    private var window: [Commit] = []
    private var windowStart = 0
    private var nextSequence: UInt64 = 1

    /// Starts a history whose first commit holds `root`.
    public init(root: Node, author: UInt32, message: [UInt8], time: Int64, generations: GenerationCounter,
                retainedCommits: Int) {
        self.generations = generations
        self.retainedCommits = max(retainedCommits, 2)
        let first = Commit(sequence: 1, root: root, parents: [], author: author, message: message, time: time)
        nextSequence = 2
        head = first
        window.append(first)
    }

    /// A commit read back from storage, outside the retained window: its parents are known by id
    /// only. Used as a parent of merges (pull) and as a source of restores.
    public func storedCommit(_ record: CommitRecord, id: ObjectID, root: Node) -> Commit {
        let commit = Commit(sequence: 0, root: root, parents: [], author: record.author, message: record.message,
                            time: record.time)
        commit.parentIDs = record.parents
        commit.cachedID = id
        return commit
    }

    /// The retained commits whose id starts with the hex digits `prefix` (newest first): the
    /// head and its hashed ancestors, and any retained commit whose id was computed before.
    /// Retained commits nobody ever hashed have no id anyone could name, and are not hashed here.
    public func retainedCommits(matching prefix: [UInt8]) -> [Commit] {
        _ = id(of: head)
        var found: [Commit] = []
        var index = window.count - 1
        while index >= windowStart {
            let commit = window[index]
            if let id = commit.cachedID, id.hex.starts(with: prefix) { found.append(commit) }
            index -= 1
        }
        return found
    }

    /// Resumes a history whose head is a stored commit (`record`, with id `id`) whose tree has
    /// been loaded as `root`. Its ancestors stay on disk; only their ids are known.
    public init(resuming record: CommitRecord, id: ObjectID, root: Node, generations: GenerationCounter,
                retainedCommits: Int) {
        self.generations = generations
        self.retainedCommits = max(retainedCommits, 2)
        let first = Commit(sequence: 1, root: root, parents: [], author: record.author, message: record.message,
                           time: record.time)
        first.parentIDs = record.parents
        first.cachedID = id
        nextSequence = 2
        head = first
        window.append(first)
    }

    /// Creates a commit (without moving the head).
    public func makeCommit(root: Node, parents: [Commit], author: UInt32, message: [UInt8], time: Int64) -> Commit {
        let commit = Commit(sequence: nextSequence, root: root, parents: parents, author: author,
                            message: message, time: time)
        nextSequence += 1
        commit.changedBytes = History.changedBytes(root, since: parents.first?.root)
        retainedBytes += commit.changedBytes
        retainedBytesByAuthor[author, default: 0] += commit.changedBytes
        window.append(commit)
        evictIfNeeded(after: author)
        return commit
    }

    /// Creates a commit on top of the head and makes it the new head.
    @discardableResult
    public func commitOnHead(root: Node, author: UInt32, message: [UInt8], time: Int64) -> Commit {
        let commit = makeCommit(root: root, parents: [head], author: author, message: message, time: time)
        head = commit
        return commit
    }

    /// Moves the head to `commit`, which must descend from the current head.
    public func advanceHead(to commit: Commit) {
        head = commit
    }

    /// Number of commits made since start.
    public var commitCount: UInt64 { nextSequence - 1 }

    private func evictIfNeeded(after author: UInt32) {
        func authorOverLimit() -> Bool {
            author != 0 && (retainedBytesByAuthor[author] ?? 0) > retainedBytesPerAuthorLimit
        }
        while window.count - windowStart > retainedCommits
                || ((retainedBytes > retainedBytesLimit || authorOverLimit()) && window.count - windowStart > 2) {
            let oldest = window[windowStart]
            retainedBytes -= oldest.changedBytes
            let share = (retainedBytesByAuthor[oldest.author] ?? 0) - oldest.changedBytes
            retainedBytesByAuthor[oldest.author] = share > 0 ? share : nil
            // Unhashed: its descendants will see it as a root commit (see the type's comment).
            if oldest.cachedID == nil { oldest.parentIDs = [] }
            oldest.parents = []
            windowStart += 1
        }
        // Evicted commits still in `window` keep their trees alive: compact once they outnumber
        // the retained ones (amortized O(1)), so memory stays proportional to `retainedCommits`.
        if windowStart >= 16 && windowStart * 2 > window.count {
            window.removeFirst(windowStart)
            windowStart = 0
        }
    }

    /// The git commit body of `commit`; its parents' ids must be known (`id(of:)` ensures it).
    public func commitBody(_ commit: Commit) -> [UInt8] {
        let parentIDs = commit.parentIDs ?? commit.parents.map { $0.cachedID! }
        var body: [UInt8] = []
        body.reserveCapacity(46 + parentIDs.count * 48 + 2 * 80 + commit.message.count + 2)
        body.append(contentsOf: "tree ".utf8)
        GitEncoding.treeID(commit.root).appendHex(to: &body)
        body.append(0x0A)
        for parent in parentIDs {
            body.append(contentsOf: "parent ".utf8)
            parent.appendHex(to: &body)
            body.append(0x0A)
        }
        body.append(contentsOf: "author ".utf8)
        commit.appendIdentity(to: &body)
        body.append(0x0A)
        body.append(contentsOf: "committer ".utf8)
        commit.appendIdentity(to: &body)
        body.append(0x0A)
        body.append(0x0A)
        body.append(contentsOf: commit.message)
        if commit.message.last != 0x0A { body.append(0x0A) }
        return body
    }

    /// The git id of `commit`, computing ids of any ancestors not yet hashed (iteratively).
    public func id(of commit: Commit) -> ObjectID {
        if let id = commit.cachedID { return id }
        if let budget = idHashBudget { squashUnhashedAncestry(of: commit, beyond: budget) }
        var stack: [(Commit, Bool)] = [(commit, false)]
        while let entry = stack.popLast() {
            let (current, expanded) = entry
            if current.cachedID != nil { continue }
            if expanded || current.parents.allSatisfy({ $0.cachedID != nil }) {
                _ = hash(current)
            } else {
                stack.append((current, true))
                for parent in current.parents where parent.cachedID == nil { stack.append((parent, false)) }
            }
        }
        return commit.cachedID!
    }

    /// The commits reachable from `head` through in-memory parents that a store does not hold
    /// yet (`stored` says which ids it holds), in the order to write them (`head` last). Nothing
    /// is hashed here: a commit without an id cannot be stored, so a writer can hash each tree
    /// once while it serializes it (`GitEncoding.forEachObject`) instead of twice.
    public func unstoredCommits(from head: Commit, stored: (ObjectID) -> Bool) -> [Commit] {
        var pending: [Commit] = []
        var stack: [Commit] = [head]
        var seen: Set<ObjectIdentifier> = []
        while let commit = stack.popLast() {
            if let id = commit.cachedID, stored(id) { continue }
            if !seen.insert(ObjectIdentifier(commit)).inserted { continue }
            pending.append(commit)
            stack.append(contentsOf: commit.parents)
        }
        return pending.reversed()
    }

    /// The id and git body of `commit`, the body built once when it serves to compute the id
    /// too (a writer stores the body it hashed).
    public func encoded(_ commit: Commit) -> (id: ObjectID, body: [UInt8]) {
        if commit.cachedID == nil && commit.parents.allSatisfy({ $0.cachedID != nil }) {
            let body = hash(commit)
            return (commit.cachedID!, body)
        }
        return (id(of: commit), commitBody(commit))
    }

    /// Computes and caches the id of `commit`, whose parents' ids are known; returns the body it hashed.
    private func hash(_ commit: Commit) -> [UInt8] {
        if commit.parentIDs == nil { commit.parentIDs = commit.parents.map { $0.cachedID! } }
        let body = commitBody(commit)
        commit.cachedID = GitEncoding.objectID(.commit, body: body)
        return body
    }

    /// The commit's id if it has been computed, without computing it.
    public func computedID(of commit: Commit) -> ObjectID? { commit.cachedID }

    /// Walks the unhashed ancestors of `commit`, newest first, adding up the entries of the trees
    /// each one changed; ancestors reached after `budget` is spent become root commits.
    private func squashUnhashedAncestry(of commit: Commit, beyond budget: Int) {
        var spent = 0
        var stack: [Commit] = [commit]
        var seen: Set<ObjectIdentifier> = []
        while let current = stack.popLast() {
            if current.cachedID != nil || !seen.insert(ObjectIdentifier(current)).inserted { continue }
            if spent > budget {
                current.parents = []
                current.parentIDs = []
                continue
            }
            spent += History.changedTreeEntries(current.root, since: current.parents.first?.root)
            stack.append(contentsOf: current.parents)
        }
    }

    /// Entries (children plus `.value` and `.perms`) of the unhashed trees of `root` that differ
    /// from `parent`: about what hashing `root` costs once `parent` is hashed.
    static func changedTreeEntries(_ root: Node, since parent: Node?) -> Int {
        var entries = 0
        var stack: [(Node, Node?)] = [(root, parent)]
        while let (node, old) = stack.popLast() {
            if node === old || node.cachedID != nil { continue }
            entries += node.children.count + 2
            if let old {
                ChildList.forEachChange(old.children, node.children) { _, oldChild, newChild in
                    if let newChild { stack.append((newChild, oldChild)) }
                }
            } else {
                for child in node.children { stack.append((child.node, nil)) }
            }
        }
        return entries
    }

    /// Fixed cost counted for each new node version (object header, fields, child-list slot).
    static let nodeOverheadBytes = 96

    /// Estimated bytes of the node versions in `root` that `parent` does not share: for each
    /// new node its value, permissions and the child entries it copied (`copiedEntryBytes`).
    /// Costs a walk of the changed nodes only (`ChildList.forEachChange`).
    public static func changedBytes(_ root: Node, since parent: Node?) -> Int {
        var bytes = 0
        var stack: [(Node, Node?)] = [(root, parent)]
        while let (node, old) = stack.popLast() {
            if node === old { continue }
            bytes += nodeOverheadBytes + node.compactValue.count + 8 * node.permissions.count
            if let old {
                bytes += ChildList.copiedEntryBytes(node.children, since: old.children, entryBytes: 24)
                ChildList.forEachChange(old.children, node.children) { _, oldChild, newChild in
                    if let newChild { stack.append((newChild, oldChild)) }
                }
            } else {
                for child in node.children {
                    bytes += 24 + child.name.count
                    stack.append((child.node, nil))
                }
            }
        }
        return bytes
    }

    /// Commits reachable from the head by first parents, newest first, as far as memory holds them.
    public func firstParentLog(limit: Int) -> [Commit] {
        var result: [Commit] = []
        var current: Commit? = head
        while let commit = current, result.count < limit {
            result.append(commit)
            current = commit.parents.first
        }
        return result
    }
}
