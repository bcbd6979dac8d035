#if canImport(Glibc)
import Glibc
#endif
import RollbackCore
import RollbackVersion

/// What a webhook receiver learns about the incident an event belongs to, as known when the event was sent.
public struct IncidentSummary: Sendable, Equatable {
    public var id: String
    public var status: String
    public var service: String?
    public var fromVersion: String?
    public var toVersion: String?
    /// The first trigger that tripped.
    public var trigger: String?
    /// The highest severity seen in the incident.
    public var severity: Severity
    public var openedAt: Timestamp
    public var decision: String?
    public var outcome: String?
    public var approver: String?

    public var json: JSONValue {
        var m: [(key: String, value: JSONValue)] = [("id", .string(id)), ("status", .string(status))]
        func add(_ k: String, _ v: String?) { m.append((k, v.map(JSONValue.string) ?? .null)) }
        add("fromVersion", fromVersion)
        add("toVersion", toVersion)
        add("trigger", trigger)
        m.append(("severity", .string(severity.rawValue)))
        m.append(("openedAt", .string(openedAt.iso8601)))
        add("decision", decision)
        add("outcome", outcome)
        add("approver", approver)
        return .object(m)
    }
}

/// Keeps a summary per incident from the events that pass through the notifier, or from the engine's own
/// `Incident` when it is handed over (`update(_:)`), which wins.
struct IncidentTracker {
    private var summaries: [String: IncidentSummary] = [:]
    private var order: [String] = []
    private let limit = 256

    mutating func update(_ incident: Incident) {
        var s = IncidentSummary(
            id: incident.id, status: incident.status.rawValue, service: incident.service,
            fromVersion: incident.fromVersion, toVersion: incident.toVersion,
            trigger: incident.trips.first?.trigger,
            severity: incident.trips.map(\.severity).max() ?? .low, openedAt: incident.openedAt,
            decision: incident.decision, outcome: incident.outcome?.rawValue,
            approver: incident.approver)
        if let old = summaries[incident.id], old.severity > s.severity { s.severity = old.severity }
        store(s)
    }

    mutating func apply(_ e: Event) -> IncidentSummary? {
        guard let id = e.incident else { return nil }
        var s =
            summaries[id]
            ?? IncidentSummary(
                id: id, status: IncidentStatus.open.rawValue, severity: e.severity,
                openedAt: e.at)
        if s.fromVersion == nil { s.fromVersion = e.fromVersion }
        if let to = e.toVersion { s.toVersion = to }
        if s.trigger == nil { s.trigger = e.trigger }
        if e.severity > s.severity { s.severity = e.severity }
        if let d = e.decision { s.decision = d }
        if let who = e.extra["approver"] { s.approver = who }
        switch e.kind {
        case .approvalRequested: s.status = IncidentStatus.awaitingApproval.rawValue
        case .rollbackStarted, .rollbackPhase: s.status = IncidentStatus.rollingBack.rawValue
        case .rollbackFinished: s.status = IncidentStatus.verifying.rawValue
        case .incidentClosed:
            s.status = IncidentStatus.closed.rawValue
            if let outcome = e.extra["outcome"] ?? e.reason.flatMap({ IncidentOutcome(rawValue: $0)?.rawValue }) {
                s.outcome = outcome
            }
        default: break
        }
        store(s)
        return s
    }

    private mutating func store(_ s: IncidentSummary) {
        if summaries[s.id] == nil {
            order.append(s.id)
            if order.count > limit { summaries[order.removeFirst()] = nil }
        }
        summaries[s.id] = s
    }
}

/// The bodies rollbackd sends to webhooks.
///
/// `standard` (version 1):
/// ```json
/// {"type": "rollbackd.decision", "version": 1, "timestamp": "2026-11-22T13:53:00.123Z",
///  "data": {"host": "web-1", "service": "checkout", "agent": "rollbackd/0.1.0",
///           "event": {"kind": "decision", "at": "…", "message": "…", "severity": "critical", …},
///           "incident": {"id": "…", "status": "open", …} | null}}
/// ```
/// `slack`: `{"text": "…"}` for a Slack incoming webhook. `pagerduty` and `teams`: `ProviderPayload`.
public enum WebhookPayload {
    public static let version = 1

    /// `rollbackd.<kind>`, e.g. `rollbackd.rollback_started`.
    public static func type(for kind: EventKind) -> String { "rollbackd." + kind.rawValue }

    public static func standard(_ event: Event, incident: IncidentSummary?, host: String, service: String) -> JSONValue
    {
        .object([
            ("type", .string(type(for: event.kind))),
            ("version", .number(Double(version))),
            ("timestamp", .string(event.at.iso8601)),
            (
                "data",
                .object([
                    ("host", .string(host)),
                    ("service", .string(service)),
                    ("agent", .string(RollbackVersion.agent)),
                    ("event", EventJSON.value(event)),
                    ("incident", incident?.json ?? .null),
                ])
            ),
        ])
    }

    public static func slack(_ event: Event, incident: IncidentSummary?, host: String, service: String) -> JSONValue {
        let mark: String
        switch event.severity {
        case .critical: mark = ":rotating_light:"
        case .high: mark = ":warning:"
        case .medium: mark = ":large_yellow_circle:"
        case .low: mark = ":information_source:"
        }
        var text =
            "\(mark) *\(event.severity.rawValue.uppercased())* \(service) on \(host): \(slackEscape(event.message))"
        var details: [String] = ["event `\(event.kind.rawValue)`"]
        if let id = event.incident { details.append("incident `\(slackEscape(id))`") }
        if let t = event.trigger { details.append("trigger `\(slackEscape(t))`") }
        if let from = event.fromVersion ?? incident?.fromVersion {
            let to = event.toVersion ?? incident?.toVersion
            details.append("version \(slackEscape(from))" + (to.map { " → \(slackEscape($0))" } ?? ""))
        }
        if let d = event.decision { details.append("decision `\(d)`") }
        if event.dryRun == true { details.append("dry run") }
        text += "\n" + details.joined(separator: " · ") + " · " + event.at.iso8601
        return .object([("text", .string(text))])
    }

    /// Slack's three control characters.
    static func slackEscape(_ s: String) -> String {
        s.replacing("&", with: "&amp;").replacing("<", with: "&lt;").replacing(">", with: "&gt;")
    }

    public static func body(
        _ format: WebhookFormat, _ event: Event, incident: IncidentSummary?, host: String,
        service: String
    ) -> [UInt8] {
        let value: JSONValue
        switch format {
        case .standard: value = standard(event, incident: incident, host: host, service: service)
        case .slack: value = slack(event, incident: incident, host: host, service: service)
        case .teams: value = ProviderPayload.teams(event, incident: incident, host: host, service: service)
        case .pagerduty:
            // `accepts` lets through only the events PagerDuty gets.
            value = ProviderPayload.pagerDuty(event, incident: incident, host: host, service: service) ?? .null
        }
        return Array(value.serialized.utf8)
    }

    /// Whether `event` goes to `webhook` (minimum severity and event list; an empty list takes every kind). A
    /// `pagerduty` webhook takes only the events that trigger, acknowledge or resolve an alert, and its minimum
    /// severity applies to triggers only (an acknowledge or resolve always follows its trigger).
    public static func accepts(_ webhook: WebhookConfig, _ event: Event, service: String = "") -> Bool {
        if webhook.format == .pagerduty {
            guard let (action, _) = ProviderPayload.pagerDutyAction(event, service: service) else { return false }
            if action == "trigger" && event.severity < webhook.minSeverity { return false }
            return webhook.events.isEmpty || webhook.events.contains(event.kind.rawValue)
        }
        guard event.severity >= webhook.minSeverity else { return false }
        return webhook.events.isEmpty || webhook.events.contains(event.kind.rawValue)
    }

    /// This host's name (`gethostname`).
    public static func hostName() -> String {
        var buffer = [CChar](repeating: 0, count: 256)
        guard gethostname(&buffer, buffer.count - 1) == 0 else { return "localhost" }
        let bytes = buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }
        return String(decoding: bytes, as: UTF8.self)
    }
}
