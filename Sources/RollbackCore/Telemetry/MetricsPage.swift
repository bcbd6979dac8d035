/// rollbackd's own metrics in the Prometheus text exposition format (version 0.0.4), rendered from a snapshot of
/// the daemon's state. Names follow the Prometheus conventions: the `rollbackd_` prefix, base units (seconds,
/// ratios), `_total` on counters, `_info` on info metrics, one `HELP` and `TYPE` per family.
public enum MetricsPage {
    public static let contentType = "text/plain; version=0.0.4; charset=utf-8"

    /// The bounded set of `reason` labels of `rollbackd_metric_no_data`.
    public static let noDataReasons = [
        "not_sampled", "timeout", "unreachable", "http_error", "bad_answer", "no_samples", "command_failed", "other",
    ]

    /// The outcomes a `decision` event carries.
    public static let decisionOutcomes = ["none", "notify", "await_approval", "rollback", "blocked"]

    /// The gates a rollback passes, in order (`Engine+Gates.swift`, `MigrationCheck`).
    public static let gates = [
        "automation", "armed", "dry_run", "deploy_window", "target", "cooldown", "budget", "database",
    ]

    /// Maps a no-data reason (free text naming URLs and commands) to one of `noDataReasons`.
    public static func noDataCategory(_ reason: String) -> String {
        let r = reason.lowercased()
        func has(_ words: String...) -> Bool { words.contains { r.contains($0) } }
        if has("not sampled") { return "not_sampled" }
        if has("timed out", "timeout") { return "timeout" }
        if has("connection refused", "could not connect", "cannot connect", "resolve", "connect", "unreachable") {
            return "unreachable"
        }
        if r.hasPrefix("http ") || has(" http ", "rejected") { return "http_error" }
        if has("killed by signal", "exit status", "exited") { return "command_failed" }
        if has("not a number", "not json", "unexpected answer", "printed", "has no le", "malformed", "is not") {
            return "bad_answer"
        }
        if has(
            "no probes", "no sample", "empty result", "no series", "nan", "no requests", "no observations", "no targets"
        ) {
            return "no_samples"
        }
        return "other"
    }

    public static func render(_ s: TelemetrySnapshot, now: Timestamp) -> String {
        var page = Page()
        let engine = Engine(config: s.config, state: s.state)
        let service = [("service", s.config.service)]

        page.family("rollbackd_build_info", .gauge, "rollbackd's version and the Swift version it was built with.")
        page.sample(
            "rollbackd_build_info", [("version", BuildInfo.version), ("swift_version", BuildInfo.swiftVersion)], 1)
        page.family("rollbackd_start_time_seconds", .gauge, "When the daemon started, in seconds since the epoch.")
        page.sample("rollbackd_start_time_seconds", service, seconds(s.startedAt))
        page.family(
            "rollbackd_last_tick_timestamp_seconds", .gauge,
            "When the last tick observed the service, in seconds since the epoch.")
        if let t = s.counters.lastTickAt { page.sample("rollbackd_last_tick_timestamp_seconds", service, seconds(t)) }
        page.family("rollbackd_tick_interval_seconds", .gauge, "The configured interval between ticks.")
        page.sample("rollbackd_tick_interval_seconds", service, s.config.interval.seconds)

        // The release and the guard's own state.
        page.family("rollbackd_release_info", .gauge, "The release live now (1), labelled with its version.")
        if let current = s.state.ledger.current {
            page.sample("rollbackd_release_info", service + [("version", current)], 1)
        }
        page.family(
            "rollbackd_release_live_since_timestamp_seconds", .gauge,
            "When the live release became live, in seconds since the epoch.")
        if let current = s.state.ledger.current, let r = s.state.ledger.release(current) {
            page.sample("rollbackd_release_live_since_timestamp_seconds", service, seconds(r.liveSince))
        }
        page.family("rollbackd_known_good_releases", .gauge, "Releases known-good and never rolled back from.")
        page.sample(
            "rollbackd_known_good_releases", service,
            Double(s.state.ledger.releases.filter { $0.isKnownGood && $0.rolledBackFromAt == nil }.count))
        page.family("rollbackd_armed", .gauge, "1 while automation is armed; 0 when halted until rollbackd rearm.")
        page.sample("rollbackd_armed", service, s.state.halted == nil ? 1 : 0)
        page.family(
            "rollbackd_halted", .gauge,
            "1 while automation is halted (a failed rollback or verification): rearm needed.")
        page.sample("rollbackd_halted", service, s.state.halted == nil ? 0 : 1)
        page.family("rollbackd_paused", .gauge, "1 during a maintenance pause (every trigger capped at manual).")
        page.sample("rollbackd_paused", service, engine.isPaused(at: now) ? 1 : 0)
        page.family(
            "rollbackd_automation_cap", .gauge,
            "The table's global automation cap: 1 for the level in force, 0 for the others.")
        for level in AutomationLevel.allCases {
            page.sample(
                "rollbackd_automation_cap", service + [("level", level.rawValue)], s.config.automation == level ? 1 : 0)
        }
        if let f = s.fleet {
            page.family(
                "rollbackd_fleet_role", .gauge,
                "Fleet mode: 1 for this host's role now (leader, follower, or partitioned from etcd), 0 for the others."
            )
            for role in FleetStanding.Role.allCases {
                page.sample(
                    "rollbackd_fleet_role", service + [("fleet", f.fleet), ("role", role.rawValue)],
                    f.role == role ? 1 : 0)
            }
        }
        page.family("rollbackd_rollback_in_progress", .gauge, "1 while a rollback is running.")
        page.sample("rollbackd_rollback_in_progress", service, s.state.activeRollback == nil ? 0 : 1)
        page.family("rollbackd_verifying", .gauge, "1 while the recovery after a rollback is being verified.")
        page.sample("rollbackd_verifying", service, s.state.verification == nil ? 0 : 1)
        page.family("rollbackd_open_incidents", .gauge, "Incidents not yet closed.")
        page.sample("rollbackd_open_incidents", service, Double(s.state.openIncidents.count))
        page.family("rollbackd_pending_approvals", .gauge, "Rollbacks prepared and waiting for rollbackd approve.")
        page.sample("rollbackd_pending_approvals", service, Double(s.state.approvals.count))
        page.family(
            "rollbackd_oldest_pending_approval_timestamp_seconds", .gauge,
            "When the oldest rollback waiting for approval was prepared, in seconds since the epoch.")
        if let oldest = s.state.approvals.map(\.requestedAt).min() {
            page.sample("rollbackd_oldest_pending_approval_timestamp_seconds", service, seconds(oldest))
        }

        triggers(&page, s, engine: engine, now: now, service: service)
        metrics(&page, s, service: service)
        counters(&page, s, service: service)
        webhooks(&page, s, now: now, service: service)
        return page.text
    }

    private static func triggers(
        _ page: inout Page, _ s: TelemetrySnapshot, engine: Engine, now: Timestamp, service: [(String, String)]
    ) {
        let rows = s.config.triggers.map { t in (t, s.state.triggers[t.name] ?? TriggerState()) }
        page.family(
            "rollbackd_trigger_info", .gauge,
            "Each trigger of the table (1), with its metric, severity and effective automation level.")
        for (t, _) in rows {
            page.sample(
                "rollbackd_trigger_info",
                service + [
                    ("trigger", t.name), ("metric", t.metric), ("severity", t.severity.rawValue),
                    ("automation", engine.effectiveAutomation(t, at: now).rawValue),
                ], 1)
        }
        page.family(
            "rollbackd_trigger_state", .gauge,
            "A trigger's state: 1 for the one it is in (ok, pending, firing, recovering).")
        for (t, st) in rows {
            for phase in TriggerPhase.allCases {
                page.sample(
                    "rollbackd_trigger_state", service + [("trigger", t.name), ("state", phase.rawValue)],
                    st.phase == phase ? 1 : 0)
            }
        }
        page.family("rollbackd_trigger_value", .gauge, "The last value a trigger evaluated, in its metric's unit.")
        for (t, st) in rows { if let v = st.lastValue { page.sample("rollbackd_trigger_value", trig(service, t), v) } }
        page.family(
            "rollbackd_trigger_threshold", .gauge,
            "The bound a trigger last compared against (absolute, or the baseline times the factor).")
        for (t, st) in rows {
            if let v = st.lastThreshold { page.sample("rollbackd_trigger_threshold", trig(service, t), v) }
        }
        page.family(
            "rollbackd_trigger_consecutive_breaches", .gauge, "Consecutive breaching ticks counted towards firing.")
        for (t, st) in rows {
            let n = st.phase == .pending || st.phase == .firing ? st.count : 0
            page.sample("rollbackd_trigger_consecutive_breaches", trig(service, t), Double(n))
        }
        page.family(
            "rollbackd_trigger_evidence_events", .gauge,
            "On a counted metric: the bad events (errors, unhealthy probes) behind the trigger's evidence.")
        for (t, st) in rows {
            if let e = st.evidence {
                page.sample("rollbackd_trigger_evidence_events", trig(service, t), Double(e.total.events))
            }
        }
        page.family(
            "rollbackd_trigger_evidence_trials", .gauge,
            "On a counted metric: the events counted (requests, probes) behind the trigger's evidence.")
        for (t, st) in rows {
            if let e = st.evidence {
                page.sample("rollbackd_trigger_evidence_trials", trig(service, t), Double(e.total.trials))
            }
        }
        page.family(
            "rollbackd_trigger_evidence_ratio", .gauge,
            "On a counted metric: the strength of evidence (0 to 1) that the live release is beyond the condition.")
        for (t, st) in rows {
            if let e = st.evidence { page.sample("rollbackd_trigger_evidence_ratio", trig(service, t), e.strength) }
        }
        page.family(
            "rollbackd_trigger_confidence_ratio", .gauge,
            "On a counted metric: the evidence the trigger needs before it fires (its confidence).")
        for (t, st) in rows where st.evidence != nil {
            page.sample("rollbackd_trigger_confidence_ratio", trig(service, t), t.confidence)
        }
    }

    private static func metrics(_ page: inout Page, _ s: TelemetrySnapshot, service: [(String, String)]) {
        page.family("rollbackd_metric_value", .gauge, "A metric's last sample, in its unit (absent on no-data).")
        for m in s.config.metrics {
            if case let .value(v)? = s.samples[m.name] {
                page.sample("rollbackd_metric_value", service + [("metric", m.name)], v)
            }
        }
        page.family(
            "rollbackd_metric_last_sample_timestamp_seconds", .gauge,
            "When a metric last had a value, in seconds since the epoch.")
        for m in s.config.metrics {
            if let t = s.counters.lastValueAt[m.name] {
                page.sample(
                    "rollbackd_metric_last_sample_timestamp_seconds", service + [("metric", m.name)], seconds(t))
            }
        }
        page.family(
            "rollbackd_metric_no_data", .gauge,
            "1 when a metric's last sample had no data, on the reason's class; 0 on the other classes.")
        for m in s.config.metrics {
            let category: String? =
                switch s.samples[m.name] {
                case .value?: nil
                case let .noData(r)?: noDataCategory(r)
                case nil: "not_sampled"
                }
            for reason in noDataReasons {
                page.sample(
                    "rollbackd_metric_no_data", service + [("metric", m.name), ("reason", reason)],
                    category == reason ? 1 : 0)
            }
        }
        page.family(
            "rollbackd_metric_consecutive_no_data", .gauge, "Consecutive ticks without data for a metric.")
        for m in s.config.metrics {
            page.sample(
                "rollbackd_metric_consecutive_no_data", service + [("metric", m.name)],
                Double(s.state.blind[m.name]?.consecutiveNoData ?? 0))
        }
        page.family(
            "rollbackd_metric_blind", .gauge,
            "1 while the watchdog is blind on a metric (no data for safety.blindAfter ticks).")
        for m in s.config.metrics {
            page.sample(
                "rollbackd_metric_blind", service + [("metric", m.name)],
                s.state.blind[m.name]?.blindSince == nil ? 0 : 1)
        }
        page.family(
            "rollbackd_metric_sample_duration_seconds", .histogram, "How long sampling a metric's source took.")
        for m in s.config.metrics {
            page.histogram(
                "rollbackd_metric_sample_duration_seconds", service + [("metric", m.name)],
                s.counters.sampleDuration[m.name] ?? Histogram())
        }
    }

    private static func counters(_ page: inout Page, _ s: TelemetrySnapshot, service: [(String, String)]) {
        let c = s.counters
        page.family("rollbackd_rollbacks_started_total", .counter, "Rollbacks started since the daemon started.")
        page.sample("rollbackd_rollbacks_started_total", service, Double(c.count(.rollbackStarted)))
        page.family("rollbackd_rollbacks_finished_total", .counter, "Rollbacks that finished (then verified).")
        page.sample("rollbackd_rollbacks_finished_total", service, Double(c.count(.rollbackFinished)))
        page.family("rollbackd_rollbacks_failed_total", .counter, "Rollbacks that failed (automation then halts).")
        page.sample("rollbackd_rollbacks_failed_total", service, Double(c.count(.rollbackFailed)))
        page.family("rollbackd_verifications_total", .counter, "Verifications after a rollback, by result.")
        page.sample(
            "rollbackd_verifications_total", service + [("result", "passed")], Double(c.count(.verificationPassed)))
        page.sample(
            "rollbackd_verifications_total", service + [("result", "failed")], Double(c.count(.verificationFailed)))
        page.family("rollbackd_decisions_total", .counter, "Decisions on a firing trigger, by outcome.")
        for outcome in Set(decisionOutcomes).union(c.decisions.keys).sorted() {
            page.sample(
                "rollbackd_decisions_total", service + [("outcome", outcome)], Double(c.decisions[outcome] ?? 0))
        }
        page.family("rollbackd_gates_blocked_total", .counter, "Rollbacks a gate blocked, by gate.")
        for gate in gates + c.gatesBlocked.keys.filter({ !gates.contains($0) }).sorted() {
            page.sample("rollbackd_gates_blocked_total", service + [("gate", gate)], Double(c.gatesBlocked[gate] ?? 0))
        }
        page.family("rollbackd_events_total", .counter, "Events reported (journald and webhooks), by kind.")
        for kind in EventKind.allCases {
            page.sample("rollbackd_events_total", service + [("kind", kind.rawValue)], Double(c.count(kind)))
        }
        page.family("rollbackd_tick_duration_seconds", .histogram, "How long a tick (observe, evaluate, act) took.")
        page.histogram("rollbackd_tick_duration_seconds", service, c.tickDuration)
        page.family("rollbackd_tick_overruns_total", .counter, "Ticks that took longer than the interval.")
        page.sample("rollbackd_tick_overruns_total", service, Double(c.count(.tickOverrun)))
    }

    private static func webhooks(
        _ page: inout Page, _ s: TelemetrySnapshot, now: Timestamp, service: [(String, String)]
    ) {
        page.family(
            "rollbackd_webhook_pending_notifications", .gauge,
            "Notifications in a webhook's spool, not yet delivered nor dropped.")
        for w in s.webhooks {
            page.sample("rollbackd_webhook_pending_notifications", service + [("webhook", w.name)], Double(w.pending))
        }
        page.family(
            "rollbackd_webhook_oldest_pending_age_seconds", .gauge,
            "Age of a webhook's oldest undelivered notification (0 when none waits).")
        for w in s.webhooks {
            let age = w.oldestPendingAt.map { max(0, Double((now - $0).milliseconds) / 1000) } ?? 0
            page.sample("rollbackd_webhook_oldest_pending_age_seconds", service + [("webhook", w.name)], age)
        }
        page.family(
            "rollbackd_webhook_deliveries_total", .counter,
            "Webhook delivery outcomes: delivered, dropped (too old or refused), failed attempts (retried).")
        for w in s.webhooks {
            let l = service + [("webhook", w.name)]
            page.sample("rollbackd_webhook_deliveries_total", l + [("outcome", "delivered")], Double(w.delivered))
            page.sample("rollbackd_webhook_deliveries_total", l + [("outcome", "dropped")], Double(w.dropped))
            page.sample(
                "rollbackd_webhook_deliveries_total", l + [("outcome", "failed_attempt")], Double(w.failedAttempts))
        }
    }

    private static func trig(_ service: [(String, String)], _ t: TriggerDefinition) -> [(String, String)] {
        service + [("trigger", t.name)]
    }

    static func seconds(_ t: Timestamp) -> Double { Double(t.millisecondsSinceEpoch) / 1000 }

    enum Kind: String { case gauge, counter, histogram }

    struct Page {
        var text = ""

        mutating func family(_ name: String, _ kind: Kind, _ help: String) {
            text += "# HELP \(name) \(help.replacing("\\", with: "\\\\").replacing("\n", with: "\\n"))\n"
            text += "# TYPE \(name) \(kind.rawValue)\n"
        }

        mutating func sample(_ name: String, _ labels: [(String, String)], _ value: Double) {
            text += name + Self.labels(labels) + " " + Self.number(value) + "\n"
        }

        mutating func histogram(_ name: String, _ labels: [(String, String)], _ h: Histogram) {
            let cumulative = h.cumulative
            for (i, bound) in h.bounds.enumerated() {
                sample(name + "_bucket", labels + [("le", Self.number(bound))], Double(cumulative[i]))
            }
            sample(name + "_bucket", labels + [("le", "+Inf")], Double(h.count))
            sample(name + "_sum", labels, h.sum)
            sample(name + "_count", labels, Double(h.count))
        }

        static func labels(_ labels: [(String, String)]) -> String {
            if labels.isEmpty { return "" }
            return "{" + labels.map { "\($0.0)=\"\(escape($0.1))\"" }.joined(separator: ",") + "}"
        }

        static func escape(_ value: String) -> String {
            var out = ""
            for c in value {
                switch c {
                case "\\": out += "\\\\"
                case "\"": out += "\\\""
                case "\n": out += "\\n"
                default: out.append(c)
                }
            }
            return out
        }

        static func number(_ v: Double) -> String {
            if v.isNaN { return "NaN" }
            if v.isInfinite { return v > 0 ? "+Inf" : "-Inf" }
            if v == v.rounded(), abs(v) < 1e15 { return String(Int64(v)) }
            return "\(v)"
        }
    }
}
