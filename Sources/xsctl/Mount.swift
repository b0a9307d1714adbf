// xsctl mount: the live store and its history as a FUSE file system, every operation one request over the daemon's socket.

#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import CFuseGlue
import XenstoreHost
import XenstoreWire

struct Mount: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Mount the live store and its history at MOUNTPOINT (FUSE).",
        discussion: """
            Each node is a directory holding its child nodes and two files: `value` and `perms`
            (GET_PERMS entries, e.g. "n0 r5"). Reading and writing them are READ, WRITE,
            GET_PERMS and SET_PERMS over the socket, with this connection's rights; mkdir is
            MKDIR, rmdir (and rm -r) is RM (the node and its subtree). history/ holds one read-only
            directory per commit the daemon holds (history/<id>/..., and history/main~N/...).
            A node called value, perms (or history, below /) appears as value.node etc.
            Unmount with `fusermount3 -u MOUNTPOINT` (or umount).
            """)
    @ParentCommand var xsctl: XSCtl
    @Argument(help: ArgumentHelp("An empty directory.", valueName: "mountpoint")) var mountpoint: String
    @Flag(help: "Stay in the foreground (default: return once mounted).") var foreground = false
    @Flag(help: "Print every FUSE request (implies --foreground).") var debug = false

    func run() throws {
        MountedStore.client = xsctl.client(for: "mount")
        var arguments = ["xsctl", mountpoint, "-s", "-o", "fsname=xenstore,subtype=xenstore"]
        if foreground || debug { arguments.append("-f") }
        if debug { arguments.append("-d") }
        var cArguments = arguments.map { strdup($0) }
        var operations = xsfuse_operations(
            getattr: { path, isDirectory, size, writable in
                MountedStore.getattr(String(cString: path!), isDirectory!, size!, writable!)
            },
            readdir: { path, sink, add in MountedStore.readdir(String(cString: path!), sink, add!) },
            read: { path, sink, put in MountedStore.read(String(cString: path!), sink, put!) },
            write: { path, data, length, offset, fresh in
                MountedStore.write(String(cString: path!), Array(UnsafeBufferPointer(start: data, count: length)), offset,
                                   fresh: fresh != 0)
            },
            truncate: { path, length in MountedStore.truncate(String(cString: path!), length) },
            mkdir: { path in MountedStore.mkdir(String(cString: path!)) },
            rmdir: { path in MountedStore.rmdir(String(cString: path!)) })
        let status = xsfuse_main(Int32(cArguments.count), &cArguments, &operations)
        for argument in cArguments { free(argument) }
        if status != 0 { throw ExitCode(1) }
    }
}

/// What a path of the mount stands for.
enum MountPath: Equatable {
    /// The mount's root: the store's root node plus `history`.
    case root
    /// `history/`: one directory per revision.
    case historyRoot
    /// A node's directory; `revision` nil for the live store.
    case node(path: String, revision: String?)
    /// A node's `value` file.
    case value(path: String, revision: String?)
    /// A node's `perms` file.
    case perms(path: String, revision: String?)

    /// Names that would clash with the files (and, below /, with history/) get `.node` appended;
    /// a Xenstore name never contains a dot, so the mapping is one to one.
    static let reserved = ["value", "perms"]

    /// Parses a FUSE path; nil when it names nothing (a component with a dot other than the
    /// reserved names' `.node` form).
    init?(_ fusePath: String) {
        var components = fusePath.split(separator: "/").map(String.init)
        var revision: String? = nil
        if components.isEmpty { self = .root; return }
        if components[0] == "history" {
            if components.count == 1 { self = .historyRoot; return }
            revision = components[1]
            components.removeFirst(2)
        }
        var file: String? = nil
        if let last = components.last, MountPath.reserved.contains(last) { file = components.removeLast() }
        var nodeComponents: [String] = []
        for (index, component) in components.enumerated() {
            if component.hasSuffix(".node") {
                let name = String(component.dropLast(5))
                let reserved = MountPath.reserved.contains(name) || (index == 0 && revision == nil && name == "history")
                guard reserved else { return nil }
                nodeComponents.append(name)
            } else {
                guard !component.contains(".") else { return nil }
                nodeComponents.append(component)
            }
        }
        let path = "/" + nodeComponents.joined(separator: "/")
        switch file {
        case "value": self = .value(path: path, revision: revision)
        case "perms": self = .perms(path: path, revision: revision)
        default: self = .node(path: path, revision: revision)
        }
    }

    /// The directory entry for a child node called `name` of the node at `parent` (live or not).
    static func entry(_ name: String, liveRootChild: Bool) -> String {
        reserved.contains(name) || (liveRootChild && name == "history") ? name + ".node" : name
    }
}

/// The file system's state and operations (FUSE runs them one at a time: `-s`).
enum MountedStore {
    nonisolated(unsafe) static var client: XenstoreClient!

    static func errno(_ error: Error) -> Int32 {
        guard case ClientError.server(let wire) = error else { return -EIO }
        switch wire {
        case .EINVAL: return -EINVAL
        case .EACCES: return -EACCES
        case .EEXIST: return -EEXIST
        case .EISDIR: return -EISDIR
        case .ENOENT: return -ENOENT
        case .ENOMEM: return -ENOMEM
        case .ENOSPC: return -ENOSPC
        case .EIO: return -EIO
        case .ENOTEMPTY: return -ENOTEMPTY
        case .ENOSYS: return -ENOSYS
        case .EROFS: return -EROFS
        case .EBUSY: return -EBUSY
        case .EAGAIN: return -EAGAIN
        case .EISCONN: return -EISCONN
        case .E2BIG: return -E2BIG
        case .EPERM: return -EPERM
        }
    }

    static func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

    /// A request whose payload is NUL-separated arguments.
    static func request(_ type: MessageType, _ arguments: [String]) throws -> [UInt8] {
        try client.request(type, Payload.join(arguments.map(bytes)))
    }

    /// CONTROL `rev-*` (the reply carries no trailing NUL).
    static func revision(_ command: String, _ revision: String, _ path: String) throws -> [UInt8] {
        try request(.control, [command, revision, path])
    }

    static func value(_ path: String, _ revision: String?) throws -> [UInt8] {
        if let revision { return try MountedStore.revision("rev-read", revision, path) }
        return try request(.read, [path])
    }

    /// The permissions as text: entries separated by spaces, then a newline.
    static func permissionsText(_ path: String, _ revision: String?) throws -> [UInt8] {
        let reply = try revision.map { try MountedStore.revision("rev-perms", $0, path) } ?? request(.getPerms, [path])
        let entries = Payload.strings(reply).strings.filter { !$0.isEmpty }
        return Array(entries.joined(separator: [0x20])) + [0x0A]
    }

    /// Child names of a node: DIRECTORY, or DIRECTORY_PART pieces when the list is over 4 KiB.
    static func children(_ path: String, _ revision: String?) throws -> [String] {
        if let revision {
            return Payload.strings(try MountedStore.revision("rev-directory", revision, path)).strings
                .filter { !$0.isEmpty }.map { String(decoding: $0, as: UTF8.self) }
        }
        do {
            return Payload.strings(try request(.directory, [path])).strings.filter { !$0.isEmpty }
                .map { String(decoding: $0, as: UTF8.self) }
        } catch ClientError.server(.E2BIG) {
            var names: [String] = []
            var offset = 0
            var generation: [UInt8]? = nil
            while true {
                let strings = Payload.strings(try request(.directoryPart, [path, String(offset)])).strings
                guard let first = strings.first else { throw ClientError.server(.EIO) }
                if generation == nil { generation = first } else if generation != first {
                    names.removeAll(); offset = 0; generation = nil; continue  // changed meanwhile: start over
                }
                let part = strings.dropFirst()
                if part.last?.isEmpty == true || part.isEmpty {
                    names += part.filter { !$0.isEmpty }.map { String(decoding: $0, as: UTF8.self) }
                    return names
                }
                for name in part where !name.isEmpty {
                    names.append(String(decoding: name, as: UTF8.self))
                    offset += name.count + 1
                }
            }
        }
    }

    static func getattr(_ fusePath: String, _ isDirectory: UnsafeMutablePointer<Int32>,
                        _ size: UnsafeMutablePointer<UInt64>, _ writable: UnsafeMutablePointer<Int32>) -> Int32 {
        guard let path = MountPath(fusePath) else { return -ENOENT }
        do {
            switch path {
            case .root:
                isDirectory.pointee = 1; writable.pointee = 1
            case .historyRoot:
                _ = try request(.control, ["history", "1"])  // CONTROL is dom0's: others get EACCES here
                isDirectory.pointee = 1; writable.pointee = 0
            case .node(let node, let revision):
                if let revision { _ = try MountedStore.revision("rev-perms", revision, node) } else { _ = try request(.getPerms, [node]) }
                isDirectory.pointee = 1; writable.pointee = revision == nil ? 1 : 0
            case .value(let node, let revision):
                size.pointee = UInt64(try value(node, revision).count)
                isDirectory.pointee = 0; writable.pointee = revision == nil ? 1 : 0
            case .perms(let node, let revision):
                size.pointee = UInt64(try permissionsText(node, revision).count)
                isDirectory.pointee = 0; writable.pointee = revision == nil ? 1 : 0
            }
            return 0
        } catch {
            return errno(error)
        }
    }

    static func readdir(_ fusePath: String, _ sink: UnsafeMutableRawPointer?, _ add: xsfuse_name_sink) -> Int32 {
        guard let path = MountPath(fusePath) else { return -ENOENT }
        func emit(_ name: String) { name.withCString { add(sink, $0) } }
        do {
            switch path {
            case .historyRoot:
                // The newest commits the daemon holds, as many as one CONTROL reply carries.
                let reply = try request(.control, ["history", "10000"])
                emit("main")
                for line in String(decoding: reply.filter { $0 != 0 }, as: UTF8.self).split(separator: "\n") {
                    if let id = line.split(separator: " ").first { emit(String(id)) }
                }
            case .root, .node:
                let (node, revision): (String, String?)
                if case .node(let p, let r) = path { (node, revision) = (p, r) } else { (node, revision) = ("/", nil) }
                for child in try children(node, revision) {
                    emit(MountPath.entry(child, liveRootChild: node == "/" && revision == nil))
                }
                emit("value")
                emit("perms")
                if path == .root { emit("history") }
            case .value, .perms:
                return -ENOTDIR
            }
            return 0
        } catch {
            return errno(error)
        }
    }

    static func read(_ fusePath: String, _ sink: UnsafeMutableRawPointer?, _ put: xsfuse_sink) -> Int32 {
        guard let path = MountPath(fusePath) else { return -ENOENT }
        do {
            let content: [UInt8]
            switch path {
            case .value(let node, let revision): content = try value(node, revision)
            case .perms(let node, let revision): content = try permissionsText(node, revision)
            default: return -EISDIR
            }
            content.withUnsafeBufferPointer { put(sink, $0.baseAddress, $0.count) }
            return 0
        } catch {
            return errno(error)
        }
    }

    /// Content after writing `data` at `offset` of `current` (the gap, if any, is NULs).
    static func splice(_ current: [UInt8], _ data: [UInt8], at offset: UInt64) -> [UInt8] {
        let start = Int(min(offset, UInt64(Limits.payloadMax * 2)))
        var prefix = Array(current.prefix(start))
        if prefix.count < start { prefix += [UInt8](repeating: 0, count: start - prefix.count) }
        return prefix + data
    }

    static func store(_ path: MountPath, _ content: [UInt8]) throws {
        switch path {
        case .value(let node, nil):
            _ = try client.request(.write, bytes(node) + [0] + content)
        case .perms(let node, nil):
            let text = String(decoding: content, as: UTF8.self)
            let entries = text.split(whereSeparator: { $0 == " " || $0 == "\n" || $0 == "\t" || $0 == "," }).map(String.init)
            guard !entries.isEmpty else { throw ClientError.server(.EINVAL) }
            _ = try request(.setPerms, [node] + entries)
        case .value, .perms:
            throw ClientError.server(.EROFS)
        default:
            throw ClientError.server(.EISDIR)
        }
    }

    static func write(_ fusePath: String, _ data: [UInt8], _ offset: UInt64, fresh: Bool) -> Int32 {
        guard let path = MountPath(fusePath) else { return -ENOENT }
        do {
            var current: [UInt8] = []
            if offset > 0 && !fresh {
                switch path {
                case .value(let node, let revision): current = try value(node, revision)
                case .perms(let node, let revision): current = try permissionsText(node, revision)
                default: return -EISDIR
                }
            }
            try store(path, splice(current, data, at: offset))
            return 0
        } catch {
            return errno(error)
        }
    }

    static func truncate(_ fusePath: String, _ length: UInt64) -> Int32 {
        guard let path = MountPath(fusePath) else { return -ENOENT }
        do {
            switch path {
            case .value(let node, nil):
                let current = length == 0 ? [] : try value(node, nil)
                try store(path, Array(splice(current, [], at: length).prefix(Int(min(length, UInt64(Int32.max))))))
            case .perms(_, nil):
                break  // the write that follows sets them; a node always has permissions
            case .value, .perms:
                return -EROFS
            default:
                return -EISDIR
            }
            return 0
        } catch {
            return errno(error)
        }
    }

    static func mkdir(_ fusePath: String) -> Int32 {
        guard let path = MountPath(fusePath) else { return -EINVAL }
        guard case .node(let node, nil) = path else { return path == .historyRoot || path == .root ? -EEXIST : -EROFS }
        do { _ = try request(.mkdir, [node]); return 0 } catch { return errno(error) }
    }

    static func rmdir(_ fusePath: String) -> Int32 {
        guard let path = MountPath(fusePath) else { return -ENOENT }
        guard case .node(let node, nil) = path, node != "/" else { return -EPERM }
        do {
            _ = try request(.getPerms, [node])  // RM of a missing node is OK on the wire; rmdir says ENOENT
            _ = try request(.rm, [node])
            return 0
        } catch {
            return errno(error)
        }
    }
}
