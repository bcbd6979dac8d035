extension Engine {
    /// Records a phase of the running rollback in the incident timeline.
    public mutating func rollbackPhase(_ phase: String, progress: PhaseProgress, detail: String, now: Timestamp)
        -> [Event]
    {
        guard let order = state.activeRollback, let idx = state.incidents.firstIndex(where: { $0.id == order.incident })
        else { return [] }
        let words: String
        switch progress {
        case .started: words = "started"
        case .completed: words = "done"
        case .skipped: words = "skipped"
        case .failed: words = "failed"
        }
        appendTimeline(idx, now, .rollbackPhase, "phase \(phase) \(words): \(detail)")
        return [
            Event(
                kind: .rollbackPhase, at: now,
                message: "Rollback \(order.from) -> \(order.to): phase \(phase) \(words): \(detail).",
                severity: progress == .failed ? .critical : .low, incident: order.incident, trigger: order.trigger,
                fromVersion: order.from, toVersion: order.to, reason: progress == .failed ? detail : nil,
                extra: ["phase": phase, "phase_state": progress.rawValue].merging(
                    config.rollback.stepFields(ofPhase: phase)
                ) { a, _ in a })
        ]
    }

    /// The event fields of a plan's failure for incident `idx`: the step of the last failed phase the executor
    /// reported, and the steps with phases that ran (`rollbackPhase` records each in the timeline).
    func planFailureFields(_ idx: Int) -> [String: String] {
        var failed: Int?
        var ran: Set<Int> = []
        for entry in state.incidents[idx].timeline where entry.kind == .rollbackPhase {
            let words = entry.text.split(separator: " ", maxSplits: 2)
            guard words.count == 3, words[0] == "phase", let step = config.rollback.stepIndex(ofPhase: String(words[1]))
            else { continue }
            if words[2].hasPrefix("failed") { failed = step }
            if words[2].hasPrefix("done") || words[2].hasPrefix("skipped") { ran.insert(step) }
        }
        return failed.map { config.rollback.stepFailureFields(failed: $0, ran: ran) } ?? [:]
    }

    /// The executor side reports how the ordered rollback ended.
    public mutating func rollbackFinished(_ result: RollbackResult, now: Timestamp) -> [Event] {
        guard let order = state.activeRollback else { return [] }
        if case let .interrupted(why) = result {
            // Not finished and not failed: the order stays active and resumes at the next start.
            if let idx = state.incidents.firstIndex(where: { $0.id == order.incident }) {
                appendTimeline(
                    idx, now, .rollbackPhase, "rollback interrupted: \(why); it resumes when rollbackd starts again")
            }
            return [
                Event(
                    kind: .rollbackPhase, at: now,
                    message:
                        "Rollback \(order.from) -> \(order.to) interrupted: \(why); it resumes when rollbackd starts again.",
                    severity: .high, incident: order.incident, trigger: order.trigger,
                    fromVersion: order.from, toVersion: order.to, reason: why,
                    extra: ["phase": "interrupted", "phase_state": PhaseProgress.failed.rawValue])
            ]
        }
        state.activeRollback = nil
        guard let idx = state.incidents.firstIndex(where: { $0.id == order.incident }) else { return [] }
        var events: [Event] = []
        switch result {
        case .succeeded:
            state.ledger.update(order.from) { $0.rolledBackFromAt = now }
            if state.ledger.release(order.to) != nil {
                state.ledger.update(order.to) {
                    $0.liveSince = now; $0.cleanSince = nil
                }
            }
            state.ledger.current = order.to
            state.recent = [:]
            state.recentCounts = nil
            state.recentHistograms = nil
            state.incidents[idx].status = .verifying
            state.incidents[idx].rollbackFinishedAt = now
            let deadline = now + config.safety.verifyFor
            state.verification = VerificationState(
                incident: order.incident, from: order.from, to: order.to,
                startedAt: now, deadline: deadline, smokeFailures: [], ticks: 0)
            appendTimeline(
                idx, now, .rollbackFinished, "rollback finished; \(order.to) is live; verifying until \(deadline)")
            events.append(
                Event(
                    kind: .rollbackFinished, at: now,
                    message:
                        "Rolled back \(order.from) -> \(order.to); verifying recovery for \(config.safety.verifyFor).",
                    severity: .high, incident: order.incident, trigger: order.trigger,
                    fromVersion: order.from, toVersion: order.to, decision: "rollback"))
        case let .failed(reason):
            state.incidents[idx].rollbackFinishedAt = now
            appendTimeline(idx, now, .rollbackFailed, "rollback failed: \(reason)")
            events.append(
                Event(
                    kind: .rollbackFailed, at: now, message: "Rollback \(order.from) -> \(order.to) failed: \(reason).",
                    severity: .critical, incident: order.incident, trigger: order.trigger,
                    fromVersion: order.from, toVersion: order.to, decision: "rollback", reason: reason,
                    extra: planFailureFields(idx)))
            events += halt(
                reason: "rollback \(order.from) -> \(order.to) failed: \(reason)", incident: order.incident, now: now)
            closeIncident(order.incident, outcome: .rollbackFailed, now: now, text: "rollback failed", events: &events)
        case let .refused(gate):
            state.rollbackLog.removeAll { $0 == order }
            state.incidents[idx].status = .open
            state.incidents[idx].gates.append(gate)
            state.incidents[idx].decision = Decision.blocked(gate: gate.gate, reason: gate.detail).name
            state.incidents[idx].decisionReason = gate.detail
            appendTimeline(idx, now, .gateBlocked, "blocked by \(gate.gate): \(gate.detail)")
            events.append(
                Event(
                    kind: .gateBlocked, at: now,
                    message:
                        "Gate \(gate.gate) stopped the rollback \(order.from) -> \(order.to) before any change: \(gate.detail).",
                    severity: .critical, incident: order.incident, trigger: order.trigger,
                    fromVersion: order.from, toVersion: order.to, decision: "blocked", reason: gate.detail,
                    extra: ["gate": gate.gate]))
        case let .demotedToApproval(reason):
            state.rollbackLog.removeAll { $0 == order }
            state.incidents[idx].gates.append(GateResult(gate: "database", passed: false, detail: reason))
            events.append(
                awaitPerson(
                    idx, order, reason: reason, planStep: nil, now: now,
                    timeline: "demoted to approval: \(reason)",
                    message:
                        "Rollback \(order.from) -> \(order.to) needs a human: \(reason). Run rollbackd approve \(order.incident) once the database is safe.",
                    extra: ["gate": "database"]))
        case let .awaitingApproval(step, reason):
            // The plan's steps before `step` ran; the order counts against the budget as it stands, and a person
            // decides on the rest (`approve` runs it, `deny` leaves the plan halted).
            let fields = config.rollback.stepFields(ofPhase: "\(step).")
            let label = fields["step_label"] ?? "step \(step)"
            events.append(
                awaitPerson(
                    idx, order, reason: reason, planStep: step, now: now,
                    timeline: "plan stopped before step \(label): \(reason)",
                    message:
                        "Rollback plan \(order.from) -> \(order.to) stopped before step \(label), which waits for a person: \(reason). Run rollbackd approve \(order.incident) to run it and the rest of the plan, or rollbackd deny \(order.incident) to leave the plan halted.",
                    extra: fields.merging(["gate": "approval"]) { a, _ in a }))
        case .interrupted:
            break // handled above: the order stays active
        }
        return events
    }

    /// The verdict comes at `verifyFor`, once the triggers have had the samples `verifyFor` promises (one per
    /// verify interval): ticks that overran on a loaded host must not fail a recovery that had no time to show.
    /// A sampler that stays that slow gets its verdict at twice `verifyFor` all the same.
    /// A rollback that stopped for a person (the database gate, or a plan's approval step): the incident waits for
    /// `approve`/`deny`, and the `approval_requested` event says why and what to run.
    private mutating func awaitPerson(
        _ idx: Int, _ order: RollbackOrder, reason: String, planStep: Int?, now: Timestamp, timeline: String,
        message: String, extra: [String: String]
    ) -> Event {
        state.incidents[idx].status = .awaitingApproval
        state.incidents[idx].decision = Decision.awaitApproval(target: order.to).name
        state.incidents[idx].decisionReason = reason
        state.approvals.removeAll { $0.incident == order.incident }
        state.approvals.append(
            PendingApproval(
                incident: order.incident, trigger: order.trigger ?? "manual",
                from: order.from, to: order.to, requestedAt: now, planStep: planStep))
        appendTimeline(idx, now, .approvalRequested, timeline)
        return Event(
            kind: .approvalRequested, at: now, message: message, severity: .critical, incident: order.incident,
            trigger: order.trigger, fromVersion: order.from, toVersion: order.to, decision: "await_approval",
            reason: reason, extra: extra)
    }

    func verificationIsDue(_ v: VerificationState, now: Timestamp) -> Bool {
        guard now >= v.deadline else { return false }
        if let ticks = v.ticks {
            let every = max(config.safety.verifyInterval ?? config.interval, .ms(1))
            let promised = Int(config.safety.verifyFor.milliseconds / every.milliseconds)
            guard ticks >= promised || now >= v.deadline + config.safety.verifyFor else { return false }
        }
        // A quiet service may not send enough requests within verifyFor to prove its recovery. While the only
        // triggers not yet clear are quiet ones (no evidence of badness since the rollback), keep verifying, up to
        // the bound; then the verdict states the evidence it had.
        let quiet = quietTriggers()
        if !quiet.isEmpty, now < v.deadline + .ms(config.safety.verifyFor.milliseconds * Self.quietExtension),
            verificationProblems(smokeFailures: v.smokeFailures, quiet: quiet).isEmpty
        {
            return false
        }
        return true
    }

    /// How many more `verifyFor`s a quiet service's verification may take before it is judged on what it has.
    static let quietExtension: Int64 = 3

    /// Triggers not yet clear only because the service is quiet: on a counted metric, fed by the live release's
    /// traffic since it went back live, with no evidence that it is beyond the condition and not yet enough
    /// evidence that it is back within it, and with data this tick.
    func quietTriggers() -> [TriggerDefinition] {
        config.triggers.filter { t in
            guard let s = state.triggers[t.name], s.phase.isTripped, config.metric(named: t.metric)?.hasCounts == true,
                let current = state.ledger.current, s.evidenceRelease == current, s.evidence?.reached == false
            else { return false }
            return (state.blind[t.metric]?.consecutiveNoData ?? 0) == 0
        }
    }

    /// Why the triggers do not show a recovery now (empty: they do): every `full` trigger must be clear and every
    /// smoke check must have answered. The daemon's verification and `rollbackd drill` judge with this.
    public func verificationProblems(smokeFailures: [String]) -> [String] {
        verificationProblems(smokeFailures: smokeFailures, quiet: [])
    }

    /// The same, forgiving the `quiet` triggers (see `quietTriggers`).
    func verificationProblems(smokeFailures: [String], quiet: [TriggerDefinition]) -> [String] {
        let forgiven = Set(quiet.map(\.name))
        let notClear = config.triggers.filter { t in
            t.automation.capped(by: config.automation) == .full && !t.dryRun
                && (state.triggers[t.name]?.phase ?? .ok) != .ok && !forgiven.contains(t.name)
        }
        // A trigger whose metric has no data could not show its recovery: say so, rather than only "firing".
        let problems = notClear.map { t -> String in
            let phase = "\(t.name) is \(state.triggers[t.name]?.phase.rawValue ?? "?")"
            guard let b = state.blind[t.metric], b.consecutiveNoData > 0 else { return phase }
            return
                "\(phase) and could not show recovery: \(t.metric) has had no data for \(b.consecutiveNoData) ticks (\(b.lastReason ?? "no reason given"))"
        }
        return problems + smokeFailures.map { "smoke check: \($0)" }
    }

    mutating func finishVerification(now: Timestamp, out: inout EngineOutput) {
        guard let v = state.verification else { return }
        state.verification = nil
        let quiet = quietTriggers()
        let problems = verificationProblems(smokeFailures: v.smokeFailures, quiet: quiet)
        guard let idx = state.incidents.firstIndex(where: { $0.id == v.incident }) else { return }
        if problems.isEmpty {
            // Quiet triggers pass on what they have, said plainly, and start clear on the release rolled back to.
            let quietNotes = quiet.map { t -> String in
                let s = state.triggers[t.name] ?? TriggerState()
                return
                    "\(t.name): low traffic, no evidence of \(conditionText(t)) (\(evidenceText(t, s) ?? "no counts"))"
            }
            for t in quiet { state.triggers[t.name] = state.triggers[t.name]?.phaseReset() }
            let note = quietNotes.isEmpty ? "" : "; " + quietNotes.joined(separator: "; ")
            state.incidents[idx].verifiedAt = now
            appendTimeline(idx, now, .verificationPassed, "verification passed: every full trigger is clear" + note)
            out.events.append(
                Event(
                    kind: .verificationPassed, at: now,
                    message:
                        "Verification passed: \(v.to) is healthy \(now - v.startedAt) after rolling back from \(v.from)\(note).",
                    severity: .medium, incident: v.incident, fromVersion: v.from, toVersion: v.to,
                    reason: quietNotes.isEmpty ? nil : quietNotes.joined(separator: "; ")))
            closeIncident(v.incident, outcome: .rolledBack, now: now, text: "recovered on \(v.to)", out: &out)
        } else {
            let reason = problems.joined(separator: "; ")
            appendTimeline(idx, now, .verificationFailed, "verification failed: \(reason)")
            out.events.append(
                Event(
                    kind: .verificationFailed, at: now,
                    message: "Verification failed after rolling back \(v.from) -> \(v.to): \(reason).",
                    severity: .critical, incident: v.incident, fromVersion: v.from, toVersion: v.to, reason: reason))
            out.events += halt(
                reason: "verification failed after rolling back \(v.from) -> \(v.to): \(reason)", incident: v.incident,
                now: now)
            closeIncident(v.incident, outcome: .verificationFailed, now: now, text: "verification failed", out: &out)
        }
    }

    mutating func halt(reason: String, incident: String?, now: Timestamp) -> [Event] {
        state.halted = HaltState(at: now, reason: reason, incident: incident)
        return [
            Event(
                kind: .automationHalted, at: now,
                message: "Automatic rollbacks are halted: \(reason). A human must look, then run rollbackd rearm.",
                severity: .critical, incident: incident, reason: reason)
        ]
    }

    mutating func closeIncident(
        _ id: String, outcome: IncidentOutcome, now: Timestamp, text: String, out: inout EngineOutput
    ) {
        closeIncident(id, outcome: outcome, now: now, text: text, events: &out.events)
    }

    mutating func closeIncident(
        _ id: String, outcome: IncidentOutcome, now: Timestamp, text: String, events: inout [Event]
    ) {
        guard let idx = state.incidents.firstIndex(where: { $0.id == id }), state.incidents[idx].status != .closed
        else { return }
        state.incidents[idx].status = .closed
        state.incidents[idx].outcome = outcome
        state.incidents[idx].closedAt = now
        appendTimeline(idx, now, .incidentClosed, "closed: \(outcome.rawValue) (\(text))")
        for key in state.lastDecisions.keys where key.hasPrefix(id + "/") { state.lastDecisions[key] = nil }
        let inc = state.incidents[idx]
        let severity = inc.trips.map(\.severity).max() ?? .medium
        events.append(
            Event(
                kind: .incidentClosed, at: now,
                message: "Incident \(id) closed: \(outcome.rawValue) (\(text)) after \(now - inc.openedAt).",
                severity: outcome == .rolledBack || outcome == .recovered || outcome == .superseded ? .low : severity,
                incident: id, fromVersion: inc.fromVersion, toVersion: inc.toVersion, reason: outcome.rawValue))
        if let withdrawn = state.approvals.first(where: { $0.incident == id }) {
            state.approvals.removeAll { $0.incident == id }
            events.append(
                Event(
                    kind: .approvalWithdrawn, at: now,
                    message: "Approval for incident \(id) withdrawn: \(text).",
                    severity: .low, incident: id, trigger: withdrawn.trigger,
                    fromVersion: withdrawn.from, toVersion: withdrawn.to))
        }
    }

    /// An incident whose triggers all cleared without a rollback is closed as recovered.
    mutating func closeRecoveredIncidents(now: Timestamp, out: inout EngineOutput) {
        guard let current = state.ledger.current else { return }
        for inc in state.openIncidents
        where inc.fromVersion == current && (inc.status == .open || inc.status == .awaitingApproval)
            && !state.approvals.contains(where: { $0.incident == inc.id && $0.planStep != nil })
        {
            let anyTripped = inc.trips.contains { state.triggers[$0.trigger]?.phase.isTripped ?? false }
            if !anyTripped && !inc.trips.isEmpty {
                closeIncident(
                    inc.id, outcome: .recovered, now: now, text: "every trigger cleared without a rollback", out: &out)
            }
        }
    }
}
