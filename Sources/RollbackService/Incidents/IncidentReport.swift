import RollbackCore
import RollbackSystem
import RollbackVersion

/// A report that cannot be written, naming the incident or file at fault.
public struct IncidentReportError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}

/// The post-mortem report of one incident: `incidents/<id>.json` (versioned, for tools) and `incidents/<id>.md`
/// (for people: what an on-call engineer pastes into the post-mortem).
public enum IncidentReport {
    public static let version = 1

    /// The moments an on-call engineer asks about first.
    public struct KeyTimes: Sendable, Equatable {
        public var firstBreach: Timestamp?
        public var tripped: Timestamp?
        public var decision: Timestamp?
        public var approval: Timestamp?
        public var rollbackStarted: Timestamp?
        public var rollbackFinished: Timestamp?
        public var verified: Timestamp?
        public var closed: Timestamp?
    }

    public static func keyTimes(_ i: Incident) -> KeyTimes {
        func first(_ kinds: EventKind...) -> Timestamp? { i.timeline.first { kinds.contains($0.kind) }?.at }
        return KeyTimes(
            firstBreach: i.trips.map(\.firstBreachAt).min() ?? first(.triggerPending),
            tripped: i.trips.map(\.trippedAt).min() ?? first(.triggerFiring),
            decision: first(.decision),
            approval: first(.approvalGiven, .approvalDenied),
            rollbackStarted: i.rollbackStartedAt ?? first(.rollbackStarted),
            rollbackFinished: i.rollbackFinishedAt ?? first(.rollbackFinished, .rollbackFailed),
            verified: i.verifiedAt ?? first(.verificationPassed, .verificationFailed),
            closed: i.closedAt)
    }

    /// `rolled back (verification passed)`, …; `open` while the incident is not closed.
    public static func outcomeText(_ i: Incident) -> String {
        guard let o = i.outcome else {
            return i.status == .closed ? "closed" : "still \(i.status.rawValue.replacing("_", with: " "))"
        }
        switch o {
        case .rolledBack: return "rolled back, verification passed"
        case .rollbackFailed: return "rollback failed"
        case .verificationFailed: return "rolled back, verification failed (the service did not recover)"
        case .recovered: return "recovered without a rollback"
        case .denied: return "rollback denied by a person"
        case .superseded: return "superseded by another release"
        }
    }

    private static func valueText(_ v: Double?, metric: String, thresholds: Thresholds?) -> String? {
        guard let v else { return nil }
        guard let unit = thresholds?.metric(named: metric)?.unit else { return ValueFormat.trim(v) }
        return ValueFormat.format(v, unit: unit)
    }

    private static func conditionText(_ t: TripSnapshot, thresholds: Thresholds?) -> String? {
        guard let def = thresholds?.trigger(named: t.trigger) else { return nil }
        let unit = thresholds?.metric(named: def.metric)?.unit ?? .number
        return EffectiveTrigger.describe(def.condition, metric: def.metric, unit: unit)
    }

    public static func json(_ i: Incident, thresholds: Thresholds? = nil) -> JSONValue {
        func ts(_ t: Timestamp?) -> JSONValue { t.map { .string($0.iso8601) } ?? .null }
        func str(_ s: String?) -> JSONValue { s.map(JSONValue.string) ?? .null }
        func num(_ d: Double?) -> JSONValue { d.flatMap { $0.isFinite ? JSONValue.number($0) : nil } ?? .null }
        let k = keyTimes(i)
        let trips: [JSONValue] = i.trips.map { t in
            .object([
                ("trigger", .string(t.trigger)),
                ("metric", .string(t.metric)),
                ("severity", .string(t.severity.rawValue)),
                ("automation", .string(t.automation.rawValue)),
                ("condition", str(conditionText(t, thresholds: thresholds))),
                ("value", num(t.value)),
                ("valueText", str(valueText(t.value, metric: t.metric, thresholds: thresholds))),
                ("threshold", num(t.threshold)),
                ("thresholdText", str(valueText(t.threshold, metric: t.metric, thresholds: thresholds))),
                ("firstBreachAt", .string(t.firstBreachAt.iso8601)),
                ("trippedAt", .string(t.trippedAt.iso8601)),
                ("evidence", str(t.evidence)),
            ])
        }
        return .object([
            ("report", .number(Double(version))),
            ("id", .string(i.id)),
            ("service", .string(i.service)),
            ("rollbackdVersion", .string(RollbackVersion.current)),
            ("status", .string(i.status.rawValue)),
            ("outcome", str(i.outcome?.rawValue)),
            ("outcomeText", .string(outcomeText(i))),
            ("fromVersion", .string(i.fromVersion)),
            ("toVersion", str(i.toVersion)),
            ("openedAt", .string(i.openedAt.iso8601)),
            ("closedAt", ts(i.closedAt)),
            ("durationMs", i.duration.map { .number(Double($0.milliseconds)) } ?? .null),
            ("duration", str(i.duration?.description)),
            ("decision", str(i.decision)),
            ("decisionReason", str(i.decisionReason)),
            ("approver", str(i.approver)),
            (
                "times",
                .object([
                    ("firstBreach", ts(k.firstBreach)),
                    ("tripped", ts(k.tripped)),
                    ("decision", ts(k.decision)),
                    ("approval", ts(k.approval)),
                    ("rollbackStarted", ts(k.rollbackStarted)),
                    ("rollbackFinished", ts(k.rollbackFinished)),
                    ("verified", ts(k.verified)),
                    ("closed", ts(k.closed)),
                ])
            ),
            ("trips", .array(trips)),
            (
                "gates",
                .array(
                    i.gates.map { g in
                        .object([("gate", .string(g.gate)), ("passed", .bool(g.passed)), ("detail", .string(g.detail))])
                    })
            ),
            (
                "timeline",
                .array(
                    i.timeline.map { e in
                        .object([
                            ("at", .string(e.at.iso8601)), ("kind", .string(e.kind.rawValue)),
                            ("text", .string(e.text)),
                        ])
                    })
            ),
        ])
    }

    /// A Markdown table cell: no pipes or newlines.
    static func cell(_ s: String) -> String {
        s.replacing("|", with: "\\|").replacing("\r\n", with: " ").replacing("\n", with: " ")
    }

    /// `13:53:00.123` relative offsets like `+2m5s` from `base`.
    private static func offset(_ t: Timestamp, from base: Timestamp) -> String {
        let d = t - base
        return d.milliseconds < 0 ? "-\(Interval(milliseconds: -d.milliseconds))" : "+\(d)"
    }

    /// `chart`: the file name of the incident's SVG chart beside the report, linked under the summary.
    public static func markdown(_ i: Incident, thresholds: Thresholds? = nil, chart: String? = nil) -> String {
        let k = keyTimes(i)
        var md = "# Incident \(i.id): \(i.service) \(i.fromVersion)"
        if let to = i.toVersion { md += " → \(to)" }
        md += "\n\n"
        md += "| | |\n|---|---|\n"
        md += "| Service | \(cell(i.service)) |\n"
        md += "| Bad release | \(cell(i.fromVersion)) |\n"
        md += "| Rollback target | \(cell(i.toVersion ?? "none chosen")) |\n"
        md += "| Outcome | \(cell(outcomeText(i))) |\n"
        md += "| Opened | \(i.openedAt.iso8601) |\n"
        md += "| Closed | \(i.closedAt?.iso8601 ?? "not yet") |\n"
        md += "| Written by | rollbackd \(cell(RollbackVersion.current)) |\n"
        md += "| Duration | \(i.duration?.description ?? "ongoing") |\n"
        if let d = i.decision {
            md += "| Decision | \(cell(d + (i.decisionReason.map { ": " + $0 } ?? ""))) |\n"
        }
        md += "| Approver | \(cell(i.approver ?? "none (no approval was involved)")) |\n"
        if let chart {
            md += "\n## Chart\n\n"
            md += "![\(i.trips.first?.metric ?? "metric") from the deploy to the end of verification](\(chart))\n\n"
            md += "The trigger's metric, its threshold (dashed red) and the deploy, first breach, trip, rollback and "
            md += "verification end (dotted, labelled): [\(chart)](\(chart)).\n"
        }

        md += "\n## Trigger\n\n"
        if i.trips.isEmpty {
            md += "No trigger tripped.\n"
        } else {
            md +=
                "| trigger | condition | metric value at trip | threshold | severity | automation | first breach | tripped |\n"
            md += "|---|---|---|---|---|---|---|---|\n"
            for t in i.trips {
                let value =
                    (valueText(t.value, metric: t.metric, thresholds: thresholds) ?? "no data")
                    + (t.evidence.map { " (\($0))" } ?? "")
                let threshold = valueText(t.threshold, metric: t.metric, thresholds: thresholds) ?? "-"
                let condition = conditionText(t, thresholds: thresholds) ?? t.metric
                md +=
                    "| \(cell(t.trigger)) | \(cell(condition)) | \(cell(value)) | \(cell(threshold)) | \(t.severity.rawValue) "
                    + "| \(t.automation.rawValue) | \(t.firstBreachAt.iso8601) | \(t.trippedAt.iso8601) |\n"
            }
        }

        md += "\n## Key times\n\n"
        let rows: [(String, Timestamp?)] = [
            ("First breach", k.firstBreach), ("Trip", k.tripped), ("Decision", k.decision), ("Approval", k.approval),
            ("Rollback started", k.rollbackStarted), ("Rollback finished", k.rollbackFinished),
            ("Verification", k.verified), ("Closed", k.closed),
        ]
        md += "| moment | time (UTC) | since first breach |\n|---|---|---|\n"
        let base = k.firstBreach ?? i.openedAt
        for (name, t) in rows {
            guard let t else { continue }
            md += "| \(name) | \(t.iso8601) | \(offset(t, from: base)) |\n"
        }

        md += "\n## Gates evaluated\n\n"
        if i.gates.isEmpty {
            md += "No gate was evaluated.\n"
        } else {
            md += "| gate | result | detail |\n|---|---|---|\n"
            for g in i.gates {
                md += "| \(cell(g.gate)) | \(g.passed ? "passed" : "BLOCKED") | \(cell(g.detail)) |\n"
            }
        }

        md += "\n## Timeline\n\n"
        if i.timeline.isEmpty {
            md += "No events recorded.\n"
        } else {
            md += "| time (UTC) | offset | event | what happened |\n|---|---|---|---|\n"
            for e in i.timeline {
                md +=
                    "| \(e.at.iso8601) | \(offset(e.at, from: i.timeline[0].at)) | \(e.kind.rawValue) | \(cell(e.text)) |\n"
            }
        }
        md += "\nAll events: `journalctl ROLLBACKD_INCIDENT=\(i.id)` or `rollbackd history --incident \(i.id)`.\n"
        return md
    }
}

/// Writes incident reports into `<state directory>/incidents/` (temp file + fsync + rename each).
public struct IncidentReportWriter: Sendable {
    public let directory: String

    public init(stateDirectory: String) { self.directory = stateDirectory + "/incidents" }
    public init(directory: String) { self.directory = directory }

    /// An incident id is used as a file name: letters, digits, `.`, `_`, `-`, not starting with `.`.
    public static func validate(id: String) throws(IncidentReportError) {
        let ok =
            !id.isEmpty && id.count <= 200 && !id.hasPrefix(".")
            && id.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "." || $0 == "_" || $0 == "-") }
        if !ok {
            throw IncidentReportError(
                message:
                    "incident id \(JSONValue.quote(id)) cannot name a report file (use letters, digits, '.', '_', '-')")
        }
    }

    /// `<directory>/<id>.svg`.
    public func chartPath(_ id: String) -> String { directory + "/" + id + ".svg" }

    /// Writes the incident's chart; returns its path. Blocking (fsync).
    @discardableResult
    public func writeChart(_ incident: Incident, svg: String) throws(IncidentReportError) -> String {
        try Self.validate(id: incident.id)
        let path = chartPath(incident.id)
        do {
            try FileIO.makeDirectories(directory, mode: 0o750)
            try FileIO.writeAtomically(path: path, bytes: Array(svg.utf8), mode: 0o640)
        } catch {
            throw IncidentReportError(message: "cannot write the chart of incident \(incident.id): \(error)")
        }
        return path
    }

    /// Writes both files; returns their paths. Blocking (fsync): call from `BlockingThread` on daemon paths.
    @discardableResult
    public func write(_ incident: Incident, thresholds: Thresholds? = nil) throws(IncidentReportError) -> (
        json: String, markdown: String
    ) {
        try Self.validate(id: incident.id)
        let json = directory + "/" + incident.id + ".json"
        let md = directory + "/" + incident.id + ".md"
        do {
            try FileIO.makeDirectories(directory, mode: 0o750)
            let text = IncidentReport.json(incident, thresholds: thresholds).serialized + "\n"
            try FileIO.writeAtomically(path: json, bytes: Array(text.utf8), mode: 0o640)
            let chart = FileIO.exists(chartPath(incident.id)) ? incident.id + ".svg" : nil
            try FileIO.writeAtomically(
                path: md, bytes: Array(IncidentReport.markdown(incident, thresholds: thresholds, chart: chart).utf8),
                mode: 0o640)
        } catch {
            throw IncidentReportError(message: "cannot write the report of incident \(incident.id): \(error)")
        }
        return (json, md)
    }
}
