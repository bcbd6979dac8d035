/// Limits that keep automatic rollbacks from doing harm.
public struct SafetyConfig: Sendable, Equatable {
    /// No automatic rollback within this long after the previous one.
    public var cooldown: Interval = .minutes(10)
    /// At most `budgetMax` automatic rollbacks in any `budgetWindow`.
    public var budgetMax: Int = 2
    public var budgetWindow: Interval = .hours(24)
    /// Roll back only if the current release went live within this long; otherwise a rollback would not help.
    public var deployWindow: Interval = .hours(2)
    /// A release becomes known-good after this long as current with no firing trigger.
    public var soak: Interval = .minutes(30)
    /// After a rollback, triggers are re-sampled this long; every `full` trigger must be clear at its end.
    public var verifyFor: Interval = .minutes(2)
    /// Re-sample interval during verification (default: the main interval).
    public var verifyInterval: Interval?
    /// Recent samples of the current release from which the next release's baseline is taken (median).
    public var baselineWindow: Interval = .minutes(10)
    /// Consecutive no-data ticks of a metric before a "watchdog blind" event.
    public var blindAfter: Int = 3

    public init() {}

    static func read(_ value: JSONValue, path: String, sink: IssueSink) -> SafetyConfig {
        var s = SafetyConfig()
        guard var obj = ObjectReader(value, path: path, sink: sink) else { return s }
        if let v = obj.read("cooldown", Read.duration) { s.cooldown = v }
        if let bv = obj.value("budget"), var b = ObjectReader(bv, path: obj.childPath("budget"), sink: sink) {
            if let v = b.read("max", required: true, Read.int(min: 0, max: 100)) { s.budgetMax = v }
            if let v = b.read("window", required: true, Read.positiveDuration) { s.budgetWindow = v }
            b.finish()
        }
        if let v = obj.read("deployWindow", Read.positiveDuration) { s.deployWindow = v }
        if let v = obj.read("soak", Read.positiveDuration) { s.soak = v }
        if let v = obj.read("verifyFor", Read.positiveDuration) { s.verifyFor = v }
        s.verifyInterval = obj.read("verifyInterval", Read.positiveDuration)
        if let v = obj.read("baselineWindow", Read.positiveDuration) { s.baselineWindow = v }
        if let v = obj.read("blindAfter", Read.int(min: 1, max: 1000)) { s.blindAfter = v }
        obj.finish()
        return s
    }
}

public enum WebhookFormat: String, Sendable, CaseIterable {
    /// The versioned rollbackd JSON payload, signed per Standard Webhooks.
    case standard
    /// A Slack-compatible `{"text": …}` message (also signed).
    case slack
    /// A PagerDuty Events API v2 event: one alert per incident (`dedup_key` = the incident id), triggered,
    /// acknowledged and resolved as the incident goes; the routing key is read from `routingKeyFile`.
    case pagerduty
    /// A Microsoft Teams message carrying an Adaptive Card (incoming webhook or Workflows).
    case teams
}

public struct WebhookConfig: Sendable, Equatable {
    public var name: String
    public var url: String
    /// File holding the Standard Webhooks secret (`whsec_<base64>`, or raw bytes); optional for `pagerduty`
    /// only (PagerDuty checks the routing key, not a signature).
    public var secretFile: String?
    public var format: WebhookFormat
    public var minSeverity: Severity
    /// Event kinds to send (empty: all).
    public var events: [String]
    public var http: HTTPOptions
    /// `pagerduty`: the file holding the Events API v2 routing (integration) key; read at each delivery, never
    /// written to the spool.
    public var routingKeyFile: String? = nil
}

public struct NotifyConfig: Sendable, Equatable {
    public var journal: Bool = true
    /// `SYSLOG_IDENTIFIER` of journald entries.
    public var identifier: String = "rollbackd"
    public var webhooks: [WebhookConfig] = []
    /// Undelivered webhook events older than this are dropped with a journald error.
    public var maxAge: Interval = .hours(24)

    public init() {}

    static func read(_ value: JSONValue, path: String, sink: IssueSink) -> NotifyConfig {
        var n = NotifyConfig()
        guard var obj = ObjectReader(value, path: path, sink: sink) else { return n }
        if let jv = obj.value("journal"), var j = ObjectReader(jv, path: obj.childPath("journal"), sink: sink) {
            if let v = j.read("enabled", Read.bool) { n.journal = v }
            if let v = j.read("identifier", Read.nonEmptyString) { n.identifier = v }
            j.finish()
        }
        if let v = obj.read("maxAge", Read.positiveDuration) { n.maxAge = v }
        if let wv = obj.value("webhooks") {
            let wpath = obj.childPath("webhooks")
            if case let .array(items) = wv {
                var names = Set<String>()
                for (i, item) in items.enumerated() {
                    let p = JSONPath.element(wpath, i)
                    guard var w = ObjectReader(item, path: p, sink: sink) else { continue }
                    let name = w.read("name", required: true, Read.nonEmptyString)
                    if let name {
                        if names.contains(name) {
                            sink.error(w.childPath("name"), "duplicate webhook name \(JSONValue.quote(name))")
                        }
                        names.insert(name)
                    }
                    let url = w.read("url", required: true, Read.httpURL)
                    let format = w.read("format", Read.choice(WebhookFormat.self)) ?? .standard
                    let secret = w.read("secretFile", required: format != .pagerduty, Read.absolutePath)
                    let routingKey = w.read("routingKeyFile", required: format == .pagerduty, Read.absolutePath)
                    if routingKey != nil && format != .pagerduty {
                        sink.error(
                            w.childPath("routingKeyFile"),
                            "only a \"pagerduty\" webhook has a routing key (this one's format is \(format.rawValue))")
                    }
                    let minSeverity = w.read("minSeverity", Read.choice(Severity.self)) ?? .low
                    let events =
                        w.read("events") { v, p, s -> [String]? in
                            guard let list = Read.stringArray(v, p, s) else { return nil }
                            for (i, e) in list.enumerated() where EventKind(rawValue: e) == nil {
                                s.error(
                                    JSONPath.element(p, i),
                                    "\(JSONValue.quote(e)) is not an event kind; known: \(EventKind.allCases.map(\.rawValue).joined(separator: ", "))"
                                )
                            }
                            return list
                        } ?? []
                    let http = HTTPOptions.read(from: &w, defaultTimeout: .seconds(5))
                    w.finish()
                    if let name, let url, secret != nil || format == .pagerduty,
                        routingKey != nil || format != .pagerduty
                    {
                        n.webhooks.append(
                            WebhookConfig(
                                name: name, url: url, secretFile: secret, format: format,
                                minSeverity: minSeverity, events: events, http: http,
                                routingKeyFile: format == .pagerduty ? routingKey : nil))
                    }
                }
            } else {
                sink.error(wpath, "expected an array of webhooks, found \(wv.typeName)")
            }
        }
        obj.finish()
        return n
    }
}

/// Where the version of the release currently live is read.
public enum VersionSource: Sendable, Equatable {
    /// Asked of the rollback strategy (the `current` symlink's target, the active colour, …).
    case strategy
    /// GET a URL; the body (trimmed) is the version, or a JSON field of it.
    case url(String, jsonField: String?, http: HTTPOptions)
    /// The first line of a file.
    case file(String)

    static func read(_ value: JSONValue, path: String, sink: IssueSink) -> VersionSource? {
        guard var obj = ObjectReader(value, path: path, sink: sink) else { return nil }
        let type = obj.read("type", required: true, Read.nonEmptyString)
        var result: VersionSource?
        switch type {
        case "strategy": result = .strategy
        case "url":
            let url = obj.read("url", required: true, Read.httpURL)
            let field = obj.read("jsonField", Read.nonEmptyString)
            let http = HTTPOptions.read(from: &obj)
            if let url { result = .url(url, jsonField: field, http: http) }
        case "file":
            if let p = obj.read("path", required: true, Read.absolutePath) { result = .file(p) }
        case nil: break
        case let other?:
            sink.error(obj.childPath("type"), "\(JSONValue.quote(other)) is not one of strategy, url, file")
        }
        obj.finish()
        return result
    }
}

/// The whole operator interface: `thresholds.json`, validated.
public struct Thresholds: Sendable, Equatable {
    public var service: String
    public var interval: Interval
    /// Global cap: no trigger acts above this level.
    public var automation: AutomationLevel
    public var instances: [String]
    public var version: VersionSource
    /// In file order.
    public var metrics: [MetricDefinition]
    public var triggers: [TriggerDefinition]
    public var rollback: RollbackConfig
    public var safety: SafetyConfig
    public var notify: NotifyConfig
    /// The daemon's own `/metrics` (nil: not served).
    public var telemetry: TelemetryConfig? = nil
    /// Fleet mode on etcd (nil: this host alone).
    public var fleet: FleetConfig? = nil

    public func metric(named name: String) -> MetricDefinition? { metrics.first { $0.name == name } }
    public func trigger(named name: String) -> TriggerDefinition? { triggers.first { $0.name == name } }
}

/// A successfully loaded configuration and the warnings found while loading it.
public struct LoadedThresholds: Sendable, Equatable {
    public var thresholds: Thresholds
    public var warnings: [ConfigIssue]
    /// `file: path: message` lines, for printing.
    public var warningLines: [String]
}

extension Thresholds {
    static let topLevelKeys = [
        "$schema", "service", "interval", "automation", "instances", "version", "metrics",
        "triggers", "rollback", "safety", "notify", "telemetry", "fleet",
    ]

    /// Parses and validates `text` (the content of `file`, used only in messages). Throws a `ConfigError` listing
    /// every problem; warnings come back with the result.
    public static func load(text: String, file: String) throws(ConfigError) -> LoadedThresholds {
        try load(bytes: Array(text.utf8), file: file)
    }

    public static func load(bytes: [UInt8], file: String) throws(ConfigError) -> LoadedThresholds {
        let root: JSONValue
        do {
            root = try JSONParser.parse(bytes: bytes)
        } catch {
            throw ConfigError(file: file, issues: [ConfigIssue(path: error.path, message: "invalid JSON at \(error)")])
        }
        let sink = IssueSink()
        let result = read(root, sink: sink)
        if !sink.errors.isEmpty || result == nil {
            var issues = sink.errors
            if issues.isEmpty { issues.append(ConfigIssue(path: "", message: "invalid configuration")) }
            throw ConfigError(file: file, issues: issues)
        }
        guard let result else { throw ConfigError(file: file, issues: sink.errors) }
        return LoadedThresholds(
            thresholds: result, warnings: sink.warnings,
            warningLines: sink.warnings.map { "\(file): \($0)" })
    }

    static func read(_ root: JSONValue, sink: IssueSink) -> Thresholds? {
        guard var obj = ObjectReader(root, path: "", sink: sink) else { return nil }
        _ = obj.read("$schema", Read.string)
        let service = obj.read("service", required: true, Read.nonEmptyString)
        let interval = obj.read("interval", required: true, Read.positiveDuration)
        if let interval, interval < .ms(100) {
            sink.error(obj.childPath("interval"), "\(interval) is shorter than the 100ms minimum")
        }
        let cap = obj.read("automation", Read.choice(AutomationLevel.self)) ?? .full
        let instances = obj.read("instances") { v, p, s -> [String]? in
            guard let list = Read.stringArray(v, p, s) else { return nil }
            for (i, u) in list.enumerated() where URLParts(u) == nil {
                s.error(JSONPath.element(p, i), "\(JSONValue.quote(u)) is not an absolute http:// or https:// URL")
            }
            // Returned even with a bad entry (already an error), so that metrics with a path do not also
            // report the list as missing.
            return list
        }
        let version = obj.read("version") { v, p, s in VersionSource.read(v, path: p, sink: s) } ?? .strategy

        var metrics: [MetricDefinition] = []
        if let mv = obj.value("metrics", required: true),
            var m = ObjectReader(mv, path: obj.childPath("metrics"), sink: sink)
        {
            for member in m.members {
                let p = m.childPath(member.key)
                _ = m.value(member.key)
                if let def = MetricDefinition.read(
                    name: member.key, value: member.value, path: p, instances: instances, sink: sink)
                {
                    metrics.append(def)
                }
            }
            m.finish()
            if m.members.isEmpty { sink.error(m.path, "must define at least one metric") }
        }
        let metricNames = Set(
            (obj.members.first { $0.key == "metrics" }?.value).flatMap { v -> [String]? in
                if case let .object(ms) = v { return ms.map(\.key) } else { return nil }
            } ?? [])

        var triggers: [TriggerDefinition] = []
        if let tv = obj.value("triggers", required: true) {
            let tpath = obj.childPath("triggers")
            if case let .array(items) = tv {
                var seen: [String: Int] = [:]
                for (i, item) in items.enumerated() {
                    let p = JSONPath.element(tpath, i)
                    guard let t = TriggerDefinition.read(item, path: p, sink: sink) else { continue }
                    if let first = seen[t.name] {
                        sink.error(
                            JSONPath.member(p, "name"),
                            "duplicate trigger name \(JSONValue.quote(t.name)) (also \(JSONPath.element(tpath, first)))"
                        )
                    } else {
                        seen[t.name] = i
                    }
                    if !metricNames.contains(t.metric) {
                        let known = metricNames.sorted().joined(separator: ", ")
                        sink.error(
                            JSONPath.member(p, "metric"),
                            "\(JSONValue.quote(t.metric)) is not defined in metrics (defined: \(known.isEmpty ? "none" : known))"
                        )
                    } else if let m = metrics.first(where: { $0.name == t.metric }), m.unit == .ratio {
                        // A ratio never leaves 0...1, so such a threshold silently disables (or always trips) the trigger.
                        switch t.condition {
                        case let .above(v) where !(0...1).contains(v), let .below(v) where !(0...1).contains(v):
                            let key = if case .above = t.condition { "above" } else { "below" }
                            sink.error(
                                JSONPath.member(JSONPath.member(p, "condition"), key),
                                "\(JSONValue.format(number: v)) is not a ratio between 0 and 1, but \(t.metric) is a ratio metric (write 10% as 0.1)"
                            )
                        default: break
                        }
                    }
                    triggers.append(t)
                }
                if items.isEmpty { sink.error(tpath, "must define at least one trigger") }
            } else {
                sink.error(tpath, "expected an array of triggers, found \(tv.typeName)")
            }
        }

        let rollback = obj.read("rollback", required: true) { v, p, s in RollbackConfig.read(v, path: p, sink: s) }
        let safety = obj.read("safety") { v, p, s in SafetyConfig.read(v, path: p, sink: s) } ?? SafetyConfig()
        let notify = obj.read("notify") { v, p, s in NotifyConfig.read(v, path: p, sink: s) } ?? NotifyConfig()
        let telemetry = obj.read("telemetry") { v, p, s in TelemetryConfig.read(v, path: p, sink: s) }
        let fleet = obj.read("fleet") { v, p, s in
            FleetConfig.read(v, path: p, service: service, interval: interval, sink: s)
        }
        obj.finish()

        guard let service, let interval, let rollback else { return nil }
        let t = Thresholds(
            service: service, interval: interval, automation: cap, instances: instances ?? [],
            version: version, metrics: metrics, triggers: triggers, rollback: rollback,
            safety: safety, notify: notify, telemetry: telemetry, fleet: fleet)
        t.semanticWarnings(sink: sink)
        return t
    }

    /// Places where the table cannot keep its promise, or a setting defeats another.
    func semanticWarnings(sink: IssueSink) {
        for (i, t) in triggers.enumerated() {
            let p = "triggers[\(i)]"
            let row = EffectiveTrigger(trigger: t, thresholds: self)
            switch t.respondWithin {
            case let .within(budget) where row.detectionTime > budget:
                sink.warn(
                    JSONPath.member(p, "breaches"),
                    "detection takes \(row.detectionTime) (interval \(interval) × \(row.ticksNeeded) breaches), longer than respondWithin \(budget)"
                )
            case .immediate where row.ticksNeeded > 1:
                sink.warn(
                    JSONPath.member(p, "breaches"),
                    "respondWithin is immediate but the trigger needs \(row.ticksNeeded) consecutive breaches (\(row.detectionTime))"
                )
            default: break
            }
            if t.automation != .off && t.automation > automation {
                sink.warn(
                    JSONPath.member(p, "automation"),
                    "\(t.automation.rawValue) is capped to \(automation.rawValue) by the top-level automation")
            }
            if t.condition.needsBaseline && safety.baselineWindow < interval * 3 {
                sink.warn(
                    "safety.baselineWindow",
                    "\(safety.baselineWindow) holds fewer than 3 samples at interval \(interval); baselines for \(t.name) will be thin"
                )
            }
            if t.automation == .full, !t.dryRun, t.clears > 0 {
                let verifyInterval = safety.verifyInterval ?? interval
                if verifyInterval * t.clears > safety.verifyFor {
                    sink.warn(
                        "safety.verifyFor",
                        "\(safety.verifyFor) is shorter than \(t.name)'s \(t.clears) clears × \(verifyInterval): verification can never pass"
                    )
                } else if let lookback = metrics.first(where: { $0.name == t.metric })?.source.lookback,
                    lookback + verifyInterval * t.clears > safety.verifyFor
                {
                    sink.warn(
                        "safety.verifyFor",
                        "\(safety.verifyFor) is shorter than metric \(t.metric)'s window \(lookback) plus \(t.name)'s \(t.clears) clears × \(verifyInterval): right after a rollback the window still holds the bad release's samples, so verification may fail although the service recovered"
                    )
                }
            }
        }
        if safety.budgetMax == 0 {
            sink.warn("safety.budget.max", "is 0: no automatic rollback will ever run")
        }
        if automation == .off {
            sink.warn("automation", "is off: every trigger is ignored")
        }
    }
}
