import RollbackCore

/// How `rollbackd sample` prints a tick.
public enum TickFormat {
    /// Human lines: a header, one line per metric (value in its unit, or `no data: reason`), notes indented.
    public static func text(_ tick: SamplerTick, index: Int, thresholds: Thresholds) -> String {
        let version = tick.version.map { "version \($0)" } ?? "version unknown (\(tick.versionReason ?? "no reason"))"
        var lines = ["tick \(index) at \(tick.at.iso8601) (\(ValueFormat.trim(tick.seconds * 1000))ms), \(version)"]
        let width = thresholds.metrics.map(\.name.count).max() ?? 0
        for m in thresholds.metrics {
            let pad = String(repeating: " ", count: width - m.name.count)
            let shown: String
            switch tick.samples[m.name] {
            case let .value(v)?: shown = ValueFormat.format(v, unit: m.unit)
            case let .noData(reason)?: shown = "no data: \(reason)"
            case nil: shown = "no data: not sampled"
            }
            lines.append("  \(m.name)\(pad)  \(shown)")
            if let c = tick.counts[m.name] {
                lines.append(
                    "  \(String(repeating: " ", count: width))    counts: \(c.events) of \(c.trials) this tick")
            }
            for note in tick.notes[m.name] ?? [] {
                lines.append("  \(String(repeating: " ", count: width))    note: \(note)")
            }
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// JSON lines: one per metric (`tick`, `at`, `metric`, `value` or null, `reason`, `unit`, `notes`), then one
    /// for the version (`metric` null, `version`, `reason`).
    public static func jsonLines(_ tick: SamplerTick, index: Int, thresholds: Thresholds) -> String {
        var out = ""
        for m in thresholds.metrics {
            let sample = tick.samples[m.name] ?? .noData(reason: "not sampled")
            var members: [(key: String, value: JSONValue)] = [
                ("tick", .number(Double(index))), ("at", .string(tick.at.iso8601)), ("metric", .string(m.name)),
            ]
            if let v = sample.number, v.isFinite {
                members.append(("value", .number(v)))
            } else {
                members.append(("value", .null))
            }
            members.append(("reason", sample.reason.map(JSONValue.string) ?? .null))
            members.append(("unit", .string(m.unit.rawValue)))
            if let c = tick.counts[m.name] {
                members.append(("events", .number(Double(c.events))))
                members.append(("trials", .number(Double(c.trials))))
            }
            members.append(("notes", .array((tick.notes[m.name] ?? []).map(JSONValue.string))))
            out += JSONValue.object(members).serialized + "\n"
        }
        let version: [(key: String, value: JSONValue)] = [
            ("tick", .number(Double(index))), ("at", .string(tick.at.iso8601)), ("metric", .null),
            ("version", tick.version.map(JSONValue.string) ?? .null),
            ("reason", tick.versionReason.map(JSONValue.string) ?? .null),
        ]
        out += JSONValue.object(version).serialized + "\n"
        return out
    }
}
