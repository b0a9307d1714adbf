// Watches: registration, matching committed changes to watches, permission filtering, event queueing.

import XenstoreStore
import XenstoreWire

extension Server {
    /// WATCH `<path>|<token>|[<depth>|]`: register, acknowledge, then fire once.
    func watch(_ payload: [UInt8], on connection: Connection) -> Outcome {
        let (strings, _) = Payload.strings(payload)
        guard strings.count == 2 || strings.count == 3 else { return .failure(.EINVAL) }
        var depth: Int? = nil
        if strings.count == 3 {
            guard let value = Payload.parseDecimal(strings[2]), value <= 0xFFFF else { return .failure(.EINVAL) }
            depth = value == 0xFFFF ? nil : Int(value)
        }
        let raw = strings[0]
        let watch: Watch
        if PathRules.isSpecial(raw) {
            guard raw.count <= Limits.relativePathMax else { return .failure(.EINVAL) }
            watch = Watch(path: raw, node: nil, token: strings[1], relative: false, depth: depth)
        } else {
            switch nodePath(raw, connection) {
            case .success(let path):
                watch = Watch(path: path.bytes, node: path, token: strings[1], relative: raw.first != 0x2F, depth: depth)
            case .failure(let error):
                return .failure(error)
            }
        }
        for existing in connection.watches where existing.path == watch.path && existing.token == watch.token {
            return .failure(.EEXIST)
        }
        let caller = connection.caller
        if !caller.privileged && Quotas.exceeds(watchCount(of: caller.domid) + 1, quotas(for: caller).watches) {
            return .failure(.E2BIG)
        }
        if refusesMemoryGrowth(Server.watchBytes([watch]), by: caller, quota: quotas(for: caller).memory) {
            return .failure(.ENOMEM)
        }
        addWatch(watch, to: connection)
        return .ok
    }

    /// UNWATCH `<path>|<token>|`.
    func unwatch(_ payload: [UInt8], on connection: Connection) -> Outcome {
        let (strings, _) = Payload.strings(payload)
        guard strings.count == 2 else { return .failure(.EINVAL) }
        let path = PathRules.isSpecial(strings[0]) ? strings[0]
            : PathRules.absolute(strings[0], domid: connection.caller.domid)
        guard let index = connection.watches.firstIndex(where: { $0.path == path && $0.token == strings[1] }) else {
            return .failure(.ENOENT)
        }
        removeWatch(at: index, from: connection)
        return .ok
    }

    func watchCount(of domid: UInt32) -> Int {
        var count = 0
        for connection in connections.values where connection.caller.domid == domid { count += connection.watches.count }
        return count
    }

    /// The event path reported to a relative watch: the path without `/local/domain/<id>/`.
    func relativeEventPath(_ path: [UInt8], _ connection: Connection) -> [UInt8] {
        let home = PathRules.home(of: connection.caller.domid)
        guard path.starts(with: home) else { return path }
        var rest = Array(path[home.count...])
        if rest.first == 0x2F { rest.removeFirst() }
        return rest
    }

    /// Queues a WATCH_EVENT unless it is oversized, the connection's output is over its bound,
    /// or (for a guest) all guests are over `guestMemoryLimit`.
    func queueEvent(on connection: Connection, path: [UInt8], token: [UInt8]) {
        let payload = Payload.join([path, token])
        guard payload.count <= Limits.payloadMax else { return }
        let size = payload.count + Limits.headerSize
        if connection.output.byteCount + size > connection.outputBound
            || (!connection.caller.privileged && guestsOverMemoryLimit(adding: size)) {
            connection.droppedEvents += 1
            if connection.droppedEvents == 1 {
                effects.append(.log(Payload.bytes("dropping watch events for a connection whose output is full")))
            }
            return
        }
        enqueue(Message(.watchEvent, payload: payload).encoded, reply: false, on: connection)
    }

    func canSee(_ caller: Caller, _ permissionLists: [Permissions]) -> Bool {
        for permissions in permissionLists where Rights.of(caller, on: permissions).contains(.read) { return true }
        return false
    }

    /// Delivers the events of one committed change to every matching watch.
    func fire(_ trigger: WatchTrigger) {
        for connection in connectionsInOrder where !connection.isBroken {
            for watch in connection.watches {
                guard let watched = watch.node else { continue }
                if trigger.path.isInside(watched) {
                    if let depth = watch.depth, trigger.path.components.count - watched.components.count > depth { continue }
                    guard canSee(connection.caller, trigger.visibleThrough) else { continue }
                    let path = watch.relative ? relativeEventPath(trigger.path.bytes, connection) : trigger.path.bytes
                    queueEvent(on: connection, path: path, token: watch.token)
                } else if let removed = trigger.removedSubtree, watched.isInside(trigger.path) {
                    // A watched node inside a removed subtree fires with its own path.
                    let below = Array(watched.components[trigger.path.components.count...])
                    let spine = Tree.spine(removed, below)
                    guard spine.count == below.count + 1 else { continue }
                    let visible = [spine[spine.count - 1].permissions, spine[spine.count - 2].permissions]
                    guard canSee(connection.caller, visible) else { continue }
                    let path = watch.relative ? relativeEventPath(watched.bytes, connection) : watched.bytes
                    queueEvent(on: connection, path: path, token: watch.token)
                }
            }
        }
    }

    /// Fires `@introduceDomain` or `@releaseDomain` (and `@releaseDomain/<domid>` watches).
    func fireSpecial(_ name: [UInt8], domid: UInt32) {
        let perDomain = name + [0x2F] + Payload.decimal(domid)
        let permissions = specialPermissions[name] ?? Permissions.ownedBy(0)
        for connection in connectionsInOrder where !connection.isBroken {
            guard connection.caller.privileged || Rights.of(connection.caller, on: permissions).contains(.read) else {
                continue
            }
            for watch in connection.watches where watch.node == nil {
                if watch.path == name {
                    queueEvent(on: connection, path: watch.depth == 1 ? perDomain : name, token: watch.token)
                } else if watch.path == perDomain {
                    queueEvent(on: connection, path: perDomain, token: watch.token)
                }
            }
        }
    }
}
