import RollbackVersion

/// `rollbackd status --json` and the human status view, built from the engine's state (pure formatting).
public enum StatusReport {
    public static func json(
        config: Thresholds, state: EngineState, samples: [String: SampleValue], status: String,
        now: Timestamp
    ) -> JSONValue {
        let engine = Engine(config: config, state: state)
        func num(_ d: Double?) -> JSONValue { d.map { $0.isFinite ? .number($0) : .null } ?? .null }
        func str(_ s: String?) -> JSONValue { s.map { .string($0) } ?? .null }
        func time(_ t: Timestamp?) -> JSONValue { t.map { .string($0.iso8601) } ?? .null }
        let triggers: [JSONValue] = config.triggers.map { t in
            let s = state.triggers[t.name] ?? TriggerState()
            return .object([
                ("name", .string(t.name)), ("metric", .string(t.metric)), ("phase", .string(s.phase.rawValue)),
                ("count", .number(Double(s.count))),
                ("automation", .string(engine.effectiveAutomation(t, at: now).rawValue)),
                ("severity", .string(t.severity.rawValue)), ("value", num(s.lastValue)),
                ("threshold", num(s.lastThreshold)),
                ("reason", str(s.lastReason)), ("dryRun", .bool(t.dryRun)),
                ("evidence", evidence(t, s, engine)),
            ])
        }
        let metrics: [(key: String, value: JSONValue)] = config.metrics.map { m in
            switch samples[m.name] {
            case let .value(v)?: return (m.name, .object([("value", num(v)), ("reason", .null)]))
            case let .noData(r)?: return (m.name, .object([("value", .null), ("reason", .string(r))]))
            case nil: return (m.name, .object([("value", .null), ("reason", .string("not sampled yet"))]))
            }
        }
        let releases: [JSONValue] = state.ledger.releases.map { r in
            .object([
                ("version", .string(r.version)), ("liveSince", time(r.liveSince)), ("knownGoodAt", time(r.knownGoodAt)),
                ("rolledBackFromAt", time(r.rolledBackFromAt)), ("current", .bool(r.version == state.ledger.current)),
            ])
        }
        let incidents: [JSONValue] = state.openIncidents.map { i in
            .object([
                ("id", .string(i.id)), ("status", .string(i.status.rawValue)), ("fromVersion", .string(i.fromVersion)),
                ("toVersion", str(i.toVersion)), ("openedAt", time(i.openedAt)), ("decision", str(i.decision)),
                ("reason", str(i.decisionReason)),
            ])
        }
        let approvals: [JSONValue] = state.approvals.map { a in
            .object([
                ("incident", .string(a.incident)), ("trigger", .string(a.trigger)), ("from", .string(a.from)),
                ("to", .string(a.to)), ("requestedAt", time(a.requestedAt)),
            ])
        }
        let knownGood = state.ledger.releases.filter(\.isKnownGood).max { $0.liveSince < $1.liveSince }?.version
        return .object([
            ("service", .string(config.service)),
            ("version", .string(RollbackVersion.current)),
            ("status", .string(status)),
            ("current", str(state.ledger.current)),
            ("knownGood", str(knownGood)),
            ("halted", state.halted.map { .object([("at", time($0.at)), ("reason", .string($0.reason))]) } ?? .null),
            ("pausedUntil", engine.isPaused(at: now) ? time(state.pausedUntil) : .null),
            (
                "activeRollback",
                state.activeRollback.map {
                    .object([("incident", .string($0.incident)), ("from", .string($0.from)), ("to", .string($0.to))])
                } ?? .null
            ),
            ("triggers", .array(triggers)),
            ("metrics", .object(metrics)),
            ("releases", .array(releases)),
            ("openIncidents", .array(incidents)),
            ("pendingApprovals", .array(approvals)),
        ])
    }

    public static func text(
        config: Thresholds, state: EngineState, samples: [String: SampleValue], status: String,
        now: Timestamp
    ) -> String {
        let engine = Engine(config: config, state: state)
        var lines = ["\(config.service): \(status) (rollbackd \(RollbackVersion.current))"]
        for t in config.triggers {
            let s = state.triggers[t.name] ?? TriggerState()
            let unit = config.metric(named: t.metric)?.unit ?? .number
            let value: String
            switch samples[t.metric] {
            case let .value(v)?: value = ValueFormat.format(v, unit: unit)
            case let .noData(r)?: value = "no data (\(r))"
            case nil: value = "not sampled yet"
            }
            let phase =
                s.phase == .pending
                ? "pending \(s.count)/\(t.breaches)"
                : s.phase == .recovering ? "recovering \(s.count)/\(t.clears)" : s.phase.rawValue
            let evidence = s.evidence != nil ? engine.evidenceText(t, s).map { " (\($0))" } ?? "" : ""
            lines.append(
                "  \(t.name) [\(engine.effectiveAutomation(t, at: now).rawValue)] \(phase): \(value)\(evidence)")
        }
        for i in state.openIncidents {
            lines.append(
                "  incident \(i.id): \(i.status.rawValue), \(i.fromVersion)\(i.toVersion.map { " -> \($0)" } ?? "")\(i.decisionReason.map { ": \($0)" } ?? "")"
            )
        }
        for a in state.approvals {
            lines.append(
                "  awaiting approval: rollbackd approve \(a.incident)  (\(a.from) -> \(a.to), trigger \(a.trigger))")
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// The counts and strength of evidence behind a trigger on a counted metric (null for the others).
    static func evidence(_ t: TriggerDefinition, _ s: TriggerState, _ engine: Engine) -> JSONValue {
        guard let test = s.evidence else { return .null }
        return .object([
            ("events", .number(Double(test.total.events))), ("trials", .number(Double(test.total.trials))),
            ("since", s.evidenceRelease.map { .string($0) } ?? .null), ("strength", .number(test.strength)),
            ("confidence", .number(t.confidence)), ("reached", .bool(test.reached)),
            ("text", engine.evidenceText(t, s).map { .string($0) } ?? .null),
        ])
    }
}
