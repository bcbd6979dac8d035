import RollbackCore

/// Bodies for the providers' own webhook formats: PagerDuty Events API v2 and Microsoft Teams (an Adaptive Card
/// in a `message`), as their documentation gives them.
public enum ProviderPayload {
    // MARK: PagerDuty Events API v2

    /// What a rollbackd event does to a PagerDuty alert: its `event_action` and the `dedup_key` that keeps one
    /// alert per incident (the incident id) or per standing condition (`<service>/halted`,
    /// `<service>/blind/<metric>`). Nil: not sent to PagerDuty (the incident's own page says enough).
    public static func pagerDutyAction(_ event: Event, service: String) -> (action: String, dedupKey: String)? {
        switch event.kind {
        case .incidentOpened:
            return event.incident.map { ("trigger", $0) }
        case .approvalGiven, .rollbackStarted:
            // A human approved, or rollbackd itself is acting: the page is being handled.
            return event.incident.map { ("acknowledge", $0) }
        case .incidentClosed:
            let outcome = event.extra["outcome"] ?? event.reason ?? ""
            // A failed rollback or verification leaves the page open; automation_halted pages for the rearm.
            guard outcome != IncidentOutcome.rollbackFailed.rawValue,
                outcome != IncidentOutcome.verificationFailed.rawValue
            else { return nil }
            return event.incident.map { ("resolve", $0) }
        case .automationHalted: return ("trigger", "\(service)/halted")
        case .automationRearmed: return ("resolve", "\(service)/halted")
        case .sourceBlind: return event.metric.map { ("trigger", "\(service)/blind/\($0)") }
        case .sourceRecovered: return event.metric.map { ("resolve", "\(service)/blind/\($0)") }
        default: return nil
        }
    }

    /// PagerDuty's four severities.
    static func pagerDutySeverity(_ s: Severity) -> String {
        switch s {
        case .critical: "critical"
        case .high: "error"
        case .medium: "warning"
        case .low: "info"
        }
    }

    /// The event without its `routing_key`, which the delivery adds from `routingKeyFile` (so the key is never in
    /// the spool). `trigger` carries the payload; `acknowledge` and `resolve` carry only the key and action.
    public static func pagerDuty(_ event: Event, incident: IncidentSummary?, host: String, service: String)
        -> JSONValue?
    {
        guard let (action, dedupKey) = pagerDutyAction(event, service: service) else { return nil }
        var members: [(key: String, value: JSONValue)] = [
            ("event_action", .string(action)), ("dedup_key", .string(String(dedupKey.prefix(255)))),
        ]
        if action == "trigger" {
            var details: [(key: String, value: JSONValue)] = [("event", EventJSON.value(event))]
            if let incident { details.append(("incident", incident.json)) }
            members.append(
                (
                    "payload",
                    .object([
                        ("summary", .string(String("\(service): \(event.message)".prefix(1024)))),
                        ("source", .string(host)),
                        ("severity", .string(pagerDutySeverity(event.severity))),
                        ("timestamp", .string(event.at.iso8601)),
                        ("component", .string(service)),
                        ("group", .string("rollbackd")),
                        ("class", .string(event.kind.rawValue)),
                        ("custom_details", .object(details)),
                    ])
                ))
            members.append(("client", .string("rollbackd")))
        }
        return .object(members)
    }

    /// A PagerDuty routing key: the file's content, trimmed. Read at every delivery batch (a rotated key is used at
    /// once); an unreadable or empty file is an error naming the file, never the key.
    public static func routingKey(path: String) throws(WebhookSecretError) -> String {
        let text: String
        do { text = String(decoding: try FileIO.readAll(path: path, limit: 4096), as: UTF8.self) } catch {
            throw WebhookSecretError(path: path, reason: "\(error)")
        }
        let key = httpTrim(text)
        if key.isEmpty { throw WebhookSecretError(path: path, reason: "the routing key file is empty") }
        if key.contains("\n") { throw WebhookSecretError(path: path, reason: "the routing key spans several lines") }
        return key
    }

    /// The body as sent: `routing_key` first, then the spooled members.
    public static func withRoutingKey(_ body: [UInt8], key: String) -> [UInt8]? {
        guard case let .object(members)? = try? JSONParser.parse(bytes: body) else { return nil }
        return Array(JSONValue.object([("routing_key", .string(key))] + members).serialized.utf8)
    }

    // MARK: Microsoft Teams

    /// `{"type": "message", "attachments": [{"contentType": "application/vnd.microsoft.card.adaptive",
    /// "contentUrl": null, "content": {AdaptiveCard 1.2: a title, the message, the facts}}]}`.
    public static func teams(_ event: Event, incident: IncidentSummary?, host: String, service: String) -> JSONValue {
        let color: String
        switch event.severity {
        case .critical, .high: color = "Attention"
        case .medium: color = "Warning"
        case .low: color = "Default"
        }
        var facts: [(String, String)] = [("Event", event.kind.rawValue), ("Severity", event.severity.rawValue)]
        if let id = event.incident { facts.append(("Incident", id)) }
        if let t = event.trigger { facts.append(("Trigger", t)) }
        if let from = event.fromVersion ?? incident?.fromVersion {
            let to = event.toVersion ?? incident?.toVersion
            facts.append(("Version", from + (to.map { " → \($0)" } ?? "")))
        }
        if let d = event.decision { facts.append(("Decision", d)) }
        if event.dryRun == true { facts.append(("Dry run", "yes")) }
        facts.append(("Host", host))
        facts.append(("At", event.at.iso8601))
        let card: JSONValue = .object([
            ("$schema", .string("http://adaptivecards.io/schemas/adaptive-card.json")),
            ("type", .string("AdaptiveCard")),
            ("version", .string("1.2")),
            (
                "body",
                .array([
                    .object([
                        ("type", .string("TextBlock")), ("text", .string("rollbackd: \(service)")),
                        ("weight", .string("Bolder")), ("size", .string("Medium")), ("color", .string(color)),
                        ("wrap", .bool(true)),
                    ]),
                    .object([("type", .string("TextBlock")), ("text", .string(event.message)), ("wrap", .bool(true))]),
                    .object([
                        ("type", .string("FactSet")),
                        ("facts", .array(facts.map { .object([("title", .string($0.0)), ("value", .string($0.1))]) })),
                    ]),
                ])
            ),
        ])
        return .object([
            ("type", .string("message")),
            (
                "attachments",
                .array([
                    .object([
                        ("contentType", .string("application/vnd.microsoft.card.adaptive")),
                        ("contentUrl", .null),
                        ("content", card),
                    ])
                ])
            ),
        ])
    }
}
