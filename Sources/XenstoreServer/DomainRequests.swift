// Requests about domains (INTRODUCE, RELEASE, SET_TARGET, features, quotas): privileged callers only.

import XenstoreStore
import XenstoreWire

extension Server {
    func introduce(_ payload: [UInt8]) -> Outcome {
        let (strings, _) = Payload.strings(payload)
        guard strings.count >= 3, let domid = Payload.parseDecimal(strings[0]), domid <= UInt64(UInt16.max),
              let gfn = Payload.parseDecimal(strings[1]) else { return .failure(.EINVAL) }
        let port = Payload.parseLeadingDecimal(strings[2])
        guard port > 0, port <= UInt64(UInt32.max) else { return .failure(.EINVAL) }
        let id = UInt32(domid)
        var record = domains[id] ?? DomainRecord()
        let isNew = !record.introduced
        record.introduced = true
        record.gfn = gfn
        record.eventChannel = UInt32(port)
        domains[id] = record
        if isNew {
            effects.append(.connectDomain(domid: id, gfn: gfn, eventChannel: UInt32(port)))
            fireSpecial(Server.introduceDomain, domid: id)
            introspectionChanged(domain: id)
        }
        return .ok
    }

    func release(_ payload: [UInt8]) -> Outcome {
        guard let domid = Server.domidArgument(payload) else { return .failure(.EINVAL) }
        guard domid != 0 else { return .failure(.EINVAL) }
        guard domains[domid]?.introduced == true else { return .failure(.ENOENT) }
        forgetDomain(domid)
        return .ok
    }

    func setTarget(_ payload: [UInt8]) -> Outcome {
        let (strings, _) = Payload.strings(payload)
        guard strings.count == 2, let domid = Payload.parseDecimal(strings[0]), domid <= UInt64(UInt32.max),
              let target = Payload.parseDecimal(strings[1]), target <= UInt64(UInt32.max) else {
            return .failure(.EINVAL)
        }
        let id = UInt32(domid)
        guard domainExists(id), domainExists(UInt32(target)) else { return .failure(.ENOENT) }
        domains[id, default: DomainRecord()].target = UInt32(target)
        for connection in connections.values where connection.caller.domid == id {
            connection.caller.target = UInt32(target)
        }
        return .ok
    }

    func getFeature(_ payload: [UInt8], on connection: Connection) -> Outcome {
        let (strings, _) = Payload.strings(payload)
        if strings.isEmpty {
            let features = domains[connection.caller.domid]?.features ?? Server.supportedFeatures
            return .success(Payload.decimal(features == 0 ? Server.supportedFeatures : features) + [0])
        }
        guard connection.caller.privileged else { return .failure(.EACCES) }
        guard strings.count == 1, let domid = Payload.parseDecimal(strings[0]), domid <= UInt64(UInt32.max) else {
            return .failure(.EINVAL)
        }
        guard let record = domains[UInt32(domid)] else { return .failure(.ENOENT) }
        return .success(Payload.decimal(record.features) + [0])
    }

    func setFeature(_ payload: [UInt8]) -> Outcome {
        let (strings, _) = Payload.strings(payload)
        guard strings.count == 2, let domid = Payload.parseDecimal(strings[0]), domid <= UInt64(UInt32.max),
              let value = Payload.parseDecimal(strings[1]), value <= UInt64(UInt32.max) else {
            return .failure(.EINVAL)
        }
        guard UInt32(value) & ~Server.supportedFeatures == 0 else { return .failure(.EINVAL) }
        guard domains[UInt32(domid)] != nil else { return .failure(.ENOENT) }
        domains[UInt32(domid)]!.features = UInt32(value)
        return .ok
    }

    func getQuota(_ payload: [UInt8]) -> Outcome {
        let (strings, _) = Payload.strings(payload)
        switch strings.count {
        case 0:
            var out: [UInt8] = []
            for name in Quotas.names {
                if !out.isEmpty { out.append(0x20) }
                out.append(contentsOf: name)
            }
            return .success(out + [0])
        case 1:
            guard let value = configuration.quotas.value(named: strings[0]) else { return .failure(.EINVAL) }
            return .success(Payload.decimal(value) + [0])
        case 2:
            guard let domid = Payload.parseDecimal(strings[0]), domid <= UInt64(UInt32.max) else { return .failure(.EINVAL) }
            guard let record = domains[UInt32(domid)] else { return .failure(.ENOENT) }
            guard let value = (record.quotas ?? configuration.quotas).value(named: strings[1]) else {
                return .failure(.EINVAL)
            }
            return .success(Payload.decimal(value) + [0])
        default:
            return .failure(.EINVAL)
        }
    }

    func setQuota(_ payload: [UInt8]) -> Outcome {
        let (strings, _) = Payload.strings(payload)
        guard strings.count == 2 || strings.count == 3,
              let value = Payload.parseDecimal(strings[strings.count - 1]), value <= UInt64(Int32.max) else {
            return .failure(.EINVAL)
        }
        let name = strings[strings.count - 2]
        if strings.count == 2 {
            return configuration.quotas.set(named: name, to: Int(value)) ? .ok : .failure(.EINVAL)
        }
        guard let domid = Payload.parseDecimal(strings[0]), domid <= UInt64(UInt32.max) else { return .failure(.EINVAL) }
        guard var record = domains[UInt32(domid)] else { return .failure(.ENOENT) }
        var quotas = record.quotas ?? configuration.quotas
        guard quotas.set(named: name, to: Int(value)) else { return .failure(.EINVAL) }
        record.quotas = quotas
        domains[UInt32(domid)] = record
        return .ok
    }
}
