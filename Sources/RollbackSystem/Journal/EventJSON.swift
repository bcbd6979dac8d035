import RollbackCore

/// The JSON form of an `Event`, shared by webhook payloads and `rollbackd history --json`. Absent fields are left
/// out; names are camelCase; times are RFC 3339 UTC with milliseconds.
public enum EventJSON {
    public static func value(_ e: Event) -> JSONValue {
        var m: [(key: String, value: JSONValue)] = [
            ("kind", .string(e.kind.rawValue)),
            ("at", .string(e.at.iso8601)),
            ("message", .string(e.message)),
            ("severity", .string(e.severity.rawValue)),
        ]
        if let v = e.incident { m.append(("incident", .string(v))) }
        if let v = e.trigger { m.append(("trigger", .string(v))) }
        if let v = e.automation { m.append(("automation", .string(v.rawValue))) }
        if let v = e.metric { m.append(("metric", .string(v))) }
        if let v = e.value, v.isFinite { m.append(("value", .number(v))) }
        if let v = e.threshold, v.isFinite { m.append(("threshold", .number(v))) }
        if let v = e.fromVersion { m.append(("fromVersion", .string(v))) }
        if let v = e.toVersion { m.append(("toVersion", .string(v))) }
        if let v = e.decision { m.append(("decision", .string(v))) }
        if let v = e.reason { m.append(("reason", .string(v))) }
        if let v = e.dryRun { m.append(("dryRun", .bool(v))) }
        if !e.extra.isEmpty {
            m.append(("extra", .object(e.extra.keys.sorted().map { ($0, .string(e.extra[$0] ?? "")) })))
        }
        return .object(m)
    }

    /// Reads the form `value(_:)` writes (used by tests and tools that consume history JSON).
    public static func event(from json: JSONValue) -> Event? {
        guard case let .string(kindName)? = json["kind"], let kind = EventKind(rawValue: kindName),
            case let .string(atText)? = json["at"], let at = Timestamp(iso8601: atText),
            case let .string(message)? = json["message"],
            case let .string(sev)? = json["severity"], let severity = Severity(rawValue: sev)
        else { return nil }
        func string(_ k: String) -> String? { if case let .string(s)? = json[k] { return s }; return nil }
        func number(_ k: String) -> Double? { if case let .number(n)? = json[k] { return n }; return nil }
        var e = Event(kind: kind, at: at, message: message, severity: severity)
        e.incident = string("incident")
        e.trigger = string("trigger")
        e.automation = string("automation").flatMap(AutomationLevel.init(rawValue:))
        e.metric = string("metric")
        e.value = number("value")
        e.threshold = number("threshold")
        e.fromVersion = string("fromVersion")
        e.toVersion = string("toVersion")
        e.decision = string("decision")
        e.reason = string("reason")
        if case let .bool(b)? = json["dryRun"] { e.dryRun = b }
        if case let .object(members)? = json["extra"] {
            for (k, v) in members { if case let .string(s) = v { e.extra[k] = s } }
        }
        return e
    }
}
