// CONTROL rev-read, rev-directory and rev-perms: a node of a past revision, read over the protocol (for `xsctl mount`'s history/).

import XenstoreStore
import XenstoreWire

extension Server {
    /// The commit a revision names: `main` or `HEAD` (the head), either with `~N` (N first
    /// parents back, at most `Limits.revisionStepsMax`), or a commit id or unique prefix
    /// (`findCommit`). EINVAL for a malformed revision, ENOENT for one not held.
    public func resolveRevision(_ text: [UInt8]) -> Result<Commit, XenstoreError> {
        var name = text
        var steps = 0
        if let tilde = text.firstIndex(of: 0x7E) {
            name = Array(text[..<tilde])
            let count = Array(text[(tilde + 1)...])
            guard let value = count.isEmpty ? 1 : Payload.parseDecimal(count), value <= UInt64(Limits.revisionStepsMax) else {
                return .failure(.EINVAL)
            }
            steps = Int(value)
        }
        var commit: Commit
        if name == Payload.bytes("main") || name == Payload.bytes("HEAD") {
            commit = history.head
        } else {
            switch findCommit(name) {
            case .success(let found): commit = found
            case .failure(let error): return .failure(error)
            }
        }
        for _ in 0..<steps {
            guard let parent = firstParent(commit) else { return .failure(.ENOENT) }
            commit = parent
        }
        return .success(commit)
    }

    /// CONTROL `rev-read|rev-directory|rev-perms <rev> <path>`: the value, child names or
    /// permissions of `path` as it was at `rev`, like READ, DIRECTORY and GET_PERMS on the
    /// head. Nothing changes. (CONTROL is dom0's only, so a past revision is too.)
    func revisionRead(_ command: [UInt8], _ arguments: [[UInt8]], caller: Caller) -> Outcome {
        guard arguments.count == 2 else { return .failure(.EINVAL) }
        let path: NodePath
        switch PathRules.nodePath(arguments[1], domid: caller.domid, pathQuota: nil) {
        case .success(let p): path = p
        case .failure(let error): return .failure(error)
        }
        let commit: Commit
        switch resolveRevision(arguments[0]) {
        case .success(let found): commit = found
        case .failure(let error): return .failure(error)
        }
        guard let node = Tree.lookup(commit.root, path.components) else { return .failure(.ENOENT) }
        switch command {
        case Payload.bytes("rev-read"):
            return .success(node.value)
        case Payload.bytes("rev-perms"):
            return .success(Payload.join(node.permissions.entries.map { $0.encoded }))
        default:
            let payload = Payload.join(node.childNames)
            return payload.count > Limits.payloadMax ? .failure(.E2BIG) : .success(payload)
        }
    }
}
