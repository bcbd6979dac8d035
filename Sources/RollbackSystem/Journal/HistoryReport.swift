#if canImport(Glibc)
import Glibc
#endif
import RollbackCore

/// The events of one incident (or, with `incident == nil`, events that belong to none), oldest first.
public struct IncidentTimeline: Sendable, Equatable {
    public var incident: String?
    public var records: [JournalRecord]

    public var start: Timestamp? { records.first?.event.at }
    public var end: Timestamp? { records.last?.event.at }
    /// The first value any event of the group carries for a field.
    private func first(_ pick: (Event) -> String?) -> String? {
        for r in records { if let v = pick(r.event) { return v } }
        return nil
    }
    public var fromVersion: String? { first(\.fromVersion) }
    public var toVersion: String? { records.reversed().lazy.compactMap(\.event.toVersion).first }
}

/// `rollbackd history`: the journal's rollbackd events as a timeline per incident, in text or JSON.
public enum HistoryReport {
    /// Groups by incident in order of each incident's first event; events without an incident come last.
    public static func group(_ records: [JournalRecord]) -> [IncidentTimeline] {
        var order: [String] = []
        var byIncident: [String: [JournalRecord]] = [:]
        var other: [JournalRecord] = []
        for r in records {
            if let id = r.event.incident {
                if byIncident[id] == nil { order.append(id) }
                byIncident[id, default: []].append(r)
            } else {
                other.append(r)
            }
        }
        var groups = order.map { IncidentTimeline(incident: $0, records: byIncident[$0] ?? []) }
        if !other.isEmpty { groups.append(IncidentTimeline(incident: nil, records: other)) }
        return groups
    }

    private static let priorityNames = ["EMERG", "ALERT", "CRIT", "ERR", "WARN", "NOTICE", "INFO", "DEBUG"]

    public static func text(_ groups: [IncidentTimeline]) -> String {
        if groups.isEmpty { return "no rollbackd events found\n" }
        var out = ""
        for (n, g) in groups.enumerated() {
            if n > 0 { out += "\n" }
            if let id = g.incident {
                out += "incident \(id)"
                if let from = g.fromVersion {
                    out += ": \(from)"
                    if let to = g.toVersion { out += " -> \(to)" }
                }
                if let start = g.start, let end = g.end {
                    out += " (\(start.iso8601) .. \(end.iso8601), \(end - start))"
                }
                out += "\n"
            } else {
                out += "outside any incident\n"
            }
            let width = g.records.map { $0.event.kind.rawValue.count }.max() ?? 0
            for r in g.records {
                let e = r.event
                let prio = priorityNames[JournalFields.priority(for: e.severity)]
                let kind = e.kind.rawValue + String(repeating: " ", count: width - e.kind.rawValue.count)
                let pad = String(repeating: " ", count: max(0, 6 - prio.count))
                out += "  \(e.at.iso8601)  \(prio)\(pad)  \(kind)  \(e.message)\n"
            }
        }
        return out
    }

    public static func json(_ groups: [IncidentTimeline]) -> String {
        func recordJSON(_ r: JournalRecord) -> JSONValue {
            guard case var .object(members) = EventJSON.value(r.event) else { return .null }
            members.append(("received", .string(r.received.iso8601)))
            members.append(("cursor", .string(r.cursor)))
            return .object(members)
        }
        var incidents: [JSONValue] = []
        var other: [JSONValue] = []
        for g in groups {
            if let id = g.incident {
                var m: [(key: String, value: JSONValue)] = [("incident", .string(id))]
                m.append(("fromVersion", g.fromVersion.map(JSONValue.string) ?? .null))
                m.append(("toVersion", g.toVersion.map(JSONValue.string) ?? .null))
                m.append(("start", g.start.map { .string($0.iso8601) } ?? .null))
                m.append(("end", g.end.map { .string($0.iso8601) } ?? .null))
                if let s = g.start, let e = g.end {
                    m.append(("durationMs", .number(Double((e - s).milliseconds))))
                }
                m.append(("events", .array(g.records.map(recordJSON))))
                incidents.append(.object(m))
            } else {
                other.append(contentsOf: g.records.map(recordJSON))
            }
        }
        let root: JSONValue = .object([
            ("version", .number(1)), ("incidents", .array(incidents)),
            ("other", .array(other)),
        ])
        return root.serialized + "\n"
    }

    /// `--since`/`--until`: an RFC 3339 time (`2026-11-22T13:00:00Z`, `2026-11-22`), `@<unix seconds>`, or a
    /// duration meaning that long ago (`90m`, `1h`, `2d`).
    public static func parseTime(_ text: String, now: Timestamp = SystemTime.now()) -> Timestamp? {
        if text.hasPrefix("@"), let s = Double(text.dropFirst()) { return Timestamp(secondsSinceEpoch: s) }
        if let ago = Interval(parsing: text) { return now - ago }
        return Timestamp(iso8601: text)
    }
}
