/// The decision engine: pure and deterministic. Feed it observations and commands with their timestamps; it
/// returns events and at most one rollback order. It never reads a clock, a file or the network.
public struct Engine: Sendable {
    public private(set) var config: Thresholds
    public private(set) var state: EngineState

    public init(config: Thresholds, state: EngineState = EngineState()) {
        self.config = config
        self.state = state
    }

    // MARK: configuration

    /// Swaps in a new configuration. Trigger state survives for triggers that still exist (same name and metric).
    public mutating func reconfigure(_ new: Thresholds) {
        var kept: [String: TriggerState] = [:]
        for t in new.triggers {
            if let old = config.trigger(named: t.name), old.metric == t.metric, let s = state.triggers[t.name] {
                kept[t.name] = s
            }
        }
        state.triggers = kept
        config = new
    }

    /// Effective automation of a trigger now: its level, limited by the global cap and a maintenance pause.
    public func effectiveAutomation(_ t: TriggerDefinition, at now: Timestamp) -> AutomationLevel {
        var level = t.automation.capped(by: config.automation)
        if isPaused(at: now) { level = level.capped(by: .manual) }
        return level
    }

    public func isPaused(at now: Timestamp) -> Bool {
        guard let until = state.pausedUntil else { return false }
        return now < until
    }

    // MARK: ticks

    public mutating func tick(_ obs: Observation, deployable: Set<String>? = nil) -> EngineOutput {
        var out = EngineOutput()
        let now = obs.at
        resumeIfPauseExpired(now: now, out: &out)
        observeVersion(obs, out: &out)
        trackBlindness(obs, out: &out)
        recordRecent(obs)
        for t in config.triggers where t.automation.capped(by: config.automation) != .off {
            evaluate(t, obs: obs, out: &out)
        }
        updateSoak(now: now, out: &out)
        if var v = state.verification {
            v.smokeFailures.append(contentsOf: obs.smokeFailures)
            v.ticks = (v.ticks ?? 0) + 1
            state.verification = v
            if verificationIsDue(v, now: now) { finishVerification(now: now, out: &out) }
        }
        if state.activeRollback == nil && state.verification == nil {
            decide(now: now, deployable: deployable, out: &out)
        }
        closeRecoveredIncidents(now: now, out: &out)
        return out
    }

    private mutating func resumeIfPauseExpired(now: Timestamp, out: inout EngineOutput) {
        if let until = state.pausedUntil, now >= until {
            state.pausedUntil = nil
            state.pausedBy = nil
            out.events.append(Event(kind: .automationResumed, at: now,
                                    message: "Maintenance pause ended at \(until); automation levels are back to the table's.",
                                    severity: .medium, reason: "pause expired"))
        }
    }

    private mutating func observeVersion(_ obs: Observation, out: inout EngineOutput) {
        let now = obs.at
        guard let version = obs.version else { return }
        guard version != state.ledger.current else { return }
        if let active = state.activeRollback, active.to == version {
            // Our own rollback made it live; rollbackFinished records that.
            return
        }
        let previous = state.ledger.current
        var baseline: [String: Double] = [:]
        if let previous, let prev = state.ledger.release(previous) {
            baseline = prev.baseline
            for (metric, values) in state.recent where values.count >= 3 {
                baseline[metric] = Self.median(values.map(\.value))
            }
        }
        if state.ledger.release(version) != nil {
            state.ledger.update(version) { r in
                r.liveSince = now
                r.cleanSince = nil
                if previous != nil { r.baseline = baseline }
            }
        } else {
            state.ledger.releases.append(Release(version: version, firstSeenAt: now, liveSince: now, cleanSince: nil,
                                                 knownGoodAt: nil, rolledBackFromAt: nil, baseline: baseline))
        }
        state.ledger.current = version
        state.recent = [:]
        // The new release earns its own breaches: a trigger tripped by the old one does not count against it.
        for name in state.triggers.keys { state.triggers[name] = TriggerState() }
        for inc in state.openIncidents where inc.status == .open || inc.status == .awaitingApproval {
            closeIncident(inc.id, outcome: .superseded, now: now, text: "release \(version) went live", out: &out)
        }
        state.approvals.removeAll()
        let from = previous.map { " (was \($0))" } ?? ""
        out.events.append(Event(kind: .releaseDeployed, at: now, message: "Release \(version) is live\(from).",
                                severity: .low, fromVersion: previous, toVersion: version))
    }

    private mutating func trackBlindness(_ obs: Observation, out: inout EngineOutput) {
        let now = obs.at
        let watched = Set(config.triggers.filter { $0.automation.capped(by: config.automation) != .off }.map(\.metric))
        var inputs: [(String, String?)] = watched.sorted().map { ($0, obs.samples[$0]?.reason ?? (obs.samples[$0] == nil ? "no sample" : nil)) }
        inputs.append(("version", obs.version == nil ? (obs.versionReason ?? "version unknown") : nil))
        for (metric, reason) in inputs {
            var b = state.blind[metric] ?? BlindState()
            if let reason {
                b.consecutiveNoData += 1
                b.lastReason = reason
                if b.consecutiveNoData == config.safety.blindAfter {
                    b.blindSince = now
                    out.events.append(Event(kind: .sourceBlind, at: now,
                        message: "Watchdog blind: \(metric) has had no data for \(b.consecutiveNoData) ticks (\(reason)). No rollback is made on missing data.",
                        severity: .high, metric: metric, reason: reason))
                }
            } else {
                if let since = b.blindSince {
                    out.events.append(Event(kind: .sourceRecovered, at: now,
                        message: "\(metric) has data again after being blind since \(since).",
                        severity: .low, metric: metric, reason: b.lastReason))
                }
                b = BlindState()
            }
            state.blind[metric] = b
        }
    }

    private mutating func recordRecent(_ obs: Observation) {
        let cutoff = obs.at - config.safety.baselineWindow
        for (metric, sample) in obs.samples {
            guard let v = sample.number, v.isFinite else { continue }
            var list = state.recent[metric] ?? []
            list.append(TimedValue(at: obs.at, value: v))
            list.removeAll { $0.at < cutoff }
            if list.count > 10_000 { list.removeFirst(list.count - 10_000) }
            state.recent[metric] = list
        }
    }

    /// Hysteresis: K consecutive breaches to fire, R consecutive oks to clear; no-data follows the trigger's policy.
    private mutating func evaluate(_ t: TriggerDefinition, obs: Observation, out: inout EngineOutput) {
        let now = obs.at
        var s = state.triggers[t.name] ?? TriggerState()
        let sample = obs.samples[t.metric] ?? .noData(reason: "no sample for \(t.metric)")
        enum Verdict { case breach, ok, hold }
        var verdict: Verdict
        switch sample {
        case let .value(v) where v.isFinite:
            let baseline = state.ledger.current.flatMap { state.ledger.release($0) }?.baseline[t.metric]
            if let threshold = t.condition.threshold(baseline: baseline) {
                verdict = t.condition.isBreached(by: v, threshold: threshold) ? .breach : .ok
                s.lastValue = v
                s.lastThreshold = threshold
                s.lastReason = nil
            } else {
                // A relative condition without a baseline cannot be judged: hold, whatever the no-data policy.
                verdict = .hold
                s.lastValue = v
                s.lastReason = "no baseline for \(t.metric) yet"
            }
        case .value:
            verdict = .hold
            s.lastReason = "value is not a finite number"
        case let .noData(reason):
            s.lastReason = reason
            switch t.noData {
            case .hold: verdict = .hold
            case .breach: verdict = .breach
            case .ok: verdict = .ok
            }
        }
        let level = effectiveAutomation(t, at: now)
        func event(_ kind: EventKind, _ message: String, _ severity: Severity) -> Event {
            Event(kind: kind, at: now, message: message, severity: severity, trigger: t.name, automation: level,
                  metric: t.metric, value: s.lastValue, threshold: s.lastThreshold,
                  fromVersion: state.ledger.current, reason: s.lastReason, dryRun: t.dryRun ? true : nil)
        }
        let valueText = s.lastValue.map { ValueFormat.format($0, unit: config.metric(named: t.metric)?.unit ?? .number) } ?? "no data"
        switch (s.phase, verdict) {
        case (_, .hold):
            break
        case (.ok, .breach):
            s.firstBreachAt = now
            s.count = 1
            if t.breaches <= 1 {
                trip(t, &s, now: now)
                out.events.append(event(.triggerFiring, "Trigger \(t.name) is firing: \(valueText) breaches \(conditionText(t)) (1 of 1).", t.severity))
            } else {
                s.phase = .pending
                out.events.append(event(.triggerPending, "Trigger \(t.name) is pending: \(valueText) breaches \(conditionText(t)) (1 of \(t.breaches)).", .low))
            }
        case (.pending, .breach):
            s.count += 1
            if s.count >= t.breaches {
                trip(t, &s, now: now)
                out.events.append(event(.triggerFiring, "Trigger \(t.name) is firing: \(valueText) breaches \(conditionText(t)) for \(t.breaches) consecutive samples.", t.severity))
            }
        case (.pending, .ok):
            s = TriggerState(lastValue: s.lastValue, lastThreshold: s.lastThreshold)
        case (.firing, .ok):
            s.count = 1
            if t.clears <= 1 {
                s = TriggerState(lastValue: s.lastValue, lastThreshold: s.lastThreshold)
                out.events.append(event(.triggerCleared, "Trigger \(t.name) cleared: \(valueText).", .low))
            } else {
                s.phase = .recovering
                out.events.append(event(.triggerRecovering, "Trigger \(t.name) is recovering: \(valueText) (1 of \(t.clears) oks).", .low))
            }
        case (.recovering, .ok):
            s.count += 1
            if s.count >= t.clears {
                s = TriggerState(lastValue: s.lastValue, lastThreshold: s.lastThreshold)
                out.events.append(event(.triggerCleared, "Trigger \(t.name) cleared after \(t.clears) consecutive ok samples: \(valueText).", .low))
            }
        case (.recovering, .breach):
            s.phase = .firing
            s.count = 0
            s.trippedAt = now
            out.events.append(event(.triggerFiring, "Trigger \(t.name) is firing again: \(valueText) breaches \(conditionText(t)).", t.severity))
        case (.firing, .breach), (.ok, .ok):
            break
        }
        state.triggers[t.name] = s
        // A trip belongs to the release that was live when it tripped: a trigger still firing from the release
        // rolled back from (its window not yet drained) opens no incident against the target.
        if s.phase == .firing, let current = state.ledger.current, let live = state.ledger.release(current)?.liveSince,
           (s.trippedAt ?? now) >= live {
            attachTrip(t, s, release: current, now: now, out: &out)
        }
    }

    private func trip(_ t: TriggerDefinition, _ s: inout TriggerState, now: Timestamp) {
        s.phase = .firing
        s.count = 0
        s.trippedAt = now
    }

    func conditionText(_ t: TriggerDefinition) -> String {
        EffectiveTrigger.describe(t.condition, metric: t.metric, unit: config.metric(named: t.metric)?.unit ?? .number)
    }

    /// Makes sure the release has an open incident that records this trip.
    private mutating func attachTrip(_ t: TriggerDefinition, _ s: TriggerState, release: String, now: Timestamp, out: inout EngineOutput) {
        let snapshot = TripSnapshot(trigger: t.name, metric: t.metric, severity: t.severity,
                                    automation: effectiveAutomation(t, at: now), value: s.lastValue,
                                    threshold: s.lastThreshold, firstBreachAt: s.firstBreachAt ?? now,
                                    trippedAt: s.trippedAt ?? now)
        if let i = state.incidents.firstIndex(where: { $0.fromVersion == release && $0.status != .closed }) {
            if !state.incidents[i].trips.contains(where: { $0.trigger == t.name && $0.trippedAt == snapshot.trippedAt }) {
                state.incidents[i].trips.append(snapshot)
                state.incidents[i].timeline.append(TimelineEntry(at: snapshot.firstBreachAt, kind: .triggerPending, text: "first breach of \(t.name)"))
                state.incidents[i].timeline.append(TimelineEntry(at: snapshot.trippedAt, kind: .triggerFiring, text: "\(t.name) tripped: \(conditionText(t))"))
            }
            return
        }
        var id = "INC-\(now.compactUTC)-\(Self.sanitize(release))"
        var n = 2
        while state.incidents.contains(where: { $0.id == id }) {
            id = "INC-\(now.compactUTC)-\(Self.sanitize(release))-\(n)"
            n += 1
        }
        let incident = Incident(id: id, service: config.service, fromVersion: release, toVersion: nil, openedAt: now,
                                closedAt: nil, status: .open, outcome: nil, trips: [snapshot], gates: [],
                                decision: nil, decisionReason: nil, approver: nil, rollbackStartedAt: nil,
                                rollbackFinishedAt: nil, verifiedAt: nil,
                                timeline: [TimelineEntry(at: snapshot.firstBreachAt, kind: .triggerPending, text: "first breach of \(t.name)"),
                                           TimelineEntry(at: snapshot.trippedAt, kind: .triggerFiring, text: "\(t.name) tripped: \(conditionText(t))"),
                                           TimelineEntry(at: now, kind: .incidentOpened, text: "incident opened for release \(release)")])
        state.incidents.append(incident)
        out.events.append(Event(kind: .incidentOpened, at: now,
                                message: "Incident \(id) opened for release \(release): trigger \(t.name) tripped.",
                                severity: t.severity, incident: id, trigger: t.name, metric: t.metric,
                                value: s.lastValue, threshold: s.lastThreshold, fromVersion: release))
        pruneClosedIncidents()
    }

    private mutating func pruneClosedIncidents() {
        let closed = state.incidents.filter { $0.status == .closed }
        if closed.count > 50 {
            let drop = Set(closed.prefix(closed.count - 50).map(\.id))
            state.incidents.removeAll { drop.contains($0.id) }
        }
    }

    static func sanitize(_ s: String) -> String {
        let cleaned = String(s.map { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "." || $0 == "_" || $0 == "-") ? $0 : "_" })
        return String(cleaned.prefix(64))
    }

    static func median(_ values: [Double]) -> Double {
        let sorted = values.sorted()
        let mid = sorted.count / 2
        return sorted.count % 2 == 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2
    }

    /// Known-good: live for `soak` with no tripped trigger and no blind metric, granted only while no trigger is
    /// pending.
    private mutating func updateSoak(now: Timestamp, out: inout EngineOutput) {
        guard let current = state.ledger.current, let release = state.ledger.release(current) else { return }
        let tripped = config.triggers.contains { t in
            t.automation.capped(by: config.automation) != .off && (state.triggers[t.name]?.phase.isTripped ?? false)
        }
        let blind = state.blind.values.contains { $0.blindSince != nil }
        if tripped || blind {
            if release.cleanSince != nil { state.ledger.update(current) { $0.cleanSince = nil } }
            return
        }
        guard let since = release.cleanSince else {
            state.ledger.update(current) { $0.cleanSince = now }
            return
        }
        // Never at a moment a trigger is pending: a bad release whose detection takes longer than the soak would
        // otherwise become a rollback target a tick before it trips.
        let pending = config.triggers.contains { t in
            t.automation.capped(by: config.automation) != .off && state.triggers[t.name]?.phase == .pending
        }
        if release.knownGoodAt == nil, !pending, now - since >= config.safety.soak {
            state.ledger.update(current) { $0.knownGoodAt = now }
            out.events.append(Event(kind: .releaseKnownGood, at: now,
                message: "Release \(current) is known-good: live \(now - since) with no tripped trigger (soak \(config.safety.soak)).",
                severity: .low, toVersion: current))
        }
    }

    // MARK: decisions

    /// Orders tripped triggers: full before semi before manual, then by severity, then table order.
    private func firingTriggers(now: Timestamp) -> [TriggerDefinition] {
        let liveSince = state.ledger.current.flatMap { state.ledger.release($0) }?.liveSince ?? now
        return config.triggers.enumerated()
            .filter { item in
                guard let s = state.triggers[item.element.name], s.phase == .firing, (s.trippedAt ?? now) >= liveSince else { return false }
                return effectiveAutomation(item.element, at: now) != .off
            }
            .sorted { a, b in
                let la = effectiveAutomation(a.element, at: now), lb = effectiveAutomation(b.element, at: now)
                if la != lb { return la > lb }
                if a.element.severity != b.element.severity { return a.element.severity > b.element.severity }
                return a.offset < b.offset
            }
            .map(\.element)
    }

    /// Evaluates the gates, in order, for a rollback away from the current release.
    public func gates(for t: TriggerDefinition, level: AutomationLevel, now: Timestamp, deployable: Set<String>?) -> [GateResult] {
        var gates: [GateResult] = []
        let current = state.ledger.current
        switch level {
        case .full: gates.append(GateResult(gate: "automation", passed: true, detail: "full: executes at once"))
        case .semi: gates.append(GateResult(gate: "automation", passed: true, detail: "semi: executes on rollbackd approve"))
        case .manual, .off:
            var why = "\(level.rawValue): notify only"
            if isPaused(at: now), let until = state.pausedUntil { why += " (maintenance pause until \(until))" }
            else if t.automation > config.automation { why += " (capped by the top-level automation \(config.automation.rawValue))" }
            gates.append(GateResult(gate: "automation", passed: false, detail: why))
        }
        if let h = state.halted {
            gates.append(GateResult(gate: "armed", passed: false, detail: "automation halted since \(h.at): \(h.reason); run rollbackd rearm"))
        } else {
            gates.append(GateResult(gate: "armed", passed: true, detail: "armed"))
        }
        let target = state.ledger.target(excluding: current, deployable: deployable)
        if t.dryRun {
            let would = target.map { "would roll back \(current ?? "?") -> \($0.version)" } ?? "would find no known-good target"
            gates.append(GateResult(gate: "dry_run", passed: false, detail: "dry run: \(would)"))
        } else {
            gates.append(GateResult(gate: "dry_run", passed: true, detail: "not a dry run"))
        }
        if let current, let r = state.ledger.release(current) {
            let age = now - r.liveSince
            if age <= config.safety.deployWindow {
                gates.append(GateResult(gate: "deploy_window", passed: true, detail: "\(current) went live \(age) ago (window \(config.safety.deployWindow))"))
            } else {
                gates.append(GateResult(gate: "deploy_window", passed: false, detail: "\(current) went live \(age) ago, outside the deploy window \(config.safety.deployWindow): a rollback would not help"))
            }
        } else {
            gates.append(GateResult(gate: "deploy_window", passed: false, detail: "the live release is unknown"))
        }
        if let target {
            gates.append(GateResult(gate: "target", passed: true, detail: "known-good \(target.version) (known-good since \(target.knownGoodAt.map(\.description) ?? "?"))"))
        } else {
            var why = "no known-good release other than \(current ?? "the current one") that was never rolled back from"
            if deployable != nil { why += " and that the strategy can deploy" }
            gates.append(GateResult(gate: "target", passed: false, detail: why))
        }
        if level == .full {
            if let last = state.rollbackLog.last, now - last.orderedAt < config.safety.cooldown {
                gates.append(GateResult(gate: "cooldown", passed: false, detail: "last rollback \(now - last.orderedAt) ago, cooldown \(config.safety.cooldown)"))
            } else {
                gates.append(GateResult(gate: "cooldown", passed: true, detail: "no rollback within \(config.safety.cooldown)"))
            }
            let used = automaticRollbacks(since: now - config.safety.budgetWindow)
            if used >= config.safety.budgetMax {
                gates.append(GateResult(gate: "budget", passed: false, detail: "\(used) automatic rollbacks in the last \(config.safety.budgetWindow), budget \(config.safety.budgetMax)"))
            } else {
                gates.append(GateResult(gate: "budget", passed: true, detail: "\(used) of \(config.safety.budgetMax) automatic rollbacks used in \(config.safety.budgetWindow)"))
            }
        }
        return gates
    }

    public func automaticRollbacks(since: Timestamp) -> Int {
        state.rollbackLog.filter { $0.automatic && $0.orderedAt > since }.count
    }

    private mutating func decide(now: Timestamp, deployable: Set<String>?, out: inout EngineOutput) {
        guard let current = state.ledger.current else { return }
        for t in firingTriggers(now: now) {
            guard let idx = state.incidents.firstIndex(where: { $0.fromVersion == current && $0.status != .closed }) else { continue }
            let incidentID = state.incidents[idx].id
            if state.incidents[idx].status == .awaitingApproval, effectiveAutomation(t, at: now) != .full { continue }
            let level = effectiveAutomation(t, at: now)
            let gates = gates(for: t, level: level, now: now, deployable: deployable)
            let target = state.ledger.target(excluding: current, deployable: deployable)
            let firstFailure = gates.first { !$0.passed }
            let decision: Decision
            switch (level, firstFailure) {
            case (.manual, _), (.off, _):
                let automationBlocked = firstFailure?.gate == "automation"
                let others = gates.filter { !$0.passed && $0.gate != "automation" }
                if let target, others.allSatisfy({ $0.gate == "dry_run" }) {
                    decision = .notify(recommendation: "roll back \(current) -> \(target.version): rollbackd rollback --to \(target.version)")
                } else {
                    let why = others.first?.detail ?? (automationBlocked ? "no safe target" : "")
                    decision = .notify(recommendation: "no automatic rollback possible: \(why)")
                }
            case (_, let failure?):
                decision = .blocked(gate: failure.gate, reason: failure.detail)
            case (.semi, nil):
                decision = .awaitApproval(target: target?.version ?? "?")
            case (.full, nil):
                decision = .rollback(target: target?.version ?? "?")
            }
            let key = "\(incidentID)/\(t.name)"
            let signature = "\(decision)"
            if state.lastDecisions[key] == signature { continue }
            state.lastDecisions[key] = signature
            state.incidents[idx].gates = gates
            state.incidents[idx].decision = decision.name
            let s = state.triggers[t.name] ?? TriggerState()
            var event = Event(kind: .decision, at: now, message: "", severity: t.severity, incident: incidentID,
                              trigger: t.name, automation: level, metric: t.metric, value: s.lastValue,
                              threshold: s.lastThreshold, fromVersion: current, decision: decision.name,
                              dryRun: t.dryRun ? true : nil)
            switch decision {
            case .none:
                continue
            case let .notify(recommendation):
                event.message = "Trigger \(t.name) (\(t.severity.rawValue), automation \(level.rawValue)) fired on \(current); recommended: \(recommendation)."
                event.reason = recommendation
                event.toVersion = target?.version
                state.incidents[idx].decisionReason = recommendation
                out.events.append(event)
                appendTimeline(idx, now, .decision, "decision notify: \(recommendation)")
            case let .blocked(gate, reason):
                event.message = "Trigger \(t.name) fired on \(current) but the rollback is blocked by the \(gate) gate: \(reason)."
                event.reason = reason
                event.toVersion = target?.version
                event.extra["gate"] = gate
                state.incidents[idx].decisionReason = reason
                out.events.append(event)
                out.events.append(Event(kind: .gateBlocked, at: now, message: "Gate \(gate) blocked the rollback of \(current): \(reason).",
                                        severity: t.severity, incident: incidentID, trigger: t.name, automation: level,
                                        fromVersion: current, toVersion: target?.version, decision: decision.name,
                                        reason: reason, dryRun: t.dryRun ? true : nil, extra: ["gate": gate]))
                appendTimeline(idx, now, .gateBlocked, "blocked by \(gate): \(reason)")
            case let .awaitApproval(to):
                event.message = "Trigger \(t.name) fired on \(current); rollback to \(to) is prepared and waits for approval: rollbackd approve \(incidentID)."
                event.toVersion = to
                event.reason = "automation semi"
                state.incidents[idx].status = .awaitingApproval
                state.incidents[idx].toVersion = to
                state.incidents[idx].decisionReason = "awaiting approval"
                state.approvals.removeAll { $0.incident == incidentID }
                state.approvals.append(PendingApproval(incident: incidentID, trigger: t.name, from: current, to: to, requestedAt: now))
                out.events.append(event)
                out.events.append(Event(kind: .approvalRequested, at: now,
                                        message: "Approval requested for incident \(incidentID): roll back \(current) -> \(to). Run rollbackd approve \(incidentID) or rollbackd deny \(incidentID).",
                                        severity: t.severity, incident: incidentID, trigger: t.name, automation: level,
                                        fromVersion: current, toVersion: to, decision: decision.name))
                appendTimeline(idx, now, .approvalRequested, "approval requested: \(current) -> \(to)")
            case let .rollback(to):
                event.message = "Trigger \(t.name) fired on \(current); rolling back to known-good \(to)."
                event.toVersion = to
                event.reason = "all gates passed"
                out.events.append(event)
                state.approvals.removeAll { $0.incident == incidentID }
                let order = RollbackOrder(incident: incidentID, from: current, to: to, trigger: t.name, automatic: true,
                                          requestedBy: nil, orderedAt: now)
                start(order, idx: idx, now: now, out: &out)
                return
            }
        }
    }

    private mutating func appendTimeline(_ idx: Int, _ at: Timestamp, _ kind: EventKind, _ text: String) {
        state.incidents[idx].timeline.append(TimelineEntry(at: at, kind: kind, text: text))
    }

    private mutating func start(_ order: RollbackOrder, idx: Int, now: Timestamp, out: inout EngineOutput) {
        state.activeRollback = order
        state.rollbackLog.append(order)
        let cutoff = now - max(config.safety.budgetWindow, config.safety.cooldown)
        state.rollbackLog.removeAll { $0.orderedAt < cutoff && $0 != order }
        state.incidents[idx].status = .rollingBack
        state.incidents[idx].toVersion = order.to
        state.incidents[idx].decision = Decision.rollback(target: order.to).name
        state.incidents[idx].rollbackStartedAt = now
        let who = order.requestedBy.map { " (by \($0))" } ?? ""
        appendTimeline(idx, now, .rollbackStarted, "rollback \(order.from) -> \(order.to) started\(who)")
        out.events.append(Event(kind: .rollbackStarted, at: now, message: "Rolling back \(order.from) -> \(order.to) (incident \(order.incident))\(who).",
                                severity: .high, incident: order.incident, trigger: order.trigger,
                                fromVersion: order.from, toVersion: order.to, decision: "rollback",
                                extra: order.requestedBy.map { ["by": $0] } ?? [:]))
        out.rollback = order
    }

    // MARK: rollback lifecycle

    /// Records a phase of the running rollback in the incident timeline.
    public mutating func rollbackPhase(_ phase: String, progress: PhaseProgress, detail: String, now: Timestamp) -> [Event] {
        guard let order = state.activeRollback, let idx = state.incidents.firstIndex(where: { $0.id == order.incident }) else { return [] }
        let words: String
        switch progress {
        case .started: words = "started"
        case .completed: words = "done"
        case .skipped: words = "skipped"
        case .failed: words = "failed"
        }
        appendTimeline(idx, now, .rollbackPhase, "phase \(phase) \(words): \(detail)")
        return [Event(kind: .rollbackPhase, at: now, message: "Rollback \(order.from) -> \(order.to): phase \(phase) \(words): \(detail).",
                      severity: progress == .failed ? .critical : .low, incident: order.incident, trigger: order.trigger,
                      fromVersion: order.from, toVersion: order.to, reason: progress == .failed ? detail : nil,
                      extra: ["phase": phase, "phase_state": progress.rawValue])]
    }

    /// The executor side reports how the ordered rollback ended.
    public mutating func rollbackFinished(_ result: RollbackResult, now: Timestamp) -> [Event] {
        guard let order = state.activeRollback else { return [] }
        if case let .interrupted(why) = result {
            // Not finished and not failed: the order stays active and resumes at the next start.
            if let idx = state.incidents.firstIndex(where: { $0.id == order.incident }) {
                appendTimeline(idx, now, .rollbackPhase, "rollback interrupted: \(why); it resumes when rollbackd starts again")
            }
            return [Event(kind: .rollbackPhase, at: now,
                          message: "Rollback \(order.from) -> \(order.to) interrupted: \(why); it resumes when rollbackd starts again.",
                          severity: .high, incident: order.incident, trigger: order.trigger,
                          fromVersion: order.from, toVersion: order.to, reason: why,
                          extra: ["phase": "interrupted", "phase_state": PhaseProgress.failed.rawValue])]
        }
        state.activeRollback = nil
        guard let idx = state.incidents.firstIndex(where: { $0.id == order.incident }) else { return [] }
        var events: [Event] = []
        switch result {
        case .succeeded:
            state.ledger.update(order.from) { $0.rolledBackFromAt = now }
            if state.ledger.release(order.to) != nil {
                state.ledger.update(order.to) { $0.liveSince = now; $0.cleanSince = nil }
            }
            state.ledger.current = order.to
            state.recent = [:]
            state.incidents[idx].status = .verifying
            state.incidents[idx].rollbackFinishedAt = now
            let deadline = now + config.safety.verifyFor
            state.verification = VerificationState(incident: order.incident, from: order.from, to: order.to,
                                                   startedAt: now, deadline: deadline, smokeFailures: [], ticks: 0)
            appendTimeline(idx, now, .rollbackFinished, "rollback finished; \(order.to) is live; verifying until \(deadline)")
            events.append(Event(kind: .rollbackFinished, at: now,
                                message: "Rolled back \(order.from) -> \(order.to); verifying recovery for \(config.safety.verifyFor).",
                                severity: .high, incident: order.incident, trigger: order.trigger,
                                fromVersion: order.from, toVersion: order.to, decision: "rollback"))
        case let .failed(reason):
            state.incidents[idx].rollbackFinishedAt = now
            appendTimeline(idx, now, .rollbackFailed, "rollback failed: \(reason)")
            events.append(Event(kind: .rollbackFailed, at: now, message: "Rollback \(order.from) -> \(order.to) failed: \(reason).",
                                severity: .critical, incident: order.incident, trigger: order.trigger,
                                fromVersion: order.from, toVersion: order.to, decision: "rollback", reason: reason))
            events += halt(reason: "rollback \(order.from) -> \(order.to) failed: \(reason)", incident: order.incident, now: now)
            closeIncident(order.incident, outcome: .rollbackFailed, now: now, text: "rollback failed", events: &events)
        case let .refused(gate):
            state.rollbackLog.removeAll { $0 == order }
            state.incidents[idx].status = .open
            state.incidents[idx].gates.append(gate)
            state.incidents[idx].decision = Decision.blocked(gate: gate.gate, reason: gate.detail).name
            state.incidents[idx].decisionReason = gate.detail
            appendTimeline(idx, now, .gateBlocked, "blocked by \(gate.gate): \(gate.detail)")
            events.append(Event(kind: .gateBlocked, at: now, message: "Gate \(gate.gate) stopped the rollback \(order.from) -> \(order.to) before any change: \(gate.detail).",
                                severity: .critical, incident: order.incident, trigger: order.trigger,
                                fromVersion: order.from, toVersion: order.to, decision: "blocked", reason: gate.detail,
                                extra: ["gate": gate.gate]))
        case let .demotedToApproval(reason):
            state.rollbackLog.removeAll { $0 == order }
            state.incidents[idx].status = .awaitingApproval
            state.incidents[idx].gates.append(GateResult(gate: "database", passed: false, detail: reason))
            state.incidents[idx].decision = Decision.awaitApproval(target: order.to).name
            state.incidents[idx].decisionReason = reason
            state.approvals.removeAll { $0.incident == order.incident }
            state.approvals.append(PendingApproval(incident: order.incident, trigger: order.trigger ?? "manual",
                                                   from: order.from, to: order.to, requestedAt: now))
            appendTimeline(idx, now, .approvalRequested, "demoted to approval: \(reason)")
            events.append(Event(kind: .approvalRequested, at: now,
                                message: "Rollback \(order.from) -> \(order.to) needs a human: \(reason). Run rollbackd approve \(order.incident) once the database is safe.",
                                severity: .critical, incident: order.incident, trigger: order.trigger,
                                fromVersion: order.from, toVersion: order.to, decision: "await_approval", reason: reason,
                                extra: ["gate": "database"]))
        case .interrupted:
            break  // handled above: the order stays active
        }
        return events
    }

    /// The verdict comes at `verifyFor`, once the triggers have had the samples `verifyFor` promises (one per
    /// verify interval): ticks that overran on a loaded host must not fail a recovery that had no time to show.
    /// A sampler that stays that slow gets its verdict at twice `verifyFor` all the same.
    func verificationIsDue(_ v: VerificationState, now: Timestamp) -> Bool {
        guard now >= v.deadline else { return false }
        guard let ticks = v.ticks else { return true }
        let every = max(config.safety.verifyInterval ?? config.interval, .ms(1))
        let promised = Int(config.safety.verifyFor.milliseconds / every.milliseconds)
        return ticks >= promised || now >= v.deadline + config.safety.verifyFor
    }

    /// Why the triggers do not show a recovery now (empty: they do): every `full` trigger must be clear and every
    /// smoke check must have answered. The daemon's verification and `rollbackd drill` judge with this.
    public func verificationProblems(smokeFailures: [String]) -> [String] {
        let notClear = config.triggers.filter { t in
            t.automation.capped(by: config.automation) == .full && !t.dryRun && (state.triggers[t.name]?.phase ?? .ok) != .ok
        }
        // A trigger whose metric has no data could not show its recovery: say so, rather than only "firing".
        let problems = notClear.map { t -> String in
            let phase = "\(t.name) is \(state.triggers[t.name]?.phase.rawValue ?? "?")"
            guard let b = state.blind[t.metric], b.consecutiveNoData > 0 else { return phase }
            return "\(phase) and could not show recovery: \(t.metric) has had no data for \(b.consecutiveNoData) ticks (\(b.lastReason ?? "no reason given"))"
        }
        return problems + smokeFailures.map { "smoke check: \($0)" }
    }

    private mutating func finishVerification(now: Timestamp, out: inout EngineOutput) {
        guard let v = state.verification else { return }
        state.verification = nil
        let problems = verificationProblems(smokeFailures: v.smokeFailures)
        guard let idx = state.incidents.firstIndex(where: { $0.id == v.incident }) else { return }
        if problems.isEmpty {
            state.incidents[idx].verifiedAt = now
            appendTimeline(idx, now, .verificationPassed, "verification passed: every full trigger is clear")
            out.events.append(Event(kind: .verificationPassed, at: now,
                                    message: "Verification passed: \(v.to) is healthy \(now - v.startedAt) after rolling back from \(v.from).",
                                    severity: .medium, incident: v.incident, fromVersion: v.from, toVersion: v.to))
            closeIncident(v.incident, outcome: .rolledBack, now: now, text: "recovered on \(v.to)", out: &out)
        } else {
            let reason = problems.joined(separator: "; ")
            appendTimeline(idx, now, .verificationFailed, "verification failed: \(reason)")
            out.events.append(Event(kind: .verificationFailed, at: now,
                                    message: "Verification failed after rolling back \(v.from) -> \(v.to): \(reason).",
                                    severity: .critical, incident: v.incident, fromVersion: v.from, toVersion: v.to, reason: reason))
            out.events += halt(reason: "verification failed after rolling back \(v.from) -> \(v.to): \(reason)", incident: v.incident, now: now)
            closeIncident(v.incident, outcome: .verificationFailed, now: now, text: "verification failed", out: &out)
        }
    }

    private mutating func halt(reason: String, incident: String?, now: Timestamp) -> [Event] {
        state.halted = HaltState(at: now, reason: reason, incident: incident)
        return [Event(kind: .automationHalted, at: now,
                      message: "Automatic rollbacks are halted: \(reason). A human must look, then run rollbackd rearm.",
                      severity: .critical, incident: incident, reason: reason)]
    }

    private mutating func closeIncident(_ id: String, outcome: IncidentOutcome, now: Timestamp, text: String, out: inout EngineOutput) {
        closeIncident(id, outcome: outcome, now: now, text: text, events: &out.events)
    }

    private mutating func closeIncident(_ id: String, outcome: IncidentOutcome, now: Timestamp, text: String, events: inout [Event]) {
        guard let idx = state.incidents.firstIndex(where: { $0.id == id }), state.incidents[idx].status != .closed else { return }
        state.incidents[idx].status = .closed
        state.incidents[idx].outcome = outcome
        state.incidents[idx].closedAt = now
        appendTimeline(idx, now, .incidentClosed, "closed: \(outcome.rawValue) (\(text))")
        for key in state.lastDecisions.keys where key.hasPrefix(id + "/") { state.lastDecisions[key] = nil }
        let inc = state.incidents[idx]
        let severity = inc.trips.map(\.severity).max() ?? .medium
        events.append(Event(kind: .incidentClosed, at: now,
                            message: "Incident \(id) closed: \(outcome.rawValue) (\(text)) after \(now - inc.openedAt).",
                            severity: outcome == .rolledBack || outcome == .recovered || outcome == .superseded ? .low : severity,
                            incident: id, fromVersion: inc.fromVersion, toVersion: inc.toVersion, reason: outcome.rawValue))
        if let withdrawn = state.approvals.first(where: { $0.incident == id }) {
            state.approvals.removeAll { $0.incident == id }
            events.append(Event(kind: .approvalWithdrawn, at: now,
                                message: "Approval for incident \(id) withdrawn: \(text).",
                                severity: .low, incident: id, trigger: withdrawn.trigger,
                                fromVersion: withdrawn.from, toVersion: withdrawn.to))
        }
    }

    /// An incident whose triggers all cleared without a rollback is closed as recovered.
    private mutating func closeRecoveredIncidents(now: Timestamp, out: inout EngineOutput) {
        guard let current = state.ledger.current else { return }
        for inc in state.openIncidents where inc.fromVersion == current && (inc.status == .open || inc.status == .awaitingApproval) {
            let anyTripped = inc.trips.contains { state.triggers[$0.trigger]?.phase.isTripped ?? false }
            if !anyTripped && !inc.trips.isEmpty {
                closeIncident(inc.id, outcome: .recovered, now: now, text: "every trigger cleared without a rollback", out: &out)
            }
        }
    }

    // MARK: operator commands

    /// `rollbackd approve ID`: executes the prepared rollback after re-checking that it is still safe.
    public mutating func approve(_ id: String, by who: String, now: Timestamp, deployable: Set<String>? = nil) throws(EngineRefusal) -> EngineOutput {
        guard let pending = state.approvals.first(where: { $0.incident == id }) else {
            throw EngineRefusal("no pending approval for \(id)\(state.approvals.isEmpty ? "" : "; pending: \(state.approvals.map(\.incident).joined(separator: ", "))")")
        }
        guard state.activeRollback == nil, state.verification == nil else { throw EngineRefusal("a rollback is already in progress") }
        guard state.ledger.current == pending.from else {
            throw EngineRefusal("the live release is \(state.ledger.current ?? "unknown"), no longer \(pending.from)")
        }
        guard let target = state.ledger.release(pending.to), target.rolledBackFromAt == nil, target.isKnownGood,
              deployable?.contains(pending.to) ?? true else {
            throw EngineRefusal("\(pending.to) is no longer a known-good target")
        }
        guard let idx = state.incidents.firstIndex(where: { $0.id == id }) else { throw EngineRefusal("incident \(id) is gone") }
        state.approvals.removeAll { $0.incident == id }
        state.incidents[idx].approver = who
        appendTimeline(idx, now, .approvalGiven, "approved by \(who)")
        var out = EngineOutput()
        out.events.append(Event(kind: .approvalGiven, at: now, message: "\(who) approved rolling back \(pending.from) -> \(pending.to) (incident \(id)).",
                                severity: .high, incident: id, trigger: pending.trigger, fromVersion: pending.from,
                                toVersion: pending.to, decision: "rollback", extra: ["by": who]))
        start(RollbackOrder(incident: id, from: pending.from, to: pending.to, trigger: pending.trigger, automatic: false,
                            requestedBy: who, orderedAt: now), idx: idx, now: now, out: &out)
        return out
    }

    /// `rollbackd deny ID`: no rollback for this incident; it stays open for people to handle.
    public mutating func deny(_ id: String, by who: String, now: Timestamp) throws(EngineRefusal) -> [Event] {
        guard let pending = state.approvals.first(where: { $0.incident == id }) else { throw EngineRefusal("no pending approval for \(id)") }
        state.approvals.removeAll { $0.incident == id }
        var events: [Event] = [Event(kind: .approvalDenied, at: now, message: "\(who) denied rolling back \(pending.from) -> \(pending.to) (incident \(id)).",
                                     severity: .high, incident: id, trigger: pending.trigger, fromVersion: pending.from,
                                     toVersion: pending.to, decision: "none", extra: ["by": who])]
        if let idx = state.incidents.firstIndex(where: { $0.id == id }) {
            state.incidents[idx].approver = who
            appendTimeline(idx, now, .approvalDenied, "denied by \(who)")
            closeIncident(id, outcome: .denied, now: now, text: "denied by \(who)", events: &events)
        }
        return events
    }

    /// `rollbackd rearm`: a human has looked after a failed rollback or verification.
    public mutating func rearm(by who: String, now: Timestamp) throws(EngineRefusal) -> [Event] {
        guard let h = state.halted else { throw EngineRefusal("automation is not halted") }
        state.halted = nil
        return [Event(kind: .automationRearmed, at: now, message: "\(who) re-armed automatic rollbacks (halted since \(h.at): \(h.reason)).",
                      severity: .medium, incident: h.incident, reason: h.reason, extra: ["by": who])]
    }

    /// `rollbackd pause [--for D]`: a maintenance window; every trigger notifies only. nil `until` = until resume.
    public mutating func pause(until: Timestamp?, by who: String, now: Timestamp) -> [Event] {
        state.pausedUntil = until ?? Timestamp(millisecondsSinceEpoch: Int64.max / 2)
        state.pausedBy = who
        let untilText = until.map { "until \($0)" } ?? "until rollbackd resume"
        return [Event(kind: .automationPaused, at: now, message: "\(who) paused automation \(untilText): triggers notify only.",
                      severity: .medium, reason: "maintenance window", extra: ["by": who])]
    }

    public mutating func resume(by who: String, now: Timestamp) throws(EngineRefusal) -> [Event] {
        guard isPaused(at: now) else { throw EngineRefusal("automation is not paused") }
        state.pausedUntil = nil
        state.pausedBy = nil
        return [Event(kind: .automationResumed, at: now, message: "\(who) resumed automation.", severity: .medium, extra: ["by": who])]
    }

    /// Marks a release known-good by hand (for a first install, or the demo).
    public mutating func markKnownGood(_ version: String, by who: String, now: Timestamp) throws(EngineRefusal) -> [Event] {
        guard state.ledger.release(version) != nil else {
            throw EngineRefusal("\(version) has never been seen live; known releases: \(state.ledger.releases.map(\.version).joined(separator: ", "))")
        }
        state.ledger.update(version) { $0.knownGoodAt = now; $0.rolledBackFromAt = nil }
        return [Event(kind: .releaseKnownGood, at: now, message: "\(who) marked \(version) known-good.", severity: .low,
                      toVersion: version, extra: ["by": who])]
    }

    /// Records a release that is known to exist and be good without having been seen live (e.g. the previous
    /// release on first install). It becomes a rollback target.
    public mutating func registerRelease(_ version: String, knownGood: Bool, now: Timestamp) {
        if state.ledger.release(version) == nil {
            state.ledger.releases.insert(Release(version: version, firstSeenAt: now, liveSince: Timestamp(millisecondsSinceEpoch: 0),
                                                 cleanSince: nil, knownGoodAt: knownGood ? now : nil, rolledBackFromAt: nil,
                                                 baseline: [:]), at: 0)
        }
    }

    /// `rollbackd rollback [--to VERSION]`: a manual rollback through the target gate; not limited by the
    /// automation level, cooldown or budget (a human decided), but never to a release rolled back from.
    public mutating func requestRollback(to requested: String?, by who: String, now: Timestamp,
                                         deployable: Set<String>? = nil) throws(EngineRefusal) -> EngineOutput {
        guard state.activeRollback == nil, state.verification == nil else { throw EngineRefusal("a rollback is already in progress") }
        guard let current = state.ledger.current else { throw EngineRefusal("the live release is unknown") }
        let target: Release
        if let requested {
            guard requested != current else { throw EngineRefusal("\(requested) is already live") }
            guard let r = state.ledger.release(requested) else {
                throw EngineRefusal("\(requested) is not in the release ledger; known: \(state.ledger.releases.map(\.version).joined(separator: ", "))")
            }
            guard r.rolledBackFromAt == nil else { throw EngineRefusal("\(requested) was rolled back from at \(r.rolledBackFromAt!); it is never a target again") }
            guard r.isKnownGood else { throw EngineRefusal("\(requested) is not known-good") }
            guard deployable?.contains(requested) ?? true else { throw EngineRefusal("the strategy cannot deploy \(requested)") }
            target = r
        } else {
            guard let r = state.ledger.target(excluding: current, deployable: deployable) else {
                throw EngineRefusal("no known-good release other than \(current) that was never rolled back from")
            }
            target = r
        }
        var out = EngineOutput()
        let idx: Int
        if let i = state.incidents.firstIndex(where: { $0.fromVersion == current && $0.status != .closed }) {
            idx = i
        } else {
            let id = "INC-\(now.compactUTC)-\(Self.sanitize(current))"
            state.incidents.append(Incident(id: id, service: config.service, fromVersion: current, toVersion: target.version,
                                            openedAt: now, closedAt: nil, status: .open, outcome: nil, trips: [], gates: [],
                                            decision: "rollback", decisionReason: "manual rollback by \(who)", approver: who,
                                            rollbackStartedAt: nil, rollbackFinishedAt: nil, verifiedAt: nil,
                                            timeline: [TimelineEntry(at: now, kind: .incidentOpened, text: "manual rollback requested by \(who)")]))
            idx = state.incidents.count - 1
            out.events.append(Event(kind: .incidentOpened, at: now, message: "Incident \(id) opened: \(who) asked to roll back \(current).",
                                    severity: .high, incident: id, fromVersion: current, toVersion: target.version, extra: ["by": who]))
        }
        state.approvals.removeAll { $0.incident == state.incidents[idx].id }
        state.incidents[idx].approver = who
        start(RollbackOrder(incident: state.incidents[idx].id, from: current, to: target.version, trigger: nil,
                            automatic: false, requestedBy: who, orderedAt: now), idx: idx, now: now, out: &out)
        return out
    }
}

extension TriggerState {
    init(lastValue: Double?, lastThreshold: Double?) {
        self.init()
        self.lastValue = lastValue
        self.lastThreshold = lastThreshold
    }
}
