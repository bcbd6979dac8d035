/// The effective trigger table, as an operator reviews it before a release (`rollbackd check`).
public enum TriggerTable {
    static let headers = [
        "TRIGGER", "CONDITION", "SEVERITY", "RESPOND WITHIN", "AUTOMATION", "DETECTION", "NO DATA", "DECIDES BY",
    ]

    public static func rows(_ t: Thresholds) -> [[String]] {
        t.effectiveTriggers.map { row in
            var automation = row.automation.rawValue
            if row.automation != row.trigger.automation {
                automation += " (capped from \(row.trigger.automation.rawValue))"
            }
            if row.trigger.dryRun { automation += " [dry run]" }
            return [
                row.trigger.name, row.conditionText, row.trigger.severity.rawValue,
                row.trigger.respondWithin.description, automation,
                "\(row.detectionTime) (\(row.ticksNeeded)×\(t.interval))", row.trigger.noData.rawValue, row.rule,
            ]
        }
    }

    public static func text(_ t: Thresholds) -> String {
        let all = [headers] + rows(t)
        var widths = Array(repeating: 0, count: headers.count)
        for r in all { for (i, c) in r.enumerated() { widths[i] = max(widths[i], c.count) } }
        var out =
            "service \(t.service): interval \(t.interval), automation cap \(t.automation.rawValue), "
            + (t.rollback.isPlan ? "a plan of \(t.rollback.steps.count) steps" : "strategy \(t.rollback.strategy.name)")
            + ", \(t.metrics.count) metrics, \(t.triggers.count) triggers\n"
        if t.rollback.isPlan {
            let version = t.version == .strategy ? " (the version from step \(t.rollback.versionStepIndex + 1))" : ""
            out += "rollback plan of \(t.rollback.steps.count) steps\(version):\n"
            for line in planLines(t.rollback) { out += "  " + line + "\n" }
        }
        if let listen = t.telemetry?.listen { out += "telemetry: /metrics served on \(telemetryURL(listen))\n" }
        if let f = t.fleet { out += fleetLine(f) + "\n" }
        for r in all {
            var line = ""
            for (i, c) in r.enumerated() {
                line += c
                if i < r.count - 1 { line += String(repeating: " ", count: widths[i] - c.count + 2) }
            }
            out += line + "\n"
        }
        return out
    }

    public static func json(_ t: Thresholds) -> String {
        let triggers: [JSONValue] = t.effectiveTriggers.map { row in
            var members: [(key: String, value: JSONValue)] = [
                ("name", .string(row.trigger.name)),
                ("metric", .string(row.trigger.metric)),
                ("condition", .string(row.conditionText)),
                ("severity", .string(row.trigger.severity.rawValue)),
                ("respondWithin", .string(row.trigger.respondWithin.description)),
                ("automation", .string(row.automation.rawValue)),
                ("configuredAutomation", .string(row.trigger.automation.rawValue)),
                ("dryRun", .bool(row.trigger.dryRun)),
                ("breaches", .number(Double(row.trigger.breaches))),
                ("clears", .number(Double(row.trigger.clears))),
                ("noData", .string(row.trigger.noData.rawValue)),
                ("detectionSeconds", .number(row.detectionTime.seconds)),
                ("decidesBy", .string(row.rule)),
                ("confidence", .number(row.trigger.confidence)),
            ]
            if case let .within(d) = row.trigger.respondWithin {
                members.append(("respondWithinSeconds", .number(d.seconds)))
            }
            return .object(members)
        }
        let root: JSONValue = .object([
            ("service", .string(t.service)),
            ("interval", .string(t.interval.description)),
            ("automation", .string(t.automation.rawValue)),
            ("strategy", .string(t.rollback.isPlan ? "plan" : t.rollback.strategy.name)),
            (
                "steps",
                .array(
                    t.rollback.steps.map { step in
                        .object([
                            ("name", step.name.map { .string($0) } ?? .null),
                            ("strategy", .string(step.strategy.name)),
                            ("timeout", .string((step.timeout ?? t.rollback.phaseTimeout).description)),
                            ("onFailure", .string(step.onFailure.rawValue)),
                            ("approval", .bool(step.approval)),
                            (
                                "restore",
                                .array(
                                    step.restore.map { r in
                                        .object([
                                            ("weight", .number(Double(r.weight))),
                                            ("hold", r.hold.map { .string($0.description) } ?? .null),
                                        ])
                                    })
                            ),
                        ])
                    })
            ),
            ("triggers", .array(triggers)),
            ("telemetry", t.telemetry.map { .string(telemetryURL($0.listen)) } ?? .null),
            (
                "fleet",
                t.fleet.map { f in
                    .object([
                        ("name", .string(f.name)), ("host", f.host.map { .string($0) } ?? .null),
                        ("endpoints", .array(f.endpoints.map { .string($0) })), ("tls", .bool(f.tls != nil)),
                        ("leaseTTLSeconds", .number(f.leaseTTL.seconds)),
                    ])
                } ?? .null
            ),
        ])
        return root.serialized + "\n"
    }

    /// `fleet shop-eu: one decision for every host, through etcd at 3 endpoints (TLS), this host web-1, lease 10s`.
    public static func fleetLine(_ f: FleetConfig) -> String {
        let n = f.endpoints.count
        return "fleet \(f.name): one decision for every host, through etcd at \(n) endpoint\(n == 1 ? "" : "s")"
            + (f.tls != nil ? " (TLS)" : "") + ", this host \(f.host ?? "named by its hostname"), lease \(f.leaseTTL)"
    }

    /// One line per step of a plan: `2. "flags" feature-flag, timeout 10s, onFailure halt`.
    public static func planLines(_ r: RollbackConfig) -> [String] {
        r.steps.enumerated().map { i, step in
            var line = "\(i + 1). " + (step.name.map { JSONValue.quote($0) + " " } ?? "") + step.strategy.name
            if let t = step.timeout { line += ", timeout \(t)" }
            line += ", onFailure \(step.onFailure.rawValue)"
            if step.approval { line += ", waits for approval" }
            if !step.restore.isEmpty { line += ", then restores weights " + RestoreStage.text(step.restore) }
            return line
        }
    }

    /// Where `/metrics` is scraped: `http://127.0.0.1:9465/metrics`, or `unix:/run/…/metrics.sock` (path `/metrics`).
    public static func telemetryURL(_ listen: TelemetryListen) -> String {
        switch listen {
        case .tcp: "http://\(listen)/metrics"
        case let .unix(path): "unix:\(path) (GET /metrics)"
        }
    }
}
